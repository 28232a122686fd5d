import { describe, expect, it } from 'vitest';
import { NotSerializableError } from '../../src/errors.js';
import { checkSerializable } from '../../src/delivery/stores/DeadLetterStore.js';
import { sendSupervised } from '../../src/index.js';
import { thrown, useNodes } from '../support.js';

/** The path named by the error `checkSerializable` throws, or undefined when it accepts. */
function refusedAt(value: unknown, root?: string): string | undefined {
  try {
    checkSerializable(value, root);
    return undefined;
  } catch (e) {
    expect(e).toBeInstanceOf(NotSerializableError);
    return (e as NotSerializableError).path;
  }
}

/** A chain `{ next: { next: … leaf } }` `depth` levels deep. */
function chain(depth: number, leaf: unknown): unknown {
  let v = leaf;
  for (let i = 0; i < depth; i++) v = { next: v };
  return v;
}

describe('checkSerializable', () => {
  it('names the path of the first thing that cannot be stored', () => {
    expect(refusedAt({ order: { lines: [1, { onDone: () => 1 }] } })).toBe('message.order.lines[1].onDone');
    expect(refusedAt([{ a: 1 }, { b: Symbol('s') }], 'metadata')).toBe('metadata[1].b');
    expect(refusedAt({ acct: new Map([['k', { f: () => 1 }]]) })).toBe('message.acct.get(k).f');
    expect(refusedAt({ hidden: { [Symbol('s')]: 1 } })).toBe('message.hidden');
    expect(refusedAt({ p: new Proxy({}, {}) })).toBe('message.p');
    expect(refusedAt(() => 1)).toBe('message');
  });

  it('accepts plain data, shared and cyclic structure, and what structured clone keeps', () => {
    const shared = { n: 1 };
    const cyclic: Record<string, unknown> = { shared, list: [shared, shared] };
    cyclic.self = cyclic;
    expect(refusedAt(cyclic)).toBeUndefined();
    expect(refusedAt({ at: new Date(0), tags: new Set(['a']), m: new Map([[1, [2n]]]), bytes: new Uint8Array(2), e: new Error('x') })).toBeUndefined();
    expect(refusedAt(Object.assign(Object.create(null) as object, { a: 1 }))).toBeUndefined();
    // a non-enumerable property is not stored (structured clone skips it), so it is not checked
    expect(refusedAt(Object.defineProperty({ a: 1 }, 'fn', { value: () => 1, enumerable: false }))).toBeUndefined();
  });

  it('finds a function beyond 64 levels, in a deep tree and in a cycle', () => {
    expect(refusedAt(chain(200, { ok: true }))).toBeUndefined();
    expect(refusedAt(chain(100, () => 1))).toBe(`message${'.next'.repeat(100)}`);
    const loop: Record<string, unknown> = {};
    let at = loop;
    for (let i = 0; i < 70; i++) at = (at.next = {}) as Record<string, unknown>;
    at.back = loop;
    at.fn = () => 1;
    expect(refusedAt(loop)).toBe(`message${'.next'.repeat(70)}.fn`);
  });

  it("checks an array's own non-index properties too, as structured clone keeps them", () => {
    const list = Object.assign([1, 2], { fn: () => 1 });
    expect(refusedAt({ list })).toBe('message.list.fn');
    const sparse: unknown[] = [1, , 3]; // a hole before the extra property
    (sparse as unknown as Record<string, unknown>).extra = { deep: Symbol('s') };
    expect(refusedAt(sparse)).toBe('message.extra.deep');
    expect(refusedAt({ list: Object.assign([1], { note: { plain: true } }), match: /b(c)/.exec('abc') })).toBeUndefined();
    expect(refusedAt(new Array(3))).toBeUndefined();
  });

  it('refuses a Proxy of an array before asking it anything', () => {
    expect(refusedAt({ list: new Proxy([1, 2], {}) })).toBe('message.list');
  });

  it('refuses enumerable symbol-keyed properties, and leaves non-enumerable ones (structured clone drops both)', () => {
    expect(refusedAt({ tagged: { [Symbol('s')]: 1 } })).toBe('message.tagged');
    expect(refusedAt({ tagged: Object.defineProperty({ a: 1 }, Symbol('s'), { value: 1, enumerable: false }) })).toBeUndefined();
  });

  it('labels a Map key only for an error, and accepts a key without a string form', () => {
    const key = Object.create(null) as object;
    expect(refusedAt(new Map([[key, { n: 1 }]]))).toBeUndefined();
    expect(refusedAt(new Map([[key, () => 1]]))).toBe('message.get(object)');
    expect(refusedAt(new Map([[2, new Set([Symbol('x')])]]))).toBe('message.get(2).(a Set member)');
  });

  it('visits shared sub-objects once each when there are many paths to them', () => {
    let dag: unknown = { leaf: 1 };
    for (let i = 0; i < 40; i++) dag = [dag, dag]; // 2^40 paths, 41 objects
    expect(refusedAt(dag)).toBeUndefined();
    let bad: unknown = { leaf: () => 1 };
    for (let i = 0; i < 40; i++) bad = [bad, bad];
    expect(refusedAt(bad)).toBe(`message${'[0]'.repeat(40)}.leaf`);
  });

  it("checks the non-index properties of arrays up to 1,024 elements (listing a longer one's keys would cost more than its elements)", () => {
    const checked = Object.assign(new Array<number>(1024).fill(0), { fn: () => 1 });
    expect(refusedAt(checked)).toBe('message.fn');
    const long = Object.assign(new Array<number>(1025).fill(0), { fn: () => 1 });
    expect(refusedAt(long)).toBeUndefined();
  });

  it('checks an array whose prototype is null or Object.prototype as an array, at the root as nested (its extras past 1,024 elements and its symbol keys left, as any array\'s)', () => {
    for (const proto of [null, Object.prototype]) {
      const long = (): unknown[] => Object.setPrototypeOf(Object.assign(new Array<number>(1025).fill(0), { fn: () => 1 }), proto) as unknown[];
      expect(refusedAt({ a: long() })).toBeUndefined();
      expect(refusedAt(long())).toBeUndefined();
      const symbolic = (): unknown[] => Object.setPrototypeOf(Object.assign([1], { [Symbol('s')]: 1 }), proto) as unknown[];
      expect(refusedAt({ a: symbolic() })).toBeUndefined();
      expect(refusedAt(symbolic())).toBeUndefined();
      // what it holds is still checked, at its index
      const bad = Object.setPrototypeOf([0, () => 1], proto) as unknown[];
      expect(refusedAt(bad)).toBe('message[1]');
    }
  });

  it('refuses an Error whose cause cannot be stored', () => {
    expect(refusedAt({ e: new Error('x', { cause: { f: () => 1 } }) })).toBe('message.e.cause.f');
  });

  it('refuses a value that throws while it is read, naming where: a getter, an index getter, an Error cause getter, a thrown non-Error', () => {
    const boom = (): never => {
      throw new Error('boom');
    };
    expect(refusedAt({ order: { get total() { return boom(); } } })).toBe('message.order.total');
    expect(refusedAt({ list: [1, { get x() { return boom(); } }] }, 'metadata')).toBe('metadata.list[1].x');
    expect(refusedAt(Object.defineProperty([0, 0], 1, { get: boom, enumerable: true }))).toBe('message[1]');
    expect(refusedAt({ e: Object.defineProperty(new Error('x'), 'cause', { get: boom, enumerable: false }) })).toBe('message.e.cause');
    expect(refusedAt(new Map([['k', { get v() { throw 'not an Error'; } }]]))).toBe('message.get(k).v');
    // the message of the error says what was thrown
    expect(thrownBy({ a: { get b() { return boom(); } } })).toBe(
      "a dead letter's message must be plain data (objects, arrays, primitives, bigints, Dates, Maps, Sets, typed arrays); message.a.b is a property that throws when read (Error: boom)",
    );
  });

  it('refuses a value that threw once, at its root, even when it reads fine the second time', () => {
    let reads = 0;
    const flaky = {
      get x(): number {
        if (reads++ === 0) throw new Error('first read');
        return 1;
      },
    };
    expect(refusedAt({ flaky })).toBe('message');
    expect(reads).toBe(2);
  });

  it('refuses revoked Proxies and Proxies whose traps throw, without asking them anything', () => {
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const revokedArray = Proxy.revocable([1], {});
    revokedArray.revoke();
    const trap = (): never => {
      throw new Error('trap');
    };
    const hostile = new Proxy({}, { get: trap, ownKeys: trap, getPrototypeOf: trap, has: trap, getOwnPropertyDescriptor: trap });
    expect(refusedAt(revoked.proxy)).toBe('message');
    expect(refusedAt({ p: revoked.proxy })).toBe('message.p');
    expect(refusedAt({ list: [revokedArray.proxy] })).toBe('message.list[0]');
    expect(refusedAt({ deep: { hostile } })).toBe('message.deep.hostile');
  });

  it('still accepts cyclic structures with getters that read fine', () => {
    const cyclic: Record<string, unknown> = {
      get computed() {
        return { n: 1 };
      },
    };
    cyclic.self = cyclic;
    cyclic.list = [cyclic, { back: cyclic }];
    expect(refusedAt(cyclic)).toBeUndefined();
  });
});

