/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  type Context,
  isDown,
  type MonitorEntry,
  type Node,
  type NodeOptions,
  Pid,
  type Ref,
  Supervisor,
  GenServer,
  withMonitor,
} from '../../src/index.js';
import { ManagedMonitors } from '../../src/monitors/MonitorManager.js';
import { memoryPair } from '../cluster/support.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, type CapturedEvent, expectNoLeaks, probe, type Probe, TestClock } from '../../src/testing/index.js';
import {
  clockedNode,
  deferred,
  drainThrough,
  forwardedDowns,
  HOUR,
  idler,
  listOf,
  otherCreation,
  receiveDown,
  refOf,
  seeded,
  spawnWithContext,
  statsOf,
  stepWallClock,
  expectServiceUnavailable,
  UNREADABLE,
  useNodes,
  expectKeelError,
  fakeLogger,
  thrown,
  failure,
} from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** The node's monitor manager as the services wire it (fails the test if it is not plugged in). */
function managed(node: Node): ManagedMonitors {
  expect(node.monitors).toBeInstanceOf(ManagedMonitors);
  return node.monitors as ManagedMonitors;
}

function leaksOf(node: Node, options?: { olderThanMs?: number }): MonitorEntry[] {
  const leaks = node.monitors.findLeaks(options);
  if (!Array.isArray(leaks)) throw new Error(`expected a list, got ${JSON.stringify(leaks)}`);
  return leaks;
}

/** Comparable text of refs or pids (sorted), for set-like assertions. */
function texts(values: readonly (Ref | Pid)[]): string[] {
  return values.map(String).sort();
}

function named(events: readonly CapturedEvent[], suffix: string): CapturedEvent[] {
  return events.filter((e) => e.event === `keel.monitor_manager.${suffix}`);
}

/** `file:line` of a stack frame line (`    at fn (file:line:col)` or `    at file:line:col`). */
function location(frame: string | undefined): string {
  const m = /\(?([^\s()]+):(\d+):\d+\)?\s*$/.exec(frame ?? '');
  if (m === null) throw new Error(`not a stack frame: ${String(frame)}`);
  return `${m[1]}:${m[2]}`;
}

/** A node on a TestClock with fast leak checks: every 100 ms, age 250 ms, more than 3 on one target. */
function leakNode(extra: NodeOptions = {}): { node: KeelNode; clock: TestClock } {
  return clockedNode(track, { services: { monitors: { leakCheckIntervalMs: 100, leakAgeMs: 250, duplicateThreshold: 3 } }, ...extra });
}

/** The pid of the manager's leak-check process, found under the services supervisor. */
async function checkerOf(node: Node): Promise<Pid> {
  const sup = node.registry.whereis('keel.services');
  if (sup === undefined) throw new Error('no keel.services supervisor is registered');
  const row = (await Supervisor.whichChildren(node, sup)).find((c) => c.id === 'monitor_manager');
  const pid = row?.pid;
  if (pid === undefined || pid === 'restarting') throw new Error(`the monitor_manager child is not running: ${String(pid)}`);
  return pid;
}

/**
 * An owner process that forwards every message to `p` as `{ forwarded }`, except 'hold': then it
 * tells `p` 'holding' and stays busy in its handler until `release()`.
 */
async function holdingOwner(node: Node, p: Probe): Promise<{ pid: Pid; ctx: Context; hold(): Promise<void>; release(): void }> {
  const gate = deferred();
  const { pid, ctx } = await spawnWithContext(node, (c) => async (m) => {
    if (m === 'hold') {
      c.send(p, 'holding');
      await gate.promise;
      return;
    }
    c.send(p, { forwarded: m });
  });
  return {
    pid,
    ctx,
    hold: async () => {
      node.send(pid, 'hold');
      await p.receive((m) => m === 'holding');
    },
    release: () => gate.resolve(),
  };
}

// ---- monitor ----------------------------------------------------------------------------------

