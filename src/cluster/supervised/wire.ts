/**
 * @internal What a supervised send across nodes puts in its JetStream message, and what the receiver
 * sends back on the sender's reply subject. Both are JSON; the message itself is encoded by the
 * cluster codec (a snapshot at send time; a value it cannot carry is a typed error then).
 */
import type { Backoff } from '../../backoff.js';
import type { TraceCarrier } from '../../telemetry/tracing.js';
import { decodeBatch, encodeValue, type PidFactory } from '../codec.js';

/** Where the message goes on the receiving node: a pid (its creation and id) or a registered name. */
export type WireTarget = { readonly pid: readonly [creation: number, id: number] } | { readonly name: string };

/** A supervised send as the receiving node reads it. */
export interface WireSend {
  readonly id: string;
  readonly to: WireTarget;
  readonly ack: 'enqueued' | 'handled';
  /** Per attempt, ms (`ack: 'handled'`); -1: none. */
  readonly timeout: number;
  /** Deliveries allowed (the send's `retries + 1`). */
  readonly attempts: number;
  readonly retryOnCrash: boolean;
  readonly backoff: Backoff;
  /** Wall-clock ms after which the sender has given up (the receiver then drops it). */
  readonly expires: number;
  /** The sender's reply subject for this send. */
  readonly reply: string;
  readonly message: unknown;
  /** Message-flow tracing: the sender's span as a W3C `traceparent` (`tp`), and its `tracestate` (`ts`), as received (unchecked). */
  readonly traceparent?: unknown;
  readonly tracestate?: unknown;
}

/** What the receiver tells the sender: one failed attempt (`a`), or the end (`f`). */
export type WireReply =
  | { readonly t: 'a'; readonly n: number; readonly reason: string; readonly error: string }
  | { readonly t: 'f'; readonly ok: true; readonly n: number }
  | { readonly t: 'f'; readonly ok: false; readonly n: number; readonly reason: string; readonly error: string };

/** The JSON text of a send (the message encoded with `maxLength`: a typed error when it is too large). */
export function encodeSend(send: Omit<WireSend, 'message' | 'traceparent' | 'tracestate'>, message: unknown, maxLength: number, trace?: TraceCarrier): string {
  const head = JSON.stringify({
    v: 1, id: send.id, to: send.to, ack: send.ack, timeout: send.timeout, attempts: send.attempts, retryOnCrash: send.retryOnCrash, backoff: send.backoff, expires: send.expires, reply: send.reply,
    // only when the sender traces the message flow: an untraced send carries no byte of it
    ...(trace === undefined ? {} : trace.tracestate === undefined ? { tp: trace.traceparent } : { tp: trace.traceparent, ts: trace.tracestate }),
  });
  return `${head.slice(0, -1)},"m":${encodeValue(message, maxLength)}}`;
}

/** The longest message id across nodes, in bytes of UTF-8: the handled-id record's key (base64url) must fit a NATS control line. */
export const MAX_ID_BYTES = 1024;

/** Whether `id` can cross nodes: non-empty, at most {@link MAX_ID_BYTES} of UTF-8, no line breaks or NUL, no lone surrogate (two would share one record key). */
export function isWireId(id: unknown): id is string {
  return typeof id === 'string' && id.length > 0 && id.length <= MAX_ID_BYTES && Buffer.byteLength(id, 'utf8') <= MAX_ID_BYTES && !/[\r\n\0]|\p{Cs}/u.test(id);
}

const REASONS = new Set(['noproc', 'process_down', 'timeout', 'mailbox_full', 'aborted', 'noconnection']);

/** Reads a send; throws a `TypeError` (or the codec's typed error) for anything malformed. */
export function decodeSend(text: string, pids: PidFactory): WireSend {
  const v = decodeBatch(text, pids) as Record<string, unknown>;
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v.v !== 1) throw new TypeError('a supervised send is an object of version 1');
  const { id, to, ack, timeout, attempts, retryOnCrash, backoff, expires, reply } = v;
  if (!isWireId(id)) throw new TypeError('a supervised send needs an id (at most 1024 bytes of UTF-8)');
  if (ack !== 'enqueued' && ack !== 'handled') throw new TypeError('a supervised send needs an ack');
  if (typeof timeout !== 'number' || !(timeout === -1 || timeout >= 0)) throw new TypeError('a supervised send needs a timeout');
  if (typeof attempts !== 'number' || !Number.isSafeInteger(attempts) || attempts < 1) throw new TypeError('a supervised send needs attempts');
  if (typeof retryOnCrash !== 'boolean' || typeof expires !== 'number' || typeof reply !== 'string' || reply.length === 0) throw new TypeError('a malformed supervised send');
  const b = backoff as Record<string, unknown> | null;
  if (typeof b !== 'object' || b === null || typeof b.initialMs !== 'number' || typeof b.factor !== 'number' || typeof b.maxMs !== 'number' || (b.jitter !== 'full' && b.jitter !== 'none')) {
    throw new TypeError('a supervised send needs a backoff');
  }
  const send: WireSend = { id, to: target(to), ack, timeout, attempts, retryOnCrash, backoff: b as unknown as Backoff, expires, reply, message: v.m };
  // a trace context is read (strictly) by the receiver only while it traces; a malformed one is not the send's fault
  return v.tp === undefined ? send : { ...send, traceparent: v.tp, tracestate: v.ts };
}

function target(to: unknown): WireTarget {
  const t = to as Record<string, unknown> | null;
  if (typeof t === 'object' && t !== null) {
    if (typeof t.name === 'string' && t.name.length > 0) return { name: t.name };
    const p = t.pid;
    if (Array.isArray(p) && p.length === 2 && p.every((n) => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0)) return { pid: [p[0] as number, p[1] as number] };
  }
  throw new TypeError('a supervised send needs a target');
}

/** Reads a reply; undefined for a malformed one. */
export function decodeReply(text: string): WireReply | undefined {
  let v: Record<string, unknown>;
  try {
    v = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null || typeof v.n !== 'number') return undefined;
  if (v.t === 'f' && v.ok === true) return { t: 'f', ok: true, n: v.n };
  if (typeof v.reason !== 'string' || !REASONS.has(v.reason)) return undefined;
  const error = typeof v.error === 'string' ? v.error : String(v.error);
  if (v.t === 'a') return { t: 'a', n: v.n, reason: v.reason, error };
  if (v.t === 'f' && v.ok === false) return { t: 'f', ok: false, n: v.n, reason: v.reason, error };
  return undefined;
}

/** An error as text for the wire (the sender's `firstError`/`lastError`). */
export function errorText(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}`;
  if (typeof e === 'string') return e;
  try {
    return JSON.stringify(e) ?? String(e);
  } catch {
    return String(e);
  }
}
