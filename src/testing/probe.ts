import { InvalidArgumentError, ProcessExitedError, readKnownOptions, ReceiveTimeoutError } from '../errors.js';
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
};

/** The longest failure guard: a host timer's range (2^31 - 1 ms, about 24.8 days). */
const MAX_TIMEOUT = 2 ** 31 - 1;

/** The predicate of a receive given none. */
const anyMessage = (): boolean => true;

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
  const kernel = kernelOf(node, 'node');
  const pid = kernel.spawn<M>((ctx) => {
    return (message) => {
      messages.push(message);
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
    }
    untaken.push(message);
  };
  // a dead probe gets nothing more: a receive waiting then would wait out its whole timeout and
  // then say no message came, hiding the death
  let dead = false;
  const died = (): void => {
    dead = true;
    for (const w of waiters) w.reject(new ProcessExitedError(String(pid), 'receive'));
    waiters.clear();
  };
  if (kernel.onExit(pid, died) === undefined) died();
  const receive = (predicate: (message: unknown) => boolean = anyMessage, options: { timeout?: number } = {}): Promise<unknown> => {
    if (typeof predicate !== 'function') throw new InvalidArgumentError('predicate', 'a function', predicate);
    if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object { timeout? }', options);
    // read once, a misspelt key refused: `{ timeoutMs }` (Keel's name elsewhere) waited out the default 2 s
    const timeout = readKnownOptions(options, ['timeout']).timeout ?? 2000;
    // at most what a host timer takes: past 2^31 - 1 ms Node fires it after 1 ms
    if (typeof timeout !== 'number' || !(timeout >= 0 && timeout <= MAX_TIMEOUT)) {
      throw new InvalidArgumentError('timeout', `a number of milliseconds from 0 to ${MAX_TIMEOUT}`, timeout);
    }
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
  Object.defineProperties(pid, {
    messages: { value: messages, enumerable: false },
    ctx: { value: contextOf(pid), enumerable: false },
    receive: { value: receive, enumerable: false },
  });
  return pid as Probe<M>;
}
