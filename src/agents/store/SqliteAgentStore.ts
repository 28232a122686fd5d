import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { deserialize } from 'node:v8';
import { isKeelError, StoreInUseError, StoreUnavailableError, StoreVersionError } from '../../errors.js';
import {
  DATABASE_WIDE,
  HOST_CLOCK,
  LOCKED,
  lockRetryDelay,
  loadSqliteDriver,
  openFailure,
  fileId,
  formatCheck,
  startOf,
  type SqliteDatabase,
  type SqliteStatement,
  setBusyTimeout,
  setUpStoreFile,
  SQLITE_MAX_LENGTH,
  sqliteCode,
  type StoreClock,
} from '../../delivery/stores/sqliteFile.js';
import { AGENT_STORE_SCHEMA } from './sqliteAgentSchema.js';
import { byBytes, encodeRecord, type Row, sameColumn } from './sqliteAgentRecords.js';
import { type AgentStoreWriteCounts, type AgentStoreWriteReport, keyOf, type Pending } from './keptWrites.js';
import { type AgentStore, type AgentStoreLoad, type AgentStoreRecord, checkIdentity, checkScope, type CorruptRecord, synchronousFn } from './AgentStore.js';

type Statement = SqliteStatement;
type Database = SqliteDatabase;

const STORE = 'agent store';

/** Files open in this OS process, by {@link fileId}: two nodes here never share one (each would resume the same schedules). */
const openFiles = new Set<string>();

/** @internal Settings of a SQLite agent store that only Keel gives (the node's stores, the tests). */
export interface SqliteAgentStoreOptions {
  /**
   * How long one statement waits for another connection's lock before it fails with SQLITE_BUSY
   * (better-sqlite3's default: 5000). better-sqlite3 is synchronous: the whole event loop waits with
   * it, so a node's store gives {@link NODE_BUSY_TIMEOUT_MS}.
   */
  readonly busyTimeoutMs?: number;
  /** How long the open and the closing writes (which have no later try) wait for a lock, in one statement: `busyTimeoutMs` by default, at least it. */
  readonly lockWaitMs?: number;
  /** The clock the tries of the writes kept behind a lock wait on (the node's); the host's timers by default. */
  readonly clock?: StoreClock;
  /** Told what happens to the writes kept behind a lock (the node logs it and emits telemetry). */
  readonly report?: (report: AgentStoreWriteReport, path: string) => void;
  /** The most one record (its value, component, kind and key) may take: {@link SQLITE_MAX_LENGTH}, SQLite's own, by default. */
  readonly maxRecordBytes?: number;
}

export type { AgentStoreWriteCounts, AgentStoreWriteReport } from './keptWrites.js';

/**
 * @internal The SQLite agent store: better-sqlite3 (synchronous), WAL with `synchronous=NORMAL`:
 * every write is committed when the call returns and survives a SIGKILL of the OS process (not a
 * power loss). One table, `agent_records (component, kind, key, value)`, values `v8.serialize`d,
 * and the claim's `agent_store_owner`; the file is stamped with Keel's file format version
 * (`KEEL_FILE_FORMAT`, shared with the dead letter store, whose tables the same file may hold) and
 * checked before anything is written to it (a newer Keel's file, another application's database:
 * refused, left as they are).
 *
 * A locked file (another connection's write transaction): a statement waits at most
 * `busyTimeoutMs` (the event loop waits with it). A `put`, `insert`, `delete` or `deleteAll` that
 * meets the lock is accepted all the same and kept (write-behind): its answer is the store's state
 * with the kept writes on top of the file's, every read (`loadAll`, `insert`'s check) sees them, and
 * they are tried again on `clock` (25 ms doubled up to 400 ms) until they are written, in order, in
 * one transaction; while some are kept, a later write joins them without a try. `close()` writes
 * them, waiting up to `lockWaitMs`. A `transaction` that meets the lock (at its BEGIN IMMEDIATE,
 * before its function runs, or writes are kept already) is kept the same way: its function
 * runs once, its writes are kept with the others (all of them are written in one transaction: all
 * or none), and if it throws they are undone.
 */
