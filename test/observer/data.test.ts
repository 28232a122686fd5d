// The observer's data pages: process rows (rate, age, busy share, kind), the overview's flags and
// utilization, process detail (kind, names, calls, a redactor's state, restarts) and the trees.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { DynamicSupervisor, GenServer, Pid, startObserver, StateMachine, Supervisor, type Node } from '../../src/index.js';
import { clockedNode, deferred, HOUR, stepWallClock, useNodes } from '../support.js';
import { bearer, request } from './client.js';
import { MIN_WINDOW_MS } from '../../src/observer/overview.js';
import { ProcessSampler } from '../../src/observer/processes.js';
import { kernelOf } from '../../src/runtime/kernel.js';

const track = useNodes();

async function get(port: number, token: string, path: string) {
  return request(port, { path, headers: bearer(token) });
}

function row(page: { processes: { pid: string }[] }, pid: Pid) {
  return page.processes.find((r) => r.pid === Pid.format(pid)) as Record<string, unknown> | undefined;
}

const counter = { init: (n: number) => n, handleCall: (_r: unknown, _f: unknown, s: number) => ({ reply: s, state: s }) };

describe('GET /api/overview rates', () => {
  it('messageRate is measured on the node clock over at least MIN_WINDOW_MS: a reader soon after another does not shrink the window; uptime is the node\'s', async () => {
    const { node, clock } = clockedNode(track);
    const pid = node.spawn<string>(() => () => undefined);
    await node.idle();
    await clock.advance(700);
    const obs = await startObserver(node);
    const overview = async () => (await get(obs.port, obs.token, '/api/overview')).json as { messageRate: number | null; uptimeMs: number };
    const handle = async (n: number) => {
      for (let i = 0; i < n; i++) node.send(pid, 'x');
      await node.idle();
    };
    try {
      expect(await overview()).toMatchObject({ messageRate: null, uptimeMs: 700 });
      await handle(10);
      await clock.advance(1000);
      expect((await overview()).messageRate).toBe(10); // 10 over 1 s, from the first reading
      await handle(12);
      await clock.advance(100); // sooner than MIN_WINDOW_MS after the latest reading: measured from the same anchor
      expect(MIN_WINDOW_MS).toBeGreaterThan(100);
      expect((await overview()).messageRate).toBe(20); // 22 over 1.1 s
      await clock.advance(900); // 1 s after the second reading, which is the anchor now
      const last = await overview();
      expect(last.messageRate).toBe(12); // the 12 handled since that reading, over 1 s
      expect(last.uptimeMs).toBe(2700);
    } finally {
      await obs.close();
    }
  });
  it('a process that dies does not pull the rate down: what it handled still counts', async () => {
    const { node, clock } = clockedNode(track);
    const pids = [node.spawn<string>(() => () => undefined), node.spawn<string>(() => () => undefined)];
    await node.idle();
    const obs = await startObserver(node);
    try {
      expect(((await get(obs.port, obs.token, '/api/overview')).json as { messageRate: unknown }).messageRate).toBeNull();
      for (const pid of pids) for (let i = 0; i < 4; i++) node.send(pid, 'x');
      await node.idle();
      node.exit(pids[0]!, 'kill');
      await node.idle();
      await clock.advance(1000);
      expect(((await get(obs.port, obs.token, '/api/overview')).json as { messageRate: unknown }).messageRate).toBe(8);
    } finally {
      await obs.close();
    }
  });
});

