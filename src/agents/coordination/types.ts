import type { FailureReason } from '../../delivery/sendSupervised.js';
import type { ServerPid } from '../../otp/GenServer.js';
import type { Pid, Target } from '../../runtime/Pid.js';
import type { CircuitState } from './CircuitBreaker.js';

// The coordination manager's public types: what `coordinate` answers and why a message failed, a
// receiver's circuit, the manager's stats, options, calls and handle (re-exported by the package).

/**
 * Why a coordinated message was not delivered: a supervised send's reason (`noproc`,
 * `process_down`, `timeout`, `mailbox_full`, `aborted`, `noconnection`), or
 * - `buffer_full`: the receiver's circuit is open and its buffer holds `bufferCapacity` messages;
 * - `sender_down`: the sender was not alive when the manager took the message (nothing was sent);
 * - `duplicate`: a message with this id is still in flight or buffered (nothing was sent);
 * - `deadlock`: the receiver is the manager itself, with `ack: 'handled'`;
 * - `coordinator_down`: the manager exited before it answered (the message may have been sent);
 * - `coordinator_timeout`: the manager did not answer within the delivery timeout and a margin.
 */
export type CoordinationFailure =
  | FailureReason
  | 'buffer_full'
  | 'sender_down'
  | 'duplicate'
  | 'deadlock'
  | 'coordinator_down'
  | 'coordinator_timeout';

/**
 * What `coordinate` answers. `delivered`: the receiver has it (per `ack`). `buffered`: the
 * receiver's circuit is open (or recovering), the message waits at `position` (1-based) in its
 * buffer and will be delivered in order or dead-lettered — it has NOT been delivered yet.
 * `failed`: not delivered, and why; a message refused by a full buffer is dead-lettered.
 */
export type CoordinationOutcome =
  | { outcome: 'delivered'; id: string }
  | { outcome: 'buffered'; id: string; position: number }
  | { outcome: 'failed'; id: string; reason: CoordinationFailure; deadLetterId?: string; deadLetterUnavailable?: true };

/** One receiver's circuit breaker. */
export interface CircuitInfo {
  readonly state: CircuitState;
  /** Consecutive failed deliveries (reset by a success). */
  readonly consecutiveFailures: number;
  /** Messages waiting in its buffer. */
  readonly buffered: number;
  /** Deliveries to it not yet settled. */
  readonly inFlight: number;
}

/** Counts kept by a manager since it started. */
export interface CoordinationStats {
  /** Receivers with state (a breaker): live pids it has delivered to, and names with failures or a buffer. */
  readonly agents: number;
  readonly open: number;
  readonly halfOpen: number;
  /** Messages waiting in buffers now. */
  readonly buffered: number;
  /** Deliveries not yet settled (direct ones and buffered ones being flushed). */
  readonly inFlight: number;
  /** `coordinate` calls answered `delivered`. */
  readonly delivered: number;
  /** `coordinate` calls answered `failed` (those refused by a full buffer included). */
  readonly failed: number;
  /** `coordinate` calls answered `buffered`. */
  readonly bufferedTotal: number;
  /** Buffered messages delivered later. */
  readonly flushed: number;
  /** Messages added to the dead letter queue (buffered ones that failed for good, and those refused by a full buffer). */
  readonly deadLettered: number;
  /** Messages the dead letter queue could not take (off, shut down, or it refused the message): logged and reported. */
  readonly deadLetterUnavailable: number;
  /**
   * Deliveries whose fate is unknown, reported as `unconfirmed` events: a buffered message whose
   * delivery timed out after the receiver had started it (not dead-lettered: a retry from the queue
   * would deliver it twice), and a direct delivery in flight when the manager exited (its caller
   * was answered `coordinator_down`; it may have been handled).
   */
  readonly unconfirmed: number;
  /**
   * Buffered messages whose delivery was in flight when the manager exited (killed, crashed) and
   * that its successor delivered again, with the same id: the receiver may see one twice (at least
   * once) and can dedupe by `ctx.messageId`.
   */
  readonly redelivered: number;
}

export interface CoordinationManagerOptions {
  /** Registers the manager under this name (default `keel.coordination_manager.<n>`). */
  name?: string;
  /** Acknowledgement of each delivery (default `'handled'`: the receiver's handler finished it). */
  ack?: 'enqueued' | 'handled';
  /** Per delivery, for `ack: 'handled'` (default 5000 ms, on the node's clock). */
  timeout?: number;
  /** Consecutive failed deliveries to one receiver that open its circuit (default 5). */
  failureThreshold?: number;
  /** Time an open circuit waits before it lets one probe through (default 1000 ms, on the node's timers' time: monotonic on the real clock). */
  resetAfterMs?: number;
  /** Messages buffered per receiver while its circuit is open (default 100; 0 buffers nothing). */
  bufferCapacity?: number;
  /** A message that finds the buffer full: `'dead_letter'` (default: dead-lettered and reported failed) or `'reject'` (reported failed only). */
  onBufferFull?: 'dead_letter' | 'reject';
}

/** A started manager: its pid and its operations (called from outside any process). */
export interface CoordinationManagerHandle {
  /** The manager's current pid (it is found again by name after a restart). */
  readonly pid: ServerPid<CoordinationProtocol, never>;
  readonly name: string;
  /**
   * Delivers `message` from `sender` to `receiver` through the receiver's circuit breaker: one
   * supervised send, never repeated. `options.id` (default a fresh id) is the message id the
   * receiver sees as `ctx.messageId`; an id still in flight or buffered is refused as `duplicate`.
   */
  coordinate(sender: Pid, receiver: Pid | string, message: unknown, options?: { id?: string }): Promise<CoordinationOutcome>;
  stats(): Promise<CoordinationStats>;
  /** The circuit of `receiver` (the same pid or name given to `coordinate`), or undefined when the manager keeps none. */
  circuit(receiver: Pid | string): Promise<CircuitInfo | undefined>;
}

/** The manager's calls. */
export type CoordinationProtocol =
  | { request: { type: 'coordinate'; sender: Pid; receiver: Target; message: unknown; id: string }; reply: CoordinationOutcome }
  | { request: { type: 'stats' }; reply: CoordinationStats }
  | { request: { type: 'circuit'; receiver: Target }; reply: CircuitInfo | undefined };
