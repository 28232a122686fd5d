import { afterEach, describe, expect, it, vi } from 'vitest';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import type { CoordinationManagerHandle, CoordinationManagerOptions, CoordinationOutcome } from '../../../src/agents/coordination/types.js';
import { GenServer, Supervisor, Sys, type DeadLetter, type Node, type Pid } from '../../../src/index.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import { captureEvents, type TestClock } from '../../../src/testing/index.js';
import {
  clockedNode,
  deadPid,
  deferred,
  exitAndWait,
  expectKeelError,
  failure,
  fakeLogger,
  HOUR,
  idler,
  listOf,
  nextEvent,
  ok,
  receiver,
  settlesWithin,
  stepWallClock,
  thrown,
  UNREADABLE,
  useNodes,
  watch,
  type Receiver,
} from '../../support.js';

const track = useNodes();

/** Dead letters stay put: their automatic retry is an hour away (no jitter). */
const QUIET_DLQ = { deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 3_600_000, jitter: 'none' as const } } };

function setup(): { node: Kernel; clock: TestClock } {
  return clockedNode(track, { services: QUIET_DLQ });
}

async function start(node: Node, options: CoordinationManagerOptions = {}): Promise<CoordinationManagerHandle> {
  return CoordinationManager.start(node, { resetAfterMs: 1000, ...options });
}

async function deadLetters(node: Node): Promise<DeadLetter[]> {
  return ok(await node.deadLetters.list({ limit: 1000 })).entries;
}

function messages(r: Receiver): unknown[] {
  return r.seen.map((s) => s.message);
}

/** Opens the circuit of the unregistered name `name` with `threshold` failed deliveries (noproc). */
async function openByName(cm: CoordinationManagerHandle, sender: Pid, name: string, threshold: number): Promise<void> {
  for (let i = 0; i < threshold; i++) {
    expect(await cm.coordinate(sender, name, `lost-${i}`)).toMatchObject({ outcome: 'failed', reason: 'noproc' });
  }
  expect(await cm.circuit(name)).toMatchObject({ state: 'open', consecutiveFailures: threshold });
}

describe('CoordinationManager.start', () => {
  it('validates its options before starting anything', async () => {
    const { node } = setup();
    const bad: [string, unknown][] = [
      ['options', 'fast'],
      ['options.ack', { ack: 'read' }],
      ['options.timeout', { timeout: 0 }],
      ['options.timeout', { timeout: Number.NaN }],
      ['options.failureThreshold', { failureThreshold: 0 }],
      ['options.failureThreshold', { failureThreshold: 1.5 }],
      ['options.resetAfterMs', { resetAfterMs: -1 }],
      ['options.resetAfterMs', { resetAfterMs: Infinity }],
      ['options.bufferCapacity', { bufferCapacity: -1 }],
      ['options.onBufferFull', { onBufferFull: 'drop' }],
      ['options.name', { name: '' }],
    ];
    for (const [argument, options] of bad) {
      const e = await failure(() => CoordinationManager.start(node, options as CoordinationManagerOptions));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
    }
    expect(node.registry.whereis('keel.agents')).toBeUndefined();
  });

  // found in review: a misspelt option was ignored (every other component refuses it), and options that
  // cannot be read threw a raw TypeError
  it('refuses a misspelt option, and options that cannot be read, with ERR_INVALID_ARGUMENT', async () => {
    const { node } = setup();
    const stray = await failure(() => CoordinationManager.start(node, { timeOut: 100 } as CoordinationManagerOptions));
    expectKeelError(stray, 'ERR_INVALID_ARGUMENT', '`options.timeOut`');
    for (const [, make] of UNREADABLE) {
      const e = await failure(() => CoordinationManager.start(node, make() as CoordinationManagerOptions));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'options');
    }
    expect(node.registry.whereis('keel.agents')).toBeUndefined();
  });

  it('runs a named, supervised manager and answers stats', async () => {
    const { node } = setup();
    const cm = await start(node, { name: 'coord' });
    expect(cm.name).toBe('coord');
    expect(node.registry.whereis('coord')).toBe(cm.pid);
    expect(await cm.stats()).toEqual({
      agents: 0, open: 0, halfOpen: 0, buffered: 0, inFlight: 0, delivered: 0, failed: 0, bufferedTotal: 0, flushed: 0, deadLettered: 0, deadLetterUnavailable: 0, unconfirmed: 0, redelivered: 0,
    });
  });
});

