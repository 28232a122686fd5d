// A file raised to a newer format while a Keel write waits for its lock: another connection (a
// newer Keel's CLI, which holds no claim) raises the format between the opener's first look and its
// write transaction; the write then runs under the lock on a file of a format this Keel does not
// write. Each is refused as a newer file is refused at the open: a node's store does not open (nor
// write its claim into the file), and keel dlq purge and retry say so in one line instead of
// throwing. The raise is made at that point by a spy, not by a lock held for a while on another
// thread: the interleaving does not depend on the machine's load.
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { StoreVersionError } from '../../src/errors.js';
import { KEEL_FILE_FORMAT } from '../../src/delivery/stores/sqliteFile.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { SqliteAgentStore } from '../../src/agents/store/SqliteAgentStore.js';
import { runDlq } from '../../src/cli/dlq.js';
import { thrown, useTempFiles } from '../support.js';
import { rows, userVersion } from '../sqliteFiles.js';

const tmpfile = useTempFiles('keel-format-raised-waiting-', 'keel.db');
const NEWER = KEEL_FILE_FORMAT + 1;

afterEach(() => {
  vi.restoreAllMocks();
});

/** Raises the file's format to `version` from a connection of its own (a newer Keel's tool, say). */
function raise(file: string, version: number): void {
  const db = new Database(file);
  try {
    db.pragma(`user_version = ${version}`);
  } finally {
    db.close();
  }
}

/**
 * Raises the file's format to `version` at the moment an opener has looked at the file and is about
 * to take its write lock: when it makes its first write transaction (the set-up's, whose BEGIN
 * IMMEDIATE comes next). This is what waiting for another connection's lock amounts to, without the
 * wait's timing: deterministic on a loaded machine.
 */
function raiseBeforeTheWriteLock(file: string, version: number): void {
  const transaction = Database.prototype.transaction;
  vi.spyOn(Database.prototype, 'transaction').mockImplementationOnce(function (this: Database.Database, fn) {
    raise(file, version);
    return transaction.call(this, fn);
  });
}

/** A dead letter store file holding one parked entry (seq 1), closed. */
async function oneParked(file: string): Promise<void> {
  const store = new SqliteStore(file, 'node-a');
  await store.add({ recipient: 'x', message: 'm', reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status: 'parked' });
  store.close();
}

describe('a file raised to a newer format between an opener\'s first look and its write transaction (as while it waits for another connection\'s write lock)', () => {
  it("a node's dead letter store: refused with StoreVersionError, its claim not written into the file", async () => {
    const file = tmpfile();
    new SqliteStore(file, 'node-a').close(); // an up-to-date store, unclaimed
    raiseBeforeTheWriteLock(file, NEWER);
    const e = thrown(() => new SqliteStore(file, 'node-b'));
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: NEWER, supported: KEEL_FILE_FORMAT, file });
    expect(rows(file, 'SELECT * FROM dead_letter_owner')).toEqual([]);
    expect(userVersion(file)).toBe(NEWER);
    // not left marked open in this process: the file opens again once it is of this format
    raise(file, KEEL_FILE_FORMAT);
    new SqliteStore(file, 'node-b').close();
  });

  it("a node's agent store: refused with StoreVersionError, its claim not written into the file", async () => {
    const file = tmpfile();
    new SqliteAgentStore(file).close();
    raiseBeforeTheWriteLock(file, NEWER);
    const e = thrown(() => new SqliteAgentStore(file));
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: NEWER, supported: KEEL_FILE_FORMAT, file });
    expect(rows(file, 'SELECT * FROM agent_store_owner')).toEqual([]);
  });

  it('keel dlq purge: one line, exit 1, nothing purged (it threw the StoreVersionError out of runDlq)', async () => {
    const file = tmpfile();
    await oneParked(file);
    // once the CLI has opened the store (its first look found this format), before its write
    const purge = SqliteStore.prototype.purge;
    vi.spyOn(SqliteStore.prototype, 'purge').mockImplementation(function (this: SqliteStore, ...args: Parameters<SqliteStore['purge']>) {
      raise(file, NEWER);
      return purge.apply(this, args);
    });
    const lines: string[] = [];
    let code: number | string;
    try {
      code = runDlq(['purge', '--all', '--store', file], (line) => lines.push(line), () => 10);
    } catch (e) {
      code = `threw ${String(e)}`;
    }
    expect({ code, out: lines.join('\n') }).toEqual({
      code: 1,
      out: `keel dlq purge: could not write ${file}: its schema version (user_version) is ${NEWER}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes; no dead letter was changed; open it with the Keel that made it, or a newer one; this one leaves the file as it is`,
    });
    expect(rows(file, 'SELECT seq FROM dead_letters')).toEqual([{ seq: 1 }]);
  });

  it('keel dlq retry: one line, exit 1, nothing marked (its updates, written at close, refused)', async () => {
    const file = tmpfile();
    await oneParked(file);
    // once the CLI has opened the store and found the entries, before their updates are written
    const update = SqliteStore.prototype.update;
    let raised = false;
    vi.spyOn(SqliteStore.prototype, 'update').mockImplementation(function (this: SqliteStore, ...args: Parameters<SqliteStore['update']>) {
      if (!raised) raise(file, NEWER);
      raised = true;
      return update.apply(this, args);
    });
    const lines: string[] = [];
    const code = runDlq(['retry', '--all', '--store', file], (line) => lines.push(line), () => 10);
    expect({ code, out: lines.join('\n') }).toEqual({
      code: 1,
      out: `keel dlq retry: could not write ${file}: its schema version (user_version) is ${NEWER}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes; no dead letter was changed; open it with the Keel that made it, or a newer one; this one leaves the file as it is`,
    });
    expect(rows(file, 'SELECT seq, status FROM dead_letters')).toEqual([{ seq: 1, status: 'parked' }]);
  });
});
