import { setTimeout as delay } from 'node:timers/promises';
import {
  Agent,
  AgentScheduler,
  CoordinatorAgent,
  createNode,
  createSignal,
  GenServer,
  InvalidArgumentError,
  isUnavailable,
  sendSupervised,
  SignalRouter,
  Supervisor,
  type AgentTask,
  type Context,
  type GenServerSpec,
  type Node,
  type Workflow,
  type WorkflowResult,
} from '../index.js';

/** The demo's knobs (`keel demo --workers 8 --workflows 300 --chaos 0.2 --seed 1 --duration 30 --json`). */
export interface AgentDemoOptions {
  /** Worker agents in the pool (default 8). */
  workers: number;
  /** Workflows to run (default 300). */
  workflows: number;
  /** Chance, at each chaos tick (every 25 ms), that the chaos process kills a worker or a ledger (default 0.2). */
  chaos: number;
  /** Seeds the workflows, task costs and the chaos schedule (default 1). */
  seed: number;
  /** Seconds after which no new workflow is started (default 30); what was not started is reported. */
  duration: number;
  /** Print one JSON object instead of the live progress and the report. */
  json: boolean;
}

/** Everything the demo accounts for. */
export interface AgentDemoReport {
  options: AgentDemoOptions;
  durationMs: number;
  workflows: { total: number; completed: number; failed: number; notStarted: number };
  tasks: { completed: number; failed: number; reassigned: number; timedOut: number };
  restarts: number;
  kills: number;
  signals: { published: number; routed: number; delivered: number; dropped: number; droppedByReason: Record<string, number> };
  deadLetters: { total: number; byReason: Record<string, number>; recovered: number; pending: number; parked: number };
  messages: { sent: number; delivered: number; deadLettered: number; failedReported: number; recoveredHandled: number };
  monitorsLeaked: number;
  /** The report's own checks: every message and every workflow accounted for, no leaked monitor. */
  checks: { messagesAccounted: boolean; workflowsAccounted: boolean; noMonitorLeaks: boolean };
}

export const DEMO_DEFAULTS: AgentDemoOptions = { workers: 8, workflows: 300, chaos: 0.2, seed: 1, duration: 30, json: false };

/** A small seeded PRNG (mulberry32): the same seed gives the same workflows and chaos schedule. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Cost = { cost: number };

/** The workflows, from the seed: three shapes of dependent tasks, each task with a cost in ms. */
export function makeWorkflows(count: number, random: () => number): Workflow[] {
  const cost = (): Cost => ({ cost: 4 + Math.floor(random() * 16) });
  const flows: Workflow[] = [];
  for (let i = 0; i < count; i++) {
    const id = `wf-${i + 1}`;
    const shape = Math.floor(random() * 3);
    if (shape === 0) {
      flows.push({ id, tasks: [
        { id: 'fetch', kind: 'fetch', payload: cost(), requires: ['io'] },
        { id: 'transform', kind: 'transform', payload: cost(), requires: ['compute'], dependsOn: ['fetch'] },
        { id: 'load', kind: 'load', payload: cost(), requires: ['io'], dependsOn: ['transform'] },
      ] });
    } else if (shape === 1) {
      flows.push({ id, tasks: [
        { id: 'fetch', kind: 'fetch', payload: cost(), requires: ['io'] },
        { id: 'stats', kind: 'stats', payload: cost(), requires: ['compute'], dependsOn: ['fetch'] },
        { id: 'model', kind: 'model', payload: cost(), requires: ['ml'], dependsOn: ['fetch'] },
        { id: 'report', kind: 'report', payload: cost(), requires: ['compute'], dependsOn: ['stats', 'model'] },
      ] });
    } else {
      flows.push({ id, tasks: [
        { id: 'a', kind: 'shard', payload: cost(), requires: ['compute'] },
        { id: 'b', kind: 'shard', payload: cost(), requires: ['compute'] },
        { id: 'c', kind: 'shard', payload: cost(), requires: ['compute'] },
        { id: 'merge', kind: 'merge', payload: cost(), requires: ['compute'], dependsOn: ['a', 'b', 'c'] },
      ] });
    }
  }
  return flows;
}

/** Worker `i`'s capabilities: every worker computes, every second one does I/O, every third one ML. */
function capabilitiesOf(i: number): string[] {
  return ['compute', ...(i % 2 === 0 ? ['io'] : []), ...(i % 3 === 0 ? ['ml'] : [])];
}

