import { describe, expect, it } from 'vitest';
import { Agent, CoordinatorAgent, isDown, type AgentTask } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

describe('CoordinatorAgent', () => {
  it('runs a workflow: steps advance as their dependencies complete, results by task id', async () => {
    const node = track();
    const order: string[] = [];
    const run = (task: AgentTask) => {
      order.push(task.id);
      return `${task.kind}:${String(task.payload)}`;
    };
    const a = await Agent.start(node, { capabilities: ['fetch'], runTask: run });
    const b = await Agent.start(node, { capabilities: ['parse'], runTask: run });
    const coordinator = await CoordinatorAgent.start(node, { workers: [a.pid, b.pid] });
    const result = await coordinator.run({
      id: 'w1',
      tasks: [
        { id: 'fetch', kind: 'fetch', payload: 1, requires: ['fetch'] },
        { id: 'parse', kind: 'parse', payload: 2, requires: ['parse'], dependsOn: ['fetch'] },
        { id: 'store', kind: 'store', payload: 3, dependsOn: ['parse'] },
      ],
    });
    expect(result.status).toBe('completed');
    expect(result.results).toEqual({ fetch: 'fetch:1', parse: 'parse:2', store: 'store:3' });
    expect(order).toEqual(['w1/fetch', 'w1/parse', 'w1/store']);
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, completed: 1 });
    expect(m.tasks).toMatchObject({ completed: 3, reassigned: 0 });
  });

  it("reassigns a dead worker's task, and the worker leaves the pool", async () => {
    const node = track();
    const victim = await Agent.start(node, {
      capabilities: [],
      runTask: (_t, ctx) => {
        ctx.exit(new Error('chaos'));
        return new Promise(() => {});
      },
    });
    const healthy = await Agent.start(node, { capabilities: [], runTask: () => 'done' });
    const coordinator = await CoordinatorAgent.start(node, { workers: [victim.pid, healthy.pid] });
    const p = probe(node);
    p.ctx.monitor(victim.pid);
    const result = await coordinator.run({ tasks: [{ id: 't', kind: 'k' }] });
    expect(result).toMatchObject({ status: 'completed', results: { t: 'done' }, reassigned: 1 });
    await p.receive(isDown);
    const workers = await coordinator.workers();
    expect(workers.map((w) => w.pid.id)).not.toContain(victim.pid.id);
  });
});
