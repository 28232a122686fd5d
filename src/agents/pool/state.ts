import type { PoolCrashLoopError } from '../../errors.js';
import type { From } from '../../otp/GenServer.js';
import type { Pid, Ref, TimerRef } from '../../runtime/Pid.js';
import type { Node } from '../../runtime/types.js';
import type { WatchRef } from '../patterns/shared.js';

// @internal A resource pool's state and its own messages: what its server (server.ts) runs on, and
// what its observer view (../observe.ts) reads.

/** One creation in progress: settled by its answer or by its timeout, whichever the pool sees first. */
export interface Job {
  readonly initial: boolean;
  state: 'pending' | 'settled' | 'timed_out';
  timer: TimerRef | undefined;
  /** Its `create(signal)`'s signal: aborted when the pool gives up on it (its timeout) or exits first. */
  readonly controller: AbortController;
}

// the pool's own messages (classes: another process cannot forge them)
export class Created {
  constructor(readonly resource: unknown, readonly job: Job) {}
}
export class CreateFailed {
  constructor(readonly error: unknown, readonly job: Job) {}
}
export class CreateTimedOut {
  constructor(readonly job: Job) {}
}
export class WaiterTimeout {
  constructor(readonly id: number) {}
}
export class RetryCreate {
  readonly kind = 'retry_create' as const;
}

export interface Entry {
  readonly resource: unknown;
  readonly key: unknown;
  /** The resource's own monitor (a Pid resource). */
  watch: WatchRef | undefined;
  lent: boolean;
  /** The process it is lent to (undefined: lent to a caller outside any process), watched through its `Holding`. */
  holderPid: Pid | undefined;
  /** When it was created, on the timers' time (one that dies within `createRetryMs` of it is replaced only after that). */
  readonly createdAt: number;
  /** When it was lent, on the timers' time (monotonic on the real clock, so heldMs is what it lasted; the observer shows it as a date). */
  lentAt: number;
}

export interface Waiter {
  readonly id: number;
  readonly from: From<unknown>;
  readonly holder: Pid | undefined;
  readonly timeout: number;
  /** When it joined the line, on the timers' time (so waitedMs is what it lasted, however the wall clock was stepped). */
  readonly since: number;
  timer: TimerRef | undefined;
}

/** The one monitor of a process waiting in line, however many places it holds: its death clears them all (as poolboy). */
export interface LineWatch {
  readonly watch: WatchRef;
  readonly ids: Set<number>;
}

/** The one monitor of a process holding resources, however many it holds: its death returns them all. */
export interface Holding {
  readonly watch: WatchRef;
  /** What it holds, in the order it was lent (a retired one too, until checked in). */
  readonly entries: Set<Entry>;
}

/** @internal What a pool process starts with (validated options). */
export interface Config {
  readonly name: string;
  readonly create: (signal: AbortSignal) => unknown;
  readonly destroy: ((resource: unknown) => void | Promise<void>) | undefined;
  readonly size: number;
  readonly maxOverflow: number;
  readonly checkoutTimeoutMs: number;
  readonly createRetryMs: number;
  readonly createTimeoutMs: number;
  /** More than `maxFailures` failures (failed creations, deaths of `Pid` resources it did not cause) within `withinMs` and the pool exits (undefined: no limit). */
  readonly createIntensity: { readonly maxFailures: number; readonly withinMs: number } | undefined;
  /** Which idle resource is lent: the last checked in (`'lifo'`) or the one idle longest (`'fifo'`). */
  readonly strategy: 'lifo' | 'fifo';
}

export type Counters = { -readonly [K in 'created' | 'createFailed' | 'destroyed' | 'destroyFailed' | 'checkouts' | 'checkins' | 'timeouts' | 'holderDown' | 'resourceDown' | 'badCheckins']: number };

/** @internal The pool's state (its observer view, `../observe.ts`, reads it too). */
export interface State extends Config {
  /** The node (terminate has no context). */
  readonly node: Node;
  /** Live resources, idle or lent, by key (a Pid by its pidKey, anything else by identity). */
  readonly entries: Map<unknown, Entry>;
  /** Idle entries, the last checked in at the end: lent from the end (`'lifo'`, poolboy's default) or the start (`'fifo'`). */
  readonly idle: Entry[];
  /** Lent resources that died while out, until their checkin or their holder's death. */
  readonly retired: Map<unknown, Entry>;
  /** Monitors by ref: a resource's, a holder's or a waiting caller's (those two by pidKey). */
  readonly refs: Map<Ref, { kind: 'resource'; entry: Entry } | { kind: 'holder'; key: string } | { kind: 'waiter'; key: string }>;
  /** Processes holding resources, by pidKey. */
  readonly holders: Map<string, Holding>;
  /** Processes waiting in line, by pidKey. */
  readonly inLine: Map<string, LineWatch>;
  /** Creations that answered, their `Created` not handled yet: destroyed if the pool exits first. */
  readonly arrived: Set<Created>;
  /** Creations that failed, their `CreateFailed` not handled yet: reported if the pool exits first. */
  readonly failing: Set<CreateFailed>;
  /** Creations whose `create` has not settled and that the pool still waits for: their signals are aborted if the pool exits. */
  readonly inFlight: Set<Job>;
  /** In line, first come first served (a Map keeps insertion order; a timeout deletes in O(1)). */
  readonly waiters: Map<number, Waiter>;
  nextWaiter: number;
  creating: number;
  initialPending: number;
  readyWaiters: From<'ok'>[];
  retry: TimerRef | undefined;
  /** When the failures within `createIntensity.withinMs` happened, on the timers' time (as a Supervisor's restarts). */
  readonly failureTimes: number[];
  /** Set when the failures passed `createIntensity`: the pool exits with it at the end of the handler. */
  crashLoop: PoolCrashLoopError | undefined;
  readonly counts: Counters;
}
