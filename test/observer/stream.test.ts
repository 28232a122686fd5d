// The observer's server-side history and live frames: GET /api/telemetry, the `telemetry`,
// `processes` and `job` frames of the event stream, and dead-letter jobs at a rate.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import { EventHub } from '../../src/observer/events.js';
import { MAX_JOB_ENTRIES, MAX_JOBS } from '../../src/observer/jobs.js';
import { kernelOf } from '../../src/runtime/kernel.js';
import { Pid, startObserver } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { clockedNode, deferred, useNodes } from '../support.js';
import { bearer, openStream, request, type SseFrame } from './client.js';

const track = useNodes();

function sum(buckets: { counts: Record<string, number> }[], name: string): number {
  return buckets.reduce((n, b) => n + (b.counts[name] ?? 0), 0);
}

describe('an observer nobody watches', () => {
  it('listens to no event that costs a turn or a message: the scheduler times no turn, no spawn or call builds its event', async () => {
    const node = track();
    const perTurn = ['keel.process.long_schedule', 'keel.process.spawned', 'keel.process.exited', 'keel.gen_server.call', 'keel.signal_router.deliver'];
    const before = perTurn.map((e) => node.telemetry.isAttached(e));
    expect(before).toEqual(perTurn.map(() => false));
    const obs = await startObserver(node);
    try {
      expect(perTurn.map((e) => node.telemetry.isAttached(e))).toEqual(perTurn.map(() => false));
      expect(node.telemetry.isAttached('keel.supervisor.child_restarted')).toBe(true); // the history counts the rare ones
    } finally {
      await obs.close();
    }
    expect(node.telemetry.isAttached('keel.supervisor.child_restarted')).toBe(false);
  });
});

describe('GET /api/telemetry', () => {
  it('counts the listened events per second, exactly, and ignores the others', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (let i = 0; i < 3; i++) node.telemetry.execute('keel.supervisor.child_restarted', {}, {});
      node.telemetry.execute('keel.message.dropped', {}, {});
      node.telemetry.execute('app.not_listened', {}, {});
      const t = (await request(obs.port, { path: '/api/telemetry?window=60', headers: bearer(obs.token) })).json;
      expect(sum(t.buckets, 'keel.supervisor.child_restarted')).toBe(3);
      expect(sum(t.buckets, 'keel.message.dropped')).toBe(1);
      expect(t.names).toEqual(['keel.message.dropped', 'keel.supervisor.child_restarted']);
      expect(t.events).toContain('keel.supervisor.*');
      for (const b of t.buckets) expect(b.at % 1000).toBe(0);
    } finally {
      await obs.close();
    }
    // closed: its handler is gone
    expect(node.telemetry.isAttached('keel.supervisor.child_restarted')).toBe(false);
  });

  it('listens to the events it is told, and caps the distinct names (the rest count as (other))', async () => {
    const node = track();
    const obs = await startObserver(node, { telemetryEvents: ['flood.*'] });
    try {
      for (let i = 0; i < 250; i++) node.telemetry.execute(`flood.${i}`, {}, {});
      node.telemetry.execute('keel.supervisor.child_restarted', {}, {});
      const t = (await request(obs.port, { path: '/api/telemetry', headers: bearer(obs.token) })).json;
      expect(t.names).toHaveLength(201);
      expect(sum(t.buckets, '(other)')).toBe(50);
      expect(t.names).not.toContain('keel.supervisor.child_restarted');
    } finally {
      await obs.close();
    }
    await expect(startObserver(node, { telemetryEvents: 'x' as never })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(startObserver(node, { telemetryEvents: [''] })).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('keeps the overview series of each sample; hostile windows are 400', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) });
      await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) });
      const t = (await request(obs.port, { path: '/api/telemetry', headers: bearer(obs.token) })).json;
      expect(t.series).toHaveLength(2);
      expect(t.series[1]).toMatchObject({ processes: node.processes().length, runQueue: expect.any(Number), heapUsed: expect.any(Number) });
      for (const w of ['0', '901', 'abc', '-5', '1e3', '__proto__']) {
        const a = await request(obs.port, { path: `/api/telemetry?window=${w}`, headers: bearer(obs.token) });
        expect(a.status, w).toBe(400);
      }
    } finally {
      await obs.close();
    }
  });
});

