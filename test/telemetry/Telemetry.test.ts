import diagnostics from 'node:diagnostics_channel';
import { performance } from 'node:perf_hooks';
import { describe, expect, it, vi } from 'vitest';
import { type Measurements, type Metadata, type Node } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { TelemetryBus } from '../../src/telemetry/Telemetry.js';
import { deferred, expectKeelError, fakeLogger, revokedProxy, thrown, useNodes } from '../support.js';

interface Seen {
  readonly event: string;
  readonly measurements: Measurements;
  readonly metadata: Metadata;
}

const track = useNodes();

/** Attaches a recording handler; returns what it saw. */
function record(node: Node, id: string, events: string[]): Seen[] {
  const seen: Seen[] = [];
  node.telemetry.attach(id, events, (event, measurements, metadata) => {
    seen.push({ event, measurements, metadata });
  });
  return seen;
}

/**
 * A span's start and its stop (or exception), timed on the real monotonic clock between the test's
 * own readings `before` and `after`: a duration depends on the machine, so this is the tightest
 * bound that always holds (the span starts no earlier than `before`, ends no later than `after`).
 */
function expectTimedWithin(seen: readonly Seen[], before: number, after: number): void {
  const started = seen[0]!.measurements.monotonicTime!;
  expect(started).toBeGreaterThanOrEqual(before);
  expect(started).toBeLessThanOrEqual(after);
  const duration = seen[1]!.measurements.duration!;
  expect(duration).toBeGreaterThanOrEqual(0);
  expect(duration).toBeLessThanOrEqual(after - started);
}

let channelSeq = 0;
/** A diagnostics_channel name nobody else uses. */
function freshEvent(what: string): string {
  return `keel.test_${what}_${++channelSeq}.happened`;
}

describe('telemetry.attach / execute', () => {
  it('calls a handler attached to an exact event name with the measurements and metadata', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.done']);
    node.telemetry.execute('keel.test.done', { count: 3 }, { who: 'me' });
    expect(seen).toEqual([{ event: 'keel.test.done', measurements: { count: 3 }, metadata: { who: 'me' } }]);
  });

  it('does not call an exact-name handler for other events, even ones extending the name', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.done']);
    node.telemetry.execute('keel.test.done.later', {}, {});
    node.telemetry.execute('keel.test.don', {}, {});
    node.telemetry.execute('keel.test', {}, {});
    expect(seen).toEqual([]);
  });

  it("calls a handler attached to 'prefix*' for every event starting with the prefix", () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.*']);
    node.telemetry.execute('keel.test.a', {}, {});
    node.telemetry.execute('keel.test.b.c', {}, {});
    node.telemetry.execute('keel.testx', {}, {});
    node.telemetry.execute('keel.other.a', {}, {});
    expect(seen.map((s) => s.event)).toEqual(['keel.test.a', 'keel.test.b.c']);
  });

  it('calls one handler for each of the events it was attached to', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.a', 'keel.test.b']);
    node.telemetry.execute('keel.test.b', {}, {});
    node.telemetry.execute('keel.test.a', {}, {});
    expect(seen.map((s) => s.event)).toEqual(['keel.test.b', 'keel.test.a']);
  });

  it('calls every handler attached to an event', () => {
    const node = track();
    const exact = record(node, 'exact', ['keel.test.a']);
    const prefix = record(node, 'prefix', ['keel.*']);
    node.telemetry.execute('keel.test.a', { n: 1 }, {});
    expect(exact.map((s) => s.measurements)).toEqual([{ n: 1 }]);
    expect(prefix.map((s) => s.measurements)).toEqual([{ n: 1 }]);
  });

  it('passes empty metadata when execute is given none', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.a']);
    node.telemetry.execute('keel.test.a', {});
    expect(seen[0]?.metadata).toEqual({});
  });

  it('throws ERR_INVALID_ARGUMENT for an id already attached, and keeps the first handler', () => {
    const node = track();
    const first = record(node, 'dup', ['keel.test.a']);
    const second: string[] = [];
    expect(() => node.telemetry.attach('dup', ['keel.test.a'], (e) => second.push(e))).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }),
    );
    node.telemetry.execute('keel.test.a', {}, {});
    expect(first).toEqual([{ event: 'keel.test.a', measurements: {}, metadata: {} }]);
    expect(second).toEqual([]);
  });
});

