// StateMachine.start's `mailbox` option: GenServer's (the spawn option), for a state machine.
import { describe, expect, it } from 'vitest';
import { StateMachine, Sys } from '../../src/index.js';
import { sendSupervised } from '../../src/index.js';
import { captureEvents, expectNoLeaks } from '../../src/testing/index.js';
import { clockedNode, expectKeelError, failure, useNodes } from '../support.js';

const track = useNodes();

type S = 'closed' | 'open';
type Calls = { request: 'log'; reply: string[] };

/** A machine that logs each cast it handles; while `closed`, it postpones every cast until an 'open' cast (`capacity` undefined: unbounded). */
async function machine(capacity: number | undefined, overflow: 'reject' | 'drop_newest' | 'drop_oldest' = 'reject', state: S = 'open') {
  const { node } = clockedNode(track);
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const pid = await StateMachine.start<S, string[], Calls, string, never>(
    node,
    {
      init: () => ({ state, data: [] }),
      handleEvent: (ev, st, log) => {
        if (ev.type === 'call') return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: log }] };
        if (ev.type !== 'cast') return { keepState: true };
        if (ev.content === 'open') return { nextState: 'open', data: [...log, 'open'] };
        if (st === 'closed') return { keepState: true, actions: ['postpone'] };
        return { keepState: true, data: [...log, ev.content] };
      },
    },
    undefined,
    capacity === undefined ? {} : { mailbox: { capacity, overflow } },
  );
  return { node, pid, dropped };
}

describe('StateMachine.start mailbox option', () => {
  it('bounds the machine’s mailbox: a call past the capacity fails with ERR_MAILBOX_FULL, a cast past it is dropped with keel.message.dropped', async () => {
    const { node, pid, dropped } = await machine(2);
    StateMachine.cast(node, pid, 'a');
    StateMachine.cast(node, pid, 'b');
    StateMachine.cast(node, pid, 'c');
    expectKeelError(await failure(() => StateMachine.call(node, pid, 'log')), 'ERR_MAILBOX_FULL');
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.reason, e.metadata.message])).toMatchObject([
      ['mailbox_full', { request: 'c' }],
      ['mailbox_full', { request: 'log' }],
    ]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['a', 'b']);
  });

  it('drop_oldest: a cast past the capacity evicts the oldest queued event', async () => {
    const { node, pid, dropped } = await machine(2, 'drop_oldest');
    for (const c of ['a', 'b', 'c', 'd']) StateMachine.cast(node, pid, c);
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.overflow, e.metadata.message])).toEqual([
      ['drop_oldest', { request: 'a' }],
      ['drop_oldest', { request: 'b' }],
    ]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['c', 'd']);
  });

  it('suspended (Sys.suspend), the held events count against the bound, as a GenServer’s', async () => {
    const { node, pid, dropped } = await machine(2);
    await Sys.suspend(node, pid);
    for (const c of ['a', 'b', 'c']) {
      StateMachine.cast(node, pid, c);
      await node.idle();
    }
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([{ request: 'c' }]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 2 });
    await Sys.resume(node, pid);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['a', 'b']);
  });

  it('unbounded, unchanged: postponed events are the machine’s own queue (every one kept, replayed on the state change); the mailbox length does not count them', async () => {
    const { node, pid, dropped } = await machine(undefined, 'reject', 'closed');
    for (let i = 0; i < 10; i++) {
      StateMachine.cast(node, pid, `${i}`);
      await node.idle(); // taken from the mailbox and postponed
    }
    expect(dropped.events).toEqual([]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 0 });
    expect(node.info(pid)).toMatchObject({ mailboxLength: 0 });
    StateMachine.cast(node, pid, 'open');
    await node.idle();
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', ...Array.from({ length: 10 }, (_, i) => `${i}`)]);
  });
});

type Ev2 = { request: string; reply: string[] };

/**
 * A machine that postpones everything (casts, calls, infos) while `closed`; a cast 'open' (or its
 * state timeout, `openAfterMs`) opens it. Open, it logs each event and replies the log to a call.
 */
