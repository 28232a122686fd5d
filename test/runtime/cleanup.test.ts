/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, it } from 'vitest';
import { isDown, isExit, Pid, type Ref, type SystemMessage } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, drainThrough, idler, seeded, shuffle, useNodes } from '../support.js';

const track = useNodes();

interface Wire {
  readonly kind: 'wire';
  readonly links: readonly Pid[];
  readonly watch: readonly Pid[];
  readonly watchName: string | undefined;
  readonly timerTo: string | Pid;
  readonly register: string | undefined;
}

function isWire(m: unknown): m is Wire {
  return typeof m === 'object' && m !== null && (m as { kind?: unknown }).kind === 'wire';
}

describe('death cleans up everything the process owned', () => {
  it('leaves no process, name, timer, queued run or busy count after 10,000 linked, monitored, named processes die in random order', async () => {
    const N = 10_000;
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const random = seeded(0x5eed);

    // busy processes report here once they are parked on a promise that never settles
    const blockers = new Set<number>();
    let blocked = 0;
    const allBlocked = deferred();

    const pids: Pid[] = [];
    for (let i = 0; i < N; i++) {
      const traps = i % 2 === 0;
      const spawnName = i % 3 === 0 ? `w${i}` : undefined;
      const pid = node.spawn<Wire | 'block' | 'tick' | 'tock' | SystemMessage>(
        (ctx) => {
          if (traps) ctx.trapExits();
          return (m) => {
            if (isWire(m)) {
              for (const q of m.links) ctx.link(q);
              for (const q of m.watch) ctx.monitor(q);
              if (m.watchName !== undefined) ctx.monitor(m.watchName);
              ctx.sendAfter(ctx.self, 'tick', 60_000 + i);
              ctx.sendAfter(m.timerTo, 'tock', 30_000);
              if (m.register !== undefined) node.registry.register(m.register, ctx.self);
              return;
            }
            if (m === 'block') {
              if (++blocked === blockers.size) allBlocked.resolve();
              return new Promise<void>(() => undefined);
            }
            return undefined;
          };
        },
        spawnName === undefined ? undefined : { name: spawnName },
      );
      pids.push(pid);
    }

    // links to the next process and to a random one; monitors to both neighbours (so every pair
    // monitors in both directions) and to a random registered name; timers to self and to a name
    let expectedNames = 0;
    for (let i = 0; i < N; i++) {
      const next = pids[(i + 1) % N]!;
      const prev = pids[(i + N - 1) % N]!;
      const randomPeer = pids[Math.floor(random() * N)]!;
      const namedPeer = Math.floor(random() * (N / 3)) * 3;
      const register = i % 3 === 1 && i % 2 === 1 ? `r${i}` : undefined;
      if (i % 3 === 0 || register !== undefined) expectedNames++;
      node.send(pids[i]!, {
        kind: 'wire',
        links: [next, randomPeer],
        watch: [next, prev],
        watchName: i % 5 === 0 ? `w${namedPeer}` : undefined,
        timerTo: i % 7 === 0 ? `w${namedPeer}` : randomPeer,
        register,
      });
    }
    await node.idle();

    // the web is really there before the killing starts
    expect(node.internals().processes).toBe(N);
    expect(node.internals().names).toBe(expectedNames);
    expect(node.internals().timers).toBe(2 * N);
    const sample = node.info(pids[N / 2]!);
    expect(sample?.links.length).toBeGreaterThanOrEqual(2);
    expect(sample?.monitors.length).toBeGreaterThanOrEqual(2);
    expect(sample?.monitoredBy.length).toBeGreaterThanOrEqual(2);
    expect(sample?.timers).toBe(2);

    // one process in eleven is parked in an async handler when it is killed
    for (let i = 0; i < N; i += 11) blockers.add(i);
    for (const i of blockers) node.send(pids[i]!, 'block');
    await allBlocked.promise;
    expect(node.internals().busy).toBe(blockers.size);

    // kill in a seeded random order, mixing untrappable kills with errors that trappers survive;
    // let the survivors handle their Exits and Downs between batches
    const order = shuffle(pids, random);
    for (let start = 0; start < N; start += 500) {
      for (const pid of order.slice(start, start + 500)) {
        if (node.isAlive(pid)) node.exit(pid, random() < 0.7 ? 'kill' : new Error('chaos'));
      }
      await clock.advance(0);
    }
    for (const pid of order) if (node.isAlive(pid)) node.exit(pid, 'kill');
    await node.idle();

    expect(node.processes()).toEqual([]);
    expect(node.registry.names()).toEqual([]);
    expect(node.internals()).toEqual({ processes: 0, names: 0, groups: 0, timers: 0, runQueue: 0, runQueueCapacity: expect.any(Number) as number, busy: 0, envelopes: 0, longMailboxes: 0, startedAt: 0, handledByDead: expect.any(Number) as number });
    expect(clock.pendingTimers).toBe(0);
  });
});

