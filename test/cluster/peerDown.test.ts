/* eslint-disable keel/no-unmanaged-monitor, keel/no-raw-send -- the tests tie processes across nodes with raw sends, monitors and links */
// Peers going down and coming back over the in-memory network: a join racing a shutdown, a down
// in the middle of a batch, heartbeats after a busy event loop, a wrong probe, the '!' reset that
// follows a down, goodbyes, leaving and joining again, and ties to a peer's pids after leaving.
import { describe, expect, it } from 'vitest';
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { Transport } from '../../src/cluster/Transport.js';
import { GenServer } from '../../src/otp/GenServer.js';
import { isDown, isExit, type Down, type Exit } from '../../src/runtime/messages.js';
import type { Node } from '../../src/runtime/types.js';
import { PidImpl, type Pid } from '../../src/runtime/Pid.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { failure, useNodes } from '../support.js';
import { memoryPair, probedTransport } from './support.js';

const track = useNodes();

const pair = (options?: Partial<ClusterOptions>) => memoryPair(track, options);


const echo = {
  init: () => 0,
  handleCall: (req: string, _from: unknown, s: number) => ({ reply: `echo:${req}`, state: s }),
};

/** Resolves once what `from` sent before it has reached `to` (frames of one pair arrive in order). */
async function roundTrip(from: Node, to: Node): Promise<void> {
  const p = probe(to);
  from.send(p, 'round-trip');
  await p.receive((m) => m === 'round-trip');
  to.exit(p, 'kill');
}

describe('join on a node that stops meanwhile', () => {
  it('a node shut down while its transport starts does not stay in the cluster', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const inner = net.transport();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let closed = 0;
    const transport: Transport = {
      kind: 'memory',
      get maxBatchSize() {
        return inner.maxBatchSize;
      },
      start: async (self, handler) => {
        await gate;
        return inner.start(self, handler);
      },
      send: (p, batch) => inner.send(p, batch),
      broadcast: (batch) => inner.broadcast(batch),
      probe: (p, t) => inner.probe(p, t),
      flush: () => inner.flush(),
      close: () => {
        closed++;
        return inner.close();
      },
    };
    const joining = Cluster.join(a, { transport });
    const stopped = a.shutdown();
    release();
    const error = await failure(() => joining);
    await stopped;
    expect((error as { code?: string }).code).toBe('ERR_NODE_STOPPED');
    expect(closed).toBe(1);
    expect(net.names).toEqual([]);
  });
});

describe('a peer downed while its batch is processed', () => {
  it('frames after the down (user code run in the batch left the cluster) tie nothing', async () => {
    const { a, b, ca } = await pair();
    const live = probe(a);
    // user code run synchronously by a frame of the batch: a telemetry handler on a drop
    a.telemetry.attach('leave-on-drop', ['keel.message.dropped'], () => {
      a.telemetry.detach('leave-on-drop');
      void ca.leave();
    });
    const watcher = probe(b);
    watcher.ctx.trapExits(true);
    const dead = new PidImpl('a', a.creation, 999_999) as unknown as Pid;
    // one batch from b: a message to a dead pid (its drop runs the handler), then a link and a monitor
    watcher.ctx.send(dead, 'x');
    watcher.ctx.link(live);
    watcher.ctx.monitor(live);
    await watcher.receive(isExit, { timeout: 5000 }); // b hears a's goodbye: noconnection
    expect(ca.internals()).toEqual({ peers: 0, entries: 0, books: 0, outbox: 0 });
  });
});

describe('heartbeats while this node\'s event loop was busy', () => {
  it('a long synchronous stretch on the node is not its peers\' silence', async () => {
    const { a, b } = await pair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 });
    const events = captureEvents(a, ['keel.cluster.node_down']);
    const end = Date.now() + 400;
    while (Date.now() < end) {
      // the event loop is busy (a long computation): nothing is heard meanwhile, from anyone
    }
    // a few round trips after it: the peers' heartbeats, waiting in the queue, are heard
    for (let i = 0; i < 5; i++) {
      const p = probe(b);
      a.send(p, i);
      await p.receive((m) => m === i, { timeout: 5000 });
      b.exit(p, 'kill');
    }
    expect(events.events.map((e) => e.metadata.reason)).toEqual([]);
    events.stop();
  });
});

