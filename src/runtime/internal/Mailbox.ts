import type { TelemetryBus } from '../../telemetry/Telemetry.js';
import { DownMessage, ExitMessage } from '../messages.js';
import { nameOf, type Target } from '../Pid.js';
import { Envelope, type EnvelopeListener } from './Envelope.js';
import { EMPTY, EXIT_SENTINEL, ExitWatcher, F_BOUNDED, F_BUSY, F_DEAD, F_LONG, F_RUNNING, F_SCHEDULED, type Proc } from './Proc.js';
import { isInstance } from '../safe.js';
import { HeldEnvelope, HeldEvent, HeldQueue, PostponedEvents } from './Held.js';

/**
 * The mailbox: a ring buffer inlined in the process record (`buf` of a power-of-two length, `head`,
 * `size`), the functions over it, and the node's mailbox bookkeeping ({@link Mailboxes}): bounded
 * mailboxes and their overflow policies, the dropped-message events, supervised messages
 * (envelopes) and their outcomes, and the long-mailbox monitor.
 */

/** @internal The result of handing a message to a process. */
export const Delivery = { Enqueued: 0, NoProc: 1, MailboxFull: 2 } as const;
/** @internal */
export type Delivery = (typeof Delivery)[keyof typeof Delivery];

/** @internal How an envelope ended (see {@link EnvelopeListener}). */
export type EnvelopeOutcome = 'handled' | 'crashed' | 'down' | 'dropped' | 'withdrawn';

/** A mailbox ring longer than this is given back once the mailbox is empty. */
export const SHRINK_ABOVE = 1024;
/** The flags of a process that a new message does not wake: already queued, running, busy, or dead. */
export const NO_WAKE = F_SCHEDULED | F_RUNNING | F_BUSY | F_DEAD;

const NOTHING: unique symbol = Symbol('nothing');
/** @internal What {@link Mailboxes.takeHeld} answers when nothing is held. */
export const NO_HELD: unique symbol = Symbol('keel.noHeld');

/** What {@link Mailboxes.replayPostponed} answers when nothing is to be replayed. */
const NONE_POSTPONED: readonly HeldEvent[] = [];

/** @internal What the mailboxes need of the scheduler: waking a process a message arrived for. */
export interface Waker {
  wake(p: Proc): void;
}

/** @internal What the mailboxes need of the node. */
export interface MailboxHost {
  readonly telemetry: TelemetryBus;
  /** The node is shutting down: a long mailbox then is the Downs and exits of its dying processes. */
  readonly stopping: boolean;
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void;
}

/** @internal Doubles a process's ring-buffer mailbox (4 slots on the first message); returns the new buffer. */
export function grow(p: Proc): unknown[] {
  const old = p.buf;
  const cap = old.length;
  const ncap = cap === 0 ? 4 : cap * 2;
  const nb = new Array<unknown>(ncap);
  for (let i = 0; i < p.size; i++) nb[i] = old[(p.head + i) & (cap - 1)];
  for (let i = p.size; i < ncap; i++) nb[i] = undefined;
  p.buf = nb;
  p.head = 0;
  return nb;
}

/** @internal Gives a burst-sized mailbox ring back once the mailbox is empty. */
export function shrink(p: Proc): void {
  p.buf = EMPTY;
  p.head = 0;
}

/** @internal Removes the queued messages for which `drop` returns true, keeping the order of the rest. */
export function removeWhere(p: Proc, drop: (message: unknown) => boolean): number {
  let kept = 0;
  let removed = 0;
  const { buf, head, size } = p;
  const mask = buf.length - 1;
  for (let i = 0; i < size; i++) {
    const m = buf[(head + i) & mask];
    if (drop(m)) removed++;
    else buf[(head + kept++) & mask] = m;
  }
  for (let i = kept; i < size; i++) buf[(head + i) & mask] = undefined;
  p.size = kept;
  return removed;
}

/** @internal True for the runtime's own messages (`Down`, `Exit`), which no overflow policy drops. */
export function isSystemMessage(m: unknown): boolean {
  return DownMessage.is(m) || ExitMessage.is(m);
}

/**
 * @internal What `p` has queued: its mailbox, and the messages it holds while suspended (in OTP's
 * mailbox still, so `message_queue_len` counts them: `node.info`'s `mailboxLength`, the long-mailbox monitor).
 */
export function queuedOf(p: Proc): number {
  const held = p.x?.held;
  return held === undefined ? p.size : p.size + held.length;
}

