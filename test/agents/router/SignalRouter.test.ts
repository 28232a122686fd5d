/* eslint-disable keel/no-unmanaged-monitor -- the tests wait for a process's death (the router's, a subscriber's, an agent's) on a runtime monitor's Down (STYLE.md 10) */
import { describe, expect, it } from 'vitest';
import { GenServer, isDown, isKeelError, Pid, Supervisor } from '../../../src/index.js';
import { PatternTrie } from '../../../src/agents/internal/PatternTrie.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { SignalOverflow, SignalRouterHandle, SubscribeOptions } from '../../../src/agents/router/types.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { clockedNode, deadPid, expectKeelError, failure, fakeLogger, receiveDown, thrown, UNREADABLE, useNodes } from '../../support.js';
import { expectBalanced, internals, publishAll, routerEvents, routerMonitors, signal, sink, startRouter } from './routerKit.js';

const track = useNodes();

// ---- the trie ---------------------------------------------------------------------------------

describe('PatternTrie (internal)', () => {
  const matches = (patterns: string[], type: string): string[] => {
    const trie = new PatternTrie<string>();
    for (const p of patterns) trie.add(p, p, p);
    const out: string[] = [];
    trie.match(type.split('.'), (v) => out.push(v));
    return out.sort();
  };

  it("matches exact segments, '*' as exactly one segment, and '**' as one or more trailing segments", () => {
    const all = ['order.created', 'order.*', '*.created', 'order.**', '**', '*', 'order', 'order.*.eu', 'order.created.**', 'user.*'];
    expect(matches(all, 'order.created')).toEqual(['**', '*.created', 'order.*', 'order.**', 'order.created'].sort());
    expect(matches(all, 'order')).toEqual(['*', '**', 'order']);
    expect(matches(all, 'order.created.eu')).toEqual(['**', 'order.*.eu', 'order.**', 'order.created.**'].sort());
    expect(matches(all, 'order.created.eu.paris')).toEqual(['**', 'order.**', 'order.created.**'].sort());
    expect(matches(all, 'user.created')).toEqual(['**', '*.created', 'user.*'].sort());
    expect(matches(all, 'invoice.paid.late')).toEqual(['**']);
    expect(matches(['order.created'], 'order.created.eu')).toEqual([]);
    expect(matches(['order.created'], 'order')).toEqual([]);
    expect(matches(['order.*'], 'order')).toEqual([]);
    expect(matches(['order.**'], 'order')).toEqual([]);
    expect(matches(['*.*'], 'a.b.c')).toEqual([]);
  });

  it('prunes the nodes a removal leaves empty, back to the root alone', () => {
    const trie = new PatternTrie<number>();
    trie.add('a.b.c', 'k1', 1);
    trie.add('a.*.d', 'k1', 1);
    trie.add('a.**', 'k2', 2);
    expect(trie.nodeCount).toBe(1 + 1 + 2 + 2); // root, a, (b, c), (*, d)
    expect(trie.size).toBe(3);
    expect(trie.remove('a.b.c', 'k1')).toBe(true);
    expect(trie.nodeCount).toBe(4);
    expect(trie.remove('a.b.c', 'k1')).toBe(false);
    expect(trie.remove('a.*.d', 'k2')).toBe(false);
    expect(trie.remove('x.y', 'k1')).toBe(false);
    expect(trie.remove('a.*.d', 'k1')).toBe(true);
    expect(trie.nodeCount).toBe(2); // a still holds the '**' subscription
    expect(trie.remove('a.**', 'k2')).toBe(true);
    expect(trie.nodeCount).toBe(1);
    expect(trie.size).toBe(0);
  });

  it('holds one value per (pattern, key): adding again replaces it', () => {
    const trie = new PatternTrie<number>();
    expect(trie.add('a', 'k', 1)).toBe(true);
    expect(trie.add('a', 'k', 2)).toBe(false);
    expect(trie.get('a', 'k')).toBe(2);
    expect(trie.size).toBe(1);
  });

  it('visits only the subscriptions on the type’s path among many', () => {
    const trie = new PatternTrie<number>();
    for (let i = 0; i < 10_000; i++) trie.add(`topic${i}.event`, `k${i}`, i);
    let visits = 0;
    trie.match(['topic7', 'event'], () => visits++);
    expect(visits).toBe(1);
  });
});

// ---- subscribe / unsubscribe ------------------------------------------------------------------

