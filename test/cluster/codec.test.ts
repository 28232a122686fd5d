import fc from 'fast-check';
import { describe, expect, it, vi } from 'vitest';
import { decodeBatch, decodeValue, encodeValue, type PidFactory } from '../../src/cluster/codec.js';
import { isKeelError, MalformedFrameError, MessageTooLargeError, NotSerializableError } from '../../src/errors.js';
import { Name, PidImpl, procOf, setProc, RefImpl, type Pid } from '../../src/runtime/Pid.js';
import { expectKeelError, revokedProxy, thrown, trappingProxy } from '../support.js';

const pids: PidFactory = (node, creation, id) => new PidImpl(node, creation, id);
const roundTrip = (value: unknown): unknown => decodeValue(encodeValue(value), pids);

/** Asserts `encodeValue(value)` is refused with ERR_NOT_SERIALIZABLE at exactly `path`. */
function refusedAt(value: unknown, path: string, what: string, root?: string): void {
  const e = thrown(() => encodeValue(value, Infinity, root));
  expectKeelError(e, 'ERR_NOT_SERIALIZABLE', `${path} is ${what}`, 'a message sent to another node must be plain data');
  expect(e).toBeInstanceOf(NotSerializableError);
  expect((e as NotSerializableError).path).toBe(path);
}

function malformed(text: string, ...fragments: string[]): void {
  const e = thrown(() => decodeBatch(text, pids));
  expectKeelError(e, 'ERR_MALFORMED_FRAME', ...fragments);
  expect(e).toBeInstanceOf(MalformedFrameError);
}

