import fc from 'fast-check';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AgentScheduler, type AgentSchedulerHandle, MAX_CATCH_UP } from '../../src/agents/AgentScheduler.js';
import { GenServer, isKeelError, type Clock, type Node, type Pid, type SpawnOptions } from '../../src/index.js';
import { type ClockNode, kAttachNode } from '../../src/runtime/Clock.js';
import { MemoryAgentStore } from '../../src/agents/store/MemoryAgentStore.js';
import type { Kernel } from '../../src/runtime/kernel.js';
import { captureEvents, expectNoLeaks, probe, TestClock } from '../../src/testing/index.js';
import { advance, clockedNode, deadPid, exitAndWait, expectKeelError, failure, HOUR, receiver, seeded, settlesWithin, stepWallClock, thrown, UNREADABLE, useNodes } from '../support.js';

const track = useNodes();
const START = 1_000_000;

// ---- helpers ----------------------------------------------------------------------------------

/** An agent that records every message it handles with the clock time it handled it at. */
interface Recorder {
  readonly pid: Pid;
  readonly got: { at: number; message: unknown }[];
}

function recorder(node: Node, options?: SpawnOptions): Recorder {
  const got: { at: number; message: unknown }[] = [];
  const pid = node.spawn(() => (message: unknown) => {
    got.push({ at: node.clock.now(), message });
  }, options);
  return { pid, got };
}

/** A node on a TestClock at START with `random` fixed (0.5 unless given), and a scheduler on it. */
async function setup(random: () => number = () => 0.5): Promise<{ node: Kernel; clock: TestClock; scheduler: AgentSchedulerHandle }> {
  const { node, clock } = clockedNode(track, { random }, START);
  const scheduler = await AgentScheduler.start(node);
  return { node, clock, scheduler };
}

/** Advances the clock and lets every delivery be handled. */
/**
 * A TestClock whose `now()` can jump ahead without firing anything: a timer due before the jump
 * fires at its host time but finds the node's clock already past many due times, as when the
 * scheduler was busy or the machine slept. `beforeFire` runs once, just before the next timer
 * fires, with no process running in between: what it sends is queued ahead of what the timer sends.
 */
class JumpClock implements Clock {
  readonly inner = new TestClock({ start: START });
  offset = 0;
  beforeFire: (() => void) | undefined;
  now(): number {
    return this.inner.now() + this.offset;
  }
  setTimer(ms: number, fn: () => void): unknown {
    return this.inner.setTimer(ms, () => {
      const hook = this.beforeFire;
      this.beforeFire = undefined;
      hook?.();
      fn();
    });
  }
  clearTimer(handle: unknown): void {
    this.inner.clearTimer(handle);
  }
  [kAttachNode](node: ClockNode): () => void {
    return this.inner[kAttachNode](node);
  }
}

function schedulerTimers(node: Kernel, scheduler: AgentSchedulerHandle): number {
  return node.info(scheduler.pid)?.timers ?? -1;
}

function schedulerMonitors(node: Kernel, scheduler: AgentSchedulerHandle): number {
  return node.info(scheduler.pid)?.monitors.length ?? -1;
}

function managedMonitorsTagged(node: Node, tag: string): number {
  const list = node.monitors.list();
  if (!Array.isArray(list)) throw new Error('monitor manager unavailable');
  return list.filter((e) => e.tag === tag).length;
}

// ---- start --------------------------------------------------------------------------------------

describe('AgentScheduler.start', () => {
  it('starts a registered, supervised scheduler whose handle finds it again by name after a restart (which resumes its schedules)', async () => {
    const { node, clock, scheduler } = await setup();
    expect(scheduler.name).toMatch(/^keel\.agent_scheduler\.\d+$/);
    expect(node.registry.whereis(scheduler.name)).toEqual(scheduler.pid);
    const a = recorder(node);
    expect(await scheduler.registerPeriodic(a.pid, 'beat', 100, 'beat')).toBe('ok');
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(1);
    const first = scheduler.pid;
    await exitAndWait(node, first);
    expect(node.isAlive(scheduler.pid)).toBe(true);
    expect(scheduler.pid).not.toEqual(first);
    // the restart resumes the schedule from the table its predecessor left (the old monitor went with it, a new one is made)
    expect(await scheduler.list(a.pid)).toMatchObject([{ id: 'beat', nextDueAt: START + 100 }]);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(1);
    await advance(node, clock, 1000);
    expect(a.got.map((g) => g.at)).toEqual(Array.from({ length: 10 }, (_, k) => START + 100 * (k + 1)));
  });

  it('from a process context, is linked to that process (its supervisor supervises it)', async () => {
    const { node } = clockedNode(track);
    const p = probe(node);
    const scheduler = await AgentScheduler.start(p.ctx, { name: 'ticks' });
    expect(scheduler.name).toBe('ticks');
    expect(node.info(p)?.links).toContainEqual(scheduler.pid);
  });

  it('throws ERR_INVALID_ARGUMENT for bad options before starting anything', async () => {
    const { node } = clockedNode(track);
    const before = node.processes().length;
    const bad: [unknown, string][] = [
      ['x', 'options'],
      [{ name: '' }, 'options.name'],
      [{ sendOptions: 5 }, 'options.sendOptions'],
      [{ sendOptions: { id: 'fixed' } }, 'options.sendOptions.id'],
      [{ sendOptions: { signal: new AbortController().signal } }, 'options.sendOptions.signal'],
      [{ sendOptions: { retries: -1 } }, 'options.retries'],
      [{ sendOptions: { ack: 'read' } }, 'options.ack'],
    ];
    for (const [options, argument] of bad) {
      const e = thrown(() => AgentScheduler.start(node, options as never));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    }
    expect(node.processes().length).toBe(before);
  });

  // the send options were the caller's own object, read again at the start's process, at each
  // registration and at each delivery: a getter could answer the check one thing and the deliveries another
  it("reads each send option once, at the start: a signal getter that answered undefined to the check never puts the caller's aborted signal on a delivery", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const aborted = new AbortController();
    aborted.abort('the caller aborted');
    let reads = 0;
    const sendOptions = {
      get signal() {
        reads++;
        return reads > 1 ? aborted.signal : undefined;
      },
    };
    const scheduler = await AgentScheduler.start(node, { sendOptions: sendOptions as never });
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const r = receiver(node);
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    expect(r.seen.map((m) => m.message)).toEqual(['beat']);
    expect(events.events.map((e) => e.event)).toEqual(['keel.agent_scheduler.delivered']);
    expect(reads).toBe(1);
  });

  it("reads each send option once, at the start: retries that answered 0 to the start retry no delivery, and a waiting one is never logged at the scheduler's stop", async () => {
    const { node, clock, logged } = loggedNode();
    let reads = 0;
    const sendOptions = {
      onError: 'log',
      backoff: { initialMs: 20, factor: 1, jitter: 'none' },
      get retries() {
        reads++;
        return reads > 1 ? 3 : 0;
      },
    } as const;
    const scheduler = await AgentScheduler.start(node, { sendOptions });
    const events = captureEvents(node, ['keel.agent_scheduler.', 'keel.supervised_send.retry']);
    const full = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await full.hold();
    node.send(full.pid, 'filler'); // its mailbox is full: its beat is refused
    await scheduler.registerPeriodic(full.pid, 'beat', 1000, 'beat');
    await clock.advance(1000);
    await node.settle();
    expect(events.events.map((e) => [e.event, e.measurements.attempts, e.metadata.reason])).toEqual([['keel.agent_scheduler.failed', 1, 'mailbox_full']]);
    expect(logged).toEqual([['warn', expect.stringMatching(/failed after 1 attempt\(s\): mailbox_full$/), 'mailbox_full']]);
    await GenServer.stop(node, scheduler.pid);
    await node.settle();
    expect(logged).toHaveLength(1);
    expect(reads).toBe(1);
    full.release();
  });

  it('reads each send option once, at the start: metadata whose getter throws when read again does not crash a registration', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    let reads = 0;
    const metadata = {
      get tag() {
        if (++reads > 1) throw new Error('read twice');
        return 'night';
      },
    };
    const scheduler = await AgentScheduler.start(node, { sendOptions: { metadata } });
    const events = captureEvents(node, ['keel.agent_scheduler.delivered', 'keel.supervised_send.send.start']);
    const r = receiver(node);
    expect(await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat')).toBe('ok');
    await clock.advance(100);
    await node.settle();
    expect(r.seen.map((m) => m.message)).toEqual(['beat']);
    expect(events.events.map((e) => [e.event, e.metadata.tag, e.metadata.schedule])).toEqual([
      ['keel.supervised_send.send.start', 'night', 'beat'],
      ['keel.agent_scheduler.delivered', undefined, undefined],
    ]);
    expect(reads).toBe(1);
  });
});

