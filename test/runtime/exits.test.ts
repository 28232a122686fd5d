/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { format } from 'node:util';
import { describe, expect, it } from 'vitest';
import { formatReason, InvalidArgumentError, isDown, isExit, isKeelError, Pid, type Context, type Exit, type ExitReason, type Node } from '../../src/index.js';
import { captureEvents, probe, TestClock, type Probe } from '../../src/testing/index.js';
import { crasher, deferred, fakeLogger, idleInit, idler, isForwarded, receiveDown, spawnWithContext, useNodes } from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

function isExitFrom(msg: unknown, from: Pid | 'node'): msg is Exit {
  return isExit(msg) && (from === 'node' ? msg.from === 'node' : msg.from !== 'node' && Pid.equals(msg.from, from));
}

/** Waits for an Exit from `from` received by probe `p` itself. */
async function exitFrom(p: Probe, from: Pid | 'node'): Promise<Exit> {
  const m = await p.receive((msg) => isExitFrom(msg, from));
  if (!isExit(m)) throw new Error('expected an Exit');
  return m;
}

/** Waits for an Exit from `from` that a forwarder passed on to probe `p`. */
async function forwardedExitFrom(p: Probe, from: Pid | 'node'): Promise<Exit> {
  const m = await p.receive((msg) => isForwarded(msg) && isExitFrom(msg.forwarded, from));
  if (!isForwarded(m) || !isExit(m.forwarded)) throw new Error('expected a forwarded Exit');
  return m.forwarded;
}

/**
 * A process that forwards every message (Exits included) to `to` as `{ forwarded }`, trapping
 * exits when asked; it still obeys an exit signal from the node, after forwarding it.
 */
function forwarder(node: Node, to: Pid, options: { trap: boolean }): Promise<{ pid: Pid; ctx: Context }> {
  return spawnWithContext(node, (ctx) => {
    if (options.trap) ctx.trapExits();
    return (m) => {
      ctx.send(to, { forwarded: m });
      if (isExit(m) && m.from === 'node') ctx.exit(m.reason);
    };
  });
}

// ---- links ------------------------------------------------------------------------------------

