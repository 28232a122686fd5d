/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Pid, Registry, type Context, type KeyRegistry, type Node, type RegistryEntry, type RegistryEvent } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { fullGc } from '../../src/cli/heapSampler.js';
import { registriesOf } from '../../src/otp/Registry.js';
import { probe } from '../../src/testing/index.js';
import { expectKeelError, receiveDown, receiver, revokedProxy, seeded, shuffle, spawnWithContext, thrown, trappingProxy, useNodes } from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** The number of death hooks on a live process (the registry adds one per owner). */
function deathHooks(node: KeelNode, pid: Pid): number {
  return node.resolve(pid)?.x?.exitHooks?.size ?? 0;
}

function pidsOf(reg: KeyRegistry<string, unknown>, key: string): string[] {
  return reg.lookup(key).map((e) => Pid.format(e.pid));
}

// ---- duplicate keys ---------------------------------------------------------------------------

describe("Registry.create(node, { keys: 'duplicate' })", () => {
  it('registers several processes under one key; lookup lists them in registration order with their values', async () => {
    const node = track();
    const reg = Registry.create<string, { since: number }>(node, { keys: 'duplicate' });
    expect(reg.keys).toBe('duplicate');
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'prices', { since: 1 })).toBe('ok');
    expect(reg.register(b.ctx, 'prices', { since: 2 })).toBe('ok');
    expect(reg.register(b.ctx, 'news', { since: 3 })).toBe('ok');
    expect(reg.lookup('prices').map((e) => [Pid.format(e.pid), e.value])).toEqual([
      [Pid.format(a.pid), { since: 1 }],
      [Pid.format(b.pid), { since: 2 }],
    ]);
    expect(pidsOf(reg, 'news')).toEqual([Pid.format(b.pid)]);
    expect(reg.lookup('nothing')).toEqual([]);
    expect(reg.size).toBe(2);
    expect(reg.keysOf(b.pid).sort()).toEqual(['news', 'prices']);
  });

  it('lets one process register a key twice: two entries, both removed by one unregister', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'k', 'first')).toBe('ok');
    expect(reg.register(b.ctx, 'k', 'other')).toBe('ok');
    expect(reg.register(a.ctx, 'k', 'second')).toBe('ok');
    expect(reg.lookup('k').map((e) => [Pid.format(e.pid), e.value])).toEqual([
      [Pid.format(a.pid), 'first'],
      [Pid.format(b.pid), 'other'],
      [Pid.format(a.pid), 'second'],
    ]);
    reg.unregister(a.ctx, 'k');
    expect(reg.lookup('k').map((e) => e.value)).toEqual(['other']);
    reg.unregister(b.ctx, 'k');
    expect(reg.lookup('k')).toEqual([]);
    expect(reg.size).toBe(0);
  });

  it('unregister of a key the process does not hold changes nothing', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.unregister(b.ctx, 'k');
    reg.unregister(a.ctx, 'other');
    expect(pidsOf(reg, 'k')).toEqual([Pid.format(a.pid)]);
    expect(reg.keysOf(a.pid)).toEqual(['k']);
  });

  it('dispatch calls fn with the entries of a key, and not at all for an empty key', async () => {
    const node = track();
    const reg = Registry.create<string, string>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'topic', 'a');
    reg.register(b.ctx, 'topic', 'b');
    const calls: string[][] = [];
    expect(reg.dispatch('topic', (entries) => calls.push(entries.map((e) => e.value)))).toBe(true);
    expect(calls).toEqual([['a', 'b']]);
    expect(reg.dispatch('empty', (entries) => calls.push(entries.map((e) => e.value)))).toBe(false);
    reg.unregister(a.ctx, 'topic');
    reg.unregister(b.ctx, 'topic');
    expect(reg.dispatch('topic', (entries) => calls.push(entries.map((e) => e.value)))).toBe(false);
    expect(calls).toEqual([['a', 'b']]);
  });

  it('dispatch can be used to send to every registered process', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const p1 = probe(node);
    const p2 = probe(node);
    reg.register(p1.ctx, 'all', null);
    reg.register(p2.ctx, 'all', null);
    reg.dispatch('all', (entries) => {
      for (const e of entries) node.send(e.pid, 'tick');
    });
    expect(await p1.receive((m) => m === 'tick')).toBe('tick');
    expect(await p2.receive((m) => m === 'tick')).toBe('tick');
  });

  it('entries vanish with their owner, under every key it held', async () => {
    const node = track();
    const p = probe(node);
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'x', 1);
    reg.register(a.ctx, 'x', 2);
    reg.register(a.ctx, 'y', 3);
    reg.register(b.ctx, 'x', 4);
    const ref = p.ctx.monitor(a.pid);
    node.exit(a.pid, 'kill');
    await receiveDown(p, ref);
    expect(reg.lookup('x').map((e) => e.value)).toEqual([4]);
    expect(reg.lookup('y')).toEqual([]);
    expect(reg.size).toBe(1);
    expect(reg.keysOf(a.pid)).toEqual([]);
    // the key is gone entirely once the last owner dies (a normal exit too)
    b.ctx.exit('normal');
    expect(reg.lookup('x')).toEqual([]);
    expect(reg.size).toBe(0);
  });

  it("removes the owner's death hook once it has unregistered every key", async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const base = deathHooks(node, a.pid);
    reg.register(a.ctx, 'x', 1);
    expect(deathHooks(node, a.pid)).toBe(base + 1);
    reg.register(a.ctx, 'y', 1);
    reg.register(a.ctx, 'x', 2);
    expect(deathHooks(node, a.pid)).toBe(base + 1);
    reg.unregister(a.ctx, 'x');
    expect(deathHooks(node, a.pid)).toBe(base + 1);
    reg.unregister(a.ctx, 'y');
    expect(deathHooks(node, a.pid)).toBe(base);
    // registering again adds one hook again, and death still cleans up
    reg.register(a.ctx, 'z', 1);
    expect(deathHooks(node, a.pid)).toBe(base + 1);
    node.exit(a.pid, 'kill');
    expect(reg.size).toBe(0);
  });

  it('two registries on one node are independent', async () => {
    const node = track();
    const r1 = Registry.create(node, { keys: 'duplicate' });
    const r2 = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    r1.register(a.ctx, 'k', 1);
    expect(r2.lookup('k')).toEqual([]);
    r2.register(a.ctx, 'k', 2);
    r1.unregister(a.ctx, 'k');
    expect(r2.lookup('k').map((e) => e.value)).toEqual([2]);
    node.exit(a.pid, 'kill');
    expect([r1.size, r2.size]).toEqual([0, 0]);
  });

  it('1,000 owners dying in random order leave it empty', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate' });
    const owners: { pid: Pid; ctx: Context }[] = [];
    for (let i = 0; i < 1000; i++) {
      const o = await spawnWithContext(node);
      reg.register(o.ctx, 'shared', i);
      reg.register(o.ctx, `bucket-${i % 7}`, i);
      reg.register(o.ctx, `own-${i}`, i);
      if (i % 3 === 0) reg.register(o.ctx, 'shared', -i);
      owners.push(o);
    }
    expect(reg.size).toBe(1 + 7 + 1000);
    expect(reg.lookup('shared')).toHaveLength(1000 + 334);
    const order = shuffle(owners, seeded(1234)); // seeded, so that a failure can be replayed
    order.forEach((o, n) => {
      node.exit(o.pid, n % 2 === 0 ? 'kill' : new Error('gone'));
      if (n === 499) {
        const alive = new Set(order.slice(500).map((x) => Pid.format(x.pid)));
        expect(new Set(pidsOf(reg, 'shared'))).toEqual(alive);
        expect(reg.size).toBe(1 + 7 + 500);
      }
    });
    await node.idle();
    expect(reg.size).toBe(0);
    expect(reg.lookup('shared')).toEqual([]);
    for (let b = 0; b < 7; b++) expect(reg.lookup(`bucket-${b}`)).toEqual([]);
    expect((reg as unknown as { owners: number }).owners).toBe(0);
  });
});

