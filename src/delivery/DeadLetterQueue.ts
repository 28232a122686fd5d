import { types } from 'node:util';
import { InvalidArgumentError, isKeelError, NotSerializableError, readKnownOptions, ServiceUnavailableError } from '../errors.js';
import type { Kernel } from '../runtime/kernel.js';
import { isAbortSignal } from '../runtime/safe.js';
import { checkTarget, nameOf, Pid, type Target } from '../runtime/Pid.js';
import type { DeadLetter, DeadLetterFilter, DeadLetterQueue, DeadLetterStats } from '../runtime/serviceSlots.js';
import { backoffDelay } from '../backoff.js';
import { type DeadLetterOptions, openStore, type Settings, settings } from './deadLetterOptions.js';
import { Retries } from './deadLetterRetries.js';
import { pause, whileLocked } from './deadLetterWaits.js';
import { checkFilter, checkSerializable, type DeadLetterStore, type Record_, thrownText } from './stores/DeadLetterStore.js';

// The node's dead letter queue (its public face): entries added, listed, retried by hand, purged,
// counted. Its options are read in deadLetterOptions.ts, its retries run in deadLetterRetries.ts,
// its process (the wake-up timer) is deadLetterProcess.ts, its waits deadLetterWaits.ts.

export type { DeadLetterOptions } from './deadLetterOptions.js';
export { DLQ_PROCESS } from './deadLetterProcess.js';

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

/** `metadata.lastError`, read once more after the check: a getter that throws now is refused as the check refuses one. */
function readLastError(metadata: object): unknown {
  try {
    return (metadata as { lastError?: unknown }).lastError;
  } catch (e) {
    throw new NotSerializableError('metadata.lastError', `a property that throws when read (${thrownText(e)})`);
  }
}

