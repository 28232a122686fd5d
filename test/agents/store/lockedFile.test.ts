// The SQLite agent store while another connection holds the file's write lock (an outside BEGIN
// EXCLUSIVE): better-sqlite3 is synchronous, so each write blocked the whole event loop for its 5 s
// busy timeout, then threw SQLITE_BUSY (the scheduler and the coordinator count that and go on in
// memory: the write was lost). Now a statement waits at most 50 ms, and a put, insert, delete or
// deleteAll that meets the lock is kept, answered from the store's state, seen by every read, and
// written on the node's clock once the lock goes, or at close; what cannot be written is reported.
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { Agent, CoordinatorAgent } from '../../../src/index.js';
import { type AgentStoreWriteReport, SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { captureEvents, TestClock } from '../../../src/testing/index.js';
import { clockedNode, deferred, storeClockOf, useNodes, useTempFiles } from '../../support.js';
import { agentRecords } from '../../sqliteFiles.js';
import type { StoreClock } from '../../../src/delivery/stores/sqliteFile.js';

const tmpfile = useTempFiles('keel-agent-store-lock-', 'agents.db');
const track = useNodes();
const T0 = 1_000_000;
const STORE_EVENTS = 'keel.agent_store.';

/** A TestClock as a store's clock. */
function storeClock(): StoreClock {
  return storeClockOf(new TestClock({ start: T0 }));
}


/**
 * Runs `body` while another connection holds `file`'s write lock (BEGIN EXCLUSIVE), then releases
 * it and advances `clock` to the kept writes' first try (25 ms after the lock was met).
 */
async function whileLocked(file: string, clock: TestClock, body: () => Promise<void>): Promise<void> {
  const lock = new Database(file);
  lock.exec('BEGIN EXCLUSIVE');
  let released = false;
  try {
    await body();
    lock.exec('COMMIT');
    released = true;
    await clock.advance(25);
  } finally {
    if (!released) lock.exec('ROLLBACK');
    lock.close();
  }
}

describe('the SQLite agent store of a node while another connection holds the write lock (BEGIN EXCLUSIVE)', () => {
  it("keeps the node running (each call blocks the event loop for at most the 50 ms busy timeout; a node timer fires, a process handles a message), answers every write from its state, and writes each accepted write once the lock is released: each write blocked the event loop for better-sqlite3's 5 s busy timeout, then threw SQLITE_BUSY (the write lost)", async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { services: { agents: { store: { kind: 'sqlite', path: file } } } }, T0);
    const store = agentStoreFor(node, undefined) as SqliteAgentStore;
    store.put('c', 'k', 'a', 1);
    store.put('c', 'k', 'b', 2);
    store.put('c', 'k', 'gone', 3);
    const events = captureEvents(node, [STORE_EVENTS]);
    const seen: unknown[] = [];
    const echo = node.spawn(() => (m: unknown) => {
      seen.push(m);
    });
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    let released = false;
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    try {
      const started = performance.now();
      store.put('c', 'k', 'a', 10); // meets the lock: kept
      expect(store.insert('c', 'k', 'n', 20)).toBe(true);
      expect(store.insert('c', 'k', 'a', 99)).toBe(false); // the kept put took the key: the first wins
      expect(store.insert('c', 'k', 'n', 98)).toBe(false);
      expect(store.delete('c', 'k', 'gone')).toBe(true);
      expect(store.delete('c', 'k', 'gone')).toBe(false);
      expect(store.delete('c', 'k', 'never')).toBe(false);
      store.put('d', 'k', 'x', 1);
      expect(store.deleteAll('d')).toBe(1);
      store.put('d', 'k', 'y', 2);
      expect(performance.now() - started).toBeLessThan(500);
      // every read sees the kept writes
      expect(store.loadAll('c')).toEqual({
        records: [
          { component: 'c', kind: 'k', key: 'a', value: 10 },
          { component: 'c', kind: 'k', key: 'b', value: 2 },
          { component: 'c', kind: 'k', key: 'n', value: 20 },
        ],
        corrupt: [],
      });
      expect(store.loadAll('d', 'k')).toEqual({ records: [{ component: 'd', kind: 'k', key: 'y', value: 2 }], corrupt: [] });
      // none of them is in the file yet
      expect(agentRecords(file)).toEqual({ 'c/k/a': 1, 'c/k/b': 2, 'c/k/gone': 3 });
      // the node runs meanwhile
      const fired = deferred<number>();
      node.setTimer(1000, () => fired.resolve(clock.now()));
      node.send(echo, 'ping');
      await clock.advance(1000);
      expect(await fired.promise).toBe(T0 + 1000);
      expect(seen).toEqual(['ping']);
      await clock.advance(2000);
      expect(store.writeCounts).toEqual({ delayed: 6, written: 0, lost: 0, queued: 6 });
      lock.exec('COMMIT');
      released = true;
      await clock.advance(400); // the next try (every 400 ms by now) finds the file free
    } finally {
      h.disable();
      if (!released) lock.exec('ROLLBACK');
      lock.close();
    }
    expect(h.max / 1e6).toBeLessThan(500);
    // accepted = written
    expect(store.writeCounts).toEqual({ delayed: 6, written: 6, lost: 0, queued: 0 });
    expect(agentRecords(file)).toEqual({ 'c/k/a': 10, 'c/k/b': 2, 'c/k/n': 20, 'd/k/y': 2 });
    expect(events.events.map((e) => [e.event, e.measurements, (e.metadata.error as { code?: unknown } | undefined)?.code ?? null])).toEqual([
      ['keel.agent_store.write_delayed', { writes: 1 }, 'SQLITE_BUSY'],
      ['keel.agent_store.delayed_written', { writes: 6, tries: 11 }, null], // 25, 50, 100, 200, then every 400 ms
    ]);
  });

  it("a scheduler's registration while the file is locked is not a store failure: the schedule is in the file once the lock goes, and a new node on the file resumes it (it blocked the event loop for 5 s, was counted in storeFailures, and was never written)", async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { services: { agents: { store: { kind: 'sqlite', path: file } } } }, T0);
    node.spawn(() => () => {}, { name: 'reporter' });
    const s = await AgentScheduler.start(node, { name: 'reports' });
    await whileLocked(file, clock, async () => {
      const started = performance.now();
      await s.registerPeriodic('reporter', 'daily', 86_400_000, { type: 'report' });
      expect(performance.now() - started).toBeLessThan(500);
      expect((await s.stats()).storeFailures).toBe(0);
      expect(Object.keys(agentRecords(file))).toEqual([]);
    });
    expect(Object.keys(agentRecords(file))).toHaveLength(1);
    await node.shutdown();
    const second = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    second.spawn(() => () => {}, { name: 'reporter' });
    const s2 = await AgentScheduler.start(second, { name: 'reports' });
    expect((await s2.list('reporter')).map((x) => [x.id, x.intervalMs])).toEqual([['daily', 86_400_000]]);
    expect((await s2.stats()).resumed).toBe(1);
  });

  it("a coordinator's task result recorded while the file is locked (a store transaction) is written once the lock goes: a new node on the file resumes the workflow without running that task again (the transaction failed with SQLITE_BUSY, store_failed, and the task ran again)", async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { services: { agents: { store: { kind: 'sqlite', path: file } } } }, T0);
    const secondStarted = deferred<void>();
    const runs: string[] = [];
    const worker = await Agent.start(node, {
      capabilities: [],
      tasks: {
        first: () => (runs.push('first'), 'one'),
        second: () => (runs.push('second'), secondStarted.resolve(), new Promise(() => undefined)),
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [worker.pid] });
    const events = captureEvents(node, ['keel.coordinator.store_failed', 'keel.agent_store.']);
    await whileLocked(file, clock, async () => {
      await coordinator.submit({ id: 'wf', tasks: [{ id: 'a', kind: 'first' }, { id: 'b', kind: 'second', dependsOn: ['a'] }] });
      await secondStarted.promise; // the first task's result was recorded behind the lock
      expect(Object.keys(agentRecords(file))).toEqual([]);
    });
    expect(events.events.map((e) => e.event)).toEqual(['keel.agent_store.write_delayed', 'keel.agent_store.delayed_written']);
    // the workflow, its tasks' counts (both started) and the first task's result
    expect(Object.keys(agentRecords(file)).sort()).toEqual(['flow/result/["wf","a"]', 'flow/task/["wf","a"]', 'flow/task/["wf","b"]', 'flow/workflow/wf']);
    await node.shutdown();
    const second = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const rerun: string[] = [];
    const worker2 = await Agent.start(second, { capabilities: [], tasks: { first: () => (rerun.push('first'), 'again'), second: () => (rerun.push('second'), 'two') } });
    const resumed = await CoordinatorAgent.start(second, { name: 'flow', workers: [worker2.pid] });
    expect(await resumed.wait('wf')).toMatchObject({ status: 'completed', results: { a: 'one', b: 'two' } });
    expect(runs).toEqual(['first', 'second']);
    expect(rerun).toEqual(['second']);
  });

  it('writes the kept writes at the node shutdown once the lock is gone, before their next try', async () => {
    const file = tmpfile();
    const { node } = clockedNode(track, { services: { agents: { store: { kind: 'sqlite', path: file } } } }, T0);
    const store = agentStoreFor(node, undefined) as SqliteAgentStore;
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    try {
      store.put('c', 'k', 'a', 1);
      store.put('c', 'k', 'b', 2);
      expect(store.delete('c', 'k', 'a')).toBe(true);
    } finally {
      lock.exec('COMMIT');
      lock.close();
    }
    await node.shutdown(); // the clock never moved: no try yet
    expect(store.writeCounts).toEqual({ delayed: 3, written: 3, lost: 0, queued: 0 });
    expect(agentRecords(file)).toEqual({ 'c/k/b': 2 });
  });
});

