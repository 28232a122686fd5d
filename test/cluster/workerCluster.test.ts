// The scenario table of processes.test.ts (a cluster of OS processes over NATS), run on the worker
// transport where it applies: nodes on worker threads of this process, joined through one
// WorkerHub per test, each driven over its parentPort (test/cluster/fixtures/cluster-node-worker.mjs,
// which imports the private build of useBuiltPackage: a worker thread cannot load TypeScript).
// worker.terminate() stands for SIGKILL, Atomics.wait on a SharedArrayBuffer the test holds for
// SIGSTOP. Every scenario awaits facts (a reply, a Down heard, an event pushed), never time.
import type { Worker } from 'node:worker_threads';
import { afterEach, describe, expect, it } from 'vitest';
import { createWorkerHub, type WorkerHub } from '../../src/cluster/transports/worker.js';
import { Cluster } from '../../src/cluster/Cluster.js';
import type { Transport } from '../../src/cluster/Transport.js';
import { Pid } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { useBuiltPackage } from '../childProcesses.js';
import { useNodes } from '../support.js';
import type { ClusterEvent, Reply } from './nodeProcess.js';
import { sync } from './support.js';

const builtKeel = useBuiltPackage();
const FIXTURE = new URL('./fixtures/cluster-node-worker.mjs', import.meta.url);
// loopback defaults, with a down verdict slow enough for CI's two loaded cores (as processes.test.ts)
const TIMING = { heartbeatMs: 100, suspectAfterMs: 400, downAfterMs: 2500, probeTimeoutMs: 400 };

interface Heard {
  readonly kind: 'down' | 'exit' | 'message';
  readonly reason?: string;
  readonly pid?: string;
  readonly from?: string;
  readonly value?: unknown;
}

/** A node on a worker thread, driven over its parentPort. */
class ThreadNode {
  readonly events: ClusterEvent[] = [];
  incarnation = 0;
  readonly exited: Promise<number>;
  #next = 0;
  readonly #pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly #waiters = new Set<(m: Reply) => void>();
  #errors = '';

