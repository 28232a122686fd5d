import { deserialize } from 'node:v8';
import { InvalidArgumentError, KeelError, thrownText, WorkflowLimitError } from '../../errors.js';
import { isInstance } from '../../runtime/safe.js';
import { encodeValue } from '../store/AgentStore.js';
import type { From } from '../../otp/GenServer.js';
import { callWaiting } from '../../otp/internal/calls.js';
import { cancelRunning, dispatch, enqueue } from './dispatch.js';
import { anyEligible, event, listening, NO_DEPENDENTS, noWorkerError, stopTaskTimers, timerNow, WorkflowTimeout, type Run, type State, type TaskRun } from './state.js';
import { toRetry } from './policy.js';
import { persist } from './durable.js';
import { finalize, isActive } from './result.js';
import { startCompensation } from './saga.js';
import { validateWorkflow } from './validate.js';
import { touch } from './stuck.js';
import type { CoordinatorMetrics, Workflow, WorkflowResult } from './types.js';

// A workflow's life in the coordinator: accepted (startRun), ended (finish, then result.ts's
// finalize once its compensations ran), and the coordinator's counts.

/** @internal The workflow ends: a failure first runs its compensations (the result waits for them). */
export function finish(state: State, wf: Run, status: 'completed' | 'failed' | 'cancelled', failedTask?: string, error?: unknown): void {
  if (wf.state !== 'running' && wf.state !== 'paused') return;
  if (status === 'failed') void cancelRunning(state, wf); // completed: nothing runs; cancelled: the caller did
  if (wf.timer !== undefined) state.ctx.cancelTimer(wf.timer as never);
  wf.timer = undefined;
  for (let i = 0; i < wf.order.length; i++) stopTaskTimers(state, wf.order[i]!);
  if (status === 'failed' && startCompensation(state, wf, failedTask, error)) return;
  finalize(state, wf, status, failedTask, error);
}

/**
 * Adds a caller to a workflow's waiters. Each time the list reaches a power of two (8 or more), the
 * callers that gave up are dropped first (a call that timed out, a caller that died): a workflow that
 * runs for long is waited on by callers that come and go, and it would hold every one of them.
 */
export function addWaiter(wf: Run, from: From<WorkflowResult>): void {
  const n = wf.waiters.length;
  if (n >= 8 && (n & (n - 1)) === 0) {
    let kept = 0;
    for (const w of wf.waiters) if (callWaiting(w)) wf.waiters[kept++] = w;
    wf.waiters.length = kept;
  }
  wf.waiters.push(from);
}

/**
 * A workflow's structure as plain objects the coordinator owns, each read once: the workflow, its
 * task list, each task and its `requires`, `dependsOn`, `retry` (and its backoff and
 * `nonRetryable`) and `compensate`. Payloads stay the caller's values, passed on by reference. Only
 * plain objects and arrays are copied (an instance of a class is kept as it is); what is not an
 * object is left for the checks to refuse.
 */
function snapshot(workflow: Workflow): Workflow {
  const wf = plainCopy(workflow);
  if (wf === workflow || !Array.isArray(wf.tasks)) return wf;
  const tasks = [...(wf.tasks as readonly unknown[])].map((t) => {
    const task = plainCopy(t as Record<string, unknown>);
    if (task === t) return task;
    for (const k of ['requires', 'dependsOn']) if (Array.isArray(task[k])) task[k] = [...(task[k] as unknown[])];
    if (task.retry !== undefined) {
      const retry = (task.retry = plainCopy(task.retry as Record<string, unknown>));
      if (retry.backoff !== undefined) retry.backoff = plainCopy(retry.backoff as Record<string, unknown>);
      if (Array.isArray(retry.nonRetryable)) retry.nonRetryable = [...(retry.nonRetryable as unknown[])];
    }
    if (task.compensate !== undefined) {
      const c = (task.compensate = plainCopy(task.compensate as Record<string, unknown>));
      if (Array.isArray(c.requires)) c.requires = [...(c.requires as unknown[])];
    }
    return task;
  });
  return { ...wf, tasks } as unknown as Workflow;
}

/** A shallow copy of a plain object (its own enumerable keys, each read once); anything else as it is. */
function plainCopy<T>(value: T): T & Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return value as T & Record<string, unknown>;
  const proto = Object.getPrototypeOf(value) as unknown;
  return (proto === Object.prototype || proto === null ? { ...value } : value) as T & Record<string, unknown>;
}

