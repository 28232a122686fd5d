import { schemaProblem, type SqliteDatabase, type StoreSchema, stampSchema } from './sqliteFile.js';

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
 * (`StoreVersionError`) before anything is written. Version 2 added the claimer's start
 * identity (`dead_letter_owner.os_start`), added to an older store when it is stamped.
 */
export const SCHEMA_VERSION = 2;

/** The store's schema, as its file is checked and stamped (the helpers shared with the agent store). */
export const DLQ_SCHEMA: StoreSchema = {
  store: 'dead letter store',
  sql: SCHEMA,
  version: SCHEMA_VERSION,
  mainTable: 'dead_letters',
  tables: [
    ['dead_letters', ['seq', 'recipient', 'payload', 'reason', 'attempts', 'first_failed_at', 'last_attempt_at', 'next_retry_at', 'last_error', 'status']],
    ['dead_letter_owner', ['id', 'owner', 'os_pid', 'os_start']],
  ],
  // a store made before SCHEMA_VERSION 2 lacks the claimer's start identity
  addedColumns: { 'dead_letter_owner.os_start': 'TEXT' },
};

/**
 * Why a database is not a Keel dead letter store, or undefined when it is one: a table of the store
 * with other columns (another application's), tables of another application and no `dead_letters`
 * table, or, when the store must be `complete` (the CLI), a missing one. A schema version newer
 * than {@link SCHEMA_VERSION} is thrown (`StoreVersionError`) when the file has the store's
 * `dead_letters` table (a newer Keel's store), and is a problem when it has not. Reads only.
 */
export function storeProblem(file: string, db: Database, complete: boolean): string | undefined {
  return schemaProblem(file, db, DLQ_SCHEMA, complete);
}

/**
 * Brings a store of an older schema version (0: never stamped) to {@link SCHEMA_VERSION} (the
 * columns added since) and stamps it; a write only then. Run in a write transaction.
 */
export function stamp(db: Database): void {
  stampSchema(db, DLQ_SCHEMA);
}
