import { types } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import type { AgentRegistryHandle } from '../registry/handle.js';
import type { AgentEntry } from '../registry/types.js';
import { pidKey } from './shared.js';

/** A hierarchy's place for an agent, as `createHierarchy` records it in the registry (`role`). */
export type HierarchyRole = 'supervisor' | 'lead' | 'member';

/** An agent of `createHierarchy`'s spec: its pid (it must hold one registration), or its registry key. */
export type HierarchyAgent = Pid | string;

export interface HierarchySpec {
  /** The root (typically the sender); recorded with role `'supervisor'`, it does not receive broadcasts. */
  readonly supervisor: HierarchyAgent;
  /** Each team: its lead and members; `name` is the team recorded in the registry (default `<hierarchy>/<index>`). */
  readonly teams: readonly { readonly lead: HierarchyAgent; readonly members: readonly HierarchyAgent[]; readonly name?: string }[];
  /** The hierarchy's name: the supervisor's `team` in the registry (default: the supervisor's key). */
  readonly name?: string;
}

/** One team of a registry-backed hierarchy: registry keys, which outlive the pids. */
export interface HierarchyTeam {
  /** The `team` recorded for its lead and members. */
  readonly name: string;
  readonly lead: string;
  readonly members: readonly string[];
}

/** @internal How a registry hierarchy reads its registry (kept off the value, which users see). */
export interface HierarchyReads {
  /** The entry under `key` now. */
  readonly lookup: (key: string) => AgentEntry | undefined;
  /** The entries whose `team` is `team` now (any health). */
  readonly members: (team: string) => AgentEntry[];
}

const reads = new WeakMap<object, HierarchyReads>();

/**
 * A hierarchy recorded in an `AgentRegistry` by {@link createHierarchy}: its agents by key, read
 * again from the registry at each `hierarchyBroadcast`, so an agent that restarted and registered
 * again under its key is reached at its new pid.
 */
export interface RegistryHierarchy {
  readonly name: string;
  /** The registry's name. */
  readonly registry: string;
  /** The supervisor's key. */
  readonly supervisor: string;
  readonly teams: readonly HierarchyTeam[];
  /**
   * The `{ team, role }` of a key in this hierarchy (undefined when it is not in it): what an agent
   * that registers again after a restart passes to `register` to keep its place in queries.
   */
  placeOf(key: string): { readonly team: string; readonly role: HierarchyRole } | undefined;
}

/** True for a hierarchy made by {@link createHierarchy}. */
export function isRegistryHierarchy(value: unknown): value is RegistryHierarchy {
  return typeof value === 'object' && value !== null && reads.has(value);
}

/** @internal The reads of a hierarchy made by {@link createHierarchy}. */
export function readsOf(hierarchy: RegistryHierarchy): HierarchyReads {
  return reads.get(hierarchy)!;
}

const MAX_TEXT = 256;

function checkName(value: unknown, argument: string): asserts value is string | undefined {
  if (value !== undefined && (typeof value !== 'string' || value === '' || value.length > MAX_TEXT)) {
    throw new InvalidArgumentError(argument, `a non-empty string of at most ${MAX_TEXT} characters`, value);
  }
}

/**
 * The fields of a plain object (or the items of an array), read without running any of its code:
 * a proxy, a getter or (for an object) a key not in `keys` is refused with the typed error.
 */
function readObject(value: unknown, argument: string, keys: readonly string[]): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || types.isProxy(value)) {
    throw new InvalidArgumentError(argument, `a plain object { ${keys.join(', ')} }`, types.isProxy(value) ? '[Proxy]' : value);
  }
  const out: Record<string, unknown> = {};
  for (const key of Reflect.ownKeys(value)) {
    const d = Object.getOwnPropertyDescriptor(value, key)!;
    if (typeof key !== 'string' || !keys.includes(key)) throw new InvalidArgumentError(`${argument}.${String(key)}`, `no such field (only ${keys.join(', ')})`, undefined);
    if (!('value' in d)) throw new InvalidArgumentError(`${argument}.${key}`, 'a data property (not a getter)', undefined);
    out[key] = d.value;
  }
  return out;
}

function readArray(value: unknown, argument: string, expected: string): unknown[] {
  if (!Array.isArray(value) || types.isProxy(value)) throw new InvalidArgumentError(argument, expected, types.isProxy(value) ? '[Proxy]' : value);
  return Array.from({ length: value.length }, (_v, i) => {
    const d = Object.getOwnPropertyDescriptor(value, i);
    if (d !== undefined && !('value' in d)) throw new InvalidArgumentError(`${argument}[${i}]`, 'a data property (not a getter)', undefined);
    return d?.value;
  });
}

function checkRegistry(registry: unknown): asserts registry is AgentRegistryHandle {
  const ok =
    typeof registry === 'object' &&
    registry !== null &&
    !types.isProxy(registry) &&
    ['lookup', 'query', 'update'].every((m) => typeof (registry as Record<string, unknown>)[m] === 'function');
  if (!ok) throw new InvalidArgumentError('registry', 'an AgentRegistry handle (AgentRegistry.start)', registry);
}

