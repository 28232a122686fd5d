import diagnostics from 'node:diagnostics_channel';
import { inspect, type InspectOptionsStylized } from 'node:util';
import {
  AbortedError,
  CallExitError,
  CallTimeoutError,
  DeadlockError,
  InvalidArgumentError,
  MailboxFullError,
  NoProcError,
  thrownText,
} from '../../errors.js';
import { Delivery, ExitWatcher, exitWatchersOf, inTurn, type Kernel, NextTurnWatcher, isProcess, kernelOf, type Proc, type TimerEntry } from '../../runtime/kernel.js';
import { formatReason, type ExitReason } from '../../runtime/messages.js';
import { captureResolvers, capturedResolvers } from './promiseExecutor.js';
import { adopt } from './thenable.js';
import { nearMiss } from '../../nearMiss.js';
import { checkTarget, isPid, nameOf, type Pid, type Target, targetText } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import type { MessageFlow } from '../../telemetry/tracing.js';

/** @internal */
export function validateTimeout(timeout: unknown, argument = 'timeout'): asserts timeout is number {
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0 || (!Number.isFinite(timeout) && timeout !== Infinity)) {
    throw new InvalidArgumentError(argument, 'a number of milliseconds >= 0, or Infinity', timeout);
  }
}

/**
 * An opaque reply handle: what `handleCall` receives as `from`, for `GenServer.reply(from, value)`.
 * Replying twice, or after the caller gave up (timeout, abort, death), does nothing.
 */
export interface From<R = unknown> {
  readonly __reply?: (value: R) => void;
}

/**
 * @internal What a call made with {@link callListening} tells instead of settling a promise: one of
 * the two, once, in a microtask after the call settled (as a promise's reaction would run), so Keel's
 * own components make a call without a promise or a closure per call.
 */
export interface CallListener {
  callReplied(reply: unknown): void;
  callFailed(error: unknown): void;
}

/** The resolver of a call whose outcome goes to a {@link CallListener} (held where the promise's reject would be). */
function TO_LISTENER(): void {}

/**
 * A node's listener calls settled and not yet told, oldest first: a flat array of (listener, value,
 * replied) triples read from `head`, its store kept once grown. The first call settled into an empty
 * queue schedules one microtask, which tells every call queued by then and while it runs (in order):
 * a microtask per batch, not per call (Node's queueMicrotask costs an async resource and a bound
 * function each).
 */
class ListenerQueue {
  declare items: unknown[];
  declare head: number;
  declare tail: number;
  /** The microtask: one function for the node's life. */
  declare readonly drain: () => void;
  constructor() {
    this.items = [];
    this.head = 0;
    this.tail = 0;
    this.drain = (): void => this.tellAll();
  }

  push(listener: CallListener, value: unknown, replied: boolean): void {
    const items = this.items;
    const tail = this.tail;
    if (tail === 0) queueMicrotask(this.drain);
    items[tail] = listener;
    items[tail + 1] = value;
    items[tail + 2] = replied;
    this.tail = tail + 3;
  }

  private tellAll(): void {
    const items = this.items;
    while (this.head < this.tail) {
      const at = this.head;
      const listener = items[at] as CallListener;
      const value = items[at + 1];
      const replied = items[at + 2] as boolean;
      items[at] = undefined;
      items[at + 1] = undefined;
      this.head = at + 3;
      try {
        if (replied) listener.callReplied(value);
        else listener.callFailed(value);
      } catch (error) {
        // as a promise's reaction that threw: an unhandled rejection
        void Promise.reject(error);
      }
    }
    this.head = 0;
    this.tail = 0;
  }
}

const listenerQueues = new WeakMap<Kernel, ListenerQueue>();

function tellListener(node: Kernel, listener: CallListener, value: unknown, replied: boolean): void {
  let queue = listenerQueues.get(node);
  if (queue === undefined) {
    queue = new ListenerQueue();
    listenerQueues.set(node, queue);
  }
  queue.push(listener, value, replied);
}

const callChannel = diagnostics.tracingChannel('keel.call');
// its five channels, held: whether any has a subscriber (a tracer may subscribe to some only) is then
// five checks per call, without the tracing channel's getter and its five loads
const { start: callStart, end: callEnd, asyncStart: callAsyncStart, asyncEnd: callAsyncEnd, error: callError } = callChannel;


