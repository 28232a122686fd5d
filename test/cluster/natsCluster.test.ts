// Clusters over NATS in this process (each node its own connection): under the permissions that
// confine each node (docs/cluster.md), two clusters on one server that never mix, and a foreign
// client publishing into a cluster's subjects.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import { clusterPermissions, natsTransport } from '../../src/cluster/transports/nats.js';
import { GenServer, type GenServerSpec } from '../../src/otp/GenServer.js';
import { connect } from '@nats-io/transport-node';
import { captureEvents, probe } from '../../src/testing/index.js';
import { failure, useNodes } from '../support.js';
import { isDown, type Down } from '../../src/runtime/messages.js';
import type { Node } from '../../src/runtime/types.js';
import { type NatsServer, startNatsServer, skipWithoutNats, useNatsServer } from './natsServer.js';

const track = useNodes();
const password = (node: string): string => `pw-${node}`;

const doubler: GenServerSpec<null, { request: number; reply: number }, never, null> = {
  init: () => null,
  handleCall: (n, _from, state) => ({ reply: n * 2, state }),
};

describe.skipIf(skipWithoutNats)('a cluster over NATS under per-node permissions', () => {
  let server: NatsServer | undefined;
  beforeAll(async () => {
    const users = ['a', 'b', 'c'].map((n) => `    { user: "${n}", password: "${password(n)}", permissions: ${JSON.stringify(clusterPermissions('locked', n))} }`);
    server = await startNatsServer({ config: `authorization {\n  users = [\n${users.join('\n')}\n  ]\n}\n` });
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  }, 30_000);

  const join = (name: string, user = name) => {
    const node = track({ name });
    return { node, joined: Cluster.join(node, { transport: natsTransport({ servers: server!.url, cluster: 'locked', connection: { user, pass: password(user) } }) }) };
  };

  it('nodes discover each other, send, call and monitor with only their own rights', async () => {
    const a = join('a');
    const b = join('b');
    const [ca, cb] = await Promise.all([a.joined, b.joined]);
    await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
    const server = await GenServer.start(b.node, doubler, null, { name: 'doubler' });
    const found = await ca.whereis('b', 'doubler');
    expect(found).toEqual({ node: 'b', creation: b.node.creation, id: server.id });
    expect(await GenServer.call(a.node, found!, 21)).toBe(42);
    const sink = probe(a.node);
    b.node.send(sink, 'from b');
    expect(await sink.receive()).toBe('from b');
  });

  it('a node cannot join under another node name than its user allows', async () => {
    const forged = join('b', 'c'); // user c claims to be node b: its subscriptions are refused
    const e = (await failure(() => forged.joined)) as { code: string };
    expect(e.code).toBe('ERR_START_FAILED');
  });
});

describe.skipIf(skipWithoutNats)('two clusters on one NATS server', () => {
  const server = useNatsServer();

  it('never mix: same node names, separate clusters', async () => {
    const make = (cluster: string, name: string) => {
      const node = track({ name });
      return { node, joined: Cluster.join(node, { transport: natsTransport({ servers: server().url, cluster }) }) };
    };
    const x1 = make('x', 'n1');
    const x2 = make('x', 'n2');
    const y1 = make('y', 'n1');
    const y2 = make('y', 'n2');
    const [cx1, cx2, cy1, cy2] = await Promise.all([x1.joined, x2.joined, y1.joined, y2.joined]);
    await Promise.all([cx1.waitFor(['n2']), cx2.waitFor(['n1']), cy1.waitFor(['n2']), cy2.waitFor(['n1'])]);
    expect(cx1.nodes().map((n) => n.incarnation)).toEqual([x2.node.creation]);
    expect(cy1.nodes().map((n) => n.incarnation)).toEqual([y2.node.creation]);
    const inX = probe(x2.node);
    x2.node.registry.register('sink', inX);
    const inY = probe(y2.node);
    y2.node.registry.register('sink', inY);
    cx1.send('n2', 'sink', 'for x');
    cy1.send('n2', 'sink', 'for y');
    expect(await inX.receive()).toBe('for x');
    expect(await inY.receive()).toBe('for y');
    expect([inX.messages, inY.messages]).toEqual([['for x'], ['for y']]);
  });
});

