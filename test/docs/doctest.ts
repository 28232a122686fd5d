// The doc-test runner: every ```ts / ```typescript / ```js block of the README and docs/ is
// extracted, type-checked as a consumer's code (`import … from 'keel'` resolving to the package
// itself through its exports, so to dist/), run with node, its output compared with the
// ```text output block that follows it, and, for a lint rule's examples, linted with Keel's plugin.
//
// The annotations (CONTRIBUTING.md, "Code examples"):
//   ```ts fragment              type-checked, not run
//   ```ts ignore <reason>       neither type-checked nor run (a reason is required)
//   ```ts lint=<rule>           type-checked, not run, linted: the rule must report on exactly the
//                               lines whose comment begins `// flagged`
//   <!-- doctest-setup          a hidden setup, prepended to the block right after the comment
//   …code…
//   -->
//   ```text output              right after a run block: its lines must equal the program's stdout
//                               (trailing whitespace ignored; a line `...` matches any lines)
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type ESLint, Linter } from 'eslint';
import ts from 'typescript';
import tseslint from 'typescript-eslint';
import keelPlugin from '../../src/lint/index.js';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** How a block is checked. */
export type BlockMode = 'run' | 'fragment' | 'ignore' | 'lint';

export interface Block {
  /** The markdown file, relative to the repository root (forward slashes). */
  readonly file: string;
  /** 1-based line of the opening fence. */
  readonly line: number;
  readonly lang: 'ts' | 'js';
  readonly mode: BlockMode;
  /** `ignore`'s reason. */
  readonly reason?: string;
  /** `lint=<rule>`: the rule name without the `keel/` prefix. */
  readonly lintRule?: string;
  readonly code: string;
  /** 1-based markdown line of the block's first code line. */
  readonly codeLine: number;
  readonly setup?: { readonly code: string; readonly line: number };
  readonly expectedOutput?: { readonly lines: readonly string[]; readonly line: number };
}

/** A malformed annotation: reported as a failure of its own. */
export interface ExtractionProblem {
  readonly file: string;
  readonly line: number;
  readonly message: string;
}

export interface Extraction {
  readonly blocks: Block[];
  readonly problems: ExtractionProblem[];
}

const LANGS: Record<string, 'ts' | 'js'> = { ts: 'ts', typescript: 'ts', js: 'js', javascript: 'js' };
const FENCE = /^(\s*)(`{3,}|~{3,})\s*(.*)$/;
const SETUP_OPEN = /^\s*<!--\s*doctest-setup\s*$/;
const LINT_RULES = new Set(Object.keys(keelPlugin.rules));

interface Fence {
  readonly line: number;
  readonly info: string;
  readonly body: string[];
  readonly bodyLine: number;
  /** Index of the line after the closing fence. */
  readonly next: number;
}

/** Reads the fence opening at `lines[i]`; an unclosed fence runs to the end of the file. */
function readFence(lines: readonly string[], i: number): Fence | undefined {
  const open = FENCE.exec(lines[i]!);
  if (open === null) return undefined;
  const [, indent, marker, info] = open as unknown as [string, string, string, string];
  // a backtick fence's info string may not contain a backtick (CommonMark)
  if (marker.startsWith('`') && info.includes('`')) return undefined;
  const body: string[] = [];
  let j = i + 1;
  for (; j < lines.length; j++) {
    const l = lines[j]!;
    const close = /^(\s*)(`{3,}|~{3,})\s*$/.exec(l);
    if (close !== null && close[2]![0] === marker[0] && close[2]!.length >= marker.length) break;
    // a fence indented in a list item: its content is indented as much
    body.push(l.startsWith(indent) ? l.slice(indent.length) : l.trimStart());
  }
  return { line: i + 1, info: info.trim(), body, bodyLine: i + 2, next: j + 1 };
}

/** Index of the next line at or after `i` that is not blank. */
function nextNonBlank(lines: readonly string[], i: number): number {
  let j = i;
  while (j < lines.length && lines[j]!.trim() === '') j++;
  return j;
}

