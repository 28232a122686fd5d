import diagnostics from 'node:diagnostics_channel';
import { describe, expect, it } from 'vitest';
import {
  Agent,
  CoordinatorAgent,
  GenServer,
  isDown,
  isKeelError,
  Pid,
  Supervisor,
  Sys,
  validateWorkflow,
  type AgentHandle,
  type AgentOptions,
  type AgentTask,
  type CoordinatorHandle,
  type GenServerSpec,
  type TaskResult,
  type Workflow,
  type WorkflowTask,
  type WorkflowResult,
} from '../../../src/index.js';
import type { Kernel } from '../../../src/runtime/kernel.js';
import { PendingCall } from '../../../src/otp/internal/calls.js';
import { captureEvents, probe } from '../../../src/testing/index.js';
import { clockedNode, deferred, exitAndWait, expectKeelError, failure, idler, listOf, revokedProxy, thrown, UNREADABLE, useNodes, watch, type Deferred } from '../../support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

const key = (pid: Pid): string => Pid.format(pid);

/** What the gated workers did: each task start, and each abort of a running task's signal. */
interface Entry {
  readonly worker: string;
  readonly taskId: string;
  readonly what: 'start' | 'abort';
}

/** A journal the test can await: `until(pred, n)` resolves once `n` entries match. */
class Journal {
  readonly entries: Entry[] = [];
  readonly #waiters = new Set<{ pred: (e: Entry) => boolean; n: number; resolve: () => void }>();

  push(entry: Entry): void {
    this.entries.push(entry);
    for (const w of this.#waiters) {
      if (this.count(w.pred) >= w.n) {
        this.#waiters.delete(w);
        w.resolve();
      }
    }
  }

  count(pred: (e: Entry) => boolean): number {
    return this.entries.filter(pred).length;
  }

  until(pred: (e: Entry) => boolean, n = 1): Promise<void> {
    if (this.count(pred) >= n) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.add({ pred, n, resolve }));
  }

  started(taskId: string, worker?: string, n = 1): Promise<void> {
    return this.until((e) => e.what === 'start' && e.taskId === taskId && (worker === undefined || e.worker === worker), n);
  }

  aborted(taskId: string, worker?: string): Promise<void> {
    return this.until((e) => e.what === 'abort' && e.taskId === taskId && (worker === undefined || e.worker === worker));
  }

  /** The task ids `worker` started, in order. */
  of(worker: string, what: Entry['what'] = 'start'): string[] {
    return this.entries.filter((e) => e.worker === worker && e.what === what).map((e) => e.taskId);
  }

  /** The workers that started `taskId`, in order. */
  workersOf(taskId: string): string[] {
    return this.entries.filter((e) => e.taskId === taskId && e.what === 'start').map((e) => e.worker);
  }
}

/**
 * Gated workers: every task waits on its gate (by the coordinator's task id `<workflow>/<task>`),
 * records its start and its abort, and rejects when its signal aborts.
 */
function gatedPool(node: Kernel): {
  journal: Journal;
  gate(taskId: string): Deferred<unknown>;
  worker(label: string, capabilities?: string[], options?: Partial<AgentOptions>): Promise<AgentHandle>;
} {
  const journal = new Journal();
  const gates = new Map<string, Deferred<unknown>>();
  const gate = (taskId: string): Deferred<unknown> => {
    let g = gates.get(taskId);
    if (g === undefined) {
      g = deferred<unknown>();
      g.promise.catch(() => undefined);
      gates.set(taskId, g);
    }
    return g;
  };
  const worker = (label: string, capabilities: string[] = [], options: Partial<AgentOptions> = {}): Promise<AgentHandle> =>
    Agent.start(node, {
      capabilities,
      runTask: (task, _ctx, { signal }) => {
        journal.push({ worker: label, taskId: task.id, what: 'start' });
        return new Promise((resolve, reject) => {
          signal.addEventListener(
            'abort',
            () => {
              journal.push({ worker: label, taskId: task.id, what: 'abort' });
              reject(new Error('aborted'));
            },
            { once: true },
          );
          gate(task.id).promise.then(resolve, reject);
        });
      },
      ...options,
    });
  return { journal, gate, worker };
}

/** A process speaking the agent protocol by hand, recording what it gets: calls, casts and plain messages. */
interface ProtocolWorker {
  readonly pid: Pid;
  readonly tasks: AgentTask[];
  readonly casts: unknown[];
  readonly infos: unknown[];
}

/** `onRun` answers a task, or `undefined` to answer later (or never) through `from`. */
async function protocolWorker(
  node: Kernel,
  onRun: (task: AgentTask, from: Parameters<typeof GenServer.reply>[0]) => TaskResult | undefined,
  capabilities: string[] = [],
): Promise<ProtocolWorker> {
  const tasks: AgentTask[] = [];
  const casts: unknown[] = [];
  const infos: unknown[] = [];
  const spec: GenServerSpec<null, { request: any; reply: unknown }, unknown, null> = {
    init: () => null,
    handleCall(request, from, state) {
      if (request?.type === 'status') return { reply: { load: 0, capabilities, completed: 0, failed: 0 }, state };
      if (request?.type === 'run_task') {
        tasks.push(request.task as AgentTask);
        const r = onRun(request.task as AgentTask, from);
        return r === undefined ? { noreply: true, state } : { reply: r, state };
      }
      return { reply: undefined, state };
    },
    handleCast(cast, state) {
      casts.push(cast);
      return state;
    },
    handleInfo(message, state) {
      infos.push(message);
      return state;
    },
  };
  return { pid: await GenServer.start(node, spec, null), tasks, casts, infos };
}

/**
 * Counts the `run_task` calls made on `node`, through the documented `tracing:keel.call:start`
 * channel: `reached(n)` resolves once `n` were made (a busy loop shows up as a fast-growing count).
 */
