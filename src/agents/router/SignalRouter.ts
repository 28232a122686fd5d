import { types } from 'node:util';
import { checkKeys, checkStrayKeys, InvalidArgumentError, InvalidSignalError, readKnownOptions, toError } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observeRouter } from '../observe.js';
import { deadLetterAndReport } from '../../delivery/deadLetter.js';
import { type SendOptions, toSettings, SEND_SPAN_EVENTS } from '../../delivery/sendSupervised.js';
import { CastMessage, type GenServerSpec } from '../../otp/GenServer.js';
import { readMailboxOptions } from '../../otp/internal/mailboxOptions.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { isDown } from '../../runtime/messages.js';
import { Delivery, type EnvelopeListener, kernelOf, type Kernel, type Proc } from '../../runtime/kernel.js';
import { isPid, Pid, PidImpl, targetText } from '../../runtime/Pid.js';
import type { Context, MailboxOptions, Node } from '../../runtime/types.js';
import type { MessageFlow } from '../../telemetry/tracing.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { componentState, endsForGood, peekComponentState, releaseComponentState } from '../internal/componentState.js';
import { watchProcess, type WatchRef } from '../internal/watch.js';
import { parsePattern, PatternTrie } from '../internal/PatternTrie.js';
import { type Signal, stableSignal, validateSignal } from '../Signal.js';
import { close, expire, pump, removeSub } from './deliveries.js';
import { count, dropEvent, type Match, newSub, REASONS, type State, type Sub } from './table.js';
import type {
  SignalDropReason,
  SignalOverflow,
  SignalRouterCast,
  SignalRouterHandle,
  SignalRouterOptions,
  SignalRouterProtocol,
  SignalRouterStats,
  SubscribeOptions,
  PublishResult,
} from './types.js';

const OVERFLOWS: readonly SignalOverflow[] = ['drop_newest', 'drop_oldest', 'reject'];
const DEFAULT_CAPACITY = 1000;
const DEFAULT_MAX_IN_FLIGHT = 8;
/** Types the match cache holds at most, and the longest type it holds (a longer one is walked each time): at most 1024 × 1024 characters. */
const MATCH_CACHE_LIMIT = 1024;
const MATCH_CACHE_TYPE_LENGTH = 1024;

interface InitArg {
  readonly name: string;
  readonly deliveryTimeout: number;
  readonly mailbox: MailboxOptions | undefined;
}

// ---- drops ------------------------------------------------------------------------------------

/**
 * `reject`: the refused signal goes to the dead letter queue; the event says where it went.
 * `pattern`: the one that matched it (the subscriber's while it is routed: the next publish may match another).
 * `reason`: `'rejected'` (refused as it was routed), or `'evicted'` (routed, then dropped from the
 * buffer by a lowered capacity); the dead letter's reason is `signal_<reason>`.
 */
function deadLetter(state: State, sub: Sub, signal: Signal, pattern = sub.pattern, reason: 'rejected' | 'evicted' = 'rejected'): void {
  const entry = { recipient: sub.pid, message: signal, reason: `signal_${reason}`, metadata: { router: state.name, pattern } };
  void deadLetterAndReport(state.node, entry, `signal router ${state.name}: signal ${signal.id} to ${targetText(sub.pid)}`).then((where) =>
    dropEvent(state, reason, sub, 1, signal, { pattern, ...where }),
  );
}

// ---- routing ----------------------------------------------------------------------------------

/**
 * The subscribers a type matches, each once (through the first matching pattern the trie visits):
 * a trie walk per distinct type, then cached until a subscription is added or removed. A type
 * longer than {@link MATCH_CACHE_TYPE_LENGTH} is walked each time, not kept: the cache's memory is
 * bounded by its two limits, whatever types are published.
 */