describe('encodeValue / decodeValue: what is carried', () => {
  it.each([
    ['a plain message', { type: 'ping', n: 123 }],
    ['strings, numbers, booleans, null', ['a', '', 0, 1.5, -3, true, false, null]],
    ['nested objects and arrays', { a: { b: [1, { c: [[], {}] }] } }],
    ['undefined in an object (the key is kept)', { a: undefined, b: 1 }],
    ['undefined in an array', [undefined, 1, undefined]],
    ['undefined alone', undefined],
    ['-0, NaN and the infinities', { z: -0, nan: NaN, inf: Infinity, ninf: -Infinity }],
    ['bigints', { big: 12345678901234567890123n, neg: -5n, zero: 0n }],
    ['Dates, valid and invalid', [new Date(1_700_000_000_123), new Date(NaN)]],
    ['Maps with any keys', new Map<unknown, unknown>([[1, 'one'], ['k', { v: undefined }], [{ o: 1 }, new Set([1])]])],
    ['Sets', new Set<unknown>([1, 'a', undefined, { x: 1 }])],
    ['a Uint8Array', new Uint8Array([0, 1, 254, 255])],
    ['a Buffer', Buffer.from('héllo')],
    ['OTP exit reasons', ['normal', 'shutdown', { shutdown: 'timeout' }, { shutdown: { nested: [1] } }, 'noconnection', 'killed']],
    ['an object with a user $keel key (escaped)', { $keel: 'pid', n: 'x', c: 1, i: 2 }],
    ['a nested $keel object with special values', { a: [{ $keel: { $keel: 1 }, u: undefined, z: -0 }] }],
    ['an object that has node/creation/id and more (not a pid)', { node: 'a', creation: 1, id: 2, more: true }],
  ])('%s round-trips exactly', (_, value) => {
    const back = roundTrip(value);
    expect(back).toStrictEqual(value);
    if (value instanceof Uint8Array) expect(Object.getPrototypeOf(back)).toBe(Object.getPrototypeOf(value));
  });

  it('decodes a Uint8Array into memory of its own: its buffer holds its bytes and nothing of other values the node decoded', () => {
    const other = decodeValue(encodeValue(Buffer.from('secret of another process')), pids) as Buffer;
    expect(other.toString()).toBe('secret of another process');
    const back = roundTrip(new Uint8Array([1, 2, 3])) as Uint8Array;
    expect([back.byteOffset, back.byteLength, back.buffer.byteLength]).toEqual([0, 3, 3]);
    expect([...new Uint8Array(back.buffer)]).toEqual([1, 2, 3]);
  });

  it('carries a null-prototype object as a plain object with the same keys', () => {
    const back = roundTrip(Object.assign(Object.create(null) as object, { a: 1, u: undefined }));
    expect(Object.getPrototypeOf(back)).toBe(Object.prototype);
    expect({ ...(back as object) }).toStrictEqual({ a: 1, u: undefined });
  });

  it('keeps -0 as -0 and an undefined key as an own key', () => {
    const back = roundTrip({ z: -0, u: undefined }) as { z: number; u: undefined };
    expect(Object.is(back.z, -0)).toBe(true);
    expect(Object.hasOwn(back, 'u')).toBe(true);
    expect(Object.keys(back)).toEqual(['z', 'u']);
  });

  it('writes a plain message as plain JSON', () => {
    expect(encodeValue({ type: 'ping', n: 123 })).toBe('{"type":"ping","n":123}');
    expect(encodeValue(['m', 4, null, 'hi'])).toBe('["m",4,null,"hi"]');
  });

  it('takes a snapshot: mutating the message after encoding changes nothing sent', () => {
    const msg = { items: [1, 2] };
    const text = encodeValue(msg);
    msg.items.push(3);
    expect(decodeValue(text, pids)).toEqual({ items: [1, 2] });
  });

  it('carries a runtime pid (PidImpl, whose toJSON is a string) through the factory with its exact parts', () => {
    const factory = vi.fn(pids);
    const pid = new PidImpl('node-a', 1234567, 42);
    setProc(pid, { live: true });
    const text = encodeValue({ from: pid, list: [pid] });
    expect(text).toBe('{"from":{"$keel":"pid","n":"node-a","c":1234567,"i":42},"list":[{"$keel":"pid","n":"node-a","c":1234567,"i":42}]}');
    const back = decodeValue(text, factory) as { from: Pid; list: Pid[] };
    expect(factory).toHaveBeenCalledTimes(2);
    expect(factory).toHaveBeenNthCalledWith(1, 'node-a', 1234567, 42);
    expect(factory).toHaveBeenNthCalledWith(2, 'node-a', 1234567, 42);
    expect(back.from).toBeInstanceOf(PidImpl);
    expect([back.from.node, back.from.creation, back.from.id]).toEqual(['node-a', 1234567, 42]);
    expect(procOf(back.from as PidImpl)).toBeUndefined(); // the live record never travels
  });

  it('carries a plain copy of a pid ({ node, creation, id }) as a pid', () => {
    const factory = vi.fn(pids);
    const back = decodeValue(encodeValue({ to: { node: 'b', creation: 7, id: 9 } }), factory) as { to: Pid };
    expect(factory).toHaveBeenCalledExactlyOnceWith('b', 7, 9);
    expect(back.to).toBeInstanceOf(PidImpl);
    const nullProto = Object.assign(Object.create(null) as object, { node: 'c', creation: 1, id: 2 });
    expect(roundTrip(nullProto)).toBeInstanceOf(PidImpl);
  });

  it('returns what the factory gives for a pid of this node (the live process)', () => {
    const live = new PidImpl('self', 5, 1);
    setProc(live, { proc: true });
    const back = decodeValue(encodeValue([new PidImpl('self', 5, 1)]), (node, creation, id) => (node === 'self' && creation === 5 && id === 1 ? live : pids(node, creation, id)));
    expect((back as Pid[])[0]).toBe(live);
  });

  it('carries refs as RefImpl (node and id) and typed names as Name.of(text)', () => {
    const back = roundTrip({ ref: new RefImpl('n1', 77), name: Name.of('cache') }) as { ref: RefImpl; name: unknown };
    expect(back.ref).toBeInstanceOf(RefImpl);
    expect([back.ref.node, back.ref.id]).toEqual(['n1', 77]);
    expect(Name.is(back.name)).toBe(true);
    expect(String(back.name)).toBe('cache');
  });

  it('carries an Error: class by name, message, stack, code, cause and own props, marked remote', () => {
    const cause = new RangeError('inner');
    const err = Object.assign(new TypeError('boom', { cause }), { code: 'E_BOOM', detail: { n: 1, u: undefined } });
    const back = roundTrip({ reason: err }) as { reason: Error & { code: string; detail: unknown; remote: boolean } };
    const e = back.reason;
    expect(e).toBeInstanceOf(TypeError);
    expect(e.name).toBe('TypeError');
    expect(e.message).toBe('boom');
    expect(e.stack).toBe(err.stack);
    expect(e.code).toBe('E_BOOM');
    expect(e.detail).toStrictEqual({ n: 1, u: undefined });
    expect(e.remote).toBe(true);
    expect(Object.getOwnPropertyDescriptor(e, 'remote')?.enumerable).toBe(false);
    expect(Object.keys(e)).toEqual(['code', 'detail']);
    expect(e.cause).toBeInstanceOf(RangeError);
    expect((e.cause as Error).message).toBe('inner');
    expect((e.cause as { remote?: boolean }).remote).toBe(true);
  });

  it('carries an Error whose own props include a $keel key (escaped as any user object is, never read as a tag)', () => {
    const err = Object.assign(new Error('tagged'), { $keel: 'pid', n: 'x' });
    const back = roundTrip({ reason: err }) as { reason: Error & { $keel: unknown; n: unknown } };
    expect(back.reason).toBeInstanceOf(Error);
    expect(back.reason.message).toBe('tagged');
    expect(Object.keys(back.reason)).toEqual(['$keel', 'n']);
    expect(back.reason.$keel).toBe('pid');
    expect(back.reason.n).toBe('x');
  });

  it('carries a Keel error so that isKeelError and its code still hold on the other side', () => {
    const err = new NotSerializableError('message.f', 'a function');
    const back = roundTrip(err) as Error & { path: string };
    expect(back.name).toBe('NotSerializableError');
    expect(isKeelError(back, 'ERR_NOT_SERIALIZABLE')).toBe(true);
    expect(back.path).toBe('message.f');
    expect(back).toBeInstanceOf(Error);
  });

  it('carries a custom error class as an Error with its name; an error with undefined cause keeps the cause key', () => {
    class MyError extends Error {
      override name = 'MyError';
    }
    const back = roundTrip(new MyError('x')) as Error;
    expect(back.name).toBe('MyError');
    expect(back.message).toBe('x');
    const withUndefinedCause = roundTrip(new Error('y', { cause: undefined })) as Error;
    expect(Object.hasOwn(withUndefinedCause, 'cause')).toBe(true);
    expect(withUndefinedCause.cause).toBeUndefined();
  });

  it('decodes a batch as one JSON value', () => {
    const frames = [`["m",4,${encodeValue(new PidImpl('a', 1, 2))},${encodeValue({ n: 1, u: undefined })}]`, `["b"]`];
    const batch = `[1,"a",1,0,[${frames.join(',')}]]`;
    expect(decodeBatch(batch, pids)).toStrictEqual([1, 'a', 1, 0, [['m', 4, new PidImpl('a', 1, 2), { n: 1, u: undefined }], ['b']]]);
  });
});

