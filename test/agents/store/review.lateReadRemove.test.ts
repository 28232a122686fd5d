// Review: a schedule registered while the scheduler's store could not be read, then removed at the
// moment the store can be read again. The read that the removal's store write runs first must not
// find the schedule's own record (written when it was registered) and resume it: unregistered, it
// must stop firing.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { scheduleKey } from '../../../src/agents/store/scheduleRecords.js';
import type { Node } from '../../../src/index.js';
import { advance, clockedNode, useNodes } from '../../support.js';
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