/** Extracts the code blocks of one markdown text; `file` names it in blocks and problems. */
export function extractBlocks(markdown: string, file: string): Extraction {
  const lines = markdown.split(/\r?\n/);
  const blocks: Block[] = [];
  const problems: ExtractionProblem[] = [];
  const problem = (line: number, message: string): void => {
    problems.push({ file, line, message });
  };
  let setup: { code: string; line: number; at: number } | undefined;
  let i = 0;
  while (i < lines.length) {
    if (SETUP_OPEN.test(lines[i]!)) {
      const end = lines.findIndex((l, k) => k > i && l.trim() === '-->');
      if (end < 0) {
        problem(i + 1, 'a doctest-setup comment is not closed by a line `-->`');
        break;
      }
      setup = { code: lines.slice(i + 1, end).join('\n'), line: i + 2, at: i + 1 };
      i = end + 1;
      const j = nextNonBlank(lines, i);
      const fence = j < lines.length ? readFence(lines, j) : undefined;
      const lang = fence === undefined ? undefined : LANGS[fence.info.split(/\s+/)[0]!];
      if (lang === undefined) {
        problem(setup.at, 'a doctest-setup comment must be followed by a ts or js code block');
        setup = undefined;
      }
      continue;
    }
    const fence = readFence(lines, i);
    if (fence === undefined) {
      i++;
      continue;
    }
    const [word = '', ...rest] = fence.info.split(/\s+/).filter((w) => w !== '');
    const lang = LANGS[word];
    if (word === 'text' && rest.includes('output')) {
      problem(fence.line, 'an output block must follow a ts or js block that is run (not a fragment)');
      i = fence.next;
      continue;
    }
    if (lang === undefined) {
      i = fence.next;
      continue;
    }
    let mode: BlockMode = 'run';
    let reason: string | undefined;
    let lintRule: string | undefined;
    for (let k = 0; k < rest.length; k++) {
      const flag = rest[k]!;
      if (flag === 'fragment') {
        if (mode === 'run') mode = 'fragment';
      } else if (flag === 'ignore') {
        reason = rest.slice(k + 1).join(' ');
        mode = 'ignore';
        if (reason === '') problem(fence.line, '`ignore` needs a reason in the info string: ```ts ignore <why it cannot compile>');
        break;
      } else if (flag.startsWith('lint=')) {
        lintRule = flag.slice('lint='.length).replace(/^keel\//, '');
        if (!LINT_RULES.has(lintRule)) problem(fence.line, `unknown lint rule '${lintRule}' (keel/eslint-plugin has ${[...LINT_RULES].join(', ')})`);
        mode = 'lint';
      } else {
        problem(fence.line, `unknown annotation '${flag}' in the info string '${fence.info}' (fragment, ignore <reason>, lint=<rule>)`);
      }
    }
    let expectedOutput: Block['expectedOutput'];
    let next = fence.next;
    const j = nextNonBlank(lines, next);
    if (j < lines.length && !SETUP_OPEN.test(lines[j]!)) {
      const after = readFence(lines, j);
      if (after !== undefined && after.info.split(/\s+/)[0] === 'text' && after.info.split(/\s+/).includes('output')) {
        if (mode !== 'run') problem(after.line, `an output block follows a block that is not run (${mode})`);
        expectedOutput = { lines: after.body, line: after.bodyLine };
        next = after.next;
      }
    }
    blocks.push({
      file,
      line: fence.line,
      lang,
      mode,
      ...(reason === undefined ? {} : { reason }),
      ...(lintRule === undefined ? {} : { lintRule }),
      code: fence.body.join('\n'),
      codeLine: fence.bodyLine,
      ...(setup === undefined ? {} : { setup: { code: setup.code, line: setup.line } }),
      ...(expectedOutput === undefined ? {} : { expectedOutput }),
    });
    setup = undefined;
    i = next;
  }
  return { blocks, problems };
}

/** README.md and every docs/**.md, relative to `root`, sorted. */
export function docFiles(root: string = ROOT): string[] {
  const docs = fs
    .readdirSync(path.join(root, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f.split(path.sep).join('/')}`);
  return ['README.md', ...docs.sort()];
}

/** The blocks of every doc file. */
export function extractDocs(root: string = ROOT): Extraction {
  const blocks: Block[] = [];
  const problems: ExtractionProblem[] = [];
  for (const file of docFiles(root)) {
    const r = extractBlocks(fs.readFileSync(path.join(root, file), 'utf8'), file);
    blocks.push(...r.blocks);
    problems.push(...r.problems);
  }
  return { blocks, problems };
}

/** `<file>:<line>`, the block's test name. */
export function blockName(block: Block): string {
  return `${block.file}:${block.line}`;
}

// ---- type check ---------------------------------------------------------------------------------

/**
 * The compiler options of a consumer on the Node version the README names (20): ES2022 with the
 * ES2023 library (no `await using`), NodeNext modules, strict; JavaScript blocks checked too.
 */
export function consumerOptions(): ts.CompilerOptions {
  return {
    target: ts.ScriptTarget.ES2022,
    lib: ['lib.es2023.d.ts'],
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    moduleDetection: ts.ModuleDetectionKind.Force,
    types: ['node'],
    strict: true,
    allowJs: true,
    checkJs: true,
    skipLibCheck: true,
    noEmit: true,
  };
}

export interface CheckedBlock {
  readonly block: Block;
  /** The source file written for the block (setup prepended). */
  readonly source: string;
  /** The emitted JavaScript to run. */
  readonly js: string;
  /** Type errors, as `<file>:<line>:<column> TS<code>: <message>` on the markdown's lines. */
  readonly diagnostics: string[];
}

export interface CheckResult {
  readonly checked: CheckedBlock[];
  readonly program: ts.Program;
  /** Diagnostics that belong to no block (options, the package's own declarations). */
  readonly global: string[];
}

function slug(block: Block): string {
  return `${block.file.replace(/[^A-Za-z0-9]+/g, '_')}_L${block.line}`;
}

/** The markdown line of line `n` (0-based) of a block's written source. */
function markdownLine(block: Block, n: number): number {
  const setupLines = block.setup === undefined ? 0 : block.setup.code.split('\n').length;
  return n < setupLines ? block.setup!.line + n : block.codeLine + (n - setupLines);
}

function formatDiagnostic(d: ts.Diagnostic, at: string): string {
  return `${at} TS${d.code}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
}

/**
 * Writes each block as a module under `dir` (which must lie inside the package, so that `keel`
 * resolves to the package itself), type-checks them all in one program and writes their
 * JavaScript under `dir/out`. A lint block's file is named `*.test.ts` (the lint rules for test
 * files apply to it).
 */
export function checkBlocks(blocks: readonly Block[], dir: string): CheckResult {
  fs.mkdirSync(dir, { recursive: true });
  const files = blocks.map((block) => {
    const base = `${slug(block)}${block.mode === 'lint' || block.lintRule !== undefined ? '.test' : ''}`;
    const source = path.join(dir, `${base}.${block.lang}`);
    const text = block.setup === undefined ? block.code : `${block.setup.code}\n${block.code}`;
    fs.writeFileSync(source, `${text}\n`);
    return { block, source, js: path.join(dir, 'out', `${base}.js`) };
  });
  const options = consumerOptions();
  const program = ts.createProgram({ rootNames: files.map((f) => f.source), options });
  const bySource = new Map(files.map((f) => [path.resolve(f.source), { ...f, diagnostics: [] as string[] }]));
  const global: string[] = [];
  const all = [...program.getOptionsDiagnostics(), ...program.getGlobalDiagnostics(), ...program.getSyntacticDiagnostics(), ...program.getSemanticDiagnostics()];
  for (const d of all) {
    const entry = d.file === undefined ? undefined : bySource.get(path.resolve(d.file.fileName));
    if (entry === undefined || d.file === undefined || d.start === undefined) {
      const where = d.file === undefined ? '' : `${path.relative(ROOT, d.file.fileName)}: `;
      global.push(formatDiagnostic(d, `${where}`).trim());
      continue;
    }
    const { line, character } = d.file.getLineAndCharacterOfPosition(d.start);
    entry.diagnostics.push(formatDiagnostic(d, `${entry.block.file}:${markdownLine(entry.block, line)}:${character + 1}`));
  }
  // the JavaScript to run: the types stripped and nothing lowered (target ESNext), so that syntax
  // the Node version the README names lacks (`await using` before Node 24) fails when run
  for (const f of files) {
    const text = fs.readFileSync(f.source, 'utf8');
    const js = f.block.lang === 'js' ? text : ts.transpileModule(text, { fileName: f.source, compilerOptions: { target: ts.ScriptTarget.ESNext, module: ts.ModuleKind.ESNext } }).outputText;
    fs.mkdirSync(path.dirname(f.js), { recursive: true });
    fs.writeFileSync(f.js, js);
  }
  const checked = [...bySource.values()].map((c) => ({ ...c, diagnostics: c.block.mode === 'ignore' ? [] : c.diagnostics }));
  return { checked, program, global };
}

// ---- lint -------------------------------------------------------------------------------------

/** A finding of the linted rule, on a markdown line. */
export interface LintFinding {
  readonly line: number;
  readonly message: string;
}

/** The lines a lint block marks as flagged: a comment that begins `// flagged`. */
export function flaggedLines(block: Block): number[] {
  return block.code
    .split('\n')
    .flatMap((l, k) => (/\/\/\s*flagged\b/.test(l) ? [block.codeLine + k] : []));
}

/**
 * Lints a lint block's file with its one rule (Keel's plugin, typed with the check's program) and
 * answers what the rule reports (on markdown lines) and any parse error.
 */
export function lintBlock(checked: CheckedBlock, program: ts.Program): { findings: LintFinding[]; fatal: string[] } {
  const { block } = checked;
  const rule = block.lintRule;
  if (rule === undefined) throw new Error(`${blockName(block)} is no lint block`);
  const linter = new Linter({ configType: 'flat', cwd: path.dirname(checked.source) });
  const messages = linter.verify(
    fs.readFileSync(checked.source, 'utf8'),
    [
      {
        files: ['**/*.ts', '**/*.js'],
        languageOptions: { parser: tseslint.parser, parserOptions: { programs: [program] } },
        // typescript-eslint's rule type and ESLint's differ only in their declarations
        plugins: { keel: { rules: keelPlugin.rules } as unknown as ESLint.Plugin },
        rules: { [`keel/${rule}`]: 'error' },
      },
    ],
    checked.source,
  );
  const at = (line: number): number => markdownLine(block, line - 1);
  return {
    findings: messages.filter((m) => m.ruleId === `keel/${rule}`).map((m) => ({ line: at(m.line), message: m.message })),
    fatal: messages.filter((m) => m.fatal === true || m.ruleId === null).map((m) => `${block.file}:${at(m.line)}: ${m.message}`),
  };
}

// ---- run --------------------------------------------------------------------------------------

export interface RunResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly timedOut: boolean;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * Runs one emitted block with node in a fresh temporary working directory (removed afterwards);
 * SIGKILLs it after `timeoutMs`.
 */
export function runBlock(js: string, { timeoutMs = 30_000 }: { timeoutMs?: number } = {}): Promise<RunResult> {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-doctest-'));
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST') && k !== 'NODE_OPTIONS' && k !== 'NODE_ENV'));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [js], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      fs.rmSync(cwd, { recursive: true, force: true });
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      fs.rmSync(cwd, { recursive: true, force: true });
      resolve({ code, signal, timedOut, stdout, stderr });
    });
  });
}