/**
 * Takes the oldest message that is not a system message out of a mailbox, keeping the order of the
 * rest; NOTHING when there is none. O(1) when the oldest message is a user message; otherwise the
 * system messages queued before it move up one slot each.
 */
function evictOldest(p: Proc): unknown {
  const { buf, head, size } = p;
  const mask = buf.length - 1;
  let i = 0;
  while (i < size && isSystemMessage(buf[(head + i) & mask])) i++;
  if (i === size) return NOTHING;
  const victim = buf[(head + i) & mask];
  for (let j = i; j > 0; j--) buf[(head + j) & mask] = buf[(head + j - 1) & mask];
  buf[head] = undefined;
  p.head = (head + 1) & mask;
  p.size = size - 1;
  return victim;
}

/**
 * Takes the oldest message that is not a system message out of the messages a suspended server
 * holds (older than any in its mailbox); NOTHING when there is none.
 */
function evictHeld(p: Proc): unknown {
  const x = p.x!;
  const held = x.held;
  if (held === undefined) return NOTHING;
  const m = held.removeFirst(isSystemMessage, NOTHING);
  if (held.length === 0) x.held = undefined;
  return m;
}

/** True for a postponed event that came as a `Down` or an `Exit`: never evicted, as in a mailbox. */
function isSystemEvent(h: HeldEvent): boolean {
  return isSystemMessage(h.msg);
}

/** Takes the oldest postponed event that is not a system message (older than any held or queued message); NOTHING when there is none. */
function evictPostponed(p: Proc): unknown {
  const x = p.x!;
  const postponed = x.postponed;
  if (postponed === undefined) return NOTHING;
  const h = postponed.removeFirst(isSystemEvent, NOTHING);
  if (postponed.length === 0) x.postponed = undefined;
  return h;
}

/**
 * @internal The node's mailbox writes and their bookkeeping. Every message a process receives is
 * put in its mailbox by {@link Mailboxes.enqueue}; user code (telemetry handlers, the logger, an
 * envelope's listener) runs only once the mailbox and the run queue are consistent.
 */
export class Mailboxes {
  /** Supervised messages in mailboxes or being handled (0: the turn never looks for envelopes). */
  envelopes = 0;
  /** Processes whose mailbox is long now. */
  long = 0;
  /** The long-mailbox monitor's bounds (Infinity and -1 when it is off). */
  readonly longAbove: number;
  readonly longBelow: number;
  readonly #host: MailboxHost;
  /** The scheduler, set once by the node right after both exist (each needs the other). */
  waker!: Waker;

  constructor(host: MailboxHost, [above, below]: readonly [number, number]) {
    this.#host = host;
    this.longAbove = above;
    this.longBelow = below;
  }

  /** Hands a message to a process: the one write into every mailbox. */
  enqueue(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    if ((p.flags & (F_BOUNDED | F_DEAD)) !== 0) return this.#enqueueBounded(p, message, from);
    // #push's body, inline: the one path of every message (a call less each while unoptimized)
    const buf = p.size < p.buf.length ? p.buf : grow(p);
    buf[(p.head + p.size) & (buf.length - 1)] = message;
    const size = ++p.size;
    if ((p.flags & NO_WAKE) === 0) this.waker.wake(p);
    if (size === this.longAbove) this.#mailboxLong(p);
    return Delivery.Enqueued;
  }

  /**
   * Puts a `Down` in the mailbox of a live process during a death's bookkeeping, where no user code
   * may run: true when it made the mailbox long, which the death then reports with
   * {@link Mailboxes.reportLong} once its bookkeeping is done (the event and the log line are user code).
   */
  enqueueQuiet(p: Proc, message: unknown): boolean {
    if ((p.flags & F_DEAD) !== 0) return false; // a monitor's owner is alive: its death took its monitors back
    return this.#push(p, message) === this.longAbove;
  }

  /** Reports a mailbox that {@link Mailboxes.enqueueQuiet} made long (unless it is no longer, or its process died). */
  reportLong(p: Proc): void {
    if (p.size >= this.longAbove) this.#mailboxLong(p);
  }

