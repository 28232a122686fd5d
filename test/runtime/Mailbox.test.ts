/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Context, createNode, isDown, isExit, type MailboxOptions, type Node, type Pid, type SystemMessage } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { deferred, expectKeelError, fakeLogger, idler, thrown, useNodes } from '../support.js';

const BLOCK = 'block';

const track = useNodes();

/**
 * A receiver that forwards every message to `sink` and, on BLOCK, stays busy until `release()`:
 * while it is busy its mailbox only fills. It traps exits when `setup` asks, and then still obeys
 * the node's shutdown.
 */
function gatedReceiver(node: Node, sink: Pid, mailbox?: MailboxOptions, setup?: (ctx: Context) => void): { pid: Pid; release: () => void } {
  const gate = deferred();
  const init = (ctx: Context) => {
    setup?.(ctx);
    return (m: unknown): void | Promise<void> => {
      if (isExit(m) && m.from === 'node') {
        ctx.exit(m.reason);
        return;
      }
      ctx.send(sink, m);
      if (m === BLOCK) return gate.promise;
    };
  };
  const pid = mailbox === undefined ? node.spawn(init) : node.spawn(init, { mailbox });
  return { pid, release: gate.resolve };
}

async function block(node: Node, receiver: Pid, sink: { receive(pred: (m: unknown) => boolean): Promise<unknown> }): Promise<void> {
  node.send(receiver, BLOCK);
  await sink.receive((m) => m === BLOCK);
}

/** Makes a probe, a capture of dropped messages and a gated receiver on `node`, and blocks the receiver. */
async function blockedReceiver(node: Node, mailbox?: MailboxOptions, setup?: (ctx: Context) => void) {
  const p = probe(node);
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const r = gatedReceiver(node, p, mailbox, setup);
  await block(node, r.pid, p);
  return { p, dropped, r };
}

