/**
 * Errors of the OTP layer: calls (timeouts, the server's exit, deadlocks, full mailboxes, aborts),
 * behaviours that fail to start, tasks and dynamic supervisors.
 */
import { KeelError } from './base.js';

/** A call got no reply within its timeout. The request stays with the server; a late reply is discarded. */
export class CallTimeoutError extends KeelError {
  /** The server as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the server was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  readonly timeoutMs: number;
  constructor(target: string, timeoutMs: number, registeredName?: string) {
    super('ERR_CALL_TIMEOUT', `no reply from ${target} within ${timeoutMs} ms`);
    this.target = target;
    this.registeredName = registeredName;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Where a call stood when its server exited: still `'queued'` in the server's mailbox behind other
 * messages (the server never saw it), being `'handling'` (the server's handler had taken it and was
 * running), or `'deferred'` (its `handleCall` returned `{ noreply }`: the server owed a later reply).
 */
export type CallStage = 'queued' | 'handling' | 'deferred';

const STAGE_TEXT: Record<CallStage, string> = {
  queued: 'exited while this call was queued (not yet handled)',
  handling: 'exited while handling this call',
  deferred: 'exited before replying to this call (its handler had deferred the reply)',
};

/**
 * The server exited before it replied; `reason` is its exit reason. `stage` tells the call the
 * server died handling (`'handling'`: the culprit, for a crash) from the calls that were queued
 * behind it (`'queued'`: bystanders) and those it had deferred (`'deferred'`).
 */
export class CallExitError extends KeelError {
  /** The server as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the server was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  readonly reason: unknown;
  /** Where the call stood when the server exited; undefined when it was not a call (`GenServer.stop`). */
  readonly stage: CallStage | undefined;
  constructor(target: string, reason: unknown, reasonText: string, options?: { stage?: CallStage | undefined; registeredName?: string | undefined }) {
    const stage = options?.stage;
    super('ERR_CALL_EXIT', `${target} ${stage === undefined ? 'exited before replying' : STAGE_TEXT[stage]}: ${reasonText}`, { cause: reason });
    this.target = target;
    this.registeredName = options?.registeredName;
    this.reason = reason;
    this.stage = stage;
  }
}

/** A process waited on itself (a GenServer calling itself, a process sending itself a `'handled'` message). */
export class DeadlockError extends KeelError {
  constructor(pid: string, what: string) {
    super('ERR_DEADLOCK', `${pid} ${what}: it would wait for itself forever`);
  }
}

/**
 * A behaviour's `init` failed (threw, rejected or exited); `reason` is why. A supervisor whose child
 * failed to start has `reason` `{ shutdown: { failed_to_start_child: id, reason } }` (its exit
 * reason, as OTP's) and `childPath`.
 */
export class StartError extends KeelError {
  readonly reason: unknown;
  /**
   * For a supervisor whose child failed to start: the ids from its child down to the one whose start
   * failed (`['inner', 'db']` when its child supervisor `'inner'` failed because of its child `'db'`);
   * undefined otherwise.
   */
  readonly childPath: readonly string[] | undefined;
  constructor(what: string, reason: unknown, reasonText: string, options?: { childPath?: readonly string[] }) {
    super('ERR_START_FAILED', `${what} failed to start: ${reasonText}`, { cause: reason });
    this.reason = reason;
    this.childPath = options?.childPath;
  }
}

/** A bounded mailbox refused a request that must not be dropped silently. */
export class MailboxFullError extends KeelError {
  /** The receiver as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the receiver was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  constructor(target: string, registeredName?: string) {
    super('ERR_MAILBOX_FULL', `the mailbox of ${target} is full; the request was not delivered`);
    this.target = target;
    this.registeredName = registeredName;
  }
}

/** An operation was aborted through its `signal`; `reason` is the signal's reason. */
export class AbortedError extends KeelError {
  readonly reason: unknown;
  constructor(what: string, reason: unknown) {
    super('ERR_ABORTED', `${what} was aborted`, { cause: reason });
    this.reason = reason;
  }
}

/** `Task.await` got no result within its timeout. */
export class TaskTimeoutError extends KeelError {
  constructor(pid: string, timeoutMs: number) {
    super('ERR_TASK_TIMEOUT', `task ${pid} did not finish within ${timeoutMs} ms`);
  }
}

/** A task exited without a result (it crashed or was killed); `reason` is its exit reason. */
export class TaskExitError extends KeelError {
  readonly reason: unknown;
  constructor(pid: string, reason: unknown, reasonText: string) {
    super('ERR_TASK_EXIT', `task ${pid} exited: ${reasonText}`, { cause: reason });
    this.reason = reason;
  }
}

/** A DynamicSupervisor already runs its `maxChildren`. */
export class MaxChildrenError extends KeelError {
  readonly maxChildren: number;
  constructor(supervisor: string, maxChildren: number) {
    super('ERR_MAX_CHILDREN', `${supervisor} already runs its maximum of ${maxChildren} children`);
    this.maxChildren = maxChildren;
  }
}
