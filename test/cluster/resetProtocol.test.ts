/* eslint-disable keel/no-unmanaged-monitor -- raw monitors across nodes are what the reset protocol answers */
// The reset protocol ('!' / '!!', numbered) when links are lost and back at different moments:
// driven over the in-memory network with transports that drop or hold chosen frames, so each
// ordering is played exactly. Whatever the ordering, no tie waits for ever and none is both
// answered with noconnection on one side and honoured on the other.
import { describe, expect, it } from 'vitest';
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { Transport, TransportHandler } from '../../src/cluster/Transport.js';
import { isDown, type Down } from '../../src/runtime/messages.js';
import type { Pid } from '../../src/runtime/Pid.js';
import type { Node } from '../../src/runtime/types.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';
import { crossTies } from './support.js';

const track = useNodes();

type Frame = unknown[];

/**
 * A transport over a memory network's whose outgoing frames the test controls: `drop` loses the
 * frames it matches (a peer not subscribed), `rewrite` changes the frames that go out (a node of an
 * earlier version), `hold` keeps every batch back until `release` (a slow path: order is kept),
 * `reconnect` plays the transport saying its link is back.
 */
function controlled(inner: Transport) {
  let handler: TransportHandler | undefined;
  let dropping: ((f: Frame) => boolean) | undefined;
  let rewriting: ((f: Frame) => Frame) | undefined;
  let held: [string, string][] | undefined;
  const waiters: { match: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  let broadcasts = 0;
  const tickWaiters: { at: number; resolve: () => void }[] = [];
  const transport: Transport = {
    kind: 'memory',
    get maxBatchSize() {
      return inner.maxBatchSize;
    },
    start: (self, h) => {
      handler = h;
      return inner.start(self, h);
    },
    send: (peer, batch) => {
      const data = JSON.parse(batch) as [number, string, number, number, Frame[]];
      if (dropping !== undefined) {
        data[4] = data[4].filter((f) => !dropping!(f));
        if (data[4].length === 0) return;
        batch = JSON.stringify(data);
      }
      if (rewriting !== undefined) {
        data[4] = data[4].map(rewriting);
        batch = JSON.stringify(data);
      }
      for (const w of [...waiters]) {
        const found = data[4].find(w.match);
        if (found !== undefined) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(found);
        }
      }
      if (held !== undefined) held.push([peer, batch]);
      else inner.send(peer, batch);
    },
    broadcast: (batch) => {
      inner.broadcast(batch);
      broadcasts++; // one heartbeat per tick
      for (const w of [...tickWaiters]) {
        if (broadcasts < w.at) continue;
        tickWaiters.splice(tickWaiters.indexOf(w), 1);
        w.resolve();
      }
    },
    probe: (peer, timeoutMs) => inner.probe(peer, timeoutMs),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return {
    transport,
    reconnect: () => handler!.connection('reconnected'),
    drop: (match: ((f: Frame) => boolean) | undefined) => (dropping = match),
    rewrite: (map: ((f: Frame) => Frame) | undefined) => (rewriting = map),
    hold: () => (held = []),
    release: () => {
      const batches = held ?? [];
      held = undefined;
      for (const [peer, batch] of batches) inner.send(peer, batch);
    },
    /** Resolves after `n` more heartbeats (ticks) of this node. */
    ticks: (n: number) => new Promise<void>((resolve) => tickWaiters.push({ at: broadcasts + n, resolve })),
    /** Resolves with the first frame `match` takes once it has been sent, as it went out (dropped: not; rewritten: as rewritten). */
    sent: (match: (f: Frame) => boolean) => new Promise<Frame>((resolve) => waiters.push({ match, resolve })),
  };
}

/** Resolves once what `from` sent before it has reached `to` (frames of one pair arrive in order). */
async function roundTrip(from: Node, to: Node): Promise<void> {
  const p = probe(to);
  from.send(p, 'round-trip');
  await p.receive((m) => m === 'round-trip', { timeout: 5000 });
  to.exit(p, 'kill');
}

/** Round trips both ways, a few times: every reset frame in flight has been answered. */
async function settle(a: Node, b: Node): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await roundTrip(a, b);
    await roundTrip(b, a);
  }
}

/** After every frame in flight has been answered, neither end holds an entry for the other: no tie is left waiting. */
async function converged(a: Node, b: Node, ca: Cluster, cb: Cluster): Promise<void> {
  await settle(a, b);
  expect(ca.internals()).toMatchObject({ peers: 1, entries: 0 });
  expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 });
}

