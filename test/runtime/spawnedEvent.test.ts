import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';
import { Name } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { idleInit, spawnWithContext, useNodes } from '../support.js';

const track = useNodes();

describe('keel.process.spawned', () => {
  it('is emitted once per spawn, with the pid, the parent (a pid or the node) and the registered name', async () => {
    const node = track();
    const cap = captureEvents(node, ['keel.process.spawned']);
    const { pid: parent, ctx } = await spawnWithContext(node);
    const linked = ctx.spawnLink(idleInit, { name: 'worker' });
    const child = ctx.spawn<string>(idleInit, { name: Name.of<string>('typed'), mailbox: { capacity: 2, overflow: 'reject' } });
    const top = node.spawn(idleInit);
    expect(cap.events).toEqual([
      { event: 'keel.process.spawned', measurements: {}, metadata: { pid: parent, parent: 'node', name: undefined } },
      { event: 'keel.process.spawned', measurements: {}, metadata: { pid: linked, parent, name: 'worker' } },
      { event: 'keel.process.spawned', measurements: {}, metadata: { pid: child, parent, name: 'typed' } },
      { event: 'keel.process.spawned', measurements: {}, metadata: { pid: top, parent: 'node', name: undefined } },
    ]);
  });

  it('is not emitted for a spawn that fails (a taken name, a bad init)', () => {
    const node = track();
    node.spawn(idleInit, { name: 'taken' });
    const cap = captureEvents(node, ['keel.process.spawned']);
    expect(() => node.spawn(idleInit, { name: 'taken' })).toThrow(/taken/);
    expect(() => node.spawn(42 as never)).toThrow();
    expect(cap.events).toEqual([]);
  });

  it('survives a handler that throws: the spawn succeeds, the handler is detached and reported', () => {
    const node = track();
    const failed = captureEvents(node, ['keel.telemetry.handler_failed']);
    node.telemetry.attach('bad', ['keel.process.spawned'], () => {
      throw new Error('handler broke');
    });
    const pid = node.spawn(idleInit);
    expect(node.isAlive(pid)).toBe(true);
    expect(failed.events.map((e) => [e.metadata.handlerId, e.metadata.event])).toEqual([['bad', 'keel.process.spawned']]);
    expect(node.telemetry.detach('bad')).toBe(false);
  });

  it('builds nothing while nobody listens: execute is never called for it', () => {
    const node = track();
    const execute = vi.spyOn(node.telemetry, 'execute');
    for (let i = 0; i < 100; i++) node.spawn(idleInit);
    expect(execute.mock.calls.filter(([event]) => event === 'keel.process.spawned')).toEqual([]);
    // a handler attached, then detached: emitted only in between
    node.telemetry.attach('h', ['keel.process.spawned'], () => undefined);
    node.spawn(idleInit);
    node.telemetry.detach('h');
    node.spawn(idleInit);
    expect(execute.mock.calls.filter(([event]) => event === 'keel.process.spawned')).toHaveLength(1);
  });

  it('reaches a diagnostics_channel subscriber with no handler attached, and stops when it unsubscribes', () => {
    const node = track();
    const seen: unknown[] = [];
    const onMessage = (message: unknown): void => {
      seen.push(message);
    };
    diagnostics.subscribe('keel.process.spawned', onMessage);
    let pid;
    try {
      pid = node.spawn(idleInit);
    } finally {
      diagnostics.unsubscribe('keel.process.spawned', onMessage);
    }
    node.spawn(idleInit);
    expect(seen).toEqual([{ event: 'keel.process.spawned', measurements: {}, metadata: { pid, parent: 'node', name: undefined } }]);
  });
});