describe('links', () => {
  it.each([
    ['the parent', 'its linked child', 'child'],
    ['the linked child', 'the parent', 'parent'],
  ] as const)('kill %s with the same reason when %s crashes', async (_victim, _crashing, crashing) => {
    const node = track();
    const p = probe(node);
    const boom = new Error(`${crashing} crash`);
    const { pid: parent, ctx } = await spawnWithContext(node, crashing === 'parent' ? crasher(boom) : idleInit);
    const child = ctx.spawnLink(crashing === 'child' ? crasher(boom) : idleInit);
    const [crashed, victim] = crashing === 'child' ? [child, parent] : [parent, child];
    const ref = p.ctx.monitor(victim);
    node.send(crashed, 'crash');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
  });

  it('propagate a { shutdown } exit to a linked process that does not trap exits', async () => {
    const node = track();
    const p = probe(node);
    const { pid: a, ctx } = await spawnWithContext(node);
    const b = ctx.spawnLink(idleInit);
    const ref = p.ctx.monitor(b);
    node.exit(a, { shutdown: 'done' });
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'done' });
  });

  it('turn the exit of a linked process into an Exit { from, reason } message for a process that traps exits', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('boom');
    p.ctx.trapExits();
    const child = p.ctx.spawnLink(crasher(boom));
    node.send(child, 'crash');
    const exit = await exitFrom(p, child);
    expect(exit.reason).toBe(boom);
    expect(node.isAlive(p)).toBe(true);
  });

  it('deliver Exit with reason normal to a trapping process when a linked process exits normally', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const child = p.ctx.spawnLink((ctx) => () => ctx.exit('normal'));
    node.send(child, 'stop');
    expect((await exitFrom(p, child)).reason).toBe('normal');
  });

  it('do not kill a linked process that does not trap exits when the other exits normally', async () => {
    const node = track();
    const p = probe(node);
    const { pid: parent, ctx } = await spawnWithContext(node, (c) => (m) => c.send(p, m));
    const child = ctx.spawnLink((c) => () => c.exit('normal'));
    const ref = p.ctx.monitor(child);
    node.send(child, 'stop');
    expect((await receiveDown(p, ref)).reason).toBe('normal');
    expect(node.isAlive(parent)).toBe(true);
    node.send(parent, 'still here');
    expect(await p.receive((m) => m === 'still here')).toBe('still here');
  });

  it('stop propagating exits once ctx.unlink removed them', async () => {
    const node = track();
    const p = probe(node);
    const { pid: parent, ctx } = await spawnWithContext(node);
    const child = ctx.spawnLink(crasher(new Error('after unlink')));
    ctx.unlink(child);
    expect(node.info(child)?.links).toEqual([]);
    const ref = p.ctx.monitor(child);
    node.send(child, 'crash');
    await receiveDown(p, ref);
    expect(node.isAlive(parent)).toBe(true);
  });

  it('send a noproc exit signal to a process that links to a dead pid', async () => {
    const node = track();
    const p = probe(node);
    const dead = idler(node);
    node.exit(dead, 'kill');
    p.ctx.trapExits();
    p.ctx.link(dead);
    expect((await exitFrom(p, dead)).reason).toBe('noproc');
  });

  it.each(['spawn', 'spawnLink'] as const)('refuse ctx.%s whose options kill the parent while they are read: no child left unlinked behind a dead parent', async (operation) => {
    const node = track();
    const { pid: parent, ctx } = await spawnWithContext(node);
    const before = node.processes();
    const options = {
      get mailbox() {
        node.exit(parent, 'kill');
        return { capacity: 10, overflow: 'reject' as const };
      },
    };
    let thrown: unknown;
    try {
      ctx[operation](idleInit, options);
    } catch (e) {
      thrown = e;
    }
    expect(isKeelError(thrown, 'ERR_PROCESS_EXITED')).toBe(true);
    expect(node.isAlive(parent)).toBe(false);
    expect(node.processes()).toEqual(before.filter((pid) => !Pid.equals(pid, parent)));
  });

  it("ignore node.exit(pid, 'normal') in a process that does not trap exits", () => {
    const node = track();
    const pid = idler(node);
    node.exit(pid, 'normal');
    expect(node.isAlive(pid)).toBe(true);
  });

  it("mark an exit signal sent by the node itself with from: 'node'", async () => {
    const node = track();
    const p = probe(node);
    const { pid } = await forwarder(node, p, { trap: true });
    node.exit(pid, 'shutdown');
    const exit = await forwardedExitFrom(p, 'node');
    expect(exit.reason).toBe('shutdown');
  });
});

// ---- 'kill' -----------------------------------------------------------------------------------

describe("exit with 'kill'", () => {
  it.each<[string, (node: Node, p: Probe, victim: Pid) => void]>([
    ['ctx.exit', (_node, p, victim) => p.ctx.exit(victim, 'kill')],
    ['node.exit', (node, _p, victim) => node.exit(victim, 'kill')],
  ])("%s(pid, 'kill') kills a process that traps exits, with reason 'killed'", async (_label, kill) => {
    const node = track();
    const p = probe(node);
    const { pid: victim } = await forwarder(node, p, { trap: true });
    const ref = p.ctx.monitor(victim);
    kill(node, p, victim);
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(p.messages.some(isForwarded)).toBe(false);
  });

  it("makes processes linked to the killed one see 'killed', not 'kill'", async () => {
    const node = track();
    const p = probe(node);
    const { pid: victim, ctx } = await spawnWithContext(node);
    const { pid: trapper } = await forwarder(node, p, { trap: true });
    ctx.link(trapper);
    const plain = ctx.spawnLink(idleInit);
    const ref = p.ctx.monitor(plain);
    node.exit(victim, 'kill');
    expect((await forwardedExitFrom(p, victim)).reason).toBe('killed');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(node.isAlive(trapper)).toBe(true);
  });
});

// ---- ctx.exit(reason) -------------------------------------------------------------------------

