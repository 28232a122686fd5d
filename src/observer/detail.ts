/**
 * A process's detail: what `node.info` tells, pids as text, with its kind, age, names, the calls
 * around it, a supervisor's restart history, and the state of a server that opted in with a
 * redactor (its spec's `formatStatus`, as Erlang's `format_status`: read through `Sys.getStatus`).
 */
import { isKeelError } from '../errors.js';
import { pendingCallsOf } from '../otp/internal/calls.js';
import { Supervisor } from '../otp/Supervisor.js';
import { Sys } from '../otp/Sys.js';
import { exitReportOf, type Kernel } from '../runtime/kernel.js';
import { Pid } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';
import { ApiError, nameText } from './http.js';
import { kindOf } from './processes.js';
import { callErrorCode, SharedCalls } from './calls.js';

/** How long the detail waits for a server's status or a supervisor's restarts (it is busy: the field says so). */
export const DETAIL_CALL_TIMEOUT_MS = 1000;

/** The most values a process's state shows (its detail stays small whatever the state holds). */
export const MAX_STATE_VALUES = 5000;
/**
 * The longest text {@link jsonSafe} shows whole (a string, a key, an error's name or message); a
 * longer one is cut, saying how long it was: a few values of hundreds of megabytes would make an
 * answer JSON cannot hold (one such dead letter made the whole list a 500).
 */
export const MAX_TEXT = 10_000;
/** The most pids a detail lists per list (links, monitors, monitored-by, groups): a dynamic supervisor links to each of its 100,000 children. */
export const MAX_DETAIL_ROWS = 1000;

/**
 * The most characters of text (strings and keys, each cut at {@link MAX_TEXT}) one value shows in
 * all: past them a text is `'[truncated]'`. The count of values alone let 5,000 texts of 10,000
 * characters make one detail 50 MB.
 */
export const MAX_STATE_CHARS = 1_000_000;

export interface Budget {
  /** Values left to show. */
  left: number;
  /** Characters of text left to show. */
  chars: number;
}

/** `s`, or its first {@link MAX_TEXT} characters and its length when longer. */
export function cutText(s: string): string {
  return s.length <= MAX_TEXT ? s : `${s.slice(0, MAX_TEXT)}… [${s.length} characters]`;
}

