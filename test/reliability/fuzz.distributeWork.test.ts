// Fuzzed runs of distributeWork's 'capability' dispatch (rewritten to be linear in 7425a89, a hang
// found in it in 930004e): random workers (capabilities, given by pid, by name or through a
// registry query), random items and maxPerWorker, and random chaos while the run goes (workers
// dead before the run, dying after their status answered, killed while running or idle, restarted
// under their name, newcomers registered; tasks that complete, fail, time out on the TestClock;
// the run aborted, before it starts or at a random point). For every case: the run settles, each
// item has one result, in item order; an item ran only on a worker that can take it, no worker ran
// more than maxPerWorker of the run's tasks at once; an item fails with 'no_live_worker' (never
// dispatched) or 'process_down' / 'noproc' (it was) only when every worker that could take it
// died, with 'no_capable_worker' only when none could, and with the other reasons only when the
// case did what causes them; a run aborted before it starts or while a worker's status is
// unanswered fails every item with 'aborted'; nothing is left behind (expectNoLeaks), and a run,
// aborted or not, leaves no call's timer.
// Each case runs on a fresh node with a TestClock: it is deterministic by its seed
// (KEEL_FUZZ_SEED / KEEL_FUZZ_PATH replay one, see CONTRIBUTING.md).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Agent, type AgentTask } from '../../src/agents/Agent.js';
import { distributeWork, type DistributeWorkResult } from '../../src/agents/patterns/index.js';
import { AgentRegistry, type Context, createNode, type Exit, GenServer, type Node, type Pid } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { expectNoLeaks, TestClock } from '../../src/testing/index.js';
import { fakeLogger, spawnWithContext, watch } from '../support.js';
import { LONG, params } from './hostile.js';

const CAPS = ['a', 'b', 'c'] as const;
const TIMEOUT_MS = 100;
/** Cases: few and small, the whole property well under 3 s (the long form runs ten times more). */
const CASES = Number(process.env.KEEL_FUZZ_RUNS ?? (LONG ? 2_000 : 200));

type Kind = 'agent' | 'dead_before' | 'status_then_die' | 'silent';
type Via = 'pid' | 'name' | 'query';
interface WorkerSpec {
  readonly caps: readonly string[];
  readonly kind: Kind;
  readonly via: Via;
}
type Action =
  | { readonly type: 'complete' | 'fail' | 'kill_running'; readonly k: number }
  | { readonly type: 'kill_any' | 'restart_name'; readonly k: number }
  | { readonly type: 'advance' | 'abort' | 'newcomer'; readonly k: number };
interface Case {
  readonly workers: WorkerSpec[];
  readonly items: (readonly string[])[];
  readonly maxPerWorker: number;
  readonly withSignal: boolean;
  /** With the signal: aborted before the run starts. */
  readonly preAborted: boolean;
  readonly actions: Action[];
}

const capsArb = fc.subarray([...CAPS]);
const caseArb: fc.Arbitrary<Case> = fc.record({
  workers: fc.array(
    fc.record({
      caps: capsArb,
      kind: fc.constantFrom<Kind>('agent', 'agent', 'agent', 'dead_before', 'status_then_die', 'silent'),
      via: fc.constantFrom<Via>('pid', 'name'),
    }),
    { minLength: 1, maxLength: 5 },
  ),
  items: fc.array(fc.subarray([...CAPS], { maxLength: 2 }), { minLength: 0, maxLength: 12 }),
  maxPerWorker: fc.integer({ min: 1, max: 3 }),
  withSignal: fc.boolean(),
  preAborted: fc.nat(7).map((n) => n === 0),
  // and whether the workers are a registry query (then every worker is registered, none by name)
  actions: fc.array(
    fc.record({
      type: fc.constantFrom('complete', 'complete', 'complete', 'fail', 'kill_running', 'kill_any', 'restart_name', 'advance', 'abort', 'newcomer'),
      k: fc.nat(20),
    }) as fc.Arbitrary<Action>,
    { maxLength: 25 },
  ),
}).chain((c) => fc.boolean().map((query) => (query ? { ...c, workers: c.workers.map((w) => ({ ...w, via: 'query' as const })) } : c)));

/** One process that worked for the case: its label, capabilities and the tasks it runs now. */
interface Proc {
  readonly label: string;
  readonly caps: readonly string[];
  pid: Pid;
  /** What the run's results name it by (a pid, or the name it was started under). */
  readonly as: Pid | string;
  readonly running: Map<string, { resolve: (v: unknown) => void; reject: (e: unknown) => void }>;
  dead: boolean;
}

