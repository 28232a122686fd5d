import { InvalidArgumentError } from '../../errors.js';
import { type Clock, type TimerHandle, takesAnyDelay, timerTimeOf } from '../Clock.js';
import { DeadlineHeap } from '../DeadlineHeap.js';

/** @internal One pending timer. `index` is its place in the heap, -1 once fired or cancelled. */
export class TimerEntry {
  readonly at: number;
  readonly seq: number;
  readonly fn: (this: unknown) => void;
  readonly unref: boolean;
  index = -1;
  /** Owner bookkeeping (the process whose death cancels this timer). */
  owner: unknown = undefined;
  /** `this` for `fn`, so that a method can be a timer without a closure per timer. */
  readonly receiver: unknown;
  constructor(at: number, seq: number, fn: (this: unknown) => void, unref: boolean, receiver: unknown = undefined) {
    this.at = at;
    this.seq = seq;
    this.fn = fn;
    this.unref = unref;
    this.receiver = receiver;
  }
}

/** @internal The longest delay a host timer takes: a longer one fires after 1 ms (Node's TimeoutOverflowWarning). */
export const MAX_HOST_DELAY = 2 ** 31 - 1;

/** Where a timer fault came from: a timer's callback, or the clock (reading it, clearing, ref()ing or unref()ing its host timer). */
export type TimerFault = 'callback' | 'clock' | 'clear' | 'ref' | 'unref';

/** @internal The log line of a timer fault of node `node`. */
export function timerFaultText(source: TimerFault, node: string): string {
  if (source === 'callback') return `a timer callback of node ${node} threw`;
  if (source === 'unref') {
    return `the clock of node ${node} threw unref()ing its host timer, which stays ref'd: the node's background timers (heartbeats, retries, checks) keep the OS process alive until the node shuts down (logged once)`;
  }
  const what = source === 'clock' ? 'threw; its timers wait until the next one is set' : source === 'clear' ? 'threw clearing its host timer' : 'threw ref()ing its host timer';
  return `the clock of node ${node} ${what}`;
}

/**
 * @internal A node's timers: a binary min-heap on (deadline, sequence) behind one host timer on the
 * node's clock. The host timer is `unref()`ed while only service timers are pending.
 */
export class TimerHeap {
  readonly #clock: Clock;
  /** The time the deadlines count in (the monotonic clock for the real clock: see `timerTimeOf`). */
  readonly #now: () => number;
  /** The time the deadlines count in, now. */
  now(): number {
    return this.#now();
  }
  /** The longest delay the clock's timers take (any finite one on a virtual clock). */
  readonly #maxDelay: number;
  readonly #onError: (error: unknown, source: TimerFault) => void;
  readonly #queue = new DeadlineHeap<TimerEntry>();
  /** The entries in heap order (`#heap[0]` is the earliest). */
  readonly #heap = this.#queue.items;
  #seq = 0;
  #refCount = 0;
  #host: TimerHandle | undefined = undefined;
  #hostAt = Infinity;
  #hostRefed = false;
  #stopped = false;
  #tidyQueued = false;
  /** An unref() of the clock threw already (it is told once: it may throw at every host timer). */
  #unrefFaultTold = false;

  constructor(clock: Clock, onError: (error: unknown, source: TimerFault) => void) {
    this.#clock = clock;
    this.#now = timerTimeOf(clock);
    this.#maxDelay = takesAnyDelay(clock) ? Number.MAX_VALUE : MAX_HOST_DELAY;
    this.#onError = onError;
  }

  get size(): number {
    return this.#heap.length;
  }

  /** @internal The pending timers (for leak reports). */
  entries(): readonly TimerEntry[] {
    return this.#heap;
  }

