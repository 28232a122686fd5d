/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { inspect } from 'node:util';
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  DynamicSupervisor,
  GenServer,
  isDown,
  isExit,
  isKeelError,
  Pid,
  type CallExitError,
  type CallProtocol,
  type Context,
  type Exit,
  type ExitReason,
  type From,
  type GenServerSpec,
  type Node,
  type ServerPid,
  Supervisor,
  Sys,
  Task,
} from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, probe, TestClock } from '../../src/testing/index.js';
import {
  advance,
  attempt,
  clockedNode,
  deferred,
  exitAndWait,
  drainThrough,
  expectKeelError,
  failingWith,
  failure,
  failureModes,
  handThenable,
  type FakeLogger,
  type Forwarded,
  idleInit,
  isForwarded,
  otherCreation,
  receiveDown,
  revokedProxy,
  spawnWithContext,
  thrown,
  trappingProxy,
  UNREADABLE,
  useNodes,
  type Watched,
  watch,
} from '../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** A protocol that accepts any request and any reply: for tests that are not about types. */
type Loose = { request: any; reply: any };
type Spec<S> = GenServerSpec<S, Loose, any>;

interface Release {
  readonly release: unknown;
}

function isRelease(m: unknown): m is Release {
  return typeof m === 'object' && m !== null && 'release' in m;
}

/**
 * A server for call tests. Calls: `'hold'` is left unanswered (its From kept in `held`; `notify`,
 * if given, gets `'holding'`), `'handled'` answers how many calls it has handled, anything else
 * is echoed. The cast `{ release: value }` replies `value` to every held call.
 */
function holder(held: From[] = [], notify?: Pid): Spec<{ handled: number }> {
  return {
    init: () => ({ handled: 0 }),
    handleCall: (request, from, state, ctx) => {
      const next = { handled: state.handled + 1 };
      if (request === 'hold') {
        held.push(from);
        if (notify !== undefined) ctx.send(notify, 'holding');
        return { noreply: true, state: next };
      }
      if (request === 'handled') return { reply: next.handled, state: next };
      return { reply: request, state: next };
    },
    handleCast: (request, state) => {
      if (isRelease(request)) for (const from of held.splice(0)) GenServer.reply(from, request.release);
      return state;
    },
  };
}

/** A server whose state is a log: the call `'log'` answers it, the cast `{ set }` replaces it. */
function logServer(hooks: Partial<Spec<unknown[]>> = {}): Spec<unknown[]> {
  return {
    init: () => [],
    handleCall: (request, _from, log) => (request === 'log' ? { reply: log, state: log } : { reply: 'ok', state: [...log, request] }),
    handleCast: (request, log) => [...log, request],
    ...hooks,
  };
}

/**
 * A supervisor of one transient GenServer child, started from `spec(n)` at its n-th start: `starts()`
 * counts the starts, `pid()` is the child's current pid.
 */
async function transientChild(node: Node, spec: (start: number) => Spec<number>): Promise<{ sup: Pid; starts: () => number; pid: () => Promise<Pid> }> {
  let starts = 0;
  const sup = await Supervisor.start(node, [{ id: 'w', restart: 'transient', start: (ctx) => GenServer.startLink(ctx, spec(++starts)) }]);
  return { sup, starts: () => starts, pid: async () => (await Supervisor.whichChildren(node, sup))[0]!.pid as Pid };
}

/** A server that traps exits in init and records every terminate(reason, state) in `seen`. */
function trapping(seen: [ExitReason, unknown][], terminate?: (reason: ExitReason, state: unknown) => void | Promise<void>): Spec<unknown> {
  return {
    init: (state: unknown, ctx) => {
      ctx.trapExits();
      return state;
    },
    handleCall: (request, _from, state) => (request === 'get' ? { reply: state, state } : { reply: 'ok', state: request }),
    terminate: (reason, state) => {
      seen.push([reason, state]);
      return terminate?.(reason, state);
    },
  };
}

/** Targets where no server runs, for the ERR_NOPROC tests: the pid of a stopped server, and a name nobody holds. */
const noServer: [string, (node: KeelNode) => Promise<Pid | string>][] = [
  [
    'a dead pid',
    async (node) => {
      const pid = await GenServer.start(node, logServer());
      await GenServer.stop(node, pid);
      return pid;
    },
  ],
  ['an unknown name', () => Promise.resolve('nobody')],
];

/** Death hooks and exit watchers (pending calls) registered on a live process. */
function deathHooksOn(node: KeelNode, pid: Pid): number {
  const x = node.lookupTarget(pid)?.x;
  let n = x?.exitHooks?.size ?? 0;
  for (let w = x?.watchers; w !== undefined; w = w.watchNext) n++;
  return n;
}

interface Outcome {
  readonly outcome: unknown;
}

function isOutcome(m: unknown): m is Outcome {
  return typeof m === 'object' && m !== null && 'outcome' in m;
}

// ---- GenServer.start --------------------------------------------------------------------------

describe('GenServer.start', () => {
  it('resolves with the pid once a synchronous init returned the state, passing it the arg and the ctx', async () => {
    const node = track();
    let self: Pid | undefined;
    const spec: Spec<{ count: number }> = {
      init: (start: number, ctx) => {
        self = ctx.self;
        return { count: start };
      },
      handleCall: (_request, _from, state) => ({ reply: state.count, state }),
    };
    const pid = await GenServer.start(node, spec, 41);
    expect(self !== undefined && Pid.equals(self, pid)).toBe(true);
    expect(node.isAlive(pid)).toBe(true);
    expect(await GenServer.call(node, pid, 'get')).toBe(41);
  });

  it('waits for an async init and starts with the state it resolved to', async () => {
    const node = track();
    const gate = deferred<string>();
    const spec: Spec<string> = {
      init: async () => `ready:${await gate.promise}`,
      handleCall: (_request, _from, state) => ({ reply: state, state }),
    };
    const start = watch(GenServer.start(node, spec, undefined, { name: 'async-init' }));
    await node.settle();
    expect(start.status).toBe('pending');
    expect(node.info('async-init')?.status).toBe('initializing');
    gate.resolve('yes');
    await node.idle();
    expect(start.status).toBe('resolved');
    expect(await GenServer.call(node, start.value!, 'get')).toBe('ready:yes');
  });

  it.each(failureModes)('fails with ERR_START_FAILED carrying the reason when init %s, leaves no process and runs no terminate', async (mode) => {
    const node = track();
    const boom = new Error('init failed');
    const terminated: ExitReason[] = [];
    const before = node.processes().length;
    const e = await failure(() => GenServer.start(node, { init: failingWith(mode, boom), terminate: (reason) => void terminated.push(reason) }));
    expectKeelError(e, 'ERR_START_FAILED', 'init failed');
    expect((e as { reason: unknown }).reason).toBe(boom);
    expect(node.processes()).toHaveLength(before);
    expect(terminated).toEqual([]);
  });

  it('wraps a non-Error thrown by init into ERR_THROWN_VALUE as the start failure reason', async () => {
    const node = track();
    const e = await failure(() =>
      GenServer.start(node, {
        init: () => {
          throw 'not an error';
        },
      }),
    );
    expectKeelError(e, 'ERR_START_FAILED');
    const reason = (e as { reason: unknown }).reason;
    expectKeelError(reason, 'ERR_THROWN_VALUE');
    expect((reason as { value: unknown }).value).toBe('not an error');
  });

  it('fails with ERR_START_FAILED carrying the exit reason when init exits the process', async () => {
    const node = track();
    const reason = { shutdown: 'not today' };
    const e = await failure(() =>
      GenServer.start(node, {
        init: (_arg, ctx) => {
          ctx.exit(reason);
          return 'unreachable';
        },
      }),
    );
    expectKeelError(e, 'ERR_START_FAILED');
    expect((e as { reason: unknown }).reason).toBe(reason);
  });

  it('fails with ERR_START_FAILED carrying the kill reason when the server is killed during an async init', async () => {
    const node = track();
    const gate = deferred();
    const start = watch(GenServer.start(node, { init: () => gate.promise.then(() => 'late') }, undefined, { name: 'doomed' }));
    await node.settle();
    node.exit(node.registry.whereis('doomed')!, 'kill');
    await node.settle();
    expect(start.status).toBe('rejected');
    expectKeelError(start.error, 'ERR_START_FAILED');
    expect((start.error as { reason: unknown }).reason).toBe('killed');
    gate.resolve();
  });

  it.each(failureModes)('does not kill the startLink caller when init %s: the start fails and the link is gone', async (mode) => {
    const node = track();
    const p = probe(node);
    const { pid: parent, ctx } = await spawnWithContext(node);
    const ref = p.ctx.monitor(parent);
    const boom = new Error('linked init failed');
    const e = await failure(() => GenServer.startLink(ctx, { init: failingWith(mode, boom) }));
    expectKeelError(e, 'ERR_START_FAILED');
    expect((e as { reason: unknown }).reason).toBe(boom);
    await drainThrough(node, p);
    expect(node.isAlive(parent)).toBe(true);
    expect(node.info(parent)?.links).toEqual([]);
    expect(p.messages.some((m) => isDown(m) && m.ref === ref)).toBe(false);
  });

  it('links the server to the startLink caller once init succeeded', async () => {
    const node = track();
    const { pid: parent, ctx } = await spawnWithContext(node);
    const server = await GenServer.startLink(ctx, { init: () => 'up' });
    expect(node.info(parent)?.links.map(String)).toEqual([String(server)]);
    expect(node.info(server)?.links.map(String)).toEqual([String(parent)]);
  });

  it('runs handleContinue before any message when init returns { state, continue }', async () => {
    const node = track();
    const order: string[] = [];
    const spec: Spec<string[]> = {
      init: () => ({ state: ['init'], continue: 'warm up' }),
      handleContinue: (info, log) => {
        order.push(`continue:${String(info)}`);
        return [...log, `continue:${String(info)}`];
      },
      handleCast: (request, log) => {
        order.push(`cast:${String(request)}`);
        return [...log, `cast:${String(request)}`];
      },
      handleCall: (_request, _from, log) => ({ reply: log, state: log }),
    };
    const started = GenServer.start(node, spec, undefined, { name: 'continued' });
    // queued before init even ran
    GenServer.cast(node, 'continued', 'early');
    const pid = await started;
    expect(await GenServer.call(node, pid, 'log')).toEqual(['init', 'continue:warm up', 'cast:early']);
    expect(order).toEqual(['continue:warm up', 'cast:early']);
  });

  it('holds messages while an async handleContinue from init is pending', async () => {
    const node = track();
    const gate = deferred();
    const spec: Spec<string[]> = {
      init: () => ({ state: [], continue: 'load' }),
      handleContinue: async (_info, log) => {
        await gate.promise;
        return [...log, 'loaded'];
      },
      handleCall: (_request, _from, log) => ({ reply: log, state: log }),
    };
    const pid = await GenServer.start(node, spec);
    const log = watch(GenServer.call(node, pid, 'log'));
    await node.settle();
    expect(log.status).toBe('pending');
    expect(node.info(pid)?.mailboxLength).toBe(1);
    gate.resolve();
    await node.idle();
    expect(log.status).toBe('resolved');
    expect(log.value).toEqual(['loaded']);
  });

  it('registers the server under { name }: calls and casts by name reach it, and the name goes with it', async () => {
    const node = track();
    const pid = await GenServer.start(node, logServer(), undefined, { name: 'logger' });
    expect(String(node.registry.whereis('logger'))).toBe(String(pid));
    GenServer.cast(node, 'logger', 'by name');
    expect(await GenServer.call(node, 'logger', 'log')).toEqual(['by name']);
    await GenServer.stop(node, 'logger');
    expect(node.registry.whereis('logger')).toBeUndefined();
  });

  it('fails with ERR_NAME_TAKEN when the name belongs to another process, and leaves no second server', async () => {
    const node = track();
    const first = await GenServer.start(node, logServer(), undefined, { name: 'taken' });
    const before = node.processes().length;
    const e = await failure(() => GenServer.start(node, logServer(), undefined, { name: 'taken' }));
    expectKeelError(e, 'ERR_NAME_TAKEN');
    expect(node.processes()).toHaveLength(before);
    expect(String(node.registry.whereis('taken'))).toBe(String(first));
  });

  it('reads each start option once: a name getter that answers another name, or a timeout getter NaN, when read again changes nothing', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const reads = { name: 0, timeout: 0 };
    const options = {
      get name() {
        return reads.name++ === 0 ? 'first' : 'second';
      },
      get timeout() {
        return reads.timeout++ === 0 ? 100 : NaN;
      },
    };
    const gate = deferred();
    const start = watch(GenServer.start(node, { init: () => gate.promise.then(() => 0) }, undefined, options as never));
    await node.settle();
    expect(reads).toEqual({ name: 1, timeout: 1 });
    expect(node.registry.names()).toEqual(['first']);
    await clock.advance(100);
    expectKeelError(start.error, 'ERR_START_FAILED', '100 ms');
  });

  it('fails with ERR_START_FAILED and kills the server when init outlasts options.timeout on the node clock', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const p = probe(node);
    const gate = deferred();
    const start = watch(GenServer.start(node, { init: () => gate.promise.then(() => 'late') }, undefined, { name: 'slow', timeout: 100 }));
    await node.settle();
    const pid = node.registry.whereis('slow')!;
    const ref = p.ctx.monitor(pid);
    await clock.advance(99);
    expect(start.status).toBe('pending');
    expect(node.isAlive(pid)).toBe(true);
    await clock.advance(1);
    expect(start.status).toBe('rejected');
    expectKeelError(start.error, 'ERR_START_FAILED', '100 ms');
    expect((start.error as { reason: unknown }).reason).toBe('timeout');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(node.registry.whereis('slow')).toBeUndefined();
    expect(node.internals().timers).toBe(0);
    gate.resolve();
  });

  it('does not kill the startLink caller when init times out', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const { pid: parent, ctx } = await spawnWithContext(node);
    const gate = deferred();
    const start = watch(GenServer.startLink(ctx, { init: () => gate.promise.then(() => 'late') }, undefined, { timeout: 50 }));
    await clock.advance(50);
    expect(start.status).toBe('rejected');
    expectKeelError(start.error, 'ERR_START_FAILED');
    expect(node.isAlive(parent)).toBe(true);
    expect(node.info(parent)?.links).toEqual([]);
    gate.resolve();
  });

  it('cancels the init deadline once init finished', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const pid = await GenServer.start(node, logServer(), undefined, { timeout: 100 });
    expect(node.internals().timers).toBe(0);
    await clock.advance(1000);
    expect(node.isAlive(pid)).toBe(true);
  });
});

