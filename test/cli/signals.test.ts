// The stop signal of the long-running commands (keel observe, keel top): src/cli/signals.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stopOnSignals } from '../../src/cli/signals.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('stopOnSignals', () => {
  it('aborts on the first SIGINT, SIGTERM or SIGHUP; a second runs onRepeat, then exits 130 for SIGINT, 143 for SIGTERM and 129 for SIGHUP', () => {
    const exits: unknown[] = [];
    vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
      exits.push(code);
    }) as never);
    for (const [first, second, code] of [
      ['SIGINT', 'SIGINT', 130],
      ['SIGTERM', 'SIGTERM', 143],
      ['SIGTERM', 'SIGINT', 130],
      ['SIGHUP', 'SIGHUP', 129],
      ['SIGINT', 'SIGHUP', 129],
    ] as const) {
      const repeats: string[] = [];
      const stop = stopOnSignals((signal) => repeats.push(signal));
      process.emit(first, first);
      expect([stop.signal.aborted, repeats, exits]).toEqual([true, [], []]);
      process.emit(second, second);
      expect([repeats, exits]).toEqual([[second], [code]]);
      stop.release();
      exits.length = 0;
    }
  });

  it('release removes its listeners: a signal afterwards reaches it no more', () => {
    const counts = (): number[] => ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    const before = counts();
    const stop = stopOnSignals();
    expect(counts()).toEqual(before.map((n) => n + 1));
    stop.release();
    expect(counts()).toEqual(before);
    expect(stop.signal.aborted).toBe(false);
  });
});
