import type { AgentQuery } from '../registry/query.js';
import type { BackoffOptions } from '../../backoff.js';
import type { SendOutcome } from '../../delivery/sendSupervised.js';
import type { Pid } from '../../runtime/Pid.js';
import type { AgentTask } from '../Agent.js';
import type { AgentStore, AgentStoreConfig } from '../store/AgentStore.js';

// The coordinator's public types: workflows and their tasks, results and progress, metrics, options
// and the handle (re-exported by the package).

/**
 * How often a task is tried when it fails with an error (a worker's `{ ok: false, error }` or an
 * aggregator's throw). Attempts lost to a worker's death, removal or a timeout count apart, against
 * the coordinator's `maxTaskAttempts`.
 */
export interface RetryPolicy {
  /** Attempts that may end in an error before the workflow fails (default 1: no retry). */
  readonly maxAttempts: number;
  /** The delay before each retry, on the node's clock (default `{ initialMs: 10, factor: 2, maxMs: 5000, jitter: 'full' }`). */
  readonly backoff?: BackoffOptions;
  /** Errors never retried: a string error equal to one, or an error whose `code` or `name` is one. */
  readonly nonRetryable?: readonly string[];
}

/** A saga step: the task a worker runs to undo a completed task when its workflow fails. It receives the task's result as `inputs[taskId]`. */
export interface Compensation {
  readonly kind: string;
  readonly payload?: unknown;
  /** Capabilities a worker must all have to run it (default none). */
  readonly requires?: readonly string[];
}

/** One task of a workflow: pure data (a workflow can be stored and resumed). */
export interface WorkflowTask {
  readonly id: string;
  /** Routes the task: only a worker that runs this kind gets it; for an aggregate step, the aggregator's name. */
  readonly kind: string;
  readonly payload?: unknown;
  /** Capabilities a worker must all have to get this task (default none). */
  readonly requires?: readonly string[];
  /** Tasks of the same workflow that must complete first; their results are this task's `inputs`. */
  readonly dependsOn?: readonly string[];
  /** Per attempt (default the coordinator's `taskTimeoutMs`). */
  readonly timeoutMs?: number;
  /** Runs in the coordinator, with the aggregator registered under `kind`, over its inputs (no worker). */
  readonly aggregate?: boolean;
  /** Retries on errors (default none). */
  readonly retry?: RetryPolicy;
  /** Undoes this task, once it completed, when the workflow fails. */
  readonly compensate?: Compensation;
}

export interface Workflow {
  /** Default `wf-<n>`; must not be the id of an active or remembered workflow. */
  readonly id?: string;
  readonly tasks: readonly WorkflowTask[];
  /** The whole workflow fails with `'timeout'` past this many ms (default none). */
  readonly timeoutMs?: number;
  /** How long a task waits for a worker that runs its kind to join before the workflow fails with `no_worker` (default the coordinator's, 0: fail at once; `Infinity`: wait). */
  readonly waitForWorkersMs?: number;
  /** Report the workflow once as stuck (`keel.coordinator.workflow_stuck`) past this long without progress (default the coordinator's). */
  readonly stuckAfterMs?: number;
}

export type WorkflowState = 'running' | 'paused' | 'compensating' | 'completed' | 'failed' | 'cancelled';

/** Why a workflow failed because no worker could run a task. */
export interface NoWorkerError {
  readonly code: 'no_worker';
  readonly kind: string;
  readonly requires: readonly string[];
  readonly task: string;
}

/** One task's outcome in a workflow's result. */
export interface TaskOutcome {
  readonly state: 'completed' | 'failed' | 'waiting' | 'running' | 'cancelled';
  readonly result?: unknown;
  readonly error?: unknown;
  /** The worker of its last attempt (the coordinator's pid for an aggregate step); absent if it never started. */
  readonly worker?: Pid;
  /** Attempts started (errors, timeouts and lost workers together). */
  readonly attempts: number;
}

/** A compensation's outcome, in the order they ran (reverse completion order). */
export interface CompensationOutcome {
  readonly task: string;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: unknown;
}

/** Runs an aggregate step in the coordinator: the task's inputs (its dependencies' results) to its result. */
export type Aggregator = (inputs: Readonly<Record<string, unknown>>, task: AgentTask) => unknown;

/** How a workflow ended. */
export interface WorkflowResult {
  readonly id: string;
  readonly status: 'completed' | 'failed' | 'cancelled';
  /** The result of every completed task, by task id. */
  readonly results: Readonly<Record<string, unknown>>;
  /** Every task's outcome, by task id: result or error, its worker, its attempts. */
  readonly tasks: Readonly<Record<string, TaskOutcome>>;
  /** For a failed workflow with compensations: each one's outcome, in the order they ran. */
  readonly compensations: readonly CompensationOutcome[];
  /** For `failed`: the task that failed (absent for a workflow timeout) and why. */
  readonly failedTask?: string;
  readonly error?: unknown;
  /** Tasks moved to another worker because theirs died or timed out. */
  readonly reassigned: number;
  readonly startedAt: number;
  readonly finishedAt: number;
}

