// A running GenServer: the messages a server is sent besides its info messages, the state machine
// of its callbacks (calls, casts, infos, continues, timeouts, terminate) and how their results are
// read. GenServer.ts holds the public face: the types, start, call, cast, stop.
import { inspect, type InspectOptionsStylized, types } from 'node:util';
import { InvalidArgumentError, toError } from '../../errors.js';
import { exitedWith, ExitWatcher, isDead, kernelOfProcess, type Proc } from '../../runtime/kernel.js';
import { type Exit, isExitReason, type ExitReason } from '../../runtime/messages.js';
import type { Pid, TimerRef } from '../../runtime/Pid.js';
import type { Context, Handler } from '../../runtime/types.js';
import type { TelemetryBus } from '../../telemetry/Telemetry.js';
import type { MessageFlow } from '../../telemetry/tracing.js';
import type { CallProtocol, GenServerSpec } from './spec.js';
import { type From, PendingCall } from './calls.js';
import { ADMITS, handleSys, holdWhileSuspended, isParentExit, isSysCall, SysRequest } from './sys.js';
import { adopt, isThenable } from './thenable.js';
/** @internal A cast's message (a StateMachine is cast to the same way). */
export class CastMessage {
  readonly request: unknown;
  constructor(request: unknown) {
    this.request = request;
  }
}

/**
 * What `handleInfo` gets when a `timeout` a callback returned passed with no message: gen_server's
 * `timeout` message. A symbol, so that no message sent to the server (from another node, say) is it.
 */
export const TIMEOUT: unique symbol = Symbol('keel.gen_server.timeout');

/** @internal The timer's message of a `timeout` result; only the latest one armed counts. */
class TimeoutMessage {}

/**
 * @internal `GenServer.stop`'s message. A bounded mailbox under `drop_oldest` may evict it: it is then
 * told (as a queued call is), and the stop fails at once rather than waiting for an exit that will
 * not come. It watches no process: it is an exit watcher only to be told of its eviction.
 */
export class StopMessage extends ExitWatcher {
  readonly reason: ExitReason;
  #onDropped: (() => void) | undefined;
  constructor(reason: ExitReason, onDropped?: () => void) {
    super();
    this.reason = reason;
    this.#onDropped = onDropped;
  }

  override onExit(): void {}

  /** A bounded mailbox evicted it: told once. */
  override dropped(): void {
    const f = this.#onDropped;
    this.#onDropped = undefined;
    f?.();
  }

  /** As `util.inspect` shows it (a refused stop's `keel.message.dropped` event): its reason, not the watcher links it inherits. */
  [inspect.custom](_depth?: number, options?: InspectOptionsStylized, inspectFn?: typeof inspect): string {
    return `StopMessage { reason: ${(typeof inspectFn === 'function' ? inspectFn : inspect)(this.reason, options)} }`;
  }
}

const INFO = 0;
const CALL = 1;
const CAST = 2;
const STOP = 3;
const TIMED_OUT = 4;
/** The handler spans of message-flow tracing, by kind. */
const HANDLE_SPANS = ['keel.gen_server.handle_info', 'keel.gen_server.handle_call', 'keel.gen_server.handle_cast', 'keel.gen_server.terminate', 'keel.gen_server.handle_info'];

/**
 * What a server's message is. A message may be any value a process was sent: one whose inspection
 * throws (a revoked proxy) is an info message like any other, never a crash of the server.
 */
function kindOf(msg: unknown): number {
  try {
    return msg instanceof PendingCall ? CALL : kindOfOther(msg);
  } catch {
    return INFO;
  }
}

/** {@link kindOf} of a message that is no call (its tests after the first). */
function kindOfOther(msg: unknown): number {
  try {
    return msg instanceof CastMessage ? CAST : msg instanceof StopMessage ? STOP : msg instanceof TimeoutMessage ? TIMED_OUT : INFO;
  } catch {
    return INFO;
  }
}

