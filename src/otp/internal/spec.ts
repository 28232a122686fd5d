import type { ExitReason } from '../../runtime/messages.js';
import type { Context } from '../../runtime/types.js';
import type { From } from './calls.js';
import type { ADMITS, SYS_VIEW, SysView } from './sys.js';

// A GenServer's spec, its callbacks and what they return: the types the server loop (./server.ts)
// runs and GenServer.ts starts, here so that neither imports the other for them (GenServer.ts
// exports them).

/** A server's calls: each request type with the reply it gets. */
export type CallProtocol = { request: unknown; reply: unknown };

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
  /** @internal What a bounded server takes past the messages it holds (see `ADMITS`). */
  readonly [ADMITS]?: (message: unknown) => boolean;
}
