import diagnostics from 'node:diagnostics_channel';
import { HandlerReturnedError, toError } from '../../errors.js';
import type { TelemetryBus } from '../../telemetry/Telemetry.js';
import type { ExitReason } from '../messages.js';
import type { Handler, Init } from '../types.js';
import { Envelope } from './Envelope.js';
import { type Mailboxes, NO_WAKE, SHRINK_ABOVE, shrink, type Waker } from './Mailbox.js';
import { EXIT_SENTINEL, F_BUSY, F_DEAD, F_FRESH, F_INIT, F_LONG, F_RUNNING, F_SCHEDULED, F_SLOW, type Proc } from './Proc.js';
import { SliceCache } from './SliceCache.js';

const RESOLVED = Promise.resolve();
/** The run queue's length (a power of two), to which it shrinks back once a burst has drained. */
const RQ_INITIAL = 1024;
const RQ_SHRINK_ABOVE = 65_536;
/** At most this many messages run between two readings of the clock within a slice. */
const MAX_INTERVAL = 64;
/** Under a virtual clock a slice is this many messages: a deterministic yield, no real clock read. */
const DETERMINISTIC_SLICE = 1024;
/**
 * The most messages a slice runs while its time source stands still: one that never moves (a
 * TestClock's `now` injected as `scheduler.now`) would otherwise never end a slice, and a process
 * sending itself messages would hold the event loop for ever. The real monotonic clock always moves
 * over far fewer messages, so on real time this never ends a slice; and a burst that a test runs on
 * a frozen source in one turn (70,000 messages, say) still runs in one.
 */
const MAX_STILL_MESSAGES = 1_048_576;

/** @internal What the scheduler needs of the node. */
export interface SchedulerHost {
  readonly name: string;
  readonly telemetry: TelemetryBus;
  readonly clock: { now(): number };
  /** The time the node's timers count in (monotonic on the real clock). */
  timerNow(): number;
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void;
  /** The process's own code failed (a throw, a rejection, a bad init result): it dies with `reason`. */
  crash(p: Proc, reason: ExitReason): void;
  /** The loop ran dry, or a busy handler settled: the idle waiters may be told. */
  checkIdle(): void;
}

/** @internal The scheduler's settings, validated by the node. */
export interface SchedulerSettings {
  readonly budget: number;
  readonly sliceMs: number;
  readonly longScheduleMs: number;
  /** Under a virtual clock: slices count messages, and nothing depends on real time. */
  readonly deterministic: boolean;
  /** The real-time source of the time slice and the long-schedule reports (milliseconds). */
  readonly now: () => number;
}

/**
 * @internal The scheduler: a FIFO run queue of ready processes, the loop that runs them in turns of
 * up to `budget` messages, the time slice after which the loop yields to the event loop, the
 * long-schedule reports, and the turn itself (init, sync and async handlers). Everything a turn does
 * that is not the common case is a call, so that TurboFan compiles the loop and the turn tight.
 */
export class Scheduler implements Waker {
  private readonly host: SchedulerHost;
  private readonly mail: Mailboxes;
  private readonly budget: number;
  readonly #sliceMs: number;
  /** An interval at least this long marks its last process slow (an eighth of the slice). */
  readonly #slowMs: number;
  readonly #longScheduleMs: number;
  readonly #deterministic: boolean;
  readonly #now: () => number;
  // run queue: a FIFO ring of ready processes
  private rq: (Proc | null | undefined)[] = rqArray(RQ_INITIAL);
  private rqMask = RQ_INITIAL - 1;
  private rqHead = 0;
  private rqSize = 0;
  private running = false;
  private pending = false;
  private sliceOpen = false;
  #sliceStart = 0;
  /** Messages left before the clock is read again, and how many the current interval started with. */
  private countdown = 1;
  private interval = 1;
  /** Messages run in this slice since the time source last moved (see MAX_STILL_MESSAGES). */
  #stillMessages = 0;
  /** When the clock was last read in this slice. */
  #checkedAt = 0;
  readonly #coarseClock = new SliceCache(() => this.host.clock.now());
  readonly #coarseTimers = new SliceCache(() => this.host.timerNow());
  private attachVersion = -1;
  private longScheduleAttached = false;
  private readonly longScheduleChannel = diagnostics.channel('keel.process.long_schedule');
  /** Processes whose async handler (or init) has not settled yet. */
  busy = 0;
  /**
   * Each process's handler time (ms, on the scheduler's `now`) while an observer measures it (see
   * {@link Scheduler.measureHandlerTime}); undefined otherwise: the loop then pays one check per run.
   */
  private handlerTimes: WeakMap<Proc, number> | undefined = undefined;
  #measurers = 0;
  /** The lifecycle's idle check, set once by the node right after both exist (each needs the other). */
  idle!: { readonly waiting: number; checkIdle(): void };

