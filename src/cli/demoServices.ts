import { createNode, GenServer, type GenServerSpec, sendSupervised, Supervisor, withMonitor } from '../index.js';

type Calls = { request: { type: 'charge'; cents: number }; reply: number };

/** A ledger that refuses a negative charge by crashing: its supervisor restarts it. */
const ledger: GenServerSpec<number, Calls> = {
  init: () => 0,
  handleCall: (req, _from, total) => {
    if (req.cents < 0) throw new Error(`refusing a negative charge of ${req.cents}`);
    return { reply: total + req.cents, state: total + req.cents };
  },
  handleInfo: (message, total) => {
    if (typeof message === 'object' && message !== null && (message as { type?: unknown }).type === 'charge') return total + (message as { cents: number }).cents;
    return total;
  },
};

/**
 * The second act of `npm start`: the OTP behaviours and the hardening layer. A supervisor restarts a
 * crashed GenServer; supervised sends report their outcomes; what cannot be delivered goes to the
 * dead letter queue; the monitor manager keeps its ledger.
 */
export async function runServicesDemo(print: (line: string) => void = console.log): Promise<void> {
  const node = createNode({ name: 'demo-otp' });
  node.telemetry.attach('demo-restarts', ['keel.supervisor.child_restarted'], (_e, m, meta) => {
    print(`  event keel.supervisor.child_restarted: '${String(meta.id)}' restart #${m.restarts}`);
  });
  const sup = await Supervisor.start(node, [{ id: 'ledger', start: (ctx) => GenServer.startLink(ctx, ledger, undefined, { name: 'ledger' }) }]);
  print(`supervisor ${String(sup)} started the 'ledger' GenServer`);
  print(`charge 500 -> total ${await GenServer.call(node, 'ledger', { type: 'charge', cents: 500 })}`);
  await GenServer.call(node, 'ledger', { type: 'charge', cents: -1 }).catch((e: Error & { code?: string }) => print(`charge -1 -> ${e.code}: the ledger crashed`));
  await node.idle();
  print(`charge 200 -> total ${await GenServer.call(node, 'ledger', { type: 'charge', cents: 200 })} (a fresh ledger after the restart)`);

  const handled = await sendSupervised(node, 'ledger', { type: 'charge', cents: 100 }, { ack: 'handled' });
  print(`supervised send to 'ledger' (ack handled): ok=${String(handled.ok)} after ${handled.attempts} attempt(s), id ${handled.id}`);
  const lost = await sendSupervised(node, 'billing', { type: 'invoice', cents: 900 }, { retries: 2, backoff: { initialMs: 1, maxMs: 2 }, onError: 'dead_letter' });
  if (!lost.ok) print(`supervised send to 'billing' (not registered): ${lost.reason} after ${lost.attempts} attempts, dead letter ${String(lost.deadLetterId)}`);
  const stats = await node.deadLetters.stats();
  print(`dead letter queue: ${stats.pending} pending, ${stats.added} added`);

  await new Promise<void>((resolve) => {
    node.spawn((ctx) => {
      void withMonitor(ctx, 'ledger', async (_ref, signal) => {
        const monitors = node.monitors.stats();
        print(`monitor manager while watching the ledger: ${monitors.active} active, signal aborted: ${String(signal.aborted)}`);
      }, { tag: 'demo' }).then(() => {
        const after = node.monitors.stats();
        print(`monitor manager afterwards: ${after.active} active, ${after.cleaned} cleaned`);
        resolve();
      });
      return () => undefined;
    });
  });
  await node.shutdown();
  print(`node ${node.name} shut down`);
}
