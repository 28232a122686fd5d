/* eslint-disable keel/no-unmanaged-monitor, keel/no-raw-send -- this file tests the kernel's own primitives across nodes: raw sends, monitors and links are what it exercises */
// Remote pids over the in-memory network: send, call, monitor, link and exit signals with Erlang's
// semantics, and every tie answered once with `noconnection` when a peer goes down.
import { describe, expect, it } from 'vitest';
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { ProbeResult, Transport, TransportHandler } from '../../src/cluster/Transport.js';
import { CallExitError, KeelError, NoProcError, PeersTimeoutError } from '../../src/errors.js';
import { GenServer, type GenServerSpec } from '../../src/otp/GenServer.js';
import { CastMessage } from '../../src/otp/internal/server.js';
import { callListening, type CallListener } from '../../src/otp/internal/calls.js';
import { isDown, isExit, type Down, type Exit } from '../../src/runtime/messages.js';
import type { Pid } from '../../src/runtime/Pid.js';
import type { Node } from '../../src/runtime/types.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { deferred, failure, useNodes } from '../support.js';
import { crossTies, memoryPair, probedTransport } from './support.js';

const track = useNodes();

/** Resolves once what `from` sent before it has reached `to` (frames of one pair arrive in order). */
async function roundTrip(from: Node, to: Node): Promise<void> {
  const p = probe(to);
  from.send(p, 'round-trip');
  await p.receive((m) => m === 'round-trip');
  to.exit(p, 'kill');
}

/** The next `event` on `node`'s telemetry (the cluster's timers are unref'd: a pending promise keeps the test's loop alive). */
function nextEvent(node: Node, event: string): Promise<{ measurements: Record<string, number>; metadata: Record<string, unknown> }> {
  const id = `next-${event}-${Math.random()}`;
  return new Promise((resolve) => {
    const keepAlive = setInterval(() => undefined, 60_000);
    node.telemetry.attach(id, [event], (_event, measurements, metadata) => {
      node.telemetry.detach(id);
      clearInterval(keepAlive);
      resolve({ measurements: measurements as Record<string, number>, metadata: metadata as Record<string, unknown> });
    });
  });
}

const pair = (options?: Partial<ClusterOptions>) => memoryPair(track, options);

/**
 * Two nodes with a probe trapping exits on each; `unlinked()` checks that no tie is left between
 * them, then kills both probes and checks that neither death reached the other.
 */
async function trappingPair() {
  const { a, b, ca, cb } = await pair();
  const pa = probe<Exit>(a);
  const pb = probe<Exit>(b);
  pa.ctx.trapExits(true);
  pb.ctx.trapExits(true);
  const unlinked = async (): Promise<void> => {
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
    a.exit(pa, 'kill');
    b.exit(pb, 'kill');
    await roundTrip(a, b);
    await roundTrip(b, a);
    expect(pa.messages.filter(isExit)).toEqual([]);
    expect(pb.messages.filter(isExit)).toEqual([]);
  };
  return { a, b, ca, cb, pa, pb, unlinked };
}

type CounterCall = { type: 'add'; n: number } | { type: 'boom' } | { type: 'never' } | { type: 'fn' };
const counter: GenServerSpec<number, { request: CounterCall; reply: unknown }, never, number> = {
  init: (n: number) => n,
  handleCall(req, _from, state) {
    if (req.type === 'add') return { reply: state + req.n, state: state + req.n };
    if (req.type === 'boom') throw new Error('boom');
    if (req.type === 'fn') return { reply: () => 1, state };
    return { noreply: true, state };
  },
};

