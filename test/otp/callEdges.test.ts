// Calls whose server dies before or while they are handled, timeouts of 0, many calls in flight: the
// behaviour any cheaper bookkeeping of a call (a lazily armed deadline or server watch) must keep.
import { describe, expect, it } from 'vitest';
import { GenServer, isKeelError, type Pid } from '../../src/index.js';
import { pendingCallsOf } from '../../src/otp/internal/calls.js';
import { kernelOf } from '../../src/runtime/kernel.js';
import { useNodes } from '../support.js';

const track = useNodes();

async function outcome(call: Promise<unknown>): Promise<unknown> {
  return call.then((v) => ({ resolved: v }), (e: unknown) => (isKeelError(e) ? { code: e.code, stage: (e as { stage?: unknown }).stage, reason: (e as { reason?: unknown }).reason } : e));
}

describe('a GenServer call at its edges', () => {
  it('fails with the exit reason (handling) when the server exits itself inside handleCall', async () => {
    const node = track();
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (_req, _from, state, ctx) => {
        ctx.exit('shutdown');
        return { reply: 'never', state };
      },
    });
    const [first, queued] = [GenServer.call(node, pid, 'a'), GenServer.call(node, pid, 'b')];
    expect(await outcome(first)).toEqual({ code: 'ERR_CALL_EXIT', stage: 'handling', reason: 'shutdown' });
    expect(await outcome(queued)).toEqual({ code: 'ERR_CALL_EXIT', stage: 'queued', reason: 'shutdown' });
  });

  it('fails, not replies, when the handler swallows its own exit and returns a reply', async () => {
    const node = track();
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (_req, _from, state, ctx) => {
        try {
          ctx.exit('shutdown');
        } catch {
          // a handler that catches what ctx.exit throws: the process is dead all the same
        }
        return { reply: 'late', state };
      },
    });
    expect(await outcome(GenServer.call(node, pid, 'x'))).toEqual({ code: 'ERR_CALL_EXIT', stage: 'handling', reason: 'shutdown' });
    expect(node.isAlive(pid)).toBe(false);
  });

  it('fails at once (queued) when the server is killed with many calls in its mailbox, and the observer counts them before', async () => {
    const node = track();
    const N = 1000;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    let started!: () => void;
    const busy = new Promise<void>((r) => (started = r));
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: async (req, _from, state) => {
        if (req === 'block') {
          started();
          await gate;
        }
        return { reply: req, state };
      },
    });
    const blocked = GenServer.call(node, pid, 'block', Infinity);
    await busy; // the server is busy in its async handler
    const calls = Array.from({ length: N }, (_, i) => GenServer.call(node, pid, i, Infinity));
    const p = kernelOf(node).resolve(pid as Pid)!;
    // what the observer reads: the call being handled (async) and the N queued
    expect(pendingCallsOf(p).incoming).toBe(N + 1);
    node.exit(pid, 'kill');
    const out = await Promise.all(calls.map(outcome));
    for (const o of out) expect(o).toEqual({ code: 'ERR_CALL_EXIT', stage: 'queued', reason: 'killed' });
    expect(await outcome(blocked)).toEqual({ code: 'ERR_CALL_EXIT', stage: 'handling', reason: 'killed' });
    release();
  });

  it('with a timeout of 0, is answered when the server answers in the same drain, and times out when the server is busy', async () => {
    const node = track();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (req, _from, state) => (req === 'block' ? gate.then(() => ({ reply: req, state })) : { reply: req, state }),
    });
    expect(await GenServer.call(node, pid, 'quick', 0)).toBe('quick');
    const blocked = GenServer.call(node, pid, 'block', Infinity);
    const late = GenServer.call(node, pid, 'late', 0);
    expect(await outcome(late)).toMatchObject({ code: 'ERR_CALL_TIMEOUT' });
    release();
    expect(await blocked).toBe('block');
    expect(node.isAlive(pid)).toBe(true);
  });

  it('counts a deferred (noreply) call, and fails it as deferred when the server dies later', async () => {
    const node = track();
    const pid = await GenServer.start(node, {
      init: () => 0,
      handleCall: (req, _from, state) => (req === 'hold' ? { noreply: true, state } : { reply: req, state }),
    });
    const held = GenServer.call(node, pid, 'hold', Infinity);
    await node.idle();
    expect(pendingCallsOf(kernelOf(node).resolve(pid as Pid)!).incoming).toBe(1);
    node.exit(pid, 'kill');
    expect(await outcome(held)).toEqual({ code: 'ERR_CALL_EXIT', stage: 'deferred', reason: 'killed' });
  });
});