  /** Puts a message in a live process's mailbox and wakes the process; returns the new length. */
  #push(p: Proc, message: unknown): number {
    const buf = p.size < p.buf.length ? p.buf : grow(p);
    buf[(p.head + p.size) & (buf.length - 1)] = message;
    const size = ++p.size;
    if ((p.flags & NO_WAKE) === 0) this.waker.wake(p);
    return size;
  }

  /** The slow path: a dead target, or a bounded mailbox. */
  #enqueueBounded(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    if ((p.flags & F_DEAD) !== 0) {
      this.dropped(from, p.self, message, 'noproc');
      return Delivery.NoProc;
    }
    let evicted: unknown = NOTHING;
    const x = p.x!;
    // the messages a suspended server holds count as queued (they are, in OTP's mailbox); past them
    // only, a system call still gets in (a Sys.resume must reach a suspended server that is full)
    // and so do the events a bounded state machine postponed (older still)
    const kept = (x.held?.length ?? 0) + (x.postponed?.length ?? 0);
    if (
      p.size + kept >= x.capacity &&
      !isSystemMessage(message) &&
      !(kept > 0 && p.size < x.capacity && x.admits!(message))
    ) {
      if (x.overflow !== 'drop_oldest') {
        this.dropped(from, p.self, message, 'mailbox_full');
        return Delivery.MailboxFull;
      }
      evicted = evictPostponed(p); // the postponed ones came first, then the held ones, then the mailbox's
      if (evicted === NOTHING) evicted = evictHeld(p);
      if (evicted === NOTHING) evicted = evictOldest(p);
    }
    if (this.#push(p, message) === this.longAbove) this.#mailboxLong(p);
    if (evicted !== NOTHING) {
      if (isInstance(evicted, HeldEvent)) {
        const env = evicted.env;
        this.dropped(undefined, p.self, env ?? evicted.msg, 'mailbox_full', 'drop_oldest');
        if (env !== undefined) this.settleEnvelope(env, 'dropped');
        else if (isInstance(evicted.msg, ExitWatcher)) evicted.msg.dropped?.(); // a postponed call fails at once
        return Delivery.Enqueued;
      }
      if (isInstance(evicted, HeldEnvelope)) {
        this.dropped(undefined, p.self, evicted.env, 'mailbox_full', 'drop_oldest');
        this.settleEnvelope(evicted.env, 'dropped');
        return Delivery.Enqueued;
      }
      this.dropped(undefined, p.self, evicted, 'mailbox_full', 'drop_oldest');
      if (Envelope.is(evicted)) this.settleEnvelope(evicted, 'dropped');
      else if (isInstance(evicted, ExitWatcher)) evicted.dropped?.(); // a pending call fails at once
    }
    return Delivery.Enqueued;
  }

  /** One `keel.message.dropped` event for a message given up. */
  dropped(from: Proc | undefined, to: Target, message: unknown, reason: string, overflow?: string): void {
    const m = Envelope.is(message) ? message.message : message;
    this.#host.telemetry.execute('keel.message.dropped', { count: 1 }, {
      from: from?.self ?? 'node',
      to: nameOf(to) ?? to, // a typed name as its text, as a plain name
      message: m,
      reason,
      ...(overflow === undefined ? {} : { overflow }),
    });
  }

  /** True when `p` is alive and its mailbox takes `n` more messages without refusing or evicting any. */
  canAccept(p: Proc, n: number): boolean {
    if ((p.flags & F_DEAD) !== 0) return false;
    const x = p.x!;
    return (p.flags & F_BOUNDED) === 0 || p.size + (x.held?.length ?? 0) + (x.postponed?.length ?? 0) + n <= x.capacity;
  }

  // ---- supervised messages ------------------------------------------------------------------

  /** Delivers a message wrapped with an id and an optional listener. */
  deliverEnvelope(from: Proc | undefined, to: Proc, message: unknown, id: string, listener?: EnvelopeListener): Delivery {
    const env = new Envelope(message, id, listener);
    this.envelopes++; // counted before it is in a mailbox: user code run by the delivery may already settle it
    const result = this.enqueue(to, env, from); // a dead process drops it there
    if (result !== Delivery.Enqueued && !env.settled) this.envelopes--;
    return result;
  }

  /**
   * Takes back the queued, not yet started envelopes `id` (of `listener`, if given) of `p`: those in
   * its mailbox and those a suspended server holds (never given to its callbacks: in OTP's mailbox
   * still), each settled `withdrawn`; a held one gives its place in a bounded mailbox back as a
   * queued one does.
   */
  withdrawEnvelope(p: Proc, id: string, listener?: EnvelopeListener): boolean {
    if (this.envelopes === 0) return false;
    // by its sender's listener when given: another send may use the same id
    const mine = (env: Envelope): boolean => env.id === id && (listener === undefined || env.listener === listener);
    const removed: Envelope[] = [];
    const x = p.x;
    const held = x?.held;
    if (held !== undefined) {
      // the held ones first: they are older than any in the mailbox
      const taken = held.removeWhere((h) => isInstance(h, HeldEnvelope) && mine(h.env));
      if (taken !== undefined) {
        if (held.length === 0) x!.held = undefined;
        for (const h of taken) removed.push((h as HeldEnvelope).env);
      }
    }
    const postponed = x?.postponed;
    if (postponed !== undefined) {
      // a postponed one too: it was never handled (a state machine's replay skips it)
      const taken = postponed.removeWhere((h) => h.env !== undefined && mine(h.env));
      if (taken !== undefined) {
        if (postponed.length === 0) x!.postponed = undefined;
        for (const h of taken) removed.push(h.env!);
      }
    }
    if (p.size > 0) {
      removeWhere(p, (m) => {
        if (Envelope.is(m) && mine(m)) {
          removed.push(m);
          return true;
        }
        return false;
      });
    }
    for (const env of removed) this.settleEnvelope(env, 'withdrawn');
    return removed.length > 0;
  }

  /**
   * Lets go of the envelope `id` of `listener` that `p` is handling, if it is: its handler goes on,
   * and how it ends is told to no one (a send that timed out on it and may have sent a new copy).
   */
  disownInflight(p: Proc, id: string, listener: EnvelopeListener): void {
    const env = p.x?.inflight;
    if (env !== undefined && env.id === id && env.listener === listener) env.listener = undefined;
    p.x?.held?.forEach((h) => {
      if (isInstance(h, HeldEnvelope) && h.env.id === id && h.env.listener === listener) h.env.listener = undefined;
    });
    p.x?.postponed?.forEach((h) => {
      const e = h.env;
      if (e !== undefined && e.id === id && e.listener === listener) e.listener = undefined;
    });
  }

  /**
   * A suspended server holds `message`, the one its handler was given, until it is resumed: kept, in
   * order, with the process (the supervised message being handled with it, set aside: its handler's
   * return does not settle it; `down` at the process's death). Held messages count against a bounded
   * mailbox's capacity as the messages in it do: `admits` says which get in past them (system calls).
   */
  hold(p: Proc, message: unknown, admits: (message: unknown) => boolean): void {
    const x = p.ext();
    const env = x.inflight;
    let item = message;
    if (env !== undefined) {
      x.inflight = undefined;
      item = new HeldEnvelope(message, env);
    }
    x.admits = admits;
    const held = (x.held ??= new HeldQueue());
    held.push(item);
    // held messages are queued ones (in OTP's mailbox still): the long-mailbox monitor counts them
    if (p.size + held.length >= this.longAbove) this.#mailboxLong(p);
  }

  /**
   * A bounded state machine postpones `event` (which came as `msg`): kept, in order, with the process,
   * counted against its capacity as a held message is; `carried` when it is the event that came as
   * the message being handled, whose supervised message (in flight) is then set aside with it (an
   * event the machine made itself, inserted, carries none: the message in flight stays so, settled
   * when its handler is done); `admits` says which messages get in past them.
   */
  postpone(p: Proc, event: unknown, msg: unknown, carried: boolean, admits: (message: unknown) => boolean): void {
    const x = p.ext();
    let env: Envelope | undefined;
    if (carried) {
      env = x.inflight;
      x.inflight = undefined;
    }
    x.admits = admits;
    (x.postponed ??= new PostponedEvents()).push(new HeldEvent(event, msg, env));
  }

  /**
   * A state change: the postponed events not yet scheduled for replay, oldest first, marked as
   * scheduled (they count until taken). O(those postponed since the last state change).
   */
  replayPostponed(p: Proc): readonly HeldEvent[] {
    return p.x?.postponed?.schedule() ?? NONE_POSTPONED;
  }

  /**
   * Takes a postponed event back to handle it, or NO_HELD when it is no longer kept (evicted,
   * withdrawn): what was in flight is settled handled, and its supervised message is in flight now.
   */
  takePostponed(p: Proc, h: HeldEvent): unknown {
    const x = p.x;
    const postponed = x?.postponed;
    if (h.gone || postponed === undefined) return NO_HELD;
    postponed.remove(h); // O(1), wherever it is
    if (postponed.length === 0) x!.postponed = undefined;
    this.settleInflight(p, 'handled');
    x!.inflight = h.env;
    return h.event;
  }

  /** How many messages `p` holds (see {@link hold}). */
  heldCount(p: Proc): number {
    return p.x?.held?.length ?? 0;
  }

  /**
   * Takes the oldest message `p` holds, or NO_HELD: a supervised one is in flight again
   * (`ctx.messageId`), settled as a handled message is ({@link settleInflight}).
   */
  takeHeld(p: Proc): unknown {
    const x = p.x;
    const held = x?.held;
    if (held === undefined) return NO_HELD;
    const m = held.shift();
    if (held.length === 0) x!.held = undefined;
    if (!isInstance(m, HeldEnvelope)) return m;
    x!.inflight = m.env;
    return m.msg;
  }

  /** A supervised message is being handled: its id is `ctx.messageId` until it is settled. */
  opened(p: Proc, env: Envelope): unknown {
    p.ext().inflight = env;
    return env.message;
  }

  /** Settles the envelope a process is handling, at most once. */
  settleInflight(p: Proc, outcome: 'handled' | 'crashed', error?: unknown): void {
    const x = p.x;
    const env = x?.inflight;
    if (env === undefined) return;
    x!.inflight = undefined;
    this.settleEnvelope(env, outcome, error);
  }

  settleEnvelope(env: Envelope, outcome: EnvelopeOutcome, error?: unknown): void {
    if (env.settled) return;
    this.envelopes--;
    try {
      env.settle(outcome, error);
    } catch (e) {
      if (e !== EXIT_SENTINEL) this.#host.log('error', 'an envelope listener threw', e);
    }
  }

  /**
   * Empties the mailbox of a process that died: returns the envelopes it left (to be settled `down`
   * once the death's bookkeeping is done). A queued message that watches the process (a pending call)
   * is told it was still queued, before its watchers are told of the death: only a process with
   * watchers can have one, so the mailbox of any other is dropped whole, unread.
   */
  discard(p: Proc): Envelope[] | undefined {
    let queued: Envelope[] | undefined;
    if (p.size > 0 && (this.envelopes > 0 || p.x?.watchers !== undefined)) {
      for (let i = 0; i < p.size; i++) {
        const m = p.buf[(p.head + i) & (p.buf.length - 1)];
        if (Envelope.is(m)) (queued ??= []).push(m);
        else if (isInstance(m, ExitWatcher) && m.watched === p) m.leftQueued?.();
      }
    }
    if (p.buf !== EMPTY) {
      p.buf = EMPTY;
      p.head = 0;
      p.size = 0;
    }
    return queued;
  }

  // ---- the long-mailbox monitor ---------------------------------------------------------------

  /**
   * A mailbox reached `longMailbox.above`: one event and one warning per crossing. While the node
   * shuts down only the event: a process watching many others fills with their Downs as they die,
   * and there is nothing left to act on.
   */
  #mailboxLong(p: Proc): void {
    if ((p.flags & (F_LONG | F_DEAD)) !== 0) return;
    p.flags |= F_LONG;
    this.long++;
    const name = p.x?.name;
    const length = queuedOf(p);
    this.#host.telemetry.execute('keel.process.long_mailbox', { length }, { pid: p.self, name, above: this.longAbove, below: this.longBelow });
    if (this.#host.stopping) return;
    this.#host.log(
      'warn',
      `process ${String(p.self)}${name === undefined ? '' : ` (${name})`} has ${length} messages queued: it receives faster than it handles them; ` +
        'bound its mailbox (spawn options mailbox: { capacity, overflow }) or spread the work',
    );
  }

  /** After a turn of a process with a long mailbox: the event when it fell back to `longMailbox.below`. */
  checkShort(p: Proc): void {
    if ((p.flags & F_LONG) === 0) return;
    const length = queuedOf(p);
    if (length > this.longBelow) return;
    p.flags &= ~F_LONG;
    this.long--;
    this.#host.telemetry.execute('keel.process.long_mailbox_cleared', { length }, { pid: p.self, name: p.x?.name, above: this.longAbove, below: this.longBelow });
  }

  /** A process with a long mailbox died: it is counted no more (its death event reports what was queued). */
  forget(p: Proc): void {
    if ((p.flags & F_LONG) !== 0) this.long--;
  }
}
