import type { AgentStore } from '../store/AgentStore.js';
import { encodeValue } from '../store/AgentStore.js';
import { event, type Run, type State, type TaskRun } from './state.js';
import type { CompensationOutcome, Workflow } from './types.js';

/**
 * @internal The coordinator's records in an agent store (with `store` configured), each of a size
 * that does not grow with the workflow's progress, so that a workflow's writes grow with its task
 * count, not its square:
 * - kind {@link WORKFLOW}, keyed by the workflow's id: its definition and state, written (`put`) when
 *   it starts and at the few transitions of the whole workflow (paused or resumed, compensating);
 * - kind {@link TASK}, keyed by workflow and task id: a task's attempts and spent retry budgets,
 *   written when an attempt starts and when a budget is spent (a restart counts them as spent);
 * - kind {@link RESULT}, keyed by workflow and task id: a completed task's result and its place in the
 *   completion order (the saga's reverse order), written once with `insert` (the first wins);
 * - kind {@link UNDO}, keyed by workflow and compensation index: a compensation's attempts while it
 *   runs, and its outcome once settled.
 * A resume reads the workflow record, then what the others add to it (they take precedence: they are
 * newer). Older files, whose workflow record was rewritten whole at each transition, resume as they
 * did. A finished workflow's records are deleted (its result lives on in the node's history only).
 * Read back when a coordinator of the same name starts in a new OS process.
 */

export const WORKFLOW = 'workflow';
export const RESULT = 'result';
export const TASK = 'task';
export const UNDO = 'undo';
/** Every kind of record a coordinator writes. */
export const KINDS = [WORKFLOW, RESULT, TASK, UNDO] as const;

/** The record key of a task's result (unambiguous for any two strings). */
export const resultKey = (workflow: string, task: string): string => JSON.stringify([workflow, task]);

/** The record key of a workflow's `index`th compensation. */
export const undoKey = (workflow: string, index: number): string => JSON.stringify([workflow, index]);

/** The compensation index of a compensation record's key, or Infinity for a key that is not one. */
export function undoIndexOf(key: string): number {
  try {
    const parsed: unknown = JSON.parse(key);
    return Array.isArray(parsed) && parsed.length === 2 && Number.isSafeInteger(parsed[1]) && parsed[1] >= 0 ? (parsed[1] as number) : Infinity;
  } catch {
    return Infinity;
  }
}

/** The workflow id of a result, task or compensation record's key, or undefined for a key that is not one. */
export function workflowOfResult(key: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(key);
    return Array.isArray(parsed) && parsed.length === 2 && typeof parsed[0] === 'string' ? parsed[0] : undefined;
  } catch {
    return undefined;
  }
}

export interface StoredWorkflow {
  readonly id: string;
  readonly workflow: Workflow;
  readonly state: 'running' | 'paused' | 'compensating';
  readonly startedAt: number;
  readonly deadline: number | undefined;
  readonly reassigned: number;
  /** Attempts started per task id, as pairs (a task id `__proto__` is an id like any other). */
  readonly attempts: readonly (readonly [string, number])[];
  /** Per task id with any: attempts that ended in an error and attempts lost (its two retry budgets). Absent in older records. */
  readonly budgets?: readonly (readonly [string, number, number])[];
  /** Completed task ids, in completion order (the saga's reverse order). */
  readonly completedOrder: readonly string[];
  readonly failure: { readonly failedTask: string | undefined; readonly error: unknown } | undefined;
  readonly compensations: readonly CompensationOutcome[];
  /** While compensating: attempts started of the compensation under way (absent in older records). */
  readonly undoAttempts?: number;
}

export interface StoredResult {
  readonly result: unknown;
  readonly attempts: number;
  /** Its place in the workflow's completion order, from 0 (absent in older records). */
  readonly seq?: number;
}

/** A task's counts: attempts started, attempts that ended in an error, attempts lost; and its workflow's reassignments so far (they only grow: a resume takes the largest). */
export interface StoredTask {
  readonly attempts: number;
  readonly errors: number;
  readonly lost: number;
  readonly reassigned: number;
}

/** A compensation: attempts started, and its outcome once settled. */
export interface StoredUndo {
  readonly attempts: number;
  readonly outcome?: CompensationOutcome;
}

/** A write to the store: a failure (a value that is not plain data, disk full, closed) is logged and reported; the workflow goes on in memory. */
export function storeWrite(state: State, workflow: string, write: (store: AgentStore) => unknown): void {
  if (state.store === undefined) return;
  try {
    write(state.store);
  } catch (e) {
    state.ctx.node.logger.error(`coordinator ${state.name}: a write to its store failed (workflow ${workflow})`, e);
    event(state, 'store_failed', {}, { workflow, error: e });
  }
}

