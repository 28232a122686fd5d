// Hostile values for the fuzz tests (fast-check): everything user code may hand Keel by mistake or
// by malice. Each generated value is a `V`: a label that fast-check prints in a counterexample (a
// revoked proxy cannot be printed), and a `make()` that builds the value afresh for every run, so
// that a run never sees what an earlier one did to it (a proxy revoked, an object frozen).
import fc from 'fast-check';

/** A generated value: `make()` builds it; fast-check prints `label`. */
export class V<T = unknown> {
  readonly label: string;
  readonly make: () => T;
  constructor(label: string, make: () => T) {
    this.label = label;
    this.make = make;
  }
  [fc.toStringMethod](): string {
    return this.label;
  }
}

/** `KEEL_LONG=1`: the long form. */
export const LONG = process.env.KEEL_LONG === '1';
/** Cases per API: 1,000 in CI, 10,000 in the long form. */
export const RUNS = Number(process.env.KEEL_FUZZ_RUNS ?? (LONG ? 10_000 : 1_000));

/**
 * fast-check's parameters for a property: the number of runs, a seed from `KEEL_FUZZ_SEED` (and a
 * path from `KEEL_FUZZ_PATH`) to replay a failure (fast-check prints both), and a per-run timeout,
 * so that a run that wedges fails with its seed instead of hanging the suite. The runs of a property
 * share a node: a path replays its one case on a fresh node, so a failure that needed the cases
 * before it replays with the seed alone (all the runs up to it, in the same order).
 */
export function params(runs = RUNS): fc.Parameters<unknown> {
  const seed = process.env.KEEL_FUZZ_SEED;
  const path = process.env.KEEL_FUZZ_PATH;
  return {
    numRuns: runs,
    timeout: 5_000,
    // the runs of a property share one node: a failure can leave it broken for the runs after, so the
    // first failing case is reported as it was, not shrunk on a node it already broke
    endOnFailure: true,
    ...(seed === undefined ? {} : { seed: Number(seed) }),
    ...(path === undefined ? {} : { path }),
  };
}

const thrower =
  (what: string) =>
  (): never => {
    throw new TypeError(`${what} trap threw`);
  };

/** A proxy handler every trap of which throws. */
function throwingHandler(): ProxyHandler<object> {
  const traps = ['get', 'set', 'has', 'ownKeys', 'getOwnPropertyDescriptor', 'defineProperty', 'deleteProperty', 'getPrototypeOf', 'setPrototypeOf', 'isExtensible', 'preventExtensions', 'apply', 'construct'] as const;
  return Object.fromEntries(traps.map((t) => [t, thrower(t)])) as ProxyHandler<object>;
}

function revoked<T extends object>(target: T): T {
  const { proxy, revoke } = Proxy.revocable(target, {});
  revoke();
  return proxy;
}

function throwingGetters(keys: readonly (string | symbol)[], base: object = {}): object {
  const o = base;
  for (const k of keys) {
    Object.defineProperty(o, k, {
      enumerable: true,
      configurable: true,
      get() {
        throw new Error(`getter ${String(k)} threw`);
      },
    });
  }
  return o;
}

function nested(depth: number, array: boolean): unknown {
  let v: unknown = 'bottom';
  for (let i = 0; i < depth; i++) v = array ? [v] : { v };
  return v;
}

class Plain {
  x = 1;
}

class WithBehaviour {
  #secret = 1;
  get secret(): number {
    return this.#secret;
  }
  method(): number {
    return this.#secret;
  }
}

/** A string of `mb` megabytes, made once (building one per run would be most of the run's time). */
const hugeStrings = new Map<number, string>();
function huge(mb: number): string {
  let s = hugeStrings.get(mb);
  if (s === undefined) {
    s = 'x'.repeat(mb * 1024 * 1024);
    hugeStrings.set(mb, s);
  }
  return s;
}

