import { CallExitError, CallTimeoutError, checkKeys, DeadlockError, InvalidArgumentError, StartError, toError } from '../errors.js';
import { isDead, isExitSentinel, isProcess, kernelOfProcess, originOf, type Proc } from '../runtime/kernel.js';
import { isInstance } from '../runtime/safe.js';
import { type Exit, formatReason, isExitReason, type ExitReason, type SystemMessage } from '../runtime/messages.js';
import { checkTarget, Name, nameOf, type Pid, type Target, targetText, type TimerRef } from '../runtime/Pid.js';
import type { Context, Handler, Init, Node } from '../runtime/types.js';
import { callProcess, type From, noProcError, PendingCall, validateTimeout } from './internal/calls.js';
import { ServerLifecycle } from './internal/lifecycle.js';
import { handleSys, holdWhileSuspended, isParentExit, isSysCall, SYS_VIEW, type SysView } from './internal/sys.js';
import type { TelemetryBus } from '../telemetry/Telemetry.js';
import type { MessageFlow } from '../telemetry/tracing.js';
import { adopt, isThenable } from './internal/thenable.js';

export type { From } from './internal/calls.js';

/** A server's calls: each request type with the reply it gets. */
export type CallProtocol = { request: unknown; reply: unknown };

/** The reply type of `request` under protocol `P`. */
export type ReplyOf<P extends CallProtocol, R> = P extends { request: infer Q; reply: infer A } ? ([R] extends [Q] ? A : never) : never;

/** A GenServer's pid, typed by its calls and casts; `GenServer.call` derives its reply type from it. */
export type ServerPid<P extends CallProtocol = any, Cast = any> = Pid<any> & {
  readonly __calls?: (protocol: P) => void;
  readonly __casts?: (cast: Cast) => void;
};

/**
 * A GenServer's typed name (`GenServer.name<P, Cast>('counter')`), as Akka's `ServiceKey`: usable
 * wherever its pid is, with the same typing (`GenServer.call(node, Counter, req)` gets the reply type
 * of `req`), and `GenServer.start(…, { name })` accepts it only for a spec of the same calls and casts.
 */
export type ServerName<P extends CallProtocol = any, Cast = any> = Name<any> & {
  // invariant, so that a name ties the spec it is started with to the calls made through it
  readonly __calls?: (protocol: P) => P;
  readonly __casts?: (cast: Cast) => Cast;
};

/** What `init` returns: the state, or exactly `{ state, continue }` (the state and a term for `handleContinue`). */
export type StateResult<S> = S | { state: S; continue: unknown };

/**
 * What `handleCast`, `handleInfo` and `handleContinue` return, as gen_server's `{noreply, State}`,
 * `{noreply, State, Timeout | {continue, C}}` and `{stop, Reason, State}`: the new state;
 * `{ noreply: true, state, timeout?, continue? }` (a `timeout` in ms: `handleInfo` gets
 * `GenServer.TIMEOUT` if no message comes within it; a `continue`: `handleContinue` runs before the
 * next message; not both); exactly `{ state, continue }` (as `init`'s); or exactly `{ stop, state }`
 * with `stop` an exit reason, to run `terminate` and exit. The two forms with a marker are read as
 * such only in a plain object (not a class's instance), so that a state is never misread.
 */
export type NoReplyResult<S> =
  | S
  | { noreply: true; state: S; timeout?: number; continue?: unknown }
  | { state: S; continue: unknown }
  | { stop: ExitReason; state: S };

/** What `handleCall` returns. */
export type CallResult<S, R> =
  | { reply: R; state: S; continue?: unknown; timeout?: number }
  | { noreply: true; state: S; continue?: unknown; timeout?: number }
  | { stop: ExitReason; reply?: R; state: S };

/**
 * A GenServer's callbacks. Every callback may be async (the server is busy until it settles).
 * `init` failing fails the start; a callback that throws runs `terminate` and exits the server.
 */
