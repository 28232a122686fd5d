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
  /** `entry.meta`, one read closer (a query's walk reads it for every entry it visits). */
  meta: AgentMeta;
  /** No answer for the heartbeat window: unhealthy until it is heard from again. */
  stale: boolean;
  /** Asked for its status (poll) since it was last heard from. */
  asked: boolean;
  /**
   * When it was last heard from on the timers' time (monotonic on the real clock): what the sweep
   * ages it by, so a wall clock stepped forward does not cut its window nor one stepped back stretch
   * it. `meta.lastSeen` is the same moment on the node's clock (a date, shown to readers).
   */
  seenAt: number;
}

/** One registered process: its keys and the registry's monitor of it. */
export interface Owner {
  readonly pid: Pid;
  readonly text: string;
  readonly recs: Set<Rec>;
  watch: WatchRef | undefined;
}

export type RemoveReason = 'down' | 'explicit' | 'replaced';

/** Why a live process's last entry was removed on purpose: what its heartbeats and updates are answered. */
export type Removed = 'replaced' | 'unregistered';

/** The size under which {@link AgentIndex.forget} never purges the dead. */
const PURGE_MIN = 64;

const EMPTY: ReadonlySet<Rec> = new Set();

/**
 * The entries holding one capability (kind, team, role): their records, and the answers of the
 * one-field query over them (healthy entries, all entries) kept until one of them changes, so that
 * the common query (`{ capability }`) copies an array instead of visiting every entry.
 */
class Bucket {
  readonly recs = new Set<Rec>();
  healthy: AgentEntry[] | undefined = undefined;
  all: AgentEntry[] | undefined = undefined;

