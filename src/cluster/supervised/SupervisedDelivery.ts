/**
 * Supervised send across nodes, through JetStream: `sendSupervised` to a pid of another node (or
 * {@link SupervisedDelivery.send} to a name on another node) is published to the cluster's
 * supervised stream with the message id as `Msg-Id` (a retried publish of the same id within the
 * stream's dedupe window is a no-op), consumed by the receiving node's durable consumer, delivered
 * to its target as a supervised envelope, and acked once enqueued or handled. The receiving node
 * keeps a record of the ids it handled (memory and a KV bucket), so a redelivery after a crash is
 * not handled twice. The sender learns the outcome on its reply subject and, on a final failure,
 * applies the send's `onError` policy: the dead letter, if any, is the sender's.
 *
 * @example
 * ```ts fragment
 * import { createNode, sendSupervised } from 'keel';
 * import { Cluster, SupervisedDelivery } from 'keel/cluster';
 *
 * const node = createNode({ name: 'orders' });
 * const cluster = await Cluster.join(node, { transport: natsTransport({ servers: 'nats://127.0.0.1:4222', cluster: 'shop' }) });
 * await SupervisedDelivery.start(node, { cluster: 'shop', servers: 'nats://127.0.0.1:4222', attach: cluster });
 * const billing = await cluster.whereis('billing', 'billing');
 * const outcome = await sendSupervised(node, billing!, { charge: 500 }, { ack: 'handled', retries: 3, onError: 'dead_letter' });
 * ```
 */
import { types } from 'node:util';
import { backoffDelay } from '../../backoff.js';
import { checkKeys, InvalidArgumentError, MissingPeerError, NodeStoppedError } from '../../errors.js';
import { onFailure } from '../../delivery/failurePolicy.js';
import { type SendOptions, type SendOutcome, type Settings, toSettings } from '../../delivery/sendSupervised.js';
import { type Kernel, kernelOf, originOf, type Proc } from '../../runtime/kernel.js';
import { type Pid, PidImpl } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { endWithOutcome, type TraceContext } from '../../telemetry/tracing.js';
import type { PidFactory } from '../codec.js';
import type { Cluster } from '../Cluster.js';
import { type HandledBucket, HandledIds } from './HandledIds.js';
import { type InboundMessage, Receiver } from './Receiver.js';
import { decodeReply, encodeSend, isWireId, MAX_ID_BYTES, type WireReply, type WireTarget } from './wire.js';
import { within } from '../internal/within.js';

/** How a node takes part in supervised sends across nodes. */
export interface SupervisedDeliveryOptions {
  /** The cluster's name (`[A-Za-z0-9_-]{1,64}`): the stream is `KEEL_<cluster>_SUPERVISED`, subjects `keel.<cluster>.sup.<node>`. */
  readonly cluster: string;
  /** NATS servers to connect to (a connection of its own, closed with it); or give `connection`. */
  readonly servers?: string | string[];
  /** Further options for the NATS connection (token, user/password, TLS...). */
  readonly connectOptions?: Record<string, unknown>;
  /** A NATS connection to use (left open by {@link SupervisedDelivery.close}). */
  readonly connection?: unknown;
  /** JetStream redelivers a message not acked within this after a receiver's crash (ms; default 30,000). */
  readonly ackWaitMs?: number;
  /** The stream's dedupe window for `Msg-Id` (ms; default 120,000). */
  readonly dedupeWindowMs?: number;
  /** Handled ids kept in memory (default 100,000); the KV bucket keeps them for `handledRetentionMs`. */
  readonly handledIds?: number;
  /** How long the KV bucket keeps a handled id (ms; default 24 h). */
  readonly handledRetentionMs?: number;
  /** Plugs in to the cluster's router: `sendSupervised` to a pid of another node then goes through here. */
  readonly attach?: Cluster;
  /** The largest encoded message (bytes; default 1 MiB minus room for the rest). */
  readonly maxMessageLength?: number;
  /** @internal Test hook: runs after an id is recorded as handled and before its JetStream ack. */
  readonly beforeAck?: (id: string) => void | Promise<void>;
}

