/* eslint-disable keel/no-raw-send -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { createNode, type Node, type Pid, SimulatedClock } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

/**
 * The scheduler's time source, injected (`createNode({ scheduler: { now } })`): a handler that
 * "takes" `ms` advances it by `ms`, so that slices and long schedules are measured exactly, without
 * busy-waiting and without racing a loaded machine's real time.
 */
function schedulerTime(): { now: () => number; spend(ms: number): void } {
  let t = 0;
  return {
    now: () => t,
    spend: (ms) => {
      t += ms;
    },
  };
}

/**
 * A process that sends itself `total` messages one after the other (each handled message sends the
 * next), then sends 'done' to `sink`. `remaining()` tells how far the storm still has to go.
 */
function storm(node: Node, sink: Pid, total: number): { pid: Pid; remaining(): number } {
  let remaining = total;
  const pid = node.spawn((ctx) => () => {
    if (--remaining > 0) ctx.send(ctx.self, 'storm');
    else ctx.send(sink, 'done');
  });
  return { pid, remaining: () => remaining };
}

describe('scheduler fairness', () => {
  it('handles another process’s message while a process floods itself', async () => {
    const node = track();
    const p = probe(node);
    const GUARD = 2_000_000; // a starving scheduler lets the flood end by itself here
    let flooded = 0;
    let flooding = true;
    const flood = node.spawn((ctx) => (m) => {
      if (m === 'stop') {
        flooding = false;
        ctx.send(p, 'flood stopped');
        return;
      }
      if (!flooding) return;
      flooded++;
      if (flooded === 10_000) ctx.send(p, 'flooding');
      if (flooded === GUARD) {
        flooding = false;
        ctx.send(p, 'flood ended by itself');
        return;
      }
      ctx.send(ctx.self, 'again');
    });
    const other = node.spawn((ctx) => (m) => {
      if (m === 'ping') {
        ctx.send(p, { pongAfter: flooded, floodRunning: flooding });
        ctx.send(flood, 'stop');
      }
    });
    node.send(flood, 'again');
    await p.receive((m) => m === 'flooding');
    node.send(other, 'ping');
    const pong = (await p.receive((m) => typeof m === 'object' && m !== null && 'pongAfter' in m)) as { pongAfter: number; floodRunning: boolean };
    expect(pong.floodRunning).toBe(true);
    expect(pong.pongAfter).toBeLessThan(GUARD);
    await p.receive((m) => m === 'flood stopped');
    expect(p.messages).not.toContain('flood ended by itself');
  });

  it.each<[string, (observe: () => number) => Promise<number>]>([
    [
      'a host timer',
      (observe) =>
        new Promise<number>((resolve) => {
          // a host timer that is observed, not waited on (keel/no-sleep-in-tests flags only awaited delays)
          setTimeout(() => resolve(observe()), 0);
        }),
    ],
    ['an I/O callback', (observe) => fs.promises.readFile(new URL(import.meta.url)).then(() => observe())],
  ])('runs %s during a storm of 1,000,000 messages', async (_label, hostEvent) => {
    const node = track();
    const p = probe(node);
    const s = storm(node, p, 1_000_000);
    const hostEventRan = hostEvent(() => s.remaining());
    node.send(s.pid, 'storm');
    const remainingWhenHostEventRan = await hostEventRan;
    await p.receive((m) => m === 'done', { timeout: 10_000 });
    expect(remainingWhenHostEventRan).toBeGreaterThan(0);
    expect(remainingWhenHostEventRan).toBeLessThan(1_000_000);
  });

  it('runs a host timer while an async handler works through a long mailbox', async () => {
    const node = track();
    const p = probe(node);
    const TOTAL = 200_000;
    let remaining = TOTAL;
    // an async handler whose promise settles at once: each message ends in a microtask
    const worker = node.spawn((ctx) => async () => {
      if (--remaining === 0) ctx.send(p, 'done');
    });
    const timerRan = new Promise<number>((resolve) => {
      // a host timer that is observed, not waited on
      setTimeout(() => resolve(remaining), 0);
    });
    for (let i = 0; i < TOTAL; i++) node.send(worker, i);
    const remainingWhenTimerRan = await timerRan;
    await p.receive((m) => m === 'done', { timeout: 10_000 });
    expect(remainingWhenTimerRan).toBeGreaterThan(0);
  });

  it('passes a token 100,000 hops around a 10,000-process ring with a flat stack', async () => {
    const node = track();
    const p = probe(node);
    const N = 10_000;
    const HOPS = 100_000;
    const sampleAt = new Set([1, 2, 10, 1_000, 10_001, 50_000, 99_999, HOPS]);
    const depths: number[] = [];
    const ring: Pid<number>[] = [];
    for (let i = 0; i < N; i++) {
      ring.push(
        node.spawn<number>((ctx) => (hop) => {
          if (typeof hop !== 'number') return;
          if (sampleAt.has(hop)) depths.push(new Error('depth').stack!.split('\n').length);
          if (hop === HOPS) ctx.send(p, { arrived: hop });
          else ctx.send(ring[(i + 1) % N]!, hop + 1);
        }),
      );
    }
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = Infinity;
    try {
      node.send(ring[0]!, 1);
      expect(await p.receive((m) => typeof m === 'object' && m !== null && 'arrived' in m, { timeout: 10_000 })).toEqual({ arrived: HOPS });
    } finally {
      Error.stackTraceLimit = limit;
    }
    expect(depths).toHaveLength(sampleAt.size);
    // the first hop runs from the loop's starting microtask, later ones from setImmediate: a frame apart at most
    expect(Math.max(...depths) - Math.min(...depths)).toBeLessThanOrEqual(2);
  });
});

