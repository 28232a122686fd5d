import { types } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import type { AgentEntry, AgentWhere } from './types.js';
import type { Where } from './validate.js';

/**
 * A registry query as a value: which agents, asked again each time it is used. Functions that take a
 * list of pids can take one in its place and resolve it when they run ({@link resolveAgents}), so a
 * registered agent that restarted (a new pid under the same key) is found again.
 */
export class AgentQuery {
  /** The registry's name. */
  readonly registry: string;
  /** The query as given (validated). */
  readonly where: AgentWhere;
  readonly #read: (where: Where) => AgentEntry[];
  readonly #where: Where;

  /** @internal Made by `AgentRegistryHandle.select`: `read` answers a validated query as the registry's reads do. */
  constructor(registry: string, read: (where: Where) => AgentEntry[], where: AgentWhere, validated: Where) {
    this.registry = registry;
    this.where = where;
    this.#read = read;
    this.#where = validated;
    Object.freeze(this);
  }

  /** The entries the query selects now (none once the registry stopped for good). */
  entries(): AgentEntry[] {
    return this.#read(this.#where);
  }

  /** The pids of {@link entries}. */
  pids(): Pid[] {
    return this.entries().map((e) => e.pid);
  }

  /** A brand check (never runs a proxy's traps). */
  static is(value: unknown): value is AgentQuery {
    return typeof value === 'object' && value !== null && #where in value;
  }

  toString(): string {
    return `AgentQuery(${this.registry}, ${JSON.stringify(this.where)})`;
  }
}

/** True for a query made by an `AgentRegistry`'s `select`. */
export function isAgentQuery(value: unknown): value is AgentQuery {
  return AgentQuery.is(value);
}

/**
 * The pids `agents` stands for now: a query's current matches, or a list of pids as given (a copy;
 * each must be a Pid). What a function that accepts either calls when it runs. `argument` names the
 * argument in the typed error.
 */
export function resolveAgents(agents: AgentQuery | readonly Pid[], argument = 'agents'): Pid[] {
  if (AgentQuery.is(agents)) return agents.pids();
  if (types.isProxy(agents) || !Array.isArray(agents)) throw new InvalidArgumentError(argument, 'an array of Pids or an AgentQuery (registry.select(...))', agents);
  // each element read from its descriptor: a getter (or a hole) is refused without running any code of the list
  const list = agents as readonly unknown[];
  const out: Pid[] = [];
  for (let i = 0; i < list.length; i++) {
    const d = Object.getOwnPropertyDescriptor(list, i);
    if (d === undefined || !('value' in d)) throw new InvalidArgumentError(`${argument}[${i}]`, 'a Pid (a plain array element)', d === undefined ? undefined : '(a getter)');
    if (!isPid(d.value)) throw new InvalidArgumentError(`${argument}[${i}]`, 'a Pid', d.value);
    out.push(d.value);
  }
  return out;
}
