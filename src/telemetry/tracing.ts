import { isExitSentinel } from './exitSentinel.js';

/**
 * Message-flow tracing: a trace context that travels with supervised envelopes, router deliveries,
 * calls and casts, so one trace follows a message from process to process. This module loads no
 * tracing library: a tracer ({@link FlowTracer}) is installed on a node's telemetry by the
 * OpenTelemetry bridge (`bridgeOpenTelemetry(node, { tracer, messageFlow: true })`), and every hook
 * on a hot path is one check of `telemetry.flow !== undefined`.
 *
 * The context never rides inside a user's message: it is kept beside the carrier (the supervised
 * message's id, the pending call, the cast), in tables that exist only while a tracer is installed.
 * Across nodes (src/cluster) it travels as W3C Trace Context headers ({@link TraceCarrier}), written
 * by the tracer's `inject` and read back, after a strict check ({@link parseTraceparent}), by its
 * `extract` on the receiving node.
 */

/** An opaque span context: OpenTelemetry's `SpanContext` (the parsed W3C `traceparent`). */
export type TraceContext = object;

/** Attributes of a flow span. */
export type FlowAttributes = Record<string, string | number | boolean>;

/** A span of a message flow, as the installed tracer made it. */
export interface FlowSpan {
  /** Its context: what a message sent under it carries. */
  readonly context: TraceContext;
  /** Ends it; an error (or a failure reason) marks it failed. */
  end(error?: unknown): void;
}

/** What a tracing library provides to message-flow tracing (see `keel/otel`). */
export interface FlowTracer {
  /** Starts a span, the child of `parent`, or of the ambient context (the library's active span) when undefined. */
  start(name: string, parent: TraceContext | undefined, attributes: FlowAttributes): FlowSpan;
  /** The ambient context of a sender outside any traced handler (the library's active span), if any. */
  active(): TraceContext | undefined;
  /**
   * Runs a handler with `context` as the library's active context (so that the user's own spans made
   * in the handler are its children, and, with an async context manager, also after an `await`).
   */
  run?<T>(context: TraceContext, fn: () => T): T;
  /**
   * The context as W3C Trace Context headers, for a message that leaves the node (the cluster's
   * frames); undefined: it does not travel. Without `inject` and `extract`, traces end at the node.
   */
  inject?(context: TraceContext): TraceCarrier | undefined;
  /** The context of headers a message from another node carried (already checked by {@link parseTraceparent}). */
  extract?(carrier: TraceCarrier): TraceContext | undefined;
}

/** A trace context as W3C Trace Context headers: what travels between nodes. */
export interface TraceCarrier {
  /** `00-<32 hex trace id>-<16 hex span id>-<2 hex flags>`, lowercase, ids not all zero. */
  readonly traceparent: string;
  /** The vendors' list (`key=value,...`), at most {@link MAX_TRACESTATE_LENGTH} printable ASCII characters. */
  readonly tracestate?: string;
}

/** The longest `tracestate` carried between nodes (W3C: vendors propagate at least 512 characters). */
export const MAX_TRACESTATE_LENGTH = 512;

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);
const TRACESTATE = /^[\x20-\x7e]*$/;

/**
 * A W3C `traceparent` read strictly: version `00` only, exactly 55 characters, lowercase hex, trace
 * and span ids not all zero. Anything else (not a string, too long, another version, uppercase, a
 * zero id) is undefined; it never throws.
 */
export function parseTraceparent(text: unknown): { traceId: string; spanId: string; traceFlags: number } | undefined {
  if (typeof text !== 'string' || text.length !== 55) return undefined;
  const m = TRACEPARENT.exec(text);
  if (m === null || m[1] === ZERO_TRACE_ID || m[2] === ZERO_SPAN_ID) return undefined;
  return { traceId: m[1]!, spanId: m[2]!, traceFlags: parseInt(m[3]!, 16) };
}

/** A `tracestate` fit to travel: a string of at most {@link MAX_TRACESTATE_LENGTH} printable ASCII characters. */
export function isTracestate(text: unknown): text is string {
  return typeof text === 'string' && text.length <= MAX_TRACESTATE_LENGTH && TRACESTATE.test(text);
}

/** How many contexts of supervised messages wait for their handler at most (the oldest are let go). */
export const MAX_PENDING_MESSAGES = 10_000;

