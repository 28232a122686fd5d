// One file holding both of Keel's SQLite stores (a user pointing the dead letter store and the agent
// store at the same 'keel.db'): PRAGMA user_version is Keel's file format version, shared by both
// stores, so each opens the file the other made or stamped, adds its own tables and leaves the
// other's alone. A newer Keel's file is refused by either, byte for byte as it was.
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreVersionError } from '../../../src/errors.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { KEEL_FILE_FORMAT } from '../../../src/delivery/stores/sqliteFile.js';
import { SqliteStore } from '../../../src/delivery/stores/SqliteStore.js';
import { expectKeelError, thrown, useTempFiles } from '../../support.js';
import { fileState, insertLetter, LEGACY_DEAD_LETTER_TABLES, setUserVersion, writeDatabase } from '../../sqliteFiles.js';

const tmpfile = useTempFiles('keel-shared-file-', 'keel.db');

type Order = 'dead letter store first' | 'agent store first';
const ORDERS: Order[] = ['dead letter store first', 'agent store first'];

function record(message: string): Parameters<SqliteStore['add']>[0] {
  return { recipient: 'x', message, reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status: 'pending' };
}

/** Opens the dead letter store as a node does, adds `message` if given, and returns its entries' messages; closed again. */
async function deadLetters(file: string, message?: string): Promise<unknown[]> {
  const store = new SqliteStore(file, 'node-a');
  try {
    if (message !== undefined) await store.add(record(message));
    return store.list({}, 0, 100, undefined).entries.map((e) => e.message);
  } finally {
    store.close();
  }
}

/** Opens the agent store, puts `key` if given, and returns its records' keys; closed again. */
function agentRecords(file: string, key?: string): string[] {
  const store = new SqliteAgentStore(file);
  try {
    if (key !== undefined) store.put('coordinator', 'workflow', key, { key });
    return store.loadAll('coordinator').records.map((r) => r.key);
  } finally {
    store.close();
  }
}

