import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, type AgentRegistryHandle, type From, GenServer, Pid, resolveAgents, SignalRouter, Supervisor } from '../../../src/index.js';
import type { Down } from '../../../src/runtime/messages.js';
import { componentStates, peekComponentState } from '../../../src/agents/internal/componentState.js';
import { captureEvents, expectNoLeaks } from '../../../src/testing/index.js';
import { advance, clockedNode, fakeLogger, idler, listOf, otherCreation, spawnWithContext, useNodes } from '../../support.js';

// An adversarial review: what an Elixir Registry / gproc user would try.

const track = useNodes();

describe('AgentRegistry: answers and their order', () => {
  it('a kept answer is copied: a caller that changes its array changes nobody else’s, and entries are frozen', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await registry.register(b, { capabilities: ['x'] }, { key: 'b' });
    const first = registry.query({ capability: 'x' });
    first.length = 0;
    const second = registry.query({ capability: 'x' });
    expect(second.map((e) => e.key)).toEqual(['a', 'b']);
    second.reverse();
    expect(registry.query({ capability: 'x' }).map((e) => e.key)).toEqual(['a', 'b']);
    expect(registry.query({ capability: 'x', limit: 1 }).map((e) => e.key)).toEqual(['a']);
    const q = registry.select({ capability: 'x' });
    q.pids().pop();
    expect(resolveAgents(q)).toEqual([a, b]);
    expect(() => (second[0]!.meta.capabilities as string[]).push('y')).toThrow(TypeError);
    expect(registry.query({ capability: 'y' })).toEqual([]);
    expectNoLeaks(node);
  });

  it('an update that changes capabilities, kinds, team or role keeps registration order in the sets the entry stays in', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    for (const k of ['a', 'b', 'c']) await registry.register(idler(node), { capabilities: ['x'], kinds: ['k'], team: 't', role: 'r' }, { key: k });
    expect(await registry.update('a', { capabilities: ['x', 'y'], kinds: ['k', 'j'], team: 't', role: 'r' })).toBe('ok');
    expect(registry.query({ capability: 'x' }).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    expect(registry.query({ kind: 'k' }).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    expect(registry.query({ team: 't', role: 'r' }).map((e) => e.key)).toEqual(['a', 'b', 'c']);
    expect(registry.query({ capability: 'x', limit: 1 }).map((e) => e.key)).toEqual(['a']);
    // the sets it left and joined are right
    expect(registry.query({ capability: 'y' }).map((e) => e.key)).toEqual(['a']);
    expect(await registry.update('a', { capabilities: ['y'] })).toBe('ok');
    expect(registry.query({ capability: 'x' }).map((e) => e.key)).toEqual(['b', 'c']);
  });

  it('the query value is frozen and detached from the caller’s arrays', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const caps = ['x'];
    const q = registry.select({ capabilities: caps });
    caps.push('y');
    expect(q.where).toEqual({ capabilities: ['x'] });
    expect(Object.isFrozen(q.where.capabilities)).toBe(true);
  });

  it('select runs no code of the query: an own iterator on its array, a symbol-keyed getter', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    let ran = 0;
    const caps = ['x'];
    Object.defineProperty(caps, Symbol.iterator, { value: () => { ran++; throw new Error('iterator ran'); } });
    const where = { capabilities: caps };
    Object.defineProperty(where, Symbol('hidden'), { get: () => { ran++; throw new Error('getter ran'); }, enumerable: true });
    const q = registry.select(where);
    expect(ran).toBe(0);
    expect(q.where).toEqual({ capabilities: ['x'] });
    expect(Object.getOwnPropertySymbols(q.where)).toEqual([]);
    expect(Object.isFrozen(q.where.capabilities)).toBe(true);
  });
});

