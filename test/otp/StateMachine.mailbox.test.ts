// StateMachine.start's `mailbox` option: GenServer's (the spawn option), for a state machine.
import { describe, expect, it } from 'vitest';
import { StateMachine, Sys } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { clockedNode, expectKeelError, failure, useNodes } from '../support.js';

const track = useNodes();

type S = 'closed' | 'open';
type Calls = { request: 'log'; reply: string[] };

/** A machine that logs each cast it handles; while `closed`, it postpones every cast until an 'open' cast. */
async function machine(capacity: number, overflow: 'reject' | 'drop_newest' | 'drop_oldest' = 'reject', state: S = 'open') {
  const { node } = clockedNode(track);
  const dropped = captureEvents(node, ['keel.message.dropped']);
  const pid = await StateMachine.start<S, string[], Calls, string, never>(
    node,
    {
      init: () => ({ state, data: [] }),
      handleEvent: (ev, st, log) => {
        if (ev.type === 'call') return { keepState: true, actions: [{ type: 'reply', from: ev.from, reply: log }] };
        if (ev.type !== 'cast') return { keepState: true };
        if (ev.content === 'open') return { nextState: 'open', data: [...log, 'open'] };
        if (st === 'closed') return { keepState: true, actions: ['postpone'] };
        return { keepState: true, data: [...log, ev.content] };
      },
    },
    undefined,
    { mailbox: { capacity, overflow } },
  );
  return { node, pid, dropped };
}

describe('StateMachine.start mailbox option', () => {
  it('bounds the machine’s mailbox: a call past the capacity fails with ERR_MAILBOX_FULL, a cast past it is dropped with keel.message.dropped', async () => {
    const { node, pid, dropped } = await machine(2);
    StateMachine.cast(node, pid, 'a');
    StateMachine.cast(node, pid, 'b');
    StateMachine.cast(node, pid, 'c');
    expectKeelError(await failure(() => StateMachine.call(node, pid, 'log')), 'ERR_MAILBOX_FULL');
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.reason, e.metadata.message])).toMatchObject([
      ['mailbox_full', { request: 'c' }],
      ['mailbox_full', { request: 'log' }],
    ]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['a', 'b']);
  });

  it('drop_oldest: a cast past the capacity evicts the oldest queued event', async () => {
    const { node, pid, dropped } = await machine(2, 'drop_oldest');
    for (const c of ['a', 'b', 'c', 'd']) StateMachine.cast(node, pid, c);
    await node.idle();
    expect(dropped.events.map((e) => [e.metadata.overflow, e.metadata.message])).toEqual([
      ['drop_oldest', { request: 'a' }],
      ['drop_oldest', { request: 'b' }],
    ]);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['c', 'd']);
  });

  it('suspended (Sys.suspend), the held events count against the bound, as a GenServer’s', async () => {
    const { node, pid, dropped } = await machine(2);
    await Sys.suspend(node, pid);
    for (const c of ['a', 'b', 'c']) {
      StateMachine.cast(node, pid, c);
      await node.idle();
    }
    expect(dropped.events.map((e) => e.metadata.message)).toEqual([{ request: 'c' }]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ status: 'suspended', queued: 2 });
    await Sys.resume(node, pid);
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['a', 'b']);
  });

  it('a known limit: postponed events are the machine’s own queue, not counted against the bound (every one is kept, replayed on the state change)', async () => {
    const { node, pid, dropped } = await machine(2, 'reject', 'closed');
    for (let i = 0; i < 10; i++) {
      StateMachine.cast(node, pid, `${i}`);
      await node.idle(); // taken from the mailbox and postponed
    }
    expect(dropped.events).toEqual([]);
    expect(await Sys.getStatus(node, pid)).toMatchObject({ queued: 0 });
    StateMachine.cast(node, pid, 'open');
    await node.idle();
    expect(await StateMachine.call(node, pid, 'log')).toEqual(['open', ...Array.from({ length: 10 }, (_, i) => `${i}`)]);
  });
});
