// Helpers the cluster's test files share.
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { Transport, TransportHandler } from '../../src/cluster/Transport.js';
import type { Node } from '../../src/runtime/types.js';
import { probe } from '../../src/testing/index.js';
import type { TrackNode } from '../support.js';

/** Two nodes, `a` and `b`, joined over a fresh in-memory network, each up with the other. */
export async function memoryPair(track: TrackNode, options?: Partial<ClusterOptions>) {
  const net = new MemoryNetwork();
  const a = track({ name: 'a' });
  const b = track({ name: 'b' });
  const ca = await Cluster.join(a, { transport: net.transport(), ...options });
  const cb = await Cluster.join(b, { transport: net.transport(), ...options });
  await ca.waitFor(['b']);
  await cb.waitFor(['a']);
  return { net, a, b, ca, cb };
}

/** A node driven by a test over a channel (an OS child's IPC, a worker's parentPort): the fixture's commands. */
export interface DrivenNode {
  rpc<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
}

let syncs = 0;

/** Resolves once everything `from` sent before reached `to` (frames of one pair travel in order). */
export async function sync(from: DrivenNode, to: DrivenNode): Promise<void> {
  const name = `sync${++syncs}`;
  const sink = await to.rpc<string>('collector', { name });
  await from.rpc('sendMany', { to: sink, count: 0 });
  await to.rpc('collectedUntil', { name, count: 1 });
}

/**
 * A transport over `inner` (a memory network's) whose probe is `probe`; `started` is given the
 * cluster's handler, so that a test can play the transport's side (a port that closes, say).
 */
export function probedTransport(inner: Transport, probe: Transport['probe'], started: (handler: TransportHandler) => void): Transport {
  return {
    kind: 'memory',
    get maxBatchSize() {
      return inner.maxBatchSize;
    },
    start: (self, handler) => {
      started(handler);
      return inner.start(self, handler);
    },
    send: (p, batch) => inner.send(p, batch),
    broadcast: (batch) => inner.broadcast(batch),
    probe,
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
}

/**
 * A tie each way between `a` and `b`: a probe on each node monitoring a fresh idle process of the
 * other (not yet carried across: the caller waits for that as its test needs).
 */
export function crossTies(a: Node, b: Node) {
  const onA = probe(a);
  const onB = probe(b);
  const targetOnB = b.spawn(() => () => undefined);
  const targetOnA = a.spawn(() => () => undefined);
  // eslint-disable-next-line keel/no-unmanaged-monitor -- raw monitors across nodes are the ties the cluster's tests exercise
  onA.ctx.monitor(targetOnB);
  // eslint-disable-next-line keel/no-unmanaged-monitor -- as above
  onB.ctx.monitor(targetOnA);
  return { onA, onB, targetOnA, targetOnB };
}