describe('SignalRouter.subscribe', () => {
  it('delivers a signal to the subscribers whose pattern matches its type, and to no other', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const exact = sink(node);
    const star = sink(node);
    const rest = sink(node);
    const other = sink(node);
    expect(await router.subscribe('order.created', exact.pid)).toBe('ok');
    expect(await router.subscribe('order.*', star.pid)).toBe('ok');
    expect(await router.subscribe('order.**', rest.pid)).toBe('ok');
    expect(await router.subscribe('user.*', other.pid)).toBe('ok');
    router.publish(signal('order.created', 1));
    router.publish(signal('order.created.eu', 2));
    router.publish(signal('order', 3));
    router.publish(signal('order.paid', 4));
    await node.idle();
    expect(exact.data).toEqual([1]);
    expect(star.data).toEqual([1, 4]);
    expect(rest.data).toEqual([1, 2, 4]);
    expect(other.data).toEqual([]);
    const s = await router.stats();
    expect(s).toMatchObject({ subscribers: 4, subscriptions: 4, published: 4, matched: 6, routed: 6, delivered: 6, buffered: 0, inFlight: 0 });
    expectBalanced(s);
  });

  it('delivers once to a subscriber matched through several patterns', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    for (const p of ['order.created', 'order.*', 'order.**', '**', '*.created']) expect(await router.subscribe(p, s.pid)).toBe('ok');
    const events = routerEvents(node);
    router.publish(signal('order.created', 'once'));
    await node.idle();
    expect(s.data).toEqual(['once']);
    expect(events.of('routed')[0]?.measurements).toEqual({ matched: 1, accepted: 1, dropped: 0 });
    expect(await router.stats()).toMatchObject({ subscribers: 1, subscriptions: 5, matched: 1, delivered: 1 });
  });

  it("answers { error: 'noproc' } for a subscriber that is not alive, and keeps nothing of it", async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    expect(await router.subscribe('a', deadPid(node))).toEqual({ error: 'noproc' });
    expect(await router.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
    expect((await internals(node, router)).trieNodes).toBe(1);
    expect(routerMonitors(node)).toEqual([]);
  });

  it('monitors each subscriber once through the monitor manager, however many patterns it has', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a', s.pid);
    await router.subscribe('b.*', s.pid);
    await router.subscribe('a', s.pid);
    const monitors = routerMonitors(node);
    expect(monitors).toHaveLength(1);
    expect(Pid.equals(monitors[0]!.target, s.pid)).toBe(true);
    expect(Pid.equals(monitors[0]!.owner, router.pid)).toBe(true);
  });

  it('takes the options of the latest subscribe for the subscriber (the fields given)', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('a', s.pid, { capacity: 1, maxInFlight: 1 });
    await router.subscribe('b', s.pid, { capacity: 3 }); // maxInFlight stays 1
    publishAll(router, 'a', 6);
    await s.until(1);
    expect(await router.stats()).toMatchObject({ inFlight: 1, buffered: 3, dropped: { byReason: { buffer_full: 2 } } });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 2, 3]);
  });

  it('refuses bad arguments with ERR_INVALID_ARGUMENT before calling the router', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    for (const pattern of ['', 'a..b', '.a', 'a.', 'a.**.b', '**.a', 'a*', 'a.b*c', 42, undefined]) {
      expectKeelError(await failure(() => router.subscribe(pattern as never, s.pid)), 'ERR_INVALID_ARGUMENT', '`pattern`');
      expectKeelError(await failure(() => router.unsubscribe(pattern as never, s.pid)), 'ERR_INVALID_ARGUMENT', '`pattern`');
    }
    for (const pid of ['name', {}, 42, null, undefined]) {
      expectKeelError(await failure(() => router.subscribe('a', pid as never)), 'ERR_INVALID_ARGUMENT', '`subscriber`', 'a Pid');
    }
    const bad: [SubscribeOptions | unknown, string][] = [
      [{ capacity: 0 }, 'options.capacity'],
      [{ capacity: -1 }, 'options.capacity'],
      [{ capacity: NaN }, 'options.capacity'],
      [{ capacity: 1.5 }, 'options.capacity'],
      [{ capacity: Infinity }, 'options.capacity'],
      [{ capacity: '10' }, 'options.capacity'],
      [{ maxInFlight: 0 }, 'options.maxInFlight'],
      [{ overflow: 'drop' }, 'options.overflow'],
      [{ overflow: 'DROP_OLDEST' }, 'options.overflow'],
      [null, 'options'],
      ['fast', 'options'],
    ];
    for (const [options, argument] of bad) {
      expectKeelError(await failure(() => router.subscribe('a', s.pid, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    }
    expectKeelError(await failure(() => router.subscribe('a', router.pid)), 'ERR_INVALID_ARGUMENT', '`subscriber`', 'other than the router itself');
    expect(await router.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
  });

  it('answers a malformed call with a typed error and keeps running with its subscriptions', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const pid = router.pid;
    const reply = await GenServer.call(node, router.name, { type: 'subscribe', pattern: 'a..b', pid: s.pid, options: {} } as never);
    expect(isKeelError(reply, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect(isKeelError(await GenServer.call(node, router.name, { type: 'nope' } as never), 'ERR_INVALID_ARGUMENT')).toBe(true);
    GenServer.cast(node, router.name, { type: 'publish', signal: { type: 'a' } } as never); // not a signal: ignored
    await node.idle();
    expect(Pid.equals(router.pid, pid)).toBe(true);
    expect(await router.stats()).toMatchObject({ subscriptions: 1, published: 0 });
  });
});

describe('SignalRouter.unsubscribe', () => {
  it('removes one subscription, prunes the trie, and releases the monitor with the last one', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    const before = (await internals(node, router)).trieNodes;
    expect(before).toBe(1);
    await router.subscribe('order.*.eu', s.pid);
    await router.subscribe('order.created', s.pid);
    expect((await internals(node, router)).trieNodes).toBe(1 + 4); // order, *, eu, created
    expect(await router.unsubscribe('order.*.eu', s.pid)).toBe('ok');
    expect((await internals(node, router)).trieNodes).toBe(1 + 2);
    expect(routerMonitors(node)).toHaveLength(1);
    router.publish(signal('order.x.eu', 'gone'));
    router.publish(signal('order.created', 'kept'));
    await node.idle();
    expect(s.data).toEqual(['kept']);
    expect(await router.unsubscribe('order.created', s.pid)).toBe('ok');
    expect((await internals(node, router)).trieNodes).toBe(1);
    expect(routerMonitors(node)).toEqual([]);
    expect(node.info(router.pid)?.monitors).toEqual([]);
    expect(await router.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
  });

  it("answers 'not_found' for a subscription that does not exist", async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a', s.pid);
    expect(await router.unsubscribe('b', s.pid)).toBe('not_found');
    expect(await router.unsubscribe('a', sink(node).pid)).toBe('not_found');
    expect(await router.unsubscribe('a', s.pid)).toBe('ok');
    expect(await router.unsubscribe('a', s.pid)).toBe('not_found');
  });

  it("drops what was still buffered for a subscriber that leaves, as 'unsubscribed'", async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('a', s.pid, { maxInFlight: 1 });
    const events = routerEvents(node);
    publishAll(router, 'a', 5);
    await s.until(1);
    expect(await router.unsubscribe('a', s.pid)).toBe('ok');
    expect(events.of('dropped')).toEqual([
      { event: 'keel.signal_router.dropped', measurements: { count: 4 }, metadata: { router: router.name, reason: 'unsubscribed', subscriber: s.pid } },
    ]);
    s.release();
    await node.idle();
    expect(s.data).toEqual([0]); // the one in flight was handled
    const stats = await router.stats();
    expect(stats).toMatchObject({ routed: 5, delivered: 1, buffered: 0, inFlight: 0, dropped: { total: 4, byReason: { unsubscribed: 4 } } });
    expectBalanced(stats);
  });

  it('a subscriber that never answers and leaves and comes back 50 times holds at most maxInFlight deliveries, not 50 times as many', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node, { deliveryTimeout: Infinity }); // nothing times out: only the bound holds them
    const s = sink(node, { held: true });
    for (let k = 0; k < 50; k++) {
      expect(await router.subscribe('a', s.pid, { maxInFlight: 2, capacity: 1 })).toBe('ok');
      publishAll(router, 'a', 3, k * 3);
      expect(await router.unsubscribe('a', s.pid)).toBe('ok'); // its buffered one dropped, its deliveries in flight kept
    }
    expect(await router.subscribe('a', s.pid)).toBe('ok');
    const stats = await router.stats();
    // the first pass: 2 in flight and 1 buffered; every later pass finds the 2 still in flight: 1 buffered, 2 refused
    expect(stats).toMatchObject({ published: 150, matched: 150, routed: 3 + 49, delivered: 0, buffered: 0, inFlight: 2 });
    expect(stats.dropped.byReason).toMatchObject({ unsubscribed: 50, buffer_full: 49 * 2 });
    expectBalanced(stats);
    expect(node.info(s.pid)?.mailboxLength).toBe(1); // one delivery handled (held), one waiting
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1]);
    expect(await router.stats()).toMatchObject({ delivered: 2, inFlight: 0 });
    expect(routerMonitors(node)).toHaveLength(1);
  });
});

