import { InvalidArgumentError, MaxChildrenError } from '../errors.js';
import { isProcess, kernelOf } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { isExit } from '../runtime/messages.js';
import { isPid, type Name, type Pid, type Target } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { GenServer, type GenServerSpec } from './GenServer.js';
import { type Child, type ChildSpec, readOnce, recordRestart, shouldRestart, startChild, stopChild, toChild, unexpectedRequest } from './internal/children.js';
import { keelServer, unexpectedInfo } from './internal/keelServer.js';
import { markBehaviour } from './internal/lifecycle.js';

export interface DynamicSupervisorOptions {
  /** Past this many children `startChild` rejects with `ERR_MAX_CHILDREN` (default unbounded). */
  maxChildren?: number;
  /** Restart intensity, as for `Supervisor` (defaults 3 in 5000 ms). */
  maxRestarts?: number;
  withinMs?: number;
  /** Registers the supervisor under this unique name (a string or a `Name`). */
  name?: string | Name;
}

/** One row of `DynamicSupervisor.whichChildren`. */
export interface DynamicChildInfo {
  /** The running child, or `'restarting'` while a failed restart is tried again. */
  readonly pid: Pid | 'restarting';
  readonly type: 'worker' | 'supervisor';
  readonly restart: string;
  /** As `Supervisor.whichChildren`'s `modules`. */
  readonly modules: readonly string[] | 'dynamic';
}

/**
 * A child of a DynamicSupervisor: a child spec whose `id` is optional (children are known by pid).
 * No child is significant: OTP's dynamic (`simple_one_for_one`) supervisors have no `auto_shutdown`
 * (OTP 27 refuses it), so `significant: true` is refused; `false` is accepted.
 */
export type DynamicChildSpec = Omit<ChildSpec, 'id' | 'significant'> & { id?: string; significant?: false };

interface State {
  /** The supervisor's own context (terminate gets no context, and stops the children with it). */
  readonly ctx: Context<any>;
  /** By pid id (a child's pid is unique on the node). */
  readonly children: Map<number, Child>;
  /** Children whose restart failed and is tried again: still the supervisor's, with no pid. */
  readonly restarting: Set<Child>;
  readonly maxChildren: number;
  readonly maxRestarts: number;
  readonly withinMs: number;
  readonly restartTimes: number[];
}

type Request = { op: 'start'; spec: DynamicChildSpec } | { op: 'terminate'; pid: Pid } | { op: 'which' } | { op: 'count' };

function event(ctx: Context<any>, name: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  ctx.node.telemetry.execute(`keel.supervisor.${name}`, measurements, { supervisor: ctx.self, ...metadata });
}

/**
 * Stops every child at once, as OTP's `simple_one_for_one` and Elixir's DynamicSupervisor do: each is
 * sent its shutdown signal (in reverse start order) before any is waited for, each with its own
 * shutdown time, so stopping N children that use all of it takes one shutdown time, not N.
 */
async function stopAll(ctx: Context<any>, state: State): Promise<void> {
  const stopping = [...state.children.values()].reverse().map(async (child) => {
    const pid = child.pid;
    const reason = await stopChild(ctx, child);
    if (pid !== undefined) event(ctx, 'child_terminated', {}, { id: child.id, pid, reason: reason ?? 'noproc' });
  });
  await Promise.all(stopping);
  state.children.clear();
  state.restarting.clear(); // their retries find them gone
}

/** A restart whose start failed is tried again from the mailbox, as OTP's try_again_restart. */
class RetryRestart {
  readonly child: Child;
  constructor(child: Child) {
    this.child = child;
  }
}

/** Restarts a child; every attempt counts toward the intensity, past which the supervisor gives up. */
async function restart(ctx: Context<any>, state: State, child: Child, reason: unknown): Promise<void> {
  if (recordRestart(state.restartTimes, kernelOf(ctx.node).timerNow(), state.withinMs) > state.maxRestarts) {
    event(ctx, 'shutdown', {}, { reason: 'max_restart_intensity' });
    await stopAll(ctx, state);
    ctx.exit('shutdown');
    return;
  }
  child.restarts++;
  try {
    const pid = await startChild(ctx, child);
    state.restarting.delete(child);
    state.children.set(pid.id, child);
    event(ctx, 'child_restarted', { restarts: child.restarts }, { id: child.id, pid, reason, cause: child.id }); // its own exit caused it
  } catch (e) {
    state.restarting.add(child);
    event(ctx, 'child_restart_failed', { restarts: child.restarts }, { id: child.id, error: e });
    ctx.send(ctx.self, new RetryRestart(child));
  }
}

