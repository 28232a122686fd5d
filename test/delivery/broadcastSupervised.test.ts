import { describe, expect, it } from 'vitest';
import {
  broadcastSupervised,
  type BroadcastOptions,
  type BroadcastOutcome,
  type BroadcastStrategy,
  Pid,
  sendSupervised,
  type Target,
} from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { clockedNode, deadPid, type Deferred, deferred, expectKeelError, failure, fakeLogger, ok, type Receiver, receiver, UNREADABLE, useNodes, watch } from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** A node on a TestClock with `random` fixed at 0.5, so that every backoff delay is known. */
function clocked(): { node: KeelNode; clock: TestClock } {
  return clockedNode(track, { random: () => 0.5 });
}

function messagesOf(r: Receiver): unknown[] {
  return r.seen.map((s) => s.message);
}

function reasons(outcome: BroadcastOutcome): (string | true)[] {
  return outcome.results.map((r) => (r.outcome.ok ? true : r.outcome.reason));
}

/** One shape for every strategy: exactly these keys, `reason` only when not ok. */
function expectShape(outcome: BroadcastOutcome, targets: readonly Target[]): void {
  expect(Object.keys(outcome).sort()).toEqual(outcome.ok ? ['delivered', 'failed', 'ok', 'results'] : ['delivered', 'failed', 'ok', 'reason', 'results']);
  expect(outcome.results).toHaveLength(targets.length);
  outcome.results.forEach((r, i) => {
    expect(Object.keys(r).sort()).toEqual(['outcome', 'target']);
    expect(r.target).toBe(targets[i]);
    const keys = Object.keys(r.outcome).sort();
    expect(keys).toEqual(r.outcome.ok ? ['attempts', 'id', 'ok'] : ['attempts', 'firstError', 'id', 'lastError', 'ok', 'reason']);
  });
  const delivered = outcome.results.filter((r) => r.outcome.ok).length;
  expect(outcome.delivered).toBe(delivered);
  expect(outcome.failed).toBe(targets.length - delivered);
}

// ---- strategies -------------------------------------------------------------------------------

describe('broadcastSupervised: best_effort (the default)', () => {
  it('sends to every target; ok is true even with failures', async () => {
    const node = track();
    const a = receiver(node);
    const b = receiver(node);
    const targets: Target[] = [a.pid, deadPid(node), 'nobody', b.pid];
    const r = await broadcastSupervised(node, targets, 'news', { onError: 'ignore' });
    expect(r.ok).toBe(true);
    expect(r.reason).toBeUndefined();
    expect(reasons(r)).toEqual([true, 'noproc', 'noproc', true]);
    expect(r).toMatchObject({ delivered: 2, failed: 2 });
    expectShape(r, targets);
    await node.idle();
    expect(a.seen).toEqual([{ message: 'news', id: r.results[0]!.outcome.id }]);
    expect(messagesOf(b)).toEqual(['news']);
  });

  it('is ok even when every target failed', async () => {
    const node = track();
    const targets: Target[] = [deadPid(node), 'nobody'];
    const r = await broadcastSupervised(node, targets, 'news', { onError: 'ignore' });
    expect(r).toMatchObject({ ok: true, delivered: 0, failed: 2 });
    expect(r.reason).toBeUndefined();
    expectShape(r, targets);
  });

  it('gives each target its own message id', async () => {
    const node = track();
    const a = receiver(node);
    const b = receiver(node);
    const r = await broadcastSupervised(node, [a.pid, b.pid], 'news', { strategy: 'best_effort' });
    await node.idle();
    expect(r.results[0]!.outcome.id).not.toBe(r.results[1]!.outcome.id);
    expect(a.seen[0]!.id).toBe(r.results[0]!.outcome.id);
    expect(b.seen[0]!.id).toBe(r.results[1]!.outcome.id);
  });
});

