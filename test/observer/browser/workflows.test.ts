// The workflows page in Chromium over a workflow larger than a snapshot carries: the first 1000 of
// its tasks as rows, and a line saying how many it has.
import type { Browser } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CoordinatorAgent, startObserver } from '../../../src/index.js';
import { useNodes } from '../../support.js';
import { gatedWorker } from '../gatedWorker.js';
import { openObserver, QUIET, skipWithoutChromium, useBrowser } from './browser.js';

const track = useNodes();

describe.skipIf(skipWithoutChromium)('observer workflows page (Chromium)', () => {
  let browser: Browser;
  useBrowser((b) => (browser = b));

  it('shows the first 1000 tasks of a workflow of 1,500 and says how many it has', async () => {
    const node = track();
    const { worker, started, open } = await gatedWorker(node);
    const coordinator = await CoordinatorAgent.start(node, { name: 'flow', workers: [worker.pid] });
    const tasks = [{ id: 'gate', kind: 'slow' }, ...Array.from({ length: 1499 }, (_, i) => ({ id: `t${i}`, kind: 'quick', dependsOn: ['gate'] }))];
    const { id } = await coordinator.submit({ id: 'big', tasks });
    await started;
    const obs = await startObserver(node, QUIET);
    const view = await openObserver(browser, obs, '#/workflows');
    try {
      const { page } = view;
      const wf = page.locator('[data-workflow="big"]');
      await wf.locator('.more-tasks').waitFor();
      expect(await wf.locator('.more-tasks').textContent()).toBe('the first 1,000 of 1,500 tasks');
      expect(await wf.locator('.task').count()).toBe(1000);
      expect(await wf.locator('[data-task="gate"]').getAttribute('class')).toContain('running');
      expect(view.problems).toEqual([]);
    } finally {
      open();
      await coordinator.wait(id);
      await view.close();
      await obs.close();
    }
  }, 60_000);
});
