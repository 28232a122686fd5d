/* eslint-disable keel/no-unmanaged-monitor -- the tests wait for the router's death on a runtime monitor's Down (STYLE.md 10) */
// The SignalRouter across restarts in its node: its subscriptions live in a node-owned table for
// its successor, a subscriber that subscribes again across the restart is neither half-kept nor
// doubled, and in a storm of kills every signal published is handled, counted as dropped or refused.
import { describe, expect, it } from 'vitest';
import { GenServer, isKeelError, type Node, Pid } from '../../../src/index.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { SignalRouterHandle, SignalRouterOptions } from '../../../src/agents/router/types.js';
import { expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, receiveDown, useNodes } from '../../support.js';
import { expectBalanced, publishAll, routerEvents, routerMonitors, signal, sink, type Sink } from './routerKit.js';

const track = useNodes();

/**
 * Kills the router's process, runs `meanwhile` before its supervisor can restart it (synchronously,
 * in the same turn), then waits for the death's Down.
 */
async function killRouter(node: Parameters<typeof probe>[0], router: SignalRouterHandle, meanwhile: () => void = () => {}): Promise<Pid> {
  const first = router.pid;
  const p = probe(node);
  const ref = p.ctx.monitor(first);
  node.exit(first, 'kill');
  expect(node.isAlive(first)).toBe(false);
  meanwhile();
  expect((await receiveDown(p, ref)).reason).toBe('killed');
  return first;
}

/**
 * A router named 'signals' (with `options`) and a held subscriber `s` of 'a' that takes one at a
 * time: 3 signals published, the first started (held at `s`), the other two waiting in the router.
 */
async function oneInFlight(node: Node, options: Omit<SignalRouterOptions, 'name'> = {}): Promise<{ router: SignalRouterHandle; s: Sink; events: ReturnType<typeof routerEvents> }> {
  const router = await SignalRouter.start(node, { name: 'signals', ...options });
  const s = sink(node, { held: true });
  await router.subscribe('a', s.pid, { maxInFlight: 1 });
  const events = routerEvents(node);
  publishAll(router, 'a', 3);
  await s.until(1);
  await router.stats();
  return { router, s, events };
}

