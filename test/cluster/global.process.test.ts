// The global registry with nodes as separate OS processes over NATS (a nats-server with JetStream
// for the file): a killed owner's names are reaped by the survivors after its lease, and a frozen
// owner (SIGSTOP) is fenced, so that a name's messages are never handled by two owners.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { type Child, useBuiltPackage, useChildren } from '../childProcesses.js';
import { useNatsServer, skipWithoutNats } from './natsServer.js';

const CHILD = fileURLToPath(new URL('./fixtures/global-node.mjs', import.meta.url));
const LEASE_MS = 2000;
const MARGIN_MS = 500;

const nats = useNatsServer({ jetstream: true });
const forkChild = useChildren();
const builtKeel = useBuiltPackage();

type Report =
  | { ready: string; incarnation: number }
  | { reply: number; ok: boolean; value?: unknown; code?: string | null; message?: string }
  | { event: string; node?: string; name?: string; reason?: string; id?: number; at?: number; lease?: number }
  | { handled: number; node: string; at: number };

interface NodeProc {
  readonly name: string;
  readonly child: Child<Report>;
  readonly log: Report[];
  call<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  /** The first report (already logged or to come) that `predicate` accepts. */
  seen(predicate: (r: Report) => boolean): Promise<Report>;
}

let runs = 0;
/** Checked on every report from any child. */
const anyReport = new Set<() => void>();

/** Resolves once `condition` holds, checked now and on every report from a child. */
function allReported(condition: () => boolean): Promise<void> {
  return new Promise((resolve) => {
    const check = (): void => {
      if (!condition()) return;
      anyReport.delete(check);
      resolve();
    };
    anyReport.add(check);
    check();
  });
}

async function startNodes(names: readonly string[]): Promise<NodeProc[]> {
  const run = ++runs;
  const cluster = `g${process.pid}_${run}`;
  const bucket = `global_proc_${process.pid}_${run}`;
  const procs = names.map((name): NodeProc => {
    const child = forkChild<Report>(CHILD, [builtKeel(), nats().url, name, cluster, bucket, String(LEASE_MS), String(MARGIN_MS)]);
    const log: Report[] = [];
    const waiters = new Set<{ predicate: (r: Report) => boolean; resolve: (r: Report) => void }>();
    child.onMessage((r) => {
      log.push(r);
      for (const check of [...anyReport]) check();
      for (const w of [...waiters]) {
        if (!w.predicate(r)) continue;
        waiters.delete(w);
        w.resolve(r);
      }
    });
    let seq = 0;
    const seen = (predicate: (r: Report) => boolean): Promise<Report> => {
      const found = log.find(predicate);
      if (found !== undefined) return Promise.resolve(found);
      return Promise.race([
        new Promise<Report>((resolve) => waiters.add({ predicate, resolve })),
        child.exited.then(({ code, signal }) => Promise.reject(new Error(`${name} exited (${code ?? signal}):\n${child.stderr()}`))),
      ]);
    };
    return {
      name,
      child,
      log,
      seen,
      async call<T>(cmd: string, args: Record<string, unknown> = {}): Promise<T> {
        const id = ++seq;
        const reply = seen((r) => 'reply' in r && r.reply === id);
        child.process.send({ cmd, seq: id, ...args });
        const r = (await reply) as { ok: boolean; value?: unknown; code?: string | null; message?: string };
        if (!r.ok) throw Object.assign(new Error(`${name} ${cmd}: ${r.message}`), { code: r.code });
        return r.value as T;
      },
    };
  });
  await Promise.all(procs.map((p) => p.seen((r) => 'ready' in r)));
  await Promise.all(procs.map((p) => p.call('waitFor', { nodes: names.filter((n) => n !== p.name) })));
  return procs;
}

const isEvent =
  (event: string, match: Record<string, unknown> = {}) =>
  (r: Report): boolean =>
    'event' in r && r.event === event && Object.entries(match).every(([k, v]) => (r as Record<string, unknown>)[k] === v);

