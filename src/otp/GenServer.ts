import { CallExitError, CallTimeoutError, checkStrayKeys, DeadlockError, InvalidArgumentError, MailboxFullError, readOption, StartError, toError } from '../errors.js';
import { refuseMisspelt } from './internal/misspelt.js';
import { Delivery, exitedWith, inTurn, isDead, isProcess, kernelOf, originOf, type Proc } from '../runtime/kernel.js';
import { isAbortSignal, isInstance } from '../runtime/safe.js';
import { formatReason, isExitReason, type ExitReason, type SystemMessage } from '../runtime/messages.js';
import { checkTarget, Name, nameOf, type Pid, type Target, targetText } from '../runtime/Pid.js';
import type { Context, Handler, Init, MailboxOptions, Node, SpawnOptions } from '../runtime/types.js';
import { callProcess, type From, noProcError, PendingCall, validateTimeout } from './internal/calls.js';
import { InitStop } from './internal/initStop.js';
import { ServerLifecycle } from './internal/lifecycle.js';
import { readMailboxOptions } from './internal/mailboxOptions.js';
import { adopt, isThenable } from './internal/thenable.js';
import { CastMessage, Server, StopMessage, TIMEOUT } from './internal/server.js';
import type { CallProtocol, GenServerSpec } from './internal/spec.js';

export { CastMessage, StopMessage, TIMEOUT } from './internal/server.js';

export type { From } from './internal/calls.js';
export type { CallProtocol, CallResult, GenServerSpec, NoReplyResult, StateResult } from './internal/spec.js';

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

export interface StartOptions<P extends CallProtocol = any, Cast = any> {
  /** Registers the server under this unique name; a typed name must be of the spec's calls and casts. */
  name?: string | ServerName<P, Cast>;
  /** How long `init` may take before the start fails (default 5000 ms, on the node's clock). */
  timeout?: number;
  /**
   * Bounds the server's mailbox, as the spawn option does (default unbounded; OTP's `spawn_opt` of
   * `gen_server:start`): past `capacity` messages (calls, casts and infos alike), `overflow` decides.
   */
  mailbox?: MailboxOptions;
}

/** `GenServer.call`'s options (one array, not one per call). */
const CALL_OPTIONS: readonly string[] = ['timeout', 'signal'];

/** A spec's callbacks, `init` first. */
const CALLBACKS = ['init', 'handleCall', 'handleCast', 'handleInfo', 'handleContinue', 'terminate', 'formatStatus'] as const;