describe('GET /api/processes rows', () => {
  it('rate: messages handled per second of node clock between two samples, exact under a TestClock; null on the first', async () => {
    const { node, clock } = clockedNode(track);
    const pid = node.spawn<string>(() => () => undefined);
    await node.idle();
    const obs = await startObserver(node);
    try {
      const first = await get(obs.port, obs.token, '/api/processes?limit=1000');
      expect(row(first.json, pid)!.rate).toBeNull();
      for (let i = 0; i < 10; i++) node.send(pid, 'x');
      await node.idle();
      await clock.advance(2000);
      const second = await get(obs.port, obs.token, '/api/processes?sort=rate&limit=1');
      expect(second.json.processes[0]).toMatchObject({ pid: Pid.format(pid), rate: 5, handled: 10 });
      expect(second.json.sort).toBe('rate');
    } finally {
      await obs.close();
    }
  });

  it('ageMs: exact for a process spawned while someone watches; a lower bound (ageExact false) for an older one; an observer nobody watches records nothing', async () => {
    const { node, clock } = clockedNode(track);
    const old = node.spawn(() => () => undefined);
    await clock.advance(500);
    const obs = await startObserver(node);
    const kernel = kernelOf(node);
    try {
      // started, nobody watching: no spawn time is recorded (a spawn costs one check)
      const unwatched = node.spawn(() => () => undefined);
      expect(kernel.spawnedAt(kernel.resolve(unwatched)!)).toBeUndefined();
      await clock.advance(250);
      await get(obs.port, obs.token, '/api/overview'); // someone reads: spawn times from now on
      const young = node.spawn(() => () => undefined);
      await node.idle();
      await clock.advance(1500);
      const page = (await get(obs.port, obs.token, '/api/processes?sort=age&limit=1000')).json;
      expect(row(page, young)).toMatchObject({ ageMs: 1500, ageExact: true });
      expect(row(page, unwatched)).toMatchObject({ ageMs: 1500, ageExact: false }); // as old as the watching, at least
      expect(row(page, old)).toMatchObject({ ageMs: 1500, ageExact: false });
      expect(page.processes.map((r: { pid: string }) => r.pid).slice(0, 2)).toEqual([Pid.format(old), Pid.format(unwatched)]); // age: oldest first (by id among equals)
    } finally {
      await obs.close();
    }
    // closed: spawn times are no longer recorded (no cost left behind)
    const later = node.spawn(() => () => undefined);
    expect(kernel.spawnedAt(kernel.resolve(later)!)).toBeUndefined();
  });

  it('busyPercent: handler time over the scheduler clock between samples, measured only once the page is watched', async () => {
    let now = 0;
    const node = track({ scheduler: { now: () => now } });
    const hot = node.spawn<number>(() => (ms) => {
      now += ms; // the handler "takes" ms of the scheduler's clock
    });
    const idle = node.spawn(() => () => undefined);
    await node.idle();
    const obs = await startObserver(node);
    try {
      const first = (await get(obs.port, obs.token, '/api/processes?limit=1000')).json;
      expect(first.measuring).toBe(true);
      expect(row(first, hot)!.busyPercent).toBeNull();
      node.send(hot, 30);
      await node.idle();
      now += 10; // 10 ms of the clock pass outside any handler
      const second = (await get(obs.port, obs.token, '/api/processes?sort=busy&limit=2')).json;
      expect(second.processes[0]).toMatchObject({ pid: Pid.format(hot), busyPercent: 75 });
      expect(row(second, idle) ?? { busyPercent: 0 }).toMatchObject({ busyPercent: 0 });
    } finally {
      await obs.close();
    }
  });

  it('busyPercent after measuring stopped and started again: null for one sample (times start from 0), never a wrong 0', async () => {
    let now = 0;
    const node = track({ scheduler: { now: () => now } });
    const hot = node.spawn<number>(() => (ms) => {
      now += ms;
    });
    await node.idle();
    const sampler = new ProcessSampler(node, kernelOf(node));
    sampler.viewers(1);
    sampler.page('busy', 10, undefined, undefined);
    node.send(hot, 40);
    await node.idle();
    expect(sampler.page('busy', 10, undefined, undefined).processes[0]).toMatchObject({ pid: Pid.format(hot), busyPercent: 100 });
    sampler.viewers(0);
    expect(sampler.measuring).toBe(false);
    sampler.viewers(1);
    node.send(hot, 10);
    await node.idle();
    const again = sampler.page('mailbox', 1000, undefined, undefined);
    expect(row(again, hot)!.busyPercent).toBeNull();
    node.send(hot, 10);
    await node.idle();
    expect(row(sampler.page('mailbox', 1000, undefined, undefined), hot)!.busyPercent).toBe(100);
    sampler.close();
  });

  it('kind: gen_server, supervisor, statem, process', async () => {
    const node = track();
    const server = await GenServer.start(node, counter, 1);
    const sup = await Supervisor.start(node, []);
    const machine = await StateMachine.start(node, { init: () => ({ state: 'a', data: 0 }), states: { a: () => ({ keepState: true as const }) } });
    const plain = node.spawn(() => () => undefined);
    const obs = await startObserver(node);
    try {
      const page = (await get(obs.port, obs.token, '/api/processes?limit=1000')).json;
      expect(row(page, server)!.kind).toBe('gen_server');
      expect(row(page, sup)!.kind).toBe('supervisor');
      expect(row(page, machine)!.kind).toBe('statem');
      expect(row(page, plain)!.kind).toBe('process');
    } finally {
      await obs.close();
    }
  });

  it('status filter: only the processes in that status, with their own total', async () => {
    const node = track();
    const started = deferred();
    const gate = deferred();
    const busy = node.spawn<string>(() => async () => {
      started.resolve();
      await gate.promise;
    });
    node.send(busy, 'go');
    await started.promise;
    const obs = await startObserver(node);
    try {
      const page = (await get(obs.port, obs.token, '/api/processes?status=busy')).json;
      expect(page.total).toBe(1);
      expect(page.processes.map((r: { pid: string }) => r.pid)).toEqual([Pid.format(busy)]);
    } finally {
      gate.resolve();
      await node.idle();
      await obs.close();
    }
  });

  it('hostile query values are 400 with the field, never a crash', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (const [q, field] of [
        ['sort=__proto__', 'sort'],
        ['sort=constructor', 'sort'],
        ['limit=NaN', 'limit'],
        ['limit=1e99', 'limit'],
        ['limit=-1', 'limit'],
        ['limit=0', 'limit'],
        ['status=toString', 'status'],
        [`filter=${'x'.repeat(201)}`, 'filter'],
      ] as const) {
        const a = await get(obs.port, obs.token, `/api/processes?${q}`);
        expect(a.status, q).toBe(400);
        expect(a.json.error, q).toMatchObject({ code: 'bad_request', field });
      }
    } finally {
      await obs.close();
    }
  });

  it('10,000 processes: top N by rate with the exact total', async () => {
    const { node, clock } = clockedNode(track);
    const pids = Array.from({ length: 10_000 }, () => node.spawn<number>(() => () => undefined));
    await node.idle();
    const obs = await startObserver(node);
    try {
      await get(obs.port, obs.token, '/api/processes?limit=1');
      for (let i = 0; i < 7; i++) node.send(pids[4321]!, i);
      for (let i = 0; i < 3; i++) node.send(pids[99]!, i);
      await node.idle();
      await clock.advance(1000);
      const page = (await get(obs.port, obs.token, '/api/processes?sort=rate&limit=3')).json;
      expect(page.total).toBe(node.processes().length);
      expect(page.processes.map((r: { pid: string; rate: number }) => [r.pid, r.rate])).toEqual([
        [Pid.format(pids[4321]!), 7],
        [Pid.format(pids[99]!), 3],
        [Pid.format(node.processes().reduce((a, b) => (b.id < a.id ? b : a))), 0],
      ]);
    } finally {
      await obs.close();
    }
  });
});

