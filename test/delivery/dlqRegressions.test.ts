// Regressions for what a review of the dead letter queue found.
import { describe, expect, it } from 'vitest';
import type { DeadLetterStore } from '../../src/delivery/stores/DeadLetterStore.js';
import { NotSerializableError } from '../../src/errors.js';
import { isKeelError, type Node, sendSupervised } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { type Deferred, deferred, expectKeelError, failure, ok, UNREADABLE, useNodes, useTempFiles } from '../support.js';

/** The queue's store, to inject a fault into it. */
function storeOf(node: Node): DeadLetterStore {
  return (node.deadLetters as unknown as { store: DeadLetterStore }).store;
}

const track = useNodes();
const tmpfile = useTempFiles('keel-dlq-reg-', 'dlq.db');

describe.each([
  ['memory', () => ({ kind: 'memory' as const })],
  ['sqlite', () => ({ kind: 'sqlite' as const, path: tmpfile() })],
])('dead letter queue on the %s store', (_name, store) => {
  it('delivers an entry once when retry() is given its id twice', async () => {
    const node = track({ services: { deadLetters: { store: store() } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'once', reason: 'noproc' }));
    const results = ok(await node.deadLetters.retry([id, id]));
    expect(results).toEqual([{ id, ok: true }]);
    await node.idle();
    expect(p.messages).toEqual(['once']);
  });

  it('does not deliver an entry purged while a rate-limited retry waits', async () => {
    const clock = new TestClock();
    const node = track({ clock, services: { deadLetters: { store: store() } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const a = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'a', reason: 'noproc' }));
    const b = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'b', reason: 'noproc' }));
    const retrying = node.deadLetters.retry([a, b], { ratePerSecond: 1 });
    await node.settle();
    expect(ok(await node.deadLetters.purge({}))).toBe(1); // b is still there; a was delivered
    await clock.advance(1000);
    expect(ok(await retrying)).toEqual([
      { id: a, ok: true },
      { id: b, ok: false, reason: 'not_found' },
    ]);
    expect(p.messages).toEqual(['a']);
  });

  it('redelivers an entry added without a message id under one message id every time, so that its receiver can dedupe', async () => {
    // found by test/reliability/crashDurability.test.ts (round seed 1873791512): an entry handed over
    // again after a SIGKILL came under a new ctx.messageId (each redelivery drew a fresh one)
    const clock = new TestClock({ start: 0 });
    const node = track({ clock, services: { deadLetters: { store: store(), backoff: { initialMs: 100, jitter: 'none' } } } });
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'x', reason: 'noproc' }));
    const seen: (string | undefined)[] = [];
    // the first receiver crashes on it: the entry stays, and is redelivered to the next one
    const crashing = node.spawn((ctx) => () => {
      seen.push(ctx.messageId);
      throw new Error('crashed on it');
    });
    node.registry.register('inbox', crashing);
    await clock.advance(100);
    await node.idle();
    expect(node.isAlive(crashing)).toBe(false);
    expect(ok(await node.deadLetters.get(id))).toMatchObject({ status: 'pending', attempts: 1 });
    node.registry.register('inbox', node.spawn((ctx) => () => void seen.push(ctx.messageId)));
    await clock.advance(200);
    await node.idle();
    expect(await node.deadLetters.get(id)).toBeUndefined();
    expect(seen).toEqual([`dead-letter-${id}-0`, `dead-letter-${id}-0`]);
  });

  it('redelivers an entry whose metadata has an empty message id, and its process survives', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1, services: { deadLetters: { store: store(), backoff: { initialMs: 100, jitter: 'none' } } } });
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'x', reason: 'noproc', metadata: { id: '' } }));
    const p = probe(node);
    node.registry.register('inbox', p);
    await clock.advance(100);
    await node.idle();
    // the empty id is ignored, so the entry is delivered; the queue's process is still the same one
    expect(p.messages).toEqual(['x']);
    expect(await node.deadLetters.get(id)).toBeUndefined();
    expect(node.registry.whereis('keel.dead_letter_queue')).toBeDefined();
  });

  it("dead-letters a send still waiting in its backoff when the node shuts down (onError: 'dead_letter')", async () => {
    const kind = store();
    const node = track({ clock: new TestClock(), services: { deadLetters: { store: kind } } });
    const pending = sendSupervised(node, 'nobody', { order: 7 }, { retries: 3, onError: 'dead_letter' });
    await node.settle();
    await node.shutdown();
    const outcome = await pending;
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc' });
    expect(outcome.ok ? undefined : typeof outcome.deadLetterId).toBe('string');
    if (kind.kind === 'sqlite') {
      const next = track({ services: { deadLetters: { store: kind } } });
      const { entries } = ok(await next.deadLetters.list());
      expect(entries.map((e) => e.message)).toEqual([{ order: 7 }]);
    }
  });

  it('parks an entry whose retry throws (a store fault) as unrecoverable, and its process goes on with the others', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1, services: { deadLetters: { store: store(), backoff: { initialMs: 100, jitter: 'none' } } } });
    const events = captureEvents(node, ['keel.dead_letter_queue.parked']);
    const p = probe(node);
    node.registry.register('inbox', p);
    const bad = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'bad', reason: 'noproc' }));
    const good = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'good', reason: 'noproc' }));
    await node.settle();
    const queueProcess = node.registry.whereis('keel.dead_letter_queue');
    expect(queueProcess).toBeDefined();
    const faulty = storeOf(node);
    const remove = faulty.remove.bind(faulty);
    faulty.remove = (id) => {
      if (id === bad) throw new Error('disk on fire');
      return remove(id);
    };
    await clock.advance(100);
    await node.idle();
    expect([...p.messages].sort()).toEqual(['bad', 'good']); // delivered, but the store could not record it
    expect(ok(await node.deadLetters.get(bad))).toMatchObject({ status: 'parked', lastError: new Error('disk on fire') });
    expect(await node.deadLetters.get(good)).toBeUndefined();
    expect(events.events.map((e) => e.metadata)).toEqual([{ id: bad, recipient: 'inbox', reason: 'unrecoverable' }]);
    expect(node.registry.whereis('keel.dead_letter_queue')).toBe(queueProcess);
  });

  it('counts a refusal by the store itself in stats().refused, and the add rejects with it', async () => {
    const node = track({ services: { deadLetters: { store: store() } } });
    storeOf(node).add = () => Promise.reject(new NotSerializableError('message', 'not serializable (by the store)'));
    const refused = await node.deadLetters.add({ recipient: 'x', message: 'm', reason: 'noproc' }).catch((e: unknown) => e);
    expect(isKeelError(refused, 'ERR_NOT_SERIALIZABLE')).toBe(true);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ refused: 1, added: 0 });
  });

  it('runs at most retryConcurrency automatic redeliveries at once, and add and list answer meanwhile', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1, services: { deadLetters: { store: store(), retryConcurrency: 2, backoff: { initialMs: 100, jitter: 'none' } } } });
    const started: string[] = [];
    const gates = new Map<string, Deferred<void>>();
    const inbox = node.spawn(() => async (m: unknown) => {
      started.push(String(m));
      const gate = deferred();
      gates.set(String(m), gate);
      await gate.promise;
    });
    node.registry.register('inbox', inbox);
    // entries of 'handled' sends: each redelivery waits until the receiver has finished it
    for (const m of ['a', 'b', 'c', 'd', 'e']) {
      ok(await node.deadLetters.add({ recipient: 'inbox', message: m, reason: 'timeout', metadata: { ack: 'handled', timeout: 60_000 } }));
    }
    await clock.advance(100);
    await node.settle();
    expect(started).toEqual(['a']); // one receiver handles one at a time: the second waits in its mailbox
    expect(ok(await node.deadLetters.list({ status: 'pending' })).entries).toHaveLength(5);
    const late = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'late', reason: 'noproc' }));
    expect(typeof late).toBe('string');
    let peak = 0;
    for (let done = 0; done < 5; done++) {
      peak = Math.max(peak, node.info(inbox)!.mailboxLength);
      gates.get(started[done]!)!.resolve();
      await node.settle();
    }
    expect(started).toEqual(['a', 'b', 'c', 'd', 'e']);
    // in flight at once: the one being handled plus one queued behind it, never more
    expect(peak).toBe(1);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ succeeded: 5, pending: 1 });
  });

  it('retries the entries due together oldest first, whatever their retry times', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1, services: { deadLetters: { store: store(), retryConcurrency: 1, backoff: { initialMs: 1000, jitter: 'none' } } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const first = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'first', reason: 'noproc' }));
    const second = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'second', reason: 'noproc' }));
    await node.settle(); // the queue's process sleeps until 1000
    // both due then; the second's retry time is the earlier one
    storeOf(node).update(second, { nextRetryAt: 500 });
    expect([ok(await node.deadLetters.get(first))?.nextRetryAt, ok(await node.deadLetters.get(second))?.nextRetryAt]).toEqual([1000, 500]);
    await clock.advance(1000);
    await node.idle();
    expect(p.messages).toEqual(['first', 'second']);
  });

  it('refuses a Proxy with ERR_NOT_SERIALIZABLE, and only that record when others are added in the same turn', async () => {
    const node = track({ services: { deadLetters: { store: store() } } });
    const good = node.deadLetters.add({ recipient: 'x', message: { fine: true }, reason: 'noproc' });
    const bad = node.deadLetters.add({ recipient: 'x', message: new Proxy({}, {}), reason: 'noproc' }).catch((e: unknown) => e);
    expect(typeof ok(await good)).toBe('string');
    expect(isKeelError(await bad, 'ERR_NOT_SERIALIZABLE')).toBe(true);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 1, refused: 1 });
  });
});

