import type { Attributes, Counter, Histogram, Meter, Span, SpanContext, Tracer } from '@opentelemetry/api';
import { createRequire } from 'node:module';
import { types } from 'node:util';
import { describe, InvalidArgumentError, isError } from '../errors.js';
import { type Measurements, type Metadata, type Telemetry, TelemetryBus } from './Telemetry.js';
import { type FlowTracer, MessageFlow, parseTraceparent, toTraceparent } from './tracing.js';

/** `SpanStatusCode.ERROR` of `@opentelemetry/api` (a constant, so this module loads no OpenTelemetry code itself). */
const STATUS_ERROR = 2;

export interface OpenTelemetryBridgeOptions {
  /** Spans (`<event>.start` … `.stop` / `.exception`) become OpenTelemetry spans named `<event>`. */
  tracer?: Tracer;
  /** Every measurement becomes a histogram `<event>.<measurement>`, every event a counter `<event>`. */
  meter?: Meter;
  /** Which events to bridge: exact names or `'prefix*'` (default every event, `['*']`). */
  events?: string[];
  /**
   * Message-flow tracing with `tracer` (default false): the trace context travels with supervised
   * messages, router deliveries, calls and casts, and each hop is a span, the receiving handler's a
   * child of the sending one (see "Message-flow tracing" in the README), across the nodes of a
   * cluster too (as a W3C `traceparent` and `tracestate`, see docs/cluster.md). One per node.
   */
  messageFlow?: boolean;
  /**
   * The most distinct event names the bridge makes instruments for (default 1,000): an instrument is
   * kept per name, by the bridge and by the meter. Past it, the events of a name not seen yet are not
   * recorded (their spans are still traced) but counted in the counter `keel.otel.dropped`
   * (`reason: 'max_event_names'`), and the node's logger warns once, naming the first of them.
   */
  maxEventNames?: number;
  /**
   * The most spans open at once (started, not yet stopped; default 10,000). A new span past it ends
   * the oldest open one, with an error status (`keel: open spans past maxOpenSpans`), and counts it
   * in `keel.otel.dropped` (`reason: 'max_open_spans'`); the node's logger warns once. Its later
   * `.stop` finds nothing to end.
   */
  maxOpenSpans?: number;
}

export const OTEL_BRIDGE_DEFAULTS = { maxEventNames: 1000, maxOpenSpans: 10_000 } as const;
/** The most measurement keys of one event that get a histogram (`<event>.<key>`): an instrument is kept per key. */
export const OTEL_MAX_MEASUREMENT_KEYS = 32;

/** An open span's place in the bridge: its name and spanId. */
interface SpanKey {
  readonly spanId: unknown;
  readonly name: string;
}

/** How many bridges each node's telemetry has had: their handler ids (per node: nothing is global). */
const bridgeCounts = new WeakMap<Telemetry, number>();

/**
 * Bridges a node's telemetry to OpenTelemetry. `@opentelemetry/api` is an optional peer dependency:
 * pass the tracer and meter of your own setup.
 *
 * @example
 * ```ts
 * import { trace, metrics } from '@opentelemetry/api';
 * import { bridgeOpenTelemetry } from 'keel/otel';
 * const bridge = bridgeOpenTelemetry(node, { tracer: trace.getTracer('app'), meter: metrics.getMeter('app') });
 * // ... bridge.detach();
 * ```
 */
