import { describe, expect, it } from 'vitest';
import { IdSequence } from '../../src/runtime/IdSequence.js';

describe('IdSequence', () => {
  it('yields prefix + 1, 2, 3, … in plain decimal across the thousands it rebuilds', () => {
    const ids = new IdSequence('app-1-');
    const other = new IdSequence('b-');
    for (let n = 1; n <= 1_002_345; n++) {
      const id = ids.next();
      if (id !== `app-1-${n}`) expect(id).toBe(`app-1-${n}`); // one expect per mismatch, not per id
    }
    // sequences are independent: the shared tables carry no state
    expect([other.next(), other.next()]).toEqual(['b-1', 'b-2']);
    expect(ids.next()).toBe('app-1-1002346');
  });
});
