import { types } from 'node:util';
import { InvalidArgumentError, toError } from '../../errors.js';
import { isDead, kernelOfProcess, NO_HELD, type Proc } from '../../runtime/kernel.js';
import { isExit } from '../../runtime/messages.js';
import { isInstance } from '../../runtime/safe.js';
import type { Pid } from '../../runtime/Pid.js';
import { PendingCall } from './calls.js';
import { componentOf } from './lifecycle.js';
import { nextSlice, SLICE } from './slice.js';
import { isThenable } from './thenable.js';

/** @internal The system operations of Erlang's `sys` module that Keel's servers answer. */
export type SysOp = 'get_state' | 'get_status' | 'suspend' | 'resume' | 'replace_state' | 'observe';

/** @internal A system request: the request of a call that a server answers before its own callbacks. */
export class SysRequest {
  readonly op: SysOp;
  readonly fn: ((state: any) => unknown) | undefined;
  constructor(op: SysOp, fn?: (state: any) => unknown) {
    this.op = op;
    this.fn = fn;
  }
}

/** What `Sys.getStatus` answers. */
export interface ServerStatus {
  readonly pid: Pid;
  /** The behaviour the server runs: `'GenServer'` or `'StateMachine'`. */
  readonly behaviour: string;
  readonly status: 'running' | 'suspended';
  /** Its parent: the process that started it, or `'node'`. */
  readonly parent: Pid | 'node';
  /** Messages waiting in its mailbox, and (while suspended) those held until it resumes: `node.info`'s `mailboxLength`. */
  readonly queued: number;
  /** Its state as `formatStatus` shows it (the state itself without one; `{ state, data }` for a StateMachine). */
  readonly state: unknown;
}

/**
 * @internal How a behaviour built on the GenServer server shows its state to `sys` (a StateMachine
 * shows `{ state, data }`, not its machine): a spec carries it under {@link SYS_VIEW}.
 */
export interface SysView {
  readonly behaviour: string;
  get(state: unknown): unknown;
  /** Replaces the shown state with `next` (what the `replaceState` function returned); returns the state to keep. */
  set(state: unknown, next: unknown): unknown;
}

/**
 * @internal The key of a spec's own test of what a bounded server takes past the messages it holds
 * (default: the server's `admitsWhileSuspended`, its system calls and stops); a StateMachine's also
 * takes its own timeouts, past what it holds or postponed: a state timeout may end the postponing.
 */
export const ADMITS: unique symbol = Symbol('keel.admits');

/** @internal The key of a spec's {@link SysView}. */
export const SYS_VIEW: unique symbol = Symbol('keel.sysView');

const PLAIN: SysView = { behaviour: 'GenServer', get: (s) => s, set: (_s, next) => next };

/** @internal What the server gives the system operations. */
export interface SysHost {
  readonly ctx: Proc;
  readonly parent: Pid | 'node';
  state: unknown;
  readonly spec: { readonly formatStatus?: ((status: any) => unknown) | undefined; readonly [SYS_VIEW]?: SysView };
  /** True while suspended: the messages that wait are held by the kernel ({@link holdWhileSuspended}). */
  suspended: boolean;
  readonly handle: (msg: unknown) => void | Promise<void>;
}

/** @internal True for a call carrying a system request. */
export function isSysCall(call: PendingCall): boolean {
  try {
    return call.request instanceof SysRequest;
  } catch {
    return false; // a revoked proxy, say: the server's own callbacks deal with it
  }
}

/**
 * @internal True for the exit signal of a server's parent (which runs its `terminate`): its parent's,
 * or the node's for a server the node started or while the node shuts down.
 */
export function isParentExit(ctx: Proc, parent: Pid | 'node', msg: unknown): boolean {
  return isExit(msg) && (msg.from === parent || (msg.from === 'node' && (parent === 'node' || kernelOfProcess(ctx).stopping)));
}

/**
 * @internal While suspended, holds `msg` unless it is a system call, a stop or its parent's exit
 * signal ({@link isParentExit}: a suspended server still obeys it, as in OTP); true when held. The
 * kernel keeps it: held messages count against a bounded mailbox's capacity, past which only
 * `admits`'s messages (those a suspended server still answers) get in.
 */
