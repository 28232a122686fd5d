// The scheduler (src/runtime/internal/Scheduler.ts), driven directly (test/runtime/Scheduler.test.ts
// tests it through a node): real mailboxes and process records, a fake host that records crashes
// (and marks the process dead, as a death would) and idle checks, and an injected `now` that only
// the handlers move, so that every slice is exact.
import { describe, expect, it } from 'vitest';
import { HandlerReturnedError, isKeelError, ThrownValueError } from '../../../src/errors.js';
import type { EnvelopeListener } from '../../../src/runtime/internal/Envelope.js';
import { Mailboxes } from '../../../src/runtime/internal/Mailbox.js';
import { F_BUSY, F_DEAD, F_FRESH, F_INIT, F_RUNNING, F_SCHEDULED, F_SLOW, type Proc } from '../../../src/runtime/internal/Proc.js';
import { Scheduler, type SchedulerHost, type SchedulerSettings } from '../../../src/runtime/internal/Scheduler.js';
import type { ExitReason } from '../../../src/runtime/messages.js';
import type { Handler, Init } from '../../../src/runtime/types.js';
import { deferred } from '../../support.js';
import { makeProc, nextTurn, recordingLog, telemetry } from './fakes.js';

function setup(settings: Partial<SchedulerSettings> = {}, events?: readonly string[]) {
  const log = recordingLog();
  const { bus, events: seen } = telemetry(events);
  let t = 0;
  let reads = 0;
  const time = {
    now: () => {
      reads++;
      return t;
    },
    spend(ms: number) {
      t += ms;
    },
    get reads() {
      return reads;
    },
  };
  let clockReads = 0;
  let timerReads = 0;
  const crashes: [Proc, ExitReason][] = [];
  const idle: { checks: number; hook: (() => void) | undefined } = { checks: 0, hook: undefined };
  const host: SchedulerHost = {
    name: 'unit',
    telemetry: bus,
    clock: {
      now: () => {
        clockReads++;
        return 1_000_000 + t;
      },
    },
    timerNow: () => {
      timerReads++;
      return 5_000 + t;
    },
    log: log.log,
    crash: (p, reason) => {
      crashes.push([p, reason]);
      // what a death does to the scheduler's view of the process
      p.flags = (p.flags | F_DEAD) & ~F_SCHEDULED;
      sched.clearBusy(p);
    },
    checkIdle: () => {
      idle.checks++;
      idle.hook?.();
    },
  };
  const mail = new Mailboxes({ telemetry: bus, stopping: false, log: log.log }, [Infinity, -1]);
  const sched = new Scheduler(host, mail, { budget: 64, sliceMs: 5, longScheduleMs: 50, deterministic: false, now: time.now, ...settings });
  mail.waker = sched;
  // as if someone waited for idle: every end of a run asks for the idle check, which idle.checks counts
  sched.idle = { waiting: 1, checkIdle: host.checkIdle };
  let ids = 0;
  return {
    sched,
    mail,
    time,
    crashes,
    idle,
    log: log.entries,
    events: seen,
    clockReads: () => clockReads,
    timerReads: () => timerReads,
    /** A process past its init (no F_INIT), with `handler`; not on the run queue until a message arrives. */
    ready(handler: Handler<any>, flags = 0): Proc {
      const p = makeProc(++ids, flags);
      p.handler = handler;
      return p;
    },
    /** A new process (F_INIT), woken as a spawn wakes it. */
    spawn(init: Init<any>, flags = 0): Proc {
      const p = makeProc(++ids, F_INIT | flags, init);
      sched.wake(p);
      return p;
    },
    send(p: Proc, ...messages: unknown[]): void {
      for (const m of messages) mail.enqueue(p, m, undefined);
    },
  };
}

/**
 * The messages handled in each run of the scheduler between two turns of the event loop, until
 * `total` were handled. Called right after the sends, before the first run (a microtask) starts.
 */