function matchOf(state: State, type: string): Match {
  let m = state.matches.get(type);
  if (m === undefined) {
    const keep = type.length <= MATCH_CACHE_TYPE_LENGTH;
    if (keep && state.matches.size >= MATCH_CACHE_LIMIT) state.matches.clear();
    const subs: Sub[] = [];
    const patterns: string[] = [];
    const seen = new Set<Sub>();
    state.trie.match(type.split('.'), (sub, pattern) => {
      // a subscriber matched through several patterns gets the signal once
      if (seen.has(sub)) return;
      seen.add(sub);
      subs.push(sub);
      patterns.push(pattern);
    });
    m = { subs, patterns };
    if (keep) state.matches.set(type, m);
  }
  return m;
}

/** Offers `signal` to `sub`'s buffer under its overflow policy; answers the drops it caused (-1: refused, itself the drop). */
function offer(state: State, sub: Sub, signal: Signal): number {
  const evicted = state.evicted;
  if (sub.buffer.offer(signal, evicted)) {
    state.buffered++;
    const drops = evicted.length;
    if (drops === 0) return 0;
    // 'drop_oldest' made room (one: a subscribe that lowers the capacity drops the excess at once, see trim)
    for (let i = 0; i < drops; i++) {
      state.buffered--;
      count(state, 'evicted', 1);
      sub.dropped++;
      dropEvent(state, 'evicted', sub, 1, evicted[i]);
    }
    evicted.length = 0;
    return drops;
  }
  if (sub.buffer.overflow === 'reject') {
    count(state, 'rejected', 1);
    sub.dropped++;
    deadLetter(state, sub, signal);
  } else {
    count(state, 'buffer_full', 1);
    sub.dropped++;
    dropEvent(state, 'buffer_full', sub, 1, signal, { pattern: sub.pattern });
  }
  return -1;
}

/**
 * A lowered capacity: what `sub`'s buffer holds above it is dropped at once, each signal counted and
 * reported as `evicted` (it was routed, then dropped from the buffer before delivery: `routed` never
 * goes down). Which ones, by the policy's rule: `drop_oldest` the oldest; `drop_newest` and `reject`
 * the newest, those a full buffer would have refused; under `reject` they are dead-lettered
 * (`signal_evicted`), as nothing that policy refuses is dropped unsaid.
 */
function trim(state: State, sub: Sub): void {
  const excess = sub.buffer.excess();
  if (excess.length === 0) return;
  const reject = sub.buffer.overflow === 'reject';
  for (const signal of excess) {
    state.buffered--;
    sub.dropped++;
    count(state, 'evicted', 1);
    // the pattern through which it matches the subscriber (the trie as it was when it was routed, but for unsubscribes since)
    if (reject) deadLetter(state, sub, signal, patternOf(state, sub, signal.type), 'evicted');
    else dropEvent(state, 'evicted', sub, 1, signal);
  }
}

/** The pattern through which `type` matches `sub` (its last routed one when none does now). */
function patternOf(state: State, sub: Sub, type: string): string {
  const { subs, patterns } = matchOf(state, type);
  const i = subs.indexOf(sub);
  return i < 0 ? sub.pattern : patterns[i]!;
}

function route(state: State, signal: Signal): void {
  state.published++;
  // message-flow tracing: the signal's deliveries are children of the span routing it
  const flow = state.node.telemetry.flow;
  if (flow !== undefined) flow.tag(signal, flow.contextOf(state.proc));
  state.spanWatched = state.spanProbe.active;
  const { subs, patterns } = matchOf(state, signal.type);
  let accepted = 0;
  let drops = 0;
  for (let i = 0; i < subs.length; i++) {
    const sub = subs[i]!;
    sub.pattern = patterns[i]!;
    const r = offer(state, sub, signal);
    if (r < 0) drops++;
    else {
      drops += r;
      accepted++;
      if (sub.inFlight < sub.maxInFlight) pump(state, sub);
    }
  }
  const matched = subs.length;
  state.matched += matched;
  state.routed += accepted;
  if (state.routedProbe.active) {
    state.node.telemetry.execute('keel.signal_router.routed', { matched, accepted, dropped: drops }, { router: state.name, type: signal.type, id: signal.id });
  }
}

