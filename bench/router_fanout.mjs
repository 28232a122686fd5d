// router_fanout: signals per second published through a SignalRouter to 1,000 subscribers that
// match them through patterns (a quarter each: exact, `*`, `*` in the middle, `**`), every
// delivery supervised with ack 'handled'. Baseline: the shared raw fan-out (one hub sends each
// message to 1,000 receivers), counted the same way: one op = one message to all 1,000.
// Informational: the router does per-subscriber buffering, ordering, acks and accounting that a
// raw fan-out does not.
import * as workloads from './workloads.mjs';

const SUBSCRIBERS = 1000;
const BATCH = 100;
const BATCHES = 10;
const PATTERNS = ['bench.order.created', 'bench.order.*', 'bench.*.created', 'bench.**'];

export async function routerFanout(system, sys) {
  if (system === 'raw') {
    const r = await workloads.fanout(sys, { n: BATCH * BATCHES, receivers: SUBSCRIBERS });
    return { ops_per_s: r.n / SUBSCRIBERS / r.seconds, deliveries_per_s: r.n / r.seconds };
  }
  const { SignalRouter } = await import('../dist/agents/router/SignalRouter.js');
  const { createSignal } = await import('../dist/agents/Signal.js');
  const { node } = sys;
  let handled = 0;
  let mark = Infinity;
  let done = () => {};
  const handler = () => {
    if (++handled === mark) done();
  };
  const init = () => handler;
  const router = await SignalRouter.start(node, { name: 'bench.router' });
  for (let i = 0; i < SUBSCRIBERS; i++) {
    const pid = node.spawn(init);
    const r = await router.subscribe(PATTERNS[i % PATTERNS.length], pid);
    if (r !== 'ok') throw new Error(`subscribe: ${JSON.stringify(r)}`);
  }
  const signals = Array.from({ length: BATCH * BATCHES }, (_, i) => createSignal({ type: 'bench.order.created', source: '/bench', data: i }));
  await node.idle();
  const until = (n) => (handled >= n ? Promise.resolve() : new Promise((resolve) => ((mark = n), (done = resolve))));
  const t0 = process.hrtime.bigint();
  for (let b = 0; b < BATCHES; b++) {
    for (let i = 0; i < BATCH; i++) router.publish(signals[b * BATCH + i]);
    await until((b + 1) * BATCH * SUBSCRIBERS);
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  await node.idle(); // the last acknowledgements (untimed)
  const stats = await router.stats();
  if (stats.delivered !== BATCH * BATCHES * SUBSCRIBERS || stats.dropped.total !== 0) throw new Error(`router_fanout: ${JSON.stringify(stats)}`);
  return { ops_per_s: (BATCH * BATCHES) / seconds, deliveries_per_s: (BATCH * BATCHES * SUBSCRIBERS) / seconds };
}
