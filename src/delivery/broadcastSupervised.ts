import { types } from 'node:util';
import { checkStrayKeys, DeadlockError, InvalidArgumentError, isKeelError, thrownText } from '../errors.js';
import { readOption } from '../errors/arguments.js';
import { Delivery, type EnvelopeListener, inHandler, isDead, type Kernel, originOf, type Proc } from '../runtime/kernel.js';
import { checkTarget, type Target } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { afterEnqueue, onFailure } from './failurePolicy.js';
import { SEND_OPTIONS, type SendOptions, type SendOutcome, sendOnce, type Settings, toSettings } from './sendSupervised.js';

export type BroadcastStrategy = 'best_effort' | 'at_least_one' | 'all_or_nothing' | { quorum: number };

export interface BroadcastOptions extends SendOptions {
  /** Default `'best_effort'`. */
  strategy?: BroadcastStrategy;
  /** Sends in flight at once (default 64). */
  concurrency?: number;
}

/** One shape for every strategy. */
export interface BroadcastOutcome {
  ok: boolean;
  reason?: 'all_failed' | 'not_all_deliverable' | 'quorum_not_reached';
  results: { target: Target; outcome: SendOutcome }[];
  delivered: number;
  failed: number;
}

const BROADCAST_OPTIONS: readonly string[] = [...SEND_OPTIONS, 'strategy', 'concurrency'];

/**
 * The targets, copied once (read once, so that a getter or a proxy's trap that throws is a typed
 * error here, and a caller that changes its array meanwhile changes nothing), each checked.
 */
function targetList(targets: unknown): Target[] {
  let list: unknown[];
  try {
    if (!Array.isArray(targets)) throw new InvalidArgumentError('targets', 'an array of Pids or names', targets);
    list = Array.from(targets as unknown[]);
  } catch (e) {
    if (isKeelError(e)) throw e;
    throw new InvalidArgumentError('targets', 'an array of Pids or names that can be read', targets, `reading it threw ${thrownText(e)}`);
  }
  list.forEach((t, i) => checkTarget(t, `targets[${i}]`));
  return list as Target[];
}

/**
 * The options, each read once into a plain copy (a getter or a proxy's trap that throws is a typed
 * error naming it; one that answers differently when read again changes nothing): the strategy, the
 * concurrency and every send option are then read from the copy.
 */
function optionsOf(options: unknown): BroadcastOptions {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a BroadcastOptions object', options);
  checkStrayKeys(options, BROADCAST_OPTIONS, 'options');
  const copy: Record<string, unknown> = {};
  for (const key of BROADCAST_OPTIONS) {
    const value = readOption(options, key, 'options');
    if (value !== undefined) copy[key] = value;
  }
  return copy as BroadcastOptions;
}

function strategyOf(options: BroadcastOptions | undefined, targets: number): BroadcastStrategy {
  const strategy = options?.strategy ?? 'best_effort';
  if (strategy === 'best_effort' || strategy === 'at_least_one' || strategy === 'all_or_nothing') return strategy;
  // a proxy is no strategy (its traps would run, or throw, at `in`); a quorum that throws when read is named
  if (typeof strategy === 'object' && strategy !== null && !types.isProxy(strategy) && 'quorum' in strategy) {
    let n: unknown;
    try {
      n = strategy.quorum;
    } catch (e) {
      throw new InvalidArgumentError('options.strategy.quorum', 'an integer that can be read', strategy, `reading it threw ${thrownText(e)}`);
    }
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 1 || n > targets) {
      throw new InvalidArgumentError('options.strategy.quorum', `an integer from 1 to the number of targets (${targets})`, n);
    }
    return { quorum: n }; // read once: a getter is not asked again when the quorum is counted
  }
  throw new InvalidArgumentError('options.strategy', "'best_effort' | 'at_least_one' | 'all_or_nothing' | { quorum: n }", strategy);
}

/**
 * The listener of a copy no `onError` policy listens to (the others have their own, one per copy):
 * by its identity the copy, and only it, can be taken back, even when a given `id` is shared by every copy.
 */
class Copy implements EnvelopeListener {
  handled(): void {}
  failed(): void {}
}

/**
 * The enqueues of an `all_or_nothing` broadcast whose targets were all checked: the outcome of each
 * copy tried, all of them accepted when every copy was. An enqueue runs user code (telemetry
 * handlers and the logger, when a mailbox becomes long) that may kill a later target or fill its
 * mailbox, so each copy is checked again right before its enqueue. When one no longer fits it is
 * the last tried: the copies queued before it are taken back (`aborted`, after one attempt). A copy
 * that can no longer be taken back, its receiver having died with it queued (or a `drop_oldest`
 * mailbox having evicted it), stays accepted and meets the fate of any accepted copy: dead-lettered
 * with `onError: 'dead_letter'`, the drop event otherwise.
 */
function enqueueAll(node: Kernel, sender: Proc | undefined, procs: readonly Proc[], message: unknown, s: Settings, ids: readonly string[], targets: readonly Target[]): SendOutcome[] {
  const outcomes: SendOutcome[] = [];
  const listeners: EnvelopeListener[] = [];
  for (let i = 0; i < procs.length; i++) {
    const p = procs[i]!;
    const id = ids[i]!;
    const listener = afterEnqueue(node, targets[i]!, message, s, id) ?? new Copy();
    // room for this copy without evicting anything (the first check counted it; user code since may have taken it)
    const r = node.canAccept(p, 1) ? node.deliverEnvelope(sender, p, message, id, listener) : isDead(p) ? Delivery.NoProc : Delivery.MailboxFull;
    if (r === Delivery.Enqueued) {
      outcomes.push({ ok: true, id, attempts: 1 });
      listeners.push(listener);
      continue;
    }
    const reason = r === Delivery.MailboxFull ? 'mailbox_full' : 'noproc';
    outcomes.push({ ok: false, id, reason, attempts: 1, firstError: reason, lastError: reason });
    for (let j = 0; j < i; j++) {
      if (node.withdrawEnvelope(procs[j]!.self, ids[j]!, listeners[j])) {
        outcomes[j] = { ok: false, id: ids[j]!, reason: 'aborted', attempts: 1, firstError: 'aborted', lastError: 'aborted' };
      }
    }
    break;
  }
  return outcomes;
}

