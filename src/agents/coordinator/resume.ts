import { thrownText } from '../../errors.js';
import { type AgentStoreRecord, type CorruptRecord, recordKey } from '../store/AgentStore.js';
import { checkId, validateWorkflow } from './validate.js';
import { addWorker, dispatch, enqueue, event, put, Requeue, timerNow, wanted, WorkflowTimeout, type Run, type State, type TaskRun, type Worker } from './dispatch.js';
import { RESULT, resultKey, storeWrite, TASK, UNDO, undoIndexOf, undoKey, WORKFLOW, workflowOfResult, type StoredResult, type StoredWorkflow } from './durable.js';
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

// at most Number.MAX_VALUE: a kept time plus a finite wait (a start far ahead, its stuck check far after) may add up to Infinity, which no timer takes
// `at` on the timers' time (a progress, a task's due time: kept in the node only), or with `now` the node's clock (a deadline: stored)
const after = (state: State, at: number, now = timerNow(state)): number => Math.min(Number.MAX_VALUE, Math.max(0, at - now));

/** Re-arms the workflow's own timers (timeout, stuck check) from its kept deadlines. */
function rearmRun(state: State, wf: Run): void {
  wf.timer = undefined;
  wf.stuckTimer = undefined;
  wf.waiters.length = 0; // their calls failed with the process that held them: `wait(id)` gives the result
  if (wf.deadline !== undefined) wf.timer = state.ctx.sendAfter(state.ctx.self, new WorkflowTimeout(wf), after(state, wf.deadline, state.ctx.node.clock.now()));
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

/**
 * The stored workflow, read once into a plain record, or why it cannot be resumed. A custom store may
 * answer values that are not plain data: a getter or a proxy trap that throws makes the record
 * unresumable (dropped as a corrupt one is), not the coordinator's start.
 */
function decodeWorkflow(state: State, key: string, record: AgentStoreRecord): StoredWorkflow | string {
  try {
    return readWorkflow(state, key, record.value);
  } catch (e) {
    return `reading it threw ${thrownText(e)}`;
  }
}

function readWorkflow(state: State, key: string, value: unknown): StoredWorkflow | string {
  if (typeof value !== 'object' || value === null) return 'not an object';
  const v = value as Partial<StoredWorkflow>;
  // copied once (a custom store's getter may not answer twice): the checks and the resumed run read the copy
  const { id, workflow: answered } = v;
  const workflow: unknown = structuredClone(answered);
  try {
    checkId(id);
    if (id !== key) return 'its key does not match its id';
    validateWorkflow(workflow as never);
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
  const { state: at, startedAt, deadline, reassigned, attempts, budgets, completedOrder, failure, compensations, undoAttempts } = v;
  if (at !== 'running' && at !== 'paused' && at !== 'compensating') return 'state is not running | paused | compensating';
  if (typeof startedAt !== 'number' || !Number.isFinite(startedAt)) return 'startedAt is not a time';
  // the coordinator writes a finite one (its start plus a finite timeoutMs): no timer takes Infinity
  if (deadline !== undefined && (typeof deadline !== 'number' || !Number.isFinite(deadline))) return 'deadline is not a time';
  if (!Array.isArray(attempts) || !Array.isArray(completedOrder) || !Array.isArray(compensations)) return 'attempts, completedOrder or compensations is not an array';
  if (at === 'compensating' && (typeof failure !== 'object' || failure === null)) return 'a compensating workflow without its failure';
  const pairs = attempts.map((a: unknown) => (Array.isArray(a) ? ([a[0], a[1]] as const) : undefined));
  if (!pairs.every((a) => a !== undefined && typeof a[0] === 'string' && typeof a[1] === 'number')) return 'attempts is not a list of [task id, count]';
  const settled = compensations.map((c: unknown) => (typeof c === 'object' && c !== null ? { ...c } : c) as CompensationOutcome);
  if (!settled.every((c) => typeof c === 'object' && c !== null && typeof c.task === 'string' && typeof c.ok === 'boolean')) return 'compensations is not a list of { task, ok }';
  for (const t of (workflow as StoredWorkflow['workflow']).tasks) {
    if (t.aggregate === true && !state.options.aggregators.has(t.kind)) return `no aggregator ${t.kind} in this coordinator`;
  }
  return {
    id: id!,
    workflow: workflow as StoredWorkflow['workflow'],
    state: at,
    startedAt,
    deadline,
    reassigned: reassigned!,
    attempts: pairs as (readonly [string, number])[],
    budgets: Array.isArray(budgets) ? budgets.map((b: unknown) => (Array.isArray(b) ? ([b[0], b[1], b[2]] as const) : b) as readonly [string, number, number]) : [],
    completedOrder: [...completedOrder],
    failure: failure === undefined || failure === null || typeof failure !== 'object' ? undefined : { failedTask: failure.failedTask, error: failure.error },
    compensations: settled,
    ...(undoAttempts !== undefined ? { undoAttempts } : {}),
  };
}

/** Started anew (a new OS process) with a store: the stored active workflows resume; their tasks wait for workers. */
export function resumeStored(state: State): Resumed {
  const store = state.store!;
  let workflows: AgentStoreRecord[];
  let corrupt: CorruptRecord[];
  let results: (AgentStoreRecord | CorruptRecord)[];
  let taskRecords: (AgentStoreRecord | CorruptRecord)[];
  let undoRecords: (AgentStoreRecord | CorruptRecord)[];
  try {
    const w = store.loadAll(state.name, WORKFLOW);
    const r = store.loadAll(state.name, RESULT);
    const t = store.loadAll(state.name, TASK);
    const u = store.loadAll(state.name, UNDO);
    // a load that is not one (a custom store's) is a store that cannot be read, as a throw is
    workflows = [...w.records];
    corrupt = [...w.corrupt];
    results = [...r.records, ...r.corrupt];
    taskRecords = [...t.records, ...t.corrupt];
    undoRecords = [...u.records, ...u.corrupt];
  } catch (e) {
    // its records are not this coordinator's to write over or delete until it has read them
    state.kept.storeUnread = true;
    storeWrite(state, '', () => {
      throw e;
    });
    return { workflows: 0, rerun: 0, dropped: 0 };
  }
  state.kept.storeUnread = false;
  // each result record read once, here: one whose reading throws is of no use, as a corrupt one (its task runs again)
  const rows: { key: string; value: { result: unknown; seq: number | undefined } | undefined }[] = [];
  for (const r of results) {
    const key = recordKey(r);
    if (key !== undefined) rows.push({ key, value: readResult(r) });
  }
  const byKey = new Map(rows.map((r) => [r.key, r.value]));
  // task and compensation records, each read once: one that cannot be read adds nothing (its counts are the workflow record's)
  const tasks = new Map<string, TaskCounts | undefined>();
  const undos = new Map<string, UndoRecord | undefined>();
  for (const c of taskRecords) {
    const key = recordKey(c);
    if (key !== undefined) tasks.set(key, readTask(c));
  }
  for (const c of undoRecords) {
    const key = recordKey(c);
    if (key !== undefined) undos.set(key, readUndo(c));
  }
  // result records no resumed workflow can use (a dropped or corrupt workflow's, or one that cannot be
  // read) are deleted once the workflows are: a result is written with `insert` (the first wins), so a
  // stale one would stand in for the result of a later workflow of the same id, or of the task's re-run
  const unusable = (key: string, value: unknown): boolean => {
    const wf = workflowOfResult(key);
    if (wf !== undefined && state.kept.shadowed.has(wf)) return false; // left for a later start, with its workflow
    return wf === undefined || !state.runs.has(wf) || value === undefined;
  };
  const sweep = (): void => {
    for (const r of rows) {
      if (unusable(r.key, r.value)) storeWrite(state, workflowOfResult(r.key) ?? '', (s) => s.delete(state.name, RESULT, r.key));
    }
    // those of a workflow not resumed (a later workflow of the same id would take its counts for its
    // own), and compensations of a workflow that has no such compensation (it is not compensating)
    for (const [kind, records] of [[TASK, tasks], [UNDO, undos]] as const) {
      for (const key of records.keys()) {
        const id = workflowOfResult(key);
        if (id !== undefined && state.kept.shadowed.has(id)) continue;
        const wf = id === undefined ? undefined : state.runs.get(id);
        if (wf !== undefined && (kind === TASK || (wf.state === 'compensating' && undoIndexOf(key) < wf.undo.length))) continue;
        storeWrite(state, id ?? '', (s) => s.delete(state.name, kind, key));
      }
    }
  };
  let dropped = corrupt.length;
  for (const c of corrupt) {
    // a record that cannot be decoded is dropped once, as one that is not a workflow: reported and deleted
    const key = recordKey(c);
    const error = corruptError(c);
    state.ctx.node.logger.error(`coordinator ${state.name}: stored workflow ${key ?? '(unreadable key)'} cannot be read (${error}); its records are deleted`);
    event(state, 'workflow_dropped', {}, { workflow: key ?? '', reason: error });
    if (key !== undefined) storeWrite(state, key, (s) => s.delete(state.name, WORKFLOW, key));
  }
  let resumed = 0;
  let rerun = 0;
  for (const record of workflows) {
    const key = recordKey(record);
    const stored = key === undefined ? 'its key cannot be read' : decodeWorkflow(state, key, record);
    if (typeof stored === 'string') {
      state.ctx.node.logger.error(`coordinator ${state.name}: stored workflow ${key ?? '(unreadable key)'} cannot be resumed (${stored}); its records are deleted`);
      event(state, 'workflow_dropped', {}, { workflow: key ?? '', reason: stored });
      if (key !== undefined) storeWrite(state, key, (s) => s.delete(state.name, WORKFLOW, key));
      dropped++;
      continue;
    }
    if (state.runs.has(stored.id) || state.history.has(stored.id) || state.kept.shadowed.has(stored.id)) {
      // a late read (the store could not be read at the start): a workflow started meanwhile, in memory only, has its id
      state.kept.shadowed.add(stored.id);
      state.ctx.node.logger.warn(`coordinator ${state.name}: stored workflow ${stored.id} is not resumed (a workflow started while the store could not be read has its id); it stays in the store for a later start`);
      continue;
    }
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
    // the counts each task's record kept since (newer than the workflow record's: they only grow)
    for (const t of wf.tasks.values()) {
      const c = tasks.get(resultKey(wf.id, t.spec.id));
      if (c === undefined) continue;
      t.attempts = Math.max(t.attempts, c.attempts);
      t.errors = Math.max(t.errors, c.errors);
      t.lost = Math.max(t.lost, c.lost);
      wf.reassigned = Math.max(wf.reassigned, c.reassigned);
    }
    // completed tasks: those with a recorded result, in the recorded completion order first (the
    // workflow record's list, then each result's place in it)
    const placed: { id: string; seq: number }[] = [];
    for (const id of wf.tasks.keys()) {
      const seq = byKey.get(resultKey(wf.id, id))?.seq;
      if (seq !== undefined) placed.push({ id, seq });
    }
    placed.sort((a, b) => a.seq - b.seq);
    const order = [...stored.completedOrder.filter((id) => wf.tasks.has(id)), ...placed.map((p) => p.id), ...wf.tasks.keys()];
    // compensating, every task its record lists as completed is (its result perhaps not recorded: a write
    // that failed): it runs no more, and its compensation must run, at its place in the reverse order
    const listed = stored.state === 'compensating' ? new Set(stored.completedOrder) : undefined;
    for (const id of new Set(order)) {
      const r = byKey.get(resultKey(wf.id, id));
      if (r === undefined && listed?.has(id) !== true) continue; // none, or a corrupt or unreadable one: the task runs again
      const t = wf.tasks.get(id)!;
      t.state = 'completed';
      t.result = r?.result;
      if (r !== undefined) put(wf.results, id, r.result);
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
      // the task that failed it is failed in its result, as in the node that ran it (not 'waiting')
      const failed = typeof wf.failure.failedTask === 'string' ? wf.tasks.get(wf.failure.failedTask) : undefined;
      if (failed !== undefined && failed.state !== 'completed') {
        failed.state = 'failed';
        failed.error = wf.failure.error;
      }
      buildUndo(wf);
      for (const c of stored.compensations.slice(0, wf.undo.length)) wf.compensations.push(c as CompensationOutcome);
      // then those settled since, each in its own record (in order: they run one at a time)
      let undoAttempts = stored.undoAttempts;
      for (;;) {
        const at = wf.compensations.length;
        const c = wf.undo[at];
        const u = c === undefined ? undefined : undos.get(undoKey(wf.id, at));
        if (u === undefined) break;
        if (u.outcome === undefined || u.outcome.task !== c!.undoes!.spec.id) {
          undoAttempts = Math.max(typeof undoAttempts === 'number' && Number.isSafeInteger(undoAttempts) ? undoAttempts : 0, u.attempts);
          break;
        }
        wf.compensations.push(u.outcome);
        undoAttempts = 0;
      }
      for (const c of wf.undo.slice(0, wf.compensations.length)) c.state = wf.compensations[wf.undo.indexOf(c)]!.ok ? 'completed' : 'failed';
      const c = wf.undo[wf.compensations.length];
      if (c === undefined) next(state, wf); // every compensation had run: it ends now
      else {
        const n = undoAttempts;
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

/** The store could not be read at the start: read it now, before a new workflow may take a stored one's id; what it holds resumes (reported as at a start). */
export function loadLate(state: State): void {
  const r = resumeStored(state);
  if (!state.kept.storeUnread) event(state, 'resumed', { workflows: r.workflows, rerun: r.rerun, dropped: r.dropped }, { from: 'store' });
}

/** A result record's value as far as a resume uses it, or undefined: none (a corrupt row), not an object, or reading it threw. */
function readResult(r: AgentStoreRecord | CorruptRecord): { result: unknown; seq: number | undefined } | undefined {
  try {
    const value: unknown = 'value' in r ? r.value : undefined;
    if (typeof value !== 'object' || value === null) return undefined;
    const { result, seq } = value as StoredResult;
    return { result, seq: count(seq) };
  } catch {
    return undefined;
  }
}

interface TaskCounts {
  readonly attempts: number;
  readonly errors: number;
  readonly lost: number;
  readonly reassigned: number;
}

interface UndoRecord {
  readonly attempts: number;
  readonly outcome: CompensationOutcome | undefined;
}

/** A count as kept (a safe integer, 0 or more), else undefined. */
function count(n: unknown): number | undefined {
  return typeof n === 'number' && Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/** A task record's counts (each read once; one that is not a count is 0), or undefined: none, not an object, or reading it threw. */
function readTask(r: AgentStoreRecord | CorruptRecord): TaskCounts | undefined {
  try {
    const value: unknown = 'value' in r ? r.value : undefined;
    if (typeof value !== 'object' || value === null) return undefined;
    const { attempts, errors, lost, reassigned } = value as Partial<TaskCounts>;
    return { attempts: count(attempts) ?? 0, errors: count(errors) ?? 0, lost: count(lost) ?? 0, reassigned: count(reassigned) ?? 0 };
  } catch {
    return undefined;
  }
}

/** A compensation record (its outcome a copy, `{ task, ok, result | error }`, or undefined if it has none that can be read). */
function readUndo(r: AgentStoreRecord | CorruptRecord): UndoRecord | undefined {
  try {
    const value: unknown = 'value' in r ? r.value : undefined;
    if (typeof value !== 'object' || value === null) return undefined;
    const { attempts, outcome } = value as { attempts?: unknown; outcome?: unknown };
    const o = typeof outcome === 'object' && outcome !== null ? ({ ...outcome } as CompensationOutcome) : undefined;
    const valid = o !== undefined && typeof o.task === 'string' && typeof o.ok === 'boolean';
    return { attempts: count(attempts) ?? 0, outcome: valid ? o : undefined };
  } catch {
    return undefined;
  }
}

/** Why a corrupt record could not be decoded, as the store said (read without throwing). */
function corruptError(c: CorruptRecord): string {
  try {
    return String(c.error);
  } catch (e) {
    return `reading it threw ${thrownText(e)}`;
  }
}
