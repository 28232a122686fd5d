/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import { isExit, isKeelError, Pid, Task, TaskSupervisor, type Context, type Node } from '../../src/index.js';
import { probe, TestClock, type Probe } from '../../src/testing/index.js';
import { collect, deferred, expectKeelError, failure, handThenable, receiveDown, revokedProxy, spawnWithContext, thrown, trappingProxy, useNodes, type Deferred } from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** A promise's state, observable without awaiting it. */
function watch<T>(promise: Promise<T>): { readonly settled: boolean; readonly result: Promise<{ ok: true; value: T } | { ok: false; error: unknown }> } {
  let settled = false;
  const result = promise.then(
    (value) => {
      settled = true;
      return { ok: true as const, value };
    },
    (error: unknown) => {
      settled = true;
      return { ok: false as const, error };
    },
  );
  return {
    get settled() {
      return settled;
    },
    result,
  };
}

/** A round trip through the node's scheduler: everything runnable before it has had its turn. */
async function roundTrip(node: Node, p: Probe): Promise<void> {
  const marker = Symbol('round trip');
  node.send(p, marker);
  await p.receive((m) => m === marker);
}

/**
 * A task body over items 0..n-1 that counts how many run at once. Item i records its start,
 * waits for `release(i)`, and returns i * 10.
 */
function gatedWork(n: number) {
  const gates: Deferred<void>[] = Array.from({ length: n }, () => deferred());
  const started: Deferred<void>[] = Array.from({ length: n }, () => deferred());
  const startOrder: number[] = [];
  const counts = { active: 0, max: 0 };
  const fn = async (i: number): Promise<number> => {
    counts.active++;
    counts.max = Math.max(counts.max, counts.active);
    startOrder.push(i);
    started[i]!.resolve();
    await gates[i]!.promise;
    counts.active--;
    return i * 10;
  };
  return {
    fn,
    counts,
    startOrder,
    started: (i: number) => started[i]!.promise,
    release: (i: number) => gates[i]!.resolve(),
  };
}

// ---- Task.async -------------------------------------------------------------------------------

describe('Task.async', () => {
  it('runs fn in a new process linked to the caller and Task.await returns its value', async () => {
    const node = track();
    const p = probe(node);
    let taskSelf: Pid | undefined;
    const task = Task.async(p.ctx, async (ctx) => {
      taskSelf = ctx.self;
      await Promise.resolve();
      return { answer: 42 };
    });
    const ref = p.ctx.monitor(task.pid);
    expect(Pid.equals(task.pid, p)).toBe(false);
    expect(node.info(task.pid)?.links.some((l) => Pid.equals(l, p))).toBe(true);
    expect(await Task.await(task)).toEqual({ answer: 42 });
    expect(taskSelf !== undefined && Pid.equals(taskSelf, task.pid)).toBe(true);
    // the task exits normally once it has its result, and the result stays available
    expect((await receiveDown(p, ref)).reason).toBe('normal');
    expect(await Task.await(task, { timeout: 0 })).toEqual({ answer: 42 });
  });

  it('a crashing task kills a caller that does not trap exits, with the same reason', async () => {
    const node = track();
    const p = probe(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const ref = p.ctx.monitor(caller);
    const boom = new Error('task failed');
    const task = Task.async(ctx, () => {
      throw boom;
    });
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    const e = await failure(() => Task.await(task));
    expectKeelError(e, 'ERR_TASK_EXIT', 'task failed');
  });

  it('a caller that traps exits gets an Exit from the task and Task.await rejects with ERR_TASK_EXIT carrying the reason', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const boom = new Error('async task failed');
    const task = Task.async(p.ctx, async () => {
      await Promise.resolve();
      throw boom;
    });
    const exit = await p.receive((m) => isExit(m) && m.from !== 'node' && Pid.equals(m.from, task.pid));
    expect(isExit(exit) && exit.reason).toBe(boom);
    const e = await failure(() => Task.await(task));
    expectKeelError(e, 'ERR_TASK_EXIT');
    expect((e as { reason?: unknown }).reason).toBe(boom);
    expect(node.isAlive(p)).toBe(true);
  });

  it('a task whose caller dies dies with it', async () => {
    const node = track();
    const p = probe(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const never = deferred();
    const task = Task.async(ctx, () => never.promise);
    const ref = p.ctx.monitor(task.pid);
    const boom = new Error('caller failed');
    node.exit(caller, boom);
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect((await failure(() => Task.await(task))) as { reason?: unknown }).toMatchObject({ code: 'ERR_TASK_EXIT', reason: boom });
  });

  it('Task.await rejects with ERR_TASK_EXIT when the task is killed', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const never = deferred();
    const task = Task.async(p.ctx, () => never.promise);
    const awaited = watch(Task.await(task));
    node.exit(task.pid, 'kill');
    const r = await awaited.result;
    expect(!r.ok && isKeelError(r.error, 'ERR_TASK_EXIT') && (r.error as { reason?: unknown }).reason).toBe('killed');
  });

  it('throws ERR_PROCESS_EXITED from the context of a process that has exited', async () => {
    const node = track();
    const { ctx } = await spawnWithContext(node);
    ctx.exit('normal');
    const before = node.processes().length;
    expectKeelError(thrown(() => Task.async(ctx, () => 1)), 'ERR_PROCESS_EXITED');
    expect(node.processes().length).toBe(before);
  });
});

