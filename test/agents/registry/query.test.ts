import { describe, expect, it } from 'vitest';
import { AgentRegistry, type AgentEntry, type AgentHealth, type AgentWhere, GenServer, isAgentQuery, isKeelError, Pid, resolveAgents } from '../../../src/index.js';
import { deadPid, expectKeelError, failure, idler, seeded, thrown, UNREADABLE, useNodes } from '../../support.js';

const track = useNodes();

const CAPS = Array.from({ length: 40 }, (_, i) => `cap${i}`);
const KINDS = ['fetch', 'parse', 'index', 'render'];
const TEAMS = ['red', 'green', 'blue'];
const ROLES = ['lead', 'member'];

interface Plain {
  key: string;
  capabilities: string[];
  kinds: string[];
  team: string;
  role: string;
  health: AgentHealth;
}

/** The brute-force answer: every entry, filtered field by field. */
function bruteForce(all: readonly Plain[], where: AgentWhere): string[] {
  const caps = [...(where.capabilities ?? []), ...(where.capability === undefined ? [] : [where.capability])];
  const health = where.health ?? 'healthy';
  return all
    .filter(
      (a) =>
        caps.every((c) => a.capabilities.includes(c)) &&
        (where.kind === undefined || a.kinds.includes(where.kind)) &&
        (where.team === undefined || a.team === where.team) &&
        (where.role === undefined || a.role === where.role) &&
        (health === 'any' || a.health === health),
    )
    .map((a) => a.key)
    .sort();
}

describe('AgentRegistry: queries', () => {
  it('over 10,000 entries, every query answers exactly what a brute-force filter does', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const random = seeded(15);
    const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
    const all: Plain[] = [];
    const procs = Array.from({ length: 500 }, () => idler(node));
    const pending: Promise<unknown>[] = [];
    for (let i = 0; i < 10_000; i++) {
      const capabilities = [...new Set(Array.from({ length: 1 + Math.floor(random() * 4) }, () => pick(CAPS)))];
      const a: Plain = { key: `a${i}`, capabilities, kinds: [pick(KINDS)], team: pick(TEAMS), role: i % 10 === 0 ? 'lead' : 'member', health: random() < 0.1 ? 'unhealthy' : 'healthy' };
      all.push(a);
      pending.push(registry.register(procs[i % procs.length]!, { capabilities, kinds: a.kinds, team: a.team, role: a.role, status: a.health }, { key: a.key }));
    }
    await Promise.all(pending);
    expect(registry.count()).toBe(10_000);
    const queries: AgentWhere[] = [{}, { health: 'any' }, { health: 'unhealthy' }, { capability: 'cap0' }, { capability: 'nope' }, { role: 'lead', health: 'any' }];
    for (let q = 0; q < 200; q++) {
      const w: { -readonly [K in keyof AgentWhere]: AgentWhere[K] } = {};
      if (random() < 0.7) w.capability = pick(CAPS);
      if (random() < 0.3) w.capabilities = [pick(CAPS), pick(CAPS)];
      if (random() < 0.4) w.kind = pick(KINDS);
      if (random() < 0.4) w.team = pick(TEAMS);
      if (random() < 0.3) w.role = pick(ROLES);
      if (random() < 0.3) w.health = pick(['healthy', 'unhealthy', 'any'] as const);
      queries.push(w);
    }
    for (const w of queries) expect(registry.query(w).map((e) => e.key).sort(), JSON.stringify(w)).toEqual(bruteForce(all, w));
    // processes die: their entries leave every index
    for (let p = 0; p < 50; p++) node.exit(procs[p]!, 'kill');
    await node.idle();
    const dead = new Set(procs.slice(0, 50).map((p) => Pid.format(p)));
    const alive = all.filter((_, i) => !dead.has(Pid.format(procs[i % procs.length]!)));
    expect(registry.count()).toBe(alive.length);
    for (const w of queries.slice(0, 60)) expect(registry.query(w).map((e) => e.key).sort(), JSON.stringify(w)).toEqual(bruteForce(alive, w));
    // changes after the answers were kept: new capabilities, teams and health on 500 entries
    for (const a of alive.slice(0, 500)) {
      a.capabilities = [pick(CAPS)];
      a.team = pick(TEAMS);
      a.health = a.health === 'healthy' ? 'unhealthy' : 'healthy';
      expect(await registry.update(a.key, { capabilities: a.capabilities, team: a.team, status: a.health })).toBe('ok');
    }
    for (const w of queries) expect(registry.query(w).map((e) => e.key).sort(), JSON.stringify(w)).toEqual(bruteForce(alive, w));
  });

  it('limit caps the answer; a query value resolves when used, and resolveAgents passes a list of pids through', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const pids = [idler(node), idler(node), idler(node)];
    for (const [i, p] of pids.entries()) await registry.register(p, { capabilities: ['x'] }, { key: `k${i}` });
    expect(registry.query({ capability: 'x', limit: 2 }).map((e: AgentEntry) => e.key)).toEqual(['k0', 'k1']);
    const q = registry.select({ capability: 'x' });
    expect(isAgentQuery(q)).toBe(true);
    expect(isAgentQuery(pids)).toBe(false);
    expect(q.where).toEqual({ capability: 'x' });
    expect(resolveAgents(q)).toEqual(pids);
    node.exit(pids[1]!, 'kill');
    await node.idle();
    expect(resolveAgents(q)).toEqual([pids[0], pids[2]]);
    expect(q.entries().map((e) => e.key)).toEqual(['k0', 'k2']);
    const list = [pids[0]!];
    const copy = resolveAgents(list);
    expect(copy).toEqual(list);
    expect(copy).not.toBe(list);
    expectKeelError(thrown(() => resolveAgents(['nope'] as never)), 'ERR_INVALID_ARGUMENT', 'agents[0]');
    expectKeelError(thrown(() => resolveAgents({ registry: 'x', where: {} } as never)), 'ERR_INVALID_ARGUMENT', 'AgentQuery');
    for (const [, make] of UNREADABLE) expectKeelError(thrown(() => resolveAgents(make() as never)), 'ERR_INVALID_ARGUMENT', 'agents');
  });
});

