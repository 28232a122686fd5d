// Two nodes over a private nats-server that goes away mid-traffic (SIGKILL) and comes back on the
// same port and store, or never comes back: every call settles, every monitor fires once, every
// supervised send has an outcome (sent = handled + dead-lettered + reported), nothing wedges after
// the server returns, and a node's shutdown completes while the server is down.
/* eslint-disable keel/no-unmanaged-monitor -- raw monitors across nodes are what this file exercises */
import { connect } from '@nats-io/transport-node';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/Cluster.js';
import { GlobalRegistry } from '../../src/cluster/global/index.js';
import { SupervisedDelivery } from '../../src/cluster/supervised/index.js';
import { natsTransport } from '../../src/cluster/transports/nats.js';
import { sendSupervised, type SendOutcome, type SendOptions } from '../../src/delivery/sendSupervised.js';
import { GenServer, type GenServerSpec } from '../../src/otp/GenServer.js';
import { isDown, type Down } from '../../src/runtime/messages.js';
import type { Node } from '../../src/runtime/types.js';
import { probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';
import { type NatsServer, skipWithoutNats, startNatsServer } from './natsServer.js';

const track = useNodes();

const servers: NatsServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
}, 30_000);

// a rejection nobody handles, anywhere in the file's tests, fails the test it happened in
let unhandled: unknown[] = [];
const onUnhandled = (e: unknown): void => void unhandled.push(e);
process.on('unhandledRejection', onUnhandled);
afterEach(() => {
  const seen = unhandled;
  unhandled = [];
  expect(seen).toEqual([]);
});
afterAll(() => void process.off('unhandledRejection', onUnhandled));

function nextEvent(node: Node, event: string): Promise<void> {
  return new Promise((resolve) => {
    const id = `wait-${event}-${Math.random()}`;
    node.telemetry.attach(id, [event], () => {
      node.telemetry.detach(id);
      resolve();
    });
  });
}

const echo: GenServerSpec<null, { request: number; reply: number }, never, null> = {
  init: () => null,
  handleCall: (n, _from, state) => ({ reply: n, state }),
};

let clusters = 0;

/** Two nodes a and b over `nats`, each with supervised sends and a global registry on the server. */
async function pair(nats: NatsServer, timings: { heartbeatMs: number; suspectAfterMs: number; downAfterMs: number; probeTimeoutMs: number }) {
  const cluster = `outage${++clusters}`;
  const a = track({ name: 'a' });
  const b = track({ name: 'b' });
  const ca = await Cluster.join(a, { transport: natsTransport({ servers: nats.url, cluster }), ...timings });
  const cb = await Cluster.join(b, { transport: natsTransport({ servers: nats.url, cluster }), ...timings });
  await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
  const sa = await SupervisedDelivery.start(a, { cluster, servers: nats.url, attach: ca, ackWaitMs: 2000 });
  const sb = await SupervisedDelivery.start(b, { cluster, servers: nats.url, attach: cb, ackWaitMs: 2000 });
  const ga = await GlobalRegistry.start(a, { cluster: ca, servers: nats.url, bucket: `G_${cluster}` });
  const gb = await GlobalRegistry.start(b, { cluster: cb, servers: nats.url, bucket: `G_${cluster}` });
  return { cluster, a, b, ca, cb, sa, sb, ga, gb };
}

/** Resolves once both nodes' transports report `event`. */
function both(a: Node, b: Node, event: 'disconnected' | 'reconnected'): Promise<unknown> {
  return Promise.all([nextEvent(a, `keel.cluster.${event}`), nextEvent(b, `keel.cluster.${event}`)]);
}

/** The accounting of supervised outcomes: ok, dead-lettered, or reported (failed, no dead letter). */
function account(outcomes: SendOutcome[]): { ok: number; deadLettered: number; reported: number } {
  let ok = 0, deadLettered = 0, reported = 0;
  for (const o of outcomes) {
    if (o.ok) ok++;
    else if (o.deadLetterId !== undefined) deadLettered++;
    else reported++;
  }
  return { ok, deadLettered, reported };
}

const supervised: SendOptions = { ack: 'handled', retries: 3, timeout: 2000, onError: 'dead_letter', backoff: { initialMs: 100, maxMs: 500 } };