// ---- subscribers ------------------------------------------------------------------------------

/** Monitors a subscriber through the monitor manager (or the plain runtime monitor when the service is off). */
function monitorSubscriber(ctx: Context<any>, pid: Pid): WatchRef | undefined {
  const w = watchProcess(ctx, pid, 'signal_router');
  return w === 'noproc' ? undefined : w;
}

// ---- validation -------------------------------------------------------------------------------

function checkSubscriber(pid: unknown): asserts pid is Pid {
  if (!isPid(pid)) throw new InvalidArgumentError('subscriber', 'a Pid (a process to deliver signals to)', pid);
}

function positiveInt(argument: string, value: unknown): void {
  if (value !== undefined && (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1)) {
    throw new InvalidArgumentError(argument, 'a positive integer', value);
  }
}

function checkSubscribeOptions(options: unknown): asserts options is SubscribeOptions | undefined {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ capacity?, overflow?, maxInFlight? }', options);
  checkKeys(options, ['capacity', 'overflow', 'maxInFlight'], 'options');
  const o = options as SubscribeOptions;
  positiveInt('options.capacity', o.capacity);
  positiveInt('options.maxInFlight', o.maxInFlight);
  if (o.overflow !== undefined && !OVERFLOWS.includes(o.overflow)) throw new InvalidArgumentError('options.overflow', "'drop_newest' | 'drop_oldest' | 'reject'", o.overflow);
}

/** A call's pattern, checked (read once by the caller). */
function readPattern(pattern: unknown): string {
  parsePattern(pattern);
  return pattern as string;
}

/** A call's subscriber: a runtime pid as it is, a copy of a pid as plain data read once, checked. */
function readSubscriber(pid: unknown): Pid {
  const p = PidImpl.is(pid) || typeof pid !== 'object' || pid === null || types.isProxy(pid) ? pid : { node: (pid as Pid).node, creation: (pid as Pid).creation, id: (pid as Pid).id };
  checkSubscriber(p);
  return p;
}

/** A call's options as a plain copy, each read once, checked. */
function readSubscribeOptions(options: unknown): SubscribeOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ capacity?, overflow?, maxInFlight? }', options);
  checkStrayKeys(options, ['capacity', 'overflow', 'maxInFlight'], 'options');
  const o = options as SubscribeOptions;
  const copy = { capacity: o.capacity, overflow: o.overflow, maxInFlight: o.maxInFlight } as SubscribeOptions;
  checkSubscribeOptions(copy);
  return copy;
}

/** The start options, each read once and checked: what is checked is what is used (at each restart too). */
function readRouterOptions(options: unknown): { name: unknown; deliveryTimeout: number; mailbox: MailboxOptions | undefined } {
  if (options === undefined) return { name: undefined, deliveryTimeout: 5000, mailbox: undefined };
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name?, deliveryTimeout?, mailbox? }', options);
  const o = readKnownOptions(options, ['name', 'deliveryTimeout', 'mailbox']);
  const t = o.deliveryTimeout;
  if (t !== undefined && (typeof t !== 'number' || Number.isNaN(t) || t <= 0)) throw new InvalidArgumentError('options.deliveryTimeout', 'a number of ms > 0 (or Infinity)', t);
  return { name: o.name, deliveryTimeout: t ?? 5000, mailbox: readMailboxOptions(o.mailbox, 'options.mailbox') };
}

// ---- the server -------------------------------------------------------------------------------

