import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  isKeelError,
  Name,
  Pid,
  sendSupervised,
  type SendOptions,
  type SendOutcome,
  type SpawnOptions,
} from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import {
  advance,
  clockedNode,
  crasher,
  deadPid,
  type Deferred,
  deferred,
  expectKeelError,
  failure,
  fakeLogger,
  ok,
  otherCreation,
  receiver,
  spawnWithContext,
  type Seen,
  UNREADABLE,
  useNodes,
  type Watched,
  watch,
} from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** A node on a TestClock with `random` fixed at 0.5, so that every backoff delay is known. */
function clocked(random = 0.5, options: { name?: string; services?: boolean } = {}): { node: KeelNode; clock: TestClock } {
  return clockedNode(track, { random: () => random, ...options });
}

/** Records every `keel.supervised_send.retry` event with the clock time at which it was emitted. */
function retries(node: KeelNode): { at: number; attempt: number; delayMs: number; reason: unknown }[] {
  const out: { at: number; attempt: number; delayMs: number; reason: unknown }[] = [];
  node.telemetry.attach(`test.retries.${node.name}`, ['keel.supervised_send.retry'], (_event, m, meta) => {
    out.push({ at: node.clock.now(), attempt: m.attempt!, delayMs: m.delayMs!, reason: meta.reason });
  });
  return out;
}

function failed(outcome: SendOutcome | undefined): Extract<SendOutcome, { ok: false }> {
  expect(outcome?.ok).toBe(false);
  return outcome as Extract<SendOutcome, { ok: false }>;
}

/**
 * A receiver whose async handler starts every message (recorded in `started` with its
 * `ctx.messageId`, and `firstStart` resolves) and finishes it (recorded in `finished`) only once
 * `release()` has been called; after that, every message finishes at once.
 */
interface Staller {
  readonly pid: Pid;
  readonly started: Seen[];
  readonly finished: Seen[];
  readonly firstStart: Promise<void>;
  release(): void;
}

function staller(node: KeelNode, options?: SpawnOptions): Staller {
  const started: Seen[] = [];
  const finished: Seen[] = [];
  const first = deferred();
  const gates: Deferred<void>[] = [];
  let released = false;
  const pid = node.spawn(
    (ctx) => async (m: unknown) => {
      const seen = { message: m, id: ctx.messageId };
      started.push(seen);
      first.resolve();
      if (!released) {
        const gate = deferred();
        gates.push(gate);
        await gate.promise;
      }
      finished.push(seen);
    },
    options,
  );
  return {
    pid,
    started,
    finished,
    firstStart: first.promise,
    release: () => {
      released = true;
      for (const g of gates.splice(0)) g.resolve();
    },
  };
}

// ---- 'enqueued' -------------------------------------------------------------------------------

describe("sendSupervised with ack 'enqueued'", () => {
  it('delivers to a live pid and a registered name, from the node or a process context', async () => {
    const node = track();
    const r = receiver(node, { name: 'inbox' });
    const p = probe(node);
    expect(await sendSupervised(node, r.pid, 'by-pid')).toMatchObject({ ok: true, attempts: 1 });
    expect(await sendSupervised(node, 'inbox', 'by-name')).toMatchObject({ ok: true, attempts: 1 });
    expect(await sendSupervised(p.ctx, r.pid, 'from-ctx')).toMatchObject({ ok: true, attempts: 1 });
    await node.idle();
    expect(r.seen.map((s) => s.message)).toEqual(['by-pid', 'by-name', 'from-ctx']);
  });

  it('is decided in one synchronous step: the message is in the mailbox at return, no timer is armed, no clock advance is needed', async () => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await node.idle();
    const timers = node.internals().timers;
    const pending = clock.pendingTimers;
    const w = watch(sendSupervised(node, r.pid, 'now', { timeout: 50 }));
    expect(node.info(r.pid)?.mailboxLength).toBe(1);
    expect(node.internals().timers).toBe(timers);
    expect(clock.pendingTimers).toBe(pending);
    await node.settle();
    expect(w.status).toBe('resolved');
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 1 });
    expect(r.seen).toEqual([{ message: 'now', id: w.value?.id }]);
    expect(node.internals().timers).toBe(timers);
  });

  it('a failure is decided in the same synchronous step (no timer, no advance)', async () => {
    const { node } = clocked();
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    node.send(r.pid, 'fill');
    const timers = node.internals().timers;
    const w = watch(sendSupervised(node, r.pid, 'refused', { onError: 'ignore' }));
    expect(node.internals().timers).toBe(timers);
    await node.settle();
    expect(w.status).toBe('resolved');
    expect(w.value).toMatchObject({ ok: false, reason: 'mailbox_full', attempts: 1 });
  });
});

// ---- the outcome table ------------------------------------------------------------------------

describe('sendSupervised: target pid dead, unknown or stale', () => {
  it.each([
    ['dead', (node: KeelNode) => deadPid(node)],
    ['unknown', (node: KeelNode) => Pid.parse(`<${node.name}.999999.${node.creation}>`)],
    ['stale (another creation)', (node: KeelNode) => otherCreation(node.spawn(() => () => undefined))],
    ['of another node', (node: KeelNode) => Pid.parse(`<elsewhere.1.${node.creation}>`)],
  ])('a %s pid is noproc and never retried, even with retries', async (_what, make) => {
    const { node, clock } = clocked();
    const pid = make(node);
    const seen = retries(node);
    const timers = node.internals().timers;
    const w = watch(sendSupervised(node, pid, 'lost', { retries: 5, onError: 'ignore' }));
    expect(node.internals().timers).toBe(timers);
    await node.settle();
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
    await clock.advance(60_000);
    expect(seen).toEqual([]);
  });

  it("with ack 'handled' a dead pid is noproc after one attempt too", async () => {
    const { node } = clocked();
    const pid = deadPid(node);
    const outcome = await sendSupervised(node, pid, 'lost', { ack: 'handled', retries: 3, onError: 'ignore' });
    expect(outcome).toMatchObject({ ok: false, reason: 'noproc', attempts: 1 });
  });
});

describe('sendSupervised: name not registered', () => {
  it('is noproc and retried until the retries run out', async () => {
    const { node, clock } = clocked();
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 2, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    await clock.advance(5); // 0.5 × 10
    await clock.advance(10); // 0.5 × 20
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'noproc', attempts: 3, firstError: 'noproc', lastError: 'noproc' });
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([
      [2, 'noproc'],
      [3, 'noproc'],
    ]);
  });

  it('succeeds when the name is registered during the backoff', async () => {
    const { node, clock } = clocked();
    const w = watch(sendSupervised(node, 'later', 'hello', { retries: 3, onError: 'ignore' }));
    await clock.advance(4);
    expect(w.status).toBe('pending');
    const r = receiver(node, { name: 'later' });
    await clock.advance(1); // the first retry is due at 5
    expect(w.status).toBe('resolved');
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    await node.idle();
    expect(r.seen).toEqual([{ message: 'hello', id: w.value?.id }]);
  });
});

describe('sendSupervised: mailbox full', () => {
  it.each(['reject', 'drop_newest'] as const)('overflow %s: mailbox_full, retried until the retries run out', async (overflow) => {
    const { node, clock } = clocked();
    const r = receiver(node, { mailbox: { capacity: 1, overflow } });
    await r.hold();
    node.send(r.pid, 'fill');
    const seen = retries(node);
    const w = watch(sendSupervised(node, r.pid, 'job', { retries: 2, onError: 'ignore' }));
    await clock.advance(5);
    expect(w.status).toBe('pending');
    await clock.advance(10);
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'mailbox_full', attempts: 3, firstError: 'mailbox_full', lastError: 'mailbox_full' });
    expect(seen.map((e) => e.reason)).toEqual(['mailbox_full', 'mailbox_full']);
    r.release();
    await node.idle();
    expect(r.seen.map((s) => s.message)).toEqual(['fill']);
  });

  it.each(['reject', 'drop_newest'] as const)('overflow %s: a retry after the mailbox drained delivers', async (overflow) => {
    const { node, clock } = clocked();
    const r = receiver(node, { mailbox: { capacity: 1, overflow } });
    await r.hold();
    node.send(r.pid, 'fill');
    const w = watch(sendSupervised(node, r.pid, 'job', { retries: 2, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    r.release();
    await clock.advance(5);
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    await node.idle();
    expect(r.seen.map((s) => s.message)).toEqual(['fill', 'job']);
  });

  it("evicted by drop_oldest before handling (ack 'handled') is mailbox_full", async () => {
    const { node } = clocked();
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    node.send(r.pid, 'newer'); // evicts the queued supervised message
    await node.settle();
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'mailbox_full', attempts: 1, firstError: 'mailbox_full', lastError: 'mailbox_full' });
    r.release();
    await node.idle();
    expect(r.seen.map((s) => s.message)).toEqual(['newer']);
  });

  it('an eviction by drop_oldest is retried, and the retry is handled once', async () => {
    const { node, clock } = clocked();
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    await r.hold();
    const seen = retries(node);
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', retries: 1, onError: 'ignore' }));
    node.send(r.pid, 'newer');
    await node.settle();
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'mailbox_full']]);
    r.release();
    await clock.advance(5);
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(r.seen).toEqual([
      { message: 'newer', id: undefined },
      { message: 'job', id: w.value?.id },
    ]);
  });
});

