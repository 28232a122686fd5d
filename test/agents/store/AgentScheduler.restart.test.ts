// The AgentScheduler across restarts: killed and restarted under its name in the same node (its
// table), and started in a new node on the same SQLite file (the store: schedules by name only);
// a storm of kills while its schedules fire delivers or counts every due time, none twice.
import v8 from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import type { AgentStore, AgentStoreLoad } from '../../../src/agents/store/AgentStore.js';
import type { AgentSchedulerHandle } from '../../../src/agents/scheduler/types.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { loadingStore, lockedAtFirst } from './fakeStores.js';
import { scheduleKey } from '../../../src/agents/store/scheduleRecords.js';
import { GenServer, type Node, type Pid } from '../../../src/index.js';
import { captureEvents, expectNoLeaks, probe, TestClock } from '../../../src/testing/index.js';
import { advance, clockedNode, exitAndWait, expectKeelError, fakeLogger, thrown, useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-store-', 'agents.db');
const track = useNodes();
const START = 1_000_000;

function recorder(node: Node, name?: string): { pid: Pid; at: number[] } {
  const at: number[] = [];
  const pid = node.spawn(() => () => {
    at.push(node.clock.now());
  }, name === undefined ? undefined : { name });
  return { pid, at };
}

describe('AgentScheduler restarted in its node (killed, restarted by its supervisor)', () => {
  it('resumes every schedule of a live agent at its kept due time, re-monitored; those of agents that died meanwhile are dropped and counted', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { name: 'ticks' });
    const a = recorder(node);
    const b = recorder(node);
    const gone = recorder(node);
    expect(await scheduler.registerPeriodic(a.pid, 'fast', 100, 'a')).toBe('ok');
    expect(await scheduler.registerPeriodic(a.pid, 'slow', 250, 'a2', { jitter: 10 })).toBe('ok');
    expect(await scheduler.registerPeriodic(b.pid, 'b', 100, 'b')).toBe('ok');
    expect(await scheduler.registerPeriodic(gone.pid, 'g', 100, 'g')).toBe('ok');
    await advance(node, clock, 150); // a and b got START+100
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    // the agent dies in the same turn as the scheduler: its Down reaches the killed one, never handled
    node.exit(gone.pid, 'kill');
    await exitAndWait(node, scheduler.pid);
    expect(node.registry.whereis('ticks')).toEqual(scheduler.pid); // restarted by keel.agents
    expect(events.events.filter((e) => e.event === 'keel.agent_scheduler.resumed')).toEqual([
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 3, dropped: 1, corrupt: 0 }, metadata: { scheduler: 'ticks', from: 'table' } },
    ]);
    expect(events.events.filter((e) => e.event === 'keel.agent_scheduler.dropped')).toMatchObject([{ metadata: { agent: gone.pid, id: 'g', reason: 'noproc' } }]);
    expect(await scheduler.list(a.pid)).toMatchObject([
      { id: 'fast', nextDueAt: START + 200, deliveries: 1, generation: 2 },
      { id: 'slow', nextDueAt: START + 250, deliveries: 0, generation: 2 },
    ]);
    expect(await scheduler.stats()).toEqual({ agents: 2, schedules: 3, delivered: 3, failed: 0, withdrawn: 0, forced: 0, skipped: 0, resumed: 3, dropped: 1, corrupt: 0, storeFailures: 0 });
    expect(node.monitors.list().filter((e) => e.tag === 'agent_scheduler').map((e) => e.owner)).toEqual([scheduler.pid, scheduler.pid]);
    await advance(node, clock, 350); // to START+500
    expect(a.at).toEqual([START + 100, START + 200, START + 255, START + 300, START + 400, START + 500]);
    expect(b.at).toEqual([START + 100, START + 200, START + 300, START + 400, START + 500]);
    expect(gone.at).toEqual([START + 100]);
    // the new monitors work: an agent's death ends its schedules
    node.exit(b.pid, 'kill');
    await node.idle();
    expect(await scheduler.stats()).toMatchObject({ agents: 1, schedules: 2 });
  });

  it('a due time that passed while no scheduler ran fires once at the restart (not a burst, even under catch_up); the rest are skipped', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const parent = probe(node);
    parent.ctx.trapExits(true); // the scheduler is linked to it: no supervisor restarts it
    const first = await AgentScheduler.start(parent.ctx, { name: 'ticks' });
    const a = recorder(node);
    await first.registerPeriodic(a.pid, 'beat', 100, 'beat', { missed: 'catch_up' });
    await exitAndWait(node, first.pid);
    expect(node.registry.whereis('ticks')).toBeUndefined();
    await advance(node, clock, 450); // START+100..400 pass with no scheduler
    expect(a.at).toEqual([]);
    const second = await AgentScheduler.start(node, { name: 'ticks' });
    await node.idle();
    expect(a.at).toEqual([START + 450]);
    expect(await second.list(a.pid)).toMatchObject([{ id: 'beat', nextDueAt: START + 500, deliveries: 1, skipped: 3 }]);
    await advance(node, clock, 50);
    expect(a.at).toEqual([START + 450, START + 500]);
  });

  it('a normal stop ends it for good: its table is released and a new scheduler under the name starts empty', async () => {
    const { node, clock } = clockedNode(track);
    const parent = probe(node);
    parent.ctx.trapExits(true);
    const first = await AgentScheduler.start(parent.ctx, { name: 'ticks' });
    const a = recorder(node);
    await first.registerPeriodic(a.pid, 'beat', 100, 'beat');
    expect(componentStates(node)).toContain('ticks');
    await GenServer.stop(node, first.pid);
    expect(componentStates(node)).not.toContain('ticks');
    const second = await AgentScheduler.start(node, { name: 'ticks' });
    expect(await second.list(a.pid)).toEqual([]);
    await advance(node, clock, 300);
    expect(a.at).toEqual([]);
  });
});

