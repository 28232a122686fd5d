/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down, the way STYLE.md 10 asks tests to wait */
// The messages a suspended server holds (Sys.suspend), attacked: its death with every kind of message
// held, callers that give up while their call is held, a long replay and a suspend behind it, a
// million held messages, GenServer.stop to a full or suspended bounded server, and a held supervised
// message taken back by its sender (withdrawn, as an unstarted one in the mailbox is).
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { broadcastSupervised, type CallProtocol, GenServer, type GenServerSpec, type MailboxOptions, Pid, sendSupervised, startObserver, StateMachine, Sys } from '../../src/index.js';
import { bearer, request } from '../observer/client.js';
import type { EnvelopeListener } from '../../src/runtime/internal/Envelope.js';
import { exitWatchersOf, type Proc } from '../../src/runtime/kernel.js';
import { StopMessage } from '../../src/otp/internal/server.js';
import { SysRequest } from '../../src/otp/internal/sys.js';
import { captureEvents, expectNoLeaks } from '../../src/testing/index.js';
import { clockedNode, deferred, expectKeelError, failure, fakeLogger, useNodes, watch } from '../support.js';

const track = useNodes();

/** A server that logs what it handles, in order; a call { add } replies the log. */
function logger(): GenServerSpec<string[], { request: 'get'; reply: string[] } | { request: { add: string }; reply: string[] }, string> {
  return {
    init: () => [],
    handleCall: (req, _from, log) => {
      if (req === 'get') return { reply: log, state: log };
      const next = [...log, `call:${req.add}`];
      return { reply: next, state: next };
    },
    handleCast: (c, log) => [...log, `cast:${c}`],
    handleInfo: (m, log) => [...log, typeof m === 'string' ? `info:${m}` : typeof m === 'object' && m !== null && 'reason' in m ? `signal:${String((m as { reason: unknown }).reason)}` : 'other'],
  };
}

function recording(): EnvelopeListener & { outcomes: unknown[][] } {
  const outcomes: unknown[][] = [];
  return {
    outcomes,
    handled: () => void outcomes.push(['handled']),
    failed: (reason, error) => void outcomes.push([reason, error]),
  };
}

const MAILBOXES: (MailboxOptions | undefined)[] = [undefined, { capacity: 100, overflow: 'reject' }, { capacity: 100, overflow: 'drop_oldest' }];

describe('a suspended server killed with every kind of message held', () => {
  for (const mailbox of MAILBOXES) {
    it(`${mailbox === undefined ? 'unbounded' : mailbox.overflow}: held calls fail with the exit (stage queued), held supervised messages settle down once, the death reports only what was still in the mailbox, nothing leaks`, async () => {
      const { node } = clockedNode(track);
      const dropped = captureEvents(node, ['keel.message.dropped']);
      const watched = node.spawn(() => () => undefined);
      const linked = node.spawn(() => () => undefined);
      const pid = await GenServer.start(
        node,
        {
          ...logger(),
          init: (_a: undefined, ctx) => {
            ctx.trapExits();
            ctx.link(linked);
            ctx.monitor(watched);
            return [];
          },
        },
        undefined,
        mailbox === undefined ? {} : { mailbox },
      );
      const proc = node.resolve(pid)!;
      await Sys.suspend(node, pid);
      // held: a call, a cast, an info, a supervised message, a Down, an Exit
      const heldCall = GenServer.call(node, pid, { add: 'held' }).then(() => undefined, (e: unknown) => e);
      GenServer.cast(node, pid, 'held');
      node.send(pid, 'held');
      const heldEnv = recording();
      node.deliverEnvelope(undefined, proc, 'held-supervised', 'held-1', heldEnv);
      const handled = sendSupervised(node, pid, 'held-handled', { ack: 'handled', onError: 'ignore' });
      node.exit(watched, 'kill');
      node.exit(linked, 'kill');
      await node.idle();
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 7 });
      expect(proc.size).toBe(0);
      // still in the mailbox when it dies: a call, a cast, a supervised message
      const queuedCall = GenServer.call(node, pid, { add: 'queued' }).then(() => undefined, (e: unknown) => e);
      GenServer.cast(node, pid, 'queued');
      const queuedEnv = recording();
      node.deliverEnvelope(undefined, proc, 'queued-supervised', 'queued-1', queuedEnv);
      expect(proc.size).toBe(3);
      node.exit(pid, 'kill');
      expect(heldEnv.outcomes).toEqual([['down', 'killed']]);
      expect(queuedEnv.outcomes).toEqual([['down', 'killed']]);
      for (const call of [await heldCall, await queuedCall]) {
        expectKeelError(call, 'ERR_CALL_EXIT');
        expect(call).toMatchObject({ stage: 'queued' });
      }
      expect(await handled).toMatchObject({ ok: false, reason: 'process_down' });
      await node.idle();
      expect(heldEnv.outcomes).toHaveLength(1);
      expect(queuedEnv.outcomes).toHaveLength(1);
      expect(node.internals().envelopes).toBe(0);
      // the death's one event counts the three left in the mailbox (as before: the held ones never were)
      const deaths = dropped.events.filter((e) => e.metadata.reason === 'receiver_exited');
      expect(deaths.map((e) => [e.measurements.count, e.metadata.ids])).toEqual([[3, ['queued-1']]]);
      expect(dropped.events).toHaveLength(1);
      expect(exitWatchersOf(proc)).toEqual([]);
      expectNoLeaks(node);
    });
  }
});