describe('monitors.monitor', () => {
  it('creates a real runtime monitor owned by the caller: the caller receives the Down when the target dies', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'job' }));
    expect(node.info(p)?.monitors).toEqual([ref]);
    expect(texts(node.info(target)?.monitoredBy ?? [])).toEqual([String(p)]);
    await node.idle();
    // the manager's own process holds no monitor: the caller does
    expect(node.info(await checkerOf(node))?.monitors).toEqual([]);
    const reason = new Error('target failed');
    node.exit(target, reason);
    const down = await receiveDown(p, ref);
    expect(down.reason).toBe(reason);
    expect(Pid.equals(down.pid, target)).toBe(true);
  });

  it('records ref, target, owner, tag, createdAt and stack; list() adds ageMs and targetAlive', async () => {
    const clock = new TestClock({ start: 10_000 });
    const node = track({ clock });
    const p = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'cache' }));
    await clock.advance(40);
    const list = listOf(node);
    expect(list).toHaveLength(1);
    const e = list[0]!;
    expect(e.ref).toBe(ref);
    expect(Pid.equals(e.target, target)).toBe(true);
    expect(Pid.equals(e.owner, p)).toBe(true);
    expect(e.tag).toBe('cache');
    expect(e.createdAt).toBe(10_000);
    expect(e.ageMs).toBe(40);
    expect(e.targetAlive).toBe(true);
    expect(e.stack).toContain('MonitorManager.test.ts');
    expect(e.leak).toBeUndefined();
  });

  it('records the pid of a target given by its registered name, and an untagged monitor with tag undefined', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node, { name: 'named-target' });
    const ref = refOf(node.monitors.monitor(p.ctx, 'named-target'));
    const [e] = listOf(node);
    expect(e?.ref).toBe(ref);
    expect(Pid.equals(e!.target, target)).toBe(true);
    expect(e?.tag).toBeUndefined();
    node.exit(target, 'kill');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
  });

  it("gives a Ref and at once a Down with 'noproc' for a dead or unknown target, as ctx.monitor does, and records nothing", async () => {
    const node = track();
    const p = probe(node);
    const dead = idler(node);
    node.exit(dead, 'kill');
    const stranger = otherCreation(p);
    const events = captureEvents(node, ['keel.monitor_manager.']);
    const before = statsOf(node);
    const refs = [node.monitors.monitor(p.ctx, dead, { tag: 'dead' }), node.monitors.monitor(p.ctx, 'no-such-name'), node.monitors.monitor(p.ctx, stranger)];
    expect(new Set(refs.map(String)).size).toBe(3);
    // nothing to manage: the monitors ended as they began
    expect(statsOf(node)).toEqual(before);
    expect(listOf(node)).toEqual([]);
    expect(managed(node).ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
    expect(node.info(p)?.monitors).toEqual([]);
    await drainThrough(node, p);
    const downs = p.messages.filter(isDown);
    expect(downs.map((d) => [d.ref, d.reason, d.name])).toEqual([
      [refs[0], 'noproc', undefined],
      [refs[1], 'noproc', 'no-such-name'],
      [refs[2], 'noproc', undefined],
    ]);
    expect([String(downs[0]?.pid), String(downs[2]?.pid)]).toEqual([String(dead), String(stranger)]);
    // the same Downs a plain ctx.monitor gives (for a name: the node's placeholder pid)
    const raw = probe(node);
    const rawRefs = [raw.ctx.monitor(dead), raw.ctx.monitor('no-such-name'), raw.ctx.monitor(stranger)];
    await drainThrough(node, raw);
    expect(raw.messages.filter(isDown).map((d) => [String(d.pid), d.reason, d.name])).toEqual(downs.map((d) => [String(d.pid), d.reason, d.name]));
    expect(raw.messages.filter(isDown).map((d) => d.ref)).toEqual(rawRefs);
    expect(events.events).toEqual([]);
  });

  it("answers 'not_found' to a demonitor of a dead target's Ref, and removes its queued Down with flush", async () => {
    const node = track();
    const p = probe(node);
    const dead = idler(node);
    node.exit(dead, 'kill');
    const kept = node.monitors.monitor(p.ctx, dead);
    const flushed = node.monitors.monitor(p.ctx, dead);
    expect(node.monitors.demonitor(p.ctx, flushed, { flush: true })).toBe('not_found');
    expect(node.monitors.demonitor(p.ctx, kept)).toBe('not_found');
    await drainThrough(node, p);
    expect(p.messages.filter(isDown).map((d) => d.ref)).toEqual([kept]);
  });

  it('emits keel.monitor_manager.monitor_created for each monitor, with ref, owner, target and tag', () => {
    const node = track();
    const p = probe(node);
    const [a, b] = [idler(node), idler(node)];
    const events = captureEvents(node, ['keel.monitor_manager.monitor_created']);
    const r1 = refOf(node.monitors.monitor(p.ctx, a, { tag: 'one' }));
    const r2 = refOf(node.monitors.monitor(p.ctx, b, { tag: 'two' }));
    const r3 = refOf(node.monitors.monitor(p.ctx, a));
    expect(events.events).toHaveLength(3);
    expect(events.events.map((e) => e.metadata.ref)).toEqual([r1, r2, r3]);
    expect(events.events.map((e) => e.metadata.tag)).toEqual(['one', 'two', undefined]);
    expect(events.events.map((e) => String(e.metadata.owner))).toEqual([String(p), String(p), String(p)]);
    expect(events.events.map((e) => String(e.metadata.target))).toEqual([String(a), String(b), String(a)]);
  });
});

// ---- demonitor --------------------------------------------------------------------------------

