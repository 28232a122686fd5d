// The SQLite dead letter store survives a SIGKILL of its OS process: a child process adds entries
// and reports each id whose `add` resolved; the parent kills it with SIGKILL mid-stream, reopens the
// file and finds every reported id. A live owner in another OS process keeps a node off the file; a
// killed one does not. The children run the package compiled into a private temp directory (see
// test/childProcesses.ts). And what the file is written with: WAL, `synchronous=NORMAL`, no update
// lost without a word when the store closes.
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import { type DeadLetter, isUnavailable } from '../../src/index.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { TestClock } from '../../src/testing/index.js';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { expectKeelError, ok, thrown, useNodes, useTempFiles } from '../support.js';

const CHILD = fileURLToPath(new URL('../fixtures/dlq-sigkill-child.mjs', import.meta.url));
const OWNER_CHILD = fileURLToPath(new URL('../fixtures/dlq-owner-child.mjs', import.meta.url));
const REDELIVERY_CHILD = fileURLToPath(new URL('../fixtures/dlq-redelivery-child.mjs', import.meta.url));
const REPORTED = 200;

// after-each hooks run in reverse order: the nodes shut down, then a child left running by a failed
// test is killed, then the temp directories are removed
const tmpfile = useTempFiles('keel-dlq-kill-', 'dead-letters.db');
const forkChild = useChildren();
const track = useNodes();
const builtKeel = useBuiltPackage();

interface Report {
  readonly id?: string;
  readonly n?: number;
  readonly ready?: number;
}