describe('a caller that gives up on its held call', () => {
  it('a call whose caller dies, whose timeout fires or whose signal aborts while held fails at once; on resume each request is still handled (as a queued one is), its reply going nowhere', async () => {
    const logger_ = fakeLogger();
    const { node, clock } = clockedNode(track, { logger: logger_ });
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    const started = deferred();
    const caller = node.spawn((ctx) => {
      GenServer.call(ctx, pid, { add: 'dead-caller' }).catch(() => undefined); // its caller is gone when it fails
      started.resolve();
      return () => undefined;
    });
    await started.promise;
    const timed = GenServer.call(node, pid, { add: 'timed-out' }, 1000).then(() => undefined, (e: unknown) => e);
    const controller = new AbortController();
    const aborted = GenServer.call(node, pid, { add: 'aborted' }, { signal: controller.signal }).then(() => undefined, (e: unknown) => e);
    await node.idle();
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 3 });
    node.exit(caller, 'kill');
    await clock.advance(1000);
    controller.abort(new Error('enough'));
    expectKeelError(await timed, 'ERR_CALL_TIMEOUT');
    expectKeelError(await aborted, 'ERR_ABORTED');
    expectNoLeaks(node); // nothing held for the dead caller
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 3 }); // held still, as queued calls stay queued
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['call:dead-caller', 'call:timed-out', 'call:aborted']);
    expect(logger_.errors).toEqual([]);
  });

  it('drop_oldest: a held call evicted after its caller gave up is reported dropped and fails no one twice', async () => {
    const logger_ = fakeLogger();
    const { node, clock } = clockedNode(track, { logger: logger_ });
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    await Sys.suspend(node, pid);
    const timed = watch(GenServer.call(node, pid, { add: 'timed-out' }, 10));
    await node.idle();
    await clock.advance(10);
    await node.idle();
    expect(timed.status).toBe('rejected');
    GenServer.cast(node, pid, 'evicts');
    await node.idle(); // held in turn (a system call to a full mailbox would evict it)
    expect(dropped.events.map((e) => [e.metadata.message, e.metadata.overflow])).toMatchObject([[{ request: { add: 'timed-out' } }, 'drop_oldest']]);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:evicts']);
    expect(logger_.errors).toEqual([]);
  });
});

