/** @internal What a {@link DeadlineHeap} orders: by deadline, then by creation. */
export interface Deadline {
  readonly at: number;
  readonly seq: number;
  /** Its place in the heap; -1 once out of it. */
  index: number;
}

function before(a: Deadline, b: Deadline): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/**
 * @internal A binary min-heap on (deadline, sequence) whose entries know their place, so that one
 * is removed in O(log n) (a cancelled timer). The node's timer heap, the simulated clock and the
 * test kit's `TestClock` use it (a plain data structure: outside `internal/` so that the kit may).
 */
export class DeadlineHeap<T extends Deadline> {
  /** The entries in heap order: `items[0]` is the earliest. */
  readonly items: T[] = [];

  get size(): number {
    return this.items.length;
  }

  push(e: T): void {
    e.index = this.items.length;
    this.items.push(e);
    this.#up(e.index);
  }

  /** Removes `e` if it is in this heap (by identity: an entry of another heap is left alone); true if it was. */
  remove(e: T): boolean {
    if (e.index < 0 || this.items[e.index] !== e) return false;
    this.removeAt(e.index);
    return true;
  }

  /** Removes the entry at `i` (0: the earliest) and returns it. */
  removeAt(i: number): T {
    const heap = this.items;
    const removed = heap[i]!;
    removed.index = -1;
    const last = heap.pop()!;
    if (i < heap.length) {
      heap[i] = last;
      last.index = i;
      if (i > 0 && before(last, heap[(i - 1) >> 1]!)) this.#up(i);
      else this.#down(i);
    }
    return removed;
  }

  /** Empties the heap (every entry's index becomes -1). */
  clear(): void {
    for (const e of this.items) e.index = -1;
    this.items.length = 0;
  }

  #up(i: number): void {
    const heap = this.items;
    const e = heap[i]!;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent]!;
      if (!before(e, p)) break;
      heap[i] = p;
      p.index = i;
      i = parent;
    }
    heap[i] = e;
    e.index = i;
  }

  #down(i: number): void {
    const heap = this.items;
    const n = heap.length;
    const e = heap[i]!;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && before(heap[r]!, heap[l]!) ? r : l;
      const child = heap[c]!;
      if (!before(child, e)) break;
      heap[i] = child;
      child.index = i;
      i = c;
    }
    heap[i] = e;
    e.index = i;
  }
}
