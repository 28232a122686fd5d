/* eslint-disable keel/no-raw-send -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import { isDown, type MonitorEntry, type Node, type Pid, type Ref, type Target, withMonitor } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { probe, type Probe } from '../../src/testing/index.js';
import {
  deferred,
  expectKeelError,
  expectServiceUnavailable,
  failingWith,
  failureModes,
  forwardedDowns,
  idler,
  isForwarded,
  listOf,
  spawnWithContext,
  statsOf,
  thrown,
  useNodes,
} from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

type Fn = (ref: Ref, signal: AbortSignal) => unknown;

/** Asks a runner to call `withMonitor(ctx, target, fn, options)` from its handler. */
interface Run {
  readonly run: { target: Target; fn: Fn; options?: { tag?: string } };
}

function isRun(m: unknown): m is Run {
  return typeof m === 'object' && m !== null && 'run' in m;
}

/** What a runner reports: `{ result }` or `{ failed }`. */
type Outcome = { result: unknown } | { failed: unknown };

function isOutcome(m: unknown): m is Outcome {
  return typeof m === 'object' && m !== null && ('result' in m || 'failed' in m);
}

/**
 * An owner process whose (async) handler awaits `withMonitor` for each `{ run }` message and sends
 * `p` the outcome; it forwards every other message to `p` as `{ forwarded }`, so a Down left in its
 * mailbox shows up at `p`.
 */
async function runner(node: Node, p: Probe): Promise<{ pid: Pid; run(target: Target, fn: Fn, options?: { tag?: string }): Promise<Outcome> }> {
  const { pid } = await spawnWithContext(node, (ctx) => async (m) => {
    if (isRun(m)) {
      try {
        ctx.send(p, { result: await withMonitor(ctx, m.run.target, m.run.fn, m.run.options) });
      } catch (failed) {
        ctx.send(p, { failed });
      }
      return;
    }
    ctx.send(p, { forwarded: m });
  });
  return {
    pid,
    run: async (target, fn, options) => {
      node.send(pid, { run: { target, fn, ...(options === undefined ? {} : { options }) } });
      return (await p.receive(isOutcome)) as Outcome;
    },
  };
}

let markers = 0;

/** Sends `owner` a marker and waits until it forwarded it: anything queued before it was handled. */
async function drainOwner(node: Node, owner: Pid, p: Probe): Promise<void> {
  const marker = `marker-${++markers}`;
  node.send(owner, marker);
  await p.receive((m) => isForwarded(m) && m.forwarded === marker);
}

// ---- tests ------------------------------------------------------------------------------------

