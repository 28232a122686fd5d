// What the SQLite store tests read of a store's file from outside the store: its stamp, its bytes.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { deserialize, serialize } from 'node:v8';
import Database from 'better-sqlite3';

/** The file's `PRAGMA user_version`, read on a read-only connection. */
export function userVersion(file: string): number {
  const db = new Database(file, { readonly: true });
  try {
    return db.pragma('user_version', { simple: true }) as number;
  } finally {
    db.close();
  }
}

/** Sets the file's `PRAGMA user_version` (a file of another Keel, or of before the stamp). */
export function setUserVersion(file: string, version: number): void {
  const db = new Database(file);
  try {
    db.pragma(`user_version = ${version}`);
  } finally {
    db.close();
  }
}

/** Makes (or opens) the database `file`, its directory made if missing, in WAL mode unless `wal` is false; runs `fill` on it, then closes it. */
export function writeDatabase(file: string, fill: (db: Database.Database) => void, { wal = true }: { wal?: boolean } = {}): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const db = new Database(file);
  try {
    if (wal) db.pragma('journal_mode = WAL');
    fill(db);
  } finally {
    db.close();
  }
}

/** Inserts one dead letter as every version of the store wrote it (recipient 'x', reason noproc, due at 2), its payload `[message, {}]`. */
export function insertLetter(db: Database.Database, message: string, status: 'pending' | 'parked'): void {
  db.prepare("INSERT INTO dead_letters (recipient, payload, reason, attempts, first_failed_at, last_attempt_at, next_retry_at, last_error, status) VALUES ('x', ?, 'noproc', 0, 1, 1, 2, 'noproc', ?)").run(
    serialize([message, {}]),
    status,
  );
}

/** The rows `sql` selects, read on a read-only connection. */
export function rows(file: string, sql: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

/** An agent store's records in the file, read on a read-only connection: `component/kind/key` → decoded value. */
export function agentRecords(file: string): Record<string, unknown> {
  const found = rows(file, 'SELECT component, kind, key, value FROM agent_records ORDER BY component, kind, key') as { component: string; kind: string; key: string; value: Buffer }[];
  return Object.fromEntries(found.map((r) => [`${r.component}/${r.kind}/${r.key}`, deserialize(r.value)]));
}

/** The file's bytes (a hash) and the files beside it. */
export function fileState(file: string): { sha256: string; directory: string[] } {
  return { sha256: createHash('sha256').update(fs.readFileSync(file)).digest('hex'), directory: fs.readdirSync(path.dirname(file)).sort() };
}

/** The dead letter store's tables as Keel made them before the file was stamped (no `dead_letter_owner.os_start`). */
export const LEGACY_DEAD_LETTER_TABLES = `
      CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, recipient TEXT NOT NULL, payload BLOB NOT NULL, reason TEXT NOT NULL, attempts INTEGER NOT NULL,
        first_failed_at INTEGER NOT NULL, last_attempt_at INTEGER NOT NULL, next_retry_at INTEGER NOT NULL, last_error BLOB, status TEXT NOT NULL);
      CREATE INDEX dead_letters_due ON dead_letters (status, next_retry_at);
      CREATE TABLE dead_letter_owner (id INTEGER PRIMARY KEY CHECK (id = 1), owner TEXT NOT NULL, os_pid INTEGER NOT NULL);
`;
