import { GenServer } from '../../otp/GenServer.js';
import type { Pid } from '../../runtime/Pid.js';
import { forget } from './durable.js';
import { event, listening, put, stopTaskTimers, type Run, type State, type TaskRun } from './state.js';
import { stopStuckTimer } from './stuck.js';
import type { TaskOutcome, WorkflowResult, WorkflowStatus } from './types.js';

// A workflow's result and status: what it answers while it runs (statusOfRun), and its result once it
// ended (finalize, from runs.ts's finish, or from saga.ts once its compensations ran).

export const isActive = (wf: Run): boolean => wf.state === 'running' || wf.state === 'paused' || wf.state === 'compensating';

export function statusOfRun(wf: Run, finishedAt?: number): WorkflowStatus {
  let running = 0;
  let failed = 0;
  for (let i = 0; i < wf.order.length; i++) {
    const t = wf.order[i]!;
    if (t.state === 'running' && t.current !== undefined) running++;
    else if (t.state === 'failed') failed++;
  }
  const waiting = wf.tasks.size - wf.completed - running - failed;
  const tasks = { total: wf.tasks.size, completed: wf.completed, running, waiting, failed };
  // literals, not a spread: one shape each
  if (finishedAt === undefined) return { id: wf.id, state: wf.state, tasks, reassigned: wf.reassigned, startedAt: wf.startedAt };
  return { id: wf.id, state: wf.state, tasks, reassigned: wf.reassigned, startedAt: wf.startedAt, finishedAt };
}

function outcomeOf(t: TaskRun): TaskOutcome {
  // built without spreads: one object per task of every finished workflow
  if (t.state === 'completed' && t.worker !== undefined) return { state: 'completed', result: t.result, worker: t.worker, attempts: t.attempts };
  const state = t.state === 'completed' || t.state === 'failed' ? t.state : t.state === 'running' ? (t.current === undefined ? 'cancelled' : 'running') : 'waiting';
  const o: { state: TaskOutcome['state']; result?: unknown; error?: unknown; worker?: Pid; attempts: number } = { state, attempts: t.attempts };
  if (state === 'completed') o.result = t.result;
  else if (state === 'failed') o.error = t.error;
  if (t.worker !== undefined) o.worker = t.worker;
  return o;
}

/** @internal The workflow's result goes to its callers and waiters; it leaves the active set for the history. */
export function finalize(state: State, wf: Run, status: 'completed' | 'failed' | 'cancelled', failedTask?: string, error?: unknown): void {
  if (!isActive(wf)) return;
  wf.state = status;
  stopStuckTimer(state, wf);
  for (const t of wf.undo) {
    stopTaskTimers(state, t);
  }
  // a date (results and history show it), and the end of workflow_finished's durationMs: that one stays on the
  // node's clock too, as it runs from startedAt, which is stored and may be another OS process's (a resumed workflow)
  const finishedAt = state.ctx.node.clock.now();
  const tasks: Record<string, TaskOutcome> = {};
  for (let i = 0; i < wf.order.length; i++) {
    const t = wf.order[i]!;
    put(tasks, t.spec.id, outcomeOf(t));
  }
  const result: WorkflowResult = failedTask === undefined && status !== 'failed'
    // the common case as a literal (no spreads: one shape); the same keys in the same order
    ? { id: wf.id, status, results: wf.results, tasks, compensations: wf.compensations, reassigned: wf.reassigned, startedAt: wf.startedAt, finishedAt }
    : {
    id: wf.id,
    status,
    results: wf.results,
    tasks,
    compensations: wf.compensations,
    ...(failedTask === undefined ? {} : { failedTask }),
    ...(status === 'failed' ? { error } : {}),
    reassigned: wf.reassigned,
    startedAt: wf.startedAt,
    finishedAt,
  };
  state.runs.delete(wf.id);
  forget(state, wf);
  state.history.set(wf.id, { status: statusOfRun(wf, finishedAt), result });
  while (state.history.size > state.options.historySize) state.history.delete(state.history.keys().next().value!);
  if (status === 'completed') state.m.completed++;
  else if (status === 'failed') state.m.failed++;
  else state.m.cancelled++;
  if (listening(state, 'workflow_finished')) event(state, 'workflow_finished', { durationMs: finishedAt - wf.startedAt, tasks: wf.tasks.size, reassigned: wf.reassigned }, { workflow: wf.id, status, failedTask, error });
  for (const from of wf.waiters) GenServer.reply(from, result);
  wf.waiters.length = 0;
}
