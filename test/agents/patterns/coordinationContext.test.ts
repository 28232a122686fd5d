import { describe, expect, it } from 'vitest';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import { createCoordinationContext } from '../../../src/agents/patterns/index.js';
import { stopComponent } from '../../../src/agents/patterns/shared.js';
import type { Node, Pid } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, deadPid, deferred, expectKeelError, revokedProxy, spawnWithContext, thrown, useNodes, watch } from '../../support.js';

const track = useNodes();

/** An agent that records what it is sent (after `gate`, if any, opens). */
function agent(node: Node, seen: unknown[], gate?: Promise<void>, started?: () => void): Pid {
  return node.spawn(() => async (message) => {
    started?.();
    if (gate !== undefined) await gate;
    seen.push(message);
  });
}

describe('createCoordinationContext', () => {
  it('sends the context to every agent through the manager: one outcome each, exact', async () => {
    const node = track();
    const seen: unknown[][] = [[], [], []];
    const agents = seen.map((s) => agent(node, s));
    const cm = await CoordinationManager.start(node);
    const events = captureEvents(node, ['keel.coordination.context_created']);
    const ctx = await createCoordinationContext(node, cm, { agents, payload: { plan: 'p1' } });
    expect(ctx.contextId).toMatch(/^ctx-\d+$/);
    expect(ctx.results).toEqual(agents.map((a, i) => ({ agent: a, outcome: 'delivered', id: `${ctx.contextId}:${i}` })));
    expect(ctx).toMatchObject({ delivered: 3, buffered: 0, failed: 0 });
    for (const s of seen) expect(s).toEqual([{ type: 'coordination_context', contextId: ctx.contextId, payload: { plan: 'p1' } }]);
    expect(events.events).toEqual([
      { event: 'keel.coordination.context_created', measurements: { agents: 3, delivered: 3, buffered: 0, failed: 0 }, metadata: { contextId: ctx.contextId, manager: cm.name } },
    ]);
    expect((await cm.stats()).delivered).toBe(3);
  });

  it('an agent killed mid-way fails alone; the manager is unaffected and still serves', async () => {
    const node = track();
    const seenA: unknown[] = [];
    const seenB: unknown[] = [];
    const gate = deferred<void>();
    const handling = deferred<void>();
    const a = agent(node, seenA);
    const b = agent(node, seenB, gate.promise, () => handling.resolve());
    const gone = deadPid(node);
    const cm = await CoordinationManager.start(node);
    const run = createCoordinationContext(node, cm, { id: 'plan-7', agents: [a, b, gone, 'nobody'], payload: 1 });
    await handling.promise; // b has taken the message and is handling it
    node.exit(b, 'kill');
    const ctx = await run;
    expect(ctx.results.map((r) => [r.outcome, r.outcome === 'failed' ? r.reason : undefined])).toEqual([
      ['delivered', undefined],
      ['failed', 'process_down'],
      ['failed', 'noproc'],
      ['failed', 'noproc'],
    ]);
    expect(ctx.results.map((r) => r.id)).toEqual(['plan-7:0', 'plan-7:1', 'plan-7:2', 'plan-7:3']);
    expect(ctx).toMatchObject({ contextId: 'plan-7', delivered: 1, failed: 3 });
    expect(seenB).toEqual([]);
    // the manager serves on: same process, a new context to the live agent
    expect(node.isAlive(cm.pid)).toBe(true);
    const again = await createCoordinationContext(node, cm, { id: 'plan-8', agents: [a] });
    expect(again.results).toEqual([{ agent: a, outcome: 'delivered', id: 'plan-8:0' }]);
    expect(seenA).toEqual([
      { type: 'coordination_context', contextId: 'plan-7', payload: 1 },
      { type: 'coordination_context', contextId: 'plan-8', payload: undefined },
    ]);
  });

  it("past timeoutMs (node clock) an agent's outcome is coordinator_timeout; the others are not held", async () => {
    const { node, clock } = clockedNode(track);
    const never = deferred<void>();
    const seen: unknown[] = [];
    const slow = agent(node, [], never.promise);
    const fast = agent(node, seen);
    const cm = await CoordinationManager.start(node, { timeout: 60_000 });
    const run = createCoordinationContext(node, cm, { agents: [slow, fast], timeoutMs: 100 });
    const w = watch(run);
    await node.settle();
    await clock.advance(99);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    const ctx = await run;
    expect(ctx.results.map((r) => [r.outcome, r.outcome === 'failed' ? r.reason : undefined])).toEqual([
      ['failed', 'coordinator_timeout'],
      ['delivered', undefined],
    ]);
    node.exit(slow, 'kill');
  });

  it('from a process context, that process is the sender the manager checks', async () => {
    const node = track();
    const seen: unknown[] = [];
    const a = agent(node, seen);
    const cm = await CoordinationManager.start(node);
    const { pid, ctx } = await spawnWithContext(node);
    const r = await createCoordinationContext(ctx, cm, { agents: [a] });
    expect(r.delivered).toBe(1);
    node.exit(pid, 'kill');
    await node.idle();
    const dead = await createCoordinationContext(node, cm, { agents: [a], sender: pid });
    expect(dead.results).toEqual([{ agent: a, outcome: 'failed', id: `${dead.contextId}:0`, reason: 'sender_down' }]);
  });

  it('a manager that is down: every agent is failed with coordinator_down, one outcome each, nothing raised', async () => {
    const node = track();
    const cm = await CoordinationManager.start(node);
    const seen: unknown[] = [];
    const a = agent(node, seen);
    const b = agent(node, seen);
    await stopComponent(node, cm.name);
    expect(node.registry.whereis(cm.name)).toBeUndefined();
    const ctx = await createCoordinationContext(node, cm, { id: 'down', agents: [a, b] });
    expect(ctx).toEqual({
      contextId: 'down',
      results: [
        { agent: a, outcome: 'failed', id: 'down:0', reason: 'coordinator_down' },
        { agent: b, outcome: 'failed', id: 'down:1', reason: 'coordinator_down' },
      ],
      delivered: 0,
      buffered: 0,
      failed: 2,
    });
    expect(seen).toEqual([]);
  });

  it("a manager whose coordinate throws (or answers no promise) for one agent fails that agent alone with reason 'error': the contexts already sent are reported, nothing rejects", async () => {
    const node = track();
    const seen: unknown[][] = [[], [], []];
    const [good, throws, plain] = seen.map((s) => agent(node, s)) as [Pid, Pid, Pid];
    const cm = await CoordinationManager.start(node);
    const boom = new Error('coordinate threw');
    const handle = {
      pid: cm.pid,
      name: cm.name,
      coordinate: ((...args: Parameters<typeof cm.coordinate>) => {
        if (args[1] === throws) throw boom;
        if (args[1] === plain) return 'not a promise';
        return cm.coordinate(...args);
      }) as typeof cm.coordinate,
    };
    const ctx = await createCoordinationContext(node, handle as never, { id: 'c', agents: [good, throws, plain] });
    expect(ctx.results).toEqual([
      { agent: good, outcome: 'delivered', id: 'c:0' },
      { agent: throws, outcome: 'failed', id: 'c:1', reason: 'error', error: boom },
      { agent: plain, outcome: 'failed', id: 'c:2', reason: 'error', error: expect.any(TypeError) as unknown },
    ]);
    expect(ctx).toMatchObject({ delivered: 1, buffered: 0, failed: 2 });
    expect(seen[0]).toEqual([{ type: 'coordination_context', contextId: 'c', payload: undefined }]);
  });

  it('a sparse agents array (a hole) throws at once, naming the hole', async () => {
    const node = track();
    const cm = await CoordinationManager.start(node);
    const agents: unknown[] = [];
    agents[1] = agent(node, []);
    expectKeelError(thrown(() => createCoordinationContext(node, cm, { agents: agents as never })), 'ERR_INVALID_ARGUMENT', '`options.agents[0]`');
  });

  it('agents or options it cannot read (revoked proxies) throw ERR_INVALID_ARGUMENT at once', async () => {
    const node = track();
    const cm = await CoordinationManager.start(node);
    expectKeelError(thrown(() => createCoordinationContext(node, cm, { agents: revokedProxy() as never })), 'ERR_INVALID_ARGUMENT', '`options.agents`');
    expectKeelError(thrown(() => createCoordinationContext(node, cm, revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', '`options');
  });

  it('a manager it cannot read (a revoked proxy, a throwing getter) throws ERR_INVALID_ARGUMENT naming it, and nothing is sent', async () => {
    const node = track();
    const got: unknown[] = [];
    const a = agent(node, got);
    const getter = { get coordinate(): never { throw new Error('getter'); } };
    for (const manager of [revokedProxy(), getter]) {
      expectKeelError(thrown(() => createCoordinationContext(node, manager as never, { agents: [a] })), 'ERR_INVALID_ARGUMENT', '`manager`');
    }
    await node.idle();
    expect(got).toEqual([]);
  });

  it('throws at once for bad arguments', async () => {
    const node = track();
    const cm = await CoordinationManager.start(node);
    const a = agent(node, []);
    const bad: [unknown, unknown, string][] = [
      [{}, { agents: [a] }, '`manager`'],
      [cm, undefined, '`options`'],
      [cm, { agents: [] }, '`options.agents`'],
      [cm, { agents: [a, a] }, '`options.agents[1]`'],
      [cm, { agents: [a], id: '' }, '`options.id`'],
      [cm, { agents: [a], timeoutMs: Number.NaN }, '`options.timeoutMs`'],
      [cm, { agents: [a], sender: 'me' }, '`options.sender`'],
      [cm, { agents: [a], extra: 1 }, '`options.extra`'],
    ];
    for (const [manager, options, argument] of bad) {
      expectKeelError(thrown(() => createCoordinationContext(node, manager as never, options as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
  });
  it('reads each option once: a getter answering a valid value, then an invalid one, is used as checked', async () => {
    const node = track();
    const seen: unknown[] = [];
    const a = agent(node, seen);
    const cm = await CoordinationManager.start(node);
    const reads = { agents: 0, id: 0, sender: 0 };
    const options = {
      get agents() {
        return reads.agents++ === 0 ? [a] : [a, a];
      },
      get id() {
        return reads.id++ === 0 ? 'plan-1' : 42;
      },
      get sender() {
        return reads.sender++ === 0 ? a : 'me';
      },
      payload: 'p',
    };
    const ctx = await createCoordinationContext(node, cm, options as never);
    expect(reads).toEqual({ agents: 1, id: 1, sender: 1 });
    expect(ctx.contextId).toBe('plan-1');
    expect(ctx.results).toEqual([{ agent: a, outcome: 'delivered', id: 'plan-1:0' }]);
    expect(seen).toEqual([{ type: 'coordination_context', contextId: 'plan-1', payload: 'p' }]);
  });

  it('a pid and the name registered to it are one agent listed twice: refused naming both, nothing sent', async () => {
    const node = track();
    const seen: unknown[] = [];
    const a = agent(node, seen);
    const b = agent(node, []);
    node.registry.register('ctx-agent-a', a);
    const cm = await CoordinationManager.start(node);
    expectKeelError(thrown(() => createCoordinationContext(node, cm, { agents: [a, b, 'ctx-agent-a'] })), 'ERR_INVALID_ARGUMENT', '`options.agents[2]`', '`options.agents[0]`');
    expectKeelError(thrown(() => createCoordinationContext(node, cm, { agents: ['ctx-agent-a', a] })), 'ERR_INVALID_ARGUMENT', '`options.agents[1]`', '`options.agents[0]`');
    await node.idle();
    expect(seen).toEqual([]);
    expect((await cm.stats()).delivered).toBe(0);
  });
});