/** `waiter`: a `run` caller, answered with the result when the workflow ends (even at once, as a no_worker failure does). */
export function startRun(state: State, workflow: Workflow, waiter?: From<WorkflowResult>): Run | Error {
  // checked again here, in the coordinator's turn: the handle checked it in the caller's, but the
  // caller may have changed it since (a task pushed after submit: a duplicate id, an unknown
  // dependency, a cycle), and a raw call to the coordinator skips the handle
  try {
    // written to a store: the coordinator keeps its own copy, as the store does, so that what it writes
    // at each transition is the workflow it accepted, not the caller's object as changed since
    if (state.store !== undefined && !state.kept.storeUnread) workflow = deserialize(encodeValue(workflow, 'workflow')) as Workflow;
    // without a store, its structure (not its payloads) is read once now: a getter that throws only
    // later, while its tasks are dispatched, would crash the coordinator
    else workflow = snapshot(workflow);
    validateWorkflow(workflow);
  } catch (e) {
    return isInstance(e, KeelError) ? e : new InvalidArgumentError('workflow', 'a workflow that can be read (plain data)', workflow, `reading it threw: ${thrownText(e)}`);
  }
  const active = state.runs.size;
  if (active >= state.options.maxConcurrentWorkflows) {
    state.m.rejected++;
    return new WorkflowLimitError(state.options.maxConcurrentWorkflows);
  }
  // the workflow is read again here (its id, its tasks to build the run): a getter that throws only now,
  // after the checks, is the caller's typed error too, not a crash of the coordinator
  let id: string | undefined;
  let wf: Run;
  let timeoutMs: number | undefined;
  try {
    timeoutMs = workflow.timeoutMs;
    id = workflow.id;
    if (id === undefined) {
      do id = `wf-${++state.kept.seq}`;
      while (state.runs.has(id) || state.history.has(id) || state.kept.shadowed.has(id));
    } else if (state.runs.has(id) || state.history.has(id) || state.kept.shadowed.has(id)) {
      return new InvalidArgumentError('workflow.id', 'an id not used by an active or remembered workflow', id);
    }
    for (let i = 0; i < workflow.tasks.length; i++) {
      const spec = workflow.tasks[i]!;
      if (spec.aggregate === true && !state.options.aggregators.has(spec.kind)) {
        return new InvalidArgumentError(`workflow.tasks[${i}].kind`, `an aggregator of this coordinator (${[...state.options.aggregators.keys()].join(', ') || 'none'})`, spec.kind);
      }
    }
    wf = newRun(state, id, workflow, state.ctx.node.clock.now());
  } catch (e) {
    return new InvalidArgumentError('workflow', 'a workflow that can be read (plain data)', workflow, `reading it threw: ${thrownText(e)}`);
  }
  state.runs.set(id, wf);
  // a waiter from the start: a workflow that ends here answers it, whatever the history keeps (historySize 0)
  if (waiter !== undefined) addWaiter(wf, waiter);
  if (listening(state, 'workflow_started')) event(state, 'workflow_started', { tasks: wf.tasks.size }, { workflow: id });
  // a kind no worker runs fails the workflow at once (unless it may wait for a worker to join)
  if (wf.waitMs === 0) {
    for (let i = 0; i < wf.order.length; i++) {
      const t = wf.order[i]!;
      if (t.spec.aggregate !== true && !anyEligible(state, t)) {
        t.state = 'failed';
        t.error = noWorkerError(t);
        state.m.tasksFailed++;
        finish(state, wf, 'failed', t.spec.id, t.error);
        return wf;
      }
    }
  }
  touch(state, wf);
  for (let i = 0; i < wf.order.length; i++) {
    const t = wf.order[i]!;
    if (t.blockers === 0) enqueue(state, t);
  }
  if (timeoutMs !== undefined && isActive(wf)) {
    wf.deadline = wf.startedAt + timeoutMs; // on the node's clock: stored, and re-armed from by a new OS process (see Run.deadline)
    wf.timer = state.ctx.sendAfter(state.ctx.self, new WorkflowTimeout(wf), timeoutMs);
  }
  if (isActive(wf)) persist(state, wf);
  dispatch(state);
  return wf;
}

const NO_REQUIREMENTS: readonly string[] = Object.freeze([]);

/** @internal A workflow's run, every task blocked on its dependencies (not yet in the active set). */
export function newRun(state: State, id: string, workflow: Workflow, startedAt: number): Run {
  const wf: Run = {
    id, spec: workflow, deadline: undefined, tasks: new Map(), order: [], state: 'running', completed: 0, reassigned: 0, results: {}, startedAt, waiters: [], timer: undefined,
    waitMs: workflow.waitForWorkersMs ?? state.options.waitForWorkersMs, stuckMs: workflow.stuckAfterMs ?? state.options.stuckAfterMs,
    progressAt: timerNow(state), stuckTimer: undefined, stuckReported: false, completedOrder: [], undo: [], compensations: [], failure: undefined,
    unstored: state.kept.storeUnread,
  };
  for (let i = 0; i < workflow.tasks.length; i++) {
    const spec = workflow.tasks[i]!;
    const t: TaskRun = {
      wf, spec, role: 'task', undoes: undefined, kind: spec.kind, requires: spec.requires ?? NO_REQUIREMENTS, retry: toRetry(spec.retry),
      state: 'blocked', blockers: spec.dependsOn?.length ?? 0, dependents: NO_DEPENDENTS, attempts: 0, lost: 0, errors: 0,
      current: undefined, avoid: undefined, prefer: undefined, dueAt: 0, worker: undefined, result: undefined, error: undefined, waitTimer: undefined, delayTimer: undefined, startedAt: undefined, endedAt: undefined,
    };
    wf.tasks.set(spec.id, t);
    wf.order.push(t);
  }
  for (let i = 0; i < wf.order.length; i++) {
    const t = wf.order[i]!;
    const deps = t.spec.dependsOn;
    if (deps === undefined) continue;
    for (const dep of deps) {
      const before = wf.tasks.get(dep)!;
      if (before.dependents === NO_DEPENDENTS) before.dependents = [t];
      else (before.dependents as TaskRun[]).push(t);
    }
  }
  return wf;
}

/** The coordinator's counts now. */
export function metricsOf(state: State): CoordinatorMetrics {
  let running = 0;
  let busy = 0;
  for (const w of state.workers.values()) {
    running += w.running.size;
    if (w.load > 0) busy++;
  }
  const m = state.m;
  return {
    workflows: { active: state.runs.size, completed: m.completed, failed: m.failed, cancelled: m.cancelled, rejected: m.rejected },
    tasks: { completed: m.tasksCompleted, failed: m.tasksFailed, reassigned: m.reassigned, timedOut: m.timedOut, retried: m.retried, queued: state.ready.filter((t) => t !== undefined && t.state === 'ready' && (t.wf.state === 'running' || t.wf.state === 'paused')).length, running },
    workers: { total: state.workers.size, busy, left: m.left },
    history: state.history.size,
  };
}
