/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, it } from 'vitest';
import { type Context, type Down, type ExitReason, isDown, type Node, Pid, type Ref, type SpawnOptions } from '../../src/index.js';
import { captureEvents, probe, type Probe } from '../../src/testing/index.js';
import { crasher, deferred, drainThrough, fakeLogger, idler, isForwarded, otherCreation, receiveDown, spawnWithContext, useNodes } from '../support.js';

const track = useNodes();

function downsFor(p: Probe, ref: Ref): Down[] {
  return p.messages.filter((m): m is Down => isDown(m) && m.ref === ref);
}

/**
 * Spawns an owner that runs `setup` in its init (to set up its monitors) and forwards every message
 * to `p` as `{ forwarded }`, except 'hold': then it tells `p` 'holding', stays busy until
 * `release()`, and runs `afterHold` with what `setup` returned.
 */
function holdingOwner<T>(
  node: Node,
  p: Probe,
  setup: (ctx: Context) => T,
  afterHold: (ctx: Context, state: T) => void = () => undefined,
  options?: SpawnOptions,
): { pid: Pid; hold(): Promise<void>; release(): void } {
  const gate = deferred();
  const pid = node.spawn((ctx) => {
    const state = setup(ctx);
    return async (m) => {
      if (m === 'hold') {
        ctx.send(p, 'holding');
        await gate.promise;
        afterHold(ctx, state);
        return;
      }
      ctx.send(p, { forwarded: m });
    };
  }, options);
  return {
    pid,
    hold: async () => {
      node.send(pid, 'hold');
      await p.receive((m) => m === 'holding');
    },
    release: () => gate.resolve(),
  };
}

/** What the probe got forwarded so far, in order. */
function forwardedTo(p: Probe): unknown[] {
  return p.messages.filter(isForwarded).map((m) => m.forwarded);
}

/** A node with a probe that monitors an idle target: `ref` is the monitor. */
function watchedTarget(): { node: Node; p: Probe; target: Pid; ref: Ref } {
  const node = track();
  const p = probe(node);
  const target = idler(node);
  return { node, p, target, ref: p.ctx.monitor(target) };
}

