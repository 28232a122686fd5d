import { describe, expect, it } from 'vitest';
import { demoOptions, makeWorkflows, parseDemoArgs, runAgentDemo, seeded, type AgentDemoReport } from '../../src/cli/agentDemo.js';
import { expectKeelError, thrown } from '../support.js';

describe('keel demo (npm start)', () => {
  it('runs small under chaos and accounts for every receipt and every workflow', async () => {
    const lines: string[] = [];
    const report = await runAgentDemo({ workers: 4, workflows: 40, chaos: 0.5, seed: 7, json: true }, (l) => lines.push(l));
    const m = report.messages;
    // sent is counted by the sender, delivered by the ledgers: the sum is a real check
    expect(m.sent).toBe(40);
    expect(m.delivered + m.deadLettered + m.failedReported).toBe(m.sent);
    expect(report.checks).toEqual({ messagesAccounted: true, workflowsAccounted: true, noMonitorLeaks: true });
    expect(report.workflows.completed + report.workflows.failed + report.workflows.notStarted).toBe(40);
    expect(report.workflows.notStarted).toBe(0);
    expect(report.monitorsLeaked).toBe(0);
    expect(report.tasks.completed).toBeGreaterThan(0);
    // what the queue recovered was handled by a ledger
    expect(m.recoveredHandled).toBeLessThanOrEqual(m.deadLettered);
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

  it('the slow subscriber overflows its buffer: drops are counted by reason', async () => {
    const report = await runAgentDemo({ workers: 4, workflows: 40, chaos: 0, seed: 2, json: true }, () => {});
    expect(report.kills).toBe(0);
    expect(report.workflows.completed).toBe(40);
    expect(report.signals.dropped).toBeGreaterThan(0);
    expect(Object.values(report.signals.droppedByReason).reduce((a, b) => a + b, 0)).toBe(report.signals.dropped);
    expect(report.messages.delivered).toBe(40);
  }, 30_000);

  it('prints a readable report with its checks', async () => {
    const lines: string[] = [];
    await runAgentDemo({ workers: 2, workflows: 5, chaos: 0, seed: 1 }, (l) => lines.push(l));
    const text = lines.join('\n');
    expect(text).toContain('workflows      completed 5, failed 0, not started 0');
    expect(text).toMatch(/receipts {7}sent 5 = delivered 5 \+ dead-lettered 0 \+ failed and reported 0 {2}\[ok\]/);
    expect(text).toContain('monitors       leaked 0');
  }, 30_000);

  it('the same seed gives the same workflows and the same chaos draws', () => {
    expect(makeWorkflows(20, seeded(5))).toEqual(makeWorkflows(20, seeded(5)));
    expect(makeWorkflows(20, seeded(5))).not.toEqual(makeWorkflows(20, seeded(6)));
    const a = seeded(9);
    const b = seeded(9);
    expect(Array.from({ length: 50 }, a)).toEqual(Array.from({ length: 50 }, b));
  });

  it('parses its flags and refuses bad ones with typed errors', () => {
    expect(parseDemoArgs(['--workers', '3', '--workflows', '10', '--chaos', '0.1', '--seed', '4', '--duration', '5', '--json'])).toEqual({
      workers: 3, workflows: 10, chaos: 0.1, seed: 4, duration: 5, json: true,
    });
    expectKeelError(thrown(() => parseDemoArgs(['--nope'])), 'ERR_INVALID_ARGUMENT', '--nope');
    expectKeelError(thrown(() => parseDemoArgs(['--workers'])), 'ERR_INVALID_ARGUMENT', '--workers');
    expectKeelError(thrown(() => parseDemoArgs(['--chaos', 'lots'])), 'ERR_INVALID_ARGUMENT', '--chaos');
    expectKeelError(thrown(() => demoOptions({ workers: 0 })), 'ERR_INVALID_ARGUMENT', '--workers');
    expectKeelError(thrown(() => demoOptions({ chaos: 2 })), 'ERR_INVALID_ARGUMENT', '--chaos');
    expectKeelError(thrown(() => demoOptions({ duration: 0 })), 'ERR_INVALID_ARGUMENT', '--duration');
    expectKeelError(thrown(() => demoOptions({ workflows: 1.5 })), 'ERR_INVALID_ARGUMENT', '--workflows');
  });
});
