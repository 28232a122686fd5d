// The memory store of the dead letter queue: its pages in insertion order after a cursor, found by
// binary search over its order index rather than by walking the entries before the cursor.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { NewRecord, Record_ } from '../../src/delivery/stores/DeadLetterStore.js';
import { MemoryStore } from '../../src/delivery/stores/MemoryStore.js';
import type { DeadLetterFilter } from '../../src/runtime/serviceSlots.js';

function record(i: number, reason = 'timeout'): NewRecord {
  return {
    recipient: 'r',
    message: i,
    reason,
    metadata: {},
    attempts: 0,
    firstFailedAt: 0,
    lastAttemptAt: 0,
    nextRetryAt: 0,
    lastError: undefined,
    status: 'pending',
  } as unknown as NewRecord;
}

/**
 * Records that count how often `list` looks at them: each look reads the record's id or matches it
 * against the filter (which reads `status` once). The store gives the record its id by assignment.
 */
function counted(): { make: (i: number) => NewRecord; filter: DeadLetterFilter; looks: () => number } {
  let n = 0;
  const filter = {
    get status() {
      n++;
      return undefined;
    },
  } as unknown as DeadLetterFilter;
  const make = (i: number): NewRecord => {
    let id: string | undefined;
    return Object.defineProperty(record(i), 'id', {
      get() {
        n++;
        return id;
      },
      set(v: string) {
        id = v;
      },
      enumerable: true,
      configurable: true,
    });
  };
  return { make, filter, looks: () => n };
}

/** Every page of `store` for `filter`, `limit` at a time, by cursor. */
function pages(store: MemoryStore, filter: DeadLetterFilter, limit: number): Record_[][] {
  const out: Record_[][] = [];
  let cursor: string | undefined;
  do {
    const page = store.list(filter, 0, limit, cursor);
    out.push(page.entries);
    cursor = page.cursor;
  } while (cursor !== undefined);
  return out;
}

describe('MemoryStore.list', () => {
  it('starts a page after its cursor without looking at the entries before it', () => {
    const store = new MemoryStore(100_000, () => undefined);
    const { make, filter, looks } = counted();
    const ids: string[] = [];
    for (let i = 0; i < 50_000; i++) ids.push(store.add(make(i)));
    const page = store.list(filter, 0, 10, ids[39_999]);
    expect(page.entries.map((r) => r.message)).toEqual([40_000, 40_001, 40_002, 40_003, 40_004, 40_005, 40_006, 40_007, 40_008, 40_009]);
    expect(page.cursor).toBe(ids[40_009]);
    // the ten entries of the page (matched, then copied), and the one that tells there is a next page
    expect(looks()).toBe(21);
  });

  it('pages through 20,000 entries 100 at a time looking at each entry about once', () => {
    const store = new MemoryStore(100_000, () => undefined);
    const { make, filter, looks } = counted();
    for (let i = 0; i < 20_000; i++) store.add(make(i));
    const all = pages(store, filter, 100).flat();
    expect(all.map((r) => r.message)).toEqual(Array.from({ length: 20_000 }, (_, i) => i));
    // each entry matched and copied once; each page but the last also matches the next page's first
    expect(looks()).toBe(2 * 20_000 + 199);
  });

  it('continues after a cursor whose entry was removed, and skips the entries removed since', () => {
    const store = new MemoryStore(1000, () => undefined);
    const ids = Array.from({ length: 10 }, (_, i) => store.add(record(i)));
    const first = store.list({}, 0, 3, undefined);
    expect(first.cursor).toBe(ids[2]);
    store.remove(ids[2]!);
    store.remove(ids[3]!);
    store.remove(ids[5]!);
    const second = store.list({}, 0, 3, first.cursor);
    expect(second.entries.map((r) => r.message)).toEqual([4, 6, 7]);
  });

  it('answers the same pages as a walk of the entries, whatever was added, removed, evicted or purged in between', () => {
    type Op = { op: 'add'; reason: 'a' | 'b' } | { op: 'remove'; at: number } | { op: 'purge'; reason: 'a' | 'b' } | { op: 'page'; limit: number; from: number; reason: 'a' | 'b' | undefined };
    const op: fc.Arbitrary<Op> = fc.oneof(
      { weight: 6, arbitrary: fc.record({ op: fc.constant('add' as const), reason: fc.constantFrom('a' as const, 'b' as const) }) },
      { weight: 3, arbitrary: fc.record({ op: fc.constant('remove' as const), at: fc.nat() }) },
      { weight: 1, arbitrary: fc.record({ op: fc.constant('purge' as const), reason: fc.constantFrom('a' as const, 'b' as const) }) },
      { weight: 2, arbitrary: fc.record({ op: fc.constant('page' as const), limit: fc.integer({ min: 1, max: 7 }), from: fc.nat(), reason: fc.option(fc.constantFrom('a' as const, 'b' as const), { nil: undefined }) }) },
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 40 }), fc.array(op, { maxLength: 300 }), (capacity, ops) => {
        const store = new MemoryStore(capacity, () => undefined);
        // the model: the live entries in insertion order
        const model: { id: string; reason: string }[] = [];
        const everAdded: string[] = [];
        for (const o of ops) {
          if (o.op === 'add') {
            const id = store.add(record(everAdded.length, o.reason));
            everAdded.push(id);
            model.push({ id, reason: o.reason });
            if (model.length > capacity) model.shift();
          } else if (o.op === 'remove') {
            if (everAdded.length === 0) continue;
            const id = everAdded[o.at % everAdded.length]!;
            store.remove(id);
            const i = model.findIndex((m) => m.id === id);
            if (i >= 0) model.splice(i, 1);
          } else if (o.op === 'purge') {
            store.purge({ reason: o.reason }, 0);
            for (let i = model.length - 1; i >= 0; i--) if (model[i]!.reason === o.reason) model.splice(i, 1);
          } else {
            // a page after any id ever handed out (live or not), or from the start
            const cursor = o.from % (everAdded.length + 1) === 0 ? undefined : everAdded[(o.from % (everAdded.length + 1)) - 1];
            const filter = o.reason === undefined ? {} : { reason: o.reason };
            const page = store.list(filter, 0, o.limit, cursor);
            const after = cursor === undefined ? 0 : Number(cursor);
            const want = model.filter((m) => Number(m.id) > after && (o.reason === undefined || m.reason === o.reason));
            expect(page.entries.map((r) => r.id)).toEqual(want.slice(0, o.limit).map((m) => m.id));
            expect(page.cursor).toBe(want.length > o.limit ? want[o.limit - 1]!.id : undefined);
          }
        }
        expect(pages(store, {}, 5).flat().map((r) => r.id)).toEqual(model.map((m) => m.id));
      }),
      { numRuns: 300 },
    );
  });
});