/**
 * Compares a program's stdout with an expected output: line by line, trailing whitespace and
 * trailing blank lines ignored, an expected line `...` matching any number of lines. Answers
 * undefined on a match, else a description of the difference.
 */
export function compareOutput(expected: readonly string[], stdout: string): string | undefined {
  const trim = (ls: readonly string[]): string[] => {
    const out = ls.map((l) => l.trimEnd());
    while (out.length > 0 && out.at(-1) === '') out.pop();
    return out;
  };
  const want = trim(expected);
  const got = trim(stdout.split(/\r?\n/));
  // memoised match of want[i..] against got[j..]
  const memo = new Map<number, boolean>();
  const match = (i: number, j: number): boolean => {
    const key = i * (got.length + 1) + j;
    const known = memo.get(key);
    if (known !== undefined) return known;
    let r: boolean;
    if (i === want.length) r = j === got.length;
    else if (want[i] === '...') r = match(i + 1, j) || (j < got.length && match(i, j + 1));
    else r = j < got.length && want[i] === got[j] && match(i + 1, j + 1);
    memo.set(key, r);
    return r;
  };
  if (match(0, 0)) return undefined;
  // the first line that differs, for the report (the `...`-free prefix)
  let k = 0;
  while (k < want.length && k < got.length && want[k] !== '...' && want[k] === got[k]) k++;
  return [
    `the output differs${want[k] === '...' ? '' : ` at line ${k + 1}`}:`,
    'expected:',
    ...want.map((l) => `  | ${l}`),
    'actual:',
    ...got.map((l) => `  | ${l}`),
  ].join('\n');
}

