// The SQLite dead letter store's file: Keel's file format version (PRAGMA user_version), a store made before
// the stamp, a newer Keel's store and another application's database, each refused untouched; the
// claim of a node on the file, held by the OS process that made it (its pid and start identity).
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, StoreVersionError } from '../../src/errors.js';
import { KEEL_FILE_FORMAT, setUpStoreFile, type SqliteDatabase, type SqliteDriver, startOf } from '../../src/delivery/stores/sqliteFile.js';
import { openStoreFile } from '../../src/delivery/stores/sqliteStoreOpen.js';
import { DLQ_SCHEMA } from '../../src/delivery/stores/sqliteStoreSchema.js';
import { runDlq } from '../../src/cli/dlq.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { expectKeelError, thrown, useTempFiles } from '../support.js';
import { fileState, insertLetter, LEGACY_DEAD_LETTER_TABLES, setUserVersion, userVersion, writeDatabase } from '../sqliteFiles.js';

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

function dlq(argv: string[]): { code: number; out: string } {
  const lines: string[] = [];
  const code = runDlq(argv, (line) => lines.push(line), () => 10);
  return { code, out: lines.join('\n') };
}

describe('the SQLite dead letter store file format version (PRAGMA user_version, shared with the agent store)', () => {
  it('a new store file is stamped with the file format version', async () => {
    const file = await storeWithOne();
    expect(KEEL_FILE_FORMAT).toBeGreaterThan(0);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
  });

  it('a store made before the stamp (user_version 0, the store tables) is opened with its entries and stamped; the CLI reads it without writing, and stamps it when it writes', async () => {
    const file = await storeWithOne();
    setUserVersion(file, 0);
    // list reads on a read-only connection: the file keeps its 0
    expect(dlq(['list', '--store', file, '--json']).code).toBe(0);
    expect(userVersion(file)).toBe(0);
    expect(dlq(['retry', '--all', '--store', file, '--json']).code).toBe(0);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);

    setUserVersion(file, 0);
    const store = new SqliteStore(file, 'node-b');
    try {
      expect(store.list({}, 0, 10, undefined).entries.map((e) => e.message)).toEqual(['kept']);
    } finally {
      store.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
  });

  it("a newer Keel's store (a higher user_version) is refused with StoreVersionError before anything is written; the CLI says so in one line, exit 2", async () => {
    const file = await storeWithOne();
    setUserVersion(file, KEEL_FILE_FORMAT + 1);
    const before = fileState(file);
    const e = thrown(() => new SqliteStore(file, 'node-b'));
    expect(e).toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `schema version (user_version) is ${KEEL_FILE_FORMAT + 1}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes`);
    expect(e).toMatchObject({ version: KEEL_FILE_FORMAT + 1, supported: KEEL_FILE_FORMAT, file });
    expect(fileState(file)).toEqual(before);
    for (const argv of [['list'], ['retry', '--all']]) {
      const r = dlq([...argv, '--store', file]);
      expect(r, argv[0]).toEqual({
        code: 2,
        out: `keel dlq: cannot open ${file}: its schema version (user_version) is ${KEEL_FILE_FORMAT + 1}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes; open it with the Keel that made it, or a newer one; this one leaves the file as it is`,
      });
    }
    // (a read-only connection leaves the file's -wal and -shm behind: the file itself is as it was)
    expect(fileState(file).sha256).toBe(before.sha256);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT + 1);
  });

  it("another application's database (tables of its own, no dead_letters table) is refused untouched: no store tables added, no stamp, no WAL switch", () => {
    const file = tmpfile();
    writeDatabase(file, (db) => db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES (\'ada\')'), { wal: false });
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
    setUserVersion(file, KEEL_FILE_FORMAT + 7);
    const e = thrown(() => new SqliteStore(file, 'node-a'));
    expect(e).not.toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `it is not a Keel dead letter store (its schema version (user_version) is ${KEEL_FILE_FORMAT + 7} and it has no dead_letters table)`);
  });
});

/** The columns of `table` in `file`, read on a read-only connection. */
function columns(file: string, table: string): string[] {
  const db = new Database(file, { readonly: true });
  try {
    return (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name);
  } finally {
    db.close();
  }
}

/**
 * better-sqlite3, with a newer Keel stamping `file` (user_version `KEEL_FILE_FORMAT + 1`) just
 * before a read-write connection is opened: after the CLI's check on its read-only connection.
 */
function stampedNewerBeforeWriting(file: string): SqliteDriver {
  return class extends Database {
    constructor(f: string | Buffer, options?: { timeout?: number; readonly?: boolean; fileMustExist?: boolean }) {
      if (options?.readonly !== true) setUserVersion(file, KEEL_FILE_FORMAT + 1);
      super(f, options);
    }
  } as unknown as SqliteDriver;
}

