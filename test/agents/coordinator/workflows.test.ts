import { describe, expect, it } from 'vitest';
import { Agent, CoordinatorAgent, GenServer, Pid, Sys, validateWorkflow, type AgentTask, type Workflow, type WorkflowTask } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deferred, expectKeelError, failure, thrown, useNodes, watch } from '../../support.js';

// Workflows a user can write: inputs from dependencies, kinds that route, aggregate steps, retry
// policies, compensations (sagas) and stuck reporting.

const track = useNodes();
const key = (pid: Pid): string => Pid.format(pid);

describe('CoordinatorAgent: data flow and routing', () => {
  it('fetch → parse → index: each task gets its dependencies’ results as inputs, by task id, on the worker of its kind', async () => {
    const node = track();
    const seen: AgentTask[] = [];
    const fetcher = await Agent.start(node, { capabilities: [], tasks: { fetch: (t) => (seen.push(t), `<p>${String(t.payload)}</p>`) } });
    const parser = await Agent.start(node, {
      capabilities: [],
      tasks: {
        parse: (t) => (seen.push(t), String(t.inputs.fetch).replace(/<\/?p>/g, '')),
        index: (t) => (seen.push(t), { words: String(t.inputs.parse).split(' ').length, from: Object.keys(t.inputs) }),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [fetcher.pid, parser.pid] });
    const r = await coordinator.run({
      id: 'doc',
      tasks: [
        { id: 'fetch', kind: 'fetch', payload: 'hello big world' },
        { id: 'parse', kind: 'parse', dependsOn: ['fetch'] },
        { id: 'index', kind: 'index', dependsOn: ['parse'] },
      ],
    });
    expect(r.status).toBe('completed');
    expect(r.results).toEqual({ fetch: '<p>hello big world</p>', parse: 'hello big world', index: { words: 3, from: ['parse'] } });
    expect(Object.keys(r.tasks)).toEqual(['fetch', 'parse', 'index']);
    expect(r.tasks.fetch).toEqual({ state: 'completed', result: '<p>hello big world</p>', worker: fetcher.pid, attempts: 1 });
    expect(key(r.tasks.parse!.worker!)).toBe(key(parser.pid));
    expect(key(r.tasks.index!.worker!)).toBe(key(parser.pid));
    expect(r.compensations).toEqual([]);
    expect(seen.map((t) => [t.id, t.kind, t.inputs])).toEqual([
      ['doc/fetch', 'fetch', {}],
      ['doc/parse', 'parse', { fetch: '<p>hello big world</p>' }],
      ['doc/index', 'index', { parse: 'hello big world' }],
    ]);
    expect(Object.isFrozen(seen[1]!.inputs)).toBe(true);
    expect(await coordinator.workers()).toEqual([
      { pid: fetcher.pid, capabilities: [], kinds: ['fetch'], load: 0 },
      { pid: parser.pid, capabilities: [], kinds: ['parse', 'index'], load: 0 },
    ]);
  });

  it('a task id __proto__ is an input key like any other', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], runTask: (t) => (t.kind === 'sum' ? Object.keys(t.inputs) : 1) });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const r = await coordinator.run({ tasks: [{ id: '__proto__', kind: 'one' }, { id: 's', kind: 'sum', dependsOn: ['__proto__'] }] });
    expect(r.status).toBe('completed');
    expect(r.results.s).toEqual(['__proto__']);
    expect(Object.getPrototypeOf(r.results)).toBe(Object.prototype);
    expect(Object.keys(r.results)).toEqual(['__proto__', 's']);
  });

  it('a kind no worker runs fails the workflow at once with a typed no_worker error naming the kind; nothing else runs', async () => {
    const node = track();
    let runs = 0;
    const w = await Agent.start(node, { capabilities: ['db'], tasks: { fetch: () => ++runs } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const r = await coordinator.run({ id: 'x', tasks: [{ id: 'a', kind: 'fetch' }, { id: 'b', kind: 'render', dependsOn: ['a'] }] });
    expect(r).toMatchObject({ status: 'failed', failedTask: 'b', error: { code: 'no_worker', kind: 'render', requires: [], task: 'b' } });
    expect(r.tasks).toEqual({ a: { state: 'waiting', attempts: 0 }, b: { state: 'failed', error: { code: 'no_worker', kind: 'render', requires: [], task: 'b' }, attempts: 0 } });
    // a worker of the kind without the capability does not count either
    const r2 = await coordinator.run({ tasks: [{ id: 'a', kind: 'fetch', requires: ['http'] }] });
    expect(r2.error).toEqual({ code: 'no_worker', kind: 'fetch', requires: ['http'], task: 'a' });
    expect(runs).toBe(0);
    expect((await coordinator.metrics()).workflows).toMatchObject({ failed: 2, active: 0 });
  });

  it('waitForWorkersMs: the task waits for a worker of its kind to join, on the node clock; past it, no_worker', async () => {
    const { node, clock } = clockedNode(track);
    const coordinator = await CoordinatorAgent.start(node, { waitForWorkersMs: 1000 });
    const late = watch(coordinator.run({ id: 'late', tasks: [{ id: 'p', kind: 'parse', payload: 2 }] }));
    const never = watch(coordinator.run({ id: 'never', waitForWorkersMs: 1500, tasks: [{ id: 'q', kind: 'other' }] }));
    await node.idle();
    await clock.advance(999);
    await node.idle();
    expect(late.status).toBe('pending');
    const parser = await Agent.start(node, { capabilities: [], tasks: { parse: (t) => (t.payload as number) * 10 } });
    expect(await coordinator.addWorker(parser.pid)).toBe('ok');
    await node.idle();
    expect(late.value).toMatchObject({ status: 'completed', results: { p: 20 } });
    await clock.advance(500);
    await node.idle();
    expect(never.status).toBe('pending');
    await clock.advance(1);
    await node.idle();
    expect(never.value).toMatchObject({ status: 'failed', failedTask: 'q', error: { code: 'no_worker', kind: 'other' } });
  });

  it('waitForWorkersMs: the only worker of a kind leaving starts the wait of a task queued behind it', async () => {
    const { node, clock } = clockedNode(track);
    const gate = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], tasks: { k: () => gate.promise } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], waitForWorkersMs: 300 });
    const run = watch(coordinator.run({ id: 'q', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k' }] }));
    await node.idle();
    expect(await coordinator.status('q')).toMatchObject({ tasks: { running: 1, waiting: 1 } });
    await clock.advance(1000); // b waits for a busy worker of its kind: no deadline
    await node.idle();
    expect(run.status).toBe('pending');
    expect(await coordinator.removeWorker(w.pid)).toBe('ok');
    await node.idle();
    await clock.advance(299);
    await node.idle();
    expect(run.status).toBe('pending');
    await clock.advance(1);
    await node.idle();
    // a (requeued by the removal) armed its wait first; b's, armed by the same removal, is cancelled with the workflow
    expect(run.value).toMatchObject({ status: 'failed', failedTask: 'a', error: { code: 'no_worker', kind: 'k', task: 'a' }, tasks: { b: { state: 'waiting', attempts: 0 } } });
  });

  it('a catch-all runTask agent runs any kind; an agent with tasks only answers a typed error for another kind', async () => {
    const node = track();
    const kinds = await Agent.start(node, { capabilities: [], tasks: { a: () => 'A' } });
    const both = await Agent.start(node, { capabilities: [], tasks: { a: () => 'A!' }, runTask: (t) => `any ${t.kind}` });
    expect(await kinds.runTask({ id: '1', kind: 'a' })).toEqual({ ok: true, result: 'A' });
    const r = await kinds.runTask({ id: '2', kind: 'b' });
    expect(r.ok).toBe(false);
    expectKeelError((r as { error: unknown }).error, 'ERR_INVALID_ARGUMENT', 'task.kind', 'this agent runs (a)', '"b"');
    expect(await both.runTask({ id: '3', kind: 'a' })).toEqual({ ok: true, result: 'A!' });
    expect(await both.runTask({ id: '4', kind: 'constructor' })).toEqual({ ok: true, result: 'any constructor' });
    expect(await kinds.runTask({ id: '5', kind: 'toString' })).toMatchObject({ ok: false });
    expect((await kinds.status()).kinds).toEqual(['a']);
    expect((await both.status()).kinds).toBe('*');
  });

  it('Agent options: tasks must be handlers, and one of runTask and tasks is required', async () => {
    const node = track();
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [] })), 'ERR_INVALID_ARGUMENT', 'options.runTask');
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [], tasks: {} })), 'ERR_INVALID_ARGUMENT', 'options.runTask');
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [], tasks: { a: 1 as never } })), 'ERR_INVALID_ARGUMENT', 'options.tasks.a');
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [], tasks: [] as never })), 'ERR_INVALID_ARGUMENT', 'options.tasks');
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [], tasks: new Proxy({}, {}) })), 'ERR_INVALID_ARGUMENT', 'options.tasks');
    const getter = Object.defineProperty({}, 'a', { enumerable: true, get: () => { throw new Error('no'); } });
    expectKeelError(thrown(() => Agent.start(node, { capabilities: [], tasks: getter })), 'ERR_INVALID_ARGUMENT', 'options.tasks.a');
    // inputs that are not an object are a bad task
    const a = await Agent.start(node, { capabilities: [], runTask: (t) => t.inputs });
    expect((await a.runTask({ id: '1', kind: 'k', inputs: 5 as never })).ok).toBe(false);
    expect(await a.runTask({ id: '2', kind: 'k', inputs: { x: 1 } })).toEqual({ ok: true, result: { x: 1 } });
  });

  it('inputs of a failed dependency are never given: its dependents never run', async () => {
    const node = track();
    const ran: string[] = [];
    const w = await Agent.start(node, { capabilities: [], runTask: (t) => { ran.push(t.id); if (t.kind === 'bad') throw new Error('bad'); return 1; } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const r = await coordinator.run({ id: 'f', tasks: [{ id: 'a', kind: 'bad' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] });
    expect(r).toMatchObject({ status: 'failed', failedTask: 'a', results: {} });
    expect(r.tasks.b).toEqual({ state: 'waiting', attempts: 0 });
    expect(ran).toEqual(['f/a']);
  });
});

describe('CoordinatorAgent: aggregate steps', () => {
  it('an aggregate step runs in the coordinator over its inputs (a huge fan-in), sync or async', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], runTask: (t) => t.payload });
    const coordinator = await CoordinatorAgent.start(node, {
      workers: [w.pid],
      maxConcurrentWorkflows: 5,
      aggregators: {
        sum: (inputs) => Object.values(inputs).reduce((a: number, b) => a + (b as number), 0),
        later: async (inputs, task) => `${task.id}:${Object.keys(inputs).length}`,
      },
    });
    const N = 2000;
    const parts: WorkflowTask[] = Array.from({ length: N }, (_, i) => ({ id: `p${i}`, kind: 'k', payload: i }));
    const ids = parts.map((p) => p.id);
    const r = await coordinator.run({ id: 'fan', tasks: [...parts, { id: 'total', kind: 'sum', aggregate: true, dependsOn: ids }, { id: 'n', kind: 'later', aggregate: true, dependsOn: ids }] });
    expect(r.status).toBe('completed');
    expect(r.results.total).toBe((N * (N - 1)) / 2);
    expect(r.results.n).toBe(`fan/n:${N}`);
    expect(r.tasks.total).toEqual({ state: 'completed', result: (N * (N - 1)) / 2, worker: coordinator.pid, attempts: 1 });
  });

  it('an unknown aggregator is refused before the workflow starts; a throwing one fails its task (subject to its retry)', async () => {
    const node = track();
    let calls = 0;
    const coordinator = await CoordinatorAgent.start(node, {
      aggregators: {
        flaky: () => {
          if (++calls < 3) throw Object.assign(new Error('not yet'), { code: 'AGAIN' });
          return 'ok';
        },
        bad: () => Promise.reject(new Error('never')),
      },
    });
    expectKeelError(await failure(() => coordinator.run({ tasks: [{ id: 'm', kind: 'nope', aggregate: true }] })), 'ERR_INVALID_ARGUMENT', 'workflow.tasks[0].kind', 'nope');
    const r = await coordinator.run({ tasks: [{ id: 'm', kind: 'flaky', aggregate: true, retry: { maxAttempts: 3, backoff: { initialMs: 0 } } }] });
    expect(r).toMatchObject({ status: 'completed', results: { m: 'ok' }, tasks: { m: { attempts: 3 } } });
    const bad = await coordinator.run({ tasks: [{ id: 'm', kind: 'bad', aggregate: true }] });
    expect(bad).toMatchObject({ status: 'failed', failedTask: 'm' });
    expect((bad.error as Error).message).toBe('never');
    expect((await coordinator.metrics()).tasks).toMatchObject({ retried: 2, failed: 1 });
    expectKeelError(thrown(() => CoordinatorAgent.start(node, { aggregators: { x: 1 as never } })), 'ERR_INVALID_ARGUMENT', 'options.aggregators.x');
    expectKeelError(thrown(() => CoordinatorAgent.start(node, { aggregators: [] as never })), 'ERR_INVALID_ARGUMENT', 'options.aggregators');
  });

  it('an aggregate step of a paused workflow waits for resume', async () => {
    const node = track();
    const gate = deferred<number>();
    const w = await Agent.start(node, { capabilities: [], runTask: () => gate.promise });
    let ran = 0;
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], aggregators: { one: (inputs) => (++ran, inputs.a) } });
    const { id } = await coordinator.submit({ tasks: [{ id: 'a', kind: 'k' }, { id: 'm', kind: 'one', aggregate: true, dependsOn: ['a'] }] });
    await node.idle();
    expect(await coordinator.pause(id)).toBe('ok');
    gate.resolve(7);
    await node.idle();
    expect(ran).toBe(0);
    expect(await coordinator.status(id)).toMatchObject({ state: 'paused', tasks: { completed: 1, waiting: 1 } });
    expect(await coordinator.resume(id)).toBe('ok');
    expect(await coordinator.wait(id)).toMatchObject({ status: 'completed', results: { a: 7, m: 7 } });
    expect(ran).toBe(1);
  });
});

