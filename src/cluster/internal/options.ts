// The checks of the cluster's options: `Cluster.join`'s, the failure detector's timings, a node's
// name, and a call's `{ timeoutMs? }`.
import { checkKeys, InvalidArgumentError } from '../../errors.js';

/** A cluster node's name (it becomes a subject token). */
export const NODE_NAME = /^[A-Za-z0-9_-]{1,64}$/;

/** `Cluster.join`'s options: a transport, and no key it does not know (the timings are checked by {@link timingsOf}). */
export function checkJoinOptions(options: unknown): void {
  const given = options as { transport?: { start?: unknown } } | null | undefined;
  if (typeof options !== 'object' || options === null || typeof given?.transport?.start !== 'function') {
    throw new InvalidArgumentError('options.transport', 'a Transport (natsTransport, workerTransport, memory network transport)', given?.transport);
  }
  // a misspelt option (heartbeatMS) is an error, never silently the default
  checkKeys(options, ['transport', 'heartbeatMs', 'suspectAfterMs', 'downAfterMs', 'probeTimeoutMs'], 'options');
}

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
