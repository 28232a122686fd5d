// The built CLI, as a user gets it: `npm run build` in a copy of the package (the worktree's own
// dist/ is left alone), then the executable itself, and `npm start`. Only what needs the built
// files and a child process is here: the mode bit, the shebang, the exit codes, --version, and
// that `npm start` rebuilds only what changed and passes its arguments on.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { usageOf } from '../../src/cli/args.js';
import { DEMO_COMMAND } from '../../src/cli/demoCommand.js';
import { KEEL_USAGE } from '../../src/cli/main.js';
import { OBSERVE_COMMAND } from '../../src/cli/observe.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PKG = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string; bin: { keel: string }; scripts: Record<string, string> };
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a program to its end (a failure guard of `timeoutMs`, never a wait). */
function run(file: string, args: readonly string[], cwd: string, timeoutMs = 240_000): Promise<Ran> {
  return new Promise((resolve) => {
    execFile(file, args, { cwd, timeout: timeoutMs, shell: process.platform === 'win32', maxBuffer: 64 * 1024 * 1024 }, (error, stdout, stderr) => {
      resolve({ code: error === null ? 0 : typeof error.code === 'number' ? error.code : null, stdout, stderr });
    });
  });
}

let copy: string;
let built: Ran;
const bin = (): string => path.join(copy, PKG.bin.keel);
const mtime = (file: string): number => fs.statSync(path.join(copy, file)).mtimeMs;

beforeAll(async () => {
  copy = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-package-'));
  for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) fs.copyFileSync(path.join(ROOT, file), path.join(copy, file));
  fs.cpSync(path.join(ROOT, 'src'), path.join(copy, 'src'), { recursive: true });
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  built = await run(NPM, ['run', 'build'], copy);
}, 300_000);

afterAll(() => {
  if (copy !== undefined) fs.rmSync(copy, { recursive: true, force: true });
});

describe('npm run build', () => {
  it('builds dist/ with the keel bin executable: the mode bit set, and run by its shebang', async () => {
    expect(built.code, `${built.stdout}\n${built.stderr}`).toBe(0);
    expect(PKG.bin.keel).toBe('./dist/cli/keel.js');
    const mode = fs.statSync(bin()).mode;
    expect((mode & 0o111).toString(8)).toBe('111');
    expect(fs.readFileSync(bin(), 'utf8').split('\n')[0]).toBe('#!/usr/bin/env node');
    // run as a program, not through node: Permission denied without the bit
    expect(await run(bin(), ['--version'], copy)).toEqual({ code: 0, stdout: `${PKG.version}\n`, stderr: '' });
  });

  it('starts from a clean dist/ (build) and sets the bit in a portable way (a node script, no chmod command)', () => {
    expect(PKG.scripts.build).toMatch(/^rm -rf dist && /);
    expect(PKG.scripts.build).toContain('npm run --silent build:bin');
    expect(PKG.scripts['build:bin']).toMatch(/^node -e /);
    expect(PKG.scripts.start).not.toContain('rm -rf');
  });
});

describe('the built keel', () => {
  it('exits 0 for help and --version, 2 for bad usage with one line on stderr', async () => {
    const [help, version, bare, unknown, badFlag, badValue, demoHelp, noStore] = await Promise.all([
      run(bin(), ['help'], copy),
      run(bin(), ['--version'], copy),
      run(bin(), [], copy),
      run(bin(), ['frobnicate'], copy),
      run(bin(), ['demo', '--workers=4', '--nope'], copy),
      run(bin(), ['demo', '--workers', 'NaN'], copy),
      run(bin(), ['demo', '--help'], copy),
      run(bin(), ['dlq', 'list'], copy),
    ]);
    expect(help).toEqual({ code: 0, stdout: `${KEEL_USAGE}\n`, stderr: '' });
    expect(version).toEqual({ code: 0, stdout: `${PKG.version}\n`, stderr: '' });
    expect(bare).toEqual({ code: 2, stdout: '', stderr: `${KEEL_USAGE}\n` });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/^keel: unknown command 'frobnicate'; [^\n]*\n$/);
    expect(badFlag).toEqual({
      code: 2,
      stdout: '',
      stderr: "keel demo: Unknown option '--nope'. keel demo takes --workers, --workflows, --chaos, --seed, --duration, --fail-rate, --json, --simulate, --observe, --nodes and --help\n",
    });
    expect(badValue).toEqual({ code: 2, stdout: '', stderr: 'keel demo: --workers must be a number, got "NaN"\n' });
    expect(demoHelp).toEqual({ code: 0, stdout: `${usageOf(DEMO_COMMAND)}\n`, stderr: '' });
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toContain('keel dlq list: --store <file> is missing');
  }, 60_000);
});

describe('npm start', () => {
  it('rebuilds nothing when dist/ is up to date, and passes its arguments to the demo', async () => {
    const before = mtime(PKG.bin.keel);
    const help = await run(NPM, ['start', '--', '--help'], copy);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain(`${usageOf(DEMO_COMMAND)}\n`);
    expect(mtime(PKG.bin.keel)).toBe(before);

    // npm start -- --observe is keel observe (its run until a signal: test/cli/observe.test.ts)
    const observe = await run(NPM, ['start', '--', '--observe', '--help'], copy);
    expect(observe.code).toBe(0);
    expect(observe.stdout).toContain(`${usageOf(OBSERVE_COMMAND)}\n`);

    const demo = await run(NPM, ['start', '--', '--workers=4', '--workflows', '3', '--chaos=0', '--simulate', '--json'], copy);
    expect(demo.code).toBe(0);
    const report = JSON.parse(demo.stdout.trim().split('\n').at(-1)!) as { options: { workers: number; workflows: number; chaos: number; simulate: boolean } };
    expect(report.options).toMatchObject({ workers: 4, workflows: 3, chaos: 0, simulate: true });
    expect(mtime(PKG.bin.keel)).toBe(before);
  }, 120_000);

  it('rebuilds when a source file changed since the build, and runs the new code', async () => {
    const file = path.join(copy, 'src', 'cli', 'demoCommand.ts');
    const text = fs.readFileSync(file, 'utf8');
    expect(text).toContain("'A coordinator runs workflows");
    fs.writeFileSync(file, text.replace("'A coordinator runs workflows", "'CHANGED: a coordinator runs workflows"));
    const help = await run(NPM, ['start', '--', '-h'], copy);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('  CHANGED: a coordinator runs workflows');
    expect((fs.statSync(bin()).mode & 0o111).toString(8)).toBe('111');
  }, 300_000);
});