async function postponer(capacity: number, overflow: 'reject' | 'drop_newest' | 'drop_oldest', openAfterMs?: number) {
  const { node, clock } = clockedNode(track);
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const pid = await StateMachine.start<S, string[], Ev2, string, unknown>(
    node,
    {
      init: () => ({ state: 'closed', data: [], actions: openAfterMs === undefined ? [] : [{ type: 'state_timeout', ms: openAfterMs, content: 'open' }] }),
      handleEvent: (ev, st, log) => {
        if (ev.type === 'state_timeout' || (ev.type === 'cast' && ev.content === 'open')) return { nextState: 'open', data: [...log, 'open'] };
        if (st === 'closed') return { keepState: true, actions: ['postpone'] };
        const entry = ev.type === 'call' ? `call:${ev.request}` : ev.type === 'cast' ? ev.content : `info:${String(ev.type === 'info' ? ev.content : ev.type)}`;
        const next = [...log, entry];
        return ev.type === 'call' ? { keepState: true, data: next, actions: [{ type: 'reply', from: ev.from, reply: next }] } : { keepState: true, data: next };
      },
    },
    undefined,
    { mailbox: { capacity, overflow } },
  );
  return { node, clock, pid, dropped, proc: node.resolve(pid)! };
}

describe('a bounded StateMachine’s postponed events count against its mailbox’s capacity', () => {
  for (const overflow of ['reject', 'drop_newest'] as const) {
    it(`${overflow}: capacity 3, everything postponed, a flood of 100 casts and 100 calls: exactly 3 accepted, every other refused (a call fails ERR_MAILBOX_FULL at once, a cast dropped), each counted; the state timeout still gets in and the 3 replay in order`, async () => {
      const { node, clock, pid, dropped } = await postponer(3, overflow, 1000);
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 100; i++) {
        StateMachine.cast(node, pid, `c${i}`);
        calls.push(StateMachine.call(node, pid, `k${i}`).then((r) => r, (e: unknown) => e));
        await node.idle(); // what got in is taken and postponed before the next arrives
      }
      // accepted: c0 and k0 (both queued before the first idle), then c1; everything later refused
      const refusedCalls = await Promise.all(calls.slice(1));
      for (const e of refusedCalls) expectKeelError(e, 'ERR_MAILBOX_FULL');
      expect(dropped.events.every((e) => e.metadata.reason === 'mailbox_full' && e.metadata.overflow === undefined)).toBe(true);
      expect(dropped.events.filter((e) => isCast(e.metadata.message)).map((e) => (e.metadata.message as { request: string }).request)).toEqual(Array.from({ length: 98 }, (_, i) => `c${i + 2}`));
      expect(dropped.events).toHaveLength(98 + 99);
      expect(node.info(pid)).toMatchObject({ mailboxLength: 0 }); // postponed: not in the mailbox (as OTP's message_queue_len)
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'running', state: { state: 'closed' } }); // a system call gets in
      await clock.advance(1000); // the state timeout gets in past the postponed events
      await node.idle();
      expect(await calls[0]).toEqual(['open', 'c0', 'call:k0']);
      expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'c0', 'call:k0', 'c1', 'call:log']);
      expect(dropped.events).toHaveLength(98 + 99);
    });
  }

  it('drop_oldest: a new message evicts the oldest postponed event first (they arrived first), in order; an evicted call fails ERR_MAILBOX_FULL, never hangs; the rest replay in order on the state change', async () => {
    const { node, pid, dropped } = await postponer(3, 'drop_oldest');
    const k1 = StateMachine.call(node, pid, 'k1').then((r) => r, (e: unknown) => e);
    const k2 = StateMachine.call(node, pid, 'k2').then((r) => r, (e: unknown) => e);
    StateMachine.cast(node, pid, 'x');
    await node.idle(); // k1, k2, x postponed
    StateMachine.cast(node, pid, 'd'); // evicts k1
    StateMachine.cast(node, pid, 'e'); // mailbox d, e + postponed k2, x: evicts k2
    expectKeelError(await k1, 'ERR_MAILBOX_FULL');
    expectKeelError(await k2, 'ERR_MAILBOX_FULL');
    await node.idle(); // d, e postponed: x, d, e
    StateMachine.cast(node, pid, 'open'); // evicts x; opens: d, e replay
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.overflow, (e.metadata.message as { request: string }).request])).toEqual([
      ['drop_oldest', 'k1'],
      ['drop_oldest', 'k2'],
      ['drop_oldest', 'x'],
    ]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'd', 'e', 'call:log']);
  });

  it('drop_oldest: a postponed Down or Exit is never evicted (as in a mailbox): the oldest user event behind it goes', async () => {
    const { node, pid, dropped } = await postponer(2, 'drop_oldest');
    const victim = node.spawn(() => () => undefined);
    const proc = node.resolve(pid)!;
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the Down is the postponed system event under test
    proc.monitor(victim);
    node.exit(victim, 'kill'); // its Down postponed
    StateMachine.cast(node, pid, 'a');
    await node.idle();
    StateMachine.cast(node, pid, 'b'); // evicts a, not the Down
    await node.idle();
    expect(dropped.events.map((e) => (e.metadata.message as { request: string }).request)).toEqual(['a']);
    StateMachine.cast(node, pid, 'open'); // evicts b
    await node.idle();
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'info:[object Object]', 'call:log']);
  });

  it('supervised messages postponed stay unsettled until handled on the replay; evicted ones settle dropped: each exactly once, sent = handled + dropped', async () => {
    const { node, pid, proc } = await postponer(4, 'drop_oldest');
    const outcomes: string[][] = [];
    const listener = (id: string) => ({ handled: () => void outcomes.push([id, 'handled']), failed: (reason: string) => void outcomes.push([id, reason]) });
    for (let i = 0; i < 6; i++) {
      node.deliverEnvelope(undefined, proc, `m${i}`, `id${i}`, listener(`id${i}`));
      await node.idle();
    }
    // 4 postponed (m2..m5): m0, m1 evicted, settled dropped; none handled yet
    expect(outcomes).toEqual([['id0', 'dropped'], ['id1', 'dropped']]);
    expect(node.internals().envelopes).toBe(4);
    StateMachine.cast(node, pid, 'open'); // evicts m2; opens: m3, m4, m5 replay, each handled
    await node.idle();
    expect(outcomes.slice(2)).toEqual([['id2', 'dropped'], ['id3', 'handled'], ['id4', 'handled'], ['id5', 'handled']]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'info:m3', 'info:m4', 'info:m5', 'call:log']);
    expect(node.internals().envelopes).toBe(0);
  });

  it('a postponed supervised message taken back by its sender (withdrawn) frees its place and is skipped by the replay; the others replay in order', async () => {
    const { node, pid, proc } = await postponer(3, 'reject');
    const outcomes: string[][] = [];
    const listeners = [0, 1, 2].map((i) => ({ handled: () => void outcomes.push([`id${i}`, 'handled']), failed: (reason: string) => void outcomes.push([`id${i}`, reason]) }));
    for (let i = 0; i < 3; i++) node.deliverEnvelope(undefined, proc, `m${i}`, `id${i}`, listeners[i]);
    await node.idle();
    expect(node.withdrawEnvelope(pid, 'id1', listeners[1])).toBe(true);
    expect(outcomes).toEqual([['id1', 'withdrawn']]);
    StateMachine.cast(node, pid, 'open'); // the freed place
    await node.idle();
    expect(outcomes).toEqual([['id1', 'withdrawn'], ['id0', 'handled'], ['id2', 'handled']]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'info:m0', 'info:m2', 'call:log']);
    expect(node.internals().envelopes).toBe(0);
  });

  it('killed with postponed supervised messages and calls: every envelope settles down once, every call fails with the exit (stage queued); nothing leaks', async () => {
    const { node, pid, proc } = await postponer(10, 'reject');
    const outcomes: string[][] = [];
    const sent = 5;
    for (let i = 0; i < sent; i++) node.deliverEnvelope(undefined, proc, `m${i}`, `id${i}`, { handled: () => void outcomes.push([`id${i}`, 'handled']), failed: (reason) => void outcomes.push([`id${i}`, reason]) });
    const call = StateMachine.call(node, pid, 'k').then((r) => r, (e: unknown) => e);
    const supervised = sendSupervised(node, pid, 'sup', { ack: 'handled', onError: 'ignore' });
    await node.idle();
    expect(outcomes).toEqual([]);
    expect(node.internals().envelopes).toBe(sent + 1);
    node.exit(pid, 'kill');
    expect(outcomes).toEqual(Array.from({ length: sent }, (_, i) => [`id${i}`, 'down']));
    expect(await supervised).toMatchObject({ ok: false, reason: 'process_down' });
    const e = await call;
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect(e).toMatchObject({ stage: 'queued' });
    await node.idle();
    expect(outcomes).toHaveLength(sent);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it('suspended with postponed events: held + postponed + mailbox never pass the capacity; on resume the held ones are handled (postponed again here) after the earlier postponed, and the state change replays all in arrival order', async () => {
    const { node, clock, pid, dropped } = await postponer(5, 'reject', 1000);
    for (const c of ['a', 'b']) StateMachine.cast(node, pid, c);
    await node.idle(); // a, b postponed
    await Sys.suspend(node, pid);
    for (const c of ['c', 'd', 'e', 'f']) {
      StateMachine.cast(node, pid, c);
      await node.idle(); // c, d, e held; f refused (2 postponed + 3 held)
    }
    expect(dropped.events.map((e) => (e.metadata.message as { request: string }).request)).toEqual(['f']);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3 });
    expect(node.info(pid)).toMatchObject({ mailboxLength: 3 });
    await Sys.resume(node, pid); // c, d, e replayed: postponed again, after a, b
    await node.idle();
    StateMachine.cast(node, pid, 'g'); // 5 postponed: refused
    await node.idle();
    expect(dropped.events.map((e) => (e.metadata.message as { request: string }).request)).toEqual(['f', 'g']);
    await clock.advance(1000);
    await node.idle();
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', 'a', 'b', 'c', 'd', 'e', 'call:log']);
  });

  it('a supervised message handled whose handler inserts an event that is postponed is told handled at once; the inserted event, evicted, is reported as itself, never as that message', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const log: string[] = [];
    const pid = await StateMachine.start<S, null, Calls, string, never>(
      node,
      {
        init: () => ({ state: 'closed', data: null }),
        handleEvent: (ev, st) => {
          if (ev.type === 'internal' && st === 'closed') return { keepState: true, actions: ['postpone'] };
          log.push(`${ev.type}:${String((ev as { content?: unknown }).content)}`);
          // a supervised message (an info), handled: it inserts an event, postponed while closed
          if (ev.type === 'info') return { keepState: true, actions: [{ type: 'next_event', content: `${String(ev.content)}.inner` } as never] };
          return { keepState: true };
        },
      },
      undefined,
      { mailbox: { capacity: 1, overflow: 'drop_oldest' } },
    );
    const proc = node.resolve(pid)!;
    const outcomes: string[] = [];
    node.deliverEnvelope(undefined, proc, 'm', 'id-m', { handled: () => void outcomes.push('handled'), failed: (reason) => void outcomes.push(reason) });
    await node.idle();
    expect(log).toEqual(['info:m']);
    expect(outcomes).toEqual(['handled']); // handled: its handler returned (the inserted event is no message of its sender's)
    StateMachine.cast(node, pid, 'x'); // evicts the postponed inserted event
    await node.idle();
    expect(outcomes).toEqual(['handled']);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([{ type: 'internal', content: 'm.inner' }]);
    expect(log).toEqual(['info:m', 'cast:x']);
    expect(node.internals().envelopes).toBe(0);
  });

  /** A machine postponing everything while closed; open, 'slow' is handled asynchronously (until released) and 'boom' throws. */
  async function replayer(capacity: number, overflow: 'reject' | 'drop_oldest') {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const log: string[] = [];
    let started!: () => void;
    const slow: { release?: () => void; started: Promise<void> } = { started: new Promise((resolve) => void (started = resolve)) };
    const pid = await StateMachine.start<S, null, Ev2, string, never>(
      node,
      {
        init: () => ({ state: 'closed', data: null }),
        handleEvent: (ev, st) => {
          const c = ev.type === 'call' ? ev.request : String((ev as { content?: unknown }).content);
          if (c === 'open') return { nextState: 'open' };
          if (st === 'closed') return { keepState: true, actions: ['postpone'] };
          log.push(c);
          if (c === 'boom') throw new Error('boom');
          if (c === 'slow') {
            started();
            return new Promise((resolve) => void (slow.release = () => resolve({ keepState: true })));
          }
          return ev.type === 'call' ? { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: log }] } : { keepState: true };
        },
      },
      undefined,
      { mailbox: { capacity, overflow } },
    );
    const outcomes: string[][] = [];
    const supervised = (m: string) => node.deliverEnvelope(undefined, node.resolve(pid)!, m, m, { handled: () => void outcomes.push([m, 'handled']), failed: (reason) => void outcomes.push([m, reason]) });
    return { node, pid, dropped, log, slow, outcomes, supervised };
  }

  it('drop_oldest: postponed events scheduled for replay, evicted while the replay waits on an async handler, are skipped and counted once; the rest replay in order', async () => {
    const { node, pid, dropped, log, slow, outcomes, supervised } = await replayer(4, 'drop_oldest');
    StateMachine.cast(node, pid, 'a');
    StateMachine.cast(node, pid, 'slow');
    for (const m of ['m1', 'm2']) supervised(m);
    await node.idle(); // a, slow, m1, m2 postponed
    StateMachine.cast(node, pid, 'open'); // evicts a; replays slow (waits), then m1, m2 (scheduled, still counted)
    await slow.started;
    expect(log).toEqual(['slow']);
    for (const m of ['m3', 'm4', 'm5']) supervised(m); // m1, m2 + m3, m4; m5 evicts m1
    const k = StateMachine.call(node, pid, 'k').then((r) => r, (e: unknown) => e); // evicts m2
    expect(outcomes).toEqual([['m1', 'dropped'], ['m2', 'dropped']]);
    slow.release!();
    await node.idle();
    expect(log).toEqual(['slow', 'm3', 'm4', 'm5', 'k']);
    expect(await k).toEqual(['slow', 'm3', 'm4', 'm5', 'k']);
    // sent = handled + dropped, each once
    expect(outcomes).toEqual([['m1', 'dropped'], ['m2', 'dropped'], ['m3', 'handled'], ['m4', 'handled'], ['m5', 'handled']]);
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([{ request: 'a' }, 'm1', 'm2']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it('crashing in the handler of a replayed event: its supervised message settles crashed, every other still postponed down, each once; the postponed call fails queued; nothing leaks', async () => {
    const { node, pid, log, outcomes, supervised } = await replayer(6, 'reject');
    for (const m of ['m1', 'boom', 'm2', 'm3']) supervised(m);
    const k = StateMachine.call(node, pid, 'k').then((r) => r, (e: unknown) => e);
    await node.idle();
    StateMachine.cast(node, pid, 'open');
    await node.idle();
    expect(log).toEqual(['m1', 'boom']);
    expect(outcomes).toEqual([['m1', 'handled'], ['boom', 'crashed'], ['m2', 'down'], ['m3', 'down']]);
    const e = await k;
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect(e).toMatchObject({ stage: 'queued' });
    expect(node.isAlive(pid)).toBe(false);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it('a stop gets in past the postponed events (as past held ones): terminate runs, the postponed calls fail queued', async () => {
    const { node, pid } = await postponer(2, 'reject');
    const k = StateMachine.call(node, pid, 'k').then((r) => r, (e: unknown) => e);
    StateMachine.cast(node, pid, 'a');
    await node.idle();
    await StateMachine.stop(node, pid, 'shutdown');
    const e = await k;
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect(e).toMatchObject({ stage: 'queued' });
    expect(node.isAlive(pid)).toBe(false);
  });
});

function isCast(m: unknown): boolean {
  return typeof m === 'object' && m !== null && m.constructor.name === 'CastMessage';
}

describe('a bounded StateMachine’s replay of its postponed events is O(n)', () => {
  /**
   * A machine that postpones every cast while `closed` (state -1) and logs the casts it handles;
   * 'open', or its state timeout, opens it. Open, `after` says what handling a cast does: keep the
   * state, change it (a counter), or alternate (in an odd state a cast is postponed again with a
   * state change, handled in the next: each is taken back twice, the second time from the tail of
   * the postponed events).
   */
  async function postponing(after: 'keep' | 'count' | 'alternate', capacity: number, overflow: 'reject' | 'drop_oldest') {
    const { node, clock } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const handled: number[] = [];
    const pid = await StateMachine.start<number, null, Calls, string, string>(
      node,
      {
        init: () => ({ state: -1, data: null, actions: [{ type: 'state_timeout', ms: 1000, content: 'open' }] }),
        handleEvent: (ev, st) => {
          if (ev.type === 'state_timeout' || (ev.type === 'cast' && ev.content === 'open')) return { nextState: 0 };
          if (ev.type !== 'cast') return { keepState: true };
          if (st === -1) return { keepState: true, actions: ['postpone'] };
          if (after === 'alternate' && st % 2 === 1) return { nextState: st + 1, actions: ['postpone'] };
          handled.push(Number(ev.content));
          return after === 'keep' ? { keepState: true } : { nextState: st + 1 };
        },
      },
      undefined,
      { mailbox: { capacity, overflow } },
    );
    return { node, clock, pid, dropped, handled };
  }

  it('a flood of 100,000 casts into capacity 50,000 (drop_oldest), postponed: sent = handled + dropped, each once; the state change replays the kept ones in order', async () => {
    const { node, pid, dropped, handled } = await postponing('keep', 50_000, 'drop_oldest');
    const sent = 100_000;
    for (let i = 0; i < sent; i++) StateMachine.cast(node, pid, `${i}`);
    await node.idle(); // the last 50,000 are taken and postponed: the first 50,000 were evicted from the mailbox
    StateMachine.cast(node, pid, 'open'); // evicts the oldest postponed (50000); opens: the rest replay
    await node.idle();
    expect(handled).toEqual(Array.from({ length: 49_999 }, (_, i) => 50_001 + i));
    expect(dropped.events).toHaveLength(50_001);
    expect(dropped.events.at(-1)!.metadata.message).toMatchObject({ request: '50000' });
    expect(handled.length + dropped.events.length).toBe(sent);
    expectNoLeaks(node);
  });

  // failure guards: the replay scanned every postponed event at each state change, and took an
  // event postponed again from the tail by a scan of all (quadratic: 13 s for 100,000; 0.3 s now)
  for (const after of ['count', 'alternate'] as const) {
    it(`100,000 postponed, then ${after === 'count' ? 'every replayed event changes the state (each change replays only what was postponed since)' : 'every other replayed event is postponed again with a state change (taken back from the tail)'}: each handled once, in order`, async () => {
      const { node, clock, dropped, handled, pid } = await postponing(after, 100_000, 'reject');
      const n = 100_000;
      for (let i = 0; i < n; i++) StateMachine.cast(node, pid, `${i}`);
      await node.idle();
      await clock.advance(1000); // the state timeout gets in past them, and opens
      await node.idle();
      expect(dropped.events).toEqual([]);
      expect(handled).toHaveLength(n);
      expect(handled.every((v, i) => v === i)).toBe(true);
      expectNoLeaks(node);
    }, 5000);
  }
});