async function slices(handled: () => number, total: number): Promise<number[]> {
  const out: number[] = [];
  let last = 0;
  while (handled() < total) {
    await nextTurn();
    const n = handled();
    out.push(n - last);
    last = n;
    if (out.length > 10_000) throw new Error(`the scheduler stalled at ${n} of ${total}`);
  }
  return out;
}

/** Waits until the scheduler has nothing runnable (turns of the event loop, while it is active). */
async function drained(sched: Scheduler): Promise<void> {
  do await nextTurn();
  while (sched.active);
}


describe('the time slice (sliceMs 5, budget 64, an injected now)', () => {
  it('a known-fast process with 1 ms handlers: one turn of 64 (the clock is read after it), then 5 per slice', async () => {
    const s = setup();
    let handled = 0;
    const p = s.ready(() => {
      s.time.spend(1);
      handled++;
    });
    s.send(p, ...Array.from({ length: 100 }, (_, i) => i));
    const runs = slices(() => handled, 100);
    expect(await runs).toEqual([64, 5, 5, 5, 5, 5, 5, 5, 1]);
    // the interval that took 64 ms marked the process slow: it is measured message by message since
    expect(p.flags & F_SLOW).toBe(F_SLOW);
  });

  it('a new (fresh) process with 1 ms handlers: its first message is measured alone, then 5 per slice', async () => {
    const s = setup();
    let handled = 0;
    const p = s.ready(() => {
      s.time.spend(1);
      handled++;
    }, F_FRESH);
    s.send(p, ...Array.from({ length: 23 }, (_, i) => i));
    expect(await slices(() => handled, 23)).toEqual([5, 5, 5, 5, 3]);
    expect(p.flags & F_FRESH).toBe(0);
    // one reading at each slice's start, one after each measured message: 4 x (1 + 5) + (1 + 3)
    expect(s.time.reads).toBe(28);
  });

  it('handlers of 1/256 ms: 20 turns of 64 fill the 5 ms slice exactly, 1,280 messages per slice', async () => {
    const s = setup();
    let handled = 0;
    const p = s.ready(() => {
      s.time.spend(1 / 256);
      handled++;
    });
    s.send(p, ...Array.from({ length: 3000 }, (_, i) => i));
    expect(await slices(() => handled, 3000)).toEqual([1280, 1280, 440]);
    // fast: never marked slow
    expect(p.flags & F_SLOW).toBe(0);
    // fast handlers are measured every 64 messages (once per turn here): the slice's start, then
    // after each of its turns that ends an interval: 2 x (1 + 20) + (1 + 6), the last turn (56
    // messages, fewer than the 64 of its interval) ending none
    expect(s.time.reads).toBe(49);
  });

  it('a handler taking exactly an eighth of the slice (0.625 ms) marks its process slow: 8 measured messages per slice', async () => {
    const s = setup();
    let handled = 0;
    const p = s.ready(() => {
      s.time.spend(0.625);
      handled++;
    }, F_FRESH);
    s.send(p, ...Array.from({ length: 20 }, (_, i) => i));
    expect(await slices(() => handled, 20)).toEqual([8, 8, 4]);
  });

  it('reads the clock at intervals sized from the pace, each half of what would fill the slice: 10 readings per slice', async () => {
    const s = setup();
    let handled = 0;
    // 160 processes with one message each, 1/16 ms per handler: the interval after each reading is
    // half the messages that would fill what is left (39, 20, 10, 5, 2, 1, 1, 1), so 80 per slice
    const ps = Array.from({ length: 160 }, () =>
      s.ready(() => {
        s.time.spend(1 / 16);
        handled++;
      }),
    );
    for (const p of ps) s.send(p, 'm');
    expect(await slices(() => handled, 160)).toEqual([80, 80]);
    expect(s.time.reads).toBe(20);
  });

  it('a run started before the event loop’s turn, in a slice already spent, yields at once', async () => {
    const s = setup();
    const seen: string[] = [];
    const p = s.ready(() => {
      s.time.spend(10);
      seen.push('p');
    });
    const q = s.ready(() => void seen.push('q'));
    s.send(p, 'm');
    await Promise.resolve();
    expect(seen).toEqual(['p']);
    s.send(q, 'm'); // a send from outside, within the same turn of the event loop
    for (let i = 0; i < 10; i++) await Promise.resolve();
    expect(seen).toEqual(['p']);
    await nextTurn();
    expect(seen).toEqual(['p', 'q']);
  });

  it('handlers that take no time: everything in one run, however much', async () => {
    const s = setup();
    let handled = 0;
    const ps = Array.from({ length: 10 }, () => s.ready(() => void handled++));
    for (const p of ps) s.send(p, ...Array.from({ length: 1000 }, (_, i) => i));
    expect(await slices(() => handled, 10_000)).toEqual([10_000]);
  });

  it('a 1 ms process among fast ones is measured on its own, and the slice still holds 5 ms of work', async () => {
    const s = setup();
    let slow = 0;
    let fast = 0;
    const hare = s.ready(() => void fast++);
    const tortoise = s.ready(() => {
      s.time.spend(1);
      slow++;
    }, F_FRESH);
    s.send(hare, ...Array.from({ length: 1000 }, (_, i) => i));
    s.send(tortoise, ...Array.from({ length: 12 }, (_, i) => i));
    expect(await slices(() => slow, 12)).toEqual([5, 5, 2]);
    expect(fast).toBe(1000);
  });

  it('under a virtual clock (deterministic): slices of 1,024 messages, and the real-time source is never read', async () => {
    const s = setup({ deterministic: true });
    let handled = 0;
    // no F_FRESH: a node under a virtual clock never sets it (nothing is measured there)
    const p = s.ready(() => {
      s.time.spend(1);
      handled++;
    });
    s.send(p, ...Array.from({ length: 3000 }, (_, i) => i));
    const before = s.time.reads;
    expect(await slices(() => handled, 3000)).toEqual([1024, 1024, 952]);
    expect(s.time.reads).toBe(before);
    expect(before).toBe(0);
  });

  it('under a virtual clock: a slice is exactly 1,024 messages, counted across processes', async () => {
    const s = setup({ deterministic: true });
    let handled = 0;
    const ps = Array.from({ length: 3000 }, () => s.ready(() => void handled++));
    for (const p of ps) s.send(p, 'm');
    expect(await slices(() => handled, 3000)).toEqual([1024, 1024, 952]);
    expect(s.time.reads).toBe(0);
  });
});