/** An error as the store can keep it: itself if it is plain data, else its name, code and message. */
function plainError(error: unknown): unknown {
  try {
    encodeValue(error);
    return error;
  } catch {
    const e = error as { name?: unknown; code?: unknown; message?: unknown } | null;
    const field = (k: 'name' | 'code' | 'message'): string | undefined => {
      try {
        const v = e?.[k];
        return typeof v === 'string' ? v : undefined;
      } catch {
        return undefined;
      }
    };
    return { name: field('name'), code: field('code'), message: field('message') ?? String(typeof error) };
  }
}

function recordOf(wf: Run): StoredWorkflow {
  return {
    id: wf.id,
    workflow: wf.spec,
    state: wf.state as StoredWorkflow['state'],
    startedAt: wf.startedAt,
    deadline: wf.deadline,
    reassigned: wf.reassigned,
    attempts: [...wf.tasks.values()].map((t) => [t.spec.id, t.attempts] as const),
    budgets: [...wf.tasks.values()].filter((t) => t.errors > 0 || t.lost > 0).map((t) => [t.spec.id, t.errors, t.lost] as const),
    completedOrder: wf.completedOrder.map((t) => t.spec.id),
    failure: wf.failure === undefined ? undefined : { failedTask: wf.failure.failedTask, error: plainError(wf.failure.error) },
    compensations: wf.compensations.map((c) => (c.ok ? c : { ...c, error: plainError(c.error) })),
    undoAttempts: wf.undo[wf.compensations.length]?.attempts ?? 0,
  };
}

/** Keeps the active workflow's record (a transition of the whole workflow: started, paused or resumed, compensating). */
export function persist(state: State, wf: Run): void {
  if (state.store === undefined || wf.unstored) return; // no store: no record, nor a closure to write it
  storeWrite(state, wf.id, (store) => store.put(state.name, WORKFLOW, wf.id, recordOf(wf)));
}

/**
 * A task's attempt started or spent a retry budget: its counts (a compensation's in its own record).
 * The record's key is the task's (or compensation's) alone, so the write does not grow with the workflow.
 */
export function recordTask(state: State, task: TaskRun): void {
  const wf = task.wf;
  if (state.store === undefined || wf.unstored) return;
  if (task.role === 'compensation') {
    const index = wf.compensations.length; // compensations run one at a time: the current one
    storeWrite(state, wf.id, (store) => store.put(state.name, UNDO, undoKey(wf.id, index), { attempts: task.attempts } satisfies StoredUndo));
    return;
  }
  const counts: StoredTask = { attempts: task.attempts, errors: task.errors, lost: task.lost, reassigned: wf.reassigned };
  storeWrite(state, wf.id, (store) => store.put(state.name, TASK, resultKey(wf.id, task.spec.id), counts));
}

/** A task completed (it is the last of `wf.completedOrder`): its result recorded once, with its place in the completion order. */
export function recordResult(state: State, task: TaskRun): void {
  const wf = task.wf;
  if (state.store === undefined || wf.unstored) return;
  const value: StoredResult = { result: task.result, attempts: task.attempts, seq: wf.completedOrder.length - 1 };
  storeWrite(state, wf.id, (store) => store.insert(state.name, RESULT, resultKey(wf.id, task.spec.id), value));
}

/** The compensation at `index` settled (its outcome is `wf.compensations[index]`): recorded with its attempts. */
export function recordCompensation(state: State, wf: Run, index: number, attempts: number): void {
  if (state.store === undefined || wf.unstored) return;
  const c = wf.compensations[index]!;
  const outcome: StoredUndo = { attempts, outcome: c.ok ? c : { ...c, error: plainError(c.error) } };
  storeWrite(state, wf.id, (store) => store.put(state.name, UNDO, undoKey(wf.id, index), outcome));
}

/** The workflow finished: its records go. */
export function forget(state: State, wf: Run): void {
  if (state.store === undefined || wf.unstored) return;
  storeWrite(state, wf.id, (store) =>
    store.transaction(() => {
      store.delete(state.name, WORKFLOW, wf.id);
      for (const t of wf.tasks.values()) {
        const key = resultKey(wf.id, t.spec.id);
        store.delete(state.name, RESULT, key);
        store.delete(state.name, TASK, key);
      }
      for (let i = 0; i < wf.undo.length; i++) store.delete(state.name, UNDO, undoKey(wf.id, i));
    }),
  );
}
