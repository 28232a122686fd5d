/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- tests observe exits by a monitor's Down and report to probes with raw sends, the way STYLE.md 10 asks tests to wait */
import { describe, expect, it } from 'vitest';
import {
  GenServer,
  isDown,
  isExit,
  isKeelError,
  Pid,
  Supervisor,
  type ChildInfo,
  type ChildSpec,
  type Context,
  type Down,
  type ExitReason,
  type Init,
  type Node,
  type StartError,
  type SupervisorOptions,
} from '../../src/index.js';
import { captureEvents, probe, TestClock, type CapturedEvent, type Probe } from '../../src/testing/index.js';
import { deferred, expectKeelError, failure, fakeLogger, receiveDown, seeded, thrown, useNodes } from '../support.js';
import { memoryPair } from '../cluster/support.js';

const track = useNodes();

// ---- helpers ----------------------------------------------------------------------------------

/** A worker: it crashes on 'crash' (with `Error('<id> crashed')`) and exits with `reason` on `{ exit: reason }`. */
function worker(id: string): Init<unknown> {
  return (ctx) => (m) => {
    if (m === 'crash') throw new Error(`${id} crashed`);
    if (typeof m === 'object' && m !== null && 'exit' in m) ctx.exit((m as { exit: ExitReason }).exit);
  };
}

/** A child spec whose start records `id` in `starts` (in the supervisor, in start order) and spawns a linked worker. */
function child(id: string, starts: string[] = [], extra: Partial<ChildSpec> = {}): ChildSpec {
  return {
    id,
    start: (ctx) => {
      starts.push(id);
      return ctx.spawnLink(worker(id));
    },
    ...extra,
  };
}

/**
 * A child that traps exits and tells `p` `{ got: id, from, reason }` for every Exit it receives.
 * With `obey` it then exits with that reason; otherwise it ignores the signal (and must be killed).
 */
function trapping(id: string, p: Pid, obey: boolean, extra: Partial<ChildSpec> = {}): ChildSpec {
  return {
    id,
    start: (ctx) =>
      ctx.spawnLink((c) => {
        c.trapExits();
        return (m) => {
          if (m === 'stop') c.exit('shutdown');
          if (!isExit(m)) return;
          c.send(p, { got: id, from: m.from, reason: m.reason });
          if (obey) c.exit(m.reason);
        };
      }),
    ...extra,
  };
}

interface Got {
  readonly got: string;
  readonly from: Pid | 'node';
  readonly reason: ExitReason;
}

function isGot(m: unknown, id?: string): m is Got {
  return typeof m === 'object' && m !== null && 'got' in m && (id === undefined || (m as Got).got === id);
}

/** Every child row by id. */
async function rows(node: Node, sup: Pid): Promise<Record<string, ChildInfo>> {
  return Object.fromEntries((await Supervisor.whichChildren(node, sup)).map((c) => [c.id, c]));
}

function running(pid: ChildInfo['pid'] | undefined): Pid {
  if (pid === undefined || pid === 'restarting') throw new Error(`expected a running child, got ${String(pid)}`);
  return pid;
}

/** The running pid of every child, by id. */
async function pidsOf(node: Node, sup: Pid): Promise<Record<string, Pid>> {
  const all = await rows(node, sup);
  return Object.fromEntries(Object.entries(all).map(([id, row]) => [id, running(row.pid)]));
}

async function pidOf(node: Node, sup: Pid, id: string): Promise<Pid> {
  return running((await rows(node, sup))[id]?.pid);
}

const SUP = 'keel.supervisor.';

function supervisorEvents(node: Node): { readonly events: CapturedEvent[]; stop(): void } {
  return captureEvents(node, [SUP]);
}

/** `[event without its prefix, child id]` for every captured event. */
function summary(events: readonly CapturedEvent[]): [string, unknown][] {
  return events.map((e) => [e.event.slice(SUP.length), e.metadata.id]);
}

function named(events: readonly CapturedEvent[], name: string): CapturedEvent[] {
  return events.filter((e) => e.event === SUP + name);
}

function samePid(a: unknown, b: Pid): boolean {
  return typeof a === 'object' && a !== null && 'id' in a && Pid.equals(a as Pid, b);
}

/** Downs the probe got, by the formatted pid of the process that died. */
function downsByPid(p: Probe): Map<string, ExitReason> {
  return new Map(p.messages.filter(isDown).map((d: Down) => [Pid.format(d.pid), d.reason]));
}

// ---- child spec validation ----------------------------------------------------------------------

describe('Supervisor.start child spec validation', () => {
  const start = (ctx: Context) => ctx.spawnLink(worker('x'));

  it.each<[string, unknown, string[]]>([
    ['a duplicate id', [child('a'), child('b'), child('a')], ['children', "'a' appears twice"]],
    ['an empty id', [{ id: '', start }], ['children[0].id', 'a non-empty string']],
    ['a non-string id', [{ id: 42, start }], ['children[0].id', '42']],
    ['a bad restart value', [child('a'), { id: 'b', start, restart: 'sometimes' }], ['children[1].restart', "'permanent' | 'transient' | 'temporary'", 'sometimes']],
    ['a negative shutdown', [{ id: 'a', start, shutdown: -1 }], ['children[0].shutdown', "'brutal_kill'"]],
    ['a non-numeric shutdown', [{ id: 'a', start, shutdown: 'never' }], ['children[0].shutdown', 'never']],
    ['a NaN shutdown', [{ id: 'a', start, shutdown: Number.NaN }], ['children[0].shutdown']],
    ['a bad type', [{ id: 'a', start, type: 'manager' }], ['children[0].type', "'worker' | 'supervisor'", 'manager']],
    ['a non-function start', [{ id: 'a', start: 'spawn me' }], ['children[0].start', 'a function']],
    ['a missing start', [{ id: 'a' }], ['children[0].start', 'undefined']],
    ['a non-object spec', [child('a'), null], ['children[1]', 'null']],
    ['children that are not an array', { a: child('a') }, ['children', 'an array']],
  ])('rejects %s with ERR_INVALID_ARGUMENT naming the field', async (_label, children, fragments) => {
    const node = track();
    const before = node.processes().length;
    const e = await failure(() => Supervisor.start(node, children as ChildSpec[]));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', ...fragments);
    expect(node.processes().length).toBe(before);
  });

  it('names the child spec by its index in the list, and the child by the id it was given', async () => {
    const node = track();
    const fields = (e: unknown) => ({ message: (e as Error).message, argument: (e as { argument?: unknown }).argument });
    expect(fields(await failure(() => Supervisor.start(node, [child('a'), { id: 'b' } as ChildSpec])))).toEqual({
      message: "expected `children[1].start` to be a function (ctx) => Pid | Promise<Pid>, got undefined; in the spec of child 'b'",
      argument: 'children[1].start',
    });
    expect(fields(await failure(() => Supervisor.start(node, [{ id: 'c', start, restart: 'always' } as never])))).toEqual({
      message: "expected `children[0].restart` to be 'permanent' | 'transient' | 'temporary', got \"always\"; in the spec of child 'c'",
      argument: 'children[0].restart',
    });
  });

  it.each<[string, unknown, string]>([
    ['an unknown strategy', { strategy: 'one_for_some' }, 'options.strategy'],
    ['a negative maxRestarts', { maxRestarts: -1 }, 'options.maxRestarts'],
    ['a fractional maxRestarts', { maxRestarts: 1.5 }, 'options.maxRestarts'],
    ['a zero withinMs', { withinMs: 0 }, 'options.withinMs'],
    ['a non-numeric withinMs', { withinMs: '5s' }, 'options.withinMs'],
    ['a negative backoff', { backoff: { initialMs: -5 } }, 'options.backoff.initialMs'],
    ['a bad jitter', { backoff: { jitter: 'some' } }, 'options.backoff.jitter'],
    ['options that are not an object', 'fast', 'options'],
  ])('rejects %s with ERR_INVALID_ARGUMENT', async (_label, options, argument) => {
    const node = track();
    const e = await failure(() => Supervisor.start(node, [child('a')], options as SupervisorOptions));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', argument);
  });

  it('rejects a `from` that is neither a node nor a context, and startLink from a node', async () => {
    const node = track();
    expectKeelError(await failure(() => Supervisor.start({} as Node, [child('a')])), 'ERR_INVALID_ARGUMENT', 'from');
    expectKeelError(thrown(() => Supervisor.startLink(node as never, [child('a')])), 'ERR_INVALID_ARGUMENT', 'from');
  });
});

// ---- strategies -------------------------------------------------------------------------------

describe('restart strategies with a 3-child list [a, b, c]', () => {
  interface Expected {
    /** children that keep their pid */
    kept: string[];
    /** siblings the supervisor stops, in stop order */
    terminated: string[];
    /** children started again, in start order */
    restarted: string[];
  }
  const cases: [SupervisorOptions['strategy'] & string, string, Expected][] = [
    ['one_for_one', 'a', { kept: ['b', 'c'], terminated: [], restarted: ['a'] }],
    ['one_for_one', 'b', { kept: ['a', 'c'], terminated: [], restarted: ['b'] }],
    ['one_for_one', 'c', { kept: ['a', 'b'], terminated: [], restarted: ['c'] }],
    ['one_for_all', 'a', { kept: [], terminated: ['c', 'b'], restarted: ['a', 'b', 'c'] }],
    ['one_for_all', 'b', { kept: [], terminated: ['c', 'a'], restarted: ['a', 'b', 'c'] }],
    ['one_for_all', 'c', { kept: [], terminated: ['b', 'a'], restarted: ['a', 'b', 'c'] }],
    ['rest_for_one', 'a', { kept: [], terminated: ['c', 'b'], restarted: ['a', 'b', 'c'] }],
    ['rest_for_one', 'b', { kept: ['a'], terminated: ['c'], restarted: ['b', 'c'] }],
    ['rest_for_one', 'c', { kept: ['a', 'b'], terminated: [], restarted: ['c'] }],
  ];

  it.each(cases)('%s: when %s crashes, exactly the expected children get new pids, in order', async (strategy, crashed, expected) => {
    const node = track();
    const p = probe(node);
    const starts: string[] = [];
    const ids = ['a', 'b', 'c'];
    const sup = await Supervisor.start(node, ids.map((id) => child(id, starts)), { strategy });
    expect(starts).toEqual(ids);
    const before = await pidsOf(node, sup);
    for (const id of ids) p.ctx.monitor(before[id]!);
    starts.length = 0;
    const events = supervisorEvents(node);

    node.send(before[crashed]!, 'crash');
    await node.idle();

    const after = await pidsOf(node, sup);
    const replaced = ids.filter((id) => !expected.kept.includes(id));
    for (const id of expected.kept) {
      expect(Pid.equals(after[id]!, before[id]!), `${id} keeps its pid`).toBe(true);
      expect(node.isAlive(after[id]!)).toBe(true);
    }
    for (const id of replaced) {
      expect(Pid.equals(after[id]!, before[id]!), `${id} gets a new pid`).toBe(false);
      expect(node.isAlive(after[id]!)).toBe(true);
      expect(node.isAlive(before[id]!)).toBe(false);
    }
    // restarted in start order, siblings stopped first in reverse start order
    expect(starts).toEqual(expected.restarted);
    expect(summary(events.events)).toEqual([
      ...expected.terminated.map((id) => ['child_terminated', id]),
      ...expected.restarted.map((id) => ['child_restarted', id]),
    ]);
    // the crashed child died of its error, the stopped siblings of 'shutdown', the kept ones not at all
    const downs = downsByPid(p);
    const crashReason = downs.get(Pid.format(before[crashed]!));
    expect(crashReason instanceof Error && crashReason.message).toBe(`${crashed} crashed`);
    for (const id of expected.terminated) expect(downs.get(Pid.format(before[id]!))).toBe('shutdown');
    for (const id of expected.kept) expect(downs.has(Pid.format(before[id]!))).toBe(false);
    expect(downs.size).toBe(1 + expected.terminated.length);
    // the crash is the reason of the crashed child's restart event
    const own = named(events.events, 'child_restarted').find((e) => e.metadata.id === crashed);
    expect((own?.metadata.reason as Error | undefined)?.message).toBe(`${crashed} crashed`);
    expect((await rows(node, sup))[crashed]?.restarts).toBe(1);
  });

  it.each(['one_for_all', 'rest_for_one'] as const)(
    '%s: a temporary sibling stopped because of a crash is not restarted and its spec is removed',
    async (strategy) => {
      const node = track();
      const starts: string[] = [];
      const sup = await Supervisor.start(node, [child('a', starts), child('t', starts, { restart: 'temporary' }), child('c', starts)], { strategy });
      const before = await rows(node, sup);
      starts.length = 0;
      node.send(running(before.a?.pid), 'crash');
      await node.idle();
      expect(starts).toEqual(['a', 'c']);
      expect(Object.keys(await rows(node, sup))).toEqual(['a', 'c']);
      expect(node.isAlive(running(before.t?.pid))).toBe(false);
    },
  );
});

