import { InvalidArgumentError, StartError, toError } from '../errors.js';
import { isProcess, kernelOf } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { formatReason, isExit, type ExitReason } from '../runtime/messages.js';
import type { Name, Pid, Target } from '../runtime/Pid.js';
import type { BackoffOptions } from '../backoff.js';
import type { Context, Node } from '../runtime/types.js';
import { GenServer, type GenServerSpec } from './GenServer.js';
import { type Child, type ChildSpec, readOnce, recordRestart, shouldRestart, specOf, startChild, stopChild, toChild, toChildren, unexpectedRequest } from './internal/children.js';
import { InitStop } from './internal/initStop.js';
import { keelServer, unexpectedInfo } from './internal/keelServer.js';
import { markBehaviour } from './internal/lifecycle.js';

export type { ChildSpec } from './internal/children.js';

export interface SupervisorOptions {
  /** Default `'one_for_one'`. */
  strategy?: 'one_for_one' | 'one_for_all' | 'rest_for_one';
  /** More than `maxRestarts` restarts within `withinMs` (on the node's clock) and the supervisor gives up: it stops its children and exits. Defaults 3 and 5000. */
  maxRestarts?: number;
  withinMs?: number;
  /** Optional delay before each restart: exponential from `initialMs` (default 10) by `factor` (2) up to `maxMs` (5000), full jitter by default. */
  backoff?: BackoffOptions;
  /** Registers the supervisor under this unique name (a string or a `Name`). */
  name?: string | Name;
  /**
   * When the supervisor ends itself because of its `significant` children (OTP 24's `auto_shutdown`):
   * `'never'` (default; no child may then be significant), `'any_significant'` (as soon as one
   * significant child terminates by itself and is not restarted), `'all_significant'` (once none
   * is left running). It then stops its other children in reverse start order and exits with
   * `'shutdown'`. A child stopped by the supervisor (`terminateChild`, a sibling's restart) does not count.
   */
  autoShutdown?: 'never' | 'any_significant' | 'all_significant';
}

/** One row of `Supervisor.whichChildren`. */
export interface ChildInfo {
  readonly id: string;
  /** The running child, or `'restarting'` (waiting for its backoff), or undefined (stopped). */
  readonly pid: Pid | 'restarting' | undefined;
  readonly type: 'worker' | 'supervisor';
  readonly restart: 'permanent' | 'transient' | 'temporary';
  readonly restarts: number;
  /** OTP's `Modules`: the spec's `modules`, by default the name of a named `start` function, else `[]`. */
  readonly modules: readonly string[] | 'dynamic';
  readonly significant: boolean;
}

/** What `Supervisor.status` answers: the supervisor's settings, its restarts, its children. */
export interface SupervisorStatus {
  readonly strategy: 'one_for_one' | 'one_for_all' | 'rest_for_one';
  /** OTP's intensity and period: more than `maxRestarts` restarts within `withinMs` and it gives up. */
  readonly intensity: { readonly maxRestarts: number; readonly periodMs: number };
  /** Restarts counted in the current window (it gives up past `maxRestarts`). */
  readonly restartsInWindow: number;
  /** The last {@link RESTART_HISTORY} restarts it decided, oldest first: when (node clock), which child, why (the exit reason as text). */
  readonly restarts: readonly { readonly at: number; readonly child: string; readonly reason: string }[];
  readonly children: readonly ChildInfo[];
}

/** How many restarts `Supervisor.status` remembers. */
export const RESTART_HISTORY = 20;

type Request =
  | { op: 'which' }
  | { op: 'status' }
  | { op: 'count' }
  | { op: 'getspec'; id: string }
  | { op: 'start'; spec: ChildSpec }
  | { op: 'terminate'; id: string }
  | { op: 'restart'; id: string }
  | { op: 'delete'; id: string };

class RetryRestart {
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }
}