describe('sendSupervised: queued, then the receiver died before handling it', () => {
  it('is process_down with the exit reason as the error', async () => {
    const { node } = clocked();
    const r = receiver(node);
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    node.exit(r.pid, 'kill');
    await node.settle();
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'process_down', attempts: 1, firstError: 'killed', lastError: 'killed' });
    expect(r.seen).toEqual([]);
  });

  it('is retried: a process registered again under the name handles it', async () => {
    const { node, clock } = clocked();
    const first = receiver(node, { name: 'worker' });
    await first.hold();
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'worker', 'job', { ack: 'handled', retries: 1, onError: 'ignore' }));
    await node.settle();
    node.exit(first.pid, 'kill');
    await node.settle();
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'process_down']]);
    expect(w.status).toBe('pending');
    const second = receiver(node, { name: 'worker' });
    await clock.advance(5);
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(second.seen).toEqual([{ message: 'job', id: w.value?.id }]);
    expect(first.seen).toEqual([]);
  });
});

describe('sendSupervised: the receiver crashed while handling it', () => {
  const boom = new Error('poison');
  const crashers = [
    ['a synchronous throw', () => (): never => {
      throw boom;
    }],
    ['an async rejection', () => async (): Promise<never> => {
      await Promise.resolve();
      throw boom;
    }],
  ] as const;

  it.each(crashers)('%s: process_down, not retried without retryOnCrash (poison guard)', async (_what, init) => {
    const { node, clock } = clocked();
    node.spawn(init, { name: 'crashy' });
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'crashy', 'poison-pill', { ack: 'handled', retries: 3, onError: 'ignore' }));
    await node.idle();
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'process_down', attempts: 1, firstError: boom, lastError: boom });
    receiver(node, { name: 'crashy' });
    await clock.advance(60_000);
    expect(seen).toEqual([]);
  });

  it.each(crashers)('%s: retried with retryOnCrash', async (_what, init) => {
    const { node, clock } = clocked();
    node.spawn(init, { name: 'crashy' });
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'crashy', 'pill', { ack: 'handled', retries: 1, retryOnCrash: true, onError: 'ignore' }));
    await node.idle();
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'process_down']]);
    const r = receiver(node, { name: 'crashy' });
    await clock.advance(5);
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(r.seen).toEqual([{ message: 'pill', id: w.value?.id }]);
  });

  it('a handler that exits with an error is a crash while handling', async () => {
    const { node } = clocked();
    const why = new Error('gave up');
    const pid = node.spawn((ctx) => () => ctx.exit(why));
    const outcome = await sendSupervised(node, pid, 'job', { ack: 'handled', retries: 2, onError: 'ignore' });
    expect(outcome).toMatchObject({ ok: false, reason: 'process_down', attempts: 1, firstError: why, lastError: why });
  });

  // docs/delivery.md: "the receiver crashed (or was killed) while handling it | process_down | only with retryOnCrash"
  const killers = [
    ['node.exit(pid, kill)', (node: KeelNode, pid: Pid) => node.exit(pid, 'kill')],
    ["another process's ctx.exit(pid, kill)", (node: KeelNode, pid: Pid) => probe(node).ctx.exit(pid, 'kill')],
  ] as const;

  it.each(killers)("killed by %s while its async handler runs the message: process_down ('killed'), not retried without retryOnCrash", async (_how, kill) => {
    const { node, clock } = clocked();
    const first = staller(node, { name: 'worker' });
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'worker', 'job', { ack: 'handled', retries: 3, onError: 'ignore' }));
    await first.firstStart;
    expect(first.started.map((x) => x.message)).toEqual(['job']);
    expect(w.status).toBe('pending');
    kill(node, first.pid);
    await node.settle();
    expect(node.isAlive(first.pid)).toBe(false);
    expect(w.value).toEqual({ ok: false, id: first.started[0]!.id, reason: 'process_down', attempts: 1, firstError: 'killed', lastError: 'killed' });
    // a process registered again under the name would take a retry: none comes
    const second = receiver(node, { name: 'worker' });
    await clock.advance(60_000);
    expect(seen).toEqual([]);
    expect(second.seen).toEqual([]);
    expect(first.started).toHaveLength(1); // one delivery, never finished
    expect(first.finished).toEqual([]);
  });

  it.each(killers)('killed by %s while its async handler runs the message: retried with retryOnCrash, handled by the next process', async (_how, kill) => {
    const { node, clock } = clocked();
    const first = staller(node, { name: 'worker' });
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'worker', 'job', { ack: 'handled', retries: 3, retryOnCrash: true, onError: 'ignore' }));
    await first.firstStart;
    kill(node, first.pid);
    await node.settle();
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'process_down']]);
    expect(w.status).toBe('pending');
    const second = receiver(node, { name: 'worker' });
    await clock.advance(5); // 0.5 × 10
    expect(w.value).toEqual({ ok: true, id: first.started[0]!.id, attempts: 2 });
    expect(seen).toHaveLength(1);
    // two deliveries under one id: the first started and was killed, the second was handled
    expect(first.started).toEqual([{ message: 'job', id: w.value?.id }]);
    expect(first.finished).toEqual([]);
    expect(second.seen).toEqual([{ message: 'job', id: w.value?.id }]);
  });

  it('killed while handling, sent by pid with retryOnCrash: the retry finds the pid dead (noproc), no further attempt', async () => {
    const { node, clock } = clocked();
    const r = staller(node);
    const seen = retries(node);
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', retries: 3, retryOnCrash: true, onError: 'ignore' }));
    await r.firstStart;
    node.exit(r.pid, 'kill');
    await clock.advance(5);
    expect(w.value).toEqual({ ok: false, id: r.started[0]!.id, reason: 'noproc', attempts: 2, firstError: 'killed', lastError: 'noproc' });
    await clock.advance(60_000);
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'process_down']]);
    expect(r.started).toHaveLength(1);
    expect(r.finished).toEqual([]);
  });
});

describe('sendSupervised: a clean exit signal ends the receiver while its handler runs', () => {
  it("a linked process's 'shutdown', set off by the handler itself, is process_down ('shutdown'), not handled: the rest of the handler never ran", async () => {
    const { node } = clocked();
    const after: string[] = [];
    const pid = node.spawn((ctx) => {
      const partner = ctx.spawnLink(() => () => undefined); // does not trap exits: its 'shutdown' comes back over the link
      return (m) => {
        ctx.exit(partner, 'shutdown');
        after.push(String(m)); // never runs: the link's signal ended this process
      };
    });
    const outcome = await sendSupervised(node, pid, 'job', { ack: 'handled', onError: 'ignore' });
    expect(outcome).toEqual({ ok: false, id: outcome.id, reason: 'process_down', attempts: 1, firstError: 'shutdown', lastError: 'shutdown' });
    expect(after).toEqual([]);
    expect(node.isAlive(pid)).toBe(false);
  });

  it("node.exit(ctx.self, 'shutdown') from the handler is the node's signal: process_down ('shutdown')", async () => {
    const { node } = clocked();
    const pid = node.spawn((ctx) => () => node.exit(ctx.self, 'shutdown'));
    const outcome = await sendSupervised(node, pid, 'job', { ack: 'handled', onError: 'ignore' });
    expect(outcome).toEqual({ ok: false, id: outcome.id, reason: 'process_down', attempts: 1, firstError: 'shutdown', lastError: 'shutdown' });
  });

  it("ctx.exit(ctx.self, 'shutdown') from the handler ends the process itself: success", async () => {
    const { node } = clocked();
    const pid = node.spawn((ctx) => () => ctx.exit(ctx.self, 'shutdown'));
    const outcome = await sendSupervised(node, pid, 'job', { ack: 'handled', onError: 'ignore' });
    expect(outcome).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect(node.isAlive(pid)).toBe(false);
  });
});

describe('sendSupervised: the receiver exited normally right after handling', () => {
  it("ctx.exit('normal') in a synchronous handler is success", async () => {
    const { node } = clocked();
    const ids: (string | undefined)[] = [];
    const pid = node.spawn((ctx) => () => {
      ids.push(ctx.messageId);
      ctx.exit('normal');
    });
    const outcome = await sendSupervised(node, pid, 'last-job', { ack: 'handled', onError: 'ignore' });
    expect(outcome).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect(ids).toEqual([outcome.id]);
    expect(node.isAlive(pid)).toBe(false);
  });

  it("ctx.exit('normal') at the end of an async handler is success", async () => {
    const { node } = clocked();
    const pid = node.spawn((ctx) => async () => {
      await Promise.resolve();
      ctx.exit('normal');
    });
    const outcome = await sendSupervised(node, pid, 'last-job', { ack: 'handled', onError: 'ignore' });
    expect(outcome).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect(node.isAlive(pid)).toBe(false);
  });
});