/**
 * What a bounded mailbox takes past the messages a suspended server holds: those it still answers,
 * a system call (`Sys.resume` must reach it) and a stop (OTP's is a system message too). Asked by the
 * kernel between its capacity check and its write into the mailbox, where no user code may run: read
 * by {@link madeBy}, never `instanceof` (which runs a proxy's `getPrototypeOf`, the message's or one
 * up its prototype chain, as a call's request may be).
 */
export function admitsWhileSuspended(msg: unknown): boolean {
  return madeBy(msg, StopMessage) || (madeBy(msg, PendingCall) && madeBy((msg as PendingCall).request, SysRequest));
}

/** True when `v` was made by `C` itself (none of these three is subclassed), read with no code of `v`'s run: no proxy trap, no prototype chain walked. */
export function madeBy(v: unknown, C: { readonly prototype: object }): boolean {
  return typeof v === 'object' && v !== null && !types.isProxy(v) && Object.getPrototypeOf(v) === C.prototype;
}

/** @internal A running server: its state machine over the callbacks. */
export class Server<S> {
  readonly spec: GenServerSpec<S, CallProtocol, unknown>;
  /** The server's own context: its process record. */
  readonly ctx: Proc;
  readonly parent: Pid | 'node';
  state!: S;
  /** True while `Sys.suspend` holds the server (the kernel keeps the messages that wait). */
  suspended = false;
  readonly telemetry: TelemetryBus;
  /** True while {@link Server.handle} runs inside its message-flow span. */
  inSpan = false;

  constructor(spec: GenServerSpec<S, CallProtocol, unknown>, ctx: Proc, parent: Pid | 'node') {
    this.spec = spec;
    this.ctx = ctx;
    this.parent = parent;
    this.telemetry = kernelOfProcess(ctx).telemetry;
  }

  readonly handle: Handler<unknown> = (msg: unknown): void | Promise<void> => {
    // message-flow tracing: one check while no tracer is installed
    if (this.telemetry.flow !== undefined && !this.inSpan) return this.#traced(this.telemetry.flow, msg);
    // kindOf, its first test inline: a call is the message a server is sent most (one call fewer each)
    let kind: number;
    try {
      kind = msg instanceof PendingCall ? CALL : kindOfOther(msg);
    } catch {
      kind = INFO;
    }
    if (this.suspended && holdWhileSuspended(this, msg, kind === STOP, this.spec[ADMITS] ?? admitsWhileSuspended)) return;
    if (this.armedTimeout !== undefined) {
      // a message came: the timeout a callback returned is off (a Sys call is none: it keeps it)
      if (kind === TIMED_OUT) return this.#timedOut(msg as TimeoutMessage);
      if (!(kind === CALL && isSysCall(msg as PendingCall))) this.#cancelTimeout();
    } else if (kind === TIMED_OUT) return; // a stale timer's: its timeout was off before it came
    switch (kind) {
      case CALL:
        if (isSysCall(msg as PendingCall)) return handleSys(this, msg as PendingCall);
        return this.callMessage(msg as PendingCall);
      case CAST:
        return this.#cast((msg as CastMessage).request);
      case STOP:
        return this.terminate((msg as StopMessage).reason);
    }
    if (isParentExit(this.ctx, this.parent, msg)) return this.terminate((msg as Exit).reason);
    return this.#info(msg);
  };

