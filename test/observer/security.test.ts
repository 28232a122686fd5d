import net from 'node:net';
import { describe, expect, it, vi } from 'vitest';
import { isDown, startObserver, type Down, type Node } from '../../src/index.js';
import { probe } from '../../src/testing/index.js';
import { createRuntimeNode } from '../../src/runtime/kernel.js';
import { CSP } from '../../src/observer/page.js';
import { fakeLogger, useNodes } from '../support.js';
import { bearer, openStream, request } from './client.js';

const track = useNodes();

async function observe(node: Node, options: Parameters<typeof startObserver>[1] = {}) {
  const obs = await startObserver(node, options);
  return obs;
}

function actions(node: Node): Record<string, unknown>[] {
  const seen: Record<string, unknown>[] = [];
  node.telemetry.attach(`observer-actions-${Math.random()}`, ['keel.observer.action'], (_e, _m, meta) => {
    seen.push({ ...meta });
  });
  return seen;
}

describe('observer security', () => {
  it('binds 127.0.0.1 with a fresh 128-bit token and a link that carries it', async () => {
    const node = track();
    const obs = await observe(node);
    try {
      expect(obs.token).toMatch(/^[0-9a-f]{32}$/);
      expect(obs.url).toBe(`http://127.0.0.1:${obs.port}/?token=${obs.token}`);
      const other = await observe(node);
      expect(other.token).not.toBe(obs.token);
      await other.close();
    } finally {
      await obs.close();
    }
  });

  it('refuses every API and the event stream without the token (401), and takes a Bearer token', async () => {
    const node = track();
    const obs = await observe(node);
    try {
      for (const path of ['/api/overview', '/api/processes', '/api/leaks', '/api/dead-letters', '/api/tree', '/api/events', '/']) {
        const a = await request(obs.port, { path });
        expect(a.status, path).toBe(401);
      }
      expect((await request(obs.port, { path: '/api/overview', headers: bearer('0'.repeat(32)) })).status).toBe(401);
      expect((await request(obs.port, { path: '/api/overview', headers: { authorization: `Basic ${obs.token}` } })).status).toBe(401);
      // the query token is only for the page link: the API wants the header
      expect((await request(obs.port, { path: `/api/overview?token=${obs.token}` })).status).toBe(401);
      const denied = await request(obs.port, { method: 'POST', path: '/api/kill', body: { pid: 'x' } });
      expect(denied.status).toBe(401);
      expect(denied.json.error.code).toBe('unauthorized');
      const ok = await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) });
      expect(ok.status).toBe(200);
      expect(ok.json.node).toBe(node.name);
      expect(ok.json.processes).toBe(node.processes().length);
      expect(ok.headers['cache-control']).toBe('no-store');
      expect(ok.headers['x-content-type-options']).toBe('nosniff');
    } finally {
      await obs.close();
    }
  });

  it('exchanges ?token= on the page link for an HttpOnly SameSite=Strict cookie and redirects to a URL without it', async () => {
    const node = track();
    const obs = await observe(node);
    try {
      expect((await request(obs.port, { path: '/?token=wrong' })).status).toBe(401);
      const a = await request(obs.port, { path: `/?token=${obs.token}` });
      expect(a.status).toBe(303);
      expect(a.headers.location).toBe('/');
      const cookie = a.headers['set-cookie']![0]!;
      expect(cookie).toBe(`keel_observer_${obs.port}=${obs.token}; HttpOnly; SameSite=Strict; Path=/`);
      const pair = cookie.split(';')[0]!;
      const page = await request(obs.port, { path: '/', headers: { cookie: pair } });
      expect(page.status).toBe(200);
      expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
      expect(page.headers['content-security-policy']).toContain("script-src 'self'");
      expect(page.text).not.toContain(obs.token);
      const api = await request(obs.port, { path: '/api/processes', headers: { cookie: pair } });
      expect(api.status).toBe(200);
      expect((await request(obs.port, { path: '/api/overview', headers: { cookie: `keel_observer_${obs.port}=nope` } })).status).toBe(401);
    } finally {
      await obs.close();
    }
  });

  it('a given token with a semicolon or a comma still makes a working session cookie (its value is encoded)', async () => {
    const node = track();
    const token = 'keel;observer,"secret"=1234';
    const obs = await observe(node, { token });
    try {
      const a = await request(obs.port, { path: `/?token=${encodeURIComponent(token)}` });
      expect(a.status).toBe(303);
      const cookie = a.headers['set-cookie']![0]!;
      expect(cookie).toBe(`keel_observer_${obs.port}=${encodeURIComponent(token)}; HttpOnly; SameSite=Strict; Path=/`);
      const pair = cookie.split(';')[0]!; // what a browser keeps: the value ends at the first ';'
      expect((await request(obs.port, { path: '/api/overview', headers: { cookie: pair } })).status).toBe(200);
      expect((await request(obs.port, { path: '/', headers: { cookie: pair } })).status).toBe(200);
      // the raw token is no cookie value, and the encoded one no bearer token
      expect((await request(obs.port, { path: '/api/overview', headers: { cookie: `keel_observer_${obs.port}=keel` } })).status).toBe(401);
      expect((await request(obs.port, { path: '/api/overview', headers: bearer(encodeURIComponent(token)) })).status).toBe(401);
      expect((await request(obs.port, { path: '/api/overview', headers: bearer(token) })).status).toBe(200);
    } finally {
      await obs.close();
    }
  });

  it('every answer carries the documented headers, the CSP included: JSON, errors, the redirect and the event stream', async () => {
    const node = track();
    const obs = await observe(node);
    const expected = {
      'content-security-policy': CSP,
      'x-frame-options': 'DENY',
      'x-content-type-options': 'nosniff',
      'cache-control': 'no-store',
      'referrer-policy': 'no-referrer',
    };
    try {
      const answers = {
        json: await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) }),
        unauthorized: await request(obs.port, { path: '/api/overview' }),
        badRequest: await request(obs.port, { path: '/api/processes?limit=0', headers: bearer(obs.token) }),
        hostNotAllowed: await request(obs.port, { path: '/api/overview', host: 'evil.example', headers: bearer(obs.token) }),
        redirect: await request(obs.port, { path: `/?token=${obs.token}` }),
      };
      for (const [what, a] of Object.entries(answers)) expect(a.headers, what).toMatchObject(expected);
      const stream = await openStream(obs.port, bearer(obs.token));
      expect(stream.headers).toMatchObject(expected);
      await stream.close();
    } finally {
      await obs.close();
    }
  });

  it('refuses a Host header that does not name the bound host:port (DNS rebinding), token or not', async () => {
    const node = track();
    const obs = await observe(node);
    try {
      for (const host of ['evil.example', `evil.example:${obs.port}`, `127.0.0.1:${obs.port + 1}`, '127.0.0.1']) {
        const a = await request(obs.port, { path: '/api/overview', host, headers: bearer(obs.token) });
        expect(a.status, host).toBe(403);
        expect(a.json.error.code).toBe('host_not_allowed');
        expect(a.text).not.toContain('evil');
      }
      expect((await request(obs.port, { path: '/api/overview', host: `localhost:${obs.port}`, headers: bearer(obs.token) })).status).toBe(200);
      const extra = await observe(node, { allowedHosts: ['observer.internal:8080'] });
      expect((await request(extra.port, { path: '/api/overview', host: 'observer.internal:8080', headers: bearer(extra.token) })).status).toBe(200);
      await extra.close();
    } finally {
      await obs.close();
    }
  });

  it('refuses a foreign Origin on a POST and on the event stream, and a cookie POST with no Origin (CSRF)', async () => {
    const node = track();
    const seen = actions(node);
    const obs = await observe(node, { readOnly: false });
    const victim = node.spawn(() => () => undefined);
    try {
      const evil = await request(obs.port, { method: 'POST', path: '/api/kill', headers: { ...bearer(obs.token), origin: 'http://evil.example' }, body: { pid: JSON.parse(JSON.stringify(victim)) } });
      expect(evil.status).toBe(403);
      expect(evil.json.error.code).toBe('origin_not_allowed');
      const cookie = `keel_observer_${obs.port}=${obs.token}`;
      const noOrigin = await request(obs.port, { method: 'POST', path: '/api/kill', headers: { cookie }, body: { pid: JSON.parse(JSON.stringify(victim)) } });
      expect(noOrigin.status).toBe(403);
      expect(node.isAlive(victim)).toBe(true);
      expect(seen).toEqual([
        { action: 'kill', target: '', outcome: 'refused_origin' },
        { action: 'kill', target: '', outcome: 'refused_origin' },
      ]);
      const stream = await openStream(obs.port, { ...bearer(obs.token), origin: 'http://evil.example' });
      expect(stream.status).toBe(403);
      await stream.close();
      expect(obs.clients).toBe(0);
      // a form cannot send JSON: a POST of another type is refused before anything runs
      const form = await request(obs.port, { method: 'POST', path: '/api/kill', headers: { ...bearer(obs.token), 'content-type': 'application/x-www-form-urlencoded' }, body: 'pid=x' });
      expect(form.status).toBe(415);
    } finally {
      await obs.close();
    }
  });

  it('refuses a foreign Origin on every GET of the API too (a cross-origin read with the cookie of another port of this host)', async () => {
    const node = track();
    const obs = await observe(node);
    try {
      const cookie = `keel_observer_${obs.port}=${obs.token}`;
      for (const path of ['/api/overview', '/api/processes', '/api/tree', '/api/dead-letters']) {
        const evil = await request(obs.port, { path, headers: { cookie, origin: 'http://127.0.0.1:1' } });
        expect([path, evil.status, evil.json.error.code]).toEqual([path, 403, 'origin_not_allowed']);
        // the page's own requests: an Origin naming the observer, or none (a same-origin GET sends none)
        expect((await request(obs.port, { path, headers: { cookie, origin: `http://127.0.0.1:${obs.port}` } })).status, path).toBe(200);
        expect((await request(obs.port, { path, headers: { cookie } })).status, path).toBe(200);
      }
      // an origin that is no http URL of this observer: refused too
      for (const origin of ['null', `https://127.0.0.1:${obs.port}`, 'http://evil.example']) {
        expect((await request(obs.port, { path: '/api/overview', headers: { ...bearer(obs.token), origin } })).status, origin).toBe(403);
      }
    } finally {
      await obs.close();
    }
  });

  it('read-only (the default) refuses kill with 403, the process lives and the refusal is an event', async () => {
    const node = track();
    const seen = actions(node);
    const obs = await observe(node);
    const victim = node.spawn(() => () => undefined);
    const text = JSON.parse(JSON.stringify(victim)) as string;
    try {
      const a = await request(obs.port, { method: 'POST', path: '/api/kill', headers: bearer(obs.token), body: { pid: text } });
      expect(a.status).toBe(403);
      expect(a.json.error.code).toBe('read_only');
      expect(node.isAlive(victim)).toBe(true);
      expect(seen).toEqual([{ action: 'kill', target: text, outcome: 'read_only' }]);
      for (const path of ['/api/dead-letters/retry', '/api/dead-letters/purge']) {
        const r = await request(obs.port, { method: 'POST', path, headers: bearer(obs.token), body: { ids: ['x'], filter: undefined, confirm: 0 } });
        expect(r.status, path).toBe(403);
      }
    } finally {
      await obs.close();
    }
  });

  it('kill with readOnly: false reaches a probe as a Down with reason killed', async () => {
    const node = track();
    const seen = actions(node);
    const obs = await observe(node, { readOnly: false });
    const victim = node.spawn(() => () => undefined);
    const p = probe<Down>(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- a raw monitor is the plainest witness that the kill arrived as a Down
    const ref = p.ctx.monitor(victim);
    const text = JSON.parse(JSON.stringify(victim)) as string;
    try {
      const a = await request(obs.port, { method: 'POST', path: '/api/kill', headers: { ...bearer(obs.token), origin: `http://127.0.0.1:${obs.port}` }, body: { pid: text } });
      expect(a.status).toBe(200);
      expect(a.json).toEqual({ ok: true, pid: text });
      const down = (await p.receive(isDown)) as Down;
      expect(down.reason).toBe('killed');
      expect(down.ref).toBe(ref);
      expect(seen).toEqual([{ action: 'kill', target: text, outcome: 'ok' }]);
      const again = await request(obs.port, { method: 'POST', path: '/api/kill', headers: bearer(obs.token), body: { pid: text } });
      expect(again.status).toBe(404);
    } finally {
      await obs.close();
    }
  });

  it('answers hostile input with a typed 400 and never echoes it', async () => {
    const node = track();
    const obs = await observe(node, { readOnly: false });
    const auth = bearer(obs.token);
    try {
      const bad = [
        '/api/processes?limit=NaN',
        '/api/processes?limit=1e9',
        '/api/processes?limit=99999999999',
        '/api/processes?limit=-1',
        '/api/processes?limit=0',
        '/api/processes?limit=',
        '/api/processes?sort=%3Cscript%3E',
        '/api/processes?sort=__proto__',
        `/api/processes?filter=${'x'.repeat(201)}`,
        '/api/process/%3Cimg%20src%3Dx%3E',
        '/api/process/%E0%A4%A',
        '/api/process/<keel.1.99999999999999999999>',
        '/api/dead-letters?status=%3Cb%3E',
        '/api/dead-letters?olderThanMs=-5',
      ];
      for (const path of bad) {
        const a = await request(obs.port, { path, headers: auth });
        expect(a.status, path).toBe(400);
        expect(a.json.error.code).toBe('bad_request');
        expect(a.text).not.toMatch(/[<>]/);
      }
      const posts: [string | object, number][] = [
        ['{not json', 400],
        ['[]', 400],
        ['null', 400],
        [{ pid: 42 }, 400],
        [{ pid: { __proto__: { toString: 1 } } }, 400],
        [{ pid: '<img src=x onerror=alert(1)>' }, 400],
        [JSON.stringify({ pid: 'x'.repeat(70_000) }), 413],
      ];
      for (const [body, status] of posts) {
        const a = await request(obs.port, { method: 'POST', path: '/api/kill', headers: auth, body });
        expect(a.status, String(body).slice(0, 40)).toBe(status);
        expect(a.text).not.toMatch(/[<>]/);
      }
      expect((await request(obs.port, { path: '/api/nope', headers: auth })).status).toBe(404);
      expect((await request(obs.port, { method: 'DELETE', path: '/api/overview', headers: auth })).status).toBe(405);
      expect((await request(obs.port, { path: '//evil.example/api/overview', headers: auth })).status).toBe(400);
      const overview = await request(obs.port, { path: '/api/overview', headers: auth });
      expect(overview.status).toBe(200);
    } finally {
      await obs.close();
    }
  });

  it('refuses bad options with a typed error', async () => {
    const node = track();
    for (const options of [{ port: -1 }, { port: 1.5 }, { token: 'short' }, { readOnly: 'no' }, { sampleMs: 0 }, { allowedHosts: [1] }]) {
      await expect(startObserver(node, options as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    }
    await expect(startObserver(node, { token: 'x'.repeat(20) + '\n' })).rejects.toThrow(/\(hidden\)/);
    const throwing = { get port(): number { throw new Error('boom'); } };
    await expect(startObserver(node, throwing)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const revoked = Proxy.revocable({}, {});
    revoked.revoke();
    await expect(startObserver(node, revoked.proxy)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    await expect(startObserver(node, { supervisors: 'app' } as never)).rejects.toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
  });

  it('close() frees the port, ends the streams and leaves no timer; nothing runs while nobody watches', async () => {
    const node = track();
    const timersBefore = process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const obs = await observe(node, { sampleMs: 10 });
    // nobody watches: no timer, no telemetry listener
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBe(timersBefore);
    expect(node.telemetry.isAttached('keel.process.spawned')).toBe(false);
    expect(await obs.pushFrame()).toBe(false);
    const stream = await openStream(obs.port, bearer(obs.token));
    await stream.next((f) => f.event === 'snapshot');
    expect(obs.clients).toBe(1);
    await obs.close();
    await obs.close(); // twice is once
    expect(obs.clients).toBe(0);
    expect(process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length).toBeLessThanOrEqual(timersBefore);
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(obs.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('refuses the event stream past 64 clients with a 503, and takes one again when one leaves', async () => {
    const node = track();
    const obs = await observe(node, { sampleMs: 3_600_000 });
    try {
      const streams = [];
      for (let i = 0; i < 64; i++) {
        const s = await openStream(obs.port, bearer(obs.token));
        await s.next((f) => f.event === 'snapshot');
        streams.push(s);
      }
      const over = await openStream(obs.port, bearer(obs.token));
      expect(over.status).toBe(503);
      await over.close();
      await streams.pop()!.close();
      await expect.poll(() => obs.clients).toBe(63); // the server sees the socket close after the client does
      const again = await openStream(obs.port, bearer(obs.token));
      expect(again.status).toBe(200);
      await Promise.all([again, ...streams].map((s) => s.close()));
    } finally {
      await obs.close();
    }
  });

  it('works on a node without services (their figures are null, their APIs 503), and a bare runtime node has no observer', async () => {
    const node = track({ services: false });
    const obs = await node.observer();
    try {
      const a = await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) });
      expect(a.json).toMatchObject({ deadLetters: null, suspectedLeaks: null, processes: node.processes().length });
      for (const path of ['/api/leaks', '/api/dead-letters']) {
        const r = await request(obs.port, { path, headers: bearer(obs.token) });
        expect(r.status, path).toBe(503);
        expect(r.json.error.code).toBe('service_unavailable');
      }
      const tree = await request(obs.port, { path: '/api/tree', headers: bearer(obs.token) });
      expect(tree.json).toEqual({ trees: [] });
    } finally {
      await obs.close();
    }
    const bare = createRuntimeNode({ logger: fakeLogger() });
    await expect(bare.observer()).rejects.toMatchObject({ code: 'ERR_SERVICE_UNAVAILABLE' });
    await bare.shutdown();
  });

  it('node.observer starts one, and the node shutdown closes it', async () => {
    const node = track();
    const obs = await node.observer({ port: 0 });
    expect((await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) })).status).toBe(200);
    await node.shutdown();
    const server = net.createServer();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(obs.port, '127.0.0.1', () => resolve());
    });
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await expect(node.observer()).rejects.toMatchObject({ code: 'ERR_NODE_STOPPED' });
  });
});

