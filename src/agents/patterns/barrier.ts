import { InvalidArgumentError, isKeelError, readKnownOptions } from '../../errors.js';
import { GenServer, type From, type GenServerSpec } from '../../otp/GenServer.js';
import { callerOf, callWaiting } from '../../otp/internal/calls.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { kernelOf } from '../../runtime/kernel.js';
import { isInstance } from '../../runtime/safe.js';
import { isDown } from '../../runtime/messages.js';
import type { Pid, TimerRef } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { checkObject, checkPositiveInteger, checkSignal, checkTimeout, stopComponent, unwatch, watchProcess, type WatchRef } from './shared.js';

export interface BarrierOptions {
  /** How long a `wait` waits by default, in ms (default 5000, on the node's clock; Infinity allowed). */
  timeout?: number;
  /** Registers the barrier process under this name (default `keel.barrier.<n>`). */
  name?: string;
}

/** How a wait ended: released with the others (the generation it was released in), or not. */
export type BarrierWait =
  | { readonly ok: true; readonly generation: number }
  | { readonly ok: false; readonly reason: 'timeout' | 'aborted' | 'stopped' };

/** A running barrier: its process and its operations. */
export interface Barrier {
  /** The barrier process's current pid (found again by name after a restart). */
  readonly pid: Pid;
  readonly name: string;
  /** Arrivals that release a generation. */
  readonly parties: number;
  /**
   * Arrives and waits until `parties` arrivals are in (this one included), then resolves with the
   * generation released. Waiting from a process context lets the barrier watch the process: if it
   * dies before the release it no longer counts. A wait that times out, or whose `signal`
   * aborts, leaves the barrier and no longer counts either; the barrier decides alone, so a
   * release and a departure never both happen to one wait.
   */
  wait(from: Node | Context<any>, options?: { timeout?: number; signal?: AbortSignal }): Promise<BarrierWait>;
  /** Arrivals waiting in the current generation. */
  arrived(): Promise<number>;
  /** The current generation (0 until the first release). */
  generation(): Promise<number>;
  /** Stops the barrier; its waiters get `{ ok: false, reason: 'stopped' }`. */
  stop(): Promise<void>;
}

type Calls =
  | { request: { type: 'wait'; token: WaitToken; timeout: number }; reply: BarrierWait }
  | { request: { type: 'arrived' }; reply: number }
  | { request: { type: 'generation' }; reply: number };

type Cast = { type: 'leave'; token: WaitToken };

/**
 * What names one wait (to leave it, to time it out): an object, compared by identity, made by the
 * handle for each wait. Another client cannot forge one, so it cannot take a wait's place or make
 * it leave; a client calling the process straight gives an object of its own.
 */
class WaitToken {}

/** A wait's timer went off (a class: another process cannot forge it). */
class Expire {
  readonly token: object;
  constructor(token: object) {
    this.token = token;
  }
}

interface Waiter {
  readonly from: From<BarrierWait>;
  /** The waiting process, when the wait came from one (it is watched). */
  readonly caller: Pid | undefined;
  readonly watch: WatchRef | undefined;
  readonly timer: TimerRef | undefined;
}

interface Config {
  readonly name: string;
  readonly parties: number;
}

interface State {
  readonly config: Config;
  generation: number;
  /** In arrival order, by token (its identity). */
  readonly waiting: Map<object, Waiter>;
}

function remove(state: State, token: unknown, ctx: Context<any>): Waiter | undefined {
  const w = state.waiting.get(token as object);
  if (w === undefined) return undefined;
  state.waiting.delete(token as object);
  if (w.watch !== undefined) unwatch(ctx, w.watch);
  if (w.timer !== undefined) ctx.cancelTimer(w.timer);
  return w;
}

/**
 * Drops the waits whose waiter is gone though its Down is not in yet (the process died, or the
 * call gave up): a dead waiter never completes a generation, whatever the order of its Down and
 * the last arrival in the mailbox.
 */
