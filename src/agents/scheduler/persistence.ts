import { thrownText } from '../../errors.js';
import { kernelOf } from '../../runtime/kernel.js';
import { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import { type AgentStore, type AgentStoreRecord, type CorruptRecord, recordKey } from '../store/AgentStore.js';
import { decodeSchedule, SCHEDULE, scheduleKey, type StoredSchedule } from '../store/scheduleRecords.js';
import { newSchedule, watchAgent } from './agents.js';
import { deliver, deliveryOptions, withdraw } from './delivery.js';
import type { Schedule, State, Tick } from './state.js';
import { arm, dueDate, dueFromDate, retire, timerNow } from './time.js';
import { MAX_CATCH_UP } from './types.js';

// @internal The AgentScheduler's schedules over time and across restarts: a schedule's due times
// fired and moved on, its record kept in the durable store at each move and deleted at its removal,
// and its resumption at a start (from the table that outlives the process, or from the store, read
// again after a read that failed). The firing lives with the store: a fire keeps the moved due time,
// a write first reads a store unread since the start, and that read resumes schedules by firing them.

/** Removes a schedule: no timer, no further delivery, pending retries aborted. */
export function remove(state: State, s: Schedule, ctx: Context<any>): void {
  // a store unread since the start is read before the schedule goes (not at its record's delete): its
  // own record, written when it was registered, would otherwise be found and resumed as a stored one
  if (s.agentName !== undefined && state.kept.storeUnread && state.store !== undefined && !kernelOf(ctx).stopping) loadLate(state, state.store, ctx);
  retire(s, ctx);
  s.removed = true;
  withdraw(s, ctx);
  s.agent.schedules.delete(s.id);
  state.kept.schedules.delete(s);
  if (s.agentName === undefined) return;
  const key = scheduleKey(s.agentName, s.id);
  state.kept.named.delete(key);
  // at the node's shutdown its agents die before the scheduler: their schedules stay in the store, for the next run
  if (!kernelOf(ctx).stopping) storeWrite(state, ctx, (store) => store.delete(state.name, SCHEDULE, key));
}

/**
 * A write to the durable store: a failure (disk full, closed) is counted, logged and reported; the
 * schedule runs on in memory. A store that could not be read at the start is read first (its
 * records resume now, before this write can touch them).
 */
export function storeWrite(state: State, ctx: Context<any>, write: (store: AgentStore) => unknown, readFirst = true): void {
  if (state.store === undefined) return;
  if (readFirst && state.kept.storeUnread) loadLate(state, state.store, ctx);
  try {
    write(state.store);
  } catch (e) {
    storeFailed(state, ctx, 'a write to its store failed', e);
  }
}

/** A store operation failed: counted, logged and reported. */
export function storeFailed(state: State, ctx: Context<any>, what: string, e: unknown): void {
  state.kept.storeFailures++;
  ctx.node.logger.error(`agent scheduler ${state.name}: ${what}`, e);
  ctx.node.telemetry.execute('keel.agent_scheduler.store_failed', {}, { scheduler: state.name, error: e });
}

/** The store could not be read at the start: read it now; what it holds resumes (reported as a start's resume is). */
export function loadLate(state: State, store: AgentStore, ctx: Context<any>): void {
  const before = { dropped: state.kept.dropped, corrupt: state.kept.corrupt };
  const resumed = resumeStored(state, store, ctx);
  if (state.kept.storeUnread) return; // still unreadable (counted and reported)
  state.kept.resumed += resumed;
  ctx.node.telemetry.execute(
    'keel.agent_scheduler.resumed',
    { schedules: resumed, dropped: state.kept.dropped - before.dropped, corrupt: state.kept.corrupt - before.corrupt },
    { scheduler: state.name, from: 'store' },
  );
}

/** Keeps a schedule by name in the durable store (its due time moved, or it is new). */
export function persist(state: State, s: Schedule, ctx: Context<any>): void {
  if (s.agentName === undefined || s.removed) return;
  const record: StoredSchedule = { agent: s.agentName, id: s.id, intervalMs: s.intervalMs, message: s.message, jitter: s.jitter, missed: s.missed, nextDueAt: dueDate(s, ctx) };
  storeWrite(state, ctx, (store) => store.put(state.name, SCHEDULE, scheduleKey(s.agentName!, s.id), record));
}

/** A schedule's timer fired: deliver per the missed policy, then re-arm at the next aligned due time. */
export function onTick(state: State, tick: Tick, ctx: Context<any>): void {
  const s = tick.schedule;
  if (s.removed || tick.generation !== s.generation) return; // a retired chain's last tick
  s.timer = undefined;
  fire(state, s, timerNow(ctx), ctx, s.missed === 'catch_up' ? MAX_CATCH_UP : 1);
}

/**
 * Delivers the due times at or before `now` (at most `atMost`; the rest are counted as skipped),
 * moves the schedule to its next aligned due time after now (kept in the store) and re-arms it.
 */
export function fire(state: State, s: Schedule, now: number, ctx: Context<any>, atMost: number): void {
  if (now < s.nextDueAt) {
    arm(s, now, ctx);
    return;
  }
  const I = s.intervalMs;
  const due = Math.floor((now - s.nextDueAt) / I) + 1; // due times at or before now
  const count = Math.min(due, atMost);
  for (let k = 0; k < count; k++) deliver(state, s, now - (s.nextDueAt + k * I), false, ctx);
  const skipped = due - count;
  if (skipped > 0) {
    s.skipped += skipped;
    state.kept.skipped += skipped;
    ctx.node.telemetry.execute('keel.agent_scheduler.skipped', { count: skipped }, { scheduler: state.name, agent: s.agent.pid, id: s.id, missed: s.missed });
  }
  s.nextDueAt += due * I;
  persist(state, s, ctx);
  arm(s, now, ctx);
}

/** A resumed schedule runs on: a due time that passed while no scheduler ran fires once now (the others are skipped), else it is armed for its kept due time. */
export function rearm(state: State, s: Schedule, now: number, ctx: Context<any>): void {
  fire(state, s, now, ctx, 1);
}

/** A schedule that cannot be resumed: counted, reported, and gone from the store. */
export function dropped(state: State, agent: Pid | string, id: string, reason: 'noproc' | 'corrupt' | 'duplicate', key: string | undefined, ctx: Context<any>, readFirst = true): void {
  state.kept.dropped += reason === 'corrupt' ? 0 : 1;
  state.kept.corrupt += reason === 'corrupt' ? 1 : 0;
  if (key !== undefined) storeWrite(state, ctx, (store) => store.delete(state.name, SCHEDULE, key), readFirst);
  ctx.node.telemetry.execute('keel.agent_scheduler.dropped', {}, { scheduler: state.name, agent, id, reason });
}

/** Restarted in this node: every schedule of a live agent runs on (re-monitored, re-armed); those of agents that died meanwhile go. */
export function resumeKept(state: State, ctx: Context<any>): number {
  const now = timerNow(ctx);
  let resumed = 0;
  for (const s of [...state.kept.schedules]) {
    const entry = watchAgent(state, s.agent.pid, ctx);
    if (entry === undefined || entry.schedules.has(s.id)) {
      s.removed = true;
      state.kept.schedules.delete(s);
      if (s.agentName !== undefined) state.kept.named.delete(scheduleKey(s.agentName, s.id));
      // its own record (with the store unread since the start, every kept schedule was registered after it): deleted
      // without a read first, which would find that record, no schedule's now, and drop it a second time
      dropped(state, s.agent.pid, s.id, 'noproc', s.agentName === undefined ? undefined : scheduleKey(s.agentName, s.id), ctx, false);
      continue;
    }
    s.agent = entry;
    entry.schedules.set(s.id, s);
    s.generation++; // a tick of the previous process is stale
    s.timer = undefined;
    s.pending = new Map(); // the predecessor's sends were aborted with it
    s.sendOptions = deliveryOptions(state, s.id);
    rearm(state, s, now, ctx);
    resumed++;
  }
  return resumed;
}

/** Started anew (a new OS process) with a store: each schedule by name resumes on the process that holds the name now. */
export function resumeStored(state: State, store: AgentStore, ctx: Context<any>): number {
  let records: AgentStoreRecord[];
  let corrupt: CorruptRecord[];
  try {
    const loaded = store.loadAll(state.name, SCHEDULE);
    // a load that is not one (a custom store's) is a store that cannot be read, as a throw is
    records = [...loaded.records];
    corrupt = [...loaded.corrupt];
  } catch (e) {
    // its records are not this scheduler's to delete until it has read them (see terminate)
    state.kept.storeUnread = true;
    storeFailed(state, ctx, 'its store cannot be read', e);
    return 0;
  }
  state.kept.storeUnread = false;
  // read after a failed start (a late load): a schedule registered meanwhile under a stored key is the newer one, and stays
  const held = new Map<string, Schedule>();
  for (const s of state.kept.schedules) if (s.agentName !== undefined) held.set(scheduleKey(s.agentName, s.id), s);
  for (const c of corrupt) {
    const key = recordKey(c);
    dropped(state, '', key ?? '', 'corrupt', key, ctx);
  }
  const now = timerNow(ctx);
  let resumed = 0;
  for (const record of records) {
    const key = recordKey(record);
    let d: StoredSchedule | string;
    try {
      // a custom store may answer values that are not plain data: a getter or a proxy trap that throws makes the record corrupt, not the start
      d = key === undefined ? 'its key cannot be read' : decodeSchedule(record.value);
    } catch (e) {
      d = `reading it threw ${thrownText(e)}`;
    }
    if (typeof d === 'string' || scheduleKey(d.agent, d.id) !== key) {
      ctx.node.logger.error(`agent scheduler ${state.name}: store record ${key ?? '(unreadable key)'} is not a schedule (${typeof d === 'string' ? d : 'its key does not match'}); skipped`);
      dropped(state, '', key ?? '', 'corrupt', key, ctx);
      continue;
    }
    if (held.has(key!)) continue;
    const pid = ctx.node.registry.whereis(d.agent);
    const entry = pid === undefined || Pid.equals(pid, ctx.self) ? undefined : watchAgent(state, pid, ctx);
    if (entry === undefined || entry.schedules.has(d.id)) {
      dropped(state, d.agent, d.id, entry === undefined ? 'noproc' : 'duplicate', key, ctx); // the key read once, above: a custom store's getter may not answer twice
      continue;
    }
    rearm(state, newSchedule(state, entry, d.agent, d, dueFromDate(d.nextDueAt, ctx)), now, ctx);
    resumed++;
  }
  // those registered while the store could not be read: written now (a write of theirs may have failed with the read)
  for (const s of held.values()) persist(state, s, ctx);
  return resumed;
}
