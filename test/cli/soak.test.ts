// `keel soak` stopped early: the first Ctrl-C (SIGINT or SIGTERM) ends the load, and the soak still
// drains, accounts for every message sent and reports; a second quits at once. Either way the
// temporary directory of its dead letter store goes.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { CHAOS_NAME, count, runSoak, soakPassed, type SoakReport } from '../../src/cli/soak.js';
import type { ExitReason, Node } from '../../src/index.js';
import { useBuiltPackage } from '../childProcesses.js';

describe('runSoak with a stop signal', () => {
  it('ends the load when the signal aborts, then accounts for every message sent and reports it as interrupted', async () => {
    const stop = new AbortController();
    const lines: string[] = [];
    // the heap sampler's first sample (after its warm-up, a few seconds into the load) aborts it
    const report = await runSoak({ duration: 10, rate: 5000, seed: 2, simulate: true, stop: stop.signal, gc: () => stop.abort() }, (l) => lines.push(l), () => {});
    expect(stop.signal.aborted).toBe(true);
    expect(report.load.interrupted).toBe(true);
    expect(report.load.reached).toBe(false);
    expect(report.load.seconds).toBeGreaterThan(0);
    expect(report.load.seconds).toBeLessThan(10);
    expect(report.load.sent).toBeLessThan(report.load.target);
    expect(report.load.sent).toBe(report.messages.sent);
    expect(report.messages.unaccounted).toBe(0);
    expect(report.messages.sent).toBe(report.messages.handled + report.messages.deadLettered + report.messages.failedReported + report.messages.droppedReported);
    expect(soakPassed(report)).toBe(true);
    expect(lines.find((l) => l.startsWith('  load '))).toContain('(interrupted: the load was stopped early)');
  }, 60_000);

  it('a signal aborted before the start sends nothing and still reports', async () => {
    const stop = new AbortController();
    stop.abort();
    const report = await runSoak({ duration: 10, rate: 5000, seed: 2, simulate: true, json: true, stop: stop.signal }, () => {}, () => {});
    expect(report.load).toMatchObject({ sent: 0, rate: 0, reached: false, interrupted: true });
    expect(report.messages.sent).toBe(0);
    expect(soakPassed(report)).toBe(true);
  }, 60_000);

  it('a signal that aborts once the load is over (while it drains) cuts nothing short: the report does not say interrupted (found in review)', async () => {
    const stop = new AbortController();
    const lines: string[] = [];
    // a 1 s run ends before the heap's 2 s warm-up: the sampler's one full GC is its end sample, once
    // the load has drained, before the accounting (after the load, as this test needs)
    const report = await runSoak({ duration: 1, rate: 2000, seed: 2, simulate: true, stop: stop.signal, gc: () => stop.abort() }, (l) => lines.push(l), () => {});
    expect(stop.signal.aborted).toBe(true);
    expect(report.load).toEqual({ seconds: 1, target: 2000, sent: 2000, rate: 2000, reached: true });
    expect(soakPassed(report)).toBe(true);
    expect(lines.find((l) => l.startsWith('  load '))).toBe('  load          sent 2,000 of 2,000 in 1.0 s: 2,000 msg/s (target reached)');
  }, 60_000);

  it('prints the kill fraction as a percentage without a float artefact (found in review)', async () => {
    const stop = new AbortController();
    stop.abort();
    const lines: string[] = [];
    await runSoak({ duration: 1, rate: 100, kill: 0.07, seed: 1, simulate: true, stop: stop.signal }, (l) => lines.push(l), () => {});
    expect(lines.find((l) => l.startsWith('keel soak: '))).toBe(
      'keel soak: 1 s at 100 msg/s, killing 7% of the 60 workers a second, seed 1, on virtual time (simulated: the same --seed replays this report byte for byte)',
    );
  }, 60_000);
});

