import { statSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { MissingPeerError, StoreUnavailableError } from '../../errors.js';

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
  transaction<F extends (...args: any[]) => unknown>(fn: F): F;
  close(): void;
  readonly inTransaction: boolean;
}

/** better-sqlite3's constructor. */
export type SqliteDriver = new (file: string, options?: { timeout?: number; readonly?: boolean; fileMustExist?: boolean }) => SqliteDatabase;

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