describe("sendSupervised: 'handled' not finished within the timeout", () => {
  it('is timeout, and the copy not yet started is withdrawn (never handled later)', async () => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', timeout: 100, onError: 'ignore' }));
    await clock.advance(99);
    expect(w.status).toBe('pending');
    expect(node.info(r.pid)?.mailboxLength).toBe(1);
    await clock.advance(1);
    const outcome = failed(w.value);
    expect(outcome).toMatchObject({ reason: 'timeout', attempts: 1 });
    expect(String(outcome.firstError)).toContain('100');
    expect(node.info(r.pid)?.mailboxLength).toBe(0);
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it('is retried after withdrawing the unstarted copy: the receiver handles the message exactly once', async () => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await r.hold();
    const seen = retries(node);
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', timeout: 100, retries: 1, onError: 'ignore' }));
    await clock.advance(100);
    expect(seen.map((e) => [e.attempt, e.reason])).toEqual([[2, 'timeout']]);
    await clock.advance(5);
    expect(node.info(r.pid)?.mailboxLength).toBe(1); // only the retry's copy
    expect(w.status).toBe('pending');
    r.release();
    await node.idle();
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(r.seen.filter((s) => s.id === w.value?.id)).toHaveLength(1);
    expect(r.seen).toEqual([{ message: 'job', id: w.value?.id }]);
  });

  it('a handler that finishes in time cancels the timer', async () => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await node.idle();
    const timers = node.internals().timers;
    const outcome = await sendSupervised(node, r.pid, 'job', { ack: 'handled', timeout: 100, retries: 2 });
    expect(outcome).toMatchObject({ ok: true, attempts: 1 });
    expect(node.internals().timers).toBe(timers);
    await clock.advance(1000);
    expect(r.seen).toHaveLength(1);
  });

  it("a copy that timed out once started is no longer the send's: its handler's late crash does not fail the retry's copy, which another process (the name's new holder) handles; the crash was taken for the retry's and the send dead-lettered a message that was then handled", async () => {
    const { node, clock } = clocked();
    const gateA = deferred();
    const startedA = deferred();
    const a = node.spawn(() => async () => {
      startedA.resolve();
      await gateA.promise;
      throw new Error('late crash');
    });
    const gateB = deferred();
    const handledB: unknown[] = [];
    const b = node.spawn((ctx) => async (m: unknown) => {
      if (m === 'block') await gateB.promise;
      else handledB.push(ctx.messageId);
    });
    node.send(b, 'block');
    node.registry.register('svc', a);
    const w = watch(sendSupervised(node, 'svc', 'job', { ack: 'handled', timeout: 100, retries: 1, backoff: { initialMs: 10, jitter: 'none' }, onError: 'dead_letter' }));
    await startedA;
    // the name moves to another process while the first copy is being handled
    node.registry.unregister('svc');
    node.registry.register('svc', b);
    await clock.advance(110); // the first attempt times out (its copy started: not withdrawn); the retry's copy waits in b's mailbox
    expect(node.info(b)?.mailboxLength).toBe(1);
    gateA.resolve(); // the first copy's handler crashes now
    await node.settle();
    expect(w.status).toBe('pending');
    gateB.resolve();
    await node.idle();
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(handledB).toEqual([w.value?.id]);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ added: 0, pending: 0 });
  });

  it("withdraws only its own copy on a timeout: another send with the same id still completes", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const gate = deferred();
    let handled = 0;
    const receiver = node.spawn(() => async (m) => {
      if (m === 'block') await gate.promise;
      else handled++;
    });
    node.send(receiver, 'block');
    await node.settle();
    const short = sendSupervised(node, receiver, 'x', { ack: 'handled', id: 'order-42', timeout: 100, onError: 'ignore' });
    const long = sendSupervised(node, receiver, 'x', { ack: 'handled', id: 'order-42', timeout: 10_000, onError: 'ignore' });
    await clock.advance(100);
    expect(await short).toMatchObject({ ok: false, reason: 'timeout' });
    gate.resolve();
    expect(await long).toMatchObject({ ok: true });
    expect(handled).toBe(1);
  });
});

describe('sendSupervised: the defaults (timeout 5000 ms; backoff 10 ms × 2 up to 5000 ms, full jitter)', () => {
  // only `ack` given takes the shared defaults; any other option builds the settings in full
  const noTimeout = [
    ["{ ack: 'handled' } alone", { ack: 'handled' }],
    ["{ ack: 'handled', onError: 'ignore' }", { ack: 'handled', onError: 'ignore' }],
  ] as const satisfies readonly (readonly [string, SendOptions])[];

  it.each(noTimeout)('%s, not yet started: timeout after exactly 5000 ms (not at 4999), the queued copy withdrawn', async (_what, options) => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', options));
    await clock.advance(4999);
    expect(w.status).toBe('pending');
    expect(node.info(r.pid)?.mailboxLength).toBe(1);
    await clock.advance(1);
    const outcome = failed(w.value);
    expect(outcome).toMatchObject({ reason: 'timeout', attempts: 1 });
    expect(String(outcome.firstError)).toContain('5000 ms');
    expect(node.info(r.pid)?.mailboxLength).toBe(0);
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it.each(noTimeout)('%s, started and never finished: timeout after exactly 5000 ms; the handler goes on and finishes it later', async (_what, options) => {
    const { node, clock } = clocked();
    const r = staller(node);
    const w = watch(sendSupervised(node, r.pid, 'job', options));
    await r.firstStart;
    await clock.advance(4999);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    const outcome = failed(w.value);
    expect(outcome).toMatchObject({ reason: 'timeout', attempts: 1 });
    expect(String(outcome.lastError)).toContain('5000 ms');
    expect(node.isAlive(r.pid)).toBe(true);
    r.release();
    await node.idle();
    expect(r.finished).toEqual([{ message: 'job', id: outcome.id }]);
    expect(w.value).toBe(outcome); // a late finish changes nothing
  });

  it('a started copy is not withdrawn at the default timeout: a retry delivers it again under the same id (at-least-once)', async () => {
    const { node, clock } = clocked();
    const r = staller(node);
    const seen = retries(node);
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', retries: 1, onError: 'ignore' }));
    await r.firstStart;
    await clock.advance(5000);
    expect(seen.map((e) => [e.at - 1_000_000, e.attempt, e.reason])).toEqual([[5000, 2, 'timeout']]);
    await clock.advance(5); // the retry's copy waits behind the one still running
    expect(node.info(r.pid)?.mailboxLength).toBe(1);
    expect(w.status).toBe('pending');
    r.release();
    await node.idle();
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(r.finished).toEqual([
      { message: 'job', id: w.value?.id },
      { message: 'job', id: w.value?.id },
    ]);
  });

  it('the default backoff is capped at 5000 ms: with random close to 1, late retries wait random × 5000, never more', async () => {
    const nearlyOne = 1 - 2 ** -10; // 0.9990234375: every delay and time below is exact in binary
    const cap = nearlyOne * 5000; // 4995.1171875
    const { node, clock } = clocked(nearlyOne);
    const start = clock.now();
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 12, onError: 'ignore' }));
    // retries 1-9 wait random × 10 × 2^(k-1), up to random × 2560; uncapped, retry 10 would wait random × 5120 = 5115
    const growing = [10, 20, 40, 80, 160, 320, 640, 1280, 2560].map((ms) => nearlyOne * ms);
    const tenth = start + growing.reduce((a, b) => a + b, 0); // when attempt 10 fails and retry 10 is scheduled
    await clock.advance(tenth - start);
    expect(seen.map((e) => e.delayMs)).toEqual([...growing, cap]);
    expect(seen[9]).toEqual({ at: tenth, attempt: 11, delayMs: cap, reason: 'noproc' });
    // attempt 11 comes cap ms later: not by 4995, by 4996 (uncapped it would be at 5115)
    await clock.advance(4995);
    expect(seen).toHaveLength(10);
    await clock.advance(1);
    expect(seen).toHaveLength(11);
    expect(seen[10]).toEqual({ at: tenth + cap, attempt: 12, delayMs: cap, reason: 'noproc' });
    await clock.advance(2 * cap);
    expect(w.value).toMatchObject({ ok: false, reason: 'noproc', attempts: 13 });
    expect(seen.slice(9).map((e) => e.delayMs)).toEqual([cap, cap, cap]);
    expect(Math.max(...seen.map((e) => e.delayMs))).toBeLessThanOrEqual(5000);
  });
});

describe("sendSupervised: a process sends itself a 'handled' message from its own handler", () => {
  /** A process that, on `'go'`, sends itself `'ping'` with ack 'handled' (after an await when `late`) and reports to `report`. */
  function selfSender(node: KeelNode, report: Pid, to: 'self' | 'name', late: boolean, handled: unknown[]): Pid {
    return node.spawn(
      (ctx) => async (m: unknown) => {
        if (m !== 'go') {
          handled.push(m);
          return;
        }
        if (late) await Promise.resolve();
        await sendSupervised(ctx, to === 'self' ? ctx.self : 'me', 'ping', { ack: 'handled', timeout: 100, onError: 'ignore' }).then(
          (outcome) => node.send(report, { outcome }),
          (error: unknown) => node.send(report, { error }),
        );
      },
      { name: 'me' },
    );
  }

  it.each([
    ['its pid', 'self', false],
    ['its name', 'name', false],
    ['its pid, after an await in an async handler', 'self', true],
  ] as const)('to %s: rejects at once with ERR_DEADLOCK and no copy is delivered', async (_what, to, late) => {
    const { node, clock } = clocked();
    const p = probe(node);
    const handled: unknown[] = [];
    const pid = selfSender(node, p, to, late, handled);
    node.send(pid, 'go');
    await node.settle();
    // were it not refused, it would end at its timeout instead: let that show as a wrong report
    await clock.advance(100);
    const report = (await p.receive()) as { error?: unknown; outcome?: unknown };
    expect(report.outcome).toBeUndefined();
    expectKeelError(report.error, 'ERR_DEADLOCK');
    await node.idle();
    expect(handled).toEqual([]);
    expect(node.isAlive(pid)).toBe(true);
  });

  it("ack 'enqueued' to itself from its own handler is fine", async () => {
    const { node } = clocked();
    const p = probe(node);
    const pid = node.spawn((ctx) => (m: unknown) => {
      if (m === 'go') void sendSupervised(ctx, ctx.self, 'ping').then((outcome) => node.send(p, { outcome }));
      else node.send(p, { got: m });
    });
    node.send(pid, 'go');
    expect(await p.receive((m) => typeof m === 'object' && m !== null && 'outcome' in m)).toMatchObject({ outcome: { ok: true, attempts: 1 } });
    expect(await p.receive((m) => typeof m === 'object' && m !== null && 'got' in m)).toEqual({ got: 'ping' });
  });
});