/** `cutText(s)` when the budget's characters still hold it, else `'[truncated]'` (and none are left). */
function textIn(s: string, budget: Budget): string {
  const t = cutText(s);
  if (t.length > budget.chars) {
    budget.chars = 0;
    return '[truncated]';
  }
  budget.chars -= t.length;
  return t;
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

/** A process's detail (see the file comment); 404 when it is not alive. */
export async function processDetail(node: Node, kernel: Kernel, pid: Pid, shared: SharedCalls = new SharedCalls(kernel)): Promise<Record<string, unknown>> {
  const info = node.info(pid);
  const p = kernel.resolve(pid);
  if (info === undefined || p === undefined) throw new ApiError('not_found', 'no live process of this node has this pid');
  const report = exitReportOf(p);
  const kind = kindOf(p);
  const born = kernel.spawnedAt(p);
  const calls = pendingCallsOf(p);
  const groups = node.groups.groups().filter((g) => node.groups.members(g).some((m) => m.id === pid.id && Pid.format(m) === Pid.format(pid)));
  const detail: Record<string, unknown> = {
    pid: Pid.format(info.pid),
    name: nameText(info.name),
    names: info.name === undefined ? [] : [nameText(info.name)],
    groups: groups.slice(0, MAX_DETAIL_ROWS).map((g) => nameText(g)),
    groupsTotal: groups.length,
    kind,
    component: report?.component ?? null,
    parent: report?.parent === undefined ? null : report.parent === 'node' ? 'node' : Pid.format(report.parent),
    status: info.status,
    mailbox: info.mailboxLength,
    handled: info.messagesHandled,
    ageMs: born === undefined ? null : Math.max(0, kernel.timerNow() - born.at), // on the timers' time, as the spawn was: a wall clock stepped does not age it
    ageExact: born?.exact ?? false,
    links: info.links.slice(0, MAX_DETAIL_ROWS).map((q) => Pid.format(q)),
    linksTotal: info.links.length,
    monitors: info.monitors.slice(0, MAX_DETAIL_ROWS).map((r) => String(r)),
    monitorsTotal: info.monitors.length,
    monitoredBy: info.monitoredBy.slice(0, MAX_DETAIL_ROWS).map((q) => Pid.format(q)),
    monitoredByTotal: info.monitoredBy.length,
    trapExits: info.trapExits,
    timers: info.timers,
    longMailbox: info.longMailbox,
    pendingCalls: calls.incoming,
    waitingOn: calls.waitingOn.slice(0, MAX_DETAIL_ROWS).map((q) => Pid.format(q)),
    restarts: null,
    state: null,
    stateError: null,
  };
  if (kind === 'supervisor') {
    try {
      const s = await shared.call(`status ${Pid.format(pid)}`, (limitMs) => Supervisor.status(node, pid, limitMs), DETAIL_CALL_TIMEOUT_MS);
      detail.restarts = s.restarts;
      detail.strategy = s.strategy;
      detail.intensity = s.intensity;
      detail.restartsInWindow = s.restartsInWindow;
    } catch (e) {
      detail.stateError = callError(e);
    }
  } else if (report?.redacts === true) {
    try {
      detail.state = jsonSafe((await shared.call(`get_status ${Pid.format(pid)}`, (limitMs) => Sys.getStatus(node, pid, limitMs), DETAIL_CALL_TIMEOUT_MS)).state);
    } catch (e) {
      detail.stateError = callError(e);
    }
  }
  return detail;
}

function callError(e: unknown): string {
  return isKeelError(e) || typeof (e as { code?: unknown }).code === 'string' ? callErrorCode(e) : 'failed';
}

/**
 * A redactor's value as JSON-safe data: plain objects, arrays (a typed array as one) and primitives, at most 6 levels,
 * 200 entries per level and {@link MAX_STATE_VALUES} values in all (past it, `'[truncated]'`: 200
 * entries on each of 6 levels would be 200^6); a cycle, a function, a getter that throws or a proxy
 * that refuses becomes a string saying so. Never throws.
 */
export function jsonSafe(value: unknown, depth = 6, seen: Set<object> = new Set(), budget: Budget = { left: MAX_STATE_VALUES, chars: MAX_STATE_CHARS }): unknown {
  if (budget.left-- <= 0) return '[truncated]';
  try {
    if (value === null || typeof value === 'boolean') return value;
    if (typeof value === 'string') return textIn(value, budget);
    if (typeof value === 'number') return Number.isFinite(value) ? value : String(value);
    if (typeof value === 'bigint') return value.toString();
    if (value === undefined) return null;
    if (typeof value !== 'object') return `[${typeof value}]`;
    if (seen.has(value)) return '[cycle]';
    if (depth <= 0) return '[deeper]';
    seen.add(value);
    try {
      if (Pid.is(value)) return Pid.format(value);
      // (an invalid Date reads fine: toISOString throws on it, String shows it as Invalid Date)
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? 'Invalid Date' : value.toISOString();
      if (value instanceof Error) {
        const { name, message } = value;
        return { name: typeof name === 'string' ? textIn(name, budget) : jsonSafe(name, 1, seen, budget), message: typeof message === 'string' ? textIn(message, budget) : jsonSafe(message, 1, seen, budget) };
      }
      if (Array.isArray(value)) return value.slice(0, 200).map((v) => jsonSafe(v, depth - 1, seen, budget));
      // a typed array (a Buffer) as an array of its first entries: listing the keys of a 10 MB one took seconds
      if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
        const view = value as unknown as ArrayLike<unknown>;
        const out: unknown[] = [];
        for (let i = 0; i < Math.min(view.length, 200); i++) out.push(jsonSafe(view[i], depth - 1, seen, budget));
        return out;
      }
      if (value instanceof Map) return firstOf(value, 200).map(([k, v]) => [jsonSafe(k, depth - 1, seen, budget), jsonSafe(v, depth - 1, seen, budget)]);
      if (value instanceof Set) return firstOf(value, 200).map((v) => jsonSafe(v, depth - 1, seen, budget));
      const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const k of Object.keys(value).slice(0, 200)) {
        // a `__proto__` key is an own data key of `out` (no prototype): JSON text keeps it as a plain key
        const key = cutText(k);
        budget.chars = Math.max(0, budget.chars - key.length); // a key counts, but stays a key: keys do not collide as '[truncated]'
        out[key] = jsonSafe((value as Record<string, unknown>)[k], depth - 1, seen, budget);
      }
      return out;
    } finally {
      seen.delete(value);
    }
  } catch {
    return '[unreadable]';
  }
}

/** The first `n` entries of a Map or Set (without spreading a million of them first). */
function firstOf<T>(items: Iterable<T>, n: number): T[] {
  const out: T[] = [];
  for (const item of items) {
    if (out.length >= n) break;
    out.push(item);
  }
  return out;
}
