// The shape of src, checked: no import cycle among its files, type-only imports included (a cycle
// ties modules together, and makes what a module's top level sees depend on which was loaded first).
// A failure names each cycle found, its files relative to src.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cycles, importGraph, namedCycles, src } from './importGraph.js';

describe('src', () => {
  it('has no import cycle among its files, type-only imports included', () => {
    expect(namedCycles(importGraph(src))).toEqual([]);
  });

  it('finds a cycle when there is one (the check can fail)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('names a cycle by its files, relative to src', () => {
    const [a, b] = [join(src, 'x/a.ts'), join(src, 'y/b.ts')];
    const g = new Map([
      [a, [b]],
      [b, [a]],
    ]);
    expect(namedCycles(g)).toEqual(['x/a.ts -> y/b.ts -> x/a.ts']);
  });
});