/**
 * @internal A node's message-flow tracing, installed as `telemetry.flow`. Each process's current
 * span is the span of the handler it is running: a process handles one message at a time (an async
 * handler keeps it busy until it settles), so what it sends from there, also after an `await`, is a
 * child of that span.
 */
export class MessageFlow {
  readonly tracer: FlowTracer;
  /** The span of the handler each process (its record) is running. */
  readonly #current = new WeakMap<object, FlowSpan>();
  /** Contexts of supervised messages not yet handled, by message id (insertion order: oldest first). */
  readonly #byMessageId = new Map<string, TraceContext>();
  /** Contexts attached to carriers: a cast's message, a signal in a router's buffer. */
  readonly #tags = new WeakMap<object, TraceContext>();
  /** Spans held open by an operation in flight (a call, a router delivery). */
  readonly #held = new WeakMap<object, FlowSpan>();
  /** A context that stands for the sender during {@link MessageFlow.within}. */
  #override: TraceContext | undefined = undefined;
  /** A remote caller's context, adopted by the call served during {@link MessageFlow.serving}. */
  #served: TraceContext | undefined = undefined;
  /** The span of the handler running synchronously now, if any: the sender of what the node sends from there. */
  #running: FlowSpan | undefined = undefined;

  constructor(tracer: FlowTracer) {
    this.tracer = tracer;
  }

