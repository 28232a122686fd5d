import { describe, expect, it } from 'vitest';
import { Agent, type AgentOptions } from '../../../src/agents/Agent.js';
import { buildConsensus, distributeWork, electLeader, monitorLeader, type LeaderElected, type Leadership } from '../../../src/agents/patterns/index.js';
import { AgentRegistry, type AgentRegistryHandle, type From, GenServer, type Node, type Pid, resolveAgents, Supervisor } from '../../../src/index.js';
import { captureEvents, probe, type Probe } from '../../../src/testing/index.js';
import { clockedNode, deferred, drainThrough, exitAndWait, expectKeelError, thrown, useNodes } from '../../support.js';

const track = useNodes();

type AgentFns = Partial<Pick<AgentOptions, 'runTask' | 'vote' | 'onMessage'>>;

/** A supervisor with one agent registered under `key` (again at each restart, with the same metadata). */
function supervised(node: Node, registry: AgentRegistryHandle, key: string, capabilities: string[], fns: AgentFns = {}): Promise<Pid> {
  return Supervisor.start(node, [
    {
      id: key,
      start: async (ctx) => {
        const agent = await Agent.start(ctx, { name: key, capabilities, runTask: () => null, ...fns });
        await registry.register(agent.pid, { capabilities }, { key });
        return agent.pid;
      },
    },
  ]);
}

/** An agent started from the node, registered once under `key` (its restart by the node does not register again). */
async function plain(node: Node, registry: AgentRegistryHandle, key: string, capabilities: string[], fns: AgentFns = {}): Promise<Pid> {
  const agent = await Agent.start(node, { capabilities, runTask: () => null, ...fns });
  await registry.register(agent.pid, { capabilities }, { key });
  return agent.pid;
}

/**
 * A registry with two 'lead' candidates, both with `fns`: 'a' supervised (`sup`; at `a1`, registered
 * again at each restart) and 'b' started from the node (registered once), registered after 'a'.
 */
async function leadCandidates(node: Node, fns: AgentFns = {}): Promise<{ registry: AgentRegistryHandle; sup: Pid; a1: Pid; b: Pid }> {
  const registry = await AgentRegistry.start(node);
  const sup = await supervised(node, registry, 'a', ['lead'], fns);
  const a1 = registry.lookup('a')!.pid;
  const b = await plain(node, registry, 'b', ['lead'], fns);
  return { registry, sup, a1, b };
}

/** A runTask that tells `started` which agent started which task (`{ at, id }`), then answers the task's payload (a promise the test settles). */
const reportingTo = (started: Probe): Required<Pick<AgentFns, 'runTask'>> => ({
  runTask: (task, ctx) => {
    // eslint-disable-next-line keel/no-raw-send -- the test agent reports to its probe
    ctx.send(started, { at: ctx.self, id: task.id });
    return task.payload as Promise<unknown>;
  },
});

// eslint-disable-next-line keel/no-raw-send -- the test agent reports to its probe
const forwardTo = (inbox: Probe): NonNullable<AgentFns['onMessage']> => (message, ctx) => ctx.send(inbox, { at: ctx.self, message });

