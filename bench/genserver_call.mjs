// genserver_call: 100,000 sequential GenServer.call round trips from plain async code, against the
// baseline's `ask` workload (the same request/response pattern) in the same runs.
import * as workloads from './workloads.mjs';

const N = 100_000;

/** `warm`: also run the calls a second time in this process and report that pass as `warm_ops_per_s`. */
export async function genserverCall(system, sys, warm = true) {
  if (system === 'raw') {
    const r = await workloads.ask(sys, { n: N });
    if (!warm) return { ops_per_s: r.n / r.seconds };
    // the same again in the same process, compiled by now: the warm figure (informational)
    const again = await workloads.ask(sys, { n: N });
    return { ops_per_s: r.n / r.seconds, warm_ops_per_s: again.n / again.seconds };
  }
  const { GenServer } = await import('../dist/index.js');
  const { node } = sys;
  const server = await GenServer.start(node, {
    init: () => 0,
    handleCall: (i, _from, state) => ({ reply: i + 1, state }),
  });
  const seconds = await calls(GenServer, node, server);
  if (!warm) return { ops_per_s: N / seconds };
  const again = await calls(GenServer, node, server);
  return { ops_per_s: N / seconds, warm_ops_per_s: N / again };
}

/** N sequential calls; their time in seconds. */
async function calls(GenServer, node, server) {
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const v = await GenServer.call(node, server, i);
    if (v !== i + 1) throw new Error(`genserver_call: got ${v} for ${i}`);
  }
  return Number(process.hrtime.bigint() - t0) / 1e9;
}
