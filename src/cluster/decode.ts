/**
 * The decoding half of the cluster's value codec (see codec.ts): one `JSON.parse`, then, when the
 * text may hold a tag or a key that could pollute a prototype, one walk that rebuilds the tags and
 * refuses those keys with `MalformedFrameError`. A batch can be parsed once and revived frame by
 * frame ({@link parseBatch}, {@link reviveValue}), so that one bad value costs only its frame.
 */
import * as errors from '../errors.js';
import { Buffer } from 'node:buffer';
import { MalformedFrameError, thrownText } from '../errors.js';
import { Name, RefImpl, type Pid } from '../runtime/Pid.js';

/** Makes the pid of a decoded `{ node, creation, id }`: the cluster resolves its own node's pids to live processes. */
export type PidFactory = (node: string, creation: number, id: number) => Pid;

/** The most decimal digits a bigint may have on the wire: a sender refuses more (codec.ts), a receiver drops a frame with more. */
export const MAX_BIGINT_DIGITS = 100_000;
const BIGINT_TEXT = new RegExp(`^-?\\d{1,${MAX_BIGINT_DIGITS}}$`);

let factory: PidFactory = () => {
  throw new Error('no pid factory');
};

/** Whether a text may need the walk: a tag, a key that could pollute, or a `\u` escape that could spell one. */
const NEEDS_WALK = /"\$keel"|__proto__|prototype|\\u/;

function malformed(expected: string, given: unknown): never {
  let text: string;
  try {
    text = given === undefined ? 'undefined' : (JSON.stringify(given) ?? String(given));
  } catch {
    text = typeof given;
  }
  throw new MalformedFrameError(expected, text.length > 120 ? `${text.slice(0, 117)}...` : text);
}

/**
 * Rebuilds the tags of a parsed value, children first (as a reviver would, at a third of its cost:
 * a reviver is a call per value), and refuses the keys that could pollute a prototype. Returns the
 * value that replaces `v` (itself unless it is a tag).
 */
function revive(v: object): unknown {
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) {
      const x: unknown = v[i];
      if (typeof x === 'object' && x !== null) {
        const y = revive(x);
        if (y !== x) v[i] = y;
      }
    }
    return v;
  }
  const o = v as Record<string, unknown>;
  for (const k in o) {
    if (k === '__proto__') malformed("no '__proto__' key", k);
    const x = o[k];
    if (typeof x === 'object' && x !== null) {
      const y = revive(x);
      // checked on the revived value: an escape tag under 'constructor' has its 'prototype' key only once revived
      if (k === 'constructor' && typeof y === 'object' && y !== null && Object.hasOwn(y, 'prototype')) malformed("no 'prototype' key under 'constructor'", 'constructor.prototype');
      if (y !== x) o[k] = y;
    }
  }
  const kind = o.$keel;
  return kind === undefined ? o : untag(o, kind);
}

const NUMBERS: Record<string, number> = { NaN, Infinity, '-Infinity': -Infinity, '-0': -0 };

const ERRORS: Record<string, new (message: string, options?: { cause?: unknown }) => Error> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

function isBase64(s: unknown): s is string {
  return typeof s === 'string' && /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0;
}

function untag(t: Record<string, unknown>, kind: unknown): unknown {
  switch (kind) {
    case 'pid':
      if (typeof t.n !== 'string' || !Number.isSafeInteger(t.c) || !Number.isSafeInteger(t.i)) malformed('a pid tag {"$keel":"pid","n":node,"c":creation,"i":id}', t);
      return factory(t.n, t.c as number, t.i as number);
    case 'u':
      return undefined;
    case 'num': {
      const n = typeof t.v === 'string' && Object.hasOwn(NUMBERS, t.v) ? NUMBERS[t.v] : undefined;
      if (n === undefined) malformed('a number tag with "NaN", "Infinity", "-Infinity" or "-0"', t);
      return n;
    }
    case 'big':
      if (typeof t.v !== 'string' || !BIGINT_TEXT.test(t.v)) malformed('a bigint tag with a decimal string', t);
      return BigInt(t.v);
    case 'ref':
      if (typeof t.n !== 'string' || !Number.isSafeInteger(t.i)) malformed('a ref tag {"$keel":"ref","n":node,"i":id}', t);
      return new RefImpl(t.n, t.i as number);
    case 'name':
      if (typeof t.t !== 'string' || t.t === '') malformed('a name tag with a non-empty text', t);
      return Name.of(t.t);
    case 'date':
      if (typeof t.v !== 'number') malformed('a date tag with a time in ms', t);
      return new Date(t.v);
    case 'buf':
    case 'u8': {
      if (!isBase64(t.v)) malformed('a bytes tag with base64 text', t);
      const b = Buffer.from(t.v, 'base64');
      // a small Buffer is a view of Node's shared pool: a Uint8Array gets memory of its own (a
      // copy), so that its `buffer` holds its bytes and nothing of what else the node decoded
      return kind === 'buf' ? b : new Uint8Array(b);
    }
    case 'map': {
      const v = t.v;
      if (!Array.isArray(v) || v.length % 2 !== 0) malformed('a map tag with [key, value, ...]', t);
      const m = new Map<unknown, unknown>();
      for (let i = 0; i < v.length; i += 2) m.set(v[i], v[i + 1]);
      return m;
    }
    case 'set':
      if (!Array.isArray(t.v)) malformed('a set tag with an array', t);
      return new Set(t.v);
    case 'esc':
      return unescape(t);
    case 'err':
      return untagError(t);
    default:
      return malformed('a known $keel tag (or a user object with $keel escaped)', t);
  }
}

