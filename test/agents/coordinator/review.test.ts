// Adversarial review of the coordinator: what a Temporal or Erlang user tries first. Each test
// names the behaviour it pins; those that failed before their fix say so in the commit.
import { describe, expect, it } from 'vitest';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { Agent, AgentRegistry, CoordinatorAgent, GenServer, type Node, Pid } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deferred, exitAndWait, useNodes } from '../../support.js';

const track = useNodes();

/** An agent whose task `k` throws `error` at every run; `runs()` counts the runs. */
async function failingAgent(node: Node, error: unknown): Promise<{ pid: Pid; runs(): number }> {
  let runs = 0;
  const w = await Agent.start(node, {
    capabilities: [],
    tasks: {
      k: () => {
        runs++;
        throw error;
      },
    },
  });
  return { pid: w.pid, runs: () => runs };
}

describe('CoordinatorAgent review: stuck', () => {
  it('a workflow whose compensation runs longer than stuckAfterMs is not reported stuck (something runs)', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.workflow_stuck']);
    const undo = deferred<string>();
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: {
        book: () => 'booked',
        pay: () => {
          throw new Error('declined');
        },
        unbook: () => undo.promise,
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], taskTimeoutMs: 60_000 });
    const { id } = await coordinator.submit({ stuckAfterMs: 100, tasks: [{ id: 'book', kind: 'book', compensate: { kind: 'unbook' } }, { id: 'pay', kind: 'pay', dependsOn: ['book'] }] });
    await node.idle();
    expect(await coordinator.status(id)).toMatchObject({ state: 'compensating' });
    await clock.advance(1000);
    await node.idle();
    expect(events.events).toEqual([]);
    undo.resolve('unbooked');
    expect(await coordinator.wait(id)).toMatchObject({ status: 'failed', compensations: [{ task: 'book', ok: true, result: 'unbooked' }] });
  });
});

describe('CoordinatorAgent review: retry and hostile errors', () => {
  it('an aggregator that throws a revoked proxy under a retry policy with nonRetryable: the task fails with it, nothing wedges', async () => {
    const { node, clock } = clockedNode(track);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const coordinator = await CoordinatorAgent.start(node, {
      aggregators: {
        bad: () => {
          throw proxy;
        },
      },
    });
    const { id } = await coordinator.submit({ tasks: [{ id: 'm', kind: 'bad', aggregate: true, retry: { maxAttempts: 2, nonRetryable: ['X'], backoff: { initialMs: 10, maxMs: 10, jitter: 'none' } } }] });
    await node.idle();
    await clock.advance(10); // retried once: a revoked proxy matches no nonRetryable name
    await node.idle();
    const r = await coordinator.wait(id);
    if ('error' in r && !('status' in r)) throw new Error('not found');
    expect(r.status).toBe('failed');
    expect(r.failedTask).toBe('m');
    expect(r.error).toBe(proxy);
    expect(r.tasks.m!.attempts).toBe(2);
  });

  it('nonRetryable matches the code of a thrown plain object (it arrives wrapped as ERR_THROWN_VALUE)', async () => {
    const { node } = clockedNode(track);
    const w = await failingAgent(node, { code: 'BAD_INPUT', message: 'no' });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const r = await coordinator.run({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 5, nonRetryable: ['BAD_INPUT'] } }] });
    expect(r.status).toBe('failed');
    expect(w.runs()).toBe(1);
  });

  it('cancelled mid-backoff: the task never runs again, and the backoff timer is gone', async () => {
    const { node, clock } = clockedNode(track);
    const w = await failingAgent(node, new Error('flaky'));
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const { id } = await coordinator.submit({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 3, backoff: { initialMs: 1000, maxMs: 1000, jitter: 'none' } } }] });
    await node.idle();
    expect(w.runs()).toBe(1);
    const timers = node.info(coordinator.pid)!.timers;
    expect(await coordinator.cancel(id)).toEqual({ cancelled: true, notified: [] });
    expect(node.info(coordinator.pid)!.timers).toBe(timers - 1); // the backoff's Requeue timer
    await clock.advance(5000);
    await node.idle();
    expect(w.runs()).toBe(1);
    expect(await coordinator.wait(id)).toMatchObject({ status: 'cancelled', tasks: { t: { state: 'waiting', attempts: 1 } } });
  });

  it('paused mid-backoff: the retry waits for resume, then runs', async () => {
    const { node, clock } = clockedNode(track);
    let runs = 0;
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: { k: () => (++runs === 1 ? Promise.reject(new Error('flaky')) : 'ok') },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const { id } = await coordinator.submit({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 3, backoff: { initialMs: 1000, maxMs: 1000, jitter: 'none' } } }] });
    await node.idle();
    await coordinator.pause(id);
    await clock.advance(1000);
    await node.idle();
    expect(runs).toBe(1);
    await coordinator.resume(id);
    expect(await coordinator.wait(id)).toMatchObject({ status: 'completed', results: { t: 'ok' }, tasks: { t: { attempts: 2 } } });
  });
});

