// The coordination manager across restarts: circuits and buffered messages are kept in the node's
// table for its successor under the same name (a kill, a crash, a supervisor's shutdown), and every
// message is accounted for: sent = handled + dead-lettered + reported (unconfirmed), with the
// at-least-once redelivery of a buffered message in flight at the kill counted as redelivered.
import { describe, expect, it } from 'vitest';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import type { CoordinationManagerHandle } from '../../../src/agents/coordination/types.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { GenServer, Supervisor, Sys, type DeadLetter, type Node, type Pid } from '../../../src/index.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import { captureEvents, probe, type TestClock } from '../../../src/testing/index.js';
import { clockedNode, deferred, exitAndWait, idler, ok, receiver, useNodes } from '../../support.js';

const track = useNodes();
const QUIET_DLQ = { deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 3_600_000, jitter: 'none' as const } } };
const N = 10;

function setup(): { node: Kernel; clock: TestClock } {
  return clockedNode(track, { services: QUIET_DLQ });
}

async function deadLetters(node: Node): Promise<DeadLetter[]> {
  return ok(await node.deadLetters.list({ limit: 1000 })).entries;
}

/** A manager whose circuit to the unregistered name 'svc' is open, with N messages m1..mN buffered. */
async function openWithBuffer(node: Node): Promise<{ cm: CoordinationManagerHandle; sender: Pid }> {
  const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000 });
  const sender = idler(node);
  expect(await cm.coordinate(sender, 'svc', 'lost')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
  for (let i = 1; i <= N; i++) expect(await cm.coordinate(sender, 'svc', `m${i}`, { id: `m${i}` })).toEqual({ outcome: 'buffered', id: `m${i}`, position: i });
  return { cm, sender };
}

const ALL = Array.from({ length: N }, (_, i) => `m${i + 1}`);