// ---- unique keys ------------------------------------------------------------------------------

describe("Registry.create(node, { keys: 'unique' })", () => {
  it("answers { error: 'already_registered', pid } for a taken key, and frees it when the owner dies", async () => {
    const node = track();
    const p = probe(node);
    const reg = Registry.create(node, { keys: 'unique' });
    expect(reg.keys).toBe('unique');
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'leader', 'a')).toBe('ok');
    const taken = reg.register(b.ctx, 'leader', 'b');
    expect(taken).toEqual({ error: 'already_registered', pid: a.pid });
    // the owner itself cannot take it twice either
    expect(reg.register(a.ctx, 'leader', 'again')).toEqual({ error: 'already_registered', pid: a.pid });
    expect(reg.lookup('leader').map((e) => e.value)).toEqual(['a']);
    const ref = p.ctx.monitor(a.pid);
    node.exit(a.pid, 'kill');
    await receiveDown(p, ref);
    expect(reg.register(b.ctx, 'leader', 'b')).toBe('ok');
    expect(pidsOf(reg, 'leader')).toEqual([Pid.format(b.pid)]);
  });

  it('takes a key whose owner has died before the registry has heard of it (its death hook not run yet), as Elixir checks the owner is alive', async () => {
    const node = track();
    const events = receiver(node);
    const reg = Registry.create<string, string>(node, { keys: 'unique', listeners: [events.pid] });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'leader', 'a')).toBe('ok');
    // user code that runs during a's death, before the registry's death hook: a listener of its signal
    let during: unknown;
    a.ctx.signal.addEventListener('abort', () => {
      during = reg.register(b.ctx, 'leader', 'b');
    });
    node.exit(a.pid, 'kill');
    expect(during).toBe('ok');
    expect(reg.lookup('leader')).toEqual([{ pid: b.pid, value: 'b' }]);
    expect(reg.keysOf(a.pid)).toEqual([]);
    expect(reg.count()).toBe(1);
    await node.idle();
    // a's leaving is told once, before b's registration
    expect(events.seen.map((s) => { const ev = s.message as RegistryEvent<string, string>; return `${ev.kind} ${Pid.format(ev.pid)}`; })).toEqual([
      `registry_register ${Pid.format(a.pid)}`,
      `registry_unregister ${Pid.format(a.pid)}`,
      `registry_register ${Pid.format(b.pid)}`,
    ]);
  });

  it('does not show an owner that has died before the registry has heard of it: lookup, match, countMatch and select skip it, as Elixir\'s lookup checks the owner is alive', async () => {
    const node = track();
    const reg = Registry.create<string, string>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'topic', 'a')).toBe('ok');
    expect(reg.register(b.ctx, 'topic', 'b')).toBe('ok');
    let seen: unknown;
    a.ctx.signal.addEventListener('abort', () => {
      seen = {
        lookup: reg.lookup('topic'),
        match: reg.match('topic', Registry.any),
        countMatch: reg.countMatch('topic', Registry.any),
        select: reg.select().map((e) => e.value),
      };
    });
    node.exit(a.pid, 'kill');
    expect(seen).toEqual({ lookup: [{ pid: b.pid, value: 'b' }], match: [{ pid: b.pid, value: 'b' }], countMatch: 1, select: ['b'] });
    expect(reg.lookup('topic')).toEqual([{ pid: b.pid, value: 'b' }]);
  });

  it('updateValue does not name an owner that has died before the registry has heard of it: the key is not registered, as lookup says', async () => {
    const node = track();
    const reg = Registry.create<string, string>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'leader', 'a')).toBe('ok');
    let seen: unknown;
    a.ctx.signal.addEventListener('abort', () => {
      seen = { lookup: reg.lookup('leader'), update: reg.updateValue(b.ctx, 'leader', (v) => `${v}!`), keysOf: reg.keysOf(a.pid), values: reg.values('leader', a.pid) };
    });
    node.exit(a.pid, 'kill');
    expect(seen).toEqual({ lookup: [], update: { error: 'not_registered' }, keysOf: [], values: [] });
  });

  it('frees a key on unregister', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.unregister(a.ctx, 'k');
    expect(reg.register(b.ctx, 'k', 2)).toBe('ok');
    expect(reg.lookup('k').map((e) => e.value)).toEqual([2]);
  });
});

// ---- bad input --------------------------------------------------------------------------------