describe('AgentRegistry: processes and keys', () => {
  it('a process holding 3,000 keys that dies: one monitor, one Down, every key gone', async () => {
    const node = track();
    const ev = captureEvents(node, ['keel.agent_registry.unregistered']);
    const registry = await AgentRegistry.start(node);
    const pid = idler(node);
    for (let i = 0; i < 3000; i++) await registry.register(pid, { capabilities: [`c${i % 7}`] }, { key: `k${i}` });
    expect(await registry.stats()).toMatchObject({ agents: 3000, processes: 1 });
    expect(listOf(node).filter((m) => m.target === pid || Pid.equals(m.target, pid))).toHaveLength(1);
    node.exit(pid, 'kill');
    await node.idle();
    expect(registry.count()).toBe(0);
    expect(registry.query({ capability: 'c3', health: 'any' })).toEqual([]);
    expect(ev.events).toHaveLength(3000);
    expect(ev.events.every((e) => e.metadata.reason === 'down')).toBe(true);
    expect((await registry.stats()).processes).toBe(0);
    expectNoLeaks(node);
  });

  it('a pid of another creation or of another node is noproc; hostile keys and capabilities are plain data', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const pid = idler(node);
    expect(await registry.register(otherCreation(pid), {})).toEqual({ error: 'noproc' });
    expect(await registry.register(Pid.parse(`<elsewhere.${pid.id}.${pid.creation}>`), {})).toEqual({ error: 'noproc' });
    for (const key of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      expect(await registry.register(pid, { capabilities: [key], kinds: [key], team: key, role: key }, { key })).toEqual({ key });
    }
    expect(registry.query({ capability: '__proto__', kind: 'constructor', team: '__proto__', role: 'toString' })).toEqual([]);
    expect(registry.query({ capability: '__proto__' }).map((e) => e.key)).toEqual(['__proto__']);
    expect(registry.lookup('constructor')!.pid).toBe(pid);
    expect(registry.lookup('valueOf')).toBeUndefined();
    expect(registry.count()).toBe(4);
    await expect(registry.register(pid, {}, { key: 'k'.repeat(1025) })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(registry.register(pid, { capabilities: ['c'.repeat(257)] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => registry.query({ capability: 'c'.repeat(257) })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(registry.count()).toBe(4);
  });
});

describe('AgentRegistry: health edges', () => {
  it('a clock jump of many intervals marks the late entry unhealthy once; an entry heard from at the exact boundary stays healthy', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.unhealthy', 'keel.agent_registry.healthy']);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 2 });
    await registry.register(idler(node), {}, { key: 'late' });
    await registry.register(idler(node), {}, { key: 'beating' });
    await advance(node, clock, 199);
    await registry.heartbeat('beating');
    await advance(node, clock, 1); // 'late' is exactly 200 ms old: 2 missed intervals
    expect(registry.lookup('late')!.meta.health).toBe('unhealthy');
    expect(registry.lookup('beating')!.meta.health).toBe('healthy');
    await advance(node, clock, 100_000);
    expect(ev.events.map((e) => [e.event, e.metadata.key])).toEqual([
      ['keel.agent_registry.unhealthy', 'late'],
      ['keel.agent_registry.unhealthy', 'beating'],
    ]);
    expect(registry.pids()).toEqual([]);
    expect(registry.pids({ health: 'unhealthy' })).toHaveLength(2);
  });

  it('poll mode with an agent slower than the interval: one status call in flight at a time, no leak, no pile-up', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, poll: true });
    // a process that takes every call and never answers (a stuck agent)
    const received: unknown[] = [];
    const stuck = node.spawn(() => (m: unknown) => void received.push(m));
    await registry.register(stuck, {}, { key: 'stuck' });
    for (let i = 0; i < 20; i++) await advance(node, clock, 100);
    // one call per interval at most (each times out before the next), not one per sweep on top of those in flight
    expect(received.length).toBeGreaterThan(0);
    expect(received.length).toBeLessThanOrEqual(20);
    expect((await registry.stats()).polls).toBe(received.length);
    expect(registry.lookup('stuck')!.meta.health).toBe('unhealthy');
    node.exit(stuck, 'kill');
    await node.idle();
    expect(registry.count()).toBe(0);
    expectNoLeaks(node);
  });
});