const LEDGERS = 3;

interface Counters {
  sent: number;
  delivered: number;
  deadLettered: number;
  failedReported: number;
  recoveredHandled: number;
  deadLetteredIds: Set<string>;
}

/** A ledger: counts the receipts it handled, first deliveries and redeliveries from the dead letter queue apart. */
function ledgerSpec(counters: Counters): GenServerSpec<number> {
  return {
    init: () => 0,
    handleInfo: (_message, n, ctx) => {
      if (ctx.messageId !== undefined && counters.deadLetteredIds.has(ctx.messageId)) counters.recoveredHandled++;
      else counters.delivered++;
      return n + 1;
    },
  };
}

/** Validates parsed options (shared by the CLI and the tests). */
export function demoOptions(input: Partial<AgentDemoOptions>): AgentDemoOptions {
  const o = { ...DEMO_DEFAULTS, ...input };
  const int = (key: 'workers' | 'workflows' | 'seed', min: number) => {
    if (!Number.isSafeInteger(o[key]) || o[key] < min) throw new InvalidArgumentError(`--${key}`, `an integer >= ${min}`, o[key]);
  };
  int('workers', 1);
  int('workflows', 1);
  int('seed', 0);
  if (typeof o.chaos !== 'number' || !(o.chaos >= 0 && o.chaos <= 1)) throw new InvalidArgumentError('--chaos', 'a rate from 0 to 1', o.chaos);
  if (typeof o.duration !== 'number' || !(o.duration > 0)) throw new InvalidArgumentError('--duration', 'a positive number of seconds', o.duration);
  return o;
}

/**
 * `npm start`: a coordinator runs workflows over a supervised pool of worker agents while a chaos
 * process, driven by the agent scheduler, kills workers and ledgers; a signal router fans task and
 * workflow signals out to subscribers, one of them deliberately slow, so its buffer overflows; every
 * finished workflow sends a receipt to a ledger through supervised send, with the dead letter queue
 * catching what cannot be delivered. The report accounts for every workflow and every message.
 */