describe('ctx.monitor', () => {
  it('returns a Ref', () => {
    const { node, p, ref } = watchedTarget();
    expect(ref).toBeTypeOf('object');
    expect(ref.id).toBeTypeOf('number');
    expect(node.info(p)?.monitors).toEqual([ref]);
  });

  it('returns a distinct Ref for every call', () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const a = p.ctx.monitor(target);
    const b = p.ctx.monitor(target);
    expect(a).not.toBe(b);
    expect(a.id).not.toBe(b.id);
  });

  it('delivers Down { ref, pid, reason } when the target is killed', async () => {
    const { node, p, target, ref } = watchedTarget();
    node.exit(target, 'kill');
    const down = await receiveDown(p);
    expect(down.kind).toBe('down');
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('killed');
  });

  const boom = new Error('boom');
  it.each<[string, string, (ctx: Context) => () => void, ExitReason]>([
    ['reason normal', 'exits normally', (ctx) => () => ctx.exit(), 'normal'],
    ['the error', 'crashes', crasher(boom), boom],
  ])('delivers Down with %s when the target %s', async (_reason, _exit, init, reason) => {
    const node = track();
    const p = probe(node);
    const target = node.spawn(init);
    const ref = p.ctx.monitor(target);
    node.send(target, 'go');
    const down = await receiveDown(p, ref);
    expect(down.reason).toBe(reason);
  });

  it('delivers the Down exactly once', async () => {
    const { node, p, target, ref } = watchedTarget();
    node.exit(target, 'kill');
    await receiveDown(p, ref);
    // a second exit signal to the dead target must not produce a second Down
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    expect(downsFor(p, ref)).toHaveLength(1);
    expect(p.messages.filter(isDown)).toHaveLength(1);
  });

  it('gives every monitor on the same target its own Down', async () => {
    const node = track();
    const p = probe(node);
    const other = probe(node);
    const target = idler(node);
    const refs = [p.ctx.monitor(target), p.ctx.monitor(target), p.ctx.monitor(target)];
    const otherRef = other.ctx.monitor(target);
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    await receiveDown(other, otherRef);
    for (const ref of refs) expect(downsFor(p, ref)).toHaveLength(1);
    expect(p.messages.filter(isDown)).toHaveLength(3);
    expect(downsFor(other, otherRef)).toHaveLength(1);
  });

  it.each<[string, (node: Node) => Pid]>([
    [
      'a dead pid',
      (node) => {
        const target = idler(node);
        node.exit(target, 'kill');
        return target;
      },
    ],
    ['an id the node never used', (node) => ({ node: node.name, creation: node.creation, id: 1_000_000 })],
  ])('delivers a noproc Down at once for %s', async (_label, deadPid) => {
    const node = track();
    const p = probe(node);
    const target = deadPid(node);
    expect(node.isAlive(target)).toBe(false);
    const ref = p.ctx.monitor(target);
    expect(node.info(p)?.mailboxLength).toBe(1);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('noproc');
    expect(node.info(p)?.monitors).toEqual([]);
  });

  it.each<[string, (node: Node) => { host: Node; live: Pid; target: Pid }]>([
    [
      'a pid of another creation, even when the id is alive here',
      (node) => {
        const live = idler(node);
        return { host: node, live, target: otherCreation(live) };
      },
    ],
    [
      'a pid of another node, even when that process is alive',
      () => {
        const elsewhere = track();
        const remote = idler(elsewhere);
        return { host: elsewhere, live: remote, target: remote };
      },
    ],
  ])('delivers a noproc Down for %s', async (_label, setup) => {
    const node = track();
    const p = probe(node);
    const { host, live, target } = setup(node);
    const ref = p.ctx.monitor(target);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('noproc');
    expect(host.isAlive(live)).toBe(true);
    expect(host.info(live)?.monitoredBy).toEqual([]);
  });

  it('delivers a noproc Down naming an unregistered name, with the node placeholder pid', async () => {
    const node = track();
    const p = probe(node);
    const ref = p.ctx.monitor('nobody');
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(down.reason).toBe('noproc');
    expect(down.name).toBe('nobody');
    expect(Pid.equals(down.pid, { node: node.name, creation: node.creation, id: 0 })).toBe(true);
    expect(String(down.pid)).toBe(`<${node.name}.0>`);
  });

  it('carries the name in the Down of a monitor set up by name', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node, { name: 'svc' });
    const ref = p.ctx.monitor('svc');
    node.exit(target, 'kill');
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(down.name).toBe('svc');
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('killed');
  });

  it('resolves a name when the monitor is set up, not when the target dies', async () => {
    const node = track();
    const p = probe(node);
    const first = idler(node, { name: 'svc' });
    const ref = p.ctx.monitor('svc');
    node.registry.unregister('svc');
    const second = idler(node, { name: 'svc' });
    node.exit(second, 'kill');
    await drainThrough(node, p, 'after-second');
    expect(downsFor(p, ref)).toHaveLength(0);
    node.exit(first, 'kill');
    const down = await receiveDown(p, ref);
    expect(Pid.equals(down.pid, first)).toBe(true);
  });

  it('delivers the Down after the messages the target sent before it died', async () => {
    const node = track();
    const p = probe(node);
    const target = node.spawn((ctx) => (m) => {
      ctx.send(p, `last words: ${String(m)}`);
      ctx.exit('shutdown');
    });
    const ref = p.ctx.monitor(target);
    node.send(target, 'bye');
    await receiveDown(p, ref);
    expect(p.messages.map((m) => (isDown(m) ? 'down' : m))).toEqual(['last words: bye', 'down']);
  });

  it('delivers the Down even when the owner mailbox is full', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const owner = holdingOwner(node, p, (ctx) => ctx.monitor(target), undefined, { mailbox: { capacity: 1, overflow: 'reject' } });
    await owner.hold();
    node.send(owner.pid, 'fill');
    node.exit(target, 'kill');
    expect(node.info(owner.pid)?.mailboxLength).toBe(2);
    owner.release();
    const forwarded = await p.receive((m) => isForwarded(m) && isDown(m.forwarded));
    const down = (forwarded as { forwarded: Down }).forwarded;
    expect(Pid.equals(down.pid, target)).toBe(true);
  });

  it('is listed by info on both sides', () => {
    const { node, p, target, ref } = watchedTarget();
    expect(node.info(p)?.monitors).toEqual([ref]);
    expect(node.info(target)?.monitoredBy.map((x) => Pid.equals(x, p))).toEqual([true]);
  });
});

