import { describe, expect, it } from 'vitest';
import { Agent, type AgentHandle, type Vote } from '../../../src/agents/Agent.js';
import { buildConsensus, type ConsensusDecision } from '../../../src/agents/patterns/index.js';
import type { Node } from '../../../src/index.js';
import { captureEvents, probe, type Probe } from '../../../src/testing/index.js';
import { clockedNode, deadPid, deferred, drainThrough, expectKeelError, spawnWithContext, thrown, useNodes, watch } from '../../support.js';

const track = useNodes();

/** A participant that votes `vote` (or what `vote` resolves to) and forwards every other message to `inbox`. */
function participant(node: Node, inbox: Probe, vote: Vote | (() => Promise<Vote>), seen?: unknown[]): Promise<AgentHandle> {
  return Agent.start(node, {
    capabilities: [],
    runTask: () => undefined,
    vote: (proposal) => {
      seen?.push(proposal);
      return typeof vote === 'function' ? vote() : vote;
    },
    // eslint-disable-next-line keel/no-raw-send -- the test agent reports to its probe
    onMessage: (message, ctx) => ctx.send(inbox, { at: ctx.self, message }),
  });
}

function decisionsAt(inbox: Probe): { at: unknown; message: ConsensusDecision }[] {
  return inbox.messages.filter((m) => (m as { message?: { type?: string } }).message?.type === 'consensus_decision') as never;
}

