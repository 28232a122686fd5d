import { describe, expect, it } from 'vitest';
import { Agent } from '../../../src/agents/Agent.js';
import { createHierarchy, hierarchyBroadcast, isRegistryHierarchy, type HierarchyBroadcastOutcome } from '../../../src/agents/patterns/index.js';
import { AgentRegistry, type AgentRegistryHandle, GenServer, isDown, type Node, type Pid, Supervisor } from '../../../src/index.js';
import { probe } from '../../../src/testing/index.js';
import { expectKeelError, failure, idler, useNodes } from '../../support.js';

const track = useNodes();

const summary = (r: HierarchyBroadcastOutcome): string[] => r.results.map((d) => `${d.key} ${d.role}@${d.team}/${d.teamName} ${d.outcome.ok ? 'ok' : 'failed'}`);

/** An idle process registered under `key` (no team, no role). */
async function member(node: Node, registry: AgentRegistryHandle, key: string): Promise<Pid> {
  const pid = idler(node);
  await registry.register(pid, {}, { key });
  return pid;
}

/** A supervisor whose agent registers under `key` at each start, with no team or role (they are recorded by the hierarchy). */
function supervisedLead(node: Node, registry: AgentRegistryHandle, key: string): Promise<Pid> {
  return Supervisor.start(node, [
    {
      id: key,
      start: async (ctx) => {
        const agent = await Agent.start(ctx, { name: key, capabilities: [], runTask: () => null });
        await registry.register(agent.pid, { capabilities: ['lead'] }, { key });
        return agent.pid;
      },
    },
  ]);
}

async function org(node: Node) {
  const registry = await AgentRegistry.start(node);
  const boss = await member(node, registry, 'boss');
  const sup = await supervisedLead(node, registry, 'lead-a');
  const m1 = await member(node, registry, 'a1');
  const m2 = await member(node, registry, 'a2');
  const leadB = await member(node, registry, 'lead-b');
  const m3 = await member(node, registry, 'b1');
  // pids and keys both name agents
  const h = await createHierarchy(registry, { name: 'org', supervisor: boss, teams: [{ lead: 'lead-a', members: [m1, m2] }, { lead: leadB, members: ['b1'], name: 'ops' }] });
  return { registry, boss, sup, m1, m2, leadB, m3, h };
}

describe('createHierarchy', () => {
  it('records each agent’s team and role in the registry and answers the hierarchy by key', async () => {
    const node = track();
    const { registry, h, sup } = await org(node);
    expect(isRegistryHierarchy(h)).toBe(true);
    expect([h.name, h.supervisor, h.teams]).toEqual(['org', 'boss', [{ name: 'org/0', lead: 'lead-a', members: ['a1', 'a2'] }, { name: 'ops', lead: 'lead-b', members: ['b1'] }]]);
    const place = (key: string): [string | undefined, string | undefined] => [registry.lookup(key)!.meta.team, registry.lookup(key)!.meta.role];
    expect(['boss', 'lead-a', 'a1', 'a2', 'lead-b', 'b1'].map(place)).toEqual([
      ['org', 'supervisor'],
      ['org/0', 'lead'],
      ['org/0', 'member'],
      ['org/0', 'member'],
      ['ops', 'lead'],
      ['ops', 'member'],
    ]);
    expect(registry.query({ role: 'lead' }).map((e) => e.key)).toEqual(['lead-a', 'lead-b']);
    expect(registry.lookup('lead-a')!.meta.capabilities).toEqual(['lead']); // the rest of its metadata is kept
    expect(h.placeOf('a1')).toEqual({ team: 'org/0', role: 'member' });
    expect(h.placeOf('nobody')).toBeUndefined();
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('refuses an agent that is not registered, one listed twice, a pid with several keys, and a registry that is not one', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const boss = await member(node, registry, 'boss');
    const lead = await member(node, registry, 'lead');
    const stranger = idler(node);
    const twice = idler(node);
    await registry.register(twice, {}, { key: 't1' });
    await registry.register(twice, {}, { key: 't2' });
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead, members: [stranger] }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].members[0]', 'registered');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead: 'ghost', members: [] }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].lead', 'registered');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead, members: ['lead'] }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].members[0]', 'once');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead, members: [twice] }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].members[0]', 't1, t2');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead, members: [1 as never] }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].members[0]');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: 'x' as never })), 'ERR_INVALID_ARGUMENT', 'spec.teams');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [], name: '' })), 'ERR_INVALID_ARGUMENT', 'spec.name');
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expectKeelError(await failure(() => createHierarchy(proxy as never, { supervisor: boss, teams: [] })), 'ERR_INVALID_ARGUMENT', 'registry');
    // specs read without running their code: getters, proxies, unknown keys (__proto__ included)
    const getter = { supervisor: boss, get teams(): never { throw new Error('boom'); } };
    expectKeelError(await failure(() => createHierarchy(registry, getter as never)), 'ERR_INVALID_ARGUMENT', 'spec.teams', 'getter');
    expectKeelError(await failure(() => createHierarchy(registry, new Proxy({ supervisor: boss, teams: [] }, {}) as never)), 'ERR_INVALID_ARGUMENT', 'spec');
    expectKeelError(await failure(() => createHierarchy(registry, JSON.parse('{"supervisor":"boss","teams":[],"__proto__":{}}') as never)), 'ERR_INVALID_ARGUMENT', 'spec.__proto__');
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead, member: [] } as never] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].member');
    const lazy = [lead];
    Object.defineProperty(lazy, 0, { get: () => lead });
    expectKeelError(await failure(() => createHierarchy(registry, { supervisor: boss, teams: [{ lead: 'lead', members: lazy }] })), 'ERR_INVALID_ARGUMENT', 'spec.teams[0].members[0]', 'getter');
    // nothing was recorded by the refused calls
    expect(registry.query({ role: 'lead' })).toEqual([]);
  });
});

