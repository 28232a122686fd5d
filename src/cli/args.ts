// The one argument parser of the `keel` commands: node:util `parseArgs` under typed option specs.
// Every command takes `--x=y` and `--x y`, answers `--help`/`-h` with its usage, names an unknown
// option with the list of the valid ones, refuses an option given twice, and turns a bad value into
// one line that names the flag.
// A usage error is `ERR_INVALID_ARGUMENT`: the command prints it on stderr and exits 2.
import { parseArgs } from 'node:util';
import { InvalidArgumentError, isKeelError, KeelError } from '../errors.js';
import { nearMiss } from '../nearMiss.js';

/** Where a command prints: `out` its output, `err` what is not (a usage error, progress, ...). */
export interface Io {
  out(text: string): void;
  err(text: string): void;
}

/** A printer for both streams (the tests collect everything in one list), or the two apart. */
export type Output = ((text: string) => void) | Io;

export function ioOf(output: Output): Io {
  return typeof output === 'function' ? { out: output, err: output } : output;
}

interface OptionBase {
  /** One line for the usage. */
  readonly description: string;
  /** A one-letter alias (`-h` is `--help`'s). */
  readonly short?: string;
}

export interface BooleanOption extends OptionBase {
  readonly type: 'boolean';
}

export interface StringOption extends OptionBase {
  readonly type: 'string';
  /** The value's name in the usage: `<file>`. */
  readonly value: string;
  readonly choices?: readonly string[];
  /** The command cannot run without it. */
  readonly required?: boolean;
  /** Shown in the usage. */
  readonly default?: string;
}

export interface NumberOption extends OptionBase {
  readonly type: 'number';
  /** The value's name in the usage: `<n>`. */
  readonly value: string;
  /** Bounds checked while parsing (a command may check more in its own options function). */
  readonly integer?: boolean;
  readonly min?: number;
  readonly max?: number;
  /** What the value must be, for the error: default from `integer`, `min` and `max`. */
  readonly expected?: string;
  /** Shown in the usage. */
  readonly default?: number;
}

export type OptionSpec = BooleanOption | StringOption | NumberOption;
export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

/** The parsed values, by flag name (`'fail-rate'`), typed by their specs; a flag not given is absent. */
export type Values<O extends OptionSpecs> = {
  -readonly [K in keyof O]?: O[K] extends NumberOption ? number : O[K] extends BooleanOption ? boolean : string;
};

/** A command, or a subcommand (`dlq list`): its options and the text of its usage. */
export interface CommandSpec<O extends OptionSpecs = OptionSpecs> {
  /** The words after `keel`: `'demo'`, `'dlq list'`. */
  readonly name: string;
  /** One line, for `keel help`. */
  readonly summary: string;
  /** What follows the name in the usage line (default `'[options]'`). */
  readonly synopsis?: string;
  /** Paragraphs under the usage line. */
  readonly description?: string;
  readonly options: O;
  /** How many positional arguments it takes at most (default 0). */
  readonly positionals?: number;
  /** Paragraphs after the options (exit codes, where to read more). */
  readonly footer?: string;
}

/** Bad usage: one line that says what is wrong (`ERR_INVALID_ARGUMENT`, like a bad value). */
export class UsageError extends KeelError {
  constructor(message: string) {
    super('ERR_INVALID_ARGUMENT', message);
  }
}

/** True for an error of bad usage: the parser's, or a bad value refused by a command's options. */
export function isUsageError(e: unknown): e is KeelError {
  return isKeelError(e, 'ERR_INVALID_ARGUMENT');
}

export type Parsed<O extends OptionSpecs> = { help: true } | { help: false; values: Values<O>; positionals: string[] };

const HELP = { '--help': true, '-h': true } as Record<string, boolean>;

/** A number as a person types it: decimal, an optional sign, fraction and exponent (no hex, no blanks). */
const NUMBER = /^-?(?:\d+(?:\.\d*)?|\.\d+)(?:e[+-]?\d+)?$/i;

/**
 * Parses `argv` by `spec`. `--help` or `-h` anywhere before `--` answers `{ help: true }`; anything
 * else wrong throws a `UsageError` (or an `InvalidArgumentError` for a bad value) that names the flag.
 */
