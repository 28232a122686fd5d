// What a supervised send acknowledged at 'enqueued' becomes when its receiver never handles it: the
// receiver's death reports what was left in its mailbox, in one event, and with onError
// 'dead_letter' each such message goes to the dead letter queue, so that it can be recovered.
import { describe, expect, it } from 'vitest';
import { sendSupervised, type Node, type Pid } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, ok, useNodes } from '../support.js';

const track = useNodes();

/** A receiver that takes its first message and then waits on a gate: the rest stay queued. */
function stuckReceiver(node: Node, name?: string): { pid: Pid; started: Promise<void>; handled: unknown[] } {
  const started = deferred();
  const gate = deferred();
  const handled: unknown[] = [];
  const pid = node.spawn(
    () => async (m) => {
      handled.push(m);
      started.resolve();
      await gate.promise;
    },
    name === undefined ? undefined : { name },
  );
  return { pid, started: started.promise, handled };
}

describe('a receiver that exits with supervised messages still queued', () => {
  it('reports them in one keel.message.dropped event with the count (default onError)', async () => {
    const node = track();
    const r = stuckReceiver(node);
    const outcomes = await Promise.all(Array.from({ length: 10 }, (_, i) => sendSupervised(node, r.pid, i)));
    expect(outcomes.every((o) => o.ok)).toBe(true);
    await r.started;
    const dropped = captureEvents(node, ['keel.message.dropped']);
    node.exit(r.pid, 'kill');
    expect(dropped.events).toHaveLength(1);
    expect(dropped.events[0]!.measurements).toEqual({ count: 9 });
    expect(dropped.events[0]!.metadata).toMatchObject({ to: r.pid, reason: 'receiver_exited', exitReason: 'killed' });
    // the ids of the nine left queued (their outcomes' ids), in the order they were queued
    expect(dropped.events[0]!.metadata.ids).toEqual(outcomes.slice(1).map((o) => o.id));
    expect(await node.deadLetters.stats()).toMatchObject({ added: 0 });
  });

  it("dead-letters each of them with reason receiver_exited when onError is 'dead_letter', for redelivery", async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock, random: () => 0 });
    const r = stuckReceiver(node, 'billing');
    const sent = await Promise.all(Array.from({ length: 10 }, (_, i) => sendSupervised(node, 'billing', { n: i }, { onError: 'dead_letter', metadata: { tenant: 't1' } })));
    expect(sent.every((o) => o.ok)).toBe(true);
    await r.started;
    node.exit(r.pid, 'kill');
    await node.idle();
    const { entries } = ok(await node.deadLetters.list());
    expect(entries.map((e) => e.message)).toEqual(Array.from({ length: 9 }, (_, i) => ({ n: i + 1 })));
    expect(entries.every((e) => e.reason === 'receiver_exited' && e.recipient === 'billing' && e.metadata.tenant === 't1')).toBe(true);
    expect(entries.map((e) => e.metadata.id)).toEqual(sent.slice(1).map((o) => o.id));
    // sent = handled + dead-lettered: nothing vanished; a new 'billing' gets them back, in order
    expect(r.handled.length + entries.length).toBe(10);
    const p = probe(node);
    // eslint-disable-next-line keel/no-raw-send -- the test forwards what it receives to a probe
    node.spawn((ctx) => (m) => ctx.send(p, { m, id: ctx.messageId }), { name: 'billing' });
    await clock.advance(1000);
    await node.idle();
    expect(p.messages.map((x) => (x as { m: unknown }).m)).toEqual(entries.map((e) => e.message));
    expect(p.messages.map((x) => (x as { id: unknown }).id)).toEqual(entries.map((e) => e.metadata.id));
  });

  it('dead-letters a message acknowledged at a retry with the attempts it took (metadata.attempts was always 1)', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock, random: () => 1 });
    const w = sendSupervised(node, 'billing', 'late', { retries: 2, backoff: { initialMs: 100, jitter: 'none' }, onError: 'dead_letter' });
    await node.settle();
    const r = stuckReceiver(node, 'billing');
    node.send(r.pid, 'first'); // taken by the receiver: the send's message stays queued behind it
    await r.started;
    await clock.advance(100);
    expect(await w).toMatchObject({ ok: true, attempts: 2 });
    node.exit(r.pid, 'kill');
    await node.idle();
    const { entries } = ok(await node.deadLetters.list());
    expect(entries.map((e) => [e.message, e.reason, e.metadata.attempts, e.metadata.lastError])).toEqual([['late', 'receiver_exited', 2, 'killed']]);
  });

  it("dead-letters a message a drop_oldest mailbox evicts after it was acknowledged (reason mailbox_full)", async () => {
    const node = track();
    const gate = deferred();
    const started = deferred();
    const pid = node.spawn(
      () => async () => {
        started.resolve();
        await gate.promise;
      },
      { mailbox: { capacity: 1, overflow: 'drop_oldest' } },
    );
    await sendSupervised(node, pid, 'taken');
    await started.promise;
    expect((await sendSupervised(node, pid, 'evicted', { onError: 'dead_letter' })).ok).toBe(true);
    expect((await sendSupervised(node, pid, 'newest', { onError: 'dead_letter' })).ok).toBe(true);
    await node.idle({ timeoutMs: 0 }).catch(() => undefined);
    const { entries } = ok(await node.deadLetters.list());
    expect(entries.map((e) => [e.message, e.reason])).toEqual([['evicted', 'mailbox_full']]);
    gate.resolve();
  });

  it('emits nothing for a process that dies with an empty mailbox', async () => {
    const node = track();
    const pid = node.spawn(() => () => undefined);
    await node.idle();
    const dropped = captureEvents(node, ['keel.message.dropped']);
    node.exit(pid, 'kill');
    expect(dropped.events).toEqual([]);
  });
});
