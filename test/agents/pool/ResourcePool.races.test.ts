import { describe, expect, it } from 'vitest';
import { ResourcePool } from '../../../src/agents/pool/ResourcePool.js';
import type { Context, Pid } from '../../../src/index.js';
import { GenServer, Sys } from '../../../src/index.js';
import { captureEvents, expectNoLeaks } from '../../../src/testing/index.js';
import { isKeelError } from '../../../src/errors.js';
import { advance, clockedNode, deferred, expectKeelError, failure, idler, rejection, revokedProxy, spawnWithContext, useNodes, watch } from '../../support.js';

// An adversarial review's races: what is in flight when the pool stops or restarts, and callers
// that die in line.

const track = useNodes();

interface Conn {
  readonly id: number;
}

describe('ResourcePool races', () => {
  it('a resource whose creation ended just before the pool stopped (its Created still in the mailbox) is destroyed, not leaked', async () => {
    const node = track();
    const made = deferred<Conn>();
    const destroyed: number[] = [];
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, {
      create: () => (++n === 1 ? { id: 1 } : made.promise),
      destroy: (c) => void destroyed.push(c.id),
      size: 1,
      maxOverflow: 1,
      checkoutTimeoutMs: Infinity,
    });
    await pool.checkout();
    const waiting = pool.checkout(); // an overflow resource is being made for it
    expect(await pool.stats()).toMatchObject({ creating: 1, waiting: 1 });
    await Sys.suspend(node, pool.pid);
    made.resolve({ id: 2 });
    await node.idle(); // the creation's answer waits in the suspended pool's mailbox
    await pool.stop();
    expectKeelError(await rejection(() => waiting), 'ERR_CALL_EXIT');
    expect(destroyed.sort()).toEqual([1, 2]);
    expectNoLeaks(node);
  });

  it("withResource answers fn's result when the pool restarted while fn ran: the resource went with the pool that lent it", async () => {
    const node = track();
    const destroyed: number[] = [];
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), destroy: (c) => void destroyed.push(c.id), size: 1 });
    const first = pool.pid;
    const inside = deferred<Conn>();
    const finish = deferred<string>();
    const result = pool.withResource((c) => (inside.resolve(c), finish.promise));
    const lent = await inside.promise;
    node.exit(first, 'kill'); // its supervisor starts a fresh pool under the same name
    await node.idle();
    expect(String(pool.pid)).not.toBe(String(first));
    expect(destroyed).toEqual([lent.id]);
    finish.resolve('done');
    expect(await result).toBe('done');
    expect(await pool.stats()).toMatchObject({ badCheckins: 0, resources: 1, idle: 1, checkins: 0 });
    await pool.stop();
    expectNoLeaks(node);
  });

  it('withResource never frees, in the restarted pool, the same resource another caller holds there (a shared resource object)', async () => {
    const node = track();
    const shared: Conn = { id: 7 };
    const pool = await ResourcePool.start<Conn>(node, { create: () => shared, destroy: () => undefined, size: 1 });
    const inside = deferred<Conn>();
    const finish = deferred<string>();
    const result = pool.withResource((c) => (inside.resolve(c), finish.promise));
    await inside.promise;
    node.exit(pool.pid, 'kill');
    await node.idle();
    const other = await pool.checkout(); // the new pool lends the same object to another caller
    expect(other).toBe(shared);
    finish.resolve('done');
    expect(await result).toBe('done');
    expect(await pool.stats()).toMatchObject({ checkedOut: 1, idle: 0, checkins: 0 }); // still out: the stale checkin did not free it
    expect(await pool.checkin(other)).toBe('returned');
    await pool.stop();
  });

  it('a waiter whose process dies leaves the line at once (monitored, as poolboy does), not at its turn', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1, checkoutTimeoutMs: Infinity });
    const held = await pool.checkout();
    const doomed = await Promise.all([1, 2, 3].map(() => spawnWithContext(node)));
    const lost = doomed.map((d) => pool.checkout({ caller: d.ctx }).catch((e: unknown) => e));
    await node.idle();
    expect((await pool.stats()).waiting).toBe(3);
    for (const d of doomed) node.exit(d.pid, 'kill');
    await Promise.all(lost);
    await node.idle();
    expect(await pool.stats()).toMatchObject({ waiting: 0, checkedOut: 1, holderDown: 0 });
    expectNoLeaks(node);
    expect(await pool.checkin(held)).toBe('returned');
    expect(await pool.stats()).toMatchObject({ waiting: 0, idle: 1, checkouts: 1 });
    await pool.stop();
    expectNoLeaks(node);
  });

  it('a checkout whose caller gave up before the pool took it (its call timed out in the mailbox) is not served: the idle resource stays idle, not lent to nobody', async () => {
    const { node, clock } = clockedNode(track);
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1 });
    await Sys.suspend(node, pool.pid);
    // sent straight to the pool, with a call timeout shorter than the pool's wait
    const gaveUp = GenServer.call(node, pool.name, { type: 'checkout', holder: undefined, timeout: 5000 } as never, { timeout: 100 }).catch((e: unknown) => e);
    await node.idle();
    await advance(node, clock, 100);
    expectKeelError(await gaveUp, 'ERR_CALL_TIMEOUT');
    await Sys.resume(node, pool.pid);
    await node.idle();
    expect(await pool.stats()).toMatchObject({ resources: 1, idle: 1, checkedOut: 0, checkouts: 0 });
    expect(await pool.checkout({ timeout: 0 })).toEqual({ id: 1 });
  });

  it('one process waiting many times in line is watched once (no duplicate monitors); its death clears all its places', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1, checkoutTimeoutMs: Infinity });
    const held = await pool.checkout();
    const waiter = await spawnWithContext(node);
    const lost = Array.from({ length: 25 }, () => pool.checkout({ caller: waiter.ctx }).catch((e: unknown) => e));
    const next = pool.checkout();
    await node.idle();
    expect((await pool.stats()).waiting).toBe(26);
    expect(node.monitors.list().filter((m) => m.tag === 'resource_pool.waiter')).toHaveLength(1);
    expectNoLeaks(node);
    node.exit(waiter.pid, 'kill');
    await Promise.all(lost);
    await node.idle();
    expect((await pool.stats()).waiting).toBe(1);
    expect(await pool.checkin(held)).toBe('returned');
    expect(await next).toBe(held);
    expect(node.monitors.list().filter((m) => m.tag === 'resource_pool.waiter')).toHaveLength(0);
    await pool.stop();
    expectNoLeaks(node);
  });

  it('one process holding many resources is watched once (no duplicate monitors); checking some in keeps the watch, its death returns the rest', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 12 });
    const holder = await spawnWithContext(node);
    const held: Conn[] = [];
    for (let i = 0; i < 12; i++) held.push(await pool.checkout({ caller: holder.ctx }));
    const holds = (): number => node.monitors.list().filter((m) => m.tag === 'resource_pool.holder').length;
    expect(holds()).toBe(1);
    expectNoLeaks(node); // 12 monitors of the pool on one process were a suspected leak (duplicates)
    expect(await pool.checkin(held[0]!, { caller: holder.ctx })).toBe('returned');
    expect(await pool.checkin(held[1]!, { caller: holder.ctx })).toBe('returned');
    expect(holds()).toBe(1);
    node.exit(holder.pid, 'kill');
    await node.idle();
    expect(await pool.stats()).toMatchObject({ resources: 12, idle: 12, checkedOut: 0, holderDown: 10, checkins: 2 });
    expect(holds()).toBe(0);
    expectNoLeaks(node);
    const other = await spawnWithContext(node);
    const again = await pool.checkout({ caller: other.ctx });
    expect(await pool.checkin(again, { caller: other.ctx })).toBe('returned');
    expect(holds()).toBe(0);
  });

  it('withResource whose holder died between the lending and fn does not run fn: the death returned the resource, which the next caller holds alone', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1, checkoutTimeoutMs: Infinity });
    const held = await pool.checkout();
    const holder = await spawnWithContext(node);
    const used: string[] = [];
    const lost = pool.withResource((c) => used.push(`holder: ${c.id}`), { caller: holder.ctx }).catch((e: unknown) => e);
    await node.idle();
    const next = pool.checkout().then((c) => (used.push(`next: ${c.id}`), c));
    await node.idle();
    // the checkin lends the resource to the holder, then its event kills the holder, before the
    // continuation of withResource runs
    node.telemetry.attach('kill-holder', ['keel.resource_pool.checkin'], () => node.exit(holder.pid, 'kill'));
    expect(await pool.checkin(held)).toBe('returned');
    expect(await next).toBe(held);
    expectKeelError(await lost, 'ERR_PROCESS_EXITED', String(holder.pid));
    expect(used).toEqual(['next: 1']);
    expect(await pool.stats()).toMatchObject({ holderDown: 1, checkouts: 3, checkins: 1, checkedOut: 1, badCheckins: 0 });
    node.telemetry.detach('kill-holder');
  });

  it("a holder killed mid-withResource whose fn settles later: withResource answers fn's result; the resource, already back, is not checked in again", async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1, checkoutTimeoutMs: Infinity });
    const inside = deferred<Conn>();
    const finish = deferred<string>();
    const holder = await spawnWithContext(node);
    const result = pool.withResource((c) => (inside.resolve(c), finish.promise), { caller: holder.ctx });
    const lent = await inside.promise;
    node.exit(holder.pid, 'kill');
    const other = await pool.checkout(); // the holder's death returned it
    expect(other).toBe(lent);
    finish.resolve('late');
    expect(await result).toBe('late');
    expect(await pool.stats()).toMatchObject({ checkedOut: 1, holderDown: 1, checkins: 0, badCheckins: 0 });
    expect(await pool.checkin(other)).toBe('returned');
    await pool.stop();
    expectNoLeaks(node);
  });
});

