import { checkKeys, IdleTimeoutError, InvalidArgumentError, readOption } from '../../errors.js';
import type { TelemetryBus } from '../../telemetry/Telemetry.js';
import { type Clock, monotonicClock } from '../Clock.js';
import { Cause, type DeathWatch } from './DeathWatch.js';
import { F_BUSY, F_DEAD, F_RUNNING, F_SCHEDULED, F_TOP, type Proc } from './Proc.js';
import type { ProcTable } from './ProcTable.js';
import type { Scheduler } from './Scheduler.js';
import { MAX_HOST_DELAY } from './TimerHeap.js';

/** What an idle waiter waits for: no runnable process; and no service I/O; and no busy handler either. */
const Quiet = { Runnable: 0, Io: 1, All: 2 } as const;
type Quiet = (typeof Quiet)[keyof typeof Quiet];

interface IdleWaiter {
  readonly until: Quiet;
  readonly resolve: () => void;
}

/** @internal What the lifecycle needs of the node. */
export interface LifecycleHost {
  readonly name: string;
  readonly telemetry: TelemetryBus;
  log(level: 'info' | 'warn' | 'error', message: string, detail?: unknown): void;
  onProcExit(p: Proc, fn: () => void): (() => void) | undefined;
  /** The last step of a shutdown: the node's timers stop, its clock and creation are released. */
  released(): void;
}

/**
 * @internal A node's life: idle waiters (`idle()`, `settle()`), service I/O in flight, the work the
 * layers above settle at shutdown, and the shutdown sequence itself.
 */
export class Lifecycle {
  readonly #host: LifecycleHost;
  readonly #procs: ProcTable;
  readonly #sched: Scheduler;
  readonly #deaths: DeathWatch;
  /** Pending-call settlers and other work the layers above must finish when the node stops. */
  readonly #shutdownHooks = new Set<() => unknown>();
  /** The shutdown hooks still to run, while they run (the last registered at the end); a hook registered then is pushed onto it. */
  #hookStack: (() => unknown)[] | undefined;
  /** What the layers above give up at once when a shutdown starts (a manual dead letter retry). */
  readonly #stoppingHooks = new Set<() => void>();
  readonly #waiters = new Set<IdleWaiter>();
  /** How many idle waiters there are (a plain field: a death reads it before asking for an idle check). */
  waiting = 0;
  #idleCheck = false;
  #io = 0;
  #shutdown: Promise<void> | undefined = undefined;
  state: 'running' | 'stopping' | 'stopped' = 'running';
  /** Set when shutdown starts killing what is left: no spawn after it. */
  spawnClosed = false;

  /** A virtual clock (a SimulatedClock) the guards of idle() and shutdown() run on; undefined: real time. */
  readonly #virtual: Clock | undefined;

  constructor(host: LifecycleHost, procs: ProcTable, sched: Scheduler, deaths: DeathWatch, virtual?: Clock) {
    this.#host = host;
    this.#procs = procs;
    this.#sched = sched;
    this.#deaths = deaths;
    this.#virtual = virtual;
  }

  /**
   * A guard of `ms`: on real time; under a virtual clock on that clock's time, so that a simulated
   * shutdown or idle() runs out at the same virtual time at every run (a real-time guard let the
   * virtual clock race on for as long as the real time lasted: another run each time). A real-time
   * guard of the same length stays behind it, for a node that never goes idle (the virtual clock then
   * never moves): nothing wedges.
   */
  guard(fn: () => void, ms: number): { clear(): void } {
    let done = false;
    const once = (): void => {
      if (done) return;
      done = true;
      clear();
      fn();
    };
    const real = realTimeout(once, ms);
    const clock = this.#virtual;
    let handle: unknown;
    let armed = false;
    if (clock !== undefined) {
      try {
        handle = clock.setTimer(ms, once);
        armed = true;
      } catch {
        // a deadline past the clock's largest finite time: the real-time guard alone
      }
    }
    const clear = (): void => {
      real.clear();
      if (armed) {
        armed = false;
        clock!.clearTimer(handle);
      }
    };
    return {
      clear: () => {
        done = true;
        clear();
      },
    };
  }

  /** Service I/O operations in flight. */
  get io(): number {
    return this.#io;
  }

  /** Counts a piece of service I/O as in flight until it settles (`idle()` waits for it). */
  trackIo<T>(work: Promise<T>): Promise<T> {
    this.#io++;
    return work.finally(() => {
      this.#io--;
      this.checkIdle();
    });
  }