describe('CoordinationManager.coordinate', () => {
  it('delivers through one supervised send: the receiver handles it once, under the outcome id', async () => {
    const { node } = setup();
    const cm = await start(node);
    const r = receiver(node);
    const out = await cm.coordinate(idler(node), r.pid, { type: 'step', n: 1 });
    expect(out).toEqual({ outcome: 'delivered', id: out.id });
    expect(r.seen).toEqual([{ message: { type: 'step', n: 1 }, id: out.id }]);
    expect(await cm.stats()).toMatchObject({ agents: 1, delivered: 1, failed: 0, inFlight: 0 });
    expect(await cm.circuit(r.pid)).toEqual({ state: 'closed', consecutiveFailures: 0, buffered: 0, inFlight: 0 });
  });

  it('keeps one circuit per receiver when receivers are given as plain copies of their pids', async () => {
    const { node } = setup();
    const cm = await start(node);
    const a = receiver(node);
    const b = receiver(node);
    // a copy of a pid (a message that crossed a worker, say) has no string form of its own: every
    // copy used to read '[object Object]', and all receivers shared one circuit
    const copy = (pid: Pid): Pid => ({ node: pid.node, creation: pid.creation, id: pid.id });
    await cm.coordinate(idler(node), copy(a.pid), 'to a');
    await cm.coordinate(idler(node), copy(b.pid), 'to b');
    expect(await cm.stats()).toMatchObject({ agents: 2, delivered: 2 });
    node.exit(a.pid, 'kill');
    await node.idle();
    expect(await cm.circuit(copy(a.pid))).toBeUndefined(); // released with its receiver
    expect(await cm.circuit(copy(b.pid))).toEqual({ state: 'closed', consecutiveFailures: 0, buffered: 0, inFlight: 0 });
  });

  it("with ack 'enqueued' answers delivered once the message is in the receiver's mailbox", async () => {
    const { node } = setup();
    const cm = await start(node, { ack: 'enqueued' });
    const r = receiver(node);
    await r.hold();
    const out = await cm.coordinate(idler(node), r.pid, 'job');
    expect(out.outcome).toBe('delivered');
    expect(node.info(r.pid)?.mailboxLength).toBe(1);
    r.release();
    await node.idle();
    expect(r.seen).toEqual([{ message: 'job', id: out.id }]);
  });

  it('refuses bad arguments with typed errors, synchronously', async () => {
    const { node } = setup();
    const cm = await start(node);
    const sender = idler(node);
    expectKeelError(thrown(() => cm.coordinate('agent-1' as never, sender, 'x')), 'ERR_INVALID_ARGUMENT', '`sender`');
    expectKeelError(thrown(() => cm.coordinate(sender, '', 'x')), 'ERR_INVALID_ARGUMENT', '`receiver`');
    expectKeelError(thrown(() => cm.coordinate(sender, 42 as never, 'x')), 'ERR_INVALID_ARGUMENT', '`receiver`');
    expectKeelError(thrown(() => cm.coordinate(sender, sender, 'x', { id: '' })), 'ERR_INVALID_ARGUMENT', '`options.id`');
    expectKeelError(thrown(() => cm.coordinate(sender, sender, 'x', 'id' as never)), 'ERR_INVALID_ARGUMENT', '`options`');
    expectKeelError(thrown(() => cm.circuit({} as never)), 'ERR_INVALID_ARGUMENT', '`receiver`');
    expect(await cm.stats()).toMatchObject({ delivered: 0, failed: 0, agents: 0 });
  });

  it('answers noproc for a dead pid and sender_down for a dead sender, sending nothing and keeping no state', async () => {
    const { node } = setup();
    const cm = await start(node);
    const r = receiver(node);
    expect(await cm.coordinate(idler(node), deadPid(node), 'x')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.coordinate(deadPid(node), r.pid, 'y')).toMatchObject({ outcome: 'failed', reason: 'sender_down' });
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await cm.stats()).toMatchObject({ agents: 0, failed: 2, delivered: 0 });
  });

  it('refuses an id still in flight as duplicate; the receiver handles it once', async () => {
    const { node } = setup();
    const cm = await start(node);
    const r = receiver(node);
    const sender = idler(node);
    await r.hold();
    const first = watch(cm.coordinate(sender, r.pid, 'once', { id: 'msg-1' }));
    expect(await cm.coordinate(sender, r.pid, 'once', { id: 'msg-1' })).toEqual({ outcome: 'failed', id: 'msg-1', reason: 'duplicate' });
    r.release();
    await node.idle();
    expect(first.value).toEqual({ outcome: 'delivered', id: 'msg-1' });
    expect(r.seen).toEqual([{ message: 'once', id: 'msg-1' }]);
  });
});

describe('CoordinationManager: one delivery path', () => {
  it('a slow receiver handles the message exactly once: the timeout is reported and nothing is resent', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { timeout: 100, failureThreshold: 1, resetAfterMs: 50 });
    const handled: unknown[] = [];
    const started = deferred();
    const gate = deferred();
    const slow = node.spawn(() => async (m: unknown) => {
      if (m === 'slow') {
        started.resolve();
        await gate.promise;
      }
      handled.push(m);
    });
    const sender = idler(node);
    const a = watch(cm.coordinate(sender, slow, 'slow'));
    const b = watch(cm.coordinate(sender, slow, 'queued')); // waits behind 'slow', not started
    await started.promise;
    expect(await cm.circuit(slow)).toMatchObject({ inFlight: 2 });
    await clock.advance(100);
    expect(await cm.circuit(slow)).toMatchObject({ state: 'open', inFlight: 0 });
    expect(a.value).toMatchObject({ outcome: 'failed', reason: 'timeout' });
    expect(b.value).toMatchObject({ outcome: 'failed', reason: 'timeout' });
    // the started copy finishes late; the unstarted one was withdrawn; the breaker's recovery resends neither
    gate.resolve();
    await node.idle();
    await clock.advance(1000);
    await node.idle();
    expect(handled).toEqual(['slow']);
    expect(await deadLetters(node)).toEqual([]);
  });
});

