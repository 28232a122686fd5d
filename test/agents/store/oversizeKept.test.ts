// A value SQLite refuses as too big (a record over SQLite's maximum length, SQLITE_TOOBIG) put while
// the file is locked: the writes kept behind the lock hold one write per key (a later put takes the
// earlier one's place), so a doomed put replaced the earlier, accepted one, and both were lost when
// the file refused it. Now such a value is refused by the put itself, synchronously, with the error
// the store refuses values with (ERR_NOT_SERIALIZABLE), before it can replace anything.
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AgentStoreWriteReport, SqliteAgentStore, type SqliteAgentStoreOptions } from '../../../src/agents/store/SqliteAgentStore.js';
import { TestClock } from '../../../src/testing/index.js';
import { expectKeelError, storeClockOf, thrown, useTempFiles } from '../../support.js';
import { agentRecords } from '../../sqliteFiles.js';

const tmpfile = useTempFiles('keel-agent-store-oversize-', 'agents.db');
const T0 = 1_000_000;
/** The most SQLite takes in one record, lowered for the test (SQLite's own is 1e9 bytes). */
const LIMIT = 1000;

/** SQLite's limit, simulated: the driver refuses a statement binding a blob over LIMIT bytes, as it reports SQLITE_TOOBIG. */
function simulateSqliteLimit(): void {
  const statement = Object.getPrototypeOf(new Database(':memory:').prepare('SELECT 1')) as { run(...args: unknown[]): unknown };
  const run = statement.run;
  vi.spyOn(statement, 'run').mockImplementation(function (this: unknown, ...args: unknown[]) {
    if (args.some((a) => Buffer.isBuffer(a) && a.length > LIMIT)) throw new Database.SqliteError('string or blob too big', 'SQLITE_TOOBIG');
    return run.apply(this, args);
  });
}

afterEach(() => {
  vi.restoreAllMocks();
});


function openStore(file: string, clock: TestClock, reports: AgentStoreWriteReport[]): SqliteAgentStore {
  // maxRecordBytes: an internal option, SQLite's own 1e9 bytes by default
  return new SqliteAgentStore(file, { busyTimeoutMs: 50, clock: storeClockOf(clock), report: (r) => reports.push(r), maxRecordBytes: LIMIT } as SqliteAgentStoreOptions);
}

const TOO_BIG = 'y'.repeat(2 * LIMIT);

describe('a value too big for SQLite, put while the file is locked', () => {
  it('is refused by the put at once (ERR_NOT_SERIALIZABLE), and the earlier value of its key kept behind the lock is written: the doomed put replaced it and both were lost', async () => {
    const file = tmpfile();
    const clock = new TestClock({ start: T0 });
    const reports: AgentStoreWriteReport[] = [];
    const store = openStore(file, clock, reports);
    simulateSqliteLimit();
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    try {
      store.put('c', 'k', 'x', 'good');
      const e = thrown(() => store.put('c', 'k', 'x', TOO_BIG));
      expectKeelError(e, 'ERR_NOT_SERIALIZABLE', 'an agent store value', `more than the ${LIMIT} bytes SQLite takes in one record`);
      // insert of a new key, and a put in a transaction behind the lock (undone with it): refused alike
      expectKeelError(thrown(() => store.insert('c', 'k', 'new', TOO_BIG)), 'ERR_NOT_SERIALIZABLE');
      expectKeelError(
        thrown(() =>
          store.transaction(() => {
            store.put('c', 'k', 'other', 1);
            store.put('c', 'k', 'x', TOO_BIG);
          }),
        ),
        'ERR_NOT_SERIALIZABLE',
      );
      expect(store.loadAll('c').records).toEqual([{ component: 'c', kind: 'k', key: 'x', value: 'good' }]);
      expect(store.writeCounts).toEqual({ delayed: 1, written: 0, lost: 0, queued: 1 });
      lock.exec('COMMIT');
    } finally {
      lock.close();
    }
    await clock.advance(25); // the kept writes' first try
    expect(agentRecords(file)).toEqual({ 'c/k/x': 'good' });
    expect(store.writeCounts).toEqual({ delayed: 1, written: 1, lost: 0, queued: 0 });
    expect(reports.map((r) => [r.outcome, r.writes])).toEqual([
      ['delayed', 1],
      ['written', 1],
    ]);
    store.close();
  });

  it('made at once (no lock), it is refused the same way, before SQLite is asked: the record as it was', () => {
    const file = tmpfile();
    const store = openStore(file, new TestClock({ start: T0 }), []);
    try {
      store.put('c', 'k', 'x', 'good');
      simulateSqliteLimit();
      const e = thrown(() => store.put('c', 'k', 'x', TOO_BIG));
      expectKeelError(e, 'ERR_NOT_SERIALIZABLE', `more than the ${LIMIT} bytes SQLite takes in one record`);
      expect((e as { cause?: unknown }).cause).toBeUndefined(); // not SQLite's refusal: the store's own
      expect(agentRecords(file)).toEqual({ 'c/k/x': 'good' });
      expect(store.writeCounts).toEqual({ delayed: 0, written: 0, lost: 0, queued: 0 });
    } finally {
      store.close();
    }
  });
});
