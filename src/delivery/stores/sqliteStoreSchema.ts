import { StoreVersionError } from '../../errors.js';
import { schemaVersion, type SqliteDatabase, userTables } from './sqliteFile.js';

// The SQLite dead letter store's schema: its tables, the version stamped in the file, whether a
// database is a store (and of which version), and the stamp that brings an older store up to date.

type Database = SqliteDatabase;

/** The store's tables, made where missing. */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS dead_letters (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  recipient TEXT NOT NULL,
  payload BLOB NOT NULL,
  reason TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  first_failed_at INTEGER NOT NULL,
  last_attempt_at INTEGER NOT NULL,
  next_retry_at INTEGER NOT NULL,
  last_error BLOB,
  status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS dead_letters_due ON dead_letters (status, next_retry_at);
CREATE TABLE IF NOT EXISTS dead_letter_owner (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, os_pid INTEGER NOT NULL, os_start TEXT);
`;

/**
 * The version of the store's schema, stamped in the file as `PRAGMA user_version` when the store
 * makes its tables. A file stamped 0 (never stamped) that holds the store's tables is a store made
 * before the stamp: it is stamped when opened for writing. A newer version is refused
 * ({@link StoreVersionError}) before anything is written. Version 2 added the claimer's start
 * identity (`dead_letter_owner.os_start`), added to an older store when it is stamped.
 */
export const SCHEMA_VERSION = 2;

const STORE_TABLES = [
  ['dead_letters', ['seq', 'recipient', 'payload', 'reason', 'attempts', 'first_failed_at', 'last_attempt_at', 'next_retry_at', 'last_error', 'status']],
  ['dead_letter_owner', ['id', 'owner', 'os_pid', 'os_start']],
] as const;

/** The columns a store made before {@link SCHEMA_VERSION} 2 may lack (added when it is stamped). */
const ADDED_COLUMNS: ReadonlySet<string> = new Set(['dead_letter_owner.os_start']);

/**
 * Why a database is not a Keel dead letter store, or undefined when it is one: a table of the store
 * with other columns (another application's), tables of another application and no `dead_letters`
 * table, or, when the store must be `complete` (the CLI), a missing one. A schema version newer
 * than {@link SCHEMA_VERSION} is thrown ({@link StoreVersionError}) when the file has the store's
 * `dead_letters` table (a newer Keel's store), and is a problem when it has not. Reads only.
 */
export function storeProblem(file: string, db: Database, complete: boolean): string | undefined {
  const version = schemaVersion(db);
  const tables = userTables(db);
  if (version > SCHEMA_VERSION) {
    if (tables.includes('dead_letters')) throw new StoreVersionError(file, version, SCHEMA_VERSION);
    return `its schema version (user_version) is ${version} and it has no dead_letters table`;
  }
  if (!complete && tables.length > 0 && !tables.includes('dead_letters')) return `it has tables of its own and no dead_letters table: ${tables.join(', ')}`;
  const columnsOf = db.prepare('SELECT name FROM pragma_table_info(?)');
  for (const [table, expected] of STORE_TABLES) {
    const found = (columnsOf.all(table) as { name: string }[]).map((c) => c.name);
    if (found.length === 0) {
      if (complete) return `it has no ${table} table`;
      continue;
    }
    const wanted = expected.filter((c) => found.includes(c) || !ADDED_COLUMNS.has(`${table}.${c}`));
    if (found.length !== wanted.length || !wanted.every((c) => found.includes(c))) return `its ${table} table has other columns: ${found.join(', ')}`;
  }
  return undefined;
}

/**
 * Brings a store of an older schema version (0: never stamped) to {@link SCHEMA_VERSION} (the
 * columns added since) and stamps it; a write only then. Run in a write transaction.
 */
export function stamp(db: Database): void {
  if (schemaVersion(db) >= SCHEMA_VERSION) return;
  const ownerColumns = (db.prepare('SELECT name FROM pragma_table_info(?)').all('dead_letter_owner') as { name: string }[]).map((c) => c.name);
  if (!ownerColumns.includes('os_start')) db.exec('ALTER TABLE dead_letter_owner ADD COLUMN os_start TEXT');
  db.pragma(`user_version = ${SCHEMA_VERSION}`);
}