  constructor(host: SchedulerHost, mail: Mailboxes, settings: SchedulerSettings) {
    this.host = host;
    this.mail = mail;
    this.budget = settings.budget;
    this.#sliceMs = settings.sliceMs;
    this.#slowMs = settings.sliceMs / 8;
    this.#longScheduleMs = settings.longScheduleMs;
    this.#deterministic = settings.deterministic;
    this.#now = settings.now;
  }

  /** Processes on the run queue. */
  get queued(): number {
    return this.rqSize;
  }

  get capacity(): number {
    return this.rqMask + 1;
  }

  /** True while anything is runnable, running, or about to run. */
  get active(): boolean {
    return this.rqSize > 0 || this.running || this.pending;
  }

  /** Puts a process that is not scheduled, running or busy on the run queue, and the loop to work. */
  wake(p: Proc): void {
    p.flags |= F_SCHEDULED;
    // rqPush's body, inline: every send from outside the loop and every call wakes a process
    if (this.rqSize > this.rqMask) this.rqGrow();
    this.rq[(this.rqHead + this.rqSize) & this.rqMask] = p;
    this.rqSize++;
    if (!this.running && !this.pending) {
      this.pending = true;
      void RESOLVED.then(this.drain);
    }
  }

  private rqPush(p: Proc): void {
    if (this.rqSize > this.rqMask) this.rqGrow();
    this.rq[(this.rqHead + this.rqSize) & this.rqMask] = p;
    this.rqSize++;
  }

  /** Doubles the run queue (out of line: the push stays small enough to inline into every send). */
  private rqGrow(): void {
    const n = this.rqMask + 1;
    const nb = rqArray(n * 2);
    for (let i = 0; i < this.rqSize; i++) nb[i] = this.rq[(this.rqHead + i) & this.rqMask]!;
    this.rq = nb;
    this.rqMask = n * 2 - 1;
    this.rqHead = 0;
  }

  private drain = (): void => {
    try {
      this.runLoop();
    } catch (e) {
      // a bug, not user code (every user callback is guarded): keep the node alive and say so
      this.running = false;
      this.host.log('error', `the scheduler loop of node ${this.host.name} threw`, e);
      if (this.rqSize > 0 && !this.pending) {
        this.pending = true;
        setImmediate(this.drain);
      }
    }
  };