async function runCase(c: Case): Promise<void> {
  const clock = new TestClock({ start: 1_000_000 });
  const node: Node = createNode({ clock, logger: fakeLogger() });
  const cleanup: (() => void)[] = [];
  try {
    await check(node, clock, c, cleanup);
  } finally {
    for (const f of cleanup) f();
    await node.shutdown({ timeoutMs: 1000 });
  }
}

async function check(node: Node, clock: TestClock, c: Case, cleanup: (() => void)[]): Promise<void> {
  const where = JSON.stringify(c);
  const violations: string[] = [];
  const procs: Proc[] = [];
  /** Per capability set of a worker slot: whether any process of it never died (a slot: a pid, or a name and its restarts). */
  const slots: { caps: readonly string[]; procs: Proc[]; statusDead: boolean }[] = [];
  const itemOf = new Map<string, number>();
  const starts = new Map<string, number>();
  const failed = new Set<string>();
  const registry = await AgentRegistry.start(node);
  // the agents are started from a process that traps exits: from the node, a killed agent would be
  // restarted by the node's agents supervisor (here a worker dies for good, or the case restarts it)
  const { pid: holderPid, ctx: holder } = await spawnWithContext(node, (ctx) => {
    (ctx as Context<Exit>).trapExits(true);
    return () => undefined;
  });
  cleanup.push(() => node.exit(holderPid, 'kill')); // it traps exits: the node's shutdown would wait for it
  let serial = 0;

  const startAgent = async (caps: readonly string[], name: string | undefined): Promise<Proc> => {
    const label = `w${serial++}`;
    const proc: Proc = { label, caps, pid: undefined as never, as: name ?? (undefined as never), running: new Map(), dead: false };
    const agent = await Agent.start(holder, {
      ...(name === undefined ? {} : { name }),
      capabilities: [...caps],
      runTask: (task: AgentTask, _ctx, { signal }) => {
        const i = itemOf.get(task.id)!;
        starts.set(task.id, (starts.get(task.id) ?? 0) + 1);
        if (!c.items[i]!.every((need) => caps.includes(need))) violations.push(`item ${i} ran on ${label} (${caps.join()}) which cannot take it`);
        if (proc.running.size + 1 > c.maxPerWorker) violations.push(`${label} ran ${proc.running.size + 1} tasks at once (maxPerWorker ${c.maxPerWorker})`);
        return new Promise((resolve, reject) => {
          const done = (): boolean => proc.running.delete(task.id);
          proc.running.set(task.id, { resolve: (v) => done() && resolve(v), reject: (e) => done() && reject(e) });
          signal.addEventListener('abort', () => done() && reject(new Error('cancelled')));
        });
      },
    });
    proc.pid = agent.pid;
    if (name === undefined) (proc as { as: Pid | string }).as = agent.pid;
    procs.push(proc);
    return proc;
  };
  /**
   * A worker that answers its status (with its capabilities), then stops: dead before any dispatch;
   * or one that never answers it (the run waits for its status until the clock passes the timeout,
   * while the others may die).
   */
  const oddWorker = (kind: 'status_then_die' | 'silent', caps: readonly string[], name: string | undefined): Promise<Pid> =>
    GenServer.start(
      holder,
      {
        init: () => null,
        handleCall: (_request: unknown, _from, state: null) => (kind === 'silent' ? { noreply: true, state } : { stop: 'normal', reply: { capabilities: [...caps], load: 0 }, state }),
      },
      undefined,
      name === undefined ? {} : { name },
    );
  const kill = (proc: Proc): void => {
    if (proc.dead) return;
    proc.dead = true;
    proc.running.clear(); // its tasks die with it
    node.exit(proc.pid, 'kill');
  };

  const sources: (Pid | string)[] = [];
  for (const [w, spec] of c.workers.entries()) {
    const name = spec.via === 'name' ? `dw-fuzz-${w}` : undefined;
    if (spec.kind === 'status_then_die' || spec.kind === 'silent') {
      const pid = await oddWorker(spec.kind, spec.caps, name);
      slots.push({ caps: spec.caps, procs: [], statusDead: true });
      if (spec.via === 'query') await registry.register(pid, { capabilities: ['w'] });
      sources.push(name ?? pid);
      continue;
    }
    const proc = await startAgent(spec.caps, name);
    slots.push({ caps: spec.caps, procs: [proc], statusDead: false });
    if (spec.via === 'query') await registry.register(proc.pid, { capabilities: ['w'] });
    sources.push(proc.as);
    if (spec.kind === 'dead_before') kill(proc);
  }
  const query = c.workers[0]!.via === 'query';
  const abort = new AbortController();
  let aborted = false;
  let advanced = false;
  // the workers' status calls are unanswered until the clock passes their timeout while a silent worker is one of them
  let statusPending = c.workers.some((w) => w.kind === 'silent');
  /** Aborted before the run or while its status calls were unanswered: nothing was dispatched. */
  let abortedEarly = false;
  if (c.withSignal && c.preAborted) {
    aborted = abortedEarly = true;
    abort.abort();
  }
  c.items.forEach((_needs, i) => itemOf.set(`item-${i}`, i));
  // timers no process owns (a call's timeout among them; the services' own start on first use)
  const unowned = (): number => (node as KeelNode).internals().timers - node.processes().reduce((n, pid) => n + (node.info(pid)?.timers ?? 0), 0);
  await node.idle({ timeoutMs: 2000 });
  const timers = unowned();
  const run = watch(
    distributeWork(node, c.items, {
      workers: query ? registry.select({ capability: 'w' }) : sources,
      strategy: 'capability',
      maxPerWorker: c.maxPerWorker,
      timeout: TIMEOUT_MS,
      toTask: (_item, i) => ({ id: `item-${i}`, kind: 'work', payload: i }),
      requires: (needs) => needs,
      ...(c.withSignal ? { signal: abort.signal } : {}),
    }) as Promise<DistributeWorkResult<readonly string[]>>,
  );

  const running = (): [Proc, string][] => procs.flatMap((p) => [...p.running.keys()].map((id): [Proc, string] => [p, id]));
  for (const action of c.actions) {
    await node.idle({ timeoutMs: 2000 });
    if (run.status !== 'pending') break;
    const live = running();
    switch (action.type) {
      case 'complete':
      case 'fail': {
        const hit = live[action.k % Math.max(1, live.length)];
        if (hit === undefined) break;
        const task = hit[0].running.get(hit[1])!;
        if (action.type === 'complete') task.resolve(`${hit[0].label}:${String(itemOf.get(hit[1]))}`);
        else {
          failed.add(hit[1]);
          task.reject(new Error(`boom ${hit[1]}`));
        }
        break;
      }
      case 'kill_running': {
        const hit = live[action.k % Math.max(1, live.length)];
        if (hit !== undefined) kill(hit[0]);
        break;
      }
      case 'kill_any': {
        const proc = procs[action.k % procs.length];
        if (proc !== undefined) kill(proc);
        break;
      }
      case 'restart_name': {
        // a worker given by name comes back under it, with the same capabilities
        const slot = slots.slice(0, c.workers.length).find((s, w) => c.workers[w]!.via === 'name' && !s.statusDead && s.procs.every((p) => p.dead) && w >= action.k % c.workers.length);
        if (slot === undefined) break;
        const w = slots.indexOf(slot);
        slot.procs.push(await startAgent(slot.caps, `dw-fuzz-${w}`));
        break;
      }
      case 'advance':
        advanced = true;
        statusPending = false;
        await clock.advance(TIMEOUT_MS);
        break;
      case 'abort':
        if (!c.withSignal) break;
        aborted = true;
        if (statusPending) abortedEarly = true;
        abort.abort();
        break;
      case 'newcomer': {
        if (!query) break;
        const caps = CAPS.filter((_cap, bit) => (action.k >> bit) & 1);
        if (action.k >= 8) {
          // a newcomer that answers its status, then stops (or never answers it)
          const pid = await oddWorker(action.k >= 16 ? 'silent' : 'status_then_die', caps, undefined);
          slots.push({ caps, procs: [], statusDead: true });
          await registry.register(pid, { capabilities: ['w'] });
          break;
        }
        const proc = await startAgent(caps, undefined);
        slots.push({ caps, procs: [proc], statusDead: false });
        await registry.register(proc.pid, { capabilities: ['w'] });
        break;
      }
    }
  }
  // then everything still running completes: the run must settle
  for (let round = 0; round < 20 && run.status === 'pending'; round++) {
    await node.idle({ timeoutMs: 2000 });
    for (const [proc, id] of running()) proc.running.get(id)?.resolve(`${proc.label}:${String(itemOf.get(id))}`);
    await node.idle({ timeoutMs: 2000 });
    if (run.status !== 'pending' || running().length > 0) continue;
    // nothing runs: the run may wait for a status that never comes
    advanced = true;
    await clock.advance(TIMEOUT_MS);
  }
  if (run.status !== 'resolved') throw new Error(`${where}: the run did not settle (${run.status}): ${String(run.error)}`);
  const r = run.value!;
  // nothing left behind: no monitor or timer of a dead process, and no call's timer (its status
  // calls included: a newcomer's still unanswered when the run ends is withdrawn with it)
  await node.idle({ timeoutMs: 2000 });
  expectNoLeaks(node);
  expect(unowned(), where).toBe(timers);

  // every item one result, in item order
  expect(r.results.map((x) => x.index)).toEqual(c.items.map((_needs, i) => i));
  expect(r.results.every((x, i) => x.item === c.items[i])).toBe(true);
  expect(r.completed + r.failed).toBe(c.items.length);
  expect(r.completed).toBe(r.results.filter((x) => x.ok).length);
  expect(r.perWorker.reduce((s, w) => s + w.assigned, 0)).toBe(r.results.reduce((s, x) => s + x.attempts, 0));
  expect(violations).toEqual([]);
  // aborted before any item could be dispatched: every item failed with 'aborted' (not with what an unanswered status suggests)
  if (abortedEarly) expect(r.results.map((x) => [x.index, x.error, x.attempts]), where).toEqual(c.items.map((_needs, i) => [i, 'aborted', 0]));
  const initial = slots.slice(0, c.workers.length);
  for (const x of r.results) {
    const at = `${where}: item ${x.index} ${JSON.stringify({ ...x, worker: String(x.worker), error: String(x.error) })}`;
    const ran = starts.get(`item-${x.index}`) ?? 0;
    if (ran > x.attempts) throw new Error(`${at}: started ${ran} times in ${x.attempts} attempts`);
    // a worker of the start that never died (alive from its status to the end) could always take it
    // (a newcomer may come after the item failed)
    const survivor = initial.filter((s) => x.item.every((need) => s.caps.includes(need))).some((s) => !s.statusDead && s.procs.length > 0 && s.procs.every((p) => !p.dead));
    if (x.ok) {
      const proc = procs.find((p) => x.result === `${p.label}:${x.index}`);
      if (proc === undefined || proc.as !== x.worker) throw new Error(`${at}: an answer not from its worker`);
      continue;
    }
    const error = x.error;
    if (error instanceof Error) {
      if (!failed.has(`item-${x.index}`) || error.message !== `boom item-${x.index}`) throw new Error(`${at}: failed with an error its task never threw`);
    } else if (error === 'timeout') {
      if (!advanced) throw new Error(`${at}: timed out with the clock never moved`);
    } else if (error === 'aborted') {
      if (!aborted) throw new Error(`${at}: aborted with no abort`);
    } else if (error === 'no_capable_worker') {
      // a worker dead before the run, or silent, answers no status: its capabilities are not known
      if (x.attempts !== 0 || initial.some((s, w) => (c.workers[w]!.kind === 'agent' || c.workers[w]!.kind === 'status_then_die') && x.item.every((need) => s.caps.includes(need)))) throw new Error(`${at}: a worker could take it`);
    } else if (error === 'no_live_worker') {
      if (x.attempts !== 0 || survivor) throw new Error(`${at}: a capable worker never died`);
    } else if (error === 'process_down' || error === 'noproc') {
      if (x.attempts === 0 || (survivor && !aborted)) throw new Error(`${at}: a capable worker never died`);
    } else {
      throw new Error(`${at}: an unexpected failure`);
    }
    // a run neither aborted nor timed out ends no item of a capable survivor but by its task's answer
    if (survivor && !aborted && !advanced && !(error instanceof Error)) throw new Error(`${at}: a capable worker never died`);
  }
}

describe('fuzz: distributeWork capability dispatch', () => {
  it(`always settles with one result per item, in order, on capable workers within maxPerWorker, failing with the reason the chaos gives (${CASES} cases)`, async () => {
    await fc.assert(fc.asyncProperty(caseArb, runCase), { ...params(CASES), timeout: 3000, endOnFailure: false });
  }, LONG ? 600_000 : 120_000);
});
