import { checkTarget, nameOf } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from './component.js';
import { schedulerSpec } from './scheduler/server.js';
import type { AgentSchedulerHandle, AgentSchedulerOptions, ScheduledSendOptions, SchedulerProtocol } from './scheduler/types.js';
import { checkId, checkInterval, periodicOptions, validateOptions } from './scheduler/validate.js';
import { type AgentStore, encodeValue } from './store/AgentStore.js';
import { agentStoreFor } from './store/stores.js';

export {
  MAX_CATCH_UP,
  type AgentSchedulerHandle,
  type AgentSchedulerOptions,
  type AgentSchedulerStats,
  type MissedPolicy,
  type PeriodicOptions,
  type RegisterResult,
  type ScheduledSendOptions,
  type ScheduleInfo,
  type SchedulerProtocol,
} from './scheduler/types.js';




/** Starts the server and makes its handle (options already validated). */
async function startScheduler(from: Node | Context<any>, node: Node, name: string, sendOptions: ScheduledSendOptions, store: AgentStore | undefined): Promise<AgentSchedulerHandle> {
  const pid = await startComponent(from, schedulerSpec, { name, sendOptions, store }, name);
  const call = componentCaller<SchedulerProtocol>(node, name);
  return componentHandle<AgentSchedulerHandle>(node, name, pid, {
    registerPeriodic(agent, id, intervalMs, message, opts) {
      checkTarget(agent, 'agent');
      checkId(id);
      checkInterval(intervalMs);
      const { jitter, missed } = periodicOptions(opts, intervalMs);
      // a schedule by name is kept in the store: its message must be plain data (refused here, at the call)
      if (store !== undefined && nameOf(agent) !== undefined) encodeValue(message, 'message');
      return call({ type: 'register', agent, id, intervalMs, message, jitter, missed });
    },
    unregister(agent, id) {
      checkTarget(agent, 'agent');
      checkId(id);
      return call({ type: 'unregister', agent, id });
    },
    unregisterAgent(agent) {
      checkTarget(agent, 'agent');
      return call({ type: 'unregister_agent', agent });
    },
    updateInterval(agent, id, intervalMs) {
      checkTarget(agent, 'agent');
      checkId(id);
      checkInterval(intervalMs);
      return call({ type: 'update_interval', agent, id, intervalMs });
    },
    forceExecution(agent, id) {
      checkTarget(agent, 'agent');
      checkId(id);
      return call({ type: 'force', agent, id });
    },
    list(agent) {
      checkTarget(agent, 'agent');
      return call({ type: 'list', agent });
    },
    stats: () => call({ type: 'stats' }),
  });
}

/**
 * AgentScheduler: periodic messages to agents. Each schedule has one timer chain at any time (a
 * generation token retires the old chain on `forceExecution` and `updateInterval`); due times are
 * aligned to the interval, jitter delays a firing without moving the schedule; deliveries go
 * through supervised send from the scheduler; everything of an agent goes when it dies.
 * See docs/agents/AgentScheduler.md.
 *
 * @example
 * ```ts
 * const scheduler = await AgentScheduler.start(node);
 * const worker = await Agent.start(node, { capabilities: [], runTask, onMessage: (m) => m === 'heartbeat' && beat() });
 * await scheduler.registerPeriodic(worker.pid, 'heartbeat', 1000, 'heartbeat', { jitter: 50, missed: 'skip' }); // 'ok'
 * await scheduler.forceExecution(worker.pid, 'heartbeat');  // delivered now; next in 1000 ms
 * await scheduler.list(worker.pid);                         // [{ id: 'heartbeat', intervalMs: 1000, generation: 2, ... }]
 * ```
 */
export const AgentScheduler = {
  /** Starts a scheduler, supervised by the calling process's supervisor (from a context) or by the node's. */
  start(from: Node | Context<any>, options?: AgentSchedulerOptions): Promise<AgentSchedulerHandle> {
    const o = validateOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'agent_scheduler', o.name);
    // opened now: a store that cannot be opened is a typed error of the start (ERR_STORE_UNAVAILABLE, ERR_PEER_MISSING)
    const store = agentStoreFor(node, o.store);
    return startScheduler(from, node, name, o.sendOptions ?? {}, store);
  },
};
