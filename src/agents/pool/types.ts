import type { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';

export interface ResourcePoolOptions<R> {
  /**
   * Makes one resource (sync or async). A `Pid` resource (a pid of the runtime, not plain data of its
   * shape `{ node, creation, id }`, which is a resource like any other) is monitored: when it dies it is replaced.
   * A throw, a rejection, `undefined`/`null`, or a resource already in the pool is a failed
   * creation: counted, reported (`keel.resource_pool.create_failed`), retried after `createRetryMs`.
   * `signal` is aborted when the pool gives up on this creation: past `createTimeoutMs` (its reason
   * the `ERR_POOL_TIMEOUT`), or when the pool exits first (its reason the pool's exit reason); a
   * creation that heeds it stops its work (what it answers after that is destroyed all the same).
   */
  create(signal: AbortSignal): R | Promise<R>;
  /**
   * Disposes of a resource the pool gives up: an overflow resource checked in while none waits, one
   * checked in `broken`, every resource when the pool stops. Default: a `Pid` resource is exited
   * with `'shutdown'` and killed 5 s later if still alive (one that traps exits), anything else is
   * dropped. A throw or rejection is counted and reported.
   */
  destroy?(resource: R): void | Promise<void>;
  /** Resources kept at all times, created up front (an integer 0..100000). */
  size: number;
  /** Extra resources created while callers wait and every kept one is out, destroyed when checked in idle (an integer 0..100000, default 0). */
  maxOverflow?: number;
  /** How long a checkout waits in line, in ms (default 5000; Infinity waits for ever; 0 never waits). */
  checkoutTimeoutMs?: number;
  /** After a failed creation, or the death of a `Pid` resource younger than this, the next attempt after this many ms on the node's clock (default 1000). */
  createRetryMs?: number;
  /**
   * A `create()` not settled within this many ms (node clock) is a failed creation: counted,
   * reported with `ERR_POOL_TIMEOUT`, retried; what it answers later is destroyed (unless the pool holds it already) (default 30000;
   * Infinity waits for ever).
   */
  createTimeoutMs?: number;
  /**
   * Opt-in restart intensity for creations, in the shape of a Supervisor's (`maxRestarts` within
   * `withinMs`): more than `maxFailures` failures within `withinMs` on the node's timers' clock, and
   * the pool exits with a `PoolCrashLoopError` (`ERR_POOL_CRASH_LOOP`) for its supervisor to decide,
   * as poolboy's does when a worker cannot start. A failure is a failed creation, or any death of a
   * `Pid` resource that the pool did not cause (not its own destroy of a broken or overflow resource,
   * nor its stop), whatever the resource's age or exit reason (`'normal'` too): as a Supervisor
   * counts every restart of a permanent child, so a worker that dies once an hour never trips 3
   * within 5 s, and one that dies at birth does, whatever `createRetryMs`.
   * Default: none (the pool retries every `createRetryMs` for ever).
   */
  createIntensity?: CreateIntensity;
  /**
   * Which idle resource a checkout gets (poolboy's `strategy`): `'lifo'` (default) the last checked
   * in, so the rest stay idle (and may be reaped by what they connect to); `'fifo'` the one idle
   * longest, spreading the use over every resource.
   */
  strategy?: 'lifo' | 'fifo';
  /** Registers the pool process under this name (default `keel.resource_pool.<n>`). */
  name?: string;
}

/** A pool's creation intensity (see {@link ResourcePoolOptions.createIntensity}). */
export interface CreateIntensity {
  /** Failures allowed within `withinMs`; one more and the pool exits (an integer >= 0, default 3, as a Supervisor's `maxRestarts`). */
  maxFailures?: number;
  /** The window, in ms on the node's timers' clock (a finite number > 0, default 5000, as a Supervisor's `withinMs`). */
  withinMs?: number;
}

export interface CheckoutOptions {
  /** This checkout's wait in ms (default the pool's `checkoutTimeoutMs`). */
  timeout?: number;
  /**
   * The process that holds the resource: the call is made from it, and the pool monitors it, so
   * that its death returns the resource. Without it (a call from outside any process) nothing is
   * monitored: check in what you check out, or use `withResource`.
   */
  caller?: Context<any>;
}

export interface CheckinOptions {
  /** The resource is broken: the pool destroys it and creates a replacement. */
  broken?: boolean;
  /** The process the call is made from (the holder need not be the one checking in). */
  caller?: Context<any>;
}

export interface WithResourceOptions extends CheckoutOptions {
  /** When `fn` throws, destroy the resource and replace it instead of checking it in as it is (default false). */
  discardOnError?: boolean;
}

/** What `checkin` did: returned it to the pool, destroyed it (`broken`, or an overflow resource), or accepted one that died while out. */
export type CheckinOutcome = 'returned' | 'destroyed' | 'retired';

export interface ResourcePoolStats {
  readonly size: number;
  readonly maxOverflow: number;
  /** Resources in the pool now (idle + checked out). */
  readonly resources: number;
  readonly idle: number;
  readonly checkedOut: number;
  /** Resources above `size` now. */
  readonly overflow: number;
  /** Callers waiting in line. */
  readonly waiting: number;
  /** Creations in progress. */
  readonly creating: number;
  /** Counts since the pool started. */
  readonly created: number;
  readonly createFailed: number;
  readonly destroyed: number;
  readonly destroyFailed: number;
  readonly checkouts: number;
  readonly checkins: number;
  readonly timeouts: number;
  readonly holderDown: number;
  readonly resourceDown: number;
  /** Checkins of something this pool had not lent (refused with ERR_INVALID_ARGUMENT). */
  readonly badCheckins: number;
}

/** A running pool. Its methods call the pool process by name, so they follow a restart. */
export interface ResourcePoolHandle<R> {
  readonly pid: Pid;
  readonly name: string;
  /** A free resource, waiting in line (FIFO) when none is; rejects with `ERR_POOL_TIMEOUT` past the timeout. */
  checkout(options?: CheckoutOptions): Promise<R>;
  /** Gives a checked-out resource back; rejects with `ERR_INVALID_ARGUMENT` for one not checked out (never lent twice). */
  checkin(resource: R, options?: CheckinOptions): Promise<CheckinOutcome>;
  /** Checks out, runs `fn`, checks in whatever `fn` does: the safe form. */
  withResource<T>(fn: (resource: R) => T | Promise<T>, options?: WithResourceOptions): Promise<T>;
  stats(): Promise<ResourcePoolStats>;
  /** Stops the pool: every resource is destroyed, waiting callers get `ERR_CALL_EXIT`. */
  stop(): Promise<void>;
}
