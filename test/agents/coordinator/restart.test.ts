// The coordinator across restarts in its node: killed, restarted by its supervisor under the same
// name, it resumes every active workflow from its table (componentState): completed tasks stay
// completed, running ones run again (at least once, same task id) on their worker or another, and
// its timers are re-armed from their kept deadlines. Across a new OS process (a store), retry
// budgets, pauses and running compensations are kept; a storm of kills loses no count.
import { describe, expect, it } from 'vitest';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { Agent, CoordinatorAgent, GenServer, Pid, type AgentTask, type Node } from '../../../src/index.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { clockedNode, deferred, exitAndWait, useNodes, watch } from '../../support.js';

const track = useNodes();
const key = (pid: Pid): string => Pid.format(pid);

const DOC = {
  id: 'doc',
  tasks: [
    { id: 'fetch', kind: 'fetch', payload: 'hello big world' },
    { id: 'parse', kind: 'parse', dependsOn: ['fetch'] },
    { id: 'index', kind: 'index', dependsOn: ['parse'] },
  ],
};

/** Agents for fetch → parse → index counting each run by task id; parse waits for `gate`. */
async function pool(node: Node) {
  const runs: string[] = [];
  const gate = deferred<void>();
  const fetcher = await Agent.start(node, { capabilities: [], tasks: { fetch: (t) => (runs.push(`fetch:${t.id}`), `<p>${String(t.payload)}</p>`) } });
  const parser = await Agent.start(node, {
    capabilities: [],
    tasks: {
      parse: async (t: AgentTask) => {
        runs.push(`parse:${t.id}`);
        await gate.promise;
        return String(t.inputs.fetch).replace(/<\/?p>/g, '');
      },
      index: (t) => (runs.push(`index:${t.id}`), String(t.inputs.parse).split(' ').length),
    },
  });
  return { runs, gate, fetcher, parser };
}

