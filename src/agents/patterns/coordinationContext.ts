import { InvalidArgumentError, isKeelError, readKnownOptions, toError } from '../../errors.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import { isProcess, kernelOf } from '../../runtime/kernel.js';
import type { Context, Node } from '../../runtime/types.js';
import type { CoordinationFailure, CoordinationManagerHandle, CoordinationOutcome } from '../coordination/types.js';
import { afterMs, checkTimeout, readArgument, readTargets } from './shared.js';

/** What each agent of a context is sent. */
export interface CoordinationContextMessage<P = unknown> {
  readonly type: 'coordination_context';
  readonly contextId: string;
  readonly payload: P;
}

export interface CoordinationContextOptions<P = unknown> {
  /** The context's id (default a fresh `ctx-<n>`); each agent's message id is `<id>:<index>`. */
  id?: string;
  /** The agents to send it to: distinct pids or names, at least one. */
  agents: readonly (Pid | string)[];
  payload?: P;
  /** How long to wait for the manager's answer per agent, in ms on the node's clock (default 10000; Infinity waits). */
  timeoutMs?: number;
  /** The sender the agents see (default: the calling process from a context, else the manager's own pid); a live process. */
  sender?: Pid;
}

/** One agent's outcome: the manager's answer, or `coordinator_timeout` / `error` when it gave none in time. */
export type ContextDelivery = { readonly agent: Pid | string } & (
  | CoordinationOutcome
  | { outcome: 'failed'; id: string; reason: Extract<CoordinationFailure, 'coordinator_timeout' | 'coordinator_down'> }
  | { outcome: 'failed'; id: string; reason: 'error'; error: Error }
);

export interface CoordinationContext {
  readonly contextId: string;
  /** One per agent, in the order given. */
  readonly results: ContextDelivery[];
  readonly delivered: number;
  readonly buffered: number;
  readonly failed: number;
}

const OPTIONS = ['id', 'agents', 'payload', 'timeoutMs', 'sender'] as const;
const contexts = new WeakMap<Node, number>();

/**
 * Creates a coordination context: `{ type: 'coordination_context', contextId, payload }` sent to
 * each agent through the CoordinationManager (its circuit breakers, buffers and dead letters apply,
 * one `coordinate` per agent, all at once), and resolves with one outcome per agent, never
 * rejecting for one agent's failure: an agent that is dead or dies while handling it is a
 * `failed` outcome of its own, and the manager goes on serving the others.
 *
 * `from` is the node or process context (its clock times each answer out; from a context, that
 * process is the default sender); `manager` is the handle `CoordinationManager.start` returned.
 * Throws `ERR_INVALID_ARGUMENT` for bad arguments. Emits `keel.coordination.context_created`.
 *
 * @example
 * ```ts
 * const ctx = await createCoordinationContext(node, cm, { agents: [a, b], payload: { plan: 'p1' } });
 * console.log(ctx.contextId, ctx.results.map((r) => r.outcome));
 * ```
 */
export function createCoordinationContext<P = unknown>(
  from: Node | Context<any>,
  manager: CoordinationManagerHandle,
  options: CoordinationContextOptions<P>,
): Promise<CoordinationContext> {
  const node = kernelOf(from);
  // read once, guarded: a handle that cannot be read (a revoked proxy, a getter that throws) is a
  // bad argument, never a raw throw here or a rejection once the contexts went out
  const expected = 'a CoordinationManager handle';
  if (typeof manager !== 'object' || manager === null) throw new InvalidArgumentError('manager', expected, manager);
  const coordinate: unknown = readArgument(() => manager.coordinate, 'manager', expected, manager);
  if (typeof coordinate !== 'function') throw new InvalidArgumentError('manager', expected, manager);
  const read: Manager = {
    coordinate: (coordinate as CoordinationManagerHandle['coordinate']).bind(manager),
    pid: readArgument(() => manager.pid, 'manager', expected, manager),
    name: readArgument(() => manager.name, 'manager', expected, manager),
  };
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ agents, id?, payload?, timeoutMs?, sender? }', options);
  // each option read once, and what is checked is what is used (a getter is not asked again)
  const o = readKnownOptions(options, OPTIONS, 'options');
  const agents = readTargets(o.agents, 'options.agents', node) as (Pid | string)[];
  const id = o.id;
  if (id !== undefined && (typeof id !== 'string' || id === '')) throw new InvalidArgumentError('options.id', 'a non-empty string', id);
  const timeoutMs = o.timeoutMs ?? 10_000;
  checkTimeout(timeoutMs, 'options.timeoutMs');
  const given = o.sender;
  if (given !== undefined && !isPid(given)) throw new InvalidArgumentError('options.sender', 'a Pid', given);
  let contextId = id;
  if (contextId === undefined) {
    const n = (contexts.get(node) ?? 0) + 1;
    contexts.set(node, n);
    contextId = `ctx-${n}`;
  }
  const sender = given ?? (isProcess(from) ? (from as Context<any>).self : undefined);
  return run(read, node, contextId, agents, o.payload, timeoutMs, sender);
}

/** What a context uses of its manager's handle, read once. */
type Manager = Pick<CoordinationManagerHandle, 'coordinate' | 'pid' | 'name'>;

async function run(
  manager: Manager,
  node: Node,
  contextId: string,
  agents: (Pid | string)[],
  payload: unknown,
  timeoutMs: number,
  sender: Pid | undefined,
): Promise<CoordinationContext> {
  const message: CoordinationContextMessage = { type: 'coordination_context', contextId, payload };
  const from = sender ?? manager.pid;
  const results = await Promise.all(
    agents.map(async (agent, i): Promise<ContextDelivery> => {
      const id = `${contextId}:${i}`;
      let cancel: (() => void) | undefined;
      // the handle's coordinate is called guarded: one that throws, or answers no promise, fails
      // this agent alone (the contexts already sent are still reported), never the whole call
      let sent: Promise<CoordinationOutcome>;
      try {
        const r: unknown = manager.coordinate(from, agent, message, { id });
        const thenable = (typeof r === 'object' || typeof r === 'function') && r !== null && typeof (r as { then?: unknown }).then === 'function';
        sent = thenable ? Promise.resolve(r as PromiseLike<CoordinationOutcome>) : Promise.reject(new TypeError(`the manager's coordinate answered ${typeof r}, not a promise`));
      } catch (e) {
        sent = Promise.reject(e);
      }
      const answer = sent.then(
        (outcome): ContextDelivery => ({ agent, ...outcome }),
        (e: unknown): ContextDelivery =>
          isKeelError(e, 'ERR_NOPROC') || isKeelError(e, 'ERR_CALL_EXIT')
            ? { agent, outcome: 'failed', id, reason: 'coordinator_down' }
            : { agent, outcome: 'failed', id, reason: 'error', error: toError(e) },
      );
      if (timeoutMs === Infinity) return answer;
      const late = new Promise<ContextDelivery>((resolve) => {
        cancel = afterMs(node, timeoutMs, () => resolve({ agent, outcome: 'failed', id, reason: 'coordinator_timeout' }));
      });
      try {
        return await Promise.race([answer, late]);
      } finally {
        cancel?.();
      }
    }),
  );
  const count = (o: string): number => results.filter((r) => r.outcome === o).length;
  const result: CoordinationContext = { contextId, results, delivered: count('delivered'), buffered: count('buffered'), failed: count('failed') };
  node.telemetry.execute('keel.coordination.context_created', { agents: agents.length, delivered: result.delivered, buffered: result.buffered, failed: result.failed }, { contextId, manager: manager.name });
  return result;
}
