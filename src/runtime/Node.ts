import { InvalidArgumentError, KeelError, NodeStoppedError, ProcessExitedError } from '../errors.js';
import { TelemetryBus } from '../telemetry/Telemetry.js';
import { type Clock, isAttachable, kAttachNode, monotonicClock } from './Clock.js';
import { IdSequence } from './IdSequence.js';
import { Cause, DeathWatch } from './internal/DeathWatch.js';
import type { EnvelopeListener } from './internal/Envelope.js';
import type { HeldEvent } from './internal/Held.js';
import { Lifecycle, validateDelay } from './internal/Lifecycle.js';
import { Delivery, Mailboxes, queuedOf } from './internal/Mailbox.js';
import { NextTurn } from './internal/NextTurn.js';
import { defaultNodeName, freshCreation, nodeSettings, releaseCreation, spawnSettings } from './internal/options.js';
import { EXIT_SENTINEL, type ExitWatcher, F_BOUNDED, F_BUSY, F_DEAD, F_FRESH, F_INIT, F_LONG, F_RUNNING, F_TOP, F_TRAP, type NextTurnWatcher, Proc, TimerRefImpl } from './internal/Proc.js';
import { ProcessTimers } from './internal/ProcessTimers.js';
import { ProcTable } from './internal/ProcTable.js';
import { Scheduler } from './internal/Scheduler.js';
import { TimerEntry, TimerHeap, timerFaultText } from './internal/TimerHeap.js';
import { type ExitReason, isExitReason } from './messages.js';
import { NameTable } from './NameRegistry.js';
import { GroupTable } from './ProcessGroups.js';
import { checkTarget, nameOf, type Pid, liveProc, PidImpl, procOfAny, type RefImpl, RemoteMonitorWatch, setProc, type Target, type TimerRef, toPid } from './Pid.js';
import { type DeadLetterQueue, type MonitorManager, type ObserverHandle, type ObserverOptions, unavailableDeadLetters, unavailableMonitors } from './serviceSlots.js';
import type { RemoteRouter } from './remote.js';
import type { Init, Logger, Node, NodeOptions, ProcessInfo, SpawnOptions } from './types.js';

export { Delivery };


/** @internal The sizes of a node's internal indexes, for leak tests (`expectNoLeaks`, the soak). */
export interface KernelInternals {
  processes: number;
  names: number;
  groups: number;
  timers: number;
  runQueue: number;
  runQueueCapacity: number;
  busy: number;
  envelopes: number;
  longMailboxes: number;
  /** When the node started, on the timers' time (`timerNow`: monotonic on the real clock), so an uptime is `timerNow() - startedAt`. */
  startedAt: number;
  /** Messages handled by processes that have died (the live ones' counts are in `info`). */
  handledByDead: number;
}

/** @internal Factories for the node's service slots; the layers above plug the real services in. */
export interface ServiceSlots {
  monitors?: (node: Node) => MonitorManager;
  deadLetters?: (node: Node) => DeadLetterQueue;
  /** Starts an observer of the node (src/observer); not a service: plugged in whatever `services` says. */
  observer?: (node: Node, options: ObserverOptions) => Promise<ObserverHandle>;
}

/**
 * @internal The runtime behind `createNode`: the public face of a node, and the kernel interface of
 * `src/runtime/kernel.ts` for the layers above. The work is done by the kernel's parts (in
 * `internal/`): the mailboxes, the scheduler, death watch (links, monitors, exit signals, the death
 * sequence), the lifecycle (idle, service I/O, shutdown), the next-turn list and the timer heap.
 */