export interface GenServerSpec<S, P extends CallProtocol = CallProtocol, Cast = never, Arg = any> {
  init(arg: Arg, ctx: Context<any>): StateResult<S> | Promise<StateResult<S>>;
  handleCall?(request: P['request'], from: From<P['reply']>, state: S, ctx: Context<any>): CallResult<S, P['reply']> | Promise<CallResult<S, P['reply']>>;
  handleCast?(request: Cast, state: S, ctx: Context<any>): NoReplyResult<S> | Promise<NoReplyResult<S>>;
  /** Any other message. Default: reported as `keel.gen_server.unexpected_message`, state kept. */
  handleInfo?(message: unknown, state: S, ctx: Context<any>): NoReplyResult<S> | Promise<NoReplyResult<S>>;
  handleContinue?(info: unknown, state: S, ctx: Context<any>): NoReplyResult<S> | Promise<NoReplyResult<S>>;
  /** Runs when the server traps exits and its parent (or the node) shuts it down, on `GenServer.stop`, and after a crash inside a callback. */
  terminate?(reason: ExitReason, state: S): void | Promise<void>;
  /** What `Sys.getStatus` shows of the state (to redact secrets); default: the state itself. */
  formatStatus?(state: S): unknown;
  /** @internal How a behaviour built on this server shows its state to `Sys`. */
  readonly [SYS_VIEW]?: SysView;
}

export interface StartOptions<P extends CallProtocol = any, Cast = any> {
  /** Registers the server under this unique name; a typed name must be of the spec's calls and casts. */
  name?: string | ServerName<P, Cast>;
  /** How long `init` may take before the start fails (default 5000 ms, on the node's clock). */
  timeout?: number;
}

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

/** @internal `GenServer.stop`'s message. */
export class StopMessage {
  readonly reason: ExitReason;
  constructor(reason: ExitReason) {
    this.reason = reason;
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
    return msg instanceof PendingCall ? CALL : msg instanceof CastMessage ? CAST : msg instanceof StopMessage ? STOP : msg instanceof TimeoutMessage ? TIMED_OUT : INFO;
  } catch {
    return INFO;
  }
}

/** @internal A running server: its state machine over the callbacks. */
class Server<S> {
  readonly spec: GenServerSpec<S, CallProtocol, unknown>;
  /** The server's own context: its process record. */
  readonly ctx: Proc;
  readonly parent: Pid | 'node';
  state!: S;
  /** The messages held while `Sys.suspend` holds the server (undefined: running). */
  suspended: unknown[] | undefined = undefined;
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
    const kind = kindOf(msg);
    if (this.suspended !== undefined && holdWhileSuspended(this, msg, kind === STOP)) return;
    if (this.#timeout !== undefined) {
      // a message came: the timeout a callback returned is off (a Sys call is none: it keeps it)
      if (kind === TIMED_OUT) return this.#timedOut(msg as TimeoutMessage);
      if (!(kind === CALL && isSysCall(msg as PendingCall))) this.#cancelTimeout();
    } else if (kind === TIMED_OUT) return; // a stale timer's: its timeout was off before it came
    switch (kind) {
      case CALL:
        if (isSysCall(msg as PendingCall)) return handleSys(this, msg as PendingCall);
        return this.#call(msg as PendingCall);
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

  #call(call: PendingCall): void | Promise<void> {
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
    if (isThenable(r)) return adopt(r).then((res) => this.#afterCall(call, res), (e: unknown) => this.crash(e));
    return this.#afterCall(call, r);
  }

  #afterCall(call: PendingCall, res: unknown): void | Promise<void> {
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
    return this.#then(next, timeout, res);
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
  #timeout: TimeoutMessage | undefined = undefined;
  #timeoutTimer: TimerRef | undefined = undefined;

  /** Arms a result's `timeout` (Infinity: none); one that is no number of ms >= 0 is a crash. */
  #arm(ms: unknown): void | Promise<void> {
    if (typeof ms !== 'number' || !(ms >= 0)) return this.crash(new InvalidArgumentError('timeout', 'a number of ms >= 0 (Infinity: none)', ms));
    if (ms === Infinity) return;
    const t = new TimeoutMessage();
    this.#timeout = t;
    this.#timeoutTimer = this.ctx.sendAfter(this.ctx.self, t, ms);
  }