describe('AgentRegistry: a registry that ends without a restart', () => {
  it('stopped with its supervisor (shutdown, not normal): reads no longer answer agents that died since', async () => {
    const node = track();
    const registry = await new Promise<AgentRegistryHandle>((resolve, reject) => {
      Supervisor.start(node, [{ id: 'reg', start: (ctx) => AgentRegistry.start(ctx, { name: 'agents' }).then((r) => (resolve(r), r.pid)) }]).then(
        (sup) => (held.sup = sup),
        reject,
      );
    });
    const held: { sup?: Pid } = {};
    await node.idle();
    const a = idler(node);
    const b = idler(node);
    await registry.register(a, { capabilities: ['x'] }, { key: 'a' });
    await registry.register(b, { capabilities: ['x'] }, { key: 'b' });
    const q = registry.select({ capability: 'x' });
    await GenServer.stop(node, held.sup!, 'shutdown');
    await node.idle();
    expect(node.registry.whereis('agents')).toBeUndefined();
    node.exit(a, 'kill'); // nobody watches it any more
    await node.idle();
    expect(registry.pids({ capability: 'x' })).toEqual([b]);
    expect(resolveAgents(q)).toEqual([b]);
    expect(registry.lookup('a')).toBeUndefined();
    expect(registry.lookup('b')!.pid).toBe(b);
    expect(registry.count()).toBe(1);
    // a registry started again under the name resumes the table and drops the dead (as documented)
    const again = await AgentRegistry.start(node, { name: 'agents' });
    expect(again.pids({ capability: 'x', health: 'any' })).toEqual([b]);
    expect(componentStates(node)).toContain('agents');
  });
});

describe('Agent.start({ registry }): heartbeats to a registry that does not answer', () => {
  it('keeps one heartbeat call in flight, not one more per beat', async () => {
    const { node, clock } = clockedNode(track);
    const real = await AgentRegistry.start(node);
    let calls = 0;
    // a handle whose heartbeat never answers (a registry that is stuck or restarting slowly)
    const stuck = Object.freeze({
      ...real,
      name: real.name,
      register: real.register,
      heartbeat: () => {
        calls++;
        return new Promise<never>(() => undefined);
      },
    }) as unknown as AgentRegistryHandle;
    await Agent.start(node, { name: 'w', capabilities: ['x'], runTask: () => 1, registry: { registry: stuck, heartbeatMs: 10 } });
    for (let i = 0; i < 50; i++) await advance(node, clock, 10);
    expect(calls).toBe(1);
    expect(real.lookup('w')!.meta.capabilities).toEqual(['x']);
  });
});

describe('AgentRegistry: polling edges', () => {
  it('poll with missedHeartbeats 1: an agent that answers every status call never flaps to unhealthy', async () => {
    const { node, clock } = clockedNode(track);
    const ev = captureEvents(node, ['keel.agent_registry.unhealthy', 'keel.agent_registry.healthy']);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 1, poll: true });
    const agent = await Agent.start(node, { capabilities: ['x'], runTask: () => 1 });
    const silent = idler(node);
    await registry.register(agent.pid, { capabilities: ['x'] }, { key: 'agent' });
    await registry.register(silent, { capabilities: ['x'] }, { key: 'silent' });
    for (let i = 0; i < 10; i++) await advance(node, clock, 100);
    expect(ev.events.map((e) => [e.event, e.metadata.key])).toEqual([['keel.agent_registry.unhealthy', 'silent']]);
    expect(registry.pids({ capability: 'x' })).toEqual([agent.pid]);
    expect((await registry.stats()).polls).toBeGreaterThanOrEqual(10);
  });

  it('a registry killed with status calls in flight: its successor polls afresh, the old answers are dropped, nothing leaks', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, poll: true });
    const received: unknown[] = [];
    const stuck = node.spawn(() => (m: unknown) => void received.push(m));
    const agent = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    await registry.register(stuck, {}, { key: 'stuck' });
    await registry.register(agent.pid, {}, { key: 'agent' });
    await advance(node, clock, 100);
    expect(received).toHaveLength(1); // a status call in flight
    const before = registry.pid;
    node.exit(before, 'kill');
    await node.idle();
    expect(registry.pid.id).not.toBe(before.id);
    for (let i = 0; i < 5; i++) await advance(node, clock, 100);
    expect(registry.lookup('agent')!.meta.health).toBe('healthy');
    expect(registry.lookup('stuck')!.meta.health).toBe('unhealthy');
    expect(registry.count()).toBe(2);
    node.exit(stuck, 'kill');
    await node.idle();
    await advance(node, clock, 200);
    expect(registry.count()).toBe(1);
    expectNoLeaks(node);
  });
});

