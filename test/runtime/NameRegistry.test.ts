/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- this file tests the runtime's own primitives: raw sends and monitors are what it exercises */
import { describe, expect, it } from 'vitest';
import { isDown, isKeelError, Pid, type Context, type Node } from '../../src/index.js';
import { captureEvents, probe, TestClock, type Probe } from '../../src/testing/index.js';
import { crasher, expectKeelError, idleInit, idler, receiveDown, thrown, useNodes } from '../support.js';

const track = useNodes();

/** A process that forwards every message it handles to `to`. */
function forwarder(node: Node, to: Pid, tag: string, options?: { name?: string }): Pid {
  return node.spawn((ctx) => (m) => ctx.send(to, { via: tag, m }), options);
}

function same(a: Pid | undefined, b: Pid): boolean {
  return a !== undefined && Pid.equals(a, b);
}

describe('NameRegistry.register', () => {
  it('makes whereis return the pid', () => {
    const node = track();
    const pid = idler(node);
    node.registry.register('cache', pid);
    expect(same(node.registry.whereis('cache'), pid)).toBe(true);
    expect(node.info(pid)?.name).toBe('cache');
  });

  it("refuses a name that is a pid's text (ERR_INVALID_ARGUMENT), by register and by spawn: a dead letter kept for it was redelivered to that pid", async () => {
    const node = track({ name: 'n' });
    const pid = idler(node);
    for (const text of ['<billing.1.2>', Pid.format(pid)]) {
      expectKeelError(thrown(() => node.registry.register(text, pid)), 'ERR_INVALID_ARGUMENT', '`name`', "not a pid's text");
      expectKeelError(thrown(() => node.spawn(idleInit, { name: text })), 'ERR_INVALID_ARGUMENT', '`name`');
    }
    expect(node.registry.names()).toEqual([]);
    // texts a pid's text is not: names as before
    for (const text of ['<billing.1>', '<bil ling.1.2>', 'billing.1.2', '<billing.x.2>']) node.registry.register(text, idler(node));
    expect(node.registry.names()).toEqual(['<billing.1>', '<bil ling.1.2>', 'billing.1.2', '<billing.x.2>']);
    // a dead letter keeps its recipient as text: a name that is not a pid's text is retried to the name
    const p = probe(node);
    node.registry.register('<billing.1.3', p);
    const id = await node.deadLetters.add({ recipient: '<billing.1.3', message: 'm', reason: 'noproc' });
    expect(await node.deadLetters.retry([id as string])).toMatchObject([{ ok: true }]);
    expect(await p.receive()).toBe('m');
  });

  it('lists names in registration order', () => {
    const node = track();
    node.registry.register('b', idler(node));
    node.registry.register('a', idler(node));
    node.registry.register('c', idler(node));
    expect(node.registry.names()).toEqual(['b', 'a', 'c']);
  });

  it('throws ERR_NAME_TAKEN for a name another process holds, and keeps the owner', () => {
    const node = track();
    const owner = idler(node);
    const other = idler(node);
    node.registry.register('cache', owner);
    expectKeelError(thrown(() => node.registry.register('cache', other)), 'ERR_NAME_TAKEN', "'cache'");
    expect(same(node.registry.whereis('cache'), owner)).toBe(true);
    expect(node.info(other)?.name).toBeUndefined();
  });

  it('quotes a huge name in its errors by its first 200 characters and its length, not whole', () => {
    const node = track();
    const huge = 'n'.repeat(1_000_000);
    const owner = idler(node);
    node.registry.register(huge, owner);
    const quoted = `'${'n'.repeat(200)}…' (1000000 characters)`;
    const taken = thrown(() => node.registry.register(huge, idler(node))) as Error & { registeredName: string };
    expect(taken.message).toBe(`the name ${quoted} is already registered to ${String(owner)}; unregister it first or pick another name`);
    expect(taken.registeredName).toBe(huge); // the name itself is still there, whole
    const second = thrown(() => node.registry.register('other', owner)) as Error;
    expect(second.message).toBe(`${String(owner)} is already registered as ${quoted}; a process has at most one unique name`);
    const reserved = thrown(() => node.registry.register(`keel.${huge}`, idler(node))) as Error;
    expect(reserved.message).toContain(`cannot register 'keel.${'n'.repeat(195)}…' (1000005 characters): names under`);
  });

  it('throws ERR_NAME_TAKEN when the process registers the name it already holds', () => {
    const node = track();
    const owner = idler(node);
    node.registry.register('cache', owner);
    expectKeelError(thrown(() => node.registry.register('cache', owner)), 'ERR_NAME_TAKEN');
    expect(node.registry.names()).toEqual(['cache']);
  });

  it('throws ERR_ALREADY_REGISTERED for a second name of the same process', () => {
    const node = track();
    const pid = idler(node);
    node.registry.register('first', pid);
    expectKeelError(thrown(() => node.registry.register('second', pid)), 'ERR_ALREADY_REGISTERED', "'first'");
    expect(node.registry.whereis('second')).toBeUndefined();
    expect(node.registry.names()).toEqual(['first']);
    expect(node.info(pid)?.name).toBe('first');
  });

  it('throws ERR_ALREADY_REGISTERED for a process spawned with a name', () => {
    const node = track();
    const pid = idler(node, { name: 'first' });
    expectKeelError(thrown(() => node.registry.register('second', pid)), 'ERR_ALREADY_REGISTERED');
    expect(node.registry.names()).toEqual(['first']);
  });

  it('throws ERR_NOPROC for a dead pid', () => {
    const node = track();
    const pid = idler(node);
    node.exit(pid, 'kill');
    expectKeelError(thrown(() => node.registry.register('ghost', pid)), 'ERR_NOPROC', String(pid));
    expect(node.registry.names()).toEqual([]);
  });

  it('throws ERR_NOPROC for a pid of another node', () => {
    const node = track();
    const remote = idler(track());
    expectKeelError(thrown(() => node.registry.register('remote', remote)), 'ERR_NOPROC');
    expect(node.registry.whereis('remote')).toBeUndefined();
  });

  it('throws ERR_INVALID_ARGUMENT for a name that is not a non-empty string', () => {
    const node = track();
    const pid = idler(node);
    for (const bad of [42, '', null, undefined, { name: 'x' }]) {
      const e = thrown(() => node.registry.register(bad as never, pid));
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), `name ${String(bad)}`).toBe(true);
      expect((e as Error).message).toContain('expected `name` to be a non-empty string');
    }
    expect(node.registry.names()).toEqual([]);
    node.registry.register('fine', pid);
    expect(same(node.registry.whereis('fine'), pid)).toBe(true);
  });

  it('throws ERR_INVALID_ARGUMENT for a pid that is not a pid', () => {
    const node = track();
    expectKeelError(thrown(() => node.registry.register('x', 'other-name' as never)), 'ERR_INVALID_ARGUMENT', 'expected `pid` to be a Pid');
    expect(node.registry.names()).toEqual([]);
  });

  it('allows a name again after its owner died', async () => {
    const node = track();
    const p = probe(node);
    const first = idler(node);
    node.registry.register('svc', first);
    node.exit(first, 'kill');
    const second = forwarder(node, p, 'second');
    node.registry.register('svc', second);
    expect(same(node.registry.whereis('svc'), second)).toBe(true);
    node.send('svc', 'hello');
    expect(await p.receive()).toEqual({ via: 'second', m: 'hello' });
  });
});