  private runLoop(): void {
    this.pending = false;
    this.running = true;
    const budget = this.budget;
    const timed = this.handlerTimes !== undefined || this.longScheduleWatched();
    // A slice spans every run of the loop until the event loop has had a turn: runs started as
    // microtasks (an async handler settling, a send from outside) share the slice of the run before.
    if (!this.sliceOpen) {
      this.sliceOpen = true;
      if (this.#deterministic) {
        this.countdown = this.interval = DETERMINISTIC_SLICE;
      } else {
        this.#sliceStart = this.#checkedAt = this.#now();
        this.#stillMessages = 0;
        this.countdown = this.interval = 1; // the first message of a slice measures the pace
      }
      setImmediate(this.#closeSlice);
    }
    // the process of the last turn, to which an interval that ended with it is attributed
    let last: Proc | undefined;
    while (this.rqSize > 0) {
      if (this.countdown <= 0 && this.sliceSpent(last)) {
        this.yield();
        return;
      }
      const p = this.rq[this.rqHead]!;
      this.rq[this.rqHead] = null;
      this.rqHead = (this.rqHead + 1) & this.rqMask;
      this.rqSize--;
      p.flags &= ~F_SCHEDULED;
      // a new process that has only its init to run (no message yet) takes a turn like any other
      if ((p.flags & (F_DEAD | F_SLOW | F_FRESH)) !== 0 && ((p.flags & (F_DEAD | F_SLOW)) !== 0 || p.size > 0)) {
        if ((p.flags & F_DEAD) !== 0) continue;
        if (this.#measuredTurn(p, last, timed)) {
          this.yield();
          return;
        }
      } else {
        let n = 1;
        try {
          n = timed ? this.#timedTurn(p, budget) : this.turn(p, budget);
        } catch (e) {
          this.#turnFailed(p, e);
        }
        this.countdown -= n;
      }
      last = p;
    }
    // an interval that ended with the last turn (a measured process's, say) is read now; when the
    // slice is spent, a run started in it before the event loop's turn (a microtask) yields at once
    if (this.countdown <= 0 && this.sliceSpent(last)) this.countdown = this.interval = 0;
    this.running = false;
    // a burst (100,000 spawns, say) grew the run queue past the size of steady work (a fan-out to
    // 10,000): once it is empty, it goes back to its initial size
    if (this.rqMask >= RQ_SHRINK_ABOVE) {
      this.rq = rqArray(RQ_INITIAL);
      this.rqMask = RQ_INITIAL - 1;
      this.rqHead = 0;
    }
    // a run of the loop ends per call and per send from outside: ask for the idle check only when someone waits
    if (this.idle.waiting !== 0) this.idle.checkIdle();
  }

  /**
   * The clock's time, read at most once per slice (≤ `sliceMs` stale inside a run of the loop): for
   * timestamps that need no millisecond precision, such as a dead letter's.
   */
  coarseNow(): number {
    return !this.sliceOpen || this.#deterministic ? this.host.clock.now() : this.#coarseClock.at(this.#sliceStart);
  }

  /** The timers' time, read once per slice as {@link coarseNow} reads the clock: for deadlines and ages that need no sub-slice precision. */
  coarseTimerNow(): number {
    return !this.sliceOpen || this.#deterministic ? this.host.timerNow() : this.#coarseTimers.at(this.#sliceStart);
  }

  /** Whether anyone listens to `keel.process.long_schedule` (cached until the attachments change). */
  private longScheduleWatched(): boolean {
    const telemetry = this.host.telemetry;
    const version = telemetry.version;
    if (version !== this.attachVersion) {
      this.attachVersion = version;
      this.longScheduleAttached = telemetry.isAttached('keel.process.long_schedule');
    }
    return this.longScheduleAttached || this.longScheduleChannel.hasSubscribers;
  }

  /**
   * Measures each process's handler time from now until the returned remover is called (counted:
   * several observers may measure at once). While on, every turn is a timed turn.
   */
  measureHandlerTime(): () => void {
    this.#measurers++;
    this.handlerTimes ??= new WeakMap();
    let removed = false;
    return () => {
      if (removed) return;
      removed = true;
      if (--this.#measurers === 0) this.handlerTimes = undefined;
    };
  }

  /** The handler time of `p` measured so far (ms), or undefined when not measuring (0 for a process not run since). */
  handlerTimeOf(p: Proc): number | undefined {
    return this.handlerTimes === undefined ? undefined : (this.handlerTimes.get(p) ?? 0);
  }

  /** The scheduler's real-time source (ms): the clock of {@link Scheduler.handlerTimeOf}. */
  now(): number {
    return this.#now();
  }

  /** Yields to the event loop so timers and I/O run, and resumes after them. */
  private yield(): void {
    this.running = false;
    this.pending = true;
    setImmediate(this.drain);
  }

  /** A turn measured for `keel.process.long_schedule` (while someone listens to it) or for an observer's handler times. */
  #timedTurn(p: Proc, budget: number): number {
    const started = this.#now();
    const before = p.handled;
    const n = this.turn(p, budget);
    const took = this.#now() - started;
    const times = this.handlerTimes;
    if (times !== undefined) times.set(p, (times.get(p) ?? 0) + took);
    if (took >= this.#longScheduleMs && this.longScheduleWatched()) {
      this.host.telemetry.execute('keel.process.long_schedule', { durationMs: took, messages: p.handled - before }, { pid: p.self });
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
    if (this.countdown !== this.interval && this.sliceSpent(last)) {
      this.rqHead = (this.rqHead - 1) & this.rqMask;
      this.rq[this.rqHead] = p;
      this.rqSize++;
      p.flags |= F_SCHEDULED;
      return true;
    }
    let n = 1;
    try {
      n = timed ? this.#timedTurn(p, 1) : this.turn(p, 1);
    } catch (e) {
      this.#turnFailed(p, e);
    }
    this.interval = n;
    this.countdown = 0;
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
  private sliceSpent(p: Proc | undefined): boolean {
    if (this.#deterministic) {
      this.countdown = this.interval = DETERMINISTIC_SLICE;
      return true;
    }
    const now = this.#now();
    const took = now - this.#checkedAt;
    const n = this.interval - this.countdown;
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
    this.#stillMessages = took > 0 ? 0 : this.#stillMessages + n;
    if (left <= 0 || this.#stillMessages >= MAX_STILL_MESSAGES) {
      this.countdown = this.interval = 1;
      return true;
    }
    const per = n > 0 ? took / n : took;
    const k = per > 0 ? Math.floor(left / per / 2) : MAX_INTERVAL;
    this.countdown = this.interval = k < 1 ? 1 : k > MAX_INTERVAL ? MAX_INTERVAL : k;
    return false;
  }

  #closeSlice = (): void => {
    this.sliceOpen = false;
  };

  /**
   * A turn threw outside every guard of user code: a defect of the runtime, or a value whose mere
   * inspection throws. The process must not stay half-run (running, handling nothing, unnoticed by
   * its supervisor): it exits with the error, and the loop goes on.
   */
  #turnFailed(p: Proc, e: unknown): void {
    p.flags &= ~F_RUNNING;
    if (e === EXIT_SENTINEL && (p.flags & F_DEAD) !== 0) return;
    this.host.log('error', `the turn of ${String(p.self)} threw outside its handler; the process exits`, e);
    if ((p.flags & F_DEAD) === 0) {
      this.mail.settleInflight(p, 'crashed', e);
      this.host.crash(p, toError(e));
    }
  }

  /**
   * Runs up to `budget` messages of `p`; returns how many it ran (an init alone counts as one). The
   * loop is kept as small as it can be, every rare case a call: TurboFan then compiles it tight.
   */
  private turn(p: Proc, budget: number): number {
    if ((p.flags & F_INIT) !== 0) {
      this.#runInit(p);
      // F_SCHEDULED: an init's thenable that called back from inside its `then` has queued the
      // process again already (#initDone); running its messages here too would give it two turns a round
      if ((p.flags & (F_DEAD | F_BUSY | F_INIT | F_SCHEDULED)) !== 0) return 1;
      // nothing queued yet (a burst of spawns): the turn ends with its init, as the loop below would
      if (p.size === 0 && (p.flags & F_LONG) === 0) return 0;
    }
    const handler = p.handler as Handler<unknown>;
    const mail = this.mail;
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
      const env = mail.envelopes > 0 && Envelope.is(m) ? m : undefined;
      if (env !== undefined) m = mail.opened(p, env);
      let r: unknown;
      try {
        r = handler(m);
      } catch (e) {
        this.#threw(p, env, e);
        return k;
      }
      if (r !== undefined && this.returned(p, env, r)) return k;
      if (env !== undefined) mail.settleInflight(p, 'handled');
      if ((p.flags & F_DEAD) !== 0) break;
    }
    this.afterTurn(p);
    return k;
  }

