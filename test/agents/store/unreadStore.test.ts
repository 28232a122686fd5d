// Components whose agent store cannot be read at their start (a locked database), read later: a
// coordinator asked about a stored workflow before its retry has read it, a schedule removed at the
// moment the store becomes readable (not resumed from its own record), and a scheduler restarted
// with its store still unread, one of its agents dead meanwhile (dropped once).
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { scheduleKey } from '../../../src/agents/store/scheduleRecords.js';
import { Agent, CoordinatorAgent, type Node } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { advance, clockedNode, exitAndWait, useNodes } from '../../support.js';
import { lockedAtFirst } from './fakeStores.js';

const track = useNodes();
const START = 1_000_000;

function recorder(node: Node, name: string): { at: unknown[] } {
  const at: unknown[] = [];
  node.spawn(() => (m) => {
    at.push([node.clock.now(), m]);
  }, { name });
  return { at };
}

/**
 * A node with w1 recording what it gets, and a scheduler 'ticks' on a store over `inner` whose first
 * `failures` reads throw (`stored` put in the store before the start, each a w1 schedule due at `dueAt`).
 */
async function started(failures: number, stored: readonly string[] = [], dueAt = START + 100) {
  const { node, clock } = clockedNode(track);
  const inner = new MemoryAgentStore();
  for (const id of stored) inner.put('ticks', 'schedule', scheduleKey('w1', id), { agent: 'w1', id, intervalMs: 100, message: id, jitter: 0, missed: 'skip', nextDueAt: dueAt });
  const w1 = recorder(node, 'w1');
  const store = lockedAtFirst(inner, failures);
  const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
  return { node, clock, inner, w1, store, scheduler };
}

describe('CoordinatorAgent asked about a stored workflow it has not read yet', () => {
  it('cancel reads the store first: the stored workflow is cancelled (its dispatched task with it), not resumed again by a retry, and its records go', async () => {
    const inner = new MemoryAgentStore();
    const { node: first } = clockedNode(track);
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', store: inner, waitForWorkersMs: Infinity });
    expect(await c1.submit({ id: 'stored', tasks: [{ id: 't', kind: 'k', payload: 'stored' }] })).toEqual({ id: 'stored' });
    await first.shutdown({ timeoutMs: 1000 });
    const { node, clock } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const store = lockedAtFirst(inner, 1); // unreadable at the start only
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid], waitForWorkersMs: Infinity });
    expect(await coordinator.cancel('stored')).toMatchObject({ cancelled: true, notified: [{ worker: worker.pid, taskId: 'stored/t', outcome: { ok: true } }] }); // resumed at the read, its task dispatched
    expect(store.loads).toBe(5); // the start's, then its workflows, their results, task counts and compensations
    expect(await coordinator.status('stored')).toMatchObject({ id: 'stored', state: 'cancelled' });
    await advance(node, clock, 5000); // past the retries
    await node.idle();
    expect(await coordinator.wait('stored')).toMatchObject({ status: 'cancelled' });
    expect(store.loads).toBe(5); // read for good: no retry
    expect(inner.loadAll('flow').records).toEqual([]);
  });

  it('status and wait find the stored workflow', async () => {
    const inner = new MemoryAgentStore();
    const { node: first } = clockedNode(track);
    const c1 = await CoordinatorAgent.start(first, { name: 'flow', store: inner, waitForWorkersMs: Infinity });
    expect(await c1.submit({ id: 'stored', tasks: [{ id: 't', kind: 'k', payload: 'stored' }] })).toEqual({ id: 'stored' });
    await first.shutdown({ timeoutMs: 1000 });
    const { node } = clockedNode(track);
    const worker = await Agent.start(node, { capabilities: [], tasks: { k: (t) => t.payload } });
    const store = lockedAtFirst(inner, 1);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', store, workers: [worker.pid], waitForWorkersMs: Infinity });
    expect(await coordinator.status('stored')).not.toEqual({ error: 'not_found' });
    expect(await coordinator.wait('stored')).toMatchObject({ status: 'completed', results: { t: 'stored' } });
  });
});