describe('hierarchyBroadcast over a registry hierarchy', () => {
  it('reads the roles from the registry at each level', async () => {
    const node = track();
    const { h, sup } = await org(node);
    const all = await hierarchyBroadcast(node, h, { type: 'plan' });
    expect(summary(all)).toEqual(['lead-a lead@0/org/0 ok', 'a1 member@0/org/0 ok', 'a2 member@0/org/0 ok', 'lead-b lead@1/ops ok', 'b1 member@1/ops ok']);
    expect([all.ok, all.delivered, all.failed, all.unregistered]).toEqual([true, 5, 0, []]);
    expect(summary(await hierarchyBroadcast(node, h, { type: 'x' }, { level: 'leads' }))).toEqual(['lead-a lead@0/org/0 ok', 'lead-b lead@1/ops ok']);
    expect(summary(await hierarchyBroadcast(node, h, { type: 'x' }, { level: 'members' }))).toEqual(['a1 member@0/org/0 ok', 'a2 member@0/org/0 ok', 'b1 member@1/ops ok']);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('reaches a restarted lead at its new pid (it registered again under its key, without its role)', async () => {
    const node = track();
    const { registry, h, sup, leadB } = await org(node);
    const before = registry.lookup('lead-a')!.pid;
    const p = probe(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the test awaits this Down
    p.ctx.monitor(before);
    node.exit(before, new Error('crash'));
    await p.receive(isDown);
    await node.idle();
    const after = registry.lookup('lead-a')!.pid;
    expect(after.id).not.toBe(before.id);
    expect(registry.lookup('lead-a')!.meta.role).toBeUndefined(); // its new registration has no role
    const leads = await hierarchyBroadcast(node, h, { type: 'x' }, { level: 'leads', ack: 'handled' });
    expect(leads.results.map((d) => [d.key, d.pid, d.outcome.ok])).toEqual([['lead-a', after, true], ['lead-b', leadB, true]]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('an agent that joined a team in the registry is reached; one that moved to another team is not; an unregistered key is listed apart', async () => {
    const node = track();
    const { registry, h, sup, leadB } = await org(node);
    const newcomer = idler(node);
    await registry.register(newcomer, { team: 'ops', role: 'member' }, { key: 'b2' });
    await registry.update('a2', { team: 'elsewhere' });
    node.exit(leadB, 'kill');
    await node.idle();
    const r = await hierarchyBroadcast(node, h, { type: 'x' });
    expect(summary(r)).toEqual(['lead-a lead@0/org/0 ok', 'a1 member@0/org/0 ok', 'b1 member@1/ops ok', 'b2 member@1/ops ok']);
    expect([r.delivered, r.unregistered]).toEqual([4, ['lead-b']]);
    // a member made lead in the registry is sent as a lead
    await registry.update('b1', { role: 'lead' });
    expect(summary(await hierarchyBroadcast(node, h, { type: 'x' }, { level: 'leads' }))).toEqual(['lead-a lead@0/org/0 ok', 'b1 lead@1/ops ok']);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('a registry query: its leads and members, grouped by team in the order met', async () => {
    const node = track();
    const { registry, sup } = await org(node);
    const r = await hierarchyBroadcast(node, registry.select({ team: 'ops' }), { type: 'x' });
    expect(summary(r)).toEqual(['lead-b lead@0/ops ok', 'b1 member@0/ops ok']);
    const leads = await hierarchyBroadcast(node, registry.select({ role: 'lead' }), { type: 'x' }, { level: 'members' });
    expect(leads.results).toEqual([]); // the supervisor and anyone without lead/member role are never sent
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('a stopped registry: nobody is found, every key is listed as unregistered, nothing is sent', async () => {
    const node = track();
    const { registry, h, sup } = await org(node);
    await GenServer.stop(node, registry.pid, 'normal');
    const r = await hierarchyBroadcast(node, h, { type: 'x' });
    expect([r.ok, r.delivered, r.failed, r.results, r.unregistered]).toEqual([true, 0, 0, [], ['lead-a', 'a1', 'a2', 'lead-b', 'b1']]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('strategies count the agents found now: a quorum above them is not reached, all_or_nothing with a key down sends to nobody', async () => {
    const node = track();
    const { h, sup, leadB } = await org(node);
    const q5 = await hierarchyBroadcast(node, h, { type: 'x' }, { strategy: { quorum: 5 } });
    expect([q5.ok, q5.reason, q5.delivered]).toEqual([true, undefined, 5]);
    const q6 = await hierarchyBroadcast(node, h, { type: 'x' }, { strategy: { quorum: 6 } });
    expect([q6.ok, q6.reason, q6.delivered, q6.failed]).toEqual([false, 'quorum_not_reached', 5, 0]);
    expect(await failure(() => hierarchyBroadcast(node, h, { type: 'x' }, { strategy: { quorum: 0 } }))).toMatchObject({ code: 'ERR_INVALID_ARGUMENT' });
    const whole = await hierarchyBroadcast(node, h, { type: 'x' }, { strategy: 'all_or_nothing' });
    expect([whole.ok, whole.delivered]).toEqual([true, 5]);
    node.exit(leadB, 'kill');
    await node.idle();
    const none = await hierarchyBroadcast(node, h, { type: 'x' }, { strategy: 'all_or_nothing' });
    expect([none.ok, none.reason, none.delivered, none.failed, none.unregistered]).toEqual([false, 'not_all_deliverable', 0, 4, ['lead-b']]);
    expect(none.results.map((d) => d.outcome.ok ? 'ok' : d.outcome.reason)).toEqual(['aborted', 'aborted', 'aborted', 'aborted']);
    // leads only: lead-b is selected and down; members only: it is not selected, so they all get it
    expect((await hierarchyBroadcast(node, h, { type: 'x' }, { strategy: 'all_or_nothing', level: 'members' })).ok).toBe(true);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('the pid-list hierarchy works as before (no keys, no unregistered list)', async () => {
    const node = track();
    const [s, l, m] = [idler(node), idler(node), idler(node)];
    const r = await hierarchyBroadcast(node, { supervisor: s, teams: [{ lead: l, members: [m] }] }, { type: 'x' });
    expect(r.results.map((d) => [d.pid, d.role, d.team, d.key])).toEqual([[l, 'lead', 0, undefined], [m, 'member', 0, undefined]]);
    expect('unregistered' in r).toBe(false);
  });
  it('refuses one process listed under two of its keys (as supervisor and member, or in two teams), naming both keys; nothing recorded', async () => {
    const node = track();
    const registry = await AgentRegistry.start(node);
    const lead = await member(node, registry, 'lead');
    const twice = idler(node);
    await registry.register(twice, {}, { key: 'a' });
    await registry.register(twice, {}, { key: 'b' });
    const specs: [Parameters<typeof createHierarchy>[1], string, string][] = [
      [{ supervisor: 'a', teams: [{ lead, members: ['b'] }] }, 'spec.teams[0].members[0]', "its key 'b' and the key 'a' (`spec.supervisor`)"],
      [{ supervisor: lead, teams: [{ lead: 'a', members: [] }, { lead: 'b', members: [] }] }, 'spec.teams[1].lead', "its key 'b' and the key 'a' (`spec.teams[0].lead`)"],
      [{ supervisor: lead, teams: [{ lead: 'b', members: ['a'] }] }, 'spec.teams[0].members[0]', "its key 'a' and the key 'b' (`spec.teams[0].lead`)"],
    ];
    for (const [spec, argument, keys] of specs) {
      expectKeelError(await failure(() => createHierarchy(registry, spec)), 'ERR_INVALID_ARGUMENT', argument, 'appears once', keys, String(twice));
    }
    expect(registry.query({ health: 'any' }).map((x) => [x.key, x.meta.team, x.meta.role])).toEqual([
      ['lead', undefined, undefined],
      ['a', undefined, undefined],
      ['b', undefined, undefined],
    ]);
  });
});
