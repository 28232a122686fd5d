// The observer under hostile input and failure: payloads hidden without allowPayloads, absurd rates, clients that stop reading, busy supervisors and components, huge states, a stopped node, big groups, bad cursors.
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { Agent, CoordinatorAgent, DynamicSupervisor, Pid, startObserver, Supervisor, Sys } from '../../src/index.js';
import { jsonSafe, MAX_STATE_CHARS } from '../../src/observer/detail.js';
import { MAX_PAGE_CHARS } from '../../src/observer/deadLetters.js';
import { reasonKind } from '../../src/observer/redact.js';
import { supervisionTrees, TREE_CALL_TIMEOUT_MS, type TreeNode } from '../../src/observer/tree.js';
import { kernelOf } from '../../src/runtime/kernel.js';
import { clockedNode, deferred, useNodes, watch } from '../support.js';
import { Jobs, type JobProgress } from '../../src/observer/jobs.js';
import { SharedCalls } from '../../src/observer/calls.js';
import { MAX_BUFFERED_BYTES } from '../../src/observer/events.js';
import { MAX_GROUP_MEMBERS, MAX_LIMIT, SERVER_LIMITS, startObserverWithLimits } from '../../src/observer/Observer.js';
import { bearer, request } from './client.js';

const track = useNodes();

describe('observer robustness: payloads hidden, busy supervisors', () => {
  it('without allowPayloads, workflow task errors and restart reasons show their kind, never their text', async () => {
    const node = track();
    const worker = await Agent.start(node, {
      capabilities: [],
      tasks: {
        boom: () => {
          throw new TypeError('card 4111-1111 of alice');
        },
      },
    });
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [worker.pid] });
    const { id } = await coordinator.submit({ id: 'wf-1', tasks: [{ id: 't', kind: 'boom' }] });
    await coordinator.wait(id).catch(() => undefined);
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => { throw new Error('order 4111 of bob'); }) }], { maxRestarts: 5, withinMs: 10_000 });
    const [child] = await Supervisor.whichChildren(node, sup);
    node.send(child!.pid as Pid, 'go');
    await node.idle();
    const hidden = await startObserver(node);
    const shown = await startObserver(node, { allowPayloads: true });
    try {
      const read = async (obs: typeof hidden) => {
        const get = async (path: string) => (await request(obs.port, { path, headers: bearer(obs.token) })).json;
        return { wf: await get('/api/workflows'), tree: await get('/api/tree'), detail: await get(`/api/process/${encodeURIComponent(Pid.format(sup))}`) };
      };
      const h = await read(hidden);
      // the texts' own words: digits alone ('4111') also turned up inside a timestamp (epoch ms 1796541115837)
      expect(JSON.stringify(h)).not.toMatch(/alice|bob|4111-1111|order 4111/);
      expect(h.wf.coordinators[0].recent[0]).toMatchObject({ error: 'TypeError', tasks: [expect.objectContaining({ id: 't', error: 'TypeError' })] });
      expect(h.tree.trees.find((t: { supervisor: string }) => t.supervisor === Pid.format(sup)).restarts).toEqual([expect.objectContaining({ child: 'w', reason: 'Error' })]);
      expect(h.detail.restarts).toEqual([expect.objectContaining({ child: 'w', reason: 'Error' })]);
      // with allowPayloads the texts are whole
      const s = await read(shown);
      expect(s.wf.coordinators[0].recent[0].error).toBe('TypeError: card 4111-1111 of alice');
      expect(s.detail.restarts).toEqual([expect.objectContaining({ reason: 'Error: order 4111 of bob' })]);
    } finally {
      await hidden.close();
      await shown.close();
    }
  });

  it('reasonKind keeps a code, an error name, a shutdown shape; hides free text', () => {
    expect(reasonKind('killed')).toBe('killed');
    expect(reasonKind('worker_lost')).toBe('worker_lost');
    expect(reasonKind('TypeError: secret')).toBe('TypeError');
    expect(reasonKind('{ shutdown: {"card":"4111"} }')).toBe('{ shutdown: … }');
    expect(reasonKind('card 4111 of alice')).toBe('(hidden)');
    expect(reasonKind('4111111111111111')).toBe('(hidden)');
    expect(reasonKind('{"card":"4111"}')).toBe('(hidden)');
  });

  it('the tree walk waits for busy supervisors side by side: n of them cost one call timeout, not n', async () => {
    const { node, clock } = clockedNode(track);
    const worker = { id: 'w', start: (ctx: Parameters<Parameters<typeof Supervisor.start>[1][number]['start']>[0]) => ctx.spawnLink(() => () => undefined) };
    const busy: Pid[] = [];
    for (let i = 0; i < 3; i++) {
      const sup = await Supervisor.start(node, [worker]);
      await Sys.suspend(node, sup);
      busy.push(sup);
    }
    const inner = await Supervisor.start(node, [{ id: 'inner', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, [worker]) }]);
    const [innerChild] = await Supervisor.whichChildren(node, inner);
    await Sys.suspend(node, innerChild!.pid as Pid);
    const trees = watch(supervisionTrees(node, kernelOf(node, 'node'), []));
    await node.idle();
    await clock.advance(TREE_CALL_TIMEOUT_MS);
    await node.idle();
    expect(trees.status).toBe('resolved');
    const roots = trees.value!;
    for (const sup of busy) expect(roots).toContainEqual({ root: Pid.format(sup), error: 'timeout' });
    const top = roots.find((t) => 'supervisor' in t && t.supervisor === Pid.format(inner)) as TreeNode;
    expect(top.children[0]!.tree).toEqual({ error: 'timeout' });
    for (const sup of [...busy, innerChild!.pid as Pid]) await Sys.resume(node, sup);
  });
});