export function parseCommand<O extends OptionSpecs>(spec: CommandSpec<O>, argv: readonly string[]): Parsed<O> {
  const end = argv.indexOf('--');
  if ((end < 0 ? argv : argv.slice(0, end)).some((a) => HELP[a] === true)) return { help: true };
  const config: Record<string, { type: 'string' | 'boolean'; short?: string }> = {};
  for (const [name, o] of Object.entries(spec.options)) config[name] = { type: o.type === 'boolean' ? 'boolean' : 'string', ...(o.short === undefined ? {} : { short: o.short }) };
  // not strict: the tokens are checked here, so that every message names the command's own options
  const { tokens } = parseArgs({ args: [...argv], options: config, strict: false, allowPositionals: true, tokens: true });
  const given: Record<string, string | true> = {};
  /** How each option given was written (`-v`, `--verbose`), for the error of one given twice. */
  const spelt: Record<string, string> = {};
  const positionals: string[] = [];
  for (const t of tokens) {
    if (t.kind === 'option-terminator') continue;
    if (t.kind === 'positional') {
      if (positionals.length >= (spec.positionals ?? 0)) {
        throw new UsageError(`Unexpected argument '${t.value}': keel ${spec.name} takes ${spec.positionals === undefined || spec.positionals === 0 ? 'no arguments, only options' : `at most ${spec.positionals}`}`);
      }
      positionals.push(t.value);
      continue;
    }
    // --help=x, or -h in a group of short options (-hv): what the check for --help above did not see
    if (t.rawName === '--help' || t.rawName === '-h') {
      if (t.value !== undefined) throw new UsageError(`Option '${t.rawName}' does not take an argument`);
      return { help: true };
    }
    const o = Object.hasOwn(spec.options, t.name) ? spec.options[t.name] : undefined;
    if (o === undefined) throw new UsageError(`Unknown option '${t.rawName}'${meant(t.rawName, t.name, spec)}. ${validOptions(spec)}`);
    // once each: the last of two silently won (`keel soak --duration 5 --duration 3600` ran an hour);
    // a boolean too, though both mean the same, so that one rule holds for every option
    if (Object.hasOwn(spelt, t.name)) {
      const first = spelt[t.name]!;
      const as = first === t.rawName ? '' : ` (as ${first} and ${t.rawName})`;
      throw new UsageError(`Option '--${t.name}' given twice${as}: give it once`);
    }
    spelt[t.name] = t.rawName;
    if (o.type === 'boolean') {
      if (t.value !== undefined) throw new UsageError(`Option '--${t.name}' does not take an argument`);
      given[t.name] = true;
      continue;
    }
    // `--seed --json` is a forgotten value, not the value '--json'; `--seed -1` is the value -1
    if (t.value === undefined || (!t.inlineValue && t.value.startsWith('-') && !(o.type === 'number' && NUMBER.test(t.value)))) {
      throw new UsageError(`Option '--${t.name} <value>' argument missing: give it as --${t.name} ${o.value} or --${t.name}=${o.value}`);
    }
    given[t.name] = t.value;
  }
  const values: Record<string, string | number | boolean> = {};
  for (const [name, o] of Object.entries(spec.options)) {
    const v = given[name];
    if (v === undefined) {
      if (o.type === 'string' && o.required === true) throw new UsageError(`--${name} ${o.value} is missing: ${o.description}`);
      continue;
    }
    if (o.type === 'boolean') values[name] = true;
    else if (o.type === 'number') values[name] = parseNumber(`--${name}`, v as string, o);
    else {
      if (o.choices !== undefined && !o.choices.includes(v as string)) throw new InvalidArgumentError(`--${name}`, o.choices.map((c) => `'${c}'`).join(' | '), v);
      values[name] = v as string;
    }
  }
  return { help: false, values: values as Values<O>, positionals };
}

/**
 * Parses `argv` by `spec` and converts the values with `convert` (which may refuse them with an
 * `ERR_INVALID_ARGUMENT`); answers `undefined` for `--help`.
 */
export function parseWith<O extends OptionSpecs, T>(spec: CommandSpec<O>, argv: readonly string[], convert: (values: Values<O>, positionals: string[]) => T): T | undefined {
  const parsed = parseCommand(spec, argv);
  return parsed.help ? undefined : convert(parsed.values, parsed.positionals);
}

/**
 * A command's front door: `--help` prints its usage on `out` (exit 0); bad usage prints one line,
 * `keel <name>: <what is wrong>`, on `err` (exit 2); anything else runs `run` with the converted
 * arguments and answers its exit code.
 */
