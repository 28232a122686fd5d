import type { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';
import type { ComponentHandle } from '../component.js';
import type { AgentQuery } from './query.js';
import type { AgentEntry, AgentHealth, AgentMetaInput, AgentRef, AgentRegisterResult, AgentRegistryStats, AgentUpdateResult, AgentWhere, RegisterOptions } from './types.js';

/** A started registry. Reads (`lookup`, `query`, `pids`) answer from its index directly, without a call. */
export interface AgentRegistryHandle extends ComponentHandle {
  /**
   * Registers `agent` (a pid, or a process's own Context) under `options.key`. The same key from
   * another pid replaces the entry (a restarted agent); the entry vanishes when the process exits.
   */
  register(agent: Pid | Context<any>, meta?: AgentMetaInput, options?: RegisterOptions): Promise<AgentRegisterResult>;
  /** Changes some of an entry's metadata (counts as hearing from it). */
  update(ref: AgentRef, patch: AgentMetaInput): Promise<AgentUpdateResult>;
  /** Removes the entries `ref` names. */
  unregister(ref: AgentRef): Promise<'ok' | 'not_found'>;
  /** The agent is alive: its entries' `lastSeen` is now, with the `load` and `status` given. */
  heartbeat(ref: AgentRef, beat?: { readonly load?: number; readonly status?: AgentHealth }): Promise<AgentUpdateResult>;
  lookup(key: string): AgentEntry | undefined;
  query(where?: AgentWhere): AgentEntry[];
  /** The pids of `query(where)`. */
  pids(where?: AgentWhere): Pid[];
  /** The query as a value, resolved when used (`resolveAgents`). */
  select(where?: AgentWhere): AgentQuery;
  /** The number of entries. */
  count(): number;
  stats(): Promise<AgentRegistryStats>;
}
