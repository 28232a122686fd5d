import { expect } from 'vitest';
import { GenServer, type Node, type Pid } from '../../../src/index.js';
import { createSignal, isSignal, type Signal } from '../../../src/agents/Signal.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { SignalRouterHandle, SignalRouterStats } from '../../../src/agents/router/types.js';
import { type Deferred, deferred, listOf } from '../../support.js';

// The signal router tests' helpers: subscribers that record (and may hold or crash), the router's
// events, publishing, and the accounting identities.

// ---- helpers ----------------------------------------------------------------------------------

/**
 * A subscriber that records every signal as its handler starts it. While `held`, each handler
 * awaits a gate (a slow subscriber); `release()` opens the gates and stops holding. `until(n)`
 * resolves once it has started `n` signals. `crashOn(i)` makes it throw on the signal whose data is i.
 */
export interface Sink {
  readonly pid: Pid;
  readonly got: Signal[];
  readonly data: unknown[];
  until(n: number): Promise<void>;
  release(): void;
}

export function sink(node: Node, options: { held?: boolean; crashOn?: number } = {}): Sink {
  const got: Signal[] = [];
  const gates: Deferred<void>[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  let held = options.held === true;
  const pid = node.spawn(() => (m: unknown) => {
    if (!isSignal(m)) return;
    got.push(m);
    for (const w of waiters.filter((x) => got.length >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    if (options.crashOn !== undefined && m.data === options.crashOn) throw new Error(`poison ${options.crashOn}`);
    if (!held) return;
    const gate = deferred();
    gates.push(gate);
    return gate.promise;
  });
  return {
    pid,
    got,
    get data() {
      return got.map((s) => s.data);
    },
    until: (n) => (got.length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    release: () => {
      held = false;
      for (const g of gates.splice(0)) g.resolve();
    },
  };
}

export interface Seen {
  readonly event: string;
  readonly measurements: Record<string, number>;
  readonly metadata: Record<string, unknown>;
}

/** Records the router's events; `until(event, n)` resolves once `n` such events have been seen. */
export function routerEvents(node: Node): { list: Seen[]; of(event: string): Seen[]; until(event: string, n: number): Promise<void> } {
  const list: Seen[] = [];
  const waiters: { event: string; n: number; resolve: () => void }[] = [];
  const of = (event: string): Seen[] => list.filter((e) => e.event === `keel.signal_router.${event}`);
  node.telemetry.attach(`test.router.${Math.random()}`, ['keel.signal_router.*'], (event, measurements, metadata) => {
    list.push({ event, measurements, metadata });
    for (const w of waiters.filter((x) => of(x.event).length >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  });
  return { list, of, until: (event, n) => (of(event).length >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ event, n, resolve }))) };
}

export const signal = (type: string, data?: unknown): Signal => createSignal({ type, source: '/test', data });

export function publishAll(router: SignalRouterHandle, type: string, n: number, from = 0): Signal[] {
  const out: Signal[] = [];
  for (let i = from; i < from + n; i++) {
    const s = signal(type, i);
    expect(router.publish(s)).toEqual({ ok: true, id: s.id });
    out.push(s);
  }
  return out;
}

/** The accounting identities every router keeps, whatever happened. */
export function expectBalanced(s: SignalRouterStats): void {
  const r = s.dropped.byReason;
  expect(s.routed).toBe(s.delivered + s.failed + r.evicted + r.subscriber_down + r.unsubscribed + s.buffered + s.inFlight);
  expect(s.matched).toBe(s.routed + r.buffer_full + r.rejected);
  expect(s.failed).toBe(r.delivery_failed);
  expect(s.dropped.total).toBe(Object.values(r).reduce((a, b) => a + b, 0));
}

export const routerMonitors = (node: Node) => listOf(node).filter((e) => e.tag === 'signal_router');

export function startRouter(node: Node, options?: Parameters<typeof SignalRouter.start>[1]): Promise<SignalRouterHandle> {
  return SignalRouter.start(node, options);
}

/** The router's internal sizes (a call only tests make). */
export async function internals(node: Node, router: SignalRouterHandle): Promise<{ trieNodes: number; cachedTypes: number }> {
  return GenServer.call(node, router.name, { type: 'internals' }) as Promise<{ trieNodes: number; cachedTypes: number }>;
}

