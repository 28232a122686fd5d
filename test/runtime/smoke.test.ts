import { describe, expect, it } from 'vitest';
import { createNode, isDown, isExit } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';

describe('smoke', () => {
  it('delivers, monitors, links and times', async () => {
    const clock = new TestClock({ start: 1000 });
    const node = createNode({ clock });
    const p = probe(node);
    const echo = node.spawn<string>((ctx) => (m) => { if (typeof m === 'string') ctx.send(p, `echo:${m}`); });
    node.send(echo, 'hi');
    expect(await p.receive()).toBe('echo:hi');
    const ref = p.ctx.monitor(echo);
    node.exit(echo, 'kill');
    const down = await p.receive(isDown);
    expect(isDown(down) && down.ref === ref && down.reason).toBe('killed');
    p.ctx.sendAfter(p, 'tick', 500);
    await clock.advance(499);
    expect(p.messages).not.toContain('tick');
    await clock.advance(1);
    expect(await p.receive((m) => m === 'tick')).toBe('tick');
    p.ctx.trapExits();
    const child = p.ctx.spawnLink(() => () => { throw new Error('boom'); });
    node.send(child, 'go');
    const exit = await p.receive(isExit);
    expect(isExit(exit) && exit.reason instanceof Error && exit.reason.message).toBe('boom');
    await node.shutdown();
  });
});
