import { CallExitError, CallTimeoutError, isKeelError, MailboxFullError } from '../../errors.js';
import { sendSupervised, type SendOutcome } from '../../delivery/sendSupervised.js';
import { callListening, type CallListener } from '../../otp/internal/calls.js';
import type { Pid } from '../../runtime/Pid.js';
import type { AgentCast, AgentProtocol, AgentTask, TaskResult } from '../Agent.js';
import { unwatch, watchProcess } from '../internal/watch.js';
import { retryDelay } from './policy.js';
import { recordResult, recordTask } from './durable.js';
import { AggregateTimeout, agentTaskId, anyEligible, eligible, event, noWorkerError, NoWorkerDue, pidKey, put, Requeue, RunningList, timerNow, wanted, type Attempt, type Run, type State, type TaskRun, type Worker } from './state.js';
import { touch } from './stuck.js';

export { AggregateTimeout, agentTaskId, event, Joined, listening, NO_DEPENDENTS, NoWorkerDue, pidKey, put, Requeue, stopTaskTimers, timerNow, wanted, WorkflowTimeout } from './state.js';
export type { Attempt, Run, State, TaskRun, Worker } from './state.js';

/**
 * @internal The coordinator's dispatch state machine (its state is in state.ts). A workflow is a {@link Run} of
 * {@link TaskRun}s: blocked (on its dependencies), ready (queued), delayed (refused by a worker or
 * waiting out a retry backoff), running (an {@link Attempt} on a worker, or an aggregate step in the
 * coordinator), then completed or failed. Ready tasks go, in order, to the least-loaded worker that
 * runs their kind and has their capabilities; a worker that dies or a task that times out sends the
 * task to another worker, up to `maxTaskAttempts`; a task that fails with an error is retried per
 * its `retry` policy. A task that ends for good ends its workflow, or moves its saga on, through
 * `state.ends` (runs.ts and saga.ts, which start tasks here). Every function here runs in the
 * coordinator's turn.
 */

/** A task a worker refused ('busy', 'duplicate_task', or a full mailbox: ERR_MAILBOX_FULL) is offered again after this long. */
const REFUSED_RETRY_MS = 50;

// ---- workers ----------------------------------------------------------------------------------------

export function addWorker(state: State, pid: Pid, capabilities: readonly string[], kinds: readonly string[] | undefined): 'ok' | { error: 'noproc' | 'exists' } {
  const key = pidKey(pid);
  if (state.workers.has(key)) return { error: 'exists' };
  const watch = watchProcess(state.ctx, pid, 'coordinator');
  if (watch === 'noproc') return { error: 'noproc' };
  const worker: Worker = { pid, key, capabilities: new Set(capabilities), kinds: kinds === undefined ? undefined : new Set(kinds), watch, load: 0, index: state.pool.length, running: new RunningList() };
  state.workers.set(key, worker);
  state.pool.push(worker);
  state.free++;
  event(state, 'worker_joined', {}, { worker: pid, capabilities, kinds: kinds ?? '*' });
  dispatch(state);
  return 'ok';
}

/** The worker leaves the pool; its running tasks go to other workers. */
export function removeWorker(state: State, worker: Worker, reason: string, monitorFired = false): void {
  if (state.workers.get(worker.key) !== worker) return;
  state.workers.delete(worker.key);
  const pool = state.pool;
  const at = pool[worker.index] === worker ? worker.index : pool.indexOf(worker);
  if (at >= 0) {
    pool.splice(at, 1);
    for (let k = at; k < pool.length; k++) pool[k]!.index = k;
    if (at < state.fullBelow) state.fullBelow = at;
  }
  if (worker.load < state.options.maxTasksPerWorker) state.free--;
  state.m.left++;
  if (!monitorFired) unwatch(state.ctx, worker.watch);
  event(state, 'worker_left', {}, { worker: worker.pid, reason });
  for (const attempt of worker.running.toArray()) {
    // a worker taken out alive is told to stop what it runs for us (a dead one has stopped)
    if (reason === 'removed' && !attempt.done) {
      void cancelOn(state, worker.pid, agentTaskId(attempt.task));
    }
    retry(state, attempt, reason, true);
  }
  // ready tasks that only this worker could run now wait for one (bounded by waitForWorkersMs)
  for (let i = state.head; i < state.tail; i++) {
    const t = state.ready[i];
    if (t !== undefined && t.state === 'ready' && wanted(t)) watchForWorker(state, t);
  }
  dispatch(state);
}

