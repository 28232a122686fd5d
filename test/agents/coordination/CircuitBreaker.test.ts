import { describe, expect, it } from 'vitest';
import { CircuitBreaker, type CircuitState } from '../../../src/agents/coordination/CircuitBreaker.js';
import { expectKeelError, thrown } from '../../support.js';

/** A breaker's observable state, in one value. */
function snapshot(b: CircuitBreaker): { state: CircuitState; failures: number; resetAt: number; openings: number } {
  return { state: b.state, failures: b.failures, resetAt: b.resetAt, openings: b.openings };
}

/** A breaker (threshold 3, reset after 250 ms) brought to `state`: opened at t = 1000, half-opened at t = 1250. */
function breakerIn(state: CircuitState): CircuitBreaker {
  const b = new CircuitBreaker({ failureThreshold: 3, resetAfterMs: 250 });
  if (state === 'closed') return b;
  b.failure(1000, true);
  if (state === 'open') return b;
  b.halfOpen(1250);
  return b;
}

describe('CircuitBreaker: a pure state machine', () => {
  it('starts closed, with no failures, no reset time and no opening', () => {
    expect(snapshot(new CircuitBreaker({ failureThreshold: 5, resetAfterMs: 1000 }))).toEqual({ state: 'closed', failures: 0, resetAt: Infinity, openings: 0 });
  });

  it('refuses a threshold that is not an integer >= 1 and a reset that is not a finite number of ms >= 0', () => {
    for (const failureThreshold of [0, -1, 1.5, Number.NaN, Infinity, '3']) {
      expectKeelError(thrown(() => new CircuitBreaker({ failureThreshold: failureThreshold as number, resetAfterMs: 10 })), 'ERR_INVALID_ARGUMENT', '`failureThreshold`', 'an integer >= 1');
    }
    for (const resetAfterMs of [-1, Infinity, Number.NaN, '10']) {
      expectKeelError(thrown(() => new CircuitBreaker({ failureThreshold: 1, resetAfterMs: resetAfterMs as number })), 'ERR_INVALID_ARGUMENT', '`resetAfterMs`', 'a finite number of ms >= 0');
    }
    expect(new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 0 }).state).toBe('closed');
  });

  // every (state, event) pair: the transition answered and the state after it
  it.each([
    ['closed', 'success', undefined, { state: 'closed', failures: 0, resetAt: Infinity, openings: 0 }],
    ['closed', 'trial success', undefined, { state: 'closed', failures: 0, resetAt: Infinity, openings: 0 }],
    ['closed', 'failure', undefined, { state: 'closed', failures: 1, resetAt: Infinity, openings: 0 }],
    ['closed', 'trial failure', 'opened', { state: 'open', failures: 1, resetAt: 2000 + 250, openings: 1 }],
    ['closed', 'half-open', undefined, { state: 'closed', failures: 0, resetAt: Infinity, openings: 0 }],
    ['open', 'success', undefined, { state: 'open', failures: 0, resetAt: 1250, openings: 1 }],
    ['open', 'trial success', undefined, { state: 'open', failures: 0, resetAt: 1250, openings: 1 }],
    ['open', 'failure', undefined, { state: 'open', failures: 2, resetAt: 1250, openings: 1 }],
    ['open', 'trial failure', undefined, { state: 'open', failures: 2, resetAt: 1250, openings: 1 }],
    ['open', 'half-open', 'half_opened', { state: 'half_open', failures: 1, resetAt: Infinity, openings: 1 }],
    ['half_open', 'success', undefined, { state: 'half_open', failures: 0, resetAt: Infinity, openings: 1 }],
    ['half_open', 'trial success', 'closed', { state: 'closed', failures: 0, resetAt: Infinity, openings: 1 }],
    ['half_open', 'failure', undefined, { state: 'half_open', failures: 2, resetAt: Infinity, openings: 1 }],
    ['half_open', 'trial failure', 'opened', { state: 'open', failures: 2, resetAt: 2000 + 250, openings: 2 }],
    ['half_open', 'half-open', undefined, { state: 'half_open', failures: 1, resetAt: Infinity, openings: 1 }],
  ] as const)('%s, then a %s at t = 2000: %s', (from, event, transition, after) => {
    const b = breakerIn(from);
    const now = 2000;
    const answer =
      event === 'success' ? b.success(false)
      : event === 'trial success' ? b.success(true)
      : event === 'failure' ? b.failure(now, false)
      : event === 'trial failure' ? b.failure(now, true)
      : b.halfOpen(now);
    expect(answer).toBe(transition);
    expect(snapshot(b)).toEqual(after);
  });
});

