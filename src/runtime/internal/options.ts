import { randomInt } from 'node:crypto';
import { checkKeys, InvalidArgumentError, readOption, thrownText } from '../../errors.js';
import { type Clock, isDeterministic, monotonicClock, realClock } from '../Clock.js';
import { NODE_NAME } from '../Pid.js';
import type { Logger, NodeOptions, SpawnOptions } from '../types.js';

/** @internal A node's options, validated: what its constructor wires its parts with. */
export interface NodeSettings {
  readonly name: string | undefined;
  readonly clock: Clock;
  /** The injected generator, each value checked where it is drawn. */
  readonly random: () => number;
  readonly logger: Logger;
  readonly services: boolean | object;
  readonly budget: number;
  readonly sliceMs: number;
  readonly longScheduleMs: number;
  readonly now: () => number;
  readonly deterministic: boolean;
  readonly longMailbox: readonly [number, number];
}

/** @internal Validates a node's options; unknown keys and bad values are typed errors. */
export function nodeSettings(options: NodeOptions): NodeSettings {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an options object', options);
  checkKeys(options, ['name', 'clock', 'random', 'logger', 'services', 'scheduler', 'longMailbox'], 'options');
  const { name, clock = realClock, random = Math.random, logger = console, services = true, scheduler = {} } = options;
  if (name !== undefined && (typeof name !== 'string' || !NODE_NAME.test(name))) {
    throw new InvalidArgumentError('name', 'a node name of 1 to 255 letters, digits, or . _ - @', name);
  }
  if (!readable('clock', clock, isClock)) throw new InvalidArgumentError('clock', 'a Clock with now(), setTimer() and clearTimer()', clock);
  if (typeof random !== 'function') throw new InvalidArgumentError('random', 'a function returning numbers in [0, 1)', random);
  if (!readable('logger', logger, isLogger)) throw new InvalidArgumentError('logger', 'a Logger with info(), warn() and error()', logger);
  if (typeof services !== 'boolean' && (typeof services !== 'object' || services === null)) {
    throw new InvalidArgumentError('services', 'a boolean or a services options object', services);
  }
  if (typeof services === 'object') checkKeys(services, ['monitors', 'deadLetters', 'agents'], 'services');
  if (typeof scheduler !== 'object' || scheduler === null) {
    throw new InvalidArgumentError('scheduler', 'an object { budget?, sliceMs?, longScheduleMs?, now? }', scheduler);
  }
  checkKeys(scheduler, ['budget', 'sliceMs', 'longScheduleMs', 'now'], 'scheduler');
  const now = scheduler.now === undefined ? monotonicClock : scheduler.now;
  if (typeof now !== 'function') throw new InvalidArgumentError('scheduler.now', 'a function returning milliseconds', now);
  return {
    name,
    clock,
    random: checkedRandom(random),
    logger,
    services,
    budget: positiveInt('scheduler.budget', scheduler.budget, 64),
    sliceMs: positiveNumber('scheduler.sliceMs', scheduler.sliceMs, 5),
    longScheduleMs: positiveNumber('scheduler.longScheduleMs', scheduler.longScheduleMs, 50),
    now: now === monotonicClock ? now : checkedNow(now),
    deterministic: isDeterministic(clock),
    longMailbox: longMailboxBounds(options.longMailbox),
  };
}

/**
 * `check(value)`, where reading the value may throw (a revoked proxy, a throwing getter): that is a
 * typed error naming the option and what reading it threw, never a raw TypeError.
 */
function readable<T>(argument: string, value: unknown, check: (value: unknown) => value is T): value is T {
  try {
    return check(value);
  } catch (e) {
    throw new InvalidArgumentError(argument, 'an option that can be read', value, `reading it threw ${thrownText(e)}`);
  }
}

function isClock(value: unknown): value is Clock {
  const c = value as Partial<Clock> | null;
  return typeof c === 'object' && c !== null && typeof c.now === 'function' && typeof c.setTimer === 'function' && typeof c.clearTimer === 'function';
}

function isLogger(value: unknown): value is Logger {
  const l = value as Partial<Logger> | null;
  return typeof l === 'object' && l !== null && typeof l.info === 'function' && typeof l.warn === 'function' && typeof l.error === 'function';
}

function positiveInt(argument: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < 1) throw new InvalidArgumentError(argument, 'a positive integer', value);
  return value as number;
}

function positiveNumber(argument: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new InvalidArgumentError(argument, 'a positive number', value);
  return value;
}

/**
 * The node's `random`: the injected generator, each value checked where it is drawn. A value outside
 * [0, 1] (NaN, say) is a typed error there, never a NaN delay that would corrupt a timer heap. (1 is
 * let through: a generator pinned at 1 is how a test asks for the longest jittered delay.)
 */
function checkedRandom(random: () => number): () => number {
  return () => {
    const r = random();
    if (typeof r !== 'number' || !(r >= 0 && r <= 1)) {
      throw new InvalidArgumentError('random()', "a number in [0, 1] (the node's injected random)", r);
    }
    return r;
  };
}

