// `npm run bench:ab -- --base <checkout> [--runs N] <name>...`: before and after. Runs each named
// bench on Keel in this tree and in another built checkout of it (the base: a `git worktree` of the
// commit before, say), each run a cold process, interleaved pair by pair (the two sides of a pair
// take turns going first). `change` is the median of the per-pair ratios (this tree / base): 1.1 is 10%
// faster here. A change to a hot path is then measured against the drift of a loaded machine, which
// two separate `npm run bench` runs (minutes apart) do not cancel. Default: 15 pairs.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { pairedChange } from './stats.mjs';

function fail(message) {
  console.error(`${message}\nusage: npm run bench:ab -- --base <built checkout> [--runs N] <bench>...`);
  process.exit(2);
}

const { values, positionals } = parseArgs({
  options: { base: { type: 'string' }, runs: { type: 'string', default: '15' } },
  allowPositionals: true,
});
if (values.base === undefined || positionals.length === 0) fail('name a base checkout and at least one bench');
const runs = Number(values.runs);
if (!Number.isSafeInteger(runs) || runs < 1) fail(`--runs: a positive integer, not '${values.runs}'`);
const here = fileURLToPath(new URL('./worker.mjs', import.meta.url));
const base = resolve(values.base, 'bench/worker.mjs');
for (const file of [base, resolve(values.base, 'dist/index.js')]) {
  if (!existsSync(file)) fail(`${file} is missing: --base must be a checkout of Keel built with npm run build`);
}

function once(worker, bench) {
  const out = execFileSync(process.execPath, ['--expose-gc', worker, 'keel', bench], { encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').pop());
}

for (const bench of positionals) {
  const ours = [];
  const theirs = [];
  for (let i = 0; i < runs; i++) {
    // who goes first alternates: a machine that favours the second run of a pair (seen here: an A/A
    // comparison of one build with itself gave 0.85) biases neither side
    if (i % 2 === 0) {
      ours.push(once(here, bench));
      theirs.push(once(base, bench));
    } else {
      theirs.push(once(base, bench));
      ours.push(once(here, bench));
    }
  }
  console.log(JSON.stringify({ bench, ...pairedChange(ours, theirs), runs }));
}
