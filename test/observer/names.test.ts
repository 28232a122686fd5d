// Names of any length: a registered name has no length limit, and the observer's answers quote a
// long one by its start and its length (a 10 MB name made every list, snapshot and frame 10 MB).
import { describe, expect, it } from 'vitest';
import { Agent, AgentScheduler, CoordinationManager, type ObserverHandle, Pid, startObserver, Supervisor } from '../../src/index.js';
import { useNodes } from '../support.js';
import { bearer, openStream, request } from './client.js';

const track = useNodes();
const MAX_NAME_TEXT = 1000;

/** A 200 answer of `path`, under 100,000 characters: no name was copied into it whole. */
async function small(obs: ObserverHandle, path: string) {
  const a = await request(obs.port, { path, headers: bearer(obs.token) });
  expect(a.status).toBe(200);
  expect(a.text.length).toBeLessThan(100_000);
  return a.json;
}

describe('observer: long names', () => {
  it('a 10 MB name is quoted by its first 1000 characters and its length in the agent pages: a schedule\'s target, a circuit\'s target and key', async () => {
    const node = track();
    const long = 'a'.repeat(10_000_000);
    const shown = `${'a'.repeat(MAX_NAME_TEXT)}… [10000000 characters]`;
    const agent = await Agent.start(node, { name: long, capabilities: [], runTask: () => null, onMessage: () => undefined });
    const scheduler = await AgentScheduler.start(node, { name: 'cron' });
    expect(await scheduler.registerPeriodic(long, 'beat', 60_000, 'tick')).toBe('ok');
    // a circuit is kept while it has failures: three to a name nobody holds open it
    const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 3 });
    const planner = node.spawn(() => () => undefined);
    const nobody = 'b'.repeat(10_000_000);
    for (let i = 0; i < 3; i++) await cm.coordinate(planner, nobody, { n: i });
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const get = (path: string) => small(obs, path);
      expect((await get('/api/schedules')).schedulers[0].jobs).toEqual([expect.objectContaining({ id: 'beat', target: shown, targetPid: Pid.format(agent.pid) })]);
      const quoted = (text: string) => `${text.slice(0, MAX_NAME_TEXT)}… [${text.length} characters]`;
      expect((await get('/api/circuits')).managers[0].circuits).toEqual([expect.objectContaining({ key: quoted(`name:${nobody}`), target: quoted(nobody), state: 'open', failures: 3 })]);
    } finally {
      await obs.close();
    }
  });

  it('a 10 MB process group is quoted by its first 1000 characters and its length in the groups and a detail', async () => {
    const node = track();
    const group = 'g'.repeat(10_000_000);
    const shown = `${'g'.repeat(MAX_NAME_TEXT)}… [10000000 characters]`;
    const pid = node.spawn(() => () => undefined);
    node.groups.join(group, pid);
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const get = (path: string) => small(obs, path);
      expect((await get('/api/groups')).groups).toEqual([{ group: shown, size: 1, members: [Pid.format(pid)] }]);
      expect((await get(`/api/process/${encodeURIComponent(Pid.format(pid))}`)).groups).toEqual([shown]);
    } finally {
      await obs.close();
    }
  });

  it('a 10 MB name is quoted by its first 1000 characters and its length in the processes list, the registry, a detail, the tree and the stream', async () => {
    const node = track();
    const long = 'n'.repeat(10_000_000);
    const shown = `${'n'.repeat(MAX_NAME_TEXT)}… [10000000 characters]`;
    const pid = node.spawn(() => () => undefined, { name: long });
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined, { name: `child-${long}` }) }], { name: `sup-${long}` });
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const get = (path: string) => small(obs, path);
      const list = await get('/api/processes?filter=nnn&limit=10');
      expect(list.total).toBe(3);
      expect(list.processes.find((r: { pid: string }) => r.pid === Pid.format(pid)).name).toBe(shown);
      const registry = await get('/api/registry');
      expect(registry.names.find((r: { pid: string }) => r.pid === Pid.format(pid)).name).toBe(shown);
      const detail = await get(`/api/process/${encodeURIComponent(Pid.format(pid))}`);
      expect(detail.name).toBe(shown);
      expect(detail.names).toEqual([shown]);
      const tree = await get('/api/tree');
      const root = tree.trees.find((t: { supervisor: string }) => t.supervisor === Pid.format(sup));
      expect(root.name).toBe(`sup-${'n'.repeat(MAX_NAME_TEXT - 4)}… [10000004 characters]`);
      expect(root.children[0].name).toBe(`child-${'n'.repeat(MAX_NAME_TEXT - 6)}… [10000006 characters]`);
      const stream = await openStream(obs.port, bearer(obs.token));
      try {
        const snapshot = await stream.next((f) => f.event === 'snapshot');
        expect(snapshot.data!.length).toBeLessThan(100_000);
      } finally {
        await stream.close();
      }
      // a name of 1000 characters is whole
      const whole = 'w'.repeat(MAX_NAME_TEXT);
      const other = node.spawn(() => () => undefined, { name: whole });
      expect((await get(`/api/process/${encodeURIComponent(Pid.format(other))}`)).name).toBe(whole);
    } finally {
      await obs.close();
    }
  });

  it("a dead letter's 10 MB recipient name is quoted by its first 1000 characters and its length, and a 10 MB reason is cut as a long text is", async () => {
    const node = track();
    const long = 'n'.repeat(10_000_000);
    await node.deadLetters.add({ recipient: long, message: 1, reason: 'r'.repeat(10_000_000) });
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const [entry] = (await small(obs, '/api/dead-letters')).entries;
      expect(entry.recipient).toBe(`${'n'.repeat(MAX_NAME_TEXT)}… [10000000 characters]`);
      expect(entry.reason).toBe(`${'r'.repeat(10_000)}… [10000000 characters]`);
    } finally {
      await obs.close();
    }
  });
});
