// The NATS transport: the shared behaviour suite on a nats-server of this file's own, then what is
// NATS's alone: cluster isolation, the sender token, the permissions that make it proof, reconnects,
// and hostile arguments.
import fs from 'node:fs';
import path from 'node:path';
import { connect, type NatsConnection, type Status } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { isKeelError } from '../../src/errors.js';
import { clusterPermissions, natsTransport } from '../../src/cluster/transports/nats.js';
import type { Transport } from '../../src/cluster/Transport.js';
import { type NatsServer, startNatsServer, useNatsServer, skipWithoutNats } from './natsServer.js';
import { Recorder, startAll, transportSuite } from './transportSuite.js';

const server = useNatsServer();
let clusters = 0;
/** A fresh cluster name per test, so the tests on the shared server never see each other's traffic. */
const freshCluster = (): string => `t${++clusters}-${process.pid}`;

describe.skipIf(skipWithoutNats)('nats transport: the shared behaviour suite', () => {
  transportSuite(
    'nats',
    async (names) => {
      const cluster = freshCluster();
      return { transports: names.map(() => natsTransport({ servers: server().url, cluster })), close: async () => {} };
    },
    { probeUnknown: 'gone', knowsGone: false },
  );
});

/** Errors and statuses of a raw client, awaitable. */
function watchStatus(nc: NatsConnection): { errors: Error[]; next(pred: (e: Error) => boolean): Promise<Error> } {
  const errors: Error[] = [];
  let wake: (() => void) | undefined;
  void (async () => {
    for await (const s of nc.status() as AsyncIterable<Status>) {
      if (s.type === 'error') {
        errors.push(s.error);
        wake?.();
      }
    }
  })();
  return {
    errors,
    async next(pred) {
      for (;;) {
        const found = errors.find(pred);
        if (found !== undefined) return found;
        await new Promise<void>((resolve) => (wake = resolve));
      }
    },
  };
}

describe.skipIf(skipWithoutNats)('nats transport: cluster isolation and the sender token', () => {
  it('two clusters on one server never mix: sends, broadcasts and probes stay inside each', async () => {
    const make = (cluster: string) => async (names: readonly string[]) => ({
      transports: names.map(() => natsTransport({ servers: server().url, cluster })),
      close: async () => {},
    });
    const x = await startAll(make(freshCluster()), ['A', 'B']);
    const y = await startAll(make(freshCluster()), ['A', 'B', 'C']);
    try {
      x.transports[0]!.send('B', 'x-to-B');
      x.transports[0]!.broadcast('x-hello');
      y.transports[0]!.send('B', 'y-to-B');
      y.transports[0]!.broadcast('y-hello');
      const [, xb] = x.recorders;
      const [, yb, yc] = y.recorders;
      await xb!.until(() => xb!.received.length >= 1 && xb!.broadcasts.length >= 1);
      await yb!.until(() => yb!.received.length >= 1 && yb!.broadcasts.length >= 1);
      await yc!.until(() => yc!.broadcasts.length >= 1);
      // a second round, sent after the first arrived: anything that leaked would have come before it
      x.transports[0]!.send('B', 'x-end');
      y.transports[0]!.send('B', 'y-end');
      await xb!.until(() => xb!.received.length >= 2);
      await yb!.until(() => yb!.received.length >= 2);
      expect(xb!.received.map((r) => r.batch)).toEqual(['x-to-B', 'x-end']);
      expect(yb!.received.map((r) => r.batch)).toEqual(['y-to-B', 'y-end']);
      expect(xb!.broadcasts).toEqual([{ from: 'A', batch: 'x-hello' }]);
      expect(yb!.broadcasts).toEqual([{ from: 'A', batch: 'y-hello' }]);
      // C lives in cluster y only
      expect(await x.transports[0]!.probe('C', 2_000)).toBe('gone');
      expect(await y.transports[0]!.probe('C', 2_000)).toBe('alive');
    } finally {
      await x.release();
      await y.release();
    }
  }, 30_000);

  it('reports the sender token of the subject: a raw publish to keel.C.in.B.A arrives from A (the cluster checks the frames)', async () => {
    const cluster = freshCluster();
    const nodes = await startAll(async (names) => ({ transports: names.map(() => natsTransport({ servers: server().url, cluster })), close: async () => {} }), ['B']);
    const raw = await connect({ servers: server().url });
    try {
      raw.publish(`keel.${cluster}.in.B.A`, 'forged-as-A');
      // more tokens than the inbound subject has: matches no subscription
      raw.publish(`keel.${cluster}.in.B.A.extra`, 'too-many-tokens');
      raw.publish(`keel.${cluster}.in.B.Z`, 'as-Z');
      const [rb] = nodes.recorders;
      await rb!.until(() => rb!.received.length >= 2);
      expect(rb!.received).toEqual([
        { from: 'A', batch: 'forged-as-A' },
        { from: 'Z', batch: 'as-Z' },
      ]);
    } finally {
      await raw.close();
      await nodes.release();
    }
  }, 30_000);

  it('works on a connection given with `connect`, and leaves it open on close', async () => {
    const { nc, mine, peer, rPeer } = await givenPair();
    try {
      mine.send('B', 'on-given-connection');
      await rPeer.until(() => rPeer.received.length >= 1);
      expect(rPeer.received).toEqual([{ from: 'A', batch: 'on-given-connection' }]);
      await mine.close();
      expect(nc.isClosed()).toBe(false);
      expect(await peer.probe('A', 2_000)).toBe('gone');
    } finally {
      await mine.close();
      await peer.close();
      await nc.close();
    }
  }, 30_000);
});