describe('Registry bad input', () => {
  it.each<[string, unknown, unknown, string]>([
    ['a non-node', {}, { keys: 'duplicate' }, 'node'],
    ['an unknown keys mode', 'node', { keys: 'many' }, 'options.keys'],
    ['missing options', 'node', undefined, 'options.keys'],
    ['null options', 'node', null, 'options.keys'],
  ])('Registry.create with %s throws ERR_INVALID_ARGUMENT', (_label, nodeArg, options, argument) => {
    const node = track();
    const target = nodeArg === 'node' ? node : nodeArg;
    expectKeelError(thrown(() => Registry.create(target as Node, options as never)), 'ERR_INVALID_ARGUMENT', argument);
  });

  it('register and unregister need the calling process’s own context on the registry’s node', async () => {
    const node = track();
    const other = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const foreign = await spawnWithContext(other);
    expectKeelError(thrown(() => reg.register(node as never, 'k', 1)), 'ERR_INVALID_ARGUMENT', 'ctx');
    expectKeelError(thrown(() => reg.register({ self: node.spawn(() => () => undefined) } as never, 'k', 1)), 'ERR_INVALID_ARGUMENT', 'ctx');
    expectKeelError(thrown(() => reg.register(foreign.ctx, 'k', 1)), 'ERR_INVALID_ARGUMENT', 'ctx');
    expectKeelError(thrown(() => reg.unregister(node as never, 'k')), 'ERR_INVALID_ARGUMENT', 'ctx');
    expect(reg.size).toBe(0);
  });

  it('dispatch with a non-function throws ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    expectKeelError(thrown(() => reg.dispatch('k', 'send' as never)), 'ERR_INVALID_ARGUMENT', 'fn');
  });

  it('a process that has exited cannot register: ERR_PROCESS_EXITED, and no entry is left behind', async () => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    a.ctx.exit('normal');
    expectKeelError(thrown(() => reg.register(a.ctx, 'k', 1)), 'ERR_PROCESS_EXITED');
    expect(reg.lookup('k')).toEqual([]);
    expect(reg.size).toBe(0);
  });
});

// ---- Elixir's documentation examples, translated ----------------------------------------------

