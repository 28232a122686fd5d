// Incarnations: the bookkeeping of peers gone for good or downed for silence, and what a pid of an
// earlier incarnation of a peer reaches over the in-memory network (nothing of the process of its id now).
import { describe, expect, it } from 'vitest';
import { Incarnations, REMEMBERED } from '../../src/cluster/internal/Incarnations.js';
import { GenServer } from '../../src/otp/GenServer.js';
import { isExit } from '../../src/runtime/messages.js';
import { PidImpl, type Pid } from '../../src/runtime/Pid.js';
import { probe } from '../../src/testing/index.js';
import { failure, useNodes } from '../support.js';
import { memoryPair } from './support.js';

const track = useNodes();

const echo = {
  init: () => 0,
  handleCall: (req: string, _from: unknown, s: number) => ({ reply: `echo:${req}`, state: s }),
};

describe('Incarnations', () => {
  it('remembers the last REMEMBERED incarnations gone for good, oldest forgotten first', () => {
    const gone = new Incarnations();
    for (let i = 0; i <= REMEMBERED; i++) gone.dead(`n${i}`, 1);
    expect(gone.isDead('n0', 1)).toBe(false);
    expect(gone.isDead('n1', 1)).toBe(true);
    expect(gone.isDead(`n${REMEMBERED}`, 1)).toBe(true);
    expect(gone.isDead('n1', 2)).toBe(false); // another incarnation of the name is not gone
  });

  it('a peer downed for silence is remembered by name; past the bound the oldest becomes gone for good', () => {
    const gone = new Incarnations();
    gone.silence('a', 3);
    expect(gone.silenced('a')).toBe(3);
    gone.silence('a', 4); // a later incarnation downed for silence replaces it
    expect(gone.silenced('a')).toBe(4);
    gone.unsilence('a');
    expect(gone.silenced('a')).toBeUndefined();
    for (let i = 0; i <= REMEMBERED; i++) gone.silence(`s${i}`, 9);
    expect(gone.silenced('s0')).toBeUndefined();
    expect(gone.isDead('s0', 9)).toBe(true);
    expect(gone.silenced('s1')).toBe(9);
    expect(gone.isDead('s1', 9)).toBe(false);
  });
});

describe('pids of an earlier incarnation', () => {
  it('a call to a pid of an earlier incarnation of a peer fails with noproc, never reaching the process of the same id now', async () => {
    const { a, b } = await memoryPair(track);
    const server = await GenServer.start(b, echo, undefined);
    const old = new PidImpl('b', b.creation - 1, server.id) as unknown as Pid;
    const error = await failure(() => GenServer.call(a, old, 'hi', { timeout: 5000 }));
    expect((error as { code?: string }).code).toBe('ERR_NOPROC');
  });

  it('unlink of a pid of an earlier incarnation leaves the link to the live process of the same id', async () => {
    const { a, b } = await memoryPair(track);
    const watcher = probe(a);
    watcher.ctx.trapExits(true);
    const target = b.spawn(() => () => undefined);
    watcher.ctx.link(target);
    const old = new PidImpl('b', b.creation - 1, target.id) as unknown as Pid;
    watcher.ctx.unlink(old);
    await a.idle();
    await b.idle();
    b.exit(target, new Error('boom'));
    const exit = await watcher.receive(isExit, { timeout: 5000 });
    expect((exit as { reason: Error }).reason.message).toBe('boom');
  });
});