describe('buildConsensus', () => {
  it('asks every participant for a real vote and tallies exactly what they answered', async () => {
    const node = track();
    const inbox = probe(node);
    const proposals: unknown[] = [];
    const agents = await Promise.all((['approve', 'reject', 'approve', 'approve', 'reject'] as const).map((v) => participant(node, inbox, v, proposals)));
    const events = captureEvents(node, ['keel.coordination.']);
    const r = await buildConsensus(node, { proposal: { deploy: 'v2' }, participants: agents.map((a) => a.pid) });
    expect(proposals).toEqual(Array(5).fill({ deploy: 'v2' }));
    expect(r).toMatchObject({ decision: 'approved', approvals: 3, rejections: 2, missing: 0, ok: true });
    expect(r.votes).toEqual(agents.map((a, i) => ({ pid: a.pid, vote: ['approve', 'reject', 'approve', 'approve', 'reject'][i] })));
    expect(r.notification).toMatchObject({ ok: true, delivered: 5, failed: 0 });
    await drainThrough(node, inbox);
    const got = decisionsAt(inbox);
    expect(got.map((d) => d.at)).toEqual(agents.map((a) => a.pid));
    expect(got[0]!.message).toEqual({ type: 'consensus_decision', proposal: { deploy: 'v2' }, decision: 'approved', approvals: 3, rejections: 2 });
    expect(events.events).toEqual([
      { event: 'keel.coordination.consensus', measurements: { approvals: 3, rejections: 2, missing: 0, participants: 5 }, metadata: { decision: 'approved', notified: true, type: 'majority' } },
    ]);
  });

  it.each([
    ['majority', ['approve', 'approve', 'reject', 'reject'], 'rejected'], // 2 of 4 is not more than half
    ['majority', ['approve', 'approve', 'approve', 'reject'], 'approved'],
    ['unanimous', ['approve', 'approve', 'approve', 'reject'], 'rejected'],
    ['unanimous', ['approve', 'approve', 'approve', 'approve'], 'approved'],
    [{ quorum: 2 }, ['approve', 'approve', 'reject', 'reject'], 'approved'],
    [{ quorum: 3 }, ['approve', 'approve', 'reject', 'reject'], 'rejected'],
  ] as const)('type %j with votes %j decides %s', async (type, votes, decision) => {
    const node = track();
    const inbox = probe(node);
    const agents = await Promise.all(votes.map((v) => participant(node, inbox, v)));
    const r = await buildConsensus(node, { proposal: 'p', participants: agents.map((a) => a.pid), type });
    expect(r.decision).toBe(decision);
    expect(r.ok).toBe(true);
  });

  it('a participant that dies after voting, before the decision, fails the notification: nobody gets the decision, and the result says so', async () => {
    const node = track();
    const inbox = probe(node);
    const gate = deferred<Vote>();
    const started = deferred<void>();
    const voted = deferred<void>();
    const doomed = await participant(node, inbox, async () => {
      voted.resolve();
      return 'approve';
    });
    const slow = await participant(node, inbox, () => {
      started.resolve();
      return gate.promise;
    });
    const other = await participant(node, inbox, 'approve');
    const w = watch(buildConsensus(node, { proposal: 'p', participants: [doomed.pid, slow.pid, other.pid] }));
    await Promise.all([started.promise, voted.promise]);
    await doomed.status(); // answered after its vote's reply: the vote is in
    node.exit(doomed.pid, 'kill');
    gate.resolve('approve');
    const events = captureEvents(node, ['keel.coordination.']);
    await drainThrough(node, inbox);
    expect(w.status).toBe('resolved');
    const r = w.value!;
    expect(r).toMatchObject({ decision: 'approved', approvals: 3, ok: false, notification: { ok: false, reason: 'not_all_deliverable', delivered: 0 } });
    expect(r.notification.results.map((x) => x.outcome.ok ? 'ok' : x.outcome.reason)).toEqual(['noproc', 'aborted', 'aborted']);
    expect(decisionsAt(inbox)).toEqual([]);
    expect(events.events[0]?.metadata).toMatchObject({ notified: false, reason: 'not_all_deliverable' });
  });

  it('a participant that is already dead is missing (noproc), and the notification fails', async () => {
    const node = track();
    const inbox = probe(node);
    const a = await participant(node, inbox, 'approve');
    const dead = deadPid(node);
    const r = await buildConsensus(node, { proposal: 'p', participants: [a.pid, dead], type: { quorum: 1 } });
    expect(r).toMatchObject({ decision: 'approved', approvals: 1, missing: 1, ok: false });
    expect(r.votes[1]).toEqual({ pid: dead, error: 'noproc' });
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox)).toEqual([]);
  });

  it('a vote not in by the timeout is missing (timeout) and counts as not approving; a live silent participant is still told', async () => {
    const { node, clock } = clockedNode(track);
    const inbox = probe(node);
    const never = deferred<Vote>();
    const asked = deferred<void>();
    const a = await participant(node, inbox, 'approve');
    const b = await participant(node, inbox, 'approve');
    const silent = await participant(node, inbox, () => {
      asked.resolve();
      return never.promise;
    });
    const w = watch(buildConsensus(node, { proposal: 'p', participants: [a.pid, b.pid, silent.pid], type: 'unanimous', timeout: 100 }));
    await asked.promise;
    await clock.advance(99);
    expect(w.status).toBe('pending');
    await clock.advance(1);
    await node.settle(); // the silent participant is still busy voting: not idle
    expect(w.status).toBe('resolved');
    expect(w.value).toMatchObject({ decision: 'rejected', approvals: 2, rejections: 0, missing: 1, ok: true });
    expect(w.value!.votes[2]).toEqual({ pid: silent.pid, error: 'timeout' });
    never.resolve('approve'); // the silent one wakes up and handles the decision
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox).map((d) => d.at)).toEqual([a.pid, b.pid, silent.pid]);
  });

  it('an aborted signal ends the pending votes (aborted) and delivers no decision', async () => {
    const node = track();
    const inbox = probe(node);
    const never = deferred<Vote>();
    const asked = deferred<void>();
    const a = await participant(node, inbox, 'approve');
    const b = await participant(node, inbox, () => {
      asked.resolve();
      return never.promise;
    });
    const abort = new AbortController();
    const w = watch(buildConsensus(node, { proposal: 'p', participants: [a.pid, b.pid], signal: abort.signal }));
    await asked.promise;
    await a.status(); // queued after a's vote: that vote is in
    abort.abort();
    await node.settle();
    never.resolve('approve');
    await drainThrough(node, inbox);
    expect(w.value).toMatchObject({ decision: 'rejected', missing: 1, ok: false });
    expect(w.value!.votes[1]).toEqual({ pid: b.pid, error: 'aborted' });
    expect(decisionsAt(inbox)).toEqual([]);
  });

  it('run from a process that dies while the votes are out, it resolves (never rejects): the votes are aborted, nobody is sent the decision, nothing is sent from the dead process', async () => {
    const node = track();
    const inbox = probe(node);
    const gate = deferred<Vote>();
    const asked = deferred<void>();
    const a = await participant(node, inbox, () => (asked.resolve(), gate.promise));
    const { pid, ctx } = await spawnWithContext(node);
    const zombies = captureEvents(node, ['keel.process.zombie_call']);
    const round = watch(buildConsensus(ctx, { proposal: 'p', participants: [a.pid] }));
    await asked.promise;
    node.exit(pid, 'kill');
    gate.resolve('approve');
    await node.idle();
    // before: rejected with ERR_PROCESS_EXITED (the decision sent from the dead process, a zombie call), the vote reported 'process_down'
    expect(round.status).toBe('resolved');
    const r = round.value!;
    expect(r).toMatchObject({ decision: 'rejected', votes: [{ pid: a.pid, error: 'aborted' }], approvals: 0, rejections: 0, missing: 1, ok: false });
    expect(r.notification).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 1 });
    expect(r.notification.results.map((x) => [x.target, x.outcome.ok, (x.outcome as { reason?: unknown }).reason])).toEqual([[a.pid, false, 'aborted']]);
    expect(zombies.events).toEqual([]);
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox)).toEqual([]);
  });

  it('throws at once for bad options', async () => {
    const node = track();
    const inbox = probe(node);
    const a = await participant(node, inbox, 'approve');
    const bad: [unknown, string][] = [
      [undefined, 'options'],
      [{ proposal: 1, participants: [] }, 'options.participants'],
      [{ proposal: 1, participants: [a.pid, a.pid] }, 'options.participants[1]'],
      [{ proposal: 1, participants: [42] }, 'options.participants[0]'],
      [{ proposal: 1, participants: [a.pid], type: 'most' }, 'options.type'],
      [{ proposal: 1, participants: [a.pid], type: { quorum: 2 } }, 'options.type.quorum'],
      [{ proposal: 1, participants: [a.pid], type: { quorum: 0 } }, 'options.type.quorum'],
      [{ proposal: 1, participants: [a.pid], timeout: -1 }, 'options.timeout'],
      [{ proposal: 1, participants: [a.pid], signal: 'stop' }, 'options.signal'],
    ];
    for (const [options, argument] of bad) expectKeelError(thrown(() => buildConsensus(node, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
  });

  it('options it does not take, or that cannot be read, are ERR_INVALID_ARGUMENT naming them, and nobody is asked to vote', async () => {
    const node = track();
    const inbox = probe(node);
    const a = await participant(node, inbox, 'approve');
    const { proxy, revoke } = Proxy.revocable({ quorum: 1 }, {});
    revoke();
    const bad: [unknown, string][] = [
      [{ proposal: 1, participants: [a.pid], timout: 10 }, 'options.timout'],
      [{ proposal: 1, participants: [a.pid], get timeout(): number { throw new Error('getter'); } }, 'options.timeout'],
      [{ proposal: 1, participants: [a.pid], type: proxy }, 'options.type'],
      [{ proposal: 1, participants: [a.pid], type: { get quorum(): number { throw new Error('getter'); } } }, 'options.type.quorum'],
    ];
    for (const [options, argument] of bad) expectKeelError(thrown(() => buildConsensus(node, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox)).toEqual([]);
  });
  it('decides by the quorum it checked: a type object changed or revoked once the vote started changes nothing', async () => {
    const node = track();
    const inbox = probe(node);
    const agents = await Promise.all([participant(node, inbox, 'approve'), participant(node, inbox, 'approve')]);
    const participants = agents.map((a) => a.pid);
    const type = { quorum: 2 };
    const changed = buildConsensus(node, { proposal: 1, participants, type });
    type.quorum = 99; // a caller reusing its options object
    const { proxy, revoke } = Proxy.revocable({ quorum: 1 }, {});
    const revoked = buildConsensus(node, { proposal: 2, participants, type: proxy });
    revoke();
    expect(await changed).toMatchObject({ decision: 'approved', approvals: 2, missing: 0, ok: true });
    expect(await revoked).toMatchObject({ decision: 'approved', approvals: 2, missing: 0, ok: true });
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox).map((d) => [d.message.proposal, d.message.decision])).toEqual([[1, 'approved'], [1, 'approved'], [2, 'approved'], [2, 'approved']]);
  });
  it('reads each option once, and each participant once: getters answering a valid value, then an invalid one, are used as checked', async () => {
    const node = track();
    const inbox = probe(node);
    const seen: unknown[] = [];
    const [a, b] = [await participant(node, inbox, 'approve', seen), await participant(node, inbox, 'reject', seen)];
    const reads = { proposal: 0, participants: 0, type: 0, timeout: 0, signal: 0, first: 0 };
    const list: unknown[] = [undefined, b.pid];
    Object.defineProperty(list, 0, { enumerable: true, get: () => (reads.first++ === 0 ? a.pid : 42) });
    const options = {
      get proposal() {
        return reads.proposal++ === 0 ? 'p' : 'another';
      },
      get participants() {
        return reads.participants++ === 0 ? list : [];
      },
      get type() {
        return reads.type++ === 0 ? { quorum: 1 } : 'most';
      },
      get timeout() {
        return reads.timeout++ === 0 ? 1000 : -1;
      },
      get signal() {
        return reads.signal++ === 0 ? undefined : 'stop';
      },
    };
    const r = await buildConsensus(node, options as never);
    expect(reads).toEqual({ proposal: 1, participants: 1, type: 1, timeout: 1, signal: 1, first: 1 });
    expect(seen).toEqual(['p', 'p']);
    expect(r).toMatchObject({ decision: 'approved', approvals: 1, rejections: 1, missing: 0, ok: true });
    expect(r.votes).toEqual([{ pid: a.pid, vote: 'approve' }, { pid: b.pid, vote: 'reject' }]);
  });

  it('a participant given by name is the process registered under it when the vote starts: the decision goes to the one that voted, not to one that took the name meanwhile', async () => {
    const node = track();
    const inbox = probe(node);
    const ballot = deferred<Vote>();
    const onMessage = (message: unknown, ctx: { self: unknown; send(to: unknown, m: unknown): void }): void => ctx.send(inbox, { at: ctx.self, message });
    const first = (await Agent.start(node, { name: 'voter', capabilities: [], runTask: () => undefined, vote: () => ballot.promise, onMessage: onMessage as never })).pid; // its pid now (the handle finds it by name)
    const other = await participant(node, inbox, 'approve');
    const round = buildConsensus(node, { proposal: 'p', participants: ['voter', other.pid] });
    await node.idle(); // both votes are out, the first one held
    node.registry.unregister('voter');
    const newcomer = await Agent.start(node, { name: 'voter', capabilities: [], runTask: () => undefined, vote: () => 'reject', onMessage: onMessage as never });
    expect(newcomer.pid).not.toEqual(first);
    ballot.resolve('approve');
    const r = await round;
    expect(r).toMatchObject({ decision: 'approved', approvals: 2, missing: 0, ok: true });
    expect(r.votes).toEqual([{ pid: 'voter', vote: 'approve' }, { pid: other.pid, vote: 'approve' }]);
    await drainThrough(node, inbox);
    expect(decisionsAt(inbox).map((d) => d.at)).toEqual([first, other.pid]);
  });

  it('one process listed twice, by pid and by its name, is a bad argument: it would vote twice', async () => {
    const node = track();
    const inbox = probe(node);
    const seen: unknown[] = [];
    const a = await Agent.start(node, { name: 'voter-a', capabilities: [], runTask: () => undefined, vote: (p) => (seen.push(p), 'approve') });
    const b = await participant(node, inbox, 'reject');
    const twice: [unknown[], string][] = [
      [[a.pid, 'voter-a', b.pid], '`options.participants[1]`'],
      [['voter-a', b.pid, a.pid], '`options.participants[2]`'],
    ];
    for (const [participants, argument] of twice) {
      expectKeelError(thrown(() => buildConsensus(node, { proposal: 1, participants: participants as never })), 'ERR_INVALID_ARGUMENT', argument, 'listed twice', `the process ${String(a.pid)}`);
    }
    await drainThrough(node, inbox);
    expect(seen).toEqual([]);
  });
});