describe.skipIf(skipWithoutNats)('two nodes across a nats-server outage', () => {
  it('killed mid-traffic and restarted on the same port and store: every call settles, the monitor fires once (noconnection), every supervised send has its outcome; then new traffic works and shutdown completes', async () => {
    const nats = await startNatsServer({ jetstream: true });
    servers.push(nats);
    const { a, b, ca } = await pair(nats, { heartbeatMs: 100, suspectAfterMs: 300, downAfterMs: 600_000, probeTimeoutMs: 300 });
    const handled: unknown[] = [];
    const handler = b.spawn<unknown>(() => (m) => void handled.push(m));
    const server = await GenServer.start(b, echo, null);
    const target = b.spawn(() => () => undefined);
    const watcher = probe(a);
    watcher.ctx.monitor(target);
    const rt = probe(a);
    b.send(rt, 'rt');
    await rt.receive(); // the monitor has reached b
    const sends: Promise<SendOutcome>[] = [];
    const calls: Promise<{ reply: number } | { code: string | undefined }>[] = [];
    const traffic = (from: number, to: number): void => {
      for (let i = from; i < to; i++) {
        sends.push(sendSupervised(a, handler, i, supervised));
        calls.push(GenServer.call(a, server, i, { timeout: 20_000 }).then((reply) => ({ reply }), (e: { code?: string }) => ({ code: e.code })));
      }
    };
    traffic(0, 20);
    const cut = both(a, b, 'disconnected');
    await nats.kill('SIGKILL');
    await cut;
    traffic(20, 30); // sent while the server is gone
    const back = both(a, b, 'reconnected');
    await nats.restart();
    await back;
    const results = await Promise.all(calls);
    for (const [i, r] of results.entries()) {
      // a reply that made it, or the reconnect's noconnection: never a timeout, never left waiting
      if ('reply' in r) expect(r.reply).toBe(i);
      else expect(r.code).toBe('ERR_NOCONNECTION');
    }
    const down = (await watcher.receive(isDown)) as Down;
    expect(down.reason).toBe('noconnection');
    const outcomes = await Promise.all(sends);
    const counts = account(outcomes);
    expect(counts.ok + counts.deadLettered + counts.reported).toBe(30);
    expect((await a.deadLetters.list()).entries.length).toBe(counts.deadLettered);
    // handled at least once each that is ok; never more handlings than sends
    expect(new Set(handled).size).toBeGreaterThanOrEqual(counts.ok);
    // nothing wedged: the peer is up, a call, a send, a monitor and a supervised send work
    await ca.waitFor(['b']);
    expect(await GenServer.call(a, server, 99, { timeout: 10_000 })).toBe(99);
    expect(await sendSupervised(a, handler, 'after', { ack: 'handled', timeout: 10_000 })).toMatchObject({ ok: true });
    const second = b.spawn(() => () => undefined);
    watcher.ctx.monitor(second);
    b.send(rt, 'rt');
    await rt.receive(); // the monitor has reached b
    b.exit(second, 'kill');
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('killed');
    // the first monitor fired once: the only Down left to come was the second one's
    await watcher.expectNoMessage({ within: 100, match: isDown });
    await Promise.all([a.shutdown(), b.shutdown()]);
  }, 120_000);

  it("down past the NATS client's default 10 reconnect attempts, then back: supervised sends and global names work again, as the cluster does (their connections reconnect for ever too)", async () => {
    const nats = await startNatsServer({ jetstream: true });
    servers.push(nats);
    const { a, b, ca, ga, gb } = await pair(nats, { heartbeatMs: 100, suspectAfterMs: 300, downAfterMs: 1000, probeTimeoutMs: 300 });
    const handled: unknown[] = [];
    const handler = b.spawn<unknown>(() => (m) => void handled.push(m));
    // a client that gives up after more attempts than the client's default (10, 2 s apart): once it
    // has, a connection on the defaults has given up too
    const witness = await connect({ servers: nats.url, maxReconnectAttempts: 12, reconnectTimeWait: 2000 });
    const cut = both(a, b, 'disconnected');
    await nats.kill('SIGKILL');
    await cut;
    await witness.closed();
    const back = both(a, b, 'reconnected');
    await nats.restart();
    await back;
    await ca.waitFor(['b'], { timeoutMs: 30_000 });
    expect(await sendSupervised(a, handler, 'after', { ack: 'handled', timeout: 10_000, retries: 3, backoff: { initialMs: 200, maxMs: 1000 } })).toMatchObject({ ok: true });
    expect(handled).toEqual(['after']);
    const named = b.spawn(() => () => undefined);
    await gb.register('after', named);
    await ga.sync({ timeoutMs: 20_000 });
    expect(ga.whereis('after')).toEqual(named);
    await Promise.all([a.shutdown(), b.shutdown()]);
  }, 120_000);
});