// ---- Task.await timeout -----------------------------------------------------------------------

describe('Task.await timeout', () => {
  it.each<[string, { timeout: number } | undefined, number]>([
    ['the timeout', { timeout: 1000 }, 1000],
    ['the default 5000 ms', undefined, 5000],
  ])('rejects with ERR_TASK_TIMEOUT once the TestClock reaches %s, and not before', async (_label, options, ms) => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const gate = deferred<string>();
    const task = Task.async(p.ctx, () => gate.promise);
    const awaited = watch(options === undefined ? Task.await(task) : Task.await(task, options));
    await clock.advance(ms - 1);
    expect(awaited.settled).toBe(false);
    await clock.advance(1);
    const r = await awaited.result;
    expect(r.ok).toBe(false);
    expectKeelError(!r.ok && r.error, 'ERR_TASK_TIMEOUT', String(ms));
    // the task keeps running: a later await still gets its value
    expect(node.isAlive(task.pid)).toBe(true);
    gate.resolve('late value');
    expect(await Task.await(task, { timeout: 1000 })).toBe('late value');
  });

  it('resolves before the timeout when the task finishes in time, and no timeout fires later', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const gate = deferred<number>();
    const task = Task.async(p.ctx, () => gate.promise);
    const awaited = watch(Task.await(task, { timeout: 1000 }));
    await clock.advance(500);
    gate.resolve(7);
    expect(await awaited.result).toEqual({ ok: true, value: 7 });
    await clock.advance(1000);
    expect(await awaited.result).toEqual({ ok: true, value: 7 });
  });
});

// ---- Task.asyncNolink -------------------------------------------------------------------------

describe('Task.asyncNolink', () => {
  it('a crash rejects Task.await with ERR_TASK_EXIT and leaves a trapping caller without an Exit', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const boom = new Error('nolink failed');
    const task = Task.asyncNolink(p.ctx, () => {
      throw boom;
    });
    expect(node.info(task.pid)?.links ?? []).toEqual([]);
    const e = await failure(() => Task.await(task));
    expectKeelError(e, 'ERR_TASK_EXIT', 'nolink failed');
    expect((e as { reason?: unknown }).reason).toBe(boom);
    await node.idle();
    expect(p.messages.filter(isExit)).toEqual([]);
    expect(node.isAlive(p)).toBe(true);
  });

  it('a crash leaves a caller that does not trap exits alive', async () => {
    const node = track();
    const { pid: caller, ctx } = await spawnWithContext(node);
    const task = Task.asyncNolink(ctx, async () => {
      await Promise.resolve();
      throw new Error('nolink async failure');
    });
    expectKeelError(await failure(() => Task.await(task)), 'ERR_TASK_EXIT');
    await node.idle();
    expect(node.isAlive(caller)).toBe(true);
  });

  it('runs from the node too and returns the value', async () => {
    const node = track();
    const task = Task.asyncNolink(node, () => 'from the node');
    expect(await Task.await(task)).toBe('from the node');
  });
});