/** How deep `util.inspect(from)` shows the request, whatever depth it is asked for (less when nested). */
const INSPECT_REQUEST_DEPTH = 2;

// where a call stood when its server died (see CallStage): taken by the server's handler unless marked
const TAKEN = 0;
const QUEUED = 1;
const DEFERRED = 2;

/**
 * @internal A call in flight. It is the message the server receives, the caller's reply handle and
 * the bookkeeping of its deadline and death hooks at once: one object per call. The reply settles
 * the caller's promise directly, never through a mailbox, so a late reply is simply discarded.
 */
export class PendingCall extends NextTurnWatcher {
  // declared, then assigned in the constructor (TS-private, not #private): a call is made per
  // request, and class fields or #private members cost an initializer pass per object
  declare readonly request: unknown;
  declare readonly server: Proc;
  /** What the caller called: the server's pid, or the name it was found by (for the error texts). */
  declare readonly target: Target;
  /** The server's node (a field, not a call per use: read at arming and settling of every call). */
  declare readonly node: Kernel;
  /** The promise's resolve, or TO_LISTENER (its listener in rejectFn); undefined once settled. */
  private declare resolveFn: ((value: unknown) => void) | undefined;
  /** The promise's reject, or the {@link CallListener} told of the outcome (resolveFn is TO_LISTENER). */
  private declare rejectFn: ((error: unknown) => void) | CallListener;
  private declare timer: TimerEntry | undefined;
  private declare timeoutMs: number;
  /** The calling process's watch (a call from a process): the call is released when the caller dies. */
  private declare callerWatch: CallerWatch | undefined;
  /** What only calls with an abort signal need, allocated for them alone. */
  private declare abort: CallAbort | undefined;
  /** TAKEN, QUEUED or DEFERRED: written only when the server dies with the call queued, or defers its reply. */
  private declare stage: number;

  /** `node`: the server's node (the one it was looked up on). */
  constructor(request: unknown, server: Proc, target: Target, node: Kernel, resolve: (value: unknown) => void, reject: ((error: unknown) => void) | CallListener) {
    super();
    (this as { request: unknown }).request = request;
    (this as { server: Proc }).server = server;
    (this as { target: Target }).target = target;
    (this as { node: Kernel }).node = node;
    this.resolveFn = resolve;
    this.rejectFn = reject;
    this.timer = undefined;
    this.timeoutMs = 0;
    this.callerWatch = undefined;
    this.abort = undefined;
    this.stage = TAKEN;
  }

  /** The server as the error texts name it: its pid, or the name it was called by and its pid. */
  get serverText(): string {
    return targetText(this.target, this.server.self);
  }

  /** The calling process while it waits (a call from a process of this node), else undefined. */
  get callerPid(): Pid | undefined {
    return this.callerWatch?.caller;
  }

  /** True while the caller still waits. */
  get pending(): boolean {
    return this.resolveFn !== undefined;
  }

  reply(value: unknown): void {
    const resolve = this.resolveFn;
    if (resolve === undefined) return;
    // a listener's too: it is told what the promise of a GenServer.call would settle with (a call served
    // for a caller of another node is one: a promise as its reply could not be carried)
    if ((typeof value === 'object' || typeof value === 'function') && value !== null) {
      const then = thenOf(value);
      if (then === UNREADABLE) {
        // a promise reads a reply's `then`: one that throws (a revoked proxy) would reject the caller
        // with the engine's raw TypeError (a listener is told the value: it reads no `then`)
        if (resolve !== TO_LISTENER) {
          this.fail(new InvalidArgumentError('reply', 'a value whose `then` can be read (a promise settles with it)', value));
          return;
        }
      } else if (typeof then === 'function') {
        // a promise (or thenable) as the reply: the caller gets what it settles with, and the call's
        // deadline holds until then (adopted by the caller's promise, one that never settled would
        // keep the caller waiting past its timeout). The reply is given: the server's exit meanwhile
        // does not fail the call
        this.node.unwatchExit(this);
        adopt(value as PromiseLike<unknown>).then(
          (settled) => this.reply(settled),
          (error: unknown) => this.fail(error),
        );
        return;
      }
    }
    this.finish(false, undefined);
    if (resolve === TO_LISTENER) tellListener(this.node, this.rejectFn as CallListener, value, true);
    else resolve(value);
  }

