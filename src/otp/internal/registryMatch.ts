/**
 * The Registry's structural patterns (`match`, `countMatch`, `unregisterMatch`): a pattern is
 * compiled once per call (read through property descriptors, so a pattern's getters never run), then
 * tried against each value without running the value's getters or proxy traps' results either.
 */
import { types } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';

/** The wildcard's type: one frozen instance, {@link ANY} (a class, so that its type does not widen as a symbol's does). */
export class Wildcard {
  readonly #brand = true;
  /** @internal */
  static is(value: unknown): value is Wildcard {
    return typeof value === 'object' && value !== null && #brand in value;
  }
  toString(): string {
    return 'Registry.any';
  }
}

/** The wildcard: matches any value, like Elixir's `:_`. */
export const ANY: Wildcard = Object.freeze(new Wildcard()) as Wildcard;

/**
 * A structural pattern over values of type `T`: {@link ANY} matches anything; a plain object matches
 * any object whose own data properties match the pattern's (a subset: other properties are
 * ignored); an array matches an array of the same length, element by element; anything else matches
 * an equal value (SameValueZero: `NaN` matches `NaN`).
 */
export type Pattern<T> =
  | Wildcard
  | (T extends readonly unknown[]
      ? { readonly [I in keyof T]: Pattern<T[I]> }
      : T extends (...args: never[]) => unknown
        ? T
        : T extends object
          ? { readonly [P in keyof T]?: Pattern<T[P]> }
          : T);

/** The deepest pattern accepted (a cyclic pattern is refused, not a stack overflow). */
export const MAX_PATTERN_DEPTH = 64;
/**
 * The longest array pattern accepted: an array pattern is compiled element by element, holes
 * included, and a sparse array of any length costs nothing to make (`new Array(2 ** 32 - 1)`).
 */
export const MAX_ARRAY_PATTERN = 100_000;

type Compiled =
  | { readonly t: 0 } // any
  | { readonly t: 1; readonly v: unknown } // equal
  | { readonly t: 2; readonly keys: readonly PropertyKey[]; readonly subs: readonly Compiled[] } // object subset
  | { readonly t: 3; readonly subs: readonly Compiled[] }; // array

const ANY_C: Compiled = { t: 0 };

/** Compiles a pattern; throws `ERR_INVALID_ARGUMENT` for a proxy, an accessor property or a pattern deeper than 64. */
export function compilePattern(pattern: unknown, argument = 'pattern'): Compiled {
  return compile(pattern, 0, argument);
}

function compile(p: unknown, depth: number, argument: string): Compiled {
  if (Wildcard.is(p)) return ANY_C;
  if (typeof p !== 'object' || p === null) return { t: 1, v: p };
  if (depth >= MAX_PATTERN_DEPTH) throw new InvalidArgumentError(argument, `an acyclic pattern at most ${MAX_PATTERN_DEPTH} levels deep`, p);
  if (types.isProxy(p)) throw new InvalidArgumentError(argument, 'a pattern made of plain objects, arrays and values (no proxy)', p);
  if (Array.isArray(p)) {
    if (p.length > MAX_ARRAY_PATTERN) throw new InvalidArgumentError(argument, `an array pattern of at most ${MAX_ARRAY_PATTERN} elements`, p);
    const subs: Compiled[] = [];
    for (let i = 0; i < p.length; i++) subs.push(compile(dataOf(p, String(i), argument), depth + 1, argument));
    return { t: 3, subs };
  }
  const proto: unknown = Object.getPrototypeOf(p);
  if (proto !== Object.prototype && proto !== null) return { t: 1, v: p }; // a class instance, a Date, a Pid: by identity
  // every own property, symbols included: a property the pattern has is never ignored
  const keys = Reflect.ownKeys(p);
  return { t: 2, keys, subs: keys.map((k) => compile(dataOf(p, k, argument), depth + 1, argument)) };
}

function dataOf(p: object, key: PropertyKey, argument: string): unknown {
  const d = Object.getOwnPropertyDescriptor(p, key);
  if (d === undefined) return undefined; // a hole in an array
  if (!('value' in d)) throw new InvalidArgumentError(`${argument}.${String(key)}`, 'a data property (a pattern runs no getter)', p);
  return d.value;
}

/** True when `value` matches the compiled pattern. Never throws: a value that throws (a proxy's trap) does not match. */
export function matches(c: Compiled, value: unknown): boolean {
  try {
    return test(c, value);
  } catch {
    return false;
  }
}

function test(c: Compiled, value: unknown): boolean {
  switch (c.t) {
    case 0:
      return true;
    case 1:
      return value === c.v || (value !== value && c.v !== c.v);
    case 2: {
      if (typeof value !== 'object' || value === null) return false;
      for (let i = 0; i < c.keys.length; i++) {
        const d = Object.getOwnPropertyDescriptor(value, c.keys[i]!);
        if (d === undefined || !('value' in d)) return false; // absent, or a getter (never run)
        if (!test(c.subs[i]!, d.value)) return false;
      }
      return true;
    }
    case 3: {
      if (!Array.isArray(value) || value.length !== c.subs.length) return false;
      for (let i = 0; i < c.subs.length; i++) {
        const d = Object.getOwnPropertyDescriptor(value, String(i));
        if (d === undefined ? c.subs[i]!.t !== 0 && !test(c.subs[i]!, undefined) : !('value' in d) || !test(c.subs[i]!, d.value)) return false;
      }
      return true;
    }
  }
}