describe('monitors.demonitor', () => {
  it("answers 'ok', removes the runtime monitor and the entry; a second demonitor is 'not_found'", async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.monitor_cleaned']);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'short' }));
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('ok');
    expect(node.info(p)?.monitors).toEqual([]);
    expect(node.info(target)?.monitoredBy).toEqual([]);
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(named(events.events, 'monitor_cleaned').map((e) => e.metadata)).toEqual([{ ref, tag: 'short', automatic: false }]);
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('not_found');
    // demonitored: the target's death sends the owner nothing
    node.exit(target, 'kill');
    await drainThrough(node, p);
    expect(p.messages.filter(isDown)).toEqual([]);
  });

  it('forgets the entry of a managed monitor its owner ends with ctx.demonitor: no stale entry, no leak report of a monitor that is gone', async () => {
    const { node, clock } = leakNode();
    const p = probe(node);
    const other = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.monitor_cleaned', 'keel.monitor_manager.leaks_detected']);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'raw-demonitor' }));
    expect(other.ctx.demonitor(ref)).toBe(false); // not its monitor: the entry stays
    expect(listOf(node).map((e) => e.ref)).toEqual([ref]);
    expect(p.ctx.demonitor(ref, { flush: true })).toBe(true);
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('not_found');
    await clock.advance(1000);
    expect(named(events.events, 'monitor_cleaned').map((e) => e.metadata)).toEqual([{ ref, tag: 'raw-demonitor', automatic: false }]);
    expect(named(events.events, 'leaks_detected')).toEqual([]);
  });

  it("answers 'not_owner' for another process's ref and leaves the monitor in place", async () => {
    const node = track();
    const p = probe(node);
    const other = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target));
    expect(node.monitors.demonitor(other.ctx, ref)).toBe('not_owner');
    expect(node.monitors.demonitor(other.ctx, ref, { flush: true })).toBe('not_owner');
    expect(listOf(node).map((e) => e.ref)).toEqual([ref]);
    expect(node.info(p)?.monitors).toEqual([ref]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
    node.exit(target, 'kill');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
  });

  it("answers 'not_found' for a plain runtime monitor's ref and leaves that monitor alone", async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const raw = p.ctx.monitor(target);
    expect(node.monitors.demonitor(p.ctx, raw)).toBe('not_found');
    expect(node.info(p)?.monitors).toEqual([raw]);
    node.exit(target, 'kill');
    expect((await receiveDown(p, raw)).reason).toBe('killed');
  });

  it("answers 'not_found' for another node's managed ref, and leaves both monitors in place", () => {
    const [node, other] = [track(), track()];
    const [p, q] = [probe(node), probe(other)];
    const mine = refOf(node.monitors.monitor(p.ctx, idler(node)));
    const theirs = refOf(other.monitors.monitor(q.ctx, idler(other)));
    expect(node.monitors.demonitor(p.ctx, theirs)).toBe('not_found');
    expect(other.monitors.demonitor(q.ctx, mine, { flush: true })).toBe('not_found');
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
    expect(statsOf(other)).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
  });

  it("answers 'not_found' for a plain runtime monitor's ref also with flush, and leaves that monitor alone", async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const raw = p.ctx.monitor(target);
    expect(node.monitors.demonitor(p.ctx, raw, { flush: true })).toBe('not_found');
    expect(node.info(p)?.monitors).toEqual([raw]);
    node.exit(target, 'kill');
    expect((await receiveDown(p, raw)).reason).toBe('killed');
  });

  it.each<[string, string, { flush: true } | undefined, number]>([
    ['without flush leaves', 'the control for the flush test', undefined, 1],
    ['with flush removes', 'the target died while the owner was busy', { flush: true }, 0],
  ])('%s a Down already queued in the owner mailbox (%s)', async (_does, _why, options, left) => {
    const node = track();
    const p = probe(node);
    const owner = await holdingOwner(node, p);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(owner.ctx, target));
    await owner.hold();
    node.exit(target, 'kill');
    expect(node.info(owner.pid)?.mailboxLength).toBe(1);
    const answer = node.monitors.demonitor(owner.ctx, ref, options);
    expect(['ok', 'not_found']).toContain(answer);
    expect(node.info(owner.pid)?.mailboxLength).toBe(left);
    owner.release();
    await drainThrough(node, p);
    expect(forwardedDowns(p, ref)).toHaveLength(left);
  });
});

// ---- stats, list, findLeaks -------------------------------------------------------------------

describe('monitors.stats and monitors.findLeaks', () => {
  it('stats() counts created, cleaned (demonitor, target death, owner death) and active', async () => {
    const node = track();
    const p = probe(node);
    const owner = probe(node);
    const [a, b, c] = [idler(node), idler(node), idler(node)];
    expect(statsOf(node)).toEqual({ created: 0, cleaned: 0, active: 0, leaked: 0 });
    const r1 = refOf(node.monitors.monitor(p.ctx, a));
    refOf(node.monitors.monitor(p.ctx, b));
    refOf(node.monitors.monitor(owner.ctx, c));
    refOf(node.monitors.monitor(owner.ctx, c));
    expect(statsOf(node)).toEqual({ created: 4, cleaned: 0, active: 4, leaked: 0 });
    expect(node.monitors.demonitor(p.ctx, r1)).toBe('ok');
    expect(statsOf(node)).toEqual({ created: 4, cleaned: 1, active: 3, leaked: 0 });
    node.exit(b, 'kill');
    expect(statsOf(node)).toEqual({ created: 4, cleaned: 2, active: 2, leaked: 0 });
    node.exit(owner, 'kill');
    expect(statsOf(node)).toEqual({ created: 4, cleaned: 4, active: 0, leaked: 0 });
    expect(listOf(node)).toEqual([]);
    await node.idle();
  });

  it('findLeaks({ olderThanMs }) lists the monitors older than that, except long-lived ones, without counting them as leaked', async () => {
    // leak age 250 ms as in leakNode(), but no periodic check runs during the test: only findLeaks looks
    const { node, clock } = leakNode({ services: { monitors: { leakCheckIntervalMs: 3_600_000, leakAgeMs: 250, duplicateThreshold: 3 } } });
    const p = probe(node);
    const target = idler(node);
    const old = refOf(node.monitors.monitor(p.ctx, target, { tag: 'old' }));
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'kept', expectedLifetime: 'long' }));
    await clock.advance(100);
    const young = refOf(node.monitors.monitor(p.ctx, target, { tag: 'young' }));
    await clock.advance(10);
    const found = leaksOf(node, { olderThanMs: 50 });
    expect(found.map((e) => e.ref)).toEqual([old]);
    expect(found[0]).toMatchObject({ tag: 'old', ageMs: 110, leak: 'age', targetAlive: true });
    expect(texts(leaksOf(node, { olderThanMs: 5 }).map((e) => e.ref))).toEqual(texts([old, young]));
    expect(leaksOf(node, { olderThanMs: 200 })).toEqual([]);
    // default: the configured leak age (250 ms)
    expect(leaksOf(node)).toEqual([]);
    await clock.advance(200);
    expect(leaksOf(node).map((e) => e.ref)).toEqual([old]);
    expect(statsOf(node).leaked).toBe(0);
    node.exit(p, 'shutdown');
  });

  it('findLeaks lists every monitor of an owner holding more than the duplicate threshold on one target', () => {
    const { node } = leakNode();
    const [owner, fine] = [probe(node), probe(node)];
    const [a, b] = [idler(node), idler(node)];
    const dups = [1, 2, 3, 4].map(() => refOf(node.monitors.monitor(owner.ctx, a, { tag: 'poll' })));
    refOf(node.monitors.monitor(owner.ctx, b));
    // exactly the threshold (3) is not too many
    for (let i = 0; i < 3; i++) refOf(node.monitors.monitor(fine.ctx, a));
    const found = leaksOf(node);
    expect(texts(found.map((e) => e.ref))).toEqual(texts(dups));
    expect(found.every((e) => e.leak === 'duplicate')).toBe(true);
    node.exit(owner, 'shutdown');
    node.exit(fine, 'shutdown');
  });
});

