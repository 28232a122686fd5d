import type { SendOutcome } from '../index.js';

/** What the sender learned of a message: nothing yet, delivered (per its ack), failed and reported, or failed and dead-lettered. */
const OK = 1;
const FAILED = 2;
const DEAD_LETTERED = 3;

/** How one kind of traffic ended, message by message (see {@link SoakLedger.account}). */
export interface KindAccount {
  sent: number;
  /** Handled at least once by a receiver (by message id), the dead letter queue's redeliveries included. */
  handled: number;
  /** Not handled, and in the dead letter queue at the end (pending or parked). */
  deadLettered: number;
  /** Not handled, and its outcome said so (`ok: false`, not dead-lettered). */
  failedReported: number;
  /**
   * Not handled, acknowledged at `'enqueued'` with `onError` `'log'` or `'ignore'` (the lossy kinds):
   * its receiver died with it queued, and that death's `receiver_exited` event named its id, once.
   */
  dropped: number;
  /** In no class: a message lost without a word. */
  unaccounted: number;
  /**
   * Named by a drop event though it ended otherwise (handled, dead-lettered, reported failed, or not
   * a lossy kind's), or named more than once: the extra namings.
   */
  overReported: number;
}

/** Up to {@link EXAMPLES} ids of a kind's messages in no class, and of those over-reported (the first by sequence number). */
export interface KindIds {
  unaccounted: string[];
  overReported: string[];
}

/** How many ids of each kind a report names, at most. */
export const EXAMPLES = 3;

/** The ledger's verdict on a run. */
export interface Accounting {
  readonly byKind: KindAccount[];
  readonly total: KindAccount;
  /** Per kind, the first ids of its messages in no class and of those over-reported. */
  readonly ids: KindIds[];
  /** Extra deliveries of messages handled more than once (at-least-once retries). */
  readonly duplicates: number;
  /** Messages in two classes: handled and still dead-lettered, or handled yet reported failed, or dead-lettered and reported failed. */
  readonly overlaps: number;
  /** Handled ids, or dead letters, that are no message the soak sent. */
  readonly foreign: number;
  /** The extra namings by drop events, all kinds (the sum of {@link KindAccount.overReported}). */
  readonly overReported: number;
}

/**
 * The soak's ledger: one byte per message and per fact, indexed by the message's sequence number,
 * which its id carries (`s<seq>`). Typed arrays allocated once for the whole run: the ledger does
 * not grow the heap while the soak measures it (their bytes are outside the V8 heap).
 */
