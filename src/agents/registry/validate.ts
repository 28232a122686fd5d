import { types } from 'node:util';
import { InvalidArgumentError } from '../../errors.js';
import type { AgentHealth, AgentMetaInput, AgentRegistryOptions, AgentWhere } from './types.js';

/** Limits on what one registration may hold (a hostile or buggy agent cannot blow up the index). */
export const MAX_LIST = 256;
export const MAX_TEXT = 256;
export const MAX_KEY = 1024;
export const MAX_MISSED = 1000;

/**
 * The own data properties of `value`, read without running any code of its (no getter is called, a
 * proxy is refused before anything is read): anything else is a typed error naming `argument`.
 */
function plainFields(value: unknown, argument: string, known: readonly string[], expected: string): Map<string, unknown> {
  if (typeof value !== 'object' || value === null || types.isProxy(value) || Array.isArray(value)) {
    throw new InvalidArgumentError(argument, expected, value);
  }
  const out = new Map<string, unknown>();
  // own enumerable string keys (no code of the object runs), then each one's descriptor
  for (const key of Object.keys(value)) {
    const d = Object.getOwnPropertyDescriptor(value, key)!;
    if (!known.includes(key)) throw new InvalidArgumentError(`${argument}.${key}`, `absent (${argument} takes ${known.join(', ')})`, 'value' in d ? d.value : '(a getter)');
    if (!('value' in d)) throw new InvalidArgumentError(`${argument}.${key}`, 'a plain data property', '(a getter)');
    if (d.value !== undefined) out.set(key, d.value);
  }
  return out;
}

/** A non-empty string of at most `max` characters. */
export function text(value: unknown, argument: string, max = MAX_TEXT): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > max) throw new InvalidArgumentError(argument, `a non-empty string of at most ${max} characters`, value);
  return value;
}

/** A list of non-empty strings, at most {@link MAX_LIST}, deduplicated (order kept), frozen. */
function textList(value: unknown, argument: string): readonly string[] {
  if (types.isProxy(value) || !Array.isArray(value)) throw new InvalidArgumentError(argument, `an array of at most ${MAX_LIST} strings`, value);
  if (value.length > MAX_LIST) throw new InvalidArgumentError(argument, `an array of at most ${MAX_LIST} strings`, `an array of ${value.length}`);
  const seen = new Set<string>();
  for (let i = 0; i < value.length; i++) {
    const d = Object.getOwnPropertyDescriptor(value, i);
    if (d === undefined || !('value' in d)) throw new InvalidArgumentError(`${argument}[${i}]`, 'a string (a plain array element)', d === undefined ? undefined : '(a getter)');
    seen.add(text(d.value, `${argument}[${i}]`));
  }
  return Object.freeze([...seen]);
}

function health(value: unknown, argument: string): AgentHealth {
  if (value !== 'healthy' && value !== 'unhealthy') throw new InvalidArgumentError(argument, "'healthy' | 'unhealthy'", value);
  return value;
}

function load(value: unknown, argument: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new InvalidArgumentError(argument, 'a finite number ≥ 0', value);
  return value;
}

/** A validated, detached copy of metadata: only the fields given. */
export interface MetaPatch {
  capabilities?: readonly string[];
  kinds?: readonly string[];
  team?: string;
  role?: string;
  load?: number;
  status?: AgentHealth;
}

const META_FIELDS = ['capabilities', 'kinds', 'team', 'role', 'load', 'status'] as const;

export function readMeta(value: unknown, argument = 'meta'): MetaPatch {
  if (value === undefined) return {};
  const f = plainFields(value, argument, META_FIELDS, '{ capabilities?, kinds?, team?, role?, load?, status? }');
  const out: MetaPatch = {};
  if (f.has('capabilities')) out.capabilities = textList(f.get('capabilities'), `${argument}.capabilities`);
  if (f.has('kinds')) out.kinds = textList(f.get('kinds'), `${argument}.kinds`);
  if (f.has('team')) out.team = text(f.get('team'), `${argument}.team`);
  if (f.has('role')) out.role = text(f.get('role'), `${argument}.role`);
  if (f.has('load')) out.load = load(f.get('load'), `${argument}.load`);
  if (f.has('status')) out.status = health(f.get('status'), `${argument}.status`);
  return out;
}

