// The doc-test runner itself, on a fixture whose blocks pass and fail in known ways: a runner that
// cannot fail would pass every doc.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  blockName,
  checkBlocks,
  type CheckResult,
  compareOutput,
  distIsStale,
  ensureBuilt,
  extractBlocks,
  lintFailures,
  makeRunDir,
  ROOT,
  runChecked,
} from './doctest.js';

const FIXTURE = 'test/docs/fixtures/sample.md';
const text = fs.readFileSync(path.join(ROOT, FIXTURE), 'utf8');
const { blocks, problems } = extractBlocks(text, FIXTURE);

describe('extractBlocks', () => {
  it('finds every ts and js block with its mode, setup and expected output', () => {
    expect(problems).toEqual([]);
    expect(blocks.map((b) => [b.line, b.lang, b.mode])).toEqual([
      [9, 'ts', 'run'],
      [25, 'ts', 'run'],
      [34, 'ts', 'run'],
      [43, 'ts', 'run'],
      [53, 'ts', 'fragment'],
      [64, 'ts', 'run'],
      [74, 'ts', 'ignore'],
      [80, 'ts', 'lint'],
      [91, 'ts', 'lint'],
      [102, 'js', 'run'],
      [109, 'ts', 'run'],
    ]);
    const [first, , , wrong, , setup, ignored, lint] = blocks;
    expect(first!.codeLine).toBe(10);
    expect(first!.expectedOutput).toEqual({ lines: ['hello, one', '...', 'done'], line: 18 });
    expect(wrong!.expectedOutput).toEqual({ lines: ['expected line'], line: 48 });
    expect(setup!.setup).toEqual({ code: "import { greet } from 'keel';\nconst name = 'setup';", line: 60 });
    expect(setup!.code).toBe('console.log(greet(name));');
    expect(ignored!.reason).toBe('it shows a type error');
    expect(lint!.lintRule).toBe('no-raw-send');
  });

  it('leaves other languages alone and reads a fence indented in a list item', () => {
    const r = extractBlocks(['```sh', 'npm test', '```', '- item', '', '  ```js', '  console.log(1);', '  ```', '```', 'plain', '```'].join('\n'), 'x.md');
    expect(r.problems).toEqual([]);
    expect(r.blocks.map((b) => [b.line, b.lang, b.code])).toEqual([[6, 'js', 'console.log(1);']]);
  });

  it('reports malformed annotations, each on its line', () => {
    const md = [
      '```ts ignore', // 1: no reason
      'x',
      '```',
      '```ts fragmnet', // 4: unknown annotation
      '```',
      '```ts fragment', // 6
      '```',
      '```text output', // 8: after a fragment
      '```',
      '<!-- doctest-setup', // 10: not followed by a code block
      'const a = 1;',
      '-->',
      'some text',
      '```text output', // 14: after no block
      '```',
      '```ts lint=no-such-rule', // 16
      '```',
      '<!-- doctest-setup', // 18: never closed
    ].join('\n');
    expect(extractBlocks(md, 'bad.md').problems.map((p) => [p.line, p.message])).toEqual([
      [1, expect.stringContaining('`ignore` needs a reason')],
      [4, expect.stringContaining("unknown annotation 'fragmnet'")],
      [8, expect.stringContaining('follows a block that is not run (fragment)')],
      [10, expect.stringContaining('must be followed by a ts or js code block')],
      [14, expect.stringContaining('must follow a ts or js block that is run')],
      [16, expect.stringContaining("unknown lint rule 'no-such-rule'")],
      [18, expect.stringContaining('not closed')],
    ]);
  });
});