// ---- restart types ----------------------------------------------------------------------------

describe('restart types', () => {
  it.each<[string, ExitReason]>([
    ["'normal'", 'normal'],
    ["'shutdown'", 'shutdown'],
    ['{ shutdown }', { shutdown: 'done' }],
  ])('a transient child is not restarted after %s; its spec stays', async (_label, reason) => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('t', starts, { restart: 'transient' }), child('other', starts)]);
    const before = await pidOf(node, sup, 't');
    starts.length = 0;
    const events = supervisorEvents(node);
    node.send(before, { exit: reason });
    await node.idle();
    expect(starts).toEqual([]);
    const t = (await rows(node, sup)).t;
    expect(t?.pid).toBeUndefined();
    expect(t?.restarts).toBe(0);
    expect(named(events.events, 'child_restarted')).toEqual([]);
    expect(named(events.events, 'child_terminated').map((e) => [e.metadata.id, e.metadata.reason])).toEqual([['t', reason]]);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 2, active: 1, supervisors: 0, workers: 2 });
  });

  it.each<[string, unknown]>([
    ['a crash', 'crash'],
    ['an exit with an Error', { exit: new Error('bad exit') }],
  ])('a transient child is restarted after %s', async (_label, command) => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('t', starts, { restart: 'transient' })]);
    const before = await pidOf(node, sup, 't');
    starts.length = 0;
    node.send(before, command);
    await node.idle();
    expect(starts).toEqual(['t']);
    const after = await pidOf(node, sup, 't');
    expect(Pid.equals(after, before)).toBe(false);
    expect(node.isAlive(after)).toBe(true);
  });

  it.each<[string, unknown]>([
    ['a crash', 'crash'],
    ["'normal'", { exit: 'normal' }],
    ["'shutdown'", { exit: 'shutdown' }],
  ])('a temporary child is never restarted (after %s) and its spec is removed', async (_label, command) => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('tmp', starts, { restart: 'temporary' }), child('other', starts)]);
    const before = await pidOf(node, sup, 'tmp');
    starts.length = 0;
    const events = supervisorEvents(node);
    node.send(before, command);
    await node.idle();
    expect(starts).toEqual([]);
    expect(node.isAlive(before)).toBe(false);
    expect(Object.keys(await rows(node, sup))).toEqual(['other']);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 1, active: 1, supervisors: 0, workers: 1 });
    expect(named(events.events, 'child_restarted')).toEqual([]);
  });

  it.each<[string, unknown]>([
    ["'normal'", { exit: 'normal' }],
    ["'shutdown'", { exit: 'shutdown' }],
    ['a crash', 'crash'],
  ])('a permanent child (the default) is restarted after %s', async (_label, command) => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('p', starts)]);
    expect((await rows(node, sup)).p?.restart).toBe('permanent');
    const before = await pidOf(node, sup, 'p');
    starts.length = 0;
    node.send(before, command);
    await node.idle();
    expect(starts).toEqual(['p']);
    expect(Pid.equals(await pidOf(node, sup, 'p'), before)).toBe(false);
  });
});

// ---- intensity --------------------------------------------------------------------------------

describe('restart intensity', () => {
  /** A supervisor on a TestClock with children a and b, its pid monitored by a probe. */
  async function setup(options: SupervisorOptions) {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const sup = await Supervisor.start(node, [child('a'), child('b')], options);
    const supRef = p.ctx.monitor(sup);
    const crashA = async () => {
      node.send(await pidOf(node, sup, 'a'), 'crash');
      await node.idle();
    };
    return { clock, node, p, sup, supRef, crashA };
  }

  it('past maxRestarts within withinMs the supervisor stops its children and exits with shutdown', async () => {
    const { clock, node, p, sup, supRef, crashA } = await setup({ maxRestarts: 2, withinMs: 1000 });
    const b = await pidOf(node, sup, 'b');
    const bRef = p.ctx.monitor(b);
    const events = supervisorEvents(node);
    await crashA();
    await clock.advance(100);
    await crashA();
    await clock.advance(100);
    expect(node.isAlive(sup)).toBe(true);
    expect(named(events.events, 'child_restarted')).toHaveLength(2);
    await crashA();
    expect((await receiveDown(p, supRef)).reason).toBe('shutdown');
    expect((await receiveDown(p, bRef)).reason).toBe('shutdown');
    expect(named(events.events, 'child_restarted')).toHaveLength(2);
    expect(named(events.events, 'shutdown').map((e) => e.metadata.reason)).toEqual(['max_restart_intensity']);
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });

  it('crashes spread wider than the window do not exhaust it', async () => {
    const { clock, node, sup, crashA } = await setup({ maxRestarts: 2, withinMs: 1000 });
    const events = supervisorEvents(node);
    for (let i = 0; i < 6; i++) {
      await crashA();
      await clock.advance(600);
    }
    expect(node.isAlive(sup)).toBe(true);
    expect(named(events.events, 'child_restarted')).toHaveLength(6);
    expect(named(events.events, 'shutdown')).toEqual([]);
    expect((await rows(node, sup)).a?.restarts).toBe(6);
  });

  it('defaults to 3 restarts in 5000 ms', async () => {
    const { clock, node, p, sup, supRef, crashA } = await setup({});
    for (let i = 0; i < 3; i++) {
      await crashA();
      await clock.advance(1000);
    }
    expect(node.isAlive(sup)).toBe(true);
    await crashA(); // the 4th within 5 s
    expect((await receiveDown(p, supRef)).reason).toBe('shutdown');
  });

  it('with the default window, restarts older than 5000 ms no longer count', async () => {
    const { clock, node, sup, crashA } = await setup({});
    for (let i = 0; i < 3; i++) await crashA();
    await clock.advance(5001);
    await crashA();
    expect(node.isAlive(sup)).toBe(true);
  });

  it('counts a restart whose start fails, retries it, and gives up past the intensity', async () => {
    const node = track();
    const p = probe(node);
    let attempts = 0;
    const sup = await Supervisor.start(
      node,
      [
        {
          id: 'flaky',
          start: (ctx) => {
            if (++attempts > 1) throw new Error(`start ${attempts} failed`);
            return ctx.spawnLink(worker('flaky'));
          },
        },
      ],
      { maxRestarts: 3, withinMs: 5000 },
    );
    const ref = p.ctx.monitor(sup);
    const events = supervisorEvents(node);
    node.send(await pidOf(node, sup, 'flaky'), 'crash');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(attempts).toBeGreaterThan(2);
    expect(named(events.events, 'child_restart_failed').length).toBe(attempts - 1);
    expect(named(events.events, 'shutdown').map((e) => e.metadata.reason)).toEqual(['max_restart_intensity']);
  });

  it('one_for_all: a group restart whose start fails part way keeps the children started before it and retries from the failed one (docs/otp.md: OTP restarts the whole group again)', async () => {
    const node = track();
    const starts: string[] = [];
    let bStarts = 0;
    const flakyB: ChildSpec = {
      id: 'b',
      start: (ctx) => {
        starts.push('b');
        if (++bStarts === 2) throw new Error('b fails');
        return ctx.spawnLink(worker('b'));
      },
    };
    const sup = await Supervisor.start(node, [child('a', starts), flakyB, child('c', starts)], { strategy: 'one_for_all', maxRestarts: 5 });
    const before = await pidsOf(node, sup);
    starts.length = 0;
    const events = supervisorEvents(node);
    node.send(before.c!, 'crash');
    await node.idle();
    expect(starts).toEqual(['a', 'b', 'b', 'c']);
    expect(summary(events.events)).toEqual([
      ['child_terminated', 'b'],
      ['child_terminated', 'a'],
      ['child_restarted', 'a'],
      ['child_restart_failed', 'b'],
      ['child_restarted', 'b'],
      ['child_restarted', 'c'],
    ]);
    const after = await pidsOf(node, sup);
    for (const id of ['a', 'b', 'c']) expect(node.isAlive(after[id]!)).toBe(true);
  });

  it('retries a failed restart until the start succeeds', async () => {
    const node = track();
    let attempts = 0;
    const sup = await Supervisor.start(node, [
      {
        id: 'flaky',
        start: (ctx) => {
          attempts++;
          if (attempts === 2) throw new Error('second start fails');
          return ctx.spawnLink(worker('flaky'));
        },
      },
    ], { maxRestarts: 5 });
    const events = supervisorEvents(node);
    const before = await pidOf(node, sup, 'flaky');
    node.send(before, 'crash');
    await node.idle();
    expect(attempts).toBe(3);
    const after = await pidOf(node, sup, 'flaky');
    expect(node.isAlive(after)).toBe(true);
    expect(summary(events.events)).toEqual([
      ['child_restart_failed', 'flaky'],
      ['child_restarted', 'flaky'],
    ]);
  });
});

// ---- escalation -------------------------------------------------------------------------------

