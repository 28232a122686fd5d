import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent, runTaskOn } from '../../../src/agents/Agent.js';
import { executeDistributed } from '../../../src/agents/patterns/index.js';
import type { Node, Pid } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deadPid, deferred, expectKeelError, HOUR, revokedProxy, spawnWithContext, stepWallClock, thrown, trappingProxy, useNodes, watch } from '../../support.js';

const track = useNodes();

/** An agent that answers `<label>:<payload>`; a payload 'fail' throws; a payload 'hang' waits until cancelled. */
async function agent(node: Node, label: string, cancelled?: (id: string) => void): Promise<Pid> {
  const a = await Agent.start(node, {
    capabilities: [],
    runTask: (task, _ctx, { signal }) => {
      if (task.payload === 'fail') throw new Error(`${label} failed`);
      if (task.payload === 'hang') return new Promise((_resolve, reject) => signal.addEventListener('abort', () => (cancelled?.(task.id), reject(new Error('cancelled')))));
      return `${label}:${String(task.payload)}`;
    },
  });
  return a.pid;
}

describe('executeDistributed', () => {
  it('runs each work as run_task on its agent: one outcome per assignment, in order, exact', async () => {
    const { node } = clockedNode(track);
    const a = await agent(node, 'a');
    const b = await agent(node, 'b');
    const gone = deadPid(node);
    const events = captureEvents(node, ['keel.coordination.executed']);
    const r = await executeDistributed<number | string>(node, [
      { agent: a, work: 1 },
      { agent: b, work: 2 },
      { agent: a, work: 'fail' },
      { agent: gone, work: 3 },
      { agent: 'nobody-here', work: 4 },
    ]);
    expect(r.results.map((x) => x.outcome)).toEqual(['ok', 'ok', 'error', 'noproc', 'noproc']);
    expect(r.results[0]).toEqual({ index: 0, agent: a, work: 1, outcome: 'ok', value: 'a:1', durationMs: 0 });
    expect(r.results[1]).toMatchObject({ outcome: 'ok', value: 'b:2' });
    expect((r.results[2] as { error: Error }).error.message).toBe('a failed');
    expect(r).toMatchObject({ ok: 2, timeout: 0, error: 1, noproc: 2 });
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toMatchObject({ assignments: 5, ok: 2, error: 1, noproc: 2, timeout: 0 });
  });

  it('an assignment past timeoutMs (node clock) is a timeout; the agent is told to cancel it; the others are unaffected', async () => {
    const { node, clock } = clockedNode(track);
    const cancelled: string[] = [];
    const a = await agent(node, 'a', (id) => cancelled.push(id));
    const run = executeDistributed(node, [{ agent: deadPid(node), work: 'x' }, { agent: a, work: 'hang' }, { agent: a, work: 'quick' }], undefined, { timeoutMs: 100 });
    const w = watch(run);
    await clock.advance(99);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    const r = await run;
    expect(r.results.map((x) => [x.outcome, x.durationMs])).toEqual([['noproc', 0], ['timeout', 100], ['ok', 0]]);
    await node.idle();
    expect(cancelled).toHaveLength(1);
    expect(cancelled[0]).toMatch(/^execute-\d+\.1$/); // named by its index
  });

  it('maxConcurrency is honoured: the peak is exactly the limit, and the rest wait their turn in order', async () => {
    const node = track();
    const a = await agent(node, 'a');
    const gates = Array.from({ length: 10 }, () => deferred<void>());
    let running = 0;
    let peak = 0;
    const started: number[] = [];
    const run = executeDistributed(
      node,
      gates.map((_g, i) => ({ agent: a, work: i })),
      async (_agent, work) => {
        started.push(work);
        peak = Math.max(peak, ++running);
        await gates[work]!.promise;
        running--;
        return work * 2;
      },
      { maxConcurrency: 3, timeoutMs: Infinity },
    );
    await node.idle();
    expect(started).toEqual([0, 1, 2]);
    gates[1]!.resolve();
    await gates[1]!.promise;
    await node.idle();
    expect(started).toEqual([0, 1, 2, 3]);
    for (const g of gates) g.resolve();
    const r = await run;
    expect(peak).toBe(3);
    expect(r.peakConcurrency).toBe(3);
    expect(r.results.map((x) => (x.outcome === 'ok' ? x.value : x.outcome))).toEqual([0, 2, 4, 6, 8, 10, 12, 14, 16, 18]);
  });

  it('a function that throws, rejects, or an agent killed mid-task: one outcome each, nothing raised', async () => {
    const node = track();
    const a = await agent(node, 'a');
    const hang = deferred<void>();
    const victim = await Agent.start(node, { capabilities: [], runTask: () => hang.promise });
    const r = executeDistributed(node, [{ agent: a, work: 1 }, { agent: a, work: 2 }, { agent: victim.pid, work: 3 }], (agent, work, { signal }) => {
      if (work === 1) throw new Error('sync');
      if (work === 2) return Promise.reject(new Error('async'));
      return runTaskOn(node, agent, { id: 'v', kind: 'k', payload: 0 }, { signal });
    });
    await node.idle();
    node.exit(victim.pid, 'kill');
    const result = await r;
    expect(result.results.map((x) => x.outcome)).toEqual(['error', 'error', 'error']);
    expect((result.results[0] as { error: Error }).error.message).toBe('sync');
    expect((result.results[1] as { error: Error }).error.message).toBe('async');
    expectKeelError((result.results[2] as { error: unknown }).error, 'ERR_CALL_EXIT');
  });

  it('aborting the run ends running and waiting assignments with ERR_ABORTED, even a function that ignores its signal', async () => {
    const node = track();
    const a = await agent(node, 'a');
    const abort = new AbortController();
    const never = deferred<number>();
    const run = executeDistributed(node, [0, 1, 2].map((work) => ({ agent: a, work })), () => never.promise, { maxConcurrency: 1, signal: abort.signal, timeoutMs: Infinity });
    await node.idle();
    abort.abort('enough');
    const r = await run;
    expect(r.results.map((x) => x.outcome)).toEqual(['error', 'error', 'error']);
    for (const x of r.results) expectKeelError((x as { error: unknown }).error, 'ERR_ABORTED');
    expect(r.peakConcurrency).toBe(1);
  });

  it('run from a process that dies, it starts nothing more: the assignments not started end as error with ERR_ABORTED, nothing is sent from the dead process', async () => {
    const node = track();
    const a = await agent(node, 'a');
    const { pid, ctx } = await spawnWithContext(node);
    const zombies = captureEvents(node, ['keel.process.zombie_call']);
    const run = watch(executeDistributed(ctx, [0, 1, 2, 3, 4].map(() => ({ agent: a, work: 'hang' })), undefined, { maxConcurrency: 2, timeoutMs: Infinity }));
    await node.idle(); // two run, three wait their turn
    node.exit(pid, 'kill');
    await node.idle();
    expect(run.status).toBe('resolved');
    const r = run.value!;
    expect(r.results.map((x) => x.outcome)).toEqual(['error', 'error', 'error', 'error', 'error']);
    // the running calls died with their caller; the others never started
    for (const x of r.results.slice(0, 2)) expectKeelError((x as { error: unknown }).error, 'ERR_CALL_EXIT');
    for (const x of r.results.slice(2)) expectKeelError((x as { error: unknown }).error, 'ERR_ABORTED');
    // before: each of the three was started from the dead process (ERR_PROCESS_EXITED, a zombie call each)
    expect(zombies.events).toEqual([]);
    expect(r.peakConcurrency).toBe(2);
  });

  it('a timeout past the 32-bit timer limit is kept, not fired at once', async () => {
    const { node, clock } = clockedNode(track);
    const a = await agent(node, 'a');
    const run = executeDistributed(node, [{ agent: a, work: 1 }], () => new Promise<never>(() => undefined), { timeoutMs: 3e9 });
    const w = watch(run);
    await clock.advance(2_147_483_647);
    expect(w.status).toBe('pending');
    await clock.advance(3e9 - 2_147_483_647);
    expect((await run).results.map((x) => [x.outcome, x.durationMs])).toEqual([['timeout', 3e9]]);
  });

  it('no assignments: an empty result at once', async () => {
    const node = track();
    expect(await executeDistributed(node, [])).toEqual({ results: [], ok: 0, timeout: 0, error: 0, noproc: 0, peakConcurrency: 0 });
  });

  it('aborting the run cancels the run_task calls still running on the agents (cancel_task), the waiting ones never start', async () => {
    const node = track();
    const cancelled: string[] = [];
    const a = await agent(node, 'a', (id) => cancelled.push(id));
    const events = captureEvents(node, ['keel.coordination.executed']);
    const abort = new AbortController();
    const run = executeDistributed(node, [{ agent: a, work: 'hang' }, { agent: a, work: 'hang' }, { agent: a, work: 'x' }], { maxConcurrency: 2, signal: abort.signal, timeoutMs: Infinity });
    await node.idle();
    abort.abort('enough');
    const r = await run;
    expect(r.results.map((x) => x.outcome)).toEqual(['error', 'error', 'error']);
    await node.idle();
    const runId = /^execute-\d+/.exec(cancelled[0] ?? '')?.[0];
    expect(cancelled.sort()).toEqual([`${runId}.0`, `${runId}.1`]);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toMatchObject({ assignments: 3, ok: 0, error: 3, peakConcurrency: 2 });
  });

  it('a sparse assignments array (a hole) throws at once, naming the hole, not a TypeError later', () => {
    const node = track();
    const pid = deadPid(node);
    const sparse: unknown[] = [];
    sparse[1] = { agent: pid, work: 1 };
    expectKeelError(thrown(() => executeDistributed(node, sparse as never)), 'ERR_INVALID_ARGUMENT', '`assignments[0]`');
  });

  it('assignments it cannot read (a revoked proxy, as the list or an item; an item whose agent getter throws) throw ERR_INVALID_ARGUMENT at once', () => {
    const node = track();
    const throwing = Object.defineProperty({ work: 1 }, 'agent', { enumerable: true, get: () => { throw new Error('no'); } });
    expectKeelError(thrown(() => executeDistributed(node, revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', '`assignments`');
    expectKeelError(thrown(() => executeDistributed(node, [revokedProxy()] as never)), 'ERR_INVALID_ARGUMENT', '`assignments[0]`');
    expectKeelError(thrown(() => executeDistributed(node, [throwing] as never)), 'ERR_INVALID_ARGUMENT', '`assignments[0]');
  });

  it('an assignment is read once, when checked: a getter that changes or throws later changes nothing, the run never rejects', async () => {
    const node = track();
    const a = await agent(node, 'a');
    let reads = 0;
    const tricky = {
      get agent(): unknown {
        if (++reads > 1) throw new Error('read twice');
        return a;
      },
      work: 5,
    };
    const r = await executeDistributed(node, [tricky as never], undefined, { timeoutMs: 1000 });
    expect(r.results.map((x) => [x.outcome, x.outcome === 'ok' ? x.value : undefined, x.agent])).toEqual([['ok', 'a:5', a]]);
    expect(reads).toBe(1);
  });

  it('throws at once for bad arguments', () => {
    const node = track();
    const pid = deadPid(node);
    const bad: [unknown, unknown, unknown, string][] = [
      ['x', undefined, undefined, '`assignments`'],
      [[null], undefined, undefined, '`assignments[0]`'],
      [[{ agent: 3, work: 1 }], undefined, undefined, '`assignments[0].agent`'],
      [[{ agent: pid, work: 1 }], 5, undefined, '`fn`'],
      [[{ agent: pid, work: 1 }], undefined, { timeoutMs: Number.NaN }, '`options.timeoutMs`'],
      [[{ agent: pid, work: 1 }], undefined, { timeoutMs: -1 }, '`options.timeoutMs`'],
      [[{ agent: pid, work: 1 }], undefined, { maxConcurrency: 0 }, '`options.maxConcurrency`'],
      [[{ agent: pid, work: 1 }], undefined, { maxConcurrency: 1.5 }, '`options.maxConcurrency`'],
      [[{ agent: pid, work: 1 }], undefined, { kind: 1 }, '`options.kind`'],
      [[{ agent: pid, work: 1 }], undefined, { signal: {} }, '`options.signal`'],
      [[{ agent: pid, work: 1 }], undefined, { timeout: 5 }, '`options.timeout`'],
    ];
    for (const [assignments, fn, options, argument] of bad) {
      expectKeelError(thrown(() => executeDistributed(node, assignments as never, fn as never, options as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
  });
});

describe('executeDistributed on the real clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("reports each assignment's durationMs and its own as they lasted (the timers' time) when the wall clock was stepped back an hour meanwhile", async () => {
    const node = track();
    const gate = deferred();
    const ran = deferred();
    const a = await Agent.start(node, {
      capabilities: [],
      runTask: async () => {
        ran.resolve();
        await gate.promise;
        return 'done';
      },
    });
    const events = captureEvents(node, ['keel.coordination.executed']);
    const run = executeDistributed<number, string>(node, [{ agent: a.pid, work: 1 }]);
    await ran.promise;
    stepWallClock(-HOUR);
    gate.resolve();
    const r = await run;
    // on the wall clock, each was an hour less than nothing
    expect(r.results[0]).toMatchObject({ outcome: 'ok', value: 'done' });
    expect(r.results[0]!.durationMs).toBeGreaterThanOrEqual(0);
    expect(events.events[0]!.measurements.durationMs).toBeGreaterThanOrEqual(0);
  });
  it('a fn that fails with something that cannot be inspected (a revoked proxy, a trapping proxy, a throwing code getter) ends as error with it: the run still ends', async () => {
    const node = track();
    const a = await agent(node, 'a');
    const hostile: unknown[] = [revokedProxy(), trappingProxy(), { get code(): never { throw new Error('getter'); } }];
    const r = await executeDistributed(node, hostile.map((work) => ({ agent: a, work })), (_agent, work) => Promise.reject(work), { timeoutMs: Infinity });
    expect(r.results.map((x) => x.outcome)).toEqual(['error', 'error', 'error']);
    expect(r.results.map((x) => (x as { error: unknown }).error === hostile[x.index])).toEqual([true, true, true]);
    expect(r).toMatchObject({ ok: 0, error: 3, timeout: 0, noproc: 0 });
  });
  it('reads each option once: getters answering a valid value, then an invalid one, are used as checked', async () => {
    const { node } = clockedNode(track);
    const reads = { timeoutMs: 0, maxConcurrency: 0, kind: 0, signal: 0 };
    const signal = new AbortController().signal;
    const options = {
      get timeoutMs() {
        return reads.timeoutMs++ === 0 ? 1000 : Number.NaN;
      },
      get maxConcurrency() {
        return reads.maxConcurrency++ === 0 ? 1 : 0;
      },
      get kind() {
        return reads.kind++ === 0 ? 'execute' : 42;
      },
      get signal() {
        return reads.signal++ === 0 ? signal : 'not a signal';
      },
    };
    const ran: number[] = [];
    const a = await agent(node, 'a');
    const r2 = await executeDistributed<number, number>(node, [{ agent: a, work: 1 }, { agent: a, work: 2 }], (_agent, work) => (ran.push(work), work * 2), options as never);
    expect(reads).toEqual({ timeoutMs: 1, maxConcurrency: 1, kind: 1, signal: 1 });
    expect(r2.results.map((x) => [x.outcome, x.outcome === 'ok' ? x.value : undefined])).toEqual([['ok', 2], ['ok', 4]]);
    expect(r2.peakConcurrency).toBe(1);
    expect(ran).toEqual([1, 2]);
  });
  it("an agent stopped by the node's shutdown while running its task is 'error' with ERR_CALL_EXIT, reason 'shutdown', as an agent killed meanwhile is", async () => {
    const node = track();
    const started = deferred<void>();
    const a = await Agent.start(node, { capabilities: [], runTask: () => (started.resolve(), new Promise<never>(() => undefined)) });
    const run = executeDistributed(node, [{ agent: a.pid, work: 1 }], { timeoutMs: Infinity });
    await started.promise;
    const stopped = node.shutdown();
    const r = await run;
    await stopped;
    expect(r.results.map((x) => x.outcome)).toEqual(['error']);
    const error = (r.results[0] as { error: unknown }).error;
    expectKeelError(error, 'ERR_CALL_EXIT', String(a.pid), 'shutdown');
    expect((error as { reason: unknown }).reason).toBe('shutdown');
    expect(r).toMatchObject({ ok: 0, timeout: 0, error: 1, noproc: 0 });
  });
});
