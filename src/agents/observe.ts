/**
 * @internal What each agent-layer component shows an observer (the `observe` system call, see
 * `markComponent`): a JSON-safe snapshot of its state in the observer's shapes (docs/observer.md).
 * Each runs inside the component, between two of its callbacks, and only when an observer asks.
 */
import { kernelOf } from '../runtime/kernel.js';
import { formatReason, isExitReason } from '../runtime/messages.js';
import type { Context, Node } from '../runtime/types.js';
import { Pid, shortName, targetText, type Target } from '../runtime/Pid.js';
import type { State as CircuitsState } from './coordination/state.js';
import type { Run, State as CoordinatorState, TaskRun } from './coordinator/state.js';
import type { State as RouterState } from './router/table.js';
import type { State as PoolState } from './pool/state.js';
import type { State as SchedulerState } from './scheduler/state.js';

/** The most rows one snapshot carries per list (subscriptions, jobs, workflows, circuits, a workflow's tasks). */
const MAX_ROWS = 1000;
/** The most task rows one coordinator's snapshot carries in all (1000 workflows of 1000 tasks would be a million). */
const MAX_TASK_ROWS = 10_000;

function pidText(p: Pid | undefined): string | null {
  return p === undefined ? null : Pid.format(p);
}

/** A target as a snapshot shows it: a pid's text, or a name quoted as every answer does (a 10 MB name is not copied whole). */
function target(t: Target): string {
  return Pid.is(t) ? Pid.format(t) : shortName(targetText(t).replace(/^'(.*)'$/s, '$1'));
}

/** The longest error text a snapshot carries (a message may hold a whole payload). */
const MAX_ERROR_TEXT = 500;

function errorText(e: unknown): string | null {
  if (e === undefined || e === null) return null;
  if (e instanceof Error) return `${e.name}: ${e.message}`.slice(0, MAX_ERROR_TEXT);
  if (isExitReason(e)) return formatReason(e).slice(0, MAX_ERROR_TEXT);
  try {
    return typeof e === 'string' ? e.slice(0, MAX_ERROR_TEXT) : JSON.stringify(e).slice(0, MAX_ERROR_TEXT);
  } catch {
    return '(unreadable)';
  }
}

/**
 * Times a component keeps on its node's timers' time (monotonic on the real clock, so that a wall
 * clock stepped does not stretch nor cut what they time), as the dates the observer shows: on the
 * node's clock, as of now.
 */
function datesOf(from: Node | Context<any>): (t: number) => number {
  const kernel = kernelOf(from);
  const offset = kernel.clock.now() - kernel.timerNow();
  return (t) => t + offset;
}

/** A signal router: its subscriptions (one row per subscriber and pattern) and its totals. */
export function observeRouter(s: RouterState): unknown {
  const subscriptions = [];
  for (const sub of s.subs.values()) {
    for (const pattern of sub.patterns) {
      if (subscriptions.length >= MAX_ROWS) break;
      subscriptions.push({
        pattern,
        subscriber: Pid.format(sub.pid),
        buffered: sub.buffer.size,
        capacity: Number.isFinite(sub.buffer.capacity) ? sub.buffer.capacity : null,
        overflow: sub.buffer.overflow,
        dropped: sub.dropped,
        inFlight: sub.inFlight,
        maxInFlight: Number.isFinite(sub.maxInFlight) ? sub.maxInFlight : null,
      });
    }
  }
  return {
    subscriptions,
    totals: {
      published: s.published,
      routed: s.routed,
      delivered: s.delivered,
      failed: s.failed,
      buffered: s.buffered,
      inFlight: s.inFlight,
      dropped: s.droppedTotal,
      byReason: { ...s.byReason },
      restarts: s.restarts,
      // the router's own mailbox: its bound (null: unbounded) and the publishes it refused or evicted
      mailbox: s.mailbox === undefined ? null : { capacity: s.mailbox.capacity, overflow: s.mailbox.overflow },
      mailboxRefused: s.mailboxRefused,
      mailboxEvicted: s.mailboxEvicted,
    },
  };
}

/** An agent scheduler: its schedules as jobs. */
export function observeScheduler(s: SchedulerState): unknown {
  const date = datesOf(s.ctx.node);
  const jobs = [];
  for (const sch of s.kept.schedules) {
    if (sch.removed) continue;
    if (jobs.length >= MAX_ROWS) break;
    jobs.push({
      id: sch.id,
      every: sch.intervalMs,
      target: sch.agentName === undefined ? Pid.format(sch.agent.pid) : shortName(sch.agentName),
      targetPid: Pid.format(sch.agent.pid),
      nextRunAt: date(sch.nextDueAt),
      lastRunAt: sch.lastRunAt ?? null,
      runs: sch.deliveries,
      failures: sch.failures,
      skipped: sch.skipped,
      missed: sch.missed,
    });
  }
  const k = s.kept;
  return { jobs, totals: { delivered: k.delivered, failed: k.failed, skipped: k.skipped, dropped: k.dropped, resumed: k.resumed } };
}

const ACTIVE = new Set(['running', 'paused', 'compensating']);

