import { kernelOf } from '../../runtime/kernel.js';
import type { Context } from '../../runtime/types.js';
import { type Schedule, Tick } from './state.js';

// @internal The AgentScheduler's time: the time its schedules count in, and each schedule's one timer.

/**
 * The time schedules count in: the node's timers' (monotonic on the real clock), as their ticks do,
 * so a wall clock stepped back does not hold a schedule for the step, nor one stepped forward count
 * the step as missed due times. A due time leaves the process as a date on the node's clock (the
 * store's record, `list`) and comes back from the store through {@link dueFromDate}: another OS
 * process resumes it, and only the wall clock is common to both.
 */
export function timerNow(ctx: Context<any>): number {
  return kernelOf(ctx.node).timerNow();
}

/** `s.nextDueAt`'s date: on the node's clock (the wall clock on the real clock), as of now. */
export function dueDate(s: Schedule, ctx: Context<any>): number {
  const kernel = kernelOf(ctx.node);
  return s.nextDueAt + (kernel.clock.now() - kernel.timerNow());
}

/** A stored due date, on the timers' time. */
export function dueFromDate(date: number, ctx: Context<any>): number {
  const kernel = kernelOf(ctx.node);
  return date - (kernel.clock.now() - kernel.timerNow());
}

/**
 * Arms the schedule's one timer: at its base due time plus a fresh jitter draw. The delay is at most
 * Number.MAX_VALUE: a due time and a jitter near it (each finite, so valid) add up to Infinity, which
 * sendAfter refuses, in the scheduler's turn and again at each restart that resumes the schedule.
 */
export function arm(s: Schedule, now: number, ctx: Context<any>): void {
  const jitter = s.jitter > 0 ? ctx.node.random() * s.jitter : 0;
  s.timer = ctx.sendAfter(ctx.self, new Tick(s, s.generation), Math.min(Number.MAX_VALUE, Math.max(0, s.nextDueAt - now + jitter)));
}

/** Retires the schedule's chain: a new generation (a tick already queued is stale) and no timer. */
export function retire(s: Schedule, ctx: Context<any>): void {
  s.generation++;
  if (s.timer !== undefined) ctx.cancelTimer(s.timer);
  s.timer = undefined;
}
