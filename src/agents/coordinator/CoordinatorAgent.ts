import { InvalidArgumentError } from '../../errors.js';
import { markComponent } from '../../otp/internal/lifecycle.js';
import { observeCoordinator } from '../observe.js';
import { GenServer, type From, type GenServerSpec } from '../../otp/GenServer.js';
import { keelServer } from '../../otp/internal/keelServer.js';
import { isDown, type Down } from '../../runtime/messages.js';
import { isInstance } from '../../runtime/safe.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { statusOf } from '../Agent.js';
import type { AgentQuery } from '../registry/query.js';
import { capabilitiesOf, follow, FollowQuery, kindsOf, lookAgain, QueryJoined, queryJoined, unfollow } from './follow.js';
import { componentCaller, componentHandle, componentNode, nameFor, startComponent } from '../component.js';
import { RetryStoreRead, retryStoreRead, retryStoreReadLater } from '../internal/storeRetry.js';
import { addWorker, AggregateTimeout, aggregateTimeout, cancelRunning, dispatch, enqueue, event, Joined, NoWorkerDue, noWorkerDue, pidKey, removeWorker, readyAgain, Requeue, WorkflowTimeout, type State } from './dispatch.js';
import { statusOfRun } from './result.js';
import { addWaiter, finish, metricsOf, startRun } from './runs.js';
import { abortCompensations, compensationSettled } from './saga.js';
import { StuckCheck, stuckCheck } from './stuck.js';
import type { CancelResult, CoordinatorHandle, CoordinatorMetrics, CoordinatorOptions, Workflow, WorkflowResult, WorkflowStatus } from './types.js';
import { checkId, type Settings, validateOptions, validateWorkflow } from './validate.js';
import { forget, KINDS, persist, storeWrite } from './durable.js';
import { loadLate, resumeKept, resumeStored } from './resume.js';
import type { Kept, TaskEnds } from './state.js';
import { componentState, endsForGood, releaseComponentState, releaseIfInitFails } from '../internal/componentState.js';
import { type AgentStore, encodeValue } from '../store/AgentStore.js';
import { agentStoreFor } from '../store/stores.js';
import { kernelOf } from '../../runtime/kernel.js';

/** The coordinator's calls (its handle makes them). */
type Calls =
  | { request: { op: 'run'; workflow: Workflow; wait: true }; reply: WorkflowResult }
  | { request: { op: 'run'; workflow: Workflow; wait: false }; reply: { id: string } }
  | { request: { op: 'wait'; id: string }; reply: WorkflowResult | { error: 'not_found' } }
  | { request: { op: 'cancel'; id: string }; reply: CancelResult }
  | { request: { op: 'pause' | 'resume'; id: string }; reply: 'ok' | { error: 'not_found' | 'finished' } }
  | { request: { op: 'status'; id: string }; reply: WorkflowStatus | { error: 'not_found' } }
  | { request: { op: 'metrics' }; reply: CoordinatorMetrics }
  | { request: { op: 'workers' }; reply: { pid: Pid; capabilities: readonly string[]; kinds: '*' | readonly string[]; load: number }[] }
  | { request: { op: 'add'; pid: Pid }; reply: 'ok' | { error: 'noproc' | 'exists' } }
  | { request: { op: 'remove'; pid: Pid }; reply: 'ok' | { error: 'not_found' } };
type Request = Calls['request'];


// ---- the server -----------------------------------------------------------------------------------------

/** How long `start` waits for each initial worker's status (well within the 5 s start deadline). */
const STATUS_AT_START_MS = 1000;

interface Arg {
  readonly options: Settings;
  readonly workers: readonly Pid[];
  /** The pool as a registry query, followed as agents register. */
  readonly query: AgentQuery | undefined;
  readonly name: string;
  readonly store: AgentStore | undefined;
}

/** What a task's end does to its workflow: the dispatcher calls these through the state (see {@link TaskEnds}). */
const ENDS: TaskEnds = Object.freeze({ finish, compensationSettled });

function newKept(): Kept {
  return {
    workers: new Map(),
    runs: new Map(),
    history: new Map(),
    seq: 0,
    removed: new Set(),
    storeUnread: false,
    shadowed: new Set(),
    m: { completed: 0, failed: 0, cancelled: 0, rejected: 0, tasksCompleted: 0, tasksFailed: 0, reassigned: 0, timedOut: 0, left: 0, retried: 0 },
  };
}

/**
 * A request about a workflow this coordinator does not know, while its store is unread since the
 * start: the store is read first, so that a stored workflow is found (a cancel of it is not answered
 * not_found, to see it resume and run at the next read).
 */
