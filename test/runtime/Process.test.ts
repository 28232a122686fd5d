/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { isKeelError, Pid, ThrownValueError, type Context, type Handler } from '../../src/index.js';
import { probe, TestClock } from '../../src/testing/index.js';
import { crasher, deferred, idler, receiveDown, spawnWithContext, useNodes } from '../support.js';

const track = useNodes();

// ---- node.spawn -------------------------------------------------------------------------------

describe('node.spawn', () => {
  it('returns a Pid made of the node name, the node creation and a numeric id', () => {
    const node = track({ name: 'proc-test' });
    const pid = idler(node);
    expect(pid.node).toBe('proc-test');
    expect(pid.creation).toBe(node.creation);
    expect(Number.isSafeInteger(pid.id) && pid.id > 0).toBe(true);
    expect(String(pid)).toBe(`<proc-test.${pid.id}>`);
    expect(Pid.format(pid)).toBe(`<proc-test.${pid.id}.${node.creation}>`);
  });

  it('never reuses the id of a process that exited', () => {
    const node = track();
    const first = idler(node);
    node.exit(first, 'kill');
    const second = idler(node);
    expect(second.id).not.toBe(first.id);
    expect(Pid.equals(first, second)).toBe(false);
  });
});

// ---- init -------------------------------------------------------------------------------------

describe('init', () => {
  it('runs in the new process: its ctx.self is the pid spawn returned', async () => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn((ctx) => {
      ctx.send(p, ctx.self);
      return () => undefined;
    });
    const self = await p.receive();
    expect(Pid.equals(self as Pid, pid)).toBe(true);
  });

  it('accepts a synchronous init that returns the handler', async () => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn<string>((ctx) => (m) => {
      if (typeof m === 'string') ctx.send(p, `handled:${m}`);
    });
    node.send(pid, 'a');
    expect(await p.receive()).toBe('handled:a');
  });

  it('queues messages sent while an async init is pending and handles them after it resolves, in order', async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const pid = node.spawn<string>(async (ctx) => {
      await gate.promise;
      return (m) => {
        if (typeof m === 'string') ctx.send(p, `handled:${m}`);
      };
    });
    node.send(pid, 'a');
    node.send(pid, 'b');
    await node.settle();
    expect(node.info(pid)?.status).toBe('initializing');
    expect(node.info(pid)?.mailboxLength).toBe(2);
    expect(p.messages).toEqual([]);
    gate.resolve();
    expect(await p.receive()).toBe('handled:a');
    expect(await p.receive()).toBe('handled:b');
  });

  it.each([
    ['a synchronous init returning a number', (() => 42) as never],
    ['an async init resolving to undefined', (async () => undefined) as never],
  ])('exits the process with ERR_HANDLER_RETURNED for %s', async (_label, init) => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn(init);
    const down = await receiveDown(p, p.ctx.monitor(pid));
    expect(isKeelError(down.reason, 'ERR_HANDLER_RETURNED')).toBe(true);
    expect(node.isAlive(pid)).toBe(false);
  });
});

// ---- the handler ------------------------------------------------------------------------------