  #quiet(until: Quiet): boolean {
    if (this.#sched.active) return false;
    return until === Quiet.Runnable || (this.#io === 0 && (until === Quiet.Io || this.#sched.busy === 0));
  }

  /** Tells the idle waiters whose condition holds, after a `setImmediate` (checked again then). */
  checkIdle(): void {
    if (this.#waiters.size === 0 || this.#idleCheck || !this.#quiet(Quiet.Runnable)) return;
    this.#idleCheck = true;
    setImmediate(() => {
      this.#idleCheck = false;
      for (const w of this.#waiters) {
        if (this.#quiet(w.until)) {
          this.#waiters.delete(w);
          this.waiting = this.#waiters.size;
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
    this.waiting = this.#waiters.size;
    this.checkIdle();
    return {
      promise,
      cancel: () => {
        this.#waiters.delete(waiter);
        this.waiting = this.#waiters.size;
      },
    };
  }

  idle(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = timeoutOption(options);
    if (timeoutMs !== undefined) validateDelay(timeoutMs, 'timeoutMs');
    const w = this.#wait(Quiet.All);
    if (timeoutMs === undefined) return w.promise;
    return new Promise<void>((resolve, reject) => {
      // a failure guard in real time: under a TestClock the node's clock only moves when told to
      const guard = this.guard(() => {
        w.cancel();
        const busy = this.#procs.values().filter((p) => (p.flags & (F_BUSY | F_SCHEDULED | F_RUNNING)) !== 0);
        const detail = this.#io > 0 ? `${this.#io} service I/O operation(s) in flight` : 'the run queue did not empty';
        reject(new IdleTimeoutError(this.#host.name, timeoutMs, busy.map((p) => String(p.self)), detail));
      }, timeoutMs);
      w.promise.then(() => {
        guard.clear();
        resolve();
      }, reject);
    });
  }

  /** Resolves when no process is runnable (busy handlers are not waited for); with `io`, also when no service I/O is in flight. */
  settle(options?: { io?: boolean }): Promise<void> {
    return this.#wait(options?.io === true ? Quiet.Io : Quiet.Runnable).promise;
  }

  /** Registers work the layers above must settle when the node stops; returns its remover. */
  onShutdown(fn: () => unknown): () => void {
    this.#shutdownHooks.add(fn);
    this.#hookStack?.push(fn); // registered while the hooks run: it runs next
    return () => {
      this.#shutdownHooks.delete(fn);
    };
  }

  /**
   * Registers `fn`, run once, synchronously, when a shutdown starts (before any process is told to
   * stop), for work that must end then rather than wait for its processes; returns its remover.
   */
  onStopping(fn: () => void): () => void {
    this.#stoppingHooks.add(fn);
    return () => {
      this.#stoppingHooks.delete(fn);
    };
  }

  shutdown(options: { timeoutMs?: number } = {}): Promise<void> {
    const timeoutMs = timeoutOption(options) ?? 5000;
    validateDelay(timeoutMs, 'timeoutMs');
    if (this.#shutdown === undefined) {
      // the promise is the node's before the stop begins: a shutdown() called again from within it
      // (a hook, a telemetry handler, in the very turn when no process was left to wait for) gets it
      // rather than a second stop
      let stop!: (stopped: Promise<void>) => void;
      this.#shutdown = new Promise<void>((resolve) => (stop = resolve));
      stop(this.#stop(timeoutMs));
    }
    return this.#shutdown;
  }

  async #stop(timeoutMs: number): Promise<void> {
    this.state = 'stopping';
    const started = monotonicClock();
    const stopping = [...this.#stoppingHooks];
    this.#stoppingHooks.clear();
    for (const hook of stopping) {
      try {
        hook();
      } catch (e) {
        this.#host.log('error', `a hook run as node ${this.#host.name}'s shutdown started threw`, e);
      }
    }
    let timedOut = false;
    let onTimeout!: () => void;
    const timeout = new Promise<void>((resolve) => {
      onTimeout = resolve;
    });
    // a real-time guard, like idle()'s: a node under a TestClock must still be able to stop (on a
    // virtual clock, on its time: see guard)
    const guard = this.guard(() => {
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
      this.#deaths.exitSignal(p.self, 'node', 'shutdown');
      await Promise.race([dead, timeout]);
    }
    // everything not yet told gets its 'shutdown' too, even after a stubborn process used up the time
    const rest = this.#procs.values().reverse().filter((p) => !told.has(p));
    if (rest.length > 0) {
      const deaths = rest.map((p) => this.#deathOf(p));
      for (const p of rest) this.#deaths.queueSignal(p, 'node', 'shutdown');
      this.#deaths.flushSignals();
      await Promise.race([Promise.all(deaths), timeout, timedOut ? new Promise((r) => setImmediate(r)) : timeout]);
    }
    guard.clear();
    this.spawnClosed = true; // from here on nothing spawns, not even a death hook
    let killed = 0;
    for (let left = this.#procs.values(); left.length > 0; left = this.#procs.values()) {
      for (const p of left) {
        if ((p.flags & F_DEAD) !== 0) continue;
        killed++;
        this.#deaths.die(p, 'killed', Cause.Signal);
      }
    }
    // the layers above settle what they had pending, the last registered first, each in turn, as
    // OTP stops applications in the reverse of their start, waiting for each: a hook's promise (the
    // cluster's goodbye flushed to its transport, a send across nodes taken back out of a stream) is
    // awaited before the hooks registered before it run, so that a send still waiting can hand its
    // message to the dead letter queue before that queue (registered earlier) closes. All of it
    // within the shutdown's time again, on real time even on a virtual clock (a hook's work is
    // outside the clock); once that is spent, the hooks left are still run, and not waited for.
    let spent = false;
    let done!: () => void;
    const bound = new Promise<void>((resolve) => (done = resolve));
    const hookGuard = realTimeout(() => {
      spent = true;
      done();
    }, timeoutMs);
    // a stack: a hook removed meanwhile (by one run before it) does not run, and one registered
    // meanwhile is the last registered, so it runs next
    const stack = [...this.#shutdownHooks];
    this.#hookStack = stack;
    while (stack.length > 0) {
      const hook = stack.pop()!;
      if (!this.#shutdownHooks.delete(hook)) continue;
      let settled: Promise<unknown> | undefined;
      try {
        const r = hook();
        // inside the try: a promise whose then cannot be read throws here, and is a hook that threw
        if (r instanceof Promise) settled = r.catch((e: unknown) => this.#host.log('error', `a shutdown hook of node ${this.#host.name} failed`, e));
      } catch (e) {
        this.#host.log('error', `a shutdown hook of node ${this.#host.name} threw`, e);
        continue;
      }
      if (settled !== undefined && !spent) await Promise.race([settled, bound]);
    }
    this.#hookStack = undefined;
    hookGuard.clear();
    this.state = 'stopped';
    this.#host.released();
    this.#host.telemetry.execute('keel.node.shutdown', { durationMs: monotonicClock() - started, killed }, { node: this.#host.name });
    for (const w of this.#waiters) w.resolve();
    this.#waiters.clear();
    this.waiting = 0;
  }

  #deathOf(p: Proc): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#host.onProcExit(p, () => resolve()) === undefined) resolve();
    });
  }
}

/**
 * The options of `idle` and `shutdown`: an object whose one option is `timeoutMs`. A typo is refused,
 * not ignored, and an object that throws when read is a typed error, as for every other call.
 */
function timeoutOption(options: unknown): unknown {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { timeoutMs }', options);
  checkKeys(options, ['timeoutMs'], 'options');
  return readOption(options, 'timeoutMs', 'options'); // read once: what is checked is what is used
}

/**
 * A real-time guard of `ms`, any finite delay `validateDelay` accepts: one longer than a host timer
 * takes is waited for in steps, never cut to the 1 ms a host timer overflows to.
 */
function realTimeout(fn: () => void, ms: number): { clear(): void } {
  let handle: ReturnType<typeof setTimeout>;
  const arm = (left: number): void => {
    handle = left > MAX_HOST_DELAY ? setTimeout(() => arm(left - MAX_HOST_DELAY), MAX_HOST_DELAY) : setTimeout(fn, left);
  };
  arm(ms);
  return { clear: () => clearTimeout(handle) };
}

/** @internal Throws a typed error unless `ms` is a finite number of milliseconds >= 0. */
export function validateDelay(ms: unknown, argument = 'ms'): asserts ms is number {
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0) {
    throw new InvalidArgumentError(argument, 'a finite number of milliseconds >= 0', ms);
  }
}
