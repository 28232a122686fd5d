#!/usr/bin/env node
import { runKeel } from './main.js';

// the demo's live progress line: rewritten in place on a terminal, one line a second otherwise
let printed = 0;
const progress = process.stdout.isTTY === true
  ? (line: string) => process.stdout.write(`\r${line}`)
  : (line: string) => {
      if (Date.now() - printed < 1000) return;
      printed = Date.now();
      console.log(line);
    };

process.exitCode = await runKeel(process.argv.slice(2), { out: (text) => console.log(text), err: (text) => console.error(text) }, progress);
