// The SignalRouter's subscription trie on its own: pattern parsing, matching against a brute-force
// model, one value per (pattern, key), pruning back to the root, and the input it must refuse.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parsePattern, PatternTrie } from '../../../src/agents/internal/PatternTrie.js';
import { expectKeelError, revokedProxy, thrown, trappingProxy } from '../../support.js';

/** Every (value, pattern) that `match` visits for `type`, sorted. */
function visits<V>(trie: PatternTrie<V>, type: string): [V, string][] {
  const out: [V, string][] = [];
  trie.match(type.split('.'), (v, p) => out.push([v, p]));
  return out.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

/** The model: does `pattern` match `type`? Straight from the definition ('*' one segment, a trailing '**' one or more). */
function modelMatches(pattern: string, type: string): boolean {
  const p = pattern.split('.');
  const t = type.split('.');
  const rest = p[p.length - 1] === '**';
  const fixed = rest ? p.slice(0, -1) : p;
  if (rest ? t.length <= fixed.length : t.length !== fixed.length) return false;
  return fixed.every((s, i) => s === '*' || s === t[i]);
}

/** The model's node count: the root and one node per distinct prefix of a held pattern (its '**' excluded). */
function modelNodes(patterns: Iterable<string>): number {
  const prefixes = new Set<string>();
  for (const pattern of patterns) {
    const p = pattern.split('.');
    const fixed = p[p.length - 1] === '**' ? p.slice(0, -1) : p;
    for (let i = 1; i <= fixed.length; i++) prefixes.add(fixed.slice(0, i).join('.'));
  }
  return 1 + prefixes.size;
}

const EXPECTED = "expected `pattern` to be a dotted pattern of non-empty segments: literals, '*' (one segment), and '**' (the rest) as the last segment only";

describe('parsePattern', () => {
  it('splits a pattern into its segments', () => {
    expect(parsePattern('order')).toEqual(['order']);
    expect(parsePattern('order.*.eu')).toEqual(['order', '*', 'eu']);
    expect(parsePattern('**')).toEqual(['**']);
    expect(parsePattern('a.*.**')).toEqual(['a', '*', '**']);
    expect(parsePattern('*.*')).toEqual(['*', '*']);
    // any other character is a literal
    expect(parsePattern('a b.ü-ñ.#.$')).toEqual(['a b', 'ü-ñ', '#', '$']);
  });

  it.each([
    ['an empty pattern', '', 'got ""'],
    ['a leading dot', '.a', 'a segment is empty'],
    ['a trailing dot', 'a.', 'a segment is empty'],
    ['two dots', 'a..b', 'a segment is empty'],
    ['a lone dot', '.', 'a segment is empty'],
    ["'**' not last", '**.a', "'**' may only be the last segment"],
    ["'**' in the middle", 'a.**.b', "'**' may only be the last segment"],
    ['a wildcard inside a segment', 'a*', "wildcards are whole segments ('a*' mixes '*' with other characters)"],
    ['a wildcard after a literal', 'a.*b', "wildcards are whole segments ('*b' mixes '*' with other characters)"],
    ['three stars', '***', "wildcards are whole segments ('***' mixes '*' with other characters)"],
  ])('refuses %s with ERR_INVALID_ARGUMENT saying why', (_what, pattern, why) => {
    expectKeelError(thrown(() => parsePattern(pattern)), 'ERR_INVALID_ARGUMENT', EXPECTED, why);
  });

  it('refuses a value that is not a string without reading it (a proxy, a String object, a getter), naming the argument given', () => {
    let read = 0;
    const getter = {
      get length(): number {
        read++;
        return 1;
      },
      toString(): string {
        read++;
        return 'a';
      },
    };
    for (const value of [undefined, null, 7, NaN, Symbol('a'), ['a'], new String('a'), getter, trappingProxy(), revokedProxy(), () => 'a']) {
      expectKeelError(thrown(() => parsePattern(value, 'options.pattern')), 'ERR_INVALID_ARGUMENT', '`options.pattern`');
    }
    expect(read).toBe(0);
  });

  it('takes a pattern of 10,000 segments', () => {
    const long = Array.from({ length: 10_000 }, (_, i) => (i % 2 === 0 ? '*' : `s${i}`)).join('.');
    expect(parsePattern(long)).toHaveLength(10_000);
  });
});

describe('PatternTrie matching', () => {
  it('visits each match with the pattern it was subscribed under, a trailing ** as written', () => {
    const trie = new PatternTrie<string>();
    for (const p of ['**', 'a.**', 'a.*.**', 'a.*.c', 'a.b.c', '*.b.*', 'a.b']) trie.add(p, 'k', `v:${p}`);
    expect(visits(trie, 'a.b.c')).toEqual([
      ['v:**', '**'],
      ['v:*.b.*', '*.b.*'],
      ['v:a.**', 'a.**'],
      ['v:a.*.**', 'a.*.**'],
      ['v:a.*.c', 'a.*.c'],
      ['v:a.b.c', 'a.b.c'],
    ]);
    expect(visits(trie, 'a.b')).toEqual([
      ['v:**', '**'],
      ['v:a.**', 'a.**'],
      ['v:a.b', 'a.b'],
    ]);
    expect(visits(trie, 'a')).toEqual([['v:**', '**']]);
  });

  it('visits a key once per matching pattern (the caller dedupes)', () => {
    const trie = new PatternTrie<string>();
    trie.add('a.*', 'same', 'x');
    trie.add('a.b', 'same', 'y');
    trie.add('**', 'same', 'z');
    trie.add('a.b', 'other', 'w');
    expect(visits(trie, 'a.b')).toEqual([
      ['w', 'a.b'],
      ['x', 'a.*'],
      ['y', 'a.b'],
      ['z', '**'],
    ]);
  });

  it('matches nothing for an empty list of segments, not even **', () => {
    const trie = new PatternTrie<number>();
    trie.add('**', 'k', 1);
    trie.add('*', 'k', 2);
    const seen: number[] = [];
    trie.match([], (v) => seen.push(v));
    expect(seen).toEqual([]);
  });

  it('matches a type literally: a segment that reads like a wildcard in the type is only a segment', () => {
    const trie = new PatternTrie<string>();
    trie.add('a.b', 'k', 'literal');
    trie.add('a.*', 'k', 'star');
    expect(visits(trie, 'a.*')).toEqual([['star', 'a.*']]);
    const seen: string[] = [];
    trie.match(['a', '**'], (v) => seen.push(v));
    expect(seen).toEqual(['star']);
  });

  it('keeps segments named like Object.prototype members apart from the prototype (__proto__, constructor)', () => {
    const trie = new PatternTrie<string>();
    expect(trie.add('__proto__.constructor', '__proto__', 'p')).toBe(true);
    expect(trie.add('constructor.*', 'toString', 'c')).toBe(true);
    expect(visits(trie, '__proto__.constructor')).toEqual([['p', '__proto__.constructor']]);
    expect(visits(trie, 'constructor.hasOwnProperty')).toEqual([['c', 'constructor.*']]);
    expect(visits(trie, 'toString.valueOf')).toEqual([]);
    expect(trie.get('__proto__.constructor', '__proto__')).toBe('p');
    expect(({} as Record<string, unknown>).constructor).toBe(Object);
    expect(trie.remove('__proto__.constructor', '__proto__')).toBe(true);
    expect(trie.remove('constructor.*', 'toString')).toBe(true);
    expect(trie.nodeCount).toBe(1);
  });

  it('stops a match at a visitor that throws, and leaves the trie as it was', () => {
    const trie = new PatternTrie<number>();
    trie.add('a.b', 'k1', 1);
    trie.add('a.b', 'k2', 2);
    const boom = new Error('visitor');
    const seen: number[] = [];
    expect(
      thrown(() =>
        trie.match(['a', 'b'], (v) => {
          seen.push(v);
          throw boom;
        }),
      ),
    ).toBe(boom);
    expect(seen).toEqual([1]);
    expect(trie.size).toBe(2);
    expect(visits(trie, 'a.b')).toEqual([
      [1, 'a.b'],
      [2, 'a.b'],
    ]);
  });

  it('agrees with the model for any sequence of adds and removes, and prunes back to the root alone', () => {
    const segment = fc.constantFrom('a', 'b', 'c', '*');
    const pattern = fc
      .tuple(fc.array(segment, { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([segs, rest]) => (rest ? [...segs, '**'] : segs).join('.'));
    const anyPattern = fc.oneof(pattern, fc.constant('**'));
    const op = fc.tuple(fc.constantFrom('add', 'remove'), anyPattern, fc.constantFrom('k1', 'k2', 'k3'));
    const types = ['a', 'b', 'a.b', 'a.c', 'b.a', 'a.b.c', 'c.c.c', 'a.a.a.a', 'a.b.c.a.b', 'x.y'];
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const trie = new PatternTrie<string>();
        const model = new Map<string, string>(); // `${pattern} ${key}` -> value
        ops.forEach(([what, p, key], i) => {
          const id = `${p} ${key}`;
          if (what === 'add') {
            expect(trie.add(p, key, `v${i}`)).toBe(!model.has(id));
            model.set(id, `v${i}`);
          } else {
            expect(trie.remove(p, key)).toBe(model.delete(id));
          }
          expect(trie.size).toBe(model.size);
          expect(trie.nodeCount).toBe(modelNodes([...model.keys()].map((k) => k.split(' ')[0]!)));
        });
        for (const [id, value] of model) {
          const [p, key] = id.split(' ') as [string, string];
          expect(trie.get(p, key)).toBe(value);
        }
        for (const type of types) {
          const expected = [...model]
            .filter(([id]) => modelMatches(id.split(' ')[0]!, type))
            .map(([id, value]): [string, string] => [value, id.split(' ')[0]!])
            .sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
          expect(visits(trie, type)).toEqual(expected);
        }
        for (const id of model.keys()) {
          const [p, key] = id.split(' ') as [string, string];
          expect(trie.remove(p, key)).toBe(true);
        }
        expect(trie.size).toBe(0);
        expect(trie.nodeCount).toBe(1);
      }),
      { numRuns: 200 },
    );
  });
});