// ---- dispatch -----------------------------------------------------------------------------------------

/** An attempt of the worker ended: one more slot (counted free if it is still in the pool). */
function unload(state: State, worker: Worker): void {
  if (worker.load-- === state.options.maxTasksPerWorker && state.workers.get(worker.key) === worker) {
    state.free++;
    if (worker.index < state.fullBelow) state.fullBelow = worker.index;
  }
}

/** A ready task no worker in the pool can run: with a finite `waitForWorkersMs`, a deadline for one to join. */
function watchForWorker(state: State, task: TaskRun): void {
  if (task.spec.aggregate === true && task.role === 'task') return;
  if (task.waitTimer !== undefined || task.wf.waitMs === Infinity || task.wf.waitMs === 0 || anyEligible(state, task)) return;
  task.waitTimer = state.ctx.sendAfter(state.ctx.self, new NoWorkerDue(task), task.wf.waitMs);
}

/** A task's wait for a worker is over: it fails with `no_worker` unless a worker can run it now. */
export function noWorkerDue(state: State, task: TaskRun): void {
  task.waitTimer = undefined;
  if (task.state !== 'ready' || !wanted(task) || anyEligible(state, task)) return;
  failTask(state, task, noWorkerError(task));
  dispatch(state);
}

/** Queues a task that became ready (an aggregate step of a running workflow runs at once). */
export function enqueue(state: State, task: TaskRun): void {
  task.state = 'ready';
  if (task.spec.aggregate === true && task.role === 'task') {
    if (task.wf.state === 'running') runAggregate(state, task);
    else state.ready[state.tail++] = task; // paused: runs on resume
    return;
  }
  state.ready[state.tail++] = task;
  watchForWorker(state, task);
}

/**
 * Gives ready tasks, in order, to the least-loaded eligible worker with room. The ready queue is an
 * array read from `head`: a task taken from the front advances it, one taken from further in leaves
 * a hole, and tasks that must wait (paused workflow, no eligible worker with room) stay in place.
 */
export function dispatch(state: State): void {
  // a dead coordinator's late answers must not move tasks its successor now runs (they share them)
  if (state.dead) return;
  const max = state.options.maxTasksPerWorker;
  const ready = state.ready;
  const pool = state.pool;
  for (let i = state.head; i < state.tail && state.free > 0; i++) {
    const task = ready[i];
    if (task === undefined) continue;
    let take = task.state !== 'ready' || !wanted(task); // finished or taken while queued
    if (!take && task.wf.state !== 'paused') {
      if (task.spec.aggregate === true && task.role === 'task') {
        runAggregate(state, task);
        take = true;
      } else {
        let best = preferred(state, task);
        let fallback: Worker | undefined;
        // the workers below fullBelow have no room: skipped, as the scan would; full ones in a row from there move it up
        let full = true;
        if (best === undefined) for (let k = state.fullBelow; k < pool.length; k++) {
          const w = pool[k]!;
          if (w.load >= max) {
            if (full) state.fullBelow = k + 1;
            continue;
          }
          full = false;
          if (!eligible(w, task)) continue;
          if (w === task.avoid) fallback = w;
          else if (best === undefined || w.load < best.load) {
            best = w;
            if (w.load === 0) break; // nothing is less loaded, and it joined before any other idle one
          }
        }
        best ??= fallback;
        if (best !== undefined) {
          assign(state, task, best);
          take = true;
        }
      }
    }
    if (take) {
      ready[i] = undefined;
      if (i === state.head) state.head++;
    }
  }
  while (state.head < state.tail && ready[state.head] === undefined) state.head++;
  if (state.head === state.tail) {
    // empty: every slot is undefined already; the array keeps its backing store for the next tasks
    state.head = 0;
    state.tail = 0;
  } else if (state.head > 1024 && state.head * 2 > state.tail) {
    ready.copyWithin(0, state.head, state.tail);
    ready.fill(undefined, state.tail - state.head, state.tail);
    state.tail -= state.head;
    state.head = 0;
  }
}

