import { types } from 'node:util';
import { randomUUID } from 'node:crypto';
import { InvalidArgumentError, InvalidSignalError, thrownText } from '../errors.js';
import { isInstance } from '../runtime/safe.js';

/**
 * A signal: a CloudEvents 1.0 event (https://github.com/cloudevents/spec, v1.0.2), in its JSON
 * shape. Keel's profile adds two constraints to the spec: `time` is required (`createSignal` sets
 * it), and `type` is a dotted name whose segments are not empty (`order.created`), because the
 * `SignalRouter` matches patterns segment by segment.
 */
export interface Signal<D = unknown> {
  readonly specversion: '1.0';
  /** Unique per source (`createSignal` makes a random UUID). */
  readonly id: string;
  /** A URI-reference naming the producer (`/billing`, `urn:keel:agent:7`). */
  readonly source: string;
  /** Dotted event type, most general segment first: `order.created`, `agent.task.failed`. */
  readonly type: string;
  /** When it happened, RFC 3339 (`2024-05-01T12:00:00.000Z`). */
  readonly time: string;
  /** What it is about, within the source (`order/42`). */
  readonly subject?: string;
  /** The media type of `data` (`application/json`). */
  readonly datacontenttype?: string;
  /** A URI of the schema `data` adheres to. */
  readonly dataschema?: string;
  readonly data?: D;
  /** Binary data, base64 (the JSON format's member for it); never together with `data`. */
  readonly data_base64?: string;
}

/** What `createSignal` takes: `type` and `source`, and optionally the rest. */
export interface SignalInput<D = unknown> {
  type: string;
  source: string;
  data?: D;
  subject?: string;
  /** Default: a fresh random UUID. */
  id?: string;
  /** A Date, epoch ms, or an RFC 3339 string. Default: now, on the wall clock. */
  time?: string | Date | number;
  datacontenttype?: string;
  dataschema?: string;
}

/** The CloudEvents attributes Keel knows; any other own property is an extension attribute. */
const KNOWN = new Set(['specversion', 'id', 'source', 'type', 'time', 'subject', 'datacontenttype', 'dataschema', 'data', 'data_base64']);
/** CloudEvents 1.0: attribute names are lower-case ASCII letters and digits. */
const EXTENSION_NAME = /^[a-z0-9]+$/;
/** RFC 4648 base64, padded (the JSON format's `data_base64`). */
const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
/** RFC 3339 `date-time` (the `T` and `Z` may be lower case; fractions of any length). */
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))$/;

/** Signals known valid: made by `createSignal`, or frozen and validated once (they cannot change). */
const known = new WeakSet<object>();

/** True when `time` is an RFC 3339 timestamp with every field in range. */
function isRfc3339(time: string): boolean {
  const m = RFC3339.exec(time);
  if (m === null) return false;
  const year = Number(m[1]);
  const month = Number(m[2]);
  const day = Number(m[3]);
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  if (day > days) return false;
  // seconds up to 60: a leap second
  if (Number(m[4]) > 23 || Number(m[5]) > 59 || Number(m[6]) > 60) return false;
  if (m[8] !== undefined && (Number(m[9]) > 23 || Number(m[10]) > 59)) return false;
  return true;
}

function nonEmpty(value: unknown): value is string {
  return typeof value === 'string' && value.length > 0;
}

/** Throws `ERR_INVALID_SIGNAL` naming the first attribute of `type` that is wrong. */
function checkType(type: unknown): void {
  if (!nonEmpty(type)) throw new InvalidSignalError('type', 'a non-empty string', type);
  // segments split on '.': none may be empty ('order..created', '.order', 'order.')
  if (type.charCodeAt(0) === 46 || type.charCodeAt(type.length - 1) === 46 || type.includes('..')) {
    throw new InvalidSignalError('type', "dot-separated non-empty segments ('order.created')", type);
  }
}

/**
 * Checks that `value` is a well-formed signal (CloudEvents 1.0 in its JSON shape, Keel's profile);
 * throws `InvalidSignalError` (`ERR_INVALID_SIGNAL`) whose `attribute` names the first attribute
 * that is wrong. Extension attributes must have lower-case alphanumeric names and string, boolean
 * or (32-bit signed) integer values.
 *
 * @example
 * ```ts
 * validateSignal(JSON.parse(body)); // throws ERR_INVALID_SIGNAL on a malformed event
 * try { validateSignal({ specversion: '0.3' }); } catch (e) { e.attribute; } // 'specversion'
 * ```
 */
