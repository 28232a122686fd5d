// supervisor_restart (informational): time from a child's crash to its replacement running, over
// 10,000 restarts of a one_for_one supervisor's worker. Reports median and p99 in microseconds.
const N = 10_000;

export async function supervisorRestart(sys) {
  const { Supervisor } = await import('../dist/index.js');
  const { node } = sys;
  let onRunning = null;
  let current = null;
  const worker = (ctx) => {
    current = ctx.self;
    onRunning?.(process.hrtime.bigint());
    return () => {
      throw new Error('crash'); // any message crashes it
    };
  };
  await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(worker) }], { maxRestarts: N * 10, withinMs: 1 });
  await node.idle();
  const samples = new Float64Array(N);
  const t0all = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const running = new Promise((resolve) => {
      onRunning = resolve;
    });
    const t0 = process.hrtime.bigint();
    node.send(current, 'crash');
    const t1 = await running;
    samples[i] = Number(t1 - t0) / 1000;
  }
  const seconds = Number(process.hrtime.bigint() - t0all) / 1e9;
  samples.sort();
  return { ops_per_s: N / seconds, median_us: samples[N >> 1], p99_us: samples[Math.floor(N * 0.99)] };
}