interface State {
  /** The supervisor's own context (terminate gets no context, and stops the children with it). */
  readonly ctx: Context<any>;
  readonly children: Child[];
  readonly options: Required<Pick<SupervisorOptions, 'strategy' | 'maxRestarts' | 'withinMs' | 'autoShutdown'>> & Pick<SupervisorOptions, 'backoff'>;
  readonly restartTimes: number[];
  /** The last restarts decided (see {@link SupervisorStatus.restarts}). */
  readonly history: { at: number; child: string; reason: string }[];
  /**
   * one_for_all / rest_for_one: the retry last scheduled for the children waiting together. An
   * earlier one is stale: a later crash stopped more of them (rest_for_one) and its own backoff decides.
   */
  groupRetry: RetryRestart | undefined;
  /**
   * one_for_one: the retry last scheduled for each child. An earlier one is stale: the restart it was
   * for ended meanwhile (terminateChild, restartChild), and the child's later crash waits for its own backoff.
   */
  readonly retries: WeakMap<Child, RetryRestart>;
}

/** Raised inside the supervisor when it exceeds its restart intensity or shuts itself down automatically; it exits with `'shutdown'`. */
class GiveUp {
  readonly reason: ExitReason;
  /** The `keel.supervisor.shutdown` event's reason. */
  readonly why: 'max_restart_intensity' | 'auto_shutdown';
  constructor(reason: ExitReason, why: GiveUp['why']) {
    this.reason = reason;
    this.why = why;
  }
}

function event(ctx: Context<any>, name: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  ctx.node.telemetry.execute(`keel.supervisor.${name}`, measurements, { supervisor: ctx.self, ...metadata });
}

/** Starts the children in order; at the first whose start fails, stops those started and answers how it failed. */
async function startAll(ctx: Context<any>, children: Child[]): Promise<InitStop | undefined> {
  for (const child of children) {
    let pid: Pid;
    try {
      pid = await startChild(ctx, child);
    } catch (e) {
      await stopAll(ctx, children);
      return startFailure(ctx, child, e);
    }
    event(ctx, 'child_started', {}, { id: child.id, pid });
  }
  return undefined;
}

/**
 * The exit reason of a supervisor whose child failed to start at its own start: OTP's
 * `{shutdown, {failed_to_start_child, Id, Reason}}`. A clean exit: no crash report.
 */
export interface FailedToStartChild {
  readonly shutdown: { readonly failed_to_start_child: string; readonly reason: unknown };
}

/**
 * How the supervisor fails its start after `child`'s start failed with `error` (the child's
 * StartError): it exits with a {@link FailedToStartChild} and its start rejects with a StartError
 * saying so, after one `keel.supervisor.start_failed` event and one error line in the log (OTP's
 * supervisor report), none with a stack. The reason is what the child's start failed with; a
 * behaviour's StartError (a child supervisor's, a GenServer's) gives its own reason, as OTP's
 * `{error, Reason}`, so a nested supervisor's reason holds the ids down to the child that failed.
 */
function startFailure(ctx: Context<any>, child: Child, error: unknown): InitStop {
  const childError = isInstance(error, StartError) ? error : new StartError(`child '${child.id}'`, error, formatReason(toError(error)));
  const thrown = childError.reason;
  const inner = isInstance(thrown, StartError) ? thrown : undefined;
  const original = inner === undefined ? thrown : inner.reason;
  const reason: FailedToStartChild = { shutdown: { failed_to_start_child: child.id, reason: original } };
  event(ctx, 'start_failed', {}, { id: child.id, reason: original });
  kernelOf(ctx.node).log('error', `supervisor ${String(ctx.self)} failed to start: ${childError.message}`);
  const childPath = [child.id, ...(inner?.childPath ?? [])];
  return new InitStop(reason, new StartError('Supervisor', reason, childError.message, { childPath }));
}

async function stopAll(ctx: Context<any>, children: readonly Child[]): Promise<void> {
  for (const child of [...children].reverse()) {
    if (child.pid === undefined) {
      child.status = 'stopped';
      continue;
    }
    const pid = child.pid;
    const reason = await stopChild(ctx, child);
    event(ctx, 'child_terminated', {}, { id: child.id, pid, reason: reason ?? 'noproc' });
  }
}

