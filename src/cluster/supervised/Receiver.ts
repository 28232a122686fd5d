/**
 * @internal The receiving side of supervised sends across nodes: each JetStream message of this
 * node's durable consumer is delivered to its target as a supervised envelope (so `ctx.messageId`
 * is the send's id), and acked once enqueued (`ack: 'enqueued'`) or once the handler finished
 * (`'handled'`), after its id is in the handled-id record. A failed attempt is redelivered by
 * JetStream (`nak` with the send's backoff) while attempts remain, else terminated (`term`); the
 * sender hears each failed attempt and the end on its reply subject, and writes any dead letter.
 */
import { backoffDelay } from '../../backoff.js';
import { Delivery, type EnvelopeListener, type Kernel, type Proc, type TimerEntry } from '../../runtime/kernel.js';
import { PidImpl } from '../../runtime/Pid.js';
import type { MessageFlow } from '../../telemetry/tracing.js';
import type { PidFactory } from '../codec.js';
import { incoming } from '../internal/trace.js';
import type { HandledIds } from './HandledIds.js';
import { decodeSend, errorText, type WireReply, type WireSend } from './wire.js';

/** The part of a JetStream message the receiver uses (`@nats-io/jetstream`'s `JsMsg`). */
export interface InboundMessage {
  readonly string: () => string;
  readonly info: { readonly deliveryCount: number };
  ack(): void;
  nak(millis?: number): void;
  working(): void;
  term(reason?: string): void;
}

export interface ReceiverHost {
  readonly kernel: Kernel;
  readonly handled: HandledIds;
  readonly ackWaitMs: number;
  reply(subject: string, reply: WireReply): void;
  /** A message not delivered: malformed, expired (its sender gave up), or its record unavailable (then redelivered). */
  dropped(reason: string, error: unknown, id: string | undefined): void;
  /** @internal A test hook run after the id is recorded and before the JetStream ack. */
  readonly beforeAck: ((id: string) => void | Promise<void>) | undefined;
}

/** The sending node, as its reply subject names it (`_INBOX.keel.<cluster>.<node>.sup...`): for events only. */
const SENDER = /^_INBOX\.keel\.[^.]+\.([A-Za-z0-9_-]{1,64})\./;

/** The longest nak delay (ms): 9e18 ns fits JetStream's int64, and JSON writes it without an exponent. */
const MAX_NAK_MS = 9e12;

interface Failure {
  readonly reason: 'noproc' | 'process_down' | 'timeout' | 'mailbox_full';
  readonly retry: boolean;
  readonly error: unknown;
}

/** A message whose handler is running here: a redelivery of its id waits for it rather than running it twice. */
class InFlight implements EnvelopeListener {
  timer: TimerEntry | undefined = undefined;
  keepAlive: { cancel(): boolean } | undefined = undefined;
  done = false;
  /** Other sends of the same id (another stream message, another reply subject) waiting on this run. */
  readonly followers: { send: WireSend; msg: InboundMessage }[] = [];
  constructor(
    readonly receiver: Receiver,
    readonly send: WireSend,
    public msg: InboundMessage,
    readonly target: Proc,
    /** Which attempt of its send this is (a redelivery adopted meanwhile is the same attempt). */
    readonly n: number,
  ) {}
  handled(): void {
    this.receiver.settle(this, undefined);
  }
  failed(outcome: 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void {
    if (outcome === 'withdrawn') return; // by the timeout, which settles it
    const f: Failure =
      outcome === 'crashed' ? { reason: 'process_down', retry: this.send.retryOnCrash, error: error ?? 'crashed' }
      : outcome === 'dropped' ? { reason: 'mailbox_full', retry: true, error: 'mailbox_full' }
      : { reason: 'process_down', retry: true, error: error ?? 'down' };
    this.receiver.settle(this, f);
  }
}

export class Receiver {
  readonly #host: ReceiverHost;
  readonly #kernel: Kernel;
  readonly #pids: PidFactory;
  readonly #inflight = new Map<string, InFlight>();
  /** Ids whose delivery is being looked up or started here: a copy of one waits for it. */
  readonly #receiving = new Map<string, Promise<void>>();
  #closed = false;