describe('the time slice', () => {
  /**
   * Counts, with a chain of setImmediate callbacks, the handlers that ran between two turns of the
   * event loop until `done` settles: each run of the scheduler without a yield, in handlers.
   */
  async function runs(handled: () => number, done: Promise<unknown>): Promise<number[]> {
    const out: number[] = [];
    let last = handled();
    let finished = false;
    void done.then(() => (finished = true));
    await new Promise<void>((resolve) => {
      const tick = (): void => {
        const now = handled();
        if (now > last) out.push(now - last);
        last = now;
        if (finished) resolve();
        else setImmediate(tick);
      };
      setImmediate(tick);
    });
    return out;
  }

  it('yields within one 1 ms handler of the 5 ms slice, however many messages are queued', async () => {
    const time = schedulerTime();
    const node = track({ scheduler: { now: time.now } });
    const p = probe(node);
    let handled = 0;
    const TOTAL = 120;
    const workers = Array.from({ length: 4 }, () =>
      node.spawn(() => () => {
        time.spend(1);
        if (++handled === TOTAL) node.send(p, 'done');
      }),
    );
    for (let i = 0; i < TOTAL; i++) node.send(workers[i % 4]!, i);
    const max = Math.max(...(await runs(() => handled, p.receive((m) => m === 'done', { timeout: 20_000 }))));
    // 5 handlers of 1 ms fill the slice, the sixth is the one that crossed it
    expect(max).toBeGreaterThanOrEqual(1);
    expect(max).toBeLessThanOrEqual(6);
  });

  it('yields within one 1 ms handler when each slow process has one message per turn, after fast work', async () => {
    const time = schedulerTime();
    const node = track({ scheduler: { now: time.now } });
    const p = probe(node);
    let slowHandled = 0;
    const SLOW = 200;
    // fast work first: the scheduler has seen nothing but quick handlers when the slow ones start
    let fastLeft = 100_000;
    const fast = node.spawn((ctx) => () => {
      if (--fastLeft > 0) ctx.send(ctx.self, 'again');
      else for (const w of slow) ctx.send(w, 'work');
    });
    const slow = Array.from({ length: SLOW }, () =>
      node.spawn(() => () => {
        time.spend(1);
        if (++slowHandled === SLOW) node.send(p, 'done');
      }),
    );
    node.send(fast, 'go');
    const max = Math.max(...(await runs(() => slowHandled, p.receive((m) => m === 'done', { timeout: 20_000 }))));
    expect(max).toBeLessThanOrEqual(6);
  });

  it('catches a known-fast process turning slow within one measuring interval, then measures it per message', async () => {
    const time = schedulerTime();
    const node = track({ scheduler: { now: time.now } });
    const p = probe(node);
    let handled = 0;
    let slowHandled = 0;
    let slow = false;
    const WARM = 1000;
    const SLOW = 150;
    const worker = node.spawn((ctx) => () => {
      handled++;
      if (slow) {
        time.spend(1);
        if (++slowHandled === SLOW) ctx.send(p, 'done');
      } else if (handled === WARM) {
        slow = true;
        for (let i = 0; i < SLOW; i++) ctx.send(ctx.self, 'slow');
      } else {
        ctx.send(ctx.self, 'fast');
      }
    });
    node.send(worker, 'fast');
    const [first, ...rest] = await runs(() => slowHandled, p.receive((m) => m === 'done', { timeout: 20_000 }));
    // the change is seen at the end of the interval it happened in (at most 64 messages), then
    // every message of the process is measured: 6 handlers of 1 ms at most per slice from there
    expect(first).toBeLessThanOrEqual(64);
    expect(rest.length).toBeGreaterThan(0);
    expect(Math.max(...rest)).toBeLessThanOrEqual(6);
    expect(node.info(worker)?.messagesHandled).toBe(WARM + SLOW);
  });
});