describe('CoordinationManager: circuit breaker', () => {
  it('counts consecutive failures (a success resets them) and opens at the threshold', async () => {
    const { node } = setup();
    const events = captureEvents(node, ['keel.coordination_manager.circuit']);
    const cm = await start(node, { failureThreshold: 3 });
    const sender = idler(node);
    for (let i = 0; i < 2; i++) expect(await cm.coordinate(sender, 'svc', i)).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.circuit('svc')).toMatchObject({ state: 'closed', consecutiveFailures: 2 });
    const r = receiver(node, { name: 'svc' });
    expect(await cm.coordinate(sender, 'svc', 'ok')).toMatchObject({ outcome: 'delivered' });
    expect(await cm.circuit('svc')).toBeUndefined(); // a healthy name leaves no state behind
    node.exit(r.pid, 'kill');
    for (let i = 0; i < 2; i++) await cm.coordinate(sender, 'svc', i);
    expect(await cm.circuit('svc')).toMatchObject({ state: 'closed', consecutiveFailures: 2 });
    expect(events.events).toEqual([]);
    expect(await cm.coordinate(sender, 'svc', 'third')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open', consecutiveFailures: 3 });
    expect(events.events.map((e) => [e.event, e.measurements.failures, e.metadata.receiver, e.metadata.reason])).toEqual([
      ['keel.coordination_manager.circuit_opened', 3, 'svc', 'noproc'],
    ]);
    expect(await cm.stats()).toMatchObject({ agents: 1, open: 1, failed: 5, delivered: 1 });
  });

  it("a name's circuit that still counts failures, or waits half-open, is forgotten after a minute with nothing sent to it", async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 2, resetAfterMs: 100 });
    const sender = idler(node);
    // names nobody registers (a name per user, say): each failed once, below the threshold
    for (let i = 0; i < 3; i++) expect(await cm.coordinate(sender, `user-${i}`, 'hi')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.stats()).toMatchObject({ agents: 3, failed: 3 });
    await clock.advance(30_000);
    expect(await cm.coordinate(sender, 'user-0', 'again')).toMatchObject({ outcome: 'failed', reason: 'noproc' }); // user-0 opens
    await clock.advance(29_999);
    expect(await cm.stats()).toMatchObject({ agents: 3 });
    await clock.advance(1);
    // user-1 and user-2 were quiet for a minute: forgotten; user-0 half-opened 100 ms after it opened, with nothing to probe
    expect(await cm.stats()).toMatchObject({ agents: 1, open: 0, halfOpen: 1 });
    expect(await cm.circuit('user-1')).toBeUndefined();
    await clock.advance(30_099);
    expect(await cm.circuit('user-0')).toMatchObject({ state: 'half_open' });
    await clock.advance(1); // a minute after it half-opened
    expect(await cm.stats()).toMatchObject({ agents: 0, open: 0, halfOpen: 0 });
    // what was forgotten starts afresh: one failure does not open it
    expect(await cm.coordinate(sender, 'user-0', 'later')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.circuit('user-0')).toMatchObject({ state: 'closed', consecutiveFailures: 1 });
  });

  it('takes the largest resetAfterMs it accepts: a name failing below the threshold keeps its circuit, the manager its pid', async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 2, resetAfterMs: Number.MAX_VALUE });
    const sender = idler(node);
    const pid = cm.pid;
    // one failure: the circuit holds only its breaker's memory, so its quiet timer is armed (ten reset periods, past any finite delay)
    expect(await cm.coordinate(sender, 'nobody', 'hi')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    await node.idle();
    expect(String(cm.pid)).toBe(String(pid));
    expect(await cm.circuit('nobody')).toEqual({ state: 'closed', consecutiveFailures: 1, buffered: 0, inFlight: 0 });
    expect(await cm.coordinate(sender, 'nobody', 'again')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.circuit('nobody')).toEqual({ state: 'open', consecutiveFailures: 2, buffered: 0, inFlight: 0 });
    expect(String(cm.pid)).toBe(String(pid));
  });

  it('while open, a message is buffered, not delivered: the receiver has not seen it', async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 2 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 2);
    const r = receiver(node, { name: 'svc' }); // back, but the circuit is still open
    const events = captureEvents(node, ['keel.coordination_manager.buffered']);
    const out = await cm.coordinate(sender, 'svc', 'wait');
    expect(out).toEqual({ outcome: 'buffered', id: out.id, position: 1 });
    const second = await cm.coordinate(sender, 'svc', 'wait too');
    expect(second).toEqual({ outcome: 'buffered', id: second.id, position: 2 });
    // the handle's default ids: its name and a count of its coordinate calls (two opened the circuit)
    expect([out.id, second.id]).toEqual([`${cm.name}:3`, `${cm.name}:4`]);
    await node.idle();
    expect(r.seen).toEqual([]);
    expect(await cm.stats()).toMatchObject({ delivered: 0, bufferedTotal: 2, buffered: 2, flushed: 0 });
    expect(events.events.map((e) => [e.measurements.position, e.metadata.id])).toEqual([[1, out.id], [2, second.id]]);
  });

  it('after resetAfterMs the first buffered message is the probe; its success closes the circuit and flushes the rest in order', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 2, resetAfterMs: 1000 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 2);
    const outs: CoordinationOutcome[] = [];
    for (let i = 1; i <= 5; i++) outs.push(await cm.coordinate(sender, 'svc', `m${i}`));
    expect(outs.map((o) => o.outcome === 'buffered' && o.position)).toEqual([1, 2, 3, 4, 5]);
    const r = receiver(node, { name: 'svc' });
    const events = captureEvents(node, ['keel.coordination_manager.circuit']);
    await clock.advance(999);
    await node.idle();
    expect(r.seen).toEqual([]);
    await clock.advance(1);
    await node.idle();
    expect(messages(r)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5']);
    expect(r.seen.map((s) => s.id)).toEqual(outs.map((o) => o.id));
    expect(events.events.map((e) => e.event)).toEqual(['keel.coordination_manager.circuit_half_open', 'keel.coordination_manager.circuit_closed']);
    expect(await cm.stats()).toMatchObject({ flushed: 5, buffered: 0, bufferedTotal: 5, open: 0, halfOpen: 0, agents: 0 });
    expect(await cm.coordinate(sender, 'svc', 'after')).toMatchObject({ outcome: 'delivered' });
    expect(messages(r)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'after']);
  });

  it('messages coordinated while the buffer is being flushed wait behind it (order kept)', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 1 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    await cm.coordinate(sender, 'svc', 'b1');
    await cm.coordinate(sender, 'svc', 'b2');
    const r = receiver(node, { name: 'svc' });
    await r.hold(); // the probe will wait in its mailbox
    await clock.advance(1000);
    expect(await cm.circuit('svc')).toMatchObject({ state: 'half_open', inFlight: 1, buffered: 1 });
    expect(await cm.coordinate(sender, 'svc', 'new')).toMatchObject({ outcome: 'buffered', position: 2 });
    r.release();
    await node.idle();
    expect(messages(r)).toEqual(['b1', 'b2', 'new']);
  });

  it('a failed probe is dead-lettered, re-opens the circuit and re-arms the timer; the rest stays buffered in order', async () => {
    const { node, clock } = setup();
    const events = captureEvents(node, ['keel.coordination_manager.']);
    const cm = await start(node, { failureThreshold: 1 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const probe = await cm.coordinate(sender, 'svc', 'p1');
    await cm.coordinate(sender, 'svc', 'p2');
    await cm.coordinate(sender, 'svc', 'p3');
    await clock.advance(1000); // half-open: p1 is the probe, and 'svc' is still not there
    await node.idle();
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open', buffered: 2 });
    const dead = await deadLetters(node);
    expect(dead.map((d) => [d.message, d.reason, d.recipient, d.metadata.id])).toEqual([['p1', 'noproc', 'svc', probe.id]]);
    const r = receiver(node, { name: 'svc' });
    await clock.advance(1000);
    await node.idle();
    expect(messages(r)).toEqual(['p2', 'p3']);
    expect(events.events.map((e) => e.event.replace('keel.coordination_manager.', ''))).toEqual([
      'circuit_opened', 'buffered', 'buffered', 'buffered', 'circuit_half_open', 'circuit_opened', 'dead_lettered', 'circuit_half_open', 'circuit_closed',
    ]);
    expect(await cm.stats()).toMatchObject({ bufferedTotal: 3, flushed: 2, deadLettered: 1, agents: 0 });
  });

  it('a half-open circuit with an empty buffer lets the next coordinate through as the probe', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 1 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    await clock.advance(1000);
    expect(await cm.circuit('svc')).toMatchObject({ state: 'half_open' });
    // a failing probe is reported to its caller (not dead-lettered) and re-opens
    expect(await cm.coordinate(sender, 'svc', 'probe-1')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open' });
    await clock.advance(1000);
    const r = receiver(node, { name: 'svc' });
    expect(await cm.coordinate(sender, 'svc', 'probe-2')).toMatchObject({ outcome: 'delivered' });
    expect(messages(r)).toEqual(['probe-2']);
    expect(await cm.circuit('svc')).toBeUndefined();
    expect(await deadLetters(node)).toEqual([]);
  });

  it('a failure while flushing dead-letters that message and re-opens, the rest stays buffered in order', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 1 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    for (const m of ['a', 'poison', 'b', 'c']) await cm.coordinate(sender, 'svc', m);
    const first: unknown[] = [];
    node.spawn(() => (m: unknown) => {
      if (m === 'poison') throw new Error('poisoned');
      first.push(m);
    }, { name: 'svc' });
    await clock.advance(1000);
    await node.idle();
    expect(first).toEqual(['a']);
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open', buffered: 2 });
    expect((await deadLetters(node)).map((d) => [d.message, d.reason])).toEqual([['poison', 'process_down']]);
    const r = receiver(node, { name: 'svc' });
    await clock.advance(1000);
    await node.idle();
    expect(messages(r)).toEqual(['b', 'c']);
    expect(await cm.stats()).toMatchObject({ flushed: 3, deadLettered: 1, buffered: 0 });
  });

  it('a full buffer dead-letters the message and reports it failed with the dead letter id', async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 2 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    await cm.coordinate(sender, 'svc', 1);
    await cm.coordinate(sender, 'svc', 2);
    const out = await cm.coordinate(sender, 'svc', 3);
    expect(out).toEqual({ outcome: 'failed', id: out.id, reason: 'buffer_full', deadLetterId: expect.any(String) });
    // the id it reports is the queue's one entry
    expect((await deadLetters(node)).map((d) => d.id)).toEqual([(out as { deadLetterId: string }).deadLetterId]);
    const entry = ok(await node.deadLetters.get((out as { deadLetterId: string }).deadLetterId));
    expect(entry).toMatchObject({ message: 3, reason: 'buffer_full', recipient: 'svc', metadata: { id: out.id, sender: String(sender) } });
    expect(await cm.stats()).toMatchObject({ buffered: 2, bufferedTotal: 2, deadLettered: 1, failed: 2 });
  });

  it("with onBufferFull: 'reject' a full buffer reports failed and dead-letters nothing", async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 0, onBufferFull: 'reject' });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const out = await cm.coordinate(sender, 'svc', 'x');
    expect(out).toEqual({ outcome: 'failed', id: out.id, reason: 'buffer_full' });
    await node.idle();
    expect(await deadLetters(node)).toEqual([]);
  });

  it('reports a dead letter queue that is off instead of pretending', async () => {
    const { node } = clockedNode(track, { services: false });
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 0 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    expect(await cm.coordinate(sender, 'svc', 'x')).toMatchObject({ outcome: 'failed', reason: 'buffer_full', deadLetterUnavailable: true });
    expect(await cm.stats()).toMatchObject({ deadLettered: 0, deadLetterUnavailable: 1 });
  });

  it('logs a dead letter queue that is off once per message, as a warning naming it', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { services: false, logger });
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 0 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const out = await cm.coordinate(sender, 'svc', 'x', { id: 'off-1' });
    expect(out).toEqual({ outcome: 'failed', id: 'off-1', reason: 'buffer_full', deadLetterUnavailable: true });
    expect(logger.warn.mock.calls).toEqual([["coordination: message off-1 to 'svc' failed (buffer_full) and the dead letter queue is unavailable"]]);
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('reports a message the dead letter queue refuses (it cannot store it), logged once as an error with the refusal', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { services: QUIET_DLQ, logger });
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 0 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const out = await cm.coordinate(sender, 'svc', { onDone: () => undefined }, { id: 'fn-1' });
    expect(out).toEqual({ outcome: 'failed', id: 'fn-1', reason: 'buffer_full', deadLetterUnavailable: true });
    expect(logger.error).toHaveBeenCalledTimes(1);
    const [text, error] = logger.error.mock.calls[0]!;
    expect(text).toBe("coordination: message fn-1 to 'svc': the dead letter queue refused the message (buffer_full)");
    expectKeelError(error, 'ERR_NOT_SERIALIZABLE', 'message.onDone');
    expect(logger.warn).not.toHaveBeenCalled();
    expect(await cm.stats()).toMatchObject({ deadLettered: 0, deadLetterUnavailable: 1, failed: 2 });
    expect(await deadLetters(node)).toEqual([]);
  });
});