describe('runSoak when its chaos process ends early', () => {
  /**
   * A 3 s simulated soak whose chaos process is sent an exit signal of `reason` through the node at
   * the heap sampler's first sample (2 s into the load, after its warm-up), as an operator's `exit`
   * would; its kills owed after that are neither struck nor missed.
   */
  async function chaosEnded(reason: ExitReason | 'kill'): Promise<{ report: SoakReport; lines: string[] }> {
    let node: Node | undefined;
    let ended = false;
    const lines: string[] = [];
    const endChaos = (): void => {
      if (ended) return; // the sampler's end sample runs the gc again
      ended = true;
      node!.exit(node!.registry.whereis(CHAOS_NAME)!, reason);
    };
    const report = await runSoak({ duration: 3, rate: 2000, seed: 2, simulate: true, onNode: (n) => (node = n), gc: endChaos }, (l) => lines.push(l), () => {});
    expect(ended).toBe(true);
    return { report, lines };
  }

  // before the fix the soak awaited a promise only the chaos's last tick resolved: killed before it,
  // the chaos never resolved it, and the soak hung after the load, with no report
  it('a chaos process killed mid-run: the soak still reports, and says the chaos ended early and why', async () => {
    const { report, lines } = await chaosEnded('kill');
    expect(report.chaos.endedEarly).toBe('killed');
    // 10% of 60 workers a second for 3 s: 18 kills owed; the kill (the sampler's timer at 2 s) runs
    // before the chaos's tick at 2 s, so it had struck those due by its tick at 1.99 s: 11
    expect(report.chaos.kills + report.chaos.missed).toBe(11);
    expect(report.chaos.owed).toBe(18);
    expect(lines.filter((l) => l.startsWith('  chaos ended'))).toEqual(['  chaos ended   early (exit reason: killed): it struck or missed 11 of the 18 kills the load owed']);
    // the rest of the soak holds: every message accounted, every kill restarted
    expect(report.messages.unaccounted).toBe(0);
    expect(soakPassed(report)).toBe(true);
  }, 30_000);

  it('a chaos process that dies of an error (as of a crash of its own code) is reported with the error as its reason', async () => {
    const { report, lines } = await chaosEnded(new Error('the chaos crashed'));
    expect(report.chaos.endedEarly).toBe('Error: the chaos crashed');
    expect(lines.filter((l) => l.startsWith('  chaos ended'))).toEqual(['  chaos ended   early (exit reason: Error: the chaos crashed): it struck or missed 11 of the 18 kills the load owed']);
  }, 30_000);

  it('a chaos process that runs to its last tick is not reported as ended early', async () => {
    const report = await runSoak({ duration: 1, rate: 2000, seed: 2, simulate: true, json: true }, () => {}, () => {});
    expect(report.chaos.endedEarly).toBeUndefined();
    expect(report.chaos.kills + report.chaos.missed).toBe(6);
  }, 30_000);
});

