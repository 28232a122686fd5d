import type { Envelope } from './Envelope.js';

/**
 * @internal A supervised message a suspended server holds: the message its handler was given, and
 * its envelope, set aside (not settled) until it is handled on resume.
 */
export class HeldEnvelope {
  readonly msg: unknown;
  readonly env: Envelope;
  constructor(msg: unknown, env: Envelope) {
    this.msg = msg;
    this.env = env;
  }
}

/**
 * @internal An event a bounded state machine postponed: kept by the kernel (in `ProcExtras.postponed`),
 * counted against the mailbox's capacity as a held message is, until the machine handles it again.
 * `msg` is the message it came as (what an eviction reports and tells: a call fails), `event` the
 * machine's own event (what {@link Mailboxes.takePostponed} answers), `env` its supervised message.
 */
export class HeldEvent {
  readonly event: unknown;
  readonly msg: unknown;
  env: Envelope | undefined;
  /** No longer kept: handled again, evicted, withdrawn, or its process died. */
  gone = false;
  /** Its neighbours in its {@link PostponedEvents} (older, newer) while kept. */
  prev: HeldEvent | undefined = undefined;
  next: HeldEvent | undefined = undefined;
  constructor(event: unknown, msg: unknown, env: Envelope | undefined) {
    this.event = event;
    this.msg = msg;
    this.env = env;
  }
}

/**
 * @internal The events a bounded state machine postponed, oldest first: a list linked through the
 * events, so that the machine takes any of them back in O(1) (a replay interrupted by a state change
 * takes the newest ones first, from the tail), and a state change schedules for replay only those
 * postponed since the last one (`fresh` and every one after it: those before are scheduled already,
 * as a newer one is never scheduled before an older one), not all of them again at each change.
 */
export class PostponedEvents {
  first: HeldEvent | undefined = undefined;
  last: HeldEvent | undefined = undefined;
  /** The oldest not yet scheduled for replay; undefined when every one is. */
  fresh: HeldEvent | undefined = undefined;
  length = 0;

  push(e: HeldEvent): void {
    const last = this.last;
    e.prev = last;
    if (last === undefined) this.first = e;
    else last.next = e;
    this.last = e;
    this.fresh ??= e;
    this.length++;
  }

  /** Takes `e` out (it must be kept here): it is gone. */
  remove(e: HeldEvent): void {
    const { prev, next } = e;
    if (prev === undefined) this.first = next;
    else prev.next = next;
    if (next === undefined) this.last = prev;
    else next.prev = prev;
    if (this.fresh === e) this.fresh = next;
    e.prev = e.next = undefined;
    e.gone = true;
    this.length--;
  }

  /** Takes out the oldest event `skip` does not pass over; `none` when there is none. */
  removeFirst<N>(skip: (e: HeldEvent) => boolean, none: N): HeldEvent | N {
    for (let e = this.first; e !== undefined; e = e.next) {
      if (skip(e)) continue;
      this.remove(e);
      return e;
    }
    return none;
  }

  /** Takes out every event `drop` is true of; answers them, oldest first, or undefined when there was none. */
  removeWhere(drop: (e: HeldEvent) => boolean): HeldEvent[] | undefined {
    let removed: HeldEvent[] | undefined;
    for (let e = this.first; e !== undefined; ) {
      const next: HeldEvent | undefined = e.next;
      if (drop(e)) {
        this.remove(e);
        (removed ??= []).push(e);
      }
      e = next;
    }
    return removed;
  }

  /** The events not yet scheduled for replay, oldest first, marked scheduled (they stay kept until taken). */
  schedule(): HeldEvent[] {
    const out: HeldEvent[] = [];
    for (let e = this.fresh; e !== undefined; e = e.next) {
      out.push(e);
    }
    this.fresh = undefined;
    return out;
  }

  /** Each event, oldest first. */
  forEach(fn: (e: HeldEvent) => void): void {
    for (let e = this.first; e !== undefined; ) {
      const next: HeldEvent | undefined = e.next;
      fn(e);
      e = next;
    }
  }
}

/** Past this many taken slots, and half the array, the taken slots are given back. */
const COMPACT_ABOVE = 1024;

/**
 * @internal The messages a suspended server holds, oldest first: a queue taken from its head in O(1)
 * (a resumed server replays a backlog of any length), its taken slots given back as it goes.
 */
export class HeldQueue {
  items: unknown[] = [];
  head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(m: unknown): void {
    this.items.push(m);
  }

  /** The oldest; the queue must not be empty. */
  shift(): unknown {
    const items = this.items;
    const m = items[this.head];
    items[this.head++] = undefined;
    if (this.head >= COMPACT_ABOVE && this.head * 2 >= items.length) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return m;
  }

  /**
   * Takes out the oldest message `skip` does not pass over; `none` when there is none. The ones
   * passed over (a few system messages) move up one slot each and the head is taken, as the mailbox
   * evicts: O(passed over), not O(held) as a splice is (a drop_oldest server holding a Down first
   * would move every held message at each eviction).
   */
  removeFirst<N>(skip: (m: unknown) => boolean, none: N): unknown {
    const items = this.items;
    const head = this.head;
    for (let i = head; i < items.length; i++) {
      const m = items[i];
      if (skip(m)) continue;
      for (let j = i; j > head; j--) items[j] = items[j - 1];
      this.shift(); // the oldest passed-over one, now also one slot down: the head's slot is given back
      return m;
    }
    return none;
  }

  /**
   * Takes out every message `drop` is true of, keeping the order of the rest; answers them, oldest
   * first, or undefined when there was none (then nothing is written). O(held): `drop` is asked once
   * of each, and the ones behind the first taken move down over it (a sender taking its copy back,
   * as a mailbox's are, by {@link removeWhere}). Its taken slots at the head are given back as a
   * shift's are.
   */
  removeWhere(drop: (m: unknown) => boolean): unknown[] | undefined {
    const items = this.items;
    const end = items.length;
    let i = this.head;
    while (i < end && !drop(items[i])) i++;
    if (i === end) return undefined;
    const removed = [items[i]];
    let kept = i;
    for (i++; i < end; i++) {
      const m = items[i];
      if (drop(m)) removed.push(m);
      else items[kept++] = m;
    }
    items.length = kept;
    if (this.head === kept) {
      // none left: the taken slots at the head go too
      this.items = [];
      this.head = 0;
    } else if (this.head >= COMPACT_ABOVE && this.head * 2 >= kept) {
      this.items = items.slice(this.head);
      this.head = 0;
    }
    return removed;
  }

  /** Each held message, oldest first. */
  forEach(fn: (m: unknown) => void): void {
    const items = this.items;
    for (let i = this.head; i < items.length; i++) fn(items[i]);
  }
}
