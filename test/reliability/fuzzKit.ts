/* eslint-disable keel/no-raw-send, keel/no-unmanaged-monitor -- the fuzz fixture aims raw sends at processes on purpose, and watches its test processes with a probe's monitors */
// The fixture the fuzz properties share: one node per property (on a TestClock, so that timeouts and
// retries move only when told), its services started, watchers on what must not happen (a Keel
// process that crashes, a supervisor of Keel's that restarts a child), test processes to aim at,
// and the checks that follow every case: the call's result is a value or a typed Keel error, the
// processes it touched still handle a marker (or exited with a reason their monitor saw), the
// scheduler goes on.
import fc from 'fast-check';
import { expect } from 'vitest';
import { GenServer, isDown, type Node, type Pid, Supervisor } from '../../src/index.js';
import type { KeelNode } from '../../src/runtime/Node.js';
import { captureEvents, expectNoLeaks, probe, type Probe, TestClock } from '../../src/testing/index.js';
import type { FakeLogger, TrackNode } from '../support.js';
import { hostileArb, V, what } from './hostile.js';

/** A value made from the fixture (a live pid, a name of a service), labelled for fast-check. */
export class F<T = unknown> {
  readonly label: string;
  readonly make: (fx: Fixture) => T;
  constructor(label: string, make: (fx: Fixture) => T) {
    this.label = label;
    this.make = make;
  }
  [fc.toStringMethod](): string {
    return this.label;
  }
}

/** A hostile value as an `F` (it needs nothing of the fixture). */
export const fromV = (v: V): F => new F(v.label, () => v.make());

const MARKER = 'fuzz-marker:';

export interface Fixture {
  readonly node: KeelNode;
  readonly clock: TestClock;
  /** Receives the markers the test processes forward, and the Downs of what it monitors. */
  readonly probe: Probe;
  /** A process that forwards markers to the probe and ignores everything else. */
  readonly forwarder: Pid;
  /** Registered as 'fuzz.forwarder'. */
  readonly named: Pid;
  /** Bounded (capacity 2, drop_oldest): it forwards markers too. */
  readonly bounded: Pid;
  /** A GenServer that answers every call with 'ok' and takes every cast, touching neither. */
  readonly server: Pid;
  /** Keel's own processes, by name: they must never exit or be restarted by what a case does. */
  readonly services: ReadonlyMap<string, Pid>;
  /** Every `keel.process.exited` and `keel.supervisor.child_restarted` event so far. */
  readonly events: { readonly event: string; readonly metadata: Record<string, unknown> }[];
  /**
   * The pids that must never exit abnormally: Keel's processes and the test processes above (a
   * case may add the process it is about, such as a supervisor it started, while it runs).
   */
  readonly guarded: Set<Pid>;
  /** Counts the markers sent, so that each is unique. */
  seq: number;
}

function forwarding(p: Pid) {
  return () =>
    (ctx: { send(to: Pid, m: unknown): void }) =>
    (m: unknown): void => {
      if (typeof m === 'string' && m.startsWith(MARKER)) ctx.send(p, m);
    };
}

/**
 * A node on a TestClock for one property, with its services started (the monitor manager and the
 * dead letter queue under `keel.services`), test processes, and watchers. `extra` starts more of
 * Keel's processes (an agent component) and names them, to be watched as services are.
 */
