import { afterEach, describe, expect, it } from 'vitest';
import {
  createNode,
  isExit,
  isKeelError,
  isUnavailable,
  Pid,
  type Context,
  type ExitReason,
  type Logger,
  type Node,
  type NodeOptions,
} from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';

// ---- helpers ----------------------------------------------------------------------------------

const silent: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** An unbounded queue of values to await one by one, in order. */
function channel<T>(): { push(value: T): void; next(): Promise<T> } {
  const values: T[] = [];
  const waiting: ((value: T) => void)[] = [];
  return {
    push(value) {
      const w = waiting.shift();
      if (w !== undefined) w(value);
      else values.push(value);
    },
    next() {
      if (values.length > 0) return Promise.resolve(values.shift()!);
      return new Promise<T>((resolve) => waiting.push(resolve));
    },
  };
}

const nodes: Node[] = [];

function makeNode(options: NodeOptions = {}): Node {
  const node = createNode({ logger: silent, ...options });
  nodes.push(node);
  return node;
}

afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.shutdown()));
});

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** Records the exit reason of `pid` through the node's death hook. */
function exitReasons(node: Node, pid: Pid): ExitReason[] {
  const reasons: ExitReason[] = [];
  (node as KeelNode).onExit(pid, (reason) => reasons.push(reason));
  return reasons;
}

const idleHandler = () => () => undefined;

// ---- createNode -------------------------------------------------------------------------------

describe('createNode', () => {
  it('gives each node a unique default name keel-N', () => {
    const a = makeNode();
    const b = makeNode();
    expect(a.name).toMatch(/^keel-\d+$/);
    expect(b.name).toMatch(/^keel-\d+$/);
    expect(a.name).not.toBe(b.name);
  });

  it('uses an explicit name', () => {
    const node = makeNode({ name: 'orders@host-1' });
    expect(node.name).toBe('orders@host-1');
  });

  it('gives every node a fresh random creation, also nodes of the same name', () => {
    const creations = Array.from({ length: 20 }, () => makeNode({ name: 'same' }).creation);
    for (const c of creations) expect(Number.isSafeInteger(c) && c > 0).toBe(true);
    expect(new Set(creations).size).toBe(20);
    const sorted = [...creations].sort((x, y) => x - y);
    const consecutive = sorted.every((c, i) => i === 0 || c === sorted[i - 1]! + 1);
    expect(consecutive).toBe(false);
  });

  it('makes nodes that share nothing: a pid of node A sent from node B is dropped as noproc', async () => {
    const a = makeNode();
    const b = makeNode();
    const onA = probe(a);
    const dropped = captureEvents(b, ['keel.message.dropped']);
    const seenByA = captureEvents(a, ['keel.']);
    b.send(onA, 'hello');
    await Promise.all([a.idle(), b.idle()]);
    expect(dropped.events.map((e) => e.metadata)).toEqual([{ from: 'node', to: onA, message: 'hello', reason: 'noproc' }]);
    expect(seenByA.events).toEqual([]);
    expect(onA.messages).toEqual([]);
    expect(b.isAlive(onA)).toBe(false);
    expect(b.processes()).toEqual([]);
  });

  it('keeps unique names per node', () => {
    const a = makeNode();
    const b = makeNode();
    const onA = a.spawn(idleHandler, { name: 'worker' });
    const onB = b.spawn(idleHandler, { name: 'worker' });
    expect(a.registry.whereis('worker')).toBe(onA);
    expect(b.registry.whereis('worker')).toBe(onB);
  });

  it('treats a pid of an earlier creation of a node of the same name as dead', async () => {
    const a = makeNode({ name: 'twin' });
    const b = makeNode({ name: 'twin' });
    const onA = probe(a);
    const onB = probe(b);
    expect(onA.id).toBe(onB.id);
    const dropped = captureEvents(b, ['keel.message.dropped']);
    b.send(Pid.parse(Pid.format(onA)), 'for A');
    await b.idle();
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
    expect(onB.messages).toEqual([]);
    a.send(Pid.parse(Pid.format(onA)), 'for A');
    expect(await onA.receive()).toBe('for A');
  });

  it('exposes node.monitors answering { error: unavailable } on every method, before and after shutdown', async () => {
    const node = makeNode();
    const p = probe(node);
    const other = node.spawn(idleHandler);
    const ask = (ctx: Context) => [
      node.monitors.monitor(ctx, other),
      node.monitors.monitor(ctx, other, { tag: 't', expectedLifetime: 'long' }),
      node.monitors.demonitor(ctx, ctx.monitor(other)),
      node.monitors.list(),
      node.monitors.stats(),
      node.monitors.findLeaks({ olderThanMs: 0 }),
    ];
    const before = ask(p.ctx);
    expect(before).toEqual(Array(6).fill({ error: 'unavailable' }));
    const ctx = p.ctx;
    await node.shutdown();
    expect(node.monitors).toBeDefined();
    const after = [node.monitors.list(), node.monitors.stats(), node.monitors.findLeaks(), node.monitors.monitor(ctx, other)];
    expect(after.every(isUnavailable)).toBe(true);
    expect(after).toHaveLength(4);
  });

  it('exposes node.deadLetters answering promises of { error: unavailable } on every method, before and after shutdown', async () => {
    const node = makeNode();
    const ask = () => [
      node.deadLetters.add({ recipient: 'nobody', message: 'm', reason: 'test' }),
      node.deadLetters.list({}),
      node.deadLetters.get('x'),
      node.deadLetters.retry({}),
      node.deadLetters.purge({}),
      node.deadLetters.stats(),
    ];
    const before = ask();
    for (const answer of before) expect(answer).toBeInstanceOf(Promise);
    expect(await Promise.all(before)).toEqual(Array(6).fill({ error: 'unavailable' }));
    await node.shutdown();
    const after = ask();
    for (const answer of after) expect(answer).toBeInstanceOf(Promise);
    expect(await Promise.all(after)).toEqual(Array(6).fill({ error: 'unavailable' }));
  });
});