/** A transport A on a connection given with `connect` and a peer B on its own, both started (the caller closes them). */
async function givenPair() {
  const cluster = freshCluster();
  const nc = await connect({ servers: server().url });
  const mine = natsTransport({ cluster, connect: nc });
  const peer = natsTransport({ servers: server().url, cluster });
  const rMine = new Recorder();
  const rPeer = new Recorder();
  await mine.start({ name: 'A', incarnation: 1 }, rMine);
  await peer.start({ name: 'B', incarnation: 1 }, rPeer);
  return { nc, mine, peer, rMine, rPeer };
}

describe.skipIf(skipWithoutNats)('nats transport: a given connection closed under it', () => {
  it('its owner closing the connection is reported as disconnected (the node is cut off for good), and sends, broadcasts, probes and close after it settle without throwing', async () => {
    const { nc, mine, peer, rMine } = await givenPair();
    try {
      await nc.close();
      await rMine.until(() => rMine.states.length >= 1);
      expect(rMine.states).toEqual(['disconnected']);
      expect(() => mine.send('B', 'after-close')).not.toThrow();
      expect(() => mine.broadcast('after-close')).not.toThrow();
      expect(await mine.probe('B', 1_000)).toBe('timeout');
      await mine.flush();
      await mine.close();
      await mine.close();
      expect(rMine.states).toEqual(['disconnected']);
    } finally {
      await mine.close();
      await peer.close();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: a server with a smaller max_payload after a reconnect', () => {
  let big: NatsServer | undefined;
  let small: NatsServer | undefined;
  afterAll(async () => {
    await big?.stop();
    await small?.stop();
  }, 30_000);

  it('a batch within maxBatchSize that the new server refuses is a counted drop (overloaded, reason oversized), never a silent one; the next batch arrives', async () => {
    big = await startNatsServer();
    small = await startNatsServer({ config: 'max_payload: 65536\n' });
    const cluster = freshCluster();
    const nc = await connect({ servers: [big.url, small.url], noRandomize: true, reconnectTimeWait: 50, maxReconnectAttempts: -1 });
    const mine = natsTransport({ cluster, connect: nc });
    const peer = natsTransport({ servers: small.url, cluster });
    const dropped: [string, number, string | undefined][] = [];
    const rMine = new Recorder();
    const rPeer = new Recorder();
    (rMine as Recorder & { overloaded(peer: string, size: number, reason?: string): void }).overloaded = (p, size, reason) => {
      dropped.push([p, size, reason]);
      rMine.peerGone('(dropped)'); // wakes until()
    };
    try {
      await mine.start({ name: 'A', incarnation: 1 }, rMine);
      await peer.start({ name: 'B', incarnation: 1 }, rPeer);
      expect(mine.maxBatchSize).toBe(Math.floor((1024 * 1024 - 1024) / 3));
      await big.kill('SIGKILL');
      await rMine.until(() => rMine.states.includes('reconnected'));
      expect(nc.info?.max_payload).toBe(65536);
      await mine.flush();
      mine.send('B', 'x'.repeat(100_000));
      await rMine.until(() => dropped.length >= 1);
      expect(dropped).toEqual([['B', 100_000, 'oversized']]);
      mine.send('B', 'next');
      await rPeer.until(() => rPeer.received.length >= 1);
      expect(rPeer.received).toEqual([{ from: 'A', batch: 'next' }]);
    } finally {
      await mine.close();
      await peer.close();
      await nc.close();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: a server whose max_payload is too small for the cluster', () => {
  let tiny: NatsServer | undefined;
  afterAll(async () => {
    await tiny?.stop();
  }, 30_000);

  it('start refuses it with ERR_START_FAILED naming the max_payload and what the transport needs (it was accepted, with a maxBatchSize no frame fits), on its own connection or a given one', async () => {
    const nats = (tiny = await startNatsServer({ config: 'max_payload: 4096\n' }));
    const cluster = freshCluster();
    const owned = natsTransport({ servers: nats.url, cluster });
    const e = await owned.start({ name: 'A', incarnation: 1 }, new Recorder()).catch((error: unknown) => error);
    expect(e).toMatchObject({ code: 'ERR_START_FAILED', reason: { max_payload_too_small: { max_payload: 4096, needs: 13_312 } } });
    expect((e as Error).message).toContain('max_payload is 4096 bytes');
    expect((e as Error).message).toContain('at least 13312');
    await owned.close();
    const nc = await connect({ servers: nats.url });
    try {
      const given = natsTransport({ cluster, connect: nc });
      await expect(given.start({ name: 'B', incarnation: 1 }, new Recorder())).rejects.toMatchObject({ code: 'ERR_START_FAILED', reason: { max_payload_too_small: { max_payload: 4096, needs: 13_312 } } });
      // nothing of it was subscribed on the given connection, which stays open
      expect(nc.isClosed()).toBe(false);
      expect((nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size()).toBe(0);
      await given.close();
    } finally {
      await nc.close();
    }
    // the least it takes starts
    const enough = (tiny = await startNatsServer({ config: 'max_payload: 13312\n' }));
    await nats.stop();
    const t = natsTransport({ servers: enough.url, cluster });
    await t.start({ name: 'C', incarnation: 1 }, new Recorder());
    expect(t.maxBatchSize).toBe(4096);
    await t.close();
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: closed while it starts', () => {
  it('a close while start waits for its flush makes start reject with ERR_START_FAILED once the flush is answered (it resolved), leaving nothing subscribed on the given connection', async () => {
    const nc = await connect({ servers: server().url });
    try {
      const original = nc.flush.bind(nc);
      let answer: () => void = () => undefined;
      const answered = new Promise<void>((resolve) => (answer = resolve));
      let flushing: () => void = () => undefined;
      const flushed = new Promise<void>((resolve) => (flushing = resolve));
      // the server's answer to the start's flush is held (a server slow to answer) until the close is done
      const flush = vi.spyOn(nc, 'flush').mockImplementation(async () => {
        flushing();
        await answered;
        return original();
      });
      const t = natsTransport({ cluster: freshCluster(), connect: nc });
      const started = t.start({ name: 'A', incarnation: 1 }, new Recorder()).then(
        () => 'started',
        (e: unknown) => e,
      );
      await flushed;
      await t.close();
      answer();
      const e = await started;
      expect(e).toMatchObject({ code: 'ERR_START_FAILED' });
      expect((e as Error).message).toContain('closed');
      flush.mockRestore();
      expect(nc.isClosed()).toBe(false);
      expect((nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size()).toBe(0);
    } finally {
      await nc.close();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: under the cluster permissions', () => {
  const cluster = 'perm';
  const password = (node: string): string => `pw-${node}`;
  let permServer: NatsServer | undefined;
  beforeAll(async () => {
    const users = ['A', 'B', 'C'].map((n) => `    { user: "${n}", password: "${password(n)}", permissions: ${JSON.stringify(clusterPermissions(cluster, n))} }`);
    permServer = await startNatsServer({ config: `authorization {\n  users = [\n${users.join('\n')}\n  ]\n}\n` });
  }, 30_000);
  afterAll(async () => {
    await permServer?.stop();
  }, 30_000);

  const makeAs = async (names: readonly string[]) => ({
    transports: names.map((n) => natsTransport({ servers: permServer!.url, cluster, connection: { user: n, pass: password(n) } })),
    close: async () => {},
  });

  it('A and B talk, broadcast and probe; a raw client logged in as A cannot forge X, nor read B\'s inbound or replies', async () => {
    const nodes = await startAll(makeAs, ['A', 'B']);
    const raw = await connect({ servers: permServer!.url, user: 'A', pass: password('A') });
    const status = watchStatus(raw);
    try {
      const [a, b] = nodes.transports;
      const [ra, rb] = nodes.recorders;
      a!.send('B', 'a-to-b');
      b!.broadcast('b-hello');
      await rb!.until(() => rb!.received.length >= 1);
      await ra!.until(() => ra!.broadcasts.length >= 1);
      expect(rb!.received).toEqual([{ from: 'A', batch: 'a-to-b' }]);
      expect(ra!.broadcasts).toEqual([{ from: 'B', batch: 'b-hello' }]);
      expect(await a!.probe('B', 2_000)).toBe('alive');
      expect(await a!.probe('C', 2_000)).toBe('gone');

      // forging X: the server refuses the publish and tells the client
      raw.publish(`keel.${cluster}.in.B.X`, 'forged-as-X');
      const violation = await status.next((e) => e.name === 'PermissionViolationError' || /permissions violation/i.test(e.message));
      expect(violation.message).toMatch(/publish/i);
      expect(violation.message).toContain(`keel.${cluster}.in.B.X`);
      // reading B's inbound: refused too
      raw.subscribe(`keel.${cluster}.in.B.*`);
      const subViolation = await status.next((e) => /subscription/i.test(e.message) && e.message.includes(`keel.${cluster}.in.B.*`));
      expect(subViolation.message).toMatch(/permissions violation/i);
      // reading B's replies (its probes' answers): refused as well
      raw.subscribe(`_INBOX.keel.${cluster}.B.>`);
      const inboxViolation = await status.next((e) => /subscription/i.test(e.message) && e.message.includes(`_INBOX.keel.${cluster}.B.>`));
      expect(inboxViolation.message).toMatch(/permissions violation/i);
      // a publish A may make, after the forged one on the same connection: only it arrives
      raw.publish(`keel.${cluster}.in.B.A`, 'raw-as-A');
      await rb!.until(() => rb!.received.length >= 2);
      expect(rb!.received.map((r) => r.batch)).toEqual(['a-to-b', 'raw-as-A']);
      expect(rb!.received.every((r) => r.from === 'A')).toBe(true);
    } finally {
      await raw.close();
      await nodes.release();
    }
  }, 30_000);

  it("start fails with ERR_START_FAILED when the server refuses the node's subscriptions (C's user starting as B)", async () => {
    const t = natsTransport({ servers: permServer!.url, cluster, connection: { user: 'C', pass: password('C') } });
    const nodes = await startAll(makeAs, ['A']);
    try {
      const error: unknown = await t.start({ name: 'B', incarnation: 1 }, new Recorder()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_START_FAILED' });
      expect((error as Error).message).toMatch(/permissions violation for subscription/i);
      // nothing of "B" is left subscribed: its ping finds no responders
      expect(await nodes.transports[0]!.probe('B', 2_000)).toBe('gone');
    } finally {
      await t.close();
      await nodes.release();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: a subscription the server revokes after start', () => {
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  /**
   * A and B started on a nats-server of their own, whose configuration `revoke()` reloads without
   * B's permission to read its inbound subject (resolving once B says it is cut off).
   */
  async function revocable(cluster: string) {
    const password = (node: string): string => `pw-${node}`;
    const config = (revokeB: boolean): string => {
      const users = ['A', 'B'].map((n) => {
        const p = clusterPermissions(cluster, n);
        const permissions = revokeB && n === 'B' ? { publish: p.publish, subscribe: { allow: p.subscribe.allow.filter((x) => !x.includes('.in.')) } } : p;
        return `    { user: "${n}", password: "${password(n)}", permissions: ${JSON.stringify(permissions)} }`;
      });
      return `authorization {\n  users = [\n${users.join('\n')}\n  ]\n}\n`;
    };
    const nats = (own = await startNatsServer({ config: config(false) }));
    const a = natsTransport({ servers: nats.url, cluster, connection: { user: 'A', pass: password('A') } });
    const b = natsTransport({ servers: nats.url, cluster, connection: { user: 'B', pass: password('B') } });
    const ra = new Recorder();
    const rb = new Recorder();
    const close = async (): Promise<void> => {
      await a.close();
      await b.close();
      await nats.stop();
    };
    try {
      await a.start({ name: 'A', incarnation: 1 }, ra);
      await b.start({ name: 'B', incarnation: 1 }, rb);
    } catch (e) {
      await close();
      throw e;
    }
    const revoke = async (): Promise<void> => {
      fs.writeFileSync(path.join(nats.storeDir, 'server.conf'), config(true));
      process.kill(nats.pid, 'SIGHUP'); // nats-server reloads its configuration
      await rb.until(() => rb.states.includes('disconnected'));
    };
    return { a, b, ra, rb, revoke, close };
  }

  it("B's inbound subscription revoked by a configuration reload: B says it is cut off and leaves its other subscriptions, so that its peers find it gone (never a node that answers probes but hears nothing)", async () => {
    const { a, b, rb, revoke, close } = await revocable('revoked');
    try {
      a.send('B', 'before');
      await rb.until(() => rb.received.length >= 1);
      await revoke();
      expect(rb.states).toEqual(['disconnected']);
      // once B's connection has passed its unsubscribes on, nobody answers B's ping
      await b.flush();
      expect(await a.probe('B', 2_000)).toBe('gone');
    } finally {
      await close();
    }
  }, 30_000);

  it("a deaf B goes silent too: its heartbeats (broadcasts) and sends no longer reach its peers, which would keep it up for ever (never suspected, never probed) while it hears nothing", async () => {
    const { a, b, ra, revoke, close } = await revocable('revoked2');
    try {
      b.broadcast('beat-before');
      await ra.until(() => ra.broadcasts.length >= 1);
      await revoke();
      b.broadcast('beat-deaf');
      b.send('A', 'send-deaf');
      // the server has taken whatever B published once B's flush is answered; A's own word, published after, comes after it
      await b.flush();
      a.send('A', 'marker');
      await ra.until(() => ra.received.some((r) => r.batch === 'marker'));
      expect(ra.broadcasts.map((r) => r.batch)).toEqual(['beat-before']);
      expect(ra.received.map((r) => r.batch)).toEqual(['marker']);
      // nor does B take A for alive (A answers B's ping, but B would never hear A again): its cluster downs A after downAfterMs
      expect(await b.probe('A', 60_000)).toBe('timeout');
    } finally {
      await close();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: connection options pass through', () => {
  let tokenServer: NatsServer | undefined;
  beforeAll(async () => {
    tokenServer = await startNatsServer({ config: 'authorization { token: "s3cret-token" }\n' });
  }, 30_000);
  afterAll(async () => {
    await tokenServer?.stop();
  }, 30_000);

  it('a token server: the right token joins, a wrong or missing one fails start with ERR_START_FAILED', async () => {
    const cluster = freshCluster();
    const nodes = await startAll(async (names) => ({ transports: names.map(() => natsTransport({ servers: tokenServer!.url, cluster, connection: { token: 's3cret-token' } })), close: async () => {} }), ['A', 'B']);
    try {
      expect(await nodes.transports[0]!.probe('B', 2_000)).toBe('alive');
      for (const connection of [{ token: 'wrong' }, {}]) {
        const t = natsTransport({ servers: tokenServer!.url, cluster, connection });
        const error: unknown = await t.start({ name: 'C', incarnation: 1 }, new Recorder()).catch((e: unknown) => e);
        expect(error).toMatchObject({ code: 'ERR_START_FAILED' });
        expect((error as Error).message).toMatch(/authoriz/i);
        await t.close();
      }
    } finally {
      await nodes.release();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats-server harness', () => {
  it('a JetStream server has its store in storeDir, keeps it across restart (a new pid, the same port), and removes it on stop', async () => {
    const js = await startNatsServer({ jetstream: true });
    try {
      const nc = await connect({ servers: js.url });
      expect(nc.info?.jetstream).toBe(true);
      await nc.close();
      expect(fs.existsSync(path.join(js.storeDir, 'jetstream'))).toBe(true);
      const before = js.pid;
      await js.restart();
      expect(js.pid).not.toBe(before);
      const again = await connect({ servers: js.url });
      expect(again.info?.port).toBe(js.port);
      await again.close();
    } finally {
      await js.stop();
    }
    expect(fs.existsSync(js.storeDir)).toBe(false);
    await expect(js.restart()).rejects.toThrow(/stopped/);
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: nats-server killed and restarted', () => {
  // this test's own server (it is killed): stopped in afterAll too, which runs even when the test times out
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  it('reports disconnected then reconnected, and sends after the reconnect arrive', async () => {
    const nats = (own = await startNatsServer());
    const cluster = freshCluster();
    const nodes = await startAll(async (names) => ({ transports: names.map(() => natsTransport({ servers: nats.url, cluster })), close: async () => {} }), ['A', 'B']);
    try {
      const [a, b] = nodes.transports;
      const [ra, rb] = nodes.recorders;
      a!.send('B', 'before');
      await rb!.until(() => rb!.received.length >= 1);
      await nats.kill('SIGKILL');
      await ra!.until(() => ra!.states.includes('disconnected'));
      await rb!.until(() => rb!.states.includes('disconnected'));
      await nats.restart();
      await ra!.until(() => ra!.states.includes('reconnected'));
      await rb!.until(() => rb!.states.includes('reconnected'));
      expect(ra!.states).toEqual(['disconnected', 'reconnected']);
      expect(rb!.states).toEqual(['disconnected', 'reconnected']);
      // B's subscriptions are back on the server once its flush returns
      await b!.flush();
      expect(await a!.probe('B', 5_000)).toBe('alive');
      a!.send('B', 'after');
      b!.send('A', 'after-too');
      await rb!.until(() => rb!.received.length >= 2);
      await ra!.until(() => ra!.received.length >= 1);
      expect(rb!.received.map((r) => r.batch)).toEqual(['before', 'after']);
      expect(ra!.received).toEqual([{ from: 'B', batch: 'after-too' }]);
    } finally {
      await nodes.release();
      await nats.stop();
    }
  }, 60_000);
});

describe.skipIf(skipWithoutNats)('nats transport: a frozen nats-server (SIGSTOP)', () => {
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  it('flush and close settle (bounded), and close leaves nothing open, though the server never answers: a node leaving is never stuck on it', async () => {
    const nats = (own = await startNatsServer());
    const cluster = freshCluster();
    const nc = await connect({ servers: nats.url });
    const given = natsTransport({ cluster, connect: nc });
    const owned = natsTransport({ servers: nats.url, cluster });
    await given.start({ name: 'A', incarnation: 1 }, new Recorder());
    await owned.start({ name: 'B', incarnation: 1 }, new Recorder());
    await nats.kill('SIGSTOP');
    try {
      owned.send('A', 'into-the-void');
      await owned.flush();
      await given.flush();
      await Promise.all([owned.close(), given.close()]);
      // the given connection stays the caller's: left open, the transport's subscriptions gone from it
      expect(nc.isClosed()).toBe(false);
      expect((nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size()).toBe(0);
    } finally {
      await nats.kill('SIGCONT');
      await nc.close();
      await nats.stop();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: started on a given connection to a frozen nats-server (SIGSTOP)', () => {
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  it('start rejects with ERR_START_FAILED saying the server did not answer (it waited for ever for the flush), and leaves the connection open with nothing of its own subscribed', async () => {
    const nats = (own = await startNatsServer());
    const nc = await connect({ servers: nats.url });
    const t = natsTransport({ cluster: freshCluster(), connect: nc });
    await nats.kill('SIGSTOP');
    try {
      const e = await t.start({ name: 'A', incarnation: 1 }, new Recorder()).catch((error: unknown) => error);
      expect(e).toMatchObject({ code: 'ERR_START_FAILED' });
      expect((e as Error).message).toMatch(/did not answer within \d+ ms/);
      expect(nc.isClosed()).toBe(false);
      expect((nc as unknown as { protocol: { subscriptions: { size(): number } } }).protocol.subscriptions.size()).toBe(0);
      expect(() => t.send('B', 'x')).not.toThrow();
      await t.close();
    } finally {
      await nats.kill('SIGCONT');
      await nc.close();
      await nats.stop();
    }
  }, 30_000);

  it('once given up, the server thawing hears nothing of it: frames published to its subjects while frozen and after reach the connection (a subscription of its owner gets them) but never the handler, nor its ping subject an answer', async () => {
    const nats = (own = await startNatsServer());
    const cluster = freshCluster();
    const nc = await connect({ servers: nats.url });
    const peer = await connect({ servers: nats.url });
    const recorder = new Recorder();
    const t = natsTransport({ cluster, connect: nc });
    await nats.kill('SIGSTOP');
    let thawed = false;
    try {
      const e = await t.start({ name: 'A', incarnation: 1 }, recorder).catch((error: unknown) => error);
      expect(e).toMatchObject({ code: 'ERR_START_FAILED' });
      // published while the server is frozen: on thawing, the server may take them before or after
      // the given-up start's subscriptions and their removal, which sit queued on the connection
      peer.publish(`keel.${cluster}.in.A.B`, 'frozen-direct');
      peer.publish(`keel.${cluster}.all.B`, 'frozen-broadcast');
      await nats.kill('SIGCONT');
      thawed = true;
      await nc.flush(); // the server has read all the connection queued while frozen: the subscriptions and their removal
      // the owner's own subscriptions on the same connection, to the same subjects: proof the frames get there
      const seen: string[] = [];
      const got = new Promise<void>((resolve) => {
        for (const subject of [`keel.${cluster}.in.A.*`, `keel.${cluster}.all.*`]) {
          nc.subscribe(subject, {
            callback: (_err, msg) => {
              seen.push(msg.string());
              if (seen.length === 2) resolve();
            },
          });
        }
      });
      await nc.flush();
      peer.publish(`keel.${cluster}.in.A.B`, 'thawed-direct');
      peer.publish(`keel.${cluster}.all.B`, 'thawed-broadcast');
      await got;
      expect(seen.sort()).toEqual(['thawed-broadcast', 'thawed-direct']);
      // nobody answers the node's ping subject: a peer's probe never finds a node that did not start
      const probe = await peer.request(`keel.${cluster}.ping.A`, '', { timeout: 500 }).then(
        () => 'answered',
        (error: unknown) => String(error),
      );
      expect(probe).toMatch(/no responders/);
      await nc.flush();
      expect(recorder.received).toEqual([]);
      expect(recorder.broadcasts).toEqual([]);
      expect(recorder.states).toEqual([]);
      await t.close();
    } finally {
      if (!thawed) await nats.kill('SIGCONT');
      await peer.close();
      await nc.close();
      await nats.stop();
    }
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('nats transport: hostile arguments', () => {
  const code = (f: () => unknown): string | undefined => {
    try {
      f();
    } catch (e) {
      return isKeelError(e) ? e.code : `raw: ${String(e)}`;
    }
    return undefined;
  };

  it('refuses bad cluster names, servers and options with ERR_INVALID_ARGUMENT', () => {
    const url = 'nats://127.0.0.1:1';
    for (const cluster of ['', 'a.b', '*', '>', 'a b', 'x'.repeat(65), 'é', 42, null, undefined, NaN]) {
      expect(code(() => natsTransport({ servers: url, cluster: cluster as string }))).toBe('ERR_INVALID_ARGUMENT');
    }
    expect(code(() => natsTransport({ servers: url, cluster: 'x'.repeat(64) }))).toBeUndefined();
    for (const servers of [undefined, '', [], [''], [1], 7, { url }]) {
      expect(code(() => natsTransport({ servers: servers as string, cluster: 'c' }))).toBe('ERR_INVALID_ARGUMENT');
    }
    expect(code(() => natsTransport({ servers: url, cluster: 'c', clustr: 'oops' } as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => natsTransport(null as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => natsTransport({ cluster: 'c', connect: {} as never }))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => natsTransport({ servers: url, cluster: 'c', connection: 5 as never }))).toBe('ERR_INVALID_ARGUMENT');
    const throwing = {
      servers: url,
      get cluster(): string {
        throw new Error('boom');
      },
    };
    expect(code(() => natsTransport(throwing))).toBe('ERR_INVALID_ARGUMENT');
    const proxy = new Proxy({ servers: url, cluster: 'c' }, {
      get() {
        throw new Error('trap');
      },
    });
    expect(code(() => natsTransport(proxy))).toBe('ERR_INVALID_ARGUMENT');
    const cyclic: Record<string, unknown> = { servers: url, cluster: 'c' };
    cyclic.__proto__pollute = cyclic;
    expect(code(() => natsTransport(cyclic as never))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => natsTransport(JSON.parse('{"servers":"nats://x","cluster":"c","__proto__":{"cluster":"y"}}') as never))).toBe('ERR_INVALID_ARGUMENT');
  });

  it('clusterPermissions refuses names that are not subject tokens, and answers exact subjects', () => {
    expect(code(() => clusterPermissions('a.b', 'A'))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => clusterPermissions('c', '>'))).toBe('ERR_INVALID_ARGUMENT');
    expect(code(() => clusterPermissions('c', '__proto__.x'))).toBe('ERR_INVALID_ARGUMENT');
    expect(clusterPermissions('c', 'n1')).toEqual({
      publish: { allow: ['keel.c.in.*.n1', 'keel.c.all.n1', 'keel.c.ping.*', '_INBOX.>'] },
      subscribe: { allow: ['keel.c.in.n1.*', 'keel.c.all.*', 'keel.c.ping.n1', '_INBOX.keel.c.n1.>'] },
    });
  });

  it('start refuses a bad node name or incarnation, a second start, and an unreachable server with typed errors', async () => {
    for (const name of ['a.b', '*', '>', '', 'x'.repeat(65), 3]) {
      const t = natsTransport({ servers: server().url, cluster: 'c' });
      await expect(t.start({ name: name as string, incarnation: 1 }, new Recorder())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await t.close();
    }
    for (const incarnation of [0, -1, NaN, 1.5, Infinity, 2 ** 60]) {
      const t = natsTransport({ servers: server().url, cluster: 'c' });
      await expect(t.start({ name: 'A', incarnation }, new Recorder())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await t.close();
    }
    const t = natsTransport({ servers: server().url, cluster: 'c' });
    await t.start({ name: 'A', incarnation: 1 }, new Recorder());
    await expect(t.start({ name: 'A', incarnation: 1 }, new Recorder())).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await t.close();
    // a port nobody listens on: the server that was on it is gone
    const gone = await startNatsServer();
    const url = gone.url;
    await gone.stop();
    const unreachable = natsTransport({ servers: url, cluster: 'c' });
    await expect(unreachable.start({ name: 'A', incarnation: 1 }, new Recorder())).rejects.toMatchObject({ code: 'ERR_START_FAILED' });
    await unreachable.close();
  }, 30_000);

  it('probe, send and broadcast take hostile peers and sizes without throwing', async () => {
    const cluster = freshCluster();
    const nodes = await startAll(async (names) => ({ transports: names.map(() => natsTransport({ servers: server().url, cluster })), close: async () => {} }), ['A', 'B']);
    try {
      const [a] = nodes.transports as Transport[];
      const [ra, rb] = nodes.recorders;
      for (const bad of [NaN, 0, -5, Infinity, '100' as unknown as number]) {
        await expect(a!.probe('B', bad)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      }
      for (const peer of ['a.b', '*', '>', '', 'B.*', 'x'.repeat(65)]) {
        expect(await a!.probe(peer, 1_000)).toBe('gone');
        expect(() => a!.send(peer, 'to-nobody')).not.toThrow();
      }
      await ra!.until(() => ra!.gone.length >= 6);
      expect(ra!.gone).toEqual(['a.b', '*', '>', '', 'B.*', 'x'.repeat(65)]);
      // over the server's max_payload: dropped, and the connection carries on
      expect(() => a!.send('B', 'x'.repeat(a!.maxBatchSize * 3 + 2048))).not.toThrow();
      a!.send('B', 'next');
      await rb!.until(() => rb!.received.length >= 1);
      expect(rb!.received).toEqual([{ from: 'A', batch: 'next' }]);
      // a maxBatchSize in code units fits the server's limit in bytes, whatever the characters
      expect(a!.maxBatchSize).toBe(Math.floor((1024 * 1024 - 1024) / 3));
    } finally {
      await nodes.release();
    }
  }, 30_000);

  it('keeps the inbound subjects of at most 256 peers: names sent to once (hostile, short-lived) never pile up, and a peer found gone is forgotten', async () => {
    const cluster = freshCluster();
    const nodes = await startAll(async (names) => ({ transports: names.map(() => natsTransport({ servers: server().url, cluster })), close: async () => {} }), ['A', 'B']);
    try {
      const [a] = nodes.transports as Transport[];
      const [, rb] = nodes.recorders;
      const subjects = (): number => (a as unknown as { internals(): { peerSubjects: number } }).internals().peerSubjects;
      // 10,000 peers that come and go, each sent one batch (nobody listens: the server drops them)
      for (let i = 0; i < 10_000; i++) a!.send(`ghost-${i}`, 'to-nobody');
      expect(subjects()).toBe(256);
      // a peer sent to all along keeps its place, and its batches still arrive
      for (let i = 0; i < 1_000; i++) {
        a!.send('B', `b-${i}`);
        a!.send(`short-${i}`, 'to-nobody');
      }
      await rb!.until(() => rb!.received.length >= 1_000);
      expect(rb!.received.map((r) => r.batch)).toEqual(Array.from({ length: 1_000 }, (_, i) => `b-${i}`));
      expect(subjects()).toBe(256);
      // a peer the server answers "no responders" for is gone: its subject is dropped
      a!.send('gone-peer', 'to-nobody');
      expect(await a!.probe('gone-peer', 1_000)).toBe('gone');
      expect(subjects()).toBe(255);
      expect(await a!.probe('B', 1_000)).toBe('alive');
      expect(subjects()).toBe(255);
    } finally {
      await nodes.release();
    }
  }, 30_000);

  it('close while start is connecting: both settle, start with ERR_START_FAILED (the node never joined), and the node is never left subscribed', async () => {
    const cluster = freshCluster();
    const peer = natsTransport({ servers: server().url, cluster });
    await peer.start({ name: 'B', incarnation: 1 }, new Recorder());
    const t = natsTransport({ servers: server().url, cluster });
    const starting = t.start({ name: 'A', incarnation: 1 }, new Recorder());
    await t.close();
    const e = await starting.then(() => 'started', (error: unknown) => error);
    expect(e).toMatchObject({ code: 'ERR_START_FAILED' });
    expect((e as Error).message).toContain('closed while it started');
    expect(await peer.probe('A', 2_000)).toBe('gone');
    expect(() => t.send('B', 'x')).not.toThrow();
    await peer.close();
  }, 30_000);

  it('a missing client package is MissingPeerError naming the install command', async () => {
    vi.resetModules();
    vi.doMock('@nats-io/transport-node', () => {
      throw Object.assign(new Error("Cannot find package '@nats-io/transport-node'"), { code: 'ERR_MODULE_NOT_FOUND' });
    });
    try {
      const fresh = await import('../../src/cluster/transports/nats.js');
      const t = fresh.natsTransport({ servers: server().url, cluster: 'c' });
      const error: unknown = await t.start({ name: 'A', incarnation: 1 }, new Recorder()).catch((e: unknown) => e);
      expect(error).toMatchObject({ code: 'ERR_PEER_MISSING' });
      expect((error as Error).message).toContain('npm install @nats-io/transport-node');
    } finally {
      vi.doUnmock('@nats-io/transport-node');
      vi.resetModules();
    }
  });
});
