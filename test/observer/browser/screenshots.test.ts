// A screenshot of each page of the observer over a node with something to show (a supervision
// tree with a restart, flooded mailboxes, a leak, dead letters), each checked: not blank (many
// colours, none covering nearly all of it) and no horizontal overflow at 1280x800. With
// KEEL_UPDATE_SCREENSHOTS=1 they are written to docs/images/observer-<page>.png (a person looks at
// them once per UI change); otherwise to a temp folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { Agent, AgentScheduler, CoordinationManager, CoordinatorAgent, createSignal, GenServer, isDown, Pid, SignalRouter, startObserver, Supervisor, type Down, type Node } from '../../../src/index.js';
import { probe } from '../../../src/testing/index.js';
import { deferred, heldProcess, useNodes } from '../../support.js';
import { go, nextFrame, openObserver, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();
const OUT = process.env.KEEL_UPDATE_SCREENSHOTS === '1' ? path.resolve('docs/images') : fs.mkdtempSync(path.join(os.tmpdir(), 'keel-observer-shots-'));

declare const document: { documentElement: { scrollWidth: number; clientWidth: number }; querySelector(s: string): { scrollWidth: number; clientWidth: number } | null };

/** How many colours a PNG has and what share of it the commonest covers, decoded by the browser itself. */
async function colours(browser: Browser, png: Buffer): Promise<{ distinct: number; dominant: number }> {
  const page = await browser.newPage();
  try {
    return await page.evaluate(async (b64) => {
      const g = globalThis as any;
      const bytes = Uint8Array.from(g.atob(b64) as string, (c) => c.charCodeAt(0));
      const bmp = await g.createImageBitmap(new g.Blob([bytes], { type: 'image/png' }));
      const canvas = new g.OffscreenCanvas(bmp.width, bmp.height);
      const ctx = canvas.getContext('2d');
      ctx.drawImage(bmp, 0, 0);
      const d = ctx.getImageData(0, 0, bmp.width, bmp.height).data as Uint8ClampedArray;
      const counts = new Map<number, number>();
      for (let i = 0; i < d.length; i += 4) {
        const k = (d[i]! << 16) | (d[i + 1]! << 8) | d[i + 2]!;
        counts.set(k, (counts.get(k) ?? 0) + 1);
      }
      let top = 0;
      for (const n of counts.values()) top = Math.max(top, n);
      return { distinct: counts.size, dominant: top / (d.length / 4) };
    }, png.toString('base64'));
  } finally {
    await page.close();
  }
}

async function shoot(browser: Browser, page: Page, name: string): Promise<void> {
  const overflow = await page.evaluate(() => {
    const main = document.querySelector('main')!;
    return { page: document.documentElement.scrollWidth - document.documentElement.clientWidth, main: main.scrollWidth - main.clientWidth };
  });
  expect(overflow, `${name}: horizontal overflow`).toEqual({ page: 0, main: 0 });
  const png = await page.screenshot({ path: path.join(OUT, `observer-${name}.png`) });
  const c = await colours(browser, png);
  expect(c.distinct, `${name}: colours`).toBeGreaterThan(16);
  expect(c.dominant, `${name}: one colour covers the page`).toBeLessThan(0.97);
}

const stuck = async (node: Node, name: string, queued: number): Promise<() => void> => (await heldProcess(node, name, queued)).release;

/**
 * The agent layer with something to show: a router with subscriptions, a scheduler with jobs, a
 * coordinator with a finished workflow, a running one and a stuck one, and circuits (one closed,
 * one open past its failure threshold with a message buffered).
 * Answers what ends it.
 */
async function agents(node: Node): Promise<() => Promise<void>> {
  const router = await SignalRouter.start(node, { name: 'events' });
  const subscriber = (name: string) => node.spawn(() => () => undefined, { name });
  await router.subscribe('order.created', subscriber('invoicing'));
  await router.subscribe('order.*', subscriber('dashboard'), { capacity: 100, overflow: 'drop_oldest' });
  await router.subscribe('order.**', subscriber('audit'), { overflow: 'reject' });
  for (let i = 0; i < 5; i++) router.publish(createSignal({ type: 'order.created', source: '/shop', data: { n: i } }));
  const gate = deferred<string>();
  const worker = await Agent.start(node, { name: 'worker-1', capabilities: ['http'], tasks: { fetch: () => 'page', parse: () => ['a', 'b'] }, onMessage: () => undefined });
  // one GPU slot: a render holds it, the next render waits with nothing running (stuck)
  const gpu = await Agent.start(node, { name: 'gpu-1', capabilities: ['gpu'], maxConcurrentTasks: 1, tasks: { render: () => gate.promise } });
  const scheduler = await AgentScheduler.start(node, { name: 'cron' });
  await scheduler.registerPeriodic(worker.pid, 'heartbeat', 60_000, { type: 'heartbeat' });
  await scheduler.registerPeriodic(worker.pid, 'report', 300_000, { type: 'report' });
  const coordinator = await CoordinatorAgent.start(node, { name: 'crawler', workers: [worker.pid, gpu.pid], taskTimeoutMs: 60_000 });
  await coordinator.run({ id: 'crawl-1', tasks: [{ id: 'a', kind: 'fetch', payload: '/a' }, { id: 'parse', kind: 'parse', dependsOn: ['a'] }] });
  const stuckSeen = deferred();
  node.telemetry.attach('screenshots-stuck', ['keel.coordinator.workflow_stuck'], () => stuckSeen.resolve());
  const running = coordinator.run({ id: 'render-0', tasks: [{ id: 'frame', kind: 'render', requires: ['gpu'] }] });
  const stuck = coordinator.run({ id: 'render-1', stuckAfterMs: 20, tasks: [{ id: 'frame', kind: 'render', requires: ['gpu'] }] });
  await stuckSeen.promise;
  const cm = await CoordinationManager.start(node, { name: 'links', failureThreshold: 2, resetAfterMs: 3_600_000 });
  const planner = node.spawn(() => () => undefined, { name: 'planner' });
  const executor = node.spawn(() => () => undefined, { name: 'executor' });
  // a healthy receiver: its circuit stays closed
  expect(await cm.coordinate(planner, executor, { type: 'step', n: 1 })).toMatchObject({ outcome: 'delivered' });
  // a receiver by a name nobody holds: each delivery fails (noproc); the second reaches the
  // threshold and opens its circuit, and the next message waits in its buffer
  for (let n = 2; n <= 3; n++) expect(await cm.coordinate(planner, 'payments', { type: 'charge', n })).toMatchObject({ outcome: 'failed', reason: 'noproc' });
  expect(await cm.circuit('payments')).toEqual({ state: 'open', consecutiveFailures: 2, buffered: 0, inFlight: 0 });
  expect(await cm.coordinate(planner, 'payments', { type: 'charge', n: 4 })).toMatchObject({ outcome: 'buffered', position: 1 });
  return async () => {
    gate.resolve('done');
    await Promise.all([running, stuck]);
    node.telemetry.detach('screenshots-stuck');
  };
}

describe.skipIf(skipWithoutChromium)('observer screenshots (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('takes a screenshot of every page: none blank, none wider than the window', { timeout: 60_000 }, async () => {
    const node = track({
      services: { monitors: { duplicateThreshold: 2, captureStacks: true }, deadLetters: { backoff: { initialMs: 3_600_000, factor: 2, maxMs: 7_200_000 } } },
    });
    const server = { init: () => 0, handleCall: (_m: unknown, _f: unknown, s: number) => ({ reply: s, state: s }) };
    const worker = (id: string) => ({ id, start: (ctx: any) => GenServer.startLink(ctx, server) });
    await Supervisor.start(node, [worker('sessions'), worker('cache'), { id: 'pool', type: 'supervisor' as const, start: (ctx: any) => Supervisor.startLink(ctx, [worker('conn-1'), worker('conn-2'), worker('conn-3')], { name: 'pool_sup' }) }, worker('metrics')], { name: 'app_sup' });
    // a restart to see
    const cache = (await Supervisor.whichChildren(node, 'app_sup')).find((c) => c.id === 'cache')!.pid as Pid;
    const witness = probe<Down>(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the witness that the child is gone
    witness.ctx.monitor(cache);
    node.exit(cache, 'kill');
    await witness.receive(isDown);
    await node.idle();
    for (let i = 0; i < 120; i++) node.spawn(() => () => undefined, i % 10 === 0 ? { name: `session-${i}` } : undefined);
    const releases = [await stuck(node, 'ingest', 1840), await stuck(node, 'mailer', 312), await stuck(node, 'billing', 57)];
    // a leak: three monitors of one target from one owner
    const target = node.spawn(() => () => undefined, { name: 'upstream' });
    const owner = probe<Down>(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the leak on show
    for (let i = 0; i < 3; i++) node.monitors.monitor(owner.ctx, target, { tag: 'upstream-health' });
    for (let i = 0; i < 4; i++) await node.deadLetters.add({ recipient: 'mailer-v1', message: { to: `user${i}@example.com`, template: 'welcome' }, reason: 'noproc', metadata: { traceId: `t-${i}` } });
    for (let i = 0; i < 3; i++) await node.deadLetters.add({ recipient: 'billing', message: { invoice: 1000 + i }, reason: 'timeout' });

    const endAgents = await agents(node);
    const obs = await startObserver(node, { sampleMs: 3_600_000, readOnly: false, allowPayloads: true, supervisors: ['app_sup'] });
    const view = await openObserver(browser, obs);
    try {
      const { page } = view;
      // a little history for the charts: frames with a changing load
      const echo = node.spawn(() => () => undefined, { name: 'echo' });
      for (let i = 0; i < 12; i++) {
        for (let j = 0; j < 10 * (i % 4); j++) node.spawn(() => () => undefined);
        for (let j = 0; j < 200 * ((i * 7) % 5); j++) node.send(echo, j);
        // rare events for the telemetry history: dead letters now and then
        for (let j = 0; j < (i * 5) % 3; j++) await node.deadLetters.add({ recipient: 'reports', message: { week: i }, reason: 'timeout' });
        await nextFrame(page, obs);
      }
      await shoot(browser, page, 'overview');
      await go(page, '#/tree');
      await nextFrame(page, obs);
      await shoot(browser, page, 'tree');
      await go(page, '#/processes?sort=mailbox&limit=25');
      await shoot(browser, page, 'processes');
      // a supervisor's detail: its strategy and restart history
      await go(page, `#/process/${encodeURIComponent(Pid.format(node.registry.whereis('app_sup')!))}`);
      await shoot(browser, page, 'process');
      await go(page, '#/monitors');
      await nextFrame(page, obs);
      await page.locator('button.stack-toggle').first().click();
      await shoot(browser, page, 'monitors');
      const first = (await node.deadLetters.list({ limit: 1 })).entries[0]!;
      await go(page, `#/dead-letters?id=${encodeURIComponent(first.id)}`);
      await page.check(`input[data-select="${first.id}"]`);
      await shoot(browser, page, 'dead-letters');
      await go(page, '#/telemetry');
      await shoot(browser, page, 'telemetry');
      await go(page, '#/registry');
      await shoot(browser, page, 'registry');
      await go(page, '#/workflows');
      await shoot(browser, page, 'workflows');
      await go(page, '#/circuits');
      // one circuit of each: the executor's closed, the one of 'payments' open with a message buffered
      expect(await page.textContent('[data-tile="Closed"] .value')).toBe('1');
      expect(await page.textContent('[data-tile="Open"] .value')).toBe('1');
      expect(await page.textContent('[data-tile="Buffered"] .value')).toBe('1');
      expect(await page.locator('tr.alert').count()).toBe(1);
      expect(await page.locator('tr.alert td').first().textContent()).toBe('payments');
      await shoot(browser, page, 'circuits');
      expect(view.problems).toEqual([]);
      // the dark theme follows the system's
      const dark = await openObserver(browser, obs, '#/tree', 'dark');
      await shoot(browser, dark.page, 'tree-dark');
      expect(dark.problems).toEqual([]);
      await dark.close();
    } finally {
      for (const release of releases) release();
      await endAgents();
      node.exit(target, 'kill');
      for (let i = 0; i < 3; i++) await owner.receive(isDown);
      await node.idle();
      await view.close();
      await obs.close();
    }
  });
});
