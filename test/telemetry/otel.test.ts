import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { type HistogramMetricData, MeterProvider, MetricReader, type SumMetricData } from '@opentelemetry/sdk-metrics';
import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';
import { GenServer, isKeelError, sendSupervised } from '../../src/index.js';
import { bridgeOpenTelemetry } from '../../src/telemetry/otel.js';
import { captureEvents } from '../../src/testing/index.js';
import { deferred, thrown, traceCalls, UNREADABLE, useNodes } from '../support.js';

const track = useNodes();

/** A metric reader whose collect() the test calls itself. */
class TestReader extends MetricReader {
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
}

function setup() {
  const exporter = new InMemorySpanExporter();
  const tracerProvider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const reader = new TestReader();
  const meterProvider = new MeterProvider({ readers: [reader] });
  return { exporter, tracer: tracerProvider.getTracer('keel-test'), meter: meterProvider.getMeter('keel-test'), reader };
}

async function metricsByName(reader: TestReader): Promise<Map<string, SumMetricData | HistogramMetricData>> {
  const { resourceMetrics } = await reader.collect();
  const out = new Map<string, SumMetricData | HistogramMetricData>();
  for (const scope of resourceMetrics.scopeMetrics) for (const m of scope.metrics) out.set(m.descriptor.name, m as SumMetricData | HistogramMetricData);
  return out;
}

