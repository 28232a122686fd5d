// Fuzzed bad input to the agent layer: createSignal (and validateSignal, isSignal), SignalRouter
// subscribe patterns and options (and publish), AgentScheduler.registerPeriodic intervals, ids,
// messages and options. For every case the call returns (or resolves) or throws (or rejects) a
// typed Keel error, the router and the scheduler keep running (the same processes, answering), the
// scheduler's timers go on (the clock moves past a case's intervals without a wedge), and the
// node's own processes are untouched. And the scheduler's accounting under seeded register,
// unregister, unregisterAgent, held and killed agents, killed schedulers (restarted by the node's
// supervisor) and clock steps, with each onError: every delivery started ends counted once
// (delivered + failed + withdrawn), but for those a killed scheduler left waiting (counted by nobody),
// and only the failed ones get the onError policy (a withdrawn one, or one left by its killed
// scheduler, is neither logged nor dead-lettered).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AgentScheduler, type AgentSchedulerHandle, createSignal, isSignal, type Pid, SignalRouter, type SignalRouterHandle, validateSignal } from '../../src/index.js';
import { captureEvents } from '../../src/testing/index.js';
import { attempt, clockedNode, useNodes } from '../support.js';
import { checkAfter, F, finish, type Fixture, fuzzNode, targetArb } from './fuzzKit.js';
import { expectStrayRefused, expectTyped, field, hostileArb, LONG, numberArb, optionsArb, orHostile, params, run, RUNS, runSync, V, withStrays } from './hostile.js';

const track = useNodes();
const TIMEOUT = LONG ? 900_000 : 60_000;

const stringArb = fc.oneof(
  fc.constantFrom('order.created', 'a', 'a.b.c', '', '.', 'a..b', '.a', 'a.', '*', '**', 'a.*', 'a.**', 'a.**.b', '*.*', 'a*', '***', 'é.ü', '\u0000', ' '),
  fc.string({ maxLength: 12 }),
  fc.array(fc.constantFrom('a', 'b', '*', '**', ''), { minLength: 1, maxLength: 5 }).map((s) => s.join('.')),
);

const signalInputArb = optionsArb({
  type: orHostile(stringArb),
  source: orHostile(fc.constantFrom('/shop', 'urn:keel:1', '')),
  data: hostileArb,
  subject: orHostile(fc.constantFrom('order/42', '')),
  id: orHostile(fc.constantFrom('1', '', 'id-x')),
  time: fc.oneof(
    orHostile(fc.constantFrom('2024-05-01T12:00:00Z', '2024-02-30T00:00:00Z', 'yesterday', '2024-05-01T24:00:00Z')),
    numberArb,
    fc.constantFrom(new V('a Date', () => new Date(0)), new V('an invalid Date', () => new Date(Number.NaN))),
  ),
  datacontenttype: orHostile(fc.constantFrom('application/json', '')),
  dataschema: orHostile(fc.constantFrom('https://example.org/schema', '')),
}, false);

describe('fuzz: signals', () => {
  it(`createSignal takes any input: a frozen valid signal or a typed error; validateSignal and isSignal take anything (${params().numRuns} cases)`, () => {
    fc.assert(
      fc.property(signalInputArb, hostileArb, (input, other) => {
        const where = `createSignal(${input.label})`;
        const r = runSync(() => createSignal(input.make() as never));
        expectTyped(r, where);
        if (r.ok) {
          expect(Object.isFrozen(r.value)).toBe(true);
          expect(isSignal(r.value)).toBe(true);
        }
        const v = other.make();
        expectTyped(
          runSync(() => validateSignal(v)),
          `validateSignal(${other.label})`,
        );
        const is = runSync(() => isSignal(v));
        if (!is.ok || typeof is.value !== 'boolean') throw new Error(`isSignal(${other.label}) did not answer a boolean`);
      }),
      params(),
    );
  });
});