describe('dead letter queue on a SQLite file, after a restart', () => {
  it('redelivers an entry added without a message id under the message id it had before the restart', async () => {
    // found by test/reliability/crashDurability.test.ts (round seed 1873791512)
    const file = tmpfile();
    const options = { deadLetters: { store: { kind: 'sqlite' as const, path: file }, backoff: { initialMs: 100, jitter: 'none' as const } } };
    const seen: (string | undefined)[] = [];
    const clock = new TestClock({ start: 0 });
    const first = track({ clock, services: options });
    const id = ok(await first.deadLetters.add({ recipient: 'inbox', message: 'x', reason: 'noproc' }));
    const crashing = first.spawn((ctx) => () => {
      seen.push(ctx.messageId);
      throw new Error('crashed on it');
    });
    first.registry.register('inbox', crashing);
    await clock.advance(100);
    await first.idle();
    expect(first.isAlive(crashing)).toBe(false);
    expect(ok(await first.deadLetters.get(id))).toMatchObject({ status: 'pending', attempts: 1 });
    await first.shutdown();
    // the next run of the node, on the same file
    const again = new TestClock({ start: 0 });
    const second = track({ clock: again, services: options });
    second.registry.register('inbox', second.spawn((ctx) => () => void seen.push(ctx.messageId)));
    await again.advance(300);
    await second.idle();
    expect(await second.deadLetters.get(id)).toBeUndefined();
    expect(seen).toEqual([`dead-letter-${id}-0`, `dead-letter-${id}-0`]);
  });
});

