// monitor_demonitor: Keel's ctx.monitor + ctx.demonitor pairs on a live process, against the raw-JS
// baseline of a Map insert + delete pair (what a hand-written monitor table does at the least).
const N = 1_000_000;

export async function monitorDemonitor(system, sys) {
  if (system === 'raw') {
    const table = new Map();
    const target = {};
    let key = 0;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < N; i++) {
      const ref = ++key;
      table.set(ref, target);
      table.delete(ref);
    }
    const t1 = process.hrtime.bigint();
    if (table.size !== 0) throw new Error('raw monitor table not empty');
    return { ops_per_s: N / (Number(t1 - t0) / 1e9) };
  }
  const { node } = sys;
  const target = node.spawn(() => () => {});
  let seconds = 0;
  const done = new Promise((resolve) => {
    node.spawn((ctx) => {
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < N; i++) ctx.demonitor(ctx.monitor(target));
      seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const info = node.info(target);
      if (info.monitoredBy.length !== 0) throw new Error('monitors left behind');
      resolve();
      return () => {};
    });
  });
  await done;
  return { ops_per_s: N / seconds };
}