describe('telemetry.detach', () => {
  it.each([
    ['an exact-name', 'keel.test.a'],
    ['a prefix', 'keel.test.*'],
  ])('stops calling %s handler and returns true', (_label, pattern) => {
    const node = track();
    const seen = record(node, 'h', [pattern]);
    expect(node.telemetry.detach('h')).toBe(true);
    node.telemetry.execute('keel.test.a', {}, {});
    expect(seen).toEqual([]);
  });

  it('leaves the other handlers of the same event attached', () => {
    const node = track();
    record(node, 'gone', ['keel.test.a']);
    const kept = record(node, 'kept', ['keel.test.a']);
    node.telemetry.detach('gone');
    node.telemetry.execute('keel.test.a', {}, {});
    expect(kept).toEqual([{ event: 'keel.test.a', measurements: {}, metadata: {} }]);
  });

  it('returns false for an id that is not attached', () => {
    const node = track();
    expect(node.telemetry.detach('never-attached')).toBe(false);
    record(node, 'once', ['keel.test.a']);
    node.telemetry.detach('once');
    expect(node.telemetry.detach('once')).toBe(false);
  });

  it('frees the id for a new attach', () => {
    const node = track();
    record(node, 'h', ['keel.test.a']);
    node.telemetry.detach('h');
    const again = record(node, 'h', ['keel.test.b']);
    node.telemetry.execute('keel.test.b', {}, {});
    expect(again).toEqual([{ event: 'keel.test.b', measurements: {}, metadata: {} }]);
  });
});

describe('telemetry.span', () => {
  it('emits .start then .stop with a duration around a synchronous function, and returns its value', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const before = performance.now();
    const result = node.telemetry.span('keel.test.op', { job: 7 }, () => 42);
    const after = performance.now();
    expect(result).toBe(42);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
    // the node's first span
    expect(seen.map((s) => s.metadata)).toEqual([
      { job: 7, spanId: 1 },
      { job: 7, spanId: 1 },
    ]);
    expectTimedWithin(seen, before, after);
  });

  it('emits .exception with the error and rethrows when a synchronous function throws', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const boom = new Error('boom');
    const before = performance.now();
    expect(() =>
      node.telemetry.span('keel.test.op', { job: 7 }, () => {
        throw boom;
      }),
    ).toThrow(boom);
    const after = performance.now();
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.exception']);
    expect(seen[0]?.metadata).toEqual({ job: 7, spanId: 1 });
    expect(seen[1]?.metadata).toEqual({ job: 7, error: boom, spanId: 1 });
    expectTimedWithin(seen, before, after);
  });

  it('awaits a promise: .stop only once it resolves, and resolves to its value', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const pending = deferred<string>();
    const before = performance.now();
    const result = node.telemetry.span('keel.test.op', {}, () => pending.promise);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start']);
    const resolving = performance.now();
    pending.resolve('value');
    expect(await result).toBe('value');
    const after = performance.now();
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
    expect(seen.map((s) => s.metadata)).toEqual([{ spanId: 1 }, { spanId: 1 }]);
    expectTimedWithin(seen, before, after);
    // measured when the promise settled, not when the function returned it
    expect(seen[1]!.measurements.duration).toBeGreaterThanOrEqual(resolving - seen[0]!.measurements.monotonicTime!);
  });

  it('emits .exception with the error and rejects with it when the promise rejects', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const boom = new Error('async boom');
    const before = performance.now();
    const result = node.telemetry.span('keel.test.op', { job: 1 }, () => Promise.reject(boom));
    await expect(result).rejects.toBe(boom);
    const after = performance.now();
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.exception']);
    expect(seen[0]?.metadata).toEqual({ job: 1, spanId: 1 });
    expect(seen[1]?.metadata).toEqual({ job: 1, error: boom, spanId: 1 });
    expectTimedWithin(seen, before, after);
  });

  it('awaits a thenable that is not a native promise', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const inner = Promise.resolve(5);
    const thenable: PromiseLike<number> = { then: (onFulfilled, onRejected) => inner.then(onFulfilled, onRejected) };
    const result = node.telemetry.span('keel.test.op', {}, () => thenable);
    expect(await result).toBe(5);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
    expect(seen.map((s) => s.metadata)).toEqual([{ spanId: 1 }, { spanId: 1 }]);
  });
});

