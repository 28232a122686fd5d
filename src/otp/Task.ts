import { checkKeys, InvalidArgumentError, ProcessExitedError, TaskExitError, TaskTimeoutError, toError } from '../errors.js';
import { isDead, isProcess, type Kernel, originOf, type Proc } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { type ExitReason, formatReason } from '../runtime/messages.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Init, Node } from '../runtime/types.js';
import { validateTimeout } from './internal/calls.js';
import { adopt, isThenable } from './internal/thenable.js';

/** A computation running in its own process; `Task.await` gets its result. */
export interface Task<T> {
  readonly pid: Pid;
  /** @internal */
  readonly __result?: T;
}

/**
 * What a task ended with, as Elixir's `{:ok, value}` / `{:exit, reason}`: `Task.yield`,
 * `Task.shutdown`, `Task.yieldMany` and the streams that do not throw return it.
 */
export type YieldResult<T> = { readonly ok: true; readonly value: T } | { readonly ok: false; readonly exit: unknown };

/** Options of `Task.asyncStream` and `TaskSupervisor.asyncStreamNolink`. */
export interface AsyncStreamOptions {
  /** How many tasks run at once (default 8); Elixir's `max_concurrency`. */
  concurrency?: number;
  /** The same as `concurrency` (Elixir's name); give one of the two, or both equal. */
  maxConcurrency?: number;
  /** `true` (default): results in the order of the items; `false`: in the order the tasks finish. */
  ordered?: boolean;
  /** How long each task may run, in ms on the node's clock, from its start (default 5000; `Infinity`). */
  timeout?: number;
  /**
   * `'exit'` (default): a task past its timeout rejects the iteration with `ERR_TASK_TIMEOUT` and
   * stops every task; `'kill_task'`: kills that task and emits `{ ok: false, exit: 'timeout' }`.
   */
  onTimeout?: 'exit' | 'kill_task';
}

type Outcome<T> = { ok: true; value: T } | { ok: false; error: Error; reason: unknown };

/** @internal */
export class TaskImpl<T> implements Task<T> {
  /** Set once, right after the spawn (the task's init runs later, on its first turn). */
  pid!: Pid;
  readonly node: Kernel;
  /** The process linked to the task as its owner (`Task.shutdown` unlinks it first), if any. */
  readonly owner: Proc | undefined;
  /** The outcome, once known: the value, or the exit that ended the task without one. */
  outcome: Outcome<T> | undefined = undefined;
  readonly #waiters = new Set<() => void>();

  constructor(node: Kernel, owner: Proc | undefined) {
    this.node = node;
    this.owner = owner;
  }