describe('the end of a run of the loop', () => {
  it('asks for the idle check only while someone waits for idle', async () => {
    const s = setup();
    let asked = 0;
    const idle = { waiting: 0, checkIdle: () => void asked++ };
    s.sched.idle = idle;
    let handled = 0;
    const p = s.ready(() => void handled++);
    s.send(p, 'a');
    await drained(s.sched);
    expect([handled, asked]).toEqual([1, 0]);
    idle.waiting = 1;
    s.send(p, 'b');
    await drained(s.sched);
    expect([handled, asked]).toEqual([2, 1]);
  });
});

describe('turns', () => {
  function floods(budget: number, flags: number): { log: string[]; start(): Promise<void> } {
    const s = setup({ budget });
    const log: string[] = [];
    const a = s.ready(() => void log.push('a'), flags);
    const b = s.ready(() => void log.push('b'), flags);
    return {
      log,
      start: async () => {
        s.send(a, ...Array.from({ length: 10 }, (_, i) => i));
        s.send(b, ...Array.from({ length: 10 }, (_, i) => i));
        await nextTurn();
      },
    };
  }

  it.each([
    [1, 'ab'.repeat(10)],
    [3, 'aaabbbaaabbbaaabbbab'],
    [64, 'a'.repeat(10) + 'b'.repeat(10)],
  ])('budget %i: a process handles at most that many messages per turn', async (budget, expected) => {
    const f = floods(budget, 0);
    await f.start();
    expect(f.log.join('')).toBe(expected);
  });

  it('a new process’s first message is a turn of its own (it is measured), then the budget applies', async () => {
    const f = floods(3, F_FRESH);
    await f.start();
    expect(f.log.join('')).toBe('ab' + 'aaabbbaaabbbaaabbb');
  });

  it('skips a process on the run queue that died before its turn: its handler never runs', async () => {
    const s = setup();
    let ran = 0;
    const p = s.ready(() => void ran++);
    s.send(p, 'm');
    expect(s.sched.queued).toBe(1);
    p.flags |= F_DEAD;
    const q = s.ready(() => void ran++);
    s.send(q, 'n');
    await nextTurn();
    expect(ran).toBe(1);
    expect(s.sched.queued).toBe(0);
    expect(s.sched.active).toBe(false);
    expect(s.crashes).toEqual([]);
  });

  it('a handler that throws crashes its process through host.crash exactly once, with the error; its other messages stay unhandled', async () => {
    const s = setup();
    const boom = new Error('boom');
    const seen: unknown[] = [];
    const p = s.ready((m) => {
      seen.push(m);
      if (m === 2) throw boom;
    });
    s.send(p, 1, 2, 3, 4);
    await nextTurn();
    expect(seen).toEqual([1, 2]);
    expect(s.crashes).toHaveLength(1);
    expect(s.crashes[0]![0]).toBe(p);
    expect(s.crashes[0]![1]).toBe(boom);
    expect(p.flags & F_RUNNING).toBe(0);
    expect(s.log).toEqual([]);
  });

  it('a thrown value that is not an Error crashes with a ThrownValueError that keeps it', async () => {
    const s = setup();
    const p = s.ready(() => {
      throw 'a string';
    });
    s.send(p, 'm');
    await nextTurn();
    expect(s.crashes).toHaveLength(1);
    const reason = s.crashes[0]![1];
    expect(reason).toBeInstanceOf(ThrownValueError);
    expect((reason as ThrownValueError).value).toBe('a string');
  });

  it('a handler returning a thenable whose then getter throws crashes with what it threw, once', async () => {
    const s = setup();
    const boom = new Error('then getter');
    const p = s.ready(() =>
      Object.defineProperty({}, 'then', {
        get: () => {
          throw boom;
        },
      }) as never,
    );
    s.send(p, 'm', 'n');
    await nextTurn();
    expect(s.crashes.map(([q, r]) => [q, r])).toEqual([[p, boom]]);
    expect(s.sched.busy).toBe(0);
  });

  it('a handler returning a value that is not a thenable (a number, an object with a non-function then) is not a failure', async () => {
    const s = setup();
    const returns: unknown[] = [42, { then: 5 }, 'x', null];
    let i = 0;
    const p = s.ready(() => returns[i++] as never);
    s.send(p, 1, 2, 3, 4);
    await nextTurn();
    expect(i).toBe(4);
    expect(s.crashes).toEqual([]);
    expect(p.flags & (F_BUSY | F_DEAD)).toBe(0);
  });

  it('settles an envelope handled when its handler returns, crashed with the error when it throws', async () => {
    const s = setup();
    const calls: unknown[][] = [];
    const l: EnvelopeListener = { handled: () => calls.push(['handled']), failed: (r, e) => calls.push(['failed', r, e]) };
    const boom = new Error('boom');
    const ids: (string | undefined)[] = [];
    const p = s.ready((m) => {
      ids.push(p.messageId);
      if (m === 'bad') throw boom;
    });
    s.mail.deliverEnvelope(undefined, p, 'good', 'id-1', l);
    s.mail.deliverEnvelope(undefined, p, 'bad', 'id-2', l);
    await nextTurn();
    expect(ids).toEqual(['id-1', 'id-2']);
    expect(calls).toEqual([['handled'], ['failed', 'crashed', boom]]);
    expect(s.mail.envelopes).toBe(0);
  });
});

