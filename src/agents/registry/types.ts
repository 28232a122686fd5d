import type { Pid } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';

/** An agent's health as the registry sees it. */
export type AgentHealth = 'healthy' | 'unhealthy';

/** What an agent registers with (every field optional; `register` validates each). */
export interface AgentMetaInput {
  /** What the agent can do (each a non-empty string; duplicates are dropped). */
  readonly capabilities?: readonly string[];
  /** The task kinds it handles. */
  readonly kinds?: readonly string[];
  readonly team?: string;
  readonly role?: string;
  /** Its load now (a finite number ≥ 0; default 0). */
  readonly load?: number;
  /** The status it declares: `'unhealthy'` takes it out of healthy queries until it declares `'healthy'` again. */
  readonly status?: AgentHealth;
}

/** An agent's registered metadata, as queries answer it (a frozen snapshot: a change makes a new one). */
export interface AgentMeta {
  readonly capabilities: readonly string[];
  readonly kinds: readonly string[];
  readonly team: string | undefined;
  readonly role: string | undefined;
  readonly load: number;
  /** The status the agent declared last (register, update, heartbeat). */
  readonly status: AgentHealth;
  /** `'unhealthy'` when the agent declared so or missed its heartbeats; else `'healthy'`. */
  readonly health: AgentHealth;
  /** The node the agent runs on (from its pid). */
  readonly node: string;
  /** When the registry last heard from it (registration, update, heartbeat, poll answer), on the node's clock. */
  readonly lastSeen: number;
}

/** One registration. */
export interface AgentEntry {
  readonly key: string;
  readonly pid: Pid;
  readonly meta: AgentMeta;
}

/** A query: every field given must match (capabilities: all of them). */
export interface AgentWhere {
  readonly capability?: string;
  readonly capabilities?: readonly string[];
  readonly kind?: string;
  readonly team?: string;
  readonly role?: string;
  /** Default `'healthy'`: an unhealthy agent is left out unless asked for. */
  readonly health?: AgentHealth | 'any';
  /** At most this many entries (a positive integer). */
  readonly limit?: number;
}

export interface AgentRegistryOptions {
  /** Registers the registry under this name (default `keel.agent_registry.<n>`). */
  readonly name?: string;
  /**
   * Heartbeats are expected every this many ms (node clock); off by default (then an agent is
   * unhealthy only when it declares so). A positive integer.
   */
  readonly heartbeatIntervalMs?: number;
  /** An agent not heard from for this many intervals becomes unhealthy (default 3; an integer 1..1000). */
  readonly missedHeartbeats?: number;
  /** Also ask agents not heard from for an interval for their `status` (the agent protocol); needs `heartbeatIntervalMs`. */
  readonly poll?: boolean;
}

/** `register`'s options. */
export interface RegisterOptions {
  /** The registration's key (default: the process's registered name, else its pid's text). */
  readonly key?: string;
}

/** Who a write is about: a key, or every key a process holds (its pid, or its own Context). */
export type AgentRef = string | Pid | Context<any>;

export type AgentRegisterResult = { readonly key: string } | { readonly error: 'noproc' };
/**
 * `'not_registered'`: no entry (never registered, or the registry lost its table: an agent then
 * registers again). `'replaced'` / `'unregistered'` (a pid's update or heartbeat only): that live
 * process's entries were removed on purpose, by another process's registration of its key or by
 * `unregister` (an agent then stops beating and stays unregistered).
 */
export type AgentUpdateResult = 'ok' | { readonly error: 'not_registered' | 'replaced' | 'unregistered' };

export interface AgentRegistryStats {
  readonly agents: number;
  readonly processes: number;
  readonly unhealthy: number;
  readonly capabilities: number;
  readonly registered: number;
  readonly unregistered: { readonly down: number; readonly explicit: number; readonly replaced: number };
  readonly heartbeats: number;
  readonly polls: number;
}
