import type { Pid } from '../../runtime/Pid.js';
import type { WatchRef } from '../internal/watch.js';
import type { AgentEntry, AgentHealth, AgentMeta } from './types.js';
import type { MetaPatch, Where } from './validate.js';

/** One registration, as the index holds it: its answer (`entry`, frozen, rebuilt on change) and what the indexes need. */
export interface Rec {
  readonly key: string;
  readonly pid: Pid;
  readonly owner: Owner;
  entry: AgentEntry;
  caps: ReadonlySet<string>;
  kinds: ReadonlySet<string>;
  /** No answer for the heartbeat window: unhealthy until it is heard from again. */
  stale: boolean;
}

/** One registered process: its keys and the registry's monitor of it. */
export interface Owner {
  readonly pid: Pid;
  readonly text: string;
  readonly recs: Set<Rec>;
  watch: WatchRef | undefined;
}

export type RemoveReason = 'down' | 'explicit' | 'replaced';

const EMPTY: ReadonlySet<Rec> = new Set();

function add<K>(index: Map<K, Set<Rec>>, k: K, rec: Rec): void {
  const set = index.get(k);
  if (set === undefined) index.set(k, new Set([rec]));
  else set.add(rec);
}

function drop<K>(index: Map<K, Set<Rec>>, k: K, rec: Rec): void {
  const set = index.get(k);
  if (set === undefined) return;
  set.delete(rec);
  if (set.size === 0) index.delete(k);
}

/**
 * @internal The registry's table: its entries by key, by process, and indexed by capability, kind,
 * team, role and health, so that a query walks the smallest matching set rather than every entry.
 * Written only by the registry's process (one turn at a time); read by anyone holding the handle
 * (as an ETS table with read concurrency is read without a call to its owner). It is kept in a
 * node-owned table (componentState), so a restarted registry resumes it and watches its processes again.
 */
export class AgentIndex {
  readonly byKey = new Map<string, Rec>();
  readonly byPid = new Map<string, Owner>();
  readonly #caps = new Map<string, Set<Rec>>();
  readonly #kinds = new Map<string, Set<Rec>>();
  readonly #teams = new Map<string, Set<Rec>>();
  readonly #roles = new Map<string, Set<Rec>>();
  readonly unhealthy = new Set<Rec>();
  /** Every entry, oldest `lastSeen` first (a heard-from entry moves to the end): the sweep stops at the first fresh one. */
  readonly bySeen = new Set<Rec>();
  /** False once the registry stopped for good: reads answer nothing. */
  open = true;
  readonly counts = { registered: 0, down: 0, explicit: 0, replaced: 0, heartbeats: 0, polls: 0 };

  get capabilities(): number {
    return this.#caps.size;
  }

  insert(key: string, owner: Owner, meta: AgentMeta): Rec {
    const rec: Rec = { key, pid: owner.pid, owner, entry: Object.freeze({ key, pid: owner.pid, meta: Object.freeze(meta) }), caps: new Set(meta.capabilities), kinds: new Set(meta.kinds), stale: false };
    this.byKey.set(key, rec);
    owner.recs.add(rec);
    this.#link(rec);
    this.bySeen.add(rec);
    this.counts.registered++;
    return rec;
  }

  remove(rec: Rec, reason: RemoveReason | undefined): void {
    if (this.byKey.get(rec.key) !== rec) return;
    this.byKey.delete(rec.key);
    rec.owner.recs.delete(rec);
    this.#unlink(rec);
    this.bySeen.delete(rec);
    if (reason !== undefined) this.counts[reason]++;
  }