async function agentsFixture(): Promise<{ fx: Fixture; router: SignalRouterHandle; scheduler: AgentSchedulerHandle }> {
  let router!: SignalRouterHandle;
  let scheduler!: AgentSchedulerHandle;
  const fx = await fuzzNode(track, async (node) => {
    router = await SignalRouter.start(node);
    scheduler = await AgentScheduler.start(node);
    return { 'keel.agents': node.registry.whereis('keel.agents')!, router: router.pid, scheduler: scheduler.pid };
  });
  return { fx, router, scheduler };
}

const subscribeOptionsArb = optionsArb({
  capacity: field(fc.constantFrom(1, 10, 1000), numberArb),
  overflow: field(fc.constantFrom('drop_newest', 'drop_oldest', 'reject'), orHostile(fc.constant('bogus'))),
  maxInFlight: field(fc.constantFrom(1, 8), numberArb),
});

describe('fuzz: the signal router', () => {
  it(`subscribe takes any pattern, subscriber and options, and publish any value: an answer or a typed error, and the router keeps routing (${params().numRuns} cases)`, async () => {
    const { fx, router } = await agentsFixture();
    const subscribers = fc.oneof({ arbitrary: fc.constantFrom(new F('the router itself', () => router.pid)), weight: 1 }, { arbitrary: targetArb(), weight: 6 });
    // a subscriber that counts what reaches it: the router must keep delivering
    let delivered = 0;
    const witness = fx.node.spawn(() => () => {
      delivered++;
    });
    fx.guarded.add(witness);
    expect(await router.subscribe('fuzz.witness', witness)).toBe('ok');
    await fc.assert(
      fc.asyncProperty(orHostile(stringArb), subscribers, subscribeOptionsArb, hostileArb, async (pattern, subscriber, options, published) => {
        const where = `subscribe(${pattern.label}, ${subscriber.label}, ${options.label}), publish(${published.label})`;
        const { value: o, stray } = withStrays(() => options.make());
        const r = await run(() => router.subscribe(pattern.make() as never, subscriber.make(fx) as never, o as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (r.ok && r.value !== 'ok' && !(typeof r.value === 'object' && r.value !== null && (r.value as { error?: unknown }).error === 'noproc')) {
          throw new Error(`${where}: subscribe answered ${String(r.value)}`);
        }
        expectTyped(runSync(() => router.publish(published.make() as never)), `publish(${published.label})`);
        const before = delivered;
        router.publish(createSignal({ type: 'fuzz.witness', source: '/fuzz' }));
        await fx.node.idle({ timeoutMs: 2000 });
        if (delivered !== before + 1) throw new Error(`${where}: the router no longer delivers to its other subscribers`);
        await checkAfter(fx, where);
      }),
      params(),
    );
    expect(router.pid).toBe(fx.services.get('router'));
    await finish(fx);
  }, TIMEOUT);
});

const periodicOptionsArb = optionsArb({ jitter: field(fc.constantFrom(0, 1, 50), numberArb), missed: field(fc.constantFrom('skip', 'catch_up'), orHostile(fc.constant('bogus'))) });

describe('fuzz: the agent scheduler', () => {
  it(`registerPeriodic takes any agent, id, interval, message and options: an answer or a typed error, and the scheduler goes on (${params().numRuns} cases)`, async () => {
    const { fx, scheduler } = await agentsFixture();
    const agents = fc.oneof({ arbitrary: fc.constantFrom(new F('the scheduler itself', () => scheduler.pid)), weight: 1 }, { arbitrary: targetArb(), weight: 6 });
    const registered: [unknown, unknown][] = [];
    await fc.assert(
      fc.asyncProperty(agents, orHostile(fc.constantFrom('tick', 'beat', '')), numberArb, hostileArb, periodicOptionsArb, async (agent, id, interval, message, options) => {
        const where = `registerPeriodic(${agent.label}, ${id.label}, ${interval.label}, ${message.label}, ${options.label})`;
        const a = agent.make(fx);
        const i = id.make();
        const { value: o, stray } = withStrays(() => options.make());
        const r = runSync(() => scheduler.registerPeriodic(a as never, i as never, interval.make() as never, message.make(), o as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (r.ok) {
          const w = attempt(() => r.value as Promise<unknown>);
          await fx.node.idle({ timeoutMs: 2000 });
          if (w.status === 'pending') throw new Error(`${where}: neither resolved nor rejected`);
          if (w.status === 'rejected') expectTyped({ ok: false, error: w.error }, where);
          else registered.push([a, i]);
        }
        // the scheduler's timers go on: the clock moves past this case's interval, the scheduler answers
        await fx.clock.advance(2000);
        await fx.node.idle({ timeoutMs: 2000 });
        const stats = await scheduler.stats();
        if (typeof stats.schedules !== 'number') throw new Error(`${where}: stats() answered ${String(stats)}`);
        // a schedule is removed again, so that the scheduler's work stays that of one case
        for (const [agentOf, idOf] of registered.splice(0)) await scheduler.unregister(agentOf as Pid, idOf as string);
        await checkAfter(fx, where);
      }),
      params(),
    );
    expect(scheduler.pid).toBe(fx.services.get('scheduler'));
    await finish(fx);
  }, TIMEOUT);
});

// ---- every delivery started ends counted once, and only a failure gets the onError policy ----

type SchedOp =
  | { kind: 'register'; a: number; id: string; ms: number }
  | { kind: 'unregister'; a: number; id: string }
  | { kind: 'unregisterAgent'; a: number }
  | { kind: 'advance'; ms: number }
  | { kind: 'hold' | 'release' | 'kill'; a: number }
  | { kind: 'killScheduler' };

const agentIndex = fc.integer({ min: 0, max: 1 });
const scheduleId = fc.constantFrom('a', 'b');
// weighted so that deliveries are often under way (queued behind a held handler, timed out, in a
// backoff) when their schedule goes
const schedOpArb: fc.Arbitrary<SchedOp> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('register' as const), a: agentIndex, id: scheduleId, ms: fc.constantFrom(10, 30, 100) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('unregister' as const), a: agentIndex, id: scheduleId }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unregisterAgent' as const), a: agentIndex }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('advance' as const), ms: fc.integer({ min: 0, max: 60 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constantFrom('hold' as const, 'release' as const, 'kill' as const), a: agentIndex }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'killScheduler' as const }) },
);
/** At most this many scheduler kills per case (the node's supervisor restarts it 10 times in 5 s at most). */
const SCHEDULER_KILLS = 3;
const sendOptionsArb = fc.record({
  ack: fc.constantFrom('enqueued' as const, 'handled' as const),
  retries: fc.integer({ min: 0, max: 2 }),
  onError: fc.constantFrom('log' as const, 'dead_letter' as const, 'ignore' as const, 'raise' as const),
  capacity: fc.constantFrom(undefined, 1, 2),
  held: fc.boolean(),
});

describe('fuzz: the agent scheduler under register and unregister', () => {
  it(`every delivery started ends counted once (delivered + failed + withdrawn = started), whatever onError says, and the policy is applied to the failed ones only (${Math.max(20, Math.floor(RUNS / 20))} cases)`, async () => {
    await fc.assert(
      fc.asyncProperty(sendOptionsArb, fc.array(schedOpArb, { minLength: 15, maxLength: 40, size: "max" }), async (o, ops) => {
        const warned: string[] = [];
        const logger = { info: () => {}, warn: (m: unknown) => void warned.push(String(m)), error: (m: unknown) => void warned.push(String(m)) };
        const { node, clock } = clockedNode(track, { random: () => 0.5, logger, services: { deadLetters: { maxRetries: 0 } } });
        const scheduler = await AgentScheduler.start(node, {
          sendOptions: { ack: o.ack, onError: o.onError, retries: o.retries, timeout: 40, backoff: { initialMs: 20, factor: 1, jitter: 'none' } },
        });
        const started = captureEvents(node, ['keel.supervised_send.send.start']);
        const stopped = captureEvents(node, ['keel.supervised_send.send.stop', 'keel.supervised_send.send.exception']); // an end (a rejection, with 'raise')
        const ofScheduler = (c: typeof started): number => c.events.filter((e) => e.metadata.scheduler === scheduler.name).length;
        // the deliveries a killed scheduler left waiting: aborted with it, counted by nobody, no policy
        let leftByKilled = 0;
        let kills = 0;
        const holding = [o.held, o.held];
        const gates: (() => void)[][] = [[], []];
        const spawnAgent = (i: number): Pid =>
          node.spawn(() => async () => {
            if (holding[i]) await new Promise<void>((resolve) => gates[i]!.push(resolve));
          }, o.capacity === undefined ? undefined : { mailbox: { capacity: o.capacity, overflow: 'reject' } });
        const release = (i: number): void => {
          for (const g of gates[i]!.splice(0)) g();
        };
        const agents = [spawnAgent(0), spawnAgent(1)];
        const step = async (ms: number): Promise<void> => {
          await clock.advance(ms);
          await node.settle();
          await new Promise<void>((resolve) => setImmediate(resolve)); // an attempt's timeout is armed at the next turn
          await node.settle();
        };
        for (const op of ops) {
          if (op.kind === 'register') await scheduler.registerPeriodic(agents[op.a]!, op.id, op.ms, op.id);
          else if (op.kind === 'unregister') await scheduler.unregister(agents[op.a]!, op.id);
          else if (op.kind === 'unregisterAgent') await scheduler.unregisterAgent(agents[op.a]!);
          else if (op.kind === 'advance') await step(op.ms);
          else if (op.kind === 'hold') holding[op.a] = true;
          else if (op.kind === 'release') {
            holding[op.a] = false;
            release(op.a);
          } else if (op.kind === 'killScheduler') {
            if (kills++ >= SCHEDULER_KILLS) continue;
            const pid = node.registry.whereis(scheduler.name)!;
            leftByKilled += ofScheduler(started) - ofScheduler(stopped); // every send waiting ends with it
            node.exit(pid, 'kill');
            await node.settle();
            const successor = node.registry.whereis(scheduler.name);
            if (successor === undefined || successor === pid) throw new Error('the killed scheduler was not restarted');
          } else {
            node.exit(agents[op.a]!, 'kill');
            holding[op.a] = false;
            release(op.a);
            agents[op.a] = spawnAgent(op.a);
          }
          await node.settle();
        }
        // the end: every schedule removed, every handler let go, every timeout and backoff passed
        holding.fill(false);
        for (const i of [0, 1]) {
          release(i);
          await scheduler.unregisterAgent(agents[i]!);
        }
        for (let t = 0; t < 10; t++) await step(100);
        await node.idle();
        const stats = await scheduler.stats();
        const starts = ofScheduler(started);
        const where = `${JSON.stringify(o)} ${JSON.stringify(ops)}: ${JSON.stringify(stats)}, ${starts} started, ${leftByKilled} left by a killed scheduler`;
        if (ofScheduler(stopped) !== starts) throw new Error(`${where}: ${ofScheduler(stopped)} ended`);
        if (stats.delivered + stats.failed + stats.withdrawn + leftByKilled !== starts) throw new Error(`${where}: delivered + failed + withdrawn (+ left by a killed scheduler) is not the number started`);
        const listed = await node.deadLetters.list({ limit: 10_000 });
        if (!('entries' in listed)) throw new Error('dead letter queue unavailable');
        // a copy acknowledged at 'enqueued' whose agent was killed with it queued is dead-lettered too (delivered, receiver_exited)
        const deadLettered = listed.entries.filter((e) => e.reason !== 'receiver_exited').length;
        const logged = warned.filter((w) => w.startsWith('supervised send')).length;
        const applied = o.onError === 'dead_letter' ? deadLettered : o.onError === 'log' ? logged : 0;
        const expected = o.onError === 'dead_letter' || o.onError === 'log' ? stats.failed : 0;
        if (applied !== expected || (o.onError !== 'log' && logged !== 0) || (o.onError !== 'dead_letter' && listed.entries.length !== 0)) {
          throw new Error(`${where}: the onError policy was applied ${applied} times (logged ${logged}, dead-lettered ${listed.entries.length}), not once per failed delivery`);
        }
        started.stop();
        stopped.stop();
        await node.shutdown();
      }),
      { ...params(Math.max(20, Math.floor(RUNS / 20))), timeout: 20_000 },
    );
  }, TIMEOUT);
});
