/* eslint-disable keel/no-unmanaged-monitor -- the test waits for the router's death on a runtime monitor's Down (STYLE.md 10) */
// A restart storm: the router killed 5 times in a row while signals flood in. Every signal a
// publish accepted is handled by each subscriber or counted as dropped; one refused at the publish
// (no router registered) is the publisher's to see: sent = handled + dropped + refused.
import { describe, expect, it } from 'vitest';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { Pid } from '../../../src/index.js';
import { expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, receiveDown, useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink } from './routerKit.js';

const track = useNodes();

describe('SignalRouter restart storm', () => {
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
