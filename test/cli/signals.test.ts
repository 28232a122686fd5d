// The stop signal of the long-running commands (keel observe, keel top): src/cli/signals.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { stopOnSignals } from '../../src/cli/signals.js';

afterEach(() => {
  vi.restoreAllMocks();
});

describe('stopOnSignals', () => {
  it('aborts on the first SIGINT or SIGTERM; a second runs onRepeat, then exits 130 for SIGINT and 143 for SIGTERM', () => {
    const exits: unknown[] = [];
    vi.spyOn(process, 'exit').mockImplementation(((code?: number) => {
      exits.push(code);
    }) as never);
    for (const [first, second, code] of [
      ['SIGINT', 'SIGINT', 130],
      ['SIGTERM', 'SIGTERM', 143],
      ['SIGTERM', 'SIGINT', 130],
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
    const before = [process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')];
    const stop = stopOnSignals();
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual([before[0]! + 1, before[1]! + 1]);
    stop.release();
    expect([process.listenerCount('SIGINT'), process.listenerCount('SIGTERM')]).toEqual(before);
    expect(stop.signal.aborted).toBe(false);
  });
});
