// The SQLite agent store's claim on its file: the same file under another path (a symlink, a hard
// link) in one OS process, a claim whose OS pid was reused by another live process, a corrupt claim
// row, and a node shut down before its start, which leaves the file free.
import fs from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { AgentStore } from '../../../src/agents/store/AgentStore.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { expectKeelError, thrown, useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-claim-', 'agents.db');
const track = useNodes();
const opened: AgentStore[] = [];
afterEach(() => {
  for (const s of opened.splice(0)) s.close();
});
function open(file: string): SqliteAgentStore {
  const s = new SqliteAgentStore(file);
  opened.push(s);
  return s;
}

/** Writes a claim row as another OS process would have left it. */
function claim(file: string, osPid: number, osStart: string | null): void {
  const db = new Database(file);
  try {
    const cols = (db.prepare('SELECT name FROM pragma_table_info(?)').all('agent_store_owner') as { name: string }[]).map((c) => c.name);
    if (cols.includes('os_start')) db.prepare('INSERT OR REPLACE INTO agent_store_owner (id, os_pid, os_start) VALUES (1, ?, ?)').run(osPid, osStart);
    else db.prepare('INSERT OR REPLACE INTO agent_store_owner (id, os_pid) VALUES (1, ?)').run(osPid);
  } finally {
    db.close();
  }
}

/** The start identity of a live OS process as the store records it (Linux: boot id and start time). */
function startOf(osPid: number): string {
  const stat = fs.readFileSync(`/proc/${osPid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return `${fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim()}:${fields[19]}`;
}

describe('SqliteAgentStore claim', () => {
  it('refuses the same file opened again in this OS process under another path (a symlink, a hard link)', () => {
    const file = tmpfile();
    const a = open(file);
    a.put('c', 'k', 'x', 1);
    const viaSymlink = path.join(path.dirname(file), 'alias.db');
    fs.symlinkSync(file, viaSymlink);
    expectKeelError(thrown(() => open(viaSymlink)), 'ERR_STORE_IN_USE', 'agent store');
    const viaLink = path.join(path.dirname(file), 'hard.db');
    fs.linkSync(file, viaLink);
    expectKeelError(thrown(() => open(viaLink)), 'ERR_STORE_IN_USE', 'agent store');
    expect(a.loadAll('c').records).toHaveLength(1); // the refused opens changed nothing
    a.close();
    expect(open(viaSymlink).loadAll('c').records).toHaveLength(1); // free once closed
  });

  it.runIf(process.platform === 'linux')('takes over a claim whose OS pid now belongs to another live process (pid reuse), refuses the live claimer itself', () => {
    const file = tmpfile();
    open(file).close(); // makes the file and its tables
    const other = process.ppid; // a live OS process that is not this one
    claim(file, other, 'an-earlier-boot:1');
    const b = open(file);
    b.close();
    claim(file, other, startOf(other)); // the live process that made the claim: in use
    expectKeelError(thrown(() => open(file)), 'ERR_STORE_IN_USE', 'agent store');
    claim(file, other, null); // a claim without a start identity (an older store): by its pid, as before
    expectKeelError(thrown(() => open(file)), 'ERR_STORE_IN_USE', 'agent store');
  });
});

describe('SqliteAgentStore: a corrupt claim row', () => {
  it('a claim whose os_pid is not a process id (0, negative, text, huge) is no claim: taken over, not refused for ever', () => {
    const file = tmpfile();
    open(file).close();
    for (const bad of [0, -1, 'abc', 2 ** 53]) {
      const db = new Database(file);
      db.prepare('INSERT OR REPLACE INTO agent_store_owner (id, os_pid, os_start) VALUES (1, ?, NULL)').run(bad);
      db.close();
      const s = open(file);
      s.close();
    }
  });
});

describe('one node, one file under two paths', () => {
  it('the node option and a component option naming the same file through a symlink share one store', async () => {
    const file = tmpfile();
    const alias = path.join(path.dirname(file), 'alias2.db');
    fs.writeFileSync(file, ''); // an empty file is a new SQLite database
    fs.symlinkSync(file, alias);
    const node = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const store = agentStoreFor(node, undefined)!;
    expect(agentStoreFor(node, { kind: 'sqlite', path: alias })).toBe(store);
    const scheduler = await AgentScheduler.start(node, { name: 's', store: { kind: 'sqlite', path: alias } });
    expect(await scheduler.stats()).toMatchObject({ storeFailures: 0 });
  });
});

describe('agent store of a node that has shut down', () => {
  it('a start on the shut-down node fails and leaves the file free for another node', async () => {
    const file = tmpfile();
    const a = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    await a.shutdown();
    expectKeelError(thrown(() => AgentScheduler.start(a, { name: 'late' })), 'ERR_STORE_UNAVAILABLE', 'shut down');
    const b = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    expect(agentStoreFor(b, undefined)!.loadAll('late')).toEqual({ records: [], corrupt: [] });
  });
});
