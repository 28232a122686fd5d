import { types } from 'node:util';
import { InvalidArgumentError, toError } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { type ExitReason, isDown } from '../../runtime/messages.js';
import { isProcess, kernelOf, type Kernel } from '../../runtime/kernel.js';
import { isInstance } from '../../runtime/safe.js';
import { isPid, Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { statusOf } from '../Agent.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { componentState, endsForGood, peekComponentState, releaseComponentState } from '../internal/componentState.js';
import { unwatch, watchProcess } from '../internal/watch.js';
import { AgentIndex, type Owner, type Rec, type RemoveReason } from './AgentIndex.js';
import type { AgentRegistryHandle } from './handle.js';
import { AgentQuery } from './query.js';
import type {
  AgentEntry,
  AgentHealth,
  AgentMeta,
  AgentRef,
  AgentRegisterResult,
  AgentRegistryOptions,
  AgentRegistryStats,
  AgentUpdateResult,
  AgentWhere,
} from './types.js';
import { MAX_KEY, type MetaPatch, readBeat, readMeta, readOptions, readRegisterOptions, readWhere, type Settings, text, type Where } from './validate.js';

type Ref = string | Pid;

type Protocol =
  | { request: { type: 'register'; pid: Pid; key: string | undefined; meta: MetaPatch }; reply: AgentRegisterResult }
  | { request: { type: 'update'; ref: Ref; patch: MetaPatch }; reply: AgentUpdateResult }
  | { request: { type: 'heartbeat'; ref: Ref; patch: MetaPatch }; reply: AgentUpdateResult }
  | { request: { type: 'unregister'; ref: Ref }; reply: 'ok' | 'not_found' }
  | { request: { type: 'stats' }; reply: AgentRegistryStats };

interface InitArg {
  readonly name: string;
  readonly settings: Settings;
}

interface State {
  readonly name: string;
  readonly ctx: Context<any>;
  readonly node: Kernel;
  readonly index: AgentIndex;
  readonly settings: Settings;
  /** The processes whose status call is in flight (one at a time each, whatever the number of keys it holds), with when it was made (timers' time). */
  readonly polling: Map<Owner, number>;
  /** Marks the registry's own sweep and poll messages (a message from elsewhere is not one). */
  readonly token: object;
}

const TAG = 'agent_registry';

// the registry's own messages: instances of these classes (another process's message is never read
// as one, and no code of it runs), with the token of the incarnation that sent them
class Sweep {
  constructor(readonly token: object) {}
}
class Polled {
  constructor(readonly token: object, readonly owner: Owner, readonly load: number | undefined) {}
}

// ---- events -----------------------------------------------------------------------------------

function emit(state: State, event: string, rec: Rec, extra?: Record<string, unknown>): void {
  state.node.telemetry.execute(`keel.agent_registry.${event}`, {}, { registry: state.name, key: rec.key, pid: rec.pid, ...extra });
}

function healthEvent(state: State, rec: Rec, before: AgentHealth, after: AgentHealth, reason: string): void {
  if (before !== after) emit(state, after, rec, { reason });
}

// ---- writes (the registry's process only) -----------------------------------------------------

function removeRec(state: State, rec: Rec, reason: RemoveReason): void {
  state.index.remove(rec, reason);
  const owner = rec.owner;
  if (owner.recs.size === 0) {
    state.index.byPid.delete(owner.text);
    state.polling.delete(owner); // its answer, if any, is dropped
    if (reason !== 'down' && owner.watch !== undefined) unwatch(state.ctx, owner.watch);
    // removed on purpose while it lives: its heartbeats are answered so, and do not register it again
    if (reason !== 'down') state.index.remember(owner, reason === 'explicit' ? 'unregistered' : 'replaced', (p) => state.node.isAlive(p));
  }
  emit(state, 'unregistered', rec, { reason });
}

function register(state: State, givenPid: Pid, given: string | undefined, patch: MetaPatch): AgentRegisterResult {
  const { index, node } = state;
  // the process's own pid (a pid parsed from text is another object), so entries compare with ===
  const pid = node.lookupTarget(givenPid)?.self ?? givenPid;
  const text = Pid.format(pid);
  let owner = index.byPid.get(text);
  if (owner === undefined) {
    if (Pid.equals(pid, state.ctx.self)) throw new InvalidArgumentError('agent', 'a process other than the registry itself', pid);
    const watch = watchProcess(state.ctx, pid, TAG);
    if (watch === 'noproc') return { error: 'noproc' };
    owner = { pid, text, recs: new Set(), watch };
    index.byPid.set(text, owner);
    index.removed.delete(text); // registered again: an entry like any other
  }
  const key = given ?? node.info(pid)?.name ?? text;
  const now = node.clock.now(); // lastSeen: a date readers are shown; the sweep ages it by seenAt, on the timers' time
  const status = patch.status ?? 'healthy';
  const meta: AgentMeta = {
    capabilities: patch.capabilities ?? Object.freeze([]),
    kinds: patch.kinds ?? Object.freeze([]),
    team: patch.team,
    role: patch.role,
    load: patch.load ?? 0,
    status,
    health: status,
    node: pid.node,
    lastSeen: now,
  };
  const existing = index.byKey.get(key);
  const same = existing !== undefined && existing.owner === owner;
  if (same) {
    // the same process again: its new metadata replaces the old
    index.remove(existing, undefined);
  } else if (existing !== undefined) {
    removeRec(state, existing, 'replaced');
  }
  const rec = index.insert(key, owner, meta, node.timerNow());
  emit(state, 'registered', rec, { replaced: existing !== undefined && !same ? existing.pid : undefined });
  // the entry goes on (no unregistered event): a change of its health is said, as an update's is
  if (same) healthEvent(state, rec, existing.meta.health, status, patch.status === status ? 'declared' : 'register');
  return { key };
}

function recsOf(state: State, ref: Ref): Rec[] {
  if (typeof ref === 'string') {
    const rec = state.index.byKey.get(ref);
    return rec === undefined ? [] : [rec];
  }
  return [...(state.index.byPid.get(Pid.format(ref))?.recs ?? [])];
}

function change(state: State, ref: Ref, patch: MetaPatch, reason: 'update' | 'heartbeat' | 'poll'): AgentUpdateResult {
  const recs = recsOf(state, ref);
  if (recs.length === 0) {
    // a live process whose entries were removed on purpose is told so (an agent then does not register itself again; it goes on beating);
    // not_registered (a registry that lost its table, or never knew it) makes an agent register again
    const removed = typeof ref === 'string' ? undefined : state.index.removedReason(Pid.format(ref), (p) => state.node.isAlive(p));
    return { error: removed ?? 'not_registered' };
  }
  const seen = { now: state.node.clock.now(), seenAt: state.node.timerNow() };
  for (const rec of recs) {
    const { before, after } = state.index.change(rec, patch, seen);
    healthEvent(state, rec, before, after, patch.status === after ? 'declared' : reason);
    // an update may make the entry match queries it did not (its kinds, capabilities, tags...): said,
    // so that a query's followers look again; a heartbeat or a poll changes only its load and health
    if (reason === 'update') emit(state, 'updated', rec);
  }
  return 'ok';
}

// ---- health -----------------------------------------------------------------------------------

function armSweep(state: State): void {
  const interval = state.settings.intervalMs;
  if (interval !== undefined) state.ctx.sendAfter(state.ctx.self, new Sweep(state.token), interval);
}

/**
 * Walks the entries oldest-heard-from first, up to the first one heard from within an interval:
 * those past the window (interval × missedHeartbeats) become unhealthy; with `poll`, the processes
 * of those past one interval are asked for their status (one call per process, however many keys it
 * holds: its answer is heard for all of them), and one past the window becomes unhealthy only once it
 * was asked and did not answer (else an agent that answers every poll would flap with missedHeartbeats 1).
 */
function sweep(state: State): void {
  const interval = state.settings.intervalMs!;
  const window = interval * state.settings.missed;
  // ages on the timers' time (monotonic on the real clock), as the sweep's own timer counts: a wall
  // clock stepped forward does not make every entry look stale at once, nor one stepped back keep them fresh
  const now = state.node.timerNow();
  for (const rec of state.index.bySeen) {
    const age = now - rec.seenAt;
    if (age < interval) break;
    // with poll, a late entry is first asked: it is unhealthy only once a status call since it was last heard from went unanswered
    const due = age >= window && (!state.settings.poll || rec.asked);
    if (due && state.index.markStale(rec)) emit(state, 'unhealthy', rec, { reason: 'missed_heartbeats', lastSeen: rec.entry.meta.lastSeen });
    if (state.settings.poll) {
      // asked: a call to its process made since it was last heard from (one in flight may be older)
      const at = state.polling.get(rec.owner) ?? poll(state, rec.owner, interval, now);
      if (at >= rec.seenAt) rec.asked = true;
    }
  }
  armSweep(state);
}

/** Asks `owner`'s process for its status (at `now`, the timers' time); answers `now`. */
function poll(state: State, owner: Owner, timeout: number, now: number): number {
  state.polling.set(owner, now);
  state.index.counts.polls++;
  const self = state.ctx.self;
  const node = state.node;
  const answer = (load: number | undefined): void => {
    if (node.isAlive(self)) node.send(self, new Polled(state.token, owner, load));
  };
  statusOf(node, owner.pid, { timeout }).then(
    (s) => answer(loadOf(s)),
    () => answer(undefined),
  );
  return now;
}

/** The load a status answer reports (a finite number ≥ 0), read without running any code of the answer (a getter, a proxy): else undefined. */
function loadOf(s: unknown): number | undefined {
  if (typeof s !== 'object' || s === null || types.isProxy(s)) return undefined;
  const d = Object.getOwnPropertyDescriptor(s, 'load');
  const load: unknown = d !== undefined && 'value' in d ? d.value : undefined;
  return typeof load === 'number' && Number.isFinite(load) && load >= 0 ? load : undefined;
}

function polled(state: State, m: { owner: Owner; load: number | undefined }): void {
  // an owner no longer registered was dropped from polling (one registered again is another owner)
  if (!state.polling.delete(m.owner)) return;
  if (m.load !== undefined) change(state, m.owner.pid, { load: m.load }, 'poll');
}

// ---- the server -------------------------------------------------------------------------------

function readRef(ref: unknown): Ref {
  if (isPid(ref)) return ref;
  return text(ref, 'ref', MAX_KEY);
}


const registrySpec: GenServerSpec<State, Protocol, never, InitArg> = keelServer(
  {
    init(arg, ctx) {
      const node = kernelOf(ctx);
      const { state: index, resumed } = componentState(node, arg.name, TAG, () => new AgentIndex());
      const state: State = { name: arg.name, ctx, node, index, settings: arg.settings, polling: new Map(), token: {} };
      index.open = true;
      if (resumed) {
        // the predecessor's status calls died with it (their answers are dropped): this registry asks afresh
        for (const rec of index.byKey.values()) rec.asked = false;
        // the predecessor's monitors died with it: watch every registered process again
        for (const owner of [...index.byPid.values()]) {
          const w = watchProcess(ctx, owner.pid, TAG);
          if (w === 'noproc') {
            owner.watch = undefined;
            for (const rec of [...owner.recs]) removeRec(state, rec, 'down');
          } else owner.watch = w;
        }
      }
      ctx.signal.addEventListener(
        'abort',
        () => {
          if (!endsForGood(ctx.signal.reason as ExitReason)) return;
          index.open = false;
          releaseComponentState(node, arg.name);
        },
        { once: true },
      );
      armSweep(state);
      return state;
    },

    handleCall(request, _from, state) {
      try {
        switch (request?.type) {
          case 'register': {
            if (!isPid(request.pid)) throw new InvalidArgumentError('agent', 'a Pid or a process Context', request.pid);
            const key = request.key === undefined ? undefined : text(request.key, 'options.key', MAX_KEY);
            return { reply: register(state, request.pid, key, readMeta(request.meta)), state };
          }
          case 'update':
            return { reply: change(state, readRef(request.ref), readMeta(request.patch, 'patch'), 'update'), state };
          case 'heartbeat':
            state.index.counts.heartbeats++;
            return { reply: change(state, readRef(request.ref), readBeat(request.patch), 'heartbeat'), state };
          case 'unregister': {
            const recs = recsOf(state, readRef(request.ref));
            for (const rec of recs) removeRec(state, rec, 'explicit');
            return { reply: recs.length === 0 ? 'not_found' : 'ok', state };
          }
          case 'stats':
            return { reply: stats(state), state };
          default:
            throw new InvalidArgumentError('request', "an agent registry call ({ type: 'register' | 'update' | 'heartbeat' | 'unregister' | 'stats' })", request);
        }
      } catch (e) {
        // a bad request is the caller's mistake: it gets the typed error, the registry keeps its entries
        return { reply: toError(e) as never, state };
      }
    },

    handleInfo(message, state, ctx) {
      if (isDown(message)) {
        const owner: Owner | undefined = state.index.byPid.get(Pid.format(message.pid));
        if (owner !== undefined && owner.watch?.ref === message.ref) {
          owner.watch = undefined;
          for (const rec of [...owner.recs]) removeRec(state, rec, 'down');
        }
      } else if (isInstance(message, Sweep) && message.token === state.token) sweep(state);
      else if (isInstance(message, Polled) && message.token === state.token) polled(state, message);
      else ctx.node.telemetry.execute('keel.gen_server.unexpected_message', {}, { pid: ctx.self, message });
      return state;
    },
  },
  'an agent registry (use its handle)',
  'bare',
);
// an observer finds it, and reads it through the `observe` system call
markComponent(registrySpec, 'agent_registry', (state: State) => ({
  agents: [...state.index.byKey.values()].slice(0, 1000).map((r) => ({ key: r.key, pid: Pid.format(r.pid), ...r.meta })),
  totals: stats(state),
}));

function stats(state: State): AgentRegistryStats {
  const c = state.index.counts;
  return {
    agents: state.index.byKey.size,
    processes: state.index.byPid.size,
    unhealthy: state.index.unhealthy.size,
    capabilities: state.index.capabilities,
    registered: c.registered,
    unregistered: { down: c.down, explicit: c.explicit, replaced: c.replaced },
    heartbeats: c.heartbeats,
    polls: c.polls,
  };
}

/** A pid or a process's own Context as the pid it stands for (its key, as given). */
function pidOf(agent: unknown, argument: string): Pid {
  if (isProcess(agent)) return (agent as Context<any>).self;
  if (isPid(agent)) return agent;
  throw new InvalidArgumentError(argument, 'a Pid or a process Context', agent);
}

function refOf(ref: AgentRef): Ref {
  return typeof ref === 'string' ? text(ref, 'ref', MAX_KEY) : pidOf(ref, 'ref');
}

/**
 * A registry of agents and what they can do: agents register with metadata (capabilities, kinds,
 * team, role, load, status); their entries vanish when they exit (monitored) and are replaced when a
 * restarted agent registers again under its key. Queries read an index the registry's process
 * maintains, without a call. With `heartbeatIntervalMs`, an agent not heard from for
 * `missedHeartbeats` intervals becomes unhealthy and leaves the queries for healthy agents.
 *
 * @example
 * ```ts
 * const registry = await AgentRegistry.start(node, { heartbeatIntervalMs: 1000 });
 * await registry.register(worker.pid, { capabilities: ['ocr'], team: 'docs' });
 * registry.query({ capability: 'ocr' }); // [{ key, pid, meta }]
 * ```
 */
export const AgentRegistry = {
  async start(from: Node | Context<any>, options?: AgentRegistryOptions): Promise<AgentRegistryHandle> {
    const { name: given, ...settings } = readOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, TAG, given);
    const pid = await startComponent(from, registrySpec, { name, settings }, name);
    let held = componentState(node, name, TAG, () => new AgentIndex()).state;
    // the table now: the one held, or (once it was released: stopped, then started again under the name) its successor's
    const table = (): AgentIndex => {
      if (!held.open) held = peekComponentState<AgentIndex>(node, name, TAG) ?? held;
      return held;
    };
    // No registry process under the name (between a crash and its restart, or ended by a supervisor's
    // shutdown and never restarted): nobody watches the table's processes, so reads leave out the dead
    // ones, as the restarted registry would.
    const unwatched = (index: AgentIndex): boolean => index.open && node.registry.whereis(name) === undefined;
    const read = (where: Where): AgentEntry[] => {
      const index = table();
      if (!unwatched(index)) return index.query(where);
      const live = index.query(where.limit === Infinity ? where : { ...where, limit: Infinity }).filter((e) => node.isAlive(e.pid));
      return live.length > where.limit ? live.slice(0, where.limit) : live;
    };
    const call = componentCaller<Protocol>(node, name);
    return componentHandle<AgentRegistryHandle>(node, name, pid, {
      async register(agent, meta, opts) {
        const p = pidOf(agent, 'agent');
        return call({ type: 'register', pid: p, key: readRegisterOptions(opts), meta: readMeta(meta) });
      },
      async update(ref, patch) {
        return call({ type: 'update', ref: refOf(ref), patch: readMeta(patch, 'patch') });
      },
      async unregister(ref) {
        return call({ type: 'unregister', ref: refOf(ref) });
      },
      async heartbeat(ref, beat) {
        return call({ type: 'heartbeat', ref: refOf(ref), patch: readBeat(beat) });
      },
      lookup(key) {
        text(key, 'key', MAX_KEY);
        const index = table();
        const entry = index.open ? index.byKey.get(key)?.entry : undefined;
        // never a dead process, as Elixir's Registry.lookup checks the owner is alive: its entry stays
        // until the registry handles its Down (or, with no registry process, until one restarts)
        return entry !== undefined && !node.isAlive(entry.pid) ? undefined : entry;
      },
      query: (where) => read(readWhere(where)),
      pids: (where) => read(readWhere(where)).map((e) => e.pid),
      select(where) {
        const validated = readWhere(where);
        // the query as given, detached from the caller's arrays, copied as it was read: its own string
        // keys' data values and its array's elements, without running any of its code (a spread would
        // run a symbol-keyed getter, an array's own iterator)
        const given: Record<string, unknown> = {};
        if (where !== undefined) for (const key of Object.keys(where)) given[key] = (Object.getOwnPropertyDescriptor(where, key) as { value: unknown }).value;
        if (Array.isArray(given.capabilities)) given.capabilities = Object.freeze(Array.from({ length: (given.capabilities as unknown[]).length }, (_, i) => (Object.getOwnPropertyDescriptor(given.capabilities, i) as { value: unknown }).value));
        return new AgentQuery(name, read, Object.freeze(given) as AgentWhere, validated);
      },
      count() {
        const index = table();
        if (!index.open) return 0;
        if (!unwatched(index)) return index.byKey.size;
        let n = 0;
        for (const rec of index.byKey.values()) if (node.isAlive(rec.pid)) n++;
        return n;
      },
      stats: () => call({ type: 'stats' }),
    });
  },
};