/** Children with a pid, and those whose restart is being retried. */
function size(state: State): number {
  return state.children.size + state.restarting.size;
}

const dynamicSpec: GenServerSpec<State, { request: Request; reply: unknown }, never, Omit<State, 'ctx' | 'children' | 'restarting' | 'restartTimes'>> = keelServer({
  init(arg, ctx) {
    ctx.trapExits();
    return { ...arg, ctx, children: new Map(), restarting: new Set(), restartTimes: [] };
  },

  async handleCall(request, _from, state, ctx) {
    switch (request.op) {
      case 'start': {
        if (size(state) >= state.maxChildren) {
          return { reply: { error: new MaxChildrenError(String(ctx.self), state.maxChildren) }, state };
        }
        let child: Child;
        try {
          child = toChild(request.spec, 'spec', 'child');
          if (child.significant) {
            throw new InvalidArgumentError('spec.significant', "false or absent (a DynamicSupervisor has no significant children, as OTP's simple_one_for_one has no auto_shutdown)", true);
          }
        } catch (e) {
          return { reply: { error: e }, state };
        }
        try {
          const pid = await startChild(ctx, child);
          state.children.set(pid.id, child);
          event(ctx, 'child_started', {}, { id: child.id, pid });
          return { reply: { pid }, state };
        } catch (e) {
          return { reply: { error: e }, state };
        }
      }
      case 'terminate': {
        // a pid of another node or creation that shares the id is not this child; what is no pid, none
        const live = isPid(request.pid) ? kernelOf(ctx.node).resolve(request.pid) : undefined;
        const child = live === undefined ? undefined : state.children.get(live.self.id);
        if (live === undefined || child === undefined) return { reply: { error: 'not_found' }, state };
        state.children.delete(live.self.id);
        const reason = await stopChild(ctx, child);
        event(ctx, 'child_terminated', {}, { id: child.id, pid: live.self, reason: reason ?? 'noproc' });
        return { reply: 'ok', state };
      }
      case 'which': {
        const rows = (children: Iterable<Child>, restarting: boolean): DynamicChildInfo[] =>
          [...children].map((c) => ({ pid: restarting ? 'restarting' : c.pid!, type: c.type, restart: c.restart, modules: c.modules }));
        return { reply: [...rows(state.children.values(), false), ...rows(state.restarting, true)], state };
      }
      case 'count': {
        const all = [...state.children.values(), ...state.restarting];
        const supervisors = all.filter((c) => c.type === 'supervisor').length;
        return { reply: { specs: all.length, active: state.children.size, supervisors, workers: all.length - supervisors }, state };
      }
      default:
        // not one of the supervisor's own requests (a stray GenServer.call): an error reply, not a crash
        return { reply: { error: unexpectedRequest(request) }, state };
    }
  },

  async handleInfo(message, state, ctx) {
    if (isInstance(message, RetryRestart)) {
      // gone if the supervisor stopped its children meanwhile
      if (state.restarting.has(message.child)) await restart(ctx, state, message.child, 'retry');
      return state;
    }
    if (!isExit(message)) {
      unexpectedInfo(ctx, message);
      return state;
    }
    if (message.from === 'node') return state;
    const child = state.children.get(message.from.id);
    // the child's own pid object (startChild keeps the runtime's): a linked process of another node
    // (or creation) that shares the id is not this child, and its exit restarts nothing
    if (child === undefined || child.pid !== message.from) return state;
    state.children.delete(message.from.id);
    child.pid = undefined;
    child.proc = undefined;
    if (!shouldRestart(child, message.reason)) {
      event(ctx, 'child_terminated', {}, { id: child.id, pid: message.from, reason: message.reason });
      return state;
    }
    await restart(ctx, state, child, message.reason);
    return state;
  },

  async terminate(reason, state) {
    event(state.ctx, 'shutdown', {}, { reason });
    await stopAll(state.ctx, state);
  },
}, 'a dynamic supervisor (use the DynamicSupervisor functions)');
markBehaviour(dynamicSpec, 'dynamic_supervisor'); // its lifecycle events say what it is

