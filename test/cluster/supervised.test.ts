// Supervised send across nodes through JetStream: a nats-server with JetStream for the file, two
// in-process nodes joined over the in-memory network (the cluster's frames) with their supervised
// sends on NATS, and an OS child process as the receiver that is killed between enqueue and ack.
import { fileURLToPath } from 'node:url';
import { connect } from '@nats-io/transport-node';
import { describe, expect, it, vi } from 'vitest';
import { SupervisedDelivery } from '../../src/cluster/supervised/index.js';
import { encodeSend } from '../../src/cluster/supervised/wire.js';
import { sendSupervised } from '../../src/delivery/sendSupervised.js';
import { Supervisor } from '../../src/otp/Supervisor.js';
import type { Pid } from '../../src/runtime/Pid.js';
import type { Node } from '../../src/runtime/types.js';
import { probe } from '../../src/testing/index.js';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { useNodes } from '../support.js';
import { useNatsServer, skipWithoutNats } from './natsServer.js';
import { memoryPair } from './support.js';

const nats = useNatsServer({ jetstream: true });
const built = useBuiltPackage();
const fork = useChildren();
const track = useNodes();
const RECEIVER = fileURLToPath(new URL('./fixtures/supervised-receiver.mjs', import.meta.url));

let clusters = 0;

/** Two nodes, a and b, in one cluster (a fresh cluster name per test: streams never mix), each with supervised sends. */
async function pair() {
  const cluster = `sup${++clusters}`;
  const { a, b, ca, cb } = await memoryPair(track);
  const sa = await SupervisedDelivery.start(a, { cluster, servers: nats().url, attach: ca, ackWaitMs: 2000 });
  const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 2000 });
  return { cluster, a, b, sa, sb };
}

/** A process on `node` that reports each message it handles, with its message id, to a probe on `report`. */
function recorder(node: Node, report: Node): { pid: Pid; seen: ReturnType<typeof probe> } {
  const seen = probe(report);
  const pid = node.spawn<unknown>((ctx) => (message) => {
    report.send(seen, { id: ctx.messageId, message });
  });
  return { pid, seen };
}

