import { InvalidArgumentError, readKnownOptions } from '../errors.js';
import { type Clock, type ClockNode, kAnyDelay, kAttachNode, kDeterministic } from './Clock.js';
import { DeadlineHeap } from './DeadlineHeap.js';

/** A timer of a {@link SimulatedClock}: `ref()` / `unref()` as Node's own timers. */
export class SimulatedTimer {
  readonly at: number;
  readonly seq: number;
  /** @internal */
  readonly fn: () => void;
  /** @internal Its place in the clock's heap; -1 once fired or cleared. */
  index = -1;
  #refed = true;
  readonly #clock: SimulatedClock;
  /** @internal */
  constructor(clock: SimulatedClock, at: number, seq: number, fn: () => void) {
    this.#clock = clock;
    this.at = at;
    this.seq = seq;
    this.fn = fn;
  }
  /** Keeps the simulation running until this timer has fired (the default). */
  ref(): this {
    if (!this.#refed) {
      this.#refed = true;
      if (this.index >= 0) this.#clock.refChanged(1);
    }
    return this;
  }
  /** Lets the simulation end with this timer still pending, as an unref'd timer lets Node exit. */
  unref(): this {
    if (this.#refed) {
      this.#refed = false;
      if (this.index >= 0) this.#clock.refChanged(-1);
    }
    return this;
  }
  hasRef(): boolean {
    return this.#refed;
  }
}

/**
 * A clock for deterministic simulation. Its time is virtual: whenever every node using it is idle
 * (nothing runnable, no service I/O in flight), it jumps to the next due timer and fires it, and so
 * on while a timer that is `ref()`ed (the default) is pending — minutes of virtual time pass in
 * seconds. A node on this clock also schedules deterministically (its time slice counts messages
 * instead of reading real time), so that with a seeded `random` the same program is the same run,
 * event for event.
 *
 * What it cannot cover: work outside the nodes' clock. A handler that awaits real I/O (a socket, a
 * file, `fetch`) lets virtual time run on while it waits, and the real I/O's timing varies from run
 * to run. Inside a simulation, wait on the node's clock (`ctx.sendAfter`, `clock.setTimer`).
 *
 * @example
 * ```ts
 * const clock = new SimulatedClock({ start: 0 });
 * const node = createNode({ clock, random: seededRandom(7) });
 * const p = node.spawn((ctx) => (m) => { if (m === 'tick') ctx.sendAfter(ctx.self, 'tick', 60_000); });
 * node.send(p, 'tick');
 * clock.setTimer(3_600_000, () => node.exit(p, 'kill')); // an hour of virtual time
 * await clock.drained();                                   // in milliseconds of real time
 * clock.now();                                             // 3_600_000
 * ```
 */
export class SimulatedClock implements Clock {
  /** @internal */
  readonly [kDeterministic] = true;
  /** @internal */
  readonly [kAnyDelay] = true;
  #now: number;
  #seq = 0;
  readonly #queue = new DeadlineHeap<SimulatedTimer>();
  /** Pending timers that are ref()ed: the simulation runs while there is one. */
  #refs = 0;
  readonly #nodes = new Set<ClockNode>();
  #driving = false;
  #drainWaiters: (() => void)[] = [];

  constructor(options: { start?: number } = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ start? }', options);
    // read once, a key it does not know refused: `{ now: 5000 }` started the clock at 0
    const start = readKnownOptions(options, ['start']).start ?? 0;
    if (typeof start !== 'number' || !Number.isFinite(start)) throw new InvalidArgumentError('start', 'a finite number (epoch ms)', start);
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimer(ms: number, fn: () => void): SimulatedTimer {
    if (typeof ms !== 'number' || Number.isNaN(ms)) throw new InvalidArgumentError('ms', 'a number of milliseconds', ms);
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function', fn);
    // as setTimeout does: a negative delay is no delay
    const at = this.#now + Math.max(0, ms);
    // a deadline of Infinity would move virtual time there, and every node timer after it is refused
    if (!Number.isFinite(at)) throw new InvalidArgumentError('ms', `a delay that keeps the deadline finite (now is ${this.#now})`, ms);
    const t = new SimulatedTimer(this, at, this.#seq++, fn);
    this.#queue.push(t);
    this.refChanged(1);
    return t;
  }

  clearTimer(handle: unknown): void {
    // a timer of another clock has an index into that clock's heap, not this one's
    if (!(handle instanceof SimulatedTimer) || !this.#queue.remove(handle)) return;
    if (handle.hasRef()) this.refChanged(-1);
  }

  /** Timers pending on this clock, ref()ed or not. */
  get pendingTimers(): number {
    return this.#queue.size;
  }

  /**
   * Resolves once no `ref()`ed timer is pending and every node on the clock has settled: the
   * simulation has run to its end (as a Node program exits when nothing keeps it alive).
   */
  drained(): Promise<void> {
    return new Promise((resolve) => {
      this.#drainWaiters.push(resolve);
      this.#kick();
    });
  }

  /** @internal A pending timer was ref()ed (+1) or unref()ed (-1). */
  refChanged(delta: number): void {
    this.#refs += delta;
    if (delta > 0) this.#kick();
  }

  #kick(): void {
    if (this.#driving) return;
    this.#driving = true;
    setImmediate(() => void this.#drive());
  }

  /** Fires timers in order whenever the nodes are idle, while a ref()ed timer is pending. */
  async #drive(): Promise<void> {
    for (;;) {
      await Promise.all([...this.#nodes].map((n) => n.settle({ io: true })));
      if (this.#refs === 0 || this.#queue.size === 0) break;
      const t = this.#queue.removeAt(0);
      if (t.hasRef()) this.#refs--;
      if (t.at > this.#now) this.#now = t.at;
      try {
        t.fn();
      } catch (e) {
        // as a throwing timer callback of Node's own: an uncaught exception, not a stopped simulation
        queueMicrotask(() => {
          throw e;
        });
      }
    }
    this.#driving = false;
    for (const resolve of this.#drainWaiters.splice(0)) resolve();
  }

  /** @internal */
  [kAttachNode](node: ClockNode): () => void {
    this.#nodes.add(node);
    return () => {
      this.#nodes.delete(node);
    };
  }
}