describe('CoordinatorAgent: retry policy', () => {
  it('errors and lost attempts count apart: a death then errors, each budget its own', async () => {
    const node = track();
    let calls = 0;
    const script = ['die', 'error', 'ok'];
    const runTask = (_t: AgentTask, ctx: Parameters<NonNullable<Parameters<typeof Agent.start>[1]['runTask']>>[1]): unknown => {
      const step = script[calls++];
      if (step === 'die') {
        ctx.exit(new Error('chaos'));
        return new Promise(() => {});
      }
      if (step === 'error') throw new Error('flaky');
      return 'ok';
    };
    const w1 = await Agent.start(node, { capabilities: [], runTask });
    const w2 = await Agent.start(node, { capabilities: [], runTask });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid], maxTaskAttempts: 2 });
    const r = await coordinator.run({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 2, backoff: { initialMs: 0 } } }] });
    expect(r).toMatchObject({ status: 'completed', results: { t: 'ok' }, reassigned: 1, tasks: { t: { attempts: 3 } } });
    // two errors spend maxAttempts 2 although no attempt was lost
    calls = 1;
    script[2] = 'error';
    script[1] = 'error';
    const r2 = await coordinator.run({ tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 2, backoff: { initialMs: 0 } } }] });
    expect(r2).toMatchObject({ status: 'failed', failedTask: 't', reassigned: 0, tasks: { t: { state: 'failed', attempts: 2 } } });
  });

  it('an aggregate step past its timeout fails with "timeout" (retried per its policy); its late answer is ignored', async () => {
    const { node, clock } = clockedNode(track);
    const answers = [deferred<string>(), deferred<string>()];
    let n = 0;
    const coordinator = await CoordinatorAgent.start(node, { aggregators: { slow: () => answers[n++]!.promise } });
    const run = watch(coordinator.run({ tasks: [{ id: 'm', kind: 'slow', aggregate: true, timeoutMs: 100, retry: { maxAttempts: 2, backoff: { initialMs: 10, jitter: 'none' } } }] }));
    await node.idle();
    await clock.advance(100);
    await node.idle();
    expect(n).toBe(1);
    await clock.advance(10);
    await node.idle();
    expect(n).toBe(2);
    answers[0]!.resolve('late');
    answers[1]!.resolve('second');
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { m: 'second' }, tasks: { m: { attempts: 2 } } });
    expect((await coordinator.metrics()).tasks).toMatchObject({ timedOut: 1, retried: 1 });
  });

  it('retries on errors with its backoff on the node clock; worker losses count apart (maxTaskAttempts)', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.task_retry']);
    let calls = 0;
    const w = await Agent.start(node, { capabilities: [], runTask: () => { if (++calls < 4) throw new Error(`e${calls}`); return 'done'; } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTaskAttempts: 1 });
    const run = watch(coordinator.run({ id: 'r', tasks: [{ id: 't', kind: 'k', retry: { maxAttempts: 4, backoff: { initialMs: 100, factor: 3, jitter: 'none' } } }] }));
    await node.idle();
    expect(calls).toBe(1);
    await clock.advance(99);
    await node.idle();
    expect(calls).toBe(1);
    await clock.advance(1);
    await node.idle();
    expect(calls).toBe(2);
    await clock.advance(299);
    await node.idle();
    expect(calls).toBe(2);
    await clock.advance(1);
    await node.idle();
    expect(calls).toBe(3);
    await clock.advance(900);
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: 'done' }, tasks: { t: { attempts: 4 } }, reassigned: 0 });
    expect(events.events.map((e) => [e.measurements.attempt, e.measurements.delayMs, (e.metadata.error as Error).message])).toEqual([[1, 100, 'e1'], [2, 300, 'e2'], [3, 900, 'e3']]);
  });

  it('past maxAttempts the workflow fails with the last error; nonRetryable matches a code, a name or a string error', async () => {
    const node = track();
    const errors: Record<string, () => unknown> = {
      always: () => new Error('always'),
      coded: () => Object.assign(new Error('x'), { code: 'E_FATAL' }),
      named: () => Object.assign(new Error('y'), { name: 'FatalError' }),
      string: () => 'fatal',
      hostile: () => Object.defineProperty(new Error('z'), 'code', { get: () => { throw new Error('getter'); } }),
    };
    const calls = new Map<string, number>();
    const w = await Agent.start(node, {
      capabilities: [],
      runTask: (t) => {
        calls.set(t.kind, (calls.get(t.kind) ?? 0) + 1);
        return Promise.reject(errors[t.kind]!());
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const retry = { maxAttempts: 3, backoff: { initialMs: 0 }, nonRetryable: ['E_FATAL', 'FatalError', 'fatal'] };
    for (const kind of Object.keys(errors)) {
      const r = await coordinator.run({ tasks: [{ id: 't', kind, retry }] });
      expect(r).toMatchObject({ status: 'failed', failedTask: 't' });
    }
    expect(Object.fromEntries(calls)).toEqual({ always: 3, coded: 1, named: 1, string: 1, hostile: 3 });
  });

  it('bad retry policies are refused naming the option', () => {
    const bad: [unknown, string][] = [
      [null, 'workflow.tasks[0].retry'],
      [{ maxAttempts: 0 }, 'workflow.tasks[0].retry.maxAttempts'],
      [{ maxAttempts: NaN }, 'workflow.tasks[0].retry.maxAttempts'],
      [{ maxAttempts: 1.5 }, 'workflow.tasks[0].retry.maxAttempts'],
      [{ maxAttempts: 2, backoff: { initialMs: -1 } }, 'workflow.tasks[0].retry.backoff.initialMs'],
      [{ maxAttempts: 2, backoff: { bogus: 1 } }, 'workflow.tasks[0].retry.backoff'],
      [{ maxAttempts: 2, nonRetryable: [1] }, 'workflow.tasks[0].retry.nonRetryable'],
    ];
    for (const [retry, argument] of bad) {
      expectKeelError(thrown(() => validateWorkflow({ tasks: [{ id: 't', kind: 'k', retry: retry as never }] })), 'ERR_INVALID_ARGUMENT', argument);
    }
    expectKeelError(thrown(() => validateWorkflow({ tasks: [{ id: 't', kind: 'k', compensate: { kind: 3 as never } }] })), 'ERR_INVALID_ARGUMENT', 'workflow.tasks[0].compensate.kind');
    expectKeelError(thrown(() => validateWorkflow({ tasks: [{ id: 't', kind: 'k', aggregate: 'yes' as never }] })), 'ERR_INVALID_ARGUMENT', 'workflow.tasks[0].aggregate');
    expectKeelError(thrown(() => validateWorkflow({ waitForWorkersMs: -1, tasks: [{ id: 't', kind: 'k' }] })), 'ERR_INVALID_ARGUMENT', 'workflow.waitForWorkersMs');
    expectKeelError(thrown(() => validateWorkflow({ stuckAfterMs: 0, tasks: [{ id: 't', kind: 'k' }] })), 'ERR_INVALID_ARGUMENT', 'workflow.stuckAfterMs');
  });

  it('a cycle over many tasks is refused, and a long chain validates in linear time', () => {
    const tasks: WorkflowTask[] = Array.from({ length: 3 }, (_, i) => ({ id: `t${i}`, kind: 'k', dependsOn: [`t${(i + 1) % 3}`] }));
    expectKeelError(thrown(() => validateWorkflow({ tasks })), 'ERR_INVALID_ARGUMENT', 't0, t1, t2');
    const chain: Workflow = { tasks: Array.from({ length: 20_000 }, (_, i) => ({ id: `c${i}`, kind: 'k', ...(i === 0 ? {} : { dependsOn: [`c${i - 1}`] }) })) };
    expect(() => validateWorkflow(chain)).not.toThrow();
  });
});

describe('CoordinatorAgent: the task ids agents are given', () => {
  it('names each task once: a / or a % in a workflow or task id is escaped, so no two tasks (or a task and a compensation) share an id', async () => {
    const node = track();
    const ids: string[] = [];
    const w = await Agent.start(node, { capabilities: [], tasks: { work: (t) => void ids.push(t.id), fail: (t) => {
      ids.push(t.id);
      throw new Error('no');
    } } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    expect(await coordinator.run({ id: 'a/b', tasks: [{ id: 'c', kind: 'work' }] })).toMatchObject({ status: 'completed' });
    expect(await coordinator.run({ id: 'a', tasks: [{ id: 'b/c', kind: 'work' }] })).toMatchObject({ status: 'completed' });
    expect(await coordinator.run({ id: '100%', tasks: [{ id: '%2F', kind: 'work' }] })).toMatchObject({ status: 'completed' });
    const saga = await coordinator.run({
      id: 'x',
      tasks: [
        { id: 'y', kind: 'work', compensate: { kind: 'work' } },
        { id: 'y/compensate', kind: 'fail', dependsOn: ['y'] },
      ],
    });
    expect(saga).toMatchObject({ status: 'failed', failedTask: 'y/compensate' });
    expect(ids).toEqual(['a%2Fb/c', 'a/b%2Fc', '100%25/%252F', 'x/y', 'x/y%2Fcompensate', 'x/y/compensate']);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

describe('CoordinatorAgent: callers waiting on a workflow', () => {
  it('drops the waiters that gave up (a caller that died) as more come, and answers the ones that wait', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node, { waitForWorkersMs: Infinity });
    const { id } = await coordinator.submit({ id: 'long', tasks: [{ id: 't', kind: 'nobody-runs-this' }] });
    const waitersOf = async (): Promise<number> => {
      const state = (await Sys.getState(node, coordinator.pid)) as { runs: Map<string, { waiters: unknown[] }> };
      return state.runs.get(id)!.waiters.length;
    };
    // 100 processes wait on it and die while they wait
    const callers = Array.from({ length: 100 }, () => node.spawn((ctx) => {
      void GenServer.call(ctx, coordinator.pid, { op: 'wait', id }, Infinity).catch(() => undefined);
      return () => undefined;
    }));
    await node.idle();
    expect(await waitersOf()).toBe(100);
    for (const pid of callers) node.exit(pid, 'kill');
    await node.idle();
    // the waiter that finds the list at a power of two (128) drops them: what is left is what still waits
    const living = watch(coordinator.wait(id));
    const more = Array.from({ length: 28 }, () => watch(coordinator.wait(id)));
    await node.idle();
    expect(await waitersOf()).toBe(29);
    await coordinator.cancel(id);
    await node.idle();
    expect(living.status).toBe('resolved');
    expect(living.value).toMatchObject({ id, status: 'cancelled' });
    expect(more.map((w) => w.status)).toEqual(Array(28).fill('resolved'));
  });
});

describe('CoordinatorAgent: compensations (sagas)', () => {
  it('a failing workflow runs the compensations of its completed tasks in reverse completion order, each with its task’s result', async () => {
    const node = track();
    const undone: [string, unknown, unknown][] = [];
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: {
        book: (t) => `booking ${String(t.payload)}`,
        pay: () => Promise.reject(new Error('card declined')),
        cancel: (t) => {
          undone.push([t.id, t.payload, t.inputs]);
          if (t.payload === 'car') throw new Error('car desk closed');
          return `cancelled ${String(t.payload)}`;
        },
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const events = captureEvents(node, ['keel.coordinator.compensation_finished', 'keel.coordinator.workflow_compensating']);
    const r = await coordinator.run({
      id: 'trip',
      tasks: [
        { id: 'hotel', kind: 'book', payload: 'hotel', compensate: { kind: 'cancel', payload: 'hotel' } },
        { id: 'car', kind: 'book', payload: 'car', dependsOn: ['hotel'], compensate: { kind: 'cancel', payload: 'car' } },
        { id: 'flight', kind: 'book', payload: 'flight', dependsOn: ['car'] },
        { id: 'pay', kind: 'pay', dependsOn: ['flight'], compensate: { kind: 'cancel', payload: 'never' } },
      ],
    });
    expect(r).toMatchObject({ status: 'failed', failedTask: 'pay' });
    expect((r.error as Error).message).toBe('card declined');
    expect(undone).toEqual([
      ['trip/car/compensate', 'car', { car: 'booking car' }],
      ['trip/hotel/compensate', 'hotel', { hotel: 'booking hotel' }],
    ]);
    expect(r.compensations.map((c) => [c.task, c.ok, c.ok ? c.result : (c.error as Error).message])).toEqual([
      ['car', false, 'car desk closed'],
      ['hotel', true, 'cancelled hotel'],
    ]);
    expect(events.events.map((e) => e.event)).toEqual([
      'keel.coordinator.workflow_compensating',
      'keel.coordinator.compensation_finished',
      'keel.coordinator.compensation_finished',
    ]);
  });

  it('a compensation nobody runs is reported (no_worker) and the rest still run', async () => {
    const node = track();
    const gate = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], tasks: { do: () => 'done', boom: () => { throw new Error('boom'); }, undo: () => gate.promise } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const { id } = await coordinator.submit({
      tasks: [
        { id: 'a', kind: 'do', compensate: { kind: 'undo' } },
        { id: 'b', kind: 'do', dependsOn: ['a'], compensate: { kind: 'nobody' } },
        { id: 'c', kind: 'boom', dependsOn: ['b'] },
      ],
    });
    await node.idle();
    expect(await coordinator.status(id)).toMatchObject({ state: 'compensating' });
    expect(await coordinator.pause(id)).toEqual({ error: 'finished' });
    expect(await coordinator.resume(id)).toEqual({ error: 'finished' });
    gate.resolve('undone');
    const r = await coordinator.wait(id);
    expect(r).toMatchObject({
      status: 'failed',
      failedTask: 'c',
      compensations: [
        { task: 'b', ok: false, error: { code: 'no_worker', kind: 'nobody', requires: [], task: 'b' } },
        { task: 'a', ok: true, result: 'undone' },
      ],
    });
  });

  it('cancel while compensating: the running compensation is told to stop, the rest are reported cancelled, the workflow stays failed', async () => {
    const node = track();
    const aborted: string[] = [];
    const w = await Agent.start(node, {
      capabilities: [],
      tasks: {
        do: () => 'done',
        boom: () => { throw new Error('boom'); },
        undo: (t, _ctx, { signal }) => new Promise((_r, reject) => signal.addEventListener('abort', () => { aborted.push(t.id); reject(new Error('stop')); })),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const { id } = await coordinator.submit({
      id: 'c',
      tasks: [
        { id: 'a', kind: 'do', compensate: { kind: 'undo' } },
        { id: 'b', kind: 'do', dependsOn: ['a'], compensate: { kind: 'undo' } },
        { id: 'x', kind: 'boom', dependsOn: ['b'] },
      ],
    });
    await node.idle();
    const cancel = await coordinator.cancel(id);
    expect(cancel).toMatchObject({ cancelled: true, notified: [{ worker: w.pid, taskId: 'c/b/compensate', outcome: { ok: true } }] });
    await node.idle();
    expect(aborted).toEqual(['c/b/compensate']);
    expect(await coordinator.wait(id)).toMatchObject({
      status: 'failed',
      failedTask: 'x',
      compensations: [{ task: 'b', ok: false, error: 'cancelled' }, { task: 'a', ok: false, error: 'cancelled' }],
    });
    expect((await coordinator.metrics()).workflows).toMatchObject({ failed: 1, cancelled: 0, active: 0 });
  });

  it('a compensation whose worker dies mid-run is reassigned to another worker and completes', async () => {
    const node = track();
    let undos = 0;
    const tasks = {
      do: () => 'done',
      boom: () => { throw new Error('boom'); },
      undo: (t: AgentTask, ctx: Parameters<NonNullable<Parameters<typeof Agent.start>[1]['runTask']>>[1]) => {
        if (++undos === 1) {
          ctx.exit(new Error('chaos'));
          return new Promise(() => {});
        }
        return `undid ${String(t.inputs.a)}`;
      },
    };
    const w1 = await Agent.start(node, { capabilities: [], tasks });
    const w2 = await Agent.start(node, { capabilities: [], tasks });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid] });
    const r = await coordinator.run({ tasks: [{ id: 'a', kind: 'do', compensate: { kind: 'undo' } }, { id: 'b', kind: 'boom', dependsOn: ['a'] }] });
    expect(r).toMatchObject({ status: 'failed', failedTask: 'b', compensations: [{ task: 'a', ok: true, result: 'undid done' }], reassigned: 1 });
    expect(undos).toBe(2);
    expect((await coordinator.workers()).length).toBe(1);
  });

  it('a cancelled or completed workflow runs no compensation', async () => {
    const node = track();
    let undone = 0;
    const gate = deferred<void>();
    const w = await Agent.start(node, { capabilities: [], tasks: { do: () => 'ok', wait: () => gate.promise, undo: () => ++undone } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 2 });
    expect(await coordinator.run({ tasks: [{ id: 'a', kind: 'do', compensate: { kind: 'undo' } }] })).toMatchObject({ status: 'completed', compensations: [] });
    const { id } = await coordinator.submit({ tasks: [{ id: 'a', kind: 'do', compensate: { kind: 'undo' } }, { id: 'b', kind: 'wait', dependsOn: ['a'] }] });
    await node.idle();
    await coordinator.cancel(id);
    expect(await coordinator.wait(id)).toMatchObject({ status: 'cancelled', compensations: [], tasks: { a: { state: 'completed' }, b: { state: 'cancelled', attempts: 1 } } });
    gate.resolve();
    await node.idle();
    expect(undone).toBe(0);
  });
});

describe('CoordinatorAgent: stuck workflows', () => {
  it('no progress and nothing running for stuckAfterMs: reported once, with what each task waits on', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.workflow_stuck']);
    const gate = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], tasks: { slow: () => gate.promise } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], stuckAfterMs: 1000 });
    const { id } = await coordinator.submit({
      id: 's',
      waitForWorkersMs: Infinity,
      tasks: [{ id: 'a', kind: 'slow' }, { id: 'b', kind: 'gpu', dependsOn: ['a'] }, { id: 'c', kind: 'gpu', dependsOn: ['b'] }],
    });
    await node.idle();
    await clock.advance(5000); // a runs: not stuck however long it takes
    await node.idle();
    expect(events.events).toEqual([]);
    gate.resolve('x');
    await node.idle();
    await clock.advance(999);
    await node.idle();
    expect(events.events).toEqual([]);
    await clock.advance(1);
    await node.idle();
    expect(events.events.map((e) => [e.measurements.idleMs, e.metadata.workflow, e.metadata.waiting])).toEqual([
      [1000, 's', [{ task: 'b', kind: 'gpu', reason: 'no_worker' }, { task: 'c', kind: 'gpu', reason: 'dependencies' }]],
    ]);
    await clock.advance(10_000);
    await node.idle();
    expect(events.events).toHaveLength(1);
    await coordinator.cancel(id);
  });

  it('a paused workflow is reported stuck with reason paused; a workflow that finishes leaves no stuck timer', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.workflow_stuck']);
    const gate = deferred<string>();
    const w = await Agent.start(node, { capabilities: [], runTask: () => gate.promise });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const { id } = await coordinator.submit({ stuckAfterMs: 200, tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] });
    await node.idle();
    await coordinator.pause(id);
    gate.resolve('done');
    await node.idle();
    await clock.advance(200);
    await node.idle();
    expect(events.events.map((e) => e.metadata.waiting)).toEqual([[{ task: 'b', kind: 'k', reason: 'paused' }]]);
    await coordinator.resume(id);
    expect(await coordinator.wait(id)).toMatchObject({ status: 'completed' });
    const quick = await coordinator.run({ stuckAfterMs: 50, tasks: [{ id: 'q', kind: 'k' }] });
    expect(quick.status).toBe('completed');
    // expectNoLeaks (after each test) finds no timer of the coordinator left behind
  });
});
