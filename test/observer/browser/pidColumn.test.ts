// The pid column keeps its width: with 10,000 registered names (pids of five-digit ids), the
// registry's names table must show each pid whole, not cut to an ellipsis by a long name beside it.
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { startObserver } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { go, openObserver, QUIET, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();

declare const document: { querySelectorAll(s: string): Iterable<{ scrollWidth: number; clientWidth: number; textContent: string | null }> };

describe.skipIf(skipWithoutChromium)('observer page: the pid column (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('10,000 registered names: every pid in the registry is shown whole, at 1280 px and at 900 px', async () => {
    // the demo's node name, and the names sorted newest first: the pids listed have five-digit ids
    const node = track({ name: 'keel-demo' });
    for (let i = 0; i < 10_000; i++) node.spawn(() => () => undefined, { name: `${'a-rather-long-service-name-'.repeat(3)}${String(99_999 - i)}` });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      await go(page, '#/registry');
      const cut = () =>
        page.evaluate(() =>
          [...document.querySelectorAll('table.grid td.w-pid')].filter((td) => td.scrollWidth > td.clientWidth).map((td) => td.textContent),
        );
      expect(await page.locator('table.grid td.w-pid').count()).toBe(25);
      expect(await cut()).toEqual([]);
      await page.setViewportSize({ width: 900, height: 800 });
      expect(await cut()).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });
});