describe('telemetry.span on a monotonic clock the test moves', () => {
  /** A bus whose monotonic clock answers `ticks` in turn, and what it emitted. */
  function bus(...ticks: number[]): { telemetry: TelemetryBus; seen: Seen[] } {
    const telemetry = new TelemetryBus({ monotonicClock: () => ticks.shift()!, report: () => undefined });
    const seen: Seen[] = [];
    telemetry.attach('h', ['keel.test.op.*'], (event, measurements, metadata) => void seen.push({ event, measurements, metadata }));
    return { telemetry, seen };
  }

  it('measures a synchronous span from its start reading to its stop reading, exactly', () => {
    const { telemetry, seen } = bus(1000.25, 1042.75);
    expect(telemetry.span('keel.test.op', { job: 1 }, () => 'done')).toBe('done');
    expect(seen).toEqual([
      { event: 'keel.test.op.start', measurements: { monotonicTime: 1000.25 }, metadata: { job: 1, spanId: 1 } },
      { event: 'keel.test.op.stop', measurements: { duration: 42.5 }, metadata: { job: 1, spanId: 1 } },
    ]);
  });

  it('measures a throwing span up to its exception', () => {
    const { telemetry, seen } = bus(10, 17);
    const boom = new Error('boom');
    expect(() =>
      telemetry.span('keel.test.op', {}, () => {
        throw boom;
      }),
    ).toThrow(boom);
    expect(seen.map((e) => [e.event, e.measurements])).toEqual([
      ['keel.test.op.start', { monotonicTime: 10 }],
      ['keel.test.op.exception', { duration: 7 }],
    ]);
  });

  it('numbers overlapping async spans 1, 2, … and times each from its own start, whatever order they settle in', async () => {
    const { telemetry, seen } = bus(100, 130, 500, 900);
    const first = deferred<string>();
    const second = deferred<string>();
    const a = telemetry.span('keel.test.op', { which: 'a' }, () => first.promise); // starts at 100
    const b = telemetry.span('keel.test.op', { which: 'b' }, () => second.promise); // starts at 130
    second.resolve('b');
    expect(await b).toBe('b'); // stops at 500
    first.reject(new Error('a failed'));
    await expect(a).rejects.toThrow('a failed'); // ends at 900
    expect(seen.map((e) => [e.event, e.measurements, e.metadata.which, e.metadata.spanId])).toEqual([
      ['keel.test.op.start', { monotonicTime: 100 }, 'a', 1],
      ['keel.test.op.start', { monotonicTime: 130 }, 'b', 2],
      ['keel.test.op.stop', { duration: 370 }, 'b', 2],
      ['keel.test.op.exception', { duration: 800 }, 'a', 1],
    ]);
  });

  it('leaves the metadata it was given as it was (the spanId goes on a copy)', () => {
    const { telemetry } = bus(0, 1);
    const metadata = { job: 3 };
    telemetry.span('keel.test.op', metadata, () => undefined);
    expect(metadata).toEqual({ job: 3 });
  });
});