describe('cluster membership', () => {
  it('two nodes discover each other and list each other up', async () => {
    const { ca, cb, a, b } = await pair();
    expect(ca.nodes().map((n) => [n.name, n.incarnation, n.status])).toEqual([['b', b.creation, 'up']]);
    expect(cb.nodes().map((n) => [n.name, n.incarnation, n.status])).toEqual([['a', a.creation, 'up']]);
    expect(ca.isConnected('b')).toBe(true);
    expect(ca.isConnected('c')).toBe(false);
  });

  it('waitFor still waiting when its node shuts down rejects with ERR_NODE_STOPPED (its timer stops with the node)', async () => {
    const { a, ca } = await pair();
    const waiting = failure(() => ca.waitFor(['c'], { timeoutMs: 60_000 }));
    await a.shutdown();
    const e = (await waiting) as { code?: string };
    expect(e.code).toBe('ERR_NODE_STOPPED');
  });

  it('waitFor that gives up rejects with ERR_PEERS_TIMEOUT naming the nodes that had not joined', async () => {
    const { ca } = await pair();
    const e = await failure(() => ca.waitFor(['b', 'c', 'd'], { timeoutMs: 1 }));
    expect(e).toBeInstanceOf(PeersTimeoutError);
    expect((e as PeersTimeoutError).code).toBe('ERR_PEERS_TIMEOUT');
    expect((e as PeersTimeoutError).missing).toEqual(['c', 'd']);
    expect((e as PeersTimeoutError).message).toBe('cluster a: no hello from c, d within 1 ms; check that they run and join the same cluster');
  });

  it('refuses a misspelt option of join, waitFor and whereis (ERR_INVALID_ARGUMENT naming it), as every other component does', async () => {
    const net = new MemoryNetwork();
    const n = track({ name: 'a' });
    const e = await failure(() => Cluster.join(n, { transport: net.transport(), heartbeatMS: 20 } as ClusterOptions));
    expect([(e as { code: string }).code, (e as { argument: string }).argument]).toEqual(['ERR_INVALID_ARGUMENT', 'options.heartbeatMS']);
    expect(net.names).toEqual([]); // refused before the transport started: the node may join yet
    const cn = await Cluster.join(n, { transport: net.transport() });
    const w = await failure(() => cn.waitFor(['b'], { timeoutMS: 1 } as unknown as { timeoutMs: number }));
    expect([(w as { code: string }).code, (w as { argument: string }).argument]).toEqual(['ERR_INVALID_ARGUMENT', 'options.timeoutMS']);
    const r = await failure(() => cn.whereis('b', 'x', { timeoutMS: 1 } as unknown as { timeoutMs: number }));
    expect([(r as { code: string }).code, (r as { argument: string }).argument]).toEqual(['ERR_INVALID_ARGUMENT', 'options.timeoutMS']);
  });

  it('waitFor given a name instead of a list is ERR_INVALID_ARGUMENT, and leaves no waiter that throws when a peer comes up', async () => {
    const { net, ca } = await pair();
    const e = await failure(() => ca.waitFor('c' as unknown as string[]));
    expect([(e as { code: string }).code, (e as { argument: string }).argument]).toEqual(['ERR_INVALID_ARGUMENT', 'names']);
    const c = track({ name: 'c' });
    await Cluster.join(c, { transport: net.transport() });
    await ca.waitFor(['c']); // the peer came up, and its hello was handled to the end
    expect(ca.nodes().map((n) => n.name)).toEqual(['b', 'c']);
  });

  it('refuses a node name that cannot be a subject token', async () => {
    const net = new MemoryNetwork();
    const n = track({ name: 'a.b' });
    const e = await failure(() => Cluster.join(n, { transport: net.transport() }));
    expect((e as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
  });
});

describe('remote send', () => {
  it('delivers 10,000 messages in order, pids inside them usable for replies', async () => {
    const { a, b } = await pair();
    const sink = probe(b);
    const back = probe(a);
    const sender = a.spawn((ctx) => {
      for (let i = 0; i < 10_000; i++) ctx.send(sink, { n: i });
      ctx.send(sink, { replyTo: ctx.self, back });
      return () => undefined;
    });
    const last = (await sink.receive((m) => typeof m === 'object' && m !== null && 'replyTo' in m, { timeout: 20_000 })) as { replyTo: Pid; back: Pid };
    const ns = sink.messages.slice(0, 10_000).map((m) => (m as { n: number }).n);
    expect(ns).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(last.replyTo).toEqual({ node: 'a', creation: a.creation, id: sender.id });
    b.send(last.back, 'pong');
    expect(await back.receive()).toBe('pong');
  });

  it('a message to a dead remote pid is dropped with a noproc event on the receiving node', async () => {
    const { a, b } = await pair();
    const gone = b.spawn(() => () => undefined);
    b.exit(gone, 'kill');
    const events = captureEvents(b, ['keel.message.dropped']);
    const marker = probe(b);
    a.send(gone, 'lost');
    a.send(marker, 'after');
    await marker.receive();
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
    events.stop();
  });

  it('a message that cannot be serialized is a typed error at send time', async () => {
    const { a, b } = await pair();
    const sink = probe(b);
    expect(() => a.send(sink, { f: () => 1 })).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }) as Error);
  });

  it('sendAfter to a remote pid: a message that cannot be serialized is a typed error at the sendAfter, not a lost timer', async () => {
    const { a, b } = await pair();
    const sink = probe(b);
    const sender = probe(a);
    const timers = a.internals().timers; // the cluster's heartbeat
    expect(() => sender.ctx.sendAfter(sink, { f: () => 1 }, 1)).toThrow(expect.objectContaining({ code: 'ERR_NOT_SERIALIZABLE' }) as Error);
    expect(a.internals().timers).toBe(timers);
  });

  it('sendAfter to a remote pid sends a snapshot taken at the sendAfter (as a send does)', async () => {
    const { a, b } = await pair();
    const sink = probe(b);
    const sender = probe(a);
    const message = { n: 1 };
    sender.ctx.sendAfter(sink, message, 1);
    message.n = 2;
    expect(await sink.receive(undefined, { timeout: 5000 })).toEqual({ n: 1 });
  });

  it('a message to a node that is not connected is dropped with a noconnection event', async () => {
    const { a } = await pair();
    const events = captureEvents(a, ['keel.message.dropped']);
    a.send({ node: 'z', creation: 1, id: 5 }, 'lost');
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['noconnection']);
    events.stop();
  });

  it('every drop of a message across nodes carries the message, as a local drop does: sent to a node not connected, to a stale incarnation, cast, and to a dead pid on the receiving node', async () => {
    const { a, b } = await pair();
    const gone = b.spawn(() => () => undefined);
    b.exit(gone, 'kill');
    const onA = captureEvents(a, ['keel.message.dropped']);
    const onB = captureEvents(b, ['keel.message.dropped']);
    const marker = probe(b);
    const unconnected = { node: 'z', creation: 1, id: 5 };
    a.send(unconnected, { n: 1 });
    a.send({ node: 'b', creation: b.creation + 1, id: marker.id }, { n: 2 });
    GenServer.cast(a, unconnected, { n: 3 });
    a.send(gone, { n: 4 });
    GenServer.cast(a, gone, { n: 5 });
    a.send(marker, 'after');
    await marker.receive();
    const seen = (events: typeof onA) => events.events.map((e) => [e.metadata.reason, e.metadata.message instanceof CastMessage ? { cast: e.metadata.message.request } : e.metadata.message]);
    expect(seen(onA)).toEqual([['noconnection', { n: 1 }], ['noproc', { n: 2 }], ['noconnection', { cast: { n: 3 } }]]);
    expect(seen(onB)).toEqual([['noproc', { n: 4 }], ['noproc', { cast: { n: 5 } }]]);
    // a local cast to a dead pid carries the same: the cast's message, its request within
    const local = captureEvents(b, ['keel.message.dropped']);
    GenServer.cast(b, gone, { n: 6 });
    expect(seen(local)).toEqual([['noproc', { cast: { n: 6 } }]]);
    for (const c of [onA, onB, local]) c.stop();
  });

  it("a send by name to a node not connected is dropped with its message, as a send to its pid is", async () => {
    const { a, ca } = await pair();
    const onA = captureEvents(a, ['keel.message.dropped']);
    ca.send('z', 'sink', { n: 1 });
    expect(onA.events.map((e) => e.metadata)).toEqual([{ to: 'sink@z', from: 'node', reason: 'noconnection', message: { n: 1 } }]);
    onA.stop();
  });

  it('a send by name reaches the process registered there', async () => {
    const { a, b, ca } = await pair();
    const sink = probe(b);
    b.registry.register('sink', sink);
    ca.send('b', 'sink', 'hello');
    expect(await sink.receive()).toBe('hello');
    expect(await ca.whereis('b', 'sink')).toEqual({ node: 'b', creation: b.creation, id: sink.id });
    expect(await ca.whereis('b', 'nobody')).toBeUndefined();
    void a;
  });
});

