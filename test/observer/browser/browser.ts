// The browser side of the observer's tests: Debian's Chromium driven by playwright-core (never a
// downloaded browser). Without /usr/bin/chromium the tests skip locally and FAIL under CI=1. No
// sleeps: a test awaits the page's frame counter (document.body.dataset.frames) after
// observer.pushFrame(), or its render counter (dataset.renders) after a navigation.
import fs from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';
import type { ObserverHandle } from '../../../src/index.js';

// what the functions run in the page use of it (the project's types are Node's, not the DOM's)
declare const document: { body: { dataset: Record<string, string | undefined> } };
declare const location: { hash: string };

/** Debian's Chromium (KEEL_CHROMIUM names another build of it). */
export const CHROMIUM = process.env.KEEL_CHROMIUM ?? '/usr/bin/chromium';
const FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic'];

/** True when the browser tests skip: no Chromium here, and not under CI (where its absence is a failure). */
export const skipWithoutChromium = !fs.existsSync(CHROMIUM) && process.env.CI !== '1';

/** Launches Chromium (one per test file, in beforeAll); `args` adds flags (a host-resolver rule, say). */
export async function launch(args: string[] = []): Promise<Browser> {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`the observer's browser tests need Chromium at ${CHROMIUM} (apt-get install -y chromium, or KEEL_CHROMIUM=<path>)`);
  return chromium.launch({ executablePath: CHROMIUM, args: [...FLAGS, ...args] });
}

/**
 * Launches Chromium once for the enclosing describe (beforeAll), hands it to `set`, and closes it
 * after its tests (afterAll); `args` adds flags, as {@link launch}.
 */
export function useBrowser(set: (browser: Browser) => void, args: string[] = []): void {
  let browser: Browser | undefined;
  beforeAll(async () => {
    browser = await launch(args);
    set(browser);
  });
  afterAll(async () => {
    await browser?.close();
  });
}

/** Observer options for a page test: frames come only when a test pushes one, so no timer races its assertions. */
export const QUIET = { sampleMs: 3_600_000 } as const;

/** A page of the observer, its problems (page errors, CSP refusals, console errors) collected. */
export interface ObserverPage {
  readonly page: Page;
  readonly context: BrowserContext;
  /** Console errors and uncaught page errors, except a failed fetch the page handles itself (a 4xx/5xx answer). */
  readonly problems: string[];
  close(): Promise<void>;
}

/** Opens the observer's link (token → cookie → the page) at 1280x800, and waits for its first frame. */
export async function openObserver(browser: Browser, obs: ObserverHandle, route = '#/overview', colorScheme: 'light' | 'dark' = 'light'): Promise<ObserverPage> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme });
  const page = await context.newPage();
  const problems: string[] = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) problems.push(`console: ${m.text()}`);
  });
  const answer = await page.goto(obs.url);
  expect(answer?.status()).toBe(200);
  // the token left the address bar: the page is at / (with its route in the hash)
  expect(page.url()).toMatch(new RegExp(`^http://127\\.0\\.0\\.1:${obs.port}/(#.*)?$`));
  await page.waitForFunction(() => Number(document.body.dataset.frames) >= 1);
  if (route !== '#/overview') await go(page, route);
  return { page, context, problems, close: () => context.close() };
}

/** The page's count of handled frames. */
export function frames(page: Page): Promise<number> {
  return page.evaluate(() => Number(document.body.dataset.frames));
}

/** Pushes one frame and waits until the page has handled it (and re-rendered the page on view). */
export async function nextFrame(page: Page, obs: ObserverHandle): Promise<void> {
  const before = await frames(page);
  expect(await obs.pushFrame()).toBe(true);
  await page.waitForFunction((n) => Number(document.body.dataset.frames) > n, before);
}

/** The page's count of handled frames of `event` (`processes`, `overview`, ...). */
export function framesOf(page: Page, event: string): Promise<number> {
  const key = `frames${event[0]!.toUpperCase()}${event.slice(1)}`;
  return page.evaluate((k) => Number(document.body.dataset[k] ?? 0), key);
}

/**
 * Pushes one frame and waits until the processes page has applied its `processes` delta (the last
 * frame of a push: the overview and telemetry frames before it are handled too).
 */
export async function nextDelta(page: Page, obs: ObserverHandle): Promise<void> {
  const before = await framesOf(page, 'processes');
  expect(await obs.pushFrame()).toBe(true);
  await page.waitForFunction((n) => Number(document.body.dataset.framesProcesses ?? 0) > n, before);
}

/** Navigates to `route` (`#/processes?sort=mailbox`) and waits for that page's first render. */
export async function go(page: Page, route: string): Promise<void> {
  const before = await page.evaluate(() => Number(document.body.dataset.renders));
  const name = route.replace(/^#\//, '').split(/[/?]/)[0]!;
  await page.evaluate((r) => (location.hash = r), route);
  await page.waitForFunction(([n, v]) => Number(document.body.dataset.renders) > (n as number) && document.body.dataset.view === v, [before, name] as const);
}

/** Waits for the next render of the page on view (after a click that re-renders it). */
export async function rendered(page: Page, before: number): Promise<void> {
  await page.waitForFunction((n) => Number(document.body.dataset.renders) > n, before);
}

export function renders(page: Page): Promise<number> {
  return page.evaluate(() => Number(document.body.dataset.renders));
}

/** A value of the page's `document.body.dataset` (`frames`, `renders`, `view`, `conn`, ...). */
export function dataset(page: Page, key: string): Promise<string | undefined> {
  return page.evaluate((k) => document.body.dataset[k], key);
}

/** Waits until the page's frame counter passes `n`. */
export async function framesAfter(page: Page, n: number, timeout?: number): Promise<void> {
  await page.waitForFunction((m) => Number(document.body.dataset.frames) > m, n, timeout === undefined ? {} : { timeout });
}

/** Waits until the page's connection state (`live`, `reconnecting`, `offline`, ...) is not `state`. */
export async function connLeaves(page: Page, state: string): Promise<void> {
  // a function, not a string: a string predicate is evaluated with eval, which the page's CSP refuses
  await page.waitForFunction((s) => document.body.dataset.conn !== s, state);
}
