/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the test kit, whose probes are raw processes that send and monitor */
import { describe, expect, it } from 'vitest';
import { isDown } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

describe('TestClock', () => {
  it('starts at `start`', () => {
    expect(new TestClock({ start: 1_700_000_000_000 }).now()).toBe(1_700_000_000_000);
  });

  it('starts at 0 without options', () => {
    expect(new TestClock().now()).toBe(0);
  });

  it('does not move by itself', () => {
    const clock = new TestClock({ start: 10 });
    let fired = false;
    clock.setTimer(0, () => {
      fired = true;
    });
    expect(clock.now()).toBe(10);
    expect(fired).toBe(false);
  });

  it('refuses a start that is not a finite number with ERR_INVALID_ARGUMENT', () => {
    expect(() => new TestClock({ start: Number.NaN })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('refuses options that are not an object with ERR_INVALID_ARGUMENT', () => {
    expect(() => new TestClock(null as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('refuses an option it does not know (a clock started at 5000 with { now: 5000 } started at 0) and options it cannot read, with ERR_INVALID_ARGUMENT naming the option', () => {
    expect(() => new TestClock({ now: 5000 } as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('options.now') as unknown }));
    const getter = {
      get start(): number {
        throw new Error('getter');
      },
    };
    expect(() => new TestClock(getter)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('options.start') as unknown }));
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(() => new TestClock(proxy)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
  });

  it('refuses a timer whose delay is NaN or whose callback is not a function, as a SimulatedClock does', () => {
    const clock = new TestClock({ start: 0 });
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => clock.setTimer(Number.NaN, () => undefined)).toThrow(invalid);
    expect(() => clock.setTimer('5' as never, () => undefined)).toThrow(invalid);
    expect(() => clock.setTimer(5, 'fn' as never)).toThrow(invalid);
    expect(clock.pendingTimers).toBe(0);
  });

  it('refuses a delay that makes the deadline infinite, as a SimulatedClock does: that timer was pending for ever, never due', async () => {
    const clock = new TestClock({ start: 0 });
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => clock.setTimer(Infinity, () => undefined)).toThrow(invalid);
    expect(clock.pendingTimers).toBe(0);
    const fired: number[] = [];
    clock.setTimer(Number.MAX_VALUE, () => fired.push(clock.now()));
    await clock.advance(Number.MAX_VALUE);
    expect(fired).toEqual([Number.MAX_VALUE]);
    // from there any further positive delay would end past the largest finite time
    expect(() => clock.setTimer(Number.MAX_VALUE, () => undefined)).toThrow(invalid);
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('TestClock.advance', () => {
  it('rejects an advance that would move now() past the largest finite time, and leaves now() where it was', async () => {
    const clock = new TestClock({ start: 0 });
    await clock.advance(Number.MAX_VALUE);
    await expect(clock.advance(Number.MAX_VALUE)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(clock.now()).toBe(Number.MAX_VALUE);
  });

  it('moves now() forward by ms', async () => {
    const clock = new TestClock({ start: 100 });
    await clock.advance(250);
    expect(clock.now()).toBe(350);
  });

  it('fires the due timers in time order, each at its own time', async () => {
    const clock = new TestClock({ start: 1_000 });
    const fired: [string, number][] = [];
    clock.setTimer(30, () => fired.push(['c', clock.now()]));
    clock.setTimer(10, () => fired.push(['a', clock.now()]));
    clock.setTimer(20, () => fired.push(['b', clock.now()]));
    clock.setTimer(20, () => fired.push(['b2', clock.now()]));
    await clock.advance(30);
    expect(fired).toEqual([
      ['a', 1_010],
      ['b', 1_020],
      ['b2', 1_020],
      ['c', 1_030],
    ]);
  });

  it('leaves the timers due after the window pending', async () => {
    const clock = new TestClock();
    const fired: string[] = [];
    clock.setTimer(10, () => fired.push('in'));
    clock.setTimer(11, () => fired.push('out'));
    await clock.advance(10);
    expect(fired).toEqual(['in']);
    expect(clock.pendingTimers).toBe(1);
    await clock.advance(1);
    expect(fired).toEqual(['in', 'out']);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires a timer scheduled during the advance when it falls inside the window', async () => {
    const clock = new TestClock();
    const fired: [string, number][] = [];
    clock.setTimer(10, () => {
      fired.push(['first', clock.now()]);
      clock.setTimer(5, () => fired.push(['inside', clock.now()]));
      clock.setTimer(15, () => fired.push(['outside', clock.now()]));
    });
    await clock.advance(20);
    expect(fired).toEqual([
      ['first', 10],
      ['inside', 15],
    ]);
    expect(clock.pendingTimers).toBe(1);
  });

  it('fires every due timer and ends at its target when a timer throws, then rejects with the first error thrown', async () => {
    const clock = new TestClock();
    const fired: [string, number][] = [];
    const first = new Error('first');
    clock.setTimer(1, () => {
      throw first;
    });
    clock.setTimer(2, () => fired.push(['after', clock.now()]));
    clock.setTimer(3, () => {
      throw new Error('second');
    });
    clock.setTimer(4, () => fired.push(['last', clock.now()]));
    // before: the advance stopped at the first throw, now() 1 and the timers after it left for a later advance
    await expect(clock.advance(5)).rejects.toBe(first);
    expect(fired).toEqual([
      ['after', 2],
      ['last', 4],
    ]);
    expect(clock.now()).toBe(5);
    expect(clock.pendingTimers).toBe(0);
  });

  it('fires n timers set on it directly with O(n log n) work, in (time, order set) order: each fire scanned every pending timer (about n² reads: 100,000 timers took about 18 s)', async () => {
    const clock = new TestClock();
    const n = 4096;
    let reads = 0;
    const fired: number[] = [];
    // deadlines out of order, 16 timers at each instant: those at one instant fire in the order they were set
    for (let i = 0; i < n; i++) {
      const handle = clock.setTimer((i * 37) % 256, () => fired.push(i)) as { at: number };
      // the handle is the timer: count every read of its deadline the advance makes
      const at = handle.at;
      Object.defineProperty(handle, 'at', {
        get: () => {
          reads++;
          return at;
        },
      });
    }
    await clock.advance(256);
    const expected = Array.from({ length: n }, (_, i) => i).sort((a, b) => ((a * 37) % 256) - ((b * 37) % 256) || a - b);
    expect(fired).toEqual(expected);
    // a heap's removal compares about twice per level (log2 4096 = 12), two deadlines each: 227,278
    // reads here, under 6 * 12 * 4096 = 294,912; the scan of every pending timer read 41,918,717
    expect(reads).toBeLessThanOrEqual(6 * 12 * n);
    expect(clock.pendingTimers).toBe(0);
  });

  it('clears a timer in the middle of many, and refuses handles that are not its own pending timers', async () => {
    const clock = new TestClock();
    const other = new TestClock();
    const fired: number[] = [];
    const handles = Array.from({ length: 100 }, (_, i) => clock.setTimer(100 - i, () => fired.push(i)));
    for (const i of [0, 50, 99]) clock.clearTimer(handles[i]);
    clock.clearTimer(handles[0]); // twice: nothing more
    clock.clearTimer(other.setTimer(1, () => undefined));
    clock.clearTimer({ at: 0, seq: 1, index: 0 });
    clock.clearTimer(undefined);
    expect(clock.pendingTimers).toBe(97);
    await clock.advance(100);
    expect(fired).toEqual(Array.from({ length: 100 }, (_, i) => 99 - i).filter((i) => i !== 0 && i !== 50 && i !== 99));
    expect(other.pendingTimers).toBe(1);
  });

  it('does not fire a cleared timer', async () => {
    const clock = new TestClock();
    const fired: string[] = [];
    const handle = clock.setTimer(5, () => fired.push('cleared'));
    clock.clearTimer(handle);
    await clock.advance(10);
    expect(fired).toEqual([]);
  });

  it('clearTimer with a timer of another TestClock leaves this clock’s timers alone', async () => {
    const a = new TestClock();
    const b = new TestClock();
    const fired: string[] = [];
    a.setTimer(5, () => fired.push('a'));
    const ofB = b.setTimer(5, () => fired.push('b'));
    a.clearTimer(ofB);
    expect(a.pendingTimers).toBe(1);
    await a.advance(5);
    await b.advance(5);
    expect(fired).toEqual(['a', 'b']);
  });

  it('rejects an advance whose timers set themselves again at no delay past loopLimit at one instant (ERR_DEADLOCK), where it ran for ever: now() stays there, the loop stays pending', async () => {
    const clock = new TestClock({ start: 100, loopLimit: 50 });
    const node = track({ clock });
    let ticks = 0;
    const spinner = node.spawn<'spin'>((ctx) => () => {
      ticks++;
      ctx.sendAfter(ctx.self, 'spin', 0);
    });
    node.send(spinner, 'spin');
    await node.idle();
    const error = await clock.advance(10).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_DEADLOCK', message: 'TestClock.advance fired 50 timers at 100 ms without time moving (a timer that sets itself again at no delay?): it would wait for itself forever' });
    expect(ticks).toBe(51); // the first, by send; then 50 timers at the same instant (the 51st is refused)
    expect(clock.now()).toBe(100);
    expect(clock.pendingTimers).toBe(1);
    // many timers at one instant within the limit, and time moving, are fine
    node.exit(spinner, 'kill');
    const fired: number[] = [];
    for (let i = 0; i < 50; i++) clock.setTimer(0, () => fired.push(i));
    clock.setTimer(5, () => fired.push(-1));
    await clock.advance(10);
    expect(fired).toEqual([...Array.from({ length: 50 }, (_, i) => i), -1]);
    expect(clock.now()).toBe(110);
  });

  it('refuses a loopLimit that is not a whole number >= 1 (ERR_INVALID_ARGUMENT)', () => {
    for (const loopLimit of [0, -1, 1.5, Number.NaN, Infinity, '10']) {
      expect(() => new TestClock({ loopLimit: loopLimit as number })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    }
  });

  it('lets a node run until nothing is runnable between timers: a chain of sendAfter fires within one advance', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const ticker = node.spawn<number>((ctx) => (n) => {
      if (typeof n !== 'number') return;
      ctx.send(p, { tick: n, at: clock.now() });
      if (n < 5) ctx.sendAfter(ctx.self, n + 1, 10);
    });
    node.send(ticker, 1);
    await clock.advance(40);
    expect(p.messages).toEqual([
      { tick: 1, at: 0 },
      { tick: 2, at: 10 },
      { tick: 3, at: 20 },
      { tick: 4, at: 30 },
      { tick: 5, at: 40 },
    ]);
  });

  it('fires a node timer far in the future in one step: no wake-up every 2^31 - 1 ms (a host timer’s limit) on the way', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    p.ctx.sendAfter(p, 'late', 1e300);
    expect(clock.pendingTimers).toBe(1);
    // 1e300 / 2^31 wake-ups: the advance never ended
    await clock.advance(1e300);
    expect(p.messages).toEqual(['late']);
    expect(clock.now()).toBe(1e300);
  });

  it('lets the messages a timer caused be handled before the next timer fires', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const seenAtSecondTimer: unknown[] = [];
    const relay = node.spawn<string>((ctx) => (m) => {
      if (m === 'hop1') ctx.send(ctx.self, 'hop2');
      else if (m === 'hop2') ctx.send(p, 'relayed');
    });
    clock.setTimer(10, () => node.send(relay, 'hop1'));
    clock.setTimer(10, () => seenAtSecondTimer.push(...p.messages));
    await clock.advance(10);
    expect(seenAtSecondTimer).toEqual(['relayed']);
  });

  it('lets the nodes run before firing anything', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const seenAtTimer: unknown[] = [];
    node.send(p, 'queued before the advance');
    clock.setTimer(0, () => seenAtTimer.push(...p.messages));
    await clock.advance(0);
    expect(seenAtTimer).toEqual(['queued before the advance']);
  });

  it('serialises concurrent calls: the second advance starts where the first ended', async () => {
    const clock = new TestClock();
    const log: string[] = [];
    clock.setTimer(5, () => log.push(`timer@${clock.now()}`));
    clock.setTimer(15, () => log.push(`timer@${clock.now()}`));
    const first = clock.advance(10).then(() => log.push(`first done@${clock.now()}`));
    const second = clock.advance(10).then(() => log.push(`second done@${clock.now()}`));
    await Promise.all([first, second]);
    expect(log).toEqual(['timer@5', 'first done@10', 'timer@15', 'second done@20']);
    expect(clock.now()).toBe(20);
  });

  it('settles a node under a TestClock so that a Down caused by a timer is already there', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const worker = node.spawn((ctx) => {
      ctx.sendAfter(ctx.self, 'stop', 100);
      return (m) => {
        if (m === 'stop') ctx.exit();
      };
    });
    p.ctx.monitor(worker);
    await clock.advance(100);
    expect(p.messages.filter(isDown).map((d) => d.reason)).toEqual(['normal']);
  });

  it.each([-1, Number.NaN, Infinity, '5'])('refuses ms = %s with ERR_INVALID_ARGUMENT', async (ms) => {
    const clock = new TestClock();
    await expect(async () => clock.advance(ms as number)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(clock.now()).toBe(0);
  });
});
