// The observer's page with long names and long lists: a name holds no spaces to wrap at, and it must
// neither run out of its card nor push the page's figures out of the window; a list the server cuts
// says how many there are.
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { createSignal, Pid, SignalRouter, startObserver, Supervisor } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { go, openObserver, QUIET, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();


declare const document: { querySelector(s: string): { scrollWidth: number; clientWidth: number } | null };

describe.skipIf(skipWithoutChromium)('observer page: long names, long lists (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('a supervisor named with 900 characters stays inside its card in the tree, cut with its whole name as the title', async () => {
    const node = track();
    const name = 'S'.repeat(900);
    await Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }], { name });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/tree');
    try {
      const { page } = view;
      const overflow = await page.evaluate(() => {
        const main = document.querySelector('main')!;
        return main.scrollWidth - main.clientWidth;
      });
      expect(overflow).toBe(0);
      expect(await page.getAttribute('.suphead .supname', 'title')).toBe(name);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('a process named with 1000 characters: its detail\'s title is one line, the figures in the window', async () => {
    const node = track();
    const name = 'W'.repeat(1000);
    const pid = node.spawn(() => () => undefined, { name });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      await go(page, `#/process/${encodeURIComponent(Pid.format(pid))}`);
      expect(await page.getAttribute('.titlebar h1 .pname', 'title')).toBe(name);
      const figures = await page.locator('section.card').first().boundingBox();
      expect(figures!.y).toBeLessThan(800);
      const title = await page.locator('.titlebar h1').boundingBox();
      expect(title!.height).toBeLessThan(40);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('150 process groups: the registry lists the first 100 the server sends and says of how many', async () => {
    const node = track();
    const member = node.spawn(() => () => undefined);
    for (let i = 0; i < 150; i++) node.groups.join(`group-${String(i).padStart(3, '0')}`, member);
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/registry');
    try {
      const { page } = view;
      expect(await page.locator('#groups table tbody tr').count()).toBe(100);
      expect(await page.textContent('#groups-total')).toBe('100 shown of 150 groups: the first by name');
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it("a router whose own mailbox is bounded shows its bound beside its name, and its refused and evicted publishes among its totals; an unbounded one neither", async () => {
    const node = track();
    await SignalRouter.start(node, { name: 'open' });
    const bounded = await SignalRouter.start(node, { name: 'bounded', mailbox: { capacity: 2, overflow: 'reject' } });
    // 5 publishes in one turn: 2 taken, 3 refused (mailbox_full)
    const answers = Array.from({ length: 5 }, (_, i) => bounded.publish(createSignal({ type: 'order.created', source: '/shop', data: i })));
    expect(answers.map((a) => (a.ok ? 'ok' : a.reason))).toEqual(['ok', 'ok', 'mailbox_full', 'mailbox_full', 'mailbox_full']);
    await node.idle();
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/registry');
    try {
      const { page } = view;
      const totals = page.locator('.sub .totals');
      await totals.first().waitFor();
      const texts = await totals.allTextContents();
      expect(texts).toHaveLength(2);
      expect(texts.find((t) => t.includes('mailboxRefused'))).toBe('published 2 · delivered 0 · failed 0 · buffered 0 · inFlight 0 · dropped 0 · mailboxRefused 3 · mailboxEvicted 0');
      expect(texts.filter((t) => t.includes('mailbox'))).toHaveLength(1);
      // the bound itself, beside the bounded router's name only
      expect(await page.locator('.sub h3 .mailbox-bound').allTextContents()).toEqual([' mailbox 2, reject']);
      if (process.env.KEEL_SHOT) await page.screenshot({ path: process.env.KEEL_SHOT });
    } finally {
      await view.close();
      await obs.close();
    }
  });
});