  /**
   * The context a message from `sender` (a process record, or undefined for the node) carries: the
   * span of the sender's handler; for the node, that of the handler running synchronously now (a
   * `router.publish(...)` from a handler); else the tracer's active context.
   */
  contextOf(sender: object | undefined): TraceContext | undefined {
    if (this.#override !== undefined) return this.#override;
    const span = sender === undefined ? this.#running : this.#current.get(sender);
    return span !== undefined ? span.context : this.tracer.active();
  }

  /** Runs `fn` with `context` as the sender's context (for a send made on behalf of a span). */
  within<T>(context: TraceContext | undefined, fn: () => T): T {
    const previous = this.#override;
    this.#override = context;
    try {
      return fn();
    } finally {
      this.#override = previous;
    }
  }

  start(name: string, parent: TraceContext | undefined, attributes: FlowAttributes): FlowSpan {
    return this.tracer.start(name, parent, attributes);
  }

  /**
   * Runs `fn`, which makes one call on behalf of a caller of another node whose span is `context`:
   * the call takes that span as its own ({@link MessageFlow.adoptCall}), so the server's handler
   * span is the child of the remote caller's span, with no second call span in between.
   */
  serving<T>(context: TraceContext, fn: () => T): T {
    const previous = this.#served;
    this.#served = context;
    try {
      return fn();
    } finally {
      this.#served = previous;
    }
  }

  /** The span a call made during {@link MessageFlow.serving} holds: the remote caller's (ended there, so a no-op here), taken once. */
  adoptCall(): FlowSpan | undefined {
    const context = this.#served;
    if (context === undefined) return undefined;
    this.#served = undefined;
    return { context, end: noop };
  }

  /**
   * `context` as headers for a message leaving the node: undefined when the tracer cannot say it
   * (no `inject`), says nothing, throws, or says something that is not a valid `traceparent` (a
   * `tracestate` that is not fit to travel is left out).
   */
  inject(context: TraceContext | undefined): TraceCarrier | undefined {
    if (context === undefined || this.tracer.inject === undefined) return undefined;
    let traceparent: unknown, tracestate: unknown;
    try {
      const carrier = this.tracer.inject(context);
      if (typeof carrier !== 'object' || carrier === null) return undefined;
      ({ traceparent, tracestate } = carrier); // read once: a getter or a proxy that throws is nothing to carry
    } catch {
      return undefined;
    }
    if (parseTraceparent(traceparent) === undefined) return undefined;
    return tracestate !== '' && isTracestate(tracestate) ? { traceparent: traceparent as string, tracestate } : { traceparent: traceparent as string };
  }

  /**
   * The context of headers a message from another node carried, read strictly: a `traceparent` that
   * {@link parseTraceparent} refuses is `'malformed'`, as is a tracer's `extract` that throws; a
   * `tracestate` that is not fit ({@link isTracestate}) is left out and reported through `badTracestate`.
   * Never throws. Undefined: the tracer cannot read contexts (no `extract`).
   */
  extract(traceparent: unknown, tracestate: unknown, badTracestate: () => void): TraceContext | 'malformed' | undefined {
    if (parseTraceparent(traceparent) === undefined) return 'malformed';
    if (this.tracer.extract === undefined) return undefined;
    let state: string | undefined;
    if (tracestate !== undefined) {
      if (isTracestate(tracestate)) state = tracestate;
      else badTracestate();
    }
    try {
      const context = this.tracer.extract(state === undefined || state === '' ? { traceparent: traceparent as string } : { traceparent: traceparent as string, tracestate: state });
      return typeof context === 'object' && context !== null ? context : 'malformed';
    } catch {
      return 'malformed';
    }
  }

  /**
   * Runs a process's handler `fn` in a span, the child of `parent`: the process's current span
   * until `fn` returns or its thenable settles. Nothing is opened without a parent: a trace begins
   * where a traced sender sent something, not at every message.
   */
  handle<T>(name: string, proc: object, parent: TraceContext | undefined, attributes: FlowAttributes, fn: () => T): T {
    if (parent === undefined) return fn();
    const span = this.tracer.start(name, parent, attributes);
    const previous = this.#current.get(proc);
    this.#current.set(proc, span);
    const restore = (): void => {
      if (this.#current.get(proc) !== span) return;
      if (previous === undefined) this.#current.delete(proc);
      else this.#current.set(proc, previous);
    };
    const running = this.#running;
    this.#running = span;
    let r: T;
    try {
      r = this.tracer.run === undefined ? fn() : this.tracer.run(span.context, fn);
    } catch (e) {
      this.#running = running;
      restore();
      span.end(isExitSentinel(e) ? undefined : e); // a handler that ended its process with ctx.exit did not fail
      throw e;
    }
    this.#running = running;
    if (isThenable(r)) {
      return r.then(
        (value) => {
          restore();
          span.end();
          return value;
        },
        (e: unknown) => {
          restore();
          span.end(e);
          throw e;
        },
      ) as T;
    }
    restore();
    span.end();
    return r;
  }

  /** Keeps the context of supervised message `id` for its handler. */
  stash(id: string, context: TraceContext): void {
    const pending = this.#byMessageId;
    pending.delete(id); // a redelivery (a retry, a dead letter retried) is kept as the newest
    pending.set(id, context);
    if (pending.size > MAX_PENDING_MESSAGES) pending.delete(pending.keys().next().value!);
  }

  /** The context of supervised message `id`, taken (its handler runs). */
  take(id: string | undefined): TraceContext | undefined {
    if (id === undefined) return undefined;
    const context = this.#byMessageId.get(id);
    if (context !== undefined) this.#byMessageId.delete(id);
    return context;
  }

  /** How many supervised messages' contexts wait for their handler. */
  get pendingMessages(): number {
    return this.#byMessageId.size;
  }

  tag(carrier: object, context: TraceContext | undefined): void {
    if (context !== undefined) this.#tags.set(carrier, context);
  }

  tagOf(carrier: object): TraceContext | undefined {
    return this.#tags.get(carrier);
  }

  /** Holds `span` open for `operation` until {@link MessageFlow.release}. */
  hold(operation: object, span: FlowSpan): void {
    this.#held.set(operation, span);
  }

  heldContext(operation: object): TraceContext | undefined {
    return this.#held.get(operation)?.context;
  }

  /** Ends the span held for `operation`, if any. */
  release(operation: object, error?: unknown): void {
    const span = this.#held.get(operation);
    if (span === undefined) return;
    this.#held.delete(operation);
    span.end(error);
  }
}

function noop(): void {}

/** Ends `span` when a send's outcome settles: failed with the outcome's reason, or the rejection. */
export function endWithOutcome<T extends { readonly ok: boolean }>(span: FlowSpan, sent: Promise<T>): Promise<T> {
  return sent.then(
    (outcome) => {
      span.end(outcome.ok ? undefined : (outcome as { readonly reason?: unknown }).reason);
      return outcome;
    },
    (e: unknown) => {
      span.end(e);
      throw e;
    },
  );
}

/** @internal A node's message-flow tracing, from its public telemetry (for layers that hold a `Node`). */
export function flowOf(telemetry: object): MessageFlow | undefined {
  return (telemetry as { flow?: MessageFlow }).flow;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
}

/** A span context as a W3C `traceparent` header value (`00-<trace id>-<span id>-<flags>`). */
export function toTraceparent(context: { readonly traceId: string; readonly spanId: string; readonly traceFlags: number }): string {
  return `00-${context.traceId}-${context.spanId}-${(context.traceFlags & 0xff).toString(16).padStart(2, '0')}`;
}