describe('a long replay', () => {
  it('a suspend sent during a long replay waits behind it: every held message handled in order, then what came later held, and held + mailbox never past the capacity', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const capacity = 25_000;
    const seen: number[] = [];
    const pid = await GenServer.start(
      node,
      { init: () => 0, handleInfo: (m: unknown, n: number) => (seen.push(m as number), n + 1), handleCall: (_r: unknown, _f, n: number) => ({ reply: n, state: n }) },
      undefined,
      { mailbox: { capacity, overflow: 'reject' } },
    );
    const proc = node.resolve(pid)!;
    const held = (): number => (proc as Proc & { x?: { held?: { length: number } } }).x?.held?.length ?? 0;
    let peak = 0;
    let suspendedAgain: Promise<void> | undefined;
    let at = -1;
    const between = node.spawn((ctx) => () => {
      at = seen.length;
      suspendedAgain = Sys.suspend(ctx, pid);
      for (let i = 0; i < capacity; i++) node.send(pid, capacity + i);
      peak = Math.max(peak, proc.size + held());
    });
    await Sys.suspend(node, pid);
    for (let i = 0; i < capacity; i++) node.send(pid, i);
    await node.idle();
    expect(held()).toBe(capacity);
    const resumed = Sys.resume(node, pid);
    node.send(between, 'go'); // runs between two slices of the replay
    await resumed;
    await suspendedAgain;
    await node.idle();
    expect(at === 10_000 || at === 20_000).toBe(true);
    // the replay went on past the suspend; it got in, as a system call does, and what it held is the late ones
    expect(seen).toEqual(Array.from({ length: capacity }, (_, i) => i));
    // the suspend, a system call, took one place: the late ones got the places the replay had freed but one
    expect(peak).toBe(capacity);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: at - 1 });
    expect(dropped.events).toHaveLength(capacity - at + 1);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'count')).toBe(capacity + at - 1);
    expect(seen.slice(capacity)).toEqual(Array.from({ length: at - 1 }, (_, i) => capacity + i));
    expect(held()).toBe(0);
  });

  it('killed between two slices of a replay: each supervised message settled once, handled or down, the held calls failed queued, nothing in flight left', async () => {
    const { node } = clockedNode(track);
    const n = 25_000;
    const outcomes = new Map<string, number>();
    let settled = 0;
    const listener: EnvelopeListener = {
      handled: () => void (settled++, outcomes.set('handled', (outcomes.get('handled') ?? 0) + 1)),
      failed: (reason) => void (settled++, outcomes.set(reason, (outcomes.get(reason) ?? 0) + 1)),
    };
    let handled = 0;
    const pid = await GenServer.start(node, { init: () => 0, handleInfo: (_m: unknown, c: number) => (handled++, c + 1), handleCall: (_r: unknown, _f, c: number) => ({ reply: c, state: c }) }, undefined, { mailbox: { capacity: n + 1, overflow: 'reject' } });
    const proc = node.resolve(pid)!;
    let at = -1;
    const killer = node.spawn(() => () => {
      at = handled;
      node.exit(pid, 'kill');
    });
    await Sys.suspend(node, pid);
    for (let i = 0; i < n; i++) node.deliverEnvelope(undefined, proc, i, `m${i}`, listener);
    const lastCall = GenServer.call(node, pid, 'last').then(() => undefined, (e: unknown) => e);
    await node.idle();
    const resumed = Sys.resume(node, pid);
    node.send(killer, 'go');
    await resumed;
    await node.idle();
    expect(at === 10_000 || at === 20_000).toBe(true);
    expect(handled).toBe(at);
    expect(Object.fromEntries(outcomes)).toEqual({ handled: at, down: n - at });
    expect(settled).toBe(n);
    expect(node.internals().envelopes).toBe(0);
    expect(await lastCall).toMatchObject({ code: 'ERR_CALL_EXIT', stage: 'queued', reason: 'killed' });
  });

  it('a replayed message that stops or crashes the server: the one handled settles as handled or crashed, the rest held fail queued or down', async () => {
    for (const how of ['stop', 'crash'] as const) {
      const { node } = clockedNode(track);
      const boom = new Error('boom');
      const pid = await GenServer.start(node, {
        ...logger(),
        handleInfo: (m: unknown, log: string[]) => {
          if (m === 'end') {
            if (how === 'crash') throw boom;
            return { stop: 'normal', state: log };
          }
          return [...log, String(m)];
        },
      });
      const proc = node.resolve(pid)!;
      await Sys.suspend(node, pid);
      const first = recording();
      node.deliverEnvelope(undefined, proc, 'end', 'end', first);
      const after = recording();
      node.deliverEnvelope(undefined, proc, 'after', 'after', after);
      const call = GenServer.call(node, pid, { add: 'after' }).then(() => undefined, (e: unknown) => e);
      await node.idle();
      await Sys.resume(node, pid);
      await node.idle();
      expect(node.isAlive(pid)).toBe(false);
      expect(first.outcomes).toEqual([how === 'stop' ? ['handled'] : ['crashed', boom]]);
      expect(after.outcomes).toEqual([['down', how === 'stop' ? 'normal' : boom]]);
      expect(await call).toMatchObject({ code: 'ERR_CALL_EXIT', stage: 'queued' });
      expect(node.internals().envelopes).toBe(0);
    }
  });

  it('unbounded: a million held messages replayed in order, in slices; the taken slots are given back as it goes', async () => {
    const { node } = clockedNode(track);
    const n = 1_000_000;
    let next = 0;
    let outOfOrder = 0;
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleInfo: (m: unknown, c: number) => {
        if (m !== next++) outOfOrder++;
        return c + 1;
      },
      handleCall: (_r: unknown, _f, c: number) => ({ reply: c, state: c }),
    });
    const proc = node.resolve(pid)! as Proc & { x?: { held?: { items: unknown[]; head: number; length: number } } };
    const spare: number[] = [];
    const sampler = node.spawn(() => () => {
      const q = proc.x?.held;
      if (q !== undefined) spare.push(q.items.length - q.length);
    });
    await Sys.suspend(node, pid);
    for (let i = 0; i < n; i++) node.send(pid, i);
    await node.idle();
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: n });
    const resumed = Sys.resume(node, pid);
    for (let i = 0; i < 50; i++) node.send(sampler, i);
    await resumed;
    expect(await GenServer.call(node, pid, 'count')).toBe(n);
    expect(outOfOrder).toBe(0);
    expect(proc.x?.held).toBeUndefined();
    expect(spare.length).toBeGreaterThan(0);
    // between two slices the array keeps at most as many taken slots as it has messages left (or 1024)
    for (const s of spare) expect(s).toBeLessThanOrEqual(n / 2 + 10_000);
  });
});