describe('SignalRouter restart: the subscriptions live in a node-owned table', () => {
  it('keeps the subscriptions of live subscribers, drops those of subscribers that died meanwhile, counted and reported', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals' }); // a permanent child of keel.agents
    const live = sink(node, { held: true });
    const dying = sink(node, { held: true });
    await router.subscribe('a.*', live.pid, { maxInFlight: 1, capacity: 10, overflow: 'drop_oldest' });
    await router.subscribe('a.b', live.pid);
    await router.subscribe('a.**', dying.pid, { maxInFlight: 1 });
    await router.subscribe('z', dying.pid);
    const events = routerEvents(node);
    publishAll(router, 'a.b', 5);
    await live.until(1);
    await dying.until(1);
    await router.stats();
    const first = await killRouter(node, router, () => node.exit(dying.pid, 'kill')); // dies while no router watches it
    await events.until('resumed', 1);
    expect(Pid.equals(router.pid, first)).toBe(false);
    // the dying one's failed delivery is counted in a microtask, and the kernel may run the supervisor
    // (and so the restart) before or after it: either the restart finds it dead and drops it, or its
    // failed delivery already has; the totals below are the same
    const resumedWith = events.of('resumed').map((e) => [e.measurements, e.metadata]);
    const foundDead = { subscribers: 1, subscriptions: 2, lostSubscribers: 1, lostSubscriptions: 2, buffered: 4, inFlight: 2 };
    const alreadyDropped = { subscribers: 1, subscriptions: 2, lostSubscribers: 0, lostSubscriptions: 0, buffered: 4, inFlight: 1 };
    expect([[[foundDead, { router: 'signals', restarts: 1 }]], [[alreadyDropped, { router: 'signals', restarts: 1 }]]]).toContainEqual(resumedWith);
    expect(routerMonitors(node).map((m) => Pid.format(m.target))).toEqual([Pid.format(live.pid)]);
    live.release();
    await node.idle();
    expect(live.data).toEqual([0, 1, 2, 3, 4]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ subscribers: 1, subscriptions: 2, published: 5, matched: 10, delivered: 5, failed: 1, restarts: 1 });
    expect(stats.dropped.byReason).toMatchObject({ delivery_failed: 1, subscriber_down: 4, router_down: 0 });
    expectBalanced(stats);
    const reported = events.of('dropped').map((e) => [e.metadata.reason, e.measurements.count, Pid.format(e.metadata.subscriber as Pid)]);
    expect(reported.sort()).toEqual([
      ['delivery_failed', 1, Pid.format(dying.pid)],
      ['subscriber_down', 4, Pid.format(dying.pid)],
    ]);
    expectNoLeaks(node);
  });

  it('a subscriber that dies between the crash and the restart, with nothing in flight, is dropped at the restart', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals' });
    const live = sink(node);
    const gone = sink(node);
    await router.subscribe('a', live.pid);
    await router.subscribe('a', gone.pid);
    await router.subscribe('b.**', gone.pid);
    const events = routerEvents(node);
    await killRouter(node, router, () => node.exit(gone.pid, 'kill'));
    await events.until('resumed', 1);
    expect(events.of('resumed')[0]?.measurements).toEqual({ subscribers: 1, subscriptions: 1, lostSubscribers: 1, lostSubscriptions: 2, buffered: 0, inFlight: 0 });
    expect(await router.stats()).toMatchObject({ subscribers: 1, subscriptions: 1, restarts: 1 });
    router.publish(signal('a', 'x'));
    await node.idle();
    expect(live.data).toEqual(['x']);
    expect(gone.data).toEqual([]);
    expectNoLeaks(node);
  });

  it('a flood during the restart: every publish is delivered, dropped with a reason, reported lost with the dead router, or refused at once', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals' });
    const fast = sink(node);
    const slow = sink(node, { held: true });
    await router.subscribe('load.*', fast.pid, { capacity: 10_000 });
    await router.subscribe('load.**', slow.pid, { capacity: 50, overflow: 'drop_oldest', maxInFlight: 2 });
    const refusing = sink(node, { held: true });
    await router.subscribe('load.x', refusing.pid, { capacity: 20, overflow: 'reject', maxInFlight: 1 });
    const events = routerEvents(node);
    let first = router.pid;
    const lostWithRouter: number[] = [];
    node.telemetry.attach('test.lost', ['keel.message.dropped'], (_e, m, meta) => {
      if (meta.reason === 'receiver_exited' && Pid.equals(meta.to as Pid, first)) lostWithRouter.push(m.count!);
    });
    const outcomes: Record<'ok' | 'noproc' | 'mailbox_full', number> = { ok: 0, noproc: 0, mailbox_full: 0 };
    const publish = (from: number, n: number): void => {
      for (let i = from; i < from + n; i++) {
        const r = router.publish(signal('load.x', i));
        outcomes[r.ok ? 'ok' : r.reason]++;
      }
    };
    publish(0, 300);
    await router.stats(); // the router has taken these 300
    publish(300, 200); // still in the router's mailbox when it is killed
    first = await killRouter(node, router, () => publish(500, 100)); // no router: refused at once
    await events.until('resumed', 1);
    publish(600, 100);
    await router.stats(); // routed before the held subscribers are released (their buffers still full)
    slow.release();
    refusing.release();
    await node.idle();
    const stats = await router.stats();
    expect(outcomes).toEqual({ ok: 600, noproc: 100, mailbox_full: 0 });
    expect(lostWithRouter.reduce((a, b) => a + b, 0)).toBe(200);
    expect(stats.published).toBe(400); // 600 handed over = 400 routed + 200 lost with the dead router (reported)
    const expected = [...Array.from({ length: 300 }, (_, i) => i), ...Array.from({ length: 100 }, (_, i) => 600 + i)];
    expect(fast.data).toEqual(expected);
    // per subscriber: each routed signal was delivered, dropped with a reason, or dead-lettered; none lost at the restart
    expect(stats.matched).toBe(1200);
    const r = stats.dropped.byReason;
    expect(stats.delivered).toBe(400 + slow.data.length + refusing.data.length);
    expect(r.evicted).toBe(400 - slow.data.length);
    expect(r.rejected).toBe(400 - refusing.data.length);
    expect(refusing.data.length).toBe(1 + 20); // one in flight, its buffer full: the rest refused
    expect(stats.dropped.total).toBe(r.evicted + r.rejected);
    await events.until('dropped', r.evicted + r.rejected);
    expect(events.of('dropped').filter((e) => e.metadata.reason === 'evicted')).toHaveLength(r.evicted);
    const rejected = events.of('dropped').filter((e) => e.metadata.reason === 'rejected');
    expect(rejected).toHaveLength(r.rejected);
    const listed = await node.deadLetters.list({ reason: 'signal_rejected', limit: 1000 });
    if ('error' in listed) throw new Error('the dead letter queue is unavailable');
    expect(listed.entries).toHaveLength(r.rejected);
    expect(listed.entries.map((e) => e.id).sort()).toEqual(rejected.map((e) => e.metadata.deadLetterId).sort());
    expect(slow.data.slice(-50)).toEqual(expected.slice(-50)); // drop_oldest kept the newest
    expect(refusing.data).toEqual(expected.slice(0, 21)); // reject kept the oldest
    expectBalanced(stats);
    expect(stats).toMatchObject({ buffered: 0, inFlight: 0, restarts: 1 });
    expectNoLeaks(node);
  });

  it('a delivery in flight at the crash that times out before the restart is counted, once', async () => {
    const { node, clock } = clockedNode(track);
    const { router, s, events } = await oneInFlight(node, { deliveryTimeout: 100 });
    await killRouter(node, router);
    await events.until('resumed', 1);
    await node.settle();
    await clock.advance(100);
    await events.until('dropped', 1);
    expect(events.of('dropped')[0]?.metadata).toMatchObject({ reason: 'delivery_failed', failure: 'timeout', subscriber: s.pid });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 2]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 3, delivered: 2, failed: 1, buffered: 0, inFlight: 0 });
    expectBalanced(stats);
  });

  it('a normal stop ends the router for good: what it held is reported, the table released, no restart (a transient child)', async () => {
    const { node } = clockedNode(track);
    const { router, s, events } = await oneInFlight(node);
    expect(componentStates(node)).toContain('signals');
    const first = router.pid;
    await GenServer.stop(node, first);
    expect(events.of('dropped').map((e) => [e.metadata.reason, e.measurements.count])).toEqual([['router_down', 3]]);
    s.release();
    await node.idle();
    expect(s.data).toEqual([0]); // the copies not yet started were withdrawn
    // keel.agents does not restart a transient child that stopped normally, as in OTP
    expect(node.registry.whereis('signals')).toBe(undefined);
    expect(Pid.equals(router.pid, first)).toBe(true);
    expect(componentStates(node)).toEqual([]);
    expect(events.of('resumed')).toEqual([]);
    // started again under the name: a new table
    const again = await SignalRouter.start(node, { name: 'signals' });
    expect(await again.stats()).toMatchObject({ subscribers: 0, published: 0, restarts: 0 });
    expect(routerMonitors(node)).toEqual([]);
    expectNoLeaks(node);
  });

  it('restarts again and again under a flood of kills: subscriptions kept, accounts balanced', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals' });
    const s = sink(node);
    await router.subscribe('k.*', s.pid);
    const events = routerEvents(node);
    for (let round = 1; round <= 5; round++) {
      publishAll(router, 'k.x', 10, (round - 1) * 10);
      await router.stats();
      await killRouter(node, router);
      await events.until('resumed', round);
    }
    await node.idle();
    const stats = await router.stats();
    expect(stats).toMatchObject({ subscribers: 1, published: 50, delivered: 50, restarts: 5, dropped: { total: 0 } });
    expect(s.data).toEqual(Array.from({ length: 50 }, (_, i) => i));
    expect(routerMonitors(node)).toHaveLength(1);
    expectNoLeaks(node);
  });
});

