import { types } from 'node:util';
import { checkKeys, InvalidArgumentError, ProcessExitedError } from '../../errors.js';
import type { ExitReason } from '../messages.js';
import { isExitReason } from '../messages.js';
import { isPid, type Pid, PidImpl, procOf, type Ref, RefImpl, type Target, type TimerRef, toPid } from '../Pid.js';
import type { Context, Handler, Init, MailboxOptions, Node, SpawnOptions } from '../types.js';
import type { Envelope } from './Envelope.js';
import type { HeldQueue, PostponedEvents } from './Held.js';
import type { TimerEntry } from './TimerHeap.js';
import { isInstance } from '../safe.js';

/** @internal Process flags, one small integer per process. */
export const F_SCHEDULED = 1;
export const F_RUNNING = 2;
export const F_BUSY = 4;
export const F_DEAD = 8;
export const F_TRAP = 16;
export const F_BOUNDED = 32;
export const F_INIT = 64;
export const F_TOP = 128;
/** Set on a process that exited with `'shutdown'` and has no extras to hold its reason. */
export const F_SHUTDOWN = 256;
/** Set on a process whose handling was seen to take long: the scheduler reads the clock after each of its messages. */
export const F_SLOW = 512;
/** Set on a process until the scheduler has measured it once (its first turn ends with a clock reading). */
export const F_FRESH = 1024;
/** Set while a process's mailbox is long (it crossed the node's `longMailbox.above` and has not yet fallen below `below`). */
export const F_LONG = 2048;
/** Set on a process that was killed (`'killed'`) and has no extras to hold its reason. */
export const F_KILLED = 4096;

/** @internal The shared empty mailbox of every process that has not received a message yet. */
export const EMPTY: unknown[] = [];

/** @internal The reason a dead process exited with: kept in its extras, or in a flag when it has none. */
export function exitReasonOf(p: Proc): ExitReason {
  return p.x?.reason ?? ((p.flags & F_SHUTDOWN) !== 0 ? 'shutdown' : (p.flags & F_KILLED) !== 0 ? 'killed' : 'normal');
}

/**
 * @internal What a process record asks of its node: the operations of a `Context` that the kernel
 * carries out. The node implements it (and the whole kernel interface of `src/runtime/kernel.ts`);
 * the record depends on this interface only, never on the node class.
 */
export interface ProcHost extends Node {
  deliver(from: Proc | undefined, to: Target, message: unknown): unknown;
  spawnProc<M>(init: Init<M>, options: SpawnOptions | undefined, parent: Proc | undefined, link: boolean): Pid<M>;
  zombieCall(p: Proc, operation: string): void;
  link(p: Proc, pid: Pid): void;
  unlink(p: Proc, pid: Pid): void;
  newRef(): RefImpl;
  monitor(p: Proc, target: Target): RefImpl;
  demonitor(p: Proc, ref: RefImpl, flush: boolean): boolean;
  exitSignal(target: Pid, from: Proc | 'node', reason: ExitReason | 'kill'): void;
  throwIfExitedInHandler(p: Proc): void;
  die(p: Proc, reason: ExitReason, own?: boolean): void;
  sendAfter(p: Proc, to: Target, message: unknown, ms: number, unref?: boolean): TimerRef;
  cancelTimer(timer: TimerRefImpl): boolean;
}

/** @internal A monitor between two live processes. */
export class Monitor {
  readonly ref: RefImpl;
  readonly owner: Proc;
  readonly target: Proc;
  readonly name: string | undefined;
  constructor(ref: RefImpl, owner: Proc, target: Proc, name: string | undefined) {
    this.ref = ref;
    this.owner = owner;
    this.target = target;
    this.name = name;
  }
}