  #cancelTimeout(): void {
    this.ctx.cancelTimer(this.#timeoutTimer!);
    this.#timeout = this.#timeoutTimer = undefined;
  }

  /** A timer's message: `handleInfo(GenServer.TIMEOUT)` if it is the timeout still armed; a stale one is dropped. */
  #timedOut(t: TimeoutMessage): void | Promise<void> {
    if (t !== this.#timeout) return;
    this.#timeout = this.#timeoutTimer = undefined;
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
      if (shapeOf(r) !== CONTINUES) return this.#noReply(r);
      try {
        info = (r as { continue: unknown }).continue;
        this.state = (r as { state: S }).state;
      } catch (e) {
        return this.crash(e);
      }
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
    if (isExitSentinel(thrown)) throw thrown; // the callback ended the process with ctx.exit: not a crash
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
      if (isExitSentinel(e)) throw e; // terminate ended the process itself (ctx.exit): it exits with that reason
      report(e);
      return undefined;
    }
  }
}

/** `GenServer.call`'s options (one array, not one per call). */
const CALL_OPTIONS: readonly string[] = ['timeout', 'signal'];

/** A thenable result of a callback (typed as a Promise: only its `then` is used). */

/** The shapes of a callback's result: a plain state, exactly `{ state, continue }`, exactly `{ stop, state }`, `{ noreply: true, state, … }`. */
const PLAIN = 0;
const CONTINUES = 1;
const STOPS = 2;
const NOREPLY = 6;
/** The shapes of a handleCall result besides STOPS: `{ reply, state }`, `{ noreply: true, state }`, none. */
const REPLIES = 3;
const DEFERS = 4;
const INVALID = 5;
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

function validateSpec(spec: unknown): asserts spec is GenServerSpec<unknown, CallProtocol, unknown> {
  if (typeof spec !== 'object' || spec === null || typeof (spec as { init?: unknown }).init !== 'function') {
    throw new InvalidArgumentError('spec', 'a GenServer spec with an init(arg, ctx) function', spec);
  }
  for (const cb of ['handleCall', 'handleCast', 'handleInfo', 'handleContinue', 'terminate', 'formatStatus'] as const) {
    const f = (spec as Record<string, unknown>)[cb];
    if (f !== undefined && typeof f !== 'function') throw new InvalidArgumentError(`spec.${cb}`, 'a function or undefined', f);
  }
}

