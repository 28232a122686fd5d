import { checkKeys, InvalidArgumentError } from '../errors.js';
import { isDead, isProcess, originOf, type Proc } from '../runtime/kernel.js';
import { isPid, type Pid, type Target } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { DynamicSupervisor, type DynamicSupervisorOptions } from './DynamicSupervisor.js';
import type { ChildSpec } from './Supervisor.js';
import {
  type AsyncStreamOptions,
  checkFn,
  runStream,
  type StreamSpec,
  streamOptions,
  type Task,
  TaskImpl,
  taskInit,
  type YieldResult,
  watchTask,
} from './Task.js';

/** Options of `TaskSupervisor.start`: those of a DynamicSupervisor (`maxChildren` refuses with `ERR_MAX_CHILDREN`). */
export type TaskSupervisorOptions = DynamicSupervisorOptions;

/** How long a supervised task has to exit after `'shutdown'` before it is killed (default 5000 ms), or `'brutal_kill'`. */
export interface TaskShutdownOption {
  shutdown?: number | 'brutal_kill';
}

/**
 * What a supervised task waits for before it runs `fn`: the supervisor's start has returned. A task
 * that ended at once (a synchronous throw) would otherwise be refused as one that "exited as it
 * started"; Elixir's tasks start even when they crash first thing.
 */
function gate(): { promise: Promise<void>; open: () => void } {
  let open!: () => void;
  const promise = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { promise, open };
}

function checkOptions(options: unknown, keys: string[]): void {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an options object', options);
  checkKeys(options, keys, 'options');
}

/**
 * Starts `fn` as a temporary child of `supervisor`; `owner` (the caller, for `async`) links to it
 * before this resolves (as Elixir's `Task.Supervisor.async`: the link is there when it returns, though
 * the task may not have had its first turn yet), and the task links to it again first thing, so that
 * a caller that died meanwhile takes the task with it.
 */
async function superviseTask<T>(
  from: Node | Context<any>,
  supervisor: Target,
  fn: (ctx: Context<unknown>) => T | Promise<T>,
  owner: Proc | undefined,
  options: TaskShutdownOption,
): Promise<TaskImpl<T>> {
  checkFn(fn);
  checkOptions(options, ['shutdown']);
  const { node } = originOf(from);
  const task = new TaskImpl<T>(node, owner);
  const go = gate();
  const init = taskInit(task, fn, owner?.self, go.promise);
  try {
    await DynamicSupervisor.startChild(from, supervisor, {
      start: (sctx) => {
        const pid = sctx.spawnLink(init);
        watchTask(task, pid); // in the supervisor's turn, before the task's first one
        return pid;
      },
      restart: 'temporary',
      ...(options.shutdown === undefined ? {} : { shutdown: options.shutdown }),
    });
    // the caller alive and the task too (a supervisor stopped meanwhile took it: its outcome says so)
    if (owner !== undefined && !isDead(owner) && task.pid !== undefined && node.isAlive(task.pid)) owner.link(task.pid);
  } finally {
    go.open();
  }
  return task;
}

/**
 * TaskSupervisor: a DynamicSupervisor of tasks, after Elixir's `Task.Supervisor`. Its tasks are
 * temporary children (never restarted), stopped with it.
 *
 * @example
 * ```ts
 * const sup = await TaskSupervisor.start(node, { maxChildren: 100 });
 * const task = await TaskSupervisor.asyncNolink(ctx, sup, () => fetchReport());
 * const result = await Task.yield(task, 1000); // { ok: true, value } | { ok: false, exit } | undefined
 * ```
 */