/** The failures of one checked block once run (empty when it passes). */
export async function runChecked(checked: CheckedBlock, options: { timeoutMs?: number } = {}): Promise<string[]> {
  const { block } = checked;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const r = await runBlock(checked.js, { timeoutMs });
  const failures: string[] = [];
  const stderr = r.stderr.trim() === '' ? '' : `\nstderr:\n${r.stderr.trim()}`;
  if (r.timedOut) failures.push(`${blockName(block)} did not finish within ${timeoutMs} ms (killed)${stderr}`);
  else if (r.code !== 0) failures.push(`${blockName(block)} exited with ${r.code === null ? `signal ${r.signal}` : `code ${r.code}`}${stderr}`);
  if (block.expectedOutput !== undefined && !r.timedOut) {
    const diff = compareOutput(block.expectedOutput.lines, r.stdout);
    if (diff !== undefined) failures.push(`${block.file}:${block.expectedOutput.line}: ${diff}`);
  }
  return failures;
}

/** The failures of a lint block: a `// flagged` line the rule does not report, a report on another line. */
export function lintFailures(checked: CheckedBlock, program: ts.Program): string[] {
  const { block } = checked;
  const { findings, fatal } = lintBlock(checked, program);
  const want = new Set(flaggedLines(block));
  const got = new Set(findings.map((f) => f.line));
  const failures = [...fatal];
  for (const line of want) if (!got.has(line)) failures.push(`${block.file}:${line}: keel/${block.lintRule} does not report this line, marked \`// flagged\``);
  for (const f of findings) if (!want.has(f.line)) failures.push(`${block.file}:${f.line}: keel/${block.lintRule} reports a line not marked \`// flagged\`: ${f.message}`);
  return failures;
}

