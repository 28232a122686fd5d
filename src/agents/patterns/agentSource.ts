import { AgentQuery } from '../registry/query.js';
import type { Pid, Target } from '../../runtime/Pid.js';
import { pidKey, targetKey } from './shared.js';

/**
 * @internal Where the patterns that take a list of agents get them: the list as given, or an
 * `AgentQuery` (`registry.select(...)`) asked again each time the pattern resolves it.
 */

/** A list of agents (pids or names), or a registry query standing for one. */
export type AgentsOrQuery<T extends Target = Pid | string> = readonly T[] | AgentQuery;

/**
 * The agents `source` stands for now: the list as given (a copy), or the query's current pids,
 * each once (a process registered under several keys the query selects is one agent).
 */
export function resolveSource<T extends Target>(source: AgentsOrQuery<T>): T[] {
  if (!AgentQuery.is(source)) return [...source];
  const seen = new Set<string>();
  const out: Pid[] = [];
  for (const pid of source.pids()) {
    const key = pidKey(pid);
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(pid);
  }
  return out as T[];
}

/** The pids the query answers now that are not among `known` (a restarted agent's new pid, a newcomer). */
export function newcomers(source: AgentQuery, known: readonly Target[]): Pid[] {
  const seen = new Set(known.map(targetKey));
  return resolveSource<Pid>(source).filter((pid) => !seen.has(targetKey(pid)));
}

export { AgentQuery };
