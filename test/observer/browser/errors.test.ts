// The observer's page when the server refuses what it asks: the server's own message is shown, not
// swallowed into "offline" or a bare status code.
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startObserver } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { launch, openObserver, skipWithoutChromium } from './browser.js';

const track = useNodes();

// frames come only when a test pushes one: no timer races the assertions
const QUIET = { sampleMs: 3_600_000 };

declare const document: { body: { dataset: Record<string, string | undefined> } };
declare const location: { hash: string };

describe.skipIf(skipWithoutChromium)('observer page: refusals shown (Chromium)', () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launch();
  });
  afterAll(async () => {
    await browser?.close();
  });

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