describe('CoordinationManager restarted under its name', () => {
  it('keeps an open circuit and its buffer across a kill: the successor half-opens at the kept reset time and flushes them in order, once each', async () => {
    const { node, clock } = setup();
    const { cm } = await openWithBuffer(node);
    await clock.advance(400);
    const events = captureEvents(node, ['keel.coordination_manager.resumed']);
    await exitAndWait(node, cm.pid, 'kill', 'settle');
    expect(events.events).toMatchObject([{ measurements: { circuits: 1, buffered: N, inFlight: 0 } }]);
    expect(await cm.circuit('svc')).toEqual({ state: 'open', consecutiveFailures: 1, buffered: N, inFlight: 0 });
    const r = receiver(node, { name: 'svc' });
    await clock.advance(599);
    await node.idle();
    expect(r.seen).toEqual([]);
    await clock.advance(1); // the kept reset time: opened at +0, 1000 ms
    await node.idle();
    expect(r.seen).toEqual(ALL.map((id) => ({ message: id, id })));
    expect(await cm.stats()).toMatchObject({ agents: 0, buffered: 0, bufferedTotal: N, flushed: N, failed: 1, deadLettered: 0, redelivered: 0, unconfirmed: 0 });
    expect(await deadLetters(node)).toEqual([]);
  });

  it('a buffered message in flight (not started) at the kill goes back to the head of the buffer: sent = handled, each once', async () => {
    const { node, clock } = setup();
    const { cm } = await openWithBuffer(node);
    const r = receiver(node, { name: 'svc' });
    await r.hold();
    await clock.advance(1000); // half-open: m1 is the probe, queued behind the hold
    await node.settle();
    expect(await cm.circuit('svc')).toMatchObject({ state: 'half_open', inFlight: 1, buffered: N - 1 });
    await exitAndWait(node, cm.pid, 'kill', 'settle'); // its send is aborted: the copy not started is withdrawn
    expect(await cm.circuit('svc')).toMatchObject({ state: 'half_open', inFlight: 1, buffered: N - 1 });
    r.release();
    await node.idle();
    expect(r.seen.map((s) => s.id)).toEqual(ALL);
    const stats = await cm.stats();
    expect(stats).toMatchObject({ flushed: N, redelivered: 1, unconfirmed: 0, deadLettered: 0, buffered: 0, inFlight: 0 });
    // sent = handled + dead-lettered + reported
    expect(r.seen.length + (await deadLetters(node)).length + stats.unconfirmed).toBe(N);
  });

  it('a buffered message the receiver had started at the kill is delivered again under the same id: at least once, counted as redelivered', async () => {
    const { node, clock } = setup();
    const { cm } = await openWithBuffer(node);
    const handled: string[] = [];
    const started = deferred();
    const gate = deferred();
    node.spawn((ctx) => async (m: unknown) => {
      if (m === 'm1' && handled.length === 0) {
        started.resolve();
        await gate.promise;
      }
      handled.push(`${String(m)}@${String(ctx.messageId)}`);
    }, { name: 'svc' });
    await clock.advance(1000);
    await started.promise; // m1 is being handled
    await exitAndWait(node, cm.pid, 'kill', 'settle');
    gate.resolve();
    await node.idle();
    // m1 twice (the first handling finished after the kill), then the rest once each, in order
    expect(handled).toEqual(['m1@m1', 'm1@m1', ...ALL.slice(1).map((id) => `${id}@${id}`)]);
    const stats = await cm.stats();
    expect(stats).toMatchObject({ flushed: N, redelivered: 1, deadLettered: 0, unconfirmed: 0 });
    expect(new Set(handled).size + (await deadLetters(node)).length + stats.unconfirmed).toBe(N);
    expect(handled.length - new Set(handled).size).toBe(stats.redelivered);
  });

  it("a direct delivery whose outcome came in before the kill, its caller answered coordinator_down, is counted unconfirmed, not delivered", async () => {
    // stats.delivered counts the calls answered 'delivered': this caller was answered coordinator_down
    // (the restart storm's flood of direct calls found it, now and then, under load)
    const { node } = setup();
    const cm = await CoordinationManager.start(node, { name: 'coord', ack: 'handled' });
    const sender = idler(node);
    const started = deferred();
    const gate = deferred();
    const handled: string[] = [];
    const svc = node.spawn(() => async (m: unknown) => {
      started.resolve();
      await gate.promise;
      handled.push(String(m));
    });
    const unconfirmed = captureEvents(node, ['keel.coordination_manager.unconfirmed']);
    const call = cm.coordinate(sender, svc, 'd1', { id: 'd1' });
    await started.promise; // in flight: the receiver runs it
    const manager = cm.pid!;
    await Sys.suspend(node, manager); // its outcome waits in the manager's mailbox
    gate.resolve();
    await node.idle(); // the receiver finished: the outcome is in
    await exitAndWait(node, manager, 'kill', 'settle');
    expect(await call).toEqual({ outcome: 'failed', id: 'd1', reason: 'coordinator_down' });
    expect(handled).toEqual(['d1']);
    const stats = await cm.stats();
    expect(stats).toMatchObject({ delivered: 0, failed: 0, unconfirmed: 1, inFlight: 0 });
    expect(unconfirmed.events.map((e) => e.metadata)).toMatchObject([{ id: 'd1', reason: 'coordinator_down' }]);
  });

  it('a pid receiver that died while the manager was down is released at the restart: its buffer is dead-lettered (receiver_down)', async () => {
    const { node, clock } = setup();
    const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000, timeout: 50 });
    const sender = idler(node);
    const stuck = deferred();
    const slow = node.spawn(() => () => stuck.promise);
    const first = cm.coordinate(sender, slow, 'first');
    await clock.advance(50);
    expect(await first).toMatchObject({ outcome: 'failed', reason: 'timeout' });
    for (const id of ['a', 'b', 'c']) expect(await cm.coordinate(sender, slow, id, { id })).toMatchObject({ outcome: 'buffered' });
    node.exit(slow, 'kill'); // in the same turn as the manager: its Down goes to the killed one
    await exitAndWait(node, cm.pid, 'kill', 'settle');
    expect(await cm.stats()).toMatchObject({ agents: 0, buffered: 0, deadLettered: 3 });
    expect((await deadLetters(node)).map((d) => [d.message, d.reason]).sort()).toEqual([
      ['a', 'receiver_down'],
      ['b', 'receiver_down'],
      ['c', 'receiver_down'],
    ]);
    stuck.resolve();
  });

  it("keeps the buffer across a supervisor's shutdown: the successor resumes it, nothing is dead-lettered", async () => {
    const { node } = setup();
    // one_for_all: a sibling's crash makes the supervisor shut the manager down ('shutdown'), then start both again
    let cm!: CoordinationManagerHandle;
    const sup = await Supervisor.start(node, [
      { id: 'cm', start: (ctx) => CoordinationManager.start(ctx, { name: 'coord', failureThreshold: 1, resetAfterMs: 1000 }).then((h) => (cm = h).pid) },
      { id: 'sibling', start: (ctx) => Promise.resolve(ctx.spawnLink(() => () => undefined, { name: 'sibling' })) },
    ], { strategy: 'one_for_all' });
    const sender = idler(node);
    expect(await cm.coordinate(sender, 'svc', 'lost')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    for (let i = 1; i <= N; i++) expect(await cm.coordinate(sender, 'svc', `m${i}`, { id: `m${i}` })).toEqual({ outcome: 'buffered', id: `m${i}`, position: i });
    const before = cm.pid;
    const resumed = captureEvents(node, ['keel.coordination_manager.resumed']);
    node.exit(node.registry.whereis('sibling')!, new Error('sibling crashed'));
    await node.idle();
    expect(cm.pid).not.toBe(before);
    expect(resumed.events.length).toBe(1);
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open', buffered: N });
    expect(await deadLetters(node)).toEqual([]);
    expect(componentStates(node)).toContain('coord');
    await GenServer.stop(node, sup, 'shutdown');
  });

  it("a manager started from the node is a transient child: a stop with 'shutdown' ends it without a restart, its table kept", async () => {
    const { node } = setup();
    const { cm } = await openWithBuffer(node);
    await GenServer.stop(node, cm.pid, 'shutdown');
    await node.idle();
    expect(node.registry.whereis('coord')).toBe(undefined);
    expect(await deadLetters(node)).toEqual([]);
    expect(componentStates(node)).toContain('coord');
    // started again under its name, it resumes the buffer
    const again = await CoordinationManager.start(node, { name: 'coord' });
    expect(await again.circuit('svc')).toMatchObject({ state: 'open', buffered: N });
  });

  it('a normal stop releases the table: a new manager under the name starts empty', async () => {
    const { node } = setup();
    const parent = probe(node);
    parent.ctx.trapExits(true);
    const cm = await CoordinationManager.start(parent.ctx, { name: 'coord', failureThreshold: 1 });
    const sender = idler(node);
    await cm.coordinate(sender, 'svc', 'lost');
    await cm.coordinate(sender, 'svc', 'pending');
    await GenServer.stop(node, cm.pid);
    await node.idle();
    expect(componentStates(node)).not.toContain('coord');
    expect((await deadLetters(node)).map((d) => [d.message, d.reason])).toEqual([['pending', 'coordinator_stopped']]);
    const again = await CoordinationManager.start(node, { name: 'coord' });
    expect(await again.circuit('svc')).toBeUndefined();
  });
});