describe('a peer downed by a probe that was wrong', () => {
  it('a peer downed as gone that speaks again is told it was down, so its monitor still gets its one Down', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const inner = net.transport();
    let handlerOfA: Parameters<Transport['start']>[1] | undefined;
    let lie = false;
    // a transport that answers 'gone' once for a peer that is there (NATS: no responders while the peer reconnects)
    const transport = probedTransport(inner, (p, t) => (lie ? ((lie = false), Promise.resolve('gone' as const)) : inner.probe(p, t)), (h) => (handlerOfA = h));
    const ca = await Cluster.join(a, { transport });
    const cb = await Cluster.join(b, { transport: net.transport() });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    const target = a.spawn(() => () => undefined);
    const watcher = probe(b);
    watcher.ctx.monitor(target);
    await b.idle();
    await a.idle();
    const downs = captureEvents(a, ['keel.cluster.node_down']);
    const downed = new Promise<void>((resolve) => a.telemetry.attach('downed', ['keel.cluster.node_down'], () => resolve()));
    lie = true;
    handlerOfA!.peerGone('b');
    await downed;
    a.telemetry.detach('downed');
    await ca.waitFor(['b']); // b's next heartbeat: a takes it up again
    a.exit(target, 'kill');
    const down = await watcher.receive(isDown, { timeout: 5000 });
    expect(['noconnection', 'killed']).toContain((down as Down).reason);
    expect(downs.events.map((e) => e.metadata.reason)).toEqual(['port_closed']);
    downs.stop();
  });
});

/** Two nodes: `a` takes a silent peer for down within 200 ms, `b` is patient (two minutes). */
async function impatientPair() {
  const net = new MemoryNetwork();
  const a = track({ name: 'a' });
  const b = track({ name: 'b' });
  const ca = await Cluster.join(a, { transport: net.transport(), heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 });
  const cb = await Cluster.join(b, { transport: net.transport(), heartbeatMs: 20, suspectAfterMs: 60_000, downAfterMs: 120_000 });
  await ca.waitFor(['b']);
  await cb.waitFor(['a']);
  return { net, a, b, ca, cb };
}

/** Cuts `b` off until `a` takes it for down. */
async function aDownsB(net: MemoryNetwork, a: Node): Promise<void> {
  const downed = new Promise<void>((resolve) => a.telemetry.attach('downed', ['keel.cluster.node_down'], () => resolve()));
  net.isolate('b');
  await downed;
  a.telemetry.detach('downed');
}

describe("the '!' reset", () => {
  it('ties a peer made before it learned it was down leave no entry behind on the side that downed it', async () => {
    const { net, a, b, ca, cb } = await impatientPair();
    const target = probe(a);
    const watcher = probe(b);
    watcher.ctx.trapExits(true);
    await aDownsB(net, a); // b, patient, does not take a for down
    net.heal('b');
    // b ties its process to a's before it hears that a had taken it for down
    watcher.ctx.monitor(target);
    watcher.ctx.link(target);
    const down = await watcher.receive(isDown, { timeout: 5000 });
    const exit = await watcher.receive(isExit, { timeout: 5000 });
    expect([(down as Down).reason, (exit as { reason: unknown }).reason]).toEqual(['noconnection', 'noconnection']);
    // a round trip a -> b -> a: whatever b sent before is in
    const back = probe(a);
    const there = probe(b);
    a.send(there, back);
    await there.receive();
    b.send(back, 'back');
    await back.receive((m) => m === 'back', { timeout: 5000 });
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
    expect(cb.internals()).toMatchObject({ entries: 0, books: 0 });
  });

  it('an unlink the peer sent before it learned it was down does not undo a link made since: both sides stay linked', async () => {
    const { net, a, b, ca, cb } = await impatientPair();
    const local = probe(a);
    const remote = probe(b);
    local.ctx.trapExits(true);
    remote.ctx.trapExits(true);
    local.ctx.link(remote);
    await roundTrip(a, b);
    await aDownsB(net, a); // b, patient, does not take a for down
    expect(((await local.receive(isExit, { timeout: 5000 })) as Exit).reason).toBe('noconnection');
    net.heal('b');
    await ca.waitFor(['b']); // b's heartbeat: a takes it up again and tells it so ('!') first
    // a links again after its '!'; b, not yet told, unlinks the link it still holds
    local.ctx.link(remote);
    remote.ctx.unlink(local);
    await roundTrip(a, b);
    await roundTrip(b, a);
    await roundTrip(a, b);
    expect(ca.internals()).toMatchObject({ entries: 1, books: 1 });
    expect(cb.internals()).toMatchObject({ entries: 1, books: 1 });
    // the new link stands both ways: b's process's death reaches a's
    b.exit(remote, 'kill');
    const exit = (await local.receive(isExit, { timeout: 5000 })) as Exit;
    expect([exit.from, exit.reason]).toEqual([{ node: 'b', creation: b.creation, id: remote.id }, 'killed']);
    expect(ca.internals()).toMatchObject({ entries: 0, books: 0 });
  });

  it('both sides downed each other: after the heal, each resets once and new ties work both ways', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const options = { heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 };
    const ca = await Cluster.join(a, { transport: net.transport(), ...options });
    const cb = await Cluster.join(b, { transport: net.transport(), ...options });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    const downs = [a, b].map((n) => new Promise<void>((resolve) => n.telemetry.attach('downed', ['keel.cluster.node_down'], () => resolve())));
    net.isolate('b');
    await Promise.all(downs);
    a.telemetry.detach('downed');
    b.telemetry.detach('downed');
    net.heal('b');
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    // a tie made now, from either side, holds: a death crosses it
    const server = await GenServer.start(b, echo, undefined);
    expect(await GenServer.call(a, server, 'x', { timeout: 5000 })).toBe('echo:x');
    const watcher = probe(a);
    watcher.ctx.trapExits(true);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.link(target);
    const sync = probe(b);
    a.send(sync, 'sync');
    await sync.receive((m) => m === 'sync', { timeout: 5000 });
    b.exit(target, new Error('gone'));
    const exit = await watcher.receive(isExit, { timeout: 5000 });
    expect(((exit as { reason: Error }).reason).message).toBe('gone');
  });
});