describe('sendSupervised: the sender died', () => {
  it('a send waiting on a retry is aborted when its process dies, and no further attempt happens', async () => {
    const { node, clock } = clocked();
    const seen = retries(node);
    const timers = node.internals().timers;
    let w: Watched<SendOutcome> | undefined;
    const started = deferred();
    const sender = node.spawn((ctx) => (m: unknown) => {
      if (m !== 'go') return;
      w = watch(sendSupervised(ctx, 'later', 'payload', { retries: 5, onError: 'ignore' }));
      started.resolve();
    });
    node.send(sender, 'go');
    await started.promise;
    await node.settle();
    expect(w?.status).toBe('pending');
    expect(seen).toHaveLength(1);
    node.exit(sender, 'kill');
    await node.settle();
    expect(w?.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, firstError: 'noproc' });
    expect(node.internals().timers).toBe(timers);
    const r = receiver(node, { name: 'later' });
    await clock.advance(60_000);
    expect(r.seen).toEqual([]);
    expect(seen).toHaveLength(1);
  });

  it("a send with ack 'handled' in flight is aborted when its process dies", async () => {
    const { node } = clocked();
    const r = receiver(node);
    await r.hold();
    const p = probe(node);
    const timers = node.internals().timers;
    const w = watch(sendSupervised(p.ctx, r.pid, 'job', { ack: 'handled', timeout: 1000, retries: 3, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    node.exit(p, 'kill');
    await node.settle();
    expect(w.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1 });
    expect(node.internals().timers).toBe(timers);
  });

  it("a user's send whose process dies is a failed send, its own signal or not: with onError 'dead_letter' it is dead-lettered (aborted) and redelivered from the queue, with 'log' a warning", async () => {
    // control for the agent scheduler's own exit (a withdrawal, no policy): a user's process keeps the documented behaviour
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 0.5, logger });
    const r = receiver(node);
    await r.hold();
    const p = probe(node);
    const signal = new AbortController().signal;
    const queued = watch(sendSupervised(p.ctx, r.pid, 'queued', { ack: 'handled', timeout: 1000, signal, onError: 'dead_letter' }));
    const retrying = watch(sendSupervised(p.ctx, 'later', 'retrying', { retries: 5, signal, onError: 'dead_letter' }));
    const logged = watch(sendSupervised(p.ctx, 'later', 'logged', { retries: 5, onError: 'log' }));
    await clock.advance(2); // the queued copy waits in the mailbox; the others wait for their first retry
    expect([queued.status, retrying.status, logged.status]).toEqual(['pending', 'pending', 'pending']);
    node.exit(p, 'kill');
    await node.settle();
    expect(queued.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, lastError: 'the sender has exited', deadLetterId: expect.any(String) });
    expect(retrying.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, lastError: 'noproc', deadLetterId: expect.any(String) });
    expect(logged.value).toEqual({ ok: false, id: logged.value!.id, reason: 'aborted', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
    expect(logger.warn.mock.calls).toEqual([[`supervised send ${logged.value!.id} to 'later' failed after 1 attempt(s): aborted`, 'noproc']]);
    const listed = await node.deadLetters.list({});
    if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
    expect(listed.entries.map((e) => [e.message, e.reason, e.status]).sort()).toEqual([
      ['queued', 'aborted', 'pending'],
      ['retrying', 'aborted', 'pending'],
    ]);
    r.release();
    await advance(node, clock, 2000); // past the dead letter's first retry (1 s): the copy taken back comes again
    expect(r.seen.map((m) => m.message)).toEqual(['queued']);
  });

  it('a send from a process that has already exited (a zombie continuation) fails with ERR_PROCESS_EXITED, like a call', async () => {
    const { node } = clocked();
    const r = receiver(node);
    const p = probe(node);
    node.exit(p, 'kill');
    const e = await failure(() => sendSupervised(p.ctx, r.pid, 'from-beyond', { retries: 3, onError: 'ignore' }));
    expectKeelError(e, 'ERR_PROCESS_EXITED');
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it('a supervised send from a process that has died is aborted without delivery', async () => {
    const node = track();
    const p = probe(node);
    const events = captureEvents(node, ['keel.message.']);
    const sender = node.spawn(() => async () => undefined);
    await node.idle();
    const ctx = node.resolve(sender)!;
    node.exit(sender, 'kill');
    let error: unknown;
    try {
      await sendSupervised(ctx, p, 'x');
    } catch (e) {
      error = e;
    }
    expect(isKeelError(error, 'ERR_PROCESS_EXITED')).toBe(true);
    expect(p.messages).toEqual([]);
    expect(events.events).toEqual([]);
  });
});

describe('sendSupervised: the signal aborted', () => {
  it('an already aborted signal: aborted, no attempt, nothing delivered', async () => {
    const { node } = clocked();
    const r = receiver(node);
    const ac = new AbortController();
    ac.abort('stop');
    const outcome = await sendSupervised(node, r.pid, 'x', { signal: ac.signal, onError: 'ignore' });
    expect(outcome).toEqual({ ok: false, id: outcome.id, reason: 'aborted', attempts: 0, firstError: 'stop', lastError: 'stop' });
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it('many sends pending on one signal add one abort listener to it, not one each (past 10, Node warned of an EventTarget memory leak); an abort still ends every one, and the listener goes with the last', async () => {
    const { node, clock } = clocked();
    const ac = new AbortController();
    const pending = Array.from({ length: 20 }, (_, i) => sendSupervised(node, 'nobody', i, { retries: 1, backoff: { initialMs: 100, jitter: 'none' }, signal: ac.signal, onError: 'ignore' }));
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(1);
    ac.abort('stop');
    const outcomes = await Promise.all(pending);
    expect(outcomes.map((o) => [o.ok, !o.ok && o.reason, o.attempts])).toEqual(Array.from({ length: 20 }, () => [false, 'aborted', 1]));
    expect(getEventListeners(ac.signal, 'abort')).toHaveLength(0);
    // sends that end by themselves take their listener with them too
    const other = new AbortController();
    const done = Array.from({ length: 12 }, (_, i) => sendSupervised(node, 'nobody', i, { retries: 1, backoff: { initialMs: 100, jitter: 'none' }, signal: other.signal, onError: 'ignore' }));
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(1);
    await clock.advance(100);
    expect((await Promise.all(done)).map((o) => o.attempts)).toEqual(Array.from({ length: 12 }, () => 2));
    expect(getEventListeners(other.signal, 'abort')).toHaveLength(0);
  });

  it('an abort during the backoff: aborted at once, the retry timer is gone, no further attempt', async () => {
    const { node, clock } = clocked();
    const seen = retries(node);
    const ac = new AbortController();
    const timers = node.internals().timers;
    const w = watch(sendSupervised(node, 'later', 'x', { retries: 5, signal: ac.signal, onError: 'ignore' }));
    await clock.advance(2);
    expect(w.status).toBe('pending');
    ac.abort('stop');
    await node.settle();
    expect(w.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, firstError: 'noproc' });
    expect(node.internals().timers).toBe(timers);
    const r = receiver(node, { name: 'later' });
    await clock.advance(60_000);
    expect(r.seen).toEqual([]);
    expect(seen).toHaveLength(1);
  });

  it("a user's own abort is a failed send: with onError 'dead_letter' it is dead-lettered (aborted, pending, a retry time), with 'log' a warning, whatever its reason says (one that reads as a withdrawal too)", async () => {
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 0.5, logger });
    const ac = new AbortController();
    const lookalike = new AbortController();
    const logged = new AbortController();
    const byUser = watch(sendSupervised(node, 'later', 'x', { retries: 5, signal: ac.signal, onError: 'dead_letter' }));
    const byLookalike = watch(sendSupervised(node, 'later', 'y', { retries: 5, signal: lookalike.signal, onError: 'dead_letter' }));
    const byLogged = watch(sendSupervised(node, 'later', 'z', { retries: 5, signal: logged.signal, onError: 'log' }));
    await clock.advance(2); // each waits for its first retry
    expect([byUser.status, byLookalike.status, byLogged.status]).toEqual(['pending', 'pending', 'pending']);
    ac.abort('stop');
    lookalike.abort(new Error('withdrawn by its sender'));
    logged.abort('stop');
    await node.settle();
    expect(byUser.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, deadLetterId: expect.any(String) });
    expect(byLookalike.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, deadLetterId: expect.any(String) });
    expect(byLogged.value).toEqual({ ok: false, id: byLogged.value!.id, reason: 'aborted', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
    const listed = await node.deadLetters.list({});
    if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
    expect(listed.entries.map((e) => [e.message, e.reason, e.status, typeof e.nextRetryAt])).toEqual([
      ['x', 'aborted', 'pending', 'number'],
      ['y', 'aborted', 'pending', 'number'],
    ]);
    expect(logger.warn.mock.calls).toEqual([[`supervised send ${byLogged.value!.id} to 'later' failed after 1 attempt(s): aborted`, 'noproc']]);
  });

  it("an abort while a 'handled' message is in flight: aborted, its timeout timer is gone", async () => {
    const { node } = clocked();
    const r = receiver(node);
    await r.hold();
    const ac = new AbortController();
    const timers = node.internals().timers;
    const w = watch(sendSupervised(node, r.pid, 'x', { ack: 'handled', timeout: 1000, signal: ac.signal, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    ac.abort('stop');
    await node.settle();
    expect(w.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1 });
    expect(node.internals().timers).toBe(timers);
  });
});

describe("sendSupervised: an abort that ends a 'handled' attempt in flight", () => {
  it("is that attempt's error: the outcome's firstError and lastError are the signal's reason (or the sender's exit), and the dead letter's lastError says it; both were undefined, the abort's reason said nowhere", async () => {
    const { node } = clocked();
    const r = receiver(node);
    await r.hold();
    const ac = new AbortController();
    const bySignal = watch(sendSupervised(node, r.pid, 'x', { ack: 'handled', timeout: 1000, signal: ac.signal, onError: 'dead_letter' }));
    const p = probe(node);
    const bySender = watch(sendSupervised(p.ctx, r.pid, 'y', { ack: 'handled', timeout: 1000, onError: 'ignore' }));
    await node.settle();
    ac.abort('stop');
    node.exit(p, 'kill');
    await node.settle();
    expect(bySignal.value).toEqual({ ok: false, id: bySignal.value!.id, reason: 'aborted', attempts: 1, firstError: 'stop', lastError: 'stop', deadLetterId: expect.any(String) });
    expect(bySender.value).toEqual({ ok: false, id: bySender.value!.id, reason: 'aborted', attempts: 1, firstError: 'the sender has exited', lastError: 'the sender has exited' });
    const letter = await node.deadLetters.get((bySignal.value as { deadLetterId: string }).deadLetterId);
    expect(letter?.metadata).toMatchObject({ attempts: 1, lastError: 'stop' });
    expect(letter?.lastError).toBe('stop');
  });
});

// ---- retries and backoff ----------------------------------------------------------------------

describe('sendSupervised: retries follow the backoff on the node clock and random', () => {
  it.each([
    // random, backoff, expected delay of retry k = random × min(maxMs, initialMs × factor^(k-1))
    [0.5, undefined, [5, 10, 20, 40, 80]],
    [0.5, { initialMs: 100, factor: 3, maxMs: 1000 }, [50, 150, 450, 500, 500]],
    [0.25, { initialMs: 40, factor: 2, maxMs: 100 }, [10, 20, 25, 25, 25]],
  ] as const)('random %s, backoff %j: each attempt at the exact time', async (random, backoff, delays) => {
    const { node, clock } = clocked(random);
    const start = clock.now();
    const seen = retries(node);
    const options: SendOptions = { retries: delays.length, onError: 'ignore', ...(backoff === undefined ? {} : { backoff }) };
    const w = watch(sendSupervised(node, 'nobody', 'x', options));
    await node.settle();
    let at = start;
    // attempt 1 at the start; attempt k+1 exactly delays[k-1] ms after attempt k
    expect(seen).toEqual([{ at, attempt: 2, delayMs: delays[0], reason: 'noproc' }]);
    for (let k = 0; k < delays.length; k++) {
      const delay = delays[k]!;
      await clock.advance(delay - 1);
      expect(seen).toHaveLength(k + 1);
      expect(w.status).toBe('pending');
      await clock.advance(1);
      at += delay;
      if (k + 1 < delays.length) {
        expect(seen).toHaveLength(k + 2);
        expect(seen[k + 1]).toEqual({ at, attempt: k + 3, delayMs: delays[k + 1], reason: 'noproc' });
      }
    }
    expect(w.value).toMatchObject({ ok: false, reason: 'noproc', attempts: delays.length + 1 });
    expect(seen).toHaveLength(delays.length);
  });

  it("jitter 'none' waits the full capped delay", async () => {
    const { node, clock } = clocked(0.1);
    const seen = retries(node);
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 2, backoff: { initialMs: 30, factor: 2, maxMs: 50, jitter: 'none' }, onError: 'ignore' }));
    await clock.advance(30);
    await clock.advance(50);
    expect(seen.map((e) => e.delayMs)).toEqual([30, 50]);
    expect(w.value).toMatchObject({ attempts: 3 });
  });

  it('the deadline stops retries: no retry is scheduled past it', async () => {
    const { node, clock } = clocked();
    const seen = retries(node);
    const timers = node.internals().timers;
    const w = watch(
      sendSupervised(node, 'nobody', 'x', { retries: 10, deadline: 100, backoff: { initialMs: 60, factor: 1, jitter: 'none' }, onError: 'ignore' }),
    );
    await clock.advance(59);
    expect(w.status).toBe('pending');
    await clock.advance(1); // attempt 2 at 60; a third at 120 would pass the deadline
    expect(w.value).toMatchObject({ ok: false, reason: 'noproc', attempts: 2 });
    expect(seen).toHaveLength(1);
    expect(node.internals().timers).toBe(timers);
  });

  it("the deadline bounds a 'handled' attempt's timeout", async () => {
    const { node, clock } = clocked();
    const r = receiver(node);
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', timeout: 5000, deadline: 100, retries: 3, onError: 'ignore' }));
    await clock.advance(99);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    expect(w.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    r.release();
    await node.idle();
    expect(r.seen).toEqual([]);
  });
});

