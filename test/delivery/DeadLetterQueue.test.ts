/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import fs from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import path from 'node:path';
import { serialize } from 'node:v8';
import Database from 'better-sqlite3';
import { describe, expect, it, vi } from 'vitest';
import {
  createNode,
  type DeadLetter,
  type DeadLetterOptions,
  isExit,
  isKeelError,
  isUnavailable,
  type Node,
  Pid,
  sendSupervised,
} from '../../src/index.js';
import { DeadLetterService, DLQ_PROCESS } from '../../src/delivery/DeadLetterQueue.js';
import type { DeadLetterStore } from '../../src/delivery/stores/DeadLetterStore.js';
import { SqliteStore } from '../../src/delivery/stores/SqliteStore.js';
import { NotSerializableError } from '../../src/errors.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, type CapturedEvent, probe, TestClock } from '../../src/testing/index.js';
import {
  advance,
  clockedNode,
  deadPid,
  type Deferred,
  deferred,
  exitAndWait,
  expectKeelError,
  failure,
  fakeLogger,
  idler,
  ok,
  receiveDown,
  receiver,
  thrown,
  expectServiceUnavailable,
  rejection,
  UNREADABLE,
  useNodes,
  useTempFiles,
} from '../support.js';

// temp files, removed after the nodes of the test have shut down: registered before useNodes(), as
// after-each hooks run in reverse order, so the nodes (and their SQLite connections) close first
const tmpfile = useTempFiles('keel-dlq-', 'dead-letters.db');

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

type StoreOption = NonNullable<DeadLetterOptions['store']>;
type Stats = { pending: number; parked: number; added: number; retried: number; succeeded: number; evicted: number; refused?: number };

const T0 = Date.UTC(2025, 0, 1);
const EVENTS = 'keel.dead_letter_queue.';
/** Backoff that never comes due during a test: nothing is retried unless the test asks. */
const QUIET = { initialMs: 3_600_000, factor: 2, maxMs: 3_600_000 };
/** The automatic-retry configuration of the issue: 3 retries, 100 ms × 2 up to 1 s, parked for 10 s. */
const RETRYING = { maxRetries: 3, backoff: { initialMs: 100, factor: 2, maxMs: 1000 }, parkedTtlMs: 10_000 };

/** A node on a TestClock at T0 with a dead letter queue on `store` (quiet backoff unless `options` says otherwise). */
function dlqNode(store: StoreOption, options: DeadLetterOptions = {}, random = 1): { node: KeelNode; clock: TestClock } {
  return clockedNode(track, { random: () => random, services: { deadLetters: { store, backoff: QUIET, ...options } } }, T0);
}

async function add(node: Node, recipient: Pid | string, message: unknown = { n: 1 }, reason = 'noproc', metadata?: object): Promise<string> {
  return ok(await node.deadLetters.add({ recipient, message, reason, ...(metadata === undefined ? {} : { metadata }) }));
}

async function entry(node: Node, id: string): Promise<DeadLetter> {
  const r = ok(await node.deadLetters.get(id));
  if (r === undefined) throw new Error(`no dead letter ${id}`);
  return r;
}

async function ids(node: Node, filter: Parameters<Node['deadLetters']['list']>[0] = {}): Promise<string[]> {
  const page = ok(await node.deadLetters.list(filter));
  expect(page.cursor).toBeUndefined();
  return page.entries.map((e) => e.id);
}

async function stats(node: Node): Promise<Stats> {
  return ok(await node.deadLetters.stats());
}

function named(events: readonly CapturedEvent[], suffix: string): CapturedEvent[] {
  return events.filter((e) => e.event === `${EVENTS}${suffix}`);
}

/** The queue's store, to inject a fault into it. */
function storeOf(node: Node): DeadLetterStore {
  return (node.deadLetters as unknown as { store: DeadLetterStore }).store;
}

/**
 * Entry `id` as the store has it after the node's shutdown: a SQLite file as the next node opens it,
 * the memory store (`memory`, read before the shutdown) as it kept it.
 */
async function storedAfterShutdown(store: StoreOption, memory: DeadLetterStore, id: string): Promise<unknown> {
  const next = typeof store === 'object' && store.kind === 'sqlite' ? dlqNode(store, { maxRetries: 1 }).node : undefined;
  return next === undefined ? memory.get(id) : entry(next, id);
}

/** The sizes of the pages `store.list` hands out from now on, in order, until `restore`. */
function pagesListed(store: DeadLetterStore): { pages: number[]; restore: () => void } {
  const list = store.list;
  const pages: number[] = [];
  store.list = (...args) => {
    const page = list.apply(store, args);
    pages.push(page.entries.length);
    return page;
  };
  return { pages, restore: () => void (store.list = list) };
}

/** For each `store.get` from now on, in order, what `handled()` said then, until `restore`. */
function readsWhile(store: DeadLetterStore, handled: () => number): { reads: number[]; restore: () => void } {
  const get = store.get;
  const reads: number[] = [];
  store.get = (...args) => {
    reads.push(handled());
    return get.apply(store, args);
  };
  return { reads, restore: () => void (store.get = get) };
}

/** Moves the clock and lets every process run that can, without waiting for a handler that is held busy. */
async function step(node: KeelNode, clock: TestClock, ms: number): Promise<void> {
  await clock.advance(ms);
  await node.settle();
}

/** Plain data of every kind a durable store keeps faithfully. */
function richMessage(): Record<string, unknown> {
  return {
    text: 'héllo',
    number: -1.5,
    flag: true,
    nothing: null,
    list: [1, 'two', [3], { four: 4 }],
    nested: { deep: { deeper: ['x'] } },
    when: new Date(Date.UTC(2024, 5, 30, 12, 0, 0)),
    map: new Map<unknown, unknown>([
      ['a', 1],
      [2, { b: [true] }],
    ]),
    set: new Set(['x', 42]),
    bytes: new Uint8Array([0, 1, 255]),
    floats: new Float64Array([0.5, -2]),
    ints: new Int32Array([-7, 7]),
    big: 12345678901234567890n,
    bigs: new BigInt64Array([-(2n ** 63n), 5n]),
  };
}

function expectRich(message: unknown): void {
  const m = message as Record<string, unknown>;
  expect(m).toEqual(richMessage());
  expect(m.when).toBeInstanceOf(Date);
  expect(m.map).toBeInstanceOf(Map);
  expect(m.set).toBeInstanceOf(Set);
  expect(m.bytes).toBeInstanceOf(Uint8Array);
  expect([...(m.bytes as Uint8Array)]).toEqual([0, 1, 255]);
  expect(m.floats).toBeInstanceOf(Float64Array);
  expect(m.ints).toBeInstanceOf(Int32Array);
  expect(typeof m.big).toBe('bigint');
  expect(m.bigs).toBeInstanceOf(BigInt64Array);
}

// ---- the behaviour suite, run against both stores -----------------------------------------------

