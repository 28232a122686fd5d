import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { usageOf } from '../../src/cli/args.js';
import { AUDIT_COMMAND } from '../../src/cli/audit.js';
import { DEMO_COMMAND, parseDemoArgs } from '../../src/cli/demoCommand.js';
import { DLQ_USAGE, dlqUsage } from '../../src/cli/dlq.js';
import { exitOnWriteError, KEEL_USAGE, progressPrinter, runKeel, TOUR_COMMAND, version } from '../../src/cli/main.js';
import { parseSoakArgs, SOAK_COMMAND } from '../../src/cli/soakCommand.js';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { expectKeelError, thrown } from '../support.js';

/** Runs `keel …` in this process; answers the exit code and what went to stdout and stderr. */
async function keel(...argv: string[]): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runKeel(argv, { out: (t) => out.push(t), err: (t) => err.push(t) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

const PACKAGE_VERSION = (JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

describe('keel (the command line)', () => {
  it('keel help, --help and -h print the overview of every command (exit 0); keel alone prints it on stderr (exit 2)', async () => {
    for (const argv of [['help'], ['--help'], ['-h'], ['help', '--help']]) expect(await keel(...argv), argv.join(' ')).toEqual({ code: 0, out: KEEL_USAGE, err: '' });
    expect(await keel()).toEqual({ code: 2, out: '', err: KEEL_USAGE });
    for (const command of ['demo', 'observe', 'top', 'soak', 'tour', 'dlq', 'audit', 'help']) expect(KEEL_USAGE).toContain(`\n  ${command} `);
    // every command's usage says what it does, not only its flags
    for (const spec of [DEMO_COMMAND, SOAK_COMMAND, TOUR_COMMAND, AUDIT_COMMAND]) expect(spec.description, spec.name).toMatch(/\w/);
    expect(KEEL_USAGE).toContain('--name value or --name=value');
  });

  it('keel help <command> prints the same usage as keel <command> --help, which exits 0', async () => {
    const usages: [string[], string][] = [
      [['demo'], usageOf(DEMO_COMMAND)],
      [['soak'], usageOf(SOAK_COMMAND)],
      [['tour'], usageOf(TOUR_COMMAND)],
      [['dlq'], DLQ_USAGE],
      [['audit'], usageOf(AUDIT_COMMAND)],
      [['dlq', 'list'], dlqUsage('list')!],
      [['dlq', 'retry'], dlqUsage('retry')!],
    ];
    for (const [command, usage] of usages) {
      expect(usage.startsWith(`usage: keel ${command.join(' ')}`), command.join(' ')).toBe(true);
      expect(await keel('help', ...command), command.join(' ')).toEqual({ code: 0, out: usage, err: '' });
      expect(await keel(...command, '--help'), command.join(' ')).toEqual({ code: 0, out: usage, err: '' });
      expect(await keel(...command, '-h'), command.join(' ')).toEqual({ code: 0, out: usage, err: '' });
    }
    // --help wins over anything else given with it: nothing runs
    expect(await keel('demo', '--workers', '3', '--bogus', '--help')).toEqual({ code: 0, out: usageOf(DEMO_COMMAND), err: '' });
    expect(await keel('soak', '--overload', '--help')).toEqual({ code: 0, out: usageOf(SOAK_COMMAND), err: '' });
  });

  it('keel help of no such command is bad usage (exit 2)', async () => {
    for (const argv of [['help', 'nope'], ['help', 'demo', 'list'], ['help', 'dlq', 'list', 'more'], ['help', 'dlq', 'frobnicate']]) {
      const r = await keel(...argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.out).toBe('');
      expect(r.err).toBe(`keel help: no command '${argv.slice(1).join(' ')}'; the commands are demo, observe, top, soak, tour, dlq and audit (keel help dlq lists the dlq commands)`);
    }
  });

  it('keel tour runs the tour (exit 0), not its usage: a command whose arguments convert to undefined still runs', async () => {
    const r = await keel('tour');
    expect(r.code).toBe(0);
    expect(r.err).toBe('');
    const lines = r.out.split('\n');
    expect(lines[0]).toBe('-- processes, links, monitors and exits');
    expect(lines).toContain('crashes seen and recovered: 1; jobs unanswered: 0');
    expect(lines).toContain('-- supervisors, GenServers, supervised send, dead letters, managed monitors');
    expect(lines.at(-1)).toBe('node demo-otp shut down');
  });

  it('keel --version prints the version of package.json, read at run time', async () => {
    expect(PACKAGE_VERSION).toMatch(/^\d+\.\d+\.\d+/);
    expect(version()).toBe(PACKAGE_VERSION);
    expect(await keel('--version')).toEqual({ code: 0, out: PACKAGE_VERSION, err: '' });
  });

  it('an unknown command or option is one line on stderr naming the commands (exit 2)', async () => {
    expect(await keel('frobnicate')).toEqual({
      code: 2,
      out: '',
      err: "keel: unknown command 'frobnicate'; the commands are demo, observe, top, soak, tour, dlq, audit and help (keel help prints what each does)",
    });
    expect(await keel('--workers=4')).toEqual({
      code: 2,
      out: '',
      err: "keel: unknown option '--workers=4': keel takes a command, --help or --version; the commands are demo, observe, top, soak, tour, dlq, audit and help (keel help prints what each does)",
    });
  });

  it('says which command or option a misspelt one most likely meant', async () => {
    const rest = 'the commands are demo, observe, top, soak, tour, dlq, audit and help (keel help prints what each does)';
    expect(await keel('dmeo')).toEqual({ code: 2, out: '', err: `keel: unknown command 'dmeo' (did you mean demo?); ${rest}` });
    expect(await keel('--verison')).toEqual({ code: 2, out: '', err: `keel: unknown option '--verison' (did you mean --version?): keel takes a command, --help or --version; ${rest}` });
    expect((await keel('help', 'soka')).err).toBe("keel help: no command 'soka' (did you mean soak?); the commands are demo, observe, top, soak, tour, dlq and audit (keel help dlq lists the dlq commands)");
    expect((await keel('dlq', 'lsit', '--store', 'x.db')).err).toBe("keel dlq: unknown command 'lsit' (did you mean list?): the dlq commands are list, show, retry and purge (keel dlq --help prints the usage)");
    expect((await keel('demo', '--worker', '2')).err).toBe("keel demo: Unknown option '--worker' (did you mean --workers?). keel demo takes --workers, --workflows, --chaos, --seed, --duration, --fail-rate, --json, --simulate, --observe, --nodes and --help");
  });

  it("takes no object's own property name for a command: __proto__, constructor, toString", async () => {
    for (const name of ['__proto__', 'constructor', 'toString']) {
      expect((await keel(name)).code, name).toBe(2);
      expect((await keel('help', name)).code, name).toBe(2);
      expect((await keel('dlq', name, '--store', 'x.db')).err, name).toBe(`keel dlq: unknown command '${name}': the dlq commands are list, show, retry and purge (keel dlq --help prints the usage)`);
    }
  });

  it('keel help help prints the overview, where help is listed as a command (exit 0)', async () => {
    expect(await keel('help', 'help')).toEqual({ code: 0, out: KEEL_USAGE, err: '' });
  });

  it('keel help <command> --help (or -h) prints the usage of the command, as keel help <command> does', async () => {
    expect(await keel('help', 'tour', '--help')).toEqual({ code: 0, out: usageOf(TOUR_COMMAND), err: '' });
    expect(await keel('help', 'dlq', '-h')).toEqual({ code: 0, out: DLQ_USAGE, err: '' });
    expect(await keel('help', 'dlq', 'list', '--help')).toEqual({ code: 0, out: dlqUsage('list'), err: '' });
  });

  it("--help given a value is refused as taking none, not as an unknown option that meant itself; -h in a group of short options is -h", async () => {
    expect(await keel('tour', '--help=yes')).toEqual({ code: 2, out: '', err: "keel tour: Option '--help' does not take an argument" });
    expect(await keel('audit', '.', '--help=1')).toEqual({ code: 2, out: '', err: "keel audit: Option '--help' does not take an argument" });
    expect(await keel('tour', '-hh')).toEqual({ code: 0, out: usageOf(TOUR_COMMAND), err: '' });
  });

  it('every command names an unknown option with its valid ones, on stderr (exit 2)', async () => {
    const cases: [string[], string][] = [
      [['demo', '--workers=4', '--nope'], "keel demo: Unknown option '--nope'. keel demo takes --workers, --workflows, --chaos, --seed, --duration, --fail-rate, --json, --simulate, --observe, --nodes and --help"],
      [['soak', '--nope'], "keel soak: Unknown option '--nope'. keel soak takes --duration, --rate, --kill, --seed, --json, --simulate, --overload and --help"],
      [['soak', '--overload', '--nope=1'], "keel soak: Unknown option '--nope'. keel soak takes --duration, --rate, --kill, --seed, --json, --simulate, --overload and --help"],
      [['tour', '--fast'], "keel tour: Unknown option '--fast'. keel tour takes no options (only --help)"],
      [['tour', 'now'], "keel tour: Unexpected argument 'now': keel tour takes no arguments, only options"],
      [['dlq', 'show', '1', '--store', 'x.db', '--all'], "keel dlq show: Unknown option '--all'. keel dlq show takes --store, --json and --help"],
      [['audit', '.', '--json'], "keel audit: Unknown option '--json'. keel audit takes --format, --fix and --help"],
    ];
    for (const [argv, err] of cases) expect(await keel(...argv), argv.join(' ')).toEqual({ code: 2, out: '', err });
  });

  it('refuses a number that is not one, negative, not finite or too large, naming the flag (exit 2), before anything runs', async () => {
    const cases: [string[], string][] = [
      [['demo', '--workers', 'NaN'], 'keel demo: --workers must be a number, got "NaN"'],
      [['demo', '--workers=four'], 'keel demo: --workers must be a number, got "four"'],
      [['demo', '--workers', '-4'], 'keel demo: expected `--workers` to be an integer from 1 to 10000, got -4'],
      [['demo', '--workers', '1e999'], 'keel demo: expected `--workers` to be a finite number, got "1e999"'],
      [['demo', '--workers', '100001'], 'keel demo: expected `--workers` to be an integer from 1 to 10000, got 100001'],
      [['demo', '--workflows', '1e7'], 'keel demo: expected `--workflows` to be an integer from 1 to 1000000, got 10000000'],
      // a seed past 2^32 - 1 would wrap to another seed's run
      [['demo', '--seed', '4294967296'], 'keel demo: expected `--seed` to be an integer from 0 to 4294967295, got 4294967296'],
      [['demo', '--seed=-1'], 'keel demo: expected `--seed` to be an integer from 0 to 4294967295, got -1'],
      [['demo', '--chaos', '-0.1'], 'keel demo: expected `--chaos` to be a rate from 0 to 1, got -0.1'],
      [['demo', '--fail-rate', '1.5'], 'keel demo: expected `--fail-rate` to be a rate from 0 to 1, got 1.5'],
      [['demo', '--duration', '1e9'], 'keel demo: expected `--duration` to be a positive number of seconds, at most 86400, got 1000000000'],
      [['demo', '--duration', '-5'], 'keel demo: expected `--duration` to be a positive number of seconds, at most 86400, got -5'],
      [['soak', '--seed', '4294967296'], 'keel soak: expected `--seed` to be an integer from 0 to 4294967295, got 4294967296'],
      [['soak', '--duration', '1e7'], 'keel soak: expected `--duration` to be at most 604800 seconds (a week), got 10000000'],
      [['soak', '--rate=-5'], 'keel soak: expected `--rate` to be a positive number of messages per second, got -5'],
      [['soak', '--overload', '--rate', 'NaN'], 'keel soak: --rate must be a number, got "NaN"'],
      // --rate's help: at most 2e9 messages over the run, with --overload too (per producer); found in review
      [['soak', '--overload', '--rate', '1e10'], 'keel soak: expected `--rate` to be at most 2e9 messages over the run (rate x duration), got 600000000000'],
      [['soak', '--overload', '--rate', '1e8', '--duration', '21'], 'keel soak: expected `--rate` to be at most 2e9 messages over the run (rate x duration), got 2100000000'],
      [['soak', '--overload', '--seed', '1e999'], 'keel soak: expected `--seed` to be a finite number, got "1e999"'],
      // a run too small: worded as the 2e9 one, with rate x duration as what was given; it read "expected `--rate` to
      // be with --duration, at least 4 messages ...", and named the default --rate (got 100000) for a tiny --duration (found in review)
      [['soak', '--rate', '3', '--duration', '1'], 'keel soak: expected `--rate` to be at least 4 messages over the run (rate x duration), one per producer: a soak that sends nothing proves nothing, got 3'],
      [['soak', '--duration', '0.00001'], 'keel soak: expected `--rate` to be at least 4 messages over the run (rate x duration), one per producer: a soak that sends nothing proves nothing, got 1'],
      [['soak', '--overload', '--rate', '19', '--duration', '1'], 'keel soak: expected `--rate` to be at least 20 messages over the run (rate x duration), per producer: fewer overflow no mailbox, got 19'],
      [['dlq', 'list', '--store', 'x.db', '--limit', '1e999'], 'keel dlq list: expected `--limit` to be an integer from 1 to 1000000, got "1e999"'],
    ];
    for (const [argv, err] of cases) expect(await keel(...argv), argv.join(' ')).toEqual({ code: 2, out: '', err });
  });

  it('every command refuses an option given twice, value or boolean, --x=y or --x y, naming it, on stderr (exit 2), before anything runs', async () => {
    const twice = (command: string, flag: string): string => `keel ${command}: Option '--${flag}' given twice: give it once`;
    const cases: [string[], string][] = [
      [['dlq', 'list', '--store', 'a.db', '--store=b.db'], twice('dlq list', 'store')],
      [['dlq', 'list', '--store', 'a.db', '--json', '--json'], twice('dlq list', 'json')],
      [['top', '--url', 'http://127.0.0.1:1/?token=x', '--json', '--json'], twice('top', 'json')],
      [['top', '--url=http://127.0.0.1:1/?token=x', '--limit=5', '--limit', '6', '--json'], twice('top', 'limit')],
      // each case below would run (fix files, serve, run a demo or a soak of an hour) if the repeat were
      // taken: a bad value or a missing folder in it makes such a build fail here at once instead
      [['audit', 'no-such-folder', '--fix', '--fix'], twice('audit', 'fix')],
      [['observe', '--writable', '--port', 'nope', '--writable'], twice('observe', 'writable')],
      [['demo', '--seed', '1', '--workers', '2', '--seed=nope'], twice('demo', 'seed')],
      // the run of an hour a `--duration 5 --duration 3600` started, not a word said
      [['soak', '--duration', '3600', '--duration', 'nope'], twice('soak', 'duration')],
      [['soak', '--duration=3600', '--duration', 'nope'], twice('soak', 'duration')],
      [['soak', '--overload', '--json', '--duration', 'nope', '--overload'], twice('soak', 'overload')],
    ];
    for (const [argv, err] of cases) expect(await keel(...argv), argv.join(' ')).toEqual({ code: 2, out: '', err });
  });

  it('keel demo and keel soak take --x=y as well as --x y', () => {
    expect(parseDemoArgs(['--workers=4', '--workflows=10', '--chaos=0.5', '--seed=3', '--duration=5', '--fail-rate=0', '--json', '--simulate'])).toEqual({
      workers: 4, workflows: 10, chaos: 0.5, seed: 3, duration: 5, failRate: 0, json: true, simulate: true,
    });
    expect(parseDemoArgs(['--workers', '4', '--fail-rate', '0'])).toEqual(parseDemoArgs(['--workers=4', '--fail-rate=0']));
    expect(parseDemoArgs(['--help'])).toBeUndefined();
    expect(parseSoakArgs(['--overload', '--rate=500', '--seed=2', '--duration=1'])).toEqual({ overload: true, options: { rate: 500, seed: 2, duration: 1 } });
    expect(parseSoakArgs(['--kill=0.2'])).toEqual({ overload: false, options: { kill: 0.2 } });
    expect(parseSoakArgs(['-h'])).toBeUndefined();
    expectKeelError(thrown(() => parseSoakArgs(['--overload', '--kill=0.1'])), 'ERR_INVALID_ARGUMENT', '--kill does not apply to --overload');
  });

  it("keel demo --help says what a seed fixes and what it does not, and that --simulate replays byte for byte", () => {
    const help = usageOf(DEMO_COMMAND).replace(/\s+/g, ' ');
    expect(help).toContain('--seed fixes the workflows (their tasks, costs and bad inputs) and the chaos schedule');
    expect(help).toContain('not the real-time interleavings');
    expect(help).toContain('the same seed gives other counts (kills, reassigned tasks, dead letters) from run to run');
    expect(help).toContain('With --simulate the run is on virtual time with deterministic scheduling, and the same --seed prints the same report, byte for byte');
    expect(help).toContain('docs/agents/demo.md');
    const soak = usageOf(SOAK_COMMAND).replace(/\s+/g, ' ');
    expect(soak).toContain('--seed fixes what the producers send and whom the chaos picks, not the real-time interleavings');
  });

  it('keel demo --simulate with a seed prints the same report twice, byte for byte, legend and verdict included; another seed another', async () => {
    const argv = ['demo', '--simulate', '--seed=7', '--workers', '4', '--workflows=40', '--chaos', '0.4'];
    const first = await keel(...argv);
    expect(first.code).toBe(0);
    expect(first.err).toBe('');
    const lines = first.out.split('\n');
    const published = /^ {2}signals {8}published (\d+),/m.exec(first.out)![1];
    expect(Number(published)).toBeGreaterThan(40);
    expect(lines.at(-1)).toBe(`verdict: ok: all 40 workflows, 40 receipts and ${published} signals accounted for, no monitor leaked`);
    expect(lines.at(-2)).toBe('more: docs/agents/demo.md explains each line and term of this report');
    expect(await keel(...argv)).toEqual(first);
    const other = await keel(...argv.map((a) => (a === '--seed=7' ? '--seed=8' : a)));
    expect(other.code).toBe(0);
    expect(other.out).not.toBe(first.out);
  }, 60_000);
});

describe('keel (the built keel, a child process) writing into a pipe its reader closed', () => {
  const builtKeel = useBuiltPackage();
  const fork = useChildren();

  it('exits 0 with nothing on stderr (keel observe | head), instead of dying of an unhandled EPIPE with a stack trace', async () => {
    const child = fork(fileURLToPath(new URL('cli/keel.js', builtKeel())), ['observe', '--seed', '5']);
    let stdout = '';
    const linked = new Promise<void>((resolve) => {
      child.process.stdout!.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (/^observer: /m.test(stdout)) resolve();
      });
    });
    await Promise.race([linked, child.exited.then((e) => Promise.reject(new Error(`keel observe exited (${e.code}, ${e.signal}):\n${stdout}\n${child.stderr()}`)))]);
    // the reader goes away: the next progress line (once a second when stdout is no terminal) meets EPIPE
    child.process.stdout!.destroy();
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.stderr()).toBe('');
  }, 60_000);
});

