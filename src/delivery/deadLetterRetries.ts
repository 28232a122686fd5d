import type { Kernel } from '../runtime/kernel.js';
import { isPid, nameOf, Pid, type Target } from '../runtime/Pid.js';
import { backoffDelay } from '../backoff.js';
import type { Settings } from './deadLetterOptions.js';
import { DLQ_PROCESS, REARM } from './deadLetterProcess.js';
import { sendOnce, toSettings } from './sendSupervised.js';
import type { DeadLetterStore, Record_ } from './stores/DeadLetterStore.js';
import type { SqliteStore } from './stores/SqliteStore.js';

// The dead letter queue's retries: one entry delivered again (by the automatic retry, by `retry()`,
// or redriven elsewhere), parked past its attempts, the automatic run over the due entries when the
// queue's process wakes, and when it must wake next (and wake earlier, for an entry due sooner).

const PID_TEXT = /^<.+\.\d+\.\d+>$/;
/** How often the queue looks again at a store it could not read. */
const READ_RETRY_MS = 5000;

/** A stored recipient back as a target: a formatted pid if it parses as one, else a name. */
function recipientOf(text: string): Target {
  if (!PID_TEXT.test(text)) return text;
  try {
    return Pid.parse(text);
  } catch {
    return text;
  }
}

/** @internal What the retries need of their queue: its store and settings, whether it runs, and the counts they keep. */
export interface RetryHost {
  readonly store: DeadLetterStore;
  readonly settings: Readonly<Settings>;
  /** True until the node shuts down. */
  readonly available: boolean;
  retried: number;
  succeeded: number;
}

/**
 * @internal The retries of a node's dead letter queue: the entries in flight and the wake-up the
 * queue's process armed (its own timer lives in the process).
 */
export class Retries {
  readonly #node: Kernel;
  readonly #host: RetryHost;
  /** When the queue's process will wake next (Infinity when it sleeps with nothing to do). */
  armedAt = Infinity;
  #rearmSent = false;
  /** Entries being retried now (by the automatic retry or `retry()`), never retried twice at once. */
  readonly #busy = new Set<string>();
  /**
   * Entries whose retry the store could not record (its writes threw, parking them too): left out of
   * the automatic retries, which would otherwise take them again at once, delivering each again and
   * again, until a manual retry (or the node's restart) tries them again.
   */
  readonly #unrecorded = new Set<string>();
  /** True from a read of the store that threw (logged then, once) until the reads of a wake succeed. */
  #readFailing = false;
  /** When the last wake could not read its due entries: the queue looks again then, not before. */
  #readAgainAt: number | undefined = undefined;

  constructor(node: Kernel, host: RetryHost) {
    this.#node = node;
    this.#host = host;
  }

