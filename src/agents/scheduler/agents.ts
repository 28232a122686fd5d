import { nameOf, Pid, type Target } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import { unwatch, watchProcess } from '../internal/watch.js';
import { scheduleKey } from '../store/scheduleRecords.js';
import { deliveryOptions } from './delivery.js';
import type { AgentEntry, Schedule, State } from './state.js';
import type { MissedPolicy } from './types.js';

// @internal The AgentScheduler's agents: each watched once for all its schedules, and the schedules
// it holds of each (in the process's tables and in the table that outlives it).

/** The agent's entry: a name is resolved to the pid registered under it now. */
export function entryOf(state: State, agent: Target, ctx: Context<any>): AgentEntry | undefined {
  const name = nameOf(agent);
  const pid = name !== undefined ? ctx.node.registry.whereis(name) : (agent as Pid);
  return pid === undefined ? undefined : state.agents.get(Pid.format(pid));
}

/** Forgets an agent with no schedule left, releasing its monitor. */
export function releaseIfEmpty(state: State, entry: AgentEntry, ctx: Context<any>): void {
  if (entry.schedules.size > 0) return;
  state.agents.delete(entry.key);
  state.byRef.delete(entry.ref);
  unwatch(ctx, entry);
}

/** Monitors `pid` once for all its schedules: through the monitor manager, or directly when it is unavailable. */
export function watchAgent(state: State, pid: Pid, ctx: Context<any>): AgentEntry | undefined {
  const key = Pid.format(pid);
  const known = state.agents.get(key);
  if (known !== undefined) return known;
  if (!ctx.node.isAlive(pid)) return undefined;
  // long-lived by design: the monitor lasts as long as the agent has schedules
  const watch = watchProcess(ctx, pid, 'agent_scheduler');
  if (watch === 'noproc') return undefined;
  const { ref, managed } = watch;
  const entry: AgentEntry = { pid, key, ref, managed, schedules: new Map() };
  state.agents.set(key, entry);
  state.byRef.set(ref, entry);
  return entry;
}

/** A new schedule of `entry`, held (its timer is the caller's to arm). */
export function newSchedule(
  state: State,
  entry: AgentEntry,
  agentName: string | undefined,
  r: { id: string; intervalMs: number; message: unknown; jitter: number; missed: MissedPolicy },
  nextDueAt: number,
): Schedule {
  const s: Schedule = {
    agent: entry,
    agentName,
    id: r.id,
    intervalMs: r.intervalMs,
    message: r.message,
    jitter: r.jitter,
    missed: r.missed,
    generation: 1,
    timer: undefined,
    nextDueAt,
    lastRunAt: undefined,
    deliveries: 0,
    failures: 0,
    skipped: 0,
    removed: false,
    pending: new Map(),
    sendOptions: deliveryOptions(state, r.id),
  };
  entry.schedules.set(s.id, s);
  state.kept.schedules.add(s);
  if (agentName !== undefined) {
    // the name moved on from the process whose schedule held this key (it lives): its schedule runs
    // on by pid, and no longer writes nor deletes the record, which is this one's now
    const key = scheduleKey(agentName, r.id);
    const previous = state.kept.named.get(key);
    if (previous !== undefined) previous.agentName = undefined;
    state.kept.named.set(key, s);
  }
  return s;
}
