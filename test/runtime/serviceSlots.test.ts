// The node's service slots as a user sees them: the common path is typed without a union to narrow,
// and a service that is not running (services: false, or a node that has shut down) is a typed
// error, ERR_SERVICE_UNAVAILABLE: thrown by the monitor manager's methods, the rejection of the dead
// letter queue's, with `available` to ask beforehand.
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  type DeadLetter,
  type DeadLetterQueue,
  type DeadLetterStats,
  isKeelError,
  isUnavailable,
  KeelError,
  type MonitorEntry,
  type MonitorManager,
  type MonitorStats,
  type Node,
  type Ref,
  type ServiceName,
  ServiceUnavailableError,
  type ServiceUnavailableReason,
} from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { expectServiceUnavailable, idler, rejection, thrown, useNodes } from '../support.js';

const track = useNodes();

/**
 * Every method of the monitor manager `monitors()` answers when called, with good arguments from a
 * process of `node` (made now, so that the calls can be made after the node has shut down too).
 */
function monitorCalls(node: Node, monitors: () => MonitorManager): [`monitors.${string}`, () => unknown][] {
  const p = probe(node);
  const target = idler(node);
  // eslint-disable-next-line keel/no-unmanaged-monitor -- a plain ref to hand to demonitor
  const ref = p.ctx.monitor(target);
  return [
    ['monitors.monitor', () => monitors().monitor(p.ctx, target, { tag: 't' })],
    ['monitors.demonitor', () => monitors().demonitor(p.ctx, ref, { flush: true })],
    ['monitors.list', () => monitors().list()],
    ['monitors.stats', () => monitors().stats()],
    ['monitors.findLeaks', () => monitors().findLeaks({ olderThanMs: 0 })],
  ];
}

/** Every method of the dead letter queue, with good arguments. */
function deadLetterCalls(dlq: DeadLetterQueue): [`deadLetters.${string}`, () => unknown][] {
  return [
    ['deadLetters.add', () => dlq.add({ recipient: 'x', message: { n: 1 }, reason: 'noproc' })],
    ['deadLetters.list', () => dlq.list({ status: 'pending', limit: 10 })],
    ['deadLetters.get', () => dlq.get('1')],
    ['deadLetters.retry', () => dlq.retry(['1'])],
    ['deadLetters.purge', () => dlq.purge({})],
    ['deadLetters.stats', () => dlq.stats()],
  ];
}

describe('service slot types', () => {
  it('types the common path without a union: await node.deadLetters.stats() is the stats, node.monitors.list() a MonitorEntry[]', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);

    // the code a user writes, with no narrowing
    const s = await node.deadLetters.stats();
    const pending: number = s.pending;
    expectTypeOf(s).toEqualTypeOf<DeadLetterStats>();
    expectTypeOf(s).toEqualTypeOf<{
      readonly pending: number;
      readonly parked: number;
      readonly added: number;
      readonly retried: number;
      readonly succeeded: number;
      readonly evicted: number;
      readonly refused: number;
      readonly failed: number;
    }>();
    expect(s).toEqual({ pending: 0, parked: 0, added: 0, retried: 0, succeeded: 0, evicted: 0, refused: 0, failed: 0 });
    expect(pending).toBe(0);

    const ref = node.monitors.monitor(p.ctx, target, { tag: 'typed' });
    expectTypeOf(ref).toEqualTypeOf<Ref>();
    const list = node.monitors.list();
    expectTypeOf(list).toEqualTypeOf<MonitorEntry[]>();
    expect(list.map((e) => [e.ref, e.tag])).toEqual([[ref, 'typed']]);
    expectTypeOf(node.monitors.findLeaks()).toEqualTypeOf<MonitorEntry[]>();
    const stats = node.monitors.stats();
    expectTypeOf(stats).toEqualTypeOf<MonitorStats>();
    expect(stats.active).toBe(1);
    const removed = node.monitors.demonitor(p.ctx, ref);
    expectTypeOf(removed).toEqualTypeOf<'ok' | 'not_found' | 'not_owner'>();
    expect(removed).toBe('ok');

    const id = await node.deadLetters.add({ recipient: 'x', message: 1, reason: 'noproc' });
    expectTypeOf(id).toEqualTypeOf<string>();
    const page = await node.deadLetters.list();
    expectTypeOf(page).toEqualTypeOf<{ entries: DeadLetter[]; cursor?: string }>();
    expect(page.entries.map((e) => e.id)).toEqual([id]);
    const one = await node.deadLetters.get(id);
    expectTypeOf(one).toEqualTypeOf<DeadLetter | undefined>();
    expect(one?.message).toBe(1);
    expectTypeOf(node.deadLetters.retry).returns.toEqualTypeOf<Promise<{ id: string; ok: boolean; reason?: string }[]>>();
    expectTypeOf(node.deadLetters.purge).returns.toEqualTypeOf<Promise<number>>();
    expect(await node.deadLetters.purge({})).toBe(1);

    expectTypeOf(node.monitors.available).toEqualTypeOf<boolean>();
    expectTypeOf(node.deadLetters.available).toEqualTypeOf<boolean>();
    expect([node.monitors.available, node.deadLetters.available]).toEqual([true, true]);
  });

  it('types the error: a KeelError whose service and reason are literal unions', () => {
    const e = new ServiceUnavailableError('deadLetters', 'disabled', 'deadLetters.stats');
    expectTypeOf(e).toMatchTypeOf<KeelError>();
    expectTypeOf(e.service).toEqualTypeOf<ServiceName>();
    expectTypeOf<ServiceName>().toEqualTypeOf<'monitors' | 'deadLetters'>();
    expectTypeOf(e.reason).toEqualTypeOf<ServiceUnavailableReason>();
    expectTypeOf<ServiceUnavailableReason>().toEqualTypeOf<'disabled' | 'node_stopped'>();
    expectTypeOf(e.operation).toEqualTypeOf<string>();
    expect(e).toBeInstanceOf(KeelError);
    expect(isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')).toBe(true);
    expectServiceUnavailable(e, 'deadLetters.stats', 'disabled');
  });
});