/** Records a restart; false when the intensity is exceeded. */
function allowRestart(ctx: Context<any>, state: State): boolean {
  const { maxRestarts, withinMs } = state.options;
  // on the time the node's timers count in: a wall clock stepped forward does not forget the restarts
  return recordRestart(state.restartTimes, kernelOf(ctx.node).timerNow(), withinMs) <= maxRestarts;
}

function backoffDelay(ctx: Context<any>, backoff: BackoffOptions, attempt: number): number {
  const initial = backoff.initialMs ?? 10;
  const factor = backoff.factor ?? 2;
  const max = backoff.maxMs ?? 5000;
  // initialMs 0 is no delay however large factor^n grows (0 × Infinity would be NaN, a delay the timer refuses)
  const cap = initial === 0 ? 0 : Math.min(max, initial * factor ** attempt);
  return backoff.jitter === 'none' ? cap : ctx.node.random() * cap;
}

/** Restarts `child` (and, per strategy, its siblings) after it exited with `reason`. */
async function onChildExit(ctx: Context<any>, state: State, child: Child, reason: ExitReason): Promise<void> {
  const { children, options } = state;
  const pid = child.pid;
  child.pid = undefined;
  child.proc = undefined;
  child.status = 'stopped';
  if (!shouldRestart(child, reason)) {
    event(ctx, 'child_terminated', {}, { id: child.id, pid, reason });
    if (child.restart === 'temporary') children.splice(children.indexOf(child), 1);
    if (autoShutdown(state, child)) throw new GiveUp('shutdown', 'auto_shutdown');
    return;
  }
  if (!allowRestart(ctx, state)) throw new GiveUp('shutdown', 'max_restart_intensity');
  state.history.push({ at: ctx.node.clock.now(), child: child.id, reason: formatReason(reason) });
  if (state.history.length > RESTART_HISTORY) state.history.shift();
  const i = children.indexOf(child);
  const stopped = options.strategy === 'one_for_one' ? [child] : options.strategy === 'one_for_all' ? [...children] : children.slice(i);
  await stopAll(ctx, stopped.filter((c) => c !== child));
  // as in OTP, a temporary sibling stopped by the strategy is not restarted: its spec goes
  for (const c of stopped) if (c !== child && c.restart === 'temporary') children.splice(children.indexOf(c), 1);
  const affected = stopped.filter((c) => c === child || c.restart !== 'temporary');
  for (const c of affected) {
    c.restarts++;
    c.status = 'restarting';
  }
  if (options.backoff !== undefined) {
    ctx.sendAfter(ctx.self, retry(state, child), backoffDelay(ctx, options.backoff, recentRestarts(ctx, state, child)));
    return;
  }
  await restartAll(ctx, state, affected, child, reason);
}

/** A retry of `child`'s restart; under one_for_all / rest_for_one the group's latest. */
function retry(state: State, child: Child): RetryRestart {
  const message = new RetryRestart(child.id);
  if (state.options.strategy !== 'one_for_one') state.groupRetry = message;
  else state.retries.set(child, message);
  return message;
}

/**
 * True when `child`, significant, has just terminated by itself (not restarted) and the supervisor's
 * `autoShutdown` says it is to end: any such child, or the last significant one (as OTP, one whose
 * restart is pending still counts as there, since it will run again).
 */
function autoShutdown(state: State, child: Child): boolean {
  const mode = state.options.autoShutdown;
  if (!child.significant || mode === 'never') return false;
  if (mode === 'any_significant') return true;
  return !state.children.some((c) => c !== child && c.significant && (c.pid !== undefined || c.status === 'restarting'));
}

/**
 * Records a restart of `child` and returns how many came before it within `withinMs`: a child that
 * ran well for that long starts its backoff again from `initialMs` (its lifetime count would keep
 * it at `maxMs` for good).
 */