/** The values that break code which assumes plain data, one of each kind. */
export const SPECIAL: readonly V[] = [
  new V('NaN', () => Number.NaN),
  new V('Infinity', () => Number.POSITIVE_INFINITY),
  new V('-Infinity', () => Number.NEGATIVE_INFINITY),
  new V('-0', () => -0),
  new V('Number.MAX_VALUE', () => Number.MAX_VALUE),
  new V('Number.MIN_VALUE', () => Number.MIN_VALUE),
  new V('2**53', () => 2 ** 53),
  new V('a bigint', () => 10n ** 30n),
  new V('a symbol', () => Symbol('hostile')),
  new V('Symbol.iterator', () => Symbol.iterator),
  new V('a function', () => function named() {}),
  new V('an arrow function', () => () => 1),
  new V('an async function', () => async () => 1),
  new V('a class', () => class Hostile {}),
  new V('a bound function', () => function f() {}.bind(null)),
  new V('a revoked proxy', () => revoked({})),
  new V('a revoked array proxy', () => revoked([])),
  new V('a revoked function proxy', () => revoked(() => 1)),
  new V('a proxy whose traps throw', () => new Proxy({}, throwingHandler())),
  new V('an array proxy whose traps throw', () => new Proxy([], throwingHandler())),
  new V('a function proxy whose traps throw', () => new Proxy(() => 1, throwingHandler())),
  new V('a harmless proxy', () => new Proxy({ a: 1 }, {})),
  new V('an object with a throwing getter', () => throwingGetters(['x'])),
  new V('an object whose getters all throw (then, toString, valueOf, node, id, creation, code, message, name)', () =>
    throwingGetters(['then', 'toString', 'valueOf', 'node', 'id', 'creation', 'code', 'message', 'name', 'constructor', 'toJSON', 'type', 'op', 'shutdown'], {}),
  ),
  new V('an object with a throwing then getter', () => throwingGetters(['then'])),
  new V('an object with a throwing Symbol.toPrimitive', () => throwingGetters([Symbol.toPrimitive])),
  new V('a thenable whose then throws', () => ({
    then(): never {
      throw new Error('then() threw');
    },
  })),
  new V('a thenable that never settles', () => ({ then(): void {} })),
  new V('a promise that never settles', () => new Promise(() => undefined)),
  new V('an object cycle', () => {
    const a: Record<string, unknown> = { name: 'cycle' };
    a.self = a;
    return a;
  }),
  new V('an array cycle', () => {
    const a: unknown[] = [];
    a.push(a, { back: a });
    return a;
  }),
  new V('a Map cycle', () => {
    const m = new Map<unknown, unknown>();
    m.set(m, m);
    return m;
  }),
  new V('nesting 10,000 deep (objects)', () => nested(10_000, false)),
  new V('nesting 200,000 deep (arrays)', () => nested(200_000, true)),
  new V('a 4 MB string', () => huge(4)),
  new V('an object with a 4 MB string', () => ({ big: huge(4) })),
  new V('an object with a __proto__ key (JSON.parse)', () => JSON.parse('{"__proto__": {"polluted": true}, "a": 1}') as unknown),
  new V('an object with a __proto__ key holding a getter-ish object', () => JSON.parse('{"__proto__": {"then": 1, "node": "x", "id": 1, "creation": 1}}') as unknown),
  new V('a null-prototype object', () => Object.create(null) as object),
  new V('a frozen object', () => Object.freeze({ a: 1, b: [2] })),
  new V('a sealed object', () => Object.seal({ a: 1 })),
  new V('a non-extensible object', () => Object.preventExtensions({ a: 1 })),
  new V('a frozen array', () => Object.freeze([1, 2, 3])),
  new V('a class instance', () => new Plain()),
  new V('a class instance with behaviour and a private field', () => new WithBehaviour()),
  new V('an Error', () => new Error('an error')),
  new V('an Error with a throwing message getter', () => throwingGetters(['message', 'name'], new Error('e'))),
  new V('an AggregateError', () => new AggregateError([new Error('a')], 'many')),
  new V('an Error whose cause is a revoked proxy', () => new Error('caused', { cause: revoked({}) })),
  new V('a Uint8Array', () => new Uint8Array([1, 2, 3])),
  new V('a Float64Array with NaN and -0', () => new Float64Array([Number.NaN, -0])),
  new V('a BigInt64Array', () => new BigInt64Array([1n, -1n])),
  new V('a DataView', () => new DataView(new ArrayBuffer(8))),
  new V('an ArrayBuffer', () => new ArrayBuffer(16)),
  new V('a SharedArrayBuffer', () => new SharedArrayBuffer(16)),
  new V('a Date', () => new Date(0)),
  new V('an invalid Date', () => new Date(Number.NaN)),
  new V('a RegExp', () => /a+/gu),
  new V('a Map', () => new Map([[1, 'a']])),
  new V('a Set', () => new Set([1, 2])),
  new V('a WeakMap', () => new WeakMap()),
  new V('a WeakRef', () => new WeakRef({})),
  new V('a boxed string', () => new String('boxed')),
  new V('a boxed symbol', () => Object(Symbol('boxed')) as object),
  new V('a boxed bigint', () => Object(1n) as object),
  new V('an AbortSignal already aborted', () => AbortSignal.abort('gone')),
  new V('an AbortSignal', () => new AbortController().signal),
  new V('an object shaped like a Down', () => ({ kind: 'down', ref: { id: 1 }, pid: { node: 'x', creation: 1, id: 1 }, reason: 'normal' })),
  new V('an object shaped like an Exit', () => ({ kind: 'exit', from: 'node', reason: 'kill' })),
  new V('an object with a shutdown key', () => ({ shutdown: revoked({}) })),
  new V('a pid-shaped null-prototype object', () => Object.assign(Object.create(null) as object, { node: 'fuzz', creation: 1, id: 1 })),
  new V('a pid-shaped object with a throwing toString', () => ({
    node: 'fuzz',
    creation: 1,
    id: 1,
    toString(): never {
      throw new Error('toString threw');
    },
  })),
  new V('a pid-shaped object with huge fields', () => ({ node: huge(4), creation: Number.MAX_SAFE_INTEGER, id: Number.MAX_SAFE_INTEGER })),
  new V('an object with an own constructor key', () => ({ constructor: revoked({}) })),
  new V('an object with many keys', () => Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`k${i}`, i]))),
  new V('a sparse array of length 2**32-1', () => {
    const a: unknown[] = [];
    a.length = 2 ** 32 - 1;
    return a;
  }),
  new V('an array with a non-index property holding a proxy', () => Object.assign([1, 2], { extra: revoked({}) })),
];

