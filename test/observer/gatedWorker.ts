// A worker agent for the workflow pages' tests: task kind `quick` answers at once, `slow` holds its
// task until the test opens the gate (`started` resolves when a slow task began).
import { Agent, type Node } from '../../src/index.js';
import { deferred } from '../support.js';

export async function gatedWorker(node: Node) {
  const started = deferred();
  const gate = deferred();
  const worker = await Agent.start(node, {
    capabilities: [],
    tasks: {
      quick: () => 'ok',
      slow: async () => {
        started.resolve();
        await gate.promise;
        return 'late';
      },
    },
  });
  return { worker, started: started.promise, open: () => gate.resolve() };
}