function unescape(t: Record<string, unknown>): Record<string, unknown> {
  const entries = t.v;
  if (!Array.isArray(entries)) malformed('an escape tag with [[key, value], ...]', t);
  const o: Record<string, unknown> = {};
  for (const e of entries as unknown[]) {
    if (!Array.isArray(e) || e.length !== 2 || typeof e[0] !== 'string') malformed('an escape tag with [[key, value], ...]', t);
    const [k, v] = e as [string, unknown];
    if (k === '__proto__') malformed("no '__proto__' key", k);
    if (k === 'constructor' && typeof v === 'object' && v !== null && Object.hasOwn(v, 'prototype')) malformed("no 'prototype' key under 'constructor'", 'constructor.prototype');
    o[k] = v;
  }
  return o;
}

function untagError(t: Record<string, unknown>): Error {
  const { name, message, stack, props } = t;
  if (typeof name !== 'string' || typeof message !== 'string' || (stack !== undefined && typeof stack !== 'string')) {
    malformed('an error tag with a string name and message', t);
  }
  if (props !== undefined && (typeof props !== 'object' || props === null || Array.isArray(props))) malformed('an error tag whose props are an object', t);
  const C = Object.hasOwn(ERRORS, name) ? ERRORS[name]! : Error;
  const e = Object.hasOwn(t, 'cause') ? new C(message, { cause: t.cause }) : new C(message);
  const hidden = { writable: true, configurable: true, enumerable: false };
  if (e.name !== name) Object.defineProperty(e, 'name', { ...hidden, value: name });
  if (stack === undefined) delete e.stack;
  else Object.defineProperty(e, 'stack', { ...hidden, value: stack });
  if (props !== undefined) {
    for (const k of Object.keys(props)) Object.defineProperty(e, k, { writable: true, configurable: true, enumerable: true, value: (props as Record<string, unknown>)[k] });
  }
  // a Keel error keeps its class (`instanceof CallTimeoutError` holds on the caller's side too): the
  // object is the error built above, given the class's prototype; no constructor runs
  const keel = Object.hasOwn(KEEL_ERRORS, name) ? KEEL_ERRORS[name] : undefined;
  if (keel !== undefined && typeof (e as { code?: unknown }).code === 'string') Object.setPrototypeOf(e, keel.prototype);
  Object.defineProperty(e, 'remote', { ...hidden, value: true });
  return e;
}

/** Keel's error classes by name: a decoded error of one of them (with its code) is given its class back. */
const KEEL_ERRORS: Record<string, { prototype: object }> = Object.fromEntries(
  Object.values(errors)
    .filter((c): c is typeof errors.KeelError => typeof c === 'function' && (c === errors.KeelError || c.prototype instanceof errors.KeelError))
    .map((c) => [c.name, c]),
);

/**
 * Parses a batch's JSON without reviving its values: `tagged` is false when the text holds no tag,
 * no key that could pollute a prototype and no escape (then nothing needs {@link reviveValue}). With
 * it, a receiver revives each frame on its own, so that one bad value costs its frame, not the batch.
 */
export function parseBatch(text: string): { value: unknown; tagged: boolean } {
  if (typeof text !== 'string') malformed('a JSON text', text);
  try {
    return { value: JSON.parse(text) as unknown, tagged: NEEDS_WALK.test(text) };
  } catch (e) {
    throw new MalformedFrameError('JSON text', `text that does not parse (${thrownText(e)})`, e);
  }
}

/** Rebuilds the tags of a value {@link parseBatch} parsed (in place), refusing prototype-polluting keys. */
export function reviveValue(value: unknown, pids: PidFactory): unknown {
  if (typeof value !== 'object' || value === null) return value;
  const outer = factory; // a factory may itself decode
  factory = pids;
  try {
    return revive(value);
  } catch (e) {
    if (e instanceof MalformedFrameError) throw e;
    if (e instanceof RangeError) throw new MalformedFrameError('a value nested no deeper than the stack allows', `one nested deeper (${thrownText(e)})`, e);
    throw e; // the pid factory's own error
  } finally {
    factory = outer;
  }
}

/**
 * Decodes the text of a whole batch (or of any value {@link encodeValue} wrote): one `JSON.parse`,
 * then, when the text holds any tag or a key that could pollute a prototype, one walk that rebuilds
 * the tags and refuses those keys. Pids are made by `pids`; refs are `RefImpl`s; names are
 * `Name.of(text)`; errors are real Errors (the built-in class for a built-in name, else `Error`)
 * with the sender's `name`, `message`, `stack`, `cause` and own enumerable properties (`code` among
 * them), and an own non-enumerable `remote: true`.
 *
 * @throws `MalformedFrameError` (`ERR_MALFORMED_FRAME`) for text that is not JSON, a `__proto__`
 *   key anywhere, a `prototype` key under a `constructor` key, a malformed tag, or nesting deeper
 *   than the stack allows.
 */
export function decodeBatch(text: string, pids: PidFactory): unknown {
  const { value, tagged } = parseBatch(text);
  return tagged ? reviveValue(value, pids) : value;
}

/** Decodes one value {@link encodeValue} wrote (the same as {@link decodeBatch}). */
export function decodeValue(text: string, pids: PidFactory): unknown {
  return decodeBatch(text, pids);
}
