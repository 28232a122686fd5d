import type { Kernel } from '../runtime/kernel.js';
import type { DeadLetterStore } from './stores/DeadLetterStore.js';
import { SqliteStore } from './stores/SqliteStore.js';
import { LOCKED, lockRetryDelay, sqliteCode } from './stores/sqliteFile.js';

// The dead letter queue's waits, on the node's clock: a pause (between the entries of a rate-limited
// `retry()`, between the tries of a write), and a write of its store tried again while the store's
// file is locked by another connection.

/** @internal Waits `ms` on the node's clock; ends early when `signal` aborts or the node shuts down. */
export function pause(node: Kernel, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      timer.cancel();
      unhook();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = node.setTimer(ms, done);
    const unhook = node.onShutdown(done);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/**
 * @internal Runs a write of a SQLite store; while it meets a locked file (each try waits at most
 * the short busy timeout, the event loop with it), tries it again on the node's clock, until the
 * store's `lockWaitMs` has passed: then its SQLITE_BUSY is thrown (`ServiceUnavailableError` once
 * the node has shut down meanwhile: `checkAvailable`, called after each pause, throws it). Any
 * other store's write is run once.
 */
export async function whileLocked<T>(node: Kernel, store: DeadLetterStore, write: () => T, checkAvailable: () => void): Promise<T> {
  if (!(store instanceof SqliteStore)) return write();
  const clock = { now: () => node.timerNow() }; // durations on the timers' time
  const deadline = clock.now() + store.lockWaitMs;
  for (let tries = 0; ; tries++) {
    try {
      return write();
    } catch (e) {
      const left = deadline - clock.now();
      if (!LOCKED.test(sqliteCode(e) ?? '') || left <= 0) throw e;
      await pause(node, Math.min(lockRetryDelay(tries), left), undefined);
      checkAvailable();
    }
  }
}
