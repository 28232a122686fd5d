// The signal router under a flood of 100,000 publishes: every (signal, subscriber) pair it matched is
// delivered, dropped with an event and a reason, or failed, whatever the overflow policy, with a
// subscriber killed mid-flood and another leaving and coming back during it; nothing is silent,
// nothing wedges, and no buffer grows past its capacity.
import { describe, expect, it } from 'vitest';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { SignalDropReason } from '../../../src/agents/router/types.js';
import { expectNoLeaks } from '../../../src/testing/index.js';
import { clockedNode, useNodes } from '../../support.js';
import { expectBalanced, signal, sink } from './routerKit.js';

const track = useNodes();
const FLOOD = 100_000;

describe('SignalRouter under a flood', () => {
  it('100,000 publishes: every matched pair is delivered, dropped with its reason, or failed, and the events add up to the stats', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node);
    const newest = sink(node, { held: true });
    const oldest = sink(node, { held: true });
    const refusing = sink(node, { held: true });
    const dying = sink(node, { held: true });
    const churning = sink(node);
    const fast = sink(node);
    await router.subscribe('f.*', newest.pid, { capacity: 8, maxInFlight: 2, overflow: 'drop_newest' });
    await router.subscribe('f.*', oldest.pid, { capacity: 8, maxInFlight: 2, overflow: 'drop_oldest' });
    await router.subscribe('f.**', refusing.pid, { capacity: 8, maxInFlight: 2, overflow: 'reject' });
    await router.subscribe('f.x', dying.pid, { capacity: 8, maxInFlight: 2 });
    await router.subscribe('f.*', fast.pid, { capacity: 16 });
    // the drops as reported, summed per reason (the signals refused by 'reject' are reported once dead-lettered)
    const reported: Record<string, number> = {};
    let reportedTotal = 0;
    let routed = 0;
    let killed = false;
    node.telemetry.attach('test.flood.dropped', ['keel.signal_router.dropped'], (_e, m, meta) => {
      reported[meta.reason as string] = (reported[meta.reason as string] ?? 0) + m.count!;
      reportedTotal += m.count!;
    });
    node.telemetry.attach('test.flood.routed', ['keel.signal_router.routed'], () => {
      // mid-flood, inside the router's own handling of a publish: the dying subscriber is killed
      if (++routed === FLOOD / 2 && !killed) {
        killed = true;
        node.exit(dying.pid, 'kill');
      }
    });
    const churn: Promise<unknown>[] = [];
    for (let i = 0; i < FLOOD; i++) {
      expect(router.publish(signal('f.x', i)).ok).toBe(true);
      // every 10,000 publishes the churning subscriber comes or goes, its calls queued among the casts
      if (i % 10_000 === 0) churn.push((i / 10_000) % 2 === 0 ? router.subscribe('f.x', churning.pid, { capacity: 4 }) : router.unsubscribe('f.x', churning.pid));
    }
    expect(await Promise.all(churn)).toEqual(Array.from({ length: 10 }, () => 'ok'));
    const during = await router.stats(); // the router has taken every publish
    expect(killed).toBe(true);
    expect(during.published).toBe(FLOOD);
    expectBalanced(during);
    // nothing held past its bounds: the held subscribers' buffers and in flight, the others' in flight
    expect(during.buffered).toBeLessThanOrEqual(3 * 8 + 16 + 4);
    expect(during.inFlight).toBeLessThanOrEqual(3 * 2 + 8 + 8);
    for (const s of [newest, oldest, refusing]) s.release();
    await node.idle();
    const stats = await router.stats();
    expectBalanced(stats);
    const r = stats.dropped.byReason;
    expect(stats).toMatchObject({ published: FLOOD, subscribers: 4, buffered: 0, inFlight: 0, dropped: { byReason: { router_down: 0 } } });
    // each matched pair: delivered, dropped (delivery failures included), or waiting (none now)
    expect(stats.matched).toBe(stats.delivered + stats.dropped.total);
    // the four that stayed matched every publish; the dying one at least the first half; the churning one five stretches at most
    expect(stats.matched).toBeGreaterThanOrEqual(4 * FLOOD + FLOOD / 2);
    expect(stats.matched).toBeLessThanOrEqual(4 * FLOOD + FLOOD + FLOOD / 2);
    expect(dying.data).toEqual([0]); // held on its first when killed: it handled none
    expect(stats.delivered).toBe(newest.data.length + oldest.data.length + refusing.data.length + fast.data.length + churning.data.length);
    // the held ones: 2 in flight and a full buffer of 8 each, the rest refused, evicted or dead-lettered
    expect(newest.data).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(oldest.data).toEqual([0, 1, ...Array.from({ length: 8 }, (_, i) => FLOOD - 8 + i)]);
    expect(refusing.data).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(r.evicted).toBe(FLOOD - 10);
    expect(r.rejected).toBe(FLOOD - 10);
    expect(r.delivery_failed).toBe(2); // the dying one's two in flight when it was killed
    expect(r.subscriber_down).toBe(8); // its full buffer
    // every drop was reported with its reason, and the reports add up to the stats
    await new Promise<void>((resolve) => {
      if (reportedTotal === stats.dropped.total) resolve();
      else node.telemetry.attach('test.flood.all', ['keel.signal_router.dropped'], () => reportedTotal === stats.dropped.total && resolve());
    });
    const byReason = Object.fromEntries(Object.entries(r).filter(([, n]) => n > 0)) as Partial<Record<SignalDropReason, number>>;
    expect(reported).toEqual(byReason);
    // delivered in publish order, each subscriber
    for (const s of [fast, churning]) expect(s.data).toEqual([...(s.data as number[])].sort((a, b) => a - b));
    expectNoLeaks(node);
  }, 120_000);
});