describe('CoordinatorAgent review: restarts', () => {
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

describe('CoordinatorAgent review: a pool from a registry query', () => {
  it('the registry crashes and is restarted: agents registering afterwards still join', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { name: 'reg' });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    const first = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry });
    await node.idle();
    await exitAndWait(node, node.registry.whereis('reg')!); // restarted by keel.agents with its table
    const second = await Agent.start(node, { capabilities: [], tasks: { k: () => 2 }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([first, second].map((a) => Pid.format(a.pid)));
  });

  it('removeWorker on a followed pool holds: a later registration in the registry does not bring the removed agent back; addWorker does', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const a = await Agent.start(node, { capabilities: [], tasks: { k: () => 'a' }, registry });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    expect(await coordinator.removeWorker(a.pid)).toBe('ok');
    const b = await Agent.start(node, { capabilities: [], tasks: { k: () => 'b' }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    await exitAndWait(node, coordinator.pid); // restarted in its node: a stays out
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    expect(await coordinator.addWorker(a.pid)).toBe('ok');
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([b, a].map((x) => Pid.format(x.pid)));
  });

  it('an agent that registers, dies and is re-registered under the same key before the coordinator looks: only the live pid joins', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    const refused = captureEvents(node, ['keel.coordinator.worker_refused', 'keel.coordinator.worker_joined']);
    const a = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 } });
    const b = await Agent.start(node, { capabilities: [], tasks: { k: () => 2 } });
    // in one turn of this test: register a, kill it, register b under the same key
    const ra = registry.register(a.pid, { kinds: ['k'] }, { key: 'w' });
    node.exit(a.pid, 'kill');
    const rb = registry.register(b.pid, { kinds: ['k'] }, { key: 'w' });
    await Promise.all([ra, rb]);
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    expect(refused.events.map((e) => e.event)).toEqual(['keel.coordinator.worker_joined']);
    expect(await coordinator.run({ tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { t: 2 } });
  });
});

