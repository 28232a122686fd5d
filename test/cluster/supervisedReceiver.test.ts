// The receiving side of supervised sends across nodes, without NATS: the handled-id record over a
// bucket whose answers the test holds back, and JetStream messages as plain objects that record
// what the receiver did with them (found in review).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type HandledBucket, HandledIds } from '../../src/cluster/supervised/HandledIds.js';
import { type InboundMessage, Receiver } from '../../src/cluster/supervised/Receiver.js';
import { encodeSend, type WireReply } from '../../src/cluster/supervised/wire.js';
import { kernelOf } from '../../src/runtime/kernel.js';
import { PidImpl } from '../../src/runtime/Pid.js';
import { GenServer, Sys } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

afterEach(() => {
  vi.restoreAllMocks();
});

/** A bucket whose gets wait until the test answers them. */
function heldBucket() {
  const gets: { key: string; answer(entry: { operation: string; string(): string } | null): void }[] = [];
  const puts: string[] = [];
  let arrived: (() => void) | undefined;
  const bucket: HandledBucket = {
    get: (key) =>
      new Promise((resolve) => {
        gets.push({ key, answer: resolve });
        arrived?.();
      }),
    put: (key) => {
      puts.push(key);
      return Promise.resolve(puts.length);
    },
    // the attempt's start, recorded before it runs (a send with one attempt): answered at once
    create: () => Promise.resolve(0),
  };
  /** The next get, once the receiver asked it. */
  const nextGet = async () => {
    if (gets.length === 0) await new Promise<void>((resolve) => (arrived = resolve));
    return gets.shift()!;
  };
  return { bucket, puts, nextGet };
}

/** A JetStream message as the receiver sees it, recording what it was told. */
function message(text: string, deliveryCount = 1) {
  const told: string[] = [];
  const msg: InboundMessage = {
    string: () => text,
    info: { deliveryCount },
    ack: () => told.push('ack'),
    nak: (ms) => told.push(`nak ${ms}`),
    working: () => told.push('working'),
    term: (reason) => told.push(`term ${reason}`),
  };
  return { msg, told };
}

function setup() {
  const node = track({ name: 'recv' });
  const kernel = kernelOf(node, 'node');
  const held = heldBucket();
  const replies: WireReply[] = [];
  const dropped: string[] = [];
  const receiver = new Receiver(
    {
      kernel,
      handled: new HandledIds(100, held.bucket, 'recv'),
      ackWaitMs: 30_000,
      beforeAck: undefined,
      reply: (_subject, reply) => replies.push(reply),
      dropped: (reason, _error, id) => dropped.push(`${reason} ${id}`),
    },
    (n, c, i) => new PidImpl(n, c, i),
  );
  return { node, kernel, held, replies, dropped, receiver };
}

const backoff = { initialMs: 1, factor: 2, maxMs: 1, jitter: 'none' } as const;

/** A bucket that keeps what is put in it and answers at once: the record that outlives a receiving node's process. */
function keptBucket(): HandledBucket {
  const kept = new Map<string, string>();
  return {
    get: (key) => {
      const value = kept.get(key);
      return Promise.resolve(value === undefined ? null : { operation: 'PUT', string: () => value });
    },
    put: (key, value) => {
      kept.set(key, value);
      return Promise.resolve(kept.size);
    },
    create: (key, value) => {
      if (kept.has(key)) return Promise.reject(new Error('wrong last sequence'));
      kept.set(key, value);
      return Promise.resolve(kept.size);
    },
  };
}

/**
 * A receiving node 'recv' with a 'worker' that reports what it handles, its receiver's record in
 * `bucket`; `beforeAck` as the host's test hook. A worker that `hangs` never finishes a handler.
 */
function receivingNode(bucket: HandledBucket, beforeAck?: (id: string) => Promise<void>, hangs = false) {
  const node = track({ name: 'recv' });
  const kernel = kernelOf(node, 'node');
  const seen = probe(node);
  const worker = node.spawn<unknown>((ctx) => (m) => {
    node.send(seen, { id: ctx.messageId, m });
    return hangs ? new Promise<void>(() => undefined) : undefined;
  });
  node.registry.register('worker', worker);
  let replied!: (reply: WireReply) => void;
  const reply = new Promise<WireReply>((resolve) => (replied = resolve));
  let dropped!: (reason: string) => void;
  const drop = new Promise<string>((resolve) => (dropped = resolve));
  const receiver = new Receiver(
    { kernel, handled: new HandledIds(100, bucket, 'recv'), ackWaitMs: 30_000, beforeAck, reply: (_subject, r) => replied(r), dropped: (reason) => dropped(reason) },
    (n, c, i) => new PidImpl(n, c, i),
  );
  return { node, worker, seen, receiver, reply, drop };
}

