import { randomInt } from 'node:crypto';
import diagnostics from 'node:diagnostics_channel';
import {
  checkKeys,
  HandlerReturnedError,
  IdleTimeoutError,
  InvalidArgumentError,
  NodeStoppedError,
  toError,
} from '../errors.js';
import { TelemetryBus } from '../telemetry/Telemetry.js';
import { type Clock, isAttachable, isDeterministic, kAttachNode, monotonicClock, realClock } from './Clock.js';
import { IdSequence } from './IdSequence.js';
import { Envelope, type EnvelopeListener } from './internal/Envelope.js';
import {
  EMPTY,
  EXIT_SENTINEL,
  ExitWatcher,
  F_BOUNDED,
  F_BUSY,
  F_DEAD,
  F_INIT,
  F_LONG,
  F_RUNNING,
  F_SCHEDULED,
  F_FRESH,
  F_SHUTDOWN,
  F_SLOW,
  F_TOP,
  F_TRAP,
  Monitor,
  type NextTurnWatcher,
  Proc,
  grow,
  removeWhere,
  TimerRefImpl,
} from './internal/Proc.js';
import { ProcTable } from './internal/ProcTable.js';
import { isInstance } from './safe.js';
import { TimerEntry, TimerHeap } from './internal/TimerHeap.js';
import { DownMessage, type ExitReason, ExitMessage, formatReason, isCleanExit, isDown, isExitReason } from './messages.js';
import { NameTable } from './NameRegistry.js';
import { GroupTable } from './ProcessGroups.js';
import { isPid, NODE_NAME, type Pid, PidImpl, RefImpl, type Target, type TimerRef } from './Pid.js';
import { type DeadLetterQueue, type MonitorManager, unavailableDeadLetters, unavailableMonitors } from './serviceSlots.js';
import type { Handler, Init, Logger, Node, NodeOptions, ProcessInfo, SpawnOptions } from './types.js';

const RESOLVED = Promise.resolve();
const NOTHING: unique symbol = Symbol('nothing');
/** A mailbox ring longer than this is given back once the mailbox is empty. */
const SHRINK_ABOVE = 1024;
/** The run queue's length (a power of two), to which it shrinks back once a burst has drained. */
const RQ_INITIAL = 1024;
const RQ_SHRINK_ABOVE = 65_536;
/** At most this many messages run between two readings of the clock within a slice. */
const MAX_INTERVAL = 64;
/** Under a virtual clock a slice is this many messages: a deterministic yield, no real clock read. */
const DETERMINISTIC_SLICE = 1024;
const OVERFLOWS = ['reject', 'drop_newest', 'drop_oldest'] as const;
let defaultNameSeq = 0;
const creationsInUse = new Set<number>();

/** @internal The result of handing a message to a process. */
export const Delivery = { Enqueued: 0, NoProc: 1, MailboxFull: 2 } as const;
/** @internal */
export type Delivery = (typeof Delivery)[keyof typeof Delivery];

/** @internal Factories for the node's service slots; the layers above plug the real services in. */
export interface ServiceSlots {
  monitors?: (node: Node) => MonitorManager;
  deadLetters?: (node: Node) => DeadLetterQueue;
}

/** What an idle waiter waits for: no runnable process; and no service I/O; and no busy handler either. */
const Quiet = { Runnable: 0, Io: 1, All: 2 } as const;
type Quiet = (typeof Quiet)[keyof typeof Quiet];

interface IdleWaiter {
  readonly until: Quiet;
  readonly resolve: () => void;
}

/** @internal The runtime behind `createNode`. */
export class KeelNode implements Node {
  readonly name: string;
  readonly creation: number;
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly telemetry: TelemetryBus;
  readonly registry: NameTable;
  readonly groups: GroupTable;
  /** Pending-call settlers and other work the layers above must finish when the node stops. */
  readonly #shutdownHooks = new Set<() => void>();
  readonly #procs = new ProcTable();
  readonly #timers: TimerHeap;
  readonly #budget: number;
  readonly #sliceMs: number;
  /** An interval at least this long marks its last process slow (an eighth of the slice). */
  readonly #slowMs: number;
  /** The long-mailbox monitor's bounds (Infinity and -1 when it is off). */
  readonly #longAbove: number;
  readonly #longBelow: number;
  #longMailboxes = 0;
  /** Under a virtual clock: slices count messages, and nothing depends on real time. */
  readonly #deterministic: boolean;
  /** The flag a new process starts with: F_FRESH, or nothing under a virtual clock (nothing is measured). */
  readonly #fresh: number;
  readonly #longScheduleMs: number;
  readonly #placeholder: PidImpl;
  readonly #detachClock: (() => void) | undefined;
  #monitors: MonitorManager = unavailableMonitors;
  #deadLetters: DeadLetterQueue = unavailableDeadLetters;
  #nextId = 0;
  #nextRef = 0;
  #turnHead: NextTurnWatcher | undefined = undefined;
  #turnTail: NextTurnWatcher | undefined = undefined;
  #turnScheduled = false;
  #messageIds: IdSequence;
  // run queue: a FIFO ring of ready processes
  #rq: (Proc | null)[] = new Array<Proc | null>(RQ_INITIAL).fill(null);
  #rqMask = RQ_INITIAL - 1;
  #rqHead = 0;
  #rqSize = 0;
  #running = false;
  #pending = false;
  #sliceOpen = false;
  #sliceStart = 0;
  /** Messages left before the clock is read again, and how many the current interval started with. */
  #countdown = 1;
  #interval = 1;
  /** When the clock was last read in this slice. */
  #checkedAt = 0;
  #coarseAt = -1;
  #coarseNow = 0;
  #attachVersion = -1;
  #longScheduleAttached = false;
  readonly #longScheduleChannel = diagnostics.channel('keel.process.long_schedule');
  #busy = 0;
  #io = 0;
  #envelopes = 0;
  // exit signals are delivered from a flat queue, so that cascades never recurse
  readonly #signals: unknown[] = [];
  #flushing = false;
  readonly #waiters = new Set<IdleWaiter>();
  #idleCheck = false;
  #state: 'running' | 'stopping' | 'stopped' = 'running';
  /** Set when shutdown starts killing what is left: no spawn after it. */
  #spawnClosed = false;
  #shutdown: Promise<void> | undefined = undefined;

