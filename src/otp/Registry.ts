import { types } from 'node:util';
import { checkStrayKeys, InvalidArgumentError, ProcessExitedError } from '../errors.js';
import { isDead, isProcess, type Kernel, kernelOfProcess, type Proc } from '../runtime/kernel.js';
import { isPid, isTarget, type Pid, type Target } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { ANY, compilePattern, matches, type Pattern } from './internal/registryMatch.js';

export type { Pattern };

/** One registration: the process and the value it registered with. */
export interface RegistryEntry<V> {
  readonly pid: Pid;
  readonly value: V;
}

/** What `select` walks: one registration with its key. */
export interface RegistrySelected<K, V> {
  readonly key: K;
  readonly pid: Pid;
  readonly value: V;
}

/** A `select` query: a predicate, or `where` (which entries) and `map` (what of them). */
export type RegistryQuery<K, V, R> =
  | ((entry: RegistrySelected<K, V>) => boolean)
  | { readonly where?: (entry: RegistrySelected<K, V>) => boolean; readonly map?: (entry: RegistrySelected<K, V>) => R };

/** A guard: a further test of a matched entry's value (Elixir's match guards). */
export type RegistryGuard<V> = (value: V, pid: Pid) => boolean;

/**
 * What a registry's listeners are sent (Elixir's `listeners:` option): one `register` per
 * registration, one `unregister` per key a process leaves: by `unregister` or `unregisterMatch`
 * (`reason: 'unregister'`), or by exiting (`reason: 'exit'`, which Elixir does not send).
 */
export type RegistryEvent<K = string, V = unknown> =
  | { readonly kind: 'registry_register'; readonly registry: KeyRegistry<K, V, any>; readonly key: K; readonly pid: Pid; readonly value: V }
  | { readonly kind: 'registry_unregister'; readonly registry: KeyRegistry<K, V, any>; readonly key: K; readonly pid: Pid; readonly reason: 'unregister' | 'exit' };

/** `updateValue`'s answer: the new and old values, or why nothing changed. */
export type UpdateValueResult<V> = { readonly newValue: V; readonly oldValue: V } | { readonly error: 'not_registered' } | { readonly error: 'not_owner'; readonly pid: Pid };

export interface RegistryOptions<K, V, Meta extends object> {
  readonly keys: 'duplicate' | 'unique';
  /** Duplicate keys: each key's entries are split in `n` partitions by pid; `dispatch` calls `fn` once per partition. 1 to 1024, default 1. */
  readonly partitions?: number;
  /** Processes sent a {@link RegistryEvent} on every register and unregister. */
  readonly listeners?: readonly Target<RegistryEvent<K, V>>[];
  /** The initial metadata (`meta`, `putMeta`). */
  readonly meta?: Partial<Meta>;
}

/**
 * A key-value registry of processes, after Elixir's `Registry`. With `keys: 'duplicate'` a key may
 * hold many entries (one process may register a key several times); with `keys: 'unique'` one.
 * A process registers itself; its entries vanish when it exits.
 */
