import { InvalidArgumentError, isKeelError, thrownText } from '../../errors.js';
import { readOption } from '../../errors/arguments.js';
import { DynamicSupervisor } from '../../otp/DynamicSupervisor.js';
import { GenServer } from '../../otp/GenServer.js';
import type { BroadcastOptions } from '../../delivery/broadcastSupervised.js';
import { type SendOptions, toSettings } from '../../delivery/sendSupervised.js';
import { checkTarget, isPid, nameOf, type Pid, type Target } from '../../runtime/Pid.js';
import { isAbortSignal } from '../../runtime/safe.js';
import type { Node } from '../../runtime/types.js';

/**
 * @internal What the coordination patterns share: argument checks, the reason a failed call is
 * reported under, managed monitors with their fallback, and stopping a component.
 */

/** Why a call to an agent got no answer, in the vocabulary of supervised send. */
export type CallFailure = 'noproc' | 'timeout' | 'process_down' | 'aborted' | 'mailbox_full' | 'deadlock';

/** A stable key for a pid (`node.id.creation`), to compare pids that are different objects. */
export function pidKey(pid: Pid): string {
  return `${pid.node}.${pid.id}.${pid.creation}`;
}

/** The key of a pid or a name, to find duplicates among targets. */
export function targetKey(target: Target): string {
  const name = nameOf(target);
  return name !== undefined ? `name:${name}` : `pid:${pidKey(target as Pid)}`;
}

/** The reason a rejected agent call is reported under; `undefined` for any other error. */
export function callFailure(error: unknown): CallFailure | undefined {
  if (isKeelError(error, 'ERR_NOPROC')) return 'noproc';
  if (isKeelError(error, 'ERR_CALL_TIMEOUT')) return 'timeout';
  if (isKeelError(error, 'ERR_CALL_EXIT')) return 'process_down';
  if (isKeelError(error, 'ERR_ABORTED')) return 'aborted';
  if (isKeelError(error, 'ERR_MAILBOX_FULL')) return 'mailbox_full';
  if (isKeelError(error, 'ERR_DEADLOCK')) return 'deadlock';
  return undefined;
}

/** Throws unless `value` is a plain object (not an array). */
export function checkObject(value: unknown, argument: string, expected: string): asserts value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || isArray(value, argument, expected)) throw new InvalidArgumentError(argument, expected, value);
}

/** `Array.isArray`, but a value it cannot inspect (a revoked proxy) is `ERR_INVALID_ARGUMENT` for `argument`, not a raw TypeError. */
export function isArray(value: unknown, argument: string, expected: string): value is unknown[] {
  try {
    return Array.isArray(value);
  } catch (e) {
    throw new InvalidArgumentError(argument, expected, value, `reading it threw ${thrownText(e)}`);
  }
}

/** `read()`, but what it throws (a getter, a proxy trap) is `ERR_INVALID_ARGUMENT` for `argument`. */
export function readArgument<T>(read: () => T, argument: string, expected: string, value: unknown): T {
  try {
    return read();
  } catch (e) {
    throw new InvalidArgumentError(argument, expected, value, `reading it threw ${thrownText(e)}`);
  }
}

/** Throws unless `value` is a Pid. */
export function checkPid(value: unknown, argument: string): asserts value is Pid {
  if (!isPid(value)) throw new InvalidArgumentError(argument, 'a Pid', value);
}

/**
 * A non-empty array of distinct Pids or names, answered as it was read and checked (each element read
 * once): use the copy, never the caller's list again. Given the node, a name registered there stands
 * for its process: a pid and its name listed both are one process twice (it would vote, be sent, take
 * work twice).
 */
export function readTargets(value: unknown, argument: string, node?: Node): Target[] {
  const expected = 'a non-empty array of Pids or names';
  const n = isArray(value, argument, expected) ? readArgument(() => value.length, argument, expected, value) : 0;
  if (n === 0) throw new InvalidArgumentError(argument, expected, value);
  const list = value as unknown[];
  const seen = new Map<string, number>();
  const copy: Target[] = [];
  // by index, not forEach: a hole in a sparse array is checked (as undefined), not skipped
  for (let i = 0; i < n; i++) {
    const t: unknown = readArgument(() => list[i], `${argument}[${i}]`, 'a Pid or name', list);
    checkTarget(t, `${argument}[${i}]`);
    const name = nameOf(t);
    const pid = name === undefined ? (t as Pid) : node?.registry.whereis(name);
    const key = pid === undefined ? targetKey(t) : `pid:${pidKey(pid)}`;
    const first = seen.get(key);
    if (first !== undefined) {
      const same = targetKey(t) === targetKey(copy[first]!) ? '' : ` (as \`${argument}[${first}]\`: the process ${String(pid)})`;
      throw new InvalidArgumentError(`${argument}[${i}]`, 'a Pid or name listed once', t, `it is listed twice in \`${argument}\`${same}`);
    }
    seen.set(key, i);
    copy.push(t);
  }
  return copy;
}