describe('failing telemetry handlers', () => {
  it('detach a handler that throws, and still run the other handlers of the event', () => {
    const node = track();
    let badCalls = 0;
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      badCalls++;
      throw new Error('handler bug');
    });
    const good = record(node, 'good', ['keel.test.a']);
    node.telemetry.execute('keel.test.a', {}, {});
    node.telemetry.execute('keel.test.a', {}, {});
    expect(badCalls).toBe(1);
    expect(good).toEqual(Array(2).fill({ event: 'keel.test.a', measurements: {}, metadata: {} }));
    expect(node.telemetry.detach('bad')).toBe(false);
  });

  it('detach a prefix handler that throws', () => {
    const node = track();
    let badCalls = 0;
    node.telemetry.attach('bad', ['keel.test.*'], () => {
      badCalls++;
      throw new Error('handler bug');
    });
    node.telemetry.execute('keel.test.a', {}, {});
    node.telemetry.execute('keel.test.b', {}, {});
    expect(badCalls).toBe(1);
  });

  it('report a throwing handler as keel.telemetry.handler_failed with the handler id and the event', () => {
    const node = track();
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    const bug = new Error('handler bug');
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw bug;
    });
    node.telemetry.execute('keel.test.a', {}, {});
    expect(failures).toEqual([{ event: 'keel.telemetry.handler_failed', measurements: {}, metadata: { handlerId: 'bad', event: 'keel.test.a', error: bug } }]);
    expect(failures[0]!.metadata.error).toBe(bug);
  });

  it('detach a handler that re-enters itself without end (its handler executes its own event) at 32 levels, and report it on both channels, once', () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    let calls = 0;
    node.telemetry.attach('again', ['app.r'], () => {
      calls++;
      node.telemetry.execute('app.r', {}, {});
    });
    node.telemetry.execute('app.r', {}, {});
    expect(calls).toBe(32);
    expect(failures).toHaveLength(1);
    expect(failures[0]!.metadata).toMatchObject({ handlerId: 'again', event: 'app.r' });
    expectKeelError(failures[0]!.metadata.error, 'ERR_TELEMETRY_RECURSION', "'again'", '32');
    expect(vi.mocked(logger.warn)).toHaveBeenCalledTimes(1);
    expect(vi.mocked(logger.warn).mock.calls[0]![0]).toBe("telemetry handler 'again' failed on app.r and was detached");
    node.telemetry.execute('app.r', {}, {});
    expect(calls).toBe(32); // detached
    // a handler that re-enters a few levels, and ends, is left alone
    let depth = 0;
    node.telemetry.attach('bounded', ['app.b'], () => {
      if (++depth < 10) node.telemetry.execute('app.b', {}, {});
    });
    node.telemetry.execute('app.b', {}, {});
    expect(depth).toBe(10);
    expect(failures).toHaveLength(1);
  });

  it('report a throwing handler to the node’s logger.warn', () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const bug = new Error('handler bug');
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw bug;
    });
    node.telemetry.execute('keel.test.a', {}, {});
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(logger.warn).toHaveBeenCalledWith("telemetry handler 'bad' failed on keel.test.a and was detached", bug);
  });

  it('never make execute throw', () => {
    const node = track();
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw 'not even an Error';
    });
    expect(() => node.telemetry.execute('keel.test.a', {}, {})).not.toThrow();
    expect(node.telemetry.detach('bad')).toBe(false); // detached for it
  });
});