  constructor(options: NodeOptions = {}, slots: ServiceSlots = {}) {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an options object', options);
    checkKeys(options, ['name', 'clock', 'random', 'logger', 'services', 'scheduler', 'longMailbox'], 'options');
    const { name, clock = realClock, random = Math.random, logger = console, services = true, scheduler = {} } = options;
    if (name !== undefined && (typeof name !== 'string' || !NODE_NAME.test(name))) {
      throw new InvalidArgumentError('name', 'a node name of 1 to 255 letters, digits, or . _ - @', name);
    }
    if (!isClock(clock)) throw new InvalidArgumentError('clock', 'a Clock with now(), setTimer() and clearTimer()', clock);
    if (typeof random !== 'function') throw new InvalidArgumentError('random', 'a function returning numbers in [0, 1)', random);
    if (!isLogger(logger)) throw new InvalidArgumentError('logger', 'a Logger with info(), warn() and error()', logger);
    if (typeof services !== 'boolean' && (typeof services !== 'object' || services === null)) {
      throw new InvalidArgumentError('services', 'a boolean or a services options object', services);
    }
    if (typeof services === 'object') checkKeys(services, ['monitors', 'deadLetters'], 'services');
    if (typeof scheduler !== 'object' || scheduler === null) {
      throw new InvalidArgumentError('scheduler', 'an object { budget?, sliceMs?, longScheduleMs? }', scheduler);
    }
    checkKeys(scheduler, ['budget', 'sliceMs', 'longScheduleMs'], 'scheduler');
    this.#budget = positiveInt('scheduler.budget', scheduler.budget, 64);
    this.#sliceMs = positiveNumber('scheduler.sliceMs', scheduler.sliceMs, 5);
    this.#slowMs = this.#sliceMs / 8;
    this.#deterministic = isDeterministic(clock);
    this.#fresh = this.#deterministic ? 0 : F_FRESH;
    [this.#longAbove, this.#longBelow] = longMailboxBounds(options.longMailbox);
    this.#longScheduleMs = positiveNumber('scheduler.longScheduleMs', scheduler.longScheduleMs, 50);
    this.name = name ?? `keel-${++defaultNameSeq}`;
    // under a virtual clock the creation comes from the node's random too: a seeded simulation then
    // repeats its pids' text and its message ids as well
    this.creation = freshCreation(this.#deterministic ? checkedRandom(random) : undefined);
    this.clock = clock;
    this.random = checkedRandom(random);
    this.logger = logger;
    this.telemetry = new TelemetryBus({
      monotonicClock,
      report: (message, error) => this.#log('warn', message, error),
    });
    this.registry = new NameTable((pid) => this.resolve(pid));
    this.groups = new GroupTable((pid) => this.resolve(pid));
    this.#timers = new TimerHeap(clock, (error) => this.#log('error', `a timer callback of node ${this.name} threw`, error));
    this.#placeholder = new PidImpl(this.name, this.creation, 0, undefined);
    this.#messageIds = new IdSequence(`${this.name}-${this.creation}-`);
    this.#detachClock = isAttachable(clock) ? clock[kAttachNode](this) : undefined;
    if (services !== false) {
      if (slots.monitors !== undefined) this.#monitors = slots.monitors(this);
      if (slots.deadLetters !== undefined) this.#deadLetters = slots.deadLetters(this);
    }
  }

  /** @internal True for a node of this copy of the package (a brand check: never runs a proxy's traps). */
  static is(value: unknown): value is KeelNode {
    return typeof value === 'object' && value !== null && #procs in value;
  }

  get monitors(): MonitorManager {
    return this.#state === 'stopped' ? unavailableMonitors : this.#monitors;
  }

  get deadLetters(): DeadLetterQueue {
    return this.#state === 'stopped' ? unavailableDeadLetters : this.#deadLetters;
  }

  // ---- processes ------------------------------------------------------------------------------

  spawn<M>(init: Init<M>, options?: SpawnOptions): Pid<M> {
    return this.spawnProc(init, options, undefined, false);
  }

  /** @internal */
  spawnProc<M>(init: Init<M>, options: SpawnOptions | undefined, parent: Proc | undefined, link: boolean): Pid<M> {
    if (this.#spawnClosed) throw new NodeStoppedError(this.name, 'spawn');
    if (typeof init !== 'function') throw new InvalidArgumentError('init', 'a function (ctx) => handler', init);
    const spec = options === undefined ? undefined : this.#spawnOptions(options);
    const id = ++this.#nextId;
    const pid = new PidImpl(this.name, this.creation, id, undefined);
    const p = new Proc(this, pid, init as Init<unknown>, parent === undefined ? F_INIT | this.#fresh | F_TOP : F_INIT | this.#fresh);
    PidImpl.setProc(pid, p);
    this.#procs.set(id, p);
    if (spec !== undefined) {
      if (spec.capacity !== Infinity) {
        const x = p.ext();
        x.capacity = spec.capacity;
        x.overflow = spec.overflow;
        p.flags |= F_BOUNDED;
      }
      if (spec.name !== undefined) this.registry.registerProc(spec.name, p);
    }
    if (link && parent !== undefined) this.#addLink(parent, p);
    this.#wake(p);
    return pid as Pid<M>;
  }

  /** Validates spawn options before anything is created (a taken name spawns nothing). */
  #spawnOptions(options: SpawnOptions): { capacity: number; overflow: (typeof OVERFLOWS)[number]; name: string | undefined } {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a SpawnOptions object', options);
    checkKeys(options, ['name', 'mailbox'], 'options');
    let capacity = Infinity;
    let overflow: (typeof OVERFLOWS)[number] = 'reject';
    if (options.name !== undefined) this.registry.checkFree(options.name);
    const mb = options.mailbox;
    if (mb !== undefined) {
      if (typeof mb !== 'object' || mb === null) throw new InvalidArgumentError('mailbox', '{ capacity, overflow }', mb);
      checkKeys(mb, ['capacity', 'overflow'], 'mailbox');
      if (!Number.isSafeInteger(mb.capacity) || mb.capacity < 1) {
        throw new InvalidArgumentError('mailbox.capacity', 'a positive integer', mb.capacity);
      }
      if (!OVERFLOWS.includes(mb.overflow)) {
        throw new InvalidArgumentError('mailbox.overflow', "'reject' | 'drop_newest' | 'drop_oldest'", mb.overflow);
      }
      capacity = mb.capacity;
      overflow = mb.overflow;
    }
    return { capacity, overflow, name: options.name };
  }

  isAlive(target: Target): boolean {
    return this.#lookup(target) !== undefined;
  }

  info(target: Target): ProcessInfo | undefined {
    const p = this.#lookup(target);
    if (p === undefined) return undefined;
    const x = p.x;
    const f = p.flags;
    const status =
      (f & F_INIT) !== 0 ? 'initializing' : (f & F_RUNNING) !== 0 ? 'running' : (f & F_BUSY) !== 0 ? 'busy' : p.size > 0 ? 'runnable' : 'waiting';
    return {
      pid: p.self,
      status,
      mailboxLength: p.size,
      messagesHandled: p.handled,
      links: x?.links === undefined ? [] : [...x.links].map((q) => q.self),
      monitors: x?.monitors === undefined ? [] : [...x.monitors.keys()],
      monitoredBy: x?.monitoredBy === undefined ? [] : [...x.monitoredBy.values()].map((m) => m.owner.self),
      name: x?.name,
      trapExits: (f & F_TRAP) !== 0,
      timers: x?.timers?.size ?? 0,
      longMailbox: (f & F_LONG) !== 0,
    };
  }

  processes(): Pid[] {
    return this.#procs.values().map((p) => p.self);
  }

  /** @internal The live process of a pid on this node, if any. */
  resolve(pid: Pid): Proc | undefined {
    const direct = PidImpl.live(pid);
    if (direct !== undefined) return direct.rt === this ? direct : undefined;
    if (pid.node !== this.name || pid.creation !== this.creation) return undefined;
    return this.#procs.get(pid.id);
  }

  /** @internal The live process of a pid or a registered name on this node. */
  lookupTarget(target: Target): Proc | undefined {
    const p = PidImpl.live(target);
    if (p !== undefined && p.rt === this) return p;
    return this.#lookup(target);
  }

  /** @internal Hands a message to a live process record (the layers above resolve once, then send). */
  enqueueTo(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    if ((p.flags & F_DEAD) !== 0) {
      this.#dropped(from, p.self, message, 'noproc');
      return Delivery.NoProc;
    }
    return this.#enqueue(p, message, from);
  }

  /** @internal A death hook on a live process record; see {@link KeelNode.onExit}. */
  onProcExit(p: Proc, fn: (reason: ExitReason) => void): (() => void) | undefined {
    if ((p.flags & F_DEAD) !== 0) return undefined;
    const hooks = (p.ext().exitHooks ??= new Set());
    hooks.add(fn);
    return () => {
      hooks.delete(fn);
    };
  }

  /** @internal Tells `w` synchronously when `p` dies; false (and nothing registered) when `p` is dead. */
  watchExit(p: Proc, w: ExitWatcher): boolean {
    if ((p.flags & F_DEAD) !== 0) return false;
    const x = p.ext();
    const head = x.watchers;
    w.watched = p;
    w.watchPrev = undefined;
    w.watchNext = head;
    if (head !== undefined) head.watchPrev = w;
    x.watchers = w;
    return true;
  }

  /** @internal */
  unwatchExit(w: ExitWatcher): void {
    const p = w.watched;
    if (p === undefined) return;
    w.watched = undefined;
    if ((p.flags & F_DEAD) !== 0) return; // its list was detached at death: nothing to unlink
    const { watchPrev: prev, watchNext: next } = w;
    if (prev !== undefined) prev.watchNext = next;
    else if (p.x !== undefined && p.x.watchers === w) p.x.watchers = next;
    if (next !== undefined) next.watchPrev = prev;
    w.watchPrev = w.watchNext = undefined;
  }

  /** @internal A coalesced node timer as a bare entry (no closure per timer); cancel with {@link KeelNode.cancelEntry}. */
  schedule<T>(ms: number, fn: (this: T) => void, unref = false, receiver?: T): TimerEntry {
    return this.#timers.schedule(ms, fn, unref, receiver);
  }

  /**
   * @internal Calls `task.nextTurn()` at the next turn of the event loop, with every other task
   * deferred in this turn (one `setImmediate` per turn). Deadlines of operations that usually finish
   * within the turn (a call, a handled send) are armed there only if still needed.
   */
  deferToNextTurn(task: NextTurnWatcher): void {
    if (task.turnQueued) return;
    task.turnQueued = true;
    task.turnNext = undefined;
    task.turnPrev = this.#turnTail;
    if (this.#turnTail === undefined) this.#turnHead = task;
    else this.#turnTail.turnNext = task;
    this.#turnTail = task;
    if (!this.#turnScheduled) {
      this.#turnScheduled = true;
      setImmediate(this.#runNextTurn);
    }
  }

  /** @internal Takes a task off the next turn's list (it finished within this turn); O(1). */
  cancelNextTurn(task: NextTurnWatcher): void {
    if (!task.turnQueued) return;
    task.turnQueued = false;
    const { turnPrev: prev, turnNext: next } = task;
    if (prev === undefined) this.#turnHead = next;
    else prev.turnNext = next;
    if (next === undefined) this.#turnTail = prev;
    else next.turnPrev = prev;
    task.turnPrev = task.turnNext = undefined;
  }

  #runNextTurn = (): void => {
    this.#turnScheduled = false;
    let t = this.#turnHead;
    this.#turnHead = this.#turnTail = undefined;
    while (t !== undefined) {
      const next = t.turnNext;
      t.turnQueued = false;
      t.turnPrev = t.turnNext = undefined;
      try {
        t.nextTurn();
      } catch (e) {
        this.#log('error', 'a deferred task threw', e);
      }
      t = next;
    }
  };

  /** @internal */
  cancelEntry(entry: TimerEntry): boolean {
    return this.#timers.cancel(entry);
  }

  #lookup(target: Target): Proc | undefined {
    if (typeof target === 'string') return this.registry.lookup(target);
    if (!isPid(target)) throw new InvalidArgumentError('target', 'a Pid or a registered name', target);
    return this.resolve(target);
  }

  // ---- delivery -------------------------------------------------------------------------------

  send<M>(to: Target<M>, message: M): void {
    this.deliver(undefined, to, message);
  }

  /** @internal The one path every raw message takes. */
  deliver(from: Proc | undefined, to: Target, message: unknown): Delivery {
    const p = PidImpl.live(to);
    if (p !== undefined && p.rt === this) return this.#enqueue(p, message, from);
    return this.#deliverSlow(from, to, message);
  }

  #deliverSlow(from: Proc | undefined, to: Target, message: unknown): Delivery {
    let p: Proc | undefined;
    if (typeof to === 'string') {
      if (to.length === 0) throw new InvalidArgumentError('to', 'a Pid or a non-empty registered name', to);
      p = this.registry.lookup(to);
    } else if (isPid(to)) {
      p = this.resolve(to);
    } else {
      throw new InvalidArgumentError('to', 'a Pid or a registered name', to);
    }
    if (p !== undefined) return this.#enqueue(p, message, from);
    this.#dropped(from, to, message, 'noproc');
    return Delivery.NoProc;
  }

  /** @internal Delivers a message wrapped with an id and an optional listener (supervised send). */
  deliverEnvelope(from: Proc | undefined, to: Proc, message: unknown, id: string, listener?: EnvelopeListener): Delivery {
    const env = new Envelope(message, id, listener);
    this.#envelopes++; // counted before it is in a mailbox: user code run by the delivery may already settle it
    const result = this.#enqueue(to, env, from); // a dead process drops it there, as enqueueTo would
    if (result !== Delivery.Enqueued && !env.settled) this.#envelopes--;
    return result;
  }

  /** @internal A fresh message id, `<node>-<creation>-<seq>` (a counter, not a UUID). */
  nextMessageId(): string {
    return this.#messageIds.next();
  }

  /**
   * @internal True when `p` is alive and its mailbox has room for `n` more messages without
   * refusing or evicting any (for atomic all-or-nothing delivery).
   */
  canAccept(p: Proc, n: number): boolean {
    if ((p.flags & F_DEAD) !== 0) return false;
    return (p.flags & F_BOUNDED) === 0 || p.size + n <= p.x!.capacity;
  }

  /** @internal Takes back a queued, not yet started envelope (of `listener`, if given); false when it is no longer queued. */
  withdrawEnvelope(to: Pid, id: string, listener?: EnvelopeListener): boolean {
    const p = this.resolve(to);
    if (p === undefined || this.#envelopes === 0) return false;
    const removed: Envelope[] = [];
    removeWhere(p, (m) => {
      // by its sender's listener when given: another send may use the same id
      if (Envelope.is(m) && m.id === id && (listener === undefined || m.listener === listener)) {
        removed.push(m);
        return true;
      }
      return false;
    });
    for (const env of removed) this.#settleEnvelope(env, 'withdrawn');
    return removed.length > 0;
  }

  #enqueue(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    if ((p.flags & (F_BOUNDED | F_DEAD)) !== 0) return this.#enqueueBounded(p, message, from);
    // user code (the long mailbox's event handlers, the logger) runs once the mailbox and the run queue are consistent
    if (this.#push(p, message) === this.#longAbove) this.#mailboxLong(p);
    return Delivery.Enqueued;
  }

  /** Puts a message in a live process's mailbox and schedules the process; returns the new length. */
  #push(p: Proc, message: unknown): number {
    const buf = p.size < p.buf.length ? p.buf : grow(p);
    buf[(p.head + p.size) & (buf.length - 1)] = message;
    const size = ++p.size;
    if ((p.flags & (F_SCHEDULED | F_RUNNING | F_BUSY | F_DEAD)) === 0) this.#wake(p);
    return size;
  }

  /** Puts a process that is not scheduled, running or busy on the run queue, and the loop to work. */
  #wake(p: Proc): void {
    p.flags |= F_SCHEDULED;
    this.#rqPush(p);
    if (!this.#running && !this.#pending) {
      this.#pending = true;
      void RESOLVED.then(this.#drain);
    }
  }

  /** The slow path: a dead target, or a bounded mailbox. User code (events, listeners) runs only after the mailbox is consistent. */
  #enqueueBounded(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    if ((p.flags & F_DEAD) !== 0) {
      this.#dropped(from, p.self, message, 'noproc');
      return Delivery.NoProc;
    }
    let evicted: unknown = NOTHING;
    if (p.size >= p.x!.capacity && !isSystemMessage(message)) {
      if (p.x!.overflow !== 'drop_oldest') {
        this.#dropped(from, p.self, message, 'mailbox_full');
        return Delivery.MailboxFull;
      }
      evicted = evictOldest(p);
    }
    if (this.#push(p, message) === this.#longAbove) this.#mailboxLong(p);
    if (evicted !== NOTHING) {
      this.#dropped(undefined, p.self, evicted, 'mailbox_full', 'drop_oldest');
      if (Envelope.is(evicted)) this.#settleEnvelope(evicted, 'dropped');
      else if (isInstance(evicted, ExitWatcher)) evicted.dropped?.(); // a pending call fails at once
    }
    return Delivery.Enqueued;
  }

  #dropped(from: Proc | undefined, to: Target, message: unknown, reason: string, overflow?: string): void {
    const m = Envelope.is(message) ? message.message : message;
    this.telemetry.execute('keel.message.dropped', { count: 1 }, {
      from: from?.self ?? 'node',
      to,
      message: m,
      reason,
      ...(overflow === undefined ? {} : { overflow }),
    });
  }

