// The backoff of supervised sends and of the dead letter queue on its own: toBackoff validates the
// options (defaults, bounds, stray keys, values that cannot be read) and backoffDelay computes the
// delay before a retry: exponential from initialMs by factor up to maxMs, times random() under full jitter.
import { describe, expect, it } from 'vitest';
import { type Backoff, backoffDelay, DEFAULT_BACKOFF, toBackoff } from '../src/backoff.js';
import { expectKeelError, revokedProxy, thrown, trappingProxy } from './support.js';

/** A random() that answers `value` and counts its calls. */
function fixedRandom(value: number): { random: () => number; calls: () => number } {
  let calls = 0;
  return {
    random: () => {
      calls++;
      return value;
    },
    calls: () => calls,
  };
}

const noRandom = (): number => {
  throw new Error('random() is not drawn without jitter');
};

describe('toBackoff', () => {
  it('answers the frozen defaults for no options: 10 ms doubling up to 5 s, full jitter', () => {
    expect(toBackoff(undefined)).toBe(DEFAULT_BACKOFF);
    expect(DEFAULT_BACKOFF).toEqual({ initialMs: 10, factor: 2, maxMs: 5000, jitter: 'full' });
    expect(Object.isFrozen(DEFAULT_BACKOFF)).toBe(true);
  });

  it('fills what is not given from the defaults, and takes what is', () => {
    expect(toBackoff({})).toEqual({ initialMs: 10, factor: 2, maxMs: 5000, jitter: 'full' });
    expect(toBackoff({ initialMs: 250 })).toEqual({ initialMs: 250, factor: 2, maxMs: 5000, jitter: 'full' });
    expect(toBackoff({ initialMs: 1, factor: 3, maxMs: 60_000, jitter: 'none' })).toEqual({ initialMs: 1, factor: 3, maxMs: 60_000, jitter: 'none' });
    // undefined is "not given" (the type forbids it; a JavaScript caller may pass it)
    expect(toBackoff({ initialMs: undefined, factor: undefined, maxMs: undefined, jitter: undefined } as never)).toEqual(DEFAULT_BACKOFF);
  });

  it('takes the lowest values allowed: initialMs 0, factor 1, maxMs 0', () => {
    expect(toBackoff({ initialMs: 0, factor: 1, maxMs: 0 })).toEqual({ initialMs: 0, factor: 1, maxMs: 0, jitter: 'full' });
  });

  it('takes the largest finite values', () => {
    const max = Number.MAX_VALUE;
    expect(toBackoff({ initialMs: max, factor: max, maxMs: max })).toEqual({ initialMs: max, factor: max, maxMs: max, jitter: 'full' });
  });

  it.each([
    ['initialMs', -1, 0],
    ['initialMs', -Number.MIN_VALUE, 0],
    ['maxMs', -1, 0],
    ['factor', 0.999, 1],
    ['factor', 0, 1],
    ['factor', -2, 1],
  ] as const)('refuses %s: %s (below %s) with ERR_INVALID_ARGUMENT naming it', (key, value, min) => {
    expectKeelError(thrown(() => toBackoff({ [key]: value })), 'ERR_INVALID_ARGUMENT', `\`backoff.${key}\``, `a finite number >= ${min}`);
  });

  it.each(['initialMs', 'factor', 'maxMs'] as const)('refuses a %s that is not a finite number: NaN, ±Infinity, a numeric string, a bigint, null, a Number object', (key) => {
    for (const value of [NaN, Infinity, -Infinity, '5', 5n, null, new Number(5), { valueOf: () => 5 }]) {
      expectKeelError(thrown(() => toBackoff({ [key]: value } as never)), 'ERR_INVALID_ARGUMENT', `\`backoff.${key}\``);
    }
  });

  it("refuses a jitter other than 'full' or 'none'", () => {
    for (const jitter of ['FULL', 'equal', '', 0, true, {}]) {
      expectKeelError(thrown(() => toBackoff({ jitter } as never)), 'ERR_INVALID_ARGUMENT', '`backoff.jitter`', "'full' | 'none'");
    }
  });

  it('refuses a value that is not an object, naming the argument it is given as', () => {
    for (const value of [null, 0, 'fast', true, Symbol('b')]) {
      expectKeelError(thrown(() => toBackoff(value as never)), 'ERR_INVALID_ARGUMENT', '`backoff`', '{ initialMs?, factor?, maxMs?, jitter? }');
      expectKeelError(thrown(() => toBackoff(value as never, 'options.backoff')), 'ERR_INVALID_ARGUMENT', '`options.backoff`');
    }
  });

  it('refuses a stray key (a misspelt option), naming it and the options there are', () => {
    expectKeelError(
      thrown(() => toBackoff({ initialMS: 100 } as never, 'services.deadLetters.backoff')),
      'ERR_INVALID_ARGUMENT',
      '`services.deadLetters.backoff.initialMS`',
      'no such option (services.deadLetters.backoff takes initialMs, factor, maxMs, jitter)',
    );
  });

  it('refuses options that cannot be read (a throwing getter, a proxy) with ERR_INVALID_ARGUMENT, never the raw error', () => {
    const getter = Object.defineProperty({}, 'factor', {
      enumerable: true,
      get: () => {
        throw new Error('factor getter');
      },
    });
    expectKeelError(thrown(() => toBackoff(getter as never)), 'ERR_INVALID_ARGUMENT', '`backoff.factor`', 'reading it threw Error: factor getter');
    expectKeelError(thrown(() => toBackoff(trappingProxy() as never)), 'ERR_INVALID_ARGUMENT', '`backoff`', 'reading it threw TypeError: trap');
    expectKeelError(thrown(() => toBackoff(revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', '`backoff`', 'Cannot perform');
  });

  it('validates the value it keeps: a getter that answers a good value first and a bad one next is refused', () => {
    let reads = 0;
    const shifty = Object.defineProperty({}, 'maxMs', { enumerable: true, get: () => (++reads === 1 ? 100 : NaN) });
    expectKeelError(thrown(() => toBackoff(shifty as never)), 'ERR_INVALID_ARGUMENT', '`backoff.maxMs`', 'got NaN');
  });
});

describe('backoffDelay', () => {
  const none = (o: Partial<Backoff>): Backoff => ({ ...DEFAULT_BACKOFF, jitter: 'none', ...o });

  it('without jitter: initialMs for the first retry, times factor for each next one, capped at maxMs', () => {
    const b = none({ initialMs: 10, factor: 2, maxMs: 5000 });
    expect([1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((r) => backoffDelay(b, r, noRandom))).toEqual([10, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000]);
    expect(backoffDelay(b, 1000, noRandom)).toBe(5000);
  });

  it('with full jitter: random() times the capped delay, drawing once per delay', () => {
    const b: Backoff = { initialMs: 100, factor: 3, maxMs: 1000, jitter: 'full' };
    const r = fixedRandom(0.25);
    // 100, 300, 900, then 2700 capped at 1000: a quarter of each
    expect([1, 2, 3, 4].map((n) => backoffDelay(b, n, r.random))).toEqual([25, 75, 225, 250]);
    expect(r.calls()).toBe(4);
    expect(backoffDelay(b, 1, () => 0)).toBe(0);
    expect(backoffDelay(b, 9, () => 0.5)).toBe(500); // capped at 1000 first, then jittered
  });

  it('keeps a factor of 1 constant, and an initialMs above maxMs at maxMs', () => {
    expect([1, 2, 50].map((r) => backoffDelay(none({ initialMs: 30, factor: 1 }), r, noRandom))).toEqual([30, 30, 30]);
    expect(backoffDelay(none({ initialMs: 9000, maxMs: 5000 }), 1, noRandom)).toBe(5000);
    expect(backoffDelay(none({ initialMs: 10, maxMs: 0 }), 1, noRandom)).toBe(0);
  });

  it('stays at maxMs when the exponential overflows to Infinity (huge factor, huge retry number)', () => {
    expect(backoffDelay(none({ initialMs: 1, factor: Number.MAX_VALUE, maxMs: 60_000 }), 3, noRandom)).toBe(60_000);
    expect(backoffDelay(none({ initialMs: 10, factor: 2, maxMs: 60_000 }), 5000, noRandom)).toBe(60_000);
    expect(backoffDelay(none({ initialMs: Number.MAX_VALUE, factor: 2, maxMs: Number.MAX_VALUE }), 2, noRandom)).toBe(Number.MAX_VALUE);
  });

  it('passes on what random() answers: the caller is the one to refuse a NaN or a throw', () => {
    const b: Backoff = { initialMs: 100, factor: 2, maxMs: 1000, jitter: 'full' };
    expect(backoffDelay(b, 1, () => NaN)).toBeNaN();
    const boom = new Error('random');
    expect(
      thrown(() =>
        backoffDelay(b, 1, () => {
          throw boom;
        }),
      ),
    ).toBe(boom);
  });
});

describe('backoff at the edges', () => {
  it('keeps a zero initial delay at 0 for any retry, where 0 x Infinity used to be NaN', () => {
    const b = toBackoff({ initialMs: 0, jitter: 'none' });
    expect([1, 1024, 1025, 2000, 1e6].map((retry) => backoffDelay(b, retry, () => 0.5))).toEqual([0, 0, 0, 0, 0]);
    expect(backoffDelay(toBackoff({ initialMs: 0 }), 5000, () => 1)).toBe(0);
  });

  it('caps a huge exponent at maxMs (Infinity times a positive delay)', () => {
    expect(backoffDelay(toBackoff({ initialMs: 1, maxMs: 750, jitter: 'none' }), 5000, () => 0.5)).toBe(750);
  });

  it('refuses jitter: null with ERR_INVALID_ARGUMENT (it used to read as full)', () => {
    expectKeelError(thrown(() => toBackoff({ jitter: null } as never)), 'ERR_INVALID_ARGUMENT');
  });
});
