// Helpers shared by the test files: nodes shut down after each test (on a TestClock if need be),
// temp files, deferred and watched promises, a fake logger, error expectations, a seeded PRNG, and
// a few processes, monitor-service answers and waits that many tests need.
import diagnostics from 'node:diagnostics_channel';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, expect, vi, type Mock } from 'vitest';
import {
  createNode,
  isDown,
  isKeelError,
  isUnavailable,
  Pid,
  type Context,
  type Down,
  type ExitReason,
  type KeelErrorCode,
  type Logger,
  type MonitorEntry,
  type Node,
  type NodeOptions,
  type Ref,
  type ServiceName,
  ServiceUnavailableError,
  type ServiceUnavailableReason,
  type SpawnOptions,
  type Unavailable,
} from '../src/index.js';
import type { KeelNode } from '../src/runtime/Node.js';
import { expectNoLeaks, probe, type Probe, TestClock } from '../src/testing/index.js';
import type { StoreClock } from '../src/delivery/stores/sqliteFile.js';

// ---- nodes ------------------------------------------------------------------------------------

/** Makes a node (with a fresh `fakeLogger()` unless `options` gives a logger) that is shut down after the test. */
export type TrackNode = (options?: NodeOptions) => KeelNode;

/**
 * Registers an `afterEach` that shuts down every node made through the returned `track` during
 * the test. Call it once at the top of a test file (or of a `describe`).
 */
export function useNodes(): TrackNode {
  const nodes: Node[] = [];
  afterEach(async () => {
    const list = nodes.splice(0);
    try {
      // every test of every layer leaves nothing behind that a dead process owned
      for (const n of list) if (!(n as KeelNode).stopped) expectNoLeaks(n);
    } finally {
      await Promise.all(list.map((n) => n.shutdown({ timeoutMs: 1000 })));
    }
  });
  return (options = {}) => {
    const node = createNode({ logger: fakeLogger(), ...options }) as KeelNode;
    nodes.push(node);
    return node;
  };
}

/**
 * A node made by `track` on a TestClock at `start`, with `options` (a fixed `random`, say, so that
 * every delay the node draws is known).
 */
export function clockedNode(track: TrackNode, options: NodeOptions = {}, start = 1_000_000): { node: KeelNode; clock: TestClock } {
  const clock = new TestClock({ start });
  return { node: track({ clock, ...options }), clock };
}

// ---- temp files -------------------------------------------------------------------------------

/**
 * Registers an `afterEach` that removes every temp directory made through the returned function,
 * which answers a fresh path `<new dir named prefix…>/<filename>`. Call it before `useNodes()`:
 * after-each hooks run in reverse order, so the nodes (and the files they hold open) are shut down
 * before their directories are removed.
 */
export function useTempFiles(prefix: string, filename: string): () => string {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    dirs.push(dir);
    return path.join(dir, filename);
  };
}

// ---- promises ---------------------------------------------------------------------------------

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise with its resolve and reject at hand: a gate to open, or a signal to wait for. */
/**
 * A thenable that is no Promise and whose `then` returns nothing (as some libraries' do), settled by
 * hand: `asked` resolves once its `then` was called, `resolve` / `reject` call what `then` was given.
 */
