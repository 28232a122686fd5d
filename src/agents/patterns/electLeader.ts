import { InvalidArgumentError, readKnownOptions } from '../../errors.js';
import { broadcastSupervised } from '../../delivery/broadcastSupervised.js';
import { GenServer, type From, type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { PendingCall } from '../../otp/internal/calls.js';
import { isDown } from '../../runtime/messages.js';
import { isDead, type Proc } from '../../runtime/kernel.js';
import { isInstance } from '../../runtime/safe.js';
import type { Pid, TimerRef } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { statusOf, type AgentStatus } from '../Agent.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { checkObject, checkPid, checkTimeout, isArray, pidKey, readArgument, stopComponent, unwatch, watchProcess, type WatchRef } from './shared.js';
import { AgentQuery, resolveSource, type AgentsOrQuery } from './agentSource.js';

export interface ElectLeaderOptions {
  /**
   * The agents that may lead, in order of preference: on equal scores the earliest wins. Distinct
   * pids, at least one; or a registry query (`registry.select(...)`), resolved again at every
   * election, so an agent that restarted and registered again under its key is a candidate again.
   */
  candidates: AgentsOrQuery<Pid>;
  /** A candidate's score from its `status` answer; the highest wins (default `-status.load`: the least loaded). */
  score?(status: AgentStatus): number;
  /**
   * How long each candidate's `status` call may take, in ms (default 5000); one that does not
   * answer is not elected this time. The calls are made without holding the election process (it
   * answers `current` meanwhile); Infinity waits for each candidate's answer or death.
   */
  timeout?: number;
  /** When no candidate answered but some are alive, the next attempt after this many ms (default 1000). */
  retryMs?: number;
  /** Registers the election process under this name (default `keel.leader_election.<n>`). */
  name?: string;
}

/** Who leads, and the term: it counts leadership changes, starting at 1 for the first election. */
export interface Leadership {
  readonly leader: Pid | undefined;
  readonly term: number;
}

/** What every live candidate is sent on each new term (best effort, supervised send). */
export interface LeaderElected {
  readonly type: 'leader_elected';
  readonly leader: Pid | undefined;
  readonly term: number;
}

/** A running election: its process, and the leadership as it stands. */
export interface LeaderElection {
  /** The election process's current pid (found again by name after a restart). */
  readonly pid: Pid;
  readonly name: string;
  /** The leader and term now; the leader is undefined while nobody leads (none elected, or the leader died and the next is being elected). */
  current(options?: { timeout?: number }): Promise<Leadership>;
  /** Resolves with the leadership as soon as its term is past `afterTerm` (at once if it already is); `timeout` defaults to Infinity. */
  whenChanged(afterTerm: number, options?: { timeout?: number }): Promise<Leadership>;
  /** Stops the election process (the candidates keep running). */
  stop(): Promise<void>;
}

type Calls =
  | { request: { type: 'current' }; reply: Leadership }
  | { request: { type: 'when_changed'; afterTerm: number }; reply: Leadership };

/** The election process's own retry tick (a class: another process cannot forge it). */
class Retry {
  readonly kind = 'retry' as const;
}

interface State {
  readonly name: string;
  readonly onChange?: ((leadership: Leadership) => unknown) | undefined;
  /** Candidates not known to be dead, in the given order (with a query: its answer at the last election). */
  candidates: Pid[];
  /** The registry query the candidates are read from at each election, if one was given. */
  readonly source: AgentQuery | undefined;
  readonly score: (status: AgentStatus) => number;
  readonly timeout: number;
  readonly retryMs: number;
  /** Who leads now: undefined from the leader's death until the next election decides (nobody leads meanwhile). */
  leader: Pid | undefined;
  /** The leader whose death started the election under way, if one did: the next term's `previous`. */
  fallen: Pid | undefined;
  term: number;
  watch: WatchRef | undefined;
  retry: TimerRef | undefined;
  waiters: { afterTerm: number; from: From<Leadership> }[];
  /** The election whose statuses are being gathered (its number), if one is; the process answers its callers meanwhile. */
  gathering: number | undefined;
  /** Elections started, to tell an answer of this one from a stale one. */
  elections: number;
}

/** Every candidate of election `election` answered its status or failed (timeout, death): a class, so another process cannot forge it. */
class Gathered {
  constructor(
    readonly election: number,
    readonly candidates: readonly Pid[],
    readonly statuses: readonly (AgentStatus | undefined)[],
  ) {}
}

const defaultScore = (status: AgentStatus): number => -status.load;

/**
 * Asks every live candidate its `status` without holding the election process: the calls go out
 * now, each bounded by the timeout, and their answers come back as one {@link Gathered} message once
 * every call answered or failed. Meanwhile the process answers `current` and `whenChanged`.
 */
function gather(state: State, ctx: Context<any>): void {
  // a query is asked again (a restarted candidate's new pid); a pid never comes back
  if (state.source !== undefined) state.candidates = resolveSource(state.source);
  state.candidates = state.candidates.filter((c) => ctx.node.isAlive(c));
  const election = ++state.elections;
  state.gathering = election;
  const candidates = [...state.candidates];
  const self = ctx.self;
  void Promise.all(candidates.map((c) => statusOf(ctx, c, { timeout: state.timeout }).then((s) => s, () => undefined))).then((statuses) => {
    // a process that died meanwhile (its calls failed with it) has nobody to tell: a send from it
    // would be a zombie call
    if (!isDead(ctx as Proc)) ctx.send(self, new Gathered(election, candidates, statuses));
  });
}

/** The candidates that answered, best first: the highest score, the earliest on a tie. */
function rank(state: State, ctx: Context<any>, gathered: Gathered): Pid[] {
  const scored: { pid: Pid; score: number; at: number }[] = [];
  gathered.statuses.forEach((status, i) => {
    const pid = gathered.candidates[i]!;
    if (status === undefined) return;
    let score: unknown;
    try {
      score = state.score(status);
    } catch (e) {
      ctx.node.logger.warn(`leader election ${state.name}: score threw for ${String(pid)}; it is not elected this time`, e);
      return;
    }
    if (typeof score !== 'number' || Number.isNaN(score)) {
      // an async score's promise is not a score: said, and its rejection handled (never left unhandled)
      const thenable = isThenable(score);
      if (thenable) {
        try {
          (score as PromiseLike<unknown>).then(undefined, () => undefined);
        } catch {
          // a thenable whose then throws: nothing is pending on it
        }
      }
      const what = typeof score === 'number' ? 'NaN' : thenable ? 'a promise' : `a ${typeof score}`;
      ctx.node.logger.warn(`leader election ${state.name}: score answered ${what} for ${String(pid)}, not a number; it is not elected this time`);
      return;
    }
    scored.push({ pid, score, at: i });
  });
  return scored.sort((x, y) => (y.score === x.score ? x.at - y.at : y.score > x.score ? 1 : -1)).map((x) => x.pid);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  try {
    return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function';
  } catch {
    return false; // a throwing getter or a revoked proxy: not a promise we can follow
  }
}

/** Starts an election: the retry and the leader's monitor are dropped, the statuses gathered (see {@link gather}). */
function elect(state: State, ctx: Context<any>): State {
  if (state.retry !== undefined) ctx.cancelTimer(state.retry);
  state.retry = undefined;
  if (state.watch !== undefined) unwatch(ctx, state.watch);
  state.watch = undefined;
  gather(state, ctx);
  return state;
}

/** Decides an election from its candidates' answers; a new leader (or the first result) starts a new term, announced to every live candidate. */
async function decide(state: State, ctx: Context<any>, gathered: Gathered): Promise<State> {
  state.gathering = undefined;
  const previous = state.leader ?? state.fallen;
  state.fallen = undefined;
  let leader: Pid | undefined;
  for (const best of rank(state, ctx, gathered)) {
    const watch = watchProcess(ctx, best, 'leader_election');
    if (watch !== 'noproc') {
      leader = best;
      state.watch = watch;
      break;
    }
    // the winner died between its answer and the monitor: the next best
  }
  state.leader = leader;
  // with a query, nobody now may be somebody later (a candidate restarting, registering): keep looking
  if (leader === undefined && (state.candidates.length > 0 || state.source !== undefined)) state.retry = ctx.sendAfter(ctx.self, new Retry(), state.retryMs);
  const changed = state.term === 0 || (leader === undefined ? previous !== undefined : previous === undefined || pidKey(previous) !== pidKey(leader));
  if (!changed) return state;
  state.term++;
  const leadership: Leadership = { leader, term: state.term };
  // the candidates have the news in their mailboxes before anyone else learns of the new term
  let notified = 0;
  if (state.candidates.length > 0) {
    const message: LeaderElected = { type: 'leader_elected', leader, term: state.term };
    notified = (await broadcastSupervised(ctx, [...state.candidates], message, { strategy: 'best_effort', ack: 'enqueued', onError: 'ignore' })).delivered;
  }
  ctx.node.telemetry.execute(
    'keel.coordination.leader_elected',
    { term: state.term, candidates: state.candidates.length, notified },
    { election: state.name, leader, previous },
  );
  // only those whose term is now passed: a wait for a term further ahead goes on waiting
  const waiting = state.waiters;
  state.waiters = [];
  for (const w of waiting) {
    if (state.term > w.afterTerm) GenServer.reply(w.from, leadership);
    else state.waiters.push(w);
  }
  if (state.onChange !== undefined) {
    // the user's callback: its failure is reported, the election goes on; an async one that
    // rejects is reported the same way (never left an unhandled rejection)
    const term = state.term;
    const report = (e: unknown): void => ctx.node.logger.warn(`leader monitor ${state.name}: onChange threw for term ${term}`, e);
    try {
      const r: unknown = state.onChange(leadership);
      if (isThenable(r)) r.then(undefined, report);
    } catch (e) {
      report(e);
    }
  }
  return state;
}

interface Config {
  readonly name: string;
  /** monitorLeader's callback on each new term. */
  readonly onChange?: ((leadership: Leadership) => unknown) | undefined;
  readonly candidates: AgentsOrQuery<Pid>;
  readonly score: (status: AgentStatus) => number;
  readonly timeout: number;
  readonly retryMs: number;
}

const electionSpec: GenServerSpec<State, Calls, never, Config> = keelServer({
  init(config) {
    // a restart begins afresh: term 1 again, every candidate still alive
    const source = AgentQuery.is(config.candidates) ? config.candidates : undefined;
    const state: State = { ...config, candidates: source === undefined ? resolveSource(config.candidates) : [], source, leader: undefined, fallen: undefined, term: 0, watch: undefined, retry: undefined, waiters: [], gathering: undefined, elections: 0 };
    return { state, continue: 'elect' };
  },

  handleContinue(_info, state, ctx) {
    return elect(state, ctx);
  },

  handleCall(request, from, state) {
    if (request?.type === 'current') return { reply: { leader: state.leader, term: state.term }, state };
    if (request?.type === 'when_changed') {
      // sent straight here, a bad term would wait forever (nothing is ever past NaN)
      const after: unknown = request.afterTerm;
      if (typeof after !== 'number' || !Number.isSafeInteger(after) || after < 0) {
        return { reply: new InvalidArgumentError('request.afterTerm', 'an integer >= 0', after) as never, state };
      }
      if (state.term > request.afterTerm) return { reply: { leader: state.leader, term: state.term }, state };
      // callers that gave up (timeout, abort, exit) are dropped now, so polling with a timeout does not pile up waiters
      state.waiters = state.waiters.filter((w) => !(w.from instanceof PendingCall) || w.from.pending);
      state.waiters.push({ afterTerm: request.afterTerm, from: from as From<Leadership> });
      return { noreply: true, state };
    }
    return { reply: new InvalidArgumentError('request', "{ type: 'current' | 'when_changed' }", request) as never, state };
  },

  handleInfo(message, state, ctx) {
    if (isInstance(message, Gathered)) return message.election === state.gathering ? decide(state, ctx, message) : state;
    if (isInstance(message, Retry)) {
      state.retry = undefined;
      return elect(state, ctx);
    }
    if (isDown(message) && state.watch !== undefined && message.ref === state.watch.ref) {
      state.watch = undefined; // the monitor is gone with its Down
      // a dead process is never answered as the leader: nobody leads until the next election decides
      state.fallen = state.leader;
      state.leader = undefined;
      return elect(state, ctx);
    }
    return state; // a stale Down of an earlier leader's monitor
  },
}, 'a leader election (use its handle)', 'bare');

const ELECTION_OPTIONS = ['candidates', 'score', 'timeout', 'retryMs', 'name'] as const;

/** The options as checked, each read once: the election runs with what was checked. */
interface Checked {
  readonly candidates: AgentsOrQuery<Pid>;
  readonly score: ((status: AgentStatus) => number) | undefined;
  readonly timeout: number;
  readonly retryMs: number;
  readonly name: unknown;
  /** monitorLeader's onChange (electLeader takes none: its key is refused as misspelt). */
  readonly onChange: MonitorLeaderOptions['onChange'];
}

function validate(options: unknown, known: readonly string[] = ELECTION_OPTIONS): Checked {
  checkObject(options, 'options', `{ ${known.map((k) => (k === 'candidates' ? 'candidates: Pid[] | AgentQuery' : `${k}?`)).join(', ')} }`);
  // each option read once (a misspelt one refused, a getter that throws a bad argument naming it),
  // and what is checked is what is used: a getter is not asked again
  const o = readKnownOptions(options, known, 'options');
  const given = o.candidates;
  let candidates: AgentsOrQuery<Pid>;
  // a query is resolved at each election; a list is checked now, read once (a getter, a proxy trap
  // that throws is ERR_INVALID_ARGUMENT naming it) and kept as read
  if (AgentQuery.is(given)) candidates = given;
  else {
    const expected = 'a non-empty array of Pids or an AgentQuery (registry.select(...))';
    const n = isArray(given, 'options.candidates', expected) ? readArgument(() => given.length, 'options.candidates', expected, given) : 0;
    if (n === 0) throw new InvalidArgumentError('options.candidates', expected, given);
    const list = given as unknown[];
    const pids: Pid[] = [];
    const seen = new Set<string>();
    // by index, not forEach: a hole in a sparse array is checked (as undefined), not skipped
    for (let i = 0; i < n; i++) {
      const c: unknown = readArgument(() => list[i], `options.candidates[${i}]`, 'a Pid', list);
      checkPid(c, `options.candidates[${i}]`);
      if (seen.has(pidKey(c))) throw new InvalidArgumentError(`options.candidates[${i}]`, 'a candidate listed once', c);
      seen.add(pidKey(c));
      pids.push(c);
    }
    candidates = Object.freeze(pids);
  }
  const score: unknown = o.score;
  if (score !== undefined && typeof score !== 'function') throw new InvalidArgumentError('options.score', 'a function (status) => number', score);
  const timeout = o.timeout ?? 5000;
  checkTimeout(timeout, 'options.timeout');
  const retryMs = o.retryMs ?? 1000;
  if (typeof retryMs !== 'number' || !Number.isFinite(retryMs) || retryMs < 0) throw new InvalidArgumentError('options.retryMs', 'a finite number of ms >= 0', retryMs);
  if (o.onChange !== undefined && typeof o.onChange !== 'function') throw new InvalidArgumentError('options.onChange', 'a function (leadership) => void', o.onChange);
  return { candidates, score: score as Checked['score'], timeout, retryMs, name: o.name, onChange: o.onChange as Checked['onChange'] };
}

/**
 * Elects a leader among agents and keeps one: a supervised election process (kind
 * `leader_election`) asks each live candidate its `status`, scores it (default: the least loaded
 * wins) and elects the highest score, the earliest candidate on a tie, so the same inputs elect
 * the same leader. It monitors the leader and, when the leader dies, elects again among the live
 * candidates (the term goes up by one). Each new term is sent to every live candidate as
 * `{ type: 'leader_elected', leader, term }` and emitted as `keel.coordination.leader_elected`.
 * When no candidate is left the leader is `undefined`.
 *
 * Resolves once the first election is done (term 1). Throws `ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const election = await electLeader(node, { candidates: [a.pid, b.pid, c.pid] });
 * const { leader, term } = await election.current();
 * const next = await election.whenChanged(term); // after the leader dies
 * await election.stop();
 * ```
 */
export function electLeader(from: Node | Context<any>, options: ElectLeaderOptions): Promise<LeaderElection> {
  const checked = validate(options);
  const node = componentNode(from);
  return start(from, node, configOf(checked, nameFor(node, 'leader_election', checked.name), undefined));
}

/** An election's settings from its checked options, with their defaults. */
function configOf(options: Checked, name: string, onChange: MonitorLeaderOptions['onChange']): Config {
  return {
    name,
    candidates: options.candidates,
    score: options.score ?? defaultScore,
    timeout: options.timeout,
    retryMs: options.retryMs,
    ...(onChange === undefined ? {} : { onChange }),
  };
}

async function start(from: Node | Context<any>, node: Node, config: Config): Promise<LeaderElection> {
  const name = config.name;
  const pid: Pid = await startComponent(from, electionSpec, config, name);
  const call = componentCaller<Calls>(node, name);
  const whenChanged = (afterTerm: number, o?: { timeout?: number }): Promise<Leadership> => {
    if (typeof afterTerm !== 'number' || !Number.isSafeInteger(afterTerm) || afterTerm < 0) throw new InvalidArgumentError('afterTerm', 'an integer >= 0', afterTerm);
    // checked as current's are: a misspelt option ignored would wait forever, unnoticed
    let timeout = Infinity;
    if (o !== undefined) {
      checkObject(o, 'options', '{ timeout? }');
      const given: unknown = readKnownOptions(o, ['timeout'], 'options').timeout ?? Infinity;
      checkTimeout(given, 'options.timeout');
      timeout = given;
    }
    return call({ type: 'when_changed', afterTerm }, { timeout });
  };
  await whenChanged(0);
  return componentHandle<LeaderElection>(node, name, pid, {
    current: (o) => call({ type: 'current' }, o),
    whenChanged,
    stop: () => stopComponent(node, name),
  });
}

export interface MonitorLeaderOptions extends ElectLeaderOptions {
  /**
   * Called in the monitor process on each new term (the first election included), after the
   * candidates were told; a throw (or an async one's rejection) is logged and changes nothing.
   */
  onChange?(leadership: Leadership): unknown;
}

/** A standing leader monitor: the election's handle (`current`, `whenChanged`, `stop`). */
export type LeaderMonitor = LeaderElection;

/**
 * Keeps a leader among `candidates` until stopped: the election of {@link electLeader} as a
 * standing process (kind `leader_monitor`) that monitors the leader and, each time it dies,
 * elects again among the live candidates (a new term, `keel.coordination.leader_elected`, the
 * candidates told, `onChange` called). When no candidate answers it retries after `retryMs`;
 * when none is left alive the leader is `undefined`. `stop()` ends it, its monitor and timer
 * with it; the candidates keep running. Throws `ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const monitor = await monitorLeader(node, { candidates: [a.pid, b.pid], onChange: ({ leader, term }) => console.log(term, String(leader)) });
 * await monitor.stop();
 * ```
 */
export function monitorLeader(from: Node | Context<any>, options: MonitorLeaderOptions): Promise<LeaderMonitor> {
  const checked = validate(options, [...ELECTION_OPTIONS, 'onChange']);
  const node = componentNode(from);
  return start(from, node, configOf(checked, nameFor(node, 'leader_monitor', checked.name), checked.onChange));
}
