// GenServer.start's `mailbox` option: the spawn option, for a server (OTP's spawn_opt of gen_server:start).
import { describe, expect, it } from 'vitest';
import { GenServer } from '../../src/index.js';
import { clockedNode, expectKeelError, failure, useNodes } from '../support.js';

const track = useNodes();

describe('GenServer.start mailbox option', () => {
  it('bounds the server’s mailbox as the spawn option does, and refuses a bad one before starting anything', async () => {
    const { node } = clockedNode(track);
    const spec = { init: () => 0, handleCall: (_r: unknown, _f: unknown, n: number) => ({ reply: n, state: n }), handleCast: (_c: unknown, n: number) => n + 1 };
    const count = node.processes().length;
    for (const [mailbox, argument] of [
      [{ capacity: 0, overflow: 'reject' }, '`options.mailbox.capacity`'],
      [{ capacity: 1, overflow: 'nope' }, '`options.mailbox.overflow`'],
      ['x', '`options.mailbox`'],
    ] as const) {
      expectKeelError(await failure(() => GenServer.start(node, spec, undefined, { mailbox } as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
    expect(node.processes()).toHaveLength(count);
    const pid = await GenServer.start(node, spec, undefined, { mailbox: { capacity: 2, overflow: 'reject' } });
    for (let i = 0; i < 2; i++) GenServer.cast(node, pid, 'inc');
    expectKeelError(await failure(() => GenServer.call(node, pid, 'get')), 'ERR_MAILBOX_FULL');
    await node.idle();
    expect(await GenServer.call(node, pid, 'get')).toBe(2);
  });
});
