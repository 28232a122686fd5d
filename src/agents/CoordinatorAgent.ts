import { CallExitError, CallTimeoutError, InvalidArgumentError, isKeelError, WorkflowLimitError } from '../errors.js';
import { sendSupervised, type SendOutcome } from '../delivery/sendSupervised.js';
import { GenServer, type From, type GenServerSpec } from '../otp/GenServer.js';
import { keelServer } from '../otp/internal/keelServer.js';
import { isDown, type Down } from '../runtime/messages.js';
import { isInstance } from '../runtime/safe.js';
import { isPid, Pid } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { statusOf, type AgentCast, type AgentProtocol, type TaskResult } from './Agent.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from './component.js';
import { unwatch, watchProcess, type WatchRef } from './internal/watch.js';

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

// ---- internal state -------------------------------------------------------------------------------

interface Worker {
  readonly pid: Pid;
  readonly key: string;
  readonly capabilities: ReadonlySet<string>;
  readonly watch: WatchRef;
  load: number;
  readonly running: Set<Attempt>;
}

interface Attempt {
  readonly task: TaskRun;
  readonly worker: Worker;
  /** Set once this attempt's outcome has been taken into account (or it was made moot). */
  done: boolean;
}

interface TaskRun {
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

interface Run {
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

interface State {
  readonly ctx: Context<any>;
  readonly options: Required<Omit<CoordinatorOptions, 'workers' | 'name'>>;
  readonly workers: Map<string, Worker>;
  readonly runs: Map<string, Run>;
  readonly history: Map<string, { status: WorkflowStatus; result: WorkflowResult }>;
  /** Ready tasks in the order they became ready, from `head`; holes are tasks already taken. */
  readonly ready: (TaskRun | undefined)[];
  head: number;
  seq: number;
  readonly m: { completed: number; failed: number; cancelled: number; rejected: number; tasksCompleted: number; tasksFailed: number; reassigned: number; timedOut: number; left: number };
}

/** The coordinator's calls (its handle makes them). */
type Calls =
  | { request: { op: 'run'; workflow: Workflow; wait: true }; reply: WorkflowResult }
  | { request: { op: 'run'; workflow: Workflow; wait: false }; reply: { id: string } }
  | { request: { op: 'wait'; id: string }; reply: WorkflowResult | { error: 'not_found' } }
  | { request: { op: 'cancel'; id: string }; reply: CancelResult }
  | { request: { op: 'pause' | 'resume'; id: string }; reply: 'ok' | { error: 'not_found' | 'finished' } }
  | { request: { op: 'status'; id: string }; reply: WorkflowStatus | { error: 'not_found' } }
  | { request: { op: 'metrics' }; reply: CoordinatorMetrics }
  | { request: { op: 'workers' }; reply: { pid: Pid; capabilities: readonly string[]; load: number }[] }
  | { request: { op: 'add'; pid: Pid }; reply: 'ok' | { error: 'noproc' | 'exists' } }
  | { request: { op: 'remove'; pid: Pid }; reply: 'ok' | { error: 'not_found' } };
type Request = Calls['request'];

class Joined {
  constructor(readonly pid: Pid, readonly capabilities: readonly string[] | undefined, readonly from: From<unknown>) {}
}
class Requeue {
  constructor(readonly task: TaskRun) {}
}
/** A task a worker refused ('busy', 'duplicate_task') is offered again after this long. */
const REFUSED_RETRY_MS = 50;
class WorkflowTimeout {
  constructor(readonly id: string) {}
}

/** How long `start` waits for each initial worker's status (well within the 5 s start deadline). */
const STATUS_AT_START_MS = 1000;

/** The id a task carries to its agent: unique across the coordinator's workflows. */
const agentTaskId = (task: TaskRun): string => `${task.wf.id}/${task.spec.id}`;
const pidKey = (pid: Pid): string => Pid.format(pid);

function event(state: State, name: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  state.ctx.node.telemetry.execute(`keel.coordinator.${name}`, measurements, { coordinator: state.ctx.self, ...metadata });
}

// ---- workers ----------------------------------------------------------------------------------------

function addWorker(state: State, pid: Pid, capabilities: readonly string[]): 'ok' | { error: 'noproc' | 'exists' } {
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
function removeWorker(state: State, worker: Worker, reason: string, monitorFired = false): void {
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
function dispatch(state: State): void {
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
function cancelRunning(state: State, wf: Run): Promise<{ worker: Pid; taskId: string; outcome: SendOutcome }[]> {
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

function statusOfRun(wf: Run, finishedAt?: number): WorkflowStatus {
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

function finish(state: State, wf: Run, status: 'completed' | 'failed' | 'cancelled', failedTask?: string, error?: unknown): void {
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

function startRun(state: State, workflow: Workflow): Run | Error {
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

// ---- the server -----------------------------------------------------------------------------------------

type Init = { options: State['options']; workers: readonly Pid[] };

const coordinatorSpec: GenServerSpec<State, { request: Request; reply: unknown }, never, Init> = keelServer({
  async init({ options, workers }, ctx) {
    const state: State = {
      ctx,
      options,
      workers: new Map(),
      runs: new Map(),
      history: new Map(),
      ready: [],
      head: 0,
      seq: 0,
      m: { completed: 0, failed: 0, cancelled: 0, rejected: 0, tasksCompleted: 0, tasksFailed: 0, reassigned: 0, timedOut: 0, left: 0 },
    };
    // the initial pool: each worker says what it can do; one that does not answer is left out
    const statuses = await Promise.allSettled(workers.map((w) => statusOf(ctx, w, { timeout: Math.min(options.taskTimeoutMs, STATUS_AT_START_MS) })));
    statuses.forEach((s, i) => {
      if (s.status === 'fulfilled') addWorker(state, workers[i]!, s.value.capabilities);
      else event(state, 'worker_refused', {}, { worker: workers[i], error: s.reason });
    });
    return state;
  },

  handleCall(request, from, state, ctx) {
    switch (request?.op) {
      case 'run': {
        const wf = startRun(state, request.workflow);
        if (wf instanceof Error) return { reply: wf, state };
        if (!request.wait) return { reply: { id: wf.id }, state };
        if (wf.state === 'running' || wf.state === 'paused') {
          wf.waiters.push(from as From<WorkflowResult>);
          return { noreply: true, state };
        }
        return { reply: state.history.get(wf.id)!.result, state };
      }
      case 'wait': {
        const wf = state.runs.get(request.id);
        if (wf !== undefined) {
          wf.waiters.push(from as From<WorkflowResult>);
          return { noreply: true, state };
        }
        return { reply: state.history.get(request.id)?.result ?? { error: 'not_found' }, state };
      }
      case 'cancel': {
        const wf = state.runs.get(request.id);
        if (wf === undefined) return { reply: { error: state.history.has(request.id) ? 'finished' : 'not_found' }, state };
        const notified = cancelRunning(state, wf);
        finish(state, wf, 'cancelled');
        notified.then((list) => GenServer.reply(from, { cancelled: true, notified: list }));
        return { noreply: true, state };
      }
      case 'pause':
      case 'resume': {
        const wf = state.runs.get(request.id);
        if (wf === undefined) return { reply: { error: state.history.has(request.id) ? 'finished' : 'not_found' }, state };
        wf.state = request.op === 'pause' ? 'paused' : 'running';
        event(state, request.op === 'pause' ? 'workflow_paused' : 'workflow_resumed', {}, { workflow: wf.id });
        dispatch(state);
        return { reply: 'ok', state };
      }
      case 'status': {
        const wf = state.runs.get(request.id);
        return { reply: wf !== undefined ? statusOfRun(wf) : (state.history.get(request.id)?.status ?? { error: 'not_found' }), state };
      }
      case 'metrics': {
        let running = 0;
        let busy = 0;
        for (const w of state.workers.values()) {
          running += w.running.size;
          if (w.load > 0) busy++;
        }
        const m = state.m;
        const metrics: CoordinatorMetrics = {
          workflows: { active: state.runs.size, completed: m.completed, failed: m.failed, cancelled: m.cancelled, rejected: m.rejected },
          tasks: { completed: m.tasksCompleted, failed: m.tasksFailed, reassigned: m.reassigned, timedOut: m.timedOut, queued: state.ready.filter((t) => t !== undefined && t.state === 'ready' && (t.wf.state === 'running' || t.wf.state === 'paused')).length, running },
          workers: { total: state.workers.size, busy, left: m.left },
          history: state.history.size,
        };
        return { reply: metrics, state };
      }
      case 'workers':
        return { reply: [...state.workers.values()].map((w) => ({ pid: w.pid, capabilities: [...w.capabilities], load: w.load })), state };
      case 'add': {
        if (state.workers.has(pidKey(request.pid))) return { reply: { error: 'exists' }, state };
        // ask for its capabilities without blocking the coordinator
        statusOf(ctx, request.pid, { timeout: state.options.taskTimeoutMs }).then(
          (s) => ctx.send(ctx.self, new Joined(request.pid, s.capabilities, from)),
          () => ctx.send(ctx.self, new Joined(request.pid, undefined, from)),
        );
        return { noreply: true, state };
      }
      case 'remove': {
        const w = state.workers.get(pidKey(request.pid));
        if (w === undefined) return { reply: { error: 'not_found' }, state };
        removeWorker(state, w, 'removed');
        return { reply: 'ok', state };
      }
      default:
        // a malformed call straight to the process: the caller gets a typed error, the coordinator goes on
        return { reply: new InvalidArgumentError('request', 'a coordinator request (use the handle)', request), state };
    }
  },

  handleInfo(message, state) {
    if (isInstance(message, Joined)) {
      GenServer.reply(message.from, message.capabilities === undefined ? { error: 'noproc' } : addWorker(state, message.pid, message.capabilities));
    } else if (isInstance(message, Requeue)) {
      const t = message.task;
      if (t.state === 'delayed' && (t.wf.state === 'running' || t.wf.state === 'paused')) {
        t.state = 'ready';
        state.ready.push(t);
        dispatch(state);
      }
    } else if (isInstance(message, WorkflowTimeout)) {
      const wf = state.runs.get(message.id);
      if (wf !== undefined) finish(state, wf, 'failed', undefined, 'timeout');
    } else if (isDown(message)) {
      const w = state.workers.get(pidKey((message as Down).pid as Pid));
      if (w !== undefined && w.watch.ref === (message as Down).ref) removeWorker(state, w, 'down', true);
    }
    return state;
  },

  terminate(_reason, state) {
    for (const w of state.workers.values()) {
      if (w.watch.managed) state.ctx.node.monitors.demonitor(state.ctx, w.watch.ref);
    }
  },
}, 'a coordinator (use its handle)', 'bare');

// ---- validation and the handle ----------------------------------------------------------------------

function positive(value: unknown, argument: string, integer: boolean): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0 || (integer ? !Number.isSafeInteger(value) : !Number.isFinite(value))) {
    throw new InvalidArgumentError(argument, integer ? 'a positive integer' : 'a positive finite number of ms', value);
  }
}

function validateOptions(options: CoordinatorOptions): Init {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a CoordinatorOptions object', options);
  const workers = options.workers ?? [];
  if (!Array.isArray(workers)) throw new InvalidArgumentError('options.workers', 'an array of Pids', workers);
  workers.forEach((w, i) => {
    if (!isPid(w)) throw new InvalidArgumentError(`options.workers[${i}]`, 'a Pid', w);
  });
  const o = {
    maxConcurrentWorkflows: options.maxConcurrentWorkflows ?? 100,
    taskTimeoutMs: options.taskTimeoutMs ?? 30_000,
    maxTaskAttempts: options.maxTaskAttempts ?? 3,
    maxTasksPerWorker: options.maxTasksPerWorker ?? 1,
    historySize: options.historySize ?? 100,
  };
  positive(o.maxConcurrentWorkflows, 'options.maxConcurrentWorkflows', true);
  positive(o.taskTimeoutMs, 'options.taskTimeoutMs', false);
  positive(o.maxTaskAttempts, 'options.maxTaskAttempts', true);
  positive(o.maxTasksPerWorker, 'options.maxTasksPerWorker', true);
  if (!Number.isSafeInteger(o.historySize) || o.historySize < 0) throw new InvalidArgumentError('options.historySize', 'an integer >= 0', o.historySize);
  return { options: o, workers };
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Checks a workflow's shape: unique task ids, known dependencies, no cycle. */
export function validateWorkflow(workflow: Workflow): void {
  if (typeof workflow !== 'object' || workflow === null) throw new InvalidArgumentError('workflow', '{ id?, tasks: WorkflowTask[], timeoutMs? }', workflow);
  if (workflow.id !== undefined && (typeof workflow.id !== 'string' || workflow.id === '')) throw new InvalidArgumentError('workflow.id', 'a non-empty string', workflow.id);
  if (workflow.timeoutMs !== undefined) positive(workflow.timeoutMs, 'workflow.timeoutMs', false);
  const tasks = workflow.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0) throw new InvalidArgumentError('workflow.tasks', 'a non-empty array of tasks', tasks);
  const ids = new Set<string>();
  tasks.forEach((t: WorkflowTask, i: number) => {
    const at = `workflow.tasks[${i}]`;
    if (typeof t !== 'object' || t === null) throw new InvalidArgumentError(at, '{ id, kind, payload?, requires?, dependsOn?, timeoutMs? }', t);
    if (typeof t.id !== 'string' || t.id === '') throw new InvalidArgumentError(`${at}.id`, 'a non-empty string', t.id);
    if (ids.has(t.id)) throw new InvalidArgumentError(`${at}.id`, 'an id unique within the workflow', t.id);
    ids.add(t.id);
    if (typeof t.kind !== 'string') throw new InvalidArgumentError(`${at}.kind`, 'a string', t.kind);
    if (t.requires !== undefined && !isStringArray(t.requires)) throw new InvalidArgumentError(`${at}.requires`, 'an array of capability names', t.requires);
    if (t.dependsOn !== undefined && !isStringArray(t.dependsOn)) throw new InvalidArgumentError(`${at}.dependsOn`, 'an array of task ids', t.dependsOn);
    if (t.dependsOn !== undefined && new Set(t.dependsOn).size !== t.dependsOn.length) throw new InvalidArgumentError(`${at}.dependsOn`, 'distinct task ids (each listed once)', t.dependsOn);
    if (t.timeoutMs !== undefined) positive(t.timeoutMs, `${at}.timeoutMs`, false);
  });
  tasks.forEach((t, i) => {
    for (const dep of t.dependsOn ?? []) {
      if (!ids.has(dep)) throw new InvalidArgumentError(`workflow.tasks[${i}].dependsOn`, 'ids of tasks of this workflow', dep);
      if (dep === t.id) throw new InvalidArgumentError(`workflow.tasks[${i}].dependsOn`, 'other tasks (a task cannot depend on itself)', dep);
    }
  });
  // Kahn: every task must be reachable from the tasks without dependencies
  const blockers = new Map(tasks.map((t) => [t.id, t.dependsOn?.length ?? 0]));
  const queue = tasks.filter((t) => (t.dependsOn?.length ?? 0) === 0).map((t) => t.id);
  let seen = 0;
  while (queue.length > 0) {
    const id = queue.pop()!;
    seen++;
    for (const t of tasks) {
      if (t.dependsOn?.includes(id)) {
        const n = blockers.get(t.id)! - 1;
        blockers.set(t.id, n);
        if (n === 0) queue.push(t.id);
      }
    }
  }
  if (seen !== tasks.length) {
    const cycle = tasks.filter((t) => blockers.get(t.id)! > 0).map((t) => t.id);
    throw new InvalidArgumentError('workflow.tasks', 'dependencies without a cycle', cycle, `these tasks wait on each other: ${cycle.join(', ')}`);
  }
}

function checkId(id: unknown): void {
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a workflow id (a non-empty string)', id);
}

function handleFor(node: Node, name: string, started: Pid): CoordinatorHandle {
  // the coordinator answers every call (a run when its workflow ends): no call timeout of its own
  const call = componentCaller<Calls>(node, name, { timeout: Infinity });
  return componentHandle<CoordinatorHandle>(node, name, started, {
    run: (workflow) => {
      validateWorkflow(workflow);
      return call({ op: 'run', workflow, wait: true });
    },
    submit: (workflow) => {
      validateWorkflow(workflow);
      return call({ op: 'run', workflow, wait: false });
    },
    wait: (id) => (checkId(id), call({ op: 'wait', id })),
    cancel: (id) => (checkId(id), call({ op: 'cancel', id })),
    pause: (id) => (checkId(id), call({ op: 'pause', id })),
    resume: (id) => (checkId(id), call({ op: 'resume', id })),
    status: (id) => (checkId(id), call({ op: 'status', id })),
    metrics: () => call({ op: 'metrics' }),
    addWorker: (w) => {
      if (!isPid(w)) throw new InvalidArgumentError('pid', 'a Pid', w);
      return call({ op: 'add', pid: w });
    },
    removeWorker: (w) => {
      if (!isPid(w)) throw new InvalidArgumentError('pid', 'a Pid', w);
      return call({ op: 'remove', pid: w });
    },
    workers: () => call({ op: 'workers' }),
  });
}

/**
 * A coordinator: runs workflows of tasks over a pool of agents. A task starts when the tasks it
 * depends on have completed and goes to the least-loaded worker that has every capability it
 * requires. A worker that dies leaves the pool and its task goes to another worker; a task that
 * times out is cancelled on its worker and tried again, up to `maxTaskAttempts`. Finished workflows
 * leave the active set; the last `historySize` stay queryable.
 *
 * @example
 * ```ts
 * const coordinator = await CoordinatorAgent.start(node, { workers: [a.pid, b.pid] });
 * const result = await coordinator.run({ tasks: [
 *   { id: 'fetch', kind: 'fetch', payload: url, requires: ['http'] },
 *   { id: 'parse', kind: 'parse', dependsOn: ['fetch'] },
 * ] });
 * console.log(result.status, result.results.parse);
 * ```
 */
export const CoordinatorAgent = {
  /** Starts a coordinator; bad options throw `ERR_INVALID_ARGUMENT` before anything starts. */
  start(from: Node | Context<any>, options: CoordinatorOptions = {}): Promise<CoordinatorHandle> {
    const init = validateOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'coordinator', options.name);
    return startComponent(from, coordinatorSpec, init, name).then((pid) => handleFor(node, name, pid));
  },
};
