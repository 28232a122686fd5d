import { types } from 'node:util';
import { checkKeys, InvalidArgumentError, NotSerializableError } from '../../errors.js';
import { isInstance } from '../../runtime/safe.js';
import type { DeadLetter, DeadLetterFilter } from '../../runtime/serviceSlots.js';

/** @internal A dead letter as the queue stores it. */
export type Record_ = {
  -readonly [K in keyof DeadLetter]: DeadLetter[K];
};

/** @internal What the queue gives a store for a new entry (the store assigns the id). */
export type NewRecord = Omit<Record_, 'id'>;

/**
 * @internal The store behind a dead letter queue. Memory and SQLite implement it; one behaviour
 * suite runs against both. Every method but `add` is synchronous (better-sqlite3 is).
 */
export interface DeadLetterStore {
  readonly kind: 'memory' | 'sqlite';
  /** The new id, at once (memory) or once the record is stored (SQLite: after its group commit). */
  add(record: NewRecord): string | Promise<string>;
  get(id: string): Record_ | undefined;
  /** In insertion order, after `cursor` (an id) if given. */
  list(filter: DeadLetterFilter, now: number, limit: number, cursor: string | undefined): { entries: Record_[]; cursor?: string };
  /** The id of the last entry added (ids grow: a later entry's is greater), or undefined when none was. */
  lastId(): string | undefined;
  update(id: string, changes: Partial<Pick<Record_, 'attempts' | 'lastAttemptAt' | 'nextRetryAt' | 'lastError' | 'status'>>): void;
  /** Removes a delivered entry; a durable store that cannot write it now (a locked file) queues it as an update rather than throw. */
  remove(id: string): void;
  /** Removes every entry matching the filter; returns how many. */
  purge(filter: DeadLetterFilter, now: number): number;
  /**
   * Pending entries due at `now`, oldest (first added) first, whatever their `nextRetryAt` and
   * attempts: the entries due together are retried in the order they came (entries due at
   * different times are retried at their own times).
   */
  due(now: number, limit: number): Record_[];
  /** The earliest `nextRetryAt` of a pending entry (of one due strictly after `after`, if given). */
  earliest(after?: number): number | undefined;
  /** The earliest `lastAttemptAt` of a parked entry (its TTL runs from there). */
  earliestParked(): number | undefined;
  /** Removes parked entries whose last attempt is at or before `before`; returns how many. */
  expire(before: number): number;
  counts(): { pending: number; parked: number };
  close(): void;
}

const ID = /^[1-9][0-9]*$/;

/**
 * @internal The sequence number an id stands for, or undefined when it is no id: ids are decimal
 * integers as `add` and `list` give them, so `'0x1'`, `'01'`, `'1e0'` or `' 1'` name no entry
 * (`Number()` would read each as 1).
 */
export function seqOf(id: string): number | undefined {
  if (!ID.test(id)) return undefined;
  const seq = Number(id);
  return Number.isSafeInteger(seq) ? seq : undefined;
}

/**
 * @internal Validates a filter; a bad one is a typed error, never a crash of the queue. Answers a
 * copy of it (its fields read once): a filter is matched against many entries.
 */
export function checkFilter(filter: unknown, listing = false): DeadLetterFilter {
  if (filter === undefined) return {};
  // a proxy is never a filter (Array.isArray throws on a revoked one)
  if (typeof filter !== 'object' || filter === null || types.isProxy(filter) || Array.isArray(filter)) {
    throw new InvalidArgumentError('filter', '{ status?, reason?, recipient?, olderThanMs? }', filter);
  }
  const f = filter as Record<string, unknown>;
  // an unknown key, or one that cannot be read (a getter that throws), is a typed error
  checkKeys(f, listing ? ['status', 'reason', 'recipient', 'olderThanMs', 'limit', 'cursor'] : ['status', 'reason', 'recipient', 'olderThanMs'], 'filter');
  const { status, reason, recipient, olderThanMs } = f;
  if (status !== undefined && status !== 'pending' && status !== 'parked') throw new InvalidArgumentError('filter.status', "'pending' | 'parked'", status);
  if (reason !== undefined && typeof reason !== 'string') throw new InvalidArgumentError('filter.reason', 'a string', reason);
  if (recipient !== undefined && typeof recipient !== 'string') throw new InvalidArgumentError('filter.recipient', 'a string', recipient);
  if (olderThanMs !== undefined && (typeof olderThanMs !== 'number' || !Number.isFinite(olderThanMs) || olderThanMs < 0)) {
    throw new InvalidArgumentError('filter.olderThanMs', 'a number of ms >= 0', olderThanMs);
  }
  return {
    ...(status === undefined ? {} : { status }),
    ...(reason === undefined ? {} : { reason }),
    ...(recipient === undefined ? {} : { recipient }),
    ...(olderThanMs === undefined ? {} : { olderThanMs }),
  };
}

