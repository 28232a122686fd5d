import { realpathSync } from 'node:fs';
import path from 'node:path';
import { checkKeys, InvalidArgumentError, isKeelError, StoreUnavailableError } from '../../errors.js';
import { kernelOf } from '../../runtime/kernel.js';
import type { Node } from '../../runtime/types.js';
import type { AgentStore, AgentStoreConfig } from './AgentStore.js';
import { MemoryAgentStore } from './MemoryAgentStore.js';
import { NODE_BUSY_TIMEOUT_MS, NODE_LOCK_WAIT_MS } from '../../delivery/stores/sqliteFile.js';
import type { Kernel } from '../../runtime/kernel.js';
import { SqliteAgentStore, type SqliteAgentStoreOptions } from './SqliteAgentStore.js';

/**
 * @internal The agent stores of a node: the one its options name (`services: { agents: { store } }`)
 * and those components name themselves (`{ store }`), opened on first use, one per file (two
 * components on one path share it), closed when the node has shut down (after its processes).
 */

/** The node's configured store (validated at `createNode`, opened on first use). */
const configured = new WeakMap<Node, AgentStoreConfig>();
/** Open stores by `memory` or the resolved file. */
const open = new WeakMap<Node, Map<string, AgentStore>>();

const EXPECTED = "{ kind: 'memory' } | { kind: 'sqlite', path: string }";

/** The file a path names, through symlinks (of the file or of its directory): two paths to one file open one store. */
function realFile(file: string): string {
  const resolved = path.resolve(file);
  try {
    return realpathSync(resolved);
  } catch {
    try {
      return path.join(realpathSync(path.dirname(resolved)), path.basename(resolved)); // a file to create
    } catch {
      return resolved; // no such directory: the open fails with its typed error
    }
  }
}

/** Validates a store option (`argument` names it in the error): a config, or an `AgentStore` given as is. */
export function checkStoreOption(store: unknown, argument: string): AgentStoreConfig | AgentStore {
  if (typeof store !== 'object' || store === null) throw new InvalidArgumentError(argument, EXPECTED, store);
  try {
    return readStoreOption(store, argument);
  } catch (e) {
    if (isKeelError(e)) throw e;
    // a getter or a proxy trap threw while the option was read
    throw new InvalidArgumentError(argument, `${EXPECTED}, readable`, store, `reading it threw: ${e instanceof Error ? e.message : String(e)}`);
  }
}

function readStoreOption(store: object, argument: string): AgentStoreConfig | AgentStore {
  const s = store as { kind?: unknown; path?: unknown; put?: unknown };
  if (typeof s.put === 'function') {
    for (const m of ['insert', 'delete', 'deleteAll', 'loadAll', 'transaction', 'close'] as const) {
      if (typeof (store as Record<string, unknown>)[m] !== 'function') throw new InvalidArgumentError(argument, `${EXPECTED}, or an AgentStore (it has no ${m}())`, store);
    }
    return store as AgentStore;
  }
  if (s.kind === 'memory') {
    checkKeys(store, ['kind'], argument);
    return { kind: 'memory' };
  }
  if (s.kind === 'sqlite') {
    checkKeys(store, ['kind', 'path'], argument);
    if (typeof s.path !== 'string' || s.path === '') throw new InvalidArgumentError(`${argument}.path`, 'a file path', s.path);
    return { kind: 'sqlite', path: s.path };
  }
  throw new InvalidArgumentError(`${argument}.kind`, "'memory' | 'sqlite'", s.kind);
}