describe('broadcastSupervised: at_least_one', () => {
  it('is ok when at least one target got it', async () => {
    const node = track();
    const a = receiver(node);
    const targets = [deadPid(node), a.pid];
    const r = await broadcastSupervised(node, targets, 'news', { strategy: 'at_least_one', onError: 'ignore' });
    expect(r).toMatchObject({ ok: true, delivered: 1, failed: 1 });
    expect(r.reason).toBeUndefined();
    expectShape(r, targets);
  });

  it('is all_failed when nobody got it', async () => {
    const node = track();
    const targets: Target[] = [deadPid(node), 'nobody'];
    const r = await broadcastSupervised(node, targets, 'news', { strategy: 'at_least_one', onError: 'ignore' });
    expect(r).toMatchObject({ ok: false, reason: 'all_failed', delivered: 0, failed: 2 });
    expectShape(r, targets);
  });
});

describe('broadcastSupervised: { quorum: n }', () => {
  // 2 of 3 targets reached (one is dead), against a quorum of 2, then 3
  it.each<[string, number, { ok: boolean; reason?: string }]>([
    ['is ok when at least n targets got it', 2, { ok: true }],
    ['is quorum_not_reached below n', 3, { ok: false, reason: 'quorum_not_reached' }],
  ])('%s', async (_behaviour, quorum, outcome) => {
    const node = track();
    const a = receiver(node);
    const b = receiver(node);
    const targets = [a.pid, deadPid(node), b.pid];
    const r = await broadcastSupervised(node, targets, 'vote', { strategy: { quorum }, onError: 'ignore' });
    expect(r).toMatchObject({ ...outcome, delivered: 2, failed: 1 });
    expectShape(r, targets);
    await node.idle();
    expect(messagesOf(a)).toEqual(['vote']); // not atomic: those reached keep it, quorum or not
  });

  it("counts deliveries per ack: with ack 'handled' a crash while handling is not delivered", async () => {
    const node = track();
    const a = receiver(node);
    const crashy = node.spawn(() => (): never => {
      throw new Error('poison');
    });
    const targets = [a.pid, crashy];
    const r = await broadcastSupervised(node, targets, 'vote', { strategy: { quorum: 2 }, ack: 'handled', onError: 'ignore' });
    expect(r).toMatchObject({ ok: false, reason: 'quorum_not_reached', delivered: 1, failed: 1 });
    expect(reasons(r)).toEqual([true, 'process_down']);
  });
});