// ---- GenServer.call ---------------------------------------------------------------------------

describe('GenServer.call', () => {
  it('answers with the reply of { reply, state } and keeps the new state for the next call', async () => {
    const node = track();
    const spec: Spec<number> = {
      init: () => 0,
      handleCall: (request: { add: number }, _from, n) => ({ reply: n + request.add, state: n + request.add }),
    };
    const pid = await GenServer.start(node, spec);
    expect(await GenServer.call(node, pid, { add: 1 })).toBe(1);
    expect(await GenServer.call(node, pid, { add: 2 })).toBe(3);
  });

  it('works from a process context as from the node', async () => {
    const node = track();
    const pid = await GenServer.start(node, holder());
    const p = probe(node);
    expect(await GenServer.call(p.ctx, pid, 'from a process')).toBe('from a process');
    expect(p.messages).toEqual([]);
  });

  it('waits for GenServer.reply when handleCall returns { noreply: true }, and another message gives the reply', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const answer = watch(GenServer.call(node, pid, 'hold'));
    await node.idle();
    expect(answer.status).toBe('pending');
    expect(held).toHaveLength(1);
    GenServer.cast(node, pid, { release: 'released' });
    await node.idle();
    expect(answer.status).toBe('resolved');
    expect(answer.value).toBe('released');
  });

  it('accepts GenServer.reply after an await, while the server goes on answering other calls', async () => {
    const node = track();
    const gate = deferred();
    const spec: Spec<null> = {
      init: () => null,
      handleCall: (request, from, state) => {
        if (request === 'slow') {
          void (async () => {
            await gate.promise;
            GenServer.reply(from, 'slow answer');
          })();
          return { noreply: true, state };
        }
        return { reply: 'fast answer', state };
      },
    };
    const pid = await GenServer.start(node, spec);
    const slow = watch(GenServer.call(node, pid, 'slow'));
    expect(await GenServer.call(node, pid, 'fast')).toBe('fast answer');
    expect(slow.status).toBe('pending');
    gate.resolve();
    await node.idle();
    expect(slow.status).toBe('resolved');
    expect(slow.value).toBe('slow answer');
  });

  it('answers the caller and then stops the server on { stop, reply, state }, terminate getting the reason and the state', async () => {
    const node = track();
    const p = probe(node);
    const seen: [ExitReason, unknown][] = [];
    const reason = { shutdown: 'asked to' };
    const spec: Spec<string> = {
      init: () => 'running',
      handleCall: (_request, _from) => ({ stop: reason, reply: 'bye', state: 'stopping' }),
      terminate: (r, state) => void seen.push([r, state]),
    };
    const pid = await GenServer.start(node, spec);
    const ref = p.ctx.monitor(pid);
    expect(await GenServer.call(node, pid, 'stop')).toBe('bye');
    expect((await receiveDown(p, ref)).reason).toBe(reason);
    expect(seen).toEqual([[reason, 'stopping']]);
  });

  it('sends the reply of { stop, reply, state } only once an async terminate has finished, as gen_server does', async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const entered = deferred();
    const log: string[] = [];
    const spec: Spec<string> = {
      init: () => 'running',
      handleCall: () => ({ stop: 'normal', reply: 'bye', state: 'stopping' }),
      terminate: async () => {
        entered.resolve();
        await gate.promise;
        log.push('terminated');
      },
    };
    const pid = await GenServer.start(node, spec);
    const ref = p.ctx.monitor(pid);
    const call = GenServer.call(node, pid, 'stop').then((reply) => log.push(`reply ${String(reply)}`));
    await entered.promise;
    await node.settle();
    expect(log).toEqual([]);
    gate.resolve();
    await call;
    expect(log).toEqual(['terminated', 'reply bye']);
    expect((await receiveDown(p, ref)).reason).toBe('normal');
  });

  it.each([
    ['{ stop, reply, state }', { stop: 42, reply: 'bye', state: 'stopping' }],
    ['{ stop, state }', { stop: 42, state: 'stopping' }],
  ])('crashes, with ERR_INVALID_ARGUMENT and its terminate told so, on a handleCall %s whose stop is no exit reason; its reply is not sent', async (_shape, result) => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    const pid = await GenServer.start(node, { init: () => 'running', handleCall: () => result as never, terminate: (reason) => void seen.push(reason) });
    const ref = p.ctx.monitor(pid);
    const e = await failure(() => GenServer.call(node, pid, 'stop'));
    expectKeelError(e, 'ERR_CALL_EXIT');
    expectKeelError((e as { reason: unknown }).reason, 'ERR_INVALID_ARGUMENT', '`stop`', '42');
    expect((await receiveDown(p, ref)).reason).toBe((e as { reason: unknown }).reason);
    expect(seen).toEqual([(e as { reason: unknown }).reason]);
  });

  it('crashes, with ERR_INVALID_ARGUMENT and no reply, on a handleCall { reply } without a state (gen_server: bad_return_value), rather than taking undefined for the state', async () => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    const pid = await GenServer.start(node, {
      init: () => 'running',
      handleCall: () => ({ reply: 'x' }) as never,
      terminate: (reason, state) => void seen.push(reason, state),
    });
    const ref = p.ctx.monitor(pid);
    const e = await failure(() => GenServer.call(node, pid, 'get'));
    expectKeelError(e, 'ERR_CALL_EXIT');
    expectKeelError((e as { reason: unknown }).reason, 'ERR_INVALID_ARGUMENT', 'handleCall result');
    expect((await receiveDown(p, ref)).reason).toBe((e as { reason: unknown }).reason);
    expect(seen).toEqual([(e as { reason: unknown }).reason, 'running']);
  });

  it('fails the caller with ERR_CALL_EXIT and the stop reason on { stop, state } without a reply', async () => {
    const node = track();
    const spec: Spec<null> = { init: () => null, handleCall: (_request, _from, state) => ({ stop: 'shutdown', state }) };
    const pid = await GenServer.start(node, spec);
    const e = await failure(() => GenServer.call(node, pid, 'stop'));
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect((e as { reason: unknown }).reason).toBe('shutdown');
    expect(node.isAlive(pid)).toBe(false);
  });

  it('queues calls while an async handleCall is pending: the server is busy, and the next call sees the state it left', async () => {
    const node = track();
    const gate = deferred();
    const spec: Spec<number> = {
      init: () => 0,
      handleCall: async (request, _from, n) => {
        if (request === 'slow') {
          await gate.promise;
          return { reply: 'slow done', state: n + 10 };
        }
        return { reply: n, state: n };
      },
    };
    const pid = await GenServer.start(node, spec);
    const slow = watch(GenServer.call(node, pid, 'slow'));
    const next = watch(GenServer.call(node, pid, 'get'));
    await node.settle();
    expect(node.info(pid)).toMatchObject({ status: 'busy', mailboxLength: 1 });
    expect([slow.status, next.status]).toEqual(['pending', 'pending']);
    gate.resolve();
    await node.idle();
    expect([slow.value, next.value]).toEqual(['slow done', 10]);
  });

  it('gives each of 1,000 concurrent calls from the node its own reply', async () => {
    const node = track();
    const spec: Spec<number> = {
      init: () => 0,
      handleCall: (request: { n: number }, _from, handled) => ({ reply: { n: request.n, square: request.n * request.n }, state: handled + 1 }),
    };
    const pid = await GenServer.start(node, spec);
    const ns = Array.from({ length: 1000 }, (_, i) => i);
    const replies = await Promise.all(ns.map((n) => GenServer.call(node, pid, { n })));
    expect(replies).toEqual(ns.map((n) => ({ n, square: n * n })));
    expect(node.internals().timers).toBe(0);
  });

  it('matches 1,000 deferred replies, given in reverse order, to their own callers', async () => {
    const node = track();
    const spec: Spec<{ request: number; from: From }[]> = {
      init: () => [],
      handleCall: (request: number, from, pending) => {
        const next = [...pending, { request, from }];
        if (next.length < 1000) return { noreply: true, state: next };
        for (const call of next.reverse()) GenServer.reply(call.from, `reply to ${call.request}`);
        return { noreply: true, state: [] };
      },
    };
    const pid = await GenServer.start(node, spec);
    const ns = Array.from({ length: 1000 }, (_, i) => i);
    const replies = await Promise.all(ns.map((n) => GenServer.call(node, pid, n)));
    expect(replies).toEqual(ns.map((n) => `reply to ${n}`));
  });

  it('keeps the deadlines of many pending calls on one host timer, and none once they are answered', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const calls = Array.from({ length: 100 }, (_, i) => watch(GenServer.call(node, pid, 'hold', { timeout: 1000 + i })));
    await node.idle();
    expect(held).toHaveLength(100);
    expect(node.internals().timers).toBe(100);
    expect(clock.pendingTimers).toBe(1);
    GenServer.cast(node, pid, { release: 'ok' });
    await node.idle();
    expect(calls.every((c) => c.status === 'resolved' && c.value === 'ok')).toBe(true);
    expect(node.internals().timers).toBe(0);
  });

  describe('timeouts', () => {
    it.each<[string, { timeout: number } | number | undefined, number]>([
      ['the default 5000 ms', undefined, 5000],
      ['{ timeout: 250 }', { timeout: 250 }, 250],
      ['a bare timeout of 100 (as Elixir’s call/3)', 100, 100],
    ])('rejects with ERR_CALL_TIMEOUT after %s on the node clock, not a millisecond before', async (_label, options, ms) => {
      const clock = new TestClock();
      const node = track({ clock });
      const pid = await GenServer.start(node, holder());
      const call = watch(options === undefined ? GenServer.call(node, pid, 'hold') : GenServer.call(node, pid, 'hold', options));
      await clock.advance(ms - 1);
      expect(call.status).toBe('pending');
      await clock.advance(1);
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_CALL_TIMEOUT', `${ms} ms`);
      expect((call.error as { timeoutMs: number }).timeoutMs).toBe(ms);
      expect(node.internals().timers).toBe(0);
    });

    it('a reply that is a promise which never settles still times out: the deadline holds until the caller has its value', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const later = deferred<string>();
      const pid = await GenServer.start(node, {
        init: () => 0,
        handleCall: (req: string, _from, n: number) => ({ reply: req === 'never' ? new Promise<string>(() => undefined) : req === 'later' ? later.promise : req, state: n }),
      });
      const never = watch(GenServer.call(node, pid, 'never', { timeout: 100 }));
      const settles = watch(GenServer.call(node, pid, 'later', { timeout: 100 }));
      await clock.advance(50);
      later.resolve('done');
      await node.idle();
      expect(settles.status).toBe('resolved');
      expect(settles.value).toBe('done'); // a promise reply is still the value it settles with
      expect(never.status).toBe('pending');
      await clock.advance(50);
      expect(never.status).toBe('rejected');
      expectKeelError(never.error, 'ERR_CALL_TIMEOUT', '100 ms');
      expect(await GenServer.call(node, pid, 'after')).toBe('after'); // the server was never held
      expect(node.internals().timers).toBe(0);
    });

    it('a reply that is a promise is given: the server exiting before it settles does not fail the call', async () => {
      const node = track();
      const later = deferred<string>();
      const pid = await GenServer.start(node, { init: () => 0, handleCall: (_req: string, _from, n: number) => ({ reply: later.promise, state: n }) });
      const call = watch(GenServer.call(node, pid, 'x'));
      await node.idle();
      await exitAndWait(node, pid, 'kill');
      later.resolve('after');
      await node.idle();
      expect(call.status).toBe('resolved');
      expect(call.value).toBe('after');
    });

    it('refuses options it does not know, or of the wrong type, with ERR_INVALID_ARGUMENT rather than ignoring them', async () => {
      const node = track();
      const pid = await GenServer.start(node, holder());
      for (const options of [{ timout: 100 }, 'fast', NaN, -1, { timeout: '100' }, null]) {
        expectKeelError(thrown(() => GenServer.call(node, pid, 'x', options as never)), 'ERR_INVALID_ARGUMENT');
      }
    });

    it('refuses options that cannot be read with ERR_INVALID_ARGUMENT, not a raw TypeError', async () => {
      // found by test/reliability/fuzz.otp.test.ts (fast-check seed -1933431209, path 71): a revoked proxy
      // as the options threw TypeError: Cannot perform 'ownKeys' out of the call's own key check
      const node = track();
      const pid = await GenServer.start(node, holder());
      const getter = Object.defineProperty({}, 'timeout', { enumerable: true, get: () => { throw new Error('timeout getter'); } });
      for (const [, make] of UNREADABLE) expectKeelError(thrown(() => GenServer.call(node, pid, 'x', make() as never)), 'ERR_INVALID_ARGUMENT', '`options`');
      expectKeelError(thrown(() => GenServer.call(node, pid, 'x', getter as never)), 'ERR_INVALID_ARGUMENT', '`options.timeout`', 'reading it threw Error: timeout getter');
      expect(node.info(pid)?.mailboxLength).toBe(0);
    });

    it('reads each call option once: a getter that answers 100, then NaN, gives a call that times out at 100 ms', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const held: From[] = [];
      const pid = await GenServer.start(node, holder(held));
      const reads = { timeout: 0, signal: 0 };
      const options = {
        get timeout() {
          return reads.timeout++ === 0 ? 100 : NaN;
        },
        get signal() {
          reads.signal++;
          return undefined;
        },
      };
      const call = watch(GenServer.call(node, pid, 'hold', options as never));
      expect(reads).toEqual({ timeout: 1, signal: 1 });
      await clock.advance(99);
      expect(call.status).toBe('pending');
      await clock.advance(1);
      expectKeelError(call.error, 'ERR_CALL_TIMEOUT');
    });

    it('discards a reply given after the timeout: the calling process gets no stray message and nothing throws', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const p = probe(node);
      const held: From[] = [];
      const pid = await GenServer.start(node, holder(held));
      const call = watch(GenServer.call(p.ctx, pid, 'hold', { timeout: 100 }));
      await clock.advance(100);
      expectKeelError(call.error, 'ERR_CALL_TIMEOUT');
      const [from] = held;
      // the server replies late, from its own callback: it must not crash
      GenServer.cast(node, pid, { release: 'late reply' });
      await node.idle();
      expect(held).toEqual([]);
      expect(node.isAlive(pid)).toBe(true);
      // and directly: replying again to a call nobody waits for does nothing
      expect(thrown(() => GenServer.reply(from!, 'later still'))).toBe('nothing was thrown');
      await drainThrough(node, p);
      expect(p.messages).toEqual(['marker']);
      expect(node.info(p)?.mailboxLength).toBe(0);
      expect(call.status).toBe('rejected');
      expect(await GenServer.call(node, pid, 'handled')).toBe(2);
    });
  });

  describe('a dead or unknown target', () => {
    it.each<[string, (node: KeelNode) => Promise<Pid | string>]>([
      ...noServer,
      ['a stale pid (same id, another creation)', async (node: KeelNode) => otherCreation(await GenServer.start(node, holder()))],
      ['a pid of another node', async () => GenServer.start(track(), holder())],
    ])('rejects at once with ERR_NOPROC for %s', async (_label, target) => {
      const clock = new TestClock();
      const node = track({ clock });
      const to = await target(node);
      const call = attempt(() => GenServer.call(node, to, 'hello'));
      await node.settle();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_NOPROC');
      expect(node.internals().timers).toBe(0);
    });
  });

  describe('the server dies during the call', () => {
    const serverDied = new Error('server died');
    it.each<[string, ExitReason | 'kill', ExitReason]>([
      ['an error', serverDied, serverDied],
      ["'kill'", 'kill', 'killed'],
      ['shutdown', 'shutdown', 'shutdown'],
    ])('rejects at once with ERR_CALL_EXIT carrying the exit reason when it is exited with %s', async (_label, signal, expected) => {
      const clock = new TestClock();
      const node = track({ clock });
      const pid = await GenServer.start(node, holder());
      const call = watch(GenServer.call(node, pid, 'hold'));
      await node.settle();
      expect(call.status).toBe('pending');
      node.exit(pid, signal);
      await node.settle();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_CALL_EXIT');
      expect((call.error as { reason: unknown }).reason).toBe(expected);
      expect(clock.now()).toBe(0);
      expect(node.internals().timers).toBe(0);
    });

    it('rejects at once with ERR_CALL_EXIT when the caller is a process busy inside its own async handler', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const p = probe(node);
      const pid = await GenServer.start(node, holder([], p));
      const caller = node.spawn((ctx) => async (m) => {
        if (m !== 'go') return;
        try {
          ctx.send(p, { outcome: await GenServer.call(ctx, pid, 'hold') });
        } catch (e) {
          ctx.send(p, { outcome: e });
        }
      });
      node.send(caller, 'go');
      await p.receive((m) => m === 'holding');
      expect(node.info(caller)?.status).toBe('busy');
      const boom = new Error('server died under a busy caller');
      node.exit(pid, boom);
      const m = await p.receive(isOutcome);
      const outcome = (m as Outcome).outcome;
      expectKeelError(outcome, 'ERR_CALL_EXIT', 'server died under a busy caller');
      expect((outcome as { reason: unknown }).reason).toBe(boom);
      expect(clock.now()).toBe(0);
    });

    it('rejects with ERR_NOPROC when the node shuts down under a pending call', async () => {
      const node = track();
      const pid = await GenServer.start(node, holder());
      const call = watch(GenServer.call(node, pid, 'hold'));
      await node.idle();
      expect(call.status).toBe('pending');
      await node.shutdown();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_NOPROC');
    });
  });

  it('rejects a call with ERR_INVALID_ARGUMENT, not the engine\'s TypeError, when the reply is a revoked proxy or its `then` getter throws (from handleCall or GenServer.reply); the server lives on', async () => {
    const node = track();
    const thenThrows = Object.defineProperty({}, 'then', {
      get() {
        throw new Error('then getter');
      },
    });
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (r: 'proxy' | 'then' | 'later' | 'ok', from, state) => {
        if (r === 'later') {
          GenServer.reply(from, revokedProxy());
          return { noreply: true, state };
        }
        return { reply: r === 'proxy' ? revokedProxy() : r === 'then' ? thenThrows : 'fine', state };
      },
    });
    for (const r of ['proxy', 'then', 'later'] as const) {
      const e = await failure(() => GenServer.call(node, pid, r));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT');
      expect(String((e as Error).message)).toContain('reply');
    }
    expect(await GenServer.call(node, pid, 'ok')).toBe('fine');
  });

  // Code running synchronously inside a server's turn (its handler or init before their first
  // await, a telemetry handler they set off) runs as the server: its call to the server through the
  // node is the server calling itself, refused as a call through its context is. The calls wait up to
  // 60 s on a TestClock nobody advances: without the refusal they stay pending, and the test fails
  describe("a call through the node from inside the server's own turn", () => {
    it.each([
      ['its pid', 'its context'],
      ['its name', 'its context'],
      ['its pid', 'the node'],
      ['its name', 'the node'],
    ])('rejects at once with ERR_DEADLOCK when an async handler awaits a call to %s through %s', async (by, through) => {
      const clock = new TestClock();
      const node = track({ clock });
      const spec: Spec<null> = {
        init: () => null,
        handleCall: async (request, _from, state, ctx) => {
          if (request !== 'call yourself') return { reply: 'pong', state };
          return { reply: await failure(() => GenServer.call(through === 'the node' ? node : ctx, by === 'its pid' ? ctx.self : 'narcissus', 'ping', 60_000)), state };
        },
      };
      const pid = await GenServer.start(node, spec, undefined, { name: 'narcissus' });
      const call = watch(GenServer.call(node, pid, 'call yourself'));
      await node.settle();
      expect(call.status).toBe('resolved');
      expectKeelError(call.value, 'ERR_DEADLOCK');
      expect((call.value as Error).message).toBe(`${by === 'its pid' ? String(pid) : `'narcissus' (${String(pid)})`} called itself: it would wait for itself forever`);
      expect(node.isAlive(pid)).toBe(true);
      expect(node.internals().timers).toBe(0);
    });

    it.each(['its pid', 'its name'])('rejects with ERR_DEADLOCK a call to %s through the node that its init awaits', async (by) => {
      const clock = new TestClock();
      const node = track({ clock });
      const spec: Spec<unknown> = {
        init: async (_arg, ctx) => failure(() => GenServer.call(node, by === 'its pid' ? ctx.self : 'narcissus', 'ping', 60_000)),
        handleCall: (request, _from, state) => ({ reply: request === 'seen' ? state : 'pong', state }),
      };
      const start = watch(GenServer.start(node, spec, undefined, { name: 'narcissus' }));
      await node.settle();
      expect(start.status).toBe('resolved');
      expectKeelError(await GenServer.call(node, start.value!, 'seen'), 'ERR_DEADLOCK', 'called itself');
    });

    it('rejects with ERR_DEADLOCK a call to the server from a telemetry handler its turn set off (the handler runs as the server)', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const pid = await GenServer.start(node, { init: () => null, handleCall: (_request: unknown, _from: From, state: null) => ({ reply: 'pong', state }) });
      let call: Watched<unknown> | undefined;
      node.telemetry.attach('calls-the-server', ['keel.gen_server.unexpected_message'], (_event, _m, meta) => {
        call = watch(GenServer.call(node, meta.pid as Pid, 'ping', 60_000));
      });
      node.send(pid, 'stray');
      await node.settle();
      expect(call?.status).toBe('rejected');
      expectKeelError(call?.error, 'ERR_DEADLOCK', 'called itself');
    });

    it("serves a call through the node made from another process's turn", async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const server = await GenServer.start(node, { init: () => null, handleCall: (_request: unknown, _from: From, state: null) => ({ reply: 'pong', state }) });
      const client = await GenServer.start(node, {
        init: () => null,
        handleCall: async (_request: unknown, _from: From, state: null) => ({ reply: await GenServer.call(node, server, 'ping', 60_000), state }),
      });
      const call = watch(GenServer.call(node, client, 'go'));
      await node.settle();
      expect(call.status).toBe('resolved');
      expect(call.value).toBe('pong');
    });

    it('serves a call to itself through the node made after its handler\'s first await, once the handler has finished (busy, the server cannot tell it from another\'s)', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      let later: Watched<unknown> | undefined;
      const spec: Spec<null> = {
        init: () => null,
        handleCall: async (request, _from, state, ctx) => {
          if (request !== 'call yourself later') return { reply: 'pong', state };
          await Promise.resolve();
          // eslint-disable-next-line keel/no-self-call -- on purpose and not awaited: the server serves it once this handler has finished
          later = watch(GenServer.call(node, ctx.self, 'ping', 60_000));
          return { reply: 'called', state };
        },
      };
      const pid = await GenServer.start(node, spec);
      expect(await GenServer.call(node, pid, 'call yourself later')).toBe('called');
      await node.settle();
      expect(later?.status).toBe('resolved');
      expect(later?.value).toBe('pong');
    });
  });

  describe('signal', () => {
    it('rejects with ERR_ABORTED carrying the abort reason, without delivering the request, when the signal is already aborted', async () => {
      const node = track();
      const pid = await GenServer.start(node, holder());
      const controller = new AbortController();
      controller.abort('changed my mind');
      const call = attempt(() => GenServer.call(node, pid, 'hello', { signal: controller.signal }));
      await node.settle();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_ABORTED');
      expect((call.error as { reason: unknown }).reason).toBe('changed my mind');
      expect(await GenServer.call(node, pid, 'handled')).toBe(1);
    });

    it('throws ERR_INVALID_ARGUMENT for an object made from AbortSignal.prototype that is no signal (the engine\'s getters and addEventListener refuse it), and the server never sees the request', async () => {
      const node = track();
      const pid = await GenServer.start(node, holder());
      const bare = Object.create(AbortSignal.prototype) as AbortSignal;
      const notAborted = Object.defineProperty(Object.create(AbortSignal.prototype), 'aborted', { value: false }) as AbortSignal;
      for (const signal of [bare, notAborted]) {
        expectKeelError(thrown(() => GenServer.call(node, pid, 'hello', { signal })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
      }
      expect(await GenServer.call(node, pid, 'handled')).toBe(1);
    });

    it('rejects with ERR_ABORTED when the signal aborts during the call, and discards the later reply', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const p = probe(node);
      const held: From[] = [];
      const pid = await GenServer.start(node, holder(held));
      const controller = new AbortController();
      const call = watch(GenServer.call(p.ctx, pid, 'hold', { signal: controller.signal }));
      await node.idle();
      expect(call.status).toBe('pending');
      controller.abort('stop waiting');
      await node.settle();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_ABORTED');
      expect((call.error as { reason: unknown }).reason).toBe('stop waiting');
      expect(node.internals().timers).toBe(0);
      GenServer.cast(node, pid, { release: 'nobody listens' });
      await drainThrough(node, p);
      expect(p.messages).toEqual(['marker']);
      expect(node.isAlive(pid)).toBe(true);
    });
  });

  describe('a caller that dies while waiting', () => {
    it('leaves nothing behind: no deadline, no death hook on the server, and a later reply does nothing', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const p = probe(node);
      const held: From[] = [];
      const pid = await GenServer.start(node, holder(held, p));
      const caller = node.spawn((ctx) => async () => {
        await GenServer.call(ctx, pid, 'hold', { timeout: 5000 });
      });
      node.send(caller, 'go');
      await p.receive((m) => m === 'holding');
      await node.settle(); // a turn of the event loop: the deadline of a call still pending is armed
      expect(node.internals().timers).toBe(1);
      expect(deathHooksOn(node, pid)).toBe(1);
      node.exit(caller, 'kill');
      expect(node.isAlive(caller)).toBe(false);
      expect(node.internals().timers).toBe(0);
      expect(deathHooksOn(node, pid)).toBe(0);
      expect(thrown(() => GenServer.reply(held[0]!, 'too late'))).toBe('nothing was thrown');
      await clock.advance(5000);
      await node.idle();
      expect(node.internals()).toMatchObject({ timers: 0, busy: 0, runQueue: 0 });
      expect(node.isAlive(pid)).toBe(true);
      expect(await GenServer.call(node, pid, 'handled')).toBe(2);
    });

    it('throws ERR_PROCESS_EXITED for a call from a zombie continuation, and the server never sees the request', async () => {
      const clock = new TestClock();
      const node = track({ clock });
      const pid = await GenServer.start(node, holder());
      const gate = deferred();
      const attempted = deferred<Watched<unknown>>();
      const zombie = node.spawn((ctx) => async () => {
        await gate.promise;
        attempted.resolve(attempt(() => GenServer.call(ctx, pid, 'from beyond')));
      });
      node.send(zombie, 'go');
      await node.settle();
      node.exit(zombie, 'kill');
      gate.resolve();
      const call = await attempted.promise;
      await node.settle();
      expect(call.status).toBe('rejected');
      expectKeelError(call.error, 'ERR_PROCESS_EXITED');
      expect(node.internals().timers).toBe(0);
      expect(await GenServer.call(node, pid, 'handled')).toBe(1);
    });
  });

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

  it.each(['reject', 'drop_newest'] as const)('fails a call at once with ERR_MAILBOX_FULL when a full %s mailbox refuses it', async (overflow) => {
    const node = track();
    const gate = deferred();
    const server = node.spawn(() => async () => gate.promise, { mailbox: { capacity: 1, overflow } });
    node.send(server, 'busy');
    await node.settle();
    node.send(server, 'fills the mailbox');
    const call = watch(GenServer.call(node, server, 'refused', { timeout: Infinity }));
    await node.settle();
    expect(isKeelError(call.error, 'ERR_MAILBOX_FULL')).toBe(true);
    gate.resolve();
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

// ---- GenServer.cast ---------------------------------------------------------------------------

describe('GenServer.cast', () => {
  it('runs handleCast with the request and keeps the state it returns', async () => {
    const node = track();
    const pid = await GenServer.start(node, logServer());
    GenServer.cast(node, pid, 'a');
    GenServer.cast(node, pid, 'b');
    expect(await GenServer.call(node, pid, 'log')).toEqual(['a', 'b']);
  });

  it('keeps the server busy during an async handleCast: a call waits for the state it leaves', async () => {
    const node = track();
    const gate = deferred();
    const pid = await GenServer.start(
      node,
      logServer({
        handleCast: async (request, log) => {
          await gate.promise;
          return [...log, request];
        },
      }),
    );
    GenServer.cast(node, pid, 'slow cast');
    const log = watch(GenServer.call(node, pid, 'log'));
    await node.settle();
    expect(node.info(pid)?.status).toBe('busy');
    expect(log.status).toBe('pending');
    gate.resolve();
    await node.idle();
    expect(log.value).toEqual(['slow cast']);
  });

  it('is dropped with a keel.message.dropped event when the server is dead', async () => {
    const node = track();
    const pid = await GenServer.start(node, logServer());
    await GenServer.stop(node, pid);
    const captured = captureEvents(node, ['keel.message.dropped']);
    expect(thrown(() => GenServer.cast(node, pid, 'into the void'))).toBe('nothing was thrown');
    expect(captured.events).toHaveLength(1);
    expect(captured.events[0]?.metadata.reason).toBe('noproc');
    captured.stop();
  });
});

// ---- handleInfo -------------------------------------------------------------------------------

describe('handleInfo', () => {
  it('receives the messages that are neither calls nor casts, and keeps the state it returns', async () => {
    const node = track();
    const pid = await GenServer.start(node, logServer({ handleInfo: (message, log) => [...log, { info: message }] }));
    node.send(pid, 'plain');
    GenServer.cast(node, pid, 'cast');
    expect(await GenServer.call(node, pid, 'log')).toEqual([{ info: 'plain' }, 'cast']);
  });

  it('receives the Exit of a linked process other than its parent when the server traps exits, and keeps running', async () => {
    const node = track();
    const p = probe(node);
    const spec: Spec<null> = {
      init: (_arg, ctx) => {
        ctx.trapExits();
        return null;
      },
      handleCall: (_request, _from, state, ctx) => ({ reply: ctx.spawnLink(idleInit), state }),
      handleInfo: (message, state, ctx) => {
        ctx.send(p, { forwarded: message });
        return state;
      },
    };
    const pid = await GenServer.start(node, spec);
    const child: Pid = await GenServer.call(node, pid, 'spawn a linked child');
    const boom = new Error('child crashed');
    node.exit(child, boom);
    const m = await p.receive(isForwarded);
    const exit = (m as Forwarded).forwarded as Exit;
    expect(isExit(exit)).toBe(true);
    expect(exit.reason).toBe(boom);
    expect(exit.from !== 'node' && Pid.equals(exit.from, child)).toBe(true);
    expect(node.isAlive(pid)).toBe(true);
  });

  it('by default reports an unexpected message as keel.gen_server.unexpected_message and does not crash', async () => {
    const node = track();
    const pid = await GenServer.start(node, logServer());
    // from here on (the start's own keel.gen_server.init is not what this test is about)
    const captured = captureEvents(node, ['keel.gen_server.']);
    node.send(pid, { stray: true });
    GenServer.cast(node, pid, 'after');
    expect(await GenServer.call(node, pid, 'log')).toEqual(['after']);
    expect(node.isAlive(pid)).toBe(true);
    expect(captured.events).toHaveLength(1);
    const [event] = captured.events;
    expect(event?.event).toBe('keel.gen_server.unexpected_message');
    expect(event?.metadata.message).toEqual({ stray: true });
    expect(String(event?.metadata.pid)).toBe(String(pid));
    captured.stop();
  });
});

// ---- handleContinue ---------------------------------------------------------------------------

describe('handleContinue', () => {
  it.each(['sync', 'async'] as const)(
    'chains %s handleContinue callbacks while they return { state, continue }, holding messages until the last one',
    async (mode) => {
      const node = track();
      // counts down from n: logs n, then continues with n - 1 until 1
      const countDown = (n: unknown, log: number[]) => {
        const next = [...log, n as number];
        return (n as number) > 1 ? { state: next, continue: (n as number) - 1 } : next;
      };
      const spec: Spec<number[]> = {
        init: () => ({ state: [], continue: 3 }),
        handleContinue:
          mode === 'sync'
            ? countDown
            : async (n, log) => {
                await Promise.resolve();
                return countDown(n, log);
              },
        handleCall: (_request, _from, log) => ({ reply: log, state: log }),
      };
      const pid = await GenServer.start(node, spec);
      expect(await GenServer.call(node, pid, 'log')).toEqual([3, 2, 1]);
    },
  );

  it.each([
    ['{ state, continue }', (state: number, left: number) => ({ state, continue: left })],
    ['{ noreply: true, state, continue }', (state: number, left: number) => ({ noreply: true as const, state, continue: left })],
  ])('chains 100,000 sync handleContinue callbacks returning %s without growing the stack', async (_form, result) => {
    const node = track();
    const spec: Spec<number> = {
      init: () => 0,
      handleCast: (n, state) => result(state, n as number),
      handleContinue: (left, n) => ((left as number) === 0 ? n : result(n + 1, (left as number) - 1)),
      handleCall: (_request, _from, n) => ({ reply: n, state: n }),
    };
    const pid = await GenServer.start(node, spec);
    GenServer.cast(node, pid, 100_000);
    expect(await GenServer.call(node, pid, 'count')).toBe(100_000);
  });

  it('runs after a handleCall result that carries continue, after the reply and before the next message', async () => {
    const node = track();
    const spec: Spec<string[]> = {
      init: () => [],
      handleCall: (request, _from, log) =>
        request === 'log' ? { reply: log, state: log } : { reply: 'first', state: [...log, 'call'], continue: 'then' },
      handleContinue: (info, log) => [...log, `continue:${String(info)}`],
    };
    const pid = await GenServer.start(node, spec);
    const [first, log] = await Promise.all([GenServer.call(node, pid, 'go'), GenServer.call(node, pid, 'log')]);
    expect(first).toBe('first');
    expect(log).toEqual(['call', 'continue:then']);
  });
});

// ---- stop and continue from handleCast, handleInfo and handleContinue --------------------------

describe('{ stop, state } and { state, continue } from handleCast, handleInfo and handleContinue', () => {
  /** Each of `states`, returned by handleCast, is the server's state after it (no result read into it), and the server lives. */
  async function expectKeptAsStates(node: Node, states: readonly unknown[]): Promise<void> {
    const pid = await GenServer.start(node, {
      init: () => null as unknown,
      handleCall: (_r, _f, state) => ({ reply: state, state }),
      handleCast: (i: number) => states[i],
    });
    for (let i = 0; i < states.length; i++) {
      GenServer.cast(node, pid, i);
      expect(await GenServer.call(node, pid, 'state')).toBe(states[i]);
    }
    expect(node.isAlive(pid)).toBe(true);
  }

  /** A server that stops (or continues) on what it is cast or sent, recording terminate(reason, state) and the continues. */
  function stopper(seen: unknown[], mode: 'sync' | 'async' = 'sync'): Spec<number> {
    const result = (m: unknown, n: number): unknown => {
      if (m === 'stop') return { stop: 'normal', state: n + 1 };
      if (m === 'shutdown') return { stop: { shutdown: 'asked' }, state: n + 1 };
      if (m === 'continue') return { state: n + 1, continue: 'then' };
      if (m === 'continue-stop') return { state: n + 1, continue: 'stop' };
      return n + 1;
    };
    const run = (m: unknown, n: number): any => (mode === 'sync' ? result(m, n) : Promise.resolve().then(() => result(m, n)));
    return {
      init: () => 0,
      handleCall: (_r, _f, n) => ({ reply: n, state: n }),
      handleCast: (m: unknown, n) => run(m, n),
      handleInfo: (m, n) => run(m, n),
      handleContinue: (info, n) => {
        seen.push(`continue:${String(info)}@${n}`);
        return info === 'stop' ? { stop: 'normal', state: n * 10 } : n;
      },
      terminate: (reason, n) => void seen.push(reason, n),
    };
  }

  it.each(['sync', 'async'] as const)('a %s handleCast or handleInfo that returns { stop, state } runs terminate with that state and exits with the reason', async (mode) => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    const a = await GenServer.start(node, stopper(seen, mode));
    let ref = p.ctx.monitor(a);
    GenServer.cast(node, a, 1);
    GenServer.cast(node, a, 'stop');
    GenServer.cast(node, a, 'never handled');
    expect((await receiveDown(p, ref)).reason).toBe('normal');
    expect(seen).toEqual(['normal', 2]);
    const b = await GenServer.start(node, stopper(seen, mode));
    ref = p.ctx.monitor(b);
    node.send(b, 'shutdown');
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'asked' });
    expect(seen).toEqual(['normal', 2, { shutdown: 'asked' }, 1]);
  });

  it.each(['sync', 'async'] as const)('a %s handleCast or handleInfo that returns { state, continue } runs handleContinue before the next message', async (mode) => {
    const node = track();
    const seen: unknown[] = [];
    const pid = await GenServer.start(node, stopper(seen, mode));
    GenServer.cast(node, pid, 'continue');
    node.send(pid, 'continue');
    expect(await GenServer.call(node, pid, 'n')).toBe(2);
    expect(seen).toEqual(['continue:then@1', 'continue:then@2']);
  });

  it('a handleContinue that returns { stop, state } stops the server', async () => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    const pid = await GenServer.start(node, stopper(seen));
    const ref = p.ctx.monitor(pid);
    GenServer.cast(node, pid, 'continue-stop');
    expect((await receiveDown(p, ref)).reason).toBe('normal');
    expect(seen).toEqual(['continue:stop@1', 'normal', 10]);
  });

  it('a transient child that stops itself with { stop: normal } from handleInfo is not restarted; one that stops with an error is', async () => {
    const node = track();
    const w = await transientChild(node, () => ({ init: () => 0, handleInfo: (m, n) => ({ stop: m === 'fail' ? new Error('failed') : 'normal', state: n }) }));
    node.send(await w.pid(), 'fail');
    await node.idle();
    expect(w.starts()).toBe(2);
    node.send(await w.pid(), 'done');
    await node.idle();
    expect(w.starts()).toBe(2);
    expect(await Supervisor.countChildren(node, w.sup)).toMatchObject({ specs: 1, active: 0 });
  });

  it('takes only exactly { stop, state } and { state, continue }: a state with more keys, with the key on its prototype, or that cannot be inspected stays the state', async () => {
    const node = track();
    class Job {
      state = 'idle';
      stop(): void {}
    }
    // a proxy that answers `then` (it is no thenable) but whose own keys cannot be read
    const opaque = new Proxy({}, { getOwnPropertyDescriptor: () => { throw new TypeError('trap'); }, ownKeys: () => { throw new TypeError('trap'); } });
    const states: unknown[] = [{ stop: 'normal', state: 1, more: true }, { state: 1, continue: 'x', more: true }, new Job(), Object.create({ stop: 'normal', state: 1 }), opaque, { stop: 'normal' }, { continue: 'x' }];
    await expectKeptAsStates(node, states);
  });

  it('keeps a revoked proxy, or an object whose `then` getter throws, returned by init, handleCast, handleInfo or handleContinue as the state (no thenable)', async () => {
    const node = track();
    const proxy = revokedProxy();
    const thenThrows = Object.defineProperty({}, 'then', {
      get() {
        throw new Error('then getter');
      },
    });
    const pid = await GenServer.start(node, {
      init: () => proxy,
      // (a reply cannot be either: a promise resolved with it reads its `then`)
      handleCall: (_r: 'state', _f, state) => ({ reply: state === proxy ? 'proxy' : state === thenThrows ? 'then throws' : 'other', state }),
      handleCast: (m: 'then' | 'continue') => (m === 'then' ? thenThrows : { state: null, continue: 'proxy' }),
      handleInfo: () => proxy,
      handleContinue: () => proxy,
    });
    expect(await GenServer.call(node, pid, 'state')).toBe('proxy');
    GenServer.cast(node, pid, 'then');
    expect(await GenServer.call(node, pid, 'state')).toBe('then throws');
    node.send(pid, 'info');
    expect(await GenServer.call(node, pid, 'state')).toBe('proxy');
    GenServer.cast(node, pid, 'then');
    GenServer.cast(node, pid, 'continue');
    expect(await GenServer.call(node, pid, 'state')).toBe('proxy');
    expect(node.isAlive(pid)).toBe(true);
  });

  it.each([
    ['handleCall', 'a revoked proxy', () => revokedProxy()],
    ['handleCall', '{ reply, state } whose reply getter throws', () => ({ state: 1, get reply() { throw new Error('getter'); } })],
    ['handleCast', '{ stop, state } whose state getter throws', () => ({ stop: 'normal', get state() { throw new Error('getter'); } })],
    ['handleContinue', '{ state, continue } whose continue getter throws', () => ({ state: 1, get continue() { throw new Error('getter'); } })],
  ])('crashes as a throw does, terminate run with the error and the state before, when a %s result cannot be read (%s)', async (callback, _label, result) => {
    const node = track();
    const p = probe(node);
    const seen: unknown[] = [];
    const pid = await GenServer.start(node, {
      init: () => 'before',
      handleCall: () => (callback === 'handleCall' ? result() : { reply: 'ok', state: 'before', continue: 'go' }) as never,
      handleCast: (_m: string) => result() as never,
      handleContinue: () => result() as never,
      terminate: (reason, state) => void seen.push(String(reason), state),
    });
    const ref = p.ctx.monitor(pid);
    if (callback === 'handleCast') GenServer.cast(node, pid, 'x');
    else void GenServer.call(node, pid, 'x').catch(() => undefined);
    const reason = (await receiveDown(p, ref)).reason;
    expect(reason).toBeInstanceOf(Error);
    expect(seen).toEqual([String(reason), 'before']);
  });

  it('takes { stop, state } whose stop is no exit reason, or in a class instance, for a state ({ state: "idle", stop: false } is one)', async () => {
    const node = track();
    class Stopper {
      stop = 'normal';
      state = 1;
    }
    const states: unknown[] = [{ state: 'idle', stop: false }, { stop: 42, state: 1 }, new Stopper()];
    await expectKeptAsStates(node, states);
  });
});