describe('remote call', () => {
  it('replies, errors and timeouts as a local call', async () => {
    const { a, b } = await pair();
    const server = await GenServer.start(b, counter, 10);
    expect(await GenServer.call(a, server, { type: 'add', n: 5 })).toBe(15);
    const e = (await failure(() => GenServer.call(a, server, { type: 'never' }, 200))) as { code: string };
    expect(e.code).toBe('ERR_CALL_TIMEOUT');
    const bad = (await failure(() => GenServer.call(a, server, { type: 'fn' }))) as { code: string };
    expect(bad.code).toBe('ERR_NOT_SERIALIZABLE');
  });

  it('a reply that is a promise gets the caller what it settles with, as on one node (not ERR_NOT_SERIALIZABLE for the promise)', async () => {
    const { a, b } = await pair();
    const server = await GenServer.start(b, {
      init: () => null,
      handleCall: (request: 'ok' | 'rejects', _from, state) => ({ reply: request === 'ok' ? Promise.resolve(42) : Promise.reject(new Error('rejected reply')), state }),
    });
    expect(await GenServer.call(b, server, 'ok')).toBe(42);
    expect(await GenServer.call(a, server, 'ok')).toBe(42);
    expect(((await failure(() => GenServer.call(a, server, 'rejects'))) as Error).message).toBe('rejected reply');
  });

  it('a call with timeout 0 is a call (handled, replied or timed out as a local one), not a malformed frame to the server', async () => {
    const { a, b } = await pair();
    const server = await GenServer.start(b, counter, 0);
    const dropped = captureEvents(b, ['keel.cluster.frame_dropped']);
    // the caller's deadline fires a turn later at the earliest: the reply may beat it, as on one node
    const outcome = await GenServer.call(a, server, { type: 'add', n: 1 }, 0).catch((e: { code: string }) => e.code);
    expect([1, 'ERR_CALL_TIMEOUT']).toContain(outcome);
    expect(await GenServer.call(a, server, { type: 'add', n: 0 })).toBe(1); // the first request was handled
    expect(dropped.events).toEqual([]);
    dropped.stop();
  });

  it('a call to a dead remote pid fails with noproc', async () => {
    const { a, b } = await pair();
    const server = await GenServer.start(b, counter, 0);
    await GenServer.stop(b, server);
    const e = (await failure(() => GenServer.call(a, server, { type: 'add', n: 1 }))) as { code: string };
    expect(e.code).toBe('ERR_NOPROC');
    expect(e).toBeInstanceOf(NoProcError); // a Keel error keeps its class across nodes
    expect((e as unknown as { remote: boolean }).remote).toBe(true);
  });

  it('a crash of the server fails the call with its reason', async () => {
    const { a, b } = await pair();
    const server = await GenServer.start(b, counter, 0);
    const e = (await failure(() => GenServer.call(a, server, { type: 'boom' }))) as { code: string; message: string };
    expect(e.code).toBe('ERR_CALL_EXIT');
    expect(e.message).toContain('boom');
    expect(e).toBeInstanceOf(CallExitError);
    expect(e).toBeInstanceOf(KeelError);
  });

  it('fails at node-down time with noconnection, long before its timeout', async () => {
    const { a, b, cb } = await pair();
    const server = await GenServer.start(b, counter, 0);
    const call = failure(() => GenServer.call(a, server, { type: 'never' }, 60_000));
    await b.idle();
    await cb.leave();
    const e = (await call) as { code: string; node: string };
    expect(e.code).toBe('ERR_NOCONNECTION');
    expect(e.node).toBe('b');
  });
});

describe('remote call: the caller', () => {
  it('a caller that dies while waiting has its call rejected with ERR_CALL_EXIT, as a local call is (never left pending)', async () => {
    const { a, b, ca } = await pair();
    const served = probe(b);
    const server = await GenServer.start(b, {
      init: () => 0,
      handleCall: (_req: string, _from: unknown, s: number) => {
        b.send(served, 'holding');
        return { noreply: true as const, state: s };
      },
    });
    const outcome = deferred<unknown>();
    const caller = a.spawn((ctx) => () => {
      GenServer.call(ctx, server, 'hold', { timeout: 60_000 }).then(
        (v) => outcome.resolve(['replied', v]),
        (e: unknown) => outcome.resolve(e),
      );
    });
    a.send(caller, 'go');
    await served.receive((m) => m === 'holding');
    a.exit(caller, 'kill');
    const e = (await outcome.promise) as { code?: string; message?: string };
    expect(e.code).toBe('ERR_CALL_EXIT');
    expect(e.message).toContain('the caller exited');
    expect(ca.internals().entries).toBe(0);
  });
  it('a caller killed by the down of the peer it calls (linked to one of its processes) has its call settled once, not again with noconnection', async () => {
    const { a, b, cb } = await pair();
    const server = await GenServer.start(b, counter, 0);
    const partner = b.spawn(() => () => undefined);
    const told: string[] = [];
    const listener: CallListener = { callReplied: (v) => told.push(`replied:${String(v)}`), callFailed: (e) => told.push((e as { code: string }).code) };
    const asked = deferred<void>();
    a.spawn((ctx) => {
      ctx.link(partner);
      callListening(ctx, server, { type: 'never' }, 60_000, listener);
      asked.resolve();
      return () => undefined;
    });
    await asked.promise;
    await roundTrip(a, b);
    const down = nextEvent(a, 'keel.cluster.node_down');
    await cb.leave(); // a's down of b kills the caller (its link), then answers the calls
    await down;
    await roundTrip(a, a);
    expect(told).toEqual(['ERR_CALL_EXIT']);
  });
});

