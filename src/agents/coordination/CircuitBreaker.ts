import { InvalidArgumentError } from '../../errors.js';

/** Where a circuit stands. */
export type CircuitState = 'closed' | 'open' | 'half_open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open a closed circuit (an integer >= 1). */
  readonly failureThreshold: number;
  /** How long an open circuit stays open before it lets a trial through, in ms (finite, >= 0). */
  readonly resetAfterMs: number;
}

/** A change of state an event caused: the circuit opened, half-opened or closed. */
export type CircuitTransition = 'opened' | 'half_opened' | 'closed';

/**
 * @internal A circuit breaker as a pure state machine, in the style of cockatiel's breakers: it keeps
 * no timer, runs nothing and sends nothing. Each event is a method told the time where time matters
 * (`now`, in ms on the owner's clock: the coordination manager's is its node's timers' time), and it answers the transition it made, if any; its owner
 * delivers, arms a timer for {@link CircuitBreaker.resetAt} and reports.
 *
 * - `closed`: deliveries go through. A failure counts, a success resets the count, and the
 *   `failureThreshold`-th consecutive failure opens the circuit.
 * - `open`: nothing goes through. At `resetAt` (the opening's `now` + `resetAfterMs`),
 *   {@link CircuitBreaker.halfOpen} half-opens it.
 * - `half_open`: a trial goes through. Its success closes the circuit; its failure opens it again,
 *   with a new `resetAt`.
 *
 * A trial is a delivery made on probation: the probe of a half-open circuit, and what the owner
 * delivers while it recovers (the coordination manager flushes its buffer as trials, one at a time).
 * A failed trial opens the circuit at once, whatever the count; only a trial's success closes it.
 * A delivery that is not a trial fails and succeeds as counted deliveries do, in any state.
 */
export class CircuitBreaker {
  readonly #threshold: number;
  readonly #resetAfterMs: number;
  #state: CircuitState = 'closed';
  #failures = 0;
  #resetAt = Infinity;
  #openings = 0;
  #openedAt: number | undefined = undefined;

  constructor(options: CircuitBreakerOptions) {
    const { failureThreshold, resetAfterMs } = options;
    if (!Number.isSafeInteger(failureThreshold) || failureThreshold < 1) throw new InvalidArgumentError('failureThreshold', 'an integer >= 1', failureThreshold);
    if (typeof resetAfterMs !== 'number' || !Number.isFinite(resetAfterMs) || resetAfterMs < 0) throw new InvalidArgumentError('resetAfterMs', 'a finite number of ms >= 0', resetAfterMs);
    this.#threshold = failureThreshold;
    this.#resetAfterMs = resetAfterMs;
  }

  get state(): CircuitState {
    return this.#state;
  }

  /** Consecutive failures: reset by a success. */
  get failures(): number {
    return this.#failures;
  }

  /** When an open circuit may half-open; Infinity unless it is open. */
  get resetAt(): number {
    return this.#resetAt;
  }

  /** When the circuit last opened; undefined once a trial's success closed it (or it never opened). */
  get openedAt(): number | undefined {
    return this.#openedAt;
  }

  /** Times the circuit has opened: a reset timer armed at one opening is stale at the next. */
  get openings(): number {
    return this.#openings;
  }

  /** A delivery succeeded: the failure count goes back to 0, and a trial's success closes a half-open circuit. */
  success(trial: boolean): CircuitTransition | undefined {
    this.#failures = 0;
    if (!trial || this.#state !== 'half_open') return undefined;
    this.#state = 'closed';
    this.#openedAt = undefined;
    return 'closed';
  }

  /** A delivery failed at `now`: a failed trial opens the circuit unless it is open, as does the threshold's failure when it is closed. */
  failure(now: number, trial: boolean): CircuitTransition | undefined {
    this.#failures++;
    if (trial ? this.#state === 'open' : this.#state !== 'closed' || this.#failures < this.#threshold) return undefined;
    this.#state = 'open';
    this.#openings++;
    this.#openedAt = now;
    this.#resetAt = now + this.#resetAfterMs;
    return 'opened';
  }

  /** The open circuit half-opens if `now` is at or past its `resetAt`; otherwise nothing changes. */
  halfOpen(now: number): CircuitTransition | undefined {
    if (this.#state !== 'open' || now < this.#resetAt) return undefined;
    this.#state = 'half_open';
    this.#resetAt = Infinity;
    return 'half_opened';
  }
}
