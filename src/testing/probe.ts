import { FishTimeoutError, InvalidArgumentError, ProcessExitedError, readKnownOptions, ReceiveTimeoutError, UnexpectedMessageError } from '../errors.js';
import { isExit, type SystemMessage } from '../runtime/messages.js';
import type { Pid } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { liveProc } from '../runtime/Pid.js';
import { kernelOf } from '../runtime/kernel.js';
import { types } from 'node:util';

/** The context of a process just spawned (a process record is its own context). */
function contextOf<M>(pid: Pid<M>): Context<M> {
  const proc = liveProc(pid);
  if (proc === undefined) throw new Error('probe: the process exited as it was spawned');
  return proc as unknown as Context<M>;
}

/** A test process: a pid to send to, plus what it received. */
export type Probe<M = unknown> = Pid<M> & {
  /** Every message received, in order (also those already taken by `receive`). */
  readonly messages: readonly (M | SystemMessage)[];
  /** The probe's own context, to link, monitor, trap exits or send from the probe. */
  readonly ctx: Context<M>;
  /**
   * Takes the first message not yet taken that matches `predicate`, waiting for it if needed.
   * `timeout` (ms, default 2000, at most 2^31 - 1; any other option is refused) is a failure guard: it rejects with `ERR_RECEIVE_TIMEOUT`
   * (a `ReceiveTimeoutError` whose `expected` names the predicate, by its name or source, and whose
   * `unmatched` holds the messages received and not taken, also shown in its message). It runs
   * on real time, or on the node's virtual time under a `SimulatedClock` (with a real-time guard behind it).
   * A predicate that throws rejects this receive with its error; the probe and the message stay.
   * The probe's death rejects a waiting receive with `ERR_PROCESS_EXITED`, and so a later one that
   * no message it got before matches.
   */
  receive(predicate?: (message: M | SystemMessage) => boolean, options?: { timeout?: number }): Promise<M | SystemMessage>;
  /**
   * Resolves once `within` ms (default 100, as ExUnit's `refute_receive` and Akka's
   * `expectNoMessage`; 0 to 2^31 - 1; any other option is refused) have passed with no message
   * (none `match` accepts, when given) received and not taken: one already there counts, as one
   * arriving. Else rejects with `ERR_UNEXPECTED_MESSAGE` (an `UnexpectedMessageError` whose
   * `received` is the first such message, also shown in its message). It takes no message: every
   * message, matching or not, stays for a later `receive`. Its window runs on the clock a receive's
   * timeout runs on: real time, or the node's virtual time under a `SimulatedClock` (so there it
   * costs no real time). A `match` that throws rejects it with its error. The probe's death rejects
   * it with `ERR_PROCESS_EXITED` (a dead probe gets no message: "none came" would hide the death).
   */
  expectNoMessage(options?: { within?: number; match?: (message: M | SystemMessage) => boolean }): Promise<void>;
  /**
   * Takes messages in order, oldest first (those already received and not taken, then those
   * arriving), discarding each that `predicate` refuses, as Akka's `fishForMessage`, and resolves
   * with the first it accepts. `timeout` is a receive's (default 2000 ms, on the same clock): it
   * rejects with `ERR_RECEIVE_TIMEOUT` (a `FishTimeoutError` whose `skipped` counts the messages
   * discarded and `lastSkipped` is the last). A predicate that throws rejects it with its error:
   * that message and the later ones stay, the ones skipped before it are gone. The probe's death
   * rejects it with `ERR_PROCESS_EXITED`. Discarded messages stay in `messages`.
   */
  fishForMessage(predicate: (message: M | SystemMessage) => boolean, options?: { timeout?: number }): Promise<M | SystemMessage>;
};

/** The longest failure guard: a host timer's range (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMEOUT = 2 ** 31 - 1;

/** The predicate of a receive given none. */
const anyMessage = (): boolean => true;

/** `expectNoMessage`'s default window (ms): ExUnit's `refute_receive` and Akka's `expect-no-message-default`. */
const NO_MESSAGE_WINDOW = 100;

/** Reads a timeout or window option: a number of ms a host timer takes (past 2^31 - 1 ms Node fires it after 1 ms). */
function milliseconds(name: string, value: unknown, fallback: number): number {
  const ms = value ?? fallback;
  if (typeof ms !== 'number' || !(ms >= 0 && ms <= MAX_TIMEOUT)) {
    throw new InvalidArgumentError(name, `a number of milliseconds from 0 to ${MAX_TIMEOUT}`, ms);
  }
  return ms;
}

