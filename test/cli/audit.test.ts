import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { isKeelError } from '../../src/index.js';
import { markdown, parseAuditArgs, runAudit } from '../../src/cli/audit.js';
import { audit, AUDIT_PEERS, type AuditFinding, type AuditReport } from '../../src/lint/audit.js';
import { rules } from '../../src/lint/index.js';
import { requirePeer } from '../../src/lint/peers.js';
import { isIgnored, listSourceFiles, loadIgnore, parseGitignore } from '../../src/lint/internal/files.js';
import { copyTree, typeErrors } from './auditTree.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});
function tree(extra?: Record<string, string>): string {
  const t = copyTree(extra);
  cleanups.push(t.cleanup);
  return t.dir;
}

/** A rule's message as ESLint prints it. */
function message(rule: keyof typeof rules, id: string, data: Record<string, string> = {}): string {
  const text = (rules[rule].meta.messages as Record<string, string>)[id]!;
  return text.replace(/\{\{(\w+)\}\}/g, (_m, k: string) => data[k]!);
}

const f = (rule: keyof typeof rules, line: number, column: number, msg: string, fix: 'autofix' | 'suggestion' | '-'): AuditFinding => ({
  rule: `keel/${rule}`,
  line,
  column,
  message: msg,
  fixable: fix === 'autofix',
  suggestion: fix === 'suggestion',
});

const rawSend = message('no-raw-send', 'rawSend');
const noDefault = (m: string): string => message('handle-unexpected-messages', 'noDefault', { message: m });

/** What the fixture tree holds, by file: every finding the audit must report, and nothing else. */
const expected: AuditReport['findings']['byFile'] = [
  { file: 'src/legacy.js', findings: [f('handle-unexpected-messages', 4, 5, noDefault('msg'), '-'), f('no-raw-send', 6, 9, rawSend, 'suggestion')] },
  {
    file: 'src/server.ts',
    findings: [
      f('no-self-call', 10, 23, message('no-self-call', 'selfCall'), '-'),
      f('handle-unexpected-messages', 16, 5, noDefault('req'), 'autofix'),
      f('handle-unexpected-messages', 24, 5, noDefault('info'), '-'),
    ],
  },
  {
    file: 'src/worker.ts',
    findings: [
      f('no-unmanaged-monitor', 10, 5, message('no-unmanaged-monitor', 'unmanagedDropped'), '-'),
      f('handle-unexpected-messages', 13, 7, noDefault('msg'), 'autofix'),
      f('no-raw-send', 15, 11, rawSend, 'suggestion'),
    ],
  },
  { file: 'test/worker.spec.ts', findings: [f('no-sleep-in-tests', 5, 3, message('no-sleep-in-tests', 'sleep', { what: 'await new Promise(… setTimeout …)' }), '-')] },
];

// findings the audit must not report: ignored by .gitignore, or under node_modules (the keel stub)
const ignoredFiles = { 'generated/bad.ts': 'ctx.send(peer, 1);\n', 'src/scratch.local.ts': 'ctx.send(peer, 1);\n' };

const SOURCES = ['src/clean.ts', 'src/escape.ts', 'src/legacy.js', 'src/server.ts', 'src/worker.ts', 'test/worker.spec.ts'];