describe('NameRegistry.unregister', () => {
  it('returns true for a registered name and false after', () => {
    const node = track();
    node.registry.register('svc', idler(node));
    expect(node.registry.unregister('svc')).toBe(true);
    expect(node.registry.unregister('svc')).toBe(false);
  });

  it('returns false for a name that was never registered', () => {
    const node = track();
    expect(node.registry.unregister('never')).toBe(false);
  });

  it('removes the name but leaves the process alive', () => {
    const node = track();
    const pid = idler(node, { name: 'svc' });
    node.registry.unregister('svc');
    expect(node.registry.whereis('svc')).toBeUndefined();
    expect(node.registry.names()).toEqual([]);
    expect(node.isAlive(pid)).toBe(true);
    expect(node.info(pid)?.name).toBeUndefined();
  });

  it('lets the process take another name', () => {
    const node = track();
    const pid = idler(node, { name: 'old' });
    node.registry.unregister('old');
    node.registry.register('new', pid);
    expect(same(node.registry.whereis('new'), pid)).toBe(true);
    expect(node.info(pid)?.name).toBe('new');
  });

  it('keeps the new owner of a name when the old owner dies later', () => {
    const node = track();
    const old = idler(node, { name: 'svc' });
    node.registry.unregister('svc');
    const next = idler(node, { name: 'svc' });
    node.exit(old, 'kill');
    expect(same(node.registry.whereis('svc'), next)).toBe(true);
  });

  it('throws ERR_INVALID_ARGUMENT for a name that is not a non-empty string', () => {
    const node = track();
    idler(node, { name: 'svc' });
    for (const bad of [42, '', null]) {
      expect(isKeelError(thrown(() => node.registry.unregister(bad as never)), 'ERR_INVALID_ARGUMENT'), `name ${String(bad)}`).toBe(true);
    }
    expect(node.registry.names()).toEqual(['svc']);
  });
});

