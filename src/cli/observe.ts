// `keel observe` (and `keel demo --observe`, what `npm start -- --observe` runs): the agent demo
// with an observer attached, its workflows started again and again until Ctrl-C, so that there is
// something to watch; then the demo winds down and prints its report.
import type { Node, Pid } from '../index.js';
import { type AgentDemoOptions, DEMO_DEFAULTS, DEMO_LIMITS, demoOptions, demoPassed, OBSERVE_PACE_MS, runAgentDemo } from './agentDemo.js';
import { type CommandSpec, type Io, parseWith, runCommand, UsageError, type Values } from './args.js';
import { stopOnSignals } from './signals.js';

const options = {
  port: { type: 'number', value: '<port>', integer: true, min: 0, max: 65535, description: "the observer's port, 0 for a free one", default: 0 },
  host: { type: 'string', value: '<address>', description: 'the address the observer listens on; another than loopback exposes the node to that network, guarded by the token alone', default: '127.0.0.1' },
  'allowed-host': { type: 'string', value: '<host:port,...>', description: 'more Host values the observer answers to (the name or address it is reached by with --host), comma-separated' },
  writable: { type: 'boolean', description: 'allow the actions that change the node: kill a process, retry and purge dead letters (read-only without it)' },
  payloads: { type: 'boolean', description: "show dead letters' messages, metadata and last errors (hidden without it)" },
  workers: { type: 'number', value: '<n>', description: `worker agents in the supervised pool, 1 to ${DEMO_LIMITS.workers}`, default: DEMO_DEFAULTS.workers },
  chaos: { type: 'number', value: '<rate>', description: 'chance, every 25 ms, that the chaos process kills a worker or a ledger, 0 to 1', default: DEMO_DEFAULTS.chaos },
  seed: { type: 'number', value: '<n>', description: `seeds the workflows and the chaos schedule, 0 to ${DEMO_LIMITS.seed}`, default: DEMO_DEFAULTS.seed },
  'fail-rate': { type: 'number', value: '<rate>', description: 'chance that a task gets bad input and fails its workflow, 0 to 1', default: DEMO_DEFAULTS.failRate },
} as const satisfies CommandSpec['options'];

export const OBSERVE_COMMAND: CommandSpec<typeof options> = {
  name: 'observe',
  summary: 'the demo with an observer attached, until Ctrl-C: open the link it prints (npm start -- --observe)',
  description: [
    'Runs the agent demo (keel demo) with node.observer() attached and prints the observer\'s link once:',
    'open it in a browser, or give it to keel top. The workflows start again and again (each of the 32',
    `lanes waits ${OBSERVE_PACE_MS} ms between two) while the chaos process kills workers and ledgers, until`,
    'SIGINT (Ctrl-C), SIGTERM or SIGHUP; then the demo winds down and prints its report. A second signal exits',
    'at once, without the report.',
  ].join('\n'),
  options,
  footer: [
    'The link carries the token: whoever has it sees the node (and with --writable acts on it).',
    'keel demo --observe takes the same options. The observer and its security model: docs/observer.md.',
    '',
    'exit code: 0 when every check of the report passed, 1 when one failed, 2 on bad usage;',
    '130 (SIGINT), 143 (SIGTERM) or 129 (SIGHUP) when a second signal stopped it before the report.',
  ].join('\n'),
};

/** `keel observe`'s arguments. */
export interface ObserveArgs {
  readonly port: number;
  readonly host: string;
  readonly allowedHosts: readonly string[];
  readonly readOnly: boolean;
  readonly allowPayloads: boolean;
  readonly demo: Partial<AgentDemoOptions>;
}

