/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import { DynamicSupervisor, isExit, Pid, Supervisor, Task, TaskSupervisor, type Node } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { collect, deferred, expectKeelError, failure, receiveDown, revokedProxy, spawnWithContext, useNodes } from '../support.js';

const track = useNodes();

describe('TaskSupervisor.asyncNolink', () => {
  it('runs fn as a temporary child of the supervisor and Task.await gets its value', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const gate = deferred<number>();
    const task = await TaskSupervisor.asyncNolink(node, sup, () => gate.promise);
    expect(await TaskSupervisor.children(node, sup)).toEqual([task.pid]);
    expect((await DynamicSupervisor.whichChildren(node, sup))[0]?.restart).toBe('temporary');
    gate.resolve(42);
    expect(await Task.await(task)).toBe(42);
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it('a crash never reaches the caller, which survives and sees the reason', async () => {
    const node = track();
    const p = probe(node);
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node); // does not trap exits
    const boom = new Error('task crashed');
    const task = await TaskSupervisor.asyncNolink(ctx, sup, () => {
      throw boom;
    });
    expect(await Task.yield(task)).toEqual({ ok: false, exit: boom });
    expectKeelError(await failure(() => Task.await(task)), 'ERR_TASK_EXIT', 'task crashed');
    expect(node.isAlive(caller)).toBe(true);
    expect(node.isAlive(sup)).toBe(true); // temporary: not restarted, and the supervisor lives on
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
    expect(p.messages.filter(isExit)).toEqual([]);
  });

  it('refuses past maxChildren with ERR_MAX_CHILDREN, and accepts again once a task ended', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node, { maxChildren: 1 });
    const gate = deferred<string>();
    const first = await TaskSupervisor.asyncNolink(node, sup, () => gate.promise);
    expectKeelError(await failure(() => TaskSupervisor.asyncNolink(node, sup, () => 'second')), 'ERR_MAX_CHILDREN');
    gate.resolve('first');
    expect(await Task.await(first)).toBe('first');
    await node.idle(); // the supervisor has seen the task's exit
    expect(await Task.await(await TaskSupervisor.asyncNolink(node, sup, () => 'third'))).toBe('third');
  });
});

describe('TaskSupervisor.async', () => {
  it('links the task to the caller: its crash kills a caller that does not trap exits', async () => {
    const node = track();
    const p = probe(node);
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const ref = p.ctx.monitor(caller);
    const boom = new Error('linked crash');
    const gate = deferred<number>();
    const running = deferred<void>();
    const task = await TaskSupervisor.async(ctx, sup, () => {
      running.resolve();
      return gate.promise;
    });
    expect(node.info(task.pid)?.links.some((l) => Pid.equals(l, caller))).toBe(true);
    // the task may take its first turn after async resolves (a loaded machine ends the slice first):
    // rejected before the task holds it, the gate's promise would be an unhandled rejection
    await running.promise;
    gate.reject(boom);
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect(node.isAlive(sup)).toBe(true);
  });

  it('the link is there when async resolves, also when the task has not had its first turn yet (its time slice ended first)', async () => {
    // a time source that jumps at every reading ends each slice at its first reading: the processes
    // made runnable here hold the run queue, and the supervisor's answer comes before the task's turn
    let t = 0;
    const node = track({ scheduler: { now: () => (t += 1_000) } });
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const busy = Array.from({ length: 500 }, () => node.spawn<number>(() => () => undefined));
    for (const pid of busy) for (let i = 0; i < 4; i++) node.send(pid, i);
    const gate = deferred<number>();
    const task = await TaskSupervisor.async(ctx, sup, () => gate.promise);
    expect(node.info(task.pid)?.links.some((l) => Pid.equals(l, caller))).toBe(true);
    expect(node.info(caller)?.links.some((l) => Pid.equals(l, task.pid!))).toBe(true);
    gate.resolve(1);
    expect(await Task.await(task)).toBe(1);
  });

  it('a caller that dies takes its task with it', async () => {
    const node = track();
    const p = probe(node);
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const task = await TaskSupervisor.async(ctx, sup, () => deferred<number>().promise);
    const ref = p.ctx.monitor(task.pid);
    const boom = new Error('caller died');
    node.exit(caller, boom);
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect(await Task.yield(task, 0)).toEqual({ ok: false, exit: boom });
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it('Task.shutdown unlinks it first: the caller lives on', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const task = await TaskSupervisor.async(ctx, sup, () => deferred<number>().promise);
    expect(await Task.shutdown(task, { brutalKill: true })).toBeUndefined();
    expect(node.isAlive(caller)).toBe(true);
  });

  it('refuses a node as the caller', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    expectKeelError(await failure(() => TaskSupervisor.async(node as never, sup, () => 1)), 'ERR_INVALID_ARGUMENT', 'ctx');
  });
});

