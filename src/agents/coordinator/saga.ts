import { dispatch, enqueue } from './dispatch.js';
import { persist, recordCompensation } from './durable.js';
import { finalize } from './result.js';
import { anyEligible, event, NO_DEPENDENTS, noWorkerError, stopTaskTimers, type Run, type State, type TaskRun } from './state.js';

// Sagas: when a workflow fails, the `compensate` step of each task it completed runs, one at a time,
// in reverse completion order, on a worker that runs the compensation's kind (with the task's result
// as `inputs[taskId]`). A compensation that fails is reported in the result, not thrown, and the
// rest still run; the workflow's result goes out once every compensation has an outcome.

/** @internal The workflow failed: starts its compensations; false when it has none (it ends now). */
export function startCompensation(state: State, wf: Run, failedTask: string | undefined, error: unknown): boolean {
  buildUndo(wf);
  if (wf.undo.length === 0) return false;
  wf.failure = { failedTask, error };
  wf.state = 'compensating';
  event(state, 'workflow_compensating', { compensations: wf.undo.length }, { workflow: wf.id, failedTask, error });
  persist(state, wf);
  next(state, wf);
  return true;
}

/** @internal The compensations of the workflow's completed tasks, in reverse completion order, into `wf.undo`. */
export function buildUndo(wf: Run): void {
  for (let i = wf.completedOrder.length - 1; i >= 0; i--) {
    const t = wf.completedOrder[i]!;
    const c = t.spec.compensate;
    if (c === undefined) continue;
    wf.undo.push({
      wf, spec: t.spec, role: 'compensation', undoes: t, kind: c.kind, requires: c.requires ?? [], retry: undefined,
      state: 'blocked', avoid: undefined, blockers: 0, dependents: NO_DEPENDENTS, attempts: 0, lost: 0, errors: 0,
      current: undefined, prefer: undefined, dueAt: 0, worker: undefined, result: undefined, error: undefined, waitTimer: undefined, delayTimer: undefined, startedAt: undefined, endedAt: undefined,
    });
  }
}

/** @internal Starts the next compensation, or ends the workflow when none is left. */
export function next(state: State, wf: Run): void {
  const c = wf.undo[wf.compensations.length];
  if (c === undefined) {
    finalize(state, wf, 'failed', wf.failure!.failedTask, wf.failure!.error);
    return;
  }
  if (wf.waitMs === 0 && !anyEligible(state, c)) {
    c.state = 'failed';
    compensationSettled(state, c, false, noWorkerError(c));
    return;
  }
  enqueue(state, c);
  dispatch(state);
}

/**
 * @internal The compensating workflow is cancelled: its running compensation was told to stop
 * (cancelRunning), the rest are reported `'cancelled'` without running, and it ends `failed`.
 */
export function abortCompensations(state: State, wf: Run): void {
  const done = wf.compensations.length;
  for (const c of wf.undo.slice(done)) {
    stopTaskTimers(state, c);
    c.state = 'failed';
    wf.compensations.push({ task: c.undoes!.spec.id, ok: false, error: 'cancelled' });
  }
  finalize(state, wf, 'failed', wf.failure!.failedTask, wf.failure!.error);
}

/** @internal A compensation ended (ok, or failed with `value` as its error): the next one runs. */
export function compensationSettled(state: State, task: TaskRun, ok: boolean, value: unknown): void {
  const wf = task.wf;
  const id = task.undoes!.spec.id;
  wf.compensations.push(ok ? { task: id, ok: true, result: value } : { task: id, ok: false, error: value });
  event(state, 'compensation_finished', { attempts: task.attempts }, { workflow: wf.id, task: id, ok, ...(ok ? {} : { error: value }) });
  if (wf.compensations.length < wf.undo.length) recordCompensation(state, wf, wf.compensations.length - 1, task.attempts); // the last one: finalize forgets it
  next(state, wf);
}