describe('ctx.exit(reason)', () => {
  it('completes synchronously: Downs queued, death hooks run and the process dead when it returns', async () => {
    const node = track();
    const p = probe(node);
    const { pid, ctx } = await spawnWithContext(node);
    p.ctx.monitor(pid);
    const hookReasons: ExitReason[] = [];
    node.onExit(pid, (reason) => hookReasons.push(reason));
    const boom = new Error('boom');
    ctx.exit(boom);
    expect(node.isAlive(pid)).toBe(false);
    expect(hookReasons).toEqual([boom]);
    expect(node.info(p)?.mailboxLength).toBe(1);
    const down = await p.receive(isDown);
    expect(isDown(down) && down.reason).toBe(boom);
  });

  it('just returns when called outside any handler', async () => {
    const node = track();
    const { pid, ctx } = await spawnWithContext(node);
    let outcome = 'not called';
    try {
      ctx.exit('normal');
      outcome = 'returned';
    } catch (e) {
      outcome = `threw ${String(e)}`;
    }
    expect(outcome).toBe('returned');
    expect(node.isAlive(pid)).toBe(false);
  });

  it("just returns when called from a promise continuation of the process's own handler", async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const outcome = deferred<string>();
    const boom = new Error('late exit');
    const pid = node.spawn((ctx) => async () => {
      await gate.promise;
      try {
        ctx.exit(boom);
        outcome.resolve('returned');
      } catch (e) {
        outcome.resolve(`threw ${String(e)}`);
      }
    });
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'go');
    gate.resolve();
    expect(await outcome.promise).toBe('returned');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
  });

  it("just returns when called with a captured context from another process's handler", async () => {
    const node = track();
    const p = probe(node);
    const { pid: victim, ctx: victimCtx } = await spawnWithContext(node);
    const boom = new Error('exited by another');
    const ref = p.ctx.monitor(victim);
    const other = node.spawn((ctx) => () => {
      victimCtx.exit(boom);
      ctx.send(p, 'after');
    });
    node.send(other, 'go');
    expect(await p.receive((m) => m === 'after')).toBe('after');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect(node.isAlive(other)).toBe(true);
  });

  it('stops the running handler: code after it does not run, nor do queued messages', async () => {
    const node = track();
    const p = probe(node);
    const after: unknown[] = [];
    const handled: unknown[] = [];
    const pid = node.spawn((ctx) => (m) => {
      handled.push(m);
      ctx.exit('normal');
      after.push(m);
    });
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'first');
    node.send(pid, 'second');
    expect((await receiveDown(p, ref)).reason).toBe('normal');
    expect(handled).toEqual(['first']);
    expect(after).toEqual([]);
  });

  it('stops an async handler when called before its first await, as a clean exit', async () => {
    const node = track();
    const p = probe(node);
    const after: unknown[] = [];
    const pid = node.spawn((ctx) => async (m) => {
      ctx.exit({ shutdown: 'done' });
      after.push(m);
      await Promise.resolve();
    });
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'first');
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'done' });
    await node.idle();
    expect(after).toEqual([]);
    expect(node.internals().busy).toBe(0);
  });
});

// ---- zombies ----------------------------------------------------------------------------------

