/* eslint-disable keel/no-unmanaged-monitor -- the tests watch a process die of a global-name exit with the kernel's raw monitor */
// The global registry (names and process groups on a JetStream KV bucket), with nodes of this OS
// process joined over the in-memory network and one nats-server (JetStream) for the file.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { type KvWatchEntry, Kvm } from '@nats-io/kv';
import { afterEach, describe, expect, it, onTestFinished, vi } from 'vitest';
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { conflictName, fencedName, GlobalRegistry, type GlobalOptions } from '../../src/cluster/global/index.js';
import { memberKey, nameKey, openBucket } from '../../src/cluster/global/store.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import { GenServer, type GenServerSpec } from '../../src/otp/GenServer.js';
import { isDown, isExit, type Down, type Exit } from '../../src/runtime/messages.js';
import type { Node } from '../../src/runtime/types.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { clockedNode, failure, useNodes } from '../support.js';
import { useNatsServer, skipWithoutNats } from './natsServer.js';

const nats = useNatsServer({ jetstream: true });
const track = useNodes();
const registries: GlobalRegistry[] = [];
const connections: NatsConnection[] = [];
afterEach(async () => {
  await Promise.all(registries.splice(0).map((g) => g.stop()));
  await Promise.all(connections.splice(0).map((c) => c.close()));
}, 30_000);

let buckets = 0;

/** The next `event` on `node`'s telemetry whose metadata `match` accepts. */
function nextEvent(node: Node, event: string, match: (meta: Record<string, unknown>) => boolean = () => true): Promise<Record<string, unknown>> {
  const id = `next-${event}-${Math.random()}`;
  return new Promise((resolve) => {
    node.telemetry.attach(id, [event], (_event, _m, metadata) => {
      if (!match(metadata as Record<string, unknown>)) return;
      node.telemetry.detach(id);
      resolve(metadata as Record<string, unknown>);
    });
  });
}

interface Member {
  node: Node;
  cluster: Cluster;
  global: GlobalRegistry;
  nc: NatsConnection;
}

/** The operations (PUT, DEL) written to `key` of a bucket from now on, as they come; `watch.stop()` ends it. */
async function operationsOn(kv: Awaited<ReturnType<Kvm['open']>>, key: string) {
  const ops: string[] = [];
  const waiting: { n: number; resolve: () => void }[] = [];
  const watch = await kv.watch({ key, include: 'updates' as never });
  void (async () => {
    for await (const e of watch) {
      ops.push(e.operation);
      for (const w of waiting.filter((w) => ops.length >= w.n)) w.resolve();
    }
  })();
  /** Resolves once this watch (another consumer than the registry's: a sync does not wait for it) has seen `n` operations. */
  const seen = (n: number): Promise<void> => (ops.length >= n ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve })));
  return { ops, watch, seen };
}

/** `names.length` nodes in one cluster (memory network), each with its own NATS connection to one fresh bucket. */
async function nodes(names: readonly string[], options: Partial<GlobalOptions> = {}, clusterOptions: Partial<ClusterOptions> = {}) {
  const net = new MemoryNetwork();
  const bucket = `global_${process.pid}_${++buckets}`;
  const members: Member[] = [];
  for (const name of names) {
    const node = track({ name });
    const cluster = await Cluster.join(node, { transport: net.transport(), ...clusterOptions });
    members.push({ node, cluster, global: undefined as unknown as GlobalRegistry, nc: undefined as unknown as NatsConnection });
  }
  for (const m of members) await m.cluster.waitFor(names.filter((n) => n !== m.node.name));
  await Promise.all(
    members.map(async (m) => {
      m.nc = await connect({ servers: nats().url });
      connections.push(m.nc);
      m.global = await GlobalRegistry.start(m.node, { cluster: m.cluster, connection: m.nc, bucket, leaseMs: 10_000, marginMs: 500, ...options });
      registries.push(m.global);
    }),
  );
  return { net, bucket, members };
}

const echo: GenServerSpec<string, { request: string; reply: string }, never, string> = {
  init: (tag: string) => tag,
  handleCall: (req, _from, tag) => ({ reply: `${tag}:${req}`, state: tag }),
};