describe('the event stream', () => {
  it('sends telemetry frames with the latest buckets', async () => {
    const node = track();
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const s = await openStream(obs.port, bearer(obs.token));
      const snap = JSON.parse((await s.next((f) => f.event === 'snapshot')).data!);
      expect(snap.telemetry).toMatchObject({ buckets: expect.any(Array), series: expect.any(Array) });
      node.telemetry.execute('keel.message.dropped', {}, {});
      expect(await obs.pushFrame()).toBe(true);
      const t = JSON.parse((await s.next((f) => f.event === 'telemetry')).data!);
      expect(sum(t.buckets, 'keel.message.dropped')).toBe(1);
      await s.close();
    } finally {
      await obs.close();
    }
  });

  it('view=processes: the page in the snapshot, then deltas (changed rows, removed pids, the order, the total)', async () => {
    const node = track();
    const started = deferred();
    const gate = deferred();
    const flooded = node.spawn<string>(() => async (m) => {
      if (m === 'hold') {
        started.resolve();
        await gate.promise;
      }
    });
    node.send(flooded, 'hold');
    await started.promise;
    const doomed = node.spawn<string>(() => () => undefined);
    for (let i = 0; i < 3; i++) node.send(doomed, 'x');
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const s = await openStream(obs.port, bearer(obs.token), '/api/events?view=processes&sort=mailbox&limit=5');
      const snap = JSON.parse((await s.next((f) => f.event === 'snapshot')).data!);
      expect(snap.processes).toMatchObject({ sort: 'mailbox', limit: 5, total: node.processes().length });
      for (let i = 0; i < 40; i++) node.send(flooded, `m${i}`);
      node.exit(doomed, 'kill');
      expect(await obs.pushFrame()).toBe(true);
      const p = JSON.parse((await s.next((f) => f.event === 'processes')).data!);
      expect(p.full).toBe(false);
      expect(p.total).toBe(node.processes().length);
      expect(p.changed).toContainEqual(expect.objectContaining({ pid: Pid.format(flooded), mailbox: 40 }));
      expect(p.removed).toEqual(snap.processes.processes.some((r: { pid: string }) => r.pid === Pid.format(doomed)) ? [Pid.format(doomed)] : []);
      expect(p.order[0]).toBe(Pid.format(flooded));
      // nothing changed: an empty delta
      expect(await obs.pushFrame()).toBe(true);
      const q = JSON.parse((await s.next((f) => f.event === 'processes')).data!);
      expect(q.changed.filter((r: { pid: string }) => r.pid === Pid.format(flooded))).toEqual([]);
      expect(q.removed).toEqual([]);
      // a reconnect with Last-Event-ID gets its whole page again
      const lastId = s.frames.filter((f: SseFrame) => f.id !== undefined).at(-1)!.id!;
      await s.close();
      const again = await openStream(obs.port, { ...bearer(obs.token), 'last-event-id': lastId }, '/api/events?view=processes&limit=5');
      const full = JSON.parse((await again.next((f) => f.event === 'processes')).data!);
      expect(full.full).toBe(true);
      expect(full.changed).toHaveLength(Math.min(5, node.processes().length));
      await again.close();
    } finally {
      gate.resolve();
      await obs.close();
    }
  });

  it('view=processes: the snapshot page has rates, measured against the sample before the stream opened', async () => {
    const { node, clock } = clockedNode(track);
    const busy = node.spawn<string>(() => () => undefined, { name: 'busy' });
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      // the reference sample, then 5 messages handled in one second of the node's clock
      expect((await request(obs.port, { path: '/api/processes?filter=busy', headers: bearer(obs.token) })).json.processes).toMatchObject([{ name: 'busy', rate: null }]);
      for (let i = 0; i < 5; i++) node.send(busy, 'x');
      await node.idle();
      await clock.advance(1000);
      const s = await openStream(obs.port, bearer(obs.token), '/api/events?view=processes&filter=busy');
      const snap = JSON.parse((await s.next((f) => f.event === 'snapshot')).data!);
      await s.close();
      // the overview's own top 20 is sampled after the viewed page: it does not take the reference away
      expect(snap.processes.processes).toMatchObject([{ pid: Pid.format(busy), handled: 5, rate: 5 }]);
    } finally {
      await obs.close();
    }
  });

  it('an overview-only client costs no processes sampling; bad view parameters are 400', async () => {
    const node = track();
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const s = await openStream(obs.port, bearer(obs.token));
      await s.next((f) => f.event === 'snapshot');
      expect(await obs.pushFrame()).toBe(true);
      await s.next((f) => f.event === 'overview');
      await s.close();
      expect(s.frames.filter((f) => f.event === 'processes')).toEqual([]);
      for (const q of ['view=__proto__', 'view=processes&sort=nope', 'view=processes&limit=0', 'view=processes&status=zzz']) {
        const a = await request(obs.port, { path: `/api/events?${q}`, headers: bearer(obs.token) });
        expect(a.status, q).toBe(400);
      }
    } finally {
      await obs.close();
    }
  });
});