  /** The end of a turn: the process goes back on the run queue if it has more to do. */
  private afterTurn(p: Proc): void {
    p.flags &= ~F_RUNNING;
    if ((p.flags & (F_DEAD | F_BUSY | F_LONG)) === 0) {
      if (p.size > 0) {
        p.flags |= F_SCHEDULED;
        this.rqPush(p);
      } else if (p.buf.length > SHRINK_ABOVE) {
        shrink(p);
      }
    } else {
      this.#afterUnusualTurn(p);
    }
  }

  /** The end of a turn that is not the common one: the process died, went busy, or its mailbox is long. */
  #afterUnusualTurn(p: Proc): void {
    this.mail.checkShort(p);
    if ((p.flags & (F_DEAD | F_BUSY)) !== 0) return;
    if (p.size > 0) {
      p.flags |= F_SCHEDULED;
      this.rqPush(p);
    } else if (p.buf.length > SHRINK_ABOVE) {
      shrink(p);
    }
  }

  /** The handler threw: the process exits with the error (after `ctx.exit` it is dead already). */
  #threw(p: Proc, env: Envelope | undefined, e: unknown): void {
    p.flags &= ~F_RUNNING;
    // after ctx.exit the death cleanup has already settled the message; a throw settles it here. The
    // value ctx.exit unwinds with means "already dead" only from a dead process: one that user code
    // kept and threw again from a live process is a crash like any other value
    if ((p.flags & F_DEAD) === 0) {
      if (env !== undefined) this.mail.settleInflight(p, 'crashed', e);
      this.host.crash(p, toError(e));
    }
  }

  /**
   * The handler returned something: a thenable makes the process busy until it settles (true: the
   * turn ends). Reading its `then` may throw (a getter, a revoked proxy): that is the handler's failure.
   */
  private returned(p: Proc, env: Envelope | undefined, r: unknown): boolean {
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
    this.busy++;
    this.#follow(r, then, p, env);
    return true;
  }

  /** Follows a busy process's promise; a thenable that throws from `then` counts as a rejection. */
  #follow(r: unknown, then: ThenFn, p: Proc, env: Envelope | undefined): void {
    // as a promise does, only the first callback counts: a thenable that calls back twice (resolves,
    // then rejects; or resolves again while the next message is in flight) settles its message once
    let settled = false;
    try {
      then.call(
        r,
        () => {
          if (settled) return;
          settled = true;
          this.#asyncDone(p, env);
        },
        (e: unknown) => {
          if (settled) return;
          settled = true;
          this.#asyncFailed(p, env, e);
        },
      );
    } catch (e) {
      if (settled) return; // a `then` that called back, then threw: the callback counted
      settled = true;
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
      if ((p.flags & F_DEAD) === 0) this.host.crash(p, toError(e)); // the unwinding value of ctx.exit included (see #threw)
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
      this.#initThen(p, r, then);
    } else {
      this.host.crash(p, new HandlerReturnedError(String(p.self), r));
    }
  }

  /**
   * An init that returned a thenable: the process is busy until it settles. Out of `#runInit`, whose
   * every call (a burst of spawns, before the compiler has seen it) would otherwise allocate the
   * context these callbacks close over, thenable or not.
   */
  #initThen(p: Proc, r: unknown, then: ThenFn): void {
    p.flags |= F_BUSY;
    this.busy++;
    let settled = false; // only the first callback counts, as for a handler's thenable
    try {
      then.call(
        r,
        (h) => {
          if (settled) return;
          settled = true;
          this.#initDone(p, h);
        },
        (e: unknown) => {
          if (settled) return;
          settled = true;
          this.#asyncFailed(p, undefined, e);
        },
      );
    } catch (e) {
      if (!settled) {
        settled = true;
        this.#asyncFailed(p, undefined, e);
      }
    }
  }

  /** A busy process is busy no more (its promise settled, or it died). */
  clearBusy(p: Proc): void {
    if ((p.flags & F_BUSY) !== 0) {
      p.flags &= ~F_BUSY;
      this.busy--;
    }
  }

  #initDone(p: Proc, h: unknown): void {
    this.clearBusy(p);
    if ((p.flags & F_DEAD) !== 0) {
      this.host.checkIdle();
      return;
    }
    if (typeof h !== 'function') {
      this.host.crash(p, new HandlerReturnedError(String(p.self), h));
      return;
    }
    p.handler = h as Handler<unknown>;
    p.flags &= ~F_INIT;
    this.#afterAsync(p);
  }

  #asyncDone(p: Proc, env: Envelope | undefined): void {
    this.clearBusy(p);
    if ((p.flags & F_DEAD) !== 0) {
      this.host.checkIdle(); // a zombie's result is discarded; its message was settled at its death
      return;
    }
    if (env !== undefined) this.mail.settleInflight(p, 'handled');
    this.#afterAsync(p);
  }

  #asyncFailed(p: Proc, env: Envelope | undefined, e: unknown): void {
    this.clearBusy(p);
    if ((p.flags & F_DEAD) !== 0) {
      this.host.checkIdle(); // a zombie's late rejection is swallowed (ctx.exit's unwinding value too)
      return;
    }
    if (env !== undefined) this.mail.settleInflight(p, 'crashed', e);
    this.host.crash(p, toError(e));
  }

  #afterAsync(p: Proc): void {
    this.mail.checkShort(p);
    if (p.size > 0) {
      if ((p.flags & NO_WAKE) === 0) this.wake(p);
      return;
    }
    if (p.buf.length > SHRINK_ABOVE) shrink(p);
    this.host.checkIdle();
  }
}

/**
 * A run-queue ring of `n` slots, never filled: an unwritten slot reads as undefined, and a burst's
 * growth copies only what is queued (filling 262,144 slots to grow to 131,072 cost as much as the
 * copies). One `null` written at once gives it the element kind of a queue of objects from the
 * start: a ring made of small-integer holes would change kind at its first push, and the send path
 * would see two kinds (measured: +1% instructions per message in a ping-pong).
 */
function rqArray(n: number): (Proc | null | undefined)[] {
  const ring = new Array<Proc | null | undefined>(n);
  ring[0] = null;
  return ring;
}

type ThenFn = (this: unknown, onFulfilled: (value: unknown) => void, onRejected: (reason: unknown) => void) => unknown;

function noop(): void {}

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
