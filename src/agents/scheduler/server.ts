/**
 * @internal The agent scheduler's server: its schedules' timer chains, deliveries, the agents it
 * watches, and its store (kept schedules by name, read at a start, again after a read that failed).
 * The public face and the handle are in ../AgentScheduler.ts. This file is its GenServer spec (its
 * start, its end, its calls and messages); the time its schedules count in is in ./time.ts, their
 * deliveries in ./delivery.ts, the agents it watches in ./agents.ts, and the store (with the firing
 * of due times, which moves them in it) in ./persistence.ts.
 */
import { InvalidArgumentError } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observeScheduler } from '../observe.js';
import type { GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { isDown } from '../../runtime/messages.js';
import { isInstance } from '../../runtime/safe.js';
import { checkTarget, nameOf, Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import { componentState, endsForGood, releaseComponentState, releaseIfInitFails } from '../internal/componentState.js';
import { RetryStoreRead, retryStoreRead, retryStoreReadLater } from '../internal/storeRetry.js';
import { type AgentStore, encodeValue } from '../store/AgentStore.js';
import { SCHEDULE, scheduleKey } from '../store/scheduleRecords.js';
import { entryOf, newSchedule, releaseIfEmpty, watchAgent } from './agents.js';
import { deliver } from './delivery.js';
import { loadLate, onTick, persist, remove, resumeKept, resumeStored, storeFailed, storeWrite } from './persistence.js';
import { type Kept, type Schedule, type State, Tick } from './state.js';
import { arm, dueDate, retire, timerNow } from './time.js';
import type { ScheduledSendOptions, ScheduleInfo, SchedulerProtocol } from './types.js';
import { checkId, checkInterval, periodicOptions, refusal } from './validate.js';

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
