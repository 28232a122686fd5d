import type { SendOutcome } from '../../delivery/sendSupervised.js';
import type { Pid } from '../../runtime/Pid.js';

// The coordinator's public types: workflows and their tasks, results and progress, metrics, options
// and the handle (re-exported by the package).

/** One task of a workflow. */
export interface WorkflowTask {
  readonly id: string;
  readonly kind: string;
  readonly payload?: unknown;
  /** Capabilities a worker must all have to get this task (default none). */
  readonly requires?: readonly string[];
  /** Tasks of the same workflow that must complete first. */
  readonly dependsOn?: readonly string[];
  /** Per attempt (default the coordinator's `taskTimeoutMs`). */
  readonly timeoutMs?: number;
}

export interface Workflow {
  /** Default `wf-<n>`; must not be the id of an active or remembered workflow. */
  readonly id?: string;
  readonly tasks: readonly WorkflowTask[];
  /** The whole workflow fails with `'timeout'` past this many ms (default none). */
  readonly timeoutMs?: number;
}

export type WorkflowState = 'running' | 'paused' | 'completed' | 'failed' | 'cancelled';

/** How a workflow ended. */
export interface WorkflowResult {
  readonly id: string;
  readonly status: 'completed' | 'failed' | 'cancelled';
  /** The result of every completed task, by task id. */
  readonly results: Readonly<Record<string, unknown>>;
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
  readonly tasks: { readonly completed: number; readonly failed: number; readonly reassigned: number; readonly timedOut: number; readonly queued: number; readonly running: number };
  readonly workers: { readonly total: number; readonly busy: number; readonly left: number };
  readonly history: number;
}

/** What `cancel` answers: every worker that had a task of the workflow, and whether the cancel reached it. */
export type CancelResult =
  | { readonly cancelled: true; readonly notified: readonly { readonly worker: Pid; readonly taskId: string; readonly outcome: SendOutcome }[] }
  | { readonly error: 'not_found' | 'finished' };

export interface CoordinatorOptions {
  /** The initial pool: agents (they answer `status` with their capabilities). More join with `addWorker`. */
  workers?: readonly Pid[];
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
  workers(): Promise<{ pid: Pid; capabilities: readonly string[]; load: number }[]>;
}