function observeArgs(values: Values<typeof options>): ObserveArgs {
  const demo: Partial<AgentDemoOptions> = {};
  if (values.workers !== undefined) demo.workers = values.workers;
  if (values.chaos !== undefined) demo.chaos = values.chaos;
  if (values.seed !== undefined) demo.seed = values.seed;
  if (values['fail-rate'] !== undefined) demo.failRate = values['fail-rate'];
  demoOptions(demo); // a bad value is refused here, with the flag's name, before anything starts
  const host = values.host ?? '127.0.0.1';
  if (!/^[\x21-\x7e]{1,255}$/.test(host)) throw new UsageError(`--host must be a host name or address (1 to 255 printable characters, no spaces), got ${JSON.stringify(host.slice(0, 100))}`);
  const allowedHosts = values['allowed-host'] === undefined ? [] : values['allowed-host'].split(',').map((h) => h.trim());
  for (const h of allowedHosts) {
    if (!/^[\x21-\x7e]{1,300}$/.test(h)) throw new UsageError(`--allowed-host must be host:port values separated by commas, got ${JSON.stringify(h.slice(0, 100))}`);
  }
  return { port: values.port ?? 0, host, allowedHosts, readOnly: values.writable !== true, allowPayloads: values.payloads === true, demo };
}

/** Parses `keel observe`'s flags (undefined for `--help`); bad usage throws `ERR_INVALID_ARGUMENT` naming the flag. */
export function parseObserveArgs(argv: readonly string[]): ObserveArgs | undefined {
  return parseWith(OBSERVE_COMMAND, argv, observeArgs);
}

/** What `keel observe` runs with besides its arguments. */
export interface ObserveEnvironment {
  /** Stops the demo (it then reports); default: the first SIGINT, SIGTERM or SIGHUP (a second one exits at once). */
  readonly signal?: AbortSignal;
  /** Gets the live progress line (keel.ts: rewritten in place on a terminal, once a second otherwise). */
  readonly progress?: (line: string) => void;
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);

/**
 * `keel observe`: the demo with an observer until the signal; the link, then the report on
 * `io.out`. Exit code 0 when every check of the report passed, 1 when one failed, 2 on bad usage
 * (an address the observer cannot listen on is one line on `io.err`, exit 1).
 */
export function runObserve(argv: readonly string[], io: Io, environment: ObserveEnvironment = {}): number | Promise<number> {
  return runCommand(OBSERVE_COMMAND, argv, io, observeArgs, async (args) => {
    const stop = environment.signal === undefined ? stopOnSignals((signal) => io.err(`keel observe: stopped by a second ${signal}, before the report`)) : { signal: environment.signal, release: () => undefined };
    let failed: string | undefined;
    const onStarted = async (node: Node, supervisors: readonly Pid[]): Promise<void> => {
      try {
        const observer = await node.observer({ port: args.port, host: args.host, allowedHosts: [...args.allowedHosts], readOnly: args.readOnly, allowPayloads: args.allowPayloads, supervisors: [...supervisors] });
        io.out(`observer: ${observer.url}`);
        // the link carries the token: printed once, never again (keel top takes the same link)
        io.out("  open it in a browser, or watch it in a terminal: keel top --url '<the link above>'");
        io.out(`  ${args.readOnly ? 'read-only (--writable allows kill, retry and purge)' : 'writable: kill, retry and purge are allowed'}; Ctrl-C stops the demo and prints its report`);
        if (!LOOPBACK.has(args.host)) io.err(`keel observe: the observer listens on ${args.host}: anyone who reaches it there with the token sees the node`);
      } catch (e) {
        // a port in use, an address not of this machine: no demo without its observer
        failed = `keel observe: the observer cannot listen on ${args.host}:${args.port}: ${e instanceof Error ? e.message : String(e)}`;
        throw e;
      }
    };
    try {
      const report = await runAgentDemo({ ...args.demo, until: stop.signal, onStarted }, (line) => io.out(line), environment.progress);
      return demoPassed(report) ? 0 : 1;
    } catch (e) {
      if (failed === undefined) throw e;
      io.err(failed);
      return 1;
    } finally {
      stop.release();
    }
  });
}
