import { AbortedError, CallExitError, InvalidArgumentError, isKeelError, readKnownOptions } from '../../errors.js';
import { GenServer } from '../../otp/GenServer.js';
import { isDead, isProcess, kernelOf, type Kernel } from '../../runtime/kernel.js';
import { checkTarget, isPid, nameOf, type Pid, targetText } from '../../runtime/Pid.js';
import { isInstance } from '../../runtime/safe.js';
import type { Context, Node } from '../../runtime/types.js';
import { runTaskOn, type AgentCast } from '../Agent.js';
import { afterMs, checkPositiveInteger, checkSignal, checkTimeout, isArray, readArgument } from './shared.js';

/** One piece of work for one agent. */
export interface Assignment<W> {
  readonly agent: Pid | string;
  readonly work: W;
}

/** Runs one assignment; `signal` aborts at the timeout and when the run is aborted. */
export type ExecuteFn<W, V> = (agent: Pid | string, work: W, options: { signal: AbortSignal }) => V | Promise<V>;

export interface ExecuteDistributedOptions {
  /** How long one assignment may take, in ms on the node's clock (default 5000; Infinity: no limit). */
  timeoutMs?: number;
  /** Assignments running at once at most (default 16); the others wait their turn, in order. */
  maxConcurrency?: number;
  /** The task `kind` of the default function's `run_task` (default `'execute'`). */
  kind?: string;
  /** Aborts the run: running assignments' signals abort, waiting ones end as `'error'` with `ERR_ABORTED`. */
  signal?: AbortSignal;
}

/** How one assignment ended: its value, or why not. Never raised: one agent's failure is its own outcome. */
export type ExecutionOutcome<W, V> =
  | { readonly index: number; readonly agent: Pid | string; readonly work: W; readonly outcome: 'ok'; readonly value: V; readonly durationMs: number }
  | { readonly index: number; readonly agent: Pid | string; readonly work: W; readonly outcome: 'timeout'; readonly durationMs: number }
  | { readonly index: number; readonly agent: Pid | string; readonly work: W; readonly outcome: 'error'; readonly error: unknown; readonly durationMs: number }
  | { readonly index: number; readonly agent: Pid | string; readonly work: W; readonly outcome: 'noproc'; readonly durationMs: number };

export interface ExecuteDistributedResult<W, V> {
  /** One per assignment, in assignment order. */
  readonly results: ExecutionOutcome<W, V>[];
  readonly ok: number;
  readonly timeout: number;
  readonly error: number;
  readonly noproc: number;
  /** The most assignments that ran at once. */
  readonly peakConcurrency: number;
}

const OPTIONS = ['timeoutMs', 'maxConcurrency', 'kind', 'signal'] as const;
const runs = new WeakMap<Node, number>();

/** The assignments, checked and read once: what runs is what was checked (a getter is not read again). */
function checkAssignments<W>(value: unknown): Assignment<W>[] {
  if (!isArray(value, 'assignments', 'an array of { agent: Pid | name, work }')) throw new InvalidArgumentError('assignments', 'an array of { agent: Pid | name, work }', value);
  const n = readArgument(() => value.length, 'assignments', 'an array of { agent: Pid | name, work }', value);
  const snapshot: Assignment<W>[] = [];
  // by index, not forEach: a hole in a sparse array is checked (as undefined), not skipped
  for (let i = 0; i < n; i++) {
    const expected = '{ agent: Pid | name, work }';
    const a: unknown = readArgument(() => value[i], `assignments[${i}]`, expected, value);
    if (typeof a !== 'object' || a === null || isArray(a, `assignments[${i}]`, expected)) throw new InvalidArgumentError(`assignments[${i}]`, expected, a);
    const agent = readArgument(() => (a as { agent?: unknown }).agent, `assignments[${i}].agent`, 'a Pid or name', a);
    checkTarget(agent, `assignments[${i}].agent`);
    const work = readArgument(() => (a as { work?: unknown }).work, `assignments[${i}].work`, 'a value that can be read', a) as W;
    snapshot.push({ agent: agent as Pid | string, work });
  }
  return snapshot;
}