function recentRestarts(ctx: Context<any>, state: State, child: Child): number {
  return recordRestart(child.recentRestarts, kernelOf(ctx.node).timerNow(), state.options.withinMs) - 1;
}

/** Starts the affected children again in start order; a failed start counts as a restart and is retried. */
async function restartAll(ctx: Context<any>, state: State, affected: Child[], cause: Pick<Child, 'id'>, reason: ExitReason | 'retry'): Promise<void> {
  for (const c of state.children) {
    if (!affected.includes(c) || c.status !== 'restarting') continue;
    try {
      const pid = await startChild(ctx, c);
      event(ctx, 'child_restarted', { restarts: c.restarts }, { id: c.id, pid, reason: c === cause ? reason : 'sibling', cause: cause.id });
    } catch (e) {
      c.status = 'restarting';
      event(ctx, 'child_restart_failed', { restarts: c.restarts }, { id: c.id, error: e });
      if (!allowRestart(ctx, state)) throw new GiveUp('shutdown', 'max_restart_intensity');
      c.restarts++;
      // tried again at once, as OTP's try_again_restart; with a backoff, after it
      const backoff = state.options.backoff;
      if (backoff === undefined) ctx.send(ctx.self, retry(state, c));
      else ctx.sendAfter(ctx.self, retry(state, c), backoffDelay(ctx, backoff, recentRestarts(ctx, state, c)));
      return;
    }
  }
}

function childRows(state: State): ChildInfo[] {
  return state.children.map<ChildInfo>((c) => ({
    id: c.id,
    pid: c.status === 'restarting' ? 'restarting' : c.pid,
    type: c.type,
    restart: c.restart,
    restarts: c.restarts,
    modules: c.modules,
    significant: c.significant,
  }));
}

function findChild(state: State, id: string): Child | undefined {
  return state.children.find((c) => c.id === id);
}