describe('AgentScheduler whose store becomes readable at a removal', () => {
  it('an unregistered schedule stays unregistered: not resumed from its own record, which is deleted', async () => {
    // unreadable at the start and at the registration's write, readable at the unregistration's
    const { node, clock, inner, w1, store, scheduler } = await started(2);
    expect(await scheduler.registerPeriodic('w1', 'beat', 100, 'one')).toBe('ok');
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w1', 'beat')]);
    expect(await scheduler.unregister('w1', 'beat')).toBe('ok');
    expect(store.loads).toBe(3);
    expect(inner.loadAll('ticks').records).toEqual([]);
    expect(await scheduler.list('w1')).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0, resumed: 0, storeFailures: 2 });
    await advance(node, clock, 300);
    expect(w1.at).toEqual([]);
  });

  it('a schedule replaced by a new registration is replaced: the old one is not resumed beside it', async () => {
    const { node, clock, inner, w1, store, scheduler } = await started(2);
    expect(await scheduler.registerPeriodic('w1', 'beat', 100, 'one')).toBe('ok');
    expect(await scheduler.registerPeriodic('w1', 'beat', 250, 'two')).toBe('replaced');
    expect(store.loads).toBe(3);
    expect(await scheduler.stats()).toMatchObject({ agents: 1, schedules: 1, resumed: 0 });
    expect(inner.loadAll('ticks').records.map((r) => [r.key, (r.value as { message: unknown }).message])).toEqual([[scheduleKey('w1', 'beat'), 'two']]);
    await advance(node, clock, 300);
    expect(w1.at).toEqual([[START + 250, 'two']]);
  });

  it('unregisterAgent removes the stored schedules of the agent too when the store is read at it: none survives it', async () => {
    const { node, clock, inner, w1, store, scheduler } = await started(2, ['a', 'b']);
    expect(await scheduler.registerPeriodic('w1', 'c', 100, 'c')).toBe('ok');
    expect(await scheduler.unregisterAgent('w1')).toBe(3);
    expect(store.loads).toBe(3);
    expect(await scheduler.list('w1')).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0 });
    expect(inner.loadAll('ticks').records).toEqual([]);
    await advance(node, clock, 300);
    expect(w1.at).toEqual([]);
  });

  it('unregister of a stored schedule the scheduler could not read at its start reads the store and removes it: it never fires', async () => {
    const { node, clock, inner, w1, store, scheduler } = await started(1, ['a'], START + 2000);
    expect(await scheduler.unregister('w1', 'a')).toBe('ok');
    expect(store.loads).toBe(2);
    expect(inner.loadAll('ticks').records).toEqual([]);
    await advance(node, clock, 3000); // past the stored due time and the retries
    expect(w1.at).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0, resumed: 1 });
  });
});

describe('AgentScheduler restarted with an unread store', () => {
  it('a schedule of an agent that died meanwhile is dropped once: one event, counted once', async () => {
    const { node } = clockedNode(track);
    const inner = new MemoryAgentStore();
    const gone = node.spawn(() => () => undefined, { name: 'w1' });
    const store = lockedAtFirst(inner, 2); // unreadable at the start and at the registration's write
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    expect(await scheduler.registerPeriodic('w1', 'beat', 100, 'one')).toBe('ok');
    const events = captureEvents(node, ['keel.agent_scheduler.dropped', 'keel.agent_scheduler.resumed']);
    node.exit(gone, 'kill'); // dies in the same turn as the scheduler: its Down is never handled
    await exitAndWait(node, scheduler.pid);
    expect(events.events.filter((e) => e.event === 'keel.agent_scheduler.dropped').map((e) => e.metadata.reason)).toEqual(['noproc']);
    expect(await scheduler.stats()).toMatchObject({ schedules: 0, dropped: 1, storeFailures: 2 });
    expect(inner.loadAll('ticks').records).toEqual([]);
  });
});