describe.skipIf(skipWithoutNats)('global names', () => {
  it('three nodes register one name at once: exactly one wins, and every cache agrees on the owner', async () => {
    const { members } = await nodes(['a', 'b', 'c']);
    const pids = members.map((m) => m.node.spawn(() => () => undefined));
    const outcomes = await Promise.allSettled(members.map((m, i) => m.global.register('leader', pids[i]!)));
    const winners = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [i] : []));
    expect(winners).toHaveLength(1);
    const losers = outcomes.filter((o) => o.status === 'rejected').map((o) => (o as PromiseRejectedResult).reason as { code: string });
    expect(losers.map((e) => e.code)).toEqual(['ERR_NAME_TAKEN', 'ERR_NAME_TAKEN']);
    await Promise.all(members.map((m) => m.global.sync()));
    const winner = pids[winners[0]!]!;
    for (const m of members) expect(m.global.whereis('leader')).toEqual({ node: winner.node, creation: winner.creation, id: winner.id });
    for (const m of members) expect(m.global.names()).toEqual(['leader']);
  });

  it('whereis answers from the cache with a pid usable with GenServer.call; send reaches the owner', async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const server = await GenServer.start(b.node, echo, 'b');
    await b.global.register('echo', server);
    await a.global.sync();
    const pid = a.global.whereis('echo');
    expect(pid).toEqual({ node: 'b', creation: b.node.creation, id: server.id });
    expect(await GenServer.call(a.node, pid!, 'hi')).toBe('b:hi');
    const sink = probe(b.node);
    await b.global.register('sink', sink);
    // the registering node reads its own write at once, before its watch brings it back
    expect(b.global.whereis('sink')).toEqual({ node: 'b', creation: b.node.creation, id: sink.id });
    await a.global.sync();
    expect(a.global.send('sink', { n: 1 })).toBe(true);
    expect(b.global.send('sink', { n: 2 })).toBe(true);
    await sink.receive((m) => (m as { n: number }).n === 1, { timeout: 15_000 });
    await sink.receive((m) => (m as { n: number }).n === 2, { timeout: 15_000 });
    expect(a.global.whereis('nobody')).toBeUndefined();
    const events = captureEvents(a.node, ['keel.global.undeliverable']);
    expect(a.global.send('nobody', 'x')).toBe(false);
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['no_name']);
    events.stop();
  });

  it('registering the held name again is a no-op; another pid of the same node gets ERR_NAME_TAKEN', async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    const p2 = a.node.spawn(() => () => undefined);
    await a.global.register('x', p1);
    await a.global.register('x', p1);
    expect(((await failure(() => a.global.register('x', p2))) as { code: string }).code).toBe('ERR_NAME_TAKEN');
  });

  it("registering again, with the same process, a name the bucket holds for it though this node does not (a register whose write landed and whose answer was lost) takes it back: registered once, released by its revision; another process gets ERR_NAME_TAKEN (the same process got ERR_NAME_TAKEN too)", async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    const p2 = a.node.spawn(() => () => undefined);
    const { Bucket } = await import('@nats-io/kv');
    const create = Bucket.prototype.create;
    let lost = false;
    const creating = vi.spyOn(Bucket.prototype, 'create').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
      const revision = await create.apply(this, args);
      if (args[0] !== nameKey('w') || lost) return revision;
      lost = true;
      throw new Error('simulated: the answer was lost');
    });
    onTestFinished(() => creating.mockRestore());
    const registered = captureEvents(a.node, ['keel.global.registered']);
    expect(((await failure(() => a.global.register('w', p1))) as Error).message).toBe('simulated: the answer was lost');
    expect(a.global.internals().owned).toBe(0);
    expect(((await failure(() => a.global.register('w', p2))) as { code: string }).code).toBe('ERR_NAME_TAKEN');
    await a.global.register('w', p1);
    await a.global.register('w', p1);
    expect(registered.events.map((e) => e.metadata.name)).toEqual(['w']);
    expect(a.global.internals().owned).toBe(1);
    expect(a.global.whereis('w')).toBe(p1);
    const kv = await new Kvm(a.nc).open(bucket);
    expect((await kv.get(nameKey('w')))?.revision).toBe(registered.events[0]!.metadata.revision);
    // the revision taken back is the one this node holds: the compare-and-set delete of unregister lands
    expect(await a.global.unregister('w')).toBe(true);
    expect((await kv.get(nameKey('w')))?.operation).toBe('DEL');
    registered.stop();
  });

  it("a node's shutdown waits for its registry's stop: once it resolves, the node's names are released in the bucket (no write still on its way)", async () => {
    const { members, bucket } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const p = a.node.spawn(() => () => undefined);
    await a.global.register('x', p);
    await a.node.shutdown();
    // before: the hook did not wait for the stop, and the node said it had stopped with the deletes on their way
    expect(a.global.internals()).toMatchObject({ inflight: 0 });
    const kv = await new Kvm(b.nc).open(bucket);
    expect((await kv.get(nameKey('x')))?.operation).toBe('DEL');
  });

  it('registering the name for the same process twice at once is a no-op, as one after the other is (found in review)', async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    const outcomes = await Promise.allSettled([a.global.register('twice', p1), a.global.register('twice', p1)]);
    expect(outcomes.map((o) => o.status)).toEqual(['fulfilled', 'fulfilled']);
    expect(a.global.internals().owned).toBe(1);
    await a.global.sync();
    expect(a.global.whereis('twice')).toBe(p1);
  });

  it('the owner process dies: the name is released everywhere', async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const owner = a.node.spawn<string>(() => (m) => {
      if (m === 'die') throw new Error('owner failed');
    });
    await a.global.register('job', owner);
    await b.global.sync();
    expect(b.global.whereis('job')).toEqual({ node: 'a', creation: a.node.creation, id: owner.id });
    const released = nextEvent(a.node, 'keel.global.released');
    a.node.send(owner, 'die');
    expect(await released).toMatchObject({ name: 'job', reason: 'exit' });
    await a.global.sync(); // the delete was written before this sync's put
    await b.global.sync();
    expect(b.global.whereis('job')).toBeUndefined();
    const next = b.node.spawn(() => () => undefined);
    await b.global.register('job', next);
    expect(a.global.internals().owned).toBe(0);
  });

  it('unregister while a renewal is in flight resolves once the name is gone from the bucket: it can be registered again at once', async () => {
    const { members, bucket } = await nodes(['a'], { leaseMs: 900, marginMs: 300 });
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('r', p1);
    // the next write of the name is its renewal: the server applies it, its answer is held back
    // until the name is released (and then let through at the next turn of the event loop)
    const subject = `$KV.${bucket}.n.${Buffer.from('r').toString('base64url')}`;
    const renewal = holdNextAnswer(a.nc, subject);
    await renewal.held;
    const released = nextEvent(a.node, 'keel.global.released', (m) => m.name === 'r');
    void released.then(() => setImmediate(renewal.release));
    expect(await a.global.unregister('r')).toBe(true);
    const kv = await new Kvm(a.nc).open(bucket);
    expect((await kv.get(`n.${Buffer.from('r').toString('base64url')}`))?.operation).toBe('DEL');
    const p2 = a.node.spawn(() => () => undefined);
    await a.global.register('r', p2);
    await a.global.sync();
    expect(a.global.whereis('r')).toEqual({ node: 'a', creation: a.node.creation, id: p2.id });
  });

  it.each(['died', 'was fenced'] as const)("a holder that %s while its renewal was on its way, the renewal landing and its answer lost, leaves no entry behind: a register called after it holds the name (the release deleted the revision before the renewal, in vain, and the dead process's renewed entry stayed: ERR_NAME_TAKEN)", async (how) => {
    // a margin long enough that the dead process's entry is not taken over meanwhile
    const { members, bucket } = await nodes(['a', 'b'], { leaseMs: 900, marginMs: 600_000 });
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    await a.global.register('q', p1);
    // the next write of the name is its renewal: the server applies it, and its answer is lost (the
    // renewal fails) once `lose()` is called
    const subject = `$KV.${bucket}.${nameKey('q')}`;
    const nc = a.nc as NatsConnection & { request: NatsConnection['request'] };
    const request = nc.request.bind(nc);
    let lose: (() => void) | undefined;
    const applied = new Promise<void>((resolve) => {
      nc.request = (subj, data, opts) => {
        const answer = request(subj, data, opts);
        if (subj !== subject || lose !== undefined) return answer;
        const gate = new Promise<void>((open) => (lose = open));
        return answer.then(async () => {
          resolve();
          await gate;
          throw new Error('TIMEOUT');
        });
      };
    });
    onTestFinished(() => void (nc.request = request));
    await applied;
    // the holder goes while its renewal is on its way, before the watch brings the renewal: killed, or
    // fenced by a message once the wall clock passed its deadline (a node that woke from a freeze)
    if (how === 'died') a.node.exit(p1, 'kill');
    else {
      const real = Date.now.bind(Date);
      const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() + 300_000);
      expect(a.global.send('q', 'late')).toBe(false);
      spy.mockRestore();
    }
    const down = (await watcher.receive(isDown, { timeout: 15_000 })) as Down;
    expect(fencedName(down.reason)).toBe(how === 'died' ? undefined : 'q');
    const p2 = a.node.spawn(() => () => undefined);
    const outcome = a.global.register('q', p2).then(REGISTERED, errorCode);
    lose!();
    expect(await outcome).toBe('registered');
    expect(a.global.whereis('q')).toBe(p2);
    await a.global.sync();
    await b.global.sync();
    expect(a.global.whereis('q')).toBe(p2);
    expect(b.global.whereis('q')).toEqual({ node: 'a', creation: a.node.creation, id: p2.id });
  });

  it('unregister releases the name; a process of another node cannot be registered here', async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const p = a.node.spawn(() => () => undefined);
    await a.global.register('u', p);
    expect(await a.global.unregister('u')).toBe(true);
    // the unregistering node reads its own delete at once, before its watch brings it back
    expect(a.global.whereis('u')).toBeUndefined();
    expect(a.global.names()).toEqual([]);
    expect(await a.global.unregister('u')).toBe(false);
    await b.global.sync();
    expect(b.global.whereis('u')).toBeUndefined();
    const e = (await failure(() => b.global.register('u', p))) as { code: string };
    expect(e.code).toBe('ERR_INVALID_ARGUMENT');
  });

  it('refuses hostile names and pids with typed errors', async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p = a.node.spawn(() => () => undefined);
    // a lone surrogate has no UTF-8 form: it would be written and never read back
    const hostile: unknown[] = ['', 'x'.repeat(1025), '\uD800', 'x\uDC00y', 42, null, undefined, { toString: () => 'n' }, new Proxy({}, {})];
    for (const name of hostile) {
      expect(() => a.global.whereis(name as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }) as Error);
      expect(((await failure(() => a.global.register(name as string, p))) as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    }
    const getter = Object.defineProperty({}, 'node', {
      get() {
        throw new Error('boom');
      },
    });
    expect(((await failure(() => a.global.register('ok', getter as never))) as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    expect(((await failure(() => a.global.register('ok', { node: 'a', creation: a.node.creation, id: 999_999 }))) as { code: string }).code).toBe('ERR_NOPROC');
    // names with dots, slashes, unicode and __proto__ are plain names
    for (const name of ['a.b.>', '*', '__proto__', 'ünï/cødé', '\u{1F600}']) {
      const q = a.node.spawn(() => () => undefined);
      await a.global.register(name, q);
      await a.global.sync();
      expect(a.global.whereis(name)).toEqual({ node: 'a', creation: a.node.creation, id: q.id });
    }
  });

  // needs the real codec (src/cluster/codec.ts is a provisional stub that drops functions, as cluster.test.ts's own serialization test)
  it('a global send of a message that cannot be serialized to an owner on another node is a typed error', async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    await b.global.register('remote', probe(b.node));
    await a.global.sync();
    const bad = (await failure(() => a.global.send('remote', { f: () => 1 }))) as { code: string };
    expect(bad.code).toBe('ERR_NOT_SERIALIZABLE');
  });

  it('the name limit counts UTF-8 bytes (a key must fit a NATS control line): past it a typed error at once, and the connection lives', async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p = a.node.spawn(() => () => undefined);
    const long = '\u20ac'.repeat(1024); // 1024 characters, 3072 bytes of UTF-8
    expect(((await failure(() => a.global.register(long, p))) as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    expect(((await failure(() => a.global.join(long, p))) as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    await a.global.register('\u20ac'.repeat(341), p); // 1023 bytes
    await a.global.join('g'.repeat(1024), p);
    await a.global.sync();
    expect(a.global.whereis('\u20ac'.repeat(341))?.id).toBe(p.id);
    expect(a.global.members('g'.repeat(1024)).map((m) => m.id)).toEqual([p.id]);
    expect(a.nc.isClosed()).toBe(false);
  });

  it('ignores junk written to the bucket by others, with an event', async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const kv = await new Kvm(a.nc).open(bucket);
    const events = captureEvents(a.node, ['keel.global.malformed']);
    await kv.put('n.' + Buffer.from('junk').toString('base64url'), '{"__proto__":{"x":1},"v":1}');
    await kv.put('n.' + Buffer.from('big').toString('base64url'), JSON.stringify({ v: 1, node: 'a', inc: 1, id: 1, lease: 1e400 }));
    await kv.put('zz.top', 'x');
    await a.global.sync();
    expect(a.global.whereis('junk')).toBeUndefined();
    expect(a.global.whereis('big')).toBeUndefined();
    expect(events.events.map((e) => e.metadata.key)).toEqual(['n.' + Buffer.from('junk').toString('base64url'), 'n.' + Buffer.from('big').toString('base64url'), 'zz.top']);
    events.stop();
  });

  it('a node that learns another owner took its name sends the process a trappable name_conflict exit', async () => {
    const { members, bucket } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const trapper = probe<Exit>(a.node);
    trapper.ctx.trapExits(true);
    await a.global.register('contested', trapper);
    // what a partition can leave behind: the bucket now says another node's process owns the name
    const kv = await new Kvm(b.nc).open(bucket);
    const other = b.node.spawn(() => () => undefined);
    await kv.put('n.' + Buffer.from('contested').toString('base64url'), JSON.stringify({ v: 1, node: 'b', inc: b.node.creation, id: other.id, lease: Date.now() + 60_000 }));
    const exit = (await trapper.receive(isExit, { timeout: 15_000 })) as Exit;
    expect(conflictName(exit.reason)).toBe('contested');
    expect(exit.from).toBe('node');
    expect(a.global.internals().owned).toBe(0);
    // a process that does not trap exits dies of it
    const watcher = probe<Down>(a.node);
    const plain = a.node.spawn(() => () => undefined);
    watcher.ctx.monitor(plain);
    await a.global.register('contested2', plain);
    await kv.put('n.' + Buffer.from('contested2').toString('base64url'), JSON.stringify({ v: 1, node: 'b', inc: b.node.creation, id: other.id, lease: Date.now() + 60_000 }));
    expect(conflictName(((await watcher.receive(isDown, { timeout: 15_000 })) as Down).reason)).toBe('contested2');
  });
});

describe.skipIf(skipWithoutNats)('leases, fencing and reaping (in-process nodes)', () => {
  it('a node cut off from NATS and the cluster is fenced at its lease deadline; the survivors reap the name after lease + margin', async () => {
    const { members, net } = await nodes(['a', 'b', 'c'], { leaseMs: 900, marginMs: 300 }, { heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 400, probeTimeoutMs: 50 });
    const [a, b, c] = members as [Member, Member, Member];
    const watcher = probe<Down>(a.node);
    const owner = a.node.spawn(() => () => undefined);
    watcher.ctx.monitor(owner);
    await a.global.register('svc', owner);
    await b.global.sync();
    const fenced = nextEvent(a.node, 'keel.global.fenced');
    const reaped = Promise.race([nextEvent(b.node, 'keel.global.reaped'), nextEvent(c.node, 'keel.global.reaped')]);
    const downAtB = nextEvent(b.node, 'keel.cluster.node_down', (m) => m.node === 'a');
    // a crash as the others see it: a's NATS connection and its cluster links go at once
    await a.nc.close();
    net.isolate('a');
    await downAtB;
    expect(b.global.whereis('svc')).toBeUndefined(); // hidden at once: its node is down
    const fence = await fenced;
    expect(fence.name).toBe('svc');
    expect(fencedName(((await watcher.receive(isDown, { timeout: 15_000 })) as Down).reason)).toBe('svc');
    const reap = await reaped;
    expect(reap.name).toBe('svc');
    await b.global.sync();
    const next = c.node.spawn(() => () => undefined);
    await c.global.register('svc', next);
    await b.global.sync();
    expect(b.global.whereis('svc')).toEqual({ node: 'c', creation: c.node.creation, id: next.id });
  });

  it("a reap pending for a down node's name is called off when the name is released meanwhile, and stays off when the node comes back (found in review)", async () => {
    const { members, net } = await nodes(['a', 'b'], {}, { heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 400, probeTimeoutMs: 50 });
    const [a, b] = members as [Member, Member];
    const pb = b.node.spawn(() => () => undefined);
    await b.global.register('held', pb);
    await a.global.sync();
    const downs = [nextEvent(a.node, 'keel.cluster.node_down', (m) => m.node === 'b'), nextEvent(b.node, 'keel.cluster.node_down', (m) => m.node === 'a')];
    net.isolate('b');
    await Promise.all(downs);
    expect(a.global.internals().reaps).toBe(1); // due at b's lease + margin (10.5 s)
    // b, cut off from the cluster only, releases the name; a reads the delete from the bucket
    expect(await b.global.unregister('held')).toBe(true);
    await a.global.sync();
    expect(a.global.whereis('held')).toBe(undefined);
    expect(a.global.internals().reaps).toBe(0);
    const ups = [nextEvent(a.node, 'keel.cluster.node_up', (m) => m.node === 'b'), nextEvent(b.node, 'keel.cluster.node_up', (m) => m.node === 'a')];
    net.heal('b');
    await Promise.all(ups);
    expect(a.global.internals().reaps).toBe(0);
  });

  it("a second start on the same node and bucket fails and leaves the running registry whole: it still hides a down node's names (the failed start's cleanup detached the first one's node events)", async () => {
    const { members, net, bucket } = await nodes(['a', 'b'], {}, { heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 400, probeTimeoutMs: 50 });
    const [a, b] = members as [Member, Member];
    const second = (await failure(() => GlobalRegistry.start(a.node, { cluster: a.cluster, connection: a.nc, bucket }))) as { code: string };
    expect(second.code).toBe('ERR_NAME_TAKEN');
    const pb = b.node.spawn(() => () => undefined);
    await b.global.register('held', pb);
    await a.global.sync();
    expect(a.global.whereis('held')).toEqual({ node: 'b', creation: b.node.creation, id: pb.id });
    const down = nextEvent(a.node, 'keel.cluster.node_down', (m) => m.node === 'b');
    net.isolate('b');
    await down;
    expect(a.global.whereis('held')).toBe(undefined);
    expect(a.global.internals().reaps).toBe(1);
  });

  it('a name left by a node nobody saw go down (it died before the others started) is hidden once its lease + margin passed, and reaped', async () => {
    const { members, bucket } = await nodes(['a'], { leaseMs: 900, marginMs: 300 });
    const [a] = members as [Member];
    const kv = await new Kvm(a.nc).open(bucket);
    const key = 'n.' + Buffer.from('stale').toString('base64url');
    const reaped = nextEvent(a.node, 'keel.global.reaped', (m) => m.name === 'stale');
    await kv.put(key, JSON.stringify({ v: 1, node: 'ghost', inc: 7, id: 3, lease: Date.now() - 5000 }));
    await a.global.sync();
    expect(a.global.whereis('stale')).toBeUndefined();
    expect(a.global.names()).toEqual([]);
    expect(a.global.send('stale', 'x')).toBe(false);
    expect(await reaped).toMatchObject({ name: 'stale' });
    expect((await kv.get(key))?.operation).not.toBe('PUT');
    // a live owner whose lease is renewed is never hidden nor reaped
    const owner = a.node.spawn(() => () => undefined);
    await a.global.register('kept', owner);
    for (let i = 0; i < 3; i++) await nextEvent(a.node, 'keel.global.renewed', (m) => m.name === 'kept');
    expect(a.global.whereis('kept')?.id).toBe(owner.id);
  });

  it("a dead owner's lease beyond a timer's range (a clock far ahead, a hostile write) is reaped by a timer within range, not one that fires every millisecond", async () => {
    const { members, bucket } = await nodes(['a'], { leaseMs: 900, marginMs: 300 });
    const [a] = members as [Member];
    const kv = await new Kvm(a.nc).open(bucket);
    const timers = vi.spyOn(globalThis, 'setTimeout');
    onTestFinished(() => timers.mockRestore());
    // an earlier incarnation of this node (dead for sure) whose clock ran 50 days ahead: its lease ends then
    const lease = Date.now() + 50 * 86_400_000;
    await kv.put('n.' + Buffer.from('far').toString('base64url'), JSON.stringify({ v: 1, node: 'a', inc: a.node.creation === 1 ? 2 : 1, id: 3, lease }));
    await a.global.sync();
    expect(a.global.whereis('far')).toBeUndefined();
    expect(a.global.internals().reaps).toBe(1);
    // past 2^31 - 1 ms Node fires a timer after 1 ms: the reap would find the lease not due and wait again, every millisecond
    expect(timers.mock.calls.map(([, ms]) => ms ?? 0).filter((ms) => ms > 2 ** 31 - 1)).toEqual([]);
  });

  it('a group member of a node this node is not connected to (it died unseen, its key left behind) is not shown', async () => {
    const { members, bucket } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const kv = await new Kvm(a.nc).open(bucket);
    const pb = b.node.spawn(() => () => undefined);
    await b.global.join('crew', pb);
    await kv.put(memberKey('crew', 'ghost', 7, 3), '1');
    await kv.put(memberKey('crew', 'b', b.node.creation + 1, 4), '1'); // another incarnation of b than the one a knows
    await a.global.sync();
    expect(a.global.members('crew')).toEqual([{ node: 'b', creation: b.node.creation, id: pb.id }]);
  });

  it("the owner's own fence runs on a monotonic clock: a wall clock stepped back (NTP) does not stretch its lease", async () => {
    const { members } = await nodes(['a'], { leaseMs: 900, marginMs: 300 });
    const [a] = members as [Member];
    const owner = a.node.spawn(() => () => undefined);
    await a.global.register('svc', owner);
    const fenced = nextEvent(a.node, 'keel.global.fenced', (m) => m.name === 'svc');
    await a.nc.close(); // renewals fail from now on: the lease must run out about 900 ms after the last one
    const real = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() - 3_600_000); // an hour back
    onTestFinished(() => spy.mockRestore());
    // without a monotonic fence this waits an hour (the test's timeout ends it first)
    expect(await fenced).toMatchObject({ name: 'svc' });
    expect(a.global.send('svc', 'late')).toBe(false);
  }, 15_000);

  it("the sync key of an earlier incarnation of this node (a crash) is deleted, so the bucket does not grow with restarts", async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const kv = await new Kvm(a.nc).open(bucket);
    const old = `s.a.${a.node.creation === 1 ? 2 : 1}`;
    const watch = await kv.watch({ key: old });
    const deleted = (async () => {
      for await (const e of watch) if (e.operation !== 'PUT') return e.operation;
      return undefined;
    })();
    await kv.put(old, '1');
    await a.global.sync();
    expect(await deleted).toBe('DEL');
    watch.stop();
    expect(((await failure(() => a.global.stop().then(() => a.global.sync()))) as { code: string }).code).toBe('ERR_NODE_STOPPED');
  });

  it('a lease is renewed while its node lives: the name outlives several lease periods', async () => {
    const { members } = await nodes(['a', 'b'], { leaseMs: 900, marginMs: 300 });
    const [a, b] = members as [Member, Member];
    const owner = a.node.spawn(() => () => undefined);
    await a.global.register('long', owner);
    const events = captureEvents(a.node, ['keel.global.']);
    // ten renewals: more than three lease periods
    await new Promise<void>((resolve) => {
      let renewals = 0;
      a.node.telemetry.attach('count-renewals', ['keel.global.renewed'], () => {
        if (++renewals < 10) return;
        a.node.telemetry.detach('count-renewals');
        resolve();
      });
    });
    await b.global.sync();
    expect(b.global.whereis('long')).toEqual({ node: 'a', creation: a.node.creation, id: owner.id });
    expect(events.events.filter((e) => e.event !== 'keel.global.renewed').map((e) => e.event)).toEqual([]);
    expect(a.node.info(owner)?.status).toBe('waiting');
    events.stop();
  });
});