export class KeelNode implements Node {
  readonly name: string;
  readonly creation: number;
  readonly clock: Clock;
  readonly random: () => number;
  readonly logger: Logger;
  readonly telemetry: TelemetryBus;
  readonly registry: NameTable<Proc>;
  readonly groups: GroupTable<Proc>;
  readonly #procs = new ProcTable();
  readonly #startedAt: number;
  readonly #timers: TimerHeap;
  readonly #procTimers: ProcessTimers;
  readonly #mail: Mailboxes;
  readonly #sched: Scheduler;
  readonly #deaths: DeathWatch;
  readonly #life: Lifecycle;
  readonly #nextTurn: NextTurn;
  /** The flag a new process starts with: F_FRESH, or nothing under a virtual clock (nothing is measured). */
  readonly #fresh: number;
  readonly #detachClock: (() => void) | undefined;
  readonly #messageIds: IdSequence;
  #monitors: MonitorManager = unavailableMonitors.disabled;
  #remote: RemoteRouter | undefined = undefined;
  #deadLetters: DeadLetterQueue = unavailableDeadLetters.disabled;
  readonly #observer: ServiceSlots['observer'];
  #nextId = 0;
  /** Spawn times (the timers' time, coarse: an age is `timerNow() - at`) while an observer records them; undefined otherwise (one check per spawn). */
  #spawnTimes: WeakMap<Proc, number> | undefined = undefined;
  #spawnRecorders = 0;
  /** The highest pid id spawned before spawn times were last switched on, and when that was. */
  #spawnTimesFrom = { id: 0, at: 0 };
  /** Whether anyone listens to `keel.process.spawned`: a spawn builds the event only then. */
  readonly #spawnedProbe: { readonly active: boolean };

  constructor(options: NodeOptions = {}, slots: ServiceSlots = {}) {
    const s = nodeSettings(options);
    this.name = s.name ?? defaultNodeName();
    // under a virtual clock the creation comes from the node's random too: a seeded simulation then
    // repeats its pids' text and its message ids as well
    this.creation = freshCreation(s.deterministic ? s.random : undefined);
    this.clock = s.clock;
    this.random = s.random;
    this.logger = s.logger;
    this.#fresh = s.deterministic ? 0 : F_FRESH;
    this.telemetry = new TelemetryBus({ monotonicClock, report: (message, error) => this.log('warn', message, error) });
    this.#spawnedProbe = this.telemetry.probe('keel.process.spawned');
    this.registry = new NameTable<Proc>((pid) => this.resolve(pid));
    this.groups = new GroupTable<Proc>((pid) => this.resolve(pid));
    this.#timers = new TimerHeap(s.clock, (error, source) => this.log('error', timerFaultText(source, this.name), error));
    this.#procTimers = new ProcessTimers(this, this.#timers);
    this.#startedAt = this.#timers.now(); // uptime counts on the timers' time: a wall clock stepped neither stretches nor cuts it
    this.#messageIds = new IdSequence(`${this.name}-${this.creation}-`);
    this.#nextTurn = new NextTurn((e) => this.log('error', 'a deferred task threw', e));
    // the parts, wired once: each asks the node (its host) only what its own interface declares
    this.#mail = new Mailboxes(this, s.longMailbox);
    this.#sched = new Scheduler(this, this.#mail, s);
    this.#mail.waker = this.#sched;
    this.#deaths = new DeathWatch(this, this.#procs, this.#mail, this.#sched, this.#timers, new PidImpl(this.name, this.creation, 0));
    this.#life = new Lifecycle(this, this.#procs, this.#sched, this.#deaths, s.deterministic ? s.clock : undefined);
    this.#deaths.idle = this.#life;
    this.#sched.idle = this.#life;
    this.#detachClock = isAttachable(s.clock) ? s.clock[kAttachNode](this) : undefined;
    this.#observer = slots.observer;
    if (s.services !== false) {
      if (slots.monitors !== undefined) this.#monitors = slots.monitors(this);
      if (slots.deadLetters !== undefined) this.#deadLetters = slots.deadLetters(this);
    }
  }

  /** @internal True for a node of this copy of the package (a brand check: never runs a proxy's traps). */
  static is(value: unknown): value is KeelNode {
    return typeof value === 'object' && value !== null && #procs in value;
  }

  // a service that never ran (services: false) stays 'disabled' after shutdown; one that ran is 'node_stopped'
  get monitors(): MonitorManager {
    return this.#life.state === 'stopped' && this.#monitors !== unavailableMonitors.disabled ? unavailableMonitors.node_stopped : this.#monitors;
  }