describe('encodeValue: what is refused, with the exact path', () => {
  class Point {
    x = 1;
  }
  it.each([
    ['a function deep inside', { items: [0, 1, 2, { fn: () => 1 }] }, 'message.items[3].fn', 'a function (fn)'],
    ['a symbol', { s: Symbol('x') }, 'message.s', 'a symbol (Symbol(x))'],
    ['a class instance', { p: new Point() }, 'message.p', 'an instance of Point'],
    ['a WeakMap', [new WeakMap()], 'message[0]', 'a WeakMap'],
    ['a WeakSet', { w: new WeakSet() }, 'message.w', 'a WeakSet'],
    ['a Promise', { p: Promise.resolve(1) }, 'message.p', 'a Promise'],
    ['a function at the top', () => 1, 'message', 'a function'],
    ['a key that is not an identifier', { 'a b': { c: () => 1 } }, 'message["a b"].c', 'a function'],
    ['a function in a Map value', new Map([['k', () => 1]]), 'message.get("k")', 'a function'],
    ['a function as a Map key', new Map([[() => 1, 1]]), 'message.keys()[0]', 'a function'],
    ['a function in a Set', new Set([1, () => 1]), 'message.values()[1]', 'a function'],
    ['a function in an error prop', Object.assign(new Error('x'), { fn: () => 1 }), 'message.fn', 'a function'],
    ['a function in an error cause', new Error('x', { cause: { f: () => 1 } }), 'message.cause.f', 'a function'],
    ['a function in an escaped $keel object', { $keel: 1, f: () => 1 }, 'message.f', 'a function'],
    ['another typed array', { t: new Int16Array(2) }, 'message.t', 'an instance of Int16Array'],
    ['a proxy', { p: new Proxy({}, {}) }, 'message.p', 'a proxy'],
    ['a revoked proxy', { p: revokedProxy() }, 'message.p', 'a proxy'],
    ['a proxy whose traps throw', [trappingProxy()], 'message[0]', 'a proxy'],
    ['an own __proto__ key', { a: JSON.parse('{"__proto__":{"x":1}}') as unknown }, 'message.a.__proto__', "a key '__proto__'"],
    ['an own __proto__ key with a primitive', JSON.parse('{"__proto__":1}') as unknown, 'message.__proto__', "a key '__proto__'"],
    ['prototype under constructor', { constructor: { prototype: { x: 1 } } }, 'message.constructor.prototype', "a key 'prototype' under 'constructor'"],
  ])('%s', (_, value, path, what) => refusedAt(value, path, what));

  it('names the root it is given (an exit reason)', () => refusedAt({ f: () => 1 }, 'reason.f', 'a function', 'reason'));

  it('refuses a bigint with more digits than a receiver takes, at send time (the receiver would drop the frame as malformed)', () => {
    const most = 10n ** 99_999n; // 100,000 digits: carried, either sign
    expect(roundTrip({ n: most, m: -most })).toEqual({ n: most, m: -most });
    refusedAt({ n: 10n ** 100_000n }, 'message.n', 'a bigint of 100001 digits (at most 100000)');
    refusedAt([-(10n ** 100_000n)], 'message[0]', 'a bigint of 100001 digits (at most 100000)');
  });

  it('refuses a cyclic structure at the reference that closes the cycle', () => {
    const o: { a: { b?: unknown } } = { a: {} };
    o.a.b = o;
    refusedAt(o, 'message.a.b', 'a cyclic reference');
    const arr: unknown[] = [1];
    arr.push(arr);
    refusedAt(arr, 'message[1]', 'a cyclic reference');
    const m = new Map<string, unknown>();
    m.set('self', m);
    refusedAt(m, 'message.get("self")', 'a cyclic reference');
  });

  it('refuses a value nested deeper than the stack allows with ERR_NOT_SERIALIZABLE, not a raw RangeError', () => {
    let arrays: unknown = 1;
    for (let i = 0; i < 200_000; i++) arrays = [arrays];
    refusedAt(arrays, 'message', 'a value nested deeper than the stack allows');
    let objects: unknown = undefined;
    for (let i = 0; i < 200_000; i++) objects = { a: objects };
    refusedAt(objects, 'message', 'a value nested deeper than the stack allows');
    expect(encodeValue({ after: [1] })).toBe('{"after":[1]}'); // no state left behind
  });

  it('carries a shared (acyclic) sub-object twice', () => {
    const shared = { x: 1 };
    expect(roundTrip({ a: shared, b: shared, c: [shared] })).toStrictEqual({ a: { x: 1 }, b: { x: 1 }, c: [{ x: 1 }] });
  });

  it('refuses a getter that throws at its path, never with the raw error', () => {
    const bad = {
      get boom(): never {
        throw new Error('getter exploded');
      },
    };
    refusedAt({ deep: [bad] }, 'message.deep[0].boom', 'a property that throws when read (Error: getter exploded)');
    const badNode = {
      get node(): never {
        throw new Error('no node');
      },
    };
    refusedAt({ p: badNode }, 'message.p.node', 'a property that throws when read (Error: no node)');
    const badName = new Error('x');
    Object.defineProperty(badName, 'name', {
      get(): never {
        throw new Error('no name');
      },
    });
    refusedAt(badName, 'message.name', 'a property that throws when read (Error: no name)');
  });

  it('encodes right when a getter encodes another value meanwhile (no shared state leaks)', () => {
    const sneaky = {
      get inner(): string {
        return encodeValue('x', 3); // leaves nothing of its own budget
      },
    };
    expect(encodeValue({ a: sneaky, b: 'y' }, 100)).toBe('{"a":{"inner":"\\"x\\""},"b":"y"}');
  });

  it('refuses a toJSON method on a plain object instead of calling its result the message', () => {
    refusedAt({ a: { toJSON: () => 'x' } }, 'message.a.toJSON', 'a function');
  });

  it('refuses a bad maxLength with ERR_INVALID_ARGUMENT', () => {
    for (const bad of [0, -1, 1.5, NaN]) expectKeelError(thrown(() => encodeValue(1, bad)), 'ERR_INVALID_ARGUMENT', '`maxLength`');
  });
});