function subscribe(state: State, pattern: string, pid: Pid, options: SubscribeOptions): 'ok' | { error: 'noproc' } {
  const key = Pid.format(pid);
  let sub = state.subs.get(key);
  if (sub === undefined) {
    const m = monitorSubscriber(state.ctx, pid);
    if (m === undefined) return { error: 'noproc' };
    sub = state.orphans.get(key);
    if (sub === undefined) sub = newSub(key, state.node.lookupTarget(pid)?.self ?? pid, m.ref, m.managed, DEFAULT_CAPACITY, DEFAULT_MAX_IN_FLIGHT);
    else {
      // it left with deliveries still in flight: it takes them back, so that they count against its
      // maxInFlight (leaving and coming back must not multiply what it holds), with the defaults again
      state.orphans.delete(key);
      sub.removed = false;
      sub.ref = m.ref;
      sub.managed = m.managed;
      sub.buffer.capacity = DEFAULT_CAPACITY;
      sub.buffer.overflow = 'drop_newest';
      sub.maxInFlight = DEFAULT_MAX_IN_FLIGHT;
      sub.dropped = 0;
    }
    state.subs.set(key, sub);
  }
  if (options.capacity !== undefined) sub.buffer.capacity = options.capacity;
  if (options.overflow !== undefined) sub.buffer.overflow = options.overflow;
  if (options.maxInFlight !== undefined) sub.maxInFlight = options.maxInFlight;
  pump(state, sub); // a raised maxInFlight takes effect now, before a lowered capacity drops anything
  // a lowered capacity bounds the buffer now (before this pattern joins: the excess was routed through the others)
  trim(state, sub);
  if (state.trie.add(pattern, key, sub)) state.matches.clear();
  sub.patterns.add(pattern);
  return 'ok';
}

function unsubscribe(state: State, pattern: string, pid: Pid): 'ok' | 'not_found' {
  const sub = state.subs.get(Pid.format(pid));
  if (sub === undefined || !sub.patterns.has(pattern)) return 'not_found';
  state.trie.remove(pattern, sub.key);
  state.matches.clear();
  sub.patterns.delete(pattern);
  if (sub.patterns.size === 0) removeSub(state, sub, 'unsubscribed');
  return 'ok';
}

function stats(state: State): SignalRouterStats {
  return {
    subscribers: state.subs.size,
    subscriptions: state.trie.size,
    published: state.published,
    matched: state.matched,
    routed: state.routed,
    delivered: state.delivered,
    failed: state.failed,
    buffered: state.buffered,
    inFlight: state.inFlight,
    dropped: { total: state.droppedTotal, byReason: { ...state.byReason } },
    restarts: state.restarts,
    mailboxFull: { refused: state.mailboxRefused, evicted: state.mailboxEvicted },
  };
}

/** A new table (the router's first start under its name). */
function newState(node: State['node'], ctx: Context<any>, name: string): State {
  const byReason = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<SignalDropReason, number>;
  return {
    name,
    node,
    trie: new PatternTrie<Sub>(),
    subs: new Map(),
    matches: new Map(),
    orphans: new Map(),
    settledQueue: [],
    settledCount: 0,
    drainQueued: false,
    timer: undefined,
    timerAt: Infinity,
    ctx,
    proc: ctx as unknown as Proc,
    running: false,
    send: {},
    settings: toSettings(undefined),
    deliveryTimeout: 5000,
    spanProbe: node.telemetry.probe(SEND_SPAN_EVENTS),
    spanWatched: false,
    evicted: [],
    routedProbe: node.telemetry.probe('keel.signal_router.routed'),
    droppedProbe: node.telemetry.probe('keel.signal_router.dropped'),
    resumedProbe: node.telemetry.probe('keel.signal_router.resumed'),
    published: 0,
    matched: 0,
    routed: 0,
    delivered: 0,
    failed: 0,
    buffered: 0,
    inFlight: 0,
    droppedTotal: 0,
    byReason,
    restarts: 0,
    mailbox: undefined,
    mailboxRefused: 0,
    mailboxEvicted: 0,
    closed: false,
  };
}

/**
 * A restarted router takes over its predecessor's table: it monitors the subscribers again, drops
 * those that died meanwhile (their buffers as `subscriber_down`), and starts their buffered
 * deliveries again. Deliveries in flight at the crash were never cancelled: they settle into the table.
 */
