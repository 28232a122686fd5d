// Regressions for what a review of the OTP layer and of delivery found.
import { describe, expect, it } from 'vitest';
import { GenServer, isKeelError, sendSupervised, Supervisor, Task } from '../../src/index.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, useNodes } from '../support.js';

const track = useNodes();

describe('a dying process and its exit watchers', () => {
  it('fails every pending call at once even when an abort listener settles one of them during the death', async () => {
    const node = track({ clock: new TestClock() });
    const slow = await GenServer.start(node, { init: () => 0, handleCall: (_r: unknown, _f, s: number) => ({ noreply: true as const, state: s }) });
    // p calls slow with its own ctx.signal: p's death aborts that call from inside p's death
    const p = await GenServer.start(node, {
      init: () => 0,
      handleCall: async (_r: unknown, _f, s: number, ctx) => {
        await GenServer.call(ctx, slow, 'hold', { signal: ctx.signal, timeout: Infinity }).catch(() => undefined);
        return { reply: s, state: s };
      },
    });
    const first = GenServer.call(node, p, 'a', { timeout: Infinity }).catch((e: unknown) => e);
    const second = GenServer.call(node, p, 'b', { timeout: Infinity }).catch((e: unknown) => e);
    await node.settle();
    node.exit(p, 'kill');
    expect(isKeelError(await first, 'ERR_CALL_EXIT')).toBe(true);
    expect(isKeelError(await second, 'ERR_CALL_EXIT')).toBe(true);
  });
});

describe('Supervisor stopping a child', () => {
  it('still kills a child that ignores its shutdown when the supervisor is killed meanwhile (the kill timer is the node\'s)', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    let stubborn: unknown;
    const mid = await Supervisor.start(node, [
      {
        id: 'stubborn',
        shutdown: 10_000,
        start: (ctx) => {
          const pid = ctx.spawnLink((c) => {
            c.trapExits();
            return () => undefined; // ignores its shutdown
          });
          stubborn = pid;
          return pid;
        },
      },
    ]);
    const stopping = Supervisor.terminateChild(node, mid, 'stubborn').catch((e: unknown) => e);
    await node.settle();
    node.exit(mid, 'kill');
    await node.idle();
    expect(node.isAlive(stubborn as never)).toBe(true); // it traps exits and ignores the 'killed' signal
    await clock.advance(10_000);
    expect(node.isAlive(stubborn as never)).toBe(false);
    expect(isKeelError(await stopping, 'ERR_CALL_EXIT')).toBe(true);
  });
});

describe('GenServer after its death', () => {
  it('runs no terminate for a late failure of a server that was killed (it did not trap exits)', async () => {
    const node = track();
    const terminated: unknown[] = [];
    const gate = deferred();
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCast: async (_r: 'go', _s: number) => {
        await gate.promise;
        throw new Error('late');
      },
      terminate: (reason) => {
        terminated.push(reason);
      },
    });
    GenServer.cast(node, pid, 'go');
    await node.settle();
    node.exit(pid, 'kill');
    gate.resolve();
    await node.idle();
    expect(terminated).toEqual([]);
  });

  it('rejects GenServer.stop of itself with ERR_DEADLOCK', async () => {
    const node = track();
    const seen = deferred<unknown>();
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCast: (_r: 'stop', s: number, ctx) => {
        GenServer.stop(ctx, ctx.self).then(() => seen.resolve('stopped'), (e: unknown) => seen.resolve(e));
        return s;
      },
    });
    GenServer.cast(node, pid, 'stop');
    expect(isKeelError(await seen.promise, 'ERR_DEADLOCK')).toBe(true);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('fails a call at once with ERR_MAILBOX_FULL when a drop_oldest mailbox evicts it', async () => {
    const node = track();
    const gate = deferred();
    const server = node.spawn(() => async () => gate.promise, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    node.send(server, 'busy');
    await node.settle();
    const call = GenServer.call(node, server, 'evicted', { timeout: Infinity }).catch((e: unknown) => e);
    node.send(server, 'newer');
    expect(isKeelError(await call, 'ERR_MAILBOX_FULL')).toBe(true);
    gate.resolve();
  });
});

describe('Task.asyncStream and timeouts', () => {
  it('stops a task whose await timed out, so that its later crash cannot reach the caller', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const hang = deferred<number>();
    const result = (async () => {
      for await (const v of Task.asyncStream(p.ctx, [1], () => hang.promise, { timeout: 100 })) return v;
      return undefined;
    })().catch((e: unknown) => e);
    await clock.advance(100);
    expect(isKeelError(await result, 'ERR_TASK_TIMEOUT')).toBe(true);
    await node.idle();
    expect(node.processes()).toEqual([p]);
    hang.reject(new Error('too late'));
    await node.idle();
    expect(node.isAlive(p)).toBe(true);
  });
});

describe('supervised sends sharing a message id', () => {
  it("withdraws only its own copy on a timeout: another send with the same id still completes", async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const gate = deferred();
    let handled = 0;
    const receiver = node.spawn(() => async (m) => {
      if (m === 'block') await gate.promise;
      else handled++;
    });
    node.send(receiver, 'block');
    await node.settle();
    const short = sendSupervised(node, receiver, 'x', { ack: 'handled', id: 'order-42', timeout: 100, onError: 'ignore' });
    const long = sendSupervised(node, receiver, 'x', { ack: 'handled', id: 'order-42', timeout: 10_000, onError: 'ignore' });
    await clock.advance(100);
    expect(await short).toMatchObject({ ok: false, reason: 'timeout' });
    gate.resolve();
    expect(await long).toMatchObject({ ok: true });
    expect(handled).toBe(1);
  });

  it('a supervised send from a process that has died is aborted without delivery', async () => {
    const node = track();
    const p = probe(node);
    const events = captureEvents(node, ['keel.message.']);
    const sender = node.spawn(() => async () => undefined);
    await node.idle();
    const ctx = node.resolve(sender)!;
    node.exit(sender, 'kill');
    let error: unknown;
    try {
      await sendSupervised(ctx, p, 'x');
    } catch (e) {
      error = e;
    }
    expect(isKeelError(error, 'ERR_PROCESS_EXITED')).toBe(true);
    expect(p.messages).toEqual([]);
    expect(events.events).toEqual([]);
  });
});
