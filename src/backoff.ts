/**
 * Retry backoff: exponential with full jitter. Shared by the layers that retry (supervised sends,
 * the dead letter queue) and by the runtime's service options that configure them, as src/errors.ts is.
 */
import { checkKeys, InvalidArgumentError } from './errors.js';

/** Exponential backoff with full jitter. */
export interface BackoffOptions {
  initialMs?: number;
  factor?: number;
  maxMs?: number;
  jitter?: 'full' | 'none';
}

/** @internal A validated backoff: exponential from `initialMs` by `factor` up to `maxMs`, full jitter unless `jitter: 'none'`. */
export interface Backoff {
  readonly initialMs: number;
  readonly factor: number;
  readonly maxMs: number;
  readonly jitter: 'full' | 'none';
}

/** @internal */
export const DEFAULT_BACKOFF: Backoff = Object.freeze({ initialMs: 10, factor: 2, maxMs: 5000, jitter: 'full' });

/** @internal */
export function toBackoff(options: BackoffOptions | undefined, argument = 'backoff'): Backoff {
  if (options === undefined) return DEFAULT_BACKOFF;
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(argument, '{ initialMs?, factor?, maxMs?, jitter? }', options);
  checkKeys(options, ['initialMs', 'factor', 'maxMs', 'jitter'], argument);
  const num = (key: 'initialMs' | 'factor' | 'maxMs', fallback: number, min: number): number => {
    const v = options[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v < min) throw new InvalidArgumentError(`${argument}.${key}`, `a finite number >= ${min}`, v);
    return v;
  };
  const jitter = options.jitter === undefined ? 'full' : options.jitter; // null is no jitter mode: refused below
  if (jitter !== 'full' && jitter !== 'none') throw new InvalidArgumentError(`${argument}.jitter`, "'full' | 'none'", options.jitter);
  return { initialMs: num('initialMs', 10, 0), factor: num('factor', 2, 1), maxMs: num('maxMs', 5000, 0), jitter };
}

/** @internal The delay before retry number `retry` (1 for the first retry), with full jitter from `random`. */
export function backoffDelay(b: Backoff, retry: number, random: () => number): number {
  // 0 x Infinity is NaN: a zero initial delay stays zero however far the exponent grows
  const cap = b.initialMs === 0 ? 0 : Math.min(b.maxMs, b.initialMs * b.factor ** (retry - 1));
  return b.jitter === 'none' ? cap : random() * cap;
}
