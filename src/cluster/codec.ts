/**
 * The cluster's value codec: what a message, an exit reason or a call's request and reply becomes on
 * the wire between nodes, and back.
 *
 * A value is JSON text. What JSON cannot say is written as a tag, an object whose first key is
 * `$keel`: pids (`{"$keel":"pid","n":node,"c":creation,"i":id}`), refs, typed names, Errors,
 * Dates, Maps, Sets, `Uint8Array`s and Buffers (base64), bigints, `undefined` (kept, in objects and
 * arrays alike), `-0`, `NaN` and the infinities. A user object that has its own `$keel` key is
 * escaped (`{"$keel":"esc","v":[[key, value], ...]}`), so no user data is ever taken for a tag.
 *
 * Encoding is a snapshot taken at send time (later mutation of the value changes nothing sent, as
 * Erlang copies) and refuses, with `NotSerializableError` naming the path of the bad value, what
 * another node could not rebuild: functions, symbols, class instances other than the carried ones,
 * cycles, proxies, properties that throw when read, WeakMaps, Promises, and keys the receiver would
 * refuse (`__proto__`, `prototype` under `constructor`). Over `maxLength` it is
 * `MessageTooLargeError`.
 *
 * Decoding (decode.ts) is one `JSON.parse` and one walk over the result (skipped for a text that holds no tag
 * and no key that could pollute a prototype): it refuses such keys and malformed tags with `MalformedFrameError`,
 * and turns pids back through the cluster's pid factory, so that a pid of this node is its live
 * process.
 */
import { Buffer } from 'node:buffer';
import { types } from 'node:util';
import { InvalidArgumentError, isError, MessageTooLargeError, NotSerializableError, thrownText } from '../errors.js';
import { NameImpl, PidImpl, RefImpl } from '../runtime/Pid.js';
import { MAX_BIGINT_DIGITS } from './decode.js';

const SUBJECT = 'a message sent to another node';
const CARRIED = 'objects, arrays, primitives, bigints, undefined, pids, refs, Names, Errors, Dates, Maps, Sets, Uint8Arrays, Buffers';

// ---- tags as the encoder builds them ---------------------------------------------------------
// Instances of these classes are the encoder's own tags: the replacer lets them through (their
// `$keel` key is no user key to escape) and serializes their fields, which may be values again.

abstract class Tag {}
// fields are declared (not parameter properties) so that `$keel` is the first key written
class PidTag extends Tag {
  readonly $keel: 'pid';
  readonly n: string;
  readonly c: number;
  readonly i: number;
  constructor(n: string, c: number, i: number) {
    super();
    this.$keel = 'pid';
    this.n = n;
    this.c = c;
    this.i = i;
  }
}
class RefTag extends Tag {
  readonly $keel: 'ref';
  readonly n: string;
  readonly i: number;
  constructor(n: string, i: number) {
    super();
    this.$keel = 'ref';
    this.n = n;
    this.i = i;
  }
}
class NameTag extends Tag {
  readonly $keel: 'name';
  readonly t: string;
  constructor(t: string) {
    super();
    this.$keel = 'name';
    this.t = t;
  }
}
class ValueTag extends Tag {
  readonly $keel: string;
  readonly v: unknown;
  constructor($keel: string, v: unknown) {
    super();
    this.$keel = $keel;
    this.v = v;
  }
}
class UndefinedTag extends Tag {
  readonly $keel = 'u';
}
const UNDEFINED_TAG = Object.freeze(new UndefinedTag());
const NAN_TAG = Object.freeze(new ValueTag('num', 'NaN'));
const INF_TAG = Object.freeze(new ValueTag('num', 'Infinity'));
const NEG_INF_TAG = Object.freeze(new ValueTag('num', '-Infinity'));
const NEG_ZERO_TAG = Object.freeze(new ValueTag('num', '-0'));

function numberTag(n: number): Tag {
  return n !== n ? NAN_TAG : n === Infinity ? INF_TAG : n === -Infinity ? NEG_INF_TAG : NEG_ZERO_TAG;
}

/** A pid copy: a plain object with exactly the own keys `node`, `creation` and `id`, of a pid's types. */
function isPidCopy(o: Record<string, unknown>): boolean {
  if (typeof o.node !== 'string' || !Number.isSafeInteger(o.creation) || !Number.isSafeInteger(o.id)) return false;
  const keys = Object.keys(o);
  return keys.length === 3 && Object.hasOwn(o, 'node') && Object.hasOwn(o, 'creation') && Object.hasOwn(o, 'id');
}

// ---- the fast path: JSON.stringify with a replacer --------------------------------------------

