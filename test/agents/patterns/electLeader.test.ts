import { describe, expect, it, vi } from 'vitest';
import { Agent, type AgentHandle } from '../../../src/agents/Agent.js';
import { electLeader, monitorLeader, type LeaderElected } from '../../../src/agents/patterns/index.js';
import { GenServer, type Node, type Pid } from '../../../src/index.js';
import { captureEvents, probe, type Probe } from '../../../src/testing/index.js';
import { advance, clockedNode, deadPid, deferred, drainThrough, expectKeelError, fakeLogger, idler, thrown, UNREADABLE, useNodes, watch } from '../../support.js';

const track = useNodes();

/** A candidate with `capabilities` that forwards every message it is sent to `inbox`, and runs tasks until their gate opens. */
function candidate(node: Node, inbox: Probe, capabilities: string[] = []): Promise<AgentHandle> {
  return Agent.start(node, {
    capabilities,
    runTask: (task) => task.payload as Promise<unknown>,
    // eslint-disable-next-line keel/no-raw-send -- the test agent reports to its probe
    onMessage: (message, ctx) => ctx.send(inbox, { at: ctx.self, message }),
  });
}

function electedAt(inbox: Probe): { at: Pid; message: LeaderElected }[] {
  return inbox.messages.filter((m) => (m as { message?: { type?: string } }).message?.type === 'leader_elected') as never;
}

