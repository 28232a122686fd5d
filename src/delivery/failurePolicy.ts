import { inspect } from 'node:util';
import { DeliveryError, thrownText } from '../errors.js';
import type { EnvelopeListener, Kernel } from '../runtime/kernel.js';
import { formatReason } from '../runtime/messages.js';
import { type Target, targetText } from '../runtime/Pid.js';
import { deadLetterAndReport } from './deadLetter.js';
import type { SendOutcome, Settings } from './sendTypes.js';
import { checkSerializable } from './stores/DeadLetterStore.js';

// @internal What becomes of a supervised send that failed for good (its `onError` policy), and of a
// message acknowledged at `'enqueued'` that never reached its handler.
/**
 * @internal What becomes of a message acknowledged at `'enqueued'` that never reaches its handler: the
 * send has succeeded, but with `onError: 'dead_letter'` the message is not left to vanish. When its
 * receiver exits with it still queued it is dead-lettered (`receiver_exited`), and when a
 * `drop_oldest` mailbox evicts it, too (`mailbox_full`). Other policies have the one
 * `keel.message.dropped` event of the receiver's death, or the eviction's own.
 */
class AfterEnqueue implements EnvelopeListener {
  readonly #node: Kernel;
  readonly #to: Target;
  readonly #message: unknown;
  readonly #s: Settings;
  readonly #id: string;
  /** The attempts the send took to enqueue it (its dead letter's `metadata.attempts`). */
  readonly #attempts: number;
  constructor(node: Kernel, to: Target, message: unknown, s: Settings, id: string, attempts: number) {
    this.#node = node;
    this.#to = to;
    this.#message = message;
    this.#s = s;
    this.#id = id;
    this.#attempts = attempts;
  }
  handled(): void {}
  failed(outcome: 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void {
    if (outcome !== 'down' && outcome !== 'dropped') return; // a crash while handling it was the receiver's own exit
    const reason = outcome === 'down' ? 'receiver_exited' : 'mailbox_full';
    const outcomeOf: SendOutcome = { ok: false, id: this.#id, reason: 'process_down', attempts: this.#attempts, firstError: error ?? reason, lastError: error ?? reason };
    void deadLetter(this.#node, this.#to, this.#message, this.#s, outcomeOf, reason);
  }
}

/** @internal The listener of an `'enqueued'` envelope, when its policy wants one (see {@link AfterEnqueue}). */
export function afterEnqueue(node: Kernel, to: Target, message: unknown, s: Settings, id: string, attempts = 1): EnvelopeListener | undefined {
  return s.onError === 'dead_letter' ? new AfterEnqueue(node, to, message, s, id, attempts) : undefined;
}

/** @internal Runs the final-failure policy: log, dead-letter, ignore or raise. */
export async function onFailure(node: Kernel, to: Target, message: unknown, s: Settings, outcome: SendOutcome): Promise<SendOutcome> {
  if (outcome.ok) return outcome;
  switch (s.onError) {
    case 'log':
      node.logger.warn(`supervised send ${outcome.id} to ${targetText(to)} failed after ${outcome.attempts} attempt(s): ${outcome.reason}`, outcome.lastError);
      return outcome;
    case 'ignore':
      return outcome;
    case 'raise':
      throw new DeliveryError(targetText(to), outcome.reason, outcome.attempts, outcome);
    case 'dead_letter':
      return deadLetter(node, to, message, s, outcome, outcome.reason);
  }
}

/** Hands a message that could not be delivered to the dead letter queue; the outcome says where it went. */
async function deadLetter(node: Kernel, to: Target, message: unknown, s: Settings, outcome: SendOutcome & { ok: false }, reason: string): Promise<SendOutcome> {
  const where = await deadLetterAndReport(node, {
    recipient: to,
    message,
    reason,
    // a 'handled' send is redelivered as one, within the same per-attempt timeout
    metadata: () => ({
      ...s.metadata,
      id: outcome.id,
      attempts: outcome.attempts,
      lastError: describeError(outcome.lastError),
      ...(s.ack === 'handled' ? { ack: 'handled', timeout: s.timeout } : {}),
    }),
  }, `supervised send ${outcome.id}`);
  return { ...outcome, ...where };
}

function describeError(e: unknown): unknown {
  // only a diagnostic: what cannot be read (an Error whose message getter throws) or stored (a
  // thrown object holding a function, a class instance) goes as a text, rather than have the queue
  // refuse the message with it
  try {
    if (e instanceof Error) return `${e.name}: ${e.message}`;
    if (typeof e === 'object' && e !== null && 'shutdown' in e) return formatReason(e as never);
    if ((typeof e === 'object' && e !== null) || typeof e === 'function' || typeof e === 'symbol') {
      try {
        checkSerializable(e, 'lastError');
      } catch {
        return inspect(e);
      }
    }
    return e;
  } catch {
    return thrownText(e);
  }
}