export const TaskSupervisor = {
  start(from: Node | Context<any>, opts: TaskSupervisorOptions = {}): Promise<Pid> {
    return DynamicSupervisor.start(from, opts);
  },

  startLink(from: Context<any>, opts: TaskSupervisorOptions = {}): Promise<Pid> {
    return DynamicSupervisor.startLink(from, opts);
  },

  /** A child spec that starts a task supervisor under a Supervisor (`id` defaults to `'task_supervisor'`). */
  childSpec(opts: TaskSupervisorOptions & { id?: string } = {}): ChildSpec {
    if (typeof opts !== 'object' || opts === null) throw new InvalidArgumentError('options', 'a TaskSupervisorOptions object', opts);
    let id: string;
    let rest: TaskSupervisorOptions;
    try {
      ({ id = 'task_supervisor', ...rest } = opts);
    } catch {
      // a revoked proxy, or a getter that throws
      throw new InvalidArgumentError('options', 'a TaskSupervisorOptions object of plain data properties', opts);
    }
    return { id, start: (ctx) => DynamicSupervisor.startLink(ctx, rest), type: 'supervisor' };
  },

  /**
   * Runs `fn` in a task of `supervisor` linked to the caller as well: its crash kills a caller that
   * does not trap exits, and the caller's death kills the task.
   */
  async<T>(ctx: Context<any>, supervisor: Target, fn: (ctx: Context<unknown>) => T | Promise<T>, options: TaskShutdownOption = {}): Promise<Task<T>> {
    if (!isProcess(ctx)) return Promise.reject(new InvalidArgumentError('ctx', 'a process Context (a linked task needs a process)', ctx));
    return superviseTask(ctx, supervisor, fn, ctx, options);
  },

  /**
   * Runs `fn` in a task of `supervisor` not linked to the caller: its crash never reaches the caller,
   * which sees the reason (`Task.await` rejects with `ERR_TASK_EXIT`, `Task.yield` gives `{ ok: false, exit }`).
   */
  asyncNolink<T>(from: Node | Context<any>, supervisor: Target, fn: (ctx: Context<unknown>) => T | Promise<T>, options: TaskShutdownOption = {}): Promise<Task<T>> {
    return superviseTask(from, supervisor, fn, undefined, options);
  },

  /** Fire and forget: runs `fn` as a child of `supervisor` (`restart: 'temporary'` unless given), and gives its pid. */
  startChild(
    from: Node | Context<any>,
    supervisor: Target,
    fn: (ctx: Context<unknown>) => unknown,
    options: TaskShutdownOption & { restart?: 'temporary' | 'transient' | 'permanent' } = {},
  ): Promise<Pid> {
    checkFn(fn);
    checkOptions(options, ['shutdown', 'restart']);
    const go = gate();
    // a restart runs fn again, in a new process with a task of its own (nobody awaits it)
    const start = (sctx: Context<any>): Pid => sctx.spawnLink(taskInit(new TaskImpl<unknown>(originOf(sctx).node, undefined), fn, undefined, go.promise));
    const started = DynamicSupervisor.startChild(from, supervisor, {
      start,
      restart: options.restart ?? 'temporary',
      ...(options.shutdown === undefined ? {} : { shutdown: options.shutdown }),
    });
    return started.finally(go.open);
  },

  /**
   * Runs `fn` over `items` in tasks of `supervisor` not linked to the caller, `concurrency` of them
   * running at once, and yields each one's `YieldResult` (a crash is `{ ok: false, exit: reason }`;
   * with `onTimeout: 'kill_task'` a task past its `timeout` is killed and gives `{ ok: false, exit: 'timeout' }`).
   * A start refused (`ERR_MAX_CHILDREN`) rejects the iteration.
   */
  asyncStreamNolink<I, T>(
    from: Node | Context<any>,
    supervisor: Target,
    items: Iterable<I> | AsyncIterable<I>,
    fn: (item: I, ctx: Context<unknown>) => T | Promise<T>,
    options: AsyncStreamOptions = {},
  ): AsyncIterable<YieldResult<T>> {
    checkFn(fn, 'a function (item, ctx) => value');
    const { node, caller } = originOf(from);
    const spec: StreamSpec<I, T> = {
      ...streamOptions(items, options),
      node,
      owner: caller?.self,
      start: (item) => superviseTask(from, supervisor, (tctx) => fn(item, tctx), undefined, {}),
    };
    return {
      async *[Symbol.asyncIterator](): AsyncGenerator<YieldResult<T>> {
        for await (const o of runStream(items, spec)) yield o.ok ? { ok: true, value: o.value } : { ok: false, exit: o.reason };
      },
    };
  },

  /** The pids of the supervisor's running tasks. */
  async children(from: Node | Context<any>, supervisor: Target): Promise<Pid[]> {
    const rows = await DynamicSupervisor.whichChildren(from, supervisor);
    return rows.flatMap((r) => (r.pid === 'restarting' ? [] : [r.pid]));
  },

  /** Stops one task of the supervisor (with its shutdown), or `{ error: 'not_found' }`. */
  terminateChild(from: Node | Context<any>, supervisor: Target, pid: Pid): Promise<'ok' | { error: 'not_found' }> {
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'the Pid of a task', pid);
    return DynamicSupervisor.terminateChild(from, supervisor, pid);
  },
};
