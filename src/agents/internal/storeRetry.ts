import type { Context } from '../../runtime/types.js';

/**
 * @internal A component whose store could not be read at its start (a database locked or out of
 * reach for a while) reads it again on its own, not only when it next writes: after a second, then
 * twice as long each time, at most a minute apart, until a read succeeds. What the store holds then
 * resumes (stored workflows go on, stored schedules fire) though nothing else happens meanwhile.
 */
export class RetryStoreRead {
  readonly delayMs: number;
  constructor(delayMs: number) {
    this.delayMs = delayMs;
  }
}

export const STORE_RETRY_FIRST_MS = 1000;
export const STORE_RETRY_MAX_MS = 60_000;

/** Asks `ctx`'s process to read its store again after `delayMs` (a {@link RetryStoreRead} to itself). */
export function retryStoreRead(ctx: Context<any>, delayMs = STORE_RETRY_FIRST_MS): void {
  ctx.sendAfter(ctx.self, new RetryStoreRead(delayMs), delayMs);
}

/** After a retry that failed too: the next one, twice as late, at most {@link STORE_RETRY_MAX_MS}. */
export function retryStoreReadLater(ctx: Context<any>, last: RetryStoreRead): void {
  retryStoreRead(ctx, Math.min(last.delayMs * 2, STORE_RETRY_MAX_MS));
}
