/**
 * What the observer reads: built from the public `Node` API, the kernel's one door
 * (`src/runtime/kernel.ts`: `internals()` for the run queue) and the public OTP functions.
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { isKeelError } from '../errors.js';
import { Supervisor, type ChildInfo } from '../otp/Supervisor.js';
import { kernelOf } from '../runtime/kernel.js';
import { Pid, type Target } from '../runtime/Pid.js';
import type { DeadLetter, DeadLetterFilter, MonitorEntry } from '../runtime/serviceSlots.js';
import type { Node, ProcessInfo } from '../runtime/types.js';
import { ApiError } from './http.js';

/** The keys `GET /api/processes` sorts by: mailbox length and messages handled (largest first), age (oldest first). */
export const SORT_KEYS = ['mailbox', 'handled', 'age'] as const;
export type SortKey = (typeof SORT_KEYS)[number];

/** One row of the processes table. */
export interface ProcessRow {
  readonly pid: string;
  readonly id: number;
  readonly name: string | null;
  readonly status: ProcessInfo['status'];
  readonly mailbox: number;
  readonly handled: number;
  readonly longMailbox: boolean;
}

export interface ProcessPage {
  /** Processes matching the filter (all of them, not only those returned). */
  readonly total: number;
  readonly sort: SortKey;
  readonly limit: number;
  readonly processes: ProcessRow[];
}

export interface Overview {
  readonly node: string;
  readonly at: number;
  readonly uptimeMs: number;
  readonly processes: number;
  readonly runQueue: number;
  readonly timers: number;
  /** Mean and max of the event-loop delay since the last sample, while a client watches; null otherwise. */
  readonly eventLoopLagMs: { readonly mean: number; readonly max: number; readonly p99: number } | null;
  readonly heap: { readonly used: number; readonly total: number; readonly rss: number };
  /** Messages handled per second by the live processes since the previous overview (null for the first). */
  readonly messageRate: number | null;
  readonly deadLetters: { readonly pending: number; readonly parked: number } | null;
  readonly suspectedLeaks: number | null;
}

/** Reads the node's figures; holds the previous sample (for the message rate) and the lag histogram while enabled. */
export class Sampler {
  readonly #node: Node;
  readonly #startedAt = Date.now();
  #last: { at: number; handled: number } | undefined;
  #lag: IntervalHistogram | undefined;

  constructor(node: Node) {
    this.#node = node;
  }

  /** Starts measuring the event-loop delay (while a client watches). */
  watchLag(on: boolean): void {
    if (on && this.#lag === undefined) {
      this.#lag = monitorEventLoopDelay({ resolution: 20 });
      this.#lag.enable();
    } else if (!on && this.#lag !== undefined) {
      this.#lag.disable();
      this.#lag = undefined;
    }
  }