describe('escalation in a three-level tree (root -> mid -> worker)', () => {
  async function tree(rootOptions: SupervisorOptions = {}) {
    const node = track();
    const p = probe(node);
    const root = await Supervisor.start(
      node,
      [{ id: 'mid', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, [child('w')], { maxRestarts: 1, withinMs: 5000 }) }],
      rootOptions,
    );
    const mid = await pidOf(node, root, 'mid');
    const w = await pidOf(node, mid, 'w');
    return { node, p, root, mid, w };
  }

  it('a worker crashing repeatedly exhausts mid, mid exits and root restarts it with a new worker', async () => {
    const { node, p, root, mid, w } = await tree();
    const midRef = p.ctx.monitor(mid);
    const events = supervisorEvents(node);

    node.send(w, 'crash');
    await node.idle();
    const w2 = await pidOf(node, mid, 'w');
    expect(Pid.equals(w2, w)).toBe(false);
    node.send(w2, 'crash');
    await node.idle();

    expect((await receiveDown(p, midRef)).reason).toBe('shutdown');
    const mid2 = await pidOf(node, root, 'mid');
    expect(Pid.equals(mid2, mid)).toBe(false);
    expect(node.isAlive(mid2)).toBe(true);
    const w3 = await pidOf(node, mid2, 'w');
    expect(node.isAlive(w3)).toBe(true);
    expect([w, w2].some((old) => Pid.equals(old, w3))).toBe(false);
    expect(node.isAlive(w)).toBe(false);
    expect(node.isAlive(w2)).toBe(false);

    const label = (pid: unknown) => (samePid(pid, root) ? 'root' : samePid(pid, mid) ? 'mid' : samePid(pid, mid2) ? 'mid2' : 'other');
    expect(events.events.map((e) => [e.event.slice(SUP.length), label(e.metadata.supervisor), e.metadata.id ?? e.metadata.reason])).toEqual([
      ['child_restarted', 'mid', 'w'],
      ['shutdown', 'mid', 'max_restart_intensity'],
      ['child_started', 'mid2', 'w'],
      ['child_restarted', 'root', 'mid'],
    ]);
    const midRestart = named(events.events, 'child_restarted').find((e) => e.metadata.id === 'mid');
    expect(midRestart?.metadata.reason).toBe('shutdown');
    expect(midRestart?.measurements.restarts).toBe(1);
    const whichRoot = await Supervisor.whichChildren(node, root);
    expect(whichRoot.map((c) => [c.id, c.type, c.restarts])).toEqual([['mid', 'supervisor', 1]]);
  });

  it('escalates to the root when the root has no restarts left', async () => {
    const { node, p, root, mid, w } = await tree({ maxRestarts: 0 });
    const rootRef = p.ctx.monitor(root);
    node.send(w, 'crash');
    await node.idle();
    node.send(await pidOf(node, mid, 'w'), 'crash');
    expect((await receiveDown(p, rootRef)).reason).toBe('shutdown');
    await node.idle();
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });
});

// ---- backoff ----------------------------------------------------------------------------------

describe('jittered restart backoff', () => {
  it('restarts only after the TestClock has advanced by the delay computed from the seeded random', async () => {
    const clock = new TestClock({ start: 0 });
    const draws: number[] = [];
    const prng = seeded(42);
    const node = track({
      clock,
      random: () => {
        const v = prng();
        draws.push(v);
        return v;
      },
    });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff: { initialMs: 1000, factor: 2, maxMs: 60_000 }, maxRestarts: 10 });
    const events = supervisorEvents(node);

    for (const [n, cap] of [[1, 1000], [2, 2000], [3, 4000]] as const) {
      starts.length = 0;
      const before = await pidOf(node, sup, 'a');
      node.send(before, 'crash');
      await node.idle();
      // full jitter: the delay is random() * cap, with the node's seeded random
      const delay = draws.at(-1)! * cap;
      expect(draws).toHaveLength(n);
      expect((await rows(node, sup)).a?.pid).toBe('restarting');
      await clock.advance(delay - 1);
      expect(starts, `restart ${n} waits for its delay`).toEqual([]);
      expect((await rows(node, sup)).a?.pid).toBe('restarting');
      await clock.advance(2);
      expect(starts, `restart ${n} happens after its delay`).toEqual(['a']);
      const after = await pidOf(node, sup, 'a');
      expect(node.isAlive(after)).toBe(true);
      expect(named(events.events, 'child_restarted').map((e) => e.measurements.restarts)).toEqual(Array.from({ length: n }, (_, i) => i + 1));
    }
  });

  it("waits exactly initialMs * factor^n with jitter: 'none'", async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff: { initialMs: 100, factor: 3, jitter: 'none' }, maxRestarts: 10 });
    for (const delay of [100, 300, 900]) {
      starts.length = 0;
      node.send(await pidOf(node, sup, 'a'), 'crash');
      await node.idle();
      await clock.advance(delay - 1);
      expect(starts).toEqual([]);
      await clock.advance(1);
      expect(starts).toEqual(['a']);
    }
  });

  it('uses the backoff as it was when the supervisor started: a later change to the options object is not read', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const backoff = { initialMs: 100, jitter: 'none' as const };
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff, maxRestarts: 10 });
    backoff.initialMs = Number.NaN;
    starts.length = 0;
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    await clock.advance(99);
    expect(starts).toEqual([]);
    await clock.advance(1);
    expect(starts).toEqual(['a']);
    expect(node.isAlive(await pidOf(node, sup, 'a'))).toBe(true);
  });

  it('initialMs 0 restarts at once however large factor^n grows (0 × Infinity is no delay)', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff: { initialMs: 0, factor: 1e200, jitter: 'none' }, maxRestarts: 10 });
    const supRef = p.ctx.monitor(sup);
    starts.length = 0;
    for (let i = 0; i < 4; i++) {
      node.send(await pidOf(node, sup, 'a'), 'crash');
      await node.idle();
      await clock.advance(0);
      await node.idle();
    }
    expect(starts).toEqual(['a', 'a', 'a', 'a']);
    expect(node.isAlive(sup)).toBe(true);
    p.ctx.demonitor(supRef);
  });
});

describe('restart backoff counts recent restarts only', () => {
  it('starts again from initialMs once the child has run for withinMs since its restarts', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff: { initialMs: 100, factor: 3, jitter: 'none' }, maxRestarts: 10, withinMs: 5000 });
    const crashAndWait = async (delay: number): Promise<void> => {
      starts.length = 0;
      node.send(await pidOf(node, sup, 'a'), 'crash');
      await node.idle();
      await clock.advance(delay - 1);
      expect(starts, `not before ${delay} ms`).toEqual([]);
      await clock.advance(1);
      expect(starts, `after ${delay} ms`).toEqual(['a']);
    };
    for (const delay of [100, 300, 900]) await crashAndWait(delay);
    await clock.advance(5000); // it runs well for withinMs
    await crashAndWait(100);
    await crashAndWait(300);
  });

  it('one_for_one: a child waiting for its backoff is not restarted by another child\'s shorter one', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts), child('b', starts)], { backoff: { initialMs: 100, factor: 3, jitter: 'none' }, maxRestarts: 10 });
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    await clock.advance(100);
    starts.length = 0;
    // a's second restart waits 300 ms; b's first, begun later, 100 ms
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    await clock.advance(50);
    node.send(await pidOf(node, sup, 'b'), 'crash');
    await node.idle();
    await clock.advance(100);
    expect(starts).toEqual(['b']);
    expect((await rows(node, sup)).a?.pid).toBe('restarting');
    await clock.advance(149);
    expect(starts).toEqual(['b']);
    await clock.advance(1);
    expect(starts).toEqual(['b', 'a']);
  });

  it('one_for_one: a backoff begun before terminateChild and restartChild does not cut short the backoff of a later crash', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)], { backoff: { initialMs: 100, factor: 3, jitter: 'none' }, maxRestarts: 10 });
    node.send(await pidOf(node, sup, 'a'), 'crash'); // its restart waits 100 ms (until 100)
    await node.idle();
    await clock.advance(10);
    expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
    running(await Supervisor.restartChild(node, sup, 'a') as ChildInfo['pid']);
    starts.length = 0;
    node.send(await pidOf(node, sup, 'a'), 'crash'); // its second restart in a row waits 300 ms (until 310)
    await node.idle();
    await clock.advance(90); // 100: the first backoff's time, for a restart that is no longer waiting
    expect(starts).toEqual([]);
    expect((await rows(node, sup)).a?.pid).toBe('restarting');
    await clock.advance(209);
    expect(starts).toEqual([]);
    await clock.advance(1);
    expect(starts).toEqual(['a']);
  });

  it('a restart whose start fails is tried again after the backoff, not at once', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    let failing = 0;
    const flaky: ChildSpec = {
      id: 'f',
      start: (ctx) => {
        starts.push('f');
        if (failing-- > 0) throw new Error('not yet');
        return ctx.spawnLink(worker('f'));
      },
    };
    const sup = await Supervisor.start(node, [flaky], { backoff: { initialMs: 100, factor: 2, jitter: 'none' }, maxRestarts: 10 });
    failing = 1;
    starts.length = 0;
    node.send(await pidOf(node, sup, 'f'), 'crash');
    await node.idle();
    await clock.advance(100); // the first restart fails
    expect(starts).toEqual(['f']);
    await clock.advance(199);
    expect(starts).toEqual(['f']); // not tried again at once
    await clock.advance(1); // 200 ms: the second restart in a row waits 100 × 2
    expect(starts).toEqual(['f', 'f']);
    expect(node.isAlive(await pidOf(node, sup, 'f'))).toBe(true);
  });

  it('rest_for_one: a later child waiting for its backoff does not start the group that an earlier crash stopped before that crash\'s own backoff', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts), child('b', starts), child('c', starts)], {
      strategy: 'rest_for_one',
      backoff: { initialMs: 100, factor: 3, jitter: 'none' },
      maxRestarts: 10,
    });
    // a's first restart, so that its next one waits 300 ms
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    await clock.advance(100);
    starts.length = 0;
    // c crashes (its restart waits 100 ms), then a (its second restart waits 300 ms): a, b, c all wait for a's
    node.send(await pidOf(node, sup, 'c'), 'crash');
    await node.idle();
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    await clock.advance(100);
    await node.idle();
    expect(starts).toEqual([]);
    expect(Object.values(await rows(node, sup)).map((r) => r.pid)).toEqual(['restarting', 'restarting', 'restarting']);
    await clock.advance(199);
    await node.idle();
    expect(starts).toEqual([]);
    await clock.advance(1);
    await node.idle();
    expect(starts).toEqual(['a', 'b', 'c']);
  });

  it.each(['one_for_all', 'rest_for_one'] as const)(
    '%s: the group waiting for its backoff still restarts when the child whose crash began it is terminated meanwhile',
    async (strategy) => {
      const clock = new TestClock({ start: 0 });
      const node = track({ clock });
      const starts: string[] = [];
      const sup = await Supervisor.start(node, [child('a', starts), child('b', starts), child('c', starts)], {
        strategy,
        backoff: { initialMs: 100, jitter: 'none' },
        maxRestarts: 10,
      });
      starts.length = 0;
      node.send(await pidOf(node, sup, 'a'), 'crash');
      await node.idle();
      expect(Object.values(await rows(node, sup)).map((r) => r.pid)).toEqual(['restarting', 'restarting', 'restarting']);
      expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
      await clock.advance(100);
      await node.idle();
      // a stays stopped (terminated); b and c are started again, not left 'restarting' for good
      expect(starts).toEqual(['b', 'c']);
      const after = await rows(node, sup);
      expect(after.a?.pid).toBeUndefined();
      expect(node.isAlive(running(after.b?.pid))).toBe(true);
      expect(node.isAlive(running(after.c?.pid))).toBe(true);
    },
  );
});