/** Thrown by the fast path for anything it leaves to the walk (which also explains refusals). */
const SLOW = Object.freeze({ slow: true });
/** Thrown when the lower bound of the encoded size passes the limit. */
const TOO_LARGE = Object.freeze({ tooLarge: true });

/** What is left of the limit, counted as a lower bound of the text written so far. */
let budget = Infinity;

/**
 * The replacer of the fast path. It reads the holder's raw value (`this[key]`: `value` is what a
 * `toJSON` made of it, a string for a pid or a Date), passes plain data as it is, tags the special
 * values it knows at once and leaves everything else to {@link walk} by throwing {@link SLOW}.
 */
function replacer(this: Record<string, unknown>, key: string, _value: unknown): unknown {
  if (key === '__proto__') throw SLOW;
  const raw = this[key];
  switch (typeof raw) {
    case 'string':
      if ((budget -= raw.length + 2) < 0) throw TOO_LARGE;
      return raw;
    case 'number':
      if ((budget -= 1) < 0) throw TOO_LARGE;
      // finite and not -0
      return raw - raw === 0 && (raw !== 0 || 1 / raw > 0) ? raw : numberTag(raw);
    case 'boolean':
      if ((budget -= 4) < 0) throw TOO_LARGE;
      return raw;
    case 'undefined':
      if ((budget -= 13) < 0) throw TOO_LARGE; // {"$keel":"u"}
      return UNDEFINED_TAG;
    case 'bigint': {
      if ((budget -= 2) < 0) throw TOO_LARGE; // and its digits, as a string
      const digits = raw.toString();
      if (digits.length > MAX_BIGINT_DIGITS) throw SLOW; // the walk refuses it, at its path
      return new ValueTag('big', digits);
    }
    case 'object': {
      if (raw === null) return null;
      if ((budget -= 2) < 0) throw TOO_LARGE;
      if (types.isProxy(raw)) throw SLOW;
      const proto: unknown = Object.getPrototypeOf(raw);
      if (proto === Object.prototype || proto === null) {
        if ('$keel' in raw || (key === 'constructor' && 'prototype' in raw)) throw SLOW;
        const o = raw as Record<string, unknown>;
        return typeof o.node === 'string' && isPidCopy(o) ? new PidTag(o.node, o.creation as number, o.id as number) : raw;
      }
      if (proto === Array.prototype) return raw;
      if (raw instanceof Tag) return raw;
      if (proto === PidImpl.prototype) {
        const p = raw as PidImpl;
        return new PidTag(p.node, p.creation, p.id);
      }
      if (proto === RefImpl.prototype) return refTag(raw as RefImpl);
      if (proto === NameImpl.prototype) return new NameTag((raw as NameImpl).text);
      if (proto === Date.prototype) return new ValueTag('date', (raw as Date).getTime());
      if (proto === Buffer.prototype) return binTag('buf', raw as Buffer);
      if (proto === Uint8Array.prototype) return binTag('u8', raw as Uint8Array);
      throw SLOW;
    }
    default:
      throw SLOW; // a function or a symbol: the walk says where
  }
}

function refTag(r: RefImpl): RefTag {
  return new RefTag(r.node, r.id);
}

