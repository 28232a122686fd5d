/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- the fuzz properties aim raw sends at processes on purpose and watch what they spawn with a probe's monitors */
// Fuzzed bad input to the kernel: node.spawn / ctx.spawn / ctx.spawnLink (init and options) and
// node.send / ctx.send (targets and messages). For every case the call returns or throws a typed
// Keel error (never a raw TypeError), nothing of Keel's crashes, what the call touched handles a
// marker afterwards (or has exited with a reason its monitor saw), and the scheduler goes on.
// 1,000 cases per API; KEEL_LONG=1 runs 10,000 (see hostile.ts for the seeds and replays).
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Context, formatReason, isDown, type Pid } from '../../src/index.js';
import { useNodes } from '../support.js';
import { F, finish, type Fixture, fromV, fuzzNode, checkAfter, pids, targetArb } from './fuzzKit.js';
import { expectStrayRefused, expectTyped, field, hostileArb, LONG, numberArb, optionsArb, orHostile, params, runSync, V, withStrays } from './hostile.js';

const track = useNodes();
const TIMEOUT = LONG ? 600_000 : 60_000;

/** Hostile values that would keep a process busy for good (the user's own wedge, not Keel's). */
const settles = (v: V): boolean => !v.label.includes('never settles');

let names = 0;

/** What an init does: forward markers (now, or after an await), or fail with a hostile value in one of the ways init can. */
const initArb: fc.Arbitrary<F> = fc.oneof(
  { arbitrary: hostileArb.map(fromV), weight: 1 },
  {
    arbitrary: fc.constantFrom(
      new F('an init that forwards markers', (fx) => forwardingInit(fx)),
      new F('an async init that forwards markers', (fx) => {
        const init = forwardingInit(fx);
        return async (ctx: Context) => {
          await Promise.resolve();
          return init(ctx);
        };
      }),
      new F('an init that exits normally', () => (ctx: Context) => {
        ctx.exit('normal');
        return () => undefined;
      }),
    ),
    weight: 2,
  },
  {
    arbitrary: fc
      .tuple(fc.constantFrom('throws', 'returns', 'rejects with', 'resolves to', 'exits with', 'returns a handler that throws'), hostileArb.filter(settles))
      .map(
        ([how, v]) =>
          new F(`an init that ${how} ${v.label}`, () => (ctx: Context) => {
            const value = v.make();
            switch (how) {
              case 'throws':
                throw value;
              case 'returns':
                return value as never;
              case 'rejects with':
                return Promise.reject(value as Error);
              case 'resolves to':
                return Promise.resolve(value) as never;
              case 'exits with':
                ctx.exit(value as never);
                return () => undefined;
              default:
                return () => {
                  throw value;
                };
            }
          }),
      ),
    weight: 3,
  },
);

function forwardingInit(fx: Fixture) {
  return (ctx: Context) => (m: unknown) => {
    if (typeof m === 'string' && m.startsWith('fuzz-marker:')) ctx.send(fx.probe, m);
  };
}

const nameArb = fc.oneof(
  fc.constantFrom(
    new V('a fresh name', () => `fuzz.spawned.${++names}`),
    new V('a taken name', () => 'fuzz.forwarder'),
    new V('a reserved name', () => 'keel.fuzz'),
    new V('keel.services', () => 'keel.services'),
    new V('an empty name', () => ''),
  ),
  hostileArb,
);
const mailboxArb = optionsArb({
  capacity: field(fc.constantFrom(1, 2, 100), numberArb),
  overflow: field(fc.constantFrom('reject', 'drop_newest', 'drop_oldest'), orHostile(fc.constant('bogus'))),
});
const spawnOptionsArb = optionsArb({
  name: field(fc.constant(new V('a fresh name', () => `fuzz.spawned.${++names}`)), nameArb),
  mailbox: field(fc.constant(new V('{ capacity: 2, overflow: drop_oldest }', () => ({ capacity: 2, overflow: 'drop_oldest' }))), mailboxArb),
});

describe('fuzz: spawning', () => {
  it(`node.spawn, ctx.spawn and ctx.spawnLink take any init and options: a pid or a typed error, and the process runs or exits with a reason its monitor sees (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    const { node } = fx;
    // a parent that traps exits, for ctx.spawn and ctx.spawnLink: its children's deaths are messages to it
    let parent!: Context;
    const parentPid = node.spawn((ctx) => {
      ctx.trapExits();
      parent = ctx;
      return () => undefined;
    });
    await node.idle();
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('node.spawn', 'ctx.spawn', 'ctx.spawnLink'), initArb, spawnOptionsArb, async (via, init, options) => {
        const where = `${via}(${init.label}, ${options.label})`;
        const before = pids(node);
        const i = init.make(fx);
        const { value: o, stray } = withStrays(() => options.make());
        const r = runSync(() => (via === 'node.spawn' ? node.spawn(i as never, o as never) : via === 'ctx.spawn' ? parent.spawn(i as never, o as never) : parent.spawnLink(i as never, o as never)));
        expectTyped(r, where);
        expectStrayRefused(stray, r.ok, where);
        if (!r.ok) {
          // a refused spawn spawns nothing
          expect([...pids(node)].filter((p) => !before.has(p))).toEqual([]);
          await checkAfter(fx, where);
          return;
        }
        const pid = r.value as Pid;
        fx.probe.ctx.monitor(pid); // before its init runs (on its first turn)
        await checkAfter(fx, where, [pid]);
        const down = fx.probe.messages.find((m) => isDown(m) && m.pid === pid);
        // a death is told with a reason that can be read
        if (down !== undefined && isDown(down)) expect(typeof formatReason(down.reason)).toBe('string');
        if (node.isAlive(pid)) node.exit(pid, 'kill');
      }),
      params(),
    );
    expect(node.isAlive(parentPid)).toBe(true);
    await finish(fx);
  }, TIMEOUT);
});

describe('fuzz: sending', () => {
  it(`node.send and ctx.send take any target and message: undefined or a typed error, and nothing they reach crashes or wedges (${params().numRuns} cases)`, async () => {
    const fx = await fuzzNode(track);
    await fc.assert(
      fc.asyncProperty(fc.constantFrom('node.send', 'ctx.send'), targetArb(), hostileArb, async (via, target, message) => {
        const where = `${via}(${target.label}, ${message.label})`;
        const to = target.make(fx);
        const m = message.make();
        const r = runSync(() => (via === 'node.send' ? fx.node.send(to as never, m) : fx.probe.ctx.send(to as never, m)));
        expectTyped(r, where);
        if (r.ok) expect(r.value).toBeUndefined();
        await checkAfter(fx, where);
      }),
      params(),
    );
    await finish(fx);
  }, TIMEOUT);
});