// ---- registerPeriodic ---------------------------------------------------------------------------

describe('AgentScheduler.registerPeriodic', () => {
  it('delivers exactly once per interval, on the aligned due times', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    expect(await scheduler.registerPeriodic(a.pid, 'beat', 1000, { tick: true })).toBe('ok');
    await advance(node, clock, 999);
    expect(a.got).toEqual([]);
    for (let k = 1; k <= 20; k++) {
      await advance(node, clock, 1000);
      expect(a.got.length).toBe(k);
    }
    expect(a.got.map((g) => g.at)).toEqual(Array.from({ length: 20 }, (_, k) => START + (k + 1) * 1000));
    expect(a.got.every((g) => (g.message as { tick?: boolean }).tick === true)).toBe(true);
    const [info] = await scheduler.list(a.pid);
    expect(info).toEqual({ id: 'beat', intervalMs: 1000, jitter: 0, missed: 'skip', nextDueAt: START + 21_000, generation: 1, deliveries: 20, failures: 0, skipped: 0 });
    expect(await scheduler.stats()).toEqual({ agents: 1, schedules: 1, delivered: 20, failed: 0, withdrawn: 0, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0 });
  });

  it('keeps one timer per schedule, and one monitor per agent however many schedules it has', async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    const b = recorder(node);
    for (const id of ['x', 'y', 'z']) await scheduler.registerPeriodic(a.pid, id, 100, id);
    await scheduler.registerPeriodic(b.pid, 'x', 100, 'x');
    expect(schedulerTimers(node, scheduler)).toBe(4);
    expect(schedulerMonitors(node, scheduler)).toBe(2);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(2);
    expect(await scheduler.stats()).toMatchObject({ agents: 2, schedules: 4 });
  });

  it("holds its agent monitor as long-lived: an agent scheduled for hours is not a suspected leak", async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'hourly', 3_600_000, 'tick');
    await advance(node, clock, 2 * 3_600_000);
    expect(a.got).toHaveLength(2);
    expect(() => expectNoLeaks(node)).not.toThrow();
  });

  it('adds jitter to each firing within [0, jitter), never to the base: the schedule does not drift', async () => {
    const { node, clock, scheduler } = await setup(seeded(7));
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat', { jitter: 300 });
    await advance(node, clock, 50 * 1000 + 300);
    expect(a.got.length).toBe(50);
    const offsets = a.got.map((g, k) => g.at - (START + (k + 1) * 1000));
    for (const o of offsets) {
      expect(o).toBeGreaterThanOrEqual(0);
      expect(o).toBeLessThan(300);
    }
    expect(new Set(offsets).size).toBeGreaterThan(10); // really random, not a constant delay
    const [info] = await scheduler.list(a.pid);
    expect(info?.nextDueAt).toBe(START + 51_000);
  });

  it('with a fixed random, fires at base + random × jitter', async () => {
    const { node, clock, scheduler } = await setup(() => 0.5);
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat', { jitter: 100 });
    await advance(node, clock, 3100);
    expect(a.got.map((g) => g.at)).toEqual([START + 1050, START + 2050, START + 3050]);
  });

  it('replaces an existing schedule of the same (agent, id): one chain, the new message and interval', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'old');
    await advance(node, clock, 500);
    expect(await scheduler.registerPeriodic(a.pid, 'beat', 300, 'new')).toBe('replaced');
    expect(schedulerTimers(node, scheduler)).toBe(1);
    await advance(node, clock, 3000);
    expect(a.got.map((g) => g.message)).toEqual(Array(10).fill('new'));
    expect(a.got[0]?.at).toBe(START + 800);
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, delivered: 10 });
  });

  it('resolves a registered name to its pid now: the schedule belongs to that process', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node, { name: 'worker' });
    expect(await scheduler.registerPeriodic('worker', 'beat', 100, 'beat')).toBe('ok');
    expect(await scheduler.list(a.pid)).toHaveLength(1);
    expect(await scheduler.list('worker')).toEqual(await scheduler.list(a.pid));
    await advance(node, clock, 100);
    expect(a.got).toHaveLength(1);
  });

  it("answers { error: 'noproc' } for a dead pid or an unregistered name, and keeps nothing", async () => {
    const { node, scheduler } = await setup();
    expect(await scheduler.registerPeriodic(deadPid(node), 'beat', 100, 'beat')).toEqual({ error: 'noproc' });
    expect(await scheduler.registerPeriodic('nobody', 'beat', 100, 'beat')).toEqual({ error: 'noproc' });
    expect(await scheduler.stats()).toEqual({ agents: 0, schedules: 0, delivered: 0, failed: 0, withdrawn: 0, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0 });
    expect(schedulerTimers(node, scheduler)).toBe(0);
    expect(schedulerMonitors(node, scheduler)).toBe(0);
  });

  it("answers { error: 'noproc' } for a live process of another node, and keeps nothing: its deliveries never leave its own node", async () => {
    const { node, scheduler } = await setup();
    const other = track({ name: 'elsewhere' });
    const agent = other.spawn(() => () => {});
    expect(await scheduler.registerPeriodic(agent, 'beat', 100, 'beat')).toEqual({ error: 'noproc' });
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0 });
    expect(schedulerMonitors(node, scheduler)).toBe(0);
  });

  it('monitors the agent directly when the monitor manager is unavailable, and still cleans up on death', async () => {
    const { node, clock } = clockedNode(track, { services: false });
    const scheduler = await AgentScheduler.start(node);
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 100, 'beat');
    expect(schedulerMonitors(node, scheduler)).toBe(1);
    await advance(node, clock, 100);
    expect(a.got).toHaveLength(1);
    node.exit(a.pid, 'kill');
    await node.idle();
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0 });
    expect(schedulerMonitors(node, scheduler)).toBe(0);
    expect(schedulerTimers(node, scheduler)).toBe(0);
  });

  it('throws ERR_INVALID_ARGUMENT synchronously for bad arguments, and calls nothing', async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    const bad: [() => unknown, string][] = [
      [() => scheduler.registerPeriodic(42 as never, 'x', 100, 'm'), 'agent'],
      [() => scheduler.registerPeriodic('', 'x', 100, 'm'), 'agent'],
      [() => scheduler.registerPeriodic({} as never, 'x', 100, 'm'), 'agent'],
      [() => scheduler.registerPeriodic(a.pid, '', 100, 'm'), 'id'],
      [() => scheduler.registerPeriodic(a.pid, 5 as never, 100, 'm'), 'id'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 0, 'm'), 'intervalMs'],
      [() => scheduler.registerPeriodic(a.pid, 'x', -5, 'm'), 'intervalMs'],
      [() => scheduler.registerPeriodic(a.pid, 'x', NaN, 'm'), 'intervalMs'],
      [() => scheduler.registerPeriodic(a.pid, 'x', Infinity, 'm'), 'intervalMs'],
      [() => scheduler.registerPeriodic(a.pid, 'x', '100' as never, 'm'), 'intervalMs'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', null as never), 'options'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', { jitter: -1 }), 'options.jitter'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', { jitter: NaN }), 'options.jitter'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', { jitter: 100 }), 'options.jitter'],
      [() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', { missed: 'later' as never }), 'options.missed'],
      [() => scheduler.unregister(a.pid, ''), 'id'],
      [() => scheduler.unregister(null as never, 'x'), 'agent'],
      [() => scheduler.unregisterAgent(7 as never), 'agent'],
      [() => scheduler.updateInterval(a.pid, 'x', 0), 'intervalMs'],
      [() => scheduler.forceExecution(a.pid, undefined as never), 'id'],
      [() => scheduler.list(undefined as never), 'agent'],
    ];
    for (const [fn, argument] of bad) expectKeelError(thrown(fn), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    expect(await scheduler.stats()).toEqual({ agents: 0, schedules: 0, delivered: 0, failed: 0, withdrawn: 0, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0 });
  });

  it('refuses an interval below 1 ms, the resolution of the timers, with ERR_INVALID_ARGUMENT', async () => {
    // found by test/reliability/fuzz.agents.test.ts (fast-check seed -1390562662, path 15): an interval of
    // 7.7e-209 ms was taken; at the clock's time now + intervalMs === now, so the schedule's due time
    // never moved on and, on a TestClock, advancing it fired the schedule at one instant for ever
    const { node, scheduler } = await setup();
    const a = recorder(node);
    for (const ms of [7.7e-209, Number.MIN_VALUE, 1e-4, 0.999]) {
      expectKeelError(thrown(() => scheduler.registerPeriodic(a.pid, 'x', ms, 'm')), 'ERR_INVALID_ARGUMENT', '`intervalMs`', 'a finite number of ms >= 1 and <= Number.MAX_SAFE_INTEGER');
      expectKeelError(thrown(() => scheduler.updateInterval(a.pid, 'x', ms)), 'ERR_INVALID_ARGUMENT', '`intervalMs`');
    }
    expect(await scheduler.registerPeriodic(a.pid, 'x', 1, 'm')).toBe('ok');
    expect(await scheduler.stats()).toMatchObject({ schedules: 1 });
  });

  it('refuses an interval above Number.MAX_SAFE_INTEGER ms, and goes on with the largest it takes and its largest jitter', async () => {
    // found by test/reliability/fuzz.agents.test.ts (fast-check seed -893654670): an interval of 1.8e308 ms
    // with a jitter of 1.8e308 was taken; due time plus jitter overflowed to Infinity, the timer refused
    // that delay, and the scheduler crashed
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    for (const ms of [1.7976931348623151e308, Number.MAX_VALUE, Number.MAX_SAFE_INTEGER + 2]) {
      expectKeelError(thrown(() => scheduler.registerPeriodic(a.pid, 'x', ms, 'm', { jitter: ms / 2 })), 'ERR_INVALID_ARGUMENT', '`intervalMs`', '<= Number.MAX_SAFE_INTEGER');
      expectKeelError(thrown(() => scheduler.updateInterval(a.pid, 'x', ms)), 'ERR_INVALID_ARGUMENT', '`intervalMs`');
    }
    const most = Number.MAX_SAFE_INTEGER;
    expect(await scheduler.registerPeriodic(a.pid, 'x', most, 'm', { jitter: most - 1 })).toBe('ok');
    await advance(node, clock, 2000);
    expect(await scheduler.list(a.pid)).toMatchObject([{ id: 'x', intervalMs: most, jitter: most - 1, nextDueAt: START + most, deliveries: 0 }]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, delivered: 0 });
  });
});

