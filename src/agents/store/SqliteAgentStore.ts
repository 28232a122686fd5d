import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { deserialize } from 'node:v8';
import { isKeelError, StoreInUseError, StoreUnavailableError } from '../../errors.js';
import { loadSqliteDriver, openFailure, osProcessAlive, type SqliteDatabase, type SqliteStatement } from '../../delivery/stores/sqliteFile.js';
import { type AgentStore, type AgentStoreLoad, type AgentStoreRecord, checkIdentity, checkScope, type CorruptRecord, synchronousFn, encodeValue } from './AgentStore.js';

type Statement = SqliteStatement;
type Database = SqliteDatabase;

const STORE = 'agent store';

const SCHEMA = `
CREATE TABLE IF NOT EXISTS agent_records (
  component TEXT NOT NULL,
  kind TEXT NOT NULL,
  key TEXT NOT NULL,
  value BLOB NOT NULL,
  PRIMARY KEY (component, kind, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS agent_store_owner (id INTEGER PRIMARY KEY CHECK (id = 1), os_pid INTEGER NOT NULL, os_start TEXT);
`;

/**
 * The start identity of the OS process `osPid` (Linux: the boot id and its start time, which tell
 * the process that made a claim from a later one that was given its pid), or undefined where it
 * cannot be read (another OS, no /proc): the claim is then judged by the pid alone.
 */
function startOf(osPid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${osPid}/stat`, 'utf8');
    const starttime = stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
    if (starttime === undefined || !/^\d+$/.test(starttime)) return undefined;
    return `${readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${starttime}`;
  } catch {
    return undefined;
  }
}

/** Whether the claim of `osPid` (made by the process whose start identity was `osStart`) is held by a live process. */
function claimHeld(osPid: number, osStart: string | null): boolean {
  if (!osProcessAlive(osPid)) return false;
  if (typeof osStart !== 'string') return true; // an older claim, without the identity: by the pid
  const now = startOf(osPid);
  // another process now has the claimer's pid (pid reuse): the claimer is gone
  return now === undefined || now === osStart;
}

/** The file's identity (device and inode): the same file under any path, a symlink's or a hard link's. */
function fileId(file: string): string {
  const st = statSync(file, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

/** Files open in this OS process, by {@link fileId}: two nodes here never share one (each would resume the same schedules). */
const openFiles = new Set<string>();

/**
 * @internal The SQLite agent store: better-sqlite3 (synchronous), WAL with `synchronous=NORMAL`:
 * every write is committed when the call returns and survives a SIGKILL of the OS process (not a
 * power loss). One table, `agent_records (component, kind, key, value)`, values `v8.serialize`d.
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
  readonly #fileId: string;
  #closed = false;

  constructor(file: string) {
    this.path = path.resolve(file);
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
      db = new Driver(this.path);
    } catch (e) {
      throw openFailure(this.path, e, STORE);
    }
    let id: string;
    try {
      id = known ?? fileId(this.path);
      if (openFiles.has(id)) throw inUse();
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      db.exec(SCHEMA);
      const ownerColumns = (db.prepare('SELECT name FROM pragma_table_info(?)').all('agent_store_owner') as { name: string }[]).map((c) => c.name);
      if (!ownerColumns.includes('os_start')) db.exec('ALTER TABLE agent_store_owner ADD COLUMN os_start TEXT'); // a store made before it
      const columns = (db.prepare('SELECT name FROM pragma_table_info(?)').all('agent_records') as { name: string }[]).map((c) => c.name).sort();
      if (columns.join(',') !== 'component,key,kind,value') {
        throw new StoreUnavailableError(this.path, `it is not a Keel agent store (its agent_records table has other columns: ${columns.join(', ')})`, undefined, 'give the path of an agent store, or of a file to create', undefined, STORE);
      }
      // claimed by this OS process, checked and taken in one write transaction: another live OS
      // process on the file would resume the same schedules; a killed one's claim is taken over
      const claim = db.transaction(() => {
        const current = db.prepare('SELECT os_pid, os_start FROM agent_store_owner WHERE id = 1').get() as { os_pid: number; os_start: string | null } | undefined;
        if (current !== undefined && current.os_pid !== process.pid && claimHeld(current.os_pid, current.os_start)) return current.os_pid;
        db.prepare('INSERT OR REPLACE INTO agent_store_owner (id, os_pid, os_start) VALUES (1, ?, ?)').run(process.pid, startOf(process.pid) ?? null);
        return undefined;
      }) as unknown as { immediate(): number | undefined };
      const taken = claim.immediate();
      if (taken !== undefined) throw new StoreInUseError(this.path, `OS process ${taken}`, STORE);
      this.#put = db.prepare('INSERT OR REPLACE INTO agent_records (component, kind, key, value) VALUES (?, ?, ?, ?)');
      this.#insert = db.prepare('INSERT OR IGNORE INTO agent_records (component, kind, key, value) VALUES (?, ?, ?, ?)');
      this.#delete = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind = ? AND key = ?');
      this.#deleteAll = db.prepare('DELETE FROM agent_records WHERE component = ?');
      this.#deleteKind = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind = ?');
      this.#deleteRaw = db.prepare('DELETE FROM agent_records WHERE component = ? AND kind IS ? AND key IS ?');
      this.#load = db.prepare('SELECT kind, key, value FROM agent_records WHERE component = ? ORDER BY kind, key');
      this.#loadKind = db.prepare('SELECT kind, key, value FROM agent_records WHERE component = ? AND kind = ? ORDER BY key');
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

  put(component: string, kind: string, key: string, value: unknown): void {
    this.#writable();
    checkIdentity(component, kind, key);
    this.#put.run(component, kind, key, encodeValue(value));
  }

  insert(component: string, kind: string, key: string, value: unknown): boolean {
    this.#writable();
    checkIdentity(component, kind, key);
    return this.#insert.run(component, kind, key, encodeValue(value)).changes === 1;
  }

  delete(component: string, kind: string, key: string): boolean {
    this.#writable();
    checkIdentity(component, kind, key);
    return this.#delete.run(component, kind, key).changes === 1;
  }

  deleteAll(component: string, kind?: string): number {
    this.#writable();
    checkScope(component, kind);
    return (kind === undefined ? this.#deleteAll.run(component) : this.#deleteKind.run(component, kind)).changes;
  }

  loadAll(component: string, kind?: string): AgentStoreLoad {
    this.#open();
    checkScope(component, kind);
    const rows = (kind === undefined ? this.#load.all(component) : this.#loadKind.all(component, kind)) as { kind: unknown; key: unknown; value: unknown }[];
    const records: AgentStoreRecord[] = [];
    const corrupt: CorruptRecord[] = [];
    for (const row of rows) {
      const k = String(row.kind);
      const key = String(row.key);
      if (typeof row.kind !== 'string' || typeof row.key !== 'string') {
        // a row no caller can address (every kind and key is text): removed here, reported once
        this.#deleteRaw.run(component, row.kind, row.key);
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
    // nested in another: better-sqlite3 makes it a savepoint (undone alone if it throws)
    return this.#db.transaction(synchronousFn<T>(fn))();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    openFiles.delete(this.#fileId);
    try {
      this.#db.prepare('DELETE FROM agent_store_owner WHERE id = 1 AND os_pid = ?').run(process.pid);
    } catch {
      // not released (a read-only file by now): the next opener takes the claim over once this process is gone
    }
    this.#db.close();
  }
}