  /** Applies `patch` (and, when `seen`, hears from it now); answers the entry's health before and after. */
  change(rec: Rec, patch: MetaPatch, now: number | undefined): { before: AgentHealth; after: AgentHealth } {
    const old = rec.entry.meta;
    const before = old.health;
    const reindex = patch.capabilities !== undefined || patch.kinds !== undefined || patch.team !== undefined || patch.role !== undefined;
    if (reindex) this.#unlink(rec);
    if (now !== undefined) {
      rec.stale = false;
      this.bySeen.delete(rec);
      this.bySeen.add(rec);
    }
    const status = patch.status ?? old.status;
    const meta: AgentMeta = Object.freeze({
      capabilities: patch.capabilities ?? old.capabilities,
      kinds: patch.kinds ?? old.kinds,
      team: patch.team ?? old.team,
      role: patch.role ?? old.role,
      load: patch.load ?? old.load,
      status,
      health: status === 'unhealthy' || rec.stale ? 'unhealthy' : 'healthy',
      node: old.node,
      lastSeen: now ?? old.lastSeen,
    });
    if (patch.capabilities !== undefined) rec.caps = new Set(patch.capabilities);
    if (patch.kinds !== undefined) rec.kinds = new Set(patch.kinds);
    rec.entry = Object.freeze({ key: rec.key, pid: rec.pid, meta });
    if (reindex) this.#link(rec);
    else if (meta.health === 'unhealthy') this.unhealthy.add(rec);
    else this.unhealthy.delete(rec);
    return { before, after: meta.health };
  }

  /** Marks `rec` stale (it missed its heartbeats); true when that made it unhealthy. */
  markStale(rec: Rec): boolean {
    if (rec.stale) return false;
    const before = rec.entry.meta.health;
    rec.stale = true;
    this.change(rec, {}, undefined);
    return before === 'healthy';
  }

  /** The entries `where` selects: walks the smallest index set it names, testing the rest on each entry. */
  query(where: Where): AgentEntry[] {
    const out: AgentEntry[] = [];
    if (!this.open) return out;
    let smallest: ReadonlySet<Rec> | undefined;
    const consider = (set: ReadonlySet<Rec> | undefined): boolean => {
      const s = set ?? EMPTY;
      if (smallest === undefined || s.size < smallest.size) smallest = s;
      return s.size > 0;
    };
    for (const c of where.capabilities) if (!consider(this.#caps.get(c))) return out;
    if (where.kind !== undefined && !consider(this.#kinds.get(where.kind))) return out;
    if (where.team !== undefined && !consider(this.#teams.get(where.team))) return out;
    if (where.role !== undefined && !consider(this.#roles.get(where.role))) return out;
    if (where.health === 'unhealthy' && !consider(this.unhealthy)) return out;
    const walk: Iterable<Rec> = smallest ?? this.byKey.values();
    const caps = where.capabilities;
    const limit = where.limit;
    for (const rec of walk) {
      const meta = rec.entry.meta;
      if (where.health !== 'any' && meta.health !== where.health) continue;
      if (where.kind !== undefined && !rec.kinds.has(where.kind)) continue;
      if (where.team !== undefined && meta.team !== where.team) continue;
      if (where.role !== undefined && meta.role !== where.role) continue;
      let all = true;
      for (let i = 0; i < caps.length; i++) {
        if (!rec.caps.has(caps[i]!)) {
          all = false;
          break;
        }
      }
      if (!all) continue;
      out.push(rec.entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  #link(rec: Rec): void {
    const meta = rec.entry.meta;
    for (const c of rec.caps) add(this.#caps, c, rec);
    for (const k of rec.kinds) add(this.#kinds, k, rec);
    if (meta.team !== undefined) add(this.#teams, meta.team, rec);
    if (meta.role !== undefined) add(this.#roles, meta.role, rec);
    if (meta.health === 'unhealthy') this.unhealthy.add(rec);
  }

  #unlink(rec: Rec): void {
    const meta = rec.entry.meta;
    for (const c of rec.caps) drop(this.#caps, c, rec);
    for (const k of rec.kinds) drop(this.#kinds, k, rec);
    if (meta.team !== undefined) drop(this.#teams, meta.team, rec);
    if (meta.role !== undefined) drop(this.#roles, meta.role, rec);
    this.unhealthy.delete(rec);
  }
}