describe("Registry: Elixir's examples", () => {
  it('dispatch: a duplicate registry as a dispatcher (each entry says what to call)', async () => {
    const node = track();
    const reg = Registry.create<string, (pid: Pid) => string>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'hello', (pid) => `inspect ${Pid.format(pid)}`);
    const out: string[] = [];
    reg.dispatch('hello', (entries) => {
      for (const { pid, value } of entries) out.push(value(pid));
    });
    expect(out).toEqual([`inspect ${Pid.format(a.pid)}`]);
  });

  it('pubsub: a partitioned duplicate registry broadcasts to every subscriber', async () => {
    const node = track();
    const reg = Registry.create<string, null>(node, { keys: 'duplicate', partitions: 4 });
    const subs = [probe(node), probe(node), probe(node)];
    for (const s of subs) reg.register(s.ctx, 'hello', null);
    let calls = 0;
    reg.dispatch('hello', (entries) => {
      calls++;
      for (const e of entries) node.send(e.pid, { broadcast: 'world' });
    });
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThanOrEqual(3);
    for (const s of subs) expect(await s.receive()).toEqual({ broadcast: 'world' });
  });

  it('lookup (unique, then duplicate)', async () => {
    const node = track();
    const unique = Registry.create<string, string>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    expect(unique.lookup('hello')).toEqual([]);
    expect(unique.register(a.ctx, 'hello', 'world')).toBe('ok');
    expect(unique.lookup('hello')).toEqual([{ pid: a.pid, value: 'world' }]);
    const dup = Registry.create<string, string>(node, { keys: 'duplicate' });
    dup.register(a.ctx, 'hello', 'world');
    dup.register(a.ctx, 'hello', 'another');
    expect(dup.lookup('hello').map((e) => e.value).sort()).toEqual(['another', 'world']);
  });

  it('match and countMatch, with the wildcard and guards', async () => {
    const node = track();
    const reg = Registry.create<string, [number, string, number]>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'hello', [1, 'atom', 1]);
    reg.register(a.ctx, 'hello', [2, 'atom', 2]);
    const _ = Registry.any;
    expect(reg.match('hello', [1, _, _])).toEqual([{ pid: a.pid, value: [1, 'atom', 1] }]);
    expect(reg.match('hello', [2, _, _])).toEqual([{ pid: a.pid, value: [2, 'atom', 2] }]);
    expect(reg.match('hello', [_, 'atom', _]).map((e) => e.value)).toEqual([[1, 'atom', 1], [2, 'atom', 2]]);
    expect(reg.match('hello', [_, _, _], (v) => v[2] > 1).map((e) => e.value)).toEqual([[2, 'atom', 2]]);
    expect(reg.match('hello', [_, _, _], (v) => typeof v[1] === 'string')).toHaveLength(2);
    expect(reg.match('hello', [_, _] as never)).toEqual([]); // an array pattern matches its length only (the type says so too)
    expect(reg.match('other', _)).toEqual([]);
    expect(reg.countMatch('hello', [1, _, _])).toBe(1);
    expect(reg.countMatch('hello', [_, 'atom', _])).toBe(2);
    expect(reg.countMatch('hello', [_, _, _], (v) => v[2] > 1)).toBe(1);
    expect(reg.countMatch('hello', [3, _, _])).toBe(0);
  });

  it('match on objects is a subset match, nested', async () => {
    const node = track();
    type Sub = { topic: string; opts: { qos: number; retain: boolean } };
    const reg = Registry.create<string, Sub>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 't', { topic: 'x', opts: { qos: 1, retain: false } });
    reg.register(b.ctx, 't', { topic: 'y', opts: { qos: 1, retain: true } });
    expect(reg.match('t', { opts: { qos: 1 } }).map((e) => e.value.topic)).toEqual(['x', 'y']);
    expect(reg.match('t', { opts: { retain: true } }).map((e) => e.pid)).toEqual([b.pid]);
    expect(reg.match('t', { topic: 'x', opts: { retain: true } })).toEqual([]);
    expect(reg.match('t', {})).toHaveLength(2);
    expect(reg.match('t', { topic: 'y' }, (_v, pid) => pid === a.pid)).toEqual([]);
  });

  it('unregisterMatch (unique, then duplicate)', async () => {
    const node = track();
    const unique = Registry.create<string, string>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    unique.register(a.ctx, 'hello', 'world');
    expect(unique.unregisterMatch(a.ctx, 'hello', 'foo')).toBe(0);
    expect(unique.lookup('hello')).toEqual([{ pid: a.pid, value: 'world' }]);
    expect(unique.unregisterMatch(a.ctx, 'hello', 'world')).toBe(1);
    expect(unique.lookup('hello')).toEqual([]);
    expect(unique.keysOf(a.pid)).toEqual([]);

    const dup = Registry.create<string, string>(node, { keys: 'duplicate' });
    const b = await spawnWithContext(node);
    dup.register(a.ctx, 'hello', 'world_a');
    dup.register(a.ctx, 'hello', 'world_b');
    dup.register(a.ctx, 'hello', 'world_c');
    dup.register(b.ctx, 'hello', 'world_a');
    expect(dup.unregisterMatch(a.ctx, 'hello', 'world_a')).toBe(1);
    expect(dup.lookup('hello').map((e) => [e.pid, e.value])).toEqual([
      [a.pid, 'world_b'],
      [a.pid, 'world_c'],
      [b.pid, 'world_a'],
    ]);
    expect(dup.unregisterMatch(a.ctx, 'hello', Registry.any, (v) => v.endsWith('c'))).toBe(1);
    expect(dup.values('hello', a.pid)).toEqual(['world_b']);
    expect(dup.count()).toBe(2);
  });

  it('updateValue', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'hello', 1);
    expect(reg.updateValue(a.ctx, 'hello', (v) => v + 1)).toEqual({ newValue: 2, oldValue: 1 });
    expect(reg.lookup('hello')).toEqual([{ pid: a.pid, value: 2 }]);
  });

  it('keysOf (Elixir keys/2), values and count', async () => {
    const node = track();
    const reg = Registry.create<string, string>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    expect(reg.keysOf(a.pid)).toEqual([]);
    expect(reg.count()).toBe(0);
    reg.register(a.ctx, 'hello', 'world');
    reg.register(a.ctx, 'hello', 'again');
    reg.register(a.ctx, 'world', 'x');
    expect(reg.keysOf(a.pid)).toEqual(['hello', 'world']);
    expect(reg.values('hello', a.pid)).toEqual(['world', 'again']);
    expect(reg.values('hello', b.pid)).toEqual([]);
    expect(reg.count()).toBe(3);
    expect(reg.size).toBe(2);
  });

  it('meta, putMeta, deleteMeta', () => {
    const node = track();
    const reg = Registry.create<string, unknown, { custom_key: string; other: number }>(node, { keys: 'unique', meta: { custom_key: 'custom_value' } });
    expect(reg.meta('custom_key')).toBe('custom_value');
    expect(reg.meta('other')).toBeUndefined();
    reg.putMeta('custom_key', 'new_custom_value');
    reg.putMeta('other', 7);
    expect(reg.meta('custom_key')).toBe('new_custom_value');
    expect(reg.meta('other')).toBe(7);
    reg.deleteMeta('custom_key');
    expect(reg.meta('custom_key')).toBeUndefined();
    expectKeelError(thrown(() => reg.putMeta('other', undefined as never)), 'ERR_INVALID_ARGUMENT', 'value');
  });

  it('select: everything, a predicate, or where and map', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'x', 1);
    reg.register(b.ctx, 'y', 2);
    reg.register(a.ctx, 'x', 3);
    expect(reg.select()).toEqual([
      { key: 'x', pid: a.pid, value: 1 },
      { key: 'x', pid: a.pid, value: 3 },
      { key: 'y', pid: b.pid, value: 2 },
    ]);
    expect(reg.select((e) => e.value > 1).map((e) => e.value)).toEqual([3, 2]);
    const mapped: string[] = reg.select({ where: (e) => e.pid === a.pid, map: (e) => `${e.key}=${e.value}` });
    expect(mapped).toEqual(['x=1', 'x=3']);
    expect(reg.select({ map: (e) => e.key })).toEqual(['x', 'x', 'y']);
    expectKeelError(thrown(() => reg.select(42 as never)), 'ERR_INVALID_ARGUMENT', 'query');
    expectKeelError(thrown(() => reg.select({ where: 'x' } as never)), 'ERR_INVALID_ARGUMENT', 'query.where');
    expectKeelError(thrown(() => reg.select({ map: 1 } as never)), 'ERR_INVALID_ARGUMENT', 'query.map');
  });
});

// ---- updateValue ------------------------------------------------------------------------------

describe('Registry.updateValue', () => {
  it('refuses a non-owner with { error: not_owner, pid }, an unknown key with not_registered, and changes nothing', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    let ran = 0;
    expect(reg.updateValue(b.ctx, 'k', (v) => (ran++, v + 1))).toEqual({ error: 'not_owner', pid: a.pid });
    expect(reg.updateValue(b.ctx, 'none', (v) => (ran++, v + 1))).toEqual({ error: 'not_registered' });
    expect(ran).toBe(0);
    expect(reg.lookup('k')).toEqual([{ pid: a.pid, value: 1 }]);
  });

  it('is refused on a duplicate registry, and with a non-function, by ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const dup = Registry.create<string, number>(node, { keys: 'duplicate' });
    const unique = Registry.create<string, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    dup.register(a.ctx, 'k', 1);
    unique.register(a.ctx, 'k', 1);
    expectKeelError(thrown(() => dup.updateValue(a.ctx, 'k', (v) => v + 1)), 'ERR_INVALID_ARGUMENT', 'registry');
    expectKeelError(thrown(() => unique.updateValue(a.ctx, 'k', 5 as never)), 'ERR_INVALID_ARGUMENT', 'fn');
    expectKeelError(thrown(() => unique.updateValue(node as never, 'k', (v) => v)), 'ERR_INVALID_ARGUMENT', 'ctx');
    expect(dup.lookup('k')[0]?.value).toBe(1);
  });

  it('a throwing fn leaves the value; an fn that unregisters the key updates nothing', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    expect(thrown(() => reg.updateValue(a.ctx, 'k', () => { throw new Error('boom'); }))).toBeInstanceOf(Error);
    expect(reg.lookup('k')[0]?.value).toBe(1);
    const r = reg.updateValue(a.ctx, 'k', (v) => {
      reg.unregister(a.ctx, 'k');
      return v + 1;
    });
    expect(r).toEqual({ error: 'not_registered' });
    expect(reg.lookup('k')).toEqual([]);
    expect(reg.count()).toBe(0);
  });

  it('dispatch sees the updated value', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    const seen: number[] = [];
    reg.dispatch('k', (es) => seen.push(es[0]!.value));
    reg.updateValue(a.ctx, 'k', (v) => v * 10);
    reg.dispatch('k', (es) => seen.push(es[0]!.value));
    expect(seen).toEqual([1, 10]);
  });
});