// ---- unavailable ------------------------------------------------------------------------------

describe('monitors when the service is off or the node has shut down', () => {
  it("throws ERR_SERVICE_UNAVAILABLE (reason 'disabled') from every method under services: false, and creates no monitor", () => {
    const node = track({ services: false });
    const p = probe(node);
    const target = idler(node);
    const raw = p.ctx.monitor(target);
    expect(node.monitors.available).toBe(false);
    expectServiceUnavailable(thrown(() => node.monitors.monitor(p.ctx, target, { tag: 'x' })), 'monitors.monitor', 'disabled');
    expectServiceUnavailable(thrown(() => node.monitors.demonitor(p.ctx, raw, { flush: true })), 'monitors.demonitor', 'disabled');
    expectServiceUnavailable(thrown(() => node.monitors.list()), 'monitors.list', 'disabled');
    expectServiceUnavailable(thrown(() => node.monitors.stats()), 'monitors.stats', 'disabled');
    expectServiceUnavailable(thrown(() => node.monitors.findLeaks({ olderThanMs: 0 })), 'monitors.findLeaks', 'disabled');
    // hostile arguments change nothing: a service that is not there is the answer
    expectServiceUnavailable(thrown(() => node.monitors.monitor({} as never, 42 as never, 'bogus' as never)), 'monitors.monitor', 'disabled');
    // nothing was created on the side, and the plain monitor is untouched
    expect(node.info(p)?.monitors).toEqual([raw]);
    expect(node.registry.whereis('keel.services')).toBeUndefined();
  });

  it("throws ERR_SERVICE_UNAVAILABLE (reason 'node_stopped') from every method after shutdown, also through a reference kept from before", async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target));
    const kept = node.monitors;
    expect(kept.available).toBe(true);
    await node.idle();
    await node.shutdown({ timeoutMs: 1000 });
    for (const monitors of [node.monitors, kept]) {
      expect(monitors.available).toBe(false);
      expectServiceUnavailable(thrown(() => monitors.monitor(p.ctx, target)), 'monitors.monitor', 'node_stopped');
      expectServiceUnavailable(thrown(() => monitors.demonitor(p.ctx, ref)), 'monitors.demonitor', 'node_stopped');
      expectServiceUnavailable(thrown(() => monitors.list()), 'monitors.list', 'node_stopped');
      expectServiceUnavailable(thrown(() => monitors.stats()), 'monitors.stats', 'node_stopped');
      expectServiceUnavailable(thrown(() => monitors.findLeaks({ olderThanMs: 0 })), 'monitors.findLeaks', 'node_stopped');
    }
    expect(node.monitors).not.toBe(kept);
  });
});

// ---- automatic cleanup ------------------------------------------------------------------------

