// The checks of the cluster's options: the failure detector's timings, and a call's `{ timeoutMs? }`.
import { checkKeys, InvalidArgumentError } from '../../errors.js';

/** The failure detector's timings (ms), with their defaults. */
export interface Timings {
  readonly heartbeatMs: number;
  readonly suspectAfterMs: number;
  readonly downAfterMs: number;
  readonly probeTimeoutMs: number;
}

/** `Cluster.join`'s timings, each a positive number of ms; the later defaults follow the heartbeat. */
export function timingsOf(options: { heartbeatMs?: number; suspectAfterMs?: number; downAfterMs?: number; probeTimeoutMs?: number }): Timings {
  const heartbeatMs = positive(options.heartbeatMs, 'heartbeatMs', 200);
  const suspectAfterMs = positive(options.suspectAfterMs, 'suspectAfterMs', 3 * heartbeatMs);
  const downAfterMs = positive(options.downAfterMs, 'downAfterMs', Math.max(2000, suspectAfterMs + heartbeatMs));
  const probeTimeoutMs = positive(options.probeTimeoutMs, 'probeTimeoutMs', 500);
  return { heartbeatMs, suspectAfterMs, downAfterMs, probeTimeoutMs };
}

export function positive(value: number | undefined, argument: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new InvalidArgumentError(argument, 'a positive number of milliseconds', value);
  return value;
}

/** `{ timeoutMs? }` or nothing: a misspelt key is refused. */
export function timeoutOptions(options: unknown): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ timeoutMs? }', options);
  checkKeys(options, ['timeoutMs'], 'options');
}