function runTaskCalls(node: Kernel): { readonly count: number; reached(n: number): Promise<void>; stop(): void } {
  let count = 0;
  const waiters: { n: number; resolve: () => void }[] = [];
  const onStart = (message: unknown): void => {
    const c = message as { node?: string; request?: { type?: string } };
    if (c.node !== node.name || c.request?.type !== 'run_task') return;
    count++;
    for (const w of waiters.filter((x) => count >= x.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
  };
  diagnostics.subscribe('tracing:keel.call:start', onStart);
  return {
    get count() {
      return count;
    },
    reached: (n) => (count >= n ? Promise.resolve() : new Promise((resolve) => waiters.push({ n, resolve }))),
    stop: () => diagnostics.unsubscribe('tracing:keel.call:start', onStart),
  };
}

/** What a worker's death is reported as when it exhausts a task's attempts (two spellings today: see the report). */
const WORKER_DOWN = ['down']; // one reason for a worker's death, whichever of the monitor and the failed call is seen first

/** A chain of `n` tasks, each depending on the one before. */
function chain(id: string, n: number): Workflow {
  return { id, tasks: Array.from({ length: n }, (_, i) => ({ id: `t${i}`, kind: 'step', payload: i, ...(i === 0 ? {} : { dependsOn: [`t${i - 1}`] }) })) };
}

/** Entries of the node's monitor manager that target `pid`. */
function monitorsOn(node: Kernel, pid: Pid): number {
  return listOf(node).filter((e) => key(e.target) === key(pid)).length;
}

// ---- tests ------------------------------------------------------------------------------------

describe('CoordinatorAgent: workflows', () => {
  it('runs a workflow: steps advance as their dependencies complete, results by task id', async () => {
    const node = track();
    const order: string[] = [];
    const run = (task: AgentTask) => {
      order.push(task.id);
      return `${task.kind}:${String(task.payload)}`;
    };
    const a = await Agent.start(node, { capabilities: ['fetch'], runTask: run });
    const b = await Agent.start(node, { capabilities: ['parse'], runTask: run });
    const coordinator = await CoordinatorAgent.start(node, { workers: [a.pid, b.pid] });
    const result = await coordinator.run({
      id: 'w1',
      tasks: [
        { id: 'fetch', kind: 'fetch', payload: 1, requires: ['fetch'] },
        { id: 'parse', kind: 'parse', payload: 2, requires: ['parse'], dependsOn: ['fetch'] },
        { id: 'store', kind: 'store', payload: 3, dependsOn: ['parse'] },
      ],
    });
    expect(result.status).toBe('completed');
    expect(result.results).toEqual({ fetch: 'fetch:1', parse: 'parse:2', store: 'store:3' });
    expect(order).toEqual(['w1/fetch', 'w1/parse', 'w1/store']);
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, completed: 1 });
    expect(m.tasks).toMatchObject({ completed: 3, reassigned: 0 });
  });

  it('a diamond (a → b, a → c, b + c → d): b and c run at once on two workers, d only after both', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid] });
    const run = watch(
      coordinator.run({
        id: 'dia',
        tasks: [
          { id: 'a', kind: 'k' },
          { id: 'b', kind: 'k', dependsOn: ['a'] },
          { id: 'c', kind: 'k', dependsOn: ['a'] },
          { id: 'd', kind: 'k', dependsOn: ['b', 'c'] },
        ],
      }),
    );
    await journal.started('dia/a');
    await node.idle();
    expect(journal.count((e) => e.what === 'start')).toBe(1); // nothing else runs before a completes
    expect(await coordinator.status('dia')).toMatchObject({ state: 'running', tasks: { total: 4, completed: 0, running: 1, waiting: 3, failed: 0 } });
    gate('dia/a').resolve('A');
    await journal.started('dia/b');
    await journal.started('dia/c');
    // both run before either completes, on different workers
    expect(new Set([...journal.workersOf('dia/b'), ...journal.workersOf('dia/c')])).toEqual(new Set(['w1', 'w2']));
    expect(await coordinator.status('dia')).toMatchObject({ tasks: { completed: 1, running: 2, waiting: 1 } });
    gate('dia/b').resolve('B');
    await node.idle();
    expect(journal.workersOf('dia/d')).toEqual([]); // c still runs: d waits
    expect(await coordinator.status('dia')).toMatchObject({ tasks: { completed: 2, running: 1, waiting: 1 } });
    gate('dia/c').resolve('C');
    await journal.started('dia/d');
    gate('dia/d').resolve('D');
    await node.idle();
    expect(run.status).toBe('resolved');
    expect(run.value).toMatchObject({ id: 'dia', status: 'completed', results: { a: 'A', b: 'B', c: 'C', d: 'D' }, reassigned: 0 });
    expect(journal.entries.filter((e) => e.what === 'start').map((e) => e.taskId)).toEqual(['dia/a', expect.any(String), expect.any(String), 'dia/d']);
  });

  it('a task goes only to workers with every capability it requires; independent tasks to the least loaded', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const gpu = await worker('gpu', ['gpu', 'cpu']);
    const c1 = await worker('c1', ['cpu']);
    const c2 = await worker('c2', ['cpu']);
    const coordinator = await CoordinatorAgent.start(node, { workers: [gpu.pid, c1.pid, c2.pid], maxTasksPerWorker: 2 });
    expect((await coordinator.workers()).map((w) => [key(w.pid), w.capabilities, w.load])).toEqual([
      [key(gpu.pid), ['gpu', 'cpu'], 0],
      [key(c1.pid), ['cpu'], 0],
      [key(c2.pid), ['cpu'], 0],
    ]);
    const run = watch(
      coordinator.run({
        id: 'w',
        tasks: [
          { id: 'g1', kind: 'render', requires: ['gpu'] },
          { id: 'g2', kind: 'render', requires: ['gpu'] },
          { id: 'g3', kind: 'render', requires: ['gpu'] },
          { id: 'i1', kind: 'sum' },
          { id: 'i2', kind: 'sum' },
          { id: 'i3', kind: 'sum', requires: ['cpu'] },
          { id: 'i4', kind: 'sum' },
        ],
      }),
    );
    await journal.until((e) => e.what === 'start', 6);
    await node.idle();
    // the gpu worker is full with two gpu tasks; the third waits for it, not for the idle cpu workers
    expect(journal.of('gpu').sort()).toEqual(['w/g1', 'w/g2']);
    expect(journal.of('c1')).toHaveLength(2);
    expect(journal.of('c2')).toHaveLength(2);
    expect([...journal.of('c1'), ...journal.of('c2')].sort()).toEqual(['w/i1', 'w/i2', 'w/i3', 'w/i4']);
    expect((await coordinator.workers()).map((w) => w.load)).toEqual([2, 2, 2]);
    expect(await coordinator.status('w')).toMatchObject({ tasks: { running: 6, waiting: 1 } });
    expect((await coordinator.metrics()).tasks).toMatchObject({ queued: 1, running: 6 });
    expect((await coordinator.metrics()).workers).toMatchObject({ total: 3, busy: 3 });

    // c1 empties, c2 keeps one: a new independent task goes to c1 (load 0), not c2 (load 1)
    for (const id of journal.of('c1')) gate(id).resolve(id);
    gate(journal.of('c2')[0]!).resolve('x');
    await node.idle();
    expect((await coordinator.workers()).map((w) => w.load)).toEqual([2, 0, 1]);
    const extra = watch(coordinator.run({ id: 'x', tasks: [{ id: 'one', kind: 'sum' }] }));
    await journal.started('x/one');
    expect(journal.workersOf('x/one')).toEqual(['c1']);

    // g3 still waits for the gpu worker; when it has room, g3 runs there
    expect(journal.workersOf('w/g3')).toEqual([]);
    gate('w/g1').resolve('G1');
    await journal.started('w/g3');
    expect(journal.workersOf('w/g3')).toEqual(['gpu']);
    for (const id of ['w/g2', 'w/g3', journal.of('c2')[1]!, 'x/one']) gate(id).resolve(id);
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed' });
    expect(extra.value).toMatchObject({ status: 'completed' });
    expect(Object.keys(run.value!.results).sort()).toEqual(['g1', 'g2', 'g3', 'i1', 'i2', 'i3', 'i4']);
  });

  it('an idle worker is found in join order as workers fill, empty and leave the pool (a removal renumbers it)', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const [a, b, c, d, e] = await Promise.all(['a', 'b', 'c', 'd', 'e'].map((l) => worker(l)));
    const coordinator = await CoordinatorAgent.start(node, { workers: [a!.pid, b!.pid, c!.pid, d!.pid, e!.pid] });
    const all = (): string[][] => ['a', 'b', 'c', 'd', 'e'].map((l) => journal.of(l));
    const first = watch(coordinator.run({ id: 'w', tasks: ['t1', 't2', 't3', 't4', 't5'].map((id) => ({ id, kind: 'k' })) }));
    await journal.until((x) => x.what === 'start', 5);
    expect(all()).toEqual([['w/t1'], ['w/t2'], ['w/t3'], ['w/t4'], ['w/t5']]);
    // the second leaves the pool while busy (c, d and e move down one place); its task waits for room
    expect(await coordinator.removeWorker(b!.pid)).toBe('ok');
    await journal.aborted('w/t2', 'b');
    // the last empties: the waiting task goes there, past a, c and d (full)
    gate('w/t5').resolve(5);
    await journal.started('w/t2', 'e');
    const second = watch(coordinator.run({ id: 'v', tasks: [{ id: 'u1', kind: 'k' }] }));
    await node.idle();
    expect(journal.workersOf('v/u1')).toEqual([]);
    // c empties: the new task goes to c (now second in the pool), though the scan had gone past it
    gate('w/t3').resolve(3);
    await journal.started('v/u1');
    expect(journal.workersOf('v/u1')).toEqual(['c']);
    expect((await coordinator.workers()).map((w) => [key(w.pid), w.load])).toEqual([a, c, d, e].map((h) => [key(h!.pid), 1]));
    // a and d empty: the next task goes to a, the first in join order
    gate('w/t1').resolve(1);
    gate('w/t4').resolve(4);
    await node.idle();
    const third = watch(coordinator.run({ id: 'x', tasks: [{ id: 'y', kind: 'k' }] }));
    await journal.started('x/y');
    expect(journal.workersOf('x/y')).toEqual(['a']);
    for (const id of ['w/t2', 'v/u1', 'x/y']) gate(id).resolve(id);
    await node.idle();
    expect([first.value?.status, second.value?.status, third.value?.status]).toEqual(['completed', 'completed', 'completed']);
    expect(first.value!.tasks.t2).toMatchObject({ worker: e!.pid, attempts: 2 });
    expect(all()).toEqual([['w/t1', 'x/y'], ['w/t2'], ['w/t3', 'v/u1'], ['w/t4'], ['w/t5', 'w/t2']]);
  });

  it('a task no worker can do waits (status: waiting), and runs once a capable worker joins with addWorker', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const plain = await worker('plain');
    const coordinator = await CoordinatorAgent.start(node, { workers: [plain.pid] });
    const events = captureEvents(node, ['keel.coordinator.worker_joined']);
    // the workflow asks to wait for a worker (without it, a task nobody can run fails it at once)
    const { id } = await coordinator.submit({ tasks: [{ id: 'rare', kind: 'k', requires: ['rare'] }], waitForWorkersMs: Infinity });
    expect(id).toMatch(/^wf-\d+$/);
    await node.idle();
    expect(journal.entries).toEqual([]);
    expect(await coordinator.status(id)).toMatchObject({ state: 'running', tasks: { total: 1, running: 0, waiting: 1 } });
    expect((await coordinator.metrics()).tasks).toMatchObject({ queued: 1, running: 0 });

    const special = await worker('special', ['rare']);
    expect(await coordinator.addWorker(special.pid)).toBe('ok');
    expect(await coordinator.addWorker(special.pid)).toEqual({ error: 'exists' });
    await journal.started(`${id}/rare`, 'special');
    expect(events.events.map((e) => key(e.metadata.worker as Pid))).toEqual([key(special.pid)]);
    expect(events.events[0]!.metadata.capabilities).toEqual(['rare']);
    gate(`${id}/rare`).resolve('done');
    expect(await coordinator.wait(id)).toMatchObject({ status: 'completed', results: { rare: 'done' } });
    expect(journal.of('plain')).toEqual([]);
  });

  it('addWorker of a dead process answers noproc; removeWorker takes a worker out (not_found for a stranger)', async () => {
    const node = track();
    const { worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const dead = idler(node);
    node.exit(dead, 'kill');
    expect(await coordinator.addWorker(dead)).toEqual({ error: 'noproc' });
    expect(await coordinator.removeWorker(w2.pid)).toEqual({ error: 'not_found' });
    expect(await coordinator.addWorker(w2.pid)).toBe('ok');
    expect(monitorsOn(node, w1.pid)).toBe(1);
    expect(await coordinator.removeWorker(w1.pid)).toBe('ok');
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(w2.pid)]);
    expect(monitorsOn(node, w1.pid)).toBe(0); // its monitor is released with it
    expect((await coordinator.metrics()).workers).toMatchObject({ total: 1, left: 1 });
  });
});

