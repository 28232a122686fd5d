import { types } from 'node:util';
import { checkStrayKeys, DeadlockError, InvalidArgumentError, isKeelError, thrownText, toError } from '../errors.js';
import { captureResolvers, capturedResolvers } from '../otp/internal/promiseExecutor.js';
import { Delivery, inHandler, isDead, type Kernel, NextTurnWatcher, originOf, type Proc, type TimerEntry } from '../runtime/kernel.js';
import { isAbortSignal } from '../runtime/safe.js';
import { monotonicClock } from '../runtime/Clock.js';
import { checkTarget, nameOf, PidImpl, type Target, targetText } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { backoffDelay, toBackoff } from '../backoff.js';
import { afterEnqueue, onFailure } from './failurePolicy.js';
import type { FailureReason, SendOptions, SendOutcome, Settings } from './sendTypes.js';
import { endWithOutcome, type MessageFlow } from '../telemetry/tracing.js';

export type { FailureReason, SendOptions, SendOutcome, Settings } from './sendTypes.js';

const ON_ERROR = ['log', 'dead_letter', 'ignore', 'raise'] as const;
/** @internal The options of a send, which a broadcast takes too. */
export const SEND_OPTIONS: readonly string[] = ['ack', 'timeout', 'deadline', 'retries', 'backoff', 'onError', 'metadata', 'id', 'retryOnCrash', 'signal'];
const EMPTY_METADATA: Record<string, unknown> = Object.freeze({}) as Record<string, unknown>;
const DEFAULTS: Settings = Object.freeze({
  ack: 'enqueued',
  timeout: 5000,
  deadline: Infinity,
  retries: 0,
  backoff: toBackoff(undefined),
  onError: 'log',
  metadata: EMPTY_METADATA,
  id: undefined,
  retryOnCrash: false,
  signal: undefined,
});

const HANDLED_DEFAULTS: Settings = Object.freeze({ ...DEFAULTS, ack: 'handled' as const });

/** @internal */
export function toSettings(options: SendOptions | undefined): Settings {
  if (options === undefined) return DEFAULTS;
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a SendOptions object', options);
  // every send with options comes here: the known options are read once, below, under this guard
  checkStrayKeys(options, SEND_OPTIONS, 'options');
  try {
    return settingsOf(options);
  } catch (e) {
    if (isKeelError(e)) throw e;
    // an option that throws when read (a getter, a proxy's trap): found again, to be named
    const key = SEND_OPTIONS.find((k) => {
      try {
        void (options as Record<string, unknown>)[k];
        return false;
      } catch {
        return true;
      }
    });
    throw new InvalidArgumentError(key === undefined ? 'options' : `options.${key}`, 'an option that can be read', options, `reading it threw ${thrownText(e)}`);
  }
}