describe('remote monitor and link', () => {
  it('a Down carries the remote exit reason, an Error included', async () => {
    const { a, b } = await pair();
    const watcher = probe<Down>(a);
    const target = b.spawn<string>(() => (m) => {
      if (m === 'crash') throw new TypeError('bad input');
    });
    const ref = watcher.ctx.monitor(target);
    await roundTrip(a, b); // the monitor is in place on b
    b.send(target, 'crash');
    const down = (await watcher.receive(isDown)) as Down;
    expect(down.ref).toBe(ref);
    expect(down.pid).toEqual({ node: 'b', creation: b.creation, id: target.id });
    expect(down.reason).toBeInstanceOf(Error);
    expect((down.reason as Error).name).toBe('TypeError');
    expect((down.reason as Error).message).toBe('bad input');
  });

  it('a monitor whose target, a copy of a remote pid, ends the monitoring process while it is read sets up nothing on either node', async () => {
    const { a, b, ca, cb } = await pair();
    const target = b.spawn(() => () => undefined);
    const zombies = captureEvents(a, ['keel.process.zombie_call']);
    const holder: { pid?: Pid } = {};
    // a copy of the pid (plain data): reading its node ends the watcher (a getter that kills it)
    const copy = {
      get node() {
        a.exit(holder.pid!, 'kill');
        return 'b';
      },
      creation: b.creation,
      id: target.id,
    };
    const watcherPid = (holder.pid = a.spawn((ctx) => {
      ctx.monitor(copy as unknown as Pid);
      return () => undefined;
    }));
    await a.idle();
    await roundTrip(a, b);
    expect(a.isAlive(watcherPid)).toBe(false);
    expect(zombies.events.map((e) => e.metadata)).toMatchObject([{ pid: watcherPid, operation: 'monitor' }]);
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
  });

  it('a monitor of a dead remote pid gets noproc; a demonitor means no Down', async () => {
    const { a, b } = await pair();
    const watcher = probe<Down>(a);
    const dead = b.spawn(() => () => undefined);
    b.exit(dead, 'kill');
    watcher.ctx.monitor(dead);
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('noproc');
    const live = b.spawn(() => () => undefined);
    const ref = watcher.ctx.monitor(live);
    expect(watcher.ctx.demonitor(ref)).toBe(true);
    const marker = probe(b);
    watcher.ctx.send(marker, 'after');
    await marker.receive();
    b.exit(live, 'kill');
    watcher.ctx.send(marker, 'after2');
    await marker.receive((m) => m === 'after2');
    const back = probe(a);
    b.send(back, 'sync');
    await back.receive();
    expect(watcher.messages.filter(isDown)).toHaveLength(1);
  });

  it('a link carries a crash both ways, trapped as an Exit', async () => {
    const { a, b } = await pair();
    const trapper = probe<Exit>(a);
    trapper.ctx.trapExits(true);
    const partner = b.spawn<string>(() => (m) => {
      if (m === 'crash') throw new Error('partner failed');
    });
    trapper.ctx.link(partner);
    await a.idle();
    await b.idle();
    expect(b.info(partner)?.status).toBe('waiting');
    b.send(partner, 'crash');
    const exit = (await trapper.receive(isExit)) as Exit;
    expect(exit.from).toEqual({ node: 'b', creation: b.creation, id: partner.id });
    expect((exit.reason as Error).message).toBe('partner failed');
  });

  it('a link and an unlink that cross leave both sides unlinked: an unlink is acknowledged (as since OTP 23)', async () => {
    const { a, b, pa, pb, unlinked } = await trappingPair();
    // all before either node's batch goes out: a links and unlinks b, while b links a
    pa.ctx.link(pb);
    pa.ctx.unlink(pb);
    pb.ctx.link(pa);
    // b's unlink acknowledgement travels back after b handled a's frames
    await roundTrip(a, b);
    await roundTrip(b, a);
    await unlinked();
  });

  it('an exit of a link being unlinked is not delivered, and a link made again after an unlink stands on both sides', async () => {
    const { a, b, ca, cb } = await pair();
    const pa = probe<Exit>(a);
    pa.ctx.trapExits(true);
    const partner = b.spawn<string>(() => (m) => {
      if (m === 'crash') throw new Error('partner failed');
    });
    pa.ctx.link(partner);
    await roundTrip(a, b);
    // the partner dies while a's unlink is on its way: its exit signal crosses the unlink
    pa.ctx.unlink(partner);
    b.send(partner, 'crash');
    await b.idle();
    await roundTrip(b, a);
    await roundTrip(a, b);
    await roundTrip(b, a);
    expect(pa.messages.filter(isExit)).toEqual([]);
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
    // unlink, then link again at once: the late acknowledgement of the unlink does not undo the new link
    const other = b.spawn<string>(() => (m) => {
      if (m === 'crash') throw new Error('other failed');
    });
    pa.ctx.link(other);
    pa.ctx.unlink(other);
    pa.ctx.link(other);
    await roundTrip(a, b);
    await roundTrip(b, a);
    expect(ca.internals()).toMatchObject({ entries: 1, books: 1 });
    expect(cb.internals()).toMatchObject({ entries: 1, books: 1 });
    b.send(other, 'crash');
    const exit = (await pa.receive(isExit)) as Exit;
    expect((exit.reason as Error).message).toBe('other failed');
  });

  it('two unlinks that cross, one side linking again before the other unlink reaches it, leave both sides unlinked', async () => {
    const { a, b, ca, cb, pa, pb, unlinked } = await trappingPair();
    pa.ctx.link(pb);
    await roundTrip(a, b);
    expect([ca.internals().entries, cb.internals().entries]).toEqual([1, 1]);
    // all before either node's batch goes out: both unlink, and b links again before it hears of a's unlink
    pa.ctx.unlink(pb);
    pb.ctx.unlink(pa);
    pb.ctx.link(pa);
    // the acknowledgements travel back after each side handled the other's frames
    await roundTrip(a, b);
    await roundTrip(b, a);
    await roundTrip(a, b);
    await unlinked();
  });

  it('a local death kills a linked remote process that does not trap exits', async () => {
    const { a, b } = await pair();
    const remote = probe<Down>(b);
    const victim = b.spawn(() => () => undefined);
    remote.ctx.monitor(victim);
    const local = a.spawn<string>((ctx) => {
      ctx.link(victim);
      return (m) => {
        if (m === 'die') throw new Error('local failed');
      };
    });
    await a.idle();
    await b.idle();
    a.send(local, 'die');
    const down = (await remote.receive(isDown)) as Down;
    expect((down.reason as Error).message).toBe('local failed');
  });

  it('messages sent before an exit arrive before the Exit (one path per pair)', async () => {
    const { a, b } = await pair();
    const trapper = probe(a);
    trapper.ctx.trapExits(true);
    const sender = b.spawn<string>((ctx) => (m) => {
      if (m !== 'go') return;
      ctx.send(trapper, 1);
      ctx.send(trapper, 2);
      ctx.exit('shutdown');
    });
    trapper.ctx.link(sender);
    await a.idle();
    await b.idle();
    b.send(sender, 'go');
    await trapper.receive(isExit);
    expect(trapper.messages.map((m) => (isExit(m) ? `exit:${String(m.reason)}` : m))).toEqual([1, 2, 'exit:shutdown']);
  });
});