describe('a process killed while its async handler awaits', () => {
  /**
   * Spawns a worker whose handler, on any message, signals `started`, awaits `gate`, then runs
   * `continuation` with the worker's context and reports what it returned or threw on `done`.
   */
  function zombieWorker(node: Node, continuation: (ctx: Context) => unknown = () => undefined) {
    const started = deferred();
    const gate = deferred();
    const done = deferred<{ ok: true; value: unknown } | { ok: false; error: unknown }>();
    let resumed = false;
    const pid = node.spawn((ctx) => async () => {
      started.resolve();
      await gate.promise;
      resumed = true;
      try {
        const value = continuation(ctx);
        done.resolve({ ok: true, value });
      } catch (error) {
        done.resolve({ ok: false, error });
        throw error;
      }
    });
    node.send(pid, 'go');
    return { pid, started: started.promise, resume: () => gate.resolve(), done: done.promise, resumed: () => resumed };
  }

  it('is dead at once: Downs and Exits are sent before the await resumes', async () => {
    const node = track();
    const p = probe(node);
    const w = zombieWorker(node);
    p.ctx.trapExits();
    p.ctx.link(w.pid);
    p.ctx.monitor(w.pid);
    await w.started;
    node.exit(w.pid, 'kill');
    expect(node.isAlive(w.pid)).toBe(false);
    expect(node.info(p)?.mailboxLength).toBe(2);
    expect(w.resumed()).toBe(false);
    expect((await exitFrom(p, w.pid)).reason).toBe('killed');
    const down = await p.receive(isDown);
    expect(isDown(down) && down.reason).toBe('killed');
    expect(w.resumed()).toBe(false);
    w.resume();
    await w.done;
  });

  it.each<[string, (ctx: Context, p: Pid) => unknown]>([
    ['send', (ctx, p) => ctx.send(p, 'late')],
    ['monitor', (ctx, p) => ctx.monitor(p)],
    ['link', (ctx, p) => ctx.link(p)],
    ['unlink', (ctx, p) => ctx.unlink(p)],
    ['trapExits', (ctx) => ctx.trapExits()],
    ['exit', (ctx) => ctx.exit('normal')],
    ['sendAfter', (ctx, p) => ctx.sendAfter(p, 'late', 10)],
  ])('drops ctx.%s in the resumed continuation with a keel.process.zombie_call event', async (operation, call) => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const events = captureEvents(node, ['keel.process.zombie_call']);
    const w = zombieWorker(node, (ctx) => call(ctx, p));
    await w.started;
    node.exit(w.pid, 'kill');
    w.resume();
    expect((await w.done).ok).toBe(true);
    await clock.advance(10);
    await node.idle();
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid: w.pid, operation }]);
    expect(p.messages).toEqual([]);
    expect(node.info(p)?.links).toEqual([]);
    expect(node.info(p)?.monitoredBy).toEqual([]);
  });

  it.each(['spawn', 'spawnLink'] as const)('makes ctx.%s in the resumed continuation throw ERR_PROCESS_EXITED', async (operation) => {
    const node = track();
    const events = captureEvents(node, ['keel.process.zombie_call']);
    const before = node.processes().length;
    const w = zombieWorker(node, (ctx) => ctx[operation](idleInit));
    await w.started;
    node.exit(w.pid, 'kill');
    w.resume();
    const result = await w.done;
    expect(result.ok).toBe(false);
    expect(!result.ok && isKeelError(result.error, 'ERR_PROCESS_EXITED')).toBe(true);
    expect(node.processes().length).toBe(before);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid: w.pid, operation }]);
  });

  it('swallows the late rejection of the continuation: no second exit event, no log', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const w = zombieWorker(node, () => {
      throw new Error('late failure');
    });
    await w.started;
    node.exit(w.pid, 'kill');
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['killed']);
    // killed by someone else's exit signal: an event, no crash report (see 'crash reports' below)
    expect(logger.errors).toHaveLength(0);
    w.resume();
    expect((await w.done).ok).toBe(false);
    await node.idle();
    expect(events.events.map((e) => e.metadata.reason)).toEqual(['killed']);
    expect(logger.errors).toHaveLength(0);
  });

  it('finds ctx.signal already aborted with the exit reason when the continuation resumes', async () => {
    const node = track();
    const p = probe(node);
    const w = zombieWorker(node, (ctx) => ({ aborted: ctx.signal.aborted, reason: ctx.signal.reason as unknown }));
    p.ctx.monitor(w.pid);
    await w.started;
    node.exit(w.pid, 'kill');
    w.resume();
    expect(await w.done).toEqual({ ok: true, value: { aborted: true, reason: 'killed' } });
  });

  it('discards the continuation so that the process does not handle its queued messages', async () => {
    const node = track();
    const p = probe(node);
    let handled = 0;
    const gate = deferred();
    const pid = node.spawn(() => async () => {
      handled++;
      await gate.promise;
    });
    node.send(pid, 'first');
    node.send(pid, 'second');
    await node.settle();
    expect(handled).toBe(1);
    node.exit(pid, 'kill');
    gate.resolve();
    await node.idle();
    expect(handled).toBe(1);
    expect(p.messages).toEqual([]);
  });
});

