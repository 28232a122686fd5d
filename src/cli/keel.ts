#!/usr/bin/env node
import { runDemo } from './demo.js';

const USAGE = `usage: keel <command>

commands:
  demo    run a small example of the kernel and print what happened`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'demo':
      await runDemo();
      return 0;
    case undefined:
    case '-h':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`keel: unknown command '${command}'\n\n${USAGE}`);
      return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