  settle(outcome: Outcome<T>): void {
    if (this.outcome !== undefined) return;
    this.outcome = outcome;
    for (const w of this.#waiters) w();
    this.#waiters.clear();
  }

  wait(fn: () => void): () => void {
    this.#waiters.add(fn);
    return () => this.#waiters.delete(fn);
  }
}

/** @internal Throws ERR_INVALID_ARGUMENT unless `fn` is a function. */
export function checkFn(fn: unknown, expected = 'a function (ctx) => value'): void {
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', expected, fn);
}

/**
 * @internal The init of a task's process: it links to `linkTo` first when given (a dead one sends the
 * task a `noproc` exit, as OTP's link), runs `fn`, settles the task with its value and exits normally.
 * With a `gate`, it waits for it first (a supervised task: its supervisor has recorded it by then).
 */
export function taskInit<T>(task: TaskImpl<T>, fn: (ctx: Context<unknown>) => T | Promise<T>, linkTo?: Pid, gate?: Promise<void>): Init<unknown> {
  return (ctx) => {
    const done = (value: unknown): (() => void) => {
      task.settle({ ok: true, value: value as T });
      ctx.exit('normal');
      return () => undefined;
    };
    const run = (): (() => void) | Promise<() => void> => {
      if (linkTo !== undefined) ctx.link(linkTo);
      const r = fn(ctx);
      // a thenable that is no Promise is adopted as await adopts it: its then may return nothing, or
      // call back twice, and its rejection must end the task (then(done) alone dropped both)
      return isThenable(r) ? adopt(r).then(done) : done(r);
    };
    return gate === undefined ? run() : gate.then(run);
  };
}

/** @internal Records the task's pid and settles it with its exit reason when it ends without a value. */
export function watchTask<T>(task: TaskImpl<T>, pid: Pid): void {
  task.pid = pid;
  const exited = (reason: ExitReason): void => {
    if (task.outcome === undefined) task.settle({ ok: false, error: new TaskExitError(String(pid), reason, formatReason(reason)), reason });
  };
  if (task.node.onExit(pid, exited) === undefined) exited('noproc');
}

function spawnTask<T>(from: Node | Context<any>, fn: (ctx: Context<unknown>) => T | Promise<T>, link: boolean): TaskImpl<T> {
  checkFn(fn);
  const { node, caller } = originOf(from);
  const task = new TaskImpl<T>(node, link ? caller : undefined);
  const init = taskInit(task, fn);
  watchTask(task, caller === undefined ? node.spawn(init) : link ? caller.spawnLink(init) : caller.spawn(init));
  return task;
}

function checkTask<T>(task: Task<T>, argument = 'task'): TaskImpl<T> {
  if (!isInstance(task, TaskImpl)) throw new InvalidArgumentError(argument, 'a Task from Task.async, Task.asyncNolink or TaskSupervisor', task);
  return task as TaskImpl<T>;
}

function toResult<T>(o: Outcome<T>): YieldResult<T> {
  return o.ok ? { ok: true, value: o.value } : { ok: false, exit: o.reason };
}

/**
 * Resolves once every task has an outcome, or after `timeout` ms, whichever is first. The timeout
 * runs on the clock of the first task still running: a task that ended may be of a node that has
 * stopped since, whose timers never fire.
 */
function settledOrTimeout(tasks: readonly TaskImpl<unknown>[], timeout: number): Promise<void> {
  const pending = tasks.filter((t) => t.outcome === undefined);
  if (pending.length === 0 || timeout === 0) return Promise.resolve();
  const node = pending[0]!.node;
  return new Promise<void>((resolve) => {
    let left = pending.length;
    const unwaits: (() => void)[] = [];
    let timer: { cancel(): boolean } | undefined;
    const finish = (): void => {
      timer?.cancel();
      for (const u of unwaits) u();
      resolve();
    };
    for (const t of pending) {
      unwaits.push(
        t.wait(() => {
          if (--left === 0) finish();
        }),
      );
    }
    if (timeout !== Infinity) timer = node.setTimer(timeout, finish);
  });
}

function awaitTask<T>(task: Task<T>, options: { timeout?: number }): Promise<T> {
  const t = checkTask(task);
  // an option it does not know ({ timout }) is refused, never ignored (it would wait the default 5000 ms)
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ timeout? }', options);
  checkKeys(options, ['timeout'], 'options');
  const timeout = options.timeout ?? 5000;
  validateTimeout(timeout);
  const result = (): T => {
    const o = t.outcome!;
    if (o.ok) return o.value;
    throw o.error;
  };
  if (t.outcome !== undefined) {
    try {
      return Promise.resolve(result());
    } catch (e) {
      return Promise.reject(toError(e));
    }
  }
  return new Promise<T>((resolve, reject) => {
    let timer: { cancel(): boolean } | undefined;
    const unwait = t.wait(() => {
      timer?.cancel();
      try {
        resolve(result());
      } catch (e) {
        reject(e);
      }
    });
    if (timeout !== Infinity) {
      timer = t.node.setTimer(timeout, () => {
        unwait();
        reject(new TaskTimeoutError(String(t.pid), timeout));
      });
    }
  });
}

/** Unlinks the task from its owner (so that its end does not reach it), then sends it `reason`. */
function stopTask(task: TaskImpl<unknown>, reason: 'shutdown' | 'kill'): void {
  if (task.owner !== undefined && !isDead(task.owner)) task.node.unlink(task.owner, task.pid);
  if (task.outcome === undefined) task.node.exitSignal(task.pid, 'node', reason);
}

/** @internal A stream's emitted outcome: a value, a crash, or (with `'kill_task'`) a timeout. */
export type StreamOutcome<T> = Outcome<T> & { readonly timedOut?: true };

/** @internal How a stream starts and stops its tasks, with its validated options. */
export interface StreamSpec<I, T> {
  readonly node: Kernel;
  /** The calling process, if the stream has one: its death stops the stream's tasks (`'kill'`) and ends the stream. */
  readonly owner: Pid | undefined;
  readonly start: (item: I) => TaskImpl<T> | Promise<TaskImpl<T>>;
  readonly concurrency: number;
  readonly ordered: boolean;
  readonly timeout: number;
  readonly onTimeout: 'exit' | 'kill_task';
}