describe('CoordinationManager: agents that die', () => {
  it('monitors a pid receiver once through the monitor manager; its death dead-letters its buffer and releases every bit of state', async () => {
    const { node } = setup();
    const cm = await start(node, { ack: 'enqueued', failureThreshold: 2 });
    const events = captureEvents(node, ['keel.coordination_manager.agent_released']);
    const sender = idler(node);
    const r = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await r.hold();
    expect(await cm.coordinate(sender, r.pid, 'fills')).toMatchObject({ outcome: 'delivered' });
    expect(await cm.coordinate(sender, r.pid, 'x')).toMatchObject({ outcome: 'failed', reason: 'mailbox_full' });
    expect(await cm.coordinate(sender, r.pid, 'y')).toMatchObject({ outcome: 'failed', reason: 'mailbox_full' });
    const b1 = await cm.coordinate(sender, r.pid, 'b1');
    const b2 = await cm.coordinate(sender, r.pid, 'b2');
    expect([b1.outcome, b2.outcome]).toEqual(['buffered', 'buffered']);
    const mine = listOf(node).filter((m) => m.tag === 'coordination');
    expect(mine.map((m) => [m.owner, m.target])).toEqual([[cm.pid, r.pid]]);
    node.exit(r.pid, 'kill');
    await node.idle();
    const dead = await deadLetters(node);
    expect(dead.map((d) => [d.message, d.reason, d.metadata.id])).toEqual([['b1', 'receiver_down', b1.id], ['b2', 'receiver_down', b2.id]]);
    expect(await cm.circuit(r.pid)).toBeUndefined();
    expect(await cm.stats()).toMatchObject({ agents: 0, open: 0, buffered: 0, deadLettered: 2, bufferedTotal: 2 });
    expect(listOf(node).filter((m) => m.tag === 'coordination')).toEqual([]);
    expect(events.events.map((e) => [e.metadata.receiver, e.measurements.deadLettered, e.metadata.reason])).toEqual([[r.pid, 2, 'receiver_down']]);
  });

  it('cancels the reset timer of a dead receiver (no timer left behind)', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { failureThreshold: 1, timeout: 100 });
    const sender = idler(node);
    const stuck = deferred();
    const slow = node.spawn(() => () => stuck.promise);
    const w = watch(cm.coordinate(sender, slow, 'never'));
    await clock.advance(100);
    expect(await cm.circuit(slow)).toMatchObject({ state: 'open' });
    expect(w.value).toMatchObject({ outcome: 'failed', reason: 'timeout' });
    const timers = node.internals().timers;
    node.exit(slow, 'kill');
    expect(await cm.stats()).toMatchObject({ agents: 0, open: 0 });
    expect(node.internals().timers).toBe(timers - 1);
    stuck.resolve();
  });

  it('dead-letters what is still buffered when the manager stops for good (a normal stop)', async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 1 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    await cm.coordinate(sender, 'svc', 'pending');
    await GenServer.stop(node, cm.pid);
    await node.idle();
    expect((await deadLetters(node)).map((d) => [d.message, d.reason])).toEqual([['pending', 'coordinator_stopped']]);
  });
});