  #settleEnvelope(env: Envelope, outcome: 'handled' | 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void {
    if (env.settled) return;
    this.#envelopes--;
    try {
      env.settle(outcome, error);
    } catch (e) {
      if (e !== EXIT_SENTINEL) this.#log('error', 'an envelope listener threw', e);
    }
  }

  // ---- scheduler ------------------------------------------------------------------------------

  #rqPush(p: Proc): void {
    if (this.#rqSize > this.#rqMask) this.#rqGrow();
    this.#rq[(this.#rqHead + this.#rqSize) & this.#rqMask] = p;
    this.#rqSize++;
  }

  /** Doubles the run queue (out of line: the push stays small enough to inline into every send). */
  #rqGrow(): void {
    const n = this.#rqMask + 1;
    const nb = new Array<Proc | null>(n * 2).fill(null);
    for (let i = 0; i < this.#rqSize; i++) nb[i] = this.#rq[(this.#rqHead + i) & this.#rqMask]!;
    this.#rq = nb;
    this.#rqMask = n * 2 - 1;
    this.#rqHead = 0;
  }

  #schedule(p: Proc): void {
    if ((p.flags & (F_SCHEDULED | F_RUNNING | F_BUSY | F_DEAD)) === 0) this.#wake(p);
  }

  #drain = (): void => {
    try {
      this.#runLoop();
    } catch (e) {
      // a bug, not user code (every user callback is guarded): keep the node alive and say so
      this.#running = false;
      this.#log('error', `the scheduler loop of node ${this.name} threw`, e);
      if (this.#rqSize > 0 && !this.#pending) {
        this.#pending = true;
        setImmediate(this.#drain);
      }
    }
  };

  #runLoop(): void {
    this.#pending = false;
    this.#running = true;
    const budget = this.#budget;
    const timed = this.#longScheduleWatched();
    // A slice spans every run of the loop until the event loop has had a turn: runs started as
    // microtasks (an async handler settling, a send from outside) share the slice of the run before.
    if (!this.#sliceOpen) {
      this.#sliceOpen = true;
      if (this.#deterministic) {
        this.#countdown = this.#interval = DETERMINISTIC_SLICE;
      } else {
        this.#sliceStart = this.#checkedAt = monotonicClock();
        this.#countdown = this.#interval = 1; // the first message of a slice measures the pace
      }
      setImmediate(this.#closeSlice);
    }
    // the process of the last turn, to which an interval that ended with it is attributed
    let last: Proc | undefined;
    while (this.#rqSize > 0) {
      if (this.#countdown <= 0 && this.#sliceSpent(last)) {
        this.#yield();
        return;
      }
      const p = this.#rq[this.#rqHead]!;
      this.#rq[this.#rqHead] = null;
      this.#rqHead = (this.#rqHead + 1) & this.#rqMask;
      this.#rqSize--;
      p.flags &= ~F_SCHEDULED;
      // a new process that has only its init to run (no message yet) takes a turn like any other
      if ((p.flags & (F_DEAD | F_SLOW | F_FRESH)) !== 0 && ((p.flags & (F_DEAD | F_SLOW)) !== 0 || p.size > 0)) {
        if ((p.flags & F_DEAD) !== 0) continue;
        if (this.#measuredTurn(p, last, timed)) {
          this.#yield();
          return;
        }
      } else {
        let n = 1;
        try {
          n = timed ? this.#timedTurn(p, budget) : this.#turn(p, budget);
        } catch (e) {
          this.#turnFailed(p, e);
        }
        this.#countdown -= n;
      }
      last = p;
    }
    // an interval that ended with the last turn (a measured process's, say) is read now; when the
    // slice is spent, a run started in it before the event loop's turn (a microtask) yields at once
    if (this.#countdown <= 0 && this.#sliceSpent(last)) this.#countdown = this.#interval = 0;
    this.#running = false;
    // a burst (100,000 spawns, say) grew the run queue past the size of steady work (a fan-out to
    // 10,000): once it is empty, it goes back to its initial size
    if (this.#rqMask >= RQ_SHRINK_ABOVE) {
      this.#rq = new Array<Proc | null>(RQ_INITIAL).fill(null);
      this.#rqMask = RQ_INITIAL - 1;
      this.#rqHead = 0;
    }
    this.#checkIdle();
  }

  /**
   * @internal The clock's time, read at most once per scheduler slice (≤ `sliceMs` stale inside a
   * run of the loop): for timestamps that need no millisecond precision, such as a monitor's age.
   */
  coarseNow(): number {
    if (!this.#sliceOpen || this.#deterministic) return this.clock.now();
    if (this.#coarseAt !== this.#sliceStart) {
      this.#coarseAt = this.#sliceStart;
      this.#coarseNow = this.clock.now();
    }
    return this.#coarseNow;
  }

  /** Whether anyone listens to `keel.process.long_schedule` (cached until the attachments change). */
  #longScheduleWatched(): boolean {
    const version = this.telemetry.version;
    if (version !== this.#attachVersion) {
      this.#attachVersion = version;
      this.#longScheduleAttached = this.telemetry.isAttached('keel.process.long_schedule');
    }
    return this.#longScheduleAttached || this.#longScheduleChannel.hasSubscribers;
  }

  /** Yields to the event loop so timers and I/O run, and resumes after them. */
  #yield(): void {
    this.#running = false;
    this.#pending = true;
    setImmediate(this.#drain);
  }

  /** A turn measured for `keel.process.long_schedule` (while someone listens to it). */
  #timedTurn(p: Proc, budget: number): number {
    const started = monotonicClock();
    const before = p.handled;
    const n = this.#turn(p, budget);
    const took = monotonicClock() - started;
    if (took >= this.#longScheduleMs) {
      this.telemetry.execute('keel.process.long_schedule', { durationMs: took, messages: p.handled - before }, { pid: p.self });
    }
    return n;
  }

  /**
   * The turn of a process that is measured on its own (one seen slow, or a new one): the interval of
   * the turns before it ends first, then it handles one message, and its own interval ends at the
   * loop's next step. True when the slice was spent before its turn (it goes back to the head of
   * the run queue, and the loop yields).
   */
  #measuredTurn(p: Proc, last: Proc | undefined, timed: boolean): boolean {
    // (an interval with no message since the last reading has nothing to end)
    if (this.#countdown !== this.#interval && this.#sliceSpent(last)) {
      this.#rqHead = (this.#rqHead - 1) & this.#rqMask;
      this.#rq[this.#rqHead] = p;
      this.#rqSize++;
      p.flags |= F_SCHEDULED;
      return true;
    }
    let n = 1;
    try {
      n = timed ? this.#timedTurn(p, 1) : this.#turn(p, 1);
    } catch (e) {
      this.#turnFailed(p, e);
    }
    this.#interval = n;
    this.#countdown = 0;
    return false;
  }

  /**
   * Reads the clock at the end of a measuring interval: true when the slice is spent. Otherwise the
   * next interval is sized from the pace of this one, so that it ends well within the slice: fast
   * handlers are measured every {@link MAX_INTERVAL} messages. An interval that took long marks its
   * last process slow: a slow process (and a new one, until its first message) runs one message a
   * turn, measured on its own, until one of its turns is quick. So a slow handler among fast ones
   * blocks the loop for at most the slice plus that handler.
   */
  #sliceSpent(p: Proc | undefined): boolean {
    if (this.#deterministic) {
      this.#countdown = this.#interval = DETERMINISTIC_SLICE;
      return true;
    }
    const now = monotonicClock();
    const took = now - this.#checkedAt;
    const n = this.#interval - this.#countdown;
    this.#checkedAt = now;
    if (p !== undefined) {
      // an interval that took long marks its last process slow, to be measured on its own from then
      // on; a measured process whose own turn was quick is slow no more
      if (took >= this.#slowMs) p.flags |= F_SLOW;
      else p.flags &= ~F_SLOW;
      // a new process stays fresh until a message of its own was measured (its init says little)
      if (p.handled > 0) p.flags &= ~F_FRESH;
    }
    const left = this.#sliceMs - (now - this.#sliceStart);
    if (left <= 0) {
      this.#countdown = this.#interval = 1;
      return true;
    }
    const per = n > 0 ? took / n : took;
    const k = per > 0 ? Math.floor(left / per / 2) : MAX_INTERVAL;
    this.#countdown = this.#interval = k < 1 ? 1 : k > MAX_INTERVAL ? MAX_INTERVAL : k;
    return false;
  }

  #closeSlice = (): void => {
    this.#sliceOpen = false;
  };

  /**
   * A turn threw outside every guard of user code: a defect of the runtime, or a value whose mere
   * inspection throws. The process must not stay half-run (running, handling nothing, unnoticed by
   * its supervisor): it exits with the error, and the loop goes on.
   */
  #turnFailed(p: Proc, e: unknown): void {
    p.flags &= ~F_RUNNING;
    if (e === EXIT_SENTINEL) return;
    this.#log('error', `the turn of ${String(p.self)} threw outside its handler; the process exits`, e);
    if ((p.flags & F_DEAD) === 0) {
      this.#settleInflight(p, 'crashed', e);
      this.die(p, toError(e));
    }
  }

  /**
   * Runs up to `budget` messages of `p`; returns how many it ran (an init alone counts as one). The
   * loop is kept as small as it can be, every rare case a call: TurboFan then compiles it tight.
   */
  #turn(p: Proc, budget: number): number {
    if ((p.flags & F_INIT) !== 0) {
      this.#runInit(p);
      if ((p.flags & (F_DEAD | F_BUSY | F_INIT)) !== 0) return 1;
    }
    const handler = p.handler as Handler<unknown>;
    p.flags |= F_RUNNING;
    let k = 0;
    while (p.size > 0 && k < budget) {
      const buf = p.buf;
      const i = p.head;
      let m = buf[i];
      buf[i] = undefined;
      p.head = (i + 1) & (buf.length - 1);
      p.size--;
      k++;
      p.handled++;
      // a brand check, never `instanceof`: a message may be a revoked proxy, whose traps throw
      const env = this.#envelopes > 0 && Envelope.is(m) ? m : undefined;
      if (env !== undefined) m = this.#opened(p, env);
      let r: unknown;
      try {
        r = handler(m);
      } catch (e) {
        this.#threw(p, env, e);
        return k;
      }
      if (r !== undefined && this.#returned(p, env, r)) return k;
      if (env !== undefined) this.#settleInflight(p, 'handled');
      if ((p.flags & F_DEAD) !== 0) break;
    }
    this.#afterTurn(p);
    return k;
  }

  /** The end of a turn: the process goes back on the run queue if it has more to do. */
  #afterTurn(p: Proc): void {
    p.flags &= ~F_RUNNING;
    if ((p.flags & (F_DEAD | F_BUSY | F_LONG)) === 0) {
      if (p.size > 0) {
        p.flags |= F_SCHEDULED;
        this.#rqPush(p);
      } else if (p.buf.length > SHRINK_ABOVE) {
        shrink(p);
      }
    } else {
      this.#afterUnusualTurn(p);
    }
  }

  /** A supervised message is being handled: its id is `ctx.messageId` until it is settled. */
  #opened(p: Proc, env: Envelope): unknown {
    p.ext().inflight = env;
    return env.message;
  }

  /** The handler threw: the process exits with the error (after `ctx.exit` it is dead already). */
  #threw(p: Proc, env: Envelope | undefined, e: unknown): void {
    p.flags &= ~F_RUNNING;
    // after ctx.exit the death cleanup has already settled the message; a throw settles it here
    if (e !== EXIT_SENTINEL && (p.flags & F_DEAD) === 0) {
      if (env !== undefined) this.#settleInflight(p, 'crashed', e);
      this.die(p, toError(e));
    }
  }

  /**
   * The handler returned something: a thenable makes the process busy until it settles (true: the
   * turn ends). Reading its `then` may throw (a getter, a revoked proxy): that is the handler's failure.
   */
  #returned(p: Proc, env: Envelope | undefined, r: unknown): boolean {
    let then: ThenFn | undefined;
    try {
      then = thenOf(r);
    } catch (e) {
      this.#threw(p, env, e);
      return true;
    }
    if (then === undefined) return false;
    p.flags &= ~F_RUNNING;
    if ((p.flags & F_DEAD) !== 0) {
      swallow(r, then); // it died during the synchronous part: a zombie's result is discarded
      return true;
    }
    p.flags |= F_BUSY;
    this.#busy++;
    this.#follow(r, then, p, env);
    return true;
  }

  /** The end of a turn that is not the common one: the process died, went busy, or its mailbox is long. */
  #afterUnusualTurn(p: Proc): void {
    if ((p.flags & F_LONG) !== 0 && p.size <= this.#longBelow) this.#mailboxShort(p);
    if ((p.flags & (F_DEAD | F_BUSY)) !== 0) return;
    if (p.size > 0) {
      p.flags |= F_SCHEDULED;
      this.#rqPush(p);
    } else if (p.buf.length > SHRINK_ABOVE) {
      shrink(p);
    }
  }

  /** Follows a busy process's promise; a thenable that throws from `then` counts as a rejection. */
  #follow(r: unknown, then: ThenFn, p: Proc, env: Envelope | undefined): void {
    try {
      then.call(
        r,
        () => this.#asyncDone(p, env),
        (e: unknown) => this.#asyncFailed(p, env, e),
      );
    } catch (e) {
      this.#asyncFailed(p, env, e);
    }
  }

  #runInit(p: Proc): void {
    const init = p.handler as Init<unknown>;
    p.handler = null;
    p.flags |= F_RUNNING;
    let r: unknown;
    let then: ThenFn | undefined;
    try {
      r = init(p);
      if (typeof r !== 'function') then = thenOf(r);
    } catch (e) {
      p.flags &= ~F_RUNNING;
      if (e !== EXIT_SENTINEL && (p.flags & F_DEAD) === 0) this.die(p, toError(e));
      return;
    }
    p.flags &= ~F_RUNNING;
    if ((p.flags & F_DEAD) !== 0) {
      if (then !== undefined) swallow(r, then);
      return;
    }
    if (typeof r === 'function') {
      p.handler = r as Handler<unknown>;
      p.flags &= ~F_INIT;
    } else if (then !== undefined) {
      p.flags |= F_BUSY;
      this.#busy++;
      try {
        then.call(
          r,
          (h) => this.#initDone(p, h),
          (e: unknown) => this.#asyncFailed(p, undefined, e),
        );
      } catch (e) {
        this.#asyncFailed(p, undefined, e);
      }
    } else {
      this.die(p, new HandlerReturnedError(String(p.self), r));
    }
  }

  #clearBusy(p: Proc): void {
    if ((p.flags & F_BUSY) !== 0) {
      p.flags &= ~F_BUSY;
      this.#busy--;
    }
  }

  #initDone(p: Proc, h: unknown): void {
    this.#clearBusy(p);
    if ((p.flags & F_DEAD) !== 0) {
      this.#checkIdle();
      return;
    }
    if (typeof h !== 'function') {
      this.die(p, new HandlerReturnedError(String(p.self), h));
      return;
    }
    p.handler = h as Handler<unknown>;
    p.flags &= ~F_INIT;
    this.#afterAsync(p);
  }

  #asyncDone(p: Proc, env: Envelope | undefined): void {
    this.#clearBusy(p);
    if ((p.flags & F_DEAD) !== 0) {
      this.#checkIdle(); // a zombie's result is discarded; its message was settled at its death
      return;
    }
    if (env !== undefined) this.#settleInflight(p, 'handled');
    this.#afterAsync(p);
  }

  #asyncFailed(p: Proc, env: Envelope | undefined, e: unknown): void {
    this.#clearBusy(p);
    if ((p.flags & F_DEAD) !== 0 || e === EXIT_SENTINEL) {
      this.#checkIdle(); // a zombie's late rejection is swallowed
      return;
    }
    if (env !== undefined) this.#settleInflight(p, 'crashed', e);
    this.die(p, toError(e));
  }

  #afterAsync(p: Proc): void {
    if ((p.flags & F_LONG) !== 0 && p.size <= this.#longBelow) this.#mailboxShort(p);
    if (p.size > 0) {
      this.#schedule(p);
      return;
    }
    if (p.buf.length > SHRINK_ABOVE) shrink(p);
    this.#checkIdle();
  }

  /** Settles the envelope a process is handling, at most once. */
  #settleInflight(p: Proc, outcome: 'handled' | 'crashed', error?: unknown): void {
    const x = p.x;
    const env = x?.inflight;
    if (env === undefined) return;
    x!.inflight = undefined;
    this.#settleEnvelope(env, outcome, error);
  }

  /** A mailbox reached `longMailbox.above`: one event and one warning per crossing. */
  #mailboxLong(p: Proc): void {
    if ((p.flags & (F_LONG | F_DEAD)) !== 0) return;
    p.flags |= F_LONG;
    this.#longMailboxes++;
    const name = p.x?.name;
    this.telemetry.execute('keel.process.long_mailbox', { length: p.size }, { pid: p.self, name, above: this.#longAbove, below: this.#longBelow });
    this.#log(
      'warn',
      `process ${String(p.self)}${name === undefined ? '' : ` (${name})`} has ${p.size} messages queued: it receives faster than it handles them; ` +
        'bound its mailbox (spawn options mailbox: { capacity, overflow }) or spread the work',
    );
  }

  /** A long mailbox fell back to `longMailbox.below`. */
  #mailboxShort(p: Proc): void {
    p.flags &= ~F_LONG;
    this.#longMailboxes--;
    this.telemetry.execute('keel.process.long_mailbox_cleared', { length: p.size }, { pid: p.self, name: p.x?.name, above: this.#longAbove, below: this.#longBelow });
  }

  // ---- exits, links, monitors -----------------------------------------------------------------

  /** @internal Kills `p` with `reason` now: cleanup, Downs, exit signals to links, death hooks. */
  die(p: Proc, reason: ExitReason, own = false): void {
    if ((p.flags & F_DEAD) !== 0) return;
    // the process ended itself (ctx.exit), from its handler's frame or its async continuation
    const wasRunning = own || (p.flags & F_RUNNING) !== 0;
    if ((p.flags & F_LONG) !== 0) this.#longMailboxes--; // its death event reports what was queued
    p.flags = (p.flags | F_DEAD) & ~(F_SCHEDULED | F_LONG);
    this.#clearBusy(p);
    this.#procs.delete(p.self.id);
    PidImpl.setProc(p.self, undefined);
    // 1. the runtime's own bookkeeping, with no user code in between
    const left = p.size; // what the process never handled is reported below, in one event
    let queued: Envelope[] | undefined;
    if (this.#envelopes > 0 && p.size > 0) {
      for (let i = 0; i < p.size; i++) {
        const m = p.buf[(p.head + i) & (p.buf.length - 1)];
        if (Envelope.is(m)) (queued ??= []).push(m);
      }
    }
    p.buf = EMPTY;
    p.head = 0;
    p.size = 0;
    p.handler = null;
    let watched = false;
    // keep the reason for a ctx.signal first read later; the two common clean reasons need no extras
    const x = reason === 'normal' ? p.x : reason === 'shutdown' && p.x === undefined ? ((p.flags |= F_SHUTDOWN), undefined) : p.ext();
    let inflight: Envelope | undefined;
    let hooks: Set<(reason: ExitReason) => void> | undefined;
    let watchers: ExitWatcher[] | undefined;
    if (x !== undefined) {
      x.reason = reason;
      inflight = x.inflight;
      x.inflight = undefined;
      hooks = x.exitHooks;
      x.exitHooks = undefined;
      // detach the watcher list into an array now: user code run below may unwatch any of them
      if (x.watchers !== undefined) {
        watchers = [];
        for (let w: ExitWatcher | undefined = x.watchers; w !== undefined; ) {
          const next: ExitWatcher | undefined = w.watchNext;
          w.watchPrev = w.watchNext = undefined;
          watchers.push(w);
          w = next;
        }
        x.watchers = undefined;
      }
      if (x.name !== undefined) {
        this.registry.release(p);
        x.name = undefined;
      }
      if (x.groups !== undefined) {
        this.groups.release(p, x.groups);
        x.groups = undefined;
      }
      if (x.timers !== undefined) {
        for (const t of x.timers) this.#timers.cancel(t);
        x.timers = undefined;
      }
      if (x.monitors !== undefined) {
        for (const m of x.monitors.values()) m.target.x?.monitoredBy?.delete(m.ref);
        x.monitors = undefined;
      }
      if (x.monitoredBy !== undefined) {
        for (const m of x.monitoredBy.values()) {
          watched = true;
          m.owner.x?.monitors?.delete(m.ref);
          this.#enqueue(m.owner, new DownMessage(m.ref, p.self, reason, m.name), p);
        }
        x.monitoredBy = undefined;
      }
      if (x.links !== undefined) {
        for (const q of x.links) {
          watched = true;
          q.x?.links?.delete(p);
          this.#signals.push(q, p.self, reason);
        }
        x.links = undefined;
      }
    }
    // 2. then what user code hears of it: envelope senders, the abort signal, death hooks, telemetry
    if (inflight !== undefined) {
      // exiting from its own handler cleanly counts as having handled the message
      if (wasRunning && isCleanExit(reason)) this.#settleEnvelope(inflight, 'handled');
      else this.#settleEnvelope(inflight, 'crashed', reason);
    }
    if (queued !== undefined) for (const env of queued) this.#settleEnvelope(env, 'down', reason);
    if (left > 0) {
      // one event per death, however long the mailbox was: a death costs no work per message
      this.telemetry.execute('keel.message.dropped', { count: left }, { from: 'node', to: p.self, reason: 'receiver_exited', exitReason: reason });
    }
    if (x?.abort !== undefined && !x.abort.signal.aborted) x.abort.abort(reason);
    if (watchers !== undefined) {
      for (const w of watchers) {
        if (w.watched !== p) continue; // unwatched meanwhile (by an abort listener, say)
        w.watched = undefined;
        try {
          w.onExit(reason);
        } catch (e) {
          if (e !== EXIT_SENTINEL) this.#log('error', `an exit watcher of ${String(p.self)} threw`, e);
        }
      }
    }
    if (hooks !== undefined) {
      for (const hook of hooks) {
        try {
          hook(reason);
        } catch (e) {
          if (e !== EXIT_SENTINEL) this.#log('error', `a death hook of ${String(p.self)} threw`, e);
        }
      }
    }
    if (!isCleanExit(reason)) {
      this.telemetry.execute('keel.process.exited', {}, { pid: p.self, reason, watched });
      if (!watched) this.#log('error', `process ${String(p.self)} exited: ${formatReason(reason)}`, reason);
    }
    this.#flushSignals();
    this.#checkIdle();
  }

  /** Logs through the node's logger; a logger that throws is never allowed to break the runtime. */
  #log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void {
    try {
      this.logger[level](message, detail);
    } catch {
      // nothing sensible is left to report it to
    }
  }

  #flushSignals(): void {
    if (this.#flushing) return;
    this.#flushing = true;
    const q = this.#signals;
    try {
      for (let i = 0; i < q.length; i += 3) {
        try {
          this.#deliverSignal(q[i] as Proc, q[i + 1] as PidImpl | 'node', q[i + 2] as ExitReason | 'kill');
        } catch (e) {
          if (e !== EXIT_SENTINEL) this.#log('error', 'delivering an exit signal threw', e);
        }
      }
    } finally {
      q.length = 0;
      this.#flushing = false;
    }
  }

  #deliverSignal(q: Proc, from: PidImpl | 'node', reason: ExitReason | 'kill'): void {
    if ((q.flags & F_DEAD) !== 0) return;
    if (reason === 'kill') {
      this.die(q, 'killed');
      return;
    }
    if ((q.flags & F_TRAP) !== 0) {
      this.#enqueue(q, new ExitMessage(from, reason), undefined);
      return;
    }
    if (reason === 'normal') {
      if (from === q.self) this.die(q, 'normal');
      return;
    }
    this.die(q, reason);
  }

  /** @internal An exit signal to `target` from a process or the node, delivered synchronously. */
  exitSignal(target: Pid, from: Proc | 'node', reason: ExitReason | 'kill'): void {
    const q = this.resolve(target);
    if (q === undefined) return;
    this.#signals.push(q, from === 'node' ? 'node' : from.self, reason);
    this.#flushSignals();
  }

  exit(pid: Pid, reason: ExitReason | 'kill'): void {
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'a Pid', pid);
    if (reason !== 'kill' && !isExitReason(reason)) {
      throw new InvalidArgumentError('reason', "an exit reason ('normal', 'shutdown', { shutdown }, an Error, ...) or 'kill'", reason);
    }
    this.exitSignal(pid, 'node', reason);
  }

  /** @internal After a context operation that may have killed its own process: stop the running handler. */
  throwIfExitedInHandler(p: Proc): void {
    // F_RUNNING is set exactly while the process's own handler (or init) is on the stack
    if ((p.flags & (F_DEAD | F_RUNNING)) === (F_DEAD | F_RUNNING)) throw EXIT_SENTINEL;
  }

  #addLink(a: Proc, b: Proc): void {
    const xa = a.ext();
    const xb = b.ext();
    (xa.links ??= new Set()).add(b);
    (xb.links ??= new Set()).add(a);
  }

  /** @internal */
  link(p: Proc, pid: Pid): void {
    const q = this.resolve(pid);
    if (q === p) return;
    if (q === undefined) {
      this.#signals.push(p, PidImpl.is(pid) ? pid : new PidImpl(pid.node, pid.creation, pid.id, undefined), 'noproc');
      this.#flushSignals();
      this.throwIfExitedInHandler(p);
      return;
    }
    this.#addLink(p, q);
  }

  /** @internal */
  unlink(p: Proc, pid: Pid): void {
    const q = this.resolve(pid);
    if (q === undefined) return;
    p.x?.links?.delete(q);
    q.x?.links?.delete(p);
  }

  /** @internal */
  newRef(): RefImpl {
    return new RefImpl(this.name, ++this.#nextRef);
  }

  /** @internal */
  monitor(p: Proc, target: Target): RefImpl {
    const ref = this.newRef();
    let q: Proc | undefined;
    let name: string | undefined;
    if (typeof target === 'string') {
      if (target.length === 0) throw new InvalidArgumentError('target', 'a Pid or a non-empty registered name', target);
      name = target;
      q = this.registry.lookup(target);
    } else if (isPid(target)) {
      q = this.resolve(target);
    } else {
      throw new InvalidArgumentError('target', 'a Pid or a registered name', target);
    }
    if (q === undefined) {
      const pid = typeof target === 'string' ? this.#placeholder : target;
      this.#enqueue(p, new DownMessage(ref, pid, 'noproc', name), undefined);
      return ref;
    }
    const m = new Monitor(ref, p, q, name);
    (p.ext().monitors ??= new Map()).set(ref, m);
    (q.ext().monitoredBy ??= new Map()).set(ref, m);
    return ref;
  }

  /** @internal */
  demonitor(p: Proc, ref: RefImpl, flush: boolean): boolean {
    const m = p.x?.monitors?.get(ref);
    if (m !== undefined) {
      p.x!.monitors!.delete(ref);
      m.target.x?.monitoredBy?.delete(ref);
    }
    if (flush && p.size > 0) removeWhere(p, (msg) => isDown(msg) && msg.ref === ref);
    return m !== undefined;
  }

  /**
   * @internal A death hook: `fn` runs synchronously during the death cleanup of `pid`. Returns a
   * function that removes the hook, or undefined (and never calls `fn`) when `pid` is not alive.
   */
  onExit(pid: Pid, fn: (reason: ExitReason) => void): (() => void) | undefined {
    const p = this.resolve(pid);
    return p === undefined ? undefined : this.onProcExit(p, fn);
  }

  /** @internal Emits `keel.process.zombie_call` for a context used after its process exited. */
  zombieCall(p: Proc, operation: string): void {
    this.telemetry.execute('keel.process.zombie_call', {}, { pid: p.self, operation });
  }

  // ---- timers ---------------------------------------------------------------------------------

  /** @internal */
  sendAfter(p: Proc, to: Target, message: unknown, ms: number, unref = false): TimerRef {
    validateDelay(ms);
    if (typeof to === 'string' ? to.length === 0 : !isPid(to)) {
      throw new InvalidArgumentError('to', 'a Pid or a non-empty registered name', to);
    }
    if ((p.flags & F_DEAD) !== 0) {
      this.zombieCall(p, 'sendAfter');
      return new TimerRefImpl(new TimerEntry(0, -1, noop, true)) as unknown as TimerRef; // inert: never scheduled
    }
    const x = p.ext();
    const timers = (x.timers ??= new Set());
    const entry = this.#timers.schedule(
      ms,
      () => {
        timers.delete(entry);
        this.deliver(p, to, message);
      },
      unref,
    );
    entry.owner = p;
    timers.add(entry);
    return new TimerRefImpl(entry) as unknown as TimerRef;
  }

  /** @internal */
  cancelTimer(t: TimerRefImpl): boolean {
    const owner = t.entry.owner as Proc | undefined;
    if (owner === undefined || owner.rt !== this || !this.#timers.cancel(t.entry)) return false;
    (t.entry.owner as Proc | undefined)?.x?.timers?.delete(t.entry);
    return true;
  }

  /**
   * @internal A node timer for the layers above (services, calls, supervisors): on the node's
   * clock, coalesced into the node's one host timer. `unref` keeps it from holding the OS process open.
   */
  setTimer(ms: number, fn: () => void, unref = false): { cancel(): boolean } {
    validateDelay(ms);
    const entry = this.#timers.schedule(ms, fn, unref);
    return { cancel: () => this.#timers.cancel(entry) };
  }

  // ---- idle and shutdown ----------------------------------------------------------------------

  /** @internal Counts a piece of service I/O as in flight until it settles (`idle()` waits for it). */
  trackIo<T>(work: Promise<T>): Promise<T> {
    this.#io++;
    return work.finally(() => {
      this.#io--;
      this.#checkIdle();
    });
  }

  #quiet(until: Quiet): boolean {
    if (this.#rqSize > 0 || this.#running || this.#pending) return false;
    return until === Quiet.Runnable || (this.#io === 0 && (until === Quiet.Io || this.#busy === 0));
  }

  #checkIdle(): void {
    if (this.#waiters.size === 0 || this.#idleCheck || !this.#quiet(Quiet.Runnable)) return;
    this.#idleCheck = true;
    setImmediate(() => {
      this.#idleCheck = false;
      for (const w of this.#waiters) {
        if (this.#quiet(w.until)) {
          this.#waiters.delete(w);
          w.resolve();
        }
      }
    });
  }

  #wait(until: Quiet): { promise: Promise<void>; cancel(): void } {
    let waiter!: IdleWaiter;
    const promise = new Promise<void>((resolve) => {
      waiter = { until, resolve };
    });
    this.#waiters.add(waiter);
    this.#checkIdle();
    return { promise, cancel: () => this.#waiters.delete(waiter) };
  }

  idle(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs;
    if (timeoutMs !== undefined) validateDelay(timeoutMs, 'timeoutMs');
    const w = this.#wait(Quiet.All);
    if (timeoutMs === undefined) return w.promise;
    return new Promise<void>((resolve, reject) => {
      // a failure guard in real time: under a TestClock the node's clock only moves when told to
      const guard = setTimeout(() => {
        w.cancel();
        const busy = this.#procs.values().filter((p) => (p.flags & (F_BUSY | F_SCHEDULED | F_RUNNING)) !== 0);
        const detail = this.#io > 0 ? `${this.#io} service I/O operation(s) in flight` : 'the run queue did not empty';
        reject(new IdleTimeoutError(this.name, timeoutMs, busy.map((p) => String(p.self)), detail));
      }, timeoutMs);
      w.promise.then(() => {
        clearTimeout(guard);
        resolve();
      }, reject);
    });
  }

  /**
   * @internal Resolves when no process is runnable (busy handlers awaiting outside work are not
   * waited for); with `io`, also when no service I/O is in flight.
   */
  settle(options?: { io?: boolean }): Promise<void> {
    return this.#wait(options?.io === true ? Quiet.Io : Quiet.Runnable).promise;
  }

  /** @internal Registers work the layers above must settle when the node stops (pending calls and sends). */
  onShutdown(fn: () => void): () => void {
    this.#shutdownHooks.add(fn);
    return () => {
      this.#shutdownHooks.delete(fn);
    };
  }

  get stopped(): boolean {
    return this.#state === 'stopped';
  }

  /** @internal True from the start of `shutdown()` on. */
  get stopping(): boolean {
    return this.#state !== 'running';
  }

  shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = options.timeoutMs ?? 5000;
    validateDelay(timeoutMs, 'timeoutMs');
    this.#shutdown ??= this.#stop(timeoutMs);
    return this.#shutdown;
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.#state = 'stopping';
    const started = monotonicClock();
    let timedOut = false;
    let onTimeout!: () => void;
    const timeout = new Promise<void>((resolve) => {
      onTimeout = resolve;
    });
    // a real-time guard, like idle()'s: a node under a TestClock must still be able to stop
    const guard = setTimeout(() => {
      timedOut = true;
      onTimeout();
    }, timeoutMs);
    const tops = this.#procs.values().filter((p) => (p.flags & F_TOP) !== 0).reverse();
    const told = new Set<Proc>();
    for (const p of tops) {
      if (timedOut) break;
      if ((p.flags & F_DEAD) !== 0) continue;
      const dead = this.#deathOf(p);
      told.add(p);
      this.exitSignal(p.self, 'node', 'shutdown');
      await Promise.race([dead, timeout]);
    }
    // everything not yet told gets its 'shutdown' too, even after a stubborn process used up the time
    const rest = this.#procs.values().reverse().filter((p) => !told.has(p));
    if (rest.length > 0) {
      const deaths = rest.map((p) => this.#deathOf(p));
      for (const p of rest) this.#signals.push(p, 'node', 'shutdown');
      this.#flushSignals();
      await Promise.race([Promise.all(deaths), timeout, timedOut ? new Promise((r) => setImmediate(r)) : timeout]);
    }
    clearTimeout(guard);
    this.#spawnClosed = true; // from here on nothing spawns, not even a death hook
    let killed = 0;
    for (let left = this.#procs.values(); left.length > 0; left = this.#procs.values()) {
      for (const p of left) {
        if ((p.flags & F_DEAD) !== 0) continue;
        killed++;
        this.die(p, 'killed');
      }
    }
    // the layers above settle what they had pending, the last registered first: a send still
    // waiting can then hand its message to the dead letter queue before that queue closes
    for (const hook of [...this.#shutdownHooks].reverse()) {
      try {
        hook();
      } catch (e) {
        this.#log('error', `a shutdown hook of node ${this.name} threw`, e);
      }
    }
    this.#shutdownHooks.clear();
    this.#state = 'stopped';
    this.#timers.stop();
    this.#detachClock?.();
    creationsInUse.delete(this.creation);
    this.telemetry.execute('keel.node.shutdown', { durationMs: monotonicClock() - started, killed }, { node: this.name });
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
  }

  #deathOf(p: Proc): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.onExit(p.self, () => resolve()) === undefined) resolve();
    });
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /**
   * @internal What a dead process left behind, for `expectNoLeaks`: timers whose owner is dead, names
   * and group memberships of dead processes, and exit watchers that report a leak of their own
   * (a pending call whose caller died). Each line names the process.
   */
  leftovers(): string[] {
    const out: string[] = [];
    for (const t of this.#timers.entries()) {
      const owner = t.owner as Proc | undefined;
      if (owner !== undefined && (owner.flags & F_DEAD) !== 0) out.push(`a timer owned by the dead process ${String(owner.self)}`);
    }
    for (const name of this.registry.names()) {
      const p = this.registry.lookup(name);
      if (p !== undefined && (p.flags & F_DEAD) !== 0) out.push(`the name '${name}' of the dead process ${String(p.self)}`);
    }
    for (const group of this.groups.groups()) {
      for (const pid of this.groups.members(group)) if (!this.isAlive(pid)) out.push(`group '${group}' still lists the dead process ${String(pid)}`);
    }
    for (const p of this.#procs.values()) {
      for (let w = p.x?.watchers; w !== undefined; w = w.watchNext) {
        const leak = w.leak?.();
        if (leak !== undefined) out.push(leak);
      }
    }
    return out;
  }

  /** @internal Sizes of every internal index, for leak tests. */
  internals(): {
    processes: number;
    names: number;
    groups: number;
    timers: number;
    runQueue: number;
    runQueueCapacity: number;
    busy: number;
    envelopes: number;
    longMailboxes: number;
  } {
    return {
      processes: this.#procs.size,
      names: this.registry.size,
      groups: this.groups.size,
      timers: this.#timers.size,
      runQueue: this.#rqSize,
      runQueueCapacity: this.#rqMask + 1,
      busy: this.#busy,
      envelopes: this.#envelopes,
      longMailboxes: this.#longMailboxes,
    };
  }
}

/**
 * Creates a node: one runtime with its own processes, scheduler, names, telemetry and services.
 * The `createNode` exported by `keel` plugs in the real services.
 */
export function createRuntimeNode(options?: NodeOptions, slots?: ServiceSlots): KeelNode {
  return new KeelNode(options, slots);
}

function noop(): void {}

function isSystemMessage(m: unknown): boolean {
  return DownMessage.is(m) || ExitMessage.is(m);
}

/**
 * Takes the oldest message that is not a system message (`Down` and `Exit` are never dropped) out of
 * a mailbox, keeping the order of the rest; NOTHING when there is none. O(1) when the oldest message
 * is a user message; otherwise the system messages queued before it move up one slot each.
 */
function evictOldest(p: Proc): unknown {
  const { buf, head, size } = p;
  const mask = buf.length - 1;
  let i = 0;
  while (i < size && isSystemMessage(buf[(head + i) & mask])) i++;
  if (i === size) return NOTHING;
  const victim = buf[(head + i) & mask];
  for (let j = i; j > 0; j--) buf[(head + j) & mask] = buf[(head + j - 1) & mask];
  buf[head] = undefined;
  p.head = (head + 1) & mask;
  p.size = size - 1;
  return victim;
}

/** Gives a burst-sized mailbox ring back once the mailbox is empty. */
function shrink(p: Proc): void {
  p.buf = EMPTY;
  p.head = 0;
}

type ThenFn = (this: unknown, onFulfilled: (value: unknown) => void, onRejected: (reason: unknown) => void) => unknown;

/** Attaches handlers to a thenable whose result nobody wants, so that its rejection is not unhandled. */
function swallow(r: unknown, then: ThenFn): void {
  try {
    then.call(r, noop, noop);
  } catch {
    // a thenable whose then throws: nothing to follow
  }
}

/**
 * The `then` of a thenable, read once (as a promise resolution does), else undefined. Reading it may
 * throw (a getter, a revoked proxy): the caller counts that as the failure of whoever returned it.
 */
function thenOf(value: unknown): ThenFn | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  const then = (value as { then?: unknown }).then;
  return typeof then === 'function' ? (then as ThenFn) : undefined;
}

