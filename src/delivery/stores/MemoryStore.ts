import { IdSequence } from '../../runtime/IdSequence.js';
import type { DeadLetterFilter } from '../../runtime/serviceSlots.js';
import { type DeadLetterStore, matches, type NewRecord, type Record_, seqOf } from './DeadLetterStore.js';

/**
 * @internal The default store: a Map in insertion order, bounded by `capacity`; past it the oldest
 * entry is evicted (the queue reports it). Messages are kept by reference, after the same structural
 * check a durable store applies, so behaviour does not change when a node moves to SQLite.
 */
export class MemoryStore implements DeadLetterStore {
  readonly kind = 'memory' as const;
  /** By sequence number (numbers hash faster than the ids' text). */
  readonly #records = new Map<number, Record_>();
  readonly #capacity: number;
  readonly #onEvict: (record: Record_) => void;
  #seq = 0;
  /** The ids' text, `String(seq)` without a conversion per add. */
  readonly #ids = new IdSequence('');
  /**
   * Every sequence number added, ascending (those removed since are skipped, and dropped when they
   * outnumber the records): a page after a cursor starts by binary search, not by walking the
   * entries before it (paging through a queue would cost its length squared). Built at the first
   * page after a cursor, kept from then on: a queue never paged pays nothing per add.
   */
  #order: number[] | undefined = undefined;

  constructor(capacity: number, onEvict: (record: Record_) => void) {
    this.#capacity = capacity;
    this.#onEvict = onEvict;
  }

  add(record: NewRecord): string {
    const seq = ++this.#seq;
    const id = this.#ids.next();
    // the queue hands over a fresh object: it becomes the stored record (no copy)
    (record as Record_).id = id;
    this.#records.set(seq, record as Record_);
    if (this.#order !== undefined && this.#order.push(seq) > 2 * this.#records.size + 64) this.#order = [...this.#records.keys()];
    if (this.#records.size > this.#capacity) {
      const [oldestSeq, oldest] = this.#records.entries().next().value!;
      this.#records.delete(oldestSeq);
      this.#onEvict(oldest);
    }
    return id;
  }

  get(id: string): Record_ | undefined {
    const seq = seqOf(id);
    const r = seq === undefined ? undefined : this.#records.get(seq);
    return r === undefined ? undefined : { ...r };
  }

  list(filter: DeadLetterFilter, now: number, limit: number, cursor: string | undefined): { entries: Record_[]; cursor?: string } {
    const entries: Record_[] = [];
    let more = false;
    const take = (r: Record_ | undefined): boolean => {
      if (r === undefined || !matches(r, filter, now)) return true;
      if (entries.length === limit) return !(more = true);
      entries.push({ ...r });
      return true;
    };
    if (cursor === undefined) {
      for (const r of this.#records.values()) if (!take(r)) break;
    } else {
      let order = this.#order;
      if (order === undefined || order.length > 2 * this.#records.size + 64) order = this.#order = [...this.#records.keys()];
      for (let i = firstAfter(order, Number(cursor)); i < order.length; i++) if (!take(this.#records.get(order[i]!))) break;
    }
    return more ? { entries, cursor: entries[entries.length - 1]!.id } : { entries };
  }

  lastId(): string | undefined {
    return this.#seq === 0 ? undefined : String(this.#seq);
  }

  update(id: string, changes: Partial<Record_>): void {
    const seq = seqOf(id);
    const r = seq === undefined ? undefined : this.#records.get(seq);
    if (r !== undefined) Object.assign(r, changes);
  }

  remove(id: string): void {
    const seq = seqOf(id);
    if (seq !== undefined) this.#records.delete(seq);
  }

  purge(filter: DeadLetterFilter, now: number): number {
    let n = 0;
    for (const r of [...this.#records.values()]) {
      if (matches(r, filter, now)) {
        this.#records.delete(Number(r.id));
        n++;
      }
    }
    return n;
  }

  due(now: number, limit: number): Record_[] {
    const out: Record_[] = [];
    for (const r of this.#records.values()) {
      if (r.status === 'pending' && r.nextRetryAt <= now) {
        out.push({ ...r });
        if (out.length === limit) break;
      }
    }
    return out;
  }

  earliest(after = -Infinity): number | undefined {
    let min: number | undefined;
    for (const r of this.#records.values()) if (r.status === 'pending' && r.nextRetryAt > after && (min === undefined || r.nextRetryAt < min)) min = r.nextRetryAt;
    return min;
  }

  earliestParked(): number | undefined {
    let min: number | undefined;
    for (const r of this.#records.values()) if (r.status === 'parked' && (min === undefined || r.lastAttemptAt < min)) min = r.lastAttemptAt;
    return min;
  }

  expire(before: number): number {
    let n = 0;
    for (const r of [...this.#records.values()]) {
      if (r.status === 'parked' && r.lastAttemptAt <= before) {
        this.#records.delete(Number(r.id));
        n++;
      }
    }
    return n;
  }

  counts(): { pending: number; parked: number } {
    let pending = 0;
    let parked = 0;
    for (const r of this.#records.values()) {
      if (r.status === 'pending') pending++;
      else parked++;
    }
    return { pending, parked };
  }

  close(): void {
    // nothing to release: the records go with the node
  }
}

/** The index of the first number in `sorted` (ascending) greater than `after`. */
function firstAfter(sorted: readonly number[], after: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid]! <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