  /** A message handled in a span, the child of the one its sender sent it under (if it carried one). */
  #traced(flow: MessageFlow, msg: unknown): void | Promise<void> {
    const kind = kindOf(msg);
    const parent = kind === CALL ? flow.heldContext(msg as PendingCall) : kind === CAST ? flow.tagOf(msg as CastMessage) : kind === INFO ? flow.take(this.ctx.messageId) : undefined;
    return flow.handle(HANDLE_SPANS[kind]!, this.ctx, parent, { pid: String(this.ctx.self) }, () => {
      this.inSpan = true;
      try {
        return this.handle(msg);
      } finally {
        this.inSpan = false;
      }
    });
  }

  private callMessage(call: PendingCall): void | Promise<void> {
    const spec = this.spec;
    if (spec.handleCall === undefined) {
      return this.crash(new InvalidArgumentError('handleCall', 'a handleCall callback on a server that is called', undefined));
    }
    let r: unknown;
    try {
      r = spec.handleCall(call.request, call as From, this.state, this.ctx);
    } catch (e) {
      return this.crash(e);
    }
    if (isThenable(r)) return adopt(r).then((res) => this.afterCall(call, res), (e: unknown) => this.crash(e));
    return this.afterCall(call, r);
  }

  private afterCall(call: PendingCall, res: unknown): void | Promise<void> {
    // read once, up front: a result that cannot be read (a revoked proxy, a getter that throws) is
    // a crash of the callback, its terminate run, as a throw is
    let kind = INVALID;
    let state: S | undefined;
    let reply: unknown;
    let hasReply = false;
    let stop: unknown;
    let next: unknown;
    let timeout: unknown;
    try {
      if (typeof res === 'object' && res !== null && 'state' in res) {
        const r = res as { reply?: unknown; noreply?: true; stop?: unknown; state: S; continue?: unknown; timeout?: unknown };
        hasReply = 'reply' in r;
        if ('stop' in r) {
          kind = STOPS;
          stop = r.stop;
        } else if (hasReply || r.noreply === true) {
          kind = hasReply ? REPLIES : DEFERS;
          next = r.continue;
          timeout = r.timeout;
        }
        if (hasReply) reply = r.reply;
        state = r.state;
      }
    } catch (e) {
      return this.crash(e);
    }
    if (kind === INVALID) return this.crash(new InvalidArgumentError('handleCall result', '{ reply, state } | { noreply: true, state } | { stop, reply?, state }', res));
    this.state = state as S;
    if (kind === REPLIES) call.reply(reply);
    // as gen_server: a stop's reply is sent once terminate has finished, right before the exit
    else if (kind === STOPS) return hasReply ? this.#stopWith(stop, () => call.reply(reply)) : this.#stopWith(stop);
    else call.deferred();
    if (next !== undefined || timeout !== undefined) return this.#then(next, timeout, res);
  }

  /** After a result: its `continue` (handleContinue before the next message) or its `timeout` (armed), not both. */
  #then(next: unknown, timeout: unknown, res: unknown): void | Promise<void> {
    if (next !== undefined) {
      if (timeout !== undefined) return this.crash(new InvalidArgumentError('result', 'a continue or a timeout, not both', res));
      return this.continueWith(next);
    }
    if (timeout !== undefined) return this.#arm(timeout);
  }

  #cast(request: unknown): void | Promise<void> {
    const handleCast = this.spec.handleCast;
    if (handleCast === undefined) {
      return this.crash(new InvalidArgumentError('handleCast', 'a handleCast callback on a server that is cast to', undefined));
    }
    return this.#update(handleCast, request);
  }

  #info(msg: unknown): void | Promise<void> {
    const handleInfo = this.spec.handleInfo;
    if (handleInfo === undefined) {
      this.ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: this.ctx.self, message: msg });
      return;
    }
    return this.#update(handleInfo, msg);
  }

  /** Runs `handleCast` or `handleInfo`, sync or async, and acts on its result (a {@link NoReplyResult}). */
  #update(callback: (arg: any, state: S, ctx: Context<any>) => unknown, arg: unknown): void | Promise<void> {
    let r: unknown;
    try {
      r = callback.call(this.spec, arg, this.state, this.ctx);
    } catch (e) {
      return this.crash(e);
    }
    if (isThenable(r)) return adopt(r).then((res) => this.#noReply(res), (e: unknown) => this.crash(e));
    return this.#noReply(r);
  }

  /** Keeps a {@link NoReplyResult}'s state, then continues or stops as it says. */
  #noReply(res: unknown): void | Promise<void> {
    const shape = shapeOf(res);
    if (shape === PLAIN) {
      this.state = res as S;
      return;
    }
    let next: unknown;
    let timeout: unknown;
    try {
      // a getter that throws is a crash of the callback, as a throw is
      next = shape === STOPS ? (res as { stop: unknown }).stop : (res as { continue: unknown }).continue;
      if (shape === NOREPLY) timeout = (res as { timeout: unknown }).timeout;
      this.state = (res as { state: S }).state;
    } catch (e) {
      return this.crash(e);
    }
    return shape === STOPS ? this.#stopWith(next) : this.#then(next, timeout, res);
  }

  /** The `timeout` of a callback's result, armed: `GenServer.TIMEOUT` comes unless a message does first. */
  private armedTimeout: TimeoutMessage | undefined = undefined;
  #timeoutTimer: TimerRef | undefined = undefined;

  /** Arms a result's `timeout` (Infinity: none); one that is no number of ms >= 0 is a crash. */
  #arm(ms: unknown): void | Promise<void> {
    if (typeof ms !== 'number' || !(ms >= 0)) return this.crash(new InvalidArgumentError('timeout', 'a number of ms >= 0 (Infinity: none)', ms));
    if (ms === Infinity) return;
    const t = new TimeoutMessage();
    this.armedTimeout = t;
    this.#timeoutTimer = this.ctx.sendAfter(this.ctx.self, t, ms);
  }

  #cancelTimeout(): void {
    this.ctx.cancelTimer(this.#timeoutTimer!);
    this.armedTimeout = this.#timeoutTimer = undefined;
  }

  /** A timer's message: `handleInfo(GenServer.TIMEOUT)` if it is the timeout still armed; a stale one is dropped. */
  #timedOut(t: TimeoutMessage): void | Promise<void> {
    if (t !== this.armedTimeout) return;
    this.armedTimeout = this.#timeoutTimer = undefined;
    return this.#info(TIMEOUT);
  }

  /** A stop result: `terminate`, then `beforeExit` (a `{ stop, reply }`'s reply), then exit; a stop that is no exit reason is a crash (no reply). */
  #stopWith(reason: unknown, beforeExit?: () => void): void | Promise<void> {
    if (!isExitReason(reason)) return this.crash(new InvalidArgumentError('stop', "an exit reason ('normal', 'shutdown', { shutdown }, an Error, ...)", reason));
    return this.terminate(reason, beforeExit);
  }

  /** True once the process has exited: a continuation then runs no more callbacks. */
  get #dead(): boolean {
    return isDead(this.ctx);
  }

  /** Runs `handleContinue` until it returns a plain state. */
  continueWith(info: unknown): void | Promise<void> {
    const spec = this.spec;
    for (;;) {
      if (this.#dead) return;
      if (spec.handleContinue === undefined) {
        return this.crash(new InvalidArgumentError('handleContinue', 'a handleContinue callback for a { continue } result', undefined));
      }
      let r: unknown;
      try {
        r = spec.handleContinue(info, this.state, this.ctx);
      } catch (e) {
        return this.crash(e);
      }
      if (isThenable(r)) return adopt(r).then((res) => this.#noReply(res), (e: unknown) => this.crash(e));
      const shape = shapeOf(r);
      if (shape !== CONTINUES && shape !== NOREPLY) return this.#noReply(r);
      let next: unknown;
      let timeout: unknown;
      try {
        // each field read once, as #noReply reads them
        next = (r as { continue: unknown }).continue;
        if (shape === NOREPLY) timeout = (r as { timeout: unknown }).timeout;
        this.state = (r as { state: S }).state;
      } catch (e) {
        return this.crash(e);
      }
      // a { noreply: true, state, continue } continues in this loop too (through #noReply and #then
      // it recursed, a few stack frames per continue, until the stack overflowed)
      if (shape === NOREPLY && (next === undefined || timeout !== undefined)) return this.#then(next, timeout, r);
      info = next;
    }
  }

  /** Stores an `init` result (a `{ stop, state }` is a state there: init fails by throwing); returns the continue term, if any. */
  setState(res: unknown): { continue: unknown } | undefined {
    if (shapeOf(res) === CONTINUES) {
      this.state = (res as { state: S }).state;
      return { continue: (res as { continue: unknown }).continue };
    }
    this.state = res as S;
    return undefined;
  }

  /**
   * Runs `terminate`, then `beforeExit` (a `{ stop, reply }`'s reply), then exits the server with
   * `reason`; with the error `terminate` threw instead, if it threw (as gen_server: the reply is
   * still sent).
   */
  terminate(reason: ExitReason, beforeExit?: () => void): void | Promise<void> {
    if (this.#dead) return;
    const exit = (): void => {
      beforeExit?.();
      this.ctx.exit(this.#terminateError ?? reason);
    };
    const t = this.#runTerminate(reason);
    if (isThenable(t)) return adopt(t).then(exit, exit);
    exit();
  }

  /** A callback threw: `terminate(error)`, then the process exits with the error (or with `terminate`'s, if it threw too). */
  crash(thrown: unknown): void | Promise<void> {
    if (exitedWith(this.ctx as Proc, thrown)) throw thrown; // the callback ended the process with ctx.exit: not a crash
    if (this.#dead) return; // a late failure of a process already gone: no terminate
    const error = toError(thrown);
    const t = this.#runTerminate(error);
    const rethrow = (): never => {
      throw this.#terminateError ?? error;
    };
    if (isThenable(t)) return adopt(t).then(rethrow, rethrow);
    return rethrow();
  }

  /** What `terminate` threw (or rejected with), if it did: the server exits with it, as gen_server does. */
  #terminateError: Error | undefined = undefined;

  #runTerminate(reason: ExitReason): unknown {
    const terminate = this.spec.terminate;
    if (terminate === undefined) return undefined;
    const report = (e: unknown): void => {
      this.#terminateError = toError(e);
      this.ctx.node.logger.error(`terminate of ${String(this.ctx.self)} threw`, e);
    };
    try {
      const r = terminate.call(this.spec, reason, this.state);
      return isThenable(r) ? adopt(r).then(undefined, report) : undefined;
    } catch (e) {
      if (exitedWith(this.ctx as Proc, e)) throw e; // terminate ended the process itself (ctx.exit): it exits with that reason
      report(e);
      return undefined;
    }
  }
}

/** The shapes of a callback's result: a plain state, exactly `{ state, continue }`, exactly `{ stop, state }`, `{ noreply: true, state, … }`. */
const PLAIN = 0;
const CONTINUES = 1;
const STOPS = 2;
const NOREPLY = 3;
/** The shapes of a handleCall result besides STOPS: `{ reply, state }`, `{ noreply: true, state }`, none. */
const REPLIES = 4;
const DEFERS = 5;
const INVALID = 6;
/** The keys a `{ noreply: true, state }` result may have. */
const NOREPLY_KEYS: ReadonlySet<string> = new Set(['noreply', 'state', 'continue', 'timeout']);

/**
 * Which of the shapes `value` has. Three own-property checks for most states, no allocation (a
 * state may have an own `state`, as a StateMachine's does); the keys are counted only for an
 * object with an own `noreply`, `continue` or `stop`. `{ stop, state }` and `{ noreply, state }`
 * are read so in a plain object only, the first with an exit reason for `stop` (a state `{ state:
 * 'idle', stop: false }` stays one). An object that cannot be inspected (a revoked proxy) is a plain
 * state, as it always was.
 */
function shapeOf(value: unknown): number {
  if (typeof value !== 'object' || value === null) return PLAIN;
  try {
    if (Object.hasOwn(value, 'noreply')) {
      if ((value as { noreply: unknown }).noreply !== true || !Object.hasOwn(value, 'state') || !isPlain(value)) return PLAIN;
      return Object.keys(value).every((k) => NOREPLY_KEYS.has(k)) ? NOREPLY : PLAIN;
    }
    const continues = Object.hasOwn(value, 'continue');
    if (!continues && !Object.hasOwn(value, 'stop')) return PLAIN;
    if (!Object.hasOwn(value, 'state') || Object.keys(value).length !== 2) return PLAIN;
    if (continues) return CONTINUES;
    return isPlain(value) && isExitReason((value as { stop: unknown }).stop) ? STOPS : PLAIN;
  } catch {
    return PLAIN;
  }
}

/** An object literal's (or `Object.create(null)`'s), not a class's instance. */
function isPlain(value: object): boolean {
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

