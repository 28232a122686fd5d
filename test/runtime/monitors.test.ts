import { afterEach, describe, expect, it } from 'vitest';
import { createNode, type Down, type ExitReason, isDown, type Logger, type Node, Pid, type Ref } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { probe, type Probe } from '../../src/testing/index.js';

// Nodes made by a test, shut down after it.
const nodes: Node[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.shutdown()));
});

/** A logger that keeps what the node would have printed (unwatched crashes, throwing hooks). */
function recordingLogger(): Logger & { errors: unknown[][] } {
  const errors: unknown[][] = [];
  return {
    errors,
    info: () => undefined,
    warn: () => undefined,
    error: (...args: unknown[]) => {
      errors.push(args);
    },
  };
}

function makeNode(options: Parameters<typeof createNode>[0] = {}): Node {
  const node = createNode({ logger: recordingLogger(), ...options });
  nodes.push(node);
  return node;
}

/** A process that handles everything and does nothing. */
function idler(node: Node, options?: { name?: string }): Pid {
  return node.spawn(() => () => undefined, options);
}

async function receiveDown(p: Probe, match: (down: Down) => boolean = () => true): Promise<Down> {
  const m = await p.receive((x) => isDown(x) && match(x));
  if (!isDown(m)) throw new Error(`expected a Down, got ${String(m)}`);
  return m;
}

function downsFor(p: Probe, ref: Ref): Down[] {
  return p.messages.filter((m): m is Down => isDown(m) && m.ref === ref);
}

/** Sends the probe a marker and waits for it: everything enqueued before it has been handled. */
async function drainThrough(node: Node, p: Probe, marker: string): Promise<void> {
  await node.idle();
  node.send(p, marker);
  await p.receive((m) => m === marker);
}