/** How many entries a `retry(filter)` reads from the store at a time. */
const RETRY_PAGE = 256;

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
  readonly #addedProbe: { readonly active: boolean };
  /** The retries: the entries in flight, the process's wake-up (deadLetterRetries.ts). */
  readonly #retries: Retries;

  constructor(node: Kernel, options: DeadLetterOptions | undefined, ensureStarted: () => void) {
    const o = options ?? {};
    if (typeof o !== 'object' || o === null) throw new InvalidArgumentError('services.deadLetters', 'a DeadLetterOptions object', o);
    this.#node = node;
    this.#settings = settings(o);
    this.#ensureStarted = ensureStarted;
    this.#addedProbe = node.telemetry.probe('keel.dead_letter_queue.message_added');
    this.store = openStore(node, o.store ?? { kind: 'memory' }, this.#settings.capacity, (r) => {
      this.evicted++;
      node.telemetry.execute('keel.dead_letter_queue.evicted', {}, { id: r.id, recipient: r.recipient, reason: r.reason });
    });
    this.#retries = new Retries(node, this);
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
    // each field read once, in this order (no intermediate object: this is the hot path of an add)
    let recipient: Target, message: unknown, reason: string, metadata: object;
    try {
      recipient = entry.recipient;
      message = entry.message;
      reason = entry.reason;
      metadata = entry.metadata ?? {};
    } catch (e) {
      throw new InvalidArgumentError('entry', `${expected} whose fields can be read`, entry, `reading one threw ${thrownText(e)}`);
    }
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
    } else this.#retries.wakeFor(nextRetryAt);
    return id;
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
    // each option read once: what is checked is what is used (a getter is not asked again)
    const o = readKnownOptions(options, ['ratePerSecond', 'signal', 'to'], 'options');
    const to = o.to as Target | undefined;
    if (to !== undefined) checkTarget(to, 'options.to');
    const rate = o.ratePerSecond;
    // a rate so small that the spacing (1000 / rate ms) is no finite number is refused too, before anything is retried
    if (rate !== undefined && (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0 || !Number.isFinite(1000 / rate))) {
      throw new InvalidArgumentError('options.ratePerSecond', 'a positive number (whose 1000 / rate ms is finite)', rate);
    }
    const given = o.signal;
    if (given !== undefined && !isAbortSignal(given)) throw new InvalidArgumentError('options.signal', 'an AbortSignal', given);
    const results: { id: string; ok: boolean; reason?: string }[] = [];
    // the retry's own signal: aborted by the caller's, or by the start of the node's shutdown (its
    // receivers are going), which gives up the redelivery in flight at once as an abort does, rather
    // than waiting for the receiver to stop
    const controller = new AbortController();
    const signal = controller.signal;
    const abort = (): void => controller.abort(given?.reason);
    if (given?.aborted === true) abort();
    given?.addEventListener('abort', abort, { once: true });
    const unhook = this.#node.onStopping(() => controller.abort('the node is shutting down'));
    try {
      await this.#retry(ids, filter, { signal, rate, to }, results);
    } finally {
      unhook();
      given?.removeEventListener('abort', abort);
    }
    return results;
  }

  /** A `retry()` once its arguments are checked: answers into `results`, until `signal` aborts. */
  async #retry(
    ids: string[] | undefined,
    filter: DeadLetterFilter | undefined,
    { signal, rate, to }: { signal: AbortSignal; rate: number | undefined; to: Target | undefined },
    results: { id: string; ok: boolean; reason?: string }[],
  ): Promise<void> {
    const aborted = (): boolean => signal.aborted || this.#node.stopping || !this.available;
    let first = true;
    /** Retries one entry (after the rate's wait): false, with nothing done, once the retry is aborted. */
    const retryOne = async (r: Record_): Promise<boolean> => {
      if (!first && rate !== undefined && !aborted()) await pause(this.#node, 1000 / rate, signal);
      first = false;
      if (aborted()) return false;
      // an abort gives up the redelivery in flight too (its entry stays as it was, answering aborted)
      results.push(await this.#retries.redeliver(r, true, to, signal));
      return true;
    };
    if (ids !== undefined) {
      // each id once, read a page (256 ids) at a time as the retry goes (memory is bounded by a page
      // of records, not by the list): in each page the unknown ids answer not_found, then its
      // entries are retried in order
      const unique = [...new Set(ids)];
      let read = 0;
      while (read < unique.length && !aborted()) {
        const records: Record_[] = [];
        for (const id of unique.slice(read, (read += RETRY_PAGE))) {
          const r = this.store.get(id);
          if (r === undefined) results.push({ id, ok: false, reason: 'not_found' });
          else records.push(r);
        }
        for (const r of records) if (!(await retryOne(r))) results.push({ id: r.id, ok: false, reason: 'aborted' });
      }
      // every id given has its answer: those not reached, aborted (the ids not read too)
      for (let i = read; i < unique.length; i++) results.push({ id: unique[i]!, ok: false, reason: 'aborted' });
    } else {
      // an abort ends it at once: the entries not reached (the rest of the queue, maybe) are not read
      pages: for (const page of this.#pages(filter!)) for (const r of page) if (!(await retryOne(r))) break pages;
    }
  }

  /**
   * The entries a filter selects, in insertion order, a page at a time (memory is bounded by a page,
   * not by the queue): those stored when it is called, up to the last id then. An entry added while
   * they are retried is left for later, and one that fails again keeps its id, behind the cursor: each
   * is taken once, and a queue that grows as fast as it is retried does not keep the retry going.
   */
  *#pages(filter: DeadLetterFilter): Generator<Record_[]> {
    const last = this.store.lastId();
    if (last === undefined) return;
    const lastSeq = Number(last);
    const now = this.#node.clock.now();
    for (let cursor: string | undefined; ; ) {
      const page = this.store.list(filter, now, RETRY_PAGE, cursor);
      const entries = page.entries.filter((r) => Number(r.id) <= lastSeq);
      if (entries.length > 0) yield entries;
      if (page.cursor === undefined || entries.length < page.entries.length) return;
      cursor = page.cursor;
    }
  }

  async purge(filter: DeadLetterFilter): Promise<number> {
    if (!this.available) throw this.#unavailable('purge');
    const f = checkFilter(filter);
    const count = await this.#whileLocked('purge', () => this.store.purge(f, this.#node.clock.now()));
    if (count > 0) this.#node.telemetry.execute('keel.dead_letter_queue.purged', { count }, { filter: f });
    return count;
  }

  /** A write of the store, tried again while its file is locked (see deadLetterWaits.ts's whileLocked). */
  #whileLocked<T>(operation: string, write: () => T): Promise<T> {
    return whileLocked(this.#node, this.store, write, () => {
      if (!this.available) throw this.#unavailable(operation);
    });
  }

  async stats(): Promise<DeadLetterStats> {
    if (!this.available) throw this.#unavailable('stats');
    return { ...this.store.counts(), added: this.added, retried: this.retried, succeeded: this.succeeded, evicted: this.evicted, refused: this.refused, failed: this.failed };
  }

  /** @internal The automatic retry, run by the queue's process when it wakes (see Retries.runDue). Returns when to wake next. */
  runDue(signal?: AbortSignal): Promise<number | undefined> {
    return this.#retries.runDue(signal);
  }

  /** @internal The process armed its wake-up for `at` (Infinity: none). */
  armed(at: number): void {
    this.#retries.armed(at);
  }

  /** @internal The next time the queue has something to do, if any. */
  nextWake(): number | undefined {
    return this.#retries.nextWake();
  }
}