// ---- timeouts (gen_server's {noreply, State, Timeout}) ------------------------------------------

describe('a timeout from a callback', () => {
  /** A server that logs what handleInfo gets, and returns the timeout its request or message asks for (init's through handleContinue). */
  function timed(log: unknown[], initTimeout?: number): Spec<number> {
    return {
      init: () => (initTimeout === undefined ? 0 : { state: 0, continue: initTimeout }),
      handleContinue: (timeout, n) => ({ noreply: true, state: n, timeout: timeout as number }),
      handleCall: (request, _from, n) => {
        const r = request as { timeout?: number; noreply?: true } | 'n';
        if (r === 'n') return { reply: n, state: n };
        return r.noreply === true ? { noreply: true, state: n + 1, timeout: r.timeout! } : { reply: 'ok', state: n + 1, timeout: r.timeout! };
      },
      handleCast: (request: unknown, n) => (typeof request === 'number' ? { noreply: true, state: n + 1, timeout: request } : typeof request === 'object' && request !== null ? { noreply: true, state: n + 1, timeout: (request as { timeout: number }).timeout } : n + 1),
      handleInfo: (m, n) => {
        log.push(m === GenServer.TIMEOUT ? 'TIMEOUT' : m);
        return n;
      },
    };
  }

  it('gives handleInfo GenServer.TIMEOUT once no message came within it, on the node clock, not a millisecond before', async () => {
    const { node, clock } = clockedNode(track);
    const log: unknown[] = [];
    await GenServer.start(node, timed(log, 100));
    await advance(node, clock, 99);
    expect(log).toEqual([]);
    await advance(node, clock, 1);
    expect(log).toEqual(['TIMEOUT']);
    await advance(node, clock, 1000);
    expect(log).toEqual(['TIMEOUT']); // once: handleInfo's plain result set none
  });

  it('is off once any message comes first (a call, a cast, an info); a Sys call does not count', async () => {
    const { node, clock } = clockedNode(track);
    const log: unknown[] = [];
    const pid = await GenServer.start(node, timed(log));
    GenServer.cast(node, pid, 100);
    await advance(node, clock, 50);
    expect(await Sys.getState(node, pid)).toBe(1);
    await advance(node, clock, 50);
    expect(log).toEqual(['TIMEOUT']);
    GenServer.cast(node, pid, 100);
    await advance(node, clock, 99);
    GenServer.cast(node, pid, 'no timeout');
    await advance(node, clock, 500);
    expect(log).toEqual(['TIMEOUT']);
    expect(await GenServer.call(node, pid, 'n')).toBe(3);
    node.send(pid, 'hello');
    GenServer.cast(node, pid, 100);
    node.send(pid, 'again'); // before the timeout: it is off
    await advance(node, clock, 500);
    expect(log).toEqual(['TIMEOUT', 'hello', 'again']);
  });

  it('comes from handleCall results too, after the reply ({ reply, state, timeout } and { noreply, state, timeout })', async () => {
    const { node, clock } = clockedNode(track);
    const log: unknown[] = [];
    const pid = await GenServer.start(node, timed(log));
    expect(await GenServer.call(node, pid, { timeout: 10 })).toBe('ok');
    await advance(node, clock, 10);
    expect(log).toEqual(['TIMEOUT']);
    const deferred = watch(GenServer.call(node, pid, { timeout: 20, noreply: true }, 5000));
    await advance(node, clock, 20);
    expect(log).toEqual(['TIMEOUT', 'TIMEOUT']);
    expect(deferred.status).toBe('pending');
  });

  it('0 lets the messages already queued come first; Infinity is none', async () => {
    const { node, clock } = clockedNode(track);
    const log: unknown[] = [];
    const pid = await GenServer.start(node, timed(log));
    GenServer.cast(node, pid, 0);
    node.send(pid, 'queued');
    await advance(node, clock, 0);
    expect(log).toEqual(['queued']);
    GenServer.cast(node, pid, 0);
    await advance(node, clock, 0);
    expect(log).toEqual(['queued', 'TIMEOUT']);
    GenServer.cast(node, pid, Infinity);
    await advance(node, clock, 1e9);
    expect(log).toEqual(['queued', 'TIMEOUT']);
  });

  it("is a symbol no message sent can be: a 'timeout' sent is an ordinary message", async () => {
    const { node } = clockedNode(track);
    const log: unknown[] = [];
    const pid = await GenServer.start(node, timed(log));
    node.send(pid, 'timeout');
    await node.idle();
    expect(log).toEqual(['timeout']);
    expect(typeof GenServer.TIMEOUT).toBe('symbol');
  });

  it('crashes on a timeout that is no number of ms >= 0 (from a cast, or from the continue of init), or on a continue with a timeout', async () => {
    for (const bad of [-1, Number.NaN, '5', null]) {
      const { node } = clockedNode(track);
      const p = probe(node);
      const pid = await GenServer.start(node, timed([]));
      const ref = p.ctx.monitor(pid);
      GenServer.cast(node, pid, { timeout: bad });
      expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', '`timeout`');
      // the continue runs as the start resolves: its crash comes to a linked starter that traps exits
      p.ctx.trapExits();
      const other = await GenServer.startLink(p.ctx, timed([], bad as number));
      const exit = (await p.receive((m) => isExit(m) && m.from === other)) as Exit;
      expectKeelError(exit.reason, 'ERR_INVALID_ARGUMENT', '`timeout`');
    }
    const { node } = clockedNode(track);
    const p = probe(node);
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (_r, _f, state) => ({ reply: 1, state, continue: 'x', timeout: 5 }),
      handleCast: (_r: 'go', state) => ({ noreply: true, state, continue: 'x', timeout: 5 }),
      handleContinue: (_c, s) => s,
    });
    const ref = p.ctx.monitor(pid);
    expect(await GenServer.call(node, pid, 'go')).toBe(1); // replied, as gen_server does, then crashed
    expectKeelError((await receiveDown(p, ref)).reason, 'ERR_INVALID_ARGUMENT', 'not both');
    const other = await GenServer.start(node, { init: () => 0, handleCast: (_r: 'go', state) => ({ noreply: true, state, continue: 'x', timeout: 5 }), handleContinue: (_c, s) => s });
    const otherRef = p.ctx.monitor(other);
    GenServer.cast(node, other, 'go');
    expectKeelError((await receiveDown(p, otherRef)).reason, 'ERR_INVALID_ARGUMENT', 'not both');
  });

  it('reads { noreply: true, state } with a timeout or a continue (or neither) from handleCast, handleInfo and handleContinue; a class instance or a key more is a state', async () => {
    const { node, clock } = clockedNode(track);
    const log: unknown[] = [];
    class Noreply {
      noreply = true;
      state = 7;
      timeout = 5;
    }
    const instance = new Noreply();
    const extra = { noreply: true, state: 8, timeout: 5, other: 1 };
    const pid = await GenServer.start(node, {
      init: () => 0 as unknown,
      handleCall: (_r, _f, state) => ({ reply: state, state }),
      handleCast: (m: 'plain' | 'continue' | 'instance' | 'extra') =>
        m === 'plain' ? { noreply: true, state: 1 } : m === 'continue' ? { noreply: true, state: 2, continue: 'c' } : m === 'instance' ? instance : extra,
      handleContinue: (c, state) => {
        log.push(`continue:${String(c)}@${String(state)}`);
        return state;
      },
      handleInfo: (m, state) => {
        log.push(m === GenServer.TIMEOUT ? 'TIMEOUT' : m);
        return state;
      },
    });
    GenServer.cast(node, pid, 'plain');
    expect(await GenServer.call(node, pid, 'state')).toBe(1);
    GenServer.cast(node, pid, 'continue');
    expect(await GenServer.call(node, pid, 'state')).toBe(2);
    GenServer.cast(node, pid, 'instance');
    expect(await GenServer.call(node, pid, 'state')).toBe(instance);
    GenServer.cast(node, pid, 'extra');
    expect(await GenServer.call(node, pid, 'state')).toBe(extra);
    await advance(node, clock, 100);
    expect(log).toEqual(['continue:c@2']);
  });
});