export interface KeyRegistry<K = string, V = unknown, Meta extends object = Record<string, unknown>> {
  readonly keys: 'duplicate' | 'unique';
  readonly partitions: number;
  /** Registers the calling process under `key`. Unique keys: `{ error: 'already_registered', pid }` when taken. */
  register(ctx: Context<any>, key: K, value: V): 'ok' | { error: 'already_registered'; pid: Pid };
  /** Removes every entry of the calling process under `key`. */
  unregister(ctx: Context<any>, key: K): void;
  /** Removes the calling process's entries under `key` whose value matches; returns how many. */
  unregisterMatch(ctx: Context<any>, key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): number;
  /** Unique keys only: sets the value of the calling process's entry under `key` to `fn(old)`. */
  updateValue(ctx: Context<any>, key: K, fn: (old: V) => V): UpdateValueResult<V>;
  /** The entries under `key`, in registration order. */
  lookup(key: K): RegistryEntry<V>[];
  /** The entries under `key` whose value matches `pattern` (and `guard`), in registration order. */
  match(key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): RegistryEntry<V>[];
  /** The number of entries under `key` whose value matches `pattern` (and `guard`). */
  countMatch(key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): number;
  /** Every entry the query selects (all of them without one), by key, then in registration order. Walks the whole registry. */
  select(): RegistrySelected<K, V>[];
  select(query: (entry: RegistrySelected<K, V>) => boolean): RegistrySelected<K, V>[];
  select<R>(query: { readonly where?: (entry: RegistrySelected<K, V>) => boolean; readonly map: (entry: RegistrySelected<K, V>) => R }): R[];
  select(query: { readonly where?: (entry: RegistrySelected<K, V>) => boolean }): RegistrySelected<K, V>[];
  /**
   * Calls `fn` with the entries under `key`, in registration order: once per partition that holds
   * some (never with none); returns whether it was called. The array is the registry's own snapshot
   * (read it, do not change it), rebuilt only after its partition changed: a call costs the key's
   * entries, no more; a later change makes a new array and leaves the one handed out as it was.
   */
  dispatch(key: K, fn: (entries: readonly RegistryEntry<V>[]) => void): boolean;
  /** The keys the process has registered (Elixir's `keys/2`: `keys` here is the kind of keys). */
  keysOf(pid: Pid): K[];
  /** The values the process has registered under `key`. */
  values(key: K, pid: Pid): V[];
  /** The number of entries (O(1)). */
  count(): number;
  /** The registry's metadata under `key`, undefined when none. */
  meta<MK extends keyof Meta>(key: MK): Meta[MK] | undefined;
  putMeta<MK extends keyof Meta>(key: MK, value: Meta[MK]): void;
  deleteMeta<MK extends keyof Meta>(key: MK): void;
  /** The number of keys with entries. */
  readonly size: number;
}

interface Audited {
  leftovers(): string[];
}

/**
 * @internal The registries made on each node, for leak reports: held weakly, as the node must not
 * keep a registry nobody uses (one made per session stayed for the node's life, about 700 bytes
 * each). A registry with live entries stays reachable through its owners' death hooks.
 */
const registries = new WeakMap<Node, Set<WeakRef<Audited>>>();
/** Drops a collected registry's reference from its node's set. */
const collected = new FinalizationRegistry<{ set: Set<WeakRef<Audited>>; ref: WeakRef<Audited> }>(({ set, ref }) => {
  set.delete(ref);
});

/** @internal */
export function registriesOf(node: Node): readonly Audited[] {
  const out: Audited[] = [];
  for (const ref of registries.get(node) ?? []) {
    const r = ref.deref();
    if (r !== undefined) out.push(r);
  }
  return out;
}

interface Row<K, V> {
  readonly proc: Proc;
  readonly key: K;
  readonly seq: number;
  readonly part: number;
  entry: RegistryEntry<V>;
}

/** One partition of one key: its rows in registration order, and the frozen snapshot dispatch hands out. */
class Bucket<K, V> {
  readonly rows = new Set<Row<K, V>>();
  snap: readonly RegistryEntry<V>[] | undefined = undefined;
  snapshot(): readonly RegistryEntry<V>[] {
    if (this.snap === undefined) {
      const out: RegistryEntry<V>[] = [];
      for (const r of this.rows) out.push(r.entry);
      this.snap = out; // not frozen: iterating a frozen array costs several times more; the type is readonly
    }
    return this.snap;
  }
}

interface KeySlot<K, V> {
  readonly parts: (Bucket<K, V> | undefined)[];
  n: number;
}

interface Owned<K, V> {
  readonly rows: Map<K, Row<K, V>[]>;
  readonly unhook: () => void;
}

const MAX_PARTITIONS = 1024;

class KeyTable<K, V, Meta extends object> implements KeyRegistry<K, V, Meta> {
  readonly keys: 'duplicate' | 'unique';
  readonly partitions: number;
  readonly #node: Kernel;
  readonly #listeners: readonly Target[];
  readonly #byKey = new Map<K, KeySlot<K, V>>();
  /** owner -> its rows by key, and the death hook that clears them */
  readonly #byOwner = new Map<Proc, Owned<K, V>>();
  readonly #meta = new Map<PropertyKey, unknown>();
  #count = 0;
  readonly #self = this as unknown as KeyRegistry<K, V, any>;
  #seq = 0;