export async function runAgentDemo(input: Partial<AgentDemoOptions> = {}, print: (line: string) => void = console.log, progress?: (line: string) => void): Promise<AgentDemoReport> {
  const options = demoOptions(input);
  const random = seeded(options.seed);
  const flows = makeWorkflows(options.workflows, random);
  const chaosRandom = seeded(options.seed ^ 0x9e3779b9);
  const started = Date.now();
  const node: Node = createNode({
    name: 'keel-demo',
    random: seeded(options.seed + 1),
    services: {
      monitors: { leakAgeMs: 500, leakCheckIntervalMs: 1000 },
      deadLetters: { backoff: { initialMs: 50, factor: 2, maxMs: 400 }, maxRetries: 8 },
    },
  });
  const counters: Counters = { sent: 0, delivered: 0, deadLettered: 0, failedReported: 0, recoveredHandled: 0, deadLetteredIds: new Set() };
  let restarts = 0;
  let kills = 0;
  let published = 0;
  const deadLetterReasons: Record<string, number> = {};
  node.telemetry.attach('demo', ['keel.supervisor.child_restarted', 'keel.dead_letter_queue.message_added'], (event, _m, meta) => {
    if (event === 'keel.supervisor.child_restarted') restarts++;
    else deadLetterReasons[String(meta.reason)] = (deadLetterReasons[String(meta.reason)] ?? 0) + 1;
  });

  try {
    // the signal router and its subscribers: two quick ones, one slow with a small buffer
    const router = await SignalRouter.start(node);
    const quick = (label: string) => node.spawn(() => () => void label);
    const slow = node.spawn(() => () => delay(15));
    await router.subscribe('workflow.*', quick('auditor'));
    await router.subscribe('**', quick('metrics'));
    await router.subscribe('task.**', slow, { capacity: 16, overflow: 'drop_oldest', maxInFlight: 1 });
    const publish = (type: string, data: unknown) => {
      published++;
      router.publish(createSignal({ type, source: 'keel-demo', data }));
    };

    // the coordinator, then the workers under a supervisor: each worker joins the pool as it starts
    const coordinator = await CoordinatorAgent.start(node, { maxConcurrentWorkflows: 32, taskTimeoutMs: 2000, maxTaskAttempts: 4, historySize: 50 });
    const runTask = async (task: AgentTask, _ctx: Context<any>, { signal }: { signal: AbortSignal }) => {
      await delay((task.payload as Cost).cost, undefined, { signal });
      publish(`task.${task.kind}.completed`, { task: task.id });
      return task.kind;
    };
    const workerSpecs = Array.from({ length: options.workers }, (_, i) => ({
      id: `worker-${i}`,
      start: async (ctx: Context<any>) => {
        const agent = await Agent.start(ctx, { name: `worker-${i}`, capabilities: capabilitiesOf(i), runTask });
        void coordinator.addWorker(agent.pid);
        return agent.pid;
      },
    }));
    const ledgerSpecs = Array.from({ length: LEDGERS }, (_, i) => ({
      id: `ledger-${i}`,
      start: (ctx: Context<any>) => GenServer.startLink(ctx, ledgerSpec(counters), undefined, { name: `ledger-${i}` }),
    }));
    const supervisor = await Supervisor.start(node, workerSpecs, { maxRestarts: 1000, withinMs: 1000 });
    // ledgers come back slowly (a restart backoff), so receipts sent meanwhile exhaust their retries
    // and land in the dead letter queue, whose own retries deliver them once the ledger is back
    const ledgers = await Supervisor.start(node, ledgerSpecs, { maxRestarts: 1000, withinMs: 1000, backoff: { initialMs: 60, factor: 1.5, maxMs: 150, jitter: 'none' } });

    // the chaos process: the agent scheduler ticks it; each tick may kill a worker or a ledger
    const chaos = node.spawn<{ type: 'tick' }>((ctx) => () => {
      if (chaosRandom() >= options.chaos) return;
      const pick = chaosRandom();
      const name = pick < 0.8 ? `worker-${Math.floor(chaosRandom() * options.workers)}` : `ledger-${Math.floor(chaosRandom() * LEDGERS)}`;
      const victim = ctx.node.registry.whereis(name);
      if (victim !== undefined) {
        kills++;
        ctx.exit(victim, 'kill');
      }
    });
    const scheduler = await AgentScheduler.start(node);
    await scheduler.registerPeriodic(chaos, 'chaos', 25, { type: 'tick' });

    // the driver: keeps up to 32 workflows running; each finished one sends a receipt to a ledger
    const results: WorkflowResult[] = [];
    const receipts: Promise<void>[] = [];
    let next = 0;
    let notStarted = 0;
    const deadline = started + options.duration * 1000;
    const report = (): string => {
      const done = results.length;
      return `workflows ${done}/${options.workflows}  kills ${kills}  restarts ${restarts}  signals ${published}  receipts ${counters.sent}  dead letters ${counters.deadLettered}`;
    };
    const ticker = setInterval(() => progress?.(report()), 250);
    const lane = async (): Promise<void> => {
      while (next < flows.length) {
        if (Date.now() > deadline) {
          notStarted = flows.length - next;
          next = flows.length;
          return;
        }
        const flow = flows[next++]!;
        const result = await coordinator.run(flow);
        results.push(result);
        publish(`workflow.${result.status}`, { workflow: result.id });
        counters.sent++;
        receipts.push(
          sendSupervised(node, `ledger-${results.length % LEDGERS}`, { type: 'receipt', workflow: result.id, status: result.status }, {
            ack: 'handled', timeout: 1000, retries: 2, backoff: { initialMs: 2, maxMs: 20 }, onError: 'dead_letter',
          }).then((outcome) => {
            if (outcome.ok) return;
            if (outcome.deadLetterId !== undefined) {
              counters.deadLettered++;
              counters.deadLetteredIds.add(outcome.id);
            } else {
              counters.failedReported++;
            }
          }),
        );
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    clearInterval(ticker);

    // chaos off; what is still in flight settles; the dead letter queue retries what is pending now
    await scheduler.unregisterAgent(chaos);
    await Promise.all(receipts);
    await node.idle();
    const retried = await node.deadLetters.retry({ status: 'pending' });
    const recovered = isUnavailable(retried) ? 0 : retried.filter((r) => r.ok).length;
    await node.idle();

    const metrics = await coordinator.metrics();
    const rstats = await router.stats();
    const dlq = await node.deadLetters.stats();
    const leaks = node.monitors.findLeaks({ olderThanMs: 500 });
    const leaked = isUnavailable(leaks) ? 0 : leaks.length;
    const completed = results.filter((r) => r.status === 'completed').length;
    const failed = results.length - completed;
    const m = counters;
    const out: AgentDemoReport = {
      options,
      durationMs: Date.now() - started,
      workflows: { total: options.workflows, completed, failed, notStarted },
      tasks: { completed: metrics.tasks.completed, failed: metrics.tasks.failed, reassigned: metrics.tasks.reassigned, timedOut: metrics.tasks.timedOut },
      restarts,
      kills,
      signals: { published, routed: rstats.routed, delivered: rstats.delivered, dropped: rstats.dropped.total, droppedByReason: { ...rstats.dropped.byReason } },
      deadLetters: {
        total: Object.values(deadLetterReasons).reduce((a, b) => a + b, 0),
        byReason: deadLetterReasons,
        recovered: isUnavailable(dlq) ? recovered : dlq.succeeded,
        pending: isUnavailable(dlq) ? 0 : dlq.pending,
        parked: isUnavailable(dlq) ? 0 : dlq.parked,
      },
      messages: { sent: m.sent, delivered: m.delivered, deadLettered: m.deadLettered, failedReported: m.failedReported, recoveredHandled: m.recoveredHandled },
      monitorsLeaked: leaked,
      checks: {
        messagesAccounted: m.sent === m.delivered + m.deadLettered + m.failedReported,
        workflowsAccounted: completed + failed + notStarted === options.workflows,
        noMonitorLeaks: leaked === 0,
      },
    };
    await GenServer.stop(node, supervisor, 'shutdown');
    await GenServer.stop(node, ledgers, 'shutdown');
    printReport(out, print);
    return out;
  } finally {
    await node.shutdown();
  }
}

function printReport(r: AgentDemoReport, print: (line: string) => void): void {
  if (r.options.json) {
    print(JSON.stringify(r));
    return;
  }
  const by = (o: Record<string, number>) => Object.entries(o).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const ok = (b: boolean) => (b ? 'ok' : 'FAILED');
  print('');
  print(`keel demo: ${r.options.workflows} workflows over ${r.options.workers} workers, chaos ${r.options.chaos}, seed ${r.options.seed}, in ${(r.durationMs / 1000).toFixed(1)} s`);
  print(`  workflows      completed ${r.workflows.completed}, failed ${r.workflows.failed}, not started ${r.workflows.notStarted}`);
  print(`  tasks          completed ${r.tasks.completed}, failed ${r.tasks.failed}, reassigned ${r.tasks.reassigned}, timed out ${r.tasks.timedOut}`);
  print(`  chaos          kills ${r.kills}, supervisor restarts ${r.restarts}`);
  print(`  signals        published ${r.signals.published}, routed ${r.signals.routed}, delivered ${r.signals.delivered}, dropped ${r.signals.dropped} (${by(r.signals.droppedByReason)})`);
  print(`  dead letters   ${r.deadLetters.total} (${by(r.deadLetters.byReason)}), recovered by the queue's retries ${r.deadLetters.recovered}, pending ${r.deadLetters.pending}, parked ${r.deadLetters.parked}`);
  print(`  receipts       sent ${r.messages.sent} = delivered ${r.messages.delivered} + dead-lettered ${r.messages.deadLettered} + failed and reported ${r.messages.failedReported}  [${ok(r.checks.messagesAccounted)}]; redelivered from the queue and handled ${r.messages.recoveredHandled}`);
  print(`  monitors       leaked ${r.monitorsLeaked} (leak age 500 ms)  [${ok(r.checks.noMonitorLeaks)}]`);
  print(`  every workflow completed, failed or not started  [${ok(r.checks.workflowsAccounted)}]`);
}

/** Parses `keel demo`'s flags. */
export function parseDemoArgs(argv: string[]): Partial<AgentDemoOptions> {
  const out: Partial<AgentDemoOptions> = {};
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i]!;
    if (flag === '--json') {
      out.json = true;
      continue;
    }
    const key = ({ '--workers': 'workers', '--workflows': 'workflows', '--chaos': 'chaos', '--seed': 'seed', '--duration': 'duration' } as const)[flag];
    if (key === undefined) throw new InvalidArgumentError('flag', '--workers n | --workflows n | --chaos rate | --seed n | --duration s | --json', flag);
    const raw = argv[++i];
    const value = Number(raw);
    if (raw === undefined || raw === '' || Number.isNaN(value)) throw new InvalidArgumentError(flag, 'a number', raw);
    out[key] = value;
  }
  return out;
}
