import { ManagedMonitors, leakCheckerSpec } from '../monitors/MonitorManager.js';
import { GenServer } from '../otp/GenServer.js';
import { Supervisor } from '../otp/Supervisor.js';
import type { KeelNode, ServiceSlots } from '../runtime/Node.js';
import type { ServicesOptions } from '../runtime/services.js';
import type { Node } from '../runtime/types.js';

/**
 * @internal The factories `keel`'s `createNode` plugs into a node's service slots. The services'
 * state lives in node-owned tables; their processes (which own only timers) run under one services
 * supervisor, `keel.services`, started on first use, the monitor manager first.
 */
export function serviceSlots(options: boolean | ServicesOptions | undefined): ServiceSlots {
  if (options === false) return {};
  const opts = typeof options === 'object' && options !== null ? options : {};
  let monitors: ManagedMonitors | undefined;
  let started = false;
  const start = (node: KeelNode): void => {
    if (started || node.stopping) return;
    started = true;
    const children = [{ id: 'monitor_manager', start: (ctx: Parameters<typeof GenServer.startLink>[0]) => GenServer.startLink(ctx, leakCheckerSpec(monitors!)) }];
    Supervisor.start(node, children, { name: 'keel.services', maxRestarts: 10, withinMs: 5000 }).catch((e: unknown) => {
      started = false;
      node.logger.error(`the services of node ${node.name} failed to start`, e);
    });
  };
  return {
    monitors: (node: Node) => {
      const keel = node as KeelNode;
      monitors = new ManagedMonitors(keel, opts.monitors, () => start(keel));
      return monitors;
    },
  };
}
