import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { isKeelError } from '../../src/index.js';
import { markdown, parseAuditArgs, runAudit } from '../../src/cli/audit.js';
import { audit, type AuditFinding, type AuditReport } from '../../src/lint/audit.js';
import { rules } from '../../src/lint/index.js';
import { requirePeer } from '../../src/lint/peers.js';
import { isIgnored, listSourceFiles, parseGitignore } from '../../src/lint/internal/files.js';
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
    [['.', '--format'], 'give a value after --format'],
    [['--json', '.'], 'expected `option` to be --format or --fix, got "--json"'],
    [[], 'expected `<dir>` to be the directory to audit, got undefined'],
    [['/no/such/dir'], 'expected `<dir>` to be an existing directory, got "/no/such/dir"'],
    [['a', 'b'], 'expected `<dir>` to be one directory'],
  ])('rejects %j with exit code 2 and the usage', async (argv, text) => {
    const out: string[] = [];
    expect(await runAudit(argv, (s) => out.push(s))).toBe(2);
    expect(out[0]).toContain(text);
    expect(out[0]).toContain('usage: keel audit <dir>');
    let thrown: unknown;
    try {
      parseAuditArgs(argv);
    } catch (e) {
      thrown = e;
    }
    expect(isKeelError(thrown, 'ERR_INVALID_ARGUMENT')).toBe(true);
  });

  it.each(['eslint', 'typescript-eslint', 'typescript', '@typescript-eslint/utils'])('names a missing peer %s with MissingPeerError (exit code 2)', async (peer) => {
    const loadPeer = (name: string): unknown => {
      if (name === peer) throw Object.assign(new Error(`Cannot find module '${name}'`), { code: 'MODULE_NOT_FOUND' });
      return requirePeer(name);
    };
    const err = await audit('.', { loadPeer }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isKeelError(err, 'ERR_PEER_MISSING')).toBe(true);
    expect((err as Error).message).toBe(`keel audit needs the optional peer dependency '${peer}': npm install ${peer}`);
    const out: string[] = [];
    expect(await runAudit(['.'], (s) => out.push(s), undefined, { loadPeer })).toBe(2);
    expect(out[0]).toBe(`keel audit: ${(err as Error).message}`);
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