// ---- death, counts and dispatch snapshots ---------------------------------------------------

describe('Registry entries and their owners', () => {
  it('count is exact as owners die', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 3 });
    const owners: { pid: Pid; ctx: Context }[] = [];
    for (let i = 0; i < 50; i++) {
      const o = await spawnWithContext(node);
      for (let j = 0; j <= i % 4; j++) reg.register(o.ctx, `k${j}`, i);
      owners.push(o);
    }
    const per = (i: number) => (i % 4) + 1;
    let expected = owners.reduce((n, _o, i) => n + per(i), 0);
    expect(reg.count()).toBe(expected);
    for (let i = 0; i < 50; i += 2) {
      node.exit(owners[i]!.pid, 'kill');
      expected -= per(i);
      expect(reg.count()).toBe(expected);
    }
    expect(reg.lookup('k0')).toHaveLength(25);
    expect(reg.countMatch('k0', Registry.any)).toBe(25);
    expect(reg.select().length).toBe(expected);
  });

  it('dispatch hands out the same snapshot until the key changes, and the new entries after', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.register(b.ctx, 'k', 2);
    const got: (readonly RegistryEntry<number>[])[] = [];
    reg.dispatch('k', (es) => got.push(es));
    reg.dispatch('k', (es) => got.push(es));
    expect(got[0]).toBe(got[1]); // no rebuild: a call costs nothing more than the key's own entries
    reg.register(a.ctx, 'other', 0); // another key does not touch it
    reg.dispatch('k', (es) => got.push(es));
    expect(got[2]).toBe(got[0]);
    node.exit(b.pid, 'kill');
    reg.dispatch('k', (es) => got.push(es));
    expect(got[3]!.map((e) => e.value)).toEqual([1]);
    expect(got[0]!.map((e) => e.value)).toEqual([1, 2]); // an old snapshot is not changed under its holder
  });

  it('with partitions, a change rebuilds only its own partition’s snapshot', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 4 });
    const owners = [];
    for (let i = 0; i < 16; i++) {
      const o = await spawnWithContext(node);
      reg.register(o.ctx, 'k', i);
      owners.push(o);
    }
    const before: (readonly RegistryEntry<number>[])[] = [];
    reg.dispatch('k', (es) => before.push(es));
    expect(before.length).toBeGreaterThan(1);
    expect(before.flat().map((e) => e.value).sort((x, y) => x - y)).toEqual([...Array(16).keys()]);
    node.exit(owners[5]!.pid, 'kill');
    const after: (readonly RegistryEntry<number>[])[] = [];
    reg.dispatch('k', (es) => after.push(es));
    const kept = after.filter((s) => before.includes(s));
    expect(kept).toHaveLength(before.length - 1);
    expect(after.flat()).toHaveLength(15);
  });

  it('an fn that registers under the key it dispatches sees the entries of the call, and ends', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 2 });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.register(b.ctx, 'k', 2);
    let seen = 0;
    reg.dispatch('k', (es) => {
      seen += es.length;
      reg.register(a.ctx, 'k', 3);
      reg.register(b.ctx, 'k', 4);
    });
    expect(seen).toBe(2);
    expect(reg.count()).toBeGreaterThanOrEqual(4);
  });

  it('an fn that kills or unregisters owners is not handed their entries in a later partition’s call', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 4 });
    const owners = await Promise.all(Array.from({ length: 8 }, () => spawnWithContext(node)));
    owners.forEach((o, i) => reg.register(o.ctx, 'k', i));
    expect(new Set(owners.map((o) => o.pid.id % 4)).size).toBe(4); // every partition holds some
    const handed: number[][] = [];
    reg.dispatch('k', (es) => {
      handed.push(es.map((e) => e.value));
      if (handed.length === 1) {
        // the first call ends every owner outside its own partition: half killed, half unregistered
        const mine = es[0]!.pid.id % 4;
        owners.forEach((o, i) => {
          if (o.pid.id % 4 === mine) return;
          if (i % 2 === 0) node.exit(o.pid, 'kill');
          else reg.unregister(o.ctx, 'k');
        });
      }
    });
    expect(handed).toHaveLength(1);
    expect(reg.count()).toBe(2);
  });

  it('an fn that removes some entries of a later partition hands that partition’s call the entries left', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 2 });
    const owners = await Promise.all(Array.from({ length: 6 }, () => spawnWithContext(node)));
    owners.forEach((o, i) => reg.register(o.ctx, 'k', i));
    const even = owners.map((o, i) => [o, i] as const).filter(([o]) => o.pid.id % 2 === 0);
    const odd = owners.map((o, i) => [o, i] as const).filter(([o]) => o.pid.id % 2 === 1);
    expect(even).toHaveLength(3);
    const handed: number[][] = [];
    reg.dispatch('k', (es) => {
      handed.push(es.map((e) => e.value));
      if (handed.length === 1) {
        node.exit(odd[0]![0].pid, 'kill');
        reg.unregister(odd[2]![0].ctx, 'k');
      }
    });
    expect(handed).toEqual([even.map(([, i]) => i), [odd[1]![1]]]);
  });

  it('10,000 owners of one key die in random order: each removal is constant work, and the key ends empty', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', partitions: 8 });
    const owners: Pid[] = [];
    for (let i = 0; i < 10_000; i++) {
      owners.push(
        node.spawn((ctx) => {
          reg.register(ctx, 'all', i);
          return () => undefined;
        }),
      );
    }
    await node.idle();
    expect(reg.count()).toBe(10_000);
    let calls = 0;
    reg.dispatch('all', () => calls++);
    expect(calls).toBe(8);
    for (const pid of shuffle(owners, seeded(99))) node.exit(pid, 'kill');
    expect(reg.count()).toBe(0);
    expect(reg.size).toBe(0);
    expect(reg.dispatch('all', () => calls++)).toBe(false);
  });
});

