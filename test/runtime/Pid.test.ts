/* eslint-disable keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, it } from 'vitest';
import { isDown, isKeelError, Pid } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { drainThrough, expectKeelError, idler, otherCreation, thrown, useNodes } from '../support.js';

const track = useNodes();

describe('Pid.format', () => {
  it('gives <node.id.creation>', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    expect(Pid.format(pid)).toBe(`<app.${pid.id}.${node.creation}>`);
  });

  it('is what JSON.stringify writes for a pid', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    expect(JSON.parse(JSON.stringify({ pid })) as { pid: string }).toEqual({ pid: Pid.format(pid) });
  });

  it('throws ERR_INVALID_ARGUMENT for a value that is not a pid', () => {
    expectKeelError(thrown(() => Pid.format({ node: 'app' } as never)), 'ERR_INVALID_ARGUMENT', 'expected `pid` to be a Pid');
  });
});

describe('String(pid)', () => {
  it('gives <node.id> for display', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    expect(String(pid)).toBe(`<app.${pid.id}>`);
  });
});

describe('Pid fields', () => {
  it('carry the node name, the node creation and a positive integer id', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    expect(pid.node).toBe('app');
    expect(pid.creation).toBe(node.creation);
    expect(Number.isSafeInteger(pid.id) && pid.id > 0).toBe(true);
  });

  it('give two nodes with the same name different creations', () => {
    const a = track({ name: 'twin' });
    const b = track({ name: 'twin' });
    expect(a.creation).not.toBe(b.creation);
  });
});

describe('Pid.parse', () => {
  it('inverts Pid.format', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    const parsed = Pid.parse(Pid.format(pid));
    expect(parsed).not.toBe(pid);
    expect(Pid.equals(parsed, pid)).toBe(true);
    expect({ node: parsed.node, creation: parsed.creation, id: parsed.id }).toEqual({ node: 'app', creation: node.creation, id: pid.id });
  });

  it('keeps node names that contain dots', () => {
    const node = track({ name: 'eu.west.1' });
    const pid = idler(node);
    const parsed = Pid.parse(Pid.format(pid));
    expect(parsed.node).toBe('eu.west.1');
    expect(Pid.equals(parsed, pid)).toBe(true);
  });

  it('gives a pid that reaches the live process', async () => {
    const node = track();
    const p = probe(node);
    const parsed = Pid.parse(Pid.format(p));
    node.send(parsed, 'via-parsed');
    expect(await p.receive()).toBe('via-parsed');
    expect(node.isAlive(parsed)).toBe(true);
  });

  it('gives a pid that can be monitored and killed like the original', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node);
    const parsed = Pid.parse(Pid.format(target));
    const ref = p.ctx.monitor(parsed);
    node.exit(parsed, 'kill');
    expect(node.isAlive(target)).toBe(false);
    const down = await p.receive(isDown);
    expect(isDown(down) && down.ref === ref && down.reason).toBe('killed');
  });

  it('throws ERR_INVALID_ARGUMENT for malformed text, naming the expected form', () => {
    const garbage: unknown[] = [
      '',
      'app.1.2',
      '<app.1>',
      '<app.x.2>',
      '<app.1.y>',
      '<app.-1.2>',
      '<app.1.2',
      'app.1.2>',
      ' <app.1.2>',
      '<app.1.2> ',
      '<.1.2>',
      '<app.1.2.>',
      '<app.1.5e3>',
      '<app.99999999999999999999.1>',
      42,
      null,
      undefined,
      { node: 'app', creation: 1, id: 1 },
    ];
    for (const text of garbage) {
      const e = thrown(() => Pid.parse(text as never));
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), `Pid.parse(${JSON.stringify(text)})`).toBe(true);
      expect((e as Error).message).toContain('<node.id.creation>');
    }
  });
});

describe('Pid.equals', () => {
  it('is true for the same pid and for its parsed copy', () => {
    const node = track();
    const pid = idler(node);
    expect(Pid.equals(pid, pid)).toBe(true);
    expect(Pid.equals(pid, Pid.parse(Pid.format(pid)))).toBe(true);
    expect(Pid.equals(pid, { node: pid.node, creation: pid.creation, id: pid.id })).toBe(true);
  });

  it('is false for another id', () => {
    const node = track();
    expect(Pid.equals(idler(node), idler(node))).toBe(false);
  });

  it('is false for another creation', () => {
    const node = track();
    const pid = idler(node);
    expect(Pid.equals(pid, otherCreation(pid))).toBe(false);
  });

  it('is false for another node with the same id', () => {
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const pa = idler(a);
    const pb = idler(b);
    expect(pa.id).toBe(pb.id);
    expect(Pid.equals(pa, { node: 'b', creation: pa.creation, id: pa.id })).toBe(false);
    expect(Pid.equals(pa, pb)).toBe(false);
  });
});

describe('a pid of another node', () => {
  it('is dead here even when a local process has the same id', () => {
    const local = track({ name: 'twin' });
    const remote = track({ name: 'twin' });
    const mine = idler(local);
    const theirs = idler(remote);
    expect(theirs.id).toBe(mine.id);
    expect(local.isAlive(theirs)).toBe(false);
    expect(local.info(theirs)).toBeUndefined();
    expect(remote.isAlive(theirs)).toBe(true);
  });

  it('drops a send with a noproc event and delivers nothing to the local process with the same id', async () => {
    const local = track({ name: 'twin' });
    const remote = track({ name: 'twin' });
    const p = probe(local);
    const remoteProbe = probe(remote);
    expect(remoteProbe.id).toBe(p.id);
    const captured = captureEvents(local, ['keel.message.dropped']);
    local.send(remoteProbe, 'misdirected');
    local.send(Pid.parse(Pid.format(remoteProbe)), 'misdirected-parsed');
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc', 'noproc']);
    expect(captured.events.map((e) => e.metadata.message)).toEqual(['misdirected', 'misdirected-parsed']);
    captured.stop();
    await drainThrough(local, p);
    await remote.idle();
    expect(p.messages).toEqual(['marker']);
    expect(remoteProbe.messages).toEqual([]);
  });
});

describe('a pid of another creation', () => {
  it('is dead even when the id is alive on this node', () => {
    const node = track();
    const live = idler(node);
    const stale = otherCreation(live);
    expect(node.isAlive(live)).toBe(true);
    expect(node.isAlive(stale)).toBe(false);
    expect(node.info(stale)).toBeUndefined();
  });

  it('drops a send with a noproc event and the live process with that id gets nothing', async () => {
    const node = track();
    const p = probe(node);
    const stale = otherCreation(p);
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.send(stale, 'stale');
    expect(captured.events).toHaveLength(1);
    expect(captured.events[0]?.metadata).toMatchObject({ message: 'stale', reason: 'noproc' });
    captured.stop();
    await drainThrough(node, p);
    expect(p.messages).toEqual(['marker']);
  });

  it('is not killed by node.exit', () => {
    const node = track();
    const live = idler(node);
    node.exit(otherCreation(live), 'kill');
    expect(node.isAlive(live)).toBe(true);
  });
});

describe('pid ids', () => {
  it('are never reused after a process dies', () => {
    const node = track();
    const seen = new Set<number>();
    let last = 0;
    for (let i = 0; i < 100; i++) {
      const pid = idler(node);
      expect(seen.has(pid.id)).toBe(false);
      expect(pid.id).toBeGreaterThan(last);
      seen.add(pid.id);
      last = pid.id;
      node.exit(pid, 'kill');
    }
    expect(seen.size).toBe(100);
  });

  it('leave an old pid dead after newer processes start', async () => {
    const node = track();
    const p = probe(node);
    const old = idler(node);
    node.exit(old, 'kill');
    for (let i = 0; i < 10; i++) idler(node);
    const plainOld: Pid = { node: old.node, creation: old.creation, id: old.id };
    expect(node.isAlive(old)).toBe(false);
    expect(node.isAlive(plainOld)).toBe(false);
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.send(plainOld, 'to-the-dead');
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
    captured.stop();
    await drainThrough(node, p);
    expect(p.messages).toEqual(['marker']);
  });

  it('with a negative id reach no process, even one whose id it equals modulo 2^32', async () => {
    const node = track();
    const p = probe(node);
    const aliases: Pid[] = [-1, p.id - 2 ** 32].map((id) => ({ node: p.node, creation: p.creation, id }));
    const captured = captureEvents(node, ['keel.message.dropped']);
    for (const alias of aliases) {
      expect(node.isAlive(alias)).toBe(false);
      node.send(alias, 'to-an-alias');
    }
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc', 'noproc']);
    captured.stop();
    await drainThrough(node, p);
    expect(p.messages).toEqual(['marker']);
  });
});

describe("a pid's class", () => {
  it('gives no way to its process record: a pid leads to its constructor, and nothing reachable from that reads the record', () => {
    const node = track({ name: 'app' });
    const pid = idler(node);
    const PidClass = Object.getPrototypeOf(pid).constructor as object;
    // every function reachable as a static of the class, called with the pid: none answers with an object
    // (the record would be the process's own Context: its send, exit and kernel)
    const answers: Record<string, unknown> = {};
    for (const key of Reflect.ownKeys(PidClass)) {
      const value = (PidClass as Record<PropertyKey, unknown>)[key];
      if (typeof value !== 'function' || key === 'prototype') continue;
      answers[String(key)] = typeof (value as (v: unknown) => unknown)(pid);
    }
    expect(Object.values(answers).filter((kind) => kind === 'object')).toEqual([]);
    expect(Object.keys(answers)).toEqual(['is']);
  });
});
