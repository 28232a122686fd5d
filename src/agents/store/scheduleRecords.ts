/**
 * @internal The AgentScheduler's records in an agent store: one per schedule registered by name,
 * kind {@link SCHEDULE}, keyed by the name and the schedule id, its value a {@link StoredSchedule}.
 * Read back at a start, checked field by field: a record that is not one is corrupt (skipped).
 */

export const SCHEDULE = 'schedule';

export interface StoredSchedule {
  /** The registered name the schedule was made for. */
  readonly agent: string;
  readonly id: string;
  readonly intervalMs: number;
  readonly message: unknown;
  readonly jitter: number;
  readonly missed: 'skip' | 'catch_up';
  /** The next base due time, epoch ms on the node's clock. */
  readonly nextDueAt: number;
}

/** The record key of the schedule `id` of the agent registered as `agent` (unambiguous for any two strings). */
export function scheduleKey(agent: string, id: string): string {
  return JSON.stringify([agent, id]);
}

const finite = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/** The stored schedule, or why the value is not one. */
export function decodeSchedule(value: unknown): StoredSchedule | string {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return 'not an object';
  const v = value as Record<string, unknown>;
  if (typeof v.agent !== 'string' || v.agent === '') return 'agent is not a name';
  if (typeof v.id !== 'string' || v.id === '') return 'id is not a non-empty string';
  // the door's range (validate.ts checkInterval): a record with more would overflow its firing delay
  if (!finite(v.intervalMs) || v.intervalMs < 1 || v.intervalMs > Number.MAX_SAFE_INTEGER) return 'intervalMs is not a number from 1 to Number.MAX_SAFE_INTEGER';
  if (!finite(v.jitter) || v.jitter < 0 || v.jitter >= v.intervalMs) return 'jitter is not a number in [0, intervalMs)';
  if (v.missed !== 'skip' && v.missed !== 'catch_up') return "missed is not 'skip' | 'catch_up'";
  if (!finite(v.nextDueAt)) return 'nextDueAt is not a finite time';
  if (!('message' in v)) return 'it has no message';
  return { agent: v.agent, id: v.id, intervalMs: v.intervalMs, message: v.message, jitter: v.jitter, missed: v.missed, nextDueAt: v.nextDueAt };
}
