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