describe('the supervised receiver, its record held back', () => {
  it.each(['enqueued', 'handled'] as const)("ack '%s': a message whose expiry passes while its record is looked up is dropped as expired, not delivered (its sender has given up)", async (ack) => {
    const { node, held, replies, dropped, receiver } = setup();
    const seen = probe(node);
    const worker = node.spawn<unknown>((ctx) => (m) => {
      node.send(seen, { id: ctx.messageId, m });
    });
    node.registry.register('worker', worker);
    const expires = Date.now() + 60_000;
    const { msg, told } = message(encodeSend({ id: 'late', to: { name: 'worker' }, ack, timeout: ack === 'handled' ? 60_000 : -1, attempts: 1, retryOnCrash: false, backoff, expires, reply: 'r.1' }, 'payload', 10_000));
    receiver.receive(msg);
    const get = await held.nextGet();
    // the lookup answers after the send's expiry: the sender has said timeout (and dead-lettered it)
    vi.spyOn(Date, 'now').mockReturnValue(expires + 1);
    get.answer(null);
    await node.idle();
    vi.restoreAllMocks();
    // a probe message sent now arrives before anything the worker would have handled from before
    node.send(worker, 'probe');
    expect(await seen.receive()).toEqual({ id: undefined, m: 'probe' });
    expect(told).toEqual(['term expired']);
    expect(dropped).toEqual(['expired late']);
    expect(replies).toEqual([]);
    expect(held.puts).toEqual([]);
    receiver.close();
  });

  it("another send's copy waiting on a run that fails is tried at once as its own attempt, not nak'd (its redelivery would count past its attempts: process_down, never tried)", async () => {
    const { node, held, replies, receiver } = setup();
    const seen = probe(node);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const worker = node.spawn<unknown>((ctx) => async (m) => {
      node.send(seen, { id: ctx.messageId, m });
      await gate;
    });
    node.registry.register('worker', worker);
    const send = (timeout: number, reply: string) => encodeSend({ id: 'shared', to: { name: 'worker' }, ack: 'handled', timeout, attempts: 1, retryOnCrash: false, backoff, expires: 0, reply }, 'payload', 10_000);
    const first = message(send(1, 'r.first'));
    receiver.receive(first.msg);
    (await held.nextGet()).answer(null);
    expect(await seen.receive()).toEqual({ id: 'shared', m: 'payload' }); // the first run, held at the gate
    const second = message(send(60_000, 'r.second'));
    receiver.receive(second.msg); // follows the run
    // the first run's 1 ms timeout ends it (its handler goes on at the gate)
    await vi.waitFor(() => expect(first.told).toEqual(['term timeout']), { timeout: 20_000, interval: 5 });
    (await held.nextGet()).answer(null);
    open();
    expect(await seen.receive()).toEqual({ id: 'shared', m: 'payload' }); // the second send's own attempt
    await vi.waitFor(() => expect(second.told.at(-1)).toBe('ack'), { timeout: 20_000, interval: 5 });
    expect(second.told.filter((t) => t !== 'working')).toEqual(['ack']);
    expect(replies).toEqual([
      { t: 'f', ok: false, n: 1, reason: 'timeout', error: 'not handled within 1 ms' },
      { t: 'f', ok: true, n: 1 },
    ]);
    receiver.close();
  }, 30_000);
});