async function controlledPair(options: Partial<ClusterOptions>) {
  const net = new MemoryNetwork();
  const a = track({ name: 'a' });
  const b = track({ name: 'b' });
  const ta = controlled(net.transport());
  const tb = controlled(net.transport());
  const ca = await Cluster.join(a, { transport: ta.transport, ...options });
  const cb = await Cluster.join(b, { transport: tb.transport, ...options });
  await ca.waitFor(['b']);
  await cb.waitFor(['a']);
  return { net, a, b, ca, cb, ta, tb };
}

/** Ticks far apart: nothing here is resent by the heartbeat, so each test shows the frames' own logic. */
const quiet = { heartbeatMs: 10_000, suspectAfterMs: 30_000, downAfterMs: 600_000, probeTimeoutMs: 1000 };

/** A monitor made now from a process of `a` on a new process of `b` holds: the target's death crosses it. */
async function tieHolds(a: Node, b: Node): Promise<void> {
  const watcher = probe(a);
  const target = b.spawn(() => () => undefined);
  watcher.ctx.monitor(target);
  await roundTrip(a, b);
  b.exit(target, 'kill');
  const down = (await watcher.receive(isDown, { timeout: 5000 })) as Down;
  expect(down.reason).toBe('killed');
}

/**
 * The tie `watcher` (of a) holds on `target` (of b), made in the gap, is answered with noconnection,
 * once; then both ends converge, and new ties hold both ways.
 */
async function answeredOnce(watcher: ReturnType<typeof probe>, target: Pid, { a, b, ca, cb }: { a: Node; b: Node; ca: Cluster; cb: Cluster }): Promise<void> {
  const down = (await watcher.receive(isDown, { timeout: 5000 })) as Down;
  expect([String(down.pid), down.reason]).toEqual([String(target), 'noconnection']);
  await converged(a, b, ca, cb);
  await tieHolds(a, b);
  await tieHolds(b, a);
  expect(watcher.messages.filter(isDown)).toHaveLength(1);
}

