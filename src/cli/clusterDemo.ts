import type { Worker } from 'node:worker_threads';
import { Cluster, createWorkerHub, type WorkerHub } from '../cluster/index.js';
import { InvalidArgumentError } from '../errors.js';
import { createNode, formatReason, GenServer, isDown, type Context, type Down, type Pid, type SystemMessage } from '../index.js';

/** The bounds of `keel demo --nodes`. */
export const CLUSTER_DEMO_LIMITS = { minNodes: 2, maxNodes: 8, maxJobs: 100_000 } as const;

/** The cluster demo's knobs (`keel demo --nodes 3`). */
export interface ClusterDemoOptions {
  /** Worker-thread nodes (2 to 8); the second one is terminated midway. */
  nodes: number;
  /** Jobs to hand out (default 3000). */
  jobs: number;
  /**
   * @internal For the tests (not CLI flags): `duplicateResult` makes that node answer its first job
   * twice (a fault the report must catch); `script` is the node script to run (default the compiled
   * clusterDemoNode.js beside this file).
   */
  inject?: { duplicateResult?: string; script?: URL };
}

/** @internal A job, sent by pid from the main thread's coordinator to a worker on another node. */
export type DemoJob = { type: 'job'; id: number; n: number; replyTo: Pid };
/** @internal What a worker node tells the coordinator: its results, its watch set up, a peer's Down. */
export type NodeReport =
  | { type: 'result'; id: number; value: number; by: string }
  | { type: 'watching'; node: string }
  | { type: 'peer-down'; node: string; of: string; reason: string };
/** @internal The worker's calls. */
export type WorkerCall = { request: 'stats'; reply: { handled: number } };
/** @internal What a worker node is given. */
export type DemoNodeData = { duplicateResult: boolean };
/** @internal A worker node's first word to the main thread. */
export type DemoNodeReady = { type: 'ready'; node: string; incarnation: number; worker: string };

/** Everything the cluster demo accounts for. */
export interface ClusterDemoReport {
  nodes: string[];
  victim: string;
  jobs: number;
  /** Job messages sent, re-sends included. */
  sent: number;
  /** Jobs answered (each id once). */
  answered: number;
  /** Results that came a second time for one id (must be 0). */
  duplicates: number;
  /** Jobs outstanding on the victim when its Down came, sent again to a survivor. */
  reassigned: number;
  /** Results received, by the node that computed them. */
  resultsBy: Record<string, number>;
  /** What each survivor says it handled (a call across nodes at the end). */
  handledBy: Record<string, number>;
  /** The coordinator's Down for the victim's worker: its reason. */
  coordinatorDown: string | undefined;
  /** Each survivor's Down for the victim's worker: its reason, by survivor. */
  survivorDowns: Record<string, string>;
  /** `keel.cluster.node_down` on the main thread's node for the victim: its reason and detection time. */
  nodeDown: { reason: string; detectionMs: number } | undefined;
  /** `keel.cluster.node_down` reasons for the survivors once they were stopped (a goodbye each). */
  goodbyes: Record<string, string>;
  checks: { allAnswered: boolean; sentAccounted: boolean; survivorsAccounted: boolean; downsSeen: boolean; goodbyes: boolean };
}

/** The demo's options with defaults, checked (a bad value is `ERR_INVALID_ARGUMENT` naming its flag). */
export function clusterDemoOptions(input: Partial<ClusterDemoOptions>): ClusterDemoOptions {
  const nodes = input.nodes ?? 3;
  const jobs = input.jobs ?? 3000;
  if (!Number.isSafeInteger(nodes) || nodes < CLUSTER_DEMO_LIMITS.minNodes || nodes > CLUSTER_DEMO_LIMITS.maxNodes) {
    throw new InvalidArgumentError('--nodes', `an integer from ${CLUSTER_DEMO_LIMITS.minNodes} to ${CLUSTER_DEMO_LIMITS.maxNodes}`, nodes);
  }
  if (!Number.isSafeInteger(jobs) || jobs < 1 || jobs > CLUSTER_DEMO_LIMITS.maxJobs) throw new InvalidArgumentError('jobs', `an integer from 1 to ${CLUSTER_DEMO_LIMITS.maxJobs}`, jobs);
  return input.inject === undefined ? { nodes, jobs } : { nodes, jobs, inject: input.inject };
}