function resume(state: State): void {
  state.restarts++;
  let lostSubscribers = 0;
  let lostSubscriptions = 0;
  for (const sub of [...state.subs.values()]) {
    const m = monitorSubscriber(state.ctx, sub.pid);
    if (m === undefined) {
      lostSubscribers++;
      lostSubscriptions += sub.patterns.size;
      removeSub(state, sub, 'subscriber_down');
      continue;
    }
    sub.ref = m.ref;
    sub.managed = m.managed;
  }
  for (const sub of state.subs.values()) pump(state, sub);
  expire(state);
  if (state.resumedProbe.active) {
    state.node.telemetry.execute(
      'keel.signal_router.resumed',
      { subscribers: state.subs.size, subscriptions: state.trie.size, lostSubscribers, lostSubscriptions, buffered: state.buffered, inFlight: state.inFlight },
      { router: state.name, restarts: state.restarts },
    );
  }
}

/**
 * What a publish to a router whose mailbox is bounded under `drop_oldest` is told by the kernel: the
 * publish is cast as a supervised message (an envelope) with this listener, which the mailbox tells
 * when it evicts the publish, whatever message made it do so (a later publish, a call, a system call
 * such as the observer's, a raw message): every publish answered ok and then evicted is counted, and
 * only those. Its other outcomes are counted elsewhere: `handled` (routed: `published`), `down` (lost
 * with the router: the kernel's `receiver_exited`), `crashed` (the router crashed routing it).
 */
class EvictionWatch implements EnvelopeListener {
  readonly node: Kernel;
  readonly name: string;
  readonly signal: Signal;
  constructor(node: Kernel, name: string, signal: Signal) {
    this.node = node;
    this.name = name;
    this.signal = signal;
  }

  handled(): void {}

  failed(reason: 'crashed' | 'down' | 'dropped' | 'withdrawn'): void {
    if (reason !== 'dropped') return;
    const state = peekComponentState<State>(this.node, this.name, 'signal_router');
    if (state !== undefined) mailboxFull(state, 'evicted', this.signal);
  }
}

/**
 * Casts a publish into the router's mailbox and answers the publish. A bounded mailbox that is full
 * refuses it (`reject`, `drop_newest`: answered `mailbox_full`, counted as refused) or, under
 * `drop_oldest` (`evicts`), takes it and evicts its oldest message: a publish so evicted, now or by
 * any later message, is told to its {@link EvictionWatch} and counted as evicted. The kernel reports
 * either as for any full mailbox (`keel.message.dropped`, `mailbox_full`); the router's table counts
 * it and `keel.signal_router.dropped` says which signal.
 */
function castPublish(node: Kernel, name: string, router: Proc, signal: Signal, evicts: boolean): PublishResult {
  const cast = new CastMessage({ type: 'publish', signal });
  const flow = node.telemetry.flow;
  if (flow !== undefined) flow.tag(cast, flow.contextOf(undefined));
  // unbounded, or bounded but never evicting: the plain message (the path of every publish to a router whose mailbox is not bounded)
  const r = evicts ? node.deliverEnvelope(undefined, router, cast, node.nextMessageId(), new EvictionWatch(node, name, signal)) : node.enqueueTo(router, cast, undefined);
  if (r === Delivery.Enqueued) return { ok: true, id: signal.id };
  if (r !== Delivery.MailboxFull) return { ok: false, id: signal.id, reason: 'noproc' };
  const state = peekComponentState<State>(node, name, 'signal_router');
  if (state !== undefined) mailboxFull(state, 'refused', signal);
  return { ok: false, id: signal.id, reason: 'mailbox_full' };
}

