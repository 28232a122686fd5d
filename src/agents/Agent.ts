import { types } from 'node:util';
import { InvalidArgumentError, toError } from '../errors.js';
import { type CallResult, GenServer, type From, type GenServerSpec } from '../otp/GenServer.js';
import type { PendingCall } from '../otp/internal/calls.js';
import { keelServer } from '../otp/internal/keelServer.js';
import { adopt, isThenable } from '../otp/internal/thenable.js';
import { kernelOf } from '../runtime/kernel.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import type { AgentMetaInput } from './registry/types.js';
import { KeyedTable } from './internal/KeyedTable.js';
import { componentHandle, componentNode, nameFor, startComponent } from './component.js';
import { type AgentInit as Init, validateOptions } from './internal/agentOptions.js';
import type { AgentCast, AgentHandle, AgentOptions, AgentPid, AgentProtocol, AgentRegistration, AgentStatus, AgentTask, TaskHandler, TaskRequest, TaskResult, Vote } from './agentTypes.js';

export type { AgentCast, AgentHandle, AgentOptions, AgentPid, AgentProtocol, AgentRegistration, AgentStatus, AgentTask, TaskHandler, TaskRequest, TaskResult, Vote } from './agentTypes.js';

interface State {
  readonly options: AgentOptions;
  readonly registration: AgentRegistration | undefined;
  readonly handlers: ReadonlyMap<string, TaskHandler>;
  readonly kinds: '*' | readonly string[];
  readonly capabilities: readonly string[];
  /** The running tasks by id (a table that does not allocate as one task in, one out churns it). */
  readonly running: KeyedTable<Running>;
  /**
   * Handlers still executing, a cancelled task's included until its handler returns (or its promise
   * settles): what `maxConcurrentTasks` bounds, since a handler may ignore its signal.
   */
  executing: number;
  /** Whether anyone listens to `keel.agent.task` (its measurements and metadata are built only then). */
  readonly taskProbe: { readonly active: boolean };
  /** handleCall's answer to a run_task it took (the reply comes later): one object for the agent's life. */
  readonly taken: CallResult<State, TaskResult>;
  completed: number;
  failed: number;
  /** A heartbeat call to the registry is in flight (at most one: a slow registry gets no pile of calls). */
  beating?: boolean;
  /**
   * The registry removed its entry on purpose (answered a beat `replaced` or `unregistered`): the agent
   * does not register itself again (until it restarts); its beats go on, and keep healthy an entry made
   * again by hand, which does not clear this (a registry that later lost its table is not re-populated
   * with the agent's own registration: its key may be another process's now).
   */
  removed?: boolean;
}

function isCancelTask(m: unknown): m is AgentCast {
  // a message may be anything a process was sent: a proxy is never one (its traps would run, or throw)
  if (typeof m !== 'object' || m === null || types.isProxy(m)) return false;
  try {
    return (m as { type?: unknown }).type === 'cancel_task' && typeof (m as { taskId?: unknown }).taskId === 'string';
  } catch {
    return false; // a getter that throws
  }
}

const NO_INPUTS: Readonly<Record<string, unknown>> = Object.freeze({});

/** The task as its handler sees it (`inputs` always an object), or undefined for a malformed one. */
function validateTask(task: unknown): AgentTask | undefined {
  if (typeof task !== 'object' || task === null || types.isProxy(task)) return undefined;
  try {
    const t = task as Partial<AgentTask>;
    const { id, kind, payload, inputs } = t;
    if (typeof id !== 'string' || id === '' || typeof kind !== 'string') return undefined;
    if (inputs !== undefined && (typeof inputs !== 'object' || inputs === null || Array.isArray(inputs))) return undefined;
    return { id, kind, payload, inputs: inputs ?? NO_INPUTS };
  } catch {
    return undefined; // a getter that throws
  }
}

/**
 * A running task: its caller's reply handle and its abort state, with the methods that settle it
 * (one object per task, no closure per task: a task that never reads its `signal` costs no
 * AbortController).
 */
class Running {
  /** Made when the handler first reads its `signal` (most never do: a controller per task is costly). */
  declare abort: AbortController | undefined;
  /** Aborted (cancelled, or the agent exited) before or after the handler read its signal. */
  declare aborted: boolean;
  declare settled: boolean;
  declare readonly task: AgentTask;
  declare readonly from: From<TaskResult>;
  declare readonly state: State;
  declare readonly ctx: Context<any>;
  /** On the timers' time (monotonic on the real clock): durationMs is what the task lasted, however the wall clock was stepped. */
  declare readonly started: number;