// ---- forceExecution and updateInterval ----------------------------------------------------------

describe('AgentScheduler.forceExecution', () => {
  it('delivers now and restarts the chain from now: never a second chain', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat');
    await advance(node, clock, 400);
    expect(await scheduler.forceExecution(a.pid, 'beat')).toBe('ok');
    await node.idle();
    expect(a.got.map((g) => g.at)).toEqual([START + 400]);
    for (let i = 0; i < 5; i++) await scheduler.forceExecution(a.pid, 'beat');
    expect(schedulerTimers(node, scheduler)).toBe(1);
    await advance(node, clock, 5000);
    // 6 forced at +400, then one every 1000 ms from there; the old chain (due at +1000) never fires
    expect(a.got.map((g) => g.at)).toEqual([...Array(6).fill(START + 400), START + 1400, START + 2400, START + 3400, START + 4400, START + 5400]);
    const [info] = await scheduler.list(a.pid);
    expect(info).toMatchObject({ generation: 7, deliveries: 11, nextDueAt: START + 6400 });
    expect(await scheduler.stats()).toMatchObject({ forced: 6, delivered: 11 });
  });

  it('ignores the tick of the retired chain that was already queued behind it (a stale generation)', async () => {
    for (const op of ['force', 'update'] as const) {
      const clock = new JumpClock();
      const node = track({ clock });
      const scheduler = await AgentScheduler.start(node);
      const a = recorder(node);
      await scheduler.registerPeriodic(a.pid, 'beat', 100, 'beat');
      // the call is queued, then the chain's timer fires: the scheduler handles the call, then the old tick
      let reply: Promise<string> | undefined;
      clock.beforeFire = () => {
        reply = op === 'force' ? scheduler.forceExecution(a.pid, 'beat') : scheduler.updateInterval(a.pid, 'beat', 100);
      };
      await clock.inner.advance(100);
      expect(await reply).toBe('ok');
      await node.idle();
      expect(a.got.map((g) => g.at)).toEqual(op === 'force' ? [START + 100] : []);
      expect(schedulerTimers(node, scheduler)).toBe(1);
      await clock.inner.advance(1000);
      await node.idle();
      expect(a.got.map((g) => g.at)).toEqual([...(op === 'force' ? [START + 100] : []), ...Array.from({ length: 10 }, (_, k) => START + 200 + k * 100)]);
    }
  });

  it("answers 'not_found' for an unknown schedule or agent", async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 100, 'beat');
    expect(await scheduler.forceExecution(a.pid, 'other')).toBe('not_found');
    expect(await scheduler.forceExecution(recorder(node).pid, 'beat')).toBe('not_found');
    expect(await scheduler.forceExecution('nobody', 'beat')).toBe('not_found');
    expect(await scheduler.stats()).toMatchObject({ forced: 0 });
  });
});

describe('AgentScheduler.updateInterval', () => {
  it('restarts the chain from now with the new interval', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat');
    await advance(node, clock, 1500);
    expect(await scheduler.updateInterval(a.pid, 'beat', 200)).toBe('ok');
    expect(schedulerTimers(node, scheduler)).toBe(1);
    await advance(node, clock, 1000);
    expect(a.got.map((g) => g.at)).toEqual([START + 1000, START + 1700, START + 1900, START + 2100, START + 2300, START + 2500]);
    expect((await scheduler.list(a.pid))[0]).toMatchObject({ intervalMs: 200, generation: 2 });
  });

  it("answers 'not_found' for an unknown schedule, and rejects ERR_INVALID_ARGUMENT when the jitter is not below the new interval", async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat', { jitter: 300 });
    expect(await scheduler.updateInterval(a.pid, 'other', 500)).toBe('not_found');
    const e = await scheduler.updateInterval(a.pid, 'beat', 300).then(() => 'resolved', (x: unknown) => x);
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'intervalMs', '300');
    expect((await scheduler.list(a.pid))[0]).toMatchObject({ intervalMs: 1000, generation: 1 });
  });

  it('after any mix of forceExecution, updateInterval and advances, delivers exactly what one aligned chain would', async () => {
    type Op = { kind: 'force' } | { kind: 'update'; ms: number } | { kind: 'advance'; ms: number };
    const op = fc.oneof(
      fc.constant<Op>({ kind: 'force' }),
      fc.integer({ min: 1, max: 2000 }).map<Op>((ms) => ({ kind: 'update', ms })),
      fc.integer({ min: 0, max: 3000 }).map<Op>((ms) => ({ kind: 'advance', ms })),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.integer({ min: 1, max: 2000 }), fc.integer({ min: 1, max: 8 }), async (ops, initial, k) => {
        const { node, clock, scheduler } = await setup();
        try {
          const a = recorder(node);
          await scheduler.registerPeriodic(a.pid, 'beat', initial, 'beat');
          // the model: one chain, its next due time and interval
          let now = START;
          let interval = initial;
          let due = START + initial;
          const expected: number[] = [];
          const runTo = (t: number): void => {
            while (due <= t) {
              expected.push(due);
              due += interval;
            }
            now = t;
          };
          for (const o of ops) {
            if (o.kind === 'advance') {
              await advance(node, clock, o.ms);
              runTo(now + o.ms);
            } else if (o.kind === 'force') {
              expect(await scheduler.forceExecution(a.pid, 'beat')).toBe('ok');
              expected.push(now);
              due = now + interval;
            } else {
              expect(await scheduler.updateInterval(a.pid, 'beat', o.ms)).toBe('ok');
              interval = o.ms;
              due = now + o.ms;
            }
          }
          await node.idle();
          expect(a.got.map((g) => g.at)).toEqual(expected);
          expect(schedulerTimers(node, scheduler)).toBe(1);
          // then k intervals give exactly k deliveries
          const before = a.got.length;
          await advance(node, clock, k * interval);
          expect(a.got.length - before).toBe(k);
        } finally {
          await node.shutdown({ timeoutMs: 1000 });
        }
      }),
      { numRuns: 60 },
    );
  });
});

