// `npm run bench [-- <name>...]`: every bench runs Keel and the raw baseline in separate processes,
// interleaved, ROUNDS times; `ratio` is the median of the per-round ratios (Keel / baseline).
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { NATS_BENCHES, NATS_URL, natsReachable } from './remote.mjs';
import { median, round } from './stats.mjs';

const BENCHES = ['pingpong', 'pingpong_observed', 'ring', 'fanout', 'spawn', 'stop', 'monitor_demonitor', 'genserver_call', 'genserver_call_observed', 'statem_call', 'supervisor_restart', 'managed_monitor', 'supervised_send_enqueued', 'supervised_send_handled', 'broadcast_10k', 'dlq_ingest_memory', 'dlq_ingest_sqlite', 'coordinator_tasks', 'coordinator_tasks_chaos', 'router_fanout', 'registry_dispatch', 'agent_registry_query', 'thread_send', 'scale_2_threads', 'remote_send', 'remote_call'];
/** Benches with no baseline counterpart: reported on their own (informational). */
const KEEL_ONLY = new Set(['supervisor_restart']);
/** Benches also measured against a bare loop of raw sends. */
const SEND_LOOP = new Set(['supervised_send_enqueued', 'supervised_send_handled']);
/** Benches also run a second time in the same process (warm). */
const WARM = new Set(['spawn', 'stop', 'genserver_call']);
const ROUNDS = Number(process.env.KEEL_BENCH_ROUNDS ?? 5);
const worker = fileURLToPath(new URL('./worker.mjs', import.meta.url));
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
for (const name of wanted) if (!BENCHES.includes(name)) throw new Error(`unknown bench '${name}'; known: ${BENCHES.join(', ')}`);

