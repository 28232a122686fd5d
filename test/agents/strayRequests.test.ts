// The agent layer's components are Keel's own servers: a call or a cast they do not take (a stray
// one, a proxy, a getter that throws) gets an error reply or is reported as an unexpected message,
// and never crashes them.
import { describe, expect, it } from 'vitest';
import { barrier, electLeader } from '../../src/agents/patterns/index.js';
import { Agent, AgentScheduler, CoordinationManager, CoordinatorAgent, GenServer, isKeelError, type Pid, SignalRouter } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { UNREADABLE, useNodes } from '../support.js';

const track = useNodes();

describe("the agent layer's components called or cast to with a request they do not take", () => {
  // found by test/reliability/fuzz.otp.test.ts and fuzz.agents.test.ts: `request?.type` throws on a
  // proxy whose traps throw, and a scheduler (no handleCast) crashed on any cast
  it('answer a call with ERR_INVALID_ARGUMENT, report a cast, and keep running', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.gen_server.unexpected_message', 'keel.process.exited', 'keel.supervisor.child_restarted']);
    const agent = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const components: [string, Pid][] = [
      ['an agent', agent.pid],
      ['a signal router', (await SignalRouter.start(node)).pid],
      ['an agent scheduler', (await AgentScheduler.start(node)).pid],
      ['a coordination manager', (await CoordinationManager.start(node, {})).pid],
      ['a coordinator', (await CoordinatorAgent.start(node, { workers: [] })).pid],
      ['a barrier', (await barrier(node, 2)).pid],
      ['a leader election', (await electLeader(node, { candidates: [agent.pid] })).pid],
    ];
    await node.idle();
    const after = events.events.length;
    const requests: unknown[] = [null, 'stray', ...UNREADABLE.map(([, make]) => make())];
    for (const [name, pid] of components) {
      for (const request of requests) {
        const reply = await GenServer.call(node, pid, request);
        expect(isKeelError(reply, 'ERR_INVALID_ARGUMENT'), `${name} called with ${typeof request}`).toBe(true);
        GenServer.cast(node, pid, request);
      }
    }
    await node.idle();
    for (const [name, pid] of components) expect(node.isAlive(pid), name).toBe(true);
    const later = events.events.slice(after);
    expect(later.filter((e) => e.event !== 'keel.gen_server.unexpected_message')).toEqual([]);
    expect(later).toHaveLength(components.length * requests.length);
  });
});