describe('hostile handlers and arguments', () => {
  it('a handler that throws a revoked proxy is detached and reported; execute does not throw', () => {
    const node = track();
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    const proxy = revokedProxy();
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw proxy;
    });
    expect(thrown(() => node.telemetry.execute('keel.test.a', {}, {}))).toBe('nothing was thrown');
    expect(node.telemetry.detach('bad')).toBe(false);
    expect(failures.length).toBe(1);
    expect(failures[0]!.metadata.handlerId).toBe('bad');
    expectKeelError(failures[0]!.metadata.error, 'ERR_THROWN_VALUE');
  });

  it('a handler attached to the same event name twice runs once per event, and is reported once when it throws', () => {
    const node = track();
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    let calls = 0;
    node.telemetry.attach('bad', ['keel.test.a', 'keel.test.a'], () => {
      calls++;
      throw new Error('handler bug');
    });
    node.telemetry.execute('keel.test.a', {}, {});
    expect(calls).toBe(1);
    expect(failures.length).toBe(1);
  });

  it('refuses events it cannot read with ERR_INVALID_ARGUMENT and attaches nothing; reads them once', () => {
    const node = track();
    let reads = 0;
    const shifty = new Proxy(['keel.test.a'], {
      get(target, key, receiver) {
        if (key === '0') return reads++ === 0 ? 'keel.test.a' : 42;
        return Reflect.get(target, key, receiver) as unknown;
      },
    });
    const throwing = Object.defineProperty([] as string[], 0, { get: () => { throw new Error('getter'); }, enumerable: true });
    for (const events of [revokedProxy(), throwing]) {
      expectKeelError(thrown(() => node.telemetry.attach('h', events as never, () => undefined)), 'ERR_INVALID_ARGUMENT');
      expect(node.telemetry.detach('h')).toBe(false);
    }
    // read once: the names checked are the names attached
    const seen = record(node, 'shifty', shifty);
    node.telemetry.execute('keel.test.a', {}, {});
    expect(seen.map((s) => s.event)).toEqual(['keel.test.a']);
    expect(reads).toBe(1);
  });

  it('execute and span refuse an event name that is not a string with ERR_INVALID_ARGUMENT', () => {
    const node = track();
    for (const event of [undefined, 42, {}]) {
      expectKeelError(thrown(() => node.telemetry.execute(event as never, {})), 'ERR_INVALID_ARGUMENT');
      expectKeelError(thrown(() => node.telemetry.span(event as never, {}, () => 1)), 'ERR_INVALID_ARGUMENT');
    }
  });

  it('execute refuses measurements or metadata that are not objects, and span a fn that is not a function or metadata it cannot read, before any handler runs', () => {
    const node = track();
    const seen = record(node, 'rec', ['app.*']);
    for (const measurements of [undefined, null, 7, 'x']) {
      expectKeelError(thrown(() => node.telemetry.execute('app.x', measurements as never)), 'ERR_INVALID_ARGUMENT', '`measurements`');
    }
    for (const metadata of [null, 7, 'x']) {
      expectKeelError(thrown(() => node.telemetry.execute('app.x', {}, metadata as never)), 'ERR_INVALID_ARGUMENT', '`metadata`');
    }
    expectKeelError(thrown(() => node.telemetry.span('app.s', {}, 'not a function' as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
    expectKeelError(thrown(() => node.telemetry.span('app.s', revokedProxy() as never, () => 1)), 'ERR_INVALID_ARGUMENT', '`metadata`');
    expect(seen).toEqual([]);
  });

  it('span returns a result whose then cannot be read as a plain value, with .stop', () => {
    const node = track();
    const seen = record(node, 'rec', ['app.s.*']);
    const proxy = revokedProxy();
    expect(node.telemetry.span('app.s', {}, () => proxy)).toBe(proxy);
    expect(seen.map((s) => s.event)).toEqual(['app.s.start', 'app.s.stop']);
  });

  it('span ends with .exception when the result’s then throws, and rethrows it', () => {
    const node = track();
    const seen = record(node, 'rec', ['app.s.*']);
    const bug = new Error('then bug');
    const bad = { then: () => { throw bug; } };
    expect(thrown(() => node.telemetry.span('app.s', {}, () => bad))).toBe(bug);
    expect(seen.map((s) => s.event)).toEqual(['app.s.start', 'app.s.exception']);
    expect(seen[1]!.metadata.error).toBe(bug);
  });

  it('span ends once when the result’s then calls back more than once (both callbacks, one twice, then throws): one .stop, no second end', () => {
    const node = track();
    const seen = record(node, 'rec', ['app.s.*']);
    const late = new Error('late');
    const values: unknown[] = [];
    const wild: PromiseLike<number> = {
      then: (onFulfilled, onRejected) => {
        values.push(onFulfilled?.(1), onFulfilled?.(2));
        values.push(thrown(() => onRejected?.(late)));
        throw late;
      },
    };
    expect(thrown(() => node.telemetry.span('app.s', {}, () => wild))).toBe(late);
    expect(seen.map((s) => s.event)).toEqual(['app.s.start', 'app.s.stop']);
    // what the callbacks hand back to the thenable is as before: the value, and the rejection rethrown
    expect(values).toEqual([1, 2, late]);
  });

  it('span of a thenable whose then returns nothing (another library\'s) gives a promise of its outcome, not undefined to await', async () => {
    const node = track();
    const seen = record(node, 'rec', ['app.s.*']);
    // each calls back later, and its then returns undefined
    const later = <T,>(ok: boolean, value: T): PromiseLike<T> => ({
      then: ((onFulfilled?: (v: T) => unknown, onRejected?: (e: unknown) => unknown) => {
        queueMicrotask(() => {
          try {
            if (ok) onFulfilled?.(value);
            else onRejected?.(value);
          } catch {
            // the rethrow of a rejection: this thenable keeps it
          }
        });
        return undefined;
      }) as unknown as PromiseLike<T>['then'],
    });
    expect(await node.telemetry.span('app.s', {}, () => later(true, 42))).toBe(42);
    const boom = new Error('boom');
    expect(await node.telemetry.span('app.s', {}, () => later(false, boom)).then(() => 'resolved', (e: unknown) => e)).toBe(boom);
    // one calling back at once, before then returns
    const now: PromiseLike<string> = { then: ((onFulfilled?: (v: string) => unknown) => void onFulfilled?.('sync')) as unknown as PromiseLike<string>['then'] };
    expect(await node.telemetry.span('app.s', {}, () => now)).toBe('sync');
    expect(seen.map((x) => x.event)).toEqual(['app.s.start', 'app.s.stop', 'app.s.start', 'app.s.exception', 'app.s.start', 'app.s.stop']);
  });

  it('a handler whose patterns overlap (an exact name and prefixes matching one event) runs once per event', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.a', 'keel.test.*', 'keel.*', '*']);
    node.telemetry.execute('keel.test.a', {}, {});
    node.telemetry.execute('keel.test.b', {}, {});
    node.telemetry.execute('keel.other', {}, {});
    expect(seen.map((s) => s.event)).toEqual(['keel.test.a', 'keel.test.b', 'keel.other']);
  });

  it('a handler that throws under two matching prefixes is run once and reported once, not re-run after its detach', () => {
    const node = track();
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    let calls = 0;
    node.telemetry.attach('bad', ['keel.test.*', 'keel.*'], () => {
      calls++;
      throw new Error('handler bug');
    });
    node.telemetry.execute('keel.test.a', {}, {});
    expect(calls).toBe(1);
    expect(failures.map((f) => f.metadata.handlerId)).toEqual(['bad']);
  });

  it('a handler detached by an earlier handler of the same event is not called after its detach returned true', () => {
    const node = track();
    const detached: boolean[] = [];
    node.telemetry.attach('first', ['keel.test.a'], () => {
      detached.push(node.telemetry.detach('second'), node.telemetry.detach('third'));
    });
    const second = record(node, 'second', ['keel.test.a']);
    const third = record(node, 'third', ['keel.test.*']);
    node.telemetry.execute('keel.test.a', {}, {});
    expect(detached).toEqual([true, true]);
    expect(second).toEqual([]);
    expect(third).toEqual([]);
  });

  it('a handler attached mid-dispatch sees the next event, not the one being dispatched', () => {
    const node = track();
    const late: string[] = [];
    node.telemetry.attach('first', ['keel.test.*'], (event) => {
      if (event === 'keel.test.a') node.telemetry.attach('late', ['keel.test.a', 'keel.test.*'], (e) => late.push(e));
    });
    node.telemetry.execute('keel.test.a', {}, {});
    expect(late).toEqual([]);
    node.telemetry.execute('keel.test.b', {}, {});
    expect(late).toEqual(['keel.test.b']);
  });

  it('a handler that throws an object whose keelExitSentinel getter throws is detached and reported; execute does not throw', () => {
    const node = track();
    const failures = record(node, 'watch', ['keel.telemetry.handler_failed']);
    const hostile = {
      get keelExitSentinel(): never {
        throw new Error('getter');
      },
    };
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw hostile;
    });
    expect(thrown(() => node.telemetry.execute('keel.test.a', {}, {}))).toBe('nothing was thrown');
    expect(node.telemetry.detach('bad')).toBe(false);
    expect(failures.map((f) => f.metadata.handlerId)).toEqual(['bad']);
    expectKeelError(failures[0]!.metadata.error, 'ERR_THROWN_VALUE');
  });
});