describe('TaskSupervisor.startChild', () => {
  it('fire and forget: runs fn, temporary by default (a crash is not restarted)', async () => {
    const node = track();
    const p = probe(node);
    const sup = await TaskSupervisor.start(node);
    let runs = 0;
    const pid = await TaskSupervisor.startChild(node, sup, () => {
      runs++;
      throw new Error('once');
    });
    const ref = p.ctx.monitor(pid);
    await receiveDown(p, ref);
    await node.idle();
    expect(runs).toBe(1);
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it("restart: 'transient' runs fn again after a crash, not after a clean end", async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const runs: number[] = [];
    const done = deferred();
    await TaskSupervisor.startChild(
      node,
      sup,
      async () => {
        runs.push(runs.length);
        if (runs.length < 3) throw new Error('again');
        done.resolve();
      },
      { restart: 'transient' },
    );
    await done.promise;
    await node.idle();
    expect(runs).toEqual([0, 1, 2]);
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it('terminateChild stops a task; an unknown pid is not_found', async () => {
    const node = track();
    const p = probe(node);
    const sup = await TaskSupervisor.start(node);
    const pid = await TaskSupervisor.startChild(node, sup, () => deferred().promise, { shutdown: 'brutal_kill' });
    const ref = p.ctx.monitor(pid);
    expect(await TaskSupervisor.terminateChild(node, sup, pid)).toBe('ok');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(await TaskSupervisor.terminateChild(node, sup, pid)).toEqual({ error: 'not_found' });
  });
});

describe('TaskSupervisor as a child of a Supervisor', () => {
  it('childSpec starts it under the Supervisor, and stopping that stops its tasks', async () => {
    const node = track();
    const p = probe(node);
    const top = await Supervisor.start(node, [TaskSupervisor.childSpec({ id: 'tasks', maxChildren: 2 })]);
    const [row] = await Supervisor.whichChildren(node, top);
    expect(row?.id).toBe('tasks');
    const sup = row!.pid as Pid;
    const task = await TaskSupervisor.asyncNolink(node, sup, () => deferred<number>().promise);
    const ref = p.ctx.monitor(task.pid);
    node.exit(top, 'shutdown');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(await Task.yield(task, 0)).toEqual({ ok: false, exit: 'shutdown' });
  });
});

describe('TaskSupervisor.asyncStreamNolink', () => {
  it('gives each item a result in input order; a crashing item is { ok: false, exit } and the caller lives on', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const boom = new Error('item 2');
    const results = await collect(
      TaskSupervisor.asyncStreamNolink(ctx, sup, [1, 2, 3], (i) => {
        if (i === 2) throw boom;
        return i * 10;
      }),
    ).done;
    expect(results).toEqual([{ ok: true, value: 10 }, { ok: false, exit: boom }, { ok: true, value: 30 }]);
    expect(node.isAlive(caller)).toBe(true);
  });

  it('ordered: false gives results as tasks finish, with concurrency tasks running', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const gates = [deferred<string>(), deferred<string>(), deferred<string>()];
    const started = [deferred(), deferred(), deferred()];
    const out = collect(
      TaskSupervisor.asyncStreamNolink(
        node,
        sup,
        [0, 1, 2],
        (i) => {
          started[i]!.resolve();
          return gates[i]!.promise;
        },
        { concurrency: 2, ordered: false },
      ),
    );
    await started[1]!.promise;
    expect(await TaskSupervisor.children(node, sup)).toHaveLength(2);
    gates[1]!.resolve('b');
    await started[2]!.promise; // item 1's slot went to item 2 while item 0 still runs
    gates[2]!.resolve('c');
    await out.next(2);
    gates[0]!.resolve('a');
    expect(await out.done).toEqual([
      { ok: true, value: 'b' },
      { ok: true, value: 'c' },
      { ok: true, value: 'a' },
    ]);
  });

  it("onTimeout: 'kill_task' kills a task past its timeout on the node clock and gives { ok: false, exit: 'timeout' }", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const sup = await TaskSupervisor.start(node);
    const hang = deferred<number>();
    const out = collect(TaskSupervisor.asyncStreamNolink(node, sup, [1, 2], (i) => (i === 1 ? hang.promise : 2), { timeout: 50, onTimeout: 'kill_task' }));
    await clock.advance(49);
    expect(out.seen).toEqual([]);
    await clock.advance(1);
    expect(await out.done).toEqual([{ ok: false, exit: 'timeout' }, { ok: true, value: 2 }]);
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it("onTimeout: 'exit' (the default) rejects the iteration with ERR_TASK_TIMEOUT and stops the tasks", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const sup = await TaskSupervisor.start(node);
    const out = collect(TaskSupervisor.asyncStreamNolink(node, sup, [1, 2], () => deferred<number>().promise, { timeout: 50 }));
    const failed = failure(() => out.done);
    await clock.advance(50);
    expectKeelError(await failed, 'ERR_TASK_TIMEOUT');
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });

  it("stops the running tasks when the calling process dies mid-iteration (as Elixir's stream monitor kills them): none outlives it", async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    const { pid: caller, ctx } = await spawnWithContext(node);
    const started = [deferred(), deferred()];
    const out = collect(
      TaskSupervisor.asyncStreamNolink(ctx, sup, [0, 1, 2], (i) => {
        (started[i] ??= deferred()).resolve();
        return deferred<number>().promise; // never settles
      }, { concurrency: 2, timeout: Infinity }),
    );
    await started[0]!.promise;
    await started[1]!.promise;
    const tasks = await TaskSupervisor.children(node, sup);
    expect(tasks).toHaveLength(2);
    const p = probe(node);
    const refs = tasks.map((t) => p.ctx.monitor(t));
    node.exit(caller, 'kill');
    for (const ref of refs) expect((await receiveDown(p, ref)).reason).toBe('killed');
    // the stream ends (its caller is gone) and item 2 never starts
    expectKeelError(await failure(() => out.done), 'ERR_PROCESS_EXITED', String(caller));
    await node.idle();
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
    expect(out.seen).toEqual([]);
    expect(started).toHaveLength(2);
  });

  it('a start refused past maxChildren rejects the iteration with ERR_MAX_CHILDREN', async () => {
    const node = track();
    const sup = await TaskSupervisor.start(node, { maxChildren: 1 });
    const e = await failure(() => collect(TaskSupervisor.asyncStreamNolink(node, sup, [1, 2], () => deferred<number>().promise, { concurrency: 2 })).done);
    expectKeelError(e, 'ERR_MAX_CHILDREN');
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });
});

