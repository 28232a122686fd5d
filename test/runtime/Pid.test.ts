import { afterEach, describe, expect, it } from 'vitest';
import { createNode, isDown, isKeelError, type Logger, type Node, Pid } from '../../src/index.js';
import { captureEvents, probe } from '../../src/testing/index.js';

const nodes: Node[] = [];
afterEach(async () => {
  await Promise.all(nodes.splice(0).map((n) => n.shutdown()));
});

const quiet: Logger = { info: () => undefined, warn: () => undefined, error: () => undefined };

function makeNode(options: Parameters<typeof createNode>[0] = {}): Node {
  const node = createNode({ logger: quiet, ...options });
  nodes.push(node);
  return node;
}

function idler(node: Node): Pid {
  return node.spawn(() => () => undefined);
}

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return undefined;
}

/** The same id on the same node, but of another creation (an earlier or later run). */
function otherCreation(pid: Pid): Pid {
  return Pid.parse(`<${pid.node}.${pid.id}.${pid.creation === 1 ? 2 : pid.creation - 1}>`);
}

describe('Pid.format', () => {
  it('gives <node.id.creation>', () => {
    const node = makeNode({ name: 'app' });
    const pid = idler(node);
    expect(Pid.format(pid)).toBe(`<app.${pid.id}.${node.creation}>`);
  });

  it('is what JSON.stringify writes for a pid', () => {
    const node = makeNode({ name: 'app' });
    const pid = idler(node);
    expect(JSON.parse(JSON.stringify({ pid })) as { pid: string }).toEqual({ pid: Pid.format(pid) });
  });

  it('throws ERR_INVALID_ARGUMENT for a value that is not a pid', () => {
    const e = caught(() => Pid.format({ node: 'app' } as never));
    expect(isKeelError(e, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect((e as Error).message).toContain('expected `pid` to be a Pid');
  });
});

describe('String(pid)', () => {
  it('gives <node.id> for display', () => {
    const node = makeNode({ name: 'app' });
    const pid = idler(node);
    expect(String(pid)).toBe(`<app.${pid.id}>`);
  });
});

describe('Pid fields', () => {
  it('carry the node name, the node creation and a positive integer id', () => {
    const node = makeNode({ name: 'app' });
    const pid = idler(node);
    expect(pid.node).toBe('app');
    expect(pid.creation).toBe(node.creation);
    expect(Number.isSafeInteger(pid.id) && pid.id > 0).toBe(true);
  });

  it('give two nodes with the same name different creations', () => {
    const a = makeNode({ name: 'twin' });
    const b = makeNode({ name: 'twin' });
    expect(a.creation).not.toBe(b.creation);
  });
});

describe('Pid.parse', () => {
  it('inverts Pid.format', () => {
    const node = makeNode({ name: 'app' });
    const pid = idler(node);
    const parsed = Pid.parse(Pid.format(pid));
    expect(parsed).not.toBe(pid);
    expect(Pid.equals(parsed, pid)).toBe(true);
    expect({ node: parsed.node, creation: parsed.creation, id: parsed.id }).toEqual({ node: 'app', creation: node.creation, id: pid.id });
  });

  it('keeps node names that contain dots', () => {
    const node = makeNode({ name: 'eu.west.1' });
    const pid = idler(node);
    const parsed = Pid.parse(Pid.format(pid));
    expect(parsed.node).toBe('eu.west.1');
    expect(Pid.equals(parsed, pid)).toBe(true);
  });

  it('gives a pid that reaches the live process', async () => {
    const node = makeNode();
    const p = probe(node);
    const parsed = Pid.parse(Pid.format(p));
    node.send(parsed, 'via-parsed');
    expect(await p.receive()).toBe('via-parsed');
    expect(node.isAlive(parsed)).toBe(true);
  });

  it('gives a pid that can be monitored and killed like the original', async () => {
    const node = makeNode();
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
      const e = caught(() => Pid.parse(text as never));
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), `Pid.parse(${JSON.stringify(text)})`).toBe(true);
      expect((e as Error).message).toContain('<node.id.creation>');
    }
  });
});