describe('PatternTrie add, get and remove', () => {
  it('counts the nodes of a pattern (its ** takes none) and shares common prefixes', () => {
    const trie = new PatternTrie<number>();
    expect(trie.nodeCount).toBe(1);
    trie.add('**', 'k', 0);
    expect(trie.nodeCount).toBe(1); // held by the root
    trie.add('a.b.c', 'k', 1);
    expect(trie.nodeCount).toBe(4);
    trie.add('a.b.**', 'k', 2);
    expect(trie.nodeCount).toBe(4);
    trie.add('a.*.c', 'k', 3);
    expect(trie.nodeCount).toBe(6);
    trie.add('a.*', 'k', 4);
    expect(trie.nodeCount).toBe(6);
    expect(trie.size).toBe(5);
  });

  it('tells an exact pattern from the same path with ** (a and a.** are two subscriptions)', () => {
    const trie = new PatternTrie<string>();
    expect(trie.add('a', 'k', 'exact')).toBe(true);
    expect(trie.add('a.**', 'k', 'rest')).toBe(true);
    expect(trie.get('a', 'k')).toBe('exact');
    expect(trie.get('a.**', 'k')).toBe('rest');
    expect(trie.remove('a', 'k')).toBe(true);
    expect(trie.get('a', 'k')).toBeUndefined();
    expect(trie.get('a.**', 'k')).toBe('rest');
    expect(trie.nodeCount).toBe(2);
  });

  it('answers undefined and false for what it does not hold, and creates no node asking', () => {
    const trie = new PatternTrie<number>();
    trie.add('a.b', 'k', 1);
    expect(trie.get('a.b', 'other')).toBeUndefined();
    expect(trie.get('a', 'k')).toBeUndefined();
    expect(trie.get('a.b.c.d', 'k')).toBeUndefined();
    expect(trie.get('a.*', 'k')).toBeUndefined();
    expect(trie.get('a.b.**', 'k')).toBeUndefined();
    expect(trie.remove('a.b.c.d', 'k')).toBe(false);
    expect(trie.remove('a.**', 'k')).toBe(false);
    expect(trie.remove('a', 'k')).toBe(false);
    expect(trie.nodeCount).toBe(3);
    expect(trie.size).toBe(1);
  });

  it('keeps an interior node that still leads somewhere when a pattern ending at it goes', () => {
    const trie = new PatternTrie<number>();
    trie.add('a', 'k', 1);
    trie.add('a.b.c', 'k', 2);
    expect(trie.nodeCount).toBe(4);
    expect(trie.remove('a', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(4);
    expect(trie.remove('a.b.c', 'k')).toBe(true);
    expect(trie.nodeCount).toBe(1);
  });

  it('keeps the other keys of a pattern when one key goes', () => {
    const trie = new PatternTrie<number>();
    trie.add('a.*', 'k1', 1);
    trie.add('a.*', 'k2', 2);
    expect(trie.remove('a.*', 'k1')).toBe(true);
    expect(trie.nodeCount).toBe(3);
    expect(visits(trie, 'a.z')).toEqual([[2, 'a.*']]);
  });

  it('holds any value, undefined included, and any key string', () => {
    const trie = new PatternTrie<unknown>();
    expect(trie.add('a', '', undefined)).toBe(true);
    expect(trie.add('a', '', null)).toBe(false); // the same (pattern, key): replaced
    expect(trie.add('a', '__proto__', undefined)).toBe(true);
    expect(trie.size).toBe(2);
    const seen: unknown[] = [];
    trie.match(['a'], (v) => seen.push(v));
    expect(seen).toEqual([null, undefined]);
  });

  it('refuses an invalid pattern in add, get and remove with ERR_INVALID_ARGUMENT, and changes nothing', () => {
    const trie = new PatternTrie<number>();
    trie.add('a.b', 'k', 1);
    for (const bad of ['', 'a..b', '**.a', 'a*', 42, null, trappingProxy()] as unknown[]) {
      expectKeelError(thrown(() => trie.add(bad as string, 'k', 2)), 'ERR_INVALID_ARGUMENT', '`pattern`');
      expectKeelError(thrown(() => trie.get(bad as string, 'k')), 'ERR_INVALID_ARGUMENT', '`pattern`');
      expectKeelError(thrown(() => trie.remove(bad as string, 'k')), 'ERR_INVALID_ARGUMENT', '`pattern`');
    }
    // a pattern refused at its last segment creates no node for the valid ones before it
    expectKeelError(thrown(() => trie.add('x.y.z*', 'k', 3)), 'ERR_INVALID_ARGUMENT', "'z*'");
    expect(trie.size).toBe(1);
    expect(trie.nodeCount).toBe(3);
  });

  it('grows to 10,000 subscriptions on one deep path and back to the root alone', () => {
    const trie = new PatternTrie<number>();
    const patterns = Array.from({ length: 10_000 }, (_, i) => `t.${i % 100}.${i}`);
    for (const [i, p] of patterns.entries()) trie.add(p, 'k', i);
    expect(trie.size).toBe(10_000);
    expect(trie.nodeCount).toBe(1 + 1 + 100 + 10_000);
    expect(visits(trie, 't.42.4242')).toEqual([[4242, 't.42.4242']]);
    for (const p of patterns.reverse()) expect(trie.remove(p, 'k')).toBe(true);
    expect(trie.size).toBe(0);
    expect(trie.nodeCount).toBe(1);
  });
});