describe.each<[string, () => StoreOption]>([
  ['memory', () => ({ kind: 'memory' })],
  ['sqlite', () => ({ kind: 'sqlite', path: tmpfile() })],
])('dead letter queue on the %s store', (kind, makeStore) => {
  describe('add and get', () => {
    it('add resolves with an id; get returns the full record (recipient as a name or a formatted pid)', async () => {
      const { node } = dlqNode(makeStore(), {}, 0.5);
      const target = idler(node);
      const id1 = await add(node, 'billing', { charge: 500 }, 'timeout', { attempt: 2 });
      const id2 = await add(node, target, 'ping', 'mailbox_full', { lastError: 'the mailbox was full' });
      expect(typeof id1).toBe('string');
      expect(typeof id2).toBe('string');
      expect(id1).not.toBe(id2);
      expect(await entry(node, id1)).toEqual({
        id: id1,
        recipient: 'billing',
        message: { charge: 500 },
        reason: 'timeout',
        metadata: { attempt: 2 },
        attempts: 0,
        firstFailedAt: T0,
        lastAttemptAt: T0,
        // the first retry after the initial delay, with full jitter from the node's random (0.5)
        nextRetryAt: T0 + QUIET.initialMs / 2,
        lastError: 'timeout',
        status: 'pending',
      });
      const second = await entry(node, id2);
      expect(second.recipient).toBe(Pid.format(target));
      expect(second.message).toBe('ping');
      expect(second.lastError).toBe('the mailbox was full');
      expect(second.metadata).toEqual({ lastError: 'the mailbox was full' });
      expect(await node.deadLetters.get('999999')).toBeUndefined();
      expect(await stats(node)).toMatchObject({ pending: 2, parked: 0, added: 2 });
    });

    it('emits keel.dead_letter_queue.message_added with id, recipient and reason', async () => {
      const { node } = dlqNode(makeStore());
      const events = captureEvents(node, [EVENTS]);
      const id = await add(node, 'orders', { o: 1 }, 'noproc');
      expect(events.events).toEqual([{ event: `${EVENTS}message_added`, measurements: {}, metadata: { id, recipient: 'orders', reason: 'noproc' } }]);
    });
  });

  describe('ids', () => {
    it('an entry is found by its id as add and list give it, and by no other spelling of the number (0x1, 01, 1.0, 1e0, " 1")', async () => {
      const { node } = dlqNode(makeStore());
      const id = await add(node, 'x', 'one');
      expect(id).toBe('1');
      for (const other of ['0x1', '01', '1.0', '1e0', ' 1', '+1', '0b1']) {
        expect(await node.deadLetters.get(other), other).toBeUndefined();
        expect(ok(await node.deadLetters.retry([other])), other).toEqual([{ id: other, ok: false, reason: 'not_found' }]);
      }
      expect((await entry(node, '1')).message).toBe('one');
      expect(await stats(node)).toMatchObject({ pending: 1, retried: 0 });
    });
  });

  describe('list', () => {
    it('lists in insertion order, filtered by status, reason, recipient and olderThanMs', async () => {
      const { node, clock } = dlqNode(makeStore());
      const a = await add(node, 'alpha', 'a', 'noproc');
      const b = await add(node, 'beta', 'b', 'timeout');
      await advance(node, clock, 1000);
      const c = await add(node, 'alpha', 'c', 'timeout');
      const d = await add(node, deadPid(node, 'kill'), 'd', 'process_down');
      // a manual retry of a dead-pid recipient parks it
      expect(ok(await node.deadLetters.retry([d]))).toEqual([{ id: d, ok: false, reason: 'noproc' }]);

      const all = ok(await node.deadLetters.list());
      expect(all.entries.map((e) => e.id)).toEqual([a, b, c, d]);
      expect(all.entries.map((e) => e.message)).toEqual(['a', 'b', 'c', 'd']);
      expect(all.cursor).toBeUndefined();
      expect(await ids(node, {})).toEqual([a, b, c, d]);
      expect(await ids(node, { status: 'pending' })).toEqual([a, b, c]);
      expect(await ids(node, { status: 'parked' })).toEqual([d]);
      expect(await ids(node, { reason: 'timeout' })).toEqual([b, c]);
      expect(await ids(node, { recipient: 'alpha' })).toEqual([a, c]);
      expect(await ids(node, { recipient: 'alpha', reason: 'timeout' })).toEqual([c]);
      expect(await ids(node, { reason: 'no such reason' })).toEqual([]);
      // a and b failed 1000 ms ago, c and d just now
      expect(await ids(node, { olderThanMs: 500 })).toEqual([a, b]);
      expect(await ids(node, { olderThanMs: 1000 })).toEqual([a, b]);
      expect(await ids(node, { olderThanMs: 1001 })).toEqual([]);
      expect(await ids(node, { olderThanMs: 0 })).toEqual([a, b, c, d]);
      expect(await ids(node, { status: 'pending', olderThanMs: 500, recipient: 'beta' })).toEqual([b]);
    });

    it('pages with limit and cursor: 5 entries, limit 2 → 2, 2, 1 and no cursor on the last page', async () => {
      const { node } = dlqNode(makeStore());
      const all: string[] = [];
      for (let i = 0; i < 5; i++) all.push(await add(node, 'pager', i, i % 2 === 0 ? 'even' : 'odd'));
      const p1 = ok(await node.deadLetters.list({ limit: 2 }));
      expect(p1.entries.map((e) => e.message)).toEqual([0, 1]);
      expect(typeof p1.cursor).toBe('string');
      const p2 = ok(await node.deadLetters.list({ limit: 2, cursor: p1.cursor! }));
      expect(p2.entries.map((e) => e.message)).toEqual([2, 3]);
      expect(typeof p2.cursor).toBe('string');
      const p3 = ok(await node.deadLetters.list({ limit: 2, cursor: p2.cursor! }));
      expect(p3.entries.map((e) => e.message)).toEqual([4]);
      expect(p3.cursor).toBeUndefined();
      expect('cursor' in p3).toBe(false);
      expect([...p1.entries, ...p2.entries, ...p3.entries].map((e) => e.id)).toEqual(all);
      // exactly as many as the limit: no further page
      const exact = ok(await node.deadLetters.list({ limit: 5 }));
      expect(exact.entries).toHaveLength(5);
      expect(exact.cursor).toBeUndefined();
      // paging a filtered list: the cursor continues the same filter
      const e1 = ok(await node.deadLetters.list({ reason: 'even', limit: 2 }));
      expect(e1.entries.map((e) => e.message)).toEqual([0, 2]);
      const e2 = ok(await node.deadLetters.list({ reason: 'even', limit: 2, cursor: e1.cursor! }));
      expect(e2.entries.map((e) => e.message)).toEqual([4]);
      expect(e2.cursor).toBeUndefined();
    });
  });

  describe('retry', () => {
    it('retry(ids) returns a result per entry: a success delivers and removes, a failure counts an attempt, an unknown id is not_found', async () => {
      const { node, clock } = dlqNode(makeStore(), { backoff: { initialMs: 1000, factor: 2, maxMs: 60_000 } });
      const p = probe(node);
      node.registry.register('inbox', p);
      const good = await add(node, 'inbox', { hello: 'again' }, 'noproc');
      const bad = await add(node, 'nobody', { lost: true }, 'timeout', { lastError: 'the first failure' });
      expect((await entry(node, bad)).lastError).toBe('the first failure');
      await advance(node, clock, 10);
      const events = captureEvents(node, [EVENTS]);
      const results = ok(await node.deadLetters.retry([good, bad, '424242']));
      expect(results).toHaveLength(3);
      expect(results).toEqual(
        expect.arrayContaining([
          { id: good, ok: true },
          { id: bad, ok: false, reason: 'noproc' },
          { id: '424242', ok: false, reason: 'not_found' },
        ]),
      );
      expect(await p.receive()).toEqual({ hello: 'again' });
      expect(await node.deadLetters.get(good)).toBeUndefined();
      const failed = await entry(node, bad);
      expect(failed).toMatchObject({ status: 'pending', attempts: 1, firstFailedAt: T0, lastAttemptAt: T0 + 10, nextRetryAt: T0 + 10 + 2000 });
      expect(failed.lastError).toBe('noproc'); // the error of this attempt replaced the first failure's
      expect(failed.reason).toBe('timeout'); // the original reason stays
      expect(await stats(node)).toMatchObject({ pending: 1, parked: 0, added: 2, retried: 2, succeeded: 1 });
      expect(named(events.events, 'succeeded').map((e) => e.metadata)).toEqual([{ id: good, recipient: 'inbox', manual: true }]);
      expect(named(events.events, 'retried')).toEqual([
        { event: `${EVENTS}retried`, measurements: { attempt: 1 }, metadata: { id: bad, recipient: 'nobody', reason: 'noproc', manual: true } },
      ]);
    });

    it('a redelivery that fails with an error the store cannot serialize (a thrown object with a function) counts the attempt and leaves the entry pending: on SQLite it was parked as unrecoverable after one try, its attempt uncounted', async () => {
      const { node, clock } = dlqNode(makeStore(), { backoff: { initialMs: 1000, factor: 2, maxMs: 60_000 } });
      const thrownValue = { code: 'E_RATE', retryAfter: () => 5 };
      node.registry.register('inbox', node.spawn(() => () => {
        throw thrownValue;
      }));
      const id = await add(node, 'inbox', 'x');
      await advance(node, clock, 10);
      const events = captureEvents(node, [EVENTS]);
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: false, reason: 'process_down' }]);
      const after = await entry(node, id);
      expect(after).toMatchObject({ status: 'pending', attempts: 1, lastAttemptAt: T0 + 10, nextRetryAt: T0 + 10 + 2000 });
      // the memory store keeps it by reference; SQLite, which cannot serialize it, keeps what it says
      expect(after.lastError).toEqual(kind === 'sqlite' ? "{ code: 'E_RATE', retryAfter: [Function: retryAfter] }" : thrownValue);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(named(events.events, 'retried').map((e) => e.metadata)).toEqual([{ id, recipient: 'inbox', reason: 'process_down', manual: true }]);
      expect(await stats(node)).toMatchObject({ pending: 1, parked: 0, added: 1, retried: 1, succeeded: 0 });
    });

    it('retry(filter) retries only the matching entries, parked ones included', async () => {
      const { node } = dlqNode(makeStore());
      const p = probe(node);
      const parked = await add(node, deadPid(node, 'kill'), 'gone', 'noproc');
      expect(ok(await node.deadLetters.retry([parked]))).toEqual([{ id: parked, ok: false, reason: 'noproc' }]);
      expect((await entry(node, parked)).status).toBe('parked');
      const x = await add(node, 'later', 'x1', 'timeout');
      const y = await add(node, 'later', 'y1', 'noproc');
      const z = await add(node, 'later', 'x2', 'timeout');
      node.registry.register('later', p);
      const results = ok(await node.deadLetters.retry({ reason: 'timeout' }));
      expect(results).toEqual([
        { id: x, ok: true },
        { id: z, ok: true },
      ]);
      expect(await p.receive((m) => m === 'x1')).toBe('x1');
      expect(await p.receive((m) => m === 'x2')).toBe('x2');
      expect(await ids(node)).toEqual([parked, y]);
      // a filter that matches nothing retries nothing
      expect(ok(await node.deadLetters.retry({ recipient: 'nobody at all' }))).toEqual([]);
      // the parked entry was left alone
      expect(await entry(node, parked)).toMatchObject({ status: 'parked', message: 'gone' });
      expect(await entry(node, y)).toMatchObject({ status: 'pending', attempts: 0 });
    });

    it('a manual retry of a parked entry delivers it once its recipient is there', async () => {
      const { node } = dlqNode(makeStore(), { maxRetries: 1 });
      const id = await add(node, 'sleeper', 'wake up', 'noproc');
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: false, reason: 'noproc' }]);
      expect(await entry(node, id)).toMatchObject({ status: 'parked', attempts: 1 });
      const p = probe(node);
      node.registry.register('sleeper', p);
      expect(ok(await node.deadLetters.retry({ status: 'parked' }))).toEqual([{ id, ok: true }]);
      expect(await p.receive()).toBe('wake up');
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, succeeded: 1 });
    });

    it("an entry of a 'handled' send is redelivered as 'handled': a receiver that dies with it queued leaves it pending", async () => {
      const { node } = dlqNode(makeStore(), { maxRetries: 5 });
      // what sendSupervised records for a 'handled' send that failed
      const id = await add(node, 'ledger', { receipt: 1 }, 'process_down', { id: 'm-1', ack: 'handled', timeout: 1000 });
      // a receiver stuck in its handler: the redelivered message waits in its mailbox, then it is killed
      const gate = deferred();
      const busy = deferred();
      const stuck = node.spawn(() => () => {
        busy.resolve();
        return gate.promise;
      });
      node.send(stuck, 'occupy');
      await busy.promise;
      node.registry.register('ledger', stuck);
      const retried = node.deadLetters.retry([id]);
      const p = probe(node);
      p.ctx.monitor(stuck);
      node.exit(stuck, 'kill');
      await receiveDown(p);
      expect(ok(await retried)).toEqual([{ id, ok: false, reason: 'process_down' }]);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1 });
      // a receiver that handles it: the entry goes, and the receiver saw the original message id
      const seen: (string | undefined)[] = [];
      const handler = node.spawn((ctx) => () => void seen.push(ctx.messageId));
      node.registry.register('ledger', handler);
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: true }]);
      expect(seen).toEqual(['m-1']);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, succeeded: 1 });
      gate.resolve();
    });

    it("a timeout in the metadata of an entry that is not a 'handled' send's (no ack: 'handled' beside it: the application's own) is not the redelivery's: it waits the default 5000 ms", async () => {
      const { node, clock } = dlqNode(makeStore(), { backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      const r = receiver(node, { name: 'inbox' });
      await r.hold();
      const id = await add(node, 'inbox', 'm', 'noproc', { id: 'm-10', timeout: 600_000 }); // say, an HTTP call's
      await step(node, clock, 100);
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      await step(node, clock, 4999);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 0 });
      await step(node, clock, 1);
      expect(node.info(r.pid)?.mailboxLength).toBe(0);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1, lastError: 'not handled within 5000 ms' });
      r.release();
    });

    it("an entry of an 'enqueued' send is redelivered as 'handled' too: it stays in the queue until the receiver's handler finished it (default timeout 5000 ms)", async () => {
      const { node, clock } = dlqNode(makeStore(), { backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      const events = captureEvents(node, [EVENTS]);
      const r = receiver(node, { name: 'inbox' });
      await r.hold(); // busy: what it is sent waits in its mailbox
      const id = await add(node, 'inbox', 'm', 'mailbox_full', { id: 'm-9' }); // no ack in its metadata: an 'enqueued' send's
      await step(node, clock, 100);
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      // in a mailbox is not handled: the only durable copy stays
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 0 });
      await step(node, clock, 4999);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 0 });
      expect(events.events.map((e) => e.event)).toEqual([`${EVENTS}message_added`]);
      await step(node, clock, 1);
      // not handled within 5000 ms: withdrawn from the mailbox, an attempt counted, due again after
      // the backoff counted from the failure (not from the start of the attempt: it would be due at once)
      expect(node.info(r.pid)?.mailboxLength).toBe(0);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1, lastAttemptAt: T0 + 5100, nextRetryAt: T0 + 5100 + 200 });
      expect(named(events.events, 'retried').map((e) => e.metadata.reason)).toEqual(['timeout']);
      r.release();
      await advance(node, clock, 200);
      expect(r.seen).toEqual([{ message: 'm', id: 'm-9' }]);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(named(events.events, 'succeeded').map((e) => e.metadata.id)).toEqual([id]);
    });

    it("a redelivery waits for the receiver's handler within the original send's timeout when it had one", async () => {
      const { node, clock } = dlqNode(makeStore(), { backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      const r = receiver(node, { name: 'inbox' });
      await r.hold();
      const id = await add(node, 'inbox', 'm', 'timeout', { ack: 'handled', timeout: 300 });
      await step(node, clock, 100 + 299);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 0 });
      await step(node, clock, 1);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1, lastError: expect.stringContaining('300 ms') as unknown });
      r.release();
    });

    it("an entry of a 'handled' send whose receiver crashes on it stays pending (then is parked), never counted as delivered", async () => {
      const { node } = dlqNode(makeStore(), { maxRetries: 2 });
      const id = await add(node, 'poison', 'boom', 'process_down', { id: 'm-2', ack: 'handled', timeout: 1000 });
      const crashing = node.spawn(() => () => {
        throw new Error('poison');
      });
      node.registry.register('poison', crashing);
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: false, reason: 'process_down' }]);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1 });
      expect(await stats(node)).toMatchObject({ succeeded: 0 });
    });

    it('a ratePerSecond so small that its spacing is no number of ms (Number.MIN_VALUE: 1000 / rate is Infinity) is ERR_INVALID_ARGUMENT before anything is retried: the first entry was redelivered, then the retry rejected with an error about `ms`, the others neither retried nor reported', async () => {
      const { node } = dlqNode(makeStore());
      const r = receiver(node, { name: 'inbox' });
      const a = await add(node, 'inbox', 'a');
      const b = await add(node, 'inbox', 'b');
      const e = await failure(() => node.deadLetters.retry([a, b], { ratePerSecond: Number.MIN_VALUE }));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'options.ratePerSecond');
      await node.idle();
      expect(r.seen).toEqual([]);
      expect(await ids(node)).toEqual([a, b]);
    });

    it('reads its signal option once: a getter answering a signal, then anything else, is not asked again (its second answer was checked, and refused)', async () => {
      const { node } = dlqNode(makeStore());
      const r = receiver(node, { name: 'inbox' });
      const a = await add(node, 'inbox', 'a');
      const signal = new AbortController().signal;
      let reads = 0;
      const options = {
        get signal(): AbortSignal {
          return (reads++ === 0 ? signal : 'not a signal') as unknown as AbortSignal;
        },
      };
      expect(ok(await node.deadLetters.retry([a], options))).toEqual([{ id: a, ok: true }]);
      expect(reads).toBe(1);
      expect(r.seen.map((m) => m.message)).toEqual(['a']);
    });

    it('ratePerSecond spaces the retries on the node clock', async () => {
      const { node, clock } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('slow', p);
      const all = [await add(node, 'slow', 1), await add(node, 'slow', 2), await add(node, 'slow', 3)];
      let settled = false;
      const running = node.deadLetters.retry(all, { ratePerSecond: 10 }).then((r) => {
        settled = true;
        return r;
      });
      expect(await p.receive()).toBe(1);
      await advance(node, clock, 99);
      expect(p.messages).toEqual([1]);
      expect(settled).toBe(false);
      await clock.advance(1);
      expect(await p.receive()).toBe(2);
      await advance(node, clock, 99);
      expect(p.messages).toEqual([1, 2]);
      await clock.advance(1);
      expect(await p.receive()).toBe(3);
      expect(ok(await running)).toEqual(all.map((id) => ({ id, ok: true })));
      expect(await ids(node)).toEqual([]);
    });

    it('an aborted signal stops the retry: the rest answer aborted and stay in the queue untouched', async () => {
      const { node } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('target', p);
      const all = [await add(node, 'target', 'one'), await add(node, 'target', 'two'), await add(node, 'target', 'three')];
      const controller = new AbortController();
      const running = node.deadLetters.retry(all, { ratePerSecond: 1, signal: controller.signal });
      expect(await p.receive()).toBe('one');
      controller.abort();
      expect(ok(await running)).toEqual([
        { id: all[0], ok: true },
        { id: all[1], ok: false, reason: 'aborted' },
        { id: all[2], ok: false, reason: 'aborted' },
      ]);
      expect(await ids(node)).toEqual([all[1], all[2]]);
      expect(await entry(node, all[1]!)).toMatchObject({ attempts: 0, status: 'pending' });
      // already aborted: nothing is retried
      expect(ok(await node.deadLetters.retry(all.slice(1), { signal: AbortSignal.abort() }))).toEqual([
        { id: all[1], ok: false, reason: 'aborted' },
        { id: all[2], ok: false, reason: 'aborted' },
      ]);
      await node.idle();
      expect(p.messages).toEqual(['one']);
    });

    it('a retry in flight never blocks add, list, get or stats', async () => {
      const { node, clock } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('paced', p);
      const first = [await add(node, 'paced', 'p1'), await add(node, 'paced', 'p2')];
      let settled = false;
      const running = node.deadLetters.retry(first, { ratePerSecond: 1 }).then((r) => {
        settled = true;
        return r;
      });
      expect(await p.receive()).toBe('p1');
      // the retry waits a second on the clock before p2: the queue answers meanwhile
      const added = await add(node, 'elsewhere', 'new', 'timeout');
      expect(await ids(node)).toEqual([first[1], added]);
      expect((await entry(node, added)).message).toBe('new');
      expect(await stats(node)).toMatchObject({ added: 3, succeeded: 1, pending: 2 });
      expect(settled).toBe(false);
      await clock.advance(1000);
      expect(await p.receive()).toBe('p2');
      expect(ok(await running)).toEqual(first.map((id) => ({ id, ok: true })));
      expect(await ids(node)).toEqual([added]);
    });

    it('delivers an entry once when retry() is given its id twice', async () => {
      const node = track({ services: { deadLetters: { store: makeStore() } } });
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
      const node = track({ clock, services: { deadLetters: { store: makeStore() } } });
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

    it('retry(filter) reads the store a page (256 entries) at a time, never every matching entry at once: it listed all 600 in one read', async () => {
      const { node } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('inbox', p);
      const all = await Promise.all(Array.from({ length: 600 }, (_, i) => add(node, 'inbox', i)));
      const listed = pagesListed(storeOf(node));
      expect(ok(await node.deadLetters.retry({ reason: 'noproc' }))).toEqual(all.map((id) => ({ id, ok: true })));
      expect(listed.pages).toEqual([256, 256, 88]);
      expect(p.messages).toEqual(all.map((_, i) => i));
      expect(await stats(node)).toMatchObject({ pending: 0, retried: 600, succeeded: 600 });
    });

    it('an abort ends a retry(filter) at once: it answers for the entries it retried, reads no further page, and leaves the rest untouched: it read all 600 at once and answered aborted for each of the 599 not reached', async () => {
      const { node, clock } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('inbox', p);
      const all = await Promise.all(Array.from({ length: 600 }, (_, i) => add(node, 'inbox', i)));
      const listed = pagesListed(storeOf(node));
      const controller = new AbortController();
      const running = node.deadLetters.retry({ reason: 'noproc' }, { ratePerSecond: 1, signal: controller.signal });
      expect(await p.receive()).toBe(0);
      await advance(node, clock, 500);
      controller.abort();
      expect(ok(await running)).toEqual([{ id: all[0], ok: true }]);
      expect(listed.pages).toEqual([256]);
      listed.restore();
      expect(await stats(node)).toMatchObject({ pending: 599, parked: 0, retried: 1, succeeded: 1 });
      expect(await entry(node, all[599]!)).toMatchObject({ status: 'pending', attempts: 0 });
      await node.idle();
      expect(p.messages).toEqual([0]);
    });

    it('retry(ids) reads the store a page (256 ids) at a time, each id once, an unknown one not_found in its page: it read all 600 entries before the first redelivery', async () => {
      const { node } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('inbox', p);
      const all = await Promise.all(Array.from({ length: 600 }, (_, i) => add(node, 'inbox', i)));
      // each redelivery waits for the probe's handler: the reads made before the first message was handled
      const read = readsWhile(storeOf(node), () => p.messages.length);
      const results = ok(await node.deadLetters.retry([...all, all[0]!, '999999', all[599]!, '999999']));
      read.restore();
      // the first page's 256 reads, then the first entry's own read just before its redelivery
      expect(read.reads.filter((handled) => handled === 0)).toHaveLength(257);
      // every id once in its page, and each entry twice in its redelivery (before it, and after it, whether it was purged meanwhile)
      expect(read.reads).toHaveLength(601 + 2 * 600);
      const delivered = (ids: string[]): { id: string; ok: boolean }[] => ids.map((id) => ({ id, ok: true }));
      expect(results).toEqual([...delivered(all.slice(0, 512)), { id: '999999', ok: false, reason: 'not_found' }, ...delivered(all.slice(512))]);
      expect(p.messages).toEqual(all.map((_, i) => i));
      expect(await stats(node)).toMatchObject({ pending: 0, retried: 600, succeeded: 600 });
    });

    it('an abort ends a retry(ids) at once: the ids not reached answer aborted, no further page read, their entries untouched: it read all 600 entries first', async () => {
      const { node, clock } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('inbox', p);
      const all = await Promise.all(Array.from({ length: 600 }, (_, i) => add(node, 'inbox', i)));
      const read = readsWhile(storeOf(node), () => p.messages.length);
      const controller = new AbortController();
      const running = node.deadLetters.retry([...all, '999999'], { ratePerSecond: 1, signal: controller.signal });
      expect(await p.receive()).toBe(0);
      await advance(node, clock, 500);
      controller.abort();
      const results = ok(await running);
      read.restore();
      // the first page, and the first entry's two reads in its redelivery
      expect(read.reads).toHaveLength(256 + 2);
      expect(results).toEqual([{ id: all[0], ok: true }, ...[...all.slice(1), '999999'].map((id) => ({ id, ok: false, reason: 'aborted' }))]);
      expect(await stats(node)).toMatchObject({ pending: 599, parked: 0, retried: 1, succeeded: 1 });
      expect(await entry(node, all[599]!)).toMatchObject({ status: 'pending', attempts: 0 });
      await node.idle();
      expect(p.messages).toEqual([0]);
    });

    it('retry(filter) takes the entries stored when it was called, each once: an entry added meanwhile is left for later, one that fails again is not retried again in the same call', async () => {
      const { node } = dlqNode(makeStore());
      // every message handled adds a new entry that the filter matches (a paging that followed them would never end)
      let n = 0;
      node.registry.register('inbox', node.spawn(() => async () => void (await node.deadLetters.add({ recipient: 'inbox', message: `new ${++n}`, reason: 'noproc' }))));
      const old = await Promise.all(Array.from({ length: 300 }, (_, i) => add(node, i % 2 === 0 ? 'inbox' : 'nobody', i)));
      const results = ok(await node.deadLetters.retry({ reason: 'noproc' }));
      expect(results).toEqual(old.map((id, i) => (i % 2 === 0 ? { id, ok: true } : { id, ok: false, reason: 'noproc' })));
      const left = [];
      for (let cursor: string | undefined, page; ; cursor = page.cursor) {
        page = ok(await node.deadLetters.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) }));
        left.push(...page.entries);
        if (page.cursor === undefined) break;
      }
      // the failed ones once each (attempts 1), then the 150 added by the handler, untouched
      expect(left.map((e) => [e.id, e.attempts])).toEqual([...old.filter((_, i) => i % 2 === 1).map((id) => [id, 1]), ...left.slice(150).map((e) => [e.id, 0])]);
      expect(left.slice(150).map((e) => e.message)).toEqual(Array.from({ length: 150 }, (_, i) => `new ${i + 1}`));
    });

    it('an abort while a rate-limited retry waits between entries ends the retry at once, the clock not moved past the wait', async () => {
      const { node, clock } = dlqNode(makeStore());
      const p = probe(node);
      node.registry.register('target', p);
      const all = [await add(node, 'target', 'one'), await add(node, 'target', 'two')];
      const controller = new AbortController();
      let settled = false;
      const running = node.deadLetters.retry(all, { ratePerSecond: 1, signal: controller.signal }).then((r) => {
        settled = true;
        return r;
      });
      expect(await p.receive()).toBe('one');
      // halfway through the second's wait of 1000 ms: the retry is waiting on the clock
      await advance(node, clock, 500);
      expect(settled).toBe(false);
      controller.abort();
      expect(ok(await running)).toEqual([
        { id: all[0], ok: true },
        { id: all[1], ok: false, reason: 'aborted' },
      ]);
      expect(clock.now()).toBe(T0 + 500);
      expect(await entry(node, all[1]!)).toMatchObject({ status: 'pending', attempts: 0 });
      await node.idle();
      expect(p.messages).toEqual(['one']);
    });

    it("a retry cut short by the node's shutdown leaves its entry as it was (attempts, status, times), and answers aborted: the entry had attempts 1 and, at maxRetries 1, was parked, though its receiver never handled it", async () => {
      const store = makeStore();
      const { node } = dlqNode(store, { maxRetries: 1 });
      const r = receiver(node, { name: 'inbox' });
      await r.hold(); // busy: the redelivered message waits in its mailbox
      const id = await add(node, 'inbox', 'm');
      const before = await entry(node, id);
      const memory = storeOf(node); // the memory store keeps its records after the shutdown
      const events = captureEvents(node, [EVENTS]);
      const retrying = node.deadLetters.retry([id]);
      await node.settle();
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      await node.shutdown({ timeoutMs: 1000 });
      expect(ok(await retrying)).toEqual([{ id, ok: false, reason: 'aborted' }]);
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(r.seen).toEqual([]);
      expect(await storedAfterShutdown(store, memory, id)).toEqual(before);
    });

    it("the node's shutdown aborts a manual retry at once, whatever its receiver does: it answers aborted while a receiver that traps exits still runs, its copy withdrawn and the entry as it was; it answered only once the shutdown killed that receiver at its timeout", async () => {
      const store = makeStore();
      const { node } = dlqNode(store, { maxRetries: 1 });
      const busy = deferred();
      const gate = deferred();
      const seen: unknown[] = [];
      // traps exits: it ends on the shutdown's Exit, handled once its handler of 'hold' has finished
      const stubborn = node.spawn((ctx) => {
        ctx.trapExits(true);
        return async (m: unknown) => {
          if (m === 'hold') {
            busy.resolve();
            await gate.promise;
          } else if (isExit(m)) ctx.exit(m.reason);
          else seen.push(m);
        };
      });
      node.registry.register('inbox', stubborn);
      node.send(stubborn, 'hold');
      await busy.promise;
      const id = await add(node, 'inbox', 'm');
      const before = await entry(node, id);
      const memory = storeOf(node);
      const events = captureEvents(node, [EVENTS, 'keel.node.shutdown']);
      const retrying = node.deadLetters.retry([id]);
      await node.settle();
      expect(node.info(stubborn)?.mailboxLength).toBe(1); // the redelivered copy, behind the held handler
      const stopped = node.shutdown({ timeoutMs: 1000 });
      expect(ok(await retrying)).toEqual([{ id, ok: false, reason: 'aborted' }]);
      expect(node.isAlive(stubborn)).toBe(true);
      gate.resolve();
      await stopped;
      expect(events.events.filter((e) => e.event === 'keel.node.shutdown').map((e) => e.measurements.killed)).toEqual([0]);
      expect(seen).toEqual([]);
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(await storedAfterShutdown(store, memory, id)).toEqual(before);
    });

    it("an automatic redelivery cut short by the node's shutdown leaves its entry as it was too: it had attempts 1 and, at maxRetries 1, was parked", async () => {
      const store = makeStore();
      const { node, clock } = dlqNode(store, { maxRetries: 1, backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      const id = await add(node, 'inbox', 'm');
      // spawned after the queue's process: the shutdown stops it first, ending the redelivery waiting in it
      const r = receiver(node, { name: 'inbox' });
      await r.hold(); // busy: the redelivered message waits in its mailbox
      const before = await entry(node, id);
      const memory = storeOf(node);
      const events = captureEvents(node, [EVENTS]);
      await step(node, clock, 100);
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      await node.shutdown({ timeoutMs: 1000 });
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(await storedAfterShutdown(store, memory, id)).toEqual(before);
    });

    it("a shutdown gives up an automatic redelivery waiting for a receiver started before the queue's process at once: the entry stays as it was, and the shutdown neither waits out its timeout nor kills", async () => {
      const store = makeStore();
      const { node, clock } = dlqNode(store, { maxRetries: 1, backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      // spawned before the queue's process (which the first add starts): the shutdown stops the queue's process first
      const r = receiver(node, { name: 'inbox' });
      await r.hold(); // busy: the redelivered message waits in its mailbox, the redelivery for it
      const id = await add(node, 'inbox', 'm');
      const before = await entry(node, id);
      const memory = storeOf(node);
      const events = captureEvents(node, [EVENTS, 'keel.node.shutdown']);
      await step(node, clock, 100);
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      await node.shutdown({ timeoutMs: 5000 });
      const shutdown = events.events.filter((e) => e.event === 'keel.node.shutdown');
      expect(shutdown.map((e) => e.measurements.killed)).toEqual([0]);
      expect(shutdown[0]!.measurements.durationMs).toBeLessThan(5000);
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(r.seen).toEqual([]);
      expect(await storedAfterShutdown(store, memory, id)).toEqual(before);
    });

    it("an abort of a manual retry's signal gives up the redelivery in flight at once: the entry stays as it was (no attempt), the answer is aborted, the clock not moved", async () => {
      const { node, clock } = dlqNode(makeStore(), { maxRetries: 1 });
      const received = deferred<unknown>();
      // takes the message and never finishes handling it
      node.registry.register('stuck', node.spawn(() => (m: unknown) => {
        received.resolve(m);
        return new Promise<void>(() => undefined);
      }));
      const id = await add(node, 'stuck', 'm');
      const before = await entry(node, id);
      const events = captureEvents(node, [EVENTS]);
      const controller = new AbortController();
      const running = node.deadLetters.retry([id], { signal: controller.signal });
      expect(await received.promise).toBe('m');
      controller.abort();
      expect(ok(await running)).toEqual([{ id, ok: false, reason: 'aborted' }]);
      expect(clock.now()).toBe(T0);
      expect(await entry(node, id)).toEqual(before);
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'parked')).toEqual([]);
      expect(await stats(node)).toMatchObject({ pending: 1, parked: 0, retried: 0, succeeded: 0 });
    });
  });

  describe('purge and stats', () => {
    it('purge(filter) removes the matching entries and answers how many; {} removes all', async () => {
      const { node, clock } = dlqNode(makeStore());
      const events = captureEvents(node, [`${EVENTS}purged`]);
      const a = await add(node, 'alpha', 1, 'noproc');
      const b = await add(node, 'beta', 2, 'timeout');
      await advance(node, clock, 1000);
      const c = await add(node, 'alpha', 3, 'timeout');
      const d = await add(node, 'gamma', 4, 'noproc');
      expect(await node.deadLetters.purge({ reason: 'no such reason' })).toBe(0);
      expect(events.events).toEqual([]);
      expect(await node.deadLetters.purge({ recipient: 'alpha', reason: 'timeout' })).toBe(1);
      expect(await ids(node)).toEqual([a, b, d]);
      expect(await node.deadLetters.purge({ olderThanMs: 500 })).toBe(2);
      expect(await ids(node)).toEqual([d]);
      expect(await node.deadLetters.get(c)).toBeUndefined();
      expect(events.events.map((e) => e.measurements.count)).toEqual([1, 2]);
      expect(await node.deadLetters.purge({})).toBe(1);
      expect(await ids(node)).toEqual([]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, added: 4 });
    });

    it('an entry purged while its redelivery waits for the receiver stays purged when that redelivery fails: no parked event for it, nothing parked; a parked event was emitted for an entry no longer there', async () => {
      const { node } = dlqNode(makeStore(), { maxRetries: 1 });
      const events = captureEvents(node, [EVENTS]);
      const gate = deferred();
      const started = deferred();
      node.registry.register('inbox', node.spawn(() => async () => {
        started.resolve();
        await gate.promise;
        throw new Error('poison');
      }));
      const id = await add(node, 'inbox', 'x', 'timeout', { ack: 'handled', timeout: 60_000 });
      const retrying = node.deadLetters.retry([id]);
      await started.promise;
      expect(await node.deadLetters.purge({})).toBe(1);
      gate.resolve();
      expect(ok(await retrying)).toEqual([{ id, ok: false, reason: 'process_down' }]);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(named(events.events, 'parked')).toEqual([]);
      expect(named(events.events, 'purged').map((e) => e.measurements.count)).toEqual([1]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, added: 1, retried: 1, succeeded: 0 });
    });

    it('an entry purged while its redelivery waits for the receiver stays purged when that redelivery succeeds: counted once (purged), no succeeded event, retry() answers ok', async () => {
      const { node } = dlqNode(makeStore(), { maxRetries: 1 });
      const events = captureEvents(node, [EVENTS]);
      const gate = deferred();
      const started = deferred();
      const handled: unknown[] = [];
      node.registry.register('inbox', node.spawn(() => async (m) => {
        started.resolve();
        await gate.promise;
        handled.push(m);
      }));
      const id = await add(node, 'inbox', 'x', 'timeout', { ack: 'handled', timeout: 60_000 });
      const retrying = node.deadLetters.retry([id]);
      await started.promise;
      expect(await node.deadLetters.purge({})).toBe(1);
      gate.resolve();
      expect(ok(await retrying)).toEqual([{ id, ok: true }]);
      expect(handled).toEqual(['x']);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      // one end per entry: the purge (the receiver handled it too, as retry() says)
      expect(named(events.events, 'succeeded')).toEqual([]);
      expect(named(events.events, 'purged').map((e) => e.measurements.count)).toEqual([1]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, added: 1, retried: 1, succeeded: 0 });
    });

    it('a retry() awaited in the recipient\'s own async handler waits out the redelivery timeout (the node cannot tell its caller): the entry stays pending, its copy withdrawn', async () => {
      const { node, clock } = dlqNode(makeStore(), { maxRetries: 3 });
      const seen: unknown[] = [];
      let answered: unknown;
      const done = deferred();
      let id = '';
      node.registry.register('self', node.spawn(() => async (m) => {
        seen.push(m);
        if (m !== 'go') return;
        answered = ok(await node.deadLetters.retry([id]));
        done.resolve();
      }));
      id = await add(node, 'self', 'x', 'timeout', { ack: 'handled', timeout: 1000 });
      node.send('self', 'go');
      await step(node, clock, 999);
      expect(answered).toBeUndefined();
      await step(node, clock, 1);
      await done.promise;
      expect(answered).toEqual([{ id, ok: false, reason: 'timeout' }]);
      await node.settle();
      expect(seen).toEqual(['go']);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1 });
    });

    it('stats() counts pending, parked, added, retried, succeeded, evicted, refused and failed', async () => {
      const { node } = dlqNode(makeStore());
      expect(await stats(node)).toEqual({ pending: 0, parked: 0, added: 0, retried: 0, succeeded: 0, evicted: 0, refused: 0, failed: 0 });
      const p = probe(node);
      node.registry.register('here', p);
      const here = await add(node, 'here', 'h');
      const missing = await add(node, 'missing', 'm');
      const dead = await add(node, deadPid(node, 'kill'), 'd');
      await expect(node.deadLetters.add({ recipient: 'here', message: () => 1, reason: 'noproc' })).rejects.toThrow();
      await node.deadLetters.retry([here, missing, dead]);
      expect(await stats(node)).toEqual({ pending: 1, parked: 1, added: 3, retried: 2, succeeded: 1, evicted: 0, refused: 1, failed: 0 });
    });

    it('counts a refusal by the store itself in stats().refused, and the add rejects with it', async () => {
      const node = track({ services: { deadLetters: { store: makeStore() } } });
      storeOf(node).add = () => Promise.reject(new NotSerializableError('message', 'not serializable (by the store)'));
      const refused = await node.deadLetters.add({ recipient: 'x', message: 'm', reason: 'noproc' }).catch((e: unknown) => e);
      expect(isKeelError(refused, 'ERR_NOT_SERIALIZABLE')).toBe(true);
      expect(ok(await node.deadLetters.stats())).toMatchObject({ refused: 1, added: 0 });
    });
  });

  describe('arguments', () => {
    it('a bad filter, limit, cursor or ids is ERR_INVALID_ARGUMENT, and the queue keeps working', async () => {
      const { node } = dlqNode(makeStore());
      const dlq = node.deadLetters;
      const before = await add(node, 'someone', 'kept');
      await node.idle();
      const processBefore = node.registry.whereis(DLQ_PROCESS);
      expect(node.isAlive(processBefore!)).toBe(true);
      const bad: [string, () => Promise<unknown>][] = [
        ['list: unknown key', () => dlq.list({ colour: 'red' } as never)],
        ['list: bad status', () => dlq.list({ status: 'dead' } as never)],
        ['list: negative olderThanMs', () => dlq.list({ olderThanMs: -1 })],
        ['list: NaN olderThanMs', () => dlq.list({ olderThanMs: Number.NaN })],
        ['list: reason not a string', () => dlq.list({ reason: 42 } as never)],
        ['list: not an object', () => dlq.list('all' as never)],
        ['list: limit 0', () => dlq.list({ limit: 0 })],
        ['list: fractional limit', () => dlq.list({ limit: 1.5 })],
        ['list: cursor not from list', () => dlq.list({ cursor: 'abc' })],
        ['list: cursor not a string', () => dlq.list({ cursor: 3 } as never)],
        ['get: empty id', () => dlq.get('')],
        ['get: not a string', () => dlq.get(7 as never)],
        ['retry: empty id', () => dlq.retry([''])],
        ['retry: id not a string', () => dlq.retry([1] as never)],
        ['retry: unknown key', () => dlq.retry({ colour: 'red' } as never)],
        ['retry: bad status', () => dlq.retry({ status: 'gone' } as never)],
        ['retry: ratePerSecond 0', () => dlq.retry([before], { ratePerSecond: 0 })],
        ['retry: signal not a signal', () => dlq.retry([before], { signal: 'stop' } as never)],
        ['purge: unknown key', () => dlq.purge({ colour: 'red' } as never)],
        ['purge: negative olderThanMs', () => dlq.purge({ olderThanMs: -5 })],
        ['purge: null', () => dlq.purge(null as never)],
        ['add: empty recipient', () => dlq.add({ recipient: '', message: 1, reason: 'noproc' })],
        ['add: empty reason', () => dlq.add({ recipient: 'x', message: 1, reason: '' })],
      ];
      for (const [what, call] of bad) {
        const e = await failure(call);
        expect(isUnavailable(e), what).toBe(false);
        expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      }
      // still working, same process, nothing changed
      expect(await ids(node)).toEqual([before]);
      expect((await entry(node, before)).message).toBe('kept');
      const after = await add(node, 'someone', 'new');
      expect(await ids(node, { recipient: 'someone' })).toEqual([before, after]);
      expect(await node.deadLetters.purge({ reason: 'noproc' })).toBe(2);
      await node.idle();
      expect(node.registry.whereis(DLQ_PROCESS)).toEqual(processBefore);
      expect(await stats(node)).toMatchObject({ added: 2, refused: 0 });
    });

    it('list-only keys (limit, cursor) are refused by purge and retry, which take a filter only', async () => {
      const { node } = dlqNode(makeStore());
      for (let i = 0; i < 3; i++) await add(node, 'keep', i);
      // purge({ limit: 1 }) must not be read as "purge everything"
      expectKeelError(await failure(() => node.deadLetters.purge({ limit: 1 } as never)), 'ERR_INVALID_ARGUMENT');
      expectKeelError(await failure(() => node.deadLetters.purge({ cursor: '1' } as never)), 'ERR_INVALID_ARGUMENT');
      expectKeelError(await failure(() => node.deadLetters.retry({ limit: 1 } as never)), 'ERR_INVALID_ARGUMENT');
      expect(ok(await node.deadLetters.list()).entries).toHaveLength(3);
    });
  });

  describe('serializability', () => {
    it('refuses functions, symbols and class instances with behaviour at add (ERR_NOT_SERIALIZABLE), counted in stats().refused', async () => {
      const { node } = dlqNode(makeStore());
      const events = captureEvents(node, [EVENTS]);
      class Account {
        balance = 1;
        deposit(n: number): void {
          this.balance += n;
        }
      }
      const refused: [string, unknown, object?][] = [
        ['a function', () => 'hi'],
        ['a nested function', { order: { onDone: () => undefined } }],
        ['a function in an array', [1, 2, () => 3]],
        ['a symbol', Symbol('s')],
        ['a nested symbol', { kind: Symbol.for('k') }],
        ['a symbol key', { [Symbol('hidden')]: 1 }],
        ['a class instance', new Account()],
        ['a class instance in a Map', new Map([['acct', new Account()]])],
        ['a function in a Set', new Set([() => 1])],
        ['a function in metadata', 'fine', { callback: () => 1 }],
      ];
      for (const [what, message, metadata] of refused) {
        const e = await failure(() => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc', ...(metadata === undefined ? {} : { metadata }) }));
        expect(isUnavailable(e), what).toBe(false);
        expectKeelError(e, 'ERR_NOT_SERIALIZABLE');
      }
      expect(await stats(node)).toMatchObject({ refused: refused.length, added: 0, pending: 0 });
      expect(ok(await node.deadLetters.list()).entries).toEqual([]);
      expect(events.events).toEqual([]);
      // the queue still takes plain data
      const id = await add(node, 'x', { fine: true });
      expect((await entry(node, id)).message).toEqual({ fine: true });
    });

    it('refuses hostile values with ERR_NOT_SERIALIZABLE naming the path (throwing getters, revoked Proxies, Proxies whose traps throw), counted; cycles still pass', async () => {
      const { node } = dlqNode(makeStore());
      const boom = (): never => {
        throw new Error('boom');
      };
      const revoked = Proxy.revocable({}, {});
      revoked.revoke();
      const hostileProxy = new Proxy({}, { get: boom, ownKeys: boom, getPrototypeOf: boom, has: boom, getOwnPropertyDescriptor: boom });
      const hostile: [string, unknown, object | undefined, string][] = [
        ['a throwing getter', { get x() { return boom(); } }, undefined, 'message.x'],
        ['a nested throwing getter', { order: { lines: [{ get qty() { return boom(); } }] } }, undefined, 'message.order.lines[0].qty'],
        ['a throwing index getter', Object.defineProperty([1, 2], 0, { get: boom, enumerable: true }), undefined, 'message[0]'],
        ['a throwing getter in metadata', 'fine', { get trace() { return boom(); } }, 'metadata.trace'],
        ['a revoked Proxy', revoked.proxy, undefined, 'message'],
        ['a nested revoked Proxy', { p: revoked.proxy }, undefined, 'message.p'],
        ['a Proxy whose traps throw', { deep: [hostileProxy] }, undefined, 'message.deep[0]'],
        // the memory store took these, SQLite's serializer (which reads an Error's name, message and stack) refused them as 'message'
        ['an Error whose message getter throws', { err: Object.defineProperty(new Error('x'), 'message', { get: boom }) }, undefined, 'message.err.message'],
        ['an Error whose name getter throws', [Object.defineProperty(new Error('x'), 'name', { get: boom })], undefined, 'message[0].name'],
        ['an Error whose stack getter throws', Object.defineProperty(new Error('x'), 'stack', { get: boom }), undefined, 'message.stack'],
      ];
      for (const [what, message, metadata, path] of hostile) {
        const e = await failure(() => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc', ...(metadata === undefined ? {} : { metadata }) }));
        expectKeelError(e, 'ERR_NOT_SERIALIZABLE', `${path} is`);
        expect((e as { path?: unknown }).path, what).toBe(path);
      }
      // the queue reads metadata.lastError once more after the check: a getter that throws then is refused too
      let reads = 0;
      const lastErrorThrows = {
        get lastError(): string {
          if (reads++ > 0) throw new Error('read twice');
          return 'timeout';
        },
      };
      const late = await failure(() => node.deadLetters.add({ recipient: 'x', message: 'fine', reason: 'noproc', metadata: lastErrorThrows }));
      expectKeelError(late, 'ERR_NOT_SERIALIZABLE', 'metadata.lastError is a property that throws when read (Error: read twice)');
      expect(await stats(node)).toMatchObject({ refused: hostile.length + 1, added: 0, pending: 0 });
      const cyclic: Record<string, unknown> = { get name() { return 'loop'; } };
      cyclic.self = cyclic;
      const id = await add(node, 'x', cyclic);
      const back = (await entry(node, id)).message as Record<string, unknown>;
      expect(back.name).toBe('loop');
      expect(back.self).toBe(back);
    });

    it('plain data, Dates, Maps, Sets, typed arrays and bigints round-trip, also with cycles', async () => {
      const store = makeStore();
      const { node } = dlqNode(store);
      const id = await add(node, 'x', richMessage(), 'noproc', { tags: new Set(['a']), at: new Date(5), size: 3n });
      const cyclic: Record<string, unknown> = { name: 'loop' };
      cyclic.self = cyclic;
      const cid = await add(node, 'x', cyclic);
      const check = async (n: Node): Promise<void> => {
        const r = await entry(n, id);
        expectRich(r.message);
        expect(r.metadata).toEqual({ tags: new Set(['a']), at: new Date(5), size: 3n });
        const c = (await entry(n, cid)).message as Record<string, unknown>;
        expect(c.name).toBe('loop');
        expect(c.self).toBe(c);
        expect(ok(await n.deadLetters.list()).entries.map((e) => e.id)).toEqual([id, cid]);
      };
      await check(node);
      if (store.kind === 'sqlite') {
        // read back from the file by another node, after the first has shut down
        await node.shutdown({ timeoutMs: 1000 });
        const { node: reopened } = dlqNode(store);
        await check(reopened);
      }
    });

    it('refuses a Proxy with ERR_NOT_SERIALIZABLE, and only that record when others are added in the same turn', async () => {
      const node = track({ services: { deadLetters: { store: makeStore() } } });
      const good = node.deadLetters.add({ recipient: 'x', message: { fine: true }, reason: 'noproc' });
      const bad = node.deadLetters.add({ recipient: 'x', message: new Proxy({}, {}), reason: 'noproc' }).catch((e: unknown) => e);
      expect(typeof ok(await good)).toBe('string');
      expect(isKeelError(await bad, 'ERR_NOT_SERIALIZABLE')).toBe(true);
      expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 1, refused: 1 });
    });
  });

  describe('availability', () => {
    it("rejects with ERR_SERVICE_UNAVAILABLE (reason 'node_stopped') from every method after shutdown, also through a reference kept from before", async () => {
      const { node } = dlqNode(makeStore());
      const id = await add(node, 'x', 'before');
      const kept = node.deadLetters;
      expect(kept.available).toBe(true);
      await node.idle();
      await node.shutdown({ timeoutMs: 1000 });
      for (const dlq of [node.deadLetters, kept]) {
        expect(dlq.available).toBe(false);
        expectServiceUnavailable(await rejection(() => dlq.add({ recipient: 'x', message: 1, reason: 'noproc' })), 'deadLetters.add', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.list()), 'deadLetters.list', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.list({ status: 'pending', limit: 2 })), 'deadLetters.list', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.get(id)), 'deadLetters.get', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.retry([id])), 'deadLetters.retry', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.retry({ reason: 'noproc' }, { ratePerSecond: 5 })), 'deadLetters.retry', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.purge({})), 'deadLetters.purge', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.stats()), 'deadLetters.stats', 'node_stopped');
        // a bad argument to a queue that is not running: the queue's absence is the answer, as for the stand-in
        expectServiceUnavailable(await rejection(() => dlq.add(null as never)), 'deadLetters.add', 'node_stopped');
        expectServiceUnavailable(await rejection(() => dlq.purge({ colour: 'red' } as never)), 'deadLetters.purge', 'node_stopped');
      }
      expect(node.deadLetters).not.toBe(kept);
    });

    it("dead-letters a send still waiting in its backoff when the node shuts down (onError: 'dead_letter')", async () => {
      const option = makeStore();
      const node = track({ clock: new TestClock(), services: { deadLetters: { store: option } } });
      const pending = sendSupervised(node, 'nobody', { order: 7 }, { retries: 3, onError: 'dead_letter' });
      await node.settle();
      await node.shutdown();
      const outcome = await pending;
      expect(outcome).toMatchObject({ ok: false, reason: 'noproc' });
      expect(outcome.ok ? undefined : typeof outcome.deadLetterId).toBe('string');
      if (option.kind === 'sqlite') {
        const next = track({ services: { deadLetters: { store: option } } });
        const { entries } = ok(await next.deadLetters.list());
        expect(entries.map((e) => e.message)).toEqual([{ order: 7 }]);
      }
    });
  });

  describe('automatic retry (TestClock)', () => {
    function retryNode(random = 1): { node: KeelNode; clock: TestClock } {
      return dlqNode(makeStore(), RETRYING, random);
    }

    it('delivers an entry for a name registered later at its nextRetryAt and removes it (succeeded)', async () => {
      const { node, clock } = retryNode();
      const events = captureEvents(node, [EVENTS]);
      const id = await add(node, 'late', { n: 1 }, 'noproc');
      expect((await entry(node, id)).nextRetryAt).toBe(T0 + 100);
      const p = probe(node);
      node.registry.register('late', p);
      await advance(node, clock, 99);
      expect(p.messages).toEqual([]);
      expect((await entry(node, id)).attempts).toBe(0);
      await clock.advance(1);
      expect(await p.receive()).toEqual({ n: 1 });
      await node.idle();
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(events.events.map((e) => e.event)).toEqual([`${EVENTS}message_added`, `${EVENTS}succeeded`]);
      expect(named(events.events, 'succeeded')[0]).toEqual({ event: `${EVENTS}succeeded`, measurements: { attempts: 1 }, metadata: { id, recipient: 'late', manual: false } });
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, added: 1, retried: 1, succeeded: 1 });
    });

    it('retries a failing entry with growing delays, parks it after maxRetries, and purges it after the parked TTL', async () => {
      const { node, clock } = retryNode();
      const events = captureEvents(node, [EVENTS]);
      const id = await add(node, 'nobody', 'lost', 'noproc');
      expect(await entry(node, id)).toMatchObject({ attempts: 0, nextRetryAt: T0 + 100 });
      await advance(node, clock, 100);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 1, lastAttemptAt: T0 + 100, nextRetryAt: T0 + 300 });
      await advance(node, clock, 199);
      expect((await entry(node, id)).attempts).toBe(1);
      await advance(node, clock, 1);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 2, lastAttemptAt: T0 + 300, nextRetryAt: T0 + 700 });
      await advance(node, clock, 399);
      expect((await entry(node, id)).attempts).toBe(2);
      await advance(node, clock, 1);
      expect(await entry(node, id)).toMatchObject({ status: 'parked', attempts: 3, lastAttemptAt: T0 + 700 });
      expect(named(events.events, 'retried').map((e) => [e.measurements.attempt, e.metadata.reason, e.metadata.manual])).toEqual([
        [1, 'noproc', false],
        [2, 'noproc', false],
        [3, 'noproc', false],
      ]);
      expect(named(events.events, 'parked')).toEqual([
        { event: `${EVENTS}parked`, measurements: { attempts: 3 }, metadata: { id, recipient: 'nobody', reason: 'noproc' } },
      ]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 1, retried: 3, succeeded: 0 });
      // parked: no more retries
      await advance(node, clock, 5000);
      expect(named(events.events, 'retried')).toHaveLength(3);
      expect((await entry(node, id)).status).toBe('parked');
      // the TTL runs from the last attempt (T0 + 700): purged at T0 + 10 700
      await advance(node, clock, 10_700 - 5700 - 1);
      expect((await entry(node, id)).status).toBe('parked');
      expect(named(events.events, 'purged')).toEqual([]);
      await advance(node, clock, 1);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(named(events.events, 'purged')).toEqual([{ event: `${EVENTS}purged`, measurements: { count: 1 }, metadata: { ttl: true } }]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0 });
    });

    it('with maxRetries: 0 never retries on its own: an entry is parked as it is added (its reason the original failure), and a manual retry still delivers it', async () => {
      const { node, clock } = dlqNode(makeStore(), { ...RETRYING, maxRetries: 0 });
      const events = captureEvents(node, [EVENTS]);
      const id = await add(node, 'late', { n: 1 }, 'timeout');
      expect(await entry(node, id)).toMatchObject({ status: 'parked', attempts: 0, reason: 'timeout' });
      expect(events.events.map((e) => [e.event, e.metadata.reason])).toEqual([
        [`${EVENTS}message_added`, 'timeout'],
        [`${EVENTS}parked`, 'timeout'],
      ]);
      const p = probe(node);
      node.registry.register('late', p);
      await advance(node, clock, 5000);
      expect(p.messages).toEqual([]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 1, retried: 0 });
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: true }]);
      expect(p.messages).toEqual([{ n: 1 }]);
      expect(await node.deadLetters.get(id)).toBeUndefined();
    });

    it('draws each delay with full jitter from the node random (0.5: 50, then 100 ms)', async () => {
      const { node, clock } = retryNode(0.5);
      const id = await add(node, 'nobody', 'x');
      expect((await entry(node, id)).nextRetryAt).toBe(T0 + 50);
      await advance(node, clock, 49);
      expect((await entry(node, id)).attempts).toBe(0);
      await advance(node, clock, 1);
      expect(await entry(node, id)).toMatchObject({ attempts: 1, nextRetryAt: T0 + 150 });
    });

    it('parks a dead-pid recipient at once as unrecoverable, without retrying it', async () => {
      const { node, clock } = retryNode();
      const events = captureEvents(node, [EVENTS]);
      const dead = deadPid(node, 'kill');
      const id = await add(node, dead, 'to the dead', 'process_down');
      await advance(node, clock, 100);
      const r = await entry(node, id);
      expect(r.status).toBe('parked');
      expect(r.recipient).toBe(Pid.format(dead));
      expect(named(events.events, 'parked').map((e) => e.metadata)).toEqual([{ id, recipient: Pid.format(dead), reason: 'noproc' }]);
      expect(named(events.events, 'retried')).toEqual([]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 1, retried: 0 });
      await advance(node, clock, 2000);
      expect(named(events.events, 'retried')).toEqual([]);
    });

    it("parks an entry for the queue's own process (by name or pid) as unrecoverable, rather than wait for itself to handle it", async () => {
      const { node, clock } = retryNode();
      const events = captureEvents(node, [EVENTS]);
      const byName = await add(node, 'keel.dead_letter_queue', 'to the queue itself');
      await advance(node, clock, 100);
      await node.idle({ timeoutMs: 2000 }); // it waits for nothing
      const self = node.registry.whereis('keel.dead_letter_queue')!;
      expect(node.isAlive(self)).toBe(true);
      const byPid = await add(node, self, 'to its pid');
      await advance(node, clock, 100);
      await node.idle({ timeoutMs: 2000 });
      for (const id of [byName, byPid]) expect(await entry(node, id)).toMatchObject({ status: 'parked', attempts: 0 });
      expect(named(events.events, 'parked').map((e) => e.metadata.reason)).toEqual(['unrecoverable', 'unrecoverable']);
      expect(named(events.events, 'retried')).toEqual([]);
      // a manual retry says so too
      expect(await node.deadLetters.retry([byName])).toEqual([{ id: byName, ok: false, reason: 'unrecoverable' }]);
    });

    it('delivers to a live pid recipient', async () => {
      const { node, clock } = retryNode();
      const p = probe(node);
      const id = await add(node, p, 'direct');
      await clock.advance(100);
      expect(await p.receive()).toBe('direct');
      await node.idle();
      expect(await node.deadLetters.get(id)).toBeUndefined();
    });

    it('resolves names at retry time: the process registered under the name then gets it', async () => {
      const { node, clock } = retryNode();
      const first = probe(node);
      node.registry.register('service', first);
      const id = await add(node, 'service', 'for whoever is service now');
      // the name is kept, not the pid it had when the entry was added
      expect((await entry(node, id)).recipient).toBe('service');
      const watcher = probe(node);
      const ref = watcher.ctx.monitor(first);
      node.exit(first, 'shutdown');
      await receiveDown(watcher, ref);
      expect(node.registry.whereis('service')).toBeUndefined();
      const second = probe(node);
      node.registry.register('service', second);
      await clock.advance(100);
      expect(await second.receive()).toBe('for whoever is service now');
      await node.idle();
      expect(await node.deadLetters.get(id)).toBeUndefined();
    });

    it('a failed first retry is followed by a successful one once the name exists', async () => {
      const { node, clock } = retryNode();
      const id = await add(node, 'eventually', 'finally');
      await advance(node, clock, 100);
      expect((await entry(node, id)).attempts).toBe(1);
      const p = probe(node);
      node.registry.register('eventually', p);
      await clock.advance(200);
      expect(await p.receive()).toBe('finally');
      await node.idle();
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(await stats(node)).toMatchObject({ retried: 2, succeeded: 1 });
    });

    it('retries each entry at its own nextRetryAt', async () => {
      const { node, clock } = dlqNode(makeStore(), { ...RETRYING, backoff: { initialMs: 1000, factor: 2, maxMs: 1000 } });
      const p = probe(node);
      node.registry.register('order', p);
      // random 1: due at T0 + 1000
      await add(node, 'order', 'first added');
      await advance(node, clock, 500);
      await add(node, 'order', 'second added'); // due at T0 + 1500
      await advance(node, clock, 499);
      expect(p.messages).toEqual([]);
      await clock.advance(1);
      expect(await p.receive()).toBe('first added');
      await advance(node, clock, 499);
      expect(p.messages).toEqual(['first added']);
      await clock.advance(1);
      expect(await p.receive()).toBe('second added');
    });

    it('redelivers an entry added without a message id under one message id every time, so that its receiver can dedupe', async () => {
      // found by test/reliability/crashDurability.test.ts (round seed 1873791512): an entry handed over
      // again after a SIGKILL came under a new ctx.messageId (each redelivery drew a fresh one)
      const clock = new TestClock({ start: 0 });
      const node = track({ clock, services: { deadLetters: { store: makeStore(), backoff: { initialMs: 100, jitter: 'none' } } } });
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
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), backoff: { initialMs: 100, jitter: 'none' } } } });
      const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'x', reason: 'noproc', metadata: { id: '' } }));
      await node.settle(); // the queue's process starts for the entry
      const queueProcess = node.registry.whereis('keel.dead_letter_queue');
      expect(node.isAlive(queueProcess!)).toBe(true);
      const p = probe(node);
      node.registry.register('inbox', p);
      await clock.advance(100);
      await node.idle();
      // the empty id is ignored, so the entry is delivered; the queue's process is still the same one
      expect(p.messages).toEqual(['x']);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(node.registry.whereis('keel.dead_letter_queue')).toBe(queueProcess);
    });

    it('parks an entry whose retry throws (a store fault) as unrecoverable, and its process goes on with the others', async () => {
      const clock = new TestClock();
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), backoff: { initialMs: 100, jitter: 'none' } } } });
      const events = captureEvents(node, ['keel.dead_letter_queue.parked']);
      const p = probe(node);
      node.registry.register('inbox', p);
      const bad = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'bad', reason: 'noproc' }));
      const good = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'good', reason: 'noproc' }));
      await node.settle();
      const queueProcess = node.registry.whereis('keel.dead_letter_queue');
      expect(node.isAlive(queueProcess!)).toBe(true);
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

    it('parks an entry whose re-read before its retry throws (a store fault), and a later retry delivers it: the entry was left marked in progress for good, every retry answering in_progress', async () => {
      const { node } = dlqNode(makeStore());
      const events = captureEvents(node, ['keel.dead_letter_queue.parked']);
      const p = probe(node);
      node.registry.register('inbox', p);
      const id = await add(node, 'inbox', 'x');
      const faulty = storeOf(node);
      const get = faulty.get.bind(faulty);
      let faults = 1;
      faulty.get = (i) => {
        if (faults > 0) {
          faults--;
          throw new Error('disk on fire');
        }
        return get(i);
      };
      // a filter: the entries are listed, and the one read of the store that throws is the re-read before the retry
      expect(ok(await node.deadLetters.retry({}))).toEqual([{ id, ok: false, reason: 'unrecoverable' }]);
      expect(ok(await node.deadLetters.get(id))).toMatchObject({ status: 'parked', attempts: 0, lastError: new Error('disk on fire') });
      expect(events.events.map((e) => e.metadata)).toEqual([{ id, recipient: 'inbox', reason: 'unrecoverable' }]);
      expect(p.messages).toEqual([]);
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: true }]);
      expect(await p.receive()).toBe('x');
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, added: 1, retried: 1, succeeded: 1 });
    });

    it('runs at most retryConcurrency automatic redeliveries at once, and add and list answer meanwhile', async () => {
      const clock = new TestClock();
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), retryConcurrency: 2, backoff: { initialMs: 100, jitter: 'none' } } } });
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

    it("waits at most maxRedeliveryWaitMs for a receiver that never finishes, even for a send whose timeout was Infinity: the slot is freed and the others go on", async () => {
      const clock = new TestClock();
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), retryConcurrency: 1, maxRedeliveryWaitMs: 1000, backoff: { initialMs: 100, jitter: 'none' } } } });
      const stuck = node.spawn(() => () => new Promise<void>(() => undefined)); // takes it, never finishes
      node.registry.register('stuck', stuck);
      const p = probe(node);
      node.registry.register('inbox', p);
      const hung = ok(await node.deadLetters.add({ recipient: 'stuck', message: 'hang', reason: 'timeout', metadata: { ack: 'handled', timeout: Infinity } }));
      await clock.advance(50);
      ok(await node.deadLetters.add({ recipient: 'inbox', message: 'next', reason: 'noproc' }));
      await clock.advance(50); // both due: the hung one first, in the only slot
      await node.settle();
      expect(p.messages).toEqual([]);
      await clock.advance(1000); // its wait ends: it stays pending, and the slot goes to the next
      await node.settle();
      await clock.advance(100);
      await node.settle();
      expect(p.messages).toEqual(['next']);
      expect(ok(await node.deadLetters.get(hung))).toMatchObject({ status: 'pending', attempts: 1 });
    });

    it('refuses a maxRedeliveryWaitMs that is not a finite number of ms >= 0', () => {
      for (const v of [Infinity, -1, NaN, '5']) {
        expect(() => createNode({ services: { deadLetters: { maxRedeliveryWaitMs: v as number } } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('maxRedeliveryWaitMs') }));
      }
    });

    it('retries the entries due together oldest first, whatever their retry times', async () => {
      const clock = new TestClock();
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), retryConcurrency: 1, backoff: { initialMs: 1000, jitter: 'none' } } } });
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
  });

  describe('automatic retry wake-ups', () => {
    it('an entry due sooner than the armed wake-up brings the wake-up forward', async () => {
      // the node's random answers 1 for the first entry, then 0.1: due at T0 + 1000, then at T0 + 100 + 100
      const draws = [1, 0.1];
      const clock = new TestClock({ start: T0 });
      const node = track({
        clock,
        random: () => draws.shift() ?? 1,
        services: { deadLetters: { store: makeStore(), ...RETRYING, backoff: { initialMs: 1000, factor: 2, maxMs: 1000 } } },
      });
      const p = probe(node);
      node.registry.register('soon', p);
      node.registry.register('later', probe(node));
      const slow = await add(node, 'later', 'slow');
      await advance(node, clock, 100);
      const fast = await add(node, 'soon', 'fast');
      expect((await entry(node, slow)).nextRetryAt).toBe(T0 + 1000);
      expect((await entry(node, fast)).nextRetryAt).toBe(T0 + 200);
      await advance(node, clock, 99);
      expect(p.messages).toEqual([]);
      await clock.advance(1);
      expect(await p.receive()).toBe('fast');
      await node.idle();
      expect(await node.deadLetters.get(fast)).toBeUndefined();
      expect((await entry(node, slow)).attempts).toBe(0);
    });

    it('does not wake again and again for an entry due while a manual retry of it is in flight; it wakes for its next retry time once that retry fails', async () => {
      const clock = new TestClock();
      const node = track({ clock, random: () => 1, services: { deadLetters: { store: makeStore(), backoff: { initialMs: 100, factor: 2, jitter: 'none' } } } });
      const queue = node.deadLetters as unknown as DeadLetterService;
      const wakes: number[] = [];
      const runDue = queue.runDue.bind(queue);
      const gate = deferred();
      queue.runDue = () => {
        wakes.push(clock.now());
        if (wakes.length === 20) gate.resolve(); // a guard: ends a loop of wake-ups (the handler finishes, the retry with it)
        return runDue();
      };
      const started: unknown[] = [];
      const inbox = node.spawn(() => async (m: unknown) => {
        started.push(m);
        if (started.length === 1) await gate.promise;
      });
      node.registry.register('inbox', inbox);
      // due at 100; a manual retry of it at 0 waits for the handler up to the entry's timeout, 1000 ms
      const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'm', reason: 'timeout', metadata: { ack: 'handled', timeout: 1000 } }));
      await node.settle();
      const manual = node.deadLetters.retry([id]);
      await node.settle();
      expect(started).toEqual(['m']);
      await clock.advance(1000); // the entry is due at 100, in flight until the retry times out at 1000
      const results = ok(await manual);
      expect(wakes).toEqual([100]);
      expect(results).toEqual([{ id, ok: false, reason: 'timeout' }]);
      expect(ok(await node.deadLetters.get(id))).toMatchObject({ status: 'pending', attempts: 1, nextRetryAt: 1200 });
      gate.resolve();
      await clock.advance(200);
      await node.idle();
      expect(wakes).toEqual([100, 1200]);
      expect(started).toEqual(['m', 'm']);
      expect(await node.deadLetters.get(id)).toBeUndefined();
    });
  });

  describe("the queue's process", () => {
    it('is restarted by the services supervisor after a kill; nothing is lost and automatic retries go on', async () => {
      const { node, clock } = dlqNode(makeStore(), RETRYING);
      const events = captureEvents(node, [EVENTS]);
      const deliver = await add(node, 'after-restart', 'still here', 'noproc');
      const failing = await add(node, 'nobody', 'never', 'noproc');
      const parked = await add(node, deadPid(node, 'kill'), 'gone');
      await node.deadLetters.retry([parked]);
      await node.idle();
      const listBefore = ok(await node.deadLetters.list());
      const statsBefore = await stats(node);
      expect(listBefore.entries).toHaveLength(3);

      const old = node.registry.whereis(DLQ_PROCESS);
      expect(node.isAlive(old!)).toBe(true);
      expect(node.isAlive('keel.services')).toBe(true);
      const watcher = probe(node);
      const ref = watcher.ctx.monitor(old!);
      node.exit(old!, 'kill');
      expect((await receiveDown(watcher, ref)).reason).toBe('killed');
      await node.idle();
      const fresh = node.registry.whereis(DLQ_PROCESS);
      expect(fresh).toMatchObject({ node: node.name, creation: node.creation });
      expect(Pid.equals(fresh!, old!)).toBe(false);
      expect(node.isAlive(fresh!)).toBe(true);

      expect(ok(await node.deadLetters.list())).toEqual(listBefore);
      expect(await stats(node)).toEqual(statsBefore);

      // the restarted process owns the wake-up: the due entries are retried on the clock
      const p = probe(node);
      node.registry.register('after-restart', p);
      await clock.advance(100);
      expect(await p.receive()).toBe('still here');
      await node.idle();
      expect(await node.deadLetters.get(deliver)).toBeUndefined();
      expect(await entry(node, failing)).toMatchObject({ attempts: 1, nextRetryAt: T0 + 300 });
      await advance(node, clock, 600);
      expect(await entry(node, failing)).toMatchObject({ status: 'parked', attempts: 3 });
      expect(named(events.events, 'succeeded').map((e) => e.metadata.id)).toEqual([deliver]);
    });

    it('a kill in the middle of a redelivery gives it up (the unstarted copy withdrawn, no attempt), and the restarted process delivers the entry at once', async () => {
      const { node, clock } = dlqNode(makeStore(), { maxRetries: 1, backoff: { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'none' } });
      const r = receiver(node, { name: 'inbox' });
      await r.hold(); // busy: the redelivered message waits in its mailbox
      const id = await add(node, 'inbox', 'm');
      const events = captureEvents(node, [EVENTS]);
      await step(node, clock, 100);
      expect(node.info(r.pid)?.mailboxLength).toBe(1);
      await exitAndWait(node, node.registry.whereis(DLQ_PROCESS)!, 'kill', 'settle');
      expect(node.info(r.pid)?.mailboxLength).toBe(0);
      expect(await entry(node, id)).toMatchObject({ status: 'pending', attempts: 0 });
      r.release();
      await advance(node, clock, 0);
      expect(r.seen.map((s) => s.message)).toEqual(['m']);
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(named(events.events, 'retried')).toEqual([]);
      expect(named(events.events, 'succeeded').map((e) => e.metadata.id)).toEqual([id]);
    });

    it('keeps retrying after several kills', async () => {
      const { node, clock } = dlqNode(makeStore(), RETRYING);
      const id = await add(node, 'nobody', 'x');
      for (let i = 0; i < 3; i++) {
        await node.idle();
        const pid = node.registry.whereis(DLQ_PROCESS)!;
        const watcher = probe(node);
        const ref = watcher.ctx.monitor(pid);
        node.exit(pid, 'kill');
        await receiveDown(watcher, ref);
        node.exit(watcher, 'shutdown');
      }
      await node.idle();
      await advance(node, clock, 100);
      expect((await entry(node, id)).attempts).toBe(1);
    });
  });

  if (kind === 'memory') {
    describe('memory store only', () => {
      it('evicts the oldest past capacity with keel.dead_letter_queue.evicted, counted in stats().evicted', async () => {
        const { node } = dlqNode(makeStore(), { capacity: 3 });
        const events = captureEvents(node, [`${EVENTS}evicted`]);
        const all: string[] = [];
        for (let i = 0; i < 3; i++) all.push(await add(node, `r${i}`, i, `reason${i}`));
        expect(events.events).toEqual([]);
        for (let i = 3; i < 5; i++) all.push(await add(node, `r${i}`, i, `reason${i}`));
        expect(await ids(node)).toEqual(all.slice(2));
        expect(await node.deadLetters.get(all[0]!)).toBeUndefined();
        expect(events.events).toEqual([
          { event: `${EVENTS}evicted`, measurements: {}, metadata: { id: all[0], recipient: 'r0', reason: 'reason0' } },
          { event: `${EVENTS}evicted`, measurements: {}, metadata: { id: all[1], recipient: 'r1', reason: 'reason1' } },
        ]);
        expect(await stats(node)).toMatchObject({ pending: 3, added: 5, evicted: 2 });
      });

      it('keeps the message by reference (no clone) after the structural check', async () => {
        const { node } = dlqNode(makeStore());
        const message = { big: new Uint8Array(16) };
        const id = await add(node, 'x', message);
        expect((await entry(node, id)).message).toBe(message);
      });
    });
  } else {
    describe('sqlite store only', () => {
      function sqliteOf(node: Node): string {
        const dlq = node.deadLetters;
        expect(dlq).toBeInstanceOf(DeadLetterService);
        const store = (dlq as DeadLetterService).store as unknown as { file?: string };
        expect(typeof store.file).toBe('string');
        return store.file!;
      }

      it('two nodes never share one file: a second createNode on the path throws ERR_STORE_IN_USE, until the first shuts down', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node } = dlqNode(store);
        const id = await add(node, 'x', 'mine');
        const again = thrown(() => createNode({ services: { deadLetters: { store } } }));
        expectKeelError(again, 'ERR_STORE_IN_USE');
        // the same file under another spelling of its path
        const spelled = path.join(path.dirname(store.path), '.', path.basename(store.path));
        expectKeelError(thrown(() => createNode({ services: { deadLetters: { store: { kind: 'sqlite', path: spelled } } } })), 'ERR_STORE_IN_USE');
        // the owner is unaffected
        expect((await entry(node, id)).message).toBe('mine');
        await node.shutdown({ timeoutMs: 1000 });
        const { node: next } = dlqNode(store);
        expect((await entry(next, id)).message).toBe('mine');
        expect(sqliteOf(next)).toBe(path.resolve(store.path));
      });

      it("the serializer's own refusal of a value that throws when read again is ERR_NOT_SERIALIZABLE naming message or metadata, counted", async () => {
        const { node } = dlqNode(makeStore());
        // reads fine for the structural check, throws when the serializer reads it again
        const secondReadThrows = (): object => {
          let reads = 0;
          return {
            get x(): number {
              if (reads++ > 0) throw new Error('read twice');
              return 1;
            },
          };
        };
        const inMessage = await failure(() => node.deadLetters.add({ recipient: 'x', message: secondReadThrows(), reason: 'noproc' }));
        expectKeelError(inMessage, 'ERR_NOT_SERIALIZABLE', 'message is not serializable (Error: read twice)');
        expect((inMessage as { path?: unknown }).path).toBe('message');
        const inMetadata = await failure(() => node.deadLetters.add({ recipient: 'x', message: 'fine', reason: 'noproc', metadata: secondReadThrows() }));
        expectKeelError(inMetadata, 'ERR_NOT_SERIALIZABLE', 'metadata is not serializable (Error: read twice)');
        expect((inMetadata as { path?: unknown }).path).toBe('metadata');
        expect(await stats(node)).toMatchObject({ refused: 2, added: 0, pending: 0 });
      });

      it('an undecodable row (a corrupt payload) never stops the queue: list, get and stats show it, every other entry is redelivered, and it is parked as undecodable', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node, clock } = dlqNode(store, { backoff: { initialMs: 100, jitter: 'none' } });
        const events = captureEvents(node, [EVENTS]);
        const p = probe(node);
        node.registry.register('inbox', p);
        const added: string[] = [];
        for (const m of ['m1', 'm2', 'm3', 'm4']) added.push(await add(node, 'inbox', m));
        expect(added).toEqual(['1', '2', '3', '4']);
        // another connection corrupts entry 2's payload and entry 3's last error
        const db = new Database(store.path);
        try {
          db.prepare("UPDATE dead_letters SET payload = x'deadbeef' WHERE seq = 2").run();
          db.prepare("UPDATE dead_letters SET last_error = x'0badc0de' WHERE seq = 3").run();
        } finally {
          db.close();
        }
        const decodeError = 'Error: Unable to deserialize cloned data due to invalid or unsupported version.';
        const undecodable = { bytes: 4, error: decodeError };
        // every read still answers, and shows the entry as undecodable with its raw size
        const listed = ok(await node.deadLetters.list()).entries;
        expect(listed.map((e) => e.id)).toEqual(['1', '2', '3', '4']);
        expect(listed[1]).toEqual({ ...(await entry(node, '2')) });
        expect(await entry(node, '2')).toEqual({
          id: '2', recipient: 'inbox', message: undefined, reason: 'noproc', metadata: {}, attempts: 0,
          firstFailedAt: T0, lastAttemptAt: T0, nextRetryAt: T0 + 100, lastError: 'noproc', status: 'pending', undecodable,
        });
        // a corrupt last error is only a diagnostic: the entry keeps its message and is delivered
        expect(await entry(node, '3')).toMatchObject({ message: 'm3', lastError: `undecodable last error (4 bytes): ${decodeError}`, status: 'pending' });
        expect(await entry(node, '3')).not.toHaveProperty('undecodable');
        expect(await stats(node)).toMatchObject({ pending: 4, parked: 0 });

        const queueProcess = node.registry.whereis(DLQ_PROCESS);
        expect(node.isAlive(queueProcess!)).toBe(true);
        await advance(node, clock, 100);
        expect(p.messages).toEqual(['m1', 'm3', 'm4']);
        expect(node.registry.whereis(DLQ_PROCESS)).toBe(queueProcess); // never crashed, never restarted
        const lastError = `the stored message and metadata (4 bytes) could not be decoded (${decodeError})`;
        expect(await entry(node, '2')).toEqual({
          id: '2', recipient: 'inbox', message: undefined, reason: 'noproc', metadata: {}, attempts: 0,
          firstFailedAt: T0, lastAttemptAt: T0 + 100, nextRetryAt: T0 + 100, lastError, status: 'parked', undecodable,
        });
        expect(named(events.events, 'parked')).toEqual([
          { event: `${EVENTS}parked`, measurements: { attempts: 0 }, metadata: { id: '2', recipient: 'inbox', reason: 'undecodable' } },
        ]);
        expect(named(events.events, 'succeeded').map((e) => e.metadata.id)).toEqual(['1', '3', '4']);
        expect(await ids(node)).toEqual(['2']);
        expect(await stats(node)).toMatchObject({ pending: 0, parked: 1, succeeded: 3 });
        // a manual retry answers why, and leaves it parked
        expect(ok(await node.deadLetters.retry(['2']))).toEqual([{ id: '2', ok: false, reason: 'undecodable' }]);
        expect((await entry(node, '2')).status).toBe('parked');
      });

      it('a payload that decodes to something other than a [message, metadata] pair is undecodable too', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node } = dlqNode(store);
        const id = await add(node, 'inbox', 'm');
        const db = new Database(store.path);
        try {
          db.prepare('UPDATE dead_letters SET payload = ? WHERE seq = ?').run(serialize('a string, not a pair'), Number(id));
        } finally {
          db.close();
        }
        const bytes = serialize('a string, not a pair').length;
        expect(await entry(node, id)).toMatchObject({ message: undefined, metadata: {}, undecodable: { bytes, error: 'not a [message, metadata] pair' } });
      });

      it('a dead letter too large for the store is refused alone (ERR_DEAD_LETTER_TOO_LARGE, counted in refused); the others added in the same turn are stored', async () => {
        const file = (makeStore() as { kind: 'sqlite'; path: string }).path;
        // an internal store option: the most the store takes, SQLite's own 1e9 bytes by default
        const store = { kind: 'sqlite', path: file, maxPayloadBytes: 1000 } as StoreOption;
        const { node } = dlqNode(store);
        const big = 'x'.repeat(2000);
        const bytes = serialize([big, {}]).length;
        const results = await Promise.all(
          ['a', big, 'c', 'd'].map((message) => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc' }).then((id) => ({ id }), (e: unknown) => ({ e }))),
        );
        expect(results.map((r) => ('id' in r ? r.id : 'refused'))).toEqual(['1', 'refused', '2', '3']);
        const refused = (results[1] as { e: unknown }).e;
        expectKeelError(refused, 'ERR_DEAD_LETTER_TOO_LARGE', `take ${bytes} bytes serialized`, 'at most 1000 bytes');
        expect(refused).toMatchObject({ bytes, limit: 1000 });
        expect(await stats(node)).toMatchObject({ added: 3, refused: 1, pending: 3 });
        expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['a', 'c', 'd']);
      });

      it("a row SQLite itself refuses as too big (SQLITE_TOOBIG) in a group commit is refused alone with ERR_DEAD_LETTER_TOO_LARGE; the group's other rows are stored", async () => {
        const { node } = dlqNode(makeStore());
        // SQLite's limit is 1e9 bytes: its refusal is simulated for one row, as the driver reports it
        const statement = Object.getPrototypeOf(new Database(':memory:').prepare('SELECT 1')) as { run(...args: unknown[]): unknown };
        const run = statement.run;
        const spy = vi.spyOn(statement, 'run').mockImplementation(function (this: unknown, ...args: unknown[]) {
          if (Buffer.isBuffer(args[1]) && args[1].length > 1000) throw new Database.SqliteError('string or blob too big', 'SQLITE_TOOBIG');
          return run.apply(this, args);
        });
        let results: ({ id: string } | { e: unknown })[];
        try {
          results = await Promise.all(
            ['a', 'x'.repeat(2000), 'c', 'd'].map((message) => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc' }).then((id) => ({ id: ok(id) }), (e: unknown) => ({ e }))),
          );
        } finally {
          spy.mockRestore();
        }
        expect(results.map((r) => ('id' in r ? r.id : 'refused'))).toEqual(['1', 'refused', '2', '3']);
        expectKeelError((results[1] as { e: unknown }).e, 'ERR_DEAD_LETTER_TOO_LARGE', 'at most 1000000000 bytes');
        expect((results[1] as { e: { cause?: { code?: string } } }).e.cause?.code).toBe('SQLITE_TOOBIG');
        expect(await stats(node)).toMatchObject({ added: 3, refused: 1, pending: 3 });
        expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['a', 'c', 'd']);
      });

      it('a group commit that fails on one row retries the rows one by one: only that row fails, with its own error', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node } = dlqNode(store);
        await add(node, 'x', 'first'); // the schema is there
        // another connection makes SQLite refuse one row: the one whose message is 'refuse me'
        const db = new Database(store.path);
        try {
          db.exec(`CREATE TRIGGER refuse_one BEFORE INSERT ON dead_letters WHEN NEW.payload = X'${serialize(['refuse me', {}]).toString('hex')}' BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END`);
        } finally {
          db.close();
        }
        const results = await Promise.all(
          ['a', 'refuse me', 'c', 'd'].map((message) => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc' }).then((id) => ({ id: ok(id) }), (e: unknown) => ({ e }))),
        );
        expect(results.map((r) => ('id' in r ? r.id : 'failed'))).toEqual(['2', 'failed', '3', '4']);
        expect((results[1] as { e: unknown }).e).toMatchObject({ code: 'SQLITE_CONSTRAINT_TRIGGER', message: 'refused by a trigger' });
        expect(await stats(node)).toMatchObject({ added: 4, refused: 0, pending: 4 });
        expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['first', 'a', 'c', 'd']);
      });

      it('a group commit that meets a locked file is tried again as a whole on the clock, one insert per try (never a retry per row), and its adds fail together at their deadline with SQLITE_BUSY', async () => {
        const file = (makeStore() as { kind: 'sqlite'; path: string }).path;
        const { node, clock } = dlqNode({ kind: 'sqlite', path: file, busyTimeoutMs: 20 } as StoreOption);
        await add(node, 'x', 'first');
        const statement = Object.getPrototypeOf(new Database(':memory:').prepare('SELECT 1')) as { run(...args: unknown[]): unknown };
        const lock = new Database(file);
        lock.exec('BEGIN IMMEDIATE');
        const spy = vi.spyOn(statement, 'run');
        // the queue's wake purges the expired parked entries: a write of its own, which meets the lock too
        const expires = vi.spyOn(SqliteStore.prototype, 'expire');
        let results: unknown[];
        let expired: number;
        let tries: number;
        let inserts: number;
        try {
          const adds = Promise.all(['a', 'b', 'c'].map((message) => node.deadLetters.add({ recipient: 'x', message, reason: 'noproc' }).then(ok, (e: unknown) => e)));
          // the tries: at once, then 25, 50, 100, 200 ms later, then every 400 ms, and a last one at the deadline (5 s after the adds)
          await clock.advance(5000);
          results = await adds;
        } finally {
          // the tries (each a BEGIN IMMEDIATE, which meets the lock) and the inserts tried (they bind a payload), read before the restore clears them
          tries = spy.mock.contexts.filter((st) => (st as { source?: unknown }).source === 'BEGIN IMMEDIATE').length;
          inserts = spy.mock.calls.filter((args) => Buffer.isBuffer(args[1])).length;
          expired = expires.mock.calls.length;
          expires.mockRestore();
          spy.mockRestore();
          lock.exec('ROLLBACK');
          lock.close();
        }
        expect(results.map((e) => (e as { code?: unknown }).code)).toEqual(['SQLITE_BUSY', 'SQLITE_BUSY', 'SQLITE_BUSY']);
        // each try met the lock at its BEGIN IMMEDIATE (the write lock taken first: the format is checked under it), before
        // any insert; no row was tried on its own (each would wait for the lock again)
        expect(expired).toBe(1);
        expect(tries).toBe(17 + expired);
        expect(inserts).toBe(0);
        expect(await ids(node)).toEqual(['1']);
        expect(await stats(node)).toMatchObject({ added: 1, pending: 1 });
      });

      it('a path SQLite cannot open is ERR_STORE_UNAVAILABLE, naming the path and what to do: a directory, a missing directory, a file that is not a database, a read-only location', async () => {
        const dir = path.dirname((makeStore() as { kind: 'sqlite'; path: string }).path);
        const text = path.join(dir, 'notes.txt');
        fs.writeFileSync(text, 'not a database');
        const missing = path.join(dir, 'missing', 'dlq.db');
        const cases: [string, string, string][] = [
          [dir, 'unable to open database file (SQLITE_CANTOPEN)', `${dir} is a directory: give the path of a store file (a new file is created)`],
          [missing, 'Cannot open database because the directory does not exist', `its directory ${path.dirname(missing)} does not exist: create it, or give a path in an existing directory`],
          [text, 'file is not a database (SQLITE_NOTADB)', `${text} is not a SQLite database: give the path of a dead letter store, or of a file to create`],
        ];
        // a location nobody may create a file in (root may write anywhere else)
        if (process.platform === 'linux') {
          cases.push(['/proc/keel-dead-letters.db', 'unable to open database file (SQLITE_CANTOPEN)', 'check that /proc exists and that this process may create and write files there, or give another path']);
        }
        for (const [file, why, hint] of cases) {
          const e = thrown(() => createNode({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } }));
          expectKeelError(e, 'ERR_STORE_UNAVAILABLE');
          expect((e as Error).message, file).toBe(`the dead letter store ${path.resolve(file)} could not be opened: ${why}; ${hint}`);
          expect((e as { file?: unknown }).file).toBe(path.resolve(file));
        }
        expect(fs.readFileSync(text, 'utf8')).toBe('not a database');
        // once the directory exists, the same path opens
        fs.mkdirSync(path.dirname(missing));
        const { node } = dlqNode({ kind: 'sqlite', path: missing });
        expect(typeof (await add(node, 'x', 'stored'))).toBe('string');
      });

      it('a damaged store (SQLITE_CORRUPT: a store file cut short) is ERR_STORE_UNAVAILABLE that says the file is damaged, not to check its directory', async () => {
        const file = (makeStore() as { kind: 'sqlite'; path: string }).path;
        const { node } = dlqNode({ kind: 'sqlite', path: file });
        for (let i = 0; i < 200; i++) await add(node, 'x', { n: i, pad: 'p'.repeat(200) });
        await node.shutdown();
        expect(fs.statSync(file).size).toBeGreaterThan(8192);
        fs.truncateSync(file, 8192);
        const e = thrown(() => createNode({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } }));
        expectKeelError(e, 'ERR_STORE_UNAVAILABLE');
        expect((e as Error).message).toBe(
          `the dead letter store ${path.resolve(file)} could not be opened: database disk image is malformed (SQLITE_CORRUPT); ${path.resolve(file)} is damaged: restore it from a backup, or salvage its rows with the sqlite3 shell's .recover`,
        );
      });

      it("a SQLite file of another application (its own dead_letters table) is ERR_STORE_UNAVAILABLE, and is left as it was: no WAL switch, no table created", () => {
        const file = (makeStore() as { kind: 'sqlite'; path: string }).path;
        const db = new Database(file);
        db.exec("CREATE TABLE dead_letters (id INTEGER PRIMARY KEY, body TEXT); INSERT INTO dead_letters (body) VALUES ('theirs')");
        db.close();
        const bytes = fs.readFileSync(file);
        const e = thrown(() => createNode({ services: { deadLetters: { store: { kind: 'sqlite', path: file } } } }));
        expectKeelError(e, 'ERR_STORE_UNAVAILABLE');
        expect((e as Error).message).toBe(
          `the dead letter store ${file} could not be opened: it is not a Keel dead letter store (its dead_letters table has other columns: id, body); give the path of a dead letter store, or of a file to create`,
        );
        expect(fs.readFileSync(file).equals(bytes)).toBe(true);
        const after = new Database(file, { readonly: true });
        try {
          expect(after.pragma('journal_mode', { simple: true })).toBe('delete');
          expect(after.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all()).toEqual([{ name: 'dead_letters' }]);
        } finally {
          after.close();
        }
      });

      it('runs the file in WAL mode', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node } = dlqNode(store);
        await add(node, 'x', 1);
        const db = new Database(store.path, { readonly: true });
        try {
          expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
        } finally {
          db.close();
        }
      });

      it('add resolves after its group commit: the adds of one turn are visible to a fresh connection as soon as they resolve', async () => {
        const store = makeStore() as { kind: 'sqlite'; path: string };
        const { node } = dlqNode(store);
        const db = new Database(store.path, { readonly: true });
        const count = (): number => (db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get() as { n: number }).n;
        try {
          const pending = [0, 1, 2, 3, 4].map((i) => node.deadLetters.add({ recipient: 'x', message: { i }, reason: 'noproc' }));
          // not yet written: the commit runs after this turn
          expect(count()).toBe(0);
          const got = (await Promise.all(pending)).map((v) => ok(v));
          expect(count()).toBe(5);
          const rows = db.prepare('SELECT seq, recipient, reason FROM dead_letters ORDER BY seq').all() as { seq: number; recipient: string; reason: string }[];
          expect(rows.map((r) => String(r.seq))).toEqual(got);
          expect(rows.every((r) => r.recipient === 'x' && r.reason === 'noproc')).toBe(true);
          // one more, alone in its turn
          const one = await add(node, 'y', 'single');
          expect(count()).toBe(6);
          expect((db.prepare('SELECT recipient FROM dead_letters WHERE seq = ?').get(Number(one)) as { recipient: string }).recipient).toBe('y');
        } finally {
          db.close();
        }
      });

      /**
       * A file with e1..e4 (added in that order) for 'inbox', whose retry times are not in that order:
       * e1 and e2 were retried once (nobody was registered as 'inbox'), which moved them past e3 and e4.
       */
      async function scrambledFile(backoff: NonNullable<DeadLetterOptions['backoff']>): Promise<StoreOption> {
        const store = makeStore();
        const { node, clock } = dlqNode(store, { backoff });
        await add(node, 'inbox', 'e1'); // due at 1000
        await advance(node, clock, 500);
        await add(node, 'inbox', 'e2'); // due at 1500
        await advance(node, clock, 500); // e1 fails: due at 1000 + 2000
        await add(node, 'inbox', 'e3'); // due at 2000
        await advance(node, clock, 600); // e2 fails at 1500: due at 1500 + 2000
        await add(node, 'inbox', 'e4'); // due at 2600
        const entries = ok(await node.deadLetters.list()).entries;
        expect(entries.map((e) => [e.message, e.attempts, e.nextRetryAt - T0])).toEqual([
          ['e1', 1, 3000],
          ['e2', 1, 3500],
          ['e3', 0, 2000],
          ['e4', 0, 2600],
        ]);
        await node.shutdown({ timeoutMs: 1000 });
        return store;
      }

      it('after a restart, the entries due together come back oldest (first added) first, whatever their nextRetryAt and attempts', async () => {
        const backoff = { initialMs: 1000, factor: 2, maxMs: 60_000, jitter: 'none' as const };
        const store = await scrambledFile(backoff);
        // the next node starts after all four came due
        const next = clockedNode(track, { random: () => 1, services: { deadLetters: { store, backoff } } }, T0 + 10_000);
        const p = probe(next.node);
        next.node.registry.register('inbox', p);
        const queue = next.node.deadLetters as DeadLetterService;
        expect(queue.store.due(next.clock.now(), 10).map((e) => e.message)).toEqual(['e1', 'e2', 'e3', 'e4']);
        await advance(next.node, next.clock, 0);
        expect(p.messages).toEqual(['e1', 'e2', 'e3', 'e4']);
        expect(await ids(next.node)).toEqual([]);
      });

      it('entries due at different times come back at their own retry times: a newer one due sooner before an older one retried already', async () => {
        const backoff = { initialMs: 1000, factor: 2, maxMs: 60_000, jitter: 'none' as const };
        const store = await scrambledFile(backoff);
        // the next node starts before any of them is due
        const next = clockedNode(track, { random: () => 1, services: { deadLetters: { store, backoff } } }, T0 + 1700);
        const p = probe(next.node);
        next.node.registry.register('inbox', p);
        const seen: [unknown, number][] = [];
        for (const at of [2000, 2600, 3000, 3500]) {
          const before = p.messages.length;
          await advance(next.node, next.clock, T0 + at - next.clock.now());
          seen.push(...p.messages.slice(before).map((m): [unknown, number] => [m, at]));
        }
        expect(seen).toEqual([
          ['e3', 2000],
          ['e4', 2600],
          ['e1', 3000],
          ['e2', 3500],
        ]);
      });

      it('the next node owning the file retries the entries of an earlier run on its clock', async () => {
        const store = makeStore();
        const { node } = dlqNode(store, RETRYING);
        const id = await add(node, 'reborn', 'across runs');
        await node.shutdown({ timeoutMs: 1000 });
        const { node: next, clock } = dlqNode(store, RETRYING);
        await next.idle();
        // the file holds a pending entry: the new owner starts the queue's process for it
        expect(next.isAlive(DLQ_PROCESS)).toBe(true);
        const p = probe(next);
        next.registry.register('reborn', p);
        await clock.advance(100);
        expect(await p.receive()).toBe('across runs');
        await next.idle();
        expect(await next.deadLetters.get(id)).toBeUndefined();
      });

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
  }
});