/** The file's tables, its stamp and the columns of both owner tables. */
function inspect(file: string): { tables: string[]; userVersion: unknown; owners: Record<string, string[]> } {
  const db = new Database(file, { readonly: true });
  try {
    const tables = (db.prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite%' ORDER BY name").all() as { name: string }[]).map((t) => t.name);
    const columns = (table: string): string[] => (db.prepare('SELECT name FROM pragma_table_info(?)').all(table) as { name: string }[]).map((c) => c.name);
    return { tables, userVersion: db.pragma('user_version', { simple: true }), owners: { dead_letter_owner: columns('dead_letter_owner'), agent_store_owner: columns('agent_store_owner') } };
  } finally {
    db.close();
  }
}

const BOTH = {
  tables: ['agent_records', 'agent_store_owner', 'dead_letter_owner', 'dead_letters'],
  userVersion: KEEL_FILE_FORMAT,
  owners: { dead_letter_owner: ['id', 'owner', 'os_pid', 'os_start'], agent_store_owner: ['id', 'os_pid', 'os_start'] },
};

/**
 * A file both stores shared before either was stamped by its own number: the tables as Keel made
 * them then (no os_start in either owner table), one record in each, user_version 0.
 */
function legacySharedFile(file: string): void {
  writeDatabase(file, (db) => {
    db.exec(`
      ${LEGACY_DEAD_LETTER_TABLES}
      CREATE TABLE agent_records (component TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (component, kind, key)) WITHOUT ROWID;
      CREATE TABLE agent_store_owner (id INTEGER PRIMARY KEY CHECK (id = 1), os_pid INTEGER NOT NULL);
    `);
    insertLetter(db, 'old-letter', 'pending');
    db.prepare('INSERT INTO agent_records VALUES (?, ?, ?, ?)').run('coordinator', 'workflow', 'old-record', serialize({ key: 'old-record' }));
  });
}

describe('one file holding both SQLite stores (user_version: the Keel file format, shared)', () => {
  it.each(ORDERS)('a new file opens as both stores, %s, again and again: each keeps its records, and the file is stamped with the file format version', async (order) => {
    const file = tmpfile();
    const letters: string[] = [];
    const keys: string[] = [];
    for (let round = 1; round <= 4; round++) {
      const dlqStep = async (): Promise<void> => {
        letters.push(`letter-${round}`);
        expect(await deadLetters(file, `letter-${round}`)).toEqual(letters);
      };
      const agentStep = (): void => {
        keys.push(`wf-${round}`);
        expect(agentRecords(file, `wf-${round}`)).toEqual(keys);
      };
      if (order === 'dead letter store first') {
        await dlqStep();
        agentStep();
      } else {
        agentStep();
        await dlqStep();
      }
      expect(inspect(file)).toEqual(BOTH);
    }
    // opened without writing: each still reads what it had
    expect(await deadLetters(file)).toEqual(letters);
    expect(agentRecords(file)).toEqual(keys);
    expect(inspect(file)).toEqual(BOTH);
  });

  it.each(ORDERS)('the file one store made is a Keel file to the other (%s): it adds its own tables, the other store\'s records stay', async (order) => {
    const file = tmpfile();
    if (order === 'dead letter store first') {
      expect(await deadLetters(file, 'kept')).toEqual(['kept']);
      expect(inspect(file).tables).toEqual(['dead_letter_owner', 'dead_letters']);
      expect(agentRecords(file)).toEqual([]);
    } else {
      expect(agentRecords(file, 'kept')).toEqual(['kept']);
      expect(inspect(file).tables).toEqual(['agent_records', 'agent_store_owner']);
      expect(await deadLetters(file)).toEqual([]);
    }
    expect(inspect(file)).toEqual(BOTH);
    expect(await deadLetters(file)).toEqual(order === 'dead letter store first' ? ['kept'] : []);
    expect(agentRecords(file)).toEqual(order === 'agent store first' ? ['kept'] : []);
  });

  it.each(ORDERS)('a shared file made before the stamp (user_version 0, no os_start in either owner table) opens, %s: both keep their records, each gets its column, the file the format version', async (order) => {
    const file = tmpfile();
    legacySharedFile(file);
    for (let round = 0; round < 3; round++) {
      if (order === 'dead letter store first') {
        expect(await deadLetters(file)).toEqual(['old-letter']);
        expect(agentRecords(file)).toEqual(['old-record']);
      } else {
        expect(agentRecords(file)).toEqual(['old-record']);
        expect(await deadLetters(file)).toEqual(['old-letter']);
      }
      expect(inspect(file)).toEqual(BOTH);
    }
  });

  it.each([
    ['the agent store', 1],
    ['the dead letter store', 2],
  ] as const)('a shared file stamped by %s with its own number (%i, as Keel stamped it before the shared format) opens as both, repeatedly', async (_by, stamp) => {
    // the review's case: an agent store, the dead letter tables added, then both opened in turn
    const file = tmpfile();
    legacySharedFile(file);
    setUserVersion(file, stamp);
    for (let round = 0; round < 3; round++) {
      expect(await deadLetters(file, `letter-${round}`)).toContain('old-letter');
      expect(agentRecords(file, `wf-${round}`)).toContain('old-record');
    }
    expect(await deadLetters(file)).toEqual(['old-letter', 'letter-0', 'letter-1', 'letter-2']);
    expect(agentRecords(file)).toEqual(['old-record', 'wf-0', 'wf-1', 'wf-2']);
    expect(inspect(file)).toEqual(BOTH);
  });

  it("a newer Keel's file (a higher format) is refused by either store with StoreVersionError, byte for byte as it was, whichever store's tables it holds", async () => {
    const shared = tmpfile();
    await deadLetters(shared, 'kept');
    agentRecords(shared, 'kept');
    const agentOnly = tmpfile();
    agentRecords(agentOnly, 'kept');
    const dlqOnly = tmpfile();
    await deadLetters(dlqOnly, 'kept');
    for (const file of [shared, agentOnly, dlqOnly]) {
      setUserVersion(file, KEEL_FILE_FORMAT + 1);
      const before = fileState(file);
      for (const open of [() => new SqliteStore(file, 'node-a'), () => new SqliteAgentStore(file)]) {
        const e = thrown(open);
        expect(e).toBeInstanceOf(StoreVersionError);
        expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `newer than the version ${KEEL_FILE_FORMAT} this Keel writes`);
        expect(e).toMatchObject({ version: KEEL_FILE_FORMAT + 1, supported: KEEL_FILE_FORMAT, file });
        expect(fileState(file)).toEqual(before);
      }
    }
  });

  it("another application's tables beside no Keel store's are still refused untouched by either store, and so is a file whose only Keel-named table has other columns", () => {
    const file = tmpfile();
    writeDatabase(file, (db) => db.exec('CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT); CREATE TABLE agent_records (id INTEGER PRIMARY KEY, agent TEXT)'), { wal: false });
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteStore(file, 'node-a')), 'ERR_STORE_UNAVAILABLE', 'it is not a Keel dead letter store (it has tables of its own and no dead_letters table: agent_records, users)');
    expectKeelError(thrown(() => new SqliteAgentStore(file)), 'ERR_STORE_UNAVAILABLE', 'it is not a Keel agent store (its agent_records table has other columns: ');
    expect(fileState(file)).toEqual(before);
  });
});