function binTag(kind: 'buf' | 'u8', bytes: Uint8Array): ValueTag {
  if ((budget -= (bytes.byteLength * 4) / 3) < 0) throw TOO_LARGE;
  return new ValueTag(kind, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'));
}

// ---- the walk: every value, with its path --------------------------------------------------------

type Step = string | number | { readonly text: string };

class Walk {
  readonly ancestors = new Set<object>();
  readonly steps: Step[] = [];
  constructor(readonly root: string) {}
  path(): string {
    let p = this.root;
    for (const s of this.steps) {
      if (typeof s === 'number') p += `[${s}]`;
      else if (typeof s === 'string') p += /^[A-Za-z_$][\w$]*$/.test(s) ? `.${s}` : `[${JSON.stringify(s)}]`;
      else p += s.text;
    }
    return p;
  }
  refuse(what: string): never {
    throw new NotSerializableError(this.path(), what, SUBJECT, CARRIED);
  }
}

/** Reads `o[key]` for the walk: a property that throws is refused at its path. */
function read(w: Walk, o: object, key: string | number): unknown {
  try {
    return (o as Record<string | number, unknown>)[key];
  } catch (e) {
    return w.refuse(`a property that throws when read (${thrownText(e)})`);
  }
}

/** The value at the walk's current path, as JSON-safe data with tags. */
function walk(w: Walk, v: unknown): unknown {
  switch (typeof v) {
    case 'string':
      if ((budget -= v.length + 2) < 0) throw TOO_LARGE;
      return v;
    case 'number':
      if ((budget -= 1) < 0) throw TOO_LARGE;
      return v - v === 0 && (v !== 0 || 1 / v > 0) ? v : numberTag(v);
    case 'boolean':
      if ((budget -= 4) < 0) throw TOO_LARGE;
      return v;
    case 'undefined':
      if ((budget -= 13) < 0) throw TOO_LARGE;
      return UNDEFINED_TAG;
    case 'bigint': {
      if ((budget -= 2) < 0) throw TOO_LARGE;
      const digits = v.toString();
      // the receiver takes no more digits (decode.ts): refused here, at send time, not dropped there
      if (digits.length - (v < 0n ? 1 : 0) > MAX_BIGINT_DIGITS) return w.refuse(`a bigint of ${digits.length - (v < 0n ? 1 : 0)} digits (at most ${MAX_BIGINT_DIGITS})`);
      return new ValueTag('big', digits);
    }
    case 'function':
      return w.refuse(`a function${v.name ? ` (${v.name})` : ''}`);
    case 'symbol':
      return w.refuse(`a symbol (${v.toString()})`);
    default:
      break;
  }
  if (v === null) return null;
  const o = v as object;
  if ((budget -= 2) < 0) throw TOO_LARGE;
  if (types.isProxy(o)) return w.refuse('a proxy');
  if (w.ancestors.has(o)) return w.refuse('a cyclic reference (an object that contains itself)');
  w.ancestors.add(o);
  try {
    return walkObject(w, o);
  } finally {
    w.ancestors.delete(o);
  }
}

function walkObject(w: Walk, o: object): unknown {
  const proto: unknown = Object.getPrototypeOf(o);
  if (proto === Array.prototype) {
    const a = o as unknown[];
    const out: unknown[] = new Array<unknown>(a.length);
    for (let i = 0; i < a.length; i++) out[i] = member(w, a, i);
    return out;
  }
  if (proto === Object.prototype || proto === null) {
    const r = o as Record<string, unknown>;
    if (Object.hasOwn(r, '$keel')) {
      const entries: unknown[] = [];
      for (const k of Object.keys(r)) entries.push([key(w, r, k), member(w, r, k)]);
      return new ValueTag('esc', entries);
    }
    if (isPidCopyRead(w, r)) return new PidTag(r.node as string, r.creation as number, r.id as number);
    const out: Record<string, unknown> = {};
    for (const k of Object.keys(r)) out[key(w, r, k)] = member(w, r, k);
    return out;
  }
  if (o instanceof Tag) return o;
  if (proto === PidImpl.prototype) return new PidTag((o as PidImpl).node, (o as PidImpl).creation, (o as PidImpl).id);
  if (proto === RefImpl.prototype) return refTag(o as RefImpl);
  if (proto === NameImpl.prototype) return new NameTag((o as NameImpl).text);
  if (proto === Date.prototype) return new ValueTag('date', walk(w, (o as Date).getTime()));
  if (proto === Buffer.prototype) return binTag('buf', o as Buffer);
  if (proto === Uint8Array.prototype) return binTag('u8', o as Uint8Array);
  if (proto === Map.prototype) {
    const out: unknown[] = [];
    let i = 0;
    for (const [k, val] of o as Map<unknown, unknown>) {
      out.push(child(w, { text: `.keys()[${i}]` }, k));
      out.push(child(w, { text: `.get(${typeof k === 'string' ? JSON.stringify(k) : typeof k === 'number' ? String(k) : `<key ${i}>`})` }, val));
      i++;
    }
    return new ValueTag('map', out);
  }
  if (proto === Set.prototype) {
    const out: unknown[] = [];
    let i = 0;
    for (const val of o as Set<unknown>) out.push(child(w, { text: `.values()[${i++}]` }, val));
    return new ValueTag('set', out);
  }
  if (isError(o)) return walkError(w, o);
  if (o instanceof WeakMap) return w.refuse('a WeakMap');
  if (o instanceof WeakSet) return w.refuse('a WeakSet');
  if (o instanceof Promise) return w.refuse('a Promise');
  const ctor = (proto as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return w.refuse(typeof ctor === 'string' && ctor !== '' ? `an instance of ${ctor}` : 'an object with a prototype of its own');
}

/** A key of a plain object: one the receiver would refuse is refused here, at send time. */
function key(w: Walk, o: Record<string, unknown>, k: string): string {
  if (k === '__proto__') {
    w.steps.push(k);
    w.refuse("a key '__proto__' (the receiving node refuses it, as it could pollute prototypes)");
  }
  if (k === 'constructor') {
    w.steps.push(k);
    const v = read(w, o, k);
    w.steps.pop();
    if (typeof v === 'object' && v !== null && !types.isProxy(v) && Object.hasOwn(v, 'prototype')) {
      w.steps.push(k, 'prototype');
      w.refuse("a key 'prototype' under 'constructor' (the receiving node refuses it, as it could pollute prototypes)");
    }
  }
  return k;
}

function isPidCopyRead(w: Walk, o: Record<string, unknown>): boolean {
  w.steps.push('node');
  const node = read(w, o, 'node');
  w.steps.pop();
  return typeof node === 'string' && isPidCopy(o);
}

function child(w: Walk, step: Step, v: unknown): unknown {
  w.steps.push(step);
  const out = walk(w, v);
  w.steps.pop();
  return out;
}

/** `o[k]` as data, with `k` on the path while it is read and walked. */
function member(w: Walk, o: object, k: string | number): unknown {
  w.steps.push(k);
  const out = walk(w, read(w, o, k));
  w.steps.pop();
  return out;
}

/** The own keys of an Error the tag carries in fields of its own. */
const ERROR_FIELDS = new Set(['name', 'message', 'stack', 'cause']);

/** An Error's name or message as text; one that cannot be made text is refused. */
function text(w: Walk, v: unknown): string {
  if (typeof v === 'string') return v;
  try {
    return String(v);
  } catch (e) {
    return w.refuse(`a value that cannot be made text (${thrownText(e)})`);
  }
}

function walkError(w: Walk, e: Error): unknown {
  const tag: Record<string, unknown> = { $keel: 'err' };
  w.steps.push('name');
  tag.name = text(w, read(w, e, 'name'));
  w.steps.pop();
  w.steps.push('message');
  const message = text(w, read(w, e, 'message'));
  tag.message = message;
  w.steps.pop();
  w.steps.push('stack');
  const stack = read(w, e, 'stack');
  w.steps.pop();
  if (typeof stack === 'string') tag.stack = stack;
  if (Object.hasOwn(e, 'cause')) tag.cause = member(w, e, 'cause');
  const props: Record<string, unknown> = {};
  let any = false;
  for (const k of Object.keys(e)) {
    if (ERROR_FIELDS.has(k)) continue;
    props[key(w, e as unknown as Record<string, unknown>, k)] = member(w, e, k);
    any = true;
  }
  // props are user data: one with a `$keel` key of its own is escaped, as a plain object's is
  if (any) tag.props = Object.hasOwn(props, '$keel') ? new ValueTag('esc', Object.entries(props)) : props;
  budget -= message.length + (typeof stack === 'string' ? stack.length : 0);
  if (budget < 0) throw TOO_LARGE;
  return tag;
}

// ---- encode ----------------------------------------------------------------------------------------

/**
 * The JSON text of one value for another node, with tags for what JSON cannot say (see the module
 * comment). `root` names the value in a refusal's path (`'message'`: `message.items[3].fn`).
 *
 * @throws `NotSerializableError` (`ERR_NOT_SERIALIZABLE`, with `path`) for what another node could
 *   not rebuild; `MessageTooLargeError` (`ERR_MESSAGE_TOO_LARGE`, with `size` and `limit`) when the
 *   text would be longer than `maxLength` characters: encoding stops as soon as that is certain.
 */
export function encodeValue(value: unknown, maxLength = Infinity, root = 'message'): string {
  if (maxLength !== Infinity && !(Number.isSafeInteger(maxLength) && maxLength > 0)) {
    throw new InvalidArgumentError('maxLength', 'a positive integer or Infinity', maxLength);
  }
  // saved and restored: a getter may itself encode a value (the budget is module state)
  const outer = budget;
  let text: string | undefined;
  try {
    budget = maxLength;
    try {
      text = JSON.stringify(value, replacer);
    } catch (e) {
      if (e === TOO_LARGE) throw new MessageTooLargeError(maxLength - budget, maxLength, false, SUBJECT);
      // SLOW, a cycle, a getter that threw: the walk encodes what it can and says what it cannot
    }
    if (text === undefined) {
      budget = maxLength;
      let tree: unknown;
      try {
        tree = walk(new Walk(root), value);
      } catch (e) {
        if (e === TOO_LARGE) throw new MessageTooLargeError(maxLength - budget, maxLength, false, SUBJECT);
        // the stack ran out (JSON.stringify's did too): a typed refusal, not a raw RangeError from a send
        if (e instanceof RangeError) throw new NotSerializableError(root, 'a value nested deeper than the stack allows', SUBJECT, CARRIED);
        throw e;
      }
      text = JSON.stringify(tree);
    }
  } finally {
    budget = outer;
  }
  if (text.length > maxLength) throw new MessageTooLargeError(text.length, maxLength, true, SUBJECT);
  return text;
}

export { decodeBatch, decodeValue, parseBatch, reviveValue, type PidFactory } from './decode.js';