/** @internal `createNode`'s `services.agents`: validated (before the node exists), then recorded for the node. */
export function agentServicesOptions(services: unknown): AgentStoreConfig | undefined {
  if (typeof services !== 'object' || services === null) return undefined;
  let agents: unknown;
  try {
    agents = (services as { agents?: unknown }).agents;
  } catch {
    return undefined; // options that cannot be read are the node's typed error to throw
  }
  if (agents === undefined) return undefined;
  if (typeof agents !== 'object' || agents === null) throw new InvalidArgumentError('services.agents', '{ store? }', agents);
  let store: unknown;
  try {
    checkKeys(agents, ['store'], 'services.agents');
    store = (agents as { store?: unknown }).store;
  } catch (e) {
    if (isKeelError(e)) throw e;
    throw new InvalidArgumentError('services.agents', '{ store? }, readable', agents, `reading it threw: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (store === undefined) return undefined;
  const checked = checkStoreOption(store, 'services.agents.store');
  if (typeof (checked as { put?: unknown }).put === 'function') throw new InvalidArgumentError('services.agents.store', EXPECTED, store);
  return checked as AgentStoreConfig;
}

/** @internal Records the node's configured store. */
export function configureAgentStore(node: Node, config: AgentStoreConfig | undefined): void {
  if (config !== undefined) configured.set(node, config);
}

/**
 * The store a component uses: its own option, else the node's configured one, else none (state then
 * lives in the node's memory only, through componentState). Opens it on first use: a store that
 * cannot be opened throws its typed error here (`StoreUnavailableError`, `MissingPeerError`, ...).
 */
export function agentStoreFor(node: Node, option: AgentStoreConfig | AgentStore | undefined): AgentStore | undefined {
  const config = option ?? configured.get(node);
  if (config === undefined) return undefined;
  if (typeof (config as AgentStore).put === 'function') return config as AgentStore;
  const c = config as AgentStoreConfig;
  const id = c.kind === 'memory' ? 'memory' : `sqlite:${realFile(c.path)}`;
  let byId = open.get(node);
  const known = byId?.get(id);
  if (known !== undefined) return known;
  const kernel = kernelOf(node);
  if (kernel.stopping || kernel.stopped) {
    // nothing would close it (its shutdown has run): a file opened now would stay claimed by this OS process
    throw new StoreUnavailableError(c.kind === 'memory' ? '(memory)' : path.resolve(c.path), 'its node has shut down', undefined, 'use a store of a running node', undefined, 'agent store');
  }
  const store = c.kind === 'memory' ? new MemoryAgentStore() : new SqliteAgentStore(c.path, nodeStoreOptions(node, kernel));
  if (byId === undefined) {
    byId = new Map();
    open.set(node, byId);
    const opened = byId;
    kernel.onShutdown(() => {
      for (const s of opened.values()) s.close();
      opened.clear();
    });
  }
  byId.set(id, store);
  return store;
}

/**
 * A node's SQLite agent store: a statement waits for a lock at most NODE_BUSY_TIMEOUT_MS (the event
 * loop waits with it); the writes that meet one are kept and tried again on the node's clock, and
 * what becomes of them is logged and reported (`keel.agent_store.*`).
 */
function nodeStoreOptions(node: Node, kernel: Kernel): SqliteAgentStoreOptions {
  return {
    busyTimeoutMs: NODE_BUSY_TIMEOUT_MS,
    lockWaitMs: NODE_LOCK_WAIT_MS,
    clock: { now: () => kernel.timerNow(), setTimer: (ms, fn) => kernel.setTimer(ms, fn) },
    report(r, file) {
      if (r.outcome === 'delayed') {
        kernel.log('warn', `the agent store ${file} could not be written; ${r.writes} write(s) are kept and tried again`, r.error);
        node.telemetry.execute('keel.agent_store.write_delayed', { writes: r.writes }, { path: file, error: r.error });
      } else if (r.outcome === 'written') {
        node.telemetry.execute('keel.agent_store.delayed_written', { writes: r.writes, tries: r.tries }, { path: file });
      } else {
        kernel.log('error', `the agent store ${file} could not write ${r.writes} write(s) it had accepted; they are lost`, r.error);
        node.telemetry.execute('keel.agent_store.write_lost', { writes: r.writes }, { path: file, error: r.error });
      }
    },
  };
}
