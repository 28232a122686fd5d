// Hostile records in a custom AgentStore: a record whose fields can be read once only (a getter that throws on
// its second read). The promise: a record that throws when it is read is corrupt or resumed, never a
// failed start, and never a crash of a late read (which would leave the rest of the store unread).
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import type { AgentStoreRecord } from '../../../src/agents/store/AgentStore.js';
import { scheduleKey } from '../../../src/agents/store/scheduleRecords.js';
import { Agent, CoordinatorAgent, GenServer, type Node } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { advance, clockedNode, useNodes } from '../../support.js';
import { loadingStore } from './fakeStores.js';

const track = useNodes();
const START = 1_000_000;

/** `record` with a key that can be read once: its second read throws. */
function keyReadOnce(record: AgentStoreRecord): AgentStoreRecord {
  let reads = 0;
  return {
    component: record.component,
    kind: record.kind,
    get key(): string {
      if (++reads > 1) throw new Error('EIO: the record cannot be read again');
      return record.key;
    },
    value: record.value,
  };
}

function recorder(node: Node, name: string): { at: number[] } {
  const at: number[] = [];
  node.spawn(() => () => {
    at.push(node.clock.now());
  }, { name });
  return { at };
}

const schedule = (agent: string) => ({ agent, id: 'beat', intervalMs: 100, message: agent, jitter: 0, missed: 'skip', nextDueAt: START + 100 });

describe('AgentScheduler, a stored record whose key throws on its second read', () => {
  it('starts: the record of an agent that is not alive is dropped (noproc) and deleted, the other resumes', async () => {
    const { node, clock } = clockedNode(track);
    const inner = new MemoryAgentStore();
    inner.put('ticks', 'schedule', scheduleKey('gone', 'beat'), schedule('gone'));
    inner.put('ticks', 'schedule', scheduleKey('w1', 'beat'), schedule('w1'));
    const store = loadingStore(inner, (c, k) => {
      const load = inner.loadAll(c, k);
      return { ...load, records: load.records.map(keyReadOnce) };
    });
    const w1 = recorder(node, 'w1');
    const events = captureEvents(node, ['keel.agent_scheduler.resumed', 'keel.agent_scheduler.dropped']);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.dropped', measurements: {}, metadata: { scheduler: 'ticks', agent: 'gone', id: 'beat', reason: 'noproc' } },
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 1, dropped: 1, corrupt: 0 }, metadata: { scheduler: 'ticks', from: 'store' } },
    ]);
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w1', 'beat')]);
    await advance(node, clock, 100);
    expect(w1.at).toEqual([START + 100]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, resumed: 1, dropped: 1, corrupt: 0, storeFailures: 0 });
  });

  it('read late (unreadable at the start): the retry does not crash the scheduler, every record is read, and a normal stop then deletes only what it read', async () => {
    const { node, clock } = clockedNode(track);
    const inner = new MemoryAgentStore();
    // 'gone' first: the late read reaches it before w1's and w2's
    for (const agent of ['gone', 'w1', 'w2']) inner.put('ticks', 'schedule', scheduleKey(agent, 'beat'), schedule(agent));
    let loads = 0;
    const store = loadingStore(inner, (c, k) => {
      if (++loads === 1) throw new Error('SQLITE_BUSY: database is locked');
      const load = inner.loadAll(c, k);
      return { ...load, records: load.records.map(keyReadOnce) };
    });
    const w1 = recorder(node, 'w1');
    const w2 = recorder(node, 'w2');
    const events = captureEvents(node, ['keel.agent_scheduler.resumed']);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    const first = scheduler.pid;
    await advance(node, clock, 1000); // the first retry reads it
    expect(scheduler.pid).toEqual(first); // not crashed (and restarted from its table)
    expect(events.events.map((e) => [e.measurements, e.metadata.from])).toEqual([
      [{ schedules: 0, dropped: 0, corrupt: 0 }, 'store'],
      [{ schedules: 2, dropped: 1, corrupt: 0 }, 'store'],
    ]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 2, resumed: 2, dropped: 1 });
    await advance(node, clock, 100);
    // the due time START+100 passed unread: it fires once at the read, then on its aligned times
    expect(w1.at).toEqual([START + 1000, START + 1100]);
    expect(w2.at).toEqual([START + 1000, START + 1100]);
    await GenServer.stop(node, scheduler.pid);
    expect(inner.loadAll('ticks').records).toEqual([]);
  });
});

describe('CoordinatorAgent, a stored workflow whose task list throws when it is read once more', () => {
  it('starts: the workflow is resumed from what was read, or dropped, never a failed start', async () => {
    const { node } = clockedNode(track);
    const inner = new MemoryAgentStore();
    const first = await CoordinatorAgent.start(node, { name: 'flow', store: inner, waitForWorkersMs: Infinity });
    expect(await first.submit({ id: 'hostile', tasks: [{ id: 't', kind: 'k', payload: 'h' }] })).toEqual({ id: 'hostile' });
    expect(await first.submit({ id: 'plain', tasks: [{ id: 't', kind: 'k', payload: 'p' }] })).toEqual({ id: 'plain' });
    await node.shutdown({ timeoutMs: 1000 });
    // the workflow's `tasks` reads as it should twice (what the record's check reads), then throws
    const withTasksReadTwice = (value: { workflow: { tasks: unknown } }): unknown => {
      let reads = 0;
      const { tasks, ...rest } = value.workflow;
      const workflow = Object.defineProperty({ ...rest }, 'tasks', {
        enumerable: true,
        get: () => {
          if (++reads > 2) throw new Error('EIO: the record cannot be read again');
          return tasks;
        },
      });
      return { ...value, workflow };
    };
    const store = loadingStore(inner, (c, k) => {
      const load = inner.loadAll(c, k);
      return { ...load, records: load.records.map((r) => (r.key === 'hostile' ? { ...r, value: withTasksReadTwice(r.value as never) } : r)) };
    });
    const { node: second } = clockedNode(track);
    const worker = await Agent.start(second, { capabilities: [], tasks: { k: (t) => t.payload } });
    const events = captureEvents(second, ['keel.coordinator.resumed', 'keel.coordinator.workflow_dropped']);
    const coordinator = await CoordinatorAgent.start(second, { name: 'flow', store, workers: [worker.pid], waitForWorkersMs: Infinity });
    expect(events.events.filter((e) => e.event === 'keel.coordinator.resumed').map((e) => e.measurements)).toEqual([{ workflows: 2, rerun: 0, dropped: 0 }]);
    expect(await coordinator.wait('plain')).toMatchObject({ status: 'completed', results: { t: 'p' } });
    expect(await coordinator.wait('hostile')).toMatchObject({ status: 'completed', results: { t: 'h' } });
  });
});