describe('the SQLite agent store closing while the lock outlasts its closing wait', () => {
  it('reports the kept writes lost, counted (never silent), and blocks the event loop only for the closing wait', () => {
    const file = tmpfile();
    const clock = storeClock();
    const reports: AgentStoreWriteReport[] = [];
    const store = new SqliteAgentStore(file, { busyTimeoutMs: 50, lockWaitMs: 100, clock, report: (r) => reports.push(r) });
    store.put('c', 'k', 'kept', 0);
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    try {
      const started = performance.now();
      store.put('c', 'k', 'a', 1);
      store.put('c', 'k', 'b', 2);
      expect(performance.now() - started).toBeLessThan(500);
      store.close();
      expect(performance.now() - started).toBeLessThan(1000);
    } finally {
      lock.exec('COMMIT');
      lock.close();
    }
    expect(store.writeCounts).toEqual({ delayed: 2, written: 0, lost: 2, queued: 0 });
    expect(reports.map((r) => [r.outcome, r.writes, (r as { error?: { code?: unknown } }).error?.code])).toEqual([
      ['delayed', 1, 'SQLITE_BUSY'],
      ['lost', 2, 'SQLITE_BUSY'],
    ]);
    expect(agentRecords(file)).toEqual({ 'c/k/kept': 0 });
  });
});