/** What a behaviour reports of its process's exit (see {@link ProcExtras.exitReport}); it must not throw. */
export interface ExitReport {
  exited(pid: Pid, reason: ExitReason): void;
  /** The behaviour the process runs (`'gen_server'`, `'supervisor'`, ...), for an observer. */
  readonly behaviour?: string;
  /** The process that started it, or `'node'`. */
  readonly parent?: Pid | 'node';
  /** True when the behaviour's spec shows its state through a redactor (`formatStatus`): an observer may then ask for it. */
  readonly redacts?: boolean;
  /** The agent-layer component the process is (`'signal_router'`, `'coordinator'`...), if it is one. */
  readonly component?: string | undefined;
}

/** @internal The per-process data most processes never need, allocated on first use. */
export class ProcExtras {
  // declared, then assigned in the constructor: no field-initializer pass (a name, a monitor, a
  // link or an abnormal exit allocates one, by the hundred thousand in a burst)
  declare links: Set<Proc> | undefined;
  declare monitors: Map<RefImpl, Monitor> | undefined;
  declare monitoredBy: Map<RefImpl, Monitor> | undefined;
  declare name: string | undefined;
  declare groups: Set<string> | undefined;
  declare timers: Set<TimerEntry> | undefined;
  declare abort: AbortController | undefined;
  declare capacity: number;
  declare overflow: MailboxOptions['overflow'];
  /** The supervised message being handled (its id is `ctx.messageId`). */
  declare inflight: Envelope | undefined;
  /**
   * The messages a suspended server holds (`Sys.suspend`), oldest first; undefined when none. They
   * count against a bounded mailbox's capacity; a supervised one is settled when handled, or `down`
   * at the process's death.
   */
  declare held: HeldQueue | undefined;
  /**
   * The events a bounded state machine postponed ({@link HeldEvent}s), oldest first; undefined when
   * none. They count against the capacity as held messages do.
   */
  declare postponed: PostponedEvents | undefined;
  /** Which messages a bounded mailbox takes past the held ones (a server's system calls); set with the first held. */
  declare admits: ((message: unknown) => boolean) | undefined;
  declare exitHooks: Set<(reason: ExitReason) => void> | undefined;
  /** Told once, after the death hooks, when the process exits: a behaviour's lifecycle report (`keel.gen_server.terminate`). */
  declare exitReport: ExitReport | undefined;
  /** Service slot 0's per-process data (the monitor manager's bucket for this process). */
  declare monitorBucket: unknown;
  /** The head of this process's exit watchers (an intrusive list: no allocation per watch). */
  declare watchers: ExitWatcher | undefined;
  declare reason: ExitReason | undefined;
  constructor() {
    this.links = undefined;
    this.monitors = undefined;
    this.monitoredBy = undefined;
    this.name = undefined;
    this.groups = undefined;
    this.timers = undefined;
    this.abort = undefined;
    this.capacity = Infinity;
    this.overflow = 'reject';
    this.inflight = undefined;
    this.held = undefined;
    this.postponed = undefined;
    this.admits = undefined;
    this.exitHooks = undefined;
    this.exitReport = undefined;
    this.monitorBucket = undefined;
    this.watchers = undefined;
    this.reason = undefined;
  }
}

/**
 * @internal Something told synchronously when a process dies (a pending call, say), kept in an
 * intrusive doubly linked list on the process, so that watching and unwatching allocate nothing.
 */
export abstract class ExitWatcher {
  // declared, then assigned in the constructor: watchers are made per call and per handled send,
  // and a subclass chain of field initializers costs a pass per level
  declare watchNext: ExitWatcher | undefined;
  declare watchPrev: ExitWatcher | undefined;
  declare watched: Proc | undefined;
  constructor() {
    this.watchNext = undefined;
    this.watchPrev = undefined;
    this.watched = undefined;
  }
  abstract onExit(reason: ExitReason): void;
  /** A description of what this watcher leaks, if anything (for `expectNoLeaks`). */
  leak?(): string | undefined;
  /** When the watcher is itself a message: a bounded mailbox evicted it. */
  dropped?(): void;
  /**
   * When the watcher is itself a message: its receiver died with it still queued (never taken by its
   * handler). Told during the death's bookkeeping, before `onExit`; it must run no user code.
   */
  leftQueued?(): void;
}