describe('broadcastSupervised: all_or_nothing', () => {
  it('delivers to every target in one synchronous step', async () => {
    const node = track();
    const rs = [receiver(node), receiver(node), receiver(node)];
    await node.idle();
    const targets = rs.map((r) => r.pid);
    const w = watch(broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing' }));
    // before anything else runs, every mailbox holds its copy
    expect(rs.map((r) => node.info(r.pid)?.mailboxLength)).toEqual([1, 1, 1]);
    await node.idle();
    expect(w.status).toBe('resolved');
    const r = w.value!;
    expect(r).toMatchObject({ ok: true, delivered: 3, failed: 0 });
    expectShape(r, targets);
    rs.forEach((x, i) => expect(x.seen).toEqual([{ message: 'commit', id: r.results[i]!.outcome.id }]));
  });

  it.each(['reject', 'drop_newest', 'drop_oldest'] as const)(
    'one target with a full bounded mailbox (%s): nobody gets it, untouched targets are aborted',
    async (overflow) => {
      const node = track();
      const a = receiver(node);
      const full = receiver(node, { mailbox: { capacity: 1, overflow } });
      const c = receiver(node);
      await full.hold();
      node.send(full.pid, 'fill');
      const targets = [a.pid, full.pid, c.pid];
      const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing' });
      expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 3 });
      expect(reasons(r)).toEqual(['aborted', 'mailbox_full', 'aborted']);
      expectShape(r, targets);
      full.release();
      await node.idle();
      expect(a.seen).toEqual([]);
      expect(c.seen).toEqual([]);
      expect(messagesOf(full)).toEqual(['fill']); // not evicted either
    },
  );

  it('one dead target: nobody gets it, untouched targets are aborted, no retries', async () => {
    const { node, clock } = clocked();
    const a = receiver(node);
    const c = receiver(node);
    const captured = captureEvents(node, ['keel.supervised_send.retry']);
    const timers = node.internals().timers;
    const targets = [a.pid, deadPid(node), c.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', retries: 3, onError: 'ignore' });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 3 });
    expect(reasons(r)).toEqual(['aborted', 'noproc', 'aborted']);
    expect(r.results[0]!.outcome.attempts).toBe(0);
    expect(r.results[2]!.outcome.attempts).toBe(0);
    expectShape(r, targets);
    expect(node.internals().timers).toBe(timers);
    await clock.advance(60_000);
    expect(captured.events).toEqual([]);
    expect(a.seen).toEqual([]);
    expect(c.seen).toEqual([]);
  });

  it("nobody gets it: with onError 'dead_letter' every copy is dead-lettered with its own reason, and the queue redelivers them", async () => {
    const { node, clock } = clocked();
    const a = receiver(node);
    const c = receiver(node);
    const targets: Target[] = [a.pid, 'later', c.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', onError: 'dead_letter', metadata: { batch: 9 } });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 3 });
    expect(reasons(r)).toEqual(['aborted', 'noproc', 'aborted']);
    const ids = r.results.map((x) => (x.outcome.ok ? undefined : x.outcome.deadLetterId));
    expect(ids.every((id) => typeof id === 'string')).toBe(true);
    const entries = ok(await node.deadLetters.list()).entries;
    expect(entries.map((e) => [e.id, e.recipient, e.reason, e.message, e.metadata.batch])).toEqual([
      [ids[0], Pid.format(a.pid), 'aborted', 'commit', 9],
      [ids[1], 'later', 'noproc', 'commit', 9],
      [ids[2], Pid.format(c.pid), 'aborted', 'commit', 9],
    ]);
    // the queue delivers each copy on its own once due (no longer atomically)
    const later = receiver(node, { name: 'later' });
    await clock.advance(1000);
    await node.idle();
    expect([messagesOf(a), messagesOf(later), messagesOf(c)]).toEqual([['commit'], ['commit'], ['commit']]);
  });

  it("nobody gets it: with the default onError 'log' each copy's failure is logged", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const a = receiver(node);
    const r = await broadcastSupervised(node, [a.pid, 'nobody'], 'commit', { strategy: 'all_or_nothing' });
    expect(reasons(r)).toEqual(['aborted', 'noproc']);
    expect(logger.warn).toHaveBeenCalledTimes(2);
    expect(String(logger.warn.mock.calls[1]![0])).toContain("to 'nobody' failed after 1 attempt(s): noproc");
  });

  it('an unregistered name: nobody gets it', async () => {
    const node = track();
    const a = receiver(node);
    const targets: Target[] = [a.pid, 'nobody'];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', onError: 'ignore' });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable' });
    expect(reasons(r)).toEqual(['aborted', 'noproc']);
    await node.idle();
    expect(a.seen).toEqual([]);
  });

  it('a duplicate target receives one copy each time it is listed', async () => {
    const node = track();
    const a = receiver(node);
    const b = receiver(node);
    const targets = [a.pid, b.pid, a.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing' });
    expect(r).toMatchObject({ ok: true, delivered: 3, failed: 0 });
    expectShape(r, targets);
    await node.idle();
    expect(messagesOf(a)).toEqual(['commit', 'commit']);
    expect(messagesOf(b)).toEqual(['commit']);
  });

  it('the room check counts copies: two listings need two free slots', async () => {
    const node = track();
    const a = receiver(node, { mailbox: { capacity: 2, overflow: 'reject' } });
    const b = receiver(node);
    await a.hold();
    node.send(a.pid, 'fill'); // one slot left
    const targets = [a.pid, b.pid, a.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing' });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0 });
    expect(reasons(r)).toEqual(['mailbox_full', 'aborted', 'mailbox_full']);
    a.release();
    await node.idle();
    expect(messagesOf(a)).toEqual(['fill']);
    expect(b.seen).toEqual([]);
  });

  it('the room check counts copies through a name and a pid of the same process', async () => {
    const node = track();
    const a = receiver(node, { name: 'alias', mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    await a.hold();
    node.send(a.pid, 'fill');
    const r = await broadcastSupervised(node, ['alias', a.pid], 'commit', { strategy: 'all_or_nothing' });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0 });
    a.release();
    await node.idle();
    expect(messagesOf(a)).toEqual(['fill']);
  });

  it('two listings fit in exactly two free slots', async () => {
    const node = track();
    const a = receiver(node, { mailbox: { capacity: 2, overflow: 'reject' } });
    await a.hold();
    const r = await broadcastSupervised(node, [a.pid, a.pid], 'commit', { strategy: 'all_or_nothing' });
    expect(r).toMatchObject({ ok: true, delivered: 2 });
    a.release();
    await node.idle();
    expect(messagesOf(a)).toEqual(['commit', 'commit']);
  });

  it("with ack 'handled' is ERR_INVALID_ARGUMENT and nothing is sent", async () => {
    const node = track();
    const a = receiver(node);
    const e = await failure(() => broadcastSupervised(node, [a.pid], 'commit', { strategy: 'all_or_nothing', ack: 'handled' }));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'ack');
    await node.idle();
    expect(a.seen).toEqual([]);
  });

  it('delivers nothing when its signal is already aborted', async () => {
    const node = track();
    const a = probe(node);
    const controller = new AbortController();
    controller.abort('stop');
    const r = await broadcastSupervised(node, [a], 'x', { strategy: 'all_or_nothing', signal: controller.signal });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0 });
    expect(r.results[0]!.outcome).toMatchObject({ ok: false, reason: 'aborted' });
    await node.idle();
    expect(a.messages).toEqual([]);
  });

  it("an already aborted signal: every copy is aborted after no attempt, with the signal's reason, as a send's outcome says", async () => {
    const node = track();
    const a = probe(node);
    const b = probe(node);
    const controller = new AbortController();
    controller.abort('stop');
    const r = await broadcastSupervised(node, [a, b], 'x', { strategy: 'all_or_nothing', signal: controller.signal, onError: 'ignore' });
    const alone = await sendSupervised(node, a, 'x', { signal: controller.signal, onError: 'ignore' });
    expect(alone).toEqual({ ok: false, id: alone.id, reason: 'aborted', attempts: 0, firstError: 'stop', lastError: 'stop' });
    expect(r.results.map((x) => x.outcome)).toEqual(
      r.results.map((x) => ({ ok: false, id: x.outcome.id, reason: 'aborted', attempts: 0, firstError: 'stop', lastError: 'stop' })),
    );
  });

  // A mailbox that reaches longMailbox.above emits keel.process.long_mailbox from inside the
  // enqueue: with above 1 every copy's enqueue into an empty mailbox runs the handlers, between the
  // enqueues of the copies, after the targets were checked.
  /** A node whose every first message into an empty mailbox emits keel.process.long_mailbox. */
  function longOnFirst(): KeelNode {
    return track({ longMailbox: { above: 1, below: 0 } });
  }

  /** Runs `onLong` for each keel.process.long_mailbox of `node`, with the pid whose mailbox became long. */
  function betweenCopies(node: KeelNode, onLong: (pid: Pid) => void): void {
    node.telemetry.attach('between-copies', ['keel.process.long_mailbox'], (_event, _m, meta) => onLong(meta.pid as Pid));
  }

  it('a telemetry handler that kills a later target between the enqueues: nobody gets it, the copies queued are taken back', async () => {
    const node = longOnFirst();
    const a = receiver(node);
    const b = receiver(node);
    const c = receiver(node);
    await node.idle();
    betweenCopies(node, (pid) => {
      if (pid === a.pid) node.exit(c.pid, 'kill');
    });
    const targets = [a.pid, b.pid, c.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', onError: 'ignore' });
    expect(node.isAlive(c.pid)).toBe(false);
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 3 });
    expectShape(r, targets);
    // a and b were queued, then taken back (one attempt each); c was found dead at its enqueue
    expect(r.results.map((x) => [x.outcome.ok ? true : x.outcome.reason, x.outcome.attempts])).toEqual([
      ['aborted', 1],
      ['aborted', 1],
      ['noproc', 1],
    ]);
    await node.idle();
    expect(a.seen).toEqual([]);
    expect(b.seen).toEqual([]);
  });

  it("a target killed after its copy was queued keeps its copy's fate: with onError 'dead_letter' every copy is handled or dead-lettered", async () => {
    const { node } = clockedNode(track, { longMailbox: { above: 1, below: 0 } }); // the dead letters' retries wait for the clock
    const a = receiver(node);
    const b = receiver(node);
    const c = receiver(node);
    await node.idle();
    betweenCopies(node, (pid) => {
      if (pid !== b.pid) return;
      node.exit(a.pid, 'kill'); // a's copy is already queued
      node.exit(c.pid, 'kill'); // c's is not yet
    });
    const targets = [a.pid, b.pid, c.pid];
    const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', onError: 'dead_letter' });
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 1, failed: 2 });
    // a's copy was accepted (its receiver then died with it queued); b's was taken back; c was dead
    expect(r.results.map((x) => x.outcome)).toEqual([
      { ok: true, id: r.results[0]!.outcome.id, attempts: 1 },
      { ok: false, id: r.results[1]!.outcome.id, reason: 'aborted', attempts: 1, firstError: 'aborted', lastError: 'aborted', deadLetterId: expect.any(String) },
      { ok: false, id: r.results[2]!.outcome.id, reason: 'noproc', attempts: 1, firstError: 'noproc', lastError: 'noproc', deadLetterId: expect.any(String) },
    ]);
    await node.idle();
    expect(b.seen).toEqual([]);
    // three copies sent: none handled, three dead-lettered, each once
    const entries = ok(await node.deadLetters.list()).entries;
    const byRecipient = new Map(entries.map((e) => [e.recipient, e]));
    expect(entries).toHaveLength(3);
    expect([a.pid, b.pid, c.pid].map((p) => [byRecipient.get(Pid.format(p))?.reason, byRecipient.get(Pid.format(p))?.message])).toEqual([
      ['receiver_exited', 'commit'],
      ['aborted', 'commit'],
      ['noproc', 'commit'],
    ]);
    const dl = (i: number): unknown => (r.results[i]!.outcome.ok ? undefined : r.results[i]!.outcome.deadLetterId);
    expect([dl(1), dl(2)]).toEqual([byRecipient.get(Pid.format(b.pid))?.id, byRecipient.get(Pid.format(c.pid))?.id]);
  });

  it.each(['reject', 'drop_oldest'] as const)(
    'a telemetry handler that fills a later bounded mailbox (%s) between the enqueues: nobody gets it, nothing is evicted',
    async (overflow) => {
      const node = longOnFirst();
      const a = receiver(node);
      const c = receiver(node, { mailbox: { capacity: 1, overflow } });
      await node.idle();
      await c.hold();
      betweenCopies(node, (pid) => {
        if (pid === a.pid) node.send(c.pid, 'fill');
      });
      const targets = [a.pid, c.pid];
      const r = await broadcastSupervised(node, targets, 'commit', { strategy: 'all_or_nothing', onError: 'ignore' });
      expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 2 });
      expect(reasons(r)).toEqual(['aborted', 'mailbox_full']);
      expectShape(r, targets);
      c.release();
      await node.idle();
      expect(a.seen).toEqual([]);
      expect(messagesOf(c)).toEqual(['fill']);
    },
  );
});

