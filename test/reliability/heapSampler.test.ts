import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { fullGc, heapLine, HEAP_TOLERANCE_MIN_BYTES, HeapSampler, type HeapReport, warmupSeconds } from '../../src/cli/heapSampler.js';
import { TestClock } from '../../src/testing/index.js';
import { deferred, HOUR, stepWallClock, useNodes } from '../support.js';

const MB = 1024 * 1024;
const track = useNodes();

function report(overrides: Partial<HeapReport>): HeapReport {
  return { samples: 3, gc: true, warmupS: 2, startBytes: 10 * MB, endBytes: 10 * MB, maxBytes: 10 * MB, growthBytes: 0, toleranceBytes: 4 * MB, flat: true, measured: true, series: [], ...overrides };
}

describe('HeapSampler', () => {
  it('samples once a second of the node clock from the warm-up on, each after the full GC, and stops', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    let collections = 0;
    const sampler = new HeapSampler(node, 10, () => void collections++);
    sampler.start();
    await clock.advance(1000); // before the warm-up (2 s for a 10 s run): no sample
    expect(collections).toBe(0);
    await clock.advance(4000); // at 2, 3, 4 and 5 s
    expect(collections).toBe(4);
    sampler.stop();
    await clock.advance(5000);
    expect(collections).toBe(4);
    const r = sampler.report();
    expect(r.samples).toBe(4);
    expect(r.series).toHaveLength(4);
    expect(r.gc).toBe(true);
    expect(r.warmupS).toBe(2);
    expect(r.startBytes).toBe(r.series[0]);
    expect(r.endBytes).toBe(r.series[3]);
    expect(r.maxBytes).toBe(Math.max(...r.series));
    expect(r.growthBytes).toBe(r.endBytes - r.startBytes);
    expect(r.toleranceBytes).toBe(Math.max(HEAP_TOLERANCE_MIN_BYTES, Math.round(r.startBytes * 0.1)));
    expect(r.flat).toBe(r.growthBytes <= r.toleranceBytes);
  });

  it('is measured only when its samples span a second: a load that ends within a second of the warm-up proves nothing, and says so', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const short = new HeapSampler(node, 2, () => undefined);
    short.start();
    await clock.advance(2000); // the warm sample, at 2 s
    await clock.advance(500);
    short.stop(); // and the last, half a second later
    const r = short.report();
    expect([r.samples, r.flat, r.measured]).toEqual([2, r.growthBytes <= r.toleranceBytes, false]);
    expect(heapLine(r)).toBe(`heap not measured: the load ended within a second of its warm-up (2 s), 2 samples at ${(r.endBytes / MB).toFixed(1)} MB; a run longer than 3 s measures it`);
    const stopped = new HeapSampler(node, 2, () => undefined);
    stopped.start();
    stopped.stop(); // before the warm-up: one sample
    expect([stopped.report().samples, stopped.report().measured]).toEqual([1, false]);
    const long = new HeapSampler(node, 10, () => undefined);
    long.start();
    await clock.advance(3000);
    long.stop();
    expect([long.report().samples, long.report().measured]).toEqual([2, true]);
  });

  it('takes a last sample at stop when the timer took none at that time: end is the end of the load', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    let collections = 0;
    const sampler = new HeapSampler(node, 10, () => void collections++);
    sampler.start();
    await clock.advance(3500); // samples at 2 and 3 s
    sampler.stop(); // and one at 3.5 s
    expect(collections).toBe(3);
    expect(sampler.report().samples).toBe(3);
  });

  it('takes one sample at stop when the run ended before the warm-up', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    let collections = 0;
    const sampler = new HeapSampler(node, 60, () => void collections++);
    sampler.start();
    await clock.advance(1000);
    expect(collections).toBe(0);
    sampler.stop();
    expect(collections).toBe(1);
    const r = sampler.report();
    expect(r.samples).toBe(1);
    expect(r.warmupS).toBe(5);
    expect(r.growthBytes).toBe(0);
    expect(r.flat).toBe(true);
  });

  it('after endLoad, samples no more once a second; stop takes the end sample (the drained heap) even at that very time, and measured counts the load alone', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    let heap = 10 * MB;
    let collections = 0;
    // the heap each sample sees, set by the test (the full GC is where a sample reads it)
    const sampler = new HeapSampler(node, 10, () => void collections++, () => heap);
    sampler.start();
    await clock.advance(3000); // samples at 2 and 3 s: the load's last
    heap = 30 * MB; // a backlog in flight as the load ends
    sampler.endLoad();
    await clock.advance(5000); // the drain: no sample meanwhile
    expect(collections).toBe(2);
    heap = 11 * MB; // drained
    sampler.stop();
    expect(collections).toBe(3);
    expect(sampler.report()).toMatchObject({ samples: 3, series: [10 * MB, 10 * MB, 11 * MB], endBytes: 11 * MB, growthBytes: MB, flat: true, measured: true });
    // the end sample is taken even when no time passed since the load's last (a drain on virtual time)
    const same = new HeapSampler(node, 10, () => undefined, () => heap);
    same.start();
    await clock.advance(3000);
    same.endLoad();
    same.stop();
    expect(same.report().samples).toBe(3);
    // a load that ended within a second of its warm-up is not measured, however long the drain after it
    const short = new HeapSampler(node, 2, () => undefined, () => heap);
    short.start();
    await clock.advance(2500); // the warm sample, at 2 s
    short.endLoad();
    await clock.advance(10_000);
    short.stop();
    expect([short.report().samples, short.report().measured]).toEqual([2, false]);
  });

  it('warms up for a tenth of the run, from 2 s to 5 s', () => {
    expect([1, 10, 30, 60, 600].map(warmupSeconds)).toEqual([2, 2, 3, 5, 5]);
  });

  it('finds a full GC under Vitest too', () => {
    const gc = fullGc();
    expect(typeof gc).toBe('function');
    expect(() => gc!()).not.toThrow();
  });
});

