import { CallExitError, CallTimeoutError, InvalidArgumentError, isKeelError, WorkflowLimitError } from '../../errors.js';
import { sendSupervised, type SendOutcome } from '../../delivery/sendSupervised.js';
import { GenServer, type From } from '../../otp/GenServer.js';
import { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import type { AgentCast, AgentProtocol, TaskResult } from '../Agent.js';
import { unwatch, watchProcess, type WatchRef } from '../internal/watch.js';
import type { CoordinatorMetrics, Workflow, WorkflowResult, WorkflowState, WorkflowStatus, WorkflowTask } from './types.js';
import type { Settings } from './validate.js';

/**
 * @internal The coordinator's state and its dispatch state machine. A workflow is a {@link Run} of
 * {@link TaskRun}s: blocked (on its dependencies), ready (queued), delayed (refused by a worker,
 * offered again shortly), running (an {@link Attempt} on a worker), then completed or failed. Ready
 * tasks go, in order, to the least-loaded capable worker with room; a worker that dies or a task that
 * times out sends the task to another worker, up to `maxTaskAttempts`. Every function here runs in
 * the coordinator's turn (a call's answer comes back through a promise the server awaits).
 */

export interface Worker {
  readonly pid: Pid;
  readonly key: string;
  readonly capabilities: ReadonlySet<string>;
  readonly watch: WatchRef;
  load: number;
  readonly running: Set<Attempt>;
}

export interface Attempt {
  readonly task: TaskRun;
  readonly worker: Worker;
  /** Set once this attempt's outcome has been taken into account (or it was made moot). */
  done: boolean;
}

export interface TaskRun {
  readonly wf: Run;
  readonly spec: WorkflowTask;
  readonly requires: readonly string[];
  state: 'blocked' | 'ready' | 'delayed' | 'running' | 'completed' | 'failed';
  /** The worker that last timed out or refused it: the next attempt goes elsewhere if it can. */
  avoid: Worker | undefined;
  blockers: number;
  readonly dependents: TaskRun[];
  attempts: number;
  current: Attempt | undefined;
}

export interface Run {
  readonly id: string;
  readonly tasks: Map<string, TaskRun>;
  state: WorkflowState;
  completed: number;
  reassigned: number;
  readonly results: Record<string, unknown>;
  readonly startedAt: number;
  readonly waiters: From<WorkflowResult>[];
  timer: unknown;
}

export interface State {
  readonly ctx: Context<any>;
  readonly options: Settings;
  readonly workers: Map<string, Worker>;
  readonly runs: Map<string, Run>;
  readonly history: Map<string, { status: WorkflowStatus; result: WorkflowResult }>;
  /** Ready tasks in the order they became ready, from `head`; holes are tasks already taken. */
  readonly ready: (TaskRun | undefined)[];
  head: number;
  seq: number;
  readonly m: { completed: number; failed: number; cancelled: number; rejected: number; tasksCompleted: number; tasksFailed: number; reassigned: number; timedOut: number; left: number };
}

/** A worker asked to join answered its status (capabilities undefined: it did not). */
export class Joined {
  constructor(readonly pid: Pid, readonly capabilities: readonly string[] | undefined, readonly from: From<unknown>) {}
}
/** A refused task's delay is over: it is ready again. */
export class Requeue {
  constructor(readonly task: TaskRun) {}
}
/** A task a worker refused ('busy', 'duplicate_task') is offered again after this long. */
const REFUSED_RETRY_MS = 50;
/** A workflow's `timeoutMs` is over. */
export class WorkflowTimeout {
  constructor(readonly id: string) {}
}

/** The id a task carries to its agent: unique across the coordinator's workflows. */
const agentTaskId = (task: TaskRun): string => `${task.wf.id}/${task.spec.id}`;
export const pidKey = (pid: Pid): string => Pid.format(pid);

/** Emits `keel.coordinator.<name>`. */
export function event(state: State, name: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  state.ctx.node.telemetry.execute(`keel.coordinator.${name}`, measurements, { coordinator: state.ctx.self, ...metadata });
}

// ---- workers ----------------------------------------------------------------------------------------

export function addWorker(state: State, pid: Pid, capabilities: readonly string[]): 'ok' | { error: 'noproc' | 'exists' } {
  const key = pidKey(pid);
  if (state.workers.has(key)) return { error: 'exists' };
  const watch = watchProcess(state.ctx, pid, 'coordinator');
  if (watch === 'noproc') return { error: 'noproc' };
  state.workers.set(key, { pid, key, capabilities: new Set(capabilities), watch, load: 0, running: new Set() });
  event(state, 'worker_joined', {}, { worker: pid, capabilities });
  dispatch(state);
  return 'ok';
}

/** The worker leaves the pool; its running tasks go to other workers. */
export function removeWorker(state: State, worker: Worker, reason: string, monitorFired = false): void {
  if (state.workers.get(worker.key) !== worker) return;
  state.workers.delete(worker.key);
  state.m.left++;
  if (!monitorFired) unwatch(state.ctx, worker.watch);
  event(state, 'worker_left', {}, { worker: worker.pid, reason });
  for (const attempt of [...worker.running]) {
    // a worker taken out alive is told to stop what it runs for us (a dead one has stopped)
    if (reason === 'removed' && !attempt.done) {
      void cancelOn(state, worker.pid, agentTaskId(attempt.task));
    }
    retry(state, attempt, reason, true);
  }
  dispatch(state);
}

// ---- dispatch -----------------------------------------------------------------------------------------

function capable(worker: Worker, task: TaskRun): boolean {
  for (const c of task.requires) if (!worker.capabilities.has(c)) return false;
  return true;
}

/**
 * Gives ready tasks, in order, to the least-loaded capable worker with room. The ready queue is an
 * array read from `head`: a task taken from the front advances it, one taken from further in leaves
 * a hole, and tasks that must wait (paused workflow, no capable worker with room) stay in place.
 */
export function dispatch(state: State): void {
  const max = state.options.maxTasksPerWorker;
  let free = 0;
  for (const w of state.workers.values()) if (w.load < max) free++;
  const ready = state.ready;
  for (let i = state.head; i < ready.length && free > 0; i++) {
    const task = ready[i];
    if (task === undefined) continue;
    let take = task.state !== 'ready' || (task.wf.state !== 'running' && task.wf.state !== 'paused'); // finished while queued
    if (!take && task.wf.state === 'running') {
      let best: Worker | undefined;
      let fallback: Worker | undefined;
      for (const w of state.workers.values()) {
        if (w.load >= max || !capable(w, task)) continue;
        if (w === task.avoid) fallback = w;
        else if (best === undefined || w.load < best.load) best = w;
      }
      best ??= fallback;
      if (best !== undefined) {
        if (best.load + 1 >= max) free--;
        assign(state, task, best);
        take = true;
      }
    }
    if (take) {
      ready[i] = undefined;
      if (i === state.head) state.head++;
    }
  }
  while (state.head < ready.length && ready[state.head] === undefined) state.head++;
  if (state.head === ready.length) {
    ready.length = 0;
    state.head = 0;
  } else if (state.head > 1024 && state.head * 2 > ready.length) {
    ready.splice(0, state.head);
    state.head = 0;
  }
}

function assign(state: State, task: TaskRun, worker: Worker): void {
  const attempt: Attempt = { task, worker, done: false };
  task.state = 'running';
  task.current = attempt;
  task.avoid = undefined;
  task.attempts++;
  worker.load++;
  worker.running.add(attempt);
  const timeout = task.spec.timeoutMs ?? state.options.taskTimeoutMs;
  const request = { type: 'run_task' as const, task: { id: agentTaskId(task), kind: task.spec.kind, payload: task.spec.payload } };
  GenServer.call<AgentProtocol>(state.ctx, worker.pid, request, { timeout }).then(
    (result) => settled(state, attempt, result as TaskResult, undefined),
    (error: unknown) => settled(state, attempt, undefined, error),
  );
}

/** A worker answered (or the call failed): load goes down as work completes. */
function settled(state: State, attempt: Attempt, result: TaskResult | undefined, error: unknown): void {
  const worker = attempt.worker;
  if (worker.running.delete(attempt)) worker.load--;
  if (attempt.done || state.ctx.signal.aborted) {
    dispatch(state);
    return;
  }
  const task = attempt.task;
  if (result !== undefined) {
    attempt.done = true;
    task.current = undefined;
    if (result.ok) completeTask(state, task, result.result);
    else if (result.error === 'busy' || result.error === 'duplicate_task') requeue(state, task, worker);
    else failTask(state, task, result.error);
  } else if (isKeelError(error, 'ERR_CALL_TIMEOUT') || error instanceof CallTimeoutError) {
    state.m.timedOut++;
    event(state, 'task_timeout', { attempt: task.attempts }, { workflow: task.wf.id, task: task.spec.id, worker: worker.pid });
    // the worker may still be running it: tell it to stop, then give the task to someone else
    void cancelOn(state, worker.pid, agentTaskId(task));
    retry(state, attempt, 'timeout', false);
  } else if (isKeelError(error, 'ERR_CALL_EXIT') || isKeelError(error, 'ERR_NOPROC') || error instanceof CallExitError) {
    // the worker died with the task: it leaves the pool, the task goes to another worker
    retry(state, attempt, 'down', true);
    removeWorker(state, worker, 'down');
  } else {
    attempt.done = true;
    task.current = undefined;
    failTask(state, task, error);
  }
  dispatch(state);
}

function requeue(state: State, task: TaskRun, worker: Worker): void {
  task.state = 'delayed';
  task.attempts--; // the worker refused it without running it
  task.avoid = worker;
  state.ctx.sendAfter(state.ctx.self, new Requeue(task), REFUSED_RETRY_MS);
}

/** A refused task's delay is over: it is ready again, unless its workflow ended meanwhile. */
export function readyAgain(state: State, task: TaskRun): void {
  if (task.state === 'delayed' && (task.wf.state === 'running' || task.wf.state === 'paused')) {
    task.state = 'ready';
    state.ready.push(task);
    dispatch(state);
  }
}

/** The attempt is over without a result: another attempt, or the workflow fails past maxTaskAttempts. */
function retry(state: State, attempt: Attempt, reason: string, reassigned: boolean): void {
  if (attempt.done) return;
  attempt.done = true;
  if (attempt.worker.running.delete(attempt)) attempt.worker.load--;
  const task = attempt.task;
  task.current = undefined;
  if (task.wf.state !== 'running' && task.wf.state !== 'paused') return;
  if (task.attempts >= state.options.maxTaskAttempts) {
    failTask(state, task, reason);
    return;
  }
  task.wf.reassigned++;
  state.m.reassigned++;
  event(state, 'task_reassigned', { attempt: task.attempts }, { workflow: task.wf.id, task: task.spec.id, worker: attempt.worker.pid, reason, reassigned });
  task.state = 'ready';
  task.avoid = attempt.worker;
  state.ready.push(task);
}

function completeTask(state: State, task: TaskRun, result: unknown): void {
  task.state = 'completed';
  state.m.tasksCompleted++;
  const wf = task.wf;
  wf.results[task.spec.id] = result;
  wf.completed++;
  for (const d of task.dependents) {
    if (--d.blockers === 0 && d.state === 'blocked') {
      d.state = 'ready';
      state.ready.push(d);
    }
  }
  if (wf.completed === wf.tasks.size) finish(state, wf, 'completed');
}

function failTask(state: State, task: TaskRun, error: unknown): void {
  task.state = 'failed';
  state.m.tasksFailed++;
  finish(state, task.wf, 'failed', task.spec.id, error);
}

/** Tells a worker to stop a task, through supervised send (its outcome says whether it got there). */
function cancelOn(state: State, worker: Pid, taskId: string): Promise<SendOutcome> {
  return sendSupervised(state.ctx, worker, { type: 'cancel_task', taskId } satisfies AgentCast, { onError: 'ignore' });
}

/** Cancels the workflow's running tasks on their workers through supervised sends. */
export function cancelRunning(state: State, wf: Run): Promise<{ worker: Pid; taskId: string; outcome: SendOutcome }[]> {
  const sends: Promise<{ worker: Pid; taskId: string; outcome: SendOutcome }>[] = [];
  for (const task of wf.tasks.values()) {
    const attempt = task.current;
    if (attempt === undefined || attempt.done) continue;
    attempt.done = true; // its answer no longer counts; the worker's load drops when it answers
    task.current = undefined;
    const taskId = agentTaskId(task);
    const worker = attempt.worker.pid;
    sends.push(cancelOn(state, worker, taskId).then((outcome) => ({ worker, taskId, outcome })));
  }
  return Promise.all(sends);
}

export function statusOfRun(wf: Run, finishedAt?: number): WorkflowStatus {
  let running = 0;
  let failed = 0;
  for (const t of wf.tasks.values()) {
    if (t.state === 'running' && t.current !== undefined) running++;
    else if (t.state === 'failed') failed++;
  }
  const waiting = wf.tasks.size - wf.completed - running - failed;
  return {
    id: wf.id,
    state: wf.state,
    tasks: { total: wf.tasks.size, completed: wf.completed, running, waiting, failed },
    reassigned: wf.reassigned,
    startedAt: wf.startedAt,
    ...(finishedAt === undefined ? {} : { finishedAt }),
  };
}

export function finish(state: State, wf: Run, status: 'completed' | 'failed' | 'cancelled', failedTask?: string, error?: unknown): void {
  if (wf.state !== 'running' && wf.state !== 'paused') return;
  if (status !== 'cancelled') void cancelRunning(state, wf);
  wf.state = status;
  if (wf.timer !== undefined) state.ctx.cancelTimer(wf.timer as never);
  const finishedAt = state.ctx.node.clock.now();
  const result: WorkflowResult = {
    id: wf.id,
    status,
    results: wf.results,
    ...(failedTask === undefined ? {} : { failedTask }),
    ...(status === 'failed' ? { error } : {}),
    reassigned: wf.reassigned,
    startedAt: wf.startedAt,
    finishedAt,
  };
  state.runs.delete(wf.id);
  state.history.set(wf.id, { status: statusOfRun(wf, finishedAt), result });
  while (state.history.size > state.options.historySize) state.history.delete(state.history.keys().next().value!);
  if (status === 'completed') state.m.completed++;
  else if (status === 'failed') state.m.failed++;
  else state.m.cancelled++;
  event(state, 'workflow_finished', { durationMs: finishedAt - wf.startedAt, tasks: wf.tasks.size, reassigned: wf.reassigned }, { workflow: wf.id, status, failedTask, error });
  for (const from of wf.waiters) GenServer.reply(from, result);
  wf.waiters.length = 0;
}

export function startRun(state: State, workflow: Workflow): Run | Error {
  const active = state.runs.size;
  if (active >= state.options.maxConcurrentWorkflows) {
    state.m.rejected++;
    return new WorkflowLimitError(state.options.maxConcurrentWorkflows);
  }
  let id = workflow.id;
  if (id === undefined) {
    do id = `wf-${++state.seq}`;
    while (state.runs.has(id) || state.history.has(id));
  } else if (state.runs.has(id) || state.history.has(id)) {
    return new InvalidArgumentError('workflow.id', 'an id not used by an active or remembered workflow', id);
  }
  const wf: Run = { id, tasks: new Map(), state: 'running', completed: 0, reassigned: 0, results: {}, startedAt: state.ctx.node.clock.now(), waiters: [], timer: undefined };
  for (const spec of workflow.tasks) {
    wf.tasks.set(spec.id, { wf, spec, requires: spec.requires ?? [], state: 'blocked', blockers: spec.dependsOn?.length ?? 0, dependents: [], attempts: 0, current: undefined, avoid: undefined });
  }
  for (const t of wf.tasks.values()) for (const dep of t.spec.dependsOn ?? []) wf.tasks.get(dep)!.dependents.push(t);
  state.runs.set(id, wf);
  event(state, 'workflow_started', { tasks: wf.tasks.size }, { workflow: id });
  for (const t of wf.tasks.values()) {
    if (t.blockers === 0) {
      t.state = 'ready';
      state.ready.push(t);
    }
  }
  if (workflow.timeoutMs !== undefined) wf.timer = state.ctx.sendAfter(state.ctx.self, new WorkflowTimeout(id), workflow.timeoutMs);
  dispatch(state);
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
    tasks: { completed: m.tasksCompleted, failed: m.tasksFailed, reassigned: m.reassigned, timedOut: m.timedOut, queued: state.ready.filter((t) => t !== undefined && t.state === 'ready' && (t.wf.state === 'running' || t.wf.state === 'paused')).length, running },
    workers: { total: state.workers.size, busy, left: m.left },
    history: state.history.size,
  };
}
