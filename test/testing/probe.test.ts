/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the test kit, whose probes are raw processes that send and monitor */
import { describe, expect, it } from 'vitest';
import { createNode, isDown, isExit, Pid, ReceiveTimeoutError, seededRandom, SimulatedClock } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { crasher, idler, useNodes, watch } from '../support.js';

const track = useNodes();

describe('probe', () => {
  it('is a pid that processes and the node can send to', async () => {
    const node = track();
    const p = probe<string>(node);
    const sender = node.spawn<string>((ctx) => (m) => {
      if (m === 'go') ctx.send(p, 'from a process');
    });
    node.send(p, 'from the node');
    node.send(sender, 'go');
    await node.idle();
    expect(p.messages).toEqual(['from the node', 'from a process']);
    expect(node.isAlive(p)).toBe(true);
    expect(Pid.equals(Pid.parse(Pid.format(p)), p)).toBe(true);
  });

  it('keeps every message in `messages`, in arrival order, also those taken by receive', async () => {
    const node = track();
    const p = probe(node);
    for (const m of ['a', 'b', 'c']) node.send(p, m);
    expect(await p.receive((m) => m === 'b')).toBe('b');
    expect(await p.receive()).toBe('a');
    expect(p.messages).toEqual(['a', 'b', 'c']);
  });
});

