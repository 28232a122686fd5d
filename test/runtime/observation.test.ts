// The kernel's observation switches (for an observer): spawn times and handler time, each off until
// asked for, counted when several ask, and off again once the last remover runs.
import { describe, expect, it } from 'vitest';
import { kernelOf } from '../../src/runtime/kernel.js';
import { clockedNode, useNodes } from '../support.js';

const track = useNodes();

describe('Kernel.recordSpawnTimes', () => {
  it('records spawn times (coarse clock) while on; an older process is at least as old as the recording; off: nothing', async () => {
    const { node, clock } = clockedNode(track);
    const k = kernelOf(node);
    const before = node.spawn(() => () => undefined);
    expect(k.spawnedAt(k.resolve(before)!)).toBeUndefined();
    await clock.advance(100);
    const stopA = k.recordSpawnTimes();
    const stopB = k.recordSpawnTimes();
    await clock.advance(50);
    const during = node.spawn(() => () => undefined);
    expect(k.spawnedAt(k.resolve(during)!)).toEqual({ at: 1_000_150, exact: true });
    expect(k.spawnedAt(k.resolve(before)!)).toEqual({ at: 1_000_100, exact: false });
    stopA();
    stopA(); // a remover runs once
    expect(k.spawnedAt(k.resolve(during)!)).toEqual({ at: 1_000_150, exact: true });
    stopB();
    expect(k.spawnedAt(k.resolve(during)!)).toBeUndefined();
    const after = node.spawn(() => () => undefined);
    expect(k.spawnedAt(k.resolve(after)!)).toBeUndefined();
  });
});

describe('Kernel.measureHandlerTime', () => {
  it("sums each process's handler time on the scheduler's clock while on; undefined while off", async () => {
    let now = 0;
    const node = track({ scheduler: { now: () => now } });
    const k = kernelOf(node);
    const pid = node.spawn<number>(() => (ms) => {
      now += ms;
    });
    await node.idle();
    const p = k.resolve(pid)!;
    expect(k.handlerTimeOf(p)).toBeUndefined();
    node.send(pid, 7);
    await node.idle();
    expect(k.handlerTimeOf(p)).toBeUndefined(); // not measured before it was switched on
    const stop = k.measureHandlerTime();
    expect(k.handlerTimeOf(p)).toBe(0);
    node.send(pid, 20);
    node.send(pid, 5);
    await node.idle();
    expect(k.handlerTimeOf(p)).toBe(25);
    expect(k.schedulerNow()).toBe(now);
    stop();
    expect(k.handlerTimeOf(p)).toBeUndefined();
  });
});