describe('node down', () => {
  it('answers every tie exactly once with noconnection when a peer leaves', async () => {
    const { a, b, cb, ca } = await pair();
    const watcher = probe(a);
    watcher.ctx.trapExits(true);
    const targets = [0, 1, 2].map(() => b.spawn(() => () => undefined));
    for (const t of targets) watcher.ctx.monitor(t);
    watcher.ctx.link(targets[0]!);
    await a.idle();
    await b.idle();
    const events = captureEvents(a, ['keel.cluster.node_down']);
    await cb.leave();
    await watcher.receive((m) => isExit(m));
    const back = probe(a);
    a.send(back, 'sync');
    await back.receive();
    expect(watcher.messages.filter(isDown).map((d) => d.reason)).toEqual(['noconnection', 'noconnection', 'noconnection']);
    expect(watcher.messages.filter(isExit).map((x) => x.reason)).toEqual(['noconnection']);
    expect(events.events.map((e) => [e.metadata.node, e.metadata.reason])).toEqual([['b', 'goodbye']]);
    expect(ca.internals()).toEqual({ peers: 0, entries: 0, books: 0, outbox: 0 });
    events.stop();
  });

  it('detects a silent peer by heartbeats (suspect, then down)', async () => {
    const { net, a, ca } = await pair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 });
    const events = captureEvents(a, ['keel.cluster.node_']);
    const down = nextEvent(a, 'keel.cluster.node_down');
    net.isolate('b');
    await down;
    expect(ca.isConnected('b')).toBe(false);
    const names = events.events.map((e) => [e.event, e.metadata.reason]);
    expect(names).toEqual([
      ['keel.cluster.node_suspect', 'heartbeat'],
      ['keel.cluster.node_down', 'heartbeat'],
    ]);
    expect(events.events[1]!.measurements.detectionMs).toBeGreaterThanOrEqual(200);
    events.stop();
  });

  it('a node cut off from the network marks its peers unreachable at once, and up again once reconnected', async () => {
    const { net, a, b, ca } = await pair();
    const suspected = nextEvent(a, 'keel.cluster.node_suspect');
    net.cut('a');
    expect((await suspected).metadata).toMatchObject({ node: 'b', reason: 'disconnected' });
    expect(ca.nodes().map((n) => [n.name, n.status])).toEqual([['b', 'suspect']]);
    const back = nextEvent(a, 'keel.cluster.reconnected');
    net.heal('a');
    await back;
    // the next batch heard from b makes it up again
    const sink = probe(a);
    b.send(sink, 'back');
    expect(await sink.receive()).toBe('back');
    expect(ca.nodes().map((n) => [n.name, n.status])).toEqual([['b', 'up']]);
  });

  it('a link lost and back before downAfterMs: what either side sent meanwhile may be lost, so every tie across it is answered with noconnection on both sides (a Down is never lost for good)', async () => {
    const { net, a, b, ca, cb } = await pair({ downAfterMs: 600_000 });
    const { onA, onB, targetOnA, targetOnB } = crossTies(a, b);
    await roundTrip(a, b);
    await roundTrip(b, a);
    const suspected = nextEvent(a, 'keel.cluster.node_suspect');
    net.cut('a');
    await suspected;
    // both monitored processes die while a is cut off: each Down is sent, and lost on the way
    b.exit(targetOnB, 'kill');
    a.exit(targetOnA, 'kill');
    await a.idle();
    await b.idle();
    expect([ca.internals().outbox, cb.internals().outbox]).toEqual([0, 0]);
    const back = nextEvent(a, 'keel.cluster.reconnected');
    net.heal('a');
    await back;
    await roundTrip(a, b);
    await roundTrip(b, a);
    await roundTrip(a, b);
    expect(onA.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([[String(targetOnB), 'noconnection']]);
    expect(onB.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([[String(targetOnA), 'noconnection']]);
    expect(ca.internals()).toMatchObject({ peers: 1, entries: 0 });
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 });
    // both are up again, and messages flow
    expect(ca.nodes().map((n) => [n.name, n.status])).toEqual([['b', 'up']]);
    expect(cb.nodes().map((n) => [n.name, n.status])).toEqual([['a', 'up']]);
  });

  it("both ends of a link lost and back at different moments (a server restarted: each client reconnects on its own): the '!' of the first back is lost, yet neither end is left waiting for a reset, and a tie made after is honoured", async () => {
    const { net, a, b, ca, cb } = await pair({ downAfterMs: 600_000 });
    const cutA = nextEvent(a, 'keel.cluster.disconnected');
    const cutB = nextEvent(b, 'keel.cluster.disconnected');
    net.cut('a');
    net.cut('b');
    await cutA;
    await cutB;
    // a is back first: its '!' to b goes nowhere (b is still cut off)
    const backA = nextEvent(a, 'keel.cluster.reconnected');
    net.heal('a');
    await backA;
    await a.idle();
    expect(ca.internals().outbox).toBe(0);
    const backB = nextEvent(b, 'keel.cluster.reconnected');
    net.heal('b');
    await backB;
    await roundTrip(b, a);
    await roundTrip(a, b);
    await roundTrip(b, a);
    // a tie made now, on either side, is made on the other
    const { onA, onB, targetOnA, targetOnB } = crossTies(a, b);
    await roundTrip(a, b);
    await roundTrip(b, a);
    b.exit(targetOnB, 'kill');
    a.exit(targetOnA, 'kill');
    await roundTrip(b, a);
    await roundTrip(a, b);
    expect(onA.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([[String(targetOnB), 'killed']]);
    expect(onB.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([[String(targetOnA), 'killed']]);
    expect(ca.internals()).toMatchObject({ peers: 1, entries: 0 });
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 });
  });

  it('a new incarnation of a peer downs the old one at once', async () => {
    const { net, a, b, ca } = await pair();
    const watcher = probe(a);
    watcher.ctx.monitor(b.spawn(() => () => undefined));
    await a.idle();
    const events = captureEvents(a, ['keel.cluster.node_']);
    net.isolate('b'); // b vanishes without a goodbye
    const b2 = track({ name: 'b2' });
    void b2;
    const reborn = track({ name: 'b' });
    net.heal('b');
    // the old b is still attached: the network refuses a second 'b', so detach it first, as a crash would
    (net as unknown as { detach(name: string): void }).detach('b');
    await Cluster.join(reborn, { transport: net.transport() });
    const down = (await watcher.receive(isDown)) as Down;
    expect(down.reason).toBe('noconnection');
    await ca.waitFor(['b']);
    expect(ca.nodes().find((n) => n.name === 'b')?.incarnation).toBe(reborn.creation);
    const reasons = events.events.filter((e) => e.event === 'keel.cluster.node_down').map((e) => e.metadata.reason);
    expect(reasons).toHaveLength(1);
    expect(['new_incarnation', 'port_closed']).toContain(reasons[0]);
    events.stop();
  });

  it('a peer downed for silence and then restarted: a late batch of its old incarnation is stale, not the old one up again', async () => {
    const { net, a, b, ca } = await pair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 });
    const down = nextEvent(a, 'keel.cluster.node_down');
    net.isolate('b'); // b freezes: a takes it for down (silence)
    expect((await down).metadata).toMatchObject({ node: 'b', reason: 'heartbeat' });
    net.heal('b');
    (net as unknown as { detach(name: string): void }).detach('b'); // and a new incarnation of b starts
    const reborn = track({ name: 'b' });
    const cReborn = await Cluster.join(reborn, { transport: net.transport() });
    await ca.waitFor(['b']);
    await cReborn.waitFor(['a']);
    expect(ca.incarnationOf('b')).toBe(reborn.creation);
    const events = captureEvents(a, ['keel.cluster.node_', 'keel.cluster.frame_dropped']);
    // the old incarnation resumes: its next word reaches a
    net.deliver('b', 'a', `[1,"b",${b.creation},0,[["b"]]]`, true);
    await roundTrip(reborn, a);
    expect(events.events.filter((e) => e.event !== 'keel.cluster.frame_dropped')).toEqual([]);
    expect(events.events[0]?.metadata).toMatchObject({ from: 'b', reason: 'stale_incarnation', incarnation: b.creation });
    expect(ca.incarnationOf('b')).toBe(reborn.creation);
    events.stop();
  });
  it('a port closed while a probe for silence is out is probed again when that one answers alive: the peer goes down as port_closed', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const inner = net.transport();
    let handler: TransportHandler | undefined;
    const firstProbe = deferred<ProbeResult>();
    const probes: string[] = [];
    // the probe sent for b's silence is answered when the test says; any later one finds b gone
    const transport = probedTransport(
      inner,
      (p) => {
        probes.push(p);
        return probes.length === 1 ? firstProbe.promise : Promise.resolve('gone' as const);
      },
      (h) => (handler = h),
    );
    const ca = await Cluster.join(a, { transport, heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 600_000, probeTimeoutMs: 30 });
    const cb = await Cluster.join(b, { transport: net.transport() });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    const suspected = nextEvent(a, 'keel.cluster.node_suspect');
    const downs = captureEvents(a, ['keel.cluster.node_down']);
    net.isolate('b');
    await suspected; // a's tick probes b for its silence
    expect(probes).toEqual(['b']);
    handler!.peerGone('b'); // then b's port closes, while that probe is out
    firstProbe.resolve('alive'); // the probe was answered before the port closed
    await new Promise<void>((resolve) => setImmediate(resolve)); // the answers' microtasks have run
    expect(probes).toEqual(['b', 'b']);
    expect(downs.events.map((e) => e.metadata.reason)).toEqual(['port_closed']);
    expect(ca.isConnected('b')).toBe(false);
    downs.stop();
  });

  it('keeps the last 1,024 peers downed for silence: an older one that speaks again is a dead incarnation, a newer one is told it was down', async () => {
    const { net, a, b, ca } = await pair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 });
    const n = 1025;
    const downed = new Set<string>();
    const allDown = new Promise<void>((resolve) => {
      a.telemetry.attach('downs', ['keel.cluster.node_down'], (_e, _m, meta) => {
        if (typeof meta.node === 'string' && meta.node.startsWith('x')) downed.add(meta.node);
        if (downed.size === n) resolve();
      });
    });
    // n peers that speak once and then fall silent, x0 first
    for (let i = 0; i < n; i++) net.deliver(`x${i}`, 'a', `[1,"x${i}",7,0,[["h"]]]`, true);
    await allDown;
    a.telemetry.detach('downs');
    const events = captureEvents(a, ['keel.cluster.node_up', 'keel.cluster.frame_dropped']);
    // x0, downed first, was forgotten as silenced when the 1,025th was downed: its word is stale
    net.deliver('x0', 'a', '[1,"x0",7,0,[["b"]]]', true);
    // x1 is still remembered: it is up again (and told first that it was down)
    net.deliver('x1', 'a', '[1,"x1",7,0,[["b"]]]', true);
    await roundTrip(b, a); // the network delivers in order: what was delivered before has arrived
    expect(events.events.map((e) => [e.event, e.metadata.from ?? e.metadata.node, e.metadata.reason])).toEqual([
      ['keel.cluster.frame_dropped', 'x0', 'stale_incarnation'],
      ['keel.cluster.node_up', 'x1', undefined],
    ]);
    expect(ca.incarnationOf('x0')).toBeUndefined();
    expect(ca.incarnationOf('x1')).toBe(7);
    events.stop();
  });
});

