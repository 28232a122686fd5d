import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Node, TimerHandle } from '../index.js';
import { type Kernel, kernelOf } from '../runtime/kernel.js';

/**
 * What the heap did during a run of `keel soak`: `heapUsed` sampled once a second on the node's
 * clock, each time after a full garbage collection. `start` is the first sample once the run is
 * warm (after `warmupS` seconds), `end` the sample taken once what the load left behind has drained
 * (its last outcomes, restarts and dead letters; at the end of the load when nothing says when the
 * load ended, see {@link HeapSampler.endLoad}), `max` the largest from the start on. The heap is flat when it grew by no more than the tolerance from start to end:
 * {@link HEAP_TOLERANCE_FRACTION} of the start, at least {@link HEAP_TOLERANCE_MIN_BYTES}.
 */
export interface HeapReport {
  /** Samples taken from the warm-up to the end of the load, and the end sample. */
  readonly samples: number;
  /** Whether every sample followed a full garbage collection (always, unless V8 refused to expose it). */
  readonly gc: boolean;
  readonly warmupS: number;
  readonly startBytes: number;
  readonly endBytes: number;
  readonly maxBytes: number;
  /** `endBytes - startBytes` (negative when the heap shrank). */
  readonly growthBytes: number;
  readonly toleranceBytes: number;
  readonly flat: boolean;
  /**
   * Whether the samples span at least a second of the load (two samples, the first a second or more
   * before the load ended). A load that ended within a second of its warm-up (a short run, or a stop
   * before the warm-up) is not measured: its one sample, or two taken together, are flat by
   * construction, and prove nothing (however long the drain after it).
   */
  readonly measured: boolean;
  /** Every sample, bytes, one a second from the warm-up on, then the end sample. */
  readonly series: readonly number[];
}

/** The heap may grow by this fraction of its warm size between the warm-up and the end of the load... */
export const HEAP_TOLERANCE_FRACTION = 0.1;
/** ...or by this many bytes, whichever is larger (after a full GC a warm heap moves by well under a MB from one second to the next: 6.5 to 7.0 MB over the 60 s soak). */
export const HEAP_TOLERANCE_MIN_BYTES = 4 * 1024 * 1024;

/** When the heap is warm: a tenth of the run, at least 2 s and at most 5 s (so a 10 s run is judged on 8 s, a 60 s run on 55 s). */
export function warmupSeconds(durationS: number): number {
  return Math.min(5, Math.max(2, Math.floor(durationS / 10)));
}

/**
 * A full garbage collection: `global.gc` when node runs with `--expose-gc` (as `npm run soak`
 * does), else the same function taken from a fresh V8 context after turning the flag on (what
 * jest's leak detector does; under Vitest, say). Undefined when neither works: the samples then
 * include garbage and the report says so.
 */