export function handThenable<T>(): { thenable: PromiseLike<T>; asked: Promise<void>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let settle: ((v: T) => void) | undefined;
  let fail: ((e: unknown) => void) | undefined;
  const asked = deferred<void>();
  const thenable = {
    then(onFulfilled: (v: T) => void, onRejected: (e: unknown) => void): void {
      settle = onFulfilled;
      fail = onRejected;
      asked.resolve();
    },
  };
  return { thenable: thenable as unknown as PromiseLike<T>, asked: asked.promise, resolve: (v: T) => settle!(v), reject: (e: unknown) => fail!(e) };
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Where a promise stands, read after awaiting a fact (a settle, an advance, a probe message). */
export interface Watched<T> {
  status: 'pending' | 'resolved' | 'rejected';
  value: T | undefined;
  error: unknown;
}

/** Watches the promise `fn` returns; a synchronous throw counts as a rejection. */
export function attempt<T>(fn: () => Promise<T>): Watched<T> {
  const w: Watched<T> = { status: 'pending', value: undefined, error: undefined };
  let promise: Promise<T>;
  try {
    promise = fn();
  } catch (e) {
    w.status = 'rejected';
    w.error = e;
    return w;
  }
  promise.then(
    (value) => {
      w.status = 'resolved';
      w.value = value;
    },
    (error: unknown) => {
      w.status = 'rejected';
      w.error = error;
    },
  );
  return w;
}

/** Watches `promise`: its status, value and error, readable without awaiting it. */
export function watch<T>(promise: Promise<T>): Watched<T> {
  return attempt(() => promise);
}

// ---- logging ----------------------------------------------------------------------------------

export interface FakeLogger extends Logger {
  readonly info: Mock<Logger['info']>;
  readonly warn: Mock<Logger['warn']>;
  readonly error: Mock<Logger['error']>;
  /** The arguments of every `error()` call so far: what the node would have printed as errors. */
  readonly errors: readonly (readonly unknown[])[];
}

/** A logger that prints nothing and records every call (each method is a `vi.fn()`). */
export function fakeLogger(): FakeLogger {
  const error = vi.fn<Logger['error']>();
  return {
    info: vi.fn<Logger['info']>(),
    warn: vi.fn<Logger['warn']>(),
    error,
    get errors() {
      return error.mock.calls;
    },
  };
}

// ---- errors -----------------------------------------------------------------------------------

/** What `fn` threw, or the string 'nothing was thrown'. */
export function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  return 'nothing was thrown';
}

/** What `fn` threw synchronously or what the promise it returned rejected with, or 'nothing was thrown'. */
export async function failure(fn: () => unknown): Promise<unknown> {
  try {
    await fn();
  } catch (e) {
    return e;
  }
  return 'nothing was thrown';
}

/** Asserts a typed Keel error with `code` whose message contains every fragment. */
export function expectKeelError(e: unknown, code: KeelErrorCode, ...fragments: string[]): void {
  expect(isKeelError(e, code), `expected ${code}, got ${String(e)}`).toBe(true);
  const message = (e as Error).message;
  for (const f of fragments) expect(message).toContain(f);
}

/** The two ways a function can fail: throw at once, or return a promise that rejects (after a turn). */
export type FailureMode = 'throws' | 'rejects';

export const failureModes: readonly FailureMode[] = ['throws', 'rejects'];

/** A function that fails with `error` the `mode` way: an init, a handler or a callback that fails. */
export function failingWith(mode: FailureMode, error: unknown): (() => never) | (() => Promise<never>) {
  return mode === 'throws'
    ? (): never => {
        throw error;
      }
    : async (): Promise<never> => {
        await Promise.resolve();
        throw error;
      };
}

// ---- processes --------------------------------------------------------------------------------

/** An init whose process handles everything and does nothing. */
export const idleInit = () => (): void => undefined;

/**
 * A process busy on its first message (a promise) until `release`: what it is sent next stays
 * queued, `queued` messages (`m0`, `m1`...) already are. For a long mailbox or a busy status to look at.
 */
export async function heldProcess(node: Node, name?: string, queued = 0): Promise<{ pid: Pid; release: () => void }> {
  const started = deferred();
  const gate = deferred();
  const pid = node.spawn<string>(
    () => async (m) => {
      if (m === 'hold') {
        started.resolve();
        await gate.promise;
      }
    },
    name === undefined ? undefined : { name },
  );
  node.send(pid, 'hold');
  await started.promise;
  for (let i = 0; i < queued; i++) node.send(pid, `m${i}`);
  return { pid, release: () => gate.resolve() };
}

/** Spawns a process that handles everything and does nothing. */
export function idler(node: Node, options?: SpawnOptions): Pid {
  return node.spawn(idleInit, options);
}

/** An init whose process throws `error` from its handler: it crashes on its first message. */
export function crasher(error: unknown) {
  return () => (): never => {
    throw error;
  };
}

/** Spawns a process and resolves with its pid and its context once its init has run. */
export async function spawnWithContext<M = unknown>(
  node: Node,
  handler: (ctx: Context<M>) => (m: unknown) => void | Promise<void> = idleInit,
): Promise<{ pid: Pid<M>; ctx: Context<M> }> {
  const ready = deferred<Context<M>>();
  const pid = node.spawn<M>((ctx) => {
    ready.resolve(ctx);
    return handler(ctx);
  });
  return { pid, ctx: await ready.promise };
}

