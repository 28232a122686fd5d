// Custom AgentStores over a MemoryAgentStore, for the restart tests of the scheduler and the coordinator.
import type { AgentStore, AgentStoreLoad } from '../../../src/agents/store/AgentStore.js';
import type { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';

/** A store over `inner` whose loadAll answers `load` for it (a custom AgentStore, given as is). */
export function loadingStore(inner: MemoryAgentStore, load: (component: string, kind?: string) => AgentStoreLoad): AgentStore {
  return {
    kind: 'memory',
    put: (c, k, key, v) => inner.put(c, k, key, v),
    insert: (c, k, key, v) => inner.insert(c, k, key, v),
    delete: (c, k, key) => inner.delete(c, k, key),
    deleteAll: (c, k) => inner.deleteAll(c, k),
    loadAll: load,
    transaction: (fn) => inner.transaction(fn),
    close: () => inner.close(),
  };
}

/** A store over `inner` whose first `failures` loadAll calls throw (the database briefly locked), then answer; `loads` counts the calls. */
export function lockedAtFirst(inner: MemoryAgentStore, failures: number): AgentStore & { loads: number } {
  const store = loadingStore(inner, (c, k) => {
    store.loads++;
    if (store.loads <= failures) throw new Error('SQLITE_BUSY: database is locked');
    return inner.loadAll(c, k);
  }) as AgentStore & { loads: number };
  store.loads = 0;
  return store;
}
