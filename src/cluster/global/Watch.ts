/**
 * @internal The KV watch that feeds a global registry's cache: it applies each entry to the names
 * cache (and the leases and reaps that follow it), to the groups, and to the sync keys; a watch that
 * ends while the registry runs, or brings nothing for {@link WATCH_STALL_MS} while a sync waits, is
 * opened again from the last revision seen. Its timers are the host's: they check the watch, a
 * client of the NATS server, not the node's time.
 */
import type { KV, KvWatchEntry } from '@nats-io/kv';
import type { Kernel } from '../../runtime/kernel.js';
import type { Groups } from './Groups.js';
import type { Leases } from './Leases.js';
import type { Reaper } from './Reaper.js';
import { type Entry, type NameRecord, parseKey } from './store.js';

/** How long a sync waits for the watch to bring anything before the watch is opened again (ms). */
const WATCH_STALL_MS = 2000;

/** What the watch needs of its registry. */
export interface WatchHost {
  readonly kernel: Kernel;
  readonly kv: KV;
  /** The names cache the watch feeds. */
  readonly names: Map<string, Entry>;
  readonly leases: Leases;
  readonly reaper: Reaper;
  readonly groups: Groups;
  /** True once the registry stopped (nothing more is opened or written). */
  stopped(): boolean;
  /** True while a sync waits for the watch (the stall check runs only then). */
  waiting(): boolean;
  /** An entry was applied: the watch has brought the bucket up to `seen`. */
  reached(seen: number): void;
  /** Tracks a write of the registry's (the stop waits for it). */
  track<T>(work: Promise<T>): Promise<T>;
}

export class Watch {
  readonly #host: WatchHost;
  #seen = 0;
  /**
   * Names this node deleted from the cache before the watch brought the delete (an unregister reads
   * its own delete), each by the revision it deleted: the watch's entries of the name up to it are
   * older news. Kept until the watch has brought that revision: its later entries are all newer.
   */
  readonly #gone = new Map<string, number>();
  #watch: Awaited<ReturnType<KV['watch']>> | undefined;
  #stallTimer: NodeJS.Timeout | undefined;
  #reopening = false;
  /** A watch that could not be opened again is tried again when this fires (one at a time). */
  #reopenTimer: NodeJS.Timeout | undefined;

  constructor(host: WatchHost) {
    this.#host = host;
  }

  /** The last revision the watch brought. */
  get seen(): number {
    return this.#seen;
  }

  /**
   * Opens the watch that feeds the cache (from `from`, a revision, or the bucket's last values). A
   * watch that ends while the registry runs (its consumer gone for good) is opened again from the
   * last revision seen; entries of a watch replaced meanwhile are left to the new one.
   */
  async open(from: number | undefined): Promise<void> {
    const host = this.#host;
    const watch = await host.kv.watch(from === undefined ? undefined : { resumeFromRevision: from });
    if (host.stopped()) return void watch.stop();
    this.#watch = watch;
    void (async () => {
      for await (const e of watch) {
        if (this.#watch !== watch) break;
        try {
          this.#apply(e);
        } catch (error) {
          // one bad entry (or a throwing event handler) must not end the watch that feeds the cache
          host.kernel.telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key, error });
        }
      }
    })()
      .catch(() => undefined)
      .then(() => {
        if (this.#watch === watch) this.#reopen('ended');
      });
  }