// ---- missed due times ---------------------------------------------------------------------------

describe('AgentScheduler missed due times', () => {
  async function jumped(missed: 'skip' | 'catch_up', intervals: number) {
    const clock = new JumpClock();
    const node = track({ clock, random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node);
    const a = recorder(node);
    const events = captureEvents(node, ['keel.agent_scheduler.skipped']);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat', { missed });
    clock.offset += intervals * 1000; // the clock jumps; the timer due at +1000 fires late
    await clock.inner.advance(1000);
    await node.idle();
    return { node, clock, scheduler, a, events };
  }

  it("'skip' delivers once, counts the missed due times as skipped, and continues at the next aligned due time", async () => {
    const { node, clock, scheduler, a, events } = await jumped('skip', 5);
    expect(a.got.map((g) => g.at)).toEqual([START + 6000]);
    const [info] = await scheduler.list(a.pid);
    expect(info).toMatchObject({ deliveries: 1, skipped: 5, nextDueAt: START + 7000 });
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.skipped', measurements: { count: 5 }, metadata: { scheduler: scheduler.name, agent: a.pid, id: 'beat', missed: 'skip' } },
    ]);
    await clock.inner.advance(1000);
    await node.idle();
    expect(a.got.map((g) => g.at)).toEqual([START + 6000, START + 7000]);
    expect(await scheduler.stats()).toMatchObject({ delivered: 2, skipped: 5 });
  });

  it("'catch_up' delivers once per missed due time, then continues aligned", async () => {
    const { node, clock, scheduler, a, events } = await jumped('catch_up', 5);
    expect(a.got).toHaveLength(6);
    expect((await scheduler.list(a.pid))[0]).toMatchObject({ deliveries: 6, skipped: 0, nextDueAt: START + 7000 });
    expect(events.events).toEqual([]);
    await clock.inner.advance(1000);
    await node.idle();
    expect(a.got).toHaveLength(7);
  });

  it('a TestClock advanced by many intervals at once misses none: each due time fires at its instant, whatever the policy', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'skip', 1000, 'skip', { missed: 'skip' });
    await scheduler.registerPeriodic(a.pid, 'catch_up', 1000, 'catch_up', { missed: 'catch_up' });
    await clock.advance(120_000); // two minutes in one call: the clock stops at every timer on the way
    await node.idle();
    const at = (m: string) => a.got.filter((g) => g.message === m).map((g) => g.at);
    const every = Array.from({ length: 120 }, (_, k) => START + (k + 1) * 1000);
    expect(at('skip')).toEqual(every);
    expect(at('catch_up')).toEqual(every);
    expect(await scheduler.stats()).toMatchObject({ delivered: 240, skipped: 0 });
  });

  it(`'catch_up' delivers at most ${MAX_CATCH_UP} per firing; the rest are counted as skipped`, async () => {
    const { scheduler, a, events } = await jumped('catch_up', 250);
    expect(a.got).toHaveLength(MAX_CATCH_UP);
    expect((await scheduler.list(a.pid))[0]).toMatchObject({ deliveries: MAX_CATCH_UP, skipped: 251 - MAX_CATCH_UP, nextDueAt: START + 252_000 });
    expect(events.events.map((e) => e.measurements.count)).toEqual([251 - MAX_CATCH_UP]);
  });
});

// ---- unregister, agent death --------------------------------------------------------------------

describe('AgentScheduler.unregister and unregisterAgent', () => {
  it('unregister removes one schedule; the last one of an agent releases its monitor', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'x', 100, 'x');
    await scheduler.registerPeriodic(a.pid, 'y', 100, 'y');
    expect(await scheduler.unregister(a.pid, 'x')).toBe('ok');
    expect(await scheduler.unregister(a.pid, 'x')).toBe('not_found');
    expect(schedulerMonitors(node, scheduler)).toBe(1);
    await advance(node, clock, 300);
    expect(a.got.map((g) => g.message)).toEqual(['y', 'y', 'y']);
    expect(await scheduler.unregister(a.pid, 'y')).toBe('ok');
    expect(schedulerMonitors(node, scheduler)).toBe(0);
    expect(schedulerTimers(node, scheduler)).toBe(0);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(0);
    await advance(node, clock, 1000);
    expect(a.got).toHaveLength(3);
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0 });
  });

  it('unregisterAgent removes every schedule of the agent and answers how many', async () => {
    const { node, clock, scheduler } = await setup();
    const a = recorder(node);
    const b = recorder(node);
    for (const id of ['x', 'y', 'z']) await scheduler.registerPeriodic(a.pid, id, 100, id);
    await scheduler.registerPeriodic(b.pid, 'x', 100, 'x');
    expect(await scheduler.unregisterAgent(a.pid)).toBe(3);
    expect(await scheduler.unregisterAgent(a.pid)).toBe(0);
    expect(await scheduler.unregisterAgent('nobody')).toBe(0);
    expect(schedulerTimers(node, scheduler)).toBe(1);
    expect(schedulerMonitors(node, scheduler)).toBe(1);
    await advance(node, clock, 200);
    expect(a.got).toEqual([]);
    expect(b.got).toHaveLength(2);
    expect(await scheduler.list(a.pid)).toEqual([]);
  });

  it('aborts a pending retry of an unregistered schedule: no delivery after unregister, nothing counted', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { retries: 3, backoff: { initialMs: 50, jitter: 'none' } } });
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    await scheduler.registerPeriodic(r.pid, 'beat', 1000, 'beat');
    await clock.advance(2000); // first fills the mailbox; the second waits for its retry
    expect(await scheduler.unregister(r.pid, 'beat')).toBe('ok');
    r.release();
    await advance(node, clock, 1000);
    expect(r.seen.map((s) => s.message)).toEqual(['beat']);
    expect(await scheduler.stats()).toMatchObject({ delivered: 1, failed: 0 });
  });

  it("with ack 'handled', counts the delivery an agent was handling when it removed or replaced its own schedule", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled' } });
    const events = captureEvents(node, ['keel.agent_scheduler.delivered', 'keel.agent_scheduler.failed']);
    const handled: unknown[] = [];
    // one agent cancels its beat from the handler of its first beat; the other re-registers it with twice the interval (a backoff)
    const canceller = node.spawn((ctx) => async (m: unknown) => {
      handled.push(m);
      await scheduler.unregister(ctx.self, 'once');
    });
    let interval = 100;
    const backoff = node.spawn((ctx) => async (m: unknown) => {
      handled.push(m);
      interval *= 2;
      await scheduler.registerPeriodic(ctx.self, 'backoff', interval, 'backoff');
    });
    await scheduler.registerPeriodic(canceller, 'once', 100, 'once');
    await scheduler.registerPeriodic(backoff, 'backoff', interval, 'backoff');
    await advance(node, clock, 100 + 200 + 400);
    expect(handled).toEqual(['once', 'backoff', 'backoff', 'backoff']);
    expect(await scheduler.list(canceller)).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 1, delivered: 4, failed: 0 });
    expect(events.events.map((e) => [e.event, e.metadata.id])).toEqual([
      ['keel.agent_scheduler.delivered', 'once'],
      ['keel.agent_scheduler.delivered', 'backoff'],
      ['keel.agent_scheduler.delivered', 'backoff'],
      ['keel.agent_scheduler.delivered', 'backoff'],
    ]);
  });

  it("with ack 'handled', withdraws a delivery still queued in the agent's mailbox when its schedule is unregistered: never handled, counted withdrawn (not delivered, not failed)", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled' } });
    const r = receiver(node);
    await r.hold(); // the beat waits in its mailbox, unstarted
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    expect(await scheduler.unregister(r.pid, 'beat')).toBe('ok');
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ schedules: 0, delivered: 0, failed: 0, withdrawn: 1 });
  });

  it("with onError 'raise' too, a queued copy taken back at its schedule's removal is counted withdrawn, not failed, with no event", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled', onError: 'raise' } });
    const events = captureEvents(node, ['keel.agent_scheduler.delivered', 'keel.agent_scheduler.failed']);
    const r = receiver(node);
    await r.hold(); // the beat waits in its mailbox, unstarted
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    expect(await scheduler.unregister(r.pid, 'beat')).toBe('ok');
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await scheduler.stats()).toEqual({ agents: 0, schedules: 0, delivered: 0, failed: 0, withdrawn: 1, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0 });
    expect(events.events).toEqual([]);
  });

  it.each([
    ['unregister', (scheduler: AgentSchedulerHandle, agent: Pid) => scheduler.unregister(agent, 'beat'), 'ok'],
    ['unregisterAgent', (scheduler: AgentSchedulerHandle, agent: Pid) => scheduler.unregisterAgent(agent), 1],
    ['a replacing registerPeriodic', (scheduler: AgentSchedulerHandle, agent: Pid) => scheduler.registerPeriodic(agent, 'beat', 100_000, 'beat'), 'replaced'],
  ] as const)("with onError 'dead_letter', a queued copy taken back at its schedule's removal (%s) is withdrawn: nothing dead-lettered, nothing logged", async (_, remove, answer) => {
    const { node, clock, logged } = loggedNode();
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled', onError: 'dead_letter' } });
    const events = captureEvents(node, ['keel.agent_scheduler.delivered', 'keel.agent_scheduler.failed', 'keel.dead_letter_queue.']);
    const r = receiver(node);
    await r.hold(); // the beat waits in its mailbox, unstarted
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    expect(await remove(scheduler, r.pid)).toBe(answer);
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ delivered: 0, failed: 0, withdrawn: 1 });
    expect(await deadLetterCount(node)).toBe(0);
    expect(logged).toEqual([]);
    expect(events.events).toEqual([]);
  });

  it("with onError 'log', a queued copy taken back at its schedule's removal is withdrawn with no warning logged", async () => {
    const { node, clock, logged } = loggedNode();
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled', onError: 'log' } });
    const r = receiver(node);
    await r.hold();
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    expect(await scheduler.unregister(r.pid, 'beat')).toBe('ok');
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ delivered: 0, failed: 0, withdrawn: 1 });
    expect(logged).toEqual([]);
  });
});

