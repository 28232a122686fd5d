import { DeadlockError, InvalidArgumentError, readKnownOptions } from '../errors.js';
import { type Clock, type ClockNode, kAnyDelay, kAttachNode, type TimerHandle } from '../runtime/Clock.js';
import { DeadlineHeap } from '../runtime/DeadlineHeap.js';

/** A pending timer of a {@link TestClock}, and its handle. */
class Pending {
  readonly at: number;
  readonly seq: number;
  readonly fn: () => void;
  /** Its place in the clock's heap; -1 once fired or cleared. */
  index = -1;
  constructor(at: number, seq: number, fn: () => void) {
    this.at = at;
    this.seq = seq;
    this.fn = fn;
  }
}

/**
 * A clock that moves only when told to. `await clock.advance(ms)` fires the due timers in time
 * order (including timers scheduled while it advances) and, after each, lets every node using the
 * clock run until no process is runnable. Handlers awaiting work outside Keel are not waited for.
 * An advance that fires more than `loopLimit` timers (default 100,000) at one instant, time never
 * moving (a timer that sets itself again at no delay), rejects with `ERR_DEADLOCK` where it would
 * have run for ever, as sinon's fake timers stop at their `loopLimit`.
 *
 * @example
 * ```ts
 * const clock = new TestClock({ start: 0 });
 * const node = createNode({ clock });
 * const p = probe(node);
 * p.ctx.sendAfter(p, 'tick', 1000);
 * await clock.advance(1000);
 * await p.receive((m) => m === 'tick');
 * ```
 */
export class TestClock implements Clock {
  /** @internal */
  readonly [kAnyDelay] = true;
  #now: number;
  #seq = 0;
  /** The pending timers, each its own handle, by (deadline, order set): the next due is `items[0]`. */
  readonly #timers = new DeadlineHeap<Pending>();
  readonly #nodes = new Set<ClockNode>();
  #chain: Promise<void> = Promise.resolve();
  readonly #loopLimit: number;

  constructor(options: { start?: number; loopLimit?: number } = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ start?, loopLimit? }', options);
    // read once, a key it does not know refused: `{ now: 5000 }` started the clock at 0
    const o = readKnownOptions(options, ['start', 'loopLimit']);
    const start = o.start ?? 0;
    const loopLimit = o.loopLimit ?? 100_000;
    if (typeof start !== 'number' || !Number.isFinite(start)) throw new InvalidArgumentError('start', 'a finite number (epoch ms)', start);
    if (typeof loopLimit !== 'number' || !Number.isSafeInteger(loopLimit) || loopLimit < 1) throw new InvalidArgumentError('loopLimit', 'a whole number of timers >= 1', loopLimit);
    this.#now = start;
    this.#loopLimit = loopLimit;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): TimerHandle {
    // a NaN deadline is never due: the timer would stay pending, silently, for ever
    if (typeof ms !== 'number' || Number.isNaN(ms)) throw new InvalidArgumentError('ms', 'a number of milliseconds', ms);
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function', fn);
    const at = this.#now + Math.max(0, ms);
    // an infinite deadline is never due: the timer would stay pending, silently, for ever (as a
    // SimulatedClock, refused)
    if (!Number.isFinite(at)) throw new InvalidArgumentError('ms', `a delay that keeps the deadline finite (now is ${this.#now})`, ms);
    const seq = ++this.#seq;
    const timer = new Pending(at, seq, fn);
    this.#timers.push(timer);
    // the handle is the timer itself, not its number: another TestClock's handle of the same number
    // must not clear this clock's timer
    return timer;
  }

  clearTimer(handle: TimerHandle): void {
    // by identity: a timer of another TestClock has a place in that clock's heap, not this one's
    if (handle instanceof Pending) this.#timers.remove(handle);
  }

  /** Timers pending on this clock (each node keeps at most one here). */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /**
   * Moves time forward by `ms`, firing every timer due on the way, in order. Calls are serialised.
   * A timer that throws rejects the advance with the first error thrown, once the others due have fired.
   * More than `loopLimit` timers fired at one instant rejects it with `ERR_DEADLOCK`, there: now() stays
   * at that instant, and the timers not fired stay pending.
   */
  advance(ms: number): Promise<void> {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
      throw new InvalidArgumentError('ms', 'a finite number of milliseconds >= 0', ms);
    }
    const run = this.#chain.then(() => this.#advance(ms));
    this.#chain = run.catch(() => undefined);
    return run;
  }

  async #advance(ms: number): Promise<void> {
    const target = this.#now + ms;
    // an Infinity now() would refuse every timer a node sets from then on (its deadlines must be finite)
    if (!Number.isFinite(target)) throw new InvalidArgumentError('ms', `a delay that keeps now() (${this.#now}) finite`, ms);
    await this.#settle();
    // a timer that throws (one set on the clock directly: a node's never do) fails the advance once
    // every due timer has fired and now() is the target, as sinon's fake timers do: neither the
    // timers after it nor the time are left for a later advance to catch up with
    let failed: { error: unknown } | undefined;
    let atOnce = 0; // timers fired at this instant
    for (;;) {
      // the earliest pending timer, by (deadline, order set): O(log n) a timer, where a scan of
      // every pending timer for each one fired made n timers n² (100,000 took about 18 s)
      const next = this.#timers.items[0];
      if (next === undefined || next.at > target) break;
      if (next.at > this.#now) {
        this.#now = next.at;
        atOnce = 0;
      } else if (++atOnce > this.#loopLimit) {
        // a timer that sets itself again at no delay: time never moves, and the advance would run for ever
        throw new DeadlockError('TestClock.advance', `fired ${this.#loopLimit} timers at ${this.#now} ms without time moving (a timer that sets itself again at no delay?)`);
      }
      this.#timers.removeAt(0);
      try {
        next.fn();
      } catch (error) {
        failed ??= { error };
      }
      await this.#settle();
    }
    this.#now = target;
    await this.#settle();
    if (failed !== undefined) throw failed.error;
  }

  async #settle(): Promise<void> {
    await Promise.all([...this.#nodes].map((n) => n.settle()));
  }

  /** @internal */
  [kAttachNode](node: ClockNode): () => void {
    this.#nodes.add(node);
    return () => {
      this.#nodes.delete(node);
    };
  }
}
