import { InvalidArgumentError, readKnownOptions } from '../../errors.js';
import { GenServer } from '../../otp/GenServer.js';
import { isDead, isProcess, kernelOf, type Kernel } from '../../runtime/kernel.js';
import { nameOf, type Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { runTaskOn, statusOf, type AgentCast, type AgentTask, type TaskRequest } from '../Agent.js';
import { callFailure, pidKey, checkObject, checkPositiveInteger, checkSignal, checkTimeout, isArray, readArgument, readTargets } from './shared.js';
import { AgentQuery, newcomers, resolveSource, type AgentsOrQuery } from './agentSource.js';

export type WorkStrategy = 'round_robin' | 'least_loaded' | 'capability';

export interface DistributeWorkOptions<T> {
  /**
   * The agents that run the items (distinct pids or names; at least one), or a registry query
   * (`registry.select(...)`) resolved when the run starts. With a query, once a worker of the run
   * died, `'least_loaded'` and `'capability'` ask it again at each dispatch round, so a restarted
   * worker (its new pid under its key) and agents registered since take items too.
   */
  workers: AgentsOrQuery;
  /**
   * `'round_robin'` (default): item i goes to `workers[i % workers.length]`, whatever happens.
   * `'least_loaded'`: each item goes to the worker with the fewest of this run's tasks in flight
   * (the earliest on a tie). `'capability'`: the least loaded among the workers whose `status`
   * lists every capability the item requires.
   */
  strategy?: WorkStrategy;
  /** Tasks of this run in flight on one worker at most (default 4); further items wait their turn. */
  maxPerWorker?: number;
  /** How long one task may take, in ms (default 5000, on the node's clock); past it the task is cancelled and fails with `'timeout'`. */
  timeout?: number;
  /** The task for an item (default `{ id: '<run>.<index>', kind: 'work', payload: item }`); task ids must be distinct. */
  toTask?(item: T, index: number): TaskRequest;
  /** The capabilities an item requires, for `'capability'` (default: the item's own `requires` array, if it has one, else none). */
  requires?(item: T, index: number): readonly string[];
  /**
   * Aborts the run: waiting items and tasks in flight fail with `'aborted'` (the running ones are
   * cancelled). Aborted before the run or while the workers' status is asked, every item fails so.
   */
  signal?: AbortSignal;
}

/** Why an item failed without an answer from its task. */
export type WorkFailure = 'noproc' | 'timeout' | 'process_down' | 'aborted' | 'mailbox_full' | 'deadlock' | 'no_capable_worker' | 'no_live_worker';

/** One item's end: the task's result, or its error (what the task failed with, or a {@link WorkFailure}). */
export interface WorkResult<T> {
  readonly item: T;
  readonly index: number;
  /** The worker of its last attempt (none when it was never dispatched). */
  readonly worker: Pid | string | undefined;
  readonly ok: boolean;
  readonly result?: unknown;
  readonly error?: unknown;
  /** Dispatches: more than one when its worker died and it was given to another. */
  readonly attempts: number;
}

export interface WorkerTally {
  readonly worker: Pid | string;
  /** Tasks dispatched to it (retried ones included). */
  assigned: number;
  completed: number;
  failed: number;
}

export interface DistributeWorkResult<T> {
  /** One per item, in item order. */
  readonly results: WorkResult<T>[];
  readonly completed: number;
  readonly failed: number;
  /** Items given to another worker after theirs died. */
  readonly reassigned: number;
  /** One per worker, in worker order (workers a query found during the run after those it found at the start). */
  readonly perWorker: WorkerTally[];
}

const STRATEGIES = ['round_robin', 'least_loaded', 'capability'] as const;
let runs = 0;

function defaultRequires(item: unknown): readonly string[] {
  if (typeof item !== 'object' || item === null) return [];
  const r = (item as { requires?: unknown }).requires;
  return Array.isArray(r) ? (r as string[]) : [];
}

interface Plan<T> {
  readonly strategy: WorkStrategy;
  readonly maxPerWorker: number;
  readonly timeout: number;
  readonly tasks: AgentTask[];
  readonly requires: (readonly string[])[];
  readonly signal: AbortSignal | undefined;
  readonly items: readonly T[];
  readonly source: AgentsOrQuery;
  readonly run: string;
}

const OPTIONS = ['workers', 'strategy', 'maxPerWorker', 'timeout', 'toTask', 'requires', 'signal'] as const;

function plan<T>(given: unknown, options: unknown, node: Node): Plan<T> {
  if (!isArray(given, 'items', 'an array')) throw new InvalidArgumentError('items', 'an array', given);
  // a copy read by index: a hole is the item undefined (map and forEach would skip it, and the run
  // would wait for ever for its result)
  const items = readArgument(() => Array.from(given as T[]), 'items', 'an array', given);
  checkObject(options, 'options', '{ workers, strategy?, maxPerWorker?, timeout?, toTask?, requires?, signal? }');
  // each option read once (a misspelt one refused, a getter that throws a bad argument), and what
  // is checked is what is used: a getter is not asked again
  const o = readKnownOptions(options, OPTIONS, 'options');
  const workers = AgentQuery.is(o.workers) ? o.workers : (readTargets(o.workers, 'options.workers', node) as (Pid | string)[]);
  const strategy = o.strategy ?? 'round_robin';
  if (!(STRATEGIES as readonly unknown[]).includes(strategy)) throw new InvalidArgumentError('options.strategy', "'round_robin' | 'least_loaded' | 'capability'", strategy);
  const strategyName = strategy as WorkStrategy;
  const maxPerWorker = o.maxPerWorker ?? 4;
  checkPositiveInteger(maxPerWorker, 'options.maxPerWorker');
  const timeout = o.timeout ?? 5000;
  checkTimeout(timeout, 'options.timeout');
  const signal = o.signal;
  checkSignal(signal);
  const { toTask, requires } = o;
  if (toTask !== undefined && typeof toTask !== 'function') throw new InvalidArgumentError('options.toTask', 'a function (item, index) => AgentTask', toTask);
  if (requires !== undefined && typeof requires !== 'function') throw new InvalidArgumentError('options.requires', 'a function (item, index) => string[]', requires);
  const run = `work-${++runs}`;
  const ids = new Set<string>();
  const tasks = items.map((item: T, i): AgentTask => {
    const task = toTask === undefined ? { id: `${run}.${i}`, kind: 'work', payload: item } : (toTask as (item: T, index: number) => unknown)(item, i);
    const t = task as Partial<AgentTask> | null;
    if (typeof t !== 'object' || t === null || typeof t.id !== 'string' || t.id === '' || typeof t.kind !== 'string') {
      throw new InvalidArgumentError(`options.toTask(items[${i}])`, '{ id: non-empty string, kind: string, payload }', task);
    }
    if (ids.has(t.id)) throw new InvalidArgumentError(`options.toTask(items[${i}]).id`, 'a task id not used by another item', t.id);
    ids.add(t.id);
    return t as AgentTask;
  });
  const needs = items.map((item: T, i): readonly string[] => {
    if (strategyName !== 'capability') return [];
    const argument = `requirements of items[${i}]`;
    const expected = 'an array of strings';
    // read once, guarded, and copied: a getter or proxy trap that throws is a bad argument naming
    // the item, and what is matched later is what was checked
    const r = requires === undefined ? readArgument(() => defaultRequires(item), argument, expected, item) : (requires as (item: T, index: number) => unknown)(item, i);
    const copy = isArray(r, argument, expected) ? readArgument(() => Array.from(r), argument, expected, r) : undefined;
    if (copy === undefined || copy.some((c) => typeof c !== 'string')) throw new InvalidArgumentError(argument, expected, r);
    return copy as string[];
  });
  return { strategy: strategyName, maxPerWorker, timeout, tasks, requires: needs, signal, items, run, source: workers };
}

/**
 * Runs every item as a `run_task` call on one of `workers`, at most `maxPerWorker` of this run's
 * tasks at once on each, and resolves when every item has ended (`results` in item order, never a
 * hang): round robin, least loaded (load counted by this dispatcher: up on dispatch, down when
 * the task completes), or capability match (the least loaded worker whose `status` lists every
 * capability the item requires; an item no worker can take fails with `'no_capable_worker'`).
 *
 * A worker that is dead or dies while running an item: with `'least_loaded'` and `'capability'`
 * the item is given to another live worker it has not tried (at-least-once: the dead worker may
 * have done part of it); with `'round_robin'` the item fails (`'noproc'` or `'process_down'`).
 * A task that times out is cancelled and fails with `'timeout'` (not retried: its worker is alive).
 * Emits `keel.coordination.work_distributed`. Throws `ERR_INVALID_ARGUMENT` for bad arguments.
 *
 * @example
 * ```ts
 * const r = await distributeWork(node, images, { workers: [a.pid, b.pid], strategy: 'least_loaded', toTask: (img, i) => ({ id: `img-${i}`, kind: 'resize', payload: img }) });
 * console.log(r.completed, r.failed, r.perWorker.map((w) => w.completed));
 * ```
 */
export function distributeWork<T>(from: Node | Context<any>, items: readonly T[], options: DistributeWorkOptions<T>): Promise<DistributeWorkResult<T>> {
  const node = kernelOf(from);
  const p = plan<T>(items, options, node);
  return run(from, node, p);
}

async function run<T>(from: Node | Context<any>, node: Kernel, p: Plan<T>): Promise<DistributeWorkResult<T>> {
  const started = node.timerNow(); // durationMs on the timers' time: a wall clock stepped meanwhile does not change it
  // the workers now (a query's answer at the start; it may grow after a death, see `grow`)
  const workers: (Pid | string)[] = resolveSource(p.source);
  const n = workers.length;
  const load = new Array<number>(n).fill(0);
  const dead = new Array<boolean>(n).fill(false);
  const perWorker: WorkerTally[] = workers.map((worker) => ({ worker, assigned: 0, completed: 0, failed: 0 }));
  // the status calls (capability) end with the run: aborted by the user's signal, or withdrawn when
  // the run ends (a newcomer's may still be out then: no timer, watch or pending call is left
  // behind). Forwarded by a listener removed at the end (no AbortSignal.any: nothing accumulates on
  // a long-lived signal)
  const statusAbort = p.strategy === 'capability' ? new AbortController() : undefined;
  const abortStatus = (): void => statusAbort?.abort();
  if (statusAbort !== undefined && p.signal !== undefined) {
    if (p.signal.aborted) statusAbort.abort();
    else p.signal.addEventListener('abort', abortStatus, { once: true });
  }
  const statusOptions = { timeout: p.timeout, ...(statusAbort === undefined ? {} : { signal: statusAbort.signal }) };
  /**
   * A status answer's capabilities, copied once: none for no answer, one without a capabilities
   * array (not an agent), or one that cannot be read (a revoked proxy, a getter or trap that throws:
   * read later, it would reject the run, or throw where nothing catches it).
   */
  const capsOf = (s: unknown): readonly string[] | undefined => {
    try {
      if (typeof s !== 'object' || s === null) return undefined;
      const caps: unknown = (s as { capabilities?: unknown }).capabilities;
      return Array.isArray(caps) ? Array.from(caps as unknown[]).filter((c): c is string => typeof c === 'string') : undefined;
    } catch {
      return undefined;
    }
  };
  const results: WorkResult<T>[] = new Array(p.items.length);
  const tried = p.items.map(() => new Set<number>());
  const lastError: (WorkFailure | undefined)[] = new Array(p.items.length);
  let settled = 0;
  let reassigned = 0;

  // which workers can take which item (capability): those whose status answered and lists every requirement
  let capable: number[][] | undefined;
  if (p.strategy === 'capability') {
    const answers = (await Promise.all(workers.map((w) => statusOf(from, w, statusOptions).then((s) => s, () => undefined)))).map(capsOf);
    capable = p.requires.map((needs) => answers.flatMap((caps, w) => (caps !== undefined && needs.every((c) => caps.includes(c)) ? [w] : [])));
  }

  /** Adds a worker found during the run (capability: with the capabilities its status listed). */
  const add = (worker: Pid, caps: readonly string[] | undefined): void => {
    const w = workers.length;
    workers.push(worker);
    load.push(0);
    dead.push(false);
    perWorker.push({ worker, assigned: 0, completed: 0, failed: 0 });
    lists.push([]);
    heads.push(0);
    if (capable === undefined || caps === undefined) return;
    // the items it can take: a retried one through capable, one still waiting in its list too, in item order
    p.requires.forEach((needs, i) => {
      if (!needs.every((c) => caps.includes(c))) return;
      capable![i]!.push(w);
      if (waiting[i]) lists[w]!.push(i);
    });
  };
  // with a query: once a worker died, each dispatch round asks the query again for agents the run
  // does not know (a restarted worker's new pid); round robin keeps its fixed assignment
  const growing = AgentQuery.is(p.source) && p.strategy !== 'round_robin' ? p.source : undefined;
  let died = false;
  /** Newcomers whose status is being asked (capability), by pid key; items with no worker left wait for them. */
  const probing = new Set<string>();
  // and, from then on, a registration in its registry is a reason to look again (a restarted
  // worker may register after the items it could take were left waiting)
  let watching: string | undefined;
  const grow = (): void => {
    if (growing === undefined || !died) return;
    if (watching === undefined) {
      watching = `keel.distribute_work.${p.run}`;
      node.telemetry.attach(watching, ['keel.agent_registry.registered'], (_event, _m, meta) => {
        if (meta?.registry === growing.registry) queueMicrotask(pump);
      });
    }
    const fresh = newcomers(growing, workers).filter((pid) => !probing.has(pidKey(pid)) && node.isAlive(pid));
    if (p.strategy !== 'capability') {
      for (const pid of fresh) add(pid, undefined);
      return;
    }
    for (const pid of fresh) {
      probing.add(pidKey(pid));
      statusOf(from, pid, statusOptions).then((s) => s, () => undefined).then((s) => {
        if (settled === p.items.length) return; // the run has ended: a late answer changes nothing
        probing.delete(pidKey(pid));
        add(pid, capsOf(s));
        pump();
      });
    }
  };

  /** Whether the run is made from a process context whose process has died. */
  const callerGone = (): boolean => isProcess(from) && isDead(from);
  /** Whether nothing more may start: the run is aborted, or the process it is made from has died (what waits fails with `'aborted'`). */
  const stopped = (): boolean => p.signal?.aborted === true || callerGone();
  let finish!: () => void;
  const done = new Promise<void>((resolve) => (finish = resolve));
  const end = (i: number, r: Omit<WorkResult<T>, 'item' | 'index' | 'attempts'>): void => {
    results[i] = { item: p.items[i]!, index: i, attempts: tried[i]!.size, ...r };
    if (++settled === p.items.length) finish();
  };
  const lastWorker = (i: number): Pid | string | undefined => {
    let last: number | undefined;
    for (const w of tried[i]!) last = w;
    return last === undefined ? undefined : workers[last];
  };

  // round robin keeps a queue per worker; least loaded one queue in item order, retried items first.
  // Capability: that queue holds the retried items only (they skip the workers they tried); the
  // others wait in a list per worker of the items it can take, in item order, each marked waiting
  // until it is dispatched or fails (and skipped then, lazily, by every list it is in)
  const fixed = p.strategy === 'round_robin' && n > 0;
  const queues: number[][] = fixed ? workers.map(() => []) : [[]];
  const waiting = p.items.map(() => capable !== undefined);
  const lists: number[][] = workers.map(() => []);
  /** Per worker, where its list's items still waiting begin. */
  const heads: number[] = workers.map(() => 0);
  if (capable === undefined) p.items.forEach((_item, i) => queues[fixed ? i % n : 0]!.push(i));
  else capable.forEach((ws, i) => ws.forEach((w) => lists[w]!.push(i)));
  /** Workers seen dead since they were last seen alive, whose waiting items may have no live worker left. */
  const fallen: number[] = [];
  /** Items left waiting with no live worker while newcomers were probed: looked at again once none is. */
  const spared: number[] = [];
  const markDead = (w: number): void => {
    if (!dead[w] && capable !== undefined) fallen.push(w);
    dead[w] = true;
  };
  /** Whether worker w is alive now (a name: something is registered under it). */
  const live = (w: number): boolean => {
    const target = workers[w]!;
    // a pid never comes back; a name does, when its process is restarted under it (as in OTP):
    // a name is dead while nothing is registered under it
    if (typeof target === 'string') {
      if (node.registry.whereis(target) !== undefined) dead[w] = false;
      else markDead(w);
    } else if (!dead[w] && !node.isAlive(target)) {
      markDead(w);
      died = true;
    }
    return !dead[w];
  };
  /** Worker w's first item still waiting (capability). */
  const head = (w: number): number | undefined => {
    const list = lists[w]!;
    let k = heads[w]!;
    while (k < list.length && !waiting[list[k]!]) k++;
    heads[w] = k;
    return list[k];
  };

  /** The worker for item i now; `undefined` when every candidate is full; a failure when it has none left. */
  const choose = (i: number): number | undefined | WorkFailure => {
    if (p.strategy === 'round_robin') return load[i % n]! < p.maxPerWorker ? i % n : undefined;
    const pool = capable === undefined ? workers.map((_w, w) => w) : capable[i]!;
    if (pool.length === 0) return probing.size > 0 ? undefined : 'no_capable_worker';
    let best: number | undefined;
    let left = false;
    for (const w of pool) {
      if (!live(w) || tried[i]!.has(w)) continue;
      left = true;
      if (load[w]! < p.maxPerWorker && (best === undefined || load[w]! < load[best]!)) best = w;
    }
    if (!left) return probing.size > 0 ? undefined : (lastError[i] ?? 'no_live_worker');
    return best;
  };

  const dispatch = (i: number, w: number): void => {
    load[w]!++;
    perWorker[w]!.assigned++;
    if (tried[i]!.size > 0) reassigned++;
    tried[i]!.add(w);
    const task = p.tasks[i]!;
    const worker = workers[w]!;
    // a name stands for the process registered under it now, once: the task runs there and is
    // cancelled there, never on a process that took the name meanwhile (choose just found it registered)
    const name = nameOf(worker);
    const pid = name === undefined ? (worker as Pid) : node.registry.whereis(name);
    runTaskOn(from, pid ?? worker, task, { timeout: p.timeout, ...(p.signal === undefined ? {} : { signal: p.signal }) }).then(
      (answer) => {
        load[w]!--;
        if (answer.ok) {
          perWorker[w]!.completed++;
          end(i, { worker, ok: true, result: answer.result });
        } else {
          perWorker[w]!.failed++;
          end(i, { worker, ok: false, error: answer.error });
        }
        pump();
      },
      (e: unknown) => {
        load[w]!--;
        perWorker[w]!.failed++;
        if (callerGone()) {
          // the run's process died, and its call with it (not the worker): the run ends with it
          end(i, { worker, ok: false, error: 'aborted' });
          pump();
          return;
        }
        const reason = callFailure(e);
        if (reason === undefined) {
          end(i, { worker, ok: false, error: e });
          pump();
          return;
        }
        if (reason === 'timeout' || reason === 'aborted') {
          // the worker may still be running it: tell it to stop
          if (pid !== undefined && node.isAlive(pid)) GenServer.cast<AgentCast>(from, pid, { type: 'cancel_task', taskId: task.id });
        }
        if ((reason === 'noproc' || reason === 'process_down') && p.strategy !== 'round_robin' && p.signal?.aborted !== true) {
          markDead(w);
          died = true;
          lastError[i] = reason;
          queues[0]!.unshift(i); // first in line for another worker
        } else {
          end(i, { worker, ok: false, error: reason });
        }
        pump();
      },
    );
  };

  /** Whether a worker not known dead has room for one more task of this run. */
  const roomLeft = (): boolean => {
    for (let w = 0; w < workers.length; w++) if (!dead[w] && load[w]! < p.maxPerWorker) return true;
    return false;
  };

  /** Fails every item still waiting. */
  const failWaiting = (error: WorkFailure): void => {
    for (const q of queues) for (const i of q.splice(0)) end(i, { worker: lastWorker(i), ok: false, error });
    waiting.forEach((w, i) => {
      if (!w) return;
      waiting[i] = false;
      end(i, { worker: undefined, ok: false, error });
    });
  };

  /** Capability: a waiting item with no live worker left (none being probed) fails; `spare` keeps one left for a probe. */
  const recheck = (i: number, spare: boolean): void => {
    if (!waiting[i]) return;
    const w = choose(i);
    if (typeof w === 'string') {
      waiting[i] = false;
      end(i, { worker: undefined, ok: false, error: w });
    } else if (w === undefined && spare && probing.size > 0) spared.push(i);
  };
  /** Capability: looks once at the waiting items of each worker seen dead (and, once no newcomer is probed, at those spared for one). */
  const settleFallen = (): void => {
    for (let w = fallen.pop(); w !== undefined; w = fallen.pop()) {
      const list = lists[w]!;
      for (let k = heads[w]!; k < list.length; k++) recheck(list[k]!, true);
    }
    if (probing.size === 0 && spared.length > 0) for (const i of spared.splice(0)) recheck(i, false);
  };
  /**
   * Capability: dispatches the waiting items in item order, each to the least loaded live worker
   * with room that can take it, until no live worker with room can take one. Each step looks at the
   * first waiting item of each worker with room: a worker's list is walked once in the whole run,
   * and a worker that can take only rare items, idle, is no reason to look at the others' again.
   */
  const takeWaiting = (): void => {
    for (;;) {
      settleFallen();
      let next: number | undefined;
      for (let w = 0; w < workers.length; w++) {
        if (load[w]! >= p.maxPerWorker) continue;
        const i = head(w);
        if (i !== undefined && (next === undefined || i < next) && live(w)) next = i;
      }
      if (next === undefined) {
        // a worker this look found dead (the candidate for its first waiting item) may leave items
        // with no live worker: they fail now, as nothing running may call the pump again
        if (fallen.length === 0) return;
        continue;
      }
      const w = choose(next);
      // a live worker with room can take it: choose finds one (a worker dead since was settled above)
      if (typeof w !== 'number') {
        recheck(next, true);
        if (waiting[next]) return;
        continue;
      }
      waiting[next] = false;
      dispatch(next, w);
    }
  };

  const pump = (): void => {
    // aborted, or the process the run is made from died: nothing new starts (nothing is sent from a dead process); what waits fails
    if (stopped()) {
      failWaiting('aborted');
      return;
    }
    grow();
    for (const q of queues) {
      for (let k = 0; k < q.length; ) {
        const i = q[k]!;
        const w = choose(i);
        if (typeof w === 'string') {
          q.splice(k, 1);
          end(i, { worker: lastWorker(i), ok: false, error: w });
        } else if (w === undefined) {
          // round robin: this worker's queue waits; least loaded: every worker is full; capability (the
          // retried items): try later ones while a worker has room
          if (p.strategy !== 'capability' || !roomLeft()) break;
          k++;
        } else {
          q.splice(k, 1);
          dispatch(i, w);
          if (p.strategy === 'capability' && !roomLeft()) break;
        }
      }
    }
    if (capable !== undefined) takeWaiting();
  };

  // aborted (or the caller dead) before the run or while the workers' status was asked: every item
  // fails with 'aborted' (the pump below), none with what the unanswered status calls would suggest
  const stoppedFirst = stopped();
  if (capable !== undefined && workers.length > 0 && !stoppedFirst) {
    // an item no worker can take fails at once, not when a full worker's completion lets the scan reach it
    capable.forEach((ws, i) => {
      if (ws.length > 0) return;
      waiting[i] = false;
      end(i, { worker: undefined, ok: false, error: 'no_capable_worker' });
    });
  }
  if (p.items.length === 0) finish();
  else if (workers.length === 0 && !stoppedFirst) failWaiting('no_live_worker'); // a query that selects nobody: every item fails at once, nothing is dispatched
  const onAbort = (): void => pump();
  p.signal?.addEventListener('abort', onAbort, { once: true });
  pump();
  await done;
  p.signal?.removeEventListener('abort', onAbort);
  p.signal?.removeEventListener('abort', abortStatus);
  statusAbort?.abort(); // withdraws the status calls still out
  if (watching !== undefined) node.telemetry.detach(watching);
  const completed = results.filter((r) => r.ok).length;
  node.telemetry.execute(
    'keel.coordination.work_distributed',
    { items: p.items.length, completed, failed: p.items.length - completed, reassigned, durationMs: node.timerNow() - started },
    { strategy: p.strategy, workers: workers.length },
  );
  return { results, completed, failed: p.items.length - completed, reassigned, perWorker };
}
