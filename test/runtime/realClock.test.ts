/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- a probe monitors the supervisor it watches give up, and a named process forwards to a probe: raw, as in the runtime tests */
// The real clock reads the wall clock, and a node's timers on it count on the monotonic clock (as the
// BEAM's timers run on its monotonic time): the host's wall clock stepped back or forward never
// stretches nor cuts a node's timers, call timeouts or restart windows.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { GenServer, isDown, realClock, sendSupervised, Supervisor } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { deferred, HOUR, nextEvent, stepWallClock, useNodes } from '../support.js';

const track = useNodes();

afterEach(() => {
  vi.restoreAllMocks();
});

describe('the real clock', () => {
  it('reads the wall clock (timestamps other processes read: a dead letter written by a node, retried by `keel dlq`)', () => {
    stepWallClock(HOUR);
    const now = realClock.now();
    expect(now - Date.now()).toBe(0);
  });
});

describe("a node's timers on the real clock", () => {
  it('a sendAfter fires after its delay when the wall clock was stepped back an hour after it was set', async () => {
    const node = track();
    const p = probe(node);
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'late', 20);
      return () => undefined;
    });
    await node.idle();
    stepWallClock(-HOUR);
    // on the wall clock, the timer would wait the hour back before it fired
    await expect(p.receive(undefined, { timeout: 4000 })).resolves.toBe('late');
  });

  it('a GenServer.call times out after its timeout when the wall clock was stepped back', async () => {
    const node = track();
    const server = await GenServer.start(node, { init: () => 0, handleCall: (_request, _from, state) => ({ noreply: true, state }) });
    const call = GenServer.call(node, server, 'never answered', { timeout: 30 });
    await node.idle(); // the call's deadline is armed
    stepWallClock(-HOUR);
    await expect(call).rejects.toMatchObject({ code: 'ERR_CALL_TIMEOUT' });
  });

  it('a supervisor counts restarts in its window on the monotonic clock: a wall clock stepped forward does not forget them', async () => {
    const node = track();
    const p = probe(node);
    const crasher = () => () => {
      throw new Error('boom');
    };
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(crasher) }], { maxRestarts: 1, withinMs: 60_000 });
    p.ctx.monitor(sup);
    const child = () => Supervisor.whichChildren(node, sup).then((c) => c[0]!.pid!);
    node.send(await child(), 'crash 1');
    await node.idle();
    stepWallClock(2 * 60_000);
    // the second crash is within the minute on the monotonic clock: past the intensity, the supervisor gives up
    node.send(await child(), 'crash 2');
    const down = await p.receive(isDown, { timeout: 4000 });
    expect(down).toMatchObject({ kind: 'down', reason: 'shutdown' });
  });

  it("a supervised send's deadline counts on the monotonic clock: a wall clock stepped back does not stretch it", async () => {
    const node = track();
    // nobody ever registers 'absent': the send retries until its 100 ms deadline, then gives up
    const outcome = sendSupervised(node, 'absent', 'm', { retries: 1_000_000, deadline: 100, backoff: { initialMs: 5, maxMs: 5, jitter: 'none' }, onError: 'ignore' });
    stepWallClock(-HOUR);
    // on the wall clock, the deadline would have an hour more to run
    await expect(outcome).resolves.toMatchObject({ ok: false, reason: 'noproc' });
  });

  it("a supervised send's deadline counts on the monotonic clock: a wall clock stepped forward does not cut it", async () => {
    const node = track();
    const p = probe(node);
    let retries = 0;
    const registered = new Promise<void>((resolve) => {
      node.telemetry.attach('late-name', ['keel.supervised_send.retry'], () => {
        // a few retries after the step, the name comes
        if (++retries === 3) {
          node.spawn((ctx) => (message) => ctx.send(p, message), { name: 'late' });
          resolve();
        }
      });
    });
    const outcome = sendSupervised(node, 'late', 'arrived', { retries: 1_000_000, deadline: 60_000, backoff: { initialMs: 5, maxMs: 5, jitter: 'none' }, onError: 'ignore' });
    stepWallClock(HOUR);
    // on the wall clock, the hour stepped forward is past the minute's deadline: no retry after the step would be scheduled
    const settled = await Promise.race([outcome, registered.then(() => outcome)]);
    expect(settled).toMatchObject({ ok: true, attempts: 4 });
    await expect(p.receive(undefined, { timeout: 4000 })).resolves.toBe('arrived');
  });
});

describe('durations a node reports on the real clock', () => {
  it.each([HOUR, -HOUR])("keel.gen_server.init's durationMs counts on the timers' time: the wall clock stepped %d ms while init runs is not in it", async (step) => {
    const node = track();
    const began = deferred();
    const gate = deferred();
    const event = nextEvent(node, 'keel.gen_server.init');
    const start = GenServer.start(node, {
      init: async () => {
        began.resolve();
        await gate.promise;
        return 0;
      },
    });
    await began.promise;
    stepWallClock(step);
    gate.resolve();
    await start;
    const { durationMs } = (await event).measurements as { durationMs: number };
    // on the wall clock, about the step (an hour, or minus an hour)
    expect(durationMs).toBeGreaterThanOrEqual(0);
    expect(durationMs).toBeLessThan(60_000);
  });
});