// ---- shutdown ---------------------------------------------------------------------------------

describe('stopping children', () => {
  it('stops children in reverse start order, each with a shutdown exit from the supervisor', async () => {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(node, [trapping('a', p, true), trapping('b', p, true), trapping('c', p, true)]);
    const pids = await pidsOf(node, sup);
    const ref = p.ctx.monitor(sup);
    node.exit(sup, 'shutdown');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    const got = p.messages.filter((m) => isGot(m));
    expect(got.map((g) => [g.got, g.reason])).toEqual([
      ['c', 'shutdown'],
      ['b', 'shutdown'],
      ['a', 'shutdown'],
    ]);
    expect(got.every((g) => samePid(g.from, sup))).toBe(true);
    for (const pid of Object.values(pids)) expect(node.isAlive(pid)).toBe(false);
  });

  it('waits for each child before stopping the next: a child that ignores shutdown is killed after its shutdown ms', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const sup = await Supervisor.start(node, [trapping('a', p, true), trapping('stubborn', p, false, { shutdown: 1000 })]);
    const pids = await pidsOf(node, sup);
    const stubbornRef = p.ctx.monitor(pids.stubborn!);
    const supRef = p.ctx.monitor(sup);
    const events = supervisorEvents(node);
    node.exit(sup, 'shutdown');
    await p.receive((m) => isGot(m, 'stubborn'));
    await clock.advance(999);
    expect(node.isAlive(pids.stubborn!)).toBe(true);
    expect(p.messages.some((m) => isGot(m, 'a')), 'a is not signalled while stubborn is still stopping').toBe(false);
    await clock.advance(1);
    expect((await receiveDown(p, stubbornRef)).reason).toBe('killed');
    expect((await receiveDown(p, supRef)).reason).toBe('shutdown');
    expect(p.messages.some((m) => isGot(m, 'a'))).toBe(true);
    expect(named(events.events, 'child_terminated').map((e) => [e.metadata.id, e.metadata.reason])).toEqual([
      ['stubborn', 'killed'],
      ['a', 'shutdown'],
    ]);
  });

  it('reports a child that died on its own while an earlier one was stopping with the reason it died with (as OTP), not noproc', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const sup = await Supervisor.start(node, [child('a'), trapping('stubborn', p, false, { shutdown: 1000 })]);
    const pids = await pidsOf(node, sup);
    const aRef = p.ctx.monitor(pids.a!);
    const supRef = p.ctx.monitor(sup);
    const events = supervisorEvents(node);
    node.exit(sup, 'shutdown');
    await p.receive((m) => isGot(m, 'stubborn'));
    node.send(pids.a!, 'crash');
    const crash = (await receiveDown(p, aRef)).reason;
    expect((crash as Error).message).toBe('a crashed');
    await clock.advance(1000);
    expect((await receiveDown(p, supRef)).reason).toBe('shutdown');
    expect(named(events.events, 'child_terminated').map((e) => [e.metadata.id, e.metadata.reason])).toEqual([
      ['stubborn', 'killed'],
      ['a', crash],
    ]);
  });

  it('defaults a worker to 5000 ms of shutdown time', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const sup = await Supervisor.start(node, [trapping('w', p, false)]);
    const w = await pidOf(node, sup, 'w');
    const ref = p.ctx.monitor(w);
    const result = Supervisor.terminateChild(node, sup, 'w');
    await p.receive((m) => isGot(m, 'w'));
    await clock.advance(4999);
    expect(node.isAlive(w)).toBe(true);
    await clock.advance(1);
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(await result).toBe('ok');
  });

  it("waits forever for a child with shutdown 'infinity' (the default for supervisors)", async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const sup = await Supervisor.start(node, [trapping('s', p, false, { type: 'supervisor' })]);
    const s = await pidOf(node, sup, 's');
    const ref = p.ctx.monitor(s);
    const result = Supervisor.terminateChild(node, sup, 's');
    await p.receive((m) => isGot(m, 's'));
    await clock.advance(3_600_000);
    expect(node.isAlive(s)).toBe(true);
    node.send(s, 'stop');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(await result).toBe('ok');
  });

  it("kills a 'brutal_kill' child at once, without a shutdown signal", async () => {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(node, [trapping('b', p, false, { shutdown: 'brutal_kill' })]);
    const b = await pidOf(node, sup, 'b');
    const ref = p.ctx.monitor(b);
    expect(await Supervisor.terminateChild(node, sup, 'b')).toBe('ok');
    expect((await receiveDown(p, ref)).reason).toBe('killed');
    expect(p.messages.some((m) => isGot(m))).toBe(false);
  });

  describe('an async handler still running when its process is stopped', () => {
    /** A child whose handler, on 'work', tells `started`, awaits `gate`, then uses its context. */
    function busyChild(p: Pid, trap: boolean) {
      const started = deferred();
      const gate = deferred();
      const resumed = deferred<{ aborted: boolean }>();
      const spec: ChildSpec = {
        id: 'busy',
        shutdown: 500,
        start: (ctx) =>
          ctx.spawnLink((c) => {
            if (trap) c.trapExits();
            return async (m) => {
              if (m !== 'work') return;
              started.resolve();
              await gate.promise;
              c.send(p, 'late');
              resumed.resolve({ aborted: c.signal.aborted });
            };
          }),
      };
      return { spec, started: started.promise, release: () => gate.resolve(), resumed: resumed.promise };
    }

    it.each([
      ['traps exits: killed after its shutdown time', true, 'killed'],
      ['does not trap exits: dies at once on shutdown', false, 'shutdown'],
    ] as const)('a child that %s, and its continuation is a zombie', async (_label, trap, reason) => {
      const clock = new TestClock({ start: 0 });
      const node = track({ clock });
      const p = probe(node);
      const busy = busyChild(p, trap);
      const sup = await Supervisor.start(node, [busy.spec]);
      const pid = await pidOf(node, sup, 'busy');
      const ref = p.ctx.monitor(pid);
      const zombies = captureEvents(node, ['keel.process.zombie_call']);
      node.send(pid, 'work');
      await busy.started;
      const result = Supervisor.terminateChild(node, sup, 'busy');
      await clock.advance(499);
      expect(node.isAlive(pid)).toBe(trap);
      await clock.advance(1);
      expect((await receiveDown(p, ref)).reason).toBe(reason);
      expect(await result).toBe('ok');
      busy.release();
      expect(await busy.resumed).toEqual({ aborted: true });
      await node.idle();
      expect(zombies.events.map((e) => e.metadata)).toEqual([{ pid, operation: 'send' }]);
      expect(p.messages).not.toContain('late');
      expect(node.isAlive(sup)).toBe(true);
    });
  });

  it('node.shutdown stops the whole tree, children first, in reverse start order at each level', async () => {
    const node = track();
    const p = probe(node);
    const log: string[] = [];
    const logged = (id: string): ChildSpec => ({
      id,
      start: (ctx) =>
        ctx.spawnLink((c) => {
          c.trapExits();
          return (m) => {
            if (!isExit(m)) return;
            log.push(`${id}:${String(m.reason)}`);
            c.exit(m.reason);
          };
        }),
    });
    const root = await Supervisor.start(node, [
      logged('a'),
      { id: 'mid', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, [logged('m1'), logged('m2')]) },
      logged('c'),
    ]);
    const mid = await pidOf(node, root, 'mid');
    const events = supervisorEvents(node);
    const nodeEvents = captureEvents(node, ['keel.node.shutdown']);
    await node.shutdown({ timeoutMs: 2000 });
    expect(log).toEqual(['c:shutdown', 'm2:shutdown', 'm1:shutdown', 'a:shutdown']);
    expect(node.isAlive(root)).toBe(false);
    expect(node.isAlive(mid)).toBe(false);
    expect(p.messages.filter(isDown)).toEqual([]);
    expect(named(events.events, 'shutdown').map((e) => [samePid(e.metadata.supervisor, root) ? 'root' : 'mid', e.metadata.reason])).toEqual([
      ['root', 'shutdown'],
      ['mid', 'shutdown'],
    ]);
    expect(nodeEvents.events[0]?.measurements.killed).toBe(0);
  });

  it('still kills a child that ignores its shutdown when the supervisor is killed meanwhile (the kill timer is the node\'s)', async () => {
    const clock = new TestClock();
    const node = track({ clock });
    let stubborn: unknown;
    const mid = await Supervisor.start(node, [
      {
        id: 'stubborn',
        shutdown: 10_000,
        start: (ctx) => {
          const pid = ctx.spawnLink((c) => {
            c.trapExits();
            return () => undefined; // ignores its shutdown
          });
          stubborn = pid;
          return pid;
        },
      },
    ]);
    const stopping = Supervisor.terminateChild(node, mid, 'stubborn').catch((e: unknown) => e);
    await node.settle();
    node.exit(mid, 'kill');
    await node.idle();
    expect(node.isAlive(stubborn as never)).toBe(true); // it traps exits and ignores the 'killed' signal
    await clock.advance(10_000);
    expect(node.isAlive(stubborn as never)).toBe(false);
    expect(isKeelError(await stopping, 'ERR_CALL_EXIT')).toBe(true);
  });
});

// ---- management calls -------------------------------------------------------------------------