  constructor(task: AgentTask, from: From<TaskResult>, state: State, ctx: Context<any>, started: number) {
    this.abort = undefined;
    this.aborted = false;
    this.settled = false;
    (this as { task: AgentTask }).task = task;
    (this as { from: From<TaskResult> }).from = from;
    (this as { state: State }).state = state;
    (this as { ctx: Context<any> }).ctx = ctx;
    (this as { started: number }).started = started;
  }

  /** Aborts the task's signal, now or when the handler first reads it. */
  abortSignal(): void {
    this.aborted = true;
    this.abort?.abort();
  }

  /** The task's signal, made on first read. */
  signal(): AbortSignal {
    if (this.abort === undefined) {
      this.abort = new AbortController();
      if (this.aborted) this.abort.abort();
    }
    return this.abort.signal;
  }

  /** `cancel_task`: aborts the signal and answers the caller `'cancelled'` (if it was not answered yet). */
  cancel(): void {
    this.abortSignal();
    this.finish({ ok: false, error: 'cancelled' }, 'cancelled');
  }

  ok(result: unknown): void {
    this.finish({ ok: true, result }, 'ok');
  }

  failed(e: unknown): void {
    this.finish({ ok: false, error: toError(e) }, 'error');
  }

  finish(result: TaskResult, outcome: 'ok' | 'error' | 'cancelled'): void {
    if (this.settled) return;
    this.settled = true;
    const { state, task, ctx } = this;
    state.running.remove(task.id, this);
    if (outcome === 'ok') state.completed++;
    else state.failed++;
    if (state.taskProbe.active) {
      ctx.node.telemetry.execute('keel.agent.task', { durationMs: kernelOf(ctx).timerNow() - this.started }, { agent: ctx.self, taskId: task.id, kind: task.kind, outcome });
    }
    // the From is the PendingCall GenServer handed to handleCall: replied to directly, without
    // GenServer.reply's check of a handle that may have come from anywhere
    (this.from as PendingCall).reply(result);
  }
}

/**
 * A handler's options, `{ signal }`: `signal` is an own enumerable getter (a handler may spread its
 * options), the running task in a private field. Defined with one shared descriptor: an object
 * literal with a getter costs a closure and a slow literal per task (~3x this).
 */
class TaskOptions {
  readonly #running: Running;
  declare readonly signal: AbortSignal;
  constructor(running: Running) {
    this.#running = running;
    Object.defineProperty(this, 'signal', TaskOptions.#signal);
  }
  static readonly #signal: PropertyDescriptor = {
    get(this: TaskOptions): AbortSignal {
      return this.#running.signal();
    },
    enumerable: true,
    configurable: true,
  };
}

function runTask(task: AgentTask, from: From<TaskResult>, state: State, ctx: Context<any>): void {
  const running = new Running(task, from, state, ctx, kernelOf(ctx).timerNow());
  state.running.add(task.id, running);
  let r: unknown;
  try {
    const handler = state.handlers.get(task.kind) ?? state.options.runTask;
    if (handler === undefined) throw new InvalidArgumentError('task.kind', `a kind this agent runs (${(state.kinds as readonly string[]).join(', ')})`, task.kind);
    r = handler(task, ctx, new TaskOptions(running));
  } catch (e) {
    running.failed(e);
    return;
  }
  if (r === null || (typeof r !== 'object' && typeof r !== 'function')) {
    // a plain value cannot be a thenable: answered now, not a microtask later (no promise, no closures)
    running.ok(r);
    return;
  }
  // its slot is held until the handler is done, cancelled or not (a handler may ignore its signal)
  state.executing++;
  Promise.resolve(r).then(
    (result) => {
      state.executing--;
      running.ok(result);
    },
    (e: unknown) => {
      state.executing--;
      running.failed(e);
    },
  );
}

/**
 * A vote, answered as a task is: a vote function that returns a promise does not hold the agent (its
 * status, tasks and other votes are answered meanwhile), and one that throws or rejects counts as a
 * reject (an agent that cannot judge a proposal does not approve it), logged, the agent running on.
 */
function voteCall(proposal: unknown, from: From<Vote>, state: State, ctx: Context<any>): CallResult<State, Vote> {
  const vote = state.options.vote;
  if (vote === undefined) return { reply: 'reject', state };
  const failed = (e: unknown): Vote => {
    ctx.node.logger.warn(`the vote of agent ${String(ctx.self)} failed; it counts as a reject`, e);
    return 'reject';
  };
  let r: unknown;
  try {
    r = vote(proposal, ctx);
  } catch (e) {
    return { reply: failed(e), state };
  }
  if (!isThenable(r)) return { reply: r === 'approve' ? 'approve' : 'reject', state };
  adopt(r).then(
    (v) => GenServer.reply(from, v === 'approve' ? 'approve' : 'reject'),
    (e: unknown) => GenServer.reply(from, failed(e)),
  );
  return state.taken as unknown as CallResult<State, Vote>;
}

