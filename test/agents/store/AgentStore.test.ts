// The agent store on its own: one contract for memory and SQLite (records by component, kind and
// key; values copied in as plain data; insert-once; transactions all or none), what SQLite adds
// (WAL, reopening, corrupt rows skipped and counted, typed errors at open), and the node option.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import type { AgentStore } from '../../../src/agents/store/AgentStore.js';
import { MemoryAgentStore } from '../../../src/agents/store/MemoryAgentStore.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { createNode } from '../../../src/index.js';
import { expectKeelError, revokedProxy, thrown, useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-store-', 'agents.db');
const track = useNodes();

const opened: AgentStore[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});
function make(kind: 'memory' | 'sqlite'): AgentStore {
  const store = kind === 'memory' ? new MemoryAgentStore() : new SqliteAgentStore(tmpfile());
  opened.push(store);
  return store;
}

describe.each(['memory', 'sqlite'] as const)('the %s agent store', (kind) => {
  it('puts, replaces, loads (in kind and key order, per component and kind) and deletes records', () => {
    const store = make(kind);
    store.put('c1', 'workflow', 'w2', { state: 'running', tasks: [1, 2] });
    store.put('c1', 'workflow', 'w1', { state: 'running' });
    store.put('c1', 'result', 'w1/t1', 42n);
    store.put('c2', 'workflow', 'w1', 'other component');
    store.put('c1', 'workflow', 'w1', { state: 'done', at: new Date(5) });
    expect(store.loadAll('c1')).toEqual({
      records: [
        { component: 'c1', kind: 'result', key: 'w1/t1', value: 42n },
        { component: 'c1', kind: 'workflow', key: 'w1', value: { state: 'done', at: new Date(5) } },
        { component: 'c1', kind: 'workflow', key: 'w2', value: { state: 'running', tasks: [1, 2] } },
      ],
      corrupt: [],
    });
    expect(store.loadAll('c1', 'result').records.map((r) => r.key)).toEqual(['w1/t1']);
    expect(store.delete('c1', 'workflow', 'w2')).toBe(true);
    expect(store.delete('c1', 'workflow', 'w2')).toBe(false);
    expect(store.deleteAll('c1', 'workflow')).toBe(1);
    expect(store.deleteAll('c1')).toBe(1);
    expect(store.loadAll('c1')).toEqual({ records: [], corrupt: [] });
    expect(store.loadAll('c2').records).toHaveLength(1);
  });

  it('copies a value in: a later change of the caller object is not stored', () => {
    const store = make(kind);
    const value = { n: 1, list: [1] };
    store.put('c', 'k', 'a', value);
    value.n = 2;
    value.list.push(2);
    expect(store.loadAll('c').records[0]!.value).toEqual({ n: 1, list: [1] });
  });

  it('records a key once with insert: the first value wins (a task result recorded once)', () => {
    const store = make(kind);
    expect(store.insert('coord', 'result', 'wf-1/fetch', { ok: 1 })).toBe(true);
    expect(store.insert('coord', 'result', 'wf-1/fetch', { ok: 2 })).toBe(false);
    expect(store.loadAll('coord').records.map((r) => r.value)).toEqual([{ ok: 1 }]);
  });

  it('runs a transaction all or none', () => {
    const store = make(kind);
    store.put('c', 'k', 'kept', 1);
    expect(() =>
      store.transaction(() => {
        store.put('c', 'k', 'new', 2);
        store.delete('c', 'k', 'kept');
        throw new Error('midway');
      }),
    ).toThrow('midway');
    expect(store.loadAll('c').records.map((r) => [r.key, r.value])).toEqual([['kept', 1]]);
    expect(store.transaction(() => (store.put('c', 'k', 'new', 2), store.insert('c', 'k', 'kept', 9)))).toBe(false);
    expect(store.loadAll('c').records.map((r) => [r.key, r.value])).toEqual([
      ['kept', 1],
      ['new', 2],
    ]);
  });

  it('refuses a value that is not plain data with ERR_NOT_SERIALIZABLE naming where, and writes nothing', () => {
    const store = make(kind);
    const throwing = Object.defineProperty({}, 'bad', {
      enumerable: true,
      get() {
        throw new Error('no');
      },
    });
    const cycle: Record<string, unknown> = {};
    cycle.self = cycle;
    const cases: [unknown, string][] = [
      [() => 1, 'value is a function'],
      [{ a: [Symbol('s')] }, 'value.a[0] is a symbol'],
      [new (class Point {})(), 'value is'],
      [throwing, 'value.bad'],
      [revokedProxy(), 'value'],
      [{ p: Promise.resolve() }, 'value.p'],
    ];
    for (const [value, where] of cases) expectKeelError(thrown(() => store.put('c', 'k', 'x', value)), 'ERR_NOT_SERIALIZABLE', 'an agent store value', where);
    // plain data with a cycle, __proto__ as an own key, NaN and -0 are data
    const proto = JSON.parse('{"__proto__": {"polluted": true}}') as object;
    store.put('c', 'k', 'cycle', cycle);
    store.put('c', 'k', 'proto', proto);
    store.put('c', 'k', 'nan', [NaN, -0]);
    const back = new Map(store.loadAll('c').records.map((r) => [r.key, r.value]));
    expect(back.size).toBe(3);
    const c = back.get('cycle') as Record<string, unknown>;
    expect(c.self).toBe(c);
    expect(Object.getOwnPropertyNames(back.get('proto'))).toEqual(['__proto__']);
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
    expect(back.get('nan')).toEqual([NaN, -0]);
  });

  it('refuses an empty or non-string component, kind or key with ERR_INVALID_ARGUMENT', () => {
    const store = make(kind);
    expectKeelError(thrown(() => store.put('', 'k', 'x', 1)), 'ERR_INVALID_ARGUMENT', '`component`');
    expectKeelError(thrown(() => store.put('c', 5 as never, 'x', 1)), 'ERR_INVALID_ARGUMENT', '`kind`');
    expectKeelError(thrown(() => store.insert('c', 'k', undefined as never, 1)), 'ERR_INVALID_ARGUMENT', '`key`');
    expect(store.loadAll('c').records).toEqual([]);
  });

  it('refuses an empty or non-string component or kind for deleteAll and loadAll with ERR_INVALID_ARGUMENT, and removes nothing', () => {
    const store = make(kind);
    store.put('c', 'k', 'x', 1);
    expectKeelError(thrown(() => store.deleteAll(undefined as never)), 'ERR_INVALID_ARGUMENT', '`component`');
    expectKeelError(thrown(() => store.deleteAll({} as never)), 'ERR_INVALID_ARGUMENT', '`component`');
    expectKeelError(thrown(() => store.deleteAll('c', '')), 'ERR_INVALID_ARGUMENT', '`kind`');
    expectKeelError(thrown(() => store.loadAll(42 as never)), 'ERR_INVALID_ARGUMENT', '`component`');
    expectKeelError(thrown(() => store.loadAll('c', {} as never)), 'ERR_INVALID_ARGUMENT', '`kind`');
    expect(store.loadAll('c').records.map((r) => r.key)).toEqual(['x']);
  });

  it('refuses a transaction whose fn is not a function or answers a promise (ERR_INVALID_ARGUMENT), and keeps none of its writes', () => {
    const store = make(kind);
    expectKeelError(thrown(() => store.transaction(42 as never)), 'ERR_INVALID_ARGUMENT', '`fn`');
    const err = thrown(() =>
      store.transaction(() => {
        store.put('c', 'k', 'before-await', 1);
        return Promise.resolve('later');
      }),
    );
    expectKeelError(err, 'ERR_INVALID_ARGUMENT', '`fn`');
    expect(store.loadAll('c').records).toEqual([]);
  });

  it('loads keys in code point order (as SQLite orders its text), astral characters included', () => {
    const store = make(kind);
    for (const key of ['\u{1F600}', '\uFFFF', 'a']) store.put('c', 'k', key, key);
    expect(store.loadAll('c').records.map((r) => r.key)).toEqual(['a', '\uFFFF', '\u{1F600}']);
  });

  it('refuses a kind or key with a lone surrogate (no UTF-8 form: SQLite would read it back as U+FFFD, two keys as one) with ERR_INVALID_ARGUMENT', () => {
    const store = make(kind);
    expectKeelError(thrown(() => store.put('c', 'k', 'w\uD800', 1)), 'ERR_INVALID_ARGUMENT', '`key`');
    expectKeelError(thrown(() => store.insert('c', 'k', 'w\uDBFF', 2)), 'ERR_INVALID_ARGUMENT', '`key`');
    expectKeelError(thrown(() => store.put('c', '\uDC00', 'x', 1)), 'ERR_INVALID_ARGUMENT', '`kind`');
    expectKeelError(thrown(() => store.loadAll('c', '\uDC00')), 'ERR_INVALID_ARGUMENT', '`kind`');
    // a component is a registered name, which may hold one: matched, never read back from a row
    store.put('c\uD800', 'k', 'x', 1);
    store.put('c\uDBFF', 'k', 'x', 2);
    expect(store.loadAll('c\uD800').records).toEqual([{ component: 'c\uD800', kind: 'k', key: 'x', value: 1 }]);
    expect(store.deleteAll('c\uDBFF')).toBe(1);
    expect(store.loadAll('c\uD800').records).toHaveLength(1);
    // a well-formed pair is a key like any other, read back as written
    store.put('c', 'k', 'w\u{1F600}', 3);
    expect(store.loadAll('c').records.map((r) => [r.key, r.value])).toEqual([['w\u{1F600}', 3]]);
  });

  it('throws ERR_STORE_UNAVAILABLE once closed', () => {
    const store = make(kind);
    store.close();
    expectKeelError(thrown(() => store.put('c', 'k', 'x', 1)), 'ERR_STORE_UNAVAILABLE', 'agent store', 'closed');
    expectKeelError(thrown(() => store.loadAll('c')), 'ERR_STORE_UNAVAILABLE');
  });
});