describe('Agent.start({ registry }): what the registry would refuse is refused at the door', () => {
  it('a key, team, role, capability or kind the registry refuses, or a heartbeatMs under 1 ms, throws InvalidArgumentError naming the option before anything starts', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const long = 'x'.repeat(300);
    const cases: [Record<string, unknown>, string][] = [
      [{ capabilities: [], runTask: () => 1, registry: { registry, team: long } }, 'options.registry.team'],
      [{ capabilities: [], runTask: () => 1, registry: { registry, role: long } }, 'options.registry.role'],
      [{ capabilities: [], runTask: () => 1, registry: { registry, key: 'k'.repeat(1025) } }, 'options.registry.key'],
      [{ capabilities: [long], runTask: () => 1, registry }, 'options.capabilities[0]'],
      [{ capabilities: [''], runTask: () => 1, registry }, 'options.capabilities[0]'],
      [{ capabilities: [], tasks: { [long]: () => 1 }, registry }, 'options.tasks'],
      [{ capabilities: [], runTask: () => 1, registry: { registry, heartbeatMs: 1e-9 } }, 'options.registry.heartbeatMs'],
    ];
    const before = node.processes().length;
    for (const [options, argument] of cases) {
      let caught: unknown;
      try {
        await Agent.start(node, options as never);
      } catch (e) {
        caught = e;
      }
      expect(caught, argument).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', argument });
    }
    expect(node.processes().length).toBe(before);
    expect(registry.count()).toBe(0);
  });
});

describe('AgentRegistry: floods', () => {
  it('200 processes registering the same key at once: the last one holds it, one monitor left, the others’ deaths are no events', async () => {
    const node = track();
    const ev = captureEvents(node, ['keel.agent_registry.']);
    const registry = await AgentRegistry.start(node);
    const pids = Array.from({ length: 200 }, () => idler(node));
    const results = await Promise.all(pids.map((p) => registry.register(p, { capabilities: ['x'] }, { key: 'k' })));
    expect(results.every((r) => 'key' in r && r.key === 'k')).toBe(true);
    const holder = registry.lookup('k')!.pid;
    expect(registry.pids({ capability: 'x' })).toEqual([holder]);
    expect(await registry.stats()).toMatchObject({ agents: 1, processes: 1, unregistered: { down: 0, explicit: 0, replaced: 199 } });
    expect(listOf(node).filter((m) => Pid.equals(m.owner, registry.pid))).toHaveLength(1);
    const count = ev.events.length;
    for (const p of pids) if (p !== holder) node.exit(p, 'kill');
    await node.idle();
    expect(ev.events).toHaveLength(count);
    expect(registry.lookup('k')!.pid).toBe(holder);
    expectNoLeaks(node);
  });
});

describe('AgentRegistry: a stale handle and the name reused', () => {
  it('a handle of a registry stopped for good, its name then taken by another component: reads answer nothing, no TypeError', async () => {
    const node = track();
    const { ctx } = await spawnWithContext(node); // not under the node's agents supervisor, which would restart it
    const registry = await AgentRegistry.start(ctx, { name: 'shared' });
    await registry.register(idler(node), { capabilities: ['x'] }, { key: 'k' });
    const q = registry.select({ capability: 'x' });
    await GenServer.stop(node, 'shared');
    await node.idle();
    await SignalRouter.start(node, { name: 'shared' });
    expect(registry.query({ capability: 'x' })).toEqual([]);
    expect(resolveAgents(q)).toEqual([]);
    expect(registry.lookup('k')).toBeUndefined();
    expect(registry.count()).toBe(0);
  });
});

