#!/usr/bin/env node
import { isKeelError } from '../errors.js';
import { demoPassed, parseDemoArgs, runAgentDemo } from './agentDemo.js';
import { runDemo } from './demo.js';
import { runServicesDemo } from './demoServices.js';
import { AUDIT_USAGE, runAudit } from './audit.js';
import { DLQ_USAGE, runDlq } from './dlq.js';
import { runSoakCommand, SOAK_USAGE } from './soakCommand.js';

const USAGE = `usage: keel <command>

commands:
  demo    the agent layer under chaos: a coordinator, supervised workers, a signal router, an agent
          scheduler and the dead letter queue, with a report that accounts for every message
          keel demo [--workers 8] [--workflows 300] [--chaos 0.2] [--seed 1] [--duration 30]
                    [--fail-rate 0.01] [--json] [--simulate]
          --simulate runs on virtual time with deterministic scheduling: the same --seed prints
          the same report, byte for byte
  soak    the reliability soak: supervised sends under chaos at a rate, every message accounted
          for, leaks and heap checked; --overload: each overflow policy under a 10x faster producer
  tour    a short walk through processes, links, supervisors, GenServers and supervised send
  dlq     inspect and manage a SQLite dead letter store
  audit   report what a tree needs to migrate to Keel (the rules of keel/eslint-plugin)

${SOAK_USAGE}

${DLQ_USAGE}

${AUDIT_USAGE}`;

async function main(argv: string[]): Promise<number> {
  const [command] = argv;
  switch (command) {
    case 'demo': {
      let options;
      try {
        options = parseDemoArgs(argv.slice(1));
      } catch (e) {
        if (!isKeelError(e)) throw e;
        console.error(`keel demo: ${e.message}`);
        return 2;
      }
      // the live progress line: rewritten in place on a terminal, one line a second otherwise
      let printed = 0;
      const progress = options.json === true ? undefined : process.stdout.isTTY === true
        ? (line: string) => process.stdout.write(`\r${line}`)
        : (line: string) => {
            if (Date.now() - printed < 1000) return;
            printed = Date.now();
            console.log(line);
          };
      const report = await runAgentDemo(options, (line) => console.log(line), progress);
      return demoPassed(report) ? 0 : 1;
    }
    case 'soak':
      // the report on stdout; the progress and, under --simulate, the real heap figures on stderr
      return runSoakCommand(argv.slice(1), (line) => console.log(line), (line) => console.error(line));
    case 'tour':
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
