import { afterEach, describe, expect, it, vi } from 'vitest';
import { isSignal } from '../../../src/agents/Signal.js';
import { GenServer, Sys } from '../../../src/index.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { expectNoLeaks } from '../../../src/testing/index.js';
import { clockedNode, HOUR, settlesWithin, stepWallClock, useNodes } from '../../support.js';
import { expectBalanced, internals, publishAll, routerEvents, signal, sink } from './routerKit.js';

const track = useNodes();

describe('SignalRouter deliveries (the router’s own supervised messages)', () => {
  it("a subscriber whose bounded mailbox refuses deliveries: each refused one is 'delivery_failed' (mailbox_full), the rest delivered, nothing wedges", async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node);
    const got: unknown[] = [];
    const pid = node.spawn(() => (m: unknown) => {
      if (isSignal(m)) got.push(m.data);
    }, { mailbox: { capacity: 1, overflow: 'reject' } });
    await router.subscribe('a', pid, { maxInFlight: 4 });
    const events = routerEvents(node);
    publishAll(router, 'a', 20);
    await node.idle();
    const stats = await router.stats();
    expectBalanced(stats);
    expect(stats.delivered + stats.failed).toBe(20);
    expect(stats.failed).toBeGreaterThan(0);
    expect(stats).toMatchObject({ buffered: 0, inFlight: 0, subscribers: 1 });
    expect(got).toHaveLength(stats.delivered);
    const failures = events.of('dropped');
    expect(failures).toHaveLength(stats.failed);
    expect(failures.every((e) => e.metadata.reason === 'delivery_failed' && e.metadata.failure === 'mailbox_full')).toBe(true);
    // what was delivered arrived in publish order
    expect(got).toEqual([...(got as number[])].sort((x, y) => x - y));
    expectNoLeaks(node);
  });

  it('caches the match per signal type, and forgets it when a subscription changes', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node);
    const a = sink(node);
    const b = sink(node);
    await router.subscribe('x.*', a.pid);
    publishAll(router, 'x.y', 2);
    publishAll(router, 'x.z', 1, 2);
    await node.idle();
    expect((await internals(node, router)).cachedTypes).toBe(2);
    await router.subscribe('x.**', b.pid); // a new subscription: the cached matches are stale
    expect((await internals(node, router)).cachedTypes).toBe(0);
    publishAll(router, 'x.y', 1, 3);
    await node.idle();
    expect(a.data).toEqual([0, 1, 2, 3]);
    expect(b.data).toEqual([3]);
    expect(await router.unsubscribe('x.*', a.pid)).toBe('ok');
    publishAll(router, 'x.y', 1, 4);
    await node.idle();
    expect(a.data).toEqual([0, 1, 2, 3]);
    expect(b.data).toEqual([3, 4]);
  });

  it('keeps no type longer than 1,024 characters in the match cache, so the cache stays small whatever the types; such signals are still delivered', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node);
    const s = sink(node);
    await router.subscribe('x.**', s.pid, { capacity: 2000 });
    const long = `x.${'y'.repeat(10_000)}`; // 1,100 distinct types of 10,000 characters: 11 MB a cache of 1,024 would keep
    for (let i = 0; i < 1100; i++) router.publish(signal(`${long}.${i}`, i));
    await s.until(1100);
    expect((await internals(node, router)).cachedTypes).toBe(0);
    expect(s.data).toEqual(Array.from({ length: 1100 }, (_, i) => i));
    publishAll(router, 'x.short', 2);
    publishAll(router, `x.${'z'.repeat(1022)}`, 1, 2); // 1,024 characters: cached
    await s.until(1103);
    expect((await internals(node, router)).cachedTypes).toBe(2);
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 1103, delivered: 1103 });
    expectBalanced(stats);
  });

  it('times out deliveries on one router-wide timer: each late one once, on the node’s clock, never before its deadline', async () => {
    const { node, clock } = clockedNode(track);
    const router = await SignalRouter.start(node, { deliveryTimeout: 100 });
    const slow = Array.from({ length: 3 }, () => sink(node, { held: true }));
    for (const s of slow) await router.subscribe('t', s.pid, { maxInFlight: 1 });
    const events = routerEvents(node);
    publishAll(router, 't', 2);
    await Promise.all(slow.map((s) => s.until(1)));
    await node.settle();
    await clock.advance(99);
    expect(events.of('dropped')).toEqual([]);
    await clock.advance(1);
    await events.until('dropped', 3);
    expect(events.of('dropped').map((e) => e.metadata.failure)).toEqual(['timeout', 'timeout', 'timeout']);
    // the second signal went out at the first's timeout (the subscriber is still stuck on the first): its own 100 ms from then
    await node.settle();
    await clock.advance(99);
    expect(events.of('dropped')).toHaveLength(3);
    await clock.advance(1);
    await events.until('dropped', 6);
    for (const s of slow) s.release();
    await node.idle();
    for (const s of slow) expect(s.data).toEqual([0]); // the second copy was withdrawn unstarted at its timeout
    const stats = await router.stats();
    expect(stats).toMatchObject({ delivered: 0, failed: 6, inFlight: 0, buffered: 0 });
    expectBalanced(stats);
  });

  it('a delivery held by a suspended subscriber (never given to its callbacks) is withdrawn at its timeout as an unstarted one is: never handled on resume', async () => {
    const { node, clock } = clockedNode(track);
    const router = await SignalRouter.start(node, { deliveryTimeout: 100 });
    const got: unknown[] = [];
    const pid = await GenServer.start(node, { init: () => undefined, handleInfo: (m: unknown) => void (isSignal(m) && got.push(m.data)) });
    await router.subscribe('t', pid, { maxInFlight: 1 });
    await Sys.suspend(node, pid);
    const events = routerEvents(node);
    publishAll(router, 't', 1);
    await node.settle();
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 1 });
    await clock.advance(100);
    await events.until('dropped', 1);
    expect(events.of('dropped').map((e) => e.metadata.failure)).toEqual(['timeout']);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 0 });
    await Sys.resume(node, pid);
    await node.idle();
    expect(got).toEqual([]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ delivered: 0, failed: 1, inFlight: 0, buffered: 0 });
    expectBalanced(stats);
  });
});

describe('SignalRouter delivery timeouts on the real clock (counted on the timers\' time)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a delivery still times out after deliveryTimeout when the wall clock was stepped back an hour', async () => {
    const node = track();
    const router = await SignalRouter.start(node, { deliveryTimeout: 30 });
    const slow = sink(node, { held: true });
    await router.subscribe('t', slow.pid, { maxInFlight: 1 });
    const events = routerEvents(node);
    publishAll(router, 't', 1);
    await slow.until(1);
    stepWallClock(-HOUR);
    // on the wall clock, the router's timer found the deadline an hour away and re-armed for it
    expect(await settlesWithin(events.until('dropped', 1), 4000)).toBe('settled');
    expect(events.of('dropped').map((e) => e.metadata.failure)).toEqual(['timeout']);
    slow.release();
  });
});