describe('a batch the transport drops in a flush', () => {
  it('a frame a send_dropped handler queues for a peer already flushed in that flush goes out (not left in the outbox until that peer is sent something else)', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const c = track({ name: 'c' });
    const inner = net.transport();
    let handler: TransportHandler | undefined;
    let refuseB = false;
    // a transport that drops a batch to b, as the worker transport drops one past maxInFlight: told synchronously, in the send
    const transport: Transport = {
      ...probedTransport(inner, (p, t) => inner.probe(p, t), (h) => (handler = h)),
      send: (peer, batch) => {
        if (peer === 'b' && refuseB) handler!.overloaded?.('b', batch.length);
        else inner.send(peer, batch);
      },
    };
    const ca = await Cluster.join(a, { transport });
    const cb = await Cluster.join(b, { transport: net.transport() });
    const cc = await Cluster.join(c, { transport: net.transport() });
    await ca.waitFor(['b', 'c']);
    await cb.waitFor(['a']);
    await cc.waitFor(['a']);
    const onB = probe(b);
    const onC = probe(c);
    // a handler that reports a dropped batch to a process on another node
    a.telemetry.attach('report', ['keel.cluster.send_dropped'], (_e, _m, meta) => a.send(onC, `dropped to ${String((meta as { to: string }).to)}`));
    const down = nextEvent(a, 'keel.cluster.node_down');
    refuseB = true;
    a.send(onC, 'first'); // c is flushed before b in this turn's flush
    a.send(onB, 'lost');
    expect((await down).metadata).toMatchObject({ node: 'b', reason: 'overloaded' });
    // queued during the flush: sent by a flush of its own, after the event loop's next turn
    expect(await onC.receive((m) => m === 'dropped to b', { timeout: 5000 })).toBe('dropped to b');
    expect(ca.internals().outbox).toBe(0);
    expect(onC.messages).toEqual(['first', 'dropped to b']);
    a.telemetry.detach('report');
  });
});

