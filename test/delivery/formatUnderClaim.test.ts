// Keel's file format (PRAGMA user_version) is raised only by the process that holds the file: a file
// of an older format that another live OS process has open (its claim in dead_letter_owner or
// agent_store_owner, whichever store it runs) is refused by every other opener that would raise it
// (a node's dead letter store, a node's agent store, keel dlq retry and purge) and left byte for byte
// as it is; the process holding it would go on writing rows of its format into a file of a newer one.
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { StoreUnavailableError, StoreVersionError } from '../../src/errors.js';
import { KEEL_FILE_FORMAT, startOf } from '../../src/delivery/stores/sqliteFile.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { type AgentStoreWriteReport, SqliteAgentStore } from '../../src/agents/store/SqliteAgentStore.js';
import { TestClock } from '../../src/testing/index.js';
import { runDlq } from '../../src/cli/dlq.js';
import { expectKeelError, storeClockOf, thrown, useTempFiles } from '../support.js';
import { fileState, insertLetter, LEGACY_DEAD_LETTER_TABLES, rows, setUserVersion, userVersion, writeDatabase } from '../sqliteFiles.js';

const tmpfile = useTempFiles('keel-format-claim-', 'keel.db');

/** A live OS process that is not this one, and its start identity (a claim it made is held). */
const OTHER = process.ppid;

/** A dead letter store as Keel made it before the stamp (user_version 0, no os_start), one entry, claimed by `osPid`. */
function legacyDeadLetters(file: string, osPid: number): void {
  writeDatabase(file, (db) => {
    db.exec(LEGACY_DEAD_LETTER_TABLES);
    insertLetter(db, 'old', 'parked');
    db.prepare("INSERT INTO dead_letter_owner (id, owner, os_pid) VALUES (1, 'node-old', ?)").run(osPid);
  });
}

/** An agent store as Keel made it with its own stamp (user_version 1, no os_start), one record, claimed by `osPid`. */
function legacyAgentStore(file: string, osPid: number): void {
  writeDatabase(file, (db) => {
    db.exec(`
      CREATE TABLE agent_records (component TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY (component, kind, key)) WITHOUT ROWID;
      CREATE TABLE agent_store_owner (id INTEGER PRIMARY KEY CHECK (id = 1), os_pid INTEGER NOT NULL);
    `);
    db.prepare("INSERT INTO agent_records VALUES ('scheduler', 'schedule', 'tick', ?)").run(serialize({ every: 1000 }));
    db.prepare('INSERT INTO agent_store_owner (id, os_pid) VALUES (1, ?)').run(osPid);
    db.pragma('user_version = 1');
  });
}

/** A store file of this Keel's tables, stamped back to an older format (1), its dead letter store claimed by `osPid` (with its start identity). */
function olderFormatClaimed(file: string, osPid: number): void {
  const store = new SqliteStore(file, 'node-old');
  store.close();
  const db = new Database(file);
  try {
    db.prepare("INSERT INTO dead_letter_owner (id, owner, os_pid, os_start) VALUES (1, 'node-old', ?, ?)").run(osPid, startOf(osPid) ?? null);
  } finally {
    db.close();
  }
  setUserVersion(file, KEEL_FILE_FORMAT - 1);
}

/** A pid no process has: a claim a killed process left. */
const GONE = 2 ** 22 + 12345;

function dlq(argv: string[]): { code: number; out: string } {
  const lines: string[] = [];
  const code = runDlq(argv, (line) => lines.push(line), () => 10);
  return { code, out: lines.join('\n') };
}

const behindWhy = (version: number, holder: string): string =>
  `its file format (user_version) is ${version}, older than the version ${KEEL_FILE_FORMAT} this Keel writes, and ${holder} has it open: raising the format under it would leave that process writing rows of its format into a file of a newer one`;
const behindHint = 'stop that process (or open the file with the Keel it runs), then open the file again; this one leaves the file as it is';