/** A coordinator snapshot's task rows left to give (see {@link MAX_TASK_ROWS}). */
interface RowBudget {
  left: number;
}

/** The first rows of a workflow's tasks: at most {@link MAX_ROWS}, and what the snapshot's budget has left. */
function taskRows<T>(tasks: Iterable<T>, budget: RowBudget, row: (t: T) => unknown): unknown[] {
  const rows = [];
  for (const t of tasks) {
    if (rows.length >= MAX_ROWS || budget.left <= 0) break;
    budget.left--;
    rows.push(row(t));
  }
  return rows;
}

function taskRow(t: TaskRun): unknown {
  return {
    id: shortName(t.spec.id),
    kind: t.kind,
    role: t.role,
    status: t.state,
    worker: pidText(t.worker),
    attempts: t.attempts,
    // an attempt lost with its worker (it died or timed out) is given to another
    reassignments: t.lost,
    errors: t.errors,
    startedAt: t.startedAt ?? null,
    endedAt: t.endedAt ?? null,
    error: errorText(t.error),
  };
}

/** A task of a finished workflow: its outcome only (a recent workflow's tasks carry no times). */
function recentTaskRow(id: string, o: { state: string; worker?: Pid | undefined; attempts: number; error?: unknown }): unknown {
  return { id: shortName(id), status: o.state, worker: pidText(o.worker), attempts: o.attempts, reassignments: null, startedAt: null, endedAt: null, error: errorText(o.error) };
}

function stuck(wf: Run, now: number): boolean {
  if (!ACTIVE.has(wf.state)) return false;
  if (wf.stuckReported) return true;
  let running = false;
  for (const t of wf.tasks.values()) if (t.current !== undefined) running = true;
  return !running && now - wf.progressAt >= wf.stuckMs;
}

/** A coordinator: its active workflows (with their tasks) and the recent finished ones it remembers. */
export function observeCoordinator(s: CoordinatorState): unknown {
  const now = kernelOf(s.ctx.node).timerNow(); // progress counts on the timers' time
  const date = datesOf(s.ctx.node);
  const budget: RowBudget = { left: MAX_TASK_ROWS };
  const active = [];
  for (const wf of s.kept.runs.values()) {
    if (active.length >= MAX_ROWS) break;
    active.push({
      id: shortName(wf.id),
      name: null,
      status: wf.state,
      startedAt: wf.startedAt,
      stuck: stuck(wf, now),
      progressAt: date(wf.progressAt),
      completed: wf.completed,
      reassigned: wf.reassigned,
      taskCount: wf.order.length + wf.undo.length,
      tasks: taskRows(wf.undo.length === 0 ? wf.order : [...wf.order, ...wf.undo], budget, taskRow),
    });
  }
  const recent = [];
  for (const [id, h] of [...s.kept.history].reverse()) {
    if (recent.length >= MAX_ROWS) break;
    const r = h.result;
    const keys = Object.keys(r.tasks);
    recent.push({
      id: shortName(id),
      name: null,
      status: r.status,
      startedAt: r.startedAt,
      finishedAt: r.finishedAt,
      stuck: false,
      reassigned: r.reassigned,
      failedTask: r.failedTask === undefined ? null : shortName(r.failedTask),
      error: errorText(r.error),
      taskCount: keys.length,
      tasks: taskRows(keys, budget, (tid) => recentTaskRow(tid, r.tasks[tid]!)),
    });
  }
  const workers = [...s.kept.workers.values()].slice(0, MAX_ROWS).map((w) => ({ pid: Pid.format(w.pid), load: w.load, capabilities: [...w.capabilities].slice(0, MAX_ROWS).map(shortName) }));
  return { active, recent, workers, totals: { ...s.kept.m } };
}

/** A coordination manager: its circuits. */
export function observeCircuits(s: CircuitsState): unknown {
  const date = datesOf(s.ctx.node);
  const circuits = [];
  for (const c of s.circuits.values()) {
    if (circuits.length >= MAX_ROWS) break;
    circuits.push({
      key: shortName(c.key),
      target: target(c.target),
      state: c.breaker.state,
      failures: c.breaker.failures,
      openings: c.breaker.openings,
      buffered: c.buffer.length,
      inFlight: c.inFlight,
      openedAt: c.breaker.openedAt === undefined ? null : date(c.breaker.openedAt),
      resetAt: c.breaker.state === 'closed' || !Number.isFinite(c.breaker.resetAt) ? null : date(c.breaker.resetAt),
    });
  }
  return { circuits, totals: { ...s.n } };
}

/** A resource pool: its size, what is lent (to whom, since when), who waits. */
export function observePool(s: PoolState): unknown {
  const date = datesOf(s.node);
  const lent = [];
  for (const e of s.entries.values()) {
    if (!e.lent || lent.length >= MAX_ROWS) continue;
    lent.push({ holder: pidText(e.holderPid), lentAt: date(e.lentAt) });
  }
  return {
    size: s.size,
    maxOverflow: s.maxOverflow,
    resources: s.entries.size,
    idle: s.idle.length,
    lent,
    waiting: s.waiters.size,
    creating: s.creating,
    totals: { ...s.counts },
  };
}