  /** The process sleeps until `armedAt`: wakes it earlier only for an entry due before that, once. */
  wakeFor(nextRetryAt: number): void {
    if (nextRetryAt < this.armedAt && !this.#rearmSent) {
      const process = this.#node.registry.whereis(DLQ_PROCESS);
      if (process !== undefined) {
        this.#rearmSent = true;
        this.#node.send(process, REARM);
      }
    }
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
   * An abort of `signal` (a `retry()`'s, or the exit of the queue's process) gives the redelivery up at
   * once: no attempt of the entry's, which stays as it was.
   */
  async redeliver(snapshot: Record_, manual: boolean, to?: Target, signal?: AbortSignal): Promise<{ id: string; ok: boolean; reason?: string }> {
    if (this.#busy.has(snapshot.id)) return { id: snapshot.id, ok: false, reason: 'in_progress' };
    if (!manual && this.#unrecorded.has(snapshot.id)) return { id: snapshot.id, ok: false, reason: 'not_due' };
    // from the start of the node's shutdown on, nothing is retried: its receivers are going
    if (this.#node.stopping || signal?.aborted === true) return { id: snapshot.id, ok: false, reason: 'aborted' };
    this.#busy.add(snapshot.id);
    this.#unrecorded.delete(snapshot.id);
    const node = this.#node;
    const now = node.clock.now();
    let r: Record_ | undefined;
    /** The entry's next retry time when it is left pending. */
    let pendingAt: number | undefined;
    try {
      // the entry as it is now: a batch taken earlier may hold entries purged, delivered or parked
      // since (read under the guard: a store that throws here must not leave the entry marked busy)
      r = this.#host.store.get(snapshot.id);
      if (r === undefined) return { id: snapshot.id, ok: false, reason: 'not_found' };
      if (!manual && (r.status !== 'pending' || r.nextRetryAt > now)) return { id: r.id, ok: false, reason: 'not_due' };
      if (r.undecodable !== undefined) {
        // a corrupt row: there is nothing to deliver, and retrying will not change that
        this.#park(r, now, 'undecodable', `the stored message and metadata (${r.undecodable.bytes} bytes) could not be decoded (${r.undecodable.error})`);
        return { id: r.id, ok: false, reason: 'undecodable' };
      }
      // a redrive to a process or name not alive here is the operator's mistake, not the entry's; so
      // is one to a pid of another node when no cluster carries supervised sends from this one
      const local = to === undefined || typeof to === 'string' || !isPid(to) || to.node === node.name;
      if (to !== undefined && (local ? !node.isAlive(to) : node.remote?.supervised === undefined)) return { id: r.id, ok: false, reason: 'noproc' };
      const target = to ?? recipientOf(r.recipient);
      // a redrive there is the operator's mistake too: the entry stays as it is
      if (to !== undefined && this.#isOwnProcess(to)) return { id: r.id, ok: false, reason: 'unrecoverable' };
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
      const outcome = await sendOnce(node, undefined, target, r.message, redeliverySettings(r.metadata, id, this.#host.settings.maxRedeliveryWaitMs, signal));
      // a redelivery waits for the handler (up to its timeout): the backoff counts from when it ended
      const ended = node.clock.now();
      // a redelivery cut short by the node's shutdown (its receiver killed, or the send given up) or
      // given up by its signal (the send aborted: a copy not yet started withdrawn, one started let go
      // of) is no attempt of the entry's: it stays as it was, for a later retry
      if (!outcome.ok && (node.stopping || outcome.reason === 'aborted')) return { id: r.id, ok: false, reason: 'aborted' };
      this.#host.retried++;
      if (outcome.ok) {
        // the store closed while the redelivery waited (at the end of the node's shutdown: a send to
        // another node may answer then): the message was handled, but a closed file cannot remove
        // its entry, which the next start delivers again, under the same message id. Said, never silent
        if (!this.#host.available && this.#host.store.kind === 'sqlite') {
          node.telemetry.execute('keel.dead_letter_queue.removal_lost', { attempts: r.attempts + 1 }, { id: r.id, recipient: r.recipient, manual, messageId: id });
          node.logger.error(
            `the dead letter queue redelivered entry ${r.id} (to ${r.recipient}) and its receiver handled it, but the store ${(this.#host.store as SqliteStore).file} had closed: the entry stays in it and is delivered again after a restart, under the same message id ${id} (dedupe on ctx.messageId)`,
          );
          return { id: r.id, ok: true, reason: 'removal_lost' };
        }
        // purged while the redelivery waited for its receiver: the purge was its end, counted then
        // (the receiver handled it all the same, as the result says)
        if (this.#host.store.get(r.id) === undefined) return { id: r.id, ok: true };
        this.#host.store.remove(r.id);
        this.#host.succeeded++;
        node.telemetry.execute('keel.dead_letter_queue.succeeded', { attempts: r.attempts + 1 }, { id: r.id, recipient: r.recipient, manual });
        return { id: r.id, ok: true };
      }
      const attempts = r.attempts + 1;
      node.telemetry.execute('keel.dead_letter_queue.retried', { attempt: attempts }, { id: r.id, recipient: r.recipient, reason: outcome.reason, manual });
      // purged while the redelivery waited for its receiver: nothing to park or reschedule
      if (this.#host.store.get(r.id) === undefined) return { id: r.id, ok: false, reason: outcome.reason };
      if (attempts >= this.#host.settings.maxRetries) {
        this.#park({ ...r, attempts }, ended, outcome.reason, outcome.lastError);
      } else {
        pendingAt = ended + Math.round(backoffDelay(this.#host.settings.backoff, attempts + 1, node.random));
        this.#host.store.update(r.id, { attempts, lastAttemptAt: ended, lastError: outcome.lastError, status: 'pending', nextRetryAt: pendingAt });
      }
      return { id: r.id, ok: false, reason: outcome.reason };
    } catch (e) {
      // one bad entry never crashes the queue: it is parked with the error (as it was listed, when
      // the store could not even read it again)
      try {
        this.#park(r ?? snapshot, now, 'unrecoverable', e);
      } catch (parkError) {
        // nor does a store that cannot write at all: the entry stays as the store has it, out of the automatic retries
        this.#unrecorded.add(snapshot.id);
        node.logger.error(
          `the dead letter queue could not record the retry of entry ${snapshot.id} (to ${snapshot.recipient}); it is not retried again until a manual retry or the node's restart`,
          parkError === e ? e : new AggregateError([e, parkError], 'the retry, then its park, threw'),
        );
      }
      return { id: snapshot.id, ok: false, reason: 'unrecoverable' };
    } finally {
      this.#busy.delete(snapshot.id);
      // the process does not wake for an entry in flight (see nextWake): once a manual retry leaves
      // it pending, its new retry time is one to wake for (the automatic run re-arms by itself)
      if (manual && pendingAt !== undefined) this.wakeFor(pendingAt);
    }
  }

  #park(r: Record_, now: number, reason: string, error: unknown): void {
    this.#host.store.update(r.id, { attempts: r.attempts, lastAttemptAt: now, lastError: error, status: 'parked' });
    this.#node.telemetry.execute('keel.dead_letter_queue.parked', { attempts: r.attempts }, { id: r.id, recipient: r.recipient, reason });
  }

  /**
   * @internal The automatic retry, run by the queue's process when it wakes: re-read the store (a
   * durable one may have been changed by the CLI), retry the due entries with bounded concurrency,
   * expire parked entries past their TTL. Returns when to wake next. An abort of `signal` (the exit
   * of the queue's process: a shutdown, say) gives up the redeliveries in flight and starts no more.
   */
  async runDue(signal?: AbortSignal): Promise<number | undefined> {
    if (!this.#host.available) return undefined;
    const node = this.#node;
    const now = node.clock.now();
    let expired = 0;
    try {
      expired = this.#host.store.expire(now - this.#host.settings.parkedTtlMs);
    } catch (e) {
      // a durable file that cannot be written now (locked by another connection, full): the parked
      // entries wait for the next wake; the due ones are retried all the same, and the process lives on
      const where = this.#host.store.kind === 'sqlite' ? ` from ${(this.#host.store as SqliteStore).file}` : '';
      node.logger.error(`the dead letter queue could not purge its expired parked entries${where}; it tries again at its next wake`, e);
    }
    if (expired > 0) node.telemetry.execute('keel.dead_letter_queue.purged', { count: expired }, { ttl: true });
    // a bounded batch per wake: the process wakes again at once if more are due
    let due: Record_[];
    try {
      due = this.#host.store.due(now, this.#host.settings.retryConcurrency * 64).filter((r) => !this.#held(r.id));
    } catch (e) {
      // a store that cannot be read now (a disk error, a damaged file): looked at again later, the process lives on
      this.#readFailed(e);
      this.#readAgainAt = now + READ_RETRY_MS;
      return this.nextWake();
    }
    this.#readAgainAt = undefined;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < due.length && this.#host.available && signal?.aborted !== true) await this.redeliver(due[next++]!, false, undefined, signal);
    };
    await Promise.all(Array.from({ length: Math.min(this.#host.settings.retryConcurrency, due.length) }, worker));
    return this.nextWake();
  }

  /** True when the automatic retry leaves `id` alone: in flight, or its last retry could not be recorded. */
  #held(id: string): boolean {
    return this.#busy.has(id) || this.#unrecorded.has(id);
  }

  /** @internal The process armed its wake-up for `at` (Infinity: none). */
  armed(at: number): void {
    this.armedAt = at;
    this.#rearmSent = false;
  }

  /** A read of the store threw: logged when the reads start to fail, not at every try. */
  #readFailed(e: unknown): void {
    if (this.#readFailing) return;
    this.#readFailing = true;
    const where = this.#host.store.kind === 'sqlite' ? ` ${(this.#host.store as SqliteStore).file}` : '';
    this.#node.logger.error(`the dead letter queue could not read its store${where}; it looks again every ${READ_RETRY_MS} ms until it can`, e);
  }

  /** @internal The next time the queue has something to do, if any (while its store cannot be read, when to look again). */
  nextWake(): number | undefined {
    if (!this.#host.available) return undefined;
    let at: number | undefined;
    try {
      at = this.#nextWake();
    } catch (e) {
      this.#readFailed(e);
      return this.#node.clock.now() + READ_RETRY_MS;
    }
    if (this.#readAgainAt !== undefined) return this.#readAgainAt;
    this.#readFailing = false;
    return at;
  }

  #nextWake(): number | undefined {
    let pending = this.#host.store.earliest();
    // entries due but in flight (a manual retry), or whose retry could not be recorded, are not due
    // again: were they all, waking for them would find nothing to do, again and again
    const held = this.#busy.size + this.#unrecorded.size;
    if (pending !== undefined && held > 0) {
      const now = this.#node.clock.now();
      if (pending <= now && this.#host.store.due(now, held + 1).every((r) => this.#held(r.id))) pending = this.#host.store.earliest(now);
    }
    const parked = this.#host.store.earliestParked();
    const expiry = parked === undefined ? undefined : parked + this.#host.settings.parkedTtlMs;
    if (pending === undefined) return expiry;
    return expiry === undefined ? pending : Math.min(pending, expiry);
  }
}

/**
 * How an entry is redelivered: always acknowledged at `'handled'`, whatever the original send's
 * `ack`. The entry is the only durable copy of its message, and success removes it: a message that
 * is only in a mailbox (`'enqueued'`) would be lost with the OS process. So the entry goes only once
 * the receiver's handler has finished it, within the original send's `timeout` if it had one (a
 * `'handled'` send's metadata carries it), else 5000 ms, and never longer than `maxWaitMs` (a send
 * whose timeout was Infinity would otherwise hold a retry slot for ever); a receiver that dies with
 * it still queued, crashes on it or does not finish it in time leaves it pending (and the unstarted
 * copy withdrawn). An abort of `signal` ends it at once, `aborted`.
 */
function redeliverySettings(metadata: Record<string, unknown>, id: string, maxWaitMs: number, signal: AbortSignal | undefined): ReturnType<typeof toSettings> {
  // a 'handled' send's own timeout only: a `timeout` alone in the metadata is the application's (an HTTP call's, say)
  const own = metadata.ack === 'handled' && typeof metadata.timeout === 'number' && metadata.timeout >= 0 ? metadata.timeout : 5000;
  return toSettings({ ack: 'handled', onError: 'ignore', timeout: Math.min(own, maxWaitMs), id, ...(signal === undefined ? {} : { signal }) });
}
