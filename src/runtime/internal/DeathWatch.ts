import diagnostics from 'node:diagnostics_channel';
import type { TelemetryBus } from '../../telemetry/Telemetry.js';
import { DownMessage, type ExitReason, ExitMessage, isCleanExit, isDown, reasonReport } from '../messages.js';
import type { NameTable } from '../NameRegistry.js';
import { checkTarget, nameOf, type Pid, PidImpl, procOfAny, RefImpl, setProc, type Target, toPid } from '../Pid.js';
import { InvalidArgumentError } from '../../errors.js';
import type { GroupTable } from '../ProcessGroups.js';
import type { Envelope } from './Envelope.js';
import { HeldEnvelope, type HeldQueue, type PostponedEvents } from './Held.js';
import { type Mailboxes, removeWhere, shrink } from './Mailbox.js';
import { EMPTY, EXIT_SENTINEL, type ExitReport, type ExitWatcher, F_BUSY, F_DEAD, F_KILLED, F_LONG, F_SCHEDULED, F_SHUTDOWN, F_TRAP, Monitor, type Proc } from './Proc.js';
import type { ProcTable } from './ProcTable.js';
import type { Scheduler } from './Scheduler.js';
import type { TimerHeap } from './TimerHeap.js';
import { isInstance } from '../safe.js';

/**
 * @internal How a process came to die, which decides whether its death is logged. As OTP's crash
 * reports: a process whose own code failed is logged when nobody links or monitors it; one stopped
 * by someone else's exit signal is not (its `keel.process.exited` event says why it died).
 */
export const Cause = {
  /** Its own code failed: a throw, a rejection, an init that returned no handler. */
  Crash: 0,
  /** It ended itself: `ctx.exit(reason)`. */
  OwnExit: 1,
  /** An exit signal from a link, another process, the node, or a kill. */
  Signal: 2,
  /**
   * An exit signal the process sent itself (`ctx.exit(ctx.self, reason)`): logged as a signal is, but
   * on a clean reason the message it was handling counts as handled, as after `ctx.exit(reason)`.
   */
  SelfSignal: 3,
} as const;
export type Cause = (typeof Cause)[keyof typeof Cause];

/** @internal What death watch needs of the node. */
export interface DeathWatchHost {
  readonly name: string;
  readonly telemetry: TelemetryBus;
  readonly registry: NameTable<Proc>;
  readonly groups: GroupTable<Proc>;
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void;
  resolve(pid: Pid): Proc | undefined;
  /** Reports a context used after its process exited (`keel.process.zombie_call`). */
  zombieCall(p: Proc, operation: string): void;
}

/**
 * @internal Links, monitors, exit signals and trapped exits, exit watchers and death hooks, and the
 * death sequence itself: the node's bookkeeping first, with no user code in between, then what user
 * code hears of it. Exit signals go through a flat queue, so a cascade along links never recurses.
 */
export class DeathWatch {
  readonly #host: DeathWatchHost;
  readonly #procs: ProcTable;
  readonly #mail: Mailboxes;
  readonly #sched: Scheduler;
  readonly #timers: TimerHeap;
  /** The pid a `Down` for a name that was never registered names. */
  readonly #placeholder: PidImpl;
  #nextRef = 0;
  /** The lifecycle's idle check, set once by the node right after both exist (each needs the other). */
  idle!: { readonly waiting: number; checkIdle(): void };
  /** Whether anyone listens to `keel.process.exited` (a death builds its metadata only then): see #exitedActive. */
  readonly #exitedChannel = diagnostics.channel('keel.process.exited');
  #exitedVersion = -1;
  #exitedAttached = false;
  // exit signals, three slots each (target, from, reason), delivered from a flat queue
  readonly #signals: unknown[] = [];
  #flushing = false;

  constructor(host: DeathWatchHost, procs: ProcTable, mail: Mailboxes, sched: Scheduler, timers: TimerHeap, placeholder: PidImpl) {
    this.#host = host;
    this.#procs = procs;
    this.#mail = mail;
    this.#sched = sched;
    this.#timers = timers;
    this.#placeholder = placeholder;
  }

