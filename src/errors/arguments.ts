/**
 * Errors of what Keel is given and needs: a bad argument, an unknown option (and the checks of an
 * options object that throw them), a missing optional peer dependency.
 */
import { types } from 'node:util';
import { nearMiss } from '../nearMiss.js';
import { describe, KeelError, thrownText } from './base.js';

/** A bad argument: the message says what was expected and what was given. */
export class InvalidArgumentError extends KeelError {
  /** The name of the argument or option that was wrong. */
  readonly argument: string;
  constructor(argument: string, expected: string, given: unknown, hint?: string) {
    super(
      'ERR_INVALID_ARGUMENT',
      `expected \`${argument}\` to be ${expected}, got ${describe(given)}${hint === undefined ? '' : `; ${hint}`}`,
    );
    this.argument = argument;
  }
}

/**
 * A feature needs optional peer dependencies that are not installed: the message names every one
 * missing and the one command that installs them all (`install`: `npm install` by default,
 * `npm install -D` for a development tool such as `keel audit`).
 */
export class MissingPeerError extends KeelError {
  /** The peers that are missing. */
  readonly peers: readonly string[];
  constructor(peer: string | readonly string[], feature: string, install = 'npm install') {
    const peers = typeof peer === 'string' ? [peer] : [...peer];
    const quoted = peers.map((p) => `'${p}'`);
    const named = peers.length === 1 ? `the optional peer dependency ${quoted[0]!}` : `the optional peer dependencies ${quoted.slice(0, -1).join(', ')} and ${quoted.at(-1)!}`;
    super('ERR_PEER_MISSING', `${feature} needs ${named}: ${install} ${peers.join(' ')}`);
    this.peers = peers;
  }
}

/**
 * Throws `ERR_INVALID_ARGUMENT` for an own key of an options object that is not one of `known` (and
 * is not `undefined`, which sets nothing): a misspelt option is an error, never silently ignored.
 * An options object that cannot be read (a getter that throws, a proxy whose traps throw, a revoked
 * proxy) is this typed error too, not a raw one further on: every enumerable option is read here,
 * and a proxy's or a class instance's known options as well (they may be getters the enumeration
 * does not see). A non-enumerable throwing getter on a plain object is the one case not read here.
 */
export function checkKeys(options: object, known: readonly string[], argument: string): void {
  scanOptions(options, known, argument, true);
}

/**
 * The stray-key half of {@link checkKeys}, for a caller on a hot path that reads every known option
 * itself inside a guard of its own (and turns what that read throws into `ERR_INVALID_ARGUMENT`):
 * an unknown key is refused as checkKeys refuses it, but known options are not read here.
 */
export function checkStrayKeys(options: object, known: readonly string[], argument: string): void {
  scanOptions(options, known, argument, false);
}

/**
 * @internal The known options of `options`, each read once (a getter or proxy trap that throws is
 * `ERR_INVALID_ARGUMENT` naming the option) after a misspelt key is refused as `checkKeys` refuses
 * it: check and use the copy, so that a getter answering something else the second time is never read again.
 */
export function readKnownOptions<K extends string>(options: object, known: readonly K[], argument = 'options'): Partial<Record<K, unknown>> {
  checkStrayKeys(options, known, argument);
  const copy: Partial<Record<K, unknown>> = {};
  for (const key of known) copy[key] = readOption(options, key, argument);
  return copy;
}

/** @internal Reads one option once; a getter that throws is a typed error naming the option. */
export function readOption(options: object, key: string, argument: string): unknown {
  try {
    return (options as Record<string, unknown>)[key];
  } catch (e) {
    throw new InvalidArgumentError(`${argument}.${key}`, 'an option that can be read', options, `reading it threw ${thrownText(e)}`);
  }
}

function scanOptions(options: object, known: readonly string[], argument: string, readKnown: boolean): void {
  const o = options as Record<string, unknown>;
  // the key being read; its text (`${argument}.${key}`) is made only when reading it throws
  let reading: string | undefined;
  let stray: string | undefined;
  let value: unknown;
  try {
    for (const key in o) {
      const isKnown = known.includes(key);
      if (isKnown && !readKnown) continue;
      reading = key;
      value = o[key];
      if (!isKnown && value !== undefined && Object.hasOwn(o, key)) {
        stray = key;
        break;
      }
    }
    if (readKnown && stray === undefined && !isPlainObject(o)) {
      for (const key of known) {
        reading = key;
        void o[key];
      }
    }
  } catch (e) {
    throw new InvalidArgumentError(reading === undefined ? argument : `${argument}.${reading}`, 'an option that can be read', options, `reading it threw ${thrownText(e)}`);
  }
  if (stray !== undefined) throw new UnknownOptionError(argument, stray, known, value);
}

/**
 * An options object's key that is none of its options (a misspelt one): `ERR_INVALID_ARGUMENT`,
 * `argument` naming the key (`options.nmae`). The message lists the options there are and, when one
 * is a near miss (a letter off, swapped or another case), names it as the one likely meant.
 */
export class UnknownOptionError extends InvalidArgumentError {
  constructor(argument: string, key: string, known: readonly string[], given: unknown) {
    super(`${argument}.${key}`, 'an option', given);
    const meant = nearMiss(key, known);
    this.message =
      `\`${argument}.${key}\`: no such option (${argument} takes ${known.join(', ')}), got ${describe(given)}` +
      (meant === undefined ? '' : `; did you mean \`${meant}\`?`);
  }
}

function isPlainObject(o: object): boolean {
  if (types.isProxy(o)) return false;
  const proto: unknown = Object.getPrototypeOf(o);
  return proto === Object.prototype || proto === null;
}
