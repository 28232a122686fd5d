import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { serialize } from 'node:v8';
import { DeadLetterTooLargeError, KeelError, NotSerializableError, StoreInUseError, StoreVersionError } from '../../errors.js';
import type { DeadLetterFilter } from '../../runtime/serviceSlots.js';
import { claimHeld, DATABASE_WIDE, formatCheck, HOST_CLOCK, SQLITE_MAX_LENGTH, LOCKED, lockRetryDelay, loadSqliteDriver, type SqliteDatabase, type SqliteStatement, setBusyTimeout, sqliteCode, type StoreClock } from './sqliteFile.js';
import { claimedHere, openHere, openStoreFile, releaseAndClose } from './sqliteStoreOpen.js';
import { COLUMNS, errorColumn, NO_CLAUSE, type Row, serializes, toRecord, whereOf } from './sqliteStoreRows.js';
import { type DeadLetterStore, type NewRecord, type Record_, seqOf, thrownText } from './DeadLetterStore.js';

export { KEEL_FILE_FORMAT } from './sqliteFile.js';

type Statement = SqliteStatement;
type Database = SqliteDatabase;

/** @internal Settings of a store that only Keel's own callers (the CLI, the tests) give. */
export interface SqliteStoreOptions {
  /**
   * How long one statement waits for another connection's lock before it fails with SQLITE_BUSY
   * (better-sqlite3's default: 5000). better-sqlite3 is synchronous: the whole event loop waits with
   * it, so the node's queue gives {@link NODE_BUSY_TIMEOUT_MS}.
   */
  readonly busyTimeoutMs?: number;
  /**
   * How long in all a write waits for a lock: an `add` that meets a locked file is tried again on
   * `clock` (with backoff, each try waiting at most `busyTimeoutMs`) until this long after it was
   * made, then rejects with the driver's SQLITE_BUSY; the open and the final writes of `close()`
   * (which have no later try) wait this long in one statement. `busyTimeoutMs` by default (no
   * waiting beyond one statement's); the node's queue gives {@link NODE_LOCK_WAIT_MS}.
   */
  readonly lockWaitMs?: number;
  /** The clock the retries of a locked `add` wait on (the node's); the host's timers by default. */
  readonly clock?: StoreClock;
  /** The largest serialized message and metadata the store takes ({@link SQLITE_MAX_LENGTH} by default). */
  readonly maxPayloadBytes?: number;
}

export { SQLITE_MAX_LENGTH } from './sqliteFile.js';

/**
 * @internal The durable store: better-sqlite3 in WAL mode with `synchronous=NORMAL` (it survives a
 * kill -9 of the OS process, not a power loss). Adds made in one turn of the event loop are written
 * in one transaction (a group commit), and `add` resolves after it. Messages are stored with the
 * structured clone serializer (`v8.serialize`). A node claims the file (`access: 'create'`: a new
 * file, or a store, never another application's database); the CLI opens an existing store
 * unclaimed, checked on a read-only connection first, and keeps that connection for `'read'` (or,
 * where SQLite cannot read the WAL-mode file in place, a read-only directory, a copy of it in memory).
 * A write that fails is reported to `onError`: an update stays queued for the next try, except at
 * `close()`, where there is none, so the report says that it is lost.
 */