/** The same id on the same node, but of another creation (an earlier or later run). */
export function otherCreation(pid: Pid): Pid {
  return Pid.parse(`<${pid.node}.${pid.id}.${pid.creation === 1 ? 2 : pid.creation - 1}>`);
}

/** A message that a forwarding process passed on: `{ forwarded: <what it got> }`. */
export interface Forwarded {
  readonly forwarded: unknown;
}

export function isForwarded(msg: unknown): msg is Forwarded {
  return typeof msg === 'object' && msg !== null && 'forwarded' in msg;
}

/** A pid that is certainly dead: spawned, then exited with `reason` (by default a clean shutdown: nothing is logged). */
export function deadPid(node: Node, reason: 'shutdown' | 'kill' = 'shutdown'): Pid {
  const pid = idler(node);
  node.exit(pid, reason);
  expect(node.isAlive(pid)).toBe(false);
  return pid;
}

/** What a receiver handled: the message and the `ctx.messageId` it was handled under. */
export interface Seen {
  readonly message: unknown;
  readonly id: string | undefined;
}

/**
 * A receiver that records every message it handles with `ctx.messageId`. `hold()` makes it busy
 * (an async handler awaiting a gate) so that its mailbox fills; `release()` opens the gates.
 */
export interface Receiver {
  readonly pid: Pid;
  readonly seen: Seen[];
  hold(): Promise<void>;
  release(): void;
}

const HOLD = 'hold:receiver';

export function receiver(node: Node, options?: SpawnOptions): Receiver {
  const seen: Seen[] = [];
  const gates: Deferred<void>[] = [];
  let holding = deferred();
  const pid = node.spawn(
    (ctx) => (m: unknown) => {
      if (m === HOLD) {
        const gate = deferred();
        gates.push(gate);
        holding.resolve();
        return gate.promise;
      }
      seen.push({ message: m, id: ctx.messageId });
    },
    options,
  );
  return {
    pid,
    seen,
    hold: async () => {
      holding = deferred();
      node.send(pid, HOLD);
      await holding.promise;
    },
    release: () => {
      for (const g of gates.splice(0)) g.resolve();
    },
  };
}

// ---- receiving --------------------------------------------------------------------------------

/** Waits for a Down at probe `p`: the Down of the monitor `match`, or one that `match` accepts (any Down without it). */
export async function receiveDown(p: Probe, match: Ref | ((down: Down) => boolean) = () => true): Promise<Down> {
  const accepts = typeof match === 'function' ? match : (down: Down) => down.ref === match;
  const m = await p.receive((x) => isDown(x) && accepts(x));
  if (!isDown(m)) throw new Error(`expected a Down, got ${String(m)}`);
  return m;
}

/**
 * Exits `pid` with `reason` (by default `'kill'`), waits for its Down at a fresh probe, then for
 * `node` to go idle: a supervisor that restarts it has done so by then. `then: 'settle'` waits for
 * `node.settle()` instead, for a node that a held (busy) process keeps from going idle.
 */
export async function exitAndWait(node: Node, pid: Pid, reason?: ExitReason | 'kill'): Promise<void>;
export async function exitAndWait(node: Node & { settle(): Promise<void> }, pid: Pid, reason: ExitReason | 'kill', then: 'settle'): Promise<void>;
export async function exitAndWait(node: Node & { settle?(): Promise<void> }, pid: Pid, reason: ExitReason | 'kill' = 'kill', then: 'idle' | 'settle' = 'idle'): Promise<void> {
  const p = probe(node);
  // eslint-disable-next-line keel/no-unmanaged-monitor -- the test waits for this Down
  const ref = p.ctx.monitor(pid);
  node.exit(pid, reason);
  await receiveDown(p, ref);
  await (then === 'settle' ? node.settle!() : node.idle());
}

/** Advances `clock` by `ms` (firing what comes due), then lets `node` go idle: what the timers started has run. */
export async function advance(node: Node, clock: TestClock, ms: number): Promise<void> {
  await clock.advance(ms);
  await node.idle();
}

/** Lets `node` go idle, then sends probe `p` a marker and waits for it: everything sent to `p` before has arrived. */
export async function drainThrough(node: Node, p: Probe, marker = 'marker'): Promise<void> {
  await node.idle();
  node.send(p, marker);
  await p.receive((m) => m === marker);
}