/** A publish the router's bounded mailbox refused or evicted: counted, and reported while someone listens. */
function mailboxFull(state: State, outcome: 'refused' | 'evicted', signal: Signal): void {
  if (outcome === 'refused') state.mailboxRefused++;
  else state.mailboxEvicted++;
  if (!state.droppedProbe.active) return;
  state.node.telemetry.execute(
    'keel.signal_router.dropped',
    { count: 1 },
    { router: state.name, reason: 'mailbox_full', signalId: signal.id, type: signal.type, overflow: outcome === 'evicted' ? 'drop_oldest' : (state.mailbox?.overflow ?? 'reject') },
  );
}

/**
 * Message-flow tracing: the publish in a span (ended once the signal is cast), the parent of the
 * router's handling of it; a publish refused (`mailbox_full`, `noproc`) ends it with that reason.
 */
function publishTraced(flow: MessageFlow, node: Kernel, name: string, router: Proc, signal: Signal, evicts: boolean): PublishResult {
  const span = flow.start('keel.signal_router.publish', flow.contextOf(undefined), { type: signal.type, id: signal.id });
  let r: PublishResult | undefined;
  try {
    r = flow.within(span.context, () => castPublish(node, name, router, signal, evicts));
    return r;
  } finally {
    span.end(r === undefined || r.ok ? undefined : r.reason);
  }
}

const routerSpec: GenServerSpec<State, SignalRouterProtocol, SignalRouterCast, InitArg> = keelServer({
  init(arg, ctx) {
    const node = kernelOf(ctx);
    // the table outlives this process: a router restarted under the same name resumes it
    const { state, resumed } = componentState(node, arg.name, 'signal_router', () => newState(node, ctx, arg.name), close);
    const send: SendOptions = { ack: 'handled', timeout: arg.deliveryTimeout, onError: 'ignore', metadata: { router: arg.name } };
    state.ctx = ctx;
    state.proc = ctx as unknown as Proc;
    state.send = send;
    state.settings = toSettings(send);
    state.deliveryTimeout = arg.deliveryTimeout;
    state.mailbox = arg.mailbox;
    state.running = true;
    state.spanWatched = state.spanProbe.active;
    if (resumed) resume(state);
    ctx.signal.addEventListener(
      'abort',
      () => {
        if (state.ctx !== ctx) return;
        state.running = false;
        // stopped for good (or the node stops): what it held is reported lost and the table released;
        // any other exit keeps the table for the restart
        if (endsForGood(ctx.signal.reason as never) || node.stopping) {
          close(state);
          releaseComponentState(node, state.name);
        }
      },
      { once: true },
    );
    return state;
  },

  handleCall(request, _from, state) {
    state.spanWatched = state.spanProbe.active;
    try {
      switch (request?.type) {
        case 'subscribe': {
          // each field read once, and what was read is what is checked and used
          const pattern = readPattern(request.pattern);
          const pid = readSubscriber(request.pid);
          const options = readSubscribeOptions(request.options);
          if (Pid.equals(pid, state.ctx.self)) throw new InvalidArgumentError('subscriber', 'a process other than the router itself', pid);
          return { reply: subscribe(state, pattern, pid, options), state };
        }
        case 'unsubscribe': {
          const pattern = readPattern(request.pattern);
          return { reply: unsubscribe(state, pattern, readSubscriber(request.pid)), state };
        }
        case 'stats':
          return { reply: stats(state), state };
        case 'internals':
          return { reply: { trieNodes: state.trie.nodeCount, cachedTypes: state.matches.size }, state };
        default:
          throw new InvalidArgumentError('request', "a signal router call ({ type: 'subscribe' | 'unsubscribe' | 'stats' })", request);
      }
    } catch (e) {
      // a bad request is the caller's mistake: it gets the typed error, the router keeps its subscriptions
      return { reply: toError(e) as never, state };
    }
  },

  handleCast(cast, state, ctx) {
    // a signal that could change (a mutable object, a getter) is routed as a frozen copy read once
    const signal = publishedSignal(cast);
    if (signal !== undefined) route(state, signal);
    else ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message: cast });
    return state;
  },

  handleInfo(message, state, ctx) {
    if (isDown(message)) {
      const sub = state.subs.get(Pid.format(message.pid));
      if (sub !== undefined && sub.ref === message.ref) removeSub(state, sub, 'subscriber_down');
      return state;
    }
    ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message });
    return state;
  },
}, 'a signal router (use its handle)', 'bare');
markComponent(routerSpec, 'signal_router', observeRouter); // an observer finds it, and reads it through the `observe` system call

