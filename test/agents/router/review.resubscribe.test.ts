/* eslint-disable keel/no-unmanaged-monitor -- the test waits for the router's death on a runtime monitor's Down (STYLE.md 10) */
// A subscriber that subscribes again during the restart window: the call made while the router is
// dying fails with a typed error (nothing half-kept), the kept subscription is not doubled by the
// new subscribe after the restart, and each signal reaches the subscriber once.
import { describe, expect, it } from 'vitest';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { isKeelError } from '../../../src/index.js';
import { expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, receiveDown, useNodes } from '../../support.js';
import { expectBalanced, publishAll, routerEvents, routerMonitors, sink } from './routerKit.js';

const track = useNodes();

describe('SignalRouter: subscribing again across a restart', () => {
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