// ---- Task.asyncStream -------------------------------------------------------------------------

describe('Task.asyncStream', () => {
  async function drive(node: Node, p: Probe, items: Iterable<number> | AsyncIterable<number>, n: number, concurrency: number) {
    const work = gatedWork(n);
    const results: number[] = [];
    const done = (async () => {
      for await (const v of Task.asyncStream(p.ctx, items, work.fn, { concurrency })) results.push(v);
    })();
    // the first `concurrency` items start, and no more
    for (let i = 0; i < concurrency; i++) await work.started(i);
    await roundTrip(node, p);
    await roundTrip(node, p);
    expect(work.startOrder).toEqual(Array.from({ length: concurrency }, (_, i) => i));
    // a later item finishing first is not yielded before the first item
    work.release(concurrency - 1);
    await roundTrip(node, p);
    expect(results).toEqual([]);
    work.release(0);
    for (let i = 1; i < concurrency - 1; i++) work.release(i);
    for (let i = concurrency; i < n; i++) {
      await work.started(i);
      await roundTrip(node, p);
      expect(work.counts.active).toBeLessThanOrEqual(concurrency);
      work.release(i);
    }
    await done;
    return { results, work };
  }

  it('over an array: yields in input order with at most `concurrency` tasks running at once', async () => {
    const node = track();
    const p = probe(node);
    const { results, work } = await drive(node, p, [0, 1, 2, 3, 4, 5, 6], 7, 3);
    expect(results).toEqual([0, 10, 20, 30, 40, 50, 60]);
    expect(work.counts.max).toBe(3);
    expect(work.counts.active).toBe(0);
  });

  it('over an async iterable: the same', async () => {
    const node = track();
    const p = probe(node);
    async function* source(): AsyncGenerator<number> {
      for (let i = 0; i < 6; i++) {
        await Promise.resolve();
        yield i;
      }
    }
    const { results, work } = await drive(node, p, source(), 6, 2);
    expect(results).toEqual([0, 10, 20, 30, 40, 50]);
    expect(work.counts.max).toBe(2);
  });

  it('runs the items in tasks linked to the caller', async () => {
    const node = track();
    const p = probe(node);
    const pids: Pid[] = [];
    const results: boolean[] = [];
    for await (const linked of Task.asyncStream(p.ctx, [1, 2, 3], (_item, ctx) => {
      pids.push(ctx.self);
      return node.info(ctx.self)?.links.some((l) => Pid.equals(l, p)) ?? false;
    })) {
      results.push(linked);
    }
    expect(results).toEqual([true, true, true]);
    expect(new Set(pids.map((x) => Pid.format(x))).size).toBe(3);
  });

  it('rejects the iteration with ERR_TASK_EXIT when an item crashes (the caller traps exits)', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const seen: number[] = [];
    const e = await failure(async () => {
      for await (const v of Task.asyncStream(p.ctx, [1, 2, 3], (i) => {
        if (i === 2) throw new Error('item 2 failed');
        return i;
      })) {
        seen.push(v);
      }
    });
    expectKeelError(e, 'ERR_TASK_EXIT', 'item 2 failed');
    expect(seen).toEqual([1]);
  });

  it('yields nothing for an empty input', async () => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    for await (const v of Task.asyncStream(p.ctx, [], (x) => x)) seen.push(v);
    expect(seen).toEqual([]);
  });

  it('stops a task whose await timed out, so that its later crash cannot reach the caller', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const hang = deferred<number>();
    const result = (async () => {
      for await (const v of Task.asyncStream(p.ctx, [1], () => hang.promise, { timeout: 100 })) return v;
      return undefined;
    })().catch((e: unknown) => e);
    await clock.advance(100);
    expect(isKeelError(await result, 'ERR_TASK_TIMEOUT')).toBe(true);
    await node.idle();
    expect(node.processes()).toEqual([p]);
    hang.reject(new Error('too late'));
    await node.idle();
    expect(node.isAlive(p)).toBe(true);
  });
});

// ---- bad input --------------------------------------------------------------------------------

