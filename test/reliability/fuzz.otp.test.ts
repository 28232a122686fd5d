/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- the fuzz properties watch what they start with a probe's monitors, and a child spec sends its child a raw message to crash it on purpose */
// Fuzzed bad input to the OTP layer: GenServer.call and GenServer.cast (from, targets, requests,
// options, a bare number timeout among them), Supervisor.start (child specs and options) and
// DynamicSupervisor.start / startChild / terminateChild. For every case the call returns (or
// resolves) or throws (or rejects) a typed Keel error, nothing of Keel's crashes, what the call
// reached still handles a marker, a call accepted settles (its reply, or a typed error once its
// timeout passes, its server dies or the node shuts down), and the scheduler goes on.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Context, DynamicSupervisor, GenServer, isDown, type Pid, Supervisor } from '../../src/index.js';
import { attempt, useNodes, type Watched } from '../support.js';
import { checkAfter, finish, type Fixture, fromArb, fuzzNode, signalArb, targetArb } from './fuzzKit.js';
import { expectStrayRefused, expectTyped, field, hostileArb, keelCode, LONG, numberArb, optionsArb, orHostile, params, runSync, V, withStrays } from './hostile.js';

const track = useNodes();
const TIMEOUT = LONG ? 900_000 : 60_000;


const callOptionsArb: fc.Arbitrary<V> = fc.oneof(
  numberArb,
  optionsArb({ timeout: field(fc.constantFrom(0, 100, 5000, Number.POSITIVE_INFINITY), numberArb), signal: field(fc.constant(new V('a live AbortSignal', () => new AbortController().signal)), signalArb) }),
);

/** Settles what a call or a start accepted: the node runs, and the clock passes a default timeout. */
async function drive(fx: Fixture): Promise<void> {
  await fx.node.idle({ timeoutMs: 2000 });
  await fx.clock.advance(6000);
  await fx.node.idle({ timeoutMs: 2000 });
}

/** Calls and starts accepted and still pending after their case: they must settle by the node's shutdown. */
function pendingAtEnd(): { add(where: string, w: Watched<unknown>): void; check(): void } {
  const pending: [string, Watched<unknown>][] = [];
  return {
    add: (where, w) => {
      if (w.status === 'pending') pending.push([where, w]);
    },
    check: () => {
      for (const [where, w] of pending) {
        if (w.status === 'pending') throw new Error(`${where}: still pending after the node shut down`);
        if (w.status === 'rejected' && keelCode(w.error) === undefined) throw new Error(`${where}: rejected with an untyped error after the shutdown`);
      }
    },
  };
}

describe('fuzz: GenServer.call and GenServer.cast', () => {
  it(`GenServer.call takes any from, target, request and options: a reply or a typed error, and a call accepted settles (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    const late = pendingAtEnd();
    await fc.assert(
      fc.asyncProperty(fromArb, targetArb(), hostileArb, callOptionsArb, async (from, target, request, options) => {
        const where = `GenServer.call(${from.label}, ${target.label}, ${request.label}, ${options.label})`;
        const f = from.make(fx);
        const to = target.make(fx);
        const { value: o, stray } = withStrays(() => options.make());
        const r = runSync(() => GenServer.call(f as never, to as never, request.make(), o as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (r.ok) {
          const w = attempt(() => r.value as Promise<unknown>);
          await drive(fx);
          if (w.status === 'rejected') expectTyped({ ok: false, error: w.error }, where);
          late.add(where, w);
        }
        await checkAfter(fx, where);
      }),
      params(),
    );
    await finish(fx);
    await fx.node.shutdown();
    late.check();
  }, TIMEOUT);

  it(`GenServer.cast takes any from, target and request: undefined or a typed error, and nothing it reaches crashes (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    await fc.assert(
      fc.asyncProperty(fromArb, targetArb(), hostileArb, async (from, target, request) => {
        const where = `GenServer.cast(${from.label}, ${target.label}, ${request.label})`;
        const f = from.make(fx);
        const to = target.make(fx);
        const r = runSync(() => GenServer.cast(f as never, to as never, request.make()));
        expectTyped(r, where);
        if (r.ok) expect(r.value).toBeUndefined();
        await checkAfter(fx, where);
      }),
      params(),
    );
    await finish(fx);
  }, TIMEOUT);
});

