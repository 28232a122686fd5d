// Every code example of README.md and docs/**/*.md is a test named `<file>:<line>`: type-checked
// as a consumer's code against the built package (dist/, built here when missing or stale), run
// with node unless it is a fragment, its output compared with the `text output` block after it,
// and a lint rule's examples linted with the rule (see ./doctest.ts for the annotations).
import fs from 'node:fs';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { blockName, checkBlocks, type CheckResult, ensureBuilt, extractDocs, lintFailures, makeRunDir, runChecked } from './doctest.js';

const { blocks, problems } = extractDocs();
let dir: string | undefined;
let check: CheckResult | undefined;

beforeAll(() => {
  ensureBuilt();
  dir = makeRunDir();
  check = checkBlocks(blocks, dir);
}, 240_000);

afterAll(() => {
  if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
});

function checked(name: string): NonNullable<CheckResult>['checked'][number] {
  if (check === undefined) throw new Error('the blocks are checked in beforeAll');
  const c = check.checked.find((x) => blockName(x.block) === name);
  if (c === undefined) throw new Error(`no checked block ${name}`);
  return c;
}

describe('the code examples of the docs', () => {
  it('finds the examples, and every annotation is well formed', ({ expect }) => {
    expect(blocks.length).toBeGreaterThan(20);
    expect(problems.map((p) => `${p.file}:${p.line}: ${p.message}`)).toEqual([]);
  });

  it('type-checks with no error outside the examples (options, the package declarations)', ({ expect }) => {
    expect(check?.global).toEqual([]);
  });

  for (const block of blocks) {
    const name = blockName(block);
    it.concurrent(
      name,
      async ({ expect }) => {
        const c = checked(name);
        expect(c.diagnostics, `${name} does not type-check`).toEqual([]);
        if (block.lintRule !== undefined) expect(lintFailures(c, check!.program)).toEqual([]);
        if (block.mode === 'run') expect(await runChecked(c, { timeoutMs: 30_000 })).toEqual([]);
      },
      60_000,
    );
  }
});