describe('POST /api/dead-letters/retry with ratePerSecond', () => {
  it('answers a job at once; its progress is readable and pushed as job frames until finished', async () => {
    // the queue's own retries are out of the way (they would run as the clock advances)
    const { node, clock } = clockedNode(track, { services: { deadLetters: { backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    node.spawn(() => () => undefined, { name: 'inbox' });
    for (let i = 0; i < 3; i++) await node.deadLetters.add({ recipient: 'inbox', message: i, reason: 'noproc' });
    for (let i = 0; i < 2; i++) await node.deadLetters.add({ recipient: 'nobody', message: i, reason: 'noproc' });
    const ro = await startObserver(node);
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    try {
      const refused = await request(ro.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(ro.token), body: { filter: {}, ratePerSecond: 2 } });
      expect(refused.status).toBe(403);
      for (const rate of ['2', -1, 0, 1e9, null]) {
        const bad = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: rate } });
        expect(bad.status, String(rate)).toBe(400);
      }
      const s = await openStream(obs.port, bearer(obs.token));
      await s.next((f) => f.event === 'snapshot');
      const a = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 2 } });
      expect(a.status).toBe(200);
      expect(a.json).toEqual({ jobId: expect.stringMatching(/^[0-9a-f]{16}$/), total: 5, leftOut: 0 });
      const job = (id: string) => request(obs.port, { path: `/api/dead-letters/jobs/${id}`, headers: bearer(obs.token) });
      expect((await job(a.json.jobId)).json).toMatchObject({ total: 5, done: 0, finished: false });
      let last: { done: number; finished: boolean; succeeded: number; failed: number } = { done: 0, finished: false, succeeded: 0, failed: 0 };
      while (!last.finished) {
        await clock.advance(500); // 2 per second: one entry per half second
        last = JSON.parse((await s.next((f) => f.event === 'job')).data!);
      }
      expect(last).toMatchObject({ done: 5, succeeded: 3, failed: 2, finished: true, error: null });
      expect((await job(a.json.jobId)).json).toEqual(last);
      expect((await job('nope')).status).toBe(404);
      await s.close();
    } finally {
      await ro.close();
      await obs.close();
    }
  });
});

