import { InvalidArgumentError } from '../../errors.js';
import { kernelOf } from '../../runtime/kernel.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { broadcastSupervised, type BroadcastOptions, type BroadcastOutcome } from '../../delivery/broadcastSupervised.js';
import type { SendOutcome } from '../../delivery/sendSupervised.js';
import { checkBroadcastOptions, checkObject, checkPid, isArray, pidKey, readArgument, snapshotOptions } from './shared.js';
import { AgentQuery } from './agentSource.js';
import { isRegistryHierarchy, readsOf, type RegistryHierarchy } from './hierarchy.js';
import type { AgentEntry } from '../registry/types.js';

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
  /** The index of its team in `hierarchy.teams` (for a query: in the order the teams were first met). */
  readonly team: number;
  /** From the registry (a registry hierarchy or a query): the agent's key and its team's name. */
  readonly key?: string;
  readonly teamName?: string;
  readonly outcome: SendOutcome;
}

/** The broadcast's outcome (see `broadcastSupervised`), with one entry per selected agent, in hierarchy order. */
export interface HierarchyBroadcastOutcome {
  readonly ok: boolean;
  readonly reason?: BroadcastOutcome['reason'];
  readonly delivered: number;
  readonly failed: number;
  readonly results: HierarchyDelivery[];
  /** A registry hierarchy's selected keys that have no registration now (the agent is down and not back yet): not sent. */
  readonly unregistered?: string[];
}

const LEVELS = ['all', 'leads', 'members'] as const;

/**
 * The hierarchy as checked: each field read once (a getter or a proxy trap that throws is
 * ERR_INVALID_ARGUMENT naming it, not a raw error), each array by index (a hole is checked, not
 * skipped), and the snapshot is what is sent to.
 */
function validateHierarchy(hierarchy: unknown): Hierarchy {
  const shape = '{ supervisor: Pid, teams: { lead: Pid, members: Pid[] }[] }';
  checkObject(hierarchy, 'hierarchy', shape);
  const supervisor: unknown = readArgument(() => hierarchy.supervisor, 'hierarchy.supervisor', 'a Pid', hierarchy);
  checkPid(supervisor, 'hierarchy.supervisor');
  const teamsShape = 'an array of { lead: Pid, members: Pid[] }';
  const teams: unknown = readArgument(() => hierarchy.teams, 'hierarchy.teams', teamsShape, hierarchy);
  if (!isArray(teams, 'hierarchy.teams', teamsShape)) throw new InvalidArgumentError('hierarchy.teams', teamsShape, teams);
  // a hierarchy is a tree: every agent sits in one place, so that each one gets one copy
  const seen = new Set<string>([pidKey(supervisor)]);
  const once = (pid: Pid, argument: string): void => {
    const key = pidKey(pid);
    if (seen.has(key)) throw new InvalidArgumentError(argument, 'an agent that appears once in the hierarchy', pid, 'a hierarchy is a tree: list each agent in one place');
    seen.add(key);
  };
  const out: { lead: Pid; members: Pid[] }[] = [];
  const nTeams = readArgument(() => teams.length, 'hierarchy.teams', teamsShape, teams);
  for (let t = 0; t < nTeams; t++) {
    const at = `hierarchy.teams[${t}]`;
    const team: unknown = readArgument(() => teams[t], at, '{ lead: Pid, members: Pid[] }', teams);
    checkObject(team, at, '{ lead: Pid, members: Pid[] }');
    const lead: unknown = readArgument(() => team.lead, `${at}.lead`, 'a Pid', team);
    checkPid(lead, `${at}.lead`);
    once(lead, `${at}.lead`);
    const members: unknown = readArgument(() => team.members, `${at}.members`, 'an array of Pids', team);
    if (!isArray(members, `${at}.members`, 'an array of Pids')) throw new InvalidArgumentError(`${at}.members`, 'an array of Pids', members);
    const pids: Pid[] = [];
    const nMembers = readArgument(() => members.length, `${at}.members`, 'an array of Pids', members);
    for (let i = 0; i < nMembers; i++) {
      const m: unknown = readArgument(() => members[i], `${at}.members[${i}]`, 'a Pid', members);
      checkPid(m, `${at}.members[${i}]`);
      once(m, `${at}.members[${i}]`);
      pids.push(m);
    }
    out.push({ lead, members: pids });
  }
  return { supervisor, teams: out };
}