describe('TaskSupervisor bad input', () => {
  it.each<[string, (node: Node, sup: Pid) => unknown, string]>([
    ['asyncNolink with a non-function', (node, sup) => TaskSupervisor.asyncNolink(node, sup, 'run' as never), 'fn'],
    ['asyncNolink with an unknown option', (node, sup) => TaskSupervisor.asyncNolink(node, sup, () => 1, { restart: 'permanent' } as never), 'options'],
    ['startChild with a non-function', (node, sup) => TaskSupervisor.startChild(node, sup, null as never), 'fn'],
    ['startChild with a bad restart', (node, sup) => TaskSupervisor.startChild(node, sup, () => 1, { restart: 'always' as never }), 'restart'],
    ['startChild with a NaN shutdown', (node, sup) => TaskSupervisor.startChild(node, sup, () => 1, { shutdown: Number.NaN }), 'shutdown'],
    ['asyncStreamNolink over a non-iterable', (node, sup) => TaskSupervisor.asyncStreamNolink(node, sup, 5 as never, (x) => x), 'items'],
    ['asyncStreamNolink with a NaN timeout', (node, sup) => TaskSupervisor.asyncStreamNolink(node, sup, [1], (x) => x, { timeout: Number.NaN }), 'options.timeout'],
    ['asyncStreamNolink with concurrency 0', (node, sup) => TaskSupervisor.asyncStreamNolink(node, sup, [1], (x) => x, { concurrency: 0 }), 'options.concurrency'],
    ['terminateChild with a non-pid', (node, sup) => TaskSupervisor.terminateChild(node, sup, 'pid' as never), 'pid'],
    ['start with an unknown option', (node) => TaskSupervisor.start(node, { maxTasks: 3 } as never), 'maxTasks'],
    ['start with maxChildren NaN', (node) => TaskSupervisor.start(node, { maxChildren: Number.NaN }), 'maxChildren'],
    ['childSpec with a revoked proxy', () => TaskSupervisor.childSpec(revokedProxy() as never), 'options'],
    ['childSpec with an id getter that throws', () => TaskSupervisor.childSpec(Object.defineProperty({}, 'id', { enumerable: true, get: () => { throw new Error('getter'); } }) as never), 'options'],
    ['asyncStreamNolink over a revoked proxy', (node, sup) => TaskSupervisor.asyncStreamNolink(node, sup, revokedProxy() as never, (x) => x), 'items'],
  ])('%s throws ERR_INVALID_ARGUMENT', async (_label, call, argument) => {
    const node = track();
    const sup = await TaskSupervisor.start(node);
    expectKeelError(await failure(() => call(node, sup)), 'ERR_INVALID_ARGUMENT', argument);
    expect(await TaskSupervisor.children(node, sup)).toEqual([]);
  });
});
