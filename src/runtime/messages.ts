import { describe, isError, plainChain } from '../errors.js';
import type { Pid, Ref } from './Pid.js';

/**
 * Why a process exited. `'normal'`, `'shutdown'` and `{ shutdown }` are clean exits: they do not
 * kill linked processes that do not trap exits (`'normal'`), or are the expected end of a
 * supervised child (`'shutdown'`, `{ shutdown }`). An `Error` is a crash.
 */
export type ExitReason = 'normal' | 'shutdown' | { shutdown: unknown } | 'killed' | 'noproc' | 'noconnection' | Error;

/** Sent to a monitor's owner when the monitored process exits; exactly once per monitor. */
export interface Down {
  readonly kind: 'down';
  readonly ref: Ref;
  /** The monitored process (for a name that was not registered, the node's placeholder pid `<node.0>`). */
  readonly pid: Pid;
  /** The monitored name, when the monitor was set up on a name. */
  readonly name?: string | undefined;
  readonly reason: ExitReason;
}

/** Received instead of dying by a process that traps exits. `from` is `'node'` for the node's own signals. */
export interface Exit {
  readonly kind: 'exit';
  readonly from: Pid | 'node';
  readonly reason: ExitReason;
}

/** The messages the runtime itself sends; recognise them with {@link isDown} and {@link isExit}. */
export type SystemMessage = Down | Exit;

/** @internal */
export class DownMessage implements Down {
  // the brand: checked with `#down in value`, which never runs a proxy's traps and never throws
  readonly #down = true;
  readonly kind = 'down' as const;
  readonly ref: Ref;
  readonly pid: Pid;
  readonly name: string | undefined;
  readonly reason: ExitReason;
  constructor(ref: Ref, pid: Pid, reason: ExitReason, name: string | undefined) {
    this.ref = ref;
    this.pid = pid;
    this.reason = reason;
    this.name = name;
  }
  static is(value: unknown): value is DownMessage {
    return typeof value === 'object' && value !== null && #down in value;
  }
}

/** @internal */
export class ExitMessage implements Exit {
  readonly #exit = true;
  readonly kind = 'exit' as const;
  readonly from: Pid | 'node';
  readonly reason: ExitReason;
  constructor(from: Pid | 'node', reason: ExitReason) {
    this.from = from;
    this.reason = reason;
  }
  static is(value: unknown): value is ExitMessage {
    return typeof value === 'object' && value !== null && #exit in value;
  }
}

/** True for a `Down` made by the runtime (a user object shaped like one is not one). */
export function isDown(message: unknown): message is Down {
  return DownMessage.is(message);
}

/** True for an `Exit` made by the runtime (a user object shaped like one is not one). */
export function isExit(message: unknown): message is Exit {
  return ExitMessage.is(message);
}

/**
 * True for the runtime's own messages, a `Down` or an `Exit`: the one guard a handler needs to set
 * them apart from its own messages (`if (isSystemMessage(msg)) return;`).
 */
export function isSystemMessage(message: unknown): message is SystemMessage {
  return isDown(message) || isExit(message);
}

/** True for `'normal'`, `'shutdown'` and `{ shutdown }`: exits that are not crashes. */
export function isCleanExit(reason: ExitReason): boolean {
  if (reason === 'normal' || reason === 'shutdown') return true;
  if (typeof reason !== 'object' || reason === null || !plainChain(reason) || isError(reason)) return false;
  return 'shutdown' in reason; // a plain chain: no trap runs
}

/**
 * @internal True when `value` is a valid exit reason. A proxy never is one: a reason is read by the
 * runtime during a death, where no user code may run.
 */
export function isExitReason(value: unknown): value is ExitReason {
  if (typeof value === 'string') {
    return value === 'normal' || value === 'shutdown' || value === 'killed' || value === 'noproc' || value === 'noconnection';
  }
  // a proxy up the chain would answer `in` with user code, now and again during the death
  if (typeof value !== 'object' || value === null || !plainChain(value)) return false;
  if (isError(value)) return true;
  return 'shutdown' in value;
}

/**
 * @internal An exit reason as a crash report shows it, with the message once: an Error's stack (which
 * starts with `Name: message`), or `formatReason` when it has no stack (or one that does not hold the
 * message: then the stack follows it); never throws.
 */
export function reasonReport(reason: ExitReason): string {
  const text = formatReason(reason);
  if (!isError(reason)) return text;
  let stack: unknown;
  let message: string;
  try {
    stack = reason.stack;
    message = String(reason.message);
  } catch {
    return text; // a getter that throws
  }
  if (typeof stack !== 'string' || stack === '') return text;
  return stack.includes(message) ? stack : `${text}\n${stack}`;
}

/** A readable form of an exit reason for logs and events; never throws, whatever the reason holds. */
/** A value inside a `{ shutdown }` reason as its text shows it: an error by its name and message (JSON shows none of an Error's own fields), a bigint by its digits. */
function reasonPart(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  return isError(value) ? `${String(value.name)}: ${String(value.message)}` : value;
}

export function formatReason(reason: ExitReason): string {
  if (typeof reason === 'string') return reason;
  try {
    if (isError(reason)) return `${String(reason.name)}: ${String(reason.message)}`;
    let detail: string;
    try {
      detail = JSON.stringify(reason.shutdown, reasonPart) ?? String(reason.shutdown);
    } catch {
      detail = describe(reason.shutdown);
    }
    return `{ shutdown: ${detail} }`;
  } catch {
    return describe(reason);
  }
}