describe('CoordinatorAgent: failures', () => {
  it("reassigns a dead worker's task, and the worker leaves the pool", async () => {
    const node = track();
    const victim = await Agent.start(node, {
      capabilities: [],
      runTask: (_t, ctx) => {
        ctx.exit(new Error('chaos'));
        return new Promise(() => {});
      },
    });
    const healthy = await Agent.start(node, { capabilities: [], runTask: () => 'done' });
    const coordinator = await CoordinatorAgent.start(node, { workers: [victim.pid, healthy.pid] });
    // `victim.pid` follows the name: after keel.agents restarts it, it is the new pid
    const victimPid = victim.pid;
    const p = probe(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the test awaits this Down
    p.ctx.monitor(victimPid);
    const result = await coordinator.run({ tasks: [{ id: 't', kind: 'k' }] });
    expect(result).toMatchObject({ status: 'completed', results: { t: 'done' }, reassigned: 1 });
    await p.receive(isDown);
    const workers = (await coordinator.workers()).map((w) => key(w.pid));
    expect(workers).toEqual([key(healthy.pid)]);
    expect(workers).not.toContain(key(victimPid));
  });

  it("a worker's death mid-task: the task is reassigned (result, metrics, event), the worker leaves, its monitor is released", async () => {
    const node = track();
    const events = captureEvents(node, ['keel.coordinator.']);
    const { journal, gate, worker } = gatedPool(node);
    const victim = await worker('victim');
    const healthy = await worker('healthy');
    const coordinator = await CoordinatorAgent.start(node, { workers: [victim.pid, healthy.pid] });
    const victimPid = victim.pid;
    expect(listOf(node).filter((e) => e.tag === 'coordinator').map((e) => key(e.target)).sort()).toEqual([key(victimPid), key(healthy.pid)].sort());
    const run = watch(coordinator.run({ id: 'w', tasks: [{ id: 't', kind: 'k', payload: 'p' }] }));
    await journal.started('w/t', 'victim');
    const p = probe(node);
    // eslint-disable-next-line keel/no-unmanaged-monitor -- the test awaits this Down
    p.ctx.monitor(victimPid);
    node.exit(victimPid, 'kill');
    await p.receive(isDown);
    await journal.started('w/t', 'healthy');
    expect(journal.aborted('w/t', 'victim')).toBeDefined();
    gate('w/t').resolve('ok');
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: 'ok' }, reassigned: 1 });
    const m = await coordinator.metrics();
    expect(m.tasks).toMatchObject({ completed: 1, reassigned: 1, running: 0 });
    expect(m.workers).toMatchObject({ total: 1, left: 1, busy: 0 });
    const reassigned = events.events.filter((e) => e.event === 'keel.coordinator.task_reassigned');
    expect(reassigned).toHaveLength(1);
    expect(reassigned[0]!.metadata).toMatchObject({ workflow: 'w', task: 't', reassigned: true });
    expect(key(reassigned[0]!.metadata.worker as Pid)).toBe(key(victimPid));
    expect(reassigned[0]!.measurements).toEqual({ attempt: 1 });
    const left = events.events.filter((e) => e.event === 'keel.coordinator.worker_left');
    expect(left.map((e) => [key(e.metadata.worker as Pid), e.metadata.reason])).toEqual([[key(victimPid), 'down']]);
    // out of the pool (the agent restarted by keel.agents under its name is a new pid, not re-added)
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(healthy.pid)]);
    expect(key(victim.pid)).not.toBe(key(victimPid));
    expect(monitorsOn(node, victimPid)).toBe(0);
    expect(monitorsOn(node, healthy.pid)).toBe(1);
  });

  it('maxTaskAttempts: a task that kills every worker it meets fails the workflow after N attempts, with the reason', async () => {
    const node = track();
    const killed: string[] = [];
    const killer = (label: string) =>
      Agent.start(node, {
        capabilities: [],
        runTask: (task, ctx) => {
          killed.push(`${label}:${task.id}`);
          ctx.exit(new Error('poison'));
          return new Promise(() => {});
        },
      });
    const ks = [await killer('k1'), await killer('k2'), await killer('k3'), await killer('k4')];
    const first = ks.map((k) => k.pid);
    const coordinator = await CoordinatorAgent.start(node, { workers: first, maxTaskAttempts: 3 });
    const result = await coordinator.run({ id: 'poison', tasks: [{ id: 't', kind: 'k' }] });
    expect(result).toMatchObject({ id: 'poison', status: 'failed', failedTask: 't', reassigned: 2 });
    expect(WORKER_DOWN).toContain(result.error);
    expect(killed).toEqual(['k1:poison/t', 'k2:poison/t', 'k3:poison/t']);
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, failed: 1 });
    expect(m.tasks).toMatchObject({ failed: 1, reassigned: 2 });
    expect(m.workers).toMatchObject({ total: 1, left: 3 });
    expect((await coordinator.workers()).map((w) => key(w.pid))).toEqual([key(first[3]!)]);
    await node.idle();
    for (const pid of first.slice(0, 3)) expect(monitorsOn(node, pid)).toBe(0);
    expect(await coordinator.status('poison')).toMatchObject({ state: 'failed', tasks: { failed: 1, completed: 0 } });
  });

  it('task timeout: the call times out, cancel_task is sent to the worker, the task is tried again, timedOut counts it', async () => {
    const { node, clock } = clockedNode(track);
    const events = captureEvents(node, ['keel.coordinator.task_']);
    // w1 never answers its first task (it hangs); later tasks, and every task of w2, are answered at once
    let w1Calls = 0;
    const w1 = await protocolWorker(node, (task) => (w1Calls++ === 0 ? undefined : { ok: true, result: `w1:${task.id}` }));
    const w2 = await protocolWorker(node, (task) => ({ ok: true, result: `w2:${task.id}` }));
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid], taskTimeoutMs: 1000 });
    const run = watch(coordinator.run({ id: 'slow', tasks: [{ id: 't', kind: 'k' }] }));
    await node.idle();
    expect(w1.tasks.map((t) => t.id)).toEqual(['slow/t']);
    await clock.advance(999);
    expect(run).toMatchObject({ status: 'pending' });
    expect(w1.tasks.length + w2.tasks.length).toBe(1);
    await clock.advance(1);
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: expect.stringMatching(/^w[12]:slow\/t$/) }, reassigned: 1 });
    expect(w1.tasks.length + w2.tasks.length).toBe(2);
    // the timed-out worker was told to stop (as a cast or a plain message: see the regression test below)
    expect([...w1.casts, ...w1.infos]).toEqual([{ type: 'cancel_task', taskId: 'slow/t' }]);
    const m = await coordinator.metrics();
    expect(m.tasks).toMatchObject({ timedOut: 1, reassigned: 1, completed: 1, running: 0 });
    expect(m.workers).toMatchObject({ total: 2, left: 0 }); // a slow worker stays in the pool
    expect(events.events.map((e) => [e.event, e.metadata.reason, e.measurements.attempt])).toEqual([
      ['keel.coordinator.task_timeout', undefined, 1],
      ['keel.coordinator.task_reassigned', 'timeout', 1],
    ]);
    expect(key(events.events[0]!.metadata.worker as Pid)).toBe(key(w1.pid));
    expect(events.events[1]!.metadata.reassigned).toBe(false);
  });

  // Regression: the coordinator sends `cancel_task` with sendSupervised, i.e. as a plain message, but the
  // agent protocol (Agent.ts, API.md) defines it as a GenServer cast and Agent only handles it in
  // handleCast: the Agent reports it as keel.gen_server.unexpected_message and its task runs on.
  // cancel() still answers ok outcomes (the message was enqueued), so nobody notices.
  it("cancel: each assigned Agent's runTask signal aborts and its load drops", async () => {
    const node = track();
    const { journal, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid] });
    const { id } = await coordinator.submit({ id: 'c', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k' }] });
    await journal.started('c/a');
    await journal.started('c/b');
    await coordinator.cancel(id);
    await node.idle();
    expect(journal.entries.filter((e) => e.what === 'abort').map((e) => e.taskId).sort()).toEqual(['c/a', 'c/b']);
    expect((await coordinator.workers()).map((w) => w.load)).toEqual([0, 0]);
  });

  // Regression (same cause as above): a failed task or a workflow timeout leaves the workflow's other tasks running on their Agents.
  it("a task's failure and a workflow timeout abort the workflow's other running tasks on their Agents", async () => {
    const { node, clock } = clockedNode(track);
    const { journal, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const bad = await Agent.start(node, { capabilities: ['bad'], runTask: () => Promise.reject(new Error('boom')) });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const failed = watch(coordinator.run({ id: 'f', waitForWorkersMs: Infinity, tasks: [{ id: 'long', kind: 'k' }, { id: 'boom', kind: 'k', requires: ['bad'] }] }));
    await journal.started('f/long');
    await coordinator.addWorker(bad.pid);
    await node.idle();
    expect(failed.value).toMatchObject({ status: 'failed', failedTask: 'boom' });
    expect(await coordinator.removeWorker(bad.pid)).toBe('ok');
    const timedOut = watch(coordinator.run({ id: 'wt', timeoutMs: 500, tasks: [{ id: 'x', kind: 'k' }] }));
    await node.idle();
    await clock.advance(500);
    await node.idle();
    expect(timedOut.value).toMatchObject({ status: 'failed', error: 'timeout' });
    expect(journal.of('w1', 'abort')).toEqual(['f/long', 'wt/x']);
  });

  // Regression (same cause as above, and the 'duplicate_task' requeue): when a task times out on an Agent, the Agent
  // keeps running it (the cancel is ignored); the retry goes to that same Agent (least loaded again),
  // which answers 'duplicate_task'; the coordinator requeues and calls it again at once, forever: a
  // busy loop until the first run ends. node.idle() never comes (the guard below gives up after 1 s).
  it('a task timing out on an Agent is aborted there and retried, without a busy loop', async () => {
    const { node, clock } = clockedNode(track);
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid], taskTimeoutMs: 1000 });
    const run = watch(coordinator.run({ id: 'slow', tasks: [{ id: 't', kind: 'k' }] }));
    await journal.started('slow/t', 'w1');
    await node.idle();
    const calls = runTaskCalls(node);
    try {
      const settled = clock
        .advance(1000)
        .then(() => journal.started('slow/t', 'w1', 2))
        .then(() => node.idle())
        .then(() => 'retried once, then idle');
      const outcome = await Promise.race([calls.reached(50).then(() => 'busy loop'), settled]);
      gate('slow/t').resolve('done'); // ends the loop either way
      await node.idle();
      expect(outcome).toBe('retried once, then idle');
      expect(calls.count).toBe(1);
      expect(journal.of('w1', 'abort')).toEqual(['slow/t']);
      expect(run.value).toMatchObject({ status: 'completed', reassigned: 1 });
    } finally {
      calls.stop();
    }
  });

  // Regression: after a timeout the task goes back to the least-loaded capable worker, which is the one that
  // just timed out (its load dropped back, and it comes first in the pool): the retry lands there again.
  it('task timeout: the retry goes to another worker than the one that timed out', async () => {
    const { node, clock } = clockedNode(track);
    let w1Calls = 0;
    const w1 = await protocolWorker(node, () => (w1Calls++ === 0 ? undefined : { ok: true, result: 'w1' }));
    const w2 = await protocolWorker(node, () => ({ ok: true, result: 'w2' }));
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid], taskTimeoutMs: 1000 });
    const run = watch(coordinator.run({ id: 'slow', tasks: [{ id: 't', kind: 'k' }] }));
    await node.idle();
    await clock.advance(1000);
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: 'w2' } });
    expect([w1.tasks.length, w2.tasks.length]).toEqual([1, 1]);
  });

  it('a per-task timeoutMs overrides taskTimeoutMs; past maxTaskAttempts timeouts fail the workflow with "timeout"', async () => {
    const { node, clock } = clockedNode(track);
    const w1 = await protocolWorker(node, () => undefined); // never answers
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid], taskTimeoutMs: 60_000, maxTaskAttempts: 2 });
    const run = watch(coordinator.run({ id: 'quick', tasks: [{ id: 't', kind: 'k', timeoutMs: 100 }] }));
    for (let attempt = 1; attempt <= 2; attempt++) {
      await node.idle();
      expect(w1.tasks).toHaveLength(attempt);
      await clock.advance(100);
    }
    await node.idle();
    expect(run.value).toMatchObject({ status: 'failed', failedTask: 't', error: 'timeout', reassigned: 1 });
    expect((await coordinator.metrics()).tasks).toMatchObject({ timedOut: 2, failed: 1, running: 0, reassigned: 1 });
    expect([...w1.casts, ...w1.infos]).toEqual([
      { type: 'cancel_task', taskId: 'quick/t' },
      { type: 'cancel_task', taskId: 'quick/t' },
    ]);
  });

  it.each([
    ['throws', (): never => { throw new Error('boom'); }],
    ['rejects', () => Promise.reject(new Error('boom'))],
  ])('a task that %s fails the workflow (failedTask, error); its dependents never start; a late answer changes nothing', async (_how, fail) => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const bad = await Agent.start(node, { capabilities: ['bad'], runTask: fail });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const run = watch(
      coordinator.run({
        id: 'f',
        waitForWorkersMs: Infinity,
        tasks: [
          { id: 'long', kind: 'k' },
          { id: 'boom', kind: 'k', requires: ['bad'] },
          { id: 'after', kind: 'k', dependsOn: ['boom'] },
        ],
      }),
    );
    await journal.started('f/long', 'w1');
    expect(await coordinator.addWorker(bad.pid)).toBe('ok');
    await node.idle();
    expect(run.status).toBe('resolved');
    const r = run.value!;
    expect(r).toMatchObject({ id: 'f', status: 'failed', failedTask: 'boom', results: {}, reassigned: 0 });
    expect((r.error as Error).message).toBe('boom');
    expect(journal.workersOf('f/after')).toEqual([]);
    expect(await coordinator.status('f')).toMatchObject({ state: 'failed', tasks: { total: 3, completed: 0, failed: 1 } });
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, failed: 1 });
    expect(m.tasks).toMatchObject({ failed: 1, completed: 0 });
    gate('f/long').resolve('too late'); // a late answer changes nothing
    await node.idle();
    expect((await coordinator.metrics()).tasks).toMatchObject({ completed: 0, failed: 1, running: 0 });
    expect((await coordinator.workers()).map((w) => w.load)).toEqual([0, 0]);
    expect(await coordinator.wait('f')).toMatchObject({ status: 'failed' });
  });

  it('a worker answering { ok: false, error } fails the workflow with that error, and cancel_task goes to its other running task', async () => {
    const node = track();
    const holder = await protocolWorker(node, () => undefined, ['long']); // runs its task for ever
    const failer = await protocolWorker(node, () => ({ ok: false, error: 'nope' }));
    const coordinator = await CoordinatorAgent.start(node, { workers: [holder.pid, failer.pid] });
    const r = await coordinator.run({
      id: 'n',
      tasks: [
        { id: 'long', kind: 'k', requires: ['long'] },
        { id: 'a', kind: 'k' },
        { id: 'b', kind: 'k', dependsOn: ['a'] },
      ],
    });
    expect(r).toMatchObject({ status: 'failed', failedTask: 'a', error: 'nope', reassigned: 0 });
    await node.idle();
    expect(failer.tasks.map((t) => t.id)).toEqual(['n/a']);
    expect(holder.tasks.map((t) => t.id)).toEqual(['n/long']);
    expect([...holder.casts, ...holder.infos]).toEqual([{ type: 'cancel_task', taskId: 'n/long' }]);
    expect([...failer.casts, ...failer.infos]).toEqual([]);
  });

  it('an answer whose fields answer once, then throw, is read once: the task completes with what it answered, nothing wedges', async () => {
    const node = track();
    const once = (value: unknown): (() => unknown) => {
      let reads = 0;
      return () => {
        if (reads++ > 0) throw new Error('read twice');
        return value;
      };
    };
    const w = await protocolWorker(node, () => Object.defineProperties({}, { ok: { get: once(true), enumerable: true }, result: { get: once('r'), enumerable: true } }) as TaskResult);
    const f = await protocolWorker(node, () => Object.defineProperties({}, { ok: { get: once(false), enumerable: true }, error: { get: once('nope'), enumerable: true } }) as TaskResult, ['f']);
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid, f.pid] });
    expect(await coordinator.run({ id: 'once', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] })).toMatchObject({
      status: 'completed',
      results: { a: 'r', b: 'r' },
    });
    expect(await coordinator.run({ id: 'once-f', tasks: [{ id: 'a', kind: 'k', requires: ['f'] }] })).toMatchObject({ status: 'failed', failedTask: 'a', error: 'nope' });
    expect((await coordinator.metrics()).tasks).toMatchObject({ completed: 2, failed: 1, running: 0 });
  });

  it('workflow timeoutMs: the workflow fails with "timeout" (no failedTask); cancel_task goes to its running task', async () => {
    const { node, clock } = clockedNode(track);
    const w1 = await protocolWorker(node, () => undefined);
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid], taskTimeoutMs: 10_000 });
    const run = watch(coordinator.run({ id: 'wt', timeoutMs: 500, tasks: [{ id: 't', kind: 'k' }, { id: 'u', kind: 'k', dependsOn: ['t'] }] }));
    await node.idle();
    await clock.advance(499);
    expect(run).toMatchObject({ status: 'pending' });
    await clock.advance(1);
    await node.idle();
    expect(run.value).toMatchObject({ status: 'failed', error: 'timeout', startedAt: 1_000_000, finishedAt: 1_000_500, results: {} });
    expect(run.value).not.toHaveProperty('failedTask');
    expect([...w1.casts, ...w1.infos]).toEqual([{ type: 'cancel_task', taskId: 'wt/t' }]);
    expect(w1.tasks.map((t) => t.id)).toEqual(['wt/t']);
    expect((await coordinator.metrics()).workflows).toMatchObject({ active: 0, failed: 1 });
    expect((await coordinator.metrics()).tasks).toMatchObject({ timedOut: 0 });
    await clock.advance(10_000); // the abandoned call's own deadline passes: nothing more happens
    await node.idle();
    expect((await coordinator.metrics()).tasks).toMatchObject({ timedOut: 0, reassigned: 0, running: 0 });
  });

  it('a workflow that finishes in time leaves no timer behind', async () => {
    const { node, clock } = clockedNode(track);
    const w = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    expect(await coordinator.run({ id: 'ok', timeoutMs: 500, tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed' });
    expect(node.info(coordinator.pid)?.timers).toBe(0);
    await clock.advance(1000);
    expect(await coordinator.status('ok')).toMatchObject({ state: 'completed' });
  });
});

describe('CoordinatorAgent: cancel, pause, resume', () => {
  it('cancel sends cancel_task to every assigned worker and reports each one (worker, taskId, outcome); run() resolves cancelled', async () => {
    const node = track();
    const { journal, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const w3 = await worker('w3');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid, w3.pid] });
    const run = watch(
      coordinator.run({
        id: 'c',
        tasks: [
          { id: 'a', kind: 'k' },
          { id: 'b', kind: 'k' },
          { id: 'z', kind: 'k', dependsOn: ['a', 'b'] },
        ],
      }),
    );
    await journal.started('c/a');
    await journal.started('c/b');
    const r = await coordinator.cancel('c');
    expect('cancelled' in r && r.cancelled).toBe(true);
    const notified = (r as Extract<typeof r, { cancelled: true }>).notified;
    const assigned = [
      [journal.workersOf('c/a')[0]!, 'c/a'],
      [journal.workersOf('c/b')[0]!, 'c/b'],
    ];
    const labelOf = new Map([[key(w1.pid), 'w1'], [key(w2.pid), 'w2'], [key(w3.pid), 'w3']]);
    expect(notified.map((n) => [labelOf.get(key(n.worker)), n.taskId]).sort()).toEqual(assigned.sort());
    for (const n of notified) expect(n.outcome).toMatchObject({ ok: true, attempts: 1 });
    await node.idle();
    expect(run.value).toMatchObject({ id: 'c', status: 'cancelled', results: {}, reassigned: 0 });
    expect(run.value).not.toHaveProperty('error');
    expect(journal.workersOf('c/z')).toEqual([]);
    expect(await coordinator.cancel('c')).toEqual({ error: 'finished' });
    expect(await coordinator.cancel('nope')).toEqual({ error: 'not_found' });
    expect(await coordinator.wait('c')).toMatchObject({ status: 'cancelled' });
    expect(await coordinator.status('c')).toMatchObject({ state: 'cancelled' });
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, cancelled: 1, failed: 0 });
    expect(m.tasks).toMatchObject({ failed: 0, completed: 0 });
    // that the Agents' tasks really stop: see the regression test on cancel_task above
  });

  // Regression: a cancelled (or failed) workflow's remembered status still counts its cancelled tasks as
  // running: cancelRunning clears task.current but leaves task.state 'running', and statusOfRun
  // counts state === 'running'.
  it('the status of a cancelled workflow has no running tasks', async () => {
    const node = track();
    const { journal, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const { id } = await coordinator.submit({ id: 'c', tasks: [{ id: 'a', kind: 'k' }] });
    await journal.started('c/a');
    await coordinator.cancel(id);
    expect(await coordinator.status(id)).toMatchObject({ state: 'cancelled', tasks: { running: 0 } });
  });

  it('cancel of a workflow with nothing running yet reports an empty list', async () => {
    const node = track();
    const { worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const { id } = await coordinator.submit({ tasks: [{ id: 'x', kind: 'k', requires: ['nobody'] }], waitForWorkersMs: Infinity });
    expect(await coordinator.cancel(id)).toEqual({ cancelled: true, notified: [] });
    expect(await coordinator.wait(id)).toMatchObject({ status: 'cancelled' });
  });

  it('pause stops new dispatch (a ready step waits while paused), resume continues; status says paused', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.coordinator.workflow_']);
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid] });
    const run = watch(coordinator.run({ id: 'p', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] }));
    await journal.started('p/a');
    expect(await coordinator.pause('p')).toBe('ok');
    expect(await coordinator.status('p')).toMatchObject({ state: 'paused', tasks: { running: 1, waiting: 1 } });
    gate('p/a').resolve('A'); // a running task completes while paused
    await node.idle();
    expect(journal.workersOf('p/b')).toEqual([]);
    expect(await coordinator.status('p')).toMatchObject({ state: 'paused', tasks: { completed: 1, running: 0, waiting: 1 } });
    // another workflow is not held up
    const other = watch(coordinator.run({ id: 'o', tasks: [{ id: 'x', kind: 'k' }] }));
    await journal.started('o/x');
    gate('o/x').resolve('X');
    await node.idle();
    expect(other.value).toMatchObject({ status: 'completed' });
    expect(journal.workersOf('p/b')).toEqual([]);
    expect(run).toMatchObject({ status: 'pending' });

    expect(await coordinator.resume('p')).toBe('ok');
    await journal.started('p/b');
    expect(await coordinator.status('p')).toMatchObject({ state: 'running', tasks: { completed: 1, running: 1 } });
    gate('p/b').resolve('B');
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { a: 'A', b: 'B' } });
    expect(await coordinator.pause('p')).toEqual({ error: 'finished' });
    expect(await coordinator.resume('p')).toEqual({ error: 'finished' });
    expect(await coordinator.pause('nope')).toEqual({ error: 'not_found' });
    expect(await coordinator.resume('nope')).toEqual({ error: 'not_found' });
    expect(events.events.map((e) => [e.event, e.metadata.workflow])).toEqual([
      ['keel.coordinator.workflow_started', 'p'],
      ['keel.coordinator.workflow_paused', 'p'],
      ['keel.coordinator.workflow_started', 'o'],
      ['keel.coordinator.workflow_finished', 'o'],
      ['keel.coordinator.workflow_resumed', 'p'],
      ['keel.coordinator.workflow_finished', 'p'],
    ]);
  });

  it('a paused workflow can be cancelled, and its waiting tasks never run', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const run = watch(coordinator.run({ id: 'pc', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a'] }] }));
    await journal.started('pc/a');
    await coordinator.pause('pc');
    gate('pc/a').resolve(1);
    await node.idle();
    expect(await coordinator.cancel('pc')).toEqual({ cancelled: true, notified: [] });
    await node.idle();
    expect(run.value).toMatchObject({ status: 'cancelled', results: { a: 1 } });
    expect(journal.workersOf('pc/b')).toEqual([]);
    expect((await coordinator.metrics()).tasks).toMatchObject({ running: 0 });
  });
});

