import { describe, expect, it } from 'vitest';
import { ResourcePool } from '../../../src/agents/pool/ResourcePool.js';
import { GenServer, isExit, PoolCrashLoopError, Supervisor, type Context, type ExitReason, type Pid } from '../../../src/index.js';
import { kernelOf } from '../../../src/runtime/kernel.js';
import { captureEvents } from '../../../src/testing/index.js';
import { advance, clockedNode, expectKeelError, fakeLogger, idler, rejection, revokedProxy, spawnWithContext, useNodes } from '../../support.js';

const track = useNodes();

/** A node on a TestClock whose log is kept (a pool that gives up logs its crash). */
function quietNode(): ReturnType<typeof clockedNode> & { logger: ReturnType<typeof fakeLogger> } {
  const logger = fakeLogger();
  return { ...clockedNode(track, { logger }), logger };
}

/** A process that traps exits, to start a pool from (linked to it): it keeps what reaches it. */
async function owner(node: ReturnType<typeof track>): Promise<Awaited<ReturnType<typeof spawnWithContext>> & { exits: unknown[] }> {
  const exits: unknown[] = [];
  const p = await spawnWithContext(node, (ctx) => {
    ctx.trapExits();
    return (m) => void (isExit(m) && exits.push(m.reason));
  });
  return { ...p, exits };
}

/** The exit reason of `pid`, once it exits. */
function exitOf(node: ReturnType<typeof track>, pid: Pid): Promise<ExitReason> {
  return new Promise((resolve) => {
    const off = kernelOf(node).onExit(pid, resolve);
    expect(off).toBeDefined(); // alive when watched
  });
}

/** A create that fails every time, counting its calls. */
function failing(): { create: () => never; calls: () => number } {
  let n = 0;
  return {
    create: () => {
      n++;
      throw new Error(`refused ${n}`);
    },
    calls: () => n,
  };
}

