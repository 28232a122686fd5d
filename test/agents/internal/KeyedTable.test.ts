import { describe, expect, it } from 'vitest';
import { KeyedTable } from '../../../src/agents/internal/KeyedTable.js';

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
});