  constructor(host: ReceiverHost, pids: PidFactory) {
    this.#host = host;
    this.#kernel = host.kernel;
    this.#pids = pids;
  }

  get inflight(): number {
    return this.#inflight.size;
  }

  close(): void {
    this.#closed = true;
    for (const f of this.#inflight.values()) {
      // a copy still queued in its target's mailbox is taken back (unacked, JetStream redelivers it
      // after the ack wait, as after a crash): else the target would handle it after the close,
      // unrecorded, and its redelivery would be handled again, or failed as process_down
      if (!f.done) this.#kernel.withdrawEnvelope(f.target.self, f.send.id, f);
      f.done = true;
      this.#release(f);
    }
    this.#inflight.clear();
  }

  /** One JetStream delivery (the consumer's callback: synchronous; the work goes on asynchronously). */
  receive(msg: InboundMessage): void {
    if (this.#closed) return;
    let send: WireSend;
    try {
      send = decodeSend(msg.string(), this.#pids);
    } catch (e) {
      msg.term('malformed');
      this.#host.dropped('malformed', e, undefined);
      return;
    }
    if (this.#adopted(send, msg)) return;
    // one delivery of an id at a time: a second copy arriving while the first still awaits its
    // handled-id lookup (a duplicate past the dedupe window, a redelivery) waits for it, then finds
    // it handled, running, or still to do; never both delivered
    const before = this.#receiving.get(send.id);
    const work = (before ?? Promise.resolve())
      .then(() => this.#receive(send, msg))
      .catch((e: unknown) => {
        // the record could not be read or written (NATS gone): JetStream redelivers it after the ack wait
        this.#host.dropped('record_unavailable', e, send.id);
      })
      .finally(() => {
        if (this.#receiving.get(send.id) === work) this.#receiving.delete(send.id);
      });
    this.#receiving.set(send.id, work);
    void this.#kernel.trackIo(work);
  }

  /** A delivery of an id whose handler runs here (a slow handler past the ack wait, a copy): the newest is the one to ack. */
  #adopted(send: WireSend, msg: InboundMessage): boolean {
    const running = this.#inflight.get(send.id);
    if (running === undefined) return false;
    msg.working();
    if (send.reply === running.send.reply) {
      running.msg = msg; // a redelivery of the same message
      return true;
    }
    // another message of the same id (a send again past the dedupe window): it shares this run's outcome
    const follower = running.followers.find((f) => f.send.reply === send.reply);
    if (follower !== undefined) follower.msg = msg;
    else running.followers.push({ send, msg });
    return true;
  }

  async #receive(send: WireSend, msg: InboundMessage): Promise<void> {
    if (this.#closed || this.#adopted(send, msg)) return;
    const delivered = msg.info.deliveryCount;
    if (this.#expired(send, msg)) return;
    const handled = await this.#host.handled.find(send.id);
    if (handled !== undefined) {
      msg.ack(); // a redelivery (after a crash before the ack) or a duplicate: handled once already
      // a redelivery of the message handled (its reply subject) is at least the delivery after that
      // one: JetStream may count it as delivery 1 again after the receiver's death (nats-server 2.9)
      this.#host.reply(send.reply, { t: 'f', ok: true, n: handled.reply === send.reply ? Math.max(delivered, handled.n + 1) : delivered });
      return;
    }
    // the lookup may have outlasted the expiry (a slow bucket): past it the sender has given up
    if (this.#closed || this.#expired(send, msg)) return;
    const n = await this.#attempt(send, delivered);
    if (this.#closed || this.#expired(send, msg)) return;
    if (n > send.attempts) {
      // more deliveries than attempts: the earlier ones ended with this node (a crash) before an answer
      this.#end(send, msg, n, { reason: 'process_down', retry: false, error: 'the receiving node stopped while handling it' });
      return;
    }
    const target = this.#target(send);
    if (target === undefined) return this.#failed(send, msg, n, 'name' in send.to ? { reason: 'noproc', retry: true, error: 'noproc' } : { reason: 'noproc', retry: false, error: 'noproc' });
    // message-flow tracing: the handler of the message (by its id) is the child of the sender's span
    const flow = this.#kernel.telemetry.flow;
    const traced = flow !== undefined && send.traceparent !== undefined && this.#traced(flow, send);
    if (send.ack === 'enqueued') {
      const r = this.#kernel.deliverEnvelope(undefined, target, send.message, send.id);
      if (r !== Delivery.Enqueued && traced) flow.take(send.id);
      if (r !== Delivery.Enqueued) return this.#failed(send, msg, n, r === Delivery.MailboxFull ? { reason: 'mailbox_full', retry: true, error: 'mailbox_full' } : { reason: 'noproc', retry: false, error: 'noproc' });
      await this.#host.handled.add(send.id, n, send.reply);
      await this.#ack(send, msg, n);
      return;
    }
    const flight = new InFlight(this, send, msg, target, n);
    this.#inflight.set(send.id, flight);
    const r = this.#kernel.deliverEnvelope(undefined, target, send.message, send.id, flight);
    if (r !== Delivery.Enqueued) {
      if (traced) flow.take(send.id);
      this.#inflight.delete(send.id);
      return this.#failed(send, msg, n, r === Delivery.MailboxFull ? { reason: 'mailbox_full', retry: true, error: 'mailbox_full' } : { reason: 'noproc', retry: false, error: 'noproc' });
    }
    if (flight.done) return;
    // the attempt ends at its timeout, and at the send's expiry at the latest: past it the sender
    // has given up (and dead-lettered it), so a copy still queued must not be handled after that
    const untilExpiry = send.expires > 0 ? Math.max(0, send.expires - Date.now()) : Infinity;
    const limit = Math.min(send.timeout >= 0 ? send.timeout : Infinity, untilExpiry);
    if (limit !== Infinity) {
      const expired = limit < send.timeout || send.timeout < 0;
      flight.timer = this.#kernel.schedule(limit, () => {
        flight.timer = undefined;
        if (flight.done) return;
        // take back a copy not yet started; one already running may still finish (and is then recorded)
        this.#kernel.withdrawEnvelope(target.self, send.id, flight);
        if (expired) this.settle(flight, { reason: 'timeout', retry: false, error: 'the sender gave up (its deadline passed)' });
        else this.settle(flight, { reason: 'timeout', retry: true, error: `not handled within ${send.timeout} ms` });
      });
    }
    // while it runs, JetStream is told it is in progress (no redelivery for a slow handler)
    const every = Math.max(1, Math.floor(this.#host.ackWaitMs / 2));
    const tick = (): void => {
      if (flight.done) return;
      flight.msg.working();
      for (const f of flight.followers) f.msg.working();
      flight.keepAlive = this.#kernel.setTimer(every, tick, true);
    };
    flight.keepAlive = this.#kernel.setTimer(every, tick, true);
  }

  /**
   * Which attempt of its send a delivery is, recorded before it starts where JetStream's count cannot
   * be trusted. JetStream does not follow a message's deliveries across its receiver's death
   * (nats-server 2.9): redelivered to the node restarted, it may say 1 again (a send with one attempt
   * would run twice), or count each ack wait that ran out with no receiver (a send would end with
   * attempts left). So the attempts started are kept in the handled-id record's bucket: every attempt
   * of a send with one attempt and `ack: 'handled'` (whose handler a crash may cut short), and every
   * redelivery; the first delivery of any other send (the common path) writes nothing, and counts 1.
   */
  async #attempt(send: WireSend, delivered: number): Promise<number> {
    const handled = this.#host.handled;
    const everyAttempt = send.attempts === 1 && send.ack === 'handled';
    if (delivered === 1) return everyAttempt ? (await handled.startFirst(send.id, send.reply)) + 1 : 1;
    // a redelivery: the attempt after the last one recorded (an unrecorded first one counts as 1)
    const n = Math.max(await handled.started(send.id, send.reply), everyAttempt ? 0 : 1) + 1;
    if (n <= send.attempts) await handled.start(send.id, n, send.reply);
    return n;
  }

  /** True (and the message dropped) when it comes past its expiry: the sender has given up (and dead-lettered it, if it was told to). */
  #expired(send: WireSend, msg: InboundMessage): boolean {
    if (send.expires <= 0 || Date.now() <= send.expires) return false;
    msg.term('expired');
    this.#host.dropped('expired', undefined, send.id);
    return true;
  }

  /** Keeps the context the send carried for its handler; false when it carried a malformed one (evented: handled untraced). */
  #traced(flow: MessageFlow, send: WireSend): boolean {
    const context = incoming(this.#kernel, flow, send.traceparent, send.tracestate, SENDER.exec(send.reply)?.[1] ?? 'unknown', 'supervised');
    if (context === undefined) return false;
    flow.stash(send.id, context);
    return true;
  }

  /** @internal An in-flight message ended: handled (`f` undefined) or failed. */
  settle(flight: InFlight, f: Failure | undefined): void {
    if (flight.done) return;
    flight.done = true;
    this.#release(flight);
    const n = flight.n;
    if (f !== undefined) {
      if (this.#inflight.get(flight.send.id) === flight) this.#inflight.delete(flight.send.id);
      this.#failed(flight.send, flight.msg, n, f);
      // the followers' messages are tried at once, each an attempt of its own (the first runs, the
      // others follow it); a nak would count a delivery that was no attempt, past a send's last one
      if (!this.#closed) for (const x of flight.followers) this.receive(x.msg);
      return;
    }
    // handled: recorded first, then acked; the id stays in flight until the record holds it
    const acks = async (): Promise<void> => {
      await this.#ack(flight.send, flight.msg, n);
      for (const x of flight.followers) await this.#ack(x.send, x.msg, x.msg.info.deliveryCount);
    };
    void this.#kernel
      .trackIo(this.#host.handled.add(flight.send.id, n, flight.send.reply).then(acks))
      .catch((e: unknown) => this.#host.dropped('record_unavailable', e, flight.send.id))
      .finally(() => {
        if (this.#inflight.get(flight.send.id) === flight) this.#inflight.delete(flight.send.id);
      });
  }

  async #ack(send: WireSend, msg: InboundMessage, n: number): Promise<void> {
    if (this.#host.beforeAck !== undefined) await this.#host.beforeAck(send.id);
    if (this.#closed) return;
    msg.ack();
    this.#host.reply(send.reply, { t: 'f', ok: true, n });
  }

  #failed(send: WireSend, msg: InboundMessage, n: number, f: Failure): void {
    if (this.#closed) return;
    if (!f.retry || n >= send.attempts) return this.#end(send, msg, n, f);
    // JetStream reads a nak's delay as whole nanoseconds in an int64 and ignores any other (the retry
    // then comes at once): whole ms, rounded up (full jitter draws fractions), at most 9e12 ms
    const delay = Math.min(Math.ceil(backoffDelay(send.backoff, n, this.#kernel.random)), MAX_NAK_MS);
    msg.nak(delay);
    this.#host.reply(send.reply, { t: 'a', n, reason: f.reason, error: errorText(f.error) });
  }

  #end(send: WireSend, msg: InboundMessage, n: number, f: Failure): void {
    msg.term(f.reason);
    this.#host.reply(send.reply, { t: 'f', ok: false, n, reason: f.reason, error: errorText(f.error) });
  }

  #target(send: WireSend): Proc | undefined {
    const k = this.#kernel;
    if ('name' in send.to) return k.lookupTarget(send.to.name);
    const [creation, id] = send.to.pid;
    if (creation !== k.creation) return undefined; // a pid of an earlier incarnation of this node never comes back
    return k.resolve(new PidImpl(k.name, creation, id));
  }

  #release(flight: InFlight): void {
    if (flight.timer !== undefined) this.#kernel.cancelEntry(flight.timer);
    flight.timer = undefined;
    flight.keepAlive?.cancel();
    flight.keepAlive = undefined;
  }
}