describe('a busy process', () => {
  /**
   * Spawns a worker linked to an idle partner that, on any message, signals `busy` and awaits
   * `release()`. When it traps exits, it forwards each Exit to `p` as `{ forwarded }` (and still
   * obeys one from the node).
   */
  function busyLinkedWorker(node: Node, p: Pid, options: { trap: boolean }) {
    const gate = deferred();
    const busy = deferred();
    let partner: Pid | undefined;
    const pid = node.spawn((ctx) => {
      if (options.trap) ctx.trapExits();
      partner = ctx.spawnLink(idleInit);
      return async (m) => {
        if (isExit(m)) {
          ctx.send(p, { forwarded: m });
          if (m.from === 'node') ctx.exit(m.reason);
          return;
        }
        busy.resolve();
        await gate.promise;
      };
    });
    return { pid, partner: () => partner!, busy: busy.promise, release: () => gate.resolve() };
  }

  it('that does not trap exits dies at once on an exit signal from a linked process', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('partner crash');
    const worker = busyLinkedWorker(node, p, { trap: false });
    const ref = p.ctx.monitor(worker.pid);
    node.send(worker.pid, 'go');
    await worker.busy;
    expect(node.info(worker.pid)?.status).toBe('busy');
    node.exit(worker.partner(), boom);
    expect(node.isAlive(worker.pid)).toBe(false);
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    worker.release();
  });

  it('that traps exits stays alive and gets the Exit queued behind the awaited handler', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('partner crash');
    const worker = busyLinkedWorker(node, p, { trap: true });
    node.send(worker.pid, 'go');
    await worker.busy;
    node.exit(worker.partner(), boom);
    expect(node.isAlive(worker.pid)).toBe(true);
    expect(node.info(worker.pid)?.mailboxLength).toBe(1);
    worker.release();
    expect((await forwardedExitFrom(p, worker.partner())).reason).toBe(boom);
  });
});

// ---- long link chains -------------------------------------------------------------------------

describe('link chains', () => {
  it('let a chain of 10,000 linked processes die without a stack overflow when one end crashes', async () => {
    const node = track();
    const p = probe(node);
    const boom = new Error('head crash');
    const head = node.spawn(crasher(boom));
    let prev: Pid = head;
    for (let i = 1; i < 10_000; i++) {
      const link: Pid = prev;
      prev = node.spawn((ctx) => {
        ctx.link(link);
        return () => undefined;
      });
    }
    const tail = prev;
    await node.idle();
    expect(node.info(tail)?.links).toHaveLength(1);
    const ref = p.ctx.monitor(tail);
    node.send(head, 'crash');
    expect((await receiveDown(p, ref)).reason).toBe(boom);
    expect(node.processes()).toEqual([p]);
  });
});

// ---- system messages --------------------------------------------------------------------------

describe('isDown / isExit', () => {
  it('isDown is true for a runtime Down and false for a user object shaped like one', async () => {
    const node = track();
    const p = probe(node);
    const pid = idler(node);
    const ref = p.ctx.monitor(pid);
    node.exit(pid, 'kill');
    const real = await receiveDown(p, ref);
    expect(isDown(real)).toBe(true);
    expect(isDown({ kind: 'down', ref: real.ref, pid: real.pid, reason: real.reason })).toBe(false);
    expect(isDown({ ...real })).toBe(false);
  });

  it('isExit is true for a runtime Exit and false for a user object shaped like one', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const child = p.ctx.spawnLink(idleInit);
    node.exit(child, 'kill');
    const real = await exitFrom(p, child);
    expect(isExit(real)).toBe(true);
    expect(isExit({ kind: 'exit', from: real.from, reason: real.reason })).toBe(false);
    expect(isExit({ ...real })).toBe(false);
  });

  it('treats a user message shaped like an Exit as an ordinary message', async () => {
    const node = track();
    const p = probe(node);
    const fake = { kind: 'exit', from: 'node', reason: 'shutdown' };
    node.send(p, fake);
    expect(await p.receive()).toBe(fake);
    expect(node.isAlive(p)).toBe(true);
  });
});

// ---- keel.process.exited and logging ----------------------------------------------------------

describe('keel.process.exited', () => {
  it('is emitted with watched: false for an abnormal exit nobody watches, which the node logs', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const boom = new Error('unwatched');
    const pid = node.spawn(crasher(boom));
    node.send(pid, 'crash');
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason: boom, watched: false }]);
    expect(logger.errors).toHaveLength(1);
    expect(String(logger.errors[0]?.[0])).toContain(String(pid));
  });

  it('is emitted with watched: true for a linked process, which the node does not log', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    const events = captureEvents(node, ['keel.process.exited']);
    const boom = new Error('linked');
    p.ctx.trapExits();
    const pid = p.ctx.spawnLink(crasher(boom));
    node.send(pid, 'crash');
    await exitFrom(p, pid);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason: boom, watched: true }]);
    expect(logger.errors).toEqual([]);
  });

  it('is emitted with watched: true for a monitored process, which the node does not log', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    const events = captureEvents(node, ['keel.process.exited']);
    const boom = new Error('monitored');
    const pid = node.spawn(crasher(boom));
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'crash');
    await receiveDown(p, ref);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason: boom, watched: true }]);
    expect(logger.errors).toEqual([]);
  });

  it.each<[string, ExitReason]>([
    ['normal', 'normal'],
    ['shutdown', 'shutdown'],
    ['{ shutdown }', { shutdown: 'detail' }],
  ])('is not logged for the clean exit %s of an unwatched process', async (_label, reason) => {
    const logger = fakeLogger();
    const node = track({ logger });
    const pid = node.spawn((ctx) => () => ctx.exit(reason));
    node.send(pid, 'stop');
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(logger.errors).toEqual([]);
  });
});