const specialArb: fc.Arbitrary<V> = fc.constantFrom(...SPECIAL);

/** Plain data (fast-check's `anything`, with every option on), labelled with how fast-check prints it. */
export const plainArb: fc.Arbitrary<V> = fc
  .anything({
    maxDepth: 3,
    withBigInt: true,
    withBoxedValues: true,
    withDate: true,
    withMap: true,
    withSet: true,
    withNullPrototype: true,
    withObjectString: true,
    withTypedArray: true,
    withSparseArray: true,
    withUnicodeString: true,
  })
  .map((v) => new V(fc.stringify(v), () => v));

/** A special value inside plain containers: an object, an array, a Map, a Set, an Error's cause. */
const nestedArb: fc.Arbitrary<V> = fc.tuple(specialArb, fc.constantFrom('object', 'array', 'map key', 'map value', 'set', 'cause', 'deep')).map(
  ([inner, where]) =>
    new V(`${inner.label} inside ${where === 'deep' ? 'a deep object' : `a ${where}`}`, () => {
      const v = inner.make();
      switch (where) {
        case 'object':
          return { a: 1, inner: v };
        case 'array':
          return [1, v];
        case 'map key':
          return new Map([[v, 1]]);
        case 'map value':
          return new Map([['k', v]]);
        case 'set':
          return new Set([v]);
        case 'cause':
          return new Error('wrapper', { cause: v });
        default:
          return { a: { b: [{ c: v }] } };
      }
    }),
);

/** The specials that throw when touched (proxies, getters, then): drawn more often than the others. */
const throwingArb: fc.Arbitrary<V> = fc.constantFrom(...SPECIAL.filter((v) => /proxy|throw/.test(v.label) && !v.label.includes('harmless')));

/** Any hostile value: a special one (one that throws when touched, most often), one nested in plain data, or plain data. */
export const hostileArb: fc.Arbitrary<V> = fc.oneof(
  { arbitrary: specialArb, weight: 3 },
  { arbitrary: throwingArb, weight: 2 },
  { arbitrary: nestedArb, weight: 2 },
  { arbitrary: plainArb, weight: 2 },
);