describe('observer robustness: event streams', () => {
  it('a client that stops reading (a `keel top` put in the background) is dropped, not buffered without end', async () => {
    const node = track();
    const pids = Array.from({ length: 1000 }, (_, i) => node.spawn(() => () => undefined, { name: `worker-${i}-${'x'.repeat(200)}` }));
    const obs = await startObserver(node);
    // a drop is counted, not silent: an event, which the telemetry history counts by default
    const drops: { measurements: Record<string, number>; metadata: Record<string, unknown> }[] = [];
    node.telemetry.attach('review-drops', ['keel.observer.stream_dropped'], (_e, measurements, metadata) => drops.push({ measurements, metadata }));
    const socket = connect(obs.port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      socket.write(`GET /api/events?view=processes&limit=1000 HTTP/1.1\r\nHost: 127.0.0.1:${obs.port}\r\nAuthorization: Bearer ${obs.token}\r\n\r\n`);
      await once(socket, 'data'); // the stream's head: it is open
      socket.pause(); // and never read again
      expect(obs.clients).toBe(1);
      // each frame carries 1,000 changed rows (~300 KB): past the socket's buffers, then past the bound
      let pushes = 0;
      while (obs.clients > 0 && pushes < 500) {
        for (const pid of pids) node.send(pid, 'tick');
        await obs.pushFrame();
        pushes++;
      }
      expect(obs.clients).toBe(0);
      expect(pushes).toBeLessThan(500);
      expect(drops).toEqual([{ measurements: { bufferedBytes: expect.any(Number) }, metadata: { reason: 'slow_reader', view: 'processes' } }]);
      expect(drops[0]!.measurements.bufferedBytes).toBeGreaterThan(MAX_BUFFERED_BYTES);
      const history = await request(obs.port, { path: '/api/telemetry', headers: bearer(obs.token) });
      expect(history.json.names).toContain('keel.observer.stream_dropped');
    } finally {
      node.telemetry.detach('review-drops');
      socket.destroy();
      await obs.close();
    }
  });
});