export class SqliteAgentStore implements AgentStore {
  readonly kind = 'sqlite' as const;
  readonly path: string;
  readonly #db: Database;
  readonly #put: Statement;
  readonly #insert: Statement;
  readonly #delete: Statement;
  readonly #deleteAll: Statement;
  readonly #deleteKind: Statement;
  readonly #deleteRaw: Statement;
  readonly #load: Statement;
  readonly #loadKind: Statement;
  readonly #exists: Statement;
  readonly #applyPending: (ops: Pending[]) => void;
  /** Checks, in a write transaction, that the file was not raised to a newer format since it was opened. */
  readonly #checkFormat: () => void;
  /** Runs a write in a write transaction (`BEGIN IMMEDIATE`), after {@link #checkFormat}. */
  readonly #inWrite: <T>(write: () => T) => T;
  readonly #fileId: string;
  readonly #clock: StoreClock;
  readonly #lockWaitMs: number;
  readonly #report: (report: AgentStoreWriteReport) => void;
  /** The writes kept behind a lock, in the order they are to be written. */
  readonly #pending = new Map<string, Pending>();
  #pendingSeq = 0;
  /** Set while a transaction runs behind the lock: its writes are kept, never tried. */
  #keeping = false;
  /** The next try of the kept writes. */
  #retry: { cancel(): unknown } | undefined;
  #tries = 0;
  /** The error codes reported since the writes were first kept (each once). */
  readonly #reported = new Set<string>();
  #counts = { delayed: 0, written: 0, lost: 0 };
  #closed = false;
  /** The last write tried met a lock (and nothing was written since). */
  #lockSeen = false;
  readonly #busyTimeoutMs: number;
  readonly #maxRecordBytes: number;

