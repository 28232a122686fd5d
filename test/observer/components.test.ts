// The observer's agent-component pages: routers, schedules, workflows and circuits, found on the
// node without being told, read through the `observe` system call; the node's registry and groups.
import { describe, expect, it } from 'vitest';
import { Agent, AgentRegistry, AgentScheduler, CoordinationManager, CoordinatorAgent, createSignal, Pid, ResourcePool, SignalRouter, startObserver } from '../../src/index.js';
import { clockedNode, deferred, useNodes } from '../support.js';
import { bearer, request } from './client.js';
import { gatedWorker } from './gatedWorker.js';

const track = useNodes();

async function get(port: number, token: string, path: string) {
  return request(port, { path, headers: bearer(token) });
}

describe('component pages', () => {
  it('answer 503 when no such component runs on the node', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (const page of ['router', 'schedules', 'workflows', 'circuits', 'agents', 'pools']) {
        const a = await get(obs.port, obs.token, `/api/${page}`);
        expect(a.status, page).toBe(503);
        expect(a.json.error.code, page).toBe('service_unavailable');
      }
    } finally {
      await obs.close();
    }
  });

  it('GET /api/router: every router, one row per subscriber and pattern with its buffer', async () => {
    const node = track();
    const a = node.spawn(() => () => undefined);
    const b = node.spawn(() => () => undefined);
    const router = await SignalRouter.start(node, { name: 'orders' });
    await router.subscribe('order.*', a, { capacity: 100, overflow: 'drop_oldest' });
    await router.subscribe('order.created', b);
    const other = await SignalRouter.start(node, { mailbox: { capacity: 1000, overflow: 'reject' } });
    const obs = await startObserver(node);
    try {
      const r = (await get(obs.port, obs.token, '/api/router')).json;
      expect(r.routers.map((x: { name: string }) => x.name)).toEqual(['orders', other.name]);
      const orders = r.routers[0];
      expect(orders.pid).toBe(Pid.format(router.pid));
      expect(orders.subscriptions).toEqual([
        { pattern: 'order.*', subscriber: Pid.format(a), buffered: 0, capacity: 100, overflow: 'drop_oldest', dropped: 0, inFlight: 0, maxInFlight: expect.any(Number) },
        expect.objectContaining({ pattern: 'order.created', subscriber: Pid.format(b), buffered: 0 }),
      ]);
      expect(orders.totals).toMatchObject({ published: 0, dropped: 0, mailbox: null, mailboxRefused: 0, mailboxEvicted: 0 });
      // the router's own mailbox bound, when it has one
      expect(r.routers[1].totals).toMatchObject({ mailbox: { capacity: 1000, overflow: 'reject' }, mailboxRefused: 0, mailboxEvicted: 0 });
      // a subscriber stuck on its first signal: one in flight, one buffered, the other three dropped
      const gate = deferred();
      const entered = deferred();
      const stuck = node.spawn(() => async () => {
        entered.resolve();
        await gate.promise;
      });
      await router.subscribe('audit.*', stuck, { capacity: 1, overflow: 'drop_newest', maxInFlight: 1 });
      router.publish(createSignal({ type: 'audit.x', source: '/t' }));
      await entered.promise;
      for (let i = 0; i < 4; i++) router.publish(createSignal({ type: 'audit.x', source: '/t' }));
      const after = (await get(obs.port, obs.token, '/api/router')).json.routers[0];
      expect(after.subscriptions.find((x: { pattern: string }) => x.pattern === 'audit.*')).toMatchObject({ subscriber: Pid.format(stuck), inFlight: 1, buffered: 1, capacity: 1, dropped: 3 });
      gate.resolve();
      const detail = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(router.pid))}`)).json;
      expect(detail).toMatchObject({ kind: 'gen_server', component: 'signal_router', name: 'orders' });
    } finally {
      await obs.close();
    }
  });

  it('GET /api/schedules: each schedule as a job with its next run and counts', async () => {
    const { node } = clockedNode(track);
    const { pid: agent } = await Agent.start(node, { capabilities: [], runTask: () => null, onMessage: () => undefined });
    const scheduler = await AgentScheduler.start(node, { name: 'cron' });
    await scheduler.registerPeriodic(agent, 'heartbeat', 1000, { type: 'heartbeat' });
    await scheduler.forceExecution(agent, 'heartbeat');
    await node.idle();
    const obs = await startObserver(node);
    try {
      const s = (await get(obs.port, obs.token, '/api/schedules')).json;
      expect(s.schedulers).toHaveLength(1);
      expect(s.schedulers[0]).toMatchObject({ name: 'cron', pid: Pid.format(scheduler.pid) });
      expect(s.schedulers[0].jobs).toEqual([
        { id: 'heartbeat', every: 1000, target: Pid.format(agent), targetPid: Pid.format(agent), nextRunAt: node.clock.now() + 1000, lastRunAt: node.clock.now(), runs: 1, failures: 0, skipped: 0, missed: expect.any(String) },
      ]);
    } finally {
      await obs.close();
    }
  });

  it('GET /api/workflows: active workflows with their tasks (worker, attempts), and the recent ones', async () => {
    const node = track();
    const { worker, started, open } = await gatedWorker(node);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [worker.pid] });
    await coordinator.run({ id: 'done-1', tasks: [{ id: 'a', kind: 'quick' }] });
    const { id } = await coordinator.submit({ id: 'wf-slow', tasks: [{ id: 'q', kind: 'quick' }, { id: 's', kind: 'slow', dependsOn: ['q'] }] });
    await started;
    const obs = await startObserver(node);
    try {
      const w = (await get(obs.port, obs.token, '/api/workflows')).json;
      const c = w.coordinators[0];
      expect(c).toMatchObject({ name: 'flow', pid: Pid.format(coordinator.pid) });
      expect(c.active).toEqual([
        expect.objectContaining({
          id,
          status: 'running',
          stuck: false,
          tasks: [
            expect.objectContaining({ id: 'q', status: 'completed', worker: Pid.format(worker.pid), attempts: 1, startedAt: expect.any(Number), endedAt: expect.any(Number) }),
            expect.objectContaining({ id: 's', status: 'running', worker: Pid.format(worker.pid), attempts: 1, reassignments: 0, error: null, startedAt: expect.any(Number), endedAt: null }),
          ],
        }),
      ]);
      expect(c.recent).toEqual([expect.objectContaining({ id: 'done-1', status: 'completed', tasks: [expect.objectContaining({ id: 'a', status: 'completed', worker: Pid.format(worker.pid), attempts: 1 })] })]);
    } finally {
      open();
      await coordinator.wait(id);
      await obs.close();
    }
  });

  it('GET /api/workflows: at most 1000 task rows per workflow and 10,000 per coordinator, each workflow with its taskCount; long texts cut', async () => {
    const node = track();
    const { worker, started, open } = await gatedWorker(node);
    const coordinator = await CoordinatorAgent.start(node, { workers: [worker.pid] });
    // one workflow of 2,500 tasks behind a slow one, then 11 of 1,000: 13,500 tasks, all active
    const longId = 'x'.repeat(5000);
    const wide = (n: number, tag: string) => [{ id: `${tag}-gate`, kind: 'slow' }, ...Array.from({ length: n - 1 }, (_, i) => ({ id: i === 0 ? longId : `${tag}-${i}`, kind: 'quick', dependsOn: [`${tag}-gate`] }))];
    const ids = [(await coordinator.submit({ tasks: wide(2500, 'w0') })).id];
    await started;
    for (let k = 1; k <= 11; k++) ids.push((await coordinator.submit({ tasks: wide(1000, `w${k}`) })).id);
    const obs = await startObserver(node);
    try {
      const c = (await get(obs.port, obs.token, '/api/workflows')).json.coordinators[0];
      expect(c.active.map((w: { id: string }) => w.id)).toEqual(ids);
      expect(c.active.map((w: { taskCount: number }) => w.taskCount)).toEqual([2500, ...Array(11).fill(1000)]);
      const shown = c.active.map((w: { tasks: unknown[] }) => w.tasks.length);
      // the first ten fill the coordinator's 10,000 rows (the first cut at 1000), the last two show none
      expect(shown).toEqual([...Array(10).fill(1000), 0, 0]);
      const first = c.active[0].tasks;
      expect(first[0]).toMatchObject({ id: 'w0-gate', status: 'running' });
      // a 5,000-character task id is quoted by its first 1,000, as every answer quotes a long name
      expect(first[1].id.startsWith('x'.repeat(1000))).toBe(true);
      expect(first[1].id.length).toBeLessThan(1100);
    } finally {
      open();
      for (const id of ids) await coordinator.wait(id);
      await obs.close();
    }
  }, 60_000);

  it('GET /api/circuits: each circuit with its state, failures and buffered count', async () => {
    const node = track();
    const planner = node.spawn(() => () => undefined);
    const executor = node.spawn(() => () => undefined);
    const cm = await CoordinationManager.start(node, { name: 'coord', failureThreshold: 3, resetAfterMs: 2000 });
    expect((await cm.coordinate(planner, executor, { n: 1 })).outcome).toBe('delivered');
    const obs = await startObserver(node);
    try {
      const c = (await get(obs.port, obs.token, '/api/circuits')).json;
      expect(c.managers).toHaveLength(1);
      expect(c.managers[0]).toMatchObject({ name: 'coord', pid: Pid.format(cm.pid) });
      expect(c.managers[0].circuits).toEqual([expect.objectContaining({ target: Pid.format(executor), state: "closed", failures: 0, buffered: 0, openedAt: null })]);
      expect(c.managers[0].totals).toMatchObject({ delivered: 1 });
      // a name nobody holds: noproc, three times, opens its circuit; the next message is buffered
      const before = node.clock.now();
      for (let i = 0; i < 3; i++) await cm.coordinate(planner, 'billing', { n: i });
      expect((await cm.coordinate(planner, 'billing', { n: 9 })).outcome).toBe('buffered');
      const open = (await get(obs.port, obs.token, '/api/circuits')).json.managers[0].circuits;
      const row = open.find((x: { target: string }) => x.target === 'billing');
      expect(row).toMatchObject({ state: 'open', failures: 3, buffered: 1 });
      expect(row.openedAt).toBeGreaterThanOrEqual(before);
      expect(row.resetAt).toBe(row.openedAt + 2000);
    } finally {
      await obs.close();
    }
  });
});

describe('GET /api/agents, /api/pools and /api/components', () => {
  it('an agent registry with its agents; a pool with what it lent and to whom; every component by kind', async () => {
    const node = track();
    const worker = node.spawn(() => () => undefined);
    const registry = await AgentRegistry.start(node, { name: 'agents' });
    await registry.register(worker, { capabilities: ['ocr'], team: 'docs' }, { key: 'w1' });
    let n = 0;
    const pool = await ResourcePool.start(node, { name: 'db', create: () => ({ id: ++n }), size: 2 });
    const conn = await pool.checkout();
    const obs = await startObserver(node);
    try {
      const a = (await get(obs.port, obs.token, '/api/agents')).json;
      expect(a.registries).toHaveLength(1);
      expect(a.registries[0]).toMatchObject({ name: 'agents', pid: Pid.format(registry.pid) });
      expect(a.registries[0].agents).toEqual([expect.objectContaining({ key: 'w1', pid: Pid.format(worker), capabilities: ['ocr'], team: 'docs', health: 'healthy' })]);
      const p = (await get(obs.port, obs.token, '/api/pools')).json;
      expect(p.pools[0]).toMatchObject({ name: 'db', size: 2, resources: 2, idle: 1, waiting: 0 });
      expect(p.pools[0].lent).toHaveLength(1);
      const c = (await get(obs.port, obs.token, '/api/components')).json;
      expect(c.components).toEqual(
        expect.arrayContaining([
          { kind: 'agent_registry', name: 'agents', pid: Pid.format(registry.pid) },
          { kind: 'resource_pool', name: 'db', pid: Pid.format(pool.pid) },
        ]),
      );
    } finally {
      await pool.checkin(conn);
      await obs.close();
    }
  });
});

describe('GET /api/registry and /api/groups', () => {
  it('lists registered names (filtered, limited, with the total) and process groups', async () => {
    const node = track();
    const a = node.spawn(() => () => undefined, { name: 'alpha' });
    const b = node.spawn(() => () => undefined, { name: 'beta' });
    node.spawn(() => () => undefined, { name: '<b>gamma</b>' });
    node.groups.join('workers', a);
    node.groups.join('workers', b);
    const obs = await startObserver(node);
    try {
      const r = await get(obs.port, obs.token, '/api/registry?filter=A&limit=1');
      expect(r.json.total).toBe(node.registry.names().filter((n) => n.toLowerCase().includes('a')).length);
      expect(r.json.names).toHaveLength(1);
      const all = (await get(obs.port, obs.token, '/api/registry?limit=1000')).json;
      expect(all.names).toContainEqual({ name: 'alpha', pid: Pid.format(a) });
      expect(all.names).toContainEqual({ name: '<b>gamma</b>', pid: expect.any(String) });
      const g = (await get(obs.port, obs.token, '/api/groups')).json;
      expect(g).toEqual({ groups: [{ group: 'workers', size: 2, members: [Pid.format(a), Pid.format(b)] }], total: 1 });
      expect((await get(obs.port, obs.token, '/api/registry?limit=0')).status).toBe(400);
      expect((await get(obs.port, obs.token, '/api/groups?limit=x')).status).toBe(400);
      expect((await get(obs.port, obs.token, '/api/registry?limit=1000')).text).not.toMatch(/[<>]/);
    } finally {
      await obs.close();
    }
  });
});

describe('the new pages and actions need the token', () => {
  it('answers 401 without it, for every one of them', async () => {
    const node = track();
    const obs = await startObserver(node, { readOnly: false });
    try {
      for (const path of ['/api/telemetry', '/api/registry', '/api/groups', '/api/router', '/api/schedules', '/api/workflows', '/api/circuits', '/api/agents', '/api/pools', '/api/components', '/api/dead-letters/jobs/x', '/api/events?view=processes']) {
        expect((await request(obs.port, { path })).status, path).toBe(401);
      }
      const redrive = await request(obs.port, { method: 'POST', path: '/api/dead-letters/redrive', body: { ids: ['1'], to: 'x' } });
      expect(redrive.status).toBe(401);
      // a browser's cookie alone, without an Origin, does not make a POST
      const login = await request(obs.port, { path: `/?token=${obs.token}` });
      const cookie = login.headers['set-cookie']![0]!.split(';')[0]!;
      const csrf = await request(obs.port, { method: 'POST', path: '/api/dead-letters/redrive', headers: { cookie }, body: { ids: ['1'], to: 'x' } });
      expect(csrf.status).toBe(403);
      expect(csrf.json.error.code).toBe('origin_not_allowed');
    } finally {
      await obs.close();
    }
  });
});
