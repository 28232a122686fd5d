import { describe, expect, it } from 'vitest';
import { createRuntimeNode } from '../../src/runtime/Node.js';

const quiet = { info() {}, warn() {}, error() {} };
const tick = () => new Promise((r) => setImmediate(r));

describe('review: a death hook that sends an exit signal during a crash (not a signal) death', () => {
  it('queues it behind the link signals the death already queued: the linked process dies with the crash reason', async () => {
    const node = createRuntimeNode({ logger: quiet });
    const deaths: string[] = [];
    let a: any;
    const p = node.spawn((ctx) => {
      a = ctx.spawnLink(() => () => {});
      return () => {
        throw new Error('boom');
      };
    });
    await tick();
    node.onExit(a, (reason) => deaths.push(`A ${reason instanceof Error ? reason.message : String(reason)}`));
    node.onExit(p, () => node.exit(a, 'shutdown'));
    node.send(p, 'go');
    await tick();
    expect(deaths).toEqual(['A boom']); // 1ecc9c7: 'A boom'; 2cc898d: 'A shutdown'
    await node.shutdown();
  });
});

describe('review: node.exit and a proxy as the pid', () => {
  it('refuses it without running any of its traps', () => {
    const node = createRuntimeNode({ logger: quiet });
    let traps = 0;
    const proxy = new Proxy({}, { getPrototypeOf: () => (traps++, Object.prototype) });
    expect(() => node.exit(proxy as never, 'kill')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(traps).toBe(0); // 1ecc9c7: 0; 2cc898d: 1
    void node.shutdown();
  });
});

describe('review: a broken scheduler.now must not keep the loop from yielding', () => {
  it.each<[string, (() => number) | undefined]>([
    ['the default source', undefined],
    ['a source that throws', () => {
      throw new Error('broken');
    }],
    ['a source that returns NaN', () => NaN],
  ])('with %s, a self-sending storm yields to the event loop within a 1 ms slice', async (_label, now) => {
    const node = createRuntimeNode({ logger: quiet, scheduler: { sliceMs: 1, ...(now === undefined ? {} : { now }) } });
    let remaining = 200_000;
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    const pid = node.spawn((ctx) => () => {
      if (--remaining > 0) ctx.send(ctx.self, 'storm');
      else finished();
    });
    const atImmediate = new Promise<number>((r) => setImmediate(() => r(remaining)));
    node.send(pid, 'storm');
    expect(await atImmediate).toBeGreaterThan(0); // the event loop had a turn before the storm ended
    await done;
    await node.shutdown();
  });
});