export function runCommand<O extends OptionSpecs, T, R extends number | Promise<number>>(
  spec: CommandSpec<O>,
  argv: readonly string[],
  io: Io,
  convert: (values: Values<O>, positionals: string[]) => T,
  run: (args: T) => R,
): R | number {
  // help is the parser's answer, never the converted arguments: a command may convert to undefined
  let args: { help: true } | { help: false; value: T };
  try {
    const parsed = parseCommand(spec, argv);
    args = parsed.help ? parsed : { help: false, value: convert(parsed.values, parsed.positionals) };
  } catch (e) {
    if (!isUsageError(e)) throw e;
    io.err(`keel ${spec.name}: ${e.message}`);
    return 2;
  }
  if (args.help) {
    io.out(usageOf(spec));
    return 0;
  }
  return run(args.value);
}

/** A flag's number: decimal text, finite, within the spec's bounds; else an error that names the flag. */
export function parseNumber(flag: string, text: string, o: Pick<NumberOption, 'integer' | 'min' | 'max' | 'expected'> = {}): number {
  if (!NUMBER.test(text)) throw new UsageError(`${flag} must be a number, got ${JSON.stringify(text)}`);
  const n = Number(text);
  const expected = o.expected ?? expectedNumber(o);
  const bounded = o.expected !== undefined || o.integer === true || o.min !== undefined || o.max !== undefined;
  if (!Number.isFinite(n)) throw new InvalidArgumentError(flag, bounded ? expected : 'a finite number', text);
  if ((o.integer === true && !Number.isSafeInteger(n)) || (o.min !== undefined && n < o.min) || (o.max !== undefined && n > o.max)) throw new InvalidArgumentError(flag, expected, n);
  return n;
}

function expectedNumber(o: Pick<NumberOption, 'integer' | 'min' | 'max'>): string {
  const what = o.integer === true ? 'an integer' : 'a number';
  if (o.min !== undefined && o.max !== undefined) return `${what} from ${o.min} to ${o.max}`;
  if (o.min !== undefined) return `${what} >= ${o.min}`;
  if (o.max !== undefined) return `${what} <= ${o.max}`;
  return what;
}

/** `keel demo takes --workers, ..., --help`. */
/** `' (did you mean --count?)'` when a long option misspells one of the command's; else nothing. */
function meant(rawName: string, name: string, spec: CommandSpec): string {
  if (!rawName.startsWith('--')) return '';
  const known = nearMiss(name, [...Object.keys(spec.options), 'help']);
  return known === undefined ? '' : ` (did you mean --${known}?)`;
}

/** `' (did you mean list?)'` when `word` misspells one of `names`; else nothing. */
export function meantCommand(word: string, names: readonly string[]): string {
  const known = nearMiss(word, names);
  return known === undefined ? '' : ` (did you mean ${known}?)`;
}

function validOptions(spec: CommandSpec): string {
  const names = Object.keys(spec.options).map((n) => `--${n}`);
  if (names.length === 0) return `keel ${spec.name} takes no options (only --help)`;
  return `keel ${spec.name} takes ${names.join(', ')} and --help`;
}

/** The usage of a command: its line, its description, its options with their defaults, its footer. */
export function usageOf(spec: CommandSpec): string {
  const rows = Object.entries(spec.options).map(([name, o]) => {
    const flag = `${o.short === undefined ? '    ' : `-${o.short}, `}--${name}${o.type === 'boolean' ? '' : ` ${o.value}`}`;
    const choices = o.type === 'string' && o.choices !== undefined ? ` (${o.choices.join(' | ')})` : '';
    const fallback = o.type !== 'boolean' && o.default !== undefined ? ` (default ${o.default})` : '';
    return [flag, `${o.description}${choices}${fallback}`] as const;
  });
  rows.push(['-h, --help', `print this help (keel help ${spec.name} prints it too)`]);
  const width = Math.max(...rows.map(([flag]) => flag.length));
  const lines = [`usage: keel ${spec.name} ${spec.synopsis ?? '[options]'}`.trimEnd(), ''];
  if (spec.description !== undefined) lines.push(indent(spec.description), '');
  lines.push('options:', ...rows.map(([flag, text]) => `  ${flag.padEnd(width)}  ${text}`));
  if (spec.footer !== undefined) lines.push('', indent(spec.footer));
  return lines.join('\n');
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => (l === '' ? '' : `  ${l}`))
    .join('\n');
}