describe('the numbered reset protocol', () => {
  it("staggered: a is back first and its '!' is lost (b not yet subscribed), with a tie a made meanwhile; b back later: the tie is answered with noconnection, and both converge", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    ta.drop(() => true); // b is not subscribed: everything a sends is lost
    ta.reconnect();
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.monitor(target); // made after a's reset: its frame is lost too
    await a.idle();
    ta.drop(undefined); // b subscribes again
    tb.reconnect();
    // a took b's '!' for one that crossed its own; b's answer finds a's '!' never came, and resets again
    await answeredOnce(watcher, target, { a, b, ca, cb });
  });

  it("one end resets and its '!' is lost, the other never resets: the '!' is sent again after suspectAfterMs, and the tie the peer held is answered", async () => {
    const { a, b, ca, cb, tb } = await controlledPair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 600_000, probeTimeoutMs: 30 });
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.monitor(target);
    await roundTrip(a, b); // the monitor is on b
    let lost = 0;
    tb.drop((f) => f[0] === '!' && lost++ === 0); // b's first '!' is lost
    tb.reconnect(); // b answers its ties (the monitor of a's process) and tells a... nothing arrives
    const resent = tb.sent((f) => f[0] === '!');
    await resent;
    tb.drop(undefined);
    const down = (await watcher.receive(isDown, { timeout: 5000 })) as Down;
    expect(down.reason).toBe('noconnection');
    await converged(a, b, ca, cb);
    await tieHolds(a, b);
  });

  it("a '!' sent again crosses the peer's own '!' after the first was lost with a tie made in the gap: the tie is answered with noconnection, not left waiting for ever", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 600_000, probeTimeoutMs: 30 });
    ta.drop(() => true); // b is not subscribed: everything a sends is lost
    ta.reconnect(); // a's reset: its '!' is lost
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.monitor(target); // made after a's reset: its frame is lost too
    await a.idle();
    tb.hold(); // b's frames to a are slow: its '!' among them
    tb.reconnect(); // b back: its own reset, on its way
    ta.drop(undefined); // b subscribed again
    await ta.sent((f) => f[0] === '!'); // a's '!' sent again after suspectAfterMs, before b's arrives: they cross
    await roundTrip(a, b); // b has handled it
    tb.release();
    await settle(a, b);
    await answeredOnce(watcher, target, { a, b, ca, cb });
  });

  it("a peer whose '!!' is slow is reset again after suspectAfterMs, then after twice as long each time, not at every suspectAfterMs; once an answer arrives in time, both settle", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair({ heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 600_000, probeTimeoutMs: 30 });
    let bangs = 0;
    ta.rewrite((f) => {
      if (f[0] === '!') bangs++;
      return f;
    });
    tb.hold(); // every '!!' of b's (and all it sends) is held: a slow path
    ta.reconnect();
    // 75 ticks of 20 ms: every suspectAfterMs would be 25 resets; doubling waits 60, 120, 240, 480, 960 ms
    await ta.ticks(75);
    expect(bangs).toBeGreaterThanOrEqual(4);
    expect(bangs).toBeLessThanOrEqual(6);
    tb.release(); // the held answers arrive: the last one answers a's latest reset
    await converged(a, b, ca, cb);
    await tieHolds(a, b);
    await tieHolds(b, a);
  });

  it("both ends reset at once (the '!'s cross): ties made before are answered once on each side, ties made right after are honoured on both", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    const { onA, onB, targetOnA, targetOnB } = crossTies(a, b);
    await settle(a, b);
    ta.reconnect();
    tb.reconnect();
    // made after each reset, before the '!'s cross
    const afterOnB = b.spawn(() => () => undefined);
    const afterOnA = a.spawn(() => () => undefined);
    onA.ctx.monitor(afterOnB);
    onB.ctx.monitor(afterOnA);
    await settle(a, b);
    b.exit(afterOnB, 'kill');
    a.exit(afterOnA, 'kill');
    await settle(a, b);
    expect(onA.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([
      [String(targetOnB), 'noconnection'],
      [String(afterOnB), 'killed'],
    ]);
    expect(onB.messages.filter(isDown).map((d) => [String(d.pid), d.reason])).toEqual([
      [String(targetOnA), 'noconnection'],
      [String(afterOnA), 'killed'],
    ]);
    expect(ca.internals()).toMatchObject({ peers: 1, entries: 0 });
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 });
  });

  it("a stale '!!' (the answer to b's older reset) arriving after b's newer '!' does not end b's wait: a tie a asked in between, answered on a's side by the newer reset, makes none on b", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    ta.hold(); // a's frames to b are slow: held, in order
    const firstAnswer = ta.sent((f) => f[0] === '!!');
    tb.reconnect(); // b's reset 1
    await firstAnswer; // a answered it ('!!' 1, held)
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.monitor(target); // asked before a knows of b's next reset: its frame follows '!!' 1
    await a.idle();
    const secondAnswer = ta.sent((f) => f[0] === '!!');
    tb.reconnect(); // b's reset 2: a answers the monitor with noconnection
    await secondAnswer;
    const down = (await watcher.receive(isDown, { timeout: 5000 })) as Down;
    expect(down.reason).toBe('noconnection');
    ta.release(); // b gets '!!' 1 (stale), the monitor, '!!' 2
    await settle(a, b);
    expect(ca.internals()).toMatchObject({ peers: 1, entries: 0 });
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 }); // no monitor of a process of a that a has answered
    b.exit(target, 'kill');
    await settle(a, b);
    expect(watcher.messages.filter(isDown)).toHaveLength(1);
    await tieHolds(a, b);
    await tieHolds(b, a);
  });
});

/** What a node of an earlier version sends for a '!' or '!!': the bare tag, no number. */
const unnumbered = (f: Frame): Frame => (f[0] === '!' || f[0] === '!!' ? [f[0]] : f);

describe('a peer that numbers no reset (an earlier version)', () => {
  it("its unnumbered '!' is answered with an unnumbered '!!', and every tie with it is answered with noconnection, as before", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    const { onA, onB, targetOnA, targetOnB } = crossTies(a, b);
    await settle(a, b);
    ta.rewrite(unnumbered); // a plays the earlier version
    const asked = ta.sent((f) => f[0] === '!');
    const answer = tb.sent((f) => f[0] === '!!');
    ta.reconnect(); // a answers its ties and sends its '!'
    expect(await asked).toEqual(['!']);
    expect(await answer).toEqual(['!!']);
    const downOnB = (await onB.receive(isDown, { timeout: 5000 })) as Down;
    expect([String(downOnB.pid), downOnB.reason]).toEqual([String(targetOnA), 'noconnection']);
    const downOnA = (await onA.receive(isDown, { timeout: 5000 })) as Down;
    expect([String(downOnA.pid), downOnA.reason]).toEqual([String(targetOnB), 'noconnection']);
    await converged(a, b, ca, cb);
    await tieHolds(a, b);
    await tieHolds(b, a);
    expect(onA.messages.filter(isDown)).toHaveLength(1);
    expect(onB.messages.filter(isDown)).toHaveLength(1);
  });

  it("its unnumbered '!!' ends this node's wait for the answer to its numbered reset: a tie the peer asks next is honoured", async () => {
    const { a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    const onA = probe(a);
    const targetOnB = b.spawn(() => () => undefined);
    onA.ctx.monitor(targetOnB);
    await settle(a, b);
    ta.rewrite(unnumbered); // a plays the earlier version
    const asked = tb.sent((f) => f[0] === '!');
    const answer = ta.sent((f) => f[0] === '!!');
    tb.reconnect(); // b's reset, numbered: b answers its ties and waits for the '!!'
    expect(await asked).toEqual(['!', 1, 0]);
    expect(await answer).toEqual(['!!']);
    const down = (await onA.receive(isDown, { timeout: 5000 })) as Down;
    expect([String(down.pid), down.reason]).toEqual([String(targetOnB), 'noconnection']);
    await converged(a, b, ca, cb);
    // b still waiting would ignore this monitor (asked, it would think, before a knew of the reset)
    await tieHolds(a, b);
    await tieHolds(b, a);
    expect(onA.messages.filter(isDown)).toHaveLength(1);
  });
});

