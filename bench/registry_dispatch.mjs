// registry_dispatch: dispatch calls per second over one key of a duplicate Registry holding 100,000
// entries (10,000 processes registering it 10 times each), with 10,000 more entries under 1,000
// other keys beside it, so that a dispatch costing more than the key's own entries would show.
// Each call's callback reads every entry's value (a sum, checked). Baseline: a Map from key to an
// array of { pid, value } with the same entries, the same callback over the array.
const PROCS = 10_000;
const PER_PROC = 10;
const OTHER_KEYS = 1_000;
const WARMUP = 50;
const CALLS = 1_000;

function measure(dispatch) {
  let sum = 0;
  const fn = (entries) => {
    for (let i = 0; i < entries.length; i++) sum += entries[i].value;
  };
  for (let i = 0; i < WARMUP; i++) dispatch('hot', fn);
  sum = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < CALLS; i++) dispatch('hot', fn);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const expected = CALLS * PROCS * PER_PROC;
  if (sum !== expected) throw new Error(`registry_dispatch: summed ${sum}, expected ${expected}`);
  return { ops_per_s: CALLS / seconds, entries_per_s: (CALLS * PROCS * PER_PROC) / seconds, entries: PROCS * PER_PROC, other_entries: PROCS };
}

export async function registryDispatch(system, sys) {
  if (system === 'raw') {
    const table = new Map();
    const put = (key, entry) => {
      const list = table.get(key);
      if (list === undefined) table.set(key, [entry]);
      else list.push(entry);
    };
    for (let p = 0; p < PROCS; p++) {
      const pid = { node: 'bench', creation: 1, id: p + 1 };
      for (let j = 0; j < PER_PROC; j++) put('hot', { pid, value: 1 });
      put(`k${p % OTHER_KEYS}`, { pid, value: 1 });
    }
    return measure((key, fn) => {
      const list = table.get(key);
      if (list === undefined || list.length === 0) return false;
      fn(list);
      return true;
    });
  }
  const { Registry } = await import('../dist/index.js');
  const { node } = sys;
  const reg = Registry.create(node, { keys: 'duplicate' });
  const init = (ctx) => {
    for (let j = 0; j < PER_PROC; j++) reg.register(ctx, 'hot', 1);
    reg.register(ctx, `k${ctx.self.id % OTHER_KEYS}`, 1);
    return () => {};
  };
  for (let p = 0; p < PROCS; p++) node.spawn(init);
  await node.idle();
  if (reg.count() !== PROCS * (PER_PROC + 1)) throw new Error(`registry_dispatch: ${reg.count()} entries`);
  return measure((key, fn) => reg.dispatch(key, fn));
}