/** True when every check of the report passed. */
export function clusterDemoPassed(report: ClusterDemoReport): boolean {
  return Object.values(report.checks).every((c) => c);
}

/** The most jobs a worker has outstanding at once. */
const WINDOW = 32;

/**
 * `keel demo --nodes N`: N nodes on worker threads of this process and a coordinator on the main
 * thread's node, joined over the worker transport. The coordinator sends jobs by pid to a worker on
 * each node and takes the results back; once a third are answered the second node's thread is
 * terminated (`worker.terminate()`): the coordinator and every surviving node get a `noconnection`
 * Down for its worker, and the jobs it held are sent again to the survivors. The report accounts for
 * every job (sent = answered + reassigned) and asks each survivor, by a call across nodes, what it
 * handled. Prints as it goes, then the report; answers it.
 */
export async function runClusterDemo(input: Partial<ClusterDemoOptions>, print: (line: string) => void): Promise<ClusterDemoReport> {
  const options = clusterDemoOptions(input);
  const names = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
  const victim = names[1]!;
  const hub = createWorkerHub();
  const main = createNode({ name: 'main', logger: { info: () => undefined, warn: () => undefined, error: () => undefined } });
  const nodeDowns = new Map<string, { reason: string; detectionMs: number }[]>();
  main.telemetry.attach('cluster-demo', ['keel.cluster.node_up', 'keel.cluster.node_down'], (event, measurements, metadata) => {
    const node = String(metadata.node);
    if (event === 'keel.cluster.node_up') return;
    const reason = String(metadata.reason);
    const detectionMs = Number(measurements.detectionMs);
    nodeDowns.set(node, [...(nodeDowns.get(node) ?? []), { reason, detectionMs }]);
    print(`main: node ${node} down (${reason}), ${Math.round(detectionMs)} ms after it was last heard`);
  });
  const workers = new Map<string, Worker>();
  try {
    const cluster = await Cluster.join(main, { transport: hub.transport('main') });
    const script = options.inject?.script ?? new URL('./clusterDemoNode.js', import.meta.url);
    const ready = await Promise.all(names.map((name) => startNode(hub, script, name, workers, options.inject?.duplicateResult === name)));
    await cluster.waitFor(names);
    for (const r of ready) print(`node ${r.node} up on a worker thread (incarnation ${r.incarnation}); its worker is ${r.worker}`);
    print(`main: the coordinator's node, peers ${cluster.nodes().map((n) => n.name).sort().join(', ')}`);
    const pids = new Map<string, Pid>();
    for (const name of names) {
      const pid = await cluster.whereis(name, 'worker');
      if (pid === undefined) throw new Error(`node ${name} has no 'worker'`);
      pids.set(name, pid);
    }
    const outcome = await new Promise<Omit<ClusterDemoReport, 'handledBy' | 'goodbyes' | 'checks' | 'nodeDown'>>((resolve) => {
      main.spawn<NodeReport | Down>((ctx) => coordinator(ctx, { names, victim, jobs: options.jobs, pids, print, resolve, kill: () => void workers.get(victim)!.terminate() }));
    });
    const survivors = names.filter((n) => n !== victim);
    const handledBy: Record<string, number> = {};
    for (const name of survivors) handledBy[name] = (await GenServer.call<WorkerCall>(main, pids.get(name)!, 'stats')).handled;
    // the survivors leave: each says goodbye, and its thread ends
    await Promise.all(survivors.map((name) => new Promise((resolve) => {
      const worker = workers.get(name)!;
      worker.once('exit', resolve);
      worker.postMessage('stop');
    })));
    const goodbyes: Record<string, string> = {};
    for (const name of survivors) goodbyes[name] = nodeDowns.get(name)?.map((d) => d.reason).join(',') ?? 'none';
    const nodeDown = nodeDowns.get(victim)?.[0];
    const report: ClusterDemoReport = {
      ...outcome,
      nodeDown,
      handledBy,
      goodbyes,
      checks: {
        allAnswered: outcome.answered === options.jobs && outcome.duplicates === 0,
        sentAccounted: outcome.sent === outcome.answered + outcome.reassigned,
        survivorsAccounted: survivors.every((n) => handledBy[n] === (outcome.resultsBy[n] ?? 0)),
        downsSeen:
          outcome.coordinatorDown === 'noconnection' &&
          nodeDowns.get(victim)?.length === 1 &&
          survivors.every((n) => outcome.survivorDowns[n] === 'noconnection'),
        goodbyes: survivors.every((n) => goodbyes[n] === 'goodbye'),
      },
    };
    printReport(report, print);
    return report;
  } finally {
    await main.shutdown();
    await hub.close();
  }
}

