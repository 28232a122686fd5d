import { DLQ_TABLES, schemaBehind, schemaProblem, type SqliteDatabase, type StoreSchema, stampSchema } from './sqliteFile.js';

// The SQLite dead letter store's schema: its tables, whether a database is a store (or a Keel file
// that takes one), and the stamp that brings an older store up to date.

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
 * The store's schema, as its file is checked and stamped (the helpers shared with the agent store):
 * its tables are {@link DLQ_TABLES}. The file is stamped with Keel's file format version
 * (`KEEL_FILE_FORMAT` (sqliteFile.ts), `PRAGMA user_version`), shared with the agent store, which may hold its
 * tables in the same file. A file stamped 0 (never stamped) that holds the store's tables is a store
 * made before the stamp: it is stamped when opened for writing, and given the claimer's start
 * identity (`dead_letter_owner.os_start`) if it lacks it. A newer format is refused
 * (`StoreVersionError`) before anything is written.
 */
export const DLQ_SCHEMA: StoreSchema = { ...DLQ_TABLES, sql: SCHEMA };

/**
 * Why a database is not a Keel dead letter store, or undefined when it is one: a table of the store
 * with other columns (another application's), tables of another application and no Keel store's
 * (`dead_letters`, or the agent store's `agent_records`), or, when the store must be `complete` (the
 * CLI), a missing one. A format version newer than `KEEL_FILE_FORMAT` (sqliteFile.ts) is thrown
 * (`StoreVersionError`) when the file has a Keel store's main table (a newer Keel's file), and is a
 * problem when it has not. Reads only.
 */
export function storeProblem(file: string, db: Database, complete: boolean): string | undefined {
  return schemaProblem(file, db, DLQ_SCHEMA, complete);
}

/** Whether the store must be written to be up to date (an older format, a column added since), or is stamped newer: then {@link stamp}. Reads only. */
export function behind(db: Database): boolean {
  return schemaBehind(db, DLQ_SCHEMA);
}

/**
 * Brings the store up to date (the columns added since) and stamps the file with
 * `KEEL_FILE_FORMAT` (sqliteFile.ts) if it has an older one; a write only then. Run in a write
 * transaction (`BEGIN IMMEDIATE`), which refuses a file stamped newer (`StoreVersionError`).
 */
export function stamp(file: string, db: Database): void {
  stampSchema(file, db, DLQ_SCHEMA);
}