/** @internal True when a record matches a filter. */
export function matches(r: Record_, filter: DeadLetterFilter, now: number): boolean {
  if (filter.status !== undefined && r.status !== filter.status) return false;
  if (filter.reason !== undefined && r.reason !== filter.reason) return false;
  if (filter.recipient !== undefined && r.recipient !== filter.recipient) return false;
  if (filter.olderThanMs !== undefined && now - r.firstFailedAt < filter.olderThanMs) return false;
  return true;
}

const TYPED_ARRAYS = [
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array, DataView, ArrayBuffer,
] as const;

/**
 * @internal The structural check both stores apply to a message, without cloning it: plain data
 * only (what the structured clone algorithm keeps faithfully: own enumerable string keys). Throws
 * `NotSerializableError` naming where the first thing that cannot be stored is.
 *
 * A fast scan decides; it keeps no path and no set of seen objects (messages are trees). A
 * structure deeper than 64 levels (a cycle, most likely) or larger than a budget of objects (shared
 * sub-objects would be visited once per path) is scanned again with a seen-set, which visits each
 * object once. When something cannot be stored, a second walk that keeps the path explains where.
 * Both classify objects alike ({@link classify}); they differ only in what they keep. A value that
 * throws while it is read (a getter) is refused too, at its path: nothing the message does escapes
 * as anything but `NotSerializableError` (a Proxy, revoked or not, is refused before it is asked).
 */
export function checkSerializable(value: unknown, path = 'message'): void {
  let r: number;
  try {
    r = scanPlain(value);
    if (r === DEEP) r = scan(value, 0, { seen: new Set(), budget: Infinity });
  } catch {
    r = BAD; // a getter threw: the walk below finds where
  }
  if (r === OK) return;
  const keys: Step[] = [];
  try {
    walk(value, path, keys, new Set());
  } catch (e) {
    if (isInstance(e, NotSerializableError)) throw e;
    // `keys` still holds the path of the value being read when it threw
    throw new NotSerializableError(where(path, keys), `a property that throws when read (${thrownText(e)})`);
  }
  // the scan found something the walk did not: a value that threw once and read fine again
  throw new NotSerializableError(path, 'a value that threw while it was read');
}