/** A name registered on another node: `{ node, name }`. */
export interface RemoteName {
  readonly node: string;
  readonly name: string;
}

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * The reconnect settings of a connection this opens, as the cluster's transport's (which
 * `connectOptions` override): reconnect for ever, 250 ms apart. The client's defaults (10 attempts,
 * 2 s apart) gave up after about 20 s of outage, and the stream's consumer and the reply subject
 * were gone for good when the server came back, while the cluster reconnected.
 */
const RECONNECT = { maxReconnectAttempts: -1, reconnectTimeWait: 250 } as const;
/** Publishes of a send tried again (same Msg-Id) when one got no acknowledgement. */
const PUBLISH_RETRIES = 3;
/**
 * How long `close` waits for NATS (ms): to settle the publishes on their way and take messages back
 * out of the stream, then to close the consumer. A server that is gone answers nothing until the
 * client's request timeouts (5 s), which would outlast a node's default shutdown timeout.
 */
const CLOSE_ANSWER_MS = 2000;

/** Backoffs the sender's bound sums one by one; those after count as the last one's cap (an upper bound). */
const COUNTED_BACKOFFS = 1000;

interface Pending {
  readonly node: Kernel;
  readonly to: Pid | RemoteName;
  readonly message: unknown;
  readonly s: Settings;
  readonly id: string;
  firstError: unknown;
  lastError: unknown;
  attempts: number;
  timer: { cancel(): boolean } | undefined;
  /** The stream sequence of its message, once the publish was acknowledged. */
  seq: number | undefined;
  /** Settles when the publish does (either way). */
  published: Promise<void>;
  /** False while nothing of this send can be in the stream: none published yet, or only a duplicate of another send's id. */
  maybeStored: boolean;
  givingUp: boolean;
  /** Ends the send; `policy` false: the outcome is reported without its `onError` policy (no dead letter). */
  finish(outcome: SendOutcome, policy?: boolean): void;
}

interface Nats {
  readonly nc: { publish(subject: string, data: string): void; subscribe(subject: string, opts: { callback(err: unknown, msg: { string(): string; subject: string }): void }): { unsubscribe(): void }; close(): Promise<void> };
  readonly js: { publish(subject: string, data: string, opts: { msgID: string }): Promise<{ duplicate: boolean; seq: number }> };
  /** Takes a message out of the stream; false when it is not there (consumed already) or NATS did not answer. */
  withdraw(seq: number): Promise<boolean>;
  readonly owned: boolean;
  stop(): Promise<void>;
}

export class SupervisedDelivery {
  readonly #kernel: Kernel;
  readonly #cluster: string;
  readonly #nats: Nats;
  readonly #receiver: Receiver;
  readonly #handled: HandledIds;
  readonly #inbox: string;
  readonly #pending = new Map<number, Pending>();
  readonly #byId = new Map<string, Promise<SendOutcome>>();
  readonly #maxLength: number;
  readonly #ackWaitMs: number;
  #nextReply = 0;
  #closed = false;
  #closing: Promise<void> | undefined;
  #unhook: (() => void) | undefined;
  #detach: (() => void) | undefined;