/** Numbers that break code expecting a duration or a count. */
export const numberArb: fc.Arbitrary<V> = fc.oneof(
  fc.constantFrom(0, -0, 1, 1.5, 10, 100, 1000, -1, -1000, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, Number.MAX_VALUE, Number.MIN_VALUE, Number.MAX_SAFE_INTEGER, 2 ** 53, 1e-300, 2 ** 31, 2 ** 32).map((n) => new V(Object.is(n, -0) ? '-0' : String(n), () => n)),
  fc.double().map((n) => new V(Object.is(n, -0) ? '-0' : String(n), () => n)),
  fc.integer({ min: -10, max: 10_000 }).map((n) => new V(String(n), () => n)),
);

/** A value of `valid` (labelled as fast-check prints it), or a hostile one. */
export function orHostile<T>(valid: fc.Arbitrary<T>, weight = 2): fc.Arbitrary<V> {
  return fc.oneof({ arbitrary: valid.map((v) => new V(fc.stringify(v), () => v)), weight }, { arbitrary: hostileArb, weight: 1 });
}

/** Keys an options object may carry besides its own: a misspelt option, or an own `__proto__`. */
const strayKeyArb = fc.constantFrom('timeOut', 'extra', '__proto__', 'constructor', 'then', '');

/** Options objects made with an own stray key (one the API does not know) since the last `withStrays`. */
let straysMade = 0;

/**
 * Makes a case's arguments with `make` and tells whether any strict options object among them (an
 * options object of an API that refuses keys it does not know) got an own stray key with a value:
 * such a call must not succeed (docs: an option a call does not know is ERR_INVALID_ARGUMENT).
 */
export function withStrays<T>(make: () => T): { value: T; stray: boolean } {
  straysMade = 0;
  const value = make();
  return { value, stray: straysMade > 0 };
}

/** An option's values: valid ones, and bad ones (hostile values by default). */
export interface Field {
  readonly valid: fc.Arbitrary<V>;
  readonly bad: fc.Arbitrary<V>;
}

/** An option given by its valid values (plain values, or `V`s) and its bad ones. */
export function field(valid: fc.Arbitrary<unknown>, bad: fc.Arbitrary<V> = hostileArb): Field {
  return { valid: valid.map((x) => (x instanceof V ? x : new V(fc.stringify(x), () => x))), bad };
}

const SHAPES = ['plain', 'frozen', 'null-prototype', 'getters', 'inherited'] as const;
type Shape = (typeof SHAPES)[number];

/** An options object of `shape` with `all` (a key and its value each), the last one stray if `stray`. */
function optionsObject(all: readonly (readonly [string, V])[], stray: boolean, shape: Shape, strict: boolean): V {
  const label = `${shape} { ${all.map(([k, v]) => `${JSON.stringify(k)}: ${v.label}`).join(', ')} }`;
  return new V(label, () => {
    const values = all.map(([k, v]) => [k, v.make()] as const);
    if (strict && stray && shape !== 'inherited' && values[values.length - 1]![1] !== undefined) straysMade++;
    switch (shape) {
      case 'frozen':
        return Object.freeze(defineAll({}, values));
      case 'null-prototype':
        return defineAll(Object.create(null) as object, values);
      case 'getters': {
        const o = {};
        for (const [k, v] of values) Object.defineProperty(o, k, { enumerable: true, configurable: true, get: () => v });
        return o;
      }
      case 'inherited':
        // the options on the prototype, none of them own
        return Object.create(defineAll({}, values)) as object;
      default:
        return defineAll({}, values);
    }
  });
}

/**
 * An options object: `undefined`, a hostile value, or an object with some of `fields` and now and
 * then a stray key, as a plain, frozen, null-prototype or getter-backed object, or one whose options
 * are all inherited. Two kinds of objects: mixed ones, where any option may be bad, and focused
 * ones, where every option is valid but one (so that a bad value reaches the code past the other
 * options' checks: a metadata getter that throws only on a retry, say). `strict` (the default) says
 * that the API refuses a stray key: `withStrays` counts one then.
 */