/**
 * Sends `message` down a hierarchy of agents: to every team lead, every member, or both
 * (`level`), concurrently through `broadcastSupervised` with its options (`strategy`, `ack`,
 * `retries`...). The supervisor is the hierarchy's root and does not receive it. Every selected
 * agent has its own outcome, with its role and team; nothing is swallowed.
 *
 * `hierarchy` is a tree of pids, a {@link RegistryHierarchy} (`createHierarchy`: its agents are read
 * from the registry at each broadcast by key and role, so a restarted lead is reached at its new pid;
 * keys with no registration now are listed in `unregistered`), or a registry query (its agents with
 * role `'lead'` or `'member'`, grouped by team).
 *
 * Throws `ERR_INVALID_ARGUMENT` for a malformed hierarchy (an agent listed twice included) or options.
 *
 * @example
 * ```ts
 * const r = await hierarchyBroadcast(ctx, { supervisor: ctx.self, teams: [{ lead, members: [a, b] }] }, { type: 'pause' }, { level: 'members', ack: 'handled' });
 * for (const d of r.results) if (!d.outcome.ok) console.log(`team ${d.team} ${d.role} ${String(d.pid)}: ${d.outcome.reason}`);
 * ```
 */
export function hierarchyBroadcast<M>(
  from: Node | Context<any>,
  hierarchy: Hierarchy | RegistryHierarchy | AgentQuery,
  message: M,
  given: HierarchyBroadcastOptions = {},
): Promise<HierarchyBroadcastOutcome> {
  kernelOf(from);
  const registryBacked = isRegistryHierarchy(hierarchy) || AgentQuery.is(hierarchy);
  const checked = registryBacked ? undefined : validateHierarchy(hierarchy);
  checkObject(given, 'options', 'a HierarchyBroadcastOptions object');
  // read once: a getter that throws is ERR_INVALID_ARGUMENT naming it, and what is sent is what was checked
  const options = snapshotOptions(given) as HierarchyBroadcastOptions;
  const level: unknown = options.level ?? 'all';
  if (!(LEVELS as readonly unknown[]).includes(level)) throw new InvalidArgumentError('options.level', "'all' | 'leads' | 'members'", level);
  let selected: Selected[] = [];
  let unregistered: string[] | undefined;
  if (isRegistryHierarchy(hierarchy)) ({ selected, unregistered } = fromRegistry(hierarchy, level as Level));
  else if (AgentQuery.is(hierarchy)) selected = fromQuery(hierarchy, level as Level);
  else {
    checked!.teams.forEach((team, t) => {
      if (level !== 'members') selected.push({ pid: team.lead, role: 'lead', team: t });
      if (level !== 'leads') for (const pid of team.members) selected.push({ pid, role: 'member', team: t });
    });
  }
  const { level: _level, ...broadcastOptions } = options;
  if (!registryBacked) {
    checkBroadcastOptions(broadcastOptions, selected.length);
    return broadcastSupervised(from, selected.map((s) => s.pid), message, broadcastOptions).then((outcome) => shape(outcome, selected, undefined));
  }
  // read from the registry, the number of agents is known only now: a quorum above it is an outcome, not a bad argument
  const strategy: unknown = broadcastOptions.strategy;
  let quorum: number | undefined;
  if (typeof strategy === 'object' && strategy !== null && 'quorum' in strategy) {
    quorum = (strategy as { quorum: unknown }).quorum as number;
    if (typeof quorum !== 'number' || !Number.isSafeInteger(quorum) || quorum < 1) throw new InvalidArgumentError('options.strategy.quorum', 'a positive integer', quorum);
  }
  checkBroadcastOptions(quorum === undefined ? broadcastOptions : { ...broadcastOptions, strategy: 'best_effort' }, selected.length);
  const node = kernelOf(from);
  if (strategy === 'all_or_nothing' && unregistered !== undefined && unregistered.length > 0) {
    // one of the hierarchy's agents cannot get it (not registered now): none does
    const results = selected.map((s) => ({ ...s, outcome: { ok: false, id: node.nextMessageId(), reason: 'aborted', attempts: 0, firstError: 'aborted', lastError: 'aborted' } as SendOutcome }));
    return Promise.resolve({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: results.length, results, unregistered });
  }
  const send = quorum !== undefined && quorum > selected.length ? { ...broadcastOptions, strategy: 'best_effort' as const } : broadcastOptions;
  return broadcastSupervised(from, selected.map((s) => s.pid), message, send).then((outcome) => {
    if (send === broadcastOptions) return shape(outcome, selected, unregistered);
    return shape({ ...outcome, ok: false, reason: 'quorum_not_reached' }, selected, unregistered);
  });
}