describe('init', () => {
  it('an init returning a handler: the process handles what was queued in the same turn', async () => {
    const s = setup();
    const seen: unknown[] = [];
    const p = s.spawn((ctx) => {
      seen.push(ctx === p ? 'init with its own context' : 'init with another context');
      return (m) => void seen.push(m);
    });
    s.send(p, 1, 2);
    await nextTurn();
    expect(seen).toEqual(['init with its own context', 1, 2]);
    expect(p.flags & (F_INIT | F_RUNNING)).toBe(0);
    expect(s.crashes).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['a number', 42],
    ['undefined', undefined],
    ['null', null],
    ['an object', { handler: () => {} }],
    ['a string', 'handler'],
  ])('an init returning %s crashes through host.crash with HandlerReturnedError, once', async (_label, value) => {
    const s = setup();
    const p = s.spawn(() => value as never);
    s.send(p, 'm');
    await nextTurn();
    expect(s.crashes).toHaveLength(1);
    const [who, reason] = s.crashes[0]!;
    expect(who).toBe(p);
    expect(reason).toBeInstanceOf(HandlerReturnedError);
    expect(isKeelError(reason, 'ERR_HANDLER_RETURNED')).toBe(true);
    expect((reason as Error).message).toContain(`init of ${String(p.self)} must return a message handler function`);
    expect(p.handler).toBeNull(); // the init is not kept, and no handler was ever set
  });

  it('an init returning a handler function that also has a then method: the function is the handler, not awaited', async () => {
    const s = setup();
    const seen: unknown[] = [];
    let thenRead = 0;
    const handler = Object.defineProperty((m: unknown) => void seen.push(m), 'then', {
      get: () => {
        thenRead++;
        throw new Error('then read');
      },
    });
    const p = s.spawn(() => handler);
    s.send(p, 'm');
    await nextTurn();
    expect(seen).toEqual(['m']);
    expect(thenRead).toBe(0);
    expect(s.crashes).toEqual([]);
    expect(s.sched.busy).toBe(0);
    expect(p.handler).toBe(handler);
  });

  it('a new process stays fresh through an async init (an init says little of its pace), until a message of its own is measured', async () => {
    const s = setup();
    const gate = deferred<Handler<any>>();
    const p = s.spawn(() => gate.promise, F_FRESH);
    await drained(s.sched);
    expect(p.flags & (F_FRESH | F_BUSY)).toBe(F_FRESH | F_BUSY);
    gate.resolve(() => {});
    await drained(s.sched);
    expect(p.flags & F_FRESH).toBe(F_FRESH);
    s.send(p, 'm');
    await drained(s.sched);
    expect(p.flags & F_FRESH).toBe(0);
    expect(p.handled).toBe(1);
  });

  it('an init that throws crashes with the error, once', async () => {
    const s = setup();
    const boom = new Error('init failed');
    const p = s.spawn(() => {
      throw boom;
    });
    await nextTurn();
    expect(s.crashes).toEqual([[p, boom]]);
    expect(p.flags & F_RUNNING).toBe(0);
  });

  it('an async init makes the scheduler busy 1 until it resolves, then 0, and the queued messages run', async () => {
    const s = setup();
    const gate = deferred<Handler<any>>();
    const seen: unknown[] = [];
    const p = s.spawn(() => gate.promise);
    s.send(p, 1, 2);
    await nextTurn();
    expect(s.sched.busy).toBe(1);
    expect(p.flags & F_BUSY).toBe(F_BUSY);
    expect(seen).toEqual([]);
    const checks = s.idle.checks;
    gate.resolve((m) => void seen.push(m));
    await nextTurn();
    expect(s.sched.busy).toBe(0);
    expect(p.flags & (F_BUSY | F_INIT)).toBe(0);
    expect(seen).toEqual([1, 2]);
    expect(s.idle.checks).toBeGreaterThan(checks);
  });

  it.each<[string, (d: ReturnType<typeof deferred<Handler<any>>>) => void, (reason: unknown, boom: Error) => void]>([
    ['resolves to something else than a handler', (d) => d.resolve(7 as never), (r) => expect(r).toBeInstanceOf(HandlerReturnedError)],
    ['rejects', (d) => d.reject(new Error('async init failed')), (r) => expect((r as Error).message).toBe('async init failed')],
  ])('an async init that %s crashes once, and is busy no more', async (_label, settle, check) => {
    const s = setup();
    const gate = deferred<Handler<any>>();
    const p = s.spawn(() => gate.promise);
    await nextTurn();
    expect(s.sched.busy).toBe(1);
    settle(gate);
    await nextTurn();
    expect(s.sched.busy).toBe(0);
    expect(s.crashes).toHaveLength(1);
    expect(s.crashes[0]![0]).toBe(p);
    check(s.crashes[0]![1], new Error());
  });
});

