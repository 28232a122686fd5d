/* eslint-disable keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import { type CallProtocol, GenServer, type GenServerSpec, sendSupervised, StateMachine, Sys } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { memoryPair } from '../cluster/support.js';
import { clockedNode, deferred, expectKeelError, failure, receiveDown, revokedProxy, spawnWithContext, useNodes, watch } from '../support.js';

const track = useNodes();

type Calls = { request: 'get'; reply: string[] } | { request: { add: string }; reply: string[] };

/** A server that logs what it handles, in order. */
function logger(): GenServerSpec<string[], Calls, string> {
  return {
    init: () => [],
    handleCall: (req, _from, log) => {
      if (req === 'get') return { reply: log, state: log };
      const next = [...log, `call:${req.add}`];
      return { reply: next, state: next };
    },
    handleCast: (c, log) => [...log, `cast:${c}`],
    handleInfo: (m, log) => [...log, `info:${String(m)}`],
  };
}

describe('Sys on a GenServer', () => {
  it('gets and replaces the state', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    GenServer.cast(node, pid, 'a');
    expect(await Sys.getState<string[]>(node, pid)).toEqual(['cast:a']);
    expect(await Sys.replaceState<string[]>(node, pid, (log) => [...log, 'replaced'])).toEqual(['cast:a', 'replaced']);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:a', 'replaced']);
  });

  it('keeps the state and the server when the replaceState function throws; the call rejects with what it threw', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    const e = await failure(() => Sys.replaceState(node, pid, () => {
      throw new Error('no');
    }));
    expect(String(e)).toBe('Error: no');
    expect(node.isAlive(pid)).toBe(true);
    expect(await Sys.getState(node, pid)).toEqual([]);
    expectKeelError(await failure(() => Sys.replaceState(node, pid, 'x' as never)), 'ERR_INVALID_ARGUMENT');
  });

  it('refuses a replaceState function that returns a promise: the server keeps its state, the call rejects, the promise is no unhandled rejection', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    GenServer.cast(node, pid, 'a');
    const resolved = await failure(() => Sys.replaceState<string[]>(node, pid, (async (log: string[]) => [...log, 'async']) as never));
    expectKeelError(resolved, 'ERR_INVALID_ARGUMENT', 'not a promise');
    const rejected = await failure(() => Sys.replaceState<string[]>(node, pid, (async () => {
      throw new Error('later');
    }) as never));
    expectKeelError(rejected, 'ERR_INVALID_ARGUMENT', 'not a promise');
    expect(await Sys.getState(node, pid)).toEqual(['cast:a']);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:a']);
  });

  it('gives the status, the state shown through formatStatus', async () => {
    const { node } = clockedNode(track);
    const plain = await GenServer.start(node, logger());
    expect(await Sys.getStatus(node, plain)).toEqual({ pid: plain, behaviour: 'GenServer', status: 'running', parent: 'node', queued: 0, state: [] });
    const secret = await GenServer.start(node, { init: () => ({ user: 'ann', password: 'hunter2' }), formatStatus: (s) => ({ ...s, password: '***' }) });
    expect((await Sys.getStatus(node, secret)).state).toEqual({ user: 'ann', password: '***' });
    const failing = await GenServer.start(node, {
      init: () => 'secret',
      formatStatus: () => {
        throw new Error('oops');
      },
    });
    const status = await Sys.getStatus(node, failing);
    expect(JSON.stringify(status.state)).not.toContain('secret');
    expect(status.state).toEqual({ formatStatusFailed: 'Error: oops' });
    expect(node.isAlive(failing)).toBe(true);
    expectKeelError(await failure(() => GenServer.start(node, { init: () => 0, formatStatus: 1 as never })), 'ERR_INVALID_ARGUMENT', 'spec.formatStatus');
  });

  it('shows a formatStatus that returns a promise (an async one) as failed, never the promise, and its rejection is no unhandled rejection', async () => {
    const { node } = clockedNode(track);
    const resolving = await GenServer.start(node, { init: () => 'secret', formatStatus: (async () => 'shown') as never });
    const rejecting = await GenServer.start(node, {
      init: () => 'secret',
      formatStatus: (async () => {
        throw new Error('oops');
      }) as never,
    });
    const failed = { formatStatusFailed: 'InvalidArgumentError: expected `formatStatus result` to be the state to show, not a promise (formatStatus runs synchronously), got a Promise (a missing await?)' };
    expect((await Sys.getStatus(node, resolving)).state).toEqual(failed);
    expect((await Sys.getStatus(node, rejecting)).state).toEqual(failed);
    expect(node.isAlive(rejecting)).toBe(true);
  });

  it('shows a formatStatus that throws an error it cannot print (a throwing message getter or toString) as failed; the server lives', async () => {
    const { node } = clockedNode(track);
    const unprintable = new Error('hidden');
    Object.defineProperty(unprintable, 'message', {
      get() {
        throw new Error('no message');
      },
    });
    class Unprintable extends Error {
      override toString(): string {
        throw new Error('no text');
      }
    }
    for (const thrown of [unprintable, new Unprintable('secret')]) {
      const pid = await GenServer.start(node, {
        init: () => 'secret',
        formatStatus: () => {
          throw thrown;
        },
      });
      expect((await Sys.getStatus(node, pid)).state).toEqual({ formatStatusFailed: 'a value that cannot be inspected' });
      expect(node.isAlive(pid)).toBe(true);
      expect(await Sys.getState(node, pid)).toBe('secret');
    }
  });

  it('suspends: only system calls are answered, the rest waits in order and is handled on resume', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'a');
    const call = watch(GenServer.call(node, pid, { add: 'b' }));
    node.send(pid, 'c');
    await node.idle();
    expect(call.status).toBe('pending');
    expect(await Sys.getState(node, pid)).toEqual([]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3 });
    await Sys.suspend(node, pid); // twice is once
    await Sys.resume(node, pid);
    await node.idle();
    expect(call).toMatchObject({ status: 'resolved', value: ['cast:a', 'call:b'] });
    expect(await Sys.getState(node, pid)).toEqual(['cast:a', 'call:b', 'info:c']);
    await Sys.resume(node, pid); // resuming a running server does nothing
    expect((await Sys.getStatus(node, pid)).status).toBe('running');
  });

  it("replays a long held backlog in slices: the node's other processes run between two, and the server can be killed meanwhile", async () => {
    const { node } = clockedNode(track);
    const seen: [string, number][] = [];
    let handled = 0;
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleInfo: (_m: number, n: number) => {
        handled++;
        return n + 1;
      },
    });
    const other = node.spawn(() => (m: string) => {
      seen.push([m, handled]);
      if (m === 'kill') node.exit(pid, 'kill');
    });
    // slices of 10,000: the other process runs after one or two of them (as the scheduler's own
    // slice falls), never after the whole backlog
    const sliceEnd = (n: number | undefined): boolean => n === 10_000 || n === 20_000;
    await Sys.suspend(node, pid);
    for (let i = 0; i < 25_000; i++) node.send(pid, i);
    await Sys.getState(node, pid); // all held
    const resumed = Sys.resume(node, pid);
    node.send(other, 'ran');
    await resumed;
    await node.idle();
    expect(seen.map(([m]) => m)).toEqual(['ran']);
    expect(sliceEnd(seen[0]![1])).toBe(true);
    expect(await Sys.getState(node, pid)).toBe(25_000);
    await Sys.suspend(node, pid);
    for (let i = 0; i < 25_000; i++) node.send(pid, i);
    const held = watch(GenServer.call(node, pid, 'never handled'));
    await Sys.getState(node, pid);
    handled = 0;
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    void Sys.resume(node, pid);
    node.send(other, 'kill');
    await receiveDown(p, ref);
    expect(seen.map(([m]) => m)).toEqual(['ran', 'kill']);
    expect(sliceEnd(seen[1]![1])).toBe(true);
    expect(handled).toBe(seen[1]![1]); // nothing more once killed
    expect((held.error as { stage: string }).stage).toBe('queued');
  });

  it('answers a system call sent during a sliced replay after the whole backlog, in its order, as OTP: a suspend there holds only what came after it', async () => {
    const { node } = clockedNode(track);
    let handled = 0;
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleInfo: (_m: number | string, n: number) => {
        handled++;
        return n + 1;
      },
    });
    const seen: number[] = [];
    const other = node.spawn(() => () => {
      seen.push(handled);
    });
    await Sys.suspend(node, pid);
    for (let i = 0; i < 25_000; i++) node.send(pid, i);
    await Sys.getState(node, pid); // all held
    void Sys.resume(node, pid);
    // sent after the backlog was held: like messages queued behind it, never ahead of it
    const state = Sys.getState<number>(node, pid);
    const suspended = Sys.suspend(node, pid);
    node.send(pid, 'newer');
    node.send(other, 'ran');
    expect(await state).toBe(25_000);
    await suspended;
    expect(seen.length === 1 && (seen[0] === 10_000 || seen[0] === 20_000)).toBe(true); // a slice boundary passed unanswered
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 1, state: 25_000 });
    await Sys.resume(node, pid);
    await node.idle();
    expect(await Sys.getState(node, pid)).toBe(25_001);
  });

  it('times out a call to a suspended server; a held call reports the stage queued when the server dies', async () => {
    const { node, clock } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    const late = watch(GenServer.call(node, pid, 'get', 100));
    const held = watch(GenServer.call(node, pid, 'get', 10_000));
    await clock.advance(100);
    expectKeelError(late.error, 'ERR_CALL_TIMEOUT', '100 ms');
    expect(held.status).toBe('pending');
    node.exit(pid, 'kill');
    await node.idle();
    expectKeelError(held.error, 'ERR_CALL_EXIT', 'queued');
    expect((held.error as { stage: string }).stage).toBe('queued');
  });

  it("acknowledges a supervised message at 'handled' only once it is handled after resume; one held when the server dies is process_down, not handled", async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    const sent = sendSupervised(node, pid, 'held', { ack: 'handled', onError: 'ignore' });
    const held = watch(sent);
    await Sys.getState(node, pid); // the message came before this call, and was held
    await node.idle();
    expect(held.status).toBe('pending');
    await Sys.resume(node, pid);
    expect(await sent).toMatchObject({ ok: true, attempts: 1 });
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:held']);
    await Sys.suspend(node, pid);
    const sentLost = sendSupervised(node, pid, 'lost', { ack: 'handled', onError: 'ignore' });
    const lost = watch(sentLost);
    await Sys.getState(node, pid);
    await node.idle();
    expect(lost.status).toBe('pending');
    node.exit(pid, 'kill');
    expect(await sentLost).toMatchObject({ ok: false, reason: 'process_down', attempts: 1 });
  });

  it("times out a supervised 'handled' send held past its timeout: the held copy, never started, is withdrawn and never handled on resume", async () => {
    const { node, clock } = clockedNode(track);
    const pid = await GenServer.start(node, logger());
    await Sys.suspend(node, pid);
    const sent = sendSupervised(node, pid, 'late', { ack: 'handled', timeout: 100, onError: 'ignore' });
    await Sys.getState(node, pid);
    await clock.advance(100);
    expect(await sent).toMatchObject({ ok: false, reason: 'timeout', attempts: 1 });
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual([]);
  });

  it('obeys a stop while suspended', async () => {
    const { node } = clockedNode(track);
    const stopped: unknown[] = [];
    const pid = await GenServer.start(node, { ...logger(), terminate: (reason) => void stopped.push(reason) });
    await Sys.suspend(node, pid);
    await GenServer.stop(node, pid, 'shutdown');
    expect(stopped).toEqual(['shutdown']);
  });

  it("holds the node's exit signal to a trapping server whose parent is a process (an info message for it) until resume", async () => {
    const { node } = clockedNode(track);
    const { ctx: parent } = await spawnWithContext(node);
    const infos: unknown[] = [];
    const pid = await GenServer.start(parent, {
      init: (_arg: undefined, ctx) => {
        ctx.trapExits();
        return 0;
      },
      handleInfo: (m, n: number) => {
        infos.push(m);
        return n + 1;
      },
    });
    await Sys.suspend(node, pid);
    node.exit(pid, { shutdown: 'from the node' });
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 1 });
    expect(infos).toEqual([]);
    await Sys.resume(node, pid);
    expect(await Sys.getState(node, pid)).toBe(1);
    expect(infos).toMatchObject([{ from: 'node', reason: { shutdown: 'from the node' } }]);
  });

  it('holds an unreadable message while suspended and hands it to handleInfo on resume', async () => {
    const { node } = clockedNode(track);
    const infos: string[] = [];
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleInfo: (m, n) => {
        infos.push(typeof m);
        return n + 1;
      },
    });
    await Sys.suspend(node, pid);
    node.send(pid, revokedProxy());
    await Sys.resume(node, pid);
    await node.idle();
    expect(infos).toEqual(['object']);
    expect(await Sys.getState(node, pid)).toBe(1);
  });

  it('fails as a call does: ERR_NOPROC for a dead or unknown server, ERR_CALL_TIMEOUT while a callback is busy, ERR_DEADLOCK on oneself', async () => {
    const { node, clock } = clockedNode(track);
    expectKeelError(await failure(() => Sys.getState(node, 'nobody')), 'ERR_NOPROC', "'nobody'");
    const gate = deferred();
    const pid = await GenServer.start(node, { init: () => 0, handleCast: async (_c: string, n: number) => gate.promise.then(() => n) });
    GenServer.cast(node, pid, 'busy');
    const status = watch(Sys.getStatus(node, pid, 50));
    await clock.advance(50);
    expectKeelError(status.error, 'ERR_CALL_TIMEOUT', '50 ms');
    gate.resolve();
    expectKeelError(await failure(() => Sys.getState(node, pid, -1)), 'ERR_INVALID_ARGUMENT');
    let self: Promise<unknown> | undefined;
    const me = await GenServer.start(node, {
      init: () => 0,
      handleCast: (_c: string, n: number, ctx) => {
        self = Sys.getState(ctx, ctx.self).catch((e: unknown) => e);
        return n;
      },
    });
    GenServer.cast(node, me, 'x');
    await node.idle();
    expectKeelError(await self, 'ERR_DEADLOCK');
  });
});