// As OTP's crash reports: a process whose own code failed is logged when nobody links or monitors
// it; a process stopped by someone else's exit signal is not (its keel.process.exited event says why).
describe('crash reports', () => {
  it('logs an unwatched process that ends itself with ctx.exit(error), once', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const boom = new Error('own exit');
    const pid = node.spawn((ctx) => () => ctx.exit(boom));
    node.send(pid, 'go');
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(logger.errors).toHaveLength(1);
    // the stack, which starts with the message: the reason is not passed again for the logger to print twice
    expect(logger.errors[0]).toEqual([`process ${String(pid)} exited: ${boom.stack!}`]);
    expect(boom.stack!.startsWith(`${formatReason(boom)}\n    at `)).toBe(true);
  });

  it('logs an unwatched process whose init throws, or whose async handler rejects', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const initFailed = new Error('init failed');
    const rejected = new Error('rejected');
    const a = node.spawn(() => {
      throw initFailed;
    });
    const b = node.spawn(() => async () => {
      throw rejected;
    });
    node.send(b, 'go');
    await node.idle();
    expect(node.isAlive(a)).toBe(false);
    expect(node.isAlive(b)).toBe(false);
    expect(logger.errors.map((call) => call.join(' ')).sort()).toEqual([`process ${String(a)} exited: ${initFailed.stack!}`, `process ${String(b)} exited: ${rejected.stack!}`]);
  });

  describe('the line a console-like logger prints (util.format of its arguments)', () => {
    /** A logger that keeps each line as the console would print it. */
    function lineLogger(): { lines: string[]; info(...a: unknown[]): void; warn(...a: unknown[]): void; error(...a: unknown[]): void } {
      const lines: string[] = [];
      const write = (...args: unknown[]): void => {
        lines.push(format(...args));
      };
      return { lines, info: write, warn: write, error: write };
    }
    const count = (text: string, part: string): number => text.split(part).length - 1;

    it('shows the message of a crash once, then its stack', async () => {
      const logger = lineLogger();
      const node = track({ logger });
      let thrown!: Error;
      const pid = node.spawn(() => () => {
        thrown = new InvalidArgumentError('size', 'a number', 'big');
        throw thrown;
      });
      node.send(pid, 'go');
      await node.idle();
      expect(logger.lines).toHaveLength(1);
      const line = logger.lines[0]!;
      expect(line.startsWith(`process ${String(pid)} exited: InvalidArgumentError: expected \`size\` to be a number, got "big"\n    at `)).toBe(true);
      expect(count(line, thrown.message)).toBe(1);
      expect(line).toBe(`process ${String(pid)} exited: ${thrown.stack!}`);
    });

    it.each<[string, () => Error, string]>([
      ['an Error with no stack', () => Object.defineProperty(new RangeError('no frames'), 'stack', { value: undefined }), 'RangeError: no frames'],
      ['an Error whose stack does not hold its message', () => Object.assign(new Error('changed'), { stack: 'Error: original\n    at nowhere' }), 'Error: changed\nError: original\n    at nowhere'],
      ['an Error whose stack getter throws', () => Object.defineProperty(new Error('hidden'), 'stack', { get: () => { throw new Error('no'); } }), 'Error: hidden'],
    ])('shows %s by its name and message, once', async (_label, make, text) => {
      const logger = lineLogger();
      const node = track({ logger });
      const reason = make();
      const pid = node.spawn((ctx) => () => ctx.exit(reason));
      node.send(pid, 'go');
      await node.idle();
      expect(logger.lines).toEqual([`process ${String(pid)} exited: ${text}`]);
    });

    it("shows a reason that is not an Error as it is: ctx.exit('killed')", async () => {
      const logger = lineLogger();
      const node = track({ logger });
      const pid = node.spawn((ctx) => () => ctx.exit('killed'));
      node.send(pid, 'go');
      await node.idle();
      expect(logger.lines).toEqual([`process ${String(pid)} exited: killed`]);
    });
  });

  it.each<[string, ExitReason | 'kill', ExitReason]>([
    ['kill', 'kill', 'killed'],
    ['an error', new Error('stopped by another'), new Error('stopped by another')],
    ['killed', 'killed', 'killed'],
  ])('does not log a process stopped by node.exit(pid, %s), but emits its event', async (_label, signal, reason) => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const pid = node.spawn(idleInit);
    await node.idle();
    node.exit(pid, signal);
    expect(node.isAlive(pid)).toBe(false);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason, watched: false }]);
    expect(logger.errors).toEqual([]);
  });

  it('does not log a process stopped by another process, nor one killed by a linked crash', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const boom = new Error('linked crash');
    const stop = new Error('stop');
    const victim = node.spawn(idleInit);
    let partner!: Pid;
    const crashing = node.spawn((ctx) => {
      partner = ctx.spawnLink(idleInit);
      return () => {
        ctx.exit(victim, stop);
        throw boom;
      };
    });
    await node.idle();
    node.send(crashing, 'go');
    await node.idle();
    expect([node.isAlive(victim), node.isAlive(crashing), node.isAlive(partner)]).toEqual([false, false, false]);
    expect(events.events.map((e) => e.metadata)).toEqual([
      { pid: victim, reason: stop, watched: false },
      { pid: crashing, reason: boom, watched: true },
      { pid: partner, reason: boom, watched: false },
    ]);
    // the crash is linked (its partner hears of it), the others were stopped by signals
    expect(logger.errors).toEqual([]);
  });

  it('does not log an unwatched process that sends itself an exit signal (ctx.exit(ctx.self, error)), as exit(self(), Reason) on the BEAM: its event says why', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const boom = new Error('own signal');
    const pid = node.spawn((ctx) => () => ctx.exit(ctx.self, boom));
    node.send(pid, 'go');
    await node.idle();
    expect(node.isAlive(pid)).toBe(false);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason: boom, watched: false }]);
    expect(logger.errors).toEqual([]);
  });

  it("logs an unwatched process that ends itself with ctx.exit('killed') (its own exit, though no extras hold the reason)", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const pid = node.spawn((ctx) => () => ctx.exit('killed'));
    node.send(pid, 'go');
    await node.idle();
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, reason: 'killed', watched: false }]);
    expect(logger.errors.map((call) => call[0])).toEqual([`process ${String(pid)} exited: ${formatReason('killed')}`]);
  });

  it('prints nothing for 10,000 killed processes', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const events = captureEvents(node, ['keel.process.exited']);
    const pids = Array.from({ length: 10_000 }, () => node.spawn(idleInit));
    await node.idle();
    for (const pid of pids) node.exit(pid, 'kill');
    await node.idle();
    expect(node.processes()).toEqual([]);
    expect(events.events).toHaveLength(10_000);
    expect(logger.errors).toEqual([]);
  });
});

