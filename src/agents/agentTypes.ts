import type { ServerPid } from '../otp/GenServer.js';
import type { Context } from '../runtime/types.js';
import type { AgentRegistryHandle } from './registry/handle.js';

// The agent protocol (its calls, cast and answers) and an agent's options: the types Agent.ts starts
// an agent with, here so that what reads the options before the start (internal/agentOptions.ts)
// needs no import of Agent.ts (which exports them all).

/** A unit of work an agent runs. */
export interface AgentTask {
  readonly id: string;
  readonly kind: string;
  readonly payload: unknown;
  /** The results of the tasks it depends on, by task id (a coordinator fills it; `{}` when none). */
  readonly inputs: Readonly<Record<string, unknown>>;
}

/** What a caller sends as a task: `inputs` may be left out (it arrives as `{}`). */
export interface TaskRequest {
  readonly id: string;
  readonly kind: string;
  readonly payload?: unknown;
  readonly inputs?: Readonly<Record<string, unknown>>;
}

/** Runs one task: its result, or a throw/rejection (answered `{ ok: false, error }`). */
export type TaskHandler = (task: AgentTask, ctx: Context<any>, options: { signal: AbortSignal }) => unknown;

/** What `run_task` answers: the task's result, or why it failed (`'cancelled'`, `'duplicate_task'`, `'busy'`, or what it threw). */
export type TaskResult = { ok: true; result: unknown } | { ok: false; error: unknown };

export type Vote = 'approve' | 'reject';

/** What `status` answers. */
export interface AgentStatus {
  /** Tasks running now. */
  readonly load: number;
  readonly capabilities: readonly string[];
  /** The kinds of task it runs: `'*'` for an agent with a `runTask` catch-all (any kind), else the kinds of its `tasks`. */
  readonly kinds: '*' | readonly string[];
  readonly completed: number;
  readonly failed: number;
}

/** The agent protocol's calls (GenServer calls), each with its reply. */
export type AgentProtocol =
  | { request: { type: 'run_task'; task: TaskRequest }; reply: TaskResult }
  | { request: { type: 'vote'; proposal: unknown }; reply: Vote }
  | { request: { type: 'status' }; reply: AgentStatus };

/** The agent protocol's cast. */
export type AgentCast = { type: 'cancel_task'; taskId: string };

/** The pid of a process that speaks the agent protocol. */
export type AgentPid = ServerPid<AgentProtocol, AgentCast>;

export interface AgentOptions {
  /** What this agent can do; a coordinator gives a task only to an agent with every capability it requires. */
  capabilities: readonly string[];
  /**
   * Runs one task of any kind its `tasks` do not name (the catch-all). The agent stays responsive
   * while it runs (tasks run concurrently, up to `maxConcurrentTasks`); `signal` aborts on
   * `cancel_task` and when the agent exits. A throw or rejection answers `{ ok: false, error }`.
   * At least one of `runTask` and `tasks` is required.
   */
  runTask?: TaskHandler;
  /**
   * A handler per task kind (`{ fetch: fn, parse: fn }`): a task of a kind named here runs its
   * handler; another kind runs `runTask`, or, without one, is answered `{ ok: false, error }` with
   * `ERR_INVALID_ARGUMENT` naming the kind. A coordinator routes each task only to agents that run its kind.
   */
  tasks?: Readonly<Record<string, TaskHandler>>;
  /** Answers a `vote` (default: `'reject'`, an agent that cannot judge a proposal does not approve it). */
  vote?(proposal: unknown, ctx: Context<any>): Vote | Promise<Vote>;
  /** Any other message (signals, scheduled messages, decisions); default: reported as `keel.gen_server.unexpected_message`. */
  onMessage?(message: unknown, ctx: Context<any>): void | Promise<void>;
  /** Registers the agent under this name (default `keel.agent.<n>`). */
  name?: string;
  /** More tasks than this at once are answered `{ ok: false, error: 'busy' }` (default unbounded). */
  maxConcurrentTasks?: number;
  /**
   * Registers the agent in an {@link AgentRegistryHandle | AgentRegistry} at each start, with its
   * capabilities and kinds, under a key that outlives restarts (default: the agent's registered
   * name), so a supervisor's restart of the agent replaces its entry's pid and queries find it
   * again. The registry must be running when the agent starts: a registration that fails fails the
   * start. The entry goes when the agent's process does.
   */
  registry?: AgentRegistryHandle | AgentRegistration;
}

/** Where and how an agent registers itself (`AgentOptions.registry`). */
export interface AgentRegistration {
  readonly registry: AgentRegistryHandle;
  /** The registration's key (default: the agent's registered name). */
  readonly key?: string;
  readonly team?: string;
  readonly role?: string;
  /**
   * Sends the registry a heartbeat with the agent's load (its running tasks) every this many ms on
   * the node's clock (default: none; a registry with `heartbeatIntervalMs` then needs `poll: true`
   * or other heartbeats to keep the agent healthy). A beat the registry answers `not_registered`
   * (it came back without its table) makes the agent register again; one answered `replaced` or
   * `unregistered` (its entry was removed on purpose: another live process registered its key, or
   * someone unregistered it) makes the removal stand: the agent does not register itself again
   * until it restarts, but it goes on beating (it is alive), so once someone registers it again by
   * hand its beats keep that entry healthy.
   */
  readonly heartbeatMs?: number;
}

/** A started agent: its pid and the protocol as methods (called from outside any process). */
export interface AgentHandle {
  /** The agent's current pid (it is found again by name after a restart). */
  readonly pid: AgentPid;
  readonly name: string;
  runTask(task: TaskRequest, options?: { timeout?: number }): Promise<TaskResult>;
  vote(proposal: unknown, options?: { timeout?: number }): Promise<Vote>;
  status(options?: { timeout?: number }): Promise<AgentStatus>;
  /** Casts `cancel_task`; the running task's `signal` aborts and its caller gets `{ ok: false, error: 'cancelled' }`. */
  cancel(taskId: string): void;
}