export function optionsArb(fields: Record<string, fc.Arbitrary<V> | Field>, strict = true): fc.Arbitrary<V> {
  const keys = Object.keys(fields);
  const isField = (f: fc.Arbitrary<V> | Field): f is Field => 'valid' in f && 'bad' in f;
  const mixedOf = (f: fc.Arbitrary<V> | Field): fc.Arbitrary<V> => (isField(f) ? fc.oneof({ arbitrary: f.valid, weight: 2 }, { arbitrary: f.bad, weight: 1 }) : f);
  const validOf = (f: fc.Arbitrary<V> | Field): fc.Arbitrary<V> => (isField(f) ? f.valid : f);
  const strayArb = fc.option(fc.tuple(strayKeyArb, hostileArb), { nil: undefined, freq: 4 });
  const shapeArb = fc.constantFrom(...SHAPES);
  const build = (chosen: readonly ((readonly [string, V]) | undefined)[], stray: readonly [string, V] | undefined, shape: Shape): V => {
    const kv = chosen.filter((e): e is readonly [string, V] => e !== undefined);
    return optionsObject(stray === undefined ? kv : [...kv, stray], stray !== undefined, shape, strict);
  };
  const mixed = fc
    .tuple(fc.tuple(...keys.map((k) => fc.option(mixedOf(fields[k]!).map((v) => [k, v] as const), { nil: undefined, freq: 2 }))), strayArb, shapeArb)
    .map(([chosen, stray, shape]) => build(chosen, stray, shape));
  const badKeys = keys.filter((k) => isField(fields[k]!));
  const arbs: fc.Arbitrary<V>[] = [fc.constant(new V('undefined', () => undefined)), hostileArb, mixed];
  const weights = [1, 2, 5];
  if (badKeys.length > 0) {
    const focused = fc
      .constantFrom(...badKeys)
      .chain((bad) =>
        fc.tuple(
          fc.tuple(...keys.map((k) => (k === bad ? (fields[k] as Field).bad.map((v) => [k, v] as const) : fc.option(validOf(fields[k]!).map((v) => [k, v] as const), { nil: undefined, freq: 4 })))),
          strayArb,
          shapeArb,
        ),
      )
      .map(([chosen, stray, shape]) => build(chosen, stray, shape));
    arbs.push(focused);
    weights.push(5);
  }
  return fc.oneof(...arbs.map((arbitrary, i) => ({ arbitrary, weight: weights[i]! })));
}

/** Own data properties, `__proto__` included (an assignment would set the prototype instead). */
function defineAll<T extends object>(o: T, values: readonly (readonly [string, unknown])[]): T {
  for (const [k, v] of values) Object.defineProperty(o, k, { value: v, enumerable: true, configurable: true, writable: true });
  return o;
}

/** What a call did: returned (or resolved with) a value, or threw (or rejected). */
export type Result = { readonly ok: true; readonly value: unknown } | { readonly ok: false; readonly error: unknown };

/** Runs `fn`, awaiting what it returns when it is a promise; never throws. */
export async function run(fn: () => unknown): Promise<Result> {
  try {
    const r = fn();
    return { ok: true, value: r instanceof Promise ? await r : r };
  } catch (e) {
    return { ok: false, error: e };
  }
}

/** Runs `fn` synchronously; never throws. A returned promise is kept as the value. */
export function runSync(fn: () => unknown): Result {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    return { ok: false, error: e };
  }
}

/** A Keel error's code, or undefined for anything else (never throws, whatever was thrown). */
export function keelCode(e: unknown): string | undefined {
  try {
    if (typeof e !== 'object' || e === null) return undefined;
    const code = (e as { code?: unknown }).code;
    return typeof code === 'string' && code.startsWith('ERR_') && e instanceof Error ? code : undefined;
  } catch {
    return undefined;
  }
}

/** A few words on what was thrown, for a failure message (never throws). */
export function what(e: unknown): string {
  try {
    return e instanceof Error ? `${e.name}: ${e.message}\n${e.stack ?? ''}` : `${typeof e} ${String(e)}`;
  } catch {
    return typeof e;
  }
}

/** Fails when a call given an option it does not know (see `withStrays`) succeeded: it must refuse it. */
export function expectStrayRefused(stray: boolean, succeeded: boolean, where: string): void {
  if (stray && succeeded) throw new Error(`${where} took an option it does not know (an own stray key): it must refuse it with ERR_INVALID_ARGUMENT`);
}

/** Fails (with what was thrown) unless the call succeeded or failed with a typed Keel error. */
export function expectTyped(r: Result, where: string): void {
  if (r.ok || keelCode(r.error) !== undefined) return;
  throw new Error(`${where} failed with an untyped error: ${what(r.error)}`);
}