/** What a child's start does: start a linked process, or misbehave in one of the ways a start can. */
const startArb: fc.Arbitrary<V> = fc.oneof(
  {
    arbitrary: fc.constantFrom(
      new V('spawnLink an idle process', () => (ctx: Context) => ctx.spawnLink(() => () => undefined)),
      new V('spawnLink a process that crashes on start', () => (ctx: Context) =>
        ctx.spawnLink(() => {
          throw new Error('child init failed');
        }),
      ),
      new V('spawn an idle process, not linked', () => (ctx: Context) => ctx.spawn(() => () => undefined)),
      new V("return the supervisor's own pid", () => (ctx: Context) => ctx.self),
      new V('return a dead pid', () => (ctx: Context) => {
        const pid = ctx.spawn(() => () => undefined);
        ctx.exit(pid, 'kill');
        return pid;
      }),
      new V('return a pid of another node', () => () => ({ node: 'elsewhere', creation: 1, id: 1 })),
      new V('GenServer.startLink a server', () => (ctx: Context) => GenServer.startLink(ctx, { init: () => null })),
    ),
    weight: 3,
  },
  {
    arbitrary: fc.tuple(fc.constantFrom('throws', 'returns', 'rejects with', 'resolves to'), hostileArb.filter((v) => !v.label.includes('never settles'))).map(
      ([how, v]) =>
        new V(`a start that ${how} ${v.label}`, () => () => {
          const value = v.make();
          if (how === 'throws') throw value;
          if (how === 'rejects with') return Promise.reject(value as Error);
          if (how === 'resolves to') return Promise.resolve(value);
          return value;
        }),
    ),
    weight: 2,
  },
  { arbitrary: hostileArb, weight: 1 },
);

let ids = 0;
const idArb = fc.oneof(
  fc.constantFrom(new V('a fresh id', () => `child-${++ids}`), new V("the id 'a'", () => 'a'), new V('an empty id', () => '')),
  hostileArb,
);
const childSpecArb = optionsArb({
  id: field(fc.constant(new V('a fresh id', () => `child-${++ids}`)), idArb),
  start: field(fc.constantFrom(new V('spawnLink an idle process', () => (ctx: Context) => ctx.spawnLink(() => () => undefined)), new V('spawnLink a process that crashes on its first message', () => (ctx: Context) => {
    const pid = ctx.spawnLink(() => () => {
      throw new Error('child crashed');
    });
    ctx.send(pid, 'crash');
    return pid;
  })), startArb),
  restart: field(fc.constantFrom('permanent', 'transient', 'temporary'), orHostile(fc.constant('bogus'))),
  shutdown: field(fc.constantFrom(0, 100, 'brutal_kill', 'infinity'), fc.oneof(numberArb, orHostile(fc.constant('bogus')))),
  type: field(fc.constantFrom('worker', 'supervisor'), orHostile(fc.constant('bogus'))),
});
const childrenArb: fc.Arbitrary<V> = fc.oneof(
  { arbitrary: fc.array(childSpecArb, { maxLength: 3 }).map((specs) => new V(`[${specs.map((s) => s.label).join(', ')}]`, () => specs.map((s) => s.make()))), weight: 5 },
  { arbitrary: hostileArb, weight: 1 },
);
let supNames = 0;
const supNameArb = fc.oneof(
  fc.constantFrom(new V('a fresh name', () => `fuzz.sup.${++supNames}`), new V('a taken name', () => 'fuzz.forwarder'), new V('a reserved name', () => 'keel.sup')),
  hostileArb,
);
const backoffArb = optionsArb({
  initialMs: field(fc.constantFrom(0, 1, 10, 1000), numberArb),
  factor: field(fc.constantFrom(1, 2, 10), numberArb),
  maxMs: field(fc.constantFrom(0, 10, 5000), numberArb),
  jitter: field(fc.constantFrom('full', 'none'), orHostile(fc.constant('bogus'))),
});
const supervisorOptionsArb = optionsArb({
  strategy: field(fc.constantFrom('one_for_one', 'one_for_all', 'rest_for_one'), orHostile(fc.constant('bogus'))),
  maxRestarts: field(fc.constantFrom(0, 1, 3, 100), numberArb),
  withinMs: field(fc.constantFrom(1, 5000), numberArb),
  backoff: field(fc.constant(new V('{ initialMs: 10 }', () => ({ initialMs: 10 }))), backoffArb),
  name: field(fc.constant(new V('a fresh name', () => `fuzz.sup.${++supNames}`)), supNameArb),
});

/** A supervisor the case started: it answers, then it is stopped (and its children with it). */
async function checkSupervisor(fx: Fixture, where: string, sup: Pid, which: () => Promise<unknown>): Promise<void> {
  fx.probe.ctx.monitor(sup);
  fx.guarded.add(sup);
  // it answers (a supervisor forwards no marker: its answer is its sign of life)
  const rows = await which();
  if (!Array.isArray(rows)) throw new Error(`${where}: whichChildren answered ${String(rows)}`);
  await checkAfter(fx, where);
  fx.guarded.delete(sup);
  // stopped as its starter would (an exit signal from another process is only a message to it)
  const stopped = attempt(() => GenServer.stop(fx.node, sup, 'shutdown'));
  // children that do not stop are killed after their shutdown time, on the node's clock
  await fx.node.idle({ timeoutMs: 2000 });
  await fx.clock.advance(10_000);
  await fx.probe.receive((m) => isDown(m) && m.pid === sup, { timeout: 2000 });
  await fx.node.idle({ timeoutMs: 2000 });
  if (stopped.status !== 'resolved') throw new Error(`${where}: GenServer.stop of the supervisor ${stopped.status === 'pending' ? 'is still pending' : `rejected with ${String(stopped.error)}`}`);
}