export function bridgeOpenTelemetry(node: { readonly telemetry: Telemetry; readonly logger?: { warn(message: string): void } }, options: OpenTelemetryBridgeOptions): { detach(): void } {
  if (typeof node !== 'object' || node === null || typeof node.telemetry?.attach !== 'function') {
    throw new InvalidArgumentError('node', 'a Node', node);
  }
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ tracer?, meter?, events? }', options);
  const { tracer, meter, events = ['*'], messageFlow = false, maxEventNames = OTEL_BRIDGE_DEFAULTS.maxEventNames, maxOpenSpans = OTEL_BRIDGE_DEFAULTS.maxOpenSpans } = options;
  for (const [key, v] of [['maxEventNames', maxEventNames], ['maxOpenSpans', maxOpenSpans]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidArgumentError(`options.${key}`, 'a positive integer', v);
  }
  if (tracer !== undefined && typeof tracer.startSpan !== 'function') throw new InvalidArgumentError('options.tracer', 'an OpenTelemetry Tracer', tracer);
  if (meter !== undefined && typeof meter.createHistogram !== 'function') throw new InvalidArgumentError('options.meter', 'an OpenTelemetry Meter', meter);
  /** The open spans, oldest first (a Map keeps insertion order). */
  const spans = new Map<SpanKey, Span>();
  /**
   * The key of each open span, by spanId, then name: spans of two names with one spanId (an
   * application's own ids, counted from 1 as `Telemetry.span`'s are) are two spans, neither ending the other.
   */
  const spanKeys = new Map<unknown, Map<string, SpanKey>>();
  const keyOf = (spanId: unknown, name: string): SpanKey | undefined => spanKeys.get(spanId)?.get(name);
  const open = (spanId: unknown, name: string, span: Span): void => {
    const key: SpanKey = { spanId, name };
    let byName = spanKeys.get(spanId);
    if (byName === undefined) spanKeys.set(spanId, (byName = new Map()));
    byName.set(name, key);
    spans.set(key, span);
  };
  /** Takes the open span of `key` out of the bridge (the caller ends it). */
  const take = (key: SpanKey): Span | undefined => {
    const span = spans.get(key);
    spans.delete(key);
    const byName = spanKeys.get(key.spanId);
    byName?.delete(key.name);
    if (byName?.size === 0) spanKeys.delete(key.spanId);
    return span;
  };
  const histograms = new Map<string, Histogram>();
  const counters = new Map<string, Counter>();
  /** The event names the bridge records, at most `maxEventNames`. */
  const names = new Set<string>();
  /** Per event recorded, the measurement keys with a histogram, at most OTEL_MAX_MEASUREMENT_KEYS. */
  const keys = new Map<string, Set<string>>();
  /** The bounds already warned of (each once). */
  const warned = new Set<string>();
  let dropped: Counter | undefined;
  const drop = (reason: 'max_event_names' | 'max_open_spans' | 'max_measurements'): void => {
    if (meter === undefined) return;
    (dropped ??= meter.createCounter('keel.otel.dropped', { description: 'events and spans the keel OpenTelemetry bridge did not record past its bounds' })).add(1, { reason });
  };
  const warn = (message: string): void => {
    try {
      node.logger?.warn(message);
    } catch {
      // a logger that throws costs the bridge nothing
    }
  };
  /**
   * Whether `item` is one of `seen` (at most `max`): one seen before, or a new one while fewer are;
   * past it, counted as dropped for `reason`, and told once by `warnOnce` (its first item).
   */
  const within = (seen: Set<string>, max: number, item: string, reason: 'max_event_names' | 'max_measurements', warnOnce: (item: string) => string): boolean => {
    if (seen.has(item)) return true;
    if (seen.size < max) {
      seen.add(item);
      return true;
    }
    drop(reason);
    if (!warned.has(reason)) {
      warned.add(reason);
      warn(warnOnce(item));
    }
    return false;
  };
  /** Whether events of `name` are recorded: at most `maxEventNames` names. */
  const admitted = (name: string): boolean =>
    within(names, maxEventNames, name, 'max_event_names', (first) => `keel/otel: ${maxEventNames} event names have instruments (maxEventNames); events of new names, starting with ${JSON.stringify(first)}, are counted in keel.otel.dropped and not recorded: put ids in the metadata, not in event names`);
  /** Whether `event`'s measurement `key` is recorded: at most OTEL_MAX_MEASUREMENT_KEYS keys an event. */
  const measured = (event: string, key: string): boolean => {
    let seen = keys.get(event);
    if (seen === undefined) keys.set(event, (seen = new Set()));
    return within(seen, OTEL_MAX_MEASUREMENT_KEYS, key, 'max_measurements', (first) => `keel/otel: event ${JSON.stringify(event)} has histograms for ${OTEL_MAX_MEASUREMENT_KEYS} measurement keys; its measurements of other keys, starting with ${JSON.stringify(first)}, are counted in keel.otel.dropped and not recorded: put ids in the metadata, not in measurement names`);
  };
  const histogram = (name: string): Histogram => {
    let h = histograms.get(name);
    if (h === undefined) histograms.set(name, (h = meter!.createHistogram(name)));
    return h;
  };
  const counter = (name: string): Counter => {
    let c = counters.get(name);
    if (c === undefined) counters.set(name, (c = meter!.createCounter(name)));
    return c;
  };
  const onEvent = (event: string, measurements: Measurements, metadata: Metadata): void => {
    const spanId = field(metadata, 'spanId');
    const phase = spanId === undefined ? undefined : /\.(start|stop|exception)$/.exec(event)?.[1];
    if (phase !== undefined) {
      const name = event.slice(0, event.length - phase.length - 1);
      if (phase === 'start') {
        if (tracer === undefined) return;
        const again = keyOf(spanId, name);
        if (spans.size >= maxOpenSpans && again === undefined) {
          // the oldest open span is the likeliest never to stop: it ends, as an error, and new spans are still traced
          const oldest = take(spans.keys().next().value!)!;
          oldest.setStatus({ code: STATUS_ERROR, message: 'keel: open spans past maxOpenSpans' });
          oldest.end();
          drop('max_open_spans');
          if (!warned.has('max_open_spans')) {
            warned.add('max_open_spans');
            warn(`keel/otel: ${maxOpenSpans} spans open (maxOpenSpans); the oldest open span ends as an error for each new one, counted in keel.otel.dropped: a span started and never stopped?`);
          }
        }
        if (again !== undefined) {
          // an application's own spanId used again before its span of that name stopped: that span ends
          // now (else replaced, it would never end nor be exported), as an error, and the new one is traced
          const replaced = take(again)!;
          replaced.setStatus({ code: STATUS_ERROR, message: 'keel: a span started again with its spanId before it stopped' });
          replaced.end();
        }
        open(spanId, name, tracer.startSpan(name, { attributes: toAttributes(metadata) }));
        return;
      }
      const key = keyOf(spanId, name);
      const span = key === undefined ? undefined : take(key);
      if (span !== undefined) {
        if (phase === 'exception') {
          const error = field(metadata, 'error');
          if (isError(error)) span.recordException(error);
          span.setStatus({ code: STATUS_ERROR, message: errorMessage(error) });
        }
        span.end();
      }
      // read once, guarded: measurements that cannot be read (a revoked proxy, a getter that throws)
      // record no duration (nor does one that is not a finite number, as other measurements), and the span has ended all the same
      const duration = field(measurements, 'duration');
      if (meter !== undefined && typeof duration === 'number' && Number.isFinite(duration) && admitted(name)) {
        histogram(`${name}.duration`).record(duration, { ...toAttributes(metadata), outcome: phase === 'stop' ? 'ok' : 'error' });
      }
      return;
    }
    if (meter === undefined || !admitted(event)) return;
    const attributes = toAttributes(metadata);
    counter(event).add(1, attributes);
    for (const [key, value] of entriesOf(measurements)) {
      if (typeof value === 'number' && Number.isFinite(value) && measured(event, key)) histogram(`${event}.${key}`).record(value, attributes);
    }
  };
  const seq = (bridgeCounts.get(node.telemetry) ?? 0) + 1;
  bridgeCounts.set(node.telemetry, seq);
  const id = `keel.otel-bridge-${seq}`;
  node.telemetry.attach(id, events, onEvent); // checks `events` before a message-flow tracer is installed
  let flow: MessageFlow | undefined;
  try {
    flow = messageFlow === false ? undefined : installFlow(node.telemetry, tracer, messageFlow);
  } catch (e) {
    node.telemetry.detach(id); // a refused bridge leaves nothing behind
    throw e;
  }
  return {
    detach: () => {
      if (flow !== undefined && (node.telemetry as TelemetryBus).flow === flow) (node.telemetry as TelemetryBus).flow = undefined;
      node.telemetry.detach(id);
      for (const span of spans.values()) span.end();
      spans.clear();
      spanKeys.clear();
    },
  };
}