function start<S, P extends CallProtocol, Cast, Arg>(
  from: Node | Context<any>,
  spec: GenServerSpec<S, P, Cast, Arg>,
  arg: Arg,
  options: StartOptions,
  link: boolean,
): Promise<ServerPid<P, Cast>> {
  const { node, caller } = originOf(from);
  validateSpec(spec);
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name?, timeout? }', options);
  checkKeys(options, ['name', 'timeout'], 'options');
  const timeout = options.timeout ?? 5000;
  validateTimeout(timeout, 'options.timeout');
  const parent: Pid | 'node' = caller === undefined ? 'node' : caller.self;
  const lifecycle = new ServerLifecycle(node, spec, nameOf(options.name), parent);
  return new Promise((resolve, reject) => {
    let settled = false;
    const guards: { timer?: { cancel(): boolean }; unhook?: (() => void) | undefined } = {};
    const settle = (error: StartError | undefined, pid: Pid): void => {
      if (settled) return;
      settled = true;
      guards.timer?.cancel();
      guards.unhook?.();
      lifecycle.init(pid, error);
      if (error !== undefined) reject(error);
      else resolve(pid as ServerPid<P, Cast>);
    };
    const fail = (ctx: Context<any>, reason: unknown): void => {
      // the starter learns of the failure from the start's result, not from an exit signal
      if (link && caller !== undefined) ctx.unlink(caller.self);
      const e = toError(reason);
      settle(new StartError('GenServer', e, formatReason(e)), ctx.self);
    };
    const init: Init<any> = (ctx) => {
      // a process's context is its record
      const server = new Server<S>(spec as GenServerSpec<S, CallProtocol, unknown>, ctx as Proc, parent);
      const ready = (res: unknown): Handler<unknown> | Promise<Handler<unknown>> => {
        const next = server.setState(res);
        if (!settled) (ctx as Proc).ext().exitReport = lifecycle; // a started server reports its exit
        settle(undefined, ctx.self);
        if (next === undefined) return server.handle;
        const c = server.continueWith(next.continue);
        return isThenable(c) ? c.then(() => server.handle) : server.handle;
      };
      let r: unknown;
      try {
        r = spec.init(arg, ctx);
      } catch (e) {
        // init ended the process itself (ctx.exit): its death hook has failed the start already,
        // and, as in OTP, a linked starter receives the exit signal
        if (!isExitSentinel(e)) fail(ctx, e);
        throw e;
      }
      if (isThenable(r)) {
        return adopt(r).then(ready, (e: unknown) => {
          fail(ctx, e);
          throw e;
        });
      }
      return ready(r);
    };
    const spawnOptions = options.name === undefined ? undefined : { name: options.name };
    const pid = caller === undefined ? node.spawn(init, spawnOptions) : link ? caller.spawnLink(init, spawnOptions) : caller.spawn(init, spawnOptions);
    guards.unhook = node.onExit(pid, (reason) => settle(new StartError('GenServer', reason, formatReason(reason)), pid));
    if (timeout !== Infinity) {
      guards.timer = node.setTimer(timeout, () => {
        if (settled) return;
        const p = node.resolve(pid);
        if (p !== undefined && link && caller !== undefined) caller.unlink(pid);
        settle(new StartError('GenServer', 'timeout', `init did not finish within ${timeout} ms`), pid);
        if (p !== undefined) node.die(p, 'killed');
      });
    }
  });
}

/**
 * GenServer: a process with state and callbacks, after Erlang's `gen_server`.
 *
 * @example
 * ```ts
 * type Calls = { request: { type: 'get' }; reply: number } | { request: { type: 'add'; n: number }; reply: number };
 * const counter: GenServerSpec<number, Calls, { type: 'reset' }> = {
 *   init: (start: number) => start,
 *   handleCall: (req, _from, n) => (req.type === 'get' ? { reply: n, state: n } : { reply: n + req.n, state: n + req.n }),
 *   handleCast: () => 0,
 * };
 * const pid = await GenServer.start(node, counter, 10);
 * const n = await GenServer.call(node, pid, { type: 'add', n: 5 }); // n: number, 15
 * ```
 */