describe('process death', () => {
  it('removes its links from the survivors', async () => {
    const node = track();
    const survivor = probe(node);
    survivor.ctx.trapExits();
    const victim = idler(node);
    survivor.ctx.link(victim);
    expect(node.info(survivor)?.links.map((x) => Pid.equals(x, victim))).toEqual([true]);
    node.exit(victim, 'kill');
    expect(node.info(survivor)?.links).toEqual([]);
    await survivor.receive(isExit);
  });

  it('removes the monitors it owned from their targets', async () => {
    const node = track();
    const survivor = idler(node);
    const victim = node.spawn((ctx) => {
      ctx.monitor(survivor);
      return () => undefined;
    });
    await node.idle();
    expect(node.info(survivor)?.monitoredBy.map((x) => Pid.equals(x, victim))).toEqual([true]);
    node.exit(victim, 'kill');
    expect(node.info(survivor)?.monitoredBy).toEqual([]);
  });

  it('removes the monitors others held on it from their owners', async () => {
    const node = track();
    const survivor = probe(node);
    const victim = idler(node);
    const ref: Ref = survivor.ctx.monitor(victim);
    expect(node.info(survivor)?.monitors).toEqual([ref]);
    node.exit(victim, 'kill');
    expect(node.info(survivor)?.monitors).toEqual([]);
    const down = await survivor.receive(isDown);
    expect(isDown(down) && down.ref).toBe(ref);
  });

  it('releases its name', () => {
    const node = track();
    const victim = idler(node, { name: 'victim' });
    node.exit(victim, 'kill');
    expect(node.registry.whereis('victim')).toBeUndefined();
    expect(node.internals().names).toBe(0);
  });

  it('cancels its pending timers', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const victim = node.spawn((ctx) => {
      ctx.sendAfter(p, 'late', 1000);
      ctx.sendAfter('somebody', 'late-by-name', 1000);
      return () => undefined;
    });
    await node.idle();
    expect(node.info(victim)?.timers).toBe(2);
    expect(node.internals().timers).toBe(2);
    node.exit(victim, 'kill');
    expect(node.internals().timers).toBe(0);
    await clock.advance(1000);
    await drainThrough(node, p);
    expect(p.messages).toEqual(['marker']);
  });

  it('leaves the timers of other processes running', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    p.ctx.sendAfter(p, 'survivor-tick', 1000);
    const victim = node.spawn((ctx) => {
      ctx.sendAfter(p, 'victim-tick', 1000);
      return () => undefined;
    });
    await node.idle();
    node.exit(victim, 'kill');
    await clock.advance(1000);
    expect(await p.receive()).toBe('survivor-tick');
    expect(node.internals().timers).toBe(0);
  });

  it('drops its queued messages from the run queue', async () => {
    const node = track();
    const victim = idler(node);
    for (let i = 0; i < 100; i++) node.send(victim, i);
    expect(node.info(victim)?.mailboxLength).toBe(100);
    node.exit(victim, 'kill');
    await node.idle();
    expect(node.internals()).toMatchObject({ processes: 0, runQueue: 0, busy: 0 });
  });

  it('releases the busy count of a process killed while its async init awaits', async () => {
    const node = track();
    const p = probe(node);
    const victim = node.spawn(async (ctx) => {
      ctx.send(p, 'initializing');
      await new Promise<void>(() => undefined);
      return () => undefined;
    });
    await p.receive((m) => m === 'initializing');
    expect(node.info(victim)?.status).toBe('initializing');
    expect(node.internals().busy).toBe(1);
    node.exit(victim, 'kill');
    expect(node.internals()).toMatchObject({ busy: 0, processes: 1 });
    await node.idle();
  });

  it('leaves no timer behind when a zombie continuation calls ctx.sendAfter', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const captured = captureEvents(node, ['keel.process.zombie_call']);
    const gate = deferred();
    const resumed = deferred();
    const victim = node.spawn((ctx) => async () => {
      ctx.send(p, 'parked');
      await gate.promise;
      ctx.sendAfter(p, 'from-the-grave', 1000);
      resumed.resolve();
    });
    node.send(victim, 'go');
    await p.receive((m) => m === 'parked');
    node.exit(victim, 'kill');
    gate.resolve();
    await resumed.promise;
    expect(captured.events.map((e) => e.metadata.operation)).toEqual(['sendAfter']);
    captured.stop();
    expect(node.internals().timers).toBe(0);
    expect(clock.pendingTimers).toBe(0);
  });

  it('releases the busy count of a process killed while its async handler awaits', async () => {
    const node = track();
    const p = probe(node);
    const victim = node.spawn((ctx) => async () => {
      ctx.send(p, 'parked');
      await new Promise<void>(() => undefined);
    });
    node.send(victim, 'go');
    await p.receive((m) => m === 'parked');
    expect(node.internals().busy).toBe(1);
    node.exit(victim, 'kill');
    expect(node.internals().busy).toBe(0);
    await node.idle();
  });
});

describe('the run queue', () => {
  it('goes back to its initial size once a burst of 100,000 ready processes has drained, and not after a steady fan-out of 10,000', async () => {
    const node = track();
    const init = (): (() => void) => () => undefined;
    const fan = Array.from({ length: 10_000 }, () => node.spawn(init));
    await node.idle();
    for (const pid of fan) node.send(pid, 'tick');
    expect(node.internals().runQueueCapacity).toBe(16_384); // grown for the fan-out
    await node.idle();
    expect(node.internals().runQueueCapacity).toBe(16_384); // kept: steady work of this size comes again
    for (let i = 0; i < 100_000; i++) node.spawn(init);
    expect(node.internals().runQueueCapacity).toBe(131_072);
    await node.idle();
    expect(node.internals()).toMatchObject({ processes: 110_000, runQueue: 0, runQueueCapacity: 1024 });
  });
});