describe('an older file held by another live OS process is not raised under it', () => {
  it("a node's dead letter store on an unstamped store another live process claims: ERR_STORE_IN_USE, the file byte for byte as it was (it was stamped before the claim was checked)", () => {
    const file = tmpfile();
    legacyDeadLetters(file, OTHER);
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteStore(file, 'node-new')), 'ERR_STORE_IN_USE', `the dead letter store ${file} is owned by node-old (OS process ${OTHER})`);
    expect(fileState(file)).toEqual(before);
    expect(userVersion(file)).toBe(0);
  });

  it("a node's agent store on an older agent store another live process claims: ERR_STORE_IN_USE, the file byte for byte as it was", () => {
    const file = tmpfile();
    legacyAgentStore(file, OTHER);
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteAgentStore(file)), 'ERR_STORE_IN_USE', `the agent store ${file} is owned by OS process ${OTHER}`);
    expect(fileState(file)).toEqual(before);
    expect(userVersion(file)).toBe(1);
  });

  it("an agent store joining an older dead letter store another live process claims (the other store's claim): refused with StoreUnavailableError telling to stop it, the file as it was", () => {
    const file = tmpfile();
    legacyDeadLetters(file, OTHER);
    const before = fileState(file);
    const e = thrown(() => new SqliteAgentStore(file));
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect(e).not.toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ file, why: behindWhy(0, `OS process ${OTHER} (node node-old, its dead letter store)`), hint: behindHint, sqliteCode: undefined });
    expectKeelError(e, 'ERR_STORE_UNAVAILABLE', `the agent store ${file} could not be opened: ${behindWhy(0, `OS process ${OTHER} (node node-old, its dead letter store)`)}; ${behindHint}`);
    expect(fileState(file)).toEqual(before);
  });

  it("a dead letter store joining an older agent store another live process claims: refused, the file as it was", () => {
    const file = tmpfile();
    legacyAgentStore(file, OTHER);
    const before = fileState(file);
    const e = thrown(() => new SqliteStore(file, 'node-new'));
    expect(e).toBeInstanceOf(StoreUnavailableError);
    expect(e).toMatchObject({ why: behindWhy(1, `OS process ${OTHER} (its agent store)`), hint: behindHint });
    expect(fileState(file)).toEqual(before);
  });

  it.runIf(process.platform === 'linux')('a store of this format stamped back (a claim with its start identity): refused by both stores, unchanged', () => {
    const file = tmpfile();
    olderFormatClaimed(file, OTHER);
    const before = fileState(file);
    expectKeelError(thrown(() => new SqliteStore(file, 'node-new')), 'ERR_STORE_IN_USE', `node-old (OS process ${OTHER})`);
    expect(thrown(() => new SqliteAgentStore(file))).toMatchObject({ why: behindWhy(KEEL_FILE_FORMAT - 1, `OS process ${OTHER} (node node-old, its dead letter store)`) });
    expect(fileState(file)).toEqual(before);
  });

  it('keel dlq retry and purge on an older store another live process claims: one line, exit 1, nothing changed, the file as it was; list reads it', () => {
    const file = tmpfile();
    legacyDeadLetters(file, OTHER);
    const before = fileState(file);
    for (const argv of [['retry', '--all'], ['purge', '--all']]) {
      expect(dlq([...argv, '--store', file]), argv[0]).toEqual({
        code: 1,
        out: `keel dlq ${argv[0]!}: could not open ${file}: ${behindWhy(0, `OS process ${OTHER} (node node-old, its dead letter store)`)}; no dead letter was changed; ${behindHint}`,
      });
      expect(fileState(file), argv[0]).toEqual(before);
    }
    expect(userVersion(file)).toBe(0);
    // list reads it (on a read-only connection, which leaves its -wal and -shm behind: the file itself is as it was)
    expect(JSON.parse(dlq(['list', '--store', file, '--json']).out)).toMatchObject([{ id: '1', status: 'parked' }]);
    expect(fileState(file).sha256).toBe(before.sha256);
  });

  it('once the holder is gone (its claim left by a killed process), each opener raises the format: the CLI without a claim, a node taking the claim in the same write transaction', () => {
    const file = tmpfile();
    legacyDeadLetters(file, GONE);
    expect(dlq(['retry', '--all', '--store', file, '--json'])).toEqual({ code: 0, out: JSON.stringify({ marked: ['1'] }, null, 2) });
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);

    const agents = tmpfile();
    legacyAgentStore(agents, GONE);
    const store = new SqliteAgentStore(agents);
    try {
      expect(store.loadAll('scheduler').records).toEqual([{ component: 'scheduler', kind: 'schedule', key: 'tick', value: { every: 1000 } }]);
      const db = new Database(agents, { readonly: true });
      try {
        expect(db.prepare('SELECT os_pid FROM agent_store_owner').all()).toEqual([{ os_pid: process.pid }]);
        expect(db.pragma('user_version', { simple: true })).toBe(KEEL_FILE_FORMAT);
      } finally {
        db.close();
      }
    } finally {
      store.close();
    }
  });

  it('at the current format, a store joins a file whose other store another live process holds (nothing raised)', () => {
    const file = tmpfile();
    new SqliteStore(file, 'node-a').close();
    const db = new Database(file);
    db.prepare("INSERT INTO dead_letter_owner (id, owner, os_pid, os_start) VALUES (1, 'node-a', ?, ?)").run(OTHER, startOf(OTHER) ?? null);
    db.close();
    const agents = new SqliteAgentStore(file);
    try {
      agents.put('c', 'k', 'x', 1);
    } finally {
      agents.close();
    }
    expect(userVersion(file)).toBe(KEEL_FILE_FORMAT);
  });
});


