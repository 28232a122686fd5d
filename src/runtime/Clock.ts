import { performance } from 'node:perf_hooks';
import { InvalidArgumentError } from '../errors.js';

/** An opaque handle of a clock's timer. */
export type TimerHandle = unknown;

/**
 * The source of time for a node: wall-clock `now()` in epoch milliseconds and one-shot timers.
 * Every Keel timer (call timeouts, restart windows, retry backoff, schedules, `sendAfter`) goes
 * through the node's clock; a node arms at most one host timer at a time over its own timer heap.
 * Tests pass a `TestClock` from `keel/testing`.
 */
export interface Clock {
  now(): number;
  setTimer(ms: number, fn: () => void): TimerHandle;
  clearTimer(handle: TimerHandle): void;
}

/**
 * @internal A clock that wants to know the nodes using it (the TestClock lets them run until they
 * have nothing runnable after each timer it fires). Returns a function that detaches the node.
 */
export const kAttachNode: unique symbol = Symbol('keel.clock.attachNode');

/** @internal What a clock sees of a node it is attached to. */
export interface ClockNode {
  /**
   * Resolves when the node has no runnable process left (handlers awaiting outside work are not
   * waited for); with `io`, also no service I/O in flight (a SQLite group commit, say).
   */
  settle(options?: { io?: boolean }): Promise<void>;
}

/**
 * @internal Set on a clock whose time is virtual (the SimulatedClock): a node on it schedules
 * deterministically — its time slice counts messages instead of reading the real monotonic clock —
 * so that the same seed gives the same run.
 */
export const kDeterministic: unique symbol = Symbol('keel.clock.deterministic');

/**
 * @internal Set on a clock whose timers take any finite delay (the SimulatedClock, the TestClock): a
 * node arms its timer there for the whole delay, not in steps of a host timer's 2^31 - 1 ms (a
 * virtual clock would otherwise wake up every 2^31 - 1 ms of its time on the way: 10^290 times for a
 * 1e300 ms timer, a simulation that never ends).
 */
export const kAnyDelay: unique symbol = Symbol('keel.clock.anyDelay');

/** @internal */
export function takesAnyDelay(clock: Clock): boolean {
  return (clock as { [kAnyDelay]?: unknown })[kAnyDelay] === true;
}

/** @internal */
export function isDeterministic(clock: Clock): boolean {
  return (clock as { [kDeterministic]?: unknown })[kDeterministic] === true;
}

/** @internal */
export interface AttachableClock extends Clock {
  [kAttachNode](node: ClockNode): () => void;
}

/** @internal */
export function isAttachable(clock: Clock): clock is AttachableClock {
  return typeof (clock as Partial<AttachableClock>)[kAttachNode] === 'function';
}

/**
 * The real clock: `Date.now()` (epoch milliseconds, the wall clock: timestamps that other processes
 * and machines read) and host timers. A node's timers on it count on the monotonic clock (see
 * {@link timerTimeOf}): the host's wall clock stepped back or forward (by hand, by NTP) neither
 * stretches nor cuts a timer, a call timeout or a restart window, as on the BEAM, whose timers run on
 * its monotonic time while its system time follows the OS.
 */
export const realClock: Clock = {
  now: () => Date.now(),
  setTimer: (ms, fn) => setTimeout(fn, ms),
  clearTimer: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout>),
};

/** @internal Monotonic time in ms for time slices, spans and `long_schedule` (real even under a TestClock). */
export const monotonicClock = (): number => performance.now();
monotonicClock(); // load the timing machinery now, not inside the first scheduler turn

/**
 * @internal The time a node's timers and durations count in on `clock`: the monotonic clock for the
 * real clock (a wall clock stepped back an hour held every timer an hour; one stepped forward made a
 * supervisor forget the restarts in its window), the clock's own `now()` for any other (a TestClock's
 * virtual time).
 */
export function timerTimeOf(clock: Clock): () => number {
  return clock === realClock ? monotonicClock : () => clock.now();
}

/**
 * A seeded pseudo-random generator for a node's `random`: the same seed gives the same sequence, so
 * backoff jitter and anything else drawn from `node.random` repeat from run to run. Every safe
 * integer is a seed of its own: 0 to 2^32 - 1 seed mulberry32 (as they always have: a recorded seed
 * replays the same run), and any other (negative, or 2^32 and above) seeds sfc32 with all of its
 * bits, so no two seeds share a sequence.
 *
 * @example
 * ```ts
 * const node = createNode({ random: seededRandom(42) });
 * ```
 */
export function seededRandom(seed: number): () => number {
  // `>>> 0` would make NaN, undefined or a string seed 0 (and 1.5 the seed 1): a simulation seeded from
  // an unset variable would quietly be the same run every time
  if (!Number.isSafeInteger(seed)) throw new InvalidArgumentError('seed', 'an integer', seed);
  if (seed >= 0 && seed <= 0xffff_ffff) return mulberry32(seed);
  // mulberry32's state is 32 bits: seeds past them would wrap onto another seed's run (2^32 onto 0,
  // -7 onto 2^32 - 7); sfc32 takes the magnitude's low and high words and the sign in its 128 bits
  const magnitude = Math.abs(seed);
  return sfc32(magnitude >>> 0, Math.floor(magnitude / 0x1_0000_0000) >>> 0, seed < 0 ? 1 : 2, 0x9e3779b9);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** sfc32 (Chris Doty-Humphrey's small fast counting generator), its first draws discarded to mix the seed in. */
function sfc32(a: number, b: number, c: number, d: number): () => number {
  const next = (): number => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}