describe('ctx.demonitor', () => {
  it('returns true for an active monitor and false after', () => {
    const { p, ref } = watchedTarget();
    expect(p.ctx.demonitor(ref)).toBe(true);
    expect(p.ctx.demonitor(ref)).toBe(false);
  });

  it('returns false for a monitor that already fired', async () => {
    const { node, p, target, ref } = watchedTarget();
    node.exit(target, 'kill');
    await receiveDown(p, ref);
    expect(p.ctx.demonitor(ref)).toBe(false);
  });

  it('removes the monitor from both sides', () => {
    const { node, p, target, ref } = watchedTarget();
    p.ctx.demonitor(ref);
    expect(node.info(p)?.monitors).toEqual([]);
    expect(node.info(target)?.monitoredBy).toEqual([]);
  });

  it.each([
    ['stops the Down from arriving when the target dies later', undefined],
    ['with flush on an active monitor returns true and no Down arrives', { flush: true }],
  ])('%s', async (_label, options) => {
    const { node, p, target, ref } = watchedTarget();
    expect(p.ctx.demonitor(ref, options)).toBe(true);
    node.exit(target, 'kill');
    expect(node.isAlive(target)).toBe(false);
    await drainThrough(node, p, 'marker');
    expect(p.messages.filter(isDown)).toHaveLength(0);
    expect(p.messages).toEqual(['marker']);
  });

  it('leaves the other monitors on the same target in place', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const dropped = p.ctx.monitor(target);
    const kept = p.ctx.monitor(target);
    p.ctx.demonitor(dropped);
    node.exit(target, 'kill');
    await receiveDown(p, kept);
    await drainThrough(node, p, 'marker');
    expect(downsFor(p, dropped)).toHaveLength(0);
    expect(downsFor(p, kept)).toHaveLength(1);
  });

  it('with flush removes a Down already queued in the mailbox', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const owner = holdingOwner(
      node,
      p,
      (ctx) => ctx.monitor(target),
      (ctx, ref) => {
        ctx.demonitor(ref, { flush: true });
        ctx.send(p, 'flushed');
      },
    );
    await owner.hold();
    expect(node.info(owner.pid)?.status).toBe('busy');
    node.exit(target, 'kill');
    // the owner is busy, so the Down waits in its mailbox
    expect(node.info(owner.pid)?.mailboxLength).toBe(1);
    node.send(owner.pid, 'after');
    owner.release();
    await p.receive((m) => m === 'flushed');
    await p.receive((m) => isForwarded(m) && m.forwarded === 'after');
    expect(forwardedTo(p).map(isDown)).toEqual([false]);
  });

  it('with flush removes only the Down of that monitor', async () => {
    const node = track();
    const p = probe(node);
    const a = idler(node);
    const b = idler(node);
    let refB: Ref | undefined;
    const owner = holdingOwner(
      node,
      p,
      (ctx) => {
        const refA = ctx.monitor(a);
        refB = ctx.monitor(b);
        return refA;
      },
      (ctx, refA) => ctx.demonitor(refA, { flush: true }),
    );
    await owner.hold();
    node.exit(a, 'kill');
    node.exit(b, 'kill');
    expect(node.info(owner.pid)?.mailboxLength).toBe(2);
    node.send(owner.pid, 'after');
    owner.release();
    await p.receive((m) => isForwarded(m) && m.forwarded === 'after');
    const forwarded = forwardedTo(p);
    expect(forwarded).toHaveLength(2);
    const down = forwarded[0];
    expect(isDown(down) && down.ref === refB).toBe(true);
    expect(forwarded[1]).toBe('after');
  });

  it('with flush removes the queued noproc Down of a monitor on a dead target', async () => {
    const node = track();
    const p = probe(node);
    const ref = p.ctx.monitor('nobody');
    expect(node.info(p)?.mailboxLength).toBe(1);
    expect(p.ctx.demonitor(ref, { flush: true })).toBe(false);
    expect(node.info(p)?.mailboxLength).toBe(0);
    await drainThrough(node, p, 'marker');
    expect(p.messages).toEqual(['marker']);
  });
});