/**
 * @internal An exit watcher with work for the next turn of the event loop (a call's or a handled
 * send's deadline, armed only if still needed). Queued on an intrusive list, so a task that
 * finishes within the turn is unlinked at once and becomes garbage while still young.
 */
export abstract class NextTurnWatcher extends ExitWatcher {
  declare turnNext: NextTurnWatcher | undefined;
  declare turnPrev: NextTurnWatcher | undefined;
  declare turnQueued: boolean;
  constructor() {
    super();
    this.turnNext = undefined;
    this.turnPrev = undefined;
    this.turnQueued = false;
  }
  abstract nextTurn(): void;
}

/** @internal A timer reference handed to user code. */
export class TimerRefImpl {
  readonly entry: TimerEntry;
  constructor(entry: TimerEntry) {
    this.entry = entry;
  }
}

/** @internal Thrown by `ctx.exit` inside the process's own running handler; swallowed by the runtime. */
export const EXIT_SENTINEL: { readonly keelExitSentinel: true } = Object.freeze({ keelExitSentinel: true as const });

/**
 * @internal A process record. It is also the process's `Context`, so a process costs one object
 * plus its pid. The mailbox is a ring buffer inlined here (`buf` of a power-of-two length, `head`, `size`).
 */
export class Proc implements Context<any> {
  // Declared, then assigned in the constructor in one place: one object shape, no field-definition
  // pass (processes are created by the hundred thousand).
  declare readonly self: PidImpl;
  declare readonly rt: ProcHost;
  /** The message handler; while `F_INIT` is set, the init function instead. */
  declare handler: Handler<any> | Init<any> | null;
  declare buf: unknown[];
  declare head: number;
  declare size: number;
  declare flags: number;
  declare handled: number;
  declare x: ProcExtras | undefined;

  constructor(rt: ProcHost, self: PidImpl, init: Init<any>, flags: number) {
    (this as { rt: ProcHost }).rt = rt;
    (this as { self: PidImpl }).self = self;
    this.handler = init;
    this.buf = EMPTY;
    this.head = 0;
    this.size = 0;
    this.flags = flags;
    this.handled = 0;
    this.x = undefined;
  }

  ext(): ProcExtras {
    let x = this.x;
    if (x === undefined) x = this.x = new ProcExtras();
    return x;
  }

  get node(): Node {
    return this.rt;
  }

  get signal(): AbortSignal {
    const x = this.ext();
    if (x.abort === undefined) {
      x.abort = new AbortController();
      if ((this.flags & F_DEAD) !== 0) x.abort.abort(exitReasonOf(this));
    }
    return x.abort.signal;
  }

  get messageId(): string | undefined {
    return this.x?.inflight?.id;
  }

  send<N>(to: Target<N>, message: N): void {
    if ((this.flags & F_DEAD) !== 0) {
      this.rt.zombieCall(this, 'send');
      return;
    }
    this.rt.deliver(this, to, message);
  }

  spawn<N>(init: Init<N>, options?: SpawnOptions): Pid<N> {
    if ((this.flags & F_DEAD) !== 0) refuse(this, 'spawn');
    return this.rt.spawnProc(init, options, this, false);
  }

  spawnLink<N>(init: Init<N>, options?: SpawnOptions): Pid<N> {
    if ((this.flags & F_DEAD) !== 0) refuse(this, 'spawnLink');
    return this.rt.spawnProc(init, options, this, true);
  }

