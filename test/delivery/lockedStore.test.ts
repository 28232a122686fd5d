// The SQLite dead letter store while another connection holds its file locked: the closing wait, the kept updates, purge and expiry against kept deletes, the add backoff.
import { fork } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { TestClock } from '../../src/testing/index.js';
import { advance, clockedNode, receiver, storeClockOf, useNodes, useTempFiles } from '../support.js';

const tmpfile = useTempFiles('keel-dlq-revg-', 'dead-letters.db');
const track = useNodes();
const T0 = Date.UTC(2025, 0, 1);

function record(message: string, status: 'pending' | 'parked' = 'pending'): Parameters<SqliteStore['add']>[0] {
  return { recipient: 'x', message, reason: 'noproc', metadata: {}, attempts: 0, firstFailedAt: 1, lastAttemptAt: 1, nextRetryAt: 2, lastError: 'noproc', status };
}

function open(file: string, lockWaitMs: number): { store: SqliteStore; clock: TestClock; errors: string[] } {
  const clock = new TestClock({ start: 1_000_000 });
  const errors: string[] = [];
  const store = new SqliteStore(file, 'node-locked', (message) => errors.push(message), 'create', {
    busyTimeoutMs: 50,
    lockWaitMs,
    clock: storeClockOf(clock),
  });
  return { store, clock, errors };
}

describe('the SQLite dead letter store closing behind a lock', () => {
  it('blocks the event loop for one closing wait (lockWaitMs) in all: the adds waiting for the lock, the updates kept, then the release of the claim each waited it out in turn (three times lockWaitMs)', async () => {
    const file = tmpfile();
    const { store, errors } = open(file, 300);
    const first = await store.add(record('first'));
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    try {
      const waiting = store.add(record('waiting')).then(
        (id) => ({ id }),
        (e: unknown) => ({ code: (e as { code?: unknown }).code }),
      );
      store.update(first, { attempts: 1 });
      await new Promise<void>((resolve) => setImmediate(resolve)); // the add met the lock; the update too
      await new Promise<void>((resolve) => setImmediate(resolve));
      const started = performance.now();
      store.close();
      const took = performance.now() - started;
      expect(took).toBeGreaterThanOrEqual(290);
      expect(took).toBeLessThan(500); // was 900
      expect(await waiting).toEqual({ code: 'SQLITE_BUSY' });
      expect(errors.filter((m) => m.includes('they are lost'))).toHaveLength(1);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT seq, attempts FROM dead_letters').all()).toEqual([{ seq: Number(first), attempts: 0 }]);
    } finally {
      db.close();
    }
  });
});

describe('the SQLite dead letter queue redelivering while another connection holds the write lock', () => {
  it('blocks the event loop for a bounded time in all while the lock lasts, not 50 ms at every read of the store while updates are kept', async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { random: () => 1, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: { initialMs: 1000, factor: 1, maxMs: 1000 } } } }, T0);
    const billing = receiver(node, { name: 'billing' });
    for (let i = 0; i < 30; i++) await node.deadLetters.add({ recipient: 'billing', message: i, reason: 'noproc' });
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    let blocked = 0;
    try {
      const started = performance.now();
      await advance(node, clock, 1000); // every entry due: redelivered, each delete kept behind the lock
      for (let i = 0; i < 10; i++) await node.deadLetters.stats();
      blocked = performance.now() - started;
      expect(billing.seen.map((m) => (m as { message: unknown }).message)).toEqual(Array.from({ length: 30 }, (_, i) => i));
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    expect(blocked).toBeLessThan(800);
    // the lock gone: the next read writes the kept deletes
    expect(await node.deadLetters.stats()).toMatchObject({ pending: 0, parked: 0, succeeded: 30 });
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    expect(billing.seen).toHaveLength(30);
  });
});

describe('a purge while a delivered entry is still to be deleted behind a lock', () => {
  it.each(['purge', 'expire'] as const)('%s: does not delete (and count) the delivered entry when the lock goes while it waits for it: the kept delete could not be written, and it then deleted the entry as one of its own', async (op) => {
    const file = tmpfile();
    // another OS process holds the lock, and releases it 150 ms after it is told to (while the purge
    // waits for it in one statement: this thread is blocked in SQLite's busy handler then, so the
    // release cannot be awaited)
    writeFileSync(
      path.join(path.dirname(file), 'locker.cjs'),
      `const db = new (require(process.env.BSQL))(process.env.FILE);
process.on('message', (m) => {
  if (m === 'lock') { db.exec('BEGIN EXCLUSIVE'); process.send('locked'); }
  else setTimeout(() => { db.exec('COMMIT'); process.send('released'); }, 150);
});`,
    );
    const store = new SqliteStore(file, 'node-locked', () => undefined, 'create', { busyTimeoutMs: 400 });
    const child = fork(path.join(path.dirname(file), 'locker.cjs'), [], { env: { ...process.env, BSQL: createRequire(import.meta.url).resolve('better-sqlite3'), FILE: file }, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const next = (): Promise<unknown> => new Promise((resolve) => child.once('message', resolve));
    try {
      const delivered = await store.add(record('delivered', 'parked'));
      await store.add(record('other', 'parked'));
      let reply = next();
      child.send('lock');
      expect(await reply).toBe('locked');
      store.remove(delivered); // delivered: its delete waits for the lock (kept)
      expect(store.get(delivered)).toBeUndefined();
      reply = next();
      child.send('release');
      const purged = op === 'purge' ? store.purge({}, 0) : store.expire(10); // the lock goes while it waits
      expect(await reply).toBe('released');
      expect(purged).toBe(1); // 'other' only: 'delivered' ended as delivered
      expect(store.get(delivered)).toBeUndefined();
    } finally {
      child.kill();
      store.close();
    }
  });
});

describe('the backoff of the adds that meet a lock', () => {
  it('starts again at 25 ms for a later lock, after the adds of an earlier one were all refused at their deadline: it stayed at 400 ms', async () => {
    const file = tmpfile();
    const { store, clock } = open(file, 1000);
    const lock = new Database(file);
    try {
      lock.exec('BEGIN EXCLUSIVE');
      const refused = store.add(record('refused')).then(
        () => 'written',
        (e: unknown) => (e as { code?: unknown }).code,
      );
      await new Promise<void>((resolve) => setImmediate(resolve));
      await clock.advance(1000);
      expect(await refused).toBe('SQLITE_BUSY');
      lock.exec('COMMIT');
      lock.exec('BEGIN EXCLUSIVE');
      let outcome: unknown;
      void store.add(record('later')).then((id) => (outcome = id));
      await new Promise<void>((resolve) => setImmediate(resolve)); // met the lock
      lock.exec('COMMIT');
      await clock.advance(25);
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(outcome).toBe('1');
    } finally {
      lock.close();
      store.close();
    }
  });
});