/** The worker a task re-run after a restart goes back to, if it is in the pool with room and runs it. */
function preferred(state: State, task: TaskRun): Worker | undefined {
  const w = task.prefer;
  if (w === undefined) return undefined;
  if (state.workers.get(w.key) !== w) {
    task.prefer = undefined; // it left: the task goes to whoever can run it
    return undefined;
  }
  return w.load < state.options.maxTasksPerWorker && eligible(w, task) ? w : undefined;
}

/** The task as its worker (or aggregator) sees it: its inputs are its dependencies' results, by id. */
const NO_INPUTS: Readonly<Record<string, unknown>> = Object.freeze({});

export function agentTask(task: TaskRun): AgentTask {
  if (task.role === 'task' && task.spec.dependsOn === undefined) return { id: agentTaskId(task), kind: task.kind, payload: task.spec.payload, inputs: NO_INPUTS };
  const inputs: Record<string, unknown> = {};
  if (task.role === 'compensation') put(inputs, task.undoes!.spec.id, task.undoes!.result);
  else for (const dep of task.spec.dependsOn ?? []) put(inputs, dep, task.wf.tasks.get(dep)!.result);
  const payload = task.role === 'task' ? task.spec.payload : task.undoes!.spec.compensate!.payload;
  return { id: agentTaskId(task), kind: task.kind, payload, inputs: Object.freeze(inputs) };
}

/**
 * An attempt, and the listener of its `run_task` call to its worker: the call's outcome comes to its
 * methods (no promise, no closures per task). Fields declared, then assigned in the constructor.
 */
class TaskAttempt implements Attempt, CallListener {
  declare readonly state: State;
  declare readonly task: TaskRun;
  declare readonly worker: Worker | undefined;
  declare done: boolean;
  declare timer: unknown;
  declare readonly progressBefore: number;
  declare readonly startedAt: number;
  declare slot: number;
  constructor(state: State, task: TaskRun, worker: Worker | undefined, progressBefore: number, startedAt: number) {
    (this as { state: State }).state = state;
    (this as { task: TaskRun }).task = task;
    (this as { worker: Worker | undefined }).worker = worker;
    this.done = false;
    this.timer = undefined;
    (this as { progressBefore: number }).progressBefore = progressBefore;
    (this as { startedAt: number }).startedAt = startedAt;
    this.slot = -1;
  }

  callReplied(reply: unknown): void {
    settled(this.state, this, taskResultOf(reply), undefined);
  }

  callFailed(error: unknown): void {
    settled(this.state, this, undefined, error);
  }
}

/**
 * A worker's answer as a TaskResult: one whose `ok` is a boolean and whose fields can be read is
 * read once, into a TaskResult of the coordinator's own (a getter that answers once, then throws, is
 * not read again); anything else (null, a number, a revoked proxy, a getter that throws) is a task
 * error whose error is the answer itself.
 */
function taskResultOf(reply: unknown): TaskResult {
  try {
    if (typeof reply === 'object' && reply !== null) {
      const r = reply as TaskResult;
      const ok = r.ok;
      if (ok === true) return { ok: true, result: (r as { result: unknown }).result };
      if (ok === false) return { ok: false, error: (r as { error: unknown }).error };
    }
  } catch {
    // unreadable: the answer is the error
  }
  return { ok: false, error: reply };
}

