/* eslint-disable keel/no-raw-send -- this file tests the test kit, whose probes are raw processes that send and monitor */
import { describe, expect, it } from 'vitest';
import { GenServer, LeaksFoundError, type Node, Registry } from '../../src/index.js';
import { type ExitWatcher, TimerRefImpl } from '../../src/runtime/internal/Proc.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { expectNoLeaks, probe, TestClock } from '../../src/testing/index.js';
import { expectKeelError, idler, refOf, spawnWithContext, thrown, useNodes } from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** What expectNoLeaks threw: asserts ERR_LEAKS_FOUND with a report naming the node, and returns the leak lines. */
function leaksReported(node: Node, count: number): { message: string; leaks: readonly string[] } {
  const e = thrown(() => expectNoLeaks(node));
  expectKeelError(e, 'ERR_LEAKS_FOUND', `node ${node.name} has ${count} leak(s):`);
  expect(e).toBeInstanceOf(LeaksFoundError);
  const { message, leaks } = e as LeaksFoundError;
  expect(leaks).toHaveLength(count);
  // one readable line per leak
  for (const leak of leaks) expect(message).toContain(`\n  - ${leak}`);
  return { message, leaks };
}

/** Exit watchers registered on a live process (runtime internals). */
function watchersOf(node: KeelNode, pid: Parameters<KeelNode['lookupTarget']>[0]): ExitWatcher[] {
  const out: ExitWatcher[] = [];
  for (let w = node.lookupTarget(pid)?.x?.watchers; w !== undefined; w = w.watchNext) out.push(w);
  return out;
}

// ---- tests ------------------------------------------------------------------------------------