// ---- node.shutdown ----------------------------------------------------------------------------

describe('node.shutdown', () => {
  it('sends shutdown to top-level processes in reverse start order and waits for each to exit', async () => {
    const node = makeNode();
    const log: string[] = [];
    const received = channel<number>();
    const gates = [deferred(), deferred(), deferred()];
    const signals: { from: unknown; reason: unknown }[] = [];
    for (const i of [0, 1, 2]) {
      node.spawn((ctx) => {
        ctx.trapExits();
        return async (m) => {
          if (!isExit(m)) return;
          signals.push({ from: m.from, reason: m.reason });
          log.push(`got:${i}`);
          received.push(i);
          await gates[i]!.promise;
          log.push(`done:${i}`);
          ctx.exit('shutdown');
        };
      });
    }
    await node.idle();
    const stopped = node.shutdown();
    expect(await received.next()).toBe(2);
    expect(log).toEqual(['got:2']);
    gates[2]!.resolve();
    expect(await received.next()).toBe(1);
    expect(log).toEqual(['got:2', 'done:2', 'got:1']);
    gates[1]!.resolve();
    expect(await received.next()).toBe(0);
    gates[0]!.resolve();
    await stopped;
    expect(log).toEqual(['got:2', 'done:2', 'got:1', 'done:1', 'got:0', 'done:0']);
    expect(signals).toEqual(Array(3).fill({ from: 'node', reason: 'shutdown' }));
  });

  it('kills a process that traps exits and never exits once timeoutMs has passed', async () => {
    const node = makeNode();
    const events = captureEvents(node, ['keel.node.shutdown']);
    const stubborn = node.spawn((ctx) => {
      ctx.trapExits();
      return () => undefined;
    });
    const reasons = exitReasons(node, stubborn);
    await node.idle();
    // the shutdown guard runs in real time by design: keep it small
    await node.shutdown({ timeoutMs: 20 });
    expect(reasons).toEqual(['killed']);
    expect(node.isAlive(stubborn)).toBe(false);
    expect(events.events.map((e) => e.measurements.killed)).toEqual([1]);
  });

  it('stops processes spawned by other processes too', async () => {
    const node = makeNode();
    const childExit = deferred<{ from: unknown; reason: unknown }>();
    const parent = node.spawn((ctx) => {
      ctx.spawn((child) => {
        child.trapExits();
        return (m) => {
          if (!isExit(m)) return;
          childExit.resolve({ from: m.from, reason: m.reason });
          child.exit(m.reason);
        };
      });
      return () => undefined;
    });
    await node.idle();
    const [child] = node.processes().filter((pid) => !Pid.equals(pid, parent));
    expect(child).toBeDefined();
    const parentReasons = exitReasons(node, parent);
    const childReasons = exitReasons(node, child!);
    await node.shutdown();
    expect(await childExit.promise).toEqual({ from: 'node', reason: 'shutdown' });
    expect(parentReasons).toEqual(['shutdown']);
    expect(childReasons).toEqual(['shutdown']);
    expect(node.processes()).toEqual([]);
  });

  it('makes spawn throw ERR_NODE_STOPPED afterwards', async () => {
    const node = makeNode();
    await node.shutdown();
    const error = caught(() => node.spawn(idleHandler));
    expect(isKeelError(error, 'ERR_NODE_STOPPED')).toBe(true);
  });

  it('returns the same promise when called twice', async () => {
    const node = makeNode();
    const first = node.shutdown();
    const second = node.shutdown();
    expect(second).toBe(first);
    await first;
    expect(node.shutdown()).toBe(first);
  });

  it('emits keel.node.shutdown with the node name and how many processes it killed', async () => {
    const node = makeNode({ name: 'stopping' });
    const events = captureEvents(node, ['keel.node.shutdown']);
    node.spawn(idleHandler);
    await node.shutdown();
    expect(events.events).toHaveLength(1);
    const [event] = events.events;
    expect(event?.metadata).toEqual({ node: 'stopping' });
    expect(event?.measurements.killed).toBe(0);
    expect(event?.measurements.durationMs).toBeGreaterThanOrEqual(0);
  });
});