/** The Downs a forwarding process passed on to `p` (as `{ forwarded }`): all of them, or those of the monitor `ref`. */
export function forwardedDowns(p: Probe, ref?: Ref): Down[] {
  return p.messages.filter(isForwarded).flatMap((m) => (isDown(m.forwarded) && (ref === undefined || m.forwarded.ref === ref) ? [m.forwarded] : []));
}

// ---- service answers --------------------------------------------------------------------------

/**
 * Asserts that `e` is the `ServiceUnavailableError` of `operation` (as `'deadLetters.stats'`): its
 * exact code, name, service, reason and operation, and a message that names the call and says why.
 */
export function expectServiceUnavailable(e: unknown, operation: `${ServiceName}.${string}`, reason: ServiceUnavailableReason): void {
  expect(e, `expected ERR_SERVICE_UNAVAILABLE from ${operation}, got ${String(e)}`).toBeInstanceOf(ServiceUnavailableError);
  const error = e as ServiceUnavailableError;
  expect({ code: error.code, name: error.name, service: error.service, reason: error.reason, operation: error.operation }).toEqual({
    code: 'ERR_SERVICE_UNAVAILABLE',
    name: 'ServiceUnavailableError',
    service: operation.slice(0, operation.indexOf('.')),
    reason,
    operation,
  });
  expect(error.message).toContain(`\`node.${operation}\` cannot run: `);
  expect(error.message).toContain(reason === 'disabled' ? 'created with `services: false`' : 'the node has shut down');
}

/** What the promise `fn` returns rejects with; fails the test if `fn` throws synchronously or the promise resolves. */
export async function rejection(fn: () => unknown): Promise<unknown> {
  let answer: unknown;
  try {
    answer = fn();
  } catch (e) {
    throw new Error(`expected a promise that rejects, but the call threw synchronously: ${String(e)}`);
  }
  if (!(answer instanceof Promise)) throw new Error(`expected a promise, got ${String(answer)}`);
  try {
    await answer;
  } catch (e) {
    return e;
  }
  throw new Error('expected the promise to reject, but it resolved');
}

/** The value of a service answer; fails the test on `{ error: 'unavailable' }` (what services once answered). */
export function ok<T>(value: T | Unavailable): T {
  if (isUnavailable(value)) throw new Error("expected an answer, got { error: 'unavailable' }");
  return value;
}

/** The Ref a managed `monitor` returned; throws (failing the test) on `{ error }`. */
export function refOf(result: Ref | { error: string }): Ref {
  if ('error' in result) throw new Error(`expected a Ref, got { error: '${result.error}' }`);
  return result;
}

/** The monitor service's `list()`; throws (failing the test) on `{ error }`. */
export function listOf(node: Node): MonitorEntry[] {
  const list = node.monitors.list();
  if (!Array.isArray(list)) throw new Error(`expected a list, got ${JSON.stringify(list)}`);
  return list;
}

/** The monitor service's `stats()`; throws (failing the test) on `{ error }`. */
export function statsOf(node: Node): { created: number; cleaned: number; active: number; leaked: number } {
  const stats = node.monitors.stats();
  if ('error' in stats) throw new Error(`expected stats, got ${JSON.stringify(stats)}`);
  return stats;
}

// ---- randomness -------------------------------------------------------------------------------

/** A small seeded PRNG (mulberry32): the same seed, the same "random" sequence on every run. */
export { seededRandom as seeded } from '../src/index.js';

/** A shuffled copy of `items` (Fisher–Yates) drawing on `random`: with `seeded(n)`, a replayable order. */
export function shuffle<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

// ---- hostile values ---------------------------------------------------------------------------

/** A proxy revoked before it is used: every operation on it throws a TypeError. */
export function revokedProxy(): object {
  const { proxy, revoke } = Proxy.revocable({}, {});
  revoke();
  return proxy;
}

/** A proxy whose every trap throws (`instanceof` on it throws too: its prototype cannot be read). */
export function trappingProxy(): object {
  const trap = (): never => {
    throw new TypeError('trap');
  };
  return new Proxy({}, { get: trap, has: trap, ownKeys: trap, getOwnPropertyDescriptor: trap, getPrototypeOf: trap, defineProperty: trap, set: trap });
}

