import { describe, expect, it } from 'vitest';
import { KeyedTable } from '../../../src/agents/internal/KeyedTable.js';
import { seeded } from '../../support.js';

describe('KeyedTable', () => {
  it('keeps entries by key in insertion order across the switch to a Map and back', () => {
    const t = new KeyedTable<number>();
    for (let i = 0; i < 20; i++) t.add(`k${i}`, i); // past the small size: a Map
    expect(t.size).toBe(20);
    expect(t.get('k13')).toBe(13);
    expect(t.has('k19')).toBe(true);
    t.remove('k13', 99); // not its value: kept
    expect(t.get('k13')).toBe(13);
    for (let i = 0; i < 20; i += 2) t.remove(`k${i}`, i);
    expect(t.values()).toEqual([1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
    for (let i = 1; i < 20; i += 2) t.remove(`k${i}`, i);
    expect(t.size).toBe(0);
    expect(t.values()).toEqual([]);
    // back in the arrays: order, removal from the middle, values() a copy
    for (const k of ['a', 'b', 'c', 'd']) t.add(k, k.charCodeAt(0));
    t.remove('b', 98);
    const v = t.values();
    t.remove('a', 97);
    expect(v).toEqual([97, 99, 100]);
    expect(t.values()).toEqual([99, 100]);
    expect([t.size, t.get('a'), t.has('a'), t.get('d'), t.has('zz')]).toEqual([2, undefined, false, 100, false]);
    t.remove('zz', 1); // absent: nothing
    expect(t.size).toBe(2);
  });

  it('agrees with a Map model through growth past 8 entries, shrinking, and regrowth (seeded)', () => {
    for (let seed = 1; seed <= 8; seed++) {
      const random = seeded(seed);
      const table = new KeyedTable<object>();
      const model = new Map<string, object>();
      for (let step = 0; step < 300; step++) {
        const key = `k${Math.floor(random() * 14)}`;
        const r = random();
        if (r < 0.5) {
          if (!model.has(key)) {
            const v = {};
            table.add(key, v);
            model.set(key, v);
          }
        } else if (r < 0.9) {
          const v = model.get(key);
          if (v !== undefined) {
            table.remove(key, {}); // another value under the key: nothing removed
            table.remove(key, v);
            model.delete(key);
          }
        } else {
          table.remove(key, {});
        }
        expect(table.size).toBe(model.size);
        expect(table.values()).toEqual([...model.values()]);
        for (let k = 0; k < 14; k++) {
          expect(table.has(`k${k}`)).toBe(model.has(`k${k}`));
          expect(table.get(`k${k}`)).toBe(model.get(`k${k}`));
        }
      }
    }
  });

  it('keeps keys like __proto__ and constructor as plain keys in both forms', () => {
    const table = new KeyedTable<number>();
    const keys = ['__proto__', 'constructor', 'toString', 'a', 'b', 'c', 'd', 'e', 'f', 'g'];
    keys.forEach((k, i) => table.add(k, i));
    expect(table.size).toBe(10);
    expect(table.get('__proto__')).toBe(0);
    expect(table.has('hasOwnProperty')).toBe(false);
    keys.forEach((k, i) => table.remove(k, i));
    expect(table.size).toBe(0);
    expect(table.get('constructor')).toBeUndefined();
  });
});