/** A node on a TestClock whose logger records every line (level first), and those lines. */
function loggedNode(): { node: Kernel; clock: TestClock; logged: unknown[][] } {
  const logged: unknown[][] = [];
  const logger = {
    info: (...a: unknown[]) => void logged.push(['info', ...a]),
    warn: (...a: unknown[]) => void logged.push(['warn', ...a]),
    error: (...a: unknown[]) => void logged.push(['error', ...a]),
  };
  const { node, clock } = clockedNode(track, { random: () => 0.5, logger });
  return { node, clock, logged };
}

/** How many entries the node's dead letter queue holds. */
async function deadLetterCount(node: Node): Promise<number> {
  const listed = await node.deadLetters.list({});
  if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
  return listed.entries.length;
}

/**
 * A scheduler whose deliveries are acknowledged when handled, time out after 50 ms and are retried
 * twice, 20 ms after a failure, and one agent that handles each copy until the test ends it. The
 * beat is due every 1000 ms, so one delivery is started in each of the tests below.
 */
async function retriedDelivery(onCopy?: (ctx: { self: Pid }) => Promise<unknown>, onError?: 'raise' | 'dead_letter' | 'log') {
  const { node, clock, logged } = loggedNode();
  const scheduler = await AgentScheduler.start(node, {
    sendOptions: { ack: 'handled', timeout: 50, retries: 2, backoff: { initialMs: 20, factor: 1, jitter: 'none' }, ...(onError === undefined ? {} : { onError }) },
  });
  const events = captureEvents(node, ['keel.agent_scheduler.delivered', 'keel.agent_scheduler.failed']);
  const copies: (string | undefined)[] = [];
  const ends: (() => void)[] = [];
  const agent = node.spawn((ctx) => async () => {
    copies.push(ctx.messageId);
    await onCopy?.(ctx);
    await new Promise<void>((resolve) => ends.push(resolve));
  });
  await scheduler.registerPeriodic(agent, 'beat', 1000, 'beat');
  /** Moves the clock, lets every process run, then a turn of the event loop (an attempt's timeout is armed there). */
  const step = async (ms: number) => {
    await clock.advance(ms);
    await node.settle();
    await new Promise<void>((resolve) => setImmediate(resolve));
  };
  /** Ends the copy the agent is handling. */
  const end = async () => {
    ends.shift()!();
    await node.settle();
  };
  return { node, scheduler, events, agent, copies, step, end, logged };
}

