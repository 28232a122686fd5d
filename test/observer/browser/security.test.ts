// The observer's security as a browser meets it: the token (refused, then accepted and exchanged
// for a cookie), the Host check against a rebound name (Chromium resolves evil.test to 127.0.0.1),
// the Origin check against a page of another origin that sends the cookie along (CSRF), and the
// CSP that lets no inline script run.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { Pid, startObserver } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { openObserver, QUIET, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();

/** A page of another origin (another port of 127.0.0.1: the same site, so the cookie goes along). */
async function foreignSite(): Promise<{ origin: string; close: () => Promise<void> }> {
  const server = http.createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end('<!doctype html><title>elsewhere</title><p>elsewhere</p>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe.skipIf(skipWithoutChromium)('observer security in the browser (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b), ['--host-resolver-rules=MAP evil.test 127.0.0.1']);

  it('refuses the page without the token or with a wrong one, and opens it with the link: the token becomes an HttpOnly cookie', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const bare = await page.goto(`http://127.0.0.1:${obs.port}/`);
      expect(bare?.status()).toBe(401);
      expect(await page.textContent('body')).toContain('unauthorized');
      const wrong = await page.goto(`http://127.0.0.1:${obs.port}/?token=${'0'.repeat(32)}`);
      expect(wrong?.status()).toBe(401);
      expect(await context.cookies()).toEqual([]);
      const view = await openObserver(browser, obs);
      const cookies = await view.context.cookies();
      expect(cookies).toEqual([expect.objectContaining({ name: `keel_observer_${obs.port}`, value: obs.token, httpOnly: true, sameSite: 'Strict' })]);
      // the script cannot read it
      expect(await view.page.evaluate('document.cookie')).toBe('');
      expect(view.problems).toEqual([]);
      await view.close();
    } finally {
      await context.close();
      await obs.close();
    }
  });

  it('refuses a rebound host name (DNS rebinding): evil.test resolves to 127.0.0.1, the observer answers 403', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      const a = await page.goto(`http://evil.test:${obs.port}/?token=${obs.token}`);
      expect(a?.status()).toBe(403);
      expect(await page.textContent('body')).toContain('host_not_allowed');
      expect(await context.cookies()).toEqual([]);
      const ok = await page.goto(`http://localhost:${obs.port}/?token=${obs.token}`);
      expect(ok?.status()).toBe(200);
    } finally {
      await context.close();
      await obs.close();
    }
  });

  it('refuses a kill and an event stream from a page of another origin, though the browser sends the cookie (CSRF)', async () => {
    const node = track();
    const seen: Record<string, unknown>[] = [];
    node.telemetry.attach('observer-actions', ['keel.observer.action'], (_e, _m, meta) => {
      seen.push({ ...meta });
    });
    const obs = await startObserver(node, { ...QUIET, readOnly: false });
    const victim = node.spawn(() => () => undefined);
    const elsewhere = await foreignSite();
    const view = await openObserver(browser, obs); // the person's session: the cookie is set
    try {
      const attacker = await view.context.newPage();
      await attacker.goto(elsewhere.origin);
      const result = await attacker.evaluate(
        async ([base, pid]) => {
          // a "simple" request needs no preflight: it goes out, with the cookie, and the server must refuse it
          // (its answer is then withheld from the page by Cross-Origin-Resource-Policy: a network error here)
          const sent = await fetch(`${base}/api/kill`, { method: 'POST', mode: 'no-cors', credentials: 'include', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ pid }) }).then(
            () => 'answered',
            () => 'withheld',
          );
          const stream = await new Promise<string>((resolve) => {
            const es = new (globalThis as any).EventSource(`${base}/api/events`, { withCredentials: true });
            es.onerror = () => {
              es.close();
              resolve('refused');
            };
            es.addEventListener('snapshot', () => {
              es.close();
              resolve('snapshot');
            });
          });
          return { sent, stream };
        },
        [`http://127.0.0.1:${obs.port}`, Pid.format(victim)] as const,
      );
      expect(result).toEqual({ sent: 'withheld', stream: 'refused' });
      expect(node.isAlive(victim)).toBe(true);
      expect(seen).toEqual([{ action: 'kill', target: '', outcome: 'refused_origin' }]);
      expect(obs.clients).toBe(1); // the person's own page only
      await attacker.close();
    } finally {
      await view.close();
      await elsewhere.close();
      await obs.close();
    }
  });

  it('runs under a CSP that refuses inline script: an injected <script> does not run', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      const csp = (await page.request.get(`http://127.0.0.1:${obs.port}/app.js`)).headers()['content-security-policy'];
      expect(csp).toContain("script-src 'self'");
      await page.evaluate(() => {
        const d = (globalThis as any).document;
        const s = d.createElement('script');
        s.textContent = 'document.body.dataset.inline = "ran"';
        d.body.appendChild(s);
      });
      expect(await page.evaluate('document.body.dataset.inline')).toBeUndefined();
      expect(view.problems.some((p) => p.includes('Content Security Policy'))).toBe(true);
    } finally {
      await view.close();
      await obs.close();
    }
  });
});