// ---- publish ----------------------------------------------------------------------------------

describe('SignalRouter.publish', () => {
  it('returns at once, before any delivery', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a', s.pid);
    await node.idle();
    const sig = signal('a', 1);
    expect(router.publish(sig)).toEqual({ ok: true, id: sig.id });
    expect(node.info(s.pid)?.messagesHandled).toBe(0);
    expect(s.got).toEqual([]);
    await node.idle();
    expect(s.got).toEqual([sig]);
    expect(s.got[0]).toBe(sig); // the same frozen signal, not a copy
  });

  it('validates the signal synchronously: ERR_INVALID_SIGNAL, nothing is published', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const e = thrown(() => router.publish({ specversion: '1.0', id: 'x', source: '/s', type: 'a..b', time: '2024-05-01T00:00:00Z' } as never));
    expectKeelError(e, 'ERR_INVALID_SIGNAL', '`type`');
    expectKeelError(thrown(() => router.publish({ type: 'a' } as never)), 'ERR_INVALID_SIGNAL', '`specversion`');
    await node.idle();
    expect((await router.stats()).published).toBe(0);
  });

  it('accepts a valid CloudEvents object made elsewhere', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a.b', s.pid);
    const event = { specversion: '1.0' as const, id: 'ext-1', source: 'urn:x', type: 'a.b', time: '2024-05-01T00:00:00Z', traceparent: 't' };
    expect(router.publish(event)).toEqual({ ok: true, id: 'ext-1' });
    await node.idle();
    expect(s.got).toEqual([event]);
  });

  it('delivers a CloudEvents JSON event without its null attributes (unset, json-format §2.2), a frozen one too', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a.b', s.pid);
    const json = '{"specversion":"1.0","id":"j-1","source":"/x","type":"a.b","time":"2024-05-01T00:00:00Z","subject":null,"unsetextension":null,"data":null}';
    expect(router.publish(JSON.parse(json))).toEqual({ ok: true, id: 'j-1' });
    expect(router.publish(Object.freeze(JSON.parse(json)))).toEqual({ ok: true, id: 'j-1' });
    await node.idle();
    expect(s.got.map((g) => Object.keys(g))).toEqual([
      ['specversion', 'id', 'source', 'type', 'time', 'data'],
      ['specversion', 'id', 'source', 'type', 'time', 'data'],
    ]);
    expect(s.got.map((g) => [g.data, Object.isFrozen(g)])).toEqual([[null, true], [null, true]]);
  });

  it('delivers a CloudEvents JSON event with binary data (data_base64) as it was published', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a.b', s.pid);
    const event = { specversion: '1.0' as const, id: 'b-1', source: '/x', type: 'a.b', time: '2024-05-01T00:00:00Z', datacontenttype: 'application/octet-stream', data_base64: 'AAECAw==' };
    expect(router.publish({ ...event })).toEqual({ ok: true, id: 'b-1' });
    await node.idle();
    expect(s.got).toEqual([event]);
  });

  it("answers { ok: false, reason: 'noproc' } when the router is not running", async () => {
    const { node } = clockedNode(track);
    const owner = probe(node);
    // started from a plain process (linked to it, no supervisor to restart it), then stopped
    const router = await SignalRouter.start(owner.ctx);
    expect(node.info(router.pid)?.links.some((l) => Pid.equals(l, owner))).toBe(true);
    await GenServer.stop(node, router.name);
    const sig = signal('a');
    expect(router.publish(sig)).toEqual({ ok: false, id: sig.id, reason: 'noproc' });
  });

  it('keeps the order of signals per subscriber, with several deliveries in flight', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const a = sink(node);
    const b = sink(node);
    await router.subscribe('tick', a.pid, { maxInFlight: 8 });
    await router.subscribe('tick', b.pid, { maxInFlight: 1 });
    publishAll(router, 'tick', 500);
    await node.idle();
    const expected = Array.from({ length: 500 }, (_, i) => i);
    expect(a.data).toEqual(expected);
    expect(b.data).toEqual(expected);
  });

  it('keeps at most maxInFlight deliveries in a subscriber’s mailbox', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('a', s.pid, { maxInFlight: 3 });
    publishAll(router, 'a', 10);
    await s.until(1);
    await GenServer.call(node, router.name, { type: 'stats' }); // the router has routed all ten
    expect(node.info(s.pid)?.mailboxLength).toBe(2); // one being handled, two waiting
    expect(await router.stats()).toMatchObject({ inFlight: 3, buffered: 7 });
    s.release();
    await node.idle();
    expect(s.data).toHaveLength(10);
  });

  it('a slow subscriber delays neither a fast one nor the publisher', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const slow = sink(node, { held: true });
    const fast = sink(node);
    await router.subscribe('work.*', slow.pid, { maxInFlight: 1 });
    await router.subscribe('work.*', fast.pid);
    publishAll(router, 'work.item', 100);
    await fast.until(100);
    expect(fast.data).toEqual(Array.from({ length: 100 }, (_, i) => i));
    expect(slow.data).toEqual([0]);
    expect(await router.stats()).toMatchObject({ delivered: 100, inFlight: 1, buffered: 99 });
    slow.release();
    await node.idle();
    expect(slow.data).toEqual(fast.data);
    const s = await router.stats();
    expect(s).toMatchObject({ routed: 200, delivered: 200, buffered: 0, inFlight: 0 });
    expectBalanced(s);
  });

  it('emits keel.signal_router.routed per publish with its counts', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    const t = sink(node);
    await router.subscribe('a.*', s.pid, { capacity: 1, maxInFlight: 1 });
    await router.subscribe('a.**', t.pid);
    const events = routerEvents(node);
    const [s1, s2, s3] = publishAll(router, 'a.b', 3);
    const none = signal('zzz');
    router.publish(none);
    await s.until(1);
    await router.stats();
    expect(events.of('routed').map((e) => [e.measurements, e.metadata])).toEqual([
      [{ matched: 2, accepted: 2, dropped: 0 }, { router: router.name, type: 'a.b', id: s1!.id }],
      [{ matched: 2, accepted: 2, dropped: 0 }, { router: router.name, type: 'a.b', id: s2!.id }],
      [{ matched: 2, accepted: 1, dropped: 1 }, { router: router.name, type: 'a.b', id: s3!.id }],
      [{ matched: 0, accepted: 0, dropped: 0 }, { router: router.name, type: 'zzz', id: none.id }],
    ]);
    s.release();
  });
});