describe('ctx.monitor', () => {
  it('returns a Ref', () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    expect(ref).toBeTypeOf('object');
    expect(ref.id).toBeTypeOf('number');
    expect(node.info(p)?.monitors).toEqual([ref]);
  });

  it('returns a distinct Ref for every call', () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const a = p.ctx.monitor(target);
    const b = p.ctx.monitor(target);
    expect(a).not.toBe(b);
    expect(a.id).not.toBe(b.id);
  });

  it('delivers Down { ref, pid, reason } when the target is killed', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    node.exit(target, 'kill');
    const down = await receiveDown(p);
    expect(down.kind).toBe('down');
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('killed');
  });

  it('delivers Down with reason normal when the target exits normally', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = node.spawn((ctx) => () => ctx.exit());
    const ref = p.ctx.monitor(target);
    node.send(target, 'stop');
    const down = await receiveDown(p, (d) => d.ref === ref);
    expect(down.reason).toBe('normal');
  });

  it('delivers Down with the error when the target crashes', async () => {
    const node = makeNode();
    const p = probe(node);
    const boom = new Error('boom');
    const target = node.spawn(() => () => {
      throw boom;
    });
    const ref = p.ctx.monitor(target);
    node.send(target, 'crash');
    const down = await receiveDown(p, (d) => d.ref === ref);
    expect(down.reason).toBe(boom);
  });

  it('delivers the Down exactly once', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    node.exit(target, 'kill');
    await receiveDown(p, (d) => d.ref === ref);
    // a second exit signal to the dead target must not produce a second Down
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    expect(downsFor(p, ref)).toHaveLength(1);
    expect(p.messages.filter(isDown)).toHaveLength(1);
  });

  it('gives every monitor on the same target its own Down', async () => {
    const node = makeNode();
    const p = probe(node);
    const other = probe(node);
    const target = idler(node);
    const refs = [p.ctx.monitor(target), p.ctx.monitor(target), p.ctx.monitor(target)];
    const otherRef = other.ctx.monitor(target);
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    await receiveDown(other, (d) => d.ref === otherRef);
    for (const ref of refs) expect(downsFor(p, ref)).toHaveLength(1);
    expect(p.messages.filter(isDown)).toHaveLength(3);
    expect(downsFor(other, otherRef)).toHaveLength(1);
  });

  it('delivers a noproc Down at once for a dead pid', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    node.exit(target, 'kill');
    expect(node.isAlive(target)).toBe(false);
    const ref = p.ctx.monitor(target);
    expect(node.info(p)?.mailboxLength).toBe(1);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, target)).toBe(true);
    expect(down.reason).toBe('noproc');
    expect(node.info(p)?.monitors).toEqual([]);
  });

  it('delivers a noproc Down at once for an id the node never used', async () => {
    const node = makeNode();
    const p = probe(node);
    const unknown: Pid = { node: node.name, creation: node.creation, id: 1_000_000 };
    const ref = p.ctx.monitor(unknown);
    expect(node.info(p)?.mailboxLength).toBe(1);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, unknown)).toBe(true);
    expect(down.reason).toBe('noproc');
  });

  it('delivers a noproc Down for a pid of another creation, even when the id is alive here', async () => {
    const node = makeNode();
    const p = probe(node);
    const live = idler(node);
    const stale = Pid.parse(`<${node.name}.${live.id}.${node.creation + 1}>`);
    const ref = p.ctx.monitor(stale);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, stale)).toBe(true);
    expect(down.reason).toBe('noproc');
    expect(node.isAlive(live)).toBe(true);
    expect(node.info(live)?.monitoredBy).toEqual([]);
  });

  it('delivers a noproc Down for a pid of another node, even when that process is alive', async () => {
    const node = makeNode();
    const elsewhere = makeNode();
    const p = probe(node);
    const remote = idler(elsewhere);
    const ref = p.ctx.monitor(remote);
    const down = await receiveDown(p);
    expect(down.ref).toBe(ref);
    expect(Pid.equals(down.pid, remote)).toBe(true);
    expect(down.reason).toBe('noproc');
    expect(elsewhere.isAlive(remote)).toBe(true);
    expect(elsewhere.info(remote)?.monitoredBy).toEqual([]);
  });

  it('delivers a noproc Down naming an unregistered name, with the node placeholder pid', async () => {
    const node = makeNode();
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
    const node = makeNode();
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
    const node = makeNode();
    const p = probe(node);
    const first = idler(node, { name: 'svc' });
    const ref = p.ctx.monitor('svc');
    node.registry.unregister('svc');
    const second = idler(node, { name: 'svc' });
    node.exit(second, 'kill');
    await drainThrough(node, p, 'after-second');
    expect(downsFor(p, ref)).toHaveLength(0);
    node.exit(first, 'kill');
    const down = await receiveDown(p, (d) => d.ref === ref);
    expect(Pid.equals(down.pid, first)).toBe(true);
  });

  it('delivers the Down after the messages the target sent before it died', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = node.spawn((ctx) => (m) => {
      ctx.send(p, `last words: ${String(m)}`);
      ctx.exit('shutdown');
    });
    const ref = p.ctx.monitor(target);
    node.send(target, 'bye');
    await receiveDown(p, (d) => d.ref === ref);
    expect(p.messages.map((m) => (isDown(m) ? 'down' : m))).toEqual(['last words: bye', 'down']);
  });

  it('delivers the Down even when the owner mailbox is full', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const owner = node.spawn(
      (ctx) => {
        ctx.monitor(target);
        return async (m) => {
          if (m === 'hold') {
            ctx.send(p, 'holding');
            await gate;
            return;
          }
          ctx.send(p, { forwarded: m });
        };
      },
      { mailbox: { capacity: 1, overflow: 'reject' } },
    );
    node.send(owner, 'hold');
    await p.receive((m) => m === 'holding');
    node.send(owner, 'fill');
    node.exit(target, 'kill');
    expect(node.info(owner)?.mailboxLength).toBe(2);
    release();
    const forwarded = await p.receive((m) => typeof m === 'object' && m !== null && isDown((m as { forwarded?: unknown }).forwarded));
    const down = (forwarded as { forwarded: Down }).forwarded;
    expect(Pid.equals(down.pid, target)).toBe(true);
  });

  it('is listed by info on both sides', () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    expect(node.info(p)?.monitors).toEqual([ref]);
    expect(node.info(target)?.monitoredBy.map((x) => Pid.equals(x, p))).toEqual([true]);
  });
});

