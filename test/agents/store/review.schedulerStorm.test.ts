// The AgentScheduler killed 5 times in a row while its schedules fire: every due time is delivered
// or counted as skipped (one catch-up delivery at each resume), none twice, no monitor left over.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { captureEvents, expectNoLeaks } from '../../../src/testing/index.js';
import { clockedNode, exitAndWait, useNodes } from '../../support.js';

const track = useNodes();

describe('AgentScheduler restart storm', () => {
  it('killed 5 times while schedules fire: delivered + skipped = due times passed, each delivery once', async () => {
    const { node, clock } = clockedNode(track);
    const scheduler = await AgentScheduler.start(node, { name: 'storm' });
    const got: unknown[] = [];
    const agent = node.spawn(() => (m: unknown) => {
      got.push(m);
    }, { name: 'worker' });
    expect(await scheduler.registerPeriodic('worker', 'a', 100, 'a')).toBe('ok');
    expect(await scheduler.registerPeriodic(agent, 'b', 100, 'b', { missed: 'catch_up' })).toBe('ok');
    const resumed = captureEvents(node, ['keel.agent_scheduler.resumed']);
    for (let k = 0; k < 5; k++) {
      await clock.advance(250);
      await node.idle();
      await exitAndWait(node, scheduler.pid); // restarted by keel.agents at once
      await clock.advance(330); // due times pass while it is restarted (the first fires at resume)
      await node.idle();
    }
    await clock.advance(120);
    await node.idle();
    expect(resumed.events).toHaveLength(5);
    const elapsed = 5 * (250 + 330) + 120;
    const dueTimes = Math.floor(elapsed / 100);
    const stats = await scheduler.stats();
    const [a, b] = await scheduler.list(agent);
    expect(a!.deliveries + a!.skipped).toBe(dueTimes);
    expect(b!.deliveries + b!.skipped).toBe(dueTimes);
    expect(got.filter((m) => m === 'a')).toHaveLength(a!.deliveries);
    expect(got.filter((m) => m === 'b')).toHaveLength(b!.deliveries);
    expect(stats).toMatchObject({ schedules: 2, agents: 1, delivered: a!.deliveries + b!.deliveries, failed: 0, resumed: 2, dropped: 0 });
    expectNoLeaks(node);
  });
});
