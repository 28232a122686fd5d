// The state machine's public types (gen_statem's events, actions, results and spec), re-exported by
// StateMachine.ts, and the loosest forms of them its runtime works with.
import type { Context } from '../../runtime/types.js';
import type { ExitReason } from '../../runtime/messages.js';
import type { CallProtocol } from '../GenServer.js';
import type { From } from './calls.js';

/**
 * What a state machine's callback is given, after `gen_statem`'s event types: a call (reply with a
 * `reply` action or `StateMachine.reply`), a cast, any other message (`info`), an event inserted by
 * a `next_event` action (`internal`), a fired timeout (`timeout` is the event timeout), or, with
 * `stateEnter`, the state enter call (`enter`, with the state it came from).
 */
export type StateMachineEvent<State, P extends CallProtocol = CallProtocol, Cast = never, Msg = never> =
  | { readonly type: 'call'; readonly request: P['request']; readonly from: From<P['reply']> }
  | { readonly type: 'cast'; readonly content: Cast }
  | { readonly type: 'info'; readonly content: unknown }
  | { readonly type: 'internal'; readonly content: Msg }
  | { readonly type: 'timeout'; readonly content: Msg }
  | { readonly type: 'state_timeout'; readonly content: Msg }
  | { readonly type: 'generic_timeout'; readonly name: string; readonly content: Msg }
  | { readonly type: 'enter'; readonly oldState: State };

/**
 * A transition action, after `gen_statem`'s. `ms` is on the node's clock; `Infinity` starts no timer
 * (and, like `cancel: true`, cancels the running one of that kind or name).
 */
export type StateMachineAction<P extends CallProtocol = CallProtocol, Cast = never, Msg = never> =
  | 'postpone'
  | 'hibernate'
  | { readonly type: 'reply'; readonly from: From<any>; readonly reply: P['reply'] }
  | { readonly type: 'postpone' }
  | { readonly type: 'hibernate' }
  | { readonly type: 'next_event'; readonly kind?: 'internal'; readonly content: Msg }
  | { readonly type: 'next_event'; readonly kind: 'cast'; readonly content: Cast }
  | { readonly type: 'next_event'; readonly kind: 'info'; readonly content: unknown }
  /** A call event with a call's `from` (`{next_event, {call, From}, Request}`): answered when it is handled. */
  | { readonly type: 'next_event'; readonly kind: 'call'; readonly from: From<P['reply']>; readonly content: P['request'] }
  | { readonly type: 'timeout' | 'state_timeout'; readonly ms: number; readonly content: Msg }
  | { readonly type: 'timeout' | 'state_timeout'; readonly cancel: true }
  | { readonly type: 'generic_timeout'; readonly name: string; readonly ms: number; readonly content: Msg }
  | { readonly type: 'generic_timeout'; readonly name: string; readonly cancel: true };

/**
 * What a state callback returns (`data` omitted: the data is kept): `next_state`, `keep_state`,
 * `repeat_state` (the state enter call runs again) or `stop` (whose only actions may be replies).
 */
export type Transition<State, Data, A = StateMachineAction> =
  | { readonly nextState: State; readonly data?: Data; readonly actions?: readonly A[] }
  | { readonly keepState: true; readonly data?: Data; readonly actions?: readonly A[] }
  | { readonly repeatState: true; readonly data?: Data; readonly actions?: readonly A[] }
  | { readonly stop: ExitReason; readonly data?: Data; readonly actions?: readonly A[] };

export type Result<State, Data, P extends CallProtocol, Cast, Msg> =
  | Transition<State, Data, StateMachineAction<P, Cast, Msg>>
  | Promise<Transition<State, Data, StateMachineAction<P, Cast, Msg>>>;

/** What `init` returns: the first state, the data, and actions (all but `postpone`). */
export interface StateMachineInit<State, Data, A = StateMachineAction> {
  readonly state: State;
  readonly data: Data;
  readonly actions?: readonly A[];
}

export interface CommonSpec<State, Data, P extends CallProtocol, Cast, Msg, Arg> {
  init(arg: Arg, ctx: Context<any>): StateMachineInit<State, Data, StateMachineAction<P, Cast, Msg>> | Promise<StateMachineInit<State, Data, StateMachineAction<P, Cast, Msg>>>;
  /** Calls the state callback with an `enter` event on every state change, `repeatState`, and after `init` (`gen_statem`'s `state_enter`). */
  stateEnter?: boolean;
  /** Runs on `stop` results, `StateMachine.stop`, a parent's exit signal while trapping exits, and after a callback throws. */
  terminate?(reason: ExitReason, state: State, data: Data): void | Promise<void>;
  /** What `Sys.getStatus` shows of `{ state, data }` (to redact secrets); default: itself. */
  formatStatus?(status: { state: State; data: Data }): unknown;
}

/** `handle_event` mode: one callback for every state. */
export interface HandleEventSpec<State, Data, P extends CallProtocol = CallProtocol, Cast = never, Msg = never, Arg = any>
  extends CommonSpec<State, Data, P, Cast, Msg, Arg> {
  handleEvent(event: StateMachineEvent<State, P, Cast, Msg>, state: State, data: Data, ctx: Context<any>): Result<State, Data, P, Cast, Msg>;
  states?: undefined;
}

/** State functions mode: one callback per state (the states are strings). */
export interface StateFunctionsSpec<State extends string, Data, P extends CallProtocol = CallProtocol, Cast = never, Msg = never, Arg = any>
  extends CommonSpec<State, Data, P, Cast, Msg, Arg> {
  states: { readonly [K in State]: (event: StateMachineEvent<State, P, Cast, Msg>, data: Data, ctx: Context<any>) => Result<State, Data, P, Cast, Msg> };
  handleEvent?: undefined;
}

/** A state machine's callbacks, after Erlang's `gen_statem`: `handleEvent` or `states`, never both. */
export type StateMachineSpec<State, Data, P extends CallProtocol = CallProtocol, Cast = never, Msg = never, Arg = any> =
  | HandleEventSpec<State, Data, P, Cast, Msg, Arg>
  | ([State] extends [string] ? StateFunctionsSpec<State, Data, P, Cast, Msg, Arg> : never);

/** @internal */
export type AnySpec = CommonSpec<unknown, unknown, CallProtocol, unknown, unknown, unknown> & {
  handleEvent?: (event: Ev, state: unknown, data: unknown, ctx: Context<any>) => unknown;
  states?: Record<string, (event: Ev, data: unknown, ctx: Context<any>) => unknown>;
};
/** @internal */
export type Ev = StateMachineEvent<unknown, CallProtocol, unknown, unknown>;
/** @internal */
export type TimeoutKind = 'timeout' | 'state_timeout' | 'generic_timeout';
