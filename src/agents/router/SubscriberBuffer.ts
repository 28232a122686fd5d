import type { SignalOverflow } from './types.js';

/**
 * @internal One subscriber's buffer in a signal router: a bounded queue of what waits for delivery,
 * and the overflow policy that decides what a full buffer does with one more. It only keeps the
 * queue: the router counts, reports and dead-letters what the policy refuses or evicts.
 *
 * The queue is an array read from `head` (a shift moves the head, no copy); its storage is reused
 * when it drains, and compacted when the consumed front grows past half of it.
 */
export class SubscriberBuffer<T> {
  /** Items it holds before its overflow policy decides (a later subscribe may lower it). */
  capacity: number;
  overflow: SignalOverflow;
  #items: T[] = [];
  #head = 0;

  constructor(capacity: number, overflow: SignalOverflow) {
    this.capacity = capacity;
    this.overflow = overflow;
  }

  /** Items waiting. */
  get size(): number {
    return this.#items.length - this.#head;
  }

  /**
   * Takes `item` while there is room; a full buffer applies its policy. `'drop_newest'` and
   * `'reject'` refuse `item` (false); `'drop_oldest'` evicts the oldest into `evicted` (more than
   * one when the capacity was lowered meanwhile) and takes `item`.
   */
  offer(item: T, evicted: T[]): boolean {
    if (this.size < this.capacity) {
      this.#items.push(item);
      return true;
    }
    if (this.overflow !== 'drop_oldest') return false;
    while (this.size >= this.capacity) evicted.push(this.shift());
    this.#items.push(item);
    return true;
  }

  /**
   * Takes out what it holds above its capacity (lowered meanwhile), by its policy's rule, and
   * answers it in buffer order: `'drop_oldest'` gives up the oldest, `'drop_newest'` and `'reject'`
   * the newest (those a full buffer would have refused). Empty when it holds no more than its capacity.
   */
  excess(): T[] {
    const n = this.size - this.capacity;
    if (n <= 0) return [];
    if (this.overflow === 'drop_oldest') {
      const out: T[] = [];
      for (let i = 0; i < n; i++) out.push(this.shift());
      return out;
    }
    // the newest n: the capacity is at least 1, so the front (what is kept) is never emptied here
    return this.#items.splice(this.#items.length - n, n);
  }

  /** The oldest item, taken out (the buffer must not be empty). */
  shift(): T {
    const items = this.#items;
    const item = items[this.#head]!;
    items[this.#head] = undefined as never; // no longer held
    this.#head++;
    if (this.#head === items.length) {
      items.length = 0; // drained: the storage is reused
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= items.length) {
      this.#items = items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Drops everything it holds; answers how many items that was. */
  clear(): number {
    const n = this.size;
    this.#items = [];
    this.#head = 0;
    return n;
  }
}