describe('withMonitor', () => {
  it("returns fn's result; the monitor is recorded with its tag during fn and removed afterwards", async () => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    const target = idler(node);
    let during: { ref: Ref; list: MonitorEntry[]; monitors: readonly Ref[] | undefined; aborted: boolean } | undefined;
    const outcome = await owner.run(
      target,
      async (ref, signal) => {
        during = { ref, list: listOf(node), monitors: node.info(owner.pid)?.monitors, aborted: signal.aborted };
        await Promise.resolve();
        return { answer: 42 };
      },
      { tag: 'fetch' },
    );
    expect(outcome).toEqual({ result: { answer: 42 } });
    expect(during).toBeDefined();
    expect(during!.aborted).toBe(false);
    expect(during!.monitors).toEqual([during!.ref]);
    expect(during!.list).toHaveLength(1);
    expect(during!.list[0]).toMatchObject({ ref: during!.ref, tag: 'fetch', targetAlive: true });
    expect(String(during!.list[0]!.owner)).toBe(String(owner.pid));
    expect(String(during!.list[0]!.target)).toBe(String(target));
    // afterwards: demonitored
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(node.info(owner.pid)?.monitors).toEqual([]);
    expect(node.info(target)?.monitoredBy).toEqual([]);
    // and the target's later death sends the owner nothing
    node.exit(target, 'kill');
    await drainOwner(node, owner.pid, p);
    expect(forwardedDowns(p)).toEqual([]);
  });

  it('returns a synchronous result too', async () => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    expect(await owner.run(idler(node), () => 'sync')).toEqual({ result: 'sync' });
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
  });

  it.each([
    ['an Error', new Error('target crashed')],
    ['a shutdown reason', { shutdown: 'drained' }],
    ["'kill' (arriving as 'killed')", 'kill'],
  ] as const)('aborts signal with the exit reason when the target dies (%s) while the owner is busy awaiting fn', async (_label, reason) => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    const target = idler(node);
    const pending = owner.run(target, (_ref, signal) => {
      const abortedAtStart = signal.aborted;
      node.send(p, 'inside fn');
      return new Promise((resolve) => {
        signal.addEventListener('abort', () => resolve({ abortedAtStart, reason: signal.reason as unknown }), { once: true });
      });
    });
    await p.receive((m) => m === 'inside fn');
    await node.settle();
    expect(node.info(owner.pid)?.status).toBe('busy');
    node.exit(target, reason);
    expect(await pending).toEqual({ result: { abortedAtStart: false, reason: reason === 'kill' ? 'killed' : reason } });
    if (typeof reason === 'object') expect((await pending as { result: { reason: unknown } }).result.reason).toBe(reason);
  });

  it('leaves no Down in the owner mailbox when the target died while fn was running (it demonitors with flush)', async () => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    const target = idler(node);
    const gate = deferred();
    const pending = owner.run(target, async () => {
      node.send(p, 'inside fn');
      await gate.promise;
      return 'done';
    });
    await p.receive((m) => m === 'inside fn');
    node.exit(target, 'kill');
    expect(node.info(owner.pid)?.mailboxLength).toBe(1); // the Down waits while the owner is busy
    gate.resolve();
    expect(await pending).toEqual({ result: 'done' });
    await drainOwner(node, owner.pid, p);
    expect(forwardedDowns(p)).toEqual([]);
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
  });

  it.each(failureModes)('demonitors also when fn %s, and the error propagates', async (mode) => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    const target = idler(node);
    const boom = new Error('fn failed');
    const outcome = await owner.run(target, failingWith(mode, boom), { tag: 'failing' });
    expect(outcome).toEqual({ failed: boom });
    expect((outcome as { failed: unknown }).failed).toBe(boom);
    expect(listOf(node)).toEqual([]);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(node.info(owner.pid)?.monitors).toEqual([]);
    expect(node.isAlive(target)).toBe(true);
    node.exit(target, 'kill');
    await drainOwner(node, owner.pid, p);
    expect(forwardedDowns(p)).toEqual([]);
  });

  it('rejects with ERR_NOPROC for a dead or unknown target, without calling fn or recording anything', async () => {
    const node = track();
    const p = probe(node);
    const owner = await runner(node, p);
    const dead = idler(node);
    node.exit(dead, 'kill');
    let called = 0;
    const fn = () => {
      called++;
      return 'never';
    };
    for (const target of [dead, 'no-such-name']) {
      const outcome = await owner.run(target, fn);
      expect('failed' in outcome).toBe(true);
      expectKeelError((outcome as { failed: unknown }).failed, 'ERR_NOPROC');
    }
    expect(called).toBe(0);
    expect(statsOf(node)).toEqual({ created: 0, cleaned: 0, active: 0, leaked: 0 });
    expect(node.info(owner.pid)?.monitors).toEqual([]);
    await drainOwner(node, owner.pid, p);
    expect(forwardedDowns(p)).toEqual([]);
  });

  describe('with services: false', () => {
    it('falls back to a plain runtime monitor: returns the result, monitors during fn, demonitors afterwards', async () => {
      const node = track({ services: false });
      const p = probe(node);
      const owner = await runner(node, p);
      const target = idler(node);
      let during: { ref: Ref; monitors: readonly Ref[] | undefined } | undefined;
      const outcome = await owner.run(
        target,
        (ref) => {
          during = { ref, monitors: node.info(owner.pid)?.monitors };
          return 'plain';
        },
        { tag: 'ignored' },
      );
      expect(outcome).toEqual({ result: 'plain' });
      expect(during?.monitors).toEqual([during?.ref]);
      expect(node.info(target)?.monitoredBy).toEqual([]);
      expect(node.info(owner.pid)?.monitors).toEqual([]);
      expectServiceUnavailable(thrown(() => node.monitors.list()), 'monitors.list', 'disabled');
    });

    it('aborts signal with the exit reason when the target dies, and leaves no Down behind', async () => {
      const node = track({ services: false });
      const p = probe(node);
      const owner = await runner(node, p);
      const target = idler(node);
      const reason = new Error('gone');
      const pending = owner.run(target, (_ref, signal) => {
        node.send(p, 'inside fn');
        return new Promise((resolve) => signal.addEventListener('abort', () => resolve(signal.reason), { once: true }));
      });
      await p.receive((m) => m === 'inside fn');
      node.exit(target, reason);
      const outcome = await pending;
      expect(outcome).toEqual({ result: reason });
      expect((outcome as { result: unknown }).result).toBe(reason);
      await drainOwner(node, owner.pid, p);
      expect(forwardedDowns(p)).toEqual([]);
      expect(node.info(owner.pid)?.monitors).toEqual([]);
    });

    it('refuses a tag that is not a string as it does with the services on, without calling fn', async () => {
      for (const services of [undefined, false] as const) {
        const node = track(services === false ? { services } : {});
        const p = probe(node);
        const owner = await runner(node, p);
        const target = idler(node);
        let called = false;
        const outcome = await owner.run(target, () => (called = true), { tag: 42 as never });
        expectKeelError((outcome as { failed: unknown }).failed, 'ERR_INVALID_ARGUMENT', 'options.tag');
        expect(called).toBe(false);
        expect(node.info(owner.pid)?.monitors).toEqual([]);
      }
    });

    it('demonitors when fn throws and rejects with ERR_NOPROC for a dead target', async () => {
      const node = track({ services: false });
      const p = probe(node);
      const owner = await runner(node, p);
      const target = idler(node);
      const boom = new Error('boom');
      const outcome = await owner.run(target, () => {
        throw boom;
      });
      expect((outcome as { failed: unknown }).failed).toBe(boom);
      expect(node.info(owner.pid)?.monitors).toEqual([]);
      node.exit(target, 'kill');
      const dead = await owner.run(target, () => 'never');
      expectKeelError((dead as { failed: unknown }).failed, 'ERR_NOPROC');
      await drainOwner(node, owner.pid, p);
      expect(forwardedDowns(p)).toEqual([]);
    });
  });
});

