import { afterEach, describe, expect, it, vi } from 'vitest';
import { ResourcePool } from '../../../src/agents/pool/ResourcePool.js';
import { GenServer, type Pid, Sys } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { kernelOf } from '../../../src/runtime/kernel.js';
import { advance, clockedNode, deferred, expectKeelError, fakeLogger, HOUR, idler, rejection, revokedProxy, spawnWithContext, stepWallClock, thrown, UNREADABLE, useNodes, watch } from '../../support.js';

const track = useNodes();

interface Conn {
  readonly id: number;
}

/** A factory of numbered connections, with what was destroyed. */
function factory(): { create: () => Conn; destroy: (c: Conn) => void; destroyed: number[]; made: () => number } {
  let n = 0;
  const destroyed: number[] = [];
  return { create: () => ({ id: ++n }), destroy: (c) => void destroyed.push(c.id), destroyed, made: () => n };
}

function names(events: { event: string }[]): string[] {
  return events.map((e) => e.event.replace('keel.resource_pool.', ''));
}

describe('ResourcePool', () => {
  it('creates size resources up front, lends the last checked in first, counts every step', async () => {
    const node = track();
    const f = factory();
    const events = captureEvents(node, ['keel.resource_pool.']);
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 2 });
    expect(names(events.events)).toEqual(['created', 'created']);
    expect(await pool.stats()).toMatchObject({ size: 2, maxOverflow: 0, resources: 2, idle: 2, checkedOut: 0, overflow: 0, waiting: 0, creating: 0, created: 2 });
    const a = await pool.checkout();
    const b = await pool.checkout();
    expect([a.id, b.id].sort()).toEqual([1, 2]);
    expect(await pool.stats()).toMatchObject({ idle: 0, checkedOut: 2, checkouts: 2 });
    expect(await pool.checkin(a)).toBe('returned');
    expect(await pool.checkout()).toBe(a); // LIFO: the one just returned
    expect(await pool.checkin(a)).toBe('returned');
    expect(await pool.checkin(b)).toBe('returned');
    expect(await pool.stats()).toMatchObject({ idle: 2, checkedOut: 0, checkouts: 3, checkins: 3, badCheckins: 0 });
    expect(pool.name).toMatch(/^keel\.resource_pool\.\d+$/);
    await pool.stop();
    expect(f.destroyed.sort()).toEqual([1, 2]);
    expect(node.isAlive(pool.pid)).toBe(false);
  });

  it('overflow: extra resources while callers wait, destroyed on checkin when nobody waits; waiters served FIFO', async () => {
    const { node } = clockedNode(track);
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 1, maxOverflow: 1, checkoutTimeoutMs: Infinity });
    const a = await pool.checkout();
    const b = await pool.checkout(); // overflow
    expect([a.id, b.id]).toEqual([1, 2]);
    expect(await pool.stats()).toMatchObject({ resources: 2, overflow: 1, checkedOut: 2 });
    const order: number[] = [];
    const waits = [1, 2, 3].map((i) => pool.checkout().then((c) => (order.push(i), c)));
    expect(await pool.stats()).toMatchObject({ waiting: 3, creating: 0, resources: 2 }); // at size + maxOverflow: no more
    await pool.checkin(b);
    const c1 = await waits[0]!;
    expect(c1).toBe(b);
    await pool.checkin(a);
    expect(await waits[1]!).toBe(a);
    await pool.checkin(c1);
    expect(await waits[2]!).toBe(b);
    expect(order).toEqual([1, 2, 3]);
    expect(await pool.checkin(a)).toBe('destroyed'); // nobody waits, above size: the overflow one goes
    expect(f.destroyed).toEqual([1]);
    expect(await pool.checkin(b)).toBe('returned');
    expect(await pool.stats()).toMatchObject({ resources: 1, idle: 1, overflow: 0, created: 2, destroyed: 1 });
    expect(f.made()).toBe(2);
  });

  it('a waiter times out on the node clock with ERR_POOL_TIMEOUT; timeout 0 never waits; others keep their place', async () => {
    const { node, clock } = clockedNode(track);
    const f = factory();
    const events = captureEvents(node, ['keel.resource_pool.timeout']);
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1, checkoutTimeoutMs: 100 });
    const held = await pool.checkout();
    expectKeelError(await rejection(() => pool.checkout({ timeout: 0 })), 'ERR_POOL_TIMEOUT', 'within 0 ms');
    const shortP = pool.checkout();
    const longP = pool.checkout({ timeout: 1000 });
    const short = watch(shortP);
    const long = watch(longP);
    await clock.advance(99);
    expect(short.status).toBe('pending');
    await clock.advance(1);
    const e = await rejection(() => shortP);
    expectKeelError(e, 'ERR_POOL_TIMEOUT', `'${pool.name}'`, 'within 100 ms');
    expect(long.status).toBe('pending');
    await pool.checkin(held);
    expect(await longP).toBe(held);
    expect(events.events.map((x) => x.measurements)).toEqual([{ waitedMs: 0, waiting: 0 }, { waitedMs: 100, waiting: 1 }]);
    expect(await pool.stats()).toMatchObject({ timeouts: 2, waiting: 0, checkouts: 2 });
  });

  it('a checkout times out on time at a pool that cannot answer (suspended): the call is bounded by the same wait, counted once; a checkin queued meanwhile goes to nobody gone', async () => {
    const { node, clock } = clockedNode(track);
    const f = factory();
    const events = captureEvents(node, ['keel.resource_pool.timeout']);
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const held = await pool.checkout();
    // in line before the pool is suspended: the pool's own timer fires while it is suspended
    const first = watch(pool.checkout({ timeout: 100 }));
    await node.idle();
    await Sys.suspend(node, pool.pid);
    // sent while it is suspended: the pool never sees it in time
    const second = watch(pool.checkout({ timeout: 100 }));
    const back = pool.checkin(held); // queued behind the second checkout
    await node.idle();
    await advance(node, clock, 100);
    expectKeelError(first.error, 'ERR_POOL_TIMEOUT', `'${pool.name}'`, 'within 100 ms');
    expectKeelError(second.error, 'ERR_POOL_TIMEOUT', `'${pool.name}'`, 'within 100 ms');
    await Sys.resume(node, pool.pid);
    expect(await back).toBe('returned');
    await node.idle();
    expect(await pool.stats()).toMatchObject({ timeouts: 1, waiting: 0, idle: 1, checkedOut: 0, checkouts: 1, checkins: 1 });
    expect(events.events.map((x) => x.measurements)).toEqual([{ waitedMs: 100, waiting: 0 }]);
    expect(await pool.checkout({ timeout: 0 })).toBe(held);
  });

  it('a checkout timeout past the 32-bit timer limit is kept, not fired at once', async () => {
    const { node, clock } = clockedNode(track);
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    await pool.checkout();
    const p = pool.checkout({ timeout: 3e9 });
    const w = watch(p);
    await clock.advance(2_147_483_648);
    expect(w.status).toBe('pending');
    await clock.advance(3e9 - 2_147_483_648);
    expectKeelError(await rejection(() => p), 'ERR_POOL_TIMEOUT', 'within 3000000000 ms');
  });

  it('a flood of 10,000 waiters all time out, each with the typed error, and the pool still serves', async () => {
    const { node, clock } = clockedNode(track);
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1, checkoutTimeoutMs: 50 });
    const held = await pool.checkout();
    const flood = Array.from({ length: 10_000 }, () => pool.checkout().then(() => 'lent', (e: unknown) => (e as { code?: string }).code));
    await node.settle();
    expect((await pool.stats()).waiting).toBe(10_000);
    await clock.advance(50);
    const codes = await Promise.all(flood);
    expect(codes.filter((c) => c === 'ERR_POOL_TIMEOUT')).toHaveLength(10_000);
    expect(await pool.stats()).toMatchObject({ waiting: 0, timeouts: 10_000, checkedOut: 1 });
    await pool.checkin(held);
    expect(await pool.checkout()).toBe(held);
    expect(f.made()).toBe(1);
  });

  it('a holder process that dies returns its resource (monitored): killed in the middle of withResource', async () => {
    const node = track();
    const f = factory();
    const events = captureEvents(node, ['keel.resource_pool.holder_down']);
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1, checkoutTimeoutMs: Infinity });
    const inside = deferred<Conn>();
    const never = deferred<void>();
    const holder = await spawnWithContext(node, (ctx) => {
      void pool.withResource((c) => (inside.resolve(c), never.promise), { caller: ctx });
      return () => undefined;
    });
    const lent = await inside.promise;
    const waiting = pool.checkout();
    node.exit(holder.pid, 'kill');
    expect(await waiting).toBe(lent);
    expect(events.events).toHaveLength(1);
    expect(events.events[0]!.metadata).toMatchObject({ holder: holder.pid, resource: lent, reason: 'killed' });
    expect(await pool.stats()).toMatchObject({ holderDown: 1, checkedOut: 1, resources: 1 });
    await pool.checkin(lent);
    expect(f.made()).toBe(1);
  });

  it('a waiter whose process died while in line is skipped: its turn goes to the next', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1, checkoutTimeoutMs: Infinity });
    const held = await pool.checkout();
    const doomed = await spawnWithContext(node);
    const lost = watch(pool.checkout({ caller: doomed.ctx }));
    const next = pool.checkout();
    await node.idle();
    expect((await pool.stats()).waiting).toBe(2);
    node.exit(doomed.pid, 'kill');
    await node.idle();
    await pool.checkin(held);
    expect(await next).toBe(held);
    expect(lost.status).toBe('rejected');
    expect(await pool.stats()).toMatchObject({ waiting: 0, checkedOut: 1, checkouts: 2, holderDown: 0 });
  });

  it('started from a process, the pool is linked to it: its exit takes the pool and its resources along', async () => {
    const node = track();
    const f = factory();
    const owner = await spawnWithContext(node);
    const pool = await ResourcePool.start<Conn>(owner.ctx, { create: f.create, destroy: f.destroy, size: 2 });
    const poolPid = pool.pid;
    node.exit(owner.pid, 'kill');
    await node.idle();
    expect(node.isAlive(poolPid)).toBe(false);
    expect(f.destroyed.sort()).toEqual([1, 2]);
  });

  it('a holder that checks in normally leaves no monitor behind; its later death changes nothing', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const { pid, ctx } = await spawnWithContext(node);
    const c = await pool.checkout({ caller: ctx });
    expect(await pool.checkin(c, { caller: ctx })).toBe('returned');
    node.exit(pid, 'kill');
    await node.idle();
    expect(await pool.stats()).toMatchObject({ holderDown: 0, idle: 1 });
  });

  it("a Pid resource that traps exits is killed past 5 s after its 'shutdown' (as poolboy's supervisor does): dismissed overflow, and those the pool's stop destroys", async () => {
    const { node, clock } = clockedNode(track);
    const made: Pid[] = [];
    // workers that trap exits and ignore them
    const create = (): Pid => {
      const pid = node.spawn((ctx) => {
        ctx.trapExits(true);
        return () => undefined;
      });
      made.push(pid);
      return pid;
    };
    const pool = await ResourcePool.start<Pid>(node, { create, size: 1, maxOverflow: 1 });
    const kept = await pool.checkout();
    const extra = await pool.checkout(); // overflow
    expect(await pool.checkin(extra)).toBe('destroyed');
    await node.idle();
    expect(node.isAlive(extra)).toBe(true); // it got 'shutdown' as an Exit message
    await advance(node, clock, 4999);
    expect(node.isAlive(extra)).toBe(true);
    const down = watch(new Promise((resolve) => { const off = kernelOf(node).onExit(extra, resolve); expect(off).toBeDefined(); }));
    await advance(node, clock, 1);
    expect(node.isAlive(extra)).toBe(false);
    expect(down.value).toBe('killed');
    await pool.stop(); // the kept one, lent, goes with the pool
    expect(node.isAlive(kept)).toBe(true);
    await advance(node, clock, 5000);
    expect(node.isAlive(kept)).toBe(false);
    expect(made).toEqual([kept, extra]);
  });

  it('a Pid resource that dies within createRetryMs of its creation is replaced after createRetryMs: a worker crashing at start does not make the pool spin', async () => {
    const { node, clock } = clockedNode(track);
    const made: Pid[] = [];
    // every resource dies as soon as the pool has it (watched), until the fifth
    node.telemetry.attach('t-kill', ['keel.resource_pool.created'], (_e, _m, meta) => {
      if (made.length < 5) node.exit(meta.resource as Pid, 'kill');
    });
    const events = captureEvents(node, ['keel.resource_pool.resource_down', 'keel.resource_pool.created']);
    const pool = await ResourcePool.start<Pid>(node, { create: () => (made.push(idler(node)), made.at(-1)!), size: 1, createRetryMs: 1000 });
    await node.idle();
    expect(made).toHaveLength(1); // the replacement waits for its retry timer
    expect(await pool.stats()).toMatchObject({ resources: 0, resourceDown: 1, created: 1, creating: 0 });
    await advance(node, clock, 999);
    expect(made).toHaveLength(1);
    await advance(node, clock, 1);
    expect(made).toHaveLength(2);
    await advance(node, clock, 1000);
    await advance(node, clock, 1000);
    await advance(node, clock, 1000);
    expect(made).toHaveLength(5);
    expect(names(events.events)).toEqual(['created', 'resource_down', 'created', 'resource_down', 'created', 'resource_down', 'created', 'resource_down', 'created']);
    expect(await pool.stats()).toMatchObject({ resources: 1, idle: 1, resourceDown: 4, created: 5 });
    // one that lived createRetryMs is replaced at once
    await advance(node, clock, 1000);
    node.exit(made[4]!, 'kill');
    await node.idle();
    expect(made).toHaveLength(6);
    expect(await pool.stats()).toMatchObject({ resources: 1, idle: 1, resourceDown: 5, created: 6 });
    await pool.stop();
  });

  it('a Pid resource that dies is replaced; one that dies while lent is accepted back as retired', async () => {
    const node = track();
    const made: Pid[] = [];
    const events = captureEvents(node, ['keel.resource_pool.resource_down', 'keel.resource_pool.created']);
    const pool = await ResourcePool.start<Pid>(node, { create: () => (made.push(idler(node)), made.at(-1)!), size: 2, createRetryMs: 0 }); // replaced at once, however young
    expect(made).toHaveLength(2);
    const replaced = new Promise<void>((resolve) => node.telemetry.attach('t-created', ['keel.resource_pool.created'], () => made.length === 3 && resolve()));
    node.exit(made[0]!, 'kill');
    await replaced;
    expect(await pool.stats()).toMatchObject({ resources: 2, idle: 2, resourceDown: 1, created: 3 });
    const lent = await pool.checkout();
    const again = new Promise<void>((resolve) => node.telemetry.attach('t-created-2', ['keel.resource_pool.created'], () => made.length === 4 && resolve()));
    node.exit(lent, 'kill');
    await again;
    expect(await pool.checkin(lent)).toBe('retired');
    expectKeelError(await rejection(() => pool.checkin(lent)), 'ERR_INVALID_ARGUMENT', '`resource`');
    expect(names(events.events)).toEqual(['created', 'created', 'resource_down', 'created', 'resource_down', 'created']);
    expect(await pool.stats()).toMatchObject({ resources: 2, idle: 2, resourceDown: 2 });
    await pool.stop();
    // the default destroy exits each Pid resource
    await node.idle();
    expect(made.filter((p) => node.isAlive(p))).toEqual([]);
  });

  it('a resource that is plain data shaped like a pid ({ node, creation, id }) is a resource like any other: neither refused, monitored, keyed by its shape nor exited', async () => {
    const node = track();
    const live = idler(node);
    const row = { node: 'db-primary', creation: 1, id: 7 };
    // two distinct objects of one shape, and one with the shape of a live process of this node
    const shaped = [row, { ...row }, { node: live.node, creation: live.creation, id: live.id }];
    let i = 0;
    const events = captureEvents(node, ['keel.resource_pool.']);
    const pool = await ResourcePool.start(node, { create: () => shaped[i++]!, size: 3 });
    expect(names(events.events)).toEqual(['created', 'created', 'created']);
    expect(await pool.stats()).toMatchObject({ resources: 3, idle: 3, created: 3, createFailed: 0 });
    expect(node.monitors.list().filter((e) => e.tag === 'resource_pool.resource')).toEqual([]);
    const lent = [await pool.checkout(), await pool.checkout(), await pool.checkout()];
    expect(shaped.every((r) => lent.includes(r))).toBe(true);
    for (const r of lent) expect(await pool.checkin(r)).toBe('returned');
    await pool.stop();
    await node.idle();
    // the default destroy exits a Pid resource only: the live process whose shape a resource has lives on
    expect(node.isAlive(live)).toBe(true);
    expect(events.events.filter((e) => e.event === 'keel.resource_pool.destroyed').map((e) => e.metadata.ok)).toEqual([true, true, true]);
  });

  it('a string resource is keyed by itself, never taken for a Pid resource whose key text it spells', async () => {
    const node = track();
    const worker = idler(node);
    // the text the pool once keyed the worker by: another resource, not the worker
    const text = `pid:${worker.node}.${worker.id}.${worker.creation}`;
    const made: unknown[] = [worker, text];
    let i = 0;
    const pool = await ResourcePool.start(node, { create: () => made[i++]!, size: 2, destroy: () => {} });
    expect(await pool.stats()).toMatchObject({ resources: 2, idle: 2, created: 2, createFailed: 0 });
    const lent = [await pool.checkout(), await pool.checkout()];
    expect(lent).toEqual([text, worker]);
    expect(await pool.checkin(text as never)).toBe('returned');
    expect(await pool.checkin(text as never).catch((e: unknown) => (e as { code: string }).code)).toBe('ERR_INVALID_ARGUMENT'); // idle now: not the worker
    expect(await pool.checkin(worker as never)).toBe('returned');
    expect(await pool.stats()).toMatchObject({ resources: 2, idle: 2, checkins: 2, badCheckins: 1 });
    await pool.stop();
  });

  it('create failing (throws, rejects, undefined, a duplicate) is counted, reported and retried on the node clock; callers time out, nothing wedges', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.resource_pool.create_failed', 'keel.resource_pool.created']);
    const shared = { id: 0 };
    const script: (() => unknown)[] = [
      () => {
        throw new Error('refused');
      },
      () => Promise.reject(new Error('later')),
      () => undefined,
      () => shared,
      () => shared, // already in the pool
    ];
    let calls = 0;
    const pool = await ResourcePool.start<{ id: number }>(node, { create: () => script[calls++]!() as never, size: 1, createRetryMs: 200, checkoutTimeoutMs: 1000 });
    expect(await pool.stats()).toMatchObject({ resources: 0, createFailed: 1 });
    const w = pool.checkout();
    await clock.advance(200); // rejects
    await clock.advance(200); // undefined
    expect(await pool.stats()).toMatchObject({ resources: 0, createFailed: 3 });
    await clock.advance(200); // shared: lent to the waiter
    expect(await w).toBe(shared);
    await pool.checkin(shared);
    expect(calls).toBe(4);
    expect(events.events.map((e) => e.event.replace('keel.resource_pool.', ''))).toEqual(['create_failed', 'create_failed', 'create_failed', 'created']);
    expect(String((events.events[0]!.metadata.error as Error).message)).toBe('refused');
    expectKeelError(events.events[2]!.metadata.error, 'ERR_INVALID_ARGUMENT', 'not undefined or null');
  });

  it('a create that always fails: waiters time out with the typed error, and a later success serves the next caller', async () => {
    const { node, clock } = clockedNode(track);
    let ok = false;
    const pool = await ResourcePool.start<{ v: number }>(node, {
      create: () => {
        if (!ok) throw new Error('down');
        return { v: 1 };
      },
      size: 1,
      createRetryMs: 100,
      checkoutTimeoutMs: 250,
    });
    const w = pool.checkout().then(() => 'lent', (e: unknown) => (e as { code?: string }).code);
    await clock.advance(250);
    expect(await w).toBe('ERR_POOL_TIMEOUT');
    expect((await pool.stats()).createFailed).toBe(3); // at start, +100, +200
    ok = true;
    await clock.advance(100);
    expect(await pool.checkout()).toEqual({ v: 1 });
  });

  it('destroy throwing or rejecting is counted and reported; the pool goes on', async () => {
    const { node } = clockedNode(track);
    const f = factory();
    const events = captureEvents(node, ['keel.resource_pool.destroyed']);
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, {
      create: f.create,
      destroy: () => {
        if (++n === 1) throw new Error('sync');
        return Promise.reject(new Error('async'));
      },
      size: 1,
    });
    const a = await pool.checkout();
    expect(await pool.checkin(a, { broken: true })).toBe('destroyed');
    const b = await pool.checkout();
    expect(b.id).toBe(2); // the replacement
    expect(await pool.checkin(b, { broken: true })).toBe('destroyed');
    await node.idle();
    expect(events.events.map((e) => [e.metadata.reason, e.metadata.ok, (e.metadata.error as Error).message])).toEqual([
      ['broken', false, 'sync'],
      ['broken', false, 'async'],
    ]);
    expect(await pool.stats()).toMatchObject({ destroyFailed: 2, destroyed: 0, resources: 1 });
  });

  it('checkin twice, or of something never lent, is refused and counted; never lent twice', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const a = await pool.checkout();
    await pool.checkin(a);
    expectKeelError(await rejection(() => pool.checkin(a)), 'ERR_INVALID_ARGUMENT', 'checked in already');
    expectKeelError(await rejection(() => pool.checkin({ id: 1 })), 'ERR_INVALID_ARGUMENT', 'never lent it');
    const x = await pool.checkout();
    const yP = pool.checkout({ timeout: Infinity });
    const y = watch(yP);
    await node.idle();
    expect(y.status).toBe('pending'); // the one resource is out once
    expect(await pool.stats()).toMatchObject({ badCheckins: 2, checkedOut: 1, idle: 0, waiting: 1 });
    await pool.checkin(x);
    expect(await yP).toBe(x);
  });

  it('a resource lent to a process is given back by that process only: a stale checkin cannot free what another holds', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    const c = await pool.checkout({ caller: a.ctx });
    expect(await pool.checkin(c, { caller: a.ctx })).toBe('returned');
    expect(await pool.checkout({ caller: b.ctx })).toBe(c);
    expectKeelError(await rejection(() => pool.checkin(c, { caller: a.ctx })), 'ERR_INVALID_ARGUMENT', `held by ${String(b.pid)}`);
    expectKeelError(await rejection(() => pool.checkin(c)), 'ERR_INVALID_ARGUMENT', 'options.caller');
    expect(await pool.stats()).toMatchObject({ badCheckins: 2, checkedOut: 1 });
    expect(await pool.checkin(c, { caller: b.ctx })).toBe('returned');
    node.exit(a.pid, 'kill');
    node.exit(b.pid, 'kill');
  });

  it('the holder is the process a call comes from, never a field of the request: a call sent straight to the pool cannot check in, or check out, in the name of another process', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 2 });
    const holder = await spawnWithContext(node);
    const other = await spawnWithContext(node);
    const c = await pool.checkout({ caller: holder.ctx });
    // a checkin naming the holder, from another process
    const forged = await GenServer.call(other.ctx, pool.name, { type: 'checkin', resource: c, broken: false, by: holder.pid } as never);
    expectKeelError(forged, 'ERR_INVALID_ARGUMENT', `held by ${String(holder.pid)}`);
    expect(await pool.stats()).toMatchObject({ badCheckins: 1, checkins: 0, checkedOut: 1, idle: 1 });
    // a checkout naming the holder, from another process: lent to (and watched as) the caller
    const d = await GenServer.call(other.ctx, pool.name, { type: 'checkout', holder: holder.pid, timeout: 0 } as never);
    expect(d).toEqual({ id: 1 });
    node.exit(holder.pid, 'kill');
    await node.idle();
    expect(await pool.stats()).toMatchObject({ holderDown: 1, checkedOut: 1, idle: 1 }); // c came back, d did not
    node.exit(other.pid, 'kill');
    await node.idle();
    expect(await pool.stats()).toMatchObject({ holderDown: 2, checkedOut: 0, idle: 2 });
  });

  it('a Pid resource that died while lent to a process is taken back as retired from that process only: a stale checkin cannot take its place', async () => {
    const node = track();
    const pool = await ResourcePool.start<Pid>(node, { create: () => idler(node), size: 1, createRetryMs: 0 }); // replaced at once, however young
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    const r = await pool.checkout({ caller: a.ctx });
    expect(await pool.checkin(r, { caller: a.ctx })).toBe('returned');
    expect(await pool.checkout({ caller: b.ctx })).toBe(r);
    node.exit(r, 'kill'); // dies while b holds it
    await node.idle();
    expectKeelError(await rejection(() => pool.checkin(r, { caller: a.ctx })), 'ERR_INVALID_ARGUMENT', `held by ${String(b.pid)}`);
    expectKeelError(await rejection(() => pool.checkin(r)), 'ERR_INVALID_ARGUMENT', 'options.caller');
    expect(await pool.checkin(r, { caller: b.ctx })).toBe('retired');
    expect(await pool.stats()).toMatchObject({ resourceDown: 1, badCheckins: 2, checkins: 2, resources: 1, idle: 1 });
    expect(node.monitors.list().filter((e) => e.tag === 'resource_pool.holder')).toEqual([]);
    node.exit(a.pid, 'kill');
    node.exit(b.pid, 'kill');
  });

  it('withResource checks in after fn, also when fn throws; discardOnError replaces the resource', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 1 });
    expect(await pool.withResource((c) => c.id * 10)).toBe(10);
    await expect(pool.withResource(() => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
    expect(await pool.stats()).toMatchObject({ idle: 1, destroyed: 0 });
    await expect(pool.withResource(() => { throw new Error('bad state'); }, { discardOnError: true })).rejects.toThrow('bad state');
    expect(f.destroyed).toEqual([1]);
    expect(await pool.withResource((c) => c.id)).toBe(2);
  });

  it("withResource gives fn's outcome when the checkin after it is not confirmed in time (a suspended pool): the checkin waits in the pool, the resource comes back, and it is logged", async () => {
    const { node, clock } = clockedNode(track, { logger: fakeLogger() });
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 1 });
    const inside = deferred<Conn>();
    const release = deferred<number>();
    const done = watch(pool.withResource((c) => (inside.resolve(c), release.promise)));
    const failed = watch(pool.withResource(() => Promise.reject(new Error('boom')), { timeout: Infinity }));
    await inside.promise;
    await Sys.suspend(node, pool.pid);
    release.resolve(42);
    await node.settle();
    await clock.advance(5000); // the checkin's call times out: the pool is suspended
    expect(done.status).toBe('resolved');
    expect(done.value).toBe(42);
    expect(vi.mocked(node.logger.warn).mock.calls.map((c) => String(c[0]))).toEqual([
      expect.stringContaining('did not confirm the checkin within 5000 ms'),
    ]);
    await Sys.resume(node, pool.pid);
    await node.settle();
    // the checkin waited in the pool's mailbox: the resource went back, and the next borrower's fn ran (and failed)
    expect(failed.status).toBe('rejected');
    expect(String(failed.error)).toContain('boom');
    expect(await pool.stats()).toMatchObject({ idle: 1, checkedOut: 0, checkouts: 2, checkins: 2, destroyed: 0 });
  });

  it('stop destroys lent resources too; waiters get ERR_CALL_EXIT', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 1, checkoutTimeoutMs: Infinity });
    await pool.checkout();
    const waiting = pool.checkout();
    await pool.stop();
    expectKeelError(await rejection(() => waiting), 'ERR_CALL_EXIT');
    expect(f.destroyed).toEqual([1]);
  });

  it('a create that answers a resource already in the pool is a failed creation, not a second lending of it', async () => {
    const { node } = clockedNode(track);
    const same = { id: 7 };
    const pool = await ResourcePool.start<{ id: number }>(node, { create: () => same, size: 2, createRetryMs: 1000 });
    expect(await pool.stats()).toMatchObject({ resources: 1, created: 1, createFailed: 1 });
    expect(await pool.checkout()).toBe(same);
    expectKeelError(await rejection(() => pool.checkout({ timeout: 0 })), 'ERR_POOL_TIMEOUT');
  });

  it('size 0 is a pure overflow pool', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 0, maxOverflow: 1 });
    expect((await pool.stats()).resources).toBe(0);
    const c = await pool.checkout();
    expect(await pool.checkin(c)).toBe('destroyed');
    expect(f.destroyed).toEqual([1]);
  });

  it('throws at once for bad options', async () => {
    const node = track();
    const create = (): number => 1;
    const bad: [unknown, string][] = [
      [undefined, 'options'],
      [{ size: 1 }, 'options.create'],
      [{ create, size: Number.NaN }, 'options.size'],
      [{ create, size: -1 }, 'options.size'],
      [{ create, size: 1.5 }, 'options.size'],
      [{ create, size: 1e9 }, 'options.size'],
      [{ create, size: Infinity }, 'options.size'],
      [{ create, size: '2' }, 'options.size'],
      [{ create, size: 1, maxOverflow: -1 }, 'options.maxOverflow'],
      [{ create, size: 1, checkoutTimeoutMs: Number.NaN }, 'options.checkoutTimeoutMs'],
      [{ create, size: 1, createRetryMs: Infinity }, 'options.createRetryMs'],
      [{ create, size: 1, destroy: 'x' }, 'options.destroy'],
      [{ create, size: 1, name: 'keel.mine' }, 'keel.mine'],
      [{ create, size: 1, sise: 2 }, 'options.sise'],
      [JSON.parse('{"__proto__": {"size": 1}, "create": null}'), 'options'],
    ];
    for (const [options, argument] of bad) {
      const e = await rejection(() => ResourcePool.start(node, options as never));
      expect((e as { code?: string }).code === 'ERR_INVALID_ARGUMENT' || (e as { code?: string }).code === 'ERR_RESERVED_NAME').toBe(true);
      expect(String((e as Error).message)).toContain(argument);
    }
    const pool = await ResourcePool.start(node, { create, size: 0, maxOverflow: 1 });
    expectKeelError(thrown(() => pool.checkout({ timeout: -1 })), 'ERR_INVALID_ARGUMENT', '`options.timeout`');
    expectKeelError(thrown(() => pool.checkout({ caller: {} as never })), 'ERR_INVALID_ARGUMENT', '`options.caller`');
    await expect(pool.withResource(3 as never)).rejects.toThrow('`fn`');
    const r = await GenServer.call(node, pool.name, { type: 'checkout', timeout: '1' } as never);
    expectKeelError(r, 'ERR_INVALID_ARGUMENT', '`request`');
  });
});

