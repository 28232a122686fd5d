// A table kept under a name after a 'shutdown' stop belongs to the component kind that left it: a
// different component kind started later under the same name starts empty (the kept table is
// discarded and reported), rather than crashing or resuming another kind's state as its own.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { DynamicSupervisor, type Pid } from '../../../src/index.js';
import { captureEvents, expectNoLeaks } from '../../../src/testing/index.js';
import { clockedNode, idler, useNodes } from '../../support.js';

const track = useNodes();

/** Stops a component under the node's `keel.agents` supervisor as a supervisor does: exit `shutdown`, not restarted. */
async function shutDown(node: Parameters<typeof idler>[0], pid: Pid): Promise<void> {
  expect(await DynamicSupervisor.terminateChild(node, 'keel.agents', pid)).toBe('ok');
}

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
