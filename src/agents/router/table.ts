import type { FailureReason, SendOptions, Settings as SendSettings } from '../../delivery/sendSupervised.js';
import type { EnvelopeListener, Kernel, Proc, TimerEntry } from '../../runtime/kernel.js';
import type { Pid, Ref } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import { PatternTrie } from '../internal/PatternTrie.js';
import type { Signal } from '../Signal.js';
import { SubscriberBuffer } from './SubscriberBuffer.js';
import type { SignalDropReason } from './types.js';

/**
 * @internal The signal router's table: everything its clients set up (subscriptions, options,
 * buffers) and its accounts, held by the node under the router's name (`componentState`), so that a
 * router restarted by its supervisor under the same name resumes it. The fields marked "this
 * incarnation" are set again by each router process's `init`.
 */

export const REASONS: readonly SignalDropReason[] = ['buffer_full', 'evicted', 'rejected', 'delivery_failed', 'subscriber_down', 'unsubscribed', 'router_down'];

/** One subscriber: its patterns, its buffer, its deliveries in flight and its monitor. */
export interface Sub {
  readonly key: string;
  readonly pid: Pid;
  readonly patterns: Set<string>;
  readonly buffer: SubscriberBuffer<Signal>;
  maxInFlight: number;
  inFlight: number;
  /** Its deliveries not yet settled, oldest first (for timeouts, and to withdraw them when the router stops for good). */
  readonly flights: Flight[];
  /** The monitor of the router incarnation that monitors it. */
  ref: Ref;
  managed: boolean;
  removed: boolean;
  /** The pattern through which the signal being routed matched it. */
  pattern: string;
  /** Signals lost for it while subscribed (evicted, rejected, buffer full, delivery failed), for an observer. */
  dropped: number;
}

/**
 * A delivery in flight, as the table keeps it (in its subscriber's `flights`, then in the queue of
 * settled ones): deliveries.ts makes them (its InFlight, the envelope's listener) and settles them.
 */
export interface Flight extends EnvelopeListener {
  readonly sub: Sub;
  readonly signal: Signal;
  readonly id: string;
  /** On the node's timers' time; Infinity when no timeout applies here. */
  readonly deadline: number;
  /** `'ok'`, a failure, or undefined while pending. */
  outcome: 'ok' | FailureReason | undefined;
  settle(outcome: 'ok' | FailureReason): void;
}

/** The subscribers (and through which pattern each) that one signal type matches: cached per type until the subscriptions change. */
export interface Match {
  readonly subs: readonly Sub[];
  readonly patterns: readonly string[];
}

export interface State {
  readonly name: string;
  readonly node: Kernel;
  readonly trie: PatternTrie<Sub>;
  readonly subs: Map<string, Sub>;
  /** Match results per signal type (cleared whenever a subscription is added or removed). */
  readonly matches: Map<string, Match>;
  /**
   * Subscribers removed with deliveries still in flight (their timeouts still run), by key: at most
   * one per pid, as a pid that subscribes again takes its orphan back (its deliveries in flight
   * count against its `maxInFlight` again).
   */
  readonly orphans: Map<string, Sub>;
  /** Settled deliveries waiting to be counted (one microtask for a batch of them). */
  readonly settledQueue: (Flight | undefined)[];
  settledCount: number;
  drainQueued: boolean;
  /** The one timer over every delivery's timeout (armed for the earliest deadline pending). */
  timer: TimerEntry | undefined;
  /** When the timer fires (on the node's timers' time, as the deadlines). */
  timerAt: number;
  /** This incarnation: its context, its process record (the sender of its deliveries), whether it runs. */
  ctx: Context<any>;
  proc: Proc;
  running: boolean;
  /** This incarnation: the deliveries' send options (the span path), the same validated once, and the per-delivery timeout. */
  send: SendOptions;
  settings: SendSettings;
  deliveryTimeout: number;
  /** The probes of the supervised send span: while any is attached, deliveries go through `sendSupervised` (which emits it). */
  readonly spanProbe: { readonly active: boolean };
  /** `spanProbe.active`, read once per batch (a publish, a batch of settlements, a call) rather than per delivery. */
  spanWatched: boolean;
  /** The signals a `drop_oldest` buffer evicted for the one being offered (reused). */
  readonly evicted: Signal[];
  readonly routedProbe: { readonly active: boolean };
  readonly droppedProbe: { readonly active: boolean };
  readonly resumedProbe: { readonly active: boolean };
  published: number;
  matched: number;
  routed: number;
  delivered: number;
  failed: number;
  buffered: number;
  inFlight: number;
  droppedTotal: number;
  readonly byReason: Record<SignalDropReason, number>;
  /** Incarnations that resumed this table. */
  restarts: number;
  /** This incarnation: its mailbox's bound (undefined: unbounded), for an observer. */
  mailbox: { readonly capacity: number; readonly overflow: string } | undefined;
  /** Publishes its bounded mailbox refused (answered `mailbox_full`) or evicted (`drop_oldest`), counted by the handle as it publishes. */
  mailboxRefused: number;
  mailboxEvicted: number;
  /** The router stopped for good: settlements still arriving change nothing and start nothing. */
  closed: boolean;
}

export function newSub(key: string, pid: Pid, ref: Ref, managed: boolean, capacity: number, maxInFlight: number): Sub {
  return {
    key,
    pid,
    patterns: new Set(),
    buffer: new SubscriberBuffer<Signal>(capacity, 'drop_newest'),
    maxInFlight,
    inFlight: 0,
    flights: [],
    ref,
    managed,
    removed: false,
    pattern: '',
    dropped: 0,
  };
}

export function count(state: State, reason: SignalDropReason, n: number): void {
  state.byReason[reason] += n;
  state.droppedTotal += n;
}

export function dropEvent(state: State, reason: SignalDropReason, sub: Sub, n: number, signal?: Signal, extra?: Record<string, unknown>): void {
  if (!state.droppedProbe.active) return;
  const metadata: Record<string, unknown> = { router: state.name, reason, subscriber: sub.pid };
  if (signal !== undefined) {
    metadata.signalId = signal.id;
    metadata.type = signal.type;
  }
  if (extra !== undefined) Object.assign(metadata, extra);
  state.node.telemetry.execute('keel.signal_router.dropped', { count: n }, metadata);
}
