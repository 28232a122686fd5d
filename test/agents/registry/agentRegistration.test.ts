import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, type AgentRegistryHandle, GenServer, type Pid, isDown, isKeelError, Supervisor } from '../../../src/index.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { peekComponentState } from '../../../src/agents/internal/componentState.js';
import { Pid as PidOf } from '../../../src/runtime/Pid.js';
import { advance, clockedNode, exitAndWait, idler, spawnWithContext as spawnWithContextLocal, useNodes } from '../../support.js';

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

describe('Agent.start({ registry: { heartbeatMs } }): an entry removed on purpose stays removed', () => {
  const names = (ev: { events: { event: string; metadata: Record<string, unknown> }[] }, pids: Record<string, Pid>): string[] =>
    ev.events.map((e) => {
      const who = Object.keys(pids).find((k) => pids[k] === e.metadata.pid) ?? '?';
      return `${e.event.slice('keel.agent_registry.'.length)}:${who}${e.metadata.reason === undefined ? '' : `:${String(e.metadata.reason)}`}`;
    });

  it('two live agents with the same key: the second holds it, the first is answered replaced at each beat and never takes the key back (no swap per beat)', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.registered', 'keel.agent_registry.unregistered']);
    const registry = await AgentRegistry.start(node);
    const a = await Agent.start(node, { capabilities: ['x'], runTask: () => 1, registry: { registry, key: 'k', heartbeatMs: 100 } });
    const b = await Agent.start(node, { capabilities: ['x'], runTask: () => 2, registry: { registry, key: 'k', heartbeatMs: 100 } });
    expect(await registry.heartbeat(a.pid)).toEqual({ error: 'replaced' });
    for (let i = 0; i < 5; i++) await advance(node, clock, 100);
    expect(names(ev, { a: a.pid, b: b.pid })).toEqual(['registered:a', 'unregistered:a:replaced', 'registered:b']);
    expect(registry.lookup('k')!.pid).toBe(b.pid);
    expect(registry.count()).toBe(1);
    // the call by hand, then five beats of each: a beats on (it is alive), answered replaced, and never registers again
    expect((await registry.stats()).heartbeats).toBe(1 + 5 + 5);
    expect(await registry.heartbeat(a.pid)).toEqual({ error: 'replaced' });
    expect(node.isAlive(a.pid)).toBe(true);
  });

  it('registry.unregister of a beating agent is not undone at its next beat: answered unregistered, it does not register again', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.registered', 'keel.agent_registry.unregistered']);
    const registry = await AgentRegistry.start(node);
    const solo = await Agent.start(node, { name: 'solo', capabilities: ['x'], runTask: () => 1, registry: { registry, heartbeatMs: 100 } });
    await advance(node, clock, 100);
    expect(await registry.unregister('solo')).toBe('ok');
    for (let i = 0; i < 5; i++) await advance(node, clock, 100);
    expect(names(ev, { solo: solo.pid })).toEqual(['registered:solo', 'unregistered:solo:explicit']);
    expect(registry.lookup('solo')).toBe(undefined);
    expect((await registry.stats()).heartbeats).toBe(6); // it beats on, answered unregistered
    expect(await registry.heartbeat(solo.pid)).toEqual({ error: 'unregistered' });
    expect(await registry.update(solo.pid, { load: 1 })).toEqual({ error: 'unregistered' });
    // registered again by hand: it is an entry like any other (its beats keep it healthy: see below)
    expect(await registry.register(solo.pid, { capabilities: ['x'] })).toEqual({ key: 'solo' });
    expect(await registry.heartbeat(solo.pid)).toBe('ok');
  });

  // Known gap: an agent whose entry was removed on purpose stopped its beat timer for good, so registered
  // again by hand it never beat again: with heartbeatIntervalMs the registry marked it unhealthy (and
  // queries for healthy agents left it out) though it was alive and well.
  it('an unregistered agent registered again by hand beats again: it stays healthy past the health window', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.unhealthy', 'keel.agent_registry.healthy']);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 2 });
    const solo = await Agent.start(node, { name: 'solo', capabilities: ['x'], runTask: () => 1, registry: { registry, heartbeatMs: 100 } });
    expect(await registry.unregister('solo')).toBe('ok');
    await advance(node, clock, 100); // its beat is answered unregistered: the removal stands
    expect(registry.lookup('solo')).toBe(undefined);
    expect(await registry.register(solo.pid, { capabilities: ['x'], team: 'by-hand' })).toEqual({ key: 'solo' });
    for (let i = 0; i < 10; i++) await advance(node, clock, 100);
    expect(registry.lookup('solo')!.meta).toMatchObject({ health: 'healthy', team: 'by-hand', lastSeen: clock.now() });
    expect(registry.query({ capability: 'x' }).map((e) => e.key)).toEqual(['solo']);
    expect(ev.events).toEqual([]);
    // one beat per interval, the one answered unregistered included
    expect((await registry.stats()).heartbeats).toBe(11);
  });

  it('an agent replaced under its key and registered by hand under another key beats that entry (the key it lost stays lost)', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.registered', 'keel.agent_registry.unregistered', 'keel.agent_registry.unhealthy']);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 2 });
    const a = await Agent.start(node, { capabilities: ['x'], runTask: () => 1, registry: { registry, key: 'k', heartbeatMs: 100 } });
    const b = await Agent.start(node, { capabilities: ['x'], runTask: () => 2, registry: { registry, key: 'k', heartbeatMs: 100 } });
    await advance(node, clock, 100); // a is answered replaced
    expect(await registry.register(a.pid, { capabilities: ['x'] }, { key: 'k2' })).toEqual({ key: 'k2' });
    for (let i = 0; i < 10; i++) await advance(node, clock, 100);
    expect(names(ev, { a: a.pid, b: b.pid })).toEqual(['registered:a', 'unregistered:a:replaced', 'registered:b', 'registered:a']);
    expect([registry.lookup('k')!.pid, registry.lookup('k2')!.pid]).toEqual([b.pid, a.pid]);
    expect([registry.lookup('k')!.meta.health, registry.lookup('k2')!.meta.health]).toEqual(['healthy', 'healthy']);
    expect(registry.lookup('k2')!.meta.lastSeen).toBe(clock.now());
  });

  // By design: an agent started without `registry` does not know the registry it was registered in by hand,
  // so it cannot beat there; the registry's poll (the agent protocol's status call) keeps it healthy
  it('an agent registered by hand only (no registry option) does not beat: unhealthy past the window, unless the registry polls it', async () => {
    const { node, clock } = clockedNode(track);
    const silent = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 2 });
    const polling = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 2, poll: true });
    const agent = await Agent.start(node, { name: 'plain', capabilities: ['x'], runTask: () => 1 });
    expect(await silent.register(agent.pid, { capabilities: ['x'] })).toEqual({ key: 'plain' });
    expect(await polling.register(agent.pid, { capabilities: ['x'] })).toEqual({ key: 'plain' });
    for (let i = 0; i < 10; i++) await advance(node, clock, 100);
    expect([silent.lookup('plain')!.meta.health, polling.lookup('plain')!.meta.health]).toEqual(['unhealthy', 'healthy']);
    expect([(await silent.stats()).heartbeats, (await polling.stats()).heartbeats]).toEqual([0, 0]);
  });

  it('a registry that lost its table (stopped, started again empty) is re-populated by the beats of the agents it still has, not of those it had removed', async () => {
    const { node, clock } = clockedNode(track);
    const reg = await AgentRegistry.start(node, { name: 'reg' });
    const a = await Agent.start(node, { capabilities: ['x'], runTask: () => 1, registry: { registry: reg, key: 'k', heartbeatMs: 100 } });
    const b = await Agent.start(node, { capabilities: ['x'], runTask: () => 2, registry: { registry: reg, key: 'k', heartbeatMs: 100 } });
    const c = await Agent.start(node, { name: 'c', capabilities: ['y'], runTask: () => 3, registry: { registry: reg, heartbeatMs: 100 } });
    await advance(node, clock, 100); // a is answered replaced: it will not register again
    await GenServer.stop(node, node.registry.whereis('reg')!, 'normal'); // its table (and what it remembered) released
    await node.idle();
    await AgentRegistry.start(node, { name: 'reg' });
    expect(reg.count()).toBe(0);
    await advance(node, clock, 100); // answered not_registered: b and c register again
    await advance(node, clock, 100);
    expect([reg.count(), reg.lookup('k')?.pid, reg.lookup('c')?.pid]).toEqual([2, b.pid, c.pid]);
    expect(node.isAlive(a.pid)).toBe(true);
  });

  it('an agent replaced under its key, registered by hand under another, does not take its lost key back when the registry loses its table', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.registered', 'keel.agent_registry.unregistered']);
    const reg = await AgentRegistry.start(node, { name: 'reg' });
    const a = await Agent.start(node, { capabilities: ['x'], runTask: () => 1, registry: { registry: reg, key: 'k', heartbeatMs: 100 } });
    const b = await Agent.start(node, { capabilities: ['x'], runTask: () => 2, registry: { registry: reg, key: 'k', heartbeatMs: 100 } });
    await advance(node, clock, 100); // a is answered replaced: the removal stands
    expect(await reg.register(a.pid, { capabilities: ['x'] }, { key: 'k2' })).toEqual({ key: 'k2' });
    await advance(node, clock, 100); // a's beat is answered ok (the entry by hand)
    await GenServer.stop(node, node.registry.whereis('reg')!, 'normal'); // its table released
    await node.idle();
    await AgentRegistry.start(node, { name: 'reg' });
    for (let i = 0; i < 5; i++) await advance(node, clock, 100); // answered not_registered: b registers again, a does not
    // the registry's stop tells nothing; after it only b registers (a registering under k again would swap it with b)
    expect(names(ev, { a: a.pid, b: b.pid })).toEqual(['registered:a', 'unregistered:a:replaced', 'registered:b', 'registered:a', 'registered:b']);
    expect([reg.count(), reg.lookup('k')?.pid]).toEqual([1, b.pid]);
    expect(await reg.heartbeat(a.pid)).toEqual({ error: 'not_registered' });
  });

  it('a registry that crashed and resumed its table still knows which agents it removed on purpose', async () => {
    const { node, clock } = clockedNode(track);
    let registry!: AgentRegistryHandle;
    await Supervisor.start(node, [{ id: 'r', start: (ctx) => AgentRegistry.start(ctx, { name: 'reg' }).then((r) => (registry = r).pid) }]);
    const solo = await Agent.start(node, { name: 'solo', capabilities: ['x'], runTask: () => 1, registry: { registry, heartbeatMs: 100 } });
    expect(await registry.unregister('solo')).toBe('ok');
    await exitAndWait(node, node.registry.whereis('reg')!, new Error('crash'));
    for (let i = 0; i < 3; i++) await advance(node, clock, 100);
    expect(registry.lookup('solo')).toBe(undefined);
    expect(await registry.heartbeat(solo.pid)).toEqual({ error: 'unregistered' });
  });

  it('what it remembers is of live processes only: the dead are forgotten as more are remembered, and a dead pid is answered not_registered', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { name: 'reg' });
    const removed = (): Map<string, unknown> => peekComponentState<{ removed: Map<string, unknown> }>(node, 'reg', 'agent_registry')!.removed;
    const first = Array.from({ length: 100 }, () => idler(node));
    for (const p of first) await registry.register(p, {}, { key: 'k' });
    expect(removed().size).toBe(99);
    for (const p of first.slice(0, 99)) node.exit(p, 'kill');
    await node.idle();
    expect(await registry.heartbeat(first[0]!)).toEqual({ error: 'not_registered' });
    const more = Array.from({ length: 100 }, () => idler(node));
    for (const p of more) await registry.register(p, {}, { key: 'k' });
    // the dead were dropped once the table grew to twice what was live at its last purge
    expect(new Set(removed().keys())).toEqual(new Set([first[99]!, ...more.slice(0, 99)].map((p) => PidOf.format(p))));
    expect(await registry.heartbeat(first[99]!)).toEqual({ error: 'replaced' });
  });
});