describe('AgentScheduler with a SQLite store (a new node on the same file)', () => {
  it('resumes schedules by name on the process that holds the name now; schedules by pid, and names nobody holds, are not resumed', async () => {
    const file = tmpfile();
    const clock1 = new TestClock({ start: START });
    const node1 = track({ clock: clock1, random: () => 0.5, services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const s1 = await AgentScheduler.start(node1, { name: 'ticks' });
    const w1 = recorder(node1, 'worker');
    recorder(node1, 'absent');
    const byPid = recorder(node1);
    expect(await s1.registerPeriodic('worker', 'beat', 100, { beat: new Map([['n', 1n]]) }, { jitter: 20 })).toBe('ok');
    expect(await s1.registerPeriodic('absent', 'beat', 100, 'x')).toBe('ok');
    expect(await s1.registerPeriodic(byPid.pid, 'beat', 100, () => 'a function: never stored')).toBe('ok');
    await advance(node1, clock1, 250);
    expect(w1.at).toEqual([START + 110, START + 210]);
    await node1.shutdown();

    // a new node (as a new OS process would make): same file, same scheduler name, 'worker' registered first
    const clock2 = new TestClock({ start: START + 260 });
    const node2 = track({ clock: clock2, random: () => 0.5, services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const w2: unknown[] = [];
    node2.spawn(() => (m: unknown) => {
      w2.push(m);
    }, { name: 'worker' });
    const events = captureEvents(node2, ['keel.agent_scheduler.']);
    const s2 = await AgentScheduler.start(node2, { name: 'ticks' });
    expect(events.events.filter((e) => e.event !== 'keel.agent_scheduler.delivered')).toMatchObject([
      { event: 'keel.agent_scheduler.dropped', metadata: { agent: 'absent', id: 'beat', reason: 'noproc' } },
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 1, dropped: 1, corrupt: 0 }, metadata: { from: 'store' } },
    ]);
    expect(await s2.list('worker')).toMatchObject([{ id: 'beat', intervalMs: 100, jitter: 20, nextDueAt: START + 300 }]);
    await clock2.advance(40 + 10); // START+300 plus half the jitter
    await node2.idle();
    expect(w2).toEqual([{ beat: new Map([['n', 1n]]) }]);
    expect(new Database(file, { readonly: true }).prepare('SELECT count(*) AS n FROM agent_records').get()).toEqual({ n: 1 });
    // a normal stop ends the scheduler for good: its records go
    await GenServer.stop(node2, s2.pid);
    expect(new Database(file, { readonly: true }).prepare('SELECT count(*) AS n FROM agent_records').get()).toEqual({ n: 0 });
  });

  /** A store file holding two schedules by name (w1's and w2's 'beat', every 100 ms), its node shut down. */
  async function twoSchedulesStored(): Promise<string> {
    const file = tmpfile();
    const node1 = track({ clock: new TestClock({ start: START }), services: { agents: { store: { kind: 'sqlite', path: file } } } });
    recorder(node1, 'w1');
    recorder(node1, 'w2');
    const s1 = await AgentScheduler.start(node1, { name: 'ticks' });
    await s1.registerPeriodic('w1', 'beat', 100, 'one');
    await s1.registerPeriodic('w2', 'beat', 100, 'two');
    await node1.shutdown();
    return file;
  }

  /** A new node on `file` whose scheduler resumed w2's schedule alone (w1's record was spoilt): w2 fires at +100, w1 has none. */
  async function resumesW2Only(file: string): Promise<AgentSchedulerHandle> {
    const node2 = track({ clock: new TestClock({ start: START }), services: { agents: { store: { kind: 'sqlite', path: file } } } });
    recorder(node2, 'w1');
    const w2 = recorder(node2, 'w2');
    const s2 = await AgentScheduler.start(node2, { name: 'ticks' });
    expect(await s2.list('w1')).toEqual([]);
    expect(await s2.list('w2')).toMatchObject([{ id: 'beat', nextDueAt: START + 100 }]);
    await (node2.clock as TestClock).advance(100);
    await node2.idle();
    expect(w2.at).toEqual([START + 100]);
    return s2;
  }

  it('counts and skips a corrupt record, and resumes the others', async () => {
    const file = await twoSchedulesStored();
    const db = new Database(file);
    db.prepare("UPDATE agent_records SET value = x'00ff13' WHERE key = ?").run(JSON.stringify(['w1', 'beat']));
    db.prepare("INSERT INTO agent_records VALUES ('ticks', 'schedule', 'stray', ?)").run(Buffer.from([0xff, 0x0f, 0x49, 0x02])); // v8 for the number 1: not a schedule
    db.close();
    const s2 = await resumesW2Only(file);
    expect(await s2.stats()).toMatchObject({ schedules: 1, resumed: 1, dropped: 0, corrupt: 2 });
  });

  it('counts as corrupt a stored record whose interval the door refuses (above Number.MAX_SAFE_INTEGER ms), and goes on', async () => {
    // such a record (written before the door refused it, or by hand) would overflow its firing delay
    const file = await twoSchedulesStored();
    const db = new Database(file);
    const key = JSON.stringify(['w1', 'beat']);
    const row = db.prepare('SELECT value FROM agent_records WHERE key = ?').get(key) as { value: Buffer };
    const record = v8.deserialize(row.value) as Record<string, unknown>;
    expect(record).toMatchObject({ intervalMs: 100, jitter: 0 });
    db.prepare('UPDATE agent_records SET value = ? WHERE key = ?').run(v8.serialize({ ...record, intervalMs: Number.MAX_VALUE, jitter: 1e300 }), key);
    db.close();
    const s2 = await resumesW2Only(file);
    expect(await s2.stats()).toMatchObject({ schedules: 1, resumed: 1, dropped: 0, corrupt: 1 });
  });

  it('refuses a message that is not plain data for a schedule by name, at the call (ERR_NOT_SERIALIZABLE); a schedule by pid takes it', async () => {
    const file = tmpfile();
    const node = track({ clock: new TestClock({ start: START }), services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const s = await AgentScheduler.start(node, { name: 'ticks' });
    const w = recorder(node, 'worker');
    expectKeelError(thrown(() => s.registerPeriodic('worker', 'beat', 100, { f: () => 1 })), 'ERR_NOT_SERIALIZABLE', 'an agent store value', 'message.f is a function');
    expectKeelError(thrown(() => s.registerPeriodic('worker', 'beat', 100, new (class Point {})())), 'ERR_NOT_SERIALIZABLE');
    expect(await s.registerPeriodic(w.pid, 'beat', 100, { f: () => 1 })).toBe('ok');
    // a call that bypasses the handle's check is refused by the server the same way
    const bad = GenServer.call(node, 'ticks', { type: 'register', agent: 'worker', id: 'x', intervalMs: 100, message: Symbol('s'), jitter: 0, missed: 'skip' } as never);
    expectKeelError(await bad, 'ERR_NOT_SERIALIZABLE');
    expect(await s.stats()).toMatchObject({ schedules: 1 });
  });

  it('a store that cannot be opened is a typed error of the start, and starts nothing', () => {
    const { node } = clockedNode(track);
    const before = node.processes().length;
    const file = tmpfile();
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: { kind: 'sqlite', path: `${file}.missing/dir/agents.db` } })), 'ERR_STORE_UNAVAILABLE', 'agent store', 'does not exist');
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: { kind: 'sqlite', path: '' } })), 'ERR_INVALID_ARGUMENT', 'options.store.path');
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: { kind: 'disk' } as never })), 'ERR_INVALID_ARGUMENT', 'options.store.kind');
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: { kind: 'memory', path: 'x' } as never })), 'ERR_INVALID_ARGUMENT', 'options.store');
    expect(node.processes().length).toBe(before);
  });
});

