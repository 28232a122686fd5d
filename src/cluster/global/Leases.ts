/**
 * @internal The leases of the names this node's processes hold. The owner's node renews each lease
 * by compare-and-set every `leaseMs / 3`; an owner whose lease runs out (a frozen or cut-off node, a
 * failed renewal) is fenced at the deadline, on the monotonic or the wall clock, whichever comes
 * first: its process is killed with `{ shutdown: { fenced: name } }` before it could act on a name
 * another node may take. A node that learns it lost a name (the watch shows another owner, a
 * renewal's compare-and-set fails) sends the process `{ shutdown: { name_conflict: name } }`.
 */
import type { KV } from '@nats-io/kv';
import { isDead, type Kernel, type Proc } from '../../runtime/kernel.js';
import type { Pid } from '../../runtime/Pid.js';
import { decodeRecord, encodeRecord, isCasFailure, type NameRecord } from './store.js';

/** The exit reason of a process that lost its global name: fenced (its lease ran out) or a conflict (another node owns the name). */
export type GlobalExitReason = { shutdown: { fenced: string } } | { shutdown: { name_conflict: string } };

/** The name a process was fenced from, when `reason` is a fencing exit. */
export function fencedName(reason: unknown): string | undefined {
  return shutdownField(reason, 'fenced');
}

/** The name a process lost to another owner, when `reason` is a `name_conflict` exit. */
export function conflictName(reason: unknown): string | undefined {
  return shutdownField(reason, 'name_conflict');
}

function shutdownField(reason: unknown, field: string): string | undefined {
  if (typeof reason !== 'object' || reason === null) return undefined;
  const inner = (reason as { shutdown?: unknown }).shutdown;
  if (typeof inner !== 'object' || inner === null) return undefined;
  const value = (inner as Record<string, unknown>)[field];
  return typeof value === 'string' ? value : undefined;
}

/** A name this node's process holds. */
export interface Owned {
  readonly name: string;
  readonly key: string;
  readonly proc: Proc;
  readonly pid: Pid;
  /** The last revision this holding wrote (a renewal that lands after the name was dropped included). */
  revision: number;
  /** Epoch ms on this node's wall clock: the lease deadline written to the bucket (what other nodes compare with). */
  deadline: number;
  /**
   * The same deadline on this process's monotonic clock (`performance.now()`): global-name messages
   * are delivered before both, the process is fenced at the first. A wall clock stepped back (NTP)
   * must not stretch the owner's own lease while the other nodes read the deadline written.
   */
  until: number;
  renewing: boolean;
  /** The renewal in flight: settles once it landed (and, when the name was dropped meanwhile, once its revision is deleted). */
  renewal: Promise<void> | undefined;
  /** Dropped while a renewal was in flight: that renewal's revision is deleted when it lands. */
  released: boolean;
  fence: NodeJS.Timeout | undefined;
  unhook: (() => void) | undefined;
}

/** What the leases need of their registry. */
export interface LeasesHost {
  readonly kernel: Kernel;
  readonly kv: KV;
  readonly leaseMs: number;
  track<T>(work: Promise<T>): Promise<T>;
  /**
   * `own` was dropped at once because its process died or was fenced (no renewal renews it from
   * then on): the registry deletes the name ({@link Leases.deleteKey}) in its turn among this node's
   * operations on the name, so a `register` called after the death or the fence waits for the delete.
   */
  freed(own: Owned): void;
}

/**
 * Whether an owner's lease ran out on this node: on either clock. The monotonic one is immune to a
 * wall clock stepped back (NTP); the wall clock counts a machine's suspension, which a monotonic
 * clock may not. Either one past the deadline, and the owner stops acting.
 */
export function leaseOver(own: Owned): boolean {
  return performance.now() >= own.until || Date.now() >= own.deadline;
}

export class Leases {
  readonly #host: LeasesHost;
  readonly #owned = new Map<string, Owned>();

  constructor(host: LeasesHost) {
    this.#host = host;
  }

  /** The holding of `name` by a process of this node, if any. */
  get(name: string): Owned | undefined {
    return this.#owned.get(name);
  }

  has(name: string): boolean {
    return this.#owned.has(name);
  }

  get size(): number {
    return this.#owned.size;
  }