describe.skipIf(skipWithoutNats)('a foreign client publishing into a cluster', () => {
  const server = useNatsServer();

  it('a sender token no node can have (a literal `*`, `>` or a non-ASCII letter: NATS takes them as tokens) is dropped as forged: never a peer, never node_up', async () => {
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: natsTransport({ servers: server().url, cluster: 'hostile' }) });
    const cb = await Cluster.join(b, { transport: natsTransport({ servers: server().url, cluster: 'hostile' }) });
    await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
    const events = captureEvents(a, ['keel.cluster.']);
    const sink = probe(a);
    const raw = await connect({ servers: server().url });
    try {
      for (const token of ['*', '>', 'é']) {
        raw.publish(`keel.hostile.all.${token}`, JSON.stringify([1, token, 7, 0, [['h']]]));
        raw.publish(`keel.hostile.in.a.${token}`, JSON.stringify([1, token, 7, a.creation, [['m', sink.id, 0, `as ${token}`]]]));
      }
      // once the server answered this flush, it has passed those on to a before what b sends next
      await raw.flush();
    } finally {
      await raw.close();
    }
    b.send(sink, 'from b');
    expect(await sink.receive()).toBe('from b');
    expect(sink.messages).toEqual(['from b']);
    expect(ca.nodes().map((n) => n.name)).toEqual(['b']);
    const seen = events.events.filter((e) => e.event !== 'keel.cluster.frame_dropped' || e.metadata.reason !== 'forged_sender');
    expect(seen.filter((e) => e.event !== 'keel.cluster.node_up' || e.metadata.node !== 'b').map((e) => [e.event, e.metadata.node])).toEqual([]);
    expect(events.events.filter((e) => e.event === 'keel.cluster.frame_dropped').map((e) => e.metadata.from)).toEqual(['*', '*', '>', '>', 'é', 'é']);
    events.stop();
  });
});

/** The next `event` on `node`'s telemetry. */
function nextEvent(node: Node, event: string): Promise<void> {
  const id = `next-${event}-${Math.random()}`;
  return new Promise((resolve) => {
    node.telemetry.attach(id, [event], () => {
      node.telemetry.detach(id);
      resolve();
    });
  });
}

describe.skipIf(skipWithoutNats)('a cluster over NATS when the nats-server is killed and comes back', () => {
  let server: NatsServer | undefined;
  afterAll(async () => {
    await server?.stop();
  }, 30_000);

  it('within downAfterMs: a call and a monitor pending across the outage are answered (the call with noconnection, the monitor with its Down), never left waiting', async () => {
    const nats = (server = await startNatsServer());
    const timings = { heartbeatMs: 100, suspectAfterMs: 300, downAfterMs: 600_000, probeTimeoutMs: 300 };
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: natsTransport({ servers: nats.url, cluster: 'outage' }), ...timings });
    const cb = await Cluster.join(b, { transport: natsTransport({ servers: nats.url, cluster: 'outage' }), ...timings });
    await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
    const silent: GenServerSpec<null, { request: number; reply: number }, never, null> = { init: () => null, handleCall: (_n, _from, state) => ({ noreply: true, state }) };
    const silentServer = await GenServer.start(b, silent, null);
    const target = b.spawn(() => () => undefined);
    const watcher = probe(a);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- a raw monitor across nodes is what this test exercises
    watcher.ctx.monitor(target);
    const call = GenServer.call(a, silentServer, 1, { timeout: 600_000 });
    call.catch(() => undefined); // awaited below
    // the call and the monitor have reached b once b answers a's round trip
    const rt = probe(a);
    b.send(rt, 'rt');
    await rt.receive();
    const downs = [nextEvent(a, 'keel.cluster.disconnected'), nextEvent(b, 'keel.cluster.disconnected')];
    await nats.kill('SIGKILL');
    await Promise.all(downs);
    b.exit(target, 'kill'); // its Down is sent while both are cut off
    await b.idle();
    const backs = [nextEvent(a, 'keel.cluster.reconnected'), nextEvent(b, 'keel.cluster.reconnected')];
    await nats.restart();
    await Promise.all(backs);
    const down = (await watcher.receive(isDown)) as Down;
    expect(['noconnection', 'kill', 'killed']).toContain(down.reason);
    const error = (await failure(() => call)) as { code?: string };
    expect(error.code).toBe('ERR_NOCONNECTION');
  }, 60_000);
});

describe.skipIf(skipWithoutNats)('Cluster.join on a given connection to a frozen nats-server (SIGSTOP)', () => {
  let own: NatsServer | undefined;
  afterAll(async () => {
    await own?.stop();
  }, 30_000);

  it('rejects with ERR_START_FAILED (it waited for ever), leaving the node out of any cluster: it can join one afterwards', async () => {
    const nats = (own = await startNatsServer());
    const nc = await connect({ servers: nats.url });
    const node = track({ name: 'frozen-a' });
    await nats.kill('SIGSTOP');
    try {
      const e = await failure(() => Cluster.join(node, { transport: natsTransport({ cluster: `frozen-${process.pid}`, connect: nc }) }));
      expect(e).toMatchObject({ code: 'ERR_START_FAILED' });
      expect((e as Error).message).toContain('did not answer');
      expect(nc.isClosed()).toBe(false);
      const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
      expect(cluster.name).toBe('frozen-a');
    } finally {
      await nats.kill('SIGCONT');
      await nc.close();
      await nats.stop();
    }
  }, 30_000);
});
