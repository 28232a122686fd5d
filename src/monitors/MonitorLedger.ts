import { ExitWatcher, type Kernel, monitorSlotOf, type Proc, RemoteMonitorWatch, setMonitorSlot } from '../runtime/kernel.js';
import type { Pid, RefImpl } from '../runtime/Pid.js';
import type { MonitorEntry } from '../runtime/serviceSlots.js';

/**
 * @internal One managed monitor. It sits in two intrusive lists at once, its owner's and its
 * target's, so adding and removing it touches a few pointers and allocates nothing else. Attached
 * to its ref, it is told when a monitor of another node's process ends by its Down.
 */
export class LedgerEntry extends RemoteMonitorWatch {
  readonly ref: RefImpl;
  readonly owner: Bucket;
  readonly target: Bucket;
  readonly tag: string | undefined;
  /** On the node's timers' time (monotonic on the real clock); shown as a date by `view`. */
  readonly createdAt: number;
  readonly stack: string | undefined;
  readonly longLived: boolean;
  /** Reported as a suspected leak already (each monitor counts once). */
  reported = false;
  live = true;
  ownerNext: LedgerEntry | undefined = undefined;
  ownerPrev: LedgerEntry | undefined = undefined;
  targetNext: LedgerEntry | undefined = undefined;
  targetPrev: LedgerEntry | undefined = undefined;

  constructor(ref: RefImpl, owner: Bucket, target: Bucket, tag: string | undefined, createdAt: number, stack: string | undefined, longLived: boolean) {
    super();
    this.ref = ref;
    this.owner = owner;
    this.target = target;
    this.tag = tag;
    this.createdAt = createdAt;
    this.stack = stack;
    this.longLived = longLived;
  }

  /** The monitor of another node's process ended by its Down: the entry goes, as a local target's death takes it. */
  remoteMonitorEnded(): void {
    this.target.ended(this);
  }

  /** Its owner ended the monitor with a plain `ctx.demonitor`: the entry goes, as by the manager's demonitor. */
  demonitored(): void {
    this.owner.demonitored(this);
  }
}

/**
 * @internal A process that owns or is the target of managed monitors: the heads of its two lists,
 * and the exit watcher (itself) that clears them when the process dies. A process of another node is
 * only ever a target: its bucket has no record (`proc` undefined), is watched by no exit watcher (its
 * entries go one by one, as their Downs come), and goes when its last entry does.
 */
export class Bucket extends ExitWatcher {
  readonly proc: Proc | undefined;
  readonly pid: Pid;
  readonly #ledger: MonitorLedger;
  owned: LedgerEntry | undefined = undefined;
  targeted: LedgerEntry | undefined = undefined;
  count = 0;

  constructor(proc: Proc | undefined, pid: Pid, ledger: MonitorLedger) {
    super();
    this.proc = proc;
    this.pid = pid;
    this.#ledger = ledger;
  }

  onExit(): void {
    this.#ledger.died(this);
  }

  /** One entry's monitor of this process of another node ended by its Down. */
  ended(entry: LedgerEntry): void {
    this.#ledger.ended(entry);
  }

  /** One entry it owns was ended by a plain `ctx.demonitor`. */
  demonitored(entry: LedgerEntry): void {
    if (!entry.live) return;
    this.#ledger.remove(entry);
    this.#ledger.onCleaned([entry], 'demonitor');
  }

  /** True when this bucket is `ledger`'s (a ref may come from another node's manager). */
  of(ledger: MonitorLedger): boolean {
    return this.#ledger === ledger;
  }
}

/** @internal What a check found: monitors too old, and owners holding too many monitors on one target. */
export interface LeakFindings {
  readonly old: LedgerEntry[];
  readonly duplicates: LedgerEntry[];
}

/**
 * @internal The node-owned table of managed monitors, indexed `owner → entries` and
 * `target → entries` (a bucket per process, kept in the process's service slot). When either end
 * dies, its bucket's exit watcher removes every entry it is part of, each in O(1), and the bucket
 * goes with its process. It belongs to the node, not to the manager's process, so a crash and
 * restart of that process loses nothing.
 */