describe('automatic cleanup', () => {
  it('removes the entry when the target dies: monitor_cleaned with automatic true and durationMs, and the owner still gets its Down', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.monitor_cleaned', 'keel.monitor_manager.caller_cleanup']);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'worker' }));
    await clock.advance(250);
    node.exit(target, { shutdown: 'done' });
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    const cleaned = named(events.events, 'monitor_cleaned');
    expect(cleaned).toHaveLength(1);
    expect(cleaned[0]!.measurements).toEqual({ durationMs: 250 });
    expect(cleaned[0]!.metadata).toEqual({ ref, tag: 'worker', automatic: true });
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'done' });
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('not_found');
  });

  it('removes every entry of an owner that dies: caller_cleanup with count, monitor_cleaned (automatic) for each, runtime monitors gone', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const owner = probe(node);
    const other = probe(node);
    const [a, b] = [idler(node), idler(node)];
    const refs = [
      refOf(node.monitors.monitor(owner.ctx, a, { tag: 'x' })),
      refOf(node.monitors.monitor(owner.ctx, a, { tag: 'y' })),
      refOf(node.monitors.monitor(owner.ctx, b, { tag: 'z' })),
    ];
    const kept = refOf(node.monitors.monitor(other.ctx, a, { tag: 'other' }));
    await clock.advance(75);
    const events = captureEvents(node, ['keel.monitor_manager.']);
    node.exit(owner, 'kill');
    const cleanup = named(events.events, 'caller_cleanup');
    expect(cleanup).toHaveLength(1);
    expect(cleanup[0]!.measurements).toEqual({ count: 3 });
    expect(String(cleanup[0]!.metadata.owner)).toBe(String(owner));
    const cleaned = named(events.events, 'monitor_cleaned');
    expect(texts(cleaned.map((e) => e.metadata.ref as Ref))).toEqual(texts(refs));
    expect(cleaned.every((e) => e.metadata.automatic === true && e.measurements.durationMs === 75)).toBe(true);
    expect(cleaned.map((e) => e.metadata.tag).sort()).toEqual(['x', 'y', 'z']);
    expect(listOf(node).map((e) => e.ref)).toEqual([kept]);
    expect(statsOf(node)).toEqual({ created: 4, cleaned: 3, active: 1, leaked: 0 });
    expect(texts(node.info(a)?.monitoredBy ?? [])).toEqual([String(other)]);
    expect(node.info(b)?.monitoredBy).toEqual([]);
    node.exit(other, 'kill');
    node.exit(a, 'kill');
    node.exit(b, 'kill');
    expect(managed(node).ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
  });

  it('leaves both indexes empty after 10,000 owners and targets die in random order', async () => {
    const node = track();
    const random = seeded(0x5eed);
    const n = 10_000;
    const ctxs: Context[] = [];
    for (let i = 0; i < n; i++) {
      node.spawn((ctx) => {
        ctxs.push(ctx);
        return () => undefined;
      });
    }
    await node.idle();
    expect(ctxs).toHaveLength(n);
    // every process owns 1 to 3 monitors on others (so every process may be owner and target);
    // one in ten repeats its last target (a duplicate); one in twenty is demonitored again
    let created = 0;
    let demonitored = 0;
    for (const ctx of ctxs) {
      const count = 1 + Math.floor(random() * 3);
      let last: Pid | undefined;
      for (let k = 0; k < count; k++) {
        let target = ctxs[Math.floor(random() * n)]!.self;
        if (Pid.equals(target, ctx.self)) target = ctxs[(ctxs.indexOf(ctx) + 1) % n]!.self;
        if (last !== undefined && random() < 0.1) target = last;
        const ref = refOf(node.monitors.monitor(ctx, target, { tag: `t${k}` }));
        created++;
        last = target;
        if (random() < 0.05) {
          expect(node.monitors.demonitor(ctx, ref, { flush: true })).toBe('ok');
          demonitored++;
        }
      }
    }
    expect(managed(node).ledger.indexSizes().entries).toBe(created - demonitored);
    expect(managed(node).ledger.indexSizes().buckets).toBe(n);
    const events = captureEvents(node, ['keel.monitor_manager.monitor_cleaned']);
    const order = ctxs.map((c) => c.self);
    for (let i = order.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const [i, pid] of order.entries()) node.exit(pid, i % 2 === 0 ? 'kill' : 'shutdown');
    await node.idle();
    expect(managed(node).ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
    expect(statsOf(node)).toEqual({ created, cleaned: created, active: 0, leaked: 0 });
    expect(events.events).toHaveLength(created - demonitored);
    expect(events.events.every((e) => e.metadata.automatic === true)).toBe(true);
    expect(listOf(node)).toEqual([]);
  });
});

// ---- leak detection ---------------------------------------------------------------------------

describe('leak detection', () => {
  it('reports a monitor older than the leak age with both ends alive once, with count and tags; leaked counts distinct monitors', async () => {
    const { node, clock } = leakNode();
    const p = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    const first = refOf(node.monitors.monitor(p.ctx, target, { tag: 'db' }));
    await node.idle(); // the leak-check process is up and its timer set
    await clock.advance(200); // checks at +100 and +200: 200 ms old is not older than 250
    expect(events.events).toEqual([]);
    await clock.advance(100); // check at +300
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toEqual({ count: 1 });
    expect(events.events[0]!.metadata.tags).toEqual(['db']);
    expect(statsOf(node).leaked).toBe(1);
    await clock.advance(1000); // ten more checks
    expect(events.events).toHaveLength(1);
    expect(statsOf(node).leaked).toBe(1);
    // a second monitor that grows old is reported once, on its own
    const second = refOf(node.monitors.monitor(p.ctx, target, { tag: 'queue' }));
    await clock.advance(1000);
    expect(events.events).toHaveLength(2);
    expect(events.events[1]!.measurements).toEqual({ count: 1 });
    expect(events.events[1]!.metadata.tags).toEqual(['queue']);
    expect(statsOf(node).leaked).toBe(2);
    expect(node.monitors.demonitor(p.ctx, first)).toBe('ok');
    expect(node.monitors.demonitor(p.ctx, second)).toBe('ok');
    expect(statsOf(node).leaked).toBe(2);
  });

  it("never reports a monitor created with expectedLifetime: 'long'", async () => {
    const { node, clock } = leakNode();
    const p = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'supervision', expectedLifetime: 'long' }));
    const short = refOf(node.monitors.monitor(p.ctx, target, { tag: 'request' }));
    await node.idle();
    await clock.advance(2500);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.metadata.tags).toEqual(['request']);
    expect(statsOf(node).leaked).toBe(1);
    expect(leaksOf(node).map((e) => e.ref)).toEqual([short]);
    expect(node.monitors.demonitor(p.ctx, short)).toBe('ok');
    await clock.advance(2500);
    expect(events.events).toHaveLength(1);
    expect(leaksOf(node)).toEqual([]);
  });

  it('does not report a monitor that is gone before it grows old', async () => {
    const { node, clock } = leakNode();
    const p = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'brief' }));
    await node.idle();
    await clock.advance(100);
    node.exit(target, 'kill');
    await clock.advance(1000);
    expect(events.events).toEqual([]);
    expect(statsOf(node).leaked).toBe(0);
  });

  it('reports an owner holding more than the duplicate threshold on one target, each of those monitors once', async () => {
    const { node, clock } = leakNode();
    const [owner, fine] = [probe(node), probe(node)];
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    for (let i = 0; i < 4; i++) refOf(node.monitors.monitor(owner.ctx, target, { tag: 'poll' }));
    for (let i = 0; i < 3; i++) refOf(node.monitors.monitor(fine.ctx, target, { tag: 'fine', expectedLifetime: 'long' }));
    await node.idle();
    await clock.advance(100); // the first check: 4 > 3, though none is old yet
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toEqual({ count: 4 });
    expect(events.events[0]!.metadata.tags).toEqual(['poll']);
    expect(events.events[0]!.metadata.duplicates).toBe(4);
    expect(statsOf(node).leaked).toBe(4);
    // they also grow old now: still reported once each
    await clock.advance(1000);
    expect(events.events).toHaveLength(1);
    expect(statsOf(node).leaked).toBe(4);
    node.exit(owner, 'shutdown');
  });

  it('points the stack at the line that called monitor', () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const [ref, here] = [refOf(node.monitors.monitor(p.ctx, target, { tag: 'traced' })), new Error('here').stack];
    const entry = listOf(node).find((e) => e.ref === ref);
    const first = entry?.stack?.split('\n')[0];
    expect(first).toContain('MonitorManager.test.ts');
    expect(location(first)).toBe(location(here?.split('\n')[1]));
    // no frame of the manager itself comes before the caller's
    expect(first).not.toContain('MonitorManager.ts');
  });

  it('captures stacks by default in tests, not with captureStacks: false, and the captureStacks setter switches it', () => {
    const on = track();
    const p1 = probe(on);
    const t1 = idler(on);
    refOf(on.monitors.monitor(p1.ctx, t1));
    expect(listOf(on)[0]?.stack).toContain('MonitorManager.test.ts');

    const node = track({ services: { monitors: { captureStacks: false } } });
    const p = probe(node);
    const target = idler(node);
    const plain = refOf(node.monitors.monitor(p.ctx, target));
    managed(node).captureStacks = true;
    const traced = refOf(node.monitors.monitor(p.ctx, target));
    managed(node).captureStacks = false;
    const plainAgain = refOf(node.monitors.monitor(p.ctx, target));
    const byRef = (ref: Ref) => listOf(node).find((e) => e.ref === ref);
    expect(byRef(plain)?.stack).toBeUndefined();
    expect(byRef(traced)?.stack).toContain('MonitorManager.test.ts');
    expect(byRef(plainAgain)?.stack).toBeUndefined();
  });
});

