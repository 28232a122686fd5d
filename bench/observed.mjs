// pingpong_observed, genserver_call_observed: the same workloads with an observer started before
// them and closed after, no client connected (issue 16: an observer nobody watches costs nothing
// measurable). The raw baseline runs the same workload without one, so the ratio compares with the
// unobserved bench's ratio in the same `npm run bench` run.

/** Runs `measure()` with an observer of the Keel node started (port 0, nobody connected); the baseline runs it bare. */
export async function observed(system, sys, measure) {
  if (system !== 'keel') return measure();
  const observer = await sys.node.observer({ port: 0 });
  try {
    const result = await measure();
    if (observer.clients !== 0) throw new Error(`an observed bench had ${observer.clients} clients connected`);
    return result;
  } finally {
    await observer.close();
  }
}
