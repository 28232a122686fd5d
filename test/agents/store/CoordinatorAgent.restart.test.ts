// The coordinator with an agent store: its active workflows outlive the node (a new node with a
// coordinator of the same name on the same store resumes them, waiting for workers), and what cannot
// be stored or resumed is refused, dropped or reported, never silent.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import type { AgentStore, AgentStoreLoad } from '../../../src/agents/store/AgentStore.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { loadingStore, lockedAtFirst } from './fakeStores.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { Agent, CoordinatorAgent, GenServer, type Node, type Pid } from '../../../src/index.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { advance, clockedNode, deferred, exitAndWait, expectKeelError, failure, fakeLogger, thrown, useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-coordinator-store-', 'agents.db');
const track = useNodes();

const resumedOf = (events: ReturnType<typeof captureEvents>): unknown[] =>
  events.events.filter((e) => e.event === 'keel.coordinator.resumed').map((e) => [e.measurements, e.metadata.from]);

describe('CoordinatorAgent with an agent store', () => {
  it('a workflow compensating when its node shut down resumes compensating in a new node on the same SQLite file', async () => {
    const file = tmpfile();
    const first = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const undoStarted = deferred<void>();
    const a = await Agent.start(first, {
      capabilities: [],
      tasks: {
        book: () => 'booked',
        pay: () => {
          throw new Error('card declined');
        },
        unbook: () => (undoStarted.resolve(), new Promise(() => undefined)),
      },
    });
    const c1 = await CoordinatorAgent.start(first, { name: 'trip', workers: [a.pid] });
    await c1.submit({ id: 'trip-1', tasks: [{ id: 'book', kind: 'book', compensate: { kind: 'unbook', payload: 'r1' } }, { id: 'pay', kind: 'pay', dependsOn: ['book'] }] });
    await undoStarted.promise;
    await first.shutdown({ timeoutMs: 1000 });

    const second = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const undone: unknown[] = [];
    const b = await Agent.start(second, { capabilities: [], tasks: { unbook: (t) => (undone.push([t.id, t.payload, t.inputs]), 'unbooked') } });
    const events = captureEvents(second, ['keel.coordinator.resumed']);
    const c2 = await CoordinatorAgent.start(second, { name: 'trip', workers: [b.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 1, rerun: 1, dropped: 0 }, 'store']]); // unbook had started: it runs again
    const result = await c2.wait('trip-1');
    expect(result).toMatchObject({
      status: 'failed',
      failedTask: 'pay',
      error: { message: 'card declined' }, // an Error is kept as its name, code and message
      results: { book: 'booked' },
      compensations: [{ task: 'book', ok: true, result: 'unbooked' }],
    });
    expect(undone).toEqual([['trip-1/book/compensate', 'r1', { book: 'booked' }]]);
    // the task that failed it is failed in the result of the new node too, with its error; the task that never ran is waiting
    expect((result as { tasks: Record<string, unknown> }).tasks).toMatchObject({
      book: { state: 'completed', result: 'booked' },
      pay: { state: 'failed', error: { message: 'card declined' } },
    });
    expect(agentStoreFor(second, undefined)!.loadAll('trip').records).toEqual([]);
  });

  it('a bad store option is refused at start (ERR_INVALID_ARGUMENT naming it)', () => {
    const { node } = clockedNode(track);
    expectKeelError(thrown(() => CoordinatorAgent.start(node, { store: { kind: 'nope' } as never })), 'ERR_INVALID_ARGUMENT', 'options.store.kind');
    expectKeelError(thrown(() => CoordinatorAgent.start(node, { store: { kind: 'sqlite', path: '' } })), 'ERR_INVALID_ARGUMENT', 'options.store.path');
    expectKeelError(thrown(() => CoordinatorAgent.start(node, { store: 42 as never })), 'ERR_INVALID_ARGUMENT', 'options.store');
  });

  it('with a store a workflow must be plain data: one that is not is refused at the call (ERR_NOT_SERIALIZABLE), nothing started', async () => {
    const { node } = clockedNode(track);
    const store = new MemoryAgentStore();
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store });
    expectKeelError(thrown(() => coordinator.submit({ id: 'x', tasks: [{ id: 't', kind: 'k', payload: () => 1 }] })), 'ERR_NOT_SERIALIZABLE', 'workflow');
    expect((await coordinator.metrics()).workflows.active).toBe(0);
    expect(store.loadAll('flow').records).toEqual([]);
  });

  it('stored records that cannot be resumed (corrupt, or an aggregator this coordinator lacks) are dropped, counted, reported and deleted; the rest resume', async () => {
    const store = new MemoryAgentStore();
    store.put('flow', 'workflow', 'junk', { id: 'junk', nonsense: true });
    store.put('flow', 'workflow', 'other', 42);
    const agg = { id: 'agg', workflow: { tasks: [{ id: 'm', kind: 'merge', aggregate: true }] }, state: 'running', startedAt: 1, deadline: undefined, reassigned: 0, attempts: [], completedOrder: [], failure: undefined, compensations: [] };
    store.put('flow', 'workflow', 'agg', agg);
    store.put('flow', 'workflow', 'ok', { ...agg, id: 'ok', workflow: { tasks: [{ id: 't', kind: 'k' }] } });
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const events = captureEvents(node, ['keel.coordinator.']);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 1, rerun: 0, dropped: 3 }, 'store']]);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_dropped').map((e) => e.metadata.workflow)).toEqual(['agg', 'junk', 'other']);
    expect(events.events.find((e) => e.metadata.workflow === 'agg')!.metadata.reason).toBe('no aggregator merge in this coordinator');
    expect(await coordinator.wait('ok')).toMatchObject({ status: 'completed', results: { t: 'done' } });
    expect(store.loadAll('flow').records).toEqual([]);
  });

  it('a result that is not plain data cannot be stored: reported (store_failed), the workflow completes in memory', async () => {
    const { node } = clockedNode(track);
    const store = new MemoryAgentStore();
    const fn = (): number => 1;
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: () => fn } });
    const events = captureEvents(node, ['keel.coordinator.store_failed']);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid] });
    expect(await coordinator.run({ id: 'w', tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { t: fn } });
    expect(events.events).toHaveLength(1);
    expectKeelError(events.events[0]!.metadata.error, 'ERR_NOT_SERIALIZABLE');
    expect(store.loadAll('flow').records).toEqual([]);
  });

  it('a normal stop ends it for good: its records are deleted; a node shutdown keeps them', async () => {
    const store = new MemoryAgentStore();
    const start = async (node: Node) => {
      const p = probe(node);
      p.ctx.trapExits(true); // linked to the probe: no supervisor restarts it
      return CoordinatorAgent.start(p.ctx, { name: 'flow', store, waitForWorkersMs: Infinity });
    };
    const { node } = clockedNode(track);
    const c = await start(node);
    await c.submit({ id: 'w', tasks: [{ id: 't', kind: 'k' }] }); // no worker: it waits
    expect(store.loadAll('flow', 'workflow').records.map((r) => r.key)).toEqual(['w']);
    await node.shutdown({ timeoutMs: 1000 });
    expect(store.loadAll('flow', 'workflow').records.map((r) => r.key)).toEqual(['w']);
    const { node: next } = clockedNode(track);
    const again = await start(next);
    expect(await again.status('w')).toMatchObject({ state: 'running' });
    await GenServer.stop(next, again.pid, 'normal');
    expect(store.loadAll('flow').records).toEqual([]);
  });
});

