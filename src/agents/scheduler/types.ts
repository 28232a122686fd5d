import type { SendOptions } from '../../delivery/sendSupervised.js';
import type { ServerPid } from '../../otp/GenServer.js';
import type { Target } from '../../runtime/Pid.js';
import type { InvalidArgumentError } from '../../errors.js';
import type { AgentStore, AgentStoreConfig } from '../store/AgentStore.js';

// The AgentScheduler's public types: schedules, options, stats, its calls and its handle (re-exported by the package).

/**
 * What to do with due times that passed while the scheduler could not fire them (it was busy, or
 * the clock jumped): `'skip'` delivers once and continues at the next aligned due time after now;
 * `'catch_up'` delivers once per missed due time (at most {@link MAX_CATCH_UP} per firing).
 */
export type MissedPolicy = 'skip' | 'catch_up';

/** At most this many deliveries per firing under `missed: 'catch_up'`; missed due times past it are counted as skipped. */
export const MAX_CATCH_UP = 100;

export interface PeriodicOptions {
  /** A uniform random delay in [0, jitter) ms added to each firing (never to the base due time); below `intervalMs` (default 0). */
  jitter?: number;
  /** See {@link MissedPolicy} (default `'skip'`). */
  missed?: MissedPolicy;
}

/**
 * How the scheduler's deliveries are sent (merged over `{ ack: 'enqueued', onError: 'ignore' }`;
 * failures are counted and reported as events either way). `id` and `signal` belong to the
 * scheduler: every delivery has a fresh message id, and a schedule's pending deliveries are taken
 * back (unstarted) or aborted (a retry's backoff) when it is removed.
 */
export type ScheduledSendOptions = Omit<SendOptions, 'id' | 'signal'>;

export interface AgentSchedulerOptions {
  /** Registers the scheduler under this name (default `keel.agent_scheduler.<n>`). */
  name?: string;
  /** Options of every delivery's supervised send. */
  sendOptions?: ScheduledSendOptions;
  /**
   * Where schedules registered by NAME are also kept, so that they survive the OS process (default:
   * the node's `services.agents.store`, else none): `{ kind: 'sqlite', path }`, `{ kind: 'memory' }`
   * or an `AgentStore`. See docs/agents/AgentScheduler.md "Restarts".
   */
  store?: AgentStoreConfig | AgentStore;
}

/** One schedule as `list(agent)` shows it. */
export interface ScheduleInfo {
  readonly id: string;
  readonly intervalMs: number;
  readonly jitter: number;
  readonly missed: MissedPolicy;
  /**
   * The next base due time (epoch ms on the node's clock, as of the call; the firing adds jitter). The
   * schedule itself counts on the node's timers' time (monotonic on the real clock), so after a wall
   * clock step this date moves with the wall clock: it is still the same span from now.
   */
  readonly nextDueAt: number;
  /** Starts at 1; every `forceExecution` and `updateInterval` retires the chain and bumps it. */
  readonly generation: number;
  /** Deliveries that succeeded (per the send's `ack`). */
  readonly deliveries: number;
  /** Deliveries that failed (the agent was dead, its mailbox full, ...). */
  readonly failures: number;
  /** Missed due times that were not delivered (`'skip'`, or `'catch_up'` past its bound). */
  readonly skipped: number;
}

export interface AgentSchedulerStats {
  /** Agents with at least one schedule (each monitored once). */
  readonly agents: number;
  readonly schedules: number;
  readonly delivered: number;
  readonly failed: number;
  /**
   * Deliveries that a removal of their schedule ended before the agent handled them: a copy still
   * queued unstarted taken back, or a retry waiting for its backoff aborted (`ack: 'handled'` or
   * retries). Each delivery started ends counted once: `delivered`, `failed` or `withdrawn`. A
   * withdrawn delivery is no failure: whatever `onError` says, it is not dead-lettered, logged or raised.
   */
  readonly withdrawn: number;
  /** `forceExecution` calls that found their schedule. */
  readonly forced: number;
  readonly skipped: number;
  /** Schedules taken over from a predecessor under the same name (its table, or the durable store) at the last start. */
  readonly resumed: number;
  /** Schedules dropped at a start because their agent had died (or, from the store, no process held its name). */
  readonly dropped: number;
  /** Store records that could not be read back at a start (skipped, and deleted). */
  readonly corrupt: number;
  /** Writes to the durable store that failed (logged and reported; the schedule runs on, in memory). */
  readonly storeFailures: number;
}

/** What `registerPeriodic` answers: a new schedule, one that replaced the agent's schedule of the same id, or a dead agent. */
export type RegisterResult = 'ok' | 'replaced' | { error: 'noproc' };

/** A started scheduler: its pid and its operations (each a call to the process, from outside any process). */
export interface AgentSchedulerHandle {
  /** The scheduler's current pid (found again by name after a restart). */
  readonly pid: ServerPid<SchedulerProtocol, never>;
  readonly name: string;
  /**
   * Sends `message` to `agent` every `intervalMs` ms, first at now + `intervalMs`. `agent` is a pid,
   * or a registered name resolved to its pid now: the schedule belongs to that process and goes
   * when it dies. An existing schedule `id` of the agent is replaced (`'replaced'`).
   */
  registerPeriodic(agent: Target, id: string, intervalMs: number, message: unknown, options?: PeriodicOptions): Promise<RegisterResult>;
  /** Removes one schedule (its timer is cancelled, no further delivery). */
  unregister(agent: Target, id: string): Promise<'ok' | 'not_found'>;
  /** Removes every schedule of `agent`; answers how many. */
  unregisterAgent(agent: Target): Promise<number>;
  /**
   * Sets a new interval: the chain restarts from now (next due now + `intervalMs`). Rejects with
   * `ERR_INVALID_ARGUMENT` when the schedule's jitter is not below the new interval.
   */
  updateInterval(agent: Target, id: string, intervalMs: number): Promise<'ok' | 'not_found'>;
  /** Delivers now and restarts the chain from now (next due now + interval): never a second chain. */
  forceExecution(agent: Target, id: string): Promise<'ok' | 'not_found'>;
  /** The agent's schedules, in registration order (empty for an unknown or dead agent). */
  list(agent: Target): Promise<ScheduleInfo[]>;
  stats(): Promise<AgentSchedulerStats>;
}

/** The scheduler's calls (GenServer calls), each with its reply. */
export type SchedulerProtocol =
  | { request: { type: 'register'; agent: Target; id: string; intervalMs: number; message: unknown; jitter: number; missed: MissedPolicy }; reply: RegisterResult | InvalidArgumentError }
  | { request: { type: 'unregister'; agent: Target; id: string }; reply: 'ok' | 'not_found' }
  | { request: { type: 'unregister_agent'; agent: Target }; reply: number }
  | { request: { type: 'update_interval'; agent: Target; id: string; intervalMs: number }; reply: 'ok' | 'not_found' | InvalidArgumentError }
  | { request: { type: 'force'; agent: Target; id: string }; reply: 'ok' | 'not_found' }
  | { request: { type: 'list'; agent: Target }; reply: ScheduleInfo[] }
  | { request: { type: 'stats' }; reply: AgentSchedulerStats };