describe('withMonitor and the ledger', () => {
  it("records the stack of the line that called withMonitor, not withMonitor's own", async () => {
    const node = track();
    const target = node.spawn(() => () => undefined);
    const p = probe(node);
    let stack: string | undefined;
    await withMonitor(p.ctx, target, () => {
      stack = (node.monitors.list() as MonitorEntry[])[0]?.stack;
    });
    expect(stack?.split('\n')[0]).toContain('withMonitor.test.ts');
  });
});

describe('withMonitor when its owner dies while fn runs', () => {
  it("leaves nothing on a live target: no ledger entry and no death hook, though fn never settles", async () => {
    const node = track() as KeelNode;
    const p = probe(node);
    const target = idler(node);
    const hooksBefore = node.resolve(target)?.x?.exitHooks?.size ?? 0;
    const owner = await runner(node, p);
    const started = deferred();
    node.send(owner.pid, { run: { target, fn: () => { started.resolve(); return new Promise(() => undefined); }, options: { tag: 'stuck' } } });
    await started.promise;
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 0, active: 1, leaked: 0 });
    const down = p.ctx.monitor(owner.pid); // eslint-disable-line keel/no-unmanaged-monitor -- waits for the owner's death (STYLE.md 10)
    node.exit(owner.pid, 'kill');
    await p.receive((m) => isDown(m) && m.ref === down);
    expect(statsOf(node)).toEqual({ created: 1, cleaned: 1, active: 0, leaked: 0 });
    expect(node.resolve(target)?.x?.exitHooks?.size ?? 0).toBe(hooksBefore);
  });
});
