import { types } from 'node:util';
import { InvalidArgumentError, thrownText } from '../errors.js';
import type { ExitReason } from '../runtime/messages.js';
import { Name, type Target } from '../runtime/Pid.js';
import { isInstance } from '../runtime/safe.js';
import type { Context, Node } from '../runtime/types.js';
import { GenServer, type GenServerSpec, type ServerName, type ServerPid } from './GenServer.js';
import { markBehaviour } from './internal/lifecycle.js';

const GET = 0;
const UPDATE = 1;
const GET_AND_UPDATE = 2;

/** @internal A request to a value agent: what to do, and the caller's function. */
class Op {
  readonly kind: number;
  readonly fn: (state: unknown) => unknown;
  constructor(kind: number, fn: (state: unknown) => unknown) {
    this.kind = kind;
    this.fn = fn;
  }
}

type Calls = { request: Op; reply: unknown };

/**
 * A value agent's pid, typed by its state: `ValueAgent.get(node, pid, (s) => …)` knows `s`'s type.
 * It is a GenServer's pid too (`GenServer.stop`, `ctx.monitor`, a supervisor's child).
 */
export type ValueAgentPid<S> = ServerPid<Calls, Op> & {
  // invariant: the state type an agent was started with is the one its functions receive
  readonly __state?: (state: S) => S;
};

/** A value agent's typed name (`ValueAgent.name<number>('counter')`): usable wherever its pid is. */
export type ValueAgentName<S> = ServerName<Calls, Op> & {
  readonly __state?: (state: S) => S;
};

/** Where a value agent is found: its typed pid or name, or any pid or registered name (its state type then given or `unknown`). */
export type ValueAgentRef<S> = ValueAgentPid<S> | ValueAgentName<S> | Target;

export interface ValueAgentStartOptions<S> {
  /** Registers the agent under this unique name. */
  name?: string | ValueAgentName<S>;
  /** How long the initial function may take before the start fails (default 5000 ms, on the node's clock). */
  timeout?: number;
}

/** A call's timeout in ms (default 5000, on the node's clock), or `{ timeout, signal }` as for `GenServer.call`. */
export type ValueAgentCallOptions = number | { timeout?: number; signal?: AbortSignal };

/** The agent's state, boxed: a state of any shape (even `{ state, continue }`) is never read by GenServer. */
interface Box {
  value: unknown;
}

const spec: GenServerSpec<Box, Calls, Op, () => unknown> = markBehaviour(
  {
    init(initial) {
      const value = initial();
      // adopted as `await` would: a thenable whose `then` returns nothing is waited for all the same
      return isThenable(value) ? Promise.resolve(value).then((v) => ({ value: v })) : { value };
    },
    handleCall(op, _from, box) {
      if (!isInstance(op, Op)) {
        // a stray GenServer.call: an error reply, not a crash of the agent
        return { reply: { error: new InvalidArgumentError('request', 'a call a ValueAgent takes (use the ValueAgent functions)', op) }, state: box };
      }
      switch (op.kind) {
        case GET:
          return { reply: op.fn(box.value), state: box };
        case UPDATE:
          box.value = held(op.fn(box.value));
          return { reply: undefined, state: box };
        default: {
          const pair = op.fn(box.value);
          // read once, by index (not through its iterator, which may yield other values), guarded:
          // a pair that cannot be read (a revoked proxy, a getter that throws) is named, not a raw TypeError
          let ok = false;
          let reply: unknown;
          let next: unknown;
          try {
            if (Array.isArray(pair) && (pair as unknown[]).length === 2) {
              reply = (pair as unknown[])[0];
              next = (pair as unknown[])[1];
              ok = true;
            }
          } catch (e) {
            throw new InvalidArgumentError('getAndUpdate function result', 'a [reply, newState] pair that can be read', pair, `reading it threw ${thrownText(e)}`);
          }
          if (!ok) throw new InvalidArgumentError('getAndUpdate function result', 'a [reply, newState] pair', pair);
          box.value = held(next);
          return { reply, state: box };
        }
      }
    },
    handleCast(op, box, ctx) {
      if (!isInstance(op, Op)) {
        ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message: op });
        return box;
      }
      box.value = held(op.fn(box.value));
      return box;
    },
  },
  'value_agent',
);

/**
 * A new state as it is; a promise that rejects (an async update function that threw) is held as
 * the state, and marked handled: held, it would otherwise end the OS process as an unhandled
 * rejection. Whoever gets it (a `get` of it) sees the rejection.
 */
function held(state: unknown): unknown {
  if (types.isPromise(state)) state.then(undefined, noop);
  return state;
}

function noop(): void {}