describe('encodeValue: size', () => {
  it('refuses an encoding longer than maxLength with its exact size and the limit', () => {
    const value = { a: 1, b: 2, c: 3, d: 4 }; // '{"a":1,"b":2,"c":3,"d":4}': 25 characters
    expect(encodeValue(value, 25)).toBe('{"a":1,"b":2,"c":3,"d":4}');
    const e = thrown(() => encodeValue(value, 24));
    expectKeelError(e, 'ERR_MESSAGE_TOO_LARGE', 'at most 24 characters, got 25', 'message_too_large');
    expect(e).toBeInstanceOf(MessageTooLargeError);
    const err = e as MessageTooLargeError;
    expect([err.size, err.limit, err.exact, err.reason]).toEqual([25, 24, true, 'message_too_large']);
  });

  it('counts the tags and the slow path too', () => {
    const value = new Map([['k', 'v']]);
    const text = encodeValue(value);
    expect(encodeValue(value, text.length)).toBe(text);
    const err = thrown(() => encodeValue(value, text.length - 1)) as MessageTooLargeError;
    expect([err.code, err.size, err.limit, err.exact]).toEqual(['ERR_MESSAGE_TOO_LARGE', text.length, text.length - 1, true]);
  });

  it('stops early for a huge value and reports a lower bound, without building the whole text', () => {
    const huge = Array.from({ length: 200_000 }, (_, i) => ({ i, s: 'xxxxxxxxxx' }));
    const e = thrown(() => encodeValue(huge, 1000)) as MessageTooLargeError;
    expectKeelError(e, 'ERR_MESSAGE_TOO_LARGE', 'at most 1000 characters, got at least');
    expect(e.exact).toBe(false);
    expect(e.limit).toBe(1000);
    expect(e.size).toBeGreaterThan(1000);
    expect(e.size).toBeLessThan(1100);
  });

  it('stops early for a vast sparse array (its holes are undefined, each a tag)', () => {
    const e = thrown(() => encodeValue(new Array(100_000_000), 1000)) as MessageTooLargeError;
    expect([e.code, e.exact, e.limit]).toEqual(['ERR_MESSAGE_TOO_LARGE', false, 1000]);
    expect(e.size).toBeGreaterThan(1000);
    expect(e.size).toBeLessThan(1100);
  });

  it('stops early on the slow path too (a Map of many entries)', () => {
    const big = new Map(Array.from({ length: 100_000 }, (_, i) => [i, 'yyyyyyyyyy'] as const));
    const e = thrown(() => encodeValue(big, 500)) as MessageTooLargeError;
    expect([e.code, e.exact, e.limit]).toEqual(['ERR_MESSAGE_TOO_LARGE', false, 500]);
    expect(e.size).toBeGreaterThan(500);
  });
});