describe('GenServer.stop to a bounded server, and StopMessage as an exit watcher', () => {
  it('a stop queued in a full drop_oldest mailbox that the server then takes resolves once; it was never on a watcher list', async () => {
    const { node } = clockedNode(track);
    const gate = deferred();
    const started = deferred();
    const terminated: unknown[] = [];
    const pid = await GenServer.start(
      node,
      { ...logger(), handleCast: async (c: string, log: string[]) => (c === 'wait' ? (started.resolve(), await gate.promise, log) : [...log, c]), terminate: (r) => void terminated.push(r) },
      undefined,
      { mailbox: { capacity: 2, overflow: 'drop_oldest' } },
    );
    const proc = node.resolve(pid)!;
    GenServer.cast(node, pid, 'wait');
    await started.promise;
    GenServer.cast(node, pid, 'a');
    GenServer.cast(node, pid, 'b'); // full
    const stop = watch(GenServer.stop(node, pid, 'shutdown')); // evicts a
    expect(exitWatchersOf(proc)).toEqual([]);
    gate.resolve();
    await node.idle();
    expect(stop.status).toBe('resolved');
    expect(terminated).toEqual(['shutdown']);
    expect(node.isAlive(pid)).toBe(false);
  });

  it('a stop to a suspended drop_oldest server whose held messages fill it gets in without evicting any; the held calls fail with the exit', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
    await Sys.suspend(node, pid);
    const call = GenServer.call(node, pid, { add: 'held' }).then(() => undefined, (e: unknown) => e);
    GenServer.cast(node, pid, 'held');
    await node.idle();
    await GenServer.stop(node, pid, 'shutdown');
    expect(dropped.events).toEqual([]);
    expectKeelError(await call, 'ERR_CALL_EXIT');
    expect(await call).toMatchObject({ stage: 'queued', reason: 'shutdown' });
  });

  it('a stop that timed out and is then evicted fails once, with the timeout', async () => {
    const { node, clock } = clockedNode(track);
    const gate = deferred();
    const started = deferred();
    const pid = await GenServer.start(node, { ...logger(), handleCast: async (_c: string, log: string[]) => (started.resolve(), await gate.promise, log) }, undefined, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    GenServer.cast(node, pid, 'wait');
    await started.promise;
    let settled = 0;
    const stop = GenServer.stop(node, pid, 'normal', 50).then(() => settled++, (e: unknown) => (settled++, e));
    await clock.advance(50);
    expectKeelError(await stop, 'ERR_CALL_TIMEOUT');
    GenServer.cast(node, pid, 'evicts the stop');
    gate.resolve();
    await node.idle();
    expect(settled).toBe(1);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('a refused stop, as its dropped event shows it, is its reason, not the kernel\'s watcher links', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const gate = deferred();
    const started = deferred();
    const pid = await GenServer.start(node, { ...logger(), handleCast: async (_c: string, log: string[]) => (started.resolve(), await gate.promise, log) }, undefined, { mailbox: { capacity: 1, overflow: 'reject' } });
    GenServer.cast(node, pid, 'wait');
    await started.promise;
    GenServer.cast(node, pid, 'fills');
    expectKeelError(await failure(() => GenServer.stop(node, pid, 'shutdown')), 'ERR_MAILBOX_FULL');
    const shown = inspect(dropped.events[0]!.metadata.message);
    expect(shown).toBe("StopMessage { reason: 'shutdown' }");
    gate.resolve();
  });
});

describe('what the capacity check asks of a message past the held ones', () => {
  // the kernel runs no user code between its capacity check and the write into the mailbox: a proxy's
  // traps (a Vue reactive object, an immer draft, or a hostile one) must not run there
  it('a proxy message, or a call whose request is a proxy, runs none of its traps there: refused as any message past the bound', async () => {
    for (const shape of ['message', 'request', 'message inheriting', 'request inheriting'] as const) {
      const { node } = clockedNode(track);
      const dropped = captureEvents(node, ['keel.message.dropped']);
      const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 2, overflow: 'reject' } });
      const proc = node.resolve(pid)!;
      await Sys.suspend(node, pid);
      GenServer.cast(node, pid, 'a');
      GenServer.cast(node, pid, 'b');
      await node.idle(); // both held: full, the mailbox itself empty
      let trapped = 0;
      // a trap that kills the server and claims to be what gets in past the held messages
      const claims = shape.startsWith('message') ? StopMessage.prototype : SysRequest.prototype;
      const trap = new Proxy({}, {
        getPrototypeOf: () => {
          trapped++;
          node.exit(pid, 'kill');
          return claims;
        },
      });
      // the proxy itself, or a plain object with the proxy as its prototype (instanceof walks up to it)
      const proxy: object = shape.endsWith('inheriting') ? Object.create(trap) : trap;
      if (shape.startsWith('message')) node.send(pid, proxy);
      else expectKeelError(await failure(() => GenServer.call(node, pid, proxy as never)), 'ERR_MAILBOX_FULL');
      expect(trapped).toBe(0);
      expect(node.isAlive(pid)).toBe(true);
      expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['mailbox_full']);
      expect(proc.size).toBe(0);
      await Sys.resume(node, pid);
      expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:a', 'cast:b']);
    }
  });
});

