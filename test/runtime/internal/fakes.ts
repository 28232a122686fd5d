// Hand-made hosts and records for the unit tests of the kernel's parts (src/runtime/internal/): a
// log that records, a real TelemetryBus with a capturing handler, process records on no node, the
// mailbox ring read and taken from as the scheduler does, and a small kernel of real parts (table,
// mailboxes, scheduler, death watch, lifecycle) wired as Node.ts wires them, over fake hosts.
import type { Clock } from '../../../src/runtime/Clock.js';
import type { EnvelopeListener } from '../../../src/runtime/internal/Envelope.js';
import { Cause, DeathWatch, type DeathWatchHost } from '../../../src/runtime/internal/DeathWatch.js';
import { Lifecycle, type LifecycleHost } from '../../../src/runtime/internal/Lifecycle.js';
import { Mailboxes, type MailboxHost, type Waker } from '../../../src/runtime/internal/Mailbox.js';
import { F_SCHEDULED, Proc, type ProcHost } from '../../../src/runtime/internal/Proc.js';
import { ProcTable } from '../../../src/runtime/internal/ProcTable.js';
import { Scheduler, type SchedulerHost, type SchedulerSettings } from '../../../src/runtime/internal/Scheduler.js';
import { TimerHeap } from '../../../src/runtime/internal/TimerHeap.js';
import type { ExitReason } from '../../../src/runtime/messages.js';
import { NameTable } from '../../../src/runtime/NameRegistry.js';
import { liveProc, type Pid, PidImpl, setProc } from '../../../src/runtime/Pid.js';
import { GroupTable } from '../../../src/runtime/ProcessGroups.js';
import type { Init } from '../../../src/runtime/types.js';
import { type Measurements, type Metadata, TelemetryBus } from '../../../src/telemetry/Telemetry.js';

/** The node name and creation of every record made here. */
export const NODE = 'unit';
export const CREATION = 7;

export type Level = 'info' | 'warn' | 'error';

export interface LogEntry {
  readonly level: Level;
  readonly message: string;
  readonly detail: unknown;
}

/** A host's `log`, recording every call. */
export function recordingLog(): { entries: LogEntry[]; log(level: Level, message: string, detail?: unknown): void } {
  const entries: LogEntry[] = [];
  return {
    entries,
    log(level, message, detail) {
      entries.push({ level, message, detail });
    },
  };
}

export interface Event {
  readonly event: string;
  readonly measurements: Measurements;
  readonly metadata: Metadata;
}

/**
 * A real telemetry bus; with `events`, a handler attached to them records what is emitted. (An
 * attached handler changes what the parts do: the scheduler times turns only while someone listens
 * to `keel.process.long_schedule`, death watch builds `keel.process.exited` only then.)
 */
export function telemetry(events?: readonly string[]): { bus: TelemetryBus; events: Event[]; reports: string[] } {
  const reports: string[] = [];
  const bus = new TelemetryBus({ monotonicClock: () => 0, report: (message) => reports.push(message) });
  const seen: Event[] = [];
  if (events !== undefined) bus.attach('unit-capture', events, (event, measurements, metadata) => seen.push({ event, measurements, metadata }));
  return { bus, events: seen, reports };
}

/** A process record's host: the parts under test never call it (it serves a context's user-facing operations). */
const recordHost = {} as ProcHost;

/** A process record on no node, its pid resolving to it (as a spawn leaves it). */
export function makeProc(id: number, flags = 0, init: Init<any> = () => () => undefined): Proc {
  const pid = new PidImpl(NODE, CREATION, id);
  const p = new Proc(recordHost, pid, init, flags);
  setProc(pid, p);
  return p;
}

/** The messages queued in a process's ring, oldest first. */
export function queued(p: Proc): unknown[] {
  const out: unknown[] = [];
  for (let i = 0; i < p.size; i++) out.push(p.buf[(p.head + i) & (p.buf.length - 1)]);
  return out;
}

/** Takes the oldest message out of a process's ring, as the scheduler's turn does. */
export function take(p: Proc): unknown {
  if (p.size === 0) throw new Error('take: the mailbox is empty');
  const m = p.buf[p.head];
  p.buf[p.head] = undefined;
  p.head = (p.head + 1) & (p.buf.length - 1);
  p.size--;
  return m;
}

/** A waker that records whom it woke and marks them scheduled, as the scheduler's `wake` does; it runs nothing. */
export function recordingWaker(): Waker & { woken: Proc[] } {
  const woken: Proc[] = [];
  return {
    woken,
    wake(p) {
      woken.push(p);
      p.flags |= F_SCHEDULED;
    },
  };
}