function validateSpec(spec: unknown): asserts spec is GenServerSpec<unknown, CallProtocol, unknown> {
  // each read guarded: a spec that cannot be read (a revoked proxy, a getter that throws) is named
  if (typeof spec !== 'object' || spec === null || typeof readOption(spec, 'init', 'spec') !== 'function') {
    if (typeof spec === 'object' && spec !== null) refuseMisspelt(spec, CALLBACKS, CALLBACKS, 'a GenServer spec');
    throw new InvalidArgumentError('spec', 'a GenServer spec with an init(arg, ctx) function', spec);
  }
  for (const cb of CALLBACKS) {
    const f = readOption(spec, cb, 'spec');
    if (f !== undefined && typeof f !== 'function') throw new InvalidArgumentError(`spec.${cb}`, 'a function or undefined', f);
  }
  refuseMisspelt(spec, CALLBACKS, CALLBACKS, 'a GenServer spec');
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
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name?, timeout?, mailbox? }', options);
  // each option read once: what is checked is what is used (a getter may answer differently)
  checkStrayKeys(options, ['name', 'timeout', 'mailbox'], 'options');
  const name = readOption(options, 'name', 'options') as StartOptions['name'];
  const timeout = readOption(options, 'timeout', 'options') ?? 5000;
  validateTimeout(timeout, 'options.timeout');
  const mailbox = readMailboxOptions(readOption(options, 'mailbox', 'options'), 'options.mailbox');
  const parent: Pid | 'node' = caller === undefined ? 'node' : caller.self;
  const lifecycle = new ServerLifecycle(node, spec, nameOf(name), parent);
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
      if (isInstance(reason, InitStop)) {
        settle(reason.error, ctx.self);
        // OTP's {stop, Reason}: the server exits with it (no crash), unless it died meanwhile
        if (!isDead(ctx as Proc)) ctx.exit(reason.reason);
        return;
      }
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
        if (!exitedWith(ctx as Proc, e)) fail(ctx, e);
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
    const spawnOptions: SpawnOptions | undefined =
      mailbox === undefined ? (name === undefined ? undefined : { name }) : name === undefined ? { mailbox } : { name, mailbox };
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
   * 5000 ms, on the node's clock; a late reply is discarded), `ERR_DEADLOCK` for a call to oneself
   * (through one's context, or through the node while the server's own turn is on the stack: its
   * handler or init before their first `await`), `ERR_ABORTED` when `signal` aborts,
   * `ERR_MAILBOX_FULL` when a bounded mailbox refuses it.
   * `options` may be the timeout alone, as in Elixir's `GenServer.call(server, request, timeout)`.
   */
  call<P extends CallProtocol = CallProtocol, const R extends P['request'] = P['request']>(
    from: Node | Context<any>,
    target: ServerPid<P, any> | ServerName<P, any> | Target,
    request: R,
    options?: number | { timeout?: number; signal?: AbortSignal },
  ): Promise<ReplyOf<P, R>> {
    // originOf's checks without its { node, caller } object per call: a context's kernel is never
    // the context itself, a node's is the node (the target is checked where it is looked up)
    const node = kernelOf(from);
    const caller = node === from ? undefined : (from as Proc);
    let timeout = 5000;
    let signal: AbortSignal | undefined;
    if (typeof options === 'number') {
      validateTimeout(options);
      timeout = options;
    } else if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ timeout?, signal? } or a timeout in ms', options);
      // each option read once: what is checked is what is used (a getter may answer differently)
      checkStrayKeys(options, CALL_OPTIONS, 'options');
      const given = readOption(options, 'timeout', 'options');
      if (given !== undefined) {
        validateTimeout(given, 'options.timeout');
        timeout = given as number;
      }
      signal = readOption(options, 'signal', 'options') as AbortSignal | undefined;
    }
    if (signal !== undefined && !isAbortSignal(signal)) throw new InvalidArgumentError('options.signal', 'an AbortSignal', signal);
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
   * (default Infinity), `ERR_CALL_EXIT` if it exited with another reason, `ERR_MAILBOX_FULL` if its
   * bounded mailbox refused the stop or evicted it before the server took it (the server runs on).
   */
  stop(from: Node | Context<any>, target: Target, reason: ExitReason = 'normal', timeout = Infinity): Promise<void> {
    const { node, caller } = originOf(from);
    checkTarget(target);
    if (!isExitReason(reason)) throw new InvalidArgumentError('reason', 'an exit reason', reason);
    validateTimeout(timeout);
    const server = node.lookupTarget(target);
    if (server === undefined) return Promise.reject(noProcError(target, 'stop', node));
    const serverText = targetText(target, server.self);
    const registeredName = nameOf(target);
    // through the node inside the server's own turn (its handler or init before their first await):
    // the server stopping itself, as through its context (see makeCall)
    if (server === caller || (caller === undefined && inTurn(server))) {
      return Promise.reject(new DeadlockError(serverText, 'tried to stop itself with GenServer.stop (return { stop } from a callback instead)'));
    }
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
      // a bounded mailbox that refuses the stop, or evicts it later (drop_oldest): it fails at once, as a call does
      const full = (): void => {
        unhook?.();
        timer?.cancel();
        reject(new MailboxFullError(serverText, registeredName));
      };
      if (node.enqueueTo(server, new StopMessage(reason, full), caller) === Delivery.MailboxFull) full();
    });
  },
};

export type { SystemMessage };
