import { checkKeys, InvalidArgumentError, toError } from '../../errors.js';
import { checkTarget, isPid } from '../../runtime/Pid.js';
import type { CoordinationManagerOptions } from './types.js';

// The coordination manager's options, checked at the door, and the checks of a call that did not
// come through its handle.

/** @internal The checked options. */
export interface Settings {
  readonly ack: 'enqueued' | 'handled';
  readonly timeout: number;
  readonly failureThreshold: number;
  readonly resetAfterMs: number;
  readonly bufferCapacity: number;
  readonly onBufferFull: 'dead_letter' | 'reject';
}

const OPTIONS: readonly string[] = ['name', 'ack', 'timeout', 'failureThreshold', 'resetAfterMs', 'bufferCapacity', 'onBufferFull'];

export function toSettings(options: CoordinationManagerOptions | undefined): Settings {
  if (options === undefined) options = {};
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a CoordinationManagerOptions object', options);
  // a misspelt option is refused, never ignored, and options that cannot be read are a typed error
  checkKeys(options, OPTIONS, 'options');
  const ack = options.ack ?? 'handled';
  if (ack !== 'enqueued' && ack !== 'handled') throw new InvalidArgumentError('options.ack', "'enqueued' | 'handled'", options.ack);
  const timeout = options.timeout ?? 5000;
  if (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout <= 0) throw new InvalidArgumentError('options.timeout', 'a number of ms > 0 (or Infinity)', options.timeout);
  const failureThreshold = options.failureThreshold ?? 5;
  if (!Number.isSafeInteger(failureThreshold) || failureThreshold < 1) throw new InvalidArgumentError('options.failureThreshold', 'an integer >= 1', options.failureThreshold);
  const resetAfterMs = options.resetAfterMs ?? 1000;
  if (typeof resetAfterMs !== 'number' || !Number.isFinite(resetAfterMs) || resetAfterMs < 0) {
    throw new InvalidArgumentError('options.resetAfterMs', 'a finite number of ms >= 0', options.resetAfterMs);
  }
  const bufferCapacity = options.bufferCapacity ?? 100;
  if (!Number.isSafeInteger(bufferCapacity) || bufferCapacity < 0) throw new InvalidArgumentError('options.bufferCapacity', 'an integer >= 0', options.bufferCapacity);
  const onBufferFull = options.onBufferFull ?? 'dead_letter';
  if (onBufferFull !== 'dead_letter' && onBufferFull !== 'reject') throw new InvalidArgumentError('options.onBufferFull', "'dead_letter' | 'reject'", options.onBufferFull);
  return { ack, timeout, failureThreshold, resetAfterMs, bufferCapacity, onBufferFull };
}

/** A coordinate request that did not come through the handle and is malformed: the error to answer. */
export function badCoordinate(request: { sender: unknown; receiver: unknown; id: unknown }): Error | undefined {
  return refusal(() => {
    if (!isPid(request.sender)) throw new InvalidArgumentError('sender', 'a Pid', request.sender);
    checkTarget(request.receiver, 'receiver');
    if (typeof request.id !== 'string' || request.id === '') throw new InvalidArgumentError('id', 'a non-empty string', request.id);
  });
}

/** The typed error a check throws, as a value: a call answers it, and the manager keeps running. */
export function refusal(check: () => void): Error | undefined {
  try {
    check();
    return undefined;
  } catch (e) {
    return toError(e);
  }
}