describe('Supervisor management calls', () => {
  it('whichChildren lists the children in start order with their pid, type, restart and restart count', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a'), child('b', [], { restart: 'transient', type: 'worker' }), child('c', [], { restart: 'temporary' })]);
    const which = await Supervisor.whichChildren(node, sup);
    expect(which.map(({ id, type, restart, restarts }) => ({ id, type, restart, restarts }))).toEqual([
      { id: 'a', type: 'worker', restart: 'permanent', restarts: 0 },
      { id: 'b', type: 'worker', restart: 'transient', restarts: 0 },
      { id: 'c', type: 'worker', restart: 'temporary', restarts: 0 },
    ]);
    for (const c of which) expect(node.isAlive(running(c.pid))).toBe(true);
    expect(new Set(which.map((c) => Pid.format(running(c.pid)))).size).toBe(3);
    // the children are linked to the supervisor
    for (const c of which) expect(node.info(running(c.pid))?.links.some((l) => Pid.equals(l, sup))).toBe(true);
  });

  it('countChildren counts specs, running children, supervisors and workers', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [
      child('a'),
      { id: 's', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, []) },
      child('t', [], { restart: 'transient' }),
    ]);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 3, supervisors: 1, workers: 2 });
    expect(await Supervisor.terminateChild(node, sup, 't')).toBe('ok');
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 2, supervisors: 1, workers: 2 });
  });

  it('startChild adds a running child at the end, with a child_started event', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a')]);
    const events = supervisorEvents(node);
    const pid = await Supervisor.startChild(node, sup, child('b'));
    expect(node.isAlive(pid)).toBe(true);
    const which = await Supervisor.whichChildren(node, sup);
    expect(which.map((c) => c.id)).toEqual(['a', 'b']);
    expect(Pid.equals(running(which[1]?.pid), pid)).toBe(true);
    expect(events.events.map((e) => [e.event, e.metadata.id, samePid(e.metadata.pid, pid), samePid(e.metadata.supervisor, sup)])).toEqual([
      ['keel.supervisor.child_started', 'b', true, true],
    ]);
    // and it is supervised: a crash restarts it
    node.send(pid, 'crash');
    await node.idle();
    expect(Pid.equals(await pidOf(node, sup, 'b'), pid)).toBe(false);
  });

  it('startChild rejects a duplicate id with ERR_INVALID_ARGUMENT and starts nothing', async () => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts)]);
    const before = await pidOf(node, sup, 'a');
    starts.length = 0;
    const e = await failure(() => Supervisor.startChild(node, sup, child('a', starts)));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'a');
    expect(starts).toEqual([]);
    const which = await Supervisor.whichChildren(node, sup);
    expect(which).toHaveLength(1);
    expect(Pid.equals(running(which[0]?.pid), before)).toBe(true);
  });

  it.each<[string, unknown, string, string]>([
    ['a missing start', { id: 'x' }, 'spec.start', "expected `spec.start` to be a function (ctx) => Pid | Promise<Pid>, got undefined; in the spec of child 'x'"],
    ['a bad shutdown', { id: 'x', start: () => undefined, shutdown: -1 }, 'spec.shutdown', "expected `spec.shutdown` to be a number of ms >= 0, 'brutal_kill' or 'infinity', got -1; in the spec of child 'x'"],
    ['no id', { start: () => undefined }, 'spec.id', 'expected `spec.id` to be a non-empty string, got undefined'],
    ['a spec that is not an object', 'worker', 'spec', 'expected `spec` to be a child spec { id, start, restart?, shutdown?, type?, significant?, modules? }, got "worker"'],
    ['a misspelt option', { id: 'x', start: () => undefined, restrat: 'temporary' }, 'spec.restrat', '`spec.restrat`: no such option (spec takes id, start, restart, shutdown, type, significant, modules), got "temporary"; did you mean `restart`?'],
  ])('startChild names the spec it was given, not a list of children, for %s', async (_label, spec, argument, message) => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a')]);
    const e = await failure(() => Supervisor.startChild(node, sup, spec as ChildSpec));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT');
    expect([(e as Error).message, (e as { argument: string }).argument]).toEqual([message, argument]);
    expect((await Supervisor.whichChildren(node, sup)).map((c) => c.id)).toEqual(['a']);
  });

  it('startChild rejects an invalid spec with ERR_INVALID_ARGUMENT', async () => {
    const node = track();
    const sup = await Supervisor.start(node, []);
    const e = await failure(() => Supervisor.startChild(node, sup, { id: 'x', start: (ctx: Context) => ctx.spawnLink(worker('x')), restart: 'always' as never }));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'restart');
    expect(await Supervisor.whichChildren(node, sup)).toEqual([]);
  });

  it.each<[string, (ctx: Context) => Pid | Promise<Pid>]>([
    ['throws', () => {
      throw new Error('no can do');
    }],
    ['rejects', () => Promise.reject(new Error('no can do'))],
    ['returns something that is not a pid', () => 'not a pid' as never],
    ['returns a pid that is already dead', (ctx) => {
      const pid = ctx.spawn(worker('dead'));
      ctx.exit(pid, 'kill');
      return pid;
    }],
  ])('startChild rejects with ERR_START_FAILED when start %s, and adds no spec', async (_label, start) => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a')]);
    const e = await failure(() => Supervisor.startChild(node, sup, { id: 'bad', start }));
    expectKeelError(e, 'ERR_START_FAILED', "'bad'");
    expect((await Supervisor.whichChildren(node, sup)).map((c) => c.id)).toEqual(['a']);
    expect(node.isAlive(sup)).toBe(true);
  });

  it('terminateChild stops the child with shutdown, keeps its spec and does not restart it', async () => {
    const node = track();
    const p = probe(node);
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts), child('b', starts)]);
    const a = await pidOf(node, sup, 'a');
    const ref = p.ctx.monitor(a);
    starts.length = 0;
    const events = supervisorEvents(node);
    expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    await node.idle();
    expect(starts).toEqual([]);
    const which = await rows(node, sup);
    expect(Object.keys(which)).toEqual(['a', 'b']);
    expect(which.a?.pid).toBeUndefined();
    expect(events.events.map((e) => [e.event, e.metadata.id, e.metadata.reason, samePid(e.metadata.pid, a)])).toEqual([
      ['keel.supervisor.child_terminated', 'a', 'shutdown', true],
    ]);
    // terminating a stopped child is fine; an unknown id is not
    expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
    expect(await Supervisor.terminateChild(node, sup, 'nope')).toEqual({ error: 'not_found' });
  });

  it('terminateChild removes a temporary child’s spec', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a'), child('tmp', [], { restart: 'temporary' })]);
    expect(await Supervisor.terminateChild(node, sup, 'tmp')).toBe('ok');
    expect((await Supervisor.whichChildren(node, sup)).map((c) => c.id)).toEqual(['a']);
  });

  it('restartChild starts a stopped child again and reports running, not_found and a failing start', async () => {
    const node = track();
    let fail = false;
    const sup = await Supervisor.start(node, [
      child('a'),
      {
        id: 'f',
        start: (ctx) => {
          if (fail) throw new Error('cannot start now');
          return ctx.spawnLink(worker('f'));
        },
      },
    ]);
    const a = await pidOf(node, sup, 'a');
    expect(await Supervisor.restartChild(node, sup, 'a')).toEqual({ error: 'running' });
    expect(await Supervisor.restartChild(node, sup, 'nope')).toEqual({ error: 'not_found' });
    expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
    const events = supervisorEvents(node);
    const again = await Supervisor.restartChild(node, sup, 'a');
    if (!('id' in again)) throw new Error(`expected a pid, got ${JSON.stringify(again)}`);
    expect(Pid.equals(again, a)).toBe(false);
    expect(node.isAlive(again)).toBe(true);
    expect(Pid.equals(await pidOf(node, sup, 'a'), again)).toBe(true);
    expect(summary(events.events)).toEqual([['child_started', 'a']]);

    expect(await Supervisor.terminateChild(node, sup, 'f')).toBe('ok');
    fail = true;
    expectKeelError(await failure(() => Supervisor.restartChild(node, sup, 'f')), 'ERR_START_FAILED', 'cannot start now');
    expect((await rows(node, sup)).f?.pid).toBeUndefined();
  });

  it("restartChild and deleteChild answer { error: 'restarting' } while a restart waits for its backoff", async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const sup = await Supervisor.start(node, [child('a')], { backoff: { initialMs: 1000, jitter: 'none' } });
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    expect(await Supervisor.restartChild(node, sup, 'a')).toEqual({ error: 'restarting' });
    expect(await Supervisor.deleteChild(node, sup, 'a')).toEqual({ error: 'restarting' });
    await clock.advance(1000);
    expect(node.isAlive(await pidOf(node, sup, 'a'))).toBe(true);
  });

  it('deleteChild removes a stopped child’s spec, refuses a running one and reports not_found', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a'), child('b')]);
    expect(await Supervisor.deleteChild(node, sup, 'a')).toEqual({ error: 'running' });
    expect(await Supervisor.deleteChild(node, sup, 'nope')).toEqual({ error: 'not_found' });
    expect(await Supervisor.terminateChild(node, sup, 'a')).toBe('ok');
    expect(await Supervisor.deleteChild(node, sup, 'a')).toBe('ok');
    expect((await Supervisor.whichChildren(node, sup)).map((c) => c.id)).toEqual(['b']);
    expect(await Supervisor.deleteChild(node, sup, 'a')).toEqual({ error: 'not_found' });
    expect(await Supervisor.restartChild(node, sup, 'a')).toEqual({ error: 'not_found' });
    // the id is free again
    const pid = await Supervisor.startChild(node, sup, child('a'));
    expect(node.isAlive(pid)).toBe(true);
  });

  it('links a child that its start function did not link, and restarts it on a crash', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [{ id: 'u', start: (ctx) => ctx.spawn(worker('u')) }]);
    const u = await pidOf(node, sup, 'u');
    expect(node.info(u)?.links.some((l) => Pid.equals(l, sup))).toBe(true);
    node.send(u, 'crash');
    await node.idle();
    const u2 = await pidOf(node, sup, 'u');
    expect(Pid.equals(u2, u)).toBe(false);
    expect(node.isAlive(u2)).toBe(true);
  });

  it('a child its start did not link still goes with a supervisor killed while that start ran', async () => {
    const node = track();
    const p = probe(node);
    const gate = deferred();
    const spawned = deferred<Pid>();
    const sup = await Supervisor.start(node, []);
    const result = Supervisor.startChild(node, sup, {
      id: 'u',
      start: async (ctx) => {
        const pid = ctx.spawn(worker('u'));
        spawned.resolve(pid);
        await gate.promise;
        return pid;
      },
    }).catch((e: unknown) => e);
    const u = await spawned.promise;
    const uRef = p.ctx.monitor(u);
    const supRef = p.ctx.monitor(sup);
    node.exit(sup, 'kill');
    expect((await receiveDown(p, supRef)).reason).toBe('killed');
    gate.resolve();
    expectKeelError(await result, 'ERR_CALL_EXIT');
    // the link the supervisor makes comes too late: the child gets what it would have carried
    expect((await receiveDown(p, uRef)).reason).toBe('killed');
  });

  it('a supervisor that is killed takes its children with it', async () => {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(node, [child('a'), child('b')]);
    const pids = await pidsOf(node, sup);
    const refs = Object.values(pids).map((pid) => p.ctx.monitor(pid));
    node.exit(sup, 'kill');
    for (const ref of refs) expect((await receiveDown(p, ref)).reason).toBe('killed');
  });

  it('works from a process context and by registered name', async () => {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(p.ctx, [child('a')], { name: 'the_sup' });
    expect(node.registry.whereis('the_sup')).toEqual(sup);
    expect((await Supervisor.whichChildren(p.ctx, 'the_sup')).map((c) => c.id)).toEqual(['a']);
    expect(await Supervisor.countChildren(node, 'the_sup')).toEqual({ specs: 1, active: 1, supervisors: 0, workers: 1 });
  });
});

// ---- events -----------------------------------------------------------------------------------