describe('the supervised receiver after a crash between its record and its ack', () => {
  // JetStream (nats-server 2.9) does not count a message's deliveries across its receiver's death:
  // redelivered to a node restarted a little past the ack wait, it says delivery 1 again (or, restarted
  // later, counts each ack wait that ran out with no receiver as a delivery)
  it.each(['enqueued', 'handled'] as const)("ack '%s': the redelivery of the message the record holds, which JetStream counts as delivery 1, is acked unhandled and answered as delivery 2", async (ack) => {
    const bucket = keptBucket();
    const text = encodeSend({ id: 'crashed', to: { name: 'worker' }, ack, timeout: ack === 'handled' ? 60_000 : -1, attempts: 4, retryOnCrash: false, backoff, expires: 0, reply: 'r.crashed' }, 'payload', 10_000);
    // the first process handles it and records it; it dies before the ack (its hook fails: nothing acked, nothing answered)
    const first = receivingNode(bucket, () => Promise.reject(new Error('SIGKILL')));
    const one = message(text, 1);
    first.receiver.receive(one.msg);
    expect(await first.seen.receive()).toEqual({ id: 'crashed', m: 'payload' });
    expect(await first.drop).toBe('record_unavailable');
    expect(one.told.filter((t) => t !== 'working')).toEqual([]);
    await first.node.shutdown();
    // the node restarted under the same name: JetStream redelivers the same message as delivery 1
    const second = receivingNode(bucket);
    const again = message(text, 1);
    second.receiver.receive(again.msg);
    expect(await second.reply).toEqual({ t: 'f', ok: true, n: 2 });
    expect(again.told).toEqual(['ack']);
    second.node.send(second.worker, 'probe');
    expect(await second.seen.receive()).toEqual({ id: undefined, m: 'probe' }); // not handled a second time
    second.receiver.close();
  });

  it("a redelivery JetStream counts past the record's delivery keeps JetStream's count", async () => {
    const bucket = keptBucket();
    const text = encodeSend({ id: 'counted', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 4, retryOnCrash: false, backoff, expires: 0, reply: 'r.counted' }, 'payload', 10_000);
    const first = receivingNode(bucket, () => Promise.reject(new Error('SIGKILL')));
    first.receiver.receive(message(text, 1).msg);
    expect(await first.drop).toBe('record_unavailable');
    await first.node.shutdown();
    const second = receivingNode(bucket);
    second.receiver.receive(message(text, 3).msg);
    expect(await second.reply).toEqual({ t: 'f', ok: true, n: 3 });
    second.receiver.close();
  });

  it('another send of the handled id (its own message, past the dedupe window) is answered with its own delivery count', async () => {
    const bucket = keptBucket();
    const send = (reply: string) => encodeSend({ id: 'again', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 1, retryOnCrash: false, backoff, expires: 0, reply }, 'payload', 10_000);
    const first = receivingNode(bucket, () => Promise.reject(new Error('SIGKILL')));
    first.receiver.receive(message(send('r.earlier'), 1).msg);
    expect(await first.drop).toBe('record_unavailable');
    await first.node.shutdown();
    const second = receivingNode(bucket);
    const later = message(send('r.later'), 1);
    second.receiver.receive(later.msg);
    expect(await second.reply).toEqual({ t: 'f', ok: true, n: 1 });
    expect(later.told).toEqual(['ack']);
    second.receiver.close();
  });
});

describe('the supervised receiver after a crash while the handler runs', () => {
  // no record of a handled id yet; JetStream's delivery count, which does not follow a message across
  // its receiver's death, may say 1 again (an undercount) or count ack waits with no receiver (an overcount)
  const crashed = async (bucket: HandledBucket, text: string) => {
    const first = receivingNode(bucket, undefined, true);
    const one = message(text, 1);
    first.receiver.receive(one.msg);
    expect((await first.seen.receive()) as unknown).toMatchObject({ m: 'payload' }); // its handler runs...
    first.receiver.close(); // ...when the node dies: nothing recorded, acked or answered
    await first.node.shutdown();
    expect(one.told.filter((t) => t !== 'working')).toEqual([]);
  };

  it("retries: 0 (ack 'handled'): the redelivery JetStream counts as delivery 1 is not handled again: process_down as delivery 2", async () => {
    const bucket = keptBucket();
    const text = encodeSend({ id: 'once', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 1, retryOnCrash: false, backoff, expires: 0, reply: 'r.once' }, 'payload', 10_000);
    await crashed(bucket, text);
    const second = receivingNode(bucket);
    const again = message(text, 1);
    second.receiver.receive(again.msg);
    expect(await second.reply).toEqual({ t: 'f', ok: false, n: 2, reason: 'process_down', error: 'the receiving node stopped while handling it' });
    expect(again.told).toEqual(['term process_down']);
    second.node.send(second.worker, 'probe');
    expect(await second.seen.receive()).toEqual({ id: undefined, m: 'probe' }); // not handled a second time
    second.receiver.close();
  });

  it('retries: 1: a redelivery JetStream counts as delivery 3 after one attempt is the second attempt, handled, not ended as process_down', async () => {
    const bucket = keptBucket();
    const text = encodeSend({ id: 'twice', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 2, retryOnCrash: false, backoff, expires: 0, reply: 'r.twice' }, 'payload', 10_000);
    await crashed(bucket, text);
    const second = receivingNode(bucket);
    const late = message(text, 3);
    second.receiver.receive(late.msg);
    expect(await second.seen.receive()).toEqual({ id: 'twice', m: 'payload' });
    expect(await second.reply).toEqual({ t: 'f', ok: true, n: 2 });
    expect(late.told.filter((t) => t !== 'working')).toEqual(['ack']);
    second.receiver.close();
  });

  it('retries: 1: after the second attempt crashed too, the next redelivery (whatever JetStream counts) ends as process_down after 3', async () => {
    const bucket = keptBucket();
    const text = encodeSend({ id: 'thrice', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 2, retryOnCrash: false, backoff, expires: 0, reply: 'r.thrice' }, 'payload', 10_000);
    await crashed(bucket, text);
    const second = receivingNode(bucket, undefined, true);
    second.receiver.receive(message(text, 2).msg);
    expect(await second.seen.receive()).toEqual({ id: 'thrice', m: 'payload' }); // the second attempt, which dies with its node
    second.receiver.close();
    await second.node.shutdown();
    const third = receivingNode(bucket);
    const last = message(text, 2); // JetStream's count did not move
    third.receiver.receive(last.msg);
    expect(await third.reply).toEqual({ t: 'f', ok: false, n: 3, reason: 'process_down', error: 'the receiving node stopped while handling it' });
    expect(last.told).toEqual(['term process_down']);
    third.receiver.close();
  });

  it('retries: 0: another send of the id (its own reply subject) after the crash is its own first attempt, handled', async () => {
    const bucket = keptBucket();
    const send = (reply: string) => encodeSend({ id: 'resent', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 1, retryOnCrash: false, backoff, expires: 0, reply }, 'payload', 10_000);
    await crashed(bucket, send('r.earlier'));
    const second = receivingNode(bucket);
    second.receiver.receive(message(send('r.later'), 1).msg);
    expect(await second.seen.receive()).toEqual({ id: 'resent', m: 'payload' });
    expect(await second.reply).toEqual({ t: 'f', ok: true, n: 1 });
    second.receiver.close();
  });
});