describe('HeapSampler on the real clock: its warm-up counts on the timers\' time (monotonic), not the wall clock', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('a wall clock stepped forward an hour after the start does not end the warm-up: the first sample comes 2 s of monotonic time after it', async () => {
    const node = track();
    const first = deferred<number>();
    const sampler = new HeapSampler(node, 10, () => first.resolve(performance.now())); // a 2 s warm-up
    const startedAt = performance.now();
    sampler.start();
    stepWallClock(HOUR);
    // on the wall clock, the first tick (at 1 s) is already an hour past the start: it samples there
    const at = await first.promise;
    sampler.stop();
    expect(at - startedAt).toBeGreaterThanOrEqual(2000);
  });

  it('a wall clock stepped back an hour after the start does not hold the warm-up back: the samples come', async () => {
    const node = track();
    const first = deferred();
    const sampler = new HeapSampler(node, 10, () => first.resolve());
    sampler.start();
    stepWallClock(-HOUR);
    // on the wall clock, the warm-up would last an hour more: no sample before the test's timeout
    await first.promise;
    sampler.stop();
    expect(sampler.report().samples).toBeGreaterThanOrEqual(1);
  });
});

describe('heapLine', () => {
  it('says flat or GREW, with the sign of the growth (never -0.0)', () => {
    expect(heapLine(report({ endBytes: 11 * MB, growthBytes: MB }))).toBe(
      'heap start 10.0 MB (at 2 s), end 11.0 MB, max 10.0 MB: +1.0 MB, flat (tolerance 4.0 MB: 10% of start, at least 4.0 MB; 3 samples, each after a full GC)',
    );
    expect(heapLine(report({ growthBytes: -20_000 }))).toContain(': +0.0 MB, flat');
    expect(heapLine(report({ growthBytes: -MB }))).toContain(': -1.0 MB, flat');
    expect(heapLine(report({ growthBytes: 5 * MB, flat: false, gc: false }))).toContain(': +5.0 MB, GREW (tolerance 4.0 MB: 10% of start, at least 4.0 MB; 3 samples, NO forced GC: samples include garbage)');
  });
});
