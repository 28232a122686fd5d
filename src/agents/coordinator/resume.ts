import { checkId, validateWorkflow } from './validate.js';
import { addWorker, dispatch, enqueue, event, put, Requeue, wanted, WorkflowTimeout, type Run, type State, type TaskRun, type Worker } from './dispatch.js';
import { RESULT, resultKey, storeWrite, WORKFLOW, workflowOfResult, type StoredResult, type StoredWorkflow } from './durable.js';
import { finish, newRun } from './runs.js';
import { buildUndo, next } from './saga.js';
import { StuckCheck, touch } from './stuck.js';
import type { CompensationOutcome } from './types.js';

/**
 * @internal A coordinator resuming the workflows of its predecessor under the same name: from the
 * node's table (killed and restarted in the same node: everything, the pool included) or from its
 * store (a new OS process: the active workflows, their completed tasks and results; the pool is the
 * new one). Completed tasks stay completed; tasks that were running run again (at least once: the
 * same task id, offered first to the worker that ran them if it is still alive); timers are
 * re-armed on the node's clock from their kept deadlines.
 */

export interface Resumed {
  readonly workflows: number;
  /** Tasks that were running at the crash and run again. */
  readonly rerun: number;
  /** Stored workflows that could not be resumed (a corrupt record, an aggregator this coordinator lacks). */
  readonly dropped: number;
}

const after = (state: State, at: number): number => Math.max(0, at - state.ctx.node.clock.now());

/** Re-arms the workflow's own timers (timeout, stuck check) from its kept deadlines. */
function rearmRun(state: State, wf: Run): void {
  wf.timer = undefined;
  wf.stuckTimer = undefined;
  wf.waiters.length = 0; // their calls failed with the process that held them: `wait(id)` gives the result
  if (wf.deadline !== undefined) wf.timer = state.ctx.sendAfter(state.ctx.self, new WorkflowTimeout(wf.id), after(state, wf.deadline));
  if (wf.stuckMs !== Infinity && !wf.stuckReported) wf.stuckTimer = state.ctx.sendAfter(state.ctx.self, new StuckCheck(wf), after(state, wf.progressAt + wf.stuckMs));
}

/** Restarted in its node: the pool re-monitored (the dead leave), every active workflow resumed. */
export function resumeKept(state: State): Resumed {
  const old = [...state.workers.values()];
  state.workers.clear();
  state.pool.length = 0;
  state.fullBelow = 0;
  state.free = 0;
  const now: Map<string, Worker> = new Map();
  for (const w of old) {
    if (addWorker(state, w.pid, [...w.capabilities], w.kinds === undefined ? undefined : [...w.kinds]) === 'ok') now.set(w.key, state.workers.get(w.key)!);
    else {
      state.m.left++;
      event(state, 'worker_left', {}, { worker: w.pid, reason: 'down' });
    }
  }
  let rerun = 0;
  const again: TaskRun[] = [];
  const queued: TaskRun[] = [];
  for (const wf of state.runs.values()) {
    rearmRun(state, wf);
    for (const t of [...wf.tasks.values(), ...wf.undo]) {
      t.waitTimer = undefined;
      t.delayTimer = undefined; // the dead coordinator's timers died with it
      t.avoid = undefined;
      // a re-run still waiting for the worker that may run it (refused: duplicate_task) keeps that worker
      const had = t.prefer;
      t.prefer = had === undefined ? undefined : now.get(had.key);
      if (!wanted(t)) continue;
      if (t.state === 'running' && t.current !== undefined) {
        const attempt = t.current;
        attempt.done = true; // the dead coordinator's attempt: its answer is nobody's
        t.current = undefined;
        t.prefer = attempt.worker === undefined ? undefined : now.get(attempt.worker.key);
        rerun++;
        again.push(t);
      } else if (t.state === 'ready') {
        queued.push(t);
      } else if (t.state === 'delayed') {
        t.delayTimer = state.ctx.sendAfter(state.ctx.self, new Requeue(t), after(state, t.dueAt));
      }
    }
  }
  // those that ran first, on their worker if it lives (it may still run them: it answers duplicate_task)
  for (const t of again) enqueue(state, t);
  for (const t of queued) enqueue(state, t);
  dispatch(state);
  return { workflows: state.runs.size, rerun, dropped: 0 };
}

