// The NATS transport benches (issue 17). Run from bench/worker.mjs in a fresh process, against the
// NATS server at KEEL_NATS_URL (default nats://127.0.0.1:4222); bench/run.mjs skips them (one JSON
// line each, `skipped`) when no server answers within a second.
//
// Both nodes live in the bench process, each with its own NATS connection (natsTransport): every
// frame crosses the real server, and the raw baseline runs the same shape (a publishing and a
// subscribing connection in one process), so both sides pay the same single thread for encoding,
// the socket and decoding, on a machine whose 2 cores are shared. (A child process per node would
// add IPC to start and stop the measurement, and a second core that the raw side would not use.)
// Each run uses a cluster name (and raw subject) of its own, so concurrent runs never mix.
//
// remote_send: a process on node A sends N messages { type: 'ping', n } to a process on node B,
// CHUNK per turn of the event loop (so the sockets are served between chunks, as a busy process
// sends); B's process counts them and checks their order. ops/s = N / time until B has all.
// raw = the same JSON text, one `nc.publish` per message, CHUNK per turn, a subscriber counting.
//
// remote_call: sequential `GenServer.call`s from node A (outside any process) to a GenServer on
// node B, request { type: 'ping', n }, reply n; latency per call. raw = `nc.request` of the same
// JSON to a subscriber that parses it and responds with n. Both warm up first.
import net from 'node:net';
import { setImmediate as turn } from 'node:timers/promises';

export const NATS_URL = process.env.KEEL_NATS_URL ?? 'nats://127.0.0.1:4222';
export const NATS_BENCHES = ['remote_send', 'remote_call'];
const SEND_N = Number(process.env.KEEL_BENCH_REMOTE_MESSAGES ?? 200_000);
const CHUNK = Number(process.env.KEEL_BENCH_REMOTE_CHUNK ?? 1000);
const CALL_N = Number(process.env.KEEL_BENCH_REMOTE_CALLS ?? 10_000);
const CALL_WARMUP = Number(process.env.KEEL_BENCH_REMOTE_WARMUP ?? 2000);

const now = () => process.hrtime.bigint();
const unique = () => `bench-${process.pid}-${Date.now().toString(36)}`;

/**
 * True when a NATS server answers at `url` (its `INFO` line) within `timeoutMs`: run.mjs asks once,
 * before the NATS benches. A bare socket, destroyed on timeout, so an unreachable host costs
 * `timeoutMs` and leaves nothing pending.
 */
export function natsReachable(url = NATS_URL, timeoutMs = 1000) {
  let host;
  let port;
  try {
    const u = new URL(url);
    host = u.hostname.replace(/^\[|\]$/g, '');
    port = Number(u.port || 4222);
  } catch {
    return Promise.resolve(false);
  }
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    const done = (ok) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk) => {
      text += chunk;
      if (text.includes('\r\n')) done(text.startsWith('INFO '));
    });
    socket.on('error', () => done(false));
    socket.on('close', () => done(false));
  });
}

/** How long B may take to have every message before the bench fails (NATS drops, at most once, a slow consumer's messages). */
const SEND_DEADLINE_MS = Number(process.env.KEEL_BENCH_REMOTE_DEADLINE_MS ?? 120_000);