function isClock(value: unknown): value is Clock {
  const c = value as Partial<Clock> | null;
  return typeof c === 'object' && c !== null && typeof c.now === 'function' && typeof c.setTimer === 'function' && typeof c.clearTimer === 'function';
}

function isLogger(value: unknown): value is Logger {
  const l = value as Partial<Logger> | null;
  return typeof l === 'object' && l !== null && typeof l.info === 'function' && typeof l.warn === 'function' && typeof l.error === 'function';
}

function validateDelay(ms: unknown, argument = 'ms'): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new InvalidArgumentError(argument, 'a finite number of milliseconds >= 0', ms);
  }
}

function positiveInt(argument: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new InvalidArgumentError(argument, 'a positive integer', value);
  return value as number;
}

function positiveNumber(argument: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(argument, 'a positive number', value);
  return value;
}

/**
 * The node's `random`: the injected generator, each value checked where it is drawn. A value outside
 * [0, 1] (NaN, say) is a typed error there, never a NaN delay that would corrupt a timer heap. (1 is
 * let through: a generator pinned at 1 is how a test asks for the longest jittered delay.)
 */
function checkedRandom(random: () => number): () => number {
  return () => {
    const r = random();
    if (typeof r !== 'number' || !(r >= 0 && r <= 1)) {
      throw new InvalidArgumentError('random()', 'a number in [0, 1] (the node\'s injected random)', r);
    }
    return r;
  };
}

