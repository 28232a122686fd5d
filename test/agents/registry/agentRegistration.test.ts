import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, type AgentRegistryHandle, GenServer, type Pid, isDown, isKeelError, Supervisor } from '../../../src/index.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { advance, clockedNode, exitAndWait, spawnWithContext as spawnWithContextLocal, useNodes } from '../../support.js';

// Agent.start({ registry }): an agent registers itself at each start, so a restart is found again.

const track = useNodes();

describe('Agent.start({ registry })', () => {
  it('registers the agent under its name with its capabilities and kinds (a catch-all registers none), team and role', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const fetcher = await Agent.start(node, { name: 'fetcher', capabilities: ['http'], tasks: { fetch: () => 'page', head: () => 'h' }, registry: { registry, team: 'crawl', role: 'member' } });
    const any = await Agent.start(node, { name: 'any', capabilities: ['http', 'gpu'], runTask: () => 'x', registry });
    const f = registry.lookup('fetcher')!;
    expect(f.pid).toBe(fetcher.pid);
    expect([f.meta.capabilities, f.meta.kinds, f.meta.team, f.meta.role, f.meta.load]).toEqual([['http'], ['fetch', 'head'], 'crawl', 'member', 0]);
    expect(registry.lookup('any')!.meta.kinds).toEqual([]);
    expect(registry.pids({ kind: 'fetch' })).toEqual([fetcher.pid]);
    expect(registry.pids({ capability: 'gpu' })).toEqual([any.pid]);
    expect(registry.pids({ team: 'crawl', role: 'member' })).toEqual([fetcher.pid]);
  });

  it('a key of its own; the entry goes when the agent stops for good', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    let agent!: Pid;
    await Supervisor.start(node, [{ id: 'a', restart: 'temporary', start: (ctx) => Agent.start(ctx, { capabilities: [], runTask: () => 1, registry: { registry, key: 'worker-7' } }).then((a) => (agent = a.pid)) }]);
    expect(registry.lookup('worker-7')!.pid).toBe(agent);
    await GenServer.stop(node, agent);
    await node.idle();
    expect(registry.lookup('worker-7')).toBe(undefined);
    expect(registry.count()).toBe(0);
  });

  it('an agent restarted by its supervisor registers again: the same key, the new pid, one entry', async () => {
    const node = track();
    const ev = captureEvents(node, ['keel.agent_registry.registered']);
    const registry = await AgentRegistry.start(node);
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => Agent.start(ctx, { name: 'w', capabilities: ['x'], runTask: () => 1, registry }).then((a) => a.pid) }]);
    const first = node.registry.whereis('w')!;
    expect(registry.pids({ capability: 'x' })).toEqual([first]);
    await exitAndWait(node, first, new Error('crash'));
    const second = node.registry.whereis('w')!;
    expect(second).not.toBe(first);
    expect(registry.pids({ capability: 'x' })).toEqual([second]);
    expect(registry.count()).toBe(1);
    expect(ev.events.map((e) => e.metadata.key)).toEqual(['w', 'w']);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('heartbeatMs keeps the agent healthy with its load on the node clock; without it the agent misses its heartbeats', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 1000, missedHeartbeats: 2 });
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const beating = await Agent.start(node, { name: 'beating', capabilities: ['x'], runTask: () => held, registry: { registry, heartbeatMs: 500 } });
    await Agent.start(node, { name: 'silent', capabilities: ['x'], runTask: () => 1, registry });
    const running = beating.runTask({ id: 't', kind: 'k', payload: null }, { timeout: 60_000 });
    for (let i = 0; i < 10; i++) await advance(node, clock, 500);
    expect(registry.query({ capability: 'x' }).map((e) => e.key)).toEqual(['beating']);
    expect(registry.lookup('beating')!.meta.load).toBe(1);
    expect(registry.lookup('silent')!.meta.health).toBe('unhealthy');
    release();
    expect(await running).toEqual({ ok: true, result: undefined });
    await advance(node, clock, 500);
    expect(registry.lookup('beating')!.meta.load).toBe(0);
  });

  it('a registry that is not running fails the start (a typed exit), and nothing is left running', async () => {
    const node = track();
    let registry!: AgentRegistryHandle;
    await Supervisor.start(node, [{ id: 'r', restart: 'temporary', start: (ctx) => AgentRegistry.start(ctx).then((r) => (registry = r).pid) }]);
    await GenServer.stop(node, registry.pid);
    const before = node.processes().length;
    const err = await Agent.start(node, { name: 'orphan', capabilities: [], runTask: () => 1, registry }).catch((e: unknown) => e);
    expect(isKeelError(err, 'ERR_START_FAILED')).toBe(true);
    // the reason is the registry call's own typed error: nobody was there to answer it
    expect(err).toMatchObject({ reason: { code: 'ERR_START_FAILED', reason: { code: 'ERR_NOPROC', registeredName: registry.name } } });
    await node.idle();
    expect(node.registry.whereis('orphan')).toBe(undefined);
    expect(node.processes().length).toBeLessThanOrEqual(before + 1); // the node's keel.agents supervisor may have started
  });

  it('bad registry options are refused before anything starts, naming the option', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const base = { capabilities: [], runTask: () => 1 };
    const throwing = { get registry(): never { throw new Error('getter'); } };
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    const cases: [unknown, string][] = [
      [5, 'options.registry'],
      [{ registry: {} }, 'options.registry.registry'],
      [{ registry, key: '' }, 'options.registry.key'],
      [{ registry, team: 7 }, 'options.registry.team'],
      [{ registry, heartbeatMs: Number.NaN }, 'options.registry.heartbeatMs'],
      [{ registry, heartbeatMs: 0 }, 'options.registry.heartbeatMs'],
      [throwing, 'options.registry'],
      [revoked.proxy, 'options.registry'],
    ];
    for (const [given, argument] of cases) {
      let caught: unknown;
      try {
        await Agent.start(node, { ...base, registry: given as never });
      } catch (e) {
        caught = e;
      }
      expect(isKeelError(caught, 'ERR_INVALID_ARGUMENT') && (caught as { argument?: string }).argument, String(argument)).toBe(argument);
    }
    expect(registry.count()).toBe(0);
  });
});

describe('Agent.start({ registry }) with its registry gone for good', () => {
  it('a crashed agent cannot register again: its supervisor tries maxRestarts times, then gives up (an exit, not a wedge), and nothing is left', async () => {
    const node = track();
    const { ctx } = await spawnWithContextLocal(node);
    const registry = await AgentRegistry.start(ctx, { name: 'gone' });
    const tries: number[] = [];
    const sup = await Supervisor.start(node, [{
      id: 'w',
      start: (c) => {
        tries.push(tries.length);
        return Agent.start(c, { name: 'w', capabilities: ['x'], runTask: () => 1, registry }).then((a) => a.pid);
      },
    }], { maxRestarts: 3, withinMs: 60_000 });
    const p = probe(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the test awaits this Down
    p.ctx.monitor(sup);
    await GenServer.stop(node, 'gone');
    node.exit(node.registry.whereis('w')!, new Error('crash'));
    const down = await p.receive(isDown);
    expect(isDown(down) ? down.pid : undefined).toBe(sup);
    expect(tries).toHaveLength(1 + 3); // the first start, then maxRestarts attempts: the next one is over the intensity
    await node.idle();
    expect(node.registry.whereis('w')).toBe(undefined);
    expect(registry.count()).toBe(0);
  });
});
