import { serialize } from 'node:v8';
import { InvalidArgumentError, NotSerializableError } from '../../errors.js';
import { checkSerializable } from '../../delivery/stores/DeadLetterStore.js';
import { isInstance } from '../../runtime/safe.js';

/**
 * Where the agent components (scheduler, coordination manager, and next the coordinator) keep the
 * records that must survive their OS process: `{ kind: 'memory' }` (the node's own, gone with the
 * OS process: what the components do without a store) or `{ kind: 'sqlite', path }` (a file, with
 * the optional peer better-sqlite3).
 */
export type AgentStoreConfig = { kind: 'memory' } | { kind: 'sqlite'; path: string };

/**
 * One record: a component's (its registered name), of a `kind` it defines, under a `key` unique
 * within the kind. All three are non-empty strings, the kind and key well-formed (a lone surrogate has
 * no UTF-8 form: they are read back): anything else is refused with `ERR_INVALID_ARGUMENT`, by
 * `loadAll` and `deleteAll` too.
 */
export interface AgentStoreRecord {
  readonly component: string;
  readonly kind: string;
  readonly key: string;
  readonly value: unknown;
}

/** A record that could not be decoded (a corrupt row): skipped by `loadAll`, counted and said why. */
export interface CorruptRecord {
  readonly component: string;
  readonly kind: string;
  readonly key: string;
  readonly error: string;
}

export interface AgentStoreLoad {
  readonly records: AgentStoreRecord[];
  readonly corrupt: CorruptRecord[];
}

/**
 * A store of component state records, synchronous (a call returns once the record is written: with
 * SQLite, committed to the WAL, which survives a SIGKILL of the OS process but not a power loss;
 * except while another connection holds the file's write lock: a node's SQLite store then waits at
 * most 50 ms per statement, and keeps a `put`, `insert`, `delete` or `deleteAll` that meets the lock,
 * answered from its state and seen by every read, to write it once the lock goes: see
 * docs/agents/README.md, "The agent store and a locked file").
 * Values are plain data (what the dead letter queue takes: objects, arrays, primitives, bigints,
 * Dates, Maps, Sets, typed arrays), copied in (`v8.serialize`), so that a later change of the
 * caller's object is not stored; anything else is refused with `NotSerializableError`
 * (`ERR_NOT_SERIALIZABLE`) at the call, and nothing is written.
 *
 * Designed for the coordinator's workflows too: records keyed by workflow id (`put`), a task's
 * result recorded once (`insert` answers false when the key is taken: the first result wins), and
 * several writes as one (`transaction`).
 */
export interface AgentStore {
  readonly kind: 'memory' | 'sqlite';
  /** The file of a SQLite store. */
  readonly path?: string;
  /** Writes (inserts or replaces) one record. */
  put(component: string, kind: string, key: string, value: unknown): void;
  /** Writes a record only if its key is free: true when it was written, false when one was there (kept as it was). */
  insert(component: string, kind: string, key: string, value: unknown): boolean;
  /** Removes one record: whether there was one. */
  delete(component: string, kind: string, key: string): boolean;
  /** Removes every record of `component` (of one `kind`, if given): how many. */
  deleteAll(component: string, kind?: string): number;
  /** Every record of `component` (of one `kind`, if given), in key order; rows that cannot be decoded are in `corrupt` (a SQLite row whose kind or key is not text, which no call can address, is removed as it is reported). */
  loadAll(component: string, kind?: string): AgentStoreLoad;
  /** Runs `fn`'s writes as one: all or none (SQLite: one transaction). `fn` must be synchronous: one that answers a promise is refused with `ERR_INVALID_ARGUMENT` and its writes undone. Nested in another, it is a savepoint: undone alone if it throws. */
  transaction<T>(fn: () => T): T;
  /** Closes it (the node's stores close when the node has shut down); later calls throw `StoreUnavailableError`. */
  close(): void;
}

/** @internal Checks a value for the store and encodes it: a NotSerializableError naming `path` otherwise. */
export function encodeValue(value: unknown, path = 'value'): Buffer {
  try {
    checkSerializable(value, path);
    return serialize(value);
  } catch (e) {
    if (isInstance(e, NotSerializableError)) throw new NotSerializableError(e.path, e.what, 'an agent store value');
    throw new NotSerializableError(path, `a value the serializer refused (${e instanceof Error ? e.message : String(e)})`, 'an agent store value');
  }
}

/**
 * Whether `v` is a non-empty well-formed string: a lone surrogate has no UTF-8 form (SQLite stores
 * its bytes as they are and reads them back as U+FFFD, so the key read is not the key written, and
 * two such keys read back as one).
 */
function identityText(v: unknown): v is string {
  return typeof v === 'string' && v !== '' && !/\p{Cs}/u.test(v);
}

const IDENTITY = 'a non-empty string without lone surrogates';

/**
 * A component: a non-empty string. A registered name may hold a lone surrogate, and the component
 * is only ever matched, never read back from a row (`loadAll` answers the one it was given), so
 * SQLite's bytes for it cannot mislead.
 */
function checkComponent(component: unknown): void {
  if (typeof component !== 'string' || component === '') throw new InvalidArgumentError('component', 'a non-empty string', component);
}

/** @internal Checks the record's identity: a non-empty component, a kind and key non-empty and well-formed (they are read back). */
export function checkIdentity(component: unknown, kind: unknown, key: unknown): void {
  checkComponent(component);
  for (const [name, v] of [['kind', kind], ['key', key]] as const) {
    if (!identityText(v)) throw new InvalidArgumentError(name, IDENTITY, v);
  }
}

/**
 * @internal `transaction`'s fn, made to refuse what breaks all-or-none: a `fn` that is not a function,
 * or one that answers a promise (an async fn: its writes after an await would land outside the
 * transaction, and its rejection would undo nothing). The returned function throws
 * `ERR_INVALID_ARGUMENT` inside the transaction, so the writes made before it are undone.
 */
export function synchronousFn<T>(fn: unknown): () => T {
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a synchronous function () => result', fn);
  return () => {
    const result = (fn as () => T)();
    let then: unknown;
    try {
      then = (typeof result === 'object' || typeof result === 'function') && result !== null ? (result as { then?: unknown }).then : undefined;
    } catch {
      then = undefined; // a result that cannot be read (a revoked proxy) is not a promise: answered as it is
    }
    if (typeof then === 'function') {
      throw new InvalidArgumentError('fn', 'a synchronous function (a transaction cannot span an await: its later writes would not be part of it)', result);
    }
    return result;
  };
}

/** @internal Checks what `deleteAll` and `loadAll` address: a non-empty string component, and kind if given. */
export function checkScope(component: unknown, kind: unknown): void {
  checkComponent(component);
  if (kind !== undefined && !identityText(kind)) throw new InvalidArgumentError('kind', `${IDENTITY} (or undefined: every kind)`, kind);
}

/** @internal A loaded record's key, or undefined when it is not a non-empty string or reading it throws (a custom store's record). */
export function recordKey(record: { readonly key: string }): string | undefined {
  try {
    const key: unknown = record.key;
    return typeof key === 'string' && key !== '' ? key : undefined;
  } catch {
    return undefined;
  }
}
