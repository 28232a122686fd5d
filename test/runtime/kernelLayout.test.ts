// The kernel's shape, checked: no file of the kernel over its size, and nothing outside src/runtime
// reaching into its internals or the node class (the lint enforces the last one too; this says it for
// the kernel). No import cycle among its files: test/layout.test.ts checks that for all of src.
import { readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { files, importGraph, importsOf, src } from '../importGraph.js';

const runtime = join(src, 'runtime');

describe('the kernel (src/runtime)', () => {
  const graph = importGraph(runtime);

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
