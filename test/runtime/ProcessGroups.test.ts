/* eslint-disable keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, it } from 'vitest';
import { Pid } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { probe } from '../../src/testing/index.js';
import { expectKeelError, idler, otherCreation, receiveDown, thrown, useNodes } from '../support.js';

const track = useNodes();

const formatted = (pids: readonly Pid[]) => pids.map((p) => Pid.format(p));

describe('node.groups', () => {
  it('join adds members in join order; joining twice is the same as once', () => {
    const node = track();
    const [a, b, c] = [idler(node), idler(node), idler(node)];
    node.groups.join('workers', b);
    node.groups.join('workers', a);
    node.groups.join('workers', b);
    node.groups.join('admins', c);
    expect(formatted(node.groups.members('workers'))).toEqual(formatted([b, a]));
    expect(formatted(node.groups.members('admins'))).toEqual(formatted([c]));
    expect(node.groups.groups().sort()).toEqual(['admins', 'workers']);
    expect(node.groups.members('nobody')).toEqual([]);
  });

  it('one process can be in several groups; leave removes it from one only', () => {
    const node = track();
    const a = idler(node);
    const b = idler(node);
    node.groups.join('x', a);
    node.groups.join('y', a);
    node.groups.join('x', b);
    expect(node.groups.leave('x', a)).toBe(true);
    expect(formatted(node.groups.members('x'))).toEqual(formatted([b]));
    expect(formatted(node.groups.members('y'))).toEqual(formatted([a]));
    expect(node.groups.leave('x', a)).toBe(false);
    expect(node.groups.leave('never-joined', a)).toBe(false);
  });

  it('a group with no members left disappears from groups()', () => {
    const node = track();
    const a = idler(node);
    node.groups.join('solo', a);
    expect(node.groups.groups()).toEqual(['solo']);
    expect(node.groups.leave('solo', a)).toBe(true);
    expect(node.groups.groups()).toEqual([]);
    expect(node.groups.members('solo')).toEqual([]);
    expect(node.internals().groups).toBe(0);
  });

  it('members leave every group when they die', async () => {
    const node = track();
    const p = probe(node);
    const a = idler(node);
    const b = idler(node);
    node.groups.join('x', a);
    node.groups.join('y', a);
    node.groups.join('x', b);
    const ref = p.ctx.monitor(a);
    node.exit(a, new Error('gone'));
    await receiveDown(p, ref);
    expect(formatted(node.groups.members('x'))).toEqual(formatted([b]));
    expect(node.groups.members('y')).toEqual([]);
    expect(node.groups.groups()).toEqual(['x']);
  });

  it('a member that left a group before dying leaves the others on death', () => {
    const node = track();
    const a = idler(node);
    node.groups.join('x', a);
    node.groups.join('y', a);
    node.groups.leave('x', a);
    node.exit(a, 'kill');
    expect(node.groups.groups()).toEqual([]);
    expect(node.internals().groups).toBe(0);
  });

  it('join with a dead pid, or a pid of another creation, throws ERR_NOPROC and adds nothing', () => {
    const node = track();
    const dead = idler(node);
    node.exit(dead, 'kill');
    expectKeelError(thrown(() => node.groups.join('g', dead)), 'ERR_NOPROC');
    const live = idler(node);
    expectKeelError(thrown(() => node.groups.join('g', otherCreation(live))), 'ERR_NOPROC');
    const foreign = idler(track());
    expectKeelError(thrown(() => node.groups.join('g', foreign)), 'ERR_NOPROC');
    expect(node.groups.members('g')).toEqual([]);
    expect(node.groups.groups()).toEqual([]);
    expect(node.groups.leave('g', dead)).toBe(false);
  });

  it.each<[string, unknown]>([
    ['an empty string', ''],
    ['a number', 42],
    ['undefined', undefined],
    ['null', null],
    ['an object', { name: 'g' }],
  ])('rejects %s as a group name with ERR_INVALID_ARGUMENT in join, leave and members', (_label, group) => {
    const node = track();
    const a = idler(node);
    expectKeelError(thrown(() => node.groups.join(group as string, a)), 'ERR_INVALID_ARGUMENT', 'group');
    expectKeelError(thrown(() => node.groups.leave(group as string, a)), 'ERR_INVALID_ARGUMENT', 'group');
    expectKeelError(thrown(() => node.groups.members(group as string)), 'ERR_INVALID_ARGUMENT', 'group');
    expect(node.groups.groups()).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['a string', '<keel-1.1.1>'],
    ['an object shaped like nothing', { id: 1 }],
    ['undefined', undefined],
  ])('rejects %s as a pid with ERR_INVALID_ARGUMENT', (_label, pid) => {
    const node = track();
    expectKeelError(thrown(() => node.groups.join('g', pid as Pid)), 'ERR_INVALID_ARGUMENT', 'pid');
    expectKeelError(thrown(() => node.groups.leave('g', pid as Pid)), 'ERR_INVALID_ARGUMENT', 'pid');
  });

  it("a pid made with its class's constructor and a forged process record is no live process: join refuses it and the group stays empty", () => {
    const node = track();
    const real = idler(node);
    const PidClass = Object.getPrototypeOf(real).constructor as new (...args: unknown[]) => Pid;
    const forged = new PidClass(real.node, real.creation, 999, { rt: node });
    expectKeelError(thrown(() => node.groups.join('g', forged)), 'ERR_NOPROC');
    expect(node.groups.members('g')).toEqual([]);
    expect(node.groups.groups()).toEqual([]);
    expectKeelError(thrown(() => node.registry.register('forged', forged)), 'ERR_NOPROC');
    expect(node.isAlive(forged)).toBe(false);
    expect(thrown(() => node.send(forged, 'x'))).toBe('nothing was thrown'); // dropped as to a dead process
    // nor can a record be given to a pid afterwards through the class: it has no setter to reach
    expect((PidClass as unknown as { setProc?: unknown }).setProc).toBe(undefined);
    // made with the real process's id it is that process, as a copy of its pid is
    const copy = new PidClass(real.node, real.creation, real.id, { rt: node });
    node.groups.join('g', copy);
    expect(formatted(node.groups.members('g'))).toEqual(formatted([real]));
  });

  it('internals().groups is back to 0 after every member died', async () => {
    const node: KeelNode = track();
    const p = probe(node);
    const pids = Array.from({ length: 50 }, () => idler(node));
    pids.forEach((pid, i) => {
      node.groups.join(`g${i % 5}`, pid);
      node.groups.join('all', pid);
    });
    expect(node.internals().groups).toBe(6);
    const refs = pids.map((pid) => p.ctx.monitor(pid));
    pids.forEach((pid, i) => node.exit(pid, i % 2 === 0 ? 'kill' : 'shutdown'));
    for (const ref of refs) await receiveDown(p, ref);
    expect(node.groups.groups()).toEqual([]);
    expect(node.internals().groups).toBe(0);
  });
});

describe('a copy of a pid whose fields can be read only once', () => {
  /** A plain copy of `pid` whose fields answer their first reading and throw at every later one. */
  function readOnce(pid: Pid): Pid {
    const read = new Set<string>();
    const field = (key: 'node' | 'creation' | 'id') => () => {
      if (read.has(key)) throw new Error(`${key} read twice`);
      read.add(key);
      return pid[key];
    };
    return Object.defineProperties({}, { node: { get: field('node') }, creation: { get: field('creation') }, id: { get: field('id') } }) as Pid;
  }

  it('joins and leaves a group, and registers a name, with the fields it read once', () => {
    const node = track();
    const pid = idler(node);
    node.groups.join('g', readOnce(pid));
    expect(node.groups.members('g')).toEqual([pid]);
    expect(node.groups.leave('g', readOnce(pid))).toBe(true);
    expect(node.groups.members('g')).toEqual([]);
    node.registry.register('once', readOnce(pid));
    expect(node.registry.whereis('once')).toBe(pid);
  });
});
