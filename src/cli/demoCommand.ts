import { type CommandSpec, ioOf, type Output, parseWith, runCommand, UsageError, type Values } from './args.js';
import { type AgentDemoOptions, DEMO_DEFAULTS, DEMO_LIMITS, demoOptions, demoPassed, runAgentDemo } from './agentDemo.js';
import { CLUSTER_DEMO_LIMITS, clusterDemoPassed, runClusterDemo } from './clusterDemo.js';
import { runObserve } from './observe.js';
import { stopOnSignals } from './signals.js';

const options = {
  workers: { type: 'number', value: '<n>', description: `worker agents in the supervised pool, 1 to ${DEMO_LIMITS.workers}`, default: DEMO_DEFAULTS.workers },
  workflows: { type: 'number', value: '<n>', description: `workflows to run, 1 to ${DEMO_LIMITS.workflows}`, default: DEMO_DEFAULTS.workflows },
  chaos: { type: 'number', value: '<rate>', description: 'chance, every 25 ms, that the chaos process kills a worker or a ledger, 0 to 1', default: DEMO_DEFAULTS.chaos },
  seed: { type: 'number', value: '<n>', description: `seeds the workflows and the chaos schedule, 0 to ${DEMO_LIMITS.seed}: see "seeds" below`, default: DEMO_DEFAULTS.seed },
  duration: { type: 'number', value: '<s>', description: `seconds after which no new workflow starts, up to ${DEMO_LIMITS.duration}`, default: DEMO_DEFAULTS.duration },
  'fail-rate': { type: 'number', value: '<rate>', description: 'chance that a task gets bad input and fails its workflow, 0 to 1', default: DEMO_DEFAULTS.failRate },
  json: { type: 'boolean', description: 'print one JSON object instead of the progress and the report' },
  simulate: { type: 'boolean', description: 'run on virtual time with deterministic scheduling: the same --seed, the same report, byte for byte' },
  observe: { type: 'boolean', description: "keel observe: the demo with an observer, until Ctrl-C (takes keel observe's options: keel observe --help)" },
  nodes: {
    type: 'number',
    value: '<n>',
    integer: true,
    min: CLUSTER_DEMO_LIMITS.minNodes,
    max: CLUSTER_DEMO_LIMITS.maxNodes,
    description: `run the cluster demo instead: jobs spread over <n> worker-thread nodes, one killed midway (${CLUSTER_DEMO_LIMITS.minNodes} to ${CLUSTER_DEMO_LIMITS.maxNodes}; takes no other option)`,
  },
} as const satisfies CommandSpec['options'];

export const DEMO_COMMAND: CommandSpec<typeof options> = {
  name: 'demo',
  summary: 'the agent layer under chaos, with a report that accounts for every workflow and message (npm start)',
  description: [
    'A coordinator runs workflows over a supervised pool of worker agents while a chaos process kills',
    'workers and ledgers; a signal router fans task and workflow events out to subscribers (one slow on',
    'purpose); every finished workflow sends a receipt to a ledger with supervised send, and the dead',
    'letter queue catches what cannot be delivered. The report accounts for every workflow and message.',
    'Ctrl-C starts no new workflow: those running finish, then the report (the rest counted not started);',
    'a second Ctrl-C quits at once.',
  ].join('\n'),
  options,
  footer: [
    'seeds: --seed fixes the workflows (their tasks, costs and bad inputs) and the chaos schedule (whom',
    'each 25 ms tick kills), not the real-time interleavings: how long the run takes (and so how many',
    'ticks there are), which task a kill interrupts, which receipts find their ledger down. So on real',
    'time the same seed gives other counts (kills, reassigned tasks, dead letters) from run to run.',
    'With --simulate the run is on virtual time with deterministic scheduling, and the same --seed',
    'prints the same report, byte for byte.',
    '',
    'cluster: --nodes 3 starts three nodes on worker threads of this process, joined over the worker',
    'transport, and a coordinator on the main thread that sends them jobs by pid; one node\'s thread is',
    'terminated midway, its jobs go to the survivors, and the report accounts for every job.',
    'Across machines over NATS: README.md "Cluster" and docs/cluster.md.',
    '',
    'exit code: 0 when every check of the report passed, 1 when one failed, 2 on bad usage.',
    'The report and its terms: docs/agents/demo.md.',
  ].join('\n'),
};

/** `keel demo`'s parsed flags: the agent demo's options, or `nodes` for the cluster demo. */
export type DemoArgs = Partial<AgentDemoOptions> & { nodes?: number };

/** `keel demo`'s flags as the demo's options (checked by `demoOptions`: a bad value names its flag). */
function toOptions(values: Values<typeof options>): DemoArgs {
  if (values.nodes !== undefined) {
    const others = Object.keys(values).filter((k) => k !== 'nodes');
    if (others.length > 0) throw new UsageError(`--nodes runs the cluster demo, which takes no other option (got --${others.join(', --')})`);
    return { nodes: values.nodes };
  }
  const out: Partial<AgentDemoOptions> = {};
  if (values.workers !== undefined) out.workers = values.workers;
  if (values.workflows !== undefined) out.workflows = values.workflows;
  if (values.chaos !== undefined) out.chaos = values.chaos;
  if (values.seed !== undefined) out.seed = values.seed;
  if (values.duration !== undefined) out.duration = values.duration;
  if (values['fail-rate'] !== undefined) out.failRate = values['fail-rate'];
  if (values.json === true) out.json = true;
  if (values.simulate === true) out.simulate = true;
  demoOptions(out); // a bad value is refused here, with the flag's name, before anything starts
  return out;
}

/** Parses `keel demo`'s flags (undefined for `--help`); bad usage throws `ERR_INVALID_ARGUMENT` naming the flag. */
export function parseDemoArgs(argv: readonly string[]): DemoArgs | undefined {
  return parseWith(DEMO_COMMAND, argv, toOptions);
}

/**
 * `keel demo`: the report on `out`; `progress` (when given, and not under --json) gets the live
 * progress line. Exit code 0 when every check passed, 1 when one failed, 2 on bad usage.
 */
export function runDemoCommand(argv: readonly string[], output: Output, progress?: (line: string) => void): Promise<number> | number {
  const io = ioOf(output);
  // `keel demo --observe …` (npm start -- --observe) is `keel observe …`
  const end = argv.indexOf('--');
  const head = end < 0 ? argv : argv.slice(0, end);
  if (head.includes('--observe')) return runObserve(argv.filter((a, i) => !(a === '--observe' && (end < 0 || i < end))), io, progress === undefined ? {} : { progress });
  return runCommand(DEMO_COMMAND, argv, io, toOptions, async (o) => {
    if (o.nodes !== undefined) return clusterDemoPassed(await runClusterDemo({ nodes: o.nodes }, (line) => io.out(line))) ? 0 : 1;
    // the first Ctrl-C (or SIGTERM, SIGHUP) starts no new workflow: those running finish, and the
    // report comes as at the end of the duration; a second exits at once
    const stop = stopOnSignals((signal) => io.err(`keel demo: stopped by a second ${signal}, before the report`));
    const announce = (): void => io.err('keel demo: no new workflow starts; those running finish, then the report (again to quit at once)');
    stop.signal.addEventListener('abort', announce, { once: true });
    try {
      const report = await runAgentDemo({ ...o, stop: stop.signal }, (line) => io.out(line), o.json === true ? undefined : progress);
      return demoPassed(report) ? 0 : 1;
    } finally {
      stop.signal.removeEventListener('abort', announce);
      stop.release();
    }
  });
}