describe('CoordinatorAgent: active set, history and limits', () => {
  it('finished workflows leave the active set; history keeps the last historySize; wait on a remembered one answers at once', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], runTask: (t) => t.id });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], historySize: 2 });
    for (const id of ['h1', 'h2', 'h3']) expect(await coordinator.run({ id, tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ id, status: 'completed' });
    const m = await coordinator.metrics();
    expect(m.workflows).toMatchObject({ active: 0, completed: 3 });
    expect(m.history).toBe(2);
    expect(await coordinator.status('h1')).toEqual({ error: 'not_found' });
    expect(await coordinator.wait('h1')).toEqual({ error: 'not_found' });
    const s3 = await coordinator.status('h3');
    expect(s3).toMatchObject({ id: 'h3', state: 'completed', tasks: { total: 1, completed: 1, running: 0, waiting: 0, failed: 0 } });
    expect(s3).toHaveProperty('finishedAt');
    expect(await coordinator.wait('h2')).toMatchObject({ id: 'h2', status: 'completed', results: { t: 'h2/t' } });
    // a remembered id cannot be reused, a forgotten one can
    expectKeelError(await failure(() => coordinator.run({ id: 'h3', tasks: [{ id: 't', kind: 'k' }] })), 'ERR_INVALID_ARGUMENT', 'workflow.id');
    expect(await coordinator.run({ id: 'h1', tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed' });
    expect(await coordinator.status('h2')).toEqual({ error: 'not_found' });
  });

  it('historySize 0 remembers nothing, and run() still answers', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], historySize: 0 });
    expect(await coordinator.run({ id: 'x', tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed' });
    expect(await coordinator.status('x')).toEqual({ error: 'not_found' });
    expect((await coordinator.metrics()).history).toBe(0);
  });

  it('wait(id) on an active workflow answers when it finishes; several waiters all get the result', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const { id } = await coordinator.submit({ id: 'ww', tasks: [{ id: 't', kind: 'k' }] });
    const a = watch(coordinator.wait(id));
    const b = watch(coordinator.wait(id));
    await journal.started('ww/t');
    expect([a.status, b.status]).toEqual(['pending', 'pending']);
    gate('ww/t').resolve(7);
    await node.idle();
    expect(a.value).toMatchObject({ status: 'completed', results: { t: 7 } });
    expect(b.value).toEqual(a.value);
  });

  it('maxConcurrentWorkflows: past the limit run and submit reject with ERR_WORKFLOW_LIMIT; running ones complete; then new ones are accepted', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const w2 = await worker('w2');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid], maxConcurrentWorkflows: 2 });
    const one = watch(coordinator.run({ id: 'one', tasks: [{ id: 't', kind: 'k' }] }));
    await coordinator.submit({ id: 'two', tasks: [{ id: 't', kind: 'k' }] });
    await coordinator.pause('two'); // a paused workflow still counts
    const e1 = await failure(() => coordinator.run({ id: 'three', tasks: [{ id: 't', kind: 'k' }] }));
    const e2 = await failure(() => coordinator.submit({ tasks: [{ id: 't', kind: 'k' }] }));
    expect(isKeelError(e1, 'ERR_WORKFLOW_LIMIT')).toBe(true);
    expect(isKeelError(e2, 'ERR_WORKFLOW_LIMIT')).toBe(true);
    expect((e1 as { limit: number }).limit).toBe(2);
    expect(await coordinator.status('three')).toEqual({ error: 'not_found' });
    expect((await coordinator.metrics()).workflows).toMatchObject({ active: 2, rejected: 2 });
    await coordinator.resume('two');
    await journal.started('one/t');
    await journal.started('two/t');
    gate('one/t').resolve(1);
    gate('two/t').resolve(2);
    await node.idle();
    expect(one.value).toMatchObject({ status: 'completed' });
    expect(await coordinator.wait('two')).toMatchObject({ status: 'completed', results: { t: 2 } });
    const three = watch(coordinator.run({ id: 'three', tasks: [{ id: 't', kind: 'k' }] }));
    await journal.started('three/t');
    gate('three/t').resolve(3);
    await node.idle();
    expect(three.value).toMatchObject({ status: 'completed' });
    expect((await coordinator.metrics()).workflows).toMatchObject({ active: 0, completed: 3, rejected: 2 });
  });

  it('does not lock up: 200 workflows of 3 dependent tasks through 4 workers, 10 at a time, all complete', async () => {
    const node = track();
    const seen = new Map<string, number[]>();
    const workers = await Promise.all(
      [1, 2, 3, 4].map(() =>
        Agent.start(node, {
          capabilities: [],
          runTask: async (task) => {
            await Promise.resolve();
            const [wf, t] = task.id.split('/') as [string, string];
            seen.set(wf, [...(seen.get(wf) ?? []), Number(t.slice(1))]);
            return task.payload;
          },
        }),
      ),
    );
    const coordinator = await CoordinatorAgent.start(node, { workers: workers.map((w) => w.pid), maxConcurrentWorkflows: 10, historySize: 50 });
    const N = 200;
    let next = 0;
    const results: WorkflowResult[] = [];
    const lane = async (): Promise<void> => {
      while (next < N) {
        const i = next++;
        results.push(await coordinator.run(chain(`c${i}`, 3)));
      }
    };
    await Promise.all(Array.from({ length: 10 }, lane));
    expect(results).toHaveLength(N);
    expect(results.filter((r) => r.status === 'completed')).toHaveLength(N);
    for (const r of results) expect(r.results).toEqual({ t0: 0, t1: 1, t2: 2 });
    for (let i = 0; i < N; i++) expect(seen.get(`c${i}`)).toEqual([0, 1, 2]);
    const m = await coordinator.metrics();
    expect(m.workflows).toEqual({ active: 0, completed: N, failed: 0, cancelled: 0, rejected: 0 });
    expect(m.tasks).toMatchObject({ completed: 3 * N, reassigned: 0, queued: 0, running: 0 });
    expect(m.history).toBe(50);
    expect((await coordinator.workers()).map((w) => w.load)).toEqual([0, 0, 0, 0]);
  });

  it('counting under chaos: supervised agents that kill themselves on some tasks, re-added on restart; every workflow ends and the counts add up', async () => {
    const node = track();
    const N = 40;
    const coordinator = await CoordinatorAgent.start(node, { maxTaskAttempts: 3 });
    const attempts = new Map<string, number>();
    let kills = 0;
    // b of every 4th workflow (i % 4 === 1) kills its first worker only; c of i % 10 === 6 kills every worker
    const deadly = (taskId: string): boolean => {
      const [wf, t] = taskId.split('/') as [string, string];
      const i = Number(wf.slice(1));
      const n = (attempts.get(taskId) ?? 0) + 1;
      attempts.set(taskId, n);
      return (t === 'b' && i % 4 === 1 && n === 1) || (t === 'c' && i % 10 === 6);
    };
    const runTask = (task: AgentTask, ctx: Parameters<NonNullable<AgentOptions['runTask']>>[1]): unknown => {
      if (deadly(task.id)) {
        kills++;
        ctx.exit(new Error('chaos'));
        return new Promise(() => {});
      }
      return Promise.resolve(task.id);
    };
    const children = ['a1', 'a2', 'a3'].map((name) => ({
      id: name,
      start: async (ctx: Parameters<NonNullable<AgentOptions['runTask']>>[1]) => {
        const h = await Agent.start(ctx, { name, capabilities: [], runTask });
        expect(await coordinator.addWorker(h.pid)).toBe('ok');
        return h.pid;
      },
    }));
    const sup = await Supervisor.start(node, children, { maxRestarts: 1000, withinMs: 1000 });
    expect((await coordinator.workers()).length).toBe(3);
    const wfs: Workflow[] = Array.from({ length: N }, (_, i) => ({
      id: `w${i}`,
      tasks: [
        { id: 'a', kind: 'k' },
        { id: 'b', kind: 'k', dependsOn: ['a'] },
        { id: 'c', kind: 'k', dependsOn: ['a'] },
        { id: 'd', kind: 'k', dependsOn: ['b', 'c'] },
      ],
    }));
    const results = await Promise.all(wfs.map((wf) => coordinator.run(wf)));
    const failing = wfs.filter((_, i) => i % 10 === 6).map((w) => w.id);
    const bKills = wfs.filter((_, i) => i % 4 === 1).length;
    expect(results.filter((r) => r.status === 'failed').map((r) => r.id).sort()).toEqual([...failing].sort());
    for (const r of results) {
      if (r.status === 'failed') {
        expect(r).toMatchObject({ failedTask: 'c' });
        expect(WORKER_DOWN).toContain(r.error);
      }
      else expect(r).toMatchObject({ status: 'completed', results: { a: `${r.id}/a`, b: `${r.id}/b`, c: `${r.id}/c`, d: `${r.id}/d` } });
    }
    expect(kills).toBe(bKills + 3 * failing.length);
    await node.idle();
    const m = await coordinator.metrics();
    expect(m.workflows.completed + m.workflows.failed).toBe(N);
    expect(m.workflows).toEqual({ active: 0, completed: N - failing.length, failed: failing.length, cancelled: 0, rejected: 0 });
    expect(m.tasks.reassigned).toBe(bKills + 2 * failing.length);
    expect(m.tasks).toMatchObject({ failed: failing.length, running: 0, queued: 0 });
    expect(m.workers).toMatchObject({ total: 3, left: kills });
    // one monitor per live worker, none on a dead one
    const mine = listOf(node).filter((e) => e.tag === 'coordinator');
    expect(mine).toHaveLength(3);
    for (const e of mine) expect(node.isAlive(e.target)).toBe(true);
    expect(mine.map((e) => key(e.target)).sort()).toEqual(['a1', 'a2', 'a3'].map((n) => key(node.registry.whereis(n)!)).sort());
    await GenServer.stop(node, sup, 'shutdown');
    await node.idle();
    expect(listOf(node).filter((e) => e.tag === 'coordinator')).toEqual([]);
    expect(await coordinator.workers()).toEqual([]);
  });
});