export function holdWhileSuspended(host: SysHost, msg: unknown, isStop: boolean, admits: (message: unknown) => boolean): boolean {
  if (isStop) return false;
  try {
    if (msg instanceof PendingCall) {
      if (isSysCall(msg)) return false;
      msg.held();
    } else if (isParentExit(host.ctx, host.parent, msg)) return false;
  } catch {
    // an unreadable message (a revoked proxy) is held like any other
  }
  // a supervised message is not acknowledged 'handled' while it waits: it is when handled on resume,
  // and is 'down' if the server dies first (or 'dropped' if a drop_oldest mailbox evicts it)
  kernelOfProcess(host.ctx).hold(host.ctx, msg, admits);
  return true;
}

/** `value`, unless it is a thenable: then `ERR_INVALID_ARGUMENT` (a rejected promise taken first, never an unhandled rejection). */
function notPromise(value: unknown, argument: string, expected: string): unknown {
  if (!isThenable(value)) return value;
  if (types.isPromise(value)) value.then(undefined, () => undefined);
  throw new InvalidArgumentError(argument, expected, value);
}

/**
 * What a failed `formatStatus` threw, as text; never throws: an error that cannot be printed (a
 * `message` getter or a `toString` that throws) must not crash the server it was to describe.
 */
function failureText(e: unknown): string {
  try {
    return String(toError(e));
  } catch {
    return 'a value that cannot be inspected';
  }
}

/** @internal Answers a system call. */
export function handleSys(host: SysHost, call: PendingCall): void | Promise<void> {
  const req = call.request as SysRequest;
  const view = host.spec[SYS_VIEW] ?? PLAIN;
  switch (req.op) {
    case 'get_state':
      call.reply(view.get(host.state));
      return;
    case 'get_status': {
      let state = view.get(host.state);
      const format = host.spec.formatStatus;
      if (format !== undefined) {
        try {
          state = notPromise(format.call(host.spec, state), 'formatStatus result', 'the state to show, not a promise (formatStatus runs synchronously)');
        } catch (e) {
          // as OTP: a formatStatus that fails shows the failure, never the state it meant to hide
          state = { formatStatusFailed: failureText(e) };
        }
      }
      const status: ServerStatus = {
        pid: host.ctx.self,
        behaviour: view.behaviour,
        status: host.suspended ? 'suspended' : 'running',
        parent: host.parent,
        queued: host.ctx.size + kernelOfProcess(host.ctx).heldCount(host.ctx),
        state,
      };
      call.reply(status);
      return;
    }
    case 'observe': {
      // an agent-layer component's snapshot for an observer (undefined for any other server)
      const view = componentOf(host.spec);
      if (view === undefined) {
        call.reply(undefined);
        return;
      }
      try {
        call.reply(view.observe(host.state));
      } catch (e) {
        call.fail(toError(e));
      }
      return;
    }
    case 'suspend':
      host.suspended = true;
      call.reply(undefined);
      return;
    case 'replace_state': {
      try {
        // a state is what fn returns, never a promise of one (the server would hold the promise)
        const next = notPromise(req.fn!(view.get(host.state)), 'replaceState result', 'a state, not a promise (fn runs synchronously)');
        host.state = view.set(host.state, next);
      } catch (e) {
        // the server keeps its state and lives on; the caller gets the failure
        call.fail(toError(e));
        return;
      }
      call.reply(view.get(host.state));
      return;
    }
    case 'resume': {
      const suspended = host.suspended;
      host.suspended = false;
      call.reply(undefined);
      if (suspended) return replay(host);
      return;
    }
  }
}

/**
 * Handles the messages held while suspended, in their order, before the mailbox's next; a long
 * backlog in slices, as the scheduler runs a long mailbox: between two, the node's other processes
 * run (and may kill the server: it then handles no more). Each is taken from the kernel as it is
 * handled: until then it still counts against a bounded mailbox (and may be evicted from it).
 */
function replay(host: SysHost): void | Promise<void> {
  const node = kernelOfProcess(host.ctx);
  for (let n = 0; ; n++) {
    // suspended again by a held message's handling: the rest stays held, in order, before anything newer
    if (isDead(host.ctx) || host.suspended) return;
    if (n >= SLICE) return nextSlice().then(() => replay(host));
    const m = node.takeHeld(host.ctx); // a supervised one is in flight again
    if (m === NO_HELD) return;
    if (isInstance(m, PendingCall)) m.taken();
    const r = host.handle(m);
    // settled as the scheduler settles a handled message (a crash settled it at the death)
    if (r !== undefined && typeof (r as Promise<void>).then === 'function') {
      return r.then(() => {
        if (!isDead(host.ctx)) node.settleInflight(host.ctx);
        return replay(host);
      });
    }
    if (!isDead(host.ctx)) node.settleInflight(host.ctx);
  }
}