// ---- listeners --------------------------------------------------------------------------------

describe('Registry listeners', () => {
  it('get exactly one message per register, per unregister, and per key on exit', async () => {
    const node = track();
    const l = receiver(node);
    node.spawn(() => () => undefined, { name: 'named-listener' });
    const named = receiver(node, { name: 'second-listener' });
    const reg = Registry.create<string, number>(node, { keys: 'duplicate', listeners: [l.pid as Pid<RegistryEvent<string, number>>, 'second-listener'] });
    const a = await spawnWithContext(node);
    const b = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.register(a.ctx, 'k', 2);
    reg.register(b.ctx, 'k', 3);
    reg.register(b.ctx, 'j', 4);
    reg.unregister(a.ctx, 'k'); // two entries, one key: one message
    reg.unregister(a.ctx, 'k'); // nothing left: none
    expect(reg.unregisterMatch(b.ctx, 'k', 99)).toBe(0); // nothing removed: none
    node.exit(b.pid, 'kill'); // two keys: two messages
    await node.idle();
    const events = l.seen.map((s) => s.message as RegistryEvent<string, number>);
    expect(events.map((e) => (e.kind === 'registry_register' ? ['reg', e.key, e.pid, e.value] : ['unreg', e.key, e.pid, e.reason]))).toEqual([
      ['reg', 'k', a.pid, 1],
      ['reg', 'k', a.pid, 2],
      ['reg', 'k', b.pid, 3],
      ['reg', 'j', b.pid, 4],
      ['unreg', 'k', a.pid, 'unregister'],
      ['unreg', 'k', b.pid, 'exit'],
      ['unreg', 'j', b.pid, 'exit'],
    ]);
    expect(events.every((e) => e.registry === reg)).toBe(true);
    expect(named.seen.map((s) => s.message)).toEqual(l.seen.map((s) => s.message));
  });

  it('a dead listener costs a dropped message, not a failed register', async () => {
    const node = track();
    const l = node.spawn(() => () => undefined);
    node.exit(l, 'kill');
    const reg = Registry.create(node, { keys: 'unique', listeners: [l] });
    const a = await spawnWithContext(node);
    expect(reg.register(a.ctx, 'k', 1)).toBe('ok');
    expect(reg.count()).toBe(1);
  });
});

// ---- partitions -------------------------------------------------------------------------------