describe('NameRegistry.whereis', () => {
  it('returns undefined for an unknown name', () => {
    const node = track();
    expect(node.registry.whereis('nobody')).toBeUndefined();
  });

  it('throws ERR_INVALID_ARGUMENT for a name that is not a non-empty string', () => {
    const node = track();
    for (const bad of [42, '', undefined]) {
      expect(isKeelError(thrown(() => node.registry.whereis(bad as never)), 'ERR_INVALID_ARGUMENT'), `name ${String(bad)}`).toBe(true);
    }
  });
});

describe('node.spawn with { name }', () => {
  it('registers the process as it is spawned', () => {
    const node = track();
    const pid = idler(node, { name: 'svc' });
    expect(same(node.registry.whereis('svc'), pid)).toBe(true);
    expect(node.info(pid)?.name).toBe('svc');
  });

  it('a name taken while the options are read (by a getter) spawns nothing: no half-made process is left in the table', () => {
    const node = track();
    const other = idler(node);
    const before = node.processes().length;
    let reads = 0;
    const options = {
      name: 'svc',
      get mailbox() {
        // user code run between the name's check and its registration (the options' own check reads it first)
        if (++reads === 2) node.registry.register('svc', other);
        return undefined;
      },
    };
    expectKeelError(thrown(() => node.spawn(idleInit, options as never)), 'ERR_NAME_TAKEN', "'svc'");
    expect(node.processes().length).toBe(before);
    expect(same(node.registry.whereis('svc'), other)).toBe(true);
    expect(node.internals().processes).toBe(before);
  });

  it('ctx.spawn with a name registers the child', () => {
    const node = track();
    const p = probe(node);
    const child = p.ctx.spawn(idleInit, { name: 'child' });
    expect(same(node.registry.whereis('child'), child)).toBe(true);
  });

  it('throws ERR_NAME_TAKEN for a taken name and creates no process', async () => {
    const node = track();
    const owner = idler(node, { name: 'svc' });
    let initRan = false;
    const before = node.processes().length;
    const e = thrown(() =>
      node.spawn(
        () => {
          initRan = true;
          return () => undefined;
        },
        { name: 'svc' },
      ),
    );
    expectKeelError(e, 'ERR_NAME_TAKEN', String(owner));
    expect(node.processes()).toHaveLength(before);
    await node.idle();
    expect(initRan).toBe(false);
    expect(same(node.registry.whereis('svc'), owner)).toBe(true);
  });

  it('throws ERR_NAME_TAKEN from ctx.spawn for a taken name and creates no process', () => {
    const node = track();
    const p = probe(node);
    idler(node, { name: 'svc' });
    const before = node.processes().length;
    expectKeelError(thrown(() => p.ctx.spawn(idleInit, { name: 'svc' })), 'ERR_NAME_TAKEN');
    expect(node.processes()).toHaveLength(before);
  });

  it('throws ERR_INVALID_ARGUMENT for a name that is not a non-empty string, creating no process', () => {
    const node = track();
    for (const bad of [42, '', null]) {
      const e = thrown(() => idler(node, { name: bad as never }));
      expect(isKeelError(e, 'ERR_INVALID_ARGUMENT'), `name ${String(bad)}`).toBe(true);
    }
    expect(node.processes()).toEqual([]);
    expect(node.registry.names()).toEqual([]);
  });
});