export class SoakLedger {
  readonly capacity: number;
  /** Its kind + 1 (0: not sent). */
  readonly #kind: Uint8Array;
  readonly #outcome: Uint8Array;
  /** Times handled, saturating at 255. */
  readonly #handled: Uint8Array;
  /** 1 when the message is in the dead letter queue at the end. */
  readonly #queued: Uint8Array;
  /** Times a drop event of a lossy receiver named it, saturating at 255. */
  readonly #dropped: Uint8Array;
  sent = 0;
  /** Sends whose outcome has not arrived yet. */
  outstanding = 0;
  /** Outcomes that rejected (no send of the soak uses `onError: 'raise'`): counted as reported failures. */
  rejected = 0;
  /** Dead letters of the soak's messages found in the queue at the end (one per message). */
  queuedCount = 0;
  #foreign = 0;
  #settled: (() => void) | undefined = undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
    this.#kind = new Uint8Array(capacity);
    this.#outcome = new Uint8Array(capacity);
    this.#handled = new Uint8Array(capacity);
    this.#queued = new Uint8Array(capacity);
    this.#dropped = new Uint8Array(capacity);
  }

  /** A new message of `kind` (0..254): its sequence number. */
  next(kind: number): number {
    const seq = this.sent;
    if (seq >= this.capacity) throw new RangeError(`the soak's ledger is full (${this.capacity} messages)`);
    this.#kind[seq] = kind + 1;
    this.sent++;
    this.outstanding++;
    return seq;
  }

  /** The id a message is sent under. */
  static id(seq: number): string {
    return `s${seq}`;
  }

  /** The sequence number an id carries, or -1 when it is no id of the soak's. */
  seqOf(id: unknown): number {
    if (typeof id !== 'string' || id.length < 2 || id.length > 16 || id.charCodeAt(0) !== 115 /* s */) return -1;
    // the one spelling SoakLedger.id gives: no leading zero ('s01' is no id of ours, and would alias s1)
    if (id.length > 2 && id.charCodeAt(1) === 48 /* 0 */) return -1;
    let n = 0;
    for (let i = 1; i < id.length; i++) {
      const d = id.charCodeAt(i) - 48;
      if (d < 0 || d > 9) return -1;
      n = n * 10 + d;
    }
    return n < this.sent ? n : -1;
  }

  /** A receiver handled the message with this id (`ctx.messageId`). */
  handled(id: string | undefined): void {
    const seq = this.seqOf(id);
    if (seq < 0) {
      this.#foreign++;
      return;
    }
    if (this.#handled[seq]! < 255) this.#handled[seq]!++;
  }

  /** The send's outcome arrived. */
  outcome(o: SendOutcome): void {
    const seq = this.seqOf(o.id);
    if (seq < 0) {
      this.#foreign++;
    } else {
      this.#outcome[seq] = o.ok ? OK : o.deadLetterId !== undefined ? DEAD_LETTERED : FAILED;
    }
    this.#settle();
  }

  /** A send rejected instead of resolving with an outcome: the caller learned of the failure. */
  rejection(seq: number): void {
    this.rejected++;
    this.#outcome[seq] = FAILED;
    this.#settle();
  }

  #settle(): void {
    if (--this.outstanding === 0 && this.#settled !== undefined) {
      const resolve = this.#settled;
      this.#settled = undefined;
      resolve();
    }
  }

  /** Resolves once every send made so far has its outcome. */
  settled(): Promise<void> {
    if (this.outstanding === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.#settled = resolve;
    });
  }

  /** A dead letter in the queue at the end carries this message id (its metadata's `id`). */
  queued(id: unknown): void {
    const seq = this.seqOf(id);
    if (seq < 0) this.#foreign++;
    else if (this.#queued[seq] === 0) {
      this.#queued[seq] = 1;
      this.queuedCount++;
    }
  }

  /** A `receiver_exited` event of a lossy receiver named this message id among those its death dropped. */
  dropped(id: unknown): void {
    const seq = this.seqOf(id);
    if (seq < 0) this.#foreign++;
    else if (this.#dropped[seq]! < 255) this.#dropped[seq]!++;
  }

  /**
   * Puts every message sent in exactly one class, by its id: handled; else dead-lettered (still in
   * the queue); else reported failed by its outcome; else, for the kinds in `lossy` (acknowledged at
   * `'enqueued'` with `'log'` or `'ignore'`), dropped with its receiver when a drop event named its
   * id. The rest is unaccounted, on its own kind's row: a message lost without a word. A drop event
   * naming a message that ended otherwise, or naming it again, is over-reported, on that message's
   * kind: a count of drops cannot make up for a silent loss.
   */
  account(kinds: number, lossy: ReadonlySet<number>): Accounting {
    const byKind: KindAccount[] = Array.from({ length: kinds }, () => ({ sent: 0, handled: 0, deadLettered: 0, failedReported: 0, dropped: 0, unaccounted: 0, overReported: 0 }));
    const ids: KindIds[] = Array.from({ length: kinds }, () => ({ unaccounted: [], overReported: [] }));
    let duplicates = 0;
    let overlaps = 0;
    for (let seq = 0; seq < this.sent; seq++) {
      const k = this.#kind[seq]! - 1;
      const a = byKind[k]!;
      const h = this.#handled[seq]!;
      const o = this.#outcome[seq]!;
      const q = this.#queued[seq] === 1;
      const d = this.#dropped[seq]!;
      /** The drop events' namings beyond the one a dropped message may have. */
      let extra = d;
      a.sent++;
      if (h > 0) {
        a.handled++;
        duplicates += h - 1;
        if (q || o === FAILED) overlaps++;
      } else if (q) {
        a.deadLettered++;
        if (o === FAILED) overlaps++;
      } else if (o === FAILED) {
        a.failedReported++;
      } else if (o === OK && lossy.has(k) && d > 0) {
        a.dropped++;
        extra = d - 1;
      } else {
        // no outcome yet (PENDING), delivered / dead-lettered and then gone without being handled, or
        // a lossy message no drop event named
        a.unaccounted++;
        if (ids[k]!.unaccounted.length < EXAMPLES) ids[k]!.unaccounted.push(SoakLedger.id(seq));
      }
      if (extra > 0) {
        a.overReported += extra;
        if (ids[k]!.overReported.length < EXAMPLES) ids[k]!.overReported.push(SoakLedger.id(seq));
      }
    }
    const total: KindAccount = { sent: 0, handled: 0, deadLettered: 0, failedReported: 0, dropped: 0, unaccounted: 0, overReported: 0 };
    for (const a of byKind) for (const key of Object.keys(total) as (keyof KindAccount)[]) total[key] += a[key];
    return { byKind, total, ids, duplicates, overlaps, foreign: this.#foreign, overReported: total.overReported };
  }
}
