import { describe, expect, it } from 'vitest';
import { GenServer } from '../../../src/index.js';
import { isSignal, validateSignal } from '../../../src/agents/Signal.js';
import { useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink, startRouter } from './routerKit.js';

const track = useNodes();

// A published object whose attributes are getters is read once by the router: it routes and
// delivers a frozen copy, so a getter that throws (or answers another type) at a later read cannot
// crash the router or route a type that was never checked.
describe('a signal whose attributes are getters', () => {
  it('a getter that throws after the checks neither crashes the router nor loses the signal unaccounted: the copy read once is delivered', async () => {
    const node = track();
    const router = await startRouter(node);
    const events = routerEvents(node);
    const s = sink(node);
    expect(await router.subscribe('a.*', s.pid)).toBe('ok');
    let reads = 0;
    const hostile = Object.defineProperty({ ...signal('a.b', 1) }, 'type', {
      enumerable: true,
      get: () => {
        if (++reads > 2) throw new Error('a later read');
        return 'a.b';
      },
    });
    const pid = router.pid;
    expect(router.publish(hostile as never)).toEqual({ ok: true, id: hostile.id });
    await s.until(1);
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(events.of('resumed')).toEqual([]);
    expect(s.got[0] === hostile).toBe(false); // (not toBe: its message would read the getter)
    expect([s.got[0]!.type, s.got[0]!.data, Object.isFrozen(s.got[0])]).toEqual(['a.b', 1, true]);
    const stats = await router.stats();
    expect([stats.published, stats.matched, stats.delivered, stats.restarts]).toEqual([1, 1, 1, 0]);
    expectBalanced(stats);
  });

  it('a frozen object whose type is a getter is not remembered as valid: a type that turns bad later is refused, not routed', async () => {
    const node = track();
    const router = await startRouter(node);
    const s = sink(node);
    expect(await router.subscribe('**', s.pid)).toBe('ok');
    let type = 'a.b';
    const frozen = Object.freeze(Object.defineProperty({ ...signal('a.b', 1) }, 'type', { enumerable: true, get: () => type }));
    validateSignal(frozen);
    type = 'a..b';
    expect(isSignal(frozen)).toBe(false);
    const unexpected: unknown[] = [];
    node.telemetry.attach('unexpected', ['keel.gen_server.unexpected_message'], (_e, _m, meta) => unexpected.push(meta.pid));
    GenServer.cast(node, router.pid, { type: 'publish', signal: frozen });
    await node.idle();
    expect(unexpected).toEqual([router.pid]);
    expect(s.got).toEqual([]);
    expect((await router.stats()).published).toBe(0);
  });

  it('a plain (unfrozen) signal changed by its publisher right after publish is routed and delivered as it was published, never lost', async () => {
    const node = track();
    const router = await startRouter(node);
    const s = sink(node);
    const other = sink(node);
    expect(await router.subscribe('a.*', s.pid)).toBe('ok');
    expect(await router.subscribe('x.*', other.pid)).toBe('ok');
    const unexpected: unknown[] = [];
    node.telemetry.attach('unexpected', ['keel.gen_server.unexpected_message'], (_e, _m, meta) => unexpected.push(meta.pid));
    // accepted at publish: the caller then reuses its object (as a message is copied at send in OTP)
    const plain: { type: string; data?: unknown } = { ...signal('a.b', 1) };
    expect(router.publish(plain as never)).toEqual({ ok: true, id: (plain as unknown as { id: string }).id });
    plain.type = 'x.y';
    plain.data = 2;
    const broken: { type: string } = { ...signal('a.c', 3) };
    expect(router.publish(broken as never).ok).toBe(true);
    broken.type = 'a..c'; // no longer a valid type
    await s.until(2);
    await node.idle();
    expect(s.got.map((g) => [g.type, g.data])).toEqual([
      ['a.b', 1],
      ['a.c', 3],
    ]);
    expect(other.got).toEqual([]);
    expect(unexpected).toEqual([]);
    const stats = await router.stats();
    expect([stats.published, stats.matched, stats.delivered]).toEqual([2, 2, 2]);
    expectBalanced(stats);
  });

  it('a publish cast that cannot be read (a revoked proxy, a throwing getter) sent straight to the router is an unexpected message; the router keeps running', async () => {
    const node = track();
    const router = await startRouter(node);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const getter = Object.defineProperty({}, 'type', { get: () => { throw new Error('no'); } });
    const unexpected: unknown[] = [];
    node.telemetry.attach('unexpected', ['keel.gen_server.unexpected_message'], (_e, _m, meta) => unexpected.push(meta.pid));
    const pid = router.pid;
    GenServer.cast(node, pid, proxy as never);
    GenServer.cast(node, pid, getter as never);
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(unexpected).toEqual([pid, pid]);
  });

  it('a publish cast straight to the router whose signal has a __proto__ member (as JSON.parse makes it) is not routed: validateSignal refuses it, and its prototype never reaches a subscriber', async () => {
    const node = track();
    const router = await startRouter(node);
    const s = sink(node);
    expect(await router.subscribe('a.b', s.pid)).toBe('ok');
    const parsed = JSON.parse('{"specversion":"1.0","id":"p-1","source":"/x","type":"a.b","time":"2024-05-01T00:00:00Z","__proto__":{"subject":"hidden"}}') as unknown;
    expect(isSignal(parsed)).toBe(false);
    const unexpected: unknown[] = [];
    node.telemetry.attach('unexpected', ['keel.gen_server.unexpected_message'], (_e, _m, meta) => unexpected.push(meta.pid));
    GenServer.cast(node, router.pid, { type: 'publish', signal: parsed } as never);
    await node.idle();
    expect(s.got.map((g) => [Object.getPrototypeOf(g) === Object.prototype, g.subject])).toEqual([]);
    expect(unexpected).toEqual([router.pid]);
    expect((await router.stats()).published).toBe(0);
  });
});