describe('SignalRouter deliveries: spans, and a subscriber that leaves and comes back', () => {
  it('each delivery is a supervised send span when someone listens to it (the unwatched hot path skips only the span)', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node, { deliveryTimeout: 250 });
    const a = sink(node);
    const b = sink(node);
    await router.subscribe('a.*', a.pid);
    await router.subscribe('a.**', b.pid);
    publishAll(router, 'a.b', 2); // unwatched
    await node.idle();
    const spans = captureEvents(node, ['keel.supervised_send.send.']);
    publishAll(router, 'a.b', 3, 2);
    await node.idle();
    const stops = spans.events.filter((e) => e.event === 'keel.supervised_send.send.stop');
    expect(spans.events.filter((e) => e.event === 'keel.supervised_send.send.start')).toHaveLength(6);
    expect(stops).toHaveLength(6);
    expect(stops.every((e) => e.metadata.ack === 'handled' && e.metadata.router === router.name && (e.metadata.outcome as { ok: boolean }).ok)).toBe(true);
    expect(a.data).toEqual([0, 1, 2, 3, 4]);
    expect(b.data).toEqual([0, 1, 2, 3, 4]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ delivered: 10, failed: 0 });
    expectBalanced(stats);
  });

  it('a subscriber that leaves and comes back with deliveries in flight: every signal is counted once, in order', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('a', s.pid, { maxInFlight: 2 });
    publishAll(router, 'a', 5);
    await s.until(1);
    expect(await router.unsubscribe('a', s.pid)).toBe('ok'); // 2 in flight, 3 dropped as unsubscribed
    expect(await router.subscribe('a', s.pid, { maxInFlight: 2 })).toBe('ok');
    publishAll(router, 'a', 3, 5);
    // it takes back its 2 deliveries in flight: they count against its maxInFlight, the new three wait
    expect(await router.stats()).toMatchObject({ subscribers: 1, inFlight: 2, buffered: 3 });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 5, 6, 7]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ routed: 8, delivered: 5, buffered: 0, inFlight: 0, dropped: { total: 3, byReason: { unsubscribed: 3 } } });
    expectBalanced(stats);
    expect(routerMonitors(node)).toHaveLength(1);
  });
});

