/**
 * The node's service slots: the interfaces of the services a node always has (the monitor manager,
 * slot 0, and the dead letter queue, slot 1), their options, and what a slot answers while no
 * service is plugged in. The layers above implement them (src/monitors, src/delivery).
 *
 * A service that is not running (the node was created with `services: false`, or has shut down)
 * is an error to call, as a `gen_server:call` to a process that is not there exits `noproc`: its
 * methods throw (the monitor manager's) or reject (the dead letter queue's)
 * `ServiceUnavailableError` (`ERR_SERVICE_UNAVAILABLE`). `available` on each slot tells beforehand.
 */
import type { BackoffOptions } from '../backoff.js';
import { ServiceUnavailableError, type ServiceUnavailableReason } from '../errors.js';
import type { Down } from './messages.js';
import type { Pid, Ref, Target } from './Pid.js';

/**
 * What a service once answered when it was switched off or its node had shut down.
 *
 * @deprecated The services now throw (or reject with) `ServiceUnavailableError`
 * (`ERR_SERVICE_UNAVAILABLE`) instead; check `node.monitors.available` /
 * `node.deadLetters.available` beforehand, or catch the error with `isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')`.
 */
export interface Unavailable {
  readonly error: 'unavailable';
}

export interface MonitorEntry {
  readonly ref: Ref;
  readonly target: Pid;
  readonly owner: Pid;
  readonly tag: string | undefined;
  /** When it was made, as a date on the node's clock: now less its age. */
  readonly createdAt: number;
  /** How long it has been held, on the node's timers' time (monotonic on the real clock: a wall clock stepped does not age it). */
  readonly ageMs: number;
  readonly stack?: string;
  readonly targetAlive: boolean;
  /** In `findLeaks`: why it is suspected, too old or one of too many on one target. */
  readonly leak?: 'age' | 'duplicate';
}

/**
 * A process's context as a service slot takes it: any `Context` (`ctx`) passes; the service checks
 * at run time that it is a live process's (a typed error otherwise). Structural, so that this file
 * and `types.ts` (whose `Node` names the slots) do not import each other.
 */
export interface SlotContext {
  readonly self: Pid;
}

/**
 * A context whose process can receive a `Down`: what a monitor needs, since the `Down` arrives in
 * its mailbox (a `Context<M>` passes when `M` includes `Down`, as for `ctx.monitor`).
 */
export interface MonitoringContext {
  readonly self: Pid<Down>;
}

/** The monitor manager's counters (`node.monitors.stats()`). */
export interface MonitorStats {
  /** Managed monitors created since the node started. */
  readonly created: number;
  /** Managed monitors removed since (by `demonitor` or by the death of either end). */
  readonly cleaned: number;
  /** Managed monitors held now. */
  readonly active: number;
  /** Suspected leaks reported by the periodic check. */
  readonly leaked: number;
}

/**
 * The node's monitor manager (slot 0). Each method throws `ServiceUnavailableError`
 * (`ERR_SERVICE_UNAVAILABLE`, `service: 'monitors'`) when the manager is not running: `reason:
 * 'disabled'` under `services: false`, `'node_stopped'` once the node has shut down.
 */
export interface MonitorManager {
  /** True while the manager runs; false under `services: false` and once the node has shut down. */
  readonly available: boolean;
  /**
   * Monitors `target` for the calling process, as `ctx.monitor` does, and records it in the ledger.
   * A target that is not alive (dead, unknown, of another node or creation) gets the caller a `Ref`
   * and at once a `Down` with reason `'noproc'`, as `ctx.monitor`; nothing is recorded then.
   */
  monitor(ctx: MonitoringContext, target: Target, options?: { tag?: string; expectedLifetime?: 'short' | 'long' }): Ref;
  /** Removes a managed monitor of the caller's: `'not_found'` when it is gone already, `'not_owner'` when another process holds it. */
  demonitor(ctx: SlotContext, ref: Ref, options?: { flush?: boolean }): 'ok' | 'not_found' | 'not_owner';
  list(): MonitorEntry[];
  stats(): MonitorStats;
  findLeaks(options?: { olderThanMs?: number }): MonitorEntry[];
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

/** The dead letter queue's counters (`await node.deadLetters.stats()`). */
export interface DeadLetterStats {
  /** Entries waiting for a retry. */
  readonly pending: number;
  /** Entries parked (out of retries, or undecodable), until purged. */
  readonly parked: number;
  /** Entries added since the node started. */
  readonly added: number;
  /** Redeliveries tried (automatic and `retry`). */
  readonly retried: number;
  /** Redeliveries that succeeded (their entries are gone). */
  readonly succeeded: number;
  /** Entries the memory store evicted at its capacity. */
  readonly evicted: number;
  /** Entries refused at `add` (not serializable, too large). */
  readonly refused: number;
  /**
   * Adds the store could not write (a SQLite file locked past the wait, full or read-only): rejected
   * with the store's error. Every add that passed its arguments' check is added, refused or failed.
   */
  readonly failed: number;
}

/**
 * The node's dead letter queue (slot 1). Each method's promise rejects with `ServiceUnavailableError`
 * (`ERR_SERVICE_UNAVAILABLE`, `service: 'deadLetters'`) when the queue is not running: `reason:
 * 'disabled'` under `services: false`, `'node_stopped'` once the node has shut down. The methods
 * never throw: every failure, a bad argument included, is the promise's rejection.
 */
export interface DeadLetterQueue {
  /** True while the queue runs; false under `services: false` and once the node has shut down. */
  readonly available: boolean;
  add(entry: { recipient: Target; message: unknown; reason: string; metadata?: object }): Promise<string>;
  list(filter?: DeadLetterFilter & { limit?: number; cursor?: string }): Promise<{ entries: DeadLetter[]; cursor?: string }>;
  get(id: string): Promise<DeadLetter | undefined>;
  /**
   * Delivers entries again (parked ones too), one at a time (spaced by `ratePerSecond`); with `to`,
   * to that recipient instead of theirs (a redrive). A filter takes the entries stored when it is
   * called, each at most once, read a page at a time; ids are read a page at a time too, each once.
   * An abort of `signal` ends it at once: ids not reached answer `aborted`; with a filter, the answer
   * holds the entries tried. An answer is `ok`
   * once the receiver handled the message; `reason: 'removal_lost'` beside it says that the SQLite
   * store had closed by then, so the entry stays in the file and is delivered again after a restart.
   */
  retry(filter: DeadLetterFilter | string[], options?: { ratePerSecond?: number; signal?: AbortSignal; to?: Target }): Promise<{ id: string; ok: boolean; reason?: string }[]>;
  purge(filter: DeadLetterFilter): Promise<number>;
  stats(): Promise<DeadLetterStats>;
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
    /** The longest a redelivery waits for the receiver's handler (default 5 minutes); a send's own shorter `timeout` applies. */
    maxRedeliveryWaitMs?: number;
  };
  /**
   * The agent components' durable store (docs/agents/AgentScheduler.md and CoordinatorAgent.md,
   * "Restarts"): with `sqlite`, schedules by name and active workflows survive the OS process.
   * Opened when the first component that uses it starts.
   */
  agents?: { store?: { kind: 'memory' } | { kind: 'sqlite'; path: string } };
}