/** A clock for a timer heap that never fires (the parts under test only schedule and cancel). */
export function inertClock(now = 1_000): Clock & { armed: number } {
  const c = {
    armed: 0,
    now: () => now,
    setTimer: () => {
      c.armed++;
      return { inert: true };
    },
    clearTimer: () => {
      c.armed--;
    },
  };
  return c;
}

export interface Kernel {
  readonly log: ReturnType<typeof recordingLog>;
  readonly bus: TelemetryBus;
  readonly events: Event[];
  readonly procs: ProcTable;
  readonly registry: NameTable<Proc>;
  readonly groups: GroupTable<Proc>;
  readonly timers: TimerHeap;
  readonly mail: Mailboxes;
  readonly sched: Scheduler;
  readonly deaths: DeathWatch;
  readonly life: Lifecycle;
  readonly waker: ReturnType<typeof recordingWaker>;
  readonly placeholder: PidImpl;
  /** How often the lifecycle's host was told the node is released. */
  readonly released: number;
  /** How often death watch asked for an idle check. */
  readonly idleChecks: number;
  resolve(pid: Pid): Proc | undefined;
  /** A live process in the table (ids count up from 1). */
  spawn(flags?: number, init?: Init<any>): Proc;
}

/**
 * The kernel's parts, real, wired as Node.ts wires them, over hand-made hosts. The mailboxes wake
 * through a recording waker, so that no process runs unless a test runs the scheduler itself.
 */
export function kernel(options: { events?: readonly string[]; settings?: Partial<SchedulerSettings> } = {}): Kernel {
  const log = recordingLog();
  const { bus, events } = telemetry(options.events);
  const procs = new ProcTable();
  const resolve = (pid: Pid): Proc | undefined => {
    const direct = liveProc<Proc>(pid);
    if (direct !== undefined) return direct;
    if (pid.node !== NODE || pid.creation !== CREATION) return undefined;
    return procs.get(pid.id);
  };
  const registry = new NameTable<Proc>(resolve);
  const groups = new GroupTable<Proc>(resolve);
  const timers = new TimerHeap(inertClock(), (e) => log.log('error', 'a timer threw', e));
  const mailHost: MailboxHost = { telemetry: bus, stopping: false, log: log.log };
  const mail = new Mailboxes(mailHost, [10_000, 1_000]);
  const schedHost: SchedulerHost = {
    name: NODE,
    telemetry: bus,
    clock: { now: () => 1_000 },
    timerNow: () => 1_000,
    log: log.log,
    crash: (p: Proc, reason: ExitReason) => deaths.die(p, reason, Cause.Crash),
    checkIdle: () => life.checkIdle(),
  };
  const sched = new Scheduler(schedHost, mail, { budget: 64, sliceMs: 5, longScheduleMs: 50, deterministic: true, now: () => 0, ...options.settings });
  const waker = recordingWaker();
  mail.waker = waker;
  const placeholder = new PidImpl(NODE, CREATION, 0);
  const deathHost: DeathWatchHost = {
    name: NODE,
    telemetry: bus,
    registry,
    groups,
    log: log.log,
    resolve,
    zombieCall: (p, operation) => bus.execute('keel.process.zombie_call', {}, { pid: p.self, operation }),
  };
  const deaths = new DeathWatch(deathHost, procs, mail, sched, timers, placeholder);
  const counts = { released: 0, idleChecks: 0 };
  const lifeHost: LifecycleHost = {
    name: NODE,
    telemetry: bus,
    log: log.log,
    onProcExit: (p, fn) => deaths.onExit(p, fn),
    released: () => {
      counts.released++;
    },
  };
  const life = new Lifecycle(lifeHost, procs, sched, deaths);
  sched.idle = life;
  deaths.idle = {
    // as if someone waited for idle: every death asks for the idle check, which the counts record
    // (the kill path's skip when nobody waits has a test of its own)
    waiting: 1,
    checkIdle: () => {
      counts.idleChecks++;
      life.checkIdle();
    },
  };
  let nextId = 0;
  const k: Kernel = {
    log,
    bus,
    events,
    procs,
    registry,
    groups,
    timers,
    mail,
    sched,
    deaths,
    life,
    waker,
    placeholder,
    get released() {
      return counts.released;
    },
    get idleChecks() {
      return counts.idleChecks;
    },
    resolve,
    spawn(flags = 0, init) {
      const p = makeProc(++nextId, flags, init);
      procs.set(p.self.id, p);
      return p;
    },
  };
  return k;
}

/** Waits for the next turn of the event loop (a fact: the turn, not a length of time). */
export function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** An envelope listener that records how each envelope ended. */
export function listener(): EnvelopeListener & { calls: unknown[][] } {
  const calls: unknown[][] = [];
  return {
    calls,
    handled: () => calls.push(['handled']),
    failed: (reason, error) => calls.push(['failed', reason, error]),
  };
}
