import type { DeadLetterResult } from '../../delivery/deadLetter.js';
import type { From } from '../../otp/GenServer.js';
import type { Pid, Ref, Target, TimerRef } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import type { CircuitBreaker } from './CircuitBreaker.js';
import type { Settings } from './options.js';
import type { CoordinationFailure, CoordinationOutcome } from './types.js';

// @internal The coordination manager's state (circuits, deliveries in flight, the table that
// outlives its process) and the messages it sends itself.

/** A message the manager holds: in a buffer, or in flight. */
export interface Entry {
  readonly id: string;
  readonly sender: Pid;
  readonly message: unknown;
}

/**
 * A delivery in flight. `direct`: sent at once (circuit closed), its caller waits. `probe`: the
 * half-open probe taken from a `coordinate` call, its caller waits. `drain`: a buffered message
 * (the half-open probe, or flushed after recovery); its caller was told `buffered`.
 */
export interface Flight extends Entry {
  readonly key: string;
  readonly target: Target;
  readonly kind: 'direct' | 'probe' | 'drain';
  readonly from: From<CoordinationOutcome> | undefined;
  /**
   * A drain with `ack: 'handled'` is timed by the manager (see {@link FlightTimeout}): its timer,
   * the abort of its send, and, once timed out, whether the receiver had started it.
   */
  timer: TimerRef | undefined;
  abort: AbortController | undefined;
  timedOut: 'unstarted' | 'started' | undefined;
  /** Its outcome, recorded as it came in (while the manager lived): a successor finds what its predecessor had not yet handled. */
  result: Settled['result'] | undefined;
}

export interface Circuit {
  readonly key: string;
  readonly target: Target;
  /** Its state and failure count (closed, open, half-open): the manager arms the reset timer it asks for. */
  readonly breaker: CircuitBreaker;
  readonly buffer: Entry[];
  inFlight: number;
  /** A probe or a buffered message is in flight: the next buffered one waits for it (order, one probe). */
  draining: boolean;
  /** The reset timer of the breaker's current opening. */
  timer: TimerRef | undefined;
  /** The monitor on a pid receiver (a name receiver has none). */
  ref: Ref | undefined;
  /**
   * A name receiver's quiet timer: its circuit, idle but still counting failures or half-open, is
   * forgotten when it fires (see {@link Quiet}); `quiets` tells a stale one from the current one.
   */
  quiet: TimerRef | undefined;
  quiets: number;
}

/** The counts of {@link CoordinationStats} a manager keeps since its first start under its name. */
export interface Counts {
  delivered: number;
  failed: number;
  bufferedTotal: number;
  flushed: number;
  deadLettered: number;
  deadLetterUnavailable: number;
  unconfirmed: number;
  redelivered: number;
}

/**
 * What outlives the manager's process (its componentState table, see restart.ts): the circuits
 * (breakers and buffers), the deliveries in flight, the counts. A successor under the same name
 * resumes them; a `normal` stop (or the node's shutdown) dead-letters the buffers and releases it.
 */
export interface Kept {
  readonly circuits: Map<string, Circuit>;
  readonly flights: Map<string, Flight>;
  readonly n: Counts;
  /** The count behind the handle's default message ids (`<name>:<seq>`): kept, so that a successor's ids are fresh. */
  seq: number;
}

export interface State {
  readonly name: string;
  readonly s: Settings;
  /** The manager's own context (terminate has no other). */
  readonly ctx: Context<any>;
  readonly circuits: Map<string, Circuit>;
  readonly byRef: Map<Ref, string>;
  /** Every message held (buffered or in flight), by id. */
  readonly held: Set<string>;
  readonly flights: Map<string, Flight>;
  readonly n: Counts;
}

/** A delivery settled (sent to itself, so that every state change happens in the manager's turn). */
export class Settled {
  readonly id: string;
  readonly result: { ok: true } | { ok: false; reason: CoordinationFailure };
  constructor(id: string, result: Settled['result']) {
    this.id = id;
    this.result = result;
  }
}

/**
 * A drain's delivery timeout: the manager takes back the copy the receiver has not started (then it
 * is safe to dead-letter) or learns that it had started it (then it may still be handled: it is not
 * dead-lettered, or the queue's retry would deliver it twice).
 */
export class FlightTimeout {
  readonly id: string;
  constructor(id: string) {
    this.id = id;
  }
}

/** An open circuit's reset timer fired (`opening`: the breaker's opening it was armed for; an earlier one's is ignored). */
/** A name receiver's circuit was idle long enough: forgotten unless something came for it since. */
export class Quiet {
  readonly key: string;
  readonly n: number;
  constructor(key: string, n: number) {
    this.key = key;
    this.n = n;
  }
}

export class HalfOpen {
  readonly key: string;
  readonly opening: number;
  constructor(key: string, opening: number) {
    this.key = key;
    this.opening = opening;
  }
}

/** A dead letter was added (or could not be). */
export class DeadLettered {
  readonly key: string;
  readonly id: string;
  readonly reason: string;
  readonly result: DeadLetterResult;
  readonly from: From<CoordinationOutcome> | undefined;
  constructor(key: string, id: string, reason: string, result: DeadLettered['result'], from: From<CoordinationOutcome> | undefined) {
    this.key = key;
    this.id = id;
    this.reason = reason;
    this.result = result;
    this.from = from;
  }
}