describe('spawn({ mailbox })', () => {
  it('queues without bound by default', async () => {
    const node = track();
    const { p, dropped, r } = await blockedReceiver(node);
    for (let i = 0; i < 10_000; i++) node.send(r.pid, i);
    expect(node.info(r.pid)?.mailboxLength).toBe(10_000);
    r.release();
    await node.idle();
    expect(dropped.events).toEqual([]);
    expect(p.messages).toEqual([BLOCK, ...Array.from({ length: 10_000 }, (_, i) => i)]);
  });

  it.each(['reject', 'drop_newest'] as const)('with %s, drops the new message when the mailbox is full', async (overflow) => {
    const node = track();
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 3, overflow });
    for (let i = 1; i <= 5; i++) node.send(r.pid, i);
    expect(node.info(r.pid)?.mailboxLength).toBe(3);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([4, 5]);
    r.release();
    await node.idle();
    expect(p.messages).toEqual([BLOCK, 1, 2, 3]);
  });

  it.each(['reject', 'drop_newest'] as const)('with %s, reports each drop as keel.message.dropped with reason mailbox_full', async (overflow) => {
    const node = track();
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 1, overflow });
    const sender = node.spawn<string>((ctx) => (m) => {
      if (m === 'go') {
        ctx.send(r.pid, 'first');
        ctx.send(r.pid, 'second');
        ctx.send(p, 'sent');
      }
    });
    node.send(r.pid, 'fills');
    node.send(sender, 'go');
    await p.receive((m) => m === 'sent');
    node.send(r.pid, 'third');
    expect(dropped.events.map((e) => e.event)).toEqual(['keel.message.dropped', 'keel.message.dropped', 'keel.message.dropped']);
    expect(dropped.events[0]?.metadata).toMatchObject({ reason: 'mailbox_full', to: r.pid, message: 'first', from: sender });
    expect(dropped.events[1]?.metadata).toMatchObject({ reason: 'mailbox_full', to: r.pid, message: 'second', from: sender });
    expect(dropped.events[2]?.metadata).toMatchObject({ reason: 'mailbox_full', to: r.pid, message: 'third', from: 'node' });
    r.release();
  });

  it('with drop_oldest, evicts the oldest queued message to make room for the new one', async () => {
    const node = track();
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 3, overflow: 'drop_oldest' });
    for (let i = 1; i <= 5; i++) node.send(r.pid, i);
    expect(node.info(r.pid)?.mailboxLength).toBe(3);
    r.release();
    await node.idle();
    expect(p.messages).toEqual([BLOCK, 3, 4, 5]);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([1, 2]);
  });

  it('with drop_oldest, reports each eviction as keel.message.dropped with the evicted message', async () => {
    const node = track();
    const { dropped, r } = await blockedReceiver(node, { capacity: 2, overflow: 'drop_oldest' });
    node.send(r.pid, { n: 1 });
    node.send(r.pid, { n: 2 });
    expect(dropped.events).toEqual([]);
    node.send(r.pid, { n: 3 });
    expect(dropped.events).toHaveLength(1);
    expect(dropped.events[0]?.event).toBe('keel.message.dropped');
    expect(dropped.events[0]?.metadata).toMatchObject({ reason: 'mailbox_full', to: r.pid, message: { n: 1 } });
    r.release();
  });

  it.each(['reject', 'drop_newest', 'drop_oldest'] as const)('never drops a Down or an Exit for a full mailbox (%s)', async (overflow) => {
    const node = track();
    const monitored = idler(node);
    const linked = idler(node);
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 1, overflow }, (ctx) => {
      ctx.trapExits();
      ctx.monitor(monitored);
      ctx.link(linked);
    });
    node.send(r.pid, 'fills');
    node.exit(monitored, 'kill');
    node.exit(linked, 'kill');
    node.send(r.pid, 'overflows');
    r.release();
    await node.idle();
    const downs = p.messages.filter(isDown);
    const exits = p.messages.filter(isExit);
    expect(downs.map((d) => d.pid)).toEqual([monitored]);
    expect(exits.map((e) => e.from)).toEqual([linked]);
    expect(dropped.events.some((e) => isDown(e.metadata.message) || isExit(e.metadata.message))).toBe(false);
  });

  it('with drop_oldest, evicts the oldest user message and never a queued system message', async () => {
    const node = track();
    const monitored = idler(node);
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 1, overflow: 'drop_oldest' }, (ctx) => {
      ctx.monitor(monitored);
    });
    node.send(r.pid, 'u1');
    node.exit(monitored, 'kill'); // the Down queues behind u1, past the capacity
    node.send(r.pid, 'u2'); // evicts u1
    node.send(r.pid, 'u3'); // evicts u2, not the Down ahead of it
    r.release();
    await node.idle();
    expect(p.messages.slice(1).map((m) => (isDown(m) ? 'Down' : m))).toEqual(['Down', 'u3']);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual(['u1', 'u2']);
  });

  it('with drop_oldest, evicts in O(1): 200,000 sends into a full mailbox of 100,000 keep the newest, in order', async () => {
    const node = track();
    const CAP = 100_000;
    const { p, r } = await blockedReceiver(node, { capacity: CAP, overflow: 'drop_oldest' });
    let evictions = 0;
    node.telemetry.attach('count-evictions', ['keel.message.dropped'], () => void evictions++);
    const started = performance.now();
    for (let i = 0; i < 2 * CAP; i++) node.send(r.pid, i);
    // a scan of the mailbox per eviction is 10^10 steps here (minutes); O(1) eviction is milliseconds.
    // The bound is a failure guard for a loaded machine, far above either.
    expect(performance.now() - started).toBeLessThan(5_000);
    expect(evictions).toBe(CAP);
    expect(node.info(r.pid)?.mailboxLength).toBe(CAP);
    r.release();
    await node.idle();
    const got = p.messages.slice(1) as number[];
    expect(got.length).toBe(CAP);
    expect(got[0]).toBe(CAP);
    expect(got[CAP - 1]).toBe(2 * CAP - 1);
    expect(got.every((m, i) => m === CAP + i)).toBe(true);
  });

  it('with drop_oldest, evicts behind several queued system messages and keeps their order', async () => {
    const node = track();
    const watched = [idler(node), idler(node), idler(node)];
    const { p, dropped, r } = await blockedReceiver(node, { capacity: 2, overflow: 'drop_oldest' }, (ctx) => {
      for (const w of watched) ctx.monitor(w);
    });
    for (const w of watched) node.exit(w, 'kill'); // three Downs queue first
    // the Downs fill the capacity on their own: each user message evicts the one before it
    node.send(r.pid, 'u1');
    node.send(r.pid, 'u2'); // evicts u1, behind the three Downs
    node.send(r.pid, 'u3'); // evicts u2
    r.release();
    await node.idle();
    expect(p.messages.slice(1).map((m) => (isDown(m) ? m.pid : m))).toEqual([...watched, 'u3']);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual(['u1', 'u2']);
  });

  it('refuses a bad capacity or overflow with ERR_INVALID_ARGUMENT', () => {
    const node = track();
    expectKeelError(thrown(() => idler(node, { mailbox: { capacity: 0, overflow: 'reject' } })), 'ERR_INVALID_ARGUMENT');
    expectKeelError(thrown(() => idler(node, { mailbox: { capacity: 1.5, overflow: 'reject' } })), 'ERR_INVALID_ARGUMENT');
    expectKeelError(thrown(() => idler(node, { mailbox: { capacity: 4, overflow: 'drop_all' as never } })), 'ERR_INVALID_ARGUMENT');
  });
});

