/**
 * Errors of the runtime: processes and their names, the node and its services, handlers and what
 * they throw, the test kit's probes and leak audit.
 */
import { inspect } from 'node:util';
import { describe, isError, KeelError } from './base.js';

/**
 * The target process is dead, unknown or belongs to another node or creation, or the target was a
 * name no process holds (then `registeredName` is that name, and the message says so).
 */
export class NoProcError extends KeelError {
  /** The target as the message names it (`<keel-1.4>`, `'cache'`). */
  readonly target: string;
  /** The registered name the target was given as, when it was one. */
  readonly registeredName: string | undefined;
  /**
   * `what` says what failed (`'cannot call a process that is not alive'`): the message is
   * `what: target`. With `unregistered`, the target was a name nobody holds and `what` is the
   * operation (`'cannot call'`): the message is `what: no process is registered under the name target`,
   * followed by `; did you mean 'cache'?` when `meant` names a registered name it likely misspells.
   */
  constructor(target: string, what = 'no such process', options?: { registeredName?: string | undefined; unregistered?: boolean; meant?: string | undefined }) {
    super(
      'ERR_NOPROC',
      options?.unregistered === true
        ? `${what}: no process is registered under the name ${target}${options.meant === undefined ? '' : `; did you mean ${quotedName(options.meant)}?`}`
        : `${what}: ${target}`,
    );
    this.target = target;
    this.registeredName = options?.registeredName;
  }
}

/** A unique name is already registered to another process. */
export class NameTakenError extends KeelError {
  readonly registeredName: string;
  constructor(name: string, owner: string) {
    super('ERR_NAME_TAKEN', `the name ${quotedName(name)} is already registered to ${owner}; unregister it first or pick another name`);
    this.registeredName = name;
  }
}

/** The longest part of a name an error's message quotes (a name has no length limit; a message should). */
const NAME_IN_MESSAGE = 200;

/** A name quoted as an error's message quotes it: whole up to {@link NAME_IN_MESSAGE} characters, else its start and its length. */
function quotedName(name: string): string {
  return name.length <= NAME_IN_MESSAGE ? `'${name}'` : `'${name.slice(0, NAME_IN_MESSAGE)}…' (${name.length} characters)`;
}

/** A name under `keel.` is Keel's own: its services and components find each other by such names. */
export class ReservedNameError extends KeelError {
  readonly registeredName: string;
  constructor(name: string, operation: string) {
    super('ERR_RESERVED_NAME', `cannot ${operation} ${quotedName(name)}: names under 'keel.' are reserved for Keel's own services and components; pick a name outside 'keel.'`);
    this.registeredName = name;
  }
}

/** A process that already has a unique name was given a second one (as on the BEAM, one name per process). */
export class AlreadyRegisteredError extends KeelError {
  constructor(pid: string, name: string) {
    super('ERR_ALREADY_REGISTERED', `${pid} is already registered as ${quotedName(name)}; a process has at most one unique name`);
  }
}

/** A context was used after its process exited (a zombie continuation), for an operation that must fail loudly. */
export class ProcessExitedError extends KeelError {
  readonly pid: string;
  constructor(pid: string, operation: string) {
    super('ERR_PROCESS_EXITED', `${pid} has exited; \`ctx.${operation}\` cannot run in a process that is no longer alive`);
    this.pid = pid;
  }
}

/** The node has shut down; it spawns nothing more. */
export class NodeStoppedError extends KeelError {
  constructor(node: string, operation: string) {
    super('ERR_NODE_STOPPED', `node ${node} has shut down; \`${operation}\` is no longer possible`);
  }
}

/** `node.idle({ timeoutMs })` gave up; `busy` names the processes that were still working. */
export class IdleTimeoutError extends KeelError {
  readonly busy: readonly string[];
  constructor(node: string, timeoutMs: number, busy: readonly string[], detail: string) {
    super(
      'ERR_IDLE_TIMEOUT',
      `node ${node} was not idle after ${timeoutMs} ms: ${busy.length > 0 ? `busy ${busy.join(', ')}` : detail}`,
    );
    this.busy = busy;
  }
}

/** A test probe waited longer than its timeout for a message. */
export class ReceiveTimeoutError extends KeelError {
  /** What the receive waited for: its predicate's name, or its source text. */
  readonly expected: string;
  /** The messages the probe had received and no receive had taken when it timed out, oldest first. */
  readonly unmatched: readonly unknown[];
  /**
   * @param expected what the receive waited for (its predicate's name or source)
   * @param unmatched the messages received and not taken (the message describes the first 10)
   */
  constructor(pid: string, timeoutMs: number, expected: string, unmatched: readonly unknown[]) {
    const n = unmatched.length;
    const shown = unmatched.slice(0, 10).map(inspectMessage).join(', ');
    const arrived = n === 0 ? 'no message received and not taken' : `${n} message${n === 1 ? '' : 's'} received and not taken: ${shown}${n > 10 ? `, ... (${n - 10} more)` : ''}`;
    super('ERR_RECEIVE_TIMEOUT', `probe ${pid} received no message matching ${expected} within ${timeoutMs} ms; ${arrived}`);
    this.expected = expected;
    this.unmatched = unmatched;
  }
}

/**
 * A probe's `fishForMessage` waited longer than its timeout for a message its predicate accepts:
 * `ERR_RECEIVE_TIMEOUT` as a receive's, also naming how many messages it skipped (and discarded) and
 * the last of them.
 */