describe('ResourcePool creations that never settle', () => {
  it('a create that never settles holds neither start nor its slot for ever: past createTimeoutMs it is a failed creation, retried; its late answer is destroyed', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.resource_pool.create_failed', 'keel.resource_pool.destroyed']);
    const first = deferred<Conn>();
    const destroyed: number[] = [];
    let n = 0;
    const starting = ResourcePool.start<Conn>(node, {
      create: () => (++n === 1 ? first.promise : { id: n }),
      destroy: (c) => void destroyed.push(c.id),
      size: 1,
      createTimeoutMs: 500,
      createRetryMs: 100,
    });
    const started = watch(starting);
    await node.idle();
    await clock.advance(499);
    expect(started.status).toBe('pending'); // start waits for the first creation...
    await clock.advance(1);
    const pool = await starting; // ...until it has failed
    expect(await pool.stats()).toMatchObject({ resources: 0, creating: 0, createFailed: 1, created: 0 });
    expect(events.events.map((e) => e.event)).toEqual(['keel.resource_pool.create_failed']);
    expectKeelError(events.events[0]!.metadata.error, 'ERR_POOL_TIMEOUT', 'create()', 'within 500 ms');
    await clock.advance(100); // the retry
    expect(await pool.checkout()).toEqual({ id: 2 });
    first.resolve({ id: 1 }); // too late: not kept
    await node.idle();
    expect(destroyed).toEqual([1]);
    expect(events.events[1]).toMatchObject({ event: 'keel.resource_pool.destroyed', metadata: { reason: 'create_timeout', ok: true, resource: { id: 1 } } });
    expect(await pool.stats()).toMatchObject({ resources: 1, created: 1, destroyed: 1, createFailed: 1, creating: 0 });
    await pool.stop();
    expect(destroyed).toEqual([1, 2]);
    expectNoLeaks(node);
  });

  it('a late answer that is a resource the pool already holds (a factory that hands out a shared connection) is not destroyed under its holder', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.resource_pool.destroyed']);
    const shared: Conn = { id: 7 };
    const first = deferred<Conn>();
    const destroyed: number[] = [];
    let n = 0;
    const starting = ResourcePool.start<Conn>(node, {
      create: () => (++n === 1 ? first.promise : shared),
      destroy: (c) => void destroyed.push(c.id),
      size: 1,
      createTimeoutMs: 500,
      createRetryMs: 100,
    });
    await node.idle();
    await clock.advance(500); // the first creation is given up on
    const pool = await starting;
    await clock.advance(100); // the retry makes the shared one
    expect(await pool.checkout()).toBe(shared);
    first.resolve(shared); // the late answer: the very resource lent now
    await node.idle();
    expect(destroyed).toEqual([]); // not destroyed under its holder
    expect(events.events).toEqual([]);
    expect(await pool.stats()).toMatchObject({ resources: 1, created: 1, destroyed: 0, createFailed: 1, creating: 0 });
    expect(await pool.checkin(shared)).toBe('returned');
    await pool.stop();
    expect(destroyed).toEqual([7]); // once, at the stop
    expectNoLeaks(node);
  });

  it('a creation that answers in time is kept, and its timer does not fire later', async () => {
    const { node, clock } = clockedNode(track);
    const pool = await ResourcePool.start<Conn>(node, { create: () => Promise.resolve({ id: 1 }), size: 1, createTimeoutMs: 500 });
    await clock.advance(1000);
    expect(await pool.stats()).toMatchObject({ resources: 1, created: 1, createFailed: 0 });
    await pool.stop();
  });

  it('create is given an AbortSignal, aborted with the ERR_POOL_TIMEOUT past createTimeoutMs: a create that heeds it ends its work, counted as one failure', async () => {
    const { node, clock } = clockedNode(track);
    const signals: AbortSignal[] = [];
    let n = 0;
    const events = captureEvents(node, ['keel.resource_pool.create_failed']);
    const starting = ResourcePool.start<Conn>(node, {
      create: (signal) => {
        signals.push(signal);
        if (++n > 1) return { id: n };
        // a connect that gives up when told to
        return new Promise<Conn>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
      },
      size: 1,
      createTimeoutMs: 500,
      createRetryMs: 100,
    });
    await node.idle();
    expect(signals).toHaveLength(1);
    expect(signals[0]!.aborted).toBe(false);
    await clock.advance(500);
    const pool = await starting;
    expect(signals[0]!.aborted).toBe(true);
    expectKeelError(signals[0]!.reason, 'ERR_POOL_TIMEOUT', 'create()', 'within 500 ms');
    expect(events.events.map((e) => e.metadata.error)).toEqual([signals[0]!.reason]); // its rejection is not a second failure
    await clock.advance(100);
    expect(await pool.checkout()).toEqual({ id: 2 });
    expect(await pool.stats()).toMatchObject({ createFailed: 1, created: 1 });
    await pool.stop();
    expect(signals[1]!.aborted).toBe(false); // a creation that answered is never told to stop later
  });

  it("a create still running when the pool exits is aborted with the pool's exit reason", async () => {
    const node = track();
    const signals: AbortSignal[] = [];
    const pool = await ResourcePool.start<Conn>(node, {
      create: (signal) => (signals.push(signal), signals.length === 1 ? { id: 1 } : new Promise<Conn>(() => undefined)),
      size: 1,
      maxOverflow: 1,
      createTimeoutMs: Infinity,
    });
    await pool.checkout();
    const waiting = pool.checkout({ timeout: Infinity }).catch((e: unknown) => e);
    await node.idle();
    expect(signals.map((s) => s.aborted)).toEqual([false, false]);
    const pid = pool.pid;
    node.exit(pid, 'kill');
    await node.idle();
    expect(signals.slice(0, 2).map((s) => s.aborted)).toEqual([false, true]); // (its supervisor's restart has begun a creation of its own since)
    expect(signals[1]!.reason).toBe('killed');
    expectKeelError(await waiting, 'ERR_CALL_EXIT');
  });

  it('createTimeoutMs is a number of ms > 0 or Infinity', async () => {
    const node = track();
    for (const bad of [0, -1, Number.NaN, '10', -Infinity]) {
      expectKeelError(await rejection(() => ResourcePool.start(node, { create: () => 1, size: 0, createTimeoutMs: bad as never })), 'ERR_INVALID_ARGUMENT', 'options.createTimeoutMs');
    }
  });
});

