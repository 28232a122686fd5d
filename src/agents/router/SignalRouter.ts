import { checkKeys, InvalidArgumentError, toError } from '../../errors.js';
import { deadLetterAndReport } from '../../delivery/deadLetter.js';
import { SEND_SPAN_EVENTS, sendOnce, sendSupervised, type SendOptions, type SendOutcome, type Settings as SendSettings, toSettings } from '../../delivery/sendSupervised.js';
import { GenServer, type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { isDown } from '../../runtime/messages.js';
import { kernelOf, type Kernel, type Proc } from '../../runtime/kernel.js';
import { isPid, Pid, type Ref, targetText } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { unwatch, watchProcess, type WatchRef } from '../internal/watch.js';
import { parsePattern, PatternTrie } from '../internal/PatternTrie.js';
import { isKnownSignal, type Signal, validateSignal } from '../Signal.js';
import { SubscriberBuffer } from './SubscriberBuffer.js';
import type {
  SignalDropReason,
  SignalOverflow,
  SignalRouterCast,
  SignalRouterHandle,
  SignalRouterOptions,
  SignalRouterProtocol,
  SignalRouterStats,
  SubscribeOptions,
} from './types.js';


const OVERFLOWS: readonly SignalOverflow[] = ['drop_newest', 'drop_oldest', 'reject'];
const REASONS: readonly SignalDropReason[] = ['buffer_full', 'evicted', 'rejected', 'delivery_failed', 'subscriber_down', 'unsubscribed', 'router_down'];
const DEFAULT_CAPACITY = 1000;
const DEFAULT_MAX_IN_FLIGHT = 8;
const SEGMENT_CACHE_LIMIT = 1024;

/** One subscriber: its patterns, its buffer, its deliveries in flight and its monitor. */
interface Sub {
  readonly key: string;
  readonly pid: Pid;
  readonly patterns: Set<string>;
  readonly buffer: SubscriberBuffer<Signal>;
  maxInFlight: number;
  inFlight: number;
  readonly ref: Ref;
  readonly managed: boolean;
  removed: boolean;
  /** The publish that last matched it (dedupe across patterns) and through which pattern. */
  stamp: number;
  pattern: string;
}

interface State {
  readonly name: string;
  readonly ctx: Context<any>;
  readonly node: Kernel;
  readonly trie: PatternTrie<Sub>;
  readonly subs: Map<string, Sub>;
  /** The router as the sender of its deliveries (they die with it). */
  readonly proc: Proc;
  /** The deliveries' send options, and the same validated once (the hot path skips re-validating them). */
  readonly send: SendOptions;
  readonly settings: SendSettings;
  /** The probes of the supervised send span: while any is attached, deliveries go through `sendSupervised` (which emits it). */
  readonly spanProbe: { readonly active: boolean };
  readonly segments: Map<string, readonly string[]>;
  /** The subscribers matched by the publish being routed (reused). */
  readonly hits: Sub[];
  /** The signals a `drop_oldest` buffer evicted for the one being offered (reused). */
  readonly evicted: Signal[];
  readonly visit: (sub: Sub, pattern: string) => void;
  readonly routedProbe: { readonly active: boolean };
  readonly droppedProbe: { readonly active: boolean };
  seq: number;
  published: number;
  matched: number;
  routed: number;
  delivered: number;
  failed: number;
  buffered: number;
  inFlight: number;
  droppedTotal: number;
  readonly byReason: Record<SignalDropReason, number>;
  /** The router has exited: settlements still arriving change nothing and start nothing. */
  closed: boolean;
}

interface InitArg {
  readonly name: string;
  readonly deliveryTimeout: number;
}

/** What `sendOnce` takes as its node (the kernel, typed as delivery declares it). */
type SendNode = Parameters<typeof sendOnce>[0];

// ---- drops ------------------------------------------------------------------------------------

function count(state: State, reason: SignalDropReason, n: number): void {
  state.byReason[reason] += n;
  state.droppedTotal += n;
}

function dropEvent(state: State, reason: SignalDropReason, sub: Sub, n: number, signal?: Signal, extra?: Record<string, unknown>): void {
  if (!state.droppedProbe.active) return;
  const metadata: Record<string, unknown> = { router: state.name, reason, subscriber: sub.pid };
  if (signal !== undefined) {
    metadata.signalId = signal.id;
    metadata.type = signal.type;
  }
  if (extra !== undefined) Object.assign(metadata, extra);
  state.node.telemetry.execute('keel.signal_router.dropped', { count: n }, metadata);
}

/** `reject`: the refused signal goes to the dead letter queue; the event says where it went. */
function deadLetter(state: State, sub: Sub, signal: Signal): void {
  const pattern = sub.pattern; // the pattern that matched this signal (the next publish may match another)
  const entry = { recipient: sub.pid, message: signal, reason: 'signal_rejected', metadata: { router: state.name, pattern } };
  void deadLetterAndReport(state.node, entry, `signal router ${state.name}: signal ${signal.id} to ${targetText(sub.pid)}`).then((where) =>
    dropEvent(state, 'rejected', sub, 1, signal, { pattern, ...where }),
  );
}

// ---- routing ----------------------------------------------------------------------------------

function segmentsOf(state: State, type: string): readonly string[] {
  let s = state.segments.get(type);
  if (s === undefined) {
    if (state.segments.size >= SEGMENT_CACHE_LIMIT) state.segments.clear();
    s = type.split('.');
    state.segments.set(type, s);
  }
  return s;
}

/** Offers `signal` to `sub`'s buffer under its overflow policy; answers the drops it caused and whether it was accepted. */
function offer(state: State, sub: Sub, signal: Signal): { accepted: boolean; drops: number } {
  const evicted = state.evicted;
  if (sub.buffer.offer(signal, evicted)) {
    state.buffered++;
    const drops = evicted.length;
    if (drops === 0) return ACCEPTED;
    // 'drop_oldest' made room (more than one when a later subscribe lowered the capacity)
    for (let i = 0; i < drops; i++) {
      state.buffered--;
      count(state, 'evicted', 1);
      dropEvent(state, 'evicted', sub, 1, evicted[i]);
    }
    evicted.length = 0;
    return { accepted: true, drops };
  }
  if (sub.buffer.overflow === 'reject') {
    count(state, 'rejected', 1);
    deadLetter(state, sub, signal);
  } else {
    count(state, 'buffer_full', 1);
    dropEvent(state, 'buffer_full', sub, 1, signal, { pattern: sub.pattern });
  }
  return REFUSED;
}

const ACCEPTED = Object.freeze({ accepted: true, drops: 0 });
const REFUSED = Object.freeze({ accepted: false, drops: 1 });

/** Starts deliveries from `sub`'s buffer, in order, while fewer than `maxInFlight` are in flight. */
function pump(state: State, sub: Sub): void {
  while (sub.inFlight < sub.maxInFlight && sub.buffer.size > 0) {
    const signal = sub.buffer.shift();
    state.buffered--;
    sub.inFlight++;
    state.inFlight++;
    const sent = state.spanProbe.active ? sendSupervised(state.ctx, sub.pid, signal, state.send) : sendOnce(state.node as SendNode, state.proc, sub.pid, signal, state.settings);
    // one closure for both ends: with `onError: 'ignore'` a send only rejects on a bug below
    const done = (r: unknown): void => settled(state, sub, signal, isOutcome(r) ? r : { ok: false, id: '', reason: 'aborted', attempts: 0, firstError: r, lastError: r });
    sent.then(done, done);
  }
}

function isOutcome(r: unknown): r is SendOutcome {
  return typeof r === 'object' && r !== null && typeof (r as SendOutcome).ok === 'boolean' && typeof (r as SendOutcome).id === 'string' && !(r instanceof Error);
}

/** A delivery settled (outside the router's handler): count it, then keep the subscriber's deliveries going. */
function settled(state: State, sub: Sub, signal: Signal, outcome: SendOutcome): void {
  sub.inFlight--;
  if (state.closed) return; // counted as router_down when the router exited
  state.inFlight--;
  if (outcome.ok) state.delivered++;
  else {
    state.failed++;
    count(state, 'delivery_failed', 1);
    dropEvent(state, 'delivery_failed', sub, 1, signal, { failure: outcome.reason });
    // the subscriber died: what it has buffered is dropped as subscriber_down now, as its Down
    // (which may still be queued behind this promise's turn) would; the Down then finds no entry
    if (!sub.removed && !state.node.isAlive(sub.pid)) removeSub(state, sub, 'subscriber_down');
  }
  if (!sub.removed) pump(state, sub);
}

function route(state: State, signal: Signal): void {
  state.published++;
  state.seq++;
  const hits = state.hits;
  state.trie.match(segmentsOf(state, signal.type), state.visit);
  let accepted = 0;
  let drops = 0;
  for (let i = 0; i < hits.length; i++) {
    const sub = hits[i]!;
    const r = offer(state, sub, signal);
    drops += r.drops;
    if (r.accepted) {
      accepted++;
      if (sub.inFlight < sub.maxInFlight) pump(state, sub);
    }
  }
  const matched = hits.length;
  hits.length = 0;
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

/** Removes a subscriber: its subscriptions, its buffer (dropped with `reason`) and, unless it died, its monitor. */
function removeSub(state: State, sub: Sub, reason: 'subscriber_down' | 'unsubscribed'): void {
  sub.removed = true;
  state.subs.delete(sub.key);
  for (const pattern of sub.patterns) state.trie.remove(pattern, sub.key);
  sub.patterns.clear();
  if (reason === 'unsubscribed') unwatch(state.ctx, sub);
  const n = sub.buffer.clear();
  if (n > 0) {
    state.buffered -= n;
    count(state, reason, n);
    dropEvent(state, reason, sub, n);
  }
}

/** The router exited: what it still held is reported lost, per subscriber (those in flight may have been handled). */
function close(state: State): void {
  if (state.closed) return;
  state.closed = true;
  for (const sub of state.subs.values()) {
    const n = sub.buffer.size + sub.inFlight;
    if (n > 0) {
      count(state, 'router_down', n);
      dropEvent(state, 'router_down', sub, n);
    }
  }
  // in flight for subscribers already removed (unsubscribed with deliveries pending)
  let orphans = state.inFlight;
  for (const sub of state.subs.values()) orphans -= sub.inFlight;
  if (orphans > 0) {
    count(state, 'router_down', orphans);
    if (state.droppedProbe.active) state.node.telemetry.execute('keel.signal_router.dropped', { count: orphans }, { router: state.name, reason: 'router_down', subscriber: undefined });
  }
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

function checkRouterOptions(options: unknown): asserts options is SignalRouterOptions | undefined {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name?, deliveryTimeout? }', options);
  checkKeys(options, ['name', 'deliveryTimeout'], 'options');
  const t = (options as SignalRouterOptions).deliveryTimeout;
  if (t !== undefined && (typeof t !== 'number' || Number.isNaN(t) || t <= 0)) throw new InvalidArgumentError('options.deliveryTimeout', 'a number of ms > 0 (or Infinity)', t);
}

// ---- the server -------------------------------------------------------------------------------

function subscribe(state: State, pattern: string, pid: Pid, options: SubscribeOptions): 'ok' | { error: 'noproc' } {
  const key = Pid.format(pid);
  let sub = state.subs.get(key);
  if (sub === undefined) {
    const m = monitorSubscriber(state.ctx, pid);
    if (m === undefined) return { error: 'noproc' };
    sub = {
      key,
      pid: state.node.lookupTarget(pid)?.self ?? pid,
      patterns: new Set(),
      buffer: new SubscriberBuffer<Signal>(DEFAULT_CAPACITY, 'drop_newest'),
      maxInFlight: DEFAULT_MAX_IN_FLIGHT,
      inFlight: 0,
      ref: m.ref,
      managed: m.managed,
      removed: false,
      stamp: 0,
      pattern: '',
    };
    state.subs.set(key, sub);
  }
  if (options.capacity !== undefined) sub.buffer.capacity = options.capacity;
  if (options.overflow !== undefined) sub.buffer.overflow = options.overflow;
  if (options.maxInFlight !== undefined) sub.maxInFlight = options.maxInFlight;
  state.trie.add(pattern, key, sub);
  sub.patterns.add(pattern);
  pump(state, sub); // a raised maxInFlight takes effect now
  return 'ok';
}

function unsubscribe(state: State, pattern: string, pid: Pid): 'ok' | 'not_found' {
  const sub = state.subs.get(Pid.format(pid));
  if (sub === undefined || !sub.patterns.has(pattern)) return 'not_found';
  state.trie.remove(pattern, sub.key);
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
  };
}

const routerSpec: GenServerSpec<State, SignalRouterProtocol, SignalRouterCast, InitArg> = keelServer({
  init(arg, ctx) {
    const byReason = Object.fromEntries(REASONS.map((r) => [r, 0])) as Record<SignalDropReason, number>;
    const node = kernelOf(ctx);
    const hits: Sub[] = [];
    const send: SendOptions = { ack: 'handled', timeout: arg.deliveryTimeout, onError: 'ignore', metadata: { router: arg.name } };
    const state: State = {
      name: arg.name,
      ctx,
      node,
      trie: new PatternTrie<Sub>(),
      subs: new Map(),
      proc: ctx as unknown as Proc,
      send,
      settings: toSettings(send),
      spanProbe: node.telemetry.probe(SEND_SPAN_EVENTS),
      segments: new Map(),
      hits,
      evicted: [],
      visit: (sub, pattern) => {
        // a subscriber matched through several patterns gets the signal once
        if (sub.stamp === state.seq) return;
        sub.stamp = state.seq;
        sub.pattern = pattern;
        hits.push(sub);
      },
      routedProbe: node.telemetry.probe('keel.signal_router.routed'),
      droppedProbe: node.telemetry.probe('keel.signal_router.dropped'),
      seq: 0,
      published: 0,
      matched: 0,
      routed: 0,
      delivered: 0,
      failed: 0,
      buffered: 0,
      inFlight: 0,
      droppedTotal: 0,
      byReason,
      closed: false,
    };
    ctx.signal.addEventListener('abort', () => close(state), { once: true });
    return state;
  },

  handleCall(request, _from, state) {
    try {
      switch (request?.type) {
        case 'subscribe':
          parsePattern(request.pattern);
          checkSubscriber(request.pid);
          checkSubscribeOptions(request.options);
          if (Pid.equals(request.pid, state.ctx.self)) throw new InvalidArgumentError('subscriber', 'a process other than the router itself', request.pid);
          return { reply: subscribe(state, request.pattern, request.pid, request.options ?? {}), state };
        case 'unsubscribe':
          parsePattern(request.pattern);
          checkSubscriber(request.pid);
          return { reply: unsubscribe(state, request.pattern, request.pid), state };
        case 'stats':
          return { reply: stats(state), state };
        case 'internals':
          return { reply: { trieNodes: state.trie.nodeCount }, state };
        default:
          throw new InvalidArgumentError('request', "a signal router call ({ type: 'subscribe' | 'unsubscribe' | 'stats' })", request);
      }
    } catch (e) {
      // a bad request is the caller's mistake: it gets the typed error, the router keeps its subscriptions
      return { reply: toError(e) as never, state };
    }
  },

  handleCast(cast, state, ctx) {
    const signal = cast?.type === 'publish' ? cast.signal : undefined;
    if (signal !== undefined && (isKnownSignal(signal) || isValid(signal))) route(state, signal);
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

function isValid(signal: unknown): boolean {
  try {
    validateSignal(signal);
    return true;
  } catch {
    return false;
  }
}

/**
 * A signal router: publishers hand it signals and return at once; it delivers each signal to every
 * subscriber whose pattern matches the signal's type (`order.created`; `order.*`; `order.**`),
 * through a bounded buffer per subscriber with its own overflow policy and supervised deliveries
 * (`ack: 'handled'`, up to `maxInFlight` at a time, in order). A slow subscriber never slows the
 * others or the publisher; every signal that does not reach a subscriber is a
 * `keel.signal_router.dropped` event with its reason. A subscriber that dies is unsubscribed.
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
    checkRouterOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'signal_router', options?.name);
    const arg: InitArg = { name, deliveryTimeout: options?.deliveryTimeout ?? 5000 };
    const pid = await startComponent(from, routerSpec, arg, name);
    const call = componentCaller<SignalRouterProtocol>(node, name);
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
      publish(signal) {
        validateSignal(signal);
        const router = node.lookupTarget(name);
        if (router === undefined) return { ok: false, id: signal.id, reason: 'noproc' };
        GenServer.cast<SignalRouterCast>(node, router.self, { type: 'publish', signal });
        return { ok: true, id: signal.id };
      },
      async stats() {
        return call({ type: 'stats' });
      },
    });
  },
};
