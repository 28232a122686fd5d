// A schedule by name survives a SIGKILL of its OS process: a child process (the package compiled
// into a temp directory, see test/childProcesses.ts) schedules beats to its agent 'worker' with a
// SQLite agent store; the parent kills it mid-schedule, then a node here on the same file, with a
// 'worker' of its own, starts the scheduler under the same name and the beats go on, counted.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { TestClock } from '../../../src/testing/index.js';
import { useBuiltPackage, useChildren } from '../../childProcesses.js';
import { expectKeelError, thrown, useNodes, useTempFiles } from '../../support.js';

const CHILD = fileURLToPath(new URL('./fixtures/scheduler-child.mjs', import.meta.url));
const INTERVAL = 20;

const tmpfile = useTempFiles('keel-agent-kill-', 'agents.db');
const forkChild = useChildren();
const track = useNodes();
const builtKeel = useBuiltPackage();

interface Report {
  readonly beat?: number;
  readonly registered?: unknown;
}

describe('AgentScheduler with a SQLite store under SIGKILL', () => {
  it('resumes the schedule by name in a new node on the same file: one beat for the due time missed while down, then one per interval', async () => {
    const file = tmpfile();
    const child = forkChild<Report>(CHILD, [builtKeel(), file, String(INTERVAL)]);
    let beats = 0;
    child.onMessage((m) => {
      if (typeof m.beat === 'number') beats = m.beat;
    });
    expect((await child.next((m) => m.registered !== undefined)).registered).toBe('ok');
    await child.next((m) => m.beat === 3); // mid-schedule
    // while the child runs, the file is its own: a node here cannot take it (it would resume the same schedules)
    const early = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    expectKeelError(thrown(() => AgentScheduler.start(early, { name: 'ticks' })), 'ERR_STORE_IN_USE', `OS process ${child.process.pid}`);
    expect((await child.kill()).signal).toBe('SIGKILL');
    expect(beats).toBeGreaterThanOrEqual(3);

    // the restart: a clock well past the child's last due time (its clock was the real one)
    const start = Date.now() + 10_000;
    const clock = new TestClock({ start });
    const node = track({ clock, services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const got: unknown[] = [];
    node.spawn(() => (m: unknown) => {
      got.push(m);
    }, { name: 'worker' });
    const scheduler = await AgentScheduler.start(node, { name: 'ticks' });
    await node.idle();
    // the due times missed while no process ran fire once at the restart (catch_up does not burst)
    expect(got).toEqual([{ beat: true }]);
    const [info] = await scheduler.list('worker');
    expect(info).toMatchObject({ id: 'beat', intervalMs: INTERVAL, deliveries: 1, missed: 'catch_up' });
    expect(info!.nextDueAt).toBeGreaterThan(start);
    expect(info!.nextDueAt).toBeLessThanOrEqual(start + INTERVAL);
    expect(info!.skipped).toBeGreaterThanOrEqual(Math.floor(10_000 / INTERVAL) - 1);
    await clock.advance(info!.nextDueAt - start + 4 * INTERVAL);
    await node.idle();
    expect(got).toHaveLength(6);
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, resumed: 1, dropped: 0, corrupt: 0, delivered: 6, failed: 0 });
  });
});
