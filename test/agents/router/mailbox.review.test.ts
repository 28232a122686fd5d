// The router's bounded mailbox under the messages other than the handle's publishes: a call, a
// system call (the observer's), a raw message, each may evict a queued publish under `drop_oldest`;
// every publish is still accounted for exactly (sent = taken + refused + evicted).
import { describe, expect, it } from 'vitest';
import { GenServer, Sys } from '../../../src/index.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { PublishResult, SignalRouterHandle } from '../../../src/agents/router/types.js';
import { sysObserve } from '../../../src/otp/Sys.js';
import { clockedNode, useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink } from './routerKit.js';

const track = useNodes();

function publishN(router: SignalRouterHandle, type: string, n: number, from = 0): PublishResult[] {
  const out: PublishResult[] = [];
  for (let i = from; i < from + n; i++) out.push(router.publish(signal(type, i)));
  return out;
}

describe('SignalRouter drop_oldest mailbox: a publish evicted by a message that is not a publish is counted', () => {
  it('a call (stats) that finds the mailbox full evicts the oldest publish: counted as evicted and reported with that signal', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 3, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const events = routerEvents(node);
    const sent = publishN(router, 'a', 3);
    const stats = await router.stats(); // queued behind the three publishes: evicts the first
    expect(sent.every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(s.data).toEqual([1, 2]);
    expect(stats).toMatchObject({ published: 2, mailboxFull: { refused: 0, evicted: 1 } });
    expect(events.of('dropped').map((e) => [e.metadata.reason, e.metadata.signalId, e.metadata.overflow])).toEqual([['mailbox_full', sent[0]!.id, 'drop_oldest']]);
    expect(stats.published + stats.mailboxFull.evicted).toBe(3);
  });

  it('system calls (the observer’s observe, Sys.getState) and raw messages that evict publishes: each counted', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const sent = publishN(router, 'a', 2);
    const observed = sysObserve(node, router.pid); // evicts publish 0
    const raw = publishN(router, 'a', 1, 2); // evicts publish 1
    const state = Sys.getState(node, router.pid); // evicts the observe call (not a publish)
    node.send(router.pid, 'hello'); // evicts publish 2
    GenServer.cast(node, router.pid, { type: 'publish', signal: signal('a', 99) }); // evicts getState
    await expect(observed).rejects.toMatchObject({ code: 'ERR_MAILBOX_FULL' });
    await expect(state).rejects.toMatchObject({ code: 'ERR_MAILBOX_FULL' });
    await node.idle();
    const stats = await router.stats();
    expect([...sent, ...raw].every((r) => r.ok)).toBe(true);
    // the router took the raw message (an unexpected one) and the cast of one's own: no handle publish
    expect(s.data).toEqual([99]);
    expect(stats.mailboxFull).toEqual({ refused: 0, evicted: 3 });
    expect(stats.published).toBe(1); // the cast of one's own, not a handle's publish
    expectBalanced(stats);
  });
});
