// agent_registry_query: capability queries per second over an AgentRegistry holding 100,000
// registered agents (100,000 processes, one registration each) with mixed capabilities: agent i has
// `c<i % 100>` (each held by 1% of the agents), `g<i % 7>` and `h<i % 13>`, a kind, a team and a role.
// One op = `registry.query({ capability: 'c42' })`, answering the 1,000 matching entries (checked).
// Baseline: what a hand-written program does: a Map from capability to a Set of plain entries, the
// set materialized into an array. `scan_ops_per_s`: the same answer by a linear filter over the
// 100,000 plain objects, to show the registry's query is an index lookup, not a scan.
// `after_change_ops_per_s`: Keel's query right after a heartbeat of one of the 1,000 agents it
// answers (the registry keeps each capability's answer until one of its entries changes; this is
// the cost of rebuilding it), timed alone.
const AGENTS = 100_000;
const CAP = 'c42';
const EXPECTED = AGENTS / 100;
const WARMUP = 200;
const OPS = 20_000;
const SCAN_OPS = 200;
const CHANGED_OPS = 500;

function metaOf(i) {
  return { capabilities: [`c${i % 100}`, `g${i % 7}`, `h${i % 13}`], kinds: [`k${i % 5}`], team: `t${i % 50}`, role: i % 10 === 0 ? 'lead' : 'member' };
}

function measure(ops, query) {
  for (let i = 0; i < WARMUP; i++) query();
  let n = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < ops; i++) n += query().length;
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  if (n !== ops * EXPECTED) throw new Error(`agent_registry_query: ${n / ops} entries per query, expected ${EXPECTED}`);
  return ops / seconds;
}

export async function agentRegistryQuery(system, sys) {
  if (system === 'raw') {
    const byCap = new Map();
    const all = [];
    for (let i = 0; i < AGENTS; i++) {
      const entry = { key: `a${i}`, pid: { node: 'bench', creation: 1, id: i + 1 }, meta: metaOf(i) };
      all.push(entry);
      for (const c of entry.meta.capabilities) {
        let set = byCap.get(c);
        if (set === undefined) byCap.set(c, (set = new Set()));
        set.add(entry);
      }
    }
    const ops_per_s = measure(OPS, () => {
      const out = [];
      for (const e of byCap.get(CAP) ?? []) out.push(e);
      return out;
    });
    const scan_ops_per_s = measure(SCAN_OPS, () => all.filter((e) => e.meta.capabilities.includes(CAP)));
    return { ops_per_s, scan_ops_per_s, agents: AGENTS, matches: EXPECTED };
  }
  const { AgentRegistry } = await import('../dist/index.js');
  const { node } = sys;
  const registry = await AgentRegistry.start(node);
  const idle = () => () => {};
  for (let start = 0; start < AGENTS; start += 1000) {
    const batch = [];
    for (let i = start; i < start + 1000; i++) batch.push(registry.register(node.spawn(idle), metaOf(i), { key: `a${i}` }));
    await Promise.all(batch);
  }
  if (registry.count() !== AGENTS) throw new Error(`agent_registry_query: ${registry.count()} agents registered`);
  const ops_per_s = measure(OPS, () => registry.query({ capability: CAP }));
  // the same query right after a heartbeat (a new load) of one of its agents: the kept answer is rebuilt
  let seconds = 0;
  for (let r = 0; r < CHANGED_OPS; r++) {
    await registry.heartbeat(`a${42 + 100 * (r % EXPECTED)}`, { load: r });
    const t0 = process.hrtime.bigint();
    const n = registry.query({ capability: CAP }).length;
    seconds += Number(process.hrtime.bigint() - t0) / 1e9;
    if (n !== EXPECTED) throw new Error(`agent_registry_query: ${n} entries after a change`);
  }
  return { ops_per_s, after_change_ops_per_s: CHANGED_OPS / seconds, agents: AGENTS, matches: EXPECTED };
}
