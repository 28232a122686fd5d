// A transaction inside a transaction that throws, caught by the outer one: the inner one is all or
// none too (its writes undone), the outer one's writes are kept.
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStore } from '../../../src/agents/store/AgentStore.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-nested-', 'agents.db');
const opened: AgentStore[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});

describe.each(['memory', 'sqlite'] as const)('the %s agent store, nested transactions', (kind) => {
  it('undoes an inner transaction that throws (caught by the outer), keeps the outer writes', () => {
    const store = kind === 'memory' ? new MemoryAgentStore() : new SqliteAgentStore(tmpfile());
    opened.push(store);
    store.put('c', 'k', 'kept', 0);
    const r = store.transaction(() => {
      store.put('c', 'k', 'a', 1);
      try {
        store.transaction(() => {
          store.put('c', 'k', 'b', 2);
          store.delete('c', 'k', 'kept');
          throw new Error('inner fails');
        });
      } catch {
        // the outer one goes on
      }
      store.put('c', 'k', 'c', 3);
      return 'done';
    });
    expect(r).toBe('done');
    expect(store.loadAll('c').records.map((x) => [x.key, x.value])).toEqual([
      ['a', 1],
      ['c', 3],
      ['kept', 0],
    ]);
  });
});