  constructor(node: Kernel, keys: 'duplicate' | 'unique', partitions: number, listeners: readonly Target[], meta: readonly [PropertyKey, unknown][]) {
    this.#node = node;
    this.keys = keys;
    this.partitions = partitions;
    this.#listeners = listeners;
    for (const [k, v] of meta) this.#meta.set(k, v);
  }

  get size(): number {
    return this.#byKey.size;
  }

  count(): number {
    return this.#count;
  }

  register(ctx: Context<any>, key: K, value: V): 'ok' | { error: 'already_registered'; pid: Pid } {
    const proc = ownerOf(ctx, this.#node);
    let slot = this.#byKey.get(key);
    if (this.keys === 'unique' && slot !== undefined) {
      const owner = first(slot)!;
      if (this.#node.isAlive(owner.entry.pid)) return { error: 'already_registered', pid: owner.entry.pid };
      // the owner has died, and user code run during its death (before its death hook) registers:
      // the key is free, as Elixir's register checks the owner is alive; its entries go now (told once)
      this.#release(owner.proc);
      slot = this.#byKey.get(key);
    }
    let owned = this.#byOwner.get(proc);
    if (owned === undefined) {
      const unhook = this.#node.onProcExit(proc, () => this.#release(proc))!; // ownerOf checked it is alive
      this.#byOwner.set(proc, (owned = { rows: new Map(), unhook }));
    }
    const part = this.partitions === 1 || this.keys === 'unique' ? 0 : proc.self.id % this.partitions;
    const row: Row<K, V> = { proc, key, seq: this.#seq++, part, entry: { pid: proc.self, value } };
    if (slot === undefined) this.#byKey.set(key, (slot = { parts: [], n: 0 }));
    const bucket = (slot.parts[part] ??= new Bucket());
    bucket.rows.add(row);
    bucket.snap = undefined;
    slot.n++;
    this.#count++;
    const mine = owned.rows.get(key);
    if (mine === undefined) owned.rows.set(key, [row]);
    else mine.push(row);
    this.#notify(proc, { kind: 'registry_register', registry: this.#self, key, pid: proc.self, value });
    return 'ok';
  }

  unregister(ctx: Context<any>, key: K): void {
    const proc = ownerOf(ctx, this.#node);
    const owned = this.#byOwner.get(proc);
    const mine = owned?.rows.get(key);
    if (owned === undefined || mine === undefined) return;
    for (const r of mine) this.#remove(r);
    owned.rows.delete(key);
    this.#forgetIfEmpty(proc, owned);
    this.#notify(proc, { kind: 'registry_unregister', registry: this.#self, key, pid: proc.self, reason: 'unregister' });
  }

  unregisterMatch(ctx: Context<any>, key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): number {
    const proc = ownerOf(ctx, this.#node);
    const test = tester(pattern, guard);
    const mine = this.#byOwner.get(proc)?.rows.get(key);
    if (mine === undefined) return 0;
    const hit = new Set(mine.filter((r) => test(r.entry)));
    let removed = 0;
    for (const r of hit) if (this.#remove(r)) removed++;
    // the guard ran user code (it may have unregistered, or registered again): read the owner's rows anew
    const owned = this.#byOwner.get(proc);
    const rows = owned?.rows.get(key);
    if (owned !== undefined && rows !== undefined) {
      const rest = rows.filter((r) => !hit.has(r));
      if (rest.length === 0) owned.rows.delete(key);
      else owned.rows.set(key, rest);
      this.#forgetIfEmpty(proc, owned);
    }
    if (removed > 0) this.#notify(proc, { kind: 'registry_unregister', registry: this.#self, key, pid: proc.self, reason: 'unregister' });
    return removed;
  }

  updateValue(ctx: Context<any>, key: K, fn: (old: V) => V): UpdateValueResult<V> {
    if (this.keys !== 'unique') throw new InvalidArgumentError('registry', "a registry with keys: 'unique' (updateValue)", this.keys);
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (old) => new', fn);
    const proc = ownerOf(ctx, this.#node);
    const slot = this.#byKey.get(key);
    const row = slot === undefined ? undefined : first(slot);
    // an owner dead before its death hook ran is not shown (as lookup): the key is not registered
    if (row === undefined || isDead(row.proc)) return { error: 'not_registered' };
    if (row.proc !== proc) return { error: 'not_owner', pid: row.entry.pid };
    const oldValue = row.entry.value;
    const newValue = fn(oldValue);
    // fn may have unregistered the key (or the process may have exited): then nothing is updated
    if (this.#byKey.get(key) !== slot || first(slot!) !== row) return { error: 'not_registered' };
    row.entry = { pid: row.entry.pid, value: newValue };
    slot!.parts[row.part]!.snap = undefined;
    return { newValue, oldValue };
  }

  lookup(key: K): RegistryEntry<V>[] {
    return this.#rowsOf(key).map((r) => r.entry);
  }

  match(key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): RegistryEntry<V>[] {
    const test = tester(pattern, guard);
    return this.#rowsOf(key)
      .map((r) => r.entry)
      .filter(test);
  }

  countMatch(key: K, pattern: Pattern<V>, guard?: RegistryGuard<V>): number {
    const test = tester(pattern, guard);
    let n = 0;
    for (const r of this.#rowsOf(key)) if (test(r.entry)) n++;
    return n;
  }

  select<R>(query?: RegistryQuery<K, V, R>): any[] {
    let where: ((e: RegistrySelected<K, V>) => boolean) | undefined;
    let map: ((e: RegistrySelected<K, V>) => R) | undefined;
    if (typeof query === 'function') where = query;
    else if (query !== undefined) {
      const bad = (): InvalidArgumentError => new InvalidArgumentError('query', 'a predicate or { where?, map? } of plain data properties', query);
      if (typeof query !== 'object' || query === null || types.isProxy(query)) throw bad();
      try {
        where = query.where;
        map = query.map;
      } catch {
        throw bad();
      }
      if (where !== undefined && typeof where !== 'function') throw new InvalidArgumentError('query.where', 'a function (entry) => boolean', where);
      if (map !== undefined && typeof map !== 'function') throw new InvalidArgumentError('query.map', 'a function (entry) => R', map);
    }
    const out: unknown[] = [];
    for (const key of [...this.#byKey.keys()]) {
      for (const r of this.#rowsOf(key)) {
        const e: RegistrySelected<K, V> = Object.freeze({ key, pid: r.entry.pid, value: r.entry.value });
        if (where === undefined || where(e)) out.push(map === undefined ? e : map(e));
      }
    }
    return out;
  }

  dispatch(key: K, fn: (entries: readonly RegistryEntry<V>[]) => void): boolean {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (entries) => void', fn);
    const slot = this.#byKey.get(key);
    if (slot === undefined) return false;
    if (slot.parts.length === 1) {
      fn(slot.parts[0]!.snapshot());
      return true;
    }
    // the snapshots first: fn may register or unregister (an entry registered meanwhile is not handed out)
    const taken: [Bucket<K, V>, readonly RegistryEntry<V>[]][] = [];
    for (const b of slot.parts) if (b !== undefined && b.rows.size > 0) taken.push([b, b.snapshot()]);
    let called = false;
    for (const [b, snap] of taken) {
      // an earlier call changed this partition (killed or unregistered owners): only the entries still in it
      const entries = b.snap === snap ? snap : stillIn(b, snap);
      if (entries.length === 0) continue;
      called = true;
      fn(entries);
    }
    return called;
  }

  keysOf(pid: Pid): K[] {
    checkPid(pid);
    const proc = this.#node.resolve(pid);
    return proc === undefined ? [] : [...(this.#byOwner.get(proc)?.rows.keys() ?? [])];
  }

  values(key: K, pid: Pid): V[] {
    checkPid(pid);
    const proc = this.#node.resolve(pid);
    if (proc === undefined) return [];
    return (this.#byOwner.get(proc)?.rows.get(key) ?? []).map((r) => r.entry.value);
  }

  meta<MK extends keyof Meta>(key: MK): Meta[MK] | undefined {
    return this.#meta.get(key) as Meta[MK] | undefined;
  }

  putMeta<MK extends keyof Meta>(key: MK, value: Meta[MK]): void {
    if (value === undefined) throw new InvalidArgumentError('value', 'a value other than undefined', value, 'use deleteMeta to remove a key');
    this.#meta.set(key, value);
  }

  deleteMeta<MK extends keyof Meta>(key: MK): void {
    this.#meta.delete(key);
  }

  /** @internal Owners with entries, for leak checks. */
  get owners(): number {
    return this.#byOwner.size;
  }

  /** @internal Entries of processes that are no longer alive (there should be none). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const [key, slot] of this.#byKey) {
      for (const b of slot.parts) {
        if (b === undefined) continue;
        for (const r of b.rows) if (!this.#node.isAlive(r.entry.pid)) out.push(`registry key ${String(key)} still holds the dead process ${String(r.entry.pid)}`);
      }
    }
    return out;
  }

  /** The rows of a key in registration order (merged by sequence across partitions). */
  #rowsOf(key: K): Row<K, V>[] {
    const slot = this.#byKey.get(key);
    if (slot === undefined) return [];
    const out: Row<K, V>[] = [];
    // an owner dead before its death hook ran (user code during its death asks) is not shown, as
    // Elixir's lookup checks the owner is alive: its rows go when the hook runs
    for (const b of slot.parts) if (b !== undefined) for (const r of b.rows) if (!isDead(r.proc)) out.push(r);
    if (slot.parts.length > 1) out.sort((a, b) => a.seq - b.seq);
    return out;
  }

  /** Removes a row from its key; false when it was no longer there. */
  #remove(r: Row<K, V>): boolean {
    const slot = this.#byKey.get(r.key);
    const bucket = slot?.parts[r.part];
    if (slot === undefined || bucket === undefined || !bucket.rows.delete(r)) return false;
    bucket.snap = undefined;
    this.#count--;
    if (--slot.n === 0) this.#byKey.delete(r.key);
    return true;
  }

  #forgetIfEmpty(proc: Proc, owned: Owned<K, V>): void {
    if (owned.rows.size > 0) return;
    owned.unhook();
    this.#byOwner.delete(proc);
  }

  #release(proc: Proc): void {
    const owned = this.#byOwner.get(proc);
    if (owned === undefined) return;
    this.#byOwner.delete(proc);
    for (const [key, rows] of owned.rows) {
      for (const r of rows) this.#remove(r);
      this.#notify(undefined, { kind: 'registry_unregister', registry: this.#self, key, pid: proc.self, reason: 'exit' });
    }
  }

  #notify(from: Proc | undefined, event: RegistryEvent<K, V>): void {
    for (const l of this.#listeners) this.#node.deliver(from, l, event);
  }
}

function checkPid(pid: unknown): void {
  if (!isPid(pid)) throw new InvalidArgumentError('pid', 'a Pid', pid);
}

/** The entries of `snap` still registered in `b` (an entry removed since is gone from its rows), in the snapshot's order. */
function stillIn<K, V>(b: Bucket<K, V>, snap: readonly RegistryEntry<V>[]): readonly RegistryEntry<V>[] {
  const live = new Set<RegistryEntry<V>>();
  for (const r of b.rows) live.add(r.entry);
  return snap.filter((e) => live.has(e));
}

function first<K, V>(slot: KeySlot<K, V>): Row<K, V> | undefined {
  for (const b of slot.parts) if (b !== undefined) for (const r of b.rows) return r;
  return undefined;
}

function tester<V>(pattern: Pattern<V>, guard: RegistryGuard<V> | undefined): (e: RegistryEntry<V>) => boolean {
  if (guard !== undefined && typeof guard !== 'function') throw new InvalidArgumentError('guard', 'a function (value, pid) => boolean', guard);
  const c = compilePattern(pattern);
  return guard === undefined ? (e) => matches(c, e.value) : (e) => matches(c, e.value) && guard(e.value, e.pid) === true;
}

function ownerOf(ctx: Context<any>, node: Kernel): Proc {
  if (!isProcess(ctx) || kernelOfProcess(ctx) !== node) throw new InvalidArgumentError('ctx', "the registering process's own Context, on the registry's node", ctx);
  if (!node.isAlive(ctx.self)) {
    node.zombieCall(ctx, 'Registry');
    throw new ProcessExitedError(String(ctx.self), 'Registry');
  }
  return ctx;
}

function readOptions(options: unknown): { keys: 'duplicate' | 'unique'; partitions: number; listeners: Target[]; meta: [PropertyKey, unknown][] } {
  let o: Record<string, unknown>;
  let keys: unknown;
  try {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options.keys', "'duplicate' | 'unique'", undefined);
    o = options as Record<string, unknown>;
    keys = o.keys;
  } catch (e) {
    if (e instanceof InvalidArgumentError) throw e;
    throw new InvalidArgumentError('options', 'an object of plain data properties', options);
  }
  if (keys !== 'duplicate' && keys !== 'unique') throw new InvalidArgumentError('options.keys', "'duplicate' | 'unique'", keys);
  checkStrayKeys(o, ['keys', 'partitions', 'listeners', 'meta'], 'options'); // a key it does not know is refused, never ignored
  const read = (name: string): unknown => {
    try {
      return o[name];
    } catch {
      throw new InvalidArgumentError(`options.${name}`, 'a plain data property', '(a getter that throws)');
    }
  };
  const partitions = read('partitions') ?? 1;
  if (typeof partitions !== 'number' || !Number.isInteger(partitions) || partitions < 1 || partitions > MAX_PARTITIONS) {
    throw new InvalidArgumentError('options.partitions', `an integer from 1 to ${MAX_PARTITIONS}`, partitions);
  }
  const rawListeners = read('listeners') ?? [];
  const badListeners = (): InvalidArgumentError => new InvalidArgumentError('options.listeners', 'an array of Pids or registered names', rawListeners);
  // a proxy first (Array.isArray throws on a revoked one); an element that cannot be read is no listener
  if (typeof rawListeners !== 'object' || rawListeners === null || types.isProxy(rawListeners) || !Array.isArray(rawListeners)) throw badListeners();
  let listeners: unknown[];
  try {
    listeners = Array.from(rawListeners as unknown[]);
  } catch {
    throw badListeners();
  }
  listeners.forEach((l, i) => {
    if (!isTarget(l)) throw new InvalidArgumentError(`options.listeners[${i}]`, 'a Pid or a non-empty registered name', l);
  });
  const rawMeta = read('meta') ?? {};
  if (typeof rawMeta !== 'object' || rawMeta === null) throw new InvalidArgumentError('options.meta', 'an object', rawMeta);
  const meta: [PropertyKey, unknown][] = [];
  try {
    // symbol keys too (Object.entries leaves them out): a meta key given is never lost
    for (const k of Reflect.ownKeys(rawMeta)) if (Object.prototype.propertyIsEnumerable.call(rawMeta, k)) meta.push([k, (rawMeta as Record<PropertyKey, unknown>)[k]]);
  } catch {
    throw new InvalidArgumentError('options.meta', 'an object of plain data properties', '(a getter that throws)');
  }
  return { keys, partitions, listeners: listeners as Target[], meta };
}

/**
 * Registries beyond the node's unique names.
 *
 * @example
 * ```ts
 * const topics = Registry.create<string, { since: number }>(node, { keys: 'duplicate' });
 * topics.register(ctx, 'prices', { since: Date.now() });          // from each subscriber
 * topics.dispatch('prices', (subs) => subs.forEach((s) => node.send(s.pid, tick)));
 * ```
 */
export const Registry = {
  /** The wildcard of a pattern: matches any value (Elixir's `:_`). */
  any: ANY,
  create<K = string, V = unknown, Meta extends object = Record<string, unknown>>(node: Node, options: RegistryOptions<K, V, Meta>): KeyRegistry<K, V, Meta> {
    // a node by its shape (another copy of the package makes nodes too)
    let isNode = false;
    try {
      isNode = typeof node === 'object' && node !== null && !types.isProxy(node) && typeof (node as Partial<Kernel>).onProcExit === 'function';
    } catch {
      // a getter that throws: no node
    }
    if (!isNode) throw new InvalidArgumentError('node', 'a Node', node);
    const kernel = node as Kernel;
    const o = readOptions(options);
    const table = new KeyTable<K, V, Meta>(kernel, o.keys, o.partitions, o.listeners, o.meta);
    let set = registries.get(kernel);
    if (set === undefined) registries.set(kernel, (set = new Set()));
    const ref = new WeakRef<Audited>(table);
    set.add(ref);
    collected.register(table, { set, ref });
    return table;
  },
};