describe('SignalRouter restart: a subscriber subscribing again across it', () => {
  it('a subscribe racing the kill fails typed; the one after the restart updates the kept subscription, never doubles it', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals' });
    const s = sink(node);
    expect(await router.subscribe('a.*', s.pid, { capacity: 5 })).toBe('ok');
    const events = routerEvents(node);
    const p = probe(node);
    const ref = p.ctx.monitor(router.pid);
    const racing = router.subscribe('a.*', s.pid, { capacity: 50 }).then(
      (r) => ({ r }),
      (e: unknown) => ({ e }),
    ); // queued in the mailbox of the router about to be killed
    node.exit(router.pid, 'kill');
    const during = await router.subscribe('a.b', s.pid).then((r) => ({ r }), (e: unknown) => ({ e })); // no router now
    await receiveDown(p, ref);
    const raced = await racing;
    expect('e' in raced && (isKeelError(raced.e, 'ERR_CALL_EXIT') || isKeelError(raced.e, 'ERR_NOPROC'))).toBe(true);
    expect('e' in during && isKeelError(during.e, 'ERR_NOPROC')).toBe(true);
    await events.until('resumed', 1);
    expect(await router.subscribe('a.*', s.pid, { capacity: 50 })).toBe('ok');
    expect(await router.subscribe('a.*', s.pid)).toBe('ok');
    const before = await router.stats();
    expect(before).toMatchObject({ subscribers: 1, subscriptions: 1 });
    expect(routerMonitors(node)).toHaveLength(1); // one monitor for the subscriber, the new router's
    publishAll(router, 'a.x', 20);
    await node.idle();
    expect(s.data).toEqual(Array.from({ length: 20 }, (_, i) => i)); // once each; capacity 50 kept
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 20, delivered: 20, dropped: { total: 0 } });
    expectBalanced(stats);
    expectNoLeaks(node);
  });
});

