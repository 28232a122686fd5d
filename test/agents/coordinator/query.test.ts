import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, CoordinatorAgent, GenServer, Pid, Supervisor } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, exitAndWait, expectKeelError, useNodes } from '../../support.js';

// A coordinator whose pool is a registry query: the agents it selects, then each that registers,
// through the registry's restarts and the loss of its table, removals and re-registrations.

const track = useNodes();
const key = (pid: Pid): string => Pid.format(pid);

describe('CoordinatorAgent: workers from a registry query', () => {
  it('the agents the query selects form the pool; one that registers later joins it; others do not', async () => {
    const node = track();
    const joined = captureEvents(node, ['keel.coordinator.worker_joined']);
    const registry = await AgentRegistry.start(node);
    const a = await Agent.start(node, { name: 'fetch-a', capabilities: [], tasks: { fetch: () => 'a' }, registry });
    await Agent.start(node, { name: 'other', capabilities: [], tasks: { parse: () => 'p' }, registry });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'fetch' }) });
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(a.pid)]);
    const b = await Agent.start(node, { name: 'fetch-b', capabilities: [], tasks: { fetch: () => 'b' }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(a.pid), key(b.pid)]);
    expect(joined.events.length).toBe(2);
    // two fetches at once: one on each worker
    const r = await coordinator.run({ tasks: [{ id: 'x', kind: 'fetch' }, { id: 'y', kind: 'fetch' }] });
    expect(r.status).toBe('completed');
    expect(Object.values(r.results).sort()).toEqual(['a', 'b']);
  });

  it('an agent the query did not select joins once it comes to match: healthy again, or given the kind by an update', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const sick = await Agent.start(node, { name: 'sick', capabilities: [], tasks: { fetch: () => 's' }, registry });
    const plain = await Agent.start(node, { name: 'plain', capabilities: [], tasks: { fetch: () => 'p' }, registry });
    expect(await registry.update('sick', { status: 'unhealthy' })).toBe('ok');
    expect(await registry.update('plain', { kinds: ['other'] })).toBe('ok');
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'fetch' }) });
    expect(await coordinator.workers()).toEqual([]);
    expect(await registry.update('sick', { status: 'healthy' })).toBe('ok');
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(sick.pid)]);
    expect(await registry.update('plain', { kinds: ['fetch'] })).toBe('ok');
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(sick.pid), key(plain.pid)]);
  });

  it('an agent restarted by its supervisor (a new pid under the same key) is found again and runs the next workflow', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => Agent.start(ctx, { name: 'w', capabilities: [], tasks: { work: (t) => t.payload }, registry }).then((x) => x.pid) }]);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'work' }) });
    const first = node.registry.whereis('w')!;
    await exitAndWait(node, first, new Error('crash'));
    const second = node.registry.whereis('w')!;
    expect(key(second)).not.toBe(key(first));
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(second)]);
    const r = await coordinator.run({ tasks: [{ id: 't', kind: 'work', payload: 42 }] });
    expect(r.status).toBe('completed');
    expect(key(r.tasks.t!.worker!)).toBe(key(second));
    expect(r.results.t).toBe(42);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('registrations in another registry are not followed; a flood of registrations is looked at in one go', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const elsewhere = await AgentRegistry.start(node);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    await Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry: elsewhere });
    const refused = captureEvents(node, ['keel.coordinator.worker_refused']);
    const agents = await Promise.all(Array.from({ length: 50 }, () => Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry })));
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid)).sort()).toEqual(agents.map((x) => key(x.pid)).sort());
    expect(refused.events.length).toBe(0);
  });

  it('a process of the query that does not speak the agent protocol is refused (an event), the others join', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const refused = captureEvents(node, ['keel.coordinator.worker_refused']);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    // a plain process registered with the kind: it crashes on the status call
    const plain = node.spawn(() => () => {
      throw new Error('not an agent');
    });
    await registry.register(plain, { kinds: ['k'] });
    const good = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(good.pid)]);
    expect(refused.events.map((e) => key(e.metadata.worker as Pid))).toEqual([key(plain)]);
  });

  it('stopping the coordinator stops following the registry; a restarted coordinator follows again', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    expect(node.telemetry.isAttached('keel.agent_registry.registered')).toBe(true);
    node.exit(coordinator.pid, 'kill');
    await node.idle();
    // restarted by the node's agents supervisor: the new process follows (one handler, not two)
    const late = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(late.pid)]);
    await GenServer.stop(node, coordinator.pid, 'shutdown');
    await node.idle();
    // (it is restarted again as a permanent child; stopping the node ends it for good)
  });

  it('bad workers are refused before anything starts', () => {
    const node = track();
    let caught: unknown;
    try {
      void CoordinatorAgent.start(node, { workers: { registry: 'r', where: {} } as never });
    } catch (e) {
      caught = e;
    }
    expectKeelError(caught, 'ERR_INVALID_ARGUMENT', 'options.workers');
  });
});