/** The OpenTelemetry API, loaded once message-flow tracing is asked for (an optional peer dependency). */
type OtelApi = typeof import('@opentelemetry/api');
let otelApi: OtelApi | undefined;

function loadApi(): OtelApi {
  if (otelApi === undefined) {
    try {
      otelApi = createRequire(import.meta.url)('@opentelemetry/api') as OtelApi;
    } catch (e) {
      throw new InvalidArgumentError('options.messageFlow', 'true only where @opentelemetry/api is installed', true, `loading it threw ${describe(e)}`);
    }
  }
  return otelApi;
}

/** Installs message-flow tracing on a node's telemetry bus. */
function installFlow(telemetry: Telemetry, tracer: Tracer | undefined, messageFlow: unknown): MessageFlow {
  if (messageFlow !== true) throw new InvalidArgumentError('options.messageFlow', 'a boolean', messageFlow);
  if (tracer === undefined) throw new InvalidArgumentError('options.tracer', 'an OpenTelemetry Tracer (messageFlow needs one)', tracer);
  if (!(telemetry instanceof TelemetryBus)) throw new InvalidArgumentError('node', "a Keel node (its telemetry carries the message flow)", telemetry);
  if (telemetry.flow !== undefined) {
    throw new InvalidArgumentError('options.messageFlow', 'one message-flow tracer per node', true, 'detach the bridge that traces the message flow first');
  }
  const flow = new MessageFlow(flowTracer(loadApi(), tracer));
  telemetry.flow = flow;
  return flow;
}