describe('what a suspended server shows', () => {
  it('getStatus, replaceState and node.info count the held with the queued (in OTP they are still in the mailbox: message_queue_len counts them)', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 10, overflow: 'reject' } });
    await Sys.suspend(node, pid);
    for (const c of ['a', 'b', 'c']) GenServer.cast(node, pid, c);
    await node.idle();
    GenServer.cast(node, pid, 'd'); // in the mailbox still
    expect(node.info(pid)).toMatchObject({ mailboxLength: 4 });
    expect(await Sys.replaceState<string[]>(node, pid, (s) => [...s, 'replaced'])).toEqual(['replaced']);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 4, state: ['replaced'] });
    expect(node.info(pid)).toMatchObject({ mailboxLength: 4 });
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['replaced', 'cast:a', 'cast:b', 'cast:c', 'cast:d']);
    expect(node.info(pid)).toMatchObject({ mailboxLength: 0 });
  });

  it('exact counts before the suspend, with N held, and after the resume: node.info, Sys.getStatus and the observer (its list sorted by mailbox, its detail, its tree) agree', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const other = await GenServer.start(node, logger());
    const obs = await startObserver(node);
    const api = async (path: string) => (await request(obs.port, { path, headers: bearer(obs.token) })).json as Record<string, unknown>;
    const shown = async () => {
      const list = (await api('/api/processes?sort=mailbox&limit=1')).processes as { pid: string; mailbox: number }[];
      const detail = await api(`/api/process/${encodeURIComponent(Pid.format(pid))}`);
      return { top: list[0], detail: detail.mailbox };
    };
    try {
      GenServer.cast(node, pid, 'x');
      await node.idle();
      expect(node.info(pid)).toMatchObject({ mailboxLength: 0 });
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'running', queued: 0 });
      await Sys.suspend(node, pid);
      for (let i = 0; i < 100; i++) GenServer.cast(node, pid, `${i}`);
      for (let i = 0; i < 3; i++) GenServer.cast(node, other, `${i}`); // not suspended: handled
      await node.idle();
      expect(node.info(pid)).toMatchObject({ mailboxLength: 100 });
      expect(node.info(other)).toMatchObject({ mailboxLength: 0 });
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 100 });
      expect(await shown()).toEqual({ top: expect.objectContaining({ pid: Pid.format(pid), mailbox: 100 }), detail: 100 });
      await Sys.resume(node, pid);
      await node.idle();
      expect(node.info(pid)).toMatchObject({ mailboxLength: 0 });
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'running', queued: 0 });
      expect((await shown()).detail).toBe(0);
      expect(await GenServer.call(node, pid, 'get')).toHaveLength(101);
    } finally {
      await obs.close();
    }
  });

  it('the long-mailbox monitor sees the held messages: a suspended server holding past longMailbox.above is long (one event, one warning), and short again once its replay brings it to below', async () => {
    const logger = fakeLogger();
    const { node } = clockedNode(track, { logger, longMailbox: { above: 50, below: 10 } });
    const events = captureEvents(node, ['keel.process.long_mailbox', 'keel.process.long_mailbox_cleared']);
    const pid = await GenServer.start(node, { init: () => 0, handleCast: (_c: string, n: number) => n + 1, handleCall: (_r: 'n', _f, n: number) => ({ reply: n, state: n }) });
    await Sys.suspend(node, pid);
    for (let i = 0; i < 49; i++) {
      GenServer.cast(node, pid, `${i}`);
      await node.idle(); // each taken and held: the mailbox itself never holds more than one
    }
    expect(node.info(pid)).toMatchObject({ mailboxLength: 49, longMailbox: false });
    expect(events.events).toEqual([]);
    GenServer.cast(node, pid, '49');
    await node.idle();
    expect(node.info(pid)).toMatchObject({ mailboxLength: 50, longMailbox: true });
    expect(events.events.map((e) => [e.event, e.measurements.length])).toEqual([['keel.process.long_mailbox', 50]]);
    expect(logger.warn.mock.calls.filter(([m]) => m.includes('has 50 messages queued'))).toHaveLength(1);
    GenServer.cast(node, pid, '50');
    await node.idle();
    expect(events.events).toHaveLength(1); // one event per crossing
    await Sys.resume(node, pid);
    await node.idle();
    expect(await GenServer.call(node, pid, 'n')).toBe(51);
    expect(node.info(pid)).toMatchObject({ mailboxLength: 0, longMailbox: false });
    expect(events.events.map((e) => [e.event, e.measurements.length])).toEqual([
      ['keel.process.long_mailbox', 50],
      ['keel.process.long_mailbox_cleared', 0],
    ]);
  });
});