// ---- the package build ------------------------------------------------------------------------

function newestMtime(dir: string, filter: (f: string) => boolean): number {
  let newest = 0;
  for (const f of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    if (!filter(f)) continue;
    newest = Math.max(newest, fs.statSync(path.join(dir, f)).mtimeMs);
  }
  return newest;
}

/** Whether dist/ is missing or older than a file of src/ (or the build config). */
export function distIsStale(root: string = ROOT): boolean {
  const dist = path.join(root, 'dist');
  let builtAt: number;
  try {
    builtAt = Math.min(fs.statSync(path.join(dist, 'index.js')).mtimeMs, fs.statSync(path.join(dist, 'index.d.ts')).mtimeMs);
  } catch {
    return true;
  }
  const sources = Math.max(
    newestMtime(path.join(root, 'src'), (f) => f.endsWith('.ts')),
    fs.statSync(path.join(root, 'tsconfig.json')).mtimeMs,
    fs.statSync(path.join(root, 'tsconfig.build.json')).mtimeMs,
  );
  return sources > builtAt;
}

/**
 * Builds dist/ (as `npm run build` does) when it is missing or older than src/: into a sibling
 * directory first, then swapped in, so that dist/ is never half-written. Answers whether it built.
 */
export function ensureBuilt(root: string = ROOT): boolean {
  if (!distIsStale(root)) return false;
  const tmp = fs.mkdtempSync(path.join(root, 'dist.build-'));
  try {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', tmp], { cwd: root, stdio: 'pipe' });
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    const out = e as { stdout?: Buffer };
    throw new Error(`building dist/ failed:\n${out.stdout?.toString() ?? String(e)}`);
  }
  const old = `${tmp}.old`;
  const dist = path.join(root, 'dist');
  try {
    fs.renameSync(dist, old);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  try {
    fs.renameSync(tmp, dist);
  } catch (e) {
    // another build (a concurrent run) put its dist/ there first: as fresh as this one
    if ((e as NodeJS.ErrnoException).code !== 'ENOTEMPTY' && (e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    fs.rmSync(tmp, { recursive: true, force: true });
  }
  fs.rmSync(old, { recursive: true, force: true });
  return true;
}

/** A fresh directory for one run's block files, inside the package (so that `keel` resolves to it). */
export function makeRunDir(root: string = ROOT): string {
  const base = path.join(root, '.doctest');
  fs.mkdirSync(base, { recursive: true });
  return fs.mkdtempSync(path.join(base, 'run-'));
}
