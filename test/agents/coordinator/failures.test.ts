// The coordinator when things fail: a long compensation is not stuck, retries with hostile errors,
// cancels and pauses mid-backoff, sagas over parallel branches, a hanging aggregate step cancelled,
// refused offers that are not progress, and corrupt store records dropped and reported.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { Agent, CoordinatorAgent, type Node, Pid, Sys } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deferred, exitAndWait, HOUR, nextEvent, settlesWithin, stepWallClock, useNodes } from '../../support.js';

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

describe('CoordinatorAgent under failure: stuck', () => {
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

describe('CoordinatorAgent under failure: retry and hostile errors', () => {
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


describe('CoordinatorAgent under failure: sagas over parallel branches', () => {
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

describe('CoordinatorAgent under failure: aggregate steps', () => {
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

describe('CoordinatorAgent under failure: refused offers are not progress', () => {
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

describe('CoordinatorAgent under failure: corrupt store records', () => {
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

/** An agent whose task `k` throws at its first run and answers 'ok' after. */
async function failingOnce(node: Node): Promise<Pid> {
  let runs = 0;
  const w = await Agent.start(node, {
    capabilities: [],
    tasks: {
      k: () => {
        if (++runs === 1) throw new Error('once');
        return 'ok';
      },
    },
  });
  return w.pid;
}

describe("CoordinatorAgent: stuck on the real clock (progress counted on the timers' time)", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a workflow with no worker is reported stuck after stuckAfterMs when the wall clock was stepped back an hour', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node, { workers: [] });
    const stuck = nextEvent(node, 'keel.coordinator.workflow_stuck');
    await coordinator.submit({ stuckAfterMs: 30, waitForWorkersMs: 60_000, tasks: [{ id: 't', kind: 'k' }] });
    stepWallClock(-HOUR);
    // on the wall clock, the check found it idle an hour less than nothing, and looked again an hour later
    expect(await settlesWithin(stuck, 4000)).toBe('settled');
  });

  it("a task's retry delay kept across a restart in the node still ends after its backoff when the wall clock was stepped back an hour", async () => {
    const node = track();
    const worker = await failingOnce(node);
    const coordinator = await CoordinatorAgent.start(node, { name: 'stepped', workers: [worker] });
    const retrying = nextEvent(node, 'keel.coordinator.task_retry');
    const { id } = await coordinator.submit({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 2, backoff: { initialMs: 200, maxMs: 200, jitter: 'none' } } }] });
    await retrying;
    stepWallClock(-HOUR);
    await exitAndWait(node, coordinator.pid);
    // on the wall clock, the successor found the task due an hour away and re-armed its delay for it
    const result = coordinator.wait(id);
    expect(await settlesWithin(result, 4000)).toBe('settled');
    await expect(result).resolves.toMatchObject({ status: 'completed' });
  });
});

describe("CoordinatorAgent: refused offers on the real clock (the timers' time, read twice)", () => {
  it('a task every worker refuses (busy) for stuckAfterMs is reported stuck (workers_busy) on the real clock', async () => {
    // on the real clock the timers' time is fractional: the attempt's start and the progress its
    // begin made were two readings, never equal, so a refusal did not take its progress back and
    // each offer, every 50 ms, kept the workflow from ever looking stuck
    const node = track();
    const hang = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], maxConcurrentTasks: 1, tasks: { hang: () => hang.promise, k: () => 'k' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 2 });
    await coordinator.submit({ id: 'holder', tasks: [{ id: 'h', kind: 'hang' }] });
    await node.idle();
    const stuck = nextEvent(node, 'keel.coordinator.workflow_stuck');
    await coordinator.submit({ id: 'refused', stuckAfterMs: 100, tasks: [{ id: 't', kind: 'k' }] });
    expect(await settlesWithin(stuck, 5000)).toBe('settled');
    expect((await stuck).metadata).toMatchObject({ workflow: 'refused', waiting: [{ task: 't', kind: 'k', reason: 'workers_busy' }] });
    hang.resolve('done');
    expect(await coordinator.wait('refused')).toMatchObject({ status: 'completed', tasks: { t: { attempts: 1 } } });
  });
});

describe('CoordinatorAgent: a workflow id used again', () => {
  it("a finished workflow's timeout, already in the mailbox, does not fail the next workflow of the same id", async () => {
    const { node, clock } = clockedNode(track);
    const gate = deferred<string>();
    let runs = 0;
    const w = await Agent.start(node, { capabilities: [], runTask: () => (++runs === 1 ? gate.promise : new Promise(() => {})) });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], historySize: 0 });
    const first = coordinator.run({ id: 'w', timeoutMs: 100, tasks: [{ id: 't', kind: 'k' }] });
    await node.idle();
    // a new run of the same id, then the first one's timeout, wait in the suspended coordinator's mailbox;
    // meanwhile the first one's task answers (a call's answer is not a message of its mailbox): it completes
    await Sys.suspend(node, coordinator.pid);
    const second = coordinator.submit({ id: 'w', tasks: [{ id: 't', kind: 'k' }] });
    await node.idle();
    await clock.advance(100);
    await node.idle();
    gate.resolve('done');
    expect(await first).toMatchObject({ id: 'w', status: 'completed', results: { t: 'done' } });
    await Sys.resume(node, coordinator.pid);
    expect(await second).toEqual({ id: 'w' });
    expect(await coordinator.status('w')).toMatchObject({ id: 'w', state: 'running', tasks: { running: 1, failed: 0 } });
    expect((await coordinator.metrics()).workflows).toMatchObject({ active: 1, completed: 1, failed: 0 });
  });
});