describe('keel soak and Ctrl-C (the built keel, a child process)', () => {
  const builtKeel = useBuiltPackage();
  const dirs: string[] = [];
  const children: ReturnType<typeof spawn>[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  /** `keel soak <args>` with a temporary directory of its own (TMPDIR), and a way to await its lines. */
  function soak(args: readonly string[] = ['--duration', '120', '--rate', '2000']) {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-soak-test-'));
    dirs.push(tmp);
    const entry = fileURLToPath(new URL('cli/keel.js', builtKeel()));
    const child = spawn(process.execPath, [entry, 'soak', ...args], { env: { ...process.env, TMPDIR: tmp }, stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let stdout = '';
    let stderr = '';
    const waiters: { test: RegExp; resolve: () => void }[] = [];
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => void (stdout += chunk));
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
      for (const w of waiters.splice(0)) (w.test.test(stderr) ? w.resolve : () => waiters.push(w))();
    });
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    /** Resolves once stderr matches `test` (rejects if the child ends first). */
    const told = (test: RegExp): Promise<void> =>
      Promise.race([
        new Promise<void>((resolve) => (test.test(stderr) ? resolve() : waiters.push({ test, resolve }))),
        exited.then((e) => Promise.reject(new Error(`keel soak ended (${e.code}, ${e.signal}):\n${stdout}\n${stderr}`))),
      ]);
    return { tmp, child, exited, told, stdout: () => stdout, stderr: () => stderr };
  }

  it('the first Ctrl-C ends the load: the soak drains, reports every message accounted for, and removes its directory', async () => {
    const s = soak();
    await s.told(/^ {2}1 s: sent \d/m); // a second of load has run
    expect(fs.readdirSync(s.tmp)).toHaveLength(1); // its keel-soak-* directory, with the dead letter store
    s.child.kill('SIGINT');
    const { code, signal } = await s.exited;
    expect(signal).toBe(null);
    expect(s.stderr()).toContain('keel soak: the load stops now; draining and accounting for every message sent (again to quit at once)');
    const out = s.stdout();
    expect(out).toContain('(interrupted: the load was stopped early)');
    expect(out).toMatch(/unaccounted 0 {2}\[ok\]/);
    expect(code).toBe(out.includes('  checks        all passed') ? 0 : 1);
    expect(fs.readdirSync(s.tmp)).toEqual([]);
  }, 120_000);

  it('bad usage of the built keel soak is one line on stderr naming what is wrong, nothing on stdout, exit 2, no stack trace', async () => {
    const entry = fileURLToPath(new URL('cli/keel.js', builtKeel()));
    const cases: [string[], string][] = [
      [['--duration', '-1'], 'expected `--duration` to be a positive number of seconds, got -1'],
      [['--duration', '0'], 'expected `--duration` to be a positive number of seconds, got 0'],
      [['--duration', 'NaN'], '--duration must be a number, got "NaN"'],
      [['--duration', '1e999'], 'expected `--duration` to be a finite number, got "1e999"'],
      [['--duration=1e10'], 'expected `--duration` to be at most 604800 seconds (a week), got 10000000000'],
      [['--duration='], '--duration must be a number, got ""'],
      [['--rate', '-0'], 'expected `--rate` to be a positive number of messages per second, got 0'],
      [['--rate', '0.5', '--duration', '1'], 'expected `--rate` to be at least 4 messages over the run (rate x duration), one per producer: a soak that sends nothing proves nothing, got 0.5'],
      [['--rate='], '--rate must be a number, got ""'],
      [['--kill', '1.5'], 'expected `--kill` to be a fraction of the workers per second, from 0 to 1, got 1.5'],
      [['--kill='], '--kill must be a number, got ""'],
      [['--seed', '0.5'], 'expected `--seed` to be an integer >= 0, got 0.5'],
      [['--seed', '-1'], 'expected `--seed` to be an integer >= 0, got -1'],
      [['--bogus'], "Unknown option '--bogus'. keel soak takes --duration, --rate, --kill, --seed, --json, --simulate, --overload and --help"],
      [['--rat', '5'], "Unknown option '--rat' (did you mean --rate?). keel soak takes --duration, --rate, --kill, --seed, --json, --simulate, --overload and --help"],
      [['now'], "Unexpected argument 'now': keel soak takes no arguments, only options"],
      [['--', '--rate', '5'], "Unexpected argument '--rate': keel soak takes no arguments, only options"],
      [['--json=yes'], "Option '--json' does not take an argument"],
      [['--rate'], "Option '--rate <value>' argument missing: give it as --rate <msg/s> or --rate=<msg/s>"],
      [['--overload', '--kill', '0.1'], '--kill does not apply to --overload (its consumers are not killed)'],
      [['--overload', '--rate', '19', '--duration', '1'], 'expected `--rate` to be at least 20 messages over the run (rate x duration), per producer: fewer overflow no mailbox, got 19'],
      [['--overload', '--duration', '-5'], 'expected `--duration` to be a positive number of seconds, got -5'],
    ];
    // all at once: each is a short-lived process, and one after the other they took seconds
    const runs = cases.map(async ([args]) => {
      const child = spawn(process.execPath, [entry, 'soak', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.push(child);
      let stdout = '';
      let stderr = '';
      child.stdout.setEncoding('utf8').on('data', (chunk: string) => void (stdout += chunk));
      child.stderr.setEncoding('utf8').on('data', (chunk: string) => void (stderr += chunk));
      const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
      return { args, code, stdout, stderr };
    });
    expect(await Promise.all(runs)).toEqual(cases.map(([args, message]) => ({ args, code: 2, stdout: '', stderr: `keel soak: ${message}\n` })));
  }, 120_000);

  /** `keel soak <args> --simulate --json` of the built keel with a 128 MB heap: its exit code and its JSON report. */
  async function smallHeap<R>(args: string[]): Promise<{ code: number | null; report: R }> {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-soak-test-'));
    dirs.push(tmp);
    const entry = fileURLToPath(new URL('cli/keel.js', builtKeel()));
    const child = spawn(process.execPath, ['--max-old-space-size=128', entry, 'soak', ...args, '--simulate', '--json'], {
      env: { ...process.env, TMPDIR: tmp },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => void (stdout += chunk));
    child.stderr.resume();
    const code = await new Promise<number | null>((resolve) => child.once('close', (c) => resolve(c)));
    return { code, report: JSON.parse(stdout) as R };
  }

  it('a rate no machine sends is capped per tick, not sent in one burst that runs the heap out (found in review)', async () => {
    // --rate 2e9 for 10 ms: 5,000,000 sends per producer were due at the first tick, all sent in one turn (a V8 OOM, exit 134)
    const { code, report } = await smallHeap<SoakReport>(['--rate', '2e9', '--duration', '0.01']);
    expect(code).toBe(0);
    expect(report.load).toMatchObject({ target: 20_000_000, reached: false, sent: 40_000 });
    expect(report.messages.unaccounted).toBe(0);
  }, 120_000);

  it("--overload caps a tick's sends too: a rate no machine sends does not run the heap out (found in review)", async () => {
    // --rate 2e8 for 10 ms: 50,000,000 sends per lane were due at the first tick, all sent in one turn (a V8 OOM, exit 134)
    const { code, report } = await smallHeap<{ lanes: { sent: number; unaccounted: number }[] }>(['--overload', '--rate', '2e8', '--duration', '0.01']);
    expect(code).toBe(0);
    expect(report.lanes.map((l) => [l.sent, l.unaccounted])).toEqual(report.lanes.map(() => [10_000, 0]));
  }, 120_000);

  it('a second Ctrl-C quits at once with 130, and the directory still goes', async () => {
    const s = soak();
    await s.told(/^ {2}1 s: sent \d/m);
    s.child.kill('SIGINT');
    await s.told(/the load stops now/);
    s.child.kill('SIGINT');
    expect(await s.exited).toEqual({ code: 130, signal: null });
    expect(s.stderr()).toContain('keel soak: stopped before its report');
    expect(fs.readdirSync(s.tmp)).toEqual([]);
  }, 120_000);

  // --overload took no signal: the first Ctrl-C killed it at once (130), with no report
  for (const [signal, name] of [['SIGINT', 'Ctrl-C'], ['SIGTERM', 'SIGTERM']] as const) {
    it(`--overload: the first ${name} ends the load, the consumers drain, and it reports every message accounted for (found in review)`, async () => {
      const s = soak(['--overload', '--duration', '120', '--rate', '2000']);
      await s.told(/^ {2}1 s: sent \d/m); // a second of load has run
      s.child.kill(signal);
      const { code, signal: killedBy } = await s.exited;
      expect(killedBy).toBe(null);
      expect(s.stderr()).toContain('keel soak: the load stops now; draining and accounting for every message sent (again to quit at once)');
      const out = s.stdout();
      expect(out).toMatch(/^ {2}interrupted {3}the load was stopped early, after \d+\.\d s of 120 s$/m);
      for (const policy of ['reject', 'drop_newest', 'drop_oldest']) expect(out).toMatch(new RegExp(`^ {2}${policy} +sent [\\d,]+ = handled [\\d,]+ \\+ dropped [\\d,]+ \\(each a keel.message.dropped event\\); unaccounted 0 {2}\\[ok\\]$`, 'm'));
      expect(code).toBe(out.includes('  checks        all passed') ? 0 : 1);
    }, 120_000);
  }

  it('--overload: a second Ctrl-C quits at once with 130', async () => {
    const s = soak(['--overload', '--duration', '120', '--rate', '2000']);
    await s.told(/^ {2}1 s: sent \d/m);
    s.child.kill('SIGINT');
    await s.told(/the load stops now/);
    s.child.kill('SIGINT');
    expect(await s.exited).toEqual({ code: 130, signal: null });
    expect(s.stderr()).toContain('keel soak: stopped before its report');
  }, 120_000);
});

describe('count, the reports\' numbers', () => {
  it('groups the thousands of the integer part only: a fractional --rate is not split after its point', () => {
    expect(count(1234.5678)).toBe('1,234.5678');
    expect(count(1234567)).toBe('1,234,567');
    expect(count(0.0001234)).toBe('0.0001234');
    expect(count(-1234)).toBe('-1,234');
  });
});