export class SqliteStore implements DeadLetterStore {
  readonly kind = 'sqlite' as const;
  readonly file: string;
  readonly #db: Database;
  readonly #claimed: boolean;
  readonly #insert: Statement;
  readonly #commit: (rows: { record: NewRecord; payload: Buffer }[]) => number[];
  /** Adds to write, in the order they came: each waits for a lock until its `deadline` (on `#clock`). */
  #batch: { record: NewRecord; payload: Buffer; deadline: number; resolve: (id: string) => void; reject: (e: unknown) => void }[] = [];
  readonly #clock: StoreClock;
  readonly #busyTimeoutMs: number;
  readonly #lockWaitMs: number;
  /** The next try of the adds that met a locked file (new adds wait for it, behind them). */
  #lockRetry: { cancel(): unknown } | undefined;
  /** The tries of the adds so far that met a locked file in a row (the backoff). */
  #lockedTries = 0;
  readonly #maxPayloadBytes: number;
  readonly #onError: (message: string, error: unknown) => void;
  #writes: { sql: string; args: unknown[]; removes?: number }[] = [];
  /**
   * The last try of the kept updates met a locked file: the next tries (made at every read) do not
   * wait for the lock (each would block the event loop the busy timeout), they only look whether it
   * is gone.
   */
  #writesLocked = false;
  /**
   * Entries removed (delivered) whose delete is still queued, because the file could not be written
   * (locked, full): every read leaves them out, so that a delivered entry is not delivered again.
   */
  readonly #removed = new Set<number>();
  readonly #statements = new Map<string, Statement>();
  readonly #applyWrites: (writes: { sql: string; args: unknown[] }[]) => void;
  /** Runs a write in a write transaction (`BEGIN IMMEDIATE`), after the check of the file's format. */
  readonly #inWrite: <T>(write: () => T) => T;
  #closed = false;

