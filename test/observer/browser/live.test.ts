// The observer's page in Chromium: the live snapshot, the processes table (server-side sort and
// top N), kill from the page, read-only mode, reconnect after a server restart, hostile names.
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { DynamicSupervisor, isDown, Pid, startObserver, type Down, type Node } from '../../../src/index.js';
import { probe } from '../../../src/testing/index.js';
import { clockedNode, heldProcess, useNodes } from '../../support.js';
import { bearer, openStream } from '../client.js';
import { connLeaves, dataset, frames, framesAfter, go, nextDelta, nextFrame, openObserver, QUIET, rendered, renders, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();

const stuck = (node: Node, name?: string) => heldProcess(node, name);


describe.skipIf(skipWithoutChromium)('observer page (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('shows a live snapshot, and the next pushed frame updates it', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      await expect.poll(() => page.textContent('[data-tile="Processes"] .value')).toBe(String(node.processes().length));
      expect(await page.textContent('#conn')).toBe('live');
      expect(await page.textContent('#node-name')).toBe(node.name);
      for (let i = 0; i < 1234; i++) node.spawn(() => () => undefined);
      await nextFrame(page, obs);
      expect(await page.textContent('[data-tile="Processes"] .value')).toBe(node.processes().length.toLocaleString('en-US'));
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('sorts by mailbox on the server after flooding one process: the flooded pid first, with the total', async () => {
    const node = track();
    for (let i = 0; i < 30; i++) node.spawn(() => () => undefined);
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/processes?sort=handled');
    const flooded = await stuck(node, 'flooded');
    try {
      const { page } = view;
      for (let i = 0; i < 321; i++) node.send(flooded.pid, `m${i}`);
      await go(page, '#/processes?sort=mailbox');
      const first = page.locator('table.processes tbody tr').first();
      expect(await first.getAttribute('data-pid')).toBe(Pid.format(flooded.pid));
      expect(await first.locator('td').nth(4).textContent()).toBe('321');
      expect(await page.textContent('#count')).toBe(`showing ${node.processes().length} of ${node.processes().length} · sorted by mailbox on the server`);
      // the next frame's delta updates the row: more messages, the new length
      for (let i = 0; i < 100; i++) node.send(flooded.pid, `n${i}`);
      await nextDelta(page, obs);
      expect(await first.locator('td').nth(4).textContent()).toBe('421');
      expect(view.problems).toEqual([]);
    } finally {
      flooded.release();
      await node.idle();
      await view.close();
      await obs.close();
    }
  });

  it('the processes page lives on the stream: a flooded row changes in place after a frame, without reading /api/processes again', async () => {
    const node = track();
    for (let i = 0; i < 12; i++) node.spawn(() => () => undefined);
    const doomed = node.spawn(() => () => undefined, { name: 'doomed' });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs);
    const flooded = await stuck(node, 'flooded');
    try {
      const { page } = view;
      const reads: string[] = [];
      const streams: string[] = [];
      page.on('request', (r) => {
        const url = new URL(r.url());
        if (url.pathname === '/api/processes') reads.push(url.search);
        if (url.pathname === '/api/events') streams.push(url.search);
      });
      await go(page, '#/processes?sort=mailbox');
      // the page named its view to the stream and rendered the snapshot: no read of its own
      expect(streams).toEqual(['?view=processes&sort=mailbox&limit=50']);
      const total = node.processes().length;
      expect(await page.locator('table.processes tbody tr').count()).toBe(total);
      expect(await page.textContent('#total')).toBe(`${total} shown of ${total} matching processes`);
      const row = (pid: Pid) => page.locator(`table.processes tbody tr[data-pid="${Pid.format(pid)}"]`);
      expect(await row(flooded.pid).locator('td').nth(4).textContent()).toBe('0');
      // marks on two DOM rows: a row updated in place keeps its mark, a row built again would not
      const other = node.processes().find((p) => p.id !== flooded.pid.id && p.id !== doomed.id)!;
      for (const pid of [flooded.pid, other]) await row(pid).evaluate((tr) => tr.setAttribute('data-kept', 'yes'));

      for (let i = 0; i < 250; i++) node.send(flooded.pid, `m${i}`);
      await nextDelta(page, obs);
      const first = page.locator('table.processes tbody tr').first();
      expect(await first.getAttribute('data-pid')).toBe(Pid.format(flooded.pid));
      expect(await first.locator('td').nth(4).textContent()).toBe('250');
      expect(await first.getAttribute('data-kept')).toBe('yes');
      expect(await row(other).getAttribute('data-kept')).toBe('yes');
      expect(reads).toEqual([]);
      expect(streams).toHaveLength(1);

      // a process that exits leaves the table at the next frame, and the total follows
      const witness = probe<Down>(node);
      // eslint-disable-next-line keel/no-unmanaged-monitor -- the witness that the process is gone before the frame
      witness.ctx.monitor(doomed);
      node.exit(doomed, 'kill');
      await witness.receive(isDown);
      expect(await row(doomed).count()).toBe(1);
      await nextDelta(page, obs);
      expect(await row(doomed).count()).toBe(0);
      const after = node.processes().length;
      expect(await page.locator('table.processes tbody tr').count()).toBe(after);
      expect(await page.textContent('#total')).toBe(`${after} shown of ${after} matching processes`);
      expect(await row(other).getAttribute('data-kept')).toBe('yes');
      expect(reads).toEqual([]);
      expect(streams).toHaveLength(1);

      // a new filter opens the stream again with it: a fresh snapshot, still no read
      const before = await renders(page);
      await page.fill('#filter', 'flooded');
      await rendered(page, before);
      expect(streams).toEqual(['?view=processes&sort=mailbox&limit=50', '?view=processes&sort=mailbox&limit=50&filter=flooded']);
      expect(await page.locator('table.processes tbody tr').count()).toBe(1);
      expect(await page.textContent('#total')).toBe('1 shown of 1 matching processes');
      // leaving the page leaves the processes view: the stream is the overview's again
      await go(page, '#/tree');
      expect(streams[2]).toBe('');
      expect(reads).toEqual([]);
      expect(view.problems).toEqual([]);
    } finally {
      flooded.release();
      await node.idle();
      await view.close();
      await obs.close();
    }
  });

  it('the processes page ages the rows a frame does not send again, by the node\'s uptime', async () => {
    const { node, clock } = clockedNode(track);
    const obs = await startObserver(node, QUIET);
    const sleeper = node.spawn(() => () => undefined, { name: 'sleeper' });
    const view = await openObserver(browser, obs, '#/processes?filter=sleeper');
    // a second client of the same view: it is sent the same rows as the page, and shows them
    const witness = await openStream(obs.port, bearer(obs.token), '/api/events?view=processes&sort=mailbox&limit=50&filter=sleeper');
    try {
      const { page } = view;
      await witness.next((f) => f.event === 'snapshot');
      const row = page.locator(`table.processes tbody tr[data-pid="${Pid.format(sleeper)}"]`);
      expect(await row.locator('td').nth(7).textContent()).toBe('0 ms');
      // the first frame after a second: a rate (0/s) where there was none, so the row is sent
      await clock.advance(1_000);
      await nextDelta(page, obs);
      expect(JSON.parse((await witness.next((f) => f.event === 'processes')).data!).changed).toMatchObject([{ pid: Pid.format(sleeper), ageMs: 1_000, rate: 0 }]);
      expect(await row.locator('td').nth(7).textContent()).toBe('1.0 s');
      await row.evaluate((tr) => tr.setAttribute('data-kept', 'yes'));
      // 1.5 s later only its age changed: the row is not sent, the page ages it in place
      await clock.advance(1_500);
      await nextDelta(page, obs);
      expect(JSON.parse((await witness.next((f) => f.event === 'processes')).data!).changed).toEqual([]);
      expect(await row.locator('td').nth(7).textContent()).toBe('2.5 s');
      expect(await row.getAttribute('data-kept')).toBe('yes');
      expect(view.problems).toEqual([]);
    } finally {
      await witness.close();
      await view.close();
      await obs.close();
    }
  });

  it('10,000 processes: the table renders the top N rows only, and says of how many', async () => {
    const node = track();
    for (let i = 0; i < 10_000; i++) node.spawn(() => () => undefined);
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/processes?sort=age&limit=50');
    try {
      const { page } = view;
      const total = node.processes().length;
      expect(await page.locator('table.processes tbody tr').count()).toBe(50);
      expect(await page.textContent('#total')).toBe(`50 shown of ${total.toLocaleString('en-US')} matching processes`);
      // a filter narrows on the server, with its own total
      const before = await renders(page);
      await page.fill('#filter', `.${Pid.format(node.processes()[9_999]!).split('.')[1]}.`);
      await rendered(page, before);
      expect(await page.locator('table.processes tbody tr').count()).toBe(1);
      expect(await page.textContent('#total')).toBe('1 shown of 1 matching processes');
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('kills from the page (two clicks): the kill reaches a probe as a Down', async () => {
    const node = track();
    const obs = await startObserver(node, { ...QUIET, readOnly: false });
    const victim = node.spawn(() => () => undefined, { name: 'victim' });
    const p = probe<Down>(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- a raw monitor is the plainest witness that the kill arrived as a Down
    const ref = p.ctx.monitor(victim);
    const view = await openObserver(browser, obs, '#/processes?filter=victim');
    try {
      const { page } = view;
      expect(await page.textContent('#mode')).toBe('read-write');
      const button = page.locator(`button[data-kill="${Pid.format(victim)}"]`);
      await button.click();
      expect(await button.textContent()).toBe('confirm kill');
      await button.click();
      const down = (await p.receive(isDown)) as Down;
      expect(down).toMatchObject({ ref, reason: 'killed' });
      // the detail page of the dead pid says so
      await go(page, `#/process/${encodeURIComponent(Pid.format(victim))}`);
      expect(await page.textContent('#gone')).toContain('is not alive');
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('read-only (the default): no kill button anywhere, and the API refuses a kill sent from the page', async () => {
    const node = track();
    const obs = await startObserver(node, QUIET);
    const victim = node.spawn(() => () => undefined, { name: 'victim' });
    const view = await openObserver(browser, obs, '#/processes');
    try {
      const { page } = view;
      expect(await page.textContent('#mode')).toBe('read-only');
      expect(await page.locator('table.processes tbody tr').count()).toBeGreaterThan(0);
      expect(await page.locator('button[data-kill]').count()).toBe(0);
      await go(page, `#/process/${encodeURIComponent(Pid.format(victim))}`);
      expect(await page.locator('dl.facts').first().textContent()).toContain('mailbox');
      expect(await page.locator('button[data-kill]').count()).toBe(0);
      await go(page, '#/dead-letters');
      expect(await page.locator('#purge, #retry-all, #retry-selected').count()).toBe(0);
      const answer = await page.evaluate(async (pid) => {
        const r = await fetch('/api/kill', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ pid }) });
        return { status: r.status, body: await r.json() };
      }, Pid.format(victim));
      expect(answer).toMatchObject({ status: 403, body: { error: { code: 'read_only' } } });
      expect(node.isAlive(victim)).toBe(true);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('a process named like an HTML tag renders as text, in the table and in its detail', async () => {
    const node = track();
    const name = '<img src=x onerror="document.body.dataset.pwned=1">';
    const pid = node.spawn(() => () => undefined, { name });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/processes?filter=onerror');
    try {
      const { page } = view;
      const row = page.locator(`tr[data-pid="${Pid.format(pid)}"]`);
      expect(await row.locator('td').nth(1).textContent()).toBe(name);
      expect(await page.locator('main img').count()).toBe(0);
      await go(page, `#/process/${encodeURIComponent(Pid.format(pid))}`);
      expect(await page.textContent('main h1')).toBe(`Process ${Pid.format(pid)} ${name}`);
      expect(await page.locator('main img').count()).toBe(0);
      expect(await dataset(page, 'pwned')).toBeUndefined();
      // a name far wider than the window wraps or is cut, and never widens the page
      const long = node.spawn(() => () => undefined, { name: `very-long-name-${'x'.repeat(400)}` });
      for (const route of ['#/processes?filter=very-long', `#/process/${encodeURIComponent(Pid.format(long))}`]) {
        await go(page, route);
        expect(await page.evaluate('document.documentElement.scrollWidth - document.documentElement.clientWidth'), route).toBe(0);
        expect(await page.evaluate("document.querySelector('main').scrollWidth - document.querySelector('main').clientWidth"), route).toBe(0);
      }
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('a supervisor of 1,003 children: the tree and its process page list the first 1,000 and say how many more', async () => {
    const node = track();
    const sup = await DynamicSupervisor.start(node, { name: 'many' });
    for (let i = 0; i < 1003; i++) await DynamicSupervisor.startChild(node, sup, { id: `c${i}`, start: (ctx) => ctx.spawnLink(() => () => undefined) });
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/tree');
    try {
      const { page } = view;
      const box = page.locator('[data-supervisor="many"]');
      await expect.poll(() => box.locator('.muted.child').last().textContent()).toBe('… and 3 more children (the first 1,000 are listed)');
      await go(page, `#/process/${encodeURIComponent(Pid.format(sup))}`);
      await expect.poll(() => page.locator('main').textContent()).toContain('… and 3 more');
      expect(view.problems).toEqual([]);
    } finally {
      await view.close();
      await obs.close();
    }
  });

  it('reconnects after the server restarts on the same port: a fresh snapshot, live again', async () => {
    const node = track();
    const token = 'a-fixed-token-for-restart-0123456789';
    const first = await startObserver(node, { ...QUIET, token });
    const port = first.port;
    const view = await openObserver(browser, first);
    try {
      const { page } = view;
      await first.close();
      await connLeaves(page, 'live');
      node.spawn(() => () => undefined);
      const framesBefore = await frames(page);
      const second = await startObserver(node, { ...QUIET, token, port });
      try {
        // EventSource retries on its own (retry: 2000): the new server's snapshot is the next frame
        await framesAfter(page, framesBefore, 15_000);
        expect(await page.textContent('#conn')).toBe('live');
        expect(await page.textContent('[data-tile="Processes"] .value')).toBe(String(node.processes().length));
        expect(second.clients).toBe(1);
      } finally {
        await second.close();
      }
    } finally {
      await view.close();
    }
  });
});