describe("AgentScheduler with ack 'handled' and retries, a schedule removed while a delivery is under way", () => {
  it('counts the attempt the agent was handling when it re-registered its own schedule (delivered), and makes no further attempt', async () => {
    let reregistered = false;
    const t = await retriedDelivery(async (ctx) => {
      if (reregistered) return;
      reregistered = true;
      expect(await t.scheduler.registerPeriodic(ctx.self, 'beat', 5000, 'beat')).toBe('replaced');
    });
    await t.step(1000); // the first attempt: the agent handles it, and replaces its schedule meanwhile
    expect(t.copies).toHaveLength(1);
    await t.end();
    await t.step(1000);
    expect(t.copies).toHaveLength(1);
    // one delivery started, one counted
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 1, delivered: 1, failed: 0, withdrawn: 0 });
    expect(t.events.events.map((e) => [e.event, e.metadata.id])).toEqual([['keel.agent_scheduler.delivered', 'beat']]);
  });

  it('counts the outcome of the attempt the agent was handling when the schedule was unregistered (timeout, failed), and retries it no more', async () => {
    const t = await retriedDelivery();
    await t.step(1000);
    expect(await t.scheduler.unregister(t.agent, 'beat')).toBe('ok');
    await t.step(50); // the attempt times out: its outcome, with no retry
    await t.end();
    await t.step(1000);
    expect(t.copies).toHaveLength(1);
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 0, delivered: 0, failed: 1, withdrawn: 0 });
    expect(t.events.events).toMatchObject([{ event: 'keel.agent_scheduler.failed', measurements: { attempts: 1 }, metadata: { id: 'beat', reason: 'timeout' } }]);
  });

  it('counts as withdrawn a delivery whose retry waited for its backoff when the schedule was unregistered', async () => {
    const t = await retriedDelivery();
    await t.step(1000);
    await t.step(50); // the first attempt times out; its retry waits 20 ms
    await t.end(); // the agent ends the copy it was let go of
    expect(await t.scheduler.unregister(t.agent, 'beat')).toBe('ok');
    await t.step(1000);
    expect(t.copies).toHaveLength(1);
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 0, delivered: 0, failed: 0, withdrawn: 1 });
    expect(t.events.events).toEqual([]);
  });

  it("with onError 'raise' too, counts as withdrawn (not failed, no event) a delivery whose retry waited for its backoff when the schedule was unregistered", async () => {
    const t = await retriedDelivery(undefined, 'raise');
    await t.step(1000);
    await t.step(50); // the first attempt times out; its retry waits 20 ms
    await t.end();
    expect(await t.scheduler.unregister(t.agent, 'beat')).toBe('ok');
    await t.step(1000);
    expect(t.copies).toHaveLength(1);
    expect(await t.scheduler.stats()).toEqual({ agents: 0, schedules: 0, delivered: 0, failed: 0, withdrawn: 1, forced: 0, skipped: 0, resumed: 0, dropped: 0, corrupt: 0, storeFailures: 0 });
    expect(t.events.events).toEqual([]);
  });

  it.each(['dead_letter', 'log'] as const)("with onError '%s', a delivery whose retry waited for its backoff when the schedule was unregistered is withdrawn: nothing dead-lettered, nothing logged", async (onError) => {
    const t = await retriedDelivery(undefined, onError);
    await t.step(1000);
    await t.step(50); // the first attempt times out; its retry waits 20 ms
    await t.end();
    expect(await t.scheduler.unregister(t.agent, 'beat')).toBe('ok');
    await t.step(1000); // past a dead letter's first retry (1 s): a removed schedule's beat would be redelivered
    expect(t.copies).toHaveLength(1);
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 0, delivered: 0, failed: 0, withdrawn: 1 });
    expect(await deadLetterCount(t.node)).toBe(0);
    expect(t.logged).toEqual([]);
    expect(t.events.events).toEqual([]);
  });

  it("with onError 'dead_letter', a delivery whose every attempt timed out is still dead-lettered (timeout), once", async () => {
    const t = await retriedDelivery(undefined, 'dead_letter');
    await t.step(1000);
    await t.step(50); // the first attempt times out
    await t.end();
    await t.step(20); // the second attempt
    await t.step(50); // times out
    await t.end();
    await t.step(20); // the third and last attempt
    await t.step(50); // times out: the delivery fails, and is dead-lettered
    await t.end();
    await t.node.idle();
    expect(t.copies).toHaveLength(3);
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 1, delivered: 0, failed: 1, withdrawn: 0 });
    const listed = await t.node.deadLetters.list({});
    if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
    expect(listed.entries).toHaveLength(1);
    expect(listed.entries[0]).toMatchObject({ reason: 'timeout', message: 'beat', metadata: { attempts: 3, schedule: 'beat' } });
    expect(t.logged).toEqual([]);
  });

  it("with onError 'raise', a delivery whose every attempt timed out is still counted failed (timeout), per schedule and in stats", async () => {
    const t = await retriedDelivery(undefined, 'raise');
    await t.step(1000);
    await t.step(50); // the first attempt times out
    await t.end();
    await t.step(20); // the second attempt
    await t.step(50); // times out
    await t.end();
    await t.step(20); // the third and last attempt
    await t.step(50); // times out: the delivery fails, its send rejects with ERR_DELIVERY
    await t.end();
    expect(t.copies).toHaveLength(3);
    expect((await t.scheduler.list(t.agent))[0]).toMatchObject({ deliveries: 0, failures: 1 });
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 1, delivered: 0, failed: 1, withdrawn: 0 });
    expect(t.events.events).toMatchObject([{ event: 'keel.agent_scheduler.failed', measurements: { attempts: 3 }, metadata: { id: 'beat', reason: 'timeout' } }]);
  });

  it('counts the last attempt the agent was handling when the schedule was unregistered (delivered)', async () => {
    const t = await retriedDelivery();
    await t.step(1000);
    await t.step(50); // the first attempt times out
    await t.end();
    await t.step(20); // the second attempt
    await t.step(50); // times out too
    await t.end();
    await t.step(20); // the third and last attempt: the agent handles it
    expect(t.copies).toHaveLength(3);
    expect(new Set(t.copies).size).toBe(1); // one delivery: its three copies share its message id
    expect(await t.scheduler.unregister(t.agent, 'beat')).toBe('ok');
    await t.end();
    await t.step(1000);
    expect(await t.scheduler.stats()).toMatchObject({ schedules: 0, delivered: 1, failed: 0, withdrawn: 0 });
    expect(t.events.events.map((e) => [e.event, e.metadata.id])).toEqual([['keel.agent_scheduler.delivered', 'beat']]);
  });
});

// ---- the scheduler's own exit with a delivery waiting ---------------------------------------------

/**
 * The ways a scheduler ends while a delivery waits; each resolves once it has exited and the node has
 * settled. A killed or crashed scheduler is restarted by the node's supervisor: its successor is
 * asked to forget the agent at once (before its next due time), so that what the agent gets after
 * it can only be the dead scheduler's delivery (redelivered by the dead letter queue, say).
 */
const SCHEDULER_ENDS = [
  ['GenServer.stop', async (node: Kernel, scheduler: AgentSchedulerHandle) => {
    await GenServer.stop(node, scheduler.pid);
    await node.settle();
    expect(node.isAlive(scheduler.name)).toBe(false); // ended for good
  }],
  ['a kill', async (node: Kernel, scheduler: AgentSchedulerHandle, agent: Pid) => {
    await exitAndWait(node, scheduler.pid, 'kill', 'settle');
    expect(await scheduler.unregisterAgent(agent)).toBe(1);
  }],
  ['a crash', async (node: Kernel, scheduler: AgentSchedulerHandle, agent: Pid) => {
    await exitAndWait(node, scheduler.pid, new Error('boom'), 'settle');
    expect(await scheduler.unregisterAgent(agent)).toBe(1);
  }],
] as const;

const EXIT_CASES = (['dead_letter', 'log'] as const).flatMap((onError) => SCHEDULER_ENDS.map(([how, end]) => [onError, how, end] as const));

describe('AgentScheduler that exits with a delivery still waiting: nothing is logged or dead-lettered, whatever onError says', () => {
  // its deliveries are sends from its own process: a send whose sender exits ends aborted, and
  // went through its onError policy; a dead letter was redelivered to the agent about 1 s later,
  // even after a GenServer.stop meant to end the scheduler for good
  it.each(EXIT_CASES)("with onError '%s', a copy queued in the agent's mailbox at the scheduler's exit (%s) is taken back and never redelivered", async (onError, _, end) => {
    const { node, clock, logged } = loggedNode();
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled', onError } });
    const events = captureEvents(node, ['keel.dead_letter_queue.', 'keel.agent_scheduler.delivered', 'keel.agent_scheduler.failed']);
    const r = receiver(node);
    await r.hold(); // the beat waits in its mailbox, unstarted
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    await end(node, scheduler, r.pid);
    expect(await deadLetterCount(node)).toBe(0);
    r.release();
    await advance(node, clock, 3000); // past a dead letter's first retry (1 s)
    expect(r.seen).toEqual([]);
    expect(await deadLetterCount(node)).toBe(0);
    expect(logged).toEqual([]);
    expect(events.events).toEqual([]);
  });

  it.each(EXIT_CASES)("with onError '%s', a delivery whose retry waits for its backoff at the scheduler's exit (%s) is retried no more and never redelivered", async (onError, _, end) => {
    const t = await retriedDelivery(undefined, onError);
    const events = captureEvents(t.node, ['keel.dead_letter_queue.']);
    await t.step(1000);
    await t.step(50); // the first attempt times out; its retry waits 20 ms
    await t.end(); // the agent ends the copy it was let go of
    await end(t.node, t.scheduler, t.agent);
    expect(await deadLetterCount(t.node)).toBe(0);
    await t.step(3000); // past the retry, and past a dead letter's first retry (1 s)
    expect(t.copies).toHaveLength(1);
    expect(await deadLetterCount(t.node)).toBe(0);
    expect(t.logged).toEqual([]);
    expect(t.events.events).toEqual([]);
    expect(events.events).toEqual([]);
  });

  it.each(EXIT_CASES)("with onError '%s', a copy the agent is handling at the scheduler's exit (%s) is left to end, and never redelivered", async (onError, _, end) => {
    const t = await retriedDelivery(undefined, onError);
    const events = captureEvents(t.node, ['keel.dead_letter_queue.']);
    await t.step(1000); // the agent handles the first copy
    expect(t.copies).toHaveLength(1);
    await end(t.node, t.scheduler, t.agent);
    await t.end(); // its handler ends
    expect(await deadLetterCount(t.node)).toBe(0);
    await t.step(3000);
    expect(t.copies).toHaveLength(1);
    expect(await deadLetterCount(t.node)).toBe(0);
    expect(t.logged).toEqual([]);
    expect(t.events.events).toEqual([]);
    expect(events.events).toEqual([]);
  });

  it.each(['dead_letter', 'log'] as const)("with onError '%s', a node shutdown with a copy queued and a retry waiting logs nothing and dead-letters nothing", async (onError) => {
    const { node, clock, logged } = loggedNode();
    const sendOptions = { ack: 'handled', timeout: 5000, retries: 2, backoff: { initialMs: 20, factor: 1, jitter: 'none' }, onError } as const;
    const scheduler = await AgentScheduler.start(node, { sendOptions });
    const events = captureEvents(node, ['keel.dead_letter_queue.']);
    const held = receiver(node);
    await held.hold(); // its beat waits in its mailbox, unstarted
    const full = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await full.hold();
    node.send(full.pid, 'filler'); // its mailbox is full: its beat is refused, and its retry waits 20 ms
    await scheduler.registerPeriodic(held.pid, 'beat', 1000, 'held');
    await scheduler.registerPeriodic(full.pid, 'beat', 1000, 'full');
    const retried = captureEvents(node, ['keel.supervised_send.retry']);
    await clock.advance(1000);
    await node.settle();
    expect(retried.events.map((e) => e.metadata.reason)).toEqual(['mailbox_full']);
    await node.shutdown();
    expect(held.seen).toEqual([]);
    expect(logged).toEqual([]);
    expect(events.events).toEqual([]);
  });
});

