// Review: a scheduler restarted in its node while its store is unread since the start, one of its
// schedules by name of an agent that died meanwhile.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, exitAndWait, useNodes } from '../../support.js';
import { lockedAtFirst } from './fakeStores.js';

const track = useNodes();

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
