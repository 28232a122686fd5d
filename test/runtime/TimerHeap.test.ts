// The node's timer heap on its own: a binary min-heap on (deadline, sequence) behind one host timer
// of a hand-made clock that records every host timer it is asked for (its delay, whether it is
// ref()ed) and fires one only when the test says so.
import { describe, expect, it } from 'vitest';
import type { Clock, TimerHandle } from '../../src/runtime/Clock.js';
import { type TimerEntry, TimerHeap } from '../../src/runtime/internal/TimerHeap.js';
import { expectKeelError, seeded, shuffle, thrown } from '../support.js';

/** A host timer of the fake clock. */
interface HostTimer {
  readonly ms: number;
  readonly fn: () => void;
  refed: boolean;
  cleared: boolean;
  ref(): void;
  unref(): void;
}

/** A clock that moves only by `set(now)`, records its host timers and fires the pending one by `fire()`. */
class FakeClock implements Clock {
  current: number;
  readonly timers: HostTimer[] = [];
  constructor(start = 1000) {
    this.current = start;
  }
  now(): number {
    return this.current;
  }
  setTimer(ms: number, fn: () => void): TimerHandle {
    const t: HostTimer = {
      ms,
      fn,
      refed: true,
      cleared: false,
      ref() {
        t.refed = true;
      },
      unref() {
        t.refed = false;
      },
    };
    this.timers.push(t);
    return t;
  }
  clearTimer(handle: TimerHandle): void {
    (handle as HostTimer).cleared = true;
  }
  /** The host timers set and not cleared (the heap keeps at most one). */
  pending(): HostTimer[] {
    return this.timers.filter((t) => !t.cleared);
  }
  /** The one pending host timer. */
  host(): HostTimer {
    const p = this.pending();
    expect(p).toHaveLength(1);
    return p[0]!;
  }
  /** Moves to `at` and fires the pending host timer, as the host would once its delay passed. */
  fireAt(at: number): void {
    const t = this.host();
    this.current = at;
    t.cleared = true; // a fired host timer is spent
    t.fn();
  }
}

/** A heap on a fake clock, with the errors its callbacks threw. */
function heapOn(clock = new FakeClock()): { heap: TimerHeap; clock: FakeClock; errors: unknown[] } {
  const errors: unknown[] = [];
  return { heap: new TimerHeap(clock, (e) => errors.push(e)), clock, errors };
}