// ---- the outcome ------------------------------------------------------------------------------

describe('sendSupervised: the outcome and the message id', () => {
  it('the default id is <node>-<creation>-<seq>, a counter', async () => {
    const { node } = clocked(0.5, { name: 'idnode' });
    const r = receiver(node);
    const a = await sendSupervised(node, r.pid, 'a');
    const b = await sendSupervised(node, r.pid, 'b');
    const pattern = new RegExp(`^idnode-${node.creation}-(\\d+)$`);
    expect(a.id).toMatch(pattern);
    expect(b.id).toMatch(pattern);
    expect(Number(pattern.exec(b.id)![1])).toBe(Number(pattern.exec(a.id)![1]) + 1);
  });

  it('the receiver sees the id as ctx.messageId (and undefined for a raw send)', async () => {
    const { node } = clocked();
    const r = receiver(node);
    node.send(r.pid, 'raw');
    const enqueued = await sendSupervised(node, r.pid, 'enqueued');
    const handled = await sendSupervised(node, r.pid, 'handled', { ack: 'handled' });
    await node.idle();
    expect(r.seen).toEqual([
      { message: 'raw', id: undefined },
      { message: 'enqueued', id: enqueued.id },
      { message: 'handled', id: handled.id },
    ]);
    expect(enqueued.id).not.toBe(handled.id);
  });

  it('a custom id is used in the outcome and seen by the receiver', async () => {
    const { node } = clocked();
    const r = receiver(node);
    const outcome = await sendSupervised(node, r.pid, 'charge', { id: 'order-42', ack: 'handled' });
    expect(outcome).toEqual({ ok: true, id: 'order-42', attempts: 1 });
    expect(r.seen).toEqual([{ message: 'charge', id: 'order-42' }]);
    const lost = await sendSupervised(node, deadPid(node), 'charge', { id: 'order-43', onError: 'ignore' });
    expect(lost.id).toBe('order-43');
  });

  it('a failed outcome reports attempts, the first error and the last error', async () => {
    const { node, clock } = clocked();
    const first = receiver(node, { name: 'svc' });
    await first.hold();
    const w = watch(sendSupervised(node, 'svc', 'job', { ack: 'handled', retries: 1, onError: 'ignore' }));
    await node.settle();
    node.exit(first.pid, 'kill'); // attempt 1: process_down ('killed')
    await clock.advance(5); // attempt 2: the name is gone: noproc
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'noproc', attempts: 2, firstError: 'killed', lastError: 'noproc' });
  });
});