describe('ctx.demonitor', () => {
  it('returns true for an active monitor and false after', () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    expect(p.ctx.demonitor(ref)).toBe(true);
    expect(p.ctx.demonitor(ref)).toBe(false);
  });

  it('returns false for a monitor that already fired', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    node.exit(target, 'kill');
    await receiveDown(p, (d) => d.ref === ref);
    expect(p.ctx.demonitor(ref)).toBe(false);
  });

  it('removes the monitor from both sides', () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    p.ctx.demonitor(ref);
    expect(node.info(p)?.monitors).toEqual([]);
    expect(node.info(target)?.monitoredBy).toEqual([]);
  });

  it('stops the Down from arriving when the target dies later', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    p.ctx.demonitor(ref);
    node.exit(target, 'kill');
    expect(node.isAlive(target)).toBe(false);
    await drainThrough(node, p, 'marker');
    expect(p.messages.filter(isDown)).toHaveLength(0);
    expect(p.messages).toEqual(['marker']);
  });

  it('leaves the other monitors on the same target in place', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const dropped = p.ctx.monitor(target);
    const kept = p.ctx.monitor(target);
    p.ctx.demonitor(dropped);
    node.exit(target, 'kill');
    await receiveDown(p, (d) => d.ref === kept);
    await drainThrough(node, p, 'marker');
    expect(downsFor(p, dropped)).toHaveLength(0);
    expect(downsFor(p, kept)).toHaveLength(1);
  });

  it('with flush removes a Down already queued in the mailbox', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const owner = node.spawn((ctx) => {
      const ref = ctx.monitor(target);
      return async (m) => {
        if (m === 'hold') {
          ctx.send(p, 'holding');
          await gate;
          ctx.demonitor(ref, { flush: true });
          ctx.send(p, 'flushed');
          return;
        }
        ctx.send(p, { forwarded: m });
      };
    });
    node.send(owner, 'hold');
    await p.receive((m) => m === 'holding');
    expect(node.info(owner)?.status).toBe('busy');
    node.exit(target, 'kill');
    // the owner is busy, so the Down waits in its mailbox
    expect(node.info(owner)?.mailboxLength).toBe(1);
    node.send(owner, 'after');
    release();
    await p.receive((m) => m === 'flushed');
    await p.receive((m) => typeof m === 'object' && m !== null && (m as { forwarded?: unknown }).forwarded === 'after');
    const forwarded = p.messages.filter((m) => typeof m === 'object' && m !== null && 'forwarded' in m) as { forwarded: unknown }[];
    expect(forwarded.map((f) => isDown(f.forwarded))).toEqual([false]);
  });

  it('with flush removes only the Down of that monitor', async () => {
    const node = makeNode();
    const p = probe(node);
    const a = idler(node);
    const b = idler(node);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    let refA: Ref | undefined;
    let refB: Ref | undefined;
    const owner = node.spawn((ctx) => {
      refA = ctx.monitor(a);
      refB = ctx.monitor(b);
      return async (m) => {
        if (m === 'hold') {
          ctx.send(p, 'holding');
          await gate;
          ctx.demonitor(refA!, { flush: true });
          return;
        }
        ctx.send(p, { forwarded: m });
      };
    });
    node.send(owner, 'hold');
    await p.receive((m) => m === 'holding');
    node.exit(a, 'kill');
    node.exit(b, 'kill');
    expect(node.info(owner)?.mailboxLength).toBe(2);
    node.send(owner, 'after');
    release();
    await p.receive((m) => typeof m === 'object' && m !== null && (m as { forwarded?: unknown }).forwarded === 'after');
    const forwarded = (p.messages.filter((m) => typeof m === 'object' && m !== null && 'forwarded' in m) as { forwarded: unknown }[]).map(
      (f) => f.forwarded,
    );
    expect(forwarded).toHaveLength(2);
    const down = forwarded[0];
    expect(isDown(down) && down.ref === refB).toBe(true);
    expect(forwarded[1]).toBe('after');
  });

  it('with flush removes the queued noproc Down of a monitor on a dead target', async () => {
    const node = makeNode();
    const p = probe(node);
    const ref = p.ctx.monitor('nobody');
    expect(node.info(p)?.mailboxLength).toBe(1);
    expect(p.ctx.demonitor(ref, { flush: true })).toBe(false);
    expect(node.info(p)?.mailboxLength).toBe(0);
    await drainThrough(node, p, 'marker');
    expect(p.messages).toEqual(['marker']);
  });

  it('with flush on an active monitor returns true and no Down arrives', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const ref = p.ctx.monitor(target);
    expect(p.ctx.demonitor(ref, { flush: true })).toBe(true);
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    expect(p.messages.filter(isDown)).toHaveLength(0);
  });
});

