/* eslint-disable keel/no-unmanaged-monitor -- the tests wait for the router's death on a runtime monitor's Down (STYLE.md 10) */
// The router's own mailbox, bounded on request (`mailbox: { capacity, overflow }`, the spawn
// option): a publish that finds it full is refused at once (`mailbox_full`) or evicts the oldest
// publish (`drop_oldest`); either is counted in stats().mailboxFull and reported, and under a flood
// every publish is accounted for exactly: delivered, dropped with a reason, refused or evicted.
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { describe, expect, it } from 'vitest';
import { GenServer, Pid, Supervisor, Sys } from '../../../src/index.js';
import { SignalRouter } from '../../../src/agents/router/SignalRouter.js';
import type { PublishResult, SignalRouterHandle } from '../../../src/agents/router/types.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import type { MailboxOptions } from '../../../src/runtime/types.js';
import { sysObserve } from '../../../src/otp/Sys.js';
import { bridgeOpenTelemetry } from '../../../src/telemetry/otel.js';
import { expectNoLeaks, probe } from '../../../src/testing/index.js';
import { clockedNode, expectKeelError, failure, receiveDown, UNREADABLE, useNodes } from '../../support.js';
import { expectBalanced, routerEvents, signal, sink } from './routerKit.js';

const track = useNodes();

/** Publishes `n` signals of `type` (data from, from+1, ...) and answers what each publish answered. */
function publishN(router: SignalRouterHandle, type: string, n: number, from = 0): PublishResult[] {
  const out: PublishResult[] = [];
  for (let i = from; i < from + n; i++) out.push(router.publish(signal(type, i)));
  return out;
}

/** The `keel.message.dropped` events the kernel emitted for messages to `to` with reason `mailbox_full`. */
function kernelDrops(node: Kernel): { of(to: () => Pid): number } {
  const seen: { to: unknown; overflow: unknown }[] = [];
  node.telemetry.attach(`test.kernel.dropped.${Math.random()}`, ['keel.message.dropped'], (_e, _m, meta) => {
    if (meta.reason === 'mailbox_full') seen.push({ to: meta.to, overflow: meta.overflow });
  });
  return { of: (to) => seen.filter((s) => Pid.is(s.to) && Pid.equals(s.to, to())).length };
}

