// Reading a state machine's callback results and spec: each field read once, guarded, so that what
// cannot be read (a revoked proxy, a getter that throws) is ERR_INVALID_ARGUMENT naming it, and what
// is checked is what is used.
import { InvalidArgumentError, readOption, thrownText } from '../../errors.js';
import { isExitReason } from '../../runtime/messages.js';
import { validateTimeout } from './calls.js';
import type { TimeoutKind } from './statemSpec.js';
import { refuseMisspelt } from './misspelt.js';

/** The results' kinds. */
export const NEXT = 0;
export const KEEP = 1;
export const REPEAT = 2;
export const STOP = 3;

/** A callback's result as read: each field once. */
export interface ResultRead {
  readonly kind: number;
  readonly nextState: unknown;
  readonly stop: unknown;
  readonly hasData: boolean;
  readonly data: unknown;
  readonly actions: unknown;
}

/** Reads a callback's result, each field once (`stop`, else `nextState`, else `keepState`, else `repeatState`). */
export function readResult(res: unknown, enter: boolean): ResultRead {
  const argument = enter ? 'state enter result' : 'state callback result';
  if (typeof res === 'object' && res !== null) {
    // every field read once, in one guarded block, each read a named one of its own site (a helper's
    // keyed read shared by every field was megamorphic: a third of a call's time); `reading` names the
    // field for the error when a read throws
    const o = res as { stop?: unknown; nextState?: unknown; keepState?: unknown; repeatState?: unknown; data?: unknown; actions?: unknown };
    let kind = -1;
    let nextState: unknown;
    let stop: unknown;
    let hasData = false;
    let data: unknown;
    let actions: unknown;
    let reading = 'stop';
    try {
      if ('stop' in o) {
        stop = o.stop;
        kind = STOP;
      } else {
        reading = 'nextState';
        if ('nextState' in o) {
          nextState = o.nextState;
          kind = NEXT;
        } else {
          reading = 'keepState';
          if (o.keepState === true) kind = KEEP;
          else {
            reading = 'repeatState';
            if (o.repeatState === true) kind = REPEAT;
          }
        }
      }
      if (kind !== -1) {
        reading = 'data';
        hasData = 'data' in o;
        if (hasData) data = o.data;
        reading = 'actions';
        actions = o.actions;
      }
    } catch (e) {
      throw unreadable(res, argument, reading, e);
    }
    if (kind === STOP && !isExitReason(stop)) throw new InvalidArgumentError('stop', "an exit reason ('normal', 'shutdown', { shutdown }, an Error, ...)", stop);
    if (kind !== -1) return { kind, nextState, stop, hasData, data, actions };
  }
  throw new InvalidArgumentError(
    argument,
    '{ nextState, data?, actions? } | { keepState: true, ... } | { repeatState: true, ... } | { stop, data?, actions? }',
    res,
  );
}

/** `o[key]`, read once; a getter or a proxy trap that throws is ERR_INVALID_ARGUMENT naming it (`where` a number: the action at that index). */
export function field(o: object, key: string, where: string | number): unknown {
  try {
    return (o as Record<string, unknown>)[key];
  } catch (e) {
    throw unreadable(o, where, key, e);
  }
}

/** `key in o`, guarded as {@link field}. */
export function has(o: object, key: string, where: string): boolean {
  try {
    return key in o;
  } catch (e) {
    throw unreadable(o, where, key, e);
  }
}

export function unreadable(value: unknown, where: string | number, key: string | undefined, e: unknown): InvalidArgumentError {
  const at = typeof where === 'number' ? `actions[${where}]` : where;
  return new InvalidArgumentError(key === undefined ? at : `${at}.${key}`, 'a value that can be read', value, `reading it threw ${thrownText(e)}`);
}

/** A timeout action as read, each field once (a getter may answer differently when read again). */
export interface TimeoutAction {
  readonly type: TimeoutKind;
  readonly name: string;
  readonly ms: number;
  readonly content: unknown;
  readonly cancel: boolean;
}

/** Reads a timeout action's fields once and checks them: what is checked is what is used. */
export function readTimeout(a: object, type: TimeoutKind, i: number): TimeoutAction {
  const name = type === 'generic_timeout' ? field(a, 'name', i) : '';
  if (typeof name !== 'string') throw new InvalidArgumentError('generic_timeout name', 'a string', name);
  const ms = field(a, 'ms', i);
  const content = field(a, 'content', i);
  const cancel = field(a, 'cancel', i) === true;
  if (!cancel) validateTimeout(ms, `${type} ms`);
  return { type, name, ms: ms as number, content, cancel };
}

/** gen_statem's callback mode, read once at the start: a spec changed afterwards changes no machine running. */
export interface CallbackMode {
  readonly handleEvent: boolean;
  readonly stateEnter: boolean;
}

/** The keys of a StateMachine spec. */
const SPEC_KEYS: readonly string[] = ['init', 'handleEvent', 'states', 'stateEnter', 'terminate', 'formatStatus'];

export function validateSpec(spec: unknown): CallbackMode {
  // each read guarded: a spec that cannot be read (a revoked proxy, a getter that throws) is named
  if (typeof spec !== 'object' || spec === null || typeof readOption(spec, 'init', 'spec') !== 'function') {
    if (typeof spec === 'object' && spec !== null) refuseMisspelt(spec, SPEC_KEYS, SPEC_KEYS, 'a StateMachine spec', 'key');
    throw new InvalidArgumentError('spec', 'a StateMachine spec with an init(arg, ctx) function', spec);
  }
  const handleEvent = readOption(spec, 'handleEvent', 'spec');
  const states = readOption(spec, 'states', 'spec');
  const mode = (typeof handleEvent === 'function' ? 1 : 0) + (typeof states === 'object' && states !== null ? 1 : 0);
  // a misspelt key is said before what its absence breaks; a key near the mode not chosen (`state`
  // beside handleEvent) is the spec's own business
  refuseMisspelt(spec, SPEC_KEYS, mode === 0 ? SPEC_KEYS : SPEC_KEYS.filter((k) => k !== 'handleEvent' && k !== 'states'), 'a StateMachine spec', 'key');
  if (mode !== 1 || (handleEvent !== undefined && typeof handleEvent !== 'function')) {
    throw new InvalidArgumentError('spec', 'a StateMachine spec with either handleEvent(event, state, data, ctx) or states: { [state]: (event, data, ctx) => … }', spec);
  }
  for (const cb of ['terminate', 'formatStatus'] as const) {
    const f = readOption(spec, cb, 'spec');
    if (f !== undefined && typeof f !== 'function') throw new InvalidArgumentError(`spec.${cb}`, 'a function or undefined', f);
  }
  const stateEnter = readOption(spec, 'stateEnter', 'spec');
  if (stateEnter !== undefined && typeof stateEnter !== 'boolean') throw new InvalidArgumentError('spec.stateEnter', 'a boolean or undefined', stateEnter);
  return { handleEvent: typeof handleEvent === 'function', stateEnter: stateEnter === true };
}