describe('electLeader', () => {
  it('elects the first of equally loaded candidates, the same one every time, and tells every candidate', async () => {
    const node = track();
    const inbox = probe(node);
    const cs = await Promise.all([0, 1, 2].map(() => candidate(node, inbox)));
    const events = captureEvents(node, ['keel.coordination.']);
    const e1 = await electLeader(node, { candidates: cs.map((c) => c.pid) });
    const e2 = await electLeader(node, { candidates: cs.map((c) => c.pid) });
    expect(await e1.current()).toEqual({ leader: cs[0]!.pid, term: 1 });
    expect(await e2.current()).toEqual({ leader: cs[0]!.pid, term: 1 });
    expect(events.events.map((e) => [e.event, e.measurements.term, e.metadata.leader])).toEqual([
      ['keel.coordination.leader_elected', 1, cs[0]!.pid],
      ['keel.coordination.leader_elected', 1, cs[0]!.pid],
    ]);
    await drainThrough(node, inbox);
    const told = electedAt(inbox).filter((m) => m.message.term === 1);
    expect(told.map((m) => m.at)).toEqual([...cs.map((c) => c.pid), ...cs.map((c) => c.pid)]);
    expect(told[0]!.message).toEqual({ type: 'leader_elected', leader: cs[0]!.pid, term: 1 });
    expect(e1.name).toMatch(/^keel\.leader_election\.\d+$/);
    expect(node.isAlive(e1.pid)).toBe(true);
    await e1.stop();
    await e2.stop();
    expect(node.isAlive(e1.pid)).toBe(false);
  });

  it('by default elects the least loaded candidate (the earliest on a tie)', async () => {
    const node = track();
    const inbox = probe(node);
    const [a, b, c] = await Promise.all([0, 1, 2].map(() => candidate(node, inbox)));
    const gate = deferred<void>();
    const runs = [a!.runTask({ id: 'a1', kind: 'k', payload: gate.promise }), b!.runTask({ id: 'b1', kind: 'k', payload: gate.promise })];
    await b!.status(); // queued after b's task: both are running
    const election = await electLeader(node, { candidates: [a!.pid, b!.pid, c!.pid] });
    expect(await election.current()).toEqual({ leader: c!.pid, term: 1 });
    gate.resolve();
    await Promise.all(runs);
  });

  it('elects the highest score from each status, the earliest candidate on a tie', async () => {
    const node = track();
    const inbox = probe(node);
    const a = await candidate(node, inbox, ['junior']);
    const b = await candidate(node, inbox, ['senior']);
    const c = await candidate(node, inbox, ['senior']);
    const score = (s: { capabilities: readonly string[] }): number => (s.capabilities.includes('senior') ? 10 : 1);
    const e = await electLeader(node, { candidates: [a.pid, c.pid, b.pid], score });
    expect((await e.current()).leader).toBe(c.pid);
  });

  it('re-elects among the live candidates when the leader dies: term + 1, announced to the live candidates', async () => {
    const node = track();
    const inbox = probe(node);
    // the pids as they are now (an agent's handle finds its restarted successor, which is no candidate)
    const [p0, p1, p2] = (await Promise.all([0, 1, 2].map(() => candidate(node, inbox)))).map((c) => c.pid) as [Pid, Pid, Pid];
    const election = await electLeader(node, { candidates: [p0, p1, p2] });
    const events = captureEvents(node, ['keel.coordination.']);
    const first = await election.current();
    const next = election.whenChanged(first.term);
    node.exit(p0, 'kill');
    expect(await next).toEqual({ leader: p1, term: 2 });
    await drainThrough(node, inbox); // p1 has handled the news before it dies
    const third = election.whenChanged(2);
    node.exit(p1, 'kill');
    expect(await third).toEqual({ leader: p2, term: 3 });
    expect(events.events.map((e) => [e.measurements.term, e.metadata.leader, e.metadata.previous])).toEqual([
      [2, p1, p0],
      [3, p2, p1],
    ]);
    await drainThrough(node, inbox);
    expect(electedAt(inbox).filter((m) => m.message.term === 2).map((m) => m.at)).toEqual([p1, p2]);
    expect(electedAt(inbox).filter((m) => m.message.term === 3).map((m) => m.at)).toEqual([p2]);
    await election.stop();
  });

  it('whenChanged(afterTerm) for a term ahead waits until the term is past it, not for the next change', async () => {
    const node = track();
    const inbox = probe(node);
    const [p0, p1, p2] = (await Promise.all([0, 1, 2].map(() => candidate(node, inbox)))).map((c) => c.pid) as [Pid, Pid, Pid];
    const election = await electLeader(node, { candidates: [p0, p1, p2] });
    expect(await election.current()).toEqual({ leader: p0, term: 1 });
    const ahead = election.whenChanged(2);
    let answered: unknown;
    void ahead.then((l) => (answered = l));
    const next = election.whenChanged(1);
    node.exit(p0, 'kill');
    expect(await next).toEqual({ leader: p1, term: 2 });
    await node.idle();
    expect(answered).toBe(undefined); // term 2 is not past 2
    node.exit(p1, 'kill');
    expect(await ahead).toEqual({ leader: p2, term: 3 });
    await election.stop();
  });

  it('with no candidate left the leader is undefined (a new term, an event), and no retry is scheduled', async () => {
    const { node, clock } = clockedNode(track);
    const inbox = probe(node);
    const only = (await candidate(node, inbox)).pid;
    const election = await electLeader(node, { candidates: [only] });
    const events = captureEvents(node, ['keel.coordination.']);
    const next = election.whenChanged(1);
    node.exit(only, 'kill');
    expect(await next).toEqual({ leader: undefined, term: 2 });
    expect(events.events).toEqual([
      { event: 'keel.coordination.leader_elected', measurements: { term: 2, candidates: 0, notified: 0 }, metadata: { election: election.name, leader: undefined, previous: only } },
    ]);
    await clock.advance(60_000);
    expect(await election.current()).toEqual({ leader: undefined, term: 2 });
  });

  it('elects nobody among dead candidates at the start (term 1, leader undefined)', async () => {
    const node = track();
    const e = await electLeader(node, { candidates: [deadPid(node), deadPid(node)] });
    expect(await e.current()).toEqual({ leader: undefined, term: 1 });
  });

  it('a candidate that does not answer status in time is passed over; when none answers it retries after retryMs', async () => {
    const { node, clock } = clockedNode(track);
    const slowGate = deferred<void>();
    const asked = deferred<void>();
    // an agent busy with something else (its handler awaits the gate), so its status waits
    const busy = await GenServer.start(node, {
      init: () => 0,
      async handleCall(request: { type: string }, _from, n: number) {
        if (request.type === 'hold') {
          asked.resolve();
          await slowGate.promise;
          return { reply: 'held', state: n };
        }
        return { reply: { load: 0, capabilities: [], completed: 0, failed: 0 }, state: n };
      },
    });
    const held = GenServer.call(node, busy, { type: 'hold' }, { timeout: Infinity });
    await asked.promise;
    const w = electLeader(node, { candidates: [busy], timeout: 100, retryMs: 500 });
    await node.settle();
    await clock.advance(100);
    const election = await w;
    expect(await election.current()).toEqual({ leader: undefined, term: 1 });
    slowGate.resolve();
    expect(await held).toBe('held');
    const next = election.whenChanged(1);
    await clock.advance(500);
    expect(await next).toEqual({ leader: busy, term: 2 });
  });

  it('throws at once for bad options', () => {
    const node = track();
    const pid = deadPid(node);
    const bad: [unknown, string][] = [
      [undefined, 'options'],
      [{ candidates: [] }, 'options.candidates'],
      [{ candidates: ['a'] }, 'options.candidates[0]'],
      [{ candidates: [pid, pid] }, 'options.candidates[1]'],
      [{ candidates: [pid], score: 3 }, 'options.score'],
      [{ candidates: [pid], timeout: -5 }, 'options.timeout'],
      [{ candidates: [pid], retryMs: Infinity }, 'options.retryMs'],
      [{ candidates: [pid], name: '' }, 'options.name'],
    ];
    for (const [options, argument] of bad) expectKeelError(thrown(() => electLeader(node, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
  });

  it('a candidates list that cannot be read is ERR_INVALID_ARGUMENT naming what failed, not the raw throw', () => {
    const node = track();
    const pid = deadPid(node);
    const throwingAt = (key: string): unknown =>
      new Proxy([pid], {
        get: (target, k, receiver): unknown => {
          if (k === key) throw new Error('getter');
          return Reflect.get(target, k, receiver) as unknown;
        },
      });
    expectKeelError(thrown(() => electLeader(node, { candidates: throwingAt('0') as never })), 'ERR_INVALID_ARGUMENT', '`options.candidates[0]`');
    expectKeelError(thrown(() => electLeader(node, { candidates: throwingAt('length') as never })), 'ERR_INVALID_ARGUMENT', '`options.candidates`');
  });

  it('a score that answers no number (a promise, NaN) passes that candidate over and says so', async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const inbox = probe(node);
    const [x, y, z] = [await candidate(node, inbox, ['async']), await candidate(node, inbox, ['nan']), await candidate(node, inbox)];
    // an async score is a common slip: its promise is not a score (and its rejection is not left unhandled)
    const score = (s: { capabilities: readonly string[] }): number => (s.capabilities.includes('async') ? (Promise.reject(new Error('async score')) as never) : s.capabilities.includes('nan') ? Number.NaN : 1);
    const election = await electLeader(node, { candidates: [x.pid, y.pid, z.pid], score });
    expect(await election.current()).toEqual({ leader: z.pid, term: 1 });
    expect(logger.warn.mock.calls.map((c) => c[0])).toEqual([
      `leader election ${election.name}: score answered a promise for ${String(x.pid)}, not a number; it is not elected this time`,
      `leader election ${election.name}: score answered NaN for ${String(y.pid)}, not a number; it is not elected this time`,
    ]);
    await election.stop();
  });

  it("whenChanged's options are checked as current's are: a misspelt, unreadable or malformed one throws, never waits forever unnoticed", async () => {
    const node = track();
    const inbox = probe(node);
    const c = await candidate(node, inbox);
    const election = await electLeader(node, { candidates: [c.pid] });
    const bad: [unknown, string][] = [
      [{ timout: 10 }, '`options.timout`'],
      [{ get timeout(): never { throw new Error('getter'); } }, '`options.timeout`'],
      ['x', '`options`'],
      [{ timeout: -1 }, '`options.timeout`'],
    ];
    for (const [o, argument] of bad) {
      expectKeelError(thrown(() => election.whenChanged(1, o as never)), 'ERR_INVALID_ARGUMENT', argument);
      expectKeelError(thrown(() => election.current(o as never)), 'ERR_INVALID_ARGUMENT', argument);
    }
    expect(await election.whenChanged(0, { timeout: 1000 })).toEqual({ leader: c.pid, term: 1 });
    await election.stop();
  });

  it('reads each option once: getters answering a valid value, then an invalid one, are used as checked', async () => {
    const node = track();
    const inbox = probe(node);
    const [x, y] = [await candidate(node, inbox), await candidate(node, inbox)];
    const reads = { candidates: 0, score: 0, timeout: 0, retryMs: 0, name: 0, onChange: 0 };
    const seen: number[] = [];
    const options = {
      get candidates() {
        return reads.candidates++ === 0 ? [y.pid, x.pid] : [];
      },
      get score() {
        return reads.score++ === 0 ? () => 1 : 'not a function';
      },
      get timeout() {
        return reads.timeout++ === 0 ? 1000 : -1;
      },
      get retryMs() {
        return reads.retryMs++ === 0 ? 10 : Infinity;
      },
      get name() {
        return reads.name++ === 0 ? 'read-once' : '';
      },
    };
    const election = await electLeader(node, options as never);
    expect(reads).toEqual({ candidates: 1, score: 1, timeout: 1, retryMs: 1, name: 1, onChange: 0 });
    expect(election.name).toBe('read-once');
    expect(await election.current()).toEqual({ leader: y.pid, term: 1 });
    await election.stop();
    const withOnChange = {
      ...{ candidates: [x.pid] },
      get onChange() {
        return reads.onChange++ === 0 ? (l: { term: number }) => void seen.push(l.term) : 'not a function';
      },
    };
    const monitor = await monitorLeader(node, withOnChange as never);
    expect(reads.onChange).toBe(1);
    expect(await monitor.current()).toEqual({ leader: x.pid, term: 1 });
    expect(seen).toEqual([1]);
    let timeoutReads = 0;
    const waitOptions = {
      get timeout() {
        return timeoutReads++ === 0 ? 1000 : -1;
      },
    };
    expect(await monitor.whenChanged(0, waitOptions)).toEqual({ leader: x.pid, term: 1 });
    expect(timeoutReads).toBe(1);
    await monitor.stop();
  });

  it('a malformed when_changed sent straight to its process is refused, not kept waiting forever', async () => {
    const node = track();
    const inbox = probe(node);
    const c = await candidate(node, inbox);
    const election = await electLeader(node, { candidates: [c.pid] });
    for (const afterTerm of ['1', -1, 1.5, undefined]) {
      const r = await GenServer.call(node, election.name, { type: 'when_changed', afterTerm } as never, { timeout: 1000 });
      expectKeelError(r, 'ERR_INVALID_ARGUMENT', '`request.afterTerm`');
    }
    expect(await election.current()).toEqual({ leader: c.pid, term: 1 });
    await election.stop();
  });

  it('callers of whenChanged that gave up are not kept until the next term', async () => {
    const { node, clock } = clockedNode(track);
    const inbox = probe(node);
    const [a, b] = [await candidate(node, inbox), await candidate(node, inbox)];
    const election = await electLeader(node, { candidates: [a.pid, b.pid] });
    for (let i = 0; i < 5; i++) {
      const gaveUp = election.whenChanged(1, { timeout: 10 }).then(() => 'answered', (e: unknown) => String(e));
      await clock.advance(10);
      expect(await gaveUp).toMatch(/CallTimeoutError/);
    }
    const replies = vi.spyOn(GenServer, 'reply');
    try {
      const next = election.whenChanged(1);
      expect(await election.current()).toEqual({ leader: a.pid, term: 1 });
      node.exit(a.pid, 'kill');
      expect(await next).toEqual({ leader: b.pid, term: 2 });
      // one reply for the one caller still waiting, none for the five that left
      expect(replies.mock.calls.filter(([, v]) => (v as { term?: unknown })?.term === 2)).toHaveLength(1);
    } finally {
      replies.mockRestore();
    }
    await election.stop();
  });
});

describe('electLeader sent a message that cannot be inspected', () => {
  // the same defect as the supervisors' (fuzz seed 1005273782, path 93): `message instanceof C` throws on a
  // proxy whose traps throw, and the process crashed
  it('ignores it and keeps its leader', async () => {
    const node = track();
    const candidate = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const election = await electLeader(node, { candidates: [candidate.pid] });
    const pid = election.pid;
    const before = await election.current();
    for (const [, make] of UNREADABLE) node.send(pid, make());
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(await election.current()).toEqual(before);
  });
  it('a candidate that never answers status does not hold the election process: with timeout Infinity, current() and whenChanged answer while it waits, and the election completes with the others once the silent one dies', async () => {
    const { node } = clockedNode(track);
    const inbox = probe(node);
    const silent = idler(node); // takes the status call and never answers
    const a = await candidate(node, inbox);
    const b = await candidate(node, inbox);
    const started = watch(electLeader(node, { candidates: [silent, a.pid, b.pid], timeout: Infinity, name: 'election-silent' }));
    await node.idle();
    expect(started.status).toBe('pending');
    const now = watch(GenServer.call(node, 'election-silent', { type: 'current' }));
    const past0 = watch(GenServer.call(node, 'election-silent', { type: 'when_changed', afterTerm: 0 }));
    await node.idle();
    expect(now).toEqual({ status: 'resolved', value: { leader: undefined, term: 0 }, error: undefined });
    expect(past0.status).toBe('pending');
    node.exit(silent, 'kill'); // its status call fails: every candidate has answered or failed
    await node.idle();
    expect(started.status).toBe('resolved');
    expect(await started.value!.current()).toEqual({ leader: a.pid, term: 1 });
    expect(past0).toEqual({ status: 'resolved', value: { leader: a.pid, term: 1 }, error: undefined });
  });

  it('an election process that dies while it gathers statuses leaves nothing behind: no send from the dead process (no zombie call)', async () => {
    const { node } = clockedNode(track);
    const inbox = probe(node);
    const silent = idler(node);
    const a = await candidate(node, inbox);
    const started = watch(electLeader(node, { candidates: [silent, a.pid], timeout: Infinity, name: 'election-dies' }));
    await node.idle();
    expect(started.status).toBe('pending');
    const zombies = captureEvents(node, ['keel.process.zombie_call']);
    node.exit(node.registry.whereis('election-dies')!, 'kill'); // its status calls fail with it
    await node.idle();
    // before: the gathered answers were sent from the dead process, a zombie call
    expect(zombies.events).toEqual([]);
  });

  it('a candidate silent for the whole (large) timeout does not hold current() meanwhile; past it the election completes with the others', async () => {
    const { node, clock } = clockedNode(track);
    const inbox = probe(node);
    const silent = idler(node);
    const a = await candidate(node, inbox);
    const b = await candidate(node, inbox);
    const started = watch(electLeader(node, { candidates: [silent, a.pid, b.pid], timeout: 3_600_000, name: 'election-slow' }));
    await advance(node, clock, 3_599_999);
    expect(started.status).toBe('pending');
    const now = watch(GenServer.call(node, 'election-slow', { type: 'current' }));
    await node.idle();
    expect(now).toEqual({ status: 'resolved', value: { leader: undefined, term: 0 }, error: undefined });
    await advance(node, clock, 1);
    expect(started.status).toBe('resolved');
    expect(await started.value!.current()).toEqual({ leader: a.pid, term: 1 });
    await drainThrough(node, inbox);
    expect(electedAt(inbox).map((m) => [m.at, m.message.term, m.message.leader])).toEqual([
      [a.pid, 1, a.pid],
      [b.pid, 1, a.pid],
    ]);
  });
});

describe('electLeader while it elects again after the leader died', () => {
  it('current() never answers the dead leader: nobody leads (leader undefined, the ended term) until the next term', async () => {
    const { node, clock } = clockedNode(track);
    const inbox = probe(node);
    const p0 = (await candidate(node, inbox)).pid;
    const silent = idler(node); // takes the status call and never answers: each election lasts the timeout
    const p1 = (await candidate(node, inbox)).pid;
    const started = watch(electLeader(node, { candidates: [p0, silent, p1], timeout: 1000, name: 'election-interregnum' }));
    await advance(node, clock, 1000);
    const election = await started.value!;
    expect(await election.current()).toEqual({ leader: p0, term: 1 });
    const next = election.whenChanged(1);
    node.exit(p0, 'kill');
    await node.idle(); // the Down is in: the statuses are being gathered
    expect(node.isAlive(p0)).toBe(false);
    expect(await election.current()).toEqual({ leader: undefined, term: 1 });
    await advance(node, clock, 1000);
    expect(await next).toEqual({ leader: p1, term: 2 });
    expect(await election.current()).toEqual({ leader: p1, term: 2 });
    await election.stop();
  });
});