export function validateSignal(value: unknown): asserts value is Signal {
  // a proxy is never a signal (Array.isArray throws on a revoked one, its traps could lie)
  if (typeof value !== 'object' || value === null || types.isProxy(value) || Array.isArray(value)) throw new InvalidSignalError('signal', 'a CloudEvents 1.0 object', value);
  if (known.has(value)) return;
  try {
    validateAttributes(value as Record<string, unknown>);
  } catch (e) {
    if (isInstance(e, InvalidSignalError)) throw e;
    // a getter that throws
    throw new InvalidSignalError('signal', `a CloudEvents 1.0 object whose attributes can be read (reading one threw ${thrownText(e)})`, value);
  }
  // a frozen signal of data properties cannot change: it need not be checked again (a getter may
  // answer something else at each read, frozen or not); one with a null attribute is not a Signal
  // as it is (the router routes a copy without it)
  if (Object.isFrozen(value) && dataOnly(value)) known.add(value);
}

/** True when every own property is a data property, and none but `data` is null (unset). */
function dataOnly(value: object): boolean {
  const descriptors = Object.getOwnPropertyDescriptors(value);
  for (const key of Object.keys(descriptors)) {
    const d = descriptors[key]!;
    if (!('value' in d) || (d.value === null && key !== 'data')) return false;
  }
  return true;
}

/**
 * @internal `value` as a signal that cannot change: itself when known valid, else a frozen copy of
 * its attributes, each read once, validated; undefined when it is not a signal (a getter that
 * throws included). The router routes and delivers this copy, so no code of the published object
 * runs while it routes (a getter answering another type, or throwing, at a later read).
 */
export function stableSignal(value: unknown): Signal | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (known.has(value)) return value as Signal;
  if (types.isProxy(value) || Array.isArray(value)) return undefined;
  const copy: Record<string, unknown> = {};
  try {
    const s = value as Record<string, unknown>;
    // an attribute that is null is unset (CloudEvents JSON format §2.2): left out of the copy; data
    // may be null (a null payload)
    for (const key of KNOWN) {
      const v = s[key];
      if (key === 'data' ? key in s : v !== undefined && v !== null) copy[key] = v;
    }
    for (const key of Object.keys(s)) {
      if (KNOWN.has(key)) continue;
      // a name validateSignal refuses is refused before it is written: `__proto__` (an own member of
      // a parsed JSON object) would set the copy's prototype, not copy a member
      if (!EXTENSION_NAME.test(key)) return undefined;
      const v = s[key];
      if (v !== null) copy[key] = v;
    }
    validateAttributes(copy);
  } catch {
    return undefined;
  }
  Object.freeze(copy);
  known.add(copy);
  return copy as unknown as Signal;
}

/** CloudEvents JSON format §2.2: an attribute that is null is unset (the attributes Keel requires stay required). */
function validateAttributes(s: Record<string, unknown>): void {
  if (s.specversion !== '1.0') throw new InvalidSignalError('specversion', "'1.0'", s.specversion);
  if (!nonEmpty(s.id)) throw new InvalidSignalError('id', 'a non-empty string', s.id);
  if (!nonEmpty(s.source)) throw new InvalidSignalError('source', 'a non-empty string (a URI-reference)', s.source);
  checkType(s.type);
  if (typeof s.time !== 'string' || !isRfc3339(s.time)) throw new InvalidSignalError('time', "an RFC 3339 timestamp ('2024-05-01T12:00:00Z')", s.time);
  if (s.subject != null && !nonEmpty(s.subject)) throw new InvalidSignalError('subject', 'a non-empty string when present', s.subject);
  if (s.datacontenttype != null && !nonEmpty(s.datacontenttype)) {
    throw new InvalidSignalError('datacontenttype', "a non-empty media type when present ('application/json')", s.datacontenttype);
  }
  if (s.dataschema != null && !nonEmpty(s.dataschema)) throw new InvalidSignalError('dataschema', 'a non-empty URI when present', s.dataschema);
  if (s.data_base64 != null) {
    // binary data in the JSON format: base64, and the data and data_base64 members are mutually exclusive
    if (typeof s.data_base64 !== 'string' || !BASE64.test(s.data_base64)) throw new InvalidSignalError('data_base64', 'a base64 string (binary data) when present', s.data_base64);
    if (s.data !== undefined) throw new InvalidSignalError('data_base64', 'absent when data is present (data and data_base64 are mutually exclusive)', s.data_base64);
  }
  for (const key of Object.keys(s)) {
    if (KNOWN.has(key)) continue;
    if (!EXTENSION_NAME.test(key)) throw new InvalidSignalError(key, 'an extension attribute named with lower-case letters and digits only', key);
    const v = s[key];
    if (v === null) continue;
    // CloudEvents' Integer is 32-bit signed: -2,147,483,648 to 2,147,483,647
    if (!(typeof v === 'string' || typeof v === 'boolean' || (typeof v === 'number' && Number.isInteger(v) && v >= -2147483648 && v <= 2147483647))) {
      throw new InvalidSignalError(key, 'a string, boolean or integer from -2147483648 to 2147483647 (an extension attribute value)', v);
    }
  }
}

