// The router's bounded mailbox under the messages other than the handle's publishes: a call, a
// system call (the observer's), a raw message, each may evict a queued publish under `drop_oldest`;
// every publish is still accounted for exactly (sent = taken + refused + evicted).
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { bridgeOpenTelemetry } from '../../../src/telemetry/otel.js';
import { GenServer, Sys } from '../../../src/index.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { PublishResult, SignalRouterHandle } from '../../../src/agents/router/types.js';
import { sysObserve } from '../../../src/otp/Sys.js';
import { clockedNode, useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink } from './routerKit.js';

const track = useNodes();

function publishN(router: SignalRouterHandle, type: string, n: number, from = 0): PublishResult[] {
  const out: PublishResult[] = [];
  for (let i = from; i < from + n; i++) out.push(router.publish(signal(type, i)));
  return out;
}

describe('SignalRouter drop_oldest mailbox: a publish evicted by a message that is not a publish is counted', () => {
  it('a call (stats) that finds the mailbox full evicts the oldest publish: counted as evicted and reported with that signal', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 3, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const events = routerEvents(node);
    const sent = publishN(router, 'a', 3);
    const stats = await router.stats(); // queued behind the three publishes: evicts the first
    expect(sent.every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(s.data).toEqual([1, 2]);
    expect(stats).toMatchObject({ published: 2, mailboxFull: { refused: 0, evicted: 1 } });
    expect(events.of('dropped').map((e) => [e.metadata.reason, e.metadata.signalId, e.metadata.overflow])).toEqual([['mailbox_full', sent[0]!.id, 'drop_oldest']]);
    expect(stats.published + stats.mailboxFull.evicted).toBe(3);
  });

  it('system calls (the observer’s observe, Sys.getState) and raw messages that evict publishes: each counted', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const sent = publishN(router, 'a', 2);
    const observed = sysObserve(node, router.pid); // evicts publish 0
    const raw = publishN(router, 'a', 1, 2); // evicts publish 1
    const state = Sys.getState(node, router.pid); // evicts the observe call (not a publish)
    node.send(router.pid, 'hello'); // evicts publish 2
    GenServer.cast(node, router.pid, { type: 'publish', signal: signal('a', 99) }); // evicts getState
    await expect(observed).rejects.toMatchObject({ code: 'ERR_MAILBOX_FULL' });
    await expect(state).rejects.toMatchObject({ code: 'ERR_MAILBOX_FULL' });
    await node.idle();
    const stats = await router.stats();
    expect([...sent, ...raw].every((r) => r.ok)).toBe(true);
    // the router took the raw message (an unexpected one) and the cast of one's own: no handle publish
    expect(s.data).toEqual([99]);
    expect(stats.mailboxFull).toEqual({ refused: 0, evicted: 3 });
    expect(stats.published).toBe(1); // the cast of one's own, not a handle's publish
    expectBalanced(stats);
  });
});

describe('SignalRouter bounded mailbox with message-flow tracing on (the publishTraced path)', () => {
  for (const overflow of ['reject', 'drop_newest', 'drop_oldest'] as const) {
    it(`${overflow}: answers and counts as untraced; a refused publish's span ends with mailbox_full, a taken one's is the parent of the router's handling`, async () => {
      const { node } = clockedNode(track);
      const exporter = new InMemorySpanExporter();
      const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
      bridgeOpenTelemetry(node, { tracer: provider.getTracer('review'), messageFlow: true, events: ['app.none'] });
      const router = await SignalRouter.start(node, { mailbox: { capacity: 2, overflow } });
      const s = sink(node);
      await router.subscribe('a', s.pid);
      const sent = publishN(router, 'a', 3);
      const stats = router.stats().catch((e: unknown) => e); // refused (reject, drop_newest) or evicting publish 1 (drop_oldest)
      await node.idle();
      const spans = exporter.getFinishedSpans().filter((x) => x.name === 'keel.signal_router.publish');
      expect(spans.map((x) => x.attributes.id)).toEqual(sent.map((r) => r.id));
      if (overflow === 'drop_oldest') {
        expect(sent.map((r) => r.ok)).toEqual([true, true, true]);
        expect(await stats).toMatchObject({ published: 1, mailboxFull: { refused: 0, evicted: 2 } });
        expect(s.data).toEqual([2]);
        expect(spans.map((x) => x.status.code)).toEqual([0, 0, 0]);
      } else {
        expect(sent.map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'ok', 'mailbox_full']);
        expect(await stats).toMatchObject({ code: 'ERR_MAILBOX_FULL' });
        expect(await router.stats()).toMatchObject({ published: 2, mailboxFull: { refused: 1, evicted: 0 } });
        expect(s.data).toEqual([0, 1]);
        // the refused publish's span says so (as a supervised send's span ends with its failure)
        expect(spans.map((x) => [x.status.code, x.status.message])).toEqual([[0, undefined], [0, undefined], [2, 'mailbox_full']]);
      }
      // the router's handling of each signal it took is the child of that publish's span
      const casts = exporter.getFinishedSpans().filter((x) => x.name === 'keel.gen_server.handle_cast');
      const taken = overflow === 'drop_oldest' ? [spans[2]!] : spans.slice(0, 2);
      expect(casts.map((c) => c.parentSpanContext?.spanId)).toEqual(taken.map((t) => t.spanContext().spanId));
    });
  }
});

describe('SignalRouter bounded mailbox while suspended (Sys.suspend): the held publishes count against the bound', () => {
  it('reject: of 50 publishes to a suspended router of capacity 2, 2 are taken and 48 refused (mailbox_full, counted); resumed, it routes the 2', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 2, overflow: 'reject' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    await Sys.suspend(node, router.pid);
    const sent: PublishResult[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(router.publish(signal('a', i)));
      await node.idle(); // the router holds what it was sent
    }
    expect(sent.map((r) => (r.ok ? 'ok' : r.reason))).toEqual([...Array(2).fill('ok'), ...Array(48).fill('mailbox_full')]);
    expect(await Sys.getStatus(node, router.pid)).toMatchObject({ status: 'suspended', queued: 2 });
    await Sys.resume(node, router.pid);
    await node.idle();
    expect(s.data).toEqual([0, 1]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 2, mailboxFull: { refused: 48, evicted: 0 } });
    expectBalanced(stats);
  });

  it('drop_oldest: every publish to a suspended router is taken, each evicts the oldest held one (counted as evicted); resumed, it routes the last 2', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const events = routerEvents(node);
    await Sys.suspend(node, router.pid);
    const sent: PublishResult[] = [];
    for (let i = 0; i < 50; i++) {
      sent.push(router.publish(signal('a', i)));
      await node.idle();
    }
    expect(sent.every((r) => r.ok)).toBe(true);
    expect(await Sys.getStatus(node, router.pid)).toMatchObject({ queued: 2 });
    await Sys.resume(node, router.pid);
    await node.idle();
    expect(s.data).toEqual([48, 49]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 2, mailboxFull: { refused: 0, evicted: 48 } });
    expect(events.of('dropped').map((e) => e.metadata.signalId)).toEqual(sent.slice(0, 48).map((r) => r.id));
    expectBalanced(stats);
  });
});
