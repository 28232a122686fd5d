import { describe, expect, it } from 'vitest';
import { type From, GenServer, type GenServerSpec } from '../../src/index.js';
import { callListening, type CallListener } from '../../src/otp/internal/calls.js';
import { TestClock } from '../../src/testing/index.js';
import { deadPid, useNodes } from '../support.js';

const track = useNodes();

function holder(held: From[]): GenServerSpec<null> {
  return {
    init: () => null,
    handleCall: (_request, from, state) => {
      held.push(from);
      return { noreply: true, state };
    },
  };
}

const log = (out: string[], name: string): CallListener => ({
  callReplied: (r) => out.push(`${name}:replied:${String(r)}`),
  callFailed: (e) => out.push(`${name}:failed:${(e as { code?: string }).code ?? String(e)}`),
});

describe('callListening, adversarial review', () => {
  it('the server dying after its reply was queued for the listener: the reply is told, once, no failure after it', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    callListening(node, pid, 'x', 5000, log(out, 'a'));
    await node.idle();
    GenServer.reply(held[0]!, 1);
    node.exit(pid, 'kill'); // in the same stretch, before the listener's microtask
    await node.idle();
    expect(out).toEqual(['a:replied:1']);
  });

  it('the deadline and a reply in the same turn: told once, whichever came first', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    callListening(node, pid, 'x', 100, log(out, 'a'));
    await node.idle();
    await clock.advance(100);
    GenServer.reply(held[0]!, 'late');
    await node.idle();
    expect(out).toEqual(['a:failed:ERR_CALL_TIMEOUT']);
  });

  it('a batch queued when the node shuts down is told, each listener once', async () => {
    const node = track();
    const held: From[] = [];
    const pid = await GenServer.start(node, holder(held));
    const out: string[] = [];
    for (const name of ['a', 'b', 'c']) callListening(node, pid, name, 5000, log(out, name));
    await node.idle();
    GenServer.reply(held[0]!, 1);
    const stopped = node.shutdown();
    await stopped;
    await Promise.resolve();
    expect(out.sort()).toEqual(['a:replied:1', 'b:failed:ERR_NOPROC', 'c:failed:ERR_NOPROC']);
  });

  it('a call made from inside a listener that fails at once is told too, exactly once', async () => {
    const node = track();
    const out: string[] = [];
    const dead = deadPid(node);
    callListening(node, dead, 'x', 5000, {
      callReplied: () => out.push('outer:replied'),
      callFailed: () => {
        out.push('outer:failed');
        callListening(node, dead, 'y', 5000, log(out, 'inner'));
      },
    });
    await node.idle();
    expect(out).toEqual(['outer:failed', 'inner:failed:ERR_NOPROC']);
  });
});