describe('the SQLite agent store', () => {
  it('is in WAL mode, and keeps its records when reopened', () => {
    const file = tmpfile();
    const a = new SqliteAgentStore(file);
    a.put('c', 'k', 'x', { n: 1 });
    a.close();
    const db = new Database(file, { readonly: true });
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    db.close();
    const b = new SqliteAgentStore(file);
    expect(b.loadAll('c').records).toEqual([{ component: 'c', kind: 'k', key: 'x', value: { n: 1 } }]);
    b.close();
  });

  it('a file deleted or replaced while open: writes are refused with ERR_STORE_UNAVAILABLE, not made into the unlinked file and lost', () => {
    const file = tmpfile();
    const store = new SqliteAgentStore(file);
    opened.push(store);
    store.put('c', 'k', 'before', 1);
    for (const f of [file, `${file}-wal`, `${file}-shm`]) fs.rmSync(f, { force: true });
    expectKeelError(thrown(() => store.put('c', 'k', 'after', 2)), 'ERR_STORE_UNAVAILABLE', file, 'deleted or replaced');
    expectKeelError(thrown(() => store.insert('c', 'k', 'after', 2)), 'ERR_STORE_UNAVAILABLE', 'deleted or replaced');
    expectKeelError(thrown(() => store.transaction(() => 1)), 'ERR_STORE_UNAVAILABLE', 'deleted or replaced');
    // a new file under the path is another store: still refused
    new Database(file).close();
    expectKeelError(thrown(() => store.delete('c', 'k', 'before')), 'ERR_STORE_UNAVAILABLE', 'deleted or replaced');
  });

  it('skips and counts a row it cannot decode, and loads the others', () => {
    const file = tmpfile();
    const a = new SqliteAgentStore(file);
    a.put('c', 'k', 'good', 'fine');
    a.put('c', 'k', 'bad', 'soon broken');
    a.close();
    const db = new Database(file);
    db.prepare("UPDATE agent_records SET value = x'ff0d6f' WHERE key = 'bad'").run();
    db.prepare("INSERT INTO agent_records VALUES ('c', 'k', 'text', 'not a blob')").run();
    db.close();
    const b = new SqliteAgentStore(file);
    const { records, corrupt } = b.loadAll('c');
    expect(records.map((r) => r.key)).toEqual(['good']);
    expect(corrupt.map((r) => r.key)).toEqual(['bad', 'text']);
    expect(corrupt[1]!.error).toBe('the value is string, not a blob');
    b.close();
  });

  it('fails to open with ERR_STORE_UNAVAILABLE saying what to do: a missing directory, a directory, not a database, another table', () => {
    const file = tmpfile();
    expectKeelError(thrown(() => new SqliteAgentStore(path.join(file, 'no', 'such', 'x.db'))), 'ERR_STORE_UNAVAILABLE', 'does not exist');
    expectKeelError(thrown(() => new SqliteAgentStore(path.dirname(file))), 'ERR_STORE_UNAVAILABLE', 'is a directory');
    fs.writeFileSync(file, 'this is not a database, just enough bytes to be read as a header by sqlite3 ........');
    expectKeelError(thrown(() => new SqliteAgentStore(file)), 'ERR_STORE_UNAVAILABLE', 'agent store');
    const other = tmpfile();
    const db = new Database(other);
    db.exec('CREATE TABLE agent_records (id INTEGER)');
    db.close();
    expectKeelError(thrown(() => new SqliteAgentStore(other)), 'ERR_STORE_UNAVAILABLE', 'not a Keel agent store');
  });

  it('claims the file for its OS process while open, and releases the claim when closed', () => {
    const file = tmpfile();
    const a = new SqliteAgentStore(file);
    const owner = (): unknown => {
      const db = new Database(file, { readonly: true });
      try {
        return db.prepare('SELECT os_pid FROM agent_store_owner').all();
      } finally {
        db.close();
      }
    };
    expect(owner()).toEqual([{ os_pid: process.pid }]);
    a.close();
    expect(owner()).toEqual([]);
    // a claim left by an OS process that is gone (killed) is taken over
    const db = new Database(file);
    db.prepare('INSERT INTO agent_store_owner (id, os_pid) VALUES (1, ?)').run(2 ** 22 + 12345);
    db.close();
    const b = new SqliteAgentStore(file);
    expect(owner()).toEqual([{ os_pid: process.pid }]);
    b.close();
  });

  it('is never shared by two nodes of one OS process (ERR_STORE_IN_USE); the file is free again once its node has shut down', async () => {
    const file = tmpfile();
    const a = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const b = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const store = agentStoreFor(a, undefined)!;
    expect(store.kind).toBe('sqlite');
    expect(agentStoreFor(a, { kind: 'sqlite', path: file })).toBe(store); // one per file per node
    expectKeelError(thrown(() => agentStoreFor(b, undefined)), 'ERR_STORE_IN_USE', 'agent store');
    await a.shutdown();
    expectKeelError(thrown(() => store.loadAll('c')), 'ERR_STORE_UNAVAILABLE');
    expect(agentStoreFor(b, undefined)!.loadAll('c')).toEqual({ records: [], corrupt: [] });
  });
});