describe('a registered name as a target', () => {
  it.each<[string, (node: Node, p: Probe) => void, string]>([
    ['node.send', (node) => node.send('svc', 'hello'), 'hello'],
    ['ctx.send', (_node, p) => p.ctx.send('svc', 'from-probe'), 'from-probe'],
  ])('works with %s', async (_label, send, message) => {
    const node = track();
    const p = probe(node);
    forwarder(node, p, 'svc', { name: 'svc' });
    send(node, p);
    expect(await p.receive()).toEqual({ via: 'svc', m: message });
  });

  it('works with ctx.monitor', async () => {
    const node = track();
    const p = probe(node);
    const target = idler(node, { name: 'svc' });
    const ref = p.ctx.monitor('svc');
    expect(node.info(target)?.monitoredBy.map((x) => Pid.equals(x, p))).toEqual([true]);
    node.exit(target, 'kill');
    const down = await p.receive(isDown);
    expect(isDown(down) && down.ref === ref && Pid.equals(down.pid, target) && down.name).toBe('svc');
  });

  it('works with node.isAlive', () => {
    const node = track();
    const target = idler(node, { name: 'svc' });
    expect(node.isAlive('svc')).toBe(true);
    expect(node.isAlive('nobody')).toBe(false);
    node.exit(target, 'kill');
    expect(node.isAlive('svc')).toBe(false);
  });

  it('works with node.info', () => {
    const node = track();
    const target = idler(node, { name: 'svc' });
    const info = node.info('svc');
    expect(info !== undefined && Pid.equals(info.pid, target)).toBe(true);
    expect(info?.name).toBe('svc');
    expect(node.info('nobody')).toBeUndefined();
  });

  it('works with ctx.sendAfter, resolved when the timer fires', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const first = forwarder(node, p, 'first', { name: 'svc' });
    p.ctx.sendAfter('svc', 'tick', 100);
    node.exit(first, 'kill');
    forwarder(node, p, 'second', { name: 'svc' });
    await clock.advance(100);
    expect(await p.receive()).toEqual({ via: 'second', m: 'tick' });
  });

  it('is not accepted by node.exit, which takes a pid', () => {
    const node = track();
    const target = idler(node, { name: 'svc' });
    expectKeelError(thrown(() => node.exit('svc' as never, 'kill')), 'ERR_INVALID_ARGUMENT');
    expect(node.isAlive(target)).toBe(true);
  });

  it('that is not registered makes node.send emit keel.message.dropped with reason noproc', () => {
    const node = track();
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.send('nobody', 'lost');
    expect(captured.events).toHaveLength(1);
    expect(captured.events[0]?.metadata).toMatchObject({ to: 'nobody', message: 'lost', reason: 'noproc', from: 'node' });
    captured.stop();
  });

  it('that is not registered makes ctx.send emit keel.message.dropped naming the sender', () => {
    const node = track();
    const p = probe(node);
    const captured = captureEvents(node, ['keel.message.dropped']);
    p.ctx.send('nobody', 'lost');
    expect(captured.events).toHaveLength(1);
    const meta = captured.events[0]?.metadata;
    expect(meta).toMatchObject({ to: 'nobody', message: 'lost', reason: 'noproc' });
    expect(Pid.equals(meta?.from as Pid, p)).toBe(true);
    captured.stop();
  });
});

