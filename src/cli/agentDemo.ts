import {
  Agent,
  type Pid,
  AgentScheduler,
  CoordinatorAgent,
  createNode,
  createSignal,
  GenServer,
  InvalidArgumentError,
  sendSupervised,
  SignalRouter,
  seededRandom,
  SimulatedClock,
  Supervisor,
  type AgentTask,
  type Context,
  type GenServerSpec,
  type Node,
  type Workflow,
} from '../index.js';

/** The demo's knobs (`keel demo --workers 8 --workflows 300 --chaos 0.2 --seed 1 --duration 30 --fail-rate 0.01 --json`). */
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
  /** Chance that a task gets bad input and throws (default 0.01, drawn from the seed): its workflow fails and is reported. */
  failRate: number;
  /** Print one JSON object instead of the live progress and the report. */
  json: boolean;
  /**
   * Run on a SimulatedClock: virtual time that jumps to the next timer whenever the node is idle, and
   * deterministic scheduling, so that a seed gives the same run and the same report, byte for byte,
   * in a fraction of the time (default false: real time).
   */
  simulate: boolean;
  /** @internal Faults a test injects to prove a check fails (not a CLI flag). */
  inject?: { leakedMonitor?: 'short' | 'long' };
  /**
   * @internal `keel observe`: run until this signal aborts, the workflows started again and again
   * (under fresh ids) at a pace a person can watch, `workflows` and `duration` ignored; then the demo
   * winds down and reports as usual.
   */
  until?: AbortSignal;
  /**
   * @internal Ctrl-C (`keel demo`): once it aborts no new workflow starts, as past `duration` (those
   * not started are counted so); those running finish, then the demo winds down and reports as usual.
   */
  stop?: AbortSignal;
  /** @internal Called once the demo's processes run, before the first workflow (`keel observe` starts the observer here). */
  onStarted?: (node: Node, supervisors: readonly Pid[]) => Promise<void> | void;
}

/** Everything the demo accounts for. */
export interface AgentDemoReport {
  options: AgentDemoOptions;
  durationMs: number;
  workflows: { total: number; completed: number; failed: number; notStarted: number; failedBy: Record<string, number> };
  tasks: { completed: number; failed: number; reassigned: number; timedOut: number };
  restarts: number;
  kills: number;
  /** `published` by the demo, `received` counted by the subscribers themselves, the rest by the router. */
  signals: { published: number; routed: number; delivered: number; received: number; dropped: number; droppedByReason: Record<string, number> };
  /**
   * Receipts that went to the dead letter queue: `total` (the queue's own count), `recovered` (its
   * retries delivered them: receipts are `'handled'` sends, so the queue redelivers them as
   * `'handled'`), `recoveredHandled` (counted by the ledgers), `lostAfterRecovery` (recovered by the
   * queue's count but never handled by a ledger's: must be 0), `pending`, `parked`.
   */
  deadLetters: { total: number; byReason: Record<string, number>; recovered: number; recoveredHandled: number; lostAfterRecovery: number; pending: number; parked: number };
  /**
   * Receipts: `sent` counted by the sender; `delivered` counted by the ledgers (receipts they handled
   * that were not dead-lettered); `deadLettered` and `failedReported` from the senders' outcomes;
   * `duplicates`: receipts a ledger handled more than once (must be 0).
   */
  messages: { sent: number; delivered: number; deadLettered: number; failedReported: number; duplicates: number };
  monitorsLeaked: number;
  /** The report's own checks: every message, signal and workflow accounted for, no leaked monitor. */
  checks: { messagesAccounted: boolean; deadLettersAccounted: boolean; signalsAccounted: boolean; workflowsAccounted: boolean; noMonitorLeaks: boolean };
}

export const DEMO_DEFAULTS: AgentDemoOptions = { workers: 8, workflows: 300, chaos: 0.2, seed: 1, duration: 30, failRate: 0.01, json: false, simulate: false };

