/**
 * The overview: the node's figures now (processes, run queue, heap, message rate, event-loop lag
 * and utilization, dead letters, suspected leaks) and what the observer allows.
 */
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import { isKeelError } from '../errors.js';
import { kernelOf } from '../runtime/kernel.js';
import type { Node } from '../runtime/types.js';

export interface Overview {
  readonly node: string;
  readonly at: number;
  readonly uptimeMs: number;
  readonly processes: number;
  readonly runQueue: number;
  readonly timers: number;
  /** Mean and max of the event-loop delay since the last sample, while a client watches; null otherwise. */
  readonly eventLoopLagMs: { readonly mean: number; readonly max: number; readonly p99: number } | null;
  /** The event loop's utilization since the previous overview (`performance.eventLoopUtilization`), 0 to 100; null for the first. */
  readonly busyPercent: number | null;
  readonly heap: { readonly used: number; readonly total: number; readonly rss: number };
  /** Messages handled per second by the live processes since the previous overview (null for the first). */
  readonly messageRate: number | null;
  readonly deadLetters: { readonly pending: number; readonly parked: number } | null;
  readonly suspectedLeaks: number | null;
  /** The observer refuses kill, retry, redrive and purge: the page hides them. */
  readonly readOnly: boolean;
  /** The observer shows dead letters' payloads. */
  readonly allowPayloads: boolean;
}

/** A reading of the figures the rates are measured over. */
interface Reading {
  readonly at: number;
  readonly handled: number;
  readonly elu: EventLoopUtilization;
}

/** The shortest window a rate is measured over (ms). */
export const MIN_WINDOW_MS = 250;

/** Reads the node's figures; holds the previous sample (for the rates) and the lag histogram while enabled. */
export class Sampler {
  readonly #node: Node;
  readonly #flags: { readonly readOnly: boolean; readonly allowPayloads: boolean };
  /** The reading the rates are measured from, and the one after it (see {@link Sampler.overview}). */
  #anchor: Reading | undefined;
  #latest: Reading | undefined;
  #lag: IntervalHistogram | undefined;

  constructor(node: Node, flags: { readonly readOnly: boolean; readonly allowPayloads: boolean }) {
    this.#node = node;
    this.#flags = flags;
  }

  /** Starts measuring the event-loop delay (while a client watches). */
  watchLag(on: boolean): void {
    if (on && this.#lag === undefined) {
      this.#lag = monitorEventLoopDelay({ resolution: 20 });
      this.#lag.enable();
    } else if (!on && this.#lag !== undefined) {
      this.#lag.disable();
      this.#lag = undefined;
    }
  }

  async overview(): Promise<Overview> {
    const node = this.#node;
    const kernel = kernelOf(node, 'node');
    const internals = kernel.internals();
    let handled = internals.handledByDead; // a process that died takes none of the rate with it
    for (const pid of node.processes()) handled += node.info(pid)?.messagesHandled ?? 0;
    const at = Date.now();
    // rates and the uptime are measured on the timers' time: monotonic on the real clock (a wall
    // clock stepped an hour would make a rate across the step wrong, and the uptime jump or stop),
    // a TestClock's or a simulation's virtual time otherwise
    const now: Reading = { at: kernel.timerNow(), handled, elu: performance.eventLoopUtilization() };
    // Rates are measured over at least MIN_WINDOW_MS: a reading taken sooner than that after the
    // latest one (a second client, `keel top --json`, a GET beside the stream) is measured from the
    // same anchor and moves nothing, so readers do not shrink each other's window.
    if (this.#latest === undefined || now.at - this.#latest.at >= MIN_WINDOW_MS) {
      this.#anchor = this.#latest;
      this.#latest = now;
    }
    // (before two readings MIN_WINDOW_MS apart, from the first one)
    const from = this.#anchor ?? (this.#latest === now ? undefined : this.#latest);
    const messageRate = from === undefined || now.at <= from.at ? null : Math.max(0, Math.round(((handled - from.handled) * 1000) / (now.at - from.at)));
    const busyPercent = from === undefined ? null : round(Math.min(100, Math.max(0, performance.eventLoopUtilization(now.elu, from.elu).utilization * 100)));
    const lag = this.#lag;
    const eventLoopLagMs =
      lag === undefined || lag.count === 0 ? null : { mean: round(lag.mean / 1e6), max: round(lag.max / 1e6), p99: round(lag.percentile(99) / 1e6) };
    lag?.reset();
    const mem = process.memoryUsage();
    return {
      node: node.name,
      at,
      uptimeMs: Math.max(0, now.at - internals.startedAt),
      processes: internals.processes,
      runQueue: internals.runQueue,
      timers: internals.timers,
      eventLoopLagMs,
      busyPercent,
      heap: { used: mem.heapUsed, total: mem.heapTotal, rss: mem.rss },
      messageRate,
      deadLetters: await deadLetterCounts(node),
      suspectedLeaks: node.monitors.available ? node.monitors.findLeaks().length : null,
      readOnly: this.#flags.readOnly,
      allowPayloads: this.#flags.allowPayloads,
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function deadLetterCounts(node: Node): Promise<Overview['deadLetters']> {
  if (!node.deadLetters.available) return null;
  try {
    const s = await node.deadLetters.stats();
    return { pending: s.pending, parked: s.parked };
  } catch (e) {
    if (isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')) return null;
    throw e;
  }
}
