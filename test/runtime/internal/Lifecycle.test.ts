// The lifecycle (src/runtime/internal/Lifecycle.ts), driven directly, without a node: the idle
// conditions over a fake scheduler whose `active` and `busy` the test sets, and the shutdown over
// the real parts (table, mailboxes, scheduler, death watch) wired by ./fakes.ts `kernel()` with fake
// hosts (the mailboxes' waker only records, so no process runs: a trapping process is stubborn).
import { describe, expect, it, vi } from 'vitest';
import { IdleTimeoutError, isKeelError } from '../../../src/errors.js';
import type { DeathWatch } from '../../../src/runtime/internal/DeathWatch.js';
import { Lifecycle, validateDelay } from '../../../src/runtime/internal/Lifecycle.js';
import { F_BUSY, F_DEAD, F_TOP, F_TRAP, type Proc } from '../../../src/runtime/internal/Proc.js';
import { ProcTable } from '../../../src/runtime/internal/ProcTable.js';
import type { Scheduler } from '../../../src/runtime/internal/Scheduler.js';
import { ExitMessage, type ExitReason } from '../../../src/runtime/messages.js';
import { deferred, thrown, watch } from '../../support.js';
import { kernel, makeProc, nextTurn, NODE, queued, recordingLog, telemetry } from './fakes.js';

/** A lifecycle over a fake scheduler (`active`, `busy` set by the test) and an empty table. */
function idleSetup() {
  const sched = { active: false, busy: 0 };
  const log = recordingLog();
  const { bus, events } = telemetry(['keel.node.shutdown']);
  const procs = new ProcTable();
  let released = 0;
  const life = new Lifecycle(
    {
      name: NODE,
      telemetry: bus,
      log: log.log,
      onProcExit: () => undefined,
      released: () => {
        released++;
      },
    },
    procs,
    sched as unknown as Scheduler,
    {} as DeathWatch, // no process: the shutdown never reaches death watch
  );
  return { life, sched, procs, log: log.entries, events, released: () => released };
}




