import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { MissingPeerError, StoreUnavailableError, StoreVersionError } from '../../errors.js';
import { monotonicClock } from '../../runtime/Clock.js';

// What Keel's SQLite stores (the dead letter store, the agent store) share: the part of
// better-sqlite3 they use (an optional peer, loaded when a store opens), SQLite's error code, why a
// file could not be opened and what to do about it, and whether the OS process that claimed a file
// still runs.

/** A prepared statement, as the stores use it. */
export type SqliteStatement = {
  run(...args: unknown[]): { changes: number; lastInsertRowid: number | bigint };
  get(...args: unknown[]): unknown;
  all(...args: unknown[]): unknown[];
};

/** A better-sqlite3 database, as the stores use it. */
export interface SqliteDatabase {
  pragma(source: string): unknown;
  exec(source: string): unknown;
  prepare(source: string): SqliteStatement;
  /** The function run in a transaction (`BEGIN`), and `.immediate` in one that takes the write lock first (`BEGIN IMMEDIATE`). */
  transaction<F extends (...args: any[]) => unknown>(fn: F): F & { immediate: F };
  close(): void;
  readonly inTransaction: boolean;
}

/** better-sqlite3's constructor: a path, or a Buffer holding a whole database (opened in memory). */
export type SqliteDriver = new (file: string | Buffer, options?: { timeout?: number; readonly?: boolean; fileMustExist?: boolean }) => SqliteDatabase;

/** better-sqlite3, or `MissingPeerError` naming `what` needs it (the SQLite dead letter store, ...). */
export function loadSqliteDriver(what: string): SqliteDriver {
  try {
    return createRequire(import.meta.url)('better-sqlite3') as SqliteDriver;
  } catch {
    throw new MissingPeerError('better-sqlite3', what);
  }
}

/** SQLite's code of a driver error (`SQLITE_BUSY`, ...), or undefined for any other error. */
export function sqliteCode(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('SQLITE_') ? code : undefined;
}

/**
 * Why `file` could not be opened as a store, and what to do about it: a typed error that keeps the
 * driver's as its cause. `store` names the store in the message ('dead letter store', 'agent store').
 */
export function openFailure(file: string, error: unknown, store: string): StoreUnavailableError {
  const code = sqliteCode(error);
  const why = error instanceof Error ? error.message : String(error);
  const dir = path.dirname(file);
  const isDirectory = (p: string): boolean => {
    try {
      return statSync(p).isDirectory();
    } catch {
      return false;
    }
  };
  let hint: string;
  if (isDirectory(file)) hint = `${file} is a directory: give the path of a store file (a new file is created)`;
  else if (!isDirectory(dir)) hint = `its directory ${dir} does not exist: create it, or give a path in an existing directory`;
  else if (code === 'SQLITE_NOTADB') hint = `${file} is not a SQLite database: give the path of a ${store}, or of a file to create`;
  else if (code === 'SQLITE_BUSY' || code === 'SQLITE_LOCKED') hint = 'another connection holds a write lock on the file: try again once it is released';
  else if (code?.startsWith('SQLITE_READONLY') === true) hint = `this process may not write ${file}, or create files in ${dir} (SQLite writes a database in WAL mode through its -wal and -shm files there): run it as a user that may, or give another path`;
  else if (code?.startsWith('SQLITE_CORRUPT') === true) hint = `${file} is damaged: restore it from a backup, or salvage its rows with the sqlite3 shell's .recover`;
  else hint = `check that ${dir} exists and that this process may create and write files there, or give another path`;
  return new StoreUnavailableError(file, why, code, hint, error, store);
}

/**
 * Whether the OS process `osPid` runs (EPERM: it runs, under another user). Not a process id (0 or
 * below names a process group: a corrupt claim row) is not a running process.
 */