describe('CoordinatorAgent: supervision', () => {
  it('started from a supervisor child start it is linked and supervised: restarted under its name with its state, found again by its handle', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], runTask: () => 'r' });
    let handle: CoordinatorHandle | undefined;
    const sup = await Supervisor.start(node, [
      {
        id: 'coordinator',
        start: async (ctx) => {
          handle = await CoordinatorAgent.start(ctx, { name: 'coord', workers: [w.pid] });
          return handle.pid;
        },
      },
    ]);
    const first = handle!.pid;
    expect(handle!.name).toBe('coord');
    expect(node.info(first)?.links.map(key)).toContain(key(sup));
    expect(await handle!.run({ tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ id: 'wf-1', status: 'completed' });
    await exitAndWait(node, first, new Error('crash'));
    const second = node.registry.whereis('coord')!;
    expect(second).toBeDefined();
    expect(key(second)).not.toBe(key(first));
    expect(key(handle!.pid)).toBe(key(second));
    // its state outlived the crash (the node's table under its name): history, counts, ids, the same pool
    expect((await handle!.metrics()).workflows.completed).toBe(1);
    expect(await handle!.wait('wf-1')).toMatchObject({ id: 'wf-1', status: 'completed', results: { t: 'r' } });
    expect((await handle!.workers()).map((x) => key(x.pid))).toEqual([key(w.pid)]);
    expect(await handle!.run({ tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ id: 'wf-2', status: 'completed', results: { t: 'r' } });
    expect(listOf(node).filter((e) => e.tag === 'coordinator').map((e) => key(e.owner))).toEqual([key(second)]);
    await GenServer.stop(node, sup, 'shutdown');
  });

  it('started from a node, it runs under keel.agents with a generated name', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node);
    expect(coordinator.name).toMatch(/^keel\.coordinator\.\d+$/);
    const sup = node.registry.whereis('keel.agents');
    expect(sup).toBeDefined();
    expect(node.info(coordinator.pid)?.links.map(key)).toContain(key(sup!));
    expect(await coordinator.workers()).toEqual([]);
  });
});

