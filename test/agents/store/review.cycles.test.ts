// Many start/stop cycles of each component: nothing accumulates on the node (tables, monitors,
// processes) once each stops for good.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { CoordinationManager } from '../../../src/agents/coordination/CoordinationManager.js';
import { componentStates } from '../../../src/agents/internal/componentState.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import { GenServer } from '../../../src/index.js';
import { expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, idler, useNodes } from '../../support.js';

const track = useNodes();

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
