import diagnostics from 'node:diagnostics_channel';
import { describe, InvalidArgumentError, KeelError, toError } from '../errors.js';
import { isExitSentinel } from './exitSentinel.js';
import type { MessageFlow } from './tracing.js';

/** Numbers of an event (durations in milliseconds, counts). */
export type Measurements = Record<string, number>;
/** Everything else about an event. */
export type Metadata = Record<string, unknown>;
/** A telemetry handler. A handler that throws is detached and reported as `keel.telemetry.handler_failed`. */
export type TelemetryHandler = (event: string, measurements: Measurements, metadata: Metadata) => void;

/**
 * A node's telemetry bus, after Erlang's `telemetry`: `execute`, `attach`, `detach`, `span`.
 * Every event is also published on `diagnostics_channel` under its own name (the message is
 * `{ event, measurements, metadata }`), so Node tooling sees Keel without importing it.
 *
 * @example
 * ```ts
 * node.telemetry.attach('log-drops', ['keel.message.dropped'], (event, m, meta) => console.log(event, meta.reason));
 * node.telemetry.attach('all-process-events', ['keel.process.*'], handler); // a trailing `*` matches a prefix
 * ```
 */
export interface Telemetry {
  /** Emits an event to the attached handlers and to `diagnostics_channel` subscribers. */
  execute(event: string, measurements: Measurements, metadata?: Metadata): void;
  /** Attaches `handler` under a unique `id` to exact event names, or to prefixes written `'prefix*'`. */
  attach(id: string, events: readonly string[], handler: TelemetryHandler): void;
  /** Detaches the handler `id`; false when there was none. */
  detach(id: string): boolean;
  /**
   * Runs `fn` between `<event>.start` and `<event>.stop` (measurement `duration`, ms), or
   * `<event>.exception` (metadata `error`) when it throws or its thenable rejects, once (a thenable
   * that calls back again ends nothing more). The three events carry the same `spanId` in their metadata.
   */
  span<T>(event: string, metadata: Metadata, fn: () => T): T;
}

interface Attachment {
  readonly id: string;
  readonly events: readonly string[];
  readonly handler: TelemetryHandler;
  /** The exact names it is attached to. */
  readonly exact: ReadonlySet<string>;
  /** The prefixes it is attached to (its patterns `'prefix*'`, without the `*`). */
  readonly prefixes: readonly string[];
  /** False from its detach on: a dispatch under way calls it no more. */
  attached: boolean;
  /** How many of its calls are running now, one inside another (its handler executing an event it handles). */
  depth: number;
}

/**
 * How deep a handler may run inside itself (its handler executes an event it handles, which runs it
 * again). Past it, it is detached and reported as a failing handler is, with the stack to spare that
 * a recursion without end, left to overflow, would not leave for the report.
 */
export const MAX_HANDLER_DEPTH = 32;

type Channel = ReturnType<typeof diagnostics.channel>;

/** The implementation behind `node.telemetry`. */
export class TelemetryBus implements Telemetry {
  /** Sets, not arrays: a detach is O(1) among 100,000 handlers of one event (in attach order still). */
  readonly #exact = new Map<string, Set<Attachment>>();
  /** The attachments with at least one prefix, once each (a handler runs once per event, however many of its patterns match). */
  readonly #prefixed = new Set<Attachment>();
  readonly #byId = new Map<string, Attachment>();
  readonly #channels = new Map<string, Channel>();
  readonly #monotonicClock: () => number;
  readonly #report: (message: string, error: Error) => void;
  #spanSeq = 0;
  readonly #probes = new Map<string, TelemetryProbe>();
  readonly #spanProbes = new Map<string, TelemetryProbe>();
  /**
   * Changes whenever a handler is attached or detached (for callers that cache `isAttached`). A plain
   * field, not a getter: hot paths read it once per operation, before the compiler has seen them.
   * Read-only to everyone but the bus.
   */
  version = 0;
  /**
   * Message-flow tracing, while a tracer is installed (`bridgeOpenTelemetry(node, { messageFlow: true })`);
   * undefined otherwise. A plain field: the hot paths' one check is `telemetry.flow !== undefined`.
   */
  flow: MessageFlow | undefined = undefined;

  constructor(options: { monotonicClock: () => number; report: (message: string, error: Error) => void }) {
    this.#monotonicClock = options.monotonicClock;
    this.#report = options.report;
  }

  /** True when an attached handler or a `diagnostics_channel` subscriber would see `event`. */
  isListening(event: string): boolean {
    return this.isAttached(event) || diagnostics.hasSubscribers(event);
  }