const supervisorSpec: GenServerSpec<State, { request: Request; reply: unknown }, never, { children: Child[]; options: State['options'] }> = keelServer({
  async init({ children, options }, ctx) {
    ctx.trapExits();
    const state: State = { ctx, children, options, restartTimes: [], history: [], groupRetry: undefined, retries: new WeakMap() };
    const failure = await startAll(ctx, children);
    if (failure !== undefined) throw failure;
    return state;
  },

  async handleCall(request, _from, state, ctx) {
    switch (request.op) {
      case 'which':
        return { reply: childRows(state), state };
      case 'status': {
        const { strategy, maxRestarts, withinMs } = state.options;
        const now = kernelOf(ctx.node).timerNow(); // the restart times' own time
        const status: SupervisorStatus = {
          strategy,
          intensity: { maxRestarts, periodMs: withinMs },
          restartsInWindow: state.restartTimes.filter((t) => now - t < withinMs).length,
          restarts: state.history.map((h) => ({ ...h })),
          children: childRows(state),
        };
        return { reply: status, state };
      }
      case 'count': {
        const active = state.children.filter((c) => c.pid !== undefined).length;
        const supervisors = state.children.filter((c) => c.type === 'supervisor').length;
        return { reply: { specs: state.children.length, active, supervisors, workers: state.children.length - supervisors }, state };
      }
      case 'getspec': {
        const child = findChild(state, request.id);
        return { reply: child === undefined ? { error: 'not_found' } : specOf(child), state };
      }
      case 'start': {
        let child: Child;
        try {
          child = toChild(request.spec, 'spec');
          checkSignificance(child, state.options.autoShutdown, 'spec');
        } catch (e) {
          return { reply: { error: e }, state };
        }
        if (findChild(state, child.id) !== undefined) {
          return { reply: { error: new InvalidArgumentError('spec.id', 'an id not already used by this supervisor', child.id) }, state };
        }
        try {
          const pid = await startChild(ctx, child);
          state.children.push(child);
          event(ctx, 'child_started', {}, { id: child.id, pid });
          return { reply: { pid }, state };
        } catch (e) {
          return { reply: { error: e }, state };
        }
      }
      case 'terminate': {
        const child = findChild(state, request.id);
        if (child === undefined) return { reply: { error: 'not_found' }, state };
        const pid = child.pid;
        const reason = await stopChild(ctx, child);
        if (pid !== undefined) event(ctx, 'child_terminated', {}, { id: child.id, pid, reason: reason ?? 'noproc' });
        if (child.restart === 'temporary') state.children.splice(state.children.indexOf(child), 1);
        return { reply: 'ok', state };
      }
      case 'restart': {
        const child = findChild(state, request.id);
        if (child === undefined) return { reply: { error: 'not_found' }, state };
        if (child.pid !== undefined) return { reply: { error: 'running' }, state };
        if (child.status === 'restarting') return { reply: { error: 'restarting' }, state };
        try {
          const pid = await startChild(ctx, child);
          event(ctx, 'child_started', {}, { id: child.id, pid });
          return { reply: { pid }, state };
        } catch (e) {
          return { reply: { error: e }, state };
        }
      }
      case 'delete': {
        const child = findChild(state, request.id);
        if (child === undefined) return { reply: { error: 'not_found' }, state };
        if (child.pid !== undefined) return { reply: { error: 'running' }, state };
        if (child.status === 'restarting') return { reply: { error: 'restarting' }, state };
        state.children.splice(state.children.indexOf(child), 1);
        return { reply: 'ok', state };
      }
      default:
        // not one of the supervisor's own requests (a stray GenServer.call): an error reply, not a crash
        return { reply: { error: unexpectedRequest(request) }, state };
    }
  },

  async handleInfo(message, state, ctx) {
    try {
      if (isExit(message)) {
        const child = state.children.find((c) => c.pid !== undefined && c.pid === message.from);
        if (child !== undefined) await onChildExit(ctx, state, child, message.reason);
      } else if (isInstance(message, RetryRestart)) {
        if (state.options.strategy !== 'one_for_one') {
          if (message !== state.groupRetry) return state; // stale: a later crash's retry restarts the group
          state.groupRetry = undefined;
        }
        const child = findChild(state, message.id);
        // one_for_one: that child alone (another one restarting waits for its own backoff); the
        // other strategies stopped their children together, and restart them together, even when
        // the child whose crash began it was terminated (or deleted) meanwhile: its siblings would
        // otherwise stay 'restarting' for good, which restartChild and deleteChild refuse
        const affected =
          state.options.strategy === 'one_for_one'
            ? child !== undefined && child.status === 'restarting' && state.retries.get(child) === message ? [child] : []
            : state.children.filter((c) => c.status === 'restarting');
        if (affected.length > 0) await restartAll(ctx, state, affected, child ?? { id: message.id }, 'retry');
      } else {
        unexpectedInfo(ctx, message);
      }
    } catch (e) {
      if (!isInstance(e, GiveUp)) throw e;
      event(ctx, 'shutdown', {}, { reason: e.why });
      await stopAll(ctx, state.children);
      ctx.exit(e.reason);
    }
    return state;
  },

  async terminate(reason, state) {
    event(state.ctx, 'shutdown', {}, { reason });
    await stopAll(state.ctx, state.children);
  },
}, 'a supervisor (use the Supervisor functions)');
markBehaviour(supervisorSpec, 'supervisor'); // its lifecycle events say what it is

