// One measurement in a fresh process: `node --expose-gc bench/worker.mjs <keel|raw> <bench>`.
// Prints one JSON line: { bench, system, ops_per_s, ...extra }.
import * as workloads from './workloads.mjs';
import * as raw from './raw-baseline.mjs';
import * as keel from './keel-adapter.mjs';
import { monitorDemonitor } from './monitor_demonitor.mjs';
import { genserverCall } from './genserver_call.mjs';
import { statemCallBench } from './statem_call.mjs';
import { supervisorRestart } from './supervisor_restart.mjs';
import { managedMonitor } from './managed_monitor.mjs';
import { coordinatorTasks } from './coordinator.mjs';
import { broadcast10k, dlqIngest, supervisedSend } from './delivery.mjs';
import { routerFanout } from './router_fanout.mjs';
import { registryDispatch } from './registry_dispatch.mjs';
import { agentRegistryQuery } from './agent_registry.mjs';
import { scale2Threads, threadSend } from './thread.mjs';
import { remoteCall, remoteSend } from './remote.mjs';
import { observed } from './observed.mjs';

const [system, bench] = process.argv.slice(-2);
const sys = bench === 'managed_monitor' ? keel.createSystem({ captureStacks: false }) : (system === 'raw' ? raw : keel).createSystem();

async function run() {
  switch (bench) {
    case 'pingpong':
    case 'ring':
    case 'fanout': {
      const r = await workloads[bench](sys, workloads.defaults[bench]);
      return { ops_per_s: r.n / r.seconds };
    }
    case 'spawn':
    case 'stop': {
      const [spawned, stopped] = await workloads.spawn(sys, workloads.defaults.spawn);
      // the same again in the same process, compiled by now: the warm figure (informational)
      const [warmSpawned, warmStopped] = await workloads.spawn(sys, workloads.defaults.spawn);
      return bench === 'spawn'
        ? { ops_per_s: spawned.n / spawned.seconds, bytes_per_process: spawned.heap_bytes_per_actor, warm_ops_per_s: warmSpawned.n / warmSpawned.seconds }
        : { ops_per_s: stopped.n / stopped.seconds, bytes_per_process_after_stop: stopped.heap_bytes_per_actor_after_stop, warm_ops_per_s: warmStopped.n / warmStopped.seconds };
    }
    case 'pingpong_observed':
      return observed(system, sys, async () => {
        const r = await workloads.pingpong(sys, workloads.defaults.pingpong);
        return { ops_per_s: r.n / r.seconds };
      });
    case 'genserver_call_observed':
      return observed(system, sys, () => genserverCall(system, sys, false));
    case 'monitor_demonitor':
      return monitorDemonitor(system, sys);
    case 'genserver_call':
      return genserverCall(system, sys);
    case 'statem_call':
      return statemCallBench(system, sys);
    case 'supervisor_restart':
      return supervisorRestart(sys);
    case 'coordinator_tasks':
      return coordinatorTasks(system, sys, false);
    case 'coordinator_tasks_chaos':
      return coordinatorTasks(system, sys, true);
    case 'router_fanout':
      return routerFanout(system, sys);
    case 'supervised_send_enqueued':
      return supervisedSend(system, keel.createSystem(), 'enqueued');
    case 'supervised_send_handled':
      return supervisedSend(system, keel.createSystem(), 'handled');
    case 'broadcast_10k':
      return broadcast10k(system, keel.createSystem());
    case 'dlq_ingest_memory':
      return dlqIngest(system, 'memory');
    case 'dlq_ingest_sqlite':
      return dlqIngest(system, 'sqlite');
    case 'registry_dispatch':
      return registryDispatch(system, sys);
    case 'agent_registry_query':
      return agentRegistryQuery(system, sys);
    case 'thread_send':
      return threadSend(system);
    case 'scale_2_threads':
      return scale2Threads(system);
    case 'remote_send':
      return remoteSend(system);
    case 'remote_call':
      return remoteCall(system);
    case 'managed_monitor':
      return managedMonitor(system, system === 'raw' ? keel.createSystem({ captureStacks: false }) : sys);
    default:
      throw new Error(`unknown bench ${bench}`);
  }
}

const result = await run();
await sys.shutdown?.();
console.log(JSON.stringify({ bench, system, ...result }));
process.exit(0);