describe('electLeader over a registry query', () => {
  it('a leader that dies and is restarted by its supervisor is a candidate again at its new pid', async () => {
    const node = track();
    const inbox = probe(node);
    const { registry, sup, a1, b } = await leadCandidates(node, { onMessage: forwardTo(inbox) });
    const election = await electLeader(node, { candidates: registry.select({ capability: 'lead' }) });
    expect(await election.current()).toEqual({ leader: a1, term: 1 }); // equal loads: the first registered

    await exitAndWait(node, a1, new Error('crash'));
    const a2 = registry.lookup('a')!.pid;
    expect(a2.id).not.toBe(a1.id);
    // a2 registered after b: b is the earliest answer of the query whether or not a2 was back at the election
    expect(await election.whenChanged(1)).toEqual({ leader: b, term: 2 });

    // b dies for good (its node restart does not register it again): the restarted a is elected
    node.exit(b, 'kill');
    expect(await election.whenChanged(2)).toEqual({ leader: a2, term: 3 });
    expect(await election.current()).toEqual({ leader: a2, term: 3 });
    await drainThrough(node, inbox);
    const told = inbox.messages.filter((m) => (m as { message?: LeaderElected }).message?.type === 'leader_elected' && (m as { message: LeaderElected }).message.term === 3);
    expect(told).toEqual([{ at: a2, message: { type: 'leader_elected', leader: a2, term: 3 } }]);

    await election.stop();
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('monitorLeader over a query: the restarted leader is elected again, onChange sees each term', async () => {
    const node = track();
    const { registry, sup, a1, b } = await leadCandidates(node);
    const seen: Leadership[] = [];
    const monitor = await monitorLeader(node, { candidates: registry.select({ capability: 'lead' }), onChange: (l) => seen.push(l) });
    await exitAndWait(node, a1, new Error('crash'));
    await monitor.whenChanged(1);
    node.exit(b, 'kill');
    const third = await monitor.whenChanged(2);
    expect(seen).toEqual([{ leader: a1, term: 1 }, { leader: b, term: 2 }, { leader: registry.lookup('a')!.pid, term: 3 }]);
    expect(third.leader!.id).not.toBe(a1.id);
    await monitor.stop();
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('the same election over a list of pids loses the restarted candidate (the gap the query closes)', async () => {
    const node = track();
    const { sup, a1, b } = await leadCandidates(node);
    const election = await electLeader(node, { candidates: [a1, b] });
    await exitAndWait(node, a1, new Error('crash'));
    expect(await election.whenChanged(1)).toEqual({ leader: b, term: 2 });
    node.exit(b, 'kill');
    expect(await election.whenChanged(2)).toEqual({ leader: undefined, term: 3 });
    await election.stop();
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('a query that selects nobody elects nobody, then finds the agent registered since at the next retry (node clock)', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node);
    const election = await electLeader(node, { candidates: registry.select({ capability: 'lead' }), retryMs: 500 });
    expect(await election.current()).toEqual({ leader: undefined, term: 1 });
    const a = await plain(node, registry, 'a', ['lead']);
    await clock.advance(499);
    await node.idle();
    expect(await election.current()).toEqual({ leader: undefined, term: 1 });
    await clock.advance(1);
    expect(await election.whenChanged(1)).toEqual({ leader: a, term: 2 });
    await election.stop();
  });

  it('a query of a stopped registry selects nobody: leader undefined, and the election keeps looking', async () => {
    const { node, clock } = clockedNode(track);
    const registry = await AgentRegistry.start(node);
    await plain(node, registry, 'a', ['lead']);
    const q = registry.select({ capability: 'lead' });
    expect(resolveAgents(q)).toHaveLength(1);
    await GenServer.stop(node, registry.pid, 'normal');
    expect(resolveAgents(q)).toEqual([]);
    const election = await electLeader(node, { candidates: q, retryMs: 100 });
    expect(await election.current()).toEqual({ leader: undefined, term: 1 });
    await clock.advance(100);
    await node.idle();
    expect(await election.current()).toEqual({ leader: undefined, term: 1 }); // no change, no new term
    await election.stop();
  });

  it('refuses something that is neither a list of pids nor a query', () => {
    const node = track();
    expectKeelError(thrown(() => electLeader(node, { candidates: { where: {} } as never })), 'ERR_INVALID_ARGUMENT', 'options.candidates', 'AgentQuery');
    expectKeelError(thrown(() => electLeader(node, { candidates: [] })), 'ERR_INVALID_ARGUMENT', 'options.candidates');
  });
});

describe('buildConsensus over a registry query', () => {
  it('resolves the query at the vote: the restarted agent votes at its new pid', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const sup = await supervised(node, registry, 'v', ['voter'], { vote: () => 'approve' });
    const v1 = registry.lookup('v')!.pid;
    const w = await plain(node, registry, 'w', ['voter'], { vote: () => 'approve' });
    const x = await plain(node, registry, 'x', ['voter'], { vote: () => 'reject' });
    await exitAndWait(node, v1, new Error('crash'));
    const v2 = registry.lookup('v')!.pid;

    const byQuery = await buildConsensus(node, { proposal: 'p', participants: registry.select({ capability: 'voter' }) });
    expect([byQuery.decision, byQuery.approvals, byQuery.rejections, byQuery.missing, byQuery.ok]).toEqual(['approved', 2, 1, 0, true]);
    // registration order: w, x, then v again (its new entry)
    expect(byQuery.votes).toEqual([{ pid: w, vote: 'approve' }, { pid: x, vote: 'reject' }, { pid: v2, vote: 'approve' }]);

    // the pids from before the restart: its vote is missing and the decision cannot be announced
    const byPids = await buildConsensus(node, { proposal: 'p', participants: [v1, w, x] });
    expect([byPids.decision, byPids.approvals, byPids.rejections, byPids.missing, byPids.ok]).toEqual(['rejected', 1, 1, 1, false]);
    expect(byPids.votes[0]).toEqual({ pid: v1, error: 'noproc' });
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('a query that selects nobody is rejected (even unanimously), with no votes and nobody to tell', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    for (const type of ['majority', 'unanimous', { quorum: 1 }] as const) {
      const r = await buildConsensus(node, { proposal: 'p', participants: registry.select({ capability: 'nobody' }), type });
      expect([r.decision, r.votes, r.approvals, r.rejections, r.missing, r.ok, r.notification.delivered]).toEqual(['rejected', [], 0, 0, 0, true, 0]);
    }
  });

  it('a quorum above the agents the query finds is not reached; a quorum that is not a positive integer is refused at once', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    await plain(node, registry, 'a', ['voter'], { vote: () => 'approve' });
    await plain(node, registry, 'b', ['voter'], { vote: () => 'approve' });
    const q = registry.select({ capability: 'voter' });
    const r = await buildConsensus(node, { proposal: 'p', participants: q, type: { quorum: 3 } });
    expect([r.decision, r.approvals]).toEqual(['rejected', 2]);
    expect((await buildConsensus(node, { proposal: 'p', participants: q, type: { quorum: 2 } })).decision).toBe('approved');
    for (const quorum of [0, -1, 1.5, Number.NaN]) {
      expectKeelError(thrown(() => buildConsensus(node, { proposal: 'p', participants: q, type: { quorum } })), 'ERR_INVALID_ARGUMENT', 'options.type.quorum', 'a positive integer');
    }
  });
});

describe('distributeWork over a registry query', () => {
  it('resolves the query at the start: the registered workers share the items', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const square = { runTask: (task: { payload: unknown }) => Number(task.payload) ** 2 };
    const a = await plain(node, registry, 'a', ['sq'], square);
    const b = await plain(node, registry, 'b', ['sq'], square);
    await plain(node, registry, 'c', ['other'], square);
    const r = await distributeWork(node, [1, 2, 3, 4], { workers: registry.select({ capability: 'sq' }) });
    expect(r.results.map((x) => x.result)).toEqual([1, 4, 9, 16]);
    expect(r.perWorker.map((w) => [w.worker, w.completed])).toEqual([[a, 2], [b, 2]]);
  });

  it('a query that selects nobody: every item fails with no_live_worker at once, whatever the strategy', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    for (const strategy of ['round_robin', 'least_loaded', 'capability'] as const) {
      const r = await distributeWork(node, ['x', 'y'], { workers: registry.select({ capability: 'nobody' }), strategy });
      expect([r.completed, r.failed, r.reassigned, r.perWorker]).toEqual([0, 2, 0, []]);
      expect(r.results.map((x) => [x.error, x.worker, x.attempts])).toEqual([['no_live_worker', undefined, 0], ['no_live_worker', undefined, 0]]);
    }
  });

  it("a query that selects nobody with a signal aborted before the run: every item fails with 'aborted', whatever the strategy", async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    for (const strategy of ['round_robin', 'least_loaded', 'capability'] as const) {
      const r = await distributeWork(node, ['x', 'y'], { workers: registry.select({ capability: 'nobody' }), strategy, signal: AbortSignal.abort() });
      // before the fix: 'no_live_worker' for both
      expect(r.results.map((x) => [x.error, x.worker, x.attempts])).toEqual([['aborted', undefined, 0], ['aborted', undefined, 0]]);
    }
  });

  it.each(['least_loaded', 'capability'] as const)('%s: a worker that dies mid-run and is restarted under its key takes items again (the query is asked again)', async (strategy) => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const started = probe(node);
    const gated = reportingTo(started);
    const sup = await supervised(node, registry, 'a', ['w'], gated);
    const a1 = registry.lookup('a')!.pid;
    const b = await plain(node, registry, 'b', ['w'], gated);
    const gates = [deferred<string>(), deferred<string>(), deferred<string>()];
    const running = distributeWork(node, gates.map((g) => g.promise), {
      workers: registry.select({ capability: 'w' }),
      strategy,
      maxPerWorker: 1,
      requires: () => ['w'],
      toTask: (item, i) => ({ id: `work-item-${i}`, kind: 'work', payload: item }),
    });
    // item 0 is on a1, item 1 on b, item 2 waits: a1 dies with item 0
    const on = (pid: Pid) => (m: unknown): boolean => (m as { at?: Pid }).at?.id === pid.id;
    await started.receive(on(a1));
    await exitAndWait(node, a1, new Error('crash'));
    const a2 = registry.lookup('a')!.pid;
    expect(a2.id).not.toBe(a1.id);
    // b is still busy: item 0 goes to a2 once it registered again (at the death, or at its registration)
    expect(await started.receive(on(a2))).toEqual({ at: a2, id: 'work-item-0' });
    gates[0]!.resolve('done 0');
    expect(await started.receive(on(a2))).toEqual({ at: a2, id: 'work-item-2' });
    gates[2]!.resolve('done 2');
    gates[1]!.resolve('done 1');
    const r = await running;
    expect([r.completed, r.failed, r.reassigned]).toEqual([3, 0, 1]);
    expect(r.results.map((x) => [x.result, x.attempts, x.worker])).toEqual([['done 0', 2, a2], ['done 1', 1, b], ['done 2', 1, a2]]);
    expect(r.perWorker.map((w) => [w.worker, w.assigned, w.completed, w.failed])).toEqual([
      [a1, 1, 0, 1],
      [b, 1, 1, 0],
      [a2, 2, 2, 0],
    ]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('a restarted worker that registers late (its item left waiting meanwhile) is found when it registers', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const started = probe(node);
    const gated = reportingTo(started);
    const registerAgain = deferred<void>();
    let starts = 0;
    const sup = await Supervisor.start(node, [
      {
        id: 'a',
        start: async (ctx) => {
          const agent = await Agent.start(ctx, { name: 'a', capabilities: ['w'], ...gated });
          if (++starts > 1) await registerAgain.promise; // the restart registers when the test says so
          await registry.register(agent.pid, { capabilities: ['w'] }, { key: 'a' });
          return agent.pid;
        },
      },
    ]);
    const a1 = registry.lookup('a')!.pid;
    const b = await plain(node, registry, 'b', ['w'], gated);
    const gates = [deferred<string>(), deferred<string>()];
    const running = distributeWork(node, gates.map((g) => g.promise), {
      workers: registry.select({ capability: 'w' }),
      strategy: 'least_loaded',
      maxPerWorker: 1,
      toTask: (item, i) => ({ id: `item-${i}`, kind: 'work', payload: item }),
    });
    const on = (pid: Pid) => (m: unknown): boolean => (m as { at?: Pid }).at?.id === pid.id;
    await started.receive(on(a1));
    await started.receive(on(b));
    // the registry's own Down of a1 (not a probe's, which may be handled first) unregisters it
    const unregistered = deferred();
    node.telemetry.attach('test.a1-unregistered', ['keel.agent_registry.unregistered'], (_event, _m, metadata) => {
      if ((metadata.pid as Pid).id === a1.id) unregistered.resolve();
    });
    node.exit(a1, new Error('crash'));
    await unregistered.promise;
    node.telemetry.detach('test.a1-unregistered');
    // b is full and a2 is not registered: item 0 waits (no timer, nothing else would wake it) until a2 registers
    expect(registry.lookup('a')?.pid.id).not.toBe(a1.id);
    registerAgain.resolve();
    const again = (await started.receive((m) => (m as { id?: string }).id === 'item-0')) as { at: Pid };
    expect(again.at.id).toBe(registry.lookup('a')!.pid.id);
    gates.forEach((g, i) => g.resolve(`done ${i}`));
    const r = await running;
    expect(r.results.map((x) => [x.result, x.attempts])).toEqual([['done 0', 2], ['done 1', 1]]);
    expect(r.perWorker.map((w) => [w.assigned, w.completed, w.failed])).toEqual([[1, 0, 1], [1, 1, 0], [1, 1, 0]]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it("capability: items left waiting for a newcomer's status fail with their reason once it answers that it cannot take them", async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const started = probe(node);
    const gated = reportingTo(started);
    const a = await plain(node, registry, 'a', ['w', 'x'], gated);
    const gates = [deferred<string>(), deferred<string>()];
    const running = distributeWork(node, gates.map((g) => g.promise), { workers: registry.select({ capability: 'w' }), strategy: 'capability', maxPerWorker: 1, requires: () => ['x'] });
    await started.receive();
    // registered after the start: the run asks its status once a worker died, and it lists no 'x'
    const c = await plain(node, registry, 'c', ['w'], gated);
    await exitAndWait(node, a, new Error('crash'));
    const r = await running;
    expect(r.results.map((x) => [x.error, x.worker, x.attempts])).toEqual([['process_down', a, 1], ['no_live_worker', undefined, 0]]);
    expect(r.perWorker.map((w) => [w.worker, w.assigned, w.failed])).toEqual([[a, 1, 1], [c, 0, 0]]);
  });

  it("capability: a run that ends while a newcomer's status is unanswered withdraws that call (no timer left) and ignores its late answer", async () => {
    const { node } = clockedNode(track);
    const registry = await AgentRegistry.start(node);
    const started = probe(node);
    const gated = reportingTo(started);
    const a = await plain(node, registry, 'a', ['w'], gated);
    const b = await plain(node, registry, 'b', ['w'], gated);
    // a newcomer that holds its status answer until the test gives it
    const held: From<unknown>[] = [];
    const asked = deferred<void>();
    const c = await GenServer.start(node, {
      init: () => null,
      handleCall: (_request: unknown, from: From<unknown>, state: null) => {
        held.push(from);
        asked.resolve();
        return { noreply: true as const, state };
      },
    });
    const events = captureEvents(node, ['keel.coordination']);
    // timers no process owns (a call's timeout among them)
    const unowned = (): number => node.internals().timers - node.processes().reduce((n, pid) => n + (node.info(pid)?.timers ?? 0), 0);
    await node.idle();
    const timers = unowned();
    const gate = deferred<string>();
    const running = distributeWork(node, [gate.promise], { workers: registry.select({ capability: 'w' }), strategy: 'capability', maxPerWorker: 1, requires: () => ['w'] });
    const on = (pid: Pid) => (m: unknown): boolean => (m as { at?: Pid }).at?.id === pid.id;
    await started.receive(on(a));
    await registry.register(c, { capabilities: ['w'] }); // after the start: asked its status once a worker died
    await exitAndWait(node, a, new Error('crash'));
    await started.receive(on(b)); // the item goes to b, while c's status is asked
    await asked.promise;
    gate.resolve('done');
    const r = await running;
    await node.idle();
    expect(r.results.map((x) => [x.result, x.worker, x.attempts])).toEqual([['done', b, 2]]);
    expect(r.perWorker.map((w) => [w.worker, w.assigned, w.completed, w.failed])).toEqual([[a, 1, 0, 1], [b, 1, 1, 0]]);
    // before the fix: one timer more (the status call's, left until its 5000 ms timeout)
    expect(unowned()).toBe(timers);
    GenServer.reply(held[0]!, { capabilities: ['w'], load: 0 }); // after the run's end: nobody waits for it
    await node.idle();
    // before the fix: the late answer added c to the finished run's perWorker (and ran a dispatch pass)
    expect(r.perWorker.map((w) => [w.worker, w.assigned, w.completed, w.failed])).toEqual([[a, 1, 0, 1], [b, 1, 1, 0]]);
    expect(r.results.map((x) => [x.result, x.worker, x.attempts])).toEqual([['done', b, 2]]);
    expect(held).toHaveLength(1); // c was asked its status, nothing else
    expect(events.events.map((e) => [e.event, e.measurements.items, e.measurements.completed])).toEqual([['keel.coordination.work_distributed', 1, 1]]);
    events.stop();
  });

  it('round_robin keeps the workers of the start: an item of a dead worker fails, its restart is not asked', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const gated = { runTask: (task: { payload: unknown }) => task.payload as Promise<unknown> };
    const sup = await supervised(node, registry, 'a', ['w'], gated);
    const a1 = registry.lookup('a')!.pid;
    const b = await plain(node, registry, 'b', ['w'], gated);
    const gates = [deferred<string>(), deferred<string>()];
    const running = distributeWork(node, gates.map((g) => g.promise), { workers: registry.select({ capability: 'w' }) });
    await exitAndWait(node, a1, new Error('crash'));
    gates.forEach((g) => g.resolve('ok'));
    const r = await running;
    expect(r.results[0]!.ok).toBe(false);
    expect(['noproc', 'process_down']).toContain(r.results[0]!.error);
    expect(r.perWorker.map((w) => [w.worker, w.completed])).toEqual([[a1, 0], [b, 1]]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('refuses something that is neither a list nor a query', () => {
    const node = track();
    expectKeelError(thrown(() => distributeWork(node, [1], { workers: 'a' as never })), 'ERR_INVALID_ARGUMENT', 'options.workers');
    expectKeelError(thrown(() => buildConsensus(node, { proposal: 1, participants: new Proxy([], {}) as never })), 'ERR_INVALID_ARGUMENT', 'options.participants');
  });
});
