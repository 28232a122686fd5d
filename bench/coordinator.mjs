// coordinator_tasks[_chaos]: tasks/s through a CoordinatorAgent with a 100-agent pool, in workflows
// of 10 independent tasks, 100 workflows running at once. The baseline runs the same number of
// request/response tasks over 100 raw actors, round robin, 100 in flight (the raw `ask` pattern with
// no coordination at all), so the ratio prices the coordinator: dependency tracking, least-loaded
// assignment, monitors and reassignment. `_chaos`: 1% of tasks kill their worker; a supervisor
// restarts it and it rejoins the pool, and the task is reassigned.
const WORKERS = 100;
const TASKS = 20_000;
const PER_WORKFLOW = 10;

export async function coordinatorTasks(system, sys, chaos) {
  if (system === 'raw') {
    const actors = Array.from({ length: WORKERS }, () => sys.spawn((msg) => sys.reply(msg.replyTo, msg.i)));
    const t0 = process.hrtime.bigint();
    let next = 0;
    const lane = async () => {
      while (next < TASKS) {
        const i = next++;
        await sys.ask(actors[i % WORKERS], (replyTo) => ({ i, replyTo }));
      }
    };
    await Promise.all(Array.from({ length: WORKERS }, lane));
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    for (const a of actors) sys.stop(a);
    return { ops_per_s: TASKS / seconds };
  }
  const { Agent, CoordinatorAgent, Supervisor } = await import('../dist/index.js');
  const { node } = sys;
  const coordinator = await CoordinatorAgent.start(node, { maxConcurrentWorkflows: WORKERS, maxTaskAttempts: 10 });
  const killed = new Set();
  const runTask = (task, ctx) => {
    // 1% of tasks kill their worker, once each (the reassigned attempt then completes)
    if (chaos && task.payload % 100 === 99 && !killed.has(task.payload)) {
      killed.add(task.payload);
      ctx.exit(new Error('chaos'));
    }
    return task.payload;
  };
  const specs = Array.from({ length: WORKERS }, (_, i) => ({
    id: `w${i}`,
    start: async (ctx) => {
      const agent = await Agent.start(ctx, { name: `bench-worker-${i}`, capabilities: ['x'], runTask });
      await coordinator.addWorker(agent.pid);
      return agent.pid;
    },
  }));
  await Supervisor.start(node, specs, { maxRestarts: 100_000, withinMs: 1000 });
  const t0 = process.hrtime.bigint();
  let next = 0;
  let reassigned = 0;
  const lane = async () => {
    while (next < TASKS) {
      const base = next;
      next += PER_WORKFLOW;
      const r = await coordinator.run({ tasks: Array.from({ length: PER_WORKFLOW }, (_, k) => ({ id: `t${k}`, kind: 'x', payload: base + k })) });
      if (r.status !== 'completed') throw new Error(`coordinator_tasks: workflow ${r.id} ${r.status}: ${String(r.error)}`);
      reassigned += r.reassigned;
    }
  };
  await Promise.all(Array.from({ length: WORKERS }, lane));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ops_per_s: TASKS / seconds, reassigned };
}
