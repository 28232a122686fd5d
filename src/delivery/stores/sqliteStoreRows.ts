import { inspect } from 'node:util';
import { deserialize, serialize } from 'node:v8';
import type { DeadLetterFilter } from '../../runtime/serviceSlots.js';
import { type Record_, thrownText } from './DeadLetterStore.js';

// An entry of the SQLite dead letter store as a row and back: its columns, a last error as stored,
// a row decoded (never throwing), and a filter as a WHERE clause.

/** @internal A row of `dead_letters`. */
export interface Row {
  seq: number;
  recipient: string;
  /** The serialized `[message, metadata]` (a blob, unless something else wrote the row). */
  payload: unknown;
  reason: string;
  attempts: number;
  first_failed_at: number;
  last_attempt_at: number;
  next_retry_at: number;
  last_error: unknown;
  status: 'pending' | 'parked';
}

/** @internal The column of each field an update may change. */
export const COLUMNS: Record<string, string> = { attempts: 'attempts', lastAttemptAt: 'last_attempt_at', nextRetryAt: 'next_retry_at', lastError: 'last_error', status: 'status' };

/** A clause that selects every row. */
export const NO_CLAUSE: { where: string; args: unknown[] } = { where: '', args: [] };

/** A filter as the rest of a WHERE clause (` AND ...`) and its arguments. */
export function whereOf(filter: DeadLetterFilter, now: number): { where: string; args: unknown[] } {
  let where = '';
  const args: unknown[] = [];
  if (filter.status !== undefined) {
    where += ' AND status = ?';
    args.push(filter.status);
  }
  if (filter.reason !== undefined) {
    where += ' AND reason = ?';
    args.push(filter.reason);
  }
  if (filter.recipient !== undefined) {
    where += ' AND recipient = ?';
    args.push(filter.recipient);
  }
  if (filter.olderThanMs !== undefined) {
    where += ' AND first_failed_at <= ?';
    args.push(now - filter.olderThanMs);
  }
  return { where, args };
}

/** Whether `value` can be serialized on its own (which of message and metadata made an add fail). */
export function serializes(value: unknown): boolean {
  try {
    serialize(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * A last error as stored: text stays text, anything else serialized. An error that cannot be
 * serialized (a receiver's thrown object holding a function, say) is only a diagnostic: it is
 * stored as what it says (`util.inspect`), rather than making the entry's update fail.
 */
export function errorColumn(error: unknown): Buffer | string | null {
  if (error === undefined) return null;
  if (typeof error === 'string') return error;
  try {
    return serialize(error);
  } catch (e) {
    try {
      return inspect(error);
    } catch {
      return `an error that could not be stored (${thrownText(e)})`;
    }
  }
}

/**
 * A row as a record; never throws. A payload that cannot be decoded (a corrupt row) gives a record
 * without its message and metadata, marked `undecodable` with the raw size; a last error that
 * cannot be decoded becomes a text that says so (the entry itself is fine).
 */
export function toRecord(row: Row): Record_ {
  const record: Record_ = {
    id: String(row.seq),
    recipient: row.recipient,
    message: undefined,
    reason: row.reason,
    metadata: {},
    attempts: row.attempts,
    firstFailedAt: row.first_failed_at,
    lastAttemptAt: row.last_attempt_at,
    nextRetryAt: row.next_retry_at,
    lastError: lastErrorOf(row.last_error),
    status: row.status,
  };
  let error: string;
  try {
    const decoded: unknown = deserialize(row.payload as Buffer); // anything else throws, and is reported
    if (Array.isArray(decoded) && decoded.length === 2 && typeof decoded[1] === 'object' && decoded[1] !== null) {
      record.message = decoded[0];
      record.metadata = decoded[1] as Record<string, unknown>;
      return record;
    }
    error = 'not a [message, metadata] pair';
  } catch (e) {
    error = thrownText(e);
  }
  return Object.assign(record, { undecodable: { bytes: byteSize(row.payload), error } });
}

function lastErrorOf(column: unknown): unknown {
  if (column === null) return undefined;
  if (!Buffer.isBuffer(column)) return column; // text stays text
  try {
    return deserialize(column);
  } catch (e) {
    return `undecodable last error (${column.length} bytes): ${thrownText(e)}`;
  }
}

/** The size of a column as stored: a blob's bytes, a text's UTF-8 bytes. */
function byteSize(column: unknown): number {
  return Buffer.isBuffer(column) ? column.length : Buffer.byteLength(String(column));
}