/** @internal Validates the items and the options of a stream. */
export function streamOptions(items: unknown, options: AsyncStreamOptions): Omit<StreamSpec<unknown, unknown>, 'node' | 'start' | 'owner'> {
  let iterable = false;
  try {
    iterable = items !== null && typeof items === 'object' && (Symbol.iterator in items || Symbol.asyncIterator in items);
  } catch {
    // a revoked proxy, or one whose has trap throws: no iterable
  }
  if (!iterable) throw new InvalidArgumentError('items', 'an iterable or async iterable', items);
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an AsyncStreamOptions object', options);
  checkKeys(options, ['concurrency', 'maxConcurrency', 'ordered', 'timeout', 'onTimeout'], 'options');
  const given = options.concurrency ?? options.maxConcurrency;
  if (options.concurrency !== undefined && options.maxConcurrency !== undefined && options.concurrency !== options.maxConcurrency) {
    throw new InvalidArgumentError('options.maxConcurrency', `the same as options.concurrency (${String(options.concurrency)}), or left out`, options.maxConcurrency);
  }
  const concurrency = given ?? 8;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) {
    throw new InvalidArgumentError(options.concurrency === undefined && options.maxConcurrency !== undefined ? 'options.maxConcurrency' : 'options.concurrency', 'a positive integer', concurrency);
  }
  const timeout = options.timeout ?? 5000;
  validateTimeout(timeout, 'options.timeout');
  const ordered = options.ordered ?? true;
  if (typeof ordered !== 'boolean') throw new InvalidArgumentError('options.ordered', 'true or false', options.ordered);
  const onTimeout = options.onTimeout ?? 'exit';
  if (onTimeout !== 'exit' && onTimeout !== 'kill_task') throw new InvalidArgumentError('options.onTimeout', "'exit' or 'kill_task'", options.onTimeout);
  return { concurrency, ordered, timeout, onTimeout };
}

/**
 * @internal Runs the items through tasks, `concurrency` of them running at any time: a task that
 * finishes frees its slot at once, and its outcome waits in a buffer until the ones before it are
 * emitted (`ordered`), or is emitted as it comes. Stopping the iteration (break, throw, a timeout
 * with `'exit'`) kills the tasks still running.
 */