describe('supervisor events', () => {
  it('child_started for each child at start, in start order, with the supervisor and the pid', async () => {
    const node = track();
    const events = supervisorEvents(node);
    const sup = await Supervisor.start(node, [child('a'), child('b')]);
    const pids = await pidsOf(node, sup);
    expect(events.events.map((e) => [e.event, e.metadata.id, samePid(e.metadata.pid, pids[e.metadata.id as string]!), samePid(e.metadata.supervisor, sup)])).toEqual([
      ['keel.supervisor.child_started', 'a', true, true],
      ['keel.supervisor.child_started', 'b', true, true],
    ]);
  });

  it('no restart is silent: one child_restarted per restart, with the reason and the running restart count', async () => {
    const node = track();
    const starts: string[] = [];
    const sup = await Supervisor.start(node, [child('a', starts), child('b', starts)], { maxRestarts: 100 });
    starts.length = 0;
    const events = supervisorEvents(node);
    const crashes: [string, unknown][] = [
      ['a', 'crash'],
      ['b', 'crash'],
      ['a', { exit: 'normal' }],
      ['a', { exit: { shutdown: 'x' } }],
      ['b', { exit: new Error('custom') }],
    ];
    for (const [id, command] of crashes) {
      node.send(await pidOf(node, sup, id), command);
      await node.idle();
    }
    const restarted = named(events.events, 'child_restarted');
    expect(restarted).toHaveLength(starts.length);
    expect(restarted.map((e) => e.metadata.id)).toEqual(starts);
    expect(restarted.map((e) => [e.metadata.id, e.measurements.restarts])).toEqual([
      ['a', 1],
      ['b', 1],
      ['a', 2],
      ['a', 3],
      ['b', 2],
    ]);
    const reasons = restarted.map((e) => e.metadata.reason);
    expect((reasons[0] as Error).message).toBe('a crashed');
    expect((reasons[1] as Error).message).toBe('b crashed');
    expect(reasons[2]).toBe('normal');
    expect(reasons[3]).toEqual({ shutdown: 'x' });
    expect((reasons[4] as Error).message).toBe('custom');
    for (const e of restarted) expect(samePid(e.metadata.supervisor, sup)).toBe(true);
    const which = await rows(node, sup);
    expect([which.a?.restarts, which.b?.restarts]).toEqual([3, 2]);
  });

  it('child_terminated names the pid of a child that ended by itself and is not restarted, as of one the supervisor stopped', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('t', [], { restart: 'transient' }), child('tmp', [], { restart: 'temporary' })]);
    const [t, tmp] = [await pidOf(node, sup, 't'), await pidOf(node, sup, 'tmp')];
    const events = supervisorEvents(node);
    node.send(t, { exit: 'normal' });
    node.send(tmp, 'crash');
    await node.idle();
    const terminated = named(events.events, 'child_terminated');
    expect(terminated.map((e) => e.metadata.id)).toEqual(['t', 'tmp']);
    expect(samePid(terminated[0]!.metadata.pid, t)).toBe(true);
    expect(samePid(terminated[1]!.metadata.pid, tmp)).toBe(true);
  });

  it('.shutdown carries the reason the supervisor was stopped with, and child_terminated each child', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('a'), child('b')]);
    const events = supervisorEvents(node);
    await GenServer.stop(node, sup, { shutdown: 'maintenance' });
    expect(events.events.map((e) => [e.event.slice(SUP.length), e.metadata.id ?? null, e.metadata.reason])).toEqual([
      ['shutdown', null, { shutdown: 'maintenance' }],
      ['child_terminated', 'b', 'shutdown'],
      ['child_terminated', 'a', 'shutdown'],
    ]);
  });
});

// ---- start failure ----------------------------------------------------------------------------

describe('a child whose start fails at supervisor start', () => {
  it('fails Supervisor.start with ERR_START_FAILED and stops the children already started', async () => {
    const node = track();
    const p = probe(node);
    const started: Pid[] = [];
    const starts: string[] = [];
    const recorded = (id: string): ChildSpec => ({
      id,
      start: (ctx) => {
        starts.push(id);
        const pid = ctx.spawnLink(worker(id));
        started.push(pid);
        p.ctx.monitor(pid);
        return pid;
      },
    });
    const events = supervisorEvents(node);
    const e = await failure(() =>
      Supervisor.start(node, [
        recorded('a'),
        recorded('b'),
        {
          id: 'broken',
          start: () => {
            throw new Error('broken start');
          },
        },
        recorded('never'),
      ]),
    );
    expectKeelError(e, 'ERR_START_FAILED', 'broken');
    expect(starts).toEqual(['a', 'b']);
    for (const pid of started) {
      const down = await receiveDown(p, (d) => Pid.equals(d.pid, pid));
      expect(down.reason).toBe('shutdown');
    }
    await node.idle();
    expect(named(events.events, 'child_terminated').map((ev) => ev.metadata.id)).toEqual(['b', 'a']);
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });
});

describe('a child whose start fails at supervisor start, as OTP reports it', () => {
  /** A child whose start tells `p` to monitor the supervisor starting it (whose pid the failed start does not give). */
  function watchingSupervisor(id: string, p: Probe): ChildSpec {
    return {
      id,
      start: (ctx) => {
        p.ctx.monitor(ctx.self);
        return ctx.spawnLink(worker(id));
      },
    };
  }

  const noStack = (line: unknown): boolean => !String(line).includes('\n    at ');

  it("exits with { shutdown: { failed_to_start_child: id, reason } }, rejects with ERR_START_FAILED naming the child and its reason, and logs one supervisor report, no crash", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    const broken = new Error('broken start');
    const events = captureEvents(node, [SUP + 'start_failed']);
    const e = await failure(() =>
      Supervisor.start(node, [
        watchingSupervisor('a', p),
        {
          id: 'broken',
          start: () => {
            throw broken;
          },
        },
      ]),
    );
    const down = await receiveDown(p);
    const reason = { shutdown: { failed_to_start_child: 'broken', reason: broken } };
    expect(down.reason).toEqual(reason);
    expect((down.reason as typeof reason).shutdown.reason).toBe(broken);
    expectKeelError(e, 'ERR_START_FAILED');
    expect((e as StartError).message).toBe("Supervisor failed to start: child 'broken' failed to start: Error: broken start");
    expect((e as StartError).reason).toEqual(reason);
    expect((e as StartError).childPath).toEqual(['broken']);
    await node.idle();
    expect(logger.errors).toEqual([[`supervisor ${String(down.pid)} failed to start: child 'broken' failed to start: Error: broken start`]]);
    expect(events.events.map((ev) => [ev.metadata.id, ev.metadata.reason])).toEqual([['broken', broken]]);
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });

  it("a nested supervisor's failure reaches the top with the chain of ids, each supervisor reporting once, none as a crash", async () => {
    const logger = fakeLogger();
    const node = track({ logger });
    const p = probe(node);
    const boom = new Error('boom');
    const e = await failure(() =>
      Supervisor.start(node, [
        watchingSupervisor('a', p),
        {
          id: 'inner',
          type: 'supervisor',
          start: (ctx) =>
            Supervisor.startLink(ctx, [
              watchingSupervisor('b', p),
              {
                id: 'bad',
                start: () => Promise.reject(boom),
              },
            ]),
        },
      ]),
    );
    const inner = { shutdown: { failed_to_start_child: 'bad', reason: boom } };
    const outer = { shutdown: { failed_to_start_child: 'inner', reason: inner } };
    expectKeelError(e, 'ERR_START_FAILED');
    expect((e as StartError).message).toBe(
      "Supervisor failed to start: child 'inner' failed to start: Supervisor failed to start: child 'bad' failed to start: Error: boom",
    );
    expect((e as StartError).reason).toEqual(outer);
    expect((e as StartError).childPath).toEqual(['inner', 'bad']);
    const downs = [await receiveDown(p), await receiveDown(p)];
    expect(downs.map((d) => d.reason)).toEqual([inner, outer]); // the inner one exits first
    await node.idle();
    expect(logger.errors.length).toBe(2);
    expect(logger.errors.every(([line]) => noStack(line))).toBe(true);
    expect(logger.errors.map(([line]) => line)).toEqual([
      `supervisor ${String(downs[0]!.pid)} failed to start: child 'bad' failed to start: Error: boom`,
      `supervisor ${String(downs[1]!.pid)} failed to start: child 'inner' failed to start: Supervisor failed to start: child 'bad' failed to start: Error: boom`,
    ]);
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });

  it('startLink from a process that does not trap exits: the starter gets the rejection and lives on', async () => {
    const node = track();
    const p = probe(node);
    const starter = node.spawn<'go'>((ctx) => async () => {
      const e = await failure(() => Supervisor.startLink(ctx, [{ id: 'bad', start: () => Promise.reject(new Error('no')) }]));
      ctx.send(p, isKeelError(e, 'ERR_START_FAILED') ? (e as StartError).childPath : e);
    });
    node.send(starter, 'go');
    expect(await p.receive()).toEqual(['bad']);
    await node.idle();
    expect(node.isAlive(starter)).toBe(true);
  });
});

describe('a child spec whose getters answer once', () => {
  /** A spec whose every field is a getter that answers `values[key]` the first time and throws after. */
  function once(values: Record<string, unknown>): ChildSpec {
    const spec = {};
    for (const [key, value] of Object.entries(values)) {
      let read = false;
      Object.defineProperty(spec, key, {
        enumerable: true,
        get() {
          if (read) throw new Error(`${key} read twice`);
          read = true;
          return value;
        },
      });
    }
    return spec as ChildSpec;
  }

  it('is read once: a valid one starts, an invalid one is ERR_INVALID_ARGUMENT naming the value it gave', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [once({ id: 'a', start: (ctx: Context) => ctx.spawnLink(worker('a')), restart: 'transient', shutdown: 100 })]);
    expect((await rows(node, sup)).a?.restart).toBe('transient');
    expect(await Supervisor.startChild(node, sup, once({ id: 'b', start: (ctx: Context) => ctx.spawnLink(worker('b')) }))).toBeInstanceOf(Object);
    const e = await failure(() => Supervisor.start(node, [once({ id: 'c', start: (ctx: Context) => ctx.spawnLink(worker('c')), restart: 'sometimes' })]));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', '`children[0].restart`', 'got "sometimes"', "in the spec of child 'c'");
  });

  it('options and their backoff are read once too', async () => {
    const node = track();
    const options = once({ strategy: 'one_for_all', maxRestarts: 7, withinMs: 100, name: 'once-sup', backoff: once({ initialMs: 5, jitter: 'none' }) });
    const sup = await Supervisor.start(node, [child('a')], options as SupervisorOptions);
    expect(node.isAlive(sup)).toBe(true);
    const status = await Supervisor.status(node, 'once-sup'); // by the name it was given
    expect([status.strategy, status.intensity]).toEqual(['one_for_all', { maxRestarts: 7, periodMs: 100 }]);
  });
});