describe('broadcastSupervised: one result shape for every strategy', () => {
  it.each<[string, BroadcastOptions['strategy'], boolean, BroadcastOutcome['reason']]>([
    ['best_effort', 'best_effort', true, undefined],
    ['at_least_one', 'at_least_one', true, undefined],
    ['all_or_nothing', 'all_or_nothing', false, 'not_all_deliverable'],
    ['quorum 2', { quorum: 2 }, false, 'quorum_not_reached'],
    ['quorum 1', { quorum: 1 }, true, undefined],
  ])('%s', async (_name, strategy, ok, reason) => {
    const node = track();
    const a = receiver(node);
    const targets = [a.pid, deadPid(node)];
    const r = await broadcastSupervised(node, targets, 'm', { ...(strategy === undefined ? {} : { strategy }), onError: 'ignore' });
    expect(r.ok).toBe(ok);
    expect(r.reason).toBe(reason);
    expectShape(r, targets);
  });
});

// ---- concurrency ------------------------------------------------------------------------------

describe('broadcastSupervised: concurrent fan-out', () => {
  /** Receivers that stay in their handler until released; `active` counts those handling right now. */
  function busyReceivers(node: KeelNode, n: number): { pids: Pid[]; started: number[]; gates: Map<number, Deferred<void>>; stats: { active: number; max: number } } {
    const started: number[] = [];
    const gates = new Map<number, Deferred<void>>();
    const stats = { active: 0, max: 0 };
    const pids = Array.from({ length: n }, (_, i) =>
      node.spawn(() => async () => {
        stats.active++;
        stats.max = Math.max(stats.max, stats.active);
        started.push(i);
        const gate = deferred();
        gates.set(i, gate);
        await gate.promise;
        stats.active--;
      }),
    );
    return { pids, started, gates, stats };
  }

  it("with ack 'handled', never more than `concurrency` targets are handling at once", async () => {
    const node = track();
    const { pids, started, gates, stats } = busyReceivers(node, 6);
    const w = watch(broadcastSupervised(node, pids, 'job', { ack: 'handled', concurrency: 2 }));
    await node.settle();
    expect(started).toEqual([0, 1]);
    expect(stats.active).toBe(2);
    for (let i = 0; i < 6; i++) {
      gates.get(i)!.resolve();
      await node.settle();
      expect(stats.active).toBe(Math.min(2, 6 - i - 1));
      expect(started).toHaveLength(Math.min(6, i + 3));
    }
    expect(started).toEqual([0, 1, 2, 3, 4, 5]);
    expect(stats.max).toBe(2);
    await node.idle();
    expect(w.status).toBe('resolved');
    expect(w.value).toMatchObject({ ok: true, delivered: 6, failed: 0 });
  });

  it('sends to all targets at once within the default concurrency (64)', async () => {
    const node = track();
    const { pids, started, gates, stats } = busyReceivers(node, 6);
    const w = watch(broadcastSupervised(node, pids, 'job', { ack: 'handled' }));
    await node.settle();
    expect(started.sort()).toEqual([0, 1, 2, 3, 4, 5]);
    expect(stats.active).toBe(6);
    expect(w.status).toBe('pending');
    for (const g of gates.values()) g.resolve();
    await node.idle();
    expect(w.value).toMatchObject({ ok: true, delivered: 6 });
  });

  it('concurrency 1 sends one after the other', async () => {
    const node = track();
    const { pids, started, gates, stats } = busyReceivers(node, 3);
    const w = watch(broadcastSupervised(node, pids, 'job', { ack: 'handled', concurrency: 1 }));
    for (let i = 0; i < 3; i++) {
      await node.settle();
      expect(started).toEqual(Array.from({ length: i + 1 }, (_, k) => k));
      gates.get(i)!.resolve();
    }
    await node.idle();
    expect(stats.max).toBe(1);
    expect(w.value).toMatchObject({ ok: true, delivered: 3 });
  });
});