// ---- the manager's process --------------------------------------------------------------------

describe("the manager's process", () => {
  it('runs under the keel.services supervisor; killed, it is restarted and nothing is lost: the ledger, the stats, and the leak checks on the clock', async () => {
    const { node, clock } = leakNode();
    const p = probe(node);
    const [a, b] = [idler(node), idler(node)];
    const refs = [
      refOf(node.monitors.monitor(p.ctx, a, { tag: 'a' })),
      refOf(node.monitors.monitor(p.ctx, b, { tag: 'b' })),
      refOf(node.monitors.monitor(p.ctx, b, { tag: 'b2', expectedLifetime: 'long' })),
    ];
    expect(node.monitors.demonitor(p.ctx, refs[2]!)).toBe('ok');
    const kept = refOf(node.monitors.monitor(p.ctx, b, { tag: 'kept', expectedLifetime: 'long' }));
    await node.idle();
    const snapshot = () => listOf(node).map((e) => [String(e.ref), String(e.owner), String(e.target), e.tag, e.createdAt, e.stack]).sort();
    const listBefore = snapshot();
    const statsBefore = statsOf(node);
    expect(listBefore).toHaveLength(3);
    const before = await checkerOf(node);
    const watcher = probe(node);
    const down = watcher.ctx.monitor(before);
    node.exit(before, 'kill');
    expect((await receiveDown(watcher, down)).reason).toBe('killed');
    await node.idle();
    const after = await checkerOf(node);
    expect(Pid.equals(after, before)).toBe(false);
    expect(node.isAlive(after)).toBe(true);
    const sup = node.registry.whereis('keel.services')!;
    expect((await Supervisor.whichChildren(node, sup)).find((c) => c.id === 'monitor_manager')?.restarts).toBe(1);
    expect(snapshot()).toEqual(listBefore);
    expect(statsOf(node)).toEqual(statsBefore);
    // the restarted process checks on the clock as before
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    await clock.advance(300);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toEqual({ count: 2 });
    expect([...(events.events[0]!.metadata.tags as string[])].sort()).toEqual(['a', 'b']);
    expect(statsOf(node)).toEqual({ ...statsBefore, leaked: 2 });
    // and cleanup still works through the node-owned ledger
    node.exit(a, 'kill');
    expect(texts(listOf(node).map((e) => e.ref))).toEqual(texts([refs[1]!, kept]));
    node.exit(p, 'shutdown');
    expect(listOf(node)).toEqual([]);
  });

  it('emits keel.monitor_manager.terminated with the reason when it terminates, and its supervisor starts it again', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'survives' }));
    await node.idle();
    const before = await checkerOf(node);
    const events = captureEvents(node, ['keel.monitor_manager.terminated']);
    // an exit signal from the node would be a plain message to a process that traps exits and is
    // not the node's child (as in OTP): stop it as its supervisor would
    await GenServer.stop(node, before, 'shutdown');
    await node.idle();
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.metadata.reason).toBe('shutdown');
    const after = await checkerOf(node);
    expect(Pid.equals(after, before)).toBe(false);
    expect(listOf(node).map((e) => e.ref)).toEqual([ref]);
  });

  it('emits keel.monitor_manager.terminated also when it is killed (no terminate callback runs then), before its restart', async () => {
    const node = track();
    const p = probe(node);
    refOf(node.monitors.monitor(p.ctx, idler(node)));
    await node.idle();
    const before = await checkerOf(node);
    const events = captureEvents(node, ['keel.monitor_manager.terminated']);
    node.exit(before, 'kill');
    await node.idle();
    expect(Pid.equals(await checkerOf(node), before)).toBe(false);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.metadata.reason).toBe('killed');
  });

  it('logs no error when the node shuts down while its services are still starting (right after the first managed monitor)', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    refOf(node.monitors.monitor(p.ctx, idler(node))); // starts the services; their init has not run yet
    await node.shutdown({ timeoutMs: 1000 });
    expect(node.registry.whereis('keel.services')).toBeUndefined();
    expect(logger.errors).toEqual([]);
  });

  it('emits keel.monitor_manager.terminated when the node shuts down', async () => {
    const node = track();
    const p = probe(node);
    refOf(node.monitors.monitor(p.ctx, idler(node)));
    await node.idle();
    const checker = await checkerOf(node);
    const events = captureEvents(node, ['keel.monitor_manager.terminated']);
    await node.shutdown({ timeoutMs: 1000 });
    expect(node.isAlive(checker)).toBe(false);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.metadata.reason).toBe('shutdown');
  });
});