function prune(state: State, ctx: Context<any>): void {
  for (const [token, w] of [...state.waiting]) {
    const dead = w.caller !== undefined && !ctx.node.isAlive(w.caller);
    if (!dead && callWaiting(w.from as From<never>)) continue;
    remove(state, token, ctx);
    // its Down not in yet (and now never: the monitor is gone), the reason is not known
    if (dead) waiterDown(state, ctx, w.caller!, undefined);
  }
}

/** Says that a waiting process died and no longer counts (`keel.coordination.barrier_waiter_down`). */
function waiterDown(state: State, ctx: Context<any>, waiter: Pid, reason: unknown): void {
  ctx.node.telemetry.execute(
    'keel.coordination.barrier_waiter_down',
    { arrived: state.waiting.size },
    { barrier: state.config.name, waiter, generation: state.generation, ...(reason === undefined ? {} : { reason }) },
  );
}

/** Why a `wait` request is malformed, or undefined. */
function badWait(request: { token: unknown; timeout: unknown }): InvalidArgumentError | undefined {
  const { token, timeout } = request;
  if (typeof token !== 'object' || token === null) return new InvalidArgumentError('request.token', 'an object naming the wait (by its identity)', token);
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0) return new InvalidArgumentError('request.timeout', 'a number of ms >= 0 (or Infinity)', timeout);
  return undefined;
}

const barrierSpec: GenServerSpec<State, Calls, Cast, Config> = keelServer({
  init(config) {
    return { config, generation: 0, waiting: new Map() };
  },

  handleCall(request, from, state, ctx) {
    switch (request?.type) {
      case 'wait': {
        // the handle sends well-formed waits; anything else sent straight here is refused, so that
        // one bad client cannot crash the barrier and cost every other waiter its place
        const refused = badWait(request);
        if (refused !== undefined) return { reply: refused as never, state };
        // a token already waiting would take that wait's place: its caller never answered, its timer the new one's
        if (state.waiting.has(request.token)) return { reply: new InvalidArgumentError('request.token', 'a token no wait is waiting with', request.token) as never, state };
        // the caller is the one `from` identifies (OTP's From), never a claim in the request
        if (!callWaiting(from as From<never>)) return { noreply: true, state }; // its caller is gone: it does not count
        let watch: WatchRef | undefined;
        const caller = callerOf(from as From<never>);
        if (caller !== undefined) {
          const w = watchProcess(ctx, caller, 'barrier');
          if (w === 'noproc') return { noreply: true, state }; // its caller is gone: it does not count
          watch = w;
        }
        const timer = request.timeout === Infinity ? undefined : ctx.sendAfter(ctx.self, new Expire(request.token), request.timeout);
        state.waiting.set(request.token, { from: from as From<BarrierWait>, caller, watch, timer });
        if (state.waiting.size >= state.config.parties) prune(state, ctx);
        if (state.waiting.size < state.config.parties) return { noreply: true, state };
        const generation = state.generation++;
        for (const token of [...state.waiting.keys()]) GenServer.reply(remove(state, token, ctx)!.from, { ok: true, generation });
        ctx.node.telemetry.execute('keel.coordination.barrier_released', { generation, parties: state.config.parties }, { barrier: state.config.name });
        return { noreply: true, state };
      }
      case 'arrived':
        prune(state, ctx);
        return { reply: state.waiting.size, state };
      case 'generation':
        return { reply: state.generation, state };
      default:
        return { reply: new InvalidArgumentError('request', "{ type: 'wait' | 'arrived' | 'generation' }", request) as never, state };
    }
  },

  handleCast(cast, state, ctx) {
    if (cast?.type === 'leave') {
      const w = remove(state, cast.token, ctx);
      if (w !== undefined) GenServer.reply(w.from, { ok: false, reason: 'aborted' });
    }
    return state;
  },

  handleInfo(message, state, ctx) {
    if (isInstance(message, Expire)) {
      const w = remove(state, message.token, ctx);
      if (w !== undefined) GenServer.reply(w.from, { ok: false, reason: 'timeout' });
    } else if (isDown(message)) {
      // a waiter died before the release: it no longer counts (nobody is left to answer)
      for (const [token, w] of state.waiting) {
        if (w.watch?.ref === message.ref) {
          state.waiting.delete(token);
          if (w.timer !== undefined) ctx.cancelTimer(w.timer);
          waiterDown(state, ctx, w.caller!, message.reason);
          break;
        }
      }
    }
    return state;
  },

  terminate(_reason, state) {
    for (const w of state.waiting.values()) GenServer.reply(w.from, { ok: false, reason: 'stopped' });
  },
}, 'a barrier (use its handle)', 'bare');