/**
 * Records a two-level hierarchy in an agent registry: the supervisor gets role `'supervisor'`
 * (team: the hierarchy's name), each team's lead `'lead'` and its members `'member'` (team: the
 * team's name). Every agent must be registered already (given by pid or by key); a pid that holds
 * several keys must be given by key. The answer names the agents by key, which survive restarts:
 * `hierarchyBroadcast` reads the registry again each time.
 *
 * Throws `ERR_INVALID_ARGUMENT` for a malformed spec, an agent that is not registered, an agent
 * listed twice; a registration that vanished while the roles were recorded rejects the same way.
 *
 * @example
 * ```ts
 * const h = await createHierarchy(registry, { supervisor: 'boss', teams: [{ lead: 'lead-a', members: ['a1', 'a2'] }] });
 * await hierarchyBroadcast(node, h, { type: 'pause' }, { level: 'leads' });
 * ```
 */
export async function createHierarchy(registry: AgentRegistryHandle, spec: HierarchySpec): Promise<RegistryHierarchy> {
  checkRegistry(registry);
  const given = readObject(spec, 'spec', ['supervisor', 'teams', 'name']);
  checkName(given.name, 'spec.name');
  const teams = readArray(given.teams, 'spec.teams', 'an array of { lead, members, name? }');

  // every registration, by process, read once (a pid is found by its entries)
  let byPid: Map<string, string[]> | undefined;
  const keysOf = (pid: Pid): string[] => {
    if (byPid === undefined) {
      byPid = new Map();
      for (const e of registry.query({ health: 'any' })) {
        const k = pidKey(e.pid);
        byPid.set(k, [...(byPid.get(k) ?? []), e.key]);
      }
    }
    return byPid.get(pidKey(pid)) ?? [];
  };
  const seen = new Set<string>();
  // by process too: one process registered under two keys is one agent (it would be sent its own broadcast)
  const seenPids = new Map<string, { key: string; argument: string }>();
  const keyOf = (agent: unknown, argument: string): string => {
    let key: string;
    let pid: Pid;
    if (typeof agent === 'string') {
      const entry = registry.lookup(agent);
      if (entry === undefined) throw new InvalidArgumentError(argument, 'a registered agent (a key of the registry)', agent, 'register it first: registry.register(pid, meta, { key })');
      key = agent;
      pid = entry.pid;
    } else if (isPid(agent)) {
      pid = agent;
      const keys = keysOf(agent);
      if (keys.length === 0) throw new InvalidArgumentError(argument, 'a registered agent (a pid the registry holds)', agent, 'register it first: registry.register(pid, meta, { key })');
      if (keys.length > 1) throw new InvalidArgumentError(argument, 'a pid with one registration (give its key)', agent, `it is registered as ${keys.join(', ')}`);
      key = keys[0]!;
    } else throw new InvalidArgumentError(argument, 'a Pid or a registry key', agent);
    if (seen.has(key)) throw new InvalidArgumentError(argument, 'an agent that appears once in the hierarchy', agent, 'a hierarchy is a tree: list each agent in one place');
    const first = seenPids.get(pidKey(pid));
    if (first !== undefined) {
      throw new InvalidArgumentError(
        argument,
        'an agent that appears once in the hierarchy',
        agent,
        `its key '${key}' and the key '${first.key}' (\`${first.argument}\`) are one process, ${String(pid)}: a hierarchy is a tree: list each agent in one place`,
      );
    }
    seen.add(key);
    seenPids.set(pidKey(pid), { key, argument });
    return key;
  };

  const supervisor = keyOf(given.supervisor, 'spec.supervisor');
  const name = (given.name as string | undefined) ?? supervisor;
  const teamNames = new Set<string>();
  const made: HierarchyTeam[] = teams.map((value, t) => {
    const team = readObject(value, `spec.teams[${t}]`, ['lead', 'members', 'name']);
    checkName(team.name, `spec.teams[${t}].name`);
    const teamName = (team.name as string | undefined) ?? `${name}/${t}`;
    if (teamName === name || teamNames.has(teamName)) throw new InvalidArgumentError(`spec.teams[${t}].name`, 'a team name used once (and not the hierarchy\'s name)', teamName);
    teamNames.add(teamName);
    const lead = keyOf(team.lead, `spec.teams[${t}].lead`);
    const members = readArray(team.members, `spec.teams[${t}].members`, 'an array of Pids or registry keys');
    const keys = members.map((m, i) => keyOf(m, `spec.teams[${t}].members[${i}]`));
    return Object.freeze({ name: teamName, lead, members: Object.freeze(keys) });
  });

  const places = new Map<string, { team: string; role: HierarchyRole }>([[supervisor, Object.freeze({ team: name, role: 'supervisor' as const })]]);
  for (const team of made) {
    places.set(team.lead, Object.freeze({ team: team.name, role: 'lead' as const }));
    for (const m of team.members) places.set(m, Object.freeze({ team: team.name, role: 'member' as const }));
  }
  for (const [key, place] of places) {
    const r = await registry.update(key, place);
    if (r !== 'ok') throw new InvalidArgumentError('spec', 'registered agents', key, `${key} was unregistered while the hierarchy was recorded`);
  }
  const hierarchy: RegistryHierarchy = Object.freeze({
    name,
    registry: registry.name,
    supervisor,
    teams: Object.freeze(made),
    placeOf: (key: string) => places.get(key),
  });
  reads.set(hierarchy, { lookup: (key) => registry.lookup(key), members: (team) => registry.query({ team, health: 'any' }) });
  return hierarchy;
}
