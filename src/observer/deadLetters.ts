/** Dead letters and managed monitors as the API shows them, and the dead-letter filter of a query or a body. */
import type { DeadLetter, DeadLetterFilter, MonitorEntry } from '../runtime/serviceSlots.js';
import { Pid } from '../runtime/Pid.js';
import { jsonSafe } from './detail.js';
import { ApiError } from './http.js';

/** A dead letter as the API shows it: the message, metadata and last error (JSON-safe, as {@link jsonSafe} shows a state) only when payloads are allowed. */
export function deadLetterRow(d: DeadLetter, payloads: boolean): Record<string, unknown> {
  const row: Record<string, unknown> = {
    id: d.id,
    recipient: d.recipient,
    reason: d.reason,
    attempts: d.attempts,
    firstFailedAt: d.firstFailedAt,
    lastAttemptAt: d.lastAttemptAt,
    nextRetryAt: d.nextRetryAt,
    status: d.status,
    undecodable: d.undecodable ?? null,
  };
  if (payloads) {
    // as a redactor's state is shown: the queue keeps cycles, Maps and typed arrays, which JSON
    // alone turned into a 500 for the whole list, `{}`, or every byte
    row.message = jsonSafe(d.message);
    row.metadata = jsonSafe(d.metadata);
    row.lastError = jsonSafe(d.lastError);
  }
  return row;
}

/** A dead-letter filter from query parameters or a JSON body; 400 for anything malformed. */
export function deadLetterFilter(source: { get(key: string): unknown }): DeadLetterFilter {
  const filter: DeadLetterFilter = {};
  const status = source.get('status');
  if (status !== undefined && status !== null) {
    if (status !== 'pending' && status !== 'parked') throw new ApiError('bad_request', '`status` must be pending or parked', { field: 'status' });
    filter.status = status;
  }
  for (const key of ['reason', 'recipient'] as const) {
    const v = source.get(key);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v.length === 0 || v.length > 300) throw new ApiError('bad_request', `\`${key}\` must be a string of 1 to 300 characters`, { field: key });
    filter[key] = v;
  }
  const older = source.get('olderThanMs');
  if (older !== undefined && older !== null) {
    const n = typeof older === 'string' && /^\d{1,12}$/.test(older) ? Number(older) : older;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ApiError('bad_request', '`olderThanMs` must be an integer >= 0', { field: 'olderThanMs' });
    filter.olderThanMs = n;
  }
  return filter;
}

/** A managed monitor as the API shows it. */
export function monitorRow(m: MonitorEntry): Record<string, unknown> {
  return {
    ref: String(m.ref),
    owner: Pid.format(m.owner),
    target: Pid.format(m.target),
    tag: m.tag ?? null,
    createdAt: m.createdAt,
    ageMs: m.ageMs,
    stack: m.stack ?? null,
    targetAlive: m.targetAlive,
    leak: m.leak ?? null,
  };
}