/** The message of the error `checkSerializable` throws. */
function thrownBy(value: unknown): string {
  try {
    checkSerializable(value);
  } catch (e) {
    expect(e).toBeInstanceOf(NotSerializableError);
    return (e as Error).message;
  }
  return 'nothing was thrown';
}

describe('checkSerializable on a long sparse array', () => {
  const track = useNodes();
  // found by test/reliability/fuzz.delivery.test.ts (fast-check seed -907191057, path 1429): a send of a
  // sparse array of length 2**32-1 with onError 'dead_letter' blocked the event loop for over a
  // minute, the check reading every index up to the length (structured clone skips the holes)
  it('reads the elements present, not every index up to the length, and still finds what cannot be stored', () => {
    const sparse: unknown[] = [];
    sparse.length = 2 ** 32 - 1;
    sparse[7] = { fine: true };
    expect(() => checkSerializable(sparse)).not.toThrow();
    sparse[4_000_000_000] = { onDone: () => 1 };
    expect(thrown(() => checkSerializable(sparse))).toMatchObject({ code: 'ERR_NOT_SERIALIZABLE', path: 'message[4000000000].onDone' });
  });

  it('takes such an array as a dead letter in a moment', async () => {
    const node = track();
    const sparse: unknown[] = [];
    sparse.length = 2 ** 32 - 1;
    const outcome = await sendSupervised(node, 'nobody', sparse, { onError: 'dead_letter' });
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc', deadLetterId: expect.any(String) });
  });
});
