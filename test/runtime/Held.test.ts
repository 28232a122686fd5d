// The queue of the messages a suspended server holds (src/runtime/internal/Held.ts), driven directly:
// its order, its removal at and off the head (the oldest not skipped, or every one a predicate picks),
// and the compaction that gives taken slots back.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HeldQueue } from '../../src/runtime/internal/Held.js';

const NONE = Symbol('none');
const isSys = (m: unknown): boolean => typeof m === 'string' && m.startsWith('sys');

function filled(n: number): HeldQueue {
  const q = new HeldQueue();
  for (let i = 0; i < n; i++) q.push(i);
  return q;
}

function contents(q: HeldQueue): unknown[] {
  const out: unknown[] = [];
  q.forEach((m) => out.push(m));
  return out;
}

describe('HeldQueue', () => {
  it('takes in order from the head; length counts what is left', () => {
    const q = filled(3);
    expect(q.length).toBe(3);
    expect([q.shift(), q.shift()]).toEqual([0, 1]);
    expect(q.length).toBe(1);
    expect(contents(q)).toEqual([2]);
    q.push(3);
    expect(contents(q)).toEqual([2, 3]);
  });

  it('removeFirst at the head takes the head; off the head keeps the order of the rest; none when all are skipped', () => {
    const q = new HeldQueue();
    for (const m of ['a', 'sys1', 'b', 'sys2', 'c']) q.push(m);
    expect(q.removeFirst(isSys, NONE)).toBe('a');
    expect(q.length).toBe(4);
    expect(q.removeFirst(isSys, NONE)).toBe('b'); // behind a skipped one
    expect(contents(q)).toEqual(['sys1', 'sys2', 'c']);
    expect(q.removeFirst(isSys, NONE)).toBe('c');
    expect(contents(q)).toEqual(['sys1', 'sys2']);
    expect(q.removeFirst(isSys, NONE)).toBe(NONE);
    expect(q.length).toBe(2);
    expect([q.shift(), q.shift()]).toEqual(['sys1', 'sys2']);
    expect(q.length).toBe(0);
    expect(q.removeFirst(isSys, NONE)).toBe(NONE);
  });

  it('removeWhere takes every one it picks, at the head, in the middle and at the tail, keeping the order of the rest; undefined, with nothing written, when it picks none', () => {
    const q = new HeldQueue();
    for (const m of ['x1', 'a', 'x2', 'b', 'c', 'x3']) q.push(m);
    q.shift(); // a taken slot at the head: the removal starts past it
    q.push('x4');
    const picked = (m: unknown): boolean => typeof m === 'string' && m.startsWith('x');
    expect(q.removeWhere(picked)).toEqual(['x2', 'x3', 'x4']);
    expect(q.length).toBe(3);
    expect(contents(q)).toEqual(['a', 'b', 'c']);
    expect(q.removeWhere((m) => m === 'a')).toEqual(['a']); // at the head
    expect(contents(q)).toEqual(['b', 'c']);
    const before = q.items;
    const asked: unknown[] = [];
    expect(
      q.removeWhere((m) => {
        asked.push(m);
        return false;
      }),
    ).toBeUndefined();
    expect(asked).toEqual(['b', 'c']); // each asked once
    expect(q.items).toBe(before);
    expect(contents(q)).toEqual(['b', 'c']);
    q.push('d');
    expect([q.shift(), q.shift(), q.shift()]).toEqual(['b', 'c', 'd']);
  });

  it('removeWhere of every one left gives the array back; of none on an empty queue, undefined', () => {
    const q = filled(5);
    q.shift();
    expect(q.removeWhere(() => true)).toEqual([1, 2, 3, 4]);
    expect(q.length).toBe(0);
    expect([q.items.length, q.head]).toEqual([0, 0]);
    expect(q.removeWhere(() => true)).toBeUndefined();
    q.push('next');
    expect(q.shift()).toBe('next');
  });

  it('removeWhere past 1024 taken slots and half of what is left gives the taken slots back, the rest in order', () => {
    const q = filled(3000);
    for (let i = 0; i < 1100; i++) q.shift(); // 1100 taken: not half of 3000, kept
    expect(q.head).toBe(1100);
    expect(q.removeWhere((m) => (m as number) >= 2000)).toHaveLength(1000);
    expect(q.head).toBe(0); // 1100 taken, 900 left: compacted
    expect(q.items).toEqual(Array.from({ length: 900 }, (_, i) => 1100 + i));
  });

  it('gives the taken slots back past 1024 of them and half the array: what is left, in order, and nothing more', () => {
    const q = filled(3000);
    for (let i = 0; i < 1023; i++) q.shift();
    expect(q.head).toBe(1023); // under the bound: not compacted yet
    expect(q.items.length).toBe(3000);
    q.shift(); // 1024 taken, not half of 3000
    expect(q.items.length).toBe(3000);
    for (let i = 1024; i < 1500; i++) q.shift(); // 1500 taken: half
    expect(q.head).toBe(0);
    expect(q.items).toHaveLength(1500);
    expect(q.items[0]).toBe(1500);
    expect(q.length).toBe(1500);
    const rest: unknown[] = [];
    while (q.length > 0) rest.push(q.shift());
    expect(rest).toEqual(Array.from({ length: 1500 }, (_, i) => 1500 + i));
    expect(q.items.length).toBeLessThanOrEqual(1024); // the last compaction gave the slots back
  });

  it('a removal at the head counts toward the compaction as a shift does; one off the head past the bound keeps the order', () => {
    const q = new HeldQueue();
    q.push('sys');
    for (let i = 0; i < 4000; i++) q.push(i);
    // every removal is behind the system message at the head
    for (let i = 0; i < 3000; i++) expect(q.removeFirst(isSys, NONE)).toBe(i);
    expect(q.length).toBe(1001);
    expect(contents(q)).toEqual(['sys', ...Array.from({ length: 1000 }, (_, i) => 3000 + i)]);
    expect(q.items.length - q.head).toBe(1001);
    expect(q.items.length).toBeLessThanOrEqual(2 * 1024 + 1001); // the removed slots are given back as they go
  });

  it('a removal behind a few system messages costs a write per one of them, not one per held message (a drop_oldest server holding a Down first)', () => {
    const q = new HeldQueue();
    q.push('sys');
    for (let i = 0; i < 20_000; i++) q.push(i);
    // count the writes into the queue's array (splice moved every message behind the removed one)
    let writes = 0;
    q.items = new Proxy(q.items, {
      set(target, key, value) {
        writes++;
        return Reflect.set(target, key, value);
      },
      deleteProperty(target, key) {
        writes++;
        return Reflect.deleteProperty(target, key);
      },
    });
    for (let i = 0; i < 100; i++) {
      expect(q.removeFirst(isSys, NONE)).toBe(i);
      q.push(20_000 + i);
    }
    expect(writes).toBeLessThanOrEqual(100 * 4);
    expect(q.length).toBe(20_001);
    const all = contents(q);
    expect(all[0]).toBe('sys');
    expect(all.slice(1)).toEqual(Array.from({ length: 20_000 }, (_, i) => 100 + i));
  });

  it('matches a plain array under any mix of push, shift, removeFirst and removeWhere', () => {
    const op = fc.oneof(
      fc.record({ kind: fc.constant('push' as const), sys: fc.boolean() }),
      fc.record({ kind: fc.constant('shift' as const) }),
      fc.record({ kind: fc.constant('remove' as const) }),
      fc.record({ kind: fc.constant('removeWhere' as const), mod: fc.integer({ min: 1, max: 7 }), rest: fc.integer({ min: 0, max: 6 }) }),
      fc.record({ kind: fc.constant('burst' as const), n: fc.integer({ min: 0, max: 3000 }) }),
      fc.record({ kind: fc.constant('drain' as const), n: fc.integer({ min: 0, max: 3000 }) }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const q = new HeldQueue();
        const model: unknown[] = [];
        let seq = 0;
        const push = (sys: boolean): void => {
          const m = sys ? `sys${seq++}` : seq++;
          q.push(m);
          model.push(m);
        };
        for (const o of ops) {
          if (o.kind === 'push') push(o.sys);
          else if (o.kind === 'burst') for (let i = 0; i < o.n; i++) push(i % 97 === 0);
          else if (o.kind === 'shift' || o.kind === 'drain') {
            const n = o.kind === 'shift' ? 1 : o.n;
            for (let i = 0; i < n && model.length > 0; i++) expect(q.shift()).toBe(model.shift());
          } else if (o.kind === 'removeWhere') {
            const picked = (m: unknown): boolean => typeof m === 'number' && m % o.mod === o.rest;
            const taken = model.filter(picked);
            model.splice(0, model.length, ...model.filter((m) => !picked(m)));
            expect(q.removeWhere(picked)).toEqual(taken.length === 0 ? undefined : taken);
          } else {
            const at = model.findIndex((m) => !isSys(m));
            expect(q.removeFirst(isSys, NONE)).toBe(at === -1 ? NONE : model.splice(at, 1)[0]);
          }
          expect(q.length).toBe(model.length);
          // the slots held beyond what is left are bounded: never more than the compaction bound or what is left
          expect(q.head).toBeLessThanOrEqual(Math.max(1024, q.items.length - q.head));
        }
        expect(contents(q)).toEqual(model);
      }),
      { numRuns: 200 },
    );
  });
});