describe('AgentScheduler when an agent dies', () => {
  it('removes every schedule of the agent, cancels its timers and releases its monitor', async () => {
    const { node, clock, scheduler } = await setup();
    const events = captureEvents(node, ['keel.agent_scheduler.agent_down']);
    const a = recorder(node);
    const b = recorder(node);
    for (const id of ['x', 'y', 'z']) await scheduler.registerPeriodic(a.pid, id, 100, id, { missed: 'catch_up' });
    await scheduler.registerPeriodic(b.pid, 'x', 100, 'x');
    await advance(node, clock, 100);
    node.exit(a.pid, 'kill');
    await node.idle();
    expect(await scheduler.list(a.pid)).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ agents: 1, schedules: 1, delivered: 4, failed: 0 });
    expect(schedulerTimers(node, scheduler)).toBe(1);
    expect(schedulerMonitors(node, scheduler)).toBe(1);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(1);
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.agent_down', measurements: { schedules: 3 }, metadata: { scheduler: scheduler.name, agent: a.pid, reason: 'killed' } },
    ]);
    await advance(node, clock, 1000);
    // nothing was even attempted towards the dead agent
    expect(await scheduler.stats()).toMatchObject({ delivered: 14, failed: 0 });
    node.exit(b.pid, 'shutdown');
    await node.idle();
    expect(schedulerTimers(node, scheduler)).toBe(0);
    expect(schedulerMonitors(node, scheduler)).toBe(0);
  });
});

// ---- list, stats, delivery outcomes, events -----------------------------------------------------

describe('AgentScheduler deliveries', () => {
  it('counts and reports a failed delivery (a full bounded mailbox)', async () => {
    const { node, clock, scheduler } = await setup();
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(200);
    await node.settle();
    expect((await scheduler.list(r.pid))[0]).toMatchObject({ deliveries: 1, failures: 1 });
    expect(await scheduler.stats()).toMatchObject({ delivered: 1, failed: 1 });
    expect(events.events.map((e) => [e.event, e.metadata.reason])).toEqual([
      ['keel.agent_scheduler.delivered', undefined],
      ['keel.agent_scheduler.failed', 'mailbox_full'],
    ]);
    expect(events.events[1]).toMatchObject({ measurements: { attempts: 1 }, metadata: { scheduler: scheduler.name, agent: r.pid, id: 'beat', forced: false } });
    r.release();
  });

  it("with onError 'raise', counts and reports a full bounded mailbox as a failed delivery (mailbox_full), per schedule and in stats", async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { onError: 'raise' } });
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(200);
    await node.settle();
    expect((await scheduler.list(r.pid))[0]).toMatchObject({ deliveries: 1, failures: 1 });
    expect(await scheduler.stats()).toMatchObject({ delivered: 1, failed: 1, withdrawn: 0 });
    expect(events.events.map((e) => [e.event, e.metadata.reason])).toEqual([
      ['keel.agent_scheduler.delivered', undefined],
      ['keel.agent_scheduler.failed', 'mailbox_full'],
    ]);
    expect(events.events[1]).toMatchObject({ measurements: { attempts: 1 }, metadata: { scheduler: scheduler.name, agent: r.pid, id: 'beat', forced: false } });
    r.release();
  });

  it('emits delivered with lateMs past the base due time (jitter included) and whether it was forced', async () => {
    const { node, clock, scheduler } = await setup(() => 0.5);
    const events = captureEvents(node, ['keel.agent_scheduler.delivered']);
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'beat', 1000, 'beat', { jitter: 200 });
    await advance(node, clock, 1100);
    await scheduler.forceExecution(a.pid, 'beat');
    await node.idle();
    expect(events.events.map((e) => [e.measurements.lateMs, e.metadata.forced, e.metadata.id, e.metadata.agent, e.metadata.scheduler])).toEqual([
      [100, false, 'beat', a.pid, scheduler.name],
      [0, true, 'beat', a.pid, scheduler.name],
    ]);
    expect(typeof events.events[0]?.metadata.messageId).toBe('string');
  });

  it('sends with the scheduler options: a failure can be dead-lettered, with the schedule in its metadata', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { onError: 'dead_letter', metadata: { team: 'ops' } } });
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    await scheduler.registerPeriodic(r.pid, 'beat', 100, { beat: 1 });
    await clock.advance(200);
    await node.settle(); // not idle: the held receiver is busy
    const listed = await node.deadLetters.list({});
    if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
    expect(listed.entries).toHaveLength(1);
    expect(listed.entries[0]).toMatchObject({ reason: 'mailbox_full', message: { beat: 1 }, metadata: { team: 'ops', scheduler: scheduler.name, schedule: 'beat' } });
    await node.deadLetters.purge({});
    r.release();
  });

  it('list shows the schedules of one agent in registration order; an unknown agent has none', async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    await scheduler.registerPeriodic(a.pid, 'b', 200, 'b', { jitter: 10, missed: 'catch_up' });
    await scheduler.registerPeriodic(a.pid, 'a', 100, 'a');
    expect(await scheduler.list(a.pid)).toEqual([
      { id: 'b', intervalMs: 200, jitter: 10, missed: 'catch_up', nextDueAt: START + 200, generation: 1, deliveries: 0, failures: 0, skipped: 0 },
      { id: 'a', intervalMs: 100, jitter: 0, missed: 'skip', nextDueAt: START + 100, generation: 1, deliveries: 0, failures: 0, skipped: 0 },
    ]);
    expect(await scheduler.list(recorder(node).pid)).toEqual([]);
    expect(await scheduler.list('nobody')).toEqual([]);
    expect(isKeelError(thrown(() => scheduler.list('')), 'ERR_INVALID_ARGUMENT')).toBe(true);
  });
});