describe('CoordinationManager: the manager itself goes away', () => {
  it('answers coordinator_down to a caller still waiting, and the unstarted copy is withdrawn (never handled)', async () => {
    const { node } = setup();
    const cm = await start(node);
    const r = receiver(node);
    await r.hold();
    const w = watch(cm.coordinate(idler(node), r.pid, 'job'));
    expect(await cm.circuit(r.pid)).toMatchObject({ inFlight: 1 });
    const old = cm.pid;
    node.exit(old, 'kill');
    r.release();
    await node.idle();
    expect(w.value).toEqual({ outcome: 'failed', id: w.value?.id, reason: 'coordinator_down' });
    expect(r.seen).toEqual([]);
    // restarted by its supervisor under the same name, it resumes its table: the delivery in flight at the kill is reported unconfirmed
    expect(cm.pid).not.toBe(old);
    expect(await cm.stats()).toMatchObject({ agents: 1, inFlight: 0, unconfirmed: 1, delivered: 0 });
    expect(await cm.coordinate(idler(node), r.pid, 'again')).toMatchObject({ outcome: 'delivered' });
  });
});

describe('CoordinationManager: one bad agent never crashes it', () => {
  it('survives crashing receivers, full mailboxes, dead pids, itself as a receiver, hostile messages and stray calls', async () => {
    const { node } = setup();
    const cm = await start(node, { failureThreshold: 1, bufferCapacity: 0 });
    const pid = cm.pid;
    const sender = idler(node);
    const hostile = {
      get boom(): never {
        throw new Error('do not touch');
      },
    };
    const proxy = new Proxy({}, { get: () => { throw new Error('trap'); }, ownKeys: () => { throw new Error('trap'); } });

    const crasher = node.spawn(() => (): never => {
      throw new Error('bad agent');
    });
    expect(await cm.coordinate(sender, crasher, 'x')).toMatchObject({ outcome: 'failed', reason: 'process_down' });
    const full = receiver(node, { mailbox: { capacity: 1, overflow: 'reject' } });
    await full.hold();
    node.send(full.pid, 'filler');
    expect(await cm.coordinate(sender, full.pid, 'x')).toMatchObject({ outcome: 'failed', reason: 'mailbox_full' });
    expect(await cm.coordinate(sender, full.pid, hostile)).toMatchObject({ outcome: 'failed', reason: 'buffer_full' });
    expect(await cm.coordinate(sender, full.pid, proxy)).toMatchObject({ outcome: 'failed', reason: 'buffer_full' });
    expect(await cm.coordinate(sender, deadPid(node), 'x')).toMatchObject({ outcome: 'failed', reason: 'noproc' });
    expect(await cm.coordinate(sender, cm.pid, 'x')).toMatchObject({ outcome: 'failed', reason: 'deadlock' });
    expect(await cm.coordinate(sender, cm.name, 'x')).toMatchObject({ outcome: 'failed', reason: 'deadlock' });
    // a malformed call gets a typed error as its answer
    expectKeelError(await GenServer.call(node, cm.name, { type: 'nonsense' } as never), 'ERR_INVALID_ARGUMENT', '`request`');
    expectKeelError(await GenServer.call(node, cm.name, null as never), 'ERR_INVALID_ARGUMENT', '`request`');
    expectKeelError(await GenServer.call(node, cm.name, { type: 'coordinate', sender: 'me' } as never), 'ERR_INVALID_ARGUMENT', '`sender`');
    expectKeelError(await GenServer.call(node, cm.name, { type: 'circuit', receiver: {} } as never), 'ERR_INVALID_ARGUMENT', '`receiver`');
    node.send(cm.pid, { kind: 'down', ref: 'fake' });
    node.send(cm.pid, 'junk');
    expect(await cm.stats()).toMatchObject({ agents: 1, open: 1 }); // the full receiver's circuit; the crasher's went with it

    const good = receiver(node);
    expect(await cm.coordinate(sender, good.pid, hostile)).toMatchObject({ outcome: 'delivered' });
    expect(await cm.coordinate(sender, good.pid, proxy)).toMatchObject({ outcome: 'delivered' });
    expect(good.seen).toHaveLength(2);
    expect(cm.pid).toBe(pid);
    expect(node.isAlive(pid)).toBe(true);
    full.release();
  });
});