describe('keel audit', () => {
  it('reports the exact findings of a tree, in Markdown and JSON, then --fix removes exactly the autofixable ones and the tree still type-checks', { timeout: 180_000 }, async () => {
    const dir = tree(ignoredFiles);
    expect(typeErrors(dir, SOURCES)).toEqual([]);

    // JSON: the whole report
    const out: string[] = [];
    expect(await runAudit([dir, '--format', 'json'], (s) => out.push(s))).toBe(1);
    const report = JSON.parse(out[0]!) as AuditReport;
    expect(report).toEqual({
      filesScanned: 6,
      filesNeedingMigration: 4,
      findings: {
        total: 9,
        byRule: {
          'keel/no-raw-send': 2,
          'keel/no-unmanaged-monitor': 1,
          'keel/no-sleep-in-tests': 1,
          'keel/no-self-call': 1,
          'keel/handle-unexpected-messages': 4,
        },
        byFile: expected,
      },
      fixedFiles: [],
      errors: [],
      migrationNeeded: true,
    });

    // Markdown: the same report, exactly
    expect(markdown('app', report, false)).toBe(
      [
        '# Keel migration report: app',
        '',
        '- Files scanned: 6',
        '- Files needing migration: 4',
        '- Findings: 9 (2 autofixable with `keel audit --fix`)',
        '- Migration needed: yes',
        '',
        '## Findings per rule',
        '',
        '| rule | findings | autofixable |',
        '|---|---:|---:|',
        '| keel/no-raw-send | 2 | 0 |',
        '| keel/no-unmanaged-monitor | 1 | 0 |',
        '| keel/no-sleep-in-tests | 1 | 0 |',
        '| keel/no-self-call | 1 | 0 |',
        '| keel/handle-unexpected-messages | 4 | 2 |',
        '',
        '## Findings per file',
        ...expected.flatMap(({ file, findings }) => [
          '',
          `### ${file} (${findings.length})`,
          '',
          '| line | column | rule | fix | message |',
          '|---:|---:|---|---|---|',
          ...findings.map((x) => `| ${x.line} | ${x.column} | ${x.rule} | ${x.fixable ? 'autofix' : x.suggestion ? 'suggestion' : '-'} | ${x.message} |`),
        ]),
      ].join('\n'),
    );
    const md: string[] = [];
    expect(await runAudit([dir], (s) => md.push(s))).toBe(1);
    expect(md[0]).toBe(markdown(dir, report, false));

    // --fix applies the autofixes only
    const fixedOut: string[] = [];
    expect(await runAudit([dir, '--fix', '--format=json'], (s) => fixedOut.push(s))).toBe(1);
    const fixed = JSON.parse(fixedOut[0]!) as AuditReport;
    expect(fixed.fixedFiles).toEqual(['src/server.ts', 'src/worker.ts']);
    expect(typeErrors(dir, SOURCES)).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'src/server.ts'), 'utf8')).toContain(
      "      case 'add':\n        return state + req.n;\n      default:\n        ctx.node.logger.warn('unexpected message', req);\n        break;\n    }",
    );

    // a fresh audit of the fixed tree: what was autofixable is gone, everything else is still there
    const after = await audit(dir);
    const withoutLine = (r: AuditReport['findings']['byFile']): string[] =>
      r.flatMap(({ file, findings }) => findings.map((x) => `${file} ${x.rule} ${x.column} ${x.message}`)).sort();
    const notFixable = expected.map(({ file, findings }) => ({ file, findings: findings.filter((x) => !x.fixable) }));
    expect(withoutLine(after.findings.byFile)).toEqual(withoutLine(notFixable));
    expect(after.findings.byFile.flatMap((x) => x.findings).some((x) => x.fixable)).toBe(false);
    expect(after.findings.total).toBe(7);
    expect(withoutLine(fixed.findings.byFile)).toEqual(withoutLine(after.findings.byFile));
  });

  it('exits 0 on a clean tree, and scans a tree that has a tsconfig.json of its own', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-clean-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true }, include: ['lib'] }));
    fs.mkdirSync(path.join(dir, 'lib'));
    fs.writeFileSync(path.join(dir, 'lib', 'a.ts'), 'export const a: number = 1;\n');
    // outside the tsconfig's include, and JavaScript: scanned all the same
    fs.writeFileSync(path.join(dir, 'b.mjs'), 'export const send = (socket) => socket.send("x", 1);\n');
    const out: string[] = [];
    expect(await runAudit([dir, '--format', 'json'], (s) => out.push(s))).toBe(0);
    expect(JSON.parse(out[0]!)).toMatchObject({ filesScanned: 2, filesNeedingMigration: 0, migrationNeeded: false, errors: [] });
  });

  it('a folder with no TypeScript or JavaScript file (a mistyped path) is one line saying nothing was audited (exit code 2), as ESLint says no file matched: it reported a clean tree (exit 0)', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-empty-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'README.md'), '# docs only\n');
    const out: string[] = [];
    const err: string[] = [];
    expect(await runAudit([dir], { out: (s) => out.push(s), err: (s) => err.push(s) })).toBe(2);
    expect(out).toEqual([]);
    expect(err).toEqual([`keel audit: no TypeScript or JavaScript file in ${dir}: nothing was audited (give the folder of your sources)`]);
  });

  it('reports a file it cannot parse, and counts it as needing attention', { timeout: 60_000 }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-broken-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'broken.ts'), 'export const = ;\n');
    const report = await audit(dir);
    expect(report.errors).toHaveLength(1);
    expect(report.errors[0]).toMatchObject({ file: 'broken.ts', line: 1 });
    expect(report.migrationNeeded).toBe(true);
  });

  it.each([
    [['--format', 'xml', '.'], "expected `--format` to be 'md' | 'json', got \"xml\""],
    [['.', '--format'], "Option '--format <value>' argument missing: give it as --format <format> or --format=<format>"],
    [['--json', '.'], "Unknown option '--json'. keel audit takes --format, --fix and --help"],
    [['.', '--fix=yes'], "Option '--fix' does not take an argument"],
    [[], '<dir> is missing: the directory to audit, as in keel audit src (keel audit --help prints the usage)'],
    [['/no/such/dir'], 'expected `<dir>` to be an existing directory, got "/no/such/dir"'],
    // a path through a file (ENOTDIR) and one too long to stat (ENAMETOOLONG) died of the stat's error, a stack trace
    [['package.json/src'], 'expected `<dir>` to be an existing directory, got "package.json/src"'],
    [['x'.repeat(256)], `expected \`<dir>\` to be an existing directory, got "${'x'.repeat(57)}..."`],
    [['a', 'b'], 'expected `<dir>` to be one directory, got "a b"'],
  ])('rejects %j with exit code 2 and one line that says what is wrong, on stderr', async (argv, text) => {
    const out: string[] = [];
    const err: string[] = [];
    expect(await runAudit(argv, { out: (s) => out.push(s), err: (s) => err.push(s) })).toBe(2);
    expect(out).toEqual([]);
    expect(err).toEqual([`keel audit: ${text}`]);
    let thrown: unknown;
    try {
      parseAuditArgs(argv);
    } catch (e) {
      thrown = e;
    }
    expect(isKeelError(thrown, 'ERR_INVALID_ARGUMENT')).toBe(true);
  });

  it.each(['eslint', 'typescript-eslint', 'typescript', '@typescript-eslint/utils', 'ignore'])('names a missing peer %s with MissingPeerError (exit code 2)', async (peer) => {
    const loadPeer = (name: string): unknown => {
      if (name === peer) throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      return requirePeer(name);
    };
    const err = await audit('.', { loadPeer }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKeelError(err, 'ERR_PEER_MISSING')).toBe(true);
    expect((err as Error).message).toBe(`keel audit needs the optional peer dependency '${peer}': npm install -D ${peer}`);
    const out: string[] = [];
    expect(await runAudit(['.'], (s) => out.push(s), undefined, { loadPeer })).toBe(2);
    expect(out[0]).toBe(`keel audit: ${(err as Error).message}`);
  });

  it('a tree it cannot read (a folder it may not list: EACCES) is one line naming it (exit code 2), not a stack trace', async () => {
    const denied = Object.assign(new Error("EACCES: permission denied, scandir '/srv/app/secret'"), { code: 'EACCES', syscall: 'scandir', path: '/srv/app/secret' });
    const out: string[] = [];
    const err: string[] = [];
    const code = await runAudit(['.'], { out: (s) => out.push(s), err: (s) => err.push(s) }, () => Promise.resolve({ audit: () => Promise.reject(denied) }));
    expect({ code, out, err }).toEqual({ code: 2, out: [], err: ["keel audit: cannot read the tree: EACCES: permission denied, scandir '/srv/app/secret'"] });
  });

  it('names every missing peer at once, with the one command that installs them all (exit code 2)', async () => {
    const absent = new Set(['eslint', 'typescript', 'ignore']);
    const loadPeer = (name: string): unknown => {
      if (absent.has(name)) throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      // installed, but it cannot load without typescript: the same install fixes it
      if (name === 'typescript-eslint') throw Object.assign(new Error("Cannot find module 'typescript'\nRequire stack: ..."), { code: 'MODULE_NOT_FOUND' });
      return requirePeer(name);
    };
    const err = await audit('.', { loadPeer }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKeelError(err, 'ERR_PEER_MISSING')).toBe(true);
    expect((err as Error).message).toBe("keel audit needs the optional peer dependencies 'typescript', 'eslint' and 'ignore': npm install -D typescript eslint ignore");
    expect((err as { peers: string[] }).peers).toEqual(['typescript', 'eslint', 'ignore']);
    const out: string[] = [];
    const errors: string[] = [];
    expect(await runAudit(['.'], { out: (s) => out.push(s), err: (s) => errors.push(s) }, undefined, { loadPeer })).toBe(2);
    expect(out).toEqual([]);
    expect(errors).toEqual([`keel audit: ${(err as Error).message}`]);
  });

  it('a peer that cannot load for want of a module that is no peer is a broken install: that error, as it is', async () => {
    const loadPeer = (name: string): unknown => {
      if (name === 'eslint') throw Object.assign(new Error("Cannot find module 'espree'"), { code: 'MODULE_NOT_FOUND' });
      return requirePeer(name);
    };
    await expect(audit('.', { loadPeer })).rejects.toThrow("Cannot find module 'espree'");
  });

  it('every peer it loads is an optional peer dependency of the package and a pinned dev dependency; ignore is 7.0.17', () => {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
      dependencies?: Record<string, string>;
      devDependencies: Record<string, string>;
      peerDependencies: Record<string, string>;
      peerDependenciesMeta: Record<string, { optional?: boolean }>;
    };
    expect(pkg.dependencies).toBeUndefined(); // the core has none
    for (const peer of AUDIT_PEERS) {
      expect(pkg.peerDependencies[peer], peer).toBeDefined();
      expect(pkg.peerDependenciesMeta[peer], peer).toEqual({ optional: true });
      expect(pkg.devDependencies[peer], peer).toMatch(/^\d+\.\d+\.\d+$/);
    }
    expect(pkg.devDependencies.ignore).toBe('7.0.17');
    expect(pkg.peerDependencies.ignore).toBe('^7.0.17');
  });
});