describe('CoordinatorAgent: Sys.getStatus', () => {
  it("shows the coordinator's state, not Keel's plumbing: no `ends` (how a task's end reaches its workflow), and the coordinator still runs workflows", async () => {
    const node = track();
    const worker = await Agent.start(node, { capabilities: [], runTask: () => 'done' });
    const coordinator = await CoordinatorAgent.start(node, { workers: [worker.pid] });
    const { state } = await Sys.getStatus(node, coordinator.pid);
    expect(Object.keys(state as object).sort()).toEqual(
      ['ctx', 'name', 'kept', 'store', 'options', 'workers', 'pool', 'fullBelow', 'runs', 'history', 'ready', 'head', 'tail', 'free', 'm', 'follow', 'dead', 'probes'].sort(),
    );
    expect((await coordinator.run({ id: 'w', tasks: [{ id: 't', kind: 'k' }] })).status).toBe('completed');
  });
});

describe('CoordinatorAgent: bad input', () => {
  const task = { id: 't', kind: 'k' };
  const many = (n: number): { id: string; kind: string }[] => Array.from({ length: n }, (_, i) => ({ id: `t${i}`, kind: 'k' }));
  const badWorkflows: [string, unknown, string][] = [
    ['not an object', null, 'workflow'],
    ['empty tasks', { tasks: [] }, 'workflow.tasks'],
    ['tasks not an array', { tasks: 'x' }, 'workflow.tasks'],
    ['an empty id', { id: '', tasks: [task] }, 'workflow.id'],
    ['a bad timeoutMs', { timeoutMs: 0, tasks: [task] }, 'workflow.timeoutMs'],
    ['a NaN timeoutMs', { timeoutMs: NaN, tasks: [task] }, 'workflow.timeoutMs'],
    ['a task that is not an object', { tasks: [42] }, 'workflow.tasks[0]'],
    ['a task without an id', { tasks: [{ kind: 'k' }] }, 'workflow.tasks[0].id'],
    ['a task without a kind', { tasks: [{ id: 't' }] }, 'workflow.tasks[0].kind'],
    ['duplicate task ids', { tasks: [task, task] }, 'workflow.tasks[1].id'],
    // past 16 tasks ids are checked in a Set, below by comparing them: both ways
    ['duplicate task ids among many', { tasks: [...many(20), { id: 't3', kind: 'k' }] }, 'workflow.tasks[20].id'],
    ['duplicate task ids, the last of 16', { tasks: [...many(15), { id: 't14', kind: 'k' }] }, 'workflow.tasks[15].id'],
    ['an unknown dependency among many', { tasks: [...many(19), { id: 'z', kind: 'k', dependsOn: ['t0', 'ghost'] }] }, 'workflow.tasks[19].dependsOn'],
    ['a hole in tasks', { tasks: Object.assign(new Array(3), { 0: task, 2: { id: 'u', kind: 'k' } }) }, 'workflow.tasks[1]'],
    ['an unknown dependency', { tasks: [{ ...task, dependsOn: ['ghost'] }] }, 'workflow.tasks[0].dependsOn'],
    ['a self dependency', { tasks: [{ ...task, dependsOn: ['t'] }] }, 'workflow.tasks[0].dependsOn'],
    ['bad requires', { tasks: [{ ...task, requires: ['ok', 1] }] }, 'workflow.tasks[0].requires'],
    ['requires not an array', { tasks: [{ ...task, requires: 'gpu' }] }, 'workflow.tasks[0].requires'],
    ['dependsOn not an array', { tasks: [{ ...task, dependsOn: 'a' }] }, 'workflow.tasks[0].dependsOn'],
    ['a bad task timeoutMs', { tasks: [{ ...task, timeoutMs: -1 }] }, 'workflow.tasks[0].timeoutMs'],
    ['an Infinity task timeoutMs', { tasks: [{ ...task, timeoutMs: Infinity }] }, 'workflow.tasks[0].timeoutMs'],
    // hostile objects: reading them throws (a revoked proxy, a getter), which is the caller's typed error, not a raw TypeError
    ['a revoked proxy', revokedProxy(), 'workflow'],
    ['tasks a revoked proxy', { tasks: revokedProxy() }, 'workflow'],
    ['a task a revoked proxy', { tasks: [revokedProxy()] }, 'workflow'],
    ['a throwing getter', Object.defineProperty({}, 'tasks', { enumerable: true, get: () => { throw new Error('no tasks'); } }), 'workflow'],
    ['a getter that throws a revoked proxy', Object.defineProperty({}, 'tasks', { enumerable: true, get: () => { throw revokedProxy(); } }), 'workflow'],
    ['a task with a throwing getter', { tasks: [Object.defineProperty({ id: 't' }, 'kind', { enumerable: true, get: () => { throw new Error('no kind'); } })] }, 'workflow'],
  ];

  it.each(badWorkflows)('validateWorkflow, run and submit throw ERR_INVALID_ARGUMENT for %s', async (_what, workflow, argument) => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node);
    const e = thrown(() => validateWorkflow(workflow as Workflow));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    expect((e as { argument: string }).argument).toBe(argument);
    expectKeelError(await failure(() => coordinator.run(workflow as Workflow)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    expectKeelError(await failure(() => coordinator.submit(workflow as Workflow)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    expect((await coordinator.metrics()).workflows).toMatchObject({ active: 0, rejected: 0 });
  });

  it('a cycle a → b → a is refused, and the message names the tasks of the cycle', () => {
    const e = thrown(() =>
      validateWorkflow({
        tasks: [
          { id: 'start', kind: 'k' },
          { id: 'a', kind: 'k', dependsOn: ['start', 'b'] },
          { id: 'b', kind: 'k', dependsOn: ['a'] },
        ],
      }),
    );
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', '`workflow.tasks`', 'wait on each other: a, b');
    expect((e as Error).message).not.toContain('start');
    expect(thrown(() => validateWorkflow({ tasks: [{ id: 'x', kind: 'k', dependsOn: ['y'] }, { id: 'y', kind: 'k', dependsOn: ['x'] }] }))).toMatchObject({
      code: 'ERR_INVALID_ARGUMENT',
    });
  });

  // Regression: a task that lists the same dependency twice (dependsOn: ['a', 'a']) is refused as a cycle
  // ("these tasks wait on each other: b"): Kahn's check counts 2 blockers but decrements once per
  // dependency id. (At run time startRun would count it twice and decrement it twice, so either
  // dedupe or refuse it with its own message.)
  it('a repeated dependency is not reported as a cycle', () => {
    const e = thrown(() => validateWorkflow({ tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k', dependsOn: ['a', 'a'] }] }));
    expect(e === 'nothing was thrown' || !(e as Error).message.includes('wait on each other')).toBe(true);
  });

  it('a workflow id already active is refused; the running one is unaffected', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    await coordinator.submit({ id: 'dup', tasks: [task] });
    expectKeelError(await failure(() => coordinator.submit({ id: 'dup', tasks: [task] })), 'ERR_INVALID_ARGUMENT', 'workflow.id', 'dup');
    await journal.started('dup/t');
    gate('dup/t').resolve(1);
    expect(await coordinator.wait('dup')).toMatchObject({ status: 'completed' });
  });

  it.each([
    ['options not an object', null, 'options'],
    ['maxConcurrentWorkflows 0', { maxConcurrentWorkflows: 0 }, 'options.maxConcurrentWorkflows'],
    ['maxConcurrentWorkflows 1.5', { maxConcurrentWorkflows: 1.5 }, 'options.maxConcurrentWorkflows'],
    ['taskTimeoutMs -1', { taskTimeoutMs: -1 }, 'options.taskTimeoutMs'],
    ['taskTimeoutMs NaN', { taskTimeoutMs: NaN }, 'options.taskTimeoutMs'],
    ['maxTaskAttempts 0', { maxTaskAttempts: 0 }, 'options.maxTaskAttempts'],
    ['maxTasksPerWorker "2"', { maxTasksPerWorker: '2' }, 'options.maxTasksPerWorker'],
    ['historySize -1', { historySize: -1 }, 'options.historySize'],
    ['workers not an array', { workers: 'w' }, 'options.workers'],
    ['workers not pids', { workers: ['<a.1.1>'] }, 'options.workers[0]'],
    ['an empty name', { name: '' }, 'options.name'],
    ['a misspelt option', { taskTimeOutMs: 5 }, 'options.taskTimeOutMs'],
    // options that cannot be read: the caller's typed error, not a raw TypeError or the getter's own
    ['options a revoked proxy', revokedProxy(), 'options'],
    ['a throwing workers getter', Object.defineProperty({}, 'workers', { enumerable: true, get: () => { throw new Error('no workers'); } }), 'options'],
    ['a throwing taskTimeoutMs getter', Object.defineProperty({}, 'taskTimeoutMs', { enumerable: true, get: () => { throw new Error('no timeout'); } }), 'options'],
    ['a throwing name getter', Object.defineProperty({}, 'name', { enumerable: true, get: () => { throw new Error('no name'); } }), 'options'],
  ])('start throws ERR_INVALID_ARGUMENT for %s, before starting anything', (_what, options, argument) => {
    const node = track();
    const before = node.processes().length;
    expectKeelError(thrown(() => CoordinatorAgent.start(node, options as never)), 'ERR_INVALID_ARGUMENT', `\`${argument}\``);
    expect(node.processes()).toHaveLength(before);
    expect(node.registry.whereis('keel.agents')).toBeUndefined();
  });

  it('bad ids and pids for the handle methods throw ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node);
    for (const bad of ['', 42, undefined, null]) {
      for (const method of ['wait', 'cancel', 'pause', 'resume', 'status'] as const) {
        expectKeelError(thrown(() => coordinator[method](bad as string)), 'ERR_INVALID_ARGUMENT', '`id`');
      }
    }
    for (const bad of ['<a.1.1>', 1, null, {}]) {
      expectKeelError(thrown(() => coordinator.addWorker(bad as never)), 'ERR_INVALID_ARGUMENT', '`pid`');
      expectKeelError(thrown(() => coordinator.removeWorker(bad as never)), 'ERR_INVALID_ARGUMENT', '`pid`');
    }
    expect(await coordinator.status('unknown')).toEqual({ error: 'not_found' });
    expect(await coordinator.wait('unknown')).toEqual({ error: 'not_found' });
  });

  it('an initial worker that is dead is left out of the pool (worker_refused)', async () => {
    const node = track();
    const events = captureEvents(node, ['keel.coordinator.worker_']);
    const w = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const dead = idler(node);
    node.exit(dead, 'kill');
    const coordinator = await CoordinatorAgent.start(node, { workers: [dead, w.pid] });
    expect((await coordinator.workers()).map((x) => key(x.pid))).toEqual([key(w.pid)]);
    expect(events.events.map((e) => [e.event, key(e.metadata.worker as Pid)])).toEqual([
      ['keel.coordinator.worker_refused', key(dead)],
      ['keel.coordinator.worker_joined', key(w.pid)],
    ]);
  });
});

describe('CoordinatorAgent: unresponsive and busy workers, cancelled and failing workflows, hostile values', () => {
  // Regression: init awaits every initial worker's status for up to taskTimeoutMs (30 s by default), but the
  // start itself times out after 5 s (GenServer start timeout): one unresponsive initial worker makes
  // CoordinatorAgent.start fail instead of leaving that worker out.
  it('an initial worker that never answers status is left out; the start does not fail', async () => {
    const { node, clock } = clockedNode(track);
    const w = await Agent.start(node, { capabilities: [], runTask: () => 1 });
    const mute = idler(node);
    const p = probe(node); // started from a context, the start (and its 5 s deadline) begins at once
    const started = CoordinatorAgent.start(p.ctx, { workers: [mute, w.pid] }).then(
      (h) => h,
      (e: unknown) => e,
    );
    for (let i = 0; i < 5; i++) await clock.advance(1000);
    const handle = await started;
    expect(handle).not.toBeInstanceOf(Error);
    expect((await (handle as CoordinatorHandle).workers()).map((x) => key(x.pid))).toEqual([key(w.pid)]);
  });

  // Regression: removeWorker gives the worker's running tasks to other workers without telling the removed
  // worker (it is alive) to stop them: the task runs twice, and the first run's result is thrown away.
  it('removeWorker sends cancel_task for the tasks the removed worker is running', async () => {
    const node = track();
    const w1 = await protocolWorker(node, () => undefined); // holds its task
    const w2 = await protocolWorker(node, (task) => ({ ok: true, result: `w2:${task.id}` }));
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid, w2.pid] });
    const run = watch(coordinator.run({ id: 'r', tasks: [{ id: 't', kind: 'k' }] }));
    await node.idle();
    expect(w1.tasks.map((t) => t.id)).toEqual(['r/t']);
    expect(await coordinator.removeWorker(w1.pid)).toBe('ok');
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: 'w2:r/t' }, reassigned: 1 });
    expect([...w1.casts, ...w1.infos]).toEqual([{ type: 'cancel_task', taskId: 'r/t' }]);
  });

  // Regression: a task of a workflow that ended (cancelled, failed) stays in the ready queue with state
  // 'ready' until a worker has room, and metrics().tasks.queued counts it.
  it('metrics.tasks.queued does not count tasks of a cancelled workflow', async () => {
    const node = track();
    const { journal, gate, worker } = gatedPool(node);
    const w1 = await worker('w1');
    const coordinator = await CoordinatorAgent.start(node, { workers: [w1.pid] });
    const first = watch(coordinator.run({ id: 'busy', tasks: [{ id: 't', kind: 'k' }] }));
    await journal.started('busy/t');
    await coordinator.submit({ id: 'queued', tasks: [{ id: 'x', kind: 'k' }] });
    expect((await coordinator.metrics()).tasks.queued).toBe(1);
    await coordinator.cancel('queued');
    try {
      expect((await coordinator.metrics()).tasks.queued).toBe(0);
    } finally {
      gate('busy/t').resolve(1);
      await node.idle();
      expect(first.value).toMatchObject({ status: 'completed' });
    }
  });

  // Regression: a worker that answers 'busy' (its own maxConcurrentTasks is below maxTasksPerWorker, or it
  // serves someone else too) gets the task again at once, over and over: the coordinator spins a
  // call loop until the worker frees up (no backoff, the worker's load is not taken as full).
  it("a worker answering 'busy' is not called again in a tight loop", async () => {
    const node = track();
    let calls = 0;
    const spinning = deferred();
    let held: Parameters<typeof GenServer.reply>[0] | undefined;
    const w = await protocolWorker(node, (task, from) => {
      calls++;
      if (calls >= 50) spinning.resolve();
      if (task.id.endsWith('/first')) {
        held = from;
        return undefined;
      }
      return held !== undefined ? { ok: false, error: 'busy' } : { ok: true, result: task.id };
    });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 2 });
    const running = coordinator.run({ id: 'b', tasks: [{ id: 'first', kind: 'k' }, { id: 'second', kind: 'k' }] });
    const outcome = await Promise.race([spinning.promise.then(() => 'spinning'), node.idle().then(() => 'idle')]);
    const from = held!;
    held = undefined;
    GenServer.reply(from, { ok: true, result: 'first' });
    await node.idle();
    expect(await running).toMatchObject({ status: 'completed', results: { first: 'first', second: 'b/second' } });
    expect(outcome).toBe('idle');
  });
});