describe.skipIf(skipWithoutNats)('two nodes when the nats-server is gone for good', () => {
  it("calls and monitors are answered (noconnection at downAfterMs), and shutdown completes with every supervised send's outcome known by then (none reported after the node stopped), no unhandled rejection", async () => {
    const nats = await startNatsServer({ jetstream: true });
    servers.push(nats);
    const { a, b } = await pair(nats, { heartbeatMs: 100, suspectAfterMs: 300, downAfterMs: 1000, probeTimeoutMs: 300 });
    const started = probe(a);
    // a handler that never finishes: the sends it takes are the receiver's (consumed) when the server goes
    const stuck = b.spawn<unknown>(() => (m) => {
      a.send(started, m);
      return new Promise<void>(() => undefined);
    });
    const silent = await GenServer.start(b, { init: () => null, handleCall: (_n: number, _from, state: null) => ({ noreply: true, state }) }, null);
    const target = b.spawn(() => () => undefined);
    const watcher = probe(a);
    watcher.ctx.monitor(target);
    const settled = new Set<number>();
    const sends: Promise<SendOutcome>[] = [];
    const send = (i: number, to: Parameters<typeof sendSupervised>[1], deadline?: number): void => {
      sends.push(sendSupervised(a, to, i, { ack: 'handled', timeout: 60_000, onError: 'dead_letter', ...(deadline === undefined ? {} : { deadline }) }).then((o) => (settled.add(i), o)));
    };
    send(0, stuck);
    expect(await started.receive()).toBe(0); // consumed and running on b
    const calls = [1, 2, 3].map((i) => GenServer.call(a, silent, i, { timeout: 60_000 }).then(() => undefined, (e: { code?: string }) => e.code));
    const cut = both(a, b, 'disconnected');
    await nats.kill('SIGKILL');
    await cut;
    for (let i = 1; i <= 5; i++) send(i, stuck, 60_000); // published while the server is gone
    expect(await Promise.all(calls)).toEqual(['ERR_NOCONNECTION', 'ERR_NOCONNECTION', 'ERR_NOCONNECTION']);
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('noconnection');
    const before = Date.now();
    await Promise.all([a.shutdown(), b.shutdown()]);
    // within the shutdown's own bound (5 s by default) and a margin for a loaded machine
    expect(Date.now() - before).toBeLessThan(15_000);
    // every send ended by the time its node said it had stopped
    expect([...settled].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    const outcomes = await Promise.all(sends);
    for (const o of outcomes) expect(o).toMatchObject({ ok: false, reason: 'noproc' });
    const counts = account(outcomes);
    expect(counts.deadLettered + counts.reported).toBe(6);
  }, 120_000);
});

describe.skipIf(skipWithoutNats)("a node's shutdown with a supervised send waiting in the stream (server up)", () => {
  // docs/delivery.md: a send waiting at the node's shutdown ends `noproc`, dead-lettered ("the queue
  // closes last"). Across nodes, the message must first be taken out of the stream (a NATS round
  // trip): the node awaits each shutdown hook's promise before it runs the hooks registered before
  // it, so the dead letter queue is still open when the withdrawal is answered (before, every hook
  // was called at once, and the outcome was `noproc` with `deadLetterUnavailable: true`).
  it("the send ends noproc and is dead-lettered before the queue closes", async () => {
    const nats = await startNatsServer({ jetstream: true });
    servers.push(nats);
    const cluster = `outage${++clusters}`;
    const a = track({ name: 'a' });
    const ca = await Cluster.join(a, { transport: natsTransport({ servers: nats.url, cluster }) });
    const sa = await SupervisedDelivery.start(a, { cluster, servers: nats.url, attach: ca });
    // nobody consumes for node 'c': the message stays in the stream
    const sent = sa.send(a, { node: 'c', name: 'w' }, 'waiting', { deadline: 60_000, onError: 'dead_letter' });
    await a.shutdown();
    expect(await sent).toMatchObject({ ok: false, reason: 'noproc', deadLetterId: '1' });
  }, 60_000);
});
