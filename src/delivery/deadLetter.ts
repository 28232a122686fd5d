import { isKeelError } from '../errors.js';
import type { Target } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';

/** Where a dead-lettered message went: its entry in the queue, or nowhere (the queue could not take it). */
export type DeadLetterResult = { readonly deadLetterId: string } | { readonly deadLetterUnavailable: true };

/**
 * A message for the dead letter queue, as `DeadLetterQueue.add` takes it. `metadata` may be a function
 * that makes it, run under {@link deadLetterAndReport}'s guard: building it may read what a user sent
 * (an error's message, say), and a throw there is a refusal like any other.
 */
export interface DeadLetterEntry {
  readonly recipient: Target;
  readonly message: unknown;
  readonly reason: string;
  readonly metadata?: object | (() => object);
}

const UNAVAILABLE: DeadLetterResult = Object.freeze({ deadLetterUnavailable: true as const });

/**
 * Dead-letters `entry` on `node` and reports where it went; never throws and never rejects. A queue
 * that is off or shut down (it rejects with `ERR_SERVICE_UNAVAILABLE`, or answers anything but an id)
 * is reported as `deadLetterUnavailable` and logged once, as a warning; a queue that refuses the entry
 * (it throws or rejects: a message it cannot store, say) is reported the same way and logged once,
 * as an error with what was thrown. `what` names the message in the log line (`supervised send
 * <id>`). Supervised send, the coordination manager and the signal router all dead-letter here.
 */
export async function deadLetterAndReport(node: Node, entry: DeadLetterEntry, what: string): Promise<DeadLetterResult> {
  const { recipient, message, reason, metadata } = entry;
  let added: unknown;
  try {
    added = await node.deadLetters.add({ recipient, message, reason, ...(metadata === undefined ? {} : { metadata: typeof metadata === 'function' ? metadata() : metadata }) });
  } catch (e) {
    // the queue's own refusal to run (it stays off once it is), not a thrown look-alike
    if (isKeelError(e, 'ERR_SERVICE_UNAVAILABLE') && !node.deadLetters.available) return unavailable(node, what, reason);
    node.logger.error(`${what}: the dead letter queue refused the message (${reason})`, e);
    return UNAVAILABLE;
  }
  if (typeof added === 'string') return { deadLetterId: added };
  return unavailable(node, what, reason);
}

function unavailable(node: Node, what: string, reason: string): DeadLetterResult {
  node.logger.warn(`${what} failed (${reason}) and the dead letter queue is unavailable`);
  return UNAVAILABLE;
}