describe('Task bad input', () => {
  it.each<[string, (node: Node, ctx: Context) => unknown, string]>([
    ['Task.async from a node', (node) => Task.async(node as never, () => 1), 'ctx'],
    ['Task.async with a non-function', (_node, ctx) => Task.async(ctx, 'run me' as never), 'fn'],
    ['Task.asyncNolink from neither a node nor a context', () => Task.asyncNolink({} as never, () => 1), 'from'],
    ['Task.asyncNolink with a non-function', (node) => Task.asyncNolink(node, 42 as never), 'fn'],
    ['Task.await of something that is not a task', (node) => Task.await({ pid: node.spawn(() => () => undefined) } as never), 'task'],
    ['Task.await with a negative timeout', (node) => Task.await(Task.asyncNolink(node, () => 1), { timeout: -1 }), 'timeout'],
    ['Task.await with a NaN timeout', (node) => Task.await(Task.asyncNolink(node, () => 1), { timeout: Number.NaN }), 'timeout'],
    ['Task.await with an option it does not know ({ timout })', (node) => Task.await(Task.asyncNolink(node, () => 1), { timout: 10 } as never), 'options.timout'],
    ['Task.await with null options', (node) => Task.await(Task.asyncNolink(node, () => 1), null as never), 'options'],
    ['Task.await with options whose timeout getter throws', (node) => Task.await(Task.asyncNolink(node, () => 1), Object.defineProperty({}, 'timeout', { enumerable: true, get: () => { throw new Error('getter'); } })), 'options.timeout'],
    ['Task.asyncStream from a node', (node) => Task.asyncStream(node as never, [1], (x) => x), 'ctx'],
    ['Task.asyncStream over a non-iterable', (_node, ctx) => Task.asyncStream(ctx, 42 as never, (x) => x), 'items'],
    ['Task.asyncStream over null', (_node, ctx) => Task.asyncStream(ctx, null as never, (x) => x), 'items'],
    ['Task.asyncStream with a non-function', (_node, ctx) => Task.asyncStream(ctx, [1], 'f' as never), 'fn'],
    ['Task.asyncStream with concurrency 0', (_node, ctx) => Task.asyncStream(ctx, [1], (x) => x, { concurrency: 0 }), 'options.concurrency'],
    ['Task.asyncStream with a fractional concurrency', (_node, ctx) => Task.asyncStream(ctx, [1], (x) => x, { concurrency: 1.5 }), 'options.concurrency'],
    ['Task.asyncStream with a negative timeout', (_node, ctx) => Task.asyncStream(ctx, [1], (x) => x, { timeout: -1 }), 'options.timeout'],
    ['Task.asyncStream over a revoked proxy', (_node, ctx) => Task.asyncStream(ctx, revokedProxy() as never, (x) => x), 'items'],
    ['Task.asyncStream over a throwing proxy', (_node, ctx) => Task.asyncStream(ctx, trappingProxy() as never, (x) => x), 'items'],
    ['Task.yieldMany of a revoked proxy', () => Task.yieldMany(revokedProxy() as never), 'tasks'],
    ['Task.yieldMany of an array whose element getter throws', () => Task.yieldMany(Object.defineProperty([], 0, { enumerable: true, get: () => { throw new Error('getter'); } }) as never), 'tasks'],
    ['Task.shutdown with a revoked proxy', (node) => Task.shutdown(Task.asyncNolink(node, () => 1), revokedProxy() as never), 'how'],
    ['Task.shutdown with a brutalKill getter that throws', (node) => Task.shutdown(Task.asyncNolink(node, () => 1), Object.defineProperty({}, 'brutalKill', { enumerable: true, get: () => { throw new Error('getter'); } }) as never), 'how'],
    ['Task.shutdown with a misspelt key beside brutalKill', (node) => Task.shutdown(Task.asyncNolink(node, () => 1), { brutalKill: true, timout: 5 } as never), 'how.timout'],
  ])('%s throws ERR_INVALID_ARGUMENT', async (_label, call, argument) => {
    const node = track();
    const p = probe(node);
    expectKeelError(await failure(() => call(node, p.ctx)), 'ERR_INVALID_ARGUMENT', argument);
  });
});

