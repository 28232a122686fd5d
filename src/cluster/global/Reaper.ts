/**
 * @internal The reaping of names whose owner is dead. A name is hidden (from `whereis`, `names`,
 * `send`) once its owner's node was seen down, or its lease plus the margin has passed on this
 * node's clock; it is deleted by compare-and-set on the revision read, only once `lease + marginMs`
 * has passed here (no TTLs: nats-server 2.9 does not report expiry), so a renewal that lands first
 * wins. The nodes seen down are remembered (the last {@link DOWN_REMEMBERED}) until they come back.
 */
import type { KV } from '@nats-io/kv';
import type { Kernel } from '../../runtime/kernel.js';
import { type Entry, nameKey, type NameRecord, ownerPid } from './store.js';

/** How many down nodes (`node:incarnation`) a registry remembers. */
const DOWN_REMEMBERED = 1024;
/**
 * The longest reap timer (ms). A lease read from the bucket may end far ahead (its owner's clock ran
 * ahead, or anyone wrote it): past a Node timer's range (2^31 - 1 ms) a timer fires after 1 ms, and a
 * reap not yet due would wait again every millisecond. A timer that fires early waits again.
 */
const MAX_WAIT_MS = 2 ** 30;

/** What the reaper needs of its registry. */
export interface ReaperHost {
  readonly kernel: Kernel;
  readonly kv: KV;
  readonly marginMs: number;
  /** The names cache, as the watch tells. */
  readonly names: ReadonlyMap<string, Entry>;
  /** True when a process of this node holds `name` (its own node renews or fences it, never reaps it). */
  owns(name: string): boolean;
  /** True once the registry stopped (nothing more is scheduled). */
  stopped(): boolean;
  track<T>(work: Promise<T>): Promise<T>;
}

export class Reaper {
  readonly #host: ReaperHost;
  /** `node:incarnation` of nodes this node saw go down (their names are hidden and reaped). */
  readonly #down = new Set<string>();
  readonly #reaps = new Map<string, NodeJS.Timeout>();

  constructor(host: ReaperHost) {
    this.#host = host;
  }

  /** Reaps pending. */
  get pending(): number {
    return this.#reaps.size;
  }

  /** False for a node this node saw go down, and for an earlier incarnation of this node. */
  alive(node: string, inc: number): boolean {
    const kernel = this.#host.kernel;
    if (node === kernel.name) return inc === kernel.creation;
    return !this.#down.has(`${node}:${inc}`);
  }

  /** True once `record`'s lease plus the margin has passed on this clock: its owner has fenced itself, the name may be taken. */
  expired(record: NameRecord): boolean {
    return Date.now() > record.lease + this.#host.marginMs;
  }

  /** The cache's entry of `name` when its owner is alive and its lease not expired; undefined otherwise. */
  visible(name: string): Entry | undefined {
    const entry = this.#host.names.get(name);
    return entry !== undefined && this.alive(entry.record.node, entry.record.inc) && !this.expired(entry.record) ? entry : undefined;
  }

  /** The watch told of `name`'s record: reaped in time when its owner is dead or its lease expired. */
  changed(name: string, record: NameRecord | undefined): void {
    if (record === undefined) {
      // released (or reaped) meanwhile: a reap still pending for it has nothing left to do
      const t = this.#reaps.get(name);
      if (t !== undefined) clearTimeout(t);
      this.#reaps.delete(name);
      return;
    }
    if (!this.alive(record.node, record.inc) || this.expired(record)) this.schedule(name);
  }

  /** Names whose owner stopped renewing without anyone seeing its node go down (it died before this node started, or while nobody watched). */
  reapExpired(): void {
    // past lease + margin the owner has fenced itself
    for (const [name, entry] of this.#host.names) if (!this.#host.owns(name) && this.expired(entry.record)) this.schedule(name);
  }

  /** What an earlier incarnation of this node left behind is dead for sure. */
  reapEarlierIncarnations(): void {
    const kernel = this.#host.kernel;
    for (const [name, entry] of this.#host.names) if (entry.record.node === kernel.name && entry.record.inc !== kernel.creation) this.schedule(name);
  }

  /** `node` went down as incarnation `inc`: its names are hidden now and reaped once their leases are due. */
  nodeDown(node: string, inc: number): void {
    this.#down.add(`${node}:${inc}`);
    if (this.#down.size > DOWN_REMEMBERED) this.#down.delete(this.#down.values().next().value!);
    for (const [name, entry] of this.#host.names) if (entry.record.node === node && entry.record.inc === inc) this.schedule(name);
  }

  /** `node` is up again as incarnation `inc` (it was only unreachable): its names show again, their reaps are called off. */
  nodeUp(node: string, inc: number): void {
    if (!this.#down.delete(`${node}:${inc}`)) return;
    for (const [name, entry] of this.#host.names) {
      if (entry.record.node !== node || entry.record.inc !== inc) continue;
      const t = this.#reaps.get(name);
      if (t !== undefined) clearTimeout(t);
      this.#reaps.delete(name);
    }
  }

  /** Reaps `name` once its owner's lease plus the margin has passed here: CAS delete on the revision read. */
  schedule(name: string): void {
    const host = this.#host;
    if (host.stopped() || this.#reaps.has(name)) return;
    const entry = host.names.get(name);
    if (entry === undefined) return;
    const wait = Math.min(MAX_WAIT_MS, Math.max(0, entry.record.lease + host.marginMs + 1 - Date.now()));
    this.#reaps.set(
      name,
      setTimeout(() => {
        this.#reaps.delete(name);
        const current = host.names.get(name);
        if (current === undefined || host.owns(name)) return;
        if (!this.expired(current.record)) {
          // not yet due: wait on for a node seen down (a node back up cleared it); a renewed lease is left alone
          if (!this.alive(current.record.node, current.record.inc)) this.schedule(name);
          return;
        }
        host.track(host.kv.delete(nameKey(name), { previousSeq: current.revision })).then(
          () => host.kernel.telemetry.execute('keel.global.reaped', {}, { name, pid: ownerPid(host.kernel, current.record.node, current.record.inc, current.record.id), lease: current.record.lease, revision: current.revision }),
          () => undefined, // renewed or reaped by another node: the watch brings the news (and a new reap if still due)
        );
      }, wait),
    );
  }

  /** Calls off every pending reap (the registry stops). */
  stop(): void {
    for (const t of this.#reaps.values()) clearTimeout(t);
    this.#reaps.clear();
  }
}
