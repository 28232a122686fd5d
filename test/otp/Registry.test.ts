/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import { Pid, Registry, type Context, type KeyRegistry, type Node } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { probe } from '../../src/testing/index.js';
import { expectKeelError, receiveDown, seeded, shuffle, spawnWithContext, thrown, useNodes } from '../support.js';

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