export function osProcessAlive(osPid: unknown): boolean {
  if (typeof osPid !== 'number' || !Number.isSafeInteger(osPid) || osPid <= 0 || osPid > 2 ** 31 - 1) return false;
  try {
    process.kill(osPid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

// ---- waiting for a lock without blocking the event loop (better-sqlite3 is synchronous) ----

/** A clock to wait on: the node's timers' (a TestClock in tests), or the host's; its `now()` times the waits only, never a timestamp. */
export interface StoreClock {
  now(): number;
  setTimer(ms: number, fn: () => void): { cancel(): unknown };
}

/** The host's clock: the monotonic clock and host timers (a pending try holds the OS process open until it is written or fails). */
export const HOST_CLOCK: StoreClock = {
  now: monotonicClock,
  setTimer(ms, fn) {
    const t = setTimeout(fn, ms);
    return { cancel: () => clearTimeout(t) };
  },
};

/** How long one statement of a node's SQLite store (dead letters, agents) waits for a lock (the event loop waits with it). */
export const NODE_BUSY_TIMEOUT_MS = 50;
/**
 * How long in all a write of a node's SQLite store waits for a lock (better-sqlite3's old single
 * wait): a dead letter add, then rejected; the open and the closing writes, in one statement.
 */
export const NODE_LOCK_WAIT_MS = 5000;
/** The waits between the tries of a write that met a locked file: 25 ms, doubled up to 400 ms. */
const LOCK_RETRY_FIRST_MS = 25;
const LOCK_RETRY_MAX_MS = 400;

/** @internal A lock held by another connection (anything else fails at once). */
export const LOCKED = /^SQLITE_(BUSY|LOCKED)/;

/** @internal The wait before try `tries + 1` of a write that met a locked file: 25 ms, doubled up to 400 ms. */
export function lockRetryDelay(tries: number): number {
  return Math.min(LOCK_RETRY_FIRST_MS * 2 ** tries, LOCK_RETRY_MAX_MS);
}

/**
 * A failure of the database as a whole (locked, full, read-only, an I/O error): every row of a
 * group commit would fail alike, so they are not tried again one by one (each would wait out the
 * busy timeout again). Any other failure may be one row's own (too big, a constraint).
 */
export const DATABASE_WIDE = /^SQLITE_(BUSY|LOCKED|FULL|IOERR|READONLY|CORRUPT|NOTADB|CANTOPEN|NOMEM|PERM|AUTH|INTERRUPT|PROTOCOL)/;

/**
 * @internal Sets how long a statement of `db` waits for another connection's lock (the whole event
 * loop waits with it): true when set (a pragma on a closed or broken connection throws: the timeout
 * stays as it was).
 */
export function setBusyTimeout(db: SqliteDatabase, ms: number): boolean {
  try {
    db.pragma(`busy_timeout = ${Math.max(0, Math.floor(ms))}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * @internal The start identity of the OS process `osPid` (Linux: the boot id and its start time, which tell
 * the process that made a claim from a later one that was given its pid), or undefined where it
 * cannot be read (another OS, no /proc): the claim is then judged by the pid alone.
 */
export function startOf(osPid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${osPid}/stat`, 'utf8');
    const starttime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    if (starttime === undefined || !/^\d+$/.test(starttime)) return undefined;
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${starttime}`;
  } catch {
    return undefined;
  }
}

/** @internal Whether the claim of `osPid` (made by the process whose start identity was `osStart`) is held by a live process. */
export function claimHeld(osPid: number, osStart: string | null): boolean {
  if (!osProcessAlive(osPid)) return false;
  if (typeof osStart !== 'string') return true; // an older claim, without the identity: by the pid
  const now = startOf(osPid);
  // another process now has the claimer's pid (pid reuse): the claimer is gone
  return now === undefined || now === osStart;
}

/** @internal The file's identity (device and inode): the same file under any path, a symlink's or a hard link's. */
export function fileId(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/**
 * @internal The schema version a store stamped in its file (`PRAGMA user_version`): 0 for a file
 * never stamped (a new one, or a store made before the stamp). Reads only.
 */
export function schemaVersion(db: SqliteDatabase): number {
  const row = (db.pragma('user_version') as { user_version?: unknown }[])[0];
  return typeof row?.user_version === 'number' ? row.user_version : 0;
}

/** @internal The names of the tables of `db` other than SQLite's own (`sqlite_sequence`, ...), in name order. Reads only. */
export function userTables(db: SqliteDatabase): string[] {
  return (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
}

/**
 * @internal A SQLite store's schema, as its file is checked, made and stamped by
 * {@link schemaProblem}, {@link stampSchema} and {@link setUpStoreFile}.
 */
export interface StoreSchema {
  /** The store, as messages name it ('dead letter store', 'agent store'). */
  readonly store: string;
  /** Its tables, made where missing (`CREATE TABLE IF NOT EXISTS`, ...). */
  readonly sql: string;
  /** The version stamped in the file (`PRAGMA user_version`). */
  readonly version: number;
  /** The table that makes a database the store's: one with tables of its own and not this one is another application's. */
  readonly mainTable: string;
  /** The store's tables and their columns. */
  readonly tables: readonly (readonly [string, readonly string[]])[];
  /** The columns (`table.column`) a store of an older version may lack, with their type: added when it is stamped. */
  readonly addedColumns: Readonly<Record<string, string>>;
}

/**
 * @internal Why a database is not a store of `schema`, or undefined when it is one: a table of the
 * store with other columns (another application's), tables of another application and no
 * `mainTable`, or, when the store must be `complete`, a missing one. A schema version newer than
 * the store's is thrown ({@link StoreVersionError}) when the file has the store's `mainTable` (a
 * newer Keel's store), and is a problem when it has not. Reads only.
 */
export function schemaProblem(file: string, db: SqliteDatabase, schema: StoreSchema, complete: boolean): string | undefined {
  const version = schemaVersion(db);
  const tables = userTables(db);
  const main = schema.mainTable;
  if (version > schema.version) {
    if (tables.includes(main)) throw new StoreVersionError(file, version, schema.version, schema.store);
    return `its schema version (user_version) is ${version} and it has no ${main} table`;
  }
  if (!complete && tables.length > 0 && !tables.includes(main)) return `it has tables of its own and no ${main} table: ${tables.join(', ')}`;
  const columnsOf = db.prepare('SELECT name FROM pragma_table_info(?)');
  for (const [table, expected] of schema.tables) {
    const found = (columnsOf.all(table) as { name: string }[]).map((c) => c.name);
    if (found.length === 0) {
      if (complete) return `it has no ${table} table`;
      continue;
    }
    const wanted = expected.filter((c) => found.includes(c) || schema.addedColumns[`${table}.${c}`] === undefined);
    if (found.length !== wanted.length || !wanted.every((c) => found.includes(c))) return `its ${table} table has other columns: ${found.join(', ')}`;
  }
  return undefined;
}

/**
 * @internal Brings a store of an older schema version (0: never stamped) to `schema`'s (the
 * columns added since) and stamps it; a write only then. Run in a write transaction.
 */
export function stampSchema(db: SqliteDatabase, schema: StoreSchema): void {
  if (schemaVersion(db) >= schema.version) return;
  const columnsOf = db.prepare('SELECT name FROM pragma_table_info(?)');
  for (const [column, type] of Object.entries(schema.addedColumns)) {
    const [table, name] = column.split('.') as [string, string];
    if (!(columnsOf.all(table) as { name: string }[]).some((c) => c.name === name)) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
  }
  db.pragma(`user_version = ${schema.version}`);
}

/**
 * @internal Sets up a node's store on the connection `db` to `file`, checked first so that another
 * application's database, or a newer Keel's store, is left as it is (no WAL switch, no tables):
 * refused with {@link StoreUnavailableError} (or {@link StoreVersionError}). Then WAL with
 * `synchronous=NORMAL`, and the store's tables made and stamped in one write transaction where the
 * file is new or older; a stamped store is not written (no write lock to take).
 */
export function setUpStoreFile(file: string, db: SqliteDatabase, schema: StoreSchema): void {
  const problem = schemaProblem(file, db, schema, false);
  if (problem !== undefined) {
    const aStore = `${/^[aeiou]/.test(schema.store) ? 'an' : 'a'} ${schema.store}`;
    throw new StoreUnavailableError(file, `it is not a Keel ${schema.store} (${problem})`, undefined, `give the path of ${aStore}, or of a file to create`, undefined, schema.store);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  if (schemaVersion(db) < schema.version) {
    // a new file (or one made before the stamp): the tables and the stamp in one transaction
    db.transaction(() => {
      db.exec(schema.sql);
      stampSchema(db, schema);
    }).immediate();
  } else db.exec(schema.sql); // a stamped store: nothing to write
}

/** @internal Whether `file` is a SQLite database in WAL mode (its header's read and write versions are 2). */
export function isWalFile(file: string): boolean {
  const header = Buffer.alloc(20);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'r');
    return readSync(fd, header, 0, 20, 0) === 20 && header.toString('latin1', 0, 16) === 'SQLite format 3\0' && header[18] === 2 && header[19] === 2;
  } catch {
    return false;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * @internal Whether a read-only connection failed only for want of the WAL index: SQLite reads a
 * database in WAL mode through its `-shm` file, which it must create (or open) beside it, so a
 * process that may not create files in the directory cannot read the file in place.
 */
export function walIndexUnavailable(file: string, error: unknown): boolean {
  return /^SQLITE_(CANTOPEN|READONLY)/.test(sqliteCode(error) ?? '') && isWalFile(file);
}

/**
 * @internal The largest file {@link walSnapshot} copies into memory: what one `readFileSync` reads
 * (2 GiB less a byte); a larger one would fail there with Node's own error.
 */
export const SNAPSHOT_MAX_BYTES = 2 ** 31 - 1;

/**
 * @internal A read-only connection on a copy, in memory, of the WAL-mode database `file`, for a
 * reader that cannot read it in place ({@link walIndexUnavailable}). SQLite's own way around that,
 * the `immutable=1` URI parameter, needs URI filenames, which better-sqlite3 is built without; the
 * copy is marked a rollback-journal database (header bytes 18 and 19, as the file format defines
 * them) so that SQLite reads it without a `-shm`. It is the file as it is: `'unwritten'` when the
 * file's `-wal` holds writes not yet in it (a node has it open, or was killed), which the copy would
 * miss, and `'too_large'` when the file is larger than {@link SNAPSHOT_MAX_BYTES}.
 */
export function walSnapshot(Driver: SqliteDriver, file: string): SqliteDatabase | 'unwritten' | 'too_large' {
  try {
    if (statSync(`${file}-wal`).size > 0) return 'unwritten';
  } catch {
    // no -wal: every write is in the file
  }
  if (statSync(file).size > SNAPSHOT_MAX_BYTES) return 'too_large';
  const image = readFileSync(file);
  image[18] = 1;
  image[19] = 1;
  return new Driver(image, { readonly: true });
}