describe('bridgeOpenTelemetry', () => {
  it('turns a telemetry span into an OpenTelemetry span with the metadata as attributes', async () => {
    const node = track();
    const { exporter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer });
    const value = await node.telemetry.span('app.fetch', { url: '/x', attempt: 2 }, async () => 'done');
    expect(value).toBe('done');
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => s.name)).toEqual(['app.fetch']);
    expect(spans[0]!.attributes).toEqual({ url: '/x', attempt: 2 });
    expect(spans[0]!.status.code).toBe(0);
  });

  it('marks a span whose function throws as an error with the exception recorded', () => {
    const node = track();
    const { exporter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer });
    const boom = new Error('boom');
    expect(() =>
      node.telemetry.span('app.op', {}, () => {
        throw boom;
      }),
    ).toThrow(boom);
    const [span] = exporter.getFinishedSpans();
    expect(span!.status).toEqual({ code: 2, message: 'boom' });
    expect(span!.events.map((e) => e.name)).toEqual(['exception']);
  });

  it('keeps overlapping async spans apart by their spanId', async () => {
    const node = track();
    const { exporter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer });
    let releaseA!: () => void;
    const a = node.telemetry.span('op.a', { which: 'a' }, () => new Promise<void>((r) => (releaseA = r)));
    await node.telemetry.span('op.b', { which: 'b' }, async () => undefined);
    releaseA();
    await a;
    const spans = exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.attributes.which])).toEqual([
      ['op.b', 'b'],
      ['op.a', 'a'],
    ]);
  });

  it('records measurements as histograms, events as counters, and span durations', async () => {
    const node = track();
    const { meter, reader } = setup();
    bridgeOpenTelemetry(node, { meter });
    node.telemetry.execute('app.batch', { size: 3, bytes: 100 }, { kind: 'x', pid: { toString: () => '<n.1>' } });
    node.telemetry.execute('app.batch', { size: 5, bytes: 50 }, { kind: 'x' });
    node.telemetry.span('app.op', {}, () => 1);
    const metrics = await metricsByName(reader);
    const count = metrics.get('app.batch') as SumMetricData;
    expect(count.dataPoints.reduce((n, p) => n + p.value, 0)).toBe(2);
    const size = metrics.get('app.batch.size') as HistogramMetricData;
    expect(size.dataPoints.reduce((n, p) => n + (p.value.sum ?? 0), 0)).toBe(8);
    expect(size.dataPoints.reduce((n, p) => n + p.value.count, 0)).toBe(2);
    expect(size.dataPoints.some((p) => p.attributes.pid === '<n.1>')).toBe(true);
    const duration = metrics.get('app.op.duration') as HistogramMetricData;
    expect(duration.dataPoints[0]!.value.count).toBe(1);
    expect(duration.dataPoints[0]!.attributes.outcome).toBe('ok');
  });

  it('stays attached through metadata that cannot be read: a hostile message in a dropped event', async () => {
    const node = track();
    const { meter, reader } = setup();
    bridgeOpenTelemetry(node, { meter });
    const failed = captureEvents(node, ['keel.telemetry.handler_failed']);
    for (const [, make] of UNREADABLE) node.send('nobody', make());
    const throwing = Object.defineProperty(new Error('x'), 'message', { get: () => { throw new Error('getter'); } });
    node.telemetry.execute('app.odd', { n: 1 }, { error: throwing, toStringThrows: { toString: () => { throw new Error('no'); } } });
    node.telemetry.execute('app.odd', { n: 1 }, { kind: 'fine' });
    // metadata or measurements that cannot be read at all (a revoked proxy, a getter that throws): counted, no attributes
    for (const [, make] of UNREADABLE) node.telemetry.execute('app.odd', { n: 1 }, make() as never);
    for (const [, make] of UNREADABLE) node.telemetry.execute('app.odd', make() as never, {});
    node.telemetry.execute('app.odd', { n: 1 }, Object.defineProperty({}, 'spanId', { enumerable: true, get: () => { throw new Error('spanId'); } }));
    expect(failed.events).toEqual([]);
    const metrics = await metricsByName(reader);
    expect((metrics.get('keel.message.dropped') as SumMetricData).dataPoints.reduce((n, p) => n + p.value, 0)).toBe(UNREADABLE.length);
    expect((metrics.get('app.odd') as SumMetricData).dataPoints.reduce((n, p) => n + p.value, 0)).toBe(3 + 2 * UNREADABLE.length);
  });

  it("stays attached through a span's .stop whose measurements cannot be read: the span still ends, no duration is recorded", async () => {
    const node = track();
    const { exporter, tracer, meter, reader } = setup();
    bridgeOpenTelemetry(node, { tracer, meter });
    const failed = captureEvents(node, ['keel.telemetry.handler_failed']);
    const unreadable = [...UNREADABLE.map(([, make]) => make()), Object.defineProperty({}, 'duration', { enumerable: true, get: () => { throw new Error('duration'); } })];
    for (const [i, measurements] of unreadable.entries()) {
      node.telemetry.execute('app.op.start', {}, { spanId: `s${i}` });
      node.telemetry.execute(i % 2 === 0 ? 'app.op.stop' : 'app.op.exception', measurements as never, { spanId: `s${i}` });
    }
    node.telemetry.execute('app.op.start', {}, { spanId: 'fine' });
    node.telemetry.execute('app.op.stop', { duration: 5 }, { spanId: 'fine' });
    expect(failed.events).toEqual([]);
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(Array.from({ length: unreadable.length + 1 }, () => 'app.op'));
    const duration = (await metricsByName(reader)).get('app.op.duration') as HistogramMetricData;
    expect(duration.dataPoints.map((p) => [p.value.count, p.value.sum])).toEqual([[1, 5]]);
  });

  it("a span's duration that is not a finite number (NaN, Infinity) is not recorded, as other measurements that are not: the span still ends", async () => {
    const node = track();
    const { exporter, tracer, meter, reader } = setup();
    bridgeOpenTelemetry(node, { tracer, meter });
    for (const [i, duration] of [Number.NaN, Infinity, -Infinity, 7].entries()) {
      node.telemetry.execute('app.op.start', {}, { spanId: i });
      node.telemetry.execute('app.op.stop', { duration }, { spanId: i });
    }
    expect(exporter.getFinishedSpans()).toHaveLength(4);
    const duration = (await metricsByName(reader)).get('app.op.duration') as HistogramMetricData;
    expect(duration.dataPoints.map((p) => [p.value.count, p.value.sum])).toEqual([[1, 7]]);
  });

  it('bridges only the events asked for, and nothing after detach', () => {
    const node = track();
    const { exporter, tracer } = setup();
    const bridge = bridgeOpenTelemetry(node, { tracer, events: ['app.wanted.*'] });
    node.telemetry.span('app.other', {}, () => 1);
    node.telemetry.span('app.wanted', {}, () => 1);
    bridge.detach();
    node.telemetry.span('app.wanted', {}, () => 1);
    expect(exporter.getFinishedSpans().map((s) => s.name)).toEqual(['app.wanted']);
  });

  it('rejects what is not a node, a tracer or a meter with ERR_INVALID_ARGUMENT', () => {
    const node = track();
    for (const bad of [() => bridgeOpenTelemetry({} as never, {}), () => bridgeOpenTelemetry(node, { tracer: {} as never }), () => bridgeOpenTelemetry(node, { meter: 42 as never })]) {
      let error: unknown;
      try {
        bad();
      } catch (e) {
        error = e;
      }
      expect(isKeelError(error, 'ERR_INVALID_ARGUMENT')).toBe(true);
    }
  });
});