function startNode(hub: WorkerHub, script: URL, name: string, workers: Map<string, Worker>, duplicateResult: boolean): Promise<DemoNodeReady> {
  const worker = hub.spawnNode(script, { name, workerData: { duplicateResult } satisfies DemoNodeData });
  workers.set(name, worker);
  return new Promise((resolve, reject) => {
    worker.once('message', (m: DemoNodeReady) => resolve(m));
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`node ${name}'s thread exited (code ${code}) before it was ready`)));
  });
}

interface CoordinatorSetup {
  readonly names: readonly string[];
  readonly victim: string;
  readonly jobs: number;
  readonly pids: ReadonlyMap<string, Pid>;
  readonly print: (line: string) => void;
  readonly kill: () => void;
  readonly resolve: (outcome: Omit<ClusterDemoReport, 'handledBy' | 'goodbyes' | 'checks' | 'nodeDown'>) => void;
}

/** The coordinator, on the main thread's node: hands out jobs in windows, reassigns a dead node's. */
function coordinator(ctx: Context<NodeReport | Down>, s: CoordinatorSetup) {
  const queue = Array.from({ length: s.jobs }, (_, i) => i); // job ids not yet sent (or to send again)
  const live = new Set(s.names);
  const outstanding = new Map<string, Set<number>>(s.names.map((n) => [n, new Set<number>()]));
  const answered = new Set<number>();
  const resultsBy: Record<string, number> = Object.fromEntries(s.names.map((n) => [n, 0]));
  const survivorDowns: Record<string, string> = {};
  let watching = 0;
  let sent = 0;
  let duplicates = 0;
  let reassigned = 0;
  let killed = false;
  let coordinatorDown: string | undefined;
  const nodeOf = new Map<string, string>([...s.pids].map(([n, pid]) => [String(pid), n]));

  const refill = (name: string): void => {
    const mine = outstanding.get(name)!;
    while (live.has(name) && mine.size < WINDOW && queue.length > 0) {
      const id = queue.shift()!;
      mine.add(id);
      sent++;
      // eslint-disable-next-line keel/no-raw-send -- the demo shows a remote pid used as a local one: at-most-once send, the Down covers the loss
      ctx.send(s.pids.get(name)!, { type: 'job', id, n: id, replyTo: ctx.self } satisfies DemoJob);
    }
  };
  const finish = (): void => {
    if (answered.size < s.jobs || Object.keys(survivorDowns).length < s.names.length - 1 || coordinatorDown === undefined) return;
    s.print(`coordinator: all ${s.jobs} jobs answered`);
    s.resolve({ nodes: [...s.names], victim: s.victim, jobs: s.jobs, sent, answered: answered.size, duplicates, reassigned, resultsBy, coordinatorDown, survivorDowns });
    ctx.exit('normal');
  };

  for (const [name, pid] of s.pids) {
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the coordinator lives for the demo; each monitor fires at most once
    ctx.monitor(pid);
    // eslint-disable-next-line keel/no-raw-send -- as above
    ctx.send(pid, { type: 'watch', peers: [...s.pids].filter(([n]) => n !== name).map(([, p]) => p), coordinator: ctx.self });
  }
  return (msg: NodeReport | SystemMessage) => {
    if (isDown(msg)) {
      const name = nodeOf.get(String(msg.pid)) ?? '?';
      coordinatorDown = formatReason(msg.reason);
      live.delete(name);
      const lost = [...(outstanding.get(name) ?? [])].sort((a, b) => a - b);
      outstanding.get(name)?.clear();
      reassigned += lost.length;
      queue.unshift(...lost);
      s.print(`coordinator: Down for ${name}'s worker ${String(msg.pid)}: ${coordinatorDown}; ${lost.length} jobs it held go to ${[...live].join(', ')}`);
      for (const n of live) refill(n);
      finish();
      return;
    }
    const m = msg as NodeReport;
    if (m.type === 'watching') {
      if (++watching === s.names.length) {
        s.print(`coordinator: every node watches the others' workers; sending ${s.jobs} jobs, at most ${WINDOW} outstanding per node`);
        for (const n of s.names) refill(n);
      }
    } else if (m.type === 'peer-down') {
      survivorDowns[m.node] = m.reason;
      s.print(`${m.node}: Down for ${nodeOf.get(m.of) ?? m.of}'s worker ${m.of}: ${m.reason}`);
      finish();
    } else if (m.type === 'result') {
      if (answered.has(m.id)) duplicates++;
      answered.add(m.id);
      resultsBy[m.by] = (resultsBy[m.by] ?? 0) + 1;
      outstanding.get(m.by)?.delete(m.id);
      if (!killed && answered.size >= Math.ceil(s.jobs / 3)) {
        killed = true;
        s.print(`main: ${answered.size} jobs answered; terminating node ${s.victim}'s thread (worker.terminate())`);
        s.kill();
      }
      refill(m.by);
      finish();
    }
  };
}