/** @internal What a getter (or a serializer) threw, in a few words; never throws itself. */
export function thrownText(e: unknown): string {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}` : `${typeof e} ${String(e)}`;
  } catch {
    return typeof e;
  }
}

const OK = 0;
const BAD = 1;
const DEEP = 2;
const MAX_DEPTH = 64;
/** Objects the first scan visits before it starts again with a seen-set. */
const SCAN_BUDGET = 10_000;
/** Arrays up to this length are also checked for non-index properties (listing the keys of a longer one would cost more than its elements). */
const EXTRAS_UP_TO = 1024;

// what an object is, for the check
const ARRAY = 0;
const PLAIN = 1;
const LEAF = 2; // a Date, a RegExp, a typed array, an ArrayBuffer, a DataView: stored as is
const MAP = 3;
const SET = 4;
const ERROR = 5;

/** The kind of an object, or why it cannot be stored. A Proxy is refused before anything asks it (an array's too). */
function classify(obj: object): number | string {
  if (types.isProxy(obj)) return 'a Proxy';
  if (Array.isArray(obj)) return ARRAY;
  const proto: unknown = Object.getPrototypeOf(obj);
  if (proto === Object.prototype || proto === null) return PLAIN;
  if (obj instanceof Error) return ERROR;
  if (obj instanceof Date || obj instanceof RegExp || TYPED_ARRAYS.some((T) => obj instanceof T)) return LEAF;
  if (obj instanceof Map) return MAP;
  if (obj instanceof Set) return SET;
  return `an instance of ${(proto as { constructor?: { name?: string } }).constructor?.name ?? 'a class'} (its behaviour would be lost)`;
}

/** The fields of an Error that v8's serializer reads (and so runs their getters). */
const ERROR_FIELDS = ['name', 'message', 'stack'] as const;

/** Reads them as the serializer would; throws what a getter throws. */
function readErrorFields(e: Error): void {
  for (const key of ERROR_FIELDS) void e[key];
}

/** True when an object has an enumerable symbol-keyed property (structured clone would drop it). */
function hasSymbolKeys(obj: object): boolean {
  const symbols = Object.getOwnPropertySymbols(obj);
  return symbols.length > 0 && symbols.some((s) => Object.prototype.propertyIsEnumerable.call(obj, s));
}

/** One check's scan: its seen-set (the second scan's), or the objects the first may still visit. */
interface Scan {
  readonly seen: Set<object> | undefined;
  budget: number;
}

/**
 * The first scan of a check: {@link scan} from the top, with its plain-object case (most messages and
 * metadata: a few fields of primitives) taken here, where the scan's state is made only for a nested
 * object. Reads what `scan` reads, in the same order: a value that is no plain object goes to `scan`
 * before anything of it is read.
 */
function scanPlain(value: unknown): number {
  // an array is scan's array whatever its prototype (null, Object.prototype): never read as a plain object
  if (typeof value !== 'object' || value === null || types.isProxy(value) || Array.isArray(value)) return scan(value, 0, { seen: undefined, budget: SCAN_BUDGET });
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto !== Object.prototype && proto !== null) return scan(value, 0, { seen: undefined, budget: SCAN_BUDGET });
  let state: Scan | undefined;
  for (const key in value) {
    const v = (value as Record<string, unknown>)[key];
    if (typeof v === 'object' || typeof v === 'function' || typeof v === 'symbol') {
      // the budget as scan's would stand after this object (its own visit counted)
      const r = scan(v, 1, (state ??= { seen: undefined, budget: SCAN_BUDGET - 1 }));
      if (r !== OK) return r;
    }
  }
  return hasSymbolKeys(value) ? BAD : OK;
}

/** OK, BAD, or DEEP (gave up: too deep or too large without a seen-set). Decides as {@link walk} would, without the path. */
function scan(value: unknown, depth: number, state: Scan): number {
  switch (typeof value) {
    case 'object':
      break;
    case 'function':
    case 'symbol':
      return BAD;
    default:
      return OK;
  }
  if (value === null) return OK;
  const seen = state.seen;
  if (seen !== undefined) {
    if (seen.has(value)) return OK;
    seen.add(value);
  } else if (depth > MAX_DEPTH || --state.budget < 0) {
    return DEEP;
  }
  const next = depth + 1;
  // arrays and plain objects, most of any message, without a call to classify; a primitive member
  // is decided in the loops, without a call either
  if (types.isProxy(value)) return BAD;
  if (Array.isArray(value)) {
    const n = value.length;
    for (let i = 0; i < n; i++) {
      const v: unknown = value[i];
      if (typeof v === 'object' || typeof v === 'function' || typeof v === 'symbol') {
        const r = scan(v, next, state);
        if (r !== OK) return r;
      } else if (v === undefined && n > SPARSE_ABOVE && !(i in value)) {
        // a hole in a long array: the rest is read by its indexes present, not by its length (a
        // sparse array of length 2**32-1 would take minutes, where structured clone skips the holes)
        for (const key of presentIndexes(value, i)) {
          const r = scan(value[key], next, state);
          if (r !== OK) return r;
        }
        break;
      }
    }
    for (const key of arrayExtras(value)) {
      const r = scan((value as unknown as Record<string, unknown>)[key], next, state);
      if (r !== OK) return r;
    }
    return OK;
  }
  const proto: unknown = Object.getPrototypeOf(value);
  if (proto === Object.prototype || proto === null) {
    // for-in also visits inherited enumerable keys: a superset of what walk checks, never fewer
    for (const key in value) {
      const v = (value as Record<string, unknown>)[key];
      if (typeof v === 'object' || typeof v === 'function' || typeof v === 'symbol') {
        const r = scan(v, next, state);
        if (r !== OK) return r;
      }
    }
    return hasSymbolKeys(value) ? BAD : OK;
  }
  switch (classify(value)) {
    case LEAF:
      return OK;
    case ERROR:
      readErrorFields(value as Error); // a getter that throws: the walk below says which
      return scan((value as { cause?: unknown }).cause, next, state);
    case MAP:
      for (const [k, v] of value as Map<unknown, unknown>) {
        const r = scan(k, next, state);
        if (r !== OK) return r;
        const rv = scan(v, next, state);
        if (rv !== OK) return rv;
      }
      return OK;
    case SET:
      for (const v of value as Set<unknown>) {
        const r = scan(v, next, state);
        if (r !== OK) return r;
      }
      return OK;
    default:
      return BAD;
  }
}

const NO_KEYS: readonly string[] = [];
const INDEX = /^(?:0|[1-9]\d*)$/;

/**
 * An array's own enumerable properties that are not indexes (structured clone keeps them, as the
 * match array of a RegExp has `index` and `input`), in their order; only for an array of up to
 * {@link EXTRAS_UP_TO} elements. `Object.keys` lists indexes first, so an array whose last key is
 * an index has none.
 */
function arrayExtras(arr: readonly unknown[]): readonly string[] {
  if (arr.length > EXTRAS_UP_TO) return NO_KEYS;
  const keys = Object.keys(arr);
  let i = keys.length;
  while (i > 0 && !isIndex(keys[i - 1]!)) i--;
  return i === keys.length ? NO_KEYS : keys.slice(i);
}

/** Arrays longer than this are read by their present indexes from their first hole on. */
const SPARSE_ABOVE = 65_536;

/** The indexes from `from` on that an array holds (its holes skipped), in order. */
function* presentIndexes(arr: readonly unknown[], from: number): Generator<number> {
  for (const key in arr) {
    if (!isIndex(key)) continue;
    const i = Number(key);
    if (i >= from) yield i;
  }
}

function isIndex(key: string): boolean {
  return INDEX.test(key) && Number(key) < 2 ** 32 - 1;
}

/** A step of a path: a key, an index, or a Map key (labelled only when an error is built). */
type Step = string | number | { readonly mapKey: unknown };

/** The path of the value being checked, built only for an error message. */
function where(root: string, keys: readonly Step[]): string {
  return root + keys.map((k) => (typeof k === 'number' ? `[${k}]` : typeof k === 'string' ? `.${k}` : `.get(${label(k.mapKey)})`)).join('');
}

function label(key: unknown): string {
  try {
    return String(key);
  } catch {
    return typeof key; // an object without a string form (a null-prototype object)
  }
}

/**
 * Throws `NotSerializableError` for the first thing that cannot be stored, naming its path. Anything
 * else it throws (a getter's own error) leaves the path of the value being read in `keys`.
 */
function walk(value: unknown, root: string, keys: Step[], seen: Set<object>): void {
  switch (typeof value) {
    case 'function':
      throw new NotSerializableError(where(root, keys), 'a function');
    case 'symbol':
      throw new NotSerializableError(where(root, keys), 'a symbol');
    case 'object':
      break;
    default:
      return;
  }
  if (value === null || seen.has(value)) return;
  const obj: object = value;
  seen.add(obj);
  // the key is pushed before its value is read: a getter that throws leaves its own path in `keys`
  const inner = (key: Step, read: () => unknown): void => {
    keys.push(key);
    walk(read(), root, keys, seen);
    keys.pop();
  };
  const kind = classify(obj);
  switch (kind) {
    case ARRAY: {
      const arr = obj as unknown[];
      if (arr.length > SPARSE_ABOVE) for (const i of presentIndexes(arr, 0)) inner(i, () => arr[i]);
      else for (let i = 0; i < arr.length; i++) inner(i, () => arr[i]);
      for (const key of arrayExtras(arr)) inner(key, () => (arr as unknown as Record<string, unknown>)[key]);
      return;
    }
    case PLAIN:
      if (hasSymbolKeys(obj)) throw new NotSerializableError(where(root, keys), 'an object with symbol keys');
      for (const key of Object.keys(obj)) inner(key, () => (obj as Record<string, unknown>)[key]);
      return;
    case LEAF:
      return;
    case ERROR:
      // the serializer reads an Error's name, message and stack (a getter that throws is refused
      // here, at its path, as by the durable store); its cause is cloned too
      for (const key of ERROR_FIELDS) inner(key, () => void (obj as unknown as Record<string, unknown>)[key]);
      return inner('cause', () => (obj as { cause?: unknown }).cause);
    case MAP:
      for (const [k, v] of obj as Map<unknown, unknown>) {
        inner({ mapKey: k }, () => k);
        inner({ mapKey: k }, () => v);
      }
      return;
    case SET:
      for (const v of obj as Set<unknown>) inner('(a Set member)', () => v);
      return;
    default:
      throw new NotSerializableError(where(root, keys), typeof kind === 'string' ? kind : 'not plain data');
  }
}