/**
 * Runs each assignment's work on its agent, at most `maxConcurrency` at once, each within
 * `timeoutMs` on the node's clock, and resolves with one outcome per assignment, in order: `'ok'`
 * with its value, `'timeout'`, `'error'` with what failed, or `'noproc'` (the agent is not
 * running). It never rejects for one agent's failure.
 *
 * `fn(agent, work, { signal })` runs an assignment; without it each is a `run_task` call of the
 * agent protocol, task `{ id: '<run>.<index>', kind, payload: work }`: an answer `{ ok: true, result }`
 * is `'ok'` with the result, `{ ok: false, error }` is `'error'`; a task past its timeout is
 * cancelled (`cancel_task`). A timed-out `fn` is told through its signal; its slot is freed at once
 * and whatever it ends with later is ignored. Emits `keel.coordination.executed`. Throws
 * `ERR_INVALID_ARGUMENT` for bad arguments.
 *
 * @example
 * ```ts
 * const r = await executeDistributed(node, [{ agent: a.pid, work: 1 }, { agent: b.pid, work: 2 }], undefined, { timeoutMs: 1000, maxConcurrency: 2 });
 * console.log(r.results.map((x) => x.outcome)); // ['ok', 'ok']
 * ```
 */
export function executeDistributed<W, V = unknown>(
  from: Node | Context<any>,
  assignments: readonly Assignment<W>[],
  fn?: ExecuteFn<W, V> | ExecuteDistributedOptions,
  options?: ExecuteDistributedOptions,
): Promise<ExecuteDistributedResult<W, V>> {
  const node = kernelOf(from);
  const checked = checkAssignments<W>(assignments);
  let run = fn;
  let o = options;
  if (run !== undefined && typeof run !== 'function') {
    if (typeof run !== 'object' || run === null || options !== undefined) throw new InvalidArgumentError('fn', 'a function (agent, work, { signal }) => value, or undefined', run);
    o = run;
    run = undefined;
  }
  // each option read once (a getter is not asked again): what is checked is what is used
  let opts: Partial<Record<(typeof OPTIONS)[number], unknown>> = {};
  if (o !== undefined) {
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('options', '{ timeoutMs?, maxConcurrency?, kind?, signal? }', o);
    opts = readKnownOptions(o, OPTIONS, 'options');
  }
  const timeoutMs = opts.timeoutMs ?? 5000;
  checkTimeout(timeoutMs, 'options.timeoutMs');
  const maxConcurrency = opts.maxConcurrency ?? 16;
  if (maxConcurrency !== Infinity) checkPositiveInteger(maxConcurrency, 'options.maxConcurrency');
  const kind = opts.kind ?? 'execute';
  if (typeof kind !== 'string') throw new InvalidArgumentError('options.kind', 'a string', kind);
  const signal = opts.signal;
  checkSignal(signal);
  const n = (runs.get(node) ?? 0) + 1;
  runs.set(node, n);
  const work: IndexedFn<W, V> = run ?? defaultFn<W, V>(from, node, `execute-${n}`, kind);
  // run from a process: once it has died nothing more starts (nothing is sent from a dead process)
  const callerGone = isProcess(from) ? (): boolean => isDead(from) : (): boolean => false;
  return execute(node, checked, work, timeoutMs, maxConcurrency as number, signal, callerGone);
}

/** @internal An ExecuteFn that is also given the assignment's index (the default one names its task by it). */
type IndexedFn<W, V> = (agent: Pid | string, work: W, options: { signal: AbortSignal }, index: number) => V | Promise<V>;

/** A task's `{ ok: false, error }` answer, carried to the outcome as its error. */
class TaskFailed {
  constructor(readonly error: unknown) {}
}

/**
 * How a failed assignment ends. What a `fn` fails with is its own: one that cannot be inspected (a
 * revoked proxy, a trap or a `code` getter that throws) is an `'error'` with it, never a throw
 * here that would leave its slot taken and the run unsettled.
 */
function failed(e: unknown, durationMs: number): { outcome: 'error'; error: unknown; durationMs: number } | { outcome: 'timeout' | 'noproc'; durationMs: number } {
  try {
    if (isInstance(e, TaskFailed)) return { outcome: 'error', error: e.error, durationMs };
    if (isKeelError(e, 'ERR_NOPROC')) return { outcome: 'noproc', durationMs };
    if (isKeelError(e, 'ERR_CALL_TIMEOUT')) return { outcome: 'timeout', durationMs };
  } catch {
    // not ours, not Keel's: the error as it is
  }
  return { outcome: 'error', error: e, durationMs };
}

/** `run_task` on the agent; `{ ok: false }` answers become errors, a task past its timeout is cancelled. */
function defaultFn<W, V>(from: Node | Context<any>, node: Kernel, run: string, kind: string): IndexedFn<W, V> {
  return async (agent, payload, { signal }, index) => {
    const task = { id: `${run}.${index}`, kind, payload };
    let answer;
    try {
      answer = await runTaskOn(from, agent, task, { timeout: Infinity, signal });
    } catch (e) {
      // our abort (the timeout): the agent may still be running it: tell it to stop
      if (signal.aborted && (!isPid(agent) || node.isAlive(agent))) GenServer.cast<AgentCast>(from, agent, { type: 'cancel_task', taskId: task.id });
      // the node shut down under the task: the agent was stopped while running it, with the exit
      // reason 'shutdown' (what OTP's call reports), not a process that was never there
      if (node.stopping && isKeelError(e, 'ERR_NOPROC')) {
        throw new CallExitError(targetText(agent), 'shutdown', 'shutdown (the node shut down)', { registeredName: nameOf(agent) });
      }
      throw e;
    }
    if (!answer.ok) throw new TaskFailed(answer.error);
    return answer.result as V;
  };
}