// ---- await using ------------------------------------------------------------------------------

describe('Symbol.asyncDispose', () => {
  it('shuts the node down at the end of an `await using` block', async () => {
    let outer: Node | undefined;
    let pid: Pid | undefined;
    {
      await using node = createNode({ logger: silent });
      outer = node;
      pid = node.spawn(idleHandler);
      expect(typeof node[Symbol.asyncDispose]).toBe('function');
      expect(node.isAlive(pid)).toBe(true);
    }
    expect(outer.isAlive(pid)).toBe(false);
    expect(isKeelError(caught(() => outer.spawn(idleHandler)), 'ERR_NODE_STOPPED')).toBe(true);
  });
});

// ---- node.idle --------------------------------------------------------------------------------

describe('node.idle', () => {
  it('resolves once no process is runnable', async () => {
    const node = makeNode();
    let exchanges = 0;
    const ponger = node.spawn<{ from: Pid<number>; n: number }>((ctx) => (m) => {
      if (!isExit(m) && typeof m === 'object' && 'from' in m) ctx.send(m.from, m.n + 1);
    });
    node.spawn<number>((ctx) => {
      ctx.send(ponger, { from: ctx.self, n: 0 });
      return (n) => {
        if (typeof n !== 'number') return;
        exchanges = n;
        if (n < 500) ctx.send(ponger, { from: ctx.self, n });
      };
    });
    await node.idle();
    expect(exchanges).toBe(500);
  });

  it('waits for a busy async handler', async () => {
    const node = makeNode();
    const gate = deferred();
    const busy = deferred();
    let finished = false;
    const pid = node.spawn(() => async () => {
      busy.resolve();
      await gate.promise;
      finished = true;
    });
    node.send(pid, 'go');
    await busy.promise;
    let idle = false;
    const idled = node.idle().then(() => {
      idle = true;
    });
    // settle() resolves on the same check as idle(), but does not wait for busy handlers
    await (node as KeelNode).settle();
    expect(idle).toBe(false);
    gate.resolve();
    await idled;
    expect(finished).toBe(true);
  });

  it('does not wait for pending timers', async () => {
    const clock = new TestClock({ start: 0 });
    const node = makeNode({ clock });
    const p = probe(node);
    p.ctx.sendAfter(p, 'later', 60_000);
    // the timeout is only a failure guard: idle() must resolve without the clock moving
    await node.idle({ timeoutMs: 2000 });
    expect(node.info(p)?.timers).toBe(1);
    expect(p.messages).toEqual([]);
  });

  it('rejects with ERR_IDLE_TIMEOUT naming the busy process when timeoutMs passes', async () => {
    const node = makeNode();
    const gate = deferred();
    const busy = deferred();
    const pid = node.spawn(() => async () => {
      busy.resolve();
      await gate.promise;
    });
    node.send(pid, 'go');
    await busy.promise;
    // a failure guard in real time by design: keep it small
    const error = await node.idle({ timeoutMs: 20 }).then(
      () => undefined,
      (e: unknown) => e,
    );
    gate.resolve();
    expect(isKeelError(error, 'ERR_IDLE_TIMEOUT')).toBe(true);
    expect((error as { busy: readonly string[] }).busy).toEqual([String(pid)]);
    expect((error as Error).message).toContain(String(pid));
  });
});