describe('Sys across nodes', () => {
  it("refuses a server of another node with ERR_INVALID_ARGUMENT saying so, not an encoding error about Keel's own request", async () => {
    const { a, b } = await memoryPair(track);
    const pid = await GenServer.start(b, logger());
    for (const op of [() => Sys.getState(a, pid), () => Sys.getStatus(a, pid), () => Sys.suspend(a, pid), () => Sys.resume(a, pid), () => Sys.replaceState(a, pid, (s) => s)]) {
      expectKeelError(await failure(op), 'ERR_INVALID_ARGUMENT', 'a server of this node (a', 'node b');
    }
    expect(await Sys.getState(b, pid)).toEqual([]);
  });
});

describe('Sys on a StateMachine', () => {
  type S = 'idle' | 'busy';
  async function machine() {
    const { node, clock } = clockedNode(track);
    const log: string[] = [];
    const pid = await StateMachine.start<S, number, CallProtocol, string, string>(node, {
      init: () => ({ state: 'idle', data: 0 }),
      handleEvent: (ev, state, n) => {
        log.push(`${state}/${ev.type}:${ev.type === 'cast' || ev.type === 'state_timeout' ? ev.content : ''}`);
        if (ev.type === 'cast' && ev.content === 'work') return { nextState: 'busy', data: n + 1, actions: [{ type: 'state_timeout', ms: 100, content: 'done' }] };
        if (ev.type === 'state_timeout') return { nextState: 'idle' };
        return { keepState: true };
      },
      formatStatus: ({ state }) => ({ state, data: 'hidden' }),
    });
    return { node, clock, pid, log };
  }

  it('gets and replaces { state, data }, and shows the status through formatStatus', async () => {
    const { node, pid } = await machine();
    expect(await Sys.getState(node, pid)).toEqual({ state: 'idle', data: 0 });
    expect(await Sys.replaceState<{ state: S; data: number }>(node, pid, ({ data }) => ({ state: 'busy', data: data + 10 }))).toEqual({ state: 'busy', data: 10 });
    expect(await Sys.getStatus(node, pid)).toMatchObject({ behaviour: 'StateMachine', status: 'running', state: { state: 'busy', data: 'hidden' } });
    const e = await failure(() => Sys.replaceState(node, pid, () => 'not a state'));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', '{ state, data }');
    expect(await Sys.getState(node, pid)).toEqual({ state: 'busy', data: 10 });
  });

  it('holds events and fired timeouts while suspended, and handles them in order on resume', async () => {
    const { node, clock, pid, log } = await machine();
    StateMachine.cast(node, pid, 'work');
    await node.idle();
    await Sys.suspend(node, pid);
    await clock.advance(100); // the state timeout fires: its event waits
    StateMachine.cast(node, pid, 'after');
    await node.idle();
    expect(log).toEqual(['idle/cast:work']);
    await Sys.resume(node, pid);
    await node.idle();
    expect(log).toEqual(['idle/cast:work', 'busy/state_timeout:done', 'idle/cast:after']);
  });

  it('a crash of a machine with a held call fails it with the stage queued', async () => {
    const { node, pid } = await machine();
    const p = probe(node);
    const ref = p.ctx.monitor(pid);
    await Sys.suspend(node, pid);
    const held = watch(StateMachine.call(node, pid, 'anything'));
    await node.idle();
    node.exit(pid, 'kill');
    await receiveDown(p, ref);
    expect((held.error as { stage: string }).stage).toBe('queued');
  });
});