describe('AgentRegistry: a name whose kept table is another component’s', () => {
  it('starts empty: the kept router table is discarded (an event names both kinds), never read as a registry table', async () => {
    const node = track();
    const { ctx } = await spawnWithContext(node);
    const router = await SignalRouter.start(ctx, { name: 'taken' });
    expect(componentStates(node)).toContain('taken');
    ctx.trapExits(true);
    node.exit(router.pid, 'kill'); // not a stop for good: the router's table is kept for its restart
    await node.idle();
    expect(node.registry.whereis('taken')).toBeUndefined();
    const discarded = captureEvents(node, ['keel.agent_state.discarded']);
    const registry = await AgentRegistry.start(node, { name: 'taken' });
    expect(discarded.events.map((e) => [e.metadata.name, e.metadata.kind, e.metadata.by])).toEqual([['taken', 'signal_router', 'agent_registry']]);
    expect(registry.count()).toBe(0);
    expect(peekComponentState<object>(node, 'taken', 'signal_router')).toBeUndefined();
    const pid = idler(node);
    expect(await registry.register(pid, { capabilities: ['x'] }, { key: 'k' })).toEqual({ key: 'k' });
    expect(registry.pids({ capability: 'x' })).toEqual([pid]);
  });
});

describe('resolveAgents: hostile lists', () => {
  it('a getter, a hole or a non-pid in the list is a typed error naming the element; no code of the list runs', async () => {
    const node = track();
    const pid = idler(node);
    let ran = false;
    const withGetter: Pid[] = [pid, pid];
    Object.defineProperty(withGetter, 1, { get: () => ((ran = true), pid), enumerable: true });
    const holey = [pid, , pid] as Pid[];
    for (const [list, argument] of [[withGetter, 'pool[1]'], [holey, 'pool[1]'], [[pid, 'x'], 'pool[1]']] as const) {
      let caught: unknown;
      try {
        resolveAgents(list as readonly Pid[], 'pool');
      } catch (e) {
        caught = e;
      }
      expect(caught, argument).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', argument });
    }
    expect(ran).toBe(false);
    expect(resolveAgents([pid], 'pool')).toEqual([pid]);
  });
});

describe('AgentRegistry at node shutdown', () => {
  it('the Downs of its dying agents fill its mailbox: an event, not a warning (nothing to act on while the node stops)', async () => {
    const logger = fakeLogger();
    const node = track({ logger, longMailbox: { above: 100, below: 10 } });
    const registry = await AgentRegistry.start(node);
    for (let b = 0; b < 300; b += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, i) => registry.register(idler(node), { capabilities: ['x'] }, { key: `a${b + i}` })));
    }
    expect(registry.count()).toBe(300);
    expect(logger.warn).not.toHaveBeenCalled();
    const events = captureEvents(node, ['keel.process.long_mailbox']);
    await node.shutdown();
    const crossings = events.events.filter((e) => e.event === 'keel.process.long_mailbox');
    expect(crossings.map((e) => e.metadata.name)).toEqual(['keel.agent_registry.1']);
    expect(logger.warn.mock.calls.filter((c) => String(c[0]).includes('messages queued'))).toEqual([]);
  });
});

describe('messages it did not send', () => {
  it('a revoked proxy, or an object whose getters throw, sent to the registry is an unexpected message: it keeps running and keeps its entries', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 1000 });
    const agent = node.spawn(() => () => {});
    await registry.register(agent, { capabilities: ['ocr'] }, { key: 'ocr-1' });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const throwing = (key: string): object => Object.defineProperty({}, key, { enumerable: true, get: () => { throw new Error(`${key} getter`); } });
    const unexpected: unknown[] = [];
    node.telemetry.attach('unexpected', ['keel.gen_server.unexpected_message'], (_e, _m, meta) => unexpected.push(meta.pid));
    const pid = registry.pid;
    for (const m of [proxy, throwing('token'), throwing('type'), { type: 'sweep', token: {} }]) node.send(pid, m);
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(unexpected).toEqual([pid, pid, pid, pid]);
    expect((await registry.stats()).unregistered).toEqual({ down: 0, explicit: 0, replaced: 0 });
    expect(registry.pids({ capability: 'ocr' })).toEqual([agent]);
  });
});