describe('the supervised receiver and a suspended target (review)', () => {
  /** A receiving node on a test clock whose 'worker' is a GenServer logging what it handles. */
  async function suspendedWorker() {
    const clock = new TestClock({ start: 1_000_000 });
    const node = track({ name: 'recv', clock });
    const kernel = kernelOf(node, 'node');
    const worker = await GenServer.start<string[], { request: 'get'; reply: string[] }, never>(
      node,
      { init: () => [], handleCall: (_req, _from, log) => ({ reply: log, state: log }), handleInfo: (m, log) => [...log, String(m)] },
      undefined,
      { name: 'worker' },
    );
    const replies: WireReply[] = [];
    const receiver = new Receiver(
      { kernel, handled: new HandledIds(100, keptBucket(), 'recv'), ackWaitMs: 30_000, beforeAck: undefined, reply: (_subject, r) => replies.push(r), dropped: () => undefined },
      (n, c, i) => new PidImpl(n, c, i),
    );
    await Sys.suspend(node, worker);
    return { node, clock, kernel, worker, replies, receiver };
  }

  it("ack 'handled': an attempt's timeout takes back the copy the suspended target holds (nak'd for the retry); on resume it is never handled", async () => {
    const { node, clock, kernel, worker, replies, receiver } = await suspendedWorker();
    const text = encodeSend({ id: 'held', to: { name: 'worker' }, ack: 'handled', timeout: 100, attempts: 2, retryOnCrash: false, backoff, expires: 0, reply: 'r.held' }, 'payload', 10_000);
    const { msg, told } = message(text, 1);
    receiver.receive(msg);
    await node.idle();
    const proc = kernel.resolve(worker)!;
    expect(kernel.heldCount(proc)).toBe(1);
    await clock.advance(100);
    expect(kernel.heldCount(proc)).toBe(0);
    expect(node.internals().envelopes).toBe(0);
    expect(told).toEqual(['nak 1']);
    expect(replies).toEqual([{ t: 'a', n: 1, reason: 'timeout', error: 'not handled within 100 ms' }]); // the attempt failed: its retry is JetStream's redelivery
    await Sys.resume(node, worker);
    expect(await GenServer.call(node, worker, 'get')).toEqual([]);
    receiver.close();
  });

  it('close takes back the copy a suspended target holds (JetStream redelivers it): never handled on resume, unrecorded', async () => {
    const { node, kernel, worker, replies, receiver } = await suspendedWorker();
    const text = encodeSend({ id: 'closed', to: { name: 'worker' }, ack: 'handled', timeout: 60_000, attempts: 2, retryOnCrash: false, backoff, expires: 0, reply: 'r.closed' }, 'payload', 10_000);
    const { msg, told } = message(text, 1);
    receiver.receive(msg);
    await node.idle();
    expect(kernel.heldCount(kernel.resolve(worker)!)).toBe(1);
    receiver.close();
    expect(kernel.heldCount(kernel.resolve(worker)!)).toBe(0);
    expect(node.internals().envelopes).toBe(0);
    await Sys.resume(node, worker);
    expect(await GenServer.call(node, worker, 'get')).toEqual([]);
    expect(told.filter((t) => t !== 'working')).toEqual([]);
    expect(replies).toEqual([]);
  });
});
