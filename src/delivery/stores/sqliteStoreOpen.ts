import path from 'node:path';
import { isKeelError, KeelError, StoreInUseError, StoreUnavailableError } from '../../errors.js';
import { openFailure, setUpStoreFile, SNAPSHOT_MAX_BYTES, type SqliteDatabase, type SqliteDriver, sqliteCode, startOf, type StoreClaim, walIndexUnavailable, walSnapshot } from './sqliteFile.js';
import { behind, DLQ_SCHEMA, stamp, storeProblem } from './sqliteStoreSchema.js';

// Opening the SQLite dead letter store's file: checked before anything is written to it (a store or
// a new file, never another application's database), set up (WAL, its tables and their stamp), read
// from a copy where SQLite cannot read it in place, claimed by the node that keeps its entries there,
// and the claim released when it closes.

type Database = SqliteDatabase;

/** Files open in this OS process, so that two nodes here never share one. */
const openFiles = new Set<string>();

/** @internal Whether a node of this OS process has `file` open as its store (its claim). */
export function openHere(file: string): boolean {
  return openFiles.has(file);
}

/**
 * @internal The connection on the store `file` (a resolved path): `'create'` (a node's) makes it
 * or opens a store, stamps it and claims it for `owner` (given) in one write transaction (another live
 * process's claim: {@link StoreInUseError}); `'read'` and `'write'` (the CLI's) open an existing store
 * only, checked on a read-only connection first ('write' stamps an older one, unless another live
 * process has it open: refused, as the stamp refuses it). The open waits for a lock `lockWaitMs` in
 * one statement.
 */
export function openStoreFile(Driver: SqliteDriver, file: string, access: 'create' | 'read' | 'write', lockWaitMs: number, owner?: string): Database {
  // the open (and the claim) has no later try: it waits for a lock in one statement, as long as a write may in all
  const timeout = { timeout: lockWaitMs };
  const open = (readonly: boolean): Database => {
    try {
      return new Driver(file, readonly ? { ...timeout, readonly: true, fileMustExist: true } : timeout);
    } catch (e) {
      throw openFailure(file, e, 'dead letter store');
    }
  };
  let db: Database;
  if (access === 'create') {
    db = open(false);
    try {
      // a file that holds another application's tables, or a newer Keel's store, is left as it is (no WAL switch, no schema)
      setUpStoreFile(file, db, DLQ_SCHEMA, owner === undefined ? undefined : ownerClaim(file, owner));
    } catch (e) {
      // not a store, not a database, or locked while it needs a write to be set up: not kept open
      db.close();
      throw isKeelError(e) ? e : openFailure(file, e, 'dead letter store');
    }
  } else {
    // the CLI: an existing store only. It is checked on a read-only connection before anything
    // else touches the file, so another database is never turned into one (nor switched to WAL)
    let reader = open(true);
    try {
      let problem: string | undefined;
      try {
        problem = storeProblem(file, reader, true);
      } catch (e) {
        // a store in WAL mode in a directory this process may not create files in (its -shm): list
        // and show read a copy of the file in memory instead; retry and purge could not write it anyway
        if (access !== 'read' || !walIndexUnavailable(file, e)) throw e;
        reader.close();
        const copy = walSnapshot(Driver, file);
        if (copy === 'unwritten') {
          const dir = path.dirname(file);
          throw new StoreUnavailableError(
            file,
            `SQLite reads a store in WAL mode through its -shm file, which this process cannot create in ${dir}, and its -wal holds writes that are not in the file yet`,
            sqliteCode(e),
            `read it as a user that may create files in ${dir}, or once the node that has it open has closed it`,
            e,
          );
        }
        if (copy === 'too_large') {
          const dir = path.dirname(file);
          throw new StoreUnavailableError(
            file,
            `SQLite reads a store in WAL mode through its -shm file, which this process cannot create in ${dir}, and the file is too large to read from a copy in memory instead (over ${SNAPSHOT_MAX_BYTES} bytes)`,
            sqliteCode(e),
            `it is over ${SNAPSHOT_MAX_BYTES} bytes, too large to read from a copy in memory: read it as a user that may create files in ${dir}, or copy the file into a directory this process may create files in and read the copy`,
            e,
          );
        }
        reader = copy;
        problem = storeProblem(file, reader, true);
      }
      if (problem !== undefined) throw new KeelError('ERR_INVALID_ARGUMENT', `${file} is not a Keel dead letter store (${problem})`);
    } catch (e) {
      reader.close();
      throw isKeelError(e) ? e : openFailure(file, e, 'dead letter store');
    }
    if (access === 'read') {
      db = reader; // list and show never write
    } else {
      reader.close();
      db = open(false);
      try {
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        // a store made before the stamp or a column (the write lock taken only then: an up-to-date store opens while another connection writes),
        // or one a newer Keel stamped since the read-only check: the stamp's write transaction checks the version again and refuses it
        if (behind(db)) db.transaction(() => stamp(file, db)).immediate();
      } catch (e) {
        db.close();
        throw isKeelError(e) ? e : openFailure(file, e, 'dead letter store');
      }
    }
  }
  return db;
}

/**
 * The claim of `owner` (a node) on `file`, checked and taken in the set-up's write transaction, so
 * that two OS processes cannot both take it: {@link StoreInUseError} names the node that holds it. A
 * claim is held while the OS process that made it runs: its pid, and (where the OS tells) its start
 * identity, so that another process given the pid since (a reboot, pid reuse) holds nothing.
 */
function ownerClaim(file: string, owner: string): StoreClaim {
  return {
    inUse: (held) => new StoreInUseError(file, `${held.owner ?? 'a node'} (OS process ${held.osPid})`),
    take: (db) => void db.prepare('INSERT OR REPLACE INTO dead_letter_owner (id, owner, os_pid, os_start) VALUES (1, ?, ?, ?)').run(owner, process.pid, startOf(process.pid) ?? null),
  };
}

/** @internal Marks `file` open in this OS process, claimed by one of its nodes (released by {@link releaseAndClose}). */
export function claimedHere(file: string): void {
  openFiles.add(file);
}

/**
 * @internal Closes the connection, after releasing the claim this OS process made on `file` if
 * `claimed` (a failure to release it is reported to `onError`).
 */
export function releaseAndClose(db: Database, file: string, claimed: boolean, onError: (message: string, error: unknown) => void): void {
  try {
    if (claimed) db.prepare('DELETE FROM dead_letter_owner WHERE id = 1 AND os_pid = ?').run(process.pid);
  } catch (e) {
    // locked or unwritable: the claim stays in the file, naming this (live) OS process, which may
    // open it again; another process can take it over once this one has exited
    onError(`the dead letter store ${file} could not release its claim on the file`, e);
  } finally {
    if (claimed) openFiles.delete(file);
    db.close();
  }
}