describe('names and process death', () => {
  it('vanish when their owner is killed', () => {
    const node = track();
    const target = idler(node, { name: 'svc' });
    node.exit(target, 'kill');
    expect(node.registry.whereis('svc')).toBeUndefined();
    expect(node.registry.names()).toEqual([]);
  });

  it.each([
    ['exits normally', (ctx: Context) => () => ctx.exit()],
    ['crashes', crasher(new Error('boom'))],
  ])('vanish when their owner %s', async (_label, init) => {
    const node = track();
    const p = probe(node);
    const target = node.spawn(init, { name: 'svc' });
    const ref = p.ctx.monitor(target);
    node.send('svc', 'go');
    await receiveDown(p, ref);
    expect(node.registry.whereis('svc')).toBeUndefined();
    expect(node.registry.names()).toEqual([]);
  });

  it('make a later send to the name a noproc drop, not a delivery to anyone', () => {
    const node = track();
    const target = idler(node, { name: 'svc' });
    node.exit(target, 'kill');
    const captured = captureEvents(node, ['keel.message.dropped']);
    node.send('svc', 'late');
    expect(captured.events.map((e) => e.metadata.reason)).toEqual(['noproc']);
    captured.stop();
  });
});

describe("names under 'keel.'", () => {
  it('are refused to register, spawn and unregister with ERR_RESERVED_NAME; whereis finds Keel’s own', async () => {
    const node = track();
    const pid = idler(node);
    expectKeelError(thrown(() => node.registry.register('keel.dead_letter_queue', pid)), 'ERR_RESERVED_NAME', "'keel.'");
    expectKeelError(thrown(() => node.spawn(idleInit, { name: 'keel.services' })), 'ERR_RESERVED_NAME');
    expectKeelError(thrown(() => node.spawn(idleInit, { name: 'keel.' })), 'ERR_RESERVED_NAME');
    expect(node.processes()).toHaveLength(1);
    // Keel's own services register theirs as they start
    await node.deadLetters.add({ recipient: 'nobody', message: 'x', reason: 'noproc' });
    await node.idle();
    expect(node.registry.whereis('keel.dead_letter_queue')).toBeDefined();
    expect(node.registry.whereis('keel.services')).toBeDefined();
    expectKeelError(thrown(() => node.registry.unregister('keel.dead_letter_queue')), 'ERR_RESERVED_NAME');
    expect(node.registry.whereis('keel.dead_letter_queue')).toBeDefined();
  });

  it('no process can take the dead letter queue’s name before it starts: its entries are still redelivered', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock, random: () => 0 });
    expectKeelError(thrown(() => node.spawn(idleInit, { name: 'keel.dead_letter_queue' })), 'ERR_RESERVED_NAME');
    await node.deadLetters.add({ recipient: 'svc', message: 'again', reason: 'noproc' });
    const p = probe(node);
    node.spawn((ctx) => (m) => ctx.send(p, m), { name: 'svc' });
    await clock.advance(1000);
    expect(await p.receive()).toBe('again');
  });

  it('a name that merely contains keel is a name like any other', () => {
    const node = track();
    node.registry.register('my.keel.worker', idler(node));
    node.registry.register('keel', idler(node));
    node.registry.register('Keel.x', idler(node));
    expect(node.registry.names()).toEqual(['my.keel.worker', 'keel', 'Keel.x']);
  });
});
