import fs from 'node:fs';
import { InvalidArgumentError, isKeelError } from '../errors.js';
import type { AuditFinding, AuditOptions, AuditReport } from '../lint/audit.js';
import { type CommandSpec, ioOf, type Output, parseWith, runCommand, UsageError, type Values } from './args.js';

const options = {
  format: { type: 'string', value: '<format>', choices: ['md', 'json'], description: 'a Markdown report, or one JSON object', default: 'md' },
  fix: { type: 'boolean', description: 'apply the autofixes (never the suggestions) and report what remains' },
} as const satisfies CommandSpec['options'];

export const AUDIT_COMMAND: CommandSpec<typeof options> = {
  name: 'audit',
  summary: 'report what a tree needs to migrate to Keel (the rules of keel/eslint-plugin)',
  synopsis: '<dir> [--format md|json] [--fix]',
  description: [
    'Runs the rules of keel/eslint-plugin over <dir> (TypeScript and JavaScript, honouring .gitignore)',
    'and prints a migration report. It needs the optional peers eslint, typescript-eslint, typescript,',
    '@typescript-eslint/utils and ignore: a run without them names every one missing, with the command',
    'that installs them.',
  ].join('\n'),
  options,
  // <dir> is checked by toArgs, which says what is wrong with it
  positionals: Infinity,
  footer: 'exit code: 1 when migration is needed, 0 when the tree is clean, 2 on bad usage, a missing peer or a\ntree it cannot read. More: docs/lint/README.md.',
};

interface Args {
  dir: string;
  format: 'md' | 'json';
  fix: boolean;
}

function toArgs(values: Values<typeof options>, positionals: string[]): Args {
  const [dir, ...more] = positionals;
  if (more.length > 0) throw new InvalidArgumentError('<dir>', 'one directory', positionals.join(' '));
  if (dir === undefined) throw new UsageError('<dir> is missing: the directory to audit, as in keel audit src (keel audit --help prints the usage)');
  if (!isDirectory(dir)) throw new InvalidArgumentError('<dir>', 'an existing directory', dir);
  return { dir, format: values.format === 'json' ? 'json' : 'md', fix: values.fix === true };
}

/** Whether `dir` is a directory: no for a path with nothing at it, through a file (ENOTDIR) or too long (ENAMETOOLONG). */
function isDirectory(dir: string): boolean {
  try {
    return fs.statSync(dir).isDirectory();
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOENT' || code === 'ENOTDIR' || code === 'ENAMETOOLONG') return false;
    // EACCES on a folder on the way, ELOOP, EIO: the error names the path
    if (typeof code === 'string') throw new UsageError(`cannot read <dir>: ${(e as Error).message}`);
    throw e;
  }
}

/** Parses `keel audit` arguments (undefined for `--help`); bad ones throw `InvalidArgumentError`. */
export function parseAuditArgs(argv: readonly string[]): Args | undefined {
  return parseWith(AUDIT_COMMAND, argv, toArgs);
}

type Engine = { audit(root: string, options?: AuditOptions): Promise<AuditReport> };

/**
 * `keel audit <dir> [--format md|json] [--fix]`: the report on `out`, bad usage and missing peers
 * on `err`. The engine (and with it ESLint and the lint plugin's peers) is imported only here, so
 * the rest of the CLI runs without them.
 */
export async function runAudit(
  argv: readonly string[],
  output: Output,
  loadEngine: () => Promise<Engine> = () => import('../lint/audit.js'),
  options: Omit<AuditOptions, 'fix'> = {},
): Promise<number> {
  const io = ioOf(output);
  return runCommand(AUDIT_COMMAND, argv, io, toArgs, async (args) => {
    let report: AuditReport;
    try {
      report = await (await loadEngine()).audit(args.dir, { ...options, fix: args.fix });
    } catch (e) {
      if (isKeelError(e, 'ERR_PEER_MISSING')) {
        io.err(`keel audit: ${e.message}`);
        return 2;
      }
      // a system error of the file system (EACCES on a folder of the tree, EMFILE, EIO): its message names the path
      if (e instanceof Error && typeof (e as { code?: unknown }).code === 'string' && typeof (e as { syscall?: unknown }).syscall === 'string') {
        io.err(`keel audit: cannot read the tree: ${e.message}`);
        return 2;
      }
      throw e;
    }
    if (report.filesScanned === 0 && report.errors.length === 0) {
      // a mistyped path (a docs folder, an empty one) is no clean tree: said so, as ESLint says no file matched
      io.err(`keel audit: no TypeScript or JavaScript file in ${args.dir}: nothing was audited (give the folder of your sources)`);
      return 2;
    }
    io.out(args.format === 'json' ? JSON.stringify(report, null, 2) : markdown(args.dir, report, args.fix));
    return report.migrationNeeded ? 1 : 0;
  });
}

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\r?\n/g, ' ');

function fixKind(f: AuditFinding): string {
  return f.fixable ? 'autofix' : f.suggestion ? 'suggestion' : '-';
}

/** The Markdown report. */
export function markdown(dir: string, report: AuditReport, fixed: boolean): string {
  const all = report.findings.byFile.flatMap((f) => f.findings);
  const autofixable = all.filter((f) => f.fixable).length;
  const lines = [
    `# Keel migration report: ${dir}`,
    '',
    `- Files scanned: ${report.filesScanned}`,
    `- Files needing migration: ${report.filesNeedingMigration}`,
    `- Findings: ${report.findings.total} (${autofixable} autofixable with \`keel audit --fix\`)`,
  ];
  if (fixed) lines.push(`- Files fixed: ${report.fixedFiles.length}${report.fixedFiles.length > 0 ? ` (${report.fixedFiles.join(', ')})` : ''}`);
  if (report.errors.length > 0) lines.push(`- Files that could not be parsed: ${report.errors.length}`);
  lines.push(`- Migration needed: ${report.migrationNeeded ? 'yes' : 'no'}`, '', '## Findings per rule', '', '| rule | findings | autofixable |', '|---|---:|---:|');
  for (const [rule, n] of Object.entries(report.findings.byRule)) {
    lines.push(`| ${rule} | ${n} | ${all.filter((f) => f.rule === rule && f.fixable).length} |`);
  }
  if (report.findings.byFile.length > 0) {
    lines.push('', '## Findings per file');
    for (const { file, findings } of report.findings.byFile) {
      lines.push('', `### ${file} (${findings.length})`, '', '| line | column | rule | fix | message |', '|---:|---:|---|---|---|');
      for (const f of findings) lines.push(`| ${f.line} | ${f.column} | ${f.rule} | ${fixKind(f)} | ${cell(f.message)} |`);
    }
  }
  if (report.errors.length > 0) {
    lines.push('', '## Files that could not be parsed', '');
    for (const e of report.errors) lines.push(`- ${e.file}:${e.line}: ${cell(e.message)}`);
  }
  return lines.join('\n');
}