describe('AgentScheduler with a store that fails', () => {
  it('counts, logs and reports a failed write, and runs the schedule on in memory', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const inner = new MemoryAgentStore();
    let failing = false;
    const store: AgentStore = {
      kind: 'memory',
      put(component, kind, key, value) {
        if (failing) throw new Error('SQLITE_FULL: database or disk is full');
        inner.put(component, kind, key, value);
      },
      insert: (c, k, key, v) => inner.insert(c, k, key, v),
      delete: (c, k, key) => inner.delete(c, k, key),
      deleteAll: (c, k) => inner.deleteAll(c, k),
      loadAll: (c, k) => inner.loadAll(c, k),
      transaction: (fn) => inner.transaction(fn),
      close: () => inner.close(),
    };
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    const w = recorder(node, 'worker');
    expect(await scheduler.registerPeriodic('worker', 'beat', 100, 'beat')).toBe('ok');
    expect(inner.loadAll('ticks').records.map((r) => (r.value as { nextDueAt: number }).nextDueAt)).toEqual([START + 100]);
    failing = true;
    const events = captureEvents(node, ['keel.agent_scheduler.store_failed']);
    await advance(node, clock, 300);
    expect(w.at).toEqual([START + 100, START + 200, START + 300]);
    expect(events.events).toHaveLength(3);
    expect(await scheduler.stats()).toMatchObject({ delivered: 3, storeFailures: 3 });
    failing = false;
    await scheduler.forceExecution('worker', 'beat'); // a successful write: the record catches up
    expect(inner.loadAll('ticks').records.map((r) => (r.value as { nextDueAt: number }).nextDueAt)).toEqual([START + 400]);
  });

  it('a store that cannot be read at the start is counted and reported; the scheduler starts empty', async () => {
    const { node } = clockedNode(track);
    const inner = new MemoryAgentStore();
    const store: AgentStore = {
      kind: 'memory',
      put: (c, k, key, v) => inner.put(c, k, key, v),
      insert: (c, k, key, v) => inner.insert(c, k, key, v),
      delete: (c, k, key) => inner.delete(c, k, key),
      deleteAll: (c, k) => inner.deleteAll(c, k),
      loadAll: () => {
        throw new Error('SQLITE_IOERR: disk I/O error');
      },
      transaction: (fn) => inner.transaction(fn),
      close: () => inner.close(),
    };
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    expect(await scheduler.stats()).toMatchObject({ schedules: 0, resumed: 0, storeFailures: 1 });
    expect(events.events.map((e) => e.event)).toEqual(['keel.agent_scheduler.store_failed', 'keel.agent_scheduler.resumed']);
  });


  /** A store holding w1's and w2's 'beat' (every 100 ms from START), written by a scheduler whose node has shut down. */
  async function twoStored(): Promise<MemoryAgentStore> {
    const inner = new MemoryAgentStore();
    const { node } = clockedNode(track);
    recorder(node, 'w1');
    recorder(node, 'w2');
    const first = await AgentScheduler.start(node, { name: 'ticks', store: lockedAtFirst(inner, 0) });
    expect(await first.registerPeriodic('w1', 'beat', 100, 'one')).toBe('ok');
    expect(await first.registerPeriodic('w2', 'beat', 100, 'two')).toBe('ok');
    await node.shutdown();
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w1', 'beat'), scheduleKey('w2', 'beat')]);
    return inner;
  }

  it('a normal stop of a scheduler that could not read its store at the start deletes none of the records it never loaded: a later start resumes every one', async () => {
    const inner = await twoStored();
    const { node, clock } = clockedNode(track);
    const w1 = recorder(node, 'w1');
    const w2 = recorder(node, 'w2');
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const locked = await AgentScheduler.start(node, { name: 'ticks', store: lockedAtFirst(inner, 1) });
    expect(await locked.stats()).toMatchObject({ schedules: 0, resumed: 0, storeFailures: 1 });
    expect(events.events.map((e) => e.event)).toEqual(['keel.agent_scheduler.store_failed', 'keel.agent_scheduler.resumed']);
    await GenServer.stop(node, locked.pid); // a normal stop: it ends for good
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w1', 'beat'), scheduleKey('w2', 'beat')]);
    // started again on the store, readable now: every schedule resumes and fires
    events.events.length = 0;
    const again = await AgentScheduler.start(node, { name: 'ticks', store: lockedAtFirst(inner, 0) });
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 2, dropped: 0, corrupt: 0 }, metadata: { scheduler: 'ticks', from: 'store' } },
    ]);
    expect(await again.list('w1')).toMatchObject([{ id: 'beat', intervalMs: 100, nextDueAt: START + 100 }]);
    expect(await again.list('w2')).toMatchObject([{ id: 'beat', intervalMs: 100, nextDueAt: START + 100 }]);
    await advance(node, clock, 100);
    expect(w1.at).toEqual([START + 100]);
    expect(w2.at).toEqual([START + 100]);
  });

  it('a scheduler that could not read its store at the start reads it again on its own, a second later, then twice as late each time, at most a minute apart: its stored schedules fire with nothing registered', async () => {
    const inner = await twoStored();
    const { node, clock } = clockedNode(track);
    const w1 = recorder(node, 'w1');
    const w2 = recorder(node, 'w2');
    const events = captureEvents(node, ['keel.agent_scheduler.resumed', 'keel.agent_scheduler.store_failed']);
    const store = lockedAtFirst(inner, 8); // unreadable at the start and at its first seven retries
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    // retries 1, 2, 4, 8, 16, 32, 60 and 60 seconds apart: the eighth reads it
    const gaps = [1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000];
    for (const [i, gap] of gaps.entries()) {
      await advance(node, clock, gap - 1);
      expect(store.loads, `before retry ${i + 1}`).toBe(i + 1);
      await advance(node, clock, 1);
      expect(store.loads, `at retry ${i + 1}`).toBe(i + 2);
    }
    const readAt = START + gaps.reduce((a, b) => a + b, 0);
    expect(events.events.filter((e) => e.event === 'keel.agent_scheduler.store_failed')).toHaveLength(8);
    expect(events.events.filter((e) => e.event === 'keel.agent_scheduler.resumed').map((e) => e.measurements.schedules)).toEqual([0, 2]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 2, resumed: 2, storeFailures: 8 });
    // both come due at once (missed ticks skipped), then every 100 ms
    await advance(node, clock, 100);
    expect(w1.at.length).toBeGreaterThan(0);
    expect(w2.at.length).toBe(w1.at.length);
    expect(w1.at.every((t) => t >= readAt)).toBe(true);
    await advance(node, clock, 120_000);
    expect(store.loads).toBe(9); // read for good: no more retries
  });

  it('a scheduler that could not read its store at the start reads it at its next write: the stored schedules resume then, one registered meanwhile under a stored key stays', async () => {
    const inner = await twoStored();
    const { node, clock } = clockedNode(track);
    const w1 = recorder(node, 'w1');
    const w2 = recorder(node, 'w2');
    const w3 = recorder(node, 'w3');
    const store = lockedAtFirst(inner, 1);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    const events = captureEvents(node, ['keel.agent_scheduler.resumed']);
    // unknown to it (not loaded): registered anew, then the load it tries first resumes w2's and w3's, not w1's older one
    expect(await scheduler.registerPeriodic('w1', 'beat', 250, 'one, slower')).toBe('ok');
    expect(store.loads).toBe(2);
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 1, dropped: 0, corrupt: 0 }, metadata: { scheduler: 'ticks', from: 'store' } },
    ]);
    expect(await scheduler.registerPeriodic('w3', 'beat', 100, 'three')).toBe('ok');
    expect(store.loads).toBe(2); // read once, for good
    expect(await scheduler.stats()).toMatchObject({ schedules: 3, resumed: 1, storeFailures: 1 });
    expect(inner.loadAll('ticks').records.map((r) => [r.key, (r.value as { intervalMs: number }).intervalMs])).toEqual([
      [scheduleKey('w1', 'beat'), 250],
      [scheduleKey('w2', 'beat'), 100],
      [scheduleKey('w3', 'beat'), 100],
    ]);
    await advance(node, clock, 250);
    expect(w1.at).toEqual([START + 250]);
    expect(w2.at).toEqual([START + 100, START + 200]);
    expect(w3.at).toEqual([START + 100, START + 200]);
    // loaded: a normal stop deletes its records, as any scheduler's
    await GenServer.stop(node, scheduler.pid);
    expect(inner.loadAll('ticks').records).toEqual([]);
  });

  it('a scheduler that could not read its store at the start, killed and restarted in its node, reads it at the restart', async () => {
    const inner = await twoStored();
    const { node } = clockedNode(track);
    recorder(node, 'w1');
    recorder(node, 'w2');
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store: lockedAtFirst(inner, 1) });
    const events = captureEvents(node, ['keel.agent_scheduler.resumed']);
    await exitAndWait(node, scheduler.pid);
    expect(node.registry.whereis('ticks')).toEqual(scheduler.pid); // restarted by keel.agents
    expect(events.events.map((e) => [e.measurements.schedules, e.metadata.from])).toEqual([[0, 'table'], [2, 'store']]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 2, resumed: 2, storeFailures: 1 });
  });

  it('a scheduler whose store stays unreadable deletes, at a normal stop, only the records of the schedules it holds', async () => {
    const inner = await twoStored();
    const { node } = clockedNode(track);
    recorder(node, 'w1');
    recorder(node, 'w2');
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store: lockedAtFirst(inner, Infinity) });
    // w1's is replaced by the caller (its key written over), w2's is not the scheduler's
    expect(await scheduler.registerPeriodic('w1', 'beat', 250, 'one, slower')).toBe('ok');
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, resumed: 0, storeFailures: 2 });
    await GenServer.stop(node, scheduler.pid);
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w2', 'beat')]);
  });


  it('a stored record that throws when it is read is counted as corrupt, logged once, reported and deleted; the scheduler starts and resumes the others', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { logger });
    const inner = new MemoryAgentStore();
    const record = (agent: string) => ({ agent, id: 'beat', intervalMs: 100, message: agent, jitter: 0, missed: 'skip', nextDueAt: START + 100 });
    for (const agent of ['w1', 'w2', 'w3']) inner.put('ticks', 'schedule', scheduleKey(agent, 'beat'), record(agent));
    const spoilt = scheduleKey('w2', 'beat');
    // w2's record, as a custom store may answer it: a field whose getter throws
    const unreadable = { ...record('w2'), get agent(): string { throw new Error('EIO: the record cannot be read'); } };
    const store = loadingStore(inner, (c, k) => {
      const load = inner.loadAll(c, k);
      return { ...load, records: load.records.map((r) => (r.key === spoilt ? { ...r, value: unreadable } : r)) };
    });
    recorder(node, 'w1');
    recorder(node, 'w2');
    recorder(node, 'w3');
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.dropped', measurements: {}, metadata: { scheduler: 'ticks', agent: '', id: spoilt, reason: 'corrupt' } },
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 2, dropped: 0, corrupt: 1 }, metadata: { scheduler: 'ticks', from: 'store' } },
    ]);
    expect(logger.errors).toEqual([[`agent scheduler ticks: store record ${spoilt} is not a schedule (reading it threw Error: EIO: the record cannot be read); skipped`]]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 2, resumed: 2, dropped: 0, corrupt: 1, storeFailures: 0 });
    expect((await scheduler.list('w1')).map((s) => s.id)).toEqual(['beat']);
    expect(await scheduler.list('w2')).toEqual([]);
    expect((await scheduler.list('w3')).map((s) => s.id)).toEqual(['beat']); // the records after it resume too
    expect(inner.loadAll('ticks').records.map((r) => r.key)).toEqual([scheduleKey('w1', 'beat'), scheduleKey('w3', 'beat')]);
    expect(node.registry.whereis('keel.agents')).toBeDefined();
  });

  it('a store whose loadAll answers something that is not a load is a store that cannot be read: counted and reported; the scheduler starts empty', async () => {
    const { node } = clockedNode(track);
    const store = loadingStore(new MemoryAgentStore(), () => ({ records: 42, corrupt: [] }) as unknown as AgentStoreLoad);
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    expect(await scheduler.stats()).toMatchObject({ schedules: 0, resumed: 0, corrupt: 0, storeFailures: 1 });
    expect(events.events.map((e) => e.event)).toEqual(['keel.agent_scheduler.store_failed', 'keel.agent_scheduler.resumed']);
    expect(events.events[0]!.metadata.error).toBeInstanceOf(TypeError);
  });
});

