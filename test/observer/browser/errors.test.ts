// The observer's page when the server refuses or is slow: the server's own message is shown, not
// swallowed into "offline" or a bare status code; a read slower than the frames is not queued per frame.
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { startObserver, Supervisor } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { framesOf, openObserver, QUIET, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();


declare const document: { body: { dataset: Record<string, string | undefined> } };
declare const location: { hash: string };

describe.skipIf(skipWithoutChromium)('observer page: refusals shown (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('a refused event stream (a filter over 200 characters: 400) says why, and the connection is not "offline"', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      await page.evaluate((r) => (location.hash = r), `#/processes?filter=${'a'.repeat(201)}`);
      await page.waitForFunction(() => document.body.dataset.conn === 'refused');
      expect(await page.textContent('#conn')).toBe('refused');
      expect(await page.textContent('#notice')).toBe('failed the event stream was refused: `filter` must be at most 200 characters');
      expect(await page.textContent('main [data-unavailable="Processes"]')).toBe('Processes: the event stream was refused: `filter` must be at most 200 characters');
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('a page whose read is slower than the frames reads once for the latest frame queued, not once per frame', async () => {
    const node = track();
    await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }]);
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/tree');
    try {
      const { page } = view;
      // the next read of the tree is held (a busy supervisor answers in 1 s) while six frames arrive
      const held: (() => Promise<void>)[] = [];
      let reads = 0;
      await page.route('**/api/tree', async (route) => {
        reads++;
        if (reads === 1) await new Promise<void>((release) => held.push(async () => release()));
        await route.continue();
      });
      const overviews = await framesOf(page, 'overview');
      const received = Number(await page.evaluate(() => document.body.dataset.received));
      expect(await obs.pushFrame()).toBe(true);
      await expect.poll(() => held.length).toBe(1);
      for (let i = 0; i < 5; i++) expect(await obs.pushFrame()).toBe(true);
      // 6 pushes of an overview and a telemetry frame each
      await page.waitForFunction((n) => Number(document.body.dataset.received) >= n, received + 12);
      await held[0]!();
      await page.waitForFunction((n) => Number(document.body.dataset.framesOverview) >= n, overviews + 6);
      expect(reads).toBe(2);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('a part the server refuses with 400 shows the server\'s message, not only the status', async () => {
    const node = track();
    node.spawn(() => () => undefined, { name: 'named' });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/registry');
    try {
      const { page } = view;
      await page.fill('input[aria-label="filter names"]', 'b'.repeat(201));
      const na = page.locator('[data-unavailable="Registry"]');
      await na.waitFor();
      expect(await na.textContent()).toBe('Registry: unavailable (400: `filter` must be at most 200 characters)');
    } finally {
      await view.close();
      await obs.close();
    }
  });
});