describe('AgentRegistry: hostile input', () => {
  it('refuses bad options at the door, naming the option', async () => {
    const node = track();
    const bad: [unknown, string][] = [
      [{ heartbeatIntervalMs: 0 }, 'options.heartbeatIntervalMs'],
      [{ heartbeatIntervalMs: NaN }, 'options.heartbeatIntervalMs'],
      [{ heartbeatIntervalMs: 1.5 }, 'options.heartbeatIntervalMs'],
      [{ missedHeartbeats: 0 }, 'options.missedHeartbeats'],
      [{ missedHeartbeats: 1e9 }, 'options.missedHeartbeats'],
      [{ poll: 'yes' }, 'options.poll'],
      [{ poll: true }, 'options.heartbeatIntervalMs'],
      [{ name: '' }, 'options.name'],
      [{ name: 'keel.mine' }, 'keel.mine'],
      [{ heartbeat: 5 }, 'options.heartbeat'],
      [JSON.parse('{"__proto__": {"poll": true}}'), 'options.__proto__'],
      [Object.defineProperty({}, 'poll', { get: () => { throw new Error('boom'); }, enumerable: true }), 'options.poll'],
      ['fast', 'options'],
    ];
    for (const [options, argument] of bad) {
      const e = await failure(() => AgentRegistry.start(node, options as never));
      expect(isKeelError(e), String(argument)).toBe(true);
      expect(String((e as Error).message)).toContain(argument);
    }
    for (const [, make] of UNREADABLE) expectKeelError(await failure(() => AgentRegistry.start(node, make() as never)), 'ERR_INVALID_ARGUMENT', 'options');
    expect(node.registry.whereis('keel.agent_registry.1')).toBeUndefined();
  });

  it('hostile metadata and queries are typed errors and leave the index as it was', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const pid = idler(node);
    await registry.register(pid, { capabilities: ['x'], team: 't' }, { key: 'k' });
    const before = registry.query({ health: 'any' });
    const getter = Object.defineProperty({}, 'capabilities', { get: () => ['evil'], enumerable: true });
    const badMeta: [unknown, string][] = [
      [{ capabilities: 'x' }, 'meta.capabilities'],
      [{ capabilities: [''] }, 'meta.capabilities[0]'],
      [{ capabilities: [1] }, 'meta.capabilities[0]'],
      [{ capabilities: Array.from({ length: 10_000 }, (_, i) => `c${i}`) }, 'meta.capabilities'],
      [{ capabilities: ['x'.repeat(100_000)] }, 'meta.capabilities[0]'],
      [{ capabilities: [, 'a'] }, 'meta.capabilities[0]'],
      [{ capabilities: Object.defineProperty(['a'], 0, { get: () => 'a' }) }, 'meta.capabilities[0]'],
      [{ load: -1 }, 'meta.load'],
      [{ load: Infinity }, 'meta.load'],
      [{ load: NaN }, 'meta.load'],
      [{ status: 'dead' }, 'meta.status'],
      [{ team: 7 }, 'meta.team'],
      [{ role: '' }, 'meta.role'],
      [getter, 'meta.capabilities'],
      [JSON.parse('{"__proto__": {"capabilities": ["evil"]}}'), 'meta.__proto__'],
      [{ extra: 1 }, 'meta.extra'],
      [[], 'meta'],
      [new Proxy({}, {}), 'meta'],
    ];
    for (const [meta, argument] of badMeta) {
      expectKeelError(await failure(() => registry.register(pid, meta as never, { key: 'k2' })), 'ERR_INVALID_ARGUMENT', argument);
      expectKeelError(await failure(() => registry.update('k', meta as never)), 'ERR_INVALID_ARGUMENT', argument.replace(/^meta/, 'patch'));
    }
    for (const [, make] of UNREADABLE) {
      expectKeelError(await failure(() => registry.register(pid, make() as never)), 'ERR_INVALID_ARGUMENT', 'meta');
      expectKeelError(thrown(() => registry.query(make() as never)), 'ERR_INVALID_ARGUMENT', 'where');
    }
    const badWhere: [unknown, string][] = [
      [{ capability: '' }, 'where.capability'],
      [{ capabilities: 'x' }, 'where.capabilities'],
      [{ health: 'ok' }, 'where.health'],
      [{ limit: 0 }, 'where.limit'],
      [{ limit: 1.5 }, 'where.limit'],
      [{ teem: 't' }, 'where.teem'],
      [Object.defineProperty({}, 'team', { get: () => { throw new Error('boom'); }, enumerable: true }), 'where.team'],
    ];
    for (const [where, argument] of badWhere) {
      expectKeelError(thrown(() => registry.query(where as never)), 'ERR_INVALID_ARGUMENT', argument);
      expectKeelError(thrown(() => registry.select(where as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
    expectKeelError(await failure(() => registry.register('nope' as never, {})), 'ERR_INVALID_ARGUMENT', 'agent');
    expectKeelError(await failure(() => registry.register(pid, {}, { key: '' })), 'ERR_INVALID_ARGUMENT', 'options.key');
    expectKeelError(await failure(() => registry.register(registry.pid, {})), 'ERR_INVALID_ARGUMENT', 'registry itself');
    expectKeelError(await failure(() => registry.heartbeat('k', { load: -5 })), 'ERR_INVALID_ARGUMENT', 'beat.load');
    expectKeelError(await failure(() => registry.heartbeat('k', { capabilities: ['y'] } as never)), 'ERR_INVALID_ARGUMENT', 'beat.capabilities');
    expectKeelError(await failure(() => registry.unregister(42 as never)), 'ERR_INVALID_ARGUMENT', 'ref');
    expectKeelError(thrown(() => registry.lookup(undefined as never)), 'ERR_INVALID_ARGUMENT', 'key');
    // a call made around the handle is checked by the registry itself
    const direct = await GenServer.call(node, registry.pid, { type: 'register', pid, key: 'k3', meta: { capabilities: [1] } } as never);
    expectKeelError(direct, 'ERR_INVALID_ARGUMENT', 'meta.capabilities[0]');
    const unknown = await GenServer.call(node, registry.pid, { type: 'drop_all' } as never);
    expectKeelError(unknown, 'ERR_INVALID_ARGUMENT', 'request');
    node.send(registry.pid, { type: 'sweep', token: {} } as never); // a forged timer message changes nothing
    expect(registry.query({ health: 'any' })).toEqual(before);
    expect(await registry.stats()).toMatchObject({ agents: 1, processes: 1, registered: 1, capabilities: 1 });
  });

  it('a flood of registrations from dying processes leaves nothing behind', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const pending: Promise<unknown>[] = [];
    const pids = Array.from({ length: 300 }, () => idler(node));
    for (const [i, p] of pids.entries()) {
      pending.push(registry.register(p, { capabilities: ['x'] }, { key: `k${i % 100}` }));
      if (i % 3 === 0) node.exit(p, 'kill'); // killed before its registration is handled
    }
    const results = await Promise.all(pending);
    expect(results.filter((r) => typeof r === 'object' && r !== null && 'error' in r)).toHaveLength(100);
    await node.idle();
    const entries = registry.query({ capability: 'x' });
    expect(entries.every((e) => node.isAlive(e.pid))).toBe(true);
    expect(entries).toHaveLength(100);
    for (const p of pids) if (node.isAlive(p)) node.exit(p, 'kill');
    await node.idle();
    expect(registry.count()).toBe(0);
    expect((await registry.stats()).processes).toBe(0);
    expect(await registry.register(deadPid(node), {})).toEqual({ error: 'noproc' });
  });
});
