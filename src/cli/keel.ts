#!/usr/bin/env node
import { runDemo } from './demo.js';
import { runServicesDemo } from './demoServices.js';
import { AUDIT_USAGE, runAudit } from './audit.js';
import { DLQ_USAGE, runDlq } from './dlq.js';

const USAGE = `usage: keel <command>

commands:
  demo    run a small example of Keel and print what happened
  dlq     inspect and manage a SQLite dead letter store
  audit   report what a tree needs to migrate to Keel (the rules of keel/eslint-plugin)

${DLQ_USAGE}

${AUDIT_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'demo':
      console.log('-- processes, links, monitors and exits');
      await runDemo();
      console.log('\n-- supervisors, GenServers, supervised send, dead letters, managed monitors');
      await runServicesDemo();
      return 0;
    case 'dlq':
      return runDlq(argv.slice(1), (line) => console.log(line));
    case 'audit':
      return runAudit(argv.slice(1), (text) => console.log(text));
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