/** A workflow's progress, active or remembered. */
export interface WorkflowStatus {
  readonly id: string;
  readonly state: WorkflowState;
  readonly tasks: { readonly total: number; readonly completed: number; readonly running: number; readonly waiting: number; readonly failed: number };
  readonly reassigned: number;
  readonly startedAt: number;
  readonly finishedAt?: number;
}

export interface CoordinatorMetrics {
  readonly workflows: { readonly active: number; readonly completed: number; readonly failed: number; readonly cancelled: number; readonly rejected: number };
  readonly tasks: { readonly completed: number; readonly failed: number; readonly reassigned: number; readonly timedOut: number; readonly retried: number; readonly queued: number; readonly running: number };
  readonly workers: { readonly total: number; readonly busy: number; readonly left: number };
  readonly history: number;
}

/** What `cancel` answers: every worker that had a task of the workflow, and whether the cancel reached it. */
export type CancelResult =
  | { readonly cancelled: true; readonly notified: readonly { readonly worker: Pid; readonly taskId: string; readonly outcome: SendOutcome }[] }
  | { readonly error: 'not_found' | 'finished' };

export interface CoordinatorOptions {
  /**
   * The initial pool: agents (they answer `status` with their capabilities and kinds). More join
   * with `addWorker`. Or a registry query (`registry.select({ kind: 'fetch' })`): the agents it
   * selects join at the start, and each agent that registers later and matches it joins then, so an
   * agent restarted by its supervisor (a new pid under the same key) is found again.
   */
  workers?: readonly Pid[] | AgentQuery;
  /** `run`/`submit` past this many active (running or paused) workflows reject with `ERR_WORKFLOW_LIMIT` (default 100). */
  maxConcurrentWorkflows?: number;
  /** Per task attempt (default 30,000 ms). */
  taskTimeoutMs?: number;
  /** Attempts of a task across worker deaths and timeouts before the workflow fails (default 3). */
  maxTaskAttempts?: number;
  /** Tasks one worker runs at once (default 1). */
  maxTasksPerWorker?: number;
  /** Finished workflows remembered for `status` and `wait` (default 100). */
  historySize?: number;
  /** Aggregators by name, for aggregate steps (`{ id, kind: 'merge', aggregate: true }`). */
  aggregators?: Readonly<Record<string, Aggregator>>;
  /** The default of a workflow's `waitForWorkersMs` (default 0: a task no worker can run fails its workflow at once). */
  waitForWorkersMs?: number;
  /** The default of a workflow's `stuckAfterMs` (default none: never reported). */
  stuckAfterMs?: number;
  /**
   * Where active workflows are kept so that they survive the OS process (default the node's
   * `services.agents.store`, else none: they survive a restart of the coordinator in its node only):
   * `{ kind: 'sqlite', path }`, `{ kind: 'memory' }` or an `AgentStore`. With a store, a workflow must
   * be plain data. See docs/agents/CoordinatorAgent.md "Restarts and durability".
   */
  store?: AgentStoreConfig | AgentStore;
  name?: string;
}

/** A started coordinator. Every method is a call to its process. */
export interface CoordinatorHandle {
  readonly pid: Pid;
  readonly name: string;
  /** Runs a workflow to its end. Rejects with `ERR_WORKFLOW_LIMIT` at once when the coordinator is full. */
  run(workflow: Workflow): Promise<WorkflowResult>;
  /** Starts a workflow and answers its id at once; `wait(id)` gives the result. */
  submit(workflow: Workflow): Promise<{ id: string }>;
  wait(id: string): Promise<WorkflowResult | { error: 'not_found' }>;
  cancel(id: string): Promise<CancelResult>;
  pause(id: string): Promise<'ok' | { error: 'not_found' | 'finished' }>;
  resume(id: string): Promise<'ok' | { error: 'not_found' | 'finished' }>;
  status(id: string): Promise<WorkflowStatus | { error: 'not_found' }>;
  metrics(): Promise<CoordinatorMetrics>;
  /** Adds an agent to the pool (it is asked for its capabilities first). */
  addWorker(pid: Pid): Promise<'ok' | { error: 'noproc' | 'exists' }>;
  removeWorker(pid: Pid): Promise<'ok' | { error: 'not_found' }>;
  workers(): Promise<{ pid: Pid; capabilities: readonly string[]; kinds: '*' | readonly string[]; load: number }[]>;
}
