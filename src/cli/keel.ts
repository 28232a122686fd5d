#!/usr/bin/env node
import { exitOnWriteError, runKeel } from './main.js';

// the demo's live progress line: rewritten in place on a terminal, one line a second otherwise
let printed = 0;
const progress = process.stdout.isTTY === true
  ? (line: string) => process.stdout.write(`\r${line}`)
  : (line: string) => {
      if (Date.now() - printed < 1000) return;
      printed = Date.now();
      console.log(line);
    };

// once the reader of stdout is gone (keel demo | head), exit quietly rather than of an unhandled EPIPE
exitOnWriteError(process.stdout, (text) => console.error(text), (code) => process.exit(code));

process.exitCode = await runKeel(process.argv.slice(2), { out: (text) => console.log(text), err: (text) => console.error(text) }, progress);