// ---- services: false ----------------------------------------------------------------------------

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

describe('a dead letter redriven to a pid of another node, on a node with no cluster', () => {
  it("is left untouched with reason 'noproc', as a redrive to a process not alive here is: it counted an attempt against the entry and, past maxRetries, parked it", async () => {
    const { node } = dlqNode({ kind: 'memory' }, { maxRetries: 1 });
    const id = await add(node, 'nobody', 'kept');
    const before = await entry(node, id);
    const elsewhere = Pid.parse('<other-node.1.1>');
    expect(ok(await node.deadLetters.retry([id], { to: elsewhere }))).toEqual([{ id, ok: false, reason: 'noproc' }]);
    expect(await entry(node, id)).toEqual(before);
    expect(await stats(node)).toMatchObject({ pending: 1, parked: 0, retried: 0 });
  });
});

describe("a dead letter redriven to the queue's own process", () => {
  it("is left untouched, answering unrecoverable: the operator's mistake is not the entry's, which a redrive elsewhere then delivers; it was parked, its lastError replaced", async () => {
    const { node } = dlqNode({ kind: 'memory' });
    const events = captureEvents(node, [EVENTS]);
    const id = await add(node, 'nobody', 'kept');
    await node.settle();
    const before = await entry(node, id);
    const self = node.registry.whereis('keel.dead_letter_queue')!;
    for (const to of ['keel.dead_letter_queue', self]) {
      expect(ok(await node.deadLetters.retry([id], { to }))).toEqual([{ id, ok: false, reason: 'unrecoverable' }]);
    }
    expect(await entry(node, id)).toEqual(before);
    expect(named(events.events, 'parked')).toEqual([]);
    const p = probe(node);
    expect(ok(await node.deadLetters.retry([id], { to: p }))).toEqual([{ id, ok: true }]);
    expect(p.messages).toEqual(['kept']);
  });
});