export class MonitorLedger {
  readonly #node: Kernel;
  readonly #buckets = new Map<Proc, Bucket>();
  /** The buckets of processes of other nodes that are targets, by pid ("node/creation/id"). */
  readonly #remote = new Map<string, Bucket>();
  readonly onCleaned: (entries: LedgerEntry[], side: 'owner' | 'target' | 'demonitor') => void;
  #size = 0;
  created = 0;
  cleaned = 0;
  leaked = 0;

  constructor(node: Kernel, onCleaned: (entries: LedgerEntry[], side: 'owner' | 'target' | 'demonitor') => void) {
    this.#node = node;
    this.onCleaned = onCleaned;
  }

  get size(): number {
    return this.#size;
  }

  /** Sizes of the indexes, for leak tests: all zero once every owner and target has died. */
  indexSizes(): { entries: number; buckets: number } {
    return { entries: this.#size, buckets: this.#buckets.size + this.#remote.size };
  }

  /** Records a monitor `ref` of `owner` on `target`; both must be alive. */
  add(ref: RefImpl, owner: Proc, target: Proc, tag: string | undefined, createdAt: number, stack: string | undefined, longLived: boolean): LedgerEntry {
    const ob = this.#bucket(owner);
    return this.#link(ref, ob, owner === target ? ob : this.#bucket(target), tag, createdAt, stack, longLived);
  }

  /** Records a monitor `ref` of `owner` on `target`, a process of another node; the entry goes when {@link ended}. */
  addRemote(ref: RefImpl, owner: Proc, target: Pid, tag: string | undefined, createdAt: number, stack: string | undefined, longLived: boolean): LedgerEntry {
    return this.#link(ref, this.#bucket(owner), this.#remoteBucket(target), tag, createdAt, stack, longLived);
  }

  #link(ref: RefImpl, ob: Bucket, tb: Bucket, tag: string | undefined, createdAt: number, stack: string | undefined, longLived: boolean): LedgerEntry {
    const entry = new LedgerEntry(ref, ob, tb, tag, createdAt, stack, longLived);
    const oh = ob.owned;
    entry.ownerNext = oh;
    if (oh !== undefined) oh.ownerPrev = entry;
    ob.owned = entry;
    ob.count++;
    const th = tb.targeted;
    entry.targetNext = th;
    if (th !== undefined) th.targetPrev = entry;
    tb.targeted = entry;
    tb.count++;
    ref.attachment = entry;
    this.#size++;
    this.created++;
    return entry;
  }

  get(ref: RefImpl): LedgerEntry | undefined {
    const entry = ref.attachment;
    // another node's entry (its ref handed to this node's manager) is not found here
    return entry instanceof LedgerEntry && entry.live && entry.owner.of(this) ? entry : undefined;
  }

  /**
   * Removes one entry (a demonitor). The buckets stay until their process dies: a process that
   * monitors once tends to monitor again, and a bucket costs one small object per process.
   */
  remove(entry: LedgerEntry): void {
    if (!entry.live) return;
    this.#unlink(entry);
  }