function record(message: string): Parameters<SqliteStore['add']>[0] {
  return { recipient: 'x', message, reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status: 'pending' };
}

const NEWER = KEEL_FILE_FORMAT + 1;

describe('a file raised to a newer format under an open store (by a tool that ignored its claim): its later writes are refused, never silent', () => {
  it('the dead letter store: an add rejects, a purge and an expire throw, with StoreVersionError; an update and a delete are kept and reported (lost at close); the file holds none of them', async () => {
    const file = tmpfile();
    const errors: [string, unknown][] = [];
    const store = new SqliteStore(file, 'node-a', (message, error) => errors.push([message, error]));
    const id = await store.add(record('before'));
    setUserVersion(file, NEWER);
    const before = rows(file, 'SELECT seq, status FROM dead_letters');
    const e = await store.add(record('after')).then(
      () => 'added',
      (err: unknown) => err,
    );
    expect(e).toBeInstanceOf(StoreVersionError);
    expect(e).toMatchObject({ version: NEWER, supported: KEEL_FILE_FORMAT, file });
    expect(thrown(() => store.purge({}, 10))).toBeInstanceOf(StoreVersionError);
    expect(thrown(() => store.expire(10))).toBeInstanceOf(StoreVersionError);
    store.update(id, { status: 'parked' });
    expect(store.get(id)?.status).toBe('pending'); // the read flushed the update: refused, kept
    expect(errors.map(([m, err]) => [m, (err as Error).constructor.name])).toEqual([[`the dead letter store ${file} could not write 1 update(s); they are kept for the next try`, 'StoreVersionError']]);
    store.remove(id); // behind the kept update: kept, the entry left out of reads meanwhile
    expect(store.get(id)).toBeUndefined();
    store.close();
    // each read, and the remove, tried the kept writes again: each try refused and reported
    expect(errors.slice(1).map(([m, err]) => [m, (err as Error).constructor.name])).toEqual([
      [`the dead letter store ${file} could not write 1 update(s); they are kept for the next try`, 'StoreVersionError'],
      [`the dead letter store ${file} could not write 2 update(s); they are kept for the next try`, 'StoreVersionError'],
      [`the dead letter store ${file} could not write 2 update(s) before it closed; they are lost`, 'StoreVersionError'],
    ]);
    expect(rows(file, 'SELECT seq, status FROM dead_letters')).toEqual(before);
    expect(userVersion(file)).toBe(NEWER);
  });

  it('the agent store: a write made at once and a transaction throw StoreVersionError; a write kept behind a lock is reported delayed, then lost at close (counted); the file holds none of them', async () => {
    const file = tmpfile();
    const clock = new TestClock({ start: 1_000_000 });
    const reports: AgentStoreWriteReport[] = [];
    const store = new SqliteAgentStore(file, { busyTimeoutMs: 50, clock: storeClockOf(clock), report: (r) => reports.push(r) });
    store.put('c', 'k', 'a', 1);
    setUserVersion(file, NEWER);
    expect(thrown(() => store.put('c', 'k', 'b', 2))).toMatchObject({ constructor: StoreVersionError, version: NEWER, supported: KEEL_FILE_FORMAT });
    expect(thrown(() => store.delete('c', 'k', 'a'))).toBeInstanceOf(StoreVersionError);
    expect(thrown(() => store.transaction(() => store.put('c', 'k', 'c', 3)))).toBeInstanceOf(StoreVersionError);
    expect(store.writeCounts).toEqual({ delayed: 0, written: 0, lost: 0, queued: 0 });

    // kept behind a lock, raised before the lock goes
    setUserVersion(file, KEEL_FILE_FORMAT);
    store.put('c', 'k', 'b', 2); // the format read again: written
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    store.put('c', 'k', 'kept', 4);
    lock.pragma(`user_version = ${NEWER}`);
    lock.exec('COMMIT');
    lock.close();
    await clock.advance(25); // the kept write's try: refused by the format, kept
    expect(store.writeCounts).toEqual({ delayed: 1, written: 0, lost: 0, queued: 1 });
    store.close();
    expect(store.writeCounts).toEqual({ delayed: 1, written: 0, lost: 1, queued: 0 });
    expect(reports.map((r) => [r.outcome, r.writes, (r as { error?: Error }).error?.constructor.name])).toEqual([
      ['delayed', 1, 'SqliteError'],
      ['delayed', 1, 'StoreVersionError'],
      ['lost', 1, 'StoreVersionError'],
    ]);
    expect(rows(file, 'SELECT key FROM agent_records ORDER BY key')).toEqual([{ key: 'a' }, { key: 'b' }]);
  });
});
