import { describe, expect, it } from 'vitest';
import { isKeelError } from '../../src/index.js';
import { createSignal, isSignal, type Signal, validateSignal } from '../../src/agents/Signal.js';
import { expectKeelError, thrown, UNREADABLE } from '../support.js';

const valid = (): Record<string, unknown> => ({
  specversion: '1.0',
  id: 'a-1',
  source: '/shop',
  type: 'order.created',
  time: '2024-05-01T12:00:00Z',
});

/** The attribute of the `ERR_INVALID_SIGNAL` that `fn` threw. */
function badAttribute(fn: () => unknown): string {
  const e = thrown(fn);
  expect(isKeelError(e, 'ERR_INVALID_SIGNAL'), `expected ERR_INVALID_SIGNAL, got ${String(e)}`).toBe(true);
  return (e as { attribute: string }).attribute;
}

describe('createSignal', () => {
  it('makes a frozen CloudEvents 1.0 event with an id, a time and the given attributes', () => {
    const s = createSignal({ type: 'order.created', source: '/shop', subject: 'order/42', datacontenttype: 'application/json', data: { total: 30 } });
    expect(s).toEqual({
      specversion: '1.0',
      id: expect.any(String),
      source: '/shop',
      type: 'order.created',
      time: expect.any(String),
      subject: 'order/42',
      datacontenttype: 'application/json',
      data: { total: 30 },
    });
    expect(Object.isFrozen(s)).toBe(true);
    expect(s.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number.isNaN(Date.parse(s.time))).toBe(false);
    expect(isSignal(s)).toBe(true);
  });

  it('gives every signal a unique id', () => {
    const ids = new Set(Array.from({ length: 10_000 }, () => createSignal({ type: 't', source: 's' }).id));
    expect(ids.size).toBe(10_000);
  });

  it('keeps a given id and takes time as a Date, epoch ms or RFC 3339 text', () => {
    const at = Date.UTC(2024, 4, 1, 12, 0, 0);
    expect(createSignal({ type: 't', source: 's', id: 'mine' }).id).toBe('mine');
    expect(createSignal({ type: 't', source: 's', time: new Date(at) }).time).toBe('2024-05-01T12:00:00.000Z');
    expect(createSignal({ type: 't', source: 's', time: at }).time).toBe('2024-05-01T12:00:00.000Z');
    expect(createSignal({ type: 't', source: 's', time: '2024-05-01T14:00:00+02:00' }).time).toBe('2024-05-01T14:00:00+02:00');
  });

  it('leaves out the optional attributes not given, and keeps data given as undefined', () => {
    const s = createSignal({ type: 't', source: 's' });
    expect(Object.keys(s).sort()).toEqual(['id', 'source', 'specversion', 'time', 'type']);
    expect('data' in createSignal({ type: 't', source: 's', data: undefined })).toBe(true);
  });

  it('refuses each bad attribute with ERR_INVALID_SIGNAL naming it', () => {
    expect(badAttribute(() => createSignal({ type: '', source: 's' }))).toBe('type');
    expect(badAttribute(() => createSignal({ type: 'order..created', source: 's' }))).toBe('type');
    expect(badAttribute(() => createSignal({ type: 't', source: '' }))).toBe('source');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', id: '' }))).toBe('id');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', time: 'yesterday' }))).toBe('time');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', time: new Date(NaN) }))).toBe('time');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', time: Infinity }))).toBe('time');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', subject: '' }))).toBe('subject');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', datacontenttype: 42 as never }))).toBe('datacontenttype');
    expect(badAttribute(() => createSignal({ type: 't', source: 's', dataschema: '' }))).toBe('dataschema');
  });

  it('refuses a non-object input with ERR_INVALID_ARGUMENT', () => {
    expectKeelError(thrown(() => createSignal(null as never)), 'ERR_INVALID_ARGUMENT', 'input');
    expectKeelError(thrown(() => createSignal('order.created' as never)), 'ERR_INVALID_ARGUMENT', 'input');
  });
});

