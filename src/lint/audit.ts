/**
 * The engine of `keel audit`: runs every rule of `keel/eslint-plugin` over a tree (TypeScript and
 * JavaScript, honouring .gitignore) with ESLint's Node API, on a project of its own, and returns a
 * migration report. It needs no ESLint config in the tree: the tree's tsconfig.json (when there is
 * one) is extended, every scanned file is added to the program with `allowJs`, and a tree without
 * a tsconfig gets a default program (ES2022, NodeNext, strict, `allowJs`, no `checkJs`).
 *
 * @internal Used by the `keel audit` command (src/cli/audit.ts), which imports it dynamically.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ESLint as ESLintClass, Linter } from 'eslint';
import { isKeelError, MissingPeerError } from '../errors.js';
import { loadPeer, requirePeer, type PeerLoader } from './peers.js';
import { type IgnoreFactory, listSourceFiles, SOURCE_EXTENSIONS } from './internal/files.js';

/** One finding: where, which rule, and whether `--fix` can apply it. */
export interface AuditFinding {
  rule: string;
  line: number;
  column: number;
  message: string;
  /** An autofix exists: `keel audit --fix` applies it. */
  fixable: boolean;
  /** A suggestion exists (an editor offers it; `--fix` never applies it). */
  suggestion: boolean;
}

export interface AuditReport {
  filesScanned: number;
  /** Files with at least one finding (after fixes, with `--fix`). */
  filesNeedingMigration: number;
  findings: {
    total: number;
    /** Every rule of the plugin, with its count (0 included). */
    byRule: Record<string, number>;
    /** Files with findings, sorted by path; findings by line and column. */
    byFile: { file: string; findings: AuditFinding[] }[];
  };
  /** Files `--fix` rewrote (empty without `--fix`). */
  fixedFiles: string[];
  /** Files the parser could not read: they could not be checked. */
  errors: { file: string; line: number; message: string }[];
  /** True when there is any finding or any file that could not be parsed. */
  migrationNeeded: boolean;
}

export interface AuditOptions {
  /** Apply the rules' autofixes (never their suggestions) and report what remains. */
  fix?: boolean;
  /** How the optional peers are loaded (tests inject a failing one). */
  loadPeer?: PeerLoader;
}

const FEATURE = 'keel audit';

type Plugin = typeof import('./index.js');

/** The optional peers `keel audit` needs, each before those that need it (typescript-eslint needs typescript). */
export const AUDIT_PEERS = ['typescript', 'eslint', '@typescript-eslint/utils', 'typescript-eslint', 'ignore'] as const;

/** True when `error` is Node's "cannot find module" for one of `peers`. */
function needsOneOf(error: unknown, peers: readonly string[]): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') return false;
  const message = String((error as Error).message);
  return peers.some((p) => message.includes(`'${p}'`) || message.includes(`"${p}"`));
}

/**
 * Loads every peer of `keel audit`; throws one `MissingPeerError` that names all those missing,
 * with the one command that installs them (`npm install -D a b c`).
 */
function loadPeers(load: PeerLoader): { ESLint: typeof ESLintClass; parser: Linter.Parser; ignore: IgnoreFactory } {
  const missing: string[] = [];
  const loaded = new Map<string, unknown>();
  for (const name of AUDIT_PEERS) {
    try {
      loaded.set(name, loadPeer(name, FEATURE, load));
    } catch (e) {
      if (isKeelError(e, 'ERR_PEER_MISSING')) missing.push(name);
      // a peer that fails to load for want of another one already missing: the one install fixes both
      else if (!needsOneOf(e, missing)) throw e;
    }
  }
  if (missing.length > 0) throw new MissingPeerError(missing, FEATURE, 'npm install -D');
  return {
    ESLint: (loaded.get('eslint') as { ESLint: typeof ESLintClass }).ESLint,
    parser: (loaded.get('typescript-eslint') as { parser: Linter.Parser }).parser,
    ignore: loaded.get('ignore') as IgnoreFactory,
  };
}

