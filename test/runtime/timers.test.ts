/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { type Clock, createNode, GenServer, isDown, realClock, sendSupervised, type TimerHandle } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, fakeLogger, useNodes } from '../support.js';

const track = useNodes();

/** Host timers of a clock that uses the real timers, as the node left them (ref'd or not). */
function realTimersClock(): { clock: Clock; live: Set<NodeJS.Timeout> } {
  const live = new Set<NodeJS.Timeout>();
  const clock: Clock = {
    now: () => realClock.now(),
    setTimer: (ms: number, fn: () => void): TimerHandle => {
      const handle = realClock.setTimer(ms, () => {
        live.delete(handle);
        fn();
      }) as NodeJS.Timeout;
      vi.spyOn(handle, 'ref');
      vi.spyOn(handle, 'unref');
      live.add(handle);
      return handle;
    },
    clearTimer: (handle: TimerHandle) => {
      live.delete(handle as NodeJS.Timeout);
      realClock.clearTimer(handle);
    },
  };
  return { clock, live };
}

function onlyHostTimer(live: Set<NodeJS.Timeout>): NodeJS.Timeout {
  expect(live.size).toBe(1);
  return [...live][0]!;
}

describe('ctx.sendAfter', () => {
  it('delivers after exactly ms on the node’s clock, not a millisecond earlier', async () => {
    const clock = new TestClock({ start: 5_000 });
    const node = track({ clock });
    const p = probe(node);
    p.ctx.sendAfter(p, 'tick', 250);
    await clock.advance(249);
    expect(p.messages).toEqual([]);
    await clock.advance(1);
    expect(p.messages).toEqual(['tick']);
  });

  it('delivers a 0 ms timer at the next advance, even advance(0)', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    p.ctx.sendAfter(p, 'now', 0);
    expect(p.messages).toEqual([]);
    await clock.advance(0);
    expect(p.messages).toEqual(['now']);
  });

  it('fires timers in deadline order, ties in creation order', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const plan: [string, number][] = [
      ['a', 30],
      ['b', 10],
      ['c', 20],
      ['d', 10],
      ['e', 30],
      ['f', 20],
      ['g', 10],
    ];
    for (const [msg, ms] of plan) p.ctx.sendAfter(p, msg, ms);
    await clock.advance(30);
    expect(p.messages).toEqual(['b', 'd', 'g', 'c', 'f', 'a', 'e']);
  });

  it('fires any set of timers sorted by deadline, then creation', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.nat({ max: 40 }), { minLength: 1, maxLength: 30 }), async (delays) => {
        const clock = new TestClock();
        const node = createNode({ clock });
        try {
          const p = probe(node);
          delays.forEach((ms, i) => p.ctx.sendAfter(p, i, ms));
          await clock.advance(40);
          const expected = delays
            .map((ms, i) => ({ ms, i }))
            .sort((x, y) => x.ms - y.ms || x.i - y.i)
            .map((t) => t.i);
          expect(p.messages).toEqual(expected);
        } finally {
          await node.shutdown({ timeoutMs: 1000 });
        }
      }),
      { numRuns: 40 },
    );
  });

  it('resolves a name when the timer fires, not when it is set', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const forwarder = (label: string) => () => (m: unknown) => {
      if (!isDown(m)) node.send(p, { label, m });
    };
    const first = node.spawn(forwarder('first'), { name: 'worker' });
    p.ctx.sendAfter('worker', 'job', 100);
    const ref = p.ctx.monitor(first);
    node.exit(first, 'kill');
    await p.receive((m) => isDown(m) && m.ref === ref);
    node.spawn(forwarder('second'), { name: 'worker' });
    await clock.advance(100);
    expect(await p.receive((m) => typeof m === 'object' && m !== null && 'label' in m)).toEqual({ label: 'second', m: 'job' });
  });

  it('drops the message with keel.message.dropped when the name is not registered as it fires', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    p.ctx.sendAfter('nobody', 'lost', 10);
    await clock.advance(10);
    expect(dropped.events.map((e) => e.metadata)).toEqual([expect.objectContaining({ to: 'nobody', message: 'lost', reason: 'noproc' })]);
  });

  it.each(['kill', 'shutdown'] as const)('dies with its owner process (owner exit %s): never sent, nothing left pending', async (reason) => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const owner = node.spawn((ctx) => {
      ctx.sendAfter(p, 'late', 100);
      ctx.sendAfter(p, 'later', 200);
      ctx.send(p, 'armed');
      return () => {};
    });
    await p.receive((m) => m === 'armed');
    expect(node.internals().timers).toBe(2);
    expect(node.info(owner)?.timers).toBe(2);
    const ref = p.ctx.monitor(owner);
    node.exit(owner, reason);
    await p.receive((m) => isDown(m) && m.ref === ref);
    expect(node.internals().timers).toBe(0);
    await clock.advance(200);
    expect(p.messages.filter((m) => !isDown(m))).toEqual(['armed']);
  });

  it('arms no timer for a process that has already exited (a zombie continuation)', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const zombieCalls = captureEvents(node, ['keel.process.zombie_call']);
    const gate = deferred();
    const resumed = deferred();
    const worker = node.spawn((ctx) => (m) => {
      if (m !== 'go') return;
      ctx.send(p, 'busy');
      return gate.promise.then(() => {
        ctx.sendAfter(p, 'from a zombie', 10);
        resumed.resolve();
      });
    });
    node.send(worker, 'go');
    await p.receive((m) => m === 'busy');
    p.ctx.monitor(worker);
    node.exit(worker, 'kill');
    gate.resolve();
    await resumed.promise;
    expect(zombieCalls.events.map((e) => e.metadata.operation)).toEqual(['sendAfter']);
    expect(node.internals().timers).toBe(0);
    await clock.advance(10);
    expect(p.messages.filter((m) => !isDown(m))).toEqual(['busy']);
  });

  it('arms a delay longer than the host timer range (2^31 - 1 ms) without overflowing the host timer', () => {
    const node = track();
    const p = probe(node);
    const emitWarning = vi.spyOn(process, 'emitWarning').mockImplementation(() => {});
    try {
      p.ctx.sendAfter(p, 'in a month', 30 * 24 * 3600 * 1000);
      expect(emitWarning.mock.calls.filter((c) => JSON.stringify(c).includes('TimeoutOverflowWarning'))).toEqual([]);
    } finally {
      emitWarning.mockRestore();
    }
    expect(node.internals().timers).toBe(1);
  });

  it('refuses a negative or non-finite delay with ERR_INVALID_ARGUMENT', () => {
    const node = track({ clock: new TestClock() });
    const p = probe(node);
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => p.ctx.sendAfter(p, 'x', -1)).toThrow(invalid);
    expect(() => p.ctx.sendAfter(p, 'x', Number.NaN)).toThrow(invalid);
    expect(() => p.ctx.sendAfter(p, 'x', Infinity)).toThrow(invalid);
    expect(node.internals().timers).toBe(0);
  });
});