describe('a supervised message a suspended server holds is withdrawn as an unstarted one is (in OTP it is still in the mailbox)', () => {
  const RETRY = { ack: 'handled', timeout: 100, backoff: { initialMs: 10, jitter: 'none' }, onError: 'ignore' } as const;

  it("ack 'handled', retries 1: the timeout takes the held copy back; after resume the server handles the message once, the retry's copy, and the send is ok after 2 attempts", async () => {
    const { node, clock } = clockedNode(track);
    const retried = captureEvents(node, ['keel.supervised_send.retry']);
    const pid = await GenServer.start(node, logger());
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const w = watch(sendSupervised(node, pid, 'job', { ...RETRY, retries: 1 }));
    await node.idle();
    expect(node.heldCount(proc)).toBe(1);
    expect(node.internals().envelopes).toBe(1);
    await clock.advance(100); // the first attempt times out: its held copy is withdrawn
    expect(node.heldCount(proc)).toBe(0);
    expect(node.internals().envelopes).toBe(0);
    expect(retried.events.map((e) => [e.measurements.attempt, e.metadata.reason])).toEqual([[2, 'timeout']]);
    await clock.advance(10); // the retry's copy, held in turn
    await node.idle();
    expect(node.heldCount(proc)).toBe(1);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 1 });
    expect(w.status).toBe('pending');
    await Sys.resume(node, pid);
    await node.idle();
    expect(w.value).toEqual({ ok: true, id: w.value?.id, attempts: 2 });
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:job']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it("retries 0: the outcome is timeout after 1 attempt, and after resume the server never handles the message", async () => {
    const { node, clock } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'before');
    const w = watch(sendSupervised(node, pid, 'job', RETRY));
    GenServer.cast(node, pid, 'after');
    await node.idle();
    expect(node.heldCount(proc)).toBe(3);
    await clock.advance(99);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    expect(w.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(2); // taken from between the two others
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:before', 'cast:after']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it("a send's abort takes its held copy back: aborted, never handled after resume", async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    const abort = new AbortController();
    const w = watch(sendSupervised(node, pid, 'job', { ack: 'handled', signal: abort.signal, onError: 'ignore' }));
    await node.idle();
    abort.abort('changed my mind');
    await node.idle();
    expect(w.value).toMatchObject({ ok: false, reason: 'aborted', attempts: 1, lastError: 'changed my mind' });
    expect(node.heldCount(node.resolve(pid)!)).toBe(0);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual([]);
    expect(node.internals().envelopes).toBe(0);
  });

  it("takes back only its own held copy: another sender's copy held under the same id is handled on resume and settles handled, once", async () => {
    const { node, clock } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const other = recording();
    node.deliverEnvelope(undefined, proc, 'other', 'same-id', other);
    const w = watch(sendSupervised(node, pid, 'mine', { ...RETRY, id: 'same-id' }));
    await node.idle();
    expect(node.heldCount(proc)).toBe(2);
    await clock.advance(100);
    expect(w.value).toMatchObject({ ok: false, id: 'same-id', reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(1);
    expect(other.outcomes).toEqual([]);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:other']);
    expect(other.outcomes).toEqual([['handled']]);
    expect(node.internals().envelopes).toBe(0);
  });

  it('held messages that are proxies (revoked, or trapping everything) run no trap as the withdrawal looks past them', async () => {
    const { node, clock } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const revocable = Proxy.revocable({}, {});
    revocable.revoke();
    let traps = 0;
    const trapping = new Proxy({}, { get: () => void traps++, has: () => (traps++, true), getPrototypeOf: () => (traps++, null) });
    node.send(pid, revocable.proxy);
    const w = watch(sendSupervised(node, pid, 'job', RETRY));
    node.send(pid, trapping);
    await node.idle();
    traps = 0;
    await clock.advance(100);
    expect(w.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(2);
    expect(traps).toBe(0);
    expect(node.internals().envelopes).toBe(0);
  });

  it('a bounded suspended server: the withdrawal frees a place (held + mailbox one fewer), which the next message takes; the order of the rest is kept', async () => {
    const { node, clock } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 3, overflow: 'reject' } });
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'a');
    const w = watch(sendSupervised(node, pid, 'job', RETRY));
    GenServer.cast(node, pid, 'b');
    await node.idle();
    GenServer.cast(node, pid, 'refused'); // full: 3 held
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['mailbox_full']);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3 });
    await clock.advance(100);
    expect(w.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(2);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 2 });
    GenServer.cast(node, pid, 'c'); // the freed place
    await node.idle();
    GenServer.cast(node, pid, 'refused again');
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['mailbox_full', 'mailbox_full']); // a withdrawal is no drop
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:a', 'cast:b', 'cast:c']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it("broadcastSupervised, ack 'handled' with a retry: the suspended target's held copy is taken back at the timeout; after resume each target handled the message once", async () => {
    const { node, clock } = clockedNode(track);
    const held = await GenServer.start(node, logger());
    const free = await GenServer.start(node, logger());
    await Sys.suspend(node, held);
    const w = watch(broadcastSupervised(node, [held, free], 'job', { ...RETRY, retries: 1 }));
    await clock.advance(100);
    expect(node.heldCount(node.resolve(held)!)).toBe(0);
    await clock.advance(10);
    await node.idle();
    expect(node.heldCount(node.resolve(held)!)).toBe(1); // the retry's copy only
    await Sys.resume(node, held);
    await node.idle();
    expect(w.value).toMatchObject({ ok: true, delivered: 2, failed: 0 });
    expect(w.value?.results.map((r) => r.outcome.attempts)).toEqual([2, 1]);
    expect(await GenServer.call(node, held, 'get')).toEqual(['info:job']);
    expect(await GenServer.call(node, free, 'get')).toEqual(['info:job']);
    expect(node.internals().envelopes).toBe(0);
  });
});