/** Message-flow spans as OpenTelemetry spans: a parent is a `SpanContext` (a W3C traceparent, parsed). */
function flowTracer(api: OtelApi, tracer: Tracer): FlowTracer {
  return {
    start(name, parent, attributes) {
      const active = api.context.active();
      const span = tracer.startSpan(name, { attributes }, parent === undefined ? active : api.trace.setSpanContext(active, parent as SpanContext));
      return {
        context: span.spanContext(),
        end(error?: unknown) {
          if (error !== undefined) {
            if (isError(error)) span.recordException(error);
            span.setStatus({ code: STATUS_ERROR, message: errorMessage(error) });
          }
          span.end();
        },
      };
    },
    run(context, fn) {
      return api.context.with(api.trace.setSpanContext(api.context.active(), context as SpanContext), fn);
    },
    active() {
      const span = api.trace.getSpan(api.context.active());
      return span === undefined || !api.trace.isSpanContextValid(span.spanContext()) ? undefined : span.spanContext();
    },
    // W3C Trace Context, as the W3C propagator writes and reads it (`00-<trace id>-<span id>-<flags>`)
    inject(context) {
      const sc = context as SpanContext;
      if (!api.trace.isSpanContextValid(sc)) return undefined;
      const tracestate = sc.traceState?.serialize();
      return tracestate === undefined || tracestate === '' ? { traceparent: toTraceparent(sc) } : { traceparent: toTraceparent(sc), tracestate };
    },
    extract({ traceparent, tracestate }) {
      const parsed = parseTraceparent(traceparent);
      if (parsed === undefined) return undefined;
      const sc: SpanContext = { ...parsed, isRemote: true };
      if (tracestate !== undefined) sc.traceState = api.createTraceState(tracestate);
      return sc;
    },
  };
}

/** Event metadata as span/metric attributes: primitives as they are, pids and refs as text, errors by message (a list is none). */
function toAttributes(metadata: Metadata): Attributes {
  const out: Attributes = {};
  for (const [key, value] of entriesOf(metadata)) {
    if (key === 'spanId') continue;
    const a = attribute(value);
    // defined, not assigned: `out.__proto__ = a` sets no key (a metadata key '__proto__' was lost)
    if (a !== undefined) Object.defineProperty(out, key, { value: a, enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/**
 * An event's measurements or metadata as entries; none when they cannot be read (a revoked proxy, a
 * getter that throws: an application's own event data). The event is still counted, its span still
 * ended: one unreadable event does not cost the bridge, which the bus would detach for good.
 */
function entriesOf(data: object): [string, unknown][] {
  try {
    return Object.entries(data);
  } catch {
    return [];
  }
}

/** `data[key]`, or undefined when it cannot be read (a revoked proxy, a getter that throws). */
function field(data: Metadata | Measurements, key: string): unknown {
  try {
    return data[key];
  } catch {
    return undefined;
  }
}

/** A span's status message: an error's message, else the value as text; never throws. */
function errorMessage(error: unknown): string {
  try {
    if (isError(error)) return String(error.message);
    return typeof error === 'string' ? error : describe(error);
  } catch {
    return describe(error);
  }
}

/**
 * One metadata value as an attribute, or undefined. Metadata may carry any value a process was
 * sent (a dropped message): this never throws and never runs a proxy's traps, or one hostile message
 * would make the bridge's handler throw and the bus detach it for the rest of the node's life.
 */
function attribute(value: unknown): string | number | boolean | undefined {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return undefined;
  // a list is none: its text grows with its length (a receiver_exited drop's ids, one per message its
  // death left queued), and each distinct list would be a series the meter keeps
  if (Array.isArray(value)) return undefined;
  try {
    if (isError(value)) return `${String(value.name)}: ${String(value.message)}`;
    const { toString } = value as { toString?: unknown };
    return typeof toString === 'function' && toString !== Object.prototype.toString ? String(value) : undefined;
  } catch {
    return undefined; // a getter or a toString that throws
  }
}
