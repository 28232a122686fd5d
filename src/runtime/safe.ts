import { types } from 'node:util';

/**
 * @internal `value instanceof C` for a value that may be anything a user sent: never throws and
 * never runs a proxy's traps (a proxy is never an instance of a runtime class). For the paths where
 * the runtime inspects a message in the middle of its own bookkeeping, or a behaviour classifies a
 * message before its callbacks run.
 */
export function isInstance<T>(value: unknown, C: abstract new (...args: never[]) => T): value is T {
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return false;
  try {
    return value instanceof C; // a proxy further up the prototype chain may still throw
  } catch {
    return false;
  }
}

/** The engine's own `aborted` getter: it throws for a receiver that is no AbortSignal. */
const abortedOf = Object.getOwnPropertyDescriptor(AbortSignal.prototype, 'aborted')!.get!;

/**
 * @internal True for a real AbortSignal: `isInstance`, and one the engine takes for a signal. An
 * object made from `AbortSignal.prototype` (`Object.create`) is an instance, yet the engine's
 * `aborted` and `addEventListener` throw their raw TypeErrors on it.
 */
export function isAbortSignal(value: unknown): value is AbortSignal {
  if (!isInstance(value, AbortSignal)) return false;
  try {
    abortedOf.call(value);
    return true;
  } catch {
    return false;
  }
}
