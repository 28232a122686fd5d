/**
 * The kernel's one door. Everything a layer above the runtime (behaviours, delivery, monitors,
 * services, agents, the test kit) may ask of the kernel is here: the {@link Kernel} a node or a
 * context belongs to, what a process record may be asked (is it dead, is it in its own handler),
 * target validation, envelope delivery, death watches and hooks, node timers and the next-turn list.
 * Nothing outside `src/runtime` imports `src/runtime/internal/**` or the node class (the lint's
 * layering rules say so); a transport or an observer plugs in here too.
 */
import { types } from 'node:util';
import { InvalidArgumentError, ProcessExitedError } from '../errors.js';
import type { EnvelopeListener } from './internal/Envelope.js';
import { EXIT_SENTINEL, exitReasonOf, type ExitReport, ExitWatcher, F_BOUNDED, F_BUSY, F_DEAD, F_RUNNING, isProc, NextTurnWatcher, type Proc, type ProcHost } from './internal/Proc.js';
import type { TimerEntry } from './internal/TimerHeap.js';
import type { ExitReason } from './messages.js';
import type { NameTable } from './NameRegistry.js';
import { Delivery, NO_HELD } from './internal/Mailbox.js';
import { HeldEvent } from './internal/Held.js';
import { KeelNode, type KernelInternals } from './Node.js';
import { type Pid, type RefImpl, RemoteMonitorWatch, type Target, type TimerRef } from './Pid.js';
import type { GroupTable } from './ProcessGroups.js';
import type { RemoteRouter } from './remote.js';
import type { TelemetryBus } from '../telemetry/Telemetry.js';
import type { Context, Init, Node, SpawnOptions } from './types.js';

export { Delivery, EXIT_SENTINEL, exitReasonOf, ExitWatcher, HeldEvent, NextTurnWatcher, NO_HELD };
export type { EnvelopeListener, ExitReport, KernelInternals, Proc, RemoteRouter, TimerEntry };
/** Making a node with its service slots filled: for `keel`'s `createNode` and the services' factories. */
export { createRuntimeNode, type ServiceSlots } from './Node.js';

/**
 * What the layers above may ask of a node's kernel, beyond the public {@link Node}. A process record
 * ({@link Proc}) is what a process's `Context` is: the layers above hold it and use it as a context
 * (`self`, `send`, ...), and ask the door about it (`isDead`, `inHandler`, `inTurn`, `kernelOfProcess`,
 * `monitorSlotOf`), never reading or writing the record's own fields.
 */
export interface Kernel extends ProcHost {
  readonly telemetry: TelemetryBus;
  readonly registry: NameTable;
  readonly groups: GroupTable;
  /** True from the start of `shutdown()` on. */
  readonly stopping: boolean;
  readonly stopped: boolean;
  /** Logs through the node's logger; a logger that throws is ignored, never the caller's failure. */
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void;

  // processes
  /** Spawns a process; `parent` (a context) is the spawner, linked to it when `link`. */
  spawnProc<M>(init: Init<M>, options: SpawnOptions | undefined, parent: Proc | undefined, link: boolean): Pid<M>;
  /** The live process of a pid on this node, if any. */
  resolve(pid: Pid): Proc | undefined;
  /** The live process of a pid or a registered name on this node, if any. */
  lookupTarget(target: Target): Proc | undefined;
  /** Kills `p` with `reason` now (`own`: it ended itself, from its handler or its continuation). */
  die(p: Proc, reason: ExitReason, own?: boolean): void;
  /** An exit signal to `target` from a process or the node, delivered synchronously. */
  exitSignal(target: Pid, from: Proc | 'node', reason: ExitReason | 'kill'): void;
  /** After an operation that may have killed the calling process: stops its running handler. */
  throwIfExitedInHandler(p: Proc): void;
  /** Emits `keel.process.zombie_call` for a context used after its process exited. */
  zombieCall(p: Proc, operation: string): void;
  /** An exit signal from a process of another node, delivered now (the cluster's inbound signals). */
  remoteSignal(target: Proc, from: Pid, reason: ExitReason | 'kill'): void;
  /** Attaches (or, with undefined, detaches) the router for pids of other nodes. */
  attachRemote(router: RemoteRouter | undefined): void;
  readonly remote: RemoteRouter | undefined;
  link(p: Proc, pid: Pid): void;
  unlink(p: Proc, pid: Pid): void;
  monitor(p: Proc, target: Target): RefImpl;
  demonitor(p: Proc, ref: RefImpl, flush: boolean): boolean;
  newRef(): RefImpl;