/** A thenable initial value (awaited); a value whose `then` cannot be read (a revoked proxy) is a plain value. */
function isThenable(value: unknown): value is Promise<unknown> {
  if (typeof value !== 'object' || value === null) return false;
  try {
    return typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return false;
  }
}

function checkFn(fn: unknown, argument: string, expected: string): void {
  if (typeof fn !== 'function') throw new InvalidArgumentError(argument, expected, fn);
}

function call(from: Node | Context<any>, agent: Target, op: Op, options: ValueAgentCallOptions | undefined): Promise<unknown> {
  return GenServer.call<Calls>(from, agent, op, options);
}

/**
 * A process holding a value, after Elixir's `Agent` (named `ValueAgent` here: Keel's `Agent` is the
 * agent layer's task runner). Built on GenServer: its functions run inside the agent, one at a time,
 * synchronously; its calls fail as GenServer calls do (`ERR_CALL_TIMEOUT`, `ERR_CALL_EXIT`,
 * `ERR_NOPROC`), and a function that throws crashes the agent (the caller gets `ERR_CALL_EXIT`).
 *
 * @example
 * ```ts
 * const counter = await ValueAgent.start(node, () => 0);
 * await ValueAgent.update(node, counter, (n) => n + 1);
 * const n = await ValueAgent.get(node, counter, (n) => n); // 1
 * ```
 */
export const ValueAgent = {
  /** A typed name for an agent of state `S`. */
  name<S>(text: string): ValueAgentName<S> {
    return Name.of(text) as ValueAgentName<S>;
  },

  /** Starts an agent (not linked) whose state is what `initial` returns (or resolves to), run inside the agent; rejects with `ERR_START_FAILED`. */
  start<S>(from: Node | Context<any>, initial: () => S | Promise<S>, options: ValueAgentStartOptions<NoInfer<S>> = {}): Promise<ValueAgentPid<S>> {
    checkFn(initial, 'initial', 'a function () => the initial state');
    return GenServer.start(from, spec, initial, options as { name?: string }) as Promise<ValueAgentPid<S>>;
  },

  /** Starts an agent linked to the calling process. */
  startLink<S>(from: Context<any>, initial: () => S | Promise<S>, options: ValueAgentStartOptions<NoInfer<S>> = {}): Promise<ValueAgentPid<S>> {
    checkFn(initial, 'initial', 'a function () => the initial state');
    return GenServer.startLink(from, spec, initial, options as { name?: string }) as Promise<ValueAgentPid<S>>;
  },

  /** Resolves with `fn(state)`, run inside the agent. */
  get<S, R>(from: Node | Context<any>, agent: ValueAgentRef<S>, fn: (state: S) => R, options?: ValueAgentCallOptions): Promise<R> {
    checkFn(fn, 'fn', 'a function (state) => reply');
    return call(from, agent, new Op(GET, fn as (state: unknown) => unknown), options) as Promise<R>;
  },

  /** Replaces the state with `fn(state)`; resolves once it has. */
  update<S>(from: Node | Context<any>, agent: ValueAgentRef<S>, fn: (state: S) => S, options?: ValueAgentCallOptions): Promise<void> {
    checkFn(fn, 'fn', 'a function (state) => new state');
    return call(from, agent, new Op(UPDATE, fn as (state: unknown) => unknown), options) as Promise<void>;
  },

  /** `fn(state)` returns `[reply, newState]`: the state becomes `newState`, the call resolves with `reply`. */
  getAndUpdate<S, R>(from: Node | Context<any>, agent: ValueAgentRef<S>, fn: (state: S) => readonly [R, S], options?: ValueAgentCallOptions): Promise<R> {
    checkFn(fn, 'fn', 'a function (state) => [reply, new state]');
    return call(from, agent, new Op(GET_AND_UPDATE, fn as (state: unknown) => unknown), options) as Promise<R>;
  },

  /** Replaces the state with `fn(state)` without waiting (dropped with `keel.message.dropped` if the agent is dead). */
  cast<S>(from: Node | Context<any>, agent: ValueAgentRef<S>, fn: (state: S) => S): void {
    checkFn(fn, 'fn', 'a function (state) => new state');
    GenServer.cast<Op>(from, agent, new Op(UPDATE, fn as (state: unknown) => unknown));
  },

  /** Stops the agent with `reason` (default `'normal'`); as `GenServer.stop` (timeout default Infinity). */
  stop(from: Node | Context<any>, agent: ValueAgentRef<any>, reason: ExitReason = 'normal', timeout = Infinity): Promise<void> {
    return GenServer.stop(from, agent, reason, timeout);
  },
};
