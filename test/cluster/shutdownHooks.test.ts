// A node with every layer that registers a shutdown hook (a SQLite dead letter queue, a cluster over
// NATS, a global registry, supervised delivery across nodes, an observer, a SQLite agent store),
// shut down with supervised sends waiting, local and across nodes: the hooks run one at a time,
// the last registered first, each awaited (src/runtime/internal/Lifecycle.ts). No hook waits for
// one run after it, so the shutdown ends well within its timeout, every send has its documented
// outcome (sent = handled + dead-lettered + reported, none deadLetterUnavailable), and the dead
// letters are in the file when a node opens it again.
import { afterAll, describe, expect, it } from 'vitest';
import { agentStoreFor } from '../../src/agents/store/stores.js';
import { Cluster } from '../../src/cluster/Cluster.js';
import { GlobalRegistry } from '../../src/cluster/global/index.js';
import { SupervisedDelivery } from '../../src/cluster/supervised/index.js';
import { natsTransport } from '../../src/cluster/transports/nats.js';
import { sendSupervised, type SendOutcome } from '../../src/delivery/sendSupervised.js';
import { startObserver } from '../../src/observer/Observer.js';
import type { Node } from '../../src/runtime/types.js';
import { useNodes, useTempFiles } from '../support.js';
import { type NatsServer, skipWithoutNats, startNatsServer } from './natsServer.js';

const track = useNodes();
const dlqFile = useTempFiles('keel-shutdown-dlq-', 'dlq.db');
const agentsFile = useTempFiles('keel-shutdown-agents-', 'agents.db');

const servers: NatsServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
}, 30_000);

/** Resolves with the measurements of the node's `keel.node.shutdown` event. */
function shutdownEvent(node: Node): Promise<{ durationMs: number; killed: number }> {
  return new Promise((resolve) => {
    node.telemetry.attach('shutdown-event', ['keel.node.shutdown'], (_e, m) => resolve(m as { durationMs: number; killed: number }));
  });
}

describe.skipIf(skipWithoutNats)("a node's shutdown with every layer's hook and supervised sends waiting", () => {
  it('ends well within its timeout; every send has its outcome, none deadLetterUnavailable; the dead letters are in the file after a restart', async () => {
    const nats = await startNatsServer({ jetstream: true });
    servers.push(nats);
    const cluster = `hooks${process.pid}`;
    const dlq = dlqFile();
    const agents = agentsFile();
    const a = track({ name: 'a', services: { deadLetters: { store: { kind: 'sqlite', path: dlq } }, agents: { store: { kind: 'sqlite', path: agents } } } });
    const b = track({ name: 'b' });
    const ca = await Cluster.join(a, { transport: natsTransport({ servers: nats.url, cluster }) });
    const cb = await Cluster.join(b, { transport: natsTransport({ servers: nats.url, cluster }) });
    await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
    const ga = await GlobalRegistry.start(a, { cluster: ca, servers: nats.url, bucket: `G_${cluster}` });
    const sa = await SupervisedDelivery.start(a, { cluster, servers: nats.url, attach: ca });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats.url, attach: cb });
    const observer = await startObserver(a);
    const store = agentStoreFor(a, undefined)!;
    store.put('c', 'k', 'key', { v: 1 });
    const named = a.spawn(() => () => undefined);
    await ga.register('named', named);
    // b's process takes its messages and never finishes handling them
    let held!: () => void;
    const holding = new Promise<void>((resolve) => (held = resolve));
    const stuck = b.spawn(() => () => {
      held();
      return new Promise(() => undefined);
    });
    b.registry.register('stuck', stuck);
    const busy = a.spawn(() => () => new Promise(() => undefined));

    const dl = { onError: 'dead_letter', deadline: 60_000 } as const;
    const sends: Promise<SendOutcome>[] = [
      // across nodes, nobody consumes for node c: in the stream, taken out, dead-lettered
      sa.send(a, { node: 'c', name: 'w' }, 'c handled', { ...dl, ack: 'handled' }),
      sa.send(a, { node: 'c', name: 'w' }, 'c enqueued', { ...dl, ack: 'enqueued' }),
      // across nodes, held by b's handler: reported, or dead-lettered and handled (at least once)
      sa.send(a, { node: 'b', name: 'stuck' }, 'b handled', { ...dl, ack: 'handled' }),
      // local, between attempts (no such name yet): its hook ends it, dead-lettered
      sendSupervised(a, 'nobody', 'local retry', { ...dl, retries: 100, backoff: { initialMs: 60_000, maxMs: 60_000 } }),
      // local, in a handler that never ends: killed with its process, dead-lettered
      sendSupervised(a, busy, 'first', { ...dl, ack: 'handled', timeout: 60_000 }),
      sendSupervised(a, busy, 'local handled', { ...dl, ack: 'handled', timeout: 60_000 }),
    ];
    await holding; // b holds its message in a handler; the ones for c wait in the stream
    const event = shutdownEvent(a);
    const timeoutMs = 20_000;
    await a.shutdown({ timeoutMs });
    const { durationMs } = await event;
    const outcomes = await Promise.all(sends);
    // no hook waited for another: far from the bound (which would end the hooks left unawaited)
    expect(durationMs).toBeLessThan(timeoutMs / 2);
    expect(outcomes.every((o) => !o.ok && o.reason === 'noproc')).toBe(true);
    expect(outcomes.filter((o) => !o.ok && o.deadLetterUnavailable === true)).toEqual([]);
    const deadLettered = outcomes.filter((o) => !o.ok && o.deadLetterId !== undefined);
    const reported = outcomes.filter((o) => !o.ok && o.deadLetterId === undefined);
    expect(deadLettered.length + reported.length).toBe(sends.length);
    // all but the one b holds are dead-lettered
    expect(deadLettered.length).toBeGreaterThanOrEqual(sends.length - 1);
    await observer.close(); // closed already by the shutdown: the same promise
    await sb.close();

    // the same files, opened again
    const again = track({ name: 'a', services: { deadLetters: { store: { kind: 'sqlite', path: dlq } }, agents: { store: { kind: 'sqlite', path: agents } } } });
    const { entries } = await again.deadLetters.list({ limit: 100 });
    expect(entries.map((e) => e.id).sort()).toEqual(deadLettered.map((o) => (o as { deadLetterId: string }).deadLetterId).sort());
    expect(entries.map((e) => e.message).sort()).toEqual(
      ['c handled', 'c enqueued', 'b handled', 'local retry', 'first', 'local handled'].filter((_m, i) => outcomes[i]!.ok === false && (outcomes[i] as { deadLetterId?: string }).deadLetterId !== undefined).sort(),
    );
    expect(agentStoreFor(again, undefined)!.loadAll('c').records).toHaveLength(1);
  }, 90_000);
});
