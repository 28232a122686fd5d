import { type AgentQuery, isAgentQuery } from '../registry/query.js';
import { types } from 'node:util';
import { toBackoff } from '../../backoff.js';
import { checkStrayKeys, InvalidArgumentError, thrownText } from '../../errors.js';
import { isInstance } from '../../runtime/safe.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import type { AgentStore, AgentStoreConfig } from '../store/AgentStore.js';
import { checkStoreOption } from '../store/stores.js';
import type { Aggregator, CoordinatorOptions, Workflow, WorkflowTask } from './types.js';

// What a coordinator is given, checked before anything starts: its options (with their defaults) and
// each workflow's shape: unique task ids, known dependencies, and no cycle among them.

/** @internal A coordinator's options with their defaults (`stuckAfterMs` Infinity: never). */
export type Settings = Required<Omit<CoordinatorOptions, 'workers' | 'name' | 'aggregators' | 'store'>> & { readonly aggregators: ReadonlyMap<string, Aggregator> };

/** @internal What a coordinator starts with: its settings and its initial pool. */
export interface Init {
  readonly options: Settings;
  readonly workers: readonly Pid[];
  /** `options.workers` when it is a registry query. */
  readonly query: AgentQuery | undefined;
  /** The store option as checked (opened at the start). */
  readonly store: AgentStoreConfig | AgentStore | undefined;
  /** `options.name` as given (checked by nameFor). */
  readonly name: unknown;
}

function positive(value: unknown, argument: string, integer: boolean): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0 || (integer ? !Number.isSafeInteger(value) : !Number.isFinite(value))) {
    throw new InvalidArgumentError(argument, integer ? 'a positive integer' : 'a positive finite number of ms', value);
  }
}

/** A wait in ms: 0 or more, Infinity allowed (wait for ever). */
function waitMs(value: unknown, argument: string): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw new InvalidArgumentError(argument, 'a number of ms >= 0 (Infinity: for ever)', value);
}

/** The aggregators, read once into a map (a name like `constructor` is just a name). */
function aggregatorsOf(value: unknown): Map<string, Aggregator> {
  const map = new Map<string, Aggregator>();
  if (value === undefined) return map;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || types.isProxy(value)) {
    throw new InvalidArgumentError('options.aggregators', 'an object of aggregators by name ({ merge: (inputs, task) => value })', value);
  }
  for (const name of Object.keys(value)) {
    let fn: unknown;
    try {
      fn = (value as Record<string, unknown>)[name];
    } catch {
      fn = undefined;
    }
    if (typeof fn !== 'function') throw new InvalidArgumentError(`options.aggregators.${name}`, 'a function (inputs, task) => value', fn);
    map.set(name, fn as Aggregator);
  }
  return map;
}

/**
 * @internal Checks a coordinator's options and gives them their defaults; throws `ERR_INVALID_ARGUMENT`,
 * also for options that cannot be read (a revoked proxy, a getter that throws).
 */
export function validateOptions(options: CoordinatorOptions): Init {
  try {
    return readOptions(options);
  } catch (e) {
    if (isInstance(e, InvalidArgumentError)) throw e;
    throw new InvalidArgumentError('options', 'CoordinatorOptions that can be read (plain data)', options, `reading them threw: ${thrownText(e)}`);
  }
}

const COORDINATOR_OPTIONS: readonly string[] = [
  'workers',
  'maxConcurrentWorkflows',
  'taskTimeoutMs',
  'maxTaskAttempts',
  'maxTasksPerWorker',
  'historySize',
  'aggregators',
  'waitForWorkersMs',
  'stuckAfterMs',
  'store',
  'name',
];

