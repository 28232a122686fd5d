// A restart storm: the coordination manager killed 5 times in a row while it flushes a flood of
// buffered messages (the receiver kills it from inside its handler, mid-flush). Every message is
// accounted for: sent = handled (distinct ids) + dead-lettered + reported (unconfirmed), and each
// extra handling is a counted redelivery.
import { describe, expect, it } from 'vitest';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import { type DeadLetter, DynamicSupervisor, type Node } from '../../../src/index.js';
import { captureEvents } from '../../../src/testing/index.js';
import { clockedNode, idler, ok, useNodes } from '../../support.js';

const track = useNodes();
const QUIET_DLQ = { deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 3_600_000, jitter: 'none' as const } } };
const N = 60;

async function deadLetters(node: Node): Promise<DeadLetter[]> {
  return ok(await node.deadLetters.list({ limit: 1000 })).entries;
}

describe.each(['enqueued', 'handled'] as const)('CoordinationManager restart storm (ack %s)', (ack) => {
  it('killed 5 times mid-flush: sent = handled + dead-lettered + unconfirmed; duplicates = redelivered', async () => {
    const { node, clock } = clockedNode(track, { services: QUIET_DLQ });
    const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000, ack });
    const sender = idler(node);
    expect(await cm.coordinate(sender, 'svc', 'lost')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    for (let i = 1; i <= N; i++) expect(await cm.coordinate(sender, 'svc', `m${i}`, { id: `m${i}` })).toMatchObject({ outcome: 'buffered' });
    const resumed = captureEvents(node, ['keel.coordination_manager.resumed']);
    const handled: string[] = [];
    const killAt = new Set(['m5', 'm17', 'm18', 'm30', 'm44']);
    node.spawn((ctx) => (m: unknown) => {
      handled.push(`${String(m)}@${String(ctx.messageId)}`);
      const id = String(m);
      if (killAt.delete(id)) {
        const manager = node.registry.whereis('coord');
        if (manager !== undefined) node.exit(manager, 'kill');
      }
    }, { name: 'svc' });
    await clock.advance(1000); // half-open: the flush starts
    await node.idle();
    expect(killAt.size).toBe(0);
    expect(resumed.events).toHaveLength(5);
    const stats = await cm.stats();
    const distinct = new Set(handled);
    // each handling is of its own id (the id is the idempotency key)
    expect([...distinct].every((h) => h.split('@')[0] === h.split('@')[1])).toBe(true);
    const dead = await deadLetters(node);
    expect(distinct.size + dead.length + stats.unconfirmed).toBe(N);
    expect(handled.length - distinct.size).toBe(stats.redelivered);
    expect(stats).toMatchObject({ buffered: 0, inFlight: 0, bufferedTotal: N });
    expect(stats.flushed + stats.deadLettered + stats.unconfirmed).toBe(N);
    // in order: the first handling of each id follows the buffer's order
    const firsts = [...distinct].map((h) => Number(h.split('@')[0]!.slice(1)));
    expect(firsts).toEqual([...firsts].sort((a, b) => a - b));
  });
});

describe('CoordinationManager started again under a name whose table was kept', () => {
  it("a new handle's default ids never collide with the messages its predecessor left buffered (fresh ids, no false duplicate)", async () => {
    const { node } = clockedNode(track, { services: QUIET_DLQ });
    const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000 });
    const sender = idler(node);
    expect(await cm.coordinate(sender, 'svc', 'lost')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    const first = await cm.coordinate(sender, 'svc', 'kept');
    expect(first).toMatchObject({ outcome: 'buffered', position: 1 });
    // stopped as a supervisor stops a child it will not restart: the table is kept under the name
    expect(await DynamicSupervisor.terminateChild(node, 'keel.agents', cm.pid)).toBe('ok');
    const again = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000 });
    const ids = new Set([first.id]);
    for (let i = 2; i <= 4; i++) {
      const next = await again.coordinate(sender, 'svc', `new${i}`);
      expect(next).toMatchObject({ outcome: 'buffered', position: i });
      expect(ids.has(next.id)).toBe(false);
      ids.add(next.id);
    }
    expect(await again.circuit('svc')).toMatchObject({ buffered: 4 });
  });
});

describe.each(['enqueued', 'handled'] as const)('CoordinationManager restart storm, direct deliveries (ack %s)', (ack) => {
  it('killed 5 times during a flood of direct calls: every caller answered; handled = delivered + unconfirmed-but-handled, none handled twice', async () => {
    const { node } = clockedNode(track, { services: QUIET_DLQ });
    const cm = await CoordinationManager.start(node, { name: 'coord', ack, failureThreshold: 1000 });
    const sender = idler(node);
    const handled: string[] = [];
    const killAt = new Set(['d7', 'd18', 'd31', 'd55', 'd80']); // one per wave: a kill withdraws the wave's copies not started
    const svc = node.spawn(() => (m: unknown) => {
      const id = String(m);
      handled.push(id);
      if (killAt.delete(id)) {
        const manager = node.registry.whereis('coord');
        if (manager !== undefined) node.exit(manager, 'kill');
      }
    });
    const calls: Promise<{ outcome: string; reason?: string }>[] = [];
    for (let i = 1; i <= 100; i++) {
      calls.push(cm.coordinate(sender, svc, `d${i}`, { id: `d${i}` }) as Promise<{ outcome: string; reason?: string }>);
      if (i % 10 === 0) await node.idle(); // in waves, so that later waves reach the restarted managers
    }
    const outcomes = await Promise.all(calls);
    await node.idle();
    const stats = await cm.stats();
    const delivered = outcomes.filter((o) => o.outcome === 'delivered').length;
    const down = outcomes.filter((o) => o.outcome === 'failed' && o.reason === 'coordinator_down').length;
    expect(delivered + down).toBe(100); // every caller answered, with one of the two
    expect(new Set(handled).size).toBe(handled.length); // a direct delivery is never sent twice
    expect(stats.delivered).toBe(delivered);
    expect(handled.length).toBeGreaterThanOrEqual(delivered);
    expect(handled.length).toBeLessThanOrEqual(delivered + down);
    expect(stats.redelivered).toBe(0);
    expect(killAt.size).toBe(0); // killed 5 times
    expect(stats.unconfirmed).toBeGreaterThan(0);
    expect(stats.unconfirmed).toBeLessThanOrEqual(down); // in flight at a kill: reported; the others died queued in its mailbox
    expect(stats).toMatchObject({ inFlight: 0, buffered: 0 });
  });
});
