import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';
import { type Measurements, type Metadata, type Node } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { deferred, fakeLogger, useNodes } from '../support.js';

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
    expect(first).toHaveLength(1);
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
    expect(kept).toHaveLength(1);
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
    expect(again).toHaveLength(1);
  });
});

describe('telemetry.span', () => {
  it('emits .start then .stop with a duration around a synchronous function, and returns its value', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const result = node.telemetry.span('keel.test.op', { job: 7 }, () => 42);
    expect(result).toBe(42);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
    expect(seen.map((s) => s.metadata)).toEqual([
      { job: 7, spanId: expect.any(Number) },
      { job: 7, spanId: seen[0]?.metadata.spanId },
    ]);
    expect(seen[1]?.measurements.duration).toBeGreaterThanOrEqual(0);
  });

  it('emits .exception with the error and rethrows when a synchronous function throws', () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const boom = new Error('boom');
    expect(() =>
      node.telemetry.span('keel.test.op', { job: 7 }, () => {
        throw boom;
      }),
    ).toThrow(boom);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.exception']);
    expect(seen[1]?.metadata).toEqual({ job: 7, error: boom, spanId: seen[0]?.metadata.spanId });
    expect(seen[1]?.measurements.duration).toBeGreaterThanOrEqual(0);
  });

  it('awaits a promise: .stop only once it resolves, and resolves to its value', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const pending = deferred<string>();
    const result = node.telemetry.span('keel.test.op', {}, () => pending.promise);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start']);
    pending.resolve('value');
    expect(await result).toBe('value');
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
    expect(seen[1]?.measurements.duration).toBeGreaterThanOrEqual(0);
  });

  it('emits .exception with the error and rejects with it when the promise rejects', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const boom = new Error('async boom');
    const result = node.telemetry.span('keel.test.op', { job: 1 }, () => Promise.reject(boom));
    await expect(result).rejects.toBe(boom);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.exception']);
    expect(seen[1]?.metadata).toEqual({ job: 1, error: boom, spanId: seen[0]?.metadata.spanId });
  });

  it('awaits a thenable that is not a native promise', async () => {
    const node = track();
    const seen = record(node, 'h', ['keel.test.op.*']);
    const inner = Promise.resolve(5);
    const thenable: PromiseLike<number> = { then: (onFulfilled, onRejected) => inner.then(onFulfilled, onRejected) };
    const result = node.telemetry.span('keel.test.op', {}, () => thenable);
    expect(await result).toBe(5);
    expect(seen.map((s) => s.event)).toEqual(['keel.test.op.start', 'keel.test.op.stop']);
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
    expect(good).toHaveLength(2);
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
    expect(failures).toHaveLength(1);
    expect(failures[0]?.metadata).toMatchObject({ handlerId: 'bad', event: 'keel.test.a', error: bug });
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
    expect(logger.warn).toHaveBeenCalledWith(expect.stringContaining('bad'), bug);
  });

  it('never make execute throw', () => {
    const node = track();
    node.telemetry.attach('bad', ['keel.test.a'], () => {
      throw 'not even an Error';
    });
    expect(() => node.telemetry.execute('keel.test.a', {}, {})).not.toThrow();
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