describe('the cluster process', () => {
  it('beats in keel.cluster under keel.cluster_sup: killed, it is restarted and beats on', async () => {
    const { net, a, ca } = await pair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 300, probeTimeoutMs: 30 });
    const first = a.registry.whereis('keel.cluster')!;
    const supervisor = a.registry.whereis('keel.cluster_sup')!;
    expect(a.info(supervisor)?.links).toEqual([first]);
    const restarted = nextEvent(a, 'keel.supervisor.child_restarted');
    a.exit(first, 'kill');
    expect((await restarted).metadata).toMatchObject({ supervisor, id: 'cluster', reason: 'killed' });
    const second = a.registry.whereis('keel.cluster')!;
    expect(second.id).not.toBe(first.id);
    expect(ca.isConnected('b')).toBe(true); // its state is the node's: the restart lost nothing
    // the new process beats: b's silence is noticed
    const down = nextEvent(a, 'keel.cluster.node_down');
    net.isolate('b');
    expect((await down).metadata).toMatchObject({ node: 'b', reason: 'heartbeat' });
  });

  it('leave() stops the cluster process and its supervisor', async () => {
    const { a, ca } = await pair();
    const supervisor = a.registry.whereis('keel.cluster_sup')!;
    const watcher = probe<Down>(a);
    watcher.ctx.monitor(supervisor);
    await ca.leave();
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('shutdown');
    expect(a.registry.whereis('keel.cluster')).toBeUndefined();
  });
});

describe('exit signals and shutdown', () => {
  it('an exit signal from a process reaches a remote process; kill is untrappable', async () => {
    const { a, b } = await pair();
    const watcher = probe<Down>(b);
    const trapper = b.spawn((ctx) => {
      ctx.trapExits(true);
      return () => undefined;
    });
    const ref = watcher.ctx.monitor(trapper);
    const killer = probe(a);
    killer.ctx.exit(trapper, 'kill');
    const down = (await watcher.receive(isDown)) as Down;
    expect([down.ref, down.reason]).toEqual([ref, 'killed']);
  });

  it('a node that shuts down stops its processes (their Downs go out) and says goodbye', async () => {
    const { a, b } = await pair();
    const watcher = probe<Down>(a);
    watcher.ctx.monitor(b.spawn(() => () => undefined));
    await roundTrip(a, b);
    const down = nextEvent(a, 'keel.cluster.node_down');
    await b.shutdown();
    expect((await down).metadata.reason).toBe('goodbye');
    // the process stopped with the node before the goodbye: its own Down came first, and only once
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('shutdown');
    await roundTrip(a, a);
    expect(watcher.messages.filter(isDown)).toHaveLength(1);
  });
});

