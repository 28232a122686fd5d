// Hardened delivery benches. Their baselines are the same pattern done the plain way, in the same
// kind of process: raw ctx.send for supervised send, a loop of sends for broadcast, an array push and
// a bare better-sqlite3 insert for the dead letter queue.
//
// Supervised send: each batch of 1,000 sends is awaited with Promise.all, then the receiver's
// handling of the batch is awaited. The baseline ('raw') is that same pattern with ctx.send, so the
// ratio compares the sends; 'raw_loop' (a bare loop of ctx.send, nothing awaited per send) is
// reported beside it, since the Promise.all machinery alone costs more than a raw send.
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const BATCH = 1000;
const BATCHES = 100;

/** A receiver that counts, and resolves a waiter when the count reaches a mark. */
function counter(node) {
  let count = 0;
  let mark = Infinity;
  let done = () => {};
  const pid = node.spawn(() => () => {
    if (++count === mark) done();
  });
  return {
    pid,
    until(n) {
      if (count >= n) return Promise.resolve();
      mark = n;
      return new Promise((resolve) => (done = resolve));
    },
  };
}

export async function supervisedSend(system, sys, ack) {
  const { sendSupervised } = await import('../dist/index.js');
  const { node } = sys;
  const receiver = counter(node);
  let seconds = 0;
  await new Promise((resolve, reject) => {
    node.spawn((ctx) => {
      void (async () => {
        const t0 = process.hrtime.bigint();
        for (let b = 1; b <= BATCHES; b++) {
          if (system === 'raw_loop') {
            for (let i = 0; i < BATCH; i++) ctx.send(receiver.pid, i);
          } else {
            const sends = new Array(BATCH);
            if (system === 'raw') for (let i = 0; i < BATCH; i++) sends[i] = ctx.send(receiver.pid, i);
            else for (let i = 0; i < BATCH; i++) sends[i] = sendSupervised(ctx, receiver.pid, i, { ack });
            const outcomes = await Promise.all(sends);
            if (system === 'raw' ? outcomes.length !== BATCH : !outcomes.every((o) => o.ok)) throw new Error('a send failed');
          }
          await receiver.until(b * BATCH);
        }
        seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      })().then(resolve, reject);
      return () => {};
    });
  });
  return { ops_per_s: (BATCH * BATCHES) / seconds };
}

export async function broadcast10k(system, sys) {
  const { broadcastSupervised } = await import('../dist/index.js');
  const { node } = sys;
  const N = 10_000;
  const ROUNDS = 10;
  let handled = 0;
  const targets = Array.from({ length: N }, () => node.spawn(() => () => void handled++));
  await node.idle();
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < ROUNDS; r++) {
    if (system === 'raw') for (const t of targets) node.send(t, r);
    else {
      const out = await broadcastSupervised(node, targets, r, { strategy: 'best_effort' });
      if (out.delivered !== N) throw new Error('broadcast lost targets');
    }
    await node.idle();
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (handled !== N * ROUNDS) throw new Error(`broadcast: handled ${handled}`);
  return { ops_per_s: (N * ROUNDS) / seconds };
}

export async function dlqIngest(system, kind) {
  const N = 100_000;
  const IN_FLIGHT = 1000;
  const record = (i) => ({ recipient: 'billing', message: { n: i, body: 'payload' }, reason: 'noproc', metadata: { id: `m-${i}` } });
  const dir = kind === 'sqlite' ? mkdtempSync(join(tmpdir(), 'keel-bench-')) : undefined;
  try {
    if (system === 'raw') {
      const t0 = process.hrtime.bigint();
      if (kind === 'memory') {
        const records = [];
        for (let i = 0; i < N; i++) records.push({ id: String(i), ...record(i), attempts: 0, status: 'pending' });
        if (records.length !== N) throw new Error('lost');
      } else {
        const Database = createRequire(import.meta.url)('better-sqlite3');
        const db = new Database(join(dir, 'raw.db'));
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY, recipient TEXT, message BLOB, reason TEXT, metadata BLOB)');
        const { serialize } = await import('node:v8');
        const insert = db.prepare('INSERT INTO t (recipient, message, reason, metadata) VALUES (?, ?, ?, ?)');
        const all = db.transaction(() => {
          for (let i = 0; i < N; i++) {
            const r = record(i);
            insert.run(r.recipient, serialize(r.message), r.reason, serialize(r.metadata));
          }
        });
        all();
        db.close();
      }
      return { ops_per_s: N / (Number(process.hrtime.bigint() - t0) / 1e9) };
    }
    const { createNode } = await import('../dist/index.js');
    const store = kind === 'memory' ? { kind: 'memory' } : { kind: 'sqlite', path: join(dir, 'dlq.db') };
    // no entry falls due during the run: this measures ingest, not the automatic retry
    const node = createNode({ name: 'bench', services: { deadLetters: { store, capacity: N, backoff: { initialMs: 600_000, jitter: 'none' } } } });
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i += IN_FLIGHT) {
      const adds = [];
      for (let j = i; j < i + IN_FLIGHT; j++) adds.push(node.deadLetters.add(record(j)));
      await Promise.all(adds);
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const stats = await node.deadLetters.stats();
    if (stats.added !== N) throw new Error(`dlq: added ${stats.added}`);
    await node.shutdown();
    return { ops_per_s: N / seconds };
  } finally {
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  }
}