function begin(state: State, task: TaskRun, worker: Worker | undefined): TaskAttempt {
  // progressBefore and startedAt serve the stuck check only (requeue: a refused offer is not progress); a
  // workflow without one never moves progressAt, so there they are 0 (no clock read, no boxed number per attempt)
  const tracked = task.wf.stuckMs !== Infinity;
  // one reading: on the real clock the timers' time is fractional, so a second one would never equal it (see requeue)
  const now = tracked ? timerNow(state) : 0;
  const attempt = new TaskAttempt(state, task, worker, tracked ? task.wf.progressAt : 0, now);
  if (task.waitTimer !== undefined) {
    state.ctx.cancelTimer(task.waitTimer as never);
    task.waitTimer = undefined;
  }
  task.state = 'running';
  task.startedAt ??= state.ctx.node.clock.now(); // a date, shown
  task.current = attempt;
  task.avoid = undefined;
  task.attempts++;
  task.worker = worker === undefined ? state.ctx.self : worker.pid;
  touch(state, task.wf, now);
  if (state.store !== undefined) recordTask(state, task); // started: after a crash it runs again (counted a re-run)
  return attempt;
}

function assign(state: State, task: TaskRun, worker: Worker): void {
  const attempt = begin(state, task, worker);
  if (++worker.load === state.options.maxTasksPerWorker) state.free--;
  worker.running.add(attempt);
  // GenServer.call told to the attempt (its settled, in a microtask, as the promise's reaction was)
  const request: AgentProtocol['request'] = { type: 'run_task', task: agentTask(task) };
  callListening(state.ctx, worker.pid, request, task.spec.timeoutMs ?? state.options.taskTimeoutMs, attempt);
}

/**
 * An aggregate step: the aggregator named by its kind, over its inputs, in the coordinator. Past
 * its timeout (the task's, else `taskTimeoutMs`) the attempt ends with the error `'timeout'` (a
 * task error, subject to its retry policy); a late answer is ignored.
 */
function runAggregate(state: State, task: TaskRun): void {
  const attempt = begin(state, task, undefined);
  const fn = state.options.aggregators.get(task.kind)!;
  const view = agentTask(task);
  const timer = state.ctx.sendAfter(state.ctx.self, new AggregateTimeout(attempt), task.spec.timeoutMs ?? state.options.taskTimeoutMs);
  attempt.timer = timer;
  const end = (result: TaskResult): void => {
    state.ctx.cancelTimer(timer);
    settled(state, attempt, result, undefined);
  };
  Promise.resolve()
    .then(() => fn(view.inputs, view))
    .then(
      (result) => end({ ok: true, result }),
      (error: unknown) => end({ ok: false, error }),
    );
}

/** An aggregate step's attempt timed out. */
export function aggregateTimeout(state: State, attempt: Attempt): void {
  if (attempt.done) return;
  state.m.timedOut++;
  event(state, 'task_timeout', { attempt: attempt.task.attempts }, { workflow: attempt.task.wf.id, task: attempt.task.spec.id, worker: state.ctx.self });
  settled(state, attempt, { ok: false, error: 'timeout' }, undefined);
}

