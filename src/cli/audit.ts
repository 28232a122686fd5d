import fs from 'node:fs';
import { InvalidArgumentError, isKeelError } from '../errors.js';
import type { AuditFinding, AuditOptions, AuditReport } from '../lint/audit.js';

export const AUDIT_USAGE = `usage: keel audit <dir> [--format md|json] [--fix]

  runs the rules of keel/eslint-plugin over <dir> (TypeScript and JavaScript, honouring .gitignore)
  and prints a migration report; exit code 1 when migration is needed, 0 when clean, 2 on bad usage
  --format md|json   Markdown (default) or one JSON object
  --fix              apply the autofixes (never the suggestions) and report what remains`;

interface Args {
  dir: string;
  format: 'md' | 'json';
  fix: boolean;
}

/** Parses `keel audit` arguments; bad ones throw `InvalidArgumentError`. */
export function parseAuditArgs(argv: readonly string[]): Args {
  let dir: string | undefined;
  let format: string = 'md';
  let fix = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--fix') fix = true;
    else if (a === '--format' || a.startsWith('--format=')) {
      const v = a === '--format' ? argv[++i] : a.slice('--format='.length);
      if (v === undefined) throw new InvalidArgumentError('--format', "'md' | 'json'", undefined, 'give a value after --format');
      format = v;
    } else if (a.startsWith('-')) throw new InvalidArgumentError('option', '--format or --fix', a);
    else if (dir === undefined) dir = a;
    else throw new InvalidArgumentError('<dir>', 'one directory', argv.filter((x) => !x.startsWith('-')).join(' '));
  }
  if (format !== 'md' && format !== 'json') throw new InvalidArgumentError('--format', "'md' | 'json'", format);
  if (dir === undefined) throw new InvalidArgumentError('<dir>', 'the directory to audit', undefined);
  if (!fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory()) throw new InvalidArgumentError('<dir>', 'an existing directory', dir);
  return { dir, format, fix };
}

type Engine = { audit(root: string, options?: AuditOptions): Promise<AuditReport> };

/**
 * `keel audit <dir> [--format md|json] [--fix]`. The engine (and with it ESLint and the lint
 * plugin's peers) is imported only here, so the rest of the CLI runs without them.
 */
export async function runAudit(
  argv: readonly string[],
  print: (text: string) => void,
  loadEngine: () => Promise<Engine> = () => import('../lint/audit.js'),
  options: Omit<AuditOptions, 'fix'> = {},
): Promise<number> {
  let args: Args;
  try {
    args = parseAuditArgs(argv);
  } catch (e) {
    print(`keel audit: ${(e as Error).message}\n\n${AUDIT_USAGE}`);
    return 2;
  }
  let report: AuditReport;
  try {
    report = await (await loadEngine()).audit(args.dir, { ...options, fix: args.fix });
  } catch (e) {
    if (isKeelError(e, 'ERR_PEER_MISSING')) {
      print(`keel audit: ${e.message}`);
      return 2;
    }
    throw e;
  }
  print(args.format === 'json' ? JSON.stringify(report, null, 2) : markdown(args.dir, report, args.fix));
  return report.migrationNeeded ? 1 : 0;
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
