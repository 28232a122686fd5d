// One node of the cluster demo (`keel demo --nodes N`, src/cli/clusterDemo.ts), on a worker thread
// the demo's WorkerHub started: it joins the cluster over the worker transport and runs one worker,
// registered as 'worker', that squares the numbers it is sent and answers the sender's `replyTo`
// pid on another node. It watches the other nodes' workers (monitors across nodes) and tells the
// coordinator of each Down it gets. A 'stop' from the thread that started it shuts the node down
// (a goodbye to the peers), which ends the thread.
import { parentPort } from 'node:worker_threads';
import { Cluster, workerNode, workerTransport } from '../cluster/index.js';
import { createNode, formatReason, GenServer, isDown, type Pid } from '../index.js';
import type { DemoJob, DemoNodeData, DemoNodeReady, NodeReport, WorkerCall } from './clusterDemo.js';

const info = workerNode();
if (info === undefined || parentPort === null) throw new Error('clusterDemoNode.js runs on a worker thread started by the cluster demo (keel demo --nodes N)');
const port = parentPort;
let duplicate = (info.data as DemoNodeData | undefined)?.duplicateResult === true; // a fault the demo's tests inject
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };
const node = createNode({ name: info.name, logger: quiet });
const cluster = await Cluster.join(node, { transport: workerTransport() });

interface State {
  handled: number;
  coordinator: Pid<NodeReport> | undefined;
}

/** A little arithmetic per job, so that the work takes the nodes some time (the sum of the digits of n² over a range). */
function work(n: number): number {
  let sum = 0;
  for (let k = n; k < n + 2000; k++) {
    for (let x = k * k; x > 0; x = Math.floor(x / 10)) sum += x % 10;
  }
  return sum;
}

const worker = await GenServer.start<State, WorkerCall>(
  node,
  {
    init: () => ({ handled: 0, coordinator: undefined }),
    handleCall: (request, _from, state) => (request === 'stats' ? { reply: { handled: state.handled }, state } : { noreply: true, state }),
    handleInfo: (message, state, ctx) => {
      const m = message as DemoJob | { type: 'watch'; peers: Pid[]; coordinator: Pid<NodeReport> };
      if (isDown(message)) {
        // eslint-disable-next-line keel/no-raw-send -- the demo shows a remote pid used as a local one: a plain send across nodes
        if (state.coordinator !== undefined) ctx.send(state.coordinator, { type: 'peer-down', node: info.name, of: String(message.pid), reason: formatReason(message.reason) });
        return state;
      }
      if (m.type === 'watch') {
        // eslint-disable-next-line keel/no-unmanaged-monitor -- each monitor lives as long as this worker and fires at most once: nothing to demonitor
        for (const peer of m.peers) ctx.monitor(peer);
        // eslint-disable-next-line keel/no-raw-send -- as above
        ctx.send(m.coordinator, { type: 'watching', node: info.name });
        return { ...state, coordinator: m.coordinator };
      }
      if (m.type === 'job') {
        const result = { type: 'result', id: m.id, value: work(m.n), by: info.name } as const;
        // eslint-disable-next-line keel/no-raw-send -- as above: the reply goes to a pid of the main thread's node
        ctx.send(m.replyTo, result);
        if (duplicate) {
          duplicate = false;
          // eslint-disable-next-line keel/no-raw-send -- as above
          ctx.send(m.replyTo, result);
        }
        return { ...state, handled: state.handled + 1 };
      }
      return state;
    },
  },
  undefined,
  { name: 'worker' },
);

port.once('message', () => {
  void node.shutdown();
});
port.postMessage({ type: 'ready', node: info.name, incarnation: cluster.incarnation, worker: String(worker) } satisfies DemoNodeReady);
