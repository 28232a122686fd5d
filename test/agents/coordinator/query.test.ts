import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, CoordinatorAgent, GenServer, Pid, Supervisor } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { exitAndWait, expectKeelError, useNodes } from '../../support.js';

// A coordinator whose pool is a registry query: the agents it selects, then each that registers.

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