/** Runs the plugin over `root` and returns the report. Throws `MissingPeerError` naming every peer that is not installed. */
export async function audit(root: string, options: AuditOptions = {}): Promise<AuditReport> {
  const { ESLint, parser, ignore } = loadPeers(options.loadPeer ?? requirePeer);
  const plugin: Plugin = await import('./index.js');

  const dir = path.resolve(root);
  const files = listSourceFiles(dir, ignore);
  const ruleIds = Object.keys(plugin.rules).map((r) => `keel/${r}`);
  const report: AuditReport = {
    filesScanned: files.length,
    filesNeedingMigration: 0,
    findings: { total: 0, byRule: Object.fromEntries(ruleIds.map((r) => [r, 0])), byFile: [] },
    fixedFiles: [],
    errors: [],
    migrationNeeded: false,
  };
  if (files.length === 0) return report;

  const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-'));
  try {
    const project = writeProject(scratch, dir, files);
    const eslint = new ESLint({
      cwd: dir,
      overrideConfigFile: true,
      ignore: false,
      fix: options.fix === true,
      overrideConfig: [
        {
          // explicit extensions: ESLint lints no TypeScript file for a universal `**/*`
          files: SOURCE_EXTENSIONS.map((ext) => `**/*${ext}`),
          languageOptions: { parser, sourceType: 'module', parserOptions: { project, tsconfigRootDir: dir } },
          linterOptions: { reportUnusedDisableDirectives: 'off' },
          plugins: { keel: plugin.default as unknown as ESLintClass.Plugin },
          rules: Object.fromEntries(ruleIds.map((r) => [r, 'error'])),
        },
        { files: ['**/*.cjs', '**/*.cts'], languageOptions: { sourceType: 'commonjs' } },
      ],
    });
    const results = await eslint.lintFiles(files.map((f) => path.join(dir, f)));
    if (options.fix === true) {
      await ESLint.outputFixes(results);
      report.fixedFiles = results.filter((r) => r.output !== undefined).map((r) => rel(dir, r.filePath)).sort();
    }
    for (const r of results) {
      const file = rel(dir, r.filePath);
      const findings: AuditFinding[] = [];
      for (const m of r.messages) {
        // a parse error, or ESLint's word that it did not lint the file: either way it was not checked
        if (m.fatal === true || m.ruleId === null) {
          report.errors.push({ file, line: m.line, message: m.message });
          continue;
        }
        if (!m.ruleId.startsWith('keel/')) continue;
        findings.push({ rule: m.ruleId, line: m.line, column: m.column, message: m.message, fixable: m.fix !== undefined, suggestion: (m.suggestions?.length ?? 0) > 0 });
        report.findings.byRule[m.ruleId] = (report.findings.byRule[m.ruleId] ?? 0) + 1;
      }
      if (findings.length === 0) continue;
      findings.sort((a, b) => a.line - b.line || a.column - b.column || a.rule.localeCompare(b.rule));
      report.findings.byFile.push({ file, findings });
      report.findings.total += findings.length;
    }
  } finally {
    fs.rmSync(scratch, { recursive: true, force: true });
  }
  report.findings.byFile.sort((a, b) => a.file.localeCompare(b.file));
  report.errors.sort((a, b) => a.file.localeCompare(b.file) || a.line - b.line);
  report.filesNeedingMigration = report.findings.byFile.length;
  report.migrationNeeded = report.findings.total > 0 || report.errors.length > 0;
  return report;
}

/** The compiler options of a tree that has no tsconfig.json. */
export const DEFAULT_COMPILER_OPTIONS = {
  target: 'ES2022',
  module: 'NodeNext',
  moduleResolution: 'NodeNext',
  jsx: 'preserve',
  strict: true,
  skipLibCheck: true,
} as const;

/**
 * Writes the project the audit lints with: the tree's own tsconfig.json extended (or the default
 * options), every scanned file listed, JavaScript allowed but not type-checked, nothing emitted.
 */
function writeProject(scratch: string, dir: string, files: string[]): string {
  const own = path.join(dir, 'tsconfig.json');
  const config = {
    ...(fs.existsSync(own) ? { extends: own } : {}),
    compilerOptions: {
      ...(fs.existsSync(own) ? {} : DEFAULT_COMPILER_OPTIONS),
      allowJs: true,
      checkJs: false,
      noEmit: true,
      composite: false,
      incremental: false,
      declaration: false,
      emitDeclarationOnly: false,
    },
    files: files.map((f) => path.join(dir, f)),
    include: [],
  };
  const project = path.join(scratch, 'tsconfig.json');
  fs.writeFileSync(project, JSON.stringify(config, null, 2));
  return project;
}

function rel(dir: string, file: string): string {
  return path.relative(dir, file).split(path.sep).join('/');
}