/** The long-mailbox monitor's `[above, below]`; `[Infinity, -1]` when it is off. */
function longMailboxBounds(options: unknown): [number, number] {
  if (options === false) return [Infinity, -1];
  if (options === undefined) return [10_000, 1_000];
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('longMailbox', '{ above?, below? } or false', options);
  checkKeys(options, ['above', 'below'], 'longMailbox');
  const o = options as { above?: unknown; below?: unknown };
  const above = o.above ?? 10_000;
  if (!Number.isSafeInteger(above) || (above as number) < 1) throw new InvalidArgumentError('longMailbox.above', 'a positive integer', o.above);
  const below = o.below ?? Math.min(1_000, Math.floor((above as number) / 10));
  if (!Number.isSafeInteger(below) || (below as number) < 0 || (below as number) >= (above as number)) {
    throw new InvalidArgumentError('longMailbox.below', `an integer >= 0 and below longMailbox.above (${String(above)})`, o.below);
  }
  return [above as number, below as number];
}

function freshCreation(random: (() => number) | undefined): number {
  for (;;) {
    // a small integer: V8 keeps it unboxed in every pid
    const c = random === undefined ? randomInt(1, 2 ** 30) : 1 + Math.floor(random() * (2 ** 30 - 2));
    if (!creationsInUse.has(c)) {
      creationsInUse.add(c);
      return c;
    }
  }
}
