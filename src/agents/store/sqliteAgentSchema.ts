import { AGENT_STORE_TABLES, type StoreSchema } from '../../delivery/stores/sqliteFile.js';

// The SQLite agent store's schema: its tables, checked, made and stamped (Keel's file format
// version) by the helpers it shares with the dead letter store (sqliteFile.ts).

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
 * The store's schema, as its file is checked and stamped: its tables are `AGENT_STORE_TABLES`
 * (sqliteFile.ts). The file is stamped with Keel's file format version (`KEEL_FILE_FORMAT`,
 * `PRAGMA user_version`), shared with the dead letter store, which may hold its tables in the same
 * file. A file stamped below it (0: never stamped; 1: stamped by the agent store with its own number,
 * before the format was shared) that holds the store's tables is opened and stamped, and given the
 * claimer's start identity (`agent_store_owner.os_start`) if it lacks it. A newer format (a newer
 * Keel's file) is refused (`StoreVersionError`) before anything is written.
 */
export const AGENT_STORE_SCHEMA: StoreSchema = { ...AGENT_STORE_TABLES, sql: SCHEMA };