describe('an observer on a port browsers refuse', () => {
  it('says so through the node logger: browsers and fetch cannot open it (a free port of the list is found by trying)', async () => {
    const node = track({ logger: fakeLogger() });
    // ports of other protocols that browsers refuse; the first one free on this machine is used
    const refused = [6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080, 6566, 5060, 5061, 4190, 4045, 3659, 2049, 1719, 1720, 1723, 6000];
    let obs: Awaited<ReturnType<typeof startObserver>> | undefined;
    let port = 0;
    for (const p of refused) {
      try {
        obs = await startObserver(node, { port: p });
        port = p;
        break;
      } catch (e) {
        if ((e as { code?: unknown }).code !== 'EADDRINUSE' && (e as { code?: unknown }).code !== 'EACCES') throw e;
      }
    }
    expect(obs).toBeDefined();
    expect(vi.mocked(node.logger.warn).mock.calls.map((c) => c[0])).toEqual([
      `the observer listens on port ${port}, which browsers (and fetch, so keel top) refuse to connect to, as a port of another protocol: start it on another port to open it`,
    ]);
    await obs!.close();
    // a free port of the system is never one of them
    const other = await startObserver(node);
    expect(vi.mocked(node.logger.warn)).toHaveBeenCalledTimes(1);
    await other.close();
  });
});