describe.skipIf(skipWithoutNats)('global names across OS processes', () => {
  it('three nodes register one name at once: exactly one wins, and every cache agrees on the owner', async () => {
    const procs = await startNodes(['a', 'b', 'c']);
    const outcomes = await Promise.allSettled(procs.map((p) => p.call<{ id: number }>('register', { name: 'leader' })));
    const won = outcomes.flatMap((o, i) => (o.status === 'fulfilled' ? [{ node: procs[i]!.name, id: o.value.id }] : []));
    expect(won).toHaveLength(1);
    expect(outcomes.flatMap((o) => (o.status === 'rejected' ? [(o.reason as { code: string }).code] : []))).toEqual(['ERR_NAME_TAKEN', 'ERR_NAME_TAKEN']);
    for (const p of procs) await p.call('sync');
    for (const p of procs) expect(await p.call('whereis', { name: 'leader' })).toEqual(won[0]);
  }, 60_000);

  it('a SIGKILLed owner: its names hidden at once, reaped after its lease, its group members gone', async () => {
    const [a, b, c] = (await startNodes(['a', 'b', 'c'])) as [NodeProc, NodeProc, NodeProc];
    const owner = await a.call<{ id: number }>('register', { name: 'svc' });
    const memberId = await a.call<number>('join', { group: 'workers' });
    const bMember = await b.call<number>('join', { group: 'workers' });
    await a.call('sync');
    await b.call('sync');
    await c.call('sync');
    expect(await c.call('whereis', { name: 'svc' })).toEqual({ node: 'a', id: owner.id });
    expect((await c.call<string[]>('members', { group: 'workers' })).sort()).toEqual([`a.${memberId}`, `b.${bMember}`].sort());
    const killedAt = Date.now();
    await a.child.kill();
    await b.seen(isEvent('keel.cluster.node_down', { node: 'a' }));
    await c.seen(isEvent('keel.cluster.node_down', { node: 'a' }));
    expect(await c.call('whereis', { name: 'svc' })).toBeNull();
    expect(await c.call('members', { group: 'workers' })).toEqual([`b.${bMember}`]);
    // reaped by one survivor (or both tried: one CAS wins), never before the lease + margin passed
    const reaped = await Promise.race([b.seen(isEvent('keel.global.reaped', { name: 'svc' })), c.seen(isEvent('keel.global.reaped', { name: 'svc' }))]);
    const { at, lease } = reaped as { at: number; lease: number };
    expect(lease).toBeGreaterThan(killedAt - LEASE_MS); // the deadline a's last renewal wrote
    expect(at).toBeGreaterThan(lease + MARGIN_MS);
    const next = await c.call<{ id: number }>('register', { name: 'svc' });
    await b.call('sync');
    expect(await b.call('whereis', { name: 'svc' })).toEqual({ node: 'c', id: next.id });
  }, 60_000);

  it('a frozen owner (SIGSTOP) is fenced: another node takes the name, and no message is handled by both', async () => {
    const [a, b, c] = (await startNodes(['a', 'b', 'c'])) as [NodeProc, NodeProc, NodeProc];
    await a.call('register', { name: 'svc' });
    await c.call('sync');
    // burst 1: a owns the name and handles every message
    expect(await c.call('send', { name: 'svc', from: 0, to: 50 })).toBe(50);
    await a.seen((r) => 'handled' in r && r.handled === 49);
    a.child.process.kill('SIGSTOP');
    try {
      // burst 2: c still believes a owns it (or has seen a go down): queued for a, or undeliverable here
      await c.call('send', { name: 'svc', from: 50, to: 100 });
      await b.seen(isEvent('keel.cluster.node_down', { node: 'a' }));
      // a survivor reaps a's name once a's lease + margin has passed on its clock; then b takes it
      await Promise.race([b.seen(isEvent('keel.global.reaped', { name: 'svc' })), c.seen(isEvent('keel.global.reaped', { name: 'svc' }))]);
      await c.call('sync');
      await b.call('sync');
      const taken = await b.call<{ id: number; at: number }>('register', { name: 'svc' });
      await c.call('sync');
      expect((await c.call<{ node: string }>('whereis', { name: 'svc' })).node).toBe('b');
      // burst 3: to b
      await c.call('send', { name: 'svc', from: 100, to: 150 });
      await b.seen((r) => 'handled' in r && r.handled === 149);
      a.child.process.kill('SIGCONT');
      // a wakes up: fenced at once (its lease ran out while it was frozen); what was queued for it is refused
      await a.seen(isEvent('keel.global.fenced', { name: 'svc' }));
      const undeliverable = (): number[] =>
        [...a.log, ...c.log].flatMap((r) => ('event' in r && r.event === 'keel.global.undeliverable' && typeof r.id === 'number' ? [r.id] : []));
      const handled = (p: NodeProc): { id: number; at: number }[] => p.log.flatMap((r) => ('handled' in r ? [{ id: r.handled, at: r.at }] : []));
      // every id is accounted for: await a's report of the ones that reached it after it woke
      await allReported(() => handled(a).length + handled(b).length + undeliverable().length >= 150);
      const byA = handled(a);
      const byB = handled(b);
      const ids = [...byA.map((h) => h.id), ...byB.map((h) => h.id), ...undeliverable()].sort((x, y) => x - y);
      expect(ids).toEqual(Array.from({ length: 150 }, (_, i) => i)); // sent = handled + undeliverable, each once
      // what c sent while a was frozen was refused by a after it woke (it was fenced first), or by c (a was down for it)
      const aEvents = a.log.filter((r) => 'event' in r).map((r) => (r as { event: string }).event);
      const fencedAt = aEvents.indexOf('keel.global.fenced');
      expect(aEvents.findIndex((e) => e === 'keel.global.undeliverable')).not.toBeLessThan(fencedAt);
      const setA = new Set(byA.map((h) => h.id));
      expect(byB.filter((h) => setA.has(h.id))).toEqual([]); // disjoint
      expect(byA.length).toBeGreaterThanOrEqual(50);
      expect(byB.length).toBe(50);
      // at most one owner acting at any moment: a handled nothing after b took the name
      expect(Math.max(...byA.map((h) => h.at))).toBeLessThan(taken.at);
      expect(Math.max(...byA.map((h) => h.id))).toBeLessThan(Math.min(...byB.map((h) => h.id)));
    } finally {
      a.child.process.kill('SIGCONT');
    }
  }, 90_000);
});