describe('the files keel audit scans', () => {
  it('honours .gitignore (nested, negated, anchored, directories) outside git, and never scans node_modules or dist', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-files-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const files: Record<string, string> = {
      '.gitignore': '# generated\nbuild/\n*.gen.ts\n!keep.gen.ts\n/top.js\n',
      'a.ts': '',
      'top.js': '',
      'sub/top.js': '',
      'x.gen.ts': '',
      'keep.gen.ts': '',
      'build/b.ts': '',
      'sub/.gitignore': 'local.ts\n',
      'sub/local.ts': '',
      'sub/c.tsx': '',
      'types.d.ts': '',
      'readme.md': '',
      'node_modules/m/index.js': '',
      'dist/out.js': '',
    };
    for (const [file, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), text);
    }
    expect(listSourceFiles(dir)).toEqual(['a.ts', 'keep.gen.ts', 'sub/c.tsx', 'sub/top.js']);
    // the same answer from git itself in a git work tree (untracked files count, ignored ones do not)
    execFileSync('git', ['init', '-q', dir]);
    expect(listSourceFiles(dir)).toEqual(['a.ts', 'keep.gen.ts', 'sub/c.tsx', 'sub/top.js']);
  });

  it('takes a .gitignore that is no file (a directory of that name) as none outside git, as git does, instead of dying of EISDIR', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-files-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.writeFileSync(path.join(dir, 'a.ts'), '');
    fs.mkdirSync(path.join(dir, '.gitignore'));
    fs.mkdirSync(path.join(dir, 'sub', '.gitignore'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'sub', 'b.ts'), '');
    expect(listSourceFiles(dir)).toEqual(['a.ts', 'sub/b.ts']);
    execFileSync('git', ['init', '-q', dir]);
    expect(listSourceFiles(dir)).toEqual(['a.ts', 'sub/b.ts']);
  });

  it('parses .gitignore patterns as git does', () => {
    const rules = parseGitignore('**/logs\ndoc/**/*.txt\n[ab].js\nnot\\#comment\n', '');
    expect(isIgnored(rules, 'x/y/logs', true)).toBe(true);
    expect(isIgnored(rules, 'doc/a/b/c.txt', false)).toBe(true);
    expect(isIgnored(rules, 'doc/c.txt', false)).toBe(true);
    expect(isIgnored(rules, 'other/doc/c.txt', false)).toBe(false);
    expect(isIgnored(rules, 'a.js', false)).toBe(true);
    expect(isIgnored(rules, 'c.js', false)).toBe(false);
    expect(isIgnored(rules, 'not#comment', false)).toBe(true);
  });
});

