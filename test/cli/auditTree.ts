// Copies the audit fixture to a temp dir where `keel` resolves to Keel's own source (a stub
// package in node_modules/keel, which the audit never scans), and type-checks such a tree.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = path.dirname(fileURLToPath(import.meta.url));
export const fixtureTree = path.join(here, '..', 'fixtures', 'audit-tree');
const keelIndex = path.join(here, '..', '..', 'src', 'index.js');

/** A fresh copy of the fixture tree, plus `extra` files (path -> text); removed by `cleanup()`. */
export function copyTree(extra: Record<string, string> = {}): { dir: string; cleanup(): void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-audit-tree-'));
  fs.cpSync(fixtureTree, dir, { recursive: true });
  const stub = path.join(dir, 'node_modules', 'keel');
  fs.mkdirSync(stub, { recursive: true });
  fs.writeFileSync(path.join(stub, 'package.json'), JSON.stringify({ name: 'keel', type: 'module', exports: { '.': { types: './index.d.ts' } } }));
  fs.writeFileSync(path.join(stub, 'index.d.ts'), `export * from ${JSON.stringify(keelIndex)};\n`);
  for (const [file, text] of Object.entries(extra)) {
    fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
    fs.writeFileSync(path.join(dir, file), text);
  }
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/** The type errors of the tree's own TypeScript files (strict, NodeNext), as `file:line: message`. */
export function typeErrors(dir: string, files: string[]): string[] {
  const program = ts.createProgram(
    files.filter((f) => /\.[cm]?tsx?$/.test(f)).map((f) => path.join(dir, f)),
    { target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext, moduleResolution: ts.ModuleResolutionKind.NodeNext, strict: true, noEmit: true, skipLibCheck: true, types: ['node'], typeRoots: [path.join(here, '..', '..', 'node_modules', '@types')] },
  );
  return ts
    .getPreEmitDiagnostics(program)
    .filter((d) => d.file !== undefined && d.file.fileName.startsWith(dir) && !d.file.fileName.includes('/node_modules/'))
    .map((d) => `${path.relative(dir, d.file!.fileName)}:${d.file!.getLineAndCharacterOfPosition(d.start ?? 0).line + 1}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`);
}