describe('CircuitBreaker: the threshold', () => {
  it('opens a closed circuit at the threshold-th consecutive failure, not before', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, resetAfterMs: 1000 });
    expect([b.failure(10, false), b.failure(20, false)]).toEqual([undefined, undefined]);
    expect(snapshot(b)).toEqual({ state: 'closed', failures: 2, resetAt: Infinity, openings: 0 });
    expect(b.failure(30, false)).toBe('opened');
    // the reset time counts from the failure that opened it
    expect(snapshot(b)).toEqual({ state: 'open', failures: 3, resetAt: 1030, openings: 1 });
  });

  it('counts consecutive failures only: a success in between starts the count again', () => {
    const b = new CircuitBreaker({ failureThreshold: 3, resetAfterMs: 1000 });
    b.failure(10, false);
    b.failure(20, false);
    expect(b.success(false)).toBeUndefined();
    expect(b.failures).toBe(0);
    expect([b.failure(30, false), b.failure(40, false)]).toEqual([undefined, undefined]);
    expect(b.state).toBe('closed');
    expect(b.failure(50, false)).toBe('opened');
    expect(snapshot(b)).toEqual({ state: 'open', failures: 3, resetAt: 1050, openings: 1 });
  });

  it('with a threshold of 1, the first failure opens it', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 5 });
    expect(b.failure(100, false)).toBe('opened');
    expect(snapshot(b)).toEqual({ state: 'open', failures: 1, resetAt: 105, openings: 1 });
  });

  it('a failed trial opens a closed circuit at once, below the threshold', () => {
    const b = new CircuitBreaker({ failureThreshold: 5, resetAfterMs: 100 });
    expect(b.failure(7, true)).toBe('opened');
    expect(snapshot(b)).toEqual({ state: 'open', failures: 1, resetAt: 107, openings: 1 });
  });
});

describe('CircuitBreaker: reset timing and the half-open trial', () => {
  it('half-opens exactly at resetAt (opened + resetAfterMs), not a moment before', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 250 });
    b.failure(10_000, false);
    expect(b.resetAt).toBe(10_250);
    expect(b.halfOpen(10_000)).toBeUndefined();
    expect(b.halfOpen(10_249)).toBeUndefined();
    expect(b.halfOpen(10_249.5)).toBeUndefined();
    expect(snapshot(b)).toEqual({ state: 'open', failures: 1, resetAt: 10_250, openings: 1 });
    expect(b.halfOpen(10_250)).toBe('half_opened');
    expect(snapshot(b)).toEqual({ state: 'half_open', failures: 1, resetAt: Infinity, openings: 1 });
  });

  it('half-opens past resetAt too (a late timer)', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 250 });
    b.failure(0, false);
    expect(b.halfOpen(900)).toBe('half_opened');
  });

  it('with resetAfterMs 0, may half-open at the moment it opened', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 0 });
    b.failure(42, false);
    expect(b.resetAt).toBe(42);
    expect(b.halfOpen(42)).toBe('half_opened');
  });

  it("a failed probe opens it again with a new reset time; the earlier opening's time no longer counts", () => {
    const b = new CircuitBreaker({ failureThreshold: 2, resetAfterMs: 250 });
    b.failure(1000, false);
    b.failure(1000, false);
    expect(snapshot(b)).toEqual({ state: 'open', failures: 2, resetAt: 1250, openings: 1 });
    expect(b.halfOpen(1250)).toBe('half_opened');
    expect(b.failure(1300, true)).toBe('opened');
    expect(snapshot(b)).toEqual({ state: 'open', failures: 3, resetAt: 1550, openings: 2 });
    expect(b.halfOpen(1250)).toBeUndefined();
    expect(b.halfOpen(1549)).toBeUndefined();
    expect(b.halfOpen(1550)).toBe('half_opened');
    expect(b.openings).toBe(2);
  });

  it("a successful probe closes it; then it takes the threshold's failures to open it again", () => {
    const b = new CircuitBreaker({ failureThreshold: 2, resetAfterMs: 100 });
    b.failure(0, false);
    b.failure(0, false);
    b.halfOpen(100);
    expect(b.success(true)).toBe('closed');
    expect(snapshot(b)).toEqual({ state: 'closed', failures: 0, resetAt: Infinity, openings: 1 });
    expect(b.failure(200, false)).toBeUndefined();
    expect(b.failure(210, false)).toBe('opened');
    expect(snapshot(b)).toEqual({ state: 'open', failures: 2, resetAt: 310, openings: 2 });
  });

  it('while half-open, deliveries that are not trials neither close nor open it', () => {
    const b = breakerIn('half_open');
    expect([b.failure(1300, false), b.failure(1310, false), b.failure(1320, false), b.failure(1330, false)]).toEqual([undefined, undefined, undefined, undefined]);
    expect(snapshot(b)).toEqual({ state: 'half_open', failures: 5, resetAt: Infinity, openings: 1 });
    expect(b.success(false)).toBeUndefined();
    expect(snapshot(b)).toEqual({ state: 'half_open', failures: 0, resetAt: Infinity, openings: 1 });
  });
});

describe('CircuitBreaker.openedAt', () => {
  it('is when it last opened, kept while half-open, gone once a trial closes it', () => {
    const b = new CircuitBreaker({ failureThreshold: 1, resetAfterMs: 100 });
    expect(b.openedAt).toBeUndefined();
    b.failure(50, false);
    expect(b.openedAt).toBe(50);
    b.halfOpen(150);
    expect(b.openedAt).toBe(50);
    b.failure(160, true);
    expect(b.openedAt).toBe(160);
    b.halfOpen(260);
    b.success(true);
    expect(b.openedAt).toBeUndefined();
  });
});
