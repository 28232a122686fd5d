// A file raised to a newer format while a Keel write waits for its lock: another connection (a
// newer Keel's CLI, which holds no claim) has the write lock, raises the format and commits; the
// write that waited then runs under the lock on a file of a format this Keel does not write. Each
// is refused as a newer file is refused at the open: a node's store does not open (nor write its
// claim into the file), and keel dlq purge says so in one line instead of throwing.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { StoreVersionError } from '../../src/errors.js';
import { KEEL_FILE_FORMAT } from '../../src/delivery/stores/sqliteFile.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { SqliteAgentStore } from '../../src/agents/store/SqliteAgentStore.js';
import { runDlq } from '../../src/cli/dlq.js';
import { thrown, useTempFiles } from '../support.js';
import { rows, userVersion } from '../sqliteFiles.js';

const tmpfile = useTempFiles('keel-format-raised-waiting-', 'keel.db');
const NEWER = KEEL_FILE_FORMAT + 1;

const workers: Worker[] = [];
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.terminate()));
});

/**
 * Another connection, on a thread of its own (the store's waits block this one): takes the write
 * lock (resolved once it holds it), then after `ms` raises the file's format to `version` and commits.
 */
async function raiseUnderLock(file: string, version: number, ms: number): Promise<void> {
  const worker = new Worker(
    `const { workerData, parentPort } = require('node:worker_threads');
     const Database = require(workerData.driver);
     const db = new Database(workerData.file);
     db.exec('BEGIN IMMEDIATE');
     parentPort.postMessage('locked');
     setTimeout(() => {
       db.pragma('user_version = ' + workerData.version);
       db.exec('COMMIT');
       db.close();
       parentPort.postMessage('committed');
     }, workerData.ms);`,
    { eval: true, workerData: { driver: createRequire(import.meta.url).resolve('better-sqlite3'), file, version, ms } },
  );
  workers.push(worker);
  await new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('message', () => resolve());
  });
}


/** A dead letter store file holding one parked entry (seq 1), closed. */
async function oneParked(file: string): Promise<void> {
  const store = new SqliteStore(file, 'node-a');
  await store.add({ recipient: 'x', message: 'm', reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status: 'parked' });
  store.close();
}

describe('a file raised to a newer format while an opener waits for its write lock', () => {
  it("a node's dead letter store: refused with StoreVersionError, its claim not written into the file", async () => {
    const file = tmpfile();
    new SqliteStore(file, 'node-a').close(); // an up-to-date store, unclaimed
    await raiseUnderLock(file, NEWER, 200);
    const e = thrown(() => new SqliteStore(file, 'node-b'));
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: NEWER, supported: KEEL_FILE_FORMAT, file });
    expect(rows(file, 'SELECT * FROM dead_letter_owner')).toEqual([]);
    expect(userVersion(file)).toBe(NEWER);
    // not left marked open in this process: the file opens again once it is of this format
    const db = new Database(file);
    db.pragma(`user_version = ${KEEL_FILE_FORMAT}`);
    db.close();
    new SqliteStore(file, 'node-b').close();
  });

  it("a node's agent store: refused with StoreVersionError, its claim not written into the file", async () => {
    const file = tmpfile();
    new SqliteAgentStore(file).close();
    await raiseUnderLock(file, NEWER, 200);
    const e = thrown(() => new SqliteAgentStore(file));
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: NEWER, supported: KEEL_FILE_FORMAT, file });
    expect(rows(file, 'SELECT * FROM agent_store_owner')).toEqual([]);
  });

  it('keel dlq purge: one line, exit 1, nothing purged (it threw the StoreVersionError out of runDlq)', async () => {
    const file = tmpfile();
    await oneParked(file);
    await raiseUnderLock(file, NEWER, 200);
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
    await raiseUnderLock(file, NEWER, 200);
    const lines: string[] = [];
    const code = runDlq(['retry', '--all', '--store', file], (line) => lines.push(line), () => 10);
    expect({ code, out: lines.join('\n') }).toEqual({
      code: 1,
      out: `keel dlq retry: could not write ${file}: its schema version (user_version) is ${NEWER}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes; no dead letter was changed; open it with the Keel that made it, or a newer one; this one leaves the file as it is`,
    });
    expect(rows(file, 'SELECT seq, status FROM dead_letters')).toEqual([{ seq: 1, status: 'parked' }]);
  });
});