describe('a dead letter queue whose store cannot write (a full disk, simulated by a store whose writes throw)', () => {
  it('records nothing, delivers each due entry once, logs the entry it could not record, and its process and the services live on; a manual retry tries it again, and once the store writes it is delivered and removed: the park after the failed write threw too, crashing the queue\'s process at every wake until the services supervisor gave up, each wake delivering the entry again', async () => {
    const clock = new TestClock();
    const logger = fakeLogger();
    const node = track({ clock, logger, random: () => 1, services: { deadLetters: { backoff: { initialMs: 100, jitter: 'none' } } } });
    const p = probe(node);
    node.registry.register('inbox', p);
    const delivered = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'delivered', reason: 'noproc' }));
    const failing = ok(await node.deadLetters.add({ recipient: 'nobody', message: 'failing', reason: 'noproc' }));
    await node.settle();
    const queueProcess = node.registry.whereis('keel.dead_letter_queue');
    const store = storeOf(node);
    const { update, remove } = { update: store.update.bind(store), remove: store.remove.bind(store) };
    store.update = () => {
      throw new Error('disk full');
    };
    store.remove = () => {
      throw new Error('disk full');
    };
    await clock.advance(100);
    await node.idle();
    await clock.advance(60_000);
    await node.idle();
    expect(p.messages).toEqual(['delivered']);
    expect(node.registry.whereis('keel.dead_letter_queue')).toBe(queueProcess);
    expect(ok(await node.deadLetters.list()).entries.map((e) => [e.id, e.status, e.attempts])).toEqual([[delivered, 'pending', 0], [failing, 'pending', 0]]);
    // the two redeliveries run at once: in either order
    const errors = logger.error.mock.calls.map((c) => String(c[0])).sort();
    expect(errors).toEqual([
      `the dead letter queue could not record the retry of entry ${delivered} (to inbox); it is not retried again until a manual retry or the node's restart`,
      `the dead letter queue could not record the retry of entry ${failing} (to nobody); it is not retried again until a manual retry or the node's restart`,
    ]);
    expect(logger.error.mock.calls[0]![1]).toEqual(new AggregateError([new Error('disk full'), new Error('disk full')], 'the retry, then its park, threw'));
    expect(ok(await node.deadLetters.retry([failing]))).toEqual([{ id: failing, ok: false, reason: 'unrecoverable' }]);
    store.update = update;
    store.remove = remove;
    const late = probe(node);
    node.registry.register('nobody', late);
    expect(ok(await node.deadLetters.retry([failing]))).toEqual([{ id: failing, ok: true }]);
    expect(late.messages).toEqual(['failing']);
    expect(p.messages).toEqual(['delivered']);
    expect(ok(await node.deadLetters.list()).entries.map((e) => e.id)).toEqual([delivered]);
  });
});