function monitorsStandIn(reason: ServiceUnavailableReason): MonitorManager {
  const fail = (operation: string) => (): never => {
    throw new ServiceUnavailableError('monitors', reason, `monitors.${operation}`);
  };
  return Object.freeze({ available: false, monitor: fail('monitor'), demonitor: fail('demonitor'), list: fail('list'), stats: fail('stats'), findLeaks: fail('findLeaks') });
}

function deadLettersStandIn(reason: ServiceUnavailableReason): DeadLetterQueue {
  const fail = (operation: string) => (): Promise<never> => Promise.reject(new ServiceUnavailableError('deadLetters', reason, `deadLetters.${operation}`));
  return Object.freeze({ available: false, add: fail('add'), list: fail('list'), get: fail('get'), retry: fail('retry'), purge: fail('purge'), stats: fail('stats') });
}

/**
 * @internal The monitor slot while no manager is plugged in (`disabled`: `services: false`), and
 * after shutdown (`node_stopped`): every method throws `ServiceUnavailableError` with that reason.
 */
export const unavailableMonitors: Readonly<Record<ServiceUnavailableReason, MonitorManager>> = Object.freeze({
  disabled: monitorsStandIn('disabled'),
  node_stopped: monitorsStandIn('node_stopped'),
});

/**
 * @internal The dead-letter slot while no queue is plugged in (`disabled`), and after shutdown
 * (`node_stopped`): every method rejects with `ServiceUnavailableError` with that reason.
 */
export const unavailableDeadLetters: Readonly<Record<ServiceUnavailableReason, DeadLetterQueue>> = Object.freeze({
  disabled: deadLettersStandIn('disabled'),
  node_stopped: deadLettersStandIn('node_stopped'),
});

/**
 * True when a value is `{ error: 'unavailable' }`, what the services once answered when not running.
 *
 * @deprecated The services no longer answer that value: they throw (or reject with)
 * `ServiceUnavailableError`. Check `node.monitors.available` / `node.deadLetters.available`
 * beforehand, or catch with `isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')`. This still answers for
 * values, so code that narrows with it keeps compiling and running.
 */
export function isUnavailable(value: unknown): value is Unavailable {
  return typeof value === 'object' && value !== null && (value as { error?: unknown }).error === 'unavailable';
}

/** Options of `node.observer` (src/observer: the observer's server, plugged in by `keel`'s `createNode`). */
export interface ObserverOptions {
  /** Default 0: a free port. */
  port?: number;
  /** Default `'127.0.0.1'`. Another address exposes the node's internals to that network: the token is then all that guards it. */
  host?: string;
  /** Default: a fresh 128-bit random token. At least 16 printable ASCII characters when given. */
  token?: string;
  /** Default true: kill and the dead-letter actions answer 403. */
  readOnly?: boolean;
  /** Default false: dead letters are listed without their message, metadata and last error. */
  allowPayloads?: boolean;
  /** Supervisors to show in the tree (`GET /api/tree`), besides Keel's own `keel.services`. */
  supervisors?: readonly Target[];
  /** More `Host` header values to accept (`host:port`), for a name the observer is reached by. */
  allowedHosts?: readonly string[];
  /** Ms between two `overview` frames of the event stream (default 1000). */
  sampleMs?: number;
  /** Ms between two keep-alive comments of the event stream (default 15000). */
  keepAliveMs?: number;
  /**
   * The telemetry events counted in the observer's history (names, or prefixes written `'prefix*'`).
   * Default: the rare ones (supervisor restarts, dead letters, drops, long mailboxes, workflows,
   * circuits...), none on a per-message path: listening to an event makes its emitter build it.
   */
  telemetryEvents?: readonly string[];
}

/** A running observer (`node.observer`). */
export interface ObserverHandle {
  /** The page's link, with the token: printed once for the person who opens it. */
  readonly url: string;
  readonly port: number;
  readonly token: string;
  /** Clients connected to the event stream now. */
  readonly clients: number;
  /** Samples now and pushes an `overview` frame to the connected clients (for tests); false when nobody watches. */
  pushFrame(): Promise<boolean>;
  /** Ends the event streams, stops the server and frees the port. */
  close(): Promise<void>;
}
