#!/usr/bin/env node
import { exitOnWriteError, progressPrinter, runKeel } from './main.js';

// the demo's live progress line: rewritten in place on a terminal, one line a second otherwise
const progress = progressPrinter(process.stdout);

// once the reader of stdout is gone (keel demo | head), exit quietly rather than of an unhandled EPIPE
exitOnWriteError(process.stdout, (text) => console.error(text), (code) => process.exit(code));

process.exitCode = await runKeel(process.argv.slice(2), { out: (text) => console.log(text), err: (text) => console.error(text) }, progress);
