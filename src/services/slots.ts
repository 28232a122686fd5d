import { DeadLetterService } from '../delivery/DeadLetterQueue.js';
import { deadLetterProcessSpec, DLQ_PROCESS } from '../delivery/deadLetterProcess.js';
import { ManagedMonitors, leakCheckerSpec } from '../monitors/MonitorManager.js';
import { GenServer } from '../otp/GenServer.js';
import type { ChildSpec } from '../otp/internal/children.js';
import { Supervisor } from '../otp/Supervisor.js';
import { type Kernel, kernelOf, type ServiceSlots } from '../runtime/kernel.js';
import type { ServicesOptions } from '../runtime/serviceSlots.js';
import type { Node } from '../runtime/types.js';

/**
 * @internal The factories `keel`'s `createNode` plugs into a node's service slots. The services'
 * state lives in node-owned tables; their processes (which own only timers) run under one services
 * supervisor, `keel.services`, started on first use, the monitor manager first.
 */
const RESTART_PAUSE_MS = 1000;

export function serviceSlots(options: boolean | ServicesOptions | undefined): ServiceSlots {
  if (options === false) return {};
  const opts = typeof options === 'object' && options !== null ? options : {};
  let monitors: ManagedMonitors | undefined;
  let deadLetters: DeadLetterService | undefined;
  let started = false;
  const start = (node: Kernel): void => {
    if (started || node.stopping) return;
    started = true;
    type Ctx = Parameters<typeof GenServer.startLink>[0];
    const children: ChildSpec[] = [];
    if (monitors !== undefined) children.push({ id: 'monitor_manager', start: (ctx: Ctx) => GenServer.startLink(ctx, leakCheckerSpec(monitors!)) });
    if (deadLetters !== undefined) {
      children.push({
        id: 'dead_letter_queue',
        start: (ctx: Ctx) => node.registry.asKeel(() => GenServer.startLink(ctx, deadLetterProcessSpec(deadLetters!), undefined, { name: DLQ_PROCESS })),
      });
    }
    node.registry.asKeel(() => Supervisor.start(node, children, { name: 'keel.services', maxRestarts: 10, withinMs: 5000 })).then(
      (pid) => {
        // if the services supervisor itself gives up (a crash loop past its intensity), it is started
        // again on the next use, and after a pause when the dead letter queue has work waiting
        node.onExit(pid, (reason) => {
          started = false;
          monitors?.stopped();
          deadLetters?.stopped();
          if (node.stopping) return;
          node.logger.error(`the services of node ${node.name} stopped (${String(reason)}); they start again on next use`);
          node.setTimer(RESTART_PAUSE_MS, () => {
            if (deadLetters?.hasWork() === true) start(node);
          }, true);
        });
      },
      (e: unknown) => {
        started = false;
        monitors?.stopped();
        deadLetters?.stopped();
        // a shutdown that came while they started stopped them: nothing failed (as for an exit above)
        if (node.stopping) return;
        node.logger.error(`the services of node ${node.name} failed to start`, e);
      },
    );
  };
  return {
    monitors: (node: Node) => {
      const keel = kernelOf(node, 'node');
      monitors = new ManagedMonitors(keel, opts.monitors, () => start(keel));
      return monitors;
    },
    deadLetters: (node: Node) => {
      const keel = kernelOf(node, 'node');
      deadLetters = new DeadLetterService(keel, opts.deadLetters, () => start(keel));
      // a durable store may hold entries from an earlier run: its retries start with the node
      if (deadLetters.hasWork()) start(keel);
      return deadLetters;
    },
  };
}