describe('Supervisor.start given children that are not a list of specs', () => {
  // found by test/reliability/fuzz.otp.test.ts: an array proxy whose traps throw (fast-check seed
  // -1834514795, path 438) threw a raw TypeError; a sparse array of length 2**32-1 (seed 1157950883,
  // path 121) was mapped over for 80 s, then threw TypeError: Cannot read properties of undefined
  it('throws ERR_INVALID_ARGUMENT at once for a proxy, a hole, or an element that cannot be read, and starts nothing', () => {
    const node = track();
    const arrayProxy = new Proxy([], { get: () => { throw new TypeError('get trap'); } });
    const { proxy: revoked, revoke } = Proxy.revocable([], {});
    revoke();
    const sparse: unknown[] = [];
    sparse.length = 2 ** 32 - 1;
    const spec = { id: 'a', start: (ctx: Context) => ctx.spawnLink(() => () => undefined) };
    const getter = [spec, 0];
    Object.defineProperty(getter, 1, { get: () => { throw new Error('element getter'); } });
    expectKeelError(thrown(() => Supervisor.start(node, arrayProxy as never)), 'ERR_INVALID_ARGUMENT', '`children`', 'got a proxy');
    expectKeelError(thrown(() => Supervisor.start(node, revoked as never)), 'ERR_INVALID_ARGUMENT', '`children`', 'got a proxy');
    expectKeelError(thrown(() => Supervisor.start(node, sparse as never)), 'ERR_INVALID_ARGUMENT', '`children[0]`', 'got undefined');
    expectKeelError(thrown(() => Supervisor.start(node, [spec, , { ...spec, id: 'b' }] as never)), 'ERR_INVALID_ARGUMENT', '`children[1]`');
    expectKeelError(thrown(() => Supervisor.start(node, getter as never)), 'ERR_INVALID_ARGUMENT', '`children[1]`', 'reading it threw Error: element getter');
    expect(node.processes()).toEqual([]);
  });
});

describe("a child whose start returns the supervisor's own pid", () => {
  // the same defect as the DynamicSupervisor's (fuzz seed -294603019, path 891)
  it('fails the start with ERR_START_FAILED, naming it', async () => {
    const node = track();
    const e = await failure(() => Supervisor.start(node, [{ id: 'self', start: (ctx: Context) => ctx.self, type: 'supervisor' }]));
    expectKeelError(e, 'ERR_START_FAILED', "child 'self'", "start returned the supervisor's own pid");
    await node.idle();
    expect(node.processes()).toEqual([]);
  });
});

describe('a child whose start returns a pid of another node', () => {
  it('fails the start with ERR_START_FAILED naming that node (a supervisor supervises processes of its own node), not as a child that exited', async () => {
    const { a, b } = await memoryPair(track);
    const remote = b.spawn(() => () => undefined);
    const e = await failure(() => Supervisor.start(a, [{ id: 'far', start: () => remote }]));
    expectKeelError(e, 'ERR_START_FAILED', "child 'far'", "start returned a pid of node 'b'");
    const sup = await Supervisor.start(a, []);
    const e2 = await failure(() => Supervisor.startChild(a, sup, { id: 'far', start: () => remote }));
    expectKeelError(e2, 'ERR_START_FAILED', "child 'far'", "start returned a pid of node 'b'");
    expect(b.isAlive(remote)).toBe(true); // not its child: left alone
  });
});

// ---- restart intensity across a group restart ---------------------------------------------------

describe('restart intensity under one_for_all and rest_for_one', () => {
  it.each(['one_for_all', 'rest_for_one'] as const)('%s: one restart of the group counts once, not once per child restarted', async (strategy) => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const p = probe(node);
    const starts: string[] = [];
    // maxRestarts 1: a group of 3 counted per child would exceed it at the first crash
    const sup = await Supervisor.start(node, [child('a', starts), child('b', starts), child('c', starts)], { strategy, maxRestarts: 1, withinMs: 1000 });
    const ref = p.ctx.monitor(sup);
    const events = supervisorEvents(node);
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    expect(starts).toEqual(['a', 'b', 'c', 'a', 'b', 'c']);
    expect(named(events.events, 'child_restarted').map((e) => e.metadata.id)).toEqual(['a', 'b', 'c']);
    // a second group restart within the window exceeds 1
    await clock.advance(999);
    const before = await pidsOf(node, sup);
    node.send(before.a!, 'crash');
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    await node.idle();
    expect(named(events.events, 'shutdown').map((e) => e.metadata.reason)).toEqual(['max_restart_intensity']);
    expect([before.b!, before.c!].map((pid) => node.isAlive(pid))).toEqual([false, false]);
  });

  it('one_for_all: group restarts spaced wider than the window never exceed it (the window is on the node clock)', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const sup = await Supervisor.start(node, [child('a'), child('b'), child('c')], { strategy: 'one_for_all', maxRestarts: 1, withinMs: 1000 });
    for (let i = 0; i < 4; i++) {
      node.send(await pidOf(node, sup, 'b'), 'crash');
      await node.idle();
      await clock.advance(1000); // OTP counts one exactly withinMs old; Keel forgets it (docs/otp.md)
    }
    expect(node.isAlive(sup)).toBe(true);
    expect(Object.values(await rows(node, sup)).map((r) => r.restarts)).toEqual([4, 4, 4]);
  });
});

// ---- significant children and autoShutdown ------------------------------------------------------

describe('significant children and autoShutdown', () => {
  const start = (ctx: Context) => ctx.spawnLink(worker('x'));

  it.each<[string, ChildSpec[], SupervisorOptions, string[]]>([
    ['a permanent significant child', [{ id: 's', start, significant: true }], { autoShutdown: 'any_significant' }, ['children[0].significant', 'permanent', "child 's'"]],
    ['a significant child under autoShutdown never', [child('a'), { id: 's', start, restart: 'transient', significant: true }], {}, ['children[1].significant', "autoShutdown is 'never'", "child 's'"]],
    ['an explicit never', [{ id: 's', start, restart: 'temporary', significant: true }], { autoShutdown: 'never' }, ['children[0].significant']],
    ['a non-boolean significant', [{ id: 's', start, restart: 'transient', significant: 'yes' as never }], { autoShutdown: 'any_significant' }, ['children[0].significant', 'a boolean']],
    ['an unknown autoShutdown', [child('a')], { autoShutdown: 'some_significant' as never }, ['options.autoShutdown', 'some_significant']],
  ])('Supervisor.start refuses %s with ERR_INVALID_ARGUMENT, starting nothing', async (_label, children, options, fragments) => {
    const node = track();
    const before = node.processes().length;
    expectKeelError(await failure(() => Supervisor.start(node, children, options)), 'ERR_INVALID_ARGUMENT', ...fragments);
    expect(node.processes().length).toBe(before);
  });

  it('startChild refuses a permanent significant child, and any significant child under autoShutdown never', async () => {
    const node = track();
    const started: string[] = [];
    const never = await Supervisor.start(node, [child('a')]);
    const any = await Supervisor.start(node, [child('a')], { autoShutdown: 'any_significant' });
    const e1 = await failure(() => Supervisor.startChild(node, never, child('s', started, { restart: 'transient', significant: true })));
    expectKeelError(e1, 'ERR_INVALID_ARGUMENT', 'spec.significant', "autoShutdown is 'never'");
    const e2 = await failure(() => Supervisor.startChild(node, any, child('s', started, { significant: true })));
    expectKeelError(e2, 'ERR_INVALID_ARGUMENT', 'spec.significant', 'permanent');
    expect(started).toEqual([]);
    expect((await Supervisor.countChildren(node, never)).specs).toBe(1);
    expect((await Supervisor.countChildren(node, any)).specs).toBe(1);
    // a valid one is taken
    const pid = await Supervisor.startChild(node, any, child('s', started, { restart: 'transient', significant: true }));
    expect(node.isAlive(pid)).toBe(true);
    expect((await rows(node, any)).s?.significant).toBe(true);
  });

  /** Children a, b (trapping, reporting their shutdown to `p`), then the significant s, then c (trapping). */
  async function withSignificant(options: SupervisorOptions, significant: Partial<ChildSpec>) {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(
      node,
      [trapping('a', p, true), trapping('b', p, true), child('s', [], { restart: 'transient', significant: true, ...significant }), trapping('c', p, true)],
      options,
    );
    const ref = p.ctx.monitor(sup);
    const events = supervisorEvents(node);
    return { node, p, sup, ref, events };
  }

  it('any_significant: a transient significant child exiting normally shuts the supervisor down, the others stopped in reverse order', async () => {
    const { node, p, sup, ref, events } = await withSignificant({ autoShutdown: 'any_significant' }, {});
    node.send(await pidOf(node, sup, 's'), { exit: 'normal' });
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(p.messages.filter((m) => isGot(m)).map((m) => [(m as Got).got, (m as Got).reason])).toEqual([
      ['c', 'shutdown'],
      ['b', 'shutdown'],
      ['a', 'shutdown'],
    ]);
    expect(summary(events.events)).toEqual([
      ['child_terminated', 's'],
      ['shutdown', undefined],
      ['child_terminated', 'c'],
      ['child_terminated', 'b'],
      ['child_terminated', 'a'],
    ]);
    expect(named(events.events, 'shutdown').map((e) => e.metadata.reason)).toEqual(['auto_shutdown']);
    await node.idle();
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });

  it.each<[string, ExitReason]>([
    ["'shutdown'", 'shutdown'],
    ['{ shutdown }', { shutdown: 'done' }],
  ])('any_significant: a transient significant child exiting with %s shuts the supervisor down too', async (_label, reason) => {
    const { node, p, sup, ref } = await withSignificant({ autoShutdown: 'any_significant' }, {});
    node.send(await pidOf(node, sup, 's'), { exit: reason });
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
  });

  it('any_significant: a transient significant child that crashes is restarted, and the supervisor stays', async () => {
    const { node, sup, events } = await withSignificant({ autoShutdown: 'any_significant' }, {});
    const s = await pidOf(node, sup, 's');
    node.send(s, 'crash');
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    const s2 = await pidOf(node, sup, 's');
    expect(Pid.equals(s, s2)).toBe(false);
    expect(summary(events.events)).toEqual([['child_restarted', 's']]);
    // ...and its later normal exit still ends the supervisor
    node.send(s2, { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(sup)).toBe(false);
  });

  it.each<[string, unknown]>([
    ['exiting normally', { exit: 'normal' }],
    ['crashing', 'crash'],
  ])('any_significant: a temporary significant child %s shuts the supervisor down (it is never restarted)', async (_label, message) => {
    const { node, p, sup, ref, events } = await withSignificant({ autoShutdown: 'any_significant' }, { restart: 'temporary' });
    node.send(await pidOf(node, sup, 's'), message);
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(named(events.events, 'shutdown').map((e) => e.metadata.reason)).toEqual(['auto_shutdown']);
    expect(named(events.events, 'child_restarted')).toEqual([]);
  });

  it('a significant child stopped by the supervisor (terminateChild) does not shut it down', async () => {
    const { node, sup } = await withSignificant({ autoShutdown: 'any_significant' }, {});
    expect(await Supervisor.terminateChild(node, sup, 's')).toBe('ok');
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 4, active: 3, supervisors: 0, workers: 4 });
  });

  it('a significant child stopped by a sibling group restart (one_for_all) does not shut the supervisor down', async () => {
    const { node, sup, events } = await withSignificant({ autoShutdown: 'any_significant', strategy: 'one_for_all' }, { restart: 'temporary' });
    node.exit(await pidOf(node, sup, 'a'), 'kill');
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    // the temporary s is stopped and not restarted (its spec goes); the others come back
    expect(Object.keys(await rows(node, sup))).toEqual(['a', 'b', 'c']);
    expect(named(events.events, 'shutdown')).toEqual([]);
  });

  it('a child that is not significant exiting normally does not shut the supervisor down', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('t', [], { restart: 'transient' }), child('s', [], { restart: 'transient', significant: true })], { autoShutdown: 'any_significant' });
    node.send(await pidOf(node, sup, 't'), { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 2, active: 1, supervisors: 0, workers: 2 });
  });

  it('all_significant: the supervisor stays until the last significant child has terminated by itself', async () => {
    const node = track();
    const p = probe(node);
    const sup = await Supervisor.start(
      node,
      [
        child('s1', [], { restart: 'transient', significant: true }),
        child('w'),
        child('s2', [], { restart: 'temporary', significant: true }),
        child('s3', [], { restart: 'transient', significant: true }),
      ],
      { autoShutdown: 'all_significant' },
    );
    const ref = p.ctx.monitor(sup);
    const w = await pidOf(node, sup, 'w');
    node.send(await pidOf(node, sup, 's1'), { exit: 'normal' });
    await node.idle();
    node.send(await pidOf(node, sup, 's2'), 'crash'); // temporary: gone, not restarted
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    // s3 crashing is restarted: still one significant child left
    node.send(await pidOf(node, sup, 's3'), 'crash');
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 2, supervisors: 0, workers: 3 });
    node.send(await pidOf(node, sup, 's3'), { exit: 'shutdown' });
    expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    expect(node.isAlive(w)).toBe(false);
  });

  it('all_significant: a significant child the supervisor stopped no longer keeps it up', async () => {
    const node = track();
    const sup = await Supervisor.start(
      node,
      [child('s1', [], { restart: 'transient', significant: true }), child('s2', [], { restart: 'transient', significant: true })],
      { autoShutdown: 'all_significant' },
    );
    expect(await Supervisor.terminateChild(node, sup, 's1')).toBe('ok');
    expect(node.isAlive(sup)).toBe(true);
    node.send(await pidOf(node, sup, 's2'), { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(sup)).toBe(false);
  });

  it('all_significant: a significant child waiting for its restart (backoff) still counts as there, as in OTP', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const sup = await Supervisor.start(
      node,
      [child('s1', [], { restart: 'transient', significant: true }), child('s2', [], { restart: 'transient', significant: true })],
      { autoShutdown: 'all_significant', backoff: { initialMs: 100, jitter: 'none' } },
    );
    node.send(await pidOf(node, sup, 's1'), 'crash');
    await node.idle();
    expect((await rows(node, sup)).s1?.pid).toBe('restarting');
    node.send(await pidOf(node, sup, 's2'), { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(sup)).toBe(true);
    await clock.advance(100);
    await node.idle();
    node.send(await pidOf(node, sup, 's1'), { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(sup)).toBe(false);
  });

  it('escalates: a significant child supervisor that shuts itself down shuts its significant-watching parent down', async () => {
    const node = track();
    const p = probe(node);
    const root = await Supervisor.start(
      node,
      [
        child('other'),
        {
          id: 'session',
          type: 'supervisor',
          restart: 'transient',
          significant: true,
          start: (ctx) => Supervisor.startLink(ctx, [child('conn', [], { restart: 'transient', significant: true }), child('buffer')], { autoShutdown: 'any_significant' }),
        },
      ],
      { autoShutdown: 'any_significant' },
    );
    const session = await pidOf(node, root, 'session');
    const [conn, buffer, other] = [await pidOf(node, session, 'conn'), await pidOf(node, session, 'buffer'), await pidOf(node, root, 'other')];
    const refs = [root, session, other, buffer].map((pid) => p.ctx.monitor(pid));
    const events = supervisorEvents(node);
    node.send(conn, { exit: 'normal' });
    for (const ref of refs) expect((await receiveDown(p, ref)).reason).toBe('shutdown');
    const label = (pid: unknown) => (samePid(pid, root) ? 'root' : samePid(pid, session) ? 'session' : 'other');
    expect(named(events.events, 'shutdown').map((e) => [label(e.metadata.supervisor), e.metadata.reason])).toEqual([
      ['session', 'auto_shutdown'],
      ['root', 'auto_shutdown'],
    ]);
    await node.idle();
    expect(node.processes().filter((pid) => !Pid.equals(pid, p))).toEqual([]);
  });

  it('a transient child supervisor that shuts itself down is not restarted by a parent with autoShutdown never', async () => {
    const node = track();
    const root = await Supervisor.start(node, [
      {
        id: 'session',
        type: 'supervisor',
        restart: 'transient',
        start: (ctx) => Supervisor.startLink(ctx, [child('conn', [], { restart: 'transient', significant: true })], { autoShutdown: 'any_significant' }),
      },
    ]);
    const session = await pidOf(node, root, 'session');
    node.send(await pidOf(node, session, 'conn'), { exit: 'normal' });
    await node.idle();
    expect(node.isAlive(session)).toBe(false);
    expect(node.isAlive(root)).toBe(true);
    expect((await rows(node, root)).session?.pid).toBeUndefined();
    expect(await Supervisor.countChildren(node, root)).toEqual({ specs: 1, active: 0, supervisors: 1, workers: 0 });
  });
});