// ---- overflow ---------------------------------------------------------------------------------

describe('SignalRouter overflow policies', () => {
  /** A held subscriber with capacity 2 and one delivery in flight, sent 10 signals: 1 in flight, 2 buffered, 7 over. */
  async function overflowing(overflow: SignalOverflow, services = true) {
    const { node } = clockedNode(track, services ? {} : { services: false });
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('load.*', s.pid, { capacity: 2, overflow, maxInFlight: 1 });
    const events = routerEvents(node);
    const sent = publishAll(router, 'load.x', 10);
    await s.until(1);
    const during = await router.stats();
    return { node, router, s, events, sent, during };
  }

  it("drop_newest refuses what finds the buffer full ('buffer_full'), one event per signal", async () => {
    const { node, router, s, events, sent, during } = await overflowing('drop_newest');
    expect(during).toMatchObject({ matched: 10, routed: 3, inFlight: 1, buffered: 2, dropped: { total: 7, byReason: { buffer_full: 7 } } });
    expect(events.of('dropped').map((e) => e.metadata.signalId)).toEqual(sent.slice(3).map((x) => x.id));
    expect(events.of('dropped')[0]).toEqual({
      event: 'keel.signal_router.dropped',
      measurements: { count: 1 },
      metadata: { router: router.name, reason: 'buffer_full', subscriber: s.pid, signalId: sent[3]!.id, type: 'load.x', pattern: 'load.*' },
    });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 2]);
    const after = await router.stats();
    expect(after).toMatchObject({ delivered: 3, buffered: 0, inFlight: 0 });
    expectBalanced(after);
  });

  it("drop_oldest evicts the oldest buffered signal for the newest ('evicted')", async () => {
    const { node, router, s, events, sent, during } = await overflowing('drop_oldest');
    expect(during).toMatchObject({ matched: 10, routed: 10, inFlight: 1, buffered: 2, dropped: { total: 7, byReason: { evicted: 7 } } });
    expect(events.of('dropped').map((e) => [e.metadata.reason, e.metadata.signalId])).toEqual(sent.slice(1, 8).map((x) => ['evicted', x.id]));
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 8, 9]);
    const after = await router.stats();
    expect(after).toMatchObject({ delivered: 3 });
    expectBalanced(after);
  });

  it("reject refuses what finds the buffer full and dead-letters it for recovery ('rejected')", async () => {
    const { node, router, s, events, sent, during } = await overflowing('reject');
    expect(during).toMatchObject({ matched: 10, routed: 3, dropped: { total: 7, byReason: { rejected: 7 } } });
    await events.until('dropped', 7);
    const dropped = events.of('dropped');
    expect(dropped.map((e) => e.metadata.signalId)).toEqual(sent.slice(3).map((x) => x.id));
    expect(dropped.every((e) => e.metadata.reason === 'rejected' && typeof e.metadata.deadLetterId === 'string')).toBe(true);
    const listed = await node.deadLetters.list({ reason: 'signal_rejected' });
    if ('error' in listed) throw new Error('the dead letter queue is unavailable');
    expect(listed.entries.map((e) => e.id)).toEqual(dropped.map((e) => e.metadata.deadLetterId));
    expect(listed.entries.map((e) => e.message)).toEqual(sent.slice(3));
    expect(listed.entries[0]).toMatchObject({ recipient: Pid.format(s.pid), reason: 'signal_rejected', metadata: { router: router.name, pattern: 'load.*' } });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 2]);
    expectBalanced(await router.stats());
  });

  it.each([
    ['drop_newest', [4, 5, 6, 7, 8], [0, 1, 2, 3]],
    ['reject', [4, 5, 6, 7, 8], [0, 1, 2, 3]],
    ['drop_oldest', [1, 2, 3, 4, 5], [0, 6, 7, 8]],
  ] as const)("%s: a capacity lowered below what the buffer holds drops the excess at once by the policy's rule, each an eviction (one event per signal; routed never goes down), and the counts stay balanced (it kept all 8, above its new bound)", async (overflow, droppedData, deliveredData) => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('load.*', s.pid, { capacity: 8, overflow, maxInFlight: 1 });
    const sent = publishAll(router, 'load.x', 9);
    await s.until(1);
    expect(await router.stats()).toMatchObject({ matched: 9, routed: 9, inFlight: 1, buffered: 8, dropped: { total: 0 } });
    const events = routerEvents(node);
    expect(await router.subscribe('load.*', s.pid, { capacity: 3 })).toBe('ok');
    const lowered = await router.stats();
    expect(lowered).toMatchObject({ matched: 9, routed: 9, inFlight: 1, buffered: 3, dropped: { total: 5, byReason: { evicted: 5 } } });
    expectBalanced(lowered);
    await events.until('dropped', 5);
    const dropped = events.of('dropped');
    expect(dropped.map((e) => [e.metadata.reason, e.metadata.signalId])).toEqual(droppedData.map((i) => ['evicted', sent[i]!.id]));
    expect(dropped.every((e) => e.measurements.count === 1 && e.metadata.subscriber === s.pid)).toBe(true);
    const listed = await node.deadLetters.list({ reason: 'signal_evicted' });
    if ('error' in listed) throw new Error('the dead letter queue is unavailable');
    if (overflow === 'reject') {
      // nothing the reject policy drops goes unsaid: dead-lettered, the event naming the entry and the pattern
      expect(dropped.every((e) => e.metadata.pattern === 'load.*')).toBe(true);
      expect(listed.entries.map((e) => e.message)).toEqual(droppedData.map((i) => sent[i]));
      expect(listed.entries.map((e) => e.id)).toEqual(dropped.map((e) => e.metadata.deadLetterId));
    } else {
      expect(listed.entries).toEqual([]);
    }
    s.release();
    await node.idle();
    expect(s.data).toEqual(deliveredData);
    const after = await router.stats();
    expect(after).toMatchObject({ routed: 9, delivered: 4, buffered: 0, inFlight: 0 });
    expect(after.matched).toBe(after.delivered + after.dropped.total);
    expectBalanced(after);
  });

  it('a subscribe that lowers the capacity and raises maxInFlight starts the deliveries it allows first, and drops only what is still above the capacity', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('load.*', s.pid, { capacity: 8, maxInFlight: 1 });
    const sent = publishAll(router, 'load.x', 9);
    await s.until(1);
    const events = routerEvents(node);
    expect(await router.subscribe('load.*', s.pid, { capacity: 3, maxInFlight: 4 })).toBe('ok');
    const lowered = await router.stats();
    expect(lowered).toMatchObject({ matched: 9, routed: 9, inFlight: 4, buffered: 3, dropped: { total: 2, byReason: { evicted: 2 } } });
    expectBalanced(lowered);
    expect(events.of('dropped').map((e) => e.metadata.signalId)).toEqual([sent[7]!.id, sent[8]!.id]);
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expectBalanced(await router.stats());
  });

  it('reject says when the dead letter queue is unavailable (services off)', async () => {
    const { node, router, s, events } = await overflowing('reject', false);
    await events.until('dropped', 7);
    expect(events.of('dropped').every((e) => e.metadata.reason === 'rejected' && e.metadata.deadLetterUnavailable === true)).toBe(true);
    s.release();
    await node.idle();
    expect((await router.stats()).dropped.byReason.rejected).toBe(7);
  });

  it('reject with the dead letter queue off logs each refused signal once, a warning naming it', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { services: false, logger });
    const router = await startRouter(node);
    const s = sink(node, { held: true });
    await router.subscribe('load.*', s.pid, { capacity: 2, overflow: 'reject', maxInFlight: 1 });
    const events = routerEvents(node);
    const sent = publishAll(router, 'load.x', 10);
    await events.until('dropped', 7);
    expect(logger.warn.mock.calls).toEqual(
      sent.slice(3).map((x) => [`signal router ${router.name}: signal ${x.id} to ${String(s.pid)} failed (signal_rejected) and the dead letter queue is unavailable`]),
    );
    expect(logger.error).not.toHaveBeenCalled();
    s.release();
    await node.idle();
  });
});

