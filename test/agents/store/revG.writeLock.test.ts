// Review G: the SQLite agent store's write-behind on a locked file, attacked.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { type AgentStoreWriteReport, SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { TestClock } from '../../../src/testing/index.js';
import { useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-store-revg-', 'agents.db');

function harness(file: string): { store: SqliteAgentStore; clock: TestClock; reports: AgentStoreWriteReport[] } {
  const clock = new TestClock({ start: 1_000_000 });
  const reports: AgentStoreWriteReport[] = [];
  const store = new SqliteAgentStore(file, {
    busyTimeoutMs: 50,
    lockWaitMs: 100,
    clock: {
      now: () => clock.now(),
      setTimer(ms, fn) {
        const t = clock.setTimer(ms, fn);
        return { cancel: () => clock.clearTimer(t) };
      },
    },
    report: (r) => reports.push(r),
  });
  return { store, clock, reports };
}

describe('review G: the SQLite agent store behind a lock', () => {
  it('a write that meets the lock but keeps nothing (a delete of no record, an insert of a taken key, a deleteAll of nothing) is not reported delayed, and does not silence the report of a later lock', () => {
    const file = tmpfile();
    const { store, reports } = harness(file);
    try {
      store.put('c', 'k', 'a', 1);
      const lock = new Database(file);
      lock.exec('BEGIN EXCLUSIVE');
      expect(store.delete('c', 'k', 'never')).toBe(false);
      expect(store.insert('c', 'k', 'a', 2)).toBe(false);
      expect(store.deleteAll('none')).toBe(0);
      expect(store.writeCounts).toEqual({ delayed: 0, written: 0, lost: 0, queued: 0 });
      expect(reports).toEqual([]); // nothing was kept: nothing delayed (a report of 0 writes, then every later lock silent)
      lock.exec('COMMIT');
      lock.exec('BEGIN EXCLUSIVE');
      store.put('c', 'k', 'b', 3); // kept: said
      expect(store.writeCounts).toEqual({ delayed: 1, written: 0, lost: 0, queued: 1 });
      expect(reports.map((r) => [r.outcome, r.writes])).toEqual([['delayed', 1]]);
      lock.exec('COMMIT');
      lock.close();
    } finally {
      store.close();
    }
    expect(reports.map((r) => [r.outcome, r.writes])).toEqual([
      ['delayed', 1],
      ['written', 1],
    ]);
  });
});