export function readBeat(value: unknown): MetaPatch {
  if (value === undefined) return {};
  const f = plainFields(value, 'beat', ['load', 'status'], '{ load?, status? }');
  const out: MetaPatch = {};
  if (f.has('load')) out.load = load(f.get('load'), 'beat.load');
  if (f.has('status')) out.status = health(f.get('status'), 'beat.status');
  return out;
}

/** A validated query: the capabilities it requires (deduplicated), the other fields as given. */
export interface Where {
  readonly capabilities: readonly string[];
  readonly kind: string | undefined;
  readonly team: string | undefined;
  readonly role: string | undefined;
  readonly health: AgentHealth | 'any';
  readonly limit: number;
}

const WHERE_FIELDS = ['capability', 'capabilities', 'kind', 'team', 'role', 'health', 'limit'] as const;
const EVERYTHING: Where = Object.freeze({ capabilities: Object.freeze([]), kind: undefined, team: undefined, role: undefined, health: 'healthy', limit: Infinity });

export function readWhere(value: unknown, argument = 'where'): Where {
  if (value === undefined) return EVERYTHING;
  const f = plainFields(value, argument, WHERE_FIELDS, '{ capability?, capabilities?, kind?, team?, role?, health?, limit? }');
  let capabilities = f.has('capabilities') ? textList(f.get('capabilities'), `${argument}.capabilities`) : [];
  if (f.has('capability')) {
    const c = text(f.get('capability'), `${argument}.capability`);
    if (!capabilities.includes(c)) capabilities = [c, ...capabilities];
  }
  const h = f.get('health') ?? 'healthy';
  if (h !== 'healthy' && h !== 'unhealthy' && h !== 'any') throw new InvalidArgumentError(`${argument}.health`, "'healthy' | 'unhealthy' | 'any'", h);
  const limit = f.get('limit') ?? Infinity;
  if (limit !== Infinity && (typeof limit !== 'number' || !Number.isSafeInteger(limit) || limit < 1)) {
    throw new InvalidArgumentError(`${argument}.limit`, 'a positive integer', limit);
  }
  const opt = (name: 'kind' | 'team' | 'role'): string | undefined => (f.has(name) ? text(f.get(name), `${argument}.${name}`) : undefined);
  return { capabilities, kind: opt('kind'), team: opt('team'), role: opt('role'), health: h, limit: limit as number };
}

/** `register`'s options: the key, if given. */
export function readRegisterOptions(options: unknown): string | undefined {
  if (options === undefined) return undefined;
  const key = plainFields(options, 'options', ['key'], '{ key? }').get('key');
  return key === undefined ? undefined : text(key, 'options.key', MAX_KEY);
}

/** The registry's options, validated. */
export interface Settings {
  readonly intervalMs: number | undefined;
  readonly missed: number;
  readonly poll: boolean;
}

export function readOptions(options: unknown): Settings & { readonly name: unknown } {
  if (options === undefined) return { name: undefined, intervalMs: undefined, missed: 3, poll: false };
  const f = plainFields(options, 'options', ['name', 'heartbeatIntervalMs', 'missedHeartbeats', 'poll'], '{ name?, heartbeatIntervalMs?, missedHeartbeats?, poll? }');
  const interval = f.get('heartbeatIntervalMs');
  if (interval !== undefined && (typeof interval !== 'number' || !Number.isSafeInteger(interval) || interval < 1)) {
    throw new InvalidArgumentError('options.heartbeatIntervalMs', 'a positive integer (ms)', interval);
  }
  const missed = f.get('missedHeartbeats') ?? 3;
  if (typeof missed !== 'number' || !Number.isSafeInteger(missed) || missed < 1 || missed > MAX_MISSED) {
    throw new InvalidArgumentError('options.missedHeartbeats', `an integer from 1 to ${MAX_MISSED}`, missed);
  }
  const poll = f.get('poll') ?? false;
  if (typeof poll !== 'boolean') throw new InvalidArgumentError('options.poll', 'a boolean', poll);
  if (poll && interval === undefined) throw new InvalidArgumentError('options.heartbeatIntervalMs', 'a positive integer (ms) when options.poll is true', interval);
  return { name: f.get('name'), intervalMs: interval as number | undefined, missed, poll };
}

/** `AgentRegistryOptions` is what {@link readOptions} reads. */
export type { AgentRegistryOptions, AgentMetaInput, AgentWhere };