describe('telemetry with many handlers', () => {
  // quadratic attach or detach (a copy of every list per call) takes minutes here; linear takes well under a second
  it('attaches and detaches 100,000 handlers on one exact event and 100,000 on prefixes, in either order, in linear time', { timeout: 10_000 }, () => {
    const node = track();
    const N = 100_000;
    let calls = 0;
    const handler = (): void => {
      calls++;
    };
    for (let i = 0; i < N; i++) node.telemetry.attach(`e${i}`, ['app.one'], handler);
    for (let i = 0; i < N; i++) node.telemetry.attach(`p${i}`, [`app.p${i}.*`], handler);
    node.telemetry.execute('app.one', {}, {});
    node.telemetry.execute(`app.p${N - 1}.x`, {}, {});
    expect(calls).toBe(N + 1);
    // from the front, and from the back
    for (let i = 0; i < N; i++) expect(node.telemetry.detach(`e${i}`)).toBe(true);
    for (let i = N - 1; i >= 0; i--) expect(node.telemetry.detach(`p${i}`)).toBe(true);
    calls = 0;
    node.telemetry.execute('app.one', {}, {});
    node.telemetry.execute('app.p0.x', {}, {});
    expect(calls).toBe(0);
    expect((node.telemetry as TelemetryBus).isAttached('app.one')).toBe(false);
    expect((node.telemetry as TelemetryBus).isAttached('app.p0.x')).toBe(false);
  });
});