describe('probe.receive', () => {
  it('without a predicate takes the oldest message not yet taken', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, 1);
    node.send(p, 2);
    expect(await p.receive()).toBe(1);
    expect(await p.receive()).toBe(2);
  });

  it('takes the first matching message not yet taken and leaves the others', async () => {
    const node = track();
    const p = probe(node);
    for (const m of ['a1', 'b1', 'a2', 'b2']) node.send(p, m);
    await node.idle();
    const isB = (m: unknown) => typeof m === 'string' && m.startsWith('b');
    expect(await p.receive(isB)).toBe('b1');
    expect(await p.receive(isB)).toBe('b2');
    expect(await p.receive()).toBe('a1');
    expect(await p.receive()).toBe('a2');
  });

  it('waits for a matching message that has not arrived yet', async () => {
    const node = track();
    const p = probe(node);
    const later = node.spawn<string>((ctx) => (m) => {
      if (m === 'reply') ctx.send(p, 'the reply');
    });
    const received = p.receive((m) => m === 'the reply');
    node.send(p, 'something else');
    node.send(later, 'reply');
    expect(await received).toBe('the reply');
  });

  it('does not hand the same message to two receives', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, 'only one');
    expect(await p.receive((m) => m === 'only one')).toBe('only one');
    await expect(p.receive((m) => m === 'only one', { timeout: 1 })).rejects.toMatchObject({ code: 'ERR_RECEIVE_TIMEOUT' });
  });

  it('takes a message that arrives for a waiting receive, so a later receive does not get it again', async () => {
    const node = track();
    const p = probe(node);
    const waiting = p.receive((m) => m === 'once');
    node.send(p, 'once');
    expect(await waiting).toBe('once');
    await expect(p.receive((m) => m === 'once', { timeout: 1 })).rejects.toMatchObject({ code: 'ERR_RECEIVE_TIMEOUT' });
  });

  it('gives a message to the earliest of several matching waiting receives', async () => {
    const node = track();
    const p = probe(node);
    const first = p.receive((m) => typeof m === 'number');
    const second = p.receive((m) => typeof m === 'number');
    node.send(p, 1);
    node.send(p, 2);
    expect([await first, await second]).toEqual([1, 2]);
  });

  it('rejects with ERR_RECEIVE_TIMEOUT when no matching message comes in time', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, 'not it');
    await expect(p.receive((m) => m === 'never', { timeout: 0 })).rejects.toMatchObject({ code: 'ERR_RECEIVE_TIMEOUT' });
  });

  it('times out with an error naming what was expected and what came and was not taken (not the messages earlier receives took)', async () => {
    const node = track();
    const p = probe<unknown>(node);
    node.send(p, 'taken');
    node.send(p, { kind: 'other', n: 1 });
    await node.idle();
    expect(await p.receive((m) => m === 'taken')).toBe('taken');
    const error = await p.receive((m) => m === 42, { timeout: 0 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(ReceiveTimeoutError);
    expect(error).toMatchObject({
      code: 'ERR_RECEIVE_TIMEOUT',
      expected: '(m) => m === 42', // its source (as compiled)
      unmatched: [{ kind: 'other', n: 1 }],
      message: `probe ${String(p)} received no message matching (m) => m === 42 within 0 ms; 1 message received and not taken: { kind: 'other', n: 1 }`,
    });
    // a named predicate is named; nothing came
    const isPong = (m: unknown): boolean => m === 'pong';
    await p.receive((m) => typeof m === 'object');
    expect(await p.receive(isPong, { timeout: 0 }).then(() => undefined, (e: unknown) => (e as Error).message)).toBe(
      `probe ${String(p)} received no message matching isPong within 0 ms; no message received and not taken`,
    );
  });

  it('times out with an error that describes hostile messages without running their code: a revoked proxy, a cycle, a throwing getter', async () => {
    const node = track();
    const p = probe<unknown>(node);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const cycle: { self?: unknown } = {};
    cycle.self = cycle;
    const getter = Object.defineProperty({}, 'x', { enumerable: true, get: () => { throw new Error('getter ran'); } });
    for (const m of [proxy, cycle, getter]) node.send(p, m);
    await node.idle();
    const error = (await p.receive(() => false, { timeout: 0 }).then(() => undefined, (e: unknown) => e)) as ReceiveTimeoutError;
    expect(error.unmatched.length).toBe(3);
    for (const [i, m] of [proxy, cycle, getter].entries()) expect(error.unmatched[i]).toBe(m);
    expect(error.message).toBe(`probe ${String(p)} received no message matching () => false within 0 ms; 3 messages received and not taken: <Revoked Proxy>, <ref *1> { self: [Circular *1] }, { x: [Getter] }`);
  });

  it('rejects a waiting receive with ERR_PROCESS_EXITED when the probe dies, and a later one at once; messages it got before stay takeable', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, 'kept');
    await node.idle();
    const waiting = watch(p.receive((m) => m === 'never', { timeout: 2 ** 31 - 1 }));
    node.exit(p, 'kill');
    await node.idle();
    // before: the receive waited for its whole timeout (here 24 days), then said no message had come
    expect(waiting.status).toBe('rejected');
    expect(waiting.error).toMatchObject({ code: 'ERR_PROCESS_EXITED', message: `${String(p)} has exited; \`ctx.receive\` cannot run in a process that is no longer alive` });
    const later = watch(p.receive((m) => m === 'never', { timeout: 2 ** 31 - 1 }));
    await node.idle();
    expect(later.status).toBe('rejected');
    expect(later.error).toMatchObject({ code: 'ERR_PROCESS_EXITED' });
    expect(await p.receive((m) => m === 'kept', { timeout: 0 })).toBe('kept');
  });

  it('after a timeout, leaves a later matching message for the next receive', async () => {
    const node = track();
    const p = probe(node);
    await expect(p.receive((m) => m === 'late', { timeout: 0 })).rejects.toMatchObject({ code: 'ERR_RECEIVE_TIMEOUT' });
    node.send(p, 'late');
    expect(await p.receive((m) => m === 'late')).toBe('late');
  });

  it('under a SimulatedClock, times out on virtual time: a message due after the timeout never wins, whatever the machine\'s speed', async () => {
    const clock = new SimulatedClock();
    const node = track({ clock, random: seededRandom(3) });
    const p = probe(node);
    const t0 = clock.now();
    // a timer that keeps virtual time busy up to 5,000 ms, then the awaited message at 3,000 ms
    node.spawn((ctx) => {
      ctx.sendAfter(ctx.self, 'tick', 100);
      ctx.sendAfter(p, 'late', 3000);
      return (m) => {
        if (m === 'tick' && clock.now() - t0 < 5000) ctx.sendAfter(ctx.self, 'tick', 100);
      };
    });
    const error = await p.receive((m) => m === 'late', { timeout: 1000 }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'ERR_RECEIVE_TIMEOUT' });
    expect(clock.now() - t0).toBe(1000);
    // one due before its timeout is taken
    expect(await p.receive((m) => m === 'late', { timeout: 2500 })).toBe('late');
    expect(clock.now() - t0).toBe(3000);
  });

  it('refuses a bad predicate or timeout with ERR_INVALID_ARGUMENT', () => {
    const node = track();
    const p = probe(node);
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => p.receive('x' as never)).toThrow(invalid);
    expect(() => p.receive(undefined, { timeout: -1 })).toThrow(invalid);
    // past a host timer's range Node fires after 1 ms: such a guard would reject at once
    for (const timeout of [2 ** 31, Infinity, NaN]) expect(() => p.receive(undefined, { timeout })).toThrow(invalid);
  });
  it('rejects a receive whose predicate throws with that error, and the probe lives on with the message kept', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('predicate failed');
    const failing = p.receive((m) => {
      if (m === 'bad') throw boom;
      return false;
    });
    node.send(p, 'bad');
    await expect(failing).rejects.toBe(boom);
    expect(node.isAlive(p)).toBe(true);
    node.send(p, 'next');
    expect(await p.receive()).toBe('bad');
    expect(await p.receive()).toBe('next');
  });

  it('rejects at once when the predicate throws on a message already there', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, null);
    await node.idle();
    const boom = new Error('predicate failed');
    await expect(
      p.receive(() => {
        throw boom;
      }),
    ).rejects.toBe(boom);
    expect(await p.receive()).toBe(null);
  });

  it('refuses options that are not an object with ERR_INVALID_ARGUMENT', () => {
    const node = track();
    const p = probe(node);
    const invalid = expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' });
    expect(() => p.receive(undefined, null as never)).toThrow(invalid);
    expect(() => p.receive(undefined, 5 as never)).toThrow(invalid);
  });

  it('refuses a misspelt option (timeoutMs, the name Keel uses elsewhere) and options it cannot read with ERR_INVALID_ARGUMENT, where the first waited out the default 2 s and the others threw raw', () => {
    const node = track();
    const p = probe(node);
    expect(() => p.receive(undefined, { timeoutMs: 50 } as never)).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', message: expect.stringContaining('options.timeoutMs') as unknown }),
    );
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const getter = {
      get timeout(): number {
        throw new Error('getter');
      },
    };
    for (const options of [proxy, getter]) expect(() => p.receive(undefined, options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(p.messages).toEqual([]);
  });
});