describe('ResourcePool accounting under random interleavings', () => {
  /** A small deterministic generator (mulberry32). */
  function random(seed: number): () => number {
    let a = seed;
    return () => {
      a = (a + 0x6d2b79f5) | 0;
      let t = Math.imul(a ^ (a >>> 15), 1 | a);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  for (const seed of [1, 2, 3, 4, 5]) {
    it(`seed ${seed}: never lends a resource twice, overflow stays within 0..maxOverflow, every timeout is the typed error, and it settles back to size`, async () => {
      const { node, clock } = clockedNode(track);
      let n = 0;
      const destroyed = new Set<number>();
      const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), destroy: (c) => void destroyed.add(c.id), size: 2, maxOverflow: 2, checkoutTimeoutMs: 100 });
      const rnd = random(seed);
      const held = new Set<Conn>();
      let timeouts = 0;
      let pending = 0;
      let peakOverflow = 0;
      for (let step = 0; step < 300; step++) {
        const r = rnd();
        if (r < 0.45) {
          pending++;
          pool.checkout({ timeout: [0, 50, 100, 1000][Math.floor(rnd() * 4)]! }).then(
            (c) => {
              pending--;
              expect(held.has(c)).toBe(false); // never lent twice
              expect(destroyed.has(c.id)).toBe(false); // never a destroyed one
              held.add(c);
            },
            (e: unknown) => {
              pending--;
              expectKeelError(e, 'ERR_POOL_TIMEOUT');
              timeouts++;
            },
          );
        } else if (r < 0.85 && held.size > 0) {
          const c = [...held][Math.floor(rnd() * held.size)]!;
          held.delete(c);
          const outcome = await pool.checkin(c, { broken: rnd() < 0.2 });
          expect(['returned', 'destroyed']).toContain(outcome);
        } else {
          await clock.advance(30);
        }
        await node.idle();
        const st = await pool.stats();
        expect(st.resources).toBeLessThanOrEqual(4);
        expect(st.overflow).toBe(Math.max(0, st.resources - 2));
        expect(st.idle + st.checkedOut).toBe(st.resources);
        expect(st.checkedOut).toBe(held.size);
        expect(st.waiting).toBe(pending);
        peakOverflow = Math.max(peakOverflow, st.overflow);
      }
      expect(peakOverflow).toBe(2); // the run did reach the overflow cap
      expect(timeouts).toBeGreaterThan(0); // and had callers time out
      // give everything back; a waiter still in line takes what comes back, until the line is gone
      while (held.size > 0 || pending > 0) {
        for (const c of [...held]) {
          held.delete(c);
          await pool.checkin(c);
        }
        await clock.advance(1000);
        await node.idle();
      }
      const st = await pool.stats();
      expect(st).toMatchObject({ resources: 2, idle: 2, checkedOut: 0, overflow: 0, waiting: 0, creating: 0, timeouts, badCheckins: 0 });
      expect(st.created - st.destroyed).toBe(2);
      await pool.stop();
      expectNoLeaks(node);
    });
  }

  for (const seed of [11, 12, 13]) {
    it(`seed ${seed}, with Pid resources and holder processes killed at random: a holder's or a resource's death never lends a resource twice and leaves no monitor behind`, async () => {
      const { node, clock } = clockedNode(track);
      const pool = await ResourcePool.start<Pid>(node, { create: () => idler(node), size: 2, maxOverflow: 2, checkoutTimeoutMs: 100 });
      const rnd = random(seed);
      const pick = <T>(items: readonly T[]): T => items[Math.floor(rnd() * items.length)]!;
      /** Who holds what (a resource that died while held stays here until its holder checks it in or dies). */
      const held = new Map<string, { resource: Pid; holder: Pid; ctx: Context<any> }>();
      const waiting = new Map<string, Pid>(); // by the waiting process
      let waits = 0;
      for (let step = 0; step < 200; step++) {
        const r = rnd();
        if (r < 0.35) {
          const { pid, ctx } = await spawnWithContext(node);
          const key = String(pid);
          waiting.set(key, pid);
          waits++;
          pool.checkout({ caller: ctx, timeout: pick([0, 50, 1000]) }).then(
            (resource) => {
              waiting.delete(key);
              if (!node.isAlive(pid)) return;
              for (const h of held.values()) expect(String(h.resource)).not.toBe(String(resource)); // never lent twice
              expect(node.isAlive(resource)).toBe(true);
              held.set(key, { resource, holder: pid, ctx });
            },
            () => void waiting.delete(key),
          );
        } else if (r < 0.55 && held.size > 0) {
          const [key, h] = pick([...held.entries()]);
          held.delete(key);
          const alive = node.isAlive(h.resource);
          const outcome = await pool.checkin(h.resource, { caller: h.ctx });
          if (alive) expect(['returned', 'destroyed']).toContain(outcome);
          else expect(outcome).toBe('retired'); // it died while held: its holder's checkin is still accepted
          node.exit(h.holder, 'kill');
        } else if (r < 0.7 && held.size > 0) {
          const [key, h] = pick([...held.entries()]);
          held.delete(key); // its death gives the resource back
          node.exit(h.holder, 'kill');
        } else if (r < 0.8 && waiting.size > 0) {
          node.exit(pick([...waiting.values()]), 'kill'); // dies in line
        } else if (r < 0.9) {
          const st = await pool.stats();
          if (st.resources > 0) {
            const live = node.processes().filter((p) => [...held.values()].some((h) => String(h.resource) === String(p)));
            if (live.length > 0) node.exit(pick(live), 'kill'); // a held resource dies
          }
        } else {
          await clock.advance(30);
        }
        await node.idle();
        const st = await pool.stats();
        const heldLive = [...held.values()].filter((h) => node.isAlive(h.resource)).length;
        expect(st.resources).toBeLessThanOrEqual(4);
        expect(st.idle + st.checkedOut).toBe(st.resources);
        expect(st.checkedOut).toBe(heldLive);
        expect(st.waiting).toBe(waiting.size);
      }
      for (const [key, h] of [...held.entries()]) {
        held.delete(key);
        node.exit(h.holder, 'kill');
      }
      // every wait ends (a replacement of a resource that died young, made once its retry delay is
      // past, may be lent to one still in line), then what those got goes back too
      await clock.advance(1000);
      await node.idle();
      for (const [key, h] of [...held.entries()]) {
        held.delete(key);
        node.exit(h.holder, 'kill');
      }
      await node.idle();
      expect(waiting.size).toBe(0);
      const st = await pool.stats();
      expect(st).toMatchObject({ resources: 2, idle: 2, checkedOut: 0, overflow: 0, waiting: 0, creating: 0, badCheckins: 0 });
      expect(waits).toBeGreaterThan(50);
      expect(st.holderDown).toBeGreaterThan(0); // the run did kill holders
      expect(st.resourceDown).toBeGreaterThan(0); // and resources
      await pool.stop();
      expectNoLeaks(node);
    });
  }
});