  fail(error: unknown): void {
    const resolve = this.resolveFn;
    if (resolve === undefined) return;
    this.finish(true, error);
    if (resolve === TO_LISTENER) tellListener(this.node, this.rejectFn as CallListener, error, false);
    else (this.rejectFn as (error: unknown) => void)(error);
  }

  /** A `drop_oldest` mailbox evicted the request before the server took it. */
  override dropped(): void {
    this.fail(new MailboxFullError(this.serverText, nameOf(this.target)));
  }

  /** The server died with the request still in its mailbox (told during its death, before {@link onExit}). */
  override leftQueued(): void {
    this.stage = QUEUED;
  }

  /** @internal The server's handler returned without replying (`{ noreply }`): the reply comes later, if ever. */
  deferred(): void {
    if (this.stage === TAKEN) this.stage = DEFERRED;
  }

  /** @internal A server holds the call unhandled for now (suspended, or a state machine postponed it): `'queued'` if it dies. */
  held(): void {
    this.stage = QUEUED;
  }

  /** @internal A held call is taken up again by the server's handler. */
  taken(): void {
    this.stage = TAKEN;
  }

  /** The server died (an exit watcher, told synchronously during its death). */
  onExit(reason: ExitReason): void {
    const registeredName = nameOf(this.target);
    this.fail(
      this.node.stopping
        ? new NoProcError(this.serverText, 'the node shut down before the reply', { registeredName })
        : new CallExitError(this.serverText, reason, formatReason(reason), {
          stage: this.stage === QUEUED ? 'queued' : this.stage === DEFERRED ? 'deferred' : 'handling',
          registeredName,
        }),
    );
  }

  /**
   * What `util.inspect(from)` (`console.log` in a `handleCall`) shows: what identifies the call, as
   * OTP's `From` is `{Pid, Tag}` (the calling process while it waits, `'node'` for a call made with
   * no process of this node: from the node, or served for a caller of another node), the server's
   * pid and the name it was called by, and the request, depth-limited; never the node and the
   * records its fields hold. Once the call is over its caller is no longer known: `(over)`. On the
   * prototype: nothing per call.
   */
  [inspect.custom](givenDepth?: number | null, givenOptions?: InspectOptionsStylized, givenInspect?: typeof inspect): string {
    // Node before 16.14, and inspectors of its convention (chai 4's loupe), pass (depth, options)
    // only, with no inspect function; a direct call may pass nothing: util's own then, as for util.inspect(from)
    const options: Partial<InspectOptionsStylized> = givenOptions ?? {};
    const inspectFn = typeof givenInspect === 'function' ? givenInspect : inspect;
    const depth = typeof givenDepth === 'number' && !Number.isNaN(givenDepth) ? givenDepth : givenDepth === null ? null : INSPECT_REQUEST_DEPTH;
    if (depth !== null && depth < 0) return typeof options.stylize === 'function' ? options.stylize('[PendingCall]', 'special') : '[PendingCall]';
    const requestOptions = { ...options, depth: depth === null ? INSPECT_REQUEST_DEPTH : Math.min(INSPECT_REQUEST_DEPTH, depth - 1) };
    let request: string;
    try {
      request = inspectFn(this.request, requestOptions);
    } catch (e) {
      request = `[uninspectable: ${thrownText(e)}]`; // the request's own inspect.custom threw, say
    }
    const name = nameOf(this.target);
    const server = `server: ${String(this.server.self)}${name === undefined ? '' : `, name: ${inspectFn(name, options)}`}, request: ${request} }`;
    if (this.resolveFn === undefined) return `PendingCall (over) { ${server}`;
    const caller = this.callerWatch?.caller;
    return `PendingCall { caller: ${caller === undefined ? inspectFn('node', options) : String(caller)}, ${server}`;
  }

  /** A pending call whose caller has died is a leak (it should have been released with the caller). */
  override leak(): string | undefined {
    const watch = this.callerWatch;
    if (this.resolveFn === undefined || watch === undefined || watch.watched !== undefined) return undefined;
    return `a pending call to ${this.serverText} from a caller that has exited`;
  }