describe('the SQLite dead letter store under SIGKILL', () => {
  it('keeps every entry whose add resolved before the OS process was killed', async () => {
    const file = tmpfile();
    const child = forkChild<Report>(CHILD, [builtKeel(), file]);
    const reported = new Map<string, number>();
    child.onMessage((m) => {
      if (typeof m.id === 'string' && typeof m.n === 'number') reported.set(m.id, m.n);
    });
    await child.next(() => reported.size >= REPORTED);
    // 'close' comes after the exit and after the last IPC message has been read
    const { signal } = await child.kill();
    expect(signal).toBe('SIGKILL');
    expect(reported.size).toBeGreaterThanOrEqual(REPORTED);

    // the killed owner left its claim behind; a fresh node takes the file over (its OS process is gone)
    const node = track({ clock: new TestClock({ start: 0 }), services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    const found = new Map<string, DeadLetter>();
    for (let cursor: string | undefined; ; ) {
      const page = await node.deadLetters.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      if (isUnavailable(page)) throw new Error('the queue answered unavailable');
      for (const e of page.entries) found.set(e.id, e);
      if (page.cursor === undefined) break;
      cursor = page.cursor;
    }
    const missing = [...reported.keys()].filter((id) => !found.has(id));
    expect(missing).toEqual([]);
    for (const [id, n] of reported) {
      expect(found.get(id)).toMatchObject({ recipient: 'nobody', reason: 'noproc', status: 'pending', message: { n, text: `entry ${n}` } });
    }

    // and the file itself, read by a plain connection, holds them too
    const db = new Database(file, { readonly: true });
    try {
      const seqs = new Set((db.prepare('SELECT seq FROM dead_letters').all() as { seq: number }[]).map((r) => String(r.seq)));
      expect([...reported.keys()].filter((id) => !seqs.has(id))).toEqual([]);
    } finally {
      db.close();
    }
  });
});

interface Holding {
  readonly holding: number;
  readonly ids: readonly string[];
}

describe('the SQLite dead letter store across OS processes', () => {
  it('two nodes never share one file: ERR_STORE_IN_USE while the owning OS process lives; once it is killed, a node takes the file over with its entries', async () => {
    const file = tmpfile();
    const child = forkChild<Holding>(OWNER_CHILD, [builtKeel(), file, '3']);
    const holding = await child.next(() => true);
    expect(holding.holding).toBe(child.process.pid);
    expect(holding.ids).toHaveLength(3);

    // the child is alive and owns the file: a node here is refused, and the error names the owner
    const refused = thrown(() => track({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } }));
    expectKeelError(refused, 'ERR_STORE_IN_USE', path.resolve(file), `(OS process ${child.process.pid})`);

    expect(await child.kill()).toEqual({ code: null, signal: 'SIGKILL' });

    // its claim is left behind, but its OS process is gone: a node takes the file over
    const node = track({ clock: new TestClock({ start: 0 }), services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    const { entries, cursor } = ok(await node.deadLetters.list({ limit: 10 }));
    expect(cursor).toBeUndefined();
    expect(entries.map((e) => e.id)).toEqual(holding.ids);
    entries.forEach((e, n) => expect(e).toMatchObject({ recipient: 'nobody', reason: 'noproc', status: 'pending', message: { n, text: `held ${n}` } }));
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT os_pid FROM dead_letter_owner').all()).toEqual([{ os_pid: process.pid }]);
    } finally {
      db.close();
    }
  });
});

interface Redelivery {
  readonly added?: readonly string[];
  readonly handling?: number;
  readonly succeeded?: string;
}

describe('the SQLite dead letter store under SIGKILL while it redelivers', () => {
  it("keeps every entry its receiver has not finished handling: a redelivery removes an entry only once it is handled, whatever the original send's ack", async () => {
    const file = tmpfile();
    // 100 entries of 'enqueued' sends for a slow receiver: it finishes 3, then stays busy with the 4th
    const child = forkChild<Redelivery>(REDELIVERY_CHILD, [builtKeel(), file, '100', '3']);
    let added: readonly string[] = [];
    const handling: number[] = [];
    const succeeded: string[] = [];
    child.onMessage((m) => {
      if (m.added !== undefined) added = m.added;
      if (m.handling !== undefined) handling.push(m.handling);
      if (m.succeeded !== undefined) succeeded.push(m.succeeded);
    });
    // redelivery has started: three entries handled (and reported removed), the fourth being handled
    await child.next(() => succeeded.length >= 3 && handling.includes(3));
    expect((await child.kill()).signal).toBe('SIGKILL');

    expect(added).toHaveLength(100);
    expect(handling).toEqual([0, 1, 2, 3]);
    expect(succeeded).toEqual(added.slice(0, 3));
    // the file, read by a plain connection, holds every entry not handled: the 97 after the first three
    const db = new Database(file, { readonly: true });
    try {
      const seqs = (db.prepare('SELECT seq FROM dead_letters ORDER BY seq').all() as { seq: number }[]).map((r) => String(r.seq));
      expect(seqs).toEqual(added.slice(3));
    } finally {
      db.close();
    }
    // and a node that takes the file over finds them pending, with their messages
    const node = track({ clock: new TestClock({ start: 0 }), services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    const { entries, cursor } = ok(await node.deadLetters.list({ limit: 100 }));
    expect(cursor).toBeUndefined();
    expect(entries.map((e) => e.message)).toEqual(Array.from({ length: 97 }, (_, i) => ({ n: i + 3 })));
    expect(entries.every((e) => e.status === 'pending' && e.recipient === 'slow')).toBe(true);
  });
});

describe('the SQLite dead letter store file', () => {
  it('sets synchronous=NORMAL on its connection itself (PRAGMA synchronous answers 1 there), in WAL mode', async () => {
    // The setting belongs to a connection, not to the file, so it is read on the store's own
    // connection. Its value alone cannot tell whether the store set it: better-sqlite3 is built with
    // SQLITE_DEFAULT_WAL_SYNCHRONOUS=1, so any connection (a fresh one too) answers 1 once it has
    // opened the WAL. The store sets it explicitly, so as not to depend on how the driver was built:
    // that call is checked as well.
    const file = tmpfile();
    const pragma = vi.spyOn(Database.prototype, 'pragma');
    let connections: Database.Database[];
    let calls: unknown[][];
    try {
      const node = track({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
      ok(await node.deadLetters.add({ recipient: 'x', message: 1, reason: 'noproc' }));
      connections = [...new Set(pragma.mock.contexts as Database.Database[])];
      calls = pragma.mock.calls;
    } finally {
      pragma.mockRestore();
    }
    expect(connections).toHaveLength(1);
    expect(calls).toContainEqual(['synchronous = NORMAL']);
    const own = connections[0]!;
    expect(own.pragma('synchronous', { simple: true })).toBe(1);
    expect(own.pragma('journal_mode', { simple: true })).toBe('wal');
  });

  it('close() writes the updates still queued, and reports those it cannot write to its error handler instead of dropping them silently', async () => {
    const file = tmpfile();
    const seeded = new SqliteStore(file, undefined);
    const [a, b] = await Promise.all(['a', 'b'].map((m) => seeded.add({ recipient: 'x', message: m, reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 1, lastError: undefined, status: 'pending' })));
    seeded.close();
    const statusOf = (id: string): unknown => {
      const db = new Database(file, { readonly: true });
      try {
        return (db.prepare('SELECT status FROM dead_letters WHERE seq = ?').get(Number(id)) as { status: string }).status;
      } finally {
        db.close();
      }
    };
    const reports: { message: string; error: unknown }[] = [];
    const open = (): SqliteStore => new SqliteStore(file, undefined, (message, error) => reports.push({ message, error }), 'create', { busyTimeoutMs: 20 });

    // another connection holds the write lock: the final flush fails, and says so
    let store = open();
    const lock = new Database(file);
    lock.exec('BEGIN IMMEDIATE');
    try {
      store.update(a!, { status: 'parked' }); // queued: written behind, at the latest by close()
      store.close();
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    expect(reports).toHaveLength(1);
    expect(reports[0]!.message).toBe(`the dead letter store ${path.resolve(file)} could not write 1 update(s) before it closed; they are lost`);
    expect(reports[0]!.error).toMatchObject({ code: 'SQLITE_BUSY' });
    expect(statusOf(a!)).toBe('pending');

    // without the lock, close() writes what is queued, and reports nothing
    reports.length = 0;
    store = open();
    store.update(b!, { status: 'parked' });
    store.close();
    expect(reports).toEqual([]);
    expect(statusOf(b!)).toBe('parked');
  });

  it('a claimed store closed while the file is locked reports what it could not do, closes, and can be opened again', () => {
    const file = tmpfile();
    const reports: string[] = [];
    const claimed = new SqliteStore(file, 'node-a', (message) => reports.push(message), 'create', { busyTimeoutMs: 20 });
    claimed.update('1', { status: 'parked' }); // a queued write, to fail with the claim's release
    const lock = new Database(file);
    lock.exec('BEGIN IMMEDIATE');
    try {
      expect(() => claimed.close()).not.toThrow();
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    expect(reports).toEqual([
      `the dead letter store ${path.resolve(file)} could not write 1 update(s) before it closed; they are lost`,
      `the dead letter store ${path.resolve(file)} could not release its claim on the file`,
    ]);
    // the claim left in the file names this OS process, so a node here takes the file over
    const again = new SqliteStore(file, 'node-b');
    again.close();
  });
});
