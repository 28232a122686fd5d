import { checkKeys, InvalidArgumentError, readKnownOptions } from '../../errors.js';
import { SEND_OPTIONS, type SendOptions, toSettings } from '../../delivery/sendSupervised.js';
import { checkStoreOption } from '../store/stores.js';
import type { AgentSchedulerOptions, MissedPolicy, PeriodicOptions, ScheduledSendOptions } from './types.js';

// @internal The AgentScheduler's checks at the door: before anything is sent.

const MISSED: readonly MissedPolicy[] = ['skip', 'catch_up'];

export function checkId(id: unknown): asserts id is string {
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a non-empty string', id);
}

/**
 * At least 1 ms, the resolution of the node's timers: an interval below the clock's resolution at
 * the current time (`now + intervalMs === now`) would never move a schedule's due time on, and under
 * a virtual clock its ticks would fire at one instant for ever. At most `Number.MAX_SAFE_INTEGER` ms
 * (285,000 years): a due time plus a jitter below the interval then stays a finite, exact number
 * (a larger finite interval and its jitter overflowed to Infinity, a delay no timer takes).
 */
export function checkInterval(ms: unknown): asserts ms is number {
  if (typeof ms !== 'number' || !(ms >= 1 && ms <= Number.MAX_SAFE_INTEGER)) {
    throw new InvalidArgumentError('intervalMs', 'a finite number of ms >= 1 and <= Number.MAX_SAFE_INTEGER', ms);
  }
}

export function periodicOptions(options: unknown, intervalMs: number): { jitter: number; missed: MissedPolicy } {
  if (options === undefined) return { jitter: 0, missed: 'skip' };
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ jitter?, missed? }', options);
  checkKeys(options, ['jitter', 'missed'], 'options');
  const { jitter = 0, missed = 'skip' } = options as PeriodicOptions;
  if (typeof jitter !== 'number' || !Number.isFinite(jitter) || jitter < 0 || jitter >= intervalMs) {
    throw new InvalidArgumentError('options.jitter', `a finite number of ms >= 0 and below intervalMs (${intervalMs})`, jitter);
  }
  if (!MISSED.includes(missed)) throw new InvalidArgumentError('options.missed', "'skip' | 'catch_up'", missed);
  return { jitter, missed };
}

export function validateOptions(options: unknown): AgentSchedulerOptions {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name?, sendOptions?, store? }', options);
  checkKeys(options, ['name', 'sendOptions', 'store'], 'options');
  const { name, sendOptions, store } = options as AgentSchedulerOptions;
  if (store !== undefined) checkStoreOption(store, 'options.store');
  const checked: AgentSchedulerOptions = {};
  if (name !== undefined) checked.name = name;
  if (store !== undefined) checked.store = store;
  if (sendOptions !== undefined) checked.sendOptions = sendOptionsOf(sendOptions);
  return checked;
}

/**
 * The send options, each read once into a plain copy (its metadata copied, its backoff made plain):
 * the copy is what is checked and what every delivery uses, so that a getter answering otherwise
 * when read again (at a registration, at a delivery) can put no signal of the caller's on a
 * delivery, make deliveries retry that the scheduler thought could not wait, or crash the scheduler.
 */
function sendOptionsOf(sendOptions: unknown): ScheduledSendOptions {
  if (typeof sendOptions !== 'object' || sendOptions === null) throw new InvalidArgumentError('options.sendOptions', 'a SendOptions object without id and signal', sendOptions);
  // a stray key or an option that throws when read is named as a send names it ('options.<key>')
  const read = readKnownOptions(sendOptions, SEND_OPTIONS, 'options') as Record<string, unknown>;
  for (const own of ['id', 'signal'] as const) {
    if (read[own] !== undefined) {
      throw new InvalidArgumentError(`options.sendOptions.${own}`, 'undefined', read[own], 'the scheduler sets it for every delivery');
    }
  }
  const copy: Record<string, unknown> = {};
  for (const key of SEND_OPTIONS) if (read[key] !== undefined) copy[key] = read[key];
  const settings = toSettings(copy as SendOptions); // throws on a bad send option
  if (copy.metadata !== undefined) copy.metadata = settings.metadata; // a plain copy, read once
  if (copy.backoff !== undefined) copy.backoff = settings.backoff; // plain numbers, read once
  return copy as ScheduledSendOptions;
}

/** A refused request as a value (a call answers it). */
export function refusal(check: () => void): Error | undefined {
  try {
    check();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e : new Error(String(e));
  }
}