// The examples of git's own gitignore documentation (PATTERN FORMAT and EXAMPLES), one tree: the
// root .gitignore, and a nested one with the "everything but foo/bar" example. Paths ending in '/'
// are folders (made with a file inside).
const GITIGNORE = [
  '# a comment: no pattern',
  '\\#hash.ts',
  '\\!bang.ts',
  'trailing.ts   ',
  'escaped\\ ',
  '*.log',
  '!keep.log',
  'frotz/',
  '/anchored.ts',
  'docs/api/',
  '**/deep',
  'a/**/b',
  'abc/**',
  'hello.*',
  'foo/*',
  '/*.c',
  '[ab].js',
  'file?.ts',
  '',
].join('\n');
const NESTED_GITIGNORE = '/*\n!/foo\n/foo/*\n!/foo/bar\n';
const GIT_PATHS = [
  '#hash.ts', 'x/#hash.ts', 'bang.ts', '!bang.ts', 'trailing.ts', 'escaped ', 'escaped',
  'app.log', 'sub/app.log', 'keep.log', 'sub/keep.log', 'APP.LOG',
  'frotz/', 'lib/frotz/', 'a2/frotz', 'anchored.ts', 'sub/anchored.ts', 'docs/api/', 'other/docs/api/',
  'deep', 'x/y/deep/', 'a/b', 'a/x/b', 'a/x/y/b', 'c/a/b', 'abc/d/e.ts', 'abc.ts',
  'hello.ts', 'x/hello.js', 'hello', 'foo/test.json', 'foo/bar/', 'foo/bar/hello.c', 'foo.ts',
  'cat-file.c', 'mozilla-sha1/sha1.c', 'a.js', 'b.js', 'c.js', 'file1.ts', 'file10.ts',
  'only/top.ts', 'only/foo/bar/kept.ts', 'only/foo/baz/gone.ts', 'only/foo/gone.ts',
];