describe('CoordinatorAgent: workers from a registry query that restarts, removes or re-registers', () => {
  it('the registry crashes and is restarted: agents registering afterwards still join', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node, { name: 'reg' });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    const first = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 }, registry });
    await node.idle();
    await exitAndWait(node, node.registry.whereis('reg')!); // restarted by keel.agents with its table
    const second = await Agent.start(node, { capabilities: [], tasks: { k: () => 2 }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([first, second].map((a) => Pid.format(a.pid)));
  });

  it('removeWorker on a followed pool holds: a later registration in the registry does not bring the removed agent back; addWorker does', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const a = await Agent.start(node, { capabilities: [], tasks: { k: () => 'a' }, registry });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    expect(await coordinator.removeWorker(a.pid)).toBe('ok');
    const b = await Agent.start(node, { capabilities: [], tasks: { k: () => 'b' }, registry });
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    await exitAndWait(node, coordinator.pid); // restarted in its node: a stays out
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    expect(await coordinator.addWorker(a.pid)).toBe('ok');
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([b, a].map((x) => Pid.format(x.pid)));
  });

  it('an agent that registers, dies and is re-registered under the same key before the coordinator looks: only the live pid joins', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    const refused = captureEvents(node, ['keel.coordinator.worker_refused', 'keel.coordinator.worker_joined']);
    const a = await Agent.start(node, { capabilities: [], tasks: { k: () => 1 } });
    const b = await Agent.start(node, { capabilities: [], tasks: { k: () => 2 } });
    // in one turn of this test: register a, kill it, register b under the same key
    const ra = registry.register(a.pid, { kinds: ['k'] }, { key: 'w' });
    node.exit(a.pid, 'kill');
    const rb = registry.register(b.pid, { kinds: ['k'] }, { key: 'w' });
    await Promise.all([ra, rb]);
    await node.idle();
    expect((await coordinator.workers()).map((w) => Pid.format(w.pid))).toEqual([Pid.format(b.pid)]);
    expect(refused.events.map((e) => e.event)).toEqual(['keel.coordinator.worker_joined']);
    expect(await coordinator.run({ tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { t: 2 } });
  });
});

describe('CoordinatorAgent: workers from a registry that lost its table', () => {
  it('a registry stopped normally and started again comes back empty: an agent with heartbeatMs registers again at its next beat, and a query finds it', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node, { name: 'reg' });
    const agent = await Agent.start(node, { name: 'w', capabilities: ['x'], tasks: { k: () => 'ran' }, registry: { registry, heartbeatMs: 100, team: 't' } });
    expect(registry.lookup('w')).toMatchObject({ pid: agent.pid });
    await GenServer.stop(node, node.registry.whereis('reg')!, 'normal'); // ended for good: its table released
    await node.idle();
    await AgentRegistry.start(node, { name: 'reg' }); // started again under its name, empty
    expect(registry.count()).toBe(0);
    await clock.advance(100); // the beat answers not_registered: the agent registers again
    await node.idle();
    expect(registry.lookup('w')).toMatchObject({ pid: agent.pid, meta: { capabilities: ['x'], kinds: ['k'], team: 't' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: registry.select({ kind: 'k' }) });
    expect(await coordinator.run({ tasks: [{ id: 'a', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { a: 'ran' } });
    await clock.advance(100); // registered: the next beat is a beat, nothing more
    await node.idle();
    expect(registry.count()).toBe(1);
  });
});