  /** True when an attached handler (not a `diagnostics_channel` subscriber) would see `event`. */
  isAttached(event: string): boolean {
    if (this.#exact.has(event)) return true;
    for (const a of this.#prefixed) if (matchesPrefix(a, event)) return true;
    return false;
  }

  /**
   * A cheap, reusable check for one event, or for any of several (a span's phases): `probe.active`
   * is true while anyone would see it, so a hot path builds its measurements and metadata only then.
   */
  probe(event: string | readonly string[]): { readonly active: boolean } {
    // several events are kept apart from single ones, under their names joined by NUL
    const probes = typeof event === 'string' ? this.#probes : this.#spanProbes;
    const key = typeof event === 'string' ? event : event.join('\0');
    let probe = probes.get(key);
    if (probe === undefined) {
      const events = typeof event === 'string' ? [event] : [...event];
      probes.set(key, (probe = new TelemetryProbe(this, events, events.map((e) => this.#channel(e)))));
    }
    return probe;
  }

  execute(event: string, measurements: Measurements, metadata: Metadata = {}): void {
    if (typeof event !== 'string') throw new InvalidArgumentError('event', 'an event name (a string)', event);
    if (typeof measurements !== 'object' || measurements === null) throw new InvalidArgumentError('measurements', 'an object of numbers', measurements);
    if (typeof metadata !== 'object' || metadata === null) throw new InvalidArgumentError('metadata', 'an object', metadata);
    // the handlers attached when the event came, each once (an exact name and a prefix, or two
    // prefixes, that match one event call it once), and none after its detach (by itself, by
    // another handler, or for a failure)
    const exact = this.#exact.get(event);
    const prefixed = this.#prefixed.size > 0 ? [...this.#prefixed] : undefined;
    if (exact !== undefined) for (const a of [...exact]) if (a.attached) this.#invoke(a, event, measurements, metadata);
    if (prefixed !== undefined) {
      for (const a of prefixed) {
        if (a.attached && !a.exact.has(event) && matchesPrefix(a, event)) this.#invoke(a, event, measurements, metadata);
      }
    }
    // asked by name, not through a channel kept per event: an application's events may have names
    // without end (`app.request.<id>`), and a channel kept for each would be kept for ever
    if (diagnostics.hasSubscribers(event)) diagnostics.channel(event).publish({ event, measurements, metadata });
  }

  attach(id: string, events: readonly string[], handler: TelemetryHandler): void {
    if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a non-empty string', id);
    // read once, into a copy that is then checked: a proxy or a getter cannot throw a raw error or change an event after its check
    let names: string[];
    try {
      names = Array.isArray(events) ? [...new Set<unknown>(events)] as string[] : [];
    } catch {
      throw new InvalidArgumentError('events', 'an array of non-empty event names', events);
    }
    if (!Array.isArray(events) || names.some((e) => typeof e !== 'string' || e === '')) {
      throw new InvalidArgumentError('events', 'an array of non-empty event names', events);
    }
    if (typeof handler !== 'function') throw new InvalidArgumentError('handler', 'a function', handler);
    if (this.#byId.has(id)) {
      throw new InvalidArgumentError('id', 'an id not already attached', id, 'detach the old handler first');
    }
    // an event named twice is one: the handler runs once per event
    const exact = new Set(names.filter((e) => !e.endsWith('*')));
    const prefixes = names.filter((e) => e.endsWith('*')).map((e) => e.slice(0, -1));
    const attachment: Attachment = { id, events: names, handler, exact, prefixes, attached: true, depth: 0 };
    this.#byId.set(id, attachment);
    this.version++;
    for (const e of exact) {
      const set = this.#exact.get(e);
      if (set === undefined) this.#exact.set(e, new Set([attachment]));
      else set.add(attachment);
    }
    if (prefixes.length > 0) this.#prefixed.add(attachment);
  }

  detach(id: string): boolean {
    const attachment = this.#byId.get(id);
    if (attachment === undefined) return false;
    this.#byId.delete(id);
    attachment.attached = false;
    this.version++;
    for (const e of attachment.exact) {
      const set = this.#exact.get(e);
      if (set === undefined) continue;
      set.delete(attachment);
      if (set.size === 0) this.#exact.delete(e);
    }
    this.#prefixed.delete(attachment);
    return true;
  }

  span<T>(event: string, spanMetadata: Metadata, fn: () => T): T {
    if (typeof event !== 'string') throw new InvalidArgumentError('event', 'an event name (a string)', event);
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function', fn);
    let copy: Metadata;
    try {
      copy = { ...spanMetadata };
    } catch (e) {
      throw new InvalidArgumentError('metadata', 'an object that can be read', spanMetadata, `reading it threw ${describe(e)}`);
    }
    const started = this.#monotonicClock();
    // spanId ties a span's start to its stop or exception (spans of async work overlap)
    const metadata = { ...copy, spanId: ++this.#spanSeq };
    this.execute(`${event}.start`, { monotonicTime: started }, metadata);
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.execute(`${event}.exception`, { duration: this.#monotonicClock() - started }, { ...metadata, error });
      throw error;
    }
    if (isThenable(result)) {
      // a span ends once: a thenable of another library may call back twice, or both ways, or throw
      // after calling back (a promise settles once; such a thenable's later calls end nothing)
      let first: { readonly ok: boolean; readonly value: unknown } | undefined;
      let tell: ((outcome: { readonly ok: boolean; readonly value: unknown }) => void) | undefined;
      const end = (ok: boolean, value: unknown): void => {
        if (first !== undefined) return;
        first = { ok, value };
        const duration = this.#monotonicClock() - started;
        if (ok) this.execute(`${event}.stop`, { duration }, metadata);
        else this.execute(`${event}.exception`, { duration }, { ...metadata, error: value });
        tell?.(first);
      };
      let then: unknown;
      try {
        then = result.then(
          (value) => {
            end(true, value);
            return value;
          },
          (error: unknown) => {
            end(false, error);
            throw error;
          },
        );
      } catch (error) {
        // a thenable whose then throws: the span ends as an exception, never left open
        end(false, error);
        throw error;
      }
      if (isThenable(then)) return then as T;
      // a then that returns no thenable (another library's): the caller still gets a promise of the
      // outcome it called back with, not undefined to await
      return new Promise((resolve, reject) => {
        tell = (o) => (o.ok ? resolve(o.value) : reject(o.value));
        if (first !== undefined) tell(first);
      }) as T;
    }
    this.execute(`${event}.stop`, { duration: this.#monotonicClock() - started }, metadata);
    return result;
  }

  #invoke(a: Attachment, event: string, measurements: Measurements, metadata: Metadata): void {
    if (a.depth >= MAX_HANDLER_DEPTH) {
      const error = new KeelError('ERR_TELEMETRY_RECURSION', `telemetry handler '${a.id}' ran ${MAX_HANDLER_DEPTH} levels deep inside itself on ${event} (it executes an event it handles): a recursion without end`);
      this.#failed(a, event, error);
      return;
    }
    a.depth++;
    try {
      a.handler(event, measurements, metadata);
    } catch (thrown) {
      // a handler that ended its own process with ctx.exit is not a failing handler
      if (isExitSentinel(thrown)) return;
      this.#failed(a, event, toError(thrown));
    } finally {
      a.depth--;
    }
  }

  /** A handler failed: detached, then reported once, to the log and as an event. */
  #failed(a: Attachment, event: string, error: Error): void {
    this.detach(a.id);
    this.#report(`telemetry handler '${a.id}' failed on ${event} and was detached`, error);
    this.execute('keel.telemetry.handler_failed', {}, { handlerId: a.id, event, error });
  }

  /** @internal The channels kept for probes (Keel's own event names, a bounded set), for leak tests. */
  get keptChannels(): number {
    return this.#channels.size;
  }

  #channel(event: string): Channel {
    let channel = this.#channels.get(event);
    if (channel === undefined) {
      channel = diagnostics.channel(event);
      this.#channels.set(event, channel);
    }
    return channel;
  }
}

/** True when one of the attachment's prefixes starts `event`. */
function matchesPrefix(a: Attachment, event: string): boolean {
  for (const p of a.prefixes) if (event.startsWith(p)) return true;
  return false;
}

/** A thenable; a value whose `then` cannot be read (a revoked proxy, a throwing getter) is a plain value. */
function isThenable(value: unknown): value is PromiseLike<unknown> {
  if (value === null || (typeof value !== 'object' && typeof value !== 'function')) return false;
  try {
    return typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

/** A cached "does anyone listen to this event" check; see `TelemetryBus.probe`. */
class TelemetryProbe {
  readonly #bus: TelemetryBus;
  readonly #events: readonly string[];
  readonly #channels: readonly Channel[];
  #version = -1;
  #attached = false;

  constructor(bus: TelemetryBus, events: readonly string[], channels: readonly Channel[]) {
    this.#bus = bus;
    this.#events = events;
    this.#channels = channels;
  }

  get active(): boolean {
    const version = this.#bus.version;
    // recomputed out of line: a closure here (capturing this) would cost a context per read
    if (version !== this.#version) this.#recompute(version);
    if (this.#attached) return true;
    const channels = this.#channels;
    for (let i = 0; i < channels.length; i++) if (channels[i]!.hasSubscribers) return true;
    return false;
  }

  #recompute(version: number): void {
    this.#version = version;
    const bus = this.#bus;
    this.#attached = this.#events.some((e) => bus.isAttached(e));
  }
}
