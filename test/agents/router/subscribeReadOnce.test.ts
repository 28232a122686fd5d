import { describe, expect, it } from 'vitest';
import { GenServer } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { internals, routerMonitors, signal, sink, startRouter } from './routerKit.js';

const track = useNodes();

// The router reads a subscribe call's fields once, and checks what it read: a getter that answers
// a valid value to the checks and another one later cannot leave a half-made subscriber, nor set
// an option the checks refuse.
describe('a subscribe whose fields answer differently at each read', () => {
  it('a pattern that turns bad after its check is subscribed as it was checked: one subscriber, one subscription, nothing half-made', async () => {
    const node = track();
    const router = await startRouter(node);
    const s = sink(node);
    let reads = 0;
    const request = Object.defineProperty({ type: 'subscribe', pid: s.pid, options: {} }, 'pattern', {
      enumerable: true,
      get: () => (++reads <= 2 ? 'a.b' : 'a..b'),
    });
    // read once (after the server's readability check): 'a.b', so it subscribes through 'a.b' and nothing else
    expect(await GenServer.call(node, router.pid, request as never)).toBe('ok');
    const stats = await router.stats();
    expect([stats.subscribers, stats.subscriptions]).toEqual([1, 1]);
    expect(routerMonitors(node)).toHaveLength(1);
    expect((await internals(node, router)).trieNodes).toBe(3);
    router.publish(signal('a.b', 1));
    await s.until(1);
    expect(s.data).toEqual([1]);
  });

  it('a capacity that answers 1 to the checks (the handle’s, the router’s) and Infinity later is kept as 1: the buffer stays bounded', async () => {
    const node = track();
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    let reads = 0;
    // the handle's check and the router's each read it twice (with its keys, then as a number)
    const options = { get capacity(): number { return ++reads <= 4 ? 1 : Infinity; }, maxInFlight: 1 };
    expect(await router.subscribe('a.*', s.pid, options)).toBe('ok');
    for (let i = 0; i < 5; i++) router.publish(signal('a.b', i));
    await s.until(1);
    const stats = await router.stats(); // after the publishes in the router's mailbox
    expect([stats.inFlight, stats.buffered, stats.dropped.byReason.buffer_full]).toEqual([1, 1, 3]);
    s.release();
  });
});