describe('createNode services.agents', () => {
  it('refuses bad options with ERR_INVALID_ARGUMENT naming the option, before a node exists', () => {
    const bad: [unknown, string][] = [
      [5, '`services.agents`'],
      [{ store: 5 }, '`services.agents.store`'],
      [{ store: { kind: 'disk' } }, '`services.agents.store.kind`'],
      [{ store: { kind: 'sqlite' } }, '`services.agents.store.path`'],
      [{ store: { kind: 'sqlite', path: 'x', extra: 1 } }, 'services.agents.store'],
      [{ stores: {} }, 'services.agents'],
      [{ store: new MemoryAgentStore() }, '`services.agents.store`'],
    ];
    for (const [agents, argument] of bad) expectKeelError(thrown(() => createNode({ services: { agents } as never })), 'ERR_INVALID_ARGUMENT', argument);
  });

  it('refuses options whose reading throws (a revoked proxy, a throwing getter) with ERR_INVALID_ARGUMENT, at createNode and at a component start', () => {
    const throwing = Object.defineProperty({}, 'store', {
      enumerable: true,
      get(): never {
        throw new Error('do not touch');
      },
    });
    const throwingKind = Object.defineProperty({}, 'kind', {
      enumerable: true,
      get(): never {
        throw new Error('do not touch');
      },
    });
    expectKeelError(thrown(() => createNode({ services: { agents: revokedProxy() } as never })), 'ERR_INVALID_ARGUMENT', 'services.agents');
    expectKeelError(thrown(() => createNode({ services: { agents: throwing } as never })), 'ERR_INVALID_ARGUMENT', 'services.agents', 'do not touch');
    expectKeelError(thrown(() => createNode({ services: { agents: { store: revokedProxy() } } as never })), 'ERR_INVALID_ARGUMENT', 'services.agents.store');
    expectKeelError(thrown(() => createNode({ services: { agents: { store: throwingKind } } as never })), 'ERR_INVALID_ARGUMENT', 'services.agents.store', 'do not touch');
    const node = track();
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: revokedProxy() as never })), 'ERR_INVALID_ARGUMENT', 'options.store');
    expectKeelError(thrown(() => AgentScheduler.start(node, { store: throwingKind as never })), 'ERR_INVALID_ARGUMENT', 'options.store');
  });

  it('does not open the store until a component uses it', () => {
    const file = tmpfile();
    track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    expect(fs.existsSync(file)).toBe(false);
  });
});