describe('idle and settle', () => {
  it('idle resolves only once the scheduler is inactive, no io is in flight and nothing is busy', async () => {
    const s = idleSetup();
    s.sched.active = true;
    s.sched.busy = 1;
    const work = deferred();
    void s.life.trackIo(work.promise);
    const idle = watch(s.life.idle());
    const steps: string[] = [];
    const check = async (label: string) => {
      s.life.checkIdle();
      await nextTurn();
      steps.push(`${label}: ${idle.status}`);
    };
    await check('active, io 1, busy 1');
    s.sched.active = false;
    await check('inactive, io 1, busy 1');
    work.resolve();
    await check('inactive, io 0, busy 1');
    s.sched.busy = 0;
    s.sched.active = true;
    await check('active, io 0, busy 0');
    s.sched.active = false;
    await check('inactive, io 0, busy 0');
    expect(steps).toEqual([
      'active, io 1, busy 1: pending',
      'inactive, io 1, busy 1: pending',
      'inactive, io 0, busy 1: pending',
      'active, io 0, busy 0: pending',
      'inactive, io 0, busy 0: resolved',
    ]);
  });

  it('settle() waits for nothing runnable only; settle({ io: true }) for no io either; neither waits for busy handlers', async () => {
    const s = idleSetup();
    s.sched.busy = 2;
    const work = deferred();
    const tracked = s.life.trackIo(work.promise);
    s.sched.active = true;
    const runnable = watch(s.life.settle());
    const runnableToo = watch(s.life.settle({ io: false }));
    const io = watch(s.life.settle({ io: true }));
    const all = watch(s.life.idle());
    s.life.checkIdle();
    await nextTurn();
    expect([runnable.status, runnableToo.status, io.status, all.status]).toEqual(['pending', 'pending', 'pending', 'pending']);
    s.sched.active = false;
    s.life.checkIdle();
    await nextTurn();
    expect([runnable.status, runnableToo.status, io.status, all.status]).toEqual(['resolved', 'resolved', 'pending', 'pending']);
    work.resolve();
    await tracked; // the io settled: its end asked for an idle check, told at the next turn
    await nextTurn();
    expect([io.status, all.status]).toEqual(['resolved', 'pending']);
    s.sched.busy = 0;
    s.life.checkIdle();
    await nextTurn();
    expect(all.status).toBe('resolved');
  });

  it('checks the condition again at the turn it tells the waiters: work that started meanwhile keeps them waiting', async () => {
    const s = idleSetup();
    const idle = watch(s.life.idle()); // quiet now: a check is scheduled for the next turn
    s.sched.active = true; // ... and the scheduler got work before that turn
    await nextTurn();
    expect(idle.status).toBe('pending');
    s.sched.active = false;
    s.life.checkIdle();
    await nextTurn();
    expect(idle.status).toBe('resolved');
  });

  it('a waiter registered while quiet resolves at the next turn, not synchronously', async () => {
    const s = idleSetup();
    const idle = watch(s.life.idle());
    await Promise.resolve();
    expect(idle.status).toBe('pending');
    await nextTurn();
    expect(idle.status).toBe('resolved');
  });

  it.each<[string, unknown]>([
    ['NaN', NaN],
    ['a negative delay', -1],
    ['Infinity', Infinity],
    ['a string', '5'],
    ['null', null],
  ])('idle({ timeoutMs }) refuses %s at once with ERR_INVALID_ARGUMENT naming timeoutMs', (_label, timeoutMs) => {
    const s = idleSetup();
    const e = thrown(() => s.life.idle({ timeoutMs: timeoutMs as number }));
    expect(isKeelError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((e as { argument: string }).argument).toBe('timeoutMs');
  });

  it('idle({ timeoutMs }) rejects with IdleTimeoutError naming the busy processes when the node never gets idle', async () => {
    const s = idleSetup();
    s.sched.busy = 1;
    const p = makeProc(41, F_BUSY);
    s.procs.set(41, p);
    s.procs.set(42, makeProc(42, 0));
    const error = await s.life.idle({ timeoutMs: 1 }).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(IdleTimeoutError);
    expect((error as IdleTimeoutError).busy).toEqual([String(p.self)]);
    expect((error as Error).message).toBe(`node ${NODE} was not idle after 1 ms: busy ${String(p.self)}`);
    // the waiter was taken back: an idle node later resolves nothing stale, and a new idle() works
    s.sched.busy = 0;
    await expect(s.life.idle({ timeoutMs: 1000 })).resolves.toBeUndefined();
  });

  it('idle({ timeoutMs }) waits a timeoutMs beyond the host timer range in full, not 1 ms (a host timer overflows to 1 ms)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const s = idleSetup();
      s.sched.busy = 1;
      const idle = watch(s.life.idle({ timeoutMs: 2 ** 31 + 1000 }));
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect(idle.status).toBe('pending');
      await vi.advanceTimersByTimeAsync(1001);
      expect(idle.status).toBe('rejected');
      expect((idle.error as Error).message).toBe(`node ${NODE} was not idle after ${2 ** 31 + 1000} ms: the run queue did not empty`);
    } finally {
      vi.useRealTimers();
    }
  });

  it('idle({ timeoutMs }) names the io in flight when no process is busy', async () => {
    const s = idleSetup();
    void s.life.trackIo(new Promise(() => {}));
    const error = await s.life.idle({ timeoutMs: 1 }).then(
      () => 'resolved',
      (e: unknown) => e,
    );
    expect((error as Error).message).toBe(`node ${NODE} was not idle after 1 ms: 1 service I/O operation(s) in flight`);
  });
});

describe('trackIo', () => {
  it('counts each piece of io in flight until it settles, and passes its result or error through', async () => {
    const s = idleSetup();
    const a = deferred<string>();
    const b = deferred<string>();
    expect(s.life.io).toBe(0);
    const ra = watch(s.life.trackIo(a.promise));
    const rb = watch(s.life.trackIo(b.promise));
    expect(s.life.io).toBe(2);
    a.resolve('done');
    await nextTurn();
    expect(s.life.io).toBe(1);
    expect(ra).toEqual({ status: 'resolved', value: 'done' });
    const boom = new Error('io failed');
    b.reject(boom);
    await nextTurn();
    expect(s.life.io).toBe(0);
    expect(rb.status).toBe('rejected');
    expect(rb.error).toBe(boom);
  });
});

