// The files `keel audit` scans: the tree's JavaScript and TypeScript sources, honouring .gitignore.
// In a git work tree git itself answers (`ls-files --cached --others --exclude-standard`: every
// .gitignore, .git/info/exclude and the global excludes); elsewhere the tree's .gitignore files
// (root and nested) are matched by the `ignore` package (an optional peer of `keel audit`), which
// follows git's rules. node_modules and dist are never scanned.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Ignore } from 'ignore';
import { loadPeer, type PeerLoader, requirePeer } from '../peers.js';

/** The `ignore` package's factory (CommonJS: `require('ignore')` is the function). */
export type IgnoreFactory = (options?: { ignorecase?: boolean }) => Ignore;

/** Loads the optional peer `ignore` for `keel audit` (a missing one is `MissingPeerError`). */
export function loadIgnore(load: PeerLoader = requirePeer): IgnoreFactory {
  return loadPeer<IgnoreFactory>('ignore', 'keel audit', load);
}

/** The extensions `keel audit` scans. */
export const SOURCE_EXTENSIONS: readonly string[] = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'];

const ALWAYS_SKIPPED = new Set(['node_modules', 'dist', '.git']);

function isSource(rel: string): boolean {
  return SOURCE_EXTENSIONS.includes(path.extname(rel)) && !rel.endsWith('.d.ts') && !rel.split('/').some((s) => ALWAYS_SKIPPED.has(s));
}

/**
 * The source files under `root`, relative to it with forward slashes, sorted. Outside a git work
 * tree the .gitignore files are read with `ignore` (loaded when not given).
 */
export function listSourceFiles(root: string, ignore?: IgnoreFactory): string[] {
  const files = gitFiles(root) ?? walk(root, ignore ?? loadIgnore());
  return [...new Set(files.filter(isSource))].filter((f) => fs.statSync(path.join(root, f), { throwIfNoEntry: false })?.isFile()).sort();
}
function gitFiles(root: string): string[] | undefined {
  try {
    const inside = execFileSync('git', ['-C', root, 'rev-parse', '--is-inside-work-tree'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    if (inside.trim() !== 'true') return undefined;
    const out = execFileSync('git', ['-C', root, 'ls-files', '-z', '--cached', '--others', '--exclude-standard', '--', '.'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      maxBuffer: 256 * 1024 * 1024,
    });
    return out.split('\0').filter((f) => f !== '');
  } catch {
    return undefined; // not a git tree, or no git: read the .gitignore files ourselves
  }
}

/** The rules of one .gitignore file, for the paths under its folder. */
interface Layer {
  base: string; // the folder of the .gitignore, relative to the root ('' for the root)
  rules: Ignore;
}

// git compares paths case-sensitively unless core.ignorecase is set, which `git init` does on the
// case-insensitive file systems of macOS and Windows
const IGNORECASE = process.platform === 'darwin' || process.platform === 'win32';

/** @internal One .gitignore's text as rules for the paths under `base` (relative to the root). */
export function parseGitignore(text: string, base: string, ignore: IgnoreFactory = loadIgnore()): Layer[] {
  return [{ base, rules: ignore({ ignorecase: IGNORECASE }).add(text) }];
}

/**
 * True when `rel` (relative to the root; `isDir` for a folder) is ignored by `layers`, the rules of
 * the .gitignore files from the root down: as in git, a deeper file's rules take precedence over
 * those above it, and within a file the last matching rule (a `!` one included) decides.
 */
export function isIgnored(layers: readonly Layer[], rel: string, isDir: boolean): boolean {
  for (let i = layers.length - 1; i >= 0; i--) {
    const { base, rules } = layers[i]!;
    const local = base === '' ? rel : rel.startsWith(`${base}/`) ? rel.slice(base.length + 1) : undefined;
    if (local === undefined) continue;
    const { ignored, unignored } = rules.test(isDir ? `${local}/` : local);
    if (ignored || unignored) return ignored;
  }
  return false;
}

function walk(root: string, ignore: IgnoreFactory): string[] {
  const out: string[] = [];
  // a folder that is ignored is not entered: as in git, nothing under it can be re-included
  const visit = (dir: string, layers: Layer[]): void => {
    const ignoreFile = path.join(root, dir, '.gitignore');
    // git reads a .gitignore that is a file, and takes one that is not (a directory of that name) as none
    const here = fs.statSync(ignoreFile, { throwIfNoEntry: false })?.isFile() === true ? [...layers, ...parseGitignore(fs.readFileSync(ignoreFile, 'utf8'), dir, ignore)] : layers;
    for (const entry of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir === '' ? entry.name : `${dir}/${entry.name}`;
      if (entry.isDirectory()) {
        if (!ALWAYS_SKIPPED.has(entry.name) && !isIgnored(here, rel, true)) visit(rel, here);
      } else if (entry.isFile() && !isIgnored(here, rel, false)) {
        out.push(rel);
      }
    }
  };
  visit('', []);
  return out;
}
