// An agent's options, read once and checked before it starts (Agent.start): the handlers by kind,
// the registration in a registry, and the limits the registry puts on what it registers.
import { types } from 'node:util';
import { checkKeys, InvalidArgumentError, thrownText } from '../../errors.js';
import type { AgentOptions, AgentRegistration, TaskHandler } from '../agentTypes.js';
import type { AgentRegistryHandle } from '../registry/handle.js';
import { MAX_KEY, MAX_LIST, MAX_TEXT, text } from '../registry/validate.js';

/** @internal What an agent starts with: its options and its handlers by kind. */
export interface AgentInit {
  readonly options: AgentOptions;
  readonly handlers: ReadonlyMap<string, TaskHandler>;
  readonly registration: AgentRegistration | undefined;
}

/** `options.registry` as the agent keeps it: each field read once, checked. */
function registrationOf(given: unknown): AgentRegistration | undefined {
  if (given === undefined) return undefined;
  const shape = 'an AgentRegistry handle, or { registry, key?, team?, role?, heartbeatMs? }';
  if (typeof given !== 'object' || given === null || types.isProxy(given)) throw new InvalidArgumentError('options.registry', shape, given);
  let fields: { registry: unknown; key: unknown; team: unknown; role: unknown; heartbeatMs: unknown };
  try {
    const g = given as Record<string, unknown>;
    fields = 'registry' in g ? { registry: g.registry, key: g.key, team: g.team, role: g.role, heartbeatMs: g.heartbeatMs } : { registry: g, key: undefined, team: undefined, role: undefined, heartbeatMs: undefined };
  } catch {
    throw new InvalidArgumentError('options.registry', `${shape} with readable fields`, undefined);
  }
  const registry = fields.registry as Partial<AgentRegistryHandle> | null;
  if (typeof registry !== 'object' || registry === null || types.isProxy(registry) || typeof registry.register !== 'function' || typeof registry.heartbeat !== 'function') {
    throw new InvalidArgumentError('options.registry.registry', 'an AgentRegistry handle', registry);
  }
  const out: { -readonly [K in keyof AgentRegistration]: AgentRegistration[K] } = { registry: registry as AgentRegistryHandle };
  for (const field of ['key', 'team', 'role'] as const) {
    const value = fields[field];
    if (value === undefined) continue;
    const max = field === 'key' ? MAX_KEY : MAX_TEXT;
    if (typeof value !== 'string' || value === '' || value.length > max) throw new InvalidArgumentError(`options.registry.${field}`, `a non-empty string of at most ${max} characters`, value);
    out[field] = value;
  }
  const ms = fields.heartbeatMs;
  if (ms !== undefined) {
    if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 1) throw new InvalidArgumentError('options.registry.heartbeatMs', 'a finite number of ms ≥ 1', ms);
    out.heartbeatMs = ms;
  }
  return Object.freeze(out);
}

/** With a registry, what the agent registers (its capabilities, the kinds of its tasks) must be what the registry takes: refused here, not at its start. */
function checkRegistrable(capabilities: readonly string[], handlers: ReadonlyMap<string, TaskHandler>): void {
  if (capabilities.length > MAX_LIST) throw new InvalidArgumentError('options.capabilities', `at most ${MAX_LIST} capabilities (the registry's limit)`, `an array of ${capabilities.length}`);
  capabilities.forEach((c, i) => text(c, `options.capabilities[${i}]`));
  if (handlers.size > MAX_LIST) throw new InvalidArgumentError('options.tasks', `at most ${MAX_LIST} task kinds (the registry's limit)`, `${handlers.size} kinds`);
  for (const kind of handlers.keys()) {
    if (kind.length === 0 || kind.length > MAX_TEXT) throw new InvalidArgumentError('options.tasks', `task kinds of 1 to ${MAX_TEXT} characters (the registry's limit)`, kind);
  }
}