describe.skipIf(skipWithoutNats)('process groups', () => {
  it('members across nodes; leave, death and node down remove them', async () => {
    const { members, net } = await nodes(['a', 'b', 'c'], {}, { heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 400, probeTimeoutMs: 50 });
    const [a, b, c] = members as [Member, Member, Member];
    const pa = a.node.spawn(() => () => undefined);
    const pb1 = b.node.spawn(() => () => undefined);
    const pb2 = b.node.spawn(() => () => undefined);
    const pc = c.node.spawn(() => () => undefined);
    await a.global.join('workers', pa);
    await b.global.join('workers', pb1);
    await b.global.join('workers', pb2);
    await b.global.join('workers', pb2); // twice: once
    await c.global.join('others', pc);
    for (const m of members) await m.global.sync();
    const ids = (m: Member, g: string): string[] => m.global.members(g).map((p) => `${p.node}.${p.id}`).sort();
    const all = [`a.${pa.id}`, `b.${pb1.id}`, `b.${pb2.id}`].sort();
    for (const m of members) expect(ids(m, 'workers')).toEqual(all);
    expect(c.global.groups()).toEqual(['others', 'workers']);
    expect(await b.global.leave('workers', pb1)).toBe(true);
    expect(await b.global.leave('workers', pb1)).toBe(false);
    b.node.exit(pb2, 'kill');
    await b.node.idle();
    await b.global.sync();
    await a.global.sync();
    expect(ids(a, 'workers')).toEqual([`a.${pa.id}`]);
    expect(b.global.internals().joined).toBe(0);
    // c goes silent: its members vanish from the others' view at once, and its keys are deleted
    const down = nextEvent(a.node, 'keel.cluster.node_down', (m) => m.node === 'c');
    net.isolate('c');
    await down;
    expect(a.global.members('others')).toEqual([]);
    expect(a.global.groups()).toEqual(['workers']);
  });

  it('a join on its way when the registry stops rejects with ERR_NODE_STOPPED (it resolved, with no membership left), and its key is gone', async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const p = a.node.spawn(() => () => undefined);
    const joining = failure(() => a.global.join('crew', p));
    const stopped = a.global.stop();
    expect(((await joining) as { code: string }).code).toBe('ERR_NODE_STOPPED');
    await stopped;
    expect(a.global.internals().joined).toBe(0);
    const kv = await new Kvm(a.nc).open(bucket);
    expect((await kv.get(memberKey('crew', 'a', a.node.creation, p.id)))?.operation ?? 'none').not.toBe('PUT');
  });

  it('a join whose write fails (NATS did not answer) leaves no membership behind: the pid is not listed, and joining again works', async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const p = a.node.spawn(() => () => undefined);
    const subject = `$KV.${bucket}.${memberKey('crew', 'a', a.node.creation, p.id)}`;
    failFirstRequest(a.nc, subject);
    expect(((await failure(() => a.global.join('crew', p))) as Error).message).toBe('simulated: no answer from NATS');
    expect(a.global.members('crew')).toEqual([]);
    expect(a.global.groups()).toEqual([]);
    expect(a.global.internals().joined).toBe(0);
    await a.global.join('crew', p);
    await a.global.sync();
    expect(a.global.members('crew')).toEqual([p]);
    expect(a.global.internals().joined).toBe(1);
  });

  it("a join right after a leave not awaited is not undone by that leave's late delete (found in review)", async () => {
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const pa = a.node.spawn(() => () => undefined);
    const key = memberKey('workers', 'a', a.node.creation, pa.id);
    const kv = await new Kvm(a.nc).open(bucket);
    const { ops, watch, seen } = await operationsOn(kv, key);
    await a.global.join('workers', pa);
    const left = a.global.leave('workers', pa);
    await a.global.join('workers', pa);
    expect(await left).toBe(true);
    await a.global.sync();
    await seen(3);
    // join, leave, join: the bucket ends with the member, written after the leave's delete
    expect(ops.slice(0, 3)).toEqual(['PUT', 'DEL', 'PUT']);
    expect((await kv.get(key))?.operation).toBe('PUT');
    expect(a.global.members('workers')).toEqual([pa]);
    watch.stop();
  });

  it("a leave whose delete fails (NATS did not answer) is deleted again later: the other nodes stop listing the member (its key stayed for good, the process alive and no longer joined)", async () => {
    const { members, bucket } = await nodes(['a', 'b'], { leaseMs: 900, marginMs: 300 });
    const [a, b] = members as [Member, Member];
    const pa = a.node.spawn(() => () => undefined);
    const key = memberKey('crew', 'a', a.node.creation, pa.id);
    await a.global.join('crew', pa);
    await b.global.sync();
    expect(b.global.members('crew')).toEqual([{ node: 'a', creation: a.node.creation, id: pa.id }]);
    const kv = await new Kvm(b.nc).open(bucket);
    const { ops, watch, seen } = await operationsOn(kv, key);
    const subject = `$KV.${bucket}.${key}`;
    const refused = failFirstRequest(a.nc, subject);
    expect(await a.global.leave('crew', pa)).toBe(true);
    expect(refused.failed).toBe(true);
    expect(a.global.members('crew')).toEqual([]);
    await seen(1);
    expect(ops).toEqual(['DEL']);
    await b.global.sync();
    expect(b.global.members('crew')).toEqual([]);
    watch.stop();
  });

  it('a partition does not take a live member from its own node: its key comes back when the peers meet again', async () => {
    const { members, net, bucket } = await nodes(['a', 'b'], {}, { heartbeatMs: 50, suspectAfterMs: 150, downAfterMs: 400, probeTimeoutMs: 50 });
    const [a, b] = members as [Member, Member];
    const pa = a.node.spawn(() => () => undefined);
    await a.global.join('workers', pa);
    const key = memberKey('workers', 'a', a.node.creation, pa.id);
    const kv = await new Kvm(a.nc).open(bucket);
    const { ops, watch, seen } = await operationsOn(kv, key);
    // b is cut off from the cluster (not from NATS): it takes a for down and reaps a's member key
    const downs = [nextEvent(b.node, 'keel.cluster.node_down', (m) => m.node === 'a'), nextEvent(a.node, 'keel.cluster.node_down', (m) => m.node === 'b')];
    net.isolate('b');
    await Promise.all(downs);
    await b.global.sync(); // b's delete is done
    await a.global.sync(); // a saw it (and put the key back once: b, which still takes a for down, deletes it again)
    await b.global.sync();
    await a.global.sync();
    await seen(1);
    expect(ops[0]).toBe('DEL');
    expect(ops.filter((o) => o === 'PUT').length).toBeLessThanOrEqual(1); // no ping-pong
    // a's own view never lost its member
    expect(a.global.members('workers')).toEqual([pa]);
    expect(a.global.groups()).toEqual(['workers']);
    // the partition heals: a puts its member back, and b shows it again
    const ups = [nextEvent(b.node, 'keel.cluster.node_up', (m) => m.node === 'a'), nextEvent(a.node, 'keel.cluster.node_up', (m) => m.node === 'b')];
    net.heal('b');
    await Promise.all(ups);
    await a.global.sync();
    await b.global.sync();
    await a.global.sync();
    await b.global.sync();
    expect((await kv.get(key))?.operation).toBe('PUT');
    expect(b.global.members('workers').map((p) => `${p.node}.${p.id}`)).toEqual([`a.${pa.id}`]);
    watch.stop();
  });
});

