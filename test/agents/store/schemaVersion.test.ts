// The SQLite agent store's file: Keel's file format version (PRAGMA user_version), a store made before the
// stamp, a newer Keel's store and another application's database, each refused untouched.
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreVersionError } from '../../../src/errors.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { KEEL_FILE_FORMAT } from '../../../src/delivery/stores/sqliteFile.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { expectKeelError, thrown, useNodes, useTempFiles } from '../../support.js';
import { fileState, setUserVersion, userVersion } from '../../sqliteFiles.js';

const tmpfile = useTempFiles('keel-agent-file-', 'agents.db');
const track = useNodes();

/** A store file holding two records, closed. */
function storeWithRecords(): string {
  const file = tmpfile();
  const store = new SqliteAgentStore(file);
  try {
    store.put('coordinator', 'workflow', 'wf-1', { step: 2 });
    store.put('scheduler', 'schedule', 'tick', { every: 1000 });
  } finally {
    store.close();
  }
  return file;
}

/** The file's tables, its stamp and its journal mode, read on a read-only connection. */
function inspect(file: string): { tables: string[]; userVersion: unknown; journalMode: unknown } {
  const db = new Database(file, { readonly: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    return { tables, userVersion: db.pragma('user_version', { simple: true }), journalMode: db.pragma('journal_mode', { simple: true }) };
  } finally {
    db.close();
  }
}

describe('the SQLite agent store file format version (PRAGMA user_version, shared with the dead letter store)', () => {
  it('a new store file is stamped with the file format version', () => {
    const file = storeWithRecords();
    expect(KEEL_FILE_FORMAT).toBeGreaterThan(0);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
    // opened again (stamped already): still the same version, its records there
    const again = new SqliteAgentStore(file);
    try {
      expect(again.loadAll('coordinator').records.map((r) => r.value)).toEqual([{ step: 2 }]);
    } finally {
      again.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
  });

  it.each([0, 1])('a store made before the stamp (user_version 0), or stamped 1 (the agent store\'s own number before the shared format), is opened with its records and stamped: user_version %i', (stamped) => {
    const file = storeWithRecords();
    setUserVersion(file, stamped);
    expect(stamped).toBeLessThan(KEEL_FILE_FORMAT);
    const store = new SqliteAgentStore(file);
    try {
      expect(store.loadAll('coordinator').records.map((r) => [r.key, r.value])).toEqual([['wf-1', { step: 2 }]]);
      expect(store.loadAll('scheduler').records.map((r) => [r.key, r.value])).toEqual([['tick', { every: 1000 }]]);
    } finally {
      store.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
  });

  it('a store made before the claim recorded its start identity (no os_start column, unstamped) is opened with its records, given the column and stamped', () => {
    const file = tmpfile();
    const db = new Database(file);
    db.exec(`
      CREATE TABLE agent_records (component TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (component, kind, key)) WITHOUT ROWID;
      CREATE TABLE agent_store_owner (id INTEGER PRIMARY KEY CHECK (id = 1), os_pid INTEGER NOT NULL);
    `);
    db.prepare('INSERT INTO agent_records VALUES (?, ?, ?, ?)').run('c', 'k', 'old', serialize(42));
    db.close();
    const store = new SqliteAgentStore(file);
    try {
      expect(store.loadAll('c')).toEqual({ records: [{ component: 'c', kind: 'k', key: 'old', value: 42 }], corrupt: [] });
    } finally {
      store.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
    const check = new Database(file, { readonly: true });
    try {
      expect((check.prepare('SELECT name FROM pragma_table_info(?)').all('agent_store_owner') as { name: string }[]).map((c) => c.name)).toEqual(['id', 'os_pid', 'os_start']);
    } finally {
      check.close();
    }
  });

  it("a newer Keel's store (a higher user_version) is refused with StoreVersionError before anything is written: the file is byte-identical", () => {
    const file = storeWithRecords();
    setUserVersion(file, KEEL_FILE_FORMAT + 1);
    const before = fileState(file);
    const e = thrown(() => new SqliteAgentStore(file));
    expect(e).toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `the agent store ${file} could not be opened`, `schema version (user_version) is ${KEEL_FILE_FORMAT + 1}, newer than the version ${KEEL_FILE_FORMAT} this Keel writes`);
    expect(e).toMatchObject({ version: KEEL_FILE_FORMAT + 1, supported: KEEL_FILE_FORMAT, file });
    expect(fileState(file)).toEqual(before);
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT + 1);

    // through a node's services.agents.store: the same error, and the file still as it was
    const node = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    expect(thrown(() => agentStoreFor(node, undefined))).toBeInstanceOf(StoreVersionError);
    expect(fileState(file)).toEqual(before);
  });

  it("another application's database (tables of its own, no agent_records table) is refused untouched: no store tables added, no stamp, no WAL switch", () => {
    const file = tmpfile();
    const db = new Database(file);
    db.exec("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); INSERT INTO users (name) VALUES ('ada')");
    db.close();
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteAgentStore(file)), 'ERR_STORE_UNAVAILABLE', 'it is not a Keel agent store (it has tables of its own and no agent_records table: users)');
    expect(fileState(file)).toEqual(before);
    expect(inspect(file)).toEqual({ tables: ['users'], userVersion: 0, journalMode: 'delete' });

    // the same with a version stamp of its own, higher than the store's: not taken for a newer store
    setUserVersion(file, KEEL_FILE_FORMAT + 7);
    const e = thrown(() => new SqliteAgentStore(file));
    expect(e).not.toBeInstanceOf(StoreVersionError);
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `it is not a Keel agent store (its schema version (user_version) is ${KEEL_FILE_FORMAT + 7} and it has no agent_records table)`);
    expect(inspect(file)).toEqual({ tables: ['users'], userVersion: KEEL_FILE_FORMAT + 7, journalMode: 'delete' });
  });

  it("another application's agent_records table (other columns) is refused untouched: no owner table added, no stamp, no WAL switch", () => {
    const file = tmpfile();
    const db = new Database(file);
    db.exec('CREATE TABLE agent_records (id INTEGER PRIMARY KEY, agent TEXT)');
    db.close();
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteAgentStore(file)), 'ERR_STORE_UNAVAILABLE', 'it is not a Keel agent store (its agent_records table has other columns: ');
    expect(fileState(file)).toEqual(before);
    expect(inspect(file)).toEqual({ tables: ['agent_records'], userVersion: 0, journalMode: 'delete' });
  });
});
