// statem_call: 100,000 sequential StateMachine.call round trips from plain async code: the work of
// genserver_call (reply i + 1) through a state machine, against the same raw baseline (`ask`).
// `genserver_ratio` compares it with GenServer.call measured in the same process. Both sides measure a
// second pass (the first warms up).
import * as workloads from './workloads.mjs';
import { genserverCall } from './genserver_call.mjs';

const N = 100_000;

async function statemCall(node) {
  const { StateMachine } = await import('../dist/index.js');
  const machine = await StateMachine.start(node, {
    init: () => ({ state: 'ready', data: 0 }),
    handleEvent: (ev) => ({ keepState: true, actions: [{ type: 'reply', from: ev.from, reply: ev.request + 1 }] }),
  });
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i++) {
    const v = await StateMachine.call(node, machine, i);
    if (v !== i + 1) throw new Error(`statem_call: got ${v} for ${i}`);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  return N / seconds;
}

export async function statemCallBench(system, sys) {
  if (system === 'raw') {
    // warmed up as Keel's side is (its second pass is measured), so that the ratio compares like with like
    await workloads.ask(sys, { n: N });
    const r = await workloads.ask(sys, { n: N });
    return { ops_per_s: r.n / r.seconds };
  }
  // interleaved in this process: GenServer, StateMachine, GenServer, StateMachine (the first pair warms up)
  const gen = [];
  const statem = [];
  for (let round = 0; round < 2; round++) {
    gen.push((await genserverCall(system, sys, false)).ops_per_s);
    statem.push(await statemCall(sys.node));
  }
  const ops = statem[1];
  return { ops_per_s: ops, genserver_ops_per_s: gen[1], genserver_ratio: ops / gen[1] };
}