describe('Registry partitions', () => {
  it('give the same answers as no partitions, over any sequence of registrations, unregistrations and exits', async () => {
    const op = fc.oneof(
      fc.record({ t: fc.constant('reg' as const), p: fc.nat(5), k: fc.nat(3), v: fc.nat(4) }),
      fc.record({ t: fc.constant('unreg' as const), p: fc.nat(5), k: fc.nat(3) }),
      fc.record({ t: fc.constant('unmatch' as const), p: fc.nat(5), k: fc.nat(3), v: fc.nat(4) }),
      fc.record({ t: fc.constant('kill' as const), p: fc.nat(5) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.integer({ min: 2, max: 9 }), fc.array(op, { maxLength: 40 }), async (n, ops) => {
        const node = track();
        const plain = Registry.create<number, number>(node, { keys: 'duplicate' });
        const parted = Registry.create<number, number>(node, { keys: 'duplicate', partitions: n });
        const procs: { pid: Pid; ctx: Context }[] = [];
        for (let i = 0; i < 6; i++) procs.push(await spawnWithContext(node));
        const alive = (i: number) => node.isAlive(procs[i]!.pid);
        for (const o of ops) {
          if (o.t === 'kill') node.exit(procs[o.p]!.pid, 'kill');
          else if (!alive(o.p)) continue;
          else if (o.t === 'reg') for (const r of [plain, parted]) r.register(procs[o.p]!.ctx, o.k, o.v);
          else if (o.t === 'unreg') for (const r of [plain, parted]) r.unregister(procs[o.p]!.ctx, o.k);
          else expect(parted.unregisterMatch(procs[o.p]!.ctx, o.k, o.v)).toBe(plain.unregisterMatch(procs[o.p]!.ctx, o.k, o.v));
          expect(parted.count()).toBe(plain.count());
          expect(parted.size).toBe(plain.size);
        }
        expect(parted.select()).toEqual(plain.select());
        const flat = (es: readonly RegistryEntry<number>[]) => es.map((e) => `${Pid.format(e.pid)}=${e.value}`);
        for (let k = 0; k < 4; k++) {
          expect(parted.lookup(k)).toEqual(plain.lookup(k));
          expect(parted.match(k, 2)).toEqual(plain.match(k, 2));
          expect(parted.countMatch(k, Registry.any, (v) => v > 1)).toBe(plain.countMatch(k, Registry.any, (v) => v > 1));
          const a: string[] = [];
          const b: string[] = [];
          let calls = 0;
          expect(parted.dispatch(k, (es) => (calls++, a.push(...flat(es))))).toBe(plain.dispatch(k, (es) => b.push(...flat(es))));
          expect(calls).toBeLessThanOrEqual(n);
          expect(a.sort()).toEqual(b.sort());
          for (const p of procs) expect(parted.values(k, p.pid)).toEqual(plain.values(k, p.pid));
        }
        for (const p of procs) expect(parted.keysOf(p.pid)).toEqual(plain.keysOf(p.pid));
        await node.shutdown();
      }),
      { numRuns: 150, seed: 20261205 },
    );
  });
});

// ---- hostile input ----------------------------------------------------------------------------

describe('Registry hostile input', () => {
  it.each<[string, unknown]>([
    ['NaN', Number.NaN],
    ['0', 0],
    ['-1', -1],
    ['1.5', 1.5],
    ['Infinity', Number.POSITIVE_INFINITY],
    ['1025', 1025],
    ['a string', '4'],
  ])('partitions: %s throws ERR_INVALID_ARGUMENT', (_label, partitions) => {
    const node = track();
    expectKeelError(thrown(() => Registry.create(node, { keys: 'duplicate', partitions: partitions as number })), 'ERR_INVALID_ARGUMENT', 'options.partitions');
  });

  it('options with throwing getters, bad listeners or bad meta throw ERR_INVALID_ARGUMENT', () => {
    const node = track();
    const getter = (name: string) =>
      Object.defineProperty({ keys: 'duplicate' }, name, {
        get() {
          throw new Error('hostile');
        },
      });
    expectKeelError(thrown(() => Registry.create(node, getter('partitions') as never)), 'ERR_INVALID_ARGUMENT', 'options.partitions');
    expectKeelError(thrown(() => Registry.create(node, getter('listeners') as never)), 'ERR_INVALID_ARGUMENT', 'options.listeners');
    expectKeelError(thrown(() => Registry.create(node, getter('keys') as never)), 'ERR_INVALID_ARGUMENT', 'options');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: 'x' as never })), 'ERR_INVALID_ARGUMENT', 'options.listeners');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: [''] })), 'ERR_INVALID_ARGUMENT', 'options.listeners[0]');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: [{}] as never })), 'ERR_INVALID_ARGUMENT', 'options.listeners[0]');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', meta: 3 as never })), 'ERR_INVALID_ARGUMENT', 'options.meta');
    const hostileMeta = Object.defineProperty({}, 'x', {
      enumerable: true,
      get() {
        throw new Error('hostile');
      },
    });
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', meta: hostileMeta })), 'ERR_INVALID_ARGUMENT', 'options.meta');
  });

  it('options with a key it does not know, or listeners that cannot be read (proxies, a throwing index), throw ERR_INVALID_ARGUMENT', () => {
    const node = track();
    expectKeelError(thrown(() => Registry.create(node, { keys: 'duplicate', partition: 4 } as never)), 'ERR_INVALID_ARGUMENT', 'options.partition');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: revokedProxy() as never })), 'ERR_INVALID_ARGUMENT', 'options.listeners');
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: trappingProxy() as never })), 'ERR_INVALID_ARGUMENT', 'options.listeners');
    const hostileIndex = Object.defineProperty([], 0, {
      enumerable: true,
      get() {
        throw new Error('hostile');
      },
    });
    expectKeelError(thrown(() => Registry.create(node, { keys: 'unique', listeners: hostileIndex })), 'ERR_INVALID_ARGUMENT', 'options.listeners');
  });

  it('values with throwing getters or proxies never match a pattern that reads them, and never throw', async () => {
    const node = track();
    const reg = Registry.create<string, unknown>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    let getterRan = 0;
    let trapRan = 0;
    const hostile = Object.defineProperty({}, 'x', {
      enumerable: true,
      get() {
        getterRan++;
        throw new Error('hostile');
      },
    });
    const trap = () => {
      trapRan++;
      throw new Error('trap');
    };
    const proxy = new Proxy({}, { get: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap, has: trap, ownKeys: trap });
    reg.register(a.ctx, 'k', hostile);
    reg.register(a.ctx, 'k', proxy);
    reg.register(a.ctx, 'k', { x: 1 });
    expect(reg.match('k', { x: 1 }).map((e) => e.value)).toEqual([{ x: 1 }]);
    expect(reg.countMatch('k', { x: Registry.any })).toBe(1);
    expect(reg.countMatch('k', Registry.any)).toBe(3);
    expect(reg.lookup('k')).toHaveLength(3);
    expect(reg.select()).toHaveLength(3);
    expect(reg.unregisterMatch(a.ctx, 'k', { x: 1 })).toBe(1);
    expect(reg.count()).toBe(2);
    expect(getterRan).toBe(0); // a value's getter is never run
    expect(trapRan).toBe(3); // the proxy's descriptor trap: once per call that read { x }, each caught
  });

  it('patterns with getters, proxies or cycles throw ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const reg = Registry.create<string, unknown>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', { x: 1 });
    const getter = Object.defineProperty({}, 'x', { enumerable: true, get: () => 1 });
    expectKeelError(thrown(() => reg.match('k', getter)), 'ERR_INVALID_ARGUMENT', 'pattern.x');
    expectKeelError(thrown(() => reg.match('k', new Proxy({}, {}))), 'ERR_INVALID_ARGUMENT', 'pattern');
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    expectKeelError(thrown(() => reg.match('k', cyclic)), 'ERR_INVALID_ARGUMENT', 'pattern');
    expectKeelError(thrown(() => reg.countMatch('k', {}, 'x' as never)), 'ERR_INVALID_ARGUMENT', 'guard');
    expectKeelError(thrown(() => reg.unregisterMatch(a.ctx, 'k', cyclic)), 'ERR_INVALID_ARGUMENT', 'pattern');
    expect(reg.count()).toBe(1);
  });

  it('an array pattern longer than 100,000 elements (a sparse one costs nothing to make) throws ERR_INVALID_ARGUMENT at once, instead of a walk over every hole', async () => {
    const node = track();
    const reg = Registry.create<string, unknown>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', [1]);
    for (const length of [100_001, 2 ** 32 - 1]) {
      const sparse = new Array<unknown>(length);
      expectKeelError(thrown(() => reg.countMatch('k', sparse)), 'ERR_INVALID_ARGUMENT', 'at most 100000 elements');
      expectKeelError(thrown(() => reg.match('k', { nested: [sparse] })), 'ERR_INVALID_ARGUMENT', 'at most 100000 elements');
    }
    // up to the bound an array pattern is an array pattern, holes included (a hole matches undefined)
    expect(reg.countMatch('k', [1])).toBe(1);
    expect(reg.countMatch('k', new Array<unknown>(1))).toBe(0);
    expect(reg.count()).toBe(1);
  });

  it('__proto__ as a key, a meta key and a pattern property is an ordinary name', async () => {
    const node = track();
    const reg = Registry.create<string, unknown, Record<string, unknown>>(node, { keys: 'duplicate', meta: JSON.parse('{"__proto__": "m"}') as Record<string, unknown> });
    const a = await spawnWithContext(node);
    expect(reg.meta('__proto__')).toBe('m');
    reg.putMeta('constructor', 1);
    expect(reg.meta('constructor')).toBe(1);
    expect(reg.meta('toString')).toBeUndefined();
    reg.register(a.ctx, '__proto__', JSON.parse('{"__proto__": {"polluted": true}}'));
    reg.register(a.ctx, '__proto__', { plain: true });
    expect(reg.keysOf(a.pid)).toEqual(['__proto__']);
    expect(reg.lookup('__proto__')).toHaveLength(2);
    expect(reg.countMatch('__proto__', JSON.parse('{"__proto__": {"polluted": true}}'))).toBe(1);
    expect(reg.countMatch('__proto__', { plain: true })).toBe(1);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(reg.lookup('constructor')).toEqual([]);
  });

  it('a symbol-keyed pattern property is matched, not ignored; a symbol-keyed meta key is kept', async () => {
    const node = track();
    const tag = Symbol('tag');
    const reg = Registry.create<string, { [tag]?: number; n: number }, { [tag]: string }>(node, { keys: 'duplicate', meta: { [tag]: 'm' } });
    expect(reg.meta(tag)).toBe('m');
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', { [tag]: 1, n: 1 });
    reg.register(a.ctx, 'k', { [tag]: 2, n: 2 });
    reg.register(a.ctx, 'k', { n: 3 });
    expect(reg.match('k', { [tag]: 1 }).map((e) => e.value.n)).toEqual([1]);
    expect(reg.countMatch('k', { [tag]: Registry.any })).toBe(2);
    expect(reg.unregisterMatch(a.ctx, 'k', { [tag]: 2 })).toBe(1);
    expect(reg.lookup('k').map((e) => e.value.n)).toEqual([1, 3]);
  });

  it('NaN is one key, and a NaN pattern matches a NaN value', async () => {
    const node = track();
    const reg = Registry.create<number, number>(node, { keys: 'unique' });
    const a = await spawnWithContext(node);
    expect(reg.register(a.ctx, Number.NaN, Number.NaN)).toBe('ok');
    expect(reg.register(a.ctx, Number.NaN, 1)).toEqual({ error: 'already_registered', pid: a.pid });
    expect(reg.countMatch(Number.NaN, Number.NaN)).toBe(1);
    expect(reg.countMatch(Number.NaN, 0)).toBe(0);
  });
});

