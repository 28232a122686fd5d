// genserver_call: 100,000 sequential GenServer.call round trips from plain async code, against the
// baseline's `ask` workload (the same request/response pattern) in the same runs.
import * as workloads from './workloads.mjs';

const N = 100_000;

export async function genserverCall(system, sys) {
  if (system === 'raw') {
    const r = await workloads.ask(sys, { n: N });
    return { ops_per_s: r.n / r.seconds };
  }
  const { GenServer } = await import('../dist/index.js');
  const { node } = sys;
  const server = await GenServer.start(node, {
    init: () => 0,
    handleCall: (i, _from, state) => ({ reply: i + 1, state }),
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const v = await GenServer.call(node, server, i);
    if (v !== i + 1) throw new Error(`genserver_call: got ${v} for ${i}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return { ops_per_s: N / seconds };
}