  constructor(readonly name: string, readonly worker: Worker) {
    worker.on('message', (m: Reply) => {
      if (m.clusterEvent !== undefined) this.events.push(m.clusterEvent);
      if (m.id !== undefined) {
        const p = this.#pending.get(m.id);
        this.#pending.delete(m.id);
        if (m.ok === true) p?.resolve(m.value);
        else p?.reject(new Error(`${name}: ${m.error ?? 'failed'}`));
      }
      for (const w of [...this.#waiters]) w(m);
    });
    worker.on('error', (e) => {
      this.#errors += `${e.stack ?? e.message}\n`;
    });
    this.exited = new Promise((resolve) => worker.once('exit', resolve));
    void this.exited.then((code) => {
      for (const p of this.#pending.values()) p.reject(new Error(`${name}'s thread exited (code ${code}) before answering ${this.#errors}`));
      this.#pending.clear();
      for (const w of [...this.#waiters]) w({});
    });
  }

  /** The first message (from now on) that `predicate` accepts; rejects if the thread exits first. */
  next(predicate: (m: Reply) => boolean): Promise<Reply> {
    return new Promise((resolve, reject) => {
      let ended = false;
      void this.exited.then(() => {
        ended = true;
      });
      const waiter = (m: Reply): void => {
        if (predicate(m)) {
          this.#waiters.delete(waiter);
          resolve(m);
        } else if (ended) {
          this.#waiters.delete(waiter);
          reject(new Error(`${this.name}'s thread exited before the message awaited ${this.#errors}`));
        }
      };
      this.#waiters.add(waiter);
    });
  }

  rpc<T = unknown>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
    const id = ++this.#next;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ id, cmd, args });
    });
  }

  /** The first cluster event (already or from now on) that `predicate` accepts. */
  event(predicate: (e: ClusterEvent) => boolean): Promise<ClusterEvent> {
    const seen = this.events.find(predicate);
    if (seen !== undefined) return Promise.resolve(seen);
    return this.next((m) => m.clusterEvent !== undefined && predicate(m.clusterEvent)).then((m) => m.clusterEvent!);
  }

  /** worker.terminate(): the thread ends at once, its ports close. Resolves once it has exited. */
  async kill(): Promise<void> {
    await this.worker.terminate();
    await this.exited;
  }

  /** Blocks the thread (Atomics.wait) until `thaw`: resolves once it is frozen. */
  async freeze(): Promise<() => void> {
    const flag = new SharedArrayBuffer(4);
    const frozen = this.next((m) => m.frozen === true);
    const answered = this.rpc('freeze', { flag });
    await frozen;
    return () => {
      const cell = new Int32Array(flag);
      Atomics.store(cell, 0, 1);
      Atomics.notify(cell, 0);
      void answered.catch(() => undefined);
    };
  }
}

let hub: WorkerHub | undefined;
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

async function startThread(name: string, cluster: Record<string, number> = TIMING): Promise<ThreadNode> {
  hub ??= createWorkerHub();
  const node = new ThreadNode(name, hub.spawnNode(FIXTURE, { name, workerData: { module: builtKeel(), options: { cluster } } }));
  node.incarnation = (await node.next((m) => m.ready === true)).incarnation!;
  return node;
}

/** `names` started on threads of a fresh hub, each up with all the others. */
async function cluster(names: readonly string[], timing: Record<string, number> = TIMING): Promise<ThreadNode[]> {
  const nodes = await Promise.all(names.map((n) => startThread(n, timing)));
  await Promise.all(nodes.map((node) => node.rpc('waitFor', { names: names.filter((n) => n !== node.name), timeoutMs: 20_000 })));
  return nodes;
}

const NO_LEAKS = (peers: number) => ({ peers, entries: 0, books: 0, outbox: 0 });
const track = useNodes();

/**
 * `inner`, counting the messages (`m` and `n` frames) of the batches it posted: a batch the
 * transport dropped instead (it tells the cluster during its send) is not counted.
 */
function countingPosted(inner: Transport): { transport: Transport; posted: () => number; postedValues: unknown[] } {
  let posted = 0;
  const postedValues: unknown[] = [];
  let dropped = false;
  const transport: Transport = {
    kind: inner.kind,
    maxBatchSize: inner.maxBatchSize,
    maxReceiveSize: inner.maxReceiveSize!,
    start: (self, handler) =>
      inner.start(self, {
        ...handler,
        overloaded: (peer, size, reason, counted) => {
          dropped = true;
          handler.overloaded?.(peer, size, reason, counted);
        },
      }),
    send: (peer, batch) => {
      dropped = false;
      inner.send(peer, batch);
      if (dropped) return;
      const frames = (JSON.parse(batch) as unknown[])[4] as unknown[][];
      const messages = frames.filter((f) => f[0] === 'm' || f[0] === 'n');
      posted += messages.length;
      for (const f of messages) postedValues.push(f[3]);
    },
    broadcast: (batch) => inner.broadcast(batch),
    probe: (peer, timeoutMs) => inner.probe(peer, timeoutMs),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return { transport, posted: () => posted, postedValues };
}

describe('a cluster of worker threads over the worker transport', () => {
  it('three nodes discover one another', async () => {
    const nodes = await cluster(['n1', 'n2', 'n3']);
    for (const node of nodes) {
      const peers = await node.rpc<{ name: string; status: string; incarnation: number }[]>('nodes');
      expect(peers.map((p) => p.name).sort()).toEqual(['n1', 'n2', 'n3'].filter((n) => n !== node.name));
      expect(peers.every((p) => p.status === 'up')).toBe(true);
      for (const p of peers) expect(p.incarnation).toBe(nodes.find((n) => n.name === p.name)!.incarnation);
    }
    expect(hub!.nodes).toEqual(expect.arrayContaining(['n1', 'n2', 'n3']));
  });

  it('10,000 messages from one process arrive in order', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const sink = await b.rpc<string>('collector', { name: 'sink' });
    await a.rpc('sendMany', { to: sink, count: 10_000 });
    expect(await b.rpc('collectedUntil', { name: 'sink', count: 10_001 })).toBe(10_001);
    const got = await b.rpc<{ n?: number; done?: boolean }[]>('collected', { name: 'sink' });
    expect(got.slice(0, 10_000).map((m) => m.n)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(got[10_000]).toEqual({ done: true });
    expect(got.length).toBe(10_001);
  }, 60_000);

  it('messages a process sent before it crashed arrive before its exit signal and its Down', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const watcher = await a.rpc<string>('watcher');
    const sender = await b.rpc<string>('sendThenExit', { to: watcher, messages: [1, 2, 3], reason: 'crash' });
    await a.rpc('link', { pid: sender });
    await a.rpc('monitor', { pid: sender });
    await sync(a, b); // the link and the monitor are in place on b
    await b.rpc('go', { pid: sender });
    const heard = await a.rpc<Heard[]>('heardUntil', { count: 5 });
    const seen = heard.map((h) => (h.kind === 'message' ? h.value : `${h.kind}:${h.reason}`));
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
    expect(seen.slice(3).sort()).toEqual(['down:Error: crashed after sending', 'exit:Error: crashed after sending']);
  });

  it('call outcomes: a reply, a timeout, a crash, a dead pid', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const server = await b.rpc<string>('counter', { name: 'counter', start: 10 });
    expect(await a.rpc('call', { to: server, request: { type: 'add', n: 5 } })).toEqual({ ok: true, reply: 15 });
    expect(await a.rpc('call', { to: server, request: { type: 'hang' }, timeoutMs: 300 })).toMatchObject({ ok: false, code: 'ERR_CALL_TIMEOUT' });
    const crashed = await a.rpc<{ ok: boolean; code: string; message: string }>('call', { to: server, request: { type: 'crash' } });
    expect([crashed.ok, crashed.code]).toEqual([false, 'ERR_CALL_EXIT']);
    expect(crashed.message).toContain('asked to crash');
    expect(await a.rpc('call', { to: server, request: { type: 'add', n: 1 } })).toMatchObject({ ok: false, code: 'ERR_NOPROC' });
    expect(await a.rpc('leaks')).toEqual(NO_LEAKS(1));
    expect(await b.rpc('leaks')).toEqual(NO_LEAKS(1));
  });

  it("worker.terminate() of a node: Downs and exits with noconnection on every survivor, a pending call fails at once, detected as 'port_closed'", async () => {
    const [a, b, c] = (await cluster(['a', 'b', 'c'])) as [ThreadNode, ThreadNode, ThreadNode];
    const target = await b.rpc<string>('idler', {});
    const linked = await b.rpc<string>('idler', {});
    const server = await b.rpc<string>('counter', { name: 'counter' });
    await a.rpc('monitor', { pid: target });
    await a.rpc('link', { pid: linked });
    await c.rpc('monitor', { pid: target });
    const call = await a.rpc<number>('startCall', { to: server, request: { type: 'hang' }, timeoutMs: 60_000 });
    await sync(a, b); // b has taken a's monitor, link and call
    await sync(c, b);
    await b.kill();
    const heard = await a.rpc<Heard[]>('heardUntil', { count: 2 });
    expect(heard.map((h) => `${h.kind}:${h.reason}`).sort()).toEqual(['down:noconnection', 'exit:noconnection']);
    expect(heard.find((h) => h.kind === 'down')!.pid).toBe(target);
    expect(heard.find((h) => h.kind === 'exit')!.from).toBe(linked);
    expect((await c.rpc<Heard[]>('heardUntil', { count: 1 })).map((h) => `${h.kind}:${h.pid}:${h.reason}`)).toEqual([`down:${target}:noconnection`]);
    for (const survivor of [a, c]) {
      const down = await survivor.event((e) => e.event === 'keel.cluster.node_down');
      expect(down.metadata).toMatchObject({ node: 'b', incarnation: b.incarnation, reason: 'port_closed' });
      // the fast path: well before the heartbeat verdict (downAfterMs 2500)
      expect(down.measurements.detectionMs).toBeLessThan(TIMING.downAfterMs);
      expect(survivor.events.filter((e) => e.event === 'keel.cluster.node_down')).toHaveLength(1);
    }
    const outcome = await a.rpc<{ done: boolean; ok: boolean; code: string; ms: number }>('callOutcome', { index: call });
    expect(outcome).toMatchObject({ done: true, ok: false, code: 'ERR_NOCONNECTION' });
    expect(outcome.ms).toBeLessThan(60_000);
    // exactly one answer per tie: nothing more arrives once the survivors have synced with each other
    await sync(c, a);
    await sync(a, c);
    expect(await a.rpc<Heard[]>('heard')).toHaveLength(2);
    expect(await c.rpc<Heard[]>('heard')).toHaveLength(1);
    expect(await a.rpc('leaks')).toEqual(NO_LEAKS(1));
    expect(await c.rpc('leaks')).toEqual(NO_LEAKS(1));
    expect(hub!.nodes).toEqual(['a', 'c']);
  });

  // a small window (about 500 messages unread): the flood overflows it and downs nb before it ends;
  // the default window: batches are posted until nb's port closes
  it.each([
    ['a small window', { maxBatchSize: 8192, maxInFlight: 17_408 }],
    ['the default window', {}],
  ])('a flood to a thread terminated in the middle of it (%s): every message sent is posted to its port or dropped with an event, none both; what it handled came in order and was posted', async (_window, options) => {
    hub = createWorkerHub();
    const na = track({ name: 'na' });
    const counting = countingPosted(hub.transport('na', options));
    const ca = await Cluster.join(na, { transport: counting.transport, ...TIMING });
    const b = await startThread('nb');
    await ca.waitFor(['nb']);
    const PER_TURN = 200;
    const TURNS = 40;
    const cells = new SharedArrayBuffer(4 * (2 + PER_TURN * TURNS));
    const cell = new Int32Array(cells);
    const sink = Pid.parse(await b.rpc<string>('countInto', { name: 'sink', cells }));
    const events = captureEvents(na, ['keel.message.dropped', 'keel.cluster.node_down']);
    const nbUp = (): boolean => ca.nodes().some((n) => n.name === 'nb');
    // nb down for na: at once if it already is, else at the next node_down that leaves it down
    const nbDown = (): Promise<void> =>
      new Promise((resolve) => {
        if (!nbUp()) return resolve();
        na.telemetry.attach('flood-nb-down', ['keel.cluster.node_down'], () => {
          if (nbUp()) return;
          na.telemetry.detach('flood-nb-down');
          resolve();
        });
      });
    let sent = 0;
    let killed: Promise<void> | undefined;
    for (let turn = 0; turn < TURNS; turn++) {
      for (let i = 0; i < PER_TURN; i++) na.send(sink, { n: sent++ });
      // the thread ends once a quarter of the flood is sent and it has handled some; the rest goes on
      // while it ends and after
      if (turn === TURNS / 4) {
        const first = (Atomics as unknown as { waitAsync(a: Int32Array, i: number, v: number): { async: boolean; value: Promise<string> | string } }).waitAsync(cell, 0, 0);
        if (first.async) await first.value;
        killed = b.kill();
      }
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await killed;
    await nbDown();
    await na.idle();
    const handled = Atomics.load(cell, 0);
    const dropped = events.events.filter((e) => e.event === 'keel.message.dropped');
    for (const e of dropped) expect(e.metadata).toMatchObject({ reason: 'noconnection', from: 'node', to: sink });
    const droppedCount = dropped.reduce((n, e) => n + (e.measurements.count ?? 1), 0);
    // none handled twice
    const handledNs = Array.from({ length: sent }, (_, n) => Atomics.load(cell, 2 + n));
    expect(handledNs.filter((times) => times > 1)).toEqual([]);
    // one by one: each drop names its message, and every message sent was either posted or dropped,
    // once, never both; none dropped was handled
    const droppedNs = dropped.map((e) => (e.metadata.message as { n: number }).n);
    const postedNs = counting.postedValues.map((v) => (v as { n: number }).n);
    expect([...droppedNs, ...postedNs].sort((x, y) => x - y)).toEqual(Array.from({ length: sent }, (_, n) => n));
    expect(droppedNs.filter((n) => handledNs[n] !== 0)).toEqual([]);
    expect(handledNs.reduce((a, b) => a + b, 0)).toBe(Atomics.load(cell, 0));
    // sent = posted + dropped with an event: none vanished between the send and the port, none counted twice
    expect(counting.posted() + droppedCount).toBe(sent);
    // what the thread handled came in order (with holes where batches were dropped past the window,
    // each message in them an event), and was posted: the rest of what was posted was still in its
    // port's queue when it ended (lost as on the BEAM: docs/cluster.md, Send)
    expect(Atomics.load(cell, 1)).toBe(0);
    expect(handled).toBeGreaterThan(0);
    expect(handled).toBeLessThanOrEqual(counting.posted());
    expect(droppedCount).toBeGreaterThan(0);
    expect(events.events.filter((e) => e.event === 'keel.cluster.node_down').length).toBeGreaterThan(0);
  }, 60_000);

  it('a frozen thread (Atomics.wait) is suspected, then down by heartbeat; thawed, it answers its own ties too', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const onB = await b.rpc<string>('idler', {});
    const onA = await a.rpc<string>('idler', {});
    await a.rpc('monitor', { pid: onB });
    await b.rpc('monitor', { pid: onA });
    await sync(a, b);
    await sync(b, a);
    const thaw = await b.freeze();
    try {
      const down = await a.event((e) => e.event === 'keel.cluster.node_down');
      expect(down.metadata).toMatchObject({ node: 'b', incarnation: b.incarnation, reason: 'heartbeat' });
      expect(down.measurements.detectionMs).toBeGreaterThanOrEqual(TIMING.downAfterMs);
      expect(a.events.some((e) => e.event === 'keel.cluster.node_suspect' && e.metadata.node === 'b')).toBe(true);
      expect((await a.rpc<Heard[]>('heardUntil', { count: 1 })).map((h) => `${h.kind}:${h.pid}:${h.reason}`)).toEqual([`down:${onB}:noconnection`]);
    } finally {
      thaw();
    }
    // b hears it was down to a: its monitor of a's process is answered too, then both are up anew
    expect((await b.rpc<Heard[]>('heardUntil', { count: 1 })).map((h) => `${h.kind}:${h.pid}:${h.reason}`)).toEqual([`down:${onA}:noconnection`]);
    await a.rpc('waitFor', { names: ['b'], timeoutMs: 20_000 });
    await b.rpc('waitFor', { names: ['a'], timeoutMs: 20_000 });
    await sync(a, b);
    await sync(b, a);
    expect(await a.rpc('leaks')).toEqual(NO_LEAKS(1));
    expect(await b.rpc('leaks')).toEqual(NO_LEAKS(1));
    // and messages flow again, both ways
    const sink = await b.rpc<string>('collector', { name: 'after' });
    await a.rpc('sendMany', { to: sink, count: 3 });
    expect(await b.rpc('collectedUntil', { name: 'after', count: 4 })).toBe(4);
  }, 60_000);

  it('a node restarted under its name is a new incarnation: the old pids are dead pids', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const old = await b.rpc<string>('collector', { name: 'sink' });
    await a.rpc('monitor', { pid: old });
    await sync(a, b);
    await b.kill();
    expect((await a.rpc<Heard[]>('heardUntil', { count: 1 }))[0]).toMatchObject({ kind: 'down', pid: old, reason: 'noconnection' });
    const reborn = await startThread('b');
    expect(reborn.incarnation).not.toBe(b.incarnation);
    await reborn.rpc('waitFor', { names: ['a'], timeoutMs: 20_000 });
    const up = await a.event((e) => e.event === 'keel.cluster.node_up' && e.metadata.incarnation === reborn.incarnation);
    expect(up.metadata.node).toBe('b');
    const fresh = await reborn.rpc<string>('collector', { name: 'sink' });
    expect(fresh).not.toBe(old);
    // a monitor of the old incarnation's pid: noproc; a message to it: dropped, never to the new sink
    await a.rpc('monitor', { pid: old });
    expect((await a.rpc<Heard[]>('heardUntil', { count: 2 }))[1]).toMatchObject({ kind: 'down', pid: old, reason: 'noproc' });
    await a.rpc('sendMany', { to: old, count: 2 });
    await a.rpc('sendMany', { to: fresh, count: 1 });
    expect(await reborn.rpc('collectedUntil', { name: 'sink', count: 2 })).toBe(2);
    expect(await reborn.rpc('collected', { name: 'sink' })).toEqual([{ n: 0 }, { done: true }]);
    expect(await a.rpc('whereis', { node: 'b', name: 'sink' })).toBe(fresh);
    expect(await a.rpc('leaks')).toEqual(NO_LEAKS(1));
    expect(await reborn.rpc('leaks')).toEqual(NO_LEAKS(1));
  });

  it('graceful shutdown says goodbye: peers know at once, and its ties are answered', async () => {
    const [a, b] = (await cluster(['a', 'b'])) as [ThreadNode, ThreadNode];
    const onB = await b.rpc<string>('idler', {});
    await a.rpc('monitor', { pid: onB });
    await sync(a, b);
    await b.rpc('shutdown');
    const down = await a.event((e) => e.event === 'keel.cluster.node_down');
    expect(down.metadata).toMatchObject({ node: 'b', reason: 'goodbye' });
    // b's processes stopped before its goodbye: the Down carries their reason, not noconnection
    const [heard] = await a.rpc<Heard[]>('heardUntil', { count: 1 });
    expect(heard).toMatchObject({ kind: 'down', pid: onB, reason: 'shutdown' });
    expect(await a.rpc('leaks')).toEqual(NO_LEAKS(0));
  });
});