function once(system, bench) {
  const out = execFileSync(process.execPath, ['--expose-gc', worker, system, bench], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}


/** Asked once, before the first NATS bench: without a server they are skipped, one line each. */
let natsUp;

for (const bench of wanted.length > 0 ? wanted : BENCHES) {
  if (NATS_BENCHES.includes(bench) && !(natsUp ??= await natsReachable(NATS_URL))) {
    console.log(JSON.stringify({ bench, skipped: `no NATS server at ${NATS_URL}` }));
    continue;
  }
  if (KEEL_ONLY.has(bench)) {
    const runs = Array.from({ length: ROUNDS }, () => once('keel', bench));
    console.log(JSON.stringify({
      bench,
      ops_per_s: Math.round(median(runs.map((r) => r.ops_per_s))),
      median_us: round(median(runs.map((r) => r.median_us)), 1),
      p99_us: round(median(runs.map((r) => r.p99_us)), 1),
      rounds: ROUNDS,
      informational: true,
    }));
    continue;
  }
  const ratios = [];
  const keel = [];
  const raw = [];
  // supervised send is also measured against a bare loop of raw sends (see bench/delivery.mjs)
  const loopRatios = [];
  const loop = [];
  for (let i = 0; i < ROUNDS; i++) {
    const k = once('keel', bench);
    const r = once('raw', bench);
    keel.push(k);
    raw.push(r);
    ratios.push(k.ops_per_s / r.ops_per_s);
    if (SEND_LOOP.has(bench)) {
      const l = once('raw_loop', bench);
      loop.push(l);
      loopRatios.push(k.ops_per_s / l.ops_per_s);
    }
  }
  const line = {
    bench,
    ops_per_s: Math.round(median(keel.map((k) => k.ops_per_s))),
    baseline_ops_per_s: Math.round(median(raw.map((r) => r.ops_per_s))),
    ratio: round(median(ratios)),
    ratio_min: round(Math.min(...ratios)),
    ratio_max: round(Math.max(...ratios)),
    rounds: ROUNDS,
  };
  if (WARM.has(bench)) {
    // the same workload run again in the same processes, once the engine has compiled it: what the
    // cold figure above owes to the engine's warm-up (informational)
    line.warm_ops_per_s = Math.round(median(keel.map((k) => k.warm_ops_per_s)));
    line.warm_baseline_ops_per_s = Math.round(median(raw.map((r) => r.warm_ops_per_s)));
    line.warm_ratio = round(median(keel.map((k, i) => k.warm_ops_per_s / raw[i].warm_ops_per_s)));
  }
  if (SEND_LOOP.has(bench)) {
    line.baseline = 'raw ctx.send, the same batches awaited with Promise.all';
    line.loop_baseline_ops_per_s = Math.round(median(loop.map((l) => l.ops_per_s)));
    line.ratio_vs_loop = round(median(loopRatios));
  }
  if (bench === 'statem_call') {
    // the same calls through GenServer, measured in the same processes: the cost of the state machine
    line.genserver_ops_per_s = Math.round(median(keel.map((k) => k.genserver_ops_per_s)));
    line.genserver_ratio = round(median(keel.map((k) => k.genserver_ratio)));
  }
  if (bench === 'spawn') {
    line.bytes_per_process = Math.round(median(keel.map((k) => k.bytes_per_process)));
    line.baseline_bytes_per_process = Math.round(median(raw.map((r) => r.bytes_per_process)));
  }
  if (bench === 'agent_registry_query') {
    line.baseline = 'a Map from capability to a Set of plain entries, materialized; 100,000 agents, 1% match';
    line.scan_ops_per_s = Math.round(median(raw.map((r) => r.scan_ops_per_s)));
    line.after_change_ops_per_s = Math.round(median(keel.map((k) => k.after_change_ops_per_s)));
  }
  if (bench === 'broadcast_10k' || bench.startsWith('coordinator_tasks') || bench === 'router_fanout') line.informational = true;
  if (bench === 'coordinator_tasks_chaos') line.reassigned = Math.round(median(keel.map((k) => k.reassigned)));
  if (bench.startsWith('coordinator_tasks')) line.baseline = 'raw actors, round robin asks, 100 in flight';
  // these benches' baselines are the plain way of doing the same in Keel or Node, not raw-baseline.mjs
  if (bench === 'broadcast_10k') line.baseline = 'keel raw send, a loop';
  if (bench === 'managed_monitor') line.baseline = 'keel ctx.monitor';
  if (bench === 'thread_send') line.baseline = 'the same JSON batches (1,000 messages per string) over a bare MessageChannel';
  if (bench === 'scale_2_threads') line.baseline = 'one Keel node in one worker thread running both pingpong pairs (ratio = two threads over one)';
  if (bench === 'remote_send') {
    line.baseline = 'raw NATS: one publish per message (the same JSON), a subscriber counting; both nodes in one process, one connection each';
    line.batches = Math.round(median(keel.map((k) => k.batches)));
    line.frames_per_batch = Math.round(median(keel.map((k) => k.frames_per_batch)));
  }
  if (bench === 'remote_call') {
    line.baseline = 'raw NATS request/reply (nc.request, a subscriber responding), the same JSON';
    for (const f of ['p50_us', 'p99_us']) {
      line[f] = round(median(keel.map((k) => k[f])), 1);
      line[`raw_${f}`] = round(median(raw.map((r) => r[f])), 1);
    }
    line.p50_ratio = round(median(keel.map((k, i) => k.p50_us / raw[i].p50_us)));
    line.p99_ratio = round(median(keel.map((k, i) => k.p99_us / raw[i].p99_us)));
    // the floor under nc.request (publishes to fixed subjects, a frame each way), measured in the raw processes
    line.raw_pubsub_p50_us = round(median(raw.map((r) => r.pubsub_p50_us)), 1);
    line.pubsub_p50_ratio = round(median(keel.map((k, i) => k.p50_us / raw[i].pubsub_p50_us)));
  }
  if (bench.endsWith('_observed')) line.observer = 'node.observer({ port: 0 }) started before the workload, no client connected; compare with the unobserved bench';
  if (bench === 'router_fanout') line.baseline = 'raw fan-out to 1,000 receivers (shared workloads.fanout), messages/s to all';
  if (bench.startsWith('dlq_ingest')) line.baseline = bench.endsWith('memory') ? 'array push' : 'bare better-sqlite3 insert, one transaction';
  console.log(JSON.stringify(line));
}
