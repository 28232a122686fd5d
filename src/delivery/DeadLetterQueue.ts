import { types } from 'node:util';
import { checkKeys, InvalidArgumentError, isKeelError, NotSerializableError, ServiceUnavailableError } from '../errors.js';
import type { GenServerSpec } from '../otp/GenServer.js';
import { keelServer, unexpectedInfo } from '../otp/internal/keelServer.js';
import { type Kernel, kernelOf, type Proc } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { checkTarget, isPid, nameOf, Pid, type Target } from '../runtime/Pid.js';
import type { DeadLetter, DeadLetterFilter, DeadLetterQueue, DeadLetterStats, ServicesOptions } from '../runtime/serviceSlots.js';
import type { Context } from '../runtime/types.js';
import { type Backoff, backoffDelay, toBackoff } from '../backoff.js';
import { sendOnce, toSettings } from './sendSupervised.js';
import { checkFilter, checkSerializable, type DeadLetterStore, type Record_, thrownText } from './stores/DeadLetterStore.js';
import { MemoryStore } from './stores/MemoryStore.js';
import { SqliteStore, type SqliteStoreOptions } from './stores/SqliteStore.js';
import { LOCKED, lockRetryDelay, NODE_BUSY_TIMEOUT_MS, NODE_LOCK_WAIT_MS, sqliteCode } from './stores/sqliteFile.js';

/** Dead letter queue options (`createNode({ services: { deadLetters } })`). */
export type DeadLetterOptions = NonNullable<ServicesOptions['deadLetters']>;

interface Settings {
  readonly capacity: number;
  readonly maxRetries: number;
  readonly backoff: Backoff;
  readonly parkedTtlMs: number;
  readonly retryConcurrency: number;
  readonly maxRedeliveryWaitMs: number;
}

/** The registered name of the queue's process. */
export const DLQ_PROCESS = 'keel.dead_letter_queue';
const PID_TEXT = /^<.+\.\d+\.\d+>$/;

function settings(o: DeadLetterOptions): Settings {
  checkKeys(o, ['store', 'capacity', 'maxRetries', 'backoff', 'parkedTtlMs', 'retryConcurrency', 'maxRedeliveryWaitMs'], 'services.deadLetters');
  const int = (key: 'capacity' | 'maxRetries' | 'retryConcurrency', fallback: number, min: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (!Number.isSafeInteger(v) || (v as number) < min) throw new InvalidArgumentError(`services.deadLetters.${key}`, `an integer >= ${min}`, v);
    return v as number;
  };
  const ttl = o.parkedTtlMs ?? 7 * 24 * 3600 * 1000;
  if (typeof ttl !== 'number' || !Number.isFinite(ttl) || ttl < 0) throw new InvalidArgumentError('services.deadLetters.parkedTtlMs', 'a number of ms >= 0', ttl);
  const wait = o.maxRedeliveryWaitMs ?? 300_000;
  // finite: a redelivery that could wait for ever would hold one of the retry slots for ever
  if (typeof wait !== 'number' || !Number.isFinite(wait) || wait < 0) throw new InvalidArgumentError('services.deadLetters.maxRedeliveryWaitMs', 'a finite number of ms >= 0', wait);
  return {
    capacity: int('capacity', 10_000, 1),
    maxRetries: int('maxRetries', 5, 0),
    backoff: toBackoff(o.backoff ?? { initialMs: 1000, factor: 2, maxMs: 300_000 }, 'services.deadLetters.backoff'),
    parkedTtlMs: ttl,
    retryConcurrency: int('retryConcurrency', 8, 1),
    maxRedeliveryWaitMs: wait,
  };
}

/**
 * The ids of a `retry` given a list (undefined when it is given a filter): every element a non-empty
 * string, read index by index, so that a hole is refused at once (a sparse array of length 2**32-1
 * included) and a proxy is no list.
 */