describe('CoordinatorAgent with an agent store: a dropped workflow', () => {
  it('leaves none of its records: a later workflow of the same id does not take its task results for its own after a restart', async () => {
    const store = new MemoryAgentStore();
    // a workflow a coordinator with a 'merge' aggregator left, its task 'a' completed with 'old'
    const base = { state: 'running', startedAt: 1, deadline: undefined, reassigned: 0, attempts: [['a', 1]], completedOrder: ['a'], failure: undefined, compensations: [] };
    store.put('flow', 'workflow', 'job', { ...base, id: 'job', workflow: { id: 'job', tasks: [{ id: 'a', kind: 'k' }, { id: 'm', kind: 'merge', aggregate: true, dependsOn: ['a'] }] } });
    store.insert('flow', 'result', JSON.stringify(['job', 'a']), { result: 'old', attempts: 1 });

    // started without that aggregator: the workflow is dropped
    const { node: first } = clockedNode(track);
    const w1 = await Agent.start(first, { capabilities: [], tasks: { k: () => 'new', hang: () => new Promise(() => undefined) } });
    const events = captureEvents(first, ['keel.coordinator.resumed']);
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', store, workers: [w1.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 0, rerun: 0, dropped: 1 }, 'store']]);
    expect(store.loadAll('flow').records).toEqual([]);

    // the job is submitted again under its id: 'a' completes with 'new', 'b' is still running at the shutdown
    await c1.submit({ id: 'job', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'hang', dependsOn: ['a'] }] });
    await first.idle();
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const w2 = await Agent.start(second, { capabilities: [], tasks: { hang: () => 'done' } });
    const c2 = await CoordinatorAgent.start(second, { name: 'flow', store, workers: [w2.pid] });
    expect(await c2.wait('job')).toMatchObject({ status: 'completed', results: { a: 'new', b: 'done' } });
    expect(store.loadAll('flow').records).toEqual([]);
  });
});

