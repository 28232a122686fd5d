// Foreign rows in the SQLite agent store (written by another program, or a damaged file): a key or
// kind that is not text, a value that is not a blob. Each is skipped and counted once, then
// deleted as the docs say, not reported again at every start.
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { SqliteAgentStore } from '../../../src/agents/store/SqliteAgentStore.js';
import { TestClock } from '../../../src/testing/index.js';
import { useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-foreign-', 'agents.db');
const track = useNodes();

describe('SqliteAgentStore: foreign rows', () => {
  it('a row whose key is a blob or whose value is text is corrupt once: the scheduler deletes it', async () => {
    const file = tmpfile();
    new SqliteAgentStore(file).close();
    const db = new Database(file);
    db.prepare("INSERT INTO agent_records VALUES ('ticks', 'schedule', x'0102', x'00ff13')").run();
    db.prepare("INSERT INTO agent_records VALUES ('ticks', 'schedule', 'textvalue', 'not a blob')").run();
    db.close();
    const node1 = track({ clock: new TestClock({ start: 1000 }), services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const s1 = await AgentScheduler.start(node1, { name: 'ticks' });
    expect(await s1.stats()).toMatchObject({ corrupt: 2, resumed: 0, storeFailures: 0 });
    await node1.shutdown();
    const rows = new Database(file, { readonly: true }).prepare('SELECT count(*) AS n FROM agent_records').get();
    expect(rows).toEqual({ n: 0 });
    const node2 = track({ clock: new TestClock({ start: 1000 }), services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const s2 = await AgentScheduler.start(node2, { name: 'ticks' });
    expect(await s2.stats()).toMatchObject({ corrupt: 0 });
  });
});