describe('Task.asyncStream stopped early', () => {
  it('stops the tasks still running when the consumer breaks out, and the caller lives on', async () => {
    const node = track();
    const p = probe(node);
    const never = deferred<number>();
    const seen: number[] = [];
    for await (const v of Task.asyncStream(p.ctx, [1, 2, 3, 4, 5], (i) => (i === 1 ? i : never.promise), { concurrency: 3 })) {
      seen.push(v);
      break;
    }
    expect(seen).toEqual([1]);
    await node.idle();
    expect(node.isAlive(p)).toBe(true);
    expect(node.processes()).toEqual([p]); // the two tasks still waiting were stopped
    expect(p.messages.filter(isExit)).toEqual([]);
  });
});

describe('Task.asyncStream stopped early, with a task that traps exits', () => {
  it("kills it, as Elixir's stream does: a 'shutdown' left it running, unlinked from its caller, for ever", async () => {
    const node = track();
    const p = probe(node);
    const trapping = deferred<Pid>();
    const never = deferred<number>();
    const work = async (i: number, tctx: Context<unknown>): Promise<number> => {
      if (i === 1) {
        await trapping.promise;
        return 1;
      }
      tctx.trapExits();
      trapping.resolve(tctx.self);
      return never.promise;
    };
    for await (const v of Task.asyncStream(p.ctx, [1, 2], work, { concurrency: 2 })) {
      expect(v).toBe(1);
      break;
    }
    const trapper = await trapping.promise;
    await roundTrip(node, p);
    // before: alive, its 'shutdown' a message in its mailbox
    expect(node.isAlive(trapper)).toBe(false);
    expect(p.messages.filter(isExit)).toEqual([]);
  });
});

// ---- asyncStream keeps `concurrency` tasks running --------------------------------------------

describe('Task.asyncStream with a slow item', () => {
  it('starts the next items while the first is still running, and emits in input order from its buffer', async () => {
    const node = track();
    const p = probe(node);
    const work = gatedWork(6);
    const out = collect(Task.asyncStream(p.ctx, [0, 1, 2, 3, 4, 5], work.fn, { concurrency: 2 }));
    await work.started(0);
    await work.started(1);
    // item 0 stays slow; each fast item that finishes frees its slot for the next one
    for (const i of [1, 2, 3, 4]) {
      work.release(i);
      await work.started(i + 1);
    }
    work.release(5);
    expect(work.startOrder).toEqual([0, 1, 2, 3, 4, 5]);
    expect(work.counts.max).toBe(2);
    expect(out.seen).toEqual([]); // ordered: what finished waits in the buffer for item 0
    work.release(0);
    expect(await out.done).toEqual([0, 10, 20, 30, 40, 50]);
  });

  it('ordered: false emits in completion order, without waiting for the slow item', async () => {
    const node = track();
    const p = probe(node);
    const work = gatedWork(4);
    const out = collect(Task.asyncStream(p.ctx, [0, 1, 2, 3], work.fn, { maxConcurrency: 2, ordered: false }));
    await work.started(1);
    work.release(1);
    await work.started(2);
    work.release(2);
    await work.started(3);
    work.release(3);
    await out.next(3);
    expect(out.seen).toEqual([10, 20, 30]);
    expect(work.counts.active).toBe(1); // item 0 still runs
    work.release(0);
    expect(await out.done).toEqual([10, 20, 30, 0]);
    expect(work.counts.max).toBe(2);
  });

  it('a huge concurrency starts every item at once', async () => {
    const node = track();
    const p = probe(node);
    const work = gatedWork(3);
    const out = collect(Task.asyncStream(p.ctx, [0, 1, 2], work.fn, { concurrency: Number.MAX_SAFE_INTEGER }));
    await Promise.all([work.started(0), work.started(1), work.started(2)]);
    expect(work.counts.active).toBe(3);
    for (const i of [2, 1, 0]) work.release(i);
    expect(await out.done).toEqual([0, 10, 20]);
  });

  it("onTimeout: 'kill_task' kills the task past its timeout and yields { ok: false, exit: 'timeout' } in its place", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const hang = deferred<number>();
    const out = collect(Task.asyncStream(p.ctx, [1, 2, 3], (i) => (i === 2 ? hang.promise : i * 10), { timeout: 100, onTimeout: 'kill_task' }));
    await out.next(1);
    expect(out.seen).toEqual([{ ok: true, value: 10 }]);
    await clock.advance(99);
    expect(out.seen).toHaveLength(1);
    await clock.advance(1);
    expect(await out.done).toEqual([{ ok: true, value: 10 }, { ok: false, exit: 'timeout' }, { ok: true, value: 30 }]);
    await node.idle();
    expect(node.isAlive(p)).toBe(true); // unlinked before the kill
    expect(node.processes()).toEqual([p]);
    expect(p.messages.filter(isExit)).toEqual([]);
  });

  it('the timeout counts from each task start: a later task gets its full time', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const gates = [deferred<number>(), deferred<number>()];
    const started1 = deferred();
    const run = (i: number): Promise<number> => {
      if (i === 1) started1.resolve();
      return gates[i]!.promise;
    };
    const out = collect(Task.asyncStream(p.ctx, [0, 1], run, { concurrency: 1, timeout: 100, onTimeout: 'kill_task' }));
    await clock.advance(60);
    gates[0]!.resolve(0);
    await started1.promise; // item 1 starts at 60
    await clock.advance(90); // 150: item 1 has run 90 ms
    expect(out.seen).toEqual([{ ok: true, value: 0 }]);
    gates[1]!.resolve(1);
    expect(await out.done).toEqual([
      { ok: true, value: 0 },
      { ok: true, value: 1 },
    ]);
  });
});