async function execute<W, V>(
  node: Kernel,
  assignments: Assignment<W>[],
  fn: IndexedFn<W, V>,
  timeoutMs: number,
  maxConcurrency: number,
  signal: AbortSignal | undefined,
  callerGone: () => boolean,
): Promise<ExecuteDistributedResult<W, V>> {
  const started = node.timerNow(); // durations on the timers' time: a wall clock stepped meanwhile does not change them
  const results: ExecutionOutcome<W, V>[] = new Array(assignments.length);
  let running = 0;
  let peak = 0;
  let next = 0;
  let settled = 0;
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  /** Running assignments, each ended at once (`'error'`, ERR_ABORTED) when the run is aborted. */
  const stops = new Set<() => void>();

  type Ending = { outcome: 'ok'; value: V; durationMs: number } | { outcome: 'timeout' | 'noproc'; durationMs: number } | { outcome: 'error'; error: unknown; durationMs: number };
  const end = (i: number, r: Ending): void => {
    const a = assignments[i]!;
    results[i] = { index: i, agent: a.agent, work: a.work, ...r } as ExecutionOutcome<W, V>;
    if (++settled === assignments.length) finish();
  };

  const start = (i: number): void => {
    const { agent, work } = assignments[i]!;
    const t0 = node.timerNow();
    const took = (): number => node.timerNow() - t0;
    if (isPid(agent) ? !node.isAlive(agent) : node.registry.whereis(agent) === undefined) {
      end(i, { outcome: 'noproc', durationMs: 0 });
      return;
    }
    running++;
    peak = Math.max(peak, running);
    const abort = new AbortController();
    let over = false;
    const stop = (): void => {
      if (over) return;
      abort.abort(new AbortedError('executeDistributed', signal?.reason));
      end(i, { outcome: 'error', error: new AbortedError('executeDistributed', signal?.reason), durationMs: took() });
      close();
    };
    stops.add(stop);
    const close = (): void => {
      over = true;
      stops.delete(stop);
      cancelTimer?.();
      running--;
      pump();
    };
    const cancelTimer =
      timeoutMs === Infinity
        ? undefined
        : afterMs(node, timeoutMs, () => {
            if (over) return;
            abort.abort(new AbortedError('executeDistributed: an assignment', 'timeout'));
            end(i, { outcome: 'timeout', durationMs: took() });
            close();
          });
    let p: Promise<V>;
    try {
      p = Promise.resolve(fn(agent, work, { signal: abort.signal }, i));
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (value) => {
        if (over) return;
        end(i, { outcome: 'ok', value, durationMs: took() });
        close();
      },
      (e: unknown) => {
        if (over) return;
        end(i, failed(e, took()));
        close();
      },
    );
  };

  const pump = (): void => {
    if (signal?.aborted === true) {
      while (next < assignments.length) end(next++, { outcome: 'error', error: new AbortedError('executeDistributed', signal?.reason), durationMs: 0 });
      return;
    }
    if (callerGone()) {
      // the process the run is made from died: what has not started never does
      while (next < assignments.length) end(next++, { outcome: 'error', error: new AbortedError('executeDistributed', 'the calling process exited'), durationMs: 0 });
      return;
    }
    while (running < maxConcurrency && next < assignments.length) start(next++);
  };

  const onAbort = (): void => {
    // a function that ignores its signal does not hold the run: its outcome is decided now
    for (const stop of [...stops]) stop();
    pump();
  };
  if (assignments.length === 0) finish();
  signal?.addEventListener('abort', onAbort, { once: true });
  if (signal?.aborted === true) onAbort();
  else pump();
  await done;
  signal?.removeEventListener('abort', onAbort);
  const count = (k: ExecutionOutcome<W, V>['outcome']): number => results.filter((r) => r.outcome === k).length;
  const result: ExecuteDistributedResult<W, V> = { results, ok: count('ok'), timeout: count('timeout'), error: count('error'), noproc: count('noproc'), peakConcurrency: peak };
  node.telemetry.execute(
    'keel.coordination.executed',
    { assignments: assignments.length, ok: result.ok, timeout: result.timeout, error: result.error, noproc: result.noproc, peakConcurrency: peak, durationMs: node.timerNow() - started },
    { maxConcurrency },
  );
  return result;
}