export const GenServer = {
  /** What `handleInfo` gets when the `timeout` of a callback's result passed with no message (gen_server's `timeout`). */
  TIMEOUT,

  /** A typed name for a server of calls `P` and casts `Cast` (see {@link ServerName}). */
  name<P extends CallProtocol, Cast = never>(text: string): ServerName<P, Cast> {
    return Name.of(text) as ServerName<P, Cast>;
  },

  /** Starts a server (not linked); resolves with its pid once `init` has finished, rejects with `ERR_START_FAILED`. */
  start<S, P extends CallProtocol = CallProtocol, Cast = never, Arg = any>(
    from: Node | Context<any>,
    spec: GenServerSpec<S, P, Cast, Arg>,
    arg?: Arg,
    options: StartOptions<NoInfer<P>, NoInfer<Cast>> = {},
  ): Promise<ServerPid<P, Cast>> {
    return start(from, spec, arg as Arg, options, false);
  },

  /** Starts a server linked to the calling process. */
  startLink<S, P extends CallProtocol = CallProtocol, Cast = never, Arg = any>(
    from: Context<any>,
    spec: GenServerSpec<S, P, Cast, Arg>,
    arg?: Arg,
    options: StartOptions<NoInfer<P>, NoInfer<Cast>> = {},
  ): Promise<ServerPid<P, Cast>> {
    if (!isProcess(from)) throw new InvalidArgumentError('from', 'a process Context (a link needs a process)', from);
    return start(from, spec, arg as Arg, options, true);
  },

  /**
   * Calls a server and waits for its reply. Rejects with `ERR_NOPROC` at once for a dead or unknown
   * target, `ERR_CALL_EXIT` when the server dies first, `ERR_CALL_TIMEOUT` after `timeout` (default
   * 5000 ms, on the node's clock; a late reply is discarded), `ERR_DEADLOCK` for a call to oneself,
   * `ERR_ABORTED` when `signal` aborts, `ERR_MAILBOX_FULL` when a bounded mailbox refuses it.
   * `options` may be the timeout alone, as in Elixir's `GenServer.call(server, request, timeout)`.
   */
  call<P extends CallProtocol = CallProtocol, const R extends P['request'] = P['request']>(
    from: Node | Context<any>,
    target: ServerPid<P, any> | ServerName<P, any> | Target,
    request: R,
    options?: number | { timeout?: number; signal?: AbortSignal },
  ): Promise<ReplyOf<P, R>> {
    const { node, caller } = originOf(from); // the target is checked where it is looked up
    let timeout = 5000;
    let signal: AbortSignal | undefined;
    if (typeof options === 'number') {
      validateTimeout(options);
      timeout = options;
    } else if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ timeout?, signal? } or a timeout in ms', options);
      checkKeys(options, CALL_OPTIONS, 'options');
      if (options.timeout !== undefined) {
        validateTimeout(options.timeout, 'options.timeout');
        timeout = options.timeout;
      }
      signal = options.signal;
    }
    if (signal !== undefined && !isInstance(signal, AbortSignal)) throw new InvalidArgumentError('options.signal', 'an AbortSignal', signal);
    return callProcess(node, caller, target, request, timeout, signal) as Promise<ReplyOf<P, R>>;
  },

  /** Sends a request without waiting (dropped with a `keel.message.dropped` event if the server is dead). */
  cast<Cast>(from: Node | Context<any>, target: ServerPid<any, Cast> | ServerName<any, Cast> | Target, request: NoInfer<Cast>): void {
    const { node, caller } = originOf(from);
    checkTarget(target);
    const cast = new CastMessage(request);
    if (node.telemetry.flow !== undefined) node.telemetry.flow.tag(cast, node.telemetry.flow.contextOf(caller));
    node.deliver(caller, target, cast);
  },

  /** Replies to a call later, from anywhere (`handleCall` returned `{ noreply: true }`). */
  reply<R>(from: From<R>, value: R): void {
    if (!isInstance(from, PendingCall)) throw new InvalidArgumentError('from', 'the From handle given to handleCall', from);
    from.reply(value);
  },

  /**
   * Stops a server: it runs `terminate(reason)` and exits. Resolves once it has exited with
   * `reason`; rejects with `ERR_NOPROC` for a dead target, `ERR_CALL_TIMEOUT` after `timeout`
   * (default Infinity), `ERR_CALL_EXIT` if it exited with another reason.
   */
  stop(from: Node | Context<any>, target: Target, reason: ExitReason = 'normal', timeout = Infinity): Promise<void> {
    const { node, caller } = originOf(from);
    checkTarget(target);
    if (!isExitReason(reason)) throw new InvalidArgumentError('reason', 'an exit reason', reason);
    validateTimeout(timeout);
    const server = node.lookupTarget(target);
    if (server === undefined) return Promise.reject(noProcError(target, 'stop'));
    const serverText = targetText(target, server.self);
    const registeredName = nameOf(target);
    if (server === caller) return Promise.reject(new DeadlockError(serverText, 'tried to stop itself with GenServer.stop (return { stop } from a callback instead)'));
    return new Promise<void>((resolve, reject) => {
      let timer: { cancel(): boolean } | undefined;
      const unhook = node.onProcExit(server, (exitReason) => {
        timer?.cancel();
        if (exitReason === reason) resolve();
        else reject(new CallExitError(serverText, exitReason, formatReason(exitReason), { registeredName }));
      });
      if (timeout !== Infinity) {
        timer = node.setTimer(timeout, () => {
          unhook?.();
          reject(new CallTimeoutError(serverText, timeout, registeredName));
        });
      }
      node.enqueueTo(server, new StopMessage(reason), caller);
    });
  },
};

export type { SystemMessage };