  /** @internal At the next turn of the event loop: arm the deadline if the caller still waits. */
  nextTurn(): void {
    if (this.resolveFn !== undefined) this.timer = this.node.schedule(this.timeoutMs, PendingCall.prototype.timedOut, false, this);
  }

  /** The deadline passed (a timer method: no closure per call). */
  timedOut(): void {
    this.timer = undefined;
    this.fail(new CallTimeoutError(this.serverText, this.timeoutMs, nameOf(this.target)));
  }

  /** @internal Arms the deadline and the watches; called once the request is in the server's mailbox. */
  arm(timeoutMs: number, caller: Proc | undefined, signal: AbortSignal | undefined): void {
    const node = this.node;
    if (!node.watchExit(this.server, this)) {
      this.fail(new NoProcError(this.serverText, 'the server exited before the call was armed', { registeredName: nameOf(this.target) }));
      return;
    }
    if (caller !== undefined) {
      // when the caller dies nobody waits: release everything (its continuation is a zombie)
      const watch = new CallerWatch(this, caller.self);
      if (node.watchExit(caller, watch)) this.callerWatch = watch;
    }
    if (signal !== undefined) this.armAbort(signal);
    if (timeoutMs !== Infinity) {
      // most calls are answered within the current turn of the event loop: their deadline is only
      // put on the node's timer heap if they are still pending at the next turn (so it may fire up
      // to one turn late, never early), and costs no clock read or heap work otherwise
      this.timeoutMs = timeoutMs;
      node.deferToNextTurn(this);
    }
  }

  private armAbort(signal: AbortSignal): void {
    const onAbort = (): void => this.fail(new AbortedError(`the call to ${this.serverText}`, signal.reason));
    this.abort = { signal, onAbort };
    signal.addEventListener('abort', onAbort, { once: true });
  }

  private finish(failed: boolean, error: unknown): void {
    this.resolveFn = undefined;
    const node = this.node;
    if (node.telemetry.flow !== undefined) endCallSpan(node.telemetry.flow, this, failed, error);
    if (this.turnQueued) node.cancelNextTurn(this);
    const timer = this.timer;
    if (timer !== undefined) {
      node.cancelEntry(timer);
      this.timer = undefined; // written only when armed: most calls settle before their deadline is
    }
    node.unwatchExit(this);
    const watch = this.callerWatch;
    if (watch !== undefined) {
      this.callerWatch = undefined;
      node.unwatchExit(watch);
    }
    const abort = this.abort;
    if (abort !== undefined) {
      this.abort = undefined;
      abort.signal.removeEventListener('abort', abort.onAbort);
    }
  }
}

interface CallAbort {
  readonly signal: AbortSignal;
  readonly onAbort: () => void;
}

/** Watches the calling process for a pending call. */
class CallerWatch extends ExitWatcher {
  declare readonly call: PendingCall;
  /** The calling process: what a call's `from` identifies (OTP's `{Pid, Tag}`). */
  declare readonly caller: Pid;
  constructor(call: PendingCall, caller: Pid) {
    super();
    (this as { call: PendingCall }).call = call;
    (this as { caller: Pid }).caller = caller;
  }
  onExit(): void {
    this.call.fail(new CallExitError(this.call.serverText, 'noproc', 'the caller exited', { registeredName: nameOf(this.call.target) }));
  }
}

/**
 * @internal False once the call `from` answers is over (answered, timed out, aborted, or its caller
 * died): a reply to it would go nowhere. True while it waits, and for a caller of another node (this
 * node cannot tell).
 */
export function callWaiting(from: From<never>): boolean {
  return !(from instanceof PendingCall) || from.pending;
}

/**
 * @internal The process that made the call `from` answers, while it waits: what identifies a
 * caller (as OTP's `From` carries its pid), never a field of the request. Undefined for a call
 * made from a node (no process), one that is over, or a caller of another node.
 */
export function callerOf(from: From<never>): Pid | undefined {
  return from instanceof PendingCall ? from.callerPid : undefined;
}