describe('sendSupervised: onError', () => {
  it("'raise' rejects with ERR_DELIVERY carrying the outcome", async () => {
    const { node } = clocked();
    const pid = deadPid(node);
    const e = await failure(() => sendSupervised(node, pid, 'x', { onError: 'raise', id: 'm-1' }));
    expectKeelError(e, 'ERR_DELIVERY', 'noproc');
    expect((e as { outcome?: unknown }).outcome).toEqual({ ok: false, id: 'm-1', reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
  });

  it("'raise' resolves normally on success", async () => {
    const { node } = clocked();
    const r = receiver(node);
    expect(await sendSupervised(node, r.pid, 'x', { onError: 'raise' })).toMatchObject({ ok: true });
  });

  it.each([['log' as const], [undefined]])("onError %s (the default is 'log') calls the logger on final failure", async (onError) => {
    const logger = fakeLogger();
    const node = track({ logger });
    const outcome = await sendSupervised(node, deadPid(node), 'x', onError === undefined ? {} : { onError });
    expect(outcome.ok).toBe(false);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(String(logger.warn.mock.calls[0]![0])).toContain(outcome.id);
    expect(String(logger.warn.mock.calls[0]![0])).toContain('noproc');
  });

  it("'log' does not log a success; 'ignore' logs nothing on failure", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const r = receiver(node);
    expect((await sendSupervised(node, r.pid, 'x', { onError: 'log' })).ok).toBe(true);
    expect((await sendSupervised(node, deadPid(node), 'x', { onError: 'ignore' })).ok).toBe(false);
    expect(logger.warn).not.toHaveBeenCalled();
    expect(logger.error).not.toHaveBeenCalled();
  });

  it("'dead_letter' with the queue unavailable (services: false) says so in the outcome", async () => {
    const node = track({ services: false });
    const outcome = failed(await sendSupervised(node, deadPid(node), 'x', { onError: 'dead_letter', metadata: { tenant: 't1' } }));
    expect(outcome).toMatchObject({ reason: 'noproc', attempts: 1, deadLetterUnavailable: true });
    expect(outcome.deadLetterId).toBeUndefined();
  });

  it("'dead_letter' after the retries ran out also says so", async () => {
    const { node, clock } = clocked(0.5, { services: false });
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 1, onError: 'dead_letter' }));
    await clock.advance(5);
    expect(w.value).toMatchObject({ ok: false, reason: 'noproc', attempts: 2, deadLetterUnavailable: true });
  });

  it("'dead_letter' with the queue available: deadLetterId names an entry with the message, recipient, reason and the send's metadata plus id, attempts, lastError", async () => {
    const { node, clock } = clocked();
    const message = { order: 7, lines: ['a', 'b'] };
    const w = watch(sendSupervised(node, 'billing', message, { retries: 1, onError: 'dead_letter', id: 'order-7', metadata: { tenant: 't1', trace: 'abc' } }));
    await clock.advance(5);
    const outcome = failed(w.value);
    expect(outcome).toEqual({
      ok: false,
      id: 'order-7',
      reason: 'noproc',
      attempts: 2,
      firstError: 'noproc',
      lastError: 'noproc',
      deadLetterId: '1', // the node's first dead letter
    });
    const entry = ok(await node.deadLetters.get(outcome.deadLetterId!));
    expect(entry).toMatchObject({ id: outcome.deadLetterId, recipient: 'billing', message, reason: 'noproc', lastError: 'noproc', status: 'pending' });
    // exactly these keys: an 'enqueued' send carries no ack or timeout
    expect(entry?.metadata).toEqual({ tenant: 't1', trace: 'abc', id: 'order-7', attempts: 2, lastError: 'noproc' });
  });

  it.each([
    [
      'crashed while handling it (default timeout)',
      {},
      (node: KeelNode) => node.spawn(crasher(new Error('poison'))),
      { reason: 'process_down', lastError: 'Error: poison', timeout: 5000, after: 0 },
    ],
    [
      'not handled within its timeout',
      { timeout: 250 },
      (node: KeelNode) => {
        const r = receiver(node);
        void r.hold();
        return r.pid;
      },
      { reason: 'timeout', lastError: 'not handled within 250 ms', timeout: 250, after: 250 },
    ],
  ] as const)("'dead_letter' of an ack 'handled' send (%s): the metadata also says ack 'handled' and its timeout", async (_what, extra, spawn, expected) => {
    const { node, clock } = clocked();
    const pid = spawn(node);
    await node.settle();
    const w = watch(sendSupervised(node, pid, { job: 1 }, { ack: 'handled', onError: 'dead_letter', metadata: { tenant: 't2' }, ...extra }));
    await clock.advance(expected.after); // not as far as the queue's own first retry of the entry
    const outcome = failed(w.value);
    expect(outcome).toMatchObject({ reason: expected.reason, attempts: 1, deadLetterId: '1' }); // the node's first dead letter
    expect(outcome.deadLetterUnavailable).toBeUndefined();
    const entry = ok(await node.deadLetters.get(outcome.deadLetterId!));
    expect(entry).toMatchObject({ recipient: `<${node.name}.${pid.id}.${pid.creation}>`, message: { job: 1 }, reason: expected.reason, status: 'pending' });
    expect(entry?.metadata).toEqual({ tenant: 't2', id: outcome.id, attempts: 1, lastError: expected.lastError, ack: 'handled', timeout: expected.timeout });
  });

  it("'dead_letter' of a send whose receiver crashed with a thrown value that cannot be stored (an object holding a function): the message is dead-lettered, its lastError the value's text; the whole entry was refused for that diagnostic, the message lost to the queue", async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { random: () => 0.5, logger });
    const pid = node.spawn(crasher({ code: 'E_RATE', retryAfter: () => 5 }));
    await node.settle();
    const outcome = failed(await sendSupervised(node, pid, { job: 2 }, { ack: 'handled', onError: 'dead_letter' }));
    expect(outcome).toMatchObject({ reason: 'process_down', attempts: 1, deadLetterId: '1' });
    expect(outcome.deadLetterUnavailable).toBeUndefined();
    const entry = ok(await node.deadLetters.get('1'));
    const text = "{ code: 'E_RATE', retryAfter: [Function: retryAfter] }";
    expect(entry).toMatchObject({ message: { job: 2 }, reason: 'process_down', lastError: text, status: 'pending' });
    expect(entry?.metadata).toEqual({ id: outcome.id, attempts: 1, lastError: text, ack: 'handled', timeout: 5000 });
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 1, added: 1, refused: 0 });
    expect(logger.error.mock.calls.filter(([line]) => String(line).includes('dead letter queue refused'))).toEqual([]);
  });

  it("'dead_letter' of a send whose receiver crashed with an Error whose message throws when read: the message is dead-lettered, its lastError saying the error could not be read; the entry was refused for that diagnostic", async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { random: () => 0.5, logger });
    const hostile = new Error('x');
    Object.defineProperty(hostile, 'message', {
      get() {
        throw new Error('no message for you');
      },
    });
    const pid = node.spawn(crasher(hostile));
    await node.settle();
    const outcome = failed(await sendSupervised(node, pid, { job: 3 }, { ack: 'handled', onError: 'dead_letter' }));
    expect(outcome).toMatchObject({ reason: 'process_down', attempts: 1, deadLetterId: '1' });
    const entry = ok(await node.deadLetters.get('1'));
    expect(entry).toMatchObject({ message: { job: 3 }, lastError: 'a value that cannot be inspected', status: 'pending' });
    expect(ok(await node.deadLetters.stats())).toMatchObject({ pending: 1, added: 1, refused: 0 });
    expect(logger.error.mock.calls.filter(([line]) => String(line).includes('dead letter queue refused'))).toEqual([]);
  });

  it.each([
    ['the message holds a function', { order: { onDone: () => undefined } }, {}, 'message.order.onDone'],
    ['the metadata holds a function', { order: 1 }, { callback: () => undefined }, 'metadata.callback'],
  ])("'dead_letter' when the queue refuses the entry (%s): deadLetterUnavailable, the send resolves, the logger gets an error", async (_what, message, metadata, path) => {
    const logger = fakeLogger();
    const node = track({ logger });
    const pid = deadPid(node);
    const settled = await sendSupervised(node, pid, message, { onError: 'dead_letter', metadata }).then(
      (outcome) => ({ outcome }),
      (error: unknown) => ({ error }),
    );
    expect(settled).toEqual({
      outcome: { ok: false, id: `${node.name}-${node.creation}-1`, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc', deadLetterUnavailable: true },
    });
    const outcome = failed((settled as { outcome: SendOutcome }).outcome);
    expect(outcome.deadLetterId).toBeUndefined();
    expect(logger.error).toHaveBeenCalledTimes(1);
    const [text, error] = logger.error.mock.calls[0]!;
    expect(String(text)).toContain(outcome.id);
    expectKeelError(error, 'ERR_NOT_SERIALIZABLE', path);
    expect((error as { path?: unknown }).path).toBe(path);
    expect(ok(await node.deadLetters.stats())).toMatchObject({ refused: 1 });
    expect(ok(await node.deadLetters.list())).toMatchObject({ entries: [] });
  });
});

// ---- telemetry --------------------------------------------------------------------------------