describe('bridgeOpenTelemetry with bad events', () => {
  it('refuses events that are not a list with ERR_INVALID_ARGUMENT and leaves no message-flow tracer installed', () => {
    const node = track();
    const { tracer } = setup();
    let error: unknown;
    try {
      bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: 'keel.*' as never });
    } catch (e) {
      error = e;
    }
    expect(isKeelError(error, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((node.telemetry as { flow?: unknown }).flow).toBe(undefined);
    // so a corrected bridge can trace the message flow
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: [] }).detach();
  });
});

describe("diagnostics_channel tracingChannel('keel.call')", () => {
  it('traces GenServer.call: start, then asyncEnd with the reply, or error for a failed call', async () => {
    const node = track();
    const server = await GenServer.start(node, { init: () => 0, handleCall: (n: number, _f, s: number) => ({ reply: n * 2, state: s }) });
    const { seen, unsubscribe } = traceCalls();
    try {
      expect(await GenServer.call(node, server, 21)).toBe(42);
      await expect(GenServer.call(node, 'nobody', 1)).rejects.toMatchObject({ code: 'ERR_NOPROC' });
    } finally {
      unsubscribe();
    }
    expect(seen).toEqual(['start 21', 'end', 'asyncStart 42', 'asyncEnd', 'start 1', 'end', 'error ERR_NOPROC', 'asyncStart undefined', 'asyncEnd']);
    // and nothing once nobody listens
    await GenServer.call(node, server, 1);
    expect(seen).toHaveLength(9);
  });

  it('traces for a subscriber to some of the five channels only (an error tracer): found in review', async () => {
    const node = track();
    const server = await GenServer.start(node, { init: () => 0, handleCall: (n: number, _f, s: number) => ({ reply: n * 2, state: s }) });
    const seen: string[] = [];
    const handlers = {
      error: (m: unknown) => void seen.push(`error ${(m as { error: { code: string } }).error.code}`),
      asyncEnd: (m: unknown) => void seen.push(`asyncEnd ${String((m as { result?: unknown }).result)}`),
    };
    const channel = diagnostics.tracingChannel('keel.call');
    channel.subscribe(handlers as never);
    try {
      expect(await GenServer.call(node, server, 21)).toBe(42);
      await expect(GenServer.call(node, 'nobody', 1)).rejects.toMatchObject({ code: 'ERR_NOPROC' });
    } finally {
      channel.unsubscribe(handlers as never);
    }
    expect(seen).toEqual(['asyncEnd 42', 'error ERR_NOPROC', 'asyncEnd undefined']);
  });
});

/** A meter and a tracer that record what the bridge asks of them. */
function fakes() {
  const calls: string[] = [];
  const instrument = (kind: string, name: string) => ({
    add: (v: number, a?: Record<string, unknown>) => void calls.push(`${kind} ${name} +${v}${a?.reason === undefined ? '' : ` ${String(a.reason)}`}`),
    record: (v: number) => void calls.push(`${kind} ${name} ${v}`),
  });
  const meter = {
    createCounter: (name: string) => (calls.push(`new counter ${name}`), instrument('counter', name)),
    createHistogram: (name: string) => (calls.push(`new histogram ${name}`), instrument('histogram', name)),
  };
  const tracer = {
    startSpan: (name: string) => {
      calls.push(`start ${name}`);
      return {
        setStatus: (s: { code: number; message?: string }) => void calls.push(`status ${name} ${s.code} ${s.message ?? ''}`),
        recordException: () => undefined,
        end: () => void calls.push(`end ${name}`),
      };
    },
  };
  return { calls, meter: meter as never, tracer: tracer as never };
}