function options(given: SupervisorOptions): State['options'] & { name?: string | Name } {
  if (typeof given !== 'object' || given === null) throw new InvalidArgumentError('options', 'a SupervisorOptions object', given);
  // each option read once (a getter is not asked again for what is validated and kept)
  const opts = readOnce(given, ['strategy', 'maxRestarts', 'withinMs', 'backoff', 'name', 'autoShutdown'], 'options') as SupervisorOptions;
  const strategy = opts.strategy ?? 'one_for_one';
  if (!['one_for_one', 'one_for_all', 'rest_for_one'].includes(strategy)) {
    throw new InvalidArgumentError('options.strategy', "'one_for_one' | 'one_for_all' | 'rest_for_one'", strategy);
  }
  const maxRestarts = opts.maxRestarts ?? 3;
  if (!Number.isSafeInteger(maxRestarts) || maxRestarts < 0) throw new InvalidArgumentError('options.maxRestarts', 'an integer >= 0', maxRestarts);
  const withinMs = opts.withinMs ?? 5000;
  if (typeof withinMs !== 'number' || !Number.isFinite(withinMs) || withinMs <= 0) throw new InvalidArgumentError('options.withinMs', 'a positive number of ms', withinMs);
  // a snapshot of what was validated: the options object is the user's, and read no more after this
  const backoff = opts.backoff === undefined ? undefined : validateBackoff(opts.backoff);
  const autoShutdown = opts.autoShutdown ?? 'never';
  if (!['never', 'any_significant', 'all_significant'].includes(autoShutdown)) {
    throw new InvalidArgumentError('options.autoShutdown', "'never' | 'any_significant' | 'all_significant'", autoShutdown);
  }
  return { strategy, maxRestarts, withinMs, autoShutdown, ...(backoff === undefined ? {} : { backoff }), ...(opts.name === undefined ? {} : { name: opts.name }) };
}

/** As OTP: with `autoShutdown: 'never'` a significant child is refused (it could end nothing). */
function checkSignificance(child: Child, autoShutdown: State['options']['autoShutdown'], where: string): void {
  if (child.significant && autoShutdown === 'never') {
    throw new InvalidArgumentError(
      `${where}.significant`,
      "false under a supervisor whose autoShutdown is 'never' (give the supervisor autoShutdown: 'any_significant' or 'all_significant')",
      true,
      `in the spec of child '${child.id}'`,
    );
  }
}

/** The children and options of a supervisor to start, validated together. */
function startArg(children: ChildSpec[], opts: SupervisorOptions): { arg: { children: Child[]; options: State['options'] }; name: { name?: string | Name } } {
  const { name, ...options_ } = options(opts);
  const list = toChildren(children);
  list.forEach((c, i) => checkSignificance(c, options_.autoShutdown, `children[${i}]`));
  return { arg: { children: list, options: options_ }, name: name === undefined ? {} : { name } };
}

/** Validates a backoff and returns a frozen copy of what it read (each field read once). */
function validateBackoff(given: BackoffOptions): BackoffOptions {
  if (typeof given !== 'object' || given === null) throw new InvalidArgumentError('options.backoff', '{ initialMs?, factor?, maxMs?, jitter? }', given);
  const b = readOnce(given, ['initialMs', 'factor', 'maxMs', 'jitter'], 'options.backoff') as BackoffOptions;
  const copy: BackoffOptions = {};
  for (const k of ['initialMs', 'factor', 'maxMs'] as const) {
    const v = b[k];
    if (v !== undefined && (typeof v !== 'number' || !Number.isFinite(v) || v < 0)) throw new InvalidArgumentError(`options.backoff.${k}`, 'a finite number >= 0', v);
    if (v !== undefined) copy[k] = v;
  }
  const jitter = b.jitter;
  if (jitter !== undefined && jitter !== 'full' && jitter !== 'none') throw new InvalidArgumentError('options.backoff.jitter', "'full' | 'none'", jitter);
  if (jitter !== undefined) copy.jitter = jitter;
  return Object.freeze(copy);
}

async function request<T>(from: Node | Context<any>, supervisor: Target, req: Request): Promise<T> {
  return (await GenServer.call(from, supervisor, req, { timeout: Infinity })) as T;
}

function unwrap(reply: { pid?: Pid; error?: unknown }): Pid {
  if (reply.error !== undefined) throw reply.error;
  return reply.pid!;
}