describe('keel (the built keel, a child process) writing into a stderr its reader closed', () => {
  const builtKeel = useBuiltPackage();
  const fork = useChildren();

  it("keel soak goes on, prints its report on stdout and exits with the report's code (keel soak 2>&1 >report | head): it died of the unhandled EPIPE of a progress line, exit 1 and no report", async () => {
    const child = fork(fileURLToPath(new URL('cli/keel.js', builtKeel())), ['soak', '--duration', '5', '--rate', '50']);
    let stdout = '';
    child.process.stdout!.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
    });
    // the reader of stderr goes away after the soak's first progress line: the next ones (one a second) meet EPIPE
    await new Promise((resolve) => child.process.stderr!.once('data', resolve));
    child.process.stderr!.destroy();
    const { code, signal } = await child.closed;
    const last = stdout.trimEnd().split('\n').at(-1);
    expect(last).toMatch(/^ {2}checks {8}(all passed|FAILED: .+)$/);
    expect({ code, signal }).toEqual({ code: last === '  checks        all passed' ? 0 : 1, signal: null });
  }, 60_000);
});

describe('exitOnWriteError', () => {
  const epipe = (): Error => Object.assign(new Error('write EPIPE'), { code: 'EPIPE' });

  it("on EPIPE exits with the command's own exit code once it has one (keel audit | head: 1, migration needed), else 0 at once", () => {
    const exits: number[] = [];
    const command: { code?: number } = {};
    const stream = new EventEmitter();
    exitOnWriteError(stream, () => undefined, (c) => exits.push(c), () => command.code);
    stream.emit('error', epipe()); // a long command (keel demo | head) has no code yet: it stops, 0
    command.code = 1;
    stream.emit('error', epipe()); // a command that is done (keel audit | head) keeps its code
    expect(exits).toEqual([0, 1]);
  });

  it('on another write error says so on err and exits 1', () => {
    const exits: number[] = [];
    const errors: string[] = [];
    const stream = new EventEmitter();
    exitOnWriteError(stream, (t) => errors.push(t), (c) => exits.push(c), () => 0);
    stream.emit('error', Object.assign(new Error('write ENOSPC'), { code: 'ENOSPC' }));
    expect({ exits, errors }).toEqual({ exits: [1], errors: ['keel: cannot write to stdout: write ENOSPC'] });
  });
});

describe("the demo's live progress line", () => {
  const LINE = 'workflows 12/300  kills 3  restarts 3  signals 80  receipts 12  dead letters 0';

  it('on a terminal narrower than the line: cut to one column less than its width and cleared to the end, so that rewriting it in place leaves no wrapped rows behind', () => {
    const writes: string[] = [];
    const print = progressPrinter({ isTTY: true, columns: 20, write: (t) => writes.push(t) });
    print(LINE);
    print(LINE.replace('12/300', '13/300'));
    expect(writes).toEqual(['\rworkflows 12/300  k\x1b[K', '\rworkflows 13/300  k\x1b[K']);
  });

  it('on a wide terminal, whole; when not a terminal, a line a second at most', () => {
    const writes: string[] = [];
    progressPrinter({ isTTY: true, columns: 500, write: (t) => writes.push(t) })(LINE);
    expect(writes).toEqual([`\r${LINE}\x1b[K`]);
    const lines: string[] = [];
    let t = 5000;
    const print = progressPrinter({ isTTY: false, write: (x) => lines.push(x) }, () => t);
    print('a');
    t = 5999;
    print('b');
    t = 6000;
    print('c');
    expect(lines).toEqual(['a\n', 'c\n']);
  });
});
