// The node-owned table a component keeps under its name: found again by a successor, released on
// a normal stop only, separate per node and per name; a table another component kind left under
// the name is discarded, not resumed; and start/stop cycles of the components leave nothing behind.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import { componentState, componentStates, endsForGood, peekComponentState, releaseComponentState, releaseIfInitFails } from '../../../src/agents/internal/componentState.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { DynamicSupervisor, GenServer, type Pid } from '../../../src/index.js';
import { captureEvents, expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, exitAndWait, idler, useNodes } from '../../support.js';

const track = useNodes();

/** Stops a component under the node's `keel.agents` supervisor as a supervisor does: exit `shutdown`, not restarted. */
async function shutDown(node: Parameters<typeof idler>[0], pid: Pid): Promise<void> {
  expect(await DynamicSupervisor.terminateChild(node, 'keel.agents', pid)).toBe('ok');
}

describe('componentState', () => {
  it('answers the table a predecessor left under the name (resumed), a new one otherwise; per node and per name', () => {
    const a = track();
    const b = track();
    let made = 0;
    const create = (): { n: number } => ({ n: ++made });
    const first = componentState(a, 'x', 'k', create);
    expect(first).toEqual({ state: { n: 1 }, resumed: false });
    first.state.n = 42;
    expect(componentState(a, 'x', 'k', create)).toEqual({ state: { n: 42 }, resumed: true });
    expect(componentState(a, 'x', 'k', create).state).toBe(first.state);
    expect(componentState(a, 'y', 'k', create)).toEqual({ state: { n: 2 }, resumed: false });
    expect(componentState(b, 'x', 'k', create)).toEqual({ state: { n: 3 }, resumed: false });
    expect(componentStates(a)).toEqual(['x', 'y']);
    releaseComponentState(a, 'x');
    expect(componentStates(a)).toEqual(['y']);
    expect(componentState(a, 'x', 'k', create)).toEqual({ state: { n: 4 }, resumed: false });
    releaseComponentState(a, 'never'); // nothing to release: no error
    expect(made).toBe(4);
  });

  it('never resumes a table another kind of component left under the name: it is discarded (its discard run), reported, and a new one made', () => {
    const a = track();
    const discarded: unknown[] = [];
    const events = captureEvents(a, ['keel.agent_state.discarded']);
    const router = componentState(a, 'x', 'router', () => ({ subs: 1 }), (s) => discarded.push(s));
    expect(componentState(a, 'x', 'scheduler', () => ({ schedules: 2 }))).toEqual({ state: { schedules: 2 }, resumed: false });
    expect(discarded).toEqual([router.state]);
    expect(events.events).toMatchObject([{ metadata: { name: 'x', kind: 'router', by: 'scheduler' } }]);
    expect(peekComponentState(a, 'x', 'router')).toBeUndefined();
    expect(peekComponentState(a, 'x', 'scheduler')).toEqual({ schedules: 2 });
    expect(componentState(a, 'x', 'scheduler', () => ({ schedules: 3 }))).toEqual({ state: { schedules: 2 }, resumed: true });
    // a discard that throws is reported with the event; the new table is made all the same
    componentState(a, 'y', 'router', () => ({}), () => {
      throw new Error('boom');
    });
    expect(componentState(a, 'y', 'other', () => ({ ok: true }))).toEqual({ state: { ok: true }, resumed: false });
    expect(events.events[1]?.metadata).toMatchObject({ name: 'y', kind: 'router', by: 'other', error: { message: 'boom' } });
  });

  it('releases a table made by a start whose process exits before its init is done; keeps a resumed one, and one whose init was done', async () => {
    const node = track();
    const made = probe(node);
    const table = componentState(node, 'made', 'k', () => ({}));
    releaseIfInitFails(made.ctx, 'made', table.state, table.resumed);
    await exitAndWait(node, made);
    expect(componentStates(node)).not.toContain('made');
    const done = probe(node);
    const kept = componentState(node, 'done', 'k', () => ({}));
    releaseIfInitFails(done.ctx, 'done', kept.state, kept.resumed)();
    await exitAndWait(node, done);
    const again = probe(node);
    const resumed = componentState(node, 'done', 'k', () => ({}));
    expect(resumed).toEqual({ state: kept.state, resumed: true });
    releaseIfInitFails(again.ctx, 'done', resumed.state, resumed.resumed);
    await exitAndWait(node, again);
    expect(componentStates(node)).toEqual(['done']);
  });

  it('ends for good on a normal exit only', () => {
    expect(endsForGood('normal')).toBe(true);
    for (const reason of ['shutdown', 'kill', 'killed', 'noproc', new Error('crash'), { shutdown: 'x' }] as const) expect(endsForGood(reason as never)).toBe(false);
  });
});

describe('componentState: one name, another component kind', () => {
  it('a router stopped with shutdown, then a coordination manager and a scheduler under its name: each starts empty', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'shared' });
    const sub = idler(node);
    await router.subscribe('a.*', sub);
    await shutDown(node, router.pid);
    expect(componentStates(node)).toEqual(['shared']); // kept for a router's restart
    const events = captureEvents(node, ['keel.agent_state.discarded']);
    const cm = await CoordinationManager.start(node, { name: 'shared' });
    expect(await cm.stats()).toMatchObject({ agents: 0, open: 0, buffered: 0, inFlight: 0, delivered: 0 });
    expect(await cm.coordinate(idler(node), sub, 'hi')).toMatchObject({ outcome: 'delivered' });
    expect(events.events).toMatchObject([{ metadata: { name: 'shared', kind: 'signal_router', by: 'coordination_manager' } }]);
    await shutDown(node, cm.pid);
    const scheduler = await AgentScheduler.start(node, { name: 'shared' });
    expect(await scheduler.stats()).toMatchObject({ schedules: 0, delivered: 0, resumed: 0 });
    expect(await scheduler.registerPeriodic(sub, 'beat', 1000, 'tick')).toBe('ok');
    await shutDown(node, scheduler.pid);
    const again = await SignalRouter.start(node, { name: 'shared' });
    expect(await again.stats()).toMatchObject({ subscribers: 0, subscriptions: 0, restarts: 0 });
    expect(events.events.map((e) => [e.metadata.kind, e.metadata.by])).toEqual([
      ['signal_router', 'coordination_manager'],
      ['coordination_manager', 'agent_scheduler'],
      ['agent_scheduler', 'signal_router'],
    ]);
    await shutDown(node, again.pid);
    expect(componentStates(node)).toEqual(['shared']); // one table under the name: the router's
    expectNoLeaks(node);
  });
});

describe('agent components: start/stop cycles', () => {
  it('100 cycles of each, used then stopped for good: no table, monitor or process left', async () => {
    const { node } = clockedNode(track);
    const agent = idler(node);
    const owner = probe(node); // their supervisor stand-in: started from it, they are not restarted
    for (let i = 0; i < 100; i++) {
      const router = await SignalRouter.start(owner.ctx);
      await router.subscribe('a', agent);
      const cm = await CoordinationManager.start(owner.ctx);
      await cm.coordinate(agent, agent, 'x');
      const scheduler = await AgentScheduler.start(owner.ctx);
      await scheduler.registerPeriodic(agent, 'p', 1000, 'tick');
      expect(componentStates(node)).toHaveLength(3);
      for (const h of [router, cm, scheduler]) await GenServer.stop(node, h.pid);
      expect(componentStates(node)).toEqual([]);
    }
    await node.idle();
    expect(node.isAlive(owner.ctx.self)).toBe(true);
    expectNoLeaks(node);
  });
});