/** Messages no code may inspect without care: each would crash a handler that reads it naively. */
export const UNREADABLE: readonly (readonly [string, () => object])[] = [
  ['a revoked proxy', revokedProxy],
  ['a proxy whose traps throw', trappingProxy],
];

// ---- streams ----------------------------------------------------------------------------------

/** Collects a stream in the background; `seen` fills as it yields, `next(n)` resolves once it holds n. */
export function collect<T>(stream: AsyncIterable<T>): { seen: T[]; done: Promise<T[]>; next(n: number): Promise<void> } {
  const seen: T[] = [];
  const waiters: { n: number; resolve: () => void }[] = [];
  const done = (async () => {
    for await (const v of stream) {
      seen.push(v);
      for (const w of waiters.filter((x) => seen.length >= x.n)) w.resolve();
    }
    return seen;
  })();
  // marked handled: a stream that fails while the test awaits something else first (the Downs of its
  // tasks, say) is no unhandled rejection; awaiting `done` still sees the failure
  done.catch(() => undefined);
  const next = (n: number): Promise<void> => {
    if (seen.length >= n) return Promise.resolve();
    const d = deferred();
    waiters.push({ n, resolve: () => d.resolve() });
    return d.promise;
  };
  return { seen, done, next };
}

// ---- call tracing ---------------------------------------------------------------------------------

/**
 * Subscribes to `tracingChannel('keel.call')` and records each event as a line (`start <request>`,
 * `end`, `asyncStart <result>`, `asyncEnd`, `error <code>`); `unsubscribe` stops recording.
 */
export function traceCalls(): { seen: string[]; unsubscribe(): void } {
  const seen: string[] = [];
  const handlers = {
    start: (ctx: unknown) => seen.push(`start ${String((ctx as { request: unknown }).request)}`),
    end: () => seen.push('end'),
    asyncStart: (ctx: unknown) => seen.push(`asyncStart ${String((ctx as { result: unknown }).result)}`),
    asyncEnd: () => seen.push('asyncEnd'),
    error: (ctx: unknown) => seen.push(`error ${(ctx as { error: { code: string } }).error.code}`),
  };
  const channel = diagnostics.tracingChannel('keel.call');
  channel.subscribe(handlers);
  return { seen, unsubscribe: () => channel.unsubscribe(handlers) };
}

/** A TestClock as a SQLite store's clock (`{ now, setTimer }` whose timers cancel): a store's lock retries then wait on it. */
export function storeClockOf(clock: TestClock): StoreClock {
  return {
    now: () => clock.now(),
    setTimer(ms, fn) {
      const timer = clock.setTimer(ms, fn);
      return { cancel: () => clock.clearTimer(timer) };
    },
  };
}

/** An hour, in ms: how far the wall-clock tests step `Date.now`. */
export const HOUR = 3_600_000;

/**
 * Steps the host's wall clock (`Date.now`) by `ms` from now on, as NTP or a suspended laptop does
 * (undone by `vi.restoreAllMocks()`): a real-clock node's `clock.now()` jumps with it, the time its
 * timers count in (the monotonic clock) does not.
 */
export function stepWallClock(ms: number): void {
  const wall = Date.now.bind(Date);
  vi.spyOn(Date, 'now').mockImplementation(() => wall() + ms);
}

/** Resolves with the first telemetry event named `event` whose metadata `matches` (from now on). */
export function nextEvent(node: Node, event: string, matches: (metadata: Record<string, unknown>) => boolean = () => true): Promise<{ measurements: Record<string, unknown>; metadata: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const id = `next-${event}-${Math.random()}`;
    node.telemetry.attach(id, [event], (_event, measurements, metadata) => {
      if (!matches(metadata as Record<string, unknown>)) return;
      node.telemetry.detach(id);
      resolve({ measurements: measurements as Record<string, unknown>, metadata: metadata as Record<string, unknown> });
    });
  });
}

/** `'settled'` once `promise` fulfils, `'not yet'` if it has not after `ms` of real time (the timer cleared either way); rejects as it does. */
export async function settlesWithin(promise: Promise<unknown>, ms: number): Promise<'settled' | 'not yet'> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<'not yet'>((resolve) => (timer = setTimeout(resolve, ms, 'not yet')));
  try {
    return await Promise.race([promise.then(() => 'settled' as const), late]);
  } finally {
    clearTimeout(timer);
  }
}
