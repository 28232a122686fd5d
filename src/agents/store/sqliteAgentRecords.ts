import { NotSerializableError } from '../../errors.js';
import { encodeValue } from './AgentStore.js';

// An agent store record as SQLite takes it (its encoded value, within SQLite's size for one record)
// and as the store compares what it reads back (SQLite's order of text, a raw column's sameness).

/** What SQLite adds to a record's columns: its header (a size and the 4 columns' types, at most 9 bytes each), with room to spare. */
const RECORD_OVERHEAD = 64;

/** @internal A row of `agent_records` as read, before its columns are checked. */
export type Row = { kind: unknown; key: unknown; value: unknown };

/**
 * @internal The value, encoded (`v8.serialize`), of a record whose columns fit in `maxBytes`:
 * checked at the put or insert itself, so a value too big is refused then (`NotSerializableError`),
 * before it is kept behind a lock where it would take an accepted write's place and then be refused
 * with it when they are written.
 */
export function encodeRecord(component: string, kind: string, key: string, value: unknown, maxBytes: number): Buffer {
  const encoded = encodeValue(value);
  const bytes = encoded.length + Buffer.byteLength(component) + Buffer.byteLength(kind) + Buffer.byteLength(key) + RECORD_OVERHEAD;
  if (bytes > maxBytes) {
    throw new NotSerializableError(
      'value',
      `${encoded.length} bytes serialized: with its component, kind and key, more than the ${maxBytes} bytes SQLite takes in one record (store a reference to where the data is kept)`,
      'an agent store value',
    );
  }
  return encoded;
}

/** @internal SQLite's order of text (BINARY: the UTF-8 bytes), which JavaScript's order of UTF-16 code units is not. */
export function byBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

/** @internal A raw row's column as written: the same value (a blob by its bytes). */
export function sameColumn(a: unknown, b: unknown): boolean {
  return Buffer.isBuffer(a) && Buffer.isBuffer(b) ? a.equals(b) : Object.is(a, b);
}
