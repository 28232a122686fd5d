/**
 * The node's service slots: the interfaces of the services a node always has (the monitor manager,
 * slot 0, and the dead letter queue, slot 1), their options, and what a slot answers while no
 * service is plugged in. The layers above implement them (src/monitors, src/delivery).
 */
import type { BackoffOptions } from '../backoff.js';
import type { Pid, Ref, Target } from './Pid.js';

/** What a service answers when it is switched off (`services: false`) or its node has shut down. */
export interface Unavailable {
  readonly error: 'unavailable';
}

export interface MonitorEntry {
  readonly ref: Ref;
  readonly target: Pid;
  readonly owner: Pid;
  readonly tag: string | undefined;
  readonly createdAt: number;
  readonly ageMs: number;
  readonly stack?: string;
  readonly targetAlive: boolean;
  /** In `findLeaks`: why it is suspected, too old or one of too many on one target. */
  readonly leak?: 'age' | 'duplicate';
}

/** The node's monitor manager (slot 0). Until the service is plugged in, every method answers `unavailable`. */
/**
 * A process's context as a service slot takes it: any `Context` (`ctx`) passes; the service checks
 * at run time that it is a live process's (a typed error otherwise). Structural, so that this file
 * and `types.ts` (whose `Node` names the slots) do not import each other.
 */
export interface SlotContext {
  readonly self: Pid;
}

export interface MonitorManager {
  monitor(ctx: SlotContext, target: Target, options?: { tag?: string; expectedLifetime?: 'short' | 'long' }): Ref | { error: 'noproc' | 'unavailable' };
  demonitor(ctx: SlotContext, ref: Ref, options?: { flush?: boolean }): 'ok' | 'not_found' | 'not_owner' | Unavailable;
  list(): MonitorEntry[] | Unavailable;
  stats(): { created: number; cleaned: number; active: number; leaked: number } | Unavailable;
  findLeaks(options?: { olderThanMs?: number }): MonitorEntry[] | Unavailable;
}

export interface DeadLetterFilter {
  status?: 'pending' | 'parked';
  reason?: string;
  recipient?: string;
  olderThanMs?: number;
}

export interface DeadLetter {
  readonly id: string;
  readonly recipient: string;
  readonly message: unknown;
  readonly reason: string;
  readonly metadata: Record<string, unknown>;
  readonly attempts: number;
  readonly firstFailedAt: number;
  readonly lastAttemptAt: number;
  readonly nextRetryAt: number;
  readonly lastError: unknown;
  readonly status: 'pending' | 'parked';
  /**
   * Present when the store could not decode the entry's message and metadata (a corrupt row of a
   * SQLite file): `message` is then `undefined` and `metadata` `{}`. `bytes` is the size of the raw
   * payload kept in the file, `error` why it could not be decoded. The queue parks such an entry
   * (`reason: 'undecodable'` in the `parked` event) instead of delivering it.
   */
  readonly undecodable?: { readonly bytes: number; readonly error: string };
}

/** The node's dead letter queue (slot 1). Until the service is plugged in, every method answers `unavailable`. */
export interface DeadLetterQueue {
  add(entry: { recipient: Target; message: unknown; reason: string; metadata?: object }): Promise<string | Unavailable>;
  list(filter?: DeadLetterFilter & { limit?: number; cursor?: string }): Promise<{ entries: DeadLetter[]; cursor?: string } | Unavailable>;
  get(id: string): Promise<DeadLetter | undefined | Unavailable>;
  retry(filter: DeadLetterFilter | string[], options?: { ratePerSecond?: number; signal?: AbortSignal }): Promise<{ id: string; ok: boolean; reason?: string }[] | Unavailable>;
  purge(filter: DeadLetterFilter): Promise<number | Unavailable>;
  stats(): Promise<{ pending: number; parked: number; added: number; retried: number; succeeded: number; evicted: number } | Unavailable>;
}

export interface ServicesOptions {
  monitors?: { leakCheckIntervalMs?: number; leakAgeMs?: number; duplicateThreshold?: number; captureStacks?: boolean };
  deadLetters?: {
    store?: { kind: 'memory' } | { kind: 'sqlite'; path: string };
    capacity?: number;
    maxRetries?: number;
    backoff?: BackoffOptions;
    parkedTtlMs?: number;
    retryConcurrency?: number;
  };
}

const UNAVAILABLE: Unavailable = Object.freeze({ error: 'unavailable' as const });

/** @internal The monitor slot's answer while no service is plugged in, or after shutdown. */
export const unavailableMonitors: MonitorManager = Object.freeze({
  monitor: () => UNAVAILABLE,
  demonitor: () => UNAVAILABLE,
  list: () => UNAVAILABLE,
  stats: () => UNAVAILABLE,
  findLeaks: () => UNAVAILABLE,
});

/** @internal The dead-letter slot's answer while no service is plugged in, or after shutdown. */
export const unavailableDeadLetters: DeadLetterQueue = Object.freeze({
  add: () => Promise.resolve(UNAVAILABLE),
  list: () => Promise.resolve(UNAVAILABLE),
  get: () => Promise.resolve(UNAVAILABLE),
  retry: () => Promise.resolve(UNAVAILABLE),
  purge: () => Promise.resolve(UNAVAILABLE),
  stats: () => Promise.resolve(UNAVAILABLE),
});

/** True when a service answered `{ error: 'unavailable' }`. */
export function isUnavailable(value: unknown): value is Unavailable {
  return typeof value === 'object' && value !== null && (value as { error?: unknown }).error === 'unavailable';
}
