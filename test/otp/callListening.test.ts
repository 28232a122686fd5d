import { describe, expect, it } from 'vitest';
import { type From, GenServer, type GenServerSpec } from '../../src/index.js';
import { callListening, type CallListener } from '../../src/otp/internal/calls.js';
import { TestClock } from '../../src/testing/index.js';
import { deadPid, deferred, expectKeelError, exitAndWait, spawnWithContext, thrown, traceCalls, useNodes } from '../support.js';

const track = useNodes();

/** A listener that records what it is told; `told` resolves at the first word. */
function recorder(): CallListener & { log: [string, unknown][]; told: Promise<void> } {
  const first = deferred();
  const log: [string, unknown][] = [];
  return {
    log,
    told: first.promise,
    callReplied(reply) {
      log.push(['replied', reply]);
      first.resolve();
    },
    callFailed(error) {
      log.push(['failed', error]);
      first.resolve();
    },
  };
}

/** Replies with the request, except 'hold' (kept unanswered in `held`) and 'crash'. */
function server(held: From[] = []): GenServerSpec<null> {
  return {
    init: () => null,
    handleCall: (request, from, state) => {
      if (request === 'hold') {
        held.push(from);
        return { noreply: true, state };
      }
      if (request === 'crash') throw new Error('boom');
      return { reply: request, state };
    },
  };
}

/** Holds every call unanswered in `held`. */
function holder(held: From[]): GenServerSpec<null> {
  return {
    init: () => null,
    handleCall: (_request, from, state) => {
      held.push(from);
      return { noreply: true, state };
    },
  };
}

/** A listener that logs `name:replied:…` or `name:failed:<code>` to `out`. */
const log = (out: string[], name: string): CallListener => ({
  callReplied: (r) => out.push(`${name}:replied:${String(r)}`),
  callFailed: (e) => out.push(`${name}:failed:${(e as { code?: string }).code ?? String(e)}`),
});