  /**
   * While a sync waits, the watch must bring its write back: a watch that brings nothing for
   * {@link WATCH_STALL_MS} (a push consumer that lost its deliveries: the client's own check takes
   * two missed 30 s heartbeats) is opened again from the last revision seen.
   */
  stalls(): void {
    if (this.#stallTimer !== undefined) return;
    const seen = this.#seen;
    this.#stallTimer = setTimeout(() => {
      this.#stallTimer = undefined;
      if (this.#host.stopped() || !this.#host.waiting()) return;
      if (this.#seen === seen) this.#reopen('stalled');
      this.stalls();
    }, WATCH_STALL_MS).unref();
  }

  /**
   * Read your own write: this node wrote `name` at `revision` (`record`), or deleted the write at
   * `revision` (`undefined`), and the cache takes it now, before the watch brings it back. The
   * watch's entries of the name up to `revision`, still on their way, are then ignored: `whereis`
   * never goes back to an older holder. A write the watch already brought (or passed), or a delete
   * of a write the cache already holds a later one of, changes nothing.
   */
  wrote(name: string, record: NameRecord | undefined, revision: number): void {
    const host = this.#host;
    if (record !== undefined) {
      if (revision <= this.#seen || revision <= this.#applied(name)) return;
      host.names.set(name, { record, revision });
      return;
    }
    // the delete of the write at `revision`: a later write of the name stays
    if (revision < this.#applied(name)) return;
    host.names.delete(name);
    if (revision > this.#seen) this.#gone.set(name, revision);
    host.reaper.changed(name, undefined);
  }

  /** Stops the watch and its timers. */
  stop(): void {
    this.#watch?.stop();
    this.#watch = undefined;
    clearTimeout(this.#stallTimer);
    clearTimeout(this.#reopenTimer);
  }

  #reopen(reason: 'stalled' | 'ended'): void {
    const host = this.#host;
    // a failed open already waits to be tried again: the stall check begins no second chain of tries
    if (host.stopped() || this.#reopening || this.#reopenTimer !== undefined) return;
    const from = this.#seen + 1;
    const old = this.#watch;
    this.#watch = undefined;
    old?.stop();
    host.kernel.telemetry.execute('keel.global.watch_restarted', {}, { node: host.kernel.name, reason, from });
    this.#reopening = true;
    this.open(from)
      .catch(() => {
        // the bucket cannot be reached now: tried again a while later
        this.#reopenTimer = setTimeout(() => {
          this.#reopenTimer = undefined;
          if (this.#watch === undefined) this.#reopen(reason);
        }, WATCH_STALL_MS).unref();
      })
      .finally(() => (this.#reopening = false));
  }

  #apply(e: KvWatchEntry): void {
    const host = this.#host;
    const telemetry = host.kernel.telemetry;
    if (e.revision > this.#seen) this.#seen = e.revision;
    const parsed = parseKey(e.key, e.operation === 'PUT' ? e.value : undefined);
    if (parsed.kind === 'name') {
      if (e.operation === 'PUT' && parsed.record === undefined) telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key });
      this.#nameChanged(parsed.name, parsed.record, e.revision);
    } else if (parsed.kind === 'member') host.groups.changed(e.key, parsed, e.operation === 'PUT');
    else if (parsed.kind === 'sync') {
      // the sync key of a dead incarnation (a crash skipped its stop): it never comes back, so it goes
      if (e.operation === 'PUT' && parsed.node !== undefined && parsed.inc !== undefined && !host.reaper.alive(parsed.node, parsed.inc) && !host.stopped()) {
        void host.track(host.kv.delete(e.key)).catch(() => undefined);
      }
    }
    else if (parsed.kind === 'unknown') telemetry.execute('keel.global.malformed', { count: 1 }, { key: e.key });
    // the watch brings revisions in order: the names deleted ahead of it up to here are caught up
    for (const [name, revision] of this.#gone) if (revision <= this.#seen) this.#gone.delete(name);
    host.reached(this.#seen);
  }

  /** The revision of `name` the cache holds: its entry's, or the one this node deleted ahead of the watch (0: none). */
  #applied(name: string): number {
    return this.#host.names.get(name)?.revision ?? this.#gone.get(name) ?? 0;
  }

  #nameChanged(name: string, record: NameRecord | undefined, revision: number): void {
    const host = this.#host;
    // older than what the cache holds (this node's own write, read before the watch brought it back):
    // applied, it would show an earlier holder, or none, until the watch caught up
    if (revision <= this.#applied(name)) return;
    this.#gone.delete(name);
    if (record === undefined) host.names.delete(name);
    else host.names.set(name, { record, revision });
    host.leases.observed(name, record, revision);
    host.reaper.changed(name, record);
  }
}