/**
 * Sends one message to many targets concurrently under a strategy: `best_effort`, `at_least_one`,
 * `all_or_nothing` (atomic on a local node: every target checked and enqueued in one synchronous
 * step, or none; only with `ack: 'enqueued'`), or `{ quorum: n }`.
 *
 * @example
 * ```ts
 * const r = await broadcastSupervised(ctx, replicas, { type: 'write', key, value }, { strategy: { quorum: 2 }, ack: 'handled' });
 * if (!r.ok) console.log(r.reason, r.failed);
 * ```
 */
export async function broadcastSupervised<M>(from: Node | Context<any>, given: Target<M>[], message: M, givenOptions?: BroadcastOptions): Promise<BroadcastOutcome> {
  const { node, caller: sender } = originOf(from);
  const targets = targetList(given);
  const options = givenOptions === undefined ? undefined : optionsOf(givenOptions);
  const strategy = strategyOf(options, targets.length);
  const concurrency = options?.concurrency ?? 64;
  if (!Number.isSafeInteger(concurrency) || concurrency < 1) throw new InvalidArgumentError('options.concurrency', 'a positive integer', concurrency);
  const s = toSettings(options === undefined ? undefined : { ...options, strategy: undefined, concurrency: undefined } as SendOptions);
  if (s.onError === 'raise') {
    throw new InvalidArgumentError('options.onError', "'log' | 'dead_letter' | 'ignore' for a broadcast (its result reports every failure)", 'raise');
  }

  if (strategy === 'all_or_nothing') {
    if (s.ack !== 'enqueued') throw new InvalidArgumentError('options.ack', "'enqueued' with strategy 'all_or_nothing' (an atomic step cannot wait for handlers)", s.ack);
    // check every target (alive, room for every copy it is listed for), then enqueue all, in one synchronous step
    const aborted = s.signal?.aborted === true;
    const procs = aborted ? targets.map(() => undefined) : targets.map((t) => node.lookupTarget(t));
    const copies = new Map<Proc, number>();
    for (const p of procs) if (p !== undefined) copies.set(p, (copies.get(p) ?? 0) + 1);
    const refused = procs.map((p) => (aborted ? 'aborted' : p === undefined ? 'noproc' : node.canAccept(p, copies.get(p)!) ? undefined : 'mailbox_full'));
    const ids = targets.map(() => s.id ?? node.nextMessageId());
    const tried = refused.every((r) => r === undefined) ? enqueueAll(node, sender, procs as Proc[], message, s, ids, targets) : [];
    const allAccepted = tried.length === targets.length && tried.every((o) => o.ok);
    const results = targets.map((target, i) => {
      const outcome = tried[i];
      if (outcome !== undefined) return { target, outcome };
      const reason = refused[i] ?? 'aborted';
      // an already aborted signal: nothing was tried, and the error is its reason (as a send's outcome says)
      const error = aborted ? s.signal!.reason : reason;
      return { target, outcome: { ok: false, id: ids[i]!, reason, attempts: refused[i] === undefined || aborted ? 0 : 1, firstError: error, lastError: error } as SendOutcome };
    });
    // not all accepted: every copy's failure goes through the onError policy, as a failed send's does
    // (dead-lettered copies are then redelivered one by one, no longer atomically); a copy accepted
    // before its receiver died stays accepted (see enqueueAll)
    if (!allAccepted) {
      const outcomes = await Promise.all(results.map((r) => onFailure(node, r.target, message, s, r.outcome)));
      outcomes.forEach((outcome, i) => (results[i]!.outcome = outcome));
    }
    const delivered = results.filter((r) => r.outcome.ok).length;
    return { ok: allAccepted, ...(allAccepted ? {} : { reason: 'not_all_deliverable' as const }), results, delivered, failed: results.length - delivered };
  }

  // a handler waiting for its own process to handle a copy: refused before any copy is sent, as a
  // send's deadlock is (found per send, the copies sent before it would go on without a result)
  if (s.ack === 'handled' && sender !== undefined && inHandler(sender) && targets.some((t) => node.lookupTarget(t) === sender)) {
    throw new DeadlockError(String(sender.self), "broadcast a message with ack 'handled' to its own process from its own handler");
  }
  const results: { target: Target; outcome: SendOutcome }[] = new Array(targets.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < targets.length) {
      const i = next++;
      const target = targets[i]!;
      results[i] = { target, outcome: await sendOnce(node, sender, target, message, s) };
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, targets.length) }, worker));
  const delivered = results.filter((r) => r.outcome.ok).length;
  const failed = results.length - delivered;
  if (strategy === 'best_effort') return { ok: true, results, delivered, failed };
  if (strategy === 'at_least_one') return { ok: delivered > 0, ...(delivered > 0 ? {} : { reason: 'all_failed' as const }), results, delivered, failed };
  const ok = delivered >= strategy.quorum;
  return { ok, ...(ok ? {} : { reason: 'quorum_not_reached' as const }), results, delivered, failed };
}
