// The kept writes of an agent store are written in one write transaction, which checks the file's
// format under the lock first. When that transaction fails for one write's own sake (SQLite refuses
// that row alone), the writes are tried again one by one, so that only that one is lost: those tries
// must check the format as every write does. A file raised to a newer format between the failed
// transaction and the tries (the lock free meanwhile) had the store write its rows into it unchecked.
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type AgentStoreWriteReport, SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { KEEL_FILE_FORMAT } from '../../../src/delivery/stores/sqliteFile.js';
import { TestClock } from '../../../src/testing/index.js';
import { storeClockOf, useTempFiles } from '../../support.js';
import { setUserVersion } from '../../sqliteFiles.js';

const tmpfile = useTempFiles('keel-agent-store-format-fallback-', 'agents.db');
const NEWER = KEEL_FILE_FORMAT + 1;

afterEach(() => {
  vi.restoreAllMocks();
});

function keys(file: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare('SELECT key FROM agent_records ORDER BY key').all();
  } finally {
    db.close();
  }
}

describe('kept writes tried one by one after a row of theirs failed the transaction', () => {
  it('are refused (kept, reported) when the file was raised to a newer format in between, not written into it', async () => {
    const file = tmpfile();
    const clock = new TestClock({ start: 1_000_000 });
    const reports: AgentStoreWriteReport[] = [];
    const store = new SqliteAgentStore(file, { busyTimeoutMs: 50, clock: storeClockOf(clock), report: (r) => reports.push(r) });
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    store.put('c', 'k', 'a', 1);
    store.put('c', 'k', 'b', 2);
    lock.exec('COMMIT');
    lock.close();
    // SQLite refuses the row of b once, in the transaction of the kept writes (a row's own failure);
    // before the tries one by one, another connection raises the file's format (the lock is free then)
    const statement = Object.getPrototypeOf(new Database(':memory:').prepare('SELECT 1')) as { run(...args: unknown[]): unknown };
    const run = statement.run;
    let refused = false;
    let raised = false;
    vi.spyOn(statement, 'run').mockImplementation(function (this: { source: string; database: { inTransaction: boolean } }, ...args: unknown[]) {
      if (!refused && this.source.startsWith('INSERT OR REPLACE INTO agent_records') && args[2] === 'b') {
        refused = true;
        throw new Database.SqliteError('a row refused on its own', 'SQLITE_CONSTRAINT');
      }
      // the next statement after the failed transaction (its ROLLBACK): the first of the tries
      if (refused && !raised && this.source !== 'ROLLBACK') {
        raised = true;
        setUserVersion(file, NEWER);
      }
      return run.apply(this, args);
    });
    await clock.advance(25); // the kept writes' try
    vi.restoreAllMocks();
    expect(refused && raised).toBe(true);
    expect(keys(file)).toEqual([]);
    expect(store.writeCounts).toEqual({ delayed: 2, written: 0, lost: 0, queued: 2 });
    expect(reports.map((r) => [r.outcome, r.writes, (r as { error?: Error }).error?.constructor.name])).toEqual([
      ['delayed', 1, 'SqliteError'], // the lock, met by the first put
      ['delayed', 2, 'StoreVersionError'],
    ]);
    store.close();
    expect(store.writeCounts).toEqual({ delayed: 2, written: 0, lost: 2, queued: 0 });
    expect(keys(file)).toEqual([]);
  });
});
