// GenServer.start's `mailbox` option: the spawn option, for a server (OTP's spawn_opt of gen_server:start).
import { describe, expect, it } from 'vitest';
import { GenServer } from '../../src/index.js';
import { clockedNode, deferred, expectKeelError, failure, useNodes } from '../support.js';

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

  it('a call to a bounded server whose init is still running is refused at once once the mailbox is full, never left hanging', async () => {
    const { node } = clockedNode(track);
    const gate = deferred();
    const started = GenServer.start(
      node,
      {
        init: async () => {
          await gate.promise;
          return 10;
        },
        handleCall: (r: number, _f: unknown, n: number) => ({ reply: n + r, state: n }),
      },
      undefined,
      { name: 'slow', mailbox: { capacity: 3, overflow: 'reject' } },
    );
    const calls = [1, 2, 3, 4, 5].map((i) => GenServer.call(node, 'slow', i).then((v) => v, (e: unknown) => e));
    for (const refused of await Promise.all(calls.slice(3))) expectKeelError(refused, 'ERR_MAILBOX_FULL');
    gate.resolve();
    await started;
    expect(await Promise.all(calls.slice(0, 3))).toEqual([11, 12, 13]);
  });

  for (const overflow of ['reject', 'drop_newest'] as const) {
    it(`${overflow}: GenServer.stop to a full mailbox fails at once with ERR_MAILBOX_FULL (never left pending), and the server runs on`, async () => {
      const { node } = clockedNode(track);
      const pid = await GenServer.start(node, { init: () => 0, handleCast: (_c: unknown, n: number) => n + 1, handleCall: (_r: unknown, _f: unknown, n: number) => ({ reply: n, state: n }) }, undefined, {
        mailbox: { capacity: 2, overflow },
      });
      GenServer.cast(node, pid, 'inc');
      GenServer.cast(node, pid, 'inc');
      const stopped = GenServer.stop(node, pid).then(() => 'stopped', (e: unknown) => e);
      await node.idle();
      expectKeelError(await Promise.race([stopped, Promise.resolve('still pending')]), 'ERR_MAILBOX_FULL');
      expect(node.isAlive(pid)).toBe(true);
      expect(await GenServer.call(node, pid, 'get')).toBe(2);
    });
  }

  it('drop_oldest: a GenServer.stop evicted from the mailbox by later messages fails with ERR_MAILBOX_FULL (never left pending)', async () => {
    const { node } = clockedNode(track);
    const pid = await GenServer.start(node, { init: () => 0, handleCast: (_c: unknown, n: number) => n + 1, handleCall: (_r: unknown, _f: unknown, n: number) => ({ reply: n, state: n }) }, undefined, {
      mailbox: { capacity: 2, overflow: 'drop_oldest' },
    });
    GenServer.cast(node, pid, 'inc');
    GenServer.cast(node, pid, 'inc');
    const stopped = GenServer.stop(node, pid).then(() => 'stopped', (e: unknown) => e); // evicts the first cast
    GenServer.cast(node, pid, 'inc'); // evicts the second
    GenServer.cast(node, pid, 'inc'); // evicts the stop
    await node.idle();
    expectKeelError(await Promise.race([stopped, Promise.resolve('still pending')]), 'ERR_MAILBOX_FULL');
    expect(node.isAlive(pid)).toBe(true);
    expect(await GenServer.call(node, pid, 'get')).toBe(2);
  });
});
