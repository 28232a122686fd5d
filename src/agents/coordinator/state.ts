import type { From } from '../../otp/GenServer.js';
import { kernelOf } from '../../runtime/kernel.js';
import { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import type { WatchRef } from '../internal/watch.js';
import type { AgentQuery } from '../registry/query.js';
import type { AgentStore } from '../store/AgentStore.js';
import type { Retry } from './policy.js';
import type { CompensationOutcome, NoWorkerError, Workflow, WorkflowResult, WorkflowState, WorkflowStatus, WorkflowTask } from './types.js';
import type { Settings } from './validate.js';

/**
 * @internal The coordinator's state: its pool of {@link Worker}s, its workflows ({@link Run}s of
 * {@link TaskRun}s, each attempt an {@link Attempt}), the messages it sends itself, and the small
 * helpers every part of it uses.
 */

export interface Worker {
  readonly pid: Pid;
  readonly key: string;
  readonly capabilities: ReadonlySet<string>;
  /** The kinds it runs; undefined: any kind. */
  readonly kinds: ReadonlySet<string> | undefined;
  readonly watch: WatchRef;
  load: number;
  /** Its position in the state's `pool` while it is in it. */
  index: number;
  /** Its attempts under way (an attempt knows its slot: no Set churning 0 -> 1 -> 0 per task). */
  readonly running: RunningList;
}

export interface Attempt {
  readonly task: TaskRun;
  /** Undefined for an aggregate step (it runs in the coordinator). */
  readonly worker: Worker | undefined;
  /** Set once this attempt's outcome has been taken into account (or it was made moot). */
  done: boolean;
  /** An aggregate step's timeout timer (cancelled when it settles or its workflow ends). */
  timer: unknown;
  /** Its workflow's last progress before this attempt started, and when it started: a refused offer is not progress. */
  readonly progressBefore: number;
  readonly startedAt: number;
  /** Its index in its worker's {@link RunningList} while in it, else -1. */
  slot: number;
}

/**
 * A worker's attempts under way: an array read up to `size`, an attempt removed by moving the last
 * one into its slot. Slots past `size` are cleared, never cut off, so a list that goes 0 -> 1 -> 0
 * per task (one task per worker) allocates nothing once it has grown.
 */
export class RunningList {
  #items: (Attempt | undefined)[] = [];
  size = 0;

  add(attempt: Attempt): void {
    attempt.slot = this.size;
    this.#items[this.size++] = attempt;
  }

  /** Removes the attempt; false if it was not in the list. */
  delete(attempt: Attempt): boolean {
    const i = attempt.slot;
    if (i < 0 || i >= this.size || this.#items[i] !== attempt) return false;
    const last = --this.size;
    const moved = this.#items[last]!;
    this.#items[i] = moved;
    moved.slot = i;
    this.#items[last] = undefined;
    attempt.slot = -1;
    return true;
  }

  /** A copy of the attempts, in no particular order. */
  toArray(): Attempt[] {
    return this.#items.slice(0, this.size) as Attempt[];
  }
}

export interface TaskRun {
  readonly wf: Run;
  readonly spec: WorkflowTask;
  /** `'compensation'`: the saga step undoing `undoes`. */
  readonly role: 'task' | 'compensation';
  readonly undoes: TaskRun | undefined;
  /** What routes it: its kind and the capabilities it requires. */
  readonly kind: string;
  readonly requires: readonly string[];
  readonly retry: Retry | undefined;
  state: 'blocked' | 'ready' | 'delayed' | 'running' | 'completed' | 'failed';
  /** The worker that last timed out or refused it: the next attempt goes elsewhere if it can. */
  avoid: Worker | undefined;
  /** The worker it ran on when the coordinator restarted: offered there again first (it may still run it). */
  prefer: Worker | undefined;
  /** While delayed: when it is ready again, on the timers' time (kept in the node only, never stored), so a restart in the node re-arms the delay. */
  dueAt: number;
  blockers: number;
  /** The tasks waiting on it ({@link NO_DEPENDENTS}, shared, until it has one). */
  dependents: readonly TaskRun[];
  /** Attempts started; `lost` of them to a death, removal or timeout, `errors` of them to an error. */
  attempts: number;
  lost: number;
  errors: number;
  current: Attempt | undefined;
  /** When its first attempt started, and when it completed or failed (node clock), for an observer's timeline. */
  startedAt: number | undefined;
  endedAt: number | undefined;
  /** The pid of its last attempt's worker (the coordinator's for an aggregate step). */
  worker: Pid | undefined;
  result: unknown;
  error: unknown;
  /** The `waitForWorkersMs` timer while it waits for a worker that runs its kind. */
  waitTimer: unknown;
  /** While delayed: the timer that makes it ready again (cancelled when its workflow ends). */
  delayTimer: unknown;
  /** While delayed: true when a worker refused it (busy, duplicate_task), false for a retry's backoff. */
  refused?: boolean;
}

export interface Run {
  readonly id: string;
  /** The workflow as submitted (plain data: what a store keeps). */
  readonly spec: Workflow;
  /**
   * When `timeoutMs` fails it, or undefined: on the node's clock (the wall clock on the real clock),
   * not the timers' time, as it is stored with the workflow and re-armed from by a new OS process,
   * with which only the wall clock is shared (so a wall clock stepped while it runs moves it).
   */
  deadline: number | undefined;
  readonly tasks: Map<string, TaskRun>;
  /** The same tasks in the workflow's order, read by index on hot paths (a Map iterator allocates a result per step). */
  readonly order: TaskRun[];
  state: WorkflowState;
  completed: number;
  reassigned: number;
  readonly results: Record<string, unknown>;
  readonly startedAt: number;
  readonly waiters: From<WorkflowResult>[];
  timer: unknown;
  readonly waitMs: number;
  readonly stuckMs: number;
  /** The last progress, on the timers' time (in memory only; the observer shows it as a date). */
  progressAt: number;
  stuckTimer: unknown;
  stuckReported: boolean;
  /** Tasks in the order they completed (for the saga's reverse order). */
  readonly completedOrder: TaskRun[];
  /** While compensating: its compensations in the order they run (the current one is `undo[compensations.length]`), their outcomes, and how the workflow failed. */
  readonly undo: TaskRun[];
  readonly compensations: CompensationOutcome[];
  failure: { failedTask: string | undefined; error: unknown } | undefined;
  /** Started while the coordinator's store could not be read: it runs in memory only, never written (its id may be a stored workflow's). */
  readonly unstored: boolean;
}

/** The counts behind `metrics()`. */
export interface Counts { completed: number; failed: number; cancelled: number; rejected: number; tasksCompleted: number; tasksFailed: number; reassigned: number; timedOut: number; left: number; retried: number }

/**
 * What outlives the coordinator's process (its componentState table, under its name): the pool,
 * the active workflows with every task's state, the remembered history and the counts. A
 * coordinator restarted under the same name resumes from it.
 */
export interface Kept {
  readonly workers: Map<string, Worker>;
  readonly runs: Map<string, Run>;
  readonly history: Map<string, { status: WorkflowStatus; result: WorkflowResult }>;
  readonly m: Counts;
  seq: number;
  /** Agents taken out with `removeWorker` (pid keys): a followed registry query does not bring them back. */
  readonly removed: Set<string>;
  /**
   * The store could not be read at the start (its `loadAll` failed): its records are not this
   * coordinator's to write over or delete. It is read again before each new workflow and at a
   * restart; until then new workflows run in memory only and a normal stop deletes nothing.
   */
  storeUnread: boolean;
  /** Stored workflows a late read found under the id of a workflow started while the store could not be read: left in the store, untouched, for a later start; their ids are not given again. */
  readonly shadowed: Set<string>;
}

/** What the coordinator keeps while it follows a registry query (follow.ts): joins under way, and whether a look is due. */
export interface Follow {
  readonly query: AgentQuery;
  readonly joining: Set<string>;
  pending: boolean;
  readonly handlerId: string;
}

/**
 * What becomes of a workflow when one of its tasks ends for good: the workflow ends (runs.ts's
 * `finish`), or its saga goes on (saga.ts's `compensationSettled`). The dispatcher (dispatch.ts),
 * which runs the tasks, reaches them through the state: they start tasks through the dispatcher in
 * turn, so it imports neither (CoordinatorAgent.ts gives them when it makes the state).
 */
export interface TaskEnds {
  finish(state: State, wf: Run, status: 'completed' | 'failed' | 'cancelled', failedTask?: string, error?: unknown): void;
  compensationSettled(state: State, task: TaskRun, ok: boolean, value: unknown): void;
}

export interface State {
  readonly ctx: Context<any>;
  /** Its registered name (the key of its table and of its store records). */
  readonly name: string;
  readonly kept: Kept;
  /** Where active workflows are kept across OS processes, if configured. */
  readonly store: AgentStore | undefined;
  readonly options: Settings;
  readonly workers: Map<string, Worker>;
  /** The same workers in the order they joined, read by index where dispatch scans the pool (a Map iterator allocates a result per step). */
  readonly pool: Worker[];
  /** Every worker of `pool` below this index has no room (load at maxTasksPerWorker): dispatch's scan starts here. */
  fullBelow: number;
  readonly runs: Map<string, Run>;
  readonly history: Map<string, { status: WorkflowStatus; result: WorkflowResult }>;
  /**
   * Ready tasks in the order they became ready, in slots `head` to `tail`; holes are tasks already
   * taken. Slots outside are undefined; the array is never cut short (its backing store is kept).
   */
  readonly ready: (TaskRun | undefined)[];
  head: number;
  tail: number;
  /** Workers of the pool with room (load below maxTasksPerWorker), kept as loads change. */
  free: number;
  readonly m: Counts;
  /** The registry query the pool follows (`workers: registry.select(…)`), if any. */
  follow: Follow | undefined;
  /** Its process is dead (its signal aborted): set on the abort event, read per answer instead of the signal's getter. */
  dead: boolean;
  /** Its events' telemetry probes, by event name (filled as they are first emitted). */
  readonly probes: Map<string, { readonly active: boolean }>;
  /** What a task's end does to its workflow ({@link TaskEnds}). */
  readonly ends: TaskEnds;
}

/** A worker asked to join answered its status (capabilities undefined: it did not). */
export class Joined {
  constructor(readonly pid: Pid, readonly capabilities: readonly string[] | undefined, readonly kinds: readonly string[] | undefined, readonly from: From<unknown>) {}
}
/** A refused task's delay, or a retry's backoff, is over: it is ready again. */
export class Requeue {
  constructor(readonly task: TaskRun) {}
}
/** A task's `waitForWorkersMs` is over. */
export class NoWorkerDue {
  constructor(readonly task: TaskRun) {}
}
/** An aggregate step's attempt ran past its timeout. */
export class AggregateTimeout {
  constructor(readonly attempt: Attempt) {}
}
/**
 * A workflow's `timeoutMs` is over. It names the run, not its id: one that fired as its workflow ended
 * (cancelling the timer does not take it back from the mailbox) must not fail the next workflow given that id.
 */
export class WorkflowTimeout {
  constructor(readonly wf: Run) {}
}

/** The dependents of a task nothing depends on (most tasks): one frozen empty array, read by index. */
export const NO_DEPENDENTS: readonly TaskRun[] = Object.freeze([]);

/** The id a task carries to its agent: unique across the coordinator's workflows. */
export const agentTaskId = (task: TaskRun): string => {
  const id = `${idPart(task.wf.id)}/${idPart(task.spec.id)}`;
  return task.role === 'task' ? id : `${id}/compensate`;
};

/**
 * One part of an agent's task id, with `%` and `/` escaped (`%25`, `%2F`), so that the id names one
 * task: workflow `a/b`'s task `c` and workflow `a`'s task `b/c` would both be `a/b/c` otherwise, and
 * a task `y/compensate` would be named as task `y`'s compensation. An id without either is as is.
 */
function idPart(id: string): string {
  return id.includes('/') || id.includes('%') ? id.replaceAll('%', '%25').replaceAll('/', '%2F') : id;
}
export const pidKey = (pid: Pid): string => Pid.format(pid);

/** Whether anyone would see `keel.coordinator.<name>` (a hot path builds an event's data only then). */
export function listening(state: State, name: string): boolean {
  let probe = state.probes.get(name);
  if (probe === undefined) state.probes.set(name, (probe = kernelOf(state.ctx).telemetry.probe(`keel.coordinator.${name}`)));
  return probe.active;
}

/** Emits `keel.coordinator.<name>` (nothing is built when no one listens). */
export function event(state: State, name: string, measurements: Record<string, number>, metadata: Record<string, unknown>): void {
  if (!listening(state, name)) return;
  state.ctx.node.telemetry.execute(`keel.coordinator.${name}`, measurements, { coordinator: state.ctx.self, ...metadata });
}

/** Whether the task's workflow still wants it run (a compensation runs while its workflow compensates). */
export function wanted(task: TaskRun): boolean {
  const s = task.wf.state;
  return task.role === 'task' ? s === 'running' || s === 'paused' : s === 'compensating';
}

/** Cancels the task's timers (its workflow ended, or it left the state they were for). */
export function stopTaskTimers(state: State, task: TaskRun): void {
  if (task.waitTimer !== undefined) state.ctx.cancelTimer(task.waitTimer as never);
  if (task.delayTimer !== undefined) state.ctx.cancelTimer(task.delayTimer as never);
  task.waitTimer = undefined;
  task.delayTimer = undefined;
}

/** Defines `obj[key]` as an own property (a task id `__proto__` is a key like any other). */
export function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  if (key === '__proto__') Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
  else obj[key] = value;
}

/**
 * @internal The time the coordinator's in-memory waits count in (a workflow's progress, a task's
 * retry delay): the node's timers' (monotonic on the real clock), so a wall clock stepped back or
 * forward neither stretches nor cuts them. What is stored or shown (`startedAt`, a workflow's
 * deadline, a task's `startedAt` and `endedAt`) stays on the node's clock.
 */
export function timerNow(state: State): number {
  return kernelOf(state.ctx).timerNow();
}

/** Whether the worker runs the task's kind and has every capability it requires. */
export function eligible(worker: Worker, task: TaskRun): boolean {
  if (worker.kinds !== undefined && !worker.kinds.has(task.kind)) return false;
  const requires = task.requires;
  for (let i = 0; i < requires.length; i++) if (!worker.capabilities.has(requires[i]!)) return false;
  return true;
}

export function anyEligible(state: State, task: TaskRun): boolean {
  const pool = state.pool;
  for (let i = 0; i < pool.length; i++) if (eligible(pool[i]!, task)) return true;
  return false;
}

export function noWorkerError(task: TaskRun): NoWorkerError {
  return { code: 'no_worker', kind: task.kind, requires: [...task.requires], task: task.spec.id };
}
