// Keel plugged into the shared workloads' adapter contract (../shared/bench/workloads.mjs).
import { createNode } from '../dist/index.js';

export function createSystem() {
  const node = createNode({ name: 'bench' });
  const inits = new WeakMap();
  const initFor = (handler) => {
    let init = inits.get(handler);
    if (init === undefined) {
      init = () => handler;
      inits.set(handler, init);
    }
    return init;
  };
  return {
    node,
    spawn: (handler) => node.spawn(initFor(handler)),
    send: (pid, msg) => node.send(pid, msg),
    ask: (pid, makeMsg) => new Promise((resolve) => node.send(pid, makeMsg(resolve))),
    reply: (replyTo, value) => replyTo(value),
    stop: (pid) => node.exit(pid, 'shutdown'),
    settle: () => node.idle(),
    shutdown: () => node.shutdown(),
  };
}