describe('a dead letter queue whose store cannot be read (a disk error, a damaged file, simulated by a store whose reads throw)', () => {
  it("keeps its process and the node's services running, logs the fault once, looks again every 5 s, and once the store reads again delivers the due entries: the queue's process crashed at every wake and restart until the services supervisor gave up, stopping the node's services", async () => {
    const clock = new TestClock();
    const logger = fakeLogger();
    const node = track({ clock, logger, random: () => 1, services: { deadLetters: { backoff: { initialMs: 100, jitter: 'none' } } } });
    const id = ok(await node.deadLetters.add({ recipient: 'inbox', message: 'waited', reason: 'noproc' }));
    await node.settle();
    const queueProcess = node.registry.whereis('keel.dead_letter_queue');
    const store = storeOf(node);
    const { due, earliest } = { due: store.due.bind(store), earliest: store.earliest.bind(store) };
    const fault = new Error('disk I/O error');
    store.due = () => {
      throw fault;
    };
    store.earliest = () => {
      throw fault;
    };
    await clock.advance(100);
    await node.idle();
    await clock.advance(20_000);
    await node.idle();
    expect(node.registry.whereis('keel.dead_letter_queue')).toBe(queueProcess);
    expect(logger.error.mock.calls).toEqual([["the dead letter queue could not read its store; it looks again every 5000 ms until it can", fault]]);
    const p = probe(node);
    node.registry.register('inbox', p);
    store.due = due;
    store.earliest = earliest;
    await clock.advance(5000);
    await node.idle();
    expect(p.messages).toEqual(['waited']);
    expect(await node.deadLetters.get(id)).toBeUndefined();
    expect(node.registry.whereis('keel.dead_letter_queue')).toBe(queueProcess);
    expect(logger.error).toHaveBeenCalledTimes(1);
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

describe('dead letter queue with services: false', () => {
  it("rejects with ERR_SERVICE_UNAVAILABLE (reason 'disabled') from every method, and starts no process", async () => {
    const node = track({ services: false });
    const dlq = node.deadLetters;
    expect(dlq.available).toBe(false);
    expectServiceUnavailable(await rejection(() => dlq.add({ recipient: 'x', message: 1, reason: 'noproc' })), 'deadLetters.add', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.list()), 'deadLetters.list', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.list({ status: 'parked', limit: 2 })), 'deadLetters.list', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.get('1')), 'deadLetters.get', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.retry(['1'])), 'deadLetters.retry', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.retry({}, { ratePerSecond: 1 })), 'deadLetters.retry', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.purge({})), 'deadLetters.purge', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.stats()), 'deadLetters.stats', 'disabled');
    expectServiceUnavailable(await rejection(() => dlq.add(undefined as never)), 'deadLetters.add', 'disabled');
    await node.idle();
    expect(node.registry.whereis(DLQ_PROCESS)).toBeUndefined();
    expect(node.registry.whereis('keel.services')).toBeUndefined();
  });
});

