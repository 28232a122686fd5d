// What the observer shows of a redactor's value: JSON-safe data, whatever the value does.
import { describe, expect, it } from 'vitest';
import { jsonSafe } from '../../src/observer/detail.js';

describe('jsonSafe', () => {
  it('keeps plain data, and says what it could not show', () => {
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const shared = { x: 1 };
    expect(jsonSafe({ n: 1, s: 's', b: true, nul: null, u: undefined, big: 12n, nan: NaN, inf: -Infinity, f: () => 1, sym: Symbol('s') })).toEqual({
      n: 1, s: 's', b: true, nul: null, u: null, big: '12', nan: 'NaN', inf: '-Infinity', f: '[function]', sym: '[symbol]',
    });
    expect(jsonSafe(cyclic)).toEqual({ a: 1, self: '[cycle]' });
    expect(jsonSafe([shared, shared])).toEqual([{ x: 1 }, { x: 1 }]); // shared is no cycle
    expect(jsonSafe(new Map([['k', new Set([1])]]))).toEqual([['k', [1]]]);
    expect(jsonSafe(new Error('boom'))).toEqual({ name: 'Error', message: 'boom' });
    expect(jsonSafe(new Date(0))).toBe('1970-01-01T00:00:00.000Z');
  });

  it('an invalid Date (new Date(undefined)) is shown as Invalid Date, as String shows it: it reads fine, it is not [unreadable]', () => {
    expect(jsonSafe({ at: new Date(NaN), ok: new Date(0) })).toEqual({ at: 'Invalid Date', ok: '1970-01-01T00:00:00.000Z' });
  });

  it('cuts a text longer than 10,000 characters (a string, a key, an error message), saying how long it was', () => {
    const long = 'x'.repeat(10_001);
    const cut = `${'x'.repeat(10_000)}… [10001 characters]`;
    expect(jsonSafe('y'.repeat(10_000))).toBe('y'.repeat(10_000));
    expect(jsonSafe({ s: long, [long]: 1, e: new Error(long) })).toEqual({ s: cut, [cut]: 1, e: { name: 'Error', message: cut } });
    // two strings of 2^28 characters: whole, their JSON would pass V8's longest string and throw
    const huge = 'z'.repeat(2 ** 28);
    expect(JSON.stringify(jsonSafe({ a: huge, b: huge }))).toBe(JSON.stringify({ a: `${'z'.repeat(10_000)}… [268435456 characters]`, b: `${'z'.repeat(10_000)}… [268435456 characters]` }));
  });

  it('a throwing getter, a revoked proxy, a __proto__ key, depth and width: no throw, no prototype pollution', () => {
    const getter = Object.defineProperty({}, 'secret', { enumerable: true, get: () => { throw new Error('no'); } });
    expect(jsonSafe({ g: getter })).toEqual({ g: '[unreadable]' });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(jsonSafe({ p: proxy })).toEqual({ p: '[unreadable]' });
    const evil = JSON.parse('{"__proto__": {"polluted": true}}') as object;
    const out = jsonSafe(evil) as Record<string, unknown>;
    expect(JSON.stringify(out)).toBe('{"__proto__":{"polluted":true}}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    let deep: unknown = 'bottom';
    for (let i = 0; i < 10; i++) deep = { d: deep };
    expect(JSON.stringify(jsonSafe(deep))).toBe('{"d":{"d":{"d":{"d":{"d":{"d":"[deeper]"}}}}}}');
    expect((jsonSafe(Array.from({ length: 500 }, (_, i) => i)) as unknown[]).length).toBe(200);
  });
});