describe('handler', () => {
  it('handles one message at a time, in send order, even when it is async', async () => {
    const node = track();
    const p = probe(node);
    let active = 0;
    let maxActive = 0;
    const order: number[] = [];
    const pid = node.spawn<number>((ctx) => async (m) => {
      if (typeof m !== 'number') return;
      active++;
      maxActive = Math.max(maxActive, active);
      await Promise.resolve();
      await Promise.resolve();
      order.push(m);
      active--;
      if (order.length === 5) ctx.send(p, 'done');
    });
    for (let i = 1; i <= 5; i++) node.send(pid, i);
    await p.receive((m) => m === 'done');
    expect(maxActive).toBe(1);
    expect(order).toEqual([1, 2, 3, 4, 5]);
  });

  it('keeps the process busy while an async handler awaits: the mailbox fills and the next message waits for the promise', async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const pid = node.spawn<string>((ctx) => async (m) => {
      if (typeof m !== 'string') return;
      ctx.send(p, `start:${m}`);
      if (m === 'first') await gate.promise;
      ctx.send(p, `end:${m}`);
    });
    node.send(pid, 'first');
    node.send(pid, 'second');
    await p.receive((m) => m === 'start:first');
    node.send(pid, 'third');
    await node.settle();
    expect(node.info(pid)?.status).toBe('busy');
    expect(node.info(pid)?.mailboxLength).toBe(2);
    expect(p.messages).toEqual(['start:first']);
    gate.resolve();
    await p.receive((m) => m === 'end:third');
    expect(p.messages).toEqual(['start:first', 'end:first', 'start:second', 'end:second', 'start:third', 'end:third']);
  });

  it.each([
    ['a synchronous handler throws', new Error('boom'), crasher],
    [
      'an async handler rejects with',
      new Error('async boom'),
      (error: Error) => () => async () => {
        await Promise.resolve();
        throw error;
      },
    ],
  ])('exits the process with the Error %s', async (_label, boom, init) => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn(init(boom));
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'go');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
  });

  it.each([
    ['throws', (value: unknown) => () => {
      throw value;
    }],
    ['rejects with', (value: unknown) => () => Promise.reject(value)],
  ])('wraps a non-Error a handler %s in a ThrownValueError that keeps the value', async (_label, makeHandler) => {
    const node = track();
    const p = probe(node);
    const value = { not: 'an error' };
    const pid = node.spawn(() => makeHandler(value) as Handler<unknown>);
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'go');
    const { reason } = await receiveDown(p, ref);
    expect(reason).toBeInstanceOf(ThrownValueError);
    expect(isKeelError(reason, 'ERR_THROWN_VALUE')).toBe(true);
    expect((reason as ThrownValueError).value).toBe(value);
  });
});

// ---- the context ------------------------------------------------------------------------------