/** Every entry's retry comes 1 s after it is added (with random 1). */
const SECOND = { initialMs: 1000, factor: 1, maxMs: 1000 };

describe('the SQLite dead letter queue removing a delivered entry while another connection holds the write lock', () => {
  it('counts the redelivery a success and never delivers it again: the delete waits for the lock (reads leave the entry out meanwhile); it was parked as unrecoverable, to be delivered again by a later retry', async () => {
    const file = tmpfile();
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 1, logger, services: { deadLetters: { store: { kind: 'sqlite', path: file, busyTimeoutMs: 20 } as StoreOption, backoff: SECOND } } }, T0);
    const events = captureEvents(node, [`${EVENTS}succeeded`, `${EVENTS}parked`]);
    const billing = receiver(node, { name: 'billing' });
    const id = await add(node, 'billing', 'invoice');
    const lock = new Database(file);
    lock.exec('BEGIN IMMEDIATE');
    try {
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: true }]);
      expect(billing.seen).toEqual([{ message: 'invoice', id: `dead-letter-${id}-${T0}` }]);
      expect(events.events.map((e) => [e.event, e.metadata.id])).toEqual([[`${EVENTS}succeeded`, id]]);
      // still locked: the entry is gone for every read, and its retry time passing delivers nothing
      expect(await node.deadLetters.get(id)).toBeUndefined();
      expect(await ids(node)).toEqual([]);
      expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, retried: 1, succeeded: 1 });
      await advance(node, clock, 6000); // past its retry time and the 5 s look at the file
      expect(billing.seen).toHaveLength(1);
      expect(ok(await node.deadLetters.retry([id]))).toEqual([{ id, ok: false, reason: 'not_found' }]);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    expect(logger.errors.length).toBeGreaterThan(0);
    expect(logger.errors[0]![0]).toBe(`the dead letter store ${file} could not write 1 update(s); they are kept for the next try`);
    // the lock released: the next read writes the delete
    expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, succeeded: 1 });
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get()).toEqual({ n: 0 });
    } finally {
      db.close();
    }
    expect(billing.seen).toHaveLength(1);
  });
});