/** One turn of the event loop: a setImmediate queued now runs after every setImmediate queued before it. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

describe('TimerHeap order', () => {
  it('fires the due timers in deadline order, ties in scheduling order, each with its receiver as this', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const record = function (this: string): void {
      fired.push(this);
    };
    heap.schedule(30, record, false, 'c');
    heap.schedule(10, record, false, 'a1');
    heap.schedule(20, record, false, 'b');
    heap.schedule(10, record, false, 'a2');
    heap.schedule(0, record, false, 'zero');
    heap.schedule(10, record, false, 'a3');
    expect(heap.size).toBe(6);
    clock.fireAt(1000);
    expect(fired).toEqual(['zero']);
    expect(clock.host().ms).toBe(10); // re-armed for the next deadline, 10 ms away
    clock.fireAt(1030); // late: everything due fires in one wake, in order
    expect(fired).toEqual(['zero', 'a1', 'a2', 'a3', 'b', 'c']);
    expect(heap.size).toBe(0);
    expect(clock.pending()).toEqual([]);
  });

  it('fires nothing before its deadline: a host wake-up a millisecond early re-arms for the rest', () => {
    const { heap, clock } = heapOn();
    const fired: number[] = [];
    heap.schedule(100, () => fired.push(100));
    expect(clock.host().ms).toBe(100);
    clock.fireAt(1099);
    expect(fired).toEqual([]);
    expect(heap.size).toBe(1);
    expect(clock.host().ms).toBe(1);
    clock.fireAt(1100);
    expect(fired).toEqual([100]);
  });

  it('keeps exact (deadline, sequence) order through growth, random cancels and shrink (2000 timers)', () => {
    const random = seeded(20250101);
    const { heap, clock } = heapOn();
    const fired: number[] = [];
    const all: { entry: TimerEntry; at: number; seq: number }[] = [];
    for (let i = 0; i < 2000; i++) {
      // few distinct deadlines, so that many ties are broken by sequence
      const ms = Math.floor(random() * 50);
      const entry = heap.schedule(ms, () => fired.push(i));
      expect(entry.at).toBe(1000 + ms);
      expect(entry.seq).toBe(i);
      all.push({ entry, at: entry.at, seq: i });
    }
    expect(heap.size).toBe(2000);
    const cancelled = new Set(shuffle(all, random).slice(0, 700).map((t) => t.seq));
    for (const t of all) if (cancelled.has(t.seq)) expect(heap.cancel(t.entry)).toBe(true);
    expect(heap.size).toBe(1300);
    // every pending entry knows its place in the heap
    heap.entries().forEach((e, i) => expect(e.index).toBe(i));
    clock.fireAt(1000 + 49);
    const expected = all
      .filter((t) => !cancelled.has(t.seq))
      .sort((x, y) => x.at - y.at || x.seq - y.seq)
      .map((t) => t.seq);
    expect(fired).toEqual(expected);
    expect(heap.size).toBe(0);
    for (const t of all) expect(t.entry.index).toBe(-1);
  });
});

describe('TimerHeap host timer', () => {
  it('keeps one host timer for any number of timers, and re-arms only for an earlier deadline', () => {
    const { heap, clock } = heapOn();
    heap.schedule(500, () => undefined);
    expect(clock.timers.map((t) => t.ms)).toEqual([500]);
    heap.schedule(800, () => undefined);
    heap.schedule(500, () => undefined); // the same deadline: the armed host timer serves it
    expect(clock.timers.map((t) => t.ms)).toEqual([500]);
    heap.schedule(200, () => undefined);
    expect(clock.timers.map((t) => [t.ms, t.cleared])).toEqual([
      [500, true],
      [200, false],
    ]);
    expect(heap.size).toBe(4);
  });

  it('caps the host delay at 2^31 - 1 ms: a longer timer wakes then, finds nothing due, and re-arms for the rest', () => {
    const { heap, clock } = heapOn(new FakeClock(0));
    const fired: string[] = [];
    const max = 2 ** 31 - 1;
    heap.schedule(2 ** 32, () => fired.push('late'));
    expect(clock.host().ms).toBe(max);
    clock.fireAt(max);
    expect(fired).toEqual([]);
    expect(clock.host().ms).toBe(max);
    clock.fireAt(2 * max);
    expect(clock.host().ms).toBe(2 ** 32 - 2 * max); // 2 ms
    clock.fireAt(2 ** 32);
    expect(fired).toEqual(['late']);
  });

  it('takes the largest finite delay (Number.MAX_VALUE) as a timer that never comes due within the host range', () => {
    const { heap, clock } = heapOn(new FakeClock(0));
    const entry = heap.schedule(Number.MAX_VALUE, () => undefined);
    expect(entry.at).toBe(Number.MAX_VALUE);
    expect(clock.host().ms).toBe(2 ** 31 - 1);
    expect(heap.cancel(entry)).toBe(true);
  });

  it('arms a timer that came due while callbacks ran (a slow callback) with a delay of 0, never a negative one', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    heap.schedule(10, () => {
      fired.push('slow');
      clock.current += 100; // the callback took 100 ms
    });
    heap.schedule(15, () => fired.push('overdue'));
    clock.fireAt(1010);
    expect(fired).toEqual(['slow']); // the wake fires what was due when it began
    expect(clock.host().ms).toBe(0); // 1015 - 1110 is -95: armed at once instead
    clock.fireAt(1110);
    expect(fired).toEqual(['slow', 'overdue']);
  });

  it('unref()s the host timer while only unref timers are pending, and ref()s it for a ref timer', () => {
    const { heap, clock } = heapOn();
    const service = heap.schedule(100, () => undefined, true);
    expect(clock.host().refed).toBe(false);
    // a later ref'd timer: the same host timer, now ref()ed
    const call = heap.schedule(300, () => undefined);
    expect(clock.timers).toHaveLength(1);
    expect(clock.host().refed).toBe(true);
    // the unref one fires; the host timer for the ref'd one is ref()ed
    clock.fireAt(1100);
    expect(service.index).toBe(-1);
    expect(clock.host()).toMatchObject({ ms: 200, refed: true });
    expect(heap.cancel(call)).toBe(true);
    // an earlier unref timer replaces the host timer: unref()ed, as nothing ref'd is left
    heap.schedule(50, () => undefined, true);
    expect(clock.host()).toMatchObject({ ms: 50, refed: false });
  });

  it('after a cancel leaves only unref timers, unref()s the host timer at the next turn of the event loop', async () => {
    const { heap, clock } = heapOn();
    heap.schedule(100, () => undefined, true);
    const call = heap.schedule(100, () => undefined);
    expect(clock.host().refed).toBe(true);
    expect(heap.cancel(call)).toBe(true);
    expect(clock.host().refed).toBe(true); // left as it is within the turn
    await nextTurn();
    expect(clock.host()).toMatchObject({ ms: 100, refed: false });
    expect(heap.size).toBe(1);
  });
});

describe('TimerHeap cancel', () => {
  it('answers true once for a pending timer, which never fires, and false after that', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const a = heap.schedule(10, () => fired.push('a'));
    const b = heap.schedule(10, () => fired.push('b'));
    expect(heap.cancel(a)).toBe(true);
    expect(a.index).toBe(-1);
    expect(heap.cancel(a)).toBe(false);
    expect(heap.size).toBe(1);
    clock.fireAt(1010);
    expect(fired).toEqual(['b']);
    expect(heap.cancel(b)).toBe(false); // fired already
    expect(heap.size).toBe(0);
  });

  it('leaves the host timer armed within the turn, and clears it at the next turn once the heap is empty', async () => {
    const { heap, clock } = heapOn();
    const entries = [heap.schedule(10, () => undefined), heap.schedule(20, () => undefined)];
    for (const e of entries) expect(heap.cancel(e)).toBe(true);
    expect(clock.pending()).toHaveLength(1); // a deadline set and cancelled within a turn costs no host timer churn
    await nextTurn();
    expect(clock.pending()).toEqual([]);
    // a new timer arms a new host timer
    heap.schedule(5, () => undefined);
    expect(clock.host().ms).toBe(5);
  });

  it('a host wake-up with everything cancelled (before the tidy ran) fires nothing and leaves no host timer', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const a = heap.schedule(10, () => fired.push('a'));
    expect(heap.cancel(a)).toBe(true);
    clock.fireAt(1010);
    expect(fired).toEqual([]);
    expect(clock.pending()).toEqual([]);
  });

  it('removes the earliest, the last and a middle entry alike, keeping the order of the rest', () => {
    const { heap, clock } = heapOn();
    const fired: number[] = [];
    const entries = [50, 10, 40, 20, 30, 60, 5].map((ms) => heap.schedule(ms, () => fired.push(ms)));
    const byMs = new Map(entries.map((e) => [e.at - 1000, e]));
    expect(heap.cancel(byMs.get(5)!)).toBe(true); // the root
    expect(heap.cancel(byMs.get(60)!)).toBe(true); // a leaf
    expect(heap.cancel(byMs.get(30)!)).toBe(true); // somewhere between
    heap.entries().forEach((e, i) => expect(e.index).toBe(i));
    expect(clock.pending()[0]!.ms).toBe(5); // armed for the cancelled root: it wakes, finds nothing, re-arms
    clock.fireAt(1005);
    expect(fired).toEqual([]);
    expect(clock.host().ms).toBe(5); // 1010 - 1005
    clock.fireAt(1100);
    expect(fired).toEqual([10, 20, 40, 50]);
  });
});

describe('TimerHeap callbacks', () => {
  it('hands a throwing callback’s error to onError and still fires the timers due with it', () => {
    const { heap, clock, errors } = heapOn();
    const fired: string[] = [];
    const boom = new Error('boom');
    heap.schedule(10, () => fired.push('before'));
    heap.schedule(10, () => {
      throw boom;
    });
    heap.schedule(10, () => {
      throw 'a string'; // a callback may throw anything, not only an Error
    });
    heap.schedule(10, () => fired.push('after'));
    heap.schedule(20, () => fired.push('later'));
    clock.fireAt(1010);
    expect(fired).toEqual(['before', 'after']);
    expect(errors).toEqual([boom, 'a string']);
    expect(clock.host().ms).toBe(10);
    clock.fireAt(1020);
    expect(fired).toEqual(['before', 'after', 'later']);
  });

  it('fires in the same wake a timer that a callback schedules due now, and not one due later', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    heap.schedule(10, () => {
      fired.push('first');
      heap.schedule(0, () => fired.push('nested, due now'));
      heap.schedule(1, () => fired.push('nested, due later'));
    });
    heap.schedule(10, () => fired.push('second'));
    clock.fireAt(1010);
    // the nested one is due at 1010 too, and was scheduled after 'second': it fires after it
    expect(fired).toEqual(['first', 'second', 'nested, due now']);
    expect(heap.size).toBe(1);
    expect(clock.host().ms).toBe(1);
    clock.fireAt(1011);
    expect(fired).toEqual(['first', 'second', 'nested, due now', 'nested, due later']);
    expect(clock.pending()).toEqual([]);
  });

  it('lets a callback cancel a timer due in the same wake (it does not fire), and cancelling itself answers false', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const answers: boolean[] = [];
    const later: { victim?: TimerEntry } = {};
    const self: TimerEntry = heap.schedule(10, () => {
      fired.push('canceller');
      answers.push(heap.cancel(later.victim!), heap.cancel(self));
    });
    later.victim = heap.schedule(10, () => fired.push('victim'));
    heap.schedule(10, () => fired.push('bystander'));
    clock.fireAt(1010);
    expect(fired).toEqual(['canceller', 'bystander']);
    expect(answers).toEqual([true, false]);
    expect(heap.size).toBe(0);
  });
});

describe('TimerHeap stop', () => {
  it('cancels every timer, clears the host timer, and arms none for a timer scheduled after', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const entries = [heap.schedule(10, () => fired.push('a')), heap.schedule(20, () => fired.push('b'), true)];
    heap.stop();
    expect(heap.size).toBe(0);
    expect(entries.map((e) => e.index)).toEqual([-1, -1]);
    expect(clock.pending()).toEqual([]);
    heap.schedule(5, () => fired.push('after stop'));
    expect(clock.pending()).toEqual([]);
    expect(clock.timers).toHaveLength(1); // only the one set before stop()
    expect(fired).toEqual([]);
  });
});

describe('TimerHeap hostile input', () => {
  it.each([
    ['NaN', NaN],
    ['-1', -1],
    ['-Infinity', -Infinity],
    ['Infinity', Infinity],
    ['-Number.MIN_VALUE', -Number.MIN_VALUE],
  ])('refuses a delay of %s with ERR_INVALID_ARGUMENT naming `ms`, and the heap stays as it was', (_name, ms) => {
    const { heap, clock } = heapOn();
    const kept = heap.schedule(10, () => undefined);
    expectKeelError(thrown(() => heap.schedule(ms, () => undefined)), 'ERR_INVALID_ARGUMENT', '`ms`', 'a finite number of milliseconds >= 0');
    expect(heap.size).toBe(1);
    expect(heap.entries()).toEqual([kept]);
    expect(clock.timers).toHaveLength(1);
  });

  it('takes -0 as 0', () => {
    const { heap, clock } = heapOn();
    const fired: string[] = [];
    const e = heap.schedule(-0, () => fired.push('zero'));
    expect(e.at).toBe(1000);
    clock.fireAt(1000);
    expect(fired).toEqual(['zero']);
  });

  it.each([
    ['NaN', NaN],
    ['Infinity', Infinity],
    ['-Infinity', -Infinity],
  ])('refuses a clock whose now() is %s with ERR_INVALID_ARGUMENT naming `clock.now()`, and the heap stays empty', (_name, now) => {
    const clock = new FakeClock();
    const { heap } = heapOn(clock);
    clock.current = now;
    expectKeelError(thrown(() => heap.schedule(10, () => undefined)), 'ERR_INVALID_ARGUMENT', '`clock.now()`', 'a finite number (epoch ms)');
    expect(heap.size).toBe(0);
    expect(clock.timers).toEqual([]);
  });

  it('refuses a finite delay that overflows a finite clock to Infinity', () => {
    const clock = new FakeClock(Number.MAX_VALUE);
    const { heap } = heapOn(clock);
    expectKeelError(thrown(() => heap.schedule(Number.MAX_VALUE, () => undefined)), 'ERR_INVALID_ARGUMENT', '`clock.now()`');
    expect(heap.size).toBe(0);
  });

  it('works with a clock whose handles are plain numbers (no ref/unref to call)', () => {
    let next = 0;
    const cleared: number[] = [];
    const armed = new Map<number, () => void>();
    let now = 0;
    const clock: Clock = {
      now: () => now,
      setTimer: (_ms, fn) => {
        armed.set(++next, fn);
        return next;
      },
      clearTimer: (h) => {
        cleared.push(h as number);
        armed.delete(h as number);
      },
    };
    const heap = new TimerHeap(clock, () => undefined);
    const fired: string[] = [];
    heap.schedule(20, () => fired.push('ref'), false);
    heap.schedule(10, () => fired.push('unref'), true);
    expect([...armed.keys()]).toEqual([2]);
    expect(cleared).toEqual([1]);
    now = 20;
    armed.get(2)!();
    expect(fired).toEqual(['unref', 'ref']);
  });
});