describe('async handlers', () => {
  // Two defects this file found: the scheduler followed a returned thenable's callbacks with no
  // once-guard, where a promise's resolution takes the first call only, so a thenable that called
  // back more than once (a hostile or buggy one: user code returned it) was counted more than once.
  it('takes only the first callback of a thenable that resolves, then rejects (the process lives)', async () => {
    const s = setup();
    const p = s.ready(() => ({
      then(ok: () => void, fail: (e: unknown) => void) {
        ok();
        fail(new Error('a late rejection'));
      },
    }) as never);
    s.send(p, 'm');
    await drained(s.sched);
    expect(s.crashes).toEqual([]);
  });

  it('takes the first callback of a thenable whose then calls back, then throws (the message is handled)', async () => {
    const s = setup();
    const p = s.ready(() => ({
      then(ok: () => void) {
        ok();
        throw new Error('after the callback');
      },
    }) as never);
    s.send(p, 'm');
    await drained(s.sched);
    expect([s.crashes, s.sched.busy]).toEqual([[], 0]);
  });

  it('does not let a stale second resolution end the busy state of the next message', async () => {
    const s = setup();
    let resolveA!: () => void;
    const started: string[] = [];
    const p = s.ready((m) => {
      started.push(m as string);
      if (m === 'a') return { then: (ok: () => void) => void (resolveA = ok) } as never;
      if (m === 'b') return new Promise<void>(() => {}); // pending for good
    });
    s.send(p, 'a', 'b', 'c');
    await drained(s.sched);
    resolveA();
    await drained(s.sched);
    expect([started, s.sched.busy]).toEqual([['a', 'b'], 1]);
    resolveA(); // the thenable of 'a' calls back again
    await drained(s.sched);
    expect([started, s.sched.busy]).toEqual([['a', 'b'], 1]);
  });

  it('make the scheduler busy 1 while pending, then 0; the next message waits for it', async () => {
    const s = setup();
    const gate = deferred();
    const seen: unknown[] = [];
    const p = s.ready((m) => {
      seen.push(m);
      if (m === 'slow') return gate.promise;
    });
    s.send(p, 'slow', 'next');
    await nextTurn();
    expect(seen).toEqual(['slow']);
    expect(s.sched.busy).toBe(1);
    expect(p.flags & F_BUSY).toBe(F_BUSY);
    expect(s.sched.active).toBe(false); // busy is not runnable
    s.send(p, 'later'); // a busy process is not woken
    expect(s.sched.queued).toBe(0);
    gate.resolve();
    await nextTurn();
    expect(s.sched.busy).toBe(0);
    expect(p.flags & F_BUSY).toBe(0);
    expect(seen).toEqual(['slow', 'next', 'later']);
  });

  it('a rejection crashes the process once with the error, and it is busy no more', async () => {
    const s = setup();
    const boom = new Error('rejected');
    const p = s.ready(() => Promise.reject(boom));
    s.send(p, 'm', 'n');
    await nextTurn();
    expect(s.crashes).toEqual([[p, boom]]);
    expect(s.sched.busy).toBe(0);
  });

  it('a thenable whose then throws when called counts as a rejection', async () => {
    const s = setup();
    const boom = new Error('then threw');
    const p = s.ready(() => ({
      then() {
        throw boom;
      },
    }) as never);
    s.send(p, 'm');
    await nextTurn();
    expect(s.crashes).toEqual([[p, boom]]);
    expect(s.sched.busy).toBe(0);
  });

  it('settles an envelope handled only when the promise resolves', async () => {
    const s = setup();
    const gate = deferred();
    const calls: string[] = [];
    const p = s.ready(() => gate.promise);
    s.mail.deliverEnvelope(undefined, p, 'job', 'id-1', { handled: () => calls.push('handled'), failed: (r) => calls.push(r) });
    await nextTurn();
    expect(calls).toEqual([]);
    expect(p.messageId).toBe('id-1');
    gate.resolve();
    await nextTurn();
    expect(calls).toEqual(['handled']);
    expect(s.mail.envelopes).toBe(0);
  });

  it('clearBusy counts a busy process out once, however often called', async () => {
    const s = setup();
    const p = s.ready(() => new Promise<void>(() => {}));
    s.send(p, 'm');
    await nextTurn();
    expect(s.sched.busy).toBe(1);
    s.sched.clearBusy(p);
    s.sched.clearBusy(p);
    expect(s.sched.busy).toBe(0);
  });
});