describe('Registry.unregisterMatch with a guard that changes the registry', () => {
  it('a guard that unregisters and registers again: the removed rows are counted once, the new one stays, the death hook is kept', async () => {
    const node = track();
    const reg = Registry.create<string, number>(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    reg.register(a.ctx, 'k', 2);
    let once = true;
    const removed = reg.unregisterMatch(a.ctx, 'k', Registry.any, () => {
      if (once) {
        once = false;
        reg.unregister(a.ctx, 'k'); // both rows go here
        reg.register(a.ctx, 'k', 3); // a new row, not matched by this call
      }
      return true;
    });
    expect(removed).toBe(0); // the guard's own unregister removed them first
    expect(reg.lookup('k')).toEqual([{ pid: a.pid, value: 3 }]);
    expect(reg.keysOf(a.pid)).toEqual(['k']);
    expect(reg.count()).toBe(1);
    node.exit(a.pid, 'kill');
    expect(reg.count()).toBe(0);
    expect(reg.size).toBe(0);
  });
});

describe('Registry and its node', () => {
  it('is not kept by its node once nobody holds it: a node that makes registries as it goes (one per session, say) holds none it no longer uses', async () => {
    const gc = fullGc();
    expect(gc).toBeTypeOf('function');
    const node = track();
    const kept = Registry.create<string, number>(node, { keys: 'unique' });
    const dropped = new WeakRef(Registry.create<string, number>(node, { keys: 'duplicate' }));
    await node.idle(); // a later turn: a WeakRef keeps its target only until the turn that made it ends
    gc!();
    expect(dropped.deref()).toBeUndefined();
    // the one still held is still audited for leaks
    const { pid, ctx } = await spawnWithContext(node);
    expect(kept.register(ctx, 'k', 1)).toBe('ok');
    (node as KeelNode).resolve(pid)!.x!.exitHooks!.clear();
    node.exit(pid, 'kill');
    expect(registriesOf(node).flatMap((r) => r.leftovers())).toEqual([`registry key k still holds the dead process ${String(pid)}`]);
    await node.shutdown({ timeoutMs: 1000 });
  });
});

describe('Registry hostile arguments to its readers', () => {
  it('Registry.create with a revoked proxy as the node throws ERR_INVALID_ARGUMENT', () => {
    expectKeelError(thrown(() => Registry.create(revokedProxy() as Node, { keys: 'unique' })), 'ERR_INVALID_ARGUMENT', 'node');
  });

  it.each<[string, () => unknown]>([
    ['a revoked proxy', revokedProxy],
    ['a throwing proxy', trappingProxy],
    ['a string', () => 'a name'],
    ['a getter that throws', () => Object.defineProperty({ node: 'n', creation: 1 }, 'id', { get: () => { throw new Error('hostile'); }, enumerable: true })],
  ])('keysOf and values with %s as the pid throw ERR_INVALID_ARGUMENT', async (_label, make) => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    expectKeelError(thrown(() => reg.keysOf(make() as Pid)), 'ERR_INVALID_ARGUMENT', 'pid');
    expectKeelError(thrown(() => reg.values('k', make() as Pid)), 'ERR_INVALID_ARGUMENT', 'pid');
    expect(reg.keysOf(a.pid)).toEqual(['k']);
  });

  it.each<[string, () => unknown]>([
    ['a revoked proxy', revokedProxy],
    ['a throwing proxy', trappingProxy],
    ['a getter that throws', () => Object.defineProperty({}, 'where', { get: () => { throw new Error('hostile'); }, enumerable: true })],
  ])('select with %s as the query throws ERR_INVALID_ARGUMENT', async (_label, make) => {
    const node = track();
    const reg = Registry.create(node, { keys: 'duplicate' });
    const a = await spawnWithContext(node);
    reg.register(a.ctx, 'k', 1);
    expectKeelError(thrown(() => reg.select(make() as never)), 'ERR_INVALID_ARGUMENT', 'query');
  });
});