describe('joining again after leave', () => {
  it('is refused: peers remember the incarnation that said goodbye and would drop all it says', async () => {
    const { a, ca } = await pair();
    await ca.leave();
    const net2 = new MemoryNetwork();
    const error = await failure(() => Cluster.join(a, { transport: net2.transport() }));
    expect((error as { code?: string }).code).toBe('ERR_INVALID_ARGUMENT');
    expect(net2.names).toEqual([]);
  });
});

describe('a goodbye from a peer already down', () => {
  it('a goodbye of another incarnation does not cancel the reset owed to the one downed for silence: its monitor still gets its Down', async () => {
    const { net, a, b } = await impatientPair();
    const target = a.spawn(() => () => undefined);
    const watcher = probe(b);
    watcher.ctx.monitor(target);
    await roundTrip(b, a); // the monitor is on a
    await aDownsB(net, a); // a answered its side; b, patient, still holds its monitor
    net.heal('b');
    net.deliver('b', 'a', `[1,"b",${b.creation + 1},0,[["g"]]]`, true); // a goodbye in b's name, of an incarnation a never had up
    // b's next heartbeat: a tells it it was down, and b answers its monitor
    const down = await watcher.receive(isDown, { timeout: 5000 });
    expect((down as Down).reason).toBe('noconnection');
  });

  it('is not taken for the peer coming up (no node_up, no reset sent to a leaving node)', async () => {
    const { net, a, ca, cb } = await impatientPair();
    await aDownsB(net, a);
    const events = captureEvents(a, ['keel.cluster.node_']);
    net.heal('b');
    await cb.leave(); // its goodbye is the first word a hears from it again
    const sink = probe(a);
    a.send(sink, 'after'); // a later turn than the goodbye's delivery
    await sink.receive((m) => m === 'after', { timeout: 5000 });
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(events.events.map((e) => e.event)).toEqual([]);
    expect(ca.isConnected('b')).toBe(false);
    events.stop();
  });
});

describe('ties to another node\'s pids after this node left its cluster', () => {
  it('are answered with noconnection (as once net_kernel is gone), not noproc: a call, a monitor, a link, a send', async () => {
    const { a, b, ca } = await pair();
    const target = probe(b);
    const server = await GenServer.start(b, echo);
    await ca.leave();
    const watcher = probe<Down | Exit>(a);
    watcher.ctx.trapExits(true);
    watcher.ctx.monitor(target);
    expect(((await watcher.receive(isDown)) as Down).reason).toBe('noconnection');
    watcher.ctx.link(target);
    expect(((await watcher.receive(isExit)) as Exit).reason).toBe('noconnection');
    const e = (await failure(() => GenServer.call(a, server, 'x', 60_000))) as { code: string; node: string };
    expect(e.code).toBe('ERR_NOCONNECTION');
    expect(e.node).toBe('b');
    const dropped = captureEvents(a, ['keel.message.dropped']);
    a.send(target, 'lost');
    expect(dropped.events.map((d) => d.metadata.reason)).toEqual(['noconnection']);
    dropped.stop();
    expect(ca.internals()).toEqual({ peers: 0, entries: 0, books: 0, outbox: 0 });
  });
});