describe('ResourcePool handle calls given what they cannot read', () => {
  it('a misspelt option, a revoked proxy or a throwing getter as the options of checkout, checkin or withResource is ERR_INVALID_ARGUMENT, and nothing is lent', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1 });
    const throwing = Object.defineProperty({}, 'timeout', { enumerable: true, get: () => { throw new Error('no'); } });
    for (const o of [{ timout: 10 }, revokedProxy(), throwing]) {
      expectKeelError(await failure(() => pool.checkout(o as never)), 'ERR_INVALID_ARGUMENT', '`options');
      expectKeelError(await failure(() => pool.withResource(() => 1, o as never)), 'ERR_INVALID_ARGUMENT', '`options');
    }
    const c = await pool.checkout();
    for (const o of [{ brokn: true }, revokedProxy()]) {
      expectKeelError(await failure(() => pool.checkin(c, o as never)), 'ERR_INVALID_ARGUMENT', '`options');
    }
    expect(await pool.stats()).toMatchObject({ checkouts: 1, checkedOut: 1, idle: 0, checkins: 0 });
    expect(await pool.checkin(c)).toBe('returned');
    await pool.stop();
  });

  it('a caller that is not a process context (a revoked proxy, a throwing or shifting self getter, a plain { self: pid }) is ERR_INVALID_ARGUMENT naming options.caller, and nothing is lent', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1 });
    const holder = await spawnWithContext(node);
    const throwingSelf = Object.defineProperty({}, 'self', { get: () => { throw new Error('no'); } });
    let reads = 0;
    const shifting = Object.defineProperty({}, 'self', { get: () => (++reads === 1 ? holder.pid : 'not a pid') });
    for (const caller of [revokedProxy(), throwingSelf, shifting, { self: holder.pid }]) {
      expectKeelError(await failure(() => pool.checkout({ caller: caller as never })), 'ERR_INVALID_ARGUMENT', '`options.caller`');
      expectKeelError(await failure(() => pool.withResource(() => 1, { caller: caller as never })), 'ERR_INVALID_ARGUMENT', '`options.caller`');
      expectKeelError(await failure(() => pool.checkin({ id: 1 }, { caller: caller as never })), 'ERR_INVALID_ARGUMENT', '`options.caller`');
    }
    expect(await pool.stats()).toMatchObject({ checkouts: 0, checkedOut: 0, idle: 1, checkins: 0, badCheckins: 0 });
    expect(await pool.withResource((c) => c.id, { caller: holder.ctx })).toBe(1);
    await pool.stop();
  });
});