describe('CoordinatorAgent sent a message that cannot be inspected', () => {
  // the same defect as the supervisors' (fuzz seed 1005273782, path 93): `message instanceof C` throws on a
  // proxy whose traps throw, and the process crashed
  it('ignores it and keeps running', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node, { workers: [] });
    const pid = coordinator.pid;
    for (const [, make] of UNREADABLE) node.send(pid, make());
    await node.idle();
    expect(node.isAlive(pid)).toBe(true);
    expect(await coordinator.workers()).toEqual([]);
  });
});

describe('CoordinatorAgent: a worker whose run_task answer is not a TaskResult', () => {
  // found in review: `result.ok` was read in a call's microtask; null threw there (an unhandled
  // rejection) with the attempt half-settled, and the workflow never ended
  const ANSWERS: readonly (readonly [string, () => unknown])[] = [['null', () => null], ['a number', () => 42], ...UNREADABLE];
  for (const [label, make] of ANSWERS) {
    it(`${label}: the task fails with it as its error, the workflow ends`, async () => {
      const node = track();
      const answer = make();
      const w = await protocolWorker(node, () => answer as TaskResult);
      const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
      const r = await coordinator.run({ id: 'x', tasks: [{ id: 't', kind: 'k' }] });
      expect(r.status).toBe('failed');
      expect(r.failedTask).toBe('t');
      expect(r.error).toBe(answer);
      expect(await coordinator.metrics()).toMatchObject({ workflows: { active: 0, failed: 1 }, tasks: { running: 0 }, workers: { busy: 0 } });
    });
  }
});

describe('CoordinatorAgent: historySize 0', () => {
  // found in review: a workflow that failed at once (no worker for its kind) was looked up in the
  // history to answer `run`; with historySize 0 it was gone, and the coordinator crashed on it
  it('run of a workflow that fails at once answers its result, and the coordinator lives on', async () => {
    const node = track();
    const coordinator = await CoordinatorAgent.start(node, { workers: [], historySize: 0 });
    const pid = coordinator.pid;
    const r = await coordinator.run({ id: 'x', tasks: [{ id: 't', kind: 'k' }] });
    expect(r).toMatchObject({ id: 'x', status: 'failed', failedTask: 't', error: { code: 'no_worker', kind: 'k', requires: [], task: 't' } });
    expect(node.isAlive(pid)).toBe(true);
    expect(await coordinator.metrics()).toMatchObject({ workflows: { active: 0, failed: 1 }, history: 0 });
  });
});

describe('CoordinatorAgent: a worker whose status answer is malformed', () => {
  // found in review: a status of null left addWorker's call unanswered for ever (a throw in a promise
  // reaction), and capabilities that were not an array of strings crashed the coordinator (new Set(42))
  // or were split into letters ('http' -> h, t, p)
  async function statusWorker(node: Kernel, status: () => unknown): Promise<Pid> {
    const spec: GenServerSpec<null, { request: any; reply: unknown }, unknown, null> = {
      init: () => null,
      handleCall: (request, _from, state) => ({ reply: request?.type === 'status' ? status() : { ok: true, result: 'ran' }, state }),
    };
    return GenServer.start(node, spec, null);
  }
  const STATUSES: readonly (readonly [string, () => unknown])[] = [
    ['null', () => null],
    ['capabilities 42', () => ({ load: 0, capabilities: 42 })],
    ["capabilities 'http'", () => ({ load: 0, capabilities: 'http' })],
    ['capabilities [1]', () => ({ load: 0, capabilities: [1] })],
    ...UNREADABLE,
  ];
  for (const [label, status] of STATUSES) {
    it(`${label}: addWorker answers noproc, a start leaves it out, and the coordinator lives on`, async () => {
      const node = track();
      const w = await statusWorker(node, status);
      const coordinator = await CoordinatorAgent.start(node, { workers: [w] });
      const pid = coordinator.pid;
      expect(await coordinator.workers()).toEqual([]);
      expect(await coordinator.addWorker(w)).toEqual({ error: 'noproc' });
      expect(node.isAlive(pid)).toBe(true);
      expect(await coordinator.workers()).toEqual([]);
    });
  }
});

