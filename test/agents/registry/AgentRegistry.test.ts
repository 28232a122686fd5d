import { afterEach, describe, expect, it, vi } from 'vitest';
import { Agent, AgentRegistry, type AgentRegistryHandle, GenServer, type Node, Pid, resolveAgents, Supervisor } from '../../../src/index.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { captureEvents, type TestClock } from '../../../src/testing/index.js';
import { advance, clockedNode, deadPid, exitAndWait, HOUR, idler, nextEvent, settlesWithin, spawnWithContext, stepWallClock, useNodes } from '../../support.js';

const track = useNodes();

function events(node: Node) {
  const cap = captureEvents(node, ['keel.agent_registry.']);
  return {
    names: () => cap.events.map((e) => `${e.event.slice('keel.agent_registry.'.length)}:${String(e.metadata.key)}${e.metadata.reason === undefined ? '' : `:${String(e.metadata.reason)}`}`),
  };
}

/** Advances the clock and lets every process handle what it was sent. */
describe('AgentRegistry: registration', () => {
  it('registers a process under its registered name, with the node filled in, and answers lookups and queries without a call', async () => {
    const { node } = clockedNode(track);
    const registry = await AgentRegistry.start(node);
    const pid = idler(node, { name: 'ocr-1' });
    const r = await registry.register(pid, { capabilities: ['ocr', 'pdf', 'ocr'], kinds: ['scan'], team: 'docs', role: 'worker', load: 2 });
    expect(r).toEqual({ key: 'ocr-1' });
    const entry = registry.lookup('ocr-1')!;
    expect(entry.pid).toBe(pid);
    expect(entry.meta).toEqual({ capabilities: ['ocr', 'pdf'], kinds: ['scan'], team: 'docs', role: 'worker', load: 2, status: 'healthy', health: 'healthy', node: pid.node, lastSeen: 1_000_000 });
    expect(Object.isFrozen(entry) && Object.isFrozen(entry.meta)).toBe(true);
    expect(registry.query({ capability: 'ocr' })).toEqual([entry]);
    expect(registry.query({ capabilities: ['ocr', 'pdf'], kind: 'scan', team: 'docs', role: 'worker' })).toEqual([entry]);
    expect(registry.query({ capabilities: ['ocr', 'gpu'] })).toEqual([]);
    expect(registry.query({ team: 'other' })).toEqual([]);
    expect(registry.count()).toBe(1);
  });

  it('an unnamed process is registered under its pid text, or the key given; a process may hold several keys', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const pid = idler(node);
    expect(await registry.register(pid, { capabilities: ['a'] })).toEqual({ key: Pid.format(pid) });
    expect(await registry.register(pid, { capabilities: ['b'] }, { key: 'second' })).toEqual({ key: 'second' });
    expect(registry.pids({ capability: 'b' })).toEqual([pid]);
    expect((await registry.stats()).processes).toBe(1);
    node.exit(pid, 'shutdown');
    await node.idle();
    expect(registry.count()).toBe(0);
    expect((await registry.stats()).unregistered).toEqual({ down: 2, explicit: 0, replaced: 0 });
  });

  it('registers from the process itself (its Context), and a dead process is refused with noproc', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const { ctx, pid } = await spawnWithContext(node);
    expect(await registry.register(ctx, { role: 'lead' }, { key: 'me' })).toEqual({ key: 'me' });
    expect(registry.lookup('me')!.pid).toBe(pid);
    expect(await registry.register(deadPid(node), {})).toEqual({ error: 'noproc' });
    expect(registry.count()).toBe(1);
    // a pid parsed from its text is answered as the process's own pid
    const other = idler(node);
    await registry.register(Pid.parse(Pid.format(other)), {}, { key: 'parsed' });
    expect(registry.lookup('parsed')!.pid).toBe(other);
  });

  it('an entry vanishes when its process dies (monitored): unregistered with reason down', async () => {
    const node = track();
    const ev = events(node);
    const registry = await AgentRegistry.start(node);
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await registry.register(b, { capabilities: ['x'] }, { key: 'b' });
    node.exit(a, 'kill');
    await node.idle();
    expect(registry.pids({ capability: 'x' })).toEqual([b]);
    expect(registry.lookup('a')).toBeUndefined();
    expect(ev.names()).toEqual(['registered:a', 'registered:b', 'unregistered:a:down']);
  });

  it('update changes the metadata and the indexes; unregister removes (explicit) and stops watching', async () => {
    const node = track();
    const ev = events(node);
    const registry = await AgentRegistry.start(node);
    const pid = idler(node);
    await registry.register(pid, { capabilities: ['x'], team: 't1' }, { key: 'k' });
    expect(await registry.update('k', { capabilities: ['y'], team: 't2', load: 5 })).toBe('ok');
    expect(registry.query({ capability: 'x' })).toEqual([]);
    expect(registry.query({ team: 't1' })).toEqual([]);
    expect(registry.query({ capability: 'y', team: 't2' }).map((e) => e.meta.load)).toEqual([5]);
    expect(await registry.update('nope', { load: 1 })).toEqual({ error: 'not_registered' });
    expect(await registry.unregister(pid)).toBe('ok');
    expect(await registry.unregister('k')).toBe('not_found');
    expect(registry.count()).toBe(0);
    // an update is said (a query's followers look again), a failed one is not
    expect(ev.names()).toEqual(['registered:k', 'updated:k', 'unregistered:k:explicit']);
    // nothing watches it any more: its death is no event
    node.exit(pid, 'kill');
    await node.idle();
    expect(ev.names()).toHaveLength(3);
  });
});

