// Helpers shared by the test files: nodes shut down after each test, deferred promises, a fake
// logger, error expectations, and a few processes and waits that many tests need.
import { afterEach, expect, vi, type Mock } from 'vitest';
import {
  createNode,
  isDown,
  isKeelError,
  Pid,
  type Context,
  type Down,
  type KeelErrorCode,
  type Logger,
  type Node,
  type NodeOptions,
  type Ref,
  type SpawnOptions,
} from '../src/index.js';
import type { KeelNode } from '../src/runtime/Node.js';
import { expectNoLeaks, type Probe } from '../src/testing/index.js';

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

// ---- promises ---------------------------------------------------------------------------------

export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

/** A promise with its resolve and reject at hand: a gate to open, or a signal to wait for. */
export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
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

// ---- processes --------------------------------------------------------------------------------

/** An init whose process handles everything and does nothing. */
export const idleInit = () => (): void => undefined;

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

// ---- receiving --------------------------------------------------------------------------------

/** Waits for a Down at probe `p`: the Down of the monitor `match`, or one that `match` accepts (any Down without it). */
export async function receiveDown(p: Probe, match: Ref | ((down: Down) => boolean) = () => true): Promise<Down> {
  const accepts = typeof match === 'function' ? match : (down: Down) => down.ref === match;
  const m = await p.receive((x) => isDown(x) && accepts(x));
  if (!isDown(m)) throw new Error(`expected a Down, got ${String(m)}`);
  return m;
}

/** Lets `node` go idle, then sends probe `p` a marker and waits for it: everything sent to `p` before has arrived. */
export async function drainThrough(node: Node, p: Probe, marker = 'marker'): Promise<void> {
  await node.idle();
  node.send(p, marker);
  await p.receive((m) => m === marker);
}
