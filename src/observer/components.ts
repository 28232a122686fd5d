/**
 * The agent components of a node, found and read for the observer: every process whose behaviour
 * marks it as a component (`markComponent`: signal routers, agent schedulers, coordinators,
 * coordination managers, agent registries, resource pools) answers the `observe` system call with a snapshot of its state. One pass
 * over the processes, one call per component, each bounded by {@link COMPONENT_CALL_TIMEOUT_MS}.
 */
import { isKeelError } from '../errors.js';
import { sysObserve } from '../otp/Sys.js';
import { exitReportOf, type Kernel } from '../runtime/kernel.js';
import { Pid } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';
import { ApiError, nameText } from './http.js';
import { callErrorCode, SharedCalls } from './calls.js';

/** How long the observer waits for one component's snapshot (a busy one shows `error: 'timeout'`). */
export const COMPONENT_CALL_TIMEOUT_MS = 1000;

export type ComponentPage = 'router' | 'schedules' | 'workflows' | 'circuits' | 'agents' | 'pools';

const PAGES: Record<ComponentPage, { kind: string; list: string; what: string }> = {
  router: { kind: 'signal_router', list: 'routers', what: 'signal router' },
  schedules: { kind: 'agent_scheduler', list: 'schedulers', what: 'agent scheduler' },
  workflows: { kind: 'coordinator', list: 'coordinators', what: 'coordinator' },
  circuits: { kind: 'coordination_manager', list: 'managers', what: 'coordination manager' },
  agents: { kind: 'agent_registry', list: 'registries', what: 'agent registry' },
  pools: { kind: 'resource_pool', list: 'pools', what: 'resource pool' },
};

/** Every agent component of the node: `{ kind, name, pid }`, oldest first (no call: what each process is). */
export function listComponents(node: Node, kernel: Kernel): { kind: string; name: string | null; pid: string }[] {
  const out = [];
  for (const pid of node.processes()) {
    const p = kernel.resolve(pid);
    const kind = p === undefined ? undefined : exitReportOf(p)?.component;
    if (kind !== undefined) out.push({ kind, name: nameText(node.info(pid)?.name), pid: Pid.format(pid) });
  }
  return out;
}

/** The live components of `kind` on the node, oldest first. */
export function componentsOf(node: Node, kernel: Kernel, kind: string): Pid[] {
  const out: Pid[] = [];
  for (const pid of node.processes()) {
    const p = kernel.resolve(pid);
    if (p !== undefined && exitReportOf(p)?.component === kind) out.push(pid);
  }
  return out;
}

/**
 * The page's components, each `{ name, pid, ...its snapshot }` (or `{ name, pid, error }`);
 * 503 `service_unavailable` when none runs on the node.
 */
export async function readComponents(node: Node, kernel: Kernel, page: ComponentPage, calls: SharedCalls = new SharedCalls(kernel)): Promise<Record<string, unknown>> {
  const { kind, list, what } = PAGES[page];
  const pids = componentsOf(node, kernel, kind);
  if (pids.length === 0) throw new ApiError('service_unavailable', `no ${what} runs on this node`);
  const rows = await Promise.all(
    pids.map(async (pid) => {
      const head = { name: nameText(node.info(pid)?.name), pid: Pid.format(pid) };
      try {
        const snapshot = await calls.call(`observe ${head.pid}`, (limitMs) => sysObserve(node, pid, limitMs), COMPONENT_CALL_TIMEOUT_MS);
        return { ...head, ...(typeof snapshot === 'object' && snapshot !== null ? snapshot : {}) };
      } catch (e) {
        return { ...head, error: isKeelError(e) || typeof (e as { code?: unknown }).code === 'string' ? callErrorCode(e) : 'failed' };
      }
    }),
  );
  return { [list]: rows };
}
