// A workflow survives a SIGKILL of its OS process: a child process (the package compiled into a temp
// directory, see test/childProcesses.ts) runs fetch → parse → index with a SQLite agent store; the
// parent kills it while parse runs (fetch's result recorded), then a node here on the same file, with
// agents of its own, starts a coordinator under the same name: the workflow completes, fetch is not
// run again, and each task's result is recorded in the store exactly once.
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { Agent, CoordinatorAgent, type AgentTask } from '../../../src/index.js';
import { captureEvents, TestClock } from '../../../src/testing/index.js';
import { useBuiltPackage, useChildren } from '../../childProcesses.js';
import { useNodes, useTempFiles } from '../../support.js';

const CHILD = fileURLToPath(new URL('./fixtures/coordinator-child.mjs', import.meta.url));

const tmpfile = useTempFiles('keel-coordinator-kill-', 'agents.db');
const forkChild = useChildren();
const track = useNodes();
const builtKeel = useBuiltPackage();

interface Report {
  readonly parsing?: string;
  readonly inputs?: unknown;
  readonly submitted?: unknown;
}

describe('CoordinatorAgent with a SQLite store under SIGKILL', () => {
  it('resumes the workflow in a new node on the same file: it completes, each task run here once, each result recorded once', async () => {
    const file = tmpfile();
    const child = forkChild<Report>(CHILD, [builtKeel(), file]);
    const parsing = await child.next((m) => m.parsing !== undefined);
    expect(parsing).toEqual({ parsing: 'doc/parse', inputs: { fetch: '<p>hello big world</p>' } });
    expect((await child.kill()).signal).toBe('SIGKILL');

    const clock = new TestClock({ start: Date.now() + 10_000 });
    const node = track({ clock, services: { agents: { store: { kind: 'sqlite', path: file } } } });
    const store = agentStoreFor(node, undefined)!;
    // what the killed process left: the workflow's record (as written at its start), the counts of
    // the tasks that started, and fetch's result (recorded once, first in the completion order)
    expect(store.loadAll('flow', 'result').records).toEqual([{ component: 'flow', kind: 'result', key: '["doc","fetch"]', value: { result: '<p>hello big world</p>', attempts: 1, seq: 0 } }]);
    expect(store.loadAll('flow', 'task').records.map((r) => [r.key, r.value])).toEqual([
      ['["doc","fetch"]', { attempts: 1, errors: 0, lost: 0, reassigned: 0 }],
      ['["doc","parse"]', { attempts: 1, errors: 0, lost: 0, reassigned: 0 }],
    ]);
    const [stored] = store.loadAll('flow', 'workflow').records;
    expect(stored).toMatchObject({ key: 'doc', value: { id: 'doc', state: 'running', completedOrder: [], attempts: [['fetch', 0], ['parse', 0], ['index', 0]] } });
    // every result insert from now on, and its outcome
    const inserts: [string, boolean][] = [];
    const insert = store.insert.bind(store);
    store.insert = (component, kind, k, value) => {
      const written = insert(component, kind, k, value);
      if (kind === 'result') inserts.push([k, written]);
      return written;
    };

    const runs: string[] = [];
    const count = (t: AgentTask): void => void runs.push(t.id);
    const agent = await Agent.start(node, {
      capabilities: [],
      tasks: {
        fetch: (t) => (count(t), 'fetched again'),
        parse: (t) => (count(t), String(t.inputs.fetch).replace(/<\/?p>/g, '')),
        index: (t) => (count(t), String(t.inputs.parse).split(' ').length),
      },
    });
    const events = captureEvents(node, ['keel.coordinator.resumed']);
    // the dead process's workers are gone: the resumed workflow waits for workers (none given at start here)
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow' });
    expect(events.events.map((e) => [e.measurements, e.metadata.from])).toEqual([[{ workflows: 1, rerun: 1, dropped: 0 }, 'store']]);
    expect(await coordinator.status('doc')).toMatchObject({ state: 'running', tasks: { total: 3, completed: 1, running: 0, waiting: 2 } });
    expect(await coordinator.addWorker(agent.pid)).toBe('ok');
    const result = await coordinator.wait('doc');
    expect(result).toMatchObject({
      id: 'doc',
      status: 'completed',
      results: { fetch: '<p>hello big world</p>', parse: 'hello big world', index: 3 },
      tasks: { fetch: { state: 'completed', attempts: 1 }, parse: { state: 'completed', attempts: 2 }, index: { state: 'completed', attempts: 1 } },
    });
    expect(runs).toEqual(['doc/parse', 'doc/index']); // fetch is not run again
    expect(inserts).toEqual([
      ['["doc","parse"]', true],
      ['["doc","index"]', true],
    ]);
    // finished: its records are gone from the store
    expect(store.loadAll('flow').records).toEqual([]);
  });
});