function shape(outcome: BroadcastOutcome, selected: Selected[], unregistered: string[] | undefined): HierarchyBroadcastOutcome {
  return {
    ok: outcome.ok,
    ...(outcome.reason === undefined ? {} : { reason: outcome.reason }),
    delivered: outcome.delivered,
    failed: outcome.failed,
    results: selected.map((s, i) => ({ ...s, outcome: outcome.results[i]!.outcome })),
    ...(unregistered === undefined ? {} : { unregistered }),
  };
}

type Level = 'all' | 'leads' | 'members';
type Selected = { pid: Pid; role: 'lead' | 'member'; team: number; key?: string; teamName?: string };

const wanted = (level: Level, role: 'lead' | 'member'): boolean => level === 'all' || (level === 'leads' ? role === 'lead' : role === 'member');
const roleOf = (e: AgentEntry): 'lead' | 'member' | undefined => (e.meta.role === 'lead' || e.meta.role === 'member' ? e.meta.role : undefined);

/**
 * A registry hierarchy's agents now, team by team (the lead first): each recorded key at its
 * current pid, with the role the registry gives it (the recorded one when it registered again
 * without a team; left out when it moved to another team), then the agents that joined the team
 * in the registry since, in registration order. Keys with no registration now are listed apart.
 */
function fromRegistry(h: RegistryHierarchy, level: Level): { selected: Selected[]; unregistered: string[] } {
  const selected: Selected[] = [];
  const unregistered: string[] = [];
  const taken = new Set<string>();
  const registry = readsOf(h);
  h.teams.forEach((team, t) => {
    const place = (key: string, recorded: 'lead' | 'member'): void => {
      taken.add(key);
      const e = registry.lookup(key);
      if (e === undefined) {
        if (wanted(level, recorded)) unregistered.push(key);
        return;
      }
      if (e.meta.team !== undefined && e.meta.team !== team.name) return; // moved to another team
      const role = (e.meta.team === team.name ? roleOf(e) : undefined) ?? recorded;
      if (wanted(level, role)) selected.push({ pid: e.pid, role, team: t, key, teamName: team.name });
    };
    place(team.lead, 'lead');
    for (const m of team.members) place(m, 'member');
    for (const e of registry.members(team.name)) {
      const role = roleOf(e);
      if (role === undefined || taken.has(e.key) || !wanted(level, role)) continue;
      taken.add(e.key);
      selected.push({ pid: e.pid, role, team: t, key: e.key, teamName: team.name });
    }
  });
  // leads first within a team (a member may have become its lead), as for a pid hierarchy
  return { selected: sortByTeam(selected), unregistered };
}

/** A query's agents with role `'lead'` or `'member'`, grouped by team in the order the teams are first met, the leads first. */
function fromQuery(q: AgentQuery, level: Level): Selected[] {
  const teams = new Map<string, number>();
  const selected: Selected[] = [];
  for (const e of q.entries()) {
    const role = roleOf(e);
    if (role === undefined || !wanted(level, role)) continue;
    const teamName = e.meta.team ?? '';
    if (!teams.has(teamName)) teams.set(teamName, teams.size);
    selected.push({ pid: e.pid, role, team: teams.get(teamName)!, key: e.key, ...(e.meta.team === undefined ? {} : { teamName }) });
  }
  return sortByTeam(selected);
}

function sortByTeam(found: Selected[]): Selected[] {
  // one copy per process (one holding several keys is one agent)
  const seen = new Set<string>();
  const selected = found.filter((s) => !seen.has(pidKey(s.pid)) && seen.add(pidKey(s.pid)));
  // stable: within a team, leads before members, each in the order found
  return selected.map((s, i) => ({ s, i })).sort((a, b) => a.s.team - b.s.team || (a.s.role === b.s.role ? 0 : a.s.role === 'lead' ? -1 : 1) || a.i - b.i).map((x) => x.s);
}