describe('SignalRouter restart: a storm of kills during a flood', () => {
  it('killed 5 times during a flood: every published signal is handled or counted, none lost silently', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'storm' });
    const a = sink(node);
    const b = sink(node);
    await router.subscribe('flood.*', a.pid, { capacity: 10_000 });
    await router.subscribe('flood.**', b.pid, { capacity: 10_000, maxInFlight: 2 });
    const events = routerEvents(node);
    const routers = new Set<string>();
    let lostWithRouter = 0; // accepted by a publish, in a killed router's mailbox: reported by the runtime
    node.telemetry.attach('test.lost', ['keel.message.dropped'], (_e, m, meta) => {
      if (meta.reason === 'receiver_exited' && routers.has(Pid.format(meta.to as Pid))) lostWithRouter += m.count!;
    });
    let accepted = 0;
    let refused = 0;
    let n = 0;
    const burst = (count: number): void => {
      for (let i = 0; i < count; i++) {
        const r = router.publish(signal('flood.x', n++));
        if (r.ok) accepted++;
        else refused++;
      }
    };
    for (let k = 0; k < 5; k++) {
      burst(50);
      routers.add(Pid.format(router.pid));
      const p = probe(node);
      const ref = p.ctx.monitor(router.pid);
      node.exit(router.pid, 'kill'); // with the burst still in its mailbox, and deliveries in flight
      burst(10); // while no router runs: refused at the publish
      await receiveDown(p, ref);
      await events.until('resumed', k + 1); // the successor runs
    }
    burst(50);
    await node.idle();
    const stats = await router.stats();
    expectBalanced(stats);
    const handled = a.got.length + b.got.length;
    expect(refused + accepted).toBe(n);
    expect(stats.restarts).toBe(5);
    // each accepted signal matches both subscribers
    expect(stats.published + lostWithRouter).toBe(accepted);
    expect(lostWithRouter).toBeGreaterThan(0); // the bursts were still queued at the kills
    expect(handled + stats.dropped.total + stats.buffered + stats.inFlight).toBe(2 * stats.published);
    expect(stats).toMatchObject({ buffered: 0, inFlight: 0 });
    expect(refused).toBe(50);
    expectNoLeaks(node);
  });
});