export async function* runStream<I, T>(items: Iterable<I> | AsyncIterable<I>, s: StreamSpec<I, T>): AsyncGenerator<StreamOutcome<T>> {
  const source = Symbol.asyncIterator in items ? (items as AsyncIterable<I>) : toAsync(items as Iterable<I>);
  const it = source[Symbol.asyncIterator]();
  let exhausted = false;
  interface Entry {
    readonly task: TaskImpl<T>;
    timer?: { cancel(): boolean };
    unwait?: () => void;
  }
  const running = new Map<number, Entry>();
  /** Finished outcomes not emitted yet, by item index (insertion order is completion order). */
  const ready = new Map<number, StreamOutcome<T>>();
  let next = 0;
  let emit = 0;
  let failure: Error | undefined;
  let wake: (() => void) | undefined;
  const signal = (): void => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const finish = (i: number, outcome: StreamOutcome<T>): void => {
    const e = running.get(i);
    if (e === undefined) return;
    running.delete(i);
    e.timer?.cancel();
    e.unwait?.();
    ready.set(i, outcome);
    signal();
  };
  /**
   * Kills the running tasks (the stream's end, or its caller's death), as Elixir's stream does: a
   * task that traps exits would live on after a 'shutdown', unlinked from its caller, for ever.
   */
  const stopAll = (): void => {
    for (const e of running.values()) {
      e.timer?.cancel();
      e.unwait?.();
      stopTask(e.task, 'kill');
    }
    running.clear();
  };
  // the caller's death kills the tasks still running, as Elixir's stream monitor does: a task not
  // linked to its caller (TaskSupervisor.asyncStreamNolink) would otherwise outlive it, for ever if it never ends
  let ownerGone = false;
  /** The stream fails (its error thrown): closing the source must not replace that error. */
  let failing = false;
  const onOwnerExit = (): void => {
    ownerGone = true;
    failure ??= new ProcessExitedError(String(s.owner), 'asyncStream');
    stopAll();
    signal();
  };
  const unwatchOwner = s.owner === undefined ? undefined : s.node.onExit(s.owner, onOwnerExit);
  if (s.owner !== undefined && unwatchOwner === undefined) onOwnerExit();
  const launch = async (item: I): Promise<void> => {
    const i = next++;
    const task = await s.start(item);
    if (ownerGone) {
      stopTask(task, 'kill'); // started while its caller died
      return;
    }
    const entry: Entry = { task };
    running.set(i, entry);
    if (task.outcome !== undefined) return finish(i, task.outcome);
    entry.unwait = task.wait(() => finish(i, task.outcome!));
    if (s.timeout === Infinity) return;
    entry.timer = s.node.setTimer(s.timeout, () => {
      if (!running.has(i)) return;
      if (s.onTimeout === 'kill_task') {
        finish(i, { ok: false, error: new TaskTimeoutError(String(task.pid), s.timeout), reason: 'timeout', timedOut: true });
        stopTask(task, 'kill');
      } else {
        failure ??= new TaskTimeoutError(String(task.pid), s.timeout);
        signal();
      }
    });
  };
  try {
    for (;;) {
      while (!exhausted && failure === undefined && running.size < s.concurrency) {
        const n = await it.next();
        if (n.done === true) {
          exhausted = true;
          break;
        }
        await launch(n.value);
      }
      if (failure !== undefined) throw failure;
      const key = s.ordered ? (ready.has(emit) ? emit : undefined) : ready.keys().next().value;
      if (key !== undefined) {
        const outcome = ready.get(key)!;
        ready.delete(key);
        emit++;
        yield outcome;
        continue;
      }
      if (exhausted && running.size === 0) return;
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } catch (error) {
    failing = true;
    throw error;
  } finally {
    unwatchOwner?.();
    stopAll();
    if (!exhausted) {
      try {
        await it.return?.();
      } catch (error) {
        // the stream's own failure (a timeout, a crash, a refused start) is the one told, as for-of
        // keeps its body's error over one from closing the iterator
        if (!failing) throw error;
      }
    }
  }
}

async function* toAsync<I>(items: Iterable<I>): AsyncGenerator<I> {
  yield* items;
}

function asyncStream<I, T>(
  ctx: Context<any>,
  items: Iterable<I> | AsyncIterable<I>,
  fn: (item: I, ctx: Context<unknown>) => T | Promise<T>,
  options: AsyncStreamOptions & { onTimeout: 'kill_task' },
): AsyncIterable<YieldResult<T>>;
function asyncStream<I, T>(
  ctx: Context<any>,
  items: Iterable<I> | AsyncIterable<I>,
  fn: (item: I, ctx: Context<unknown>) => T | Promise<T>,
  options?: AsyncStreamOptions & { onTimeout?: 'exit' },
): AsyncIterable<T>;
function asyncStream<I, T>(
  ctx: Context<any>,
  items: Iterable<I> | AsyncIterable<I>,
  fn: (item: I, ctx: Context<unknown>) => T | Promise<T>,
  options: AsyncStreamOptions = {},
): AsyncIterable<T | YieldResult<T>> {
  if (!isProcess(ctx)) throw new InvalidArgumentError('ctx', 'a process Context', ctx);
  checkFn(fn, 'a function (item, ctx) => value');
  const opts = streamOptions(items, options);
  const spec: StreamSpec<I, T> = { ...opts, node: originOf(ctx, 'ctx').node, owner: ctx.self, start: (item) => spawnTask(ctx, (tctx) => fn(item, tctx), true) };
  const results = opts.onTimeout === 'kill_task';
  return {
    async *[Symbol.asyncIterator](): AsyncGenerator<T | YieldResult<T>> {
      for await (const o of runStream(items, spec)) {
        if (o.ok) yield results ? { ok: true, value: o.value } : o.value;
        else if (o.timedOut === true) yield { ok: false, exit: 'timeout' };
        else throw o.error; // a linked task's crash: the caller got its exit signal (it traps exits, or it is gone)
      }
    },
  };
}

/**
 * Task: a one-off computation in its own process, after Elixir's `Task`.
 *
 * @example
 * ```ts
 * const task = Task.async(ctx, async () => fetchReport());
 * const report = await Task.await(task, { timeout: 10_000 });
 * for await (const size of Task.asyncStream(ctx, urls, (url) => download(url), { concurrency: 4 })) total += size;
 * ```
 */
export const Task = {
  /** Runs `fn` in a new process linked to the caller: a crash of the task kills the caller unless it traps exits. */
  async<T>(ctx: Context<any>, fn: (ctx: Context<unknown>) => T | Promise<T>): Task<T> {
    if (!isProcess(ctx)) throw new InvalidArgumentError('ctx', 'a process Context (a linked task needs a process)', ctx);
    return spawnTask(ctx, fn, true);
  },

  /** Runs `fn` in a new process not linked to anyone: a crash only rejects `Task.await` with `ERR_TASK_EXIT`. */
  asyncNolink<T>(from: Node | Context<any>, fn: (ctx: Context<unknown>) => T | Promise<T>): Task<T> {
    return spawnTask(from, fn, false);
  },

  /**
   * The task's result. Rejects with `ERR_TASK_EXIT` when the task exited without one, and with
   * `ERR_TASK_TIMEOUT` after `timeout` (default 5000 ms on the node's clock; the task keeps running).
   */
  await<T>(task: Task<T>, options: { timeout?: number } = {}): Promise<T> {
    return awaitTask(task, options);
  },

  /**
   * The task's result if it ends within `timeoutMs` (default 5000, on the node's clock):
   * `{ ok: true, value }`, or `{ ok: false, exit }` with its exit reason; `undefined` when it is still
   * running, which it goes on doing (a later `yield` or `await` can still get its result).
   */
  async yield<T>(task: Task<T>, timeoutMs = 5000): Promise<YieldResult<T> | undefined> {
    const t = checkTask(task);
    validateTimeout(timeoutMs, 'timeoutMs');
    await settledOrTimeout([t], timeoutMs);
    return t.outcome === undefined ? undefined : toResult(t.outcome);
  },

  /**
   * Waits up to `timeoutMs` (default 5000, on the clock of the node of the first task still running)
   * for all the tasks, then gives each one's result in order: as `Task.yield` does, `undefined` for one still running.
   */
  async yieldMany<T>(tasks: readonly Task<T>[], timeoutMs = 5000): Promise<(YieldResult<T> | undefined)[]> {
    let ts: TaskImpl<T>[];
    try {
      if (!Array.isArray(tasks)) throw new InvalidArgumentError('tasks', 'an array of Tasks', tasks);
      ts = Array.from({ length: tasks.length }, (_, i) => checkTask(tasks[i] as Task<T>, `tasks[${i}]`));
    } catch (e) {
      // a revoked proxy (Array.isArray throws on it) or an element getter that throws
      if (e instanceof InvalidArgumentError) throw e;
      throw new InvalidArgumentError('tasks', 'an array of Tasks (plain data)', tasks);
    }
    validateTimeout(timeoutMs, 'timeoutMs');
    if (ts.length === 0) return [];
    await settledOrTimeout(ts, timeoutMs);
    return ts.map((t) => (t.outcome === undefined ? undefined : toResult(t.outcome)));
  },

  /**
   * Stops the task: unlinks it from its caller, sends it `'shutdown'` and kills it if it has not
   * exited after `timeoutMs` (default 5000), or kills it at once with `{ brutalKill: true }`.
   * Gives its result if it ended otherwise meanwhile (`{ ok: true, value }` or `{ ok: false, exit }`),
   * `undefined` when the shutdown stopped it.
   */
  async shutdown<T>(task: Task<T>, how: number | { brutalKill: true } = 5000): Promise<YieldResult<T> | undefined> {
    const t = checkTask(task);
    let brutal = false;
    try {
      brutal = typeof how === 'object' && how !== null && (how as { brutalKill?: unknown }).brutalKill === true;
    } catch {
      throw new InvalidArgumentError('how', 'a number of milliseconds >= 0, Infinity or { brutalKill: true }', how);
    }
    if (brutal) checkKeys(how as object, ['brutalKill'], 'how'); // a misspelt key is refused, as in every options object
    else validateTimeout(how, 'how');
    if (t.outcome !== undefined) return toResult(t.outcome);
    stopTask(t as TaskImpl<unknown>, brutal ? 'kill' : 'shutdown');
    if (!brutal) {
      await settledOrTimeout([t], how as number);
      if (t.outcome === undefined) stopTask(t as TaskImpl<unknown>, 'kill');
    }
    await settledOrTimeout([t], Infinity);
    const o = t.outcome!;
    // the end our own signal caused is no result; a value or another exit that came first is
    if (!o.ok && (o.reason === 'shutdown' || o.reason === 'killed')) return undefined;
    return toResult(o);
  },

  /**
   * Runs `fn` over `items` in tasks linked to the caller, keeping `concurrency` (default 8) running,
   * and yields their values in the order of `items` (`ordered: false`: as they finish). With
   * `onTimeout: 'kill_task'` it yields `YieldResult`s instead, `{ ok: false, exit: 'timeout' }` for a
   * task killed past its `timeout`.
   */
  asyncStream,
};