describe('dead letter queue arguments that cannot be read', () => {
  // found by test/reliability/fuzz.delivery.test.ts (fast-check seed -1837651884, path 57): retry's
  // options given as an array proxy whose traps throw threw a raw TypeError; a revoked proxy as a
  // filter or as the ids did too (Array.isArray throws on one), a sparse array of ids of length
  // 2**32-1 was walked to its end, and retry's options took any key
  it('are ERR_INVALID_ARGUMENT at once, and the queue keeps its entries', async () => {
    const node = track({ clock: new TestClock() });
    const id = ok(await node.deadLetters.add({ recipient: 'nobody', message: 'kept', reason: 'noproc' }));
    const getter = Object.defineProperty({}, 'status', { enumerable: true, get: () => { throw new Error('status getter'); } });
    const sparse: string[] = [];
    sparse.length = 2 ** 32 - 1;
    const q = node.deadLetters;
    for (const [what, make] of UNREADABLE) {
      expectKeelError(await failure(() => q.list(make() as never)), 'ERR_INVALID_ARGUMENT', '`filter`', 'got a proxy');
      expectKeelError(await failure(() => q.purge(make() as never)), 'ERR_INVALID_ARGUMENT', '`filter`');
      expectKeelError(await failure(() => q.retry(make() as never)), 'ERR_INVALID_ARGUMENT', '`filter`');
      expectKeelError(await failure(() => q.retry([id], make() as never)), 'ERR_INVALID_ARGUMENT', '`options`', what === 'a revoked proxy' ? 'Cannot perform' : 'trap');
    }
    expectKeelError(await failure(() => q.list(getter as never)), 'ERR_INVALID_ARGUMENT', '`filter.status`', 'reading it threw Error: status getter');
    expectKeelError(await failure(() => q.retry(sparse)), 'ERR_INVALID_ARGUMENT', '`ids`');
    expectKeelError(await failure(() => q.retry([id], { rate: 1 } as never)), 'ERR_INVALID_ARGUMENT', '`options.rate`');
    expectKeelError(await failure(() => q.retry([id], null as never)), 'ERR_INVALID_ARGUMENT', '`options`');
    expect(ok(await q.list()).entries.map((e) => e.id)).toEqual([id]);
  });
});

