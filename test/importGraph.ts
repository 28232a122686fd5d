// The import graph of src/, for the tests that check its shape (test/layout.test.ts over all of src,
// test/runtime/kernelLayout.test.ts over the kernel): its files, each file's relative imports (type-only
// ones included), and the cycles of a graph, each named by its files.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');

/** The .ts files under `dir`, recursively. */
export function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The relative imports of a file (`import`, `import type`, `export … from`), as absolute paths. */
export function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

/** The import graph of the files under `dir`: each file with its relative imports. */
export function importGraph(dir: string): Map<string, string[]> {
  return new Map(files(dir).map((f) => [f, importsOf(f)]));
}

/** The cycles of a graph, each as the path that closes it (Tarjan would do; a DFS with colours is enough here). */
export function cycles(graph: Map<string, string[]>): string[][] {
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string): void => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of graph.get(n) ?? []) {
      if (!graph.has(m)) continue;
      if (state.get(m) === 'open') found.push([...stack.slice(stack.indexOf(m)), m]);
      else if (state.get(m) === undefined) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of graph.keys()) if (state.get(n) === undefined) visit(n);
  return found;
}

/** The cycles of a graph of src/'s files, each as its files relative to src joined by arrows (`a.ts -> b.ts -> a.ts`). */
export function namedCycles(graph: Map<string, string[]>): string[] {
  return cycles(graph).map((c) => c.map((f) => relative(src, f)).join(' -> '));
}
