import { InvalidArgumentError } from '../errors.js';
import { DynamicSupervisor } from '../otp/DynamicSupervisor.js';
import { GenServer, type CallProtocol, type GenServerSpec, type ReplyOf, type ServerPid } from '../otp/GenServer.js';
import { isProcess, kernelOf, type Kernel } from '../runtime/kernel.js';
import { refuseReserved } from '../runtime/NameRegistry.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, MailboxOptions, Node } from '../runtime/types.js';

/**
 * @internal How every agent-layer component starts (DESIGN.md "Agent layer"): from a process
 * context (typically a supervisor's child `start`) it is started linked to that process, so the
 * caller's supervisor supervises it; from a node it runs under the node's `keel.agents` dynamic
 * supervisor (started on first use) as a transient child: restarted after a crash or a kill, as
 * OTP restarts a transient child, not after a stop. Either way it is registered under a
 * unique name, and its handle addresses it by that name, so a restarted component is found again.
 * A component's state is kept in a table its node holds under that name
 * (`internal/componentState.ts`), so a restart resumes it; a `normal` stop releases it.
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

/**
 * Starts `spec` as a supervised component registered under `name` (see the file comment); with
 * `mailbox` (checked, a plain copy), its process's mailbox is bounded, at each restart too.
 */
export async function startComponent<S, P extends CallProtocol, Cast, Arg>(
  from: Node | Context<any>,
  spec: GenServerSpec<S, P, Cast, Arg>,
  arg: Arg,
  name: string,
  mailbox?: MailboxOptions,
): Promise<ServerPid<P, Cast>> {
  // the name was checked by nameFor: a default one is Keel's own, under `keel.`
  const node = kernelOf(from);
  const registry = node.registry;
  const options = mailbox === undefined ? { name } : { name, mailbox };
  if (isProcess(from)) return registry.asKeel(() => GenServer.startLink(from as Context<any>, spec, arg, options));
  const sup = await agentsSupervisor(node);
  const pid = await DynamicSupervisor.startChild(node, sup, {
    id: name,
    start: (ctx) => registry.asKeel(() => GenServer.startLink(ctx, spec, arg, options)),
    restart: 'transient',
  });
  return pid as ServerPid<P, Cast>;
}

/** The node (its kernel) a component is started on; throws for a `from` that is neither a node nor a live context. */
export function componentNode(from: Node | Context<any>): Kernel {
  return kernelOf(from);
}

// ---- handles ----------------------------------------------------------------------------------

/** What every component's handle has: its registered name, and its pid now. */
export interface ComponentHandle<P extends Pid = Pid> {
  /** The component's current pid: found again by name after a restart. */
  readonly pid: P;
  readonly name: string;
}

/**
 * A component's handle `H`: its `methods`, after its `name` and a `pid` getter that looks the
 * component up by name, so that the handle follows restarts. While no process is registered under
 * the name (between a crash and the restart, or once it stopped) the getter answers the last pid
 * it saw, first the one it `started` with.
 */
export function componentHandle<H extends ComponentHandle<any>>(node: Node, name: string, started: H['pid'], methods: Omit<H, 'pid' | 'name'>): H {
  let pid = started;
  const handle: ComponentHandle<H['pid']> = {
    get pid() {
      pid = (node.registry.whereis(name) as H['pid'] | undefined) ?? pid;
      return pid;
    },
    name,
  };
  return Object.assign(handle, methods) as H;
}

/** A component's answer as its caller gets it: a typed error the server answered in place of a reply is thrown. */
export function unwrapReply<T>(reply: T): Exclude<T, Error> {
  if (reply instanceof Error) throw reply;
  return reply as Exclude<T, Error>;
}

/**
 * Calls to the component registered as `name`, from the node (so a restarted component is called
 * by its handle too), with `defaults` as the call options unless a call gives its own. A typed error
 * the component answers (a request it refused) is thrown: see {@link unwrapReply}.
 */
export function componentCaller<P extends CallProtocol>(node: Node, name: string, defaults?: { timeout?: number }) {
  return <const R extends P['request']>(request: R, options?: { timeout?: number; signal?: AbortSignal }): Promise<Exclude<ReplyOf<P, R>, Error>> =>
    GenServer.call<P, R>(node, name, request, options ?? defaults).then(unwrapReply);
}