describe('AgentRegistry: restarts', () => {
  it('a registered agent that restarts under its supervisor is found again under the same key (the new pid replaces the old)', async () => {
    const node = track();
    const ev = events(node);
    const registry = await AgentRegistry.start(node);
    const sup = await Supervisor.start(node, [
      {
        id: 'worker',
        start: async (ctx) => {
          const agent = await Agent.start(ctx, { name: 'worker', capabilities: ['x'], runTask: () => 'ok' });
          await registry.register(agent.pid, { capabilities: ['x'] });
          return agent.pid;
        },
      },
    ]);
    const q = registry.select({ capability: 'x' });
    const first = node.registry.whereis('worker')!;
    expect(resolveAgents(q)).toEqual([first]);
    await exitAndWait(node, first, new Error('crash'));
    const second = node.registry.whereis('worker')!;
    expect(second.id).not.toBe(first.id);
    expect(resolveAgents(q)).toEqual([second]);
    expect(registry.lookup('worker')!.pid).toBe(second);
    // the Down may come before or after the restarted agent registers: either way one entry, under the key
    expect(ev.names().filter((n) => n.startsWith('registered'))).toEqual(['registered:worker', 'registered:worker']);
    expect(registry.count()).toBe(1);
    await GenServer.stop(node, sup, 'shutdown');
    await node.idle();
    expect(registry.count()).toBe(0);
  });

  it('the same key from another live process replaces the entry (unregistered: replaced); the old process is no longer watched', async () => {
    const node = track();
    const ev = events(node);
    const registry = await AgentRegistry.start(node);
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'k' });
    await registry.register(b, { capabilities: ['y'] }, { key: 'k' });
    expect(registry.lookup('k')!.pid).toBe(b);
    expect(registry.query({ capability: 'x' })).toEqual([]);
    node.exit(a, 'kill');
    await node.idle();
    expect(registry.lookup('k')!.pid).toBe(b);
    expect(ev.names()).toEqual(['registered:k', 'unregistered:k:replaced', 'registered:k']);
    expect(await registry.stats()).toMatchObject({ agents: 1, processes: 1, unregistered: { down: 0, explicit: 0, replaced: 1 } });
  });

  it('a crashed registry restarts with its entries, watches them again, and drops those that died meanwhile', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { name: 'agents' });
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await registry.register(b, { capabilities: ['x'] }, { key: 'b' });
    const before = registry.pid;
    node.exit(before, new Error('registry crash'));
    node.exit(b, 'kill'); // dies while no registry watches it
    await node.idle();
    expect(registry.pid.id).not.toBe(before.id);
    expect(registry.pids({ capability: 'x' })).toEqual([a]);
    node.exit(a, 'kill'); // watched again by the new registry
    await node.idle();
    expect(registry.count()).toBe(0);
    expect(componentStates(node)).toContain('agents');
  });

  it('a registry stopped for good releases its table: its handle and queries answer nothing', async () => {
    const node = track();
    const { ctx } = await spawnWithContext(node);
    const registry = await AgentRegistry.start(ctx, { name: 'agents' });
    const pid = idler(node);
    await registry.register(pid, { capabilities: ['x'] }, { key: 'k' });
    const q = registry.select({ capability: 'x' });
    await GenServer.stop(node, 'agents');
    await node.idle();
    expect(componentStates(node)).not.toContain('agents');
    expect(resolveAgents(q)).toEqual([]);
    expect(registry.lookup('k')).toBeUndefined();
    expect(registry.count()).toBe(0);
    // a new registry under the name: the old handle and query read its table
    const again = await AgentRegistry.start(ctx, { name: 'agents' });
    await again.register(pid, { capabilities: ['x'] }, { key: 'k2' });
    expect(registry.lookup('k2')!.pid).toBe(pid);
    expect(resolveAgents(q)).toEqual([pid]);
  });
});