// ---- terminate --------------------------------------------------------------------------------

describe('terminate', () => {
  it('runs with shutdown and the latest state when node.shutdown stops a server that traps exits, and shutdown waits for it', async () => {
    const node = track();
    const gate = deferred();
    const seen: [ExitReason, unknown][] = [];
    const finished: string[] = [];
    const pid = await GenServer.start(
      node,
      trapping(seen, async () => {
        await gate.promise;
        finished.push('terminate done');
      }),
      'first state',
    );
    await GenServer.call(node, pid, 'latest state');
    const shutdown = watch(node.shutdown());
    await node.settle();
    expect(seen).toEqual([['shutdown', 'latest state']]);
    expect(node.isAlive(pid)).toBe(true);
    expect(shutdown.status).toBe('pending');
    gate.resolve();
    await node.shutdown();
    expect(finished).toEqual(['terminate done']);
    expect(node.isAlive(pid)).toBe(false);
  });

  it.each<[string, ExitReason]>([
    ['shutdown', 'shutdown'],
    ['a crash', new Error('parent crashed')],
  ])('runs with the reason and the state when the startLink parent exits with %s, for a server that traps exits', async (_label, reason) => {
    const node = track();
    const p = probe(node);
    const seen: [ExitReason, unknown][] = [];
    const { pid: parent, ctx } = await spawnWithContext(node);
    const pid = await GenServer.startLink(ctx, trapping(seen), 'linked state');
    const ref = p.ctx.monitor(pid);
    node.exit(parent, reason);
    expect((await receiveDown(p, ref)).reason).toBe(reason);
    expect(seen).toEqual([[reason, 'linked state']]);
  });

  it('does not run when a server that does not trap exits is shut down by its parent: it dies at once', async () => {
    const node = track();
    const p = probe(node);
    const seen: ExitReason[] = [];
    const { pid: parent, ctx } = await spawnWithContext(node);
    const pid = await GenServer.startLink(ctx, { init: () => 'state', terminate: (reason) => void seen.push(reason) });
    const ref = p.ctx.monitor(pid);
    node.exit(parent, 'shutdown');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(seen).toEqual([]);
  });

  const crashing = ['handleCall', 'handleCast', 'handleInfo', 'handleContinue'] as const;
  it.each(crashing.flatMap((callback) => [[callback, 'sync'], [callback, 'async']] as const))(
    'runs with the error and the state after %s (%s) throws, and the server exits with that error',
    async (callback, mode) => {
      const node = track();
      const p = probe(node);
      const boom = new Error(`${callback} crashed`);
      const crash = failingWith(mode === 'sync' ? 'throws' : 'rejects', boom);
      const seen: [ExitReason, unknown][] = [];
      const spec: Spec<string> = {
        init: () => 'state before the crash',
        handleCall: (request, _from, state) => {
          if (request === 'continue') return { reply: 'ok', state, continue: 'crash' };
          return callback === 'handleCall' ? crash() : { reply: 'ok', state };
        },
        handleCast: (_request, state) => (callback === 'handleCast' ? crash() : state),
        handleInfo: (_message, state) => (callback === 'handleInfo' ? crash() : state),
        handleContinue: (_info, state) => (callback === 'handleContinue' ? crash() : state),
        terminate: (reason, state) => void seen.push([reason, state]),
      };
      const pid = await GenServer.start(node, spec);
      const ref = p.ctx.monitor(pid);
      // its rejection is taken at once: it may come before the Down is received
      let call: Promise<unknown> | undefined;
      if (callback === 'handleCall') call = failure(() => GenServer.call(node, pid, 'crash'));
      else if (callback === 'handleCast') GenServer.cast(node, pid, 'crash');
      else if (callback === 'handleInfo') node.send(pid, 'crash');
      else expect(await GenServer.call(node, pid, 'continue')).toBe('ok');
      expect((await receiveDown(p, ref)).reason).toBe(boom);
      expect(seen).toEqual([[boom, 'state before the crash']]);
      if (call !== undefined) {
        const e = await call;
        expectKeelError(e, 'ERR_CALL_EXIT', `${callback} crashed`);
        expect((e as { reason: unknown }).reason).toBe(boom);
      }
    },
  );

  it('lets an async terminate finish before the server exits', async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const seen: [ExitReason, unknown][] = [];
    const pid = await GenServer.start(node, trapping(seen, () => gate.promise), 'state');
    const ref = p.ctx.monitor(pid);
    const stop = watch(GenServer.stop(node, pid, 'shutdown'));
    await node.settle();
    expect(seen).toEqual([['shutdown', 'state']]);
    expect(node.isAlive(pid)).toBe(true);
    expect(stop.status).toBe('pending');
    gate.resolve();
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    await node.idle();
    expect(stop.status).toBe('resolved');
  });

  it.each(failureModes)('logs a terminate that %s, and the server exits with its error instead of the reason (as gen_server: a stop is then a crash)', async (mode) => {
    const node = track();
    const p = probe(node);
    const failed = new Error('terminate failed');
    const pid = await GenServer.start(node, { init: () => null, terminate: failingWith(mode, failed) });
    const ref = p.ctx.monitor(pid);
    const e = await failure(() => GenServer.stop(node, pid, 'shutdown'));
    expectKeelError(e, 'ERR_CALL_EXIT', 'terminate failed');
    expect((e as CallExitError).reason).toBe(failed);
    expect((await receiveDown(p, ref)).reason).toBe(failed);
    expect((node.logger as FakeLogger).errors.filter((args) => args.includes(failed))).toHaveLength(1);
  });

  it.each(failureModes)("still replies to a { stop, reply } when its terminate %s, then exits with terminate's error", async (mode) => {
    const node = track();
    const p = probe(node);
    const failed = new Error('terminate failed');
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (_r: 'bye', _f, state: number) => ({ stop: 'normal', reply: 'bye!', state }),
      terminate: failingWith(mode, failed),
    });
    const ref = p.ctx.monitor(pid);
    expect(await GenServer.call(node, pid, 'bye')).toBe('bye!');
    expect((await receiveDown(p, ref)).reason).toBe(failed);
  });

  it.each(failureModes)("exits with terminate's error when terminate %s after a callback threw", async (mode) => {
    const node = track();
    const p = probe(node);
    const failed = new Error('terminate failed');
    const seen: ExitReason[] = [];
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCast: (_m: 'go'): number => {
        throw new Error('cast failed');
      },
      terminate: (reason) => {
        seen.push(reason);
        return failingWith(mode, failed)();
      },
    });
    const ref = p.ctx.monitor(pid);
    GenServer.cast(node, pid, 'go');
    expect((await receiveDown(p, ref)).reason).toBe(failed);
    expect(seen).toHaveLength(1);
    expect((seen[0] as Error).message).toBe('cast failed');
  });

  it('a transient child whose terminate throws on a normal stop is restarted: the exit was no normal one', async () => {
    const node = track();
    const w = await transientChild(node, (start) => ({
      init: () => 0,
      handleCall: (_m: 'stop', _f, state) => ({ stop: 'normal', reply: 'ok', state }),
      terminate: () => {
        if (start === 1) throw new Error('terminate failed');
      },
    }));
    expect(await GenServer.call(node, await w.pid(), 'stop')).toBe('ok');
    await node.idle();
    expect(w.starts()).toBe(2);
    expect((await Supervisor.whichChildren(node, w.sup))[0]!.restarts).toBe(1);
    // the second one's terminate does not throw: a normal stop of a transient child is final
    expect(await GenServer.call(node, await w.pid(), 'stop')).toBe('ok');
    await node.idle();
    expect(w.starts()).toBe(2);
  });

  it('a terminate that ends the process with ctx.exit exits with that reason, and is no failure of terminate', async () => {
    const node = track();
    const p = probe(node);
    const pid = await GenServer.start(node, {
      init: (_a: undefined, ctx) => ctx,
      terminate: (_r, ctx: Context) => ctx.exit({ shutdown: 'from terminate' }),
    } as Spec<Context>);
    const ref = p.ctx.monitor(pid);
    await failure(() => GenServer.stop(node, pid, 'normal'));
    expect((await receiveDown(p, ref)).reason).toEqual({ shutdown: 'from terminate' });
    expect((node.logger as FakeLogger).errors).toEqual([]);
  });

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
});