function printReport(r: ClusterDemoReport, print: (line: string) => void): void {
  const ok = (b: boolean): string => (b ? 'ok' : 'FAILED');
  const survivors = r.nodes.filter((n) => n !== r.victim);
  print('');
  print(`cluster demo: ${r.nodes.length} worker-thread nodes (${r.nodes.join(', ')}), the coordinator on main; ${r.victim} terminated midway`);
  print(`jobs: ${r.jobs}; answered ${r.answered}, duplicates ${r.duplicates}; by node: ${r.nodes.map((n) => `${n} ${r.resultsBy[n] ?? 0}`).join(', ')}`);
  print(`node down: ${r.victim} (${r.nodeDown?.reason ?? 'never'}); the coordinator's Down: ${r.coordinatorDown ?? 'none'}; the survivors': ${survivors.map((n) => `${n} ${r.survivorDowns[n] ?? 'none'}`).join(', ')}`);
  print(`check every job answered once: ${r.answered} of ${r.jobs}, ${r.duplicates} duplicates: ${ok(r.checks.allAnswered)}`);
  print(`check sent = answered + reassigned: ${r.sent} = ${r.answered} + ${r.reassigned}: ${ok(r.checks.sentAccounted)}`);
  print(`check each survivor handled what it answered: ${survivors.map((n) => `${n} ${r.handledBy[n]} = ${r.resultsBy[n] ?? 0}`).join(', ')}: ${ok(r.checks.survivorsAccounted)}`);
  print(`check noconnection Downs for ${r.victim}'s worker on main and every survivor: ${ok(r.checks.downsSeen)}`);
  print(`check the survivors left with a goodbye: ${survivors.map((n) => `${n} ${r.goodbyes[n]}`).join(', ')}: ${ok(r.checks.goodbyes)}`);
  print(clusterDemoPassed(r) ? 'cluster demo passed: every job accounted for across the node\'s death' : 'cluster demo FAILED: a check above did not hold');
}

