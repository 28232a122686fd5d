import { anyEligible, event, type Run, type State, type TaskRun, timerNow } from './state.js';

// Stuck workflows: one that made no progress (no task started or finished) for `stuckAfterMs` with
// nothing running is reported once, as `keel.coordinator.workflow_stuck`, with what it waits on.

/** @internal The stuck check of a workflow is due. */
export class StuckCheck {
  constructor(readonly wf: Run) {}
}

const active = (wf: Run): boolean => wf.state === 'running' || wf.state === 'paused' || wf.state === 'compensating';

/**
 * @internal Progress: a task started or finished (or the workflow started), at `now` (the timers'
 * time; a start gives its attempt's, so that a refusal can tell its own progress and take it back).
 */
export function touch(state: State, wf: Run, now?: number): void {
  if (wf.stuckMs === Infinity || wf.stuckReported) return;
  wf.progressAt = now ?? timerNow(state);
  if (wf.stuckTimer === undefined) wf.stuckTimer = state.ctx.sendAfter(state.ctx.self, new StuckCheck(wf), wf.stuckMs);
}

/** @internal Cancels the workflow's stuck timer (it finished). */
export function stopStuckTimer(state: State, wf: Run): void {
  if (wf.stuckTimer !== undefined) state.ctx.cancelTimer(wf.stuckTimer as never);
  wf.stuckTimer = undefined;
}

/** Why a task that is not done waits. */
function why(state: State, t: TaskRun): string {
  if (t.state === 'blocked') return 'dependencies';
  if (t.state === 'delayed') return t.refused === true ? 'workers_busy' : 'retry_backoff';
  if (t.wf.state === 'paused') return 'paused';
  return anyEligible(state, t) ? 'workers_busy' : 'no_worker';
}

/** @internal The check is due: report the workflow if it has been idle for `stuckAfterMs`, else check again later. */
export function stuckCheck(state: State, wf: Run): void {
  wf.stuckTimer = undefined;
  if (!active(wf) || wf.stuckReported || state.runs.get(wf.id) !== wf) return;
  const now = timerNow(state);
  let running = false;
  for (const t of wf.tasks.values()) if (t.current !== undefined) running = true;
  for (const t of wf.undo) if (t.current !== undefined) running = true; // a compensation runs
  const idle = now - wf.progressAt;
  if (running || idle < wf.stuckMs) {
    wf.stuckTimer = state.ctx.sendAfter(state.ctx.self, new StuckCheck(wf), running ? wf.stuckMs : wf.stuckMs - idle);
    return;
  }
  wf.stuckReported = true;
  const waiting: { task: string; kind: string; reason: string; compensation?: true }[] = [];
  for (const t of wf.tasks.values()) {
    if (wf.state === 'compensating') continue;
    if (t.state !== 'completed' && t.state !== 'failed') waiting.push({ task: t.spec.id, kind: t.kind, reason: why(state, t) });
  }
  for (const t of wf.undo) {
    if (t.state !== 'completed' && t.state !== 'failed' && (t.state !== 'blocked')) waiting.push({ task: t.spec.id, kind: t.kind, reason: why(state, t), compensation: true });
  }
  event(state, 'workflow_stuck', { idleMs: idle }, { workflow: wf.id, state: wf.state, waiting });
}