describe('observer robustness: dead-letter jobs', () => {
  it('a rate so small its tick is infinite is refused (400), and a job whose timer cannot be set ends with an error, never an unhandled rejection', async () => {
    const { node, clock } = clockedNode(track, { services: { deadLetters: { backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    node.spawn(() => () => undefined, { name: 'inbox' });
    for (let i = 0; i < 2; i++) await node.deadLetters.add({ recipient: 'inbox', message: i, reason: 'noproc' });
    const obs = await startObserver(node, { readOnly: false });
    try {
      for (const rate of [5e-324, 1e-300, 0.0001]) {
        const bad = await request(obs.port, { method: 'POST', path: '/api/dead-letters/retry', headers: bearer(obs.token), body: { filter: {}, ratePerSecond: rate } });
        expect(bad.status, String(rate)).toBe(400);
        expect(bad.json.error.field).toBe('ratePerSecond');
      }
    } finally {
      await obs.close();
    }
    // the job runner itself: a step whose next tick cannot be timed ends the job with its error
    const reports: JobProgress[] = [];
    const jobs = new Jobs(kernelOf(node, 'node'), (p) => reports.push(p));
    const stepped = deferred();
    jobs.start('retry', ['a', 'b'], 5e-324, async (ids) => {
      stepped.resolve();
      return ids.map(() => ({ ok: true }));
    });
    await clock.advance(0);
    await stepped.promise;
    await node.idle();
    expect(reports.at(-1)).toMatchObject({ finished: true, error: 'ERR_INVALID_ARGUMENT', done: 1 });
    jobs.close();
  });
});

describe('observer robustness: hostile queries', () => {
  it('GET /api/dead-letters with a cursor that is not one answers 400, not 500 (and logs no failure)', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (const cursor of ['zzz', '-1', '%00', 'x'.repeat(200)]) {
        const a = await request(obs.port, { path: `/api/dead-letters?cursor=${encodeURIComponent(cursor)}`, headers: bearer(obs.token) });
        expect(a.status, cursor).toBe(400);
        expect(a.json.error.code).toBe('bad_request');
      }
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: a redactor state', () => {
  it('jsonSafe bounds the whole value, not only each level: 200 x 200 x 200 entries show at most MAX_STATE_VALUES', () => {
    const row = Array.from({ length: 200 }, (_, i) => i);
    const table = Array.from({ length: 200 }, () => row);
    const state = Array.from({ length: 200 }, () => table); // 8,000,000 numbers at depth 3
    const out = jsonSafe(state);
    const text = JSON.stringify(out);
    expect(text.length).toBeLessThan(200_000);
    expect(text).toContain('[truncated]');
    // a small value is whole
    expect(jsonSafe({ a: [1, 2, { b: 3 }] })).toEqual({ a: [1, 2, { b: 3 }] });
  });

  it('a huge typed array (a Buffer kept in the state) shows its first 200 entries, like an array: its 10,000,000 keys are never listed', () => {
    // Object.keys of it took seconds and hundreds of MB, at every poll of the detail page
    const buffer = Buffer.alloc(10_000_000, 7);
    expect(jsonSafe({ buffer, big: new BigInt64Array(3).fill(5n) })).toEqual({ buffer: Array.from({ length: 200 }, () => 7), big: ['5', '5', '5'] });
  });
});

describe('observer robustness: rates', () => {
  it("the overview's message rate counts what the live processes handled in the window, even when a busy process died in it", async () => {
    const { node, clock } = clockedNode(track, { services: false });
    const old = node.spawn(() => () => undefined);
    for (let i = 0; i < 100; i++) node.send(old, i);
    await node.idle();
    const obs = await startObserver(node);
    try {
      const overview = async () => (await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) })).json;
      expect((await overview()).messageRate).toBeNull();
      await clock.advance(1000);
      node.exit(old, 'kill'); // its 100 messages were handled before the window
      const fresh = node.spawn(() => () => undefined);
      for (let i = 0; i < 50; i++) node.send(fresh, i);
      await node.idle();
      expect((await overview()).messageRate).toBe(50);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: lifecycle', () => {
  it('refuses to start on a stopped node, and a shutdown while it starts leaves no server behind', async () => {
    const stopped = track();
    await stopped.shutdown();
    await expect(startObserver(stopped)).rejects.toMatchObject({ code: 'ERR_NODE_STOPPED' });
    const node = track();
    const starting = startObserver(node);
    const shutdown = node.shutdown();
    await expect(starting).rejects.toMatchObject({ code: 'ERR_NODE_STOPPED' });
    await shutdown;
    expect(node.telemetry.isAttached('keel.supervisor.child_restarted')).toBe(false); // its history detached
  });
});

describe('observer robustness: a busy process polled', () => {
  it('a supervisor that does not answer gets one queued status call, however often the tree is polled', async () => {
    const { node, clock } = clockedNode(track);
    const kernel = kernelOf(node, 'node');
    const sup = await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }]);
    await Sys.suspend(node, sup);
    const calls = new SharedCalls(kernel);
    for (let poll = 0; poll < 3; poll++) {
      const trees = watch(supervisionTrees(node, kernel, [sup], 8, calls));
      await node.idle();
      await clock.advance(TREE_CALL_TIMEOUT_MS);
      await node.idle();
      expect(trees.status).toBe('resolved');
      expect(trees.value![0]).toEqual({ root: Pid.format(sup), error: 'timeout' });
    }
    // (a suspended server keeps the calls it receives aside: `queued` counts them)
    expect((await Sys.getStatus(node, sup)).queued).toBe(1);
    expect(calls.pending).toBe(1);
    await Sys.resume(node, sup);
    await node.idle();
    expect(calls.pending).toBe(0);
    const trees = watch(supervisionTrees(node, kernel, [sup], 8, calls));
    await node.idle();
    expect(trees.value![0]).toMatchObject({ supervisor: Pid.format(sup), strategy: 'one_for_one' });
  });
});

describe('observer robustness: nobody watching', () => {
  it("an observer with no client leaves the scheduler's turns untimed: its history does not listen to keel.process.long_schedule", async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      // listening to it makes every turn of every process read the clock twice (Scheduler#timedTurn)
      expect(node.telemetry.isAttached('keel.process.long_schedule')).toBe(false);
      expect(obs.clients).toBe(0);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: big groups', () => {
  it('GET /api/groups lists at most MAX_GROUP_MEMBERS members of a group, with the group size', async () => {
    const node = track();
    for (let i = 0; i < 1500; i++) node.groups.join('crowd', node.spawn(() => () => undefined));
    const obs = await startObserver(node);
    try {
      const g = (await request(obs.port, { path: '/api/groups', headers: bearer(obs.token) })).json;
      expect(g.total).toBe(1);
      expect(g.groups[0]).toMatchObject({ group: 'crowd', size: 1500 });
      expect(g.groups[0].members).toHaveLength(MAX_GROUP_MEMBERS);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: a deep supervision tree', () => {
  it('without allowPayloads, a restart reason is hidden however deep its supervisor is in the tree', async () => {
    const node = track();
    type Spec = Parameters<typeof Supervisor.start>[1][number];
    const crashing: Spec = { id: 'w', start: (ctx) => ctx.spawnLink(() => () => { throw new Error('card 4111 of carol'); }) };
    // a chain of 6 supervisors: top > s1 > s2 > s3 > s4 > s5 > w (a depth the walk goes down to)
    let spec: Spec = crashing;
    for (let level = 5; level >= 1; level--) {
      const inner = spec;
      spec = { id: `s${level}`, type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, [inner], { maxRestarts: 5, withinMs: 10_000 }) };
    }
    const top = await Supervisor.start(node, [spec]);
    let sup = top;
    for (let level = 1; level <= 5; level++) sup = (await Supervisor.whichChildren(node, sup))[0]!.pid as Pid;
    const [worker] = await Supervisor.whichChildren(node, sup);
    node.send(worker!.pid as Pid, 'go');
    await node.idle();
    const obs = await startObserver(node);
    try {
      const a = await request(obs.port, { path: '/api/tree', headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      let t = a.json.trees.find((r: { supervisor: string }) => r.supervisor === Pid.format(top));
      for (let level = 1; level <= 5; level++) t = t.children[0].tree;
      expect(t.supervisor).toBe(Pid.format(sup));
      expect(t.restarts).toEqual([expect.objectContaining({ child: 'w', reason: 'Error' })]);
      expect(a.text).not.toMatch(/carol|card 4111/); // the text's words: '4111' alone can be part of a timestamp
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: dead-letter payloads', () => {
  it('with allowPayloads, a cyclic message, a Map and a typed array are listed as JSON-safe data, never a 500', async () => {
    const node = track();
    const cyclic: Record<string, unknown> = { order: 7 };
    cyclic.self = cyclic;
    const meta: Record<string, unknown> = { tries: 1 };
    meta.again = meta;
    await node.deadLetters.add({ recipient: 'inbox', message: cyclic, reason: 'noproc', metadata: meta });
    await node.deadLetters.add({ recipient: 'inbox', message: new Map([['k', 1n]]), reason: 'noproc' });
    await node.deadLetters.add({ recipient: 'inbox', message: new Uint8Array(300).fill(9), reason: 'noproc' });
    const obs = await startObserver(node, { allowPayloads: true });
    try {
      const a = await request(obs.port, { path: '/api/dead-letters', headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      const [first, second, third] = a.json.entries;
      expect(first).toMatchObject({ message: { order: 7, self: '[cycle]' }, metadata: { tries: 1, again: '[cycle]' }, lastError: 'noproc' });
      expect(second.message).toEqual([['k', '1']]);
      expect(third.message).toEqual(Array.from({ length: 200 }, () => 9));
    } finally {
      await obs.close();
    }
  });

  it('with allowPayloads, the payloads of one page share a bound (MAX_PAGE_CHARS): 40 entries of 1,000,000 characters each make one bounded answer, later texts [truncated]', async () => {
    // (each value alone is bounded at MAX_STATE_CHARS; 600 such entries made one page of 600,000,000
    // characters, past the longest string V8 holds: a 500 for the whole list, after 8 s)
    const node = track();
    const text = 'x'.repeat(10_000);
    const message = Array.from({ length: MAX_STATE_CHARS / text.length }, () => text);
    for (let i = 0; i < 40; i++) await node.deadLetters.add({ recipient: 'inbox', message, reason: 'noproc' });
    const obs = await startObserver(node, { allowPayloads: true });
    try {
      const a = await request(obs.port, { path: '/api/dead-letters?limit=1000', headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      expect(a.json.entries).toHaveLength(40);
      expect(a.text.length).toBeLessThan(MAX_PAGE_CHARS + 100_000);
      const first = a.json.entries[0];
      expect(first.message).toEqual(message); // whole, as before
      const last = a.json.entries[39];
      expect(last).toMatchObject({ id: expect.any(String), recipient: 'inbox', reason: 'noproc', message: Array.from({ length: 100 }, () => '[truncated]') });
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: request targets', () => {
  it('a request target that opens with a backslash (a URL parser reads `/\\` as `//`) is a 400, never a 500 logged as a failure', async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      for (const path of ['/\\', '/\\[', '/\\evil.example/api/overview', '/\\\\evil.example/']) {
        const a = await request(obs.port, { path, headers: bearer(obs.token) });
        expect(a.status, path).toBe(400);
        expect(a.json.error.code).toBe('bad_request');
      }
      expect(vi.mocked(node.logger.error)).not.toHaveBeenCalled();
      expect((await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) })).status).toBe(200);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: a client that hangs up', () => {
  it('a POST whose client hangs up before its body ends is a bad request, not a failure of the observer logged as an error', async () => {
    const node = track();
    const obs = await startObserver(node, { readOnly: false });
    const outcome = new Promise<unknown>((resolve) => node.telemetry.attach('review-hang-up', ['keel.observer.action'], (_e, _m, meta) => resolve(meta.outcome)));
    const socket = connect(obs.port, '127.0.0.1');
    try {
      await once(socket, 'connect');
      // (with Expect: 100-continue, the server answers 100 once its handler runs: the body is awaited then)
      socket.write(`POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1:${obs.port}\r\nAuthorization: Bearer ${obs.token}\r\nContent-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`);
      const [head] = (await once(socket, 'data')) as [Buffer];
      expect(head.toString('latin1')).toMatch(/^HTTP\/1\.1 100 Continue/);
      socket.end('{"pid":'); // 7 bytes of 1000, and gone
      expect(await outcome).toBe('bad_request');
      expect(vi.mocked(node.logger.error)).not.toHaveBeenCalled();
    } finally {
      socket.destroy();
      await obs.close();
    }
  });
});

describe('observer robustness: bounded answers', () => {
  it('GET /api/leaks lists at most MAX_LIMIT leaks, with their total: 1,500 duplicate monitors make one bounded answer', async () => {
    const node = track();
    const target = node.spawn(() => () => undefined);
    const owner = node.spawn((ctx) => () => {
      // eslint-disable-next-line keel/no-unmanaged-monitor -- leaked on purpose: the leaks the answer lists
      for (let i = 0; i < 1500; i++) node.monitors.monitor(ctx, target);
    });
    node.send(owner, 'go');
    await node.idle();
    expect(node.monitors.findLeaks().length).toBe(1500);
    const obs = await startObserver(node);
    try {
      const a = await request(obs.port, { path: '/api/leaks', headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      expect(a.json.leaks.length).toBe(MAX_LIMIT);
      expect(a.json.total).toBe(1500);
    } finally {
      await obs.close();
      node.exit(owner, 'kill'); // its monitors go with it
      await node.idle();
    }
  });
});

describe('observer robustness: a big dynamic supervisor', () => {
  it('GET /api/tree lists at most MAX_LIMIT children of a supervisor, with childrenTotal', async () => {
    const node = track();
    const sup = await DynamicSupervisor.start(node);
    for (let i = 0; i < 1200; i++) await DynamicSupervisor.startChild(node, sup, { start: (ctx) => ctx.spawnLink(() => () => undefined) });
    const obs = await startObserver(node, { supervisors: [sup] });
    try {
      const a = await request(obs.port, { path: '/api/tree', headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      const root = (a.json.trees as { supervisor: string; children: unknown[]; childrenTotal: number }[]).find((t) => t.supervisor === Pid.format(sup))!;
      expect(root.children.length).toBe(MAX_LIMIT);
      expect(root.childrenTotal).toBe(1200);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: a process with many links', () => {
  it('GET /api/process/<pid> lists at most MAX_LIMIT links, monitors, monitored-by and groups, each with its total', async () => {
    const node = track();
    const sup = await DynamicSupervisor.start(node);
    for (let i = 0; i < 1200; i++) await DynamicSupervisor.startChild(node, sup, { start: (ctx) => ctx.spawnLink(() => () => undefined) });
    const obs = await startObserver(node);
    try {
      const a = await request(obs.port, { path: `/api/process/${encodeURIComponent(Pid.format(sup))}`, headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      expect(a.json.links.length).toBe(MAX_LIMIT);
      expect(a.json.linksTotal).toBe(1200);
      expect(a.json.monitoredBy.length).toBe(a.json.monitoredByTotal);
      expect(a.json.monitors.length).toBe(a.json.monitorsTotal);
      expect(a.json.groups.length).toBe(a.json.groupsTotal);
    } finally {
      await obs.close();
    }
  });
});

describe('observer robustness: slow requests and too many connections', () => {
  it('the server has short request and header timeouts and a connection limit by default', async () => {
    expect(SERVER_LIMITS).toEqual({ requestTimeoutMs: 10_000, headersTimeoutMs: 10_000, checkIntervalMs: 1000, maxConnections: 128 });
  });

  it('a POST whose body never ends is answered 408 and its connection closed at the request timeout', async () => {
    const node = track();
    const obs = await startObserverWithLimits(node, { readOnly: false }, { ...SERVER_LIMITS, requestTimeoutMs: 300, headersTimeoutMs: 300, checkIntervalMs: 50 });
    try {
      const socket = connect(obs.port, '127.0.0.1');
      await once(socket, 'connect');
      const chunks: Buffer[] = [];
      socket.on('data', (c: Buffer) => chunks.push(c));
      // 100 bytes announced, 2 sent: the body never ends
      socket.write(`POST /api/kill HTTP/1.1\r\nHost: 127.0.0.1:${obs.port}\r\nAuthorization: Bearer ${obs.token}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"`);
      await once(socket, 'close');
      expect(Buffer.concat(chunks).toString('latin1').split('\r\n')[0]).toBe('HTTP/1.1 408 Request Timeout');
    } finally {
      await obs.close();
    }
  });

  it('a connection past maxConnections is closed unanswered; one is accepted again once another closes', async () => {
    const node = track();
    const obs = await startObserverWithLimits(node, {}, { ...SERVER_LIMITS, maxConnections: 2 });
    const ask = (s: ReturnType<typeof connect>): Promise<string> => {
      s.write(`GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1:${obs.port}\r\nAuthorization: Bearer ${obs.token}\r\n\r\n`);
      return once(s, 'data').then(([c]) => (c as Buffer).toString('latin1').split('\r\n')[0]!);
    };
    const open = async () => {
      const s = connect(obs.port, '127.0.0.1');
      await once(s, 'connect');
      return s;
    };
    try {
      const a = await open();
      const b = await open();
      // both accepted: each answered, and each kept open (keep-alive)
      expect([await ask(a), await ask(b)]).toEqual(['HTTP/1.1 200 OK', 'HTTP/1.1 200 OK']);
      const c = await open();
      const received: Buffer[] = [];
      c.on('data', (d: Buffer) => received.push(d));
      c.write(`GET /api/overview HTTP/1.1\r\nHost: 127.0.0.1:${obs.port}\r\nAuthorization: Bearer ${obs.token}\r\n\r\n`);
      c.on('error', () => undefined); // a reset, depending on timing
      await once(c, 'close');
      expect(received.length).toBe(0);
      a.destroy();
      await once(a, 'close');
      // the server counts a connection gone once it has seen it close: ask until it has
      let status = '';
      for (let i = 0; status !== 'HTTP/1.1 200 OK' && i < 100; i++) {
        const d = await open();
        d.on('error', () => undefined);
        status = await Promise.race([ask(d), once(d, 'close').then(() => 'closed')]);
        d.destroy();
      }
      expect(status).toBe('HTTP/1.1 200 OK');
      b.destroy();
    } finally {
      await obs.close();
    }
  });
});