/** Managed monitors older than this are suspected leaks; the report waits this long after the run before it looks, so any leak shows. */
export const LEAK_AGE_MS = 250;


type Cost = { cost: number; bad?: true };

/**
 * The workflows, from the seed: three shapes of dependent tasks, each task with a cost in ms and,
 * with probability `failRate`, bad input that makes it throw.
 */
export function makeWorkflows(count: number, random: () => number, failRate = 0): Workflow[] {
  const cost = (): Cost => {
    const c = 4 + Math.floor(random() * 16);
    return random() < failRate ? { cost: c, bad: true } : { cost: c };
  };
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
/** Under `until` (keel observe), each of the 32 lanes waits this long between two workflows: a pace a person can watch. */
export const OBSERVE_PACE_MS = 1000;
/** The slow subscriber handles at most one signal per this many published while workflows run. */
const SLOW_PACE = 10;

/**
 * The chaos schedule from the seed: called once per tick, it answers the name of the process to
 * kill at that tick, or undefined. It draws the same numbers at every tick whatever happens, so the
 * same seed gives the same schedule.
 */
export function chaosSchedule(seed: number, rate: number, workers: number): () => string | undefined {
  const random = seededRandom((seed ^ 0x9e3779b9) >>> 0);
  return () => {
    const strike = random();
    const pick = random();
    const which = random();
    if (strike >= rate) return undefined;
    return pick < 0.8 ? `worker-${Math.floor(which * workers)}` : `ledger-${Math.floor(which * LEDGERS)}`;
  };
}

interface Counters {
  /** Counted by the sender as it sends. */
  sent: number;
  /** The senders' outcomes, by message id. */
  readonly deadLettered: Set<string>;
  readonly failedReported: Set<string>;
  /** Counted by the ledgers: how many times each message id was handled. */
  readonly handled: Map<string, number>;
}

/**
 * A ledger: notes the id of every receipt it handles. Whether a receipt came from its first send or
 * from the dead letter queue is decided at the end, from the senders' outcomes (not when it is
 * handled: the queue may redeliver before the sender has seen its outcome).
 */
function ledgerSpec(counters: Counters): GenServerSpec<number> {
  return {
    init: () => 0,
    handleInfo: (_message, n, ctx) => {
      const id = ctx.messageId ?? '(no id)';
      counters.handled.set(id, (counters.handled.get(id) ?? 0) + 1);
      return n + 1;
    },
  };
}

/** Signals dropped after the router took them into a buffer (`routed` counts those too). */
function droppedAfterRouting(by: Readonly<Record<string, number>>): number {
  return (by.evicted ?? 0) + (by.subscriber_down ?? 0) + (by.unsubscribed ?? 0) + (by.router_down ?? 0);
}

/** Why a workflow failed, as a short label. */
function failureLabel(error: unknown): string {
  if (typeof error === 'string') return error;
  if (error instanceof Error) return error.message;
  return 'error';
}

/**
 * The largest values the demo takes: its streams are drawn from seeds derived in 32 bits (`seed ^ k`,
 * `seed + 1`, each `>>> 0`, as they always were: a recorded seed replays the same run), so a seed
 * past 2^32 - 1 would share them with another seed's run; the others only keep a typo (`--workers 80000000`) from a run that
 * exhausts the machine or never ends.
 */
export const DEMO_LIMITS = { workers: 10_000, workflows: 1_000_000, seed: 0xffff_ffff, duration: 86_400 } as const;

/** Validates parsed options (shared by the CLI and the tests). */
export function demoOptions(input: Partial<AgentDemoOptions>): AgentDemoOptions {
  const o = { ...DEMO_DEFAULTS, ...input };
  const int = (key: 'workers' | 'workflows' | 'seed', min: number) => {
    const max = DEMO_LIMITS[key];
    if (!Number.isSafeInteger(o[key]) || o[key] < min || o[key] > max) throw new InvalidArgumentError(`--${key}`, `an integer from ${min} to ${max}`, o[key]);
  };
  int('workers', 1);
  int('workflows', 1);
  int('seed', 0);
  if (typeof o.chaos !== 'number' || !(o.chaos >= 0 && o.chaos <= 1)) throw new InvalidArgumentError('--chaos', 'a rate from 0 to 1', o.chaos);
  if (typeof o.duration !== 'number' || !(o.duration > 0 && o.duration <= DEMO_LIMITS.duration)) {
    throw new InvalidArgumentError('--duration', `a positive number of seconds, at most ${DEMO_LIMITS.duration}`, o.duration);
  }
  if (typeof o.failRate !== 'number' || !(o.failRate >= 0 && o.failRate <= 1)) throw new InvalidArgumentError('--fail-rate', 'a rate from 0 to 1', o.failRate);
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
  const flows = makeWorkflows(options.workflows, seededRandom(options.seed), options.failRate);
  const nextVictim = chaosSchedule(options.seed, options.chaos, options.workers);
  const clock = options.simulate ? new SimulatedClock({ start: 0 }) : undefined;
  const node: Node = createNode({
    name: 'keel-demo',
    ...(clock === undefined ? {} : { clock }),
    random: seededRandom((options.seed + 1) >>> 0),
    services: {
      monitors: { leakAgeMs: LEAK_AGE_MS, leakCheckIntervalMs: 1000 },
      deadLetters: { backoff: { initialMs: 50, factor: 2, maxMs: 400 }, maxRetries: 8 },
    },
  });
  // the demo runs on the node's clock (real time, or virtual with --simulate): its duration, deadline,
  // task costs and report use it, never the host's timers
  const started = node.clock.now();
  const wait = (ms: number, signal?: AbortSignal): Promise<void> =>
    new Promise((resolve, reject) => {
      if (signal?.aborted === true) return reject(signal.reason as Error);
      const onAbort = (): void => {
        node.clock.clearTimer(timer);
        reject(signal!.reason as Error);
      };
      const timer = node.clock.setTimer(ms, () => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      });
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  const counters: Counters = { sent: 0, deadLettered: new Set(), failedReported: new Set(), handled: new Map() };
  let restarts = 0;
  let kills = 0;
  let published = 0;
  let received = 0;
  // the slow subscriber's pace: its handlers wait here until enough signals are published
  const paceWaiters: (() => void)[] = [];
  let unpaced = false;
  const unpace = (): void => {
    unpaced = true;
    for (const release of paceWaiters.splice(0)) release();
  };
  const deadLetterReasons: Record<string, number> = {};
  node.telemetry.attach('demo', ['keel.supervisor.child_restarted', 'keel.dead_letter_queue.message_added'], (event, _m, meta) => {
    if (event === 'keel.supervisor.child_restarted') restarts++;
    else deadLetterReasons[String(meta.reason)] = (deadLetterReasons[String(meta.reason)] ?? 0) + 1;
  });
  let ticker: ReturnType<typeof setInterval> | undefined;

  try {
    // the signal router and its subscribers: two quick ones, one slow with a small buffer; each
    // counts what it receives, to check the router's own count
    // no delivery timeout: the slow subscriber waits for publishes, and a lull (the last workflows
    // retrying their tasks) must not turn a delivery it will make into a failed one
    const router = await SignalRouter.start(node, { deliveryTimeout: Infinity });
    const quick = () => node.spawn(() => () => void received++);
    // the slow one handles at most one signal per SLOW_PACE published while workflows run (so it
    // overflows on any machine, however fast), then catches up
    const slow = node.spawn(() => async () => {
      if (!unpaced) await new Promise<void>((resolve) => paceWaiters.push(resolve));
      received++;
    });
    const subscriptions: [string, Pid][] = [['workflow.*', quick()], ['**', quick()], ['task.**', slow]];
    for (const [pattern, pid] of subscriptions) {
      await router.subscribe(pattern, pid, pid === slow ? { capacity: 16, overflow: 'drop_oldest', maxInFlight: 1 } : {});
    }
    const publish = (type: string, data: unknown) => {
      published++;
      if (published % SLOW_PACE === 0) paceWaiters.shift()?.();
      // the id and time come from the run (a count, the node's clock), not from a random UUID and the
      // real clock: under --simulate the same seed then publishes the same signals
      router.publish(createSignal({ type, source: 'keel-demo', data, id: `${node.creation}-${published}`, time: node.clock.now() }));
    };

    // the coordinator, then the workers under a supervisor: each worker joins the pool as it starts
    const coordinator = await CoordinatorAgent.start(node, { maxConcurrentWorkflows: 32, taskTimeoutMs: 2000, maxTaskAttempts: 4, historySize: 50 });
    const runTask = async (task: AgentTask, _ctx: Context<any>, { signal }: { signal: AbortSignal }) => {
      const payload = task.payload as Cost;
      await wait(payload.cost, signal);
      if (payload.bad === true) throw new Error('bad input');
      publish(`task.${task.kind}.completed`, { task: task.id });
      return task.kind;
    };
    const workerSpecs = Array.from({ length: options.workers }, (_, i) => ({
      id: `worker-${i}`,
      start: async (ctx: Context<any>) => {
        const agent = await Agent.start(ctx, { name: `worker-${i}`, capabilities: capabilitiesOf(i), runTask });
        // it may already be dead again, or the demo ending: then it simply does not join
        coordinator.addWorker(agent.pid).catch(() => undefined);
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
    await options.onStarted?.(node, [supervisor, ledgers]);

    // the chaos process: the agent scheduler ticks it; each tick may kill a worker or a ledger
    const chaos = node.spawn<{ type: 'tick' }>((ctx) => () => {
      const name = nextVictim();
      const victim = name === undefined ? undefined : ctx.node.registry.whereis(name);
      if (victim !== undefined) {
        kills++;
        ctx.exit(victim, 'kill');
      }
    });
    const scheduler = await AgentScheduler.start(node);
    await scheduler.registerPeriodic(chaos, 'chaos', 25, { type: 'tick' });

    // a fault a test injects: a monitor nobody releases, on a process that lives to the end
    if (options.inject?.leakedMonitor !== undefined) {
      const lifetime = options.inject.leakedMonitor;
      node.spawn((ctx) => {
        // eslint-disable-next-line keel/no-unmanaged-monitor -- the fault a test injects on purpose: a monitor nobody releases
        ctx.node.monitors.monitor(ctx, coordinator.pid, { tag: 'careless', expectedLifetime: lifetime });
        return () => undefined;
      });
    }

    // the driver: keeps up to 32 workflows running; each finished one sends a receipt to a ledger.
    // Under `until` (keel observe) the workflows start again and again, paced, until it aborts: what
    // the report needs is counted as they finish, and a receipt is forgotten once settled
    const until = options.until;
    const results = { finished: 0, completed: 0, failedBy: {} as Record<string, number> };
    const receipts = new Set<Promise<void>>();
    let next = 0;
    let notStarted = 0;
    // the duration counts from the first workflow, not from the node's start
    const deadline = node.clock.now() + options.duration * 1000;
    const line = (): string =>
      `workflows ${results.finished}${until === undefined ? `/${options.workflows}` : ''}  kills ${kills}  restarts ${restarts}  signals ${published}  receipts ${counters.sent}  dead letters ${counters.deadLettered.size}`;
    // the progress line is for a person watching in real time: not in a simulation
    if (clock === undefined && progress !== undefined) ticker = setInterval(() => progress(line()), 250);
    // the lanes' pauses under `until`: one listener on the signal wakes them all when it aborts
    const sleepers = new Set<() => void>();
    const wakeAll = (): void => {
      for (const wake of sleepers) wake();
    };
    until?.addEventListener('abort', wakeAll, { once: true });
    const pause = (): Promise<void> =>
      new Promise((resolve) => {
        if (until?.aborted !== false) return resolve();
        const wake = (): void => {
          sleepers.delete(wake);
          node.clock.clearTimer(timer);
          resolve();
        };
        const timer = node.clock.setTimer(OBSERVE_PACE_MS, wake);
        sleepers.add(wake);
      });
    const lane = async (): Promise<void> => {
      while (until === undefined ? next < flows.length : !until.aborted) {
        if (until === undefined && (node.clock.now() > deadline || options.stop?.aborted === true)) {
          notStarted += flows.length - next;
          next = flows.length;
          return;
        }
        const i = next++;
        const flow = until === undefined ? flows[i]! : { ...flows[i % flows.length]!, id: `wf-${i + 1}` };
        const result = await coordinator.run(flow);
        results.finished++;
        if (result.status === 'completed') results.completed++;
        else results.failedBy[failureLabel(result.error)] = (results.failedBy[failureLabel(result.error)] ?? 0) + 1;
        publish(`workflow.${result.status}`, { workflow: result.id });
        counters.sent++;
        const receipt = sendSupervised(node, `ledger-${results.finished % LEDGERS}`, { type: 'receipt', workflow: result.id, status: result.status }, {
          ack: 'handled', timeout: 1000, retries: 2, backoff: { initialMs: 2, maxMs: 20 }, onError: 'dead_letter',
        }).then((outcome) => {
          receipts.delete(receipt);
          if (outcome.ok) return;
          if (outcome.deadLetterId !== undefined) counters.deadLettered.add(outcome.id);
          else counters.failedReported.add(outcome.id);
        });
        receipts.add(receipt);
        if (until !== undefined) await pause();
      }
    };
    await Promise.all(Array.from({ length: 32 }, lane));
    until?.removeEventListener('abort', wakeAll);
    clearInterval(ticker);
    ticker = undefined;
    unpace();

    // chaos off; what is still in flight settles; the dead letter queue retries what is pending now
    await scheduler.unregisterAgent(chaos);
    await Promise.all([...receipts]);
    await node.idle();
    await node.deadLetters.retry({ status: 'pending' });
    await node.idle();

    // the slow subscriber drains its buffer (the node is idle only once its handler is done and the
    // router has nothing left to hand it), then every subscription goes
    for (let s = await router.stats(); s.buffered + s.inFlight > 0; s = await router.stats()) await node.idle();
    for (const [pattern, pid] of subscriptions) await router.unsubscribe(pattern, pid);
    await node.idle();

    // the leak audit: the components release what they watch while they are alive (the workers
    // leave the pool, the subscriptions and the chaos schedule are gone), then, once the leak age
    // has passed since the last monitor could have been made, every managed monitor still held by
    // a live process, and every one past the leak age, is a leak
    for (const w of await coordinator.workers()) await coordinator.removeWorker(w.pid);
    await node.idle();
    await wait(LEAK_AGE_MS + 20);
    const aged = node.monitors.findLeaks({ olderThanMs: LEAK_AGE_MS });
    const held = node.monitors.list();
    const leakedRefs = new Set<unknown>();
    for (const e of aged) leakedRefs.add(e.ref);
    for (const e of held) if (node.isAlive(e.owner) && node.isAlive(e.target)) leakedRefs.add(e.ref);
    const leaked = leakedRefs.size;

    const metrics = await coordinator.metrics();
    const rstats = await router.stats();
    const dl = await node.deadLetters.stats();
    const completed = results.completed;
    const failed = results.finished - completed;
    const failedBy = results.failedBy;
    // under `until`, the workflows are those started
    const total = until === undefined ? options.workflows : next;

    // the receipts: each handle counted by a ledger is a first delivery, unless its send was dead-lettered
    let delivered = 0;
    let recoveredHandled = 0;
    let duplicates = 0;
    for (const [id, n] of counters.handled) {
      duplicates += n - 1;
      if (counters.deadLettered.has(id)) recoveredHandled++;
      else delivered += n;
    }
    const m = { sent: counters.sent, delivered, deadLettered: counters.deadLettered.size, failedReported: counters.failedReported.size, duplicates };
    const dlTotal = Object.values(deadLetterReasons).reduce((a, b) => a + b, 0);
    const { inject: _inject, until: _until, stop: _stop, onStarted: _onStarted, ...shown } = options;
    const out: AgentDemoReport = {
      options: shown,
      durationMs: node.clock.now() - started,
      workflows: { total, completed, failed, notStarted, failedBy },
      tasks: { completed: metrics.tasks.completed, failed: metrics.tasks.failed, reassigned: metrics.tasks.reassigned, timedOut: metrics.tasks.timedOut },
      restarts,
      kills,
      signals: { published, routed: rstats.routed, delivered: rstats.delivered, received, dropped: rstats.dropped.total, droppedByReason: { ...rstats.dropped.byReason } },
      deadLetters: {
        total: dlTotal,
        byReason: deadLetterReasons,
        recovered: dl.succeeded,
        recoveredHandled,
        lostAfterRecovery: dl.succeeded - recoveredHandled,
        pending: dl.pending,
        parked: dl.parked,
      },
      messages: m,
      monitorsLeaked: leaked,
      checks: {
        messagesAccounted: m.sent === m.delivered + m.deadLettered + m.failedReported && m.duplicates === 0,
        // the senders' dead letters are the queue's; each one was recovered, or is still pending or parked
        deadLettersAccounted: m.deadLettered === dlTotal && dlTotal === dl.succeeded + dl.pending + dl.parked + dl.evicted && recoveredHandled === dl.succeeded,
        // the router's count against the subscribers' own, and every matched signal routed or dropped
        signalsAccounted: rstats.published === published && rstats.delivered === received && rstats.buffered + rstats.inFlight === 0 &&
          rstats.routed === rstats.delivered + rstats.failed + droppedAfterRouting(rstats.dropped.byReason),
        workflowsAccounted: completed + failed + notStarted === total && failed === metrics.workflows.failed + metrics.workflows.cancelled,
        noMonitorLeaks: leaked === 0,
      },
    };
    await GenServer.stop(node, supervisor, 'shutdown');
    await GenServer.stop(node, ledgers, 'shutdown');
    printReport(out, print);
    return out;
  } finally {
    if (ticker !== undefined) clearInterval(ticker);
    unpace();
    await node.shutdown();
  }
}

/** One line per section of the human report: what it counts, in the words of docs/agents/demo.md. */
export const REPORT_LEGEND: readonly (readonly [string, string])[] = [
  ['workflows', 'graphs of 3-4 dependent tasks the coordinator runs; failed: a task failed for good; not started: past --duration'],
  ['tasks', "a workflow's steps, each run by a worker agent; reassigned: handed to another worker after its worker died or timed out"],
  ['chaos', 'kills: workers and ledgers the chaos process killed; restarts: their supervisors started them again'],
  ['signals', "events published to the router; routed: a copy queued per matching subscription; evicted: pushed out of a full queue"],
  ['receipts', 'one per finished workflow, sent to a ledger (a GenServer that records it) by supervised send, acknowledged once handled'],
  ['dead letters', "receipts the sender gave up on, kept by the dead letter queue; recovered: its retries delivered them to a ledger"],
  ['monitors', 'managed monitors still held after the run, or older than the leak age: each one a leak'],
];

/** Where the report's sections and terms are explained. */
export const REPORT_DOC = 'docs/agents/demo.md';

function printReport(r: AgentDemoReport, print: (line: string) => void): void {
  if (r.options.json) {
    print(JSON.stringify(r));
    return;
  }
  const by = (o: Record<string, number>) => Object.entries(o).filter(([, v]) => v > 0).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  const ok = (b: boolean) => (b ? 'ok' : 'FAILED');
  const { workflows: w, tasks: t, signals: s, deadLetters: d, messages: m, checks: c } = r;
  const row = (label: string, text: string) => print(`  ${label.padEnd(13)}  ${text}`);
  print('');
  print(
    `keel demo: ${r.workflows.total} workflows over ${r.options.workers} workers, chaos ${r.options.chaos}, seed ${r.options.seed}, ` +
      `in ${(r.durationMs / 1000).toFixed(1)} s${r.options.simulate ? ' of virtual time (simulated: replay it with the same --seed)' : ''}`,
  );
  row('workflows', `completed ${w.completed}, failed ${w.failed} (${by(w.failedBy)}), not started ${w.notStarted}  [${ok(c.workflowsAccounted)}]`);
  row('tasks', `completed ${t.completed}, failed ${t.failed}, reassigned ${t.reassigned}, timed out ${t.timedOut}`);
  row('chaos', `kills ${r.kills}, supervisor restarts ${r.restarts}`);
  row('signals', `published ${s.published}, routed ${s.routed}, delivered ${s.delivered} (received ${s.received}), dropped ${s.dropped} (${by(s.droppedByReason)})  [${ok(c.signalsAccounted)}]`);
  row('receipts', `sent ${m.sent} = delivered ${m.delivered} + dead-lettered ${m.deadLettered} + failed and reported ${m.failedReported}; handled twice ${m.duplicates}  [${ok(c.messagesAccounted)}]`);
  row('dead letters', `${d.total} (${by(d.byReason)}): recovered by the queue's retries ${d.recovered} (handled by a ledger ${d.recoveredHandled}, not handled ${d.lostAfterRecovery}), pending ${d.pending}, parked ${d.parked}  [${ok(c.deadLettersAccounted)}]`);
  row('monitors', `leaked ${r.monitorsLeaked} (leak age ${LEAK_AGE_MS} ms, checked after it passed; and none held once released)  [${ok(c.noMonitorLeaks)}]`);
  print('');
  print('what each line counts:');
  for (const [label, text] of REPORT_LEGEND) row(label, text);
  print(`more: ${REPORT_DOC} explains each line and term of this report`);
  print(verdict(r));
}

/** The report's last line: every workflow and message accounted for, or what is not. */
export function verdict(r: AgentDemoReport): string {
  const { workflows: w, signals: s, deadLetters: d, messages: m, checks: c } = r;
  const missing: string[] = [];
  if (!c.workflowsAccounted) missing.push(`workflows (completed ${w.completed} + failed ${w.failed} + not started ${w.notStarted} of ${w.total})`);
  if (!c.messagesAccounted) {
    missing.push(`receipts (sent ${m.sent}, delivered, dead-lettered or reported ${m.delivered + m.deadLettered + m.failedReported}, handled twice ${m.duplicates})`);
  }
  if (!c.deadLettersAccounted) {
    missing.push(`dead letters (${d.total} in the queue for ${m.deadLettered} dead-lettered receipts; recovered ${d.recovered}, handled ${d.recoveredHandled}, pending ${d.pending}, parked ${d.parked})`);
  }
  if (!c.signalsAccounted) missing.push(`signals (routed ${s.routed}, delivered ${s.delivered}, received ${s.received}, dropped ${s.dropped})`);
  if (!c.noMonitorLeaks) missing.push(`monitors (${r.monitorsLeaked} leaked)`);
  if (missing.length === 0) {
    return `verdict: ok: all ${w.total} workflows, ${m.sent} receipts and ${s.published} signals accounted for, no monitor leaked`;
  }
  return `verdict: FAILED: not accounted for: ${missing.join('; ')}`;
}

/** True when every check of the report passed. */
export function demoPassed(r: AgentDemoReport): boolean {
  return Object.values(r.checks).every(Boolean);
}
