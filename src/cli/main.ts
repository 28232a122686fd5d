import { readFileSync } from 'node:fs';
import { type CommandSpec, type Io, meantCommand, runCommand, usageOf } from './args.js';
import { AUDIT_COMMAND, runAudit } from './audit.js';
import { runDemo } from './demo.js';
import { DEMO_COMMAND, runDemoCommand } from './demoCommand.js';
import { runServicesDemo } from './demoServices.js';
import { dlqUsage, runDlq } from './dlq.js';
import { OBSERVE_COMMAND, runObserve } from './observe.js';
import { runSoakCommand, SOAK_COMMAND } from './soakCommand.js';
import { runTop, TOP_COMMAND } from './top.js';

export const TOUR_COMMAND: CommandSpec<Record<string, never>> = {
  name: 'tour',
  summary: 'a short walk through processes, links, supervisors, GenServers and supervised send',
  synopsis: '',
  description: [
    'Two short programs that print what happens as they run, in well under a second: a coordinator',
    'that links its workers, traps the exit of one that crashes and starts it again; then a supervisor',
    'restarting a crashed GenServer, supervised send with a dead letter, and a managed monitor.',
    'Their source, to read along: src/cli/demo.ts and src/cli/demoServices.ts.',
  ].join('\n'),
  options: {},
  footer: 'exit code: 0 when the tour ran, 2 on bad usage. The concepts: README.md, docs/runtime.md, docs/otp.md.',
};

interface Entry {
  readonly summary: string;
  /** The usage of the command, or of one of its subcommands (undefined: no such subcommand). */
  usage(sub?: string): string | undefined;
  run(argv: readonly string[], io: Io, progress?: (line: string) => void): number | Promise<number>;
}

const single = (spec: CommandSpec): Pick<Entry, 'summary' | 'usage'> => ({ summary: spec.summary, usage: (sub) => (sub === undefined ? usageOf(spec) : undefined) });

const COMMANDS: Readonly<Record<string, Entry>> = {
  demo: { ...single(DEMO_COMMAND), run: (argv, io, progress) => runDemoCommand(argv, io, progress) },
  observe: { ...single(OBSERVE_COMMAND), run: (argv, io, progress) => runObserve(argv, io, progress === undefined ? {} : { progress }) },
  top: { ...single(TOP_COMMAND), run: (argv, io) => runTop(argv, io) },
  soak: { ...single(SOAK_COMMAND), run: (argv, io) => runSoakCommand(argv, io.out, io.err) },
  tour: {
    ...single(TOUR_COMMAND),
    run: (argv, io) =>
      runCommand(TOUR_COMMAND, argv, io, () => undefined, async () => {
        io.out('-- processes, links, monitors and exits');
        await runDemo((line) => io.out(line));
        io.out('\n-- supervisors, GenServers, supervised send, dead letters, managed monitors');
        await runServicesDemo((line) => io.out(line));
        return 0;
      }),
  },
  dlq: { summary: 'inspect and manage a SQLite dead letter store: list, show, retry, purge', usage: dlqUsage, run: (argv, io) => runDlq(argv, io) },
  audit: { ...single(AUDIT_COMMAND), run: (argv, io) => runAudit(argv, io) },
};

const NAMES = Object.keys(COMMANDS);
const WIDTH = Math.max(...NAMES.map((n) => n.length));

/** `keel help`: the commands, one line each. */
export const KEEL_USAGE = [
  'usage: keel <command> [options]',
  '',
  'commands:',
  ...NAMES.map((n) => `  ${n.padEnd(WIDTH + 1)} ${COMMANDS[n]!.summary}`),
  `  ${'help'.padEnd(WIDTH + 1)} this overview; keel help <command> prints the usage of a command`,
  '',
  'keel <command> --help (or -h) prints the usage of a command, keel --version the version of Keel.',
  'Options take their value as --name value or --name=value, and are given once each. Bad usage exits with code 2.',
].join('\n');

/** Keel's version, from the package.json of the package this file belongs to (read at run time). */
export function version(): string | undefined {
  // src/cli/main.ts and dist/cli/main.js are both two folders below the package's root
  const file = new URL('../../package.json', import.meta.url);
  try {
    const v = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
    return typeof v === 'string' ? v : undefined;
  } catch {
    return undefined;
  }
}