describe('bridgeOpenTelemetry bounds what it keeps', () => {
  it('makes instruments for at most maxEventNames event names: events of a new name past it are counted in keel.otel.dropped, and warned of once', () => {
    const node = track();
    const { calls, meter } = fakes();
    bridgeOpenTelemetry(node, { meter, maxEventNames: 2 });
    for (const event of ['app.a', 'app.b', 'app.c', 'app.a', 'app.d', 'app.c']) node.telemetry.execute(event, { n: 1 });
    expect(calls).toEqual([
      'new counter app.a', 'counter app.a +1', 'new histogram app.a.n', 'histogram app.a.n 1',
      'new counter app.b', 'counter app.b +1', 'new histogram app.b.n', 'histogram app.b.n 1',
      'new counter keel.otel.dropped', 'counter keel.otel.dropped +1 max_event_names',
      'counter app.a +1', 'histogram app.a.n 1',
      'counter keel.otel.dropped +1 max_event_names',
      'counter keel.otel.dropped +1 max_event_names',
    ]);
    expect((node.logger.warn as ReturnType<typeof vi.fn>).mock.calls).toEqual([
      ['keel/otel: 2 event names have instruments (maxEventNames); events of new names, starting with "app.c", are counted in keel.otel.dropped and not recorded: put ids in the metadata, not in event names'],
    ]);
  });

  it('makes histograms for at most 32 measurement keys of an event: a key past them (an id in a measurement name) is counted in keel.otel.dropped, and warned of once', () => {
    const node = track();
    const { calls, meter } = fakes();
    bridgeOpenTelemetry(node, { meter });
    const measurements = Object.fromEntries(Array.from({ length: 34 }, (_, i) => [`k${i}`, i]));
    node.telemetry.execute('app.wide', measurements);
    node.telemetry.execute('app.wide', { k0: 7, k33: 7 });
    expect(calls.filter((c) => c.startsWith('new histogram'))).toHaveLength(32);
    expect(calls.filter((c) => c.startsWith('histogram app.wide.k0 '))).toEqual(['histogram app.wide.k0 0', 'histogram app.wide.k0 7']);
    expect(calls.filter((c) => c.includes('k32') || c.includes('k33'))).toEqual([]);
    expect(calls.filter((c) => c.includes('keel.otel.dropped'))).toEqual([
      'new counter keel.otel.dropped', 'counter keel.otel.dropped +1 max_measurements', 'counter keel.otel.dropped +1 max_measurements', 'counter keel.otel.dropped +1 max_measurements',
    ]);
    expect((node.logger.warn as ReturnType<typeof vi.fn>).mock.calls).toEqual([
      ['keel/otel: event "app.wide" has histograms for 32 measurement keys; its measurements of other keys, starting with "k32", are counted in keel.otel.dropped and not recorded: put ids in the metadata, not in measurement names'],
    ]);
  });

  it("a span's duration histogram counts as its name, and its span is still traced past maxEventNames", () => {
    const node = track();
    const { calls, meter, tracer } = fakes();
    bridgeOpenTelemetry(node, { meter, tracer, maxEventNames: 1 });
    node.telemetry.execute('app.a', {});
    node.telemetry.execute('app.op.start', {}, { spanId: 1 });
    node.telemetry.execute('app.op.stop', { duration: 5 }, { spanId: 1 });
    expect(calls).toEqual(['new counter app.a', 'counter app.a +1', 'start app.op', 'end app.op', 'new counter keel.otel.dropped', 'counter keel.otel.dropped +1 max_event_names']);
  });

  it('a .start with the spanId of a span still open ends that span first, as an error (it was replaced and never ended, never exported)', () => {
    const node = track();
    const { calls, meter, tracer } = fakes();
    bridgeOpenTelemetry(node, { meter, tracer });
    node.telemetry.execute('app.op.start', {}, { spanId: 7 });
    node.telemetry.execute('app.op.start', {}, { spanId: 7 });
    node.telemetry.execute('app.op.stop', {}, { spanId: 7 });
    expect(calls).toEqual(['start app.op', 'status app.op 2 keel: a span started again with its spanId before it stopped', 'end app.op', 'start app.op', 'end app.op']);
  });

  it("keeps spans of two names with one spanId apart: an application's own ids (counted from 1, as Telemetry.span's are) end neither the other's span nor Keel's", () => {
    const node = track();
    const { calls, tracer } = fakes();
    bridgeOpenTelemetry(node, { tracer });
    node.telemetry.span('keel.op', {}, () => {
      node.telemetry.execute('app.a.start', {}, { spanId: 1 }); // the spanId of keel.op, whose span is open
      node.telemetry.execute('app.b.start', {}, { spanId: 1 });
    });
    node.telemetry.execute('app.a.stop', {}, { spanId: 1 });
    node.telemetry.execute('app.b.exception', {}, { spanId: 1, error: 'no' });
    expect(calls).toEqual(['start keel.op', 'start app.a', 'start app.b', 'end keel.op', 'end app.a', 'status app.b 2 no', 'end app.b']);
  });

  it('keeps at most maxOpenSpans spans open: a new one past it ends the oldest as an error, counted and warned of once', () => {
    const node = track();
    const { calls, meter, tracer } = fakes();
    bridgeOpenTelemetry(node, { meter, tracer, maxOpenSpans: 2 });
    for (const id of [1, 2, 3, 4]) node.telemetry.execute(`app.s${id}.start`, {}, { spanId: id });
    // the evicted span's stop finds nothing to end; the open ones end as usual
    for (const id of [1, 3, 4]) node.telemetry.execute(`app.s${id}.stop`, {}, { spanId: id });
    expect(calls).toEqual([
      'start app.s1', 'start app.s2',
      'status app.s1 2 keel: open spans past maxOpenSpans', 'end app.s1', 'new counter keel.otel.dropped', 'counter keel.otel.dropped +1 max_open_spans', 'start app.s3',
      'status app.s2 2 keel: open spans past maxOpenSpans', 'end app.s2', 'counter keel.otel.dropped +1 max_open_spans', 'start app.s4',
      'end app.s3', 'end app.s4',
    ]);
    expect((node.logger.warn as ReturnType<typeof vi.fn>).mock.calls).toEqual([
      ['keel/otel: 2 spans open (maxOpenSpans); the oldest open span ends as an error for each new one, counted in keel.otel.dropped: a span started and never stopped?'],
    ]);
  });

  it('refuses a bound that is not a positive integer', () => {
    const node = track();
    for (const [key, value] of [['maxEventNames', 0], ['maxEventNames', 1.5], ['maxOpenSpans', -1], ['maxOpenSpans', Infinity]] as const) {
      const e = thrown(() => bridgeOpenTelemetry(node, { [key]: value }));
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), `${key} ${value}`).toBe(true);
      expect(String((e as Error).message)).toContain(`options.${key}`);
    }
  });
});