/**
 * What a receive waits for, as its timeout error says: the predicate's name, else its source text
 * (on one line, at most 100 characters). Runs none of its code.
 */
function expectedOf(predicate: (message: never) => boolean): string {
  if (predicate === anyMessage) return '(any message)';
  try {
    if (types.isProxy(predicate)) return 'a predicate';
    const name = Object.getOwnPropertyDescriptor(predicate, 'name')?.value as unknown;
    if (typeof name === 'string' && name !== '') return name;
    const source = Function.prototype.toString.call(predicate).replace(/\s+/g, ' ');
    return source.length > 100 ? `${source.slice(0, 97)}...` : source;
  } catch {
    return 'a predicate';
  }
}

interface Waiter {
  readonly predicate: (message: unknown) => boolean;
  readonly resolve: (message: unknown) => void;
  readonly reject: (error: unknown) => void;
  /** A fishForMessage's: takes (discards) a message the predicate refused, where a receive leaves it. */
  readonly skip?: (message: unknown) => void;
}

/** An expectNoMessage waiting: it sees each message arrive, and takes none. */
interface Watcher {
  readonly match: (message: unknown) => boolean;
  /** A message matched, or `match` threw (the watch is over either way). */
  readonly fail: (error: unknown) => void;
  readonly unexpected: (message: unknown) => unknown;
}

/**
 * Spawns a probe process on `node`.
 *
 * @example
 * ```ts
 * const p = probe(node);
 * const ref = p.ctx.monitor(worker);
 * node.exit(worker, 'kill');
 * const down = await p.receive(isDown);
 * ```
 */
