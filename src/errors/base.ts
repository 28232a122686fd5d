/**
 * The base of every Keel error: the stable codes, the KeelError class and the checks and helpers
 * the errors share (isKeelError, isError, describe, thrownText). Each area's errors are in a file of
 * their own beside this one, importing only this file; src/errors.ts re-exports them all.
 */
import { types } from 'node:util';

/** The stable codes of Keel's errors. */
export type KeelErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NOPROC'
  | 'ERR_NAME_TAKEN'
  | 'ERR_RESERVED_NAME'
  | 'ERR_ALREADY_REGISTERED'
  | 'ERR_PROCESS_EXITED'
  | 'ERR_NODE_STOPPED'
  | 'ERR_IDLE_TIMEOUT'
  | 'ERR_RECEIVE_TIMEOUT'
  | 'ERR_UNEXPECTED_MESSAGE'
  | 'ERR_HANDLER_RETURNED'
  | 'ERR_THROWN_VALUE'
  | 'ERR_CALL_TIMEOUT'
  | 'ERR_CALL_EXIT'
  | 'ERR_NOCONNECTION'
  | 'ERR_PEERS_TIMEOUT'
  | 'ERR_DEADLOCK'
  | 'ERR_START_FAILED'
  | 'ERR_MAILBOX_FULL'
  | 'ERR_ABORTED'
  | 'ERR_TASK_TIMEOUT'
  | 'ERR_TASK_EXIT'
  | 'ERR_MAX_CHILDREN'
  | 'ERR_LEAKS_FOUND'
  | 'ERR_DELIVERY'
  | 'ERR_NOT_SERIALIZABLE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_MALFORMED_FRAME'
  | 'ERR_PROTOCOL_MISMATCH'
  | 'ERR_JOIN_REFUSED'
  | 'ERR_STORE_IN_USE'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_DEAD_LETTER_TOO_LARGE'
  | 'ERR_SERVICE_UNAVAILABLE'
  | 'ERR_PEER_MISSING'
  | 'ERR_INVALID_SIGNAL'
  | 'ERR_WORKFLOW_LIMIT'
  | 'ERR_POOL_TIMEOUT'
  | 'ERR_POOL_CRASH_LOOP'
  | 'ERR_SYNC_TIMEOUT'
  | 'ERR_TELEMETRY_RECURSION';

/** Base class of every Keel error: a literal `code`, a readable message and an optional `cause`. */
export class KeelError extends Error {
  readonly code: KeelErrorCode;
  constructor(code: KeelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

/** @internal What a getter or a proxy trap threw, in a few words; never throws itself. */
export function thrownText(e: unknown): string {
  try {
    return isError(e) ? `${String(e.name)}: ${String(e.message)}` : describe(e);
  } catch {
    return 'a value that cannot be inspected';
  }
}

/** True when `error` is a Keel error, optionally with the given code. */
export function isKeelError(error: unknown, code?: KeelErrorCode): error is KeelError {
  if (typeof error !== 'object' || error === null) return false;
  const c = (error as { code?: unknown }).code;
  if (typeof c !== 'string' || !c.startsWith('ERR_')) return false;
  return code === undefined || c === code;
}

/**
 * True for an Error. It never throws and never runs a proxy's traps: a proxy (revoked or not) is
 * not an Error here, whatever it wraps, nor is an object with a proxy up its prototype chain.
 */
export function isError(value: unknown): value is Error {
  if (typeof value !== 'object' || value === null || !plainChain(value)) return false;
  return value instanceof Error; // the chain is plain objects: no trap runs, nothing throws
}

/**
 * @internal True when neither `value` nor anything up its prototype chain is a proxy: then `in`, `instanceof`
 * and reading the chain run no user code (an accessor is not called by `in`), and answer the same
 * each time. Reads each link with `Object.getPrototypeOf` on a plain object only.
 */
export function plainChain(value: object): boolean {
  for (let o: object | null = value; o !== null; o = Object.getPrototypeOf(o) as object | null) {
    if (types.isProxy(o)) return false;
  }
  return true;
}

/** A short, safe description of a value for error messages; never throws, whatever the value. */
export function describe(value: unknown): string {
  try {
    return describeUnsafe(value);
  } catch {
    return 'a value that cannot be inspected';
  }
}

function describeUnsafe(value: unknown): string {
  if (value === null) return 'null';
  if ((typeof value === 'object' || typeof value === 'function') && types.isProxy(value)) return 'a proxy';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return 'undefined';
    case 'function':
      return `a function${value.name ? ` (${value.name})` : ''}`;
    case 'symbol':
      return value.toString();
    default: {
      if (Array.isArray(value)) return `an array of length ${value.length}`;
      // a promise where a value belongs is most often a missing `await` (of a start, a call, ...)
      if (types.isPromise(value)) return 'a Promise (a missing await?)';
      const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
      return ctor && ctor !== 'Object' ? `an instance of ${ctor}` : 'an object';
    }
  }
}