  /**
   * Schedules `fn` in `ms`. A delay that is not a finite number >= 0, or a clock whose `now()` is not a
   * finite number, is a typed error here: one NaN deadline would corrupt the heap's order, and with it
   * every timer of the node.
   */
  schedule(ms: number, fn: (this: any) => void, unref = false, receiver?: unknown): TimerEntry {
    if (!(ms >= 0 && ms <= Number.MAX_VALUE)) throw new InvalidArgumentError('ms', 'a finite number of milliseconds >= 0', ms);
    const now = this.#now();
    const at = now + ms;
    // a string now() ('5') would make the deadline the text '510', which '-' still reads as a number
    if (typeof at !== 'number' || !(at - at === 0)) throw new InvalidArgumentError('clock.now()', 'a finite number (epoch ms)', now);
    const entry = new TimerEntry(at, this.#seq++, fn, unref, receiver);
    if (!unref) this.#refCount++;
    this.#queue.push(entry);
    if (entry.at < this.#hostAt) {
      try {
        this.#arm();
      } catch (error) {
        this.#refused(entry);
        throw error;
      }
    } else if (!unref && !this.#hostRefed) this.#setRef(true);
    return entry;
  }

  /**
   * The clock threw setting the host timer for `entry`: the entry leaves the heap (the caller's
   * schedule failed, so its callback must never run later), and the timers pending before it get
   * their host timer back if the clock lets them.
   */
  #refused(entry: TimerEntry): void {
    if (entry.index >= 0) {
      this.#queue.removeAt(entry.index);
      if (!entry.unref) this.#refCount--;
    }
    try {
      this.#arm();
    } catch {
      // the clock refuses still: the next schedule tries again
    }
  }

  /**
   * Cancels a pending timer; false when it already fired or was cancelled. The host timer is left
   * armed (a wake-up with nothing due just re-arms), so that a deadline set and cancelled per call
   * never costs a host timer; once the heap is empty it is cleared at the next turn of the event loop.
   */
  cancel(entry: TimerEntry): boolean {
    if (entry.index < 0) return false;
    this.#queue.removeAt(entry.index);
    if (!entry.unref) this.#refCount--;
    if ((this.#heap.length === 0 || this.#refCount === 0) && !this.#tidyQueued && this.#host !== undefined) {
      this.#tidyQueued = true;
      setImmediate(this.#tidy);
    }
    return true;
  }

  /** After cancels, at the next turn of the event loop: clear an idle host timer, or unref it. */
  #tidy = (): void => {
    this.#tidyQueued = false;
    if (this.#heap.length === 0) this.#disarm();
    else if (this.#refCount === 0 && this.#hostRefed) this.#setRef(false);
  };

  /** Cancels everything and arms nothing more. */
  stop(): void {
    this.#stopped = true;
    this.#queue.clear();
    this.#refCount = 0;
    this.#disarm();
  }

  #fire = (): void => {
    this.#host = undefined;
    this.#hostAt = Infinity;
    let now: number;
    try {
      now = this.#now();
    } catch (error) {
      // a clock that throws: reported, and the timers wait, armed again by the next one set
      this.#onError(error, 'clock');
      return;
    }
    const heap = this.#heap;
    while (heap.length > 0 && heap[0]!.at <= now) {
      const entry = heap[0]!;
      this.#queue.removeAt(0);
      if (!entry.unref) this.#refCount--;
      try {
        entry.fn.call(entry.receiver);
      } catch (error) {
        this.#onError(error, 'callback');
      }
    }
    try {
      this.#arm();
    } catch (error) {
      this.#onError(error, 'clock');
    }
  };

  #arm(): void {
    if (this.#stopped) return;
    const heap = this.#heap;
    if (heap.length === 0) {
      this.#disarm();
      return;
    }
    const at = heap[0]!.at;
    const wantRef = this.#refCount > 0;
    if (this.#host !== undefined && at === this.#hostAt) {
      if (wantRef !== this.#hostRefed) this.#setRef(wantRef);
      return;
    }
    this.#disarm();
    // a host timer cannot wait longer than 2^31 - 1 ms: wake then, find nothing due, and re-arm (a
    // virtual clock's timer takes the whole delay)
    this.#host = this.#clock.setTimer(Math.min(this.#maxDelay, Math.max(0, at - this.#now())), this.#fire);
    this.#hostAt = at;
    this.#setRef(wantRef);
  }

  #setRef(on: boolean): void {
    this.#hostRefed = on;
    const h = this.#host as { ref?: () => void; unref?: () => void } | undefined;
    if (h === null || typeof h !== 'object') return;
    try {
      if (on) h.ref?.();
      else h.unref?.();
    } catch (error) {
      // the host timer is left as it was (a timer is ref'd when set, as setTimeout's): recorded so,
      // the next arming tries again. Reported, never thrown: as a clear, this runs at the next turn
      // (nothing would catch it there), and in a schedule whose timer is set already. A failed
      // unref() leaves the timers firing (a node's timers are never dropped) with the process held
      // open: told once, as it may recur at every host timer (each heartbeat)
      this.#hostRefed = !on;
      if (on) this.#onError(error, 'ref');
      else if (!this.#unrefFaultTold) {
        this.#unrefFaultTold = true;
        this.#onError(error, 'unref');
      }
    }
  }

  #disarm(): void {
    const host = this.#host;
    this.#host = undefined;
    this.#hostAt = Infinity;
    if (host === undefined) return;
    try {
      this.#clock.clearTimer(host);
    } catch (error) {
      // reported, never thrown: a clear runs at the next turn (nothing would catch it there), when
      // the node stops, and before a timer is armed (a wake-up it did not clear finds nothing due)
      this.#onError(error, 'clear');
    }
  }
}
