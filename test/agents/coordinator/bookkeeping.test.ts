// The coordinator's bookkeeping (tasks indexed by position, the pool's load index, running-list
// slots): a workflow changed by its caller after submit is refused, the pool's counts hold through
// removals, re-adds, kills and cancels, and telemetry probes see events after a late attach.
import { describe, expect, it } from 'vitest';
import { Agent, CoordinatorAgent, isKeelError, Pid, type AgentHandle, type Workflow, type WorkflowResult } from '../../../src/index.js';
import { deferred, expectKeelError, seeded, useNodes, type Deferred } from '../../support.js';

const track = useNodes();

type Spec = { id: string; kind: string; dependsOn?: string[] };

describe('CoordinatorAgent bookkeeping: a workflow its caller changes after submit', () => {
  const cases: [string, (tasks: Spec[]) => void, string][] = [
    ['a duplicate task id', (tasks) => tasks.push({ id: 'a', kind: 'k' }), 'workflow.tasks[1].id'],
    ['an unknown dependency', (tasks) => tasks.push({ id: 'b', kind: 'k', dependsOn: ['zzz'] }), 'workflow.tasks[1].dependsOn'],
    ['a cycle', (tasks) => tasks.push({ id: 'b', kind: 'k', dependsOn: ['c'] }, { id: 'c', kind: 'k', dependsOn: ['b'] }), 'workflow.tasks'],
  ];
  for (const [what, change, argument] of cases) {
    it(`${what} pushed after run() is refused by the coordinator (ERR_INVALID_ARGUMENT ${argument}); it keeps running`, async () => {
      const node = track();
      const a = await Agent.start(node, { capabilities: [], runTask: (t) => t.id });
      const coordinator = await CoordinatorAgent.start(node, { workers: [a.pid] });
      const tasks: Spec[] = [{ id: 'a', kind: 'k' }];
      const run = coordinator.run({ id: 'w', tasks }).then((r) => r, (e: unknown) => e);
      change(tasks); // before the coordinator takes the call
      const e = await run;
      expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      expect((e as { argument?: string }).argument).toBe(argument);
      expect(await coordinator.status('w')).toEqual({ error: 'not_found' });
      // the coordinator did not crash: the same pid runs the next workflow
      const next = await coordinator.run({ tasks: [{ id: 'x', kind: 'k' }] });
      expect(next.status).toBe('completed');
      expect(isKeelError(e)).toBe(true);
    });
  }
});

describe('CoordinatorAgent bookkeeping: pool bookkeeping fuzz', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`pool bookkeeping holds through removals, re-adds, kills and cancels with workers busy (seed ${seed}): every slot is used again, loads end at 0`, async () => {
      const node = track();
      const random = seeded(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)]!;
      const pending: Deferred<unknown>[] = [];
      const agents: AgentHandle[] = [];
      const spawn = async (): Promise<AgentHandle> => {
        const a = await Agent.start(node, {
          capabilities: [],
          runTask: (task) => {
            const d = deferred<unknown>();
            pending.push(d);
            return d.promise.then(() => task.id);
          },
        });
        agents.push(a);
        return a;
      };
      for (let i = 0; i < 4; i++) await spawn();
      const coordinator = await CoordinatorAgent.start(node, { workers: agents.map((a) => a.pid), maxTasksPerWorker: 2, maxTaskAttempts: 1000, taskTimeoutMs: 1e9, maxConcurrentWorkflows: 1000 });
      const results: Promise<WorkflowResult>[] = [];
      for (let w = 0; w < 12; w++) {
        const n = 1 + Math.floor(random() * 5);
        const tasks = Array.from({ length: n }, (_, i) => ({ id: `t${i}`, kind: 'k', ...(i > 0 && random() < 0.4 ? { dependsOn: [`t${i - 1}`] } : {}) }));
        results.push(coordinator.run({ id: `w${w}`, tasks } satisfies Workflow));
      }
      await node.idle();
      let kills = 0;
      for (let step = 0; step < 80; step++) {
        const r = random();
        if (r < 0.5 && pending.length > 0) {
          const i = Math.floor(random() * pending.length);
          pending.splice(i, 1)[0]!.resolve(undefined);
        } else if (r < 0.65) {
          await coordinator.removeWorker(pick(agents).pid);
        } else if (r < 0.8) {
          await coordinator.addWorker(pick(agents).pid);
        } else if (r < 0.9 && kills < 2) {
          kills++;
          const victim = pick(agents);
          node.exit(victim.pid, 'kill');
          agents.splice(agents.indexOf(victim), 1);
          await node.idle();
          const a = await spawn();
          await coordinator.addWorker(a.pid);
        } else {
          await coordinator.cancel(`w${Math.floor(random() * 12)}`);
        }
        await node.idle();
      }
      for (const a of agents) await coordinator.addWorker(a.pid);
      for (let round = 0; round < 200 && pending.length > 0; round++) {
        for (const d of pending.splice(0)) d.resolve(undefined);
        await node.idle();
      }
      const all = await Promise.all(results);
      for (const r of all) expect(['completed', 'cancelled']).toContain(r.status);
      const m = await coordinator.metrics();
      expect(m.tasks.running).toBe(0);
      expect(m.workers.busy).toBe(0);
      expect(m.workflows.active).toBe(0);
      const ws = await coordinator.workers();
      expect(ws.map((w) => w.load)).toEqual(ws.map(() => 0));
      expect(ws.map((w) => Pid.format(w.pid)).sort()).toEqual(agents.map((a) => Pid.format(a.pid)).sort());
      // a new workflow still runs on every worker
      const again = coordinator.run({ tasks: Array.from({ length: 8 }, (_, i) => ({ id: `x${i}`, kind: 'k' })) });
      await node.idle();
      expect(pending).toHaveLength(8);
      for (const d of pending.splice(0)) d.resolve(undefined);
      expect((await again).status).toBe('completed');
    });
  }
});

describe('CoordinatorAgent bookkeeping: events behind telemetry probes', () => {
  it('a handler attached (or a channel subscribed) after the coordinator and agent emitted unheard events sees the next ones', async () => {
    const node = track();
    const a = await Agent.start(node, { capabilities: [], runTask: (t) => t.id });
    const coordinator = await CoordinatorAgent.start(node, { workers: [a.pid] });
    expect((await coordinator.run({ tasks: [{ id: 'a', kind: 'k' }] })).status).toBe('completed'); // probes read while nobody listens
    const seen: string[] = [];
    node.telemetry.attach('late', ['keel.coordinator.workflow_started', 'keel.agent.task'], (event) => seen.push(event));
    const channel = (await import('node:diagnostics_channel')).default.channel('keel.coordinator.workflow_finished');
    const onFinished = (): void => void seen.push('channel:workflow_finished');
    channel.subscribe(onFinished);
    try {
      expect((await coordinator.run({ tasks: [{ id: 'b', kind: 'k' }] })).status).toBe('completed');
    } finally {
      channel.unsubscribe(onFinished);
    }
    expect(seen).toEqual(['keel.coordinator.workflow_started', 'keel.agent.task', 'channel:workflow_finished']);
    node.telemetry.detach('late');
    expect((await coordinator.run({ tasks: [{ id: 'c', kind: 'k' }] })).status).toBe('completed');
    expect(seen).toHaveLength(3);
  });
});