describe('a store stamped by a newer Keel while this one opens it', () => {
  it("keel dlq retry and purge (the 'write' access): stamped newer after the read-only check, refused with StoreVersionError on the read-write connection, nothing written", async () => {
    const file = await storeWithOne();
    const e = thrown(() => openStoreFile(stampedNewerBeforeWriting(file), file, 'write', 1000).close());
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: KEEL_FILE_FORMAT + 1, supported: KEEL_FILE_FORMAT, file });
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT + 1);
  });

  it("a store made before the stamp (no os_start), stamped newer after the read-only check: refused, its table not altered (the stamp's write transaction checks the version)", () => {
    const file = tmpfile();
    storeOfBefore(file);
    const e = thrown(() => openStoreFile(stampedNewerBeforeWriting(file), file, 'write', 1000).close());
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT + 1);
    expect(columns(file, 'dead_letter_owner')).toEqual(['id', 'owner', 'os_pid']);
  });

  it("a node's set-up (setUpStoreFile): stamped newer between its check and its write transaction, refused, the store's tables not altered", () => {
    const file = tmpfile();
    storeOfBefore(file);
    const db = new Database(file);
    try {
      // a newer Keel stamps the file just before the set-up's write transaction begins
      const racing = new Proxy(db, {
        get(target, key) {
          if (key === 'transaction') return (fn: () => unknown) => (setUserVersion(file, KEEL_FILE_FORMAT + 1), target.transaction(fn));
          const value = Reflect.get(target, key) as unknown;
          return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
        },
      }) as unknown as SqliteDatabase;
      const e = thrown(() => setUpStoreFile(file, racing, DLQ_SCHEMA));
      expect(e).toBeInstanceOf(StoreVersionError);
    } finally {
      db.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT + 1);
    expect(columns(file, 'dead_letter_owner')).toEqual(['id', 'owner', 'os_pid']);
  });
});

/** Writes a claim row as another OS process would have left it (without os_start in a store made before it). */
function claim(file: string, osPid: number, osStart: string | null): void {
  const db = new Database(file);
  try {
    const cols = (db.prepare('SELECT name FROM pragma_table_info(?)').all('dead_letter_owner') as { name: string }[]).map((c) => c.name);
    if (cols.includes('os_start')) db.prepare("INSERT OR REPLACE INTO dead_letter_owner (id, owner, os_pid, os_start) VALUES (1, 'node-other', ?, ?)").run(osPid, osStart);
    else db.prepare("INSERT OR REPLACE INTO dead_letter_owner (id, owner, os_pid) VALUES (1, 'node-other', ?)").run(osPid);
  } finally {
    db.close();
  }
}

/** A store as Keel made it before the schema version (no user_version, no dead_letter_owner.os_start), holding one entry. */
function storeOfBefore(file: string): void {
  writeDatabase(file, (db) => {
    db.exec(LEGACY_DEAD_LETTER_TABLES);
    insertLetter(db, 'old', 'pending');
  });
}

