import { deserialize } from 'node:v8';
import { StoreUnavailableError } from '../../errors.js';
import { type AgentStore, type AgentStoreLoad, type AgentStoreRecord, checkIdentity, checkScope, type CorruptRecord, synchronousFn, encodeValue } from './AgentStore.js';

/**
 * @internal The memory store: the same contract as the SQLite one (values copied in, checked, read
 * back as copies), gone with the OS process. Records are held encoded, as a file holds them.
 */
export class MemoryAgentStore implements AgentStore {
  readonly kind = 'memory' as const;
  /** component → kind → key → encoded value */
  readonly #rows = new Map<string, Map<string, Map<string, Buffer>>>();
  #closed = false;
  /** Writes of the transaction under way, undone if it throws. */
  #undo: (() => void)[] | undefined;

  #open(): void {
    if (this.#closed) throw new StoreUnavailableError('(memory)', 'it is closed (its node has shut down)', undefined, 'use a store of a running node', undefined, 'agent store');
  }

  #kindMap(component: string, kind: string, create: boolean): Map<string, Buffer> | undefined {
    let kinds = this.#rows.get(component);
    if (kinds === undefined) {
      if (!create) return undefined;
      kinds = new Map();
      this.#rows.set(component, kinds);
    }
    let keys = kinds.get(kind);
    if (keys === undefined && create) {
      keys = new Map();
      kinds.set(kind, keys);
    }
    return keys;
  }

  #set(component: string, kind: string, key: string, value: Buffer | undefined): void {
    const keys = this.#kindMap(component, kind, value !== undefined)!;
    const before = keys?.get(key);
    if (value === undefined) keys?.delete(key);
    else keys.set(key, value);
    this.#undo?.push(() => {
      const k = this.#kindMap(component, kind, true)!;
      if (before === undefined) k.delete(key);
      else k.set(key, before);
    });
  }

  put(component: string, kind: string, key: string, value: unknown): void {
    this.#open();
    checkIdentity(component, kind, key);
    this.#set(component, kind, key, encodeValue(value));
  }

  insert(component: string, kind: string, key: string, value: unknown): boolean {
    this.#open();
    checkIdentity(component, kind, key);
    const encoded = encodeValue(value);
    if (this.#kindMap(component, kind, false)?.has(key) === true) return false;
    this.#set(component, kind, key, encoded);
    return true;
  }

  delete(component: string, kind: string, key: string): boolean {
    this.#open();
    checkIdentity(component, kind, key);
    if (this.#kindMap(component, kind, false)?.has(key) !== true) return false;
    this.#set(component, kind, key, undefined);
    return true;
  }

  deleteAll(component: string, kind?: string): number {
    this.#open();
    checkScope(component, kind);
    let n = 0;
    for (const r of this.#list(component, kind)) {
      this.#set(component, r.kind, r.key, undefined);
      n++;
    }
    return n;
  }

  #list(component: string, kind: string | undefined): { kind: string; key: string; value: Buffer }[] {
    const kinds = this.#rows.get(component);
    if (kinds === undefined) return [];
    const out: { kind: string; key: string; value: Buffer }[] = [];
    for (const [k, keys] of kinds) {
      if (kind !== undefined && k !== kind) continue;
      for (const [key, value] of keys) out.push({ kind: k, key, value });
    }
    return out.sort((a, b) => (a.kind === b.kind ? byCodePoint(a.key, b.key) : byCodePoint(a.kind, b.kind)));
  }

  loadAll(component: string, kind?: string): AgentStoreLoad {
    this.#open();
    checkScope(component, kind);
    const records: AgentStoreRecord[] = [];
    const corrupt: CorruptRecord[] = [];
    for (const r of this.#list(component, kind)) {
      try {
        records.push({ component, kind: r.kind, key: r.key, value: deserialize(r.value) });
      } catch (e) {
        corrupt.push({ component, kind: r.kind, key: r.key, error: e instanceof Error ? e.message : String(e) });
      }
    }
    return { records, corrupt };
  }

  transaction<T>(given: () => T): T {
    this.#open();
    const fn = synchronousFn<T>(given);
    const outer = this.#undo;
    if (outer !== undefined) {
      // nested (a savepoint): its writes are undone if it throws, the outer one's kept
      const mark = outer.length;
      try {
        return fn();
      } catch (e) {
        for (const u of outer.splice(mark).reverse()) u();
        throw e;
      }
    }
    const undo: (() => void)[] = [];
    this.#undo = undo;
    try {
      return fn();
    } catch (e) {
      for (const u of undo.reverse()) u();
      throw e;
    } finally {
      this.#undo = undefined;
    }
  }

  close(): void {
    this.#closed = true;
    this.#rows.clear();
  }
}

/**
 * Orders two strings by code point, as SQLite orders text (its BINARY collation compares UTF-8
 * bytes): `<` compares UTF-16 code units, which puts a character above U+FFFF (a surrogate pair)
 * before U+E000..U+FFFF, so the two stores would load the same keys in different orders.
 */
function byCodePoint(a: string, b: string): number {
  if (a === b) return 0;
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    // a surrogate (0xD800..0xDFFF) stands for a code point above every BMP unit that is not one
    const sx = x >= 0xd800 && x <= 0xdfff;
    const sy = y >= 0xd800 && y <= 0xdfff;
    if (sx !== sy) return sx ? 1 : -1;
    return x < y ? -1 : 1;
  }
  return a.length - b.length;
}