function readFor(state: State, id: unknown): void {
  if (state.kept.storeUnread && state.store !== undefined && typeof id === 'string' && !state.runs.has(id) && !state.history.has(id)) loadLate(state);
}

const coordinatorSpec: GenServerSpec<State, { request: Request; reply: unknown }, never, Arg> = keelServer({
  async init({ options, workers: given, query, name, store }, ctx) {
    // the table of a predecessor under this name (killed, restarted by its supervisor), or a new one
    const { state: kept, resumed } = componentState(ctx.node, name, 'coordinator', newKept);
    // killed while it awaits its workers' statuses: a table made here goes with it (a later start reads its store)
    const initialized = releaseIfInitFails(ctx, name, kept, resumed);
    const state: State = { ctx, name, kept, store, options, workers: kept.workers, pool: [], fullBelow: 0, runs: kept.runs, history: kept.history, ready: [], head: 0, tail: 0, free: 0, m: kept.m, follow: undefined, dead: ctx.signal.aborted, probes: new Map(), ends: ENDS };
    // Keel's plumbing, not the coordinator's state: kept out of what Sys.getStatus shows (not enumerable)
    Object.defineProperty(state, 'ends', { enumerable: false });
    ctx.signal.addEventListener('abort', () => (state.dead = true), { once: true });
    if (resumed) {
      const r = resumeKept(state);
      event(state, 'resumed', { workflows: r.workflows, rerun: r.rerun, dropped: r.dropped }, { from: 'table' });
    }
    // a query's agents now, then each that registers later (a restarted agent's new pid too)
    if (query !== undefined) state.follow = follow(state, query);
    // (an agent taken out with removeWorker before a restart stays out)
    const workers = query === undefined ? given : query.pids().filter((p) => !kept.removed.has(pidKey(p)));
    // the initial pool: each worker says what it can do; one that does not answer is left out
    const statuses = await Promise.allSettled(workers.map((w) => statusOf(ctx, w, { timeout: Math.min(options.taskTimeoutMs, STATUS_AT_START_MS) })));
    statuses.forEach((s, i) => {
      // a status without readable capabilities (an array of strings) is refused as no answer is
      const status = s.status === 'fulfilled' ? s.value : undefined;
      const capabilities = capabilitiesOf(status);
      if (capabilities !== undefined) {
        if (!state.workers.has(pidKey(workers[i]!))) addWorker(state, workers[i]!, capabilities, kindsOf(status));
      } else event(state, 'worker_refused', {}, { worker: workers[i], error: s.status === 'rejected' ? s.reason : 'malformed_status' });
    });
    if (!resumed && store !== undefined) {
      // a new OS process: the store's active workflows resume, their tasks wait for workers that run them
      const r = resumeStored(state);
      event(state, 'resumed', { workflows: r.workflows, rerun: r.rerun, dropped: r.dropped }, { from: 'store' });
    } else if (kept.storeUnread && store !== undefined) loadLate(state); // its predecessor could not read the store: this one tries again
    // still unread: tried again on its own (its stored workflows go on then), not only before a new workflow
    if (kept.storeUnread && store !== undefined) retryStoreRead(ctx);
    initialized();
    return state;
  },

  handleCall(request, from, state, ctx) {
    switch (request?.op) {
      case 'run': {
        // the store could not be read at the start: read before a new workflow may take a stored one's id
        if (state.kept.storeUnread && state.store !== undefined) loadLate(state);
        // a run's caller waits from the start: a workflow that ends at once (no worker) answers it then
        const wf = startRun(state, request.workflow, request.wait ? (from as From<WorkflowResult>) : undefined);
        if (wf instanceof Error) return { reply: wf, state };
        if (!request.wait) return { reply: { id: wf.id }, state };
        return { noreply: true, state };
      }
      case 'wait': {
        readFor(state, request.id);
        const wf = state.runs.get(request.id);
        if (wf !== undefined) {
          addWaiter(wf, from as From<WorkflowResult>);
          return { noreply: true, state };
        }
        return { reply: state.history.get(request.id)?.result ?? { error: 'not_found' }, state };
      }
      case 'cancel': {
        readFor(state, request.id);
        const wf = state.runs.get(request.id);
        if (wf === undefined) return { reply: { error: state.history.has(request.id) ? 'finished' : 'not_found' }, state };
        const notified = cancelRunning(state, wf);
        // a compensating workflow stays failed: its compensations left are reported cancelled
        if (wf.state === 'compensating') abortCompensations(state, wf);
        else finish(state, wf, 'cancelled');
        notified.then((list) => GenServer.reply(from, { cancelled: true, notified: list }));
        return { noreply: true, state };
      }
      case 'pause':
      case 'resume': {
        readFor(state, request.id);
        const wf = state.runs.get(request.id);
        if (wf === undefined || wf.state === 'compensating') return { reply: { error: wf !== undefined || state.history.has(request.id) ? 'finished' : 'not_found' }, state };
        wf.state = request.op === 'pause' ? 'paused' : 'running';
        event(state, request.op === 'pause' ? 'workflow_paused' : 'workflow_resumed', {}, { workflow: wf.id });
        if (state.store !== undefined) persist(state, wf); // a new OS process resumes it paused or running as it was
        if (wf.state === 'running') {
          // aggregate steps that became ready while paused run now (they need no worker)
          for (const t of wf.order) if (t.state === 'ready' && t.spec.aggregate === true) enqueue(state, t);
        }
        dispatch(state);
        return { reply: 'ok', state };
      }
      case 'status': {
        readFor(state, request.id);
        const wf = state.runs.get(request.id);
        return { reply: wf !== undefined ? statusOfRun(wf) : (state.history.get(request.id)?.status ?? { error: 'not_found' }), state };
      }
      case 'metrics':
        return { reply: metricsOf(state), state };
      case 'workers':
        return { reply: [...state.workers.values()].map((w) => ({ pid: w.pid, capabilities: [...w.capabilities], kinds: w.kinds === undefined ? '*' as const : [...w.kinds], load: w.load })), state };
      case 'add': {
        if (state.workers.has(pidKey(request.pid))) return { reply: { error: 'exists' }, state };
        state.kept.removed.delete(pidKey(request.pid)); // asked for again: a followed query may bring it back too
        // ask for its capabilities without blocking the coordinator
        statusOf(ctx, request.pid, { timeout: state.options.taskTimeoutMs }).then(
          (s) => ctx.send(ctx.self, new Joined(request.pid, capabilitiesOf(s), kindsOf(s), from)),
          () => ctx.send(ctx.self, new Joined(request.pid, undefined, undefined, from)),
        );
        return { noreply: true, state };
      }
      case 'remove': {
        const w = state.workers.get(pidKey(request.pid));
        if (w === undefined) return { reply: { error: 'not_found' }, state };
        removeWorker(state, w, 'removed');
        if (state.follow !== undefined) state.kept.removed.add(w.key); // a followed query does not bring it back
        return { reply: 'ok', state };
      }
      default:
        // a malformed call straight to the process: the caller gets a typed error, the coordinator goes on
        return { reply: new InvalidArgumentError('request', 'a coordinator request (use the handle)', request), state };
    }
  },

  handleInfo(message, state, ctx) {
    if (isInstance(message, RetryStoreRead)) {
      if (state.kept.storeUnread && state.store !== undefined) {
        loadLate(state);
        if (state.kept.storeUnread) retryStoreReadLater(ctx, message);
      }
    } else if (isInstance(message, Joined)) {
      GenServer.reply(message.from, message.capabilities === undefined ? { error: 'noproc' } : addWorker(state, message.pid, message.capabilities, message.kinds));
    } else if (message === FollowQuery.message) {
      if (state.follow !== undefined) lookAgain(state, state.follow);
    } else if (isInstance(message, QueryJoined)) {
      if (state.follow !== undefined) queryJoined(state, state.follow, message);
    } else if (isInstance(message, Requeue)) {
      readyAgain(state, message.task);
    } else if (isInstance(message, AggregateTimeout)) {
      aggregateTimeout(state, message.attempt);
      dispatch(state);
    } else if (isInstance(message, NoWorkerDue)) {
      noWorkerDue(state, message.task);
    } else if (isInstance(message, StuckCheck)) {
      stuckCheck(state, message.wf);
    } else if (isInstance(message, WorkflowTimeout)) {
      const wf = message.wf;
      if (state.runs.get(wf.id) === wf) finish(state, wf, 'failed', undefined, 'timeout');
    } else if (isDown(message)) {
      const w = state.workers.get(pidKey((message as Down).pid as Pid));
      if (w !== undefined && w.watch.ref === (message as Down).ref) removeWorker(state, w, 'down', true);
    }
    return state;
  },

  terminate(reason, state) {
    if (state.follow !== undefined) unfollow(state, state.follow);
    for (const w of state.workers.values()) {
      if (w.watch.managed && state.ctx.node.monitors.available) state.ctx.node.monitors.demonitor(state.ctx, w.watch.ref);
    }
    // asked to stop (a normal exit): it ends for good, its table and its store records with it
    if (!endsForGood(reason)) return;
    releaseComponentState(state.ctx.node, state.name);
    // its store never read: its workflows ran in memory only, and the records it did not read are not its to delete
    if (kernelOf(state.ctx).stopping || state.kept.storeUnread) return;
    if (state.kept.shadowed.size === 0) storeWrite(state, '', (store) => store.transaction(() => {
      for (const kind of KINDS) store.deleteAll(state.name, kind);
    }));
    else for (const wf of state.runs.values()) forget(state, wf); // its own only: the shadowed ones stay for a later start
  },
}, 'a coordinator (use its handle)', 'bare');
markComponent(coordinatorSpec, 'coordinator', observeCoordinator); // an observer finds it, and reads it through the `observe` system call

