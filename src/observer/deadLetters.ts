/** Dead letters and managed monitors as the API shows them, the dead-letter filter of a query or a body, and the walks of all entries matching one (a retry-all job's ids, a purge's count). */
import type { DeadLetter, DeadLetterFilter, MonitorEntry } from '../runtime/serviceSlots.js';
import { Pid } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';
import { type Budget, cutText, jsonSafe, MAX_STATE_CHARS, MAX_STATE_VALUES } from './detail.js';
import { ApiError, nameText } from './http.js';
import { MAX_JOB_ENTRIES } from './jobs.js';

/**
 * The most characters of text the payloads of one page of dead letters show in all (each value
 * alone at most {@link MAX_STATE_CHARS}): past them a text is `'[truncated]'`.
 */
export const MAX_PAGE_CHARS = 16_000_000;

/** A dead letter as the API shows it: the message, metadata and last error (JSON-safe, as {@link jsonSafe} shows a state) only when payloads are allowed. */
export function deadLetterRow(d: DeadLetter, payloads: boolean, page: { chars: number } = { chars: MAX_PAGE_CHARS }): Record<string, unknown> {
  const row: Record<string, unknown> = {
    id: d.id,
    // (a registered name and a reason have no length limit: quoted by their start and length, as
    // names and texts are everywhere else, or one 10 MB entry made every page of the list 10 MB)
    recipient: nameText(d.recipient),
    reason: cutText(d.reason),
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
    // (each value within its own bound, and all of a page's within `page`: 600 entries of 1,000,000
    // characters made a page past the longest string V8 holds, a 500 for the whole list)
    const shown = (value: unknown): unknown => {
      const budget: Budget = { left: MAX_STATE_VALUES, chars: Math.min(MAX_STATE_CHARS, page.chars) };
      const start = budget.chars;
      const out = jsonSafe(value, undefined, undefined, budget);
      page.chars -= start - budget.chars;
      return out;
    };
    row.message = shown(d.message);
    row.metadata = shown(d.metadata);
    row.lastError = shown(d.lastError);
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

/**
 * A retry job's `cursor` (where an earlier job with the same filter stopped), if given: a list cursor
 * (an entry's id), only with a filter.
 */
export function cursorOf(value: unknown, withFilter: boolean): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (!withFilter) throw new ApiError('bad_request', '`cursor` goes with `filter` (the job continues after it)', { field: 'cursor' });
  if (typeof value !== 'string' || !/^\d{1,20}$/.test(value)) throw new ApiError('bad_request', '`cursor` must be the `cursor` a job answered', { field: 'cursor' });
  return value;
}

/**
 * The ids of the first {@link MAX_JOB_ENTRIES} entries matching `filter` (the queue's order, oldest
 * first; after `after`, an entry's id, if given), and how many more match (`leftOut`): counted, not
 * held. It stopped at the cap and said nothing, so a job's `total` hid the entries it would never retry.
 */
export async function matchingIds(node: Node, filter: ReturnType<typeof deadLetterFilter>, after: string | undefined): Promise<{ ids: string[]; leftOut: number }> {
  const ids: string[] = [];
  let leftOut = 0;
  await eachPage(node, filter, after, (entries) => {
    for (const e of entries) {
      if (ids.length < MAX_JOB_ENTRIES) ids.push(e.id);
      else leftOut++;
    }
  });
  return { ids, leftOut };
}

export async function countDeadLetters(node: Node, filter: ReturnType<typeof deadLetterFilter>): Promise<number> {
  let count = 0;
  await eachPage(node, filter, undefined, (entries) => (count += entries.length));
  return count;
}

/**
 * Every page of the entries matching `filter`, each read in a turn of its own: a store's list answers
 * at once (the memory store) or synchronously (SQLite), so the walk was one chain of microtasks that
 * held the event loop for the whole queue (300,000 entries: 1 s, no other request, timer or
 * heartbeat running), and it now walks the whole queue to count `leftOut`.
 */
async function eachPage(node: Node, filter: ReturnType<typeof deadLetterFilter>, after: string | undefined, take: (entries: readonly { id: string }[]) => void): Promise<void> {
  let cursor = after;
  do {
    if (cursor !== after) await new Promise<void>((resolve) => setImmediate(resolve));
    const page = await node.deadLetters.list({ ...filter, limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
    take(page.entries);
    cursor = page.cursor;
  } while (cursor !== undefined);
}
