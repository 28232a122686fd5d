// The worker_threads transport benches (issue 17). Run from bench/worker.mjs in a fresh process;
// this file is also the script of the worker threads they start.
//
// thread_send: messages per second from one thread to another. The sender encodes small messages
// ({ type: 'ping', n }) as JSON, BATCH per string, and posts one string per batch; the receiver
// parses each batch and counts. keel = through the worker transport (WorkerHub, one node per
// thread); raw = the same batches over a bare MessageChannel. Both keep the same window of batches
// in flight (the receiver acks every WINDOW batches, the sender keeps two windows outstanding).
//
// scale_2_threads: keel = two Keel nodes, each in its own worker thread (joined to one WorkerHub),
// each running one pingpong pair (bench/workloads.mjs) of N round trips; raw = one Keel node in
// one worker thread running the same two pairs at once. ops = messages handled per second of wall
// time, from one 'go' to the last 'done', measured in the main thread; run.mjs's ratio is then two
// threads' throughput over one's.
import { isMainThread, MessageChannel, parentPort, Worker, workerData } from 'node:worker_threads';

const SELF = new URL(import.meta.url);
const TRANSPORT = new URL('../dist/cluster/transports/worker.js', import.meta.url).href;
const BATCH = 1000;
const WINDOW = 16;
/** Whole windows of batches: about KEEL_BENCH_THREAD_MESSAGES (5M) messages. */
const BATCHES = Math.ceil(Number(process.env.KEEL_BENCH_THREAD_MESSAGES ?? 5_000_000) / (BATCH * WINDOW)) * WINDOW;
const TOTAL = BATCHES * BATCH;
const PINGPONG_N = Number(process.env.KEEL_BENCH_SCALE_N ?? 4_000_000);
/** Pingpong pairs per node in the two-thread run (the one-thread run has twice as many). */
const PAIRS = Number(process.env.KEEL_BENCH_SCALE_PAIRS ?? 1);

const now = () => process.hrtime.bigint();

// ---- thread_send ---------------------------------------------------------------------------

function encodeBatch(first) {
  const parts = new Array(BATCH);
  for (let j = 0; j < BATCH; j++) parts[j] = JSON.stringify({ type: 'ping', n: first + j });
  return `[${parts.join(',')}]`;
}

/** Runs in the sender thread: `post(batch)`; `onAck(fn)` registers the ack callback. Resolves with seconds. */
function sendAll(post, onAck) {
  const batches = BATCHES;
  let sent = 0;
  let acked = 0;
  return new Promise((resolve) => {
    const t0 = now();
    const sendWindow = () => {
      for (let i = 0; i < WINDOW && sent < batches; i++, sent++) post(encodeBatch(sent * BATCH));
    };
    onAck(() => {
      acked += WINDOW;
      if (acked >= batches) resolve(Number(now() - t0) / 1e9);
      else sendWindow();
    });
    sendWindow();
    sendWindow();
  });
}

/** Runs in the receiver thread: returns the receive function; acks every WINDOW batches. */
function receiver(ack) {
  let batches = 0;
  let next = 0;
  return (batch) => {
    const messages = JSON.parse(batch);
    for (const m of messages) {
      if (m.n !== next++) throw new Error(`thread_send: message ${m.n} out of order (expected ${next - 1})`);
    }
    if (++batches % WINDOW === 0) ack();
  };
}

async function threadSendWorker({ system, role }) {
  if (system === 'raw') {
    const { port } = workerData;
    if (role === 'send') {
      let ackFn;
      port.on('message', () => ackFn());
      parentPort.once('message', async () => {
        const seconds = await sendAll((b) => port.postMessage(b), (fn) => { ackFn = fn; });
        parentPort.postMessage({ seconds });
        port.close();
      });
    } else {
      const receive = receiver(() => port.postMessage('ack'));
      port.on('message', receive);
    }
    parentPort.postMessage('ready');
    return;
  }
  const { workerNode, workerTransport } = await import(TRANSPORT);
  const { name } = workerNode();
  const t = workerTransport();
  let onReceive = () => {};
  await t.start({ name, incarnation: Date.now() }, {
    receive: (_from, batch) => onReceive(batch),
    receiveBroadcast() {},
    peerGone() {},
    connection() {},
  });
  if (role === 'send') {
    parentPort.once('message', async () => {
      const seconds = await sendAll((b) => t.send('r', b), (fn) => { onReceive = fn; });
      parentPort.postMessage({ seconds });
      await t.close();
    });
  } else {
    onReceive = receiver(() => t.send('s', 'ack'));
    // the sender leaving is the end
    parentPort.once('message', () => {});
  }
  parentPort.postMessage('ready');
}

