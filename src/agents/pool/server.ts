// The resource pool's process: its state, its handling of checkouts, checkins, creations and
// monitors (poolboy's semantics; docs/agents/ResourcePool.md). ResourcePool.ts starts it.
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observePool } from '../observe.js';
import { InvalidArgumentError, PoolCrashLoopError, PoolTimeoutError, toError } from '../../errors.js';
import { GenServer, type From, type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { callerOf, callWaiting } from '../../otp/internal/calls.js';
import { recordRestart } from '../../otp/internal/children.js';
import { isDown } from '../../runtime/messages.js';
import { type Pid, PidImpl } from '../../runtime/Pid.js';
import { kernelOf } from '../../runtime/kernel.js';
import { isInstance } from '../../runtime/safe.js';
import type { Context, Node } from '../../runtime/types.js';
import { pidKey, unwatch, watchProcess } from '../patterns/shared.js';
import { type Config, type Counters, Created, CreateFailed, CreateTimedOut, type Entry, type Job, RetryCreate, type State, type Waiter, WaiterTimeout } from './state.js';
import type { CheckinOutcome, ResourcePoolStats } from './types.js';

/** The most resources `size` or `maxOverflow` may ask for. */
export const MAX_SIZE = 100_000;

/** @internal The pool process's calls. */
export type Calls =
  | { request: { type: 'checkout'; timeout: number }; reply: unknown }
  | { request: { type: 'checkin'; resource: unknown; broken: boolean }; reply: CheckinOutcome }
  | { request: { type: 'stats' }; reply: ResourcePoolStats }
  | { request: { type: 'ready' }; reply: 'ok' };

/**
 * Whether a resource is a process: a pid of the runtime (`PidImpl`), never plain data of its shape
 * (`{ node, creation, id }` is a resource like any other: a row, a config, an address), which
 * `isPid` takes for a copy of a pid.
 */
function isProcessResource(resource: unknown): resource is Pid {
  return PidImpl.is(resource);
}

function keyOf(resource: unknown): unknown {
  // a Pid by its text (a copy of it is the same resource); a string by a text of another form, so no
  // string resource is ever taken for a Pid resource (or the other way round); anything else by identity
  if (isProcessResource(resource)) return `pid:${pidKey(resource)}`;
  return typeof resource === 'string' ? `str:${resource}` : resource;
}

function emit(ctx: Context<any>, state: State, event: string, measurements: Record<string, number>, metadata: Record<string, unknown> = {}): void {
  ctx.node.telemetry.execute(`keel.resource_pool.${event}`, measurements, { pool: state.name, ...metadata });
}

function alive(ctx: Context<any>): boolean {
  return ctx.node.isAlive(ctx.self);
}

/** Starts one creation outside the pool's handler; its result comes back as a message. */
function spawnCreate(state: State, ctx: Context<any>, initial: boolean): void {
  state.creating++;
  const node = ctx.node;
  const job: Job = { initial, state: 'pending', timer: undefined, controller: new AbortController() };
  if (state.createTimeoutMs !== Infinity) job.timer = ctx.sendAfter(ctx.self, new CreateTimedOut(job), state.createTimeoutMs);
  // until it settles, the pool's one abort listener (init) tells it to stop if the pool exits: one
  // listener per creation on the pool's signal would make Node warn of a leak past 10 in flight
  state.inFlight.add(job);
  const failed = (error: unknown): void => {
    if (job.state !== 'pending') return; // timed out: reported failed then
    if (alive(ctx)) {
      const failure = new CreateFailed(error, job);
      state.failing.add(failure); // until handled: a pool that exits first reports it (abort listener)
      ctx.send(ctx.self, failure);
    } else lostCreation(state, node, error); // failed after the pool exited: reported all the same
  };
  Promise.resolve()
    .then(() => state.create(job.controller.signal))
    .finally(() => state.inFlight.delete(job)) // settled: never told to stop later
    .then(
      (resource) => {
        // nothing to keep, nor to destroy: a failed creation (reported once)
        if (resource === undefined || resource === null) failed(new InvalidArgumentError('create()', NOT_NULL, resource));
        else if (job.state === 'timed_out') lateAnswer(state, node, resource); // given up on: not kept
        else if (alive(ctx)) {
          const made = new Created(resource, job);
          state.arrived.add(made); // until handled: a pool that exits first destroys it (abort listener)
          ctx.send(ctx.self, made);
        } else runDestroy(state, node, resource, 'pool_stopped', undefined); // made after the pool stopped: not kept
      },
      (e: unknown) => failed(toError(e)),
    );
}

const NOT_NULL = 'a resource (not undefined or null)';

/**
 * The answer of a creation given up on (past `createTimeoutMs`): destroyed, unless it is a resource
 * the pool holds (a factory that hands out a shared connection answered the same one again): that one
 * is in use, and goes only when the pool gives it up.
 */
function lateAnswer(state: State, node: Node, resource: unknown, ctx?: Context<any>): void {
  const key = keyOf(resource);
  if (state.entries.has(key) || state.retired.has(key)) return;
  runDestroy(state, node, resource, 'create_timeout', ctx);
}

/** A creation that failed once its pool had exited (or whose failure the pool exited before hearing): counted and reported, never lost. */
function lostCreation(state: State, node: Node, error: unknown): void {
  state.counts.createFailed++;
  node.telemetry.execute('keel.resource_pool.create_failed', {}, { pool: state.name, error });
}

/** How many resources the pool wants now: `size`, plus overflow for callers in line, at most size + maxOverflow. */
function fill(state: State, ctx: Context<any>): void {
  if (state.retry !== undefined) return; // after a failure, the next attempt waits for its timer
  const lent = state.entries.size - state.idle.length;
  const want = Math.max(state.size, Math.min(state.size + state.maxOverflow, lent + state.waiters.size));
  while (state.entries.size + state.creating < want) spawnCreate(state, ctx, false);
}

/** How long a Pid resource has to exit after `'shutdown'` before it is killed (poolboy's workers' shutdown). */
export const SHUTDOWN_MS = 5000;

/**
 * Stops a Pid resource as a supervisor stops a worker (poolboy dismisses one through its own):
 * `'shutdown'`, then `'kill'` past {@link SHUTDOWN_MS} if it is still alive (one that traps exits
 * gets the signal as a message, and may ignore it). The timer is the node's: it outlives the pool.
 */
function shutdown(node: Node, pid: Pid, ctx: Context<any> | undefined): void {
  (ctx ?? node).exit(pid, 'shutdown');
  const kernel = kernelOf(node);
  const timer = kernel.setTimer(SHUTDOWN_MS, () => {
    stopWatching?.();
    if (node.isAlive(pid)) node.exit(pid, 'kill');
  }, true);
  const stopWatching = kernel.onExit(pid, () => timer.cancel());
  if (stopWatching === undefined) timer.cancel(); // it is gone already
}

function runDestroy(state: Config & { counts?: Counters }, node: Node, resource: unknown, reason: string, ctx: Context<any> | undefined): void {
  const report = (ok: boolean, error?: unknown): void => {
    if (state.counts !== undefined) {
      if (ok) state.counts.destroyed++;
      else state.counts.destroyFailed++;
    }
    node.telemetry.execute('keel.resource_pool.destroyed', {}, { pool: state.name, resource, reason, ok, ...(error === undefined ? {} : { error }) });
  };
  let r: unknown;
  try {
    if (state.destroy !== undefined) r = state.destroy(resource);
    else if (isProcessResource(resource) && node.isAlive(resource)) shutdown(node, resource, ctx);
  } catch (e) {
    report(false, toError(e));
    return;
  }
  if (r === undefined) report(true);
  else Promise.resolve(r).then(() => report(true), (e: unknown) => report(false, toError(e)));
}

/** Removes an entry from the pool and destroys its resource. */
function discard(state: State, ctx: Context<any>, entry: Entry, reason: string): void {
  state.entries.delete(entry.key);
  const i = state.idle.indexOf(entry);
  if (i >= 0) state.idle.splice(i, 1);
  if (entry.watch !== undefined) {
    state.refs.delete(entry.watch.ref);
    unwatch(ctx, entry.watch);
    entry.watch = undefined;
  }
  dropHolder(state, ctx, entry);
  runDestroy(state, ctx.node, entry.resource, reason, ctx);
}

function dropHolder(state: State, ctx: Context<any>, entry: Entry): void {
  const holder = entry.holderPid;
  entry.lent = false;
  entry.holderPid = undefined;
  if (holder === undefined) return;
  const key = pidKey(holder);
  const holding = state.holders.get(key);
  if (holding === undefined || !holding.entries.delete(entry) || holding.entries.size > 0) return;
  state.holders.delete(key);
  state.refs.delete(holding.watch.ref);
  unwatch(ctx, holding.watch);
}

/** A waiter that can still take a resource: its call is waiting and its holder (if any) is alive. */
function live(ctx: Context<any>, w: Waiter): boolean {
  if (!callWaiting(w.from as From<never>)) return false;
  return w.holder === undefined || ctx.node.isAlive(w.holder);
}

function leaveLine(state: State, ctx: Context<any>, w: Waiter): void {
  state.waiters.delete(w.id);
  if (w.timer !== undefined) ctx.cancelTimer(w.timer);
  w.timer = undefined;
  if (w.holder === undefined) return;
  const key = pidKey(w.holder);
  const line = state.inLine.get(key);
  if (line === undefined || !line.ids.delete(w.id) || line.ids.size > 0) return;
  state.inLine.delete(key);
  state.refs.delete(line.watch.ref);
  unwatch(ctx, line.watch);
}

/** Watches a process that joins the line (once, however many places it holds); false when it is dead. */
function joinLine(state: State, ctx: Context<any>, w: Waiter, holder: Pid): boolean {
  const key = pidKey(holder);
  const line = state.inLine.get(key);
  if (line !== undefined) {
    line.ids.add(w.id);
    return true;
  }
  const watch = watchProcess(ctx, holder, 'resource_pool.waiter');
  if (watch === 'noproc') return false;
  state.inLine.set(key, { watch, ids: new Set([w.id]) });
  state.refs.set(watch.ref, { kind: 'waiter', key });
  return true;
}

/** The time waits and holds are measured in: the node's timers' (monotonic on the real clock). */
function timerNow(ctx: Context<any>): number {
  return kernelOf(ctx.node).timerNow();
}

/** Lends `entry` to `holder`; false (nothing lent) when the holder died meanwhile. */
function lend(state: State, ctx: Context<any>, entry: Entry, holder: Pid | undefined, from: From<unknown>, waitedMs: number): boolean {
  if (holder !== undefined) {
    // watched once however many resources it holds (as its places in line): its death returns them all
    const key = pidKey(holder);
    const holding = state.holders.get(key);
    if (holding !== undefined) holding.entries.add(entry);
    else {
      const watch = watchProcess(ctx, holder, 'resource_pool.holder');
      if (watch === 'noproc') return false;
      state.holders.set(key, { watch, entries: new Set([entry]) });
      state.refs.set(watch.ref, { kind: 'holder', key });
    }
  }
  entry.lent = true;
  entry.holderPid = holder;
  entry.lentAt = timerNow(ctx);
  state.counts.checkouts++;
  emit(ctx, state, 'checkout', { waitedMs }, { resource: entry.resource, holder });
  GenServer.reply(from, entry.resource);
  return true;
}

/** Counts and reports a wait that timed out (the waiter has left the line). */
function timedOut(state: State, ctx: Context<any>, w: Waiter): void {
  state.counts.timeouts++;
  emit(ctx, state, 'timeout', { waitedMs: timerNow(ctx) - w.since, waiting: state.waiters.size }, { holder: w.holder });
}

/** Gives an entry no longer lent to the first live waiter, else keeps it idle (or destroys it, above `size`). */
function release(state: State, ctx: Context<any>, entry: Entry): CheckinOutcome {
  for (const w of state.waiters.values()) {
    leaveLine(state, ctx, w);
    if (!live(ctx, w)) {
      // a live caller whose call ended gave up waiting (its call's own timeout fired before the
      // pool's, the pool being suspended or behind): a timeout, counted as the pool's own would be
      if (w.holder === undefined || ctx.node.isAlive(w.holder)) timedOut(state, ctx, w);
      continue;
    }
    if (lend(state, ctx, entry, w.holder, w.from, timerNow(ctx) - w.since)) return 'returned';
  }
  if (state.entries.size > state.size) {
    discard(state, ctx, entry, 'overflow');
    return 'destroyed';
  }
  state.idle.push(entry);
  return 'returned';
}

function added(state: State, ctx: Context<any>, resource: unknown): void {
  const key = keyOf(resource);
  const refuse = (why: string): void => {
    const error = new InvalidArgumentError('create()', why, resource);
    state.counts.createFailed++;
    emit(ctx, state, 'create_failed', {}, { error });
    countFailure(state, ctx, error);
    scheduleRetry(state, ctx);
  };
  if (resource === undefined || resource === null) return refuse(NOT_NULL);
  if (state.entries.has(key) || state.retired.has(key)) return refuse('a resource not already in the pool');
  const entry: Entry = { resource, key, watch: undefined, lent: false, holderPid: undefined, createdAt: timerNow(ctx), lentAt: 0 };
  if (isProcessResource(resource)) {
    const watch = watchProcess(ctx, resource, 'resource_pool.resource');
    if (watch === 'noproc') return refuse('a live process');
    entry.watch = watch;
    state.refs.set(watch.ref, { kind: 'resource', entry });
  }
  state.entries.set(key, entry);
  state.counts.created++;
  emit(ctx, state, 'created', { resources: state.entries.size }, { resource });
  release(state, ctx, entry);
}

function failedCreation(state: State, ctx: Context<any>, error: unknown, initial: boolean): void {
  state.counts.createFailed++;
  emit(ctx, state, 'create_failed', {}, { error });
  countFailure(state, ctx, error);
  scheduleRetry(state, ctx);
  settledInitial(state, initial);
}

/**
 * Counts a failure (a failed creation, or the death of a `Pid` resource the pool did not cause)
 * toward `createIntensity`, as a Supervisor counts a restart: one younger than `withinMs` counts,
 * and past `maxFailures` the pool is to exit (`state.crashLoop`, reported once; the handler ends with it).
 */
function countFailure(state: State, ctx: Context<any>, error: unknown): void {
  const intensity = state.createIntensity;
  if (intensity === undefined || state.crashLoop !== undefined) return;
  const { maxFailures, withinMs } = intensity;
  const failures = recordRestart(state.failureTimes, timerNow(ctx), withinMs);
  if (failures <= maxFailures) return;
  state.crashLoop = new PoolCrashLoopError(state.name, failures, maxFailures, withinMs, error);
  emit(ctx, state, 'crash_loop', { failures, maxFailures, withinMs }, { error });
  kernelOf(ctx.node).log('error', `${state.crashLoop.message} (${String(ctx.self)} exits)`);
}

function scheduleRetry(state: State, ctx: Context<any>): void {
  if (state.retry === undefined) state.retry = ctx.sendAfter(ctx.self, new RetryCreate(), state.createRetryMs);
}

/** The pool hears a creation's end (its answer or its timeout): false when it had already ended the other way. */
function settle(state: State, ctx: Context<any>, job: Job): boolean {
  if (job.state !== 'pending') return false;
  job.state = 'settled';
  if (job.timer !== undefined) ctx.cancelTimer(job.timer);
  job.timer = undefined;
  state.creating--;
  state.inFlight.delete(job); // the pool is done with it (answered, or given up on and told so)
  return true;
}

function settledInitial(state: State, initial: boolean): void {
  if (!initial || --state.initialPending > 0) return;
  for (const f of state.readyWaiters.splice(0)) GenServer.reply(f, 'ok');
}

function statsOf(state: State): ResourcePoolStats {
  const resources = state.entries.size;
  return {
    size: state.size,
    maxOverflow: state.maxOverflow,
    resources,
    idle: state.idle.length,
    checkedOut: resources - state.idle.length,
    overflow: Math.max(0, resources - state.size),
    waiting: state.waiters.size,
    creating: state.creating,
    ...state.counts,
  };
}

/**
 * A call's fields, each read once before anything changes (a getter, on the request or its
 * prototype, runs here and nowhere else); undefined when reading one threw.
 */
function readCall(raw: Calls['request']): Calls['request'] | undefined {
  try {
    const r = raw as unknown as Record<string, unknown>;
    const type = r.type;
    if (type === 'checkout') return { type, timeout: r.timeout as number };
    if (type === 'checkin') return { type, resource: r.resource, broken: r.broken as boolean };
    return { type } as Calls['request'];
  } catch {
    return undefined;
  }
}

/** @internal The pool process (see ResourcePool.ts). */
export const poolSpec: GenServerSpec<State, Calls, never, Config> = keelServer({
  init(config, ctx) {
    const state: State = {
      ...config,
      node: ctx.node,
      entries: new Map(),
      idle: [],
      retired: new Map(),
      refs: new Map(),
      holders: new Map(),
      arrived: new Set(),
      failing: new Set(),
      inFlight: new Set(),
      inLine: new Map(),
      waiters: new Map(),
      nextWaiter: 0,
      creating: 0,
      initialPending: config.size,
      readyWaiters: [],
      retry: undefined,
      failureTimes: [],
      crashLoop: undefined,
      counts: { created: 0, createFailed: 0, destroyed: 0, destroyFailed: 0, checkouts: 0, checkins: 0, timeouts: 0, holderDown: 0, resourceDown: 0, badCheckins: 0 },
    };
    // the pool owns its resources: they go with it whatever ends it, lent ones too (as poolboy's workers do)
    ctx.signal.addEventListener('abort', () => {
      for (const entry of state.entries.values()) runDestroy(state, state.node, entry.resource, 'pool_stopped', undefined);
      state.entries.clear();
      for (const made of state.arrived) runDestroy(state, state.node, made.resource, 'pool_stopped', undefined);
      state.arrived.clear();
      for (const failure of state.failing) lostCreation(state, state.node, failure.error);
      state.failing.clear();
      // creations still in flight are told to stop, with the pool's exit reason
      for (const job of state.inFlight) job.controller.abort(ctx.signal.reason);
      state.inFlight.clear();
    }, { once: true });
    for (let i = 0; i < config.size; i++) spawnCreate(state, ctx, true);
    return state;
  },

  handleCall(raw, from, state, ctx) {
    const request = readCall(raw);
    if (request === undefined) return { reply: new InvalidArgumentError('request', "{ type: 'checkout' | 'checkin' | 'stats' } whose fields can be read", raw) as never, state };
    switch (request.type) {
      case 'checkout': {
        // the caller gave up before the pool took its call (it timed out or was aborted in the
        // mailbox, or its caller died): a resource lent now would be lent to nobody, for ever
        if (!callWaiting(from as From<never>)) return { noreply: true, state };
        // the holder is the process the call comes from (as OTP's From names it), never a field of
        // the request: a call cannot make the pool watch, or lend to, another process
        const holder = callerOf(from as From<never>);
        const { timeout } = request;
        if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) {
          return { reply: new InvalidArgumentError('request', '{ type: checkout, timeout: ms >= 0 }', request), state };
        }
        if (state.waiters.size === 0 && state.idle.length > 0) {
          const fifo = state.strategy === 'fifo';
          const entry = (fifo ? state.idle.shift() : state.idle.pop())!;
          if (lend(state, ctx, entry, holder, from, 0)) return { noreply: true, state };
          if (fifo) state.idle.unshift(entry);
          else state.idle.push(entry);
          return { reply: new InvalidArgumentError('caller', 'a live process', holder), state };
        }
        const w: Waiter = { id: ++state.nextWaiter, from, holder, timeout, since: timerNow(ctx), timer: undefined };
        if (timeout === 0) {
          state.counts.timeouts++;
          emit(ctx, state, 'timeout', { waitedMs: 0, waiting: state.waiters.size }, { holder });
          return { reply: new PoolTimeoutError(state.name, 0), state };
        }
        // watched while in line: a caller that dies leaves it at once, not when its turn comes
        if (holder !== undefined && !joinLine(state, ctx, w, holder)) return { reply: new InvalidArgumentError('caller', 'a live process', holder), state };
        if (timeout !== Infinity) w.timer = ctx.sendAfter(ctx.self, new WaiterTimeout(w.id), timeout);
        state.waiters.set(w.id, w);
        fill(state, ctx);
        return { noreply: true, state };
      }
      case 'checkin': {
        const key = keyOf(request.resource);
        const entry = state.entries.get(key);
        // who checks it in: the process the call comes from (a field of the request could name anyone)
        const by = callerOf(from as From<never>);
        // the one lent (or, a Pid resource that died while out, the one retired), and the process it is lent to
        const out = entry !== undefined && entry.lent ? entry : state.retired.get(key);
        if (out !== undefined && out.holderPid !== undefined && !(by !== undefined && pidKey(by) === pidKey(out.holderPid))) {
          // lent to a process: only that process gives it back (a stale checkin must not free what another holds)
          state.counts.badCheckins++;
          emit(ctx, state, 'checkin', { heldMs: 0 }, { resource: request.resource, outcome: 'not_checked_out' });
          const hint = `it is held by ${String(out.holderPid)}: check it in from that process (options.caller)`;
          return { reply: new InvalidArgumentError('resource', 'a resource checked out by the caller', request.resource, hint) as never, state };
        }
        if (entry !== undefined && entry.lent) {
          state.counts.checkins++;
          dropHolder(state, ctx, entry);
          let outcome: CheckinOutcome;
          if (request.broken === true) {
            discard(state, ctx, entry, 'broken');
            fill(state, ctx);
            outcome = 'destroyed';
          } else {
            outcome = release(state, ctx, entry);
          }
          emit(ctx, state, 'checkin', { heldMs: timerNow(ctx) - entry.lentAt }, { resource: entry.resource, outcome });
          return { reply: outcome, state };
        }
        const gone = state.retired.get(key);
        if (gone !== undefined) {
          state.retired.delete(key);
          dropHolder(state, ctx, gone);
          state.counts.checkins++;
          emit(ctx, state, 'checkin', { heldMs: timerNow(ctx) - gone.lentAt }, { resource: gone.resource, outcome: 'retired' });
          return { reply: 'retired', state };
        }
        state.counts.badCheckins++;
        emit(ctx, state, 'checkin', { heldMs: 0 }, { resource: request.resource, outcome: 'not_checked_out' });
        return { reply: new InvalidArgumentError('resource', 'a resource checked out of this pool', request.resource, entry === undefined ? 'the pool never lent it (or destroyed it)' : 'it is idle: checked in already') as never, state };
      }
      case 'stats':
        return { reply: statsOf(state), state };
      case 'ready':
        if (state.initialPending <= 0) return { reply: 'ok', state };
        state.readyWaiters.push(from as From<'ok'>);
        return { noreply: true, state };
      default:
        return { reply: new InvalidArgumentError('request', "{ type: 'checkout' | 'checkin' | 'stats' }", raw) as never, state };
    }
  },

  handleInfo(message, state, ctx) {
    handleInfo(message, state, ctx);
    const crashLoop = state.crashLoop;
    if (crashLoop === undefined) return state;
    // past createIntensity: the pool exits for its supervisor to decide (as poolboy, whose worker
    // cannot start). Its first creations have settled (the last one failed), so a start waiting for
    // them resolves; what it holds goes as at a stop (the abort listener), callers in line get ERR_CALL_EXIT
    for (const f of state.readyWaiters.splice(0)) GenServer.reply(f, 'ok');
    return { stop: crashLoop, state };
  },

}, 'a resource pool (use its handle)', 'bare');
markComponent(poolSpec, 'resource_pool', observePool); // an observer finds it, and reads it through the `observe` system call