describe('keel.process.long_schedule', () => {
  it('is emitted with the pid and the duration for a long synchronous handler', async () => {
    const time = schedulerTime();
    const node = track({ scheduler: { now: time.now } });
    const events = captureEvents(node, ['keel.process.long_schedule']);
    const slow = node.spawn(() => () => time.spend(60));
    node.send(slow, 'work');
    await node.idle();
    expect(events.events).toHaveLength(1);
    expect(events.events[0]?.metadata.pid).toEqual(slow);
    expect(events.events[0]?.measurements.durationMs).toBe(60);
  });

  it('is not emitted for short handlers', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.process.long_schedule']);
    let handled = 0;
    const quick = node.spawn(() => () => {
      handled++;
    });
    for (let i = 0; i < 1_000; i++) node.send(quick, i);
    await node.idle();
    expect(handled).toBe(1_000);
    expect(events.events).toEqual([]);
  });

  it('uses the scheduler.longScheduleMs threshold', async () => {
    const time = schedulerTime();
    const node = track({ scheduler: { longScheduleMs: 10, now: time.now } });
    const events = captureEvents(node, ['keel.process.long_schedule']);
    const slow = node.spawn(() => () => time.spend(15));
    node.send(slow, 'work');
    await node.idle();
    expect(events.events.map((e) => e.metadata.pid)).toEqual([slow]);
    expect(events.events[0]?.measurements.durationMs).toBe(15);
  });
});