describe('dead-letter jobs: at most MAX_JOBS at once', () => {
  it('a job past MAX_JOBS running is refused (503), every running job stays readable, and close() cancels them all, leaving no timer', async () => {
    const { node } = clockedNode(track, { services: { deadLetters: { backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    await node.deadLetters.add({ recipient: 'nobody', message: 0, reason: 'noproc' });
    await node.idle(); // (the queue's own wake-up timer is set)
    const kernel = kernelOf(node, 'node');
    const timersBefore = kernel.internals().timers;
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    const retry = () => request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 0.001 } });
    const ids: string[] = [];
    try {
      // the clock does not move: each job waits for its first tick, holding its ids and a timer
      for (let i = 0; i < MAX_JOBS; i++) {
        const a = await retry();
        expect(a.status).toBe(200);
        ids.push(a.json.jobId);
      }
      const over = await retry();
      expect(over.status).toBe(503);
      expect(over.json.error.code).toBe('service_unavailable');
      for (const id of ids) expect((await request(obs.port, { path: `/api/dead-letters/jobs/${id}`, headers: bearer(obs.token) })).status, id).toBe(200);
    } finally {
      await obs.close();
    }
    expect(kernel.internals().timers).toBe(timersBefore);
  });
});

describe('POST /api/dead-letters/redrive', () => {
  it('delivers the entries to another recipient, removes them; a recipient not alive leaves them; read-only refuses', async () => {
    const node = track();
    const inbox = probe(node);
    node.registry.register('inbox2', inbox);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await node.deadLetters.add({ recipient: 'gone', message: { n: i }, reason: 'noproc' }));
    const ro = await startObserver(node);
    const obs = await startObserver(node, { readOnly: false });
    const post = (port: number, token: string, body: object) => request(port, { method: 'POST', path: '/api/dead-letters/redrive', headers: bearer(token), body });
    try {
      expect((await post(ro.port, ro.token, { ids, to: 'inbox2' })).status).toBe(403);
      for (const [body, field] of [
        [{ to: 'inbox2' }, 'ids'],
        [{ ids, to: 123 }, 'to'],
        [{ ids, to: '' }, 'to'],
        [{ ids, to: '<not a pid>' }, 'to'],
        [{ ids, to: { __proto__: { x: 1 } } }, 'to'],
        [{ ids: [1, 2], to: 'inbox2' }, 'ids'],
      ] as const) {
        const a = await post(obs.port, obs.token, body);
        expect(a.status, JSON.stringify(body)).toBe(400);
        expect(a.json.error.field).toBe(field);
      }
      const dead = node.spawn(() => () => undefined);
      node.exit(dead, 'kill');
      await node.idle();
      for (const to of ['nobody_here', Pid.format(dead)]) {
        const miss = await post(obs.port, obs.token, { ids: [ids[0]], to });
        expect(miss.json).toEqual({ redriven: 0, results: [{ id: ids[0], ok: false, reason: 'noproc' }] });
      }
      expect((await node.deadLetters.stats()).pending).toBe(3);
      const ok = await post(obs.port, obs.token, { ids: ids.slice(0, 2), to: 'inbox2' });
      expect(ok.json).toEqual({ redriven: 2, results: [{ id: ids[0], ok: true }, { id: ids[1], ok: true }] });
      expect(await inbox.receive()).toEqual({ n: 0 });
      expect(await inbox.receive()).toEqual({ n: 1 });
      expect((await node.deadLetters.list({})).entries.map((e) => e.id)).toEqual([ids[2]]);
      const job = await post(obs.port, obs.token, { ids: [ids[2]], to: Pid.format(inbox), ratePerSecond: 100 });
      expect(job.json).toEqual({ jobId: expect.any(String), total: 1, leftOut: 0 });
      expect(await inbox.receive()).toEqual({ n: 2 });
    } finally {
      await ro.close();
      await obs.close();
    }
  });
});

describe('startObserver on a taken port', () => {
  it('fails and leaves nothing switched on: no telemetry handler, no spawn times', async () => {
    const node = track();
    const first = await startObserver(node);
    try {
      await expect(startObserver(node, { port: first.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await first.close();
    }
    expect(node.telemetry.isAttached('keel.supervisor.child_restarted')).toBe(false);
    const later = node.spawn(() => () => undefined);
    const obs = await startObserver(node);
    try {
      const page = (await request(obs.port, { path: '/api/processes?limit=1000', headers: bearer(obs.token) })).json;
      expect(page.processes.find((r: { pid: string }) => r.pid === Pid.format(later))).toMatchObject({ ageExact: false });
    } finally {
      await obs.close();
    }
  });
});

describe('dead-letter actions without a dead letter queue', () => {
  it('retry at a rate and redrive answer 503 service_unavailable', async () => {
    const node = track({ services: false });
    const obs = await startObserver(node, { readOnly: false });
    try {
      const retry = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 5 } });
      expect(retry.status).toBe(503);
      expect(retry.json.error.code).toBe('service_unavailable');
      const redrive = await request(obs.port, { method: 'POST', path: '/api/dead-letters/redrive', headers: bearer(obs.token), body: { ids: ['1'], to: 'x' } });
      expect(redrive.status).toBe(503);
      expect((await request(obs.port, { path: '/api/dead-letters/jobs/abc', headers: bearer(obs.token) })).status).toBe(404);
    } finally {
      await obs.close();
    }
  });
});