describe('CoordinatorAgent with an agent store: compensations across a new node', () => {
  it('a completed task whose result could not be stored is still compensated after a new node resumes the saga, in reverse completion order, each once', async () => {
    const store = new MemoryAgentStore();
    const { node: first } = clockedNode(track);
    const undoStarted = deferred<void>();
    const fn = (): number => 1; // b's result: not plain data, its record cannot be written (store_failed)
    const w1 = await Agent.start(first, {
      capabilities: [],
      tasks: {
        a: () => 'A',
        b: () => fn,
        c: () => 'C',
        boom: () => {
          throw new Error('boom');
        },
        undo: (t) => (t.payload === 'c' ? 'undid c' : (undoStarted.resolve(), new Promise(() => undefined))), // b's undo hangs
      },
    });
    const failed = captureEvents(first, ['keel.coordinator.store_failed']);
    const c1 = await CoordinatorAgent.start(first, { name: 'saga', store, workers: [w1.pid] });
    await c1.submit({
      id: 's',
      tasks: [
        { id: 'a', kind: 'a', compensate: { kind: 'undo', payload: 'a' } },
        { id: 'b', kind: 'b', dependsOn: ['a'], compensate: { kind: 'undo', payload: 'b' } },
        { id: 'c', kind: 'c', dependsOn: ['b'], compensate: { kind: 'undo', payload: 'c' } },
        { id: 'boom', kind: 'boom', dependsOn: ['c'] },
      ],
    });
    await undoStarted.promise;
    expect(failed.events).toHaveLength(1); // b's result
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const undone: unknown[] = [];
    const w2 = await Agent.start(second, { capabilities: [], tasks: { undo: (t) => (undone.push(t.payload), `undid ${String(t.payload)}`) } });
    const c2 = await CoordinatorAgent.start(second, { name: 'saga', store, workers: [w2.pid] });
    expect(await c2.wait('s')).toMatchObject({
      status: 'failed',
      failedTask: 'boom',
      compensations: [
        { task: 'c', ok: true, result: 'undid c' },
        { task: 'b', ok: true, result: 'undid b' },
        { task: 'a', ok: true, result: 'undid a' },
      ],
    });
    expect(undone).toEqual(['b', 'a']);
    expect(store.loadAll('saga').records).toEqual([]);
  });
});

describe('CoordinatorAgent with a SQLite store: a workflow row that cannot be decoded', () => {
  it('is dropped once: reported (workflow_dropped) and deleted, not counted again at every start', async () => {
    const file = tmpfile();
    new SqliteAgentStore(file).close();
    const db = new Database(file);
    db.prepare("INSERT INTO agent_records VALUES ('flow', 'workflow', 'bad', x'00ff13')").run();
    db.close();
    const first = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const events = captureEvents(first, ['keel.coordinator.resumed', 'keel.coordinator.workflow_dropped']);
    await CoordinatorAgent.start(first, { name: 'flow' });
    expect(resumedOf(events)).toEqual([[{ workflows: 0, rerun: 0, dropped: 1 }, 'store']]);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_dropped').map((e) => e.metadata.workflow)).toEqual(['bad']);
    await first.shutdown({ timeoutMs: 1000 });
    const check = new Database(file, { readonly: true });
    expect(check.prepare('SELECT count(*) AS n FROM agent_records').get()).toEqual({ n: 0 });
    check.close();

    const second = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const again = captureEvents(second, ['keel.coordinator.resumed']);
    await CoordinatorAgent.start(second, { name: 'flow' });
    expect(resumedOf(again)).toEqual([[{ workflows: 0, rerun: 0, dropped: 0 }, 'store']]);
  });
});

