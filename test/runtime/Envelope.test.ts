// The envelope of a message that carries a message id and an acknowledgement listener, on its own:
// its brand check (which must never run a proxy's traps) and settle, which tells the listener
// exactly one outcome, once.
import { describe, expect, it } from 'vitest';
import { Envelope, type EnvelopeListener } from '../../src/runtime/internal/Envelope.js';
import { revokedProxy, thrown, trappingProxy } from '../support.js';

/** A listener that records each call with its arguments. */
function recorder(): { listener: EnvelopeListener; calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    listener: {
      handled: (...args: unknown[]) => void calls.push(['handled', ...args]),
      failed: (...args: unknown[]) => void calls.push(['failed', ...args]),
    },
  };
}

describe('Envelope', () => {
  it('holds its message, id and listener, unsettled', () => {
    const { listener } = recorder();
    const message = { order: 7 };
    const e = new Envelope(message, 'id-1', listener);
    expect(e.message).toBe(message);
    expect(e.id).toBe('id-1');
    expect(e.listener).toBe(listener);
    expect(e.settled).toBe(false);
  });

  it('carries any message as it is, a proxy or undefined included, without reading it', () => {
    for (const message of [undefined, null, 0, NaN, '', trappingProxy(), revokedProxy(), Symbol('m')]) {
      expect(new Envelope(message, 'x', undefined).message).toBe(message);
    }
  });
});

describe('Envelope.is', () => {
  it('is true for an envelope and for nothing else, however alike', () => {
    const e = new Envelope('m', 'id', undefined);
    expect(Envelope.is(e)).toBe(true);
    const lookalike = { message: 'm', id: 'id', listener: undefined, settled: false, settle: () => undefined };
    expect(Envelope.is(lookalike)).toBe(false);
    expect(Envelope.is(Object.create(Envelope.prototype))).toBe(false);
    expect(Envelope.is({ ...e })).toBe(false);
    for (const value of [undefined, null, 0, 'envelope', true, 1n, Symbol('e'), () => undefined, Envelope]) expect(Envelope.is(value)).toBe(false);
  });

  it('never runs a proxy’s traps: a trapping or revoked proxy is no envelope, and one around an envelope is none either', () => {
    let trapped = 0;
    const counting = new Proxy(new Envelope('m', 'id', undefined), {
      get: (t, k) => {
        trapped++;
        return Reflect.get(t, k) as unknown;
      },
      has: (t, k) => {
        trapped++;
        return Reflect.has(t, k);
      },
      getPrototypeOf: (t) => {
        trapped++;
        return Reflect.getPrototypeOf(t);
      },
    });
    expect(Envelope.is(counting)).toBe(false);
    expect(trapped).toBe(0);
    expect(Envelope.is(trappingProxy())).toBe(false);
    expect(Envelope.is(revokedProxy())).toBe(false);
  });
});

describe('Envelope.settle', () => {
  it.each([
    ['handled', ['handled']],
    ['crashed', ['failed', 'crashed', undefined]],
    ['down', ['failed', 'down', undefined]],
    ['dropped', ['failed', 'dropped', undefined]],
    ['withdrawn', ['failed', 'withdrawn', undefined]],
  ] as const)("tells the listener '%s' once, and lets go of it", (outcome, call) => {
    const { listener, calls } = recorder();
    const e = new Envelope('m', 'id', listener);
    e.settle(outcome);
    expect(calls).toEqual([call]);
    expect(e.settled).toBe(true);
    expect(e.listener).toBeUndefined();
  });

  it('hands the error on with a failure, whatever it is', () => {
    for (const error of [new Error('boom'), 'a string', undefined, null, trappingProxy()]) {
      const { listener, calls } = recorder();
      new Envelope('m', 'id', listener).settle('crashed', error);
      expect(calls).toHaveLength(1);
      expect(calls[0]).toHaveLength(3);
      expect(calls[0]![0]).toBe('failed');
      expect(calls[0]![1]).toBe('crashed');
      expect(calls[0]![2]).toBe(error); // the same value, never read (a proxy's traps would throw)
    }
  });

  it('tells nothing more on a second settle, whatever its outcome', () => {
    const { listener, calls } = recorder();
    const e = new Envelope('m', 'id', listener);
    e.settle('dropped');
    e.settle('handled');
    e.settle('crashed', new Error('late'));
    expect(calls).toEqual([['failed', 'dropped', undefined]]);
    expect(e.settled).toBe(true);
  });

  it('is settled with no listener to tell', () => {
    const e = new Envelope('m', 'id', undefined);
    e.settle('handled');
    expect(e.settled).toBe(true);
    expect(e.listener).toBeUndefined();
  });

  it('tells a listener that settles the envelope again from its callback only once', () => {
    const calls: string[] = [];
    const e: Envelope = new Envelope('m', 'id', {
      handled: () => {
        calls.push('handled');
        e.settle('down');
      },
      failed: (reason) => void calls.push(reason),
    });
    e.settle('handled');
    expect(calls).toEqual(['handled']);
  });

  it('lets a throwing listener’s error out of settle, and is settled all the same: the listener is not told again', () => {
    const boom = new Error('listener');
    let told = 0;
    const e = new Envelope('m', 'id', {
      handled: () => {
        told++;
        throw boom;
      },
      failed: () => void told++,
    });
    expect(thrown(() => e.settle('handled'))).toBe(boom);
    expect(e.settled).toBe(true);
    e.settle('down');
    expect(told).toBe(1);
  });

  it('tells a listener set after construction (a listener attached late), and none detached before settling', () => {
    const { listener, calls } = recorder();
    const late = new Envelope('m', 'id', undefined);
    late.listener = listener;
    late.settle('withdrawn');
    expect(calls).toEqual([['failed', 'withdrawn', undefined]]);
    const detached = recorder();
    const e = new Envelope('m', 'id', detached.listener);
    e.listener = undefined;
    e.settle('handled');
    expect(detached.calls).toEqual([]);
  });
});
