import { describe, expect, it } from 'vitest';
import { DynamicSupervisor, GenServer, isKeelError, type Pid, Supervisor } from '../../src/index.js';
import { kernelOf } from '../../src/runtime/kernel.js';
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

describe("Keel's own servers called or cast to with a request they do not take", () => {
  // found by test/reliability/fuzz.otp.test.ts: a call to keel.dead_letter_queue (fast-check seed
  // 234195044, path 1) crashed it, having no handleCall; a cast to keel.services (seed 2082924721,
  // path 6) crashed the services supervisor, having no handleCast, and every service with it
  async function services(node: ReturnType<typeof track>): Promise<Map<string, Pid>> {
    ok(await node.deadLetters.add({ recipient: 'nobody', message: 'starts the services', reason: 'noproc' }));
    await node.idle();
    const sup = node.registry.whereis('keel.services')!;
    const all = new Map<string, Pid>([['keel.services', sup]]);
    for (const c of await Supervisor.whichChildren(node, sup)) all.set(c.id, c.pid as Pid);
    return all;
  }

  it('answer a call with { error: ERR_INVALID_ARGUMENT } and report a cast, and keep running (the services, the supervisors)', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.gen_server.unexpected_message', 'keel.process.exited', 'keel.supervisor.child_restarted']);
    const targets = await services(node);
    targets.set('a supervisor', await Supervisor.start(node, []));
    targets.set('a dynamic supervisor', await DynamicSupervisor.start(node));
    expect([...targets.keys()]).toEqual(['keel.services', 'monitor_manager', 'dead_letter_queue', 'a supervisor', 'a dynamic supervisor']);
    const requests: unknown[] = ['stray', null, undefined, 42, ...UNREADABLE.map(([, make]) => make())];
    for (const [name, pid] of targets) {
      for (const request of requests) {
        const reply = (await GenServer.call(node, pid, request)) as { error?: unknown };
        expect(isKeelError(reply.error, 'ERR_INVALID_ARGUMENT'), `${name} called with ${String(typeof request)}`).toBe(true);
        GenServer.cast(node, pid, request);
      }
    }
    await node.idle();
    for (const [name, pid] of targets) expect(node.isAlive(pid), name).toBe(true);
    const unexpected = events.events.filter((e) => e.event === 'keel.gen_server.unexpected_message');
    expect(unexpected).toHaveLength(targets.size * requests.length);
    // each cast reported with what was cast, as it was (compared by identity: a proxy's traps throw)
    expect(unexpected.slice(0, requests.length).map((e, i) => e.metadata.message === requests[i])).toEqual(requests.map(() => true));
    expect(events.events.filter((e) => e.event !== 'keel.gen_server.unexpected_message')).toEqual([]);
  });
});

describe("Keel's own servers sent a plain message they do not take", () => {
  // as OTP's supervisor logs "Supervisor received unexpected message": reported, never dropped unseen
  it('report it as keel.gen_server.unexpected_message and keep running (the services, the supervisors)', async () => {
    const node = track();
    ok(await node.deadLetters.add({ recipient: 'nobody', message: 'starts the services', reason: 'noproc' }));
    await node.idle();
    const sup = node.registry.whereis('keel.services')!;
    const targets = new Map<string, Pid>([['keel.services', sup]]);
    for (const c of await Supervisor.whichChildren(node, sup)) targets.set(c.id, c.pid as Pid);
    targets.set('a supervisor', await Supervisor.start(node, []));
    targets.set('a dynamic supervisor', await DynamicSupervisor.start(node));
    expect([...targets.keys()]).toEqual(['keel.services', 'monitor_manager', 'dead_letter_queue', 'a supervisor', 'a dynamic supervisor']);
    const events = captureEvents(node, ['keel.gen_server.unexpected_message', 'keel.process.exited', 'keel.supervisor.']);
    for (const [name, pid] of targets) node.send(pid, { stray: name });
    await node.idle();
    for (const [name, pid] of targets) expect(node.isAlive(pid), name).toBe(true);
    expect(events.events.map((e) => [e.event, e.metadata.pid, e.metadata.message])).toEqual(
      [...targets].map(([name, pid]) => ['keel.gen_server.unexpected_message', pid, { stray: name }]),
    );
  });
});

describe("Keel's own servers sent a plain message that spells their own timer's tick", () => {
  // the leak checker's tick was the string 'check_leaks': one sent by anyone ran a check and armed a
  // second periodic timer beside the first, for good (each stray one more); the dead letter queue's
  // was 'wake'. A tick is the server's own value now: the strays are reported as any other
  it("'check_leaks' to the monitor manager's process and 'wake' to the dead letter queue's are reported, and arm no timer", async () => {
    const node = track();
    ok(await node.deadLetters.add({ recipient: 'nobody', message: 'starts the services', reason: 'noproc' }));
    await node.idle();
    const sup = node.registry.whereis('keel.services')!;
    const children = new Map((await Supervisor.whichChildren(node, sup)).map((c) => [c.id, c.pid as Pid]));
    const checker = children.get('monitor_manager')!;
    const queue = children.get('dead_letter_queue')!;
    const timers = kernelOf(node).internals().timers;
    const events = captureEvents(node, ['keel.gen_server.unexpected_message']);
    for (let i = 0; i < 3; i++) {
      node.send(checker, 'check_leaks');
      node.send(queue, 'wake');
    }
    await node.idle();
    expect(node.isAlive(checker) && node.isAlive(queue)).toBe(true);
    expect(kernelOf(node).internals().timers).toBe(timers);
    const reported = (pid: Pid): unknown[] => events.events.filter((e) => e.metadata.pid === pid).map((e) => e.metadata.message);
    expect(reported(checker)).toEqual(['check_leaks', 'check_leaks', 'check_leaks']);
    expect(reported(queue)).toEqual(['wake', 'wake', 'wake']);
    expect(events.events).toHaveLength(6);
  });
});