const agentSpec: GenServerSpec<State, AgentProtocol, AgentCast, Init> = keelServer({
  async init({ options, handlers, registration }, ctx) {
    const kinds = options.runTask !== undefined ? '*' : Object.freeze([...handlers.keys()]);
    const state: State = {
      options,
      registration,
      handlers,
      kinds,
      capabilities: Object.freeze([...options.capabilities]),
      running: new KeyedTable(),
      taskProbe: kernelOf(ctx).telemetry.probe('keel.agent.task'),
      taken: undefined as never,
      completed: 0,
      failed: 0,
      executing: 0,
    };
    (state as { taken: CallResult<State, TaskResult> }).taken = Object.freeze({ noreply: true as const, state });
    if (registration !== undefined) {
      const r = await register(state, ctx);
      if ('error' in r) throw new Error(`the agent could not register in ${registration.registry.name}: ${r.error}`);
      if (registration.heartbeatMs !== undefined) ctx.sendAfter(ctx.self, HEARTBEAT, registration.heartbeatMs);
    }
    // one listener for the agent's life (not one per task): its exit aborts every running task
    ctx.signal.addEventListener('abort', () => {
      for (const r of state.running.values()) r.abortSignal();
    }, { once: true });
    return state;
  },

  // not async: a run_task is taken and the agent is free for its next message in the same turn
  // (an async handleCall costs a promise, its settling and a pause of the mailbox per task)
  handleCall(request, from, state, ctx) {
    switch (request?.type) {
      case 'run_task': {
        const task = validateTask(request.task);
        if (task === undefined) return { reply: { ok: false, error: new InvalidArgumentError('task', '{ id: non-empty string, kind: string, payload, inputs?: object }', request.task) }, state };
        if (state.running.has(task.id)) return { reply: { ok: false, error: 'duplicate_task' }, state };
        if (state.executing >= (state.options.maxConcurrentTasks ?? Infinity)) return { reply: { ok: false, error: 'busy' }, state };
        runTask(task, from as From<TaskResult>, state, ctx);
        return state.taken;
      }
      case 'vote':
        return voteCall(request.proposal, from as From<Vote>, state, ctx);
      case 'status':
        return { reply: { load: state.running.size, capabilities: state.capabilities, kinds: state.kinds, completed: state.completed, failed: state.failed }, state };
      default:
        // a bad request is the caller's mistake: it gets a typed error, the agent keeps running
        return { reply: new InvalidArgumentError('request', "an agent call ({ type: 'run_task' | 'vote' | 'status' })", request) as never, state };
    }
  },

  handleCast(cast, state) {
    if (cast?.type === 'cancel_task') state.running.get(cast.taskId)?.cancel();
    return state;
  },

  async handleInfo(message, state, ctx) {
    if (message === HEARTBEAT) {
      heartbeat(state, ctx);
      return state;
    }
    if (message === REGISTER) {
      // the registry answered a beat with not_registered (it came back without its table): register again
      // (a registry that is down now is tried again after the next beat), unless the registry had removed
      // the entry on purpose: that removal stands
      if (state.removed !== true) await register(state, ctx).catch(() => undefined);
      return state;
    }
    // cancel_task also arrives as a plain message: a coordinator sends it through sendSupervised
    if (isCancelTask(message)) {
      state.running.get(message.taskId)?.cancel();
      return state;
    }
    if (state.options.onMessage === undefined) {
      ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message });
    } else {
      await state.options.onMessage(message, ctx);
    }
    return state;
  },
}, "an agent ({ type: 'run_task' | 'vote' | 'status' })", 'bare');

/** The agent's own timer message: send the registry a heartbeat. */
const HEARTBEAT = Symbol('keel.agent.heartbeat');

/** The agent's own message: its registry no longer knows it (it lost its table), register again. */
const REGISTER = Symbol('keel.agent.register');


/** Registers the agent in its registry with its capabilities, kinds, team, role and load now. */
function register(state: State, ctx: Context<any>): Promise<{ key: string } | { error: string }> {
  const registration = state.registration!;
  // a catch-all agent (runTask) registers no kinds: it is found by its capabilities
  const meta: AgentMetaInput = {
    capabilities: state.capabilities,
    kinds: state.kinds === '*' ? [] : state.kinds,
    load: state.running.size,
    ...(registration.team === undefined ? {} : { team: registration.team }),
    ...(registration.role === undefined ? {} : { role: registration.role }),
  };
  return registration.registry.register(ctx.self, meta, registration.key === undefined ? undefined : { key: registration.key });
}