  *entries(): IterableIterator<LedgerEntry> {
    for (const b of this.#buckets.values()) for (let e = b.owned; e !== undefined; e = e.ownerNext) yield e;
  }

  /** Monitors older than `olderThanMs` (not long-lived), and owners holding more than `duplicateThreshold` on one target. */
  findLeaks(now: number, olderThanMs: number, duplicateThreshold: number): LeakFindings {
    const old: LedgerEntry[] = [];
    const duplicates: LedgerEntry[] = [];
    for (const b of this.#buckets.values()) {
      let owned = 0;
      for (let e = b.owned; e !== undefined; e = e.ownerNext) {
        owned++;
        if (!e.longLived && now - e.createdAt > olderThanMs) old.push(e);
      }
      if (owned <= duplicateThreshold) continue;
      const perTarget = new Map<Bucket, LedgerEntry[]>();
      for (let e = b.owned; e !== undefined; e = e.ownerNext) {
        const list = perTarget.get(e.target);
        if (list === undefined) perTarget.set(e.target, [e]);
        else list.push(e);
      }
      // one push each: a spread of a long list (`push(...list)`) overflows the stack past ~120,000
      for (const list of perTarget.values()) if (list.length > duplicateThreshold) for (const e of list) duplicates.push(e);
    }
    return { old, duplicates };
  }

  /** A monitor of another node's process ended by its Down: its entry goes (told as a target's death is). */
  ended(entry: LedgerEntry): void {
    if (!entry.live) return;
    this.#unlink(entry);
    this.onCleaned([entry], 'target');
  }

  /** A process died: every entry where it is the owner or the target goes. */
  died(b: Bucket): void {
    const p = b.proc!; // only a local process's bucket is watched
    this.#buckets.delete(p);
    setMonitorSlot(p, undefined);
    const owned: LedgerEntry[] = [];
    for (let e = b.owned; e !== undefined; e = e.ownerNext) owned.push(e);
    const targeted: LedgerEntry[] = [];
    for (let e = b.targeted; e !== undefined; e = e.targetNext) if (e.owner !== b) targeted.push(e);
    for (const e of owned) this.#unlink(e);
    for (const e of targeted) this.#unlink(e);
    if (owned.length > 0) this.onCleaned(owned, 'owner');
    if (targeted.length > 0) this.onCleaned(targeted, 'target');
  }

  #bucket(p: Proc): Bucket {
    const known = monitorSlotOf(p);
    if (known instanceof Bucket) return known;
    const b = new Bucket(p, p.self, this);
    this.#node.watchExit(p, b);
    this.#buckets.set(p, b);
    setMonitorSlot(p, b);
    return b;
  }

  #remoteBucket(pid: Pid): Bucket {
    const key = remoteKey(pid);
    let b = this.#remote.get(key);
    if (b === undefined) this.#remote.set(key, (b = new Bucket(undefined, pid, this)));
    return b;
  }

  #unlink(e: LedgerEntry): void {
    e.live = false;
    e.ref.attachment = undefined;
    const ob = e.owner;
    if (e.ownerPrev !== undefined) e.ownerPrev.ownerNext = e.ownerNext;
    else if (ob.owned === e) ob.owned = e.ownerNext;
    if (e.ownerNext !== undefined) e.ownerNext.ownerPrev = e.ownerPrev;
    ob.count--;
    const tb = e.target;
    if (e.targetPrev !== undefined) e.targetPrev.targetNext = e.targetNext;
    else if (tb.targeted === e) tb.targeted = e.targetNext;
    if (e.targetNext !== undefined) e.targetNext.targetPrev = e.targetPrev;
    tb.count--;
    if (tb.proc === undefined && tb.count === 0) this.#remote.delete(remoteKey(tb.pid));
    e.ownerNext = e.ownerPrev = e.targetNext = e.targetPrev = undefined;
    this.#size--;
    this.cleaned++;
  }

  /**
   * @internal The public view of an entry at `now` (the time its `createdAt` counts in: the node's
   * timers'), its `createdAt` shown as a date: `dates` is the node's clock less that time, now.
   */
  view(entry: LedgerEntry, now: number, leak?: 'age' | 'duplicate', dates = 0): MonitorEntry {
    return {
      ref: entry.ref,
      target: entry.target.pid,
      owner: entry.owner.pid,
      tag: entry.tag,
      createdAt: entry.createdAt + dates,
      ageMs: now - entry.createdAt,
      ...(entry.stack === undefined ? {} : { stack: entry.stack }),
      // a process of another node: alive as far as this node knows, its Down not come yet
      targetAlive: entry.target.proc === undefined || this.#node.isAlive(entry.target.pid),
      ...(leak === undefined ? {} : { leak }),
    };
  }
}

function remoteKey(pid: Pid): string {
  return `${pid.node}/${pid.creation}/${pid.id}`;
}