describe('the SQLite dead letter queue closed while a redelivery waits for its receiver', () => {
  it("answers ok with reason removal_lost (the receiver handled it), says so in a removal_lost event and a logged error naming the entry and its message id, and leaves the entry in the file as it was, delivered again after a restart under the same message id: it answered unrecoverable and emitted a parked event for an entry it could not park", async () => {
    const file = tmpfile();
    const logger = fakeLogger();
    const { node } = clockedNode(track, { random: () => 1, logger, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: QUIET } } }, T0);
    const events = captureEvents(node, [EVENTS]);
    const billing = receiver(node, { name: 'billing' });
    const id = await add(node, 'billing', 'invoice');
    const before = await entry(node, id);
    await billing.hold(); // busy: the redelivered copy waits in its mailbox, the redelivery for it
    const retrying = node.deadLetters.retry([id]);
    await node.settle();
    expect(node.info(billing.pid)?.mailboxLength).toBe(1);
    // the queue closes its store as at the end of a shutdown, while the redelivery still waits (as one
    // to another node may, its answer coming during the shutdown's last hooks)
    (node.deadLetters as unknown as DeadLetterService).close();
    billing.release();
    const messageId = `dead-letter-${id}-${T0}`;
    expect(ok(await retrying)).toEqual([{ id, ok: true, reason: 'removal_lost' }]);
    expect(billing.seen).toEqual([{ message: 'invoice', id: messageId }]);
    expect(named(events.events, 'parked')).toEqual([]);
    expect(named(events.events, 'succeeded')).toEqual([]);
    expect(named(events.events, 'removal_lost').map((e) => [e.measurements, e.metadata])).toEqual([[{ attempts: 1 }, { id, recipient: 'billing', manual: true, messageId }]]);
    expect(logger.errors.map((e) => e[0])).toEqual([
      `the dead letter queue redelivered entry ${id} (to billing) and its receiver handled it, but the store ${file} had closed: the entry stays in it and is delivered again after a restart, under the same message id ${messageId} (dedupe on ctx.messageId)`,
    ]);
    // the next node on the file has the entry as it was, and delivers it again under the same message id
    const next = clockedNode(track, { random: () => 1, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: QUIET } } }, T0).node;
    expect(await entry(next, id)).toEqual(before);
    const again = receiver(next, { name: 'billing' });
    expect(ok(await next.deadLetters.retry([id]))).toEqual([{ id, ok: true }]);
    expect(again.seen).toEqual([{ message: 'invoice', id: messageId }]);
  });
});