describe('a service that is not running', () => {
  it.each([
    ['services: false', 'disabled', false],
    ['services: false, after shutdown', 'disabled', true],
    ['a node that has shut down', 'node_stopped', true],
  ] as const)('%s: every monitor manager method throws ServiceUnavailableError at once, with reason %s', async (_what, reason, shutDown) => {
    const node = track(reason === 'disabled' ? { services: false } : {});
    const kept = node.monitors;
    const throughNode = monitorCalls(node, () => node.monitors);
    const throughKept = monitorCalls(node, () => kept);
    if (shutDown) await node.shutdown();
    expect([node.monitors.available, kept.available]).toEqual([false, false]);
    for (const [operation, call] of [...throughNode, ...throughKept]) expectServiceUnavailable(thrown(call), operation, reason);
  });

  it.each([
    ['services: false', 'disabled', false],
    ['services: false, after shutdown', 'disabled', true],
    ['a node that has shut down', 'node_stopped', true],
  ] as const)('%s: every dead letter queue method returns a promise that rejects with ServiceUnavailableError, reason %s, and never throws', async (_what, reason, shutDown) => {
    const node = track(reason === 'disabled' ? { services: false } : {});
    const kept = node.deadLetters;
    if (shutDown) await node.shutdown();
    for (const dlq of [node.deadLetters, kept]) {
      expect(dlq.available).toBe(false);
      for (const [operation, call] of deadLetterCalls(dlq)) expectServiceUnavailable(await rejection(call), operation, reason);
    }
  });

  it('names the node option and the way to ask first in its message', async () => {
    const off = track({ services: false });
    const e = await rejection(() => off.deadLetters.stats());
    expect((e as Error).message).toBe(
      '`node.deadLetters.stats` cannot run: the node was created with `services: false`, so it has no dead letter queue; create the node without `services: false`, or check `node.deadLetters.available` first',
    );
    const stopped = track();
    await stopped.shutdown();
    expect((thrown(() => stopped.monitors.list()) as Error).message).toBe(
      '`node.monitors.list` cannot run: the node has shut down, and its monitor manager with it; check `node.monitors.available` first',
    );
  });

  it('stays available while the node shuts down, until the processes are gone and the queue has closed', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const ref = node.monitors.monitor(p.ctx, target);
    const stopping = node.shutdown();
    // the shutdown has begun: the services still answer (a send still waiting hands its message over)
    expect([node.monitors.available, node.deadLetters.available]).toEqual([true, true]);
    expect(node.monitors.list().map((e) => e.ref)).toEqual([ref]);
    expect(typeof (await node.deadLetters.add({ recipient: 'x', message: 1, reason: 'noproc' }))).toBe('string');
    await stopping;
    expect([node.monitors.available, node.deadLetters.available]).toEqual([false, false]);
  });

  it('keeps isUnavailable working for values (deprecated): true only for { error: "unavailable" }, never for the error or an answer', async () => {
    const node = track({ services: false });
    const error = thrown(() => node.monitors.stats());
    expect(isUnavailable({ error: 'unavailable' })).toBe(true);
    expect([isUnavailable(error), isUnavailable({ pending: 0 }), isUnavailable(null), isUnavailable('unavailable')]).toEqual([false, false, false, false]);
    const on = track();
    expect(isUnavailable(await on.deadLetters.stats())).toBe(false);
  });
});