// ---- bad arguments ----------------------------------------------------------------------------

describe("broadcastSupervised from a handler to a list that includes its own process, with ack 'handled'", () => {
  it.each([
    ['its pid, listed last, one send at a time', false, 1],
    ['its name, listed first, all at once', true, 64],
  ] as const)('to %s: rejects with ERR_DEADLOCK before any copy is sent', async (_what, first, concurrency) => {
    const node = track();
    const p = probe(node);
    const a = receiver(node);
    const b = receiver(node);
    const pid = node.spawn(
      (ctx) => async (m: unknown) => {
        if (m !== 'go') return;
        const targets = first ? ['me', a.pid, b.pid] : [a.pid, b.pid, ctx.self];
        await broadcastSupervised(ctx, targets, 'job', { ack: 'handled', timeout: 100, onError: 'ignore', concurrency }).then(
          (result) => node.send(p, { result }),
          (error: unknown) => node.send(p, { error }),
        );
      },
      { name: 'me' },
    );
    node.send(pid, 'go');
    const report = (await p.receive()) as { error?: unknown; result?: unknown };
    expect(report.result).toBeUndefined();
    expectKeelError(report.error, 'ERR_DEADLOCK');
    await node.idle();
    expect([a.seen, b.seen]).toEqual([[], []]);
  });
});