describe('ctx.cancelTimer', () => {
  it('returns true for a pending timer, whose message is then never sent', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const t = p.ctx.sendAfter(p, 'cancelled', 50);
    expect(p.ctx.cancelTimer(t)).toBe(true);
    expect(node.internals().timers).toBe(0);
    await clock.advance(50);
    expect(p.messages).toEqual([]);
  });

  it('returns false once the timer has fired', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const t = p.ctx.sendAfter(p, 'fired', 50);
    await clock.advance(50);
    expect(p.messages).toEqual(['fired']);
    expect(p.ctx.cancelTimer(t)).toBe(false);
  });

  it('returns false for a timer already cancelled', () => {
    const node = track({ clock: new TestClock() });
    const p = probe(node);
    const t = p.ctx.sendAfter(p, 'x', 50);
    p.ctx.cancelTimer(t);
    expect(p.ctx.cancelTimer(t)).toBe(false);
  });
});

describe('node timers', () => {
  it('keep at most one timer on the clock however many are pending', async () => {
    const clock = new TestClock();
    const setTimer = clock.setTimer.bind(clock);
    const clearTimer = clock.clearTimer.bind(clock);
    const live = new Set<TimerHandle>();
    let maxLive = 0;
    vi.spyOn(clock, 'setTimer').mockImplementation((ms, fn) => {
      const handle = setTimer(ms, () => {
        live.delete(handle);
        fn();
      });
      live.add(handle);
      maxLive = Math.max(maxLive, live.size);
      return handle;
    });
    vi.spyOn(clock, 'clearTimer').mockImplementation((handle) => {
      live.delete(handle);
      clearTimer(handle);
    });
    const node = track({ clock });
    const p = probe(node);
    // deadlines in a scrambled order, so that many of them become the new earliest
    for (let i = 0; i < 1_000; i++) p.ctx.sendAfter(p, i, 1 + ((i * 7_919) % 1_000));
    expect(node.internals().timers).toBe(1_000);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1_000);
    expect(p.messages).toHaveLength(1_000);
    expect(clock.pendingTimers).toBe(0);
    expect(maxLive).toBe(1);
  });

  it('keep one timer per node on a clock two nodes share', () => {
    const clock = new TestClock();
    const a = probe(track({ clock }));
    const b = probe(track({ clock }));
    for (let i = 0; i < 100; i++) {
      a.ctx.sendAfter(a, i, 10 + i);
      b.ctx.sendAfter(b, i, 500 - i);
    }
    expect(clock.pendingTimers).toBe(2);
  });

  it('unref() the host timer while only service timers are pending', () => {
    const { clock, live } = realTimersClock();
    const node = track({ clock });
    node.setTimer(60_000, () => {}, true);
    node.setTimer(30_000, () => {}, true);
    const host = onlyHostTimer(live);
    expect(host.hasRef()).toBe(false);
    expect(host.unref).toHaveBeenCalled();
  });

  it('ref() the host timer while a process timer is pending, and unref() it again when none is left', async () => {
    const { clock, live } = realTimersClock();
    const node = track({ clock });
    const p = probe(node);
    node.setTimer(30_000, () => {}, true);
    const t = p.ctx.sendAfter(p, 'x', 60_000); // later than the service timer: the same host timer
    expect(onlyHostTimer(live).hasRef()).toBe(true);
    p.ctx.cancelTimer(t);
    // tidied at the next turn of the event loop (a deadline set and cancelled per call costs no host-timer work)
    await node.idle();
    expect(onlyHostTimer(live).hasRef()).toBe(false);
  });

  it('keep the host timer ref()ed when an earlier process timer replaces it', () => {
    const { clock, live } = realTimersClock();
    const node = track({ clock });
    const p = probe(node);
    node.setTimer(60_000, () => {}, true);
    p.ctx.sendAfter(p, 'x', 30_000);
    expect(onlyHostTimer(live).hasRef()).toBe(true);
  });

  it('setTimer(ms, fn) without the unref flag is ref()ed like setTimeout (call timeouts keep the OS process alive)', () => {
    const { clock, live } = realTimersClock();
    const node = track({ clock });
    node.setTimer(60_000, () => {});
    expect(onlyHostTimer(live).hasRef()).toBe(true);
  });

  it('log a throwing timer callback and still fire the timers due with it', async () => {
    const clock = new TestClock();
    const logger = fakeLogger();
    const node = track({ clock, logger });
    const fired: string[] = [];
    const bug = new Error('timer bug');
    node.setTimer(10, () => {
      throw bug;
    });
    node.setTimer(10, () => fired.push('same deadline'));
    node.setTimer(20, () => fired.push('later'));
    await clock.advance(20);
    expect(fired).toEqual(['same deadline', 'later']);
    expect(logger.error).toHaveBeenCalledWith(expect.any(String), bug);
  });

  it('are all cancelled by node.shutdown, leaving nothing on the clock', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const fired: string[] = [];
    node.setTimer(10, () => fired.push('service'), true);
    p.ctx.sendAfter(p, 'process', 10);
    expect(clock.pendingTimers).toBe(1);
    await node.shutdown();
    expect(node.internals().timers).toBe(0);
    expect(clock.pendingTimers).toBe(0);
    await clock.advance(10);
    expect(fired).toEqual([]);
  });

  it('setTimer runs its callback on the node’s clock and cancel() stops it', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const fired: string[] = [];
    node.setTimer(20, () => fired.push('kept'), true);
    const cancelled = node.setTimer(10, () => fired.push('cancelled'), true);
    expect(cancelled.cancel()).toBe(true);
    expect(cancelled.cancel()).toBe(false);
    await clock.advance(19);
    expect(fired).toEqual([]);
    await clock.advance(1);
    expect(fired).toEqual(['kept']);
  });
});