describe('expectNoLeaks', () => {
  it('passes on a clean node, also one with live monitors, timers, registry entries and pending calls', async () => {
    const node = track();
    expect(() => expectNoLeaks(node)).not.toThrow();
    const p = probe(node);
    const target = idler(node);
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'young' }));
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'kept', expectedLifetime: 'long' }));
    p.ctx.sendAfter(p, 'later', 60_000);
    Registry.create(node, { keys: 'duplicate' }).register(p.ctx, 'topic', 1);
    const server = await GenServer.start(node, { init: () => null, handleCall: (_r: unknown, _f: unknown, s: null) => ({ noreply: true as const, state: s }) });
    const call = GenServer.call(p.ctx, server, 'held', { timeout: Infinity }).catch((e: unknown) => e);
    await node.idle();
    expect(() => expectNoLeaks(node)).not.toThrow();
    node.exit(server, 'kill');
    expectKeelError(await call, 'ERR_CALL_EXIT');
    expect(() => expectNoLeaks(node)).not.toThrow();
  });

  it('fails with a suspected monitor leak: an old monitor with both ends alive, naming ref, owner, target, tag, age and the creating line', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock, services: { monitors: { leakAgeMs: 1000 } } });
    const p = probe(node);
    const target = idler(node);
    const ref = refOf(node.monitors.monitor(p.ctx, target, { tag: 'cache' }));
    refOf(node.monitors.monitor(p.ctx, target, { tag: 'forever', expectedLifetime: 'long' }));
    await clock.advance(1000);
    expect(() => expectNoLeaks(node)).not.toThrow(); // not older than the leak age yet
    await clock.advance(500);
    const { leaks } = leaksReported(node, 1);
    expect(leaks[0]).toContain('suspected monitor leak');
    expect(leaks[0]).toContain('1500 ms old');
    expect(leaks[0]).toContain(String(ref));
    expect(leaks[0]).toContain(`by ${String(p)} on ${String(target)}`);
    expect(leaks[0]).toContain("tagged 'cache'");
    expect(leaks[0]).toContain('expectNoLeaks.test.ts');
    expect(node.monitors.demonitor(p.ctx, ref)).toBe('ok');
    expect(() => expectNoLeaks(node)).not.toThrow();
  });

  it('fails with duplicate monitors: an owner holding more than the threshold on one target', () => {
    const node = track({ services: { monitors: { duplicateThreshold: 2 } } });
    const p = probe(node);
    const target = idler(node);
    const refs = [1, 2].map(() => refOf(node.monitors.monitor(p.ctx, target, { tag: 'poll' })));
    expect(() => expectNoLeaks(node)).not.toThrow(); // exactly the threshold
    refs.push(refOf(node.monitors.monitor(p.ctx, target, { tag: 'poll' })));
    const { leaks } = leaksReported(node, 3);
    for (const ref of refs) expect(leaks.filter((l) => l.includes(`${String(ref)} `))).toHaveLength(1);
    for (const leak of leaks) {
      expect(leak).toContain('suspected monitor leak (one of too many on one target)');
      expect(leak).toContain(`by ${String(p)} on ${String(target)}`);
      expect(leak).toContain("tagged 'poll'");
    }
    expect(node.monitors.demonitor(p.ctx, refs[0]!)).toBe('ok');
    expect(() => expectNoLeaks(node)).not.toThrow();
  });

  // The runtime cancels a dead process's timers itself, so this leftover is built by hand: the
  // timer is taken off the process's own timer set (what its death cleanup cancels) before it dies.
  it('fails with a timer owned by a dead process', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const { pid, ctx } = await spawnWithContext(node);
    const timer = ctx.sendAfter(pid, 'late', 10_000);
    expect(() => expectNoLeaks(node)).not.toThrow(); // its owner is alive
    const timers = node.lookupTarget(pid)?.x?.timers;
    expect(timers?.size).toBe(1);
    timers!.clear();
    node.exit(pid, 'kill');
    const { leaks } = leaksReported(node, 1);
    expect(leaks[0]).toBe(`a timer owned by the dead process ${String(pid)}`);
    expect(node.cancelTimer(timer as unknown as TimerRefImpl)).toBe(true);
    expect(() => expectNoLeaks(node)).not.toThrow();
  });

  // Registry entries are released by a death hook on their owner, so this leftover is built by
  // removing that hook before the owner dies. Nothing can release the entries afterwards: the node
  // is shut down at the end of the test.
  it('fails with registry entries (Registry.create duplicate keys) of a dead process', async () => {
    const node = track();
    const registry = Registry.create<string, number>(node, { keys: 'duplicate' });
    const { pid, ctx } = await spawnWithContext(node);
    const other = await spawnWithContext(node);
    expect(registry.register(ctx, 'topic', 1)).toBe('ok');
    expect(registry.register(ctx, 'topic', 2)).toBe('ok');
    expect(registry.register(other.ctx, 'topic', 3)).toBe('ok');
    expect(() => expectNoLeaks(node)).not.toThrow(); // its owner is alive
    const hooks = node.lookupTarget(pid)?.x?.exitHooks;
    expect(hooks?.size).toBe(1); // the registry's, and nothing else
    hooks!.clear();
    node.exit(pid, 'kill');
    // still held (count() counts them), though lookup no longer shows a dead owner's
    expect(registry.count()).toBe(3);
    expect(registry.lookup('topic')).toEqual([{ pid: other.pid, value: 3 }]);
    const { leaks } = leaksReported(node, 2);
    expect(leaks).toEqual([`registry key topic still holds the dead process ${String(pid)}`, `registry key topic still holds the dead process ${String(pid)}`]);
    await node.shutdown({ timeoutMs: 1000 });
  });

  it("given a process's context, audits that process's node: its registries and monitors too, not only the kernel's own leftovers", async () => {
    const node = track();
    const registry = Registry.create<string, number>(node, { keys: 'duplicate' });
    const { pid, ctx } = await spawnWithContext(node);
    const auditor = await spawnWithContext(node);
    expect(registry.register(ctx, 'topic', 1)).toBe('ok');
    node.lookupTarget(pid)!.x!.exitHooks!.clear(); // the registry's hook: its entry outlives its owner
    node.exit(pid, 'kill');
    const fromCtx = thrown(() => expectNoLeaks(auditor.ctx as unknown as Node));
    expectKeelError(fromCtx, 'ERR_LEAKS_FOUND', `registry key topic still holds the dead process ${String(pid)}`);
    expect((fromCtx as LeaksFoundError).leaks).toEqual((thrown(() => expectNoLeaks(node)) as LeaksFoundError).leaks);
    await node.shutdown({ timeoutMs: 1000 });
  });

  // A pending call is released by a watch on its caller, so this leftover is built by disabling that
  // watch before the caller dies.
  it('fails with a pending call whose caller died', async () => {
    const node = track();
    const p = probe(node);
    const server = await GenServer.start(node, { init: () => null, handleCall: (_r: unknown, _f: unknown, s: null) => ({ noreply: true as const, state: s }) });
    const { pid: caller } = await spawnWithContext(node, (ctx) => async (m) => {
      if (m !== 'call') return;
      const reply = GenServer.call(ctx, server, 'held', { timeout: Infinity });
      ctx.send(p, 'calling');
      await reply.catch(() => undefined);
    });
    node.send(caller, 'call');
    await p.receive((m) => m === 'calling');
    expect(() => expectNoLeaks(node)).not.toThrow(); // its caller is alive
    const callerWatches = watchersOf(node, caller).filter((w) => 'call' in w);
    expect(callerWatches).toHaveLength(1);
    callerWatches[0]!.onExit = () => undefined;
    node.exit(caller, 'kill');
    const { leaks } = leaksReported(node, 1);
    expect(leaks[0]).toBe(`a pending call to ${String(server)} from a caller that has exited`);
    // the server's death settles the call, and with it the leak
    node.exit(server, 'kill');
    expect(() => expectNoLeaks(node)).not.toThrow();
  });
});