// ---- the handle -------------------------------------------------------------------------------------------

function handleFor(node: Node, name: string, started: Pid, store: AgentStore | undefined): CoordinatorHandle {
  // the coordinator answers every call (a run when its workflow ends): no call timeout of its own
  const call = componentCaller<Calls>(node, name, { timeout: Infinity });
  const check = (workflow: Workflow): void => {
    validateWorkflow(workflow);
    // kept in the store: a workflow that is not plain data is refused at the call (ERR_NOT_SERIALIZABLE)
    if (store !== undefined) encodeValue(workflow, 'workflow');
  };
  return componentHandle<CoordinatorHandle>(node, name, started, {
    run: (workflow) => {
      check(workflow);
      return call({ op: 'run', workflow, wait: true });
    },
    submit: (workflow) => {
      check(workflow);
      return call({ op: 'run', workflow, wait: false });
    },
    wait: (id) => (checkId(id), call({ op: 'wait', id })),
    cancel: (id) => (checkId(id), call({ op: 'cancel', id })),
    pause: (id) => (checkId(id), call({ op: 'pause', id })),
    resume: (id) => (checkId(id), call({ op: 'resume', id })),
    status: (id) => (checkId(id), call({ op: 'status', id })),
    metrics: () => call({ op: 'metrics' }),
    addWorker: (w) => {
      if (!isPid(w)) throw new InvalidArgumentError('pid', 'a Pid', w);
      return call({ op: 'add', pid: w });
    },
    removeWorker: (w) => {
      if (!isPid(w)) throw new InvalidArgumentError('pid', 'a Pid', w);
      return call({ op: 'remove', pid: w });
    },
    workers: () => call({ op: 'workers' }),
  });
}

