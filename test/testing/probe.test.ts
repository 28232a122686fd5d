/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the test kit, whose probes are raw processes that send and monitor */
import { describe, expect, it } from 'vitest';
import { createNode, FishTimeoutError, isDown, isExit, Pid, ReceiveTimeoutError, seededRandom, SimulatedClock, UnexpectedMessageError, UnknownOptionError } from '../../src/index.js';
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

/** A node on a SimulatedClock, and the clock: a probe's windows and timeouts run on its virtual time. */
function simulated(): { node: ReturnType<typeof track>; clock: SimulatedClock; elapsed: () => number } {
  const clock = new SimulatedClock({ start: 0 });
  const node = track({ clock, random: seededRandom(5) });
  return { node, clock, elapsed: () => clock.now() };
}

describe('probe.expectNoMessage', () => {
  it('resolves when no message arrives within the window, on virtual time under a SimulatedClock (a minute passes at once)', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    await expect(p.expectNoMessage({ within: 60_000 })).resolves.toBeUndefined();
    expect(elapsed()).toBe(60_000);
    // the default window is 100 ms, as ExUnit's refute_receive and Akka's expectNoMessage
    await p.expectNoMessage();
    expect(elapsed()).toBe(60_100);
    expect(p.messages).toEqual([]);
  });

  it('resolves on real time too (a node with no virtual clock)', async () => {
    const node = track();
    const p = probe(node);
    await expect(p.expectNoMessage({ within: 0 })).resolves.toBeUndefined();
    await expect(p.expectNoMessage({ within: 1 })).resolves.toBeUndefined();
  });

  it('rejects with ERR_UNEXPECTED_MESSAGE naming a message that arrives within the window, as soon as it arrives', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    node.spawn((ctx) => {
      ctx.sendAfter(p, { kind: 'late', n: 1 }, 500);
      return () => undefined;
    });
    const error = await p.expectNoMessage({ within: 1000 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(UnexpectedMessageError);
    expect(error).toMatchObject({
      code: 'ERR_UNEXPECTED_MESSAGE',
      received: { kind: 'late', n: 1 },
      refuted: '(any message)',
      within: 1000,
      message: `probe ${String(p)} expected no message within 1000 ms, got { kind: 'late', n: 1 }`,
    });
    expect(elapsed()).toBe(500);
  });

  it('is not failed by a message due after the window', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'after', 1001);
      return () => undefined;
    });
    await p.expectNoMessage({ within: 1000 });
    expect(elapsed()).toBe(1000);
    expect(await p.receive()).toBe('after');
    expect(elapsed()).toBe(1001);
  });

  it('rejects at once for a message already received and not taken, and not for one a receive took', async () => {
    const node = track();
    const p = probe(node);
    node.send(p, 'taken');
    node.send(p, 'left');
    await node.idle();
    expect(await p.receive((m) => m === 'taken')).toBe('taken');
    await expect(p.expectNoMessage({ within: 2 ** 31 - 1 })).rejects.toMatchObject({
      code: 'ERR_UNEXPECTED_MESSAGE',
      received: 'left',
      message: `probe ${String(p)} expected no message within ${2 ** 31 - 1} ms, got 'left' (received before the wait, not taken)`,
    });
    expect(await p.receive()).toBe('left');
    await p.expectNoMessage({ within: 0 });
  });

  it('with `match`, only a matching message fails it; the others leave it waiting', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    node.send(p, 'tick 0');
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'tick 1', 100);
      ctx.sendAfter(p, 'error!', 300);
      return () => undefined;
    });
    const isError = (m: unknown): boolean => m === 'error!';
    const error = await p.expectNoMessage({ within: 1000, match: isError }).then(() => undefined, (e: unknown) => e);
    expect(error).toMatchObject({
      code: 'ERR_UNEXPECTED_MESSAGE',
      received: 'error!',
      refuted: 'isError',
      message: `probe ${String(p)} expected no message matching isError within 1000 ms, got 'error!'`,
    });
    expect(elapsed()).toBe(300);
    // nothing matching: it resolves with the ticks received
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'tick 2', 100);
      return () => undefined;
    });
    await p.expectNoMessage({ within: 1000, match: (m) => typeof m === 'string' && m.startsWith('error') && m !== 'error!' });
    expect(elapsed()).toBe(1300);
  });

  it('takes no message: those that arrived while it waited, matching or not, stay for the next receives, in order', async () => {
    const { node } = simulated();
    const p = probe(node);
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'a', 100);
      ctx.sendAfter(p, 'b', 200);
      return () => undefined;
    });
    await p.expectNoMessage({ within: 1000, match: (m) => m === 'c' });
    await expect(p.expectNoMessage({ within: 1000, match: (m) => m === 'b' })).rejects.toMatchObject({ code: 'ERR_UNEXPECTED_MESSAGE', received: 'b' });
    expect(await p.receive()).toBe('a');
    expect(await p.receive()).toBe('b');
    await p.expectNoMessage({ within: 0 });
  });

  it('does not keep a receive waiting from its message, and still sees that message arrive', async () => {
    const { node } = simulated();
    const p = probe(node);
    const waiting = p.receive((m) => m === 'x', { timeout: 5000 });
    const refuting = p.expectNoMessage({ within: 1000 });
    node.send(p, 'x');
    expect(await waiting).toBe('x');
    await expect(refuting).rejects.toMatchObject({ code: 'ERR_UNEXPECTED_MESSAGE', received: 'x' });
  });

  it('rejects with the error of a `match` that throws, at once on a message already there or when one arrives; the probe and the message stay', async () => {
    const { node } = simulated();
    const p = probe(node);
    const boom = new Error('match failed');
    const throwing = (m: unknown): boolean => {
      if (m === 'bad') throw boom;
      return false;
    };
    const waiting = p.expectNoMessage({ within: 1000, match: throwing });
    node.send(p, 'bad');
    await expect(waiting).rejects.toBe(boom);
    await expect(p.expectNoMessage({ match: throwing })).rejects.toBe(boom);
    expect(node.isAlive(p)).toBe(true);
    expect(await p.receive()).toBe('bad');
  });

  it('rejects with ERR_PROCESS_EXITED when the probe dies while it waits, and at once on a dead probe (where "no message" would hide the death)', async () => {
    const node = track();
    const p = probe(node);
    const waiting = watch(p.expectNoMessage({ within: 2 ** 31 - 1 }));
    node.exit(p, 'kill');
    await node.idle();
    expect(waiting.status).toBe('rejected');
    expect(waiting.error).toMatchObject({ code: 'ERR_PROCESS_EXITED', message: `${String(p)} has exited; \`ctx.expectNoMessage\` cannot run in a process that is no longer alive` });
    await expect(p.expectNoMessage({ within: 0 })).rejects.toMatchObject({ code: 'ERR_PROCESS_EXITED' });
  });

  it('rejects with ERR_PROCESS_EXITED when the node shuts down while it waits; a probe trapping exits sees the Exit arrive first', async () => {
    const { node } = simulated();
    const p = probe(node);
    const trapping = probe(node);
    trapping.ctx.trapExits();
    const waiting = p.expectNoMessage({ within: 60_000 }).then(() => undefined, (e: unknown) => e);
    const seeing = trapping.expectNoMessage({ within: 60_000 }).then(() => undefined, (e: unknown) => e);
    await node.shutdown({ timeoutMs: 1000 });
    expect(await waiting).toMatchObject({ code: 'ERR_PROCESS_EXITED' });
    const error = await seeing;
    expect(error).toMatchObject({ code: 'ERR_UNEXPECTED_MESSAGE' });
    expect(isExit((error as UnexpectedMessageError).received)).toBe(true);
  });

  it('refuses bad options with ERR_INVALID_ARGUMENT: a `match` that is no function, a window that is NaN, negative, infinite or past a host timer, an unknown option, options that are no object or cannot be read', () => {
    const node = track();
    const p = probe(node);
    const invalid = (argument: string) => expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', argument });
    for (const match of ['x', 1, {}, null]) expect(() => p.expectNoMessage({ match: match as never })).toThrow(invalid('match'));
    for (const within of [NaN, -1, Infinity, -Infinity, 2 ** 31, '100']) expect(() => p.expectNoMessage({ within: within as never })).toThrow(invalid('within'));
    // the unknown option error of receive's: `timeout` (receive's name) is not this window's
    let unknown: unknown;
    try {
      void p.expectNoMessage({ timeout: 50 } as never);
    } catch (e) {
      unknown = e;
    }
    expect(unknown).toBeInstanceOf(UnknownOptionError);
    expect(unknown).toMatchObject({ code: 'ERR_INVALID_ARGUMENT', argument: 'options.timeout', message: '`options.timeout`: no such option (options takes within, match), got 50' });
    expect(() => p.expectNoMessage({ withn: 50 } as never)).toThrow(expect.objectContaining({ message: expect.stringContaining('did you mean `within`?') as unknown }));
    expect(() => p.expectNoMessage(null as never)).toThrow(invalid('options'));
    expect(() => p.expectNoMessage(5 as never)).toThrow(invalid('options'));
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const getter = {
      get within(): number {
        throw new Error('getter');
      },
    };
    for (const options of [proxy, getter]) expect(() => p.expectNoMessage(options)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT' }));
    expect(p.messages).toEqual([]);
  });

  it('takes an option set to undefined as not given: the defaults', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    // (the types refuse it under exactOptionalPropertyTypes; a caller in JavaScript may pass it)
    await p.expectNoMessage({ within: undefined, match: undefined } as never);
    expect(elapsed()).toBe(100);
  });
});

