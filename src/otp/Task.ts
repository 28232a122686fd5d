import { InvalidArgumentError, TaskExitError, TaskTimeoutError, toError } from '../errors.js';
import { isProcess, type Kernel, originOf } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { formatReason } from '../runtime/messages.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Init, Node } from '../runtime/types.js';
import { validateTimeout } from './internal/calls.js';

/** A computation running in its own process; `Task.await` gets its result. */
export interface Task<T> {
  readonly pid: Pid;
  /** @internal */
  readonly __result?: T;
}

class TaskImpl<T> implements Task<T> {
  /** Set once, right after the spawn (the task's init runs later, on its first turn). */
  pid!: Pid;
  readonly node: Kernel;
  /** The outcome, once known: the value, or the exit that ended the task without one. */
  outcome: { ok: true; value: T } | { ok: false; error: Error } | undefined = undefined;
  readonly #waiters = new Set<() => void>();

  constructor(node: Kernel) {
    this.node = node;
  }

  settle(outcome: { ok: true; value: T } | { ok: false; error: Error }): void {
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

function spawnTask<T>(from: Node | Context<any>, fn: (ctx: Context<unknown>) => T | Promise<T>, link: boolean): TaskImpl<T> {
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (ctx) => value', fn);
  const { node, caller } = originOf(from);
  const task = new TaskImpl<T>(node);
  const init: Init<unknown> = (ctx) => {
    const done = (value: unknown): (() => void) => {
      task.settle({ ok: true, value: value as T });
      ctx.exit('normal');
      return () => undefined;
    };
    const r = fn(ctx);
    if (typeof r === 'object' && r !== null && typeof (r as { then?: unknown }).then === 'function') {
      return (r as Promise<T>).then(done);
    }
    return done(r);
  };
  const pid = caller === undefined ? node.spawn(init) : link ? caller.spawnLink(init) : caller.spawn(init);
  task.pid = pid;
  node.onExit(pid, (reason) => {
    if (task.outcome === undefined) task.settle({ ok: false, error: new TaskExitError(String(pid), reason, formatReason(reason)) });
  });
  return task;
}

function awaitTask<T>(task: Task<T>, options: { timeout?: number }): Promise<T> {
  if (!isInstance(task, TaskImpl)) throw new InvalidArgumentError('task', 'a Task from Task.async or Task.asyncNolink', task);
  const timeout = options.timeout ?? 5000;
  validateTimeout(timeout);
  const t = task as TaskImpl<T>;
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
   * Runs `fn` over `items` in tasks linked to the caller, at most `concurrency` (default 8) at a
   * time, and yields the results in the order of `items`.
   */
  asyncStream<I, T>(
    ctx: Context<any>,
    items: Iterable<I> | AsyncIterable<I>,
    fn: (item: I, ctx: Context<unknown>) => T | Promise<T>,
    options: { concurrency?: number; timeout?: number } = {},
  ): AsyncIterable<T> {
    if (!isProcess(ctx)) throw new InvalidArgumentError('ctx', 'a process Context', ctx);
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (item, ctx) => value', fn);
    const concurrency = options.concurrency ?? 8;
    if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError('options.concurrency', 'a positive integer', concurrency);
    const timeout = options.timeout ?? 5000;
    validateTimeout(timeout, 'options.timeout');
    if (items === null || typeof items !== 'object' || !(Symbol.iterator in items || Symbol.asyncIterator in items)) {
      throw new InvalidArgumentError('items', 'an iterable or async iterable', items);
    }
    return {
      async *[Symbol.asyncIterator](): AsyncGenerator<T> {
        const running: Task<T>[] = [];
        const source = Symbol.asyncIterator in items ? (items as AsyncIterable<I>) : toAsync(items as Iterable<I>);
        const it = source[Symbol.asyncIterator]();
        let exhausted = false;
        const fill = async (): Promise<void> => {
          while (!exhausted && running.length < concurrency) {
            const next = await it.next();
            if (next.done === true) {
              exhausted = true;
              return;
            }
            const item = next.value;
            running.push(spawnTask(ctx, (tctx) => fn(item, tctx), true));
          }
        };
        try {
          await fill();
          while (running.length > 0) {
            const value = await awaitTask(running[0]!, { timeout }); // stays listed until it settled
            running.shift();
            await fill();
            yield value;
          }
        } finally {
          // the consumer stopped early (break, throw, a timeout): the tasks still running are stopped
          // with 'shutdown', unlinked first so that their end does not reach the caller
          for (const task of running) {
            if (ctx.node.isAlive(ctx.self)) ctx.unlink(task.pid);
            ctx.node.exit(task.pid, 'shutdown');
          }
          running.length = 0;
          if (!exhausted) await it.return?.();
        }
      },
    };
  },
};

async function* toAsync<I>(items: Iterable<I>): AsyncGenerator<I> {
  yield* items;
}