/** Numbers a reset frame cannot carry: negative, zero (for a reset's own number), "NaN" and "1" as text, a fraction, past 2^53, Infinity (1e400 parsed), null. */
const badCounts = ['-1', '"NaN"', '"1"', '1.5', '9007199254740992', '1e400', 'null', '{}'];

describe('malformed reset frames', () => {
  it("a '!' or '!!' with a number that is not a count is dropped as malformed: nothing is answered or recorded, the frames around it are handled", async () => {
    const { net, a, b, ca, cb, ta, tb } = await controlledPair(quiet);
    const onB = probe(b);
    const targetOnA = a.spawn(() => () => undefined);
    onB.ctx.monitor(targetOnA);
    await settle(a, b);
    const sink = probe(b);
    const dropped = captureEvents(b, ['keel.cluster.frame_dropped']);
    const resetsOfB: Frame[] = [];
    tb.rewrite((f) => {
      if (f[0] === '!' || f[0] === '!!') resetsOfB.push(f);
      return f;
    });
    const frames = [
      ...[...badCounts, '0'].flatMap((bad) => [`["!",${bad}]`, `["!",${bad},0]`, `["!!",${bad}]`]),
      ...badCounts.flatMap((bad) => [`["!",1,${bad}]`, `["!!",1,${bad}]`]),
    ];
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["!",NaN]]]`, false); // NaN as JSON cannot carry it: the batch is unreadable
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[${frames.join(',')},["m",${sink.id},0,"after"]]]`, false);
    expect(await sink.receive((m) => m === 'after', { timeout: 5000 })).toBe('after');
    await settle(a, b);
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(Array(1 + frames.length).fill('malformed'));
    dropped.stop();
    expect(resetsOfB).toEqual([]); // b answered none and reset nothing
    expect(onB.messages.filter(isDown)).toEqual([]); // the tie with a stands
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 1 });
    await tieHolds(a, b);
    await tieHolds(b, a);
    // a's first real reset is number 1: none of the malformed '!'s above was taken as answering it
    tb.rewrite(undefined);
    const answer = tb.sent((f) => f[0] === '!!');
    ta.reconnect();
    expect(await answer).toEqual(['!!', 1]);
    const down = (await onB.receive(isDown, { timeout: 5000 })) as Down;
    expect([String(down.pid), down.reason]).toEqual([String(targetOnA), 'noconnection']);
    await converged(a, b, ca, cb);
  });

  it("a malformed '!!' does not end this node's wait for its reset's answer, and the real one still does", async () => {
    const { net, a, b, ca, cb, tb } = await controlledPair(quiet);
    const onA = probe(a);
    const targetOnB = b.spawn(() => () => undefined);
    const dropped = captureEvents(b, ['keel.cluster.frame_dropped']);
    tb.hold(); // b's frames to a are slow: its '!' among them
    tb.reconnect(); // b's reset 1: b waits for its '!!'
    const frames = [...badCounts.map((bad) => `["!!",${bad}]`), ...badCounts.map((bad) => `["!!",1,${bad}]`)];
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[${frames.join(',')}]]`, false);
    onA.ctx.monitor(targetOnB); // asked before a knows of b's reset
    await roundTrip(a, b);
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(Array(frames.length).fill('malformed'));
    dropped.stop();
    expect(cb.internals()).toMatchObject({ peers: 1, entries: 0 }); // b still waits: the monitor made no tie here
    tb.release(); // a gets b's '!', answers the monitor with noconnection, and its '!!' ends b's wait
    const down = (await onA.receive(isDown, { timeout: 5000 })) as Down;
    expect([String(down.pid), down.reason]).toEqual([String(targetOnB), 'noconnection']);
    await converged(a, b, ca, cb);
    await tieHolds(a, b);
    await tieHolds(b, a);
  });
});
