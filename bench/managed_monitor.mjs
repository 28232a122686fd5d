// managed_monitor: node.monitors.monitor + demonitor pairs (stack capture off) against raw
// ctx.monitor + ctx.demonitor pairs, in the same kind of process.
const N = 300_000;

export async function managedMonitor(system, sys) {
  const { node } = sys;
  const target = node.spawn(() => () => {});
  let seconds = 0;
  await new Promise((resolve) => {
    node.spawn((ctx) => {
      const t0 = process.hrtime.bigint();
      if (system === 'raw') {
        for (let i = 0; i < N; i++) ctx.demonitor(ctx.monitor(target));
      } else {
        const monitors = node.monitors;
        for (let i = 0; i < N; i++) monitors.demonitor(ctx, monitors.monitor(ctx, target));
      }
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      resolve();
      return () => {};
    });
  });
  if (node.info(target).monitoredBy.length !== 0) throw new Error('monitors left behind');
  return { ops_per_s: N / seconds };
}
