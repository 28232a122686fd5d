import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it, vi } from 'vitest';
import { DynamicSupervisor, GenServer, type GenServerSpec, StateMachine, Supervisor, ValueAgent } from '../../src/index.js';
import { captureEvents, TestClock } from '../../src/testing/index.js';
import { deferred, failure, useNodes, watch } from '../support.js';

const track = useNodes();

const EVENTS = ['keel.gen_server.init', 'keel.gen_server.terminate'];

type Loose = { request: any; reply: any };

/** A server that echoes calls; the call 'crash' throws `crashWith`; `terminated` records its terminate. */
function echo(crashWith: Error = new Error('crash'), terminated: unknown[] = []): GenServerSpec<number, Loose, never> {
  return {
    init: () => 0,
    handleCall: (request, _from, n) => {
      if (request === 'crash') throw crashWith;
      return { reply: request, state: n };
    },
    terminate: (reason) => {
      terminated.push(reason);
    },
  };
}

describe('keel.gen_server.init and keel.gen_server.terminate', () => {
  it('reports a server’s init, with its duration on the node clock, and its terminate, once each', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const cap = captureEvents(node, EVENTS);
    const gate = deferred();
    const start = GenServer.start(node, { ...echo(), init: async () => { await gate.promise; return 0; } }, undefined, { name: 'echo' });
    await clock.advance(250);
    gate.resolve();
    const pid = await start;
    await GenServer.stop(node, pid, 'shutdown');
    expect(cap.events).toEqual([
      { event: 'keel.gen_server.init', measurements: { durationMs: 250 }, metadata: { pid, name: 'echo', behaviour: 'gen_server', ok: true } },
      { event: 'keel.gen_server.terminate', measurements: {}, metadata: { pid, name: 'echo', behaviour: 'gen_server', reason: 'shutdown' } },
    ]);
  });

  it('reports a failed init with ok: false and its reason, and no terminate (as OTP runs none)', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    const cap = captureEvents(node, EVENTS);
    const boom = new Error('init failed');
    const e = await failure(() => GenServer.start(node, { init: () => { throw boom; } }));
    const timedOut = watch(GenServer.start(node, { init: () => new Promise<number>(() => undefined) }, undefined, { timeout: 100 }));
    await clock.advance(100);
    expect(timedOut.status).toBe('rejected');
    await node.idle();
    expect((e as { reason: unknown }).reason).toBe(boom);
    expect(cap.events.map((x) => [x.event, x.measurements, x.metadata.ok, x.metadata.reason, x.metadata.behaviour, x.metadata.name])).toEqual([
      ['keel.gen_server.init', { durationMs: 0 }, false, boom, 'gen_server', undefined],
      ['keel.gen_server.init', { durationMs: 100 }, false, 'timeout', 'gen_server', undefined],
    ]);
  });

  it('reports the terminate of a server that crashed in a callback (after its terminate callback) or was killed', async () => {
    const node = track();
    const cap = captureEvents(node, ['keel.gen_server.terminate']);
    const boom = new Error('handler failed');
    const terminated: unknown[] = [];
    const a = await GenServer.start(node, echo(boom, terminated));
    const b = await GenServer.start(node, echo());
    await failure(() => GenServer.call(node, a, 'crash'));
    node.exit(b, 'kill');
    await node.idle();
    expect(terminated).toEqual([boom]);
    expect(cap.events.map((x) => x.metadata)).toEqual([
      { pid: a, name: undefined, behaviour: 'gen_server', reason: boom },
      { pid: b, name: undefined, behaviour: 'gen_server', reason: 'killed' },
    ]);
  });

  it('reports the terminate of a server started before the handler was attached, and at node shutdown', async () => {
    const node = track();
    const pid = await GenServer.start(node, echo(), undefined, { name: 'early' });
    const cap = captureEvents(node, EVENTS);
    await node.shutdown();
    expect(cap.events.map((x) => [x.event, x.metadata])).toEqual([
      ['keel.gen_server.terminate', { pid, name: 'early', behaviour: 'gen_server', reason: 'shutdown' }],
    ]);
  });

  it('says what a server is underneath: supervisor, dynamic_supervisor, value_agent', async () => {
    const node = track();
    const cap = captureEvents(node, EVENTS);
    const sup = await Supervisor.start(node, [{ id: 'echo', start: (ctx) => GenServer.startLink(ctx, echo()) }], { name: 'sup' });
    const dyn = await DynamicSupervisor.start(node);
    const agent = await ValueAgent.start(node, () => 1);
    const machine = await StateMachine.start(node, { init: () => ({ state: 'idle', data: null }), handleEvent: () => ({ keepState: true }) });
    const [child] = await Supervisor.whichChildren(node, sup);
    await GenServer.stop(node, sup);
    await GenServer.stop(node, dyn);
    await ValueAgent.stop(node, agent);
    await StateMachine.stop(node, machine);
    expect(cap.events.map((x) => [x.event, x.metadata.pid, x.metadata.behaviour, x.metadata.ok ?? x.metadata.reason, x.metadata.name])).toEqual([
      // the supervisor's child starts inside the supervisor's init, so its init finishes first
      ['keel.gen_server.init', child!.pid, 'gen_server', true, undefined],
      ['keel.gen_server.init', sup, 'supervisor', true, 'sup'],
      ['keel.gen_server.init', dyn, 'dynamic_supervisor', true, undefined],
      ['keel.gen_server.init', agent, 'value_agent', true, undefined],
      ['keel.gen_server.init', machine, 'state_machine', true, undefined],
      ['keel.gen_server.terminate', child!.pid, 'gen_server', 'shutdown', undefined],
      ['keel.gen_server.terminate', sup, 'supervisor', 'normal', 'sup'],
      ['keel.gen_server.terminate', dyn, 'dynamic_supervisor', 'normal', undefined],
      ['keel.gen_server.terminate', agent, 'value_agent', 'normal', undefined],
      ['keel.gen_server.terminate', machine, 'state_machine', 'normal', undefined],
    ]);
  });

  it('builds nothing while nobody listens, and reaches a diagnostics_channel subscriber', async () => {
    const node = track();
    const execute = vi.spyOn(node.telemetry, 'execute');
    const quiet = await GenServer.start(node, echo());
    await GenServer.stop(node, quiet);
    const lifecycle = () => execute.mock.calls.filter(([event]) => EVENTS.includes(event));
    expect(lifecycle()).toEqual([]);
    const seen: unknown[] = [];
    const onMessage = (message: unknown): void => {
      seen.push((message as { event: string }).event);
    };
    diagnostics.subscribe('keel.gen_server.terminate', onMessage);
    try {
      const heard = await GenServer.start(node, echo());
      await GenServer.stop(node, heard);
    } finally {
      diagnostics.unsubscribe('keel.gen_server.terminate', onMessage);
    }
    expect(seen).toEqual(['keel.gen_server.terminate']);
    expect(lifecycle().map(([event]) => event)).toEqual(['keel.gen_server.terminate']);
  });
});