export function probe<M = unknown>(node: Node): Probe<M> {
  const messages: unknown[] = [];
  const untaken: unknown[] = [];
  const waiters = new Set<Waiter>();
  const watchers = new Set<Watcher>();
  const kernel = kernelOf(node, 'node');
  const pid = kernel.spawn<M>((ctx) => {
    return (message) => {
      messages.push(message);
      watch(message);
      offer(message);
      // a probe that traps exits still obeys the node's shutdown (once a receive waiting for this
      // Exit has it: its exit rejects the receives still waiting)
      if (isExit(message) && message.from === 'node' && kernel.stopping) ctx.exit(message.reason);
    };
  });
  /** Hands `message` to the earliest waiting receive that matches it, else keeps it for a later one. */
  const offer = (message: unknown): void => {
    for (const w of waiters) {
      let matched: boolean;
      try {
        matched = w.predicate(message);
      } catch (error) {
        // the predicate's failure is that receive's, never the probe's: the probe lives on and
        // the message stays for the next receive
        waiters.delete(w);
        w.reject(error);
        continue;
      }
      if (matched) {
        waiters.delete(w);
        w.resolve(message);
        return;
      }
      // a fishForMessage waiting takes (discards) every message no waiter before it took: the
      // waiters after it never see that message
      if (w.skip !== undefined) {
        w.skip(message);
        return;
      }
    }
    untaken.push(message);
  };
  /** Shows `message` to every expectNoMessage waiting: one it matches fails (and stops watching). */
  const watch = (message: unknown): void => {
    for (const w of watchers) {
      let matched: boolean;
      try {
        matched = w.match(message);
      } catch (error) {
        watchers.delete(w);
        w.fail(error);
        continue;
      }
      if (matched) {
        watchers.delete(w);
        w.fail(w.unexpected(message));
      }
    }
  };
  // a dead probe gets nothing more: a receive waiting then would wait out its whole timeout and
  // then say no message came, hiding the death
  let dead = false;
  const died = (): void => {
    dead = true;
    // (a waiter with `skip` is a fishForMessage's: its error names it, as on a probe already dead)
    for (const w of waiters) w.reject(new ProcessExitedError(String(pid), w.skip === undefined ? 'receive' : 'fishForMessage'));
    waiters.clear();
    for (const w of watchers) w.fail(new ProcessExitedError(String(pid), 'expectNoMessage'));
    watchers.clear();
  };
  if (kernel.onExit(pid, died) === undefined) died();
  const receive = (predicate: (message: unknown) => boolean = anyMessage, options: { timeout?: number } = {}): Promise<unknown> => {
    if (typeof predicate !== 'function') throw new InvalidArgumentError('predicate', 'a function', predicate);
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { timeout? }', options);
    // read once, a misspelt key refused: `{ timeoutMs }` (Keel's name elsewhere) waited out the default 2 s
    const timeout = milliseconds('timeout', readKnownOptions(options, ['timeout']).timeout, 2000);
    let i: number;
    try {
      i = untaken.findIndex((m) => predicate(m));
    } catch (error) {
      return Promise.reject(error);
    }
    if (i >= 0) return Promise.resolve(untaken.splice(i, 1)[0]);
    if (dead) return Promise.reject(new ProcessExitedError(String(pid), 'receive'));
    return new Promise((resolve, reject) => {
      // on the node's virtual time under a SimulatedClock (which would otherwise race on while a
      // real-time guard ran, to another virtual time at each run), else on real time
      const guard = kernel.guard(() => {
        waiters.delete(waiter);
        reject(new ReceiveTimeoutError(String(pid), timeout, expectedOf(predicate), [...untaken]));
      }, timeout);
      const waiter: Waiter = {
        predicate,
        resolve: (m) => {
          guard.clear();
          resolve(m);
        },
        reject: (error) => {
          guard.clear();
          reject(error);
        },
      };
      waiters.add(waiter);
    });
  };
  const expectNoMessage = (options: { within?: number; match?: (message: unknown) => boolean } = {}): Promise<void> => {
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { within?, match? }', options);
    const o = readKnownOptions(options, ['within', 'match']);
    const within = milliseconds('within', o.within, NO_MESSAGE_WINDOW);
    // undefined is no match given; null is no function
    const match = (o.match === undefined ? anyMessage : o.match) as (message: unknown) => boolean;
    if (typeof match !== 'function') throw new InvalidArgumentError('match', 'a function', match);
    const unexpected = (message: unknown, waiting: boolean): UnexpectedMessageError =>
      new UnexpectedMessageError(String(pid), within, expectedOf(match), message, waiting);
    // a message received and not taken counts as one arriving: it is in the probe's queue now
    let there: { message: unknown } | undefined;
    try {
      for (const m of untaken) {
        if (match(m)) {
          there = { message: m };
          break;
        }
      }
    } catch (error) {
      return Promise.reject(error);
    }
    if (there !== undefined) return Promise.reject(unexpected(there.message, false));
    if (dead) return Promise.reject(new ProcessExitedError(String(pid), 'expectNoMessage'));
    return new Promise((resolve, reject) => {
      const guard = kernel.guard(() => {
        watchers.delete(watcher);
        resolve();
      }, within);
      const watcher: Watcher = {
        match,
        fail: (error) => {
          guard.clear();
          reject(error);
        },
        unexpected: (m) => unexpected(m, true),
      };
      watchers.add(watcher);
    });
  };
  const fishForMessage = (predicate: (message: unknown) => boolean, options: { timeout?: number } = {}): Promise<unknown> => {
    if (typeof predicate !== 'function') throw new InvalidArgumentError('predicate', 'a function', predicate);
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { timeout? }', options);
    const timeout = milliseconds('timeout', readKnownOptions(options, ['timeout']).timeout, 2000);
    let skipped = 0;
    let lastSkipped: unknown;
    // the messages already there, oldest first: each refused is discarded, as one arriving later
    let i = 0;
    try {
      for (; i < untaken.length; i++) {
        if (predicate(untaken[i])) {
          const [found] = untaken.splice(0, i + 1).slice(-1);
          return Promise.resolve(found);
        }
        skipped++;
        lastSkipped = untaken[i];
      }
    } catch (error) {
      // the ones refused before it are gone; it and the later ones stay, as a receive leaves them
      untaken.splice(0, i);
      return Promise.reject(error);
    }
    untaken.length = 0;
    if (dead) return Promise.reject(new ProcessExitedError(String(pid), 'fishForMessage'));
    return new Promise((resolve, reject) => {
      const guard = kernel.guard(() => {
        waiters.delete(waiter);
        reject(new FishTimeoutError(String(pid), timeout, expectedOf(predicate), [...untaken], skipped, lastSkipped));
      }, timeout);
      const waiter: Waiter = {
        predicate,
        resolve: (m) => {
          guard.clear();
          resolve(m);
        },
        reject: (error) => {
          guard.clear();
          reject(error);
        },
        skip: (m) => {
          skipped++;
          lastSkipped = m;
        },
      };
      waiters.add(waiter);
    });
  };
  Object.defineProperties(pid, {
    messages: { value: messages, enumerable: false },
    ctx: { value: contextOf(pid), enumerable: false },
    receive: { value: receive, enumerable: false },
    expectNoMessage: { value: expectNoMessage, enumerable: false },
    fishForMessage: { value: fishForMessage, enumerable: false },
  });
  return pid as Probe<M>;
}