describe('the run queue: active, queued, capacity', () => {
  it('is inactive and empty at first, with 1,024 slots', () => {
    const s = setup();
    expect([s.sched.active, s.sched.queued, s.sched.capacity, s.sched.busy]).toEqual([false, 0, 1024, 0]);
  });

  it('is active from a wake until the run ends, then tells the host it may be idle', async () => {
    const s = setup();
    const p = s.ready(() => {});
    s.send(p, 'm');
    expect(s.sched.active).toBe(true);
    expect(s.sched.queued).toBe(1);
    expect(p.flags & F_SCHEDULED).toBe(F_SCHEDULED);
    await Promise.resolve(); // the run is a microtask
    expect(s.sched.active).toBe(false);
    expect(s.sched.queued).toBe(0);
    expect(p.flags & F_SCHEDULED).toBe(0);
    expect(s.idle.checks).toBe(1);
  });

  it('grows past 1,024 and keeps its size after a burst below 65,536', async () => {
    const s = setup();
    let ran = 0;
    for (let i = 0; i < 2000; i++) s.send(s.ready(() => void ran++), i);
    expect(s.sched.queued).toBe(2000);
    expect(s.sched.capacity).toBe(2048);
    await nextTurn();
    expect(ran).toBe(2000);
    expect(s.sched.capacity).toBe(2048);
  });

  it('keeps 65,536 slots after a burst that needed them (it shrinks above that only)', async () => {
    const s = setup();
    let ran = 0;
    for (let i = 0; i < 40_000; i++) s.send(s.ready(() => void ran++), i);
    expect(s.sched.capacity).toBe(65_536);
    await nextTurn();
    expect(ran).toBe(40_000);
    expect(s.sched.capacity).toBe(65_536);
  });

  it('shrinks back to 1,024 once a burst past 65,536 has drained', async () => {
    const s = setup();
    let ran = 0;
    for (let i = 0; i < 70_000; i++) s.send(s.ready(() => void ran++), i);
    expect(s.sched.capacity).toBe(131_072);
    await nextTurn();
    expect(ran).toBe(70_000);
    expect(s.sched.capacity).toBe(1024);
    expect(s.sched.queued).toBe(0);
  });

  it('keeps the FIFO order across the run queue’s wrap-around and growth', async () => {
    const s = setup({ budget: 1 });
    const order: number[] = [];
    // 1,000 processes with two messages each: the second round re-queues them behind the first
    const ps = Array.from({ length: 1500 }, (_, i) => s.ready(() => void order.push(i)));
    for (const p of ps) s.send(p, 'a', 'b');
    await nextTurn();
    const ids = Array.from({ length: 1500 }, (_, i) => i);
    expect(order).toEqual([...ids, ...ids]);
  });
});