describe('AgentScheduler restarted: a storm of kills while its schedules fire', () => {
  it('killed 5 times while schedules fire: delivered + skipped = due times passed, each delivery once', async () => {
    const { node, clock } = clockedNode(track);
    const scheduler = await AgentScheduler.start(node, { name: 'storm' });
    const got: unknown[] = [];
    const agent = node.spawn(() => (m: unknown) => {
      got.push(m);
    }, { name: 'worker' });
    expect(await scheduler.registerPeriodic('worker', 'a', 100, 'a')).toBe('ok');
    expect(await scheduler.registerPeriodic(agent, 'b', 100, 'b', { missed: 'catch_up' })).toBe('ok');
    const resumed = captureEvents(node, ['keel.agent_scheduler.resumed']);
    for (let k = 0; k < 5; k++) {
      await clock.advance(250);
      await node.idle();
      await exitAndWait(node, scheduler.pid); // restarted by keel.agents at once
      await clock.advance(330); // due times pass while it is restarted (the first fires at resume)
      await node.idle();
    }
    await clock.advance(120);
    await node.idle();
    expect(resumed.events).toHaveLength(5);
    const elapsed = 5 * (250 + 330) + 120;
    const dueTimes = Math.floor(elapsed / 100);
    const stats = await scheduler.stats();
    const [a, b] = await scheduler.list(agent);
    expect(a!.deliveries + a!.skipped).toBe(dueTimes);
    expect(b!.deliveries + b!.skipped).toBe(dueTimes);
    expect(got.filter((m) => m === 'a')).toHaveLength(a!.deliveries);
    expect(got.filter((m) => m === 'b')).toHaveLength(b!.deliveries);
    expect(stats).toMatchObject({ schedules: 2, agents: 1, delivered: a!.deliveries + b!.deliveries, failed: 0, resumed: 2, dropped: 0 });
    expectNoLeaks(node);
  });
});