describe('AgentRegistry: health', () => {
  async function healthSetup(options: { missedHeartbeats?: number; poll?: boolean } = {}): Promise<{ node: Node; clock: TestClock; registry: AgentRegistryHandle; ev: ReturnType<typeof events> }> {
    const { node, clock } = clockedNode(track);
    const ev = events(node);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 1000, ...options });
    return { node, clock, registry, ev };
  }

  it('an agent that misses its heartbeats becomes unhealthy (an event) and leaves healthy queries; a heartbeat brings it back', async () => {
    const { node, clock, registry, ev } = await healthSetup();
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await registry.register(b, { capabilities: ['x'] }, { key: 'b' });
    for (let t = 0; t < 3; t++) {
      await advance(node, clock, 1000);
      expect(await registry.heartbeat(b, { load: t })).toBe('ok');
    }
    // a was last heard from 3000 ms ago: 3 missed intervals
    expect(registry.pids({ capability: 'x' })).toEqual([b]);
    expect(registry.pids({ capability: 'x', health: 'unhealthy' })).toEqual([a]);
    expect(registry.pids({ capability: 'x', health: 'any' })).toEqual([a, b]);
    expect(registry.lookup('a')!.meta).toMatchObject({ health: 'unhealthy', status: 'healthy', lastSeen: 1_000_000 });
    expect(registry.lookup('b')!.meta).toMatchObject({ health: 'healthy', load: 2, lastSeen: 1_003_000 });
    expect(ev.names()).toEqual(['registered:a', 'registered:b', 'unhealthy:a:missed_heartbeats']);
    expect(await registry.heartbeat('a')).toBe('ok');
    expect(registry.pids({ capability: 'x' })).toEqual([a, b]);
    expect(ev.names().at(-1)).toBe('healthy:a:heartbeat');
    expect(await registry.heartbeat('gone')).toEqual({ error: 'not_registered' });
    // a forged poll answer (not the registry's own) is no heartbeat
    await advance(node, clock, 3000);
    node.send(registry.pid, { type: 'polled', token: {}, key: 'a', pid: a, load: 0 } as never);
    await node.idle();
    expect(registry.lookup('a')!.meta.health).toBe('unhealthy');
  });

  it('an agent heartbeats from its own Context: every key it holds is heard from', async () => {
    const { node, clock, registry } = await healthSetup();
    const { ctx, pid } = await spawnWithContext(node);
    await registry.register(ctx, {}, { key: 'one' });
    await registry.register(ctx, {}, { key: 'two' });
    await advance(node, clock, 2000);
    expect(await registry.heartbeat(ctx, { load: 3 })).toBe('ok');
    await advance(node, clock, 2000);
    expect(registry.query().map((e) => [e.key, e.meta.load, e.pid === pid])).toEqual([['one', 3, true], ['two', 3, true]]);
    expect(await registry.heartbeat(idler(node))).toEqual({ error: 'not_registered' });
  });

  it('missedHeartbeats sets the window; one unhealthy event per lapse, not one per sweep', async () => {
    const { node, clock, registry, ev } = await healthSetup({ missedHeartbeats: 1 });
    await registry.register(idler(node), {}, { key: 'a' });
    await advance(node, clock, 999);
    expect(registry.lookup('a')!.meta.health).toBe('healthy');
    await advance(node, clock, 1);
    expect(registry.lookup('a')!.meta.health).toBe('unhealthy');
    await advance(node, clock, 5000);
    expect(ev.names()).toEqual(['registered:a', 'unhealthy:a:missed_heartbeats']);
  });

  it('an agent may declare itself unhealthy, and healthy again', async () => {
    const { node, registry, ev } = await healthSetup();
    await registry.register(idler(node), { capabilities: ['x'] }, { key: 'a' });
    await registry.heartbeat('a', { status: 'unhealthy' });
    expect(registry.query({ capability: 'x' })).toEqual([]);
    await registry.update('a', { status: 'healthy' });
    expect(registry.query({ capability: 'x' })).toHaveLength(1);
    // a heartbeat is no update; the update that declares it healthy is one
    expect(ev.names()).toEqual(['registered:a', 'unhealthy:a:declared', 'healthy:a:declared', 'updated:a']);
  });

  it('an entry registered again by its process changes health with an event: back from missed heartbeats, or declared unhealthy', async () => {
    const { node, clock, registry, ev } = await healthSetup({ missedHeartbeats: 1 });
    const a = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await advance(node, clock, 1000);
    expect(registry.lookup('a')!.meta.health).toBe('unhealthy');
    // a registration is hearing from it: healthy again, said as a heartbeat says it
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    expect(registry.lookup('a')!.meta.health).toBe('healthy');
    await registry.register(a, { capabilities: ['x'], status: 'unhealthy' }, { key: 'a' });
    await registry.register(a, { capabilities: ['x'], status: 'unhealthy' }, { key: 'a' });
    expect(registry.pids({ capability: 'x' })).toEqual([]);
    expect(ev.names()).toEqual([
      'registered:a', 'unhealthy:a:missed_heartbeats',
      'registered:a', 'healthy:a:register',
      'registered:a', 'unhealthy:a:declared',
      'registered:a',
    ]);
  });

  it('with poll: true, an agent not heard from for an interval is asked its status (the agent protocol) and its answer counts as a heartbeat', async () => {
    const { node, clock, registry, ev } = await healthSetup({ poll: true });
    const agent = await Agent.start(node, { capabilities: ['x'], runTask: () => 1 });
    const silent = idler(node); // does not speak the agent protocol: its status call times out
    await registry.register(agent.pid, { capabilities: ['x'] }, { key: 'agent' });
    await registry.register(silent, { capabilities: ['x'] }, { key: 'silent' });
    for (let t = 0; t < 4; t++) await advance(node, clock, 1000);
    expect(registry.pids({ capability: 'x' })).toEqual([agent.pid]);
    expect(registry.lookup('agent')!.meta.lastSeen).toBeGreaterThan(1_002_000);
    expect(ev.names().filter((n) => n.startsWith('unhealthy'))).toEqual(['unhealthy:silent:missed_heartbeats']);
    expect((await registry.stats()).polls).toBeGreaterThanOrEqual(4);
  });

  it('without heartbeatIntervalMs nothing expires: entries stay healthy however long', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node);
    await registry.register(idler(node), {}, { key: 'a' });
    await advance(node, clock, 1_000_000);
    expect(registry.lookup('a')!.meta.health).toBe('healthy');
  });
});

describe('AgentRegistry: heartbeats on the real clock (counted on the timers\' time: a wall clock stepped neither cuts nor stretches the window)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('an agent heard from before the wall clock was stepped forward an hour still has its whole window', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 20, missedHeartbeats: 10 });
    const started = performance.now();
    await registry.register(idler(node), {}, { key: 'a' });
    const lapsed = nextEvent(node, 'keel.agent_registry.unhealthy');
    stepWallClock(HOUR);
    // on the wall clock, the first sweep after the step found it an hour old
    await lapsed;
    expect(performance.now() - started).toBeGreaterThanOrEqual(200);
    expect(registry.lookup('a')!.meta.lastSeen).toBeLessThan(Date.now() - HOUR / 2); // still a wall-clock date
  });

  it('an agent heard from before the wall clock was stepped back an hour still lapses after its window', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 10, missedHeartbeats: 2 });
    await registry.register(idler(node), {}, { key: 'a' });
    const lapsed = nextEvent(node, 'keel.agent_registry.unhealthy');
    stepWallClock(-HOUR);
    // on the wall clock, it would lapse an hour late
    expect(await settlesWithin(lapsed, 4000)).toBe('settled');
  });
});