describe('Sys.suspend on a bounded server: the held messages count against the bound', () => {
  const counter = (): GenServerSpec<string[], Calls, string> => logger();

  for (const overflow of ['reject', 'drop_newest'] as const) {
    it(`${overflow}: a message past the capacity (mailbox + held) is refused as by a full mailbox; system calls still get in; on resume the held ones are handled in order and the bound is as before`, async () => {
      const { node } = clockedNode(track);
      const dropped = captureEvents(node, ['keel.message.dropped']);
      const pid = await GenServer.start(node, counter(), undefined, { mailbox: { capacity: 3, overflow } });
      await Sys.suspend(node, pid);
      GenServer.cast(node, pid, 'a');
      await node.idle(); // held
      const call = watch(GenServer.call(node, pid, { add: 'b' }));
      node.send(pid, 'c'); // in the mailbox still: 1 held + 2 queued
      GenServer.cast(node, pid, 'refused-cast');
      expectKeelError(await failure(() => GenServer.call(node, pid, { add: 'refused-call' })), 'ERR_MAILBOX_FULL');
      await node.idle(); // all three held, the mailbox empty
      GenServer.cast(node, pid, 'refused-cast-2');
      node.send(pid, 'refused-raw');
      expect(await sendSupervised(node, pid, 'refused-supervised', { ack: 'handled', onError: 'ignore' })).toMatchObject({ ok: false, reason: 'mailbox_full' });
      expect(call.status).toBe('pending');
      // system calls: answered while suspended and full
      expect(await Sys.getState(node, pid)).toEqual([]);
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3 });
      expect(dropped.events.map((e) => [e.metadata.reason, e.metadata.overflow])).toEqual(Array(5).fill(['mailbox_full', undefined]));
      expect(dropped.events.map((e) => e.metadata.message)).toMatchObject([
        { request: 'refused-cast' },
        { request: { add: 'refused-call' } },
        { request: 'refused-cast-2' },
        'refused-raw',
        'refused-supervised',
      ]);
      await Sys.resume(node, pid);
      await node.idle();
      expect(call).toMatchObject({ status: 'resolved', value: ['cast:a', 'call:b'] });
      expect(await Sys.getState(node, pid)).toEqual(['cast:a', 'call:b', 'info:c']);
      expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'running', queued: 0 });
      // the bound as before: three queued, the fourth refused
      for (const c of ['d', 'e', 'f', 'g']) GenServer.cast(node, pid, c);
      await node.idle();
      expect(await Sys.getState(node, pid)).toEqual(['cast:a', 'call:b', 'info:c', 'cast:d', 'cast:e', 'cast:f']);
      expect(dropped.events).toHaveLength(6);
    });
  }

  it('reject: 100 casts to a suspended server of capacity 2 leave 2 held and 98 dropped; resumed, it handles the 2', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, counter(), undefined, { mailbox: { capacity: 2, overflow: 'reject' } });
    await Sys.suspend(node, pid);
    for (let i = 0; i < 50; i++) {
      GenServer.cast(node, pid, `${2 * i}`);
      GenServer.cast(node, pid, `${2 * i + 1}`);
      await node.idle();
    }
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 2 });
    expect(dropped.events).toHaveLength(98);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:0', 'cast:1']);
  });

  it('drop_oldest: a message past the capacity evicts the oldest, held ones first (they are older), each told as the kernel tells an eviction', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const pid = await GenServer.start(node, counter(), undefined, { mailbox: { capacity: 3, overflow: 'drop_oldest' } });
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'a');
    const call = GenServer.call(node, pid, { add: 'b' }).then((v) => v, (e: unknown) => e);
    const supervised = sendSupervised(node, pid, 'c', { ack: 'handled', onError: 'ignore' });
    await node.idle(); // all three held
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3 }); // a system call gets in, evicting nothing
    GenServer.cast(node, pid, 'd'); // in the mailbox: evicts a (held)
    GenServer.cast(node, pid, 'e'); // evicts the call b (held)
    node.send(pid, 'f'); // evicts the supervised c (held)
    GenServer.cast(node, pid, 'g'); // none held now: evicts d, the oldest in the mailbox
    expectKeelError(await call, 'ERR_MAILBOX_FULL');
    expect(await supervised).toMatchObject({ ok: false, reason: 'mailbox_full' });
    await node.idle();
    expect(dropped.events.map((e) => e.metadata.overflow)).toEqual(Array(4).fill('drop_oldest'));
    expect(dropped.events.map((e) => e.metadata.message)).toMatchObject([{ request: 'a' }, { request: { add: 'b' } }, 'c', { request: 'd' }]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 3 });
    expect(await Sys.getState(node, pid)).toEqual([]);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:e', 'info:f', 'cast:g']);
    // the bound as before
    for (const c of ['h', 'i', 'j', 'k']) GenServer.cast(node, pid, c);
    await node.idle();
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:e', 'info:f', 'cast:g', 'cast:i', 'cast:j', 'cast:k']);
    expect(dropped.events).toHaveLength(5);
  });

  it('a Down or an Exit is never refused by the held bound, and is held like any other message for a trapping server', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const other = node.spawn(() => () => undefined);
    const pid = await GenServer.start(
      node,
      { ...counter(), init: (_a: undefined, ctx) => (ctx.monitor(other), []), handleInfo: (m, log) => [...log, typeof m === 'string' ? `info:${m}` : 'down'] },
      undefined,
      { mailbox: { capacity: 1, overflow: 'reject' } },
    );
    await Sys.suspend(node, pid);
    node.send(pid, 'a');
    await node.idle();
    node.exit(other, 'kill');
    await node.idle();
    expect(dropped.events).toEqual([]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 2 });
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['info:a', 'down']);
  });

  it('drop_oldest: a held Down is never evicted; the oldest held message after it is', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const other = node.spawn(() => () => undefined);
    const pid = await GenServer.start(
      node,
      { ...counter(), init: (_a: undefined, ctx) => (ctx.monitor(other), []), handleInfo: (m, log) => [...log, typeof m === 'string' ? `info:${m}` : 'down'] },
      undefined,
      { mailbox: { capacity: 2, overflow: 'drop_oldest' } },
    );
    await Sys.suspend(node, pid);
    node.exit(other, 'kill');
    await node.idle();
    node.send(pid, 'a');
    await node.idle();
    node.send(pid, 'b'); // evicts a, not the Down before it
    await node.idle();
    expect(dropped.events.map((e) => e.metadata.message)).toEqual(['a']);
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['down', 'info:b']);
  });

  it('an unbounded suspended server holds without limit, as before', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, counter());
    await Sys.suspend(node, pid);
    for (let i = 0; i < 1000; i++) GenServer.cast(node, pid, `${i}`);
    await node.idle();
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 1000 });
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toHaveLength(1000);
  });
});