/**
 * True when `value` is a well-formed signal (see {@link validateSignal}).
 *
 * @example
 * ```ts
 * if (isSignal(message)) console.log(message.type, message.id);
 * ```
 */
export function isSignal(value: unknown): value is Signal {
  if (typeof value === 'object' && value !== null && known.has(value)) return true;
  try {
    validateSignal(value);
    return true;
  } catch {
    return false;
  }
}

function toTime(time: SignalInput['time']): string {
  if (time === undefined) return new Date().toISOString();
  if (isInstance(time, Date)) {
    if (Number.isNaN(time.getTime())) throw new InvalidSignalError('time', 'a valid Date', time);
    return time.toISOString();
  }
  if (typeof time === 'number') {
    const d = new Date(time);
    if (!Number.isFinite(time) || Number.isNaN(d.getTime())) throw new InvalidSignalError('time', 'epoch milliseconds within the Date range', time);
    return d.toISOString();
  }
  return time; // a string: validated with the rest
}

/**
 * Makes a signal: a frozen CloudEvents 1.0 event with a fresh random UUID `id` (unless given) and
 * `time` now (unless given). Throws `InvalidSignalError` (`ERR_INVALID_SIGNAL`) naming the bad
 * attribute. The envelope is frozen; `data` is carried as given (not copied, not frozen).
 *
 * @example
 * ```ts
 * const s = createSignal({ type: 'order.created', source: '/shop', subject: 'order/42', data: { total: 30 } });
 * s.specversion; // '1.0'
 * router.publish(s);
 * ```
 */
export function createSignal<D = unknown>(input: SignalInput<D>): Signal<D> {
  const expected = '{ type, source, data?, subject?, id?, time?, datacontenttype?, dataschema? }';
  if (typeof input !== 'object' || input === null || types.isProxy(input)) throw new InvalidArgumentError('input', expected, input);
  try {
    return makeSignal(input);
  } catch (e) {
    if (isInstance(e, InvalidSignalError)) throw e;
    // a getter that throws
    throw new InvalidArgumentError('input', `${expected} whose fields can be read`, input, `reading one threw ${thrownText(e)}`);
  }
}

function makeSignal<D>(input: SignalInput<D>): Signal<D> {
  const signal: { -readonly [K in keyof Signal<D>]: Signal<D>[K] } = {
    specversion: '1.0',
    id: input.id ?? randomUUID(),
    source: input.source,
    type: input.type,
    time: toTime(input.time),
  };
  // null is unset, as in the JSON format: left out
  if (input.subject != null) signal.subject = input.subject;
  if (input.datacontenttype != null) signal.datacontenttype = input.datacontenttype;
  if (input.dataschema != null) signal.dataschema = input.dataschema;
  if ('data' in input) signal.data = input.data as D;
  validateSignal(signal);
  Object.freeze(signal);
  known.add(signal);
  return signal;
}

/** @internal The signals `createSignal` made or `validateSignal` saw frozen: already valid. */
export function isKnownSignal(value: unknown): boolean {
  return typeof value === 'object' && value !== null && known.has(value);
}