describe('sendSupervised: telemetry', () => {
  it('a success is a span start then stop, with the outcome and the metadata', async () => {
    const { node } = clocked();
    const r = receiver(node);
    const captured = captureEvents(node, ['keel.supervised_send.']);
    const outcome = await sendSupervised(node, r.pid, 'x', { metadata: { tenant: 't1' } });
    expect(captured.events.map((e) => e.event)).toEqual(['keel.supervised_send.send.start', 'keel.supervised_send.send.stop']);
    expect(captured.events[0]!.metadata).toMatchObject({ tenant: 't1' });
    expect(captured.events[1]!.metadata).toMatchObject({ tenant: 't1', outcome });
  });

  it('a failed outcome is a stop (not an exception), with the retries in between', async () => {
    const { node, clock } = clocked();
    const captured = captureEvents(node, ['keel.supervised_send.']);
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 1, onError: 'ignore', metadata: { tenant: 't2' } }));
    await clock.advance(5);
    expect(w.status).toBe('resolved');
    expect(captured.events.map((e) => e.event)).toEqual([
      'keel.supervised_send.send.start',
      'keel.supervised_send.retry',
      'keel.supervised_send.send.stop',
    ]);
    expect(captured.events[1]!.measurements).toMatchObject({ attempt: 2, delayMs: 5 });
    expect(captured.events[1]!.metadata).toMatchObject({ tenant: 't2' });
    expect(captured.events[2]!.metadata).toMatchObject({ outcome: w.value });
    expect(failed(w.value).reason).toBe('noproc');
  });

  it("the events' own keys (id, to, reason, ack, outcome) win over same-named keys of the send's metadata, as in its dead letter: a metadata id replaced the message id of the retry event", async () => {
    const { node, clock } = clocked();
    const captured = captureEvents(node, ['keel.supervised_send.']);
    const metadata = { id: 'order-7', to: 'elsewhere', reason: 'mine', ack: 'never', outcome: 'mine', tenant: 't3' };
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 1, onError: 'ignore', metadata, id: 'msg-1' }));
    await clock.advance(5);
    expect(w.status).toBe('resolved');
    const [start, retry, stop] = captured.events;
    expect(start!.metadata).toEqual({ ...metadata, to: 'nobody', ack: 'enqueued' });
    expect(retry!.metadata).toEqual({ ...metadata, id: 'msg-1', to: 'nobody', reason: 'noproc' });
    expect(stop!.metadata).toEqual({ ...metadata, to: 'nobody', ack: 'enqueued', outcome: w.value });
  });

  it("names a typed name's target by its text in the span and retry events, as keel.message.dropped does", async () => {
    const { node, clock } = clocked();
    const captured = captureEvents(node, ['keel.supervised_send.']);
    const w = watch(sendSupervised(node, Name.of<string>('nobody'), 'x', { retries: 1, onError: 'ignore' }));
    await clock.advance(5);
    expect(w.status).toBe('resolved');
    expect(captured.events.map((e) => [e.event, e.metadata.to])).toEqual([
      ['keel.supervised_send.send.start', 'nobody'],
      ['keel.supervised_send.retry', 'nobody'],
      ['keel.supervised_send.send.stop', 'nobody'],
    ]);
  });

  it("a throw ('raise') is a span start then exception", async () => {
    const { node } = clocked();
    const captured = captureEvents(node, ['keel.supervised_send.']);
    const e = await failure(() => sendSupervised(node, deadPid(node), 'x', { onError: 'raise' }));
    expect(isKeelError(e, 'ERR_DELIVERY')).toBe(true);
    expect(captured.events.map((x) => x.event)).toEqual(['keel.supervised_send.send.start', 'keel.supervised_send.send.exception']);
    expect(captured.events[1]!.metadata.error).toBe(e);
  });

  it('a deadlock (a throw) is an exception too', async () => {
    const { node } = clocked();
    const captured = captureEvents(node, ['keel.supervised_send.send.']);
    const p = probe(node);
    const pid = node.spawn((ctx) => (m: unknown) => {
      if (m === 'go') void sendSupervised(ctx, ctx.self, 'ping', { ack: 'handled' }).catch((error: unknown) => node.send(p, { error }));
    });
    node.send(pid, 'go');
    const report = (await p.receive()) as { error: unknown };
    expectKeelError(report.error, 'ERR_DEADLOCK');
    expect(captured.events.map((x) => x.event)).toEqual(['keel.supervised_send.send.start', 'keel.supervised_send.send.exception']);
  });
});

// ---- bad arguments ----------------------------------------------------------------------------

describe('sendSupervised: bad arguments', () => {
  it.each<[string, unknown]>([
    ['options', 'fast'],
    ['options.ack', { ack: 'delivered' }],
    ['options.timeout', { timeout: -1 }],
    ['options.timeout', { timeout: Number.NaN }],
    ['options.timeout', { timeout: '100' }],
    ['options.deadline', { deadline: -5 }],
    ['options.deadline', { deadline: 'soon' }],
    ['options.retries', { retries: -1 }],
    ['options.retries', { retries: 1.5 }],
    ['options.retries', { retries: Infinity }],
    ['options.backoff', { backoff: 'exponential' }],
    ['options.backoff.initialMs', { backoff: { initialMs: -1 } }],
    ['options.backoff.factor', { backoff: { factor: 0.5 } }],
    ['options.backoff.maxMs', { backoff: { maxMs: Number.NaN } }],
    ['options.backoff.jitter', { backoff: { jitter: 'half' } }],
    ['options.onError', { onError: 'explode' }],
    ['options.metadata', { metadata: 'tag' }],
    ['options.id', { id: '' }],
    ['options.id', { id: 42 }],
    ['options.retryOnCrash', { retryOnCrash: 'yes' }],
    ['options.signal', { signal: { aborted: false } }],
  ])('%s = %j is ERR_INVALID_ARGUMENT and nothing is sent', async (argument, options) => {
    const { node } = clocked();
    const r = receiver(node);
    const e = await failure(() => sendSupervised(node, r.pid, 'x', options as SendOptions));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['an empty name', ''],
    ['a number', 42],
    ['null', null],
    ['undefined', undefined],
    ['a plain object', { id: 1 }],
  ])('a non-target `to` (%s) is ERR_INVALID_ARGUMENT', async (_what, to) => {
    const { node } = clocked();
    const e = await failure(() => sendSupervised(node, to as Pid, 'x'));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'to');
  });
});

// ---- node shutdown ----------------------------------------------------------------------------