/** Where the live progress line goes: process.stdout, and whether it is a terminal (and how wide). */
export interface ProgressStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

/**
 * The demo's live progress line: on a terminal rewritten in place, cut to the terminal's width
 * (a line that wrapped would leave its first rows behind at every rewrite) and cleared to the end
 * of the line; otherwise one line a second at most.
 */
export function progressPrinter(stream: ProgressStream, now: () => number = Date.now): (line: string) => void {
  if (stream.isTTY === true) {
    return (line) => {
      const columns = stream.columns;
      const fits = columns !== undefined && Number.isSafeInteger(columns) && columns > 1 && line.length >= columns ? line.slice(0, columns - 1) : line;
      stream.write(`\r${fits}\x1b[K`);
    };
  }
  let printed = -Infinity;
  return (line) => {
    if (now() - printed < 1000) return;
    printed = now();
    stream.write(`${line}\n`);
  };
}

/**
 * Ends the process on a write error of `stream` (process.stdout) instead of leaving it to Node, which
 * dies of it as an unhandled 'error' event with a stack trace: EPIPE, once the reader of the output
 * is gone, exits at once, with the command's own exit code if it has one by then (`code()`: keel
 * audit | head still says 1, migration needed, to a shell that asks), else 0 (keel demo | head: a
 * command still running stops, as keel top does); another error is one line on `err` and exit 1.
 * A command that listens for the stream's errors itself (keel top) handles them instead.
 */
export function exitOnWriteError(stream: NodeJS.EventEmitter, err: (text: string) => void, exit: (code: number) => void, code: () => number | undefined): void {
  stream.on('error', (e: Error) => {
    if (stream.listenerCount('error') > 1) return;
    if ((e as { code?: unknown }).code === 'EPIPE') return exit(code() ?? 0);
    err(`keel: cannot write to stdout: ${e.message}`);
    exit(1);
  });
}

/**
 * The `keel` command line: runs the command `argv` names and answers its exit code (0 done, 1 a
 * check or an operation failed, 2 bad usage). `progress` gets the demo's live progress line.
 */
export async function runKeel(argv: readonly string[], io: Io, progress?: (line: string) => void): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      io.err(KEEL_USAGE);
      return 2;
    case '-h':
    case '--help':
      io.out(KEEL_USAGE);
      return 0;
    case '--version': {
      const v = version();
      if (v === undefined) {
        io.err(`keel: no version found in ${new URL('../../package.json', import.meta.url).pathname}`);
        return 1;
      }
      io.out(v);
      return 0;
    }
    case 'help':
      return help(rest, io);
  }
  const entry = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  if (entry === undefined) {
    const what = command.startsWith('-') ? `unknown option '${command}'${meantCommand(command.replace(/^--?/, '--'), ['--help', '--version'])}: keel takes a command, --help or --version` : `unknown command '${command}'${meantCommand(command, [...NAMES, 'help'])}`;
    io.err(`keel: ${what}; the commands are ${NAMES.join(', ')} and help (keel help prints what each does)`);
    return 2;
  }
  return entry.run(rest, io, progress);
}

/** `keel help [command [subcommand]]`. */
function help(argv: readonly string[], io: Io): number {
  // keel help top --help: the usage asked for twice
  const [command, sub, ...extra] = argv.filter((a, i) => i === 0 || (a !== '--help' && a !== '-h'));
  // keel help help: help is one of the commands the overview lists
  if (command === undefined || command === '--help' || command === '-h' || (command === 'help' && sub === undefined)) {
    io.out(KEEL_USAGE);
    return 0;
  }
  const entry = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
  const text = extra.length > 0 ? undefined : entry?.usage(sub);
  if (text === undefined) {
    const meant = entry === undefined && sub === undefined ? meantCommand(command, NAMES) : '';
    io.err(`keel help: no command '${argv.join(' ')}'${meant}; the commands are ${NAMES.slice(0, -1).join(', ')} and ${NAMES.at(-1)} (keel help dlq lists the dlq commands)`);
    return 2;
  }
  io.out(text);
  return 0;
}
