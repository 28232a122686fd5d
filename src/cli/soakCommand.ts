import { parseArgs } from 'node:util';
import { isKeelError } from '../errors.js';
import { overloadOptions, overloadPassed, runOverload, type OverloadOptions } from './overload.js';
import { runSoak, soakOptions, soakPassed, type SoakOptions } from './soak.js';

export const SOAK_USAGE = `usage: keel soak [--duration 60] [--rate 100000] [--kill 0.1] [--seed 1] [--json] [--simulate]
       keel soak --overload [--duration 60] [--rate 100000] [--seed 1] [--json] [--simulate]

  the soak: producers send --rate msg/s with supervised send to workers under three supervisors while
  --kill of the workers are killed every second; every message is accounted for (exit code 1 when a
  check fails). --overload: one producer per overflow policy, 10x faster than its bounded consumer;
  --rate is then each producer's rate. --simulate runs on virtual time: the same --seed replays the
  same report, byte for byte (on stdout; the real heap figures go to stderr)`;

/** Bad usage: one line, exit 2. */
class UsageError extends Error {}

/** A number as a person types it: decimal, optionally with a fraction or an exponent (no hex, no blanks, no sign). */
const NUMBER = /^(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/** What `keel soak` was asked to run. */
export type SoakCommand = { overload: false; options: Partial<SoakOptions> } | { overload: true; options: Partial<OverloadOptions> };

/** Parses `keel soak`'s flags (node:util parseArgs, strict); a bad flag or value throws with one line. */
export function parseSoakArgs(argv: string[]): SoakCommand {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        rate: { type: 'string' },
        kill: { type: 'string' },
        seed: { type: 'string' },
        json: { type: 'boolean' },
        simulate: { type: 'boolean' },
        overload: { type: 'boolean' },
      },
    }));
  } catch (e) {
    // node:util's own message, first line (an unknown option, a missing value, a stray positional)
    throw new UsageError((e as Error).message.split('\n')[0]!);
  }
  const number = (flag: 'duration' | 'rate' | 'kill' | 'seed'): number | undefined => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    if (!NUMBER.test(raw)) throw new UsageError(`--${flag} must be a number, got ${JSON.stringify(raw)}`);
    return Number(raw);
  };
  const options: Partial<SoakOptions> = {};
  for (const flag of ['duration', 'rate', 'kill', 'seed'] as const) {
    const v = number(flag);
    if (v !== undefined) options[flag] = v;
  }
  if (values.json === true) options.json = true;
  if (values.simulate === true) options.simulate = true;
  if (values.overload === true) {
    if (options.kill !== undefined) throw new UsageError('--kill does not apply to --overload (its consumers are not killed)');
    const { kill: _kill, ...rest } = options;
    const overload = overloadOptionsOf(rest);
    checked(() => overloadOptions(overload));
    return { overload: true, options: overload };
  }
  checked(() => soakOptions(options));
  return { overload: false, options };
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

/** A bad value is refused while parsing, before anything starts, with the flag's name. */
function checked<T>(fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (isKeelError(e, 'ERR_INVALID_ARGUMENT')) throw new UsageError(e.message);
    throw e;
  }
}

/**
 * `keel soak`: runs the soak (or with `--overload` the overload run), prints its report on `print`
 * and what is not part of a replay (the real heap under --simulate, the progress) on `aside`.
 * Returns the exit code: 0 when every check passed, 1 when one failed, 2 for bad usage.
 */
export async function runSoakCommand(argv: string[], print: (line: string) => void, aside: (line: string) => void): Promise<number> {
  let command: SoakCommand;
  try {
    command = parseSoakArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    aside(`keel soak: ${e.message}`);
    return 2;
  }
  if (command.overload) return overloadPassed(await runOverload(command.options, print, aside)) ? 0 : 1;
  return soakPassed(await runSoak(command.options, print, aside)) ? 0 : 1;
}
