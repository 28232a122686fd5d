// The statistics of `npm run bench` and `npm run bench:ab` (bench/stats.mjs).
import { describe, expect, it } from 'vitest';
import { median, pairedChange, round } from '../../bench/stats.mjs';

describe('median', () => {
  it('is the middle value of an odd count and the mean of the middle two of an even count, whatever the order', () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([7])).toBe(7);
    expect(median([0.5, 0.25])).toBe(0.375);
  });

  it('leaves its argument unsorted, and refuses an empty list', () => {
    const xs = [3, 1, 2];
    median(xs);
    expect(xs).toEqual([3, 1, 2]);
    expect(() => median([])).toThrow('median of nothing');
  });
});

describe('pairedChange', () => {
  it('takes the ratio pair by pair, then the median: a drift that slows both sides of a pair cancels', () => {
    // the machine slows down over the runs; this tree is 10% faster in every pair
    const theirs = [{ ops_per_s: 1000 }, { ops_per_s: 500 }, { ops_per_s: 250 }];
    const ours = [{ ops_per_s: 1100 }, { ops_per_s: 550 }, { ops_per_s: 275 }];
    expect(pairedChange(ours, theirs)).toEqual({ ops_per_s: 550, base_ops_per_s: 500, change: 1.1, change_min: 1.1, change_max: 1.1 });
  });

  it('gives the lowest and the highest ratio, and the bytes per process of both sides when the bench reports them', () => {
    const ours = [
      { ops_per_s: 90, bytes_per_process: 160 },
      { ops_per_s: 120, bytes_per_process: 161 },
      { ops_per_s: 100, bytes_per_process: 162 },
    ];
    const theirs = [
      { ops_per_s: 100, bytes_per_process: 170 },
      { ops_per_s: 100, bytes_per_process: 171 },
      { ops_per_s: 100, bytes_per_process: 169 },
    ];
    expect(pairedChange(ours, theirs)).toEqual({
      ops_per_s: 100,
      base_ops_per_s: 100,
      change: 1,
      change_min: 0.9,
      change_max: 1.2,
      bytes_per_process: 161,
      base_bytes_per_process: 170,
    });
  });

  it('refuses unpaired runs', () => {
    expect(() => pairedChange([{ ops_per_s: 1 }], [])).toThrow('as many runs on each side');
    expect(() => pairedChange([], [])).toThrow('as many runs on each side');
  });
});

describe('round', () => {
  it('rounds to 3 decimals by default, or to the given count', () => {
    expect(round(0.45678)).toBe(0.457);
    expect(round(12.345, 1)).toBe(12.3);
    expect(round(2)).toBe(2);
  });
});