  /** Kills `p` with `reason` now: cleanup, Downs, exit signals to links, watchers and hooks. */
  die(p: Proc, reason: ExitReason, cause: Cause): void {
    if ((p.flags & F_DEAD) !== 0) return;
    if (p.x === undefined && p.size === 0 && (p.flags & (F_BUSY | F_LONG)) === 0 && (reason === 'killed' || reason === 'shutdown' || reason === 'normal')) {
      this.#dieAlone(p, reason, cause);
      return;
    }
    // the process ended itself (ctx.exit), from its handler's frame or its async continuation; a
    // signal from another process or the node ends it, even delivered while its handler runs
    const endedItself = cause === Cause.OwnExit || cause === Cause.SelfSignal;
    this.#mail.forget(p);
    p.flags = (p.flags | F_DEAD) & ~(F_SCHEDULED | F_LONG);
    this.#sched.clearBusy(p);
    this.#procs.delete(p.self.id);
    this.#procs.handledByDead += p.handled;
    setProc(p.self, undefined);
    // 1. the runtime's own bookkeeping, with no user code in between
    const left = p.size; // what the process never handled is reported below, in one event
    const queued = this.#mail.discard(p);
    p.handler = null;
    let watched = false;
    // keep the reason for a ctx.signal first read later; the common reasons need no extras
    const x = p.x !== undefined ? p.x : reason === 'normal' ? undefined : reason === 'shutdown' ? ((p.flags |= F_SHUTDOWN), undefined) : reason === 'killed' ? ((p.flags |= F_KILLED), undefined) : p.ext();
    let inflight: Envelope | undefined;
    let held: HeldQueue | undefined;
    let postponed: PostponedEvents | undefined;
    let hooks: Set<(reason: ExitReason) => void> | undefined;
    let report: ExitReport | undefined;
    let watchers: ExitWatcher[] | undefined;
    let long: Proc[] | undefined; // owners whose mailbox a Down made long: reported after the bookkeeping
    if (x !== undefined) {
      x.reason = reason;
      inflight = x.inflight;
      x.inflight = undefined;
      held = x.held;
      x.held = undefined;
      postponed = x.postponed;
      x.postponed = undefined;
      x.admits = undefined;
      hooks = x.exitHooks;
      x.exitHooks = undefined;
      report = x.exitReport;
      x.exitReport = undefined;
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
        this.#host.registry.release(p);
        x.name = undefined;
      }
      if (x.groups !== undefined) {
        this.#host.groups.release(p, x.groups);
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
          if (this.#mail.enqueueQuiet(m.owner, new DownMessage(m.ref, p.self, reason, m.name))) (long ??= []).push(m.owner);
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
    // 2. then what user code hears of it: long mailboxes, envelope senders, the abort signal, death hooks, telemetry
    if (long !== undefined) for (const owner of long) this.#mail.reportLong(owner);
    if (inflight !== undefined) {
      // exiting from its own handler cleanly counts as having handled the message
      if (endedItself && isCleanExit(reason)) this.#mail.settleEnvelope(inflight, 'handled');
      else this.#mail.settleEnvelope(inflight, 'crashed', reason);
    }
    if (queued !== undefined) for (const env of queued) this.#mail.settleEnvelope(env, 'down', reason);
    // held by a suspended server, never handled
    held?.forEach((h) => {
      if (isInstance(h, HeldEnvelope)) this.#mail.settleEnvelope(h.env, 'down', reason);
    });
    // postponed by a bounded state machine, never handled again
    postponed?.forEach((e) => {
      e.gone = true;
      if (e.env !== undefined) this.#mail.settleEnvelope(e.env, 'down', reason);
    });
    if (left > 0) this.#droppedWith(p, left, queued, reason);
    if (x?.abort !== undefined && !x.abort.signal.aborted) x.abort.abort(reason);
    if (watchers !== undefined) this.#tellWatchers(p, watchers, reason);
    if (hooks !== undefined) this.#runHooks(p, hooks, reason);
    if (report !== undefined) report.exited(p.self, reason);
    if (!isCleanExit(reason)) {
      if (this.#exitedActive()) this.#host.telemetry.execute('keel.process.exited', {}, { pid: p.self, reason, watched });
      // a crash report, as OTP's: only for a failure of the process's own that nobody else hears of
      if (!watched && cause <= Cause.OwnExit) this.#crashReport(p, reason);
    }
    this.#flushSignals();
    this.idle.checkIdle();
  }

  /**
   * The death of a process nobody can hear of: no links, monitors, name, groups, timers, watchers or
   * hooks (it has no extras), nothing queued, nothing in flight, and a reason its flags can hold. Most
   * deaths of a burst (100,000 kills) are this one: it touches the process record and the table only.
   */
  #dieAlone(p: Proc, reason: 'killed' | 'shutdown' | 'normal', cause: Cause): void {
    this.#bury(p, reason === 'killed' ? F_KILLED : reason === 'shutdown' ? F_SHUTDOWN : 0);
    if (reason === 'killed') {
      if (this.#exitedActive()) this.#host.telemetry.execute('keel.process.exited', {}, { pid: p.self, reason, watched: false });
      if (cause <= Cause.OwnExit) this.#crashReport(p, reason);
    }
    this.#flushSignals();
    if (this.idle.waiting !== 0) this.idle.checkIdle();
  }

  /**
   * The crash report of a process's own failure nobody watches: one `error` line, the reason's
   * message once (the stack, which starts with it), as OTP's report shows reason and stack once.
   */
  #crashReport(p: Proc, reason: ExitReason): void {
    this.#host.log('error', `process ${String(p.self)} exited: ${reasonReport(reason)}`);
  }

  /**
   * One event per death, however long the mailbox was (a death costs no work per message), naming
   * the supervised messages among them: the envelopes just settled, no further walk of the mailbox.
   * Out of line: the death sequence stays small for the compiler, whose hot path never drops any.
   */
  #droppedWith(p: Proc, left: number, queued: readonly Envelope[] | undefined, reason: ExitReason): void {
    const meta: Record<string, unknown> = { from: 'node', to: p.self, reason: 'receiver_exited', exitReason: reason };
    if (queued !== undefined) meta.ids = queued.map((env) => env.id);
    this.#host.telemetry.execute('keel.message.dropped', { count: left }, meta);
  }

  /** The steps of every death of a process with no extras: its record (its reason in `flag`) and the table. */
  #bury(p: Proc, flag: number): void {
    p.flags = (p.flags | F_DEAD | flag) & ~F_SCHEDULED;
    this.#procs.delete(p.self.id);
    this.#procs.handledByDead += p.handled;
    setProc(p.self, undefined);
    p.handler = null;
    // written only when there is something to give back: a field no process ever rewrote stays
    // constant for the compiler, and a mass kill should not deoptimize the scheduler's turn
    if (p.buf !== EMPTY) shrink(p);
  }