/**
 * A coordinator: runs workflows of tasks over a pool of agents. A task starts when the tasks it
 * depends on have completed, receives their results as `inputs` (by task id), and goes to the
 * least-loaded worker that runs its `kind` and has every capability it requires; a kind no worker
 * runs fails the workflow at once (`no_worker`) unless it sets `waitForWorkersMs`. A worker that
 * dies leaves the pool and its task goes to another worker; a task that times out is cancelled on
 * its worker and tried again, up to `maxTaskAttempts`; a task error is retried per the task's
 * `retry` policy. Aggregate steps run in the coordinator; a failed workflow runs its completed
 * tasks' `compensate` steps in reverse order. Finished workflows leave the active set; the last
 * `historySize` stay queryable.
 *
 * @example
 * ```ts
 * const coordinator = await CoordinatorAgent.start(node, { workers: [fetcher.pid, parser.pid] });
 * const result = await coordinator.run({ tasks: [
 *   { id: 'fetch', kind: 'fetch', payload: url, requires: ['http'] },
 *   { id: 'parse', kind: 'parse', dependsOn: ['fetch'] }, // runs after fetch, with inputs.fetch
 * ] });
 * console.log(result.status, result.results.parse, result.tasks.parse.worker);
 * ```
 */
export const CoordinatorAgent = {
  /** Starts a coordinator; bad options throw `ERR_INVALID_ARGUMENT` before anything starts. */
  start(from: Node | Context<any>, options: CoordinatorOptions = {}): Promise<CoordinatorHandle> {
    const init = validateOptions(options);
    const node = componentNode(from);
    const name = nameFor(node, 'coordinator', init.name);
    // opened now: a store that cannot be opened is a typed error of the start (ERR_STORE_UNAVAILABLE, ERR_PEER_MISSING)
    const store = agentStoreFor(node, init.store);
    return startComponent(from, coordinatorSpec, { options: init.options, workers: init.workers, query: init.query, name, store }, name).then((pid) => handleFor(node, name, pid, store));
  },
};