describe('death of a monitoring process', () => {
  it('removes its monitors from the target', async () => {
    const node = track();
    const target = idler(node);
    const owner = node.spawn((ctx) => {
      ctx.monitor(target);
      ctx.monitor(target);
      return () => undefined;
    });
    await node.idle();
    expect(node.info(target)?.monitoredBy).toHaveLength(2);
    node.exit(owner, 'kill');
    expect(node.info(target)?.monitoredBy).toEqual([]);
  });

  it('sets up nothing when the owner dies while the target given to ctx.monitor is read (a copy of a pid whose getter kills it)', async () => {
    const node = track();
    const target = idler(node);
    const { pid: owner, ctx } = await spawnWithContext(node);
    const events = captureEvents(node, ['keel.process.zombie_call']);
    const copy = {
      get node() {
        node.exit(owner, 'kill');
        return target.node;
      },
      creation: target.creation,
      id: target.id,
    };
    ctx.monitor(copy as Pid);
    expect(node.isAlive(owner)).toBe(false);
    expect(node.info(target)?.monitoredBy).toEqual([]);
    expect(events.events.map((e) => e.metadata)).toEqual([{ pid: owner, operation: 'monitor' }]);
  });

  it('sends nothing when the target dies afterwards', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const owner = node.spawn((ctx) => {
      ctx.monitor(target);
      return () => undefined;
    });
    const watchOwner = p.ctx.monitor(owner);
    await node.idle();
    node.exit(owner, 'kill');
    await receiveDown(p, watchOwner);
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    expect(p.messages.filter(isDown)).toHaveLength(1);
    expect(node.processes().map((x) => Pid.equals(x, p))).toEqual([true]);
  });
});

describe('KeelNode.onExit', () => {
  it('runs the hook synchronously during the target cleanup, before node.exit returns', () => {
    const node = track();
    const target = idler(node);
    const seen: { alive: boolean; reason: ExitReason }[] = [];
    const dispose = node.onExit(target, (reason) => {
      seen.push({ alive: node.isAlive(target), reason });
    });
    expect(dispose).toBeTypeOf('function');
    node.exit(target, 'kill');
    expect(seen).toEqual([{ alive: false, reason: 'killed' }]);
  });

  it('runs the hook with the reason of a crash', async () => {
    const node = track();
    const boom = new Error('boom');
    const target = node.spawn(crasher(boom));
    const reasons: ExitReason[] = [];
    node.onExit(target, (reason) => reasons.push(reason));
    node.send(target, 'crash');
    await node.idle();
    expect(reasons).toEqual([boom]);
  });

  it('runs every hook once', () => {
    const node = track();
    const target = idler(node);
    const calls: string[] = [];
    node.onExit(target, () => calls.push('a'));
    node.onExit(target, () => calls.push('b'));
    node.exit(target, 'kill');
    node.exit(target, 'kill');
    expect(calls.sort()).toEqual(['a', 'b']);
  });

  it('keeps running the other hooks when one throws, and logs the failure', () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const target = idler(node);
    const calls: string[] = [];
    node.onExit(target, () => {
      throw new Error('hook failed');
    });
    node.onExit(target, () => calls.push('second'));
    node.exit(target, 'kill');
    expect(calls).toEqual(['second']);
    expect(logger.errors.some((args) => args.some((a) => a instanceof Error && a.message === 'hook failed'))).toBe(true);
  });

  it('does not run a hook after its disposer was called', () => {
    const node = track();
    const target = idler(node);
    const calls: string[] = [];
    const dispose = node.onExit(target, () => calls.push('removed'));
    node.onExit(target, () => calls.push('kept'));
    dispose?.();
    node.exit(target, 'kill');
    expect(calls).toEqual(['kept']);
  });

  it('returns undefined and never calls the hook for a dead pid', async () => {
    const node = track();
    const target = idler(node);
    node.exit(target, 'kill');
    const calls: ExitReason[] = [];
    expect(node.onExit(target, (r) => calls.push(r))).toBeUndefined();
    await node.idle();
    expect(calls).toEqual([]);
  });

  it('returns undefined for a pid of another creation', () => {
    const node = track();
    const live = idler(node);
    const stale = otherCreation(live);
    expect(node.onExit(stale, () => undefined)).toBeUndefined();
  });
});