describe('CoordinatorAgent restarted in its node', () => {
  it('resumes a workflow mid-run: fetch stays completed, parse still running on its worker is waited for (duplicate_task) and re-run there, index follows; each result recorded once', async () => {
    const { node, clock } = clockedNode(track);
    const { runs, gate, fetcher, parser } = await pool(node);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [fetcher.pid, parser.pid] });
    const first = coordinator.pid;
    const blocked = watch(coordinator.run(DOC));
    await node.idle();
    expect(runs).toEqual(['fetch:doc/fetch', 'parse:doc/parse']);
    const events = captureEvents(node, ['keel.coordinator.']);
    await exitAndWait(node, first);
    // restarted by keel.agents under its name, with the workflow resumed from its table
    const second = node.registry.whereis('flow')!;
    expect(key(second)).not.toBe(key(first));
    expect(events.events.filter((e) => e.event === 'keel.coordinator.resumed')).toEqual([
      { event: 'keel.coordinator.resumed', measurements: { workflows: 1, rerun: 1, dropped: 0 }, metadata: { coordinator: second, from: 'table' } },
    ]);
    // the caller blocked in run() across the crash: its call failed with the server
    expect(blocked.status).toBe('rejected');
    expect((blocked.error as { code?: string }).code).toBe('ERR_CALL_EXIT');
    // the parser still runs the first parse: the re-run is refused (duplicate_task) and offered again later, not elsewhere
    expect(runs).toEqual(['fetch:doc/fetch', 'parse:doc/parse']);
    expect(await coordinator.status('doc')).toMatchObject({ state: 'running', tasks: { total: 3, completed: 1, running: 0, waiting: 2, failed: 0 } });
    gate.resolve(); // the first parse ends: its answer goes to the dead coordinator
    await node.idle();
    await clock.advance(50); // the refused offer is made again: the parser runs parse again (at least once)
    await node.idle();
    const result = await coordinator.wait('doc');
    expect(result).toMatchObject({
      status: 'completed',
      results: { fetch: '<p>hello big world</p>', parse: 'hello big world', index: 3 },
      tasks: { fetch: { state: 'completed', attempts: 1 }, parse: { state: 'completed', attempts: 2 }, index: { state: 'completed', attempts: 1 } },
    });
    expect(key((result as { tasks: Record<string, { worker: Pid }> }).tasks.parse!.worker)).toBe(key(parser.pid));
    expect(runs).toEqual(['fetch:doc/fetch', 'parse:doc/parse', 'parse:doc/parse', 'index:doc/index']);
    // each task's result recorded once
    const m = await coordinator.metrics();
    expect(m.tasks).toMatchObject({ completed: 3, failed: 0, running: 0, queued: 0 });
    expect(m.workflows).toMatchObject({ active: 0, completed: 1 });
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_finished')).toHaveLength(1);
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(fetcher.pid), key(parser.pid)]);
  });

  it('a task whose worker died with the coordinator goes to another worker of its kind; the dead one leaves the pool', async () => {
    const { node } = clockedNode(track);
    const { runs, fetcher, parser } = await pool(node);
    const spare = await Agent.start(node, { capabilities: [], tasks: { parse: (t) => (runs.push(`spare:${t.id}`), 'spare') } });
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [fetcher.pid, parser.pid, spare.pid] });
    void coordinator.submit({ id: 'doc', tasks: DOC.tasks.slice(0, 2) });
    await node.idle();
    expect(runs).toEqual(['fetch:doc/fetch', 'parse:doc/parse']);
    const events = captureEvents(node, ['keel.coordinator.']);
    const dead = parser.pid; // (its supervisor restarts it under a new pid, which is not in the pool)
    node.exit(dead, 'kill'); // dies in the same turn: its Down reaches the killed coordinator, never handled
    await exitAndWait(node, coordinator.pid);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.worker_left').map((e) => [key(e.metadata.worker as Pid), e.metadata.reason])).toEqual([[key(dead), 'down']]);
    const result = await coordinator.wait('doc');
    expect(result).toMatchObject({ status: 'completed', results: { parse: 'spare' }, tasks: { parse: { attempts: 2 } } });
    expect(key((result as { tasks: Record<string, { worker: Pid }> }).tasks.parse!.worker)).toBe(key(spare.pid));
    expect(runs).toEqual(['fetch:doc/fetch', 'parse:doc/parse', 'spare:doc/parse']);
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(fetcher.pid), key(spare.pid)]);
  });

  it('re-arms the workflow timeout and a retry backoff from their kept deadlines on the node clock', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    let calls = 0;
    const flaky = await Agent.start(node, {
      capabilities: [],
      tasks: {
        flaky: () => {
          if (++calls === 1) throw new Error('once');
          return 'ok';
        },
        hang: () => new Promise(() => undefined),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [flaky.pid], maxTasksPerWorker: 2, taskTimeoutMs: 60_000 });
    await coordinator.submit({ id: 'retry', tasks: [{ id: 'f', kind: 'flaky', retry: { maxAttempts: 2, backoff: { initialMs: 100, jitter: 'none' } } }] });
    await coordinator.submit({ id: 'slow', timeoutMs: 1000, tasks: [{ id: 'h', kind: 'hang' }] });
    await node.idle();
    expect(calls).toBe(1); // f failed once: it waits out its 100 ms backoff
    await clock.advance(40);
    await exitAndWait(node, coordinator.pid);
    await clock.advance(59);
    await node.idle();
    expect(calls).toBe(1);
    await clock.advance(1);
    await node.idle();
    expect(calls).toBe(2);
    expect(await coordinator.wait('retry')).toMatchObject({ status: 'completed', results: { f: 'ok' } });
    expect(await coordinator.status('slow')).toMatchObject({ state: 'running' });
    await clock.advance(899);
    await node.idle();
    expect(await coordinator.status('slow')).toMatchObject({ state: 'running' });
    await clock.advance(1);
    await node.idle();
    expect(await coordinator.wait('slow')).toMatchObject({ status: 'failed', error: 'timeout' });
  });

  it('a normal stop ends it for good: its table is released and a coordinator started again under the name starts empty', async () => {
    const { node } = clockedNode(track);
    const { fetcher } = await pool(node);
    const parent = probe(node);
    parent.ctx.trapExits(true); // linked to the probe: no supervisor restarts it
    const first = await CoordinatorAgent.start(parent.ctx, { name: 'flow', workers: [fetcher.pid] });
    expect(await first.run({ id: 'one', tasks: [{ id: 'f', kind: 'fetch' }] })).toMatchObject({ status: 'completed' });
    expect(componentStates(node)).toContain('flow');
    await GenServer.stop(node, first.pid, 'normal');
    expect(componentStates(node)).not.toContain('flow');
    const again = await CoordinatorAgent.start(node, { name: 'flow', workers: [fetcher.pid] });
    expect(await again.wait('one')).toEqual({ error: 'not_found' });
    expect((await again.metrics()).workflows.completed).toBe(0);
  });
});