describe('the event stream: keep-alive', () => {
  it('sends a keep-alive comment every keepAliveMs even when frames are rarer (sampleMs > keepAliveMs)', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    try {
      const written: string[] = [];
      const res = Object.assign(new EventEmitter(), {
        destroyed: false,
        writableLength: 0,
        writeHead: () => res,
        write: (text: string) => written.push(text) > 0,
        end: () => undefined,
        destroy: () => undefined,
      });
      const hub = new EventHub({
        sampleMs: 60_000,
        keepAliveMs: 15_000,
        snapshot: () => Promise.resolve({}),
        sample: () => Promise.resolve({}),
        watching: () => undefined,
        processes: () => ({ total: 0, processes: [] }),
        viewers: () => undefined,
        telemetry: () => undefined,
        onError: (e) => {
          throw e;
        },
      });
      await hub.connect(res as unknown as ServerResponse, undefined);
      const keepAlives = (): number => written.filter((t) => t === ': keep-alive\n\n').length;
      expect(keepAlives()).toBe(0);
      vi.advanceTimersByTime(15_000);
      expect(keepAlives()).toBe(1);
      vi.advanceTimersByTime(45_000);
      expect(keepAlives()).toBe(4);
      hub.close();
      expect(vi.getTimerCount()).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('POST /api/dead-letters/retry of all matching, past the cap', () => {
  it(`takes the first MAX_JOB_ENTRIES matching into the job and says how many it left out (leftOut), in the answer and the job's progress`, { timeout: 60_000 }, async () => {
    const extra = 7;
    const { node } = clockedNode(track, { services: { deadLetters: { capacity: MAX_JOB_ENTRIES + extra, backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    for (let i = 0; i < MAX_JOB_ENTRIES + extra; i++) await node.deadLetters.add({ recipient: 'nobody', message: i, reason: 'noproc' });
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    try {
      const a = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 0.001 } });
      expect(a.status).toBe(200);
      // the memory store's ids count from 1: the job holds '1' to '100000'
      expect(a.json).toEqual({ jobId: expect.stringMatching(/^[0-9a-f]{16}$/), total: MAX_JOB_ENTRIES, leftOut: extra, cursor: String(MAX_JOB_ENTRIES) });
      const job = await request(obs.port, { path: `/api/dead-letters/jobs/${a.json.jobId}`, headers: bearer(obs.token) });
      expect(job.json).toMatchObject({ total: MAX_JOB_ENTRIES, leftOut: extra, done: 0, finished: false });
    } finally {
      await obs.close();
    }
  });

  it('answers a cursor where the job stopped, from which a second job with the same filter takes the entries left out (not the oldest again)', { timeout: 60_000 }, async () => {
    const extra = 7;
    const { node, clock } = clockedNode(track, { services: { deadLetters: { capacity: MAX_JOB_ENTRIES + extra, backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    const ids: string[] = [];
    for (let i = 0; i < MAX_JOB_ENTRIES + extra; i++) ids.push(await node.deadLetters.add({ recipient: 'nobody', message: i, reason: 'noproc' }));
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    try {
      const first = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 0.001 } });
      expect(first.json).toEqual({ jobId: expect.any(String), total: MAX_JOB_ENTRIES, leftOut: extra, cursor: ids[MAX_JOB_ENTRIES - 1] });
      const firstJob = await request(obs.port, { path: `/api/dead-letters/jobs/${first.json.jobId}`, headers: bearer(obs.token) });
      expect(firstJob.json).toMatchObject({ leftOut: extra, cursor: ids[MAX_JOB_ENTRIES - 1] });
      // the second job, while the first still holds the oldest: the seven left out, the newest
      const second = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: 100_000, cursor: first.json.cursor } });
      expect(second.json).toEqual({ jobId: expect.any(String), total: extra, leftOut: 0 });
      const retried = vi.spyOn(node.deadLetters, 'retry');
      let progress = (await request(obs.port, { path: `/api/dead-letters/jobs/${second.json.jobId}`, headers: bearer(obs.token) })).json;
      while (!progress.finished) {
        await clock.advance(100);
        progress = (await request(obs.port, { path: `/api/dead-letters/jobs/${second.json.jobId}`, headers: bearer(obs.token) })).json;
      }
      expect(progress).toMatchObject({ total: extra, leftOut: 0, cursor: null, done: extra, failed: extra });
      const calls = retried.mock.calls.flatMap(([chunk]) => chunk as string[]);
      expect(calls.filter((id) => Number(id) > MAX_JOB_ENTRIES)).toEqual(ids.slice(MAX_JOB_ENTRIES));
      // the first job, at its slow rate, went on with its own oldest entries only
      const firstDone = (await request(obs.port, { path: `/api/dead-letters/jobs/${first.json.jobId}`, headers: bearer(obs.token) })).json.done as number;
      expect(calls.filter((id) => Number(id) <= MAX_JOB_ENTRIES)).toEqual(ids.slice(0, firstDone));
      // a cursor is a list cursor: text of digits, given with a filter
      for (const body of [{ filter: {}, ratePerSecond: 1, cursor: 'x1' }, { filter: {}, ratePerSecond: 1, cursor: 12 }, { ids: [ids[0]], ratePerSecond: 1, cursor: ids[0] }]) {
        const bad = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body });
        expect(bad.status).toBe(400);
        expect(bad.json.error).toMatchObject({ code: 'bad_request', field: 'cursor' });
      }
    } finally {
      await obs.close();
    }
  });
});

describe('POST /api/dead-letters/retry of all matching and /purge walk the queue a page a turn', () => {
  // the walk of a matching set was one chain of microtasks: a queue of 300,000 entries held the event
  // loop 1 s (no other request, heartbeat or timer ran), growing with the queue now that the walk
  // goes past MAX_JOB_ENTRIES to count leftOut; each page of the walk now comes in a turn of its own
  async function pagesAndTurns(path: string, body: object): Promise<{ status: number; turns: number[] }> {
    const { node } = clockedNode(track, { services: { deadLetters: { capacity: 2500, backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    for (let i = 0; i < 2500; i++) await node.deadLetters.add({ recipient: 'nobody', message: i, reason: 'noproc' });
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    let turn = 0;
    let ticking = true;
    const tick = (): void => {
      turn++;
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    const turns: number[] = [];
    const list = node.deadLetters.list.bind(node.deadLetters);
    const spy = vi.spyOn(node.deadLetters, 'list').mockImplementation((filter) => {
      turns.push(turn);
      return list(filter);
    });
    try {
      const a = await request(obs.port, { method: 'POST', path, headers: bearer(obs.token), body });
      return { status: a.status, turns };
    } finally {
      ticking = false;
      spy.mockRestore();
      await obs.close();
    }
  }

  it('retry of all matching at a rate: its three pages in three turns', async () => {
    const { status, turns } = await pagesAndTurns('/api/dead-letters/retry', { filter: {}, ratePerSecond: 0.001 });
    expect(status).toBe(200);
    expect(turns).toHaveLength(3);
    expect(new Set(turns).size).toBe(3);
  });

  it('purge, counting the matching entries: its three pages in three turns', async () => {
    const { status, turns } = await pagesAndTurns('/api/dead-letters/purge', { filter: {}, confirm: 1 });
    expect(status).toBe(409);
    expect(turns).toHaveLength(3);
    expect(new Set(turns).size).toBe(3);
  });
});
