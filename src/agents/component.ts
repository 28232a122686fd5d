import { InvalidArgumentError } from '../errors.js';
import { DynamicSupervisor } from '../otp/DynamicSupervisor.js';
import { GenServer, type CallProtocol, type GenServerSpec, type ServerPid } from '../otp/GenServer.js';
import { isProcess, kernelOf, type Kernel } from '../runtime/kernel.js';
import { refuseReserved } from '../runtime/NameRegistry.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';

/**
 * @internal How every agent-layer component starts (DESIGN.md "Agent layer"): from a process
 * context (typically a supervisor's child `start`) it is started linked to that process, so the
 * caller's supervisor supervises it; from a node it runs under the node's `keel.agents` dynamic
 * supervisor (started on first use) as a permanent child. Either way it is registered under a
 * unique name, and its handle addresses it by that name, so a restarted component is found again.
 * A restart begins with fresh state, as in OTP.
 */

const supervisors = new WeakMap<Node, Promise<Pid>>();
const counters = new WeakMap<Node, number>();

/** A fresh name for a component of `kind` on `node`: `keel.<kind>.<n>`. */
export function componentName(node: Node, kind: string): string {
  let name: string;
  do {
    const n = (counters.get(node) ?? 0) + 1;
    counters.set(node, n);
    name = `keel.${kind}.${n}`;
  } while (node.registry.whereis(name) !== undefined);
  return name;
}

/** The node's `keel.agents` dynamic supervisor, started (again, if it gave up) on first use. */
function agentsSupervisor(node: Kernel): Promise<Pid> {
  const known = supervisors.get(node);
  const alive = node.registry.whereis('keel.agents');
  if (known !== undefined && alive !== undefined) return known;
  const started =
    alive !== undefined ? Promise.resolve(alive) : node.registry.asKeel(() => DynamicSupervisor.start(node, { name: 'keel.agents', maxRestarts: 10, withinMs: 5000 }));
  supervisors.set(node, started);
  started.catch(() => supervisors.delete(node));
  return started;
}

/** Validates `options.name` (a non-empty string outside Keel's own `keel.` names) or makes one. */
export function nameFor(node: Node, kind: string, name: unknown): string {
  if (name === undefined) return componentName(node, kind);
  if (typeof name !== 'string' || name === '') throw new InvalidArgumentError('options.name', 'a non-empty string', name);
  refuseReserved(name);
  return name;
}

/** Starts `spec` as a supervised component registered under `name` (see the file comment). */
export async function startComponent<S, P extends CallProtocol, Cast, Arg>(
  from: Node | Context<any>,
  spec: GenServerSpec<S, P, Cast, Arg>,
  arg: Arg,
  name: string,
): Promise<ServerPid<P, Cast>> {
  // the name was checked by nameFor: a default one is Keel's own, under `keel.`
  const node = kernelOf(from);
  const registry = node.registry;
  if (isProcess(from)) return registry.asKeel(() => GenServer.startLink(from as Context<any>, spec, arg, { name }));
  const sup = await agentsSupervisor(node);
  const pid = await DynamicSupervisor.startChild(node, sup, {
    id: name,
    start: (ctx) => registry.asKeel(() => GenServer.startLink(ctx, spec, arg, { name })),
    restart: 'permanent',
  });
  return pid as ServerPid<P, Cast>;
}

/** The node (its kernel) a component is started on; throws for a `from` that is neither a node nor a live context. */
export function componentNode(from: Node | Context<any>): Kernel {
  return kernelOf(from);
}
