import { type CommandSpec, ioOf, parseWith, runCommand, UsageError, type Values } from './args.js';
import { overloadOptions, overloadPassed, runOverload, type OverloadOptions } from './overload.js';
import { stopOnSignals } from './signals.js';
import { runSoak, SOAK_DEFAULTS, SOAK_LIMITS, soakOptions, soakPassed, type SoakOptions } from './soak.js';

const options = {
  duration: { type: 'number', value: '<s>', description: `seconds of load, up to ${SOAK_LIMITS.duration}`, default: SOAK_DEFAULTS.duration },
  rate: { type: 'number', value: '<msg/s>', description: 'messages per second (with --overload: per producer); at most 2e9 messages over the run', default: SOAK_DEFAULTS.rate },
  kill: { type: 'number', value: '<fraction>', description: 'fraction of the workers killed every second, 0 to 1 (not with --overload)', default: SOAK_DEFAULTS.kill },
  seed: { type: 'number', value: '<n>', description: `seeds the traffic and the chaos, 0 to ${SOAK_LIMITS.seed}`, default: SOAK_DEFAULTS.seed },
  json: { type: 'boolean', description: 'print the report as one JSON object' },
  simulate: { type: 'boolean', description: 'run on virtual time: the same --seed replays the same report, byte for byte' },
  overload: { type: 'boolean', description: 'each overflow policy under a producer 10x faster than its bounded consumer' },
} as const satisfies CommandSpec['options'];

export const SOAK_COMMAND: CommandSpec<typeof options> = {
  name: 'soak',
  summary: 'the reliability soak: supervised sends under chaos, every message accounted for (--overload: the overflow policies)',
  description: [
    'The soak: producers send --rate msg/s with supervised send to workers under three supervisors while',
    '--kill of the workers are killed every second; every message is accounted for, leaks and the heap',
    'are checked. --overload: one producer per overflow policy, 10x faster than its bounded consumer;',
    '--rate is then each producer\'s rate.',
  ].join('\n'),
  options,
  footer: [
    'seeds: --seed fixes what the producers send and whom the chaos picks, not the real-time',
    'interleavings, so on real time the counts vary from run to run; with --simulate the run is on',
    'virtual time and the same --seed prints the same report, byte for byte (on stdout; the real heap',
    'figures go to stderr).',
    '',
    'Ctrl-C (or SIGTERM, SIGHUP): the load stops at once, and the soak (or --overload) drains, accounts for every',
    'message sent and reports (saying interrupted); a second one quits at once with 130 (143, 129).',
    '',
    'exit code: 0 when every check passed, 1 when one failed, 2 on bad usage. More: docs/reliability.md.',
  ].join('\n'),
};

/** What `keel soak` was asked to run. */
export type SoakCommand = { overload: false; options: Partial<SoakOptions> } | { overload: true; options: Partial<OverloadOptions> };

function toCommand(values: Values<typeof options>): SoakCommand {
  const options: Partial<SoakOptions> = {};
  for (const flag of ['duration', 'rate', 'kill', 'seed'] as const) {
    const v = values[flag];
    if (v !== undefined) options[flag] = v;
  }
  if (values.json === true) options.json = true;
  if (values.simulate === true) options.simulate = true;
  if (values.overload === true) {
    if (options.kill !== undefined) throw new UsageError('--kill does not apply to --overload (its consumers are not killed)');
    const overload = overloadOptionsOf(options);
    overloadOptions(overload); // a bad value is refused while parsing, before anything starts, with the flag's name
    return { overload: true, options: overload };
  }
  soakOptions(options);
  return { overload: false, options };
}

/** Parses `keel soak`'s flags (undefined for `--help`); a bad flag or value throws `ERR_INVALID_ARGUMENT` with one line. */
export function parseSoakArgs(argv: readonly string[]): SoakCommand | undefined {
  return parseWith(SOAK_COMMAND, argv, toCommand);
}

function overloadOptionsOf(options: Partial<SoakOptions>): Partial<OverloadOptions> {
  const out: Partial<OverloadOptions> = {};
  if (options.duration !== undefined) out.duration = options.duration;
  if (options.rate !== undefined) out.rate = options.rate;
  if (options.seed !== undefined) out.seed = options.seed;
  if (options.json !== undefined) out.json = options.json;
  if (options.simulate !== undefined) out.simulate = options.simulate;
  return out;
}

/**
 * `keel soak`: runs the soak (or with `--overload` the overload run), prints its report on `print`
 * and what is not part of a replay (the real heap under --simulate, the progress) on `aside`.
 * Returns the exit code: 0 when every check passed, 1 when one failed, 2 for bad usage.
 */
export async function runSoakCommand(argv: readonly string[], print: (line: string) => void, aside: (line: string) => void): Promise<number> {
  return runCommand(SOAK_COMMAND, argv, ioOf({ out: print, err: aside }), toCommand, async (command) => {
    // the first Ctrl-C (or SIGTERM, SIGHUP) ends the load: the run drains, accounts and reports; a second
    // quits at once (the soak's temporary directory removed). --overload too: it died of the first one, with no report
    const stop = stopOnSignals(() => aside('keel soak: stopped before its report'));
    const announce = (): void => aside('keel soak: the load stops now; draining and accounting for every message sent (again to quit at once)');
    stop.signal.addEventListener('abort', announce, { once: true });
    try {
      if (command.overload) return overloadPassed(await runOverload({ ...command.options, stop: stop.signal }, print, aside)) ? 0 : 1;
      return soakPassed(await runSoak({ ...command.options, stop: stop.signal }, print, aside)) ? 0 : 1;
    } finally {
      stop.release();
    }
  });
}