// ---- Task.yield, Task.yieldMany, Task.shutdown ------------------------------------------------

describe('Task.yield', () => {
  it('gives undefined while the task runs on; a later yield or await still gets the value', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const gate = deferred<string>();
    const task = Task.asyncNolink(node, () => gate.promise);
    const yielded = watch(Task.yield(task, 100));
    await clock.advance(99);
    expect(yielded.settled).toBe(false);
    await clock.advance(1);
    expect(await yielded.result).toEqual({ ok: true, value: undefined });
    expect(node.isAlive(task.pid)).toBe(true);
    gate.resolve('late');
    expect(await Task.yield(task, 0)).toEqual({ ok: true, value: 'late' });
    expect(await Task.await(task)).toBe('late');
  });

  it('gives { ok: false, exit: reason } for a task that crashed', async () => {
    const node = track();
    const boom = new Error('boom');
    const task = Task.asyncNolink(node, () => {
      throw boom;
    });
    expect(await Task.yield(task)).toEqual({ ok: false, exit: boom });
  });

  it.each([
    ['a non-task', () => Task.yield({ pid: 1 } as never), 'task'],
    ['a NaN timeout', (node: Node) => Task.yield(Task.asyncNolink(node, () => 1), Number.NaN), 'timeoutMs'],
    ['a negative timeout', (node: Node) => Task.yield(Task.asyncNolink(node, () => 1), -5), 'timeoutMs'],
  ])('refuses %s with ERR_INVALID_ARGUMENT', async (_label, call, argument) => {
    const node = track();
    expectKeelError(await failure(() => call(node)), 'ERR_INVALID_ARGUMENT', argument);
  });
});