  async overview(): Promise<Overview> {
    const node = this.#node;
    const internals = kernelOf(node, 'node').internals();
    let handled = 0;
    for (const pid of node.processes()) handled += node.info(pid)?.messagesHandled ?? 0;
    const at = Date.now();
    const last = this.#last;
    this.#last = { at, handled };
    const messageRate = last === undefined || at <= last.at ? null : Math.max(0, Math.round(((handled - last.handled) * 1000) / (at - last.at)));
    const lag = this.#lag;
    const eventLoopLagMs =
      lag === undefined || lag.count === 0 ? null : { mean: round(lag.mean / 1e6), max: round(lag.max / 1e6), p99: round(lag.percentile(99) / 1e6) };
    lag?.reset();
    const mem = process.memoryUsage();
    return {
      node: node.name,
      at,
      uptimeMs: at - this.#startedAt,
      processes: internals.processes,
      runQueue: internals.runQueue,
      timers: internals.timers,
      eventLoopLagMs,
      heap: { used: mem.heapUsed, total: mem.heapTotal, rss: mem.rss },
      messageRate,
      deadLetters: await deadLetterCounts(node),
      suspectedLeaks: node.monitors.available ? node.monitors.findLeaks().length : null,
    };
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

async function deadLetterCounts(node: Node): Promise<Overview['deadLetters']> {
  if (!node.deadLetters.available) return null;
  try {
    const s = await node.deadLetters.stats();
    return { pending: s.pending, parked: s.parked };
  } catch (e) {
    if (isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')) return null;
    throw e;
  }
}

/**
 * The processes matching `filter` (a case-insensitive piece of the pid text or the name), sorted
 * by `sort`, the first `limit` of them, with the total. One pass over the processes and one sort
 * of the matching rows' keys.
 */
export function processPage(node: Node, sort: SortKey, limit: number, filter: string | undefined): ProcessPage {
  const needle = filter?.toLowerCase();
  const rows: ProcessRow[] = [];
  for (const pid of node.processes()) {
    const info = node.info(pid);
    if (info === undefined) continue;
    const text = Pid.format(pid);
    if (needle !== undefined && !text.toLowerCase().includes(needle) && !(info.name?.toLowerCase().includes(needle) ?? false)) continue;
    rows.push({ pid: text, id: pid.id, name: info.name ?? null, status: info.status, mailbox: info.mailboxLength, handled: info.messagesHandled, longMailbox: info.longMailbox });
  }
  const total = rows.length;
  const by =
    sort === 'mailbox'
      ? (a: ProcessRow, b: ProcessRow) => b.mailbox - a.mailbox || a.id - b.id
      : sort === 'handled'
        ? (a: ProcessRow, b: ProcessRow) => b.handled - a.handled || a.id - b.id
        : (a: ProcessRow, b: ProcessRow) => a.id - b.id;
  return { total, sort, limit, processes: topN(rows, limit, by) };
}

/** The first `n` of `rows` in `by` order: a full sort when n is a large part of them, else a bounded selection. */
function topN<T>(rows: T[], n: number, by: (a: T, b: T) => number): T[] {
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

/** A pid of this node from its text (`<node.id.creation>`); 400 for bad text. */
export function parsePid(text: unknown, field = 'pid'): Pid {
  if (typeof text !== 'string' || text.length > 300) throw new ApiError('bad_request', `\`${field}\` must be a pid formatted '<node.id.creation>'`, { field });
  try {
    return Pid.parse(text);
  } catch {
    throw new ApiError('bad_request', `\`${field}\` must be a pid formatted '<node.id.creation>'`, { field });
  }
}

/** A process's detail: what `node.info` tells, pids as text. */
export function processDetail(node: Node, pid: Pid): Record<string, unknown> {
  const info = node.info(pid);
  if (info === undefined) throw new ApiError('not_found', 'no live process of this node has this pid');
  return {
    pid: Pid.format(info.pid),
    name: info.name ?? null,
    status: info.status,
    mailbox: info.mailboxLength,
    handled: info.messagesHandled,
    links: info.links.map((p) => Pid.format(p)),
    monitors: info.monitors.map((r) => String(r)),
    monitoredBy: info.monitoredBy.map((p) => Pid.format(p)),
    trapExits: info.trapExits,
    timers: info.timers,
    longMailbox: info.longMailbox,
    // TODO(issue 16): state only for processes that opt in with a redactor: needs a kernel or
    // behaviour hook (a GenServer spec's `observe` redactor read through Sys), not there yet
    state: null,
  };
}

/** A supervisor and its children, recursively (children of type `supervisor` are walked too, `depth` levels). */
export interface TreeNode {
  readonly supervisor: string;
  readonly name: string | null;
  readonly children: readonly (Omit<ChildInfo, 'pid'> & { pid: string | null; tree?: TreeNode | { error: string } })[];
}

/** The tree under each of `roots` (supervisors the operator named, and Keel's own `keel.services` when it runs). */
export async function supervisionTrees(node: Node, roots: readonly Target[], depth = 8): Promise<(TreeNode | { root: string; error: string })[]> {
  const out: (TreeNode | { root: string; error: string })[] = [];
  for (const root of roots) {
    try {
      out.push(await walk(node, root, depth));
    } catch (e) {
      out.push({ root: typeof root === 'string' ? root : Pid.is(root) ? Pid.format(root) : String(root), error: isKeelError(e) ? e.code : 'failed' });
    }
  }
  return out;
}

async function walk(node: Node, sup: Target, depth: number): Promise<TreeNode> {
  const info = node.info(sup);
  if (info === undefined) throw new ApiError('not_found', 'no such supervisor');
  const children = await Supervisor.whichChildren(node, info.pid);
  const rows = [];
  for (const c of children) {
    const pid = c.pid === undefined ? null : c.pid === 'restarting' ? 'restarting' : Pid.format(c.pid);
    const row: Omit<ChildInfo, 'pid'> & { pid: string | null; tree?: TreeNode | { error: string } } = { ...c, pid };
    if (c.type === 'supervisor' && depth > 0 && c.pid !== undefined && c.pid !== 'restarting') {
      try {
        row.tree = await walk(node, c.pid, depth - 1);
      } catch (e) {
        row.tree = { error: isKeelError(e) ? e.code : 'failed' };
      }
    }
    rows.push(row);
  }
  return { supervisor: Pid.format(info.pid), name: info.name ?? null, children: rows };
}

/** A dead letter as the API shows it: the message, metadata and last error only when payloads are allowed. */
export function deadLetterRow(d: DeadLetter, payloads: boolean): Record<string, unknown> {
  const row: Record<string, unknown> = {
    id: d.id,
    recipient: d.recipient,
    reason: d.reason,
    attempts: d.attempts,
    firstFailedAt: d.firstFailedAt,
    lastAttemptAt: d.lastAttemptAt,
    nextRetryAt: d.nextRetryAt,
    status: d.status,
    undecodable: d.undecodable ?? null,
  };
  if (payloads) {
    row.message = d.message;
    row.metadata = d.metadata;
    row.lastError = d.lastError instanceof Error ? { name: d.lastError.name, message: d.lastError.message } : d.lastError;
  }
  return row;
}

/** A dead-letter filter from query parameters or a JSON body; 400 for anything malformed. */
export function deadLetterFilter(source: { get(key: string): unknown }): DeadLetterFilter {
  const filter: DeadLetterFilter = {};
  const status = source.get('status');
  if (status !== undefined && status !== null) {
    if (status !== 'pending' && status !== 'parked') throw new ApiError('bad_request', '`status` must be pending or parked', { field: 'status' });
    filter.status = status;
  }
  for (const key of ['reason', 'recipient'] as const) {
    const v = source.get(key);
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' || v.length === 0 || v.length > 300) throw new ApiError('bad_request', `\`${key}\` must be a string of 1 to 300 characters`, { field: key });
    filter[key] = v;
  }
  const older = source.get('olderThanMs');
  if (older !== undefined && older !== null) {
    const n = typeof older === 'string' && /^\d{1,12}$/.test(older) ? Number(older) : older;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0) throw new ApiError('bad_request', '`olderThanMs` must be an integer >= 0', { field: 'olderThanMs' });
    filter.olderThanMs = n;
  }
  return filter;
}

/** A managed monitor as the API shows it. */
export function monitorRow(m: MonitorEntry): Record<string, unknown> {
  return {
    ref: String(m.ref),
    owner: Pid.format(m.owner),
    target: Pid.format(m.target),
    tag: m.tag ?? null,
    createdAt: m.createdAt,
    ageMs: m.ageMs,
    stack: m.stack ?? null,
    targetAlive: m.targetAlive,
    leak: m.leak ?? null,
  };
}