describe('the monitor manager given a context or a ref that cannot be inspected', () => {
  // the same defect as GenServer.call's (fuzz seed 1660631497, path 54): `ctx instanceof Proc` and
  // `ref instanceof RefImpl` threw a raw TypeError on a proxy
  it('throws ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const target = idler(node);
    const p = probe(node);
    for (const [, make] of UNREADABLE) {
      expectKeelError(thrown(() => node.monitors.monitor(make() as never, target)), 'ERR_INVALID_ARGUMENT', '`ctx`');
      expectKeelError(thrown(() => node.monitors.demonitor(make() as never, refOf(node.monitors.monitor(p.ctx, target)))), 'ERR_INVALID_ARGUMENT', '`ctx`');
      expectKeelError(thrown(() => node.monitors.demonitor(p.ctx, make() as never)), 'ERR_INVALID_ARGUMENT', '`ref`');
      expectKeelError(await failure(() => withMonitor(make() as never, target, () => 1)), 'ERR_INVALID_ARGUMENT', '`ctx`');
    }
    // only the two monitors made for the ctx checks, still there
    expect(listOf(node).map((e) => e.owner)).toEqual([p, p]);
  });
});

describe('monitors under a flood', () => {
  it('reports 200,000 duplicates of one owner on one target in one check, counted once each (the check stays linear: quadratic, it took ~16 s; linear, ~0.5 s)', async () => {
    const { node, clock } = clockedNode(track, { services: { monitors: { leakCheckIntervalMs: 100, leakAgeMs: 250, duplicateThreshold: 3, captureStacks: false } } });
    const owner = probe(node);
    const target = idler(node);
    const events = captureEvents(node, ['keel.monitor_manager.leaks_detected']);
    for (let i = 0; i < 200_000; i++) node.monitors.monitor(owner.ctx, target, { tag: 'flood' });
    await node.idle();
    await clock.advance(100);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.measurements).toEqual({ count: 200_000 });
    expect(events.events[0]!.metadata.duplicates).toBe(200_000);
    expect(statsOf(node)).toEqual({ created: 200_000, cleaned: 0, active: 200_000, leaked: 200_000 });
    node.exit(owner, 'shutdown');
    await node.idle();
    expect(statsOf(node)).toEqual({ created: 200_000, cleaned: 200_000, active: 0, leaked: 200_000 });
  }, 5_000);

  it('throws ERR_INVALID_ARGUMENT for options that cannot be read or hold a misspelt key, and records nothing', async () => {
    const node = track();
    const target = idler(node);
    const p = probe(node);
    const getter = { get tag(): string { throw new Error('boom'); } };
    for (const make of [...UNREADABLE.map(([, m]) => m), () => getter, () => ({ tga: 'x' })]) {
      expectKeelError(thrown(() => node.monitors.monitor(p.ctx, target, make() as never)), 'ERR_INVALID_ARGUMENT', '`options');
      expectKeelError(await failure(() => withMonitor(p.ctx, target, () => 1, make() as never)), 'ERR_INVALID_ARGUMENT', '`options');
    }
    const ref = refOf(node.monitors.monitor(p.ctx, target));
    for (const [, make] of UNREADABLE) {
      expectKeelError(thrown(() => node.monitors.demonitor(p.ctx, ref, make() as never)), 'ERR_INVALID_ARGUMENT', '`options');
      expectKeelError(thrown(() => node.monitors.findLeaks(make() as never)), 'ERR_INVALID_ARGUMENT', '`options');
    }
    expectKeelError(await failure(() => withMonitor(p.ctx, target, () => 1, null as never)), 'ERR_INVALID_ARGUMENT', '`options');
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
  });
});