/** @internal Sends a request to a live process and returns the promise of its reply. */
export function callProcess(
  node: Kernel,
  caller: Proc | undefined,
  target: Target,
  request: unknown,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<unknown> {
  // any of the five channels: a tracer may subscribe to some only (`error`, `asyncEnd`)
  if (callStart.hasSubscribers || callEnd.hasSubscribers || callAsyncStart.hasSubscribers || callAsyncEnd.hasSubscribers || callError.hasSubscribers) {
    const context = { target, request, caller: caller?.self ?? 'node', node: node.name };
    return callChannel.tracePromise(() => startCall(node, caller, target, request, timeoutMs, signal), context);
  }
  // startCall's body, inline: one call fewer per call while it runs unoptimized
  const promise = new Promise<unknown>(captureResolvers); // a shared executor: no closure per call
  makeCall(node, caller, target, request, timeoutMs, signal, capturedResolvers.resolve, capturedResolvers.reject);
  return promise;
}

function startCall(node: Kernel, caller: Proc | undefined, target: Target, request: unknown, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
  const promise = new Promise<unknown>(captureResolvers); // a shared executor: no closure per call
  makeCall(node, caller, target, request, timeoutMs, signal, capturedResolvers.resolve, capturedResolvers.reject);
  return promise;
}

/**
 * @internal `GenServer.call` for Keel's own components, told to a {@link CallListener} instead of
 * settling a promise: the same call (the same checks, watches of the server and the caller,
 * deadline, typed errors, `keel.call` tracing and sys handling), the listener told exactly once, in a
 * microtask (with the other listener calls settled in the same stretch, in the order they settled),
 * of the reply or the error the promise would have rejected with. A bad timeout or
 * target throws, as `GenServer.call` does.
 */
export function callListening(from: Node | Context<any>, target: Target, request: unknown, timeout: number, listener: CallListener): void {
  // originOf's checks, without its { node, caller } object per call
  const node = kernelOf(from);
  const caller = isProcess(from) ? from : undefined;
  validateTimeout(timeout);
  // any of the five channels: a tracer may subscribe to some only (`error`, `asyncEnd`)
  if (callStart.hasSubscribers || callEnd.hasSubscribers || callAsyncStart.hasSubscribers || callAsyncEnd.hasSubscribers || callError.hasSubscribers) {
    // traced: the promise the tracer follows, forwarded to the listener
    callProcess(node, caller, target, request, timeout, undefined).then(
      (reply) => listener.callReplied(reply),
      (error: unknown) => listener.callFailed(error),
    );
    return;
  }
  makeCall(node, caller, target, request, timeout, undefined, TO_LISTENER, listener);
}

/** Makes the call, settled through `resolve`/`reject` (a promise's, or TO_LISTENER and a listener). */
function makeCall(
  node: Kernel,
  caller: Proc | undefined,
  target: Target,
  request: unknown,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  resolve: (value: unknown) => void,
  reject: ((error: unknown) => void) | CallListener,
): void {
  const server = node.lookupTarget(target);
  let error: unknown;
  if (server === undefined && node.remote !== undefined && isPid(target) && target.node !== node.name) {
    // a process of another node: the cluster carries the call and settles it
    if (signal?.aborted === true) error = new AbortedError(`the call to ${targetText(target)}`, signal.reason);
    else {
      node.remote.call(caller, target, request, timeoutMs, signal, (ok, value) => {
        if (resolve === TO_LISTENER) tellListener(node, reject as CallListener, value, ok);
        else if (ok) resolve(value);
        else (reject as (error: unknown) => void)(value);
      });
      return;
    }
  } else if (server === undefined) {
    checkTarget(target); // a bad target (an empty name) is a programmer error, not a dead process
    error = noProcError(target, 'call', node);
  } else if (server === caller || (caller === undefined && inTurn(server))) {
    // a call from the node made while the server's own turn is on the stack is made by code running
    // as the server (its handler, init, or a telemetry handler they set off): the server calling
    // itself, which `gen_server:call(self(), …)` refuses with calling_self. Once an async handler
    // awaits, the server is busy, not running: a call then cannot be told from another's and waits
    error = new DeadlockError(targetText(target, server.self), 'called itself');
  }
  else if (signal?.aborted === true) error = new AbortedError(`the call to ${targetText(target, server.self)}`, signal.reason);
  else {
    const call = new PendingCall(request, server, target, node, resolve, reject);
    if (node.telemetry.flow !== undefined) startCallSpan(node.telemetry.flow, call, caller);
    const delivered = node.enqueueTo(server, call, caller);
    if (delivered === Delivery.Enqueued) call.arm(timeoutMs, caller, signal);
    else if (delivered === Delivery.MailboxFull) call.fail(new MailboxFullError(call.serverText, nameOf(target)));
    else call.fail(new NoProcError(call.serverText, 'cannot call a process that is not alive', { registeredName: nameOf(target) }));
    return;
  }
  if (resolve === TO_LISTENER) tellListener(node, reject as CallListener, error, false);
  else (reject as (error: unknown) => void)(error);
}

/**
 * Message-flow tracing: the caller's span of a call, the parent of the server's `handle_call` span
 * (a call served for a caller of another node holds that caller's span: see `MessageFlow.serving`).
 */
function startCallSpan(flow: MessageFlow, call: PendingCall, caller: Proc | undefined): void {
  flow.hold(call, flow.adoptCall() ?? flow.start('keel.gen_server.call', flow.contextOf(caller), { server: call.serverText }));
}

/** The reply (a span, the child of the server's handler span if it replies from there), then the call's span ends. */
function endCallSpan(flow: MessageFlow, call: PendingCall, failed: boolean, error: unknown): void {
  const context = flow.heldContext(call);
  if (context === undefined) return;
  if (!failed) flow.start('keel.gen_server.reply', flow.contextOf(call.server) ?? context, { server: call.serverText }).end();
  flow.release(call, failed ? error : undefined);
}

/**
 * @internal The error for a target that found no live process (`operation`: `'call'`, `'stop'`): a
 * name nobody holds says so, a pid says its process is not alive.
 */
export function noProcError(target: Target, operation: string, node?: { readonly stopping: boolean; readonly name: string; readonly registry: { readonly size: number; names(): string[] } }): NoProcError {
  const registeredName = nameOf(target);
  // on a node that has shut down (or is shutting down) nothing is alive: the message says why
  if (node?.stopping === true) return new NoProcError(targetText(target), `cannot ${operation} ${registeredName === undefined ? 'a process' : 'a name'} of node ${node.name}, which was shut down`, { registeredName });
  return registeredName === undefined
    ? new NoProcError(targetText(target), `cannot ${operation} a process that is not alive`)
    : new NoProcError(targetText(target), `cannot ${operation}`, { registeredName, unregistered: true, meant: misspeltName(registeredName, node?.registry) });
}

/** Past this many names a failed call by name names no near miss: the scan is the error path's only cost that grows with the node. */
const NAMES_SCANNED = 1_000;

/** The registered name `name` (held by nobody) likely misspells (`'cahce'` for `'cache'`), for the error's "did you mean". */
function misspeltName(name: string, registry: { readonly size: number; names(): string[] } | undefined): string | undefined {
  // counted first: a node of many names lists none of them at each failed call
  if (registry === undefined || registry.size > NAMES_SCANNED) return undefined;
  return nearMiss(name, registry.names());
}

/**
 * @internal The calls around a live process, from its exit watchers: `incoming`, the calls made to it
 * not yet answered (queued, being handled, or deferred with `noreply`); `waitingOn`, the servers of
 * the calls it made and waits on. For an observer: a walk of one process's watchers.
 */
export function pendingCallsOf(p: Proc): { incoming: number; waitingOn: Pid[] } {
  let incoming = 0;
  const waitingOn: Pid[] = [];
  for (const w of exitWatchersOf(p)) {
    if (w instanceof PendingCall && w.server === p) incoming++;
    else if (w instanceof CallerWatch) waitingOn.push(w.call.server.self);
  }
  return { incoming, waitingOn };
}

/** False for an object whose `then` cannot be read (a revoked proxy, a getter or trap that throws). */
const UNREADABLE: unique symbol = Symbol('unreadable');

/** A value's `then`, or UNREADABLE when reading it throws (a revoked proxy, a throwing getter). */
function thenOf(value: object): unknown {
  try {
    return (value as { then?: unknown }).then;
  } catch {
    return UNREADABLE;
  }
}
