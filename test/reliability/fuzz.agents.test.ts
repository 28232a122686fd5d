// Fuzzed bad input to the agent layer: createSignal (and validateSignal, isSignal), SignalRouter
// subscribe patterns and options (and publish), AgentScheduler.registerPeriodic intervals, ids,
// messages and options. For every case the call returns (or resolves) or throws (or rejects) a
// typed Keel error, the router and the scheduler keep running (the same processes, answering), the
// scheduler's timers go on (the clock moves past a case's intervals without a wedge), and the
// node's own processes are untouched.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { AgentScheduler, type AgentSchedulerHandle, createSignal, isSignal, type Pid, SignalRouter, type SignalRouterHandle, validateSignal } from '../../src/index.js';
import { attempt, useNodes } from '../support.js';
import { checkAfter, F, finish, type Fixture, fuzzNode, targetArb } from './fuzzKit.js';
import { expectStrayRefused, expectTyped, field, hostileArb, LONG, numberArb, optionsArb, orHostile, params, run, runSync, V, withStrays } from './hostile.js';

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