  // delivery
  /** The one path every raw message takes. */
  deliver(from: Proc | undefined, to: Target, message: unknown): Delivery;
  /** Hands a message to a resolved process record (dead: dropped with `noproc`). */
  enqueueTo(p: Proc, message: unknown, from: Proc | undefined): Delivery;
  /** Delivers a message wrapped with an id and a listener told how it ended (supervised send). */
  deliverEnvelope(from: Proc | undefined, to: Proc, message: unknown, id: string, listener?: EnvelopeListener): Delivery;
  /** Takes back a queued, not yet started envelope; false when it is no longer queued. */
  withdrawEnvelope(to: Pid, id: string, listener?: EnvelopeListener): boolean;
  /** Lets go of the envelope `id` of `listener` that `to` is handling: its handler goes on, and how it ends is told to no one. */
  disownEnvelope(to: Pid, id: string, listener: EnvelopeListener): void;
  /**
   * A suspended server holds `message` (the one its handler was given) until resumed, with the
   * envelope being handled, set aside (its handler's return does not settle it). Held messages count
   * against a bounded mailbox's capacity; `admits` says which messages get in past them (system calls).
   */
  hold(p: Proc, message: unknown, admits: (message: unknown) => boolean): void;
  /** Takes the oldest message {@link hold} kept, or {@link NO_HELD}; a supervised one is in flight again, until {@link settleInflight}. */
  takeHeld(p: Proc): unknown;
  /** How many messages `p` holds. */
  heldCount(p: Proc): number;
  /**
   * A bounded state machine postpones `event`, which came as `msg` (what an eviction reports, and
   * tells if it is an exit watcher: a call): the kernel keeps it, counted against the capacity as a
   * held message, with the envelope being handled set aside if `carried` (the event came as the
   * message being handled, not inserted by the machine); `admits` as for {@link hold}.
   */
  postpone(p: Proc, event: unknown, msg: unknown, carried: boolean, admits: (message: unknown) => boolean): void;
  /** A state change: the postponed events not yet scheduled for replay, oldest first (each counts until {@link takePostponed}). */
  replayPostponed(p: Proc): readonly HeldEvent[];
  /** Takes a postponed event back to handle it (its envelope in flight, the one before settled handled), or {@link NO_HELD} if it was evicted or withdrawn. */
  takePostponed(p: Proc, h: HeldEvent): unknown;
  /** Settles the envelope `p` is handling as handled (a held message handled at last). */
  settleInflight(p: Proc): void;
  /** True when `p` is alive and its mailbox takes `n` more messages without refusing or evicting any. */
  canAccept(p: Proc, n: number): boolean;
  /** A fresh message id, `<node>-<creation>-<seq>`. */
  nextMessageId(): string;

  // death watches and hooks
  /** Tells `w` synchronously when `p` dies; false (nothing registered) when `p` is dead. */
  watchExit(p: Proc, w: ExitWatcher): boolean;
  unwatchExit(w: ExitWatcher): void;
  /** A death hook on a process record; its remover, or undefined when the process is dead. */
  onProcExit(p: Proc, fn: (reason: ExitReason) => void): (() => void) | undefined;
  /** A death hook on a pid; its remover, or undefined (and `fn` never runs) when it is not alive. */
  onExit(pid: Pid, fn: (reason: ExitReason) => void): (() => void) | undefined;

  // time
  /** A node timer (on the node's clock, coalesced into one host timer). */
  setTimer(ms: number, fn: () => void, unref?: boolean): { cancel(): boolean };
  /** A node timer as a bare entry (no closure per timer); cancel with {@link Kernel.cancelEntry}. */
  schedule<T>(ms: number, fn: (this: T) => void, unref?: boolean, receiver?: T): TimerEntry;
  cancelEntry(entry: TimerEntry): boolean;
  /** A process's timer sending `message` to `to` after `ms`; cancelled when the process dies. */
  sendAfter(p: Proc, to: Target, message: unknown, ms: number, unref?: boolean): TimerRef;
  /** The clock's time, read at most once per scheduler slice: for timestamps that need no precision. */
  coarseNow(): number;
  /** The time the node's timers count in (ms): for durations and windows, never for timestamps (monotonic on the real clock). */
  timerNow(): number;
  /** The timers' time, read at most once per scheduler slice: for deadlines and ages on a hot path that need no sub-slice precision. */
  coarseTimerNow(): number;
  /** Runs `task.nextTurn()` at the event loop's next turn (one `setImmediate` for all of them). */
  deferToNextTurn(task: NextTurnWatcher): void;
  cancelNextTurn(task: NextTurnWatcher): void;

