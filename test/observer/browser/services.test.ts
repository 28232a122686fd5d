// The observer's pages over Keel's services, in Chromium: a restart in the supervision tree, a
// monitor leak with the stack that made it, and the dead-letter actions (retry selected, retry all
// matching at a rate, purge after a confirm that shows the count).
import type { Browser } from 'playwright-core';
import { describe, expect, it, vi } from 'vitest';
import { GenServer, isDown, Pid, startObserver, Supervisor, type Down } from '../../../src/index.js';
import { probe } from '../../../src/testing/index.js';
import { clockedNode, useNodes } from '../../support.js';
import { MAX_JOB_ENTRIES } from '../../../src/observer/jobs.js';
import { go, nextFrame, openObserver, QUIET, rendered, renders, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();

describe.skipIf(skipWithoutChromium)('observer pages over the services (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('shows a restart in the supervision tree: a new pid and the restart count', async () => {
    const node = track();
    const counter = { init: () => 0, handleCall: (_m: unknown, _f: unknown, s: number) => ({ reply: s, state: s }) };
    await Supervisor.start(node, [{ id: 'counter', start: (ctx) => GenServer.startLink(ctx, counter) }], { name: 'app_sup' });
    const obs = await startObserver(node, { ...QUIET, supervisors: ['app_sup'] });
    const view = await openObserver(browser, obs, '#/tree');
    try {
      const { page } = view;
      const row = page.locator('[data-supervisor="app_sup"] [data-child="counter"]');
      expect(await row.locator('.restarts').textContent()).toBe('0 restarts');
      const before = (await Supervisor.whichChildren(node, 'app_sup'))[0]!.pid as Pid;
      expect(await row.locator('a.pid').textContent()).toBe(Pid.format(before));
      const p = probe<Down>(node);
      // eslint-disable-next-line keel/no-unmanaged-monitor -- the witness that the old child is gone
      p.ctx.monitor(before);
      node.exit(before, 'kill');
      await p.receive(isDown);
      await node.idle();
      const after = (await Supervisor.whichChildren(node, 'app_sup'))[0]!.pid as Pid;
      expect(Pid.format(after)).not.toBe(Pid.format(before));
      await nextFrame(page, obs);
      expect(await row.locator('.restarts').textContent()).toBe('restarted 1×');
      expect(await row.locator('a.pid').textContent()).toBe(Pid.format(after));
      expect(await row.getAttribute('class')).toContain('restarted');
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('shows a suspected leak (duplicate monitors) with the creation stack naming this test file', async () => {
    const node = track({ services: { monitors: { duplicateThreshold: 2, captureStacks: true } } });
    const target = node.spawn(() => () => undefined, { name: 'watched' });
    const owner = probe<Down>(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the leak under test: three monitors of one target, refs dropped
    for (let i = 0; i < 3; i++) node.monitors.monitor(owner.ctx, target, { tag: 'leaky' });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/monitors');
    try {
      const { page } = view;
      const rows = page.locator('table.leaks tbody tr:not(.stackrow)');
      expect(await rows.count()).toBe(3);
      expect(await rows.first().locator('td').first().textContent()).toBe('duplicate');
      expect(await rows.first().locator('td').nth(5).textContent()).toBe('×3');
      expect(await rows.first().locator('td').nth(1).textContent()).toBe(Pid.format(owner));
      const place = await rows.first().locator('button.stack-toggle').textContent();
      expect(place).toMatch(/^▸ services\.test\.ts:\d+:\d+$/);
      expect(await page.textContent('[data-tile="Suspected now"] .value')).toBe('3');
      expect(await page.locator('tr.stackrow pre').first().isVisible()).toBe(false);
      await rows.first().locator('button.stack-toggle').click();
      const stack = page.locator('tr.stackrow pre').first();
      expect(await stack.isVisible()).toBe(true);
      expect(await stack.textContent()).toContain('test/observer/browser/services.test.ts');
      expect(view.problems).toEqual([]);
    } finally {
      node.exit(target, 'kill'); // the monitors end with their target
      for (let i = 0; i < 3; i++) await owner.receive(isDown);
      await view.close();
      await obs.close();
    }
  });

  it('charts event rates from the history the server keeps: a reload shows them again', async () => {
    const node = track({ services: { deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 7_200_000 } } } });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/telemetry?window=60');
    try {
      const { page } = view;
      for (let i = 0; i < 4; i++) await node.deadLetters.add({ recipient: 'nobody', message: i, reason: 'noproc' });
      await nextFrame(page, obs);
      const chart = page.locator('[data-chart="keel.dead_letter_queue.message_added"]');
      expect(await chart.count()).toBe(1);
      expect(await chart.locator('svg path.line').count()).toBe(1);
      // a new page load: the history comes from the server, not from what the page had seen
      await page.reload();
      await page.waitForFunction(() => (globalThis as any).document.body.dataset.view === 'telemetry' && Number((globalThis as any).document.body.dataset.renders) >= 1);
      expect(await chart.count()).toBe(1);
      expect(await page.locator('[data-unavailable]').count()).toBe(0);
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('dead letters: retry the selected one, redrive one to another recipient, retry all matching at a rate with progress, purge after a confirm showing the count', async () => {
    // the queue's own retries wait an hour: only the page's actions deliver in this test
    const node = track({ services: { deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 7_200_000 } } } });
    const inbox = probe<{ n: number }>(node);
    node.registry.register('inbox', inbox);
    for (let n = 1; n <= 3; n++) await node.deadLetters.add({ recipient: 'inbox', message: { n }, reason: 'noproc' });
    for (let n = 4; n <= 5; n++) await node.deadLetters.add({ recipient: 'gone', message: { n }, reason: 'timeout' });
    const obs = await startObserver(node, { ...QUIET, readOnly: false, allowPayloads: true });
    const view = await openObserver(browser, obs, '#/dead-letters');
    try {
      const { page } = view;
      const rows = page.locator('main table.grid tbody tr');
      expect(await rows.count()).toBe(5);
      expect(await page.textContent('[data-tile="Pending"] .value')).toBe('5');
      // the detail of one entry, with its payload (allowPayloads)
      const first = (await node.deadLetters.list({ recipient: 'inbox', limit: 1 })).entries[0]!;
      await go(page, `#/dead-letters?id=${encodeURIComponent(first.id)}`);
      expect(await page.textContent('pre.state')).toContain(`"n": ${(first.message as { n: number }).n}`);

      // retry the selected entry: it reaches the inbox
      await page.check(`input[data-select="${first.id}"]`);
      let before = await renders(page);
      await page.click('#retry-selected');
      await rendered(page, before);
      expect(await inbox.receive((m) => (m as { n: number }).n === (first.message as { n: number }).n)).toEqual(first.message);
      expect(await rows.count()).toBe(4);

      // redrive one of those sent to 'gone' to the inbox instead
      const lost = (await node.deadLetters.list({ recipient: 'gone', limit: 1 })).entries[0]!;
      await page.check(`input[data-select="${lost.id}"]`);
      await page.fill('#redrive-to', 'inbox');
      before = await renders(page);
      await page.click('#redrive');
      await rendered(page, before);
      expect(await inbox.receive((m) => (m as { n: number }).n === (lost.message as { n: number }).n)).toEqual(lost.message);
      expect(await page.textContent('#notice')).toContain('redrove 1 to inbox');
      expect(await rows.count()).toBe(3);

      // retry all matching recipient=inbox at 50/s: the progress says 2 of 2, both arrive
      await page.fill('input[data-filter="recipient"]', 'inbox');
      before = await renders(page);
      await page.click('text=apply');
      await rendered(page, before);
      expect(await rows.count()).toBe(2);
      await page.fill('#rate', '50');
      await page.click('#retry-all');
      // the retry runs as a job at that rate: its progress reaches the page until it is done
      await page.waitForSelector('#progress :text("retry done: 2 of 2")');
      const got = [await inbox.receive(), await inbox.receive()].map((m) => (m as { n: number }).n).sort();
      expect(got).toEqual([1, 2, 3].filter((n) => n !== (first.message as { n: number }).n));

      // purge all (no filter: the one left for 'gone'): the confirm shows the count the server reports, then purges exactly that
      await page.fill('input[data-filter="recipient"]', '');
      before = await renders(page);
      await page.click('text=apply');
      await rendered(page, before);
      await page.click('#purge');
      await page.waitForSelector('#confirm:not([hidden])');
      expect(await page.textContent('#confirm')).toContain('Purge 1 entry');
      expect(await page.textContent('#purge-confirm')).toBe('purge 1');
      before = await renders(page);
      await page.click('#purge-confirm');
      await rendered(page, before);
      expect(await page.textContent('#notice')).toContain('purged 1');
      const stats = await node.deadLetters.stats();
      expect(stats.pending + stats.parked).toBe(0);
      expect(await page.textContent('main table.grid tbody')).toBe('no dead letter matches');
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('follows a retry job that left entries out with one that takes them (retry the next), not the oldest again', { timeout: 60_000 }, async () => {
    const extra = 3;
    const { node, clock } = clockedNode(track, { services: { deadLetters: { capacity: MAX_JOB_ENTRIES + extra, backoff: { initialMs: 1e9, maxMs: 1e9, jitter: 'none' } } } });
    const ids: string[] = [];
    for (let i = 0; i < MAX_JOB_ENTRIES + extra; i++) ids.push(await node.deadLetters.add({ recipient: 'gone', message: i, reason: 'noproc' }));
    const obs = await startObserver(node, { ...QUIET, readOnly: false });
    const view = await openObserver(browser, obs, '#/dead-letters');
    try {
      const { page } = view;
      await page.fill('#rate', '1');
      await page.click('#retry-all');
      // the first job holds the oldest 100,000; the page offers the next ones
      await page.waitForSelector(`#progress :text("${(3).toLocaleString()} more matching left out")`);
      expect(await page.textContent('#retry-next')).toBe('retry the next 3');
      // the rate typed stays when the page renders again
      expect(await page.inputValue('#rate')).toBe('1');
      expect(await page.textContent('#notice')).toBe(`done retrying ${(100_000).toLocaleString()} matching at 1/s; 3 more left out`);
      const retried = vi.spyOn(node.deadLetters, 'retry');
      await page.click('#retry-next');
      await page.waitForSelector('#progress :text("retry running: 0 of 3")');
      expect(await page.locator('#retry-next').count()).toBe(0);
      // the second job runs at the first's rate (1/s) on the node's clock
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      await page.waitForSelector('#progress :text("retry done: 3 of 3")');
      const calls = retried.mock.calls.flatMap(([chunk]) => chunk as string[]);
      expect(calls.filter((id) => Number(id) > MAX_JOB_ENTRIES)).toEqual(ids.slice(MAX_JOB_ENTRIES));
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });
});