describe('onShutdown and shutdown', () => {
  it('awaits a hook that returns a promise before the node says it has stopped; a rejection is logged', async () => {
    const k = kernel();
    let release!: () => void;
    const flushed = new Promise<void>((resolve) => (release = resolve));
    const order: string[] = [];
    const boom = new Error('goodbye lost');
    k.life.onShutdown(() => flushed.then(() => order.push('hook settled')));
    k.life.onShutdown(() => Promise.reject(boom));
    const stopping = k.life.shutdown().then(() => order.push('stopped'));
    await Promise.resolve();
    expect(k.life.state).toBe('stopping');
    release();
    await stopping;
    expect(order).toEqual(['hook settled', 'stopped']);
    expect(k.log.entries).toEqual([{ level: 'error', message: `a shutdown hook of node ${NODE} failed`, detail: boom }]);
  });

  it('runs the shutdown hooks last-registered first, after the processes are gone; a removed one does not run; one that throws is logged', async () => {
    const k = kernel();
    k.spawn(F_TOP);
    const ran: string[] = [];
    const boom = new Error('hook failed');
    k.life.onShutdown(() => ran.push(`first (processes left: ${k.procs.size})`));
    const remove = k.life.onShutdown(() => ran.push('removed'));
    k.life.onShutdown(() => {
      ran.push('throws');
      throw boom;
    });
    k.life.onShutdown(() => ran.push('last'));
    remove();
    await k.life.shutdown();
    expect(ran).toEqual(['last', 'throws', 'first (processes left: 0)']);
    expect(k.log.entries).toEqual([{ level: 'error', message: `a shutdown hook of node ${NODE} threw`, detail: boom }]);
  });

  it("awaits a hook's promise before it runs the hooks registered before it (a send across nodes hands its dead letter to the queue before the queue closes)", async () => {
    const k = kernel();
    const order: string[] = [];
    let release!: () => void;
    const withdrawn = new Promise<void>((resolve) => (release = resolve));
    k.life.onShutdown(() => void order.push('queue closes'));
    k.life.onShutdown(() => order.push('sync hook'));
    k.life.onShutdown(() => {
      order.push('withdrawal asked');
      return withdrawn.then(() => order.push('dead letter handed over'));
    });
    const stopped = k.life.shutdown().then(() => order.push('stopped'));
    // the hooks run once the processes are gone: wait until the withdrawal was asked
    while (order.length === 0) await Promise.resolve();
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(order).toEqual(['withdrawal asked']);
    release();
    await stopped;
    expect(order).toEqual(['withdrawal asked', 'dead letter handed over', 'sync hook', 'queue closes', 'stopped']);
  });

  it("a hook that never settles spends the shutdown's time: the hooks registered before it still run, not waited for, and the node stops", async () => {
    const k = kernel();
    const order: string[] = [];
    k.life.onShutdown(() => {
      order.push('first registered');
      return new Promise<void>(() => undefined); // never settles: not waited for, the time is spent
    });
    k.life.onShutdown(() => {
      order.push('stuck');
      return new Promise<void>(() => undefined);
    });
    k.life.onShutdown(() => order.push('last registered'));
    await k.life.shutdown({ timeoutMs: 20 });
    expect(order).toEqual(['last registered', 'stuck', 'first registered']);
    expect(k.life.state).toBe('stopped');
    expect(k.released).toBe(1);
  });

  it("a hook's promise whose then cannot be read is logged as a throw, and the node still stops", async () => {
    const k = kernel({ events: ['keel.node.shutdown'] });
    const ran: string[] = [];
    const boom = new Error('then getter');
    const hostile = Promise.resolve();
    Object.defineProperty(hostile, 'then', {
      get() {
        throw boom;
      },
    });
    k.life.onShutdown(() => ran.push('first registered'));
    k.life.onShutdown(() => hostile);
    await k.life.shutdown({ timeoutMs: 1000 });
    expect(ran).toEqual(['first registered']);
    expect(k.life.state).toBe('stopped');
    expect(k.released).toBe(1);
    expect(k.events).toHaveLength(1);
    expect(k.log.entries).toEqual([{ level: 'error', message: `a shutdown hook of node ${NODE} threw`, detail: boom }]);
  });

  it('a hook removed while the hooks run (by the one awaited before it) does not run', async () => {
    const k = kernel();
    const ran: string[] = [];
    const removeFirst = k.life.onShutdown(() => ran.push('removed'));
    k.life.onShutdown(() => {
      ran.push('awaited');
      return Promise.resolve().then(() => removeFirst());
    });
    await k.life.shutdown({ timeoutMs: 1000 });
    expect(ran).toEqual(['awaited']);
  });

  it('a hook registered while the hooks run (by the one awaited before it) runs, next, before the node has stopped', async () => {
    const k = kernel();
    const ran: string[] = [];
    k.life.onShutdown(() => ran.push('first registered'));
    k.life.onShutdown(() => {
      ran.push('awaited');
      return Promise.resolve().then(() => k.life.onShutdown(() => ran.push(`registered meanwhile (${k.life.state})`)));
    });
    await k.life.shutdown({ timeoutMs: 1000 });
    expect(ran).toEqual(['awaited', 'registered meanwhile (stopping)', 'first registered']);
  });

  it('a hook that calls shutdown() again gets the same promise (one stop, one release, one event); awaiting it spends the time once, and the hooks before it still run', async () => {
    // no process: the hooks run in the very turn shutdown() was called in
    const k = kernel({ events: ['keel.node.shutdown'] });
    const ran: string[] = [];
    let again: Promise<void> | undefined;
    k.life.onShutdown(() => ran.push(`first registered (${k.life.state})`));
    k.life.onShutdown(async () => {
      ran.push('awaits the shutdown');
      again = k.life.shutdown();
      await again;
      ran.push(`saw it ${k.life.state}`);
    });
    const started = performance.now();
    const first = k.life.shutdown({ timeoutMs: 50 });
    expect(again).toBe(first);
    await first;
    expect(performance.now() - started).toBeGreaterThanOrEqual(49);
    expect(k.life.state).toBe('stopped');
    expect(k.released).toBe(1);
    expect(k.events).toHaveLength(1);
    expect(k.events[0]!.measurements.durationMs).toBeGreaterThanOrEqual(49);
    await Promise.resolve();
    expect(ran).toEqual(['awaits the shutdown', 'first registered (stopping)', 'saw it stopped']);
  });

  it('is idempotent: the same promise, one release, one event', async () => {
    const k = kernel({ events: ['keel.node.shutdown'] });
    k.spawn(F_TOP); // something to wait for: the shutdown is under way when it returns
    expect(k.life.state).toBe('running');
    const first = k.life.shutdown();
    const second = k.life.shutdown({ timeoutMs: 10 });
    expect(second).toBe(first);
    expect(k.life.state).toBe('stopping');
    await first;
    expect(k.life.shutdown()).toBe(first);
    expect(k.life.state).toBe('stopped');
    expect(k.released).toBe(1);
    expect(k.events).toHaveLength(1);
    expect(k.events[0]!.event).toBe('keel.node.shutdown');
    expect(k.events[0]!.measurements.killed).toBe(0);
    expect(k.events[0]!.measurements.durationMs).toBeGreaterThanOrEqual(0);
    expect(k.events[0]!.metadata).toEqual({ node: NODE });
  });

  it.each<[string, unknown]>([
    ['NaN', NaN],
    ['a negative delay', -5],
    ['Infinity', Infinity],
  ])('refuses a timeoutMs of %s at once, and does not start stopping', (_label, timeoutMs) => {
    const k = kernel();
    const e = thrown(() => k.life.shutdown({ timeoutMs: timeoutMs as number }));
    expect(isKeelError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((e as { argument: string }).argument).toBe('timeoutMs');
    expect(k.life.state).toBe('running');
    expect(k.released).toBe(0);
  });

  it('tells the top-level processes shutdown one by one, the last spawned first, then the rest together, the last spawned first', async () => {
    const k = kernel();
    const order: [number, ExitReason][] = [];
    const track = (p: Proc) => k.deaths.onExit(p, (r) => order.push([p.self.id, r]));
    const [t1, c1, t2, c2, t3] = [k.spawn(F_TOP), k.spawn(), k.spawn(F_TOP), k.spawn(), k.spawn(F_TOP)];
    for (const p of [t1, c1, t2, c2, t3]) track(p!);
    await k.life.shutdown();
    expect(order).toEqual([
      [t3!.self.id, 'shutdown'],
      [t2!.self.id, 'shutdown'],
      [t1!.self.id, 'shutdown'],
      [c2!.self.id, 'shutdown'],
      [c1!.self.id, 'shutdown'],
    ]);
    expect(k.procs.size).toBe(0);
    expect(k.life.spawnClosed).toBe(true);
  });

  it('kills what did not stop within timeoutMs (a process trapping exits that ignores its Exit), and counts it', async () => {
    const k = kernel({ events: ['keel.node.shutdown'] });
    const order: [number, ExitReason][] = [];
    const track = (p: Proc) => k.deaths.onExit(p, (r) => order.push([p.self.id, r]));
    const [t1, stubborn, t3] = [k.spawn(F_TOP), k.spawn(F_TOP | F_TRAP), k.spawn(F_TOP)];
    for (const p of [t1, stubborn, t3]) track(p!);
    expect(k.life.spawnClosed).toBe(false);
    await k.life.shutdown({ timeoutMs: 5 });
    expect(order).toEqual([
      [t3!.self.id, 'shutdown'],
      [t1!.self.id, 'shutdown'], // told with the rest once the time was up
      [stubborn!.self.id, 'killed'],
    ]);
    expect(queued(stubborn!)).toEqual([]); // its mailbox went with it
    expect(stubborn!.flags & F_DEAD).toBe(F_DEAD);
    expect(k.events[0]!.measurements.killed).toBe(1);
  });

  it('once the time is up, tells the top-level processes not yet told together with the rest, the last spawned first', async () => {
    const k = kernel();
    const order: number[] = [];
    const t1 = k.spawn(F_TOP);
    const child = k.spawn();
    k.deaths.addLink(t1, child);
    const stubborn = k.spawn(F_TOP | F_TRAP);
    const other = k.spawn();
    for (const p of [t1, child, stubborn, other]) k.deaths.onExit(p, () => order.push(p.self.id));
    await k.life.shutdown({ timeoutMs: 1 });
    // not t1 then its linked child (t1 told on its own), but one flush in reverse spawn order
    expect(order).toEqual([other.self.id, child.self.id, t1.self.id, stubborn.self.id]);
  });

  it('waits 5,000 ms by default for a process that does not stop, then kills it (the guard is a real-time timer)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const k = kernel({ events: ['keel.node.shutdown'] });
      const stubborn = k.spawn(F_TOP | F_TRAP);
      const done = watch(k.life.shutdown());
      await vi.advanceTimersByTimeAsync(4999);
      expect([stubborn.flags & F_DEAD, done.status]).toEqual([0, 'pending']);
      await vi.advanceTimersByTimeAsync(1);
      expect([stubborn.flags & F_DEAD, done.status]).toEqual([F_DEAD, 'resolved']);
      expect(k.events[0]!.measurements.killed).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it.each([2 ** 31, 30 * 24 * 3600 * 1000])('waits a timeoutMs beyond the host timer range (%s ms) in full, not 1 ms (a host timer overflows to 1 ms)', async (timeoutMs) => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const k = kernel({ events: ['keel.node.shutdown'] });
      const stubborn = k.spawn(F_TOP | F_TRAP);
      const done = watch(k.life.shutdown({ timeoutMs }));
      await vi.advanceTimersByTimeAsync(2 ** 31 - 1);
      expect([stubborn.flags & F_DEAD, done.status]).toEqual([0, 'pending']);
      await vi.advanceTimersByTimeAsync(timeoutMs - (2 ** 31 - 1));
      expect([stubborn.flags & F_DEAD, done.status]).toEqual([F_DEAD, 'resolved']);
      expect(k.events[0]!.measurements.killed).toBe(1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('resolves the idle waiters still waiting when it ends', async () => {
    const k = kernel();
    const p = k.spawn(F_TOP | F_TRAP | F_BUSY);
    k.sched.busy = 1;
    const idle = watch(k.life.idle());
    const settle = watch(k.life.settle({ io: true }));
    void k.life.trackIo(new Promise(() => {}));
    await nextTurn();
    expect([idle.status, settle.status]).toEqual(['pending', 'pending']);
    await k.life.shutdown({ timeoutMs: 1 });
    await Promise.resolve();
    expect([idle.status, settle.status]).toEqual(['resolved', 'resolved']);
    expect(p.flags & F_DEAD).toBe(F_DEAD);
    expect(k.sched.busy).toBe(0);
  });

  it('gives a trapping top-level process its shutdown as an Exit from the node', async () => {
    const k = kernel();
    const seen: unknown[] = [];
    const p = k.spawn(F_TOP | F_TRAP);
    // what the process had in its mailbox when the message woke it (it never runs: the time runs out)
    k.mail.waker = {
      wake: (q) => {
        if (q === p) seen.push(...queued(p));
      },
    };
    await k.life.shutdown({ timeoutMs: 1 });
    expect(seen).toEqual([new ExitMessage('node', 'shutdown')]);
  });
});

describe('validateDelay', () => {
  it.each<unknown>([NaN, -1, -0.001, Infinity, -Infinity, '5', null, undefined, {}, 5n])('refuses %s with ERR_INVALID_ARGUMENT', (ms) => {
    const e = thrown(() => validateDelay(ms));
    expect(isKeelError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((e as { argument: string }).argument).toBe('ms');
    expect((e as Error).message).toContain('a finite number of milliseconds >= 0');
  });

  it('names the argument it was given', () => {
    expect((thrown(() => validateDelay(-1, 'timeoutMs')) as { argument: string }).argument).toBe('timeoutMs');
  });

  it.each([0, -0, 0.5, 1, 2 ** 31, Number.MAX_VALUE])('accepts %s', (ms) => {
    expect(() => validateDelay(ms)).not.toThrow();
  });
});
