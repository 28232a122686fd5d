#!/usr/bin/env node
import { exitOnWriteError, progressPrinter, runKeel } from './main.js';

// the demo's live progress line: rewritten in place on a terminal, one line a second otherwise
const progress = progressPrinter(process.stdout);

// once the reader of stdout is gone (keel demo | head), exit quietly rather than of an unhandled EPIPE,
// with the command's exit code if it is done (keel audit | head)
exitOnWriteError(
  process.stdout,
  (text) => console.error(text),
  (code) => process.exit(code),
  () => (typeof process.exitCode === 'number' ? process.exitCode : undefined),
);

// stderr only says how it goes (progress, warnings): once its reader is gone (keel soak 2>&1 >report | head)
// its lines are lost, not the command, which goes on to its output on stdout and its exit code; it died
// of the unhandled EPIPE with exit 1, the code of a failed check, and no report
process.stderr.on('error', () => undefined);

process.exitCode = await runKeel(process.argv.slice(2), { out: (text) => console.log(text), err: (text) => console.error(text) }, progress);
