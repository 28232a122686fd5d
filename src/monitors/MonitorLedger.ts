import type { Proc } from '../runtime/internal/Proc.js';
import type { KeelNode } from '../runtime/Node.js';
import type { RefImpl } from '../runtime/Pid.js';
import type { MonitorEntry } from '../runtime/services.js';

/** @internal One managed monitor. */
export interface LedgerEntry {
  readonly ref: RefImpl;
  readonly owner: Proc;
  readonly target: Proc;
  readonly tag: string | undefined;
  readonly createdAt: number;
  readonly stack: string | undefined;
  readonly longLived: boolean;
  /** Reported as a suspected leak already (each monitor counts once). */
  reported: boolean;
}

/** @internal What a check found: monitors too old, and owners holding too many monitors on one target. */
export interface LeakFindings {
  readonly old: LedgerEntry[];
  readonly duplicates: LedgerEntry[];
}

/**
 * @internal The node-owned table of managed monitors, with `owner → entries` and `target → entries`
 * indexes. Death hooks on both ends remove an entry in O(1) when either side dies; a process's hook
 * is removed when it no longer appears on either side. It belongs to the node, not to the manager's
 * process, so a crash and restart of that process loses nothing.
 */
export class MonitorLedger {
  readonly #node: KeelNode;
  readonly #byRef = new Map<RefImpl, LedgerEntry>();
  readonly #byOwner = new Map<Proc, Set<LedgerEntry>>();
  readonly #byTarget = new Map<Proc, Set<LedgerEntry>>();
  readonly #hooks = new Map<Proc, () => void>();
  readonly #onCleaned: (entries: LedgerEntry[], side: 'owner' | 'target') => void;
  created = 0;
  cleaned = 0;
  leaked = 0;

  constructor(node: KeelNode, onCleaned: (entries: LedgerEntry[], side: 'owner' | 'target') => void) {
    this.#node = node;
    this.#onCleaned = onCleaned;
  }

  get size(): number {
    return this.#byRef.size;
  }

  /** Sizes of the indexes, for leak tests: all zero once every owner and target has died. */
  indexSizes(): { entries: number; owners: number; targets: number; hooks: number } {
    return { entries: this.#byRef.size, owners: this.#byOwner.size, targets: this.#byTarget.size, hooks: this.#hooks.size };
  }

  add(entry: LedgerEntry): void {
    this.#byRef.set(entry.ref, entry);
    this.#index(this.#byOwner, entry.owner, entry);
    this.#index(this.#byTarget, entry.target, entry);
    this.created++;
  }

  get(ref: RefImpl): LedgerEntry | undefined {
    return this.#byRef.get(ref);
  }

  /** Removes one entry (a demonitor). */
  remove(entry: LedgerEntry): void {
    if (!this.#byRef.delete(entry.ref)) return;
    this.#unindex(this.#byOwner, entry.owner, entry);
    this.#unindex(this.#byTarget, entry.target, entry);
    this.cleaned++;
  }

  entries(): IterableIterator<LedgerEntry> {
    return this.#byRef.values();
  }

  /** Monitors older than `olderThanMs` with both ends alive (not long-lived), and duplicate monitors. */
  findLeaks(now: number, olderThanMs: number, duplicateThreshold: number): LeakFindings {
    const old: LedgerEntry[] = [];
    for (const e of this.#byRef.values()) if (!e.longLived && now - e.createdAt > olderThanMs) old.push(e);
    const duplicates: LedgerEntry[] = [];
    for (const entries of this.#byOwner.values()) {
      if (entries.size <= duplicateThreshold) continue;
      const perTarget = new Map<Proc, LedgerEntry[]>();
      for (const e of entries) {
        const list = perTarget.get(e.target);
        if (list === undefined) perTarget.set(e.target, [e]);
        else list.push(e);
      }
      for (const list of perTarget.values()) if (list.length > duplicateThreshold) duplicates.push(...list);
    }
    return { old, duplicates };
  }

  #index(map: Map<Proc, Set<LedgerEntry>>, p: Proc, entry: LedgerEntry): void {
    let set = map.get(p);
    if (set === undefined) map.set(p, (set = new Set()));
    set.add(entry);
    if (!this.#hooks.has(p)) {
      const unhook = this.#node.onProcExit(p, () => this.#died(p));
      if (unhook !== undefined) this.#hooks.set(p, unhook);
    }
  }

  #unindex(map: Map<Proc, Set<LedgerEntry>>, p: Proc, entry: LedgerEntry): void {
    const set = map.get(p);
    if (set === undefined) return;
    set.delete(entry);
    if (set.size === 0) map.delete(p);
    this.#releaseHook(p);
  }

  /** Drops the death hook of a process that no longer appears on either side. */
  #releaseHook(p: Proc): void {
    if (this.#byOwner.has(p) || this.#byTarget.has(p)) return;
    const unhook = this.#hooks.get(p);
    if (unhook === undefined) return;
    this.#hooks.delete(p);
    unhook();
  }

  /** A process died: every entry where it is the owner or the target goes. */
  #died(p: Proc): void {
    this.#hooks.delete(p);
    const owned = this.#byOwner.get(p);
    const watched = this.#byTarget.get(p);
    this.#byOwner.delete(p);
    this.#byTarget.delete(p);
    if (owned !== undefined) {
      const list = [...owned];
      for (const e of list) this.#drop(e, e.target, this.#byTarget);
      this.#onCleaned(list, 'owner');
    }
    if (watched !== undefined) {
      const list = [...watched].filter((e) => this.#byRef.has(e.ref));
      for (const e of list) this.#drop(e, e.owner, this.#byOwner);
      this.#onCleaned(list, 'target');
    }
  }

  #drop(entry: LedgerEntry, other: Proc, otherMap: Map<Proc, Set<LedgerEntry>>): void {
    if (!this.#byRef.delete(entry.ref)) return;
    this.cleaned++;
    const set = otherMap.get(other);
    if (set !== undefined) {
      set.delete(entry);
      if (set.size === 0) otherMap.delete(other);
    }
    this.#releaseHook(other);
  }

  /** @internal The public view of an entry. */
  view(entry: LedgerEntry, now: number, leak?: 'age' | 'duplicate'): MonitorEntry {
    return {
      ref: entry.ref,
      target: entry.target.self,
      owner: entry.owner.self,
      tag: entry.tag,
      createdAt: entry.createdAt,
      ageMs: now - entry.createdAt,
      ...(entry.stack === undefined ? {} : { stack: entry.stack }),
      targetAlive: this.#node.isAlive(entry.target.self),
      ...(leak === undefined ? {} : { leak }),
    };
  }
}