// ---- GenServer.stop ---------------------------------------------------------------------------

describe('ctx.exit inside a callback', () => {
  it('ends the server with that reason: no crash, no terminate with a wrapped error', async () => {
    const node = track();
    const terminated: unknown[] = [];
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCast: (_req: 'stop', state: number, ctx) => {
        ctx.exit('normal');
        return state;
      },
      terminate: (reason) => {
        terminated.push(reason);
      },
    });
    const p = probe(node);
    p.ctx.monitor(pid);
    GenServer.cast(node, pid, 'stop');
    const down = await receiveDown(p);
    expect(down.reason).toBe('normal');
    expect(terminated).toEqual([]);
  });

  it('the value ctx.exit unwinds with, kept and thrown again by a live server, is a crash: terminate runs, the caller gets ERR_CALL_EXIT', async () => {
    const node = track();
    let kept: unknown;
    const first = await GenServer.start(node, {
      init: () => 0,
      handleCast: (_req: 'stop', state: number, ctx) => {
        try {
          ctx.exit('normal');
        } catch (e) {
          kept = e; // user code that keeps what unwound its handler
          throw e;
        }
        return state;
      },
    });
    const w = probe(node);
    w.ctx.monitor(first);
    GenServer.cast(node, first, 'stop');
    expect((await receiveDown(w)).reason).toBe('normal');
    const terminated: unknown[] = [];
    const second = await GenServer.start(node, {
      init: () => 0,
      handleCall: () => {
        throw kept;
      },
      terminate: (reason) => {
        terminated.push(reason);
      },
    });
    w.ctx.monitor(second);
    const call = watch(GenServer.call(node, second, 'x'));
    const down = await receiveDown(w);
    expect(down.reason).toBeInstanceOf(Error);
    expect(terminated).toEqual([down.reason]);
    await node.idle();
    expectKeelError(call.error, 'ERR_CALL_EXIT');
  });
});