const ready = (w) => new Promise((resolve, reject) => {
  w.once('error', reject);
  w.once('message', resolve);
});
const result = (w) => new Promise((resolve, reject) => {
  w.once('error', reject);
  w.once('message', resolve);
});

/** thread_send, in the bench process (main thread). */
export async function threadSend(system) {
  let sender, recv, hub;
  if (system === 'raw') {
    const { port1, port2 } = new MessageChannel();
    sender = new Worker(SELF, { workerData: { bench: 'thread_send', system, role: 'send', port: port1 }, transferList: [port1] });
    recv = new Worker(SELF, { workerData: { bench: 'thread_send', system, role: 'recv', port: port2 }, transferList: [port2] });
    await Promise.all([ready(sender), ready(recv)]);
  } else {
    const { createWorkerHub } = await import(TRANSPORT);
    hub = createWorkerHub();
    // the receiver joins first, so the sender knows it when its start resolves
    recv = hub.spawnNode(SELF, { name: 'r', workerData: { bench: 'thread_send', system, role: 'recv' } });
    await ready(recv);
    sender = hub.spawnNode(SELF, { name: 's', workerData: { bench: 'thread_send', system, role: 'send' } });
    await ready(sender);
  }
  const done = result(sender);
  sender.postMessage('go');
  const { seconds } = await done;
  await Promise.all([sender.terminate(), recv.terminate()]);
  await hub?.close();
  return { ops_per_s: TOTAL / seconds, messages: TOTAL, batch: BATCH, window: WINDOW };
}

// ---- scale_2_threads -----------------------------------------------------------------------

async function scaleWorker({ pairs }) {
  const [{ createSystem }, workloads, transport] = await Promise.all([import('./keel-adapter.mjs'), import('./workloads.mjs'), import(TRANSPORT)]);
  const sys = createSystem();
  const info = transport.workerNode();
  const t = info === undefined ? undefined : transport.workerTransport();
  const idle = { receive() {}, receiveBroadcast() {}, peerGone() {}, connection() {} };
  if (t !== undefined) await t.start({ name: info.name, incarnation: Date.now() }, idle);
  parentPort.once('message', async () => {
    const runs = await Promise.all(Array.from({ length: pairs }, () => workloads.pingpong(sys, { n: PINGPONG_N })));
    await t?.close();
    await sys.shutdown();
    parentPort.postMessage({ messages: runs.reduce((s, r) => s + r.n, 0) });
  });
  parentPort.postMessage('ready');
}

/** scale_2_threads: keel = two nodes in two threads, one pair each; raw = one node in one thread, both pairs. */
export async function scale2Threads(system) {
  const { createWorkerHub } = await import(TRANSPORT);
  const hub = createWorkerHub();
  const workers = system === 'raw'
    ? [new Worker(SELF, { workerData: { bench: 'scale_2_threads', pairs: 2 * PAIRS } })]
    : ['n1', 'n2'].map((name) => hub.spawnNode(SELF, { name, workerData: { bench: 'scale_2_threads', pairs: PAIRS } }));
  await Promise.all(workers.map(ready));
  const done = workers.map(result);
  const t0 = now();
  for (const w of workers) w.postMessage('go');
  const results = await Promise.all(done);
  const seconds = Number(now() - t0) / 1e9;
  await hub.close();
  await Promise.all(workers.map((w) => w.terminate()));
  const messages = results.reduce((s, r) => s + r.messages, 0);
  return { ops_per_s: messages / seconds, messages, threads: workers.length, pairs_per_thread: 2 * PAIRS / workers.length };
}

// in a worker thread: hub-spawned workers have their data under `data` (see WorkerHub.spawnNode)
const data = isMainThread ? undefined : workerData?.keelWorkerNode !== undefined ? workerData.data : workerData;
if (data?.bench === 'thread_send') await threadSendWorker(data);
else if (data?.bench === 'scale_2_threads') await scaleWorker(data);