describe('poll across a restart of the registry', () => {
  it('a status call its dead predecessor made (whose answer is lost) does not count against the agent: the new registry asks before it declares it unhealthy', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 1, poll: true });
    // an agent that holds its first status call, then answers every call at once
    let answering = false;
    const held: From<unknown>[] = [];
    const agent = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, from: From<unknown>, state: null) => {
        if (answering) return { reply: { load: 0 }, state };
        held.push(from);
        return { noreply: true as const, state };
      },
    });
    const health: string[] = [];
    node.telemetry.attach('health', ['keel.agent_registry.unhealthy', 'keel.agent_registry.healthy'], (event) => health.push(event));
    await registry.register(agent, {}, { key: 'a' });
    await advance(node, clock, 100); // late: asked
    expect(held).toHaveLength(1);
    node.exit(registry.pid, 'kill');
    await node.idle();
    answering = true;
    for (const f of held) GenServer.reply(f, { load: 0 }); // to the dead registry: lost
    for (let i = 0; i < 5; i++) await advance(node, clock, 100);
    expect(health).toEqual([]);
    expect(registry.lookup('a')!.meta.health).toBe('healthy');
  });
});

describe('poll: a hostile answer to the status call', () => {
  it('an answer whose load getter throws, or a revoked proxy, is no answer: no unhandled rejection, and the agent is asked again at the next interval', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, poll: true });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const answers: object[] = [Object.defineProperty({}, 'load', { enumerable: true, get: () => { throw new Error('load getter'); } }), proxy];
    const asked: number[] = [];
    const hostile = answers.map((answer, i) => GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, _from: From<unknown>, state: null) => {
        asked[i] = (asked[i] ?? 0) + 1;
        return { reply: answer, state };
      },
    }));
    const pids = await Promise.all(hostile);
    for (const [i, pid] of pids.entries()) await registry.register(pid, {}, { key: `h${i}` });
    const rejections: unknown[] = [];
    const onRejection = (e: unknown): void => void rejections.push(e);
    process.on('unhandledRejection', onRejection);
    try {
      for (let i = 0; i < 4; i++) await advance(node, clock, 100);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
    expect(rejections).toEqual([]);
    // asked at every interval (each answer counts as none), and so unhealthy past the window
    expect(asked).toEqual([4, 4]);
    expect(registry.pids({ health: 'unhealthy' })).toEqual(pids);
    expect(node.isAlive(registry.pid)).toBe(true);
  });
});

describe('lookup of a key whose process just died', () => {
  it('does not answer a dead process, before the registry handled its Down (as Elixir’s Registry.lookup checks the owner is alive)', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const a = idler(node);
    await registry.register(a, { capabilities: ['ocr'] }, { key: 'a' });
    // a process that monitors the agent and, at its Down, looks its key up (to find its replacement)
    const seen: unknown[] = [];
    const watching: { ref?: unknown } = {};
    const { ctx } = await spawnWithContext(node, () => (m: unknown) => void seen.push([(m as Down).ref === watching.ref, registry.lookup('a')]));
    watching.ref = node.monitors.monitor(ctx, a, { tag: 'observer' });
    node.exit(a, 'kill');
    expect(node.isAlive(a)).toBe(false);
    expect(registry.lookup('a')).toBeUndefined();
    await node.idle();
    expect(seen).toEqual([[true, undefined]]);
    expect(registry.lookup('a')).toBeUndefined();
  });
});

describe('poll: a process holding several keys', () => {
  it('is asked its status once per interval, not once per key, and its answer is heard for every key it holds', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 100, missedHeartbeats: 1, poll: true });
    let calls = 0;
    const agent = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, _from: From<unknown>, state: null) => {
        calls++;
        return { reply: { load: 3 }, state };
      },
    });
    for (let i = 0; i < 50; i++) await registry.register(agent, { capabilities: ['x'] }, { key: `k${i}` });
    for (let i = 0; i < 3; i++) await advance(node, clock, 100);
    expect(calls).toBe(3);
    expect((await registry.stats()).polls).toBe(3);
    expect(registry.query({ capability: 'x' }).map((e) => e.meta.load)).toEqual(Array.from({ length: 50 }, () => 3));
    expect(registry.pids({ health: 'unhealthy' })).toEqual([]);
  });
});