describe('probe.fishForMessage', () => {
  it('skips and discards the messages its predicate refuses, those already there then those arriving, and resolves with the first it accepts', async () => {
    const { node } = simulated();
    const p = probe(node);
    node.send(p, 'tick 1');
    node.send(p, 'tick 2');
    await node.idle();
    node.spawn((ctx) => {
      ctx.sendAfter(p, 'tick 3', 100);
      ctx.sendAfter(p, 'done', 200);
      ctx.sendAfter(p, 'after', 300);
      return () => undefined;
    });
    expect(await p.fishForMessage((m) => m === 'done')).toBe('done');
    // the ticks are gone (still in `messages`); what came after stays
    expect(await p.receive()).toBe('after');
    await p.expectNoMessage({ within: 0 });
    expect(p.messages).toEqual(['tick 1', 'tick 2', 'tick 3', 'done', 'after']);
  });

  it('takes a matching message already there, leaving those after it', async () => {
    const node = track();
    const p = probe(node);
    for (const m of [1, 2, 3, 4]) node.send(p, m);
    await node.idle();
    expect(await p.fishForMessage((m) => m === 2)).toBe(2);
    expect(await p.receive()).toBe(3);
    expect(await p.receive()).toBe(4);
  });

  it('times out with ERR_RECEIVE_TIMEOUT naming how many it skipped and the last one, on virtual time under a SimulatedClock', async () => {
    const { node, elapsed } = simulated();
    const p = probe(node);
    node.send(p, { tick: 0 });
    node.spawn((ctx) => {
      for (const t of [1, 2, 3]) ctx.sendAfter(p, { tick: t }, t * 100);
      ctx.sendAfter(p, 'done', 2000);
      return () => undefined;
    });
    const isDone = (m: unknown): boolean => m === 'done';
    const error = await p.fishForMessage(isDone, { timeout: 1000 }).then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(FishTimeoutError);
    expect(error).toBeInstanceOf(ReceiveTimeoutError);
    expect(error).toMatchObject({
      code: 'ERR_RECEIVE_TIMEOUT',
      expected: 'isDone',
      skipped: 4,
      lastSkipped: { tick: 3 },
      unmatched: [],
      message: `probe ${String(p)} fished for a message matching isDone for 1000 ms and found none; skipped 4 messages, the last: { tick: 3 }`,
    });
    expect(elapsed()).toBe(1000);
    // the message due later is left for what comes next
    expect(await p.receive()).toBe('done');
  });

  it('times out naming no message skipped when none came', async () => {
    const node = track();
    const p = probe(node);
    const isX = (m: unknown): boolean => m === 'x';
    await expect(p.fishForMessage(isX, { timeout: 0 })).rejects.toMatchObject({
      code: 'ERR_RECEIVE_TIMEOUT',
      skipped: 0,
      lastSkipped: undefined,
      message: `probe ${String(p)} fished for a message matching isX for 0 ms and found none; skipped no message`,
    });
  });

  it('rejects with the error of a predicate that throws on a message already there: the ones skipped before it are gone, it and the later ones stay', async () => {
    const node = track();
    const p = probe(node);
    for (const m of ['skip', 'bad', 'later']) node.send(p, m);
    await node.idle();
    const boom = new Error('predicate failed');
    const pred = (m: unknown): boolean => {
      if (m === 'bad') throw boom;
      return false;
    };
    await expect(p.fishForMessage(pred)).rejects.toBe(boom);
    expect(await p.receive()).toBe('bad');
    expect(await p.receive()).toBe('later');
    await p.expectNoMessage({ within: 0 });
  });

  it('rejects with the error of a predicate that throws on a message arriving; the probe and that message stay', async () => {
    const { node } = simulated();
    const p = probe(node);
    const boom = new Error('predicate failed');
    const fishing = p.fishForMessage((m) => {
      if (m === 'bad') throw boom;
      return false;
    });
    node.send(p, 'skipped');
    node.send(p, 'bad');
    await expect(fishing).rejects.toBe(boom);
    expect(node.isAlive(p)).toBe(true);
    expect(await p.receive()).toBe('bad');
    await p.expectNoMessage({ within: 0 });
  });

  it('rejects with ERR_PROCESS_EXITED when the probe dies while it waits, and at once on a dead probe', async () => {
    const node = track();
    const p = probe(node);
    const waiting = watch(p.fishForMessage((m) => m === 'never', { timeout: 2 ** 31 - 1 }));
    node.exit(p, 'kill');
    await node.idle();
    expect(waiting.status).toBe('rejected');
    // the error names the operation that waited, as at once on a dead probe (not a receive)
    const message = `${String(p)} has exited; \`ctx.fishForMessage\` cannot run in a process that is no longer alive`;
    expect(waiting.error).toMatchObject({ code: 'ERR_PROCESS_EXITED', message });
    await expect(p.fishForMessage((m) => m === 'never', { timeout: 2 ** 31 - 1 })).rejects.toMatchObject({ code: 'ERR_PROCESS_EXITED', message });
  });

  it('refuses bad arguments with ERR_INVALID_ARGUMENT: a predicate that is no function, a timeout that is NaN, negative, infinite or past a host timer, an unknown option, options that are no object', () => {
    const node = track();
    const p = probe(node);
    const invalid = (argument: string) => expect.objectContaining({ code: 'ERR_INVALID_ARGUMENT', argument });
    for (const predicate of [undefined, 'x', 1, {}, null]) expect(() => p.fishForMessage(predicate as never)).toThrow(invalid('predicate'));
    const any = (): boolean => true;
    for (const timeout of [NaN, -1, Infinity, 2 ** 31, '100']) expect(() => p.fishForMessage(any, { timeout: timeout as never })).toThrow(invalid('timeout'));
    expect(() => p.fishForMessage(any, { timeoutMs: 50 } as never)).toThrow(UnknownOptionError);
    expect(() => p.fishForMessage(any, { within: 50 } as never)).toThrow(invalid('options.within'));
    expect(() => p.fishForMessage(any, null as never)).toThrow(invalid('options'));
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