describe('CoordinationManager: every message is accounted for', () => {
  it('N messages to a flaky receiver each end delivered (counted by the receiver), dead-lettered, or reported failed', async () => {
    const { node, clock } = setup();
    const N = 60;
    const handled: string[] = [];
    // a receiver restarted by its supervisor, that crashes in bursts (n % 10 in 3..5) and on every seventh message
    await Supervisor.start(node, [{
      id: 'flaky',
      start: (ctx) => ctx.spawnLink((c) => (m: unknown) => {
        const n = (m as { n: number }).n;
        if ((n % 10 >= 3 && n % 10 <= 5) || n % 7 === 0) throw new Error('flaky');
        handled.push(c.messageId!);
      }, { name: 'flaky' }),
    }], { maxRestarts: 1000, withinMs: 1 });
    const cm = await start(node, { failureThreshold: 2, resetAfterMs: 100, bufferCapacity: 4 });
    const sender = idler(node);
    const outcomes: CoordinationOutcome[] = [];
    for (let n = 0; n < N; n++) {
      outcomes.push(await cm.coordinate(sender, 'flaky', { n }));
      if (n % 3 === 2) await clock.advance(100);
    }
    for (let i = 0; i < 50 && ((await cm.stats()).buffered > 0 || (await cm.stats()).inFlight > 0); i++) {
      await clock.advance(100);
      await node.idle();
    }
    await node.idle();
    const stats = await cm.stats();
    expect(stats).toMatchObject({ buffered: 0, inFlight: 0 });

    const dead = new Set((await deadLetters(node)).map((d) => d.metadata.id as string));
    const reported = new Set(outcomes.filter((o) => o.outcome === 'failed' && o.deadLetterId === undefined).map((o) => o.id));
    const delivered = new Set(handled);
    expect(delivered.size).toBe(handled.length); // none handled twice
    for (const o of outcomes) {
      const where = [delivered.has(o.id), dead.has(o.id), reported.has(o.id)].filter(Boolean);
      expect(where, `message ${o.id} (${o.outcome})`).toHaveLength(1);
    }
    expect(delivered.size + dead.size + reported.size).toBe(N);
    // every path was taken, and the stats agree
    expect(outcomes.filter((o) => o.outcome === 'delivered').map((o) => o.id).every((id) => delivered.has(id))).toBe(true);
    expect(outcomes.filter((o) => o.outcome === 'buffered').map((o) => o.id).every((id) => delivered.has(id) || dead.has(id))).toBe(true);
    expect(stats.delivered + stats.failed + stats.bufferedTotal).toBe(N);
    expect(stats.deadLettered).toBe(dead.size);
    expect(stats.delivered + stats.flushed).toBe(delivered.size);
    const kinds = new Set(outcomes.map((o) => (o.outcome === 'failed' ? o.reason : o.outcome)));
    expect([...kinds].sort()).toEqual(['buffer_full', 'buffered', 'delivered', 'process_down']);

    // The receiver crashes on a message by its n alone: 25 of the 60 crash, 35 can be handled.
    const crashes = (n: number): boolean => (n % 10 >= 3 && n % 10 <= 5) || n % 7 === 0;
    const crashing = outcomes.filter((_, n) => crashes(n)).map((o) => o.id);
    const handleable = outcomes.filter((_, n) => !crashes(n)).map((o) => o.id);
    expect([crashing.length, handleable.length]).toEqual([25, 35]);
    // How the 60 answers split depends on when the circuit opens and its buffer fills; on the
    // TestClock that is the same every run: 10 delivered at once, 35 buffered, 13 crashes reported
    // to their callers (sent at once, or as the probe of a half-open circuit), 2 refused by a full buffer.
    const answered = (kind: string): CoordinationOutcome[] => outcomes.filter((o) => (o.outcome === 'failed' ? o.reason : o.outcome) === kind);
    const bufferFull = answered('buffer_full');
    expect([answered('delivered').length, answered('buffered').length, answered('process_down').length, bufferFull.length]).toEqual([10, 35, 13, 2]);
    // what follows from that split: every handleable message is handled but those refused by the full
    // buffer (dead-lettered); every crashing one is reported, or dead-lettered when its flush failed
    const bufferFullIds = new Set(bufferFull.map((o) => o.id));
    expect(bufferFull.every((o) => o.outcome === 'failed' && o.deadLetterId !== undefined && handleable.includes(o.id))).toBe(true);
    expect([...delivered].sort()).toEqual(handleable.filter((id) => !bufferFullIds.has(id)).sort());
    expect([...reported].every((id) => crashing.includes(id))).toBe(true);
    expect(reported.size).toBe(13);
    expect([...dead].filter((id) => !bufferFullIds.has(id)).sort()).toEqual(crashing.filter((id) => !reported.has(id)).sort()); // flush failures
    expect(dead.size).toBe(2 + (25 - 13));
    expect(stats).toEqual({
      agents: 0,
      open: 0,
      halfOpen: 0,
      buffered: 0,
      inFlight: 0,
      delivered: 10,
      failed: 13 + 2,
      bufferedTotal: 35,
      flushed: 35 - 2 - 10, // the handled ones that were buffered
      deadLettered: 2 + (25 - 13),
      deadLetterUnavailable: 0,
      unconfirmed: 0,
      redelivered: 0,
    });
  });
});