// ---- node.info, node.processes, node.isAlive --------------------------------------------------

describe('node.info', () => {
  it('describes a live process: name, links, monitors, trapExits, timers, messages handled', async () => {
    const clock = new TestClock({ start: 0 });
    const node = makeNode({ clock });
    const p = probe(node);
    const ready = deferred<Pid>();
    const pid = node.spawn(
      (ctx) => {
        ctx.trapExits();
        ctx.link(p);
        const watched = ctx.spawn(idleHandler);
        ctx.monitor(watched);
        ctx.sendAfter(ctx.self, 'later', 1000);
        ready.resolve(watched);
        return (m) => {
          if (isExit(m) && m.from === 'node') ctx.exit(m.reason);
        };
      },
      { name: 'described' },
    );
    const watched = await ready.promise;
    p.ctx.monitor(pid);
    node.send(pid, 'one');
    node.send(pid, 'two');
    await node.idle();
    const info = node.info(pid);
    expect(info).toMatchObject({
      pid,
      status: 'waiting',
      mailboxLength: 0,
      messagesHandled: 2,
      links: [p],
      monitoredBy: [p],
      name: 'described',
      trapExits: true,
      timers: 1,
    });
    expect(info?.monitors).toHaveLength(1);
    expect(node.info(watched)?.monitoredBy).toEqual([pid]);
  });

  it('reports a process awaiting its async handler as busy, with its queued messages', async () => {
    const node = makeNode();
    const gate = deferred();
    const busy = deferred();
    const pid = node.spawn(() => async () => {
      busy.resolve();
      await gate.promise;
    });
    node.send(pid, 'first');
    node.send(pid, 'second');
    await busy.promise;
    expect(node.info(pid)).toMatchObject({ status: 'busy', mailboxLength: 1, messagesHandled: 1 });
    gate.resolve();
  });

  it('returns undefined for a process that exited', () => {
    const node = makeNode();
    const pid = node.spawn(idleHandler);
    expect(node.info(pid)).toBeDefined();
    node.exit(pid, 'kill');
    expect(node.info(pid)).toBeUndefined();
  });
});

describe('node.processes', () => {
  it('lists the live processes in spawn order, without those that exited', () => {
    const node = makeNode();
    const a = node.spawn(idleHandler);
    const b = node.spawn(idleHandler);
    const c = node.spawn(idleHandler);
    expect(node.processes()).toEqual([a, b, c]);
    node.exit(b, 'kill');
    expect(node.processes()).toEqual([a, c]);
  });
});

describe('node.isAlive', () => {
  it('is true for a live process and false once it exited', () => {
    const node = makeNode();
    const pid = node.spawn(idleHandler);
    expect(node.isAlive(pid)).toBe(true);
    node.exit(pid, 'kill');
    expect(node.isAlive(pid)).toBe(false);
  });

  it('accepts a registered name', () => {
    const node = makeNode();
    const pid = node.spawn(idleHandler, { name: 'named' });
    expect(node.isAlive('named')).toBe(true);
    expect(node.isAlive('unknown')).toBe(false);
    node.exit(pid, 'kill');
    expect(node.isAlive('named')).toBe(false);
  });

  it('is false for a pid of another node', () => {
    const a = makeNode();
    const b = makeNode();
    const pid = a.spawn(idleHandler);
    expect(a.isAlive(pid)).toBe(true);
    expect(b.isAlive(pid)).toBe(false);
  });
});