describe('callListening (the listener form of GenServer.call, for Keel components)', () => {
  it('tells callReplied once, in a microtask after the reply, never synchronously; a second reply does nothing', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, server(held));
    const { ctx } = await spawnWithContext(node);
    const l = recorder();
    callListening(ctx, pid, 'hold', 5000, l);
    await node.idle();
    expect(held).toHaveLength(1);
    GenServer.reply(held[0]!, 'first');
    expect(l.log).toEqual([]); // not within the reply
    GenServer.reply(held[0]!, 'second');
    await l.told;
    expect(l.log).toEqual([['replied', 'first']]);
    await node.idle();
    expect(l.log).toHaveLength(1);
  });

  it('tells listeners in the order their calls settled', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, server(held));
    const order: string[] = [];
    const listener = (name: string): CallListener => ({ callReplied: (r) => order.push(`${name}:${String(r)}`), callFailed: () => order.push(`${name}:failed`) });
    for (const name of ['a', 'b', 'c']) callListening(node, pid, 'hold', 5000, listener(name));
    await node.idle();
    GenServer.reply(held[2]!, 3);
    GenServer.reply(held[0]!, 1);
    GenServer.reply(held[1]!, 2);
    await node.idle();
    expect(order).toEqual(['c:3', 'a:1', 'b:2']);
  });

  it('a reply that is a promise is told as GenServer.call settles with it: its value, its rejection as the failure', async () => {
    const node = track();
    const boom = new Error('rejected reply');
    const pid = await GenServer.start(node, {
      init: () => null,
      handleCall: (request: 'ok' | 'rejects', _from, state) => ({ reply: request === 'ok' ? Promise.resolve(42) : Promise.reject(boom), state }),
    });
    const replied = recorder();
    callListening(node, pid, 'ok', 5000, replied);
    await replied.told;
    expect(replied.log).toEqual([['replied', 42]]);
    const failed = recorder();
    callListening(node, pid, 'rejects', 5000, failed);
    await failed.told;
    expect(failed.log).toEqual([['failed', boom]]);
  });

  it('fails with ERR_NOPROC for a dead pid or a name nobody holds, in a microtask', async () => {
    const node = track();
    for (const target of [deadPid(node), 'nobody']) {
      const l = recorder();
      callListening(node, target, 'x', 5000, l);
      expect(l.log).toEqual([]);
      await l.told;
      expect(l.log).toHaveLength(1);
      expect(l.log[0]![0]).toBe('failed');
      expectKeelError(l.log[0]![1], 'ERR_NOPROC');
    }
  });

  it('fails with ERR_DEADLOCK for a call to the calling process itself', async () => {
    const node = track();
    const { ctx } = await spawnWithContext(node);
    const l = recorder();
    callListening(ctx, ctx.self, 'x', 5000, l);
    await l.told;
    expectKeelError(l.log[0]![1], 'ERR_DEADLOCK');
  });

  it('fails with ERR_CALL_EXIT when the server crashes handling it', async () => {
    const node = track();
    const pid = await GenServer.start(node, server());
    const l = recorder();
    callListening(node, pid, 'crash', 5000, l);
    await l.told;
    expect(l.log).toHaveLength(1);
    expectKeelError(l.log[0]![1], 'ERR_CALL_EXIT');
    expect((l.log[0]![1] as { stage?: string }).stage).toBe('handling');
  });

  it('fails with ERR_CALL_TIMEOUT after the timeout on the node clock, not a millisecond before; a late reply is discarded', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const held: From[] = [];
    const pid = await GenServer.start(node, server(held));
    const l = recorder();
    callListening(node, pid, 'hold', 100, l);
    await clock.advance(99);
    expect(l.log).toEqual([]);
    await clock.advance(1);
    await l.told;
    expect(l.log).toHaveLength(1);
    expectKeelError(l.log[0]![1], 'ERR_CALL_TIMEOUT', '100 ms');
    GenServer.reply(held[0]!, 'late');
    await node.idle();
    expect(l.log).toHaveLength(1);
    expect(node.internals().timers).toBe(0);
  });

  it('releases the call (no leak) when the calling process dies first, telling the listener', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, server(held));
    const { pid: caller, ctx } = await spawnWithContext(node);
    const l = recorder();
    callListening(ctx, pid, 'hold', 5000, l);
    await node.idle();
    await exitAndWait(node, caller, 'kill');
    await l.told;
    expectKeelError(l.log[0]![1], 'ERR_CALL_EXIT', 'the caller exited');
    GenServer.reply(held[0]!, 'late');
    await node.idle();
    expect(l.log).toHaveLength(1);
  });

  it('throws ERR_INVALID_ARGUMENT for a bad timeout or a bad target, telling the listener nothing', async () => {
    const node = track();
    const pid = await GenServer.start(node, server());
    const l = recorder();
    for (const timeout of [Number.NaN, -1, '5' as unknown as number]) expectKeelError(thrown(() => callListening(node, pid, 'x', timeout, l)), 'ERR_INVALID_ARGUMENT', 'timeout');
    expectKeelError(thrown(() => callListening(node, '', 'x', 5000, l)), 'ERR_INVALID_ARGUMENT');
    expectKeelError(thrown(() => callListening({} as never, pid, 'x', 5000, l)), 'ERR_INVALID_ARGUMENT', 'from');
    await node.idle();
    expect(l.log).toEqual([]);
    expect(node.info(pid)?.mailboxLength).toBe(0);
  });

  it("is traced on tracingChannel('keel.call') as GenServer.call is, and still tells its listener", async () => {
    const node = track();
    const pid = await GenServer.start(node, server());
    const { seen, unsubscribe } = traceCalls();
    const replied = recorder();
    const failed = recorder();
    try {
      callListening(node, pid, 21, 5000, replied);
      await replied.told;
      callListening(node, 'nobody', 1, 5000, failed);
      await failed.told;
    } finally {
      unsubscribe();
    }
    expect(replied.log).toEqual([['replied', 21]]);
    expect(failed.log).toHaveLength(1);
    expectKeelError(failed.log[0]![1], 'ERR_NOPROC');
    expect(seen).toEqual(['start 21', 'end', 'asyncStart 21', 'asyncEnd', 'start 1', 'end', 'error ERR_NOPROC', 'asyncStart undefined', 'asyncEnd']);
  });
});

describe('callListening: told exactly once when its reply races a death, a deadline or a shutdown', () => {
  it('the server dying after its reply was queued for the listener: the reply is told, once, no failure after it', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    callListening(node, pid, 'x', 5000, log(out, 'a'));
    await node.idle();
    GenServer.reply(held[0]!, 1);
    node.exit(pid, 'kill'); // in the same stretch, before the listener's microtask
    await node.idle();
    expect(out).toEqual(['a:replied:1']);
  });

  it('the deadline and a reply in the same turn: told once, whichever came first', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    callListening(node, pid, 'x', 100, log(out, 'a'));
    await node.idle();
    await clock.advance(100);
    GenServer.reply(held[0]!, 'late');
    await node.idle();
    expect(out).toEqual(['a:failed:ERR_CALL_TIMEOUT']);
  });

  it('a batch queued when the node shuts down is told, each listener once', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    for (const name of ['a', 'b', 'c']) callListening(node, pid, name, 5000, log(out, name));
    await node.idle();
    GenServer.reply(held[0]!, 1);
    const stopped = node.shutdown();
    await stopped;
    await Promise.resolve();
    expect(out.sort()).toEqual(['a:replied:1', 'b:failed:ERR_NOPROC', 'c:failed:ERR_NOPROC']);
  });

  it('a call made from inside a listener that fails at once is told too, exactly once', async () => {
    const node = track();
    const out: string[] = [];
    const dead = deadPid(node);
    callListening(node, dead, 'x', 5000, {
      callReplied: () => out.push('outer:replied'),
      callFailed: () => {
        out.push('outer:failed');
        callListening(node, dead, 'y', 5000, log(out, 'inner'));
      },
    });
    await node.idle();
    expect(out).toEqual(['outer:failed', 'inner:failed:ERR_NOPROC']);
  });
});