describe('CoordinatorAgent restarted in its node: paused and compensating workflows', () => {
  it('a paused workflow stays paused; a compensation that was running runs again; a cancel reaches the first run of a re-run task still going on', async () => {
    const { node, clock } = clockedNode(track);
    const undone: string[] = [];
    const aborted: string[] = [];
    const hold = deferred<void>();
    const w = await Agent.start(node, {
      capabilities: [],
      maxConcurrentTasks: 4,
      tasks: {
        ok: () => 'ok',
        fail: () => {
          throw new Error('no');
        },
        undo: async (t) => {
          undone.push(t.id);
          if (undone.length === 1) await hold.promise;
          return 'undone';
        },
        hang: (_t, _ctx, { signal }) => new Promise((_r, reject) => signal.addEventListener('abort', () => (aborted.push(_t.id), reject(new Error('aborted'))), { once: true })),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [w.pid], maxTasksPerWorker: 4 });
    await coordinator.submit({ id: 'saga', tasks: [{ id: 'a', kind: 'ok', compensate: { kind: 'undo' } }, { id: 'b', kind: 'fail', dependsOn: ['a'] }] });
    await coordinator.submit({ id: 'held', tasks: [{ id: 'x', kind: 'ok' }, { id: 'y', kind: 'ok', dependsOn: ['x'] }] });
    await coordinator.submit({ id: 'long', tasks: [{ id: 'h', kind: 'hang' }] });
    await node.idle();
    expect(await coordinator.wait('held')).toMatchObject({ status: 'completed' });
    await coordinator.submit({ id: 'paused', tasks: [{ id: 'p', kind: 'hang' }, { id: 'q', kind: 'ok', dependsOn: ['p'] }] });
    await coordinator.pause('paused');
    await node.idle();
    expect(undone).toEqual(['saga/a/compensate']);
    await exitAndWait(node, coordinator.pid);
    expect(await coordinator.status('saga')).toMatchObject({ state: 'compensating' });
    expect(await coordinator.status('paused')).toMatchObject({ state: 'paused' });
    // the compensation still runs on w: its re-run is refused (duplicate_task) until that run ends
    hold.resolve();
    await node.idle();
    await clock.advance(50);
    await node.idle();
    expect(undone).toEqual(['saga/a/compensate', 'saga/a/compensate']);
    expect(await coordinator.wait('saga')).toMatchObject({ status: 'failed', failedTask: 'b', compensations: [{ task: 'a', ok: true, result: 'undone' }] });
    // 'long' is refused while its first run goes on; cancelling it stops that run
    const cancelled = await coordinator.cancel('long');
    expect(cancelled).toMatchObject({ cancelled: true, notified: [{ taskId: 'long/h', outcome: { ok: true } }] });
    await node.idle();
    expect(aborted).toEqual(['long/h']);
    expect(await coordinator.wait('long')).toMatchObject({ status: 'cancelled' });
    // the paused workflow's task ran when it paused: queued for its re-run, its first run is told to stop too
    expect(await coordinator.cancel('paused')).toMatchObject({ cancelled: true, notified: [{ taskId: 'paused/p', outcome: { ok: true } }] });
    await node.idle();
    expect(aborted).toEqual(['long/h', 'paused/p']);
  });
});

describe('CoordinatorAgent restarted: retries, pauses and compensations across a new OS process, and restart storms', () => {
  it('the retry budget survives a new OS process: errors before the crash count against maxAttempts', async () => {
    const store = new MemoryAgentStore();
    let runs = 0;
    const failing = { k: () => (runs++, Promise.reject(new Error('flaky'))) };
    const { node: first, clock } = clockedNode(track);
    const w1 = await Agent.start(first, { capabilities: [], tasks: failing });
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', store, workers: [w1.pid] });
    await c1.submit({ id: 'w', tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 3, backoff: { initialMs: 10, maxMs: 10, jitter: 'none' } } }] });
    await first.idle();
    await clock.advance(10);
    await first.idle();
    expect(runs).toBe(2); // two errors of three
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const w2 = await Agent.start(second, { capabilities: [], tasks: failing });
    const c2 = await CoordinatorAgent.start(second, { name: 'flow', store, workers: [w2.pid] });
    const r = await c2.wait('w');
    expect(r).toMatchObject({ status: 'failed', failedTask: 't' });
    expect(runs).toBe(3);
  });

  it('a workflow paused when its OS process died resumes paused from the store (pause and resume are written)', async () => {
    const store = new MemoryAgentStore();
    const runs: string[] = [];
    const tasks = { k: (t: { id: string }) => (runs.push(t.id), 'done') };
    const { node: first } = clockedNode(track);
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', store, waitForWorkersMs: Infinity });
    await c1.submit({ id: 'p', tasks: [{ id: 't', kind: 'k' }] }); // no worker yet: it waits
    expect(await c1.pause('p')).toBe('ok');
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const w = await Agent.start(second, { capabilities: [], tasks });
    const c2 = await CoordinatorAgent.start(second, { name: 'flow', store, workers: [w.pid] });
    await second.idle();
    expect(await c2.status('p')).toMatchObject({ state: 'paused' });
    expect(runs).toEqual([]);
    await second.shutdown({ timeoutMs: 1000 });

    const { node: resumed } = clockedNode(track);
    const c3 = await CoordinatorAgent.start(resumed, { name: 'flow', store, waitForWorkersMs: Infinity });
    expect(await c3.resume('p')).toBe('ok'); // no worker in this process: it waits, running
    await resumed.shutdown({ timeoutMs: 1000 });

    const { node: third } = clockedNode(track);
    const w3 = await Agent.start(third, { capabilities: [], tasks });
    const c4 = await CoordinatorAgent.start(third, { name: 'flow', store, workers: [w3.pid] });
    expect(await c4.wait('p')).toMatchObject({ status: 'completed', results: { t: 'done' } });
    expect(runs).toEqual(['p/t']);
  });

  it('a compensation running when the OS process died is counted as a re-run, its attempts kept', async () => {
    const store = new MemoryAgentStore();
    const started = deferred<void>();
    const { node: first } = clockedNode(track);
    const w1 = await Agent.start(first, {
      capabilities: [],
      tasks: { book: () => 'booked', pay: () => Promise.reject(new Error('declined')), unbook: () => (started.resolve(), new Promise(() => undefined)) },
    });
    const c1 = await CoordinatorAgent.start(first, { name: 'trip', store, workers: [w1.pid] });
    await c1.submit({ id: 't1', tasks: [{ id: 'book', kind: 'book', compensate: { kind: 'unbook' } }, { id: 'pay', kind: 'pay', dependsOn: ['book'] }] });
    await started.promise;
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const events = captureEvents(second, ['keel.coordinator.resumed', 'keel.coordinator.compensation_finished']);
    const w2 = await Agent.start(second, { capabilities: [], tasks: { unbook: () => 'unbooked' } });
    const c2 = await CoordinatorAgent.start(second, { name: 'trip', store, workers: [w2.pid] });
    expect(await c2.wait('t1')).toMatchObject({ status: 'failed', compensations: [{ task: 'book', ok: true, result: 'unbooked' }] });
    expect(events.events.map((e) => [e.event, e.measurements])).toEqual([
      ['keel.coordinator.resumed', { workflows: 1, rerun: 1, dropped: 0 }],
      ['keel.coordinator.compensation_finished', { attempts: 2 }],
    ]);
  });

  it('a restart storm (killed 5 times while a task runs): the task stays with the worker that runs it, the workflow completes, each count exact', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.']);
    const runs: string[] = [];
    const gate = deferred<void>();
    const slow = (name: string) => async (): Promise<string> => (runs.push(name), await gate.promise, 'done');
    const a = await Agent.start(node, { capabilities: [], tasks: { k: slow('a'), after: (t) => t.inputs.a } });
    const b = await Agent.start(node, { capabilities: [], tasks: { k: slow('b') } });
    const coordinator = await CoordinatorAgent.start(node, { name: 'storm', workers: [a.pid, b.pid] });
    await coordinator.submit({ id: 's', stuckAfterMs: 10_000, tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'after', dependsOn: ['a'] }] });
    await node.idle();
    expect(runs).toEqual(['a']);
    for (let i = 0; i < 5; i++) {
      await exitAndWait(node, node.registry.whereis('storm')!);
      await clock.advance(50); // the refused re-run (duplicate_task) is offered again: to the same worker
      await node.idle();
    }
    expect(runs).toEqual(['a']); // never started on b while a still runs it
    gate.resolve();
    await node.idle();
    await clock.advance(50);
    await node.idle();
    const r = await coordinator.wait('s');
    expect(r).toMatchObject({ status: 'completed', results: { a: 'done', b: 'done' } });
    expect(runs).toEqual(['a', 'a']); // the first run's answer went to a dead coordinator: run again, once, there
    expect(events.events.filter((e) => e.event === 'keel.coordinator.resumed').map((e) => e.measurements)).toEqual([
      { workflows: 1, rerun: 1, dropped: 0 },
      ...Array.from({ length: 4 }, () => ({ workflows: 1, rerun: 0, dropped: 0 })), // refused, waiting: not running
    ]);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_finished')).toHaveLength(1);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_stuck')).toEqual([]);
    const m = await coordinator.metrics();
    expect(m.workflows).toEqual({ active: 0, completed: 1, failed: 0, cancelled: 0, rejected: 0 });
    expect(m.tasks).toMatchObject({ completed: 2, failed: 0, reassigned: 0 });
    expect(m.workers).toEqual({ total: 2, busy: 0, left: 0 });
  });

  it('cancelled after two restarts: the first run, still going on its worker, is told to stop', async () => {
    const { node } = clockedNode(track);
    const stopped = deferred<string>();
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: { k: (_t, _ctx, { signal }) => new Promise((_, reject) => signal.addEventListener('abort', () => (stopped.resolve('aborted'), reject(new Error('aborted'))))) },
    });
    const coordinator = await CoordinatorAgent.start(node, { name: 'c2', workers: [w.pid] });
    await coordinator.submit({ id: 'x', tasks: [{ id: 't', kind: 'k' }] });
    await node.idle();
    await exitAndWait(node, node.registry.whereis('c2')!);
    await exitAndWait(node, node.registry.whereis('c2')!);
    const r = await coordinator.cancel('x');
    expect(r).toMatchObject({ cancelled: true, notified: [{ worker: w.pid, taskId: 'x/t' }] });
    expect(await stopped.promise).toBe('aborted');
  });
});