  constructor(
    file: string,
    owner: string | undefined,
    onError: (message: string, error: unknown) => void = () => undefined,
    access: 'create' | 'read' | 'write' = 'create',
    options: SqliteStoreOptions = {},
  ) {
    this.file = path.resolve(file);
    this.#onError = onError;
    this.#maxPayloadBytes = options.maxPayloadBytes ?? SQLITE_MAX_LENGTH;
    const Driver = loadSqliteDriver('the SQLite dead letter store');
    if (owner !== undefined && openHere(this.file)) throw new StoreInUseError(this.file, 'another node in this OS process');
    this.#clock = options.clock ?? HOST_CLOCK;
    this.#busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#lockWaitMs = Math.max(this.#busyTimeoutMs, options.lockWaitMs ?? this.#busyTimeoutMs);
    // a node's claim is taken as the file is set up, in one write transaction
    const db = openStoreFile(Driver, this.file, access, this.#lockWaitMs, owner);
    this.#db = db;
    this.#claimed = owner !== undefined;
    if (owner !== undefined) claimedHere(this.file);
    // from now on a statement blocks the event loop at most this long; an add that meets a lock is tried again later
    db.pragma(`busy_timeout = ${this.#busyTimeoutMs}`);
    this.#insert = db.prepare(
      'INSERT INTO dead_letters (recipient, payload, reason, attempts, first_failed_at, last_attempt_at, next_retry_at, last_error, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
    );
    // every write checks, under the write lock, that the file was not raised to a newer format since
    // it was opened (a StoreVersionError, failing the write as a full disk does); list and show never write
    const checkFormat = access === 'read' ? () => undefined : formatCheck(db, this.file, 'dead letter store');
    const inWrite = db.transaction((write: () => unknown) => {
      checkFormat();
      return write();
    }).immediate;
    this.#inWrite = inWrite as <T>(write: () => T) => T;
    this.#applyWrites = db.transaction((writes: { sql: string; args: unknown[] }[]) => {
      checkFormat();
      for (const w of writes) this.#statement(w.sql).run(...w.args);
    }).immediate;
    this.#commit = db.transaction((rows: { record: NewRecord; payload: Buffer }[]) => {
      checkFormat();
      return rows.map(({ record: r, payload }) =>
        Number(
          // message and metadata in one serialization; an error that is text stays text
          this.#insert.run(r.recipient, payload, r.reason, r.attempts, r.firstFailedAt, r.lastAttemptAt, r.nextRetryAt, errorColumn(r.lastError), r.status).lastInsertRowid,
        ),
      );
    }).immediate;
  }

  /** How long in all a write waits for a lock (see {@link SqliteStoreOptions.lockWaitMs}). */
  get lockWaitMs(): number {
    return this.#lockWaitMs;
  }

  add(record: NewRecord): Promise<string> {
    if (this.#closed) return Promise.reject(new KeelError('ERR_NODE_STOPPED', `the dead letter store ${this.file} is closed`));
    let payload: Buffer;
    try {
      // serialized here, not in the group's transaction: a record that cannot be stored is refused alone
      payload = serialize([record.message, record.metadata]);
    } catch (e) {
      // the structural check passed, so the serializer met something it did not (a getter that throws
      // when read again, say): named as the message or the metadata, whichever fails alone
      return Promise.reject(new NotSerializableError(serializes(record.metadata) ? 'message' : 'metadata', `not serializable (${thrownText(e)})`));
    }
    // refused here too, alone: in the group's transaction it would fail the others with it
    if (payload.length > this.#maxPayloadBytes) return Promise.reject(new DeadLetterTooLargeError(payload.length, this.#maxPayloadBytes));
    const deadline = this.#clock.now() + this.#lockWaitMs;
    return new Promise((resolve, reject) => {
      // behind a try armed for a locked file, the add waits for it (it would meet the lock too)
      if (this.#batch.push({ record, payload, deadline, resolve, reject }) === 1 && this.#lockRetry === undefined) setImmediate(() => this.#flush());
    });
  }

  /**
   * Writes the adds of this turn in one transaction, then resolves them. When the transaction fails
   * for one row's sake (too big, a constraint), the rows are written again one by one, so that only
   * that row fails; a failure of the whole database (locked, full) fails them all at once.
   */
  #flush(final = false): void {
    this.#lockRetry?.cancel();
    this.#lockRetry = undefined;
    const batch = this.#batch;
    this.#batch = [];
    if (batch.length === 0) return;
    try {
      const ids = this.#commit(batch);
      this.#lockedTries = 0;
      batch.forEach((b, i) => b.resolve(String(ids[i])));
    } catch (e) {
      const code = sqliteCode(e) ?? '';
      if (LOCKED.test(code) && !final) {
        // another connection holds the file: rather than wait in the driver (the whole event loop
        // with it), the adds are tried again on the clock, until each one's deadline
        const now = this.#clock.now();
        const waiting = batch.filter((b) => b.deadline > now);
        for (const b of batch) if (b.deadline <= now) b.reject(e);
        if (waiting.length > 0) {
          this.#batch = waiting.concat(this.#batch);
          const backoff = lockRetryDelay(this.#lockedTries++);
          // a last try at the first deadline, so that an add fails no later than it
          const delay = Math.max(0, Math.min(backoff, waiting[0]!.deadline - now));
          this.#lockRetry = this.#clock.setTimer(delay, () => {
            this.#lockRetry = undefined;
            this.#flush();
          });
        } else this.#lockedTries = 0; // every add refused: a later lock backs off from the start again
        return;
      }
      if (batch.length === 1 || DATABASE_WIDE.test(code) || e instanceof StoreVersionError) {
        for (const b of batch) b.reject(this.#addError(e, b.payload));
        return;
      }
      for (const b of batch) {
        try {
          b.resolve(String(this.#commit([b])[0]));
        } catch (one) {
          b.reject(this.#addError(one, b.payload));
        }
      }
    }
  }

  /** Why an add failed: SQLite's own "too big" as the typed refusal, anything else as it is. */
  #addError(error: unknown, payload: Buffer): unknown {
    return sqliteCode(error) === 'SQLITE_TOOBIG' ? new DeadLetterTooLargeError(payload.length, this.#maxPayloadBytes, error) : error;
  }

  get(id: string): Record_ | undefined {
    this.#flushWrites();
    const seq = seqOf(id);
    if (seq === undefined) return undefined;
    if (this.#removed.has(seq)) return undefined;
    const row = this.#statement('SELECT * FROM dead_letters WHERE seq = ?').get(seq) as Row | undefined;
    return row === undefined ? undefined : toRecord(row);
  }

  list(filter: DeadLetterFilter, now: number, limit: number, cursor: string | undefined): { entries: Record_[]; cursor?: string } {
    const { where, args } = whereOf(filter, now);
    const after = cursor === undefined ? 0 : Number(cursor);
    this.#flushWrites();
    const kept = this.#kept();
    const rows = this.#statement(`SELECT * FROM dead_letters WHERE seq > ?${where}${kept.where} ORDER BY seq LIMIT ?`).all(after, ...args, ...kept.args, limit + 1) as Row[];
    const entries = rows.slice(0, limit).map(toRecord);
    return rows.length > limit ? { entries, cursor: entries[entries.length - 1]!.id } : { entries };
  }

  /** @internal The ids of every entry a filter selects, in insertion order, without reading their messages (`keel dlq retry`). */
  ids(filter: DeadLetterFilter, now: number): string[] {
    const { where, args } = whereOf(filter, now);
    this.#flushWrites();
    const kept = this.#kept();
    return (this.#statement(`SELECT seq FROM dead_letters WHERE 1 = 1${where}${kept.where} ORDER BY seq`).all(...args, ...kept.args) as { seq: number }[]).map((r) => String(r.seq));
  }

  /** The greatest seq stored (AUTOINCREMENT never gives one again, even after its entry is removed). */
  lastId(): string | undefined {
    const row = this.#statement('SELECT MAX(seq) AS seq FROM dead_letters').get() as { seq: number | null };
    return row.seq === null ? undefined : String(row.seq);
  }

  /** Updates are written behind, in one transaction per turn; every read flushes them first. */
  update(id: string, changes: Partial<Pick<Record_, 'attempts' | 'lastAttemptAt' | 'nextRetryAt' | 'lastError' | 'status'>>): void {
    const keys = Object.keys(changes).sort();
    const seq = seqOf(id);
    if (keys.length === 0 || seq === undefined) return;
    const sql = `UPDATE dead_letters SET ${keys.map((k) => `${COLUMNS[k]!} = ?`).join(', ')} WHERE seq = ?`;
    const args = keys.map((k) => (k === 'lastError' ? errorColumn(changes.lastError) : (changes as Record<string, unknown>)[k]));
    if (this.#writes.push({ sql, args: [...args, seq] }) === 1) setImmediate(() => this.#flushWrites());
  }

  /**
   * Writes the pending updates; on failure (a locked file, a full disk) they stay queued for the
   * next try. The `final` flush of `close()` has no next try: a failure there reports them lost.
   */
  #flushWrites(final = false): void {
    if (this.#writes.length === 0 || this.#closed) return;
    const writes = this.#writes;
    this.#writes = [];
    const look = !final && this.#writesLocked && setBusyTimeout(this.#db, 0);
    try {
      this.#applyWrites(writes);
      this.#writesLocked = false;
      for (const w of writes) if (w.removes !== undefined) this.#removed.delete(w.removes);
    } catch (e) {
      this.#writesLocked = LOCKED.test(sqliteCode(e) ?? '');
      if (final) {
        this.#onError(`the dead letter store ${this.file} could not write ${writes.length} update(s) before it closed; they are lost`, e);
        return;
      }
      this.#writes = writes.concat(this.#writes);
      this.#onError(`the dead letter store ${this.file} could not write ${writes.length} update(s); they are kept for the next try`, e);
    } finally {
      if (look) setBusyTimeout(this.#db, this.#busyTimeoutMs);
    }
  }

  #statement(sql: string): Statement {
    let st = this.#statements.get(sql);
    if (st === undefined) this.#statements.set(sql, (st = this.#db.prepare(sql)));
    return st;
  }

  /**
   * Deletes a delivered entry at once (a kill -9 right after does not bring it back). When the file
   * cannot be written (locked past the busy timeout, full) the delete is not thrown, which would
   * make a delivered entry a failed one: it is queued as updates are, for the next try, and every
   * read leaves the entry out meanwhile, so that it is not delivered again.
   */
  remove(id: string): void {
    const seq = seqOf(id);
    if (seq === undefined) return;
    this.#flushWrites();
    if (this.#writes.length === 0) {
      try {
        this.#inWrite(() => this.#statement('DELETE FROM dead_letters WHERE seq = ?').run(seq));
        return;
      } catch (e) {
        // a file raised to a newer format: kept and reported as a locked file's delete is
        if (!DATABASE_WIDE.test(sqliteCode(e) ?? '') && !(e instanceof StoreVersionError)) throw e;
      }
    }
    // behind the updates still queued (they could not be written either), in order
    this.#removed.add(seq);
    if (this.#writes.push({ sql: 'DELETE FROM dead_letters WHERE seq = ?', args: [seq], removes: seq }) === 1) setImmediate(() => this.#flushWrites());
  }

  /** The clause that leaves out the entries whose delete is still queued (none once the writes are in the file). */
  #kept(): { where: string; args: unknown[] } {
    return this.#removed.size === 0 ? NO_CLAUSE : { where: ' AND seq NOT IN (SELECT value FROM json_each(?))', args: [JSON.stringify([...this.#removed])] };
  }

  purge(filter: DeadLetterFilter, now: number): number {
    const { where, args } = whereOf(filter, now);
    this.#flushWrites();
    // an entry whose delete is still kept (delivered) is not purged: it ended as delivered
    const kept = this.#kept();
    return this.#inWrite(() => this.#statement(`DELETE FROM dead_letters WHERE 1 = 1${where}${kept.where}`).run(...args, ...kept.args).changes);
  }

  due(now: number, limit: number): Record_[] {
    this.#flushWrites();
    const kept = this.#kept();
    return (this.#statement(`SELECT * FROM dead_letters WHERE status = 'pending' AND next_retry_at <= ?${kept.where} ORDER BY seq LIMIT ?`).all(now, ...kept.args, limit) as Row[]).map(toRecord);
  }

  earliest(after?: number): number | undefined {
    this.#flushWrites();
    const kept = this.#kept();
    const row = (
      after === undefined
        ? this.#statement(`SELECT MIN(next_retry_at) AS at FROM dead_letters WHERE status = 'pending'${kept.where}`).get(...kept.args)
        : this.#statement(`SELECT MIN(next_retry_at) AS at FROM dead_letters WHERE status = 'pending' AND next_retry_at > ?${kept.where}`).get(after, ...kept.args)
    ) as { at: number | null };
    return row.at ?? undefined;
  }

  earliestParked(): number | undefined {
    this.#flushWrites();
    const kept = this.#kept();
    const row = this.#statement(`SELECT MIN(last_attempt_at) AS at FROM dead_letters WHERE status = 'parked'${kept.where}`).get(...kept.args) as { at: number | null };
    return row.at ?? undefined;
  }

  expire(before: number): number {
    this.#flushWrites();
    const kept = this.#kept();
    return this.#inWrite(() => this.#statement(`DELETE FROM dead_letters WHERE status = 'parked' AND last_attempt_at <= ?${kept.where}`).run(before, ...kept.args).changes);
  }

  counts(): { pending: number; parked: number } {
    this.#flushWrites();
    const kept = this.#kept();
    const rows = this.#statement(`SELECT status, COUNT(*) AS n FROM dead_letters WHERE 1 = 1${kept.where} GROUP BY status`).all(...kept.args) as { status: string; n: number }[];
    return { pending: rows.find((r) => r.status === 'pending')?.n ?? 0, parked: rows.find((r) => r.status === 'parked')?.n ?? 0 };
  }

  /**
   * The node that has the file open as its dead letter store (its claim, while the OS process that
   * made it runs), or undefined: `keel dlq retry` says who delivers what it marks, and when.
   */
  owner(): { owner: string; osPid: number } | undefined {
    // every column: a store made before os_start (read as it is by list and show) has none
    const row = this.#statement('SELECT * FROM dead_letter_owner WHERE id = 1').get() as { owner: string; os_pid: number; os_start?: string | null } | undefined;
    return row !== undefined && claimHeld(row.os_pid, row.os_start ?? null) ? { owner: row.owner, osPid: row.os_pid } : undefined;
  }

  close(): void {
    if (this.#closed) return;
    // the last writes have no later try: each waits for a lock as long as a write may in all
    setBusyTimeout(this.#db, this.#lockWaitMs); // else the timeout stays the short one
    // one closing wait in all, not one per statement: each waits only what the ones before it left
    const started = performance.now();
    const rest = (): void => void setBusyTimeout(this.#db, this.#lockWaitMs - (performance.now() - started));
    this.#flush(true);
    rest();
    this.#flushWrites(true);
    rest();
    this.#closed = true;
    releaseAndClose(this.#db, this.file, this.#claimed, this.#onError);
  }
}