// ---- countChildren, whichChildren's modules, getChildSpec ---------------------------------------

describe('countChildren', () => {
  it('counts a child supervisor once (not its children), and specs of each type running or not', async () => {
    const node = track();
    const sup = await Supervisor.start(node, [
      child('w1'),
      { id: 'inner', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, [child('x'), child('y'), child('z')]) },
      child('w2', [], { restart: 'transient' }),
    ]);
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 3, supervisors: 1, workers: 2 });
    const inner = await pidOf(node, sup, 'inner');
    expect(await Supervisor.countChildren(node, inner)).toEqual({ specs: 3, active: 3, supervisors: 0, workers: 3 });
    expect(await Supervisor.terminateChild(node, sup, 'inner')).toBe('ok');
    node.send(await pidOf(node, sup, 'w2'), { exit: 'normal' });
    await node.idle();
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 3, active: 1, supervisors: 1, workers: 2 });
  });

  it('does not count a child waiting for its restart as active', async () => {
    const clock = new TestClock({ start: 0 });
    const node = track({ clock });
    const sup = await Supervisor.start(node, [child('a'), child('b')], { backoff: { initialMs: 100, jitter: 'none' } });
    node.send(await pidOf(node, sup, 'a'), 'crash');
    await node.idle();
    expect((await rows(node, sup)).a?.pid).toBe('restarting');
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 2, active: 1, supervisors: 0, workers: 2 });
    await clock.advance(100);
    await node.idle();
    expect(await Supervisor.countChildren(node, sup)).toEqual({ specs: 2, active: 2, supervisors: 0, workers: 2 });
  });
});

describe('whichChildren modules and getChildSpec', () => {
  function startCache(ctx: Context): Pid {
    return ctx.spawnLink(worker('cache'));
  }

  it("reports the spec's modules, else a named start function's name, else []", async () => {
    const node = track();
    const sup = await Supervisor.start(node, [
      { id: 'named', start: startCache },
      child('inline'),
      { id: 'given', start: startCache, modules: ['CacheServer', 'CacheStore'] },
      { id: 'dyn', start: startCache, modules: 'dynamic' },
    ]);
    expect((await Supervisor.whichChildren(node, sup)).map((c) => [c.id, c.type, c.modules])).toEqual([
      ['named', 'worker', ['startCache']],
      ['inline', 'worker', []],
      ['given', 'worker', ['CacheServer', 'CacheStore']],
      ['dyn', 'worker', 'dynamic'],
    ]);
  });

  it('a start function whose name cannot be read names no module: the child starts, its modules []', async () => {
    const node = track();
    const start = (ctx: Context) => ctx.spawnLink(worker('a'));
    Object.defineProperty(start, 'name', {
      get() {
        throw new Error('name getter');
      },
    });
    const sup = await Supervisor.start(node, [{ id: 'a', start }]);
    expect((await Supervisor.whichChildren(node, sup)).map((c) => [c.id, c.modules])).toEqual([['a', []]]);
    await Supervisor.startChild(node, sup, { id: 'b', start });
    expect((await Supervisor.getChildSpec(node, sup, 'b') as Required<ChildSpec>).modules).toEqual([]);
  });

  it.each<[string, unknown]>([
    ['a string', 'CacheServer'],
    ['an array with a non-string', ['a', 1]],
    ['a sparse array', [, 'a']], // a hole is no module name
    ['null', null],
  ])('refuses modules that are %s', async (_label, modules) => {
    const node = track();
    const e = await failure(() => Supervisor.start(node, [{ id: 'a', start: startCache, modules: modules as string[] }]));
    expectKeelError(e, 'ERR_INVALID_ARGUMENT', 'children[0].modules', "'dynamic'");
  });

  it("getChildSpec returns the child's spec with its defaults filled in, and not_found for an unknown id", async () => {
    const node = track();
    const sup = await Supervisor.start(
      node,
      [
        { id: 'cache', start: startCache },
        { id: 'inner', type: 'supervisor', start: (ctx) => Supervisor.startLink(ctx, []) },
        { id: 'job', start: startCache, restart: 'temporary', significant: true, shutdown: 'brutal_kill', modules: ['Job'] },
      ],
      { autoShutdown: 'all_significant' },
    );
    expect(await Supervisor.getChildSpec(node, sup, 'cache')).toEqual({ id: 'cache', start: startCache, restart: 'permanent', shutdown: 5000, type: 'worker', significant: false, modules: ['startCache'] });
    expect(await Supervisor.getChildSpec(node, sup, 'inner')).toMatchObject({ id: 'inner', restart: 'permanent', shutdown: 'infinity', type: 'supervisor', significant: false, modules: [] });
    expect(await Supervisor.getChildSpec(node, sup, 'job')).toEqual({ id: 'job', start: startCache, restart: 'temporary', shutdown: 'brutal_kill', type: 'worker', significant: true, modules: ['Job'] });
    expect(await Supervisor.getChildSpec(node, sup, 'nope')).toEqual({ error: 'not_found' });
    expectKeelError(thrown(() => Supervisor.getChildSpec(node, sup, 42 as never)), 'ERR_INVALID_ARGUMENT', 'id');
    // a spec returned is a copy: changing it changes nothing in the supervisor
    const spec = await Supervisor.getChildSpec(node, sup, 'job');
    if ('error' in spec) throw new Error('expected a spec');
    (spec.modules as string[]).push('Other');
    expect((await rows(node, sup)).job?.modules).toEqual(['Job']);
  });

  it("a temporary child's spec is gone once it has exited", async () => {
    const node = track();
    const sup = await Supervisor.start(node, [child('t', [], { restart: 'temporary' }), child('p')]);
    node.send(await pidOf(node, sup, 't'), { exit: 'normal' });
    await node.idle();
    expect(await Supervisor.getChildSpec(node, sup, 't')).toEqual({ error: 'not_found' });
    expect(await Supervisor.getChildSpec(node, sup, 'p')).toMatchObject({ id: 'p', restart: 'permanent' });
  });
});