describe('GET /api/overview', () => {
  it('says whether the observer is read-only and shows payloads; busyPercent is null first, then 0 to 100', async () => {
    const node = track();
    const ro = await startObserver(node);
    const rw = await startObserver(node, { readOnly: false, allowPayloads: true });
    try {
      const a = (await get(ro.port, ro.token, '/api/overview')).json;
      expect(a).toMatchObject({ readOnly: true, allowPayloads: false, busyPercent: null });
      const b = (await get(ro.port, ro.token, '/api/overview')).json;
      expect(b.busyPercent).toBeGreaterThanOrEqual(0);
      expect(b.busyPercent).toBeLessThanOrEqual(100);
      expect((await get(rw.port, rw.token, '/api/overview')).json).toMatchObject({ readOnly: false, allowPayloads: true });
    } finally {
      await ro.close();
      await rw.close();
    }
  });
});

describe('GET /api/process/<pid>', () => {
  it('kind, names, groups, parent, the calls waiting on it and those it waits on', async () => {
    const node = track();
    const entered = deferred();
    const gate = deferred();
    const server = await GenServer.start(
      node,
      {
        init: () => 0,
        handleCall: async (_r: unknown, _f: unknown, s: number) => {
          entered.resolve();
          await gate.promise;
          return { reply: s, state: s };
        },
      },
      undefined,
      { name: 'slow' },
    );
    node.groups.join('workers', server);
    const calls = [GenServer.call(node, server, 'a'), GenServer.call(node, server, 'b')];
    await entered.promise;
    const calling = deferred();
    const caller = node.spawn<string>((ctx) => {
      void GenServer.call(ctx, server, 'c').catch(() => undefined);
      calling.resolve();
      return () => undefined;
    });
    await calling.promise;
    const obs = await startObserver(node);
    try {
      const d = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(server))}`)).json;
      expect(d).toMatchObject({ kind: 'gen_server', component: null, names: ['slow'], groups: ['workers'], parent: 'node', pendingCalls: 3, waitingOn: [], state: null, restarts: null });
      expect(d.ageExact).toBe(false);
      const c = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(caller))}`)).json;
      expect(c).toMatchObject({ kind: 'process', pendingCalls: 0, waitingOn: [Pid.format(server)] });
    } finally {
      gate.resolve();
      await Promise.all(calls);
      await node.idle();
      await obs.close();
    }
  });

  it('state only for a server that opted in with formatStatus, as the redactor shows it (JSON-safe even when cyclic)', async () => {
    const node = track();
    const plain = await GenServer.start(node, counter, 41);
    const redacted = await GenServer.start(node, {
      init: () => ({ user: 'ann', password: 'hunter2' }),
      formatStatus: (s: { user: string; password: string }) => {
        const shown: Record<string, unknown> = { user: s.user, password: '***', big: 10n };
        shown.self = shown;
        return shown;
      },
    });
    const machine = await StateMachine.start(node, {
      init: () => ({ state: 'idle', data: { token: 'secret' } }),
      states: { idle: () => ({ keepState: true as const }) },
      formatStatus: ({ state }: { state: string }) => ({ state, data: 'hidden' }),
    });
    const obs = await startObserver(node);
    try {
      const p = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(plain))}`)).json;
      expect(p.state).toBeNull();
      const r = await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(redacted))}`);
      expect(r.json.state).toEqual({ user: 'ann', password: '***', big: '10', self: '[cycle]' });
      expect(r.text).not.toContain('hunter2');
      const m = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(machine))}`)).json;
      expect(m).toMatchObject({ kind: 'statem', state: { state: 'idle', data: 'hidden' } });
    } finally {
      await obs.close();
    }
  });

  it("a supervisor's detail has its restart history: when, which child, why", async () => {
    const { node, clock } = clockedNode(track);
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }], { maxRestarts: 5, withinMs: 10_000 });
    const [child] = await Supervisor.whichChildren(node, sup);
    await clock.advance(100);
    node.exit(child!.pid as Pid, 'kill');
    await node.idle();
    const obs = await startObserver(node);
    try {
      const d = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(sup))}`)).json;
      expect(d).toMatchObject({ kind: 'supervisor', strategy: 'one_for_one', intensity: { maxRestarts: 5, periodMs: 10_000 }, restartsInWindow: 1 });
      expect(d.restarts).toEqual([{ at: 1_000_100, child: 'w', reason: 'killed' }]);
    } finally {
      await obs.close();
    }
  });

  it('bad pids are 400; a pid of no live process 404', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (const bad of ['x', '%E0%A4%A', '<a.b.c>', encodeURIComponent('<'.repeat(400))]) {
        expect((await get(obs.port, obs.token, `/api/process/${bad}`)).status, bad).toBe(400);
      }
      const gone = node.spawn(() => () => undefined);
      node.exit(gone, 'kill');
      await node.idle();
      expect((await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(gone))}`)).status).toBe(404);
    } finally {
      await obs.close();
    }
  });
});

describe('GET /api/tree', () => {
  it('finds every top-level supervisor without being told, with strategy, intensity, restarts and the children rows', async () => {
    const node = track();
    const inner = { id: 'inner', type: 'supervisor' as const, start: (ctx: Parameters<typeof Supervisor.startLink>[0]) => Supervisor.startLink(ctx, [{ id: 'leaf', start: (c) => GenServer.startLink(c, counter, 0) }]) };
    const root = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }, inner], { strategy: 'rest_for_one', maxRestarts: 4, withinMs: 60_000 });
    const other = await Supervisor.start(node, []);
    const [w] = await Supervisor.whichChildren(node, root);
    node.exit(w!.pid as Pid, 'kill');
    await node.idle();
    const obs = await startObserver(node);
    try {
      const trees = (await get(obs.port, obs.token, '/api/tree')).json.trees as { supervisor: string }[];
      const sups = trees.map((t) => t.supervisor);
      expect(sups).toContain(Pid.format(root));
      expect(sups).toContain(Pid.format(other));
      const t = trees.find((x) => x.supervisor === Pid.format(root)) as any;
      expect(t).toMatchObject({ kind: 'supervisor', strategy: 'rest_for_one', intensity: { maxRestarts: 4, periodMs: 60_000 }, restartsInWindow: 1 });
      expect(t.restarts).toEqual([expect.objectContaining({ child: 'w', reason: 'killed' })]);
      expect(t.children).toEqual([
        expect.objectContaining({ id: 'w', type: 'worker', restarts: 1, status: 'waiting', mailbox: 0, kind: 'process', name: null }),
        expect.objectContaining({ id: 'inner', type: 'supervisor', restarts: 1, status: 'waiting', mailbox: 0, kind: 'supervisor', name: null }),
      ]);
      const innerTree = t.children[1].tree;
      expect(innerTree.children).toEqual([expect.objectContaining({ id: 'leaf', status: 'waiting', kind: 'gen_server' })]);
      // the inner supervisor is in its parent's tree, not a root of its own
      expect(sups).not.toContain(innerTree.supervisor);
    } finally {
      await obs.close();
    }
  });

  it("a dynamic supervisor's children (no ids) carry their registered names", async () => {
    const node = track();
    const sup = await DynamicSupervisor.start(node);
    const named = await DynamicSupervisor.startChild(node, sup, { start: (ctx) => GenServer.startLink(ctx, counter, 0, { name: 'orders' }) });
    const plain = await DynamicSupervisor.startChild(node, sup, { start: (ctx) => ctx.spawnLink(() => () => undefined) });
    const obs = await startObserver(node);
    try {
      const trees = (await get(obs.port, obs.token, '/api/tree')).json.trees as { supervisor: string; kind: string; children: unknown[] }[];
      const t = trees.find((x) => x.supervisor === Pid.format(sup))!;
      expect(t.kind).toBe('dynamic_supervisor');
      expect(t.children).toEqual([
        expect.objectContaining({ id: null, pid: Pid.format(named), name: 'orders', kind: 'gen_server' }),
        expect.objectContaining({ id: null, pid: Pid.format(plain), name: null, kind: 'process' }),
      ]);
    } finally {
      await obs.close();
    }
  });

  it('a named root that is not running is a row with its error', async () => {
    const node = track();
    const obs = await startObserver(node, { supervisors: ['nobody_sup'] });
    try {
      const trees = (await get(obs.port, obs.token, '/api/tree')).json.trees;
      expect(trees).toContainEqual({ root: 'nobody_sup', error: 'not_found' });
    } finally {
      await obs.close();
    }
  });

  it('a supervisor busy past the 1 s bound shows error timeout, in the tree and in its detail', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [], { name: 'stuck_sup' });
    const entered = deferred();
    const gate = deferred();
    const starting = Supervisor.startChild(node, sup, {
      id: 'slow',
      start: async (ctx) => {
        entered.resolve();
        await gate.promise;
        return ctx.spawnLink(() => () => undefined);
      },
    });
    await entered.promise;
    const obs = await startObserver(node);
    try {
      const trees = (await get(obs.port, obs.token, '/api/tree')).json.trees;
      expect(trees).toContainEqual({ root: Pid.format(sup), error: 'timeout' });
      const d = (await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(sup))}`)).json;
      expect(d).toMatchObject({ kind: 'supervisor', restarts: null, stateError: 'timeout' });
    } finally {
      gate.resolve();
      await starting;
      await obs.close();
    }
  });
});