  get deadLetters(): DeadLetterQueue {
    return this.#life.state === 'stopped' && this.#deadLetters !== unavailableDeadLetters.disabled ? unavailableDeadLetters.node_stopped : this.#deadLetters;
  }

  observer(options: ObserverOptions = {}): Promise<ObserverHandle> {
    if (this.#observer === undefined) return Promise.reject(new KeelError('ERR_SERVICE_UNAVAILABLE', '`node.observer` cannot run: this node was made without the observer (use `createNode` from keel)'));
    if (this.#life.state !== 'running') return Promise.reject(new NodeStoppedError(this.name, 'observer'));
    return this.#observer(this, options);
  }

  // ---- processes ------------------------------------------------------------------------------

  spawn<M>(init: Init<M>, options?: SpawnOptions<NoInfer<M>>): Pid<M> {
    return this.spawnProc(init, options, undefined, false);
  }

  /** @internal */
  spawnProc<M>(init: Init<M>, options: SpawnOptions | undefined, parent: Proc | undefined, link: boolean): Pid<M> {
    if (this.#life.spawnClosed) throw new NodeStoppedError(this.name, 'spawn');
    if (typeof init !== 'function') throw new InvalidArgumentError('init', 'a function (ctx) => handler', init);
    const spec = options === undefined ? undefined : this.#spawnSpec(options, parent, link);
    const id = ++this.#nextId;
    const pid = new PidImpl(this.name, this.creation, id);
    const p = new Proc(this, pid, init as Init<unknown>, parent === undefined ? F_INIT | this.#fresh | F_TOP : F_INIT | this.#fresh);
    setProc(pid, p);
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
    if (link && parent !== undefined) this.#deaths.addLink(parent, p);
    if (this.#spawnTimes !== undefined) this.#spawnTimes.set(p, this.#sched.coarseTimerNow());
    this.#sched.wake(p);
    if (this.#spawnedProbe.active) {
      this.telemetry.execute('keel.process.spawned', {}, { pid, parent: parent === undefined ? 'node' : parent.self, name: spec?.name });
    }
    return pid as Pid<M>;
  }

  /**
   * The options of a spawn, read once. Reading them runs user code (a getter) that may end the
   * spawning process: a child spawned then would outlive a parent it never heard of (its link, or
   * the parent's own exit, lost), so the spawn is refused as from a dead process.
   */
  #spawnSpec(options: SpawnOptions, parent: Proc | undefined, link: boolean): ReturnType<typeof spawnSettings> {
    const spec = spawnSettings(options, (name) => this.registry.checkFree(name));
    if (parent !== undefined && (parent.flags & F_DEAD) !== 0) {
      const operation = link ? 'spawnLink' : 'spawn';
      this.zombieCall(parent, operation);
      throw new ProcessExitedError(String(parent.self), operation);
    }
    return spec;
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
      mailboxLength: queuedOf(p), // a suspended server's held messages too: in OTP's mailbox still
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
    const direct = liveProc<Proc>(pid);
    if (direct !== undefined) return direct.rt === this ? direct : undefined;
    if (pid.node !== this.name || pid.creation !== this.creation) return undefined;
    return this.#procs.get(pid.id);
  }

  /** @internal The live process of a pid or a registered name on this node. */
  lookupTarget(target: Target): Proc | undefined {
    const p = liveProc<Proc>(target);
    if (p !== undefined && p.rt === this) return p;
    return this.#lookup(target);
  }

  #lookup(target: Target): Proc | undefined {
    const name = nameOf(target);
    if (name !== undefined) return this.registry.lookup(name);
    const pid = toPid(target);
    if (pid === undefined) throw new InvalidArgumentError('target', 'a Pid or a registered name', target);
    return this.resolve(pid);
  }

  // ---- delivery -------------------------------------------------------------------------------

  send<M>(to: Target<M>, message: NoInfer<M>): void {
    this.deliver(undefined, to, message);
  }

  /** @internal The one path every raw message takes. */
  deliver(from: Proc | undefined, to: Target, message: unknown): Delivery {
    const p = liveProc<Proc>(to);
    if (p !== undefined && p.rt === this) return this.#mail.enqueue(p, message, from);
    return this.#deliverSlow(from, to, message);
  }

  #deliverSlow(from: Proc | undefined, to: Target, message: unknown): Delivery {
    const name = nameOf(to);
    let p: Proc | undefined;
    if (name !== undefined) {
      checkTarget(to, 'to'); // an empty name
      p = this.registry.lookup(name);
    } else {
      // a pid's fields read once: a copy of a pid is plain data, whose getters may answer only once
      const pid = toPid(to);
      if (pid === undefined) throw new InvalidArgumentError('to', 'a Pid or a non-empty registered name', to);
      if (this.#remote !== undefined && pid.node !== this.name) return this.#remote.send(from, pid, message);
      p = this.resolve(pid);
      to = pid;
    }
    if (p !== undefined) return this.#mail.enqueue(p, message, from);
    this.#mail.dropped(from, to, message, 'noproc');
    return Delivery.NoProc;
  }

  /** @internal Hands a message to a live process record (the layers above resolve once, then send). */
  enqueueTo(p: Proc, message: unknown, from: Proc | undefined): Delivery {
    return this.#mail.enqueue(p, message, from); // a dead process drops it with 'noproc'
  }

  /** @internal Delivers a message wrapped with an id and an optional listener (supervised send). */
  deliverEnvelope(from: Proc | undefined, to: Proc, message: unknown, id: string, listener?: EnvelopeListener): Delivery {
    return this.#mail.deliverEnvelope(from, to, message, id, listener);
  }

  /** @internal Takes back a queued, not yet started envelope (of `listener`, if given); false when it is no longer queued. */
  withdrawEnvelope(to: Pid, id: string, listener?: EnvelopeListener): boolean {
    const p = this.resolve(to);
    return p !== undefined && this.#mail.withdrawEnvelope(p, id, listener);
  }

  /** @internal Lets go of the envelope `id` of `listener` that `to` is handling (its end is then told to no one). */
  disownEnvelope(to: Pid, id: string, listener: EnvelopeListener): void {
    const p = this.resolve(to);
    if (p !== undefined) this.#mail.disownInflight(p, id, listener);
  }

  /** @internal */
  hold(p: Proc, message: unknown, admits: (message: unknown) => boolean): void {
    this.#mail.hold(p, message, admits);
  }

  /** @internal */
  takeHeld(p: Proc): unknown {
    return this.#mail.takeHeld(p);
  }

  /** @internal */
  postpone(p: Proc, event: unknown, msg: unknown, carried: boolean, admits: (message: unknown) => boolean): void {
    this.#mail.postpone(p, event, msg, carried, admits);
  }

  /** @internal */
  replayPostponed(p: Proc): readonly HeldEvent[] {
    return this.#mail.replayPostponed(p);
  }

  /** @internal */
  takePostponed(p: Proc, h: HeldEvent): unknown {
    return this.#mail.takePostponed(p, h);
  }

  /** @internal */
  heldCount(p: Proc): number {
    return this.#mail.heldCount(p);
  }

  /** @internal */
  settleInflight(p: Proc): void {
    this.#mail.settleInflight(p, 'handled');
  }

  /** @internal True when `p` is alive and its mailbox has room for `n` more messages without refusing or evicting any. */
  canAccept(p: Proc, n: number): boolean {
    return this.#mail.canAccept(p, n);
  }

  /** @internal A fresh message id, `<node>-<creation>-<seq>` (a counter, not a UUID). */
  nextMessageId(): string {
    return this.#messageIds.next();
  }

  // ---- exits, links, monitors -----------------------------------------------------------------

  exit(pid: Pid, reason: ExitReason | 'kill'): void {
    // a live pid of this node is resolved once (the common case: no second look at the pid); a brand
    // check first, never `instanceof`: a proxy's getPrototypeOf trap must not run before it is refused
    const p = procOfAny<Proc>(pid);
    if (reason === 'kill' && p !== undefined && p.rt === this) {
      this.#deaths.kill(p); // the common case of a burst of kills, checked first
      return;
    }
    if (p === undefined || p.rt !== this) {
      const copy = toPid(pid); // a copy of a pid: its fields read once
      if (copy === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
      pid = copy;
    }
    if (reason !== 'kill' && !isExitReason(reason)) {
      throw new InvalidArgumentError('reason', "an exit reason ('normal', 'shutdown', { shutdown }, an Error, ...) or 'kill'", reason);
    }
    if (p === undefined || p.rt !== this) this.exitSignal(pid, 'node', reason);
    else this.#deaths.signal(p, 'node', reason);
  }

  /**
   * @internal Kills `p` with `reason` now. `own`: the process ended itself (`ctx.exit`), which is
   * logged as a crash report when nobody links or monitors it; otherwise someone else stopped it.
   */
  die(p: Proc, reason: ExitReason, own = false): void {
    this.#deaths.die(p, reason, own ? Cause.OwnExit : Cause.Signal);
  }

  /** @internal The process's own code failed (scheduler host). */
  crash(p: Proc, reason: ExitReason): void {
    this.#deaths.die(p, reason, Cause.Crash);
  }

  /** @internal An exit signal to `target` from a process or the node, delivered synchronously. */
  exitSignal(target: Pid, from: Proc | 'node', reason: ExitReason | 'kill'): void {
    if (this.#remote !== undefined && target.node !== this.name) this.#remote.exit(from, target, reason);
    else this.#deaths.exitSignal(target, from, reason);
  }

  /**
   * @internal An exit signal from a process of another node (the cluster's), delivered now: trapped
   * as an `Exit` message, or the process dies (a `'normal'` one is ignored, as from a local process).
   */
  remoteSignal(target: Proc, from: Pid, reason: ExitReason | 'kill'): void {
    this.#deaths.signal(target, PidImpl.is(from) ? from : new PidImpl(from.node, from.creation, from.id), reason);
  }

  /** @internal The cluster's router for pids of other nodes (undefined: such pids are dead pids). */
  attachRemote(router: RemoteRouter | undefined): void {
    this.#remote = router;
  }

  /** @internal The attached router, if any. */
  get remote(): RemoteRouter | undefined {
    return this.#remote;
  }

  /** @internal After a context operation that may have killed its own process: stop the running handler. */
  throwIfExitedInHandler(p: Proc): void {
    // F_RUNNING is set exactly while the process's own handler (or init) is on the stack
    if ((p.flags & (F_DEAD | F_RUNNING)) === (F_DEAD | F_RUNNING)) throw EXIT_SENTINEL;
  }

  /** @internal */
  link(p: Proc, pid: Pid): void {
    if (this.#remote !== undefined && pid.node !== this.name) this.#remote.link(p, pid);
    else this.#deaths.link(p, pid);
    this.throwIfExitedInHandler(p);
  }

  /** @internal */
  unlink(p: Proc, pid: Pid): void {
    if (this.#remote !== undefined && pid.node !== this.name) this.#remote.unlink(p, pid);
    else this.#deaths.unlink(p, pid);
  }

  /** @internal */
  newRef(): RefImpl {
    return this.#deaths.newRef();
  }

  /** @internal */
  monitor(p: Proc, target: Target): RefImpl {
    if (this.#remote !== undefined && nameOf(target) === undefined) {
      const pid = toPid(target);
      if (pid !== undefined && pid.node !== this.name) {
        const ref = this.#deaths.newRef();
        // reading a copy of a pid ran user code (its getters), which may have ended `p`: a dead owner
        // sets up nothing, as ctx.monitor from a dead process (the peer would keep a monitor whose
        // Down nobody can receive, and the router a book for a process whose death it has seen)
        if ((p.flags & F_DEAD) !== 0) {
          this.zombieCall(p, 'monitor');
          return ref;
        }
        this.#remote.monitor(p, ref, pid);
        return ref;
      }
    }
    return this.#deaths.monitor(p, target);
  }

  /** @internal */
  demonitor(p: Proc, ref: RefImpl, flush: boolean): boolean {
    // a remote monitor is the router's; the flush of a Down already queued is death watch's either way
    const remote = this.#remote !== undefined && this.#remote.demonitor(p, ref);
    const local = this.#deaths.demonitor(p, ref, flush);
    // a managed monitor its owner ended with a plain ctx.demonitor: its ledger entry goes too
    const a = ref.attachment;
    if (a !== undefined && (remote || local) && a instanceof RemoteMonitorWatch) a.demonitored();
    return remote || local;
  }

  /** @internal A death hook on a live process record; its remover, or undefined when the process is dead. */
  onProcExit(p: Proc, fn: (reason: ExitReason) => void): (() => void) | undefined {
    return this.#deaths.onExit(p, fn);
  }

  /** @internal A death hook on a pid: `fn` runs during its death cleanup; undefined (never called) when it is not alive. */
  onExit(pid: Pid, fn: (reason: ExitReason) => void): (() => void) | undefined {
    const p = this.resolve(pid);
    return p === undefined ? undefined : this.#deaths.onExit(p, fn);
  }

  /** @internal Tells `w` synchronously when `p` dies; false (and nothing registered) when `p` is dead. */
  watchExit(p: Proc, w: ExitWatcher): boolean {
    return this.#deaths.watch(p, w);
  }

  /** @internal */
  unwatchExit(w: ExitWatcher): void {
    this.#deaths.unwatch(w);
  }

  /** @internal Emits `keel.process.zombie_call` for a context used after its process exited. */
  zombieCall(p: Proc, operation: string): void {
    this.telemetry.execute('keel.process.zombie_call', {}, { pid: p.self, operation });
  }

  // ---- timers and the next turn ---------------------------------------------------------------

  /** @internal A process's timer: `message` to `to` after `ms`, cancelled when the process dies. */
  sendAfter(p: Proc, to: Target, message: unknown, ms: number, unref = false): TimerRef {
    return this.#procTimers.sendAfter(p, to, message, ms, unref);
  }

  /** @internal */
  cancelTimer(t: TimerRefImpl): boolean {
    return this.#procTimers.cancel(t, this);
  }

  /** @internal A node timer on the node's clock, coalesced into one host timer; `unref` keeps it from holding the OS process open. */
  setTimer(ms: number, fn: () => void, unref = false): { cancel(): boolean } {
    validateDelay(ms);
    const entry = this.#timers.schedule(ms, fn, unref);
    return { cancel: () => this.#timers.cancel(entry) };
  }

  /** @internal A coalesced node timer as a bare entry (no closure per timer); cancel with {@link KeelNode.cancelEntry}. */
  schedule<T>(ms: number, fn: (this: T) => void, unref = false, receiver?: T): TimerEntry {
    return this.#timers.schedule(ms, fn, unref, receiver);
  }

  /** @internal */
  cancelEntry(entry: TimerEntry): boolean {
    return this.#timers.cancel(entry);
  }

  /** @internal The clock's time, read at most once per scheduler slice. */
  coarseNow(): number {
    return this.#sched.coarseNow();
  }

  /** @internal The time the node's timers count in (monotonic on the real clock). */
  timerNow(): number {
    return this.#timers.now();
  }

  /** @internal The timers' time read once per scheduler slice (see `coarseNow`). */
  coarseTimerNow(): number {
    return this.#sched.coarseTimerNow();
  }

  // ---- observation (an observer's switches: off, one check on the paths they touch) -------------

  /** @internal */
  recordSpawnTimes(): () => void {
    if (this.#spawnRecorders++ === 0) {
      this.#spawnTimes = new WeakMap();
      this.#spawnTimesFrom = { id: this.#nextId, at: this.timerNow() };
    }
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      if (--this.#spawnRecorders === 0) this.#spawnTimes = undefined;
    };
  }

  /** @internal */
  spawnedAt(p: Proc): { at: number; exact: boolean } | undefined {
    const at = this.#spawnTimes?.get(p);
    if (at !== undefined) return { at, exact: true };
    if (this.#spawnTimes === undefined) return undefined;
    // spawned before recording started: it is at least as old as the recording
    return p.self.id <= this.#spawnTimesFrom.id ? { at: this.#spawnTimesFrom.at, exact: false } : undefined;
  }

  /** @internal */
  measureHandlerTime(): () => void {
    return this.#sched.measureHandlerTime();
  }

  /** @internal */
  handlerTimeOf(p: Proc): number | undefined {
    return this.#sched.handlerTimeOf(p);
  }

  /** @internal */
  schedulerNow(): number {
    return this.#sched.now();
  }

  /** @internal Calls `task.nextTurn()` at the next turn of the event loop. */
  deferToNextTurn(task: NextTurnWatcher): void {
    this.#nextTurn.defer(task);
  }

  /** @internal Takes a task off the next turn's list (it finished within this turn); O(1). */
  cancelNextTurn(task: NextTurnWatcher): void {
    this.#nextTurn.cancel(task);
  }

  // ---- idle and shutdown ----------------------------------------------------------------------

  idle(options?: { timeoutMs?: number }): Promise<void> {
    return this.#life.idle(options);
  }

  /** @internal Resolves when no process is runnable; with `io`, also when no service I/O is in flight. */
  settle(options?: { io?: boolean }): Promise<void> {
    return this.#life.settle(options);
  }

  /** @internal Counts a piece of service I/O as in flight until it settles (`idle()` waits for it). */
  trackIo<T>(work: Promise<T>): Promise<T> {
    return this.#life.trackIo(work);
  }

  /** @internal A failure guard of `ms` (real time; under a SimulatedClock on its time, a real-time one behind it). */
  guard(fn: () => void, ms: number): { clear(): void } {
    return this.#life.guard(fn, ms);
  }

  /** @internal Registers work the layers above must settle when the node stops (pending calls and sends). */
  onShutdown(fn: () => unknown): () => void {
    return this.#life.onShutdown(fn);
  }

  /** @internal Registers work given up at once when a shutdown starts; returns its remover. */
  onStopping(fn: () => void): () => void {
    return this.#life.onStopping(fn);
  }

  get stopped(): boolean {
    return this.#life.state === 'stopped';
  }

  /** @internal True from the start of `shutdown()` on. */
  get stopping(): boolean {
    return this.#life.state !== 'running';
  }

  shutdown(options?: { timeoutMs?: number }): Promise<void> {
    return this.#life.shutdown(options);
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.shutdown();
  }

  /** @internal (part host) The idle waiters may be told. */
  checkIdle(): void {
    this.#life.checkIdle();
  }

  /** @internal (part host) A shutdown's last step: the timers stop, the clock and the creation are released. */
  released(): void {
    this.#timers.stop();
    this.#detachClock?.();
    releaseCreation(this.creation);
  }

  /**
   * @internal Logs through the node's logger; a logger that throws is never allowed to break the
   * runtime. A line with no detail is logged with the message alone (a console prints an `undefined`
   * argument as the word).
   */
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void {
    try {
      if (detail === undefined) this.logger[level](message);
      else this.logger[level](message, detail);
    } catch {
      // nothing sensible is left to report it to
    }
  }

  // ---- leak tests -----------------------------------------------------------------------------

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
  internals(): KernelInternals {
    return {
      processes: this.#procs.size,
      names: this.registry.size,
      groups: this.groups.size,
      timers: this.#timers.size,
      runQueue: this.#sched.queued,
      runQueueCapacity: this.#sched.capacity,
      busy: this.#sched.busy,
      envelopes: this.#mail.envelopes,
      longMailboxes: this.#mail.long,
      startedAt: this.#startedAt,
      handledByDead: this.#procs.handledByDead,
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