/** Throws unless `value` is a number of ms >= 0 or Infinity. */
export function checkTimeout(value: unknown, argument: string): asserts value is number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new InvalidArgumentError(argument, 'a number of ms >= 0 (or Infinity)', value);
}

/** Throws unless `value` is undefined or an AbortSignal. */
export function checkSignal(value: unknown, argument = 'options.signal'): asserts value is AbortSignal | undefined {
  if (value !== undefined && !isAbortSignal(value)) throw new InvalidArgumentError(argument, 'an AbortSignal', value);
}

/** Throws unless `value` is a positive safe integer. */
export function checkPositiveInteger(value: unknown, argument: string): asserts value is number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) throw new InvalidArgumentError(argument, 'a positive integer', value);
}

/**
 * A plain copy of an options object, each own key read once (a getter or proxy trap that throws is
 * `ERR_INVALID_ARGUMENT` naming the option), and a `{ quorum }` strategy copied with its quorum as
 * read: what is checked is what is used, whatever the caller's object does afterwards.
 */
export function snapshotOptions(options: object, argument = 'options'): Record<string, unknown> {
  const keys = readArgument(() => Object.keys(options), argument, 'an options object', options);
  const copy: Record<string, unknown> = {};
  for (const key of keys) copy[key] = readOption(options, key, argument);
  const strategy = copy.strategy;
  if (typeof strategy === 'object' && strategy !== null) {
    const at = `${argument}.strategy`;
    const shape = "'best_effort' | 'at_least_one' | 'all_or_nothing' | { quorum: n }";
    if (readArgument(() => 'quorum' in strategy, at, shape, strategy)) {
      copy.strategy = { quorum: readArgument(() => (strategy as { quorum: unknown }).quorum, `${at}.quorum`, 'a positive integer', strategy) };
    }
  }
  return copy;
}

/**
 * Checks broadcast options up front, as `broadcastSupervised` would (it reports them only as a
 * rejection), so that a pattern throws for them synchronously.
 */
export function checkBroadcastOptions(options: BroadcastOptions, targets: number, argument = 'options'): void {
  const { strategy, concurrency, ...send } = options;
  if (strategy !== undefined && strategy !== 'best_effort' && strategy !== 'at_least_one' && strategy !== 'all_or_nothing') {
    const quorum = typeof strategy === 'object' && strategy !== null ? (strategy as { quorum?: unknown }).quorum : undefined;
    if (quorum === undefined) throw new InvalidArgumentError(`${argument}.strategy`, "'best_effort' | 'at_least_one' | 'all_or_nothing' | { quorum: n }", strategy);
    if (typeof quorum !== 'number' || !Number.isSafeInteger(quorum) || quorum < 1 || quorum > targets) {
      throw new InvalidArgumentError(`${argument}.strategy.quorum`, `an integer from 1 to the number of targets (${targets})`, quorum);
    }
  }
  if (concurrency !== undefined) checkPositiveInteger(concurrency, `${argument}.concurrency`);
  const s = toSettings(send as SendOptions);
  if (s.onError === 'raise') throw new InvalidArgumentError(`${argument}.onError`, "'log' | 'dead_letter' | 'ignore' for a broadcast (its result reports every failure)", 'raise');
  if (strategy === 'all_or_nothing' && s.ack !== 'enqueued') {
    throw new InvalidArgumentError(`${argument}.ack`, "'enqueued' with strategy 'all_or_nothing' (an atomic step cannot wait for handlers)", s.ack);
  }
}

export { unwatch, watchProcess, type WatchRef } from '../internal/watch.js';

/**
 * Stops the component registered as `name`: under the node's `keel.agents` supervisor it is
 * terminated there (so it is not restarted); started from a process context, it is stopped with
 * `'normal'`. Resolves once it has exited; at once when it is not running.
 */
export async function stopComponent(node: Node, name: string): Promise<void> {
  const pid = node.registry.whereis(name);
  if (pid === undefined) return;
  if (node.registry.whereis('keel.agents') !== undefined) {
    const r = await DynamicSupervisor.terminateChild(node, 'keel.agents', pid);
    if (r === 'ok') return;
  }
  if (!node.isAlive(pid)) return;
  try {
    await GenServer.stop(node, pid, 'normal');
  } catch (e) {
    // it exited on its own meanwhile: stopped all the same
    if (!isKeelError(e, 'ERR_NOPROC') && !isKeelError(e, 'ERR_CALL_EXIT')) throw e;
  }
}

/** The longest delay a platform timer takes (a longer one would fire at once). */
const MAX_TIMER_MS = 2_147_483_647;

/**
 * Runs `fn` after `ms` on `node`'s clock (a delay past the platform's 32-bit limit is waited in
 * steps); answers the function that cancels it.
 */
export function afterMs(node: Node, ms: number, fn: () => void): () => void {
  const clock = node.clock;
  let left = ms;
  let handle: ReturnType<typeof clock.setTimer>;
  const arm = (): void => {
    const step = Math.min(left, MAX_TIMER_MS);
    left -= step;
    handle = clock.setTimer(step, () => (left > 0 ? arm() : fn()));
  };
  arm();
  return () => clock.clearTimer(handle);
}