describe('Sys.suspend on a bounded server: what gets in past the held messages', () => {
  it('a GenServer.stop gets in (a suspended server obeys it); an unreadable message (a revoked proxy) is bounded like any other', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    const stopped: unknown[] = [];
    const pid = await GenServer.start(node, { ...logger(), terminate: (reason) => void stopped.push(reason) }, undefined, { mailbox: { capacity: 1, overflow: 'reject' } });
    await Sys.suspend(node, pid);
    GenServer.cast(node, pid, 'a');
    await node.idle();
    node.send(pid, revokedProxy());
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['mailbox_full']);
    await GenServer.stop(node, pid, 'shutdown');
    expect(stopped).toEqual(['shutdown']);
  });

  it('suspended again by a system call queued behind the replayed backlog: what comes after is held, in order, and bounded again', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, logger(), undefined, { mailbox: { capacity: 3, overflow: 'reject' } });
    await Sys.suspend(node, pid);
    for (const c of ['a', 'b', 'c']) GenServer.cast(node, pid, c);
    await node.idle();
    const resumed = Sys.resume(node, pid);
    const suspended = Sys.suspend(node, pid); // behind the backlog: the held ones are replayed first
    await resumed;
    await suspended;
    for (const c of ['d', 'e', 'f', 'g']) {
      GenServer.cast(node, pid, c); // g refused: d, e, f held
      await node.idle();
    }
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 3, state: ['cast:a', 'cast:b', 'cast:c'] });
    await Sys.resume(node, pid);
    expect(await GenServer.call(node, pid, 'get')).toEqual(['cast:a', 'cast:b', 'cast:c', 'cast:d', 'cast:e', 'cast:f']);
  });

  it('a held message not yet replayed still counts: between two slices of a long replay, the mailbox takes only what the replay has handled', async () => {
    const { node } = clockedNode(track);
    const dropped = captureEvents(node, ['keel.message.dropped']);
    let handled = 0;
    const pid = await GenServer.start(node, { init: () => 0, handleInfo: (_m: unknown, n: number) => (handled++, n + 1) }, undefined, { mailbox: { capacity: 25_000, overflow: 'reject' } });
    let at = -1;
    const other = node.spawn(() => () => {
      at = handled;
      for (let i = 0; i < 25_000; i++) node.send(pid, 'late');
    });
    await Sys.suspend(node, pid);
    for (let i = 0; i < 25_000; i++) node.send(pid, i);
    await node.idle(); // all held: full, though a system call still gets in
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 25_000 });
    const resumed = Sys.resume(node, pid);
    node.send(other, 'go'); // runs between two slices of the replay
    await resumed;
    await node.idle();
    expect(at === 10_000 || at === 20_000).toBe(true);
    expect(dropped.events).toHaveLength(25_000 - at);
    expect(await Sys.getState(node, pid)).toBe(25_000 + at);
  });
});
