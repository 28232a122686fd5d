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

/** The most SQLite takes in one string or blob, and in one row (better-sqlite3 is built with SQLite's default). */
export const SQLITE_MAX_LENGTH = 1_000_000_000;

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
 * Keel's SQLite file format version, stamped in a store's file as `PRAGMA user_version`: one
 * number for the file, shared by both stores, since one file may hold both (a node's dead letter
 * store and its agent store at the same path). Bumped whenever either store's schema changes; each
 * store still brings its own tables up to date by the tables and columns it finds (a store made
 * before a change lacks them), not by this number. A file stamped with a higher format (a newer
 * Keel's) is refused by either store before anything is written. 2: the dead letter store's claim
 * records its process's start identity (the agent store, stamped 1 by itself for a while, reads 2).
 */
export const KEEL_FILE_FORMAT = 2;

/**
 * @internal The format version stamped in a store's file (`PRAGMA user_version`): 0 for a file
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

/** @internal The tables of one of Keel's SQLite stores, as a Keel file holds them. */
export interface KeelStoreTables {
  /** The store, as messages name it ('dead letter store', 'agent store'). */
  readonly store: string;
  /** The table that makes a database the store's: one with tables of its own and no Keel store's is another application's. */
  readonly mainTable: string;
  /** The table of its claim (row `id = 1`: the OS process that has the store open, `os_pid` and `os_start`). */
  readonly claimTable: string;
  /** The store's tables and their columns. */
  readonly tables: readonly (readonly [string, readonly string[]])[];
  /** The columns (`table.column`) a store made before them lacks, with their type: added when it is opened for writing. */
  readonly addedColumns: Readonly<Record<string, string>>;
}

/** @internal The dead letter store's tables (its schema: sqliteStoreSchema.ts). */
export const DLQ_TABLES: KeelStoreTables = {
  store: 'dead letter store',
  mainTable: 'dead_letters',
  claimTable: 'dead_letter_owner',
  tables: [
    ['dead_letters', ['seq', 'recipient', 'payload', 'reason', 'attempts', 'first_failed_at', 'last_attempt_at', 'next_retry_at', 'last_error', 'status']],
    ['dead_letter_owner', ['id', 'owner', 'os_pid', 'os_start']],
  ],
  // a store made before format 2 lacks the claimer's start identity
  addedColumns: { 'dead_letter_owner.os_start': 'TEXT' },
};

/** @internal The agent store's tables (its schema: src/agents/store/sqliteAgentSchema.ts). */
export const AGENT_STORE_TABLES: KeelStoreTables = {
  store: 'agent store',
  mainTable: 'agent_records',
  claimTable: 'agent_store_owner',
  tables: [
    ['agent_records', ['component', 'kind', 'key', 'value']],
    ['agent_store_owner', ['id', 'os_pid', 'os_start']],
  ],
  // a store made before the claim recorded its start identity lacks it
  addedColumns: { 'agent_store_owner.os_start': 'TEXT' },
};

/** @internal Keel's stores that may share a file: a database holding any one's main table (with its columns) is a Keel file. */
export const KEEL_STORES: readonly KeelStoreTables[] = [DLQ_TABLES, AGENT_STORE_TABLES];

/**
 * @internal A SQLite store's schema, as its file is checked, made and stamped by
 * {@link schemaProblem}, {@link stampSchema} and {@link setUpStoreFile}.
 */
export interface StoreSchema extends KeelStoreTables {
  /** Its tables, made where missing (`CREATE TABLE IF NOT EXISTS`, ...). */
  readonly sql: string;
}

/** The columns of `table` (none: no such table). */
function columnsOf(db: SqliteDatabase, table: string): string[] {
  return (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name);
}

/** Whether the columns `found` of `table` are the store's (less those added since, which an older store lacks). */
function columnsMatch(store: KeelStoreTables, table: string, expected: readonly string[], found: readonly string[]): boolean {
  const wanted = expected.filter((c) => found.includes(c) || store.addedColumns[`${table}.${c}`] === undefined);
  return found.length === wanted.length && wanted.every((c) => found.includes(c));
}

/**
 * @internal Why a database is not a store of `schema`, or undefined when it is one (or a Keel file
 * that will take it: one holding another Keel store's tables): a table of the store with other
 * columns (another application's), tables of another application and no Keel store's main table,
 * or, when the store must be `complete`, a missing one. A format version newer than
 * {@link KEEL_FILE_FORMAT} is thrown ({@link StoreVersionError}) when the file has a Keel store's
 * main table (a newer Keel's file), and is a problem when it has not. Reads only.
 */
export function schemaProblem(file: string, db: SqliteDatabase, schema: StoreSchema, complete: boolean): string | undefined {
  const version = schemaVersion(db);
  const tables = userTables(db);
  const main = schema.mainTable;
  if (version > KEEL_FILE_FORMAT) {
    if (KEEL_STORES.some((s) => tables.includes(s.mainTable))) throw new StoreVersionError(file, version, KEEL_FILE_FORMAT, schema.store);
    return `its schema version (user_version) is ${version} and it has no ${main} table`;
  }
  if (!complete && tables.length > 0 && !tables.includes(main)) {
    // another Keel store's file (one file may hold both): a Keel file, which this store joins
    const keelFile = KEEL_STORES.some((s) => {
      const expected = s.tables.find(([t]) => t === s.mainTable)?.[1] ?? [];
      return s.store !== schema.store && tables.includes(s.mainTable) && columnsMatch(s, s.mainTable, expected, columnsOf(db, s.mainTable));
    });
    if (!keelFile) return `it has tables of its own and no ${main} table: ${tables.join(', ')}`;
  }
  for (const [table, expected] of schema.tables) {
    const found = columnsOf(db, table);
    if (found.length === 0) {
      if (complete) return `it has no ${table} table`;
      continue;
    }
    if (!columnsMatch(schema, table, expected, found)) return `its ${table} table has other columns: ${found.join(', ')}`;
  }
  return undefined;
}

/**
 * @internal Whether the store of `schema` in `db` must be written to be up to date (then
 * {@link stampSchema}, in a write transaction): a file stamped with an older format (0: never
 * stamped), or lacking a table of the store or a column added since (a file another store stamped,
 * or a store made before the column). A newer format too (stamped by a newer Keel since the file was
 * checked): {@link stampSchema} refuses it under the write lock. Reads only.
 */
export function schemaBehind(db: SqliteDatabase, schema: StoreSchema): boolean {
  if (schemaVersion(db) !== KEEL_FILE_FORMAT) return true;
  if (schema.tables.some(([table]) => columnsOf(db, table).length === 0)) return true;
  return Object.keys(schema.addedColumns).some((column) => {
    const [table, name] = column.split('.') as [string, string];
    return !columnsOf(db, table).includes(name);
  });
}

/**
 * @internal The check an open store runs at the start of each of its write transactions (under the
 * write lock): `PRAGMA data_version` tells whether another connection has committed since the last
 * check (a statement per write), and only then is the format read again (the first check reads it).
 * A file raised to a newer format under the open store (by a tool, or a Keel, that ignored its claim)
 * throws {@link StoreVersionError}: the transaction is rolled back, the store's rows never written
 * into a file of another format; every later write is refused alike.
 */
export function formatCheck(db: SqliteDatabase, file: string, store: string): () => void {
  const dataVersion = db.prepare('PRAGMA data_version');
  const userVersion = db.prepare('PRAGMA user_version');
  let seen: unknown;
  return () => {
    const now = (dataVersion.get() as { data_version?: unknown } | undefined)?.data_version;
    if (now === seen) return;
    const version = (userVersion.get() as { user_version?: unknown } | undefined)?.user_version;
    if (typeof version === 'number' && version > KEEL_FILE_FORMAT) throw new StoreVersionError(file, version, KEEL_FILE_FORMAT, store);
    seen = now;
  };
}

/** @internal A claim on one of Keel's stores in a file, held by another live OS process. */
export interface LiveClaim {
  /** The store claimed ('dead letter store', 'agent store'). */
  readonly store: string;
  readonly osPid: number;
  /** The node named in the claim (the dead letter store's). */
  readonly owner?: string;
}

/**
 * @internal The claim on the store `store` in `db`, when another OS process that still runs holds it
 * (by its pid and, where recorded, its start identity): undefined when there is no claim table or
 * claim, or the claim is this process's or a gone one's. Reads only (every column: an older store
 * lacks `os_start`).
 */
export function liveClaim(db: SqliteDatabase, store: KeelStoreTables): LiveClaim | undefined {
  if (columnsOf(db, store.claimTable).length === 0) return undefined;
  const row = db.prepare(`SELECT * FROM ${store.claimTable} WHERE id = 1`).get() as { os_pid?: unknown; os_start?: unknown; owner?: unknown } | undefined;
  const osPid = row?.os_pid;
  if (typeof osPid !== 'number' || osPid === process.pid || !claimHeld(osPid, typeof row?.os_start === 'string' ? row.os_start : null)) return undefined;
  return { store: store.store, osPid, ...(typeof row?.owner === 'string' ? { owner: row.owner } : {}) };
}

/**
 * @internal Why `file`, of the older format `version`, is not brought up to date: the live process
 * `held` has it open, and would go on writing rows of its format into a file of a newer one.
 */
export function formatHeldError(file: string, version: number, held: LiveClaim, store: string): StoreUnavailableError {
  const holder = `OS process ${held.osPid} (${held.owner === undefined ? '' : `node ${held.owner}, `}its ${held.store})`;
  return new StoreUnavailableError(
    file,
    `its file format (user_version) is ${version}, older than the version ${KEEL_FILE_FORMAT} this Keel writes, and ${holder} has it open: raising the format under it would leave that process writing rows of its format into a file of a newer one`,
    undefined,
    'stop that process (or open the file with the Keel it runs), then open the file again; this one leaves the file as it is',
    undefined,
    store,
  );
}

/**
 * @internal Brings the store of `schema` up to date (the columns added since, found missing in its
 * own tables; another store's tables are left as they are) and stamps the file with
 * {@link KEEL_FILE_FORMAT} if it has an older one; a write only then. Run in a write transaction
 * (`BEGIN IMMEDIATE`): a file stamped newer (by a newer Keel, since it was checked) is refused there,
 * with {@link StoreVersionError}, before anything is written. The format is raised only where no
 * other live OS process has the file open: a file of an older format claimed by one (either store's
 * claim: it runs an older Keel, and would go on writing rows of its format into a file of a newer
 * one) is refused there too ({@link formatHeldError}), as a column to add to the store's own tables
 * claimed by one; a node takes its claim in the same transaction ({@link setUpStoreFile}).
 */
export function stampSchema(file: string, db: SqliteDatabase, schema: StoreSchema): void {
  const version = schemaVersion(db);
  if (version > KEEL_FILE_FORMAT) throw new StoreVersionError(file, version, KEEL_FILE_FORMAT, schema.store);
  const added: [string, string, string][] = [];
  for (const [column, type] of Object.entries(schema.addedColumns)) {
    const [table, name] = column.split('.') as [string, string];
    const found = columnsOf(db, table);
    if (found.length > 0 && !found.includes(name)) added.push([table, name, type]);
  }
  // raising the format: every store's claim in the file; altering the store's own tables: its own
  const holders = version < KEEL_FILE_FORMAT ? KEEL_STORES : added.length > 0 ? [schema] : [];
  for (const store of holders) {
    const held = liveClaim(db, store);
    if (held !== undefined) throw formatHeldError(file, version, held, schema.store);
  }
  for (const [table, name, type] of added) db.exec(`ALTER TABLE ${table} ADD COLUMN ${name} ${type}`);
  if (version < KEEL_FILE_FORMAT) db.pragma(`user_version = ${KEEL_FILE_FORMAT}`);
}

/** @internal A node's claim on its store, checked and taken in {@link setUpStoreFile}'s write transaction. */
export interface StoreClaim {
  /** The error for the store's claim held by another live OS process. */
  inUse(held: LiveClaim): Error;
  /** Takes the claim (the store's tables are there, up to date). */
  take(db: SqliteDatabase): void;
}

/**
 * @internal Sets up a node's store on the connection `db` to `file`, checked first so that another
 * application's database, or a newer Keel's file, is left as it is (no WAL switch, no tables):
 * refused with {@link StoreUnavailableError} (or {@link StoreVersionError}). Then WAL with
 * `synchronous=NORMAL`, and the store's tables made, the file stamped and the node's `claim` taken in
 * one write transaction: the claim checked first (held by another live OS process: `claim.inUse`),
 * then the stamp where the file is new, older, or holds only the other Keel store's tables (left as
 * they are), refused when another live process holds the file ({@link stampSchema}); a refusal
 * writes nothing. Without a claim an up-to-date store is not written (no write lock to take).
 */
export function setUpStoreFile(file: string, db: SqliteDatabase, schema: StoreSchema, claim?: StoreClaim): void {
  const problem = schemaProblem(file, db, schema, false);
  if (problem !== undefined) {
    const aStore = `${/^[aeiou]/.test(schema.store) ? 'an' : 'a'} ${schema.store}`;
    throw new StoreUnavailableError(file, `it is not a Keel ${schema.store} (${problem})`, undefined, `give the path of ${aStore}, or of a file to create`, undefined, schema.store);
  }
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = NORMAL');
  if (!schemaBehind(db, schema) && claim === undefined) {
    db.exec(schema.sql); // an up-to-date store: nothing to write
    return;
  }
  // a new file, an older one, or the other store's: the tables, the stamp and the claim in one
  // transaction. The file is judged again under the write lock, not by what was read before it: a
  // file raised to a newer format while the lock was awaited (by a newer Keel that holds no claim, its
  // CLI) is refused before anything is written (no claim of this format in it), and the stamp writes
  // only what is behind by then
  db.transaction(() => {
    const version = schemaVersion(db);
    if (version > KEEL_FILE_FORMAT) throw new StoreVersionError(file, version, KEEL_FILE_FORMAT, schema.store);
    const held = claim === undefined ? undefined : liveClaim(db, schema);
    if (held !== undefined) throw claim!.inUse(held);
    db.exec(schema.sql);
    stampSchema(file, db, schema);
    claim?.take(db);
  }).immediate();
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
