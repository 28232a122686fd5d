import type { StoreSchema } from '../../delivery/stores/sqliteFile.js';

// The SQLite agent store's schema: its tables and the version stamped in the file, checked, made
// and stamped by the helpers it shares with the dead letter store (sqliteFile.ts).

/** The store's tables, made where missing. */
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
 * The version of the agent store's schema (its own: not the dead letter store's), stamped in the
 * file as `PRAGMA user_version` when the store makes its tables. A file stamped 0 (never stamped)
 * that holds the store's tables is a store made before the stamp: it is stamped when opened, and
 * given the claimer's start identity (`agent_store_owner.os_start`) if it was made before that. A
 * newer version (a newer Keel's store) is refused (`StoreVersionError`) before anything is written.
 */
export const AGENT_STORE_SCHEMA_VERSION = 1;

/** The store's schema, as its file is checked and stamped. */
export const AGENT_STORE_SCHEMA: StoreSchema = {
  store: 'agent store',
  sql: SCHEMA,
  version: AGENT_STORE_SCHEMA_VERSION,
  mainTable: 'agent_records',
  tables: [
    ['agent_records', ['component', 'kind', 'key', 'value']],
    ['agent_store_owner', ['id', 'os_pid', 'os_start']],
  ],
  // a store made before the claim recorded its start identity lacks it
  addedColumns: { 'agent_store_owner.os_start': 'TEXT' },
};