describe('CoordinatorAgent with an agent store: a stored record whose resume would throw', () => {

  it('is dropped as a corrupt one is (logged once, workflow_dropped, deleted) or resumed, never failing the start; a result that throws when read runs its task again', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { logger });
    const inner = new MemoryAgentStore();
    const base = { state: 'running', startedAt: 1, deadline: undefined, reassigned: 0, attempts: [], completedOrder: [], failure: undefined, compensations: [] };
    const one = { tasks: [{ id: 't', kind: 'k' }] };
    // plain data, but a deadline no timer takes: its resume threw (sendAfter(Infinity))
    inner.put('flow', 'workflow', 'forever', { ...base, id: 'forever', workflow: one, deadline: Infinity });
    // started far in the future, stuck check far after that: the check's due time overflowed to Infinity
    inner.put('flow', 'workflow', 'far', { ...base, id: 'far', startedAt: Number.MAX_VALUE, workflow: { ...one, stuckAfterMs: Number.MAX_VALUE } });
    inner.put('flow', 'workflow', 'getter', { ...base, id: 'getter', workflow: one });
    inner.put('flow', 'workflow', 'ok', { ...base, id: 'ok', workflow: { tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] }, attempts: [['a', 1]], completedOrder: ['a'] });
    inner.insert('flow', 'result', JSON.stringify(['ok', 'a']), { result: 'old', attempts: 1 });
    const fail = (): never => {
      throw new Error('EIO: the record cannot be read');
    };
    // as a custom store may answer them: 'getter' with a state whose getter throws, ok/a's result likewise
    const answered = (key: string, value: unknown): unknown =>
      key === 'getter' ? Object.defineProperty({ ...(value as object) }, 'state', { get: fail, enumerable: true })
        : key === JSON.stringify(['ok', 'a']) ? Object.defineProperty({ attempts: 1 }, 'result', { get: fail, enumerable: true })
          : value;
    const store = loadingStore(inner, (c, k) => {
      const load = inner.loadAll(c, k);
      return { ...load, records: load.records.map((r) => ({ ...r, value: answered(r.key, r.value) })) };
    });
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const events = captureEvents(node, ['keel.coordinator.resumed', 'keel.coordinator.workflow_dropped']);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 2, rerun: 1, dropped: 2 }, 'store']]);
    const why = 'reading it threw Error: EIO: the record cannot be read';
    expect(events.events.filter((e) => e.event === 'keel.coordinator.workflow_dropped').map((e) => [e.metadata.workflow, e.metadata.reason])).toEqual([
      ['forever', 'deadline is not a time'],
      ['getter', why],
    ]);
    expect(logger.errors).toEqual([
      ['coordinator flow: stored workflow forever cannot be resumed (deadline is not a time); its records are deleted'],
      [`coordinator flow: stored workflow getter cannot be resumed (${why}); its records are deleted`],
    ]);
    expect(await coordinator.wait('ok')).toMatchObject({ status: 'completed', results: { a: 'done', b: 'done' } });
    expect(await coordinator.wait('far')).toMatchObject({ status: 'completed', results: { t: 'done' } });
    expect(inner.loadAll('flow').records).toEqual([]);
  });


  /** A store holding the workflows wf-1 and wf-2 (one task each, of kind k, payload 'stored 1' / 'stored 2'), written by a coordinator whose node has shut down. */
  async function twoStored(): Promise<MemoryAgentStore> {
    const inner = new MemoryAgentStore();
    const { node } = clockedNode(track);
    const first = await CoordinatorAgent.start(node, { name: 'flow', store: inner, waitForWorkersMs: Infinity });
    expect(await first.submit({ tasks: [{ id: 't', kind: 'k', payload: 'stored 1' }] })).toEqual({ id: 'wf-1' });
    expect(await first.submit({ tasks: [{ id: 't', kind: 'k', payload: 'stored 2' }] })).toEqual({ id: 'wf-2' });
    await node.shutdown({ timeoutMs: 1000 });
    expect(inner.loadAll('flow').records.map((r) => r.key)).toEqual(['wf-1', 'wf-2']);
    return inner;
  }

  const started = (node: Node, store: AgentStore, workers: Pid[]) => CoordinatorAgent.start(node, { name: 'flow', store, workers, waitForWorkersMs: Infinity });

  it('a normal stop of a coordinator that could not read its store at the start deletes none of the workflows it never loaded: a later start resumes every one', async () => {
    const inner = await twoStored();
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const events = captureEvents(node, ['keel.coordinator.resumed', 'keel.coordinator.store_failed']);
    const locked = await started(node, lockedAtFirst(inner, 1), [worker.pid]);
    expect(events.events.map((e) => e.event)).toEqual(['keel.coordinator.store_failed', 'keel.coordinator.resumed']);
    expect((await locked.metrics()).workflows.active).toBe(0);
    await GenServer.stop(node, locked.pid); // a normal stop: it ends for good
    expect(inner.loadAll('flow').records.map((r) => r.key)).toEqual(['wf-1', 'wf-2']);
    // started again on the store, readable now: every workflow resumes and completes
    events.events.length = 0;
    const again = await started(node, lockedAtFirst(inner, 0), [worker.pid]);
    expect(resumedOf(events)).toEqual([[{ workflows: 2, rerun: 0, dropped: 0 }, 'store']]);
    expect(await again.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'stored 1' } });
    expect(await again.wait('wf-2')).toMatchObject({ status: 'completed', results: { t: 'stored 2' } });
    expect(inner.loadAll('flow').records).toEqual([]);
  });

  it('until it reads its store, a coordinator runs new workflows in memory only (a stored one of the same id untouched); it reads the store before each new workflow, and a stored one whose id was taken meanwhile stays for a later start', async () => {
    const inner = await twoStored();
    const stored = inner.loadAll('flow').records;
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    // unreadable at the start and again at the first submit
    const coordinator = await started(node, lockedAtFirst(inner, 2), [worker.pid]);
    const events = captureEvents(node, ['keel.coordinator.resumed']);
    expect(await coordinator.submit({ tasks: [{ id: 't', kind: 'k', payload: 'new 1' }] })).toEqual({ id: 'wf-1' });
    expect(await coordinator.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'new 1' } });
    expect(inner.loadAll('flow').records).toEqual(stored); // neither written over nor deleted
    expect(events.events).toEqual([]);
    // readable now: read before this workflow; wf-2 resumes, the stored wf-1 (its id taken) is left, the new one is wf-3
    expect(await coordinator.submit({ tasks: [{ id: 't', kind: 'k', payload: 'new 3' }] })).toEqual({ id: 'wf-3' });
    expect(resumedOf(events)).toEqual([[{ workflows: 1, rerun: 0, dropped: 0 }, 'store']]);
    expect(await coordinator.wait('wf-2')).toMatchObject({ status: 'completed', results: { t: 'stored 2' } });
    expect(await coordinator.wait('wf-3')).toMatchObject({ status: 'completed', results: { t: 'new 3' } });
    expectKeelError(await failure(() => coordinator.submit({ id: 'wf-1', tasks: [{ id: 't', kind: 'k' }] })), 'ERR_INVALID_ARGUMENT', 'workflow.id'); // the stored one's
    expect(await coordinator.submit({ id: 'held', tasks: [{ id: 't', kind: 'nobody' }] })).toEqual({ id: 'held' }); // waits for a worker
    expect(inner.loadAll('flow', 'workflow').records.map((r) => r.key)).toEqual(['held', 'wf-1']);
    await GenServer.stop(node, coordinator.pid); // its own records go, not the stored wf-1
    expect(inner.loadAll('flow').records).toEqual([stored[0]]);
    const later = await started(node, lockedAtFirst(inner, 0), [worker.pid]);
    expect(await later.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'stored 1' } });
    expect(inner.loadAll('flow').records).toEqual([]);
  });

  it('a coordinator that could not read its store at the start reads it again on its own, a second later, then twice as late each time: its stored workflows go on with no new one submitted', async () => {
    const inner = await twoStored();
    const { node, clock } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const events = captureEvents(node, ['keel.coordinator.resumed', 'keel.coordinator.store_failed']);
    const store = lockedAtFirst(inner, 2); // unreadable at the start and at the first retry
    const coordinator = await started(node, store, [worker.pid]);
    expect(store.loads).toBe(1);
    await advance(node, clock, 999);
    expect(store.loads).toBe(1);
    await advance(node, clock, 1);
    expect(store.loads).toBe(2); // the first retry, a second after the start: unreadable still
    await advance(node, clock, 1999);
    expect(store.loads).toBe(2);
    await advance(node, clock, 1);
    expect(store.loads).toBe(6); // the second, two seconds later: read (its workflows, their results, task counts and compensations)
    expect(resumedOf(events)).toEqual([
      [{ workflows: 0, rerun: 0, dropped: 0 }, 'store'],
      [{ workflows: 2, rerun: 0, dropped: 0 }, 'store'],
    ]);
    expect(events.events.filter((e) => e.event === 'keel.coordinator.store_failed')).toHaveLength(2);
    expect(await coordinator.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'stored 1' } });
    expect(await coordinator.wait('wf-2')).toMatchObject({ status: 'completed', results: { t: 'stored 2' } });
    await advance(node, clock, 120_000);
    expect(store.loads).toBe(6); // read for good: no more retries
  });

  it('a coordinator that could not read its store at the start, killed and restarted in its node, reads it at the restart', async () => {
    const inner = await twoStored();
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const coordinator = await started(node, lockedAtFirst(inner, 1), [worker.pid]);
    const events = captureEvents(node, ['keel.coordinator.resumed']);
    await exitAndWait(node, coordinator.pid); // keel.agents restarts it under 'flow'
    expect(resumedOf(events)).toEqual([[{ workflows: 0, rerun: 0, dropped: 0 }, 'table'], [{ workflows: 2, rerun: 0, dropped: 0 }, 'store']]);
    expect(await coordinator.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'stored 1' } });
    expect(await coordinator.wait('wf-2')).toMatchObject({ status: 'completed', results: { t: 'stored 2' } });
  });

  it('a coordinator killed while its init awaits its workers leaves no half-built table: a later start under the name reads its store', async () => {
    const inner = await twoStored();
    const { node } = clockedNode(track);
    const silent = probe(node); // never answers its status: the init waits (on the test clock)
    const first = started(node, inner, [silent]).then(() => 'started', (e: unknown) => e);
    await silent.receive(); // the status request: the init is waiting for it, its table made
    expect(componentStates(node)).toContain('flow');
    await exitAndWait(node, node.registry.whereis('flow')!);
    expectKeelError(await first, 'ERR_START_FAILED', 'killed');
    expect(componentStates(node)).not.toContain('flow');
    const events = captureEvents(node, ['keel.coordinator.resumed']);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const again = await started(node, inner, [worker.pid]);
    expect(resumedOf(events)).toEqual([[{ workflows: 2, rerun: 0, dropped: 0 }, 'store']]);
    expect(await again.wait('wf-1')).toMatchObject({ status: 'completed', results: { t: 'stored 1' } });
    expect(await again.wait('wf-2')).toMatchObject({ status: 'completed', results: { t: 'stored 2' } });
  });

  it('a store whose loadAll throws, or answers something that is not a load, cannot be read: logged and reported (store_failed); the coordinator starts with no stored workflow', async () => {
    const loads: [string, () => AgentStoreLoad][] = [
      ['throws', () => {
        throw new Error('SQLITE_IOERR: disk I/O error');
      }],
      ['not a load', () => ({ records: 42, corrupt: [] }) as unknown as AgentStoreLoad],
    ];
    for (const [what, load] of loads) {
      const logger = fakeLogger();
      const { node } = clockedNode(track, { logger });
      const events = captureEvents(node, ['keel.coordinator.resumed', 'keel.coordinator.store_failed']);
      const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store: loadingStore(new MemoryAgentStore(), load) });
      expect([what, events.events.map((e) => e.event)]).toEqual([what, ['keel.coordinator.store_failed', 'keel.coordinator.resumed']]);
      expect(resumedOf(events)).toEqual([[{ workflows: 0, rerun: 0, dropped: 0 }, 'store']]);
      expect(logger.errors).toHaveLength(1);
      expect((await coordinator.metrics()).workflows.active).toBe(0);
    }
  });
});

