import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent, type AgentTask } from '../../../src/agents/Agent.js';
import { distributeWork } from '../../../src/agents/patterns/index.js';
import { GenServer, Supervisor, type From, type Node, type Pid } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deadPid, deferred, expectKeelError, HOUR, spawnWithContext, stepWallClock, thrown, useNodes, watch } from '../../support.js';

const track = useNodes();

/** A worker that answers `<label>:<payload>`, after `gate` (if any) opens. */
async function worker(node: Node, label: string, options: { capabilities?: string[]; gate?: Promise<void>; ran?: (task: AgentTask) => void } = {}): Promise<Pid> {
  const agent = await Agent.start(node, {
    capabilities: options.capabilities ?? [],
    runTask: async (task) => {
      options.ran?.(task);
      if (options.gate !== undefined) await options.gate;
      return `${label}:${String(task.payload)}`;
    },
  });
  return agent.pid; // the pid now: a restarted agent is another worker
}

describe('distributeWork', () => {
  it("round robin gives item i to workers[i % n], exactly, and reports every result in item order", async () => {
    const node = track();
    const workers = [await worker(node, 'a'), await worker(node, 'b'), await worker(node, 'c')];
    const events = captureEvents(node, ['keel.coordination.']);
    const r = await distributeWork(node, [0, 1, 2, 3, 4, 5, 6], { workers });
    expect(r.results.map((x) => x.worker)).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => workers[i % 3]));
    expect(r.results.map((x) => x.result)).toEqual(['a:0', 'b:1', 'c:2', 'a:3', 'b:4', 'c:5', 'a:6']);
    expect(r).toMatchObject({ completed: 7, failed: 0, reassigned: 0 });
    expect(r.perWorker.map((w) => [w.assigned, w.completed, w.failed])).toEqual([[3, 3, 0], [2, 2, 0], [2, 2, 0]]);
    expect(r.results[3]).toEqual({ item: 3, index: 3, worker: workers[0], ok: true, result: 'a:3', attempts: 1 });
    expect(events.events).toHaveLength(1);
    expect(events.events[0]).toMatchObject({ event: 'keel.coordination.work_distributed', measurements: { items: 7, completed: 7, failed: 0, reassigned: 0 }, metadata: { strategy: 'round_robin', workers: 3 } });
  });

  it('least loaded sends everything to the idle worker while the slow one is busy (load falls as tasks complete)', async () => {
    const node = track();
    const gate = deferred<void>();
    const fastDone = deferred<void>();
    let fastRuns = 0;
    const slow = await worker(node, 'slow', { gate: gate.promise });
    const fast = await worker(node, 'fast', { ran: () => ++fastRuns === 5 && fastDone.resolve() });
    const run = distributeWork(node, [0, 1, 2, 3, 4, 5], { workers: [slow, fast], strategy: 'least_loaded', maxPerWorker: 1 });
    const w = watch(run);
    await fastDone.promise;
    expect(w.status).toBe('pending'); // item 0 still runs on the slow worker
    gate.resolve();
    const r = await run;
    expect(r.results.map((x) => x.worker)).toEqual([slow, fast, fast, fast, fast, fast]);
    expect(r.perWorker.map((x) => x.completed)).toEqual([1, 5]);
  });

  it('least loaded fills workers evenly up to maxPerWorker (ties go to the earliest)', async () => {
    const node = track();
    const gate = deferred<void>();
    const workers = [await worker(node, 'a', { gate: gate.promise }), await worker(node, 'b', { gate: gate.promise })];
    const w = distributeWork(node, [0, 1, 2, 3, 4], { workers, strategy: 'least_loaded', maxPerWorker: 2 });
    gate.resolve();
    const r = await w;
    expect(r.results.slice(0, 4).map((x) => x.worker)).toEqual([workers[0], workers[1], workers[0], workers[1]]);
    expect(r.completed).toBe(5);
  });

  it('capability gives each item to the least loaded worker with every capability it requires', async () => {
    const node = track();
    const gate = deferred<void>();
    const resize = await worker(node, 'resize', { capabilities: ['resize'], gate: gate.promise });
    const ocr = await worker(node, 'ocr', { capabilities: ['ocr'], gate: gate.promise });
    const both = await worker(node, 'both', { capabilities: ['resize', 'ocr'], gate: gate.promise });
    const items = [{ requires: ['ocr'] }, { requires: ['resize'] }, { requires: ['resize', 'ocr'] }, { requires: [] }, { requires: ['ocr'] }];
    const w = distributeWork(node, items, { workers: [resize, ocr, both], strategy: 'capability' });
    gate.resolve();
    const r = await w;
    // ocr: ocr (0) before both (0); resize: resize; both: only both; none: least loaded, all at 1 → the first; ocr again: ocr (1) = both (1) → ocr
    expect(r.results.map((x) => x.worker)).toEqual([ocr, resize, both, resize, ocr]);
    expect(r.completed).toBe(5);
  });

  it("capability: an item no worker can take fails with 'no_capable_worker' at once, the others run", async () => {
    const node = track();
    const a = await worker(node, 'a', { capabilities: ['x'] });
    const r = await distributeWork(node, ['ok', 'impossible'], { workers: [a], strategy: 'capability', requires: (item) => (item === 'ok' ? ['x'] : ['y']) });
    expect(r.results).toEqual([
      { item: 'ok', index: 0, worker: a, ok: true, result: 'a:ok', attempts: 1 },
      { item: 'impossible', index: 1, worker: undefined, ok: false, error: 'no_capable_worker', attempts: 0 },
    ]);
    expect(r).toMatchObject({ completed: 1, failed: 1 });
  });

  it('capability: a flood of items is dispatched in time linear in the items: once every worker is full, the waiting items are not looked at again at each completion', async () => {
    const node = track();
    const workers = [await worker(node, 'a', { capabilities: ['x'] }), await worker(node, 'b', { capabilities: ['x'] })];
    const items = Array.from({ length: 400 }, (_, i) => i);
    // each look at a waiting item asks whether its workers are alive
    const alive = vi.spyOn(node, 'isAlive');
    try {
      const r = await distributeWork(node, items, { workers, strategy: 'capability', requires: () => ['x'], maxPerWorker: 1 });
      expect(r).toMatchObject({ completed: 400, failed: 0 });
      expect(r.perWorker.map((w) => w.assigned).reduce((x, y) => x + y)).toBe(400);
      // before: every completion looked at every waiting item again (some 160000 looks for 400 items)
      expect(alive.mock.calls.length).toBeLessThan(10 * items.length);
    } finally {
      alive.mockRestore();
    }
  });

  it('capability: an idle worker that can take only a rare item does not make every completion look through every waiting item again', async () => {
    const node = track();
    const x = await worker(node, 'x', { capabilities: ['x'] });
    const y = await worker(node, 'y', { capabilities: ['y'] });
    const items = Array.from({ length: 1000 }, (_, i) => i);
    // each look at a waiting item asks whether its workers are alive
    const alive = vi.spyOn(node, 'isAlive');
    try {
      const r = await distributeWork(node, items, { workers: [x, y], strategy: 'capability', requires: (i) => (i === 500 ? ['y'] : ['x']), maxPerWorker: 1 });
      expect(r).toMatchObject({ completed: 1000, failed: 0 });
      expect(r.perWorker.map((w) => w.assigned)).toEqual([999, 1]);
      expect(r.results.map((res) => res.result)).toEqual(items.map((i) => (i === 500 ? 'y:500' : `x:${i}`)));
      // before: y idle, so each of x's completions looked at every item still waiting (some 500000 looks)
      // now two per item: one to find it (its worker's first waiting item), one to choose its worker
      expect(alive.mock.calls.length).toBe(2 * items.length);
    } finally {
      alive.mockRestore();
    }
  });

  it("capability: the waiting items only a worker that died could take fail with 'no_live_worker', the others run, never a hang", async () => {
    const node = track();
    const started = deferred<void>();
    const doomed = await worker(node, 'doomed', { capabilities: ['x'], gate: new Promise(() => undefined), ran: () => started.resolve() });
    const other = await worker(node, 'other', { capabilities: ['y'] });
    const run = distributeWork(node, ['x0', 'x1', 'y2', 'x3', 'y4'], { workers: [doomed, other], strategy: 'capability', requires: (item) => [item[0]!], maxPerWorker: 1 });
    await started.promise;
    node.exit(doomed, 'kill');
    const r = await run;
    expect(r.results.map((x) => [x.worker, x.ok ? x.result : x.error, x.attempts])).toEqual([
      [doomed, 'process_down', 1],
      [undefined, 'no_live_worker', 0],
      [other, 'other:y2', 1],
      [undefined, 'no_live_worker', 0],
      [other, 'other:y4', 1],
    ]);
    expect(r.perWorker.map((x) => [x.assigned, x.completed, x.failed])).toEqual([[1, 0, 1], [2, 2, 0]]);
  });

  it("capability: an item whose only worker died after its status answered, with nothing running, fails with 'no_live_worker' at once, never a hang", async () => {
    const node = track();
    const x = await worker(node, 'x', { capabilities: ['x'] });
    // answers its status (it can take 'z' items), then stops: dead before the first dispatch
    const z = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, _from, state: null) => ({ stop: 'normal', reply: { capabilities: ['z'] }, state }),
    });
    const r = await distributeWork(node, ['z0'], { workers: [x, z], strategy: 'capability', requires: () => ['z'] });
    expect(node.isAlive(z)).toBe(false);
    expect(r.results).toEqual([{ item: 'z0', index: 0, worker: undefined, ok: false, error: 'no_live_worker', attempts: 0 }]);
    expect(r.perWorker.map((w) => w.assigned)).toEqual([0, 0]);
  }, 2000);

  it('least loaded: an item whose worker dies while running it goes to another live worker (at least once)', async () => {
    const node = track();
    const started = deferred<void>();
    const doomed = await worker(node, 'doomed', { gate: new Promise(() => undefined), ran: () => started.resolve() });
    const other = await worker(node, 'other');
    const w = distributeWork(node, ['job'], { workers: [doomed, other], strategy: 'least_loaded' });
    await started.promise;
    node.exit(doomed, 'kill');
    const r = await w;
    expect(r.results).toEqual([{ item: 'job', index: 0, worker: other, ok: true, result: 'other:job', attempts: 2 }]);
    expect(r.reassigned).toBe(1);
    expect(r.perWorker.map((x) => [x.assigned, x.completed, x.failed])).toEqual([[1, 0, 1], [1, 1, 0]]);
  });

  it("least loaded: with every worker dead the items fail with 'no_live_worker' without a call, never hang", async () => {
    const node = track();
    const r = await distributeWork(node, [1, 2, 3], { workers: [deadPid(node), deadPid(node)], strategy: 'least_loaded' });
    expect(r.results.map((x) => [x.ok, x.error, x.attempts])).toEqual([1, 2, 3].map(() => [false, 'no_live_worker', 0]));
    expect(r.perWorker.map((x) => x.assigned)).toEqual([0, 0]);
  });

  it("least loaded: an item whose only worker died while running it fails with that reason", async () => {
    const node = track();
    const started = deferred<void>();
    const doomed = await worker(node, 'doomed', { gate: new Promise(() => undefined), ran: () => started.resolve() });
    const w = distributeWork(node, ['job'], { workers: [doomed], strategy: 'least_loaded' });
    await started.promise;
    node.exit(doomed, 'kill');
    expect((await w).results).toEqual([{ item: 'job', index: 0, worker: doomed, ok: false, error: 'process_down', attempts: 1 }]);
  });

  it("round robin: a dead worker's items fail with 'noproc', the others' run", async () => {
    const node = track();
    const live = await worker(node, 'live');
    const r = await distributeWork(node, [0, 1, 2, 3], { workers: [live, deadPid(node)] });
    expect(r.results.map((x) => (x.ok ? x.result : x.error))).toEqual(['live:0', 'noproc', 'live:2', 'noproc']);
  });

  it("a task past the timeout fails with 'timeout' and is cancelled on its worker", async () => {
    const { node, clock } = clockedNode(track);
    const started = deferred<void>();
    const cancelled = deferred<void>();
    const agent = await Agent.start(node, {
      capabilities: [],
      runTask: (_task, _ctx, { signal }) => {
        started.resolve();
        signal.addEventListener('abort', () => cancelled.resolve());
        return new Promise(() => undefined);
      },
    });
    const w = watch(distributeWork(node, ['slow'], { workers: [agent.pid], timeout: 100 }));
    await started.promise;
    await clock.advance(100);
    await cancelled.promise;
    await node.idle();
    expect(w.value?.results).toEqual([{ item: 'slow', index: 0, worker: agent.pid, ok: false, error: 'timeout', attempts: 1 }]);
    expect((await agent.status()).load).toBe(0);
  });

  it('a worker given by name: a task past the timeout is cancelled on the process it ran on, not on one that took the name meanwhile', async () => {
    const { node, clock } = clockedNode(track);
    const started = deferred<void>();
    const cancel = deferred<void>();
    const cancelled = watch(cancel.promise);
    await Agent.start(node, {
      name: 'slow-worker',
      capabilities: [],
      runTask: (_task, _ctx, { signal }) => {
        started.resolve();
        signal.addEventListener('abort', () => cancel.resolve());
        return new Promise(() => undefined);
      },
    });
    const w = watch(distributeWork(node, ['slow'], { workers: ['slow-worker'], timeout: 100 }));
    await started.promise;
    node.registry.unregister('slow-worker');
    const seen: unknown[] = [];
    node.spawn(() => (m) => void seen.push(m), { name: 'slow-worker' });
    await clock.advance(100);
    await node.idle();
    expect(cancelled.status).toBe('resolved');
    expect(seen).toEqual([]);
    expect(w.value?.results).toEqual([{ item: 'slow', index: 0, worker: 'slow-worker', ok: false, error: 'timeout', attempts: 1 }]);
  });

  it('a task that fails on its worker reports the worker\'s error; no items resolves at once', async () => {
    const node = track();
    const agent = await Agent.start(node, { capabilities: [], runTask: () => Promise.reject(new Error('bad input')) });
    const r = await distributeWork(node, ['x'], { workers: [agent.pid], toTask: (item) => ({ id: `t-${item}`, kind: 'parse', payload: item }) });
    expect(r.results[0]).toMatchObject({ ok: false, attempts: 1 });
    expect((r.results[0]!.error as Error).message).toBe('bad input');
    expect(await distributeWork(node, [], { workers: [agent.pid] })).toEqual({ results: [], completed: 0, failed: 0, reassigned: 0, perWorker: [{ worker: agent.pid, assigned: 0, completed: 0, failed: 0 }] });
  });

  it("run from a process that dies, it ends with it: what has not ended fails with 'aborted', its live workers are not taken for dead, nothing is sent from the dead process", async () => {
    const node = track();
    const gate = deferred<void>();
    const [a, b] = [await worker(node, 'a', { gate: gate.promise }), await worker(node, 'b', { gate: gate.promise })];
    const { pid, ctx } = await spawnWithContext(node);
    const zombies = captureEvents(node, ['keel.process.zombie_call']);
    const run = watch(distributeWork(ctx, [0, 1, 2, 3, 4], { workers: [a, b], strategy: 'least_loaded', maxPerWorker: 1 }));
    await node.idle(); // items 0 and 1 run, the others wait
    node.exit(pid, 'kill');
    await node.idle();
    gate.resolve();
    await node.idle();
    expect(run.status).toBe('resolved');
    // before: 'process_down' for the running items (their live workers then taken for dead), 'no_live_worker' for the rest
    expect(run.value!.results.map((r) => [r.worker, r.error])).toEqual([[a, 'aborted'], [b, 'aborted'], [undefined, 'aborted'], [undefined, 'aborted'], [undefined, 'aborted']]);
    expect(run.value!).toMatchObject({ completed: 0, failed: 5, reassigned: 0 });
    expect(zombies.events).toEqual([]);
  });

  it("capability, run from a process that dies while a worker's status is unanswered: every item fails with 'aborted', not 'no_capable_worker'", async () => {
    const { node } = clockedNode(track);
    const asked = deferred<void>();
    const silent = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, _from: From<unknown>, state: null) => {
        asked.resolve();
        return { noreply: true as const, state };
      },
    });
    const { pid, ctx } = await spawnWithContext(node);
    const timers = node.internals().timers;
    const run = watch(distributeWork(ctx, [{ requires: [] }, { requires: ['x'] }], { workers: [silent], strategy: 'capability' }));
    await asked.promise;
    node.exit(pid, 'kill');
    await node.idle();
    expect(run.status).toBe('resolved');
    // before the fix: 'no_capable_worker' for both (the dead caller's status call read as no capabilities)
    expect(run.value!.results.map((r) => [r.worker, r.error, r.attempts])).toEqual([[undefined, 'aborted', 0], [undefined, 'aborted', 0]]);
    expect(node.internals().timers).toBe(timers);
  });

  it('an aborted signal fails the waiting items and cancels the running ones', async () => {
    const node = track();
    const started = deferred<void>();
    const agent = await Agent.start(node, {
      capabilities: [],
      runTask: (_task, _ctx, { signal }) => {
        started.resolve();
        return new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('cancelled'))));
      },
    });
    const abort = new AbortController();
    const w = distributeWork(node, [0, 1, 2], { workers: [agent.pid], maxPerWorker: 1, signal: abort.signal });
    await started.promise;
    abort.abort();
    const r = await w;
    expect(r.results.map((x) => [x.error, x.attempts])).toEqual([['aborted', 1], ['aborted', 0], ['aborted', 0]]);
    await node.idle();
    expect((await agent.status()).load).toBe(0);
  });

  it("capability: an abort while a worker's status is unanswered fails every item with 'aborted' (not 'no_capable_worker'), leaves no timer, and the late answer changes nothing", async () => {
    const { node } = clockedNode(track);
    // a worker that holds its status answer until the test gives it
    const held: From<unknown>[] = [];
    const asked = deferred<void>();
    const silent = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, from: From<unknown>, state: null) => {
        held.push(from);
        asked.resolve();
        return { noreply: true as const, state };
      },
    });
    const ran: string[] = [];
    const fast = await worker(node, 'fast', { capabilities: ['y'], ran: (t) => ran.push(t.id) });
    const timers = node.internals().timers;
    const abort = new AbortController();
    const items = [{ requires: ['x'] }, { requires: ['y'] }, { requires: [] }];
    const promise = distributeWork(node, items, { workers: [silent, fast], strategy: 'capability', signal: abort.signal });
    const run = watch(promise);
    await asked.promise;
    await node.idle(); // fast has answered; silent holds its answer
    expect(run.status).toBe('pending');
    expect(node.internals().timers).toBe(timers + 1); // the unanswered status call's timeout
    abort.abort();
    const r = await promise;
    // before the fix: [[undefined, 'no_capable_worker', 0], [undefined, 'aborted', 0], [undefined, 'aborted', 0]]: the unanswered status read as no capabilities
    expect(r.results.map((x) => [x.worker, x.error, x.attempts])).toEqual([[undefined, 'aborted', 0], [undefined, 'aborted', 0], [undefined, 'aborted', 0]]);
    expect(r).toMatchObject({ completed: 0, failed: 3, reassigned: 0 });
    expect(r.perWorker.map((w) => w.assigned)).toEqual([0, 0]);
    expect(node.internals().timers).toBe(timers);
    GenServer.reply(held[0]!, { capabilities: ['x', 'y'], load: 0 }); // after the abort: nobody waits for it
    await node.idle();
    expect(ran).toEqual([]);
    expect(r.results.map((x) => x.error)).toEqual(['aborted', 'aborted', 'aborted']);
  });

  it("capability: a signal aborted before the run fails every item with 'aborted', none with 'no_capable_worker', and asks nothing of the workers' tasks", async () => {
    const node = track();
    const ran: string[] = [];
    const a = await worker(node, 'a', { capabilities: ['x'], ran: (t) => ran.push(t.id) });
    const r = await distributeWork(node, [{ requires: ['x'] }, { requires: [] }, { requires: ['z'] }], { workers: [a], strategy: 'capability', signal: AbortSignal.abort() });
    // before the fix: every item 'no_capable_worker' (the aborted status call read as no capabilities)
    expect(r.results.map((x) => [x.worker, x.error, x.attempts])).toEqual([[undefined, 'aborted', 0], [undefined, 'aborted', 0], [undefined, 'aborted', 0]]);
    await node.idle();
    expect(ran).toEqual([]);
  });

  for (const strategy of ['round_robin', 'least_loaded', 'capability'] as const) {
    it(`${strategy}: an abort between dispatches fails the running item (cancelled on its worker) and the waiting ones with 'aborted'`, async () => {
      const node = track();
      const started = deferred<void>();
      const cancelled = deferred<void>();
      const ran: string[] = [];
      const agent = await Agent.start(node, {
        capabilities: ['x'],
        runTask: (task, _ctx, { signal }) => {
          ran.push(task.id);
          started.resolve();
          signal.addEventListener('abort', () => cancelled.resolve());
          return new Promise(() => undefined);
        },
      });
      const abort = new AbortController();
      const run = distributeWork(node, [{ requires: ['x'] }, { requires: ['x'] }, { requires: ['x'] }], { workers: [agent.pid], strategy, maxPerWorker: 1, signal: abort.signal, toTask: (item, i) => ({ id: `t${i}`, kind: 'work', payload: item }) });
      await started.promise;
      abort.abort();
      const r = await run;
      expect(r.results.map((x) => [x.worker, x.error, x.attempts])).toEqual([[agent.pid, 'aborted', 1], [undefined, 'aborted', 0], [undefined, 'aborted', 0]]);
      await cancelled.promise;
      await node.idle();
      expect(ran).toEqual(['t0']);
      expect((await agent.status()).load).toBe(0);
    });

    it(`${strategy}: an abort after the run has ended changes nothing`, async () => {
      const node = track();
      const ran: string[] = [];
      const a = await worker(node, 'a', { capabilities: ['x'], ran: (t) => ran.push(t.id) });
      const events = captureEvents(node, ['keel.coordination.work_distributed']);
      const abort = new AbortController();
      const r = await distributeWork(node, [{ requires: ['x'] }, { requires: ['x'] }], { workers: [a], strategy, signal: abort.signal, toTask: (item, i) => ({ id: `t${i}`, kind: 'work', payload: item }) });
      const before = r.results.map((x) => ({ ...x }));
      abort.abort();
      await node.idle();
      expect(r.results).toEqual(before);
      expect(r.results.map((x) => [x.ok, x.attempts])).toEqual([[true, 1], [true, 1]]);
      expect(r).toMatchObject({ completed: 2, failed: 0 });
      expect(ran).toEqual(['t0', 't1']);
      expect(events.events).toHaveLength(1);
    });
  }

  it('throws at once for bad arguments', async () => {
    const node = track();
    const a = await worker(node, 'a');
    const bad: [unknown, unknown, string][] = [
      ['x', { workers: [a] }, 'items'],
      [[], undefined, 'options'],
      [[], { workers: [] }, 'options.workers'],
      [[], { workers: [a, a] }, 'options.workers[1]'],
      [[], { workers: [a], strategy: 'random' }, 'options.strategy'],
      [[], { workers: [a], maxPerWorker: 0 }, 'options.maxPerWorker'],
      [[], { workers: [a], timeout: 'soon' }, 'options.timeout'],
      [[], { workers: [a], toTask: 1 }, 'options.toTask'],
      [[], { workers: [a], requires: 1 }, 'options.requires'],
      [[], { workers: [a], signal: {} }, 'options.signal'],
      [[1], { workers: [a], toTask: () => ({ id: '', kind: 'k' }) }, 'options.toTask(items[0])'],
      [[1, 2], { workers: [a], toTask: () => ({ id: 'same', kind: 'k', payload: 1 }) }, 'options.toTask(items[1]).id'],
      [[{ requires: 'x' }], { workers: [a], strategy: 'capability', requires: (i: { requires: unknown }) => i.requires }, 'requirements of items[0]'],
    ];
    for (const [items, options, argument] of bad) expectKeelError(thrown(() => distributeWork(node, items as never, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
  });

  it('capability: a worker whose status answer is malformed is not capable; the run still ends with every result', async () => {
    const node = track();
    const liar = await GenServer.start(node, { init: () => 0, handleCall: () => ({ reply: { load: 0 }, state: 0 }) });
    const good = await worker(node, 'good', { capabilities: ['x'] });
    const r = await distributeWork(node, [{ requires: ['x'] }, { requires: [] }], { workers: [liar, good], strategy: 'capability' });
    expect(r.results.map((x) => [x.ok, x.worker])).toEqual([[true, good], [true, good]]);
    expect(r.perWorker[0]).toEqual({ worker: liar, assigned: 0, completed: 0, failed: 0 });
  });

  it('capability: a status answer that cannot be read (a revoked proxy, a throwing getter, capabilities whose reads throw) is not capable; the run still ends', async () => {
    const node = track();
    const { proxy: revoked, revoke } = Proxy.revocable({}, {});
    revoke();
    const trapping = new Proxy(['x'], {
      get: (target, k, receiver): unknown => {
        if (k === 'includes' || k === '0') throw new Error('trap');
        return Reflect.get(target, k, receiver) as unknown;
      },
    });
    const answers: unknown[] = [revoked, { get capabilities(): never { throw new Error('getter'); } }, { capabilities: trapping }];
    const liars = await Promise.all(answers.map((answer) => GenServer.start(node, { init: () => 0, handleCall: () => ({ reply: answer, state: 0 }) })));
    const good = await worker(node, 'good', { capabilities: ['x'] });
    const r = await distributeWork(node, [{ requires: ['x'] }, { requires: [] }], { workers: [...liars, good], strategy: 'capability' });
    expect(r.results.map((x) => [x.ok, x.worker])).toEqual([[true, good], [true, good]]);
    expect(r.perWorker.map((w) => w.assigned)).toEqual([0, 0, 0, 2]);
  });

  it('least loaded: a worker given by name that died and was restarted under its name takes items again', async () => {
    const node = track();
    const gate = deferred<void>();
    const b = await worker(node, 'b', { gate: gate.promise });
    const first = deferred<void>();
    let incarnation = 0;
    const sup = await Supervisor.start(node, [{
      id: 'w1',
      start: async (ctx) => {
        const n = ++incarnation;
        const agent = await Agent.start(ctx, {
          name: 'w1',
          capabilities: [],
          runTask: (task) => {
            if (n > 1) return `w1:${String(task.payload)}`;
            first.resolve();
            return new Promise(() => {}); // the first incarnation dies holding its item
          },
        });
        return agent.pid;
      },
    }]);
    const run = distributeWork(node, [0, 1, 2, 3], { workers: ['w1', b], strategy: 'least_loaded', maxPerWorker: 1 });
    await first.promise;
    node.exit(node.registry.whereis('w1')!, 'kill');
    await node.idle(); // restarted, registered again under 'w1'
    expect(incarnation).toBe(2);
    gate.resolve();
    const r = await run;
    expect(r).toMatchObject({ completed: 4, failed: 0, reassigned: 1 });
    expect(r.results[0]).toMatchObject({ worker: b, ok: true, result: 'b:0', attempts: 2 });
    expect(r.results[2]).toMatchObject({ worker: 'w1', ok: true, result: 'w1:2', attempts: 1 });
    await GenServer.stop(node, sup, 'shutdown');
  });

  it("capability: an item's requirements that cannot be read are ERR_INVALID_ARGUMENT naming the item, and nothing runs", async () => {
    const node = track();
    const ran: AgentTask[] = [];
    const workers = [await worker(node, 'a', { ran: (t) => ran.push(t) })];
    const { proxy: revoked, revoke } = Proxy.revocable<string[]>([], {});
    revoke();
    const trapping = new Proxy(['x'], {
      get: (target, k, receiver): unknown => {
        if (k === '0') throw new Error('trap');
        return Reflect.get(target, k, receiver) as unknown;
      },
    });
    const cases: [unknown[], string][] = [
      [[{ requires: [] }, { get requires(): never { throw new Error('getter'); } }], '`requirements of items[1]`'],
      [[{ requires: revoked }], '`requirements of items[0]`'],
      [[{ requires: trapping }], '`requirements of items[0]`'],
    ];
    for (const [items, argument] of cases) expectKeelError(thrown(() => distributeWork(node, items, { workers, strategy: 'capability' })), 'ERR_INVALID_ARGUMENT', argument);
    await node.idle();
    expect(ran).toEqual([]);
  });

  it('a sparse items array runs a hole as the item undefined: one result per index, never a hang', async () => {
    const node = track();
    const workers = [await worker(node, 'a')];
    const items: unknown[] = [1];
    items[2] = 3; // items[1] is a hole
    const r = await distributeWork(node, items, { workers });
    expect(r.results.map((x) => [x.index, x.item, x.result])).toEqual([[0, 1, 'a:1'], [1, undefined, 'a:undefined'], [2, 3, 'a:3']]);
    expect(r).toMatchObject({ completed: 3, failed: 0 });
  });

  it('items or options that cannot be read, and an option it does not take, are ERR_INVALID_ARGUMENT naming them', async () => {
    const node = track();
    const workers = [await worker(node, 'a')];
    const { proxy, revoke } = Proxy.revocable<unknown[]>([], {});
    revoke();
    expectKeelError(thrown(() => distributeWork(node, proxy, { workers })), 'ERR_INVALID_ARGUMENT', '`items`');
    expectKeelError(thrown(() => distributeWork(node, [1], { workers, timout: 10 } as never)), 'ERR_INVALID_ARGUMENT', '`options.timout`');
    const getter = { workers, get timeout(): number { throw new Error('getter'); } };
    expectKeelError(thrown(() => distributeWork(node, [1], getter)), 'ERR_INVALID_ARGUMENT', '`options.timeout`');
  });
});

describe('distributeWork on the real clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("reports its durationMs as it lasted (the timers' time) when the wall clock was stepped back an hour meanwhile", async () => {
    const node = track();
    const gate = deferred();
    const ran = deferred();
    const events = captureEvents(node, ['keel.coordination.work_distributed']);
    const run = distributeWork(node, [0], { workers: [await worker(node, 'a', { gate: gate.promise, ran: () => ran.resolve() })] });
    await ran.promise;
    stepWallClock(-HOUR);
    gate.resolve();
    expect((await run).results).toHaveLength(1);
    // on the wall clock, an hour less than nothing
    expect(events.events[0]!.measurements.durationMs).toBeGreaterThanOrEqual(0);
  });
  it('a pid and the name registered to it are one worker listed twice: refused naming both, nothing run', async () => {
    const node = track();
    const ran: string[] = [];
    const name = 'dw-a';
    const a = (await Agent.start(node, { name, capabilities: [], runTask: (t) => ran.push(t.id) })).pid;
    const b = await worker(node, 'b', { ran: (t) => ran.push(t.id) });
    for (const strategy of ['round_robin', 'least_loaded', 'capability'] as const) {
      expectKeelError(thrown(() => distributeWork(node, [0, 1], { workers: [a, b, name], strategy })), 'ERR_INVALID_ARGUMENT', '`options.workers[2]`', '`options.workers[0]`', 'listed twice');
      expectKeelError(thrown(() => distributeWork(node, [0, 1], { workers: [name, a], strategy })), 'ERR_INVALID_ARGUMENT', '`options.workers[1]`', '`options.workers[0]`', 'listed twice');
    }
    await node.idle();
    expect(ran).toEqual([]);
  });

  it('reads each option once: getters answering a valid value, then an invalid one, are used as checked', async () => {
    const node = track();
    const a = await worker(node, 'a');
    const reads = { workers: 0, maxPerWorker: 0, timeout: 0 };
    const options = {
      get workers() {
        return reads.workers++ === 0 ? [a] : [a, a];
      },
      get maxPerWorker() {
        return reads.maxPerWorker++ === 0 ? 1 : 0;
      },
      get timeout() {
        return reads.timeout++ === 0 ? 1000 : -1;
      },
    };
    const r = await distributeWork(node, [0, 1], options as never);
    expect(reads).toEqual({ workers: 1, maxPerWorker: 1, timeout: 1 });
    expect(r.results.map((x) => [x.worker, x.result])).toEqual([[a, 'a:0'], [a, 'a:1']]);
    expect(r.perWorker.map((w) => [w.worker, w.assigned, w.completed])).toEqual([[a, 2, 2]]);
  });
});