describe('message ordering', () => {
  interface Numbered {
    readonly from: number;
    readonly seq: number;
  }
  interface Burst {
    readonly count: number;
    readonly async: boolean;
  }
  const step = fc.record({
    sender: fc.nat({ max: 4 }),
    count: fc.integer({ min: 1, max: 5 }),
    async: fc.boolean(),
    yieldAfter: fc.constantFrom('none', 'microtask', 'settle'),
  });

  interface Scenario {
    readonly processSenders: number;
    readonly budget: number;
    readonly asyncReceiver: boolean;
    readonly mailbox: MailboxOptions | undefined;
    readonly steps: readonly { sender: number; count: number; async: boolean; yieldAfter: 'none' | 'microtask' | 'settle' }[];
  }

  /** Runs the senders' steps against one receiver; returns what each sender sent, what arrived, what was dropped. */
  async function run(sc: Scenario): Promise<{ sent: number[]; received: Numbered[]; dropped: Numbered[] }> {
    const node = createNode({ scheduler: { budget: sc.budget } });
    try {
      const received: Numbered[] = [];
      const drops = captureEvents(node, ['keel.message.dropped']);
      const sent = new Array<number>(sc.processSenders + 1).fill(0);
      const init = () => (m: Numbered | SystemMessage) => {
        if (isDown(m) || isExit(m)) return;
        received.push(m);
        if (sc.asyncReceiver && m.seq % 2 === 0) return Promise.resolve();
      };
      const receiver = sc.mailbox === undefined ? node.spawn<Numbered>(init) : node.spawn<Numbered>(init, { mailbox: sc.mailbox });
      const numbered = (from: number): Numbered => ({ from, seq: sent[from]!++ });
      // senders 0..processSenders-1 are processes; index processSenders is the node itself
      const senders = Array.from({ length: sc.processSenders }, (_, from) =>
        node.spawn<Burst>((ctx) => (m) => {
          if (isDown(m) || isExit(m)) return;
          if (!m.async) {
            for (let i = 0; i < m.count; i++) ctx.send(receiver, numbered(from));
            return;
          }
          // an async burst: the sender is busy between its sends, and its mailbox fills meanwhile
          return (async () => {
            for (let i = 0; i < m.count; i++) {
              ctx.send(receiver, numbered(from));
              await Promise.resolve();
            }
          })();
        }),
      );
      for (const s of sc.steps) {
        const from = s.sender % (sc.processSenders + 1);
        if (from === sc.processSenders) {
          for (let i = 0; i < s.count; i++) node.send(receiver, numbered(from));
        } else {
          node.send(senders[from]!, { count: s.count, async: s.async });
        }
        if (s.yieldAfter === 'microtask') await Promise.resolve();
        else if (s.yieldAfter === 'settle') await node.idle();
      }
      await node.idle();
      return { sent, received, dropped: drops.events.map((e) => e.metadata.message as Numbered) };
    } finally {
      await node.shutdown({ timeoutMs: 1000 });
    }
  }

  const scenario = (mailbox: fc.Arbitrary<MailboxOptions | undefined>) =>
    fc.record({
      processSenders: fc.integer({ min: 1, max: 4 }),
      budget: fc.constantFrom(1, 2, 64),
      asyncReceiver: fc.boolean(),
      mailbox,
      steps: fc.array(step, { minLength: 1, maxLength: 25 }),
    });

  it('delivers each sender’s messages in send order and loses none, for any interleaving of senders', async () => {
    await fc.assert(
      fc.asyncProperty(scenario(fc.constant(undefined)), async (sc) => {
        const { sent, received, dropped } = await run(sc);
        expect(dropped).toEqual([]);
        for (let from = 0; from < sent.length; from++) {
          const seqs = received.filter((m) => m.from === from).map((m) => m.seq);
          expect(seqs).toEqual(Array.from({ length: sent[from]! }, (_, i) => i));
        }
        expect(received).toHaveLength(sent.reduce((a, b) => a + b, 0));
      }),
      { numRuns: 100 },
    );
  });

  it('with a bounded mailbox, delivers each sender’s messages in send order and reports every other one as dropped', async () => {
    const bounded = fc.record({
      capacity: fc.integer({ min: 1, max: 4 }),
      overflow: fc.constantFrom('reject' as const, 'drop_newest' as const, 'drop_oldest' as const),
    });
    await fc.assert(
      fc.asyncProperty(scenario(bounded), async (sc) => {
        const { sent, received, dropped } = await run(sc);
        for (let from = 0; from < sent.length; from++) {
          const got = received.filter((m) => m.from === from).map((m) => m.seq);
          const lost = dropped.filter((m) => m.from === from).map((m) => m.seq);
          expect(got).toEqual([...got].sort((a, b) => a - b));
          expect([...got, ...lost].sort((a, b) => a - b)).toEqual(Array.from({ length: sent[from]! }, (_, i) => i));
        }
      }),
      { numRuns: 100 },
    );
  });
});