describe('CoordinatorAgent with an agent store: a workflow its caller changes after submit', () => {
  // found in review: the coordinator kept the caller's workflow object and wrote it to the store at
  // each transition, so a task the caller pushed after submit (a duplicate id) went into the record;
  // a new node then dropped the workflow as invalid, though the run itself never had that task
  it('the stored record is the workflow as accepted: a new node resumes it', async () => {
    const file = tmpfile();
    const first = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const slowStarted = deferred<void>();
    const gate = deferred<string>();
    const a = await Agent.start(first, { capabilities: [], tasks: { k: () => gate.promise, slow: () => (slowStarted.resolve(), new Promise(() => undefined)) } });
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', workers: [a.pid] });
    const workflow = { id: 'w', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'slow', dependsOn: ['a'] }] };
    await c1.submit(workflow);
    workflow.tasks.push({ id: 'a', kind: 'k' }); // the caller's object, changed after the coordinator took it
    gate.resolve('a-done');
    await slowStarted.promise;
    await first.shutdown({ timeoutMs: 1000 });

    const second = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const b = await Agent.start(second, { capabilities: [], tasks: { slow: (t) => `b-done ${String(t.inputs.a)}` } });
    const events = captureEvents(second, ['keel.coordinator.resumed']);
    const c2 = await CoordinatorAgent.start(second, { name: 'flow', workers: [b.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 1, rerun: 1, dropped: 0 }, 'store']]);
    expect(await c2.wait('w')).toMatchObject({ status: 'completed', results: { a: 'a-done', b: 'b-done a-done' } });
  });
});