describe('decodeBatch: hostile text', () => {
  it('refuses a __proto__ key anywhere and pollutes nothing', () => {
    for (const text of [
      '{"__proto__":{"polluted":1}}',
      '{"a":[{"__proto__":{"polluted":1}}]}',
      '{"a":{"__proto__":1}}',
      '[1,"a",1,0,[["m",1,null,{"x":{"__proto__":{"polluted":1}}}]]]',
      '{"\\u005f_proto__":{"polluted":1}}',
      '{"$keel":"esc","v":[["__proto__",{"polluted":1}]]}',
      '{"$keel":"err","name":"Error","message":"m","props":{"__proto__":{"polluted":1}}}',
    ]) {
      malformed(text, "expected no '__proto__' key");
    }
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    expect(Object.prototype).not.toHaveProperty('polluted');
  });

  it("refuses 'prototype' under 'constructor'", () => {
    malformed('{"constructor":{"prototype":{"polluted":1}}}', "no 'prototype' key under 'constructor'");
    malformed('[{"a":{"constructor":{"prototype":1}}}]', "no 'prototype' key under 'constructor'");
    malformed('{"$keel":"esc","v":[["constructor",{"prototype":1}]]}', "no 'prototype' key under 'constructor'");
    // the object under 'constructor' spelt as an escape tag: its 'prototype' key exists only once revived
    malformed('{"constructor":{"$keel":"esc","v":[["prototype",{"polluted":1}]]}}', "no 'prototype' key under 'constructor'");
    malformed('{"$keel":"err","name":"Error","message":"m","props":{"constructor":{"$keel":"esc","v":[["$keel",1],["prototype",1]]}}}', "no 'prototype' key under 'constructor'");
    expect(({} as { polluted?: unknown }).polluted).toBeUndefined();
    // a 'prototype' or 'constructor' key alone is data
    const data = decodeBatch('{"prototype":1,"constructor":{"a":1}}', pids) as Record<string, unknown>;
    expect(Object.keys(data)).toEqual(['prototype', 'constructor']);
    expect([data.prototype, { ...(data.constructor as object) }]).toStrictEqual([1, { a: 1 }]);
  });

  it.each([
    ['an unknown tag', '{"$keel":"nope"}', 'a known $keel tag'],
    ['a non-string tag', '{"$keel":5}', 'a known $keel tag'],
    ['a pid without parts', '{"$keel":"pid","n":"a"}', 'a pid tag'],
    ['a pid with a fractional id', '{"$keel":"pid","n":"a","c":1,"i":1.5}', 'a pid tag'],
    ['a ref without id', '{"$keel":"ref","n":"a"}', 'a ref tag'],
    ['an empty name', '{"$keel":"name","t":""}', 'a name tag'],
    ['a bad number', '{"$keel":"num","v":"1e999"}', 'a number tag'],
    ['an inherited number key', '{"$keel":"num","v":"toString"}', 'a number tag'],
    ['a bad bigint', '{"$keel":"big","v":"12x"}', 'a bigint tag'],
    ['a bad date', '{"$keel":"date","v":"yesterday"}', 'a date tag'],
    ['bad base64', '{"$keel":"u8","v":"@@@@"}', 'a bytes tag'],
    ['an odd map', '{"$keel":"map","v":[1]}', 'a map tag'],
    ['a set of no array', '{"$keel":"set","v":1}', 'a set tag'],
    ['a bad escape', '{"$keel":"esc","v":[[1,2]]}', 'an escape tag'],
    ['an error without message', '{"$keel":"err","name":"Error"}', 'an error tag'],
    ['an error with array props', '{"$keel":"err","name":"Error","message":"m","props":[1]}', 'an error tag'],
    ['text that is not JSON', '{"a":', 'JSON text'],
    ['empty text', '', 'JSON text'],
    ['not JSON and mentions $keel', '{"$keel":', 'JSON text'],
  ])('refuses %s with ERR_MALFORMED_FRAME', (_, text, fragment) => malformed(text, fragment));

  it('reads a tag spelt with \\u escapes as a tag (no way around the checks)', () => {
    malformed('{"\\u0024keel":"nope"}', 'a known $keel tag');
    expect(decodeBatch('{"\\u0024keel":"u"}', pids)).toBeUndefined();
  });

  it('refuses nesting deeper than the stack allows with ERR_MALFORMED_FRAME, and carries deep plain JSON', () => {
    const depth = 200_000;
    malformed(`${'['.repeat(depth)}{"$keel":"u"}${']'.repeat(depth)}`, 'nested no deeper than the stack allows');
    const plain = decodeBatch(`${'['.repeat(1000)}1${']'.repeat(1000)}`, pids);
    expect(JSON.stringify(plain)).toBe(`${'['.repeat(1000)}1${']'.repeat(1000)}`);
  });

  it("lets the pid factory's own error through", () => {
    const boom = new Error('factory says no');
    expect(thrown(() => decodeBatch('{"$keel":"pid","n":"a","c":1,"i":2}', () => {
      throw boom;
    }))).toBe(boom);
  });

  it('refuses a text that is not a string', () => {
    expectKeelError(thrown(() => decodeBatch(42 as never, pids)), 'ERR_MALFORMED_FRAME', 'a JSON text');
  });

  it('recovers after a refused batch (no leftover state)', () => {
    malformed('[{"$keel":"u"},{"$keel":"nope"}]', 'a known $keel tag');
    expect(decodeBatch('[{"$keel":"u"},{"a":{"$keel":"u"}}]', pids)).toStrictEqual([undefined, { a: undefined }]);
  });
});

