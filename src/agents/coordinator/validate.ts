import { InvalidArgumentError } from '../../errors.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import type { CoordinatorOptions, Workflow, WorkflowTask } from './types.js';

// What a coordinator is given, checked before anything starts: its options (with their defaults) and
// each workflow's shape: unique task ids, known dependencies, and no cycle among them.

/** @internal A coordinator's options with their defaults. */
export type Settings = Required<Omit<CoordinatorOptions, 'workers' | 'name'>>;

/** @internal What a coordinator starts with: its settings and its initial pool. */
export interface Init {
  readonly options: Settings;
  readonly workers: readonly Pid[];
}

function positive(value: unknown, argument: string, integer: boolean): void {
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0 || (integer ? !Number.isSafeInteger(value) : !Number.isFinite(value))) {
    throw new InvalidArgumentError(argument, integer ? 'a positive integer' : 'a positive finite number of ms', value);
  }
}

/** @internal Checks a coordinator's options and gives them their defaults; throws `ERR_INVALID_ARGUMENT`. */
export function validateOptions(options: CoordinatorOptions): Init {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'a CoordinatorOptions object', options);
  const workers = options.workers ?? [];
  if (!Array.isArray(workers)) throw new InvalidArgumentError('options.workers', 'an array of Pids', workers);
  workers.forEach((w, i) => {
    if (!isPid(w)) throw new InvalidArgumentError(`options.workers[${i}]`, 'a Pid', w);
  });
  const o = {
    maxConcurrentWorkflows: options.maxConcurrentWorkflows ?? 100,
    taskTimeoutMs: options.taskTimeoutMs ?? 30_000,
    maxTaskAttempts: options.maxTaskAttempts ?? 3,
    maxTasksPerWorker: options.maxTasksPerWorker ?? 1,
    historySize: options.historySize ?? 100,
  };
  positive(o.maxConcurrentWorkflows, 'options.maxConcurrentWorkflows', true);
  positive(o.taskTimeoutMs, 'options.taskTimeoutMs', false);
  positive(o.maxTaskAttempts, 'options.maxTaskAttempts', true);
  positive(o.maxTasksPerWorker, 'options.maxTasksPerWorker', true);
  if (!Number.isSafeInteger(o.historySize) || o.historySize < 0) throw new InvalidArgumentError('options.historySize', 'an integer >= 0', o.historySize);
  return { options: o, workers };
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Checks a workflow's shape: unique task ids, known dependencies, no cycle. */
export function validateWorkflow(workflow: Workflow): void {
  if (typeof workflow !== 'object' || workflow === null) throw new InvalidArgumentError('workflow', '{ id?, tasks: WorkflowTask[], timeoutMs? }', workflow);
  if (workflow.id !== undefined && (typeof workflow.id !== 'string' || workflow.id === '')) throw new InvalidArgumentError('workflow.id', 'a non-empty string', workflow.id);
  if (workflow.timeoutMs !== undefined) positive(workflow.timeoutMs, 'workflow.timeoutMs', false);
  const tasks = workflow.tasks;
  if (!Array.isArray(tasks) || tasks.length === 0) throw new InvalidArgumentError('workflow.tasks', 'a non-empty array of tasks', tasks);
  const ids = new Set<string>();
  tasks.forEach((t: WorkflowTask, i: number) => {
    const at = `workflow.tasks[${i}]`;
    if (typeof t !== 'object' || t === null) throw new InvalidArgumentError(at, '{ id, kind, payload?, requires?, dependsOn?, timeoutMs? }', t);
    if (typeof t.id !== 'string' || t.id === '') throw new InvalidArgumentError(`${at}.id`, 'a non-empty string', t.id);
    if (ids.has(t.id)) throw new InvalidArgumentError(`${at}.id`, 'an id unique within the workflow', t.id);
    ids.add(t.id);
    if (typeof t.kind !== 'string') throw new InvalidArgumentError(`${at}.kind`, 'a string', t.kind);
    if (t.requires !== undefined && !isStringArray(t.requires)) throw new InvalidArgumentError(`${at}.requires`, 'an array of capability names', t.requires);
    if (t.dependsOn !== undefined && !isStringArray(t.dependsOn)) throw new InvalidArgumentError(`${at}.dependsOn`, 'an array of task ids', t.dependsOn);
    if (t.dependsOn !== undefined && new Set(t.dependsOn).size !== t.dependsOn.length) throw new InvalidArgumentError(`${at}.dependsOn`, 'distinct task ids (each listed once)', t.dependsOn);
    if (t.timeoutMs !== undefined) positive(t.timeoutMs, `${at}.timeoutMs`, false);
  });
  tasks.forEach((t, i) => {
    for (const dep of t.dependsOn ?? []) {
      if (!ids.has(dep)) throw new InvalidArgumentError(`workflow.tasks[${i}].dependsOn`, 'ids of tasks of this workflow', dep);
      if (dep === t.id) throw new InvalidArgumentError(`workflow.tasks[${i}].dependsOn`, 'other tasks (a task cannot depend on itself)', dep);
    }
  });
  // Kahn: every task must be reachable from the tasks without dependencies
  const blockers = new Map(tasks.map((t) => [t.id, t.dependsOn?.length ?? 0]));
  const queue = tasks.filter((t) => (t.dependsOn?.length ?? 0) === 0).map((t) => t.id);
  let seen = 0;
  while (queue.length > 0) {
    const id = queue.pop()!;
    seen++;
    for (const t of tasks) {
      if (t.dependsOn?.includes(id)) {
        const n = blockers.get(t.id)! - 1;
        blockers.set(t.id, n);
        if (n === 0) queue.push(t.id);
      }
    }
  }
  if (seen !== tasks.length) {
    const cycle = tasks.filter((t) => blockers.get(t.id)! > 0).map((t) => t.id);
    throw new InvalidArgumentError('workflow.tasks', 'dependencies without a cycle', cycle, `these tasks wait on each other: ${cycle.join(', ')}`);
  }
}

/** @internal Throws unless `id` can name a workflow. */
export function checkId(id: unknown): void {
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError('id', 'a workflow id (a non-empty string)', id);
}