describe('ResourcePool sent what it cannot read', () => {
  it('ignores unreadable messages and refuses malformed calls sent straight to it, and keeps serving', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const pid = pool.pid;
    for (const [, make] of UNREADABLE) node.send(pid, make());
    for (const request of [{ type: 'checkout', timeout: -1 }, { type: 'checkout', timeout: '1' }, { type: 'nope' }, revokedProxy()]) {
      const r = await GenServer.call(node, pool.name, request as never);
      expectKeelError(r, 'ERR_INVALID_ARGUMENT', '`request`');
    }
    expectKeelError(await rejection(() => pool.checkin(revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', '`resource`');
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(await pool.withResource((c) => c.id)).toBe(1);
  });
});

describe('ResourcePool: calls whose fields run code', () => {
  it('a call whose type or fields are getters (on its prototype, hidden, or throwing at a later read) is refused with the typed error; the pool keeps its lent resources', async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, size: 1 });
    const held = await pool.checkout();
    const pid = pool.pid;
    class Prototyped {
      get type(): string {
        throw new Error('prototype getter');
      }
    }
    const hidden = Object.defineProperty({}, 'type', { get: () => { throw new Error('hidden getter'); } });
    const resource = Object.defineProperty({ type: 'checkin' }, 'resource', { get: () => { throw new Error('resource getter'); } });
    let reads = 0;
    // a pid-shaped holder field whose node answers once, then throws
    const holder = { creation: 0, id: 1, get node(): string { if (++reads > 1) throw new Error('a later read'); return 'keel-x'; } };
    for (const request of [new Prototyped(), hidden, resource]) {
      expectKeelError(await GenServer.call(node, pid, request as never), 'ERR_INVALID_ARGUMENT', '`request`');
    }
    expect(node.isAlive(pid)).toBe(true);
    expect(f.destroyed).toEqual([]);
    expect(await pool.checkin(held)).toBe('returned');
    // a holder field is not the holder (the call comes from the node): it is never read past the
    // call's check, and the resource is lent with no process watched
    expect(await GenServer.call(node, pid, { type: 'checkout', timeout: 0, holder } as never)).toBe(held);
    expect(node.isAlive(pid)).toBe(true);
    expect(node.monitors.list().filter((m) => m.tag === 'resource_pool.holder')).toEqual([]);
    expect(await pool.stats()).toMatchObject({ resources: 1, idle: 0, created: 1, checkins: 1, checkouts: 2 });
  });
});