describe('broadcastSupervised: bad arguments', () => {
  it.each<[string, unknown]>([
    ['options.strategy', 'most'],
    ['options.strategy', 42],
    ['options.strategy', {}],
    ['options.strategy.quorum', { quorum: 0 }],
    ['options.strategy.quorum', { quorum: 3 }],
    ['options.strategy.quorum', { quorum: 1.5 }],
    ['options.strategy.quorum', { quorum: '1' }],
  ])('%s = %j is ERR_INVALID_ARGUMENT and nothing is sent', async (argument, strategy) => {
    const node = track();
    const a = receiver(node);
    const b = receiver(node);
    const e = await failure(() => broadcastSupervised(node, [a.pid, b.pid], 'm', { strategy: strategy as BroadcastStrategy }));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    await node.idle();
    expect(a.seen).toEqual([]);
    expect(b.seen).toEqual([]);
  });

  it.each<[string, (a: Pid) => unknown]>([
    ['not an array', (a) => a],
    ['a string instead of an array', () => 'a,b'],
    ['an empty name among them', (a) => [a, '']],
    ['a number among them', (a) => [a, 42]],
    ['null among them', (a) => [a, null]],
    ['a plain object among them', (a) => [a, { id: 1 }]],
  ])('targets %s: ERR_INVALID_ARGUMENT and nothing is sent', async (_what, make) => {
    const node = track();
    const a = receiver(node);
    const e = await failure(() => broadcastSupervised(node, make(a.pid) as Target[], 'm'));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'targets');
    await node.idle();
    expect(a.seen).toEqual([]);
  });

  it.each<[string, BroadcastOptions]>([
    ['best_effort (the default)', {}],
    ['at_least_one', { strategy: 'at_least_one' }],
    ['quorum 1', { strategy: { quorum: 1 } }],
    ['all_or_nothing', { strategy: 'all_or_nothing' }],
    ["ack 'handled' with retries", { ack: 'handled', retries: 3 }],
  ])("onError 'raise' (%s) is ERR_INVALID_ARGUMENT (the result reports every failure) and nothing is sent to any target", async (_what, options) => {
    const { node, clock } = clocked();
    const a = receiver(node);
    const b = receiver(node, { name: 'b' });
    await node.idle();
    const captured = captureEvents(node, ['keel.supervised_send.', 'keel.message.']);
    const timers = node.internals().timers;
    const targets: Target[] = [a.pid, 'b', 'nobody', deadPid(node)];
    const promise = broadcastSupervised(node, targets, 'm', { ...options, onError: 'raise' });
    // refused before any send: no copy in any mailbox, even for a moment
    expect([a.pid, b.pid].map((pid) => node.info(pid)?.mailboxLength)).toEqual([0, 0]);
    const e = await failure(() => promise);
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'options.onError', "'log' | 'dead_letter' | 'ignore'", 'raise');
    await clock.advance(60_000); // a retry to 'nobody' would show here
    expect(a.seen).toEqual([]);
    expect(b.seen).toEqual([]);
    expect(captured.events).toEqual([]);
    expect(node.internals().timers).toBe(timers);
  });

  it.each<[string, unknown]>([
    ['options.concurrency', { concurrency: 0 }],
    ['options.concurrency', { concurrency: 1.5 }],
    ['options.concurrency', { concurrency: 'many' }],
    ['options.ack', { ack: 'delivered' }],
    ['options.retries', { retries: -1 }],
  ])('%s = %j is ERR_INVALID_ARGUMENT and nothing is sent', async (argument, options) => {
    const node = track();
    const a = receiver(node);
    const e = await failure(() => broadcastSupervised(node, [a.pid], 'm', options as BroadcastOptions));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    await node.idle();
    expect(a.seen).toEqual([]);
  });

  const throwingAt = <T extends object>(into: T, key: string): T =>
    Object.defineProperty(into, key, {
      enumerable: true,
      get: () => {
        throw new Error(`${key} getter`);
      },
    });
  /** An option whose getter answers `value` once, then throws: a second read of it is not the first's. */
  const throwingOnSecondRead = <T extends object>(into: T, key: string, value: unknown): T => {
    let reads = 0;
    return Object.defineProperty(into, key, {
      enumerable: true,
      get: () => {
        if (reads++ > 0) throw new Error(`${key} read again`);
        return value;
      },
    });
  };
  it.each<[string, (a: Pid) => unknown, unknown, string[]]>([
    ['options.strategy a getter that throws when read again', (a) => [a], throwingOnSecondRead({}, 'strategy', 'best_effort'), []],
    ['options.ack a getter that throws when read again', (a) => [a], throwingOnSecondRead({}, 'ack', 'handled'), []],
    ['options.concurrency a getter that throws when read again', (a) => [a], throwingOnSecondRead({}, 'concurrency', 2), []],
  ])('%s: each option is read once, the broadcast sends as the first read said', async (_what, targets, options) => {
    const node = track();
    const a = receiver(node);
    const r = await broadcastSupervised(node, targets(a.pid) as Target[], 'm', options as BroadcastOptions);
    expect(r).toMatchObject({ ok: true, delivered: 1, failed: 0 });
    await node.idle();
    expect(a.seen.map((s) => s.message)).toEqual(['m']);
  });

  it.each<[string, (a: Pid) => unknown, unknown, string[]]>([
    ['targets a revoked proxy', () => UNREADABLE[0]![1](), undefined, ['`targets`']],
    ['targets a proxy whose traps throw', () => UNREADABLE[1]![1](), undefined, ['`targets`']],
    ['a target whose getter throws', (a) => throwingAt([a], '1'), undefined, ['`targets`', 'reading it threw Error: 1 getter']],
    ['options a revoked proxy', (a) => [a], UNREADABLE[0]![1](), ['`options`']],
    ['options a proxy whose traps throw', (a) => [a], UNREADABLE[1]![1](), ['`options`']],
    ['options.strategy a getter that throws', (a) => [a], throwingAt({}, 'strategy'), ['`options.strategy`', 'reading it threw Error: strategy getter']],
    ['options.concurrency a getter that throws', (a) => [a], throwingAt({}, 'concurrency'), ['`options.concurrency`', 'reading it threw Error: concurrency getter']],
    ['options.strategy a revoked proxy', (a) => [a], { strategy: UNREADABLE[0]![1]() }, ['`options.strategy`']],
    ['options.strategy a proxy whose traps throw', (a) => [a], { strategy: UNREADABLE[1]![1]() }, ['`options.strategy`']],
    ['options.strategy.quorum a getter that throws', (a) => [a], { strategy: throwingAt({}, 'quorum') }, ['`options.strategy.quorum`', 'reading it threw Error: quorum getter']],
  ])('%s: ERR_INVALID_ARGUMENT (not a raw error) and nothing is sent', async (_what, targets, options, fragments) => {
    const node = track();
    const a = receiver(node);
    const e = await failure(() => broadcastSupervised(node, targets(a.pid) as Target[], 'm', options as BroadcastOptions));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', ...fragments);
    await node.idle();
    expect(a.seen).toEqual([]);
  });
});