describe('CoordinatorAgent with an agent store: the size of its writes', () => {
  it('a workflow of many tasks writes its whole record once: each write after the start is of one task, so its writes grow with its task count, not its square', async () => {
    const inner = new MemoryAgentStore();
    const sizes: [string, number][] = []; // kind, size of the value written
    const store: AgentStore = {
      ...loadingStore(inner, (c, k) => inner.loadAll(c, k)),
      put: (component, kind, key, value) => {
        sizes.push([kind, JSON.stringify(value).length]);
        inner.put(component, kind, key, value);
      },
      insert: (component, kind, key, value) => {
        sizes.push([kind, JSON.stringify(value).length]);
        return inner.insert(component, kind, key, value);
      },
    };
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const coordinator = await CoordinatorAgent.start(node, { name: 'chain', store, workers: [worker.pid] });
    const n = 300;
    const tasks = Array.from({ length: n }, (_, i) => ({ id: `t${i}`, kind: 'k', payload: i, ...(i > 0 ? { dependsOn: [`t${i - 1}`] } : {}) }));
    const result = await coordinator.run({ id: 'long', tasks });
    expect(result).toMatchObject({ status: 'completed' });
    expect((result as { results: Record<string, unknown> }).results.t299).toBe(299);
    // the workflow's record at its start, then per task: its counts when it starts, its result when it completes
    expect(sizes.map(([kind]) => kind)).toEqual(['workflow', ...Array.from({ length: n }, () => ['task', 'result']).flat()]);
    expect(sizes[0]![1]).toBeGreaterThan(n * 20); // the definition: every task
    expect(Math.max(...sizes.slice(1).map(([, size]) => size))).toBeLessThan(100);
    expect(inner.loadAll('chain').records).toEqual([]); // finished: its records are gone
  });

  it('a new node resumes a saga in its recorded completion order (each result keeps its place): the compensations run in reverse of it', async () => {
    const store = new MemoryAgentStore();
    const { node: first } = clockedNode(track);
    const releaseA = deferred<void>();
    const cStarted = deferred<void>();
    const w1 = await Agent.start(first, {
      capabilities: [],
      tasks: {
        a: async () => (await releaseA.promise, 'A'), // a completes after b
        b: () => (releaseA.resolve(), 'B'),
        c: () => (cStarted.resolve(), new Promise(() => undefined)),
      },
    });
    const c1 = await CoordinatorAgent.start(first, { name: 'saga', store, workers: [w1.pid], maxTasksPerWorker: 2 });
    await c1.submit({
      id: 's',
      tasks: [
        { id: 'a', kind: 'a', compensate: { kind: 'undo', payload: 'a' } },
        { id: 'b', kind: 'b', compensate: { kind: 'undo', payload: 'b' } },
        { id: 'c', kind: 'c', dependsOn: ['a', 'b'] },
      ],
    });
    await cStarted.promise;
    // b completed first; the workflow's record (written at its start) lists no completed task
    expect(Object.fromEntries(store.loadAll('saga', 'result').records.map((r) => [r.key, (r.value as { seq: number }).seq]))).toEqual({ '["s","a"]': 1, '["s","b"]': 0 });
    expect(store.loadAll('saga', 'workflow').records.map((r) => (r.value as { completedOrder: unknown }).completedOrder)).toEqual([[]]);
    await first.shutdown({ timeoutMs: 1000 });

    const { node: second } = clockedNode(track);
    const undone: unknown[] = [];
    const w2 = await Agent.start(second, {
      capabilities: [],
      tasks: {
        c: () => {
          throw new Error('c failed');
        },
        undo: (t) => (undone.push(t.payload), `undid ${String(t.payload)}`),
      },
    });
    const c2 = await CoordinatorAgent.start(second, { name: 'saga', store, workers: [w2.pid] });
    expect(await c2.wait('s')).toMatchObject({
      status: 'failed',
      failedTask: 'c',
      compensations: [
        { task: 'a', ok: true, result: 'undid a' },
        { task: 'b', ok: true, result: 'undid b' },
      ],
    });
    expect(undone).toEqual(['a', 'b']);
    expect(store.loadAll('saga').records).toEqual([]);
  });
});