describe('AgentScheduler: hostile values, messages to itself, and its own death', () => {
  it('reports nothing and counts nothing after it exits: a delivery in flight when it dies is not a failure of it', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { sendOptions: { ack: 'handled' } });
    const r = receiver(node);
    await r.hold(); // the beat waits in its mailbox: the send is in flight
    await scheduler.registerPeriodic(r.pid, 'beat', 100, 'beat');
    await clock.advance(100);
    await node.settle();
    const events = captureEvents(node, ['keel.agent_scheduler.']);
    await exitAndWait(node, scheduler.pid, 'kill', 'settle'); // its pending send is aborted with it
    r.release();
    await node.idle();
    // only the successor's resumption: nothing of the killed scheduler's send
    expect(events.events).toEqual([
      { event: 'keel.agent_scheduler.resumed', measurements: { schedules: 1, dropped: 0, corrupt: 0 }, metadata: { scheduler: scheduler.name, from: 'table' } },
    ]);
  });

  it('refuses to schedule messages to itself (by pid or by its name) with ERR_INVALID_ARGUMENT, and keeps nothing', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 });
    const scheduler = await AgentScheduler.start(node, { name: 'ticker' });
    const events = captureEvents(node, ['keel.gen_server.unexpected_message']);
    expectKeelError(await failure(() => scheduler.registerPeriodic(scheduler.pid, 'self', 100, 'tick')), 'ERR_INVALID_ARGUMENT', '`agent`');
    expectKeelError(await failure(() => scheduler.registerPeriodic('ticker', 'self', 100, 'tick')), 'ERR_INVALID_ARGUMENT', '`agent`');
    await advance(node, clock, 500);
    expect(events.events).toEqual([]);
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0, delivered: 0, failed: 0 });
    expect(schedulerMonitors(node, scheduler)).toBe(0);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(0);
    expect(node.isAlive(scheduler.pid)).toBe(true);
  });
  it('a registration by name refused for a message the store cannot keep leaves no monitor of the agent behind', async () => {
    const { node } = clockedNode(track, { random: () => 0.5 }, START);
    const scheduler = await AgentScheduler.start(node, { name: 'kept', store: { kind: 'memory' } });
    recorder(node, { name: 'worker' });
    // sent straight to the scheduler (the handle refuses it at the call): the server refuses it too
    const reply = await GenServer.call(node, 'kept', { type: 'register', agent: 'worker', id: 'x', intervalMs: 100, message: () => 1, jitter: 0, missed: 'skip' });
    expectKeelError(reply, 'ERR_NOT_SERIALIZABLE');
    expect(await scheduler.stats()).toMatchObject({ agents: 0, schedules: 0 });
    expect(schedulerMonitors(node, scheduler)).toBe(0);
    expect(managedMonitorsTagged(node, 'agent_scheduler')).toBe(0);
  });
});

describe('AgentScheduler sent a malformed call straight to its process', () => {
  it('answers ERR_INVALID_ARGUMENT naming the field, keeps running and keeps its schedules', async () => {
    const { node, clock } = clockedNode(track, { random: () => 0.5 }, START);
    const scheduler = await AgentScheduler.start(node, { name: 'strict' });
    const a = recorder(node);
    expect(await scheduler.registerPeriodic(a.pid, 'ok', 100, 'tick')).toBe('ok');
    const pid = scheduler.pid;
    const register = { type: 'register', agent: a.pid, id: 'x', intervalMs: 100, message: 1, jitter: 0, missed: 'skip' };
    const bad: [unknown, string][] = [
      [{ type: 'list', agent: {} }, '`agent`'],
      [{ type: 'unregister_agent', agent: UNREADABLE[0]![1]() }, '`agent`'],
      [{ type: 'unregister', agent: 42, id: 'ok' }, '`agent`'],
      [{ type: 'force', agent: a.pid, id: {} }, '`id`'],
      [{ ...register, intervalMs: NaN }, '`intervalMs`'],
      [{ ...register, intervalMs: -5 }, '`intervalMs`'],
      [{ ...register, jitter: 'x' }, '`options.jitter`'],
      [{ ...register, missed: 'bogus' }, '`options.missed`'],
      [{ type: 'update_interval', agent: a.pid, id: 'ok', intervalMs: Infinity }, '`intervalMs`'],
    ];
    for (const [request, field] of bad) expectKeelError(await GenServer.call(node, 'strict', request as never), 'ERR_INVALID_ARGUMENT', field);
    expect(scheduler.pid).toBe(pid);
    expect((await scheduler.list(a.pid)).map((s) => [s.id, s.intervalMs, s.generation])).toEqual([['ok', 100, 1]]);
    await advance(node, clock, 100);
    expect(a.got.map((g) => [g.at, g.message])).toEqual([[START + 100, 'tick']]);
  });
  it('takes the defaults of a register call without jitter or missed, as the handle does: listed and stored as 0 and skip (a record the next start can read)', async () => {
    const { node } = clockedNode(track, { random: () => 0.5 }, START);
    const store = new MemoryAgentStore();
    const scheduler = await AgentScheduler.start(node, { name: 'raw', store });
    recorder(node, { name: 'worker' });
    expect(await GenServer.call(node, 'raw', { type: 'register', agent: 'worker', id: 'x', intervalMs: 100, message: 'm' } as never)).toBe('ok');
    expect(await scheduler.list('worker')).toMatchObject([{ id: 'x', intervalMs: 100, jitter: 0, missed: 'skip' }]);
    expect(store.loadAll('raw').records.map((r) => r.value)).toEqual([{ agent: 'worker', id: 'x', intervalMs: 100, message: 'm', jitter: 0, missed: 'skip', nextDueAt: START + 100 }]);
  });
});

describe('AgentScheduler sent a message that cannot be inspected', () => {
  // the same defect as the supervisors' (fuzz seed 1005273782, path 93): `message instanceof C` throws on a
  // proxy whose traps throw, and the process crashed
  it('ignores it, keeps running and keeps its schedules', async () => {
    const { node, clock } = clockedNode(track, {}, START);
    const scheduler = await AgentScheduler.start(node);
    const r = recorder(node);
    expect(await scheduler.registerPeriodic(r.pid, 'tick', 100, 'tick')).toBe('ok');
    const pid = scheduler.pid;
    for (const [, make] of UNREADABLE) node.send(pid, make());
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    await clock.advance(100);
    expect((await scheduler.list(r.pid)).map((s) => s.deliveries)).toEqual([1]);
  });
});

describe('AgentScheduler options that cannot be read, or that it does not know', () => {
  // found by test/reliability/fuzz.agents.test.ts (fast-check seed 30246999, path 547): registerPeriodic's
  // options given as a proxy whose traps throw threw a raw TypeError; registerPeriodic and start took
  // any option key, a misspelt one silently ignored
  it('are ERR_INVALID_ARGUMENT naming the option, and nothing is scheduled', async () => {
    const { node, scheduler } = await setup();
    const a = recorder(node);
    for (const [, make] of UNREADABLE) expectKeelError(thrown(() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', make() as never)), 'ERR_INVALID_ARGUMENT', '`options`');
    expectKeelError(thrown(() => scheduler.registerPeriodic(a.pid, 'x', 100, 'm', { jiter: 5 } as never)), 'ERR_INVALID_ARGUMENT', '`options.jiter`');
    expectKeelError(thrown(() => AgentScheduler.start(node, { send: {} } as never)), 'ERR_INVALID_ARGUMENT', '`options.send`');
    expect(await scheduler.stats()).toMatchObject({ schedules: 0 });
  });
});

describe("AgentScheduler: fixed intervals on the real clock (counted on the timers' time: a wall clock stepped neither holds nor bunches them)", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a schedule still fires every interval when the wall clock was stepped back an hour', async () => {
    const node = track();
    const scheduler = await AgentScheduler.start(node);
    const agent = probe(node);
    expect(await scheduler.registerPeriodic(agent.ctx.self, 'beat', 20, 'tick')).toBe('ok');
    stepWallClock(-HOUR);
    // on the wall clock, the next tick found its due time an hour away and waited for it
    expect(await settlesWithin(agent.receive(undefined, { timeout: 10_000 }).then(() => agent.receive(undefined, { timeout: 10_000 })), 4000)).toBe('settled');
  });

  it('a schedule stepped over by the wall clock (forward an hour) does not count the hour as missed due times', async () => {
    const node = track();
    const scheduler = await AgentScheduler.start(node);
    const agent = probe(node);
    expect(await scheduler.registerPeriodic(agent.ctx.self, 'beat', 100, 'tick')).toBe('ok');
    stepWallClock(HOUR);
    await agent.receive(undefined, { timeout: 4000 });
    await agent.receive(undefined, { timeout: 4000 });
    // on the wall clock, the first tick after the step found 36,000 due times passed, and skipped all but one
    expect((await scheduler.stats()).skipped).toBeLessThan(100);
    // list shows the next due time as a date on the wall clock
    const [info] = await scheduler.list(agent.ctx.self);
    expect(Math.abs(info!.nextDueAt - Date.now())).toBeLessThan(HOUR / 2);
  });
});
