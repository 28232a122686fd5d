import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { type HistogramMetricData, MeterProvider, MetricReader, type SumMetricData } from '@opentelemetry/sdk-metrics';
import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import { GenServer, isKeelError } from '../../src/index.js';
import { bridgeOpenTelemetry } from '../../src/telemetry/otel.js';
import { captureEvents } from '../../src/testing/index.js';
import { traceCalls, UNREADABLE, useNodes } from '../support.js';

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

describe('bridgeOpenTelemetry with bad events (found in review)', () => {
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