describe('ResourcePool: waits and holds on the real clock (measured on the timers\' time)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("a wait and a hold across a wall clock stepped back an hour are reported as they lasted, not an hour less", async () => {
    const node = track();
    const f = factory();
    const pool = await ResourcePool.start<Conn>(node, { create: f.create, destroy: f.destroy, size: 1 });
    const events = captureEvents(node, ['keel.resource_pool.checkout', 'keel.resource_pool.checkin']);
    const a = await pool.checkout();
    const waiting = pool.checkout();
    await node.idle(); // in line
    stepWallClock(-HOUR);
    expect(await pool.checkin(a)).toBe('returned');
    expect(await waiting).toBe(a);
    const checkin = events.events.find((e) => e.event === 'keel.resource_pool.checkin')!;
    const waited = events.events.filter((e) => e.event === 'keel.resource_pool.checkout')[1]!;
    // on the wall clock, both were an hour less than nothing
    expect(checkin.measurements.heldMs).toBeGreaterThanOrEqual(0);
    expect(waited.measurements.waitedMs).toBeGreaterThanOrEqual(0);
    expect(waited.measurements.waitedMs).toBeLessThan(HOUR / 2);
  });
});

describe('ResourcePool strategy', () => {
  /** A pool of 3 ({ id: 1..3 }, created in that order) with `strategy`, checked out in full and checked in as 2, 3, 1. */
  async function churned(strategy?: 'lifo' | 'fifo'): Promise<{ pool: Awaited<ReturnType<typeof ResourcePool.start<{ id: number }>>>; order: () => Promise<number[]> }> {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<{ id: number }>(node, { create: () => ({ id: ++n }), size: 3, ...(strategy === undefined ? {} : { strategy }) });
    const order = async (): Promise<number[]> => {
      const out = [await pool.checkout(), await pool.checkout(), await pool.checkout()];
      for (const c of out) await pool.checkin(c);
      return out.map((c) => c.id);
    };
    const all = [await pool.checkout(), await pool.checkout(), await pool.checkout()];
    for (const id of [2, 3, 1]) await pool.checkin(all.find((c) => c.id === id)!);
    return { pool, order };
  }

  it("'lifo' (the default, as poolboy's): the last checked in is lent first", async () => {
    expect(await (await churned()).order()).toEqual([1, 3, 2]);
    const lifo = await churned('lifo');
    expect(await lifo.order()).toEqual([1, 3, 2]);
    expect(await lifo.order()).toEqual([2, 3, 1]); // checked in as 1, 3, 2 the round before
  });

  it("'fifo': the one idle longest is lent first, spreading the use over every resource", async () => {
    const fifo = await churned('fifo');
    expect(await fifo.order()).toEqual([2, 3, 1]);
    expect(await fifo.order()).toEqual([2, 3, 1]); // checked in as 2, 3, 1 the round before
    // a fresh pool lends in creation order
    const node = track();
    let n = 0;
    const fresh = await ResourcePool.start<{ id: number }>(node, { create: () => ({ id: ++n }), size: 3, strategy: 'fifo' });
    const c = await fresh.checkout();
    expect(c.id).toBe(1);
    await fresh.checkin(c);
    expect([(await fresh.checkout()).id, (await fresh.checkout()).id, (await fresh.checkout()).id]).toEqual([2, 3, 1]);
  });

  it('a strategy other than lifo or fifo is a typed error at start; read once', async () => {
    const node = track();
    for (const strategy of ['LIFO', 'random', '', 1, {}, Symbol('fifo'), ['fifo']]) {
      expectKeelError(await rejection(() => ResourcePool.start(node, { create: () => ({}), size: 1, strategy } as never)), 'ERR_INVALID_ARGUMENT', 'options.strategy');
    }
    let reads = 0;
    const options = Object.defineProperty({ create: () => ({ id: 0 }), size: 2 }, 'strategy', { enumerable: true, get: () => (reads++ === 0 ? 'fifo' : 'bogus') });
    const pool = await ResourcePool.start<{ id: number }>(node, options as never);
    expect(reads).toBe(1);
    const a = await pool.checkout();
    await pool.checkin(a);
    expect(await pool.checkout()).not.toBe(a); // fifo: the other one
  });
});