describe('ages, uptime and rates on the real clock, the wall clock stepped an hour', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  for (const [step, way] of [[HOUR, 'forward'], [-HOUR, 'back']] as const) {
    it(`stepped ${way}: a process's age (row and detail) and the node's uptime go on growing from where they were, by the real time passed`, async () => {
      const node = track(); // the default realClock: clock.now() is Date.now()
      const obs = await startObserver(node);
      try {
        await get(obs.port, obs.token, '/api/overview'); // someone reads: spawn times from now on
        const young = node.spawn(() => () => undefined);
        await node.idle();
        const read = async () => ({
          row: row((await get(obs.port, obs.token, '/api/processes?limit=1000')).json, young)!.ageMs as number,
          detail: ((await get(obs.port, obs.token, `/api/process/${encodeURIComponent(Pid.format(young))}`)).json as { ageMs: number }).ageMs,
          uptime: ((await get(obs.port, obs.token, '/api/overview')).json as { uptimeMs: number }).uptimeMs,
        });
        const before = await read();
        stepWallClock(step);
        const after = await read();
        for (const k of ['row', 'detail', 'uptime'] as const) {
          // on the wall clock: an hour more forward; back, below zero (shown as 0)
          expect(after[k], k).toBeGreaterThan(before[k]);
          expect(after[k], k).toBeLessThan(before[k] + HOUR / 2);
        }
      } finally {
        await obs.close();
      }
    });

    it(`stepped ${way} between two readings: the message rates (overview and row) are the messages over the real time between them`, async () => {
      const node = track();
      const pid = node.spawn<string>(() => () => undefined);
      await node.idle();
      const obs = await startObserver(node);
      const overview = async () => ((await get(obs.port, obs.token, '/api/overview')).json as { messageRate: number | null }).messageRate;
      const rate = async () => row((await get(obs.port, obs.token, '/api/processes?limit=1000')).json, pid)!.rate as number | null;
      const N = 1000;
      try {
        const t0 = performance.now(); // the timers' time on the real clock, in this same OS process
        await overview();
        await rate(); // the first readings
        const t1 = performance.now();
        for (let i = 0; i < N; i++) node.send(pid, 'x');
        await node.idle();
        stepWallClock(step);
        const t2 = performance.now();
        const overall = await overview();
        const own = await rate();
        const t3 = performance.now();
        // the readings were taken within [t0, t1] and [t2, t3]: over at most t3 - t0, at least t2 - t1
        const least = (N * 1000) / (t3 - t0);
        expect(least).toBeGreaterThan(1); // the bound says something (on the wall clock, forward: N over an hour, ~0)
        expect(overall).not.toBeNull(); // on the wall clock, back: a window below zero, no rate
        expect(overall!).toBeGreaterThanOrEqual(Math.floor(least)); // other processes' messages may add to it
        expect(own).not.toBeNull();
        expect(own!).toBeGreaterThanOrEqual(least - 0.05);
        expect(own!).toBeLessThanOrEqual((N * 1000) / (t2 - t1) + 0.05);
      } finally {
        await obs.close();
      }
    });
  }
});

export type { Node };