describe('probe.ctx', () => {
  it('is the probe’s own context', () => {
    const node = track();
    const p = probe(node);
    expect(Pid.equals(p.ctx.self, p)).toBe(true);
  });

  it('monitors from the probe: the Down arrives at the probe', async () => {
    const node = track();
    const p = probe(node);
    const worker = idler(node);
    const ref = p.ctx.monitor(worker);
    node.exit(worker, 'shutdown');
    const down = await p.receive(isDown);
    expect(isDown(down) && down.ref === ref && Pid.equals(down.pid, worker) && down.reason).toBe('shutdown');
  });

  it('links from a probe that traps exits: the Exit arrives at the probe', async () => {
    const node = track();
    const p = probe(node);
    const crashing = node.spawn(crasher(new Error('crash')));
    p.ctx.trapExits();
    p.ctx.link(crashing);
    node.send(crashing, 'go');
    const exit = await p.receive(isExit);
    expect(isExit(exit) && exit.from !== 'node' && Pid.equals(exit.from, crashing)).toBe(true);
    expect(isExit(exit) && exit.reason instanceof Error && exit.reason.message).toBe('crash');
  });

  it('sends from the probe', async () => {
    const node = track();
    const p = probe(node);
    const echo = node.spawn<{ replyTo: Pid; text: string }>((ctx) => (m) => {
      if (!isDown(m) && !isExit(m)) ctx.send(m.replyTo, `echo ${m.text}`);
    });
    p.ctx.send(echo, { replyTo: p, text: 'hi' });
    expect(await p.receive()).toBe('echo hi');
  });

  it('a probe that traps exits still stops at node shutdown, without being killed', async () => {
    const node = createNode();
    const p = probe(node);
    p.ctx.trapExits();
    const shutdown = captureEvents(node, ['keel.node.shutdown']);
    await node.shutdown({ timeoutMs: 2000 });
    expect(node.isAlive(p)).toBe(false);
    expect(shutdown.events.map((e) => e.measurements.killed)).toEqual([0]);
  });
});