type Settings = Omit<State, 'ctx' | 'children' | 'restarting' | 'restartTimes'>;

/** The validated settings, and the name option to start with; each option read once. */
function options(given: DynamicSupervisorOptions): { settings: Settings; name: { name?: string | Name } } {
  if (typeof given !== 'object' || given === null) throw new InvalidArgumentError('options', 'a DynamicSupervisorOptions object', given);
  const opts = readOnce(given, ['maxChildren', 'maxRestarts', 'withinMs', 'name'], 'options') as DynamicSupervisorOptions;
  const maxChildren = opts.maxChildren ?? Infinity;
  if (maxChildren !== Infinity && (!Number.isSafeInteger(maxChildren) || maxChildren < 0)) {
    throw new InvalidArgumentError('options.maxChildren', 'an integer >= 0', opts.maxChildren);
  }
  const maxRestarts = opts.maxRestarts ?? 3;
  if (!Number.isSafeInteger(maxRestarts) || maxRestarts < 0) throw new InvalidArgumentError('options.maxRestarts', 'an integer >= 0', maxRestarts);
  const withinMs = opts.withinMs ?? 5000;
  if (typeof withinMs !== 'number' || !Number.isFinite(withinMs) || withinMs <= 0) throw new InvalidArgumentError('options.withinMs', 'a positive number of ms', withinMs);
  return { settings: { maxChildren, maxRestarts, withinMs }, name: opts.name === undefined ? {} : { name: opts.name } };
}

function request<T>(from: Node | Context<any>, supervisor: Target, req: Request): Promise<T> {
  return GenServer.call(from, supervisor, req, { timeout: Infinity }) as Promise<T>;
}

/**
 * DynamicSupervisor: children started on demand, known by pid, restarted one for one.
 *
 * @example
 * ```ts
 * const sup = await DynamicSupervisor.start(node, { maxChildren: 100 });
 * const worker = await DynamicSupervisor.startChild(node, sup, { start: (ctx) => ctx.spawnLink(workerInit), restart: 'transient' });
 * ```
 */
export const DynamicSupervisor = {
  start(from: Node | Context<any>, opts: DynamicSupervisorOptions = {}): Promise<Pid> {
    const { settings, name } = options(opts);
    return GenServer.start(from, dynamicSpec, settings, { timeout: Infinity, ...name });
  },

  startLink(from: Context<any>, opts: DynamicSupervisorOptions = {}): Promise<Pid> {
    if (!isProcess(from)) throw new InvalidArgumentError('from', 'a process Context', from);
    const { settings, name } = options(opts);
    return GenServer.startLink(from, dynamicSpec, settings, { timeout: Infinity, ...name });
  },

  /** Starts a child; rejects with `ERR_MAX_CHILDREN` past `maxChildren`, or with the child's start error. */
  async startChild(from: Node | Context<any>, supervisor: Target, spec: DynamicChildSpec): Promise<Pid> {
    const reply = await request<{ pid?: Pid; error?: unknown }>(from, supervisor, { op: 'start', spec });
    if (reply.error !== undefined) throw reply.error;
    return reply.pid!;
  },

  terminateChild(from: Node | Context<any>, supervisor: Target, pid: Pid): Promise<'ok' | { error: 'not_found' }> {
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'the Pid of a child', pid);
    return request(from, supervisor, { op: 'terminate', pid });
  },

  /** The children; one whose restart failed and is being tried again has `pid: 'restarting'`. */
  whichChildren(from: Node | Context<any>, supervisor: Target): Promise<DynamicChildInfo[]> {
    return request(from, supervisor, { op: 'which' });
  },

  /** `specs` counts every child, `active` those with a running process (not those whose restart is being retried). */
  countChildren(from: Node | Context<any>, supervisor: Target): Promise<{ specs: number; active: number; supervisors: number; workers: number }> {
    return request(from, supervisor, { op: 'count' });
  },
};
