import type { Telemetry } from '../telemetry/Telemetry.js';
import type { Clock } from './Clock.js';
import type { Down, Exit, ExitReason } from './messages.js';
import type { Name, Pid, Ref, Target, TimerRef } from './Pid.js';
import type { NameRegistry } from './NameRegistry.js';
import type { ProcessGroups } from './ProcessGroups.js';
import type { DeadLetterQueue, MonitorManager, ObserverHandle, ObserverOptions, ServicesOptions } from './serviceSlots.js';

/**
 * A process's message handler: one message at a time; a returned promise keeps the process busy.
 * `M` is every message the process can receive. The runtime's own messages arrive only when asked
 * for, and then belong in `M`: a `Down` for each `ctx.monitor` (the context's `monitor` needs
 * `Down` in `M`), an `Exit` for each exit signal once the process traps exits (`trapExits` needs
 * `Exit` in `M`). A process that does neither has a handler of its own messages only.
 */
export type Handler<M> = (message: M) => void | Promise<void>;
/** Starts a process: receives its context and returns its handler (or a promise of it). */
export type Init<M> = (ctx: Context<M>) => Handler<M> | Promise<Handler<M>>;

/** Where the node writes what nobody else watches (unwatched crashes, failing telemetry handlers). */
export interface Logger {
  info(message: string, ...details: unknown[]): void;
  warn(message: string, ...details: unknown[]): void;
  error(message: string, ...details: unknown[]): void;
}

/** Mailbox bounds: past `capacity`, `overflow` decides; every drop is a `keel.message.dropped` event. */
export interface MailboxOptions {
  capacity: number;
  overflow: 'reject' | 'drop_newest' | 'drop_oldest';
}

export interface SpawnOptions<M = any> {
  /**
   * Registers the process under this unique name as it is spawned. A typed name (`Name.of<M>`)
   * must be of the process's own message type.
   */
  name?: string | Name<M>;
  /** Bounds the mailbox (default unbounded). System messages (`Down`, `Exit`) are never dropped. */
  mailbox?: MailboxOptions;
}

/** Scheduler tuning. */
export interface SchedulerOptions {
  /** Messages a process may handle per turn before the next ready process runs (default 64). */
  budget?: number;
  /** Real time after which the loop yields to the event loop (default 5 ms). */
  sliceMs?: number;
  /** A turn longer than this emits `keel.process.long_schedule` while someone listens (default 50 ms). */
  longScheduleMs?: number;
  /**
   * The real-time source of the time slice and the long-schedule reports, in milliseconds (default
   * `performance.now`). A test injects its own to drive the scheduler without racing real time.
   * Unused under a virtual clock (`SimulatedClock`), where a slice is a count of messages.
   */
  now?: () => number;
}

/**
 * The long-mailbox monitor (after OTP's `system_monitor(long_message_queue, {Disable, Enable})`):
 * `keel.process.long_mailbox` when a mailbox reaches `above` messages, and
 * `keel.process.long_mailbox_cleared` once it is back at `below` or fewer.
 */
export interface LongMailboxOptions {
  /** Default 10,000. */
  above?: number;
  /** Default 1,000; less than `above`. */
  below?: number;
}

export interface NodeOptions {
  /** Default: unique in the OS process, `keel-1`, `keel-2`, ... */
  name?: string;
  /** Default: the real clock. */
  clock?: Clock;
  /** Default `Math.random`; pass a seeded generator for reproducible jitter. */
  random?: () => number;
  /** Default: the console. */
  logger?: Logger;
  /** Default true: the monitor manager and the dead letter queue (plugged in by `keel`'s `createNode`). */
  services?: boolean | ServicesOptions;
  scheduler?: SchedulerOptions;
  /** Default on (`{ above: 10_000, below: 1_000 }`); `false` turns the long-mailbox monitor off. */
  longMailbox?: LongMailboxOptions | false;
}

/** What `node.info(pid)` tells about a live process. */
export interface ProcessInfo {
  readonly pid: Pid;
  /** `initializing` (init pending or awaited), `running` (in its turn), `busy` (awaiting its async handler), `runnable`, `waiting`. */
  readonly status: 'initializing' | 'running' | 'busy' | 'runnable' | 'waiting';
  /**
   * The messages queued: in its mailbox, and those a server suspended by `Sys.suspend` holds until it
   * resumes (in OTP's mailbox still: `message_queue_len` counts them). `Sys.getStatus`'s `queued` is the same number.
   */
  readonly mailboxLength: number;
  readonly messagesHandled: number;
  readonly links: readonly Pid[];
  readonly monitors: readonly Ref[];
  readonly monitoredBy: readonly Pid[];
  readonly name: string | undefined;
  readonly trapExits: boolean;
  readonly timers: number;
  /** True while the mailbox is long: it reached `longMailbox.above` and has not yet fallen to `below`. */
  readonly longMailbox: boolean;
}

