import type { ServerPid } from '../../otp/GenServer.js';
import type { Pid } from '../../runtime/Pid.js';
import type { MailboxOptions } from '../../runtime/types.js';
import type { Signal } from '../Signal.js';

// The signal router's public types: subscriptions and their buffers' overflow, why a signal is
// dropped, the router's stats, calls and cast, and its handle (re-exported by the package).

/** What a subscriber's buffer does with a signal that finds it full. */
export type SignalOverflow = 'drop_newest' | 'drop_oldest' | 'reject';

/** Why a signal did not reach a subscriber (the `reason` of `keel.signal_router.dropped`). */
export type SignalDropReason =
  /** `drop_newest`: the buffer was full, the incoming signal was refused. */
  | 'buffer_full'
  /** `drop_oldest`: the oldest buffered signal made room for the incoming one. */
  | 'evicted'
  /** `reject`: the buffer was full, the incoming signal was refused and dead-lettered. */
  | 'rejected'
  /** The supervised delivery failed (the subscriber crashed handling it, timed out, its mailbox was full...). */
  | 'delivery_failed'
  /** The subscriber died with signals still buffered for it. */
  | 'subscriber_down'
  /** The subscriber's last subscription went with signals still buffered for it. */
  | 'unsubscribed'
  /** The router exited with signals buffered or in flight (those in flight may have been handled). */
  | 'router_down';

export interface SubscribeOptions {
  /** Signals the router holds for this subscriber while it is busy, beyond those in flight (default 1000). Lowered below what it holds, the excess is dropped at once (as `evicted`; which ones, by the overflow policy's rule). */
  capacity?: number;
  /** What a full buffer does (default `'drop_newest'`). */
  overflow?: SignalOverflow;
  /** Deliveries awaiting the subscriber's `'handled'` at once (default 8); 1 delivers strictly one at a time. */
  maxInFlight?: number;
}

export interface SignalRouterOptions {
  /** Registers the router under this name (default `keel.signal_router.<n>`). */
  name?: string;
  /** Per delivery: how long a subscriber may take to handle a signal before it counts as failed (default 5000 ms, on the node's timers' time: monotonic on the real clock). */
  deliveryTimeout?: number;
  /**
   * Bounds the router process's own mailbox (default unbounded, as a gen_server's and an Akka
   * actor's): the spawn option `{ capacity, overflow }`, applied to every restart too. A publish that
   * finds it full is answered `{ ok: false, reason: 'mailbox_full' }` (`reject`, `drop_newest`), or
   * evicts the oldest message queued (`drop_oldest`); either is counted in `stats().mailboxFull`.
   */
  mailbox?: MailboxOptions;
}

/**
 * What `publish` answers at once: the signal was handed to the router; or the router is not running
 * (`noproc`); or its bounded mailbox is full and refused it (`mailbox_full`).
 */
export type PublishResult = { ok: true; id: string } | { ok: false; id: string; reason: 'noproc' | 'mailbox_full' };

/** What `stats()` answers. Every matched (signal, subscriber) pair is counted once. */
export interface SignalRouterStats {
  /** Subscribers (pids) with at least one subscription. */
  readonly subscribers: number;
  /** (pattern, subscriber) pairs. */
  readonly subscriptions: number;
  /** Signals the router received. */
  readonly published: number;
  /** (signal, subscriber) pairs matched (a subscriber matched through several patterns counts once). */
  readonly matched: number;
  /** Matched pairs accepted into a buffer: `routed = delivered + failed + evicted + subscriber_down + unsubscribed + buffered + inFlight`. */
  readonly routed: number;
  /** Deliveries the subscriber handled. */
  readonly delivered: number;
  /** Deliveries that failed (also counted in `dropped.byReason.delivery_failed`). */
  readonly failed: number;
  /** Signals waiting in buffers now. */
  readonly buffered: number;
  /** Deliveries awaiting their `'handled'` now. */
  readonly inFlight: number;
  /** Every drop; `matched = routed + buffer_full + rejected`. */
  readonly dropped: { readonly total: number; readonly byReason: Readonly<Record<SignalDropReason, number>> };
  /** Times a restarted router resumed these subscriptions and accounts (0 for the first incarnation). */
  readonly restarts: number;
  /**
   * Publishes the router's bounded mailbox (the `mailbox` start option) lost, before the router took
   * them: `refused` (answered `{ ok: false, reason: 'mailbox_full' }`) and `evicted` (answered
   * `{ ok: true }`, then evicted from the mailbox by a later publish under `drop_oldest`). Counted
   * per signal, not per subscriber (it never matched any), so not in `matched` nor `dropped`.
   */
  readonly mailboxFull: { readonly refused: number; readonly evicted: number };
}

/** The router's calls. */
export type SignalRouterProtocol =
  | { request: { type: 'subscribe'; pattern: string; pid: Pid; options: SubscribeOptions }; reply: 'ok' | { error: 'noproc' } }
  | { request: { type: 'unsubscribe'; pattern: string; pid: Pid }; reply: 'ok' | 'not_found' }
  | { request: { type: 'stats' }; reply: SignalRouterStats }
  | { request: { type: 'internals' }; reply: { trieNodes: number; cachedTypes: number } };

/** The router's cast. */
export type SignalRouterCast = { type: 'publish'; signal: Signal };

/** A started router: its pid and its operations (called from outside any process, by name). */
export interface SignalRouterHandle {
  /** The router's current pid (found again by name after a restart). */
  readonly pid: ServerPid<SignalRouterProtocol, SignalRouterCast>;
  readonly name: string;
  /**
   * Subscribes `subscriber` to the signals whose type matches `pattern`. Answers `{ error: 'noproc' }`
   * when the subscriber is not alive. Subscribing again updates the subscriber's options (the
   * fields given; the others keep their values).
   */
  subscribe(pattern: string, subscriber: Pid, options?: SubscribeOptions): Promise<'ok' | { error: 'noproc' }>;
  /** Removes one subscription; the subscriber's last one takes its buffer (dropped as `unsubscribed`) and its monitor with it. */
  unsubscribe(pattern: string, subscriber: Pid): Promise<'ok' | 'not_found'>;
  /** Validates `signal` (throws `ERR_INVALID_SIGNAL`) and hands it to the router; returns at once, before any delivery. */
  publish(signal: Signal): PublishResult;
  stats(): Promise<SignalRouterStats>;
}