/** The signal a publish cast carries, as {@link stableSignal} makes it; undefined for anything else (a cast that cannot be read included). */
function publishedSignal(cast: unknown): Signal | undefined {
  try {
    const c = cast as { type?: unknown; signal?: unknown } | null | undefined;
    return c?.type === 'publish' ? stableSignal(c.signal) : undefined;
  } catch {
    return undefined; // a revoked proxy, a getter that throws: not a publish
  }
}

/**
 * A signal router: publishers hand it signals and return at once; it delivers each signal to every
 * subscriber whose pattern matches the signal's type (`order.created`; `order.*`; `order.**`),
 * through a bounded buffer per subscriber with its own overflow policy and supervised deliveries
 * (`ack: 'handled'`, up to `maxInFlight` at a time, in order). A slow subscriber never slows the
 * others or the publisher; every signal that does not reach a subscriber is a
 * `keel.signal_router.dropped` event with its reason. A subscriber that dies is unsubscribed.
 * The subscriptions, buffers and accounts live in a table the node holds under the router's name:
 * a router restarted under that name by its supervisor resumes them (docs/agents/SignalRouter.md).
 *
 * @example
 * ```ts
 * const router = await SignalRouter.start(node);
 * await router.subscribe('order.*', billing, { capacity: 100, overflow: 'drop_oldest' });
 * await router.subscribe('order.**', audit, { overflow: 'reject' }); // refused signals are dead-lettered
 * router.publish(createSignal({ type: 'order.created', source: '/shop', data: { id: 42 } })); // { ok: true, id }
 * const { delivered, dropped } = await router.stats();
 * ```
 */
export const SignalRouter = {
  async start(from: Node | Context<any>, options?: SignalRouterOptions): Promise<SignalRouterHandle> {
    const o = readRouterOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'signal_router', o.name);
    const arg: InitArg = { name, deliveryTimeout: o.deliveryTimeout, mailbox: o.mailbox };
    const pid = await startComponent(from, routerSpec, arg, name, o.mailbox);
    const call = componentCaller<SignalRouterProtocol>(node, name);
    const evicts = o.mailbox?.overflow === 'drop_oldest'; // the same bound at every restart
    return componentHandle<SignalRouterHandle>(node, name, pid, {
      async subscribe(pattern, subscriber, opts) {
        parsePattern(pattern);
        checkSubscriber(subscriber);
        checkSubscribeOptions(opts);
        return call({ type: 'subscribe', pattern, pid: subscriber, options: opts ?? {} });
      },
      async unsubscribe(pattern, subscriber) {
        parsePattern(pattern);
        checkSubscriber(subscriber);
        return call({ type: 'unsubscribe', pattern, pid: subscriber });
      },
      publish(given) {
        validateSignal(given);
        // the signal as it is now, read once (itself when it cannot change: a createSignal signal): the
        // router handles the cast later, and a publisher that reuses its object meanwhile must not
        // change what was accepted, or make it invalid (as a message is copied at send in OTP)
        const signal = stableSignal(given);
        if (signal === undefined) throw new InvalidSignalError('signal', 'attributes that read the same each time (plain data)', given);
        const router = node.lookupTarget(name);
        if (router === undefined) return { ok: false, id: signal.id, reason: 'noproc' };
        const flow = node.telemetry.flow;
        return flow !== undefined ? publishTraced(flow, node, name, router, signal, evicts) : castPublish(node, name, router, signal, evicts);
      },
      async stats() {
        return call({ type: 'stats' });
      },
    });
  },
};