describe('Task.yieldMany', () => {
  it("gives each task's result or undefined, in the order of the tasks", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const boom = new Error('crashed');
    const hang = deferred<number>();
    const tasks = [
      Task.asyncNolink(node, () => hang.promise),
      Task.asyncNolink(node, (): number => {
        throw boom;
      }),
      Task.asyncNolink(node, async () => 3),
    ];
    const results = watch(Task.yieldMany(tasks, 500));
    await clock.advance(499);
    expect(results.settled).toBe(false);
    await clock.advance(1);
    expect(await results.result).toEqual({ ok: true, value: [undefined, { ok: false, exit: boom }, { ok: true, value: 3 }] });
    hang.resolve(1);
    expect(await Task.yieldMany(tasks, 0)).toEqual([{ ok: true, value: 1 }, { ok: false, exit: boom }, { ok: true, value: 3 }]);
  });

  it("times out on the clock of a task still running: not on the first task's node, which may have stopped", async () => {
    const done = track({ clock: new TestClock() });
    const clock = new TestClock();
    const node = track({ clock });
    const finished = Task.asyncNolink(done, () => 1);
    await done.idle();
    await done.shutdown();
    const hang = deferred<number>();
    const running = Task.asyncNolink(node, () => hang.promise);
    const results = watch(Task.yieldMany([finished, running], 500));
    await clock.advance(500);
    // before: the timeout was set on the stopped node's clock, never fired, and yieldMany waited for the task for ever
    expect(results.settled).toBe(true);
    expect(await results.result).toEqual({ ok: true, value: [{ ok: true, value: 1 }, undefined] });
    hang.resolve(2);
  });

  it('returns as soon as every task has ended, before the timeout', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const tasks = [Task.asyncNolink(node, () => 'a'), Task.asyncNolink(node, async () => 'b')];
    expect(await Task.yieldMany(tasks, Infinity)).toEqual([{ ok: true, value: 'a' }, { ok: true, value: 'b' }]);
    expect(await Task.yieldMany([], 10)).toEqual([]);
  });

  it.each([
    ['a non-array', () => Task.yieldMany('tasks' as never), 'tasks'],
    ['a list with a non-task', (node: Node) => Task.yieldMany([Task.asyncNolink(node, () => 1), {} as never]), 'tasks[1]'],
    ['a NaN timeout', (node: Node) => Task.yieldMany([Task.asyncNolink(node, () => 1)], Number.NaN), 'timeoutMs'],
  ])('refuses %s with ERR_INVALID_ARGUMENT', async (_label, call, argument) => {
    const node = track();
    expectKeelError(await failure(() => call(node)), 'ERR_INVALID_ARGUMENT', argument);
  });
});


/** A task of `p`'s that traps exits (so a `'shutdown'` does not stop it) and never finishes, once it traps. */
async function trappingTask(p: Probe<unknown>): Promise<Task<number>> {
  const trapping = deferred();
  const task = Task.async(p.ctx, (ctx) => {
    ctx.trapExits();
    trapping.resolve();
    return deferred<number>().promise;
  });
  await trapping.promise;
  return task;
}
describe('Task.shutdown', () => {
  it('unlinks a running linked task and stops it: undefined, and no Exit reaches the trapping caller', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const task = Task.async(p.ctx, () => deferred<number>().promise);
    const ref = p.ctx.monitor(task.pid);
    expect(await Task.shutdown(task)).toBeUndefined();
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    await roundTrip(node, p);
    expect(p.messages.filter(isExit)).toEqual([]);
    expect(node.isAlive(p)).toBe(true);
  });

  it('gives the result of a task that finished, or the exit of one that crashed, before the shutdown', async () => {
    const node = track();
    const p = probe(node);
    const done = Task.asyncNolink(node, () => 7);
    const boom = new Error('before');
    const crashed = Task.asyncNolink(node, (): number => {
      throw boom;
    });
    await node.idle();
    expect(await Task.shutdown(done)).toEqual({ ok: true, value: 7 });
    expect(await Task.shutdown(crashed, { brutalKill: true })).toEqual({ ok: false, exit: boom });
    expect(node.isAlive(p)).toBe(true);
  });

  it('kills a task that ignores the shutdown (it traps exits) after the timeout, on the node clock', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const task = await trappingTask(p);
    const stopped = watch(Task.shutdown(task, 200));
    await clock.advance(199);
    expect(stopped.settled).toBe(false);
    expect(node.isAlive(task.pid)).toBe(true);
    await clock.advance(1);
    expect(await stopped.result).toEqual({ ok: true, value: undefined });
    expect(node.isAlive(task.pid)).toBe(false);
    expect(node.isAlive(p)).toBe(true);
  });

  it('brutalKill kills at once, even a task that traps exits', async () => {
    const node = track();
    const p = probe(node);
    const task = await trappingTask(p);
    expect(await Task.shutdown(task, { brutalKill: true })).toBeUndefined();
    expect(node.isAlive(task.pid)).toBe(false);
    expect(node.isAlive(p)).toBe(true);
  });

  it.each([
    ['a NaN timeout', Number.NaN],
    ['a string', 'soon'],
    ['brutalKill false', { brutalKill: false }],
  ])('refuses %s with ERR_INVALID_ARGUMENT and leaves the task running', async (_label, how) => {
    const node = track();
    const running = deferred();
    const task = Task.asyncNolink(node, () => {
      running.resolve();
      return deferred<number>().promise;
    });
    await running.promise;
    expectKeelError(await failure(() => Task.shutdown(task, how as never)), 'ERR_INVALID_ARGUMENT', 'how');
    expect(node.isAlive(task.pid)).toBe(true);
  });
});