describe('held supervised messages withdrawn, attacked (review)', () => {
  const HANDLED = { ack: 'handled', timeout: 100, onError: 'ignore' } as const;

  it("during an async replay: the copy the replay took is in flight (ctx.messageId), not withdrawn at its timeout (disowned: its handler finishes, told no one); a copy still held behind it is withdrawn; the envelope count is exact at each step", async () => {
    const { node, clock } = clockedNode(track);
    const gate = deferred();
    const started = deferred();
    const ids: (string | undefined)[] = [];
    const pid = await GenServer.start(node, {
      ...logger(),
      handleInfo: async (m: string, log: string[], ctx) => {
        ids.push(ctx.messageId);
        if (m === 'slow') {
          started.resolve();
          await gate.promise;
        }
        ids.push(ctx.messageId);
        return [...log, `info:${m}`];
      },
    });
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const slow = watch(sendSupervised(node, pid, 'slow', { ...HANDLED, id: 'slow-1' }));
    const behind = watch(sendSupervised(node, pid, 'behind', { ...HANDLED, timeout: 200, id: 'behind-1' }));
    await node.idle();
    expect(node.heldCount(proc)).toBe(2);
    expect(node.internals().envelopes).toBe(2);
    await clock.advance(50);
    await Sys.resume(node, pid);
    await started.promise; // the replay runs 'slow' (its handler busy at the gate)
    expect(ids).toEqual(['slow-1']); // in flight, at the gate
    expect(proc.messageId).toBe('slow-1');
    expect(node.heldCount(proc)).toBe(1); // 'behind' still held
    await clock.advance(50); // 'slow' times out: started, so not withdrawn
    expect(slow.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(proc.messageId).toBe('slow-1');
    expect(node.heldCount(proc)).toBe(1);
    expect(node.internals().envelopes).toBe(2);
    await clock.advance(100); // 'behind' times out while held: withdrawn
    expect(behind.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(0);
    expect(node.internals().envelopes).toBe(1); // 'slow', in flight
    gate.resolve();
    await node.idle();
    expect(ids).toEqual(['slow-1', 'slow-1']);
    expect(proc.messageId).toBeUndefined();
    expect(node.internals().envelopes).toBe(0);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:slow']);
    expectNoLeaks(node);
  });

  it('a withdrawal by id alone (no listener) takes the held copy and the queued copy of that id, each settled withdrawn once; the envelope count goes to 0', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const a = recording();
    const b = recording();
    const other = recording();
    node.deliverEnvelope(undefined, proc, 'a', 'x', a);
    node.deliverEnvelope(undefined, proc, 'other', 'y', other);
    await node.idle(); // both held
    node.deliverEnvelope(undefined, proc, 'b', 'x', b); // in the mailbox (no turn yet)
    expect([node.heldCount(proc), proc.size, node.internals().envelopes]).toEqual([2, 1, 3]);
    expect(node.withdrawEnvelope(pid, 'x')).toBe(true);
    expect([node.heldCount(proc), proc.size, node.internals().envelopes]).toEqual([1, 0, 1]);
    expect(a.outcomes).toEqual([['withdrawn', undefined]]);
    expect(b.outcomes).toEqual([['withdrawn', undefined]]);
    expect(node.withdrawEnvelope(pid, 'x')).toBe(false);
    expect(node.internals().envelopes).toBe(1);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:other']);
    expect(other.outcomes).toEqual([['handled']]);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it('a bounded drop_oldest suspended server: after a withdrawal the next message takes the freed place, evicting nothing (no drop event)', async () => {
    const { node, clock } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 3, overflow: 'drop_oldest' } });
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'a');
    const w = watch(sendSupervised(node, pid, 'job', HANDLED));
    GenServer.cast(node, pid, 'b');
    await node.idle();
    await clock.advance(100);
    expect(w.value).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    expect(node.heldCount(proc)).toBe(2);
    GenServer.cast(node, pid, 'c');
    await node.idle();
    expect(dropped.events).toEqual([]);
    GenServer.cast(node, pid, 'd'); // now full: evicts the oldest held, 'a'
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.message, e.metadata.overflow])).toEqual([[expect.anything(), 'drop_oldest']]);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:b', 'cast:c', 'cast:d']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });

  it('a suspended StateMachine holds a supervised message through the same kernel queue: its timeout takes it back, the retry is handled once, after resume', async () => {
    const { node, clock } = clockedNode(track);
    const log: string[] = [];
    const pid = await StateMachine.start<'s', null, CallProtocol, string, string>(node, {
      init: () => ({ state: 's', data: null }),
      handleEvent: (ev) => {
        log.push(`${ev.type}:${String((ev as { content?: unknown }).content)}`);
        return { keepState: true };
      },
    });
    const proc = node.resolve(pid)!;
    await Sys.suspend(node, pid);
    const w = watch(sendSupervised(node, pid, 'job', { ...HANDLED, retries: 1, backoff: { initialMs: 10, jitter: 'none' } }));
    await node.idle();
    expect(node.heldCount(proc)).toBe(1);
    await clock.advance(100);
    expect(node.heldCount(proc)).toBe(0);
    await clock.advance(10);
    await node.idle();
    expect(node.heldCount(proc)).toBe(1);
    await Sys.resume(node, pid);
    await node.idle();
    expect(w.value).toMatchObject({ ok: true, attempts: 2 });
    expect(log).toEqual(['info:job']);
    expect(node.internals().envelopes).toBe(0);
    expectNoLeaks(node);
  });
});
