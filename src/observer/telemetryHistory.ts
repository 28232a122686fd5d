/**
 * Telemetry history kept on the server while the observer runs: per-second buckets of event counts
 * by name, and the overview's figures at each sample, in rings of {@link HISTORY_SECONDS}. So a
 * reloaded page shows the last minutes at once. It listens only to the events it is given (by
 * default {@link DEFAULT_HISTORY_EVENTS}, none of them on a per-message path: attaching to one makes
 * its emitter build the event), and detaches when the observer closes.
 */
import { randomBytes } from 'node:crypto';
import type { Node } from '../runtime/types.js';
import type { Overview } from './overview.js';

/** How many seconds of history are kept (15 minutes). */
export const HISTORY_SECONDS = 900;
/** At most this many distinct event names are counted; the rest count as `'(other)'`. */
export const MAX_EVENT_NAMES = 200;

/**
 * The events counted by default: the rare ones (restarts, dead letters, drops, long mailboxes, leaks,
 * workflows, circuits, the cluster, the observer's own actions). Per-message events
 * (`keel.process.spawned`, `keel.gen_server.call`, `keel.signal_router.deliver`...) are left out:
 * listening to them would cost every message. So is `keel.process.long_schedule`: while anyone
 * listens to it the scheduler times every turn (two clock reads), which took a third of
 * `pingpong`'s rate with an observer started; name it in `telemetryEvents` to count it.
 */
export const DEFAULT_HISTORY_EVENTS: readonly string[] = [
  'keel.supervisor.*',
  'keel.dead_letter_queue.*',
  'keel.message.dropped',
  'keel.process.long_mailbox',
  'keel.process.long_mailbox_cleared',
  'keel.process.zombie_call',
  'keel.gen_server.unexpected_message',
  'keel.monitor_manager.leaks_detected',
  'keel.coordinator.*',
  'keel.coordination_manager.*',
  'keel.agent_registry.*',
  'keel.agent_scheduler.*',
  'keel.signal_router.dropped',
  'keel.cluster.*',
  'keel.global.*',
  'keel.node.shutdown',
  'keel.observer.action',
  'keel.observer.stream_dropped',
  'keel.telemetry.handler_failed',
];

/** One second of event counts. */
export interface Bucket {
  /** The second's start (ms since the epoch). */
  readonly at: number;
  readonly counts: Record<string, number>;
}

/** The overview's figures at one sample. */
export interface SeriesPoint {
  readonly at: number;
  readonly processes: number;
  readonly runQueue: number;
  readonly messageRate: number | null;
  readonly heapUsed: number;
  readonly lag: number | null;
  readonly busyPercent: number | null;
}

export interface TelemetrySnapshot {
  readonly buckets: Bucket[];
  /** Every event name counted in the window, sorted. */
  readonly names: string[];
  readonly series: SeriesPoint[];
  /** The events listened to (names and `prefix*` patterns). */
  readonly events: readonly string[];
}

export class TelemetryHistory {
  readonly #node: Node;
  readonly #events: readonly string[];
  readonly #id = `keel.observer.history.${randomBytes(6).toString('hex')}`;
  readonly #now: () => number;
  readonly #buckets: { at: number; counts: Map<string, number> }[] = [];
  readonly #series: SeriesPoint[] = [];
  readonly #names = new Set<string>();
  #attached = false;

  constructor(node: Node, events: readonly string[], now: () => number = Date.now) {
    this.#node = node;
    this.#events = events;
    this.#now = now;
  }

  start(): void {
    if (this.#attached || this.#events.length === 0) return;
    this.#node.telemetry.attach(this.#id, this.#events, (event) => this.count(event));
    this.#attached = true;
  }

  stop(): void {
    if (!this.#attached) return;
    this.#node.telemetry.detach(this.#id);
    this.#attached = false;
  }

  /** Counts one event named `name` in the current second. */
  count(name: string): void {
    const at = Math.floor(this.#now() / 1000) * 1000;
    let last = this.#buckets[this.#buckets.length - 1];
    if (last === undefined || last.at !== at) {
      last = { at, counts: new Map() };
      this.#buckets.push(last);
      this.#trim(this.#buckets, at);
    }
    let key = name;
    if (!this.#names.has(name)) {
      if (this.#names.size >= MAX_EVENT_NAMES) key = '(other)';
      else this.#names.add(name);
    }
    last.counts.set(key, (last.counts.get(key) ?? 0) + 1);
  }

  /** Keeps the overview's figures of one sample. */
  record(o: Overview): void {
    this.#series.push({
      at: o.at,
      processes: o.processes,
      runQueue: o.runQueue,
      messageRate: o.messageRate,
      heapUsed: o.heap.used,
      lag: o.eventLoopLagMs?.mean ?? null,
      busyPercent: o.busyPercent,
    });
    this.#trim(this.#series, o.at);
  }

  #trim(ring: { at: number }[], now: number): void {
    const from = now - HISTORY_SECONDS * 1000;
    let drop = 0;
    while (drop < ring.length && ring[drop]!.at <= from) drop++;
    if (drop > 0) ring.splice(0, drop);
    if (ring.length > HISTORY_SECONDS * 10) ring.splice(0, ring.length - HISTORY_SECONDS * 10);
  }

  /** The last `windowSeconds` of history. */
  snapshot(windowSeconds = HISTORY_SECONDS): TelemetrySnapshot {
    const from = this.#now() - windowSeconds * 1000;
    const buckets = this.#buckets.filter((b) => b.at + 1000 > from).map(toBucket);
    const names = new Set<string>();
    for (const b of buckets) for (const n of Object.keys(b.counts)) names.add(n);
    return { buckets, names: [...names].sort(), series: this.#series.filter((p) => p.at > from), events: this.#events };
  }

  /** The buckets from `since` (ms) on: what a `telemetry` frame carries. */
  since(since: number): Bucket[] {
    return this.#buckets.filter((b) => b.at >= since).map(toBucket);
  }
}

function toBucket(b: { at: number; counts: Map<string, number> }): Bucket {
  const counts: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const [k, v] of b.counts) counts[k] = v;
  return { at: b.at, counts };
}
