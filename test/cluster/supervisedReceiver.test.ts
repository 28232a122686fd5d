// The receiving side of supervised sends across nodes, without NATS: the handled-id record over a
// bucket whose answers the test holds back, and JetStream messages as plain objects that record
// what the receiver did with them (found in review).
import { afterEach, describe, expect, it, vi } from 'vitest';
import { type HandledBucket, HandledIds } from '../../src/cluster/supervised/HandledIds.js';
import { type InboundMessage, Receiver } from '../../src/cluster/supervised/Receiver.js';
import { encodeSend, type WireReply } from '../../src/cluster/supervised/wire.js';
import { kernelOf } from '../../src/runtime/kernel.js';
import { PidImpl } from '../../src/runtime/Pid.js';
import { probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

afterEach(() => {
  vi.restoreAllMocks();
});

/** A bucket whose gets wait until the test answers them. */
function heldBucket() {
  const gets: { key: string; answer(entry: { operation: string } | null): void }[] = [];
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