/** A worker answered (or the call failed): load goes down as work completes. */
function settled(state: State, attempt: Attempt, result: TaskResult | undefined, error: unknown): void {
  const worker = attempt.worker;
  if (worker?.running.delete(attempt) === true) unload(state, worker);
  if (state.dead) return;
  if (attempt.done) {
    dispatch(state);
    return;
  }
  const task = attempt.task;
  if (result !== undefined) {
    attempt.done = true;
    task.current = undefined;
    if (result.ok) completeTask(state, task, result.result);
    else if (worker !== undefined && (result.error === 'busy' || result.error === 'duplicate_task')) requeue(state, attempt, worker, result.error === 'duplicate_task');
    else taskError(state, task, result.error);
  } else if (worker !== undefined && (isKeelError(error, 'ERR_MAILBOX_FULL') || error instanceof MailboxFullError)) {
    // the worker's bounded mailbox refused the call (or dropped it unread): it is busy, and the task did
    // not run there, as a worker answering 'busy': queued again, no attempt counted, offered again later
    attempt.done = true;
    task.current = undefined;
    requeue(state, attempt, worker, false);
  } else if (worker !== undefined && (isKeelError(error, 'ERR_CALL_TIMEOUT') || error instanceof CallTimeoutError)) {
    state.m.timedOut++;
    event(state, 'task_timeout', { attempt: task.attempts }, { workflow: task.wf.id, task: task.spec.id, worker: worker.pid });
    // the worker may still be running it: tell it to stop, then give the task to someone else
    void cancelOn(state, worker.pid, agentTaskId(task));
    retry(state, attempt, 'timeout', false);
  } else if (worker !== undefined && (isKeelError(error, 'ERR_CALL_EXIT') || isKeelError(error, 'ERR_NOPROC') || error instanceof CallExitError)) {
    // the worker died with the task: it leaves the pool, the task goes to another worker
    retry(state, attempt, 'down', true);
    removeWorker(state, worker, 'down');
  } else {
    attempt.done = true;
    task.current = undefined;
    taskError(state, task, error);
  }
  dispatch(state);
}

function requeue(state: State, attempt: Attempt, worker: Worker, duplicate: boolean): void {
  const task = attempt.task;
  task.state = 'delayed';
  task.refused = true;
  task.attempts--; // the worker refused it without running it
  // nor was it progress: a task every worker keeps refusing can be reported stuck (workers_busy)
  if (task.wf.progressAt === attempt.startedAt) task.wf.progressAt = attempt.progressBefore;
  // re-run after a restart on the worker that still runs it: wait for that run to end there (asked again)
  if (duplicate && task.prefer === worker) task.avoid = undefined;
  else task.avoid = worker;
  task.dueAt = timerNow(state) + REFUSED_RETRY_MS;
  task.delayTimer = state.ctx.sendAfter(state.ctx.self, new Requeue(task), REFUSED_RETRY_MS);
}

/** A delay is over: the task is ready again, unless its workflow ended meanwhile. */
export function readyAgain(state: State, task: TaskRun): void {
  task.delayTimer = undefined;
  if (task.state === 'delayed' && wanted(task)) {
    enqueue(state, task);
    dispatch(state);
  }
}

/** The task failed with an error: retried after its backoff if its policy allows, else it fails. */
function taskError(state: State, task: TaskRun, error: unknown): void {
  task.errors++;
  touch(state, task.wf);
  const delay = task.retry === undefined ? undefined : retryDelay(task.retry, task.errors, error, state.ctx.node.random);
  if (delay === undefined) {
    failTask(state, task, error);
    return;
  }
  state.m.retried++;
  event(state, 'task_retry', { attempt: task.attempts, delayMs: delay }, { workflow: task.wf.id, task: task.spec.id, worker: task.worker, error });
  task.state = 'delayed';
  task.refused = false;
  task.error = error;
  task.dueAt = timerNow(state) + delay;
  task.delayTimer = state.ctx.sendAfter(state.ctx.self, new Requeue(task), delay);
  if (state.store !== undefined) recordTask(state, task); // the budget spent survives a crash
}

