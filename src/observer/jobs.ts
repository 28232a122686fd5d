/**
 * Dead-letter jobs: a retry (or a redrive) of many entries at a rate, run in chunks on the node's
 * clock, its progress readable (`GET /api/dead-letters/jobs/<id>`) and pushed (`job` frames).
 */
import { randomBytes } from 'node:crypto';
import type { Kernel } from '../runtime/kernel.js';
import { ApiError } from './http.js';

/**
 * How many jobs are remembered (the oldest finished ones are forgotten first), and how many may run
 * at once: each holds up to {@link MAX_JOB_ENTRIES} ids and a timer, so one more while as many run is
 * refused (`503`), never started unseen.
 */
export const MAX_JOBS = 50;
/**
 * The most entries one job takes (a retry of all matching at a rate): the ids it holds. The entries
 * past it that match are counted (`leftOut`), not held: a second job, given the first's `cursor`
 * with the same filter, retries them.
 */
export const MAX_JOB_ENTRIES = 100_000;
/** The most ticks per second a job runs (a rate above it retries several entries a tick). */
const TICKS_PER_SECOND = 10;

/** A job's progress, as answered and pushed. */
export interface JobProgress {
  readonly id: string;
  readonly kind: 'retry' | 'redrive';
  readonly total: number;
  /** Entries that matched past {@link MAX_JOB_ENTRIES}: not in this job (0 when it took them all). */
  readonly leftOut: number;
  /**
   * When entries were left out: the id of the last entry the job holds. A job given it as `cursor`,
   * with the same filter, takes the matching entries after it. `null` when none was left out.
   */
  readonly cursor: string | null;
  /** Entries tried so far (`succeeded + failed`). */
  readonly done: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly ratePerSecond: number;
  /** True once every entry was tried, or the job stopped on an error (`error` says which). */
  readonly finished: boolean;
  readonly error: string | null;
}

type Step = (ids: string[]) => Promise<readonly { ok: boolean }[]>;

interface Job {
  progress: JobProgress;
  timer: { cancel(): boolean } | undefined;
}

export class Jobs {
  readonly #kernel: Kernel;
  readonly #report: (p: JobProgress) => void;
  readonly #jobs = new Map<string, Job>();
  #closed = false;

  constructor(kernel: Kernel, report: (p: JobProgress) => void) {
    this.#kernel = kernel;
    this.#report = report;
  }

  get(id: string): JobProgress | undefined {
    return this.#jobs.get(id)?.progress;
  }

  /** True when {@link MAX_JOBS} jobs run: {@link Jobs.start} refuses another. */
  get full(): boolean {
    let running = 0;
    for (const j of this.#jobs.values()) if (!j.progress.finished) running++;
    return running >= MAX_JOBS;
  }

  /** Starts a job over `ids` at `ratePerSecond`, each chunk done by `step`; its first progress. */
  start(kind: JobProgress['kind'], ids: readonly string[], ratePerSecond: number, step: Step, leftOut = 0): JobProgress {
    if (this.full) throw new ApiError('service_unavailable', `at most ${MAX_JOBS} dead-letter jobs may run at once`);
    this.#forget();
    const id = randomBytes(8).toString('hex');
    const job: Job = { progress: { id, kind, total: ids.length, leftOut, cursor: leftOut > 0 && ids.length > 0 ? ids[ids.length - 1]! : null, done: 0, succeeded: 0, failed: 0, ratePerSecond, finished: ids.length === 0, error: null }, timer: undefined };
    this.#jobs.set(id, job);
    const ticks = Math.min(TICKS_PER_SECOND, ratePerSecond);
    const tickMs = 1000 / ticks;
    const perTick = ratePerSecond / ticks;
    let credit = 0;
    let next = 0;
    const tick = (): void => {
      job.timer = undefined;
      if (this.#closed) return;
      credit += perTick;
      const n = Math.floor(credit);
      credit -= n;
      const chunk = ids.slice(next, next + n);
      next += chunk.length;
      const run = chunk.length === 0 ? Promise.resolve([]) : step(chunk);
      run.then(
        (results) => {
          const ok = results.filter((r) => r.ok).length;
          const p = job.progress;
          const done = p.done + chunk.length;
          job.progress = { ...p, done, succeeded: p.succeeded + ok, failed: p.failed + chunk.length - ok, finished: done >= p.total };
          if (chunk.length > 0) this.#report(job.progress);
          // (a timer that cannot be set ends the job with its error: thrown here, it was an unhandled rejection)
          if (!job.progress.finished && !this.#closed) job.timer = this.#kernel.setTimer(tickMs, tick, true);
        },
      ).catch((e: unknown) => {
        job.progress = { ...job.progress, finished: true, error: codeOf(e) };
        this.#report(job.progress);
      });
    };
    if (!job.progress.finished) job.timer = this.#kernel.setTimer(0, tick, true);
    return job.progress;
  }

  close(): void {
    this.#closed = true;
    for (const j of this.#jobs.values()) j.timer?.cancel();
  }

  /** Forgets the oldest finished jobs, to make room for one more (a running job is never forgotten: close() cancels it). */
  #forget(): void {
    for (const [id, j] of this.#jobs) {
      if (this.#jobs.size < MAX_JOBS) return;
      if (j.progress.finished) this.#jobs.delete(id);
    }
  }
}

function codeOf(e: unknown): string {
  try {
    const code = (e as { code?: unknown } | null)?.code;
    return typeof code === 'string' ? code : 'failed';
  } catch {
    return 'failed';
  }
}