describe('Context', () => {
  it('exposes the process pid as ctx.self and its node as ctx.node', async () => {
    const node = track();
    const { pid, ctx } = await spawnWithContext(node);
    expect(Pid.equals(ctx.self, pid)).toBe(true);
    expect(ctx.node).toBe(node);
  });

  it('aborts ctx.signal with the exit reason when the process exits', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('boom');
    let signal: AbortSignal | undefined;
    const pid = node.spawn((ctx) => {
      signal = ctx.signal;
      ctx.send(p, { aborted: ctx.signal.aborted });
      return () => {
        throw boom;
      };
    });
    const ref = p.ctx.monitor(pid);
    expect(await p.receive()).toEqual({ aborted: false });
    node.send(pid, 'crash');
    await receiveDown(p, ref);
    expect(signal?.aborted).toBe(true);
    expect(signal?.reason).toBe(boom);
  });

  it('gives a ctx.signal first read after the exit that is already aborted with the exit reason', async () => {
    const node = track();
    const { pid, ctx } = await spawnWithContext(node);
    const boom = new Error('boom');
    node.exit(pid, boom);
    expect(node.isAlive(pid)).toBe(false);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toBe(boom);
  });

  it('leaves ctx.messageId undefined while handling a plain message', async () => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn((ctx) => () => {
      ctx.send(p, { messageId: ctx.messageId, handled: true });
    });
    node.send(pid, 'plain');
    expect(await p.receive()).toEqual({ messageId: undefined, handled: true });
  });

  it('ctx.send delivers a message to another process', async () => {
    const node = track();
    const p = probe(node);
    const pid = node.spawn<string>((ctx) => (m) => {
      if (typeof m === 'string') ctx.send(p, m.toUpperCase());
    });
    node.send(pid, 'hello');
    expect(await p.receive()).toBe('HELLO');
  });

  it('ctx.spawn starts an unlinked process whose crash does not kill the spawner', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('child crash');
    const parent = node.spawn((ctx) => {
      const child = ctx.spawn(crasher(boom));
      ctx.send(p, child);
      return () => undefined;
    });
    const child = (await p.receive()) as Pid;
    expect(node.info(parent)?.links).toEqual([]);
    const ref = p.ctx.monitor(child);
    node.send(child, 'crash');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect(node.isAlive(parent)).toBe(true);
  });

  it('ctx.spawnLink links the child to the spawner, so a crash in the child init kills the spawner', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('init crash');
    const gate = deferred();
    const parent = node.spawn(async (ctx) => {
      await gate.promise;
      ctx.spawnLink(() => {
        throw boom;
      });
      return () => undefined;
    });
    const ref = p.ctx.monitor(parent);
    gate.resolve();
    expect((await receiveDown(p, ref)).reason).toBe(boom);
  });

  it('ctx.sendAfter delivers the message once ms have passed on the node clock', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'tick', 100);
      return () => undefined;
    });
    await clock.advance(99);
    expect(p.messages).toEqual([]);
    await clock.advance(1);
    expect(await p.receive()).toBe('tick');
  });

  it('ctx.cancelTimer stops a pending timer and returns true', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const result = deferred<boolean>();
    node.spawn((ctx) => {
      const t = ctx.sendAfter(p, 'tick', 100);
      result.resolve(ctx.cancelTimer(t));
      ctx.sendAfter(p, 'later', 200);
      return () => undefined;
    });
    expect(await result.promise).toBe(true);
    await clock.advance(200);
    expect(await p.receive()).toBe('later');
    expect(p.messages).toEqual(['later']);
  });

  it('ctx.cancelTimer returns false once the timer has fired', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const t = p.ctx.sendAfter(p, 'tick', 10);
    await clock.advance(10);
    expect(await p.receive()).toBe('tick');
    expect(p.ctx.cancelTimer(t)).toBe(false);
  });

  it('cancels the pending timers of a process when it exits', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const started = deferred();
    const pid = node.spawn((ctx) => {
      ctx.sendAfter(p, 'tick', 100);
      started.resolve();
      return () => undefined;
    });
    await started.promise;
    expect(node.info(pid)?.timers).toBe(1);
    node.exit(pid, 'kill');
    expect(node.internals().timers).toBe(0);
    await clock.advance(100);
    expect(p.messages).toEqual([]);
  });
});

// ---- typed messages ---------------------------------------------------------------------------

describe('Pid<M>', () => {
  it('is what node.spawn<M> returns, and the handler receives M: its own messages only', () => {
    const node = track();
    const pid = node.spawn<string>((ctx) => {
      expectTypeOf(ctx).toEqualTypeOf<Context<string>>();
      expectTypeOf(ctx.self).toEqualTypeOf<Pid<string>>();
      return (m) => {
        expectTypeOf(m).toEqualTypeOf<string>();
      };
    });
    expectTypeOf(pid).toEqualTypeOf<Pid<string>>();
    expectTypeOf(pid).not.toEqualTypeOf<Pid<number>>();
  });

  it('accepts messages of type M from node.send and ctx.send, and rejects others', async () => {
    const node = track();
    const p = probe<number | string>(node);
    const numbers = node.spawn<number>((ctx) => (m) => {
      if (typeof m === 'number') ctx.send(p, m);
    });
    node.send(numbers, 1);
    // @ts-expect-error a Pid<number> does not accept a string
    node.send(numbers, 'one');
    p.ctx.send(numbers, 2);
    // @ts-expect-error a Pid<number> does not accept an object
    p.ctx.send(numbers, { n: 2 });
    const typed: Pid<number> = numbers;
    // @ts-expect-error a Pid<number> is not a Pid<string>
    const wrong: Pid<string> = numbers;
    expect(Pid.equals(typed, wrong)).toBe(true);
    expect(await p.receive()).toBe(1);
    expect(await p.receive()).toBe(2);
  });
});