// ---- failures ---------------------------------------------------------------------------------

describe('SignalRouter delivery failures and subscriber deaths', () => {
  it("counts a delivery that is not handled within deliveryTimeout as 'delivery_failed', then goes on", async () => {
    const { node, clock } = clockedNode(track);
    const router = await startRouter(node, { deliveryTimeout: 100 });
    const s = sink(node, { held: true });
    await router.subscribe('a', s.pid, { maxInFlight: 1 });
    const events = routerEvents(node);
    const [first] = publishAll(router, 'a', 2);
    await s.until(1);
    await node.settle();
    await clock.advance(100);
    await events.until('dropped', 1);
    expect(events.of('dropped')[0]?.metadata).toMatchObject({ reason: 'delivery_failed', failure: 'timeout', signalId: first!.id, subscriber: s.pid });
    s.release();
    await node.idle();
    expect(s.data).toEqual([0, 1]); // the second was delivered after the first timed out
    const stats = await router.stats();
    expect(stats).toMatchObject({ delivered: 1, failed: 1 });
    expectBalanced(stats);
  });

  it('a subscriber that crashes on a signal: delivery_failed for it, subscriber_down for what was buffered, subscriptions and monitor gone', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node, { crashOn: 3 });
    const other = sink(node);
    await router.subscribe('x.*', s.pid, { maxInFlight: 1 });
    await router.subscribe('x.**', s.pid);
    await router.subscribe('x.*', other.pid);
    const events = routerEvents(node);
    const p = probe(node);
    p.ctx.monitor(s.pid);
    publishAll(router, 'x.y', 10);
    await receiveDown(p);
    await node.idle();
    expect(s.data).toEqual([0, 1, 2, 3]);
    expect(other.data).toHaveLength(10);
    const stats = await router.stats();
    expect(stats).toMatchObject({ subscribers: 1, subscriptions: 1, delivered: 13, failed: 1, buffered: 0, inFlight: 0 });
    const lost = events.of('dropped');
    expect(lost.find((e) => e.metadata.reason === 'delivery_failed')?.metadata).toMatchObject({ failure: 'process_down', subscriber: s.pid });
    const down = lost.filter((e) => e.metadata.reason === 'subscriber_down');
    expect(down.reduce((n, e) => n + e.measurements.count!, 0)).toBe(6);
    expect(stats.dropped.byReason.subscriber_down).toBe(6);
    expectBalanced(stats);
    expect(routerMonitors(node).map((m) => Pid.format(m.target))).toEqual([Pid.format(other.pid)]);
    expect((await internals(node, router)).trieNodes).toBe(1 + 2); // x, *
  });

  it('a subscriber killed while idle is unsubscribed everywhere', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const s = sink(node);
    await router.subscribe('a.b', s.pid);
    await router.subscribe('c.**', s.pid);
    node.exit(s.pid, 'kill');
    await node.idle();
    expect(await router.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
    expect((await internals(node, router)).trieNodes).toBe(1);
    expect(routerMonitors(node)).toEqual([]);
    router.publish(signal('a.b'));
    await node.idle();
    expect(await router.stats()).toMatchObject({ published: 1, matched: 0 });
  });

  it('falls back to a runtime monitor when the monitor service is off, and still cleans up on death', async () => {
    const { node } = clockedNode(track, { services: false });
    const router = await startRouter(node);
    const s = sink(node);
    expect(await router.subscribe('a', s.pid)).toBe('ok');
    expect(await router.subscribe('a', deadPid(node))).toEqual({ error: 'noproc' });
    expect(node.info(router.pid)?.monitors).toHaveLength(1);
    node.exit(s.pid, 'kill');
    await node.idle();
    expect(await router.stats()).toMatchObject({ subscribers: 0 });
    expect(node.info(router.pid)?.monitors).toEqual([]);
    const t = sink(node);
    await router.subscribe('a', t.pid);
    expect(await router.unsubscribe('a', t.pid)).toBe('ok');
    expect(node.info(router.pid)?.monitors).toEqual([]);
  });

  it('keeps its accounts over many publishes with a slow, a fast and a dying subscriber', async () => {
    const { node } = clockedNode(track);
    const router = await startRouter(node);
    const slow = sink(node, { held: true });
    const fast = sink(node);
    const dying = sink(node, { held: true });
    await router.subscribe('m.*', slow.pid, { capacity: 20, overflow: 'drop_oldest', maxInFlight: 2 });
    await router.subscribe('m.**', fast.pid);
    await router.subscribe('m.*', dying.pid, { capacity: 5, overflow: 'reject', maxInFlight: 1 });
    await router.subscribe('m.a', dying.pid); // overlapping: still once per signal
    const events = routerEvents(node);
    publishAll(router, 'm.a', 300);
    await fast.until(300);
    node.exit(dying.pid, 'kill');
    publishAll(router, 'm.b', 200, 300);
    await fast.until(500);
    await router.stats();
    const during = await router.stats();
    expectBalanced(during);
    expect(during.buffered + during.inFlight).toBe(22); // the slow one's buffer and in flight
    slow.release();
    await node.idle();
    const s = await router.stats();
    expectBalanced(s);
    const r = s.dropped.byReason;
    expect(s).toMatchObject({ published: 500, subscribers: 2, buffered: 0, inFlight: 0 });
    expect(s.matched).toBe(500 + 500 + 300); // fast, slow, and the dying one before it died
    expect(fast.data).toHaveLength(500);
    expect(slow.data).toHaveLength(2 + 20); // two in flight at first, then the last twenty
    expect(slow.data.slice(2)).toEqual(Array.from({ length: 20 }, (_, i) => 480 + i));
    expect(r.evicted).toBe(500 - 22);
    expect(dying.data).toEqual([0]);
    expect(r.rejected).toBe(300 - 1 - 5);
    expect(r.subscriber_down).toBe(5);
    expect(r.delivery_failed).toBe(1); // the one it was handling when it was killed
    expect(s.delivered).toBe(500 + 22);
    // every drop was reported, with its count
    await events.until('dropped', 1 + 478 + 1 + 294);
    const reported: Record<string, number> = {};
    for (const e of events.of('dropped')) reported[e.metadata.reason as string] = (reported[e.metadata.reason as string] ?? 0) + e.measurements.count!;
    expect(reported).toEqual({ evicted: 478, rejected: 294, subscriber_down: 5, delivery_failed: 1 });
    // every publish was reported: routed events add up to the stats
    const routed = events.of('routed');
    expect(routed).toHaveLength(500);
    expect(routed.reduce((n, e) => n + e.measurements.accepted!, 0)).toBe(s.routed);
    expect(routed.reduce((n, e) => n + e.measurements.matched!, 0)).toBe(s.matched);
  });
});