/** The handlers of `options.tasks`, read once (a later change to the object does not reach the agent). */
function handlersOf(tasks: unknown): Map<string, TaskHandler> {
  const handlers = new Map<string, TaskHandler>();
  if (tasks === undefined) return handlers;
  const shape = 'an object of task handlers by kind ({ fetch: (task, ctx, { signal }) => result })';
  if (typeof tasks !== 'object' || tasks === null || Array.isArray(tasks) || types.isProxy(tasks)) throw new InvalidArgumentError('options.tasks', shape, tasks);
  for (const kind of Object.keys(tasks)) {
    let handler: unknown;
    try {
      handler = (tasks as Record<string, unknown>)[kind];
    } catch {
      throw new InvalidArgumentError(`options.tasks.${kind}`, 'a readable function', undefined);
    }
    if (typeof handler !== 'function') throw new InvalidArgumentError(`options.tasks.${kind}`, 'a function (task, ctx, { signal }) => result', handler);
    handlers.set(kind, handler as TaskHandler);
  }
  return handlers;
}

const AGENT_OPTIONS = ['capabilities', 'runTask', 'tasks', 'vote', 'onMessage', 'name', 'maxConcurrentTasks', 'registry'] as const;

/**
 * The options as the agent keeps them: each read once (a getter or a proxy trap that throws is
 * ERR_INVALID_ARGUMENT naming it), `capabilities` copied by index (a hole is checked, not skipped).
 */
function readOptions(given: unknown): AgentOptions {
  if (typeof given !== 'object' || given === null) throw new InvalidArgumentError('options', 'an AgentOptions object', given);
  checkKeys(given, AGENT_OPTIONS, 'options'); // a misspelt option is an error, never silently ignored
  const options: Record<string, unknown> = {};
  for (const key of AGENT_OPTIONS) {
    let value: unknown;
    try {
      value = (given as Record<string, unknown>)[key];
    } catch (e) {
      throw new InvalidArgumentError(`options.${key}`, 'an option that can be read', given, `reading it threw ${thrownText(e)}`);
    }
    if (value !== undefined) options[key] = value;
  }
  const given_ = options.capabilities;
  let capabilities: unknown[] | undefined;
  try {
    if (Array.isArray(given_) && !types.isProxy(given_)) capabilities = Array.from(given_ as unknown[]);
  } catch {
    capabilities = undefined; // an element that cannot be read
  }
  if (capabilities === undefined || capabilities.some((c) => typeof c !== 'string')) {
    throw new InvalidArgumentError('options.capabilities', 'an array of strings', given_);
  }
  options.capabilities = capabilities;
  return options as unknown as AgentOptions;
}

/** @internal The options of `Agent.start`, read once and checked: a typed error for anything it would not take. */
export function validateOptions(given: AgentOptions): AgentInit {
  const options = readOptions(given);
  if (options.runTask !== undefined && typeof options.runTask !== 'function') throw new InvalidArgumentError('options.runTask', 'a function (task, ctx, { signal }) => result', options.runTask);
  const handlers = handlersOf(options.tasks);
  if (options.runTask === undefined && handlers.size === 0) throw new InvalidArgumentError('options.runTask', 'a function (task, ctx, { signal }) => result, or handlers in options.tasks', options.runTask);
  if (options.vote !== undefined && typeof options.vote !== 'function') throw new InvalidArgumentError('options.vote', 'a function (proposal, ctx) => vote', options.vote);
  if (options.onMessage !== undefined && typeof options.onMessage !== 'function') throw new InvalidArgumentError('options.onMessage', 'a function (message, ctx)', options.onMessage);
  const max = options.maxConcurrentTasks;
  if (max !== undefined && max !== Infinity && (!Number.isSafeInteger(max) || max < 1)) throw new InvalidArgumentError('options.maxConcurrentTasks', 'a positive integer', max);
  const registration = registrationOf(options.registry);
  if (registration !== undefined) checkRegistrable(options.capabilities, handlers);
  return { options, handlers, registration };
}