/** The tree above in a fresh directory; answers it and every path in it (folders with a trailing '/'). */
function gitTree(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-gitignore-'));
  cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, '.gitignore'), GITIGNORE);
  fs.mkdirSync(path.join(dir, 'only'));
  fs.writeFileSync(path.join(dir, 'only', '.gitignore'), NESTED_GITIGNORE);
  for (const p of GIT_PATHS) {
    const file = path.join(dir, p.endsWith('/') ? `${p}inside.ts` : p);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, '');
  }
  return dir;
}

/** What git answers: the paths it ignores (`git check-ignore`, one call, NUL-separated). */
function gitIgnored(dir: string, paths: string[]): string[] {
  execFileSync('git', ['init', '-q', dir]);
  let out: string;
  try {
    out = execFileSync('git', ['-C', dir, 'check-ignore', '--stdin', '-z'], { input: paths.join('\0'), encoding: 'utf8' });
  } catch (e) {
    if ((e as { status?: number }).status !== 1) throw e; // 1: none ignored
    out = '';
  }
  return out.split('\0').filter((p) => p !== '');
}

describe('.gitignore outside git, matched by the ignore package', () => {
  it("gives git's own answers for the examples of git's gitignore documentation (checked with git check-ignore)", () => {
    const dir = gitTree();
    const paths = GIT_PATHS.map((p) => p.replace(/\/$/, ''));
    const layers = [...parseGitignore(GITIGNORE, ''), ...parseGitignore(NESTED_GITIGNORE, 'only')];
    const ours = paths.filter((p) => isIgnored(layers, p, fs.statSync(path.join(dir, p)).isDirectory()));
    const git = gitIgnored(dir, paths);
    expect(ours).toEqual(git);
    // and git's answers are the documented ones (so the comparison is not of two empty lists)
    expect(git).toEqual([
      '#hash.ts', 'x/#hash.ts', '!bang.ts', 'trailing.ts', 'escaped ',
      'app.log', 'sub/app.log',
      'frotz', 'lib/frotz', 'anchored.ts', 'docs/api',
      'deep', 'x/y/deep', 'a/b', 'a/x/b', 'a/x/y/b', 'abc/d/e.ts',
      'hello.ts', 'x/hello.js', 'foo/test.json', 'foo/bar', 'foo/bar/hello.c',
      'cat-file.c', 'a.js', 'b.js', 'file1.ts',
      'only/top.ts', 'only/foo/baz/gone.ts', 'only/foo/gone.ts',
    ]);
  });

  it('odd lines (an unclosed [, a lone backslash, an empty class, a lone / or !) neither throw nor differ from git', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-gitignore-odd-'));
    cleanups.push(() => fs.rmSync(dir, { recursive: true, force: true }));
    const text = '[abc\n\\\\\na[]b\n/\n!\n!/\nx[!y].ts\n**\\*.md\n';
    fs.writeFileSync(path.join(dir, '.gitignore'), text);
    const paths = ['[abc', 'a[]b', 'xz.ts', 'xy.ts', 'c.md', 'plain.ts'];
    for (const p of paths) fs.writeFileSync(path.join(dir, p), '');
    const layers = parseGitignore(text, '');
    const ours = paths.filter((p) => isIgnored(layers, p, false));
    expect(ours).toEqual(gitIgnored(dir, paths));
    expect(ours).toEqual(['xz.ts']);
  });

  it('scans the files git would list in that tree (git ls-files --others --exclude-standard), and no other', () => {
    const dir = gitTree();
    const walked = listSourceFiles(dir); // no git work tree yet: the .gitignore files are read with ignore
    execFileSync('git', ['init', '-q', dir]);
    const listed = execFileSync('git', ['-C', dir, 'ls-files', '-z', '--others', '--exclude-standard'], { encoding: 'utf8' })
      .split('\0')
      .filter((f) => /\.[cm]?[jt]sx?$/.test(f) && !f.endsWith('.d.ts'))
      .sort();
    expect(walked).toEqual(listed);
    expect(walked).toEqual(['abc.ts', 'bang.ts', 'c.js', 'file10.ts', 'foo.ts', 'only/foo/bar/kept.ts', 'other/docs/api/inside.ts', 'sub/anchored.ts']);
  });

  it('reads a missing ignore peer as MissingPeerError, named for keel audit', () => {
    let err: unknown;
    try {
      loadIgnore(() => {
        throw Object.assign(new Error("Cannot find module 'ignore'"), { code: 'MODULE_NOT_FOUND' });
      });
    } catch (e) {
      err = e;
    }
    expect(isKeelError(err, 'ERR_PEER_MISSING')).toBe(true);
    expect((err as Error).message).toBe("keel audit needs the optional peer dependency 'ignore': npm install ignore");
  });
});