/**
 * Tells the registry the agent's load, without waiting for the answer; the next one is armed at
 * once. While a beat is unanswered (a slow or restarting registry: the call times out) the next
 * beats are skipped, so calls do not pile up; the registry's own sweep decides what a missed beat
 * means. A registry that answers `not_registered` (restarted without its table) gets a new
 * registration: the agent is found by queries again. One that answers `replaced` or `unregistered`
 * removed the entry on purpose: the agent does not register itself again (as an Erlang process whose
 * name was taken does not take it back) until it restarts, but it goes on beating: a beat says the
 * process is alive, which the removal did not change (as a cluster node's failure-detector heartbeats
 * go on whatever its membership). A beat answered `ok` again means someone registered it again by
 * hand: its beats keep that entry healthy, and the removal still stands (a `not_registered` later,
 * from a registry that lost its table, does not make it register its own key again).
 */
function heartbeat(state: State, ctx: Context<any>): void {
  const registration = state.registration!;
  ctx.sendAfter(ctx.self, HEARTBEAT, registration.heartbeatMs!);
  if (state.beating === true) return;
  state.beating = true;
  registration.registry.heartbeat(ctx.self, { load: state.running.size }).then(
    (r) => {
      state.beating = false;
      if (ctx.signal.aborted) return;
      // the latest answer decides, set at once (as `beating`): a message to itself could be overtaken by the next beat
      // an `ok` after a removal (registered again by hand) does not clear it: the agent's own registration (its
      // key, which another process may hold now) is never made again, even when the registry later loses its table
      if (r === 'ok') return;
      if (removedOnPurpose(r)) state.removed = true; // the removal stands; the beats go on
      else ctx.send(ctx.self, REGISTER);
    },
    () => {
      state.beating = false;
    },
  );
}

/** A beat's answer says the entry was removed on purpose (`replaced`, `unregistered`); read without running a caller's code. */
function removedOnPurpose(r: unknown): boolean {
  if (typeof r !== 'object' || r === null || types.isProxy(r)) return false;
  const d = Object.getOwnPropertyDescriptor(r, 'error');
  return d !== undefined && 'value' in d && (d.value === 'replaced' || d.value === 'unregistered');
}

/** Calls an agent: run a task. */
export function runTaskOn(from: Node | Context<any>, agent: AgentPid | Pid | string, task: TaskRequest, options?: { timeout?: number; signal?: AbortSignal }): Promise<TaskResult> {
  return GenServer.call<AgentProtocol>(from, agent, { type: 'run_task', task }, options) as Promise<TaskResult>;
}

/** Calls an agent: its vote on `proposal`. */
export function voteOn(from: Node | Context<any>, agent: AgentPid | Pid | string, proposal: unknown, options?: { timeout?: number; signal?: AbortSignal }): Promise<Vote> {
  return GenServer.call<AgentProtocol>(from, agent, { type: 'vote', proposal }, options) as Promise<Vote>;
}

/** Calls an agent: its load and capabilities. */
export function statusOf(from: Node | Context<any>, agent: AgentPid | Pid | string, options?: { timeout?: number; signal?: AbortSignal }): Promise<AgentStatus> {
  return GenServer.call<AgentProtocol>(from, agent, { type: 'status' }, options) as Promise<AgentStatus>;
}

/**
 * An agent: a GenServer that speaks the agent protocol (run a task, cancel it, vote, report its
 * status). Workers of a `CoordinatorAgent` and participants of the coordination patterns are agents.
 *
 * @example
 * ```ts
 * const worker = await Agent.start(node, { capabilities: ['img'], tasks: { resize: async (task) => resize(task.payload) } });
 * const r = await worker.runTask({ id: 't1', kind: 'resize', payload: img }); // { ok: true, result }
 * ```
 */
export const Agent = {
  /** Starts an agent; bad options throw `ERR_INVALID_ARGUMENT` before anything starts. */
  start(from: Node | Context<any>, options: AgentOptions): Promise<AgentHandle> {
    const init = validateOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'agent', init.options.name);
    return startComponent(from, agentSpec, init, name).then((pid) => handleFor(node, name, pid));
  },
};

/** A handle that addresses the agent by name, so it follows restarts. */
function handleFor(node: Node, name: string, started: AgentPid): AgentHandle {
  return componentHandle<AgentHandle>(node, name, started, {
    runTask: (task, o) => runTaskOn(node, name, task, o),
    vote: (proposal, o) => voteOn(node, name, proposal, o),
    status: (o) => statusOf(node, name, o),
    cancel: (taskId) => GenServer.cast<AgentCast>(node, name, { type: 'cancel_task', taskId }),
  });
}
