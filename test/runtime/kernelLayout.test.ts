// The kernel's shape, checked: no import cycle among the files of src/runtime (type-only imports
// included), no file of the kernel over its size, and nothing outside src/runtime reaching into its
// internals or the node class (the lint enforces the last one too; this says it for the kernel).
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const src = resolve(dirname(fileURLToPath(import.meta.url)), '../../src');
const runtime = join(src, 'runtime');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** The relative imports of a file (`import`, `import type`, `export … from`), as absolute paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(/^(?:import|export)\b[^;]*?\bfrom\s+'(\.[^']+)'/gms)) {
    out.push(resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')));
  }
  return out;
}

/** The cycles of a graph, each as the path that closes it (Tarjan would do; a DFS with colours is enough here). */
function cycles(graph: Map<string, string[]>): string[][] {
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

describe('the kernel (src/runtime)', () => {
  const graph = new Map(files(runtime).map((f) => [f, importsOf(f)]));

  it('has no import cycle among its files, type-only imports included', () => {
    const named = cycles(graph).map((c) => c.map((f) => relative(src, f)).join(' -> '));
    expect(named).toEqual([]);
  });

  it('finds a cycle when there is one (the check can fail)', () => {
    const g = new Map([
      ['a', ['b']],
      ['b', ['c']],
      ['c', ['a']],
      ['d', ['a']],
    ]);
    expect(cycles(g)).toEqual([['a', 'b', 'c', 'a']]);
  });

  it('keeps every file under 500 lines of code', () => {
    const long = [...graph.keys()]
      .map((f) => [relative(src, f), readFileSync(f, 'utf8').split('\n').filter((l) => l.trim() !== '' && !/^\s*(\/\/|\/\*\*?|\*)/.test(l)).length] as const)
      .filter(([, n]) => n > 500);
    expect(long).toEqual([]);
  });

  it('is entered from above through kernel.ts only: no file outside src/runtime imports its internals or Node.ts', () => {
    const outside = files(src).filter((f) => !f.startsWith(runtime + '/'));
    const reaching = outside.flatMap((f) =>
      importsOf(f)
        .filter((i) => i.startsWith(join(runtime, 'internal') + '/') || i === join(runtime, 'Node.ts'))
        .map((i) => `${relative(src, f)} imports ${relative(src, i)}`),
    );
    expect(reaching).toEqual([]);
  });
});
