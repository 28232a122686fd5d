// The writes a SQLite agent store keeps behind another connection's write lock (write-behind): what
// one kept write is, and what is reported and counted of them.

/**
 * @internal What became of writes kept behind a lock (counted in calls: `put`, `insert`, `delete`,
 * `deleteAll` accepted while the file could not be written, and the removals of corrupt rows a
 * `loadAll` makes meanwhile):
 * - `delayed`: the file could not be written (`error`): `writes` calls are kept, tried again later
 *   (reported when a write first meets the lock, and once more for each other error after it);
 * - `written`: the `writes` calls kept are in the file, after `tries` tries;
 * - `lost`: the `writes` calls could not be written (`error`): at `close()` (a lock that outlasted
 *   its wait, a full disk, the file replaced), or a record SQLite refuses on its own (a value too big
 *   for it is refused by the call itself, so that it never takes the place of an earlier write).
 */
export type AgentStoreWriteReport =
  | { readonly outcome: 'delayed'; readonly writes: number; readonly error: unknown }
  | { readonly outcome: 'written'; readonly writes: number; readonly tries: number }
  | { readonly outcome: 'lost'; readonly writes: number; readonly error: unknown };

/** @internal The counts of writes kept behind a lock, in calls: `delayed` = `written` + `lost` + `queued`. */
export interface AgentStoreWriteCounts {
  readonly delayed: number;
  readonly written: number;
  readonly lost: number;
  readonly queued: number;
}

/**
 * A write kept behind a lock, standing for `calls` accepted calls (a later write of the same key, or
 * a `deleteAll` of its scope, takes the earlier ones' place: the queue holds at most one write per
 * key, so it is bounded by the records, not by how long the lock lasts). A value too big for SQLite
 * is refused by its call before it is kept: it cannot take an accepted write's place and be refused with it.
 */
export type Pending =
  | { op: 'put'; component: string; kind: string; key: string; value: Buffer; calls: number }
  | { op: 'delete'; component: string; kind: string; key: string; calls: number }
  | { op: 'deleteAll'; component: string; kind: string | undefined; calls: number }
  | { op: 'raw'; component: string; kind: unknown; key: unknown; calls: number };

/** @internal The id of a record's kept write (one per record: a later write takes its place). */
export const keyOf = (component: string, kind: string, key: string): string => JSON.stringify(['k', component, kind, key]);
