import { InvalidArgumentError, ProcessExitedError } from '../errors.js';
import { isProcess, type Kernel, kernelOfProcess, type Proc } from '../runtime/kernel.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';

/** One registration: the process and the value it registered with. */
export interface RegistryEntry<V> {
  readonly pid: Pid;
  readonly value: V;
}

/**
 * A key-value registry of processes, after Elixir's `Registry`. With `keys: 'duplicate'` a key may
 * hold many entries (one process may register a key several times); with `keys: 'unique'` one.
 * A process registers itself; its entries vanish when it exits.
 */
export interface KeyRegistry<K = string, V = unknown> {
  readonly keys: 'duplicate' | 'unique';
  /** Registers the calling process under `key`. Unique keys: `{ error: 'already_registered', pid }` when taken. */
  register(ctx: Context<any>, key: K, value: V): 'ok' | { error: 'already_registered'; pid: Pid };
  /** Removes every entry of the calling process under `key`. */
  unregister(ctx: Context<any>, key: K): void;
  /** The entries under `key`, in registration order. */
  lookup(key: K): RegistryEntry<V>[];
  /** Calls `fn` with the entries under `key` (not called when there are none); returns whether it was called. */
  dispatch(key: K, fn: (entries: RegistryEntry<V>[]) => void): boolean;
  /** The keys the process has registered. */
  keysOf(pid: Pid): K[];
  /** The number of keys with entries. */
  readonly size: number;
}

/** @internal The registries made on each node, for leak reports. */
const registries = new WeakMap<Node, Set<{ leftovers(): string[] }>>();

/** @internal */
export function registriesOf(node: Node): readonly { leftovers(): string[] }[] {
  return [...(registries.get(node) ?? [])];
}

class KeyTable<K, V> implements KeyRegistry<K, V> {
  readonly keys: 'duplicate' | 'unique';
  readonly #node: Kernel;
  readonly #byKey = new Map<K, { proc: Proc; entry: RegistryEntry<V> }[]>();
  /** owner -> its keys, and the death hook that clears them */
  readonly #byOwner = new Map<Proc, { keys: Set<K>; unhook: () => void }>();

  constructor(node: Kernel, keys: 'duplicate' | 'unique') {
    this.#node = node;
    this.keys = keys;
  }

  get size(): number {
    return this.#byKey.size;
  }

  register(ctx: Context<any>, key: K, value: V): 'ok' | { error: 'already_registered'; pid: Pid } {
    const proc = ownerOf(ctx, this.#node);
    const list = this.#byKey.get(key);
    if (this.keys === 'unique' && list !== undefined && list.length > 0) return { error: 'already_registered', pid: list[0]!.entry.pid };
    const row = { proc, entry: { pid: proc.self, value } };
    if (list === undefined) this.#byKey.set(key, [row]);
    else list.push(row);
    let owned = this.#byOwner.get(proc);
    if (owned === undefined) {
      const unhook = this.#node.onProcExit(proc, () => this.#release(proc))!; // ownerOf checked it is alive
      this.#byOwner.set(proc, (owned = { keys: new Set(), unhook }));
    }
    owned.keys.add(key);
    return 'ok';
  }

  unregister(ctx: Context<any>, key: K): void {
    const proc = ownerOf(ctx, this.#node);
    this.#drop(key, proc);
    const owned = this.#byOwner.get(proc);
    if (owned === undefined) return;
    owned.keys.delete(key);
    if (owned.keys.size === 0) {
      owned.unhook();
      this.#byOwner.delete(proc);
    }
  }

  lookup(key: K): RegistryEntry<V>[] {
    return (this.#byKey.get(key) ?? []).map((r) => r.entry);
  }

  dispatch(key: K, fn: (entries: RegistryEntry<V>[]) => void): boolean {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (entries) => void', fn);
    const entries = this.lookup(key);
    if (entries.length === 0) return false;
    fn(entries);
    return true;
  }

  keysOf(pid: Pid): K[] {
    const proc = this.#node.resolve(pid);
    return proc === undefined ? [] : [...(this.#byOwner.get(proc)?.keys ?? [])];
  }

  /** @internal Owners with entries, for leak checks. */
  get owners(): number {
    return this.#byOwner.size;
  }

  /** @internal Entries of processes that are no longer alive (there should be none). */
  leftovers(): string[] {
    const out: string[] = [];
    for (const [key, rows] of this.#byKey) {
      for (const r of rows) if (!this.#node.isAlive(r.entry.pid)) out.push(`registry key ${String(key)} still holds the dead process ${String(r.entry.pid)}`);
    }
    return out;
  }

  #release(proc: Proc): void {
    const owned = this.#byOwner.get(proc);
    if (owned === undefined) return;
    this.#byOwner.delete(proc);
    for (const key of owned.keys) this.#drop(key, proc);
  }

  #drop(key: K, proc: Proc): void {
    const list = this.#byKey.get(key);
    if (list === undefined) return;
    const rest = list.filter((r) => r.proc !== proc);
    if (rest.length === 0) this.#byKey.delete(key);
    else this.#byKey.set(key, rest);
  }
}

function ownerOf(ctx: Context<any>, node: Kernel): Proc {
  if (!isProcess(ctx) || kernelOfProcess(ctx) !== node) throw new InvalidArgumentError('ctx', "the registering process's own Context, on the registry's node", ctx);
  if (!node.isAlive(ctx.self)) {
    node.zombieCall(ctx, 'Registry');
    throw new ProcessExitedError(String(ctx.self), 'Registry');
  }
  return ctx;
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
  create<K = string, V = unknown>(node: Node, options: { keys: 'duplicate' | 'unique' }): KeyRegistry<K, V> {
    // a node by its shape (another copy of the package makes nodes too)
    if (typeof (node as Partial<Kernel>).onProcExit !== 'function') throw new InvalidArgumentError('node', 'a Node', node);
    const kernel = node as Kernel;
    if (typeof options !== 'object' || options === null || (options.keys !== 'duplicate' && options.keys !== 'unique')) {
      throw new InvalidArgumentError('options.keys', "'duplicate' | 'unique'", options?.keys);
    }
    const table = new KeyTable<K, V>(kernel, options.keys);
    let set = registries.get(kernel);
    if (set === undefined) registries.set(kernel, (set = new Set()));
    set.add(table);
    return table;
  },
};
