// The worker_threads transport with real worker threads. A worker thread cannot load TypeScript
// (Node 20 has no type stripping, and vitest's transform does not reach into workers), so the
// worker nodes run test/cluster/fixtures/workerNode.mjs, which imports the transport from a private
// build of src/ made for this file (useBuiltPackage: the shared dist/ is neither needed nor
// touched); the hub and the main-thread node use the TypeScript source.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkerHub, DEFAULT_WORKER_MAX_BATCH, DEFAULT_WORKER_MAX_IN_FLIGHT, WORKER_BATCH_OVERHEAD, WORKER_PROTOCOL_VERSION, type WorkerHub, workerNode, workerTransport } from '../../src/cluster/transports/worker.js';
import { Cluster } from '../../src/cluster/Cluster.js';
import { GenServer } from '../../src/otp/GenServer.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';
import type { ProbeResult, Transport, TransportHandler } from '../../src/cluster/Transport.js';
import { isKeelError } from '../../src/errors.js';
import { useBuiltPackage } from '../childProcesses.js';

const builtIndex = useBuiltPackage();
const transportModule = (): string => new URL('./cluster/transports/worker.js', builtIndex()).href;
const FIXTURE = new URL('./fixtures/workerNode.mjs', import.meta.url);

interface Event {
  readonly ev: string;
  readonly node: string;
  readonly peer?: string;
}

/** A worker node driven over its parentPort (see the fixture). */
class Node {
  readonly events: Event[] = [];
  #next = 1;
  readonly #replies = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  readonly #eventWaiters: { predicate: (e: Event) => boolean; resolve: (e: Event) => void }[] = [];
  readonly exited: Promise<number>;

  constructor(readonly name: string, readonly worker: Worker) {
    worker.on('message', (m: { id?: number; result?: unknown; error?: { code: string; message: string } } & Partial<Event>) => {
      if (m.id !== undefined) {
        const r = this.#replies.get(m.id)!;
        this.#replies.delete(m.id);
        if (m.error === undefined) r.resolve(m.result);
        else r.reject(Object.assign(new Error(m.error.message), { code: m.error.code }));
        return;
      }
      const e = m as Event;
      this.events.push(e);
      for (let i = this.#eventWaiters.length - 1; i >= 0; i--) {
        if (this.#eventWaiters[i]!.predicate(e)) this.#eventWaiters.splice(i, 1)[0]!.resolve(e);
      }
    });
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
    this.exited.then(() => {
      for (const r of this.#replies.values()) r.reject(new Error(`worker ${name} exited`));
    }, () => {});
  }

  call<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#replies.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, cmd, ...args });
    });
  }

  event(predicate: (e: Event) => boolean): Promise<Event> {
    const seen = this.events.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve) => this.#eventWaiters.push({ predicate, resolve }));
  }
}

/** A main-thread node's handler that records everything and lets a test await it. */
function recorder() {
  const received: [string, string][] = [];
  const broadcasts: [string, string][] = [];
  const gone: string[] = [];
  const waiters: (() => boolean)[] = [];
  const wake = (): void => {
    for (let i = waiters.length - 1; i >= 0; i--) if (waiters[i]!()) waiters.splice(i, 1);
  };
  const until = (ready: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): boolean => (ready() ? (resolve(), true) : false);
      if (!check()) waiters.push(check);
    });
  const handler: TransportHandler = {
    receive: (from, batch) => { received.push([from, batch]); wake(); },
    receiveBroadcast: (from, batch) => { broadcasts.push([from, batch]); wake(); },
    peerGone: (peer) => { gone.push(peer); wake(); },
    connection: () => {},
  };
  return { handler, received, broadcasts, gone, until };
}

let hub: WorkerHub | undefined;
const transports: Transport[] = [];
afterEach(async () => {
  for (const t of transports.splice(0)) await t.close();
  await hub?.close();
  hub = undefined;
});

async function spawn(name: string, incarnation = 1): Promise<Node> {
  hub ??= createWorkerHub();
  const node = new Node(name, hub.spawnNode(FIXTURE, { name, workerData: { module: transportModule() } }));
  await node.event((e) => e.ev === 'ready');
  await node.call('start', { incarnation });
  return node;
}

async function mainNode(name = 'main', options?: { maxBatchSize?: number; maxInFlight?: number }) {
  hub ??= createWorkerHub();
  const t = hub.transport(name, options);
  transports.push(t);
  const r = recorder();
  await t.start({ name, incarnation: 7 }, r.handler);
  return { t, ...r };
}

