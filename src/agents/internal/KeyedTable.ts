/**
 * @internal A table of values by string key, in insertion order, for a table that is small nearly
 * always and churns (an agent's running tasks: one in, one out, per task).
 *
 * A `Map` that churns allocates: V8 rehashes a table full of deleted entries, and shrinks (a new
 * table) each time it empties, which a one-task-at-a-time agent does per task. Up to {@link SMALL}
 * entries the table is two parallel arrays, searched linearly (allocation-free once they have
 * grown); above that it moves to a `Map`, and back to the arrays when the `Map` empties.
 */
export class KeyedTable<V> {
  // slots past #count are cleared, never cut off: a shorter array may get a new backing store when
  // it grows again (an allocation per task for a table that goes 0 -> 1 -> 0)
  #keys: (string | undefined)[] = [];
  #values: (V | undefined)[] = [];
  #count = 0;
  /** The entries while there are more than {@link SMALL} of them (the arrays are then empty). */
  #map: Map<string, V> | undefined = undefined;

  get size(): number {
    return this.#map === undefined ? this.#count : this.#map.size;
  }

  get(key: string): V | undefined {
    if (this.#map !== undefined) return this.#map.get(key);
    const keys = this.#keys;
    for (let i = 0; i < this.#count; i++) if (keys[i] === key) return this.#values[i];
    return undefined;
  }

  has(key: string): boolean {
    if (this.#map !== undefined) return this.#map.has(key);
    const keys = this.#keys;
    for (let i = 0; i < this.#count; i++) if (keys[i] === key) return true;
    return false;
  }

  /** Adds an entry; the key must not be in the table. */
  add(key: string, value: V): void {
    const map = this.#map;
    if (map !== undefined) {
      map.set(key, value);
      return;
    }
    const n = this.#count;
    if (n < SMALL) {
      this.#keys[n] = key;
      this.#values[n] = value;
      this.#count = n + 1;
      return;
    }
    const grown = new Map<string, V>();
    for (let i = 0; i < n; i++) {
      grown.set(this.#keys[i]!, this.#values[i]!);
      this.#keys[i] = undefined;
      this.#values[i] = undefined;
    }
    grown.set(key, value);
    this.#count = 0;
    this.#map = grown;
  }

  /** Removes the entry of `key` if its value is `value`. */
  remove(key: string, value: V): void {
    const map = this.#map;
    if (map !== undefined) {
      if (map.get(key) !== value) return;
      if (map.size === 1) this.#map = undefined; // back to the arrays (the Map is dropped, not shrunk)
      else map.delete(key);
      return;
    }
    const keys = this.#keys;
    const values = this.#values;
    const last = this.#count - 1;
    for (let i = 0; i <= last; i++) {
      if (keys[i] !== key) continue;
      if (values[i] !== value) return;
      // keep the order: shift the rest down by one (no splice: it allocates the removed part)
      for (let j = i; j < last; j++) {
        keys[j] = keys[j + 1];
        values[j] = values[j + 1];
      }
      keys[last] = undefined;
      values[last] = undefined;
      this.#count = last;
      return;
    }
  }

  /** The values, in insertion order (a copy: the caller may remove entries while going through it). */
  values(): V[] {
    return this.#map === undefined ? (this.#values.slice(0, this.#count) as V[]) : [...this.#map.values()];
  }
}

/** Entries kept in the arrays; above this the table is a `Map`. */
const SMALL = 8;