/**
 * Supervisor: starts children, watches them, restarts them by strategy and intensity, and stops them
 * in reverse start order. Every start, restart and termination is a `keel.supervisor.*` event.
 *
 * @example
 * ```ts
 * const sup = await Supervisor.start(node, [
 *   { id: 'cache', start: (ctx) => GenServer.startLink(ctx, cacheSpec) },
 *   { id: 'worker', start: (ctx) => ctx.spawnLink(workerInit), restart: 'transient' },
 * ], { strategy: 'one_for_one', maxRestarts: 3, withinMs: 5000 });
 * ```
 */
export const Supervisor = {
  /** Starts a supervisor (not linked); resolves once every child has started. */
  start(from: Node | Context<any>, children: ChildSpec[], opts: SupervisorOptions = {}): Promise<Pid> {
    const { arg, name } = startArg(children, opts);
    return GenServer.start(from, supervisorSpec, arg, { timeout: Infinity, ...name });
  },

  /** Starts a supervisor linked to the calling process (a supervisor's child, say). */
  startLink(from: Context<any>, children: ChildSpec[], opts: SupervisorOptions = {}): Promise<Pid> {
    if (!isProcess(from)) throw new InvalidArgumentError('from', 'a process Context', from);
    const { arg, name } = startArg(children, opts);
    return GenServer.startLink(from, supervisorSpec, arg, { timeout: Infinity, ...name });
  },

  whichChildren(from: Node | Context<any>, supervisor: Target): Promise<ChildInfo[]> {
    return request(from, supervisor, { op: 'which' });
  },

  /**
   * The supervisor's strategy, intensity, restarts in the current window, its last restarts (when,
   * which child, why) and its children: what an observer shows of it. A call, failing as
   * `GenServer.call` does (`ERR_CALL_TIMEOUT` after `timeout`, default 5000 ms).
   */
  status(from: Node | Context<any>, supervisor: Target, timeout = 5000): Promise<SupervisorStatus> {
    return GenServer.call(from, supervisor, { op: 'status' } as Request, { timeout }) as Promise<SupervisorStatus>;
  },

  /**
   * As OTP's `count_children`: `specs` every child spec, `active` the children running now (not one
   * stopped or waiting to restart), `supervisors` and `workers` the specs of each type, running or not.
   * A child supervisor counts once, its own children not at all.
   */
  countChildren(from: Node | Context<any>, supervisor: Target): Promise<{ specs: number; active: number; supervisors: number; workers: number }> {
    return request(from, supervisor, { op: 'count' });
  },

  /** The spec of child `id`, its defaults filled in (OTP's `get_childspec`), or `{ error: 'not_found' }`. */
  getChildSpec(from: Node | Context<any>, supervisor: Target, id: string): Promise<Required<ChildSpec> | { error: 'not_found' }> {
    if (typeof id !== 'string') throw new InvalidArgumentError('id', 'the string id of a child', id);
    return request(from, supervisor, { op: 'getspec', id });
  },

  /** Adds and starts a child; rejects with the child's start error or a duplicate id. */
  async startChild(from: Node | Context<any>, supervisor: Target, spec: ChildSpec): Promise<Pid> {
    return unwrap(await request(from, supervisor, { op: 'start', spec }));
  },

  /** Stops a child (its spec stays, except a temporary child's). */
  terminateChild(from: Node | Context<any>, supervisor: Target, id: string): Promise<'ok' | { error: 'not_found' }> {
    return request(from, supervisor, { op: 'terminate', id });
  },

  /** Starts a stopped child again. */
  async restartChild(from: Node | Context<any>, supervisor: Target, id: string): Promise<Pid | { error: 'not_found' | 'running' | 'restarting' }> {
    const reply = await request<{ pid?: Pid; error?: unknown }>(from, supervisor, { op: 'restart', id });
    if (typeof reply.error === 'string') return { error: reply.error as 'not_found' | 'running' | 'restarting' };
    return unwrap(reply);
  },

  /** Removes a stopped child's spec. */
  deleteChild(from: Node | Context<any>, supervisor: Target, id: string): Promise<'ok' | { error: 'not_found' | 'running' | 'restarting' }> {
    return request(from, supervisor, { op: 'delete', id });
  },
};