describe('validateSignal', () => {
  it('accepts a well-formed CloudEvents object made elsewhere (with extension attributes)', () => {
    const s = { ...valid(), subject: 'x', dataschema: 'https://example.com/s.json', data: [1], traceparent: '00-abc', priority: 3, urgent: true };
    expect(() => validateSignal(s)).not.toThrow();
    expect(isSignal(s)).toBe(true);
  });

  it('throws ERR_INVALID_SIGNAL with the attribute for each malformed attribute', () => {
    const cases: [Record<string, unknown> | unknown, string, string][] = [
      [null, 'signal', 'a CloudEvents 1.0 object'],
      ['order.created', 'signal', 'a CloudEvents 1.0 object'],
      [[valid()], 'signal', 'a CloudEvents 1.0 object'],
      [{ ...valid(), specversion: '0.3' }, 'specversion', "'1.0'"],
      [{ ...valid(), specversion: undefined }, 'specversion', "'1.0'"],
      [{ ...valid(), id: '' }, 'id', 'non-empty string'],
      [{ ...valid(), id: 7 }, 'id', 'non-empty string'],
      [{ ...valid(), source: undefined }, 'source', 'non-empty string'],
      [{ ...valid(), type: undefined }, 'type', 'non-empty string'],
      [{ ...valid(), type: '.order' }, 'type', 'segments'],
      [{ ...valid(), type: 'order.' }, 'type', 'segments'],
      [{ ...valid(), type: 'a..b' }, 'type', 'segments'],
      [{ ...valid(), time: undefined }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-05-01' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-05-01 12:00:00Z' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-05-01T12:00:00' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2023-02-29T12:00:00Z' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-13-01T12:00:00Z' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-04-31T12:00:00Z' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-05-01T24:00:00Z' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: '2024-05-01T12:00:00+25:00' }, 'time', 'RFC 3339'],
      [{ ...valid(), time: 1714564800000 }, 'time', 'RFC 3339'],
      [{ ...valid(), subject: 5 }, 'subject', 'non-empty string'],
      [{ ...valid(), subject: '' }, 'subject', 'non-empty string'],
      [{ ...valid(), datacontenttype: '' }, 'datacontenttype', 'media type'],
      [{ ...valid(), dataschema: 1 }, 'dataschema', 'URI'],
      [{ ...valid(), Trace_Parent: 'x' }, 'Trace_Parent', 'lower-case'],
      [{ ...valid(), tags: ['a'] }, 'tags', 'string, boolean or integer'],
      [{ ...valid(), ratio: 0.5 }, 'ratio', 'string, boolean or integer'],
    ];
    for (const [value, attribute, fragment] of cases) {
      const e = thrown(() => validateSignal(value));
      expectKeelError(e, 'ERR_INVALID_SIGNAL', `\`${attribute}\``, fragment);
      expect((e as { attribute: string }).attribute).toBe(attribute);
      expect(isSignal(value)).toBe(false);
    }
  });

  it('accepts the RFC 3339 forms: fractions, offsets, lower-case t and z, a leap day and a leap second', () => {
    for (const time of ['2024-05-01T12:00:00.123456Z', '2024-05-01t12:00:00z', '2024-05-01T12:00:00-05:30', '2024-02-29T00:00:00Z', '2016-12-31T23:59:60Z', '2000-02-29T00:00:00Z']) {
      expect(() => validateSignal({ ...valid(), time }), time).not.toThrow();
    }
    expect(badAttribute(() => validateSignal({ ...valid(), time: '1900-02-29T00:00:00Z' }))).toBe('time');
  });

  it('checks a mutable signal again at every call (it may have changed)', () => {
    const s = valid();
    validateSignal(s);
    (s as Record<string, unknown>).type = '';
    expect(badAttribute(() => validateSignal(s))).toBe('type');
    const frozen: Signal = createSignal({ type: 't', source: 's' });
    expect(() => validateSignal(frozen)).not.toThrow();
  });
});

describe('createSignal given a time that cannot be inspected', () => {
  // the same defect as GenServer.call's (fuzz seed 1660631497, path 54): `time instanceof Date` threw a
  // raw TypeError on a proxy whose traps throw
  it('throws ERR_INVALID_SIGNAL naming time', () => {
    for (const [, make] of UNREADABLE) {
      expectKeelError(thrown(() => createSignal({ type: 'a.b', source: '/s', time: make() as never })), 'ERR_INVALID_SIGNAL', '`time`');
    }
  });
});

describe('a signal, or the input of one, that cannot be read', () => {
  // found by test/reliability/fuzz.agents.test.ts: validateSignal of a revoked array proxy (fast-check
  // seed 318857364, path 10) and router.publish of one (seed 1773948472, path 7) threw TypeError:
  // Cannot perform 'IsArray'; a getter that throws escaped validateSignal and createSignal raw too
  it('is ERR_INVALID_SIGNAL (validateSignal) or ERR_INVALID_ARGUMENT (createSignal), and isSignal answers false', () => {
    const { proxy: revokedArray, revoke } = Proxy.revocable([], {});
    revoke();
    const getter = (key: string, base: object): object => Object.defineProperty({ ...base }, key, { enumerable: true, get: () => { throw new Error(`${key} getter`); } });
    const valid = { specversion: '1.0', id: '1', source: '/s', type: 'a.b', time: '2024-05-01T12:00:00Z' };
    for (const bad of [revokedArray, ...UNREADABLE.map(([, make]) => make())]) {
      expectKeelError(thrown(() => validateSignal(bad)), 'ERR_INVALID_SIGNAL', '`signal`', 'got a proxy');
      expect(isSignal(bad)).toBe(false);
      expectKeelError(thrown(() => createSignal(bad as never)), 'ERR_INVALID_ARGUMENT', '`input`', 'got a proxy');
    }
    expectKeelError(thrown(() => validateSignal(getter('source', valid))), 'ERR_INVALID_SIGNAL', '`signal`', 'reading one threw Error: source getter');
    expectKeelError(thrown(() => createSignal(getter('subject', { type: 'a.b', source: '/s' }) as never)), 'ERR_INVALID_ARGUMENT', '`input`', 'reading one threw Error: subject getter');
    expect(createSignal({ type: 'a.b', source: '/s' }).type).toBe('a.b');
  });
});

describe('the CloudEvents JSON format (json-format.md 1.0.2)', () => {
  // §2.2: "When decoding attributes and a null value is encountered, it MUST be treated as the
  // equivalent of unset or omitted"; the spec's own example events carry `"subject": null` and
  // `"unsetextension": null`
  const specExample = '{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","subject":null,"id":"C234-1234-1234","time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,"unsetextension":null,"datacontenttype":"application/json","data":{"appinfoA":"abc"}}';

  it('an optional attribute given as null is unset: the spec’s example event validates, null data is kept', () => {
    const parsed = JSON.parse(specExample) as unknown;
    expect(() => validateSignal(parsed)).not.toThrow();
    expect(isSignal(parsed)).toBe(true);
    for (const attribute of ['subject', 'datacontenttype', 'dataschema', 'someext']) {
      expect(isSignal({ ...valid(), [attribute]: null }), attribute).toBe(true);
    }
    expect(isSignal({ ...valid(), data: null })).toBe(true);
    // the attributes Keel requires stay required when null
    for (const attribute of ['specversion', 'id', 'source', 'type', 'time']) {
      expect(badAttribute(() => validateSignal({ ...valid(), [attribute]: null }))).toBe(attribute);
    }
  });

  it('createSignal leaves out an optional attribute given as null', () => {
    const s = createSignal({ type: 'a.b', source: '/s', id: 'x', time: 0, subject: null as never, datacontenttype: null as never, dataschema: null as never, data: null });
    expect(Object.keys(s)).toEqual(['specversion', 'id', 'source', 'type', 'time', 'data']);
    expect(s.data).toBe(null);
  });
});

describe('an integer extension attribute', () => {
  // CloudEvents 1.0.2 type system: "Integer - A whole number in the range -2,147,483,648 to
  // +2,147,483,647 inclusive"
  it('is a 32-bit signed integer: the ends of the range are accepted, one beyond them refused naming it', () => {
    for (const n of [2 ** 31 - 1, -(2 ** 31), 0]) expect(isSignal({ ...valid(), count: n }), String(n)).toBe(true);
    for (const n of [2 ** 31, -(2 ** 31) - 1, Number.MAX_SAFE_INTEGER]) {
      expectKeelError(thrown(() => validateSignal({ ...valid(), count: n })), 'ERR_INVALID_SIGNAL', '`count`', 'integer');
    }
  });
});

describe('binary data (data_base64, json-format.md 1.0.2 §3.1)', () => {
  // the spec's example event with Binary-valued data
  const binary = '{"specversion":"1.0","type":"com.example.someevent","source":"/mycontext","id":"A234-1234-1234","time":"2018-04-05T17:31:00Z","comexampleextension1":"value","comexampleothervalue":5,"datacontenttype":"application/vnd.apache.thrift.binary","data_base64":"AAECAw=="}';

  it('an event with data_base64 validates; one with both data and data_base64, or data_base64 not base64, is refused naming it', () => {
    expect(isSignal(JSON.parse(binary))).toBe(true);
    expect(isSignal({ ...valid(), data_base64: '' })).toBe(true);
    for (const bad of [{ data_base64: 'AAECAw==', data: null }, { data_base64: 'AAECAw==', data: { a: 1 } }, { data_base64: 'not base64!' }, { data_base64: 'AAE' }, { data_base64: 7 }]) {
      expect(badAttribute(() => validateSignal({ ...valid(), ...bad })), JSON.stringify(bad)).toBe('data_base64');
    }
  });
});
