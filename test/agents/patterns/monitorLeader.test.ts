import { describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agents/Agent.js';
import { electLeader, monitorLeader, type Leadership } from '../../../src/agents/patterns/index.js';
import type { Node, Pid } from '../../../src/index.js';
import { captureEvents, expectNoLeaks } from '../../../src/testing/index.js';
import { clockedNode, expectKeelError, idler, listOf, revokedProxy, spawnWithContext, thrown, useNodes } from '../../support.js';

const track = useNodes();

async function candidates(node: Node, n: number): Promise<Pid[]> {
  const started = await Promise.all(Array.from({ length: n }, () => Agent.start(node, { capabilities: [], runTask: () => 1 })));
  return started.map((a) => a.pid); // the pids now: a restarted agent is no candidate
}

describe('monitorLeader', () => {
  it('re-elects through a monitor each time the leader dies, until none is left; onChange sees every term', async () => {
    const node = track();
    const [a, b, c] = (await candidates(node, 3)) as [Pid, Pid, Pid];
    const seen: Leadership[] = [];
    const events = captureEvents(node, ['keel.coordination.leader_elected']);
    const m = await monitorLeader(node, { candidates: [a, b, c], onChange: (l) => void seen.push(l) });
    expect(m.name).toMatch(/^keel\.leader_monitor\.\d+$/);
    expect(await m.current()).toEqual({ leader: a, term: 1 });
    for (const [dying, next] of [[a, { leader: b, term: 2 }], [b, { leader: c, term: 3 }], [c, { leader: undefined, term: 4 }]] as const) {
      const changed = m.whenChanged(next.term - 1);
      node.exit(dying, 'kill');
      expect(await changed).toEqual(next);
    }
    expect(seen).toEqual([
      { leader: a, term: 1 },
      { leader: b, term: 2 },
      { leader: c, term: 3 },
      { leader: undefined, term: 4 },
    ]);
    expect(events.events.map((e) => [e.measurements.term, e.metadata.leader, e.metadata.previous])).toEqual([
      [1, a, undefined],
      [2, b, a],
      [3, c, b],
      [4, undefined, c],
    ]);
    await m.stop();
  });

  it('stop removes its monitor of the leader: no leak, and the leader dying afterwards changes nothing', async () => {
    const node = track();
    const [a, b] = (await candidates(node, 2)) as [Pid, Pid];
    const before = listOf(node).length;
    const seen: Leadership[] = [];
    const m = await monitorLeader(node, { candidates: [a, b], onChange: (l) => void seen.push(l) });
    expect(listOf(node).length).toBe(before + 1); // its monitor of the leader
    await m.stop();
    expect(node.isAlive(m.pid)).toBe(false);
    expect(listOf(node).length).toBe(before);
    expectNoLeaks(node);
    node.exit(a, 'kill');
    await node.idle();
    expect(seen).toEqual([{ leader: a, term: 1 }]);
  });

  it('stop while it waits to retry (no candidate answers) leaves no timer: nothing more happens', async () => {
    const { node, clock } = clockedNode(track);
    const silent = idler(node); // never answers status
    const events = captureEvents(node, ['keel.coordination.leader_elected']);
    const starting = monitorLeader(node, { candidates: [silent], timeout: 100, retryMs: 500 });
    await node.settle();
    await clock.advance(100);
    const m = await starting;
    expect(await m.current()).toEqual({ leader: undefined, term: 1 });
    await m.stop();
    expectNoLeaks(node);
    await clock.advance(10_000);
    expect(events.events).toHaveLength(1);
    node.exit(silent, 'kill');
  });

  it('an onChange that throws is logged; the monitor keeps electing', async () => {
    const node = track();
    const [a, b] = (await candidates(node, 2)) as [Pid, Pid];
    const m = await monitorLeader(node, {
      candidates: [a, b],
      onChange: () => {
        throw new Error('callback');
      },
    });
    const changed = m.whenChanged(1);
    node.exit(a, 'kill');
    expect(await changed).toEqual({ leader: b, term: 2 });
    expect((node.logger as unknown as { warn: { mock: { calls: unknown[][] } } }).warn.mock.calls.map((c) => c[0])).toEqual([
      `leader monitor ${m.name}: onChange threw for term 1`,
      `leader monitor ${m.name}: onChange threw for term 2`,
    ]);
    await m.stop();
  });

  it('an async onChange that rejects is logged as a throw is, not left an unhandled rejection; the monitor keeps electing', async () => {
    const node = track();
    const [a, b] = (await candidates(node, 2)) as [Pid, Pid];
    const m = await monitorLeader(node, {
      candidates: [a, b],
      onChange: async ({ term }: Leadership) => {
        await Promise.resolve();
        throw new Error(`callback ${term}`);
      },
    });
    const changed = m.whenChanged(1);
    node.exit(a, 'kill');
    expect(await changed).toEqual({ leader: b, term: 2 });
    await node.idle();
    const warn = (node.logger as unknown as { warn: { mock: { calls: unknown[][] } } }).warn.mock.calls;
    expect(warn.map((c) => c[0])).toEqual([`leader monitor ${m.name}: onChange threw for term 1`, `leader monitor ${m.name}: onChange threw for term 2`]);
    expect(warn.map((c) => (c[1] as Error).message)).toEqual(['callback 1', 'callback 2']);
    await m.stop();
    expectNoLeaks(node);
  });

  it('a sparse candidates array (a hole) throws at once, naming the hole', async () => {
    const node = track();
    const [a] = (await candidates(node, 1)) as [Pid];
    const sparse: unknown[] = [];
    sparse[1] = a;
    expectKeelError(thrown(() => monitorLeader(node, { candidates: sparse as never })), 'ERR_INVALID_ARGUMENT', '`options.candidates[0]`');
  });

  it('a misspelt option is refused, never silently ignored (onchange is not onChange; electLeader takes no onChange)', async () => {
    const node = track();
    const [a] = (await candidates(node, 1)) as [Pid];
    const onChange = (): void => undefined;
    expectKeelError(thrown(() => monitorLeader(node, { candidates: [a], onchange: onChange } as never)), 'ERR_INVALID_ARGUMENT', '`options.onchange`');
    expectKeelError(thrown(() => electLeader(node, { candidates: [a], onChange } as never)), 'ERR_INVALID_ARGUMENT', '`options.onChange`');
  });

  it('candidates or options it cannot read (revoked proxies) throw ERR_INVALID_ARGUMENT at once', () => {
    const node = track();
    expectKeelError(thrown(() => monitorLeader(node, { candidates: revokedProxy() as never })), 'ERR_INVALID_ARGUMENT', '`options.candidates`');
    expectKeelError(thrown(() => monitorLeader(node, revokedProxy() as never)), 'ERR_INVALID_ARGUMENT', '`options');
  });

  it('started from a process, it goes with that process (linked), leaving nothing behind', async () => {
    const node = track();
    const [a] = (await candidates(node, 1)) as [Pid];
    const { pid, ctx } = await spawnWithContext(node);
    const m = await monitorLeader(ctx, { candidates: [a] });
    const electionPid = m.pid;
    node.exit(pid, 'kill');
    await node.idle();
    expect(node.isAlive(electionPid)).toBe(false);
    expectNoLeaks(node);
  });

  it('throws at once for bad options', () => {
    const node = track();
    const pid = idler(node);
    expectKeelError(thrown(() => monitorLeader(node, { candidates: [pid], onChange: 3 as never })), 'ERR_INVALID_ARGUMENT', '`options.onChange`');
    expectKeelError(thrown(() => monitorLeader(node, { candidates: [] })), 'ERR_INVALID_ARGUMENT', '`options.candidates`');
    expectKeelError(thrown(() => monitorLeader(node, { candidates: [pid], retryMs: Number.NaN })), 'ERR_INVALID_ARGUMENT', '`options.retryMs`');
    node.exit(pid, 'kill');
  });
});