describe('death of a monitoring process', () => {
  it('removes its monitors from the target', async () => {
    const node = makeNode();
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

  it('sends nothing when the target dies afterwards', async () => {
    const node = makeNode();
    const p = probe(node);
    const target = idler(node);
    const owner = node.spawn((ctx) => {
      ctx.monitor(target);
      return () => undefined;
    });
    const watchOwner = p.ctx.monitor(owner);
    await node.idle();
    node.exit(owner, 'kill');
    await receiveDown(p, (d) => d.ref === watchOwner);
    node.exit(target, 'kill');
    await drainThrough(node, p, 'marker');
    expect(p.messages.filter(isDown)).toHaveLength(1);
    expect(node.processes().map((x) => Pid.equals(x, p))).toEqual([true]);
  });
});

describe('KeelNode.onExit', () => {
  it('runs the hook synchronously during the target cleanup, before node.exit returns', () => {
    const node = makeNode();
    const target = idler(node);
    const seen: { alive: boolean; reason: ExitReason }[] = [];
    const dispose = (node as KeelNode).onExit(target, (reason) => {
      seen.push({ alive: node.isAlive(target), reason });
    });
    expect(dispose).toBeTypeOf('function');
    node.exit(target, 'kill');
    expect(seen).toEqual([{ alive: false, reason: 'killed' }]);
  });

  it('runs the hook with the reason of a crash', async () => {
    const node = makeNode();
    const boom = new Error('boom');
    const target = node.spawn(() => () => {
      throw boom;
    });
    const reasons: ExitReason[] = [];
    (node as KeelNode).onExit(target, (reason) => reasons.push(reason));
    node.send(target, 'crash');
    await node.idle();
    expect(reasons).toEqual([boom]);
  });

  it('runs every hook once', () => {
    const node = makeNode();
    const target = idler(node);
    const calls: string[] = [];
    (node as KeelNode).onExit(target, () => calls.push('a'));
    (node as KeelNode).onExit(target, () => calls.push('b'));
    node.exit(target, 'kill');
    node.exit(target, 'kill');
    expect(calls.sort()).toEqual(['a', 'b']);
  });

  it('keeps running the other hooks when one throws, and logs the failure', () => {
    const logger = recordingLogger();
    const node = makeNode({ logger });
    const target = idler(node);
    const calls: string[] = [];
    (node as KeelNode).onExit(target, () => {
      throw new Error('hook failed');
    });
    (node as KeelNode).onExit(target, () => calls.push('second'));
    node.exit(target, 'kill');
    expect(calls).toEqual(['second']);
    expect(logger.errors.some((args) => args.some((a) => a instanceof Error && a.message === 'hook failed'))).toBe(true);
  });

  it('does not run a hook after its disposer was called', () => {
    const node = makeNode();
    const target = idler(node);
    const calls: string[] = [];
    const dispose = (node as KeelNode).onExit(target, () => calls.push('removed'));
    (node as KeelNode).onExit(target, () => calls.push('kept'));
    dispose?.();
    node.exit(target, 'kill');
    expect(calls).toEqual(['kept']);
  });

  it('returns undefined and never calls the hook for a dead pid', async () => {
    const node = makeNode();
    const target = idler(node);
    node.exit(target, 'kill');
    const calls: ExitReason[] = [];
    expect((node as KeelNode).onExit(target, (r) => calls.push(r))).toBeUndefined();
    await node.idle();
    expect(calls).toEqual([]);
  });

  it('returns undefined for a pid of another creation', () => {
    const node = makeNode();
    const live = idler(node);
    const stale = Pid.parse(`<${node.name}.${live.id}.${node.creation + 1}>`);
    expect((node as KeelNode).onExit(stale, () => undefined)).toBeUndefined();
  });
});