export async function fuzzNode(track: TrackNode, extra?: (node: KeelNode) => Promise<Record<string, Pid>>): Promise<Fixture> {
  const clock = new TestClock({ start: 1_000_000 });
  const node = track({ clock, longMailbox: false });
  const events = captureEvents(node, ['keel.process.exited', 'keel.supervisor.child_restarted']).events;
  const p = probe(node);
  // start the services: a dead letter added (and purged) starts keel.services and its children
  await node.deadLetters.add({ recipient: 'fuzz.nobody', message: 'start', reason: 'noproc' });
  await node.deadLetters.purge({});
  await node.idle();
  const services = new Map<string, Pid>();
  const sup = node.registry.whereis('keel.services');
  if (sup === undefined) throw new Error('keel.services did not start');
  services.set('keel.services', sup);
  for (const c of await Supervisor.whichChildren(node, sup)) {
    if (typeof c.pid === 'object') services.set(`keel.services/${c.id}`, c.pid);
  }
  if (extra !== undefined) for (const [name, pid] of Object.entries(await extra(node))) services.set(name, pid);
  const fw = forwarding(p);
  const forwarder = node.spawn(fw());
  const named = node.spawn(fw(), { name: 'fuzz.forwarder' });
  const bounded = node.spawn(fw(), { mailbox: { capacity: 2, overflow: 'drop_oldest' } });
  const server = await GenServer.start(node, {
    init: () => null,
    handleCall: (_request: unknown, _from: unknown, state: null) => ({ reply: 'ok', state }),
    handleCast: (_request: unknown, state: null) => state,
    handleInfo: (m: unknown, state: null, ctx) => {
      if (typeof m === 'string' && m.startsWith(MARKER)) ctx.send(p, m);
      return state;
    },
  });
  for (const pid of [forwarder, named, bounded, server, ...services.values()]) p.ctx.monitor(pid);
  const guarded = new Set<Pid>([p, forwarder, named, bounded, server, ...services.values()]);
  return { node, clock, probe: p, forwarder, named, bounded, server, services, events, guarded, seq: 0 };
}

/** What a send may be aimed at: the test processes, Keel's own processes, dead and unknown targets, or anything hostile. */
export function targetArb(options: { services?: boolean; server?: boolean } = {}): fc.Arbitrary<F> {
  const kinds: F[] = [
    new F('the forwarder', (fx) => fx.forwarder),
    new F("the forwarder's name", () => 'fuzz.forwarder'),
    new F('a plain copy of the forwarder pid', (fx) => ({ ...fx.forwarder })),
    new F('the bounded forwarder (capacity 2, drop_oldest)', (fx) => fx.bounded),
    new F('the probe', (fx) => fx.probe),
    new F('a dead pid', (fx) => {
      const pid = fx.node.spawn(() => () => undefined);
      fx.node.exit(pid, 'shutdown');
      return pid;
    }),
    new F('the forwarder pid of another creation', (fx) => ({ node: fx.forwarder.node, id: fx.forwarder.id, creation: fx.forwarder.creation + 1 })),
    new F('a pid of another node', (fx) => ({ node: 'elsewhere', id: fx.forwarder.id, creation: fx.forwarder.creation })),
    new F('the placeholder pid <node.0>', (fx) => ({ node: fx.node.name, id: 0, creation: fx.node.creation })),
    new F('an unknown name', () => 'fuzz.nobody'),
    new F('an empty name', () => ''),
    new F('a name of 1 MB', () => 'n'.repeat(1 << 20)),
  ];
  if (options.server !== false) kinds.push(new F('the GenServer', (fx) => fx.server));
  if (options.services !== false) {
    kinds.push(
      new F('keel.services (by name)', () => 'keel.services'),
      new F('keel.dead_letter_queue (by name)', () => 'keel.dead_letter_queue'),
      new F("a Keel process's pid", (fx) => [...fx.services.values()][fx.seq % fx.services.size]!),
      new F("a Keel process's name", (fx) => {
        const names = [...fx.services.keys()].filter((n) => !n.includes('/'));
        return names[fx.seq % names.length]!;
      }),
    );
  }
  return fc.oneof({ arbitrary: fc.constantFrom(...kinds), weight: 3 }, { arbitrary: hostileArb.map(fromV), weight: 1 });
}

/** A fresh marker. */
export function marker(fx: Fixture): string {
  return `${MARKER}${++fx.seq}`;
}

/**
 * After a case: every test process and every Keel process is alive and handles a marker, nothing of
 * Keel's exited or was restarted, and the scheduler goes on (a process spawned now handles a
 * message). `touched` are other pids the case made that must either handle a marker or have exited
 * with a reason the probe's monitor saw.
 */