/** A clock over a TestClock whose now() ('clock gone') or setTimer ('no timers now') throws while `fault.in` names it. */
function faultyClock(): { inner: TestClock; clock: Clock; fault: { in: 'now' | 'setTimer' | 'clearTimer' | undefined } } {
  const inner = new TestClock({ start: 0 });
  const fault: { in: 'now' | 'setTimer' | 'clearTimer' | undefined } = { in: undefined };
  const clock: Clock = {
    now: () => {
      if (fault.in === 'now') throw new Error('clock gone');
      return inner.now();
    },
    setTimer: (ms, fn) => {
      if (fault.in === 'setTimer') throw new Error('no timers now');
      return inner.setTimer(ms, fn);
    },
    clearTimer: (h) => {
      if (fault.in === 'clearTimer') throw new Error('cannot clear');
      inner.clearTimer(h);
    },
  };
  return { inner, clock, fault };
}

describe('bad values from an injected random or clock', () => {
  const BAD = [NaN, 1.5, -0.1, Infinity, '0.5' as unknown as number, undefined as unknown as number];

  it.each(BAD.map((v) => [String(v), v]))('node.random() refuses %s from the injected generator with ERR_INVALID_ARGUMENT', (_label, value) => {
    const node = track({ random: () => value });
    expect(() => node.random()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('random()') }));
  });

  it('a NaN drawn for a retry delay rejects that send with a typed error, and every other timer still fires', async () => {
    const clock = new TestClock({ start: 0 });
    let nan = false;
    const node = track({ clock, random: () => (nan ? NaN : 0.5) });
    const server = await GenServer.start(node, { init: () => 0, handleCall: () => ({ noreply: true as const, state: 0 }) });
    nan = true;
    const failed = await sendSupervised(node, 'nobody', 'x', { retries: 3 }).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect(failed).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(String((failed as Error).message)).toContain('NaN');
    // the heap is intact: a call's timeout and a sendAfter still fire on time
    const call = GenServer.call(node, server, 'hang', { timeout: 100 }).then(
      () => 'replied',
      (e: unknown) => (e as { code?: string }).code,
    );
    const p = probe(node);
    p.ctx.sendAfter(p, 'tick', 50);
    await clock.advance(50);
    expect(await p.receive()).toBe('tick');
    await clock.advance(50);
    expect(await call).toBe('ERR_CALL_TIMEOUT');
  });

  it('a delay that is not a finite number >= 0 never reaches the heap', () => {
    const node = track();
    for (const ms of [NaN, -1, Infinity]) expect(() => node.setTimer(ms, () => undefined)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(node.internals().timers).toBe(0);
  });

  it.each([
    ['NaN', NaN],
    ["a numeric string, whose deadline would be the text '510', ordered as text", '5'],
  ])('a clock whose now() is %s is refused when a timer is set, and the heap stays empty', (_label, now) => {
    const clock: Clock = { now: () => now as number, setTimer: realClock.setTimer, clearTimer: realClock.clearTimer };
    const node = track({ clock, services: false });
    const p = probe(node);
    expect(() => p.ctx.sendAfter(p, 'x', 10)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('clock.now()') }));
    expect(node.internals().timers).toBe(0);
  });

  it('a sendAfter whose host timer the clock refused to set leaves nothing behind: its message is never sent later', async () => {
    const { inner, clock, fault } = faultyClock();
    const node = track({ clock, services: false });
    const p = probe(node);
    p.ctx.sendAfter(p, 'pending before', 30);
    fault.in = 'setTimer';
    expect(() => p.ctx.sendAfter(p, 'refused', 10)).toThrow('no timers now');
    expect(node.internals().timers).toBe(1);
    expect(node.info(p)?.timers).toBe(1);
    fault.in = undefined;
    p.ctx.sendAfter(p, 'later', 20);
    await inner.advance(30);
    await node.idle();
    expect(p.messages).toEqual(['later', 'pending before']);
  });

  it('a clock that throws while the node\'s host timer fires is logged, loses no timer, and the next timer set brings them all back', async () => {
    const { inner, clock, fault } = faultyClock();
    const logger = fakeLogger();
    const node = track({ clock, logger, services: false });
    const p = probe(node);
    p.ctx.sendAfter(p, 'a', 10);
    p.ctx.sendAfter(p, 'b', 20);
    p.ctx.sendAfter(p, 'c', 30);
    fault.in = 'now';
    await inner.advance(10); // the host timer fires, the clock throws: nothing is lost, nothing escapes
    fault.in = undefined;
    expect(node.internals().timers).toBe(3);
    expect(logger.error).toHaveBeenCalledWith(`the clock of node ${node.name} threw; its timers wait until the next one is set`, expect.objectContaining({ message: 'clock gone' }));
    p.ctx.sendAfter(p, 'd', 5); // the next timer set arms the host timer again
    await inner.advance(5);
    await node.idle();
    expect(p.messages).toEqual(['a', 'd']);
    fault.in = 'setTimer';
    await inner.advance(5); // 'b' is due: it fires, and re-arming for 'c' is refused
    fault.in = undefined;
    await node.idle();
    expect(p.messages).toEqual(['a', 'd', 'b']);
    expect(logger.error).toHaveBeenCalledWith(`the clock of node ${node.name} threw; its timers wait until the next one is set`, expect.objectContaining({ message: 'no timers now' }));
    p.ctx.sendAfter(p, 'e', 100);
    await inner.advance(100);
    await node.idle();
    expect(p.messages).toEqual(['a', 'd', 'b', 'c', 'e']);
    expect(node.internals().timers).toBe(0);
  });
  it('a clock whose clearTimer throws when the node stops is logged, and the shutdown still completes', async () => {
    const { clock, fault } = faultyClock();
    const logger = fakeLogger();
    const node = track({ clock, logger, services: false });
    const p = probe(node);
    p.ctx.sendAfter(p, 'never', 1000); // the host timer is armed: stopping clears it
    const events = captureEvents(node, ['keel.node.shutdown']);
    fault.in = 'clearTimer';
    await expect(node.shutdown()).resolves.toBeUndefined();
    fault.in = undefined;
    expect(node.stopped).toBe(true);
    expect(events.events.map((e) => e.event)).toEqual(['keel.node.shutdown']);
    expect(logger.error).toHaveBeenCalledWith(`the clock of node ${node.name} threw clearing its host timer`, expect.objectContaining({ message: 'cannot clear' }));
  });

  it("a host timer whose ref() throws is logged, not thrown from the schedule, and known to be still unref'd (no unref() for it at the next turn)", async () => {
    const inner = new TestClock({ start: 0 });
    const refusing = { on: false };
    const clock: Clock = {
      now: () => inner.now(),
      setTimer: (ms, fn) => {
        const h = inner.setTimer(ms, fn);
        const fail = (what: string) => () => {
          if (refusing.on) throw new Error(`no ${what}`);
        };
        return { h, ref: fail('ref'), unref: fail('unref') };
      },
      clearTimer: (x) => inner.clearTimer((x as { h: unknown }).h as never),
    };
    const logger = fakeLogger();
    const node = track({ clock, logger, services: false }) as unknown as ReturnType<typeof track> & { setTimer(ms: number, fn: () => void, unref?: boolean): { cancel(): boolean } };
    const fired: string[] = [];
    node.setTimer(100, () => fired.push('unref'), true); // the host timer is armed unref'd
    refusing.on = true;
    const held = node.setTimer(200, () => fired.push('ref')); // a ref'd timer refs the host timer
    // only unref'd ones left: the host timer, still unref'd (its ref() threw), is left as it is at the next turn
    expect(held.cancel()).toBe(true);
    await new Promise<void>((resolve) => setImmediate(resolve));
    refusing.on = false;
    expect(logger.error.mock.calls.map((c: unknown[]) => [c[0], (c[1] as Error).message])).toEqual([[`the clock of node ${node.name} threw ref()ing its host timer`, 'no ref']]);
    await inner.advance(100);
    expect(fired).toEqual(['unref']); // the timers still work
  });

  it("a clock whose host timers cannot be unref()ed: logged once, saying the node's background timers then keep the OS process alive, and every timer still fires", async () => {
    const inner = new TestClock({ start: 0 });
    const refusing = { on: true };
    let unrefs = 0;
    const clock: Clock = {
      now: () => inner.now(),
      setTimer: (ms, fn) => ({
        h: inner.setTimer(ms, fn),
        ref: () => undefined,
        unref: () => {
          unrefs++;
          if (refusing.on) throw new Error('no unref');
        },
      }),
      clearTimer: (x) => inner.clearTimer((x as { h: unknown }).h as never),
    };
    const logger = fakeLogger();
    const node = track({ clock, logger, services: false }) as unknown as ReturnType<typeof track> & { setTimer(ms: number, fn: () => void, unref?: boolean): { cancel(): boolean } };
    const fired: number[] = [];
    // background (unref) timers only: each one is armed in turn on a host timer of its own, whose unref throws
    for (let i = 1; i <= 3; i++) node.setTimer(100 * i, () => fired.push(i), true);
    // a ref'd timer comes and goes: once it is cancelled, the host timer is unref()ed again (it throws again)
    expect(node.setTimer(150, () => fired.push(-1)).cancel()).toBe(true);
    await node.idle();
    await new Promise<void>((resolve) => setImmediate(resolve));
    await inner.advance(300);
    expect(fired).toEqual([1, 2, 3]);
    // tried at every host timer (a clock that recovers is used again), told once
    expect(unrefs).toBe(4);
    expect(logger.error.mock.calls.map((c: unknown[]) => [c[0], (c[1] as Error).message])).toEqual([
      [
        `the clock of node ${node.name} threw unref()ing its host timer, which stays ref'd: the node's background timers (heartbeats, retries, checks) keep the OS process alive until the node shuts down (logged once)`,
        'no unref',
      ],
    ]);
    // the clock recovers: its next host timer is unref()ed, and nothing more is logged
    refusing.on = false;
    node.setTimer(100, () => fired.push(4), true);
    await inner.advance(100);
    expect(fired).toEqual([1, 2, 3, 4]);
    expect(unrefs).toBe(5);
    expect(logger.error).toHaveBeenCalledTimes(1);
  });

  it('a clock whose clearTimer throws when the last timer is cancelled is logged, not thrown at the next turn of the event loop', async () => {
    const { inner, clock, fault } = faultyClock();
    const logger = fakeLogger();
    const node = track({ clock, logger, services: false });
    const p = probe(node);
    const t = p.ctx.sendAfter(p, 'cancelled', 1000);
    fault.in = 'clearTimer';
    expect(p.ctx.cancelTimer(t)).toBe(true); // the heap is empty: its host timer is cleared at the next turn
    await node.idle();
    fault.in = undefined;
    expect(logger.error).toHaveBeenCalledWith(`the clock of node ${node.name} threw clearing its host timer`, expect.objectContaining({ message: 'cannot clear' }));
    p.ctx.sendAfter(p, 'later', 10); // timers still work
    await inner.advance(1000);
    await node.idle();
    expect(p.messages).toEqual(['later']);
  });
});