describe('ResourcePool options read once', () => {
  /** `values` with each key a getter counting its reads, answering the next of its answers (the last one for ever). */
  function shifting(values: Record<string, unknown[]>): { options: object; reads: Record<string, number> } {
    const reads: Record<string, number> = {};
    const options = {};
    for (const [key, answers] of Object.entries(values)) {
      reads[key] = 0;
      Object.defineProperty(options, key, { enumerable: true, get: () => answers[Math.min(reads[key]!++, answers.length - 1)] });
    }
    return { options, reads };
  }

  it("start reads each option once: a size answering 1, then 'lots', is a pool of 1", async () => {
    const node = track();
    let n = 0;
    const { options, reads } = shifting({ create: [() => ({ id: ++n })], size: [1, 'lots'], maxOverflow: [0, -1] });
    const pool = await ResourcePool.start<Conn>(node, options as never);
    expect(reads).toEqual({ create: 1, size: 1, maxOverflow: 1 });
    expect(await pool.stats()).toMatchObject({ size: 1, maxOverflow: 0, resources: 1, idle: 1 });
  });

  it('withResource reads each option once: a caller answering one process, then another, checks out and in from the first', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1 });
    const first = await spawnWithContext(node);
    const second = await spawnWithContext(node);
    const { options, reads } = shifting({ caller: [first.ctx, second.ctx], timeout: [100, -1], discardOnError: [true, false] });
    await expect(pool.withResource(() => Promise.reject(new Error('fn failed')), options as never)).rejects.toThrow('fn failed');
    expect(reads).toEqual({ caller: 1, timeout: 1, discardOnError: 1 });
    // checked in by the process it was lent to, and discarded as first answered
    expect(await pool.stats()).toMatchObject({ checkouts: 1, checkins: 1, badCheckins: 0, checkedOut: 0, destroyed: 1, created: 2 });
  });

  it('checkout and checkin read each option once', async () => {
    const node = track();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => ({ id: ++n }), size: 1 });
    const holder = await spawnWithContext(node);
    const out = shifting({ caller: [holder.ctx, 'x'], timeout: [100, -1] });
    const c = await pool.checkout(out.options as never);
    expect(out.reads).toEqual({ caller: 1, timeout: 1 });
    const back = shifting({ caller: [holder.ctx, 'x'], broken: [true, false] });
    expect(await pool.checkin(c, back.options as never)).toBe('destroyed');
    expect(back.reads).toEqual({ caller: 1, broken: 1 });
  });
});

