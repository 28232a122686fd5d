/**
 * The observer's calls to the processes it shows (a supervisor's status, a component's snapshot, a
 * server's status), shared while pending: a page polls at every frame, and a busy process that does
 * not answer in time would otherwise get one more queued call per poll, all handled at once when it
 * is free again. One call per process and kind is in flight at a time, given up after
 * {@link SHARED_CALL_LIMIT_MS}; each answer waits for it at most its own timeout, on the node's clock.
 */
import type { Kernel } from '../runtime/kernel.js';

/** How long a shared call itself waits for its answer (the requests waiting on it give up sooner). */
export const SHARED_CALL_LIMIT_MS = 60_000;

export class SharedCalls {
  readonly #kernel: Kernel;
  readonly #pending = new Map<string, Promise<unknown>>();

  constructor(kernel: Kernel) {
    this.#kernel = kernel;
  }

  /** How many calls are in flight (for tests). */
  get pending(): number {
    return this.#pending.size;
  }

  /**
   * `start()`'s promise (`start` given {@link SHARED_CALL_LIMIT_MS}), or the one already pending under
   * `key`; rejected with an error whose `code` is `'timeout'` after `timeoutMs` of the node's clock.
   */
  call<T>(key: string, start: (limitMs: number) => Promise<T>, timeoutMs: number): Promise<T> {
    let work = this.#pending.get(key) as Promise<T> | undefined;
    if (work === undefined) {
      const started = start(SHARED_CALL_LIMIT_MS);
      work = started;
      this.#pending.set(key, started);
      const done = (): void => {
        if (this.#pending.get(key) === started) this.#pending.delete(key);
      };
      started.then(done, done);
    }
    return withTimeout(this.#kernel, work, timeoutMs);
  }
}

/** `work`'s outcome, or a timeout error (`code: 'timeout'`) after `ms` on the node's clock (the work itself goes on). */
export function withTimeout<T>(kernel: Kernel, work: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = kernel.setTimer(ms, () => reject(Object.assign(new Error('timeout'), { code: 'timeout' })), true);
    work.then(
      (v) => {
        timer.cancel();
        resolve(v);
      },
      (e: unknown) => {
        timer.cancel();
        reject(e);
      },
    );
  });
}

/** `'timeout'` for a call that timed out (ours or the call's own), a Keel error's code, else `'failed'`. */
export function callErrorCode(e: unknown): string {
  const code = typeof e === 'object' && e !== null ? (e as { code?: unknown }).code : undefined;
  if (code === 'timeout' || code === 'ERR_CALL_TIMEOUT') return 'timeout';
  return typeof code === 'string' ? code : 'failed';
}