describe('AgentScheduler with a store, a name handed to another process', () => {
  it("the store keeps the schedule of the name's holder: its previous holder's schedule (still running, by its pid) neither overwrites nor deletes the record", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 }, START);
    const store = new MemoryAgentStore();
    const scheduler = await AgentScheduler.start(node, { name: 'ticks', store });
    const stored = (): unknown[] => store.loadAll('ticks').records.map((r) => r.value);
    const a = recorder(node, 'leader');
    expect(await scheduler.registerPeriodic('leader', 'beat', 100, 'to a')).toBe('ok');
    node.registry.unregister('leader'); // the name moves to b while a lives on
    const b = recorder(node, 'leader');
    expect(await scheduler.registerPeriodic('leader', 'beat', 1000, 'to b')).toBe('ok');
    const bRecord = { agent: 'leader', id: 'beat', intervalMs: 1000, message: 'to b', jitter: 0, missed: 'skip', nextDueAt: START + 1000 };
    expect(stored()).toEqual([bRecord]);
    await advance(node, clock, 100); // a's schedule fires: its due time moves, in memory only
    expect(a.at).toEqual([START + 100]);
    expect(stored()).toEqual([bRecord]);
    expect(await scheduler.unregister(a.pid, 'beat')).toBe('ok'); // a's schedule goes: b's record stays
    expect(stored()).toEqual([bRecord]);
    expect(await scheduler.registerPeriodic(a.pid, 'beat', 100, 'to a')).toBe('ok');
    node.exit(a.pid, 'kill');
    await node.idle();
    expect(stored()).toEqual([bRecord]);
    expect(await scheduler.list('leader')).toMatchObject([{ id: 'beat', intervalMs: 1000 }]);
    expect(b.at).toEqual([]);
  });
});
