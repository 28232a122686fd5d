import { types } from 'node:util';
import { InvalidArgumentError, NotSerializableError } from '../../errors.js';
import type { DeadLetter, DeadLetterFilter } from '../../runtime/services.js';

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
  update(id: string, changes: Partial<Pick<Record_, 'attempts' | 'lastAttemptAt' | 'nextRetryAt' | 'lastError' | 'status'>>): void;
  remove(id: string): boolean;
  /** Removes every entry matching the filter; returns how many. */
  purge(filter: DeadLetterFilter, now: number): number;
  /** Pending entries due at `now`, oldest first. */
  due(now: number, limit: number): Record_[];
  /** The earliest `nextRetryAt` of a pending entry. */
  earliest(): number | undefined;
  /** The earliest `lastAttemptAt` of a parked entry (its TTL runs from there). */
  earliestParked(): number | undefined;
  /** Removes parked entries whose last attempt is at or before `before`; returns how many. */
  expire(before: number): number;
  counts(): { pending: number; parked: number };
  close(): void;
}

/** @internal Validates a filter; a bad one is a typed error, never a crash of the queue. */
export function checkFilter(filter: unknown, listing = false): DeadLetterFilter {
  if (filter === undefined) return {};
  if (typeof filter !== 'object' || filter === null || Array.isArray(filter)) {
    throw new InvalidArgumentError('filter', '{ status?, reason?, recipient?, olderThanMs? }', filter);
  }
  const f = filter as Record<string, unknown>;
  const keys = listing ? ['status', 'reason', 'recipient', 'olderThanMs', 'limit', 'cursor'] : ['status', 'reason', 'recipient', 'olderThanMs'];
  for (const key of Object.keys(f)) {
    if (!keys.includes(key)) {
      throw new InvalidArgumentError(`filter.${key}`, listing ? 'one of status, reason, recipient, olderThanMs, limit, cursor' : 'one of status, reason, recipient, olderThanMs', key);
    }
  }
  if (f.status !== undefined && f.status !== 'pending' && f.status !== 'parked') throw new InvalidArgumentError('filter.status', "'pending' | 'parked'", f.status);
  for (const key of ['reason', 'recipient'] as const) {
    if (f[key] !== undefined && typeof f[key] !== 'string') throw new InvalidArgumentError(`filter.${key}`, 'a string', f[key]);
  }
  if (f.olderThanMs !== undefined && (typeof f.olderThanMs !== 'number' || !Number.isFinite(f.olderThanMs) || f.olderThanMs < 0)) {
    throw new InvalidArgumentError('filter.olderThanMs', 'a number of ms >= 0', f.olderThanMs);
  }
  return f as DeadLetterFilter;
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
 * only (what the structured clone algorithm keeps faithfully). Throws `NotSerializableError`.
 * A first pass keeps no set of seen objects (messages are trees); only a structure deeper than 64
 * levels (a cycle, most likely) is checked again with one.
 */
export function checkSerializable(value: unknown, path = 'message'): void {
  // a primitive needs no walk; an object is walked with one shared path stack (no allocation)
  if (typeof value !== 'object' || value === null) {
    walk(value, path, PATH, 0, undefined);
    return;
  }
  PATH.length = 0;
  try {
    if (!walk(value, path, PATH, 0, undefined)) walk(value, path, PATH, 0, new Set());
  } finally {
    PATH.length = 0;
  }
}

/** The path stack of the walk in progress (walks never nest). */
const PATH: (string | number)[] = [];

const MAX_DEPTH = 64;

/** The path of the value being checked, built only for an error message. */
function where(root: string, keys: readonly (string | number)[]): string {
  return root + keys.map((k) => (typeof k === 'number' ? `[${k}]` : `.${k}`)).join('');
}

/** False when it gave up (too deep without a seen-set); throws for what cannot be stored. */
function walk(value: unknown, root: string, keys: (string | number)[], depth: number, seen: Set<object> | undefined): boolean {
  switch (typeof value) {
    case 'string':
    case 'number':
    case 'boolean':
    case 'bigint':
    case 'undefined':
      return true;
    case 'function':
      throw new NotSerializableError(where(root, keys), 'a function');
    case 'symbol':
      throw new NotSerializableError(where(root, keys), 'a symbol');
  }
  if (value === null) return true;
  const obj = value as object;
  if (seen !== undefined) {
    if (seen.has(obj)) return true;
    seen.add(obj);
  } else if (depth > MAX_DEPTH) {
    return false;
  }
  const next = depth + 1;
  if (Array.isArray(obj)) {
    for (let i = 0; i < obj.length; i++) {
      keys.push(i);
      const ok = walk(obj[i], root, keys, next, seen);
      keys.pop();
      if (!ok) return false;
    }
    return true;
  }
  if (types.isProxy(obj)) throw new NotSerializableError(where(root, keys), 'a Proxy');
  const proto = Object.getPrototypeOf(obj);
  if (proto === Object.prototype || proto === null) {
    for (const key of Reflect.ownKeys(obj)) {
      if (typeof key === 'symbol') throw new NotSerializableError(where(root, keys), 'an object with symbol keys');
      keys.push(key);
      const ok = walk((obj as Record<string, unknown>)[key], root, keys, next, seen);
      keys.pop();
      if (!ok) return false;
    }
    return true;
  }
  if (obj instanceof Error) {
    // its cause and own data are cloned too
    keys.push('cause');
    const ok = walk((obj as { cause?: unknown }).cause, root, keys, next, seen);
    keys.pop();
    return ok;
  }
  if (obj instanceof Date || obj instanceof RegExp) return true;
  if (TYPED_ARRAYS.some((T) => obj instanceof T)) return true;
  if (obj instanceof Map) {
    for (const [k, v] of obj) {
      keys.push(`get(${String(k)})`);
      const ok = walk(k, root, keys, next, seen) && walk(v, root, keys, next, seen);
      keys.pop();
      if (!ok) return false;
    }
    return true;
  }
  if (obj instanceof Set) {
    for (const v of obj) {
      keys.push('(a Set member)');
      const ok = walk(v, root, keys, next, seen);
      keys.pop();
      if (!ok) return false;
    }
    return true;
  }
  throw new NotSerializableError(where(root, keys), `an instance of ${(proto as { constructor?: { name?: string } }).constructor?.name ?? 'a class'} (its behaviour would be lost)`);
}