describe('bridgeOpenTelemetry: metadata that is a list', () => {
  it("a receiver_exited drop's ids (one per message left queued) are no attribute: the counter's series does not carry a text as long as the mailbox, one more per death", async () => {
    const node = track();
    const { meter, reader } = setup();
    bridgeOpenTelemetry(node, { meter });
    const started = deferred();
    const gate = deferred();
    const pid = node.spawn(() => async () => {
      started.resolve();
      await gate.promise;
    });
    const outcomes = await Promise.all(Array.from({ length: 1001 }, (_, i) => sendSupervised(node, pid, i, { onError: 'ignore' })));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    await started.promise;
    const dropped = captureEvents(node, ['keel.message.dropped']);
    node.exit(pid, 'kill');
    // the event still names them, for a handler that reconciles by id
    expect(dropped.events.map((e) => [e.measurements, (e.metadata.ids as unknown[]).length])).toEqual([[{ count: 1000 }, 1000]]);
    const counter = (await metricsByName(reader)).get('keel.message.dropped') as SumMetricData;
    expect(counter.dataPoints.map((p) => [p.value, p.attributes])).toEqual([[1, { from: 'node', to: String(pid), reason: 'receiver_exited', exitReason: 'killed' }]]);
  });
});

describe('bridgeOpenTelemetry with metadata keys an object literal treats apart', () => {
  it("keeps a metadata key '__proto__' as an attribute like any other (assigned, it set no key and was lost)", () => {
    const node = track();
    const seen: unknown[] = [];
    const meter = { createCounter: () => ({ add: (_v: number, a?: object) => void seen.push(a) }), createHistogram: () => ({ record: () => undefined }) };
    bridgeOpenTelemetry(node, { meter: meter as never });
    node.telemetry.execute('app.e', {}, JSON.parse('{"__proto__": "x", "constructor": "y", "n": 1}') as Record<string, unknown>);
    expect(seen).toHaveLength(1);
    const attributes = seen[0] as Record<string, unknown>;
    expect(Object.entries(attributes)).toEqual([['__proto__', 'x'], ['constructor', 'y'], ['n', 1]]);
    expect(Object.getPrototypeOf(attributes)).toBe(Object.prototype);
  });
});
