/* eslint-disable keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
// Regressions for what a review of the kernel found: user code that throws, dies or re-enters the
// runtime at awkward moments must never freeze a node, leak a count or lose a message silently.
import { describe, expect, it, vi } from 'vitest';
import { GenServer, isExit, isKeelError, Pid } from '../../src/index.js';
import { Delivery } from '../../src/runtime/Node.js';
import type { EnvelopeListener } from '../../src/runtime/internal/Envelope.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import { deferred, fakeLogger, useNodes } from '../support.js';

const track = useNodes();

function listener(): EnvelopeListener & { outcomes: unknown[][] } {
  const outcomes: unknown[][] = [];
  return {
    outcomes,
    handled: () => outcomes.push(['handled']),
    failed: (reason, error) => outcomes.push([reason, error]),
  };
}

describe('user code that misbehaves', () => {
  it('an async init that exits in its synchronous part leaves no unhandled rejection and the node running', async () => {
    const node = track();
    const unhandled = vi.fn();
    process.on('unhandledRejection', unhandled);
    try {
      const pid = node.spawn(async (ctx) => {
        ctx.exit(new Error('no config'));
        return () => undefined;
      });
      const p = probe(node);
      node.send(p, 'still alive');
      expect(await p.receive()).toBe('still alive');
      await node.idle();
      expect(node.isAlive(pid)).toBe(false);
      await new Promise((r) => setImmediate(r));
      expect(unhandled).not.toHaveBeenCalled();
    } finally {
      process.off('unhandledRejection', unhandled);
    }
  });

  it('a logger that throws does not stop the scheduler', async () => {
    const logger = { ...fakeLogger(), error: () => { throw new Error('logger down'); } };
    const node = track({ logger });
    const crasher = node.spawn(() => () => { throw new Error('unwatched'); });
    node.send(crasher, 'go');
    await node.idle();
    const p = probe(node);
    node.send(p, 'after');
    expect(await p.receive()).toBe('after');
  });

  it('a handler returning a thenable whose then throws exits with that error and the node goes on', async () => {
    const node = track();
    const bad = new Error('then exploded');
    const pid = node.spawn(() => () => ({ then: () => { throw bad; } }) as unknown as Promise<void>);
    const p = probe(node);
    p.ctx.monitor(pid);
    node.send(pid, 'go');
    const down = await p.receive((m) => typeof m === 'object' && m !== null && 'reason' in m);
    expect((down as { reason: unknown }).reason).toBe(bad);
    expect(node.internals().busy).toBe(0);
    node.send(p, 'after');
    expect(await p.receive((m) => m === 'after')).toBe('after');
  });

  it('an async handler whose process is killed in its synchronous part leaves no busy count', async () => {
    const node = track();
    const never = deferred();
    const pid = node.spawn((ctx) => async () => {
      ctx.node.exit(ctx.self, 'kill');
      await never.promise;
    });
    node.send(pid, 'go');
    await node.idle({ timeoutMs: 1000 });
    expect(node.isAlive(pid)).toBe(false);
    expect(node.internals().busy).toBe(0);
  });
});

describe('messages in flight when their receiver dies', () => {
  it('a message being handled by an async handler is settled at once when the receiver is killed, and only once', async () => {
    const node = track();
    const gate = deferred();
    const started = deferred();
    const pid = node.spawn(() => async () => {
      started.resolve();
      await gate.promise;
    });
    const l = listener();
    expect(node.deliverEnvelope(undefined, node.resolve(pid)!, 'job', 'id-1', l)).toBe(Delivery.Enqueued);
    await started.promise;
    node.exit(pid, 'kill');
    expect(l.outcomes).toEqual([['crashed', 'killed']]);
    expect(node.internals().envelopes).toBe(0);
    gate.resolve();
    await node.idle();
    expect(l.outcomes).toHaveLength(1);
  });

  it('ctx.exit("normal") from the handler counts as handled; ctx.exit(error) as crashed with the error', async () => {
    const node = track();
    const boom = new Error('boom');
    const clean = node.spawn((ctx) => () => ctx.exit('normal'));
    const dirty = node.spawn((ctx) => () => ctx.exit(boom));
    const a = listener();
    const b = listener();
    node.deliverEnvelope(undefined, node.resolve(clean)!, 'x', 'a', a);
    node.deliverEnvelope(undefined, node.resolve(dirty)!, 'x', 'b', b);
    await node.idle();
    expect(a.outcomes).toEqual([['handled']]);
    expect(b.outcomes).toEqual([['crashed', boom]]);
    expect(node.internals().envelopes).toBe(0);
  });

  it('a dropped-message handler that kills the receiver leaves no envelope unsettled', async () => {
    const node = track();
    const gate = deferred();
    const pid = node.spawn(() => async () => gate.promise, { mailbox: { capacity: 1, overflow: 'drop_oldest' } });
    node.send(pid, 'first'); // taken by the handler, which then waits
    await node.idle({ timeoutMs: 0 }).catch(() => undefined);
    node.send(pid, 'queued');
    node.telemetry.attach('killer', ['keel.message.dropped'], () => node.exit(pid, 'kill'));
    const l = listener();
    node.deliverEnvelope(undefined, node.resolve(pid)!, 'evicts the queued one', 'e', l);
    expect(node.isAlive(pid)).toBe(false);
    expect(l.outcomes).toEqual([['down', 'killed']]);
    expect(node.internals().envelopes).toBe(0);
    gate.resolve();
  });

  it('a send to a name from a death hook does not reach the dying process', async () => {
    const node = track();
    const pid = node.spawn(() => () => undefined, { name: 'svc' });
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.onExit(pid, () => node.send('svc', 'too late'));
    node.exit(pid, 'kill');
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
  });
});

describe('boundaries between nodes and copies of pids', () => {
  it('a timer of another node cannot be cancelled from this one', async () => {
    const clock = new TestClock();
    const a = track({ clock });
    const b = track({ clock });
    const pa = probe(a);
    const pb = probe(b);
    pa.ctx.sendAfter(pa, 'a-timer', 10);
    const tb = pb.ctx.sendAfter(pb, 'b-timer', 10);
    expect(pa.ctx.cancelTimer(tb)).toBe(false);
    await clock.advance(10);
    expect(pa.messages).toEqual(['a-timer']);
    expect(pb.messages).toEqual(['b-timer']);
  });

  it('a copied pid (spread, structuredClone) still names the process and carries no process record', async () => {
    const node = track();
    const p = probe(node);
    const spread = { ...p } as Record<string | symbol, unknown>;
    expect(Object.getOwnPropertySymbols(spread)).toEqual([]);
    const cloned = structuredClone({ node: p.node, creation: p.creation, id: p.id });
    expect(Pid.is(cloned)).toBe(true);
    expect(Pid.equals(cloned, p)).toBe(true);
    node.send(cloned, 'via a copy');
    expect(await p.receive()).toBe('via a copy');
  });
});

describe('zombies and behaviours', () => {
  it('a GenServer.call from a zombie continuation fails with ERR_PROCESS_EXITED', async () => {
    const node = track();
    const server = await GenServer.start(node, { init: () => 0, handleCall: (_r: unknown, _f, s: number) => ({ reply: s, state: s }) });
    const gate = deferred();
    const result = deferred<unknown>();
    const pid = node.spawn((ctx) => async () => {
      await gate.promise;
      try {
        await GenServer.call(ctx, server, 'x');
        result.resolve('called');
      } catch (e) {
        result.resolve(e);
      }
    });
    node.send(pid, 'go');
    await node.idle({ timeoutMs: 0 }).catch(() => undefined);
    node.exit(pid, 'kill');
    gate.resolve();
    const e = await result.promise;
    expect(isKeelError(e, 'ERR_PROCESS_EXITED')).toBe(true);
  });
});

describe('node.shutdown', () => {
  it('still sends shutdown to every other process after a stubborn one used up the time', async () => {
    const node = track();
    const heard: string[] = [];
    node.spawn((ctx) => {
      ctx.trapExits();
      return (m) => {
        if (isExit(m)) heard.push('polite');
        ctx.exit('shutdown');
      };
    });
    node.spawn((ctx) => {
      ctx.trapExits();
      return (m) => {
        if (isExit(m)) heard.push('stubborn');
        // and never exits
      };
    });
    await node.idle(); // both trap exits now
    await node.shutdown({ timeoutMs: 20 });
    // reverse start order: the stubborn one is told first and uses up the time; the polite one still hears it once
    expect(heard).toEqual(['stubborn', 'polite']);
    expect(node.processes()).toEqual([]);
  });

  it('a process spawned by a death hook during the final kill does not survive the shutdown', async () => {
    const node = track();
    const stubborn = node.spawn((ctx) => {
      ctx.trapExits();
      return () => undefined;
    });
    node.onExit(stubborn, () => {
      try {
        node.spawn(() => () => undefined);
      } catch (e) {
        expect(isKeelError(e, 'ERR_NODE_STOPPED')).toBe(true);
      }
    });
    await node.shutdown({ timeoutMs: 10 });
    expect(node.processes()).toEqual([]);
  });
});

describe('keel/testing probe', () => {
  it('a probe that traps exits receives an Exit from node.exit instead of dying (outside shutdown)', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const boom = new Error('boom');
    node.exit(p, boom);
    const exit = await p.receive(isExit);
    expect(isExit(exit) && exit.reason).toBe(boom);
    expect(node.isAlive(p)).toBe(true);
  });
});

describe('logging of crashes', () => {
  it('a crash seen only by an internal death hook is still logged', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const pid = node.spawn(() => () => { throw new Error('hidden'); });
    node.onExit(pid, () => undefined);
    node.send(pid, 'go');
    await node.idle();
    expect(logger.error).toHaveBeenCalledTimes(1);
  });
});

describe('mailbox memory', () => {
  it('gives a burst-sized ring back once the mailbox is empty', async () => {
    const node = track();
    const gate = deferred();
    let handled = 0;
    const pid = node.spawn(() => async () => {
      if (handled++ === 0) await gate.promise;
    });
    for (let i = 0; i < 5000; i++) node.send(pid, i);
    const proc = node.resolve(pid)!;
    expect(proc.buf.length).toBeGreaterThanOrEqual(5000);
    gate.resolve();
    await node.idle();
    expect(handled).toBe(5000);
    expect(proc.buf.length).toBe(0);
  });
});