describe('formatReason', () => {
  it('shows an error, a bigint and a cycle inside a { shutdown } reason by their text', () => {
    // a supervisor whose child failed to start exits with such a reason: its error must read as one
    expect(formatReason({ shutdown: { failed_to_start_child: 'db', reason: new TypeError('boom') } })).toBe('{ shutdown: {"failed_to_start_child":"db","reason":"TypeError: boom"} }');
    expect(formatReason({ shutdown: { n: 10n } })).toBe('{ shutdown: {"n":"10"} }');
    expect(formatReason({ shutdown: 'fenced' })).toBe('{ shutdown: "fenced" }');
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    expect(formatReason({ shutdown: cyclic })).toMatch(/^\{ shutdown: /);
  });
});

describe('the exit reason of a process with no extras', () => {
  it.each<[string, ExitReason | 'kill', ExitReason]>([
    ['killed', 'kill', 'killed'],
    ['shut down', 'shutdown', 'shutdown'],
    ['stopped with an error', new Error('stopped'), new Error('stopped')],
  ])('is ctx.signal.reason when the signal is first read after the process was %s', async (_label, signal, reason) => {
    const node = track();
    let ctx!: Context<unknown>;
    const pid = node.spawn((c) => {
      ctx = c;
      return () => undefined;
    });
    await node.idle();
    node.exit(pid, signal);
    expect(node.isAlive(pid)).toBe(false);
    expect(ctx.signal.aborted).toBe(true);
    expect(ctx.signal.reason).toEqual(reason);
  });
});

describe('exit signals sent while a death runs its hooks', () => {
  it('queue behind the link signals the death already queued: a linked process dies with the crash reason, not a later one', async () => {
    const node = track({ logger: fakeLogger() });
    const deaths: unknown[] = [];
    let linked!: Pid;
    const crashing = node.spawn((ctx) => {
      linked = ctx.spawnLink(idleInit);
      return () => {
        throw new Error('boom');
      };
    });
    await node.idle();
    node.onExit(linked, (reason) => deaths.push(reason));
    // a death hook of the crashing process stops the linked one with another reason
    node.onExit(crashing, () => node.exit(linked, 'shutdown'));
    node.send(crashing, 'go');
    await node.idle();
    expect(deaths).toEqual([new Error('boom')]);
  });
});

describe('the bookkeeping of a death', () => {
  it('runs no user code: a Down that makes its owner mailbox long is reported once the dead process is unlinked, not while its links still list it', async () => {
    const node = track({ longMailbox: { above: 2, below: 1 } });
    const p = probe(node);
    const gate = deferred();
    const { pid: owner, ctx: ownerCtx } = await spawnWithContext(node, (ctx) => async (m) => {
      if (m !== 'hold') return;
      ctx.send(p, 'holding');
      await gate.promise;
    });
    node.send(owner, 'hold');
    await p.receive((m) => m === 'holding');
    node.send(owner, 'queued'); // one message queued: the Down is the second, which reaches `above`
    const { pid: target, ctx: targetCtx } = await spawnWithContext(node);
    const partner = idler(node);
    targetCtx.link(partner);
    ownerCtx.monitor(target);
    const seen: unknown[] = [];
    node.telemetry.attach('watch', ['keel.process.long_mailbox'], (_event, measurements, metadata) => {
      seen.push({ pid: metadata.pid, length: measurements.length, partnerLinks: node.info(partner)?.links });
    });
    node.exit(target, new Error('boom'));
    expect(seen).toEqual([{ pid: owner, length: 2, partnerLinks: [] }]);
    expect(node.isAlive(partner)).toBe(false);
    gate.resolve();
  });
});

describe('where the kernel differs from the BEAM (docs/runtime.md, Exits)', () => {
  it('ctx.link to a dead pid in a process that does not trap exits: the caller dies with noproc, a try does not keep it alive, and no crash report is written', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    const dead = idler(node);
    node.exit(dead, 'kill');
    const after: string[] = [];
    const pid = node.spawn((ctx) => () => {
      try {
        ctx.link(dead);
      } catch {
        after.push('caught');
      }
      after.push('ran on');
    });
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'go');
    expect((await receiveDown(p, ref)).reason).toBe('noproc');
    expect(after).toEqual(['caught', 'ran on']);
    expect(logger.error).not.toHaveBeenCalled();
  });

  it('inside a cascade an exit signal is queued and a message is not: a trapping process gets the message sent after the signal first', async () => {
    const node = track();
    const p = probe(node);
    p.ctx.trapExits();
    const victim = idler(node);
    node.onExit(victim, () => {
      node.exit(p, 'shutdown');
      node.send(p, 'sent after the exit signal');
    });
    node.exit(victim, 'kill');
    await exitFrom(p, 'node');
    expect(p.messages.map((m) => (isExit(m) ? 'Exit' : m))).toEqual(['sent after the exit signal', 'Exit']);
  });

  it('node.exit ending the process whose handler called it does not stop that handler: the rest runs as a zombie', async () => {
    const node = track();
    const p = probe(node);
    const events = captureEvents(node, ['keel.process.zombie_call']);
    const pid = node.spawn((ctx) => () => {
      ctx.node.exit(ctx.self, 'kill');
      ctx.send(p, 'after the exit');
    });
    const ref = p.ctx.monitor(pid);
    node.send(pid, 'go');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid, operation: 'send' }]);
    expect(p.messages.filter((m) => m === 'after the exit')).toEqual([]);
  });
});