export async function checkAfter(fx: Fixture, where: string, touched: readonly Pid[] = []): Promise<void> {
  const { node, probe: p } = fx;
  for (const pid of [fx.forwarder, fx.named, fx.bounded, fx.server]) {
    if (!node.isAlive(pid)) throw new Error(`${where}: the test process ${String(pid)} died`);
    const m = marker(fx);
    node.send(pid, m);
    await p.receive((x) => x === m, { timeout: 2000 });
  }
  for (const pid of touched) {
    // it handles a marker (its handler takes it, whatever it does with it), or it has exited and
    // the probe's monitor saw it
    const before = node.info(pid)?.messagesHandled ?? 0;
    node.send(pid, marker(fx));
    await node.idle({ timeoutMs: 2000 });
    const info = node.info(pid);
    if (info === undefined) await p.receive((x) => isDown(x) && x.pid === pid, { timeout: 2000 });
    else if (info.mailboxLength > 0 || info.messagesHandled <= before) throw new Error(`${where}: ${String(pid)} did not handle a marker (${JSON.stringify({ ...info, pid: String(pid) })})`);
  }
  // Keel's own processes: alive, the same ones, and answering
  for (const [name, pid] of fx.services) {
    if (!node.isAlive(pid)) {
      const down = p.messages.find((m) => isDown(m) && m.pid === pid);
      const why = down !== undefined && isDown(down) ? `: it exited with ${what(down.reason)}` : '';
      throw new Error(`${where}: Keel's process ${name} (${String(pid)}) is no longer alive${why}${logged(fx)}`);
    }
  }
  const crashed = fx.events.filter((e) => {
    if (e.event === 'keel.supervisor.child_restarted') return [...fx.services.values()].includes(e.metadata.supervisor as Pid);
    return fx.guarded.has(e.metadata.pid as Pid);
  });
  if (crashed.length > 0) {
    const [e] = crashed;
    throw new Error(`${where}: ${e!.event} ${String(e!.metadata.pid ?? e!.metadata.id)}: ${what(e!.metadata.reason)}${logged(fx)}`);
  }
  // the runtime's own guards caught a throw of Keel's code (not of a handler's): a defect, whoever died of it
  const internal = (fx.node.logger as FakeLogger).errors.find((args) => typeof args[0] === 'string' && INTERNAL.some((re) => re.test(args[0] as string)));
  if (internal !== undefined) throw new Error(`${where}: the runtime caught a throw of its own: ${internal.map((a) => what(a)).join(' ')}`);
  // the scheduler goes on: a new process handles a message, and the node goes idle
  const ran = marker(fx);
  const fresh = node.spawn(() => (m: unknown) => {
    if (m === ran) node.send(p, m);
  });
  node.send(fresh, ran);
  await p.receive((x) => x === ran, { timeout: 2000 });
  node.exit(fresh, 'shutdown');
  await node.idle({ timeoutMs: 2000 });
}

/** What the runtime logs when its own code (not a handler) threw: each is a defect. */
const INTERNAL = [/^the turn of .* threw outside its handler/, /^the scheduler loop of node/, /^a deferred task threw/, /^an envelope listener threw/, /^an exit watcher of .* threw/, /^a death hook of .* threw/, /^delivering an exit signal threw/, /^a timer callback of node/, /^a shutdown hook of node/];

/** What the node logged as errors, for a failure message. */
function logged(fx: Fixture): string {
  const errors = (fx.node.logger as FakeLogger).errors;
  return errors.length === 0 ? '' : `\nthe node logged:\n${errors.map((args) => args.map((a) => what(a)).join(' ')).join('\n')}`;
}

/** At the end of a property: no leaks, and every Keel process still the one it was. */
export async function finish(fx: Fixture): Promise<void> {
  await checkAfter(fx, 'at the end');
  expectNoLeaks(fx.node);
  expect(fx.events.filter((e) => fx.guarded.has(e.metadata.pid as Pid) && e.event === 'keel.process.exited')).toEqual([]);
}

/** The node's pids, to spot what a call spawned. */
export function pids(node: Node): Set<Pid> {
  return new Set(node.processes());
}

/** Where a behaviour operation comes from: the node, a live process's context, or anything hostile. */
export const fromArb: fc.Arbitrary<F> = fc.oneof(
  { arbitrary: fc.constantFrom(new F('the node', (fx) => fx.node), new F("the probe's context", (fx) => fx.probe.ctx)), weight: 4 },
  { arbitrary: hostileArb.map(fromV), weight: 1 },
);

/** An operation's `signal`: a live or aborted AbortSignal, or anything hostile. */
export const signalArb: fc.Arbitrary<V> = fc.oneof(
  fc.constantFrom(new V('a live AbortSignal', () => new AbortController().signal), new V('an aborted AbortSignal', () => AbortSignal.abort('aborted'))),
  hostileArb,
);