/** The attempt is over without a result: another attempt, or the workflow fails past maxTaskAttempts. */
function retry(state: State, attempt: Attempt, reason: string, reassigned: boolean): void {
  if (attempt.done) return;
  attempt.done = true;
  if (attempt.worker?.running.delete(attempt) === true) unload(state, attempt.worker);
  const task = attempt.task;
  task.current = undefined;
  if (!wanted(task)) return;
  task.lost++;
  touch(state, task.wf);
  if (task.lost >= state.options.maxTaskAttempts) {
    failTask(state, task, reason);
    return;
  }
  task.wf.reassigned++;
  state.m.reassigned++;
  event(state, 'task_reassigned', { attempt: task.attempts }, { workflow: task.wf.id, task: task.spec.id, worker: attempt.worker?.pid, reason, reassigned });
  task.avoid = attempt.worker;
  if (state.store !== undefined) recordTask(state, task); // the budget spent survives a crash
  enqueue(state, task);
}

function completeTask(state: State, task: TaskRun, result: unknown): void {
  task.state = 'completed';
  task.endedAt = state.ctx.node.clock.now();
  task.result = result;
  task.error = undefined;
  task.prefer = undefined;
  touch(state, task.wf);
  if (task.role === 'compensation') {
    state.ends.compensationSettled(state, task, true, result);
    return;
  }
  state.m.tasksCompleted++;
  const wf = task.wf;
  put(wf.results, task.spec.id, result);
  wf.completed++;
  wf.completedOrder.push(task);
  recordResult(state, task);
  const dependents = task.dependents;
  for (let i = 0; i < dependents.length; i++) {
    const d = dependents[i]!;
    if (--d.blockers === 0 && d.state === 'blocked' && wanted(d)) enqueue(state, d);
  }
  if (wf.completed === wf.tasks.size) state.ends.finish(state, wf, 'completed');
}

export function failTask(state: State, task: TaskRun, error: unknown): void {
  task.state = 'failed';
  task.endedAt = state.ctx.node.clock.now();
  task.error = error;
  if (task.waitTimer !== undefined) {
    state.ctx.cancelTimer(task.waitTimer as never);
    task.waitTimer = undefined;
  }
  if (task.role === 'compensation') {
    state.ends.compensationSettled(state, task, false, error);
    return;
  }
  state.m.tasksFailed++;
  state.ends.finish(state, task.wf, 'failed', task.spec.id, error);
}

/** Tells a worker to stop a task, through supervised send (its outcome says whether it got there). */
function cancelOn(state: State, worker: Pid, taskId: string): Promise<SendOutcome> {
  return sendSupervised(state.ctx, worker, { type: 'cancel_task', taskId } satisfies AgentCast, { onError: 'ignore' });
}

/** Cancels the workflow's running tasks on their workers through supervised sends. */
export function cancelRunning(state: State, wf: Run): Promise<{ worker: Pid; taskId: string; outcome: SendOutcome }[]> {
  const sends: Promise<{ worker: Pid; taskId: string; outcome: SendOutcome }>[] = [];
  for (const task of wf.state === 'compensating' ? wf.undo : wf.tasks.values()) {
    const attempt = task.current;
    if (attempt === undefined && task.prefer !== undefined && (task.state === 'delayed' || task.state === 'ready')) {
      // to be re-run after a restart, its first run perhaps still going on there: that run is told to stop
      const worker = task.prefer.pid;
      const taskId = agentTaskId(task);
      sends.push(cancelOn(state, worker, taskId).then((outcome) => ({ worker, taskId, outcome })));
      continue;
    }
    if (attempt === undefined || attempt.done) continue;
    attempt.done = true; // its answer no longer counts; the worker's load drops when it answers
    task.current = undefined;
    if (attempt.worker === undefined) {
      // an aggregate step: nothing to tell; its timeout is moot
      if (attempt.timer !== undefined) state.ctx.cancelTimer(attempt.timer as never);
      continue;
    }
    const taskId = agentTaskId(task);
    const worker = attempt.worker.pid;
    sends.push(cancelOn(state, worker, taskId).then((outcome) => ({ worker, taskId, outcome })));
  }
  return Promise.all(sends);
}