function settingsOf(options: SendOptions): Settings {
  // each option read once: what is checked is what the send uses (a getter may answer differently when read again)
  const { ack: givenAck, timeout, deadline, retries: givenRetries, backoff, onError: givenOnError, metadata: givenMetadata, id, retryOnCrash, signal } = options;
  if (
    timeout === undefined && deadline === undefined && givenRetries === undefined && backoff === undefined &&
    givenOnError === undefined && givenMetadata === undefined && id === undefined && retryOnCrash === undefined &&
    signal === undefined
  ) {
    // only `ack` (or nothing) given: the shared defaults
    if (givenAck === undefined || givenAck === 'enqueued') return DEFAULTS;
    if (givenAck === 'handled') return HANDLED_DEFAULTS;
  }
  const ack = givenAck ?? 'enqueued';
  if (ack !== 'enqueued' && ack !== 'handled') throw new InvalidArgumentError('options.ack', "'enqueued' | 'handled'", givenAck);
  const ms = (key: 'timeout' | 'deadline', v: unknown, fallback: number): number => {
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || Number.isNaN(v) || v < 0) throw new InvalidArgumentError(`options.${key}`, 'a number of ms >= 0 (or Infinity)', v);
    return v;
  };
  const retries = givenRetries ?? 0;
  if (!Number.isSafeInteger(retries) || retries < 0) throw new InvalidArgumentError('options.retries', 'an integer >= 0', givenRetries);
  const onError = givenOnError ?? 'log';
  if (!ON_ERROR.includes(onError)) throw new InvalidArgumentError('options.onError', "'log' | 'dead_letter' | 'ignore' | 'raise'", givenOnError);
  const metadata = givenMetadata === undefined ? EMPTY_METADATA : copyMetadata(givenMetadata);
  if (id !== undefined && (typeof id !== 'string' || id === '')) throw new InvalidArgumentError('options.id', 'a non-empty string', id);
  if (retryOnCrash !== undefined && typeof retryOnCrash !== 'boolean') throw new InvalidArgumentError('options.retryOnCrash', 'a boolean', retryOnCrash);
  if (signal !== undefined && !isAbortSignal(signal)) throw new InvalidArgumentError('options.signal', 'an AbortSignal', signal);
  return {
    ack,
    timeout: ms('timeout', timeout, 5000),
    deadline: ms('deadline', deadline, Infinity),
    retries,
    backoff: toBackoff(backoff, 'options.backoff'),
    onError,
    metadata,
    id,
    retryOnCrash: retryOnCrash ?? false,
    signal,
  };
}

/**
 * The send's metadata, copied once: it is spread into every retry's event, the span's and the dead
 * letter, so a proxy (revoked or not) or a getter that throws is refused here, at the send, rather
 * than throwing from a retry's timer or out of the send later.
 */
function copyMetadata(metadata: unknown): Record<string, unknown> {
  if (typeof metadata !== 'object' || metadata === null || types.isProxy(metadata)) throw new InvalidArgumentError('options.metadata', 'an object', metadata);
  try {
    return { ...metadata };
  } catch (e) {
    throw new InvalidArgumentError('options.metadata', 'an object whose properties can be read', metadata, `reading one threw ${thrownText(e)}`);
  }
}

/** @internal One attempt's failure: the reason, whether another attempt may help, and the error detail. */
interface Failure {
  readonly reason: FailureReason;
  readonly retry: boolean;
  readonly error: unknown;
}

const NOPROC_PID: Failure = { reason: 'noproc', retry: false, error: 'noproc' };
const NOPROC_NAME: Failure = { reason: 'noproc', retry: true, error: 'noproc' };
const MAILBOX_FULL: Failure = { reason: 'mailbox_full', retry: true, error: 'mailbox_full' };

/**
 * @internal A supervised send in flight: the attempts, the per-attempt timer, the backoff timer,
 * and the watches on the sender (its death aborts the send) and on the signal.
 */
class Send extends NextTurnWatcher {
  readonly node: Kernel;
  readonly sender: Proc | undefined;
  readonly to: Target;
  readonly message: unknown;
  readonly s: Settings;
  readonly id: string;
  readonly startedAt: number;
  attempts = 0;
  firstError: unknown = undefined;
  lastError: unknown = undefined;
  #resolve: ((outcome: SendOutcome) => void) | undefined;
  readonly #reject: (error: unknown) => void;
  #timer: TimerEntry | undefined = undefined;
  /** The attempt whose timeout is to be armed at the next turn, and that timeout. */
  #timeoutFor = 0;
  #timeoutMs = 0;
  #inflight: PidImpl | undefined = undefined;
  /** True while the send is among its signal's watchers. */
  #abortWatched = false;
  #unhookShutdown: (() => void) | undefined = undefined;
  /** True during an `'enqueued'` attempt's enqueue (user code may run there: telemetry handlers, the logger). */
  #enqueueing = false;
  /** An abort that came during that enqueue: applied only if the message was not enqueued. */
  #abortedDuring: { error: unknown; withdrawn: boolean } | undefined = undefined;
  /** No attempt after the one in flight: its end is the send's outcome (see {@link endWithAttemptInFlight}). */
  #lastAttempt = false;