function idList(selection: unknown): string[] | undefined {
  if (typeof selection !== 'object' || selection === null || types.isProxy(selection) || !Array.isArray(selection)) return undefined;
  const ids: string[] = [];
  for (let i = 0; i < selection.length; i++) {
    let id: unknown;
    try {
      id = selection[i];
    } catch (e) {
      throw new InvalidArgumentError(`ids[${i}]`, 'a dead letter id that can be read', selection, `reading it threw ${thrownText(e)}`);
    }
    if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('ids', 'an array of dead letter ids', selection);
    ids.push(id);
  }
  return ids;
}

/** A stored recipient back as a target: a formatted pid if it parses as one, else a name. */
function recipientOf(text: string): Target {
  if (!PID_TEXT.test(text)) return text;
  try {
    return Pid.parse(text);
  } catch {
    return text;
  }
}

/**
 * Settings of a SQLite store that are not part of `ServicesOptions` (Keel's tests give them, on the
 * store's options object): `maxPayloadBytes`, `busyTimeoutMs` and `lockWaitMs`.
 */
function internalStoreOptions(store: object): { maxPayloadBytes?: number; busyTimeoutMs?: number; lockWaitMs?: number } {
  const o = store as { maxPayloadBytes?: unknown; busyTimeoutMs?: unknown; lockWaitMs?: unknown };
  const out: { maxPayloadBytes?: number; busyTimeoutMs?: number; lockWaitMs?: number } = {};
  for (const key of ['maxPayloadBytes', 'busyTimeoutMs', 'lockWaitMs'] as const) {
    const v = o[key];
    if (v === undefined) continue;
    if (!Number.isSafeInteger(v) || (v as number) < 1) throw new InvalidArgumentError(`services.deadLetters.store.${key}`, 'a positive integer', v);
    out[key] = v as number;
  }
  return out;
}

/** `metadata.lastError`, read once more after the check: a getter that throws now is refused as the check refuses one. */
function readLastError(metadata: object): unknown {
  try {
    return (metadata as { lastError?: unknown }).lastError;
  } catch (e) {
    throw new NotSerializableError('metadata.lastError', `a property that throws when read (${thrownText(e)})`);
  }
}

/** A recipient as stored: a formatted pid (`<node.id.creation>`) or a registered name. */
function recipientText(target: Target): string {
  return nameOf(target) ?? Pid.format(target as Pid);
}

/**
 * @internal The node's dead letter queue (service slot 1). Its state lives in its store (node-owned);
 * its process, under the node's services supervisor, owns only the retry wake-up timer, so a crash
 * and restart of that process loses nothing.
 */
export class DeadLetterService implements DeadLetterQueue {
  readonly #node: Kernel;
  readonly #settings: Settings;
  readonly store: DeadLetterStore;
  readonly #ensureStarted: () => void;
  #started = false;
  #closed = false;
  added = 0;
  retried = 0;
  succeeded = 0;
  evicted = 0;
  refused = 0;
  /** Adds the store could not write (see {@link DeadLetterStats.failed}). */
  failed = 0;
  /** When the queue's process will wake next (Infinity when it sleeps with nothing to do). */
  armedAt = Infinity;
  #rearmSent = false;
  readonly #addedProbe: { readonly active: boolean };
  /** Entries being retried now (by the automatic retry or `retry()`), never retried twice at once. */
  readonly #busy = new Set<string>();