describe('long_schedule reports (while someone listens)', () => {
  it('reports a turn that took longScheduleMs or more, with its duration and messages', async () => {
    const s = setup({}, ['keel.process.long_schedule']);
    const p = s.ready((ms) => s.time.spend(ms as number));
    s.send(p, 60);
    await drained(s.sched);
    const q = s.ready((ms) => s.time.spend(ms as number));
    s.send(q, 10, 10, 10, 10, 10);
    await drained(s.sched);
    expect(s.events).toStrictEqual([
      { event: 'keel.process.long_schedule', measurements: { durationMs: 60, messages: 1 }, metadata: { pid: p.self } },
      { event: 'keel.process.long_schedule', measurements: { durationMs: 50, messages: 5 }, metadata: { pid: q.self } },
    ]);
  });

  it('does not report a turn under the threshold', async () => {
    const s = setup({ longScheduleMs: 10 }, ['keel.process.long_schedule']);
    const p = s.ready((ms) => s.time.spend(ms as number));
    s.send(p, 9.99);
    await nextTurn();
    expect(s.events).toEqual([]);
  });
});

describe('coarseNow', () => {
  it('reads the clock once per slice inside a run (and until the event loop’s turn ends the slice), at every call outside', async () => {
    const s = setup();
    const seen: number[] = [];
    const p = s.ready(() => {
      seen.push(s.sched.coarseNow(), s.sched.coarseNow(), s.sched.coarseNow());
      s.time.spend(1);
    });
    const before = s.clockReads();
    s.send(p, 'a', 'b');
    await nextTurn();
    expect(seen).toEqual([1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000, 1_000_000]);
    expect(s.clockReads() - before).toBe(1);
    await nextTurn(); // the slice has ended: every call reads the clock
    expect([s.sched.coarseNow(), s.sched.coarseNow()]).toEqual([1_000_002, 1_000_002]);
    expect(s.clockReads() - before).toBe(3);
  });

  it('reads the clock at every call under a virtual clock', async () => {
    const s = setup({ deterministic: true });
    const p = s.ready(() => {
      s.sched.coarseNow();
      s.sched.coarseNow();
    });
    s.send(p, 'a');
    await nextTurn();
    expect(s.clockReads()).toBe(2);
  });
});