describe('CoordinationManager: a buffered message that times out while being flushed', () => {
  /** A receiver registered as `name` that holds `slow` (the first time) until `gate` opens; it records what it handled. */
  function slowReceiver(node: Node, name: string, slow: unknown) {
    const handled: unknown[] = [];
    const started = deferred();
    const gate = deferred();
    let first = true;
    node.spawn(() => async (m: unknown) => {
      if (m === slow && first) {
        first = false;
        started.resolve();
        await gate.promise;
      }
      handled.push(m);
    }, { name });
    return { handled, started: started.promise, release: () => gate.resolve() };
  }

  it('started by the receiver before the timeout: handled once, not dead-lettered (the queue would retry it), reported unconfirmed', async () => {
    const { node, clock } = clockedNode(track); // the default dead letter queue: it retries after about a second
    const cm = await start(node, { timeout: 100, failureThreshold: 1, resetAfterMs: 50 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const buffered = await cm.coordinate(sender, 'svc', 'slow');
    expect(buffered).toMatchObject({ outcome: 'buffered' });
    const r = slowReceiver(node, 'svc', 'slow');
    const events = captureEvents(node, ['keel.coordination_manager.unconfirmed', 'keel.coordination_manager.dead_lettered']);
    await clock.advance(50); // half-open: 'slow' is the probe
    await r.started;
    await clock.advance(100); // it times out while the receiver handles it
    expect(await cm.circuit('svc')).toMatchObject({ state: 'open', inFlight: 0 });
    r.release();
    await node.idle();
    for (let i = 0; i < 10; i++) await clock.advance(1000); // any retry from the dead letter queue would come now
    await node.idle();
    expect(r.handled).toEqual(['slow']);
    expect(await deadLetters(node)).toEqual([]);
    expect(events.events.map((e) => [e.event, e.metadata.id, e.metadata.reason])).toEqual([['keel.coordination_manager.unconfirmed', buffered.id, 'timeout']]);
    expect(await cm.stats()).toMatchObject({ bufferedTotal: 1, flushed: 0, deadLettered: 0, unconfirmed: 1, inFlight: 0 });
  });

  it('not started by the receiver: taken back from its mailbox and dead-lettered, so the queue delivers it once', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { timeout: 100, failureThreshold: 1, resetAfterMs: 50 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const buffered = await cm.coordinate(sender, 'svc', 'waiting');
    const r = slowReceiver(node, 'svc', 'busy');
    node.send('svc', 'busy'); // the receiver is busy: the probe waits in its mailbox
    await r.started;
    await clock.advance(50);
    await clock.advance(100);
    await node.settle();
    const dead = await deadLetters(node);
    expect(dead.map((d) => [d.message, d.reason, d.metadata.id])).toEqual([['waiting', 'timeout', buffered.id]]);
    r.release();
    await node.idle();
    expect(r.handled).toEqual(['busy']); // the withdrawn copy never reached the handler
    expect(await cm.stats()).toMatchObject({ deadLettered: 1, unconfirmed: 0, inFlight: 0 });
    expect(ok(await node.deadLetters.retry([dead[0]!.id]))).toMatchObject([{ ok: true }]);
    await node.idle();
    expect(r.handled).toEqual(['busy', 'waiting']);
  });

  it('held by a suspended receiver (never given to its callbacks): taken back and dead-lettered as one not started, never handled on resume; the queue delivers it once', async () => {
    const { node, clock } = setup();
    const cm = await start(node, { timeout: 100, failureThreshold: 1, resetAfterMs: 50 });
    const sender = idler(node);
    await openByName(cm, sender, 'svc', 1);
    const buffered = await cm.coordinate(sender, 'svc', 'waiting');
    const handled: unknown[] = [];
    const svc = await GenServer.start(node, { init: () => undefined, handleInfo: (m: unknown) => void handled.push(m) }, undefined, { name: 'svc' });
    await Sys.suspend(node, svc);
    await clock.advance(50); // half-open: the probe is held by the suspended receiver
    expect(await Sys.getStatus(node, svc)).toMatchObject({ status: 'suspended', queued: 1 });
    await clock.advance(100);
    await node.settle();
    expect(await Sys.getStatus(node, svc)).toMatchObject({ status: 'suspended', queued: 0 });
    const dead = await deadLetters(node);
    expect(dead.map((d) => [d.message, d.reason, d.metadata.id])).toEqual([['waiting', 'timeout', buffered.id]]);
    await Sys.resume(node, svc);
    await node.idle();
    expect(handled).toEqual([]); // the withdrawn copy never reached the handler
    expect(await cm.stats()).toMatchObject({ deadLettered: 1, unconfirmed: 0, inFlight: 0 });
    expect(ok(await node.deadLetters.retry([dead[0]!.id]))).toMatchObject([{ ok: true }]);
    await node.idle();
    expect(handled).toEqual(['waiting']);
  });
});

describe('CoordinationManager sent a message that cannot be inspected', () => {
  // the same defect as the supervisors' (fuzz seed 1005273782, path 93): `message instanceof C` throws on a
  // proxy whose traps throw, and the process crashed
  it('ignores it and keeps running', async () => {
    const node = track();
    const manager = await CoordinationManager.start(node, {});
    const pid = manager.pid;
    const before = await manager.stats();
    for (const [, make] of UNREADABLE) node.send(pid, make());
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(await manager.stats()).toEqual(before);
  });
});

describe('CoordinationManager: the reset time on the real clock (counted on the timers\' time: a wall clock stepped neither cuts nor stretches it)', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('an open circuit half-opens after resetAfterMs when the wall clock was stepped back an hour', async () => {
    const node = track({ services: QUIET_DLQ });
    const cm = await start(node, { failureThreshold: 1, resetAfterMs: 30 });
    const halfOpen = nextEvent(node, 'keel.coordination_manager.circuit_half_open');
    await openByName(cm, idler(node), 'svc', 1);
    stepWallClock(-HOUR);
    // on the wall clock, the reset timer fired before the reset time, an hour away, and waited for it
    expect(await settlesWithin(halfOpen, 4000)).toBe('settled');
  });

  it('an open circuit kept across a restart still waits resetAfterMs when the wall clock was stepped forward an hour', async () => {
    const node = track({ services: QUIET_DLQ });
    const cm = await start(node, { name: 'stepped', failureThreshold: 1, resetAfterMs: 300 });
    const halfOpen = nextEvent(node, 'keel.coordination_manager.circuit_half_open');
    const opened = performance.now();
    await openByName(cm, idler(node), 'svc', 1);
    stepWallClock(HOUR);
    await exitAndWait(node, cm.pid, 'kill');
    // on the wall clock, the successor found the reset time an hour past and half-opened at once
    await halfOpen;
    expect(performance.now() - opened).toBeGreaterThanOrEqual(300);
  });
});