describe('the long-mailbox monitor', () => {
  it('reports a mailbox reaching longMailbox.above once, and once more when it is back at below', async () => {
    const logger = fakeLogger();
    const node = track({ logger, longMailbox: { above: 100, below: 10 } });
    const events = captureEvents(node, ['keel.process.long_mailbox']);
    const { r } = await blockedReceiver(node);
    for (let i = 0; i < 250; i++) node.send(r.pid, i);
    const ofReceiver = (): typeof events.events => events.events.filter((e) => e.metadata.pid === r.pid);
    expect(ofReceiver().map((e) => [e.event, e.measurements.length])).toEqual([['keel.process.long_mailbox', 100]]);
    expect(events.events[0]!.metadata).toMatchObject({ pid: r.pid, above: 100, below: 10 });
    expect(node.info(r.pid)?.longMailbox).toBe(true);
    expect(node.internals().longMailboxes).toBe(1);
    expect(logger.warn).toHaveBeenCalledTimes(1);
    expect(String(logger.warn.mock.calls[0]![0])).toContain('mailbox: { capacity, overflow }');
    r.release();
    await node.idle();
    expect(ofReceiver().map((e) => e.event)).toEqual(['keel.process.long_mailbox', 'keel.process.long_mailbox_cleared']);
    expect(ofReceiver()[1]!.measurements.length).toBeLessThanOrEqual(10);
    expect(node.info(r.pid)?.longMailbox).toBe(false);
    expect(node.internals().longMailboxes).toBe(0);
  });

  it('is on by default at 10,000 messages, and off with longMailbox: false', async () => {
    for (const [options, expected] of [[{}, 1], [{ longMailbox: false as const }, 0]] as const) {
      const node = track(options);
      const events = captureEvents(node, ['keel.process.long_mailbox']);
      const { r } = await blockedReceiver(node);
      for (let i = 0; i < 9_999; i++) node.send(r.pid, i);
      expect(events.events).toHaveLength(0);
      node.send(r.pid, 'the 10,000th');
      expect(events.events).toHaveLength(expected);
      r.release();
    }
  });

  it('clears for a process whose async handler drains its mailbox, and counts none left for a dead one', async () => {
    const node = track({ longMailbox: { above: 20, below: 5 } });
    const events = captureEvents(node, ['keel.process.long_mailbox']);
    const gate = deferred();
    let n = 0;
    const pid = node.spawn(() => async () => {
      if (n++ === 0) await gate.promise;
    });
    for (let i = 0; i < 30; i++) node.send(pid, i);
    gate.resolve();
    await node.idle();
    expect(events.events.map((e) => e.event)).toEqual(['keel.process.long_mailbox', 'keel.process.long_mailbox_cleared']);
    const { r } = await blockedReceiver(node);
    for (let i = 0; i < 30; i++) node.send(r.pid, i);
    expect(node.internals().longMailboxes).toBe(1);
    node.exit(r.pid, 'kill');
    expect(node.internals().longMailboxes).toBe(0);
  });

  it('refuses bounds that are not integers, or a below not under above, with ERR_INVALID_ARGUMENT', () => {
    for (const longMailbox of [{ above: 0 }, { above: 1.5 }, { above: 10, below: 10 }, { below: -1 }, { above: 100, bellow: 1 }, 'on']) {
      expectKeelError(thrown(() => createNode({ longMailbox: longMailbox as never })), 'ERR_INVALID_ARGUMENT', '`longMailbox');
    }
  });
});