/**
 * A cyclic barrier for `parties` arrivals: a supervised process (kind `barrier`) that holds each
 * `wait` until the n-th arrives, releases them together with the generation number, and starts
 * the next generation. A waiting process that dies, a wait that times out or is aborted, no
 * longer counts. Emits `keel.coordination.barrier_released`. Throws `ERR_INVALID_ARGUMENT` for bad
 * arguments.
 *
 * @example
 * ```ts
 * const b = await barrier(node, 3);
 * // in each of three workers' handlers:
 * const r = await b.wait(ctx, { timeout: 1000 });
 * if (r.ok) console.log('all three are here, generation', r.generation);
 * ```
 */
export function barrier(from: Node | Context<any>, parties: number, options: BarrierOptions = {}): Promise<Barrier> {
  const node = componentNode(from);
  checkPositiveInteger(parties, 'parties');
  checkObject(options, 'options', '{ timeout?, name? }');
  // each option read once (a misspelt one refused, a getter that throws a bad argument naming it),
  // and what is checked is what is used: a getter is not asked again
  const o = readKnownOptions(options, ['timeout', 'name'], 'options');
  const defaultTimeout = o.timeout ?? 5000;
  checkTimeout(defaultTimeout, 'options.timeout');
  const name = nameFor(node, 'barrier', o.name);
  return start(from, node, { name, parties }, defaultTimeout);
}

async function start(from: Node | Context<any>, node: Node, config: Config, defaultTimeout: number): Promise<Barrier> {
  const name = config.name;
  const pid: Pid = await startComponent(from, barrierSpec, config, name);
  const call = componentCaller<Calls>(node, name);
  const wait = (waitFrom: Node | Context<any>, options: { timeout?: number; signal?: AbortSignal } = {}): Promise<BarrierWait> => {
    kernelOf(waitFrom, 'from');
    checkObject(options, 'options', '{ timeout?, signal? }');
    const o = readKnownOptions(options, ['timeout', 'signal'], 'options'); // each read once, as barrier()'s
    const timeout = o.timeout ?? defaultTimeout;
    checkTimeout(timeout, 'options.timeout');
    const signal = o.signal;
    checkSignal(signal);
    if (signal?.aborted === true) return Promise.resolve({ ok: false, reason: 'aborted' });
    const token = new WaitToken();
    // the barrier answers every wait (released, timed out, left): no call timeout of its own; it
    // watches the calling process (a process context), which the call itself identifies
    const reply = GenServer.call<Calls>(waitFrom, name, { type: 'wait', token, timeout }, { timeout: Infinity });
    const leave = (): void => GenServer.cast<Cast>(node, name, { type: 'leave', token });
    signal?.addEventListener('abort', leave, { once: true });
    return reply.then(
      (r) => {
        signal?.removeEventListener('abort', leave);
        return r;
      },
      (e: unknown) => {
        signal?.removeEventListener('abort', leave);
        if (isKeelError(e, 'ERR_NOPROC') || isKeelError(e, 'ERR_CALL_EXIT')) return { ok: false, reason: 'stopped' } as const;
        throw e;
      },
    );
  };
  return componentHandle<Barrier>(node, name, pid, {
    parties: config.parties,
    wait,
    arrived: () => call({ type: 'arrived' }),
    generation: () => call({ type: 'generation' }),
    stop: () => stopComponent(node, name),
  });
}