describe('ResourcePool createIntensity', () => {
  it('more than maxFailures failed creations within withinMs: the pool exits with ERR_POOL_CRASH_LOOP after exactly maxFailures + 1 creations', async () => {
    const { node, clock, logger } = quietNode();
    const f = failing();
    const events = captureEvents(node, ['keel.resource_pool.crash_loop', 'keel.resource_pool.create_failed']);
    const o = await owner(node);
    const pool = await ResourcePool.start(o.ctx, { create: f.create, size: 1, createRetryMs: 100, createIntensity: { maxFailures: 2, withinMs: 1000 } });
    const pid = pool.pid;
    const exited = exitOf(node, pid);
    expect(f.calls()).toBe(1);
    await advance(node, clock, 99);
    expect(f.calls()).toBe(1);
    await advance(node, clock, 1); // the second failure
    expect(node.isAlive(pid)).toBe(true);
    expect(events.events.map((e) => e.event)).toEqual(['keel.resource_pool.create_failed', 'keel.resource_pool.create_failed']);
    await advance(node, clock, 100); // the third: one more than maxFailures
    expect(f.calls()).toBe(3);
    const reason = await exited;
    expect(reason).toBeInstanceOf(PoolCrashLoopError);
    const e = reason as PoolCrashLoopError;
    expectKeelError(e, 'ERR_POOL_CRASH_LOOP', `'${pool.name}'`, '3 creation failures within 1000 ms', 'allows 2', 'refused 3');
    expect({ pool: e.pool, failures: e.failures, maxFailures: e.maxFailures, withinMs: e.withinMs }).toEqual({ pool: pool.name, failures: 3, maxFailures: 2, withinMs: 1000 });
    expect(String((e.lastError as Error).message)).toBe('refused 3');
    expect(e.cause).toBe(e.lastError);
    // the event, exactly
    const crash = events.events.filter((x) => x.event === 'keel.resource_pool.crash_loop');
    expect(crash).toHaveLength(1);
    expect(crash[0]!.measurements).toEqual({ failures: 3, maxFailures: 2, withinMs: 1000 });
    expect(crash[0]!.metadata).toEqual({ pool: pool.name, error: e.lastError });
    // linked: the owner gets the exit; nothing creates any more
    await node.idle();
    expect(o.exits).toEqual([e]);
    await advance(node, clock, 10_000);
    expect(f.calls()).toBe(3);
    // one error line says why
    expect(logger.errors.map((args) => String(args[0])).filter((m) => m.includes('ERR_POOL_CRASH_LOOP') || m.includes('gave up'))).toHaveLength(1);
  });

  it('a failure rate under the limit never exits: failures spread over time are forgotten past withinMs (one exactly withinMs old no longer counts)', async () => {
    const { node, clock } = quietNode();
    const f = failing();
    const o = await owner(node);
    // a failure every 500 ms: within any 1000 ms only 2 (the one 1000 ms old is forgotten, as a Supervisor's restart)
    const pool = await ResourcePool.start(o.ctx, { create: f.create, size: 1, createRetryMs: 500, createIntensity: { maxFailures: 2, withinMs: 1000 } });
    for (let i = 0; i < 40; i++) await advance(node, clock, 500);
    expect(f.calls()).toBe(41);
    expect(node.isAlive(pool.pid)).toBe(true);
    expect(await pool.stats()).toMatchObject({ createFailed: 41, resources: 0 });
    expect(o.exits).toEqual([]);
    await pool.stop();
  });

  it('one ms faster than that and the third failure within the window ends it', async () => {
    const { node, clock } = quietNode();
    const f = failing();
    const o = await owner(node);
    const pool = await ResourcePool.start(o.ctx, { create: f.create, size: 1, createRetryMs: 499, createIntensity: { maxFailures: 2, withinMs: 1000 } });
    const exited = exitOf(node, pool.pid);
    await advance(node, clock, 499);
    await advance(node, clock, 499); // failures at 0, 499, 998
    expect(f.calls()).toBe(3);
    expectKeelError(await exited, 'ERR_POOL_CRASH_LOOP', '3 creation failures within 1000 ms');
  });

  // a worker that is alive when the pool watches it and dies on its first message: the 'created'
  // listener (run as the pool keeps it, its monitor set) sends it one, so it dies at birth
  function dyingAtBirth(node: ReturnType<typeof track>, die: (ctx: Context<unknown>) => void): { create: () => Pid; made: Pid[] } {
    const made: Pid[] = [];
    node.telemetry.attach('t-birth', ['keel.resource_pool.created'], (_e, _m, meta) => {
      if (made.slice(0, 50).includes(meta.resource as Pid)) node.send(meta.resource as Pid, 'first request');
    });
    return {
      made,
      create: () => {
        // bounded: before the fix the pool replaced it for ever; the 51st lives, so the test ends (and fails)
        made.push(made.length < 50 ? node.spawn((ctx) => () => die(ctx)) : idler(node));
        return made.at(-1)!;
      },
    };
  }

  for (const [how, die, reason] of [
    ['crashes', () => { throw new Error('boom'); }, 'boom'],
    ["exits 'normal'", (ctx: Context<unknown>) => ctx.exit('normal'), 'normal'],
  ] as const) {
    it(`every Pid death counts, whatever createRetryMs: with createRetryMs 0, a worker that ${how} at birth ends the pool after exactly maxFailures + 1 deaths, instead of a spin`, async () => {
      const { node } = quietNode();
      const w = dyingAtBirth(node, die);
      const downs = captureEvents(node, ['keel.resource_pool.resource_down']);
      const o = await owner(node);
      const pool = await ResourcePool.start<Pid>(o.ctx, { create: w.create, size: 1, createRetryMs: 0, createIntensity: { maxFailures: 2, withinMs: 1000 } });
      const exited = exitOf(node, pool.pid);
      await node.idle();
      expect(w.made).toHaveLength(3); // not 51: no spin
      expect(downs.events).toHaveLength(3);
      const e = await exited;
      expectKeelError(e, 'ERR_POOL_CRASH_LOOP', '3 creation failures within 1000 ms', 'allows 2');
      const last = (e as PoolCrashLoopError).lastError;
      if (reason === 'normal') expect(last).toBe('normal');
      else expect((last as Error).message).toBe('boom');
      expect(o.exits).toEqual([e]);
      expect(w.made.filter((p) => node.isAlive(p))).toEqual([]);
    });
  }

  for (const { maxFailures, everyMs, lastGapMs } of [
    // within 1000 ms at most one death: the one before is exactly 1000 ms old, forgotten
    { maxFailures: 1, everyMs: 1000, lastGapMs: 999 },
    // within 1000 ms at most two: the one 1200 ms old is forgotten
    { maxFailures: 2, everyMs: 600, lastGapMs: 399 },
  ]) {
    it(`every Pid death counts, however old the resource: one every ${everyMs} ms never passes maxFailures ${maxFailures} within 1000 ms; one ${lastGapMs} ms after the last does`, async () => {
      const { node, clock } = quietNode();
      const made: Pid[] = [];
      const o = await owner(node);
      const pool = await ResourcePool.start<Pid>(o.ctx, {
        create: () => (made.push(idler(node)), made.at(-1)!),
        size: 1,
        createRetryMs: 100, // every death here is older than that: replaced at once
        createIntensity: { maxFailures, withinMs: 1000 },
      });
      const exited = exitOf(node, pool.pid);
      for (let i = 0; i < 10; i++) {
        await advance(node, clock, everyMs);
        node.exit(made.at(-1)!, 'kill');
        await node.idle();
        expect(made).toHaveLength(i + 2);
      }
      expect(node.isAlive(pool.pid)).toBe(true);
      expect(await pool.stats()).toMatchObject({ resourceDown: 10, created: 11, resources: 1 });
      // the oldest death still counted is 999 ms old: maxFailures + 1 within 1000 ms
      await advance(node, clock, lastGapMs);
      node.exit(made.at(-1)!, 'kill');
      await node.idle();
      expect(node.isAlive(pool.pid)).toBe(false);
      const reason = await exited;
      expectKeelError(reason, 'ERR_POOL_CRASH_LOOP', `${maxFailures + 1} creation failures within 1000 ms`, `allows ${maxFailures}`, 'the last: "killed"');
      expect(made).toHaveLength(11); // nothing created once it gave up
      await node.idle();
      expect(made.filter((p) => node.isAlive(p))).toEqual([]);
    });
  }

  it('a Pid resource that dies within createRetryMs of its creation is still replaced only after createRetryMs, and counts', async () => {
    const { node, clock } = quietNode();
    const made: Pid[] = [];
    let killYoung = false;
    node.telemetry.attach('t-kill', ['keel.resource_pool.created'], (_e, _m, meta) => {
      if (killYoung) node.exit(meta.resource as Pid, 'kill');
    });
    const events = captureEvents(node, ['keel.resource_pool.crash_loop']);
    const o = await owner(node);
    const pool = await ResourcePool.start<Pid>(o.ctx, {
      create: () => (made.push(idler(node)), made.at(-1)!),
      size: 1,
      createRetryMs: 1000,
      createIntensity: { maxFailures: 2, withinMs: 10_000 },
    });
    const exited = exitOf(node, pool.pid);
    // from now on every new one dies at once
    killYoung = true;
    await advance(node, clock, 1000);
    node.exit(made.at(-1)!, 'kill'); // an old one (1): replaced at once, by one that dies young (2)
    await node.idle();
    expect(made).toHaveLength(2);
    await advance(node, clock, 999); // the young death's replacement waits createRetryMs
    expect(made).toHaveLength(2);
    expect(node.isAlive(pool.pid)).toBe(true);
    await advance(node, clock, 1); // (3)
    expect(made).toHaveLength(3);
    expect(node.isAlive(pool.pid)).toBe(false);
    const reason = await exited;
    expectKeelError(reason, 'ERR_POOL_CRASH_LOOP', '3 creation failures within 10000 ms', 'the last: "killed"');
    expect((reason as PoolCrashLoopError).lastError).toBe('killed');
    expect(events.events[0]!.metadata).toEqual({ pool: pool.name, error: 'killed' });
    await node.idle();
    expect(made.filter((p) => node.isAlive(p))).toEqual([]);
  });

  it('a death the pool causes never counts: a broken checkin, an overflow resource destroyed, the pool stopped (maxFailures 0: one counted death would end it)', async () => {
    const { node } = quietNode();
    const made: Pid[] = [];
    const options = {
      create: () => (made.push(idler(node)), made.at(-1)!),
      size: 1,
      maxOverflow: 1,
      createRetryMs: 0,
      createIntensity: { maxFailures: 0, withinMs: 1000 },
    };
    const o = await owner(node);
    const pool = await ResourcePool.start<Pid>(o.ctx, options);
    const exited = exitOf(node, pool.pid);
    const a = await pool.checkout();
    expect(await pool.checkin(a, { broken: true })).toBe('destroyed');
    const b = await pool.checkout();
    const c = await pool.checkout(); // overflow
    expect(await pool.checkin(c)).toBe('destroyed');
    expect(await pool.checkin(b)).toBe('returned');
    await node.idle();
    expect(made).toHaveLength(3);
    expect([a, c].map((p) => node.isAlive(p))).toEqual([false, false]); // the default destroy's 'shutdown'
    expect(node.isAlive(pool.pid)).toBe(true);
    expect(await pool.stats()).toMatchObject({ resourceDown: 0, destroyed: 2, createFailed: 0 });
    await pool.stop();
    expect(await exited).toBe('normal');
    await node.idle();
    expect(made.filter((p) => node.isAlive(p))).toEqual([]);
    expect(o.exits).toEqual(['normal']); // the stop's own exit, linked
    // the same options, and a death the pool did not cause: counted, and it ends the pool at once
    const again = await ResourcePool.start<Pid>(o.ctx, options);
    const exitedAgain = exitOf(node, again.pid);
    node.exit(made.at(-1)!, 'kill');
    await node.idle();
    expect(node.isAlive(again.pid)).toBe(false);
    expectKeelError(await exitedAgain, 'ERR_POOL_CRASH_LOOP', '1 creation failures within 1000 ms', 'allows 0');
  });

  it('a success does not reset the window (as OTP counts restarts): two failures, a success, a broken checkin whose replacement fails, and it exits', async () => {
    const { node, clock } = quietNode();
    const script = [false, false, true, false];
    let calls = 0;
    const o = await owner(node);
    const pool = await ResourcePool.start<{ n: number }>(o.ctx, {
      create: () => {
        const n = ++calls;
        if (script[n - 1] !== true) throw new Error(`refused ${n}`);
        return { n };
      },
      size: 1,
      createRetryMs: 100,
      createIntensity: { maxFailures: 2, withinMs: 10_000 },
    });
    const exited = exitOf(node, pool.pid);
    await advance(node, clock, 100);
    await advance(node, clock, 100); // the third creation succeeds
    const r = await pool.checkout();
    expect(r).toEqual({ n: 3 });
    expect(await pool.checkin(r, { broken: true })).toBe('destroyed'); // its replacement fails: the third failure in 10 s
    expectKeelError(await exited, 'ERR_POOL_CRASH_LOOP', '3 creation failures', 'refused 4');
    expect(calls).toBe(4);
  });

  it('timed-out and refused creations count too (undefined, a duplicate, a dead Pid, past createTimeoutMs)', async () => {
    const { node, clock } = quietNode();
    const same = { id: 1 };
    const dead = idler(node);
    node.exit(dead, 'kill');
    await node.idle();
    const script: (() => unknown)[] = [() => same, () => undefined, () => same, () => dead, () => new Promise(() => undefined)];
    let calls = 0;
    const o = await owner(node);
    const pool = await ResourcePool.start(o.ctx, {
      create: () => script[calls++]!() as never,
      size: 1,
      maxOverflow: 1,
      createRetryMs: 10,
      createTimeoutMs: 50,
      createIntensity: { maxFailures: 3, withinMs: 1000 },
    });
    const exited = exitOf(node, pool.pid);
    await pool.checkout(); // same, lent: the waiter below needs an overflow resource
    const waiting = pool.checkout({ timeout: Infinity }).then(() => 'lent', (e: unknown) => e);
    await node.idle(); // undefined (1)
    await advance(node, clock, 10); // same again (2)
    await advance(node, clock, 10); // a dead pid (3)
    await advance(node, clock, 10); // never settles
    expect(node.isAlive(pool.pid)).toBe(true);
    await advance(node, clock, 50); // timed out (4)
    const reason = await exited;
    expectKeelError(reason, 'ERR_POOL_CRASH_LOOP', '4 creation failures', 'did not settle within 50 ms');
    expectKeelError((reason as PoolCrashLoopError).lastError, 'ERR_POOL_TIMEOUT');
    expect(calls).toBe(5);
    // the caller in line is told at once, with the typed error whose reason is the crash loop
    const e = await waiting;
    expectKeelError(e, 'ERR_CALL_EXIT', 'PoolCrashLoopError');
    expect((e as { reason: unknown }).reason).toBe(reason);
  });

  it('at the exit everything goes as at a stop: lent and idle resources destroyed, callers in line get ERR_CALL_EXIT before their timeout, a late creation destroyed', async () => {
    const { node, clock } = quietNode();
    const destroyed: unknown[] = [];
    let calls = 0;
    let late: ((r: { n: number }) => void) | undefined;
    const events = captureEvents(node, ['keel.resource_pool.destroyed']);
    const o = await owner(node);
    const pool = await ResourcePool.start<{ n: number }>(o.ctx, {
      create: () => {
        const n = ++calls;
        if (n <= 2) return { n };
        if (n === 3) return new Promise<{ n: number }>((resolve) => (late = resolve)); // still in flight at the exit
        throw new Error(`refused ${n}`);
      },
      destroy: (r) => void destroyed.push(r.n),
      size: 2,
      maxOverflow: 2,
      createRetryMs: 100,
      checkoutTimeoutMs: 60_000,
      createIntensity: { maxFailures: 1, withinMs: 1000 },
    });
    const exited = exitOf(node, pool.pid);
    const lent = await pool.checkout();
    expect(lent).toEqual({ n: 2 });
    await pool.checkout();
    const waiters = [pool.checkout(), pool.checkout()].map((p) => p.then(() => 'lent', (e: unknown) => e));
    await node.idle(); // two overflow creations: one in flight (3), one failed (4)
    expect(calls).toBe(4);
    expect(node.isAlive(pool.pid)).toBe(true);
    await advance(node, clock, 100); // (5): past maxFailures 1
    const reason = await exited;
    expectKeelError(reason, 'ERR_POOL_CRASH_LOOP', '2 creation failures within 1000 ms');
    for (const w of waiters) {
      const e = await w;
      expectKeelError(e, 'ERR_CALL_EXIT', 'PoolCrashLoopError');
      expect((e as { reason: unknown }).reason).toBe(reason);
    }
    expect(clock.now()).toBeLessThan(1_000_000 + 60_000); // at once, not at their timeout
    expect(destroyed.sort()).toEqual([1, 2]);
    late!({ n: 3 });
    await node.idle();
    expect(destroyed.sort()).toEqual([1, 2, 3]);
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['pool_stopped', 'pool_stopped', 'pool_stopped']);
  });

  it('without createIntensity (the default) a factory that always fails is retried for ever', async () => {
    const { node, clock } = quietNode();
    const f = failing();
    const pool = await ResourcePool.start(node, { create: f.create, size: 1, createRetryMs: 10 });
    const pid = pool.pid;
    for (let i = 0; i < 100; i++) await advance(node, clock, 10);
    expect(f.calls()).toBe(101);
    expect(pool.pid).toBe(pid);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('with maxFailures 0 the first failure ends it: start still resolves (the pool started, then gave up), the pool exits right after', async () => {
    const { node } = quietNode();
    const f = failing();
    const o = await owner(node);
    const pool = await ResourcePool.start(o.ctx, { create: f.create, size: 3, createRetryMs: 100, createIntensity: { maxFailures: 0 } });
    await node.idle();
    expect(node.isAlive(pool.pid)).toBe(false);
    expect(o.exits).toHaveLength(1);
    expectKeelError(o.exits[0], 'ERR_POOL_CRASH_LOOP', '1 creation failures within 5000 ms', 'allows 0');
  });

  it('hostile createIntensity values are typed errors at start, and nothing is started or created', async () => {
    const { node, clock } = quietNode();
    const f = failing();
    const getterThrows = Object.defineProperty({}, 'maxFailures', { enumerable: true, get: () => { throw new Error('no'); } });
    const trap = new Proxy({}, { ownKeys: () => { throw new Error('trap'); } });
    const bad: [unknown, string][] = [
      [Number.NaN, 'options.createIntensity'],
      [5, 'options.createIntensity'],
      [null, 'options.createIntensity'],
      [[1, 2], 'options.createIntensity'],
      [revokedProxy(), 'options.createIntensity'],
      [trap, 'options.createIntensity'],
      [getterThrows, 'options.createIntensity.maxFailures'],
      [{ maxFailure: 2 }, 'options.createIntensity.maxFailure'],
      [{ maxFailures: Number.NaN }, 'options.createIntensity.maxFailures'],
      [{ maxFailures: -1 }, 'options.createIntensity.maxFailures'],
      [{ maxFailures: 1.5 }, 'options.createIntensity.maxFailures'],
      [{ maxFailures: Infinity }, 'options.createIntensity.maxFailures'],
      [{ maxFailures: '3' }, 'options.createIntensity.maxFailures'],
      [{ maxFailures: 2 ** 53 }, 'options.createIntensity.maxFailures'],
      [{ withinMs: 0 }, 'options.createIntensity.withinMs'],
      [{ withinMs: -5 }, 'options.createIntensity.withinMs'],
      [{ withinMs: Number.NaN }, 'options.createIntensity.withinMs'],
      [{ withinMs: Infinity }, 'options.createIntensity.withinMs'],
      [{ withinMs: '5000' }, 'options.createIntensity.withinMs'],
    ];
    const before = node.processes().length;
    for (const [createIntensity, argument] of bad) {
      const e = await rejection(() => ResourcePool.start(node, { create: f.create, size: 1, createIntensity } as never));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    }
    expect(f.calls()).toBe(0);
    expect(node.processes().length).toBe(before);
    // read once: a getter answering 1, then a bad value, is a limit of 1
    let reads = 0;
    const shifting = Object.defineProperty({}, 'maxFailures', { enumerable: true, get: () => (reads++ === 0 ? 1 : -1) });
    const o = await owner(node);
    const pool = await ResourcePool.start(o.ctx, { create: f.create, size: 1, createRetryMs: 0, createIntensity: shifting });
    expect(reads).toBe(1);
    await advance(node, clock, 0);
    expect(f.calls()).toBe(2);
    expect(node.isAlive(pool.pid)).toBe(false);
  });
});

describe('ResourcePool createIntensity under a Supervisor', () => {
  it('a pool that gives up is restarted by its supervisor, and the restarted one serves', async () => {
    const { node, clock } = quietNode();
    let calls = 0;
    const handles: { name: string }[] = [];
    const restarted = captureEvents(node, ['keel.supervisor.child_restarted']);
    const sup = await Supervisor.start(node, [
      {
        id: 'db',
        start: async (ctx) => {
          const pool = await ResourcePool.start<{ n: number }>(ctx, {
            name: 'db',
            create: () => {
              if (++calls <= 2) throw new Error(`down ${calls}`);
              return { n: calls };
            },
            size: 1,
            createRetryMs: 100,
            createIntensity: { maxFailures: 1, withinMs: 1000 },
          });
          handles.push(pool);
          return pool.pid;
        },
      },
    ], { maxRestarts: 3, withinMs: 60_000 });
    const first = handles[0] as Awaited<ReturnType<typeof ResourcePool.start<{ n: number }>>>;
    const firstPid = first.pid;
    await advance(node, clock, 100); // the second failure: the pool exits, its supervisor starts another
    expect(calls).toBe(3);
    expect(handles).toHaveLength(2);
    expect(node.isAlive(firstPid)).toBe(false);
    expect(first.pid).not.toBe(firstPid); // the handle follows the restart by name
    expect(await first.checkout()).toEqual({ n: 3 });
    expect(restarted.events).toHaveLength(1);
    expectKeelError(restarted.events[0]!.metadata.reason, 'ERR_POOL_CRASH_LOOP', "'db'", 'down 2');
    const status = await Supervisor.status(node, sup);
    expect(status.restartsInWindow).toBe(1);
    expect(node.isAlive(sup)).toBe(true);
    await GenServer.stop(node, sup);
  });

  it('with a factory that always fails the supervisor gives up after its own intensity: its own exit', async () => {
    const { node, clock } = quietNode();
    const f = failing();
    const events = captureEvents(node, ['keel.supervisor.shutdown', 'keel.supervisor.child_restarted', 'keel.resource_pool.crash_loop']);
    const sup = await Supervisor.start(node, [
      {
        id: 'db',
        start: async (ctx) => (await ResourcePool.start(ctx, { name: 'db', create: f.create, size: 1, createRetryMs: 100, createIntensity: { maxFailures: 1, withinMs: 1000 } })).pid,
      },
    ], { maxRestarts: 2, withinMs: 60_000 });
    const supExit = exitOf(node, sup);
    await advance(node, clock, 100); // pool 1 gives up (2 failures); pool 2 starts (failure 1)
    await advance(node, clock, 100); // pool 2 gives up; pool 3 starts
    expect(node.isAlive(sup)).toBe(true);
    await advance(node, clock, 100); // pool 3 gives up: the third restart within 60 s is past maxRestarts 2
    expect(await supExit).toBe('shutdown');
    expect(f.calls()).toBe(6); // two per pool, three pools
    const names = events.events.map((e) => e.event.replace(/^keel\./, ''));
    expect(names).toEqual([
      'resource_pool.crash_loop', 'supervisor.child_restarted',
      'resource_pool.crash_loop', 'supervisor.child_restarted',
      'resource_pool.crash_loop', 'supervisor.shutdown',
    ]);
    expect(events.events.at(-1)!.metadata).toMatchObject({ reason: 'max_restart_intensity' });
    expect(node.registry.whereis('db')).toBeUndefined();
    await advance(node, clock, 10_000);
    expect(f.calls()).toBe(6);
  });
});