describe('Pid.equals', () => {
  it('is true for the same pid and for its parsed copy', () => {
    const node = makeNode();
    const pid = idler(node);
    expect(Pid.equals(pid, pid)).toBe(true);
    expect(Pid.equals(pid, Pid.parse(Pid.format(pid)))).toBe(true);
    expect(Pid.equals(pid, { node: pid.node, creation: pid.creation, id: pid.id })).toBe(true);
  });

  it('is false for another id', () => {
    const node = makeNode();
    expect(Pid.equals(idler(node), idler(node))).toBe(false);
  });

  it('is false for another creation', () => {
    const node = makeNode();
    const pid = idler(node);
    expect(Pid.equals(pid, otherCreation(pid))).toBe(false);
  });

  it('is false for another node with the same id', () => {
    const a = makeNode({ name: 'a' });
    const b = makeNode({ name: 'b' });
    const pa = idler(a);
    const pb = idler(b);
    expect(pa.id).toBe(pb.id);
    expect(Pid.equals(pa, { node: 'b', creation: pa.creation, id: pa.id })).toBe(false);
    expect(Pid.equals(pa, pb)).toBe(false);
  });
});

describe('a pid of another node', () => {
  it('is dead here even when a local process has the same id', () => {
    const local = makeNode({ name: 'twin' });
    const remote = makeNode({ name: 'twin' });
    const mine = idler(local);
    const theirs = idler(remote);
    expect(theirs.id).toBe(mine.id);
    expect(local.isAlive(theirs)).toBe(false);
    expect(local.info(theirs)).toBeUndefined();
    expect(remote.isAlive(theirs)).toBe(true);
  });

  it('drops a send with a noproc event and delivers nothing to the local process with the same id', async () => {
    const local = makeNode({ name: 'twin' });
    const remote = makeNode({ name: 'twin' });
    const p = probe(local);
    const remoteProbe = probe(remote);
    expect(remoteProbe.id).toBe(p.id);
    const captured = captureEvents(local, ['keel.message.dropped']);
    local.send(remoteProbe, 'misdirected');
    local.send(Pid.parse(Pid.format(remoteProbe)), 'misdirected-parsed');
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc', 'noproc']);
    expect(captured.events.map((e) => e.metadata.message)).toEqual(['misdirected', 'misdirected-parsed']);
    captured.stop();
    local.send(p, 'marker');
    await p.receive((m) => m === 'marker');
    await remote.idle();
    expect(p.messages).toEqual(['marker']);
    expect(remoteProbe.messages).toEqual([]);
  });
});

describe('a pid of another creation', () => {
  it('is dead even when the id is alive on this node', () => {
    const node = makeNode();
    const live = idler(node);
    const stale = otherCreation(live);
    expect(node.isAlive(live)).toBe(true);
    expect(node.isAlive(stale)).toBe(false);
    expect(node.info(stale)).toBeUndefined();
  });

  it('drops a send with a noproc event and the live process with that id gets nothing', async () => {
    const node = makeNode();
    const p = probe(node);
    const stale = otherCreation(p);
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.send(stale, 'stale');
    expect(captured.events).toHaveLength(1);
    expect(captured.events[0]?.metadata).toMatchObject({ message: 'stale', reason: 'noproc' });
    captured.stop();
    node.send(p, 'marker');
    await p.receive((m) => m === 'marker');
    expect(p.messages).toEqual(['marker']);
  });

  it('is not killed by node.exit', () => {
    const node = makeNode();
    const live = idler(node);
    node.exit(otherCreation(live), 'kill');
    expect(node.isAlive(live)).toBe(true);
  });
});

describe('pid ids', () => {
  it('are never reused after a process dies', () => {
    const node = makeNode();
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
    const node = makeNode();
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
    node.send(p, 'marker');
    await p.receive((m) => m === 'marker');
    expect(p.messages).toEqual(['marker']);
  });
});