describe('SignalRouter mailbox option: checked like the spawn option', () => {
  it('refuses hostile values with ERR_INVALID_ARGUMENT naming the option, and starts nothing', async () => {
    const { node } = clockedNode(track);
    const count = node.processes().length;
    const throwing = (key: string): object =>
      Object.defineProperty({ capacity: 4, overflow: 'reject' }, key, {
        enumerable: true,
        get: () => {
          throw new Error(`${key} getter`);
        },
      });
    const cases: [unknown, string][] = [
      [0, '`options.mailbox`'],
      ['big', '`options.mailbox`'],
      [null, '`options.mailbox`'],
      [{ capacity: 0, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: -1, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: NaN, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: Infinity, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: 1.5, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: '10', overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: 2 ** 53, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: 10 }, '`options.mailbox.overflow`'],
      [{ capacity: 10, overflow: 'drop' }, '`options.mailbox.overflow`'],
      [{ capacity: 10, overflow: 'reject', capcity: 3 }, '`options.mailbox.capcity`'],
      [throwing('capacity'), '`options.mailbox.capacity`'],
      [throwing('overflow'), '`options.mailbox.overflow`'],
      ...UNREADABLE.map(([, make]) => [make(), '`options.mailbox'] as [unknown, string]),
    ];
    for (const [mailbox, argument] of cases) {
      expectKeelError(await failure(() => SignalRouter.start(node, { mailbox } as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
    const getter = Object.defineProperty({}, 'mailbox', {
      enumerable: true,
      get: () => {
        throw new Error('mailbox getter');
      },
    });
    expectKeelError(await failure(() => SignalRouter.start(node, getter as never)), 'ERR_INVALID_ARGUMENT', '`options.mailbox`', 'mailbox getter');
    expect(node.processes()).toHaveLength(count);
  });

  it('reads the option once: a getter that answers differently later changes nothing, at a restart either', async () => {
    const { node } = clockedNode(track);
    let reads = 0;
    const mailbox = {
      get capacity() {
        reads++;
        return reads === 1 ? 2 : 1000;
      },
      overflow: 'reject',
    } as unknown as MailboxOptions;
    const router = await SignalRouter.start(node, { name: 'once', mailbox });
    expect(reads).toBe(1);
    const s = sink(node);
    await router.subscribe('a', s.pid);
    expect(publishN(router, 'a', 3).map((r) => r.ok)).toEqual([true, true, false]);
    await node.idle();
    const p = probe(node);
    const ref = p.ctx.monitor(router.pid);
    node.exit(router.pid, 'kill');
    await receiveDown(p, ref);
    await node.idle();
    expect(publishN(router, 'a', 3, 3).map((r) => r.ok)).toEqual([true, true, false]);
    expect(reads).toBe(1);
  });
});

describe('SignalRouter with a bounded mailbox', () => {
  it('unbounded by default: a burst the router has not taken yet is all accepted, nothing counted as mailbox_full', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node);
    const s = sink(node);
    await router.subscribe('a', s.pid, { capacity: 20_000 });
    expect(publishN(router, 'a', 10_000).every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(await router.stats()).toMatchObject({ published: 10_000, delivered: 10_000, mailboxFull: { refused: 0, evicted: 0 } });
  });

  for (const overflow of ['reject', 'drop_newest'] as const) {
    it(`${overflow}: a publish that finds the mailbox full is answered mailbox_full at once, counted, and reported by the router and the kernel`, async () => {
      const { node } = clockedNode(track);
      const router = await SignalRouter.start(node, { mailbox: { capacity: 4, overflow } });
      const s = sink(node);
      await router.subscribe('a', s.pid);
      const events = routerEvents(node);
      const kernel = kernelDrops(node);
      const sent = publishN(router, 'a', 10); // the router takes none meanwhile: it runs after this turn
      expect(sent.map((r) => (r.ok ? 'ok' : r.reason))).toEqual([...Array(4).fill('ok'), ...Array(6).fill('mailbox_full')]);
      // a call finds it full too: the kernel's bound holds calls, casts and infos alike
      expectKeelError(await failure(() => router.stats()), 'ERR_MAILBOX_FULL');
      await node.idle();
      expect(s.data).toEqual([0, 1, 2, 3]);
      const stats = await router.stats();
      expect(stats).toMatchObject({ published: 4, delivered: 4, mailboxFull: { refused: 6, evicted: 0 }, dropped: { total: 0 } });
      expectBalanced(stats);
      const dropped = events.of('dropped');
      expect(dropped.map((e) => [e.measurements, e.metadata])).toEqual(
        sent.slice(4).map((r) => [{ count: 1 }, { router: router.name, reason: 'mailbox_full', signalId: r.id, type: 'a', overflow }]),
      );
      expect(dropped.map((e) => e.metadata.signalId)).toEqual(sent.slice(4).map((r) => r.id));
      expect(kernel.of(() => router.pid)).toBe(6 + 1); // the six publishes and the stats call
    });
  }

  it('drop_oldest: a publish that finds the mailbox full evicts the oldest publish, counted as evicted and reported with that signal', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 4, overflow: 'drop_oldest' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const events = routerEvents(node);
    const kernel = kernelDrops(node);
    const sent = publishN(router, 'a', 10);
    expect(sent.every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(s.data).toEqual([6, 7, 8, 9]);
    const stats = await router.stats();
    expect(stats).toMatchObject({ published: 4, delivered: 4, mailboxFull: { refused: 0, evicted: 6 } });
    expect(events.of('dropped').map((e) => [e.metadata.reason, e.metadata.signalId, e.metadata.overflow])).toEqual(
      sent.slice(0, 6).map((r) => ['mailbox_full', r.id, 'drop_oldest']),
    );
    expect(kernel.of(() => router.pid)).toBe(6);
  });

  it('drop_oldest: a call evicted is the caller’s ERR_MAILBOX_FULL, not a publish counted as evicted', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { mailbox: { capacity: 3, overflow: 'drop_oldest' } });
    const s = sink(node);
    const t = sink(node);
    await router.subscribe('a', s.pid);
    const late = router.subscribe('a', t.pid); // queued first: the oldest message
    const sent = publishN(router, 'a', 3); // the third evicts the subscribe call
    expectKeelError(await failure(() => late), 'ERR_MAILBOX_FULL');
    expect(sent.every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(s.data).toEqual([0, 1, 2]);
    expect(t.data).toEqual([]);
    expect(await router.stats()).toMatchObject({ subscribers: 1, published: 3, mailboxFull: { refused: 0, evicted: 0 } });
  });

  for (const overflow of ['reject', 'drop_newest', 'drop_oldest'] as const) {
    it(`${overflow}: a flood from four publishing processes: every publish is delivered, dropped with a reason, refused or evicted, exactly`, async () => {
      const { node } = clockedNode(track);
      const router = await SignalRouter.start(node, { mailbox: { capacity: 32, overflow } });
      const all = sink(node);
      const held = sink(node, { held: true });
      await router.subscribe('flood.*', all.pid, { capacity: 100_000 });
      await router.subscribe('flood.**', held.pid, { capacity: 8, maxInFlight: 1, overflow: 'drop_newest' });
      let reported = 0;
      node.telemetry.attach('test.flood.mailbox_full', ['keel.signal_router.dropped'], (_e, m, meta) => {
        if (meta.reason === 'mailbox_full') reported += m.count!;
      });
      const kernel = kernelDrops(node);
      const answers = { ok: 0, noproc: 0, mailbox_full: 0 };
      const BURSTS = 100;
      const PER_BURST = 100;
      let bursts = 0;
      // each publisher publishes a burst per message; the scheduler runs them and the router in turns
      const publishers = [0, 1, 2, 3].map((k) =>
        node.spawn(() => (burst: number) => {
          for (let i = 0; i < PER_BURST; i++) {
            const r = router.publish(signal(`flood.p${k}`, burst * PER_BURST + i));
            answers[r.ok ? 'ok' : r.reason]++;
          }
          if (++bursts === 4 * BURSTS) held.release(); // the flood is over: the held subscriber catches up
        }),
      );
      for (let b = 0; b < BURSTS; b++) for (const p of publishers) node.send(p, b);
      await node.idle();
      const sent = 4 * BURSTS * PER_BURST;
      const stats = await router.stats();
      const { refused, evicted } = stats.mailboxFull;
      // every publish answered; the refused ones are the mailbox_full answers, the evicted ones were answered ok
      expect(answers.ok + answers.mailbox_full).toBe(sent);
      expect(answers.noproc).toBe(0);
      expect(refused).toBe(answers.mailbox_full);
      expect(stats.published + evicted).toBe(answers.ok);
      // the subscriber of every type got every publish the router took, in each publisher's order
      expect(all.data).toHaveLength(stats.published);
      expect(sent).toBe(all.data.length + refused + evicted);
      for (let k = 0; k < 4; k++) {
        const got = all.got.filter((g) => g.type === `flood.p${k}`).map((g) => g.data as number);
        expect(got).toEqual([...got].sort((a, b) => a - b));
      }
      expect(refused + evicted).toBeGreaterThan(0);
      expect(stats.published).toBeGreaterThan(0);
      if (overflow === 'drop_oldest') expect(refused).toBe(0);
      else expect(evicted).toBe(0);
      // every one lost at the mailbox said so, by the router and by the kernel
      expect(reported).toBe(refused + evicted);
      expect(kernel.of(() => router.pid)).toBe(refused + evicted);
      // and per subscriber the router's own accounts hold as ever
      expectBalanced(stats);
      expect(stats.matched).toBe(2 * stats.published);
      expect(stats.delivered + stats.dropped.total).toBe(stats.matched);
      expectNoLeaks(node);
    }, 60_000);
  }
});

describe('SignalRouter bounded mailbox across restarts', () => {
  it('a router restarted by the agents supervisor has the same bound', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'bounded', mailbox: { capacity: 2, overflow: 'reject' } });
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const first = router.pid;
    const p = probe(node);
    const ref = p.ctx.monitor(first);
    node.exit(first, 'kill');
    await receiveDown(p, ref);
    await node.idle();
    expect(Pid.equals(router.pid, first)).toBe(false);
    expect(publishN(router, 'a', 5).map((r) => (r.ok ? 'ok' : r.reason))).toEqual(['ok', 'ok', 'mailbox_full', 'mailbox_full', 'mailbox_full']);
    await node.idle();
    expect(s.data).toEqual([0, 1]);
    expect(await router.stats()).toMatchObject({ restarts: 1, published: 2, mailboxFull: { refused: 3, evicted: 0 } });
  });

  it('a router under a supervisor of one’s own, restarted by it, has the same bound', async () => {
    const { node } = clockedNode(track);
    let handle: SignalRouterHandle | undefined;
    await Supervisor.start(node, [
      {
        id: 'router',
        start: async (ctx) => {
          handle = await SignalRouter.start(ctx, { name: 'signals', mailbox: { capacity: 2, overflow: 'drop_oldest' } });
          return handle.pid;
        },
      },
    ]);
    const router = handle!;
    const s = sink(node);
    await router.subscribe('a', s.pid);
    const first = router.pid;
    const p = probe(node);
    const ref = p.ctx.monitor(first);
    node.exit(first, 'kill');
    await receiveDown(p, ref);
    await node.idle();
    expect(Pid.equals(router.pid, first)).toBe(false);
    expect(publishN(router, 'a', 5).every((r) => r.ok)).toBe(true);
    await node.idle();
    expect(s.data).toEqual([3, 4]);
    expect(await router.stats()).toMatchObject({ restarts: 1, published: 2, mailboxFull: { refused: 0, evicted: 3 } });
  });

  it('a flood during a restart: every publish answered noproc, refused, evicted, lost with the dead router (reported) or taken', async () => {
    const { node } = clockedNode(track);
    const router = await SignalRouter.start(node, { name: 'signals', mailbox: { capacity: 50, overflow: 'reject' } });
    const s = sink(node);
    await router.subscribe('load', s.pid, { capacity: 10_000 });
    let first = router.pid;
    const lostWithRouter: number[] = [];
    node.telemetry.attach('test.lost', ['keel.message.dropped'], (_e, m, meta) => {
      if (meta.reason === 'receiver_exited' && Pid.equals(meta.to as Pid, first)) lostWithRouter.push(m.count!);
    });
    const answers = { ok: 0, noproc: 0, mailbox_full: 0 };
    const publish = (from: number, n: number): void => {
      for (const r of publishN(router, 'load', n, from)) answers[r.ok ? 'ok' : r.reason]++;
    };
    publish(0, 80); // 50 taken later, 30 refused
    await node.idle();
    publish(80, 80); // 50 in the mailbox when it is killed, 30 refused
    const p = probe(node);
    const ref = p.ctx.monitor(first);
    node.exit(first, 'kill');
    publish(160, 20); // no router: noproc
    await receiveDown(p, ref);
    await node.idle();
    expect(Pid.equals(router.pid, first)).toBe(false);
    first = router.pid;
    publish(180, 80); // the new router: 50 taken, 30 refused
    await node.idle();
    const stats = await router.stats();
    expect(answers).toEqual({ ok: 150, noproc: 20, mailbox_full: 90 });
    expect(lostWithRouter.reduce((a, b) => a + b, 0)).toBe(50);
    expect(stats).toMatchObject({ published: 100, delivered: 100, restarts: 1, mailboxFull: { refused: 90, evicted: 0 } });
    // every publish: noproc + refused + evicted + lost with the dead router + taken
    expect(answers.noproc + stats.mailboxFull.refused + stats.mailboxFull.evicted + 50 + stats.published).toBe(260);
    expect(s.data).toEqual([...Array.from({ length: 50 }, (_, i) => i), ...Array.from({ length: 50 }, (_, i) => 180 + i)]);
  });
});

// The router's bounded mailbox under the messages other than the handle's publishes: a call, a
// system call (the observer's), a raw message, each may evict a queued publish under `drop_oldest`;
// every publish is still accounted for exactly (sent = taken + refused + evicted).
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