describe('GenServer.stop', () => {
  it.each<[string, ExitReason | undefined]>([
    ['no reason (normal)', undefined],
    ['shutdown', 'shutdown'],
    ['{ shutdown }', { shutdown: 'maintenance' }],
    ['an error', new Error('stopped with an error')],
  ])('runs terminate with %s and resolves once the server exited with it', async (_label, reason) => {
    const node = track();
    const p = probe(node);
    const seen: [ExitReason, unknown][] = [];
    const pid = await GenServer.start(node, { init: () => 'state', terminate: (r, s) => void seen.push([r, s]) });
    const ref = p.ctx.monitor(pid);
    await (reason === undefined ? GenServer.stop(node, pid) : GenServer.stop(node, pid, reason));
    expect(node.isAlive(pid)).toBe(false);
    const expected = reason ?? 'normal';
    expect(seen).toEqual([[expected, 'state']]);
    expect((await receiveDown(p, ref)).reason).toBe(expected);
  });

  it('stops a server by name, from a process context', async () => {
    const node = track();
    const p = probe(node);
    const pid = await GenServer.start(node, logServer(), undefined, { name: 'to-stop' });
    await GenServer.stop(p.ctx, 'to-stop', 'shutdown');
    expect(node.isAlive(pid)).toBe(false);
  });

  it.each(noServer)('rejects with ERR_NOPROC for %s', async (_label, target) => {
    const node = track();
    const to = await target(node);
    const e = await failure(() => GenServer.stop(node, to));
    expectKeelError(e, 'ERR_NOPROC');
  });

  it('rejects with ERR_CALL_TIMEOUT when the server has not exited within timeout', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const gate = deferred();
    const pid = await GenServer.start(node, { init: () => null, terminate: () => gate.promise });
    const stop = watch(GenServer.stop(node, pid, 'normal', 100));
    await clock.advance(99);
    expect(stop.status).toBe('pending');
    await clock.advance(1);
    expect(stop.status).toBe('rejected');
    expectKeelError(stop.error, 'ERR_CALL_TIMEOUT');
    gate.resolve();
  });

  it('rejects with ERR_CALL_EXIT when the server exits with another reason first', async () => {
    const node = track();
    const gate = deferred();
    const spec: Spec<null> = {
      init: () => null,
      handleCall: async (_request, _from, state) => {
        await gate.promise;
        return { reply: 'ok', state };
      },
    };
    const pid = await GenServer.start(node, spec);
    const busy = watch(GenServer.call(node, pid, 'block'));
    const stop = watch(GenServer.stop(node, pid, 'normal'));
    await node.settle();
    node.exit(pid, 'kill');
    await node.settle();
    expect(stop.status).toBe('rejected');
    expectKeelError(stop.error, 'ERR_CALL_EXIT');
    expect((stop.error as { reason: unknown }).reason).toBe('killed');
    expect(busy.status).toBe('rejected');
    gate.resolve();
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

  // its default timeout is Infinity: without the refusal, a handler awaiting it waits for ever
  it.each(['its pid', 'its name'])('rejects at once with ERR_DEADLOCK a GenServer.stop of %s through the node that its async handler awaits', async (by) => {
    const node = track({ clock: new TestClock() });
    const spec: Spec<null> = {
      init: () => null,
      handleCall: async (request, _from, state, ctx) => {
        if (request !== 'stop yourself') return { reply: 'pong', state };
        return { reply: await failure(() => GenServer.stop(node, by === 'its pid' ? ctx.self : 'narcissus')), state };
      },
    };
    const pid = await GenServer.start(node, spec, undefined, { name: 'narcissus' });
    const call = watch(GenServer.call(node, pid, 'stop yourself', 60_000));
    await node.settle();
    expect(call.status).toBe('resolved');
    expectKeelError(call.value, 'ERR_DEADLOCK');
    expect((call.value as Error).message).toBe(
      `${by === 'its pid' ? String(pid) : `'narcissus' (${String(pid)})`} tried to stop itself with GenServer.stop (return { stop } from a callback instead): it would wait for itself forever`,
    );
    expect(node.isAlive(pid)).toBe(true);
  });
});

// ---- errors that name the target as the caller wrote it ----------------------------------------

/** The fields a call's typed errors carry about their target. */
function targetFields(e: unknown): { code: unknown; message: unknown; target: unknown; registeredName: unknown } {
  const { code, message, target, registeredName } = e as Record<string, unknown>;
  return { code, message, target, registeredName };
}

describe('the errors of a call name the target as the caller wrote it', () => {
  it('says no process is registered under a name nobody holds, and that a pid is not alive', async () => {
    const node = track();
    const dead = await GenServer.start(node, holder());
    await GenServer.stop(node, dead);
    expect(targetFields(await failure(() => GenServer.call(node, 'cahce', 'get')))).toEqual({
      code: 'ERR_NOPROC',
      message: "cannot call: no process is registered under the name 'cahce'",
      target: "'cahce'",
      registeredName: 'cahce',
    });
    expect(targetFields(await failure(() => GenServer.call(node, dead, 'get')))).toEqual({
      code: 'ERR_NOPROC',
      message: `cannot call a process that is not alive: ${String(dead)}`,
      target: String(dead),
      registeredName: undefined,
    });
  });

  it('names a registered name that the name nobody holds misspells, in a call and a stop, and no other', async () => {
    const node = track();
    const cache = await GenServer.start(node, holder(), undefined, { name: 'cache' });
    expect(targetFields(await failure(() => GenServer.call(node, 'cahce', 'get')))).toEqual({
      code: 'ERR_NOPROC',
      message: "cannot call: no process is registered under the name 'cahce'; did you mean 'cache'?",
      target: "'cahce'",
      registeredName: 'cahce',
    });
    expect((await failure(() => GenServer.stop(node, 'Cache')) as Error).message).toBe("cannot stop: no process is registered under the name 'Cache'; did you mean 'cache'?");
    expect((await failure(() => GenServer.call(node, 'ledger', 'get')) as Error).message).toBe("cannot call: no process is registered under the name 'ledger'");
    await GenServer.stop(node, cache);
    expect((await failure(() => GenServer.call(node, 'cahce', 'get')) as Error).message).toBe("cannot call: no process is registered under the name 'cahce'");
  });

  it('a call or a stop after node.shutdown says the node was shut down (ERR_NOPROC, as during the shutdown), by pid and by name', async () => {
    const node = track();
    const server = await GenServer.start(node, holder(), undefined, { name: 'cache' });
    await node.shutdown();
    const text = String(server);
    expect(targetFields(await failure(() => GenServer.call(node, server, 'get')))).toEqual({
      code: 'ERR_NOPROC',
      message: `cannot call a process of node ${node.name}, which was shut down: ${text}`,
      target: text,
      registeredName: undefined,
    });
    expect(targetFields(await failure(() => GenServer.call(node, 'cache', 'get')))).toEqual({
      code: 'ERR_NOPROC',
      message: `cannot call a name of node ${node.name}, which was shut down: 'cache'`,
      target: "'cache'",
      registeredName: 'cache',
    });
    expect((await failure(() => GenServer.stop(node, 'cache')) as Error).message).toBe(`cannot stop a name of node ${node.name}, which was shut down: 'cache'`);
  });

  it('says the same for the Supervisor and DynamicSupervisor functions, which call the supervisor', async () => {
    const node = track();
    const unregistered = { code: 'ERR_NOPROC', message: "cannot call: no process is registered under the name 'sup'", target: "'sup'", registeredName: 'sup' };
    expect(targetFields(await failure(() => Supervisor.whichChildren(node, 'sup')))).toEqual(unregistered);
    expect(targetFields(await failure(() => Supervisor.countChildren(node, 'sup')))).toEqual(unregistered);
    expect(targetFields(await failure(() => DynamicSupervisor.startChild(node, 'sup', { start: (ctx) => ctx.spawnLink(idleInit) })))).toEqual(unregistered);
    expect(targetFields(await failure(() => DynamicSupervisor.whichChildren(node, 'sup')))).toEqual(unregistered);
  });

  it.each(['name', 'pid'] as const)('names the server in a timeout of a call by %s: the name and the pid it found, or the pid', async (by) => {
    const clock = new TestClock();
    const node = track({ clock });
    const pid = await GenServer.start(node, holder(), undefined, { name: 'cache' });
    const call = watch(GenServer.call(node, by === 'name' ? 'cache' : pid, 'hold', 100));
    await clock.advance(100);
    expect(targetFields(call.error)).toEqual(
      by === 'name'
        ? { code: 'ERR_CALL_TIMEOUT', message: `no reply from 'cache' (${String(pid)}) within 100 ms`, target: `'cache' (${String(pid)})`, registeredName: 'cache' }
        : { code: 'ERR_CALL_TIMEOUT', message: `no reply from ${String(pid)} within 100 ms`, target: String(pid), registeredName: undefined },
    );
  });

  it('names the server a call by name was refused by (a full mailbox) or aborted for', async () => {
    const node = track();
    const gate = deferred();
    const pid = node.spawn(() => async () => gate.promise, { name: 'small', mailbox: { capacity: 1, overflow: 'reject' } });
    node.send(pid, 'busy');
    await node.settle();
    node.send(pid, 'fills the mailbox');
    expect(targetFields(await failure(() => GenServer.call(node, 'small', 'x')))).toEqual({
      code: 'ERR_MAILBOX_FULL',
      message: `the mailbox of 'small' (${String(pid)}) is full; the request was not delivered`,
      target: `'small' (${String(pid)})`,
      registeredName: 'small',
    });
    const aborted = await failure(() => GenServer.call(node, 'small', 'x', { signal: AbortSignal.abort('no') }));
    expectKeelError(aborted, 'ERR_ABORTED');
    expect((aborted as Error).message).toBe(`the call to 'small' (${String(pid)}) was aborted`);
    gate.resolve();
  });

  it('names a server that calls itself by its name', async () => {
    const node = track();
    const spec: Spec<null> = {
      init: () => null,
      handleCall: async (request, _from, state, ctx) => ({ reply: await failure(() => GenServer.call(ctx, request as string, 'ping')), state }),
    };
    const pid = await GenServer.start(node, spec, undefined, { name: 'narcissus' });
    const byName = await GenServer.call(node, pid, 'narcissus');
    expectKeelError(byName, 'ERR_DEADLOCK');
    expect((byName as Error).message).toBe(`'narcissus' (${String(pid)}) called itself: it would wait for itself forever`);
  });

  it('says the same in GenServer.stop: a name nobody holds, a timeout and another exit reason name the name', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    expect(targetFields(await failure(() => GenServer.stop(node, 'cahce')))).toEqual({
      code: 'ERR_NOPROC',
      message: "cannot stop: no process is registered under the name 'cahce'",
      target: "'cahce'",
      registeredName: 'cahce',
    });
    const gate = deferred();
    const slow = await GenServer.start(node, { init: () => null, terminate: () => gate.promise }, undefined, { name: 'slow' });
    const stop = watch(GenServer.stop(node, 'slow', 'normal', 100));
    await clock.advance(100);
    expect(targetFields(stop.error)).toEqual({ code: 'ERR_CALL_TIMEOUT', message: `no reply from 'slow' (${String(slow)}) within 100 ms`, target: `'slow' (${String(slow)})`, registeredName: 'slow' });
    node.exit(slow, 'kill');
    gate.resolve();
    const otherGate = deferred();
    const other = await GenServer.start(node, { init: () => null, terminate: () => otherGate.promise }, undefined, { name: 'other' });
    const stopped = watch(GenServer.stop(node, 'other', 'normal'));
    await node.settle();
    node.exit(other, 'kill');
    await node.settle();
    expect(targetFields(stopped.error)).toEqual({ code: 'ERR_CALL_EXIT', message: `'other' (${String(other)}) exited before replying: killed`, target: `'other' (${String(other)})`, registeredName: 'other' });
    expect((stopped.error as { stage: unknown }).stage).toBeUndefined();
    otherGate.resolve();
  });

  it('drops a cast to a name nobody holds with an event naming the name', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.message.dropped']);
    GenServer.cast(node, 'cahce', 'x');
    expect(events.events.map((e) => [e.metadata.to, e.metadata.reason])).toEqual([['cahce', 'noproc']]);
  });
});

// ---- the stage of a call whose server exited: the culprit and the bystanders ------------------