  private constructor(kernel: Kernel, cluster: string, nats: Nats, handled: HandledIds, options: SupervisedDeliveryOptions, inbox: string, pids: PidFactory, maxPayload: number | undefined) {
    this.#kernel = kernel;
    this.#cluster = cluster;
    this.#nats = nats;
    this.#handled = handled;
    this.#inbox = inbox;
    // the server's payload limit, less room for the rest of the send
    this.#maxLength = options.maxMessageLength ?? (maxPayload ?? 1024 * 1024) - 4096;
    this.#ackWaitMs = options.ackWaitMs ?? 30_000;
    this.#receiver = new Receiver(
      {
        kernel,
        handled,
        ackWaitMs: this.#ackWaitMs,
        beforeAck: options.beforeAck,
        reply: (subject, reply) => this.#nats.nc.publish(subject, JSON.stringify(reply)),
        dropped: (reason, error, id) => kernel.telemetry.execute('keel.cluster.supervised_dropped', { count: 1 }, { node: kernel.name, reason, error, id }),
      },
      pids,
    );
  }

  /**
   * Starts supervised sends across nodes for `node`: the cluster's stream and KV bucket (made if
   * missing), this node's durable consumer, and a reply subject. Stops when the node shuts down.
   */
  static async start(node: Node, given: SupervisedDeliveryOptions): Promise<SupervisedDelivery> {
    const kernel = kernelOf(node, 'node');
    if (kernel.stopping) throw new NodeStoppedError(kernel.name, 'SupervisedDelivery.start');
    if (typeof given !== 'object' || given === null || types.isProxy(given)) throw new InvalidArgumentError('options', 'SupervisedDeliveryOptions', given);
    const options = readOptions(given);
    const cluster = options.cluster;
    if (typeof cluster !== 'string' || !NAME.test(cluster)) throw new InvalidArgumentError('options.cluster', 'a cluster name: 1 to 64 of A-Z a-z 0-9 _ -', cluster);
    if (!NAME.test(kernel.name)) throw new InvalidArgumentError('node.name', 'a cluster node name: 1 to 64 of A-Z a-z 0-9 _ -', kernel.name);
    const ackWaitMs = positive(options.ackWaitMs, 'options.ackWaitMs', 30_000);
    const dedupeMs = positive(options.dedupeWindowMs, 'options.dedupeWindowMs', 120_000);
    const retentionMs = positive(options.handledRetentionMs, 'options.handledRetentionMs', 24 * 3600_000);
    const capacity = options.handledIds ?? 100_000;
    if (!Number.isSafeInteger(capacity) || capacity < 1) throw new InvalidArgumentError('options.handledIds', 'an integer >= 1', capacity);
    if (options.connection === undefined && options.servers === undefined) throw new InvalidArgumentError('options', 'servers or a connection', options);

    const [transport, jetstream, kv] = await Promise.all([
      import('@nats-io/transport-node').catch(() => undefined),
      import('@nats-io/jetstream').catch(() => undefined),
      import('@nats-io/kv').catch(() => undefined),
    ]);
    if (jetstream === undefined || kv === undefined || (options.connection === undefined && transport === undefined)) {
      throw new MissingPeerError(['@nats-io/transport-node', '@nats-io/jetstream', '@nats-io/kv'], 'supervised send across nodes');
    }
    type Connection = Parameters<typeof jetstream.jetstream>[0];
    const owned = options.connection === undefined;
    const nc = (owned ? await transport!.connect({ name: `keel:${cluster}:${kernel.name}:sup`, inboxPrefix: `_INBOX.keel.${cluster}.${kernel.name}`, ...RECONNECT, ...options.connectOptions, servers: options.servers! }) : options.connection) as Connection;
    const consuming: { messages?: { close(): Promise<unknown> }; replies?: { unsubscribe(): void } } = {};
    try {
      const stream = `KEEL_${cluster}_SUPERVISED`;
      const jsm = await jetstream.jetstreamManager(nc);
      const config = {
        name: stream,
        subjects: [`keel.${cluster}.sup.*`],
        retention: jetstream.RetentionPolicy.Workqueue,
        storage: jetstream.StorageType.File,
        duplicate_window: Math.round(dedupeMs * 1_000_000),
      };
      await jsm.streams.add(config).catch(async (e: unknown) => {
        // made by another node already (with its own settings): used as it is
        if ((await jsm.streams.info(stream).catch(() => undefined)) === undefined) throw e;
      });
      const durable = `sup_${kernel.name}`;
      const consumerConfig = {
        durable_name: durable,
        filter_subject: `keel.${cluster}.sup.${kernel.name}`,
        ack_policy: jetstream.AckPolicy.Explicit,
        ack_wait: Math.round(ackWaitMs * 1_000_000),
        max_deliver: -1,
        deliver_policy: jetstream.DeliverPolicy.All,
      };
      await jsm.consumers.add(stream, consumerConfig).catch(async () => jsm.consumers.update(stream, durable, { ack_wait: consumerConfig.ack_wait }));
      const js = jetstream.jetstream(nc);
      const bucket = await new kv.Kvm(js).create(`KEEL_${cluster}_SUP_HANDLED`, { history: 1, ttl: retentionMs });
      const handled = new HandledIds(capacity, bucket as unknown as HandledBucket, kernel.name);
      const inbox = `_INBOX.keel.${cluster}.${kernel.name}.sup.${kernel.creation}.${Math.random().toString(36).slice(2, 10)}`;
      const nats: Nats = {
        nc: nc as unknown as Nats['nc'],
        js: js as unknown as Nats['js'],
        owned,
        withdraw: (seq) => jsm.streams.deleteMessage(stream, seq, false).catch(() => false),
        async stop() {
          consuming.replies?.unsubscribe(); // a borrowed connection stays open: its subscription of ours goes
          await consuming.messages?.close().catch(() => undefined);
          if (owned) await nc.close().catch(() => undefined);
        },
      };
      const name = kernel.name;
      const creation = kernel.creation;
      const pids: PidFactory = (n, c, i) => (n === name && c === creation ? (kernel.resolve({ node: n, creation: c, id: i })?.self ?? new PidImpl(n, c, i)) : new PidImpl(n, c, i));
      const self = new SupervisedDelivery(kernel, cluster, nats, handled, options, inbox, pids, (nc as { info?: { max_payload?: number } }).info?.max_payload);
      consuming.replies = nc.subscribe(`${inbox}.*`, {
        callback: (err, msg) => {
          if (err === null) self.#replied(msg.subject, msg.string());
        },
      });
      const consumer = await js.consumers.get(stream, durable);
      consuming.messages = await consumer.consume({ callback: (m) => self.#receiver.receive(m as unknown as InboundMessage) });
      // the node's shutdown waits for it (within its own timeout): every send still waiting has its outcome by the time the node has stopped
      self.#unhook = kernel.onShutdown(() => self.close());
      if (options.attach !== undefined) {
        const attach = options.attach;
        // a traced sendSupervised left its span's context by the message's id: it travels with the message
        attach.attachSupervised((from, to, message, settings, id) => self.#send(from, to, message, settings as Settings, id, kernel.telemetry.flow?.take(id)));
        self.#detach = () => attach.attachSupervised(undefined);
      }
      return self;
    } catch (e) {
      consuming.replies?.unsubscribe();
      if (owned) await nc.close().catch(() => undefined);
      throw e;
    }
  }

  /**
   * A supervised send to a pid of another node or to a name registered on one (`{ node, name }`),
   * with `sendSupervised`'s options and outcome. A message the codec cannot carry throws its typed
   * error here, at the send.
   */
  send<M>(from: Node | Context<any>, to: Pid<M> | RemoteName, message: M, options?: SendOptions): Promise<SendOutcome> {
    const { node, caller } = originOf(from);
    if (node !== this.#kernel) throw new InvalidArgumentError('from', `the node ${this.#kernel.name} or one of its processes`, from);
    const target = remoteTarget(to);
    if (target.node === node.name) throw new InvalidArgumentError('to', 'a pid of another node or { node, name } (for this node: sendSupervised)', to);
    const s = toSettings(options);
    const id = s.id ?? node.nextMessageId();
    const flow = node.telemetry.flow;
    if (flow === undefined) return this.#send(caller, target, message, s, id, undefined);
    // message-flow tracing: the send in a span (as sendSupervised's), whose context travels with the message
    const span = flow.start('keel.supervised_send', flow.contextOf(caller), { to: String(recipient(target)), ack: s.ack, id });
    let sent: Promise<SendOutcome>;
    try {
      sent = this.#send(caller, target, message, s, id, span.context);
    } catch (e) {
      span.end(e);
      throw e;
    }
    return endWithOutcome(span, sent);
  }

  /** Counts for leak checks: sends awaiting an outcome, messages being handled here, ids in memory. */
  internals(): { pending: number; inflight: number; handledIds: number } {
    return { pending: this.#pending.size, inflight: this.#receiver.inflight, handledIds: this.#handled.size };
  }

  /**
   * Stops consuming and replying; sends still waiting end with `noproc`: a message still in the
   * stream is taken out of it first (then its `onError` applies: a dead letter is not also handled),
   * one already consumed by its receiver is reported without a dead letter. NATS that does not
   * answer within {@link CLOSE_ANSWER_MS} (the server gone, or frozen) ends the sends still waiting
   * as they stand: reported without a dead letter if their message may be in the stream, else with
   * their `onError`. Idempotent: every call resolves when the first is done.
   */
  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    this.#unhook?.();
    this.#detach?.();
    this.#receiver.close();
    const stopped = 'the supervised delivery stopped';
    const ending = Promise.all([...this.#pending.values()].map((p) => this.#giveUp(p, fail(p, 'noproc', stopped))));
    if (!(await within(ending, CLOSE_ANSWER_MS))) {
      // a publish or a withdrawal NATS has not answered: what may be in the stream cannot be taken back
      for (const p of [...this.#pending.values()]) p.finish(fail(p, 'noproc', stopped), !p.maybeStored);
    }
    // the consumer's close asks the server too: a connection it opened is closed all the same
    await within(this.#nats.stop(), CLOSE_ANSWER_MS);
    if (this.#nats.owned) await this.#nats.nc.close().catch(() => undefined);
  }

  /**
   * The sender's side ends a send (its death, its signal, close): its message is taken out of the
   * stream if still there, and the outcome gets the send's `onError` (a dead letter); a message
   * already consumed is the receiver's (handled, or ended there): the outcome is only reported.
   */
  async #giveUp(p: Pending, outcome: SendOutcome): Promise<void> {
    if (p.givingUp) return;
    p.givingUp = true;
    // the latest publish (a duplicate's lookup may publish again meanwhile)
    for (let published; published !== p.published; ) await (published = p.published);
    // nothing of it in the stream (a duplicate of another send): it failed here, its onError applies
    const taken = p.seq !== undefined ? await this.#nats.withdraw(p.seq) : !p.maybeStored;
    p.finish(outcome, taken);
  }

  #send(sender: Proc | undefined, to: Pid | RemoteName, message: unknown, s: Settings, id: string, traced: TraceContext | undefined): Promise<SendOutcome> {
    if (!isWireId(id)) throw new InvalidArgumentError('options.id', `a message id of at most ${MAX_ID_BYTES} bytes of UTF-8, without line breaks or lone surrogates`, id);
    const joined = this.#byId.get(id);
    if (joined !== undefined) return joined; // the same id in flight from here: one send, one outcome
    const node = to.node;
    const target: WireTarget = isName(to) ? { name: to.name } : { pid: [to.creation, to.id] };
    const bound = s.deadline !== Infinity ? s.deadline : this.#bound(s);
    const key = ++this.#nextReply;
    const reply = `${this.#inbox}.${key}`;
    // the encoding is a snapshot taken now; a value it cannot carry throws its typed error here
    const trace = traced === undefined ? undefined : this.#kernel.telemetry.flow?.inject(traced);
    // attempts stay a safe integer on the wire (retries may be 2^53 - 1: one more is 2^53, which the receiver refuses)
    const payload = encodeSend({ id, to: target, ack: s.ack, timeout: s.ack === 'handled' && s.timeout !== Infinity ? s.timeout : -1, attempts: Math.min(s.retries, Number.MAX_SAFE_INTEGER - 1) + 1, retryOnCrash: s.retryOnCrash, backoff: s.backoff, expires: bound === Infinity ? 0 : Date.now() + bound, reply }, message, this.#maxLength, trace);
    // nothing was published: the send failed here, and its onError applies (as on a stopped node)
    if (this.#closed) return onFailure(this.#kernel, recipient(to), message, s, { ok: false, id, reason: 'noproc', attempts: 0, firstError: 'the supervised delivery stopped', lastError: 'the supervised delivery stopped' });
    const promise = new Promise<SendOutcome>((resolve, reject) => {
      const p: Pending = {
        node: this.#kernel, to, message, s, id, firstError: undefined, lastError: undefined, attempts: 0, timer: undefined,
        seq: undefined, published: Promise.resolve(), maybeStored: false, givingUp: false,
        finish: (outcome, policy = true) => {
          if (!this.#pending.delete(key)) return;
          this.#byId.delete(id);
          p.timer?.cancel();
          unwatch?.();
          if (s.signal !== undefined) s.signal.removeEventListener('abort', onAbort);
          if (outcome.ok || !policy) resolve(outcome);
          else onFailure(this.#kernel, recipient(to), message, s, outcome).then(resolve, reject);
        },
      };
      const onAbort = (): void => void this.#giveUp(p, fail(p, 'aborted', s.signal?.reason));
      this.#pending.set(key, p);
      // the sender's death ends its sends (as on one node): its message is taken out of the stream if still there
      const unwatch = sender === undefined ? undefined : this.#kernel.onProcExit(sender, () => void this.#giveUp(p, fail(p, 'aborted', 'the sender has exited')));
      if (s.signal !== undefined) {
        // aborted before anything was published: nothing to take back, the send failed here (onError applies)
        if (s.signal.aborted) return p.finish(fail(p, 'aborted', s.signal.reason));
        s.signal.addEventListener('abort', onAbort, { once: true });
      }
      // past the bound (and a margin for the receiver's last answer) the sender gives up; the receiver drops it after `expires`
      if (bound !== Infinity) {
        p.timer = this.#kernel.setTimer(bound + Math.min(this.#ackWaitMs, 2000), () => {
          // a reply is at most once (core NATS): before saying timeout (and dead-lettering), ask the receiver's record
          const timedOut = (): void => p.finish(fail(p, 'timeout', `no outcome within ${bound} ms`));
          this.#handled.handledBy(node, id).then((handled) => (handled ? p.finish({ ok: true, id, attempts: Math.max(1, p.attempts) }) : timedOut()), timedOut);
        }, false);
      }
      const subject = `keel.${this.#cluster}.sup.${node}`;
      // a publish whose acknowledgement did not come (a timeout, NATS reconnecting) may be stored all
      // the same: it is published again under the same Msg-Id, which the stream dedupes
      const publish = (msgID: string, retry: number): void => {
        const publishing = this.#nats.js.publish(subject, payload, { msgID });
        p.maybeStored = true;
        p.published = publishing.then(
          (ack) => {
            if (!ack.duplicate) p.seq = ack.seq;
            // a duplicate of its first publish is another send's message (a retry's is its own, seq unknown)
            else if (retry === 0) p.maybeStored = false;
          },
          () => undefined,
        );
        publishing.then(
          (ack) => {
            if (!ack.duplicate || !this.#pending.has(key)) return;
            // a duplicate of our own publish whose acknowledgement was lost: stored, its reply will come
            if (retry > 0) return;
            // the stream saw this id within its dedupe window: ok only if the receiver handled it; else
            // (the earlier send failed, or is still on its way) sent as a message of its own, which the
            // receiver's handled-id record keeps from being handled twice
            this.#handled.handledBy(node, id).then(
              (handled) => {
                if (handled) p.finish({ ok: true, id, attempts: 0 });
                else if (this.#pending.has(key)) publish(`${id} ${this.#inbox}.${key}`, 0);
              },
              (e: unknown) => p.finish(fail(p, 'noconnection', e)),
            );
          },
          (e: unknown) => {
            if (!this.#pending.has(key)) return;
            // closed meanwhile: its close ends it (noproc), once the publish has settled
            if (this.#closed) return;
            if (retry >= PUBLISH_RETRIES) return p.finish(fail(p, 'noconnection', e));
            this.#kernel.setTimer(50 * 2 ** retry, () => {
              if (this.#pending.has(key) && !this.#closed) publish(msgID, retry + 1);
            }, false);
          },
        );
      };
      publish(id, 0);
    });
    if (this.#pending.has(key)) this.#byId.set(id, promise); // not when it ended at once (an aborted signal)
    return promise;
  }

  /** The sender's bound without a deadline: every attempt's timeout and ack wait, and the backoffs between. */
  #bound(s: Settings): number {
    if (s.ack === 'handled' && s.timeout === Infinity) return Infinity;
    const perAttempt = (s.ack === 'handled' ? s.timeout : 0) + this.#ackWaitMs;
    // each backoff's cap as the receiver computes it (a zero initial delay stays zero, never 0 x
    // Infinity = NaN); past the first ones, each counts as its largest (retries may be near 2^53)
    const caps = { ...s.backoff, jitter: 'none' } as const;
    const counted = Math.min(s.retries, COUNTED_BACKOFFS);
    let backoffs = 0;
    // (rounded up to whole ms, as the receiver's nak is)
    for (let k = 1; k <= counted; k++) backoffs += Math.ceil(backoffDelay(caps, k, Math.random));
    if (s.retries > counted) backoffs += (s.retries - counted) * Math.ceil(backoffDelay(caps, s.retries, Math.random));
    return (s.retries + 1) * perAttempt + backoffs;
  }

  #replied(subject: string, text: string): void {
    const key = Number(subject.slice(this.#inbox.length + 1));
    const p = this.#pending.get(key);
    const r: WireReply | undefined = decodeReply(text);
    if (p === undefined || r === undefined) return;
    p.attempts = Math.max(p.attempts, r.n);
    if (r.t === 'a' || !r.ok) {
      if (p.firstError === undefined) p.firstError = r.error;
      p.lastError = r.error;
    }
    if (r.t === 'a') return;
    if (r.ok) p.finish({ ok: true, id: p.id, attempts: r.n });
    else p.finish({ ok: false, id: p.id, reason: r.reason as 'noproc', attempts: r.n, firstError: p.firstError, lastError: p.lastError });
  }
}

function fail(p: Pending, reason: 'noproc' | 'timeout' | 'aborted' | 'noconnection', error: unknown): SendOutcome {
  return { ok: false, id: p.id, reason, attempts: p.attempts, firstError: p.firstError ?? error, lastError: error };
}

/** The dead letter's recipient: the pid, or `name@node` for a name on another node. */
function recipient(to: Pid | RemoteName): Pid | string {
  return isName(to) ? `${to.name}@${to.node}` : to;
}

function isName(to: Pid | RemoteName): to is RemoteName {
  return typeof (to as { id?: unknown }).id !== 'number';
}

/** A pid of another node or `{ node, name }`, read once (a getter that throws, a proxy: a typed error). */
function remoteTarget(to: unknown): Pid | RemoteName {
  const expected = 'a pid of another node or { node, name }';
  if (PidImpl.is(to)) return to;
  if (typeof to !== 'object' || to === null || types.isProxy(to)) throw new InvalidArgumentError('to', expected, to);
  let node: unknown, name: unknown;
  try {
    ({ node, name } = to as Record<string, unknown>);
  } catch {
    throw new InvalidArgumentError('to', expected, to, 'reading it threw');
  }
  if (typeof node !== 'string' || !NAME.test(node)) throw new InvalidArgumentError('to.node', 'a cluster node name', node);
  if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('to.name', 'a registered name', name);
  return { node, name };
}

/** The options, each read once (a getter that throws: a typed error, not a raw one from deep inside start). */
function readOptions(options: SupervisedDeliveryOptions): SupervisedDeliveryOptions {
  checkKeys(options, OPTION_KEYS, 'options'); // a misspelt option is refused, never ignored
  const copy: Record<string, unknown> = {};
  for (const key of OPTION_KEYS) {
    try {
      copy[key] = (options as unknown as Record<string, unknown>)[key];
    } catch {
      throw new InvalidArgumentError(`options.${key}`, 'an option that can be read', options, 'reading it threw');
    }
  }
  const max = copy.maxMessageLength;
  if (max !== undefined && (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 1)) throw new InvalidArgumentError('options.maxMessageLength', 'an integer >= 1 (bytes)', max);
  return copy as unknown as SupervisedDeliveryOptions;
}

const OPTION_KEYS = ['cluster', 'servers', 'connectOptions', 'connection', 'ackWaitMs', 'dedupeWindowMs', 'handledIds', 'handledRetentionMs', 'attach', 'maxMessageLength', 'beforeAck'] as const;

/**
 * The longest duration (ms): JetStream holds durations as nanoseconds in an int64, and a JSON number
 * past 1e21 is written with an exponent, which the server does not read (about 285 years).
 */
const MAX_MS = 9e12;

function positive(value: number | undefined, argument: string, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !(value <= MAX_MS)) throw new InvalidArgumentError(argument, `a positive number of milliseconds, at most ${MAX_MS}`, value);
  return value;
}