describe('compareOutput', () => {
  it('matches line by line, ignoring trailing whitespace and trailing blank lines', () => {
    expect(compareOutput(['a', 'b'], 'a  \nb\n\n')).toBeUndefined();
    expect(compareOutput(['a', 'b', ''], 'a\nb')).toBeUndefined();
    expect(compareOutput(['a', 'b'], 'a\nc\n')).toMatch(/^the output differs at line 2:/);
    expect(compareOutput(['a'], 'a\nb\n')).toBeDefined();
    expect(compareOutput(['a', 'b'], 'a\n')).toBeDefined();
    expect(compareOutput([' a'], 'a\n')).toBeDefined();
  });

  it('lets a line `...` stand for any number of lines, none included', () => {
    expect(compareOutput(['...'], '')).toBeUndefined();
    expect(compareOutput(['...'], 'x\ny\n')).toBeUndefined();
    expect(compareOutput(['a', '...', 'z'], 'a\nz\n')).toBeUndefined();
    expect(compareOutput(['a', '...', 'z'], 'a\nb\nc\nz\n')).toBeUndefined();
    expect(compareOutput(['...', 'z', '...'], 'a\nz\nb\n')).toBeUndefined();
    expect(compareOutput(['a', '...', 'z'], 'a\nb\nc\n')).toBeDefined();
    expect(compareOutput(['a', '...', 'z'], 'b\nz\n')).toBeDefined();
  });
});

describe('distIsStale and ensureBuilt', () => {
  let root: string | undefined;
  afterAll(() => {
    if (root !== undefined) fs.rmSync(root, { recursive: true, force: true });
  });

  it('says dist/ is stale when it is missing or older than a source or the build config', () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-doctest-root-'));
    const write = (file: string, seconds: number): void => {
      fs.mkdirSync(path.dirname(path.join(root!, file)), { recursive: true });
      fs.writeFileSync(path.join(root!, file), '');
      fs.utimesSync(path.join(root!, file), seconds, seconds);
    };
    write('src/a.ts', 1000);
    write('src/deep/b.ts', 1000);
    write('tsconfig.json', 1000);
    write('tsconfig.build.json', 1000);
    expect(distIsStale(root)).toBe(true);
    write('dist/index.js', 2000);
    expect(distIsStale(root)).toBe(true);
    write('dist/index.d.ts', 2000);
    expect(distIsStale(root)).toBe(false);
    write('src/deep/b.ts', 3000);
    expect(distIsStale(root)).toBe(true);
    write('src/deep/b.ts', 1000);
    write('tsconfig.build.json', 3000);
    expect(distIsStale(root)).toBe(true);
  });

  it('ensureBuilt builds a stale dist/ in place of the old one, and leaves a fresh one alone', () => {
    const project = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-doctest-build-'));
    try {
      fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(project, 'node_modules'), 'dir');
      fs.mkdirSync(path.join(project, 'src'));
      fs.writeFileSync(path.join(project, 'src', 'index.ts'), 'export const answer: number = 42;\n');
      fs.writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { target: 'ES2022', module: 'NodeNext', declaration: true, types: [], skipLibCheck: true } }));
      fs.writeFileSync(path.join(project, 'tsconfig.build.json'), JSON.stringify({ extends: './tsconfig.json', compilerOptions: { rootDir: 'src', outDir: 'dist' }, include: ['src'] }));
      fs.mkdirSync(path.join(project, 'dist'));
      fs.writeFileSync(path.join(project, 'dist', 'left-over.js'), '');
      expect(ensureBuilt(project)).toBe(true);
      expect(fs.readdirSync(path.join(project, 'dist')).sort()).toEqual(['index.d.ts', 'index.js']);
      expect(fs.readFileSync(path.join(project, 'dist', 'index.js'), 'utf8')).toContain('answer = 42;');
      expect(fs.readdirSync(project).filter((f) => f.startsWith('dist.'))).toEqual([]);
      expect(distIsStale(project)).toBe(false);
      expect(ensureBuilt(project)).toBe(false);
      fs.writeFileSync(path.join(project, 'src', 'index.ts'), 'export const answer: number = "no";\n');
      fs.utimesSync(path.join(project, 'src', 'index.ts'), Date.now() / 1000 + 10, Date.now() / 1000 + 10);
      expect(() => ensureBuilt(project)).toThrow(/building dist\/ failed:\n.*TS2322/s);
      expect(fs.readdirSync(project).filter((f) => f.startsWith('dist.'))).toEqual([]);
      expect(fs.readFileSync(path.join(project, 'dist', 'index.js'), 'utf8')).toContain('answer = 42;');
    } finally {
      fs.rmSync(project, { recursive: true, force: true });
    }
  }, 60_000);
});