  link(pid: Pid): void {
    const q = toPid(pid); // a copy of a pid: its fields read once
    if (q === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
    if ((this.flags & F_DEAD) !== 0) return this.rt.zombieCall(this, 'link');
    this.rt.link(this, q);
  }

  unlink(pid: Pid): void {
    const q = toPid(pid);
    if (q === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
    if ((this.flags & F_DEAD) !== 0) return this.rt.zombieCall(this, 'unlink');
    this.rt.unlink(this, q);
  }

  monitor(target: Target): Ref {
    if ((this.flags & F_DEAD) !== 0) {
      this.rt.zombieCall(this, 'monitor');
      return this.rt.newRef();
    }
    return this.rt.monitor(this, target);
  }

  demonitor(ref: Ref, options?: { flush?: boolean }): boolean {
    if (!RefImpl.is(ref)) throw new InvalidArgumentError('ref', 'a Ref returned by ctx.monitor', ref);
    if (options !== undefined) {
      if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { flush }', options);
      checkKeys(options, ['flush'], 'options'); // a typo is refused, and an option that throws when read is a typed error
    }
    if ((this.flags & F_DEAD) !== 0) {
      this.rt.zombieCall(this, 'demonitor');
      return false;
    }
    return this.rt.demonitor(this, ref, options?.flush === true);
  }

  trapExits(on = true): void {
    if (typeof on !== 'boolean') throw new InvalidArgumentError('on', 'a boolean', on);
    if ((this.flags & F_DEAD) !== 0) return this.rt.zombieCall(this, 'trapExits');
    if (on) this.flags |= F_TRAP;
    else this.flags &= ~F_TRAP;
  }

  exit(reason?: ExitReason): void;
  exit(pid: Pid, reason: ExitReason | 'kill'): void;
  exit(a?: unknown, b?: unknown): void {
    if (arguments.length >= 2 || isPid(a)) {
      const pid = toPid(a); // a copy of a pid: its fields read once
      if (pid === undefined) throw new InvalidArgumentError('pid', 'a Pid', a);
      if (b !== 'kill' && !isExitReason(b)) {
        throw new InvalidArgumentError('reason', "an exit reason ('normal', 'shutdown', { shutdown }, 'killed', an Error, ...) or 'kill'", b);
      }
      if ((this.flags & F_DEAD) !== 0) return this.rt.zombieCall(this, 'exit');
      this.rt.exitSignal(pid, this, b);
      this.rt.throwIfExitedInHandler(this);
      return;
    }
    const reason = a === undefined ? 'normal' : a;
    if (!isExitReason(reason)) {
      throw new InvalidArgumentError('reason', "an exit reason ('normal', 'shutdown', { shutdown }, 'killed', an Error, ...)", reason);
    }
    if ((this.flags & F_DEAD) !== 0) return this.rt.zombieCall(this, 'exit');
    this.rt.die(this, reason, true);
    this.rt.throwIfExitedInHandler(this);
  }

  sendAfter<N>(to: Target<N>, message: N, ms: number): TimerRef {
    return this.rt.sendAfter(this, to, message, ms);
  }

  cancelTimer(timer: TimerRef): boolean {
    if (!isInstance(timer, TimerRefImpl)) throw new InvalidArgumentError('timer', 'a TimerRef returned by ctx.sendAfter', timer);
    if ((this.flags & F_DEAD) !== 0) {
      this.rt.zombieCall(this, 'cancelTimer');
      return false;
    }
    return this.rt.cancelTimer(timer);
  }
}

/**
 * @internal True for a process record (a process's context), checked on a value user code passed
 * (a `from`, a `ctx`): never throws, and a proxy is never one, even of a context (its traps would
 * run in place of the runtime's fields).
 */
export function isProc(value: unknown): value is Proc {
  try {
    if (!(value instanceof Proc)) return false;
    // a live process is its own pid's record, and a proxy of one is not (this costs no call into
    // the engine, unlike asking whether it is a proxy, which is left to a dead process's context)
    const live = procOf(value.self);
    return live === value || (live === undefined && !types.isProxy(value));
  } catch {
    return false; // a proxy whose getPrototypeOf trap throws, a revoked proxy
  }
}

function refuse(p: Proc, operation: string): never {
  p.rt.zombieCall(p, operation);
  throw new ProcessExitedError(String(p.self), operation);
}