export function fullGc(): (() => void) | undefined {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc: unknown = runInNewContext('gc');
    return typeof gc === 'function' ? (gc as () => void) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Samples `heapUsed` once a second on `node`'s clock, from `start()` to `stop()`. Its warm-up and the
 * span of its samples count on the node's timers' time (monotonic on the real clock): a step of the
 * wall clock neither ends the warm-up early nor holds it back.
 */
export class HeapSampler {
  readonly #node: Node;
  readonly #kernel: Kernel;
  readonly #gc: (() => void) | undefined;
  readonly #heapUsed: () => number;
  readonly #warmupMs: number;
  readonly #warmupS: number;
  /** Bytes at each second of the load from the warm-up on. */
  readonly #samples: number[] = [];
  /** When the first sample was taken, on the timers' time. */
  #firstAt: number | undefined = undefined;
  #startedAt = 0;
  /** When the last sample was taken, on the timers' time. */
  #sampledAt = -Infinity;
  /** When the load ended ({@link endLoad}), on the timers' time. */
  #loadEndedAt: number | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;

  /** `heapUsed` reads the heap after each full GC (a test passes its own figures). */
  constructor(node: Node, durationS: number, gc: (() => void) | undefined = fullGc(), heapUsed: () => number = () => process.memoryUsage().heapUsed) {
    this.#node = node;
    this.#kernel = kernelOf(node, 'node');
    this.#gc = gc;
    this.#heapUsed = heapUsed;
    this.#warmupS = warmupSeconds(durationS);
    this.#warmupMs = this.#warmupS * 1000;
  }

  start(): void {
    this.#startedAt = this.#kernel.timerNow();
    this.#arm();
  }

  #arm(): void {
    this.#timer = this.#node.clock.setTimer(1000, () => {
      this.#timer = undefined;
      if (this.#kernel.timerNow() - this.#startedAt >= this.#warmupMs) this.#samples.push(this.#sample());
      this.#arm();
    });
  }

  #sample(): number {
    this.#sampledAt = this.#kernel.timerNow();
    this.#firstAt ??= this.#sampledAt;
    this.#gc?.();
    return this.#heapUsed();
  }

  /**
   * The load is over: no more samples once a second. The end sample waits for {@link stop}, once
   * what the load left behind has drained: taken as the load stops, it would count the messages and
   * outcomes still in flight (a loaded machine's backlog) as growth, a leak that is not there.
   */
  endLoad(): void {
    if (this.#timer !== undefined) this.#node.clock.clearTimer(this.#timer);
    this.#timer = undefined;
    this.#loadEndedAt ??= this.#kernel.timerNow();
  }

  /**
   * Stops sampling and takes the end sample now: after {@link endLoad}, the heap once the load has
   * drained, always; without it (the load ends now), unless a sample was taken at this very time, so
   * that `end` is the heap at the end of the load however late a loaded machine ran the sampling timer.
   */
  stop(): void {
    const drained = this.#loadEndedAt !== undefined;
    this.endLoad();
    if (drained || this.#samples.length === 0 || this.#sampledAt !== this.#kernel.timerNow()) this.#samples.push(this.#sample());
  }

  report(): HeapReport {
    const samples = this.#samples;
    const startBytes = samples[0] ?? 0;
    const endBytes = samples[samples.length - 1] ?? 0;
    const maxBytes = samples.reduce((a, b) => Math.max(a, b), 0);
    const toleranceBytes = Math.max(HEAP_TOLERANCE_MIN_BYTES, Math.round(startBytes * HEAP_TOLERANCE_FRACTION));
    const growthBytes = endBytes - startBytes;
    return {
      samples: samples.length,
      gc: this.#gc !== undefined,
      warmupS: this.#warmupS,
      startBytes,
      endBytes,
      maxBytes,
      growthBytes,
      toleranceBytes,
      flat: growthBytes <= toleranceBytes,
      // the span of the load's samples: the drain after it proves nothing of the load
      measured: samples.length >= 2 && this.#firstAt !== undefined && Math.min(this.#sampledAt, this.#loadEndedAt ?? this.#sampledAt) - this.#firstAt >= 1000,
      series: [...samples],
    };
  }
}

/** Bytes as MB with one decimal. */
export function mb(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/** The heap line of a report. */
export function heapLine(h: HeapReport): string {
  // no '-0.0 MB': a shrink under 0.05 MB reads as +0.0
  const growth = `${h.growthBytes >= 0 || mb(-h.growthBytes) === mb(0) ? '+' : '-'}${mb(Math.abs(h.growthBytes))}`;
  if (!h.measured) {
    return `heap not measured: the load ended within a second of its warm-up (${h.warmupS} s), ${h.samples} sample${h.samples === 1 ? '' : 's'} at ${mb(h.endBytes)}; a run longer than ${h.warmupS + 1} s measures it`;
  }
  return (
    `heap start ${mb(h.startBytes)} (at ${h.warmupS} s), end ${mb(h.endBytes)}, max ${mb(h.maxBytes)}: ${growth}, ` +
    `${h.flat ? 'flat' : 'GREW'} (tolerance ${mb(h.toleranceBytes)}: ${HEAP_TOLERANCE_FRACTION * 100}% of start, at least ${mb(HEAP_TOLERANCE_MIN_BYTES)}; ` +
    `${h.samples} samples${h.gc ? ', each after a full GC' : ', NO forced GC: samples include garbage'})`
  );
}