function readOptions(options: CoordinatorOptions): Init {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a CoordinatorOptions object', options);
  // a misspelt option ({ taskTimeOutMs }) is refused, never ignored, as every other component's
  checkStrayKeys(options, COORDINATOR_OPTIONS, 'options');
  const given = options.workers ?? [];
  const query = isAgentQuery(given) ? given : undefined;
  const workers = query === undefined ? given : [];
  if (!Array.isArray(workers)) throw new InvalidArgumentError('options.workers', 'an array of Pids, or a registry query (registry.select(…))', workers);
  workers.forEach((w, i) => {
    if (!isPid(w)) throw new InvalidArgumentError(`options.workers[${i}]`, 'a Pid', w);
  });
  const o = {
    maxConcurrentWorkflows: options.maxConcurrentWorkflows ?? 100,
    taskTimeoutMs: options.taskTimeoutMs ?? 30_000,
    maxTaskAttempts: options.maxTaskAttempts ?? 3,
    maxTasksPerWorker: options.maxTasksPerWorker ?? 1,
    historySize: options.historySize ?? 100,
    waitForWorkersMs: options.waitForWorkersMs ?? 0,
    stuckAfterMs: options.stuckAfterMs ?? Infinity,
    aggregators: aggregatorsOf(options.aggregators),
  };
  waitMs(o.waitForWorkersMs, 'options.waitForWorkersMs');
  if (options.stuckAfterMs !== undefined) positive(options.stuckAfterMs, 'options.stuckAfterMs', false);
  positive(o.maxConcurrentWorkflows, 'options.maxConcurrentWorkflows', true);
  positive(o.taskTimeoutMs, 'options.taskTimeoutMs', false);
  positive(o.maxTaskAttempts, 'options.maxTaskAttempts', true);
  positive(o.maxTasksPerWorker, 'options.maxTasksPerWorker', true);
  if (!Number.isSafeInteger(o.historySize) || o.historySize < 0) throw new InvalidArgumentError('options.historySize', 'an integer >= 0', o.historySize);
  const store = options.store === undefined ? undefined : checkStoreOption(options.store, 'options.store');
  return { options: o, workers, query, store, name: options.name };
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * Checks a workflow's shape: unique task ids, known dependencies, no cycle. A workflow that cannot be
 * read (a revoked proxy, a getter that throws, in it or in a task) is `ERR_INVALID_ARGUMENT` too.
 */
export function validateWorkflow(workflow: Workflow): void {
  try {
    checkWorkflow(workflow);
  } catch (e) {
    if (isInstance(e, InvalidArgumentError)) throw e;
    throw new InvalidArgumentError('workflow', 'a workflow that can be read (plain data)', workflow, `reading it threw: ${thrownText(e)}`);
  }
}

function checkWorkflow(workflow: Workflow): void {
  if (typeof workflow !== 'object' || workflow === null) throw new InvalidArgumentError('workflow', '{ id?, tasks: WorkflowTask[], timeoutMs? }', workflow);
  if (workflow.id !== undefined && (typeof workflow.id !== 'string' || workflow.id === '')) throw new InvalidArgumentError('workflow.id', 'a non-empty string', workflow.id);
  if (workflow.timeoutMs !== undefined) positive(workflow.timeoutMs, 'workflow.timeoutMs', false);
  if (workflow.waitForWorkersMs !== undefined) waitMs(workflow.waitForWorkersMs, 'workflow.waitForWorkersMs');
  if (workflow.stuckAfterMs !== undefined) positive(workflow.stuckAfterMs, 'workflow.stuckAfterMs', false);
  const tasks = workflow.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0) throw new InvalidArgumentError('workflow.tasks', 'a non-empty array of tasks', tasks);
  // one pass over the tasks, without a closure or a path string per task (built only for an error);
  // a small workflow's ids are checked unique by comparing them (an array, no Set to grow), a large one's in a Set
  const ids = tasks.length > SMALL_WORKFLOW ? new Set<string>() : undefined;
  const few: string[] = [];
  let edges = false;
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i] as WorkflowTask;
    if (typeof t !== 'object' || t === null) throw new InvalidArgumentError(at(i), '{ id, kind, payload?, requires?, dependsOn?, timeoutMs? }', t);
    if (typeof t.id !== 'string' || t.id === '') throw new InvalidArgumentError(`${at(i)}.id`, 'a non-empty string', t.id);
    const id = t.id;
    if (ids === undefined ? few.includes(id) : ids.has(id)) throw new InvalidArgumentError(`${at(i)}.id`, 'an id unique within the workflow', id);
    if (ids === undefined) few.push(id);
    else ids.add(id);
    if (typeof t.kind !== 'string') throw new InvalidArgumentError(`${at(i)}.kind`, 'a string', t.kind);
    if (t.requires !== undefined && !isStringArray(t.requires)) throw new InvalidArgumentError(`${at(i)}.requires`, 'an array of capability names', t.requires);
    const deps = t.dependsOn;
    if (deps !== undefined) {
      if (!isStringArray(deps)) throw new InvalidArgumentError(`${at(i)}.dependsOn`, 'an array of task ids', deps);
      if (deps.length > 0) {
        edges = true;
        if (new Set(deps).size !== deps.length) throw new InvalidArgumentError(`${at(i)}.dependsOn`, 'distinct task ids (each listed once)', deps);
      }
    }
    if (t.timeoutMs !== undefined) positive(t.timeoutMs, `${at(i)}.timeoutMs`, false);
    if (t.aggregate !== undefined && typeof t.aggregate !== 'boolean') throw new InvalidArgumentError(`${at(i)}.aggregate`, 'a boolean', t.aggregate);
    if (t.retry !== undefined) validateRetry(t.retry, `${at(i)}.retry`);
    if (t.compensate !== undefined) validateCompensation(t.compensate, `${at(i)}.compensate`, t.aggregate === true);
  }
  // no dependencies at all: no unknown id, no cycle
  if (edges) checkDependencies(tasks, ids ?? new Set(few));
}