// ---- supervision ------------------------------------------------------------------------------

describe('SignalRouter.start', () => {
  it('refuses bad options with ERR_INVALID_ARGUMENT before starting anything', async () => {
    const { node } = clockedNode(track);
    const count = node.processes().length;
    for (const [options, argument] of [
      [{ deliveryTimeout: 0 }, 'options.deliveryTimeout'],
      [{ deliveryTimeout: -1 }, 'options.deliveryTimeout'],
      [{ deliveryTimeout: NaN }, 'options.deliveryTimeout'],
      [{ deliveryTimeout: '5s' }, 'options.deliveryTimeout'],
      [{ name: '' }, 'options.name'],
      [{ name: 7 }, 'options.name'],
      ['router', 'options'],
    ] as const) {
      expectKeelError(await failure(() => SignalRouter.start(node, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    }
    expect(node.processes()).toHaveLength(count);
  });

  it('registers under a given or generated name, and is supervised by the node’s agents supervisor', async () => {
    const { node } = clockedNode(track);
    const a = await startRouter(node, { name: 'signals' });
    const b = await startRouter(node);
    expect(a.name).toBe('signals');
    expect(b.name).toMatch(/^keel\.signal_router\.\d+$/);
    expect(Pid.equals(node.registry.whereis('signals')!, a.pid)).toBe(true);
    const sup = node.registry.whereis('keel.agents')!;
    expect(node.info(a.pid)?.links.some((l) => Pid.equals(l, sup))).toBe(true);
  });

  it('under a supervisor: linked to it, restarted after a crash with its subscriptions, buffers and accounts, nothing lost', async () => {
    const { node } = clockedNode(track);
    let handle: SignalRouterHandle | undefined;
    const sup = await Supervisor.start(node, [
      {
        id: 'router',
        start: async (ctx) => {
          handle = await SignalRouter.start(ctx, { name: 'signals' });
          return handle.pid;
        },
      },
    ]);
    const router = handle!;
    const first = router.pid;
    expect(node.info(first)?.links.some((l) => Pid.equals(l, sup))).toBe(true);
    const s = sink(node, { held: true });
    await router.subscribe('a.*', s.pid, { maxInFlight: 1 });
    const events = routerEvents(node);
    publishAll(router, 'a.b', 4);
    await s.until(1);
    expect(await router.stats()).toMatchObject({ inFlight: 1, buffered: 3 });
    expect(routerMonitors(node)).toHaveLength(1);
    const p = probe(node);
    const ref = p.ctx.monitor(first);
    node.exit(first, 'kill');
    const down = await receiveDown(p, ref);
    expect(down.reason).toBe('killed');
    await events.until('resumed', 1);
    const second = router.pid;
    expect(Pid.equals(second, first)).toBe(false);
    expect(node.info(second)?.links.some((l) => Pid.equals(l, sup))).toBe(true);
    // the subscriber is monitored again, by the new router only
    expect(routerMonitors(node).map((m) => [Pid.format(m.owner), Pid.format(m.target)])).toEqual([[Pid.format(second), Pid.format(s.pid)]]);
    expect(events.of('resumed').map((e) => [e.measurements, e.metadata])).toEqual([
      [{ subscribers: 1, subscriptions: 1, lostSubscribers: 0, lostSubscriptions: 0, buffered: 3, inFlight: 1 }, { router: 'signals', restarts: 1 }],
    ]);
    s.release(); // the delivery in flight at the crash settles into the kept table; the buffered three follow
    await node.idle();
    expect(s.data).toEqual([0, 1, 2, 3]);
    expect(events.of('dropped')).toEqual([]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ subscribers: 1, published: 4, delivered: 4, buffered: 0, inFlight: 0, restarts: 1, dropped: { total: 0 } });
    expectBalanced(stats);
    router.publish(signal('a.c', 'after'));
    await node.idle();
    expect(s.data).toEqual([0, 1, 2, 3, 'after']);
    expect(isDown(down)).toBe(true);
    expect((node as Kernel).isAlive(sup)).toBe(true);
  });
});

describe('SignalRouter options that cannot be read, or that it does not know', () => {
  // found by test/reliability/fuzz.agents.test.ts (fast-check seed 1760290857, path 251): subscribe's
  // options given as a proxy whose traps throw threw a raw TypeError; subscribe and start took any
  // option key, a misspelt one silently ignored
  it('are ERR_INVALID_ARGUMENT naming the option, and nothing is subscribed', async () => {
    const node = track();
    const router = await SignalRouter.start(node);
    const s = sink(node);
    for (const [, make] of UNREADABLE) expectKeelError(await failure(() => router.subscribe('a.*', s.pid, make() as never)), 'ERR_INVALID_ARGUMENT', '`options`');
    expectKeelError(await failure(() => router.subscribe('a.*', s.pid, { capacty: 10 } as never)), 'ERR_INVALID_ARGUMENT', '`options.capacty`');
    expectKeelError(await failure(() => SignalRouter.start(node, { deliveryTimeoutMs: 10 } as never)), 'ERR_INVALID_ARGUMENT', '`options.deliveryTimeoutMs`');
    expect(await router.stats()).toMatchObject({ subscribers: 0, subscriptions: 0 });
  });
});