describe('checkBlocks, runChecked and lintFailures on the fixture', () => {
  let dir: string | undefined;
  let check: CheckResult | undefined;
  let pkg: string | undefined;
  // a stand-in package named keel (the blocks resolve `keel` to it, as the docs' blocks resolve it
  // to Keel's dist/): the runner is tested without a build
  beforeAll(() => {
    pkg = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-doctest-pkg-'));
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'keel', type: 'module', exports: { '.': { types: './index.d.ts', default: './index.js' } } }));
    fs.writeFileSync(path.join(pkg, 'index.js'), 'export function greet(name) { return `hello, ${name}`; }\n');
    fs.writeFileSync(
      path.join(pkg, 'index.d.ts'),
      'export declare function greet(name: string): string;\nexport interface Context { readonly self: string; send(to: string, message: string): void }\n',
    );
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(pkg, 'node_modules'), 'dir');
    dir = makeRunDir(pkg);
    check = checkBlocks(blocks, dir);
  }, 60_000);
  afterAll(() => {
    if (pkg !== undefined) fs.rmSync(pkg, { recursive: true, force: true });
  });
  const at = (line: number): CheckResult['checked'][number] => {
    const c = check!.checked.find((x) => x.block.line === line);
    if (c === undefined) throw new Error(`no block at line ${line}`);
    return c;
  };

  it('reports the type errors of exactly the block that has them, on its markdown line', () => {
    expect(check!.global).toEqual([]);
    const failing = check!.checked.filter((c) => c.diagnostics.length > 0);
    expect(failing.map((c) => blockName(c.block))).toEqual([`${FIXTURE}:25`]);
    expect(failing[0]!.diagnostics).toEqual([`${FIXTURE}:28:7 TS2322: Type 'string' is not assignable to type 'number'.`]);
  });

  it('passes a program whose output matches, `...` included, and one with a hidden setup', async () => {
    expect(await runChecked(at(9))).toEqual([]);
    expect(await runChecked(at(64))).toEqual([]);
  });

  it('fails a program that throws, with its stderr', async () => {
    const failures = await runChecked(at(34));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(new RegExp(`^${FIXTURE}:34 exited with code 1\\nstderr:\\n`));
    expect(failures[0]).toContain('Error: thrown by the fixture');
  });

  it('fails a program whose output differs, on the output block line', async () => {
    expect(await runChecked(at(43))).toEqual([
      `${FIXTURE}:48: the output differs at line 1:\nexpected:\n  | expected line\nactual:\n  | actual line`,
    ]);
  });

  it('fails a program that does not end within the timeout', async () => {
    expect(await runChecked(at(102), { timeoutMs: 500 })).toEqual([`${FIXTURE}:102 did not finish within 500 ms (killed)`]);
  });

  it.runIf(Number(process.versions.node.split('.')[0]) < 24)('runs the code as written, so that syntax the Node version lacks fails (`await using` before Node 24)', async () => {
    expect(at(109).diagnostics).toEqual([]);
    const failures = await runChecked(at(109));
    expect(failures).toHaveLength(1);
    expect(failures[0]).toMatch(new RegExp(`^${FIXTURE}:109 exited with code 1\\nstderr:\\n`));
    expect(failures[0]).toContain('SyntaxError');
  });

  it('checks a fragment without running it, and an ignored block not at all', () => {
    expect(at(53).diagnostics).toEqual([]);
    expect(at(53).block.mode).toBe('fragment');
    expect(at(74).diagnostics).toEqual([]);
  });

  it('lints a lint block: the rule reports on exactly the lines marked `// flagged`', () => {
    expect(lintFailures(at(80), check!.program)).toEqual([]);
    const failures = lintFailures(at(91), check!.program);
    expect(failures).toHaveLength(2);
    expect(failures[0]).toBe(`${FIXTURE}:95: keel/no-raw-send does not report this line, marked \`// flagged\``);
    expect(failures[1]).toMatch(new RegExp(`^${FIXTURE}:96: keel/no-raw-send reports a line not marked \`// flagged\`: `));
  });
});
