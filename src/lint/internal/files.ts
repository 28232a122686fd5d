// The files `keel audit` scans: the tree's JavaScript and TypeScript sources, honouring .gitignore.
// In a git work tree git itself answers (`ls-files --cached --others --exclude-standard`: every
// .gitignore, .git/info/exclude and the global excludes); elsewhere the tree's .gitignore files
// are read here (root and nested; `!` negations, `/` anchors, trailing `/` for directories, `*`,
// `**`, `?` and `[...]`). node_modules and dist are never scanned.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

/** The extensions `keel audit` scans. */
export const SOURCE_EXTENSIONS: readonly string[] = ['.ts', '.tsx', '.mts', '.cts', '.js', '.jsx', '.mjs', '.cjs'];

const ALWAYS_SKIPPED = new Set(['node_modules', 'dist', '.git']);

function isSource(rel: string): boolean {
  return SOURCE_EXTENSIONS.includes(path.extname(rel)) && !rel.endsWith('.d.ts') && !rel.split('/').some((s) => ALWAYS_SKIPPED.has(s));
}

/** The source files under `root`, relative to it with forward slashes, sorted. */
export function listSourceFiles(root: string): string[] {
  const files = gitFiles(root) ?? walk(root);
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

interface Rule {
  base: string; // the folder of the .gitignore, relative to the root ('' for the root)
  negate: boolean;
  dirOnly: boolean;
  regex: RegExp;
}

/** @internal Parses one .gitignore's text into rules relative to `base`. */
export function parseGitignore(text: string, base: string): Rule[] {
  const rules: Rule[] = [];
  for (const raw of text.split(/\r?\n/)) {
    let line = raw.replace(/(?<!\\)\s+$/, '');
    if (line === '' || line.startsWith('#')) continue;
    const negate = line.startsWith('!');
    if (negate) line = line.slice(1);
    if (line.startsWith('\\')) line = line.slice(1);
    const dirOnly = line.endsWith('/');
    if (dirOnly) line = line.slice(0, -1);
    const anchored = line.includes('/');
    if (line.startsWith('/')) line = line.slice(1);
    if (line === '') continue;
    const body = globToRegex(line);
    rules.push({ base, negate, dirOnly, regex: new RegExp(anchored ? `^${body}$` : `^(?:.*/)?${body}$`) });
  }
  return rules;
}

function globToRegex(glob: string): string {
  let out = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*' && glob[i + 1] === '*') {
      const slashAfter = glob[i + 2] === '/';
      out += slashAfter ? '(?:.*/)?' : '.*';
      i += slashAfter ? 2 : 1;
    } else if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = glob.indexOf(']', i + 1);
      if (end < 0) out += '\\[';
      else {
        out += `[${glob.slice(i + 1, end).replace(/^!/, '^').replace(/\\/g, '\\\\')}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < glob.length) out += `\\${glob[++i]!}`;
    else out += /[.+^${}()|\\/]/.test(c) ? `\\${c}` : c;
  }
  return out;
}

/** True when the last rule that matches `rel` (relative to the root) ignores it. */
export function isIgnored(rules: readonly Rule[], rel: string, isDir: boolean): boolean {
  let ignored = false;
  for (const r of rules) {
    if (r.dirOnly && !isDir) continue;
    const local = r.base === '' ? rel : rel.startsWith(`${r.base}/`) ? rel.slice(r.base.length + 1) : undefined;
    if (local !== undefined && r.regex.test(local)) ignored = !r.negate;
  }
  return ignored;
}

function walk(root: string): string[] {
  const out: string[] = [];
  const visit = (dir: string, rules: Rule[]): void => {
    const ignoreFile = path.join(root, dir, '.gitignore');
    const here = fs.existsSync(ignoreFile) ? [...rules, ...parseGitignore(fs.readFileSync(ignoreFile, 'utf8'), dir)] : rules;
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