describe.skipIf(skipWithoutNats)('the watch that feeds the cache', () => {
  /**
   * A registry on a fresh bucket whose first KV watch is `first` (every later one is the bucket's
   * own), and the next `keel.global.watch_restarted` of its node.
   */
  async function withFirstWatch(first: () => unknown) {
    const { Bucket } = await import('@nats-io/kv');
    const original = Bucket.prototype.watch;
    let calls = 0;
    const watch = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(function (this: InstanceType<typeof Bucket>, ...args) {
      if (++calls === 1) return Promise.resolve(first() as never);
      return original.apply(this, args);
    });
    onTestFinished(() => watch.mockRestore());
    const node = track({ name: 'a' });
    const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
    const restarted = nextEvent(node, 'keel.global.watch_restarted');
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    // start syncs: its own write must come back through the watch
    const global = await GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}` });
    registries.push(global);
    return { node, global, restarted, watch };
  }

  /** Registers a name now and syncs: the cache is fed (by the watch opened again). */
  async function expectFed(node: Node, global: GlobalRegistry): Promise<void> {
    const p = node.spawn(() => () => undefined);
    await global.register('fed', p);
    await global.sync();
    expect(global.whereis('fed')).toEqual({ node: 'a', creation: node.creation, id: p.id });
  }

  it('a watch that delivers nothing while a sync waits is opened again from the last revision seen, and the sync resolves', async () => {
    // a push consumer that lost its deliveries: nothing, and no end until stopped
    const { node, global, restarted, watch } = await withFirstWatch(() => {
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      return {
        stop,
        async *[Symbol.asyncIterator]() {
          await stopped;
        },
      };
    });
    expect(await restarted).toEqual({ node: 'a', reason: 'stalled', from: 1 });
    expect(watch.mock.calls.map((c) => c[0])).toEqual([undefined, { resumeFromRevision: 1 }]);
    await expectFed(node, global);
  });

  it('a watch that ends while the registry runs (its consumer gone for good) is opened again from the last revision seen', async () => {
    const { node, global, restarted, watch } = await withFirstWatch(() => ({ stop() {}, async *[Symbol.asyncIterator]() {} }));
    expect(await restarted).toEqual({ node: 'a', reason: 'ended', from: 1 });
    await expectFed(node, global);
    expect(watch).toHaveBeenCalledTimes(2);
  });
});

/** A register's outcome as a value: `'registered'`, or the code of the error it rejected with. */
const REGISTERED = (): string => 'registered';
function errorCode(e: { code?: string }): string | undefined {
  return e.code;
}

/**
 * Holds back the answer to the next request of `nc` to `subject` (the server applies the request): `held`
 * resolves once that request is made, and its answer comes when `release` is called. Undone when the test ends.
 */
function holdNextAnswer(connection: unknown, subject: string): { held: Promise<void>; release: () => void } {
  const nc = connection as NatsConnection & { request: NatsConnection['request'] };
  const request = nc.request.bind(nc);
  let open: (() => void) | undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let holding = false;
  const held = new Promise<void>((resolve) => {
    nc.request = (subj, data, opts) => {
      const answer = request(subj, data, opts);
      if (subj !== subject || holding) return answer;
      holding = true;
      resolve();
      return answer.then(async (m) => {
        await gate;
        return m;
      });
    };
  });
  onTestFinished(() => void (nc.request = request));
  return { held, release: () => open!() };
}

/** Makes the first request of `nc` to `subject` fail as NATS not answering (the others go through), until the test ends; `failed` once it has. */
function failFirstRequest(connection: unknown, subject: string): { failed: boolean } {
  const nc = connection as NatsConnection & { request: NatsConnection['request'] };
  const request = nc.request.bind(nc);
  const state = { failed: false };
  nc.request = (subj, data, opts) => {
    if (subj !== subject || state.failed) return request(subj, data, opts);
    state.failed = true;
    return Promise.reject(new Error('simulated: no answer from NATS'));
  };
  onTestFinished(() => void (nc.request = request));
  return state;
}

/**
 * Routes the registry's sync writes (keys `s.…`) through `around`, which is given the real write and
 * answers its revision; other writes go through. Undone when the test ends, or by the function it answers.
 */
async function onSyncWrite(around: (write: () => Promise<number>) => Promise<number>): Promise<() => void> {
  const { Bucket } = await import('@nats-io/kv');
  const original = Bucket.prototype.put;
  const put = vi.spyOn(Bucket.prototype, 'put').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
    const write = (): Promise<number> => original.apply(this, args);
    return args[0].startsWith('s.') ? around(write) : write();
  });
  onTestFinished(() => put.mockRestore());
  return () => put.mockRestore();
}

/** `written` resolves once a sync's write has been answered (its revision given back to the sync). */
async function syncWriteAnswered(): Promise<{ written: Promise<void> }> {
  let answered: () => void = () => undefined;
  const written = new Promise<void>((resolve) => (answered = resolve));
  await onSyncWrite(async (write) => {
    const revision = await write();
    answered();
    return revision;
  });
  return { written };
}

describe.skipIf(skipWithoutNats)('a sync whose write the watch never brings back', () => {
  it('rejects with ERR_SYNC_TIMEOUT after its timeoutMs (it waited for ever), leaves no waiter behind, and the next sync resolves', async () => {
    const { members } = await nodes(['a']);
    const a = members[0]!;
    // the watch never catches up: the sync's own write answers a revision far past any the bucket will reach
    const restore = await onSyncWrite(async (write) => (await write()) + 1_000_000);
    const e = await failure(() => a.global.sync({ timeoutMs: 200 }));
    expect(e).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 200 });
    expect((e as Error).message).toContain('within 200 ms');
    expect(a.global.internals().syncWaiters).toBe(0);
    restore();
    await a.global.sync();
    for (const timeoutMs of [0, -1, NaN, '5', 2 ** 31]) {
      expect(((await failure(() => a.global.sync({ timeoutMs: timeoutMs as number }))) as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    }
  }, 30_000);

  it("its timeoutMs bounds the sync's own write too: a write the server never acknowledges rejects with ERR_SYNC_TIMEOUT (it waited for the write first, as long as that took)", async () => {
    const { members } = await nodes(['a']);
    const a = members[0]!;
    let acknowledge: () => void = () => undefined;
    const acknowledged = new Promise<void>((resolve) => (acknowledge = resolve));
    // the sync's write is not acknowledged (a frozen server) until the test ends
    const restore = await onSyncWrite(async (write) => {
      await acknowledged;
      return write();
    });
    onTestFinished(() => acknowledge());
    const e = await failure(() => a.global.sync({ timeoutMs: 200 }));
    expect(e).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 200, revision: 0 });
    expect((e as Error).message).toContain('within 200 ms');
    expect(a.global.internals().syncWaiters).toBe(0);
    acknowledge();
    restore();
    await a.global.sync();
  }, 30_000);

  it("the start's own sync is bounded by syncTimeoutMs too: a watch that never brings anything fails the start with ERR_SYNC_TIMEOUT, and the registry is stopped", async () => {
    const { Bucket } = await import('@nats-io/kv');
    const stops: (() => void)[] = [];
    // every watch opened (the first and each reopening after a stall) is silent until stopped
    const watch = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(() => {
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      stops.push(stop);
      return Promise.resolve({ stop, async *[Symbol.asyncIterator]() { await stopped; } } as never);
    });
    onTestFinished(() => watch.mockRestore());
    const node = track({ name: 'a' });
    const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    const e = await failure(() => GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}`, syncTimeoutMs: 300 }));
    expect(e).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 300 });
    expect(stops.length).toBeGreaterThanOrEqual(1);
    // the failed start stopped what it began (its router's name among them): a registry on the same bucket starts
    watch.mockRestore();
    const again = await GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${buckets}` });
    registries.push(again);
    for (const syncTimeoutMs of [0, -5, NaN, 2 ** 31]) {
      const bad = await failure(() => GlobalRegistry.start(node, { cluster, connection: nc, syncTimeoutMs }));
      expect((bad as { code: string }).code).toBe('ERR_INVALID_ARGUMENT');
    }
  }, 30_000);
});

/** Lets the event loop turn until `fact` holds (each turn runs what the NATS client received). */
async function until(fact: () => boolean): Promise<void> {
  while (!fact()) await new Promise<void>((resolve) => setImmediate(resolve));
}

describe.skipIf(skipWithoutNats)('a sync waiting when the registry stops', () => {
  it('rejects with ERR_NODE_STOPPED, as a call to a server that stops fails (it resolved: the cache claimed in sync), and the stop completes with no waiter left', async () => {
    const { members } = await nodes(['a']);
    const a = members[0]!;
    // the watch never catches up: the sync's own write answers a revision far past any the bucket will reach
    await onSyncWrite(async (write) => (await write()) + 1_000_000);
    const synced = failure(() => a.global.sync());
    await until(() => a.global.internals().syncWaiters === 1);
    const stopped = a.global.stop();
    const e = await synced;
    expect(e).toMatchObject({ code: 'ERR_NODE_STOPPED' });
    expect((e as Error).message).toContain('GlobalRegistry.sync');
    await stopped;
    expect(a.global.internals().syncWaiters).toBe(0);
  }, 30_000);

  /**
   * A sync of `registry` whose write is held until `acknowledge` (then answered, or failed): resolves
   * once the write is held, with the sync's settlement and what it settled with (`outcome`).
   */
  async function syncWithHeldWrite(registry: GlobalRegistry, answer: 'answered' | 'failed') {
    let acknowledge: () => void = () => undefined;
    const acknowledged = new Promise<void>((resolve) => (acknowledge = resolve));
    let writing: () => void = () => undefined;
    const written = new Promise<void>((resolve) => (writing = resolve));
    await onSyncWrite(async (write) => {
      writing();
      await acknowledged;
      if (answer === 'failed') throw new Error('the write failed after the stop');
      return write();
    });
    const outcome: unknown[] = [];
    const synced = registry.sync().then(
      () => outcome.push('resolved'),
      (e: unknown) => outcome.push(e),
    );
    await written;
    return { outcome, synced, acknowledge };
  }

  it('a sync whose write is on its way when the stop begins rejects with ERR_NODE_STOPPED at once, not once the write is answered (it waited for the write); the stop completes once it is', async () => {
    const { members } = await nodes(['a']);
    const a = members[0]!;
    const { outcome, synced, acknowledge } = await syncWithHeldWrite(a.global, 'answered');
    const stopped = a.global.stop(); // it waits for the write
    try {
      // the write is still held: one turn of the event loop runs the rejection through
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(outcome).toHaveLength(1);
      expect(outcome[0]).toMatchObject({ code: 'ERR_NODE_STOPPED' });
      expect((outcome[0] as Error).message).toContain('GlobalRegistry.sync');
    } finally {
      acknowledge(); // before the afterEach's stop, which waits for the write
    }
    await synced;
    await stopped;
    expect(outcome).toHaveLength(1);
    expect(a.global.internals()).toMatchObject({ syncWaiters: 0, inflight: 0 });
  }, 30_000);

  it("a sync whose write is on its way when the node shuts down rejects with ERR_NODE_STOPPED at once; the write failing later is no unhandled rejection", async () => {
    const { members } = await nodes(['a']);
    const a = members[0]!;
    const { outcome, synced, acknowledge } = await syncWithHeldWrite(a.global, 'failed');
    await a.node.shutdown(); // its hook stops the registry, and waits for the stop 2 s at most: the stop waits for the write, held here until after
    try {
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(outcome).toHaveLength(1);
      expect(outcome[0]).toMatchObject({ code: 'ERR_NODE_STOPPED' });
    } finally {
      acknowledge(); // before the afterEach's stop, which waits for the write
    }
    await synced;
    await a.global.stop();
    expect(outcome).toHaveLength(1);
    expect(a.global.internals()).toMatchObject({ syncWaiters: 0, inflight: 0 });
  }, 30_000);

  it("a node shut down while the start's sync waits fails the start with ERR_NODE_STOPPED (it waited on), and the start stops what it began", async () => {
    const { Bucket } = await import('@nats-io/kv');
    const stops: boolean[] = [];
    // the start's watch is silent until stopped: its sync waits
    const watch = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(() => {
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      const i = stops.push(false) - 1;
      return Promise.resolve({ stop: () => { stops[i] = true; stop(); }, async *[Symbol.asyncIterator]() { await stopped; } } as never);
    });
    onTestFinished(() => watch.mockRestore());
    const { written } = await syncWriteAnswered();
    const node = track({ name: 'a' });
    const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    const started = failure(() => GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}`, syncTimeoutMs: 2 ** 30 }));
    await written; // the sync's write is answered: it waits for the watch
    await new Promise<void>((resolve) => setImmediate(resolve));
    const shutdown = node.shutdown();
    const e = await started;
    expect(e).toMatchObject({ code: 'ERR_NODE_STOPPED' });
    await shutdown;
    // its watch stopped (another may have been opened after a stall on a slow machine: each stopped too)
    expect(stops.length).toBeGreaterThanOrEqual(1);
    expect(stops.every(Boolean)).toBe(true);
  }, 30_000);

  it("a stop in the start's last turns, after its sync resolved and before it arms its timers, fails the start with ERR_NODE_STOPPED: it resolved with a stopped registry whose lease renewal it armed after the stop, for good (the renewal holding the process open)", async () => {
    /** Starts a registry, the node's shutdown hooks run (what its shutdown runs) once the start's sync resolved if `stop`; what happened, in order. */
    const start = async (name: string, stop: boolean): Promise<string[]> => {
      const node = track({ name });
      const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
      const nc = await connect({ servers: nats().url });
      connections.push(nc);
      const hooks: (() => unknown)[] = [];
      const onShutdown = node.onShutdown.bind(node);
      const hook = vi.spyOn(node, 'onShutdown').mockImplementation((fn) => onShutdown((hooks.push(fn), fn)));
      const order: string[] = [];
      // the start's own sync resolves, then (at once, before the start goes on) the stop
      const sync = GlobalRegistry.prototype.sync;
      const synced = vi.spyOn(GlobalRegistry.prototype, 'sync').mockImplementationOnce(async function (this: GlobalRegistry, ...args) {
        await sync.apply(this, args);
        order.push('synced');
        if (stop) {
          order.push('stop');
          for (const h of hooks) void h();
        }
      });
      // the lease renewal (every leaseMs / 3, the default leaseMs) armed
      const setInterval = globalThis.setInterval;
      const intervals = vi.spyOn(globalThis, 'setInterval').mockImplementation(((fn: () => void, ms?: number) => {
        if (ms === Math.floor(5000 / 3)) order.push('armed');
        return setInterval(fn, ms);
      }) as typeof globalThis.setInterval);
      try {
        const g = await GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}` });
        registries.push(g);
        order.push('started');
      } catch (e) {
        order.push((e as { code?: string }).code ?? String(e));
      } finally {
        hook.mockRestore();
        synced.mockRestore();
        intervals.mockRestore();
      }
      await node.shutdown();
      return order;
    };
    // the control: the renewal is armed once the sync resolved, and seen so
    expect(await start('a', false)).toEqual(['synced', 'armed', 'started']);
    // stopped in that gap: the start fails and arms nothing
    expect(await start('b', true)).toEqual(['synced', 'stop', 'ERR_NODE_STOPPED']);
  }, 60_000);
});

describe.skipIf(skipWithoutNats)("a sync's time bound", () => {
  it("counts on the node's timers: under a TestClock a sync times out once the clock passes timeoutMs from the call, its write's time included (host timers: it waited in real time, and held the process open)", async () => {
    const { node, clock } = clockedNode(track, { name: 'a' });
    const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    const global = await GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}`, syncTimeoutMs: 60_000 });
    registries.push(global);
    let acknowledge: () => void = () => undefined;
    let acknowledged = new Promise<void>((resolve) => (acknowledge = resolve));
    // the sync's write is held until acknowledged, then answers a revision the watch never reaches
    const restore = await onSyncWrite(async (write) => {
      await acknowledged;
      return (await write()) + 1_000_000;
    });
    onTestFinished(() => acknowledge());
    const outcome: unknown[] = [];
    const synced = global.sync().then(
      () => outcome.push('resolved'),
      (e: unknown) => outcome.push(e),
    );
    await clock.advance(40_000); // the write takes 40 s of the clock
    expect(outcome).toEqual([]);
    acknowledge();
    await until(() => global.internals().syncWaiters === 1);
    await clock.advance(19_999);
    expect(outcome).toEqual([]);
    await clock.advance(1);
    await synced;
    expect(outcome).toHaveLength(1);
    expect(outcome[0]).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 60_000 });
    expect((outcome[0] as { revision: number }).revision).toBeGreaterThan(1_000_000);
    expect(global.internals().syncWaiters).toBe(0);
    // a write never acknowledged: its own timeoutMs on the clock, revision 0
    acknowledged = new Promise<void>((resolve) => (acknowledge = resolve));
    const unanswered = failure(() => global.sync({ timeoutMs: 5000 }));
    await clock.advance(4999);
    await clock.advance(1);
    expect(await unanswered).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 5000, revision: 0 });
    acknowledge();
    restore();
    await global.sync();
  }, 30_000);

  it("the start's own sync counts on the node's timers too: under a TestClock a silent watch fails the start once the clock passes syncTimeoutMs", async () => {
    const { Bucket } = await import('@nats-io/kv');
    let opened: () => void = () => undefined;
    const watching = new Promise<void>((resolve) => (opened = resolve));
    const watch = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(() => {
      let stop: () => void = () => undefined;
      const stopped = new Promise<void>((resolve) => (stop = resolve));
      opened();
      return Promise.resolve({ stop, async *[Symbol.asyncIterator]() { await stopped; } } as never);
    });
    onTestFinished(() => watch.mockRestore());
    const { written } = await syncWriteAnswered();
    const { node, clock } = clockedNode(track, { name: 'a' });
    const cluster = await Cluster.join(node, { transport: new MemoryNetwork().transport() });
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    const outcome: unknown[] = [];
    const started = GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}`, syncTimeoutMs: 600_000 }).then(
      (g) => outcome.push(registries.push(g) && 'started'),
      (e: unknown) => outcome.push(e),
    );
    await watching;
    await written;
    await clock.advance(599_999);
    expect(outcome).toEqual([]);
    await clock.advance(1);
    await started;
    expect(outcome[0]).toMatchObject({ code: 'ERR_SYNC_TIMEOUT', timeoutMs: 600_000 });
  }, 30_000);
});

describe.skipIf(skipWithoutNats)('the watch that feeds the cache, opened again and again', () => {
  it('a watch that cannot be opened again while a sync waits is retried by one chain of timers, never one more per stall (each reopen of the stall check failing began its own, for good)', async () => {
    const { Bucket } = await import('@nats-io/kv');
    const original = Bucket.prototype.watch;
    const FAILURES = 3;
    let calls = 0;
    const watch = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(function (this: InstanceType<typeof Bucket>, ...args) {
      // the first watch is silent (start's sync waits), the next ones cannot be opened, then the bucket's own
      const n = ++calls;
      if (n === 1) {
        let stop: () => void = () => undefined;
        const stopped = new Promise<void>((resolve) => (stop = resolve));
        return Promise.resolve({ stop, async *[Symbol.asyncIterator]() { await stopped; } } as never);
      }
      if (n <= 1 + FAILURES) return Promise.reject(new Error('the bucket cannot be reached now'));
      return original.apply(this, args);
    });
    onTestFinished(() => watch.mockRestore());
    // the registry's stall and retry timers (2 s): how many are pending at once
    const realSetTimeout = globalThis.setTimeout;
    const realClearTimeout = globalThis.clearTimeout;
    const pending = new Set<unknown>();
    let most = 0;
    const set = vi.spyOn(globalThis, 'setTimeout').mockImplementation(((fn: (...a: unknown[]) => void, ms?: number, ...rest: unknown[]) => {
      if (ms !== 2000) return realSetTimeout(() => fn(...rest), ms);
      const t: ReturnType<typeof setTimeout> = realSetTimeout(() => {
        pending.delete(t);
        fn();
      }, ms);
      pending.add(t);
      most = Math.max(most, pending.size);
      return t;
    }) as typeof setTimeout);
    const clear = vi.spyOn(globalThis, 'clearTimeout').mockImplementation(((t?: Parameters<typeof clearTimeout>[0]) => {
      pending.delete(t);
      realClearTimeout(t);
    }) as typeof clearTimeout);
    onTestFinished(() => {
      set.mockRestore();
      clear.mockRestore();
    });
    const net = new MemoryNetwork();
    const node = track({ name: 'a' });
    const cluster = await Cluster.join(node, { transport: net.transport() });
    const restarts = captureEvents(node, ['keel.global.watch_restarted']);
    const nc = await connect({ servers: nats().url });
    connections.push(nc);
    const global = await GlobalRegistry.start(node, { cluster, connection: nc, bucket: `global_${process.pid}_${++buckets}` });
    registries.push(global);
    // every failed open was tried again, one at a time: the stall check's timer and one retry's
    expect(calls).toBeGreaterThanOrEqual(2 + FAILURES);
    expect(restarts.events.length).toBeGreaterThanOrEqual(1 + FAILURES);
    expect(new Set(restarts.events.map((e) => e.metadata.from))).toEqual(new Set([1]));
    expect(most).toBeLessThanOrEqual(2);
  }, 60_000);
});

describe.skipIf(skipWithoutNats)('delete markers', () => {
  /** What the bucket's stream holds, key by key: the operation of each key's last message. */
  async function contents(nc: NatsConnection, bucket: string): Promise<{ messages: number; ops: string[] }> {
    const jsm = await jetstreamManager(nc);
    const messages = (await jsm.streams.info(`KV_${bucket}`)).state.messages;
    const kv = await new Kvm(nc).open(bucket);
    const history = await kv.history({ key: '>' });
    const ops: string[] = [];
    for await (const e of history) ops.push(e.operation);
    return { messages, ops };
  }

  it('a sweep removes the markers that released names and departed members left, and a node starting after it reads only live keys', async () => {
    const { members, bucket, net } = await nodes(['a'], { markerGraceMs: 0 });
    const [a] = members as [Member];
    const pids = Array.from({ length: 10 }, () => a.node.spawn(() => () => undefined));
    for (const [i, p] of pids.entries()) await a.global.register(`n${i}`, p);
    for (const p of pids.slice(0, 5)) await a.global.join('workers', p);
    const keep = a.node.spawn(() => () => undefined);
    await a.global.register('kept', keep);
    for (let i = 0; i < 10; i++) expect(await a.global.unregister(`n${i}`)).toBe(true);
    for (const p of pids.slice(0, 5)) await a.global.leave('workers', p);
    await a.global.sync();
    const before = await contents(a.nc, bucket);
    expect(before.ops.filter((op) => op === 'DEL')).toHaveLength(15);
    const { events } = captureEvents(a.node, ['keel.global.swept']);
    expect(await a.global.sweepMarkers()).toBe(15);
    expect(events.map((e) => e.measurements)).toEqual([{ count: 15 }]);
    const after = await contents(a.nc, bucket);
    expect(after.ops).not.toContain('DEL');
    expect(after.messages).toBe(before.messages - 15);
    // a second sweep finds nothing left
    expect(await a.global.sweepMarkers()).toBe(0);
    // the live name is untouched, here and for a node that starts now
    expect(a.global.whereis('kept')?.id).toBe(keep.id);
    const b = track({ name: 'b' });
    const cb = await Cluster.join(b, { transport: net.transport() });
    await cb.waitFor(['a']);
    const gb = await GlobalRegistry.start(b, { cluster: cb, connection: a.nc, bucket });
    registries.push(gb);
    expect(gb.names()).toEqual(['kept']);
    expect(gb.whereis('kept')?.id).toBe(keep.id);
    expect(gb.members('workers')).toEqual([]);
  });

  it('purging through a marker never removes a write made after it: a name registered again keeps its owner', async () => {
    const { members, bucket } = await nodes(['a', 'b'], { markerGraceMs: 0 });
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('again', p1);
    expect(await a.global.unregister('again')).toBe(true);
    const kv = await new Kvm(a.nc).open(bucket);
    const marker = await kv.get(nameKey('again'));
    expect(marker?.operation).toBe('DEL');
    const p2 = a.node.spawn(() => () => undefined);
    await a.global.register('again', p2);
    // what a sweep does with a marker it read just before the name was registered again
    const { purgeThrough, close } = await openBucket({ connection: a.nc }, bucket);
    expect(await purgeThrough(nameKey('again'), marker!.revision)).toBe(0);
    await close();
    expect((await kv.get(nameKey('again')))?.operation).toBe('PUT');
    await b.global.sync();
    expect(b.global.whereis('again')?.id).toBe(p2.id);
  });

  it('a sweep whose connection is gone rejects and says so with an event; the registry still stops', async () => {
    const { members } = await nodes(['a'], { markerGraceMs: 0 });
    const [a] = members as [Member];
    const { events } = captureEvents(a.node, ['keel.global.sweep_failed']);
    await a.nc.close();
    const e = await failure(() => a.global.sweepMarkers());
    expect(e).toBeInstanceOf(Error);
    expect(events).toHaveLength(1);
    expect(events[0]!.measurements).toEqual({ count: 1 });
    expect(events[0]!.metadata.error).toBe(e);
    await a.global.stop();
    expect(((await failure(() => a.global.sweepMarkers())) as { code: string }).code).toBe('ERR_NODE_STOPPED');
  });
});

describe.skipIf(skipWithoutNats)('options', () => {
  it('refuses a cluster of another node, a bad bucket, bad leases and unknown keys', async () => {
    const net = new MemoryNetwork();
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: net.transport() });
    await Cluster.join(b, { transport: net.transport() });
    const cases: unknown[] = [
      { cluster: ca, servers: nats().url, bucket: 'bad.bucket' },
      { cluster: ca, servers: nats().url, leaseMs: NaN },
      { cluster: ca, servers: nats().url, marginMs: -1 },
      // past a Node timer's range (2^31 - 1 ms) setTimeout/setInterval fire after 1 ms: a renewal loop every millisecond
      { cluster: ca, servers: nats().url, leaseMs: 2 ** 31 * 3 },
      { cluster: ca, servers: nats().url, marginMs: 2 ** 31 },
      { cluster: ca, servers: nats().url, markerGraceMs: -1 },
      { cluster: ca, servers: nats().url, markerGraceMs: NaN },
      { cluster: ca, servers: nats().url, markerGraceMs: 2 ** 31 },
      { cluster: ca, servers: nats().url, markerGraceMs: '0' },
      { cluster: ca, servers: nats().url, extra: 1 },
      { cluster: {}, servers: nats().url },
      null,
    ];
    for (const options of cases) {
      const e = (await failure(() => GlobalRegistry.start(a, options as GlobalOptions))) as { code: string };
      expect(e.code).toBe('ERR_INVALID_ARGUMENT');
    }
    const e = (await failure(() => GlobalRegistry.start(b, { cluster: ca, servers: nats().url }))) as { code: string };
    expect(e.code).toBe('ERR_INVALID_ARGUMENT');
    // servers: the registry opens (and closes) its own connection
    const g = await GlobalRegistry.start(a, { cluster: ca, servers: nats().url, bucket: `own_${process.pid}` });
    const p = a.spawn(() => () => undefined);
    await g.register('mine', p);
    expect(g.whereis('mine')?.id).toBe(p.id);
    await g.stop();
    await g.stop();
  });
});

/**
 * Relays the registry's KV watch (the first one opened from now on; every later one is the bucket's
 * own) entry by entry: once `hold()` was called, the entries the watch brings wait, in order, and
 * `step()` lets the next one through and resolves with it once the registry applied it (asked for
 * the one after). What a watch that lags behind the registry's own writes looks like.
 */
async function relayedWatch() {
  const { Bucket } = await import('@nats-io/kv');
  const original = Bucket.prototype.watch;
  const waiting: KvWatchEntry[] = [];
  let ended = false;
  let held = false;
  let credits = 0;
  let applied: ((e: KvWatchEntry) => void) | undefined;
  let poke: () => void = () => undefined;
  let changed = new Promise<void>((resolve) => (poke = resolve));
  const wake = (): void => {
    const resolve = poke;
    changed = new Promise<void>((r) => (poke = r));
    resolve();
  };
  let calls = 0;
  const spy = vi.spyOn(Bucket.prototype, 'watch').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
    const real = await original.apply(this, args);
    if (++calls > 1) return real;
    void (async () => {
      for await (const e of real) {
        waiting.push(e);
        wake();
      }
    })().finally(() => {
      ended = true;
      wake();
    });
    async function* relay(): AsyncGenerator<KvWatchEntry> {
      for (;;) {
        while (!ended && (waiting.length === 0 || (held && credits === 0))) await changed;
        if (waiting.length === 0) return;
        const stepped = held;
        if (stepped) credits--;
        const e = waiting.shift()!;
        yield e;
        // the registry asks for the next entry: it applied this one (a step's, not one let through before the hold)
        if (!stepped) continue;
        const done = applied;
        applied = undefined;
        done?.(e);
      }
    }
    return Object.assign(relay(), { stop: () => real.stop() }) as never;
  });
  onTestFinished(() => spy.mockRestore());
  return {
    hold: (): void => void (held = true),
    step: (): Promise<KvWatchEntry> =>
      new Promise<KvWatchEntry>((resolve) => {
        applied = resolve;
        credits++;
        wake();
      }),
  };
}

describe.skipIf(skipWithoutNats)("a watch that lags behind this node's own writes", () => {
  /** One node whose registry's watch is relayed by {@link relayedWatch}, held from now on (a lease long enough that no renewal comes meanwhile, unless `options` says otherwise). */
  async function lagging(options: Partial<GlobalOptions> = {}) {
    const relay = await relayedWatch();
    const { members, bucket } = await nodes(['a'], { leaseMs: 600_000, ...options });
    const [a] = members as [Member];
    relay.hold();
    return { a, relay, bucket };
  }

  it("whereis never answers an older holder than the cache already has: the watch's entries of a name at or below the revision this node wrote are ignored (it answered the old pid, then undefined)", async () => {
    const { a, relay } = await lagging();
    const p1 = a.node.spawn(() => () => undefined);
    const p2 = a.node.spawn(() => () => undefined);
    await a.global.register('x', p1);
    expect(await a.global.unregister('x')).toBe(true);
    const registered = nextEvent(a.node, 'keel.global.registered', (m) => m.name === 'x');
    await a.global.register('x', p2);
    const { revision } = (await registered) as { revision: number };
    const holder = { node: 'a', creation: a.node.creation, id: p2.id };
    expect(a.global.whereis('x')).toEqual(holder);
    // the watch brings the name's history now: p1's PUT, its DEL, p2's PUT (and whatever else came)
    const seen: string[] = [];
    for (;;) {
      const e = await relay.step();
      if (e.key === nameKey('x')) seen.push(e.operation);
      expect(a.global.whereis('x')).toEqual(holder);
      expect(a.global.names()).toEqual(['x']);
      if (e.key === nameKey('x') && e.revision >= revision) break;
    }
    expect(seen.slice(-2)).toEqual(['DEL', 'PUT']);
    expect(a.global.internals().owned).toBe(1);
  });

  it("a name this node unregistered does not come back from the watch's older entries: whereis stays undefined (it answered the released pid again)", async () => {
    const { a, relay } = await lagging();
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('y', p1);
    expect(await a.global.unregister('y')).toBe(true);
    expect(a.global.whereis('y')).toBeUndefined();
    const seen: string[] = [];
    while (seen.at(-1) !== 'DEL') {
      const e = await relay.step();
      if (e.key === nameKey('y')) seen.push(e.operation);
      expect(a.global.whereis('y')).toBeUndefined();
      expect(a.global.names()).toEqual([]);
    }
    expect(seen.at(-1)).toBe('DEL');
  });

  it("a name unregistered while its renewal was in flight does not come back from the watch's entry of that renewal (it answered the released pid again)", async () => {
    const { a, relay, bucket } = await lagging({ leaseMs: 900, marginMs: 300 });
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('z', p1);
    // the next write of the name is its renewal: the server applies it, its answer is held back until
    // the name is released (and then let through at the next turn of the event loop)
    const subject = `$KV.${bucket}.${nameKey('z')}`;
    const renewal = holdNextAnswer(a.nc, subject);
    await renewal.held;
    const released = nextEvent(a.node, 'keel.global.released', (m) => m.name === 'z');
    void released.then(() => setImmediate(renewal.release));
    expect(await a.global.unregister('z')).toBe(true);
    expect(a.global.whereis('z')).toBeUndefined();
    // the watch brings the registration, the renewal, the delete of the renewal's revision
    const seen: string[] = [];
    while (seen.at(-1) !== 'DEL') {
      const e = await relay.step();
      if (e.key === nameKey('z')) seen.push(e.operation);
      expect(a.global.whereis('z')).toBeUndefined();
    }
    expect(seen.at(-1)).toBe('DEL');
  });

  it("a name whose process died is gone from this node's whereis once the release's delete was answered, before the watch brings it (it answered the dead pid until the watch caught up)", async () => {
    const { a, relay } = await lagging();
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('w', p1);
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    a.node.exit(p1, 'kill');
    await watcher.receive(isDown);
    // an unregister called after the death runs once the release settled: nothing is left to release
    expect(await a.global.unregister('w')).toBe(false);
    expect(a.global.whereis('w')).toBeUndefined();
    expect(a.global.names()).toEqual([]);
    const seen: string[] = [];
    while (seen.at(-1) !== 'DEL') {
      const e = await relay.step();
      if (e.key === nameKey('w')) seen.push(e.operation);
      expect(a.global.whereis('w')).toBeUndefined();
    }
  });
});

/**
 * Holds the registries' deletes of `key` before they are sent, until `open()`: a release whose delete
 * has not landed yet. `order` records each `delete`, each `deleted` (answered) and each `create` of the
 * key; `landed` resolves once a delete was answered. `created` runs once each create of the key was
 * answered, before the registry reads the answer.
 */
async function heldDeletes(key: string, created: () => void = () => undefined) {
  const { Bucket } = await import('@nats-io/kv');
  const order: string[] = [];
  let open: () => void = () => undefined;
  const gate = new Promise<void>((resolve) => (open = resolve));
  let answered: () => void = () => undefined;
  const landed = new Promise<void>((resolve) => (answered = resolve));
  const remove = Bucket.prototype.delete;
  const create = Bucket.prototype.create;
  const deleting = vi.spyOn(Bucket.prototype, 'delete').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
    if (args[0] !== key) return remove.apply(this, args);
    order.push('delete');
    await gate;
    await remove.apply(this, args);
    order.push('deleted');
    answered();
  });
  const creating = vi.spyOn(Bucket.prototype, 'create').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
    if (args[0] !== key) return create.apply(this, args);
    order.push('create');
    const revision = await create.apply(this, args);
    created();
    return revision;
  });
  onTestFinished(() => {
    deleting.mockRestore();
    creating.mockRestore();
  });
  return { order, open, landed };
}

describe.skipIf(skipWithoutNats)("one node's register and unregister of one name run in call order", () => {
  it('an unregister called while a register of the name is on its way waits for it, and the name ends unregistered (it answered false at once, and the name stayed registered)', async () => {
    const { members, bucket } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    // the register's create is on its way (its answer takes a round trip) when the unregister is called
    const registering = a.global.register('s', p1);
    const unregistering = a.global.unregister('s');
    await registering;
    expect(await unregistering).toBe(true);
    expect(a.global.whereis('s')).toBeUndefined();
    expect(a.global.internals().owned).toBe(0);
    const kv = await new Kvm(a.nc).open(bucket);
    expect((await kv.get(nameKey('s')))?.operation).toBe('DEL');
    await a.global.sync();
    await b.global.sync();
    expect(a.global.whereis('s')).toBeUndefined();
    expect(b.global.whereis('s')).toBeUndefined();
  });

  it("a register called while an unregister of the name is on its way writes only once the delete was answered, and holds the name (it wrote at once, racing the delete, and could find the name still taken)", async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('t', p1);
    const { Bucket } = await import('@nats-io/kv');
    const order: string[] = [];
    const remove = Bucket.prototype.delete;
    const create = Bucket.prototype.create;
    const deleting = vi.spyOn(Bucket.prototype, 'delete').mockImplementation(async function (this: InstanceType<typeof Bucket>, ...args) {
      if (args[0] !== nameKey('t')) return remove.apply(this, args);
      order.push('delete');
      await remove.apply(this, args);
      order.push('deleted');
    });
    const creating = vi.spyOn(Bucket.prototype, 'create').mockImplementation(function (this: InstanceType<typeof Bucket>, ...args) {
      if (args[0] === nameKey('t')) order.push('create');
      return create.apply(this, args);
    });
    onTestFinished(() => {
      deleting.mockRestore();
      creating.mockRestore();
    });
    const unregistering = a.global.unregister('t');
    const registering = a.global.register('t', p1);
    expect(await unregistering).toBe(true);
    await registering;
    expect(order).toEqual(['delete', 'deleted', 'create']);
    expect(a.global.internals().owned).toBe(1);
    expect(a.global.whereis('t')).toBe(p1);
    await a.global.sync();
    expect(a.global.whereis('t')).toBe(p1);
  });
  it("a register called after the holder died, before the release's delete landed, waits for the release and holds the name (it wrote at once, read the dead process's entry and got ERR_NAME_TAKEN)", async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('d', p1);
    const held = await heldDeletes(nameKey('d'));
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    a.node.exit(p1, 'kill');
    await watcher.receive(isDown);
    const p2 = a.node.spawn(() => () => undefined);
    const registering = a.global.register('d', p2);
    const outcome = registering.then(REGISTERED, errorCode);
    // a round trip later every turn the register could take without the delete has been taken: a
    // register that wrote (it did not wait for the release) is left to settle before the delete goes
    await a.global.sync();
    if (held.order.includes('create')) await outcome;
    held.open();
    expect(await outcome).toBe('registered');
    expect(held.order).toEqual(['delete', 'deleted', 'create']);
    expect(a.global.whereis('d')).toBe(p2);
    await a.global.sync();
    await b.global.sync();
    expect(a.global.whereis('d')).toBe(p2);
    expect(b.global.whereis('d')).toEqual({ node: 'a', creation: a.node.creation, id: p2.id });
  });

  it("a register called after a process died while its own register's create was on its way waits for that write to be undone, and holds the name (it wrote while the undoing delete was on its way, and got ERR_NAME_TAKEN)", async () => {
    const { members } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    // p1 dies once its create was answered, before its register reads the answer
    const held = await heldDeletes(nameKey('c'), () => a.node.exit(p1, 'kill'));
    const first = a.global.register('c', p1).then(REGISTERED, errorCode);
    await watcher.receive(isDown);
    const p2 = a.node.spawn(() => () => undefined);
    const outcome = a.global.register('c', p2).then(REGISTERED, errorCode);
    // a round trip later every turn the register could take without the delete has been taken: a
    // register that wrote (it did not wait for the undoing) is left to settle before the delete goes
    await a.global.sync();
    if (held.order.filter((o) => o === 'create').length > 1) await outcome;
    held.open();
    expect(await first).toBe('ERR_NOPROC');
    expect(await outcome).toBe('registered');
    expect(held.order).toEqual(['create', 'delete', 'deleted', 'create']);
    expect(a.global.whereis('c')).toBe(p2);
    expect(a.global.internals().owned).toBe(1);
  });

  it("a register called right after its holder was fenced, before the fence's delete landed, waits for it and holds the name (it wrote at once, read the fenced process's entry and got ERR_NAME_TAKEN)", async () => {
    // a margin long enough that the fenced holder's entry is not taken over meanwhile
    const { members } = await nodes(['a', 'b'], { leaseMs: 600_000, marginMs: 600_000 });
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('f', p1);
    const held = await heldDeletes(nameKey('f'));
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    // the node wakes past the lease deadline (a freeze): the first message for the name fences p1
    const real = Date.now.bind(Date);
    const spy = vi.spyOn(Date, 'now').mockImplementation(() => real() + 900_000);
    expect(a.global.send('f', 'late')).toBe(false);
    spy.mockRestore();
    expect(fencedName(((await watcher.receive(isDown)) as Down).reason)).toBe('f');
    expect(held.order).toEqual(['delete']);
    const p2 = a.node.spawn(() => () => undefined);
    const outcome = a.global.register('f', p2).then(REGISTERED, errorCode);
    // a round trip later every turn the register could take without the delete has been taken: a
    // register that wrote (it did not wait for the fence's delete) is left to settle before it goes
    await a.global.sync();
    if (held.order.includes('create')) await outcome;
    held.open();
    expect(await outcome).toBe('registered');
    expect(held.order).toEqual(['delete', 'deleted', 'create']);
    expect(a.global.whereis('f')).toBe(p2);
    expect(a.global.internals().owned).toBe(1);
    await a.global.sync();
    await b.global.sync();
    expect(a.global.whereis('f')).toBe(p2);
    expect(b.global.whereis('f')).toEqual({ node: 'a', creation: a.node.creation, id: p2.id });
  });

  it("a process of another node may find the name of a process that died taken until the release's delete lands, then registers it", async () => {
    const { members } = await nodes(['a', 'b']);
    const [a, b] = members as [Member, Member];
    const p1 = a.node.spawn(() => () => undefined);
    await a.global.register('e', p1);
    await b.global.sync();
    const held = await heldDeletes(nameKey('e'));
    const watcher = probe<Down>(a.node);
    watcher.ctx.monitor(p1);
    a.node.exit(p1, 'kill');
    await watcher.receive(isDown);
    const p2 = b.node.spawn(() => () => undefined);
    const e = (await failure(() => b.global.register('e', p2))) as { code: string };
    expect(e.code).toBe('ERR_NAME_TAKEN');
    held.open();
    await held.landed;
    await b.global.register('e', p2);
    expect(b.global.whereis('e')).toBe(p2);
    await a.global.sync();
    expect(a.global.whereis('e')).toEqual({ node: 'b', creation: b.node.creation, id: p2.id });
  });

  it("a stop called while a dead holder's delete waits its turn in the name's order waits for that delete: the stopped registry leaves no name of its dead process in the bucket", async () => {
    // a guard: the queued delete starts within microtasks of the operation before it (no holding
    // coexists with an earlier operation of its name on its way), and the stop's loop over its
    // writes in flight sees it there while its own sync key's delete is on its way
    const { members, bucket } = await nodes(['a']);
    const [a] = members as [Member];
    const p1 = a.node.spawn(() => () => undefined);
    const key = nameKey('z');
    // the holder dies, and the stop is called, while its own register is still settling (a telemetry
    // handler of the registration, run before the register resolves): the release's delete is queued
    // behind that register in the name's order
    let stopping: Promise<void> | undefined;
    let deleting: ReturnType<typeof holdNextAnswer> | undefined;
    a.node.telemetry.attach('kill-on-registered', ['keel.global.registered'], (_e, _m, meta) => {
      if (meta.name !== 'z') return;
      a.node.telemetry.detach('kill-on-registered');
      // the next request to the name's subject is the release's delete: its answer is held back
      deleting = holdNextAnswer(a.nc, `$KV.${bucket}.${key}`);
      a.node.exit(p1, 'kill');
      stopping = a.global.stop();
    });
    expect(await a.global.register('z', p1).then(REGISTERED, errorCode)).toBe('registered');
    expect(stopping).toBeDefined();
    let stopped = false;
    void stopping!.then(() => (stopped = true));
    // the release's delete is sent; its answer is held back
    await deleting!.held;
    // a round trip later every turn the stop could take without the delete's answer has been taken
    const kv = await new Kvm(a.nc).open(bucket);
    await kv.get(key);
    expect(stopped).toBe(false);
    deleting!.release();
    await stopping;
    expect((await kv.get(key))?.operation).toBe('DEL');
  });
});