  // observation: an observer's switches, each off until asked for (then one check on the path it touches)
  /**
   * Records each new process's spawn time (the timers' time, coarse: at most a slice stale) until
   * the returned remover is called (counted: several observers may record at once).
   */
  recordSpawnTimes(): () => void;
  /**
   * When `p` was spawned (the timers' time, ms: its age is `timerNow() - at`, whatever the wall
   * clock did meanwhile) while spawn times are recorded: `exact` false for a process
   * older than the recording (then `at` is when recording started: it is at least that old).
   */
  spawnedAt(p: Proc): { at: number; exact: boolean } | undefined;
  /** Measures each process's handler time until the returned remover is called (counted); while on, every turn is timed. */
  measureHandlerTime(): () => void;
  /** `p`'s handler time so far (ms of {@link Kernel.schedulerNow}) while measured, else undefined. */
  handlerTimeOf(p: Proc): number | undefined;
  /** The scheduler's real-time source (ms): what handler times are measured on. */
  schedulerNow(): number;

  // lifecycle
  /** Counts service I/O as in flight until it settles (`idle()` waits for it). */
  trackIo<T>(work: Promise<T>): Promise<T>;
  /** Resolves when no process is runnable; with `io`, also when no service I/O is in flight. */
  settle(options?: { io?: boolean }): Promise<void>;
  /**
   * A failure guard: runs `fn` once after `ms`, unless cleared. On real time; under a virtual clock
   * (a SimulatedClock) on that clock's time, so that it runs out at the same virtual time at every
   * run, with a real-time guard of the same length behind it (a node that never goes idle never moves
   * the virtual clock: nothing wedges).
   */
  guard(fn: () => void, ms: number): { clear(): void };
  /**
   * Work to settle when the node stops (pending calls and sends); returns its remover. Run last
   * registered first, once the processes are gone; a promise returned is awaited (within the
   * shutdown's time) before the hooks registered earlier run. One removed before its turn does not
   * run; one registered while the hooks run runs next (it is the last registered).
   */
  onShutdown(fn: () => unknown): () => void;
  /**
   * Work given up at once when a shutdown starts, before any process is told to stop (a manual dead
   * letter retry, whose receivers are going); run once, synchronously; returns its remover.
   */
  onStopping(fn: () => void): () => void;
  /** What dead processes left behind (for `expectNoLeaks`). */
  leftovers(): string[];
  /** Sizes of every internal index (for leak tests). */
  internals(): KernelInternals;
}

// the node class is the kernel: checked here, where both are known (Node.ts does not import this file)
const _isKernel: (node: KeelNode) => Kernel = (node) => node;
void _isKernel;

/** Where an operation comes from: a process (its context) or the node itself. */
export interface Origin {
  readonly node: Kernel;
  readonly caller: Proc | undefined;
}

/** True for a process record (a context of this copy of the package); never throws, a proxy is none. */
export function isProcess(value: unknown): value is Proc {
  return isProc(value);
}

/** True for a node of this copy of the package (a brand check: never runs a proxy's traps). */
export function isKernel(value: unknown): value is Kernel {
  return KeelNode.is(value);
}

/** True once the process has exited (its context is a zombie's). */
export function isDead(p: Proc): boolean {
  return (p.flags & F_DEAD) !== 0;
}

/** True when `p`'s mailbox is bounded (spawn option `mailbox`: fixed for its life). */
export function isBounded(p: Proc): boolean {
  return (p.flags & F_BOUNDED) !== 0;
}

/** True while the process is in its own handler: running it, or busy with an async handler's promise. */
export function inHandler(p: Proc): boolean {
  return (p.flags & (F_RUNNING | F_BUSY)) !== 0;
}