/** What each call of `calls` was rejected with: its stage, message and reason. */
async function exits(calls: Promise<unknown>[]): Promise<{ stage: unknown; message: string; reason: unknown }[]> {
  const out = await Promise.all(calls.map((c) => c.then((v) => ({ resolved: v }), (e: unknown) => e)));
  return out.map((e) => {
    expectKeelError(e, 'ERR_CALL_EXIT');
    const { stage, message, reason } = e as { stage: unknown; message: string; reason: unknown };
    return { stage, message, reason };
  });
}

describe('ERR_CALL_EXIT says where each call stood when its server exited', () => {
  const N = 60;
  /** A worker whose `'poison'` request throws; any other is echoed. */
  const poisoned = (poison: Error, async = false): Spec<null> => ({
    init: () => null,
    handleCall: async
      ? async (request, _from, state) => {
          await Promise.resolve();
          if (request === 'poison') throw poison;
          return { reply: request, state };
        }
      : (request, _from, state) => {
          if (request === 'poison') throw poison;
          return { reply: request, state };
        },
  });

  it.each([['a sync', false], ['an async', true]] as const)(
    `tells the poison call (handling) from the ${N - 1} calls queued behind it (queued) when %s handleCall throws, all with the reason`,
    async (_label, async) => {
      const node = track();
      const poison = new Error('poison 7');
      const pid = await GenServer.start(node, poisoned(poison, async), undefined, { name: 'pool-worker' });
      const calls = [GenServer.call(node, 'pool-worker', 'poison'), ...Array.from({ length: N - 1 }, (_, i) => GenServer.call(node, 'pool-worker', i))];
      const errors = await exits(calls);
      const by = `'pool-worker' (${String(pid)})`;
      expect(errors[0]).toEqual({ stage: 'handling', message: `${by} exited while handling this call: Error: poison 7`, reason: poison });
      expect(errors.filter((e) => e.stage === 'handling')).toHaveLength(1);
      expect(errors.filter((e) => e.stage === 'queued')).toHaveLength(N - 1);
      for (const e of errors.slice(1)) expect(e).toEqual({ stage: 'queued', message: `${by} exited while this call was queued (not yet handled): Error: poison 7`, reason: poison });
    },
  );

  it('names the pid alone for calls by pid, and tells a deferred call (noreply) from the one being handled', async () => {
    const node = track();
    const poison = new Error('poison 8');
    const held: From[] = [];
    const base = holder(held);
    const pid = await GenServer.start(node, {
      ...base,
      handleCall: (request, from, state, ctx) => {
        if (request === 'poison') throw poison;
        return base.handleCall!(request, from, state, ctx);
      },
    });
    const calls = [GenServer.call(node, pid, 'hold'), GenServer.call(node, pid, 'poison'), GenServer.call(node, pid, 'echo')];
    const errors = await exits(calls);
    expect(errors).toEqual([
      { stage: 'deferred', message: `${String(pid)} exited before replying to this call (its handler had deferred the reply): Error: poison 8`, reason: poison },
      { stage: 'handling', message: `${String(pid)} exited while handling this call: Error: poison 8`, reason: poison },
      { stage: 'queued', message: `${String(pid)} exited while this call was queued (not yet handled): Error: poison 8`, reason: poison },
    ]);
    expect(held).toHaveLength(1);
  });

  it('tells them apart when the server is killed in the middle of an async handleCall', async () => {
    const node = track();
    const gate = deferred();
    const pid = await GenServer.start(node, {
      init: () => null,
      handleCall: async (request, _from, state) => {
        await gate.promise;
        return { reply: request, state };
      },
    });
    const calls = [GenServer.call(node, pid, 'slow'), GenServer.call(node, pid, 'next'), GenServer.call(node, pid, 'last')];
    await node.settle();
    node.exit(pid, 'kill');
    expect((await exits(calls)).map((e) => [e.stage, e.reason])).toEqual([['handling', 'killed'], ['queued', 'killed'], ['queued', 'killed']]);
    gate.resolve();
  });

  it('tells them apart for a raw process called with GenServer.call: the message its handler took, and those it never took', async () => {
    const node = track();
    const crash = new Error('raw crash');
    const pid = node.spawn(() => () => {
      throw crash;
    });
    const calls = [GenServer.call(node, pid, 'a'), GenServer.call(node, pid, 'b')];
    expect((await exits(calls)).map((e) => [e.stage, e.reason])).toEqual([['handling', crash], ['queued', crash]]);
  });

  it('says queued for calls to a server killed before it took any of them, and leaves nothing behind', async () => {
    const node = track();
    const gate = deferred();
    const pid = node.spawn(() => async () => gate.promise); // busy with a message of its own
    node.send(pid, 'busy');
    await node.settle();
    const calls = [GenServer.call(node, pid, 'a'), GenServer.call(node, pid, 'b')];
    node.exit(pid, 'kill');
    expect((await exits(calls)).map((e) => e.stage)).toEqual(['queued', 'queued']);
    gate.resolve();
    await node.idle();
    expect(node.leftovers()).toEqual([]);
  });
});

// ---- typed protocols --------------------------------------------------------------------------

describe('typed protocols', () => {
  type State = { n: number; name: string };
  type Calls = { request: { type: 'get' }; reply: number } | { request: { type: 'name' }; reply: string };
  type Cast = { type: 'set'; n: number };
  const typed: GenServerSpec<State, Calls, Cast> = {
    init: () => ({ n: 1, name: 'typed' }),
    handleCall: (request, _from, state) => (request.type === 'get' ? { reply: state.n, state } : { reply: state.name, state }),
    handleCast: (request, state) => ({ ...state, n: request.n }),
  };

  it('carry each request’s reply type from the spec to GenServer.call', async () => {
    const node = track();
    const pid = await GenServer.start(node, typed);
    expectTypeOf(pid).toEqualTypeOf<ServerPid<Calls, Cast>>();
    const n = GenServer.call(node, pid, { type: 'get' });
    const name = GenServer.call(node, pid, { type: 'name' });
    expectTypeOf(n).toEqualTypeOf<Promise<number>>();
    expectTypeOf(name).toEqualTypeOf<Promise<string>>();
    expect(await n).toBe(1);
    expect(await name).toBe('typed');
    GenServer.cast(node, pid, { type: 'set', n: 7 });
    expect(await GenServer.call(node, pid, { type: 'get' })).toBe(7);
  });

  it('reject unknown requests and casts, and replies of the wrong type, at compile time', () => {
    // never run: compile-time checks only
    expectTypeOf((node: KeelNode, pid: ServerPid<Calls, Cast>, from: From<number>) => {
      // @ts-expect-error { type: 'nope' } is not a request of Calls
      void GenServer.call(node, pid, { type: 'nope' });
      // @ts-expect-error a request without its type
      void GenServer.call(node, pid, {});
      // @ts-expect-error { type: 'reset' } is not a Cast
      GenServer.cast(node, pid, { type: 'reset' });
      // @ts-expect-error a cast is missing its n
      GenServer.cast(node, pid, { type: 'set' });
      GenServer.reply(from, 1);
      // @ts-expect-error a From<number> takes a number
      GenServer.reply(from, 'one');
    }).toBeFunction();
  });

  it('give an unknown reply to a call by name, whose protocol is not known', async () => {
    const node = track();
    await GenServer.start(node, typed, undefined, { name: 'typed' });
    const reply = GenServer.call(node, 'typed', { type: 'get' });
    expectTypeOf(reply).toEqualTypeOf<Promise<unknown>>();
    expect(await reply).toBe(1);
  });

  it('type a handleCall request and from by the protocol', () => {
    const spec: GenServerSpec<number, Calls> = {
      init: () => 0,
      handleCall: (request, from, n) => {
        expectTypeOf(request).toEqualTypeOf<{ type: 'get' } | { type: 'name' }>();
        expectTypeOf(from).toEqualTypeOf<From<number | string>>();
        return { reply: n, state: n };
      },
    };
    expectTypeOf(spec.init).toBeFunction();
    expectTypeOf<CallProtocol>().toEqualTypeOf<{ request: unknown; reply: unknown }>();
  });
});

// ---- bad input --------------------------------------------------------------------------------

describe('bad input', () => {
  const fn = () => undefined;
  it.each<[string, unknown]>([
    ['null', null],
    ['a number', 42],
    ['a function', fn],
    ['an object without init', {}],
    ['an init that is not a function', { init: 'state' }],
    ...(['handleCall', 'handleCast', 'handleInfo', 'handleContinue', 'terminate'] as const).map(
      (cb) => [`a non-function ${cb}`, { init: fn, [cb]: 'not a function' }] as [string, unknown],
    ),
    // a spec that cannot be read: before, a raw TypeError (or the getter's own error) out of start
    ['a revoked proxy', revokedProxy()],
    ['a proxy whose traps throw', trappingProxy()],
    ['an init getter that throws', { get init(): never { throw new Error('getter'); } }],
    ['a handleCall getter that throws', { init: fn, get handleCall(): never { throw new Error('getter'); } }],
  ])('GenServer.start refuses %s as a spec with ERR_INVALID_ARGUMENT', async (_label, spec) => {
    const node = track();
    const before = node.processes().length;
    const e = await failure(() => GenServer.start(node, spec as GenServerSpec<unknown>));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'spec');
    expect(node.processes()).toHaveLength(before);
  });

  it.each<[string, Record<string, unknown>, string]>([
    ['handlecall', { init: fn, handlecall: fn }, '`spec.handlecall`: no such callback (a GenServer spec has init, handleCall, handleCast, handleInfo, handleContinue, terminate, formatStatus), got a function (fn); did you mean `handleCall`? (misspelt, it would never be called)'],
    ['handleCats', { init: fn, handleCats: fn }, '`spec.handleCats`: no such callback (a GenServer spec has init, handleCall, handleCast, handleInfo, handleContinue, terminate, formatStatus), got a function (fn); did you mean `handleCast`? (misspelt, it would never be called)'],
    ['handle_info', { init: fn, handle_info: fn }, '`spec.handle_info`: no such callback (a GenServer spec has init, handleCall, handleCast, handleInfo, handleContinue, terminate, formatStatus), got a function (fn); did you mean `handleInfo`? (misspelt, it would never be called)'],
    ['terminat', { init: fn, handleCall: fn, terminat: fn }, '`spec.terminat`: no such callback (a GenServer spec has init, handleCall, handleCast, handleInfo, handleContinue, terminate, formatStatus), got a function (fn); did you mean `terminate`? (misspelt, it would never be called)'],
    ['Init (and no init)', { Init: fn }, '`spec.Init`: no such callback (a GenServer spec has init, handleCall, handleCast, handleInfo, handleContinue, terminate, formatStatus), got a function (fn); did you mean `init`? (misspelt, it would never be called)'],
  ])('GenServer.start refuses a spec with a misspelt callback (%s), naming the one it likely meant, rather than starting a server that crashes at its first call', async (_label, spec, text) => {
    const node = track();
    const before = node.processes().length;
    const e = await failure(() => GenServer.start(node, spec as unknown as GenServerSpec<unknown>));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT');
    expect((e as Error).message).toBe(text);
    expect(node.processes()).toHaveLength(before);
  });

  it('GenServer.start takes a spec with keys of its own that are no near miss of a callback, or beside the callback they resemble', async () => {
    const node = track();
    const helpers = { init: () => 1, handleCall: (_: unknown, __: unknown, s: number) => ({ reply: s, state: s }), describe: 'a counter', limit: 3 };
    expect(await GenServer.call(node, await GenServer.start(node, helpers as GenServerSpec<number>), 'get')).toBe(1);
    const both = { init: () => 2, handleCall: (_: unknown, __: unknown, s: number) => ({ reply: s, state: s }), handleCalls: 0 };
    expect(await GenServer.call(node, await GenServer.start(node, both as GenServerSpec<number>), 'get')).toBe(2);
  });

  it.each<[string, unknown]>([
    ['a negative timeout', { timeout: -1 }],
    ['a NaN timeout', { timeout: Number.NaN }],
    ['a string timeout', { timeout: '100' }],
    ['options that are not an object', 'fast'],
  ])('GenServer.start refuses %s with ERR_INVALID_ARGUMENT', async (_label, options) => {
    const node = track();
    const e = await failure(() => GenServer.start(node, logServer(), undefined, options as never));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT');
  });

  it.each<[string, unknown]>([
    ['a negative timeout', { timeout: -1 }],
    ['a NaN timeout', { timeout: Number.NaN }],
    ['a signal that is not an AbortSignal', { signal: { aborted: true } }],
  ])('GenServer.call refuses %s with ERR_INVALID_ARGUMENT', async (_label, options) => {
    const node = track();
    const pid = await GenServer.start(node, holder());
    const e = await failure(() => GenServer.call(node, pid, 'hello', options as never));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT');
    expect(await GenServer.call(node, pid, 'handled')).toBe(1);
  });

  it.each<[string, unknown]>([
    ['an empty name', ''],
    ['a number', 42],
    ['a plain object', { id: 1 }],
    ['undefined', undefined],
  ])('GenServer.call, cast and stop refuse %s as a target with ERR_INVALID_ARGUMENT', async (_label, target) => {
    const node = track();
    expectKeelError(await failure(() => GenServer.call(node, target as never, 'x')), 'ERR_INVALID_ARGUMENT', 'target');
    expectKeelError(thrown(() => GenServer.cast(node, target as never, 'x')), 'ERR_INVALID_ARGUMENT', 'target');
    expectKeelError(await failure(() => GenServer.stop(node, target as never)), 'ERR_INVALID_ARGUMENT', 'target');
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a plain object', {}],
    ['a pid', 'pid'],
  ])('start, startLink, call, cast and stop refuse %s as `from` with ERR_INVALID_ARGUMENT', async (_label, raw) => {
    const node = track();
    const server = await GenServer.start(node, holder());
    const from = (raw === 'pid' ? server : raw) as never;
    expectKeelError(await failure(() => GenServer.start(from, logServer())), 'ERR_INVALID_ARGUMENT', 'from');
    expectKeelError(await failure(() => GenServer.startLink(from, logServer())), 'ERR_INVALID_ARGUMENT', 'from');
    expectKeelError(await failure(() => GenServer.call(from, server, 'x')), 'ERR_INVALID_ARGUMENT', 'from');
    expectKeelError(thrown(() => GenServer.cast(from, server, 'x')), 'ERR_INVALID_ARGUMENT', 'from');
    expectKeelError(await failure(() => GenServer.stop(from, server)), 'ERR_INVALID_ARGUMENT', 'from');
    expect(await GenServer.call(node, server, 'handled')).toBe(1);
  });

  it('GenServer.startLink refuses the node as `from`: a link needs a process', async () => {
    const node = track();
    const e = await failure(() => GenServer.startLink(node as never, logServer()));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'from');
  });

  it.each<[string, unknown]>([
    ['undefined', undefined],
    ['null', null],
    ['a plain object', {}],
    ['an object shaped like a From', { reply: () => undefined }],
  ])('GenServer.reply refuses %s as a From with ERR_INVALID_ARGUMENT', (_label, from) => {
    expectKeelError(thrown(() => GenServer.reply(from as never, 'value')), 'ERR_INVALID_ARGUMENT', 'from');
  });

  it.each<[string, unknown, unknown]>([
    ['a reason that is not an exit reason', 'bogus', Infinity],
    ['a negative timeout', 'normal', -1],
    ['a NaN timeout', 'normal', Number.NaN],
  ])('GenServer.stop refuses %s with ERR_INVALID_ARGUMENT and leaves the server running', async (_label, reason, timeout) => {
    const node = track();
    const pid = await GenServer.start(node, logServer());
    const e = await failure(() => GenServer.stop(node, pid, reason as never, timeout as never));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT');
    expect(node.isAlive(pid)).toBe(true);
  });

  it('crashes a server with ERR_INVALID_ARGUMENT when handleCall returns something that is not a call result; the caller gets ERR_CALL_EXIT', async () => {
    const node = track();
    const pid = await GenServer.start(node, { init: () => null, handleCall: () => 'just a reply' as never });
    const e = await failure(() => GenServer.call(node, pid, 'x'));
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect(isKeelError((e as { reason: unknown }).reason, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect(node.isAlive(pid)).toBe(false);
  });

  it('crashes a server without handleCall that is called; the caller gets ERR_CALL_EXIT', async () => {
    const node = track();
    const pid = await GenServer.start(node, { init: () => null });
    const e = await failure(() => GenServer.call(node, pid, 'x'));
    expectKeelError(e, 'ERR_CALL_EXIT', 'handleCall');
    expect(node.isAlive(pid)).toBe(false);
  });
});