describe('sendSupervised: node shutdown', () => {
  it('settles a send still waiting on a retry with noproc (DESIGN: shutdown settles every pending send)', async () => {
    const { node } = clocked();
    const w = watch(sendSupervised(node, 'nobody', 'x', { retries: 5, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    await node.shutdown({ timeoutMs: 1000 });
    await node.idle();
    expect(w.status).toBe('resolved');
    expect(w.value).toMatchObject({ ok: false, reason: 'noproc' });
  });

  it("a send in flight (ack 'handled') when the node shuts down is noproc after its one attempt, with the receiver's exit as its error", async () => {
    const { node } = clocked();
    const r = receiver(node);
    await r.hold();
    const w = watch(sendSupervised(node, r.pid, 'job', { ack: 'handled', retries: 3, onError: 'ignore' }));
    await node.settle();
    expect(w.status).toBe('pending');
    await node.shutdown({ timeoutMs: 1000 });
    expect(w.value).toEqual({ ok: false, id: w.value?.id, reason: 'noproc', attempts: 1, firstError: 'shutdown', lastError: 'shutdown' });
    expect(r.seen).toEqual([]);
  });

  it("a user's sends waiting at the shutdown, with their own signal, keep their policy: logged, or dead-lettered (the queue closes last)", async () => {
    // control for the agent scheduler's deliveries, withdrawn at a shutdown: no user's signal is one of them
    const logger = fakeLogger();
    const { node, clock } = clockedNode(track, { random: () => 0.5, logger });
    const r = receiver(node);
    await r.hold();
    const p = probe(node);
    const signal = new AbortController().signal;
    const fromNode = watch(sendSupervised(node, 'later', 'node', { retries: 5, signal, onError: 'dead_letter' }));
    const fromProcess = watch(sendSupervised(p.ctx, 'later', 'process', { retries: 5, signal, onError: 'log' }));
    const handled = watch(sendSupervised(node, r.pid, 'handled', { ack: 'handled', retries: 2, signal, onError: 'log' }));
    await clock.advance(2); // two wait for their first retry, one waits in the held mailbox
    await node.shutdown({ timeoutMs: 1000 });
    await node.idle();
    expect(fromNode.value).toEqual({ ok: false, id: fromNode.value!.id, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc', deadLetterId: expect.any(String) });
    // its process is ended by the shutdown: its sender has exited
    expect(fromProcess.value).toEqual({ ok: false, id: fromProcess.value!.id, reason: 'aborted', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
    expect(handled.value).toEqual({ ok: false, id: handled.value!.id, reason: 'noproc', attempts: 1, firstError: 'shutdown', lastError: 'shutdown' });
    expect(logger.warn.mock.calls.map((c) => c[0]).sort()).toEqual([
      `supervised send ${fromProcess.value!.id} to 'later' failed after 1 attempt(s): aborted`,
      `supervised send ${handled.value!.id} to ${String(r.pid)} failed after 1 attempt(s): noproc`,
    ].sort());
  });

  it('a send made after the node shut down is noproc after one attempt, with noproc as its error', async () => {
    const { node } = clocked();
    await node.shutdown({ timeoutMs: 1000 });
    const outcomes = await Promise.all([
      sendSupervised(node, 'nobody', 'x', { retries: 3, onError: 'ignore' }),
      sendSupervised(node, 'nobody', 'x', { retries: 3, onError: 'ignore', ack: 'handled' }),
    ]);
    for (const o of outcomes) expect(o).toEqual({ ok: false, id: o.id, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc' });
  });
});

describe('sendSupervised: every message sent is accounted for exactly once', () => {
  it('a flood of mixed sends (ack, onError) against a bounded mailbox whose receiver is killed mid-flood and replaced: handled + dead-lettered + reported (a failed outcome, or named by the drop event of its receiver\'s death) = sent, no message in two classes', async () => {
    const { node, clock } = clocked();
    /** The ids a receiver took (a message whose handler a kill cut short was taken: the kill is the receiver's exit). */
    const handled: string[] = [];
    let gate = deferred();
    const spawnSink = (): Pid =>
      node.spawn(
        (ctx) => async () => {
          handled.push(ctx.messageId!);
          await gate.promise;
        },
        { name: 'sink', mailbox: { capacity: 8, overflow: 'reject' } },
      );
    const first = spawnSink();
    const deaths = captureEvents(node, ['keel.message.dropped']);
    // 'enqueued' and 'handled', each with 'dead_letter' (the queue redelivers to the next receiver) and without
    const kinds: SendOptions[] = [
      { onError: 'dead_letter' },
      { ack: 'handled', timeout: Infinity, retries: 2, onError: 'dead_letter' },
      { onError: 'ignore' },
      { ack: 'handled', timeout: Infinity, onError: 'ignore' },
    ];
    const LOSSY = 2; // acknowledged at 'enqueued', no dead letter: its receiver's death names it, and that is its end
    const N = 120;
    const outcomes: Promise<SendOutcome>[] = [];
    for (let i = 0; i < N; i++) {
      outcomes.push(sendSupervised(node, 'sink', i, kinds[i % kinds.length]!));
      if (i === 60) {
        await node.settle();
        node.exit(first, 'kill'); // messages queued (and one started) die with it
        await node.settle();
        gate = deferred();
        spawnSink();
      }
    }
    gate.resolve();
    let settled = false;
    const all = Promise.all(outcomes).then((o) => ((settled = true), o));
    while (!settled) await advance(node, clock, 1000);
    const results = await all;
    await advance(node, clock, 60_000); // the queue's redeliveries of what the first receiver's death dead-lettered
    await node.idle();
    const kindOf = new Map(results.map((o, i) => [o.id, i % kinds.length]));
    const deadLettered = ok(await node.deadLetters.list({ limit: 1000 })).entries.map((e) => e.metadata.id as string);
    const named = deaths.events.filter((e) => e.metadata.reason === 'receiver_exited').flatMap((e) => e.metadata.ids as string[]);
    const reported = [
      ...results.filter((o) => !o.ok && o.deadLetterId === undefined).map((o) => o.id),
      ...named.filter((id) => kindOf.get(id) === LOSSY),
    ];
    const classes = new Map<string, string[]>();
    for (const [cls, ids] of [['handled', handled], ['dead-lettered', deadLettered], ['reported', reported]] as const) {
      for (const id of ids) classes.set(id, [...(classes.get(id) ?? []), cls]);
    }
    expect(named.length).toBeGreaterThan(0);
    expect(results.filter((o) => !o.ok).length).toBeGreaterThan(0);
    expect(results.map((o) => o.id).filter((id) => classes.get(id)?.length !== 1).map((id) => [id, classes.get(id)])).toEqual([]);
    expect(handled.length + deadLettered.length + reported.length).toBe(N);
  });
});

describe('sendSupervised given options whose getters answer differently when read again', () => {
  /** `key`'s getter answers `checked` at its first `n` reads (those its checks made) and `later` after them. */
  const changing = (key: string, checked: unknown, later: unknown, n: number): SendOptions => {
    let reads = 0;
    return Object.defineProperty({ onError: 'ignore' }, key, { enumerable: true, get: () => (reads++ < n ? checked : later) }) as SendOptions;
  };

  it('reads each option once: the send uses what was checked, an id and a signal included; an id read again gave the send (and the receiver) a number for its message id, a signal read again a non-signal that threw its raw TypeError', async () => {
    const node = track();
    const r = receiver(node);
    const byId = await sendSupervised(node, r.pid, 'x', changing('id', 'checked-id', 42, 3));
    expect(byId).toEqual({ ok: true, id: 'checked-id', attempts: 1 });
    const ac = new AbortController();
    const bySignal = await sendSupervised(node, r.pid, 'y', changing('signal', ac.signal, Object.create(AbortSignal.prototype), 2));
    expect(bySignal).toEqual({ ok: true, id: bySignal.id, attempts: 1 });
    const byAck = await sendSupervised(node, r.pid, 'z', changing('ack', 'handled', 'bogus', 1));
    expect(byAck).toEqual({ ok: true, id: byAck.id, attempts: 1 });
    await node.idle();
    expect(r.seen).toEqual([{ message: 'x', id: 'checked-id' }, { message: 'y', id: bySignal.id }, { message: 'z', id: byAck.id }]);
  });
});

describe('sendSupervised given a from or a signal that cannot be inspected', () => {
  // the same defect as GenServer.call's (fuzz seed 1660631497, path 54): `from instanceof Proc` and
  // `signal instanceof AbortSignal` threw a raw TypeError on a proxy
  it('throws ERR_INVALID_ARGUMENT, and sends nothing', async () => {
    const node = track();
    const r = receiver(node);
    for (const [, make] of UNREADABLE) {
      expectKeelError(await failure(() => sendSupervised(make() as never, r.pid, 'x')), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(await failure(() => sendSupervised(node, r.pid, 'x', { signal: make() as never })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
      expectKeelError(await failure(() => node.deadLetters.retry([], { signal: make() as never })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
    }
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it('refuses an object made from AbortSignal.prototype (an instance the engine takes for no signal) as a signal, and sends nothing', async () => {
    const node = track();
    const r = receiver(node);
    const fake = Object.create(AbortSignal.prototype) as AbortSignal;
    expectKeelError(await failure(() => sendSupervised(node, r.pid, 'x', { signal: fake })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
    expectKeelError(await failure(() => node.deadLetters.retry([], { signal: fake })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
    await node.idle();
    expect(r.seen).toEqual([]);
  });
});

describe('sendSupervised to a pid-shaped target with no string form of its own', () => {
  // the same defect as GenServer.call's (fuzz seed -140833145, path 476): String(to) threw in the
  // failure's log line and in ERR_DELIVERY, so the send rejected with a raw TypeError
  it("resolves with noproc (onError 'log'), or rejects with ERR_DELIVERY naming <node.id> (onError 'raise')", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const ghost = Object.assign(Object.create(null) as object, { node: 'elsewhere', creation: 1, id: 7 });
    expect(await sendSupervised(node, ghost as never, 'm')).toMatchObject({ ok: false, reason: 'noproc' });
    expect(logger.warn.mock.calls.map((c) => c[0])).toEqual([expect.stringContaining('to <elsewhere.7> failed after 1 attempt(s): noproc')]);
    expectKeelError(await failure(() => sendSupervised(node, ghost as never, 'm', { onError: 'raise' })), 'ERR_DELIVERY', 'delivery to <elsewhere.7> failed');
  });
});

describe('sendSupervised given metadata that cannot be read', () => {
  // found by test/reliability/fuzz.delivery.test.ts (fast-check seed -1869155744, path 190): a revoked
  // proxy as the metadata of a send with retries threw TypeError: Cannot perform 'ownKeys' out of the
  // send, where its first failure spread the metadata into the retry event; a getter that throws did
  // the same, and from a retry's timer it left the send pending for good
  it('throws ERR_INVALID_ARGUMENT at the send, and nothing is sent', async () => {
    const { node } = clockedNode(track);
    const r = receiver(node, { name: 'inbox' });
    const getter = Object.defineProperty({}, 'tag', { enumerable: true, get: () => { throw new Error('tag getter'); } });
    for (const [, make] of UNREADABLE) {
      expectKeelError(await failure(() => sendSupervised(node, 'nobody', 'm', { retries: 2, metadata: make() as never })), 'ERR_INVALID_ARGUMENT', '`options.metadata`', 'got a proxy');
    }
    expectKeelError(await failure(() => sendSupervised(node, 'inbox', 'm', { metadata: getter as never })), 'ERR_INVALID_ARGUMENT', '`options.metadata`', 'reading one threw Error: tag getter');
    await node.idle();
    expect(r.seen).toEqual([]);
  });

  it('is copied at the send: what a later dead letter keeps is the metadata as it was then', async () => {
    const { node, clock } = clockedNode(track);
    const metadata: Record<string, unknown> = { tag: 'before' };
    const sent = sendSupervised(node, 'nobody', 'm', { retries: 1, backoff: { initialMs: 10, jitter: 'none' }, onError: 'dead_letter', metadata });
    metadata.tag = 'after';
    await clock.advance(10);
    const outcome = await sent;
    const entry = ok(await node.deadLetters.get((outcome as { deadLetterId: string }).deadLetterId));
    expect(entry?.metadata).toMatchObject({ tag: 'before' });
  });
});

describe('sendSupervised: aborted from inside its own enqueue', () => {
  // with longMailbox.above 1, the enqueue into an empty mailbox runs the long_mailbox handlers
  // before it returns: one of them aborts the send's signal, or kills its sender
  it("a message enqueued is the send's success, even when the signal aborts during that enqueue: it was reported aborted (and dead-lettered with onError 'dead_letter') while the receiver handled it", async () => {
    const node = track({ longMailbox: { above: 1, below: 0 } });
    const r = receiver(node);
    await node.idle();
    const controller = new AbortController();
    node.telemetry.attach('abort-in-enqueue', ['keel.process.long_mailbox'], () => controller.abort('stop'));
    const outcome = await sendSupervised(node, r.pid, 'pay', { signal: controller.signal, onError: 'dead_letter' });
    await node.idle();
    expect(r.seen.map((s) => s.message)).toEqual(['pay']);
    expect(outcome).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect((await node.deadLetters.stats()).added).toBe(0);
  });

  it('so is one whose sender is killed during that enqueue (it was aborted too, and dead-lettered)', async () => {
    const node = track({ longMailbox: { above: 1, below: 0 } });
    const r = receiver(node);
    const { pid: sender, ctx } = await spawnWithContext(node);
    await node.idle();
    node.telemetry.attach('kill-in-enqueue', ['keel.process.long_mailbox'], () => node.exit(sender, 'kill'));
    const outcome = await sendSupervised(ctx, r.pid, 'pay', { signal: new AbortController().signal, onError: 'dead_letter' });
    await node.idle();
    expect(node.isAlive(sender)).toBe(false);
    expect(r.seen.map((x) => x.message)).toEqual(['pay']);
    expect(outcome).toEqual({ ok: true, id: outcome.id, attempts: 1 });
    expect((await node.deadLetters.stats()).added).toBe(0);
  });
});