/** The pool's messages (its own and the monitors' Downs); a failure past `createIntensity` sets `state.crashLoop`. */
function handleInfo(message: unknown, state: State, ctx: Context<any>): void {
  if (isInstance(message, Created)) {
    state.arrived.delete(message);
    if (!settle(state, ctx, message.job)) {
      lateAnswer(state, ctx.node, message.resource, ctx); // it timed out first: not kept
      return;
    }
    added(state, ctx, message.resource);
    settledInitial(state, message.job.initial);
    return;
  }
  if (isInstance(message, CreateFailed)) {
    state.failing.delete(message);
    if (!settle(state, ctx, message.job)) return; // counted as failed when it timed out
    failedCreation(state, ctx, message.error, message.job.initial);
    return;
  }
  if (isInstance(message, CreateTimedOut)) {
    const job = message.job;
    if (job.state !== 'pending') return; // it answered first
    job.timer = undefined; // it fired
    settle(state, ctx, job);
    job.state = 'timed_out'; // a late answer is destroyed
    const error = new PoolTimeoutError(state.name, state.createTimeoutMs, 'create');
    job.controller.abort(error); // told to stop its work
    failedCreation(state, ctx, error, job.initial);
    return;
  }
  if (isInstance(message, RetryCreate)) {
    state.retry = undefined;
    fill(state, ctx);
    return;
  }
  if (isInstance(message, WaiterTimeout)) {
    const w = state.waiters.get(message.id);
    if (w === undefined) return; // served meanwhile
    w.timer = undefined; // it fired
    leaveLine(state, ctx, w);
    timedOut(state, ctx, w);
    GenServer.reply(w.from, new PoolTimeoutError(state.name, w.timeout));
    return;
  }
  if (isDown(message)) {
    const watched = state.refs.get(message.ref);
    if (watched === undefined) return; // a stale Down
    state.refs.delete(message.ref);
    if (watched.kind === 'waiter') {
      // a caller that died in line: all its places go now (its monitor went with its Down)
      const line = state.inLine.get(watched.key);
      state.inLine.delete(watched.key);
      for (const id of line?.ids ?? []) {
        const w = state.waiters.get(id);
        if (w !== undefined) leaveLine(state, ctx, w);
      }
      return;
    }
    if (watched.kind === 'holder') {
      // a holder died: everything it holds comes back, in the order it was lent (its monitor went with its Down)
      const holding = state.holders.get(watched.key);
      state.holders.delete(watched.key);
      for (const entry of holding?.entries ?? []) {
        state.counts.holderDown++;
        emit(ctx, state, 'holder_down', { heldMs: timerNow(ctx) - entry.lentAt }, { holder: message.pid, resource: entry.resource, reason: message.reason });
        entry.holderPid = undefined;
        if (state.retired.delete(entry.key)) continue; // it died too: nothing to return
        entry.lent = false;
        release(state, ctx, entry);
      }
      return;
    }
    // the resource died
    const entry = watched.entry;
    entry.watch = undefined;
    state.counts.resourceDown++;
    emit(ctx, state, 'resource_down', {}, { resource: entry.resource, reason: message.reason, lent: entry.lent });
    state.entries.delete(entry.key);
    const i = state.idle.indexOf(entry);
    if (i >= 0) state.idle.splice(i, 1);
    if (entry.lent) state.retired.set(entry.key, entry); // its holder's checkin is still accepted
    // every death counts toward createIntensity, whatever its age or reason, as a Supervisor counts
    // every restart of a permanent child: the pool caused none of these (what it destroys it stops
    // watching first), and only deaths that come faster than the window allows end it, so a worker
    // dying at birth trips it even when no death is young (createRetryMs 0)
    countFailure(state, ctx, message.reason);
    // one that died within createRetryMs of its creation (a worker crashing at start) is replaced
    // after the retry delay, as a failed creation is: a crash loop does not make the pool spin
    if (timerNow(ctx) - entry.createdAt < state.createRetryMs) scheduleRetry(state, ctx);
    if (state.crashLoop === undefined) fill(state, ctx);
  }
}