describe.skipIf(skipWithoutNats)('sendSupervised to a pid of another node', () => {
  it("ack 'handled': the handler ran with ctx.messageId = the send's id, then the outcome is ok after 1 attempt", async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, { order: 7 }, { ack: 'handled', id: 'order-7' });
    expect(outcome).toEqual({ ok: true, id: 'order-7', attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'order-7', message: { order: 7 } });
    await Promise.all([sa.close(), sb.close()]);
    expect(sa.internals()).toEqual({ pending: 0, inflight: 0, handledIds: 0 });
    expect(sb.internals()).toMatchObject({ pending: 0, inflight: 0, handledIds: 1 });
  }, 30_000);

  it("ack 'enqueued' (the default): ok once in the receiver's mailbox; the message arrives", async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, 'hello');
    expect(outcome).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toEqual({ id: outcome.id, message: 'hello' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('the same id sent twice: handled once, both outcomes ok (the second a duplicate of the stream: 0 attempts)', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const first = await sendSupervised(a, pid, 'once', { ack: 'handled', id: 'dup-1' });
    const second = await sendSupervised(a, pid, 'once', { ack: 'handled', id: 'dup-1' });
    expect(first).toEqual({ ok: true, id: 'dup-1', attempts: 1 });
    expect(second).toEqual({ ok: true, id: 'dup-1', attempts: 0 });
    // sent together: one send, one outcome
    const [x, y] = await Promise.all([sendSupervised(a, pid, 'twice', { ack: 'handled', id: 'dup-2' }), sendSupervised(a, pid, 'twice', { ack: 'handled', id: 'dup-2' })]);
    expect(x).toEqual({ ok: true, id: 'dup-2', attempts: 1 });
    expect(y).toBe(x);
    const third = await sendSupervised(a, pid, 'last', { ack: 'handled', id: 'dup-3' });
    expect(third.ok).toBe(true);
    const ids = [(await seen.receive()) as { id: string }, (await seen.receive()) as { id: string }, (await seen.receive()) as { id: string }].map((m) => m.id);
    expect(ids).toEqual(['dup-1', 'dup-2', 'dup-3']); // dup-1 and dup-2 once each, in order
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("the same id again past the stream's dedupe (published without Msg-Id): the handled-id record acks it without handling it again", async () => {
    const { cluster, a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    expect(await sendSupervised(a, pid, 'once', { ack: 'handled', id: 'late-dup' })).toEqual({ ok: true, id: 'late-dup', attempts: 1 });
    // what a send of the same id looks like to the stream once its dedupe window has passed: a new message
    const nc = await connect({ servers: nats().url });
    const { jetstream } = await import('@nats-io/jetstream');
    const replies: unknown[] = [];
    const answered = new Promise<void>((resolve) => {
      nc.subscribe('test.reply', { callback: (_e, m) => { replies.push(m.json()); resolve(); } });
    });
    const payload = encodeSend({ id: 'late-dup', to: { pid: [pid.creation, pid.id] }, ack: 'handled', timeout: 5000, attempts: 1, retryOnCrash: false, backoff: { initialMs: 1, factor: 2, maxMs: 1, jitter: 'none' }, expires: 0, reply: 'test.reply' }, 'once', 10_000);
    await nc.flush();
    await jetstream(nc).publish(`keel.${cluster}.sup.b`, payload);
    await answered;
    await nc.close();
    expect(replies).toEqual([{ t: 'f', ok: true, n: 1 }]);
    expect(await sendSupervised(a, pid, 'next', { ack: 'handled', id: 'after' })).toMatchObject({ ok: true });
    expect(((await seen.receive()) as { id: string }).id).toBe('late-dup');
    expect(((await seen.receive()) as { id: string }).id).toBe('after'); // not late-dup a second time
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("a dead pid: outcome noproc after 1 attempt (not retried), one dead letter on the sender's node, none on the receiver's", async () => {
    const { a, b, sa, sb } = await pair();
    const pid = b.spawn(() => () => undefined);
    b.exit(pid, 'kill');
    const outcome = await sendSupervised(a, pid, { lost: true }, { ack: 'handled', retries: 3, onError: 'dead_letter', backoff: { initialMs: 1, maxMs: 1 } });
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc', deadLetterId: '1' });
    const entry = await a.deadLetters.get('1');
    expect(entry).toMatchObject({ message: { lost: true }, reason: 'noproc' });
    expect((await b.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('an unregistered name on another node: noproc after every attempt (a name may come), dead-lettered by the sender', async () => {
    const { a, b, sa, sb } = await pair();
    const outcome = await sa.send(a, { node: 'b', name: 'nobody' }, 'hi', { retries: 2, onError: 'dead_letter', backoff: { initialMs: 1, maxMs: 1 } });
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc', attempts: 3, deadLetterId: '1' });
    expect(await a.deadLetters.get('1')).toMatchObject({ recipient: 'nobody@b', message: 'hi', reason: 'noproc' });
    expect((await b.deadLetters.list()).entries).toEqual([]);
    // a name that is there: delivered
    const { pid, seen } = recorder(b, a);
    b.registry.register('billing', pid);
    expect(await sa.send(a, { node: 'b', name: 'billing' }, 'invoice', { ack: 'handled' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toMatchObject({ message: 'invoice' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('past max deliveries (a handler that always crashes, retryOnCrash): failed with process_down after retries + 1, one dead letter', async () => {
    const { a, b, sa, sb } = await pair();
    const crashes = probe(a);
    await Supervisor.start(b, [{ id: 'crasher', start: (ctx) => ctx.spawnLink<string>(() => (m) => {
      a.send(crashes, m);
      throw new Error(`poison ${m}`);
    }, { name: 'crasher' }) }], { maxRestarts: 10 });
    const outcome = await sa.send(a, { node: 'b', name: 'crasher' }, 'pill', { ack: 'handled', retries: 2, retryOnCrash: true, onError: 'dead_letter', backoff: { initialMs: 1, maxMs: 1 } });
    expect(outcome).toMatchObject({ ok: false, reason: 'process_down', attempts: 3, deadLetterId: '1' });
    expect(String((outcome as { lastError: unknown }).lastError)).toContain('poison pill');
    for (let i = 0; i < 3; i++) expect(await crashes.receive()).toBe('pill');
    expect((await a.deadLetters.list()).entries).toHaveLength(1);
    expect((await b.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("ack 'handled' with a handler that never finishes: each attempt times out on the receiver, the outcome is timeout after retries + 1", async () => {
    const { a, b, sa, sb } = await pair();
    const started = probe(a);
    const stuck = b.spawn<string>(() => (m) => {
      a.send(started, m);
      return new Promise<void>(() => undefined);
    });
    const outcome = await sendSupervised(a, stuck, 'slow', { ack: 'handled', timeout: 50, retries: 1, onError: 'dead_letter', backoff: { initialMs: 1, maxMs: 1 } });
    expect(outcome).toMatchObject({ ok: false, reason: 'timeout', attempts: 2, lastError: 'not handled within 50 ms', deadLetterId: '1' });
    expect(await started.receive()).toBe('slow'); // the first copy started; the second was taken back unstarted
    expect(sb.internals().inflight).toBe(0);
    b.exit(stuck, 'kill');
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("a node nobody consumes for: the sender gives up at its deadline (timeout, dead-lettered); the message is dropped as expired when the node comes", async () => {
    const { cluster, a, sa } = await pair();
    const outcome = await sa.send(a, { node: 'late', name: 'worker' }, 'too late', { deadline: 100, onError: 'dead_letter' });
    expect(outcome).toMatchObject({ ok: false, reason: 'timeout', attempts: 0, deadLetterId: '1' });
    const late = track({ name: 'late' });
    const { pid, seen } = recorder(late, a);
    late.registry.register('worker', pid);
    const expired = new Promise<Record<string, unknown>>((resolve) => late.telemetry.attach('t', ['keel.cluster.supervised_dropped'], (_e, _m, meta) => resolve(meta as Record<string, unknown>)));
    const sl = await SupervisedDelivery.start(late, { cluster, servers: nats().url });
    expect(await expired).toMatchObject({ node: 'late', reason: 'expired', id: outcome.id });
    expect(await sa.send(a, { node: 'late', name: 'worker' }, 'in time', { ack: 'handled' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toMatchObject({ message: 'in time' }); // not 'too late'
    await Promise.all([sa.close(), sl.close()]);
  }, 30_000);

  it("the sender's death ends its send with aborted", async () => {
    const { a, b, sa, sb } = await pair();
    const started = probe(a);
    const report = probe(a);
    const stuck = b.spawn<string>(() => (m) => {
      a.send(started, m);
      return new Promise<void>(() => undefined);
    });
    const sender = a.spawn<'go'>((ctx) => () => {
      void sendSupervised(ctx, stuck, 'wait', { ack: 'handled', timeout: 60_000 }).then((o) => a.send(report, o));
    });
    a.send(sender, 'go');
    expect(await started.receive()).toBe('wait');
    expect(sa.internals().pending).toBe(1);
    a.exit(sender, 'kill');
    expect(await report.receive()).toMatchObject({ ok: false, reason: 'aborted', lastError: 'the sender has exited' });
    expect(sa.internals().pending).toBe(0);
    b.exit(stuck, 'kill');
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('a signal aborted before the send: nothing is published, and onError applies (a dead letter), as on one node (found in review)', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, { never: true }, { ack: 'handled', signal: AbortSignal.abort('stop'), onError: 'dead_letter' });
    expect(outcome).toMatchObject({ ok: false, reason: 'aborted', attempts: 0, lastError: 'stop', deadLetterId: '1' });
    expect(await a.deadLetters.get('1')).toMatchObject({ message: { never: true }, reason: 'aborted' });
    expect(sa.internals().pending).toBe(0);
    // the id is free again: a send of it now is delivered, not the aborted one's outcome once more
    const { pid: next, seen } = recorder(b, a);
    const again = await sendSupervised(a, next, 'now', { ack: 'handled', id: outcome.id });
    expect(again).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect(await seen.receive()).toEqual({ id: outcome.id, message: 'now' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('a malformed message on the stream is terminated with an event, and what follows is delivered', async () => {
    const { cluster, a, b, sa, sb } = await pair();
    const dropped = new Promise<Record<string, unknown>>((resolve) => b.telemetry.attach('t', ['keel.cluster.supervised_dropped'], (_e, _m, meta) => resolve(meta as Record<string, unknown>)));
    const nc = await connect({ servers: nats().url });
    const { jetstream } = await import('@nats-io/jetstream');
    await jetstream(nc).publish(`keel.${cluster}.sup.b`, '{"v":1,"__proto__":{"x":1},"id":"bad"}', { msgID: 'bad' });
    await nc.close();
    expect(await dropped).toMatchObject({ node: 'b', reason: 'malformed' });
    const { pid, seen } = recorder(b, a);
    expect(await sendSupervised(a, pid, 'fine', { ack: 'handled' })).toMatchObject({ ok: true });
    expect(await seen.receive()).toMatchObject({ message: 'fine' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('start refuses durations past what JetStream can hold (nanoseconds in an int64), and a getter that throws, with typed errors (found in review)', async () => {
    const node = track({ name: 'huge' });
    for (const key of ['ackWaitMs', 'dedupeWindowMs', 'handledRetentionMs'] as const) {
      const e = await SupervisedDelivery.start(node, { cluster: 'huge1', servers: nats().url, [key]: 2 ** 53 }).then(() => undefined, (x: unknown) => x);
      expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    const throwing = { servers: nats().url, get cluster(): string { throw new Error('boom'); } };
    const e = await SupervisedDelivery.start(node, throwing).then(() => undefined, (x: unknown) => x);
    expect(e).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    // a misspelt option is refused, never ignored
    const misspelt = await SupervisedDelivery.start(node, { cluster: 'huge1', servers: nats().url, ackWaitMS: 5 } as never).then(() => undefined, (x: unknown) => x);
    expect(misspelt).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('ackWaitMS') });
  }, 30_000);

  it('hostile arguments are typed errors at the send', async () => {
    const { a, sa, sb } = await pair();
    const throwing = { node: 'b', get name(): string { throw new Error('boom'); } };
    expect(() => sa.send(a, throwing, 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => sa.send(a, new Proxy({ node: 'b', name: 'n' }, {}), 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => sa.send(a, { node: 'b.c', name: 'n' }, 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => sa.send(a, { node: 'a', name: 'n' }, 'x')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => sa.send(a, { node: 'b', name: 'n' }, 'x', { id: 'a\r\nb' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(() => sa.send(a, { node: 'b', name: 'n' }, 'x', { id: 'x'.repeat(2000) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    // two lone surrogates would share one handled-id record key (both encode as U+FFFD)
    expect(() => sa.send(a, { node: 'b', name: 'n' }, 'x', { id: '\uD800' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    await expect(SupervisedDelivery.start(a, { cluster: 'bad.name', servers: nats().url })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(SupervisedDelivery.start(a, { cluster: 'c', servers: nats().url, ackWaitMs: Number.NaN })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(sa.internals().pending).toBe(0);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('the dead letter queue and pids of other nodes', () => {
  it('retries a dead letter to a live pid of another node through the cluster: delivered, the entry removed', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const id = await a.deadLetters.add({ recipient: pid, message: { order: 9 }, reason: 'noconnection' });
    expect(await a.deadLetters.retry([id])).toEqual([{ id, ok: true }]);
    expect(((await seen.receive()) as { message: unknown }).message).toEqual({ order: 9 });
    expect((await a.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('duplicates and expiry on the receiver', () => {
  it('two copies of one id arriving together (past the dedupe window) are handled once', async () => {
    const { cluster, a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const nc = await connect({ servers: nats().url });
    const { jetstream } = await import('@nats-io/jetstream');
    const replies: unknown[] = [];
    const answered = new Promise<void>((resolve) => {
      nc.subscribe('test.reply2', { callback: (_e, m) => { replies.push(m.json()); if (replies.length === 2) resolve(); } });
    });
    const payload = encodeSend({ id: 'twin', to: { pid: [pid.creation, pid.id] }, ack: 'handled', timeout: 5000, attempts: 1, retryOnCrash: false, backoff: { initialMs: 1, factor: 2, maxMs: 1, jitter: 'none' }, expires: 0, reply: 'test.reply2' }, 'twin', 10_000);
    await nc.flush();
    const js = jetstream(nc);
    await Promise.all([js.publish(`keel.${cluster}.sup.b`, payload), js.publish(`keel.${cluster}.sup.b`, payload)]);
    await answered;
    await nc.close();
    // the copy that waited behind the running one is acked from the record (at once, or on its redelivery)
    expect(replies).toHaveLength(2);
    for (const r of replies) expect(r).toMatchObject({ t: 'f', ok: true });
    expect(await sendSupervised(a, pid, 'next', { ack: 'handled', id: 'after-twin' })).toMatchObject({ ok: true });
    expect(((await seen.receive()) as { id: string }).id).toBe('twin');
    expect(((await seen.receive()) as { id: string }).id).toBe('after-twin'); // not twin a second time
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('a message still queued when its sender gave up (deadline) is taken back, not handled after its dead letter', async () => {
    const { a, b, sa, sb } = await pair();
    const seen = probe(a);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const busy = b.spawn<string>((ctx) => (m) => {
      b.send(seen as unknown as Pid<unknown>, { id: ctx.messageId, message: m });
      return m === 'first' ? gate : undefined;
    });
    b.send(busy, 'first');
    expect(await seen.receive()).toMatchObject({ message: 'first' });
    const outcome = await sendSupervised(a, busy, 'late', { ack: 'handled', deadline: 500, timeout: 60_000, onError: 'dead_letter' });
    expect(outcome).toMatchObject({ ok: false, reason: 'timeout', deadLetterId: '1' });
    open();
    expect(await sendSupervised(a, busy, 'after', { ack: 'handled' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toMatchObject({ message: 'after' }); // 'late' was dead-lettered: not handled as well
    expect(sb.internals().inflight).toBe(0);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('the same id sent again within the dedupe window after it failed (dead-lettered) is delivered, not reported ok unhandled', async () => {
    const { a, b, sa, sb } = await pair();
    const failed = await sa.send(a, { node: 'b', name: 'later' }, 'job', { id: 'again-1', onError: 'dead_letter' });
    expect(failed).toMatchObject({ ok: false, reason: 'noproc', deadLetterId: '1' });
    const { pid, seen } = recorder(b, a);
    b.registry.register('later', pid);
    const retried = await sa.send(a, { node: 'b', name: 'later' }, 'job', { id: 'again-1', ack: 'handled' });
    expect(retried).toEqual({ ok: true, id: 'again-1', attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'again-1', message: 'job' });
    // and once handled, the same id again is a duplicate: ok, not handled a second time
    expect(await sa.send(a, { node: 'b', name: 'later' }, 'job', { id: 'again-1', ack: 'handled' })).toEqual({ ok: true, id: 'again-1', attempts: 0 });
    expect(await sa.send(a, { node: 'b', name: 'later' }, 'next', { id: 'again-2', ack: 'handled' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'again-2', message: 'next' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('another send of an id whose handler is running here shares its run: handled once, both senders told ok', async () => {
    const { cluster, a, b, sa, sb } = await pair();
    const seen = probe(a);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const slow = b.spawn<string>((ctx) => (m) => {
      b.send(seen as unknown as Pid<unknown>, { id: ctx.messageId, message: m });
      return gate;
    });
    const first = sendSupervised(a, slow, 'job', { ack: 'handled', id: 'shared', timeout: 20_000 });
    expect(await seen.receive()).toEqual({ id: 'shared', message: 'job' });
    const nc = await connect({ servers: nats().url });
    const { jetstream } = await import('@nats-io/jetstream');
    const replied = new Promise<unknown>((resolve) => nc.subscribe('test.follow', { callback: (_e, m) => resolve(m.json()) }));
    await nc.flush();
    const payload = encodeSend({ id: 'shared', to: { pid: [slow.creation, slow.id] }, ack: 'handled', timeout: 20_000, attempts: 1, retryOnCrash: false, backoff: { initialMs: 1, factor: 2, maxMs: 1, jitter: 'none' }, expires: 0, reply: 'test.follow' }, 'job', 10_000);
    await jetstream(nc).publish(`keel.${cluster}.sup.b`, payload, { msgID: 'shared-other' });
    // the copy is with the receiver (delivered, not acked) while the handler still runs
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(nc);
    while ((await jsm.consumers.info(`KEEL_${cluster}_SUPERVISED`, 'sup_b')).num_ack_pending < 2);
    open();
    expect(await first).toEqual({ ok: true, id: 'shared', attempts: 1 });
    expect(await replied).toEqual({ t: 'f', ok: true, n: 1 });
    await nc.close();
    expect(await sendSupervised(a, slow, 'next', { ack: 'handled', id: 'shared-after' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'shared-after', message: 'next' }); // not 'shared' twice
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("a lost reply (core NATS, at most once) does not turn a handled message into a timeout and a dead letter", async () => {
    const cluster = `sup${++clusters}`;
    const { a, b, ca, cb } = await memoryPair(track);
    // the sender's connection loses every reply on its supervised reply subject (a disconnect at the wrong moment)
    const real = await connect({ servers: nats().url, inboxPrefix: `_INBOX.keel.${cluster}.a` });
    const lossy = Object.create(real) as typeof real;
    lossy.subscribe = ((subject: string, opts?: Parameters<typeof real.subscribe>[1]) =>
      subject.includes('.sup.') ? real.subscribe(subject, { ...opts, callback: () => undefined }) : real.subscribe(subject, opts)) as typeof real.subscribe;
    const sa = await SupervisedDelivery.start(a, { cluster, connection: lossy, attach: ca, ackWaitMs: 1000 });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 1000 });
    const { pid, seen } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, 'paid', { ack: 'handled', timeout: 2000, onError: 'dead_letter', id: 'lost-reply' });
    expect(await seen.receive()).toEqual({ id: 'lost-reply', message: 'paid' });
    expect(outcome).toMatchObject({ ok: true, id: 'lost-reply' });
    expect((await a.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
    await real.close();
  }, 30_000);

  it('an id past 1024 bytes of UTF-8 is a typed error at the send (its record key would not fit NATS: handled, then reported timeout)', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const id = '\u20ac'.repeat(1024);
    expect(() => sendSupervised(a, pid, 'wide', { ack: 'handled', id, timeout: 2000 })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    const fits = '\u20ac'.repeat(341); // 1023 bytes
    expect(await sendSupervised(a, pid, 'wide', { ack: 'handled', id: fits, timeout: 2000 })).toEqual({ ok: true, id: fits, attempts: 1 });
    expect(await seen.receive()).toEqual({ id: fits, message: 'wide' });
    expect(sb.internals().inflight).toBe(0);
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it("a send after close() publishes nothing and applies onError (a dead letter; 'raise' rejects), as a send on a stopped node does (found in review)", async () => {
    const { a, b, sa, sb } = await pair();
    const { pid } = recorder(b, a);
    await sa.close();
    const outcome = await sa.send(a, pid, { late: true }, { onError: 'dead_letter', id: 'after-close' });
    expect(outcome).toMatchObject({ ok: false, id: 'after-close', reason: 'noproc', attempts: 0, deadLetterId: '1' });
    expect(await a.deadLetters.get('1')).toMatchObject({ message: { late: true }, reason: 'noproc' });
    const raised = await sa.send(a, pid, 'x', { onError: 'raise' }).then(() => undefined, (e: unknown) => e);
    expect(raised).toMatchObject({ code: 'ERR_DELIVERY', outcome: { ok: false, reason: 'noproc', attempts: 0 } });
    await sb.close();
  }, 30_000);

  it('close() on a borrowed connection leaves no subscription of its own behind', async () => {
    const cluster = `sup${++clusters}`;
    const n = track({ name: 'solo' });
    const nc = await connect({ servers: nats().url });
    const subscriptions = (): number => (nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size();
    await (await (await import('@nats-io/jetstream')).jetstreamManager(nc)).getAccountInfo(); // the connection's own request inbox, which stays
    const before = subscriptions();
    const sd = await SupervisedDelivery.start(n, { cluster, connection: nc });
    expect(subscriptions()).toBeGreaterThan(before);
    await sd.close();
    expect(subscriptions()).toBe(before);
    expect(nc.isClosed()).toBe(false);
    await nc.close();
  }, 30_000);

  it("a sender that dies before the receiver took its message: the message is taken out of the stream, so it is dead-lettered and not also handled", async () => {
    const { cluster, a, sa } = await pair();
    const report = probe(a);
    const sender = a.spawn<'go'>((ctx) => () => {
      void sa.send(ctx, { node: 'later', name: 'worker' }, 'orphan', { ack: 'handled', timeout: 60_000, onError: 'dead_letter', id: 'orphan' }).then((o) => a.send(report, o));
      return new Promise<void>(() => undefined);
    });
    a.send(sender, 'go');
    // the message is in the stream (nobody consumes for 'later' yet)
    const nc = await connect({ servers: nats().url });
    const jsm = await (await import('@nats-io/jetstream')).jetstreamManager(nc);
    while ((await jsm.streams.info(`KEEL_${cluster}_SUPERVISED`)).state.messages < 1);
    a.exit(sender, 'kill');
    expect(await report.receive()).toMatchObject({ ok: false, reason: 'aborted', deadLetterId: '1' });
    const later = track({ name: 'later' });
    const { pid, seen } = recorder(later, a);
    later.registry.register('worker', pid);
    const sl = await SupervisedDelivery.start(later, { cluster, servers: nats().url });
    expect(await sa.send(a, { node: 'later', name: 'worker' }, 'next', { ack: 'handled' })).toMatchObject({ ok: true, attempts: 1 });
    expect(await seen.receive()).toMatchObject({ message: 'next' }); // not 'orphan': dead-lettered, so not handled as well
    await nc.close();
    await Promise.all([sa.close(), sl.close()]);
  }, 30_000);

  it('a publish whose acknowledgement is lost (stored, but the sender timed out waiting): not dead-lettered when it is handled', async () => {
    const cluster = `sup${++clusters}`;
    const { a, b, ca, cb } = await memoryPair(track);
    const { errors } = await import('@nats-io/transport-node');
    const real = await connect({ servers: nats().url, inboxPrefix: `_INBOX.keel.${cluster}.a` });
    const lossy = Object.create(real) as typeof real;
    let lost = 0;
    // the first publish to the stream reaches it, and its acknowledgement is lost on the way back
    lossy.request = (async (subject: string, data?: Uint8Array | string, opts?: Parameters<typeof real.request>[2]) => {
      const answer = await real.request(subject, data, opts);
      if (subject.startsWith(`keel.${cluster}.sup.`) && lost++ === 0) throw new errors.TimeoutError();
      return answer;
    }) as typeof real.request;
    const sa = await SupervisedDelivery.start(a, { cluster, connection: lossy, attach: ca, ackWaitMs: 2000 });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 2000 });
    const { pid, seen } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, 'once', { ack: 'handled', onError: 'dead_letter', id: 'lost-ack' });
    expect(await seen.receive()).toEqual({ id: 'lost-ack', message: 'once' });
    expect(outcome).toMatchObject({ ok: true, id: 'lost-ack' });
    expect((await a.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
    await real.close();
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('the receiving side closed during sends (found in review)', () => {
  it("close() while a 'handled' copy is still queued in its target's mailbox: taken back and redelivered, handled once (not by the old run, then again)", async () => {
    const { cluster, a, b, sa, sb } = await pair();
    const seen = probe(a);
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const pid = b.spawn<unknown>((ctx) => async (message) => {
      a.send(seen, { id: ctx.messageId, message });
      if (message === 'block') await gate;
    });
    b.send(pid, 'block');
    expect(await seen.receive()).toEqual({ id: undefined, message: 'block' });
    const outcome = sendSupervised(a, pid, 'queued', { ack: 'handled', timeout: 60_000, retries: 1, backoff: { initialMs: 1, maxMs: 1 }, onError: 'dead_letter', id: 'queued-at-close' });
    await vi.waitFor(() => expect(sb.internals().inflight).toBe(1), { timeout: 20_000, interval: 20 });
    await sb.close();
    open();
    const sb2 = await SupervisedDelivery.start(b, { cluster, servers: nats().url, ackWaitMs: 2000 });
    expect(await outcome).toEqual({ ok: true, id: 'queued-at-close', attempts: 2 });
    expect(await seen.receive()).toEqual({ id: 'queued-at-close', message: 'queued' });
    expect(await sendSupervised(a, pid, 'after', { ack: 'handled', id: 'after-close' })).toMatchObject({ ok: true });
    expect(await seen.receive()).toEqual({ id: 'after-close', message: 'after' }); // not 'queued' a second time
    expect((await a.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb2.close()]);
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('the sender ends a send of an id the stream saw already (found in review)', () => {
  it('aborted while its duplicate publish (nothing of it stored) is looked up: onError applies (a dead letter), nothing is handled', async () => {
    const cluster = `sup${++clusters}`;
    const { a, b, ca, cb } = await memoryPair(track);
    const real = await connect({ servers: nats().url, inboxPrefix: `_INBOX.keel.${cluster}.a` });
    const hooked = Object.create(real) as typeof real;
    let onPublish: (() => void) | undefined;
    // the stream's answer to a publish reaches the sender after `onPublish` ran
    hooked.request = (async (subject: string, data?: Uint8Array | string, opts?: Parameters<typeof real.request>[2]) => {
      const answer = await real.request(subject, data, opts);
      if (subject.startsWith(`keel.${cluster}.sup.`)) onPublish?.();
      return answer;
    }) as typeof real.request;
    const sa = await SupervisedDelivery.start(a, { cluster, connection: hooked, attach: ca, ackWaitMs: 2000 });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 2000 });
    const { pid, seen } = recorder(b, a);
    const dead = b.spawn(() => () => undefined);
    b.exit(dead, 'kill');
    expect(await sendSupervised(a, dead, 'twice', { id: 'dup-abort', onError: 'dead_letter' })).toMatchObject({ ok: false, reason: 'noproc', deadLetterId: '1' });
    const controller = new AbortController();
    onPublish = () => controller.abort('stop');
    const outcome = await sendSupervised(a, pid, 'twice', { id: 'dup-abort', onError: 'dead_letter', signal: controller.signal });
    onPublish = undefined;
    expect(outcome).toEqual({ ok: false, id: 'dup-abort', reason: 'aborted', attempts: 0, firstError: 'stop', lastError: 'stop', deadLetterId: '2' });
    expect((await a.deadLetters.list()).entries.map((e) => e.message)).toEqual(['twice', 'twice']);
    expect(await sendSupervised(a, pid, 'next', { ack: 'handled', id: 'after-dup-abort' })).toMatchObject({ ok: true });
    expect(await seen.receive()).toEqual({ id: 'after-dup-abort', message: 'next' }); // 'twice' was not handled
    await Promise.all([sa.close(), sb.close()]);
    await real.close();
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('hostile send options across nodes (found in review)', () => {
  it("a backoff that is not a whole number of nanoseconds (as full jitter draws) still delays the retry: JetStream ignores such a nak's delay", async () => {
    const { a, sa, sb } = await pair();
    const started = Date.now();
    const outcome = await sa.send(a, { node: 'b', name: 'nobody' }, 'x', { retries: 1, backoff: { initialMs: 1500.0000001, maxMs: 1500.0000001, jitter: 'none' }, id: 'fraction' });
    expect(outcome).toEqual({ ok: false, id: 'fraction', reason: 'noproc', attempts: 2, firstError: 'noproc', lastError: 'noproc' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500); // the retry came after its backoff (before: at once)
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('a zero initial backoff whose factor overflows to Infinity: delivered once, ok, as on one node (no NaN bound)', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const options = { ack: 'handled', retries: 3, backoff: { initialMs: 0, factor: 1e308 }, onError: 'dead_letter', id: 'nan-bound' } as const;
    expect(await sendSupervised(a, pid, 'once', options)).toEqual({ ok: true, id: 'nan-bound', attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'nan-bound', message: 'once' });
    expect((await a.deadLetters.list()).entries).toEqual([]);
    await Promise.all([sa.close(), sb.close()]);
    expect(sa.internals()).toEqual({ pending: 0, inflight: 0, handledIds: 0 });
  }, 30_000);

  it('retries near 2^53 (no deadline): the sender bounds its wait without counting every backoff, delivered, ok', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    expect(await sendSupervised(a, pid, 'many', { retries: Number.MAX_SAFE_INTEGER - 1, id: 'many-retries' })).toEqual({ ok: true, id: 'many-retries', attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'many-retries', message: 'many' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('retries = 2^53 - 1 (attempts past a safe integer on the wire): delivered and ok, not dropped as malformed with no outcome', async () => {
    const { a, b, sa, sb } = await pair();
    const { pid, seen } = recorder(b, a);
    const outcome = await sendSupervised(a, pid, 'most', { ack: 'handled', timeout: Infinity, retries: Number.MAX_SAFE_INTEGER, id: 'most-retries' });
    expect(outcome).toEqual({ ok: true, id: 'most-retries', attempts: 1 });
    expect(await seen.receive()).toEqual({ id: 'most-retries', message: 'most' });
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('handled once across a crash of the receiving node', () => {
  it('SIGKILL between enqueue and ack, restarted under the same name: JetStream redelivers, the record acks it unhandled; sent = handled + dead-lettered', async () => {
    const cluster = `sup${++clusters}`;
    const sender = track({ name: 'send' });
    const sd = await SupervisedDelivery.start(sender, { cluster, servers: nats().url, ackWaitMs: 1000 });
    type Report = { ready?: number; handled?: string; n?: number; beforeAck?: string };
    const handled: string[] = [];
    const first = fork<Report>(RECEIVER, [built(), nats().url, cluster, 'crash']);
    first.onMessage((m) => m.handled !== undefined && handled.push(m.handled));
    await first.next((m) => m.ready !== undefined);
    const options = { ack: 'handled', timeout: 20_000, retries: 3, onError: 'dead_letter', backoff: { initialMs: 10, maxMs: 10 } } as const;
    const sends = [sd.send(sender, { node: 'recv', name: 'worker' }, { n: 1 }, { ...options, id: 'm-1' })];
    expect(await first.next((m) => m.beforeAck !== undefined)).toEqual({ beforeAck: 'm-1' });
    expect(handled).toEqual(['m-1']); // handled and recorded, not acked
    await first.kill();
    const second = fork<Report>(RECEIVER, [built(), nats().url, cluster, 'normal']);
    second.onMessage((m) => m.handled !== undefined && handled.push(m.handled));
    await second.next((m) => m.ready !== undefined);
    sends.push(sd.send(sender, { node: 'recv', name: 'worker' }, { n: 2 }, { ...options, id: 'm-2' }));
    sends.push(sd.send(sender, { node: 'recv', name: 'worker' }, { n: 3 }, { ...options, id: 'm-3' }));
    const outcomes = await Promise.all(sends);
    // m-1: redelivered to the restarted node (a second delivery), acked from the record without handling.
    // 2 when the restarted node pulls as the ack wait runs out (JetStream's delivery 2), and when it starts
    // a little later (JetStream says delivery 1 again: the record's delivery 1, plus this one); more when
    // the first process still pulled as the ack wait ran out (a slow kill: delivery 2 went to it) or the
    // restart came later still (JetStream then counts each ack wait that ran out with no receiver)
    expect(outcomes[0]).toMatchObject({ ok: true, id: 'm-1' });
    expect(outcomes[0]!.attempts).toBeGreaterThanOrEqual(2);
    expect(outcomes.slice(1)).toEqual([
      { ok: true, id: 'm-2', attempts: 1 },
      { ok: true, id: 'm-3', attempts: 1 },
    ]);
    const dead = (await sender.deadLetters.list()).entries;
    expect(handled.length + dead.length).toBe(3);
    expect([...handled].sort()).toEqual(['m-1', 'm-2', 'm-3']);
    expect(dead).toEqual([]);
    await second.kill();
    await sd.close();
  }, 60_000);
});

describe.skipIf(skipWithoutNats)('at most one handling with retries: 0 across a crash of the receiving node', () => {
  it("SIGKILL while the handler runs, restarted under the same name: the redelivery is not handled again; process_down after 2 deliveries, dead-lettered", async () => {
    const cluster = `sup${++clusters}`;
    const sender = track({ name: 'send' });
    const sd = await SupervisedDelivery.start(sender, { cluster, servers: nats().url, ackWaitMs: 1000 });
    type Report = { ready?: number; handled?: string; n?: number; hanging?: boolean };
    const handled: string[] = [];
    const first = fork<Report>(RECEIVER, [built(), nats().url, cluster, 'hang']);
    first.onMessage((m) => m.handled !== undefined && handled.push(m.handled));
    await first.next((m) => m.ready !== undefined);
    const sent = sd.send(sender, { node: 'recv', name: 'worker' }, { n: 1 }, { ack: 'handled', timeout: 20_000, retries: 0, onError: 'dead_letter', id: 'once' });
    expect(await first.next((m) => m.hanging === true)).toEqual({ handled: 'once', n: 1, hanging: true });
    await first.kill();
    const second = fork<Report>(RECEIVER, [built(), nats().url, cluster, 'normal']);
    second.onMessage((m) => m.handled !== undefined && handled.push(m.handled));
    await second.next((m) => m.ready !== undefined);
    // JetStream counts the redelivery as 1 again, or 2, or more (and may deliver it twice to the
    // restarted node): the record of the attempt started before the crash makes it the second
    expect(await sent).toMatchObject({ ok: false, id: 'once', reason: 'process_down', attempts: 2, lastError: 'the receiving node stopped while handling it' });
    expect(handled).toEqual(['once']);
    const dead = (await sender.deadLetters.list()).entries;
    expect(dead.map((e) => [e.reason, e.message])).toEqual([['process_down', { n: 1 }]]);
    await second.kill();
    await sd.close();
  }, 60_000);
});