  #tellWatchers(p: Proc, watchers: ExitWatcher[], reason: ExitReason): void {
    for (const w of watchers) {
      if (w.watched !== p) continue; // unwatched meanwhile (by an abort listener, say)
      w.watched = undefined;
      try {
        w.onExit(reason);
      } catch (e) {
        if (e !== EXIT_SENTINEL) this.#host.log('error', `an exit watcher of ${String(p.self)} threw`, e);
      }
    }
  }

  #runHooks(p: Proc, hooks: Set<(reason: ExitReason) => void>, reason: ExitReason): void {
    for (const hook of hooks) {
      try {
        hook(reason);
      } catch (e) {
        if (e !== EXIT_SENTINEL) this.#host.log('error', `a death hook of ${String(p.self)} threw`, e);
      }
    }
  }

  // ---- exit signals ---------------------------------------------------------------------------

  /** Queues an exit signal to `q`; delivered by {@link DeathWatch.flushSignals}. */
  queueSignal(q: Proc, from: PidImpl | 'node', reason: ExitReason | 'kill'): void {
    this.#signals.push(q, from, reason);
  }

  /** Delivers the queued exit signals (and those their deaths queue), unless already delivering. */
  flushSignals(): void {
    this.#flushSignals();
  }

  #flushSignals(): void {
    if (this.#flushing || this.#signals.length === 0) return;
    this.#flushing = true;
    try {
      this.#drainSignals();
    } finally {
      this.#flushing = false;
    }
  }

  /** Delivers the queued signals, those their deaths queue included, then empties the queue. */
  #drainSignals(): void {
    const q = this.#signals;
    try {
      for (let i = 0; i < q.length; i += 3) {
        try {
          this.#deliverSignal(q[i] as Proc, q[i + 1] as PidImpl | 'node', q[i + 2] as ExitReason | 'kill');
        } catch (e) {
          if (e !== EXIT_SENTINEL) this.#host.log('error', 'delivering an exit signal threw', e);
        }
      }
    } finally {
      q.length = 0;
    }
  }

  /**
   * A kill from the node (`node.exit(pid, 'kill')`): the process dies now. The common case of a burst
   * (a process with no extras, nothing queued, while no cascade is being delivered and nobody listens
   * to `keel.process.exited`) runs no user code at all, so it needs none of the cascade's machinery.
   */
  kill(p: Proc): void {
    if (p.x !== undefined || p.size !== 0 || (p.flags & (F_BUSY | F_LONG | F_DEAD)) !== 0 || this.#flushing || this.#signals.length !== 0 || this.#exitedActive()) {
      this.signal(p, 'node', 'kill');
      return;
    }
    // nothing to tell anyone (nobody listens, nothing is queued to flush): the record's steps only
    this.#bury(p, F_KILLED);
    if (this.idle.waiting !== 0) this.idle.checkIdle();
  }

  /**
   * Whether anyone listens to `keel.process.exited`, read with plain loads while nothing changed: a
   * burst of kills asks it once per kill, before the compiler has had a look at the kill path.
   */
  #exitedActive(): boolean {
    const telemetry = this.#host.telemetry;
    if (telemetry.version !== this.#exitedVersion) {
      this.#exitedVersion = telemetry.version;
      this.#exitedAttached = telemetry.isAttached('keel.process.exited');
    }
    return this.#exitedAttached || this.#exitedChannel.hasSubscribers;
  }

  /**
   * Delivers one exit signal now: at once when no signal is queued (no queue to go through: a kill
   * of an unlinked process costs no array work), queued behind those that are otherwise.
   */
  signal(q: Proc, from: PidImpl | 'node', reason: ExitReason | 'kill'): void {
    if (this.#flushing || this.#signals.length > 0) {
      // behind the cascade being delivered, or behind the signals a death outside a cascade (a
      // crash, ctx.exit(reason)) queued before its hooks ran: signals keep the order they were sent in
      this.#signals.push(q, from, reason);
      this.#flushSignals();
      return;
    }
    this.#flushing = true;
    try {
      this.#deliverSignal(q, from, reason);
    } catch (e) {
      if (e !== EXIT_SENTINEL) this.#host.log('error', 'delivering an exit signal threw', e);
    } finally {
      // the cascade the death queued (its links' signals) runs before this signal's sender resumes
      try {
        if (this.#signals.length > 0) this.#drainSignals();
      } finally {
        this.#flushing = false;
      }
    }
  }

  #deliverSignal(q: Proc, from: PidImpl | 'node', reason: ExitReason | 'kill'): void {
    if ((q.flags & F_DEAD) !== 0) return;
    if (reason === 'kill') {
      this.die(q, 'killed', Cause.Signal);
      return;
    }
    if ((q.flags & F_TRAP) !== 0) {
      this.#mail.enqueue(q, new ExitMessage(from, reason), undefined);
      return;
    }
    if (reason === 'normal') {
      if (from === q.self) this.die(q, 'normal', Cause.SelfSignal);
      return;
    }
    this.die(q, reason, from === q.self ? Cause.SelfSignal : Cause.Signal);
  }

  /** An exit signal to `target` from a process or the node, delivered synchronously. */
  exitSignal(target: Pid, from: Proc | 'node', reason: ExitReason | 'kill'): void {
    const q = this.#host.resolve(target);
    if (q === undefined) return;
    this.signal(q, from === 'node' ? 'node' : from.self, reason);
  }

  // ---- links and monitors ---------------------------------------------------------------------

  addLink(a: Proc, b: Proc): void {
    (a.ext().links ??= new Set()).add(b);
    (b.ext().links ??= new Set()).add(a);
  }

  /** Links `p` to `pid`; a dead `pid` sends `p` a `noproc` exit signal at once (as OTP's link/1). */
  link(p: Proc, pid: Pid): void {
    const q = this.#host.resolve(pid);
    if (q === p) return;
    if (q === undefined) {
      this.#signals.push(p, PidImpl.is(pid) ? pid : new PidImpl(pid.node, pid.creation, pid.id), 'noproc');
      this.#flushSignals();
      return;
    }
    this.addLink(p, q);
  }

  unlink(p: Proc, pid: Pid): void {
    const q = this.#host.resolve(pid);
    if (q === undefined) return;
    p.x?.links?.delete(q);
    q.x?.links?.delete(p);
  }

  newRef(): RefImpl {
    return new RefImpl(this.#host.name, ++this.#nextRef);
  }

  /** Monitors `target` for `p`; a target that is not alive gets `p` a `noproc` Down at once. */
  monitor(p: Proc, target: Target): RefImpl {
    const ref = this.newRef();
    // a live pid of this node (the common case) is its process at once; anything else is checked
    let name: string | undefined;
    let q = procOfAny<Proc>(target); // a brand check: never runs a proxy's traps
    if (q === undefined || (q.rt as unknown) !== this.#host) {
      name = nameOf(target);
      if (name !== undefined) {
        checkTarget(target); // an empty name
        q = this.#host.registry.lookup(name);
      } else {
        const pid = toPid(target); // a copy of a pid: its fields read once
        if (pid === undefined) throw new InvalidArgumentError('target', 'a Pid or a non-empty registered name', target);
        target = pid;
        q = this.#host.resolve(pid);
      }
      // reading a copy of a pid ran user code (its getters), which may have ended `p`: a dead owner
      // sets up nothing, as ctx.monitor from a dead process (a target would keep a monitor whose Down
      // nobody can receive)
      if ((p.flags & F_DEAD) !== 0) {
        this.#host.zombieCall(p, 'monitor');
        return ref;
      }
    }
    if (q === undefined) {
      const pid = name !== undefined ? this.#placeholder : (target as Pid);
      this.#mail.enqueue(p, new DownMessage(ref, pid, 'noproc', name), undefined);
      return ref;
    }
    const m = new Monitor(ref, p, q, name);
    (p.ext().monitors ??= new Map()).set(ref, m);
    (q.ext().monitoredBy ??= new Map()).set(ref, m);
    return ref;
  }

  demonitor(p: Proc, ref: RefImpl, flush: boolean): boolean {
    const m = p.x?.monitors?.get(ref);
    if (m !== undefined) {
      p.x!.monitors!.delete(ref);
      m.target.x?.monitoredBy?.delete(ref);
    }
    if (flush && p.size > 0) removeWhere(p, (msg) => isDown(msg) && msg.ref === ref);
    return m !== undefined;
  }

  // ---- exit watchers and death hooks ----------------------------------------------------------

  /** A death hook on a live process record; its remover, or undefined when the process is dead. */
  onExit(p: Proc, fn: (reason: ExitReason) => void): (() => void) | undefined {
    if ((p.flags & F_DEAD) !== 0) return undefined;
    const hooks = (p.ext().exitHooks ??= new Set());
    hooks.add(fn);
    return () => {
      hooks.delete(fn);
    };
  }

  /** Tells `w` synchronously when `p` dies; false (and nothing registered) when `p` is dead. */
  watch(p: Proc, w: ExitWatcher): boolean {
    if ((p.flags & F_DEAD) !== 0) return false;
    const x = p.x ?? p.ext(); // a watched process keeps its extras: no call for them most times
    const head = x.watchers;
    w.watched = p;
    w.watchPrev = undefined;
    w.watchNext = head;
    if (head !== undefined) head.watchPrev = w;
    x.watchers = w;
    return true;
  }

  unwatch(w: ExitWatcher): void {
    const p = w.watched as Proc | undefined;
    if (p === undefined) return;
    w.watched = undefined;
    if ((p.flags & F_DEAD) !== 0) return; // its list was detached at death: nothing to unlink
    const { watchPrev: prev, watchNext: next } = w;
    if (prev !== undefined) prev.watchNext = next;
    else if (p.x !== undefined && p.x.watchers === w) p.x.watchers = next;
    if (next !== undefined) next.watchPrev = prev;
    w.watchPrev = w.watchNext = undefined;
  }
}