describe('managed monitors of processes of another node', () => {
  const pair = () => memoryPair(track);

  it('records the monitor until the Down comes, then cleans it as a local target death does', async () => {
    const { a, b } = await pair();
    const watcher = probe(a);
    const target = b.spawn<string>(() => (m) => {
      if (m === 'crash') throw new Error('boom');
    });
    const cleaned = captureEvents(a, ['keel.monitor_manager.monitor_cleaned']);
    const ref = a.monitors.monitor(watcher.ctx, target, { tag: 'remote' });
    expect(a.monitors.stats()).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
    expect(a.monitors.list().map((e) => [e.ref, e.owner, e.target, e.tag, e.targetAlive])).toEqual([[ref, watcher, target, 'remote', true]]);
    expectNoLeaks(a); // a target of another node is alive as far as this node knows
    const placed = probe(b);
    watcher.ctx.send(placed, 'placed'); // frames of one pair travel in order: the monitor is in place on b
    await placed.receive();
    b.send(target, 'crash');
    const down = await receiveDown(watcher, ref);
    expect((down.reason as Error).message).toBe('boom');
    // the entry went before the Down was queued: its handler sees the ledger without it
    expect(a.monitors.stats()).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(managed(a).ledger.indexSizes()).toEqual({ entries: 0, buckets: 1 }); // the watcher's own bucket stays while it lives; the target's went
    expect(cleaned.events.map((e) => e.metadata.ref)).toEqual([ref]);
    expect(cleaned.events[0]!.metadata.automatic).toBe(true);
    cleaned.stop();
  });

  it('cleans every monitor of a node that goes away (noconnection), and keeps none of a node it does not know', async () => {
    const { a, b, cb } = await pair();
    const watcher = probe(a);
    const targets = [0, 1, 2].map(() => b.spawn(() => () => undefined));
    const refs = targets.map((t) => a.monitors.monitor(watcher.ctx, t));
    expect(a.monitors.stats().active).toBe(3);
    await b.idle();
    await cb.leave();
    for (const ref of refs) expect((await receiveDown(watcher, ref)).reason).toBe('noconnection');
    expect(a.monitors.stats()).toEqual({ created: 3, cleaned: 3, active: 0, leaked: 0 });
    // a pid of a node this one has no connection to: its Down comes at once, nothing is recorded
    const ref = a.monitors.monitor(watcher.ctx, targets[0]!);
    expect((await receiveDown(watcher, ref)).reason).toBe('noconnection');
    expect(a.monitors.stats()).toEqual({ created: 3, cleaned: 3, active: 0, leaked: 0 });
    expect(managed(a).ledger.indexSizes()).toEqual({ entries: 0, buckets: 1 }); // the watcher's own bucket stays while it lives
  });

  it('demonitors a managed remote monitor (no Down comes), and leaves a plain remote monitor alone on flush', async () => {
    const { a, b } = await pair();
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    const managedRef = a.monitors.monitor(watcher.ctx, target);
    const plainRef = watcher.ctx.monitor(target);
    expect(a.monitors.demonitor(watcher.ctx, plainRef, { flush: true })).toBe('not_found');
    expect(a.monitors.demonitor(watcher.ctx, managedRef)).toBe('ok');
    expect(a.monitors.stats()).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    const placed = probe(b);
    watcher.ctx.send(placed, 'placed'); // frames of one pair travel in order: the monitors are in place on b
    await placed.receive();
    b.exit(target, 'kill');
    // the plain monitor was left in place: its Down comes; the managed one's never does
    expect((await receiveDown(watcher, plainRef)).reason).toBe('killed');
    const marker = probe(b);
    watcher.ctx.send(marker, 'sync');
    await marker.receive();
    b.send(watcher, 'after');
    await watcher.receive((m) => m === 'after');
    expect(watcher.messages.filter(isDown).map((d) => d.ref)).toEqual([plainRef]);
  });

  it('forgets a managed remote monitor its owner ends with a plain ctx.demonitor', async () => {
    const { a, b } = await pair();
    const watcher = probe(a);
    const target = b.spawn(() => () => undefined);
    const ref = a.monitors.monitor(watcher.ctx, target);
    expect(a.monitors.stats()).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
    expect(watcher.ctx.demonitor(ref)).toBe(true);
    expect(a.monitors.list()).toEqual([]);
    expect(a.monitors.stats()).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(a.monitors.demonitor(watcher.ctx, ref)).toBe('not_found');
  });

  it('counts many monitors of one remote process by one owner as duplicates, and cleans them all when the owner dies', async () => {
    const { a, b } = await pair();
    const target = b.spawn(() => () => undefined);
    const owner = probe(a);
    for (let i = 0; i < 12; i++) a.monitors.monitor(owner.ctx, target, { tag: 'dup' });
    const found = a.monitors.findLeaks();
    expect(found.length).toBe(12);
    expect(new Set(found.map((e) => e.leak))).toEqual(new Set(['duplicate']));
    expect(found.every((e) => e.target === target)).toBe(true);
    const w = probe(a);
    const wref = w.ctx.monitor(owner);
    a.exit(owner, 'kill');
    await receiveDown(w, wref);
    expect(a.monitors.stats()).toMatchObject({ created: 12, cleaned: 12, active: 0 });
    expect(managed(a).ledger.indexSizes()).toEqual({ entries: 0, buckets: 0 });
  });
});

describe("monitors' ages on the real clock (measured on the timers' time: a wall clock stepped neither ages nor rejuvenates a monitor)", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a monitor made just before the wall clock was stepped forward an hour is no leak of an hour', () => {
    const node = track();
    const p = probe(node);
    refOf(node.monitors.monitor(p.ctx, idler(node)));
    stepWallClock(HOUR);
    // on the wall clock, it was an hour old: past a minute's leak age, in findLeaks and the periodic check
    expect(leaksOf(node, { olderThanMs: 60_000 })).toEqual([]);
    const [entry] = listOf(node);
    expect(entry!.ageMs).toBeLessThan(60_000);
    // createdAt is still a date on the node's clock: now (stepped) less its age
    expect(Math.abs(Date.now() - entry!.ageMs - entry!.createdAt)).toBeLessThan(1000);
  });

  it("a monitor's age and its monitor_cleaned duration are not an hour less than nothing when the wall clock was stepped back", async () => {
    const node = track();
    const p = probe(node);
    const events = captureEvents(node, ['keel.monitor_manager.monitor_cleaned']);
    const ref = refOf(node.monitors.monitor(p.ctx, idler(node)));
    stepWallClock(-HOUR);
    expect(listOf(node)[0]!.ageMs).toBeGreaterThanOrEqual(0);
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('ok');
    await node.idle();
    expect(events.events.map((e) => e.measurements.durationMs as number >= 0)).toEqual([true]);
  });
});
