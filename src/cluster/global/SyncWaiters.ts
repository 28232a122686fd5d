/**
 * @internal The syncs of a global registry on their way: each waits first for its own write (a KV
 * `put` of the node's sync key), then for the watch to bring the bucket that far. A sync's time bound
 * counts from the call on the node's timers (a TestClock drives it; unref'd, it holds no process
 * open), its write's time included. The stop fails every sync at once, whichever it waits for.
 */
import { NodeStoppedError, SyncTimeoutError } from '../../errors.js';
import type { Kernel } from '../../runtime/kernel.js';

/** What the sync waiters need of their registry. */
export interface SyncWaitersHost {
  readonly kernel: Kernel;
  /** The last revision the watch brought. */
  seen(): number;
  /** True once the registry stopped (the cache is kept in sync no more). */
  stopped(): boolean;
  /** A sync waits for the watch now: the watch's stall check runs. */
  waiting(): void;
}

/** A sync waiting for the watch to reach its revision. */
interface SyncWaiter {
  readonly revision: number;
  readonly resolve: () => void;
  /** The registry stopped: the cache is kept in sync no more. */
  readonly reject: (error: Error) => void;
  /** The sync's time bound, a node timer. */
  readonly timer: { cancel(): boolean };
}

export class SyncWaiters {
  readonly #host: SyncWaitersHost;
  readonly #waiters = new Set<SyncWaiter>();
  /** The syncs whose own write is on its way, each by how it fails: the stop fails them at once, not once the write is answered. */
  readonly #writes = new Set<(error: Error) => void>();

  constructor(host: SyncWaitersHost) {
    this.#host = host;
  }

  /** How many syncs wait for the watch. */
  get size(): number {
    return this.#waiters.size;
  }

  /**
   * Writes with `write` and resolves once the watch brought the revision it answers; rejects with `SyncTimeoutError`
   * past `timeoutMs` from the call (`revision` 0: the write was not answered in time), with
   * `NodeStoppedError` when the registry stops meanwhile.
   */
  async sync(write: () => Promise<number>, timeoutMs: number): Promise<void> {
    const kernel = this.#host.kernel;
    const since = kernel.timerNow();
    const written = write();
    // the write counts too: a server that never acknowledges it (frozen) fails the sync in time
    let unanswered: { cancel(): boolean } | undefined;
    let stopped: ((error: Error) => void) | undefined;
    const revision = await Promise.race([
      written,
      new Promise<0>((resolve) => (unanswered = kernel.setTimer(timeoutMs, () => resolve(0), true))),
      // the stop fails it at once (the race's hold on the write keeps its late answer or failure handled)
      new Promise<never>((_resolve, reject) => this.#writes.add((stopped = reject))),
    ]).finally(() => {
      unanswered?.cancel();
      if (stopped !== undefined) this.#writes.delete(stopped);
    });
    // the registry stopped while the write was on its way: its cache is kept in sync no more
    if (this.#host.stopped()) throw new NodeStoppedError(kernel.name, 'GlobalRegistry.sync');
    if (revision === 0) throw new SyncTimeoutError(kernel.name, timeoutMs, 0, this.#host.seen());
    if (this.#host.seen() >= revision) return;
    await new Promise<void>((resolve, reject) => {
      // the time the write took counts: the bound is from the call
      const left = Math.max(0, timeoutMs - (kernel.timerNow() - since));
      const waiter: SyncWaiter = {
        revision,
        resolve: () => {
          waiter.timer.cancel();
          resolve();
        },
        reject: (error) => {
          waiter.timer.cancel();
          reject(error);
        },
        timer: kernel.setTimer(
          left,
          () => {
            this.#waiters.delete(waiter);
            reject(new SyncTimeoutError(kernel.name, timeoutMs, revision, this.#host.seen()));
          },
          true,
        ),
      };
      this.#waiters.add(waiter);
      this.#host.waiting();
    });
  }

  /** The watch brought the bucket up to `seen`: the syncs waiting for that far resolve. */
  reached(seen: number): void {
    for (const w of [...this.#waiters]) {
      if (w.revision > seen) continue;
      this.#waiters.delete(w);
      w.resolve();
    }
  }

  /** The registry stops: every sync, waiting for the watch or for its write, rejects at once. */
  stop(): void {
    const error = (): NodeStoppedError => new NodeStoppedError(this.#host.kernel.name, 'GlobalRegistry.sync');
    for (const w of this.#waiters) w.reject(error());
    this.#waiters.clear();
    for (const fail of this.#writes) fail(error());
    this.#writes.clear();
  }
}