describe('a from, a signal or a reply handle that cannot be inspected', () => {
  // found by test/reliability/fuzz.otp.test.ts: GenServer.call from a revoked function proxy (fast-check
  // seed 1660631497, path 54) and GenServer.cast from a proxy whose traps throw (seed -1982891169,
  // path 135) threw a raw TypeError out of `from instanceof Proc`; the other checks below had the same
  it('is ERR_INVALID_ARGUMENT, whatever the operation', async () => {
    const node = track();
    const server = await GenServer.start(node, { init: () => 0, handleCall: (_r: unknown, _f: unknown, s: number) => ({ reply: s, state: s }), handleCast: (_r: unknown, s: number) => s });
    for (const [what, make] of UNREADABLE) {
      expectKeelError(thrown(() => GenServer.call(make() as never, server, 'x')), 'ERR_INVALID_ARGUMENT', '`from`', what === 'a revoked proxy' ? 'got a proxy' : '');
      expectKeelError(thrown(() => GenServer.call(node, server, 'x', { signal: make() as never })), 'ERR_INVALID_ARGUMENT', '`options.signal`');
      expectKeelError(thrown(() => GenServer.cast(make() as never, server, 'x')), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => GenServer.start(make() as never, { init: () => 0 })), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => GenServer.startLink(make() as never, { init: () => 0 })), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => GenServer.reply(make() as never, 1)), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => GenServer.stop(make() as never, server)), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => Supervisor.startLink(make() as never, [])), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => DynamicSupervisor.startLink(make() as never)), 'ERR_INVALID_ARGUMENT', '`from`');
      expectKeelError(thrown(() => Task.async(make() as never, () => 1)), 'ERR_INVALID_ARGUMENT', '`ctx`');
      expectKeelError(await failure(() => Task.await(make() as never)), 'ERR_INVALID_ARGUMENT', '`task`');
    }
    // a proxy of a real context is no context either: its traps would run in place of the runtime's fields
    const p = probe(node);
    expectKeelError(thrown(() => GenServer.call(new Proxy(p.ctx, {}), server, 'x')), 'ERR_INVALID_ARGUMENT', '`from`');
    expect(await GenServer.call(p.ctx, server, 'x')).toBe(0);
  });
});

describe('util.inspect(from) in handleCall', () => {
  /** A server that answers each call with `inspect(from)`, and holds the `from` of a call 'hold' unanswered. */
  function inspector(held: From[] = []): Spec<null> {
    return {
      init: () => null,
      handleCall: (request, from, state) => {
        if (request === 'hold') {
          held.push(from);
          return { noreply: true, state };
        }
        return { reply: inspect(from), state };
      },
    };
  }

  it("names the calling process, the server and the request (as OTP's From is {Pid, Tag}), not the kernel's internals", async () => {
    const node = track();
    const pid = await GenServer.start(node, inspector());
    const p = probe(node);
    const text = await GenServer.call(p.ctx, pid, { n: 1 });
    expect(text).toBe(`PendingCall { caller: ${String(p.ctx.self)}, server: ${String(pid)}, request: { n: 1 } }`);
    for (const internal of ['registry', 'telemetry', 'resolveFn', 'mailbox', 'Kernel']) expect(text).not.toContain(internal);
  });

  it("says 'node' for a call made from the node, and names the registered name a call was made by", async () => {
    const node = track();
    const pid = await GenServer.start(node, inspector(), undefined, { name: 'inspector' });
    expect(await GenServer.call(node, pid, 'x')).toBe(`PendingCall { caller: 'node', server: ${String(pid)}, request: 'x' }`);
    expect(await GenServer.call(node, 'inspector', 'x')).toBe(`PendingCall { caller: 'node', server: ${String(pid)}, name: 'inspector', request: 'x' }`);
  });

  it('limits the depth of the request, inside another value too, whatever depth is asked for', async () => {
    const node = track();
    const pid = await GenServer.start(node, inspector());
    const deep = { a: { b: { c: { d: {} } } } };
    expect(await GenServer.call(node, pid, deep)).toBe(`PendingCall { caller: 'node', server: ${String(pid)}, request: { a: { b: [Object] } } }`);
    const held: From[] = [];
    const holder = await GenServer.start(node, inspector(held));
    const call = GenServer.call(node, holder, 'hold');
    await node.idle();
    const from = held[0]!;
    expect(inspect({ from })).toBe(`{\n  from: PendingCall { caller: 'node', server: ${String(holder)}, request: 'hold' }\n}`);
    expect(inspect({ a: { b: { from } } })).toBe('{ a: { b: { from: [PendingCall] } } }');
    expect(inspect(from, { depth: Infinity })).toBe(`PendingCall { caller: 'node', server: ${String(holder)}, request: 'hold' }`);
    GenServer.reply(from, 'done');
    await call;
  });

  it('says when the call is over (the caller is no longer known), and survives a request that cannot be inspected', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, inspector(held));
    const call = GenServer.call(node, pid, 'hold');
    await node.idle();
    GenServer.reply(held[0]!, 'done');
    expect(await call).toBe('done');
    expect(inspect(held[0])).toBe(`PendingCall (over) { server: ${String(pid)}, request: 'hold' }`);
    const hostile = {
      [inspect.custom]() {
        throw new Error('no');
      },
    };
    expect(await GenServer.call(node, pid, hostile)).toBe(`PendingCall { caller: 'node', server: ${String(pid)}, request: [uninspectable: Error: no] }`);
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect(await GenServer.call(node, pid, proxy)).toBe(`PendingCall { caller: 'node', server: ${String(pid)}, request: <Revoked Proxy> }`);
  });
});

describe('util.inspect(from) by an inspector that passes no inspect function', () => {
  // Node before 16.14, and inspectors that follow its convention (chai 4's loupe 2), call a custom
  // inspect with (depth, options) only; a caller may call it with nothing at all
  it("gives the same text as util.inspect with (depth, options), and with no argument, for a process caller and a node caller: no '[uninspectable: ...]' of a request that can be inspected, nothing thrown", async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, from: From, state: null) => {
        held.push(from);
        return { noreply: true, state };
      },
    });
    const p = probe(node);
    // settled either way (a failed assertion leaves them to the node's shutdown: no unhandled rejection)
    const calls = [GenServer.call(p.ctx, pid, { n: 1 }), GenServer.call(node, pid, 'x')].map((c) => c.catch((e: unknown) => e));
    await node.settle();
    const custom = (from: From, ...args: unknown[]): unknown => (from as unknown as Record<symbol, (...a: unknown[]) => unknown>)[inspect.custom]!(...args);
    const [byProcess, byNode] = held as [From, From];
    const stylizeless = { depth: 2, colors: false };
    for (const [from, text] of [
      [byProcess, `PendingCall { caller: ${String(p.ctx.self)}, server: ${String(pid)}, request: { n: 1 } }`],
      [byNode, `PendingCall { caller: 'node', server: ${String(pid)}, request: 'x' }`],
    ] as const) {
      expect(inspect(from)).toBe(text);
      expect(custom(from, 2, { ...inspect.defaultOptions, stylize: (s: string) => s })).toBe(text);
      expect(custom(from, 2, stylizeless)).toBe(text);
      expect(custom(from)).toBe(text);
      expect(custom(from, -1, stylizeless)).toBe('[PendingCall]');
    }
    for (const from of held) GenServer.reply(from, 'done');
    await Promise.all(calls);
  });
});

describe('a pid-shaped target with no string form of its own', () => {
  // found by test/reliability/fuzz.otp.test.ts (fast-check seed -140833145, path 476): a call to a
  // null-prototype copy of a pid threw TypeError: Cannot convert object to primitive value, building
  // the ERR_NOPROC message with String(target)
  it('is named <node.id> in the typed errors of call and stop', async () => {
    const node = track();
    const ghost = Object.assign(Object.create(null) as object, { node: 'elsewhere', creation: 1, id: 7 });
    expectKeelError(await failure(() => GenServer.call(node, ghost as never, 'x')), 'ERR_NOPROC', '<elsewhere.7>');
    expectKeelError(await failure(() => GenServer.stop(node, ghost as never)), 'ERR_NOPROC', '<elsewhere.7>');
  });
});

describe('a callback that returns a thenable which is no Promise', () => {
  /** Resolves once `node`'s scheduler has run a turn after now (a probe got a message sent now). */
  async function aTurnLater(node: KeelNode): Promise<void> {
    const p = probe(node);
    node.send(p, 'turn');
    await p.receive();
  }

  it('is waited for as a promise is: a call, a cast and a continue after it are handled in the state it gives', async () => {
    const node = track();
    const pending = handThenable<{ reply: string; state: number; continue: string }>();
    const seen: string[] = [];
    const server = await GenServer.start(node, {
      init: () => 0,
      handleCall: (req: string, _from, n: number) => {
        seen.push(`call ${req} in ${n}`);
        return req === 'slow' ? (pending.thenable as never) : { reply: `${req}@${n}`, state: n };
      },
      handleCast: (msg: string, n: number) => (seen.push(`cast ${msg} in ${n}`), n),
      handleContinue: (c: string, n: number) => (seen.push(`continue ${c} in ${n}`), n + 1),
    });
    const slow = GenServer.call(node, server, 'slow');
    const next = GenServer.call(node, server, 'next');
    GenServer.cast(node, server, 'after');
    await pending.asked;
    await aTurnLater(node);
    expect(seen).toEqual(['call slow in 0']); // the others wait for the thenable, as for a promise
    pending.resolve({ reply: 'done', state: 5, continue: 'c' });
    expect(await slow).toBe('done');
    expect(await next).toBe('next@6');
    await node.idle();
    expect(seen).toEqual(['call slow in 0', 'continue c in 5', 'call next in 6', 'cast after in 6']);
  });

  it('init may return one; a rejected one crashes the server with its reason', async () => {
    const node = track();
    const started = handThenable<number>();
    const starting = GenServer.start(node, { init: () => started.thenable as never, handleCall: (_r: string, _f, n: number) => ({ reply: n, state: n }) });
    await started.asked;
    started.resolve(7);
    const server = await starting;
    expect(await GenServer.call(node, server, 'x')).toBe(7);
    const failing = handThenable<number>();
    const other = await GenServer.start(node, { init: () => 0, handleCast: (_m: string) => failing.thenable as never });
    const watcher = probe(node);
    watcher.ctx.monitor(other);
    GenServer.cast(node, other, 'go');
    await failing.asked;
    failing.reject(new Error('thenable failed'));
    expect(((await receiveDown(watcher)).reason as Error).message).toBe('thenable failed');
  });

  /** A promise of `value` whose `constructor` getter throws: `Promise.resolve` of it throws at once. */
  function hostilePromise<T>(value: T): Promise<T> {
    const p = Promise.resolve(value);
    Object.defineProperty(p, 'constructor', {
      get() {
        throw new Error('constructor getter');
      },
    });
    return p;
  }

  it("a reply that is a promise whose `constructor` getter throws fails that call with the error at once (not at its timeout); the server lives on", async () => {
    // on a TestClock nobody advances: a call left waiting stays pending, and the test times out
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (r: 'hostile' | 'later' | 'ok', from, state) => {
        if (r === 'later') {
          GenServer.reply(from, hostilePromise('never'));
          return { noreply: true, state };
        }
        return { reply: r === 'hostile' ? hostilePromise('never') : 'fine', state };
      },
    });
    for (const r of ['hostile', 'later'] as const) {
      const e = await failure(() => GenServer.call(node, pid, r, 60_000));
      expect((e as Error).message).toBe('constructor getter');
    }
    expect(await GenServer.call(node, pid, 'ok', 60_000)).toBe('fine');
  });

  it('a callback that returns a promise whose `constructor` getter throws crashes as a rejection does: terminate runs with the error; an init so fails the start, unlinked', async () => {
    const node = track();
    const terminated: unknown[] = [];
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (_r: string, _from, state: number) => hostilePromise({ reply: 1, state }),
      terminate: (reason) => void terminated.push((reason as Error).message),
    });
    const e = await failure(() => GenServer.call(node, pid, 'x'));
    expectKeelError(e, 'ERR_CALL_EXIT');
    expect(((e as CallExitError).reason as Error).message).toBe('constructor getter');
    expect(terminated).toEqual(['constructor getter']);
    const starter = probe(node);
    const start = await failure(() => GenServer.startLink(starter.ctx, { init: () => hostilePromise(0) }));
    expectKeelError(start, 'ERR_START_FAILED');
    await node.idle();
    expect(node.isAlive(starter)).toBe(true); // unlinked first, as for a rejection
  });
});
