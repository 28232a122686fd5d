/**
 * The processes table: one row per process (mailbox, messages handled, the message rate and busy
 * share since the previous sample, age, kind), sorted and cut to the top N on the server. The rate
 * and busy share come from the difference between two samples; handler time is measured only while
 * someone watches the processes page (an event stream viewing it, or a `GET /api/processes` in the
 * last {@link MEASURE_LEASE_MS}).
 */
import { exitReportOf, type Kernel, type Proc } from '../runtime/kernel.js';
import { Pid } from '../runtime/Pid.js';
import type { Node, ProcessInfo } from '../runtime/types.js';
import { nameText } from './http.js';

/** The keys `GET /api/processes` sorts by: largest first, except `age` (oldest first). */
export const SORT_KEYS = ['mailbox', 'handled', 'age', 'rate', 'busy'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** The values of `GET /api/processes?status=`. */
export const STATUSES = ['initializing', 'running', 'busy', 'runnable', 'waiting'] as const;
export type ProcessStatus = ProcessInfo['status'];

/** How long a `GET /api/processes` keeps handler time measured (an open page polls well within it). */
export const MEASURE_LEASE_MS = 30_000;
/** Two samples closer than this: the newer one is measured against the older, which stays the reference. */
const MIN_INTERVAL_MS = 100;

/** One row of the processes table. */
export interface ProcessRow {
  readonly pid: string;
  readonly id: number;
  readonly name: string | null;
  readonly status: ProcessStatus;
  readonly mailbox: number;
  readonly handled: number;
  readonly longMailbox: boolean;
  /** Messages handled per second since the previous sample (the timers' time); null for a process it did not see, or the first sample. */
  readonly rate: number | null;
  /** Ms since the process was spawned (the timers' time); null when unknown (see `ageExact`). */
  readonly ageMs: number | null;
  /** False when the process is older than the observer: `ageMs` is then how long the observer has known it (a lower bound). */
  readonly ageExact: boolean;
  /** Percent of the time since the previous sample spent in its handler; null unless measured. */
  readonly busyPercent: number | null;
  /** `'gen_server'`, `'supervisor'`, `'dynamic_supervisor'`, `'statem'`, `'value_agent'`, or `'process'`. */
  readonly kind: string;
}

export interface ProcessPage {
  /** Processes matching the filters (all of them, not only those returned). */
  readonly total: number;
  readonly sort: SortKey;
  readonly limit: number;
  /** True while handler time is measured (`busyPercent` then has values from the second sample on). */
  readonly measuring: boolean;
  readonly processes: ProcessRow[];
}

/** What a behaviour's process is, by its exit report; `'process'` for a plain one. */
export function kindOf(p: Proc): string {
  const b = exitReportOf(p)?.behaviour;
  return b === undefined ? 'process' : b === 'state_machine' ? 'statem' : b;
}

interface Sample {
  /** The timers' time (rates). */
  readonly at: number;
  /** Scheduler clock (handler times). */
  readonly schedAt: number;
  readonly handled: Map<number, number>;
  readonly busy: Map<number, number> | undefined;
  /** Which run of measuring the handler times belong to (times start again from 0 with each). */
  readonly epoch: number;
}

/** Takes the samples behind the rates and busy shares; switches handler-time measuring on while watched. */
export class ProcessSampler {
  readonly #node: Node;
  readonly #kernel: Kernel;
  #prev: Sample | undefined;
  #viewers = 0;
  #lease: NodeJS.Timeout | undefined;
  #stopMeasuring: (() => void) | undefined;
  #epoch = 0;

  constructor(node: Node, kernel: Kernel) {
    this.#node = node;
    this.#kernel = kernel;
  }

  get measuring(): boolean {
    return this.#stopMeasuring !== undefined;
  }

  /** The number of event streams viewing the processes page changed. */
  viewers(n: number): void {
    this.#viewers = n;
    this.#update();
  }

  /** A `GET /api/processes`: measure for {@link MEASURE_LEASE_MS} from now. */
  touch(): void {
    if (this.#lease !== undefined) clearTimeout(this.#lease);
    this.#lease = setTimeout(() => {
      this.#lease = undefined;
      this.#update();
    }, MEASURE_LEASE_MS);
    this.#lease.unref();
    this.#update();
  }

  close(): void {
    if (this.#lease !== undefined) clearTimeout(this.#lease);
    this.#lease = undefined;
    this.#viewers = 0;
    this.#update();
  }

  #update(): void {
    const on = this.#viewers > 0 || this.#lease !== undefined;
    if (on && this.#stopMeasuring === undefined) {
      this.#stopMeasuring = this.#kernel.measureHandlerTime();
      this.#epoch++;
    }
    else if (!on && this.#stopMeasuring !== undefined) {
      this.#stopMeasuring();
      this.#stopMeasuring = undefined;
    }
  }

  /**
   * The processes matching `filter` (a case-insensitive piece of the pid text or the name) and
   * `status`, sorted by `sort`, the first `limit`, with the total. One pass over the processes.
   */
  page(sort: SortKey, limit: number, filter: string | undefined, status: ProcessStatus | undefined): ProcessPage {
    const node = this.#node;
    const kernel = this.#kernel;
    const needle = filter?.toLowerCase();
    const at = kernel.timerNow(); // rates and ages count on the timers' time: a wall clock stepped moves neither
    const measuring = this.measuring;
    const schedAt = kernel.schedulerNow();
    const prev = this.#prev;
    const dt = prev === undefined ? 0 : at - prev.at;
    const dSched = prev === undefined ? 0 : schedAt - prev.schedAt;
    const handled = new Map<number, number>();
    const busy = measuring ? new Map<number, number>() : undefined;
    const entries: Entry[] = [];
    for (const pid of node.processes()) {
      const p = kernel.resolve(pid);
      const info = p === undefined ? undefined : node.info(pid);
      if (p === undefined || info === undefined) continue;
      const id = pid.id;
      handled.set(id, info.messagesHandled);
      const time = busy === undefined ? undefined : kernel.handlerTimeOf(p);
      if (time !== undefined) busy!.set(id, time);
      if (status !== undefined && info.status !== status) continue;
      if (needle !== undefined && !Pid.format(pid).toLowerCase().includes(needle) && !(info.name?.toLowerCase().includes(needle) ?? false)) continue;
      const before = prev?.handled.get(id);
      const rate = before === undefined || dt <= 0 ? null : round1(((info.messagesHandled - before) * 1000) / dt);
      const busyBefore = prev?.epoch === this.#epoch ? prev.busy?.get(id) : undefined;
      const busyPercent = time === undefined || busyBefore === undefined || dSched <= 0 ? null : clampPercent(((time - busyBefore) * 100) / dSched);
      const key = sort === 'mailbox' ? info.mailboxLength : sort === 'handled' ? info.messagesHandled : sort === 'rate' ? rate : sort === 'busy' ? busyPercent : -id;
      entries.push({ id, key, p, info, rate, busyPercent });
    }
    // a sample right after another is measured against the older one, which stays the reference
    if (prev === undefined || dt >= MIN_INTERVAL_MS || (busy !== undefined && (prev.busy === undefined || prev.epoch !== this.#epoch))) {
      this.#prev = { at, schedAt, handled, busy, epoch: this.#epoch };
    }
    const rows = topN(entries, limit, byKey).map((e): ProcessRow => {
      const born = kernel.spawnedAt(e.p);
      return {
        pid: Pid.format(e.info.pid),
        id: e.id,
        name: nameText(e.info.name),
        status: e.info.status,
        mailbox: e.info.mailboxLength,
        handled: e.info.messagesHandled,
        longMailbox: e.info.longMailbox,
        rate: e.rate,
        ageMs: born === undefined ? null : Math.max(0, at - born.at),
        ageExact: born?.exact ?? false,
        busyPercent: e.busyPercent,
        kind: kindOf(e.p),
      };
    });
    return { total: entries.length, sort, limit, measuring, processes: rows };
  }
}

/** A matching process before it becomes a row: its sort key (largest first; null last). */
interface Entry {
  readonly id: number;
  readonly key: number | null;
  readonly p: Proc;
  readonly info: ProcessInfo;
  readonly rate: number | null;
  readonly busyPercent: number | null;
}

/** Largest key first, nulls last, then oldest first (`age` sorts by the negated id: the oldest first). */
function byKey(a: Entry, b: Entry): number {
  const x = a.key;
  const y = b.key;
  if (x === y) return a.id - b.id;
  if (x === null) return 1;
  if (y === null) return -1;
  return y - x;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

function clampPercent(n: number): number {
  return round1(Math.min(100, Math.max(0, n)));
}

/** The first `n` of `rows` in `by` order: a full sort when n is a large part of them, else a bounded selection. */
export function topN<T>(rows: T[], n: number, by: (a: T, b: T) => number): T[] {
  if (n >= rows.length / 8) return rows.sort(by).slice(0, n);
  const top: T[] = [];
  for (const row of rows) {
    if (top.length === n && by(row, top[n - 1]!) >= 0) continue;
    // insert in order (n is small here)
    let i = top.length === n ? n - 1 : top.length;
    if (top.length === n) top.pop();
    while (i > 0 && by(row, top[i - 1]!) < 0) i--;
    top.splice(i, 0, row);
  }
  return top;
}