describe('fuzz: supervisors', () => {
  it(`Supervisor.start takes any child specs and options: a running supervisor or a typed error (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    await fc.assert(
      fc.asyncProperty(fromArb, childrenArb, supervisorOptionsArb, async (from, children, options) => {
        const where = `Supervisor.start(${from.label}, ${children.label}, ${options.label})`;
        const { value: args, stray } = withStrays(() => [children.make(), options.make()] as const);
        const r = runSync(() => Supervisor.start(from.make(fx) as never, args[0] as never, args[1] as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (!r.ok) return checkAfter(fx, where);
        const w = attempt(() => r.value as Promise<Pid>);
        await fx.node.idle({ timeoutMs: 2000 });
        if (w.status === 'pending') throw new Error(`${where}: the start neither resolved nor rejected`);
        if (w.status === 'rejected') {
          expectTyped({ ok: false, error: w.error }, where);
          return checkAfter(fx, where);
        }
        const sup = w.value!;
        await checkSupervisor(fx, where, sup, () => Supervisor.whichChildren(fx.node, sup));
      }),
      params(),
    );
    await finish(fx);
  }, TIMEOUT);

  it(`DynamicSupervisor.start, startChild and terminateChild take anything: a running supervisor, a child, or a typed error (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    const dynamicOptionsArb = optionsArb({ maxChildren: numberArb, maxRestarts: numberArb, withinMs: numberArb, name: supNameArb });
    const dynamicSpecArb = fc.oneof(optionsArb({ id: idArb, start: startArb, restart: orHostile(fc.constantFrom('permanent', 'transient', 'temporary')), shutdown: numberArb, type: orHostile(fc.constantFrom('worker', 'supervisor')) }), hostileArb);
    const childPidArb = fc.oneof(fc.constant(new V('the child started', () => 'child')), hostileArb);
    await fc.assert(
      fc.asyncProperty(fromArb, dynamicOptionsArb, fc.array(dynamicSpecArb, { maxLength: 3 }), childPidArb, async (from, options, specs, victim) => {
        const where = `DynamicSupervisor.start(${from.label}, ${options.label}) then startChild(${specs.map((s) => s.label).join('; ')}) and terminateChild(${victim.label})`;
        const { value: o, stray } = withStrays(() => options.make());
        const r = runSync(() => DynamicSupervisor.start(from.make(fx) as never, o as never));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (!r.ok) return checkAfter(fx, where);
        const w = attempt(() => r.value as Promise<Pid>);
        await fx.node.idle({ timeoutMs: 2000 });
        if (w.status !== 'resolved') {
          if (w.status === 'pending') throw new Error(`${where}: the start neither resolved nor rejected`);
          expectTyped({ ok: false, error: w.error }, where);
          return checkAfter(fx, where);
        }
        const sup = w.value!;
        fx.probe.ctx.monitor(sup);
        fx.guarded.add(sup);
        let child: unknown;
        for (const spec of specs) {
          const { value: s, stray } = withStrays(() => spec.make());
          const started = attempt(() => DynamicSupervisor.startChild(fx.node, sup, s as never));
          await fx.node.idle({ timeoutMs: 2000 });
          if (started.status === 'pending') throw new Error(`${where}: startChild(${spec.label}) neither resolved nor rejected`);
          expectStrayRefused(stray, started.status === 'resolved', `${where}: startChild(${spec.label})`);
          if (started.status === 'rejected') expectTyped({ ok: false, error: started.error }, `${where}: startChild(${spec.label})`);
          else child ??= started.value;
        }
        const target = victim.label === 'the child started' ? child : victim.make();
        const terminated = attempt(() => DynamicSupervisor.terminateChild(fx.node, sup, target as never));
        await fx.node.idle({ timeoutMs: 2000 });
        await fx.clock.advance(10_000);
        if (terminated.status === 'pending') throw new Error(`${where}: terminateChild neither resolved nor rejected`);
        if (terminated.status === 'rejected') expectTyped({ ok: false, error: terminated.error }, `${where}: terminateChild`);
        await checkSupervisor(fx, where, sup, () => DynamicSupervisor.whichChildren(fx.node, sup));
      }),
      params(),
    );
    await finish(fx);
  }, TIMEOUT);
});
