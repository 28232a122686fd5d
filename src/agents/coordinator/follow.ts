import type { Pid } from '../../runtime/Pid.js';
import { statusOf } from '../Agent.js';
import type { AgentQuery } from '../registry/query.js';
import { addWorker } from './dispatch.js';
import { event, type Follow, pidKey, type State } from './state.js';

// A coordinator whose pool is a registry query (`workers: registry.select({ kind: 'fetch' })`): the
// agents the query selects join at the start, and an agent that registers later (a new agent, or
// one restarted by its supervisor under the same key with a new pid), or comes to match it (healthy
// again, or updated), joins when the registry says so. Leaving is by death (the coordinator's monitor) or `removeWorker`, as for any worker; a removed
// agent stays out (later registrations do not bring it back) until `addWorker` asks for it again.

/** A registration, a recovery or an update in the followed registry: look at the query again (one message for many). */
export class FollowQuery {
  static readonly message = new FollowQuery();
  private constructor() {}
}

/** A followed query's agent answered its status (capabilities undefined: it did not). */
export class QueryJoined {
  constructor(readonly pid: Pid, readonly capabilities: readonly string[] | undefined, readonly kinds: readonly string[] | undefined) {}
}

/** The telemetry handler's id for the coordinator `name` (one at a time: a restart replaces its predecessor's). */
function handlerId(name: string): string {
  return `keel.coordinator.${name}.follow`;
}

/**
 * Starts following `query` for the coordinator of `state`: registrations in its registry make the
 * coordinator look at the query again. Returns what the state keeps.
 */
export function follow(state: State, query: AgentQuery): Follow {
  const telemetry = state.ctx.node.telemetry;
  const f: Follow = { query, joining: new Set(), pending: false, handlerId: handlerId(state.name) };
  // a predecessor killed without its terminate left its handler: this one replaces it
  telemetry.detach(f.handlerId);
  const node = state.ctx.node;
  const self = state.ctx.self;
  // a registration, and an entry that may have come to match: healthy again, or updated
  telemetry.attach(f.handlerId, ['keel.agent_registry.registered', 'keel.agent_registry.healthy', 'keel.agent_registry.updated'], (_event, _m, metadata) => {
    if (metadata.registry !== query.registry || f.pending) return;
    f.pending = true;
    node.send(self, FollowQuery.message);
  });
  return f;
}

/** Stops following (the coordinator's terminate). */
export function unfollow(state: State, f: Follow): void {
  state.ctx.node.telemetry.detach(f.handlerId);
}

/** Looks at the query now: each agent it selects that is not in the pool is asked its status, then joins. */
export function lookAgain(state: State, f: Follow): void {
  f.pending = false;
  const { ctx } = state;
  const removed = state.kept.removed;
  const selected = new Set<string>();
  for (const pid of f.query.pids()) {
    const key = pidKey(pid);
    selected.add(key);
    if (state.workers.has(key) || f.joining.has(key) || removed.has(key)) continue;
    f.joining.add(key);
    statusOf(ctx, pid, { timeout: state.options.taskTimeoutMs }).then(
      (s) => {
        const capabilities = capabilitiesOf(s);
        ctx.send(ctx.self, new QueryJoined(pid, capabilities, kindsOf(s)));
        if (capabilities === undefined) event(state, 'worker_refused', {}, { worker: pid, error: 'malformed_status' });
      },
      (error: unknown) => {
        ctx.send(ctx.self, new QueryJoined(pid, undefined, undefined));
        event(state, 'worker_refused', {}, { worker: pid, error });
      },
    );
  }
  // a removed agent the query no longer selects (dead, unregistered) is forgotten: the set stays bounded
  for (const key of removed) if (!selected.has(key)) removed.delete(key);
}

/** An agent of the query answered (or not): it joins the pool unless it died meanwhile. */
export function queryJoined(state: State, f: Follow, m: QueryJoined): void {
  f.joining.delete(pidKey(m.pid));
  if (m.capabilities !== undefined) addWorker(state, m.pid, m.capabilities, m.kinds);
}

/**
 * The capabilities a status names, copied, or undefined when it names none that can be read (a status
 * that is not an object, capabilities that are not an array of strings, a getter or proxy that throws):
 * such a worker is not taken into the pool, as one that did not answer.
 */
export function capabilitiesOf(status: unknown): string[] | undefined {
  try {
    if (typeof status !== 'object' || status === null) return undefined;
    const capabilities = (status as { capabilities?: unknown }).capabilities;
    return Array.isArray(capabilities) && capabilities.every((c) => typeof c === 'string') ? [...(capabilities as string[])] : undefined;
  } catch {
    return undefined;
  }
}

/** The kinds a status names (undefined: any kind). */
export function kindsOf(status: unknown): readonly string[] | undefined {
  try {
    const kinds = (status as { kinds?: unknown }).kinds;
    return Array.isArray(kinds) && kinds.every((k) => typeof k === 'string') ? [...kinds] : undefined;
  } catch {
    return undefined; // a status that cannot be read names no kinds: any
  }
}