describe("the SQLite dead letter store's claim on its file", () => {
  it.runIf(process.platform === 'linux')('takes over a claim whose OS pid now belongs to another live process (pid reuse, a reboot), refuses the live claimer itself; keel dlq names only a live claimer', async () => {
    const file = await storeWithOne();
    const other = process.ppid; // a live OS process that is not this one
    const live = startOf(other);
    expect(live).toBeDefined();
    claim(file, other, 'an-earlier-boot:1');
    const reader = new SqliteStore(file, undefined, undefined, 'read');
    try {
      expect(reader.owner()).toBeUndefined(); // the stale claim names no live node
    } finally {
      reader.close();
    }
    const b = new SqliteStore(file, 'node-b');
    try {
      expect(b.owner()).toEqual({ owner: 'node-b', osPid: process.pid });
    } finally {
      b.close();
    }

    claim(file, other, live!); // the live process that made the claim: in use
    expectKeelError(thrown(() => new SqliteStore(file, 'node-b')), 'ERR_STORE_IN_USE', `node-other (OS process ${other})`);
    const again = new SqliteStore(file, undefined, undefined, 'read');
    try {
      expect(again.owner()).toEqual({ owner: 'node-other', osPid: other });
    } finally {
      again.close();
    }
    claim(file, other, null); // a claim without a start identity (a store made before it): by its pid, as before
    expectKeelError(thrown(() => new SqliteStore(file, 'node-b')), 'ERR_STORE_IN_USE', `node-other (OS process ${other})`);
  });

  it('a store made before the schema version (no os_start column): read as it is, its claim judged by the pid; opened by a node, it gets the column and the stamp', () => {
    const file = tmpfile();
    storeOfBefore(file);
    claim(file, process.ppid, null);
    const reader = new SqliteStore(file, undefined, undefined, 'read');
    try {
      expect(reader.owner()).toEqual({ owner: 'node-other', osPid: process.ppid });
      expect(reader.list({}, 0, 10, undefined).entries.map((e) => e.message)).toEqual(['old']);
    } finally {
      reader.close();
    }
    expect(userVersion(file)).toBe(0);
    expectKeelError(thrown(() => new SqliteStore(file, 'node-b')), 'ERR_STORE_IN_USE', `node-other (OS process ${process.ppid})`);
    claim(file, 2 ** 22 + 12345, null); // a pid no process has
    const node = new SqliteStore(file, 'node-b');
    try {
      expect(node.list({}, 0, 10, undefined).entries.map((e) => e.message)).toEqual(['old']);
    } finally {
      node.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
    const db = new Database(file, { readonly: true });
    try {
      expect((db.prepare('SELECT name FROM pragma_table_info(?)').all('dead_letter_owner') as { name: string }[]).map((c) => c.name)).toEqual(['id', 'owner', 'os_pid', 'os_start']);
    } finally {
      db.close();
    }
  });
});

/**
 * Makes `<file>-shm` impossible to create or open: a dangling symlink, which SQLite does not follow
 * (O_NOFOLLOW), so that even root (whom a read-only directory does not stop) meets what a user meets
 * in a directory it may not create files in. test/cli/dlq.test.ts runs the CLI in a real read-only
 * directory.
 */
function blockShm(file: string): void {
  fs.symlinkSync(path.join(path.dirname(file), 'nowhere', 'x'), `${file}-shm`);
}

describe('reading a store in WAL mode whose -shm cannot be made (a read-only directory)', () => {
  it("'read' access reads a copy of the file in memory: the entries and the claim, the file unchanged; 'write' access and a node are refused", async () => {
    const file = await storeWithOne();
    blockShm(file);
    const before = fileState(file);
    expect(before.directory).toEqual(['dead-letters.db', 'dead-letters.db-shm']);
    const reader = new SqliteStore(file, undefined, undefined, 'read');
    try {
      expect(reader.list({}, 0, 10, undefined).entries.map((e) => e.message)).toEqual(['kept']);
      expect(reader.get('1')?.message).toBe('kept');
      expect(reader.counts()).toEqual({ pending: 1, parked: 0 });
      expect(reader.owner()).toBeUndefined();
    } finally {
      reader.close();
    }
    // the file as it was. The directory lets this process create files (the symlink stands in for
    // the read-only directory), so SQLite's try in place made an empty -wal before it met the -shm:
    // in a read-only directory it cannot (the CLI test there checks that nothing is created)
    expect(fileState(file).sha256).toBe(before.sha256);
    expect(fs.readdirSync(path.dirname(file)).filter((f) => !before.directory.includes(f))).toEqual(['dead-letters.db-wal']);
    expect(fs.statSync(`${file}-wal`).size).toBe(0);
    expectKeelError(thrown(() => new SqliteStore(file, undefined, undefined, 'write')), 'ERR_STORE_UNAVAILABLE', 'SQLITE_CANTOPEN');
    expectKeelError(thrown(() => new SqliteStore(file, 'node-b')), 'ERR_STORE_UNAVAILABLE', 'SQLITE_CANTOPEN');
    // (a read-write connection may leave an empty -wal here, where the directory lets it: the file itself is as it was)
    expect(fileState(file).sha256).toBe(before.sha256);
  });

  it('a -wal that holds writes not in the file yet (the copy would miss them) is refused, not read short', async () => {
    const file = await storeWithOne();
    // a writer that keeps its last write in the -wal (no checkpoint); its files are copied as they are
    const writer = new Database(file);
    const copy = path.join(fs.mkdtempSync(path.join(path.dirname(file), 'copy-')), 'dead-letters.db');
    try {
      writer.pragma('wal_autocheckpoint = 0');
      writer.prepare("UPDATE dead_letters SET status = 'parked'").run();
      fs.copyFileSync(file, copy);
      fs.copyFileSync(`${file}-wal`, `${copy}-wal`);
    } finally {
      writer.close();
    }
    expect(fs.statSync(`${copy}-wal`).size).toBeGreaterThan(0);
    blockShm(copy);
    expectKeelError(thrown(() => new SqliteStore(copy, undefined, undefined, 'read')), 'ERR_STORE_UNAVAILABLE', 'its -wal holds writes that are not in the file yet');
  });
});

describe('reading a store in WAL mode whose -shm cannot be made, too large to copy into memory', () => {
  // grown past what one readFileSync reads (a sparse file: nothing is written but its size); SQLite
  // ignores the bytes past the pages its header counts. The copy failed with Node's own
  // ERR_FS_FILE_TOO_LARGE, which passed for a Keel error: keel dlq exited 2 (bad usage, not a store)
  it('is refused as a store that could not be opened: ERR_STORE_UNAVAILABLE, and keel dlq list exits 1 with one line saying what to do', async () => {
    const file = await storeWithOne();
    fs.truncateSync(file, 2 ** 31 + 4096);
    blockShm(file);
    const e = thrown(() => new SqliteStore(file, undefined, undefined, 'read'));
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', 'too large to read from a copy in memory');
    expect(e).toBeInstanceOf(StoreUnavailableError);
    const lines: string[] = [];
    const code = runDlq(['list', '--store', file], (line) => lines.push(line), () => 10);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^keel dlq list: could not open ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: `));
    expect(lines[0]).toContain('too large to read from a copy in memory');
    expect(code).toBe(1);
    expect(fs.statSync(file).size).toBe(2 ** 31 + 4096); // nothing written
  });
});
