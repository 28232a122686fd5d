// `keel soak --simulate` and `--overload --simulate`: on a SimulatedClock the same seed replays the
// same report, byte for byte (the SQLite dead letter store included); the real heap is printed apart.
import { describe, expect, it } from 'vitest';
import { runOverload, overloadPassed } from '../../src/cli/overload.js';
import { runSoak, SOAK_WORKERS, soakPassed } from '../../src/cli/soak.js';

const WORKERS = SOAK_WORKERS.named + SOAK_WORKERS.lossy + SOAK_WORKERS.pool;

/** The report's lines on `print`, and what went `aside`. */
async function soak(seed: number, json = false): Promise<{ out: string; aside: string[] }> {
  const out: string[] = [];
  const aside: string[] = [];
  const report = await runSoak({ duration: 5, rate: 5000, kill: 0.1, seed, simulate: true, json }, (l) => out.push(l), (l) => aside.push(l));
  expect(soakPassed(report)).toBe(true);
  return { out: out.join('\n'), aside };
}

describe('keel soak --simulate', () => {
  it('replays the same report byte for byte for the same seed, and another for another seed', async () => {
    const first = await soak(7);
    const again = await soak(7);
    expect(again.out).toBe(first.out);
    expect((await soak(8)).out).not.toBe(first.out);
    expect(first.out).toContain('seed 7, on virtual time (simulated: the same --seed replays this report byte for byte)');
    // the real heap is not part of the replay: one line apart, saying so
    expect(first.out).not.toContain('heap');
    expect(first.aside).toHaveLength(1);
    expect(first.aside[0]).toMatch(/^ {2}memory {8}\(real heap, not part of the replayable report\) heap start /);
  }, 60_000);

  it('--json: one line, the same for the same seed, without the real heap and the real time', async () => {
    const a = await soak(11, true);
    const b = await soak(11, true);
    expect(a.out).toBe(b.out);
    expect(a.out).not.toContain('\n');
    const report = JSON.parse(a.out) as Record<string, unknown>;
    expect(report).not.toHaveProperty('memory');
    expect(report).not.toHaveProperty('elapsedMs');
    expect(report.checks).toEqual({ messagesAccounted: true, oneClassEach: true, deadLettersAccounted: true, noLeaks: true, supervisionHeld: true });
  }, 60_000);

  it('paces the load on virtual time and kills on schedule: kills land while messages are queued', async () => {
    const report = await runSoak({ duration: 5, rate: 5000, kill: 0.1, seed: 3, simulate: true, json: true }, () => {}, () => {});
    expect(report.load).toEqual({ seconds: 5, target: 25_000, sent: 25_000, rate: 5000, reached: true });
    // 10% of the workers a second for 5 s, every victim alive when drawn (virtual time: restarts are done before the next tick)
    expect(report.chaos.kills).toBe(30);
    expect(WORKERS).toBe(60);
    expect(report.chaos.missed).toBe(0);
    // on virtual time a restart finishes before the next tick: no kill lands on a worker being started
    expect(report.chaos.killsDuringStart).toBe(0);
    expect(report.chaos.restarts).toBe(report.chaos.kills);
    // the metronome lets the chaos strike after the producers' sends and before the workers run:
    // victims die with messages queued, which are dead-lettered or counted by their death's event
    expect(report.droppedEvents.receiver_exited).toBeGreaterThan(0);
    expect(report.deadLetters.byReason.receiver_exited).toBeGreaterThan(0);
    expect(report.messages.droppedReported).toBeGreaterThan(0);
    expect(report.messages.unaccounted).toBe(0);
  }, 60_000);
});

describe('keel soak --overload --simulate', () => {
  it('replays the same report byte for byte for the same seed', async () => {
    const run = async (seed: number): Promise<string> => {
      const out: string[] = [];
      const report = await runOverload({ duration: 2, rate: 5000, seed, simulate: true }, (l) => out.push(l), () => {});
      expect(overloadPassed(report)).toBe(true);
      return out.join('\n');
    };
    const first = await run(2);
    expect(await run(2)).toBe(first);
    expect(await run(3)).not.toBe(first);
    expect(first).toContain('on virtual time');
  }, 60_000);
});
