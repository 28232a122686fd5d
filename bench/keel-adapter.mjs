// Keel plugged into the shared workloads' adapter contract (bench/workloads.mjs).
import { createNode } from '../dist/index.js';

export function createSystem({ captureStacks = false } = {}) {
  const node = createNode({ name: 'bench', services: { monitors: { captureStacks } } });
  // one init per handler, so that processes sharing a handler share everything (the workloads'
  // spawn bench spawns 100,000 processes with one handler)
  let lastHandler = null;
  let lastInit = null;
  const initFor = (handler) => {
    if (handler !== lastHandler) {
      lastHandler = handler;
      lastInit = () => handler;
    }
    return lastInit;
  };
  return {
    node,
    spawn: (handler) => node.spawn(initFor(handler)),
    send: (pid, msg) => node.send(pid, msg),
    ask: (pid, makeMsg) => new Promise((resolve) => node.send(pid, makeMsg(resolve))),
    reply: (replyTo, value) => replyTo(value),
    // the stop: kill, as `exit(pid, 'kill')` (a kill by someone else is an event, never a log line)
    stop: (pid) => node.exit(pid, 'kill'),
    settle: () => node.idle(),
    shutdown: () => node.shutdown(),
  };
}