describe('CoordinatorAgent review: agents and a registry that lost its table', () => {
  it('a registry stopped normally and started again comes back empty: an agent with heartbeatMs registers again at its next beat, and a query finds it', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { name: 'reg' });
    const agent = await Agent.start(node, { name: 'w', capabilities: ['x'], tasks: { k: () => 'ran' }, registry: { registry, heartbeatMs: 100, team: 't' } });
    expect(registry.lookup('w')).toMatchObject({ pid: agent.pid });
    await GenServer.stop(node, node.registry.whereis('reg')!, 'normal'); // ended for good: its table released
    await node.idle();
    await AgentRegistry.start(node, { name: 'reg' }); // started again under its name, empty
    expect(registry.count()).toBe(0);
    await clock.advance(100); // the beat answers not_registered: the agent registers again
    await node.idle();
    expect(registry.lookup('w')).toMatchObject({ pid: agent.pid, meta: { capabilities: ['x'], kinds: ['k'], team: 't' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    expect(await coordinator.run({ tasks: [{ id: 'a', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { a: 'ran' } });
    await clock.advance(100); // registered: the next beat is a beat, nothing more
    await node.idle();
    expect(registry.count()).toBe(1);
  });
});

describe('CoordinatorAgent review: sagas over parallel branches', () => {
  it('compensations run in reverse completion order across branches; a task in its retry backoff, a failed task and a running one are not compensated', async () => {
    const { node } = clockedNode(track);
    const slow = deferred<string>();
    const gateB = deferred<string>();
    const undone: string[] = [];
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: {
        a: () => 'A',
        b: () => gateB.promise,
        flaky: () => Promise.reject(new Error('flaky')),
        slow: () => slow.promise,
        fail: () => Promise.reject(new Error('boom')),
        undo: (t) => (undone.push(Object.keys(t.inputs)[0]!), 'undone'),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 10 });
    const { id } = await coordinator.submit({
      tasks: [
        { id: 'a', kind: 'a', compensate: { kind: 'undo' } },
        { id: 'b', kind: 'b', compensate: { kind: 'undo' } },
        { id: 'r', kind: 'flaky', retry: { maxAttempts: 5, backoff: { initialMs: 10_000, maxMs: 10_000, jitter: 'none' } }, compensate: { kind: 'undo' } },
        { id: 's', kind: 'slow', compensate: { kind: 'undo' } },
        { id: 'f', kind: 'fail', dependsOn: ['b'], compensate: { kind: 'undo' } },
      ],
    });
    await node.idle(); // a completed first; r waits out its backoff; s runs
    gateB.resolve('B'); // b completes second, then f fails
    const r = await coordinator.wait(id);
    expect(r).toMatchObject({ status: 'failed', failedTask: 'f', compensations: [{ task: 'b', ok: true }, { task: 'a', ok: true }] });
    expect(undone).toEqual(['b', 'a']);
    expect('tasks' in r && r.tasks).toMatchObject({ r: { state: 'waiting', attempts: 1 }, s: { state: 'cancelled' }, f: { state: 'failed' } });
    slow.resolve('late'); // its answer is ignored
    await node.idle();
    expect(undone).toEqual(['b', 'a']);
  });
});

describe('CoordinatorAgent review: aggregate steps', () => {
  it('a workflow cancelled while its aggregate step hangs: the step’s timeout timer goes with it, its late answer is ignored', async () => {
    const { node, clock } = clockedNode(track);
    const hang = deferred<number>();
    const coordinator = await CoordinatorAgent.start(node, { aggregators: { hang: () => hang.promise } });
    const { id } = await coordinator.submit({ tasks: [{ id: 'm', kind: 'hang', aggregate: true, timeoutMs: 60_000 }] });
    await node.idle();
    const timers = node.info(coordinator.pid)!.timers;
    expect(await coordinator.cancel(id)).toEqual({ cancelled: true, notified: [] });
    expect(node.info(coordinator.pid)!.timers).toBe(timers - 1);
    hang.resolve(1);
    await clock.advance(60_000);
    await node.idle();
    expect(await coordinator.wait(id)).toMatchObject({ status: 'cancelled', tasks: { m: { state: 'cancelled', attempts: 1 } } });
    expect((await coordinator.metrics()).tasks).toMatchObject({ timedOut: 0, completed: 0 });
  });
});

describe('CoordinatorAgent review: refused offers are not progress', () => {
  it('a task every worker refuses (busy) for stuckAfterMs is reported stuck (workers_busy): a refused offer is not a start', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.workflow_stuck']);
    const hang = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], maxConcurrentTasks: 1, tasks: { hang: () => hang.promise, k: () => 'k' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 2 });
    await coordinator.submit({ id: 'holder', tasks: [{ id: 'h', kind: 'hang' }] });
    await node.idle();
    const { id } = await coordinator.submit({ id: 'refused', stuckAfterMs: 200, tasks: [{ id: 't', kind: 'k' }] });
    await node.idle();
    for (let i = 0; i < 6; i++) {
      await clock.advance(50); // offered again, refused again
      await node.idle();
    }
    expect(events.events.map((e) => [e.metadata.workflow, e.metadata.waiting])).toEqual([['refused', [{ task: 't', kind: 'k', reason: 'workers_busy' }]]]);
    hang.resolve('done');
    await clock.advance(50);
    await node.idle();
    expect(await coordinator.wait(id)).toMatchObject({ status: 'completed', tasks: { t: { attempts: 1 } } });
  });
});

describe('CoordinatorAgent review: corrupt store records', () => {
  it('records with malformed attempts, budgets or compensations are dropped and reported; the coordinator starts, the rest resume', async () => {
    const store = new MemoryAgentStore();
    const base = { workflow: { tasks: [{ id: 't', kind: 'k', compensate: { kind: 'k' } }] }, state: 'running', startedAt: 1, deadline: undefined, reassigned: 0, attempts: [], completedOrder: [], failure: undefined, compensations: [] };
    store.put('flow', 'workflow', 'a', { ...base, id: 'a', attempts: [42] });
    store.put('flow', 'workflow', 'b', { ...base, id: 'b', budgets: [null, 'x'] });
    store.put('flow', 'workflow', 'c', { ...base, id: 'c', state: 'compensating', failure: { failedTask: 'u', error: 'e' }, completedOrder: ['t'], compensations: [null] });
    store.insert('flow', 'result', JSON.stringify(['c', 't']), { result: 1, attempts: 1 });
    store.put('flow', 'workflow', 'ok', { ...base, id: 'ok' });
    store.insert('flow', 'result', JSON.stringify(['ok', 't']), null); // a corrupt result: the task runs again
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const events = captureEvents(node, ['keel.coordinator.workflow_dropped', 'keel.coordinator.resumed']);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid] });
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_dropped').map((e) => e.metadata.workflow).sort()).toEqual(['a', 'c']);
    expect(await coordinator.wait('ok')).toMatchObject({ status: 'completed', results: { t: 'done' } });
    expect(await coordinator.wait('b')).toMatchObject({ status: 'completed', results: { t: 'done' } }); // junk budgets are ignored
  });
});
