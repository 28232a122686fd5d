import { describe, expect, it } from 'vitest';
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import { chaosSchedule, demoOptions, demoPassed, makeWorkflows, REPORT_DOC, REPORT_LEGEND, runAgentDemo, verdict, type AgentDemoReport } from '../../src/cli/agentDemo.js';
import { parseDemoArgs, runDemoCommand } from '../../src/cli/demoCommand.js';
import { seededRandom as seeded } from '../../src/index.js';
import { expectKeelError, thrown } from '../support.js';

describe('keel demo (npm start)', () => {
  it('runs small under chaos and accounts for every receipt and every workflow', async () => {
    const lines: string[] = [];
    const report = await runAgentDemo({ workers: 4, workflows: 40, chaos: 0.5, seed: 7, json: true }, (l) => lines.push(l));
    const m = report.messages;
    // sent is counted by the sender, delivered by the ledgers: the sum is a real check
    expect(m.sent).toBe(40);
    expect(m.delivered + m.deadLettered + m.failedReported).toBe(m.sent);
    expect(report.checks).toEqual({ messagesAccounted: true, deadLettersAccounted: true, signalsAccounted: true, workflowsAccounted: true, noMonitorLeaks: true });
    expect(demoPassed(report)).toBe(true);
    expect(m.duplicates).toBe(0);
    expect(report.workflows.completed + report.workflows.failed + report.workflows.notStarted).toBe(40);
    expect(report.workflows.notStarted).toBe(0);
    expect(report.monitorsLeaked).toBe(0);
    // Which workflows the chaos fails varies with timing (a worker killed mid-task), so the tasks
    // completed are bounded, not known: a completed workflow completed every task it has, a failed
    // one left at least its failed task undone, and the two with bad input can never complete.
    const flows = makeWorkflows(40, seeded(7), 0.01);
    const bad = (w: (typeof flows)[number]): boolean => w.tasks.some((t) => (t.payload as { bad?: boolean }).bad === true);
    expect([flows.reduce((n, w) => n + w.tasks.length, 0), flows.filter(bad).length]).toEqual([150, 2]);
    expect(report.workflows.failed).toBeGreaterThanOrEqual(2);
    const fewestTasks = flows.filter((w) => !bad(w)).map((w) => w.tasks.length).sort((a, b) => a - b);
    expect(report.tasks.completed).toBeGreaterThanOrEqual(fewestTasks.slice(0, report.workflows.completed).reduce((n, k) => n + k, 0));
    expect(report.tasks.completed).toBeLessThanOrEqual(150 - report.workflows.failed);
    // every dead letter is the queue's: recovered, pending or parked; and what the queue counts as
    // recovered the ledgers counted as handled (it redelivers a 'handled' send as 'handled')
    const d = report.deadLetters;
    expect(d.total).toBe(m.deadLettered);
    expect(d.recovered + d.pending + d.parked).toBe(d.total);
    expect(d.recoveredHandled).toBe(d.recovered);
    expect(d.lostAfterRecovery).toBe(0);
    // the subscribers' own count matches the router's
    expect(report.signals.received).toBe(report.signals.delivered);
    // the --json line carries the fields the issue names
    expect(lines).toHaveLength(1);
    const json = JSON.parse(lines[0]!) as AgentDemoReport;
    for (const key of ['workflows', 'tasks', 'restarts', 'signals', 'deadLetters', 'messages', 'monitorsLeaked'] as const) expect(json).toHaveProperty(key);
    expect(json.workflows).toHaveProperty('completed');
    expect(json.tasks).toHaveProperty('reassigned');
    expect(json.signals).toHaveProperty('dropped');
    expect(json.deadLetters).toHaveProperty('recovered');
    expect(json.deadLetters).toHaveProperty('byReason');
    expect(json.messages).toEqual(m);
  }, 30_000);

  it('the slow subscriber overflows its buffer on any machine: drops are counted by reason', async () => {
    const report = await runAgentDemo({ workers: 4, workflows: 40, chaos: 0, seed: 2, failRate: 0, json: true }, () => {});
    expect(report.kills).toBe(0);
    expect(demoPassed(report)).toBe(true);
    expect(report.workflows.completed).toBe(40);
    // no kill and no bad input: each of the 143 tasks of the seed's 40 workflows completes once,
    // and publishes one signal; each workflow publishes one more when it ends. A task attempt that
    // timed out (none should, at 2 s for 4-19 ms of work) may still publish as it finishes: at most
    // one signal more per timeout.
    const taskSignals = makeWorkflows(40, seeded(2), 0).reduce((n, w) => n + w.tasks.length, 0);
    expect(taskSignals).toBe(143);
    expect(report.tasks.completed).toBe(taskSignals);
    expect(report.signals.published).toBeGreaterThanOrEqual(taskSignals + 40);
    expect(report.signals.published).toBeLessThanOrEqual(taskSignals + 40 + report.tasks.timedOut);
    // paced by publishes, not by time: while workflows run it handles at most one signal per 10
    // published, so at least this many of the task signals it is sent are dropped, on any machine
    // (how many more depends on when its handler runs: a release finds it waiting or not)
    expect(report.signals.dropped).toBeGreaterThanOrEqual(taskSignals - Math.floor(report.signals.published / 10) - 17);
    expect(taskSignals - Math.floor((taskSignals + 40) / 10) - 17).toBe(108);
    expect(Object.values(report.signals.droppedByReason).reduce((a, b) => a + b, 0)).toBe(report.signals.dropped);
    // every drop is the slow subscriber's drop_oldest eviction: the quick ones never fill their
    // buffers, deliveries have no timeout, nobody dies, and the subscriptions go once all is delivered
    expect(report.signals.droppedByReason).toEqual({
      buffer_full: 0, evicted: report.signals.dropped, rejected: 0, delivery_failed: 0, subscriber_down: 0, unsubscribed: 0, router_down: 0,
    });
    expect(report.messages.delivered).toBe(40);
  }, 30_000);

  it('--simulate gives the same report for the same seed, byte for byte, on virtual time', async () => {
    const run = async (seed: number): Promise<string> => {
      const lines: string[] = [];
      const report = await runAgentDemo({ workers: 4, workflows: 60, chaos: 0.4, seed, simulate: true }, (l) => lines.push(l));
      expect(demoPassed(report)).toBe(true);
      return lines.join('\n');
    };
    const first = await run(7);
    expect(first).toContain('of virtual time (simulated: replay it with the same --seed)');
    expect(await run(7)).toBe(first);
    expect(await run(8)).not.toBe(first);
  }, 30_000);

  it('--simulate publishes the same signals for the same seed: their ids come from the run, not from a random UUID', async () => {
    const ids = async (): Promise<string[]> => {
      const seen: string[] = [];
      const listen = (message: unknown): void => {
        seen.push(String((message as { metadata: { id: unknown } }).metadata.id));
      };
      diagnostics.subscribe('keel.signal_router.routed', listen);
      try {
        await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 3, simulate: true }, () => undefined);
      } finally {
        diagnostics.unsubscribe('keel.signal_router.routed', listen);
      }
      return seen;
    };
    const first = await ids();
    expect(first.length).toBeGreaterThan(0);
    expect(await ids()).toEqual(first);
  }, 30_000);

  it('prints a readable report with its checks', async () => {
    const lines: string[] = [];
    await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1, failRate: 0 }, (l) => lines.push(l));
    const text = lines.join('\n');
    expect(text).toContain('workflows      completed 5, failed 0 (none), not started 0  [ok]');
    expect(text).toMatch(/receipts {7}sent 5 = delivered 5 \+ dead-lettered 0 \+ failed and reported 0; handled twice 0 {2}\[ok\]/);
    expect(text).toContain('monitors       leaked 0');
    expect(text).not.toContain('FAILED');
  }, 30_000);

  it('ends the human report with a legend line per section, where to read more, and one verdict line, last', async () => {
    const lines: string[] = [];
    const report = await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1, failRate: 0 }, (l) => lines.push(l));
    const sections = ['workflows', 'tasks', 'chaos', 'signals', 'receipts', 'dead letters', 'monitors'];
    expect(REPORT_LEGEND.map(([label]) => label)).toEqual(sections);
    // each section: its line of numbers, and its line of legend after them
    for (const label of sections) expect(lines.filter((l) => l.startsWith(`  ${label.padEnd(13)}  `)), label).toHaveLength(2);
    const legend = lines.indexOf('what each line counts:');
    expect(lines.slice(legend + 1, legend + 1 + sections.length)).toEqual(REPORT_LEGEND.map(([label, text]) => `  ${label.padEnd(13)}  ${text}`));
    expect(lines.slice(legend + 1 + sections.length)).toEqual([
      'more: docs/agents/demo.md explains each line and term of this report',
      'verdict: ok: all 5 workflows, 5 receipts and ' + report.signals.published + ' signals accounted for, no monitor leaked',
    ]);
    expect(lines.filter((l) => l.startsWith('verdict: '))).toHaveLength(1);
    // the terms the legend uses are explained where it points
    const doc = fs.readFileSync(new URL(`../../${REPORT_DOC}`, import.meta.url), 'utf8');
    for (const label of sections) expect(doc, label).toContain(`\n### ${label}\n`);
    for (const term of ['**routed**', '**evicted**', '**ledgers**', '**receipt**', '**recovered by the queue\'s retries**', '**parked**', '**reassigned**', '**leak age**', '**kills**']) {
      expect(doc, term).toContain(term);
    }
  }, 30_000);

  it('says in its verdict what is not accounted for, with the numbers', async () => {
    const lines: string[] = [];
    const report = await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1, inject: { leakedMonitor: 'long' } }, (l) => lines.push(l));
    expect(lines.at(-1)).toBe('verdict: FAILED: not accounted for: monitors (1 leaked)');
    expect(verdict(report)).toBe(lines.at(-1));
    // a receipt lost and a workflow missing: each named with its numbers, in the report's order
    const broken: AgentDemoReport = {
      ...report,
      messages: { ...report.messages, delivered: report.messages.delivered - 1 },
      workflows: { ...report.workflows, completed: report.workflows.completed - 1 },
      checks: { ...report.checks, messagesAccounted: false, workflowsAccounted: false },
    };
    const w = broken.workflows;
    expect(verdict(broken)).toBe(
      `verdict: FAILED: not accounted for: workflows (completed ${w.completed} + failed ${w.failed} + not started ${w.notStarted} of 5); ` +
        `receipts (sent 5, delivered, dead-lettered or reported 4, handled twice 0); monitors (1 leaked)`,
    );
  }, 30_000);

  it('--json keeps its shape: the same fields as before the legend and the verdict', async () => {
    const lines: string[] = [];
    await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1, json: true }, (l) => lines.push(l));
    expect(lines).toHaveLength(1);
    const json = JSON.parse(lines[0]!) as Record<string, Record<string, unknown>>;
    expect(Object.keys(json)).toEqual(['options', 'durationMs', 'workflows', 'tasks', 'restarts', 'kills', 'signals', 'deadLetters', 'messages', 'monitorsLeaked', 'checks']);
    expect(Object.keys(json.workflows!)).toEqual(['total', 'completed', 'failed', 'notStarted', 'failedBy']);
    expect(Object.keys(json.signals!)).toEqual(['published', 'routed', 'delivered', 'received', 'dropped', 'droppedByReason']);
    expect(Object.keys(json.deadLetters!)).toEqual(['total', 'byReason', 'recovered', 'recoveredHandled', 'lostAfterRecovery', 'pending', 'parked']);
    expect(Object.keys(json.messages!)).toEqual(['sent', 'delivered', 'deadLettered', 'failedReported', 'duplicates']);
    expect(Object.keys(json.checks!)).toEqual(['messagesAccounted', 'deadLettersAccounted', 'signalsAccounted', 'workflowsAccounted', 'noMonitorLeaks']);
  }, 30_000);

  it('the same seed gives the same workflows and the same chaos schedule', () => {
    expect(makeWorkflows(20, seeded(5), 0.1)).toEqual(makeWorkflows(20, seeded(5), 0.1));
    expect(makeWorkflows(20, seeded(5))).not.toEqual(makeWorkflows(20, seeded(6)));
    const a = chaosSchedule(9, 0.5, 8);
    const b = chaosSchedule(9, 0.5, 8);
    const ticks = Array.from({ length: 200 }, a);
    expect(ticks).toEqual(Array.from({ length: 200 }, b));
    // seeded: the same 91 kills in the first 200 ticks every time (rate 0.5: about half of them)
    expect(ticks.filter((v) => v !== undefined).length).toBe(91);
    expect(new Set(ticks.map((v) => v?.split('-')[0]))).toEqual(new Set([undefined, 'worker', 'ledger']));
    expect(Array.from({ length: 200 }, chaosSchedule(10, 0.5, 8))).not.toEqual(ticks);
    expect(Array.from({ length: 50 }, chaosSchedule(9, 0, 8)).every((v) => v === undefined)).toBe(true);
  });

  it('tasks with bad input fail their workflows, and each failed workflow is reported with its reason', async () => {
    const report = await runAgentDemo({ workers: 3, workflows: 30, chaos: 0, seed: 4, failRate: 0.1, json: true }, () => {});
    const expected = makeWorkflows(30, seeded(4), 0.1).filter((w) => w.tasks.some((t) => (t.payload as { bad?: boolean }).bad === true)).length;
    expect(expected).toBe(10); // seeded: the same 10 of the 30 workflows get a task with bad input every time
    expect(report.workflows.failed).toBe(expected);
    expect(report.workflows.failedBy).toEqual({ 'bad input': expected });
    expect(report.workflows.completed).toBe(30 - expected);
    expect(report.messages.sent).toBe(30); // a failed workflow sends its receipt too
    expect(demoPassed(report)).toBe(true);
  }, 30_000);

  it('--duration: past it no workflow starts, and those are reported as not started', async () => {
    const report = await runAgentDemo({ workers: 4, workflows: 2000, chaos: 0, seed: 3, duration: 0.05, json: true }, () => {});
    // How many start in 50 ms varies with the machine. At most: the 32 lanes' first workflows, and one
    // more per workflow that ended by the deadline; each ends on a task (its last, or a bad one) and
    // a task takes at least 4 ms (3 ms for a timer that fires a millisecond early) on one of 4 workers
    // that run one task at a time, so at most 4 * (floor(50 / 3) + 1) = 68 ended: 100 started at most.
    expect(report.workflows.notStarted).toBeGreaterThanOrEqual(2000 - 32 - 4 * (Math.floor(50 / 3) + 1));
    expect(report.workflows.completed + report.workflows.failed + report.workflows.notStarted).toBe(2000);
    expect(report.messages.sent).toBe(report.workflows.completed + report.workflows.failed);
    expect(demoPassed(report)).toBe(true);
  }, 30_000);

  it('the leak check catches a leaked monitor, short-lived or long-lived', async () => {
    for (const leakedMonitor of ['short', 'long'] as const) {
      const report = await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1, json: true, inject: { leakedMonitor } }, () => {});
      expect(report.monitorsLeaked).toBe(1);
      expect(report.checks.noMonitorLeaks).toBe(false);
      expect(demoPassed(report)).toBe(false);
      expect(report.options).not.toHaveProperty('inject');
    }
  }, 30_000);

  it('parses its flags and refuses bad ones with typed errors', () => {
    expect(parseDemoArgs(['--workers', '3', '--workflows', '10', '--chaos', '0.1', '--seed', '4', '--duration', '5', '--json'])).toEqual({
      workers: 3, workflows: 10, chaos: 0.1, seed: 4, duration: 5, json: true,
    });
    expect(parseDemoArgs(['--fail-rate', '0'])).toEqual({ failRate: 0 });
    expect(parseDemoArgs(['--simulate', '--seed', '7'])).toEqual({ simulate: true, seed: 7 });
    // a bad value is refused while parsing, before anything starts
    expectKeelError(thrown(() => parseDemoArgs(['--workers', '0'])), 'ERR_INVALID_ARGUMENT', '--workers');
    expectKeelError(thrown(() => parseDemoArgs(['--fail-rate', '2'])), 'ERR_INVALID_ARGUMENT', '--fail-rate');
    expectKeelError(thrown(() => parseDemoArgs(['--nope'])), 'ERR_INVALID_ARGUMENT', '--nope');
    expectKeelError(thrown(() => parseDemoArgs(['--workers'])), 'ERR_INVALID_ARGUMENT', '--workers');
    expectKeelError(thrown(() => parseDemoArgs(['--chaos', 'lots'])), 'ERR_INVALID_ARGUMENT', '--chaos');
    expectKeelError(thrown(() => demoOptions({ workers: 0 })), 'ERR_INVALID_ARGUMENT', '--workers');
    expectKeelError(thrown(() => demoOptions({ chaos: 2 })), 'ERR_INVALID_ARGUMENT', '--chaos');
    expectKeelError(thrown(() => demoOptions({ duration: 0 })), 'ERR_INVALID_ARGUMENT', '--duration');
    expectKeelError(thrown(() => demoOptions({ workflows: 1.5 })), 'ERR_INVALID_ARGUMENT', '--workflows');
  });
});