describe('coarseTimerNow', () => {
  it('reads the timers’ time once per slice inside a run, at every call outside', async () => {
    const s = setup();
    const seen: number[] = [];
    const p = s.ready(() => {
      seen.push(s.sched.coarseTimerNow(), s.sched.coarseTimerNow());
      s.time.spend(1);
    });
    const before = s.timerReads();
    s.send(p, 'a', 'b');
    await nextTurn();
    expect(seen).toEqual([5_000, 5_000, 5_000, 5_000]);
    expect(s.timerReads() - before).toBe(1);
    await nextTurn(); // the slice has ended: every call reads the timers' time
    expect([s.sched.coarseTimerNow(), s.sched.coarseTimerNow()]).toEqual([5_002, 5_002]);
    expect(s.timerReads() - before).toBe(3);
  });

  it('reads the timers’ time at every call under a virtual clock', async () => {
    const s = setup({ deterministic: true });
    const p = s.ready(() => {
      s.sched.coarseTimerNow();
      s.sched.coarseTimerNow();
    });
    s.send(p, 'a');
    await nextTurn();
    expect(s.timerReads()).toBe(2);
  });
});

describe('a failure of the loop itself', () => {
  it('is logged naming the node, and the scheduler keeps working', async () => {
    const s = setup();
    const boom = new Error('idle check failed');
    let ran = 0;
    const p = s.ready(() => void ran++);
    // the host's idle check throws, once: a failure outside every guard of user code
    s.idle.hook = () => {
      s.idle.hook = undefined;
      throw boom;
    };
    s.send(p, 1);
    await nextTurn();
    expect(s.log).toEqual([{ level: 'error', message: 'the scheduler loop of node unit threw', detail: boom }]);
    expect(s.sched.active).toBe(false);
    s.send(p, 2);
    await nextTurn();
    expect(ran).toBe(2);
    expect(s.log).toHaveLength(1);
  });
});