  /** Records a name just written for `proc` at `revision`: released when the process exits (its delete by the host, see {@link LeasesHost.freed}), fenced at the deadline. */
  hold(name: string, key: string, proc: Proc, revision: number, deadline: number, until: number): void {
    const kernel = this.#host.kernel;
    const own: Owned = { name, key, proc, pid: proc.self, revision, deadline, until, renewing: false, renewal: undefined, released: false, fence: undefined, unhook: undefined };
    this.#owned.set(name, own);
    own.unhook = kernel.onProcExit(proc, () => this.#exited(own));
    this.#armFence(own);
    kernel.telemetry.execute('keel.global.registered', {}, { name, pid: own.pid, revision });
  }

  /** The watch told of `name` at `revision`: a later revision that is not this process's record means another owner. */
  observed(name: string, record: NameRecord | undefined, revision: number): void {
    const own = this.#owned.get(name);
    if (own === undefined || revision <= own.revision) return;
    const kernel = this.#host.kernel;
    const mine = record !== undefined && record.node === kernel.name && record.inc === kernel.creation && record.id === own.pid.id;
    if (mine) own.revision = revision;
    else this.#lose(own);
  }

  /** Renews every lease held here by compare-and-set (one renewal in flight per name); fences those already over. */
  renewAll(): void {
    const { kernel, kv, leaseMs } = this.#host;
    for (const own of [...this.#owned.values()]) {
      if (own.renewing) continue;
      if (leaseOver(own)) {
        this.fence(own);
        continue;
      }
      own.renewing = true;
      const until = performance.now() + leaseMs;
      const deadline = Date.now() + leaseMs;
      const value = encodeRecord({ node: kernel.name, inc: kernel.creation, id: own.pid.id, lease: deadline });
      own.renewal = this.#host.track(kv.update(own.key, value, own.revision)).then(
        (revision) => {
          own.renewing = false;
          if (own.released || this.#owned.get(own.name) !== own) {
            // dropped (fenced, released) meanwhile: this revision is ours, so it goes (and it is the
            // last one this holding wrote: the cache ignores the watch's entries of the name up to it)
            if (revision > own.revision) own.revision = revision;
            return this.#host.track(kv.delete(own.key, { previousSeq: revision })).catch(() => undefined);
          }
          if (revision > own.revision) own.revision = revision;
          own.deadline = deadline;
          own.until = until;
          this.#armFence(own);
          kernel.telemetry.execute('keel.global.renewed', {}, { name: own.name, pid: own.pid, revision, deadline });
        },
        (e: unknown) => {
          own.renewing = false;
          if (this.#owned.get(own.name) !== own) {
            // released meanwhile: the renewal may have landed all the same (its answer lost), at a
            // revision this node never learnt; what the bucket holds for this holding goes
            if (own.released) return this.#deleteOurs(own).catch(() => undefined);
            return;
          }
          if (isCasFailure(e)) this.#lose(own);
          else kernel.telemetry.execute('keel.global.renew_failed', { count: 1 }, { name: own.name, pid: own.pid, error: e });
        },
      );
    }
  }

  #armFence(own: Owned): void {
    if (own.fence !== undefined) clearTimeout(own.fence);
    own.fence = setTimeout(() => {
      own.fence = undefined;
      if (this.#owned.get(own.name) === own && leaseOver(own)) this.fence(own);
      else if (this.#owned.get(own.name) === own) this.#armFence(own);
    }, Math.max(0, Math.ceil(Math.min(own.until - performance.now(), own.deadline - Date.now()))));
  }

  /**
   * The lease ran out on this node's clock: the process stops acting (killed) and the holding is
   * dropped at once; the name's delete takes its turn among this node's operations on it (the host's).
   */
  fence(own: Owned): void {
    const kernel = this.#host.kernel;
    this.#drop(own);
    kernel.telemetry.execute('keel.global.fenced', {}, { name: own.name, pid: own.pid });
    if (!isDead(own.proc)) kernel.die(own.proc, { shutdown: { fenced: own.name } });
    this.#host.freed(own);
  }

  /** The process holding `own` died: the holding is dropped at once, the name's delete takes its turn (the host's). */
  #exited(own: Owned): void {
    if (this.#owned.get(own.name) !== own) return;
    this.#drop(own);
    this.#host.kernel.telemetry.execute('keel.global.released', {}, { name: own.name, pid: own.pid, reason: 'exit' });
    this.#host.freed(own);
  }

  /** Another owner holds the name now: the process is told with a trappable exit signal. */
  #lose(own: Owned): void {
    const kernel = this.#host.kernel;
    this.#drop(own);
    kernel.telemetry.execute('keel.global.name_conflict', {}, { name: own.name, pid: own.pid });
    if (!isDead(own.proc)) kernel.exitSignal(own.pid, 'node', { shutdown: { name_conflict: own.name } });
  }

  /** Drops `own` if still held, and deletes the name. */
  async release(own: Owned, reason: 'unregistered' | 'stopped'): Promise<void> {
    if (this.#owned.get(own.name) !== own) return;
    this.#drop(own);
    this.#host.kernel.telemetry.execute('keel.global.released', {}, { name: own.name, pid: own.pid, reason });
    await this.deleteKey(own);
  }

  /** Releases every name held here (the registry stops). */
  releaseAll(): void {
    for (const own of [...this.#owned.values()]) void this.release(own, 'stopped');
  }

  #drop(own: Owned): void {
    this.#owned.delete(own.name);
    if (own.fence !== undefined) clearTimeout(own.fence);
    own.fence = undefined;
    own.unhook?.();
    own.unhook = undefined;
  }

  /**
   * Deletes the name's entry when it is this holding's record, by CAS on the revision read: a delete
   * on the last revision this node knew would fail against a renewal that landed unanswered, and
   * that renewal would keep the released name for a dead process until its lease ran out.
   */
  async #deleteOurs(own: Owned): Promise<void> {
    const { kernel, kv, track } = this.#host;
    const entry = await track(kv.get(own.key));
    if (entry === null || entry.operation !== 'PUT') return;
    const record = decodeRecord(entry.value);
    if (record === undefined || record.node !== kernel.name || record.inc !== kernel.creation || record.id !== own.pid.id) return;
    if (entry.revision > own.revision) own.revision = entry.revision;
    await track(kv.delete(own.key, { previousSeq: entry.revision }));
  }

  /** Deletes the name of a dropped holding by CAS on our revision (a renewal in flight deletes its own when it lands: this waits for that). */
  deleteKey(own: Owned): Promise<void> {
    own.released = true;
    if (own.renewing) return own.renewal ?? Promise.resolve();
    return this.#host.track(this.#host.kv.delete(own.key, { previousSeq: own.revision })).catch(() => undefined);
  }
}
