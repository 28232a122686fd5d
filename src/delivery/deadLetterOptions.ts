import { checkKeys, InvalidArgumentError } from '../errors.js';
import type { Kernel } from '../runtime/kernel.js';
import type { ServicesOptions } from '../runtime/serviceSlots.js';
import { type Backoff, toBackoff } from '../backoff.js';
import type { DeadLetterStore, Record_ } from './stores/DeadLetterStore.js';
import { MemoryStore } from './stores/MemoryStore.js';
import { SqliteStore, type SqliteStoreOptions } from './stores/SqliteStore.js';
import { NODE_BUSY_TIMEOUT_MS, NODE_LOCK_WAIT_MS } from './stores/sqliteFile.js';

// The dead letter queue's options: checked and made its settings (the defaults filled in), and the
// store they name opened (in memory, or a SQLite file the node claims).

/** Dead letter queue options (`createNode({ services: { deadLetters } })`). */
export type DeadLetterOptions = NonNullable<ServicesOptions['deadLetters']>;

/** @internal The queue's settings: its options checked, with their defaults. */
export interface Settings {
  readonly capacity: number;
  readonly maxRetries: number;
  readonly backoff: Backoff;
  readonly parkedTtlMs: number;
  readonly retryConcurrency: number;
  readonly maxRedeliveryWaitMs: number;
}

/** @internal The settings of the queue's options (checked). */
export function settings(o: DeadLetterOptions): Settings {
  checkKeys(o, ['store', 'capacity', 'maxRetries', 'backoff', 'parkedTtlMs', 'retryConcurrency', 'maxRedeliveryWaitMs'], 'services.deadLetters');
  const int = (key: 'capacity' | 'maxRetries' | 'retryConcurrency', fallback: number, min: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new InvalidArgumentError(`services.deadLetters.${key}`, `an integer >= ${min}`, v);
    return v as number;
  };
  const ttl = o.parkedTtlMs ?? 7 * 24 * 3600 * 1000;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) throw new InvalidArgumentError('services.deadLetters.parkedTtlMs', 'a number of ms >= 0', ttl);
  const wait = o.maxRedeliveryWaitMs ?? 300_000;
  // finite: a redelivery that could wait for ever would hold one of the retry slots for ever
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0) throw new InvalidArgumentError('services.deadLetters.maxRedeliveryWaitMs', 'a finite number of ms >= 0', wait);
  return {
    capacity: int('capacity', 10_000, 1),
    maxRetries: int('maxRetries', 5, 0),
    backoff: toBackoff(o.backoff ?? { initialMs: 1000, factor: 2, maxMs: 300_000 }, 'services.deadLetters.backoff'),
    parkedTtlMs: ttl,
    retryConcurrency: int('retryConcurrency', 8, 1),
    maxRedeliveryWaitMs: wait,
  };
}

/**
 * Settings of a SQLite store that are not part of `ServicesOptions` (Keel's tests give them, on the
 * store's options object): `maxPayloadBytes`, `busyTimeoutMs` and `lockWaitMs`.
 */
function internalStoreOptions(store: object): { maxPayloadBytes?: number; busyTimeoutMs?: number; lockWaitMs?: number } {
  const o = store as { maxPayloadBytes?: unknown; busyTimeoutMs?: unknown; lockWaitMs?: unknown };
  const out: { maxPayloadBytes?: number; busyTimeoutMs?: number; lockWaitMs?: number } = {};
  for (const key of ['maxPayloadBytes', 'busyTimeoutMs', 'lockWaitMs'] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new InvalidArgumentError(`services.deadLetters.store.${key}`, 'a positive integer', v);
    out[key] = v as number;
  }
  return out;
}

/**
 * @internal The store `store` names (checked), opened for the node: a SQLite file it claims, or one
 * in memory that keeps `capacity` entries and tells `onEvicted` of each one it drops past that.
 */
export function openStore(node: Kernel, store: NonNullable<DeadLetterOptions['store']>, capacity: number, onEvicted: (record: Record_) => void): DeadLetterStore {
  if (typeof store !== 'object') throw new InvalidArgumentError('services.deadLetters.store', "{ kind: 'memory' } | { kind: 'sqlite', path }", store);
  // maxPayloadBytes and busyTimeoutMs: settings only Keel's own tests give (see internalStoreOptions)
  checkKeys(store, store.kind === 'sqlite' ? ['kind', 'path', 'maxPayloadBytes', 'busyTimeoutMs', 'lockWaitMs'] : ['kind'], 'services.deadLetters.store');
  if (store.kind === 'sqlite') {
    if (typeof store.path !== 'string' || store.path === '') throw new InvalidArgumentError('services.deadLetters.store.path', 'a file path', store.path);
    // a statement waits for a lock at most NODE_BUSY_TIMEOUT_MS (the event loop waits with it); an
    // add that meets one is tried again on the node's clock, up to NODE_LOCK_WAIT_MS in all
    const options: SqliteStoreOptions = {
      busyTimeoutMs: NODE_BUSY_TIMEOUT_MS,
      lockWaitMs: NODE_LOCK_WAIT_MS,
      ...internalStoreOptions(store),
      // the time the node's timers count in: a wall clock stepped back does not stretch the wait
      clock: { now: () => node.timerNow(), setTimer: (ms, fn) => node.setTimer(ms, fn) },
    };
    return new SqliteStore(store.path, `${node.name}-${node.creation}`, (message, error) => node.logger.error(message, error), 'create', options);
  } else if (store.kind === 'memory') {
    return new MemoryStore(capacity, onEvicted);
  } else {
    throw new InvalidArgumentError('services.deadLetters.store', "{ kind: 'memory' } | { kind: 'sqlite', path }", store);
  }
}