  constructor(file: string, options: SqliteAgentStoreOptions = {}) {
    this.path = path.resolve(file);
    const busyTimeoutMs = options.busyTimeoutMs ?? 5000;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#maxRecordBytes = options.maxRecordBytes ?? SQLITE_MAX_LENGTH;
    this.#lockWaitMs = Math.max(busyTimeoutMs, options.lockWaitMs ?? busyTimeoutMs);
    this.#clock = options.clock ?? HOST_CLOCK;
    const report = options.report;
    this.#report = (r) => {
      try {
        report?.(r, this.path);
      } catch {
        // a report that throws is not the write's failure
      }
    };
    const Driver = loadSqliteDriver('the SQLite agent store');
    const inUse = (): StoreInUseError => new StoreInUseError(this.path, 'another node in this OS process', STORE);
    let known: string | undefined;
    try {
      known = fileId(this.path);
    } catch {
      known = undefined; // a file to create
    }
    if (known !== undefined && openFiles.has(known)) throw inUse();
    let db: Database;
    try {
      // the open (and the claim) has no later try: it waits for a lock in one statement
      db = new Driver(this.path, { timeout: this.#lockWaitMs });
    } catch (e) {
      throw openFailure(this.path, e, STORE);
    }
    let id: string;
    try {
      id = known ?? fileId(this.path);
      if (openFiles.has(id)) throw inUse();
      // checked before anything is written: another application's database, or a newer Keel's
      // store, is refused as it is (no WAL switch, no tables); a new or older store is made, stamped
      // and claimed by this OS process in one write transaction: another live OS process on the file
      // would resume the same schedules (a killed one's claim is taken over), and one with an older
      // format open (either store's claim) would go on writing it into a newer file: refused, nothing written
      setUpStoreFile(this.path, db, AGENT_STORE_SCHEMA, {
        inUse: (held) => new StoreInUseError(this.path, `OS process ${held.osPid}`, STORE),
        take: (d) => void d.prepare('INSERT OR REPLACE INTO agent_store_owner (id, os_pid, os_start) VALUES (1, ?, ?)').run(process.pid, startOf(process.pid) ?? null),
      });
      this.#put = db.prepare('INSERT OR REPLACE INTO agent_records (component, kind, key, value) VALUES (?, ?, ?, ?)');
      this.#insert = db.prepare('INSERT OR IGNORE INTO agent_records (component, kind, key, value) VALUES (?, ?, ?, ?)');
      this.#delete = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind = ? AND key = ?');
      this.#deleteAll = db.prepare('DELETE FROM agent_records WHERE component = ?');
      this.#deleteKind = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind = ?');
      this.#deleteRaw = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind IS ? AND key IS ?');
      this.#load = db.prepare('SELECT kind, key, value FROM agent_records WHERE component = ? ORDER BY kind, key');
      this.#loadKind = db.prepare('SELECT kind, key, value FROM agent_records WHERE component = ? AND kind = ? ORDER BY key');
      this.#exists = db.prepare('SELECT 1 FROM agent_records WHERE component = ? AND kind = ? AND key = ?');
      // every write checks, under the write lock, that the file was not raised to a newer format since
      // it was opened (a StoreVersionError: thrown by a write made at once, kept writes stay kept)
      const checkFormat = formatCheck(db, this.path, STORE);
      this.#checkFormat = checkFormat;
      const inWrite = db.transaction((write: () => unknown) => {
        checkFormat();
        return write();
      }).immediate;
      this.#inWrite = inWrite as <T>(write: () => T) => T;
      this.#applyPending = db.transaction((ops: Pending[]) => {
        checkFormat();
        for (const op of ops) this.#apply(op);
      }).immediate;
      // from now on a statement blocks the event loop at most this long; a write that meets a lock is kept and tried again later
      db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    } catch (e) {
      db.close();
      throw isKeelError(e) ? e : openFailure(this.path, e, STORE);
    }
    this.#db = db;
    this.#fileId = id;
    openFiles.add(id);
  }

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError(this.path, 'it is closed (its node has shut down)', undefined, 'use a store of a running node', undefined, STORE);
  }

  /**
   * Before a write: the store is open and its path still names the file it opened. A file deleted
   * (or replaced) under a running node is kept open by SQLite, which would go on writing into the
   * unlinked file: every write accepted, all of them lost with the OS process. A stat per write.
   */
  #writable(): void {
    this.#open();
    this.#sameFile();
  }

  /** Throws unless the path still names the file the store opened. */
  #sameFile(): void {
    let now: string | undefined;
    try {
      now = fileId(this.path);
    } catch {
      now = undefined;
    }
    if (now !== this.#fileId) {
      throw new StoreUnavailableError(this.path, 'its file was deleted or replaced while it was open (a write now would be lost with the unlinked file)', undefined, 'restore the file, or restart the node to open the store again', undefined, STORE);
    }
  }

  /** The value encoded, refused here if its record is larger than SQLite takes (see {@link encodeRecord}). */
  #encode(component: string, kind: string, key: string, value: unknown): Buffer {
    return encodeRecord(component, kind, key, value, this.#maxRecordBytes);
  }

  put(component: string, kind: string, key: string, value: unknown): void {
    this.#writable();
    checkIdentity(component, kind, key);
    const encoded = this.#encode(component, kind, key, value);
    this.#write(
      () => void this.#put.run(component, kind, key, encoded),
      () => this.#keep({ op: 'put', component, kind, key, value: encoded, calls: 1 }),
    );
  }

  insert(component: string, kind: string, key: string, value: unknown): boolean {
    this.#writable();
    checkIdentity(component, kind, key);
    const encoded = this.#encode(component, kind, key, value);
    return this.#write(
      () => this.#insert.run(component, kind, key, encoded).changes === 1,
      () => {
        if (this.#has(component, kind, key)) return false; // kept as it is: the first wins
        this.#keep({ op: 'put', component, kind, key, value: encoded, calls: 1 });
        return true;
      },
    );
  }

  delete(component: string, kind: string, key: string): boolean {
    this.#writable();
    checkIdentity(component, kind, key);
    return this.#write(
      () => this.#delete.run(component, kind, key).changes === 1,
      () => {
        if (!this.#has(component, kind, key)) return false;
        this.#keep({ op: 'delete', component, kind, key, calls: 1 });
        return true;
      },
    );
  }

  deleteAll(component: string, kind?: string): number {
    this.#writable();
    checkScope(component, kind);
    return this.#write(
      () => (kind === undefined ? this.#deleteAll.run(component) : this.#deleteKind.run(component, kind)).changes,
      () => {
        const n = this.#rows(component, kind).length;
        if (n > 0) this.#keep({ op: 'deleteAll', component, kind, calls: 1 });
        return n;
      },
    );
  }

  /**
   * A write: made at once, unless the file is locked (by another connection: it met the lock, or
   * writes kept behind it wait already), when `keep` answers from the store's state with the kept
   * writes on top and keeps the write for a later try. Inside a transaction a failure is thrown (the
   * transaction is all or none).
   */
  #write<T>(now: () => T, keep: () => T): T {
    if (this.#db.inTransaction) return now();
    if (this.#keeping) return keep();
    if (this.#pending.size === 0) {
      // after a write that met the lock and kept nothing, a write only looks whether it is gone
      // (each would block the event loop the busy timeout again), until one is made
      const look = this.#lockSeen && setBusyTimeout(this.#db, 0);
      try {
        const answer = this.#inWrite(now);
        this.#lockSeen = false;
        return answer;
      } catch (e) {
        if (!LOCKED.test(sqliteCode(e) ?? '')) throw e;
        this.#lockSeen = true;
        const answer = keep();
        // reported only when a write is kept: a lock met by a write that keeps nothing (a delete of
        // no record) has nothing to say, and would mark the lock reported until a flush that never comes
        if (this.#pending.size > 0) this.#failed(e);
        return answer;
      } finally {
        if (look) setBusyTimeout(this.#db, this.#busyTimeoutMs);
      }
    }
    return keep();
  }

  /** Keeps a write behind the lock, in place of the earlier writes it makes moot, and arms the next try. */
  #keep(op: Pending): void {
    let calls = op.calls;
    let id: string;
    if (op.op === 'put' || op.op === 'delete') {
      id = keyOf(op.component, op.kind, op.key);
      calls += this.#pending.get(id)?.calls ?? 0;
      this.#pending.delete(id); // the later write decides the record: in its place in the order
    } else if (op.op === 'deleteAll') {
      id = JSON.stringify(['a', op.component, op.kind ?? null]);
      for (const [k, p] of this.#pending) {
        if (p.component !== op.component || p.op === 'raw') continue;
        if (op.kind === undefined || p.kind === op.kind) {
          calls += p.calls;
          this.#pending.delete(k);
        }
      }
    } else {
      id = `raw:${this.#pendingSeq++}`;
    }
    this.#pending.set(id, { ...op, calls });
    this.#counts.delayed += op.calls;
    this.#arm();
  }

  #arm(): void {
    if (this.#retry !== undefined || this.#closed) return;
    this.#retry = this.#clock.setTimer(lockRetryDelay(this.#tries), () => {
      this.#retry = undefined;
      this.#flushPending(false);
    });
  }

  /** A try of the kept writes failed: reported once per error code until they are written. */
  #failed(e: unknown): void {
    const code = sqliteCode(e) ?? (e instanceof Error ? e.name : 'error');
    if (this.#reported.has(code)) return;
    this.#reported.add(code);
    this.#report({ outcome: 'delayed', writes: this.#queued(), error: e });
  }

  #queued(): number {
    let n = 0;
    for (const p of this.#pending.values()) n += p.calls;
    return n;
  }

  /** @internal The writes kept behind a lock, counted in calls. */
  get writeCounts(): AgentStoreWriteCounts {
    return { ...this.#counts, queued: this.#queued() };
  }

  #apply(op: Pending): void {
    if (op.op === 'put') this.#put.run(op.component, op.kind, op.key, op.value);
    else if (op.op === 'delete') this.#delete.run(op.component, op.kind, op.key);
    else if (op.op === 'deleteAll') void (op.kind === undefined ? this.#deleteAll.run(op.component) : this.#deleteKind.run(op.component, op.kind));
    else this.#deleteRaw.run(op.component, op.kind, op.key);
  }

  /**
   * Writes the kept writes, in order, in one transaction: the error when they stay kept (and the next
   * try is armed), undefined when they are written. At `close()` (`final`) there is no later try:
   * they are lost, and reported so.
   */
  #flushPending(final: boolean): unknown {
    this.#retry?.cancel();
    this.#retry = undefined;
    if (this.#pending.size === 0) return undefined;
    const ops = [...this.#pending];
    const calls = this.#queued();
    this.#tries++;
    /** The writes the file refused alone (too big): lost whatever comes of the others. */
    const refused: { id: string; op: Pending; error: unknown }[] = [];
    let failure: { error: unknown } | undefined;
    try {
      this.#sameFile();
      try {
        this.#applyPending(ops.map(([, op]) => op));
      } catch (e) {
        // a file raised to a newer format refuses them all, kept for the next try (lost at close)
        if (DATABASE_WIDE.test(sqliteCode(e) ?? '') || e instanceof StoreVersionError) throw e;
        // one write's own failure (too big): each alone, so that only it is lost (a write made
        // again is harmless: each sets its records, so the last one of a record decides it), each in
        // a write transaction that checks the format again (the lock was free since the one that failed)
        for (const [id, op] of ops) {
          try {
            this.#inWrite(() => this.#apply(op));
          } catch (one) {
            if (DATABASE_WIDE.test(sqliteCode(one) ?? '') || one instanceof StoreVersionError) throw one;
            refused.push({ id, op, error: one });
          }
        }
      }
    } catch (e) {
      failure = { error: e };
    }
    // the state is settled before anything is reported: a report's handler may write to the store
    // (kept behind the writes still kept, or made at once), and a refused write is reported once
    let lost = 0;
    for (const r of refused) {
      this.#pending.delete(r.id);
      lost += r.op.calls;
    }
    this.#counts.lost += lost;
    if (failure !== undefined) {
      if (final) {
        const rest = this.#queued();
        this.#pending.clear();
        this.#counts.lost += rest;
        for (const r of refused) this.#report({ outcome: 'lost', writes: r.op.calls, error: r.error });
        if (rest > 0) this.#report({ outcome: 'lost', writes: rest, error: failure.error });
        return failure.error;
      }
      for (const r of refused) this.#report({ outcome: 'lost', writes: r.op.calls, error: r.error });
      if (this.#pending.size > 0) {
        this.#failed(failure.error);
        this.#arm();
      }
      return failure.error;
    }
    const tries = this.#tries;
    this.#lockSeen = false;
    this.#pending.clear();
    this.#counts.written += calls - lost;
    this.#tries = 0;
    this.#reported.clear();
    for (const r of refused) this.#report({ outcome: 'lost', writes: r.op.calls, error: r.error });
    if (calls > lost) this.#report({ outcome: 'written', writes: calls - lost, tries });
    return undefined;
  }

  /** Whether a record is there: the file's, with the kept writes on top. */
  #has(component: string, kind: string, key: string): boolean {
    const own = this.#pending.get(keyOf(component, kind, key));
    if (own !== undefined) return own.op === 'put';
    for (const p of this.#pending.values()) {
      // a deleteAll kept makes the record gone, unless a later write of it (found above) brings it back
      if (p.op === 'deleteAll' && p.component === component && (p.kind === undefined || p.kind === kind)) return false;
    }
    return this.#exists.get(component, kind, key) !== undefined;
  }

  /** The rows of `component` (of one `kind`, if given): the file's, with the kept writes on top, in key order. */
  #rows(component: string, kind: string | undefined): Row[] {
    const rows = (kind === undefined ? this.#load.all(component) : this.#loadKind.all(component, kind)) as Row[];
    let touched = false;
    for (const p of this.#pending.values()) if (p.component === component) touched = true;
    if (!touched) return rows;
    const text = new Map<string, Row & { kind: string; key: string }>();
    let raw: Row[] = [];
    for (const row of rows) {
      if (typeof row.kind === 'string' && typeof row.key === 'string') text.set(keyOf(component, row.kind, row.key), row as Row & { kind: string; key: string });
      else raw.push(row);
    }
    for (const p of this.#pending.values()) {
      if (p.component !== component) continue;
      if (p.op === 'put') {
        if (kind === undefined || p.kind === kind) text.set(keyOf(component, p.kind, p.key), { kind: p.kind, key: p.key, value: p.value });
      } else if (p.op === 'delete') {
        text.delete(keyOf(component, p.kind, p.key));
      } else if (p.op === 'deleteAll') {
        for (const [k, row] of text) if (p.kind === undefined || row.kind === p.kind) text.delete(k);
        // a row of the kind whose key is not text goes with it (SQL's kind = ? matches it)
        raw = p.kind === undefined ? [] : raw.filter((r) => !sameColumn(r.kind, p.kind));
      } else {
        raw = raw.filter((r) => !(sameColumn(r.kind, p.kind) && sameColumn(r.key, p.key)));
      }
    }
    const sorted = [...text.values()].sort((a, b) => byBytes(a.kind, b.kind) || byBytes(a.key, b.key));
    return [...raw, ...sorted];
  }

  loadAll(component: string, kind?: string): AgentStoreLoad {
    this.#open();
    checkScope(component, kind);
    const rows = this.#rows(component, kind);
    const records: AgentStoreRecord[] = [];
    const corrupt: CorruptRecord[] = [];
    for (const row of rows) {
      const k = String(row.kind);
      const key = String(row.key);
      if (typeof row.kind !== 'string' || typeof row.key !== 'string') {
        // a row no caller can address (every kind and key is text): removed here, reported once
        this.#write(
          () => void this.#deleteRaw.run(component, row.kind, row.key),
          () => this.#keep({ op: 'raw', component, kind: row.kind, key: row.key, calls: 1 }),
        );
        corrupt.push({ component, kind: k, key, error: `its ${typeof row.kind !== 'string' ? 'kind' : 'key'} is not text (the row was removed)` });
        continue;
      }
      try {
        if (!Buffer.isBuffer(row.value)) throw new Error(`the value is ${row.value === null ? 'null' : typeof row.value}, not a blob`);
        records.push({ component, kind: k, key, value: deserialize(row.value) });
      } catch (e) {
        corrupt.push({ component, kind: k, key, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return { records, corrupt };
  }

  transaction<T>(fn: () => T): T {
    this.#writable();
    const checked = synchronousFn<T>(fn);
    // nested in another: better-sqlite3 makes it a savepoint (undone alone if it throws); in a kept
    // one, it is kept as its parent is (undone alone if it throws)
    if (this.#db.inTransaction) return this.#db.transaction(checked)();
    if (this.#keeping) return this.#keptTransaction(checked);
    // while writes are kept behind a lock, it joins them without a try (as a write does): they come before it
    if (this.#pending.size > 0) return this.#keptTransaction(checked);
    // BEGIN IMMEDIATE takes the write lock before `fn` runs: a lock is met there, and `fn` runs once
    let ran = false;
    const look = this.#lockSeen && setBusyTimeout(this.#db, 0);
    try {
      const answer = this.#db
        .transaction(() => {
          this.#checkFormat();
          ran = true;
          return checked();
        })
        .immediate();
      this.#lockSeen = false;
      return answer;
    } catch (e) {
      if (ran || !LOCKED.test(sqliteCode(e) ?? '')) throw e;
      this.#lockSeen = true;
      const answer = this.#keptTransaction(checked);
      if (this.#pending.size > 0) this.#failed(e);
      return answer;
    } finally {
      if (look) setBusyTimeout(this.#db, this.#busyTimeoutMs);
    }
  }

  /**
   * Runs a transaction behind the lock: its writes are kept with the others (all kept writes are
   * written in one transaction, so it is all or none on the file too, but for a write the file
   * refuses on its own, lost alone: see #flushPending), answered from the state with
   * them on top; if `fn` throws, the kept writes are as they were before it.
   */
  #keptTransaction<T>(fn: () => T): T {
    const pending = [...this.#pending];
    const counts = { ...this.#counts };
    const seq = this.#pendingSeq;
    const keeping = this.#keeping;
    this.#keeping = true;
    try {
      return fn();
    } catch (e) {
      this.#pending.clear();
      for (const [id, op] of pending) this.#pending.set(id, op);
      this.#counts = counts;
      this.#pendingSeq = seq;
      throw e;
    } finally {
      this.#keeping = keeping;
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // the last writes have no later try: each waits for a lock as long as the open did
    setBusyTimeout(this.#db, this.#lockWaitMs); // else the timeout stays the short one
    const started = performance.now();
    this.#flushPending(true);
    openFiles.delete(this.#fileId);
    try {
      // one closing wait in all: the release of the claim waits only what the kept writes left of it
      // (after a lock that outlasted it, not at all: the claim stays, taken over once this process is gone)
      setBusyTimeout(this.#db, this.#lockWaitMs - (performance.now() - started));
      this.#db.prepare('DELETE FROM agent_store_owner WHERE id = 1 AND os_pid = ?').run(process.pid);
    } catch {
      // not released (a read-only file by now): the next opener takes the claim over once this process is gone
    }
    this.#db.close();
  }
}