/** Rejects, naming how many of `n` arrived, when `promise` has not settled by the deadline. */
function withinDeadline(promise, what, count, n) {
  let timer;
  const late = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: ${count()} of ${n} messages arrived within ${SEND_DEADLINE_MS} ms`)), SEND_DEADLINE_MS);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function deferred() {
  let resolve, reject;
  const promise = new Promise((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

/** Percentile of sorted numbers (nearest rank). */
const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];

/** The transport, its `send` counting the batches (and their UTF-16 length); nothing else is wrapped. */
function counted(t) {
  const c = { batches: 0, chars: 0 };
  const send = t.send;
  t.send = (peer, batch) => {
    c.batches++;
    c.chars += batch.length;
    send.call(t, peer, batch);
  };
  return { c, transport: t };
}

/** Two Keel nodes 'a' and 'b', each with its own NATS connection, joined and up to each other. */
async function twoNodes() {
  const [{ createNode }, cluster] = await Promise.all([import('../dist/index.js'), import('../dist/cluster/index.js')]);
  const name = unique();
  const a = createNode({ name: 'a' });
  // B's counter takes whole batches (about 1,000 frames each) at once, by design: no warning for that
  const b = createNode({ name: 'b', longMailbox: false });
  const counter = counted(cluster.natsTransport({ servers: NATS_URL, cluster: name }));
  const ca = await cluster.Cluster.join(a, { transport: counter.transport });
  const cb = await cluster.Cluster.join(b, { transport: cluster.natsTransport({ servers: NATS_URL, cluster: name }) });
  await Promise.all([ca.waitFor(['b']), cb.waitFor(['a'])]);
  return { a, b, ca, cb, sent: counter.c };
}

/** Two raw NATS connections: `pub` and `sub`. */
async function twoConnections() {
  const { connect } = await import('@nats-io/transport-node');
  const [pub, sub] = await Promise.all([connect({ servers: NATS_URL }), connect({ servers: NATS_URL })]);
  return { pub, sub, subject: `bench.${unique()}` };
}

// ---- remote_send ---------------------------------------------------------------------------

export async function remoteSend(system) {
  const N = SEND_N;
  const all = deferred();
  if (system === 'raw') {
    const { pub, sub, subject } = await twoConnections();
    let next = 0;
    sub.subscribe(subject, {
      callback: (err, msg) => {
        if (err !== null) return all.reject(err);
        const m = JSON.parse(msg.string());
        if (m.n !== next++) all.reject(new Error(`remote_send raw: message ${m.n} out of order (expected ${next - 1})`));
        else if (next === N) all.resolve();
      },
    });
    await sub.flush();
    const t0 = now();
    for (let sent = 0; sent < N; await turn()) {
      for (const end = Math.min(N, sent + CHUNK); sent < end; sent++) pub.publish(subject, JSON.stringify({ type: 'ping', n: sent }));
    }
    await withinDeadline(all.promise, 'remote_send raw', () => next, N);
    const seconds = Number(now() - t0) / 1e9;
    await Promise.all([pub.close(), sub.close()]);
    return { ops_per_s: N / seconds, messages: N, chunk: CHUNK, publishes: N };
  }
  const { a, b, ca, sent: batches } = await twoNodes();
  let next = 0;
  b.spawn(() => (m) => {
    if (m.n !== next++) all.reject(new Error(`remote_send keel: message ${m.n} out of order (expected ${next - 1})`));
    else if (next === N) all.resolve();
  }, { name: 'counter' });
  const to = await ca.whereis('b', 'counter');
  let from = 0;
  // one 'burst' per turn: the process sends the next CHUNK messages
  const sender = a.spawn((ctx) => () => {
    for (const end = Math.min(N, from + CHUNK); from < end; from++) ctx.send(to, { type: 'ping', n: from });
  });
  await a.idle();
  const before = { ...batches };
  const t0 = now();
  for (let i = 0; i * CHUNK < N; i++, await turn()) a.send(sender, 'burst');
  await withinDeadline(all.promise, 'remote_send keel', () => next, N);
  const seconds = Number(now() - t0) / 1e9;
  const sentBatches = batches.batches - before.batches;
  await Promise.all([a.shutdown(), b.shutdown()]);
  return {
    ops_per_s: N / seconds,
    messages: N,
    chunk: CHUNK,
    batches: sentBatches,
    frames_per_batch: Math.round(N / sentBatches),
    batch_kb: Math.round((batches.chars - before.chars) / sentBatches / 1024),
  };
}

// ---- remote_call ---------------------------------------------------------------------------

async function timedCalls(call) {
  for (let i = 0; i < CALL_WARMUP; i++) await call(i);
  const lat = new Float64Array(CALL_N);
  const t0 = now();
  for (let i = 0; i < CALL_N; i++) {
    const s = now();
    const v = await call(i);
    lat[i] = Number(now() - s) / 1e3;
    if (v !== i) throw new Error(`remote_call: got ${v} for ${i}`);
  }
  const seconds = Number(now() - t0) / 1e9;
  lat.sort();
  return { ops_per_s: CALL_N / seconds, p50_us: pct(lat, 50), p99_us: pct(lat, 99), calls: CALL_N, warmup: CALL_WARMUP };
}

export async function remoteCall(system) {
  if (system === 'raw') {
    const { pub, sub, subject } = await twoConnections();
    sub.subscribe(subject, {
      callback: (err, msg) => {
        if (err === null) msg.respond(JSON.stringify(JSON.parse(msg.string()).n));
      },
    });
    // the floor under nc.request: the same two hops as plain publishes to fixed subjects (what a
    // Keel call does: a frame each way), without the client's request machinery
    let answer;
    sub.subscribe(`${subject}.q`, {
      callback: (err, msg) => {
        if (err === null) sub.publish(`${subject}.r`, JSON.stringify(JSON.parse(msg.string()).n));
      },
    });
    pub.subscribe(`${subject}.r`, { callback: (err, msg) => answer(err === null ? JSON.parse(msg.string()) : err) });
    await Promise.all([sub.flush(), pub.flush()]);
    const r = await timedCalls(async (n) => JSON.parse((await pub.request(subject, JSON.stringify({ type: 'ping', n }), { timeout: 5000 })).string()));
    const floor = await timedCalls((n) => new Promise((resolve) => {
      answer = resolve;
      pub.publish(`${subject}.q`, JSON.stringify({ type: 'ping', n }));
    }));
    await Promise.all([pub.close(), sub.close()]);
    return { ...r, pubsub_p50_us: floor.p50_us, pubsub_p99_us: floor.p99_us, pubsub_ops_per_s: floor.ops_per_s };
  }
  const { GenServer } = await import('../dist/index.js');
  const { a, b, ca, sent } = await twoNodes();
  await GenServer.start(b, { init: () => 0, handleCall: (req, _from, state) => ({ reply: req.n, state }) }, undefined, { name: 'echo' });
  const to = await ca.whereis('b', 'echo');
  const before = sent.batches;
  const r = await timedCalls((n) => GenServer.call(a, to, { type: 'ping', n }, 5000));
  const batches = sent.batches - before;
  await Promise.all([a.shutdown(), b.shutdown()]);
  return { ...r, batches_per_call: Math.round((batches / (CALL_N + CALL_WARMUP)) * 100) / 100 };
}