/**
 * True while the process's turn is on the stack: its handler or its init running synchronously, so
 * the code running now (telemetry handlers, any function it called) runs as that process. False once
 * an async handler or init awaits (the process is busy then, not running: see {@link inHandler}), and
 * between its turns.
 */
export function inTurn(p: Proc): boolean {
  return (p.flags & F_RUNNING) !== 0;
}

export { RemoteMonitorWatch };

/** Called by the router that carries remote monitors when one ends by its `Down`, before the `Down` is queued. */
export function remoteMonitorEnded(ref: RefImpl): void {
  const a = ref.attachment;
  if (a instanceof RemoteMonitorWatch) a.remoteMonitorEnded();
}

/** The monitor manager's data for a process (service slot 0), kept on its record; undefined until set. */
export function monitorSlotOf(p: Proc): unknown {
  return p.x?.monitorBucket;
}

/** Sets (or, with undefined, clears) the monitor manager's data for a process (service slot 0). */
export function setMonitorSlot(p: Proc, value: unknown): void {
  if (value !== undefined) p.ext().monitorBucket = value;
  else if (p.x !== undefined) p.x.monitorBucket = undefined;
}

/**
 * What a behaviour says of its process (its exit report: a started GenServer's, a Supervisor's...):
 * `behaviour`, `parent` and the rest, or undefined for a plain process. Costs nothing to keep: the
 * report exists for the lifecycle events anyway.
 */
export function exitReportOf(p: Proc): ExitReport | undefined {
  return p.x?.exitReport;
}

/** The exit watchers of a live process (pending calls to it, callers waiting, ...), for an observer's counts. */
export function exitWatchersOf(p: Proc): ExitWatcher[] {
  const out: ExitWatcher[] = [];
  for (let w = p.x?.watchers; w !== undefined; w = w.watchNext) out.push(w);
  return out;
}

/**
 * True when `e` is the value `ctx.exit` throws to unwind `p`'s own handler and `p` has exited: it is
 * then no crash (swallowed by the runtime). The same value kept by user code and thrown again from a
 * live process is a crash like any other value.
 */
export function exitedWith(p: Proc, e: unknown): boolean {
  return e === EXIT_SENTINEL && (p.flags & F_DEAD) !== 0;
}

/**
 * The kernel of a process record, alive or not. A record depends only on the part of the kernel
 * interface that a context needs (`ProcHost`, which {@link Kernel} extends); every record's host is a
 * node of this copy of the package, which is the whole kernel (checked at compile time above).
 */
export function kernelOfProcess(p: Proc): Kernel {
  return p.rt as Kernel;
}

/** The kernel of a `from` argument (a node or a live process's context); throws for anything else. */
export function kernelOf(from: Node | Context<any>, argument = 'from'): Kernel {
  if (isProc(from)) {
    if ((from.flags & F_DEAD) !== 0) zombie(from);
    return from.rt as Kernel; // kernelOfProcess, inline (a call fewer per GenServer.call)
  }
  // this copy's own node by its brand first, then any node by its shape (isNode): a call fewer for the common case
  if (KeelNode.is(from) || isNode(from)) return from;
  throw new InvalidArgumentError(argument, 'a Node or a process Context', from);
}

/** The kernel and the calling process of a `from` argument, checked once. */
export function originOf(from: Node | Context<any>, argument = 'from'): Origin {
  if (isProc(from)) {
    if ((from.flags & F_DEAD) !== 0) zombie(from);
    return { node: kernelOfProcess(from), caller: from };
  }
  if (isNode(from)) return { node: from, caller: undefined };
  throw new InvalidArgumentError(argument, 'a Node or a process Context', from);
}

/** A node (by its shape: another copy of the package makes nodes too); never throws, and a proxy is none. */
function isNode(value: unknown): value is Kernel {
  if (KeelNode.is(value)) return true; // this copy's own nodes: a brand check, no call into the engine
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return false;
  try {
    return typeof (value as Partial<Kernel>).lookupTarget === 'function';
  } catch {
    return false; // a getter that throws
  }
}

function zombie(p: Proc): never {
  // a zombie continuation: behaviour operations fail loudly, as ctx.spawn does
  p.rt.zombieCall(p, 'behaviour operation');
  throw new ProcessExitedError(String(p.self), 'a behaviour operation');
}