/** Up to this many tasks, ids are checked unique pairwise (at most 120 string comparisons). */
const SMALL_WORKFLOW = 16;

const at = (i: number): string => `workflow.tasks[${i}]`;

/** Every dependency names another task of the workflow, and there is no cycle among them. */
function checkDependencies(tasks: readonly WorkflowTask[], ids: ReadonlySet<string>): void {
  const dependents = new Map<string, string[]>();
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    for (const dep of t.dependsOn ?? []) {
      if (!ids.has(dep)) throw new InvalidArgumentError(`${at(i)}.dependsOn`, 'ids of tasks of this workflow', dep);
      if (dep === t.id) throw new InvalidArgumentError(`${at(i)}.dependsOn`, 'other tasks (a task cannot depend on itself)', dep);
      const list = dependents.get(dep);
      if (list === undefined) dependents.set(dep, [t.id]);
      else list.push(t.id);
    }
  }
  // Kahn: every task must be reachable from the tasks without dependencies (linear in tasks + edges)
  const blockers = new Map(tasks.map((t) => [t.id, t.dependsOn?.length ?? 0]));
  const queue = tasks.filter((t) => (t.dependsOn?.length ?? 0) === 0).map((t) => t.id);
  let seen = 0;
  while (queue.length > 0) {
    const id = queue.pop()!;
    seen++;
    for (const d of dependents.get(id) ?? []) {
      const n = blockers.get(d)! - 1;
      blockers.set(d, n);
      if (n === 0) queue.push(d);
    }
  }
  if (seen !== tasks.length) {
    const cycle = tasks.filter((t) => blockers.get(t.id)! > 0).map((t) => t.id);
    throw new InvalidArgumentError('workflow.tasks', 'dependencies without a cycle', cycle, `these tasks wait on each other: ${cycle.join(', ')}`);
  }
}

function validateRetry(retry: unknown, at: string): void {
  if (typeof retry !== 'object' || retry === null) throw new InvalidArgumentError(at, '{ maxAttempts, backoff?, nonRetryable? }', retry);
  const r = retry as Record<string, unknown>;
  positive(r.maxAttempts, `${at}.maxAttempts`, true);
  toBackoff(r.backoff as never, `${at}.backoff`);
  if (r.nonRetryable !== undefined && !isStringArray(r.nonRetryable)) throw new InvalidArgumentError(`${at}.nonRetryable`, 'an array of error codes, names or strings', r.nonRetryable);
}

function validateCompensation(c: unknown, at: string, aggregate: boolean): void {
  if (aggregate) throw new InvalidArgumentError(at, 'no compensation on an aggregate step (it runs no work to undo)', c);
  if (typeof c !== 'object' || c === null) throw new InvalidArgumentError(at, '{ kind, payload?, requires? }', c);
  const k = c as Record<string, unknown>;
  if (typeof k.kind !== 'string') throw new InvalidArgumentError(`${at}.kind`, 'a string', k.kind);
  if (k.requires !== undefined && !isStringArray(k.requires)) throw new InvalidArgumentError(`${at}.requires`, 'an array of capability names', k.requires);
}

/** @internal Throws unless `id` can name a workflow. */
export function checkId(id: unknown): void {
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a workflow id (a non-empty string)', id);
}