describe('hostile frames', () => {
  it('drops malformed, forged and stale batches with an event, and goes on', async () => {
    const { net, a, b } = await pair();
    const sink = probe(b);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    const send = (batch: string): void => net.deliver('a', 'b', batch, false);
    send('not json');
    send('{"__proto__":{"polluted":1}}');
    send(`[1,"c",${a.creation},${b.creation},[["m",${sink.id},0,"forged"]]]`); // claims another sender
    send(`[1,"a",${a.creation},12345,[["m",${sink.id},0,"stale"]]]`); // for an earlier incarnation of b
    send(`[1,"a",${a.creation},${b.creation},[["zz"],["m",-1,0,"x"],["m",${sink.id},0,"ok"]]]`);
    await sink.receive();
    expect(sink.messages).toEqual(['ok']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed', 'forged_sender', 'stale_incarnation', 'malformed', 'malformed']);
    events.stop();
  });

  it("a batch in this node's own name (a forged subject) is dropped: a node is never its own peer", async () => {
    const { net, a, b, cb } = await pair();
    const events = captureEvents(b, ['keel.cluster.']);
    net.deliver('b', 'b', `[1,"b",${b.creation},0,[["h"]]]`, true);
    net.deliver('b', 'b', `[1,"b",${b.creation},${b.creation},[["b"]]]`, false);
    await roundTrip(a, b);
    expect(events.events.map((e) => [e.event, e.metadata.reason])).toEqual([
      ['keel.cluster.frame_dropped', 'forged_sender'],
      ['keel.cluster.frame_dropped', 'forged_sender'],
    ]);
    expect(cb.nodes().map((n) => n.name)).toEqual(['a']);
    expect(cb.isConnected('b')).toBe(false);
    events.stop();
  });

  it('a batch whose sender is an object that cannot be made text is dropped as forged, not an exception out of the transport', async () => {
    const { net, a, b } = await pair();
    const sink = probe(b);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    net.deliver('a', 'b', `[1,{"toString":1},${a.creation},${b.creation},[["m",${sink.id},0,"forged"]]]`, false);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["m",${sink.id},0,"ok"]]]`, false);
    expect(await sink.receive()).toBe('ok');
    expect(events.events.map((e) => [e.metadata.reason, e.metadata.claimed])).toEqual([['forged_sender', '{"toString":1}']]);
    events.stop();
  });

  it('a batch for an incarnation that is not a count is malformed, never an event carrying what it was', async () => {
    const { net, a, b } = await pair();
    const sink = probe(b);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    const huge = JSON.stringify({ filler: 'x'.repeat(10_000) });
    for (const to of [huge, '"7"', '-1', '1.5', '1e300']) net.deliver('a', 'b', `[1,"a",${a.creation},${to},[["m",${sink.id},0,"bad"]]]`, false);
    net.deliver('a', 'b', `[1,"a",${a.creation},12345,[["m",${sink.id},0,"stale"]]]`, false);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["m",${sink.id},0,"ok"]]]`, false);
    expect(await sink.receive()).toBe('ok');
    expect(sink.messages).toEqual(['ok']);
    expect(events.events.map((e) => [e.metadata.reason, e.metadata.incarnation])).toEqual([
      ...Array(5).fill(['malformed', undefined]),
      ['stale_incarnation', 12345],
    ]);
    events.stop();
  });

  it('a bad value costs its frame, not the batch: the frames around it are handled', async () => {
    const { net, a, b } = await pair();
    const sink = probe(b);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    const frames = [`["m",${sink.id},0,"before"]`, `["m",${sink.id},0,{"__proto__":{"polluted":1}}]`, `["m",${sink.id},0,{"$keel":"bogus"}]`, `["m",${sink.id},0,{"$keel":"date","v":0}]`];
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[${frames.join(',')}]]`, false);
    await sink.receive((m) => m instanceof Date);
    expect(sink.messages).toEqual(['before', new Date(0)]);
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed']);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    events.stop();
  });

  it('an unlink or its acknowledgement with a bad id is dropped whole: the link it names still stands', async () => {
    const { net, a, b, cb } = await pair();
    const linked = probe<Exit>(b);
    linked.ctx.trapExits(true);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    const id = linked.id;
    const frames = [`["l",77,${id}]`, `["u",77,${id},"1"]`, `["u",77,${id},-1]`, `["u",77,"${id}",1]`, `["U",77,${id},1.5]`];
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[${frames.join(',')}]]`, false);
    await roundTrip(a, b);
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed', 'malformed', 'malformed']);
    expect(cb.internals()).toMatchObject({ entries: 1, books: 1 });
    // the link stands: the remote process's death reaches the local one
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["x",77,${id},{"shutdown":"gone"},1]]]`, false);
    const exit = (await linked.receive(isExit)) as Exit;
    expect([exit.from, exit.reason]).toEqual([{ node: 'a', creation: a.creation, id: 77 }, { shutdown: 'gone' }]);
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
    events.stop();
  });

  it("a value this node cannot decode (nested deeper than its stack: a thread with a larger one sent it) answers what waited on it with the error, not a hang", async () => {
    // a's outbound batches carry "DEEP" as a value nested 100,000 deep (one tag inside, so it is revived):
    // a worker thread's 4 MB stack encodes deeper than the main thread's decodes
    const deep = `${'['.repeat(100_000)}{"$keel":"u"}${']'.repeat(100_000)}`;
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const inner = net.transport();
    const rewriting = probedTransport(inner, (p, t) => inner.probe(p, t), () => undefined);
    const ca = await Cluster.join(a, { transport: { ...rewriting, send: (p, batch) => inner.send(p, batch.replaceAll('"DEEP"', deep)) } });
    const cb = await Cluster.join(b, { transport: net.transport() });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    // a call's reply b cannot read fails the call (no timeout: it would have waited for ever)
    const server = await GenServer.start(a, { init: () => 0, handleCall: () => ({ reply: 'DEEP', state: 0 }) });
    const replied = (await failure(() => GenServer.call(b, server, 'ask', Infinity))) as { code: string };
    expect(replied.code).toBe('ERR_MALFORMED_FRAME');
    // a Down and a link's exit signal whose reason b cannot read still arrive, with the error as their reason
    const watcher = probe<Down | Exit>(b);
    watcher.ctx.trapExits(true);
    const monitored = a.spawn(() => () => undefined);
    const linked = a.spawn(() => () => undefined);
    watcher.ctx.monitor(monitored);
    watcher.ctx.link(linked);
    await roundTrip(b, a);
    a.exit(monitored, { shutdown: 'DEEP' });
    a.exit(linked, { shutdown: 'DEEP' });
    const down = (await watcher.receive(isDown)) as Down;
    expect(down.pid).toEqual({ node: 'a', creation: a.creation, id: monitored.id });
    expect((down.reason as { code?: string }).code).toBe('ERR_MALFORMED_FRAME');
    const exit = (await watcher.receive(isExit)) as Exit;
    expect(exit.from).toEqual({ node: 'a', creation: a.creation, id: linked.id });
    expect((exit.reason as { code?: string }).code).toBe('ERR_MALFORMED_FRAME');
    // a call's request b cannot read fails the caller on a
    const onB = await GenServer.start(b, counter, 0);
    const asked = (await failure(() => GenServer.call(a, onB, 'DEEP' as unknown as CounterCall, Infinity))) as { code: string };
    expect(asked.code).toBe('ERR_MALFORMED_FRAME');
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed', 'malformed', 'malformed']);
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
    events.stop();
  });

  it('a malformed reply to a waiting call fails the call with ERR_MALFORMED_FRAME (counted), never leaves it waiting', async () => {
    const { net, a, b, cb } = await pair();
    const server = await GenServer.start(a, counter, 0);
    const events = captureEvents(b, ['keel.cluster.frame_dropped']);
    // b's first call is its call 1; a's server never answers it
    const call = failure(() => GenServer.call(b, server, { type: 'never' }, Infinity));
    await roundTrip(b, a);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["r",1,0,"not an error"]]]`, false);
    expect(((await call) as { code: string }).code).toBe('ERR_MALFORMED_FRAME');
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['malformed']);
    expect(cb.internals()).toMatchObject({ entries: 0, outbox: 0 });
    events.stop();
  });

  it("a batch over the transport's maxBatchSize is refused before it is parsed (counted); the peer goes down, so a call waiting on it is answered with noconnection", async () => {
    const net = new MemoryNetwork({ maxBatchSize: 4096 });
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: net.transport() });
    const cb = await Cluster.join(b, { transport: net.transport() });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    const server = await GenServer.start(a, counter, 0);
    const sink = probe(b);
    const events = captureEvents(b, ['keel.cluster.frame_dropped', 'keel.cluster.node_down', 'keel.cluster.node_up']);
    // b's first call is its call 1; a's server never answers it
    const call = failure(() => GenServer.call(b, server, { type: 'never' }, Infinity));
    await roundTrip(b, a);
    // the reply to that call and a message, in one batch of 4,097 characters: never parsed (its
    // value would have been revived, its frames handled), refused whole
    const head = `[1,"a",${a.creation},${b.creation},[["r",1,1,"answered"],["m",${sink.id},0,"`;
    const tooBig = `${head}${'x'.repeat(4097 - head.length - 4)}"]]]`;
    expect(tooBig.length).toBe(4097);
    net.deliver('a', 'b', tooBig, false);
    // a broadcast over the limit is refused too; it carries no tie, so the peer is not downed for it
    const bigBroadcast = `[1,"a",${a.creation},0,[["b"],"${'y'.repeat(5000)}"]]`;
    net.deliver('a', 'b', bigBroadcast, true);
    const e = (await call) as { code: string };
    expect(e.code).toBe('ERR_NOCONNECTION');
    expect(events.events.map((x) => [x.event, x.metadata.reason, (x.metadata.error as { code?: string; size?: number; limit?: number } | undefined)?.size])).toEqual([
      ['keel.cluster.frame_dropped', 'oversized', 4097],
      ['keel.cluster.node_down', 'oversized', undefined],
      ['keel.cluster.frame_dropped', 'oversized', bigBroadcast.length],
    ]);
    expect(events.events[0]!.metadata.error).toMatchObject({ code: 'ERR_MESSAGE_TOO_LARGE', size: 4097, limit: 4096 });
    expect(sink.messages).toEqual([]);
    expect(cb.internals()).toMatchObject({ peers: 0, entries: 0, books: 0 });
    // a speaks again: b takes it up anew (a is told it was down first), and what it sends arrives
    a.send(sink, 'after');
    expect(await sink.receive()).toBe('after');
    expect(cb.isConnected('a')).toBe(true);
    expect(events.events.map((x) => x.event).at(-1)).toBe('keel.cluster.node_up');
    events.stop();
  });

  it('a message larger than the transport carries is a typed error at send time', async () => {
    const net = new MemoryNetwork({ maxBatchSize: 4096 });
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: net.transport() });
    await Cluster.join(b, { transport: net.transport() });
    await ca.waitFor(['b']);
    const sink = probe(b);
    expect(() => a.send(sink, 'x'.repeat(10_000))).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as Error);
    a.send(sink, 'small');
    expect(await sink.receive()).toBe('small');
  });
});
