import { originOf } from '../runtime/kernel.js';
import { isPid, type Target } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { InvalidArgumentError } from '../errors.js';
import { callProcess, validateTimeout } from './internal/calls.js';
import { type ServerStatus, type SysOp, SysRequest } from './internal/sys.js';

export type { ServerStatus } from './internal/sys.js';

function sysCall(from: Node | Context<any>, server: Target, op: SysOp, timeout: number, fn?: (state: any) => unknown): Promise<unknown> {
  const { node, caller } = originOf(from);
  validateTimeout(timeout);
  // a system request is Keel's own object, answered by a server of this node: it does not travel
  // (the cluster would refuse it as a message that is not plain data, naming an internal class)
  if (isPid(server) && server.node !== node.name) {
    throw new InvalidArgumentError('server', "a server of this node (a Sys call does not reach another node's processes)", server, `${String(server)} is a process of node ${server.node}`);
  }
  return callProcess(node, caller, server, new SysRequest(op, fn), timeout, undefined);
}

/**
 * Introspection of a running GenServer or StateMachine, after Erlang's `sys` module. Each function
 * is a call: it fails as `GenServer.call` does (`ERR_NOPROC`, `ERR_CALL_TIMEOUT` after `timeout`,
 * default 5000 ms on the node's clock, `ERR_CALL_EXIT`, `ERR_DEADLOCK`), and a server answers it
 * between two of its callbacks, even while suspended. A StateMachine's state is `{ state, data }`.
 * It reaches the servers of its own node only: a pid of another node throws `ERR_INVALID_ARGUMENT`.
 */
export const Sys = {
  /** The server's state (a StateMachine's `{ state, data }`), as `sys:get_state/2`. */
  getState<S = unknown>(from: Node | Context<any>, server: Target, timeout = 5000): Promise<S> {
    return sysCall(from, server, 'get_state', timeout) as Promise<S>;
  },

  /** The server's status, its state shown through the spec's `formatStatus` if it has one, as `sys:get_status/2`. */
  getStatus(from: Node | Context<any>, server: Target, timeout = 5000): Promise<ServerStatus> {
    return sysCall(from, server, 'get_status', timeout) as Promise<ServerStatus>;
  },

  /**
   * Suspends the server: until `resume` it answers only system calls (and obeys a stop or its
   * parent's exit signal); everything else it is sent (calls, casts, messages) waits, in order.
   */
  suspend(from: Node | Context<any>, server: Target, timeout = 5000): Promise<void> {
    return sysCall(from, server, 'suspend', timeout) as Promise<void>;
  },

  /** Resumes a suspended server: it handles what waited, in order, then its mailbox. Resuming a running server does nothing. */
  resume(from: Node | Context<any>, server: Target, timeout = 5000): Promise<void> {
    return sysCall(from, server, 'resume', timeout) as Promise<void>;
  },

  /**
   * Replaces the server's state with `fn(state)` (a StateMachine's: `fn({ state, data })` returns
   * `{ state, data }`) and resolves with the new state, as `sys:replace_state/3`. If `fn` throws,
   * the server keeps its state and lives on, and the call rejects with what `fn` threw; so too, with
   * `ERR_INVALID_ARGUMENT`, if it returns a promise (`fn` runs synchronously).
   */
  replaceState<S>(from: Node | Context<any>, server: Target, fn: (state: S) => S, timeout = 5000): Promise<S> {
    if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (state) => new state', fn);
    return sysCall(from, server, 'replace_state', timeout, fn) as Promise<S>;
  },
};

/**
 * @internal An agent-layer component's snapshot (what its `markComponent` view shows), for the
 * observer: a system call, answered between two of its callbacks; undefined from any other server.
 */
export function sysObserve(from: Node | Context<any>, server: Target, timeout = 5000): Promise<unknown> {
  return sysCall(from, server, 'observe', timeout);
}
