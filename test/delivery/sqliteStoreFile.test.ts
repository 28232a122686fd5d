// The SQLite dead letter store's file: its schema version (PRAGMA user_version), a store made before
// the stamp, a newer Keel's store and another application's database, each refused untouched.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreVersionError } from '../../src/errors.js';
import { runDlq } from '../../src/cli/dlq.js';
import { SCHEMA_VERSION, SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { expectKeelError, thrown, useTempFiles } from '../support.js';

const tmpfile = useTempFiles('keel-dlq-file-', 'dead-letters.db');

function record(message: string): Parameters<SqliteStore['add']>[0] {
  return { recipient: 'x', message, reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status: 'pending' };
}

/** A store file holding one entry, closed. */
async function storeWithOne(): Promise<string> {
  const file = tmpfile();
  const store = new SqliteStore(file, 'node-a');
  try {
    await store.add(record('kept'));
  } finally {
    store.close();
  }
  return file;
}

function userVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

function setUserVersion(file: string, version: number): void {
  const db = new Database(file);
  try {
    db.pragma(`user_version = ${version}`);
  } finally {
    db.close();
  }
}

/** The file's bytes (a hash) and the files beside it. */
function fileState(file: string): { sha256: string; directory: string[] } {
  return { sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex'), directory: fs.readdirSync(path.dirname(file)).sort() };
}

function dlq(argv: string[]): { code: number; out: string } {
  const lines: string[] = [];
  const code = runDlq(argv, (line) => lines.push(line), () => 10);
  return { code, out: lines.join('\n') };
}

describe('the SQLite dead letter store schema version (PRAGMA user_version)', () => {
  it('a new store file is stamped with the schema version', async () => {
    const file = await storeWithOne();
    expect(SCHEMA_VERSION).toBeGreaterThan(0);
    expect(userVersion(file)).toBe(SCHEMA_VERSION);
  });

  it('a store made before the stamp (user_version 0, the store tables) is opened with its entries and stamped; the CLI reads it without writing, and stamps it when it writes', async () => {
    const file = await storeWithOne();
    setUserVersion(file, 0);
    // list reads on a read-only connection: the file keeps its 0
    expect(dlq(['list', '--store', file, '--json']).code).toBe(0);
    expect(userVersion(file)).toBe(0);
    expect(dlq(['retry', '--all', '--store', file, '--json']).code).toBe(0);
    expect(userVersion(file)).toBe(SCHEMA_VERSION);

    setUserVersion(file, 0);
    const store = new SqliteStore(file, 'node-b');
    try {
      expect(store.list({}, 0, 10, undefined).entries.map((e) => e.message)).toEqual(['kept']);
    } finally {
      store.close();
    }
    expect(userVersion(file)).toBe(SCHEMA_VERSION);
  });

  it("a newer Keel's store (a higher user_version) is refused with StoreVersionError before anything is written; the CLI says so in one line, exit 2", async () => {
    const file = await storeWithOne();
    setUserVersion(file, SCHEMA_VERSION + 1);
    const before = fileState(file);
    const e = thrown(() => new SqliteStore(file, 'node-b'));
    expect(e).toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `schema version (user_version) is ${SCHEMA_VERSION + 1}, newer than the version ${SCHEMA_VERSION} this Keel writes`);
    expect(e).toMatchObject({ version: SCHEMA_VERSION + 1, supported: SCHEMA_VERSION, file });
    expect(fileState(file)).toEqual(before);
    for (const argv of [['list'], ['retry', '--all']]) {
      const r = dlq([...argv, '--store', file]);
      expect(r, argv[0]).toEqual({
        code: 2,
        out: `keel dlq: cannot open ${file}: its schema version (user_version) is ${SCHEMA_VERSION + 1}, newer than the version ${SCHEMA_VERSION} this Keel writes; open it with the Keel that made it, or a newer one; this one leaves the file as it is`,
      });
    }
    // (a read-only connection leaves the file's -wal and -shm behind: the file itself is as it was)
    expect(fileState(file).sha256).toBe(before.sha256);
    expect(userVersion(file)).toBe(SCHEMA_VERSION + 1);
  });

  it("another application's database (tables of its own, no dead_letters table) is refused untouched: no store tables added, no stamp, no WAL switch", () => {
    const file = tmpfile();
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const db = new Database(file);
    db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES (\'ada\')');
    db.close();
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteStore(file, 'node-a')), 'ERR_STORE_UNAVAILABLE', 'it is not a Keel dead letter store (it has tables of its own and no dead_letters table: users)');
    expect(fileState(file)).toEqual(before);
    const check = new Database(file, { readonly: true });
    try {
      expect(check.prepare("SELECT name FROM sqlite_schema WHERE type = 'table'").all()).toEqual([{ name: 'users' }]);
      expect(check.pragma('user_version', { simple: true })).toBe(0);
      expect(check.pragma('journal_mode', { simple: true })).toBe('delete');
    } finally {
      check.close();
    }
    // the same with a version stamp of its own, higher than the store's: not taken for a newer store
    setUserVersion(file, SCHEMA_VERSION + 7);
    const e = thrown(() => new SqliteStore(file, 'node-a'));
    expect(e).not.toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `it is not a Keel dead letter store (its schema version (user_version) is ${SCHEMA_VERSION + 7} and it has no dead_letters table)`);
  });
});