describe('Task.asyncStream over a source whose return() throws', () => {
  it("rejects with the stream's own failure (ERR_TASK_TIMEOUT), not the source's error from closing it, as for-of keeps the body's", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const started = deferred();
    const never = deferred<number>();
    let n = 0;
    const source: Iterable<number> = {
      [Symbol.iterator]: () => ({
        next: () => ({ done: false, value: n++ }),
        return: () => {
          throw new Error('closing the source broke');
        },
      }),
    };
    const run = (async () => {
      for await (const v of Task.asyncStream(
        p.ctx,
        source,
        () => {
          started.resolve();
          return never.promise;
        },
        { concurrency: 1, timeout: 100 },
      )) {
        expect.unreachable(`nothing is emitted, got ${String(v)}`);
      }
    })();
    // handled before the advance that rejects it: a rejection left unhandled across the advance's
    // turns of the event loop is reported by Node (and Vitest) as unhandled
    const failed = expect(run).rejects.toMatchObject({ code: 'ERR_TASK_TIMEOUT' });
    await started.promise;
    await clock.advance(100);
    // before: the source's error from return() replaced the timeout
    await failed;
  });
});

describe('Task.asyncStream options', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['maxConcurrency 0', { maxConcurrency: 0 }, 'options.maxConcurrency'],
    ['concurrency Infinity', { concurrency: Infinity }, 'options.concurrency'],
    ['concurrency NaN', { concurrency: Number.NaN }, 'options.concurrency'],
    ['concurrency and maxConcurrency that differ', { concurrency: 2, maxConcurrency: 3 }, 'options.maxConcurrency'],
    ['a NaN timeout', { timeout: Number.NaN }, 'options.timeout'],
    ['ordered: "yes"', { ordered: 'yes' }, 'options.ordered'],
    ['onTimeout: "later"', { onTimeout: 'later' }, 'options.onTimeout'],
    ['an option it does not know ({ concurency })', { concurency: 2 }, 'options.concurency'],
  ])('refuses %s with ERR_INVALID_ARGUMENT', async (_label, options, argument) => {
    const node = track();
    const p = probe(node);
    expectKeelError(await failure(() => Task.asyncStream(p.ctx, [1], (x) => x, options as never)), 'ERR_INVALID_ARGUMENT', argument);
  });
});

describe('Task with a thenable result which is no Promise', () => {
  it('waits for a thenable whose then returns nothing, and Task.await gets its value', async () => {
    const node = track();
    const h = handThenable<number>();
    const task = Task.asyncNolink(node, () => h.thenable as Promise<number>);
    await h.asked;
    await roundTrip(node, probe(node)); // the task's init turn is over: it waits, it did not crash
    expect(node.isAlive(task.pid)).toBe(true);
    h.resolve(42);
    expect(await Task.await(task)).toBe(42);
  });

  it('a thenable that rejects ends the task with the rejection as its exit reason', async () => {
    const node = track();
    const h = handThenable<number>();
    const task = Task.asyncNolink(node, () => h.thenable as Promise<number>);
    await h.asked;
    const boom = new Error('thenable rejected');
    h.reject(boom);
    expect(await Task.yield(task, Infinity)).toEqual({ ok: false, exit: boom });
  });

  it('a supervised task waits for it too', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const h = handThenable<string>();
    const task = await TaskSupervisor.asyncNolink(node, sup, () => h.thenable as Promise<string>);
    await h.asked;
    h.resolve('late');
    expect(await Task.yield(task, Infinity)).toEqual({ ok: true, value: 'late' });
  });
});
