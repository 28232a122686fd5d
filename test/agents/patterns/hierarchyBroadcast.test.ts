import { describe, expect, it } from 'vitest';
import { hierarchyBroadcast, type Hierarchy } from '../../../src/agents/patterns/index.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import { probe } from '../../../src/testing/index.js';
import { deadPid, expectKeelError, receiver, revokedProxy, thrown, useNodes, type Receiver } from '../../support.js';

const track = useNodes();

/** A supervisor over two teams: lead0 with m00, m01; lead1 with m10. */
function org(node: Kernel): { hierarchy: Hierarchy; sup: Receiver; by: Record<string, Receiver> } {
  const by: Record<string, Receiver> = {};
  for (const n of ['lead0', 'm00', 'm01', 'lead1', 'm10']) by[n] = receiver(node);
  const sup = receiver(node);
  return {
    sup,
    by,
    hierarchy: {
      supervisor: sup.pid,
      teams: [
        { lead: by.lead0!.pid, members: [by.m00!.pid, by.m01!.pid] },
        { lead: by.lead1!.pid, members: [by.m10!.pid] },
      ],
    },
  };
}

function seen(by: Record<string, Receiver>): string[] {
  return Object.entries(by).filter(([, r]) => r.seen.length > 0).map(([n]) => n);
}