/** Why a stored workflow record cannot be resumed, or undefined. */
function invalid(state: State, key: string, value: unknown): string | undefined {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const v = value as Partial<StoredWorkflow>;
  try {
    checkId(v.id);
    if (v.id !== key) return 'its key does not match its id';
    validateWorkflow(v.workflow as never);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  if (v.state !== 'running' && v.state !== 'paused' && v.state !== 'compensating') return 'state is not running | paused | compensating';
  if (typeof v.startedAt !== 'number' || !Number.isFinite(v.startedAt)) return 'startedAt is not a time';
  if (v.deadline !== undefined && (typeof v.deadline !== 'number' || Number.isNaN(v.deadline))) return 'deadline is not a time';
  if (!Array.isArray(v.attempts) || !Array.isArray(v.completedOrder) || !Array.isArray(v.compensations)) return 'attempts, completedOrder or compensations is not an array';
  if (v.state === 'compensating' && (typeof v.failure !== 'object' || v.failure === null)) return 'a compensating workflow without its failure';
  if (!v.attempts.every((a) => Array.isArray(a) && typeof a[0] === 'string' && typeof a[1] === 'number')) return 'attempts is not a list of [task id, count]';
  if (!v.compensations.every((c) => typeof c === 'object' && c !== null && typeof c.task === 'string' && typeof c.ok === 'boolean')) return 'compensations is not a list of { task, ok }';
  for (const t of v.workflow!.tasks) {
    if (t.aggregate === true && !state.options.aggregators.has(t.kind)) return `no aggregator ${t.kind} in this coordinator`;
  }
  return undefined;
}

/** Started anew (a new OS process) with a store: the stored active workflows resume; their tasks wait for workers. */
export function resumeStored(state: State): Resumed {
  const store = state.store!;
  let workflows: ReturnType<typeof store.loadAll>;
  let results: ReturnType<typeof store.loadAll>;
  try {
    workflows = store.loadAll(state.name, WORKFLOW);
    results = store.loadAll(state.name, RESULT);
  } catch (e) {
    storeWrite(state, '', () => {
      throw e;
    });
    return { workflows: 0, rerun: 0, dropped: 0 };
  }
  const byKey = new Map(results.records.map((r) => [r.key, r.value as StoredResult]));
  // result records no resumed workflow can use (a dropped or corrupt workflow's, or one that cannot be
  // read) are deleted once the workflows are: a result is written with `insert` (the first wins), so a
  // stale one would stand in for the result of a later workflow of the same id, or of the task's re-run
  const unusable = (key: string, value: unknown): boolean => {
    const wf = workflowOfResult(key);
    return wf === undefined || !state.runs.has(wf) || typeof value !== 'object' || value === null;
  };
  const sweep = (): void => {
    for (const r of [...results.records, ...results.corrupt]) {
      if (unusable(r.key, 'value' in r ? r.value : undefined)) storeWrite(state, workflowOfResult(r.key) ?? '', (s) => s.delete(state.name, RESULT, r.key));
    }
  };
  let dropped = workflows.corrupt.length;
  for (const c of workflows.corrupt) {
    // a record that cannot be decoded is dropped once, as one that is not a workflow: reported and deleted
    state.ctx.node.logger.error(`coordinator ${state.name}: stored workflow ${c.key} cannot be read (${c.error}); its records are deleted`);
    event(state, 'workflow_dropped', {}, { workflow: c.key, reason: c.error });
    storeWrite(state, c.key, (s) => s.delete(state.name, WORKFLOW, c.key));
  }
  let resumed = 0;
  let rerun = 0;
  for (const record of workflows.records) {
    const why = invalid(state, record.key, record.value);
    if (why !== undefined) {
      state.ctx.node.logger.error(`coordinator ${state.name}: stored workflow ${record.key} cannot be resumed (${why}); its records are deleted`);
      event(state, 'workflow_dropped', {}, { workflow: record.key, reason: why });
      storeWrite(state, record.key, (s) => s.delete(state.name, WORKFLOW, record.key));
      dropped++;
      continue;
    }
    const stored = record.value as StoredWorkflow;
    const wf = newRun(state, stored.id, stored.workflow, stored.startedAt);
    wf.deadline = stored.deadline;
    wf.reassigned = typeof stored.reassigned === 'number' ? stored.reassigned : 0;
    for (const [id, n] of stored.attempts) {
      const t = wf.tasks.get(id);
      if (t !== undefined && typeof n === 'number') t.attempts = n;
    }
    // the retry budgets spent before the crash stay spent (a crash loop does not retry forever)
    for (const b of Array.isArray(stored.budgets) ? stored.budgets : []) {
      const t = Array.isArray(b) && typeof b[0] === 'string' ? wf.tasks.get(b[0]) : undefined;
      if (t === undefined) continue;
      if (Number.isSafeInteger(b[1]) && b[1] > 0) t.errors = b[1];
      if (Number.isSafeInteger(b[2]) && b[2] > 0) t.lost = b[2];
    }
    // completed tasks: those with a recorded result, in the recorded completion order first
    const order = [...stored.completedOrder.filter((id) => wf.tasks.has(id)), ...wf.tasks.keys()];
    for (const id of new Set(order)) {
      const r = byKey.get(resultKey(wf.id, id));
      if (typeof r !== 'object' || r === null) continue; // none, or a corrupt one: the task runs again
      const t = wf.tasks.get(id)!;
      t.state = 'completed';
      t.result = r.result;
      put(wf.results, id, r.result);
      wf.completed++;
      wf.completedOrder.push(t);
      for (let i = 0; i < t.dependents.length; i++) t.dependents[i]!.blockers--;
    }
    state.runs.set(wf.id, wf);
    resumed++;
    rearmRun(state, wf);
    touch(state, wf);
    if (stored.state === 'compensating') {
      wf.state = 'compensating';
      wf.failure = { failedTask: stored.failure!.failedTask, error: stored.failure!.error };
      buildUndo(wf);
      for (const c of stored.compensations.slice(0, wf.undo.length)) wf.compensations.push(c as CompensationOutcome);
      for (const c of wf.undo.slice(0, wf.compensations.length)) c.state = wf.compensations[wf.undo.indexOf(c)]!.ok ? 'completed' : 'failed';
      const c = wf.undo[wf.compensations.length];
      if (c === undefined) next(state, wf); // every compensation had run: it ends now
      else {
        const n = stored.undoAttempts;
        if (typeof n === 'number' && Number.isSafeInteger(n) && n > 0) c.attempts = n;
        if (c.attempts > 0) rerun++; // it had started: it runs again
        enqueue(state, c); // waits for a worker that runs its kind, as the workflow's tasks do
      }
      continue;
    }
    wf.state = stored.state;
    if (wf.completed === wf.tasks.size) {
      finish(state, wf, 'completed'); // it crashed between its last result and its end
      continue;
    }
    for (const t of wf.tasks.values()) {
      if (t.state !== 'blocked' || t.blockers !== 0) continue;
      if (t.attempts > 0) rerun++; // started before the crash (it may have run): runs again
      enqueue(state, t);
    }
  }
  sweep();
  dispatch(state);
  return { workflows: resumed, rerun, dropped };
}