describe('the SQLite dead letter queue while another connection holds the write lock', () => {
  it('goes on retrying its due entries, and its process and the services supervisor keep running: its wake-up purge of expired parked entries threw SQLITE_BUSY and crashed the process, until the services supervisor gave up, again and again', async () => {
    const file = tmpfile();
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 1, logger, services: { deadLetters: { store: { kind: 'sqlite', path: file, busyTimeoutMs: 20 } as StoreOption, backoff: SECOND } } }, T0);
    const billing = receiver(node, { name: 'billing' });
    const id = await add(node, 'billing', 'invoice');
    await node.idle();
    const queue = node.registry.whereis(DLQ_PROCESS);
    const services = node.registry.whereis('keel.services');
    expect(queue).toBeDefined();
    const lock = new Database(file);
    lock.exec('BEGIN IMMEDIATE');
    try {
      // past the entry's retry time (1 s), then through two of the queue's 5 s looks at the file
      for (const ms of [1000, 5000, 5000]) await advance(node, clock, ms);
      expect(billing.seen).toEqual([{ message: 'invoice', id: `dead-letter-${id}-${T0}` }]);
      expect(node.registry.whereis(DLQ_PROCESS)).toBe(queue);
      expect(node.registry.whereis('keel.services')).toBe(services);
      expect(logger.errors.map((e) => e[0]).filter((m) => String(m).includes('services'))).toEqual([]);
      expect(logger.errors.map((e) => e[0])).toContain(`the dead letter queue could not purge its expired parked entries from ${file}; it tries again at its next wake`);
    } finally {
      lock.exec('ROLLBACK');
      lock.close();
    }
    expect(await stats(node)).toMatchObject({ pending: 0, parked: 0, succeeded: 1 });
  });
});

describe('the SQLite dead letter queue adding while another connection holds the write lock (BEGIN EXCLUSIVE)', () => {
  /** The longest the event loop was blocked while `work` ran, in ms (sampled every 10 ms). */
  async function longestBlock<T>(work: () => Promise<T>): Promise<{ result: T; blockedMs: number }> {
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    try {
      const result = await work();
      return { result, blockedMs: h.max / 1e6 };
    } finally {
      h.disable();
    }
  }

  it("keeps the node running while it waits (each try blocks the event loop for at most the short busy timeout, a process goes on handling messages, a node timer fires), and once the lock is released writes every add it accepted: each add blocked the event loop for better-sqlite3's 5 s busy timeout, then failed", async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { random: () => 1, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: QUIET } } }, T0);
    await add(node, 'x', 'first');
    const echo = receiver(node);
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    let released = false;
    try {
      const { result, blockedMs } = await longestBlock(async () => {
        const settled: string[] = [];
        const adds = ['a', 'b', 'c'].map((message) =>
          node.deadLetters.add({ recipient: 'x', message, reason: 'noproc' }).then(
            (id) => (settled.push(message), ok(id)),
            (e: unknown) => (settled.push(message), e),
          ),
        );
        await new Promise<void>((resolve) => setImmediate(resolve)); // the first try has met the lock
        // the node runs meanwhile: a process handles a message, a node timer fires
        const fired = deferred<number>();
        node.setTimer(1000, () => fired.resolve(clock.now()));
        node.send(echo.pid, 'ping');
        await clock.advance(1000);
        expect(await fired.promise).toBe(T0 + 1000);
        expect(echo.seen.map((s) => s.message)).toEqual(['ping']);
        await clock.advance(2000); // 3 s into the 5 s the adds may wait
        expect(settled).toEqual([]);
        lock.exec('COMMIT');
        released = true;
        await clock.advance(400); // the next try (every 400 ms by now) finds the file free
        return Promise.all(adds);
      });
      expect(result).toEqual(['2', '3', '4']);
      expect(blockedMs).toBeLessThan(500);
    } finally {
      if (!released) lock.exec('ROLLBACK');
      lock.close();
    }
    // added = stored
    expect(await stats(node)).toMatchObject({ added: 4, pending: 4, refused: 0 });
    expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['first', 'a', 'b', 'c']);
    const db = new Database(file, { readonly: true });
    try {
      expect(db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get()).toEqual({ n: 4 });
    } finally {
      db.close();
    }
  });

  it('fails an add the lock outlasts 5 s after it was made with SQLITE_BUSY (its supervised send reports the message undelivered and logs why), blocking the event loop only briefly meanwhile; an add made later, while the others wait, keeps its own deadline and is written once the lock goes', async () => {
    const file = tmpfile();
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 1, logger, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: QUIET } } }, T0);
    await add(node, 'x', 'first');
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    let released = false;
    try {
      const { result, blockedMs } = await longestBlock(async () => {
        const early = node.deadLetters.add({ recipient: 'x', message: 'early', reason: 'noproc' }).then(ok, (e: unknown) => e);
        const lost = sendSupervised(node, deadPid(node), 'undeliverable', { onError: 'dead_letter' }).then((r) => r, (e: unknown) => ({ thrown: e }));
        await new Promise<void>((resolve) => setImmediate(resolve));
        await clock.advance(3000);
        const late = node.deadLetters.add({ recipient: 'x', message: 'late', reason: 'noproc' }).then(ok, (e: unknown) => e);
        await clock.advance(2000); // the deadline of the first two adds
        const failed = await early;
        const sent = await lost;
        await clock.advance(400);
        lock.exec('COMMIT');
        released = true;
        await clock.advance(400);
        return { failed, sent, late: await late };
      });
      expect((result.failed as { code?: unknown }).code).toBe('SQLITE_BUSY');
      expect(result.sent).toMatchObject({ ok: false, deadLetterUnavailable: true });
      expect(result.late).toBe('2');
      expect(blockedMs).toBeLessThan(500);
    } finally {
      if (!released) lock.exec('ROLLBACK');
      lock.close();
    }
    expect(logger.errors.filter((e) => String(e[0]).includes('the dead letter queue refused the message')).map((e) => (e[1] as { code?: unknown }).code)).toEqual(['SQLITE_BUSY']);
    // every add ends once in the stats: 2 added, the 2 the lock outlasted failed (the supervised send's too)
    expect(await stats(node)).toMatchObject({ added: 2, pending: 2, refused: 0, failed: 2 });
    expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['first', 'late']);
  });
});

describe('the SQLite dead letter queue purging while another connection holds the write lock (BEGIN EXCLUSIVE)', () => {
  it('waits for the lock on the node clock, the node running meanwhile, and purges once it goes; a lock that outlasts 5 s rejects the purge with SQLITE_BUSY, nothing purged: the purge blocked the event loop for the 5 s busy timeout, and with a 50 ms one failed at once', async () => {
    const file = tmpfile();
    const { node, clock } = clockedNode(track, { random: () => 1, services: { deadLetters: { store: { kind: 'sqlite', path: file }, backoff: QUIET } } }, T0);
    for (const m of ['a', 'b', 'c']) await add(node, 'x', m, m === 'b' ? 'timeout' : 'noproc');
    const lock = new Database(file);
    lock.exec('BEGIN EXCLUSIVE');
    let released = false;
    try {
      const h = monitorEventLoopDelay({ resolution: 10 });
      h.enable();
      let outcome: unknown;
      try {
        // past the deadline: refused, nothing purged
        const failing = node.deadLetters.purge({ reason: 'timeout' }).then((n) => ({ n }), (e: unknown) => ({ e }));
        await new Promise<void>((resolve) => setImmediate(resolve));
        const fired = deferred<number>();
        node.setTimer(1000, () => fired.resolve(clock.now()));
        await clock.advance(1000);
        expect(await fired.promise).toBe(T0 + 1000);
        await clock.advance(4000);
        outcome = await failing;
      } finally {
        h.disable();
      }
      expect((outcome as { e: { code?: unknown } }).e.code).toBe('SQLITE_BUSY');
      expect(h.max / 1e6).toBeLessThan(500);
      // within the deadline: purged once the lock goes
      const purging = node.deadLetters.purge({ reason: 'noproc' });
      await new Promise<void>((resolve) => setImmediate(resolve));
      await clock.advance(1000);
      lock.exec('COMMIT');
      released = true;
      await clock.advance(400);
      expect(ok(await purging)).toBe(2);
    } finally {
      if (!released) lock.exec('ROLLBACK');
      lock.close();
    }
    expect(ok(await node.deadLetters.list()).entries.map((e) => e.message)).toEqual(['b']);
  });
});

describe('the SQLite dead letter queue shutting down while its adds wait for a lock', () => {
  it('writes them at the close once the lock is gone, or, when the lock outlasts the closing wait, rejects them with SQLITE_BUSY (nothing in the file, nothing silent)', async () => {
    for (const releaseFirst of [true, false]) {
      const file = tmpfile();
      const node = track({ name: `dlq-close-${String(releaseFirst)}`, services: { deadLetters: { store: { kind: 'sqlite', path: file, lockWaitMs: 100 } as StoreOption, backoff: QUIET } } });
      await add(node, 'x', 'first');
      const lock = new Database(file);
      lock.exec('BEGIN EXCLUSIVE');
      let released = false;
      try {
        const pending = node.deadLetters.add({ recipient: 'x', message: 'waiting', reason: 'noproc' }).then(ok, (e: unknown) => e);
        await new Promise<void>((resolve) => setImmediate(resolve)); // its first try met the lock
        if (releaseFirst) {
          lock.exec('COMMIT');
          released = true;
        }
        await node.shutdown();
        const outcome = await pending;
        if (releaseFirst) expect(outcome).toBe('2');
        else expect((outcome as { code?: unknown }).code).toBe('SQLITE_BUSY');
      } finally {
        if (!released) lock.exec('ROLLBACK');
        lock.close();
      }
      const db = new Database(file, { readonly: true });
      try {
        expect(db.prepare('SELECT COUNT(*) AS n FROM dead_letters').get()).toEqual({ n: releaseFirst ? 2 : 1 });
      } finally {
        db.close();
      }
    }
  });
});
