/**
 * @internal The agent scheduler's server: its schedules' timer chains, deliveries, the agents it
 * watches, and its store (kept schedules by name, read at a start, again after a read that failed).
 * The public face and the handle are in ../AgentScheduler.ts.
 */
import { DeliveryError, InvalidArgumentError, thrownText } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observeScheduler } from '../observe.js';
import { endWithAttemptInFlight, type SendOptions, type SendOutcome, sendSupervised, withdrawSends } from '../../delivery/sendSupervised.js';
import type { GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { kernelOf } from '../../runtime/kernel.js';
import { isDown } from '../../runtime/messages.js';
import { isInstance } from '../../runtime/safe.js';
import { checkTarget, nameOf, Pid, type Target } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import { componentState, endsForGood, releaseComponentState, releaseIfInitFails } from '../internal/componentState.js';
import { RetryStoreRead, retryStoreRead, retryStoreReadLater } from '../internal/storeRetry.js';
import { unwatch, watchProcess } from '../internal/watch.js';
import { type AgentStore, type AgentStoreRecord, type CorruptRecord, encodeValue, recordKey } from '../store/AgentStore.js';
import { decodeSchedule, SCHEDULE, scheduleKey, type StoredSchedule } from '../store/scheduleRecords.js';
import { type AgentEntry, type Kept, type Schedule, type State, Tick } from './state.js';
import {
  MAX_CATCH_UP,
  type MissedPolicy,
  type ScheduledSendOptions,
  type ScheduleInfo,
  type SchedulerProtocol,
} from './types.js';
import { checkId, checkInterval, periodicOptions, refusal } from './validate.js';

/** The agent's entry: a name is resolved to the pid registered under it now. */
function entryOf(state: State, agent: Target, ctx: Context<any>): AgentEntry | undefined {
  const name = nameOf(agent);
  const pid = name !== undefined ? ctx.node.registry.whereis(name) : (agent as Pid);
  return pid === undefined ? undefined : state.agents.get(Pid.format(pid));
}

/**
 * The time schedules count in: the node's timers' (monotonic on the real clock), as their ticks do,
 * so a wall clock stepped back does not hold a schedule for the step, nor one stepped forward count
 * the step as missed due times. A due time leaves the process as a date on the node's clock (the
 * store's record, `list`) and comes back from the store through {@link dueFromDate}: another OS
 * process resumes it, and only the wall clock is common to both.
 */
function timerNow(ctx: Context<any>): number {
  return kernelOf(ctx.node).timerNow();
}

/** `s.nextDueAt`'s date: on the node's clock (the wall clock on the real clock), as of now. */
function dueDate(s: Schedule, ctx: Context<any>): number {
  const kernel = kernelOf(ctx.node);
  return s.nextDueAt + (kernel.clock.now() - kernel.timerNow());
}

/** A stored due date, on the timers' time. */
function dueFromDate(date: number, ctx: Context<any>): number {
  const kernel = kernelOf(ctx.node);
  return date - (kernel.clock.now() - kernel.timerNow());
}

/**
 * Arms the schedule's one timer: at its base due time plus a fresh jitter draw. The delay is at most
 * Number.MAX_VALUE: a due time and a jitter near it (each finite, so valid) add up to Infinity, which
 * sendAfter refuses, in the scheduler's turn and again at each restart that resumes the schedule.
 */
function arm(s: Schedule, now: number, ctx: Context<any>): void {
  const jitter = s.jitter > 0 ? ctx.node.random() * s.jitter : 0;
  s.timer = ctx.sendAfter(ctx.self, new Tick(s, s.generation), Math.min(Number.MAX_VALUE, Math.max(0, s.nextDueAt - now + jitter)));
}

/** Retires the schedule's chain: a new generation (a tick already queued is stale) and no timer. */
function retire(s: Schedule, ctx: Context<any>): void {
  s.generation++;
  if (s.timer !== undefined) ctx.cancelTimer(s.timer);
  s.timer = undefined;
}

/** Removes a schedule: no timer, no further delivery, pending retries aborted. */
function remove(state: State, s: Schedule, ctx: Context<any>): void {
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
 * A removed schedule's deliveries still waiting: a copy the agent has not started is taken back and
 * a retry waiting for its backoff is aborted (the send ends aborted, withdrawn by its owner: never
 * handled, counted `withdrawn`, and its onError policy is not applied, so nothing is logged,
 * dead-lettered or raised); a copy the agent is handling is left to end, retried no more, and its end is the
 * delivery's outcome, counted when it comes (an agent that unregisters or replaces its own schedule
 * from the handler of its message handles that message).
 */
function withdraw(s: Schedule, ctx: Context<any>): void {
  const kernel = kernelOf(ctx);
  for (const [id, abort] of s.pending) {
    if (kernel.withdrawEnvelope(s.agent.pid, id) || !endWithAttemptInFlight(abort.signal)) withdrawSends(abort);
  }
}

/**
 * A write to the durable store: a failure (disk full, closed) is counted, logged and reported; the
 * schedule runs on in memory. A store that could not be read at the start is read first (its
 * records resume now, before this write can touch them).
 */
function storeWrite(state: State, ctx: Context<any>, write: (store: AgentStore) => unknown, readFirst = true): void {
  if (state.store === undefined) return;
  if (readFirst && state.kept.storeUnread) loadLate(state, state.store, ctx);
  try {
    write(state.store);
  } catch (e) {
    storeFailed(state, ctx, 'a write to its store failed', e);
  }
}

/** A store operation failed: counted, logged and reported. */
function storeFailed(state: State, ctx: Context<any>, what: string, e: unknown): void {
  state.kept.storeFailures++;
  ctx.node.logger.error(`agent scheduler ${state.name}: ${what}`, e);
  ctx.node.telemetry.execute('keel.agent_scheduler.store_failed', {}, { scheduler: state.name, error: e });
}

/** The store could not be read at the start: read it now; what it holds resumes (reported as a start's resume is). */
function loadLate(state: State, store: AgentStore, ctx: Context<any>): void {
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
function persist(state: State, s: Schedule, ctx: Context<any>): void {
  if (s.agentName === undefined || s.removed) return;
  const record: StoredSchedule = { agent: s.agentName, id: s.id, intervalMs: s.intervalMs, message: s.message, jitter: s.jitter, missed: s.missed, nextDueAt: dueDate(s, ctx) };
  storeWrite(state, ctx, (store) => store.put(state.name, SCHEDULE, scheduleKey(s.agentName!, s.id), record));
}

/** Forgets an agent with no schedule left, releasing its monitor. */
function releaseIfEmpty(state: State, entry: AgentEntry, ctx: Context<any>): void {
  if (entry.schedules.size > 0) return;
  state.agents.delete(entry.key);
  state.byRef.delete(entry.ref);
  unwatch(ctx, entry);
}

/** Monitors `pid` once for all its schedules: through the monitor manager, or directly when it is unavailable. */
function watchAgent(state: State, pid: Pid, ctx: Context<any>): AgentEntry | undefined {
  const key = Pid.format(pid);
  const known = state.agents.get(key);
  if (known !== undefined) return known;
  if (!ctx.node.isAlive(pid)) return undefined;
  // long-lived by design: the monitor lasts as long as the agent has schedules
  const watch = watchProcess(ctx, pid, 'agent_scheduler');
  if (watch === 'noproc') return undefined;
  const { ref, managed } = watch;
  const entry: AgentEntry = { pid, key, ref, managed, schedules: new Map() };
  state.agents.set(key, entry);
  state.byRef.set(ref, entry);
  return entry;
}

/** One delivery through supervised send; its outcome is counted and reported when it is known. */
function deliver(state: State, s: Schedule, lateMs: number, forced: boolean, ctx: Context<any>): void {
  const telemetry = ctx.node.telemetry;
  const agent = s.agent.pid;
  s.lastRunAt = ctx.node.clock.now(); // a date, for an observer
  let options = s.sendOptions;
  let id: string | undefined;
  if (state.sendsWait) {
    // a send that can wait gets its id and its abort: a removal of the schedule withdraws or aborts it by them
    id = kernelOf(ctx).nextMessageId();
    const abort = new AbortController();
    s.pending.set(id, abort);
    options = { ...options, id, signal: abort.signal };
  }
  const ended = (outcome: SendOutcome | undefined, rejected: unknown): void => {
    if (id !== undefined) s.pending.delete(id);
    // the scheduler has exited (its pending sends were aborted with it): its counts and events are over
    if (ctx.signal.aborted) return;
    if (outcome?.ok === true) {
      s.deliveries++;
      state.kept.delivered++;
      telemetry.execute('keel.agent_scheduler.delivered', { lateMs }, { scheduler: state.name, agent, id: s.id, forced, messageId: outcome.id });
      return;
    }
    // a schedule removed while its copy was unstarted or its retry waited: withdrawn, not a failed
    // delivery, whatever `onError` says (its send resolves aborted: no policy is applied to a withdrawal)
    if (outcome?.reason === 'aborted' && s.removed) {
      state.kept.withdrawn++;
      return;
    }
    s.failures++;
    state.kept.failed++;
    telemetry.execute('keel.agent_scheduler.failed', { attempts: outcome?.attempts ?? 0 }, { scheduler: state.name, agent, id: s.id, forced, reason: outcome?.reason ?? rejected });
  };
  sendSupervised(ctx, agent, s.message, options).then(
    (outcome: SendOutcome) => ended(outcome, undefined),
    // only `onError: 'raise'` (ERR_DELIVERY with the failed outcome) or a deadlock rejects: the
    // outcome is read from a DeliveryError only (any other rejection is a failure with no outcome)
    (e: unknown) => ended(isInstance(e, DeliveryError) ? (e.outcome as SendOutcome) : undefined, e),
  );
}

/** A schedule's timer fired: deliver per the missed policy, then re-arm at the next aligned due time. */
function onTick(state: State, tick: Tick, ctx: Context<any>): void {
  const s = tick.schedule;
  if (s.removed || tick.generation !== s.generation) return; // a retired chain's last tick
  s.timer = undefined;
  fire(state, s, timerNow(ctx), ctx, s.missed === 'catch_up' ? MAX_CATCH_UP : 1);
}

/**
 * Delivers the due times at or before `now` (at most `atMost`; the rest are counted as skipped),
 * moves the schedule to its next aligned due time after now (kept in the store) and re-arms it.
 */
function fire(state: State, s: Schedule, now: number, ctx: Context<any>, atMost: number): void {
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

function info(s: Schedule, ctx: Context<any>): ScheduleInfo {
  return {
    id: s.id,
    intervalMs: s.intervalMs,
    jitter: s.jitter,
    missed: s.missed,
    nextDueAt: dueDate(s, ctx),
    generation: s.generation,
    deliveries: s.deliveries,
    failures: s.failures,
    skipped: s.skipped,
  };
}

/**
 * The options of a schedule's deliveries. A send that can wait (retries, 'handled') gets its own id
 * and abort signal at each delivery; without them the send is one synchronous step.
 */
function deliveryOptions(state: State, id: string): SendOptions {
  const user = state.sendOptions;
  return {
    ack: 'enqueued',
    onError: 'ignore',
    ...user,
    metadata: { ...user.metadata, scheduler: state.name, schedule: id },
  };
}

/** A new schedule of `entry`, held (its timer is the caller's to arm). */
function newSchedule(
  state: State,
  entry: AgentEntry,
  agentName: string | undefined,
  r: { id: string; intervalMs: number; message: unknown; jitter: number; missed: MissedPolicy },
  nextDueAt: number,
): Schedule {
  const s: Schedule = {
    agent: entry,
    agentName,
    id: r.id,
    intervalMs: r.intervalMs,
    message: r.message,
    jitter: r.jitter,
    missed: r.missed,
    generation: 1,
    timer: undefined,
    nextDueAt,
    lastRunAt: undefined,
    deliveries: 0,
    failures: 0,
    skipped: 0,
    removed: false,
    pending: new Map(),
    sendOptions: deliveryOptions(state, r.id),
  };
  entry.schedules.set(s.id, s);
  state.kept.schedules.add(s);
  if (agentName !== undefined) {
    // the name moved on from the process whose schedule held this key (it lives): its schedule runs
    // on by pid, and no longer writes nor deletes the record, which is this one's now
    const key = scheduleKey(agentName, r.id);
    const previous = state.kept.named.get(key);
    if (previous !== undefined) previous.agentName = undefined;
    state.kept.named.set(key, s);
  }
  return s;
}

/** A resumed schedule runs on: a due time that passed while no scheduler ran fires once now (the others are skipped), else it is armed for its kept due time. */
function rearm(state: State, s: Schedule, now: number, ctx: Context<any>): void {
  fire(state, s, now, ctx, 1);
}

/** A schedule that cannot be resumed: counted, reported, and gone from the store. */
function dropped(state: State, agent: Pid | string, id: string, reason: 'noproc' | 'corrupt' | 'duplicate', key: string | undefined, ctx: Context<any>, readFirst = true): void {
  state.kept.dropped += reason === 'corrupt' ? 0 : 1;
  state.kept.corrupt += reason === 'corrupt' ? 1 : 0;
  if (key !== undefined) storeWrite(state, ctx, (store) => store.delete(state.name, SCHEDULE, key), readFirst);
  ctx.node.telemetry.execute('keel.agent_scheduler.dropped', {}, { scheduler: state.name, agent, id, reason });
}

/** Restarted in this node: every schedule of a live agent runs on (re-monitored, re-armed); those of agents that died meanwhile go. */
function resumeKept(state: State, ctx: Context<any>): number {
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
function resumeStored(state: State, store: AgentStore, ctx: Context<any>): number {
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

function newKept(): Kept {
  return { schedules: new Set(), named: new Map(), delivered: 0, failed: 0, withdrawn: 0, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0, storeUnread: false };
}

interface SchedulerArg {
  readonly name: string;
  readonly sendOptions: ScheduledSendOptions;
  readonly store: AgentStore | undefined;
}

/** Why a call's fields are not what the handle would have sent, or undefined. */
function malformed(request: SchedulerProtocol['request']): Error | undefined {
  const r = request as { type?: unknown; agent?: unknown; id?: unknown; intervalMs?: unknown; jitter?: unknown; missed?: unknown };
  switch (r?.type) {
    case 'register':
      return refusal(() => {
        checkTarget(r.agent, 'agent');
        checkId(r.id);
        checkInterval(r.intervalMs);
        periodicOptions({ jitter: r.jitter, missed: r.missed }, r.intervalMs);
      });
    case 'update_interval':
      return refusal(() => {
        checkTarget(r.agent, 'agent');
        checkId(r.id);
        checkInterval(r.intervalMs);
      });
    case 'unregister':
    case 'force':
      return refusal(() => {
        checkTarget(r.agent, 'agent');
        checkId(r.id);
      });
    case 'unregister_agent':
    case 'list':
      return refusal(() => checkTarget(r.agent, 'agent'));
    default:
      return undefined;
  }
}

/** The calls that change or remove existing schedules (a registration reads the store at its write). */
const CHANGES: ReadonlySet<string> = new Set(['unregister', 'unregister_agent', 'update_interval', 'force']);

export const schedulerSpec: GenServerSpec<State, SchedulerProtocol, never, SchedulerArg> = keelServer({
  init({ name, sendOptions, store }, ctx) {
    const sendsWait = (sendOptions.retries ?? 0) > 0 || sendOptions.ack === 'handled';
    // the table of a predecessor under this name (killed, restarted by its supervisor), or a new one
    const { state: kept, resumed } = componentState(ctx.node, name, 'agent_scheduler', newKept);
    const initialized = releaseIfInitFails(ctx, name, kept, resumed); // an init that throws leaves no half-built table
    const state: State = { name, sendOptions, sendsWait, agents: new Map(), byRef: new Map(), kept, store, ctx };
    const before = { dropped: kept.dropped, corrupt: kept.corrupt };
    if (!resumed && store === undefined) return (initialized(), state);
    kept.resumed = resumed ? resumeKept(state, ctx) : resumeStored(state, store!, ctx);
    ctx.node.telemetry.execute(
      'keel.agent_scheduler.resumed',
      { schedules: kept.resumed, dropped: kept.dropped - before.dropped, corrupt: kept.corrupt - before.corrupt },
      { scheduler: name, from: resumed ? 'table' : 'store' },
    );
    // a predecessor in this node could not read the store: this one tries again
    if (resumed && kept.storeUnread && store !== undefined) loadLate(state, store, ctx);
    // still unread: tried again on its own, not only at its next write
    if (kept.storeUnread && store !== undefined) retryStoreRead(ctx);
    initialized();
    return state;
  },

  terminate(reason, state) {
    // asked to stop (a normal exit): it ends for good, with its table and its store records
    if (!endsForGood(reason)) return;
    releaseComponentState(state.ctx.node, state.name);
    const store = state.store;
    if (store === undefined) return;
    if (!state.kept.storeUnread) {
      storeWrite(state, state.ctx, () => store.deleteAll(state.name, SCHEDULE));
      return;
    }
    // its store was never read: the records it did not load are not its to delete, only those of the schedules it holds
    const keys = [...state.kept.schedules].flatMap((s) => (s.agentName === undefined ? [] : [scheduleKey(s.agentName, s.id)]));
    try {
      store.transaction(() => {
        for (const key of keys) store.delete(state.name, SCHEDULE, key);
      });
    } catch (e) {
      storeFailed(state, state.ctx, 'a write to its store failed', e);
    }
  },

  handleCall(request, _from, state, ctx) {
    // the handle sends well-formed calls; one sent straight here is checked as the handle checks it,
    // so that one bad client cannot crash the scheduler (and, crash after crash, end it)
    const refused = malformed(request);
    if (refused !== undefined) return { reply: refused as never, state };
    const now = timerNow(ctx); // due times count on the timers' time
    // a request that changes or removes schedules reads a store unread since the start first: the
    // stored schedules it concerns are known then (unregisterAgent removes them too, unregister finds one)
    if (state.kept.storeUnread && state.store !== undefined && typeof request?.type === 'string' && CHANGES.has(request.type)) loadLate(state, state.store, ctx);
    switch (request?.type) {
      case 'register': {
        const name = nameOf(request.agent);
        const pid = name !== undefined ? ctx.node.registry.whereis(name) : (request.agent as Pid);
        if (pid !== undefined && Pid.equals(pid, ctx.self)) {
          // its own ticks would come back to it as stray messages (or deadlock, with ack 'handled')
          return { reply: new InvalidArgumentError('agent', 'a process other than the scheduler itself', request.agent) as never, state };
        }
        if (pid === undefined || !ctx.node.isAlive(pid)) return { reply: { error: 'noproc' as const }, state };
        if (name !== undefined && state.store !== undefined) {
          // kept in the store: a message that is not plain data is refused before anything changes
          // (before the agent is watched: a refused registration leaves no monitor behind)
          const bad = refusal(() => encodeValue(request.message, 'message'));
          if (bad !== undefined) return { reply: bad as never, state };
        }
        const entry = watchAgent(state, pid, ctx);
        if (entry === undefined) return { reply: { error: 'noproc' as const }, state };
        const old = entry.schedules.get(request.id);
        if (old !== undefined) remove(state, old, ctx);
        // a call sent straight here may leave out jitter and missed, as the handle's options may: their defaults
        const options = { jitter: request.jitter ?? 0, missed: request.missed ?? 'skip' };
        const s = newSchedule(state, entry, name, { ...request, ...options }, now + request.intervalMs);
        persist(state, s, ctx);
        arm(s, now, ctx);
        return { reply: old === undefined ? 'ok' : 'replaced', state };
      }
      case 'unregister': {
        const entry = entryOf(state, request.agent, ctx);
        const s = entry?.schedules.get(request.id);
        if (entry === undefined || s === undefined) return { reply: 'not_found', state };
        remove(state, s, ctx);
        releaseIfEmpty(state, entry, ctx);
        return { reply: 'ok', state };
      }
      case 'unregister_agent': {
        const entry = entryOf(state, request.agent, ctx);
        if (entry === undefined) return { reply: 0, state };
        const n = entry.schedules.size;
        for (const s of [...entry.schedules.values()]) remove(state, s, ctx);
        releaseIfEmpty(state, entry, ctx);
        return { reply: n, state };
      }
      case 'update_interval': {
        const s = entryOf(state, request.agent, ctx)?.schedules.get(request.id);
        if (s === undefined) return { reply: 'not_found', state };
        if (s.jitter >= request.intervalMs) {
          return { reply: new InvalidArgumentError('intervalMs', `a number of ms above the schedule's jitter (${s.jitter})`, request.intervalMs), state };
        }
        retire(s, ctx);
        s.intervalMs = request.intervalMs;
        s.nextDueAt = now + request.intervalMs;
        persist(state, s, ctx);
        arm(s, now, ctx);
        return { reply: 'ok', state };
      }
      case 'force': {
        const s = entryOf(state, request.agent, ctx)?.schedules.get(request.id);
        if (s === undefined) return { reply: 'not_found', state };
        state.kept.forced++;
        retire(s, ctx);
        deliver(state, s, 0, true, ctx);
        s.nextDueAt = now + s.intervalMs;
        persist(state, s, ctx);
        arm(s, now, ctx);
        return { reply: 'ok', state };
      }
      case 'list': {
        const entry = entryOf(state, request.agent, ctx);
        return { reply: entry === undefined ? [] : [...entry.schedules.values()].map((s) => info(s, ctx)), state };
      }
      case 'stats':
        return {
          reply: {
            agents: state.agents.size,
            schedules: state.kept.schedules.size,
            delivered: state.kept.delivered,
            failed: state.kept.failed,
            withdrawn: state.kept.withdrawn,
            forced: state.kept.forced,
            skipped: state.kept.skipped,
            resumed: state.kept.resumed,
            dropped: state.kept.dropped,
            corrupt: state.kept.corrupt,
            storeFailures: state.kept.storeFailures,
          },
          state,
        };
      default:
        return { reply: new InvalidArgumentError('request', 'an AgentScheduler call', request) as never, state };
    }
  },

  handleInfo(message, state, ctx) {
    if (isInstance(message, Tick)) {
      onTick(state, message, ctx);
      return state;
    }
    if (isInstance(message, RetryStoreRead)) {
      if (state.kept.storeUnread && state.store !== undefined) {
        loadLate(state, state.store, ctx);
        if (state.kept.storeUnread) retryStoreReadLater(ctx, message);
      }
      return state;
    }
    if (isDown(message)) {
      const entry = state.byRef.get(message.ref);
      if (entry === undefined) return state;
      const n = entry.schedules.size;
      for (const s of [...entry.schedules.values()]) remove(state, s, ctx);
      state.agents.delete(entry.key);
      state.byRef.delete(entry.ref);
      ctx.node.telemetry.execute('keel.agent_scheduler.agent_down', { schedules: n }, { scheduler: state.name, agent: entry.pid, reason: message.reason });
      return state;
    }
    ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message });
    return state;
  },
}, 'an agent scheduler (use its handle)', 'bare');
markComponent(schedulerSpec, 'agent_scheduler', observeScheduler); // an observer finds it, and reads it through the `observe` system call
