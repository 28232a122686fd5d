import { InvalidArgumentError } from '../../errors.js';
import { kernelOf } from '../../runtime/kernel.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { broadcastSupervised, type BroadcastOptions, type BroadcastOutcome } from '../../delivery/broadcastSupervised.js';
import type { SendOutcome } from '../../delivery/sendSupervised.js';
import { checkBroadcastOptions, checkObject, checkPid, pidKey } from './shared.js';

/** A two-level hierarchy of agents: a supervisor (its root) over teams, each a lead and its members. */
export interface Hierarchy {
  /** The root of the hierarchy (typically the sender); it does not receive the broadcast. */
  readonly supervisor: Pid;
  readonly teams: readonly { readonly lead: Pid; readonly members: readonly Pid[] }[];
}

export interface HierarchyBroadcastOptions extends BroadcastOptions {
  /** Who receives it: `'all'` (default: every lead and member), `'leads'`, or `'members'`. */
  level?: 'all' | 'leads' | 'members';
}

/** One agent's delivery: who it is in the hierarchy and its outcome. */
export interface HierarchyDelivery {
  readonly pid: Pid;
  readonly role: 'lead' | 'member';
  /** The index of its team in `hierarchy.teams`. */
  readonly team: number;
  readonly outcome: SendOutcome;
}

/** The broadcast's outcome (see `broadcastSupervised`), with one entry per selected agent, in hierarchy order. */
export interface HierarchyBroadcastOutcome {
  readonly ok: boolean;
  readonly reason?: BroadcastOutcome['reason'];
  readonly delivered: number;
  readonly failed: number;
  readonly results: HierarchyDelivery[];
}

const LEVELS = ['all', 'leads', 'members'] as const;

function validateHierarchy(hierarchy: unknown): asserts hierarchy is Hierarchy {
  checkObject(hierarchy, 'hierarchy', '{ supervisor: Pid, teams: { lead: Pid, members: Pid[] }[] }');
  checkPid(hierarchy.supervisor, 'hierarchy.supervisor');
  const teams = hierarchy.teams;
  if (!Array.isArray(teams)) throw new InvalidArgumentError('hierarchy.teams', 'an array of { lead: Pid, members: Pid[] }', teams);
  // a hierarchy is a tree: every agent sits in one place, so that each one gets one copy
  const seen = new Set<string>([pidKey(hierarchy.supervisor)]);
  const once = (pid: Pid, argument: string): void => {
    const key = pidKey(pid);
    if (seen.has(key)) throw new InvalidArgumentError(argument, 'an agent that appears once in the hierarchy', pid, 'a hierarchy is a tree: list each agent in one place');
    seen.add(key);
  };
  teams.forEach((team: unknown, t) => {
    checkObject(team, `hierarchy.teams[${t}]`, '{ lead: Pid, members: Pid[] }');
    checkPid(team.lead, `hierarchy.teams[${t}].lead`);
    once(team.lead, `hierarchy.teams[${t}].lead`);
    if (!Array.isArray(team.members)) throw new InvalidArgumentError(`hierarchy.teams[${t}].members`, 'an array of Pids', team.members);
    team.members.forEach((m: unknown, i) => {
      checkPid(m, `hierarchy.teams[${t}].members[${i}]`);
      once(m, `hierarchy.teams[${t}].members[${i}]`);
    });
  });
}

/**
 * Sends `message` down a hierarchy of agents: to every team lead, every member, or both
 * (`level`), concurrently through `broadcastSupervised` with its options (`strategy`, `ack`,
 * `retries`...). The supervisor is the hierarchy's root and does not receive it. Every selected
 * agent has its own outcome, with its role and team; nothing is swallowed.
 *
 * Throws `ERR_INVALID_ARGUMENT` for a malformed hierarchy (an agent listed twice included) or options.
 *
 * @example
 * ```ts
 * const r = await hierarchyBroadcast(ctx, { supervisor: ctx.self, teams: [{ lead, members: [a, b] }] }, { type: 'pause' }, { level: 'members', ack: 'handled' });
 * for (const d of r.results) if (!d.outcome.ok) console.log(`team ${d.team} ${d.role} ${String(d.pid)}: ${d.outcome.reason}`);
 * ```
 */
export function hierarchyBroadcast<M>(from: Node | Context<any>, hierarchy: Hierarchy, message: M, options: HierarchyBroadcastOptions = {}): Promise<HierarchyBroadcastOutcome> {
  kernelOf(from);
  validateHierarchy(hierarchy);
  checkObject(options, 'options', 'a HierarchyBroadcastOptions object');
  const level = options.level ?? 'all';
  if (!(LEVELS as readonly unknown[]).includes(level)) throw new InvalidArgumentError('options.level', "'all' | 'leads' | 'members'", level);
  const selected: { pid: Pid; role: 'lead' | 'member'; team: number }[] = [];
  hierarchy.teams.forEach((team, t) => {
    if (level !== 'members') selected.push({ pid: team.lead, role: 'lead', team: t });
    if (level !== 'leads') for (const pid of team.members) selected.push({ pid, role: 'member', team: t });
  });
  const { level: _level, ...broadcastOptions } = options;
  checkBroadcastOptions(broadcastOptions, selected.length);
  return broadcastSupervised(from, selected.map((s) => s.pid), message, broadcastOptions).then((outcome) => ({
    ok: outcome.ok,
    ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
    delivered: outcome.delivered,
    failed: outcome.failed,
    results: selected.map((s, i) => ({ ...s, outcome: outcome.results[i]!.outcome })),
  }));
}