describe('hierarchyBroadcast', () => {
  it.each([
    ['all', ['lead0', 'm00', 'm01', 'lead1', 'm10'], [['lead', 0], ['member', 0], ['member', 0], ['lead', 1], ['member', 1]]],
    ['leads', ['lead0', 'lead1'], [['lead', 0], ['lead', 1]]],
    ['members', ['m00', 'm01', 'm10'], [['member', 0], ['member', 0], ['member', 1]]],
  ] as const)("level '%s' reaches exactly the selected agents, never the supervisor, with one outcome each", async (level, names, roles) => {
    const node = track();
    const { hierarchy, sup, by } = org(node);
    const r = await hierarchyBroadcast(node, hierarchy, 'hello', { level });
    await node.idle();
    expect(seen(by)).toEqual(names);
    for (const n of names) expect(by[n]!.seen.map((s) => s.message)).toEqual(['hello']);
    expect(sup.seen).toEqual([]);
    expect(r).toMatchObject({ ok: true, delivered: names.length, failed: 0 });
    expect(r.results.map((d) => [d.role, d.team])).toEqual(roles);
    expect(r.results.map((d) => d.pid)).toEqual(names.map((n) => by[n]!.pid));
    expect(r.results.every((d) => d.outcome.ok)).toBe(true);
  });

  it("defaults to level 'all'", async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const r = await hierarchyBroadcast(node, hierarchy, 'x');
    await node.idle();
    expect(r.delivered).toBe(5);
    expect(seen(by)).toHaveLength(5);
  });

  it('reports a dead member in its own outcome (noproc) while the others are delivered', async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const dead = deadPid(node);
    const withDead: Hierarchy = { ...hierarchy, teams: [hierarchy.teams[0]!, { lead: hierarchy.teams[1]!.lead, members: [by.m10!.pid, dead] }] };
    const r = await hierarchyBroadcast(node, withDead, 'x', { onError: 'ignore' });
    expect(r).toMatchObject({ ok: true, delivered: 5, failed: 1 });
    const failed = r.results.filter((d) => !d.outcome.ok);
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ pid: dead, role: 'member', team: 1, outcome: { ok: false, reason: 'noproc' } });
  });

  it('with all_or_nothing, one dead agent means nobody receives it, and the result says why', async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const dead = deadPid(node);
    const withDead: Hierarchy = { ...hierarchy, teams: [...hierarchy.teams, { lead: dead, members: [] }] };
    const r = await hierarchyBroadcast(node, withDead, 'x', { strategy: 'all_or_nothing' });
    await node.idle();
    expect(r).toMatchObject({ ok: false, reason: 'not_all_deliverable', delivered: 0, failed: 6 });
    expect(r.results.at(-1)).toMatchObject({ pid: dead, role: 'lead', team: 2, outcome: { reason: 'noproc' } });
    expect(seen(by)).toEqual([]);
  });

  it('sends from a process context too', async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const r = await hierarchyBroadcast(probe(node).ctx, hierarchy, 'x', { level: 'leads', ack: 'handled' });
    expect(r.delivered).toBe(2);
    expect(seen(by)).toEqual(['lead0', 'lead1']);
  });

  it('an empty hierarchy sends nothing and is ok', async () => {
    const node = track();
    const sup = receiver(node);
    expect(await hierarchyBroadcast(node, { supervisor: sup.pid, teams: [] }, 'x')).toEqual({ ok: true, delivered: 0, failed: 0, results: [] });
  });

  it('throws at once for a malformed hierarchy or options, before sending anything', async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const lead = hierarchy.teams[0]!.lead;
    const bad: [unknown, unknown, string][] = [
      [null, {}, 'hierarchy'],
      [{ supervisor: 'boss', teams: [] }, {}, 'hierarchy.supervisor'],
      [{ supervisor: hierarchy.supervisor }, {}, 'hierarchy.teams'],
      [{ supervisor: hierarchy.supervisor, teams: [{ lead: 'x', members: [] }] }, {}, 'hierarchy.teams[0].lead'],
      [{ supervisor: hierarchy.supervisor, teams: [{ lead }] }, {}, 'hierarchy.teams[0].members'],
      [{ supervisor: hierarchy.supervisor, teams: [{ lead, members: [42] }] }, {}, 'hierarchy.teams[0].members[0]'],
      [{ supervisor: hierarchy.supervisor, teams: [{ lead, members: [lead] }] }, {}, 'hierarchy.teams[0].members[0]'],
      [{ supervisor: lead, teams: [{ lead, members: [] }] }, {}, 'hierarchy.teams[0].lead'],
      [hierarchy, { level: 'everyone' }, 'options.level'],
      [hierarchy, { strategy: 'most' }, 'options.strategy'],
      [hierarchy, { strategy: { quorum: 6 } }, 'options.strategy.quorum'],
      [hierarchy, { strategy: 'all_or_nothing', ack: 'handled' }, 'options.ack'],
      [hierarchy, { onError: 'raise' }, 'options.onError'],
      [hierarchy, { retries: -1 }, 'options.retries'],
    ];
    for (const [h, o, argument] of bad) {
      const e = thrown(() => hierarchyBroadcast(node, h as Hierarchy, 'x', o as never));
      expectKeelError(e, 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    }
    expectKeelError(thrown(() => hierarchyBroadcast({} as never, hierarchy, 'x')), 'ERR_INVALID_ARGUMENT', '`from`');
    await node.idle();
    expect(seen(by)).toEqual([]);
  });

  it('a hierarchy that cannot be read (a hole, a revoked proxy, a throwing getter) is ERR_INVALID_ARGUMENT naming the field, and nothing is sent', async () => {
    const node = track();
    const { hierarchy, sup, by } = org(node);
    const team1 = hierarchy.teams[1]!;
    const m = [by.m00!.pid, by.m01!.pid];
    const holed = [m[0], , m[1]];
    const cases: [unknown, string][] = [
      [{ supervisor: sup.pid, teams: [team1, { lead: by.lead0!.pid, members: holed }] }, '`hierarchy.teams[1].members[1]`'],
      [{ supervisor: sup.pid, teams: revokedProxy() }, '`hierarchy.teams`'],
      [{ supervisor: sup.pid, teams: [team1, { lead: by.lead0!.pid, members: revokedProxy() }] }, '`hierarchy.teams[1].members`'],
      [{ supervisor: sup.pid, get teams(): never { throw new Error('getter'); } }, '`hierarchy.teams`'],
      [{ supervisor: sup.pid, teams: [{ get lead(): never { throw new Error('getter'); }, members: [] }] }, '`hierarchy.teams[0].lead`'],
    ];
    for (const [h, field] of cases) expectKeelError(thrown(() => hierarchyBroadcast(node, h as Hierarchy, 'x')), 'ERR_INVALID_ARGUMENT', field);
    await node.idle();
    expect(seen(by)).toEqual([]);
  });
  it('options that cannot be read (a throwing getter, an unreadable quorum) are ERR_INVALID_ARGUMENT naming them, and nothing is sent', async () => {
    const node = track();
    const { hierarchy, by } = org(node);
    const cases: [unknown, string][] = [
      [{ get level(): never { throw new Error('getter'); } }, '`options.level`'],
      [{ get retries(): never { throw new Error('getter'); } }, '`options.retries`'],
      [{ strategy: { get quorum(): never { throw new Error('getter'); } } }, '`options.strategy.quorum`'],
      [{ strategy: revokedProxy() }, '`options.strategy`'],
      [revokedProxy(), '`options`'],
    ];
    for (const [o, field] of cases) expectKeelError(thrown(() => hierarchyBroadcast(node, hierarchy, 'x', o as never)), 'ERR_INVALID_ARGUMENT', field);
    await node.idle();
    expect(seen(by)).toEqual([]);
  });
});