describe('telemetry and diagnostics_channel', () => {
  it('publishes every event on the diagnostics channel of its own name', () => {
    const node = track();
    const name = freshEvent('published');
    const published: unknown[] = [];
    const onMessage = (message: unknown) => published.push(message);
    diagnostics.subscribe(name, onMessage);
    try {
      node.telemetry.execute(name, { n: 2 }, { tag: 'x' });
    } finally {
      diagnostics.unsubscribe(name, onMessage);
    }
    expect(published).toEqual([{ event: name, measurements: { n: 2 }, metadata: { tag: 'x' } }]);
  });

  it('keeps nothing per event name it emits or is asked about: an application\'s names without end (app.request.<id>) cost no memory', () => {
    const node = track();
    const bus = node.telemetry as TelemetryBus;
    const before = bus.keptChannels;
    expect(typeof before).toBe('number');
    for (let i = 0; i < 1000; i++) {
      const name = `${freshEvent('unbounded')}.${i}`;
      node.telemetry.execute(name, { n: i }, {});
      expect(bus.isListening(name)).toBe(false);
    }
    expect(bus.keptChannels).toBe(before);
    // and a subscriber that comes for one of them still gets it
    const name = freshEvent('late');
    const published: unknown[] = [];
    const onMessage = (message: unknown) => published.push(message);
    diagnostics.subscribe(name, onMessage);
    try {
      expect(bus.isListening(name)).toBe(true);
      node.telemetry.execute(name, { n: 1 }, {});
    } finally {
      diagnostics.unsubscribe(name, onMessage);
    }
    expect(published).toEqual([{ event: name, measurements: { n: 1 }, metadata: {} }]);
  });

  it('publishes span events on their own channels', () => {
    const node = track();
    const name = freshEvent('span');
    const published: string[] = [];
    const onStart = (m: unknown) => published.push((m as Seen).event);
    const onStop = (m: unknown) => published.push((m as Seen).event);
    diagnostics.subscribe(`${name}.start`, onStart);
    diagnostics.subscribe(`${name}.stop`, onStop);
    try {
      node.telemetry.span(name, {}, () => undefined);
    } finally {
      diagnostics.unsubscribe(`${name}.start`, onStart);
      diagnostics.unsubscribe(`${name}.stop`, onStop);
    }
    expect(published).toEqual([`${name}.start`, `${name}.stop`]);
  });

  it('publishes nothing after the subscriber left', () => {
    const node = track();
    const name = freshEvent('left');
    const published: unknown[] = [];
    const onMessage = (message: unknown) => published.push(message);
    diagnostics.subscribe(name, onMessage);
    diagnostics.unsubscribe(name, onMessage);
    node.telemetry.execute(name, {}, {});
    expect(published).toEqual([]);
  });

  it('does no work when nobody listens: no handler called, nothing published', () => {
    const node = track();
    const name = freshEvent('silent');
    const others = record(node, 'others', ['keel.test.elsewhere', 'keel.test.prefix.*']);
    const channel = diagnostics.channel(name);
    const publish = vi.spyOn(channel, 'publish');
    node.telemetry.execute(name, { n: 1 }, { big: 'metadata' });
    expect(channel.hasSubscribers).toBe(false);
    expect(publish).not.toHaveBeenCalled();
    expect(others).toEqual([]);
  });
});

describe('telemetry.probe', () => {
  it('over several events is active while anyone would see any of them, and inactive again after', () => {
    const node = track() as KeelNode;
    const [a, b] = [freshEvent('probe_a'), freshEvent('probe_b')];
    const probe = node.telemetry.probe([a, b]);
    expect(node.telemetry.probe([a, b])).toBe(probe); // reused
    expect(probe.active).toBe(false);
    node.telemetry.attach('exact', [b], () => {});
    expect(probe.active).toBe(true);
    node.telemetry.detach('exact');
    expect(probe.active).toBe(false);
    node.telemetry.attach('prefixed', [`${a.slice(0, -1)}*`], () => {});
    expect(probe.active).toBe(true);
    node.telemetry.detach('prefixed');
    expect(probe.active).toBe(false);
    const onMessage = (): void => {};
    diagnostics.subscribe(b, onMessage);
    try {
      expect(probe.active).toBe(true);
    } finally {
      diagnostics.unsubscribe(b, onMessage);
    }
    expect(probe.active).toBe(false);
    // a single event's probe is a different one, and follows only that event
    node.telemetry.attach('exact', [a], () => {});
    expect(node.telemetry.probe(b).active).toBe(false);
    expect(node.telemetry.probe(a).active).toBe(true);
  });
});
