import type { SendOptions } from '../../delivery/sendSupervised.js';
import type { Pid, Ref, TimerRef } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import type { AgentStore } from '../store/AgentStore.js';
import type { MissedPolicy, ScheduledSendOptions } from './types.js';

// @internal The AgentScheduler's state: its schedules, the table that outlives its process, and its timer's message.

export interface Schedule {
  /** The agent's entry in the scheduler process now (a restart makes a new one). */
  agent: AgentEntry;
  /**
   * The name the schedule was registered by: kept in the durable store, resumed by it in a new OS
   * process. Cleared when the name's next holder registers a schedule of the same id under it: the
   * store's record is that one's, and this one runs on as a schedule of its pid.
   */
  agentName: string | undefined;
  readonly id: string;
  intervalMs: number;
  readonly message: unknown;
  readonly jitter: number;
  readonly missed: MissedPolicy;
  generation: number;
  timer: TimerRef | undefined;
  /** The next base due time, on the node's timers' time (monotonic on the real clock); stored and listed as a date on its clock. */
  nextDueAt: number;
  /** When its last delivery started (node clock), for an observer; undefined before the first. */
  lastRunAt: number | undefined;
  deliveries: number;
  failures: number;
  skipped: number;
  removed: boolean;
  /**
   * Its deliveries still waiting for their outcome, by message id, each with its abort (only when the
   * sends can wait: retries, `ack: 'handled'`). A removal takes back a copy the agent has not
   * started and aborts a retry waiting for its backoff; a started one is retried no more, and its
   * outcome is still counted (see `withdraw`).
   */
  pending: Map<string, AbortController>;
  sendOptions: SendOptions;
}

/** What outlives the scheduler's process (its componentState table): every schedule and the counters. */
export interface Kept {
  readonly schedules: Set<Schedule>;
  /** The schedules by name, by their store key: one schedule holds a key (and writes its record) at a time. */
  readonly named: Map<string, Schedule>;
  delivered: number;
  failed: number;
  /** Deliveries a removal of their schedule ended before the agent handled them (a copy unstarted, a retry's backoff). */
  withdrawn: number;
  forced: number;
  skipped: number;
  resumed: number;
  dropped: number;
  corrupt: number;
  storeFailures: number;
  /**
   * The store could not be read at the start (its `loadAll` failed): its records were not resumed,
   * so they are not this scheduler's to delete. The load is tried again at each store write and at a
   * restart; until one succeeds, a normal stop deletes only the records of the schedules it holds.
   */
  storeUnread: boolean;
}

export interface AgentEntry {
  readonly pid: Pid;
  readonly key: string;
  readonly ref: Ref;
  /** Through the monitor manager (else a plain `ctx.monitor`, when the service is unavailable). */
  readonly managed: boolean;
  readonly schedules: Map<string, Schedule>;
}

export interface State {
  readonly name: string;
  readonly sendOptions: ScheduledSendOptions;
  /** The sends may wait (retries, `ack: 'handled'`): each schedule's removal takes them back or aborts them. */
  readonly sendsWait: boolean;
  readonly agents: Map<string, AgentEntry>;
  readonly byRef: Map<Ref, AgentEntry>;
  /** The table that outlives the process. */
  readonly kept: Kept;
  /** The durable store of schedules by name, if any. */
  readonly store: AgentStore | undefined;
  /** The scheduler's own context (terminate has no other). */
  readonly ctx: Context<any>;
}

/** The message a schedule's timer sends the scheduler; stale when its generation is not the schedule's. */
export class Tick {
  readonly schedule: Schedule;
  readonly generation: number;
  constructor(schedule: Schedule, generation: number) {
    this.schedule = schedule;
    this.generation = generation;
  }
}