export class FishTimeoutError extends ReceiveTimeoutError {
  /** How many messages the predicate refused (each discarded) before the timeout. */
  readonly skipped: number;
  /** The last message skipped; undefined when none was. */
  readonly lastSkipped: unknown;
  constructor(pid: string, timeoutMs: number, expected: string, unmatched: readonly unknown[], skipped: number, lastSkipped: unknown) {
    super(pid, timeoutMs, expected, unmatched);
    this.skipped = skipped;
    this.lastSkipped = lastSkipped;
    const skips = skipped === 0 ? 'skipped no message' : `skipped ${skipped} message${skipped === 1 ? '' : 's'}, the last: ${inspectMessage(lastSkipped)}`;
    this.message = `probe ${pid} fished for a message matching ${expected} for ${timeoutMs} ms and found none; ${skips}`;
  }
}

/**
 * A probe's `expectNoMessage` saw a message (one its `match` accepts, when given) arrive within its
 * window, or already there: `received` is that message.
 */
export class UnexpectedMessageError extends KeelError {
  /** The message that came. */
  readonly received: unknown;
  /** What no message was to match: `match`'s name or source, or `(any message)`. */
  readonly refuted: string;
  /** The window, in ms. */
  readonly within: number;
  /** @param waiting false when the message was there, received and not taken, before the wait began */
  constructor(pid: string, within: number, refuted: string, received: unknown, waiting: boolean) {
    const what = refuted === '(any message)' ? 'no message' : `no message matching ${refuted}`;
    super('ERR_UNEXPECTED_MESSAGE', `probe ${pid} expected ${what} within ${within} ms, got ${inspectMessage(received)}${waiting ? '' : ' (received before the wait, not taken)'}`);
    this.received = received;
    this.refuted = refuted;
    this.within = within;
  }
}

/**
 * A message as a test failure shows it: short, on one line; never throws and runs none of its code
 * (no getter, no proxy trap; a cycle is shown as one).
 */
function inspectMessage(message: unknown): string {
  try {
    return inspect(message, { depth: 2, breakLength: Infinity, maxArrayLength: 10, maxStringLength: 100, customInspect: false, getters: false, showProxy: false });
  } catch {
    return describe(message);
  }
}

/** `init` returned something that is not a message handler. */
export class HandlerReturnedError extends KeelError {
  constructor(pid: string, given: unknown) {
    super('ERR_HANDLER_RETURNED', `init of ${pid} must return a message handler function, got ${describe(given)}`);
  }
}

/** A handler threw or rejected with a value that is not an Error; the value is kept in `value`. */
export class ThrownValueError extends KeelError {
  readonly value: unknown;
  constructor(value: unknown) {
    super('ERR_THROWN_VALUE', `a non-Error value was thrown: ${describe(value)}`, { cause: value });
    this.value = value;
  }
}

/** Wraps a thrown value into an Error, keeping Errors as they are; never throws, whatever the value. */
export function toError(value: unknown): Error {
  return isError(value) ? value : new ThrownValueError(value);
}

/** `expectNoLeaks` found something a dead process left behind, or a suspected monitor leak. */
export class LeaksFoundError extends KeelError {
  readonly leaks: readonly string[];
  constructor(node: string, leaks: readonly string[]) {
    super('ERR_LEAKS_FOUND', `node ${node} has ${leaks.length} leak(s):\n${leaks.map((l) => `  - ${l}`).join('\n')}`);
    this.leaks = leaks;
  }
}

/** A node service: the monitor manager (`node.monitors`) or the dead letter queue (`node.deadLetters`). */
export type ServiceName = 'monitors' | 'deadLetters';

/**
 * Why a node service is not running: `'disabled'`, the node was created with `services: false`;
 * `'node_stopped'`, the node has shut down (the service stopped with it).
 */
export type ServiceUnavailableReason = 'disabled' | 'node_stopped';

const SERVICE_TEXT: Record<ServiceName, string> = { monitors: 'monitor manager', deadLetters: 'dead letter queue' };

/**
 * A method of a node service was called while the service is not running, as a `gen_server:call`
 * to a process that is not there exits with `noproc`: thrown by the monitor manager's methods,
 * the rejection of the dead letter queue's. `node.monitors.available` and
 * `node.deadLetters.available` tell beforehand.
 */
export class ServiceUnavailableError extends KeelError {
  /** The service called: `'monitors'` or `'deadLetters'`. */
  readonly service: ServiceName;
  /** Why it is not running: `'disabled'` (`services: false`) or `'node_stopped'` (the node has shut down). */
  readonly reason: ServiceUnavailableReason;
  /** The method called, as `deadLetters.stats`. */
  readonly operation: string;
  constructor(service: ServiceName, reason: ServiceUnavailableReason, operation: string) {
    const what = SERVICE_TEXT[service];
    super(
      'ERR_SERVICE_UNAVAILABLE',
      reason === 'disabled'
        ? `\`node.${operation}\` cannot run: the node was created with \`services: false\`, so it has no ${what}; create the node without \`services: false\`, or check \`node.${service}.available\` first`
        : `\`node.${operation}\` cannot run: the node has shut down, and its ${what} with it; check \`node.${service}.available\` first`,
    );
    this.service = service;
    this.reason = reason;
    this.operation = operation;
  }
}