/**
 * A process's view of the runtime, passed explicitly to `init` and captured by the handler.
 * Every operation of a process that has exited is dropped with a `keel.process.zombie_call`
 * event (`spawn` and `spawnLink` throw `ERR_PROCESS_EXITED`).
 */
export interface Context<M = unknown> {
  readonly self: Pid<M>;
  readonly node: Node;
  /** Aborted (with the exit reason) when this process exits. Allocated on first use. */
  readonly signal: AbortSignal;
  /** The id of the supervised message being handled, else undefined. */
  readonly messageId: string | undefined;
  /** Fire and forget; to a dead or unknown target it is dropped with a `keel.message.dropped` event. */
  send<N>(to: Target<N>, message: NoInfer<N>): void;
  spawn<N>(init: Init<N>, options?: SpawnOptions<NoInfer<N>>): Pid<N>;
  /** Spawns and links in one step: the link exists before the child's init runs. */
  spawnLink<N>(init: Init<N>, options?: SpawnOptions<NoInfer<N>>): Pid<N>;
  /** Links to `pid`; linking to a dead process sends this process a `noproc` exit signal. */
  link(pid: Pid): void;
  unlink(pid: Pid): void;
  /**
   * Monitors a pid or a name; a dead or unknown target yields an immediate `Down` with `noproc`.
   * The `Down` arrives in this process's mailbox, so its message type must include `Down`
   * (`node.spawn<Job | Down>(…)`); a context whose type does not is refused at compile time.
   */
  monitor(this: Context<Down>, target: Target): Ref;
  /** Removes a monitor (and with `flush`, its queued `Down`); true when the monitor was active. */
  demonitor(ref: Ref, options?: { flush?: boolean }): boolean;
  /**
   * Turns exit signals from links into `Exit` messages (`kill` still kills). The `Exit`s arrive in
   * this process's mailbox, so its message type must include `Exit` (`node.spawn<Job | Exit>(…)`).
   */
  trapExits(this: Context<Exit>, on?: boolean): void;
  /** Exits this process; completes synchronously (see the runtime docs). */
  exit(reason?: ExitReason): void;
  /** Sends an exit signal to another process; `'kill'` cannot be trapped and arrives as `'killed'`. */
  exit(pid: Pid, reason: ExitReason | 'kill'): void;
  /** Sends `message` to `to` after `ms` on the node's clock; the timer dies with this process. */
  sendAfter<N>(to: Target<N>, message: NoInfer<N>, ms: number): TimerRef;
  /** Cancels a pending timer; false when it already fired or was cancelled. */
  cancelTimer(timer: TimerRef): boolean;
}

/** One Keel runtime: processes, scheduler, names, telemetry and services. Nothing is global. */
export interface Node extends AsyncDisposable {
  readonly name: string;
  /** Fresh (random) at every start, so pids of an earlier run are dead. */
  readonly creation: number;
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly telemetry: Telemetry;
  readonly registry: NameRegistry;
  /** Named sets of processes; members leave when they exit. */
  readonly groups: ProcessGroups;
  /** Always present; its methods throw `ERR_SERVICE_UNAVAILABLE` when the service is off or the node has shut down (`monitors.available` tells). */
  readonly monitors: MonitorManager;
  /** Always present; its methods reject with `ERR_SERVICE_UNAVAILABLE` when the service is off or the node has shut down (`deadLetters.available` tells). */
  readonly deadLetters: DeadLetterQueue;
  /**
   * Starts an observer: an HTTP server (127.0.0.1, a free port by default) with a JSON API and an
   * event stream, guarded by a token; read-only by default (docs/observer.md). It closes with the node.
   */
  observer(options?: ObserverOptions): Promise<ObserverHandle>;
  spawn<M>(init: Init<M>, options?: SpawnOptions<NoInfer<M>>): Pid<M>;
  /** Sends from outside any process. */
  send<M>(to: Target<M>, message: NoInfer<M>): void;
  /** An exit signal from the node itself (`from: 'node'`); `'kill'` arrives as `'killed'`. */
  exit(pid: Pid, reason: ExitReason | 'kill'): void;
  isAlive(pid: Target): boolean;
  info(pid: Target): ProcessInfo | undefined;
  processes(): Pid[];
  /**
   * Resolves when no process is runnable, no handler is busy and no service I/O is in flight
   * (checked again after a `setImmediate`); pending timers do not count. With `timeoutMs` (real
   * time) it rejects with `ERR_IDLE_TIMEOUT` naming the busy processes.
   */
  idle(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Sends `'shutdown'` exit signals to the processes the node spawned itself, in reverse start
   * order, waiting for each; then to every other process; kills what is left after `timeoutMs`
   * (default 5000, real time, so that a node under a TestClock can stop); then settles what the layers above still had pending.
   */
  shutdown(options?: { timeoutMs?: number }): Promise<void>;
}
