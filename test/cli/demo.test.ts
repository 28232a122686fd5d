import { describe, expect, it } from 'vitest';
import { runDemo } from '../../src/cli/demo.js';
import { runServicesDemo } from '../../src/cli/demoServices.js';

describe('keel demo (npm start)', () => {
  it('recovers the crashed worker and answers every job', async () => {
    const lines: string[] = [];
    await runDemo((line) => lines.push(line));
    expect(lines).toContain('results: 1^2=1 by beta, 2^2=4 by alpha, 3^2=9 by beta, 4^2=16 by alpha, 5^2=25 by beta, 6^2=36 by alpha');
    expect(lines).toContain('crashes seen and recovered: 1; jobs unanswered: 0');
    expect(lines.at(-1)).toBe('node demo shut down');
  });

  it('shows a supervised restart, supervised sends, a dead letter and the monitor ledger', async () => {
    const lines: string[] = [];
    await runServicesDemo((line) => lines.push(line));
    expect(lines).toContain("  event keel.supervisor.child_restarted: 'ledger' restart #1");
    expect(lines).toContain('charge 200 -> total 200 (a fresh ledger after the restart)');
    expect(lines.some((l) => l.startsWith("supervised send to 'ledger' (ack handled): ok=true after 1 attempt(s)"))).toBe(true);
    expect(lines).toContain("supervised send to 'billing' (not registered): noproc after 3 attempts, dead letter 1");
    expect(lines).toContain('dead letter queue: 1 pending, 1 added');
    expect(lines).toContain('monitor manager afterwards: 0 active, 1 cleaned');
  });
});
