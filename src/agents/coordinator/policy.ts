import { types } from 'node:util';
import { backoffDelay, toBackoff, type Backoff } from '../../backoff.js';
import { ThrownValueError } from '../../errors.js';
import type { RetryPolicy } from './types.js';

// A task's retry policy on errors, as data (a workflow stays storable): how many attempts may end in
// an error, the backoff between them, and which errors are never retried (Temporal's
// nonRetryableErrorTypes: a string error, or an error's `code` or `name`).

/** @internal A validated retry policy. */
export interface Retry {
  readonly maxAttempts: number;
  readonly backoff: Backoff;
  readonly nonRetryable: ReadonlySet<string>;
}

/** @internal The policy of a task (validated by `validateWorkflow` before it gets here). */
export function toRetry(policy: RetryPolicy | undefined): Retry | undefined {
  if (policy === undefined || policy.maxAttempts <= 1) return undefined;
  return { maxAttempts: policy.maxAttempts, backoff: toBackoff(policy.backoff), nonRetryable: new Set(policy.nonRetryable ?? []) };
}

/**
 * What an error is called, for `nonRetryable`: the string itself, or its `code` and `name` (and, for
 * what an Agent's handler threw that was not an Error, which arrives wrapped as `ERR_THROWN_VALUE`:
 * that string, or that object's `code` and `name`). Never throws, whatever the value.
 */
export function errorTypes(error: unknown): string[] {
  if (typeof error === 'string') return [error];
  // a proxy first: `instanceof` would run its getPrototypeOf trap (a revoked one throws)
  if (typeof error !== 'object' || error === null || types.isProxy(error)) return [];
  const names = codeAndName(error);
  if (isThrownValue(error)) {
    // what an Agent's handler threw that was not an Error: a string, or an object with a code or name
    const value: unknown = error.value;
    if (typeof value === 'string') names.unshift(value);
    else if (typeof value === 'object' && value !== null && !types.isProxy(value)) names.unshift(...codeAndName(value));
  }
  return names;
}

/** `instanceof`, which walks the prototype chain: a revoked proxy in it throws. */
function isThrownValue(error: object): error is ThrownValueError {
  try {
    return error instanceof ThrownValueError;
  } catch {
    return false;
  }
}

/** The string `code` and `name` of an object, skipping getters that throw. */
function codeAndName(error: object): string[] {
  const names: string[] = [];
  for (const key of ['code', 'name'] as const) {
    try {
      const v = (error as Record<string, unknown>)[key];
      if (typeof v === 'string') names.push(v);
    } catch {
      // a getter that throws names nothing
    }
  }
  return names;
}

/** @internal The delay before retrying a task after its `errors`-th error, or undefined: it fails. */
export function retryDelay(retry: Retry, errors: number, error: unknown, random: () => number): number | undefined {
  if (errors >= retry.maxAttempts) return undefined;
  if (errorTypes(error).some((t) => retry.nonRetryable.has(t))) return undefined;
  const delay = backoffDelay(retry.backoff, errors, random);
  // a bad value from the node's injected random: no backoff rather than a timer that never fires
  return Number.isFinite(delay) && delay >= 0 ? delay : 0;
}
