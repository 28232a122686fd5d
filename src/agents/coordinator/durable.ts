import type { AgentStore } from '../store/AgentStore.js';
import { encodeValue } from '../store/AgentStore.js';
import { event, type Run, type State, type TaskRun } from './state.js';
import type { CompensationOutcome, Workflow } from './types.js';

/**
 * @internal The coordinator's records in an agent store (with `store` configured): one per active
 * workflow, kind {@link WORKFLOW}, keyed by its id, rewritten (`put`) at each transition that a
 * restart must not lose (started, a task completed, paused or resumed, compensating, a compensation
 * settled); and one per completed task, kind {@link RESULT}, keyed by workflow and task id, written
 * with `insert` in the same transaction as its workflow's record: a task's result is recorded once
 * (the first wins). A finished workflow's records are deleted (its result lives on in the node's
 * history only). Read back when a coordinator of the same name starts in a new OS process.
 */

export const WORKFLOW = 'workflow';
export const RESULT = 'result';

/** The record key of a task's result (unambiguous for any two strings). */
export const resultKey = (workflow: string, task: string): string => JSON.stringify([workflow, task]);

/** The workflow id of a result record's key, or undefined for a key that is not one. */
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

/** Keeps the active workflow's record (a transition). */
export function persist(state: State, wf: Run): void {
  if (state.store === undefined || wf.unstored) return; // no store: no record, nor a closure to write it
  storeWrite(state, wf.id, (store) => store.put(state.name, WORKFLOW, wf.id, recordOf(wf)));
}

/** A task completed: its result recorded once, with its workflow's record, in one transaction. */
export function recordResult(state: State, task: TaskRun): void {
  const wf = task.wf;
  if (state.store === undefined || wf.unstored) return;
  storeWrite(state, wf.id, (store) =>
    store.transaction(() => {
      store.insert(state.name, RESULT, resultKey(wf.id, task.spec.id), { result: task.result, attempts: task.attempts } satisfies StoredResult);
      store.put(state.name, WORKFLOW, wf.id, recordOf(wf));
    }),
  );
}

/** The workflow finished: its records go. */
export function forget(state: State, wf: Run): void {
  if (state.store === undefined || wf.unstored) return;
  storeWrite(state, wf.id, (store) =>
    store.transaction(() => {
      store.delete(state.name, WORKFLOW, wf.id);
      for (const t of wf.tasks.values()) store.delete(state.name, RESULT, resultKey(wf.id, t.spec.id));
    }),
  );
}