  answer(health: AgentHealth | 'any'): AgentEntry[] {
    if (health === 'any') return (this.all ??= this.#collect(undefined));
    if (health === 'healthy') return (this.healthy ??= this.#collect('healthy'));
    return this.#collect('unhealthy');
  }

  #collect(health: AgentHealth | undefined): AgentEntry[] {
    const out: AgentEntry[] = [];
    for (const r of this.recs) if (health === undefined || r.meta.health === health) out.push(r.entry);
    return out;
  }
}

type Index = Map<string, Bucket>;

/** {@link relink} for a one-value field (team, role). */
function relinkOne(index: Index, before: string | undefined, after: string | undefined, rec: Rec): void {
  if (before === after) {
    if (after !== undefined) touch(index, after);
    return;
  }
  if (before !== undefined) drop(index, before, rec);
  if (after !== undefined) add(index, after, rec);
}

/** Moves `rec` from the sets of `before` to those of `after`: it leaves and joins only the differing ones, and the kept answers of the rest are dropped (its entry changed). */
function relink(index: Index, before: readonly string[], after: readonly string[], rec: Rec): void {
  if (before === after) {
    for (const k of after) touch(index, k);
    return;
  }
  const was = new Set(before);
  const is = new Set(after);
  for (const k of before) if (!is.has(k)) drop(index, k, rec);
  for (const k of after) {
    if (was.has(k)) touch(index, k);
    else add(index, k, rec);
  }
}

function add(index: Index, k: string, rec: Rec): void {
  let b = index.get(k);
  if (b === undefined) index.set(k, (b = new Bucket()));
  b.recs.add(rec);
  b.healthy = b.all = undefined;
}

function drop(index: Index, k: string, rec: Rec): void {
  const b = index.get(k);
  if (b === undefined) return;
  b.recs.delete(rec);
  b.healthy = b.all = undefined;
  if (b.recs.size === 0) index.delete(k);
}

function touch(index: Index, k: string): void {
  const b = index.get(k);
  if (b !== undefined) b.healthy = b.all = undefined;
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
  readonly #caps: Index = new Map();
  readonly #kinds: Index = new Map();
  readonly #teams: Index = new Map();
  readonly #roles: Index = new Map();
  readonly unhealthy = new Set<Rec>();
  /** Every entry, oldest `seenAt` first (a heard-from entry moves to the end): the sweep stops at the first fresh one. */
  readonly bySeen = new Set<Rec>();
  /** False once the registry stopped for good: reads answer nothing. */
  open = true;
  readonly counts = { registered: 0, down: 0, explicit: 0, replaced: 0, heartbeats: 0, polls: 0 };
  /**
   * The processes whose last entry was removed on purpose (replaced by another process's
   * registration, or unregistered), by pid text: their heartbeats are answered that, not
   * `not_registered` (which makes an agent register again), so a removal is not undone. Kept with the
   * table (a resumed registry still knows; one that lost its table forgets). Not monitored (the
   * registry keeps one monitor per registered process): a dead pid is dropped when asked about,
   * and all of them once the map doubled since its last purge, so it holds at most about twice the
   * live processes it names.
   */
  readonly removed = new Map<string, { readonly pid: Pid; readonly reason: Removed }>();
  #purgeAt = PURGE_MIN;

  get capabilities(): number {
    return this.#caps.size;
  }

  insert(key: string, owner: Owner, meta: AgentMeta, seenAt: number): Rec {
    Object.freeze(meta);
    const rec: Rec = { key, pid: owner.pid, owner, entry: Object.freeze({ key, pid: owner.pid, meta }), meta, stale: false, asked: false, seenAt };
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

  /** Remembers that `owner`'s last entry was removed on purpose (see {@link removed}). */
  remember(owner: Owner, reason: Removed, isAlive: (pid: Pid) => boolean): void {
    this.removed.delete(owner.text); // re-inserted last: the order is that of removal
    this.removed.set(owner.text, { pid: owner.pid, reason });
    if (this.removed.size <= this.#purgeAt) return;
    for (const [text, r] of this.removed) if (!isAlive(r.pid)) this.removed.delete(text);
    this.#purgeAt = Math.max(PURGE_MIN, 2 * this.removed.size);
  }

  /** Why the live process `text` names had its last entry removed on purpose, if it did (a dead one is forgotten). */
  removedReason(text: string, isAlive: (pid: Pid) => boolean): Removed | undefined {
    const r = this.removed.get(text);
    if (r === undefined) return undefined;
    if (isAlive(r.pid)) return r.reason;
    this.removed.delete(text);
    return undefined;
  }

  /** Applies `patch` (and, when `seen`, hears from it now: `now` on the node's clock, `seenAt` on the timers' time); answers the entry's health before and after. */
  change(rec: Rec, patch: MetaPatch, seen: { readonly now: number; readonly seenAt: number } | undefined): { before: AgentHealth; after: AgentHealth } {
    const old = rec.entry.meta;
    const before = old.health;
    if (seen !== undefined) {
      rec.seenAt = seen.seenAt;
      rec.stale = false;
      rec.asked = false;
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
      lastSeen: seen?.now ?? old.lastSeen,
    });
    rec.entry = Object.freeze({ key: rec.key, pid: rec.pid, meta });
    rec.meta = meta;
    // only the sets it leaves or joins change: in those it stays in, it keeps its place (registration order)
    relink(this.#caps, old.capabilities, meta.capabilities, rec);
    relink(this.#kinds, old.kinds, meta.kinds, rec);
    relinkOne(this.#teams, old.team, meta.team, rec);
    relinkOne(this.#roles, old.role, meta.role, rec);
    if (meta.health === 'unhealthy') this.unhealthy.add(rec);
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
    // the sets the query names (one per field); the smallest is walked, the others tested
    const sets: ReadonlySet<Rec>[] = [];
    let only: Bucket | undefined;
    const field = (b: Bucket | undefined): boolean => {
      only = b;
      sets.push(b?.recs ?? EMPTY);
      return b !== undefined;
    };
    for (const c of where.capabilities) if (!field(this.#caps.get(c))) return out;
    if (where.kind !== undefined && !field(this.#kinds.get(where.kind))) return out;
    if (where.team !== undefined && !field(this.#teams.get(where.team))) return out;
    if (where.role !== undefined && !field(this.#roles.get(where.role))) return out;
    if (sets.length === 1 && where.health !== 'unhealthy') {
      // one field: its bucket's kept answer, copied (the caller may change its array)
      const answer = only!.answer(where.health);
      return answer.length <= where.limit ? answer.slice() : answer.slice(0, where.limit);
    }
    if (where.health === 'unhealthy') {
      if (this.unhealthy.size === 0) return out;
      sets.push(this.unhealthy);
    }
    let smallest = 0;
    for (let i = 1; i < sets.length; i++) if (sets[i]!.size < sets[smallest]!.size) smallest = i;
    const walk: Iterable<Rec> = sets.length === 0 ? this.byKey.values() : sets[smallest]!;
    const others = sets.filter((_, i) => i !== smallest);
    const health = where.health;
    const limit = where.limit;
    // a membership test in another field's set reads that set's table, not the entry's fields
    outer: for (const rec of walk) {
      if (health !== 'any' && rec.meta.health !== health) continue;
      for (let i = 0; i < others.length; i++) if (!others[i]!.has(rec)) continue outer;
      out.push(rec.entry);
      if (out.length >= limit) break;
    }
    return out;
  }

  #link(rec: Rec): void {
    const meta = rec.entry.meta;
    for (const c of meta.capabilities) add(this.#caps, c, rec);
    for (const k of meta.kinds) add(this.#kinds, k, rec);
    if (meta.team !== undefined) add(this.#teams, meta.team, rec);
    if (meta.role !== undefined) add(this.#roles, meta.role, rec);
    if (meta.health === 'unhealthy') this.unhealthy.add(rec);
  }

  #unlink(rec: Rec): void {
    const meta = rec.entry.meta;
    for (const c of meta.capabilities) drop(this.#caps, c, rec);
    for (const k of meta.kinds) drop(this.#kinds, k, rec);
    if (meta.team !== undefined) drop(this.#teams, meta.team, rec);
    if (meta.role !== undefined) drop(this.#roles, meta.role, rec);
    this.unhealthy.delete(rec);
  }
}