describe('CoordinatorAgent: a workflow whose reading throws only after it was checked', () => {
  // found in review: the coordinator checked the workflow, then read it again to build its run and
  // while dispatching; a getter that threw on a later read crashed the coordinator (its other callers
  // got ERR_CALL_EXIT). It now reads the workflow's structure once, into its own copy.
  const counted = (key: string, value: unknown, throwAfter: number): { task: object; reads: () => number } => {
    let reads = 0;
    const task = Object.defineProperty({ id: 't', kind: 'k' }, key, {
      enumerable: true,
      get: () => {
        if (++reads > throwAfter) throw new Error('read once too often');
        return value;
      },
    });
    return { task, reads: () => reads };
  };

  it('is read once by the coordinator (a getter that throws on any later read never runs again), and runs', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    // [key, value, how often the handle's check reads it (in the caller)]
    for (const [key, value, checked] of [['retry', undefined, 1], ['timeoutMs', 10_000, 2], ['requires', [], 2]] as const) {
      const { task, reads } = counted(key, value, checked + 1); // the coordinator reads it once, into its copy
      expect(await coordinator.run({ tasks: [task as WorkflowTask] })).toMatchObject({ status: 'completed', results: { t: 'done' } });
      expect(reads()).toBe(checked + 1);
    }
  });

  it('is refused with ERR_INVALID_ARGUMENT when the coordinator\'s one read throws, and the coordinator lives on', async () => {
    const node = track();
    const w = await Agent.start(node, { capabilities: [], tasks: { k: () => 'done' } });
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid] });
    const pid = coordinator.pid;
    const { task } = counted('retry', undefined, 1); // the handle's check passes; the coordinator's read throws
    expectKeelError(await failure(() => coordinator.run({ id: 'x', tasks: [task as WorkflowTask] })), 'ERR_INVALID_ARGUMENT', 'workflow');
    expect(coordinator.pid).toBe(pid);
    expect(node.isAlive(pid)).toBe(true);
    expect(await coordinator.run({ id: 'y', tasks: [{ id: 't', kind: 'k' }] })).toMatchObject({ status: 'completed', results: { t: 'done' } });
  });
});

describe('CoordinatorAgent: a worker whose mailbox is full', () => {
  // Known gap: a worker spawned with a bounded mailbox ({ capacity, overflow: 'reject' }) that is busy
  // refuses the coordinator's run_task call with ERR_MAILBOX_FULL. The request never reached the worker,
  // so nothing ran: it is the worker saying 'busy', yet it counted as the task's error and failed the
  // workflow. It must take the busy path: queued again, no attempt counted, offered again after 50 ms.

  /** A hand-made worker with a bounded mailbox: answers status, runs a task once its gate (by task id) opens. */
  function boundedWorker(node: Kernel, capacity: number): { pid: Pid; runs: string[]; gate(taskId: string): Deferred<void>; hold(): Promise<void>; release(): void } {
    const runs: string[] = [];
    const gates = new Map<string, Deferred<void>>();
    const gate = (taskId: string): Deferred<void> => {
      let g = gates.get(taskId);
      if (g === undefined) gates.set(taskId, (g = deferred()));
      return g;
    };
    const HOLD = Symbol('hold');
    const held = deferred();
    let holding = deferred();
    const pid = node.spawn(
      () => async (m: unknown) => {
        if (m === HOLD) {
          holding.resolve();
          return held.promise; // busy with something else until released
        }
        if (!(m instanceof PendingCall)) return;
        const request = m.request as { type?: string; task?: AgentTask };
        const from = m as Parameters<typeof GenServer.reply>[0];
        if (request.type === 'status') return GenServer.reply(from, { load: 0, capabilities: [], completed: 0, failed: 0 });
        if (request.type !== 'run_task') return;
        const id = request.task!.id;
        runs.push(id);
        await gate(id).promise; // the handler is held busy: the process takes nothing else meanwhile
        GenServer.reply(from, { ok: true, result: `ran ${id}` } satisfies TaskResult);
      },
      { mailbox: { capacity, overflow: 'reject' } },
    );
    return {
      pid,
      runs,
      gate,
      hold: async () => {
        holding = deferred();
        node.send(pid, HOLD);
        await holding.promise;
      },
      release: () => held.resolve(),
    };
  }

  it('two tasks to a worker of capacity 1: the second is refused as busy (no attempt counted), offered again after 50 ms, and runs once the gate opens', async () => {
    const { node, clock } = clockedNode(track);
    const w = boundedWorker(node, 1);
    const coordinator = await CoordinatorAgent.start(node, { workers: [w.pid], maxTasksPerWorker: 2 });
    const events = captureEvents(node, ['keel.coordinator.task_retry', 'keel.coordinator.task_reassigned', 'keel.coordinator.workflow_finished']);
    const run = watch(coordinator.run({ id: 'm', tasks: [{ id: 'a', kind: 'k' }, { id: 'b', kind: 'k' }] }));
    await node.settle(); // not idle: the worker is held busy in a
    // both calls went in one turn of the coordinator: a filled the mailbox, b was refused with ERR_MAILBOX_FULL
    expect(w.runs).toEqual(['m/a']);
    expect(run).toMatchObject({ status: 'pending' });
    let status = await coordinator.status('m');
    expect('tasks' in status && status.tasks).toEqual({ total: 2, completed: 0, running: 1, waiting: 1, failed: 0 });
    await clock.advance(49);
    await node.settle();
    expect(w.runs).toEqual(['m/a']); // not before 50 ms
    await clock.advance(1);
    await node.settle(); // offered again: a is taken, so the mailbox has room for b's call
    status = await coordinator.status('m');
    expect('tasks' in status && status.tasks).toEqual({ total: 2, completed: 0, running: 2, waiting: 0, failed: 0 });
    w.gate('m/a').resolve();
    await node.settle();
    expect(w.runs).toEqual(['m/a', 'm/b']);
    w.gate('m/b').resolve();
    await node.idle();
    expect(run.value).toMatchObject({ status: 'completed', results: { a: 'ran m/a', b: 'ran m/b' }, reassigned: 0 });
    const r = run.value as WorkflowResult;
    expect([r.tasks.a!, r.tasks.b!].map((t) => [t.state, t.attempts, key(t.worker!)])).toEqual([
      ['completed', 1, key(w.pid)],
      ['completed', 1, key(w.pid)],
    ]);
    expect(await coordinator.metrics()).toEqual({
      workflows: { active: 0, completed: 1, failed: 0, cancelled: 0, rejected: 0 },
      tasks: { completed: 2, failed: 0, reassigned: 0, timedOut: 0, retried: 0, queued: 0, running: 0 },
      workers: { total: 1, busy: 0, left: 0 },
      history: 1,
    });
    expect(events.events.map((e) => e.event)).toEqual(['keel.coordinator.workflow_finished']);
  });

  it('a worker whose mailbox is full refuses as busy: the task goes to another worker after 50 ms, one attempt', async () => {
    const { node, clock } = clockedNode(track);
    const full = boundedWorker(node, 1);
    const other = await protocolWorker(node, (task) => ({ ok: true, result: `other ${task.id}` }));
    const coordinator = await CoordinatorAgent.start(node, { workers: [full.pid, other.pid] });
    await full.hold(); // busy with something else
    node.send(full.pid, 'filler'); // and its mailbox of 1 is full
    const run = watch(coordinator.run({ id: 'f', tasks: [{ id: 't', kind: 'k' }] }));
    await node.settle();
    expect(run).toMatchObject({ status: 'pending' }); // refused by the first worker (joined first, as idle as the other)
    expect(other.tasks).toEqual([]);
    await clock.advance(50);
    await node.settle();
    expect(run.value).toMatchObject({ status: 'completed', results: { t: 'other f/t' }, reassigned: 0, tasks: { t: { state: 'completed', attempts: 1 } } });
    expect(key((run.value as WorkflowResult).tasks.t!.worker!)).toBe(key(other.pid));
    expect(full.runs).toEqual([]);
    expect((await coordinator.metrics()).tasks).toEqual({ completed: 1, failed: 0, reassigned: 0, timedOut: 0, retried: 0, queued: 0, running: 0 });
    full.release();
    await node.idle();
  });
  it('a worker whose mailbox stays full: the task is offered every 50 ms without an attempt, reported stuck (workers_busy), and the workflow still times out', async () => {
    const { node, clock } = clockedNode(track);
    const full = boundedWorker(node, 1);
    const coordinator = await CoordinatorAgent.start(node, { workers: [full.pid] });
    await full.hold();
    node.send(full.pid, 'filler');
    const events = captureEvents(node, ['keel.coordinator.workflow_stuck', 'keel.coordinator.task_retry', 'keel.coordinator.task_timeout', 'keel.coordinator.workflow_finished']);
    const run = watch(coordinator.run({ id: 'z', stuckAfterMs: 200, timeoutMs: 1000, tasks: [{ id: 't', kind: 'k' }] }));
    await node.settle();
    for (let i = 0; i < 19; i++) {
      await clock.advance(50);
      await node.settle();
    }
    expect(run).toMatchObject({ status: 'pending' });
    expect(full.runs).toEqual([]);
    expect(events.events.map((e) => [e.event, e.metadata.waiting])).toEqual([['keel.coordinator.workflow_stuck', [{ task: 't', kind: 'k', reason: 'workers_busy' }]]]);
    await clock.advance(50);
    await node.settle();
    expect(run.value).toMatchObject({ status: 'failed', error: 'timeout', tasks: { t: { attempts: 0 } } });
    expect(events.events.map((e) => e.event)).toEqual(['keel.coordinator.workflow_stuck', 'keel.coordinator.workflow_finished']);
    expect((await coordinator.metrics()).tasks).toEqual({ completed: 0, failed: 0, reassigned: 0, timedOut: 0, retried: 0, queued: 0, running: 0 });
    full.release();
    await node.idle();
  });
});
