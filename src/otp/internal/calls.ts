import diagnostics from 'node:diagnostics_channel';
import {
  AbortedError,
  CallExitError,
  CallTimeoutError,
  DeadlockError,
  InvalidArgumentError,
  MailboxFullError,
  NoProcError,
} from '../../errors.js';
import { Delivery, ExitWatcher, type Kernel, kernelOfProcess, NextTurnWatcher, type Proc, type TimerEntry } from '../../runtime/kernel.js';
import { formatReason, type ExitReason } from '../../runtime/messages.js';
import { captureResolvers, capturedResolvers } from './promiseExecutor.js';
import { checkTarget, type Target, targetText } from '../../runtime/Pid.js';

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

const callChannel = diagnostics.tracingChannel('keel.call');
// one channel stands for the five: tracers subscribe to all of them (checking all five costs a call each)
const callStart = diagnostics.channel('tracing:keel.call:start');

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
  private declare resolveFn: ((value: unknown) => void) | undefined;
  private declare rejectFn: (error: unknown) => void;
  private declare timer: TimerEntry | undefined;
  private declare timeoutMs: number;
  /** What only some calls need (a calling process to watch, an abort signal), allocated for them alone. */
  private declare extras: CallExtras | undefined;

  constructor(request: unknown, server: Proc, resolve: (value: unknown) => void, reject: (error: unknown) => void) {
    super();
    (this as { request: unknown }).request = request;
    (this as { server: Proc }).server = server;
    this.resolveFn = resolve;
    this.rejectFn = reject;
    this.timer = undefined;
    this.timeoutMs = 0;
    this.extras = undefined;
  }

  get node(): Kernel {
    return kernelOfProcess(this.server);
  }

  /** True while the caller still waits. */
  get pending(): boolean {
    return this.resolveFn !== undefined;
  }

  reply(value: unknown): void {
    const resolve = this.resolveFn;
    if (resolve === undefined) return;
    this.finish();
    resolve(value);
  }

  fail(error: unknown): void {
    if (this.resolveFn === undefined) return;
    this.finish();
    this.rejectFn(error);
  }

  /** A `drop_oldest` mailbox evicted the request before the server took it. */
  override dropped(): void {
    this.fail(new MailboxFullError(String(this.server.self)));
  }

  /** The server died (an exit watcher, told synchronously during its death). */
  onExit(reason: ExitReason): void {
    this.fail(
      kernelOfProcess(this.server).stopping
        ? new NoProcError(String(this.server.self), 'the node shut down before the reply')
        : new CallExitError(String(this.server.self), reason, formatReason(reason)),
    );
  }

  /** A pending call whose caller has died is a leak (it should have been released with the caller). */
  override leak(): string | undefined {
    const watch = this.extras?.callerWatch;
    if (this.resolveFn === undefined || watch === undefined || watch.watched !== undefined) return undefined;
    return `a pending call to ${String(this.server.self)} from a caller that has exited`;
  }

  /** @internal At the next turn of the event loop: arm the deadline if the caller still waits. */
  nextTurn(): void {
    if (this.resolveFn !== undefined) this.timer = kernelOfProcess(this.server).schedule(this.timeoutMs, PendingCall.prototype.timedOut, false, this);
  }

  /** The deadline passed (a timer method: no closure per call). */
  timedOut(): void {
    this.timer = undefined;
    this.fail(new CallTimeoutError(String(this.server.self), this.timeoutMs));
  }

  /** @internal Arms the deadline and the watches; called once the request is in the server's mailbox. */
  arm(timeoutMs: number, caller: Proc | undefined, signal: AbortSignal | undefined): void {
    const node = kernelOfProcess(this.server);
    if (!node.watchExit(this.server, this)) {
      this.fail(new NoProcError(String(this.server.self), 'the server exited before the call was armed'));
      return;
    }
    if (caller !== undefined || signal !== undefined) this.armExtras(node, caller, signal);
    if (timeoutMs !== Infinity) {
      // most calls are answered within the current turn of the event loop: their deadline is only
      // put on the node's timer heap if they are still pending at the next turn (so it may fire up
      // to one turn late, never early), and costs no clock read or heap work otherwise
      this.timeoutMs = timeoutMs;
      node.deferToNextTurn(this);
    }
  }

  private armExtras(node: Kernel, caller: Proc | undefined, signal: AbortSignal | undefined): void {
    const extras: CallExtras = (this.extras = { callerWatch: undefined, signal: undefined, onAbort: undefined });
    if (caller !== undefined) {
      // when the caller dies nobody waits: release everything (its continuation is a zombie)
      const watch = new CallerWatch(this);
      if (node.watchExit(caller, watch)) extras.callerWatch = watch;
    }
    if (signal !== undefined) {
      extras.signal = signal;
      extras.onAbort = () => this.fail(new AbortedError(`the call to ${String(this.server.self)}`, signal.reason));
      signal.addEventListener('abort', extras.onAbort, { once: true });
    }
  }

  private finish(): void {
    this.resolveFn = undefined;
    const node = kernelOfProcess(this.server);
    if (this.turnQueued) node.cancelNextTurn(this);
    if (this.timer !== undefined) node.cancelEntry(this.timer);
    this.timer = undefined;
    node.unwatchExit(this);
    const extras = this.extras;
    if (extras !== undefined) {
      this.extras = undefined;
      if (extras.callerWatch !== undefined) node.unwatchExit(extras.callerWatch);
      if (extras.signal !== undefined) extras.signal.removeEventListener('abort', extras.onAbort!);
    }
  }
}

interface CallExtras {
  callerWatch: CallerWatch | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

/** Watches the calling process for a pending call. */
class CallerWatch extends ExitWatcher {
  declare readonly call: PendingCall;
  constructor(call: PendingCall) {
    super();
    (this as { call: PendingCall }).call = call;
  }
  onExit(): void {
    this.call.fail(new CallExitError(String(this.call.server.self), 'noproc', 'the caller exited'));
  }
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
  if (callStart.hasSubscribers) {
    const context = { target, request, caller: caller?.self ?? 'node', node: node.name };
    return callChannel.tracePromise(() => startCall(node, caller, target, request, timeoutMs, signal), context);
  }
  return startCall(node, caller, target, request, timeoutMs, signal);
}

function startCall(node: Kernel, caller: Proc | undefined, target: Target, request: unknown, timeoutMs: number, signal: AbortSignal | undefined): Promise<unknown> {
  const server = node.lookupTarget(target);
  if (server === undefined) {
    checkTarget(target); // a bad target (an empty name) is a programmer error, not a dead process
    return Promise.reject(new NoProcError(targetText(target), 'cannot call a process that is not alive'));
  }
  if (server === caller) return Promise.reject(new DeadlockError(String(server.self), 'called itself'));
  if (signal?.aborted === true) return Promise.reject(new AbortedError(`the call to ${String(server.self)}`, signal.reason));
  const promise = new Promise<unknown>(captureResolvers); // a shared executor: no closure per call
  const call = new PendingCall(request, server, capturedResolvers.resolve, capturedResolvers.reject);
  const delivered = node.enqueueTo(server, call, caller);
  if (delivered === Delivery.Enqueued) call.arm(timeoutMs, caller, signal);
  else if (delivered === Delivery.MailboxFull) call.fail(new MailboxFullError(String(server.self)));
  else call.fail(new NoProcError(String(server.self), 'cannot call a process that is not alive'));
  return promise;
}