/**
 * An injected scheduler time source, each reading checked, and never going backwards. A reading that
 * throws or is not a finite number (NaN, a string) is the last one plus the real time elapsed since
 * the source broke: a frozen value would never end a slice, and the loop would never yield to the
 * event loop. When the source recovers, its readings go on from the last one given (an offset keeps
 * them from stepping back to where the source was).
 */
function checkedNow(now: () => number): () => number {
  let last = 0;
  let offset = 0;
  let brokenAt: number | undefined;
  let brokenFrom = 0;
  return () => {
    let t: unknown;
    try {
      t = now();
    } catch {
      t = undefined;
    }
    if (typeof t === 'number' && Number.isFinite(t)) {
      brokenAt = undefined;
      let out = t + offset;
      if (out < last) {
        offset += last - out;
        out = last;
      }
      return (last = out);
    }
    const real = monotonicClock();
    if (brokenAt === undefined) {
      brokenAt = real;
      brokenFrom = last;
    }
    return (last = brokenFrom + (real - brokenAt));
  };
}

/** The long-mailbox monitor's `[above, below]`; `[Infinity, -1]` when it is off. */
function longMailboxBounds(options: unknown): [number, number] {
  if (options === false) return [Infinity, -1];
  if (options === undefined) return [10_000, 1_000];
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('longMailbox', '{ above?, below? } or false', options);
  checkKeys(options, ['above', 'below'], 'longMailbox');
  const o = options as { above?: unknown; below?: unknown };
  const above = o.above ?? 10_000;
  if (!Number.isSafeInteger(above) || (above as number) < 1) throw new InvalidArgumentError('longMailbox.above', 'a positive integer', o.above);
  const below = o.below ?? Math.min(1_000, Math.floor((above as number) / 10));
  if (!Number.isSafeInteger(below) || (below as number) < 0 || (below as number) >= (above as number)) {
    throw new InvalidArgumentError('longMailbox.below', `an integer >= 0 and below longMailbox.above (${String(above)})`, o.below);
  }
  return [above as number, below as number];
}

// The two pieces of state a node shares with the other nodes of its OS process, on purpose: a
// default name unique in the process, and a creation no live node of the process holds.
let defaultNameSeq = 0;
const creationsInUse = new Set<number>();

/** @internal A default node name, unique in the OS process: `keel-1`, `keel-2`, ... */
export function defaultNodeName(): string {
  return `keel-${++defaultNameSeq}`;
}

/**
 * @internal A creation no live node of this OS process holds; drawn from `random` under a virtual
 * clock. A draw that is taken is followed by the next free one up (so a generator pinned to one
 * value, as a test pins it for the longest jittered delays, still gives each node its own creation).
 */
export function freshCreation(random: (() => number) | undefined): number {
  const MAX = 2 ** 30 - 1;
  // a small integer: V8 keeps it unboxed in every pid
  let c = random === undefined ? randomInt(1, 2 ** 30) : 1 + Math.floor(random() * (MAX - 1));
  while (creationsInUse.has(c)) c = c >= MAX ? 1 : c + 1;
  creationsInUse.add(c);
  return c;
}

/** @internal Gives a stopped node's creation back. */
export function releaseCreation(creation: number): void {
  creationsInUse.delete(creation);
}

const OVERFLOWS = ['reject', 'drop_newest', 'drop_oldest'] as const;

/** @internal A spawn's options, validated before anything is created (a taken name spawns nothing). */
export interface SpawnSettings {
  readonly capacity: number;
  readonly overflow: (typeof OVERFLOWS)[number];
  readonly name: string | undefined;
}

/**
 * @internal Validates a spawn's options; `checkFree` refuses a name that is taken (or no name) and
 * answers the registry's text for it.
 */
export function spawnSettings(options: SpawnOptions, checkFree: (name: unknown) => string): SpawnSettings {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a SpawnOptions object', options);
  checkKeys(options, ['name', 'mailbox'], 'options');
  // each option read once: what is checked is what is used (a getter may answer differently, or
  // throw, when read again); the name checked last: no user code (an option's getter) runs between
  // its check and its registration, so a name found free is still free when the process takes it
  const given = readOption(options, 'name', 'options');
  const mb = readOption(options, 'mailbox', 'options') as SpawnOptions['mailbox'];
  let capacity: unknown = Infinity;
  let overflow: unknown = 'reject';
  if (mb !== undefined) {
    if (typeof mb !== 'object' || mb === null) throw new InvalidArgumentError('mailbox', '{ capacity, overflow }', mb);
    checkKeys(mb, ['capacity', 'overflow'], 'mailbox');
    capacity = readOption(mb, 'capacity', 'mailbox');
    overflow = readOption(mb, 'overflow', 'mailbox');
    if (typeof capacity !== 'number' || !Number.isSafeInteger(capacity) || capacity < 1) {
      throw new InvalidArgumentError('mailbox.capacity', 'a positive integer', capacity);
    }
    if (!OVERFLOWS.includes(overflow as (typeof OVERFLOWS)[number])) {
      throw new InvalidArgumentError('mailbox.overflow', "'reject' | 'drop_newest' | 'drop_oldest'", overflow);
    }
  }
  const name = given === undefined ? undefined : checkFree(given);
  return { capacity: capacity as number, overflow: overflow as (typeof OVERFLOWS)[number], name };
}
