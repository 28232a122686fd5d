/**
 * Errors of the agent layer: a resource pool's timeout and crash loop, an invalid signal, a coordinator's limit of
 * workflows.
 */
import { describe, KeelError, thrownText } from './base.js';

/** A resource pool had no resource for a checkout within its timeout (the caller waited in line that long). */
export class PoolTimeoutError extends KeelError {
  /** The pool's registered name. */
  readonly pool: string;
  readonly timeoutMs: number;
  /** What timed out: a caller's checkout, or the pool's own call of `create()`. */
  readonly operation: 'checkout' | 'create';
  constructor(pool: string, timeoutMs: number, operation: 'checkout' | 'create' = 'checkout') {
    super(
      'ERR_POOL_TIMEOUT',
      operation === 'create'
        ? `resource pool '${pool}': create() did not settle within ${timeoutMs} ms; it counts as a failed creation and is retried (raise createTimeoutMs if creating is that slow)`
        : `resource pool '${pool}' had no resource free within ${timeoutMs} ms; check resources in sooner, raise size or maxOverflow, or wait longer`,
    );
    this.pool = pool;
    this.timeoutMs = timeoutMs;
    this.operation = operation;
  }
}

/**
 * A resource pool's exit reason when its creations fail too often: more than `maxFailures` failed
 * creations (or deaths of `Pid` resources it did not cause, however old) within `withinMs`, its
 * `createIntensity`. Its supervisor decides what follows (a restart, or, past its own
 * intensity, its own exit), as poolboy's does when a worker cannot start.
 */
export class PoolCrashLoopError extends KeelError {
  /** The pool's registered name. */
  readonly pool: string;
  /** Failures counted within `withinMs` when it gave up (`maxFailures + 1`). */
  readonly failures: number;
  readonly maxFailures: number;
  readonly withinMs: number;
  /** The last failure: what `create` threw or rejected with (a typed error for a refused answer or a timeout), or the exit reason of a `Pid` resource that died. Also the `cause`. */
  readonly lastError: unknown;
  constructor(pool: string, failures: number, maxFailures: number, withinMs: number, lastError: unknown) {
    super(
      'ERR_POOL_CRASH_LOOP',
      `resource pool '${pool}' gave up: ${failures} creation failures within ${withinMs} ms (createIntensity allows ${maxFailures}); the last: ${thrownText(lastError)}. Fix the factory (or what it connects to), or raise createIntensity`,
      { cause: lastError },
    );
    this.pool = pool;
    this.failures = failures;
    this.maxFailures = maxFailures;
    this.withinMs = withinMs;
    this.lastError = lastError;
  }
}

/** A signal that is not a valid CloudEvents 1.0 event: the message names the attribute and what it must be. */
export class InvalidSignalError extends KeelError {
  /** The attribute that was wrong (`type`, `source`, `id`, ...). */
  readonly attribute: string;
  constructor(attribute: string, expected: string, given: unknown) {
    super('ERR_INVALID_SIGNAL', `invalid signal: \`${attribute}\` must be ${expected}, got ${describe(given)}`);
    this.attribute = attribute;
  }
}

/** A coordinator already runs its limit of concurrent workflows; only the new workflow is refused. */
export class WorkflowLimitError extends KeelError {
  readonly limit: number;
  constructor(limit: number) {
    super('ERR_WORKFLOW_LIMIT', `the coordinator already runs ${limit} workflows (maxConcurrentWorkflows); wait for one to finish or raise the limit`);
    this.limit = limit;
  }
}