describe('keel demo stopped by Ctrl-C', () => {
  it('the first SIGINT starts no new workflow: those running finish, the report comes (the rest not started) and the exit is 0', async () => {
    const out: string[] = [];
    const err: string[] = [];
    const before = process.listenerCount('SIGINT');
    let sent = false;
    // a run far longer than the test: stopped at its first progress line (a person watching presses Ctrl-C)
    const code = await runDemoCommand(['--workflows', '1000000', '--duration', '3600', '--chaos', '0', '--workers', '4'], { out: (l) => out.push(l), err: (l) => err.push(l) }, () => {
      if (sent) return;
      sent = true;
      process.emit('SIGINT', 'SIGINT');
    });
    expect(code).toBe(0);
    expect(sent).toBe(true);
    expect(err).toEqual(['keel demo: no new workflow starts; those running finish, then the report (again to quit at once)']);
    const workflows = out.find((l) => /^\s*workflows\s/.test(l));
    const [, completed, failed, notStarted] = /completed (\d+), failed (\d+) .*not started (\d+)/.exec(workflows ?? '') ?? [];
    expect(Number(completed) + Number(failed) + Number(notStarted)).toBe(1_000_000);
    expect(Number(notStarted)).toBeGreaterThan(990_000);
    expect(out.at(-1)).toMatch(/^verdict: ok/);
    expect(process.listenerCount('SIGINT')).toBe(before); // released
  }, 60_000);
});