describe('a dead letter entry that cannot be read', () => {
  // found by test/reliability/fuzz.delivery.test.ts (fast-check seed 623814110, path 212): add given
  // an Error whose message getter throws as the entry threw that getter's error, raw, out of add
  it('is refused with ERR_INVALID_ARGUMENT, counted nowhere, and the queue keeps working', async () => {
    const node = track();
    const q = node.deadLetters;
    const getters = Object.defineProperty(new Error('e'), 'message', { get: () => { throw new Error('message getter'); } });
    expectKeelError(await failure(() => q.add(getters as never)), 'ERR_INVALID_ARGUMENT', '`entry`', 'reading one threw Error: message getter');
    for (const [, make] of UNREADABLE) expectKeelError(await failure(() => q.add(make() as never)), 'ERR_INVALID_ARGUMENT', '`entry`', 'got a proxy');
    const id = ok(await q.add({ recipient: 'nobody', message: 'fine', reason: 'noproc' }));
    expect(ok(await q.list()).entries.map((e) => e.id)).toEqual([id]);
    expect(ok(await q.stats())).toMatchObject({ pending: 1, added: 1, refused: 0 });
  });
});

describe('broadcastSupervised all_or_nothing', () => {
  it('delivers nothing when its signal is already aborted', async () => {
    const { broadcastSupervised } = await import('../../src/index.js');
    const node = track();
    const a = probe(node);
    const controller = new AbortController();
    controller.abort('stop');
    const r = await broadcastSupervised(node, [a], 'x', { strategy: 'all_or_nothing', signal: controller.signal });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0 });
    expect(r.results[0]!.outcome).toMatchObject({ ok: false, reason: 'aborted' });
    await node.idle();
    expect(a.messages).toEqual([]);
  });
});

describe('dead letter queue defaults', () => {
  it('holds 10,000 entries in memory, evicting the oldest past that', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.dead_letter_queue.evicted']);
    const first = ok(await node.deadLetters.add({ recipient: 'x', message: 0, reason: 'noproc' }));
    for (let i = 1; i < 10_000; i++) ok(await node.deadLetters.add({ recipient: 'x', message: i, reason: 'noproc' }));
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 10_000, evicted: 0 });
    ok(await node.deadLetters.add({ recipient: 'x', message: 10_000, reason: 'noproc' }));
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 10_000, evicted: 1 });
    expect(await node.deadLetters.get(first)).toBeUndefined();
    expect(events.events.map((e) => e.metadata.id)).toEqual([first]);
  });

  it('retries from 1 s doubling, parks after 5 failed retries, and purges a parked entry after 7 days', async () => {
    const clock = new TestClock();
    const node = track({ clock, random: () => 1 });
    const events = captureEvents(node, ['keel.dead_letter_queue.retried', 'keel.dead_letter_queue.parked', 'keel.dead_letter_queue.purged']);
    const id = ok(await node.deadLetters.add({ recipient: 'nobody', message: 'm', reason: 'noproc' }));
    // full jitter with random() = 1: each delay is its cap, 1 s × 2^(k-1)
    for (const delay of [1000, 2000, 4000, 8000, 16_000]) {
      await clock.advance(delay - 1);
      await node.idle();
      expect(ok(await node.deadLetters.get(id))?.attempts, `before ${delay} ms`).toBe(events.events.length);
      await clock.advance(1);
      await node.idle();
    }
    expect(events.events.map((e) => e.event)).toEqual([...Array(5).fill('keel.dead_letter_queue.retried'), 'keel.dead_letter_queue.parked']);
    expect(ok(await node.deadLetters.get(id))).toMatchObject({ status: 'parked', attempts: 5 });
    await clock.advance(7 * 24 * 3600 * 1000 - 1);
    await node.idle();
    expect(ok(await node.deadLetters.get(id))?.status).toBe('parked');
    await clock.advance(1);
    await node.idle();
    expect(await node.deadLetters.get(id)).toBeUndefined();
    expect(events.events.at(-1)).toMatchObject({ event: 'keel.dead_letter_queue.purged', measurements: { count: 1 } });
  });
});
