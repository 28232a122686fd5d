import { describe, expect, it } from 'vitest';
import { DynamicSupervisor, GenServer, isKeelError, Supervisor } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { ok, UNREADABLE, useNodes } from '../support.js';

const track = useNodes();

describe('a supervisor called with a request that is not its own', () => {
  it.each([
    ['Supervisor', (node: Parameters<typeof Supervisor.start>[0]) => Supervisor.start(node, [])],
    ['DynamicSupervisor', (node: Parameters<typeof DynamicSupervisor.start>[0]) => DynamicSupervisor.start(node)],
  ])('%s replies an ERR_INVALID_ARGUMENT error and keeps running', async (_name, start) => {
    const node = track();
    const sup = await start(node);
    const reply = (await GenServer.call(node, sup, { op: 'bogus' })) as { error?: unknown };
    expect(isKeelError(reply.error, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect(node.isAlive(sup)).toBe(true);
  });
});

describe('a supervisor sent a message that cannot be inspected', () => {
  // found by test/reliability/fuzz.kernel.test.ts (fast-check seed 1005273782, path 93): a proxy whose
  // traps throw, sent to keel.services, crashed it (`message instanceof RetryRestart` threw), and
  // every service stopped with it
  it.each([
    ['Supervisor', (node: Parameters<typeof Supervisor.start>[0]) => Supervisor.start(node, [{ id: 'w', start: (ctx) => ctx.spawnLink(() => () => undefined) }])],
    ['DynamicSupervisor', (node: Parameters<typeof DynamicSupervisor.start>[0]) => DynamicSupervisor.start(node)],
  ])('%s ignores it, keeps running and keeps its children', async (_name, start) => {
    const node = track();
    const sup = await start(node);
    const events = captureEvents(node, ['keel.process.exited', 'keel.supervisor.']);
    const before = await GenServer.call(node, sup, { op: 'which' });
    for (const [, make] of UNREADABLE) node.send(sup, make());
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    expect(await GenServer.call(node, sup, { op: 'which' })).toEqual(before);
    expect(events.events).toEqual([]);
  });

  it('keel.services ignores it, and the services keep their processes', async () => {
    const node = track();
    ok(await node.deadLetters.add({ recipient: 'nobody', message: 'starts the services', reason: 'noproc' }));
    await node.idle();
    const services = node.registry.whereis('keel.services')!;
    const children = await Supervisor.whichChildren(node, services);
    for (const [, make] of UNREADABLE) node.send('keel.services', make());
    await node.idle();
    expect(node.registry.whereis('keel.services')).toBe(services);
    expect(await Supervisor.whichChildren(node, services)).toEqual(children);
  });
});
