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

process.exitCode = await runKeel(process.argv.slice(2), { out: (text) => console.log(text), err: (text) => console.error(text) }, progress);