describe('ResourcePool create(signal): the pool listens once, and loses no creation', () => {
  /** The process warnings emitted while `run` runs (Node emits them on the next tick: `run` ends with an idle node). */
  async function warningsDuring(run: () => Promise<void>): Promise<string[]> {
    const seen: string[] = [];
    const onWarning = (w: Error): void => void seen.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      await run();
      await new Promise<void>((resolve) => process.nextTick(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    return seen;
  }

  it('a pool of 20 whose creations are all in flight adds no listener per creation to its own signal: no MaxListenersExceededWarning, and a stop still aborts all 20', async () => {
    const node = track();
    const signals: AbortSignal[] = [];
    const gate = deferred();
    let n = 0;
    let pool: Awaited<ReturnType<typeof ResourcePool.start<Conn>>> | undefined;
    const warnings = await warningsDuring(async () => {
      const started = ResourcePool.start<Conn>(node, {
        create: async (signal) => {
          signals.push(signal);
          const id = ++n;
          if (id > 20) await new Promise(() => undefined); // the overflow ones never answer
          await gate.promise;
          return { id };
        },
        size: 20,
        maxOverflow: 20,
        checkoutTimeoutMs: Infinity,
      });
      await node.idle();
      expect(signals).toHaveLength(20);
      gate.resolve();
      pool = await started;
      for (let i = 0; i < 20; i++) await pool.checkout();
      // 20 overflow creations in flight, never answering
      const waiting = Array.from({ length: 20 }, () => pool!.checkout().catch((e: unknown) => e));
      await node.idle();
      expect(signals).toHaveLength(40);
      await pool.stop();
      for (const e of await Promise.all(waiting)) expectKeelError(e, 'ERR_CALL_EXIT');
    });
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
    expect(signals.slice(0, 20).map((s) => s.aborted)).toEqual(Array(20).fill(false)); // answered: never told to stop
    expect(signals.slice(20).map((s) => s.reason)).toEqual(Array(20).fill('shutdown'));
  });

  it('a create that ignores its signal and never settles, timed out again and again, leaves nothing behind on the pool (no listener piling up, no warning)', async () => {
    const { node, clock } = clockedNode(track);
    const signals: AbortSignal[] = [];
    const warnings = await warningsDuring(async () => {
      const pool = await ResourcePool.start<Conn>(node, {
        create: (signal) => (signals.push(signal), signals.length === 1 ? { id: 1 } : new Promise<Conn>(() => undefined)),
        size: 1,
        maxOverflow: 1,
        createTimeoutMs: 10,
        createRetryMs: 0,
        checkoutTimeoutMs: Infinity,
      });
      await pool.checkout();
      const waiting = pool.checkout().catch((e: unknown) => e);
      for (let i = 0; i < 15; i++) await advance(node, clock, 10);
      expect(signals).toHaveLength(17); // a creation every 10 ms, each timed out
      expect(signals.slice(1, -1).every((s) => isKeelError(s.reason, 'ERR_POOL_TIMEOUT'))).toBe(true);
      expect(signals.at(-1)!.aborted).toBe(false); // the one in flight
      await pool.stop();
      expectKeelError(await waiting, 'ERR_CALL_EXIT');
    });
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
  });

  it('a creation in flight when the pool exits that rejects (heeding its signal) is reported failed, not lost; one that answers is destroyed', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.resource_pool.create_failed', 'keel.resource_pool.destroyed', 'keel.resource_pool.created']);
    const late = deferred<Conn>();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, {
      create: (signal) => {
        const id = ++n;
        if (id === 1) return { id };
        if (id === 2) return new Promise<Conn>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason as Error), { once: true }));
        return late.promise;
      },
      destroy: () => undefined,
      size: 1,
      maxOverflow: 2,
      checkoutTimeoutMs: Infinity,
    });
    await pool.checkout();
    const waiting = [pool.checkout(), pool.checkout()].map((p) => p.catch((e: unknown) => e));
    await node.idle();
    expect(n).toBe(3);
    await pool.stop();
    late.resolve({ id: 3 });
    await node.idle();
    for (const e of await Promise.all(waiting)) expectKeelError(e, 'ERR_CALL_EXIT');
    // 3 creations started: 1 added (then destroyed at the stop), 1 failed, 1 destroyed as it answered
    expect(events.events.map((e) => [e.event.replace('keel.resource_pool.', ''), e.metadata.reason ?? e.metadata.error ?? (e.metadata.resource as Conn).id])).toEqual([
      ['created', 1],
      ['destroyed', 'pool_stopped'],
      ['create_failed', events.events[2]!.metadata.error],
      ['destroyed', 'pool_stopped'],
    ]);
    expectKeelError(events.events[2]!.metadata.error, 'ERR_THROWN_VALUE', '"shutdown"'); // what it rejected with: the signal's reason
    expect(events.events.at(-1)!.metadata.resource).toEqual({ id: 3 });
  });

  it('a creation that failed just before the pool exited (its CreateFailed still in the mailbox) is reported failed, not lost', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.resource_pool.create_failed']);
    const refused = deferred<Conn>();
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, { create: () => (++n === 1 ? { id: 1 } : n === 2 ? refused.promise : new Promise<Conn>(() => undefined)), size: 1, maxOverflow: 1, checkoutTimeoutMs: Infinity });
    await pool.checkout();
    const waiting = pool.checkout().catch((e: unknown) => e);
    await node.idle();
    await Sys.suspend(node, pool.pid);
    refused.reject(new Error('refused'));
    await node.idle(); // its failure waits in the suspended pool's mailbox
    expect(events.events).toEqual([]);
    node.exit(pool.pid, 'kill');
    await node.idle();
    expectKeelError(await waiting, 'ERR_CALL_EXIT');
    expect(events.events.map((e) => (e.metadata.error as Error).message)).toEqual(['refused']);
  });

  it('a create answering undefined or null after it timed out, or after the pool exited, is not handed to destroy (there is nothing to destroy): its failure is reported once', async () => {
    const { node, clock } = clockedNode(track);
    const destroyed: unknown[] = [];
    const events = captureEvents(node, ['keel.resource_pool.create_failed', 'keel.resource_pool.destroyed']);
    const answers = [deferred<Conn>(), deferred<Conn>(), deferred<Conn>()];
    let n = 0;
    const pool = await ResourcePool.start<Conn>(node, {
      create: () => (++n === 1 ? { id: 1 } : answers[n - 2]!.promise),
      destroy: (c) => void destroyed.push(c),
      size: 1,
      maxOverflow: 1,
      createTimeoutMs: 100,
      createRetryMs: 1000,
      checkoutTimeoutMs: Infinity,
    });
    await pool.checkout();
    const waiting = pool.checkout().catch((e: unknown) => e);
    await advance(node, clock, 100); // creation 2 timed out
    expect(events.events.map((e) => e.event)).toEqual(['keel.resource_pool.create_failed']);
    answers[0]!.resolve(undefined as never); // its late answer: nothing
    await node.idle();
    await advance(node, clock, 1000); // creation 3
    expect(n).toBe(3);
    await pool.stop();
    expectKeelError(await waiting, 'ERR_CALL_EXIT');
    answers[1]!.resolve(null as never); // after the exit: a failed creation, reported
    await node.idle();
    expect(destroyed).toEqual([{ id: 1 }]);
    expect(events.events.map((e) => e.event.replace('keel.resource_pool.', ''))).toEqual(['create_failed', 'destroyed', 'create_failed']);
    expectKeelError(events.events[2]!.metadata.error, 'ERR_INVALID_ARGUMENT', 'create()', 'not undefined or null');
  });
});