describe('scheduler options', () => {
  /** Two processes that each send themselves `n` messages; the log shows whose message ran when. */
  function twoFloods(node: Node, n: number): { log: string[]; start(): Promise<void> } {
    const log: string[] = [];
    const flooder = (name: string) =>
      node.spawn<number>((ctx) => (k) => {
        if (typeof k !== 'number') return;
        log.push(name);
        if (k + 1 < n) ctx.send(ctx.self, k + 1);
      });
    const a = flooder('a');
    const b = flooder('b');
    return {
      log,
      start: async () => {
        // a new process's first message is a turn of its own (the scheduler measures it): the
        // flooders handle one message each first, so that the floods show the budget alone
        node.send(a, 'warm' as never);
        node.send(b, 'warm' as never);
        await node.idle();
        node.send(a, 0);
        node.send(b, 0);
      },
    };
  }

  it.each([
    ['budget 1 interleaves two flooding processes message by message', 1, 50, 'ab'.repeat(50)],
    ['budget n lets a process handle n messages per turn', 3, 12, 'aaabbb'.repeat(4)],
  ])('%s', async (_label, budget, n, expected) => {
    const node = track({ scheduler: { budget } });
    const f = twoFloods(node, n);
    await f.start();
    await node.idle();
    expect(f.log.join('')).toBe(expected);
  });

  it('an init whose thenable calls back at once takes its turns like any other process, not two per round', async () => {
    // a virtual clock: no new process is measured on its own, so budget 1 alone decides the turns
    const node = track({ clock: new SimulatedClock(), scheduler: { budget: 1 } });
    const log: string[] = [];
    const handler = (name: string) => (m: unknown) => {
      log.push(`${name}${String(m)}`);
    };
    // a thenable that resolves synchronously, from inside its then: the handler is known within init's turn
    const a = node.spawn(() => ({ then: (resolve: (h: unknown) => void) => resolve(handler('a')) }) as never);
    const b = node.spawn(() => handler('b'));
    for (let i = 0; i < 4; i++) {
      node.send(a, i);
      node.send(b, i);
    }
    await node.idle();
    // a's init takes its turn alone (it was queued again from inside it), then the two alternate
    expect(log.join(' ')).toBe('b0 a0 b1 a1 b2 a2 b3 a3');
    expect(node.internals().runQueue).toBe(0);
  });

  it.each<[string, number, (remaining: number) => void]>([
    ['a long sliceMs lets a storm run to its end before the event loop gets a turn', 60_000, (remaining) => expect(remaining).toBe(0)],
    ['a short sliceMs yields to the event loop within a storm', 1, (remaining) => expect(remaining).toBeGreaterThan(0)],
  ])('%s', async (_label, sliceMs, expectRemaining) => {
    const node = track({ scheduler: { sliceMs } });
    const p = probe(node);
    const s = storm(node, p, 200_000);
    const immediateRan = new Promise<number>((resolve) => setImmediate(() => resolve(s.remaining())));
    node.send(s.pid, 'storm');
    expectRemaining(await immediateRan);
    await p.receive((m) => m === 'done');
  });

  it('refuses a scheduler.now that is not a function with ERR_INVALID_ARGUMENT', () => {
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => createNode({ scheduler: { now: 5 as never } })).toThrow(invalid);
    expect(() => createNode({ scheduler: { now: null as never } })).toThrow(invalid);
  });

  it.each<[string, () => number]>([
    ['throws', () => {
      throw new Error('broken time source');
    }],
    ['returns NaN', () => NaN],
    ['returns a string', () => 'soon' as never],
  ])('keeps running when the injected scheduler.now %s: every message is handled', async (_label, now) => {
    const node = track({ scheduler: { now } });
    let handled = 0;
    const pid = node.spawn(() => () => {
      handled++;
    });
    for (let i = 0; i < 10_000; i++) node.send(pid, i);
    await node.idle();
    expect(handled).toBe(10_000);
  });

  it.each<[string, (() => number) | undefined]>([
    ['the default source', undefined],
    ['a source that throws', () => {
      throw new Error('broken time source');
    }],
    ['a source that returns NaN', () => NaN],
  ])('with %s, a self-sending storm yields to the event loop within a 1 ms slice', async (_label, now) => {
    const node = track({ scheduler: { sliceMs: 1, ...(now === undefined ? {} : { now }) } });
    const p = probe(node);
    const s = storm(node, p, 200_000);
    const atImmediate = new Promise<number>((resolve) => setImmediate(() => resolve(s.remaining())));
    node.send(s.pid, 'storm');
    // the event loop had a turn before the storm ended: a broken source reads as real time
    expect(await atImmediate).toBeGreaterThan(0);
    await p.receive((m) => m === 'done');
  });

  it('with a source that stands still (a TestClock’s now), a self-sending storm still yields to the event loop', async () => {
    const node = track({ scheduler: { now: () => 0 } });
    const p = probe(node);
    // past the 1,048,576 messages a slice runs while its source stands still
    const s = storm(node, p, 1_200_000);
    const atImmediate = new Promise<number>((resolve) => setImmediate(() => resolve(s.remaining())));
    node.send(s.pid, 'storm');
    // the event loop had a turn before the storm ended: before, the slice never ended and nothing else ever ran
    expect(await atImmediate).toBeGreaterThan(0);
    await p.receive((m) => m === 'done', { timeout: 60_000 });
  }, 60_000);

  it('refuses a budget, sliceMs or longScheduleMs that is not positive with ERR_INVALID_ARGUMENT', () => {
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => createNode({ scheduler: { budget: 0 } })).toThrow(invalid);
    expect(() => createNode({ scheduler: { budget: 1.5 } })).toThrow(invalid);
    expect(() => createNode({ scheduler: { sliceMs: -1 } })).toThrow(invalid);
    expect(() => createNode({ scheduler: { longScheduleMs: 0 } })).toThrow(invalid);
  });
});
