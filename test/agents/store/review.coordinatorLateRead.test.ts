// Review: a coordinator whose store could not be read at its start, asked about a stored workflow
// once the store can be read again but before its retry has read it.
import { describe, expect, it } from 'vitest';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { Agent, CoordinatorAgent } from '../../../src/index.js';
import { advance, clockedNode, useNodes } from '../../support.js';
import { lockedAtFirst } from './fakeStores.js';

const track = useNodes();

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
    expect(store.loads).toBe(3); // the start's, then its workflows and their results
    expect(await coordinator.status('stored')).toMatchObject({ id: 'stored', state: 'cancelled' });
    await advance(node, clock, 5000); // past the retries
    await node.idle();
    expect(await coordinator.wait('stored')).toMatchObject({ status: 'cancelled' });
    expect(store.loads).toBe(3); // read for good: no retry
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