  constructor(node: Kernel, options: DeadLetterOptions | undefined, ensureStarted: () => void) {
    const o = options ?? {};
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('services.deadLetters', 'a DeadLetterOptions object', o);
    this.#node = node;
    this.#settings = settings(o);
    this.#ensureStarted = ensureStarted;
    this.#addedProbe = node.telemetry.probe('keel.dead_letter_queue.message_added');
    const store = o.store ?? { kind: 'memory' };
    if (typeof store !== 'object') throw new InvalidArgumentError('services.deadLetters.store', "{ kind: 'memory' } | { kind: 'sqlite', path }", store);
    // maxPayloadBytes and busyTimeoutMs: settings only Keel's own tests give (see internalStoreOptions)
    checkKeys(store, store.kind === 'sqlite' ? ['kind', 'path', 'maxPayloadBytes', 'busyTimeoutMs', 'lockWaitMs'] : ['kind'], 'services.deadLetters.store');
    if (store.kind === 'sqlite') {
      if (typeof store.path !== 'string' || store.path === '') throw new InvalidArgumentError('services.deadLetters.store.path', 'a file path', store.path);
      // a statement waits for a lock at most NODE_BUSY_TIMEOUT_MS (the event loop waits with it); an
      // add that meets one is tried again on the node's clock, up to NODE_LOCK_WAIT_MS in all
      const options: SqliteStoreOptions = {
        busyTimeoutMs: NODE_BUSY_TIMEOUT_MS,
        lockWaitMs: NODE_LOCK_WAIT_MS,
        ...internalStoreOptions(store),
        // the time the node's timers count in: a wall clock stepped back does not stretch the wait
        clock: { now: () => node.timerNow(), setTimer: (ms, fn) => node.setTimer(ms, fn) },
      };
      this.store = new SqliteStore(store.path, `${node.name}-${node.creation}`, (message, error) => node.logger.error(message, error), 'create', options);
    } else if (store.kind === 'memory') {
      this.store = new MemoryStore(this.#settings.capacity, (r) => {
        this.evicted++;
        node.telemetry.execute('keel.dead_letter_queue.evicted', {}, { id: r.id, recipient: r.recipient, reason: r.reason });
      });
    } else {
      throw new InvalidArgumentError('services.deadLetters.store', "{ kind: 'memory' } | { kind: 'sqlite', path }", store);
    }
    node.onShutdown(() => this.close());
  }

  /** True when the store holds entries (a durable store, from an earlier run): its process must run. */
  hasWork(): boolean {
    return this.store.earliest() !== undefined || this.store.earliestParked() !== undefined;
  }

  get settings(): Readonly<Settings> {
    return this.#settings;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.store.close();
  }

  /** True until the node shuts down (its store closes then); then every method rejects with `ServiceUnavailableError`. */
  get available(): boolean {
    return !this.#closed && !this.#node.stopped;
  }

  /** The error of a call once the node has shut down (the queue runs until its store closes, at the end of the shutdown). */
  #unavailable(operation: string): ServiceUnavailableError {
    return new ServiceUnavailableError('deadLetters', 'node_stopped', `deadLetters.${operation}`);
  }

  /** @internal The services supervisor is gone: the next use starts it again. */
  stopped(): void {
    this.#started = false;
  }

  #start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#ensureStarted();
  }

  add(entry: { recipient: Target; message: unknown; reason: string; metadata?: object }): Promise<string> {
    try {
      const stored = this.#add(entry);
      return typeof stored === 'object' && stored !== null && 'then' in stored ? stored : Promise.resolve(stored);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** The id at once for the memory store, a promise of it for a durable one. */
  #add(entry: { recipient: Target; message: unknown; reason: string; metadata?: object }): string | Promise<string> {
    if (!this.available) throw this.#unavailable('add');
    const expected = '{ recipient, message, reason, metadata? }';
    if (typeof entry !== 'object' || entry === null || types.isProxy(entry)) throw new InvalidArgumentError('entry', expected, entry);
    let fields: typeof entry;
    try {
      fields = { recipient: entry.recipient, message: entry.message, reason: entry.reason, metadata: entry.metadata ?? {} };
    } catch (e) {
      throw new InvalidArgumentError('entry', `${expected} whose fields can be read`, entry, `reading one threw ${thrownText(e)}`);
    }
    const { recipient, message, reason, metadata = {} } = fields;
    checkTarget(recipient, 'entry.recipient');
    if (typeof reason !== 'string' || reason === '') throw new InvalidArgumentError('entry.reason', 'a non-empty string', reason);
    if (typeof metadata !== 'object' || metadata === null) throw new InvalidArgumentError('entry.metadata', 'an object', metadata);
    let lastError: unknown;
    try {
      checkSerializable(message);
      checkSerializable(metadata, 'metadata');
      lastError = readLastError(metadata);
    } catch (e) {
      this.refused++;
      throw e;
    }
    const now = this.#node.coarseNow(); // a record's times need no sub-slice precision
    const nextRetryAt = now + Math.round(backoffDelay(this.#settings.backoff, 1, this.#node.random));
    const record = {
        id: '', // the store assigns it; present from the start so the record keeps one shape
        recipient: recipientText(recipient),
        message,
        reason,
        metadata: metadata as Record<string, unknown>,
        attempts: 0,
        firstFailedAt: now,
        lastAttemptAt: now,
        nextRetryAt,
        lastError: lastError ?? reason,
        // with maxRetries 0 the queue never retries on its own: the entry waits, parked, for a manual retry
        status: this.#settings.maxRetries === 0 ? ('parked' as const) : ('pending' as const),
    };
    const stored = this.store.add(record);
    if (typeof stored === 'string') return this.#added(stored, recipient, reason, nextRetryAt);
    return this.#node.trackIo(stored).then(
      (id) => this.#added(id, recipient, reason, nextRetryAt),
      (e: unknown) => {
        // a durable store's own refusal (its serializer, or its size limit): counted as the structural
        // check's refusals are; any other failure (a file locked past the wait, full) is the store's
        if (isKeelError(e, 'ERR_NOT_SERIALIZABLE') || isKeelError(e, 'ERR_DEAD_LETTER_TOO_LARGE')) this.refused++;
        else this.failed++;
        throw e;
      },
    );
  }

  #added(id: string, recipient: Target, reason: string, nextRetryAt: number): string {
    this.added++;
    if (this.#addedProbe.active) this.#node.telemetry.execute('keel.dead_letter_queue.message_added', {}, { id, recipient: recipientText(recipient), reason });
    this.#start();
    if (this.#settings.maxRetries === 0) {
      this.#node.telemetry.execute('keel.dead_letter_queue.parked', { attempts: 0 }, { id, recipient: recipientText(recipient), reason });
    } else this.#wakeFor(nextRetryAt);
    return id;
  }

  /** The process sleeps until `armedAt`: wakes it earlier only for an entry due before that, once. */
  #wakeFor(nextRetryAt: number): void {
    if (nextRetryAt < this.armedAt && !this.#rearmSent) {
      const process = this.#node.registry.whereis(DLQ_PROCESS);
      if (process !== undefined) {
        this.#rearmSent = true;
        this.#node.send(process, REARM);
      }
    }
  }

  async list(filter: DeadLetterFilter & { limit?: number; cursor?: string } = {}): Promise<{ entries: DeadLetter[]; cursor?: string }> {
    if (!this.available) throw this.#unavailable('list');
    const f = checkFilter(filter, true);
    const limit = filter.limit ?? 100;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new InvalidArgumentError('filter.limit', 'a positive integer', limit);
    if (filter.cursor !== undefined && (typeof filter.cursor !== 'string' || !/^\d+$/.test(filter.cursor))) throw new InvalidArgumentError('filter.cursor', 'a cursor returned by list', filter.cursor);
    return this.store.list(f, this.#node.clock.now(), limit, filter.cursor);
  }

  async get(id: string): Promise<DeadLetter | undefined> {
    if (!this.available) throw this.#unavailable('get');
    if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a dead letter id', id);
    return this.store.get(id);
  }

  async retry(
    selection: DeadLetterFilter | string[],
    options: { ratePerSecond?: number; signal?: AbortSignal; to?: Target } = {},
  ): Promise<{ id: string; ok: boolean; reason?: string }[]> {
    if (!this.available) throw this.#unavailable('retry');
    const ids = idList(selection);
    const filter = ids === undefined ? checkFilter(selection) : undefined;
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ ratePerSecond?, signal?, to? }', options);
    checkKeys(options, ['ratePerSecond', 'signal', 'to'], 'options');
    const to = options.to;
    if (to !== undefined) checkTarget(to, 'options.to');
    const rate = options.ratePerSecond;
    // a rate so small that the spacing (1000 / rate ms) is no finite number is refused too, before anything is retried
    if (rate !== undefined && (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || !Number.isFinite(1000 / rate))) {
      throw new InvalidArgumentError('options.ratePerSecond', 'a positive number (whose 1000 / rate ms is finite)', rate);
    }
    if (options.signal !== undefined && !isInstance(options.signal, AbortSignal)) throw new InvalidArgumentError('options.signal', 'an AbortSignal', options.signal);
    const records: Record_[] = [];
    if (ids !== undefined) {
      for (const id of new Set(ids)) {
        const r = this.store.get(id);
        if (r !== undefined) records.push(r);
      }
    } else {
      for (let cursor: string | undefined, page; ; cursor = page.cursor) {
        page = this.store.list(filter!, this.#node.clock.now(), 1000, cursor);
        records.push(...page.entries);
        if (page.cursor === undefined) break;
      }
    }
    const results: { id: string; ok: boolean; reason?: string }[] = [];
    const found = new Set(records.map((r) => r.id));
    for (const id of ids ?? []) if (!found.has(id)) results.push({ id, ok: false, reason: 'not_found' });
    const signal = options.signal;
    const aborted = (): boolean => signal?.aborted === true || !this.available;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      if (i > 0 && rate !== undefined && !aborted()) await this.#pause(1000 / rate, signal);
      results.push(aborted() ? { id: r.id, ok: false, reason: 'aborted' } : await this.#redeliver(r, true, to));
    }
    return results;
  }

  /** Waits `ms` on the node's clock; ends early when `signal` aborts or the node shuts down. */
  #pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        timer.cancel();
        unhook();
        signal?.removeEventListener('abort', done);
        resolve();
      };
      const timer = this.#node.setTimer(ms, done);
      const unhook = this.#node.onShutdown(done);
      signal?.addEventListener('abort', done, { once: true });
    });
  }

  async purge(filter: DeadLetterFilter): Promise<number> {
    if (!this.available) throw this.#unavailable('purge');
    const f = checkFilter(filter);
    const count = await this.#whileLocked('purge', () => this.store.purge(f, this.#node.clock.now()));
    if (count > 0) this.#node.telemetry.execute('keel.dead_letter_queue.purged', { count }, { filter: f });
    return count;
  }

  /**
   * Runs a write of a SQLite store; while it meets a locked file (each try waits at most the short
   * busy timeout, the event loop with it), tries it again on the node's clock, until the store's
   * `lockWaitMs` has passed: then its SQLITE_BUSY is thrown (`ServiceUnavailableError` once the
   * node has shut down meanwhile).
   */
  async #whileLocked<T>(operation: string, write: () => T): Promise<T> {
    const store = this.store;
    if (!(store instanceof SqliteStore)) return write();
    const clock = { now: () => this.#node.timerNow() }; // durations on the timers' time
    const deadline = clock.now() + store.lockWaitMs;
    for (let tries = 0; ; tries++) {
      try {
        return write();
      } catch (e) {
        const left = deadline - clock.now();
        if (!LOCKED.test(sqliteCode(e) ?? '') || left <= 0) throw e;
        await this.#pause(Math.min(lockRetryDelay(tries), left), undefined);
        if (!this.available) throw this.#unavailable(operation);
      }
    }
  }

  async stats(): Promise<DeadLetterStats> {
    if (!this.available) throw this.#unavailable('stats');
    return { ...this.store.counts(), added: this.added, retried: this.retried, succeeded: this.succeeded, evicted: this.evicted, refused: this.refused, failed: this.failed };
  }

  /** True when `target` is the queue's own process (by its name, or its pid). */
  #isOwnProcess(target: Target): boolean {
    const own = this.#node.registry.whereis(DLQ_PROCESS);
    if (own === undefined) return nameOf(target) === DLQ_PROCESS;
    return nameOf(target) === DLQ_PROCESS || (isPid(target) && Pid.equals(target, own));
  }

  /**
   * Delivers one entry again: a name is resolved now; a pid of a dead process is parked at once as
   * unrecoverable. Success removes the entry; a failure counts an attempt, and past `maxRetries`
   * parks it. `manual` retries (from `retry()`) also take parked entries. With `to` (a redrive) the
   * entry goes there instead of to its recipient; a `to` not alive here leaves the entry untouched.
   */
  async #redeliver(snapshot: Record_, manual: boolean, to?: Target): Promise<{ id: string; ok: boolean; reason?: string }> {
    if (this.#busy.has(snapshot.id)) return { id: snapshot.id, ok: false, reason: 'in_progress' };
    this.#busy.add(snapshot.id);
    const node = this.#node;
    const now = node.clock.now();
    let r: Record_ | undefined;
    /** The entry's next retry time when it is left pending. */
    let pendingAt: number | undefined;
    try {
      // the entry as it is now: a batch taken earlier may hold entries purged, delivered or parked
      // since (read under the guard: a store that throws here must not leave the entry marked busy)
      r = this.store.get(snapshot.id);
      if (r === undefined) return { id: snapshot.id, ok: false, reason: 'not_found' };
      if (!manual && (r.status !== 'pending' || r.nextRetryAt > now)) return { id: r.id, ok: false, reason: 'not_due' };
      if (r.undecodable !== undefined) {
        // a corrupt row: there is nothing to deliver, and retrying will not change that
        this.#park(r, now, 'undecodable', `the stored message and metadata (${r.undecodable.bytes} bytes) could not be decoded (${r.undecodable.error})`);
        return { id: r.id, ok: false, reason: 'undecodable' };
      }
      // a redrive to a process or name not alive here is the operator's mistake, not the entry's
      if (to !== undefined && (typeof to === 'string' || !isPid(to) || to.node === node.name) && !node.isAlive(to)) return { id: r.id, ok: false, reason: 'noproc' };
      const target = to ?? recipientOf(r.recipient);
      if (this.#isOwnProcess(target)) {
        // the queue's own process takes no messages, and a redelivery from it to itself would wait
        // for a handler that cannot run until the redelivery ends
        this.#park(r, now, 'unrecoverable', "the recipient is the dead letter queue's own process, which takes no messages");
        return { id: r.id, ok: false, reason: 'unrecoverable' };
      }
      // a pid of this node that died never comes back; one of another node is the cluster's to try
      if (typeof target !== 'string' && (!isPid(target) || target.node === node.name) && !node.isAlive(target)) {
        this.#park(r, now, 'noproc', 'the recipient pid is dead: it never comes back');
        return { id: r.id, ok: false, reason: 'noproc' };
      }
      // one message id per entry, the same at every redelivery (after a restart too), so that a
      // receiver can dedupe: the original send's, else one made of the entry's own stable fields
      const id = typeof r.metadata.id === 'string' && r.metadata.id !== '' ? r.metadata.id : `dead-letter-${r.id}-${r.firstFailedAt}`;
      const outcome = await sendOnce(node, undefined, target, r.message, redeliverySettings(r.metadata, id, this.#settings.maxRedeliveryWaitMs));
      // a redelivery waits for the handler (up to its timeout): the backoff counts from when it ended
      const ended = node.clock.now();
      this.retried++;
      if (outcome.ok) {
        // purged while the redelivery waited for its receiver: the purge was its end, counted then
        // (the receiver handled it all the same, as the result says)
        if (this.store.get(r.id) === undefined) return { id: r.id, ok: true };
        this.store.remove(r.id);
        this.succeeded++;
        node.telemetry.execute('keel.dead_letter_queue.succeeded', { attempts: r.attempts + 1 }, { id: r.id, recipient: r.recipient, manual });
        return { id: r.id, ok: true };
      }
      const attempts = r.attempts + 1;
      node.telemetry.execute('keel.dead_letter_queue.retried', { attempt: attempts }, { id: r.id, recipient: r.recipient, reason: outcome.reason, manual });
      // purged while the redelivery waited for its receiver: nothing to park or reschedule
      if (this.store.get(r.id) === undefined) return { id: r.id, ok: false, reason: outcome.reason };
      if (attempts >= this.#settings.maxRetries) {
        this.#park({ ...r, attempts }, ended, outcome.reason, outcome.lastError);
      } else {
        pendingAt = ended + Math.round(backoffDelay(this.#settings.backoff, attempts + 1, node.random));
        this.store.update(r.id, { attempts, lastAttemptAt: ended, lastError: outcome.lastError, status: 'pending', nextRetryAt: pendingAt });
      }
      return { id: r.id, ok: false, reason: outcome.reason };
    } catch (e) {
      // one bad entry never crashes the queue: it is parked with the error (as it was listed, when
      // the store could not even read it again)
      this.#park(r ?? snapshot, now, 'unrecoverable', e);
      return { id: snapshot.id, ok: false, reason: 'unrecoverable' };
    } finally {
      this.#busy.delete(snapshot.id);
      // the process does not wake for an entry in flight (see nextWake): once a manual retry leaves
      // it pending, its new retry time is one to wake for (the automatic run re-arms by itself)
      if (manual && pendingAt !== undefined) this.#wakeFor(pendingAt);
    }
  }

  #park(r: Record_, now: number, reason: string, error: unknown): void {
    this.store.update(r.id, { attempts: r.attempts, lastAttemptAt: now, lastError: error, status: 'parked' });
    this.#node.telemetry.execute('keel.dead_letter_queue.parked', { attempts: r.attempts }, { id: r.id, recipient: r.recipient, reason });
  }

  /**
   * @internal The automatic retry, run by the queue's process when it wakes: re-read the store (a
   * durable one may have been changed by the CLI), retry the due entries with bounded concurrency,
   * expire parked entries past their TTL. Returns when to wake next.
   */
  async runDue(): Promise<number | undefined> {
    if (!this.available) return undefined;
    const node = this.#node;
    const now = node.clock.now();
    let expired = 0;
    try {
      expired = this.store.expire(now - this.#settings.parkedTtlMs);
    } catch (e) {
      // a durable file that cannot be written now (locked by another connection, full): the parked
      // entries wait for the next wake; the due ones are retried all the same, and the process lives on
      const where = this.store.kind === 'sqlite' ? ` from ${(this.store as SqliteStore).file}` : '';
      node.logger.error(`the dead letter queue could not purge its expired parked entries${where}; it tries again at its next wake`, e);
    }
    if (expired > 0) node.telemetry.execute('keel.dead_letter_queue.purged', { count: expired }, { ttl: true });
    // a bounded batch per wake: the process wakes again at once if more are due
    const due = this.store.due(now, this.#settings.retryConcurrency * 64).filter((r) => !this.#busy.has(r.id));
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length && this.available) await this.#redeliver(due[next++]!, false);
    };
    await Promise.all(Array.from({ length: Math.min(this.#settings.retryConcurrency, due.length) }, worker));
    return this.nextWake();
  }

  /** @internal The process armed its wake-up for `at` (Infinity: none). */
  armed(at: number): void {
    this.armedAt = at;
    this.#rearmSent = false;
  }

  /** @internal The next time the queue has something to do, if any. */
  nextWake(): number | undefined {
    if (!this.available) return undefined;
    let pending = this.store.earliest();
    // entries due but in flight (a manual retry) are not due again: were they all, waking for them
    // would find nothing to do, again and again, until their retry ended
    if (pending !== undefined && this.#busy.size > 0) {
      const now = this.#node.clock.now();
      if (pending <= now && this.store.due(now, this.#busy.size + 1).every((r) => this.#busy.has(r.id))) pending = this.store.earliest(now);
    }
    const parked = this.store.earliestParked();
    const expiry = parked === undefined ? undefined : parked + this.#settings.parkedTtlMs;
    if (pending === undefined) return expiry;
    return expiry === undefined ? pending : Math.min(pending, expiry);
  }
}

/**
 * The process's wake-up: its own value, so that a plain 'wake' sent by anyone is reported as
 * unexpected, never taken for its timer (which left the timer armed beside a new one, for good).
 */
const WAKE = Symbol('wake');
const DURABLE_POLL_MS = 5000;
const REARM = Symbol('rearm');

/**
 * @internal The queue's process: one wake-up timer at the earliest due time (unref'd, on the node's
 * clock); everything else lives in the store.
 */
export function deadLetterProcessSpec(queue: DeadLetterService): GenServerSpec<{ timer: ReturnType<Context['sendAfter']> | undefined; running: boolean }, never, never, undefined> {
  const arm = (ctx: Context<any>, state: { timer: ReturnType<Context['sendAfter']> | undefined }): void => {
    if (state.timer !== undefined) ctx.cancelTimer(state.timer);
    state.timer = undefined;
    const at = queue.nextWake();
    // a durable store may be changed by the CLI (`keel dlq retry`): look at it again at least every 5 s
    const durable = queue.store.kind === 'sqlite';
    const now = ctx.node.clock.now();
    const delay = Math.min(at === undefined ? Infinity : Math.max(0, at - now), durable ? DURABLE_POLL_MS : Infinity);
    if (delay === Infinity) {
      queue.armed(Infinity);
      return;
    }
    state.timer = kernelOf(ctx.node).sendAfter(ctx as Proc, ctx.self, WAKE, delay, true);
    queue.armed(now + delay);
  };
  return keelServer({
    init(_arg, ctx) {
      ctx.trapExits();
      const state = { timer: undefined, running: false };
      arm(ctx, state);
      return state;
    },
    async handleInfo(message, state, ctx) {
      if (message === REARM) {
        if (!state.running) arm(ctx, state);
        else queue.armed(-Infinity); // re-armed when the run ends
        return state;
      }
      if (message !== WAKE) {
        unexpectedInfo(ctx, message);
        return state;
      }
      state.timer = undefined;
      state.running = true;
      try {
        await queue.runDue();
      } finally {
        state.running = false;
      }
      arm(ctx, state);
      return state;
    },
  }, "the dead letter queue's process (use node.deadLetters)");
}

/**
 * How an entry is redelivered: always acknowledged at `'handled'`, whatever the original send's
 * `ack`. The entry is the only durable copy of its message, and success removes it: a message that
 * is only in a mailbox (`'enqueued'`) would be lost with the OS process. So the entry goes only once
 * the receiver's handler has finished it, within the original send's `timeout` if it had one (a
 * `'handled'` send's metadata carries it), else 5000 ms, and never longer than `maxWaitMs` (a send
 * whose timeout was Infinity would otherwise hold a retry slot for ever); a receiver that dies with
 * it still queued, crashes on it or does not finish it in time leaves it pending (and the unstarted
 * copy withdrawn).
 */
function redeliverySettings(metadata: Record<string, unknown>, id: string, maxWaitMs: number): ReturnType<typeof toSettings> {
  // a 'handled' send's own timeout only: a `timeout` alone in the metadata is the application's (an HTTP call's, say)
  const own = metadata.ack === 'handled' && typeof metadata.timeout === 'number' && metadata.timeout >= 0 ? metadata.timeout : 5000;
  return toSettings({ ack: 'handled', onError: 'ignore', timeout: Math.min(own, maxWaitMs), id });
}
