// Methods an endpoint does not take: 405 method_not_allowed with an Allow header naming those it
// does (RFC 9110), not a 404 "no such action" for a GET endpoint POSTed to, nor a 404 "no such API"
// for an action read with GET. And HEAD on every GET route (RFC 9110 §9.3.2): the GET's status and
// headers, no body.
import { describe, expect, it } from 'vitest';
import type { IncomingHttpHeaders } from 'node:http';
import { Pid, startObserver } from '../../src/index.js';
import { useNodes } from '../support.js';
import { bearer, request, type Answer } from './client.js';

const track = useNodes();

describe('observer: methods', () => {
  it('answers a method an endpoint does not take with 405 and Allow', async () => {
    const node = track();
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    try {
      const auth = { ...bearer(obs.token), 'content-type': 'application/json' };
      const cases: [string, string, string][] = [
        ['POST', '/api/overview', 'GET, HEAD'],
        ['POST', '/api/events', 'GET, HEAD'],
        ['POST', '/api/process/%3Ckeel-1.1.1%3E', 'GET, HEAD'],
        ['GET', '/api/kill', 'POST'],
        ['GET', '/api/dead-letters/purge', 'POST'],
        ['DELETE', '/api/overview', 'GET, HEAD'],
        ['PUT', '/api/kill', 'POST'],
        ['PATCH', '/api/overview', 'GET, HEAD'],
        ['HEAD', '/api/kill', 'POST'],
        ['HEAD', '/api/dead-letters/retry', 'POST'],
        ['PUT', '/', 'GET, HEAD'],
        ['POST', '/app.js', 'GET, HEAD'],
      ];
      for (const [method, path, allow] of cases) {
        const a = await request(obs.port, { method, path, headers: auth, ...(method === 'POST' ? { body: {} } : {}) });
        expect([method, path, a.status, a.headers.allow]).toEqual([method, path, 405, allow]);
        if (method !== 'HEAD') expect(a.json.error.code).toBe('method_not_allowed');
      }
      // an unknown path is still a 404, whatever the method
      expect((await request(obs.port, { method: 'POST', path: '/api/nope', headers: auth, body: {} })).status).toBe(404);
      expect((await request(obs.port, { path: '/api/nope', headers: auth })).status).toBe(404);
      // the endpoints still answer their own method
      expect((await request(obs.port, { path: '/api/overview', headers: auth })).status).toBe(200);
      expect((await request(obs.port, { method: 'POST', path: '/api/kill', headers: auth, body: { pid: 'x' } })).status).toBe(400);
    } finally {
      await obs.close();
    }
  });

  describe('HEAD', () => {
    /** The headers of an answer but its date (the two answers may fall in different seconds). */
    const headersOf = (a: Answer): IncomingHttpHeaders => {
      const { date: _date, ...rest } = a.headers;
      return rest;
    };

    it('answers HEAD on the page and on a JSON endpoint with the GET\'s status and headers, Content-Length included, and no body', async () => {
      const node = track();
      const pid = node.spawn(() => () => undefined, { name: 'head.target' });
      const obs = await startObserver(node, { sampleMs: 3_600_000 });
      try {
        for (const path of ['/', '/app.js', '/api/registry', `/api/process/${encodeURIComponent(Pid.format(pid))}`, '/api/process/%3Ckeel-9.9.9%3E']) {
          const get = await request(obs.port, { path, headers: bearer(obs.token) });
          const head = await request(obs.port, { method: 'HEAD', path, headers: bearer(obs.token) });
          expect([path, get.status, head.status]).toEqual([path, path.endsWith('9.9.9%3E') ? 404 : 200, get.status]);
          expect(get.text.length).toBeGreaterThan(0);
          expect(get.headers['content-length']).toBe(String(Buffer.byteLength(get.text)));
          if (path.startsWith('/api/')) {
            // a JSON answer is made at each request, and what it shows (a process's counters, times)
            // may change between the two by a few bytes: the same headers, and a length of its own
            const { 'content-length': headLength, ...headRest } = headersOf(head);
            const { 'content-length': _getLength, ...getRest } = headersOf(get);
            expect(headRest).toEqual(getRest);
            expect(headLength).toMatch(/^[1-9][0-9]*$/);
          } else {
            expect(headersOf(head)).toEqual(headersOf(get)); // the page and its files: byte for byte
          }
          expect(head.text).toBe('');
        }
        const page = await request(obs.port, { method: 'HEAD', path: '/', headers: bearer(obs.token) });
        expect(page.headers['content-type']).toBe('text/html; charset=utf-8');
        const json = await request(obs.port, { method: 'HEAD', path: '/api/registry', headers: bearer(obs.token) });
        expect(json.headers['content-type']).toBe('application/json; charset=utf-8');
        // a HEAD is checked as its GET: no token, no answer
        expect((await request(obs.port, { method: 'HEAD', path: '/api/registry' })).status).toBe(401);
        expect((await request(obs.port, { method: 'HEAD', path: '/api/registry', headers: { ...bearer(obs.token), origin: 'http://evil.example' } })).status).toBe(403);
      } finally {
        await obs.close();
      }
    });

    it('answers HEAD on the event stream with the stream\'s headers, then ends: no client subscribed', async () => {
      const node = track();
      const obs = await startObserver(node, { sampleMs: 3_600_000 });
      try {
        const head = await request(obs.port, { method: 'HEAD', path: '/api/events?view=processes', headers: bearer(obs.token) });
        expect(head.status).toBe(200);
        expect(head.headers['content-type']).toBe('text/event-stream; charset=utf-8');
        expect(head.headers['cache-control']).toBe('no-store');
        expect(head.headers['content-length']).toBeUndefined();
        expect(head.text).toBe('');
        expect(obs.clients).toBe(0);
        // the GET's checks still apply: a view it does not take is its 400
        expect((await request(obs.port, { method: 'HEAD', path: '/api/events?view=nope', headers: bearer(obs.token) })).status).toBe(400);
        expect((await request(obs.port, { path: '/api/events?view=nope', headers: bearer(obs.token) })).status).toBe(400);
      } finally {
        await obs.close();
      }
    });

    it('answers HEAD on an unknown path with the GET\'s 404 and headers', async () => {
      const node = track();
      const obs = await startObserver(node, { sampleMs: 3_600_000 });
      try {
        for (const path of ['/api/nope', '/nope']) {
          const get = await request(obs.port, { path, headers: bearer(obs.token) });
          const head = await request(obs.port, { method: 'HEAD', path, headers: bearer(obs.token) });
          expect([path, get.status, head.status]).toEqual([path, 404, 404]);
          expect(headersOf(head)).toEqual(headersOf(get));
          expect(head.text).toBe('');
        }
      } finally {
        await obs.close();
      }
    });
  });
});