describe('a SQLite agent store transaction while another connection holds the write lock', () => {
  it('is kept as one behind the writes kept before it: answered from the state, seen by every read, written with them once the lock goes, in order, all or none; it failed with SQLITE_BUSY (its writes lost: a coordinator recorded no result, so the task ran again after a restart)', async () => {
    const file = tmpfile();
    const testClock = new TestClock({ start: T0 });
    const clock = storeClockOf(testClock);
    const reports: AgentStoreWriteReport[] = [];
    const store = new SqliteAgentStore(file, { busyTimeoutMs: 50, lockWaitMs: 100, clock, report: (r) => reports.push(r) });
    try {
      store.put('c', 'k', 'a', 1);
      const lock = new Database(file);
      lock.exec('BEGIN EXCLUSIVE');
      try {
        const started = performance.now();
        // met at BEGIN IMMEDIATE, before its function runs: it runs once, kept
        let runs = 0;
        const answer = store.transaction(() => {
          runs++;
          return [store.insert('c', 'k', 'a', 99), store.insert('c', 'k', 'r', 'result'), store.put('c', 'k', 'w', 'workflow'), store.delete('c', 'k', 'a')];
        });
        expect(answer).toEqual([false, true, undefined, true]);
        expect(runs).toBe(1);
        // behind the lock: a later transaction joins the kept writes without a try
        expect(store.transaction(() => store.insert('c', 'k', 'r', 'again'))).toBe(false);
        // one that throws is undone alone, kept writes and all of its own
        expect(() =>
          store.transaction(() => {
            store.put('c', 'k', 'x', 'undone');
            store.delete('c', 'k', 'w');
            throw new Error('no');
          }),
        ).toThrow('no');
        // and a nested one that throws is undone alone, its parent kept
        store.transaction(() => {
          store.put('c', 'k', 'p', 'parent');
          expect(() =>
            store.transaction(() => {
              store.put('c', 'k', 'p', 'child');
              throw new Error('child');
            }),
          ).toThrow('child');
        });
        expect(performance.now() - started).toBeLessThan(1000);
        const state = { 'c/k/p': 'parent', 'c/k/r': 'result', 'c/k/w': 'workflow' };
        expect(Object.fromEntries(store.loadAll('c').records.map((r) => [`${r.component}/${r.kind}/${r.key}`, r.value]))).toEqual(state);
        expect(agentRecords(file)).toEqual({ 'c/k/a': 1 });
        expect(reports.map((r) => r.outcome)).toEqual(['delayed']);
      } finally {
        lock.exec('COMMIT');
        lock.close();
      }
      await testClock.advance(25);
      expect(agentRecords(file)).toEqual({ 'c/k/p': 'parent', 'c/k/r': 'result', 'c/k/w': 'workflow' });
      // in calls: the first transaction's four writes (its refused insert made none: three), the parent's one
      expect(store.writeCounts).toEqual({ delayed: 4, written: 4, lost: 0, queued: 0 });
      expect(reports.map((r) => r.outcome)).toEqual(['delayed', 'written']);
    } finally {
      store.close();
    }
  });

  it('that fails for another reason than the lock is thrown as before, nothing kept', () => {
    const file = tmpfile();
    const store = new SqliteAgentStore(file, { busyTimeoutMs: 50, lockWaitMs: 100, clock: storeClock() });
    try {
      expect(() => store.transaction(() => Promise.resolve(1))).toThrow(/synchronous function/);
      expect(() =>
        store.transaction(() => {
          store.put('c', 'k', 'a', 1);
          throw new Error('mine');
        }),
      ).toThrow('mine');
      expect(agentRecords(file)).toEqual({});
      expect(store.writeCounts).toEqual({ delayed: 0, written: 0, lost: 0, queued: 0 });
    } finally {
      store.close();
    }
  });
});