describe('CoordinatorAgent with an agent store: task and compensation records that cannot be used', () => {
  it('add nothing (the workflow record counts), never fail the start; those of a workflow not stored are deleted', async () => {
    const { node } = clockedNode(track);
    const inner = new MemoryAgentStore();
    const base = { state: 'running', startedAt: 1, deadline: undefined, reassigned: 2, attempts: [['a', 1]], completedOrder: [], failure: undefined, compensations: [] };
    inner.put('flow', 'workflow', 'w', { ...base, id: 'w', workflow: { tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k' }, { id: 'c', kind: 'k' }] } });
    inner.put('flow', 'task', JSON.stringify(['w', 'a']), { attempts: Number.NaN, errors: -1, lost: '3', reassigned: 1e300 }); // no count: 0 each
    inner.put('flow', 'task', JSON.stringify(['w', 'b']), null);
    inner.put('flow', 'task', JSON.stringify(['w', 'c']), { attempts: 4, errors: 0, lost: 1, reassigned: 5 }); // read by a getter that throws
    inner.put('flow', 'undo', JSON.stringify(['w', 0]), { attempts: 1, outcome: { task: 'a', ok: 'yes' } }); // not compensating: unused
    inner.put('flow', 'task', JSON.stringify(['gone', 'a']), { attempts: 1, errors: 0, lost: 0, reassigned: 0 }); // of no stored workflow
    inner.put('flow', 'undo', JSON.stringify(['gone', 0]), { attempts: 1 });
    inner.put('flow', 'task', 'not json', { attempts: 1 });
    const store = loadingStore(inner, (c, k) => {
      const load = inner.loadAll(c, k);
      const answered = (key: string, value: unknown): unknown =>
        key === JSON.stringify(['w', 'c'])
          ? Object.defineProperty({}, 'attempts', {
            get: () => {
              throw new Error('EIO');
            },
            enumerable: true,
          })
          : value;
      return { ...load, records: load.records.map((r) => ({ ...r, value: answered(r.key, r.value) })) };
    });
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const events = captureEvents(node, ['keel.coordinator.resumed']);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid] });
    expect(resumedOf(events)).toEqual([[{ workflows: 1, rerun: 1, dropped: 0 }, 'store']]); // a, started once by its workflow record
    expect(await coordinator.wait('w')).toMatchObject({
      status: 'completed',
      results: { a: 'done', b: 'done', c: 'done' },
      tasks: { a: { attempts: 2 }, b: { attempts: 1 }, c: { attempts: 1 } },
    });
    expect(inner.loadAll('flow').records.map((r) => [r.kind, r.key])).toEqual([]); // the unusable ones deleted, the workflow's with it at its end
  });
});