describe('property: JSON-ish values round-trip', () => {
  // no 'constructor' key: Vitest's strict equality compares objects' `constructor` (a test above covers that key)
  const key = fc.oneof(fc.string(), fc.constantFrom('$keel', 'node', 'creation', 'id', 'prototype', 'n', 'v')).filter((k) => k !== 'constructor');
  const leaf = fc.oneof(
    fc.string(),
    fc.double(),
    fc.integer(),
    fc.boolean(),
    fc.constant(null),
    fc.constant(undefined),
    fc.bigInt(),
    fc.date({ noInvalidDate: false }),
    fc.uint8Array({ maxLength: 8 }),
    fc.constantFrom(new PidImpl('n', 1, 2), new RefImpl('n', 3), Name.of('x')),
  );
  const value = fc.letrec((tie) => ({
    v: fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('arr'), tie('obj'), tie('map'), tie('set'), tie('err')),
    arr: fc.array(tie('v'), { maxLength: 5 }),
    obj: fc
      .dictionary(key, tie('v'), { maxKeys: 5, noNullPrototype: true })
      .filter((o) => !Object.hasOwn(o, '__proto__')),
    map: fc.array(fc.tuple(tie('v'), tie('v')), { maxLength: 3 }).map((e) => new Map(e)),
    set: fc.array(tie('v'), { maxLength: 3 }).map((e) => new Set(e)),
    err: fc.tuple(fc.string(), tie('v')).map(([m, cause]) => new Error(m, { cause })),
  }));

  it('decode(encode(v)) deep-equals v', () => {
    fc.assert(
      fc.property(value.v, (v) => {
        const back = roundTrip(v);
        expect(back).toStrictEqual(v);
      }),
      { numRuns: 300 },
    );
  });
});