  constructor(node: Kernel, sender: Proc | undefined, to: Target, message: unknown, s: Settings, id: string, resolve: (outcome: SendOutcome) => void, reject: (error: unknown) => void) {
    super();
    this.node = node;
    this.sender = sender;
    this.to = to;
    this.message = message;
    this.s = s;
    this.id = id;
    this.startedAt = s.deadline === Infinity ? 0 : node.timerNow(); // the deadline counts on the timers' time, as they do
    this.#resolve = resolve;
    this.#reject = reject;
  }

  get done(): boolean {
    return this.#resolve === undefined;
  }

  /** Starts the attempts; `firstFailure` is that of a first attempt already made by the fast path. */
  start(firstFailure?: Failure): void {
    const { sender, s } = this;
    if (sender !== undefined && !this.node.watchExit(sender, this)) return this.finish(this.#fail({ reason: 'aborted', retry: false, error: 'the sender has exited' }), this.#endsWithSender());
    if (s.signal !== undefined) {
      if (s.signal.aborted) return this.finish(this.#fail({ reason: 'aborted', retry: false, error: s.signal.reason }), s.signal.reason === WITHDRAWN);
      watchAbort(s.signal, this);
      this.#abortWatched = true;
    }
    if (firstFailure === undefined) return this.attempt();
    this.attempts = 1;
    this.#failed(firstFailure);
  }

  /** The sender died: its sends die with it (withdrawn, for a send on a signal given to {@link withdrawWithSender}). */
  onExit(): void {
    this.abort('the sender has exited', this.#endsWithSender());
  }

  /** True when the send is withdrawn, not failed, as its sender ends (see {@link withdrawWithSender}). */
  #endsWithSender(): boolean {
    const signal = this.s.signal;
    return signal !== undefined && withdrawnWithSender.has(signal);
  }

  /** Ends the send `aborted`; `withdrawn`: by its owner (see {@link withdrawSends}), no onError policy. */
  abort(error: unknown, withdrawn = error === WITHDRAWN): void {
    if (this.done) return;
    // during an 'enqueued' attempt's own enqueue: the enqueue decides (a message in the mailbox is a success)
    if (this.#enqueueing) {
      this.#abortedDuring ??= { error, withdrawn };
      return;
    }
    this.#cancelTimer();
    if (this.#inflight !== undefined) {
      // the attempt in flight ends with the abort: its error is the abort's (the signal's reason, the sender's exit)
      this.node.withdrawEnvelope(this.#inflight, this.id, this);
      if (this.attempts === 1) this.firstError = error;
      this.lastError = error;
    }
    this.#inflight = undefined;
    this.finish(this.#fail({ reason: 'aborted', retry: false, error }), withdrawn);
  }

  /**
   * No attempt after the one in flight, if there is one (a copy the receiver holds, queued or being
   * handled): its end is the send's outcome, and true is answered. Between attempts (a backoff) or
   * already ended, nothing changes and false is answered.
   */
  lastAttempt(): boolean {
    if (this.done || this.#inflight === undefined) return false;
    this.#lastAttempt = true;
    return true;
  }

  attempt(): void {
    if (this.done) return;
    this.attempts++;
    const { node, s } = this;
    const target = node.lookupTarget(this.to);
    if (target === undefined) return this.#failed(nameOf(this.to) !== undefined ? NOPROC_NAME : NOPROC_PID);
    if (s.ack === 'enqueued') {
      // user code run by the enqueue (a long_mailbox handler) may abort the send or kill its sender:
      // once the message is in the mailbox it was acknowledged, so the abort waits for the enqueue's answer
      let r: Delivery;
      this.#enqueueing = true;
      try {
        r = node.deliverEnvelope(this.sender, target, this.message, this.id, afterEnqueue(node, this.to, this.message, s, this.id, this.attempts));
      } finally {
        this.#enqueueing = false;
      }
      if (r === Delivery.Enqueued) return this.#succeeded();
      const f = r === Delivery.MailboxFull ? MAILBOX_FULL : NOPROC_PID;
      const aborted = this.#abortedDuring;
      if (aborted === undefined) return this.#failed(f);
      this.lastError = f.error;
      if (this.attempts === 1) this.firstError = f.error;
      return this.abort(aborted.error, aborted.withdrawn);
    }
    // in flight from before the delivery: user code run by it (a drop event handler) may settle it
    this.#inflight = target.self;
    const r = node.deliverEnvelope(this.sender, target, this.message, this.id, this);
    if (r !== Delivery.Enqueued) {
      this.#inflight = undefined;
      return this.#failed(r === Delivery.MailboxFull ? MAILBOX_FULL : NOPROC_PID);
    }
    if (this.done || this.#inflight === undefined) return; // settled during the delivery
    const timeout = Math.min(s.timeout, this.#remaining());
    if (timeout !== Infinity) {
      // most messages are handled within this turn of the event loop: the timeout is armed at the
      // next turn only if still needed (so it may fire up to one turn late, never early)
      this.#timeoutFor = this.attempts;
      this.#timeoutMs = timeout;
      node.deferToNextTurn(this);
    }
  }

  /** @internal At the next turn: arm the attempt's timeout if it is still waiting. */
  nextTurn(): void {
    if (this.#inflight !== undefined && this.#timeoutFor === this.attempts && this.#timer === undefined) {
      this.#timer = this.node.schedule(this.#timeoutMs, Send.prototype.timedOut, false, this);
    }
  }

  /** The attempt's timeout passed (a timer method: no closure per send). */
  timedOut(): void {
    this.#timer = undefined;
    // take back a copy not yet started, so that a retry does not deliver it twice; a copy already
    // started is let go of: its handler goes on, and its late end (a crash, say) is not the retry's
    const inflight = this.#inflight;
    if (inflight !== undefined && !this.node.withdrawEnvelope(inflight, this.id, this)) this.node.disownEnvelope(inflight, this.id, this);
    this.#inflight = undefined;
    this.#failed({ reason: 'timeout', retry: true, error: `not handled within ${this.#timeoutMs} ms` });
  }

  /** The backoff passed: the next attempt. */
  retryNow(): void {
    this.#timer = undefined;
    this.attempt();
  }

  // ---- the envelope listener (ack: 'handled') ----
  handled(): void {
    if (this.#inflight === undefined) return;
    this.#inflight = undefined;
    this.#cancelTimer();
    this.#succeeded();
  }

  failed(outcome: 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void {
    if (this.#inflight === undefined) return;
    this.#inflight = undefined;
    this.#cancelTimer();
    if (outcome === 'withdrawn') return; // by this send itself
    if (outcome === 'dropped') return this.#failed(MAILBOX_FULL);
    if (outcome === 'crashed') return this.#failed({ reason: 'process_down', retry: this.s.retryOnCrash, error: error ?? 'crashed' });
    this.#failed({ reason: 'process_down', retry: true, error: error ?? 'down' });
  }

  #succeeded(): void {
    this.finish({ ok: true, id: this.id, attempts: this.attempts });
  }

  #failed(f: Failure): void {
    if (this.done) return;
    if (this.attempts === 1) this.firstError = f.error;
    this.lastError = f.error;
    // a node shutting down kills the receivers: nothing more is tried (the attempt's error is kept);
    // it ends the sender too: a send withdrawn as its sender ends is withdrawn here as well
    if (this.node.stopping) return this.finish(this.#fail({ reason: 'noproc', retry: false, error: 'the node shut down' }), this.#endsWithSender());
    if (!f.retry || this.attempts > this.s.retries || this.#lastAttempt) return this.finish(this.#fail(f));
    let delay: number;
    try {
      delay = backoffDelay(this.s.backoff, this.attempts, this.node.random);
    } catch (e) {
      return this.crash(e); // a bad value from the node's injected random: a typed error, not a wedge
    }
    if (delay > this.#remaining()) return this.finish(this.#fail(f));
    this.#watchShutdown();
    this.node.telemetry.execute('keel.supervised_send.retry', { attempt: this.attempts + 1, delayMs: delay }, { ...this.s.metadata, id: this.id, to: nameOf(this.to) ?? this.to, reason: f.reason });
    this.#timer = this.node.schedule(delay, Send.prototype.retryNow, false, this);
  }

  #fail(f: Failure): SendOutcome {
    if (this.attempts === 0) {
      this.firstError = f.error;
      this.lastError = f.error;
    }
    return { ok: false, id: this.id, reason: f.reason, attempts: this.attempts, firstError: this.firstError, lastError: this.lastError };
  }

  #remaining(): number {
    return this.s.deadline === Infinity ? Infinity : this.s.deadline - (this.node.timerNow() - this.startedAt);
  }

  /** A send still waiting when the node shuts down is settled with `noproc` (its timers stop). */
  #watchShutdown(): void {
    this.#unhookShutdown ??= this.node.onShutdown(() => {
      this.#unhookShutdown = undefined;
      this.#inflight = undefined;
      this.finish(this.#fail({ reason: 'noproc', retry: false, error: 'the node shut down' }), this.#endsWithSender());
    });
  }

  #cancelTimer(): void {
    if (this.turnQueued) this.node.cancelNextTurn(this);
    if (this.#timer !== undefined) this.node.cancelEntry(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Ends the send; `withdrawn`: ended by its owner taking its message back (see {@link withdrawSends}),
   * or with its owner's own end (see {@link withdrawWithSender}): no onError policy.
   */
  finish(outcome: SendOutcome, withdrawn = false): void {
    const resolve = this.#release();
    if (resolve === undefined) return;
    // a final failure goes through the onError policy first (log, dead-letter, ignore or raise),
    // but for a withdrawal: the owner took its own message back, no delivery failed
    if (outcome.ok || withdrawn) resolve(outcome);
    else onFailure(this.node, this.to, this.message, this.s, outcome).then(resolve, this.#reject);
  }

  /** Ends the send with a programmer error (a bad value from an injected dependency): the promise rejects with it. */
  crash(error: unknown): void {
    if (this.#release() !== undefined) this.#reject(error);
  }

  /** Lets go of everything the send holds; returns its resolver, or undefined when it had already ended. */
  #release(): ((outcome: SendOutcome) => void) | undefined {
    const resolve = this.#resolve;
    if (resolve === undefined) return undefined;
    this.#resolve = undefined;
    this.#inflight = undefined;
    this.#cancelTimer();
    this.node.unwatchExit(this);
    this.#unhookShutdown?.();
    this.#unhookShutdown = undefined;
    if (this.#abortWatched) {
      this.#abortWatched = false;
      unwatchAbort(this.s.signal!, this);
    }
    return resolve;
  }
}

/**
 * The sends pending on one signal, behind one abort listener on it (one listener per send would make
 * Node warn of an EventTarget memory leak past 10 sends on a signal, a broadcast's copies say).
 */
class AbortWatchers {
  readonly sends = new Set<Send>();
  readonly signal: AbortSignal;
  constructor(signal: AbortSignal) {
    this.signal = signal;
    signal.addEventListener('abort', this, { once: true });
  }
  /** The signal aborted: every send pending on it ends `aborted`. */
  handleEvent(): void {
    abortWatchers.delete(this.signal);
    const sends = [...this.sends];
    this.sends.clear();
    for (const send of sends) send.abort(this.signal.reason);
  }
}

const abortWatchers = new WeakMap<AbortSignal, AbortWatchers>();

function watchAbort(signal: AbortSignal, send: Send): void {
  let w = abortWatchers.get(signal);
  if (w === undefined) abortWatchers.set(signal, (w = new AbortWatchers(signal)));
  w.sends.add(send);
}

/**
 * @internal The sends on `signal` make no attempt after the one in flight: its end is their outcome.
 * True when a send on it had an attempt in flight; false when none had (between attempts, ended, or
 * never watching the signal), for the caller to abort them by the signal if it wants them ended.
 */
export function endWithAttemptInFlight(signal: AbortSignal): boolean {
  const w = abortWatchers.get(signal);
  let kept = false;
  if (w !== undefined) for (const send of w.sends) if (send.lastAttempt()) kept = true;
  return kept;
}

/**
 * The reason of an abort by {@link withdrawSends}: module-private, so no user's signal can carry it
 * (a user's own abort is a failure, and goes through its onError policy).
 */
const WITHDRAWN: unknown = Object.freeze(new Error('withdrawn by its sender'));

/**
 * @internal The sends on `abort`'s signal are withdrawn by their owner (the agent scheduler, when it
 * removes a schedule whose delivery waits): they end `aborted`, as by any abort, but their onError
 * policy is not applied (nothing logged, dead-lettered or raised): the owner took its own message
 * back, no delivery failed. A send already ended is untouched.
 */
export function withdrawSends(abort: AbortController): void {
  abort.abort(WITHDRAWN);
}

/**
 * The signals given to {@link withdrawWithSender}: module-private, so that no option reaches it (a
 * user's send whose process dies is a failed send, and goes through its onError policy).
 */
const withdrawnWithSender = new WeakSet<AbortSignal>();

/**
 * @internal The sends on `signal` are withdrawn by their sender as it ends (the agent scheduler's
 * deliveries, whatever ends it: a stop, a crash, a kill, its node's shutdown): a send still waiting
 * then (a copy not yet started, taken back; a retry waiting for its backoff; a copy being handled,
 * left to end) ends `aborted` (`noproc` at a node's shutdown) as any other, but its onError policy
 * is not applied: nothing logged, dead-lettered or raised. Its owner has ended and asks for nothing.
 */
export function withdrawWithSender(signal: AbortSignal): void {
  withdrawnWithSender.add(signal);
}

/** The send ended: it leaves its signal's watchers, and the last to leave takes the listener. */
function unwatchAbort(signal: AbortSignal, send: Send): void {
  const w = abortWatchers.get(signal);
  if (w === undefined || !w.sends.delete(send) || w.sends.size > 0) return;
  abortWatchers.delete(signal);
  signal.removeEventListener('abort', w);
}

/** @internal The send itself, without telemetry (broadcast reuses it). */
export function sendOnce(node: Kernel, sender: Proc | undefined, to: Target, message: unknown, s: Settings): Promise<SendOutcome> {
  // inside its own handler (a synchronous one, or an async one awaiting): waiting for itself
  if (s.ack === 'handled' && sender !== undefined && inHandler(sender)) {
    const target = node.lookupTarget(to);
    if (target === sender) return Promise.reject(new DeadlockError(String(sender.self), "sent itself a message with ack 'handled' from its own handler"));
  }
  const id = s.id ?? node.nextMessageId();
  if (sender !== undefined && isDead(sender)) {
    return Promise.resolve({ ok: false, id, reason: 'aborted', attempts: 0, firstError: 'the sender has exited', lastError: 'the sender has exited' });
  }
  let first: Failure | undefined;
  if (s.ack === 'enqueued' && s.signal === undefined) {
    // the common case in one synchronous step, with nothing to set up: one attempt into a live mailbox
    const target = node.lookupTarget(to);
    if (target === undefined) {
      const across = acrossNodes(node, sender, to, message, s, id);
      if (across !== undefined) return across;
      first = nameOf(to) !== undefined ? NOPROC_NAME : NOPROC_PID;
    } else {
      const r = node.deliverEnvelope(sender, target, message, id, afterEnqueue(node, to, message, s, id));
      if (r === Delivery.Enqueued) return Promise.resolve({ ok: true, id, attempts: 1 });
      first = r === Delivery.MailboxFull ? MAILBOX_FULL : NOPROC_PID;
    }
  } else if (node.remote !== undefined) {
    const across = acrossNodes(node, sender, to, message, s, id);
    if (across !== undefined) return across;
  }
  const promise = new Promise<SendOutcome>(captureResolvers); // a shared executor: no closure per send
  new Send(node, sender, to, message, s, id, capturedResolvers.resolve, capturedResolvers.reject).start(first);
  return promise;
}

/**
 * A send to a pid of another node, when the node's cluster carries supervised sends
 * (src/cluster/supervised): theirs from there on; undefined otherwise (the pid is then a dead one).
 */
function acrossNodes(node: Kernel, sender: Proc | undefined, to: Target, message: unknown, s: Settings, id: string): Promise<SendOutcome> | undefined {
  const remote = node.remote;
  if (remote?.supervised === undefined || nameOf(to) !== undefined || (to as PidImpl).node === node.name) return undefined;
  return remote.supervised(sender, to as PidImpl, message, s, id);
}

/** @internal The send span's phases, for one probe that is active while anyone listens to any of them. */
export const SEND_SPAN_EVENTS: readonly string[] = ['start', 'stop', 'exception'].map((phase) => `keel.supervised_send.send.${phase}`);

/** The send span's probe of each node (kept per node: nothing is global). */
const spanProbes = new WeakMap<Kernel, { readonly active: boolean }>();

/** Whether anyone listens to the send span on `node`. */
function spanWatched(node: Kernel): boolean {
  let probe = spanProbes.get(node);
  if (probe === undefined) spanProbes.set(node, (probe = node.telemetry.probe(SEND_SPAN_EVENTS)));
  return probe.active;
}

/**
 * Sends with an acknowledgement, a deadline, retries with jittered exponential backoff, and a
 * policy for what could not be delivered. Resolves with an outcome (`{ ok: true }` or
 * `{ ok: false, reason }`; see docs/delivery.md for the table); only `onError: 'raise'` rejects.
 *
 * @example
 * ```ts
 * const outcome = await sendSupervised(ctx, 'billing', { type: 'charge', cents: 500 }, {
 *   ack: 'handled', timeout: 2000, retries: 3, onError: 'dead_letter',
 * });
 * if (!outcome.ok) console.log(outcome.reason, outcome.deadLetterId);
 * ```
 */
export function sendSupervised<M>(from: Node | Context<any>, to: Target<M>, message: M, options?: SendOptions): Promise<SendOutcome> {
  const { node, caller: sender } = originOf(from);
  checkTarget(to, 'to');
  const s = toSettings(options);
  if (node.telemetry.flow !== undefined) return sendTraced(node.telemetry.flow, node, sender, to, message, s);
  return sendWatched(node, sender, to, message, s);
}

/** Message-flow tracing: the send in a span, whose context the handler of the message is given (by the message's id). */
function sendTraced(flow: MessageFlow, node: Kernel, sender: Proc | undefined, to: Target, message: unknown, s: Settings): Promise<SendOutcome> {
  const id = s.id ?? node.nextMessageId();
  const span = flow.start('keel.supervised_send', flow.contextOf(sender), { to: targetText(to), ack: s.ack, id });
  flow.stash(id, span.context);
  return endWithOutcome(span, sendWatched(node, sender, to, message, s.id === id ? s : { ...s, id }));
}

/** The send, in the `keel.supervised_send.send` telemetry span while anyone listens to it. */
function sendWatched(node: Kernel, sender: Proc | undefined, to: Target, message: unknown, s: Settings): Promise<SendOutcome> {
  if (!spanWatched(node)) return sendOnce(node, sender, to, message, s);
  const telemetry = node.telemetry;
  // the span: start, then stop with the outcome (a failed outcome too), or exception for a throw
  const started = monotonicClock();
  // the event's own keys win over the send's metadata (as in its dead letter); a typed name is its
  // text in telemetry, as in keel.message.dropped
  const metadata = { ...s.metadata, to: nameOf(to) ?? to, ack: s.ack };
  telemetry.execute('keel.supervised_send.send.start', { monotonicTime: started }, metadata);
  return sendOnce(node, sender, to, message, s).then(
    (outcome) => {
      telemetry.execute('keel.supervised_send.send.stop', { duration: monotonicClock() - started, attempts: outcome.attempts }, { ...metadata, outcome });
      return outcome;
    },
    (e: unknown) => {
      telemetry.execute('keel.supervised_send.send.exception', { duration: monotonicClock() - started }, { ...metadata, error: e });
      throw toError(e);
    },
  );
}