describe('worker transport', () => {
  it('carries 10,000 batches each way between two worker threads, in order, from the right sender', async () => {
    const a = await spawn('a');
    const b = await spawn('b');
    const fromA = b.call<[string, string][]>('received', { count: 10_000 });
    const fromB = a.call<[string, string][]>('received', { count: 10_000 });
    await Promise.all([a.call('sendMany', { peer: 'b', prefix: 'a', count: 10_000 }), b.call('sendMany', { peer: 'a', prefix: 'b', count: 10_000 })]);
    expect(await fromA).toEqual(Array.from({ length: 10_000 }, (_, i) => ['a', `a${i}`]));
    expect(await fromB).toEqual(Array.from({ length: 10_000 }, (_, i) => ['b', `b${i}`]));
  }, 60_000);

  it('broadcasts to every node but the sender, main thread included', async () => {
    const main = await mainNode();
    const a = await spawn('a');
    const b = await spawn('b');
    expect(hub!.nodes).toEqual(['main', 'a', 'b']);
    await a.call('broadcast', { batch: 'from-a' });
    await b.call('broadcast', { batch: 'from-b' });
    main.t.broadcast('from-main');
    await main.until(() => main.broadcasts.length === 2);
    expect([...main.broadcasts].sort()).toEqual([['a', 'from-a'], ['b', 'from-b']]);
    // each worker sees the other two, never its own
    expect((await a.call<[string, string][]>('received', { count: 2, kind: 'broadcast' })).sort()).toEqual([['b', 'from-b'], ['main', 'from-main']]);
    expect((await b.call<[string, string][]>('received', { count: 2, kind: 'broadcast' })).sort()).toEqual([['a', 'from-a'], ['main', 'from-main']]);
    expect(main.received).toEqual([]);
  }, 60_000);

  it("probes: 'alive' for an answering peer, 'timeout' for a blocked one, 'gone' for an unknown or closed one", async () => {
    const main = await mainNode();
    const a = await spawn('a');
    expect(await main.t.probe('a', 10_000)).toBe('alive');
    expect(await a.call<ProbeResult>('probe', { peer: 'main', timeoutMs: 10_000 })).toBe('alive');
    expect(await main.t.probe('nobody', 10_000)).toBe('gone');
    // a thread that runs no event loop answers no ping
    const flag = new SharedArrayBuffer(4);
    const blocked = a.call('block', { flag });
    await a.event((e) => e.ev === 'blocked');
    expect(await main.t.probe('a', 100)).toBe('timeout');
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    await blocked;
    expect(await main.t.probe('a', 10_000)).toBe('alive');
    await a.call('close');
    await main.until(() => main.gone.length === 1);
    expect(main.gone).toEqual(['a']);
    expect(await main.t.probe('a', 10_000)).toBe('gone');
  }, 60_000);

  it('a node whose thread is blocked does not hold up a later join; it meets the newcomer once it runs again', async () => {
    const a = await spawn('a');
    const flag = new SharedArrayBuffer(4);
    const blocked = a.call('block', { flag });
    await a.event((e) => e.ev === 'blocked');
    const b = await spawn('b'); // joins without a's acknowledgement (after the hub's wait)
    expect(hub!.nodes).toEqual(['a', 'b']);
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    await blocked;
    const fromB = a.call<[string, string][]>('received', { count: 1 });
    await b.call('sendMany', { peer: 'a', prefix: 'b', count: 1 });
    expect(await fromB).toEqual([['b', 'b0']]);
  }, 60_000);

  it("a pending probe answers 'gone' when the peer's thread ends", async () => {
    const main = await mainNode();
    const a = await spawn('a');
    const flag = new SharedArrayBuffer(4);
    void a.call('block', { flag }).catch(() => {});
    await a.event((e) => e.ev === 'blocked');
    const probe = main.t.probe('a', 60_000);
    await a.worker.terminate();
    expect(await probe).toBe('gone');
  }, 60_000);

  it("a terminated worker is peerGone on every other node, after its batches, and probes 'gone'", async () => {
    const main = await mainNode();
    const a = await spawn('a');
    const b = await spawn('b');
    await b.call('sendMany', { peer: 'main', prefix: 'b', count: 1000 });
    await b.worker.terminate();
    await main.until(() => main.gone.includes('b'));
    // everything b posted before it ended arrived before its peerGone
    expect(main.received).toEqual(Array.from({ length: 1000 }, (_, i) => ['b', `b${i}`]));
    expect(main.gone).toEqual(['b']);
    await a.event((e) => e.ev === 'peerGone' && e.peer === 'b');
    expect(await main.t.probe('b', 10_000)).toBe('gone');
    expect(await a.call<ProbeResult>('probe', { peer: 'b', timeoutMs: 10_000 })).toBe('gone');
    expect(hub!.nodes).toEqual(['main', 'a']);
    // the name is free again: a new incarnation of b joins and is reachable
    const b2 = await spawn('b', 2);
    main.t.send('b', 'again');
    expect(await b2.call('received', { count: 1 })).toEqual([['main', 'again']]);
    expect(a.events.filter((e) => e.ev === 'peerGone')).toEqual([{ ev: 'peerGone', node: 'a', peer: 'b' }]);
  }, 60_000);

  it('a worker that exits or throws is peerGone too', async () => {
    const main = await mainNode();
    const a = await spawn('a');
    await a.call('exit', { code: 3 }).catch(() => {});
    expect(await a.exited).toBe(3);
    await main.until(() => main.gone.includes('a'));
    expect(main.gone).toEqual(['a']);
  }, 60_000);

  it('after close(), send, broadcast and probe do nothing, and the peers see it gone', async () => {
    const main = await mainNode();
    const a = await spawn('a');
    main.t.send('a', 'before');
    await main.t.close();
    await main.t.close();
    expect(() => main.t.send('a', 'after')).not.toThrow();
    expect(() => main.t.broadcast('after')).not.toThrow();
    expect(await main.t.probe('a', 10_000)).toBe('gone');
    await a.event((e) => e.ev === 'peerGone' && e.peer === 'main');
    expect(await a.call('received', { count: 1 })).toEqual([['main', 'before']]);
    expect(main.gone).toEqual([]);
    await expect(main.t.start({ name: 'main', incarnation: 8 }, main.handler)).rejects.toMatchObject({ code: 'ERR_NODE_STOPPED' });
  }, 60_000);

  it("a main-thread node's name is free once its transport's close() has resolved: taken again at once, the new node joins and is reached", async () => {
    const main = await mainNode('m');
    const other = await mainNode('o');
    await main.t.close();
    const again = hub!.transport('m');
    transports.push(again);
    const r = recorder();
    await again.start({ name: 'm', incarnation: 8 }, r.handler);
    expect(hub!.nodes).toEqual(['o', 'm']);
    again.send('o', 'hello');
    other.t.send('m', 'back');
    await other.until(() => other.received.length === 1);
    await r.until(() => r.received.length === 1);
    expect(other.received).toEqual([['m', 'hello']]);
    expect(r.received).toEqual([['o', 'back']]);
  }, 60_000);

  it('a main-thread node shut down can be started again under its name at once: the peers see its new incarnation', async () => {
    hub = createWorkerHub();
    const na = track({ name: 'na' });
    const nb = track({ name: 'nb' });
    const ca = await Cluster.join(na, { transport: hub.transport('na') });
    const cb = await Cluster.join(nb, { transport: hub.transport('nb') });
    await ca.waitFor(['nb']);
    await cb.waitFor(['na']);
    const events = captureEvents(nb, ['keel.cluster.node_down', 'keel.cluster.node_up']);
    await na.shutdown();
    const reborn = track({ name: 'na' });
    const cr = await Cluster.join(reborn, { transport: hub.transport('na') });
    await cr.waitFor(['nb']);
    await cb.waitFor(['na']);
    expect(cb.nodes().map((n) => [n.name, n.incarnation])).toEqual([['na', reborn.creation]]);
    expect(events.events.map((e) => `${e.event}:${String(e.metadata.incarnation === na.creation ? 'old' : 'new')}:${String(e.metadata.reason)}`)).toEqual([
      'keel.cluster.node_down:old:goodbye',
      'keel.cluster.node_up:new:undefined',
    ]);
  }, 60_000);

  it('carries a batch of maxBatchSize', async () => {
    const main = await mainNode();
    const a = await spawn('a');
    expect(main.t.maxBatchSize).toBe(DEFAULT_WORKER_MAX_BATCH);
    expect(main.t.kind).toBe('worker');
    const big = 'x'.repeat(DEFAULT_WORKER_MAX_BATCH - 2) + '\u00e9!';
    main.t.send('a', big);
    expect(await a.call('received', { count: 1, summary: true })).toEqual([['main', DEFAULT_WORKER_MAX_BATCH, 'xxxxxxxx', 'xxxxxx\u00e9!']]);
  }, 60_000);

  it("a worker whose node throws an uncaught error is peerGone, and the thread that started it lives on (nobody listening for the Worker's 'error')", async () => {
    const script = fileURLToPath(new URL('./fixtures/throwMain.mjs', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script, transportModule()], { timeout: 60_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
    expect(JSON.parse(out.trim())).toEqual({
      first: 'w:hello',
      gone: 'w',
      workerCode: 1,
      nodes: ['main'],
      // the error is not lost: a process warning says which node it ended
      warnings: [['Warning', 'KEEL_WORKER_NODE_ERROR', true]],
      code: 0,
    });
  }, 60_000);

  it('a closed cluster lets the process exit by itself', async () => {
    const script = fileURLToPath(new URL('./fixtures/exitMain.mjs', import.meta.url));
    const out = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, [script, transportModule()], { timeout: 60_000 }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve(stdout)));
    });
    expect(JSON.parse(out.trim())).toEqual({ first: 'w:hello', gone: '', code: 0 });
  }, 60_000);

  describe('hostile input', () => {
    it('refuses bad node names, options and a taken name with typed errors', () => {
      hub = createWorkerHub();
      for (const name of ['', 'a.b', 'x'.repeat(65), 42, null, 'a b', 'ä']) {
        expect(() => hub!.transport(name as string)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
        expect(() => hub!.spawnNode(FIXTURE, { name: name as string })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      }
      const throwing = Object.defineProperty({}, 'name', { enumerable: true, get: () => { throw new Error('boom'); } });
      expect(() => hub!.spawnNode(FIXTURE, throwing as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      expect(() => hub!.spawnNode(FIXTURE, { name: 'a', nme: 1 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      expect(() => hub!.spawnNode(42 as never, { name: 'a' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      const trap = new Proxy({ name: 'a' }, { ownKeys: () => { throw new Error('trap'); } });
      expect(() => hub!.spawnNode(FIXTURE, trap)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      // a value a worker cannot be given is a typed error, and leaves the name free
      expect(() => hub!.spawnNode(FIXTURE, { name: 'f', workerData: { f: () => 1 } })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', argument: 'options.workerData' }));
      transports.push(hub.transport('f'));
      for (const maxBatchSize of [0, -1, NaN, Infinity, 1.5, '10']) {
        expect(() => hub!.transport('m', { maxBatchSize: maxBatchSize as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
      }
      // past 2^28 code units a batch could not be joined into one string (V8's largest is 2^29 - 24)
      for (const maxBatchSize of [2 ** 28 + 1, 2 ** 40]) {
        expect(() => hub!.transport('m', { maxBatchSize })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', argument: 'options.maxBatchSize' }));
      }
      transports.push(hub.transport('largest', { maxBatchSize: 2 ** 28 }));
      // '__proto__' is a valid name and an ordinary one
      transports.push(hub.transport('__proto__'));
      expect(() => hub!.transport('__proto__')).toThrow(expect.objectContaining({ code: 'ERR_NAME_TAKEN' }));
      expect(hub.transport('small', { maxBatchSize: 10 }).maxBatchSize).toBe(10);
    });

    it('refuses a start under another name, a second start, and a probe with a bad timeout', async () => {
      hub = createWorkerHub();
      const t = hub.transport('m');
      transports.push(t);
      const r = recorder();
      await expect(t.start({ name: 'other', incarnation: 1 }, r.handler)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await expect(t.start({ name: 'm', incarnation: NaN }, r.handler)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      await t.start({ name: 'm', incarnation: 1 }, r.handler);
      await expect(t.start({ name: 'm', incarnation: 1 }, r.handler)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      for (const timeoutMs of [NaN, -1, Infinity, '5']) await expect(t.probe('x', timeoutMs as number)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      // a worker that starts under a name it was not spawned with is refused
      const a = new Node('a', hub.spawnNode(FIXTURE, { name: 'a', workerData: { module: transportModule() } }));
      await a.event((e) => e.ev === 'ready');
      await expect(a.call('start', { incarnation: 1, as: 'b' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
      expect(hub.nodes).toEqual(['m']);
    }, 60_000);

    it('drops what is not a string batch, and sends to unknown peers, without throwing', async () => {
      const main = await mainNode();
      const a = await spawn('a');
      for (const bad of [42, undefined, { toString: () => 'x' }, () => 1, Symbol('s')]) {
        expect(() => main.t.send('a', bad as never)).not.toThrow();
        expect(() => main.t.broadcast(bad as never)).not.toThrow();
      }
      expect(() => main.t.send('nobody', 'x')).not.toThrow();
      expect(() => main.t.send(undefined as never, 'x')).not.toThrow();
      main.t.send('a', 'ok');
      expect(await a.call('received', { count: 1 })).toEqual([['main', 'ok']]);
      expect(await a.call('received', { count: 0, kind: 'broadcast' })).toEqual([]);
    }, 60_000);

    it('hub.close() terminates its workers, which are then gone for the nodes left, and the hub takes no more nodes', async () => {
      const main = await mainNode();
      const a = await spawn('a');
      const b = await spawn('b');
      await hub!.close();
      expect(await a.exited).toBe(1);
      expect(await b.exited).toBe(1);
      await main.until(() => main.gone.length === 2);
      expect([...main.gone].sort()).toEqual(['a', 'b']);
      expect(hub!.nodes).toEqual([]);
      expect(() => hub!.transport('late')).toThrow(expect.objectContaining({ code: 'ERR_NODE_STOPPED' }));
      expect(() => hub!.spawnNode(FIXTURE, { name: 'late' })).toThrow(expect.objectContaining({ code: 'ERR_NODE_STOPPED' }));
    }, 60_000);

    it('workerTransport() and workerNode() outside a spawned worker', () => {
      expect(workerNode()).toBeUndefined();
      let caught: unknown;
      try {
        workerTransport();
      } catch (e) {
        caught = e;
      }
      expect(isKeelError(caught, 'ERR_INVALID_ARGUMENT')).toBe(true);
    });
  });
});

describe('worker transport: the protocol version check', () => {
  const PROTOCOL_FIXTURE = new URL('./fixtures/workerProtocol.mjs', import.meta.url);
  const builtCluster = (): string => new URL('./cluster/index.js', builtIndex()).href;
  const mismatch = (remote: string): string =>
    `speaks worker protocol version 1, ${remote}; the two cannot talk: make both load the same Keel (check that the worker script resolves keel/cluster to the same copy as the thread that starts it)`;
  const NO_VERSION = 'presented no version number (a Keel from before the version check)';

  /** The hub's reports of refused versions (process warnings carrying the error), until `count` have come. */
  function mismatchWarnings(count: number): Promise<Error[]> {
    const seen: Error[] = [];
    return new Promise((resolve) => {
      const listener = (w: Error): void => {
        if (!isKeelError(w, 'ERR_PROTOCOL_MISMATCH')) return;
        seen.push(w);
        if (seen.length < count) return;
        process.off('warning', listener);
        resolve(seen);
      };
      process.on('warning', listener);
    });
  }

  it('is version 1, in the handle a hub gives a worker and in every join', () => {
    expect(WORKER_PROTOCOL_VERSION).toBe(1);
  });

  it("a hub refuses a worker node that presents another version, or none (a Keel from before the check): the node is told why, the hub reports it as a warning carrying ERR_PROTOCOL_MISMATCH, and the other nodes join and talk", async () => {
    const warnings = mismatchWarnings(3);
    const main = await mainNode();
    hub ??= createWorkerHub();
    const forged = [
      // the join of a Keel from before the check: no version
      { name: 'old', join: ['join', 'old', 1], remote: undefined, text: NO_VERSION },
      { name: 'next', join: ['join', 'next', 1, 2], remote: 2, text: 'speaks version 2' },
      // not a number: no version either
      { name: 'text', join: ['join', 'text', 1, '1'], remote: undefined, text: NO_VERSION },
    ];
    const nodes = forged.map((f) => new Node(f.name, hub!.spawnNode(PROTOCOL_FIXTURE, { name: f.name, workerData: { mode: 'forge', join: f.join } })));
    for (const [i, f] of forged.entries()) {
      const reply = (await nodes[i]!.event((e) => e.ev === 'control')) as Event & { message: unknown };
      expect(reply.message).toEqual(['refused', `this worker hub ${mismatch(`the node '${f.name}' ${f.text}`)}`, 'protocol', 1]);
    }
    // one each, in whatever order their threads sent their joins: compared sorted by node
    const reported = (await warnings).map((w) => ({ ...w, name: w.name, message: w.message })).sort((x, y) => x.message.localeCompare(y.message));
    expect(reported).toEqual(
      [...forged].sort((x, y) => x.name.localeCompare(y.name)).map((f) => ({ name: 'ProtocolMismatchError', code: 'ERR_PROTOCOL_MISMATCH', transport: 'worker', local: 1, remote: f.remote, message: `this worker hub ${mismatch(`the node '${f.name}' ${f.text}`)}` })),
    );
    // refused: never introduced to anyone; the nodes that speak the version join and talk
    const a = await spawn('a');
    const b = await spawn('b');
    expect(hub.nodes).toEqual(['main', 'a', 'b']);
    await a.call('send', { peer: 'b', batch: 'a->b' });
    await b.call('send', { peer: 'main', batch: 'b->main' });
    expect(await b.call('received', { count: 1 })).toEqual([['a', 'a->b']]);
    await main.until(() => main.received.length === 1);
    expect(main.received).toEqual([['b', 'b->main']]);
    // the hub pairs only the nodes it let join: no node has a port to a refused one
    for (const f of forged) {
      expect(await a.call('probe', { peer: f.name, timeoutMs: 5000 })).toBe('gone');
      expect(await main.t.probe(f.name, 5000)).toBe('gone');
    }
  }, 60_000);

  it("a node refused for its version stays refused: the hub lets its port go (its name free again), so a later join on it, of the right version too, is not taken, and 100 joins make one warning", async () => {
    const warnings: Error[] = [];
    const listener = (w: Error): void => void (isKeelError(w, 'ERR_PROTOCOL_MISMATCH') && warnings.push(w));
    process.on('warning', listener);
    try {
      const main = await mainNode();
      hub ??= createWorkerHub();
      // another version, then the hub's own (a forged retry), then a flood of the other version
      const joins = [['join', 'late', 1, 2], ['join', 'late', 1, 1], ...Array.from({ length: 100 }, () => ['join', 'late', 1, 2])];
      const late = new Node('late', hub.spawnNode(PROTOCOL_FIXTURE, { name: 'late', workerData: { mode: 'forge', joins } }));
      // its port closed by the hub (or, taken, its join answered)
      await late.event((e) => e.ev === 'closed' || (e.ev === 'control' && (e as Event & { message: unknown[] }).message[0] === 'joined'));
      const control = late.events.filter((e) => e.ev === 'control').map((e) => (e as Event & { message: unknown[] }).message[0]);
      expect(control).toEqual(['refused']);
      expect(hub.nodes).toEqual(['main']);
      expect(await main.t.probe('late', 5000)).toBe('gone');
      // its name is free again while its thread lives on: a worker of the right Keel joins under it
      const again = await spawn('late');
      expect(hub.nodes).toEqual(['main', 'late']);
      expect(await again.call('probe', { peer: 'main', timeoutMs: 5000 })).toBe('alive');
      expect(warnings).toHaveLength(1);
      expect(warnings[0]).toMatchObject({ code: 'ERR_PROTOCOL_MISMATCH', remote: 2 });
      await late.worker.terminate();
    } finally {
      process.off('warning', listener);
    }
  }, 60_000);

  it("a Keel worker whose hub presents another version, or none, fails at workerTransport() with ProtocolMismatchError naming both, and tells the hub its own before letting the port go", async () => {
    for (const [version, remote, text] of [
      [undefined, undefined, NO_VERSION],
      [2, 2, 'speaks version 2'],
      ['1', undefined, NO_VERSION],
      [NaN, NaN, 'speaks version NaN'],
      [1.5, 1.5, 'speaks version 1.5'],
    ] as const) {
      // the test is the hub here, speaking the control protocol by hand: a handle of another version
      const { port1, port2 } = new MessageChannel();
      const control: unknown[] = [];
      port1.on('message', (m: unknown) => control.push(m));
      const closed = new Promise((resolve) => port1.once('close', resolve));
      const handle = version === undefined ? { name: 'x', port: port2 } : { name: 'x', port: port2, version };
      const node = new Node('x', new Worker(PROTOCOL_FIXTURE, { workerData: { keelWorkerNode: handle, data: { mode: 'node', module: builtCluster() } }, transferList: [port2] }));
      const reported = (await node.event((e) => e.ev === 'transport')) as Event & { error: unknown };
      expect(reported.error).toEqual({
        name: 'ProtocolMismatchError',
        code: 'ERR_PROTOCOL_MISMATCH',
        transport: 'worker',
        local: 1,
        remote,
        message: `the worker node 'x' ${mismatch(`the hub that started it ${text}`)}`,
      });
      await closed;
      // a hub that checks versions refuses the node for its version first (and reports it); one from before the check refuses incarnation 0
      expect(control).toEqual([['join', 'x', 0, 1]]);
      // nothing holds the thread: it ends by itself
      expect(await node.exited).toBe(0);
    }
  }, 60_000);

  it("a Keel worker that its hub refuses for its version rejects its start with ProtocolMismatchError naming both, and closes", async () => {
    const { port1, port2 } = new MessageChannel();
    const control: unknown[] = [];
    port1.on('message', (m: unknown) => {
      control.push(m);
      // the test, as a hub of version 2 that hands out version-1 handles (it could not happen but by forging): refuses the join
      port1.postMessage(['refused', 'another version', 'protocol', 2]);
    });
    const closed = new Promise((resolve) => port1.once('close', resolve));
    const node = new Node('y', new Worker(PROTOCOL_FIXTURE, { workerData: { keelWorkerNode: { name: 'y', port: port2, version: 1 }, data: { mode: 'node', module: builtCluster() } }, transferList: [port2] }));
    const reported = (await node.event((e) => e.ev === 'start')) as Event & { error: unknown };
    expect(reported.error).toEqual({
      name: 'ProtocolMismatchError',
      code: 'ERR_PROTOCOL_MISMATCH',
      transport: 'worker',
      local: 1,
      remote: 2,
      message: `the worker node 'y' ${mismatch("its hub speaks version 2")}`,
    });
    expect(control).toEqual([['join', 'y', 1, 1]]);
    await closed;
    expect(await node.exited).toBe(0);
  }, 60_000);
});

describe('worker transport: the join handshake', () => {
  const PROTOCOL_FIXTURE = new URL('./fixtures/workerProtocol.mjs', import.meta.url);
  const builtCluster = (): string => new URL('./cluster/index.js', builtIndex()).href;
  const ADVICE = 'a worker node must start its transport under the name it was spawned with (workerNode().name), with a positive safe integer incarnation';
  type Control = Event & { message: unknown[] };

  /** A forged node (no Keel: it speaks the control protocol by hand), posting `joins` in turn. */
  function forge(name: string, joins: unknown[][]): Node {
    hub ??= createWorkerHub();
    return new Node(name, hub.spawnNode(PROTOCOL_FIXTURE, { name, workerData: { mode: 'forge', joins } }));
  }
  const controls = (node: Node): unknown[][] => node.events.filter((e) => e.ev === 'control').map((e) => (e as Control).message);

  /** The process warnings whose code is `code`, as they come. */
  function collectWarnings(code: string): { readonly seen: Error[]; off: () => void } {
    const seen: Error[] = [];
    const listener = (w: Error): void => void ((w as { code?: unknown }).code === code && seen.push(w));
    process.on('warning', listener);
    return { seen, off: () => process.off('warning', listener) };
  }

  it("a hub refuses a join that names another node, or whose incarnation is not a positive safe integer: the node is told why, the hub lets its port go (nothing more read, its name free again) and reports it once, a warning carrying JoinRefusedError (ERR_JOIN_REFUSED)", async () => {
    const warnings = collectWarnings('ERR_JOIN_REFUSED');
    try {
      const main = await mainNode();
      const huge = 'x'.repeat(1_000_000);
      const cases: { name: string; join: unknown[]; detail: string }[] = [
        { name: 'n1', join: ['join', 'other', 1, 1], detail: `it named "other", not 'n1'` },
        // what structured cloning lets through: data. An object whose toString is not a function
        // throws in String(); a million-character name is not echoed back whole
        { name: 'n2', join: ['join', { toString: 0 }, 1, 1], detail: `it named an object, not 'n2'` },
        { name: 'n3', join: ['join', huge, 1, 1], detail: `it named "${'x'.repeat(57)}...", not 'n3'` },
        { name: 'n4', join: ['join', ['n4'], 1, 1], detail: `it named an array of length 1, not 'n4'` },
        ...([[0, '0'], [-1, '-1'], [1.5, '1.5'], [NaN, 'NaN'], ['1', '"1"'], [2 ** 53, '9007199254740992'], [undefined, 'undefined']] as const).map(([incarnation, text], i) => ({
          name: `i${i}`,
          join: ['join', `i${i}`, incarnation, 1],
          detail: `its incarnation ${text} is not a positive safe integer`,
        })),
      ];
      // each forged node posts its bad join, then a good one (a retry), then 50 more bad ones
      const nodes = cases.map((c) => forge(c.name, [c.join, ['join', c.name, 1, 1], ...Array.from({ length: 50 }, () => c.join)]));
      for (const [i, c] of cases.entries()) {
        const node = nodes[i]!;
        // its port let go by the hub (or, the port kept, a second answer)
        await node.event((e) => e.ev === 'closed' || controls(node).length >= 2);
        expect(controls(node)).toEqual([['refused', c.detail]]);
        expect(node.events.at(-1)!.ev).toBe('closed');
      }
      expect(hub!.nodes).toEqual(['main']);
      // one warning per refused node, not one per join, whatever order their threads joined in
      const reported = warnings.seen.map((w) => ({ ...w, name: w.name, message: w.message })).sort((x, y) => String((x as { node?: unknown }).node).localeCompare(String((y as { node?: unknown }).node)));
      expect(reported).toEqual(
        [...cases]
          .sort((x, y) => x.name.localeCompare(y.name))
          .map((c) => ({ name: 'JoinRefusedError', code: 'ERR_JOIN_REFUSED', transport: 'worker', node: c.name, detail: c.detail, message: `this worker hub refused the join of node '${c.name}': ${c.detail}; ${ADVICE}` })),
      );
      // refused: never introduced; the names are free again while the forged threads live on
      for (const c of cases) expect(await main.t.probe(c.name, 5000)).toBe('gone');
      const again = await spawn('n1');
      expect(hub!.nodes).toEqual(['main', 'n1']);
      expect(await again.call('probe', { peer: 'main', timeoutMs: 5000 })).toBe('alive');
      expect(warnings.seen).toHaveLength(cases.length);
    } finally {
      warnings.off();
    }
  }, 60_000);

  it("a Keel worker whose join its hub refuses rejects its start with JoinRefusedError saying why, and closes", async () => {
    // the test is the hub here, speaking the control protocol by hand: it refuses the join
    const { port1, port2 } = new MessageChannel();
    const control: unknown[] = [];
    port1.on('message', (m: unknown) => {
      control.push(m);
      port1.postMessage(['refused', `it named "y", not 'z'`]);
    });
    const closed = new Promise((resolve) => port1.once('close', resolve));
    const node = new Node('y', new Worker(PROTOCOL_FIXTURE, { workerData: { keelWorkerNode: { name: 'y', port: port2, version: 1 }, data: { mode: 'node', module: builtCluster() } }, transferList: [port2] }));
    const reported = (await node.event((e) => e.ev === 'start')) as Event & { error: unknown };
    expect(reported.error).toEqual({
      name: 'JoinRefusedError',
      code: 'ERR_JOIN_REFUSED',
      transport: 'worker',
      node: 'y',
      detail: `it named "y", not 'z'`,
      message: `its worker hub refused the join of node 'y': it named "y", not 'z'; ${ADVICE}`,
    });
    expect(control).toEqual([['join', 'y', 1, 1]]);
    await closed;
    expect(await node.exited).toBe(0);
  }, 60_000);

  it('a newcomer whose thread dies mid-introduction does not hold up the joins behind it, and its name joins again', async () => {
    const older = await spawn('o');
    // the older node cannot acknowledge: the newcomer stays introduced, its join under way
    const flag = new SharedArrayBuffer(4);
    const blocked = older.call('block', { flag });
    await older.event((e) => e.ev === 'blocked');
    const newcomer = forge('n', [['join', 'n', 1, 1]]);
    await newcomer.event((e) => e.ev === 'control' && (e as Control).message[0] === 'peer');
    await newcomer.worker.terminate();
    await newcomer.exited;
    Atomics.store(new Int32Array(flag), 0, 1);
    Atomics.notify(new Int32Array(flag), 0);
    await blocked;
    // the joins behind it are taken; its name, free again, joins anew and is reached
    const b = await spawn('b');
    const again = await spawn('n', 2);
    expect(hub!.nodes).toEqual(['o', 'b', 'n']);
    const fromO = again.call<[string, string][]>('received', { count: 1 });
    await older.call('send', { peer: 'n', batch: 'o->n' });
    expect(await fromO).toEqual([['o', 'o->n']]);
    expect(await b.call('probe', { peer: 'n', timeoutMs: 5000 })).toBe('alive');
  }, 60_000);

  it('hub.close() while joins wait (one introduced, held by an older node that does not acknowledge it, one queued behind it): each start rejects with ERR_NODE_STOPPED, none is told it joined', async () => {
    // an older node that never acknowledges a newcomer's port
    const older = forge('o', [['join', 'o', 1, 1]]);
    await older.event((e) => e.ev === 'control' && (e as Control).message[0] === 'joined');
    const t1 = hub!.transport('n1');
    const t2 = hub!.transport('n2');
    transports.push(t1, t2);
    const r1 = recorder();
    const r2 = recorder();
    // both joins posted in one turn: the hub reads both in one turn too, and introduces one
    const started = [t1.start({ name: 'n1', incarnation: 1 }, r1.handler), t2.start({ name: 'n2', incarnation: 1 }, r2.handler)].map((p) =>
      p.then(
        () => 'joined',
        (e: unknown) => (e as { code?: string }).code,
      ),
    );
    await older.event((e) => e.ev === 'control' && (e as Control).message[0] === 'peer');
    await hub!.close();
    expect(await Promise.all(started)).toEqual(['ERR_NODE_STOPPED', 'ERR_NODE_STOPPED']);
    expect(hub!.nodes).toEqual([]);
  }, 60_000);

  it("a transport the hub gave out before its close() and started after it rejects its start with ERR_NODE_STOPPED, instead of waiting for ever", async () => {
    hub = createWorkerHub();
    const t = hub.transport('early');
    transports.push(t);
    await hub.close();
    // the 'close' of the transport's control port (closed by the hub) is emitted in the event
    // loop's next closing phase, and so is that of a channel closed now, just before it (libuv
    // runs a phase's close callbacks newest first): the close of a second channel, closed once
    // the first has been seen, comes in a later phase, after the control port's. A start from
    // then on found no 'close' to come, and its join waited for ever
    for (let i = 0; i < 2; i++) {
      const { port1, port2 } = new MessageChannel();
      port1.on('message', () => {});
      const closed = new Promise((resolve) => port2.once('close', resolve));
      port1.close();
      await closed;
    }
    await expect(t.start({ name: 'early', incarnation: 1 }, recorder().handler)).rejects.toMatchObject({ code: 'ERR_NODE_STOPPED', message: expect.stringContaining('the worker hub is closed') as unknown });
  }, 10_000);
});

const track = useNodes();

describe('worker transport: a peer that does not read', () => {
  it('posts at most maxInFlight (each batch its length plus 512) a peer has not read: past it a batch is dropped and the cluster told, and room comes back as the peer reads', async () => {
    const overloaded: [string, number][] = [];
    // room for exactly 4 batches of 1,000 (4 × 1,512)
    const a = await mainNode('fa', { maxBatchSize: 1000, maxInFlight: 6048 });
    a.handler.overloaded = (peer, size) => void overloaded.push([peer, size]);
    const b = await mainNode('fb', { maxBatchSize: 1000, maxInFlight: 6048 });
    // one turn of this thread: fb reads nothing meanwhile
    for (let i = 0; i < 10; i++) a.t.send('fb', `${i}`.padEnd(1000, '.'));
    // once one is dropped, every later one is, even one that would fit: what arrives is a prefix
    a.t.send('fb', 'z');
    expect(overloaded).toEqual([...Array.from({ length: 6 }, () => ['fb', 1000]), ['fb', 1]]);
    await b.until(() => b.received.length === 4);
    expect(b.received.map(([from, batch]) => `${from}:${batch[0]}:${batch.length}`)).toEqual(['fa:0:1000', 'fa:1:1000', 'fa:2:1000', 'fa:3:1000']);
    // fb said what it read before it answers this ping (one port, in order): the window is empty again
    expect(await a.t.probe('fb', 5000)).toBe('alive');
    for (let i = 0; i < 3; i++) a.t.send('fb', `${i + 10}`.padEnd(1000, '.'));
    a.t.broadcast('hb');
    expect(overloaded).toHaveLength(7);
    await b.until(() => b.received.length === 7 && b.broadcasts.length === 1);
    expect(b.received.slice(4).map(([, batch]) => batch.slice(0, 2))).toEqual(['10', '11', '12']);
    // a broadcast past the window is dropped for that peer alone, and told: fb has acknowledged
    // 3 × 1,512 of the 3 × 1,512 + 514 it read (a read is told past an eighth of the window, 756):
    // 514 + 3 × 1,512 + 1,511 is past 6,048
    const c = await mainNode('fc', { maxBatchSize: 1000, maxInFlight: 6048 });
    expect(await a.t.probe('fb', 5000)).toBe('alive');
    expect(await a.t.probe('fc', 5000)).toBe('alive');
    for (let i = 0; i < 3; i++) a.t.send('fb', 'x'.repeat(1000));
    a.t.broadcast('y'.repeat(999));
    expect(overloaded.slice(7)).toEqual([['fb', 999]]);
    await c.until(() => c.broadcasts.length === 1);
    expect(c.broadcasts).toEqual([['fa', 'y'.repeat(999)]]);
    await b.until(() => b.received.length === 10);
    expect(b.broadcasts).toEqual([['fa', 'hb']]);
  }, 60_000);

  it('counts each batch as its length plus 512 (what a queued message costs besides its text), on both sides: tiny batches fill the window at maxInFlight / 513, and it is empty again once they are read', async () => {
    expect(WORKER_BATCH_OVERHEAD).toBe(512);
    const overloaded: [string, number][] = [];
    // room for 5 one-unit batches (5 × 513 = 2,565 of 3,024), not 6 (3,078)
    const a = await mainNode('ta', { maxBatchSize: 1000, maxInFlight: 3024 });
    a.handler.overloaded = (peer, size) => void overloaded.push([peer, size]);
    const b = await mainNode('tb', { maxBatchSize: 1000, maxInFlight: 3024 });
    // one turn of this thread: tb reads nothing meanwhile
    for (let i = 0; i < 100; i++) a.t.send('tb', `${i % 10}`);
    expect(overloaded).toEqual(Array.from({ length: 95 }, () => ['tb', 1]));
    await b.until(() => b.received.length === 5);
    expect(b.received.map(([, batch]) => batch)).toEqual(['0', '1', '2', '3', '4']);
    // tb acknowledged 5 × 513 (past an eighth of ta's window, 378) before it answers the ping: a
    // reader that counted the text alone (5) would never have, and ta's window would stay full
    expect(await a.t.probe('tb', 5000)).toBe('alive');
    for (let i = 0; i < 6; i++) a.t.send('tb', 'y');
    expect(overloaded).toHaveLength(96);
    await b.until(() => b.received.length === 10);
    expect(b.received.slice(5).map(([, batch]) => batch)).toEqual(['y', 'y', 'y', 'y', 'y']);
  }, 60_000);

  it('a reader acknowledges at an eighth of the sender\'s window, not its own: a peer with a larger maxInFlight reads all it is sent and the sender never fills up', async () => {
    const overloaded: [string, number][] = [];
    // room for 2 batches of 1,000 (2 × 1,512)
    const a = await mainNode('wa', { maxBatchSize: 1000, maxInFlight: 3024 });
    a.handler.overloaded = (peer, size) => void overloaded.push([peer, size]);
    // wb's own window is 64,000: an eighth of it (8,000) is more than wa may ever have unread
    const b = await mainNode('wb', { maxBatchSize: 1000, maxInFlight: 64_000 });
    for (let i = 0; i < 20; i++) {
      a.t.send('wb', `${i}`.padEnd(1000, '.'));
      if (overloaded.length > 0) break;
      await b.until(() => b.received.length === i + 1);
      // wb has read everything it was sent (and said so before it answers the ping, one port in order)
      expect(await a.t.probe('wb', 5000)).toBe('alive');
    }
    expect(overloaded).toEqual([]);
    expect(b.received.map(([, batch]) => batch.length)).toEqual(Array.from({ length: 20 }, () => 1000));
  }, 60_000);

  it("tells the cluster what a dropped batch counted against maxInFlight (its length plus 512) beside its length; send_dropped reports both, size and counted", async () => {
    const overloaded: unknown[][] = [];
    // room for 2 batches of 1,000 (2 × 1,512 of 3,024)
    const a = await mainNode('ka', { maxBatchSize: 1000, maxInFlight: 3024 });
    a.handler.overloaded = (...args: unknown[]) => void overloaded.push(args);
    await mainNode('kb', { maxBatchSize: 1000, maxInFlight: 3024 });
    // one turn: kb reads nothing meanwhile
    for (let i = 0; i < 2; i++) a.t.send('kb', 'x'.repeat(1000));
    a.t.send('kb', 'x'.repeat(700));
    a.t.broadcast('b'.repeat(10));
    expect(overloaded).toEqual([['kb', 700, 'overloaded', 1212], ['kb', 10, 'overloaded', 522]]);

    // in a cluster: the event's size is the batch's length, counted what the window counted
    const na = track({ name: 'na' });
    const nb = track({ name: 'nb' });
    const options = { maxBatchSize: 8192, maxInFlight: 17_408 };
    const sent: number[] = [];
    const inner = hub!.transport('na', options);
    const recording: Transport = {
      kind: inner.kind,
      maxBatchSize: inner.maxBatchSize,
      maxReceiveSize: inner.maxReceiveSize!,
      start: (self, handler) => inner.start(self, handler),
      send: (peer, batch) => {
        sent.push(batch.length);
        inner.send(peer, batch);
      },
      broadcast: (batch) => inner.broadcast(batch),
      probe: (peer, timeoutMs) => inner.probe(peer, timeoutMs),
      flush: () => inner.flush(),
      close: () => inner.close(),
    };
    const ca = await Cluster.join(na, { transport: recording });
    const cb = await Cluster.join(nb, { transport: hub!.transport('nb', options) });
    await ca.waitFor(['nb']);
    await cb.waitFor(['na']);
    const events = captureEvents(na, ['keel.cluster.send_dropped']);
    const sink = probe(nb);
    sent.length = 0;
    // one turn: 20 messages of 2,000 (40,000: past the window)
    for (let i = 0; i < 20; i++) na.send(sink, `${i}:`.padEnd(2000, 'm'));
    await null;
    const dropped = events.events.filter((e) => e.event === 'keel.cluster.send_dropped');
    expect(dropped.length).toBeGreaterThan(0);
    // the batches sent past the window, in order, are the ones dropped
    const lengths = sent.slice(sent.length - dropped.length);
    expect(dropped.map((e) => e.measurements)).toEqual(lengths.map((size) => ({ count: 1, size, counted: size + WORKER_BATCH_OVERHEAD })));
  }, 60_000);

  it('refuses a maxInFlight under twice maxBatchSize + 512 (the largest batch, counted); the default is 64 Mi, or that if more', () => {
    hub = createWorkerHub();
    for (const maxInFlight of [0, -1, NaN, 1.5, '1e9', 1999, 3023]) {
      expect(() => hub!.transport('m', { maxBatchSize: 1000, maxInFlight: maxInFlight as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', argument: 'options.maxInFlight' }));
    }
    expect(DEFAULT_WORKER_MAX_IN_FLIGHT).toBe(64 * 1024 * 1024);
    transports.push(hub.transport('m', { maxBatchSize: 1000, maxInFlight: 3024 }));
  });

  it('in a cluster: a flood to a node that does not read downs it (overloaded), its ties are answered with noconnection, and it comes back once it has read', async () => {
    hub = createWorkerHub();
    const na = track({ name: 'na' });
    const nb = track({ name: 'nb' });
    const options = { maxBatchSize: 8192, maxInFlight: 17_408 };
    const ca = await Cluster.join(na, { transport: hub.transport('na', options) });
    const cb = await Cluster.join(nb, { transport: hub.transport('nb', options) });
    await ca.waitFor(['nb']);
    await cb.waitFor(['na']);
    const server = await GenServer.start(nb, { init: () => 0, handleCall: (n: number, _from: unknown, s: number) => ({ reply: n + 1, state: s }) });
    expect(await GenServer.call(na, server, 1, { timeout: 5000 })).toBe(2);
    const events = captureEvents(na, ['keel.cluster.send_dropped', 'keel.cluster.node_down', 'keel.cluster.node_up']);
    const sink = probe(nb);
    // one turn: a call, then 40 messages of 2,000 code units (80,000: over four times the window)
    const call = GenServer.call(na, server, 2, { timeout: 60_000 }).then(() => 'replied', (e: unknown) => (e as { code?: string }).code);
    for (let i = 0; i < 40; i++) na.send(sink, `${i}:`.padEnd(2000, 'm'));
    expect(await call).toBe('ERR_NOCONNECTION');
    const dropped = events.events.filter((e) => e.event === 'keel.cluster.send_dropped');
    expect(dropped.length).toBeGreaterThan(0);
    expect(dropped[0]!.metadata).toMatchObject({ node: 'na', to: 'nb', reason: 'overloaded' });
    expect(events.events.filter((e) => e.event === 'keel.cluster.node_down').map((e) => e.metadata.reason)).toEqual(['overloaded']);
    // what was posted arrived in order; the rest was dropped, never half a batch
    await ca.waitFor(['nb']);
    expect(await GenServer.call(na, server, 3, { timeout: 5000 })).toBe(4);
    // a prefix arrived, in order, with no hole: whole batches were dropped after the window filled
    const got = sink.messages.length;
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThan(40);
    expect(sink.messages).toEqual(Array.from({ length: got }, (_, i) => `${i}:`.padEnd(2000, 'm')));
    // and nothing past the window was posted: what arrived, with the call, fits in 17,408 (twice 8,192 + 512)
    expect(got * 2000).toBeLessThan(17_408);
  }, 60_000);

  it('in a cluster: no message lost to a flood is silent: each one in a batch dropped past the window, or still queued when the peer went down, is keel.message.dropped (noconnection)', async () => {
    hub = createWorkerHub();
    const na = track({ name: 'na' });
    const nb = track({ name: 'nb' });
    const options = { maxBatchSize: 8192, maxInFlight: 17_408 };
    const ca = await Cluster.join(na, { transport: hub.transport('na', options) });
    const cb = await Cluster.join(nb, { transport: hub.transport('nb', options) });
    await ca.waitFor(['nb']);
    await cb.waitFor(['na']);
    const sink = probe(nb);
    const events = captureEvents(na, ['keel.message.dropped', 'keel.cluster.node_down']);
    const message = (i: number): string => `${i}:`.padEnd(2000, 'm');
    // one turn: 40 messages of 2,000 code units (over four times the window): the batches past it are
    // dropped as the outbox fills, and nb goes down in a microtask queued at the first drop. A
    // microtask queued before that one (another process's turn, say) sends 5 more: they wait in the
    // outbox (nb is still up) when nb goes down
    na.send(sink, message(0));
    queueMicrotask(() => {
      for (let i = 40; i < 45; i++) na.send(sink, message(i));
    });
    for (let i = 1; i < 40; i++) na.send(sink, message(i));
    await null;
    expect(events.events.filter((e) => e.event === 'keel.cluster.node_down').map((e) => e.metadata.reason)).toEqual(['overloaded']);
    // nb speaks again and both are up anew; a last message goes behind everything posted before
    await ca.waitFor(['nb']);
    na.send(sink, 'end');
    expect(await sink.receive((m) => m === 'end')).toBe('end');
    const got = sink.messages.length - 1;
    expect(got).toBeGreaterThan(0);
    expect(sink.messages.slice(0, got)).toEqual(Array.from({ length: got }, (_, i) => message(i)));
    // sent = delivered + reported: every message that did not arrive is one dropped event, none twice
    const dropped = events.events.filter((e) => e.event === 'keel.message.dropped');
    expect(dropped).toHaveLength(45 - got);
    // each one names its message (decoded from its frame): the ones that did not arrive, in send order
    expect(dropped.map((e) => e.metadata.message)).toEqual(Array.from({ length: 45 - got }, (_, i) => message(got + i)));
    for (const e of dropped) {
      expect(e.measurements).toEqual({ count: 1 });
      expect(e.metadata).toMatchObject({ reason: 'noconnection', from: 'node' });
      expect(String(e.metadata.to)).toBe(String(sink));
    }
  }, 60_000);

  it('a node takes batches as large as any peer of its transport may send: a peer with a larger maxBatchSize is not refused as oversized', async () => {
    hub = createWorkerHub();
    const na = track({ name: 'na' });
    const nb = track({ name: 'nb' });
    const ca = await Cluster.join(na, { transport: hub.transport('na', { maxBatchSize: 20_000 }) });
    const cb = await Cluster.join(nb, { transport: hub.transport('nb', { maxBatchSize: 5000 }) });
    await ca.waitFor(['nb']);
    await cb.waitFor(['na']);
    const events = captureEvents(nb, ['keel.cluster.frame_dropped', 'keel.cluster.node_down']);
    const sink = probe(nb);
    na.send(sink, 'x'.repeat(10_000));
    expect(await sink.receive()).toBe('x'.repeat(10_000));
    expect(events.events).toEqual([]);
  }, 60_000);
});
