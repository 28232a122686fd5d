// Methods an endpoint does not take: 405 method_not_allowed with an Allow header naming those it
// does (RFC 9110), not a 404 "no such action" for a GET endpoint POSTed to, nor a 404 "no such API"
// for an action read with GET.
import { describe, expect, it } from 'vitest';
import { startObserver } from '../../src/index.js';
import { useNodes } from '../support.js';
import { bearer, request } from './client.js';

const track = useNodes();

describe('observer: methods', () => {
  it('answers a method an endpoint does not take with 405 and Allow', async () => {
    const node = track();
    const obs = await startObserver(node, { readOnly: false, sampleMs: 3_600_000 });
    try {
      const auth = { ...bearer(obs.token), 'content-type': 'application/json' };
      const cases: [string, string, string][] = [
        ['POST', '/api/overview', 'GET'],
        ['POST', '/api/events', 'GET'],
        ['POST', '/api/process/%3Ckeel-1.1.1%3E', 'GET'],
        ['GET', '/api/kill', 'POST'],
        ['GET', '/api/dead-letters/purge', 'POST'],
        ['DELETE', '/api/overview', 'GET'],
        ['PUT', '/api/kill', 'POST'],
        ['HEAD', '/api/overview', 'GET'],
        ['PUT', '/', 'GET'],
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
});
