import { types } from 'node:util';
import { checkStrayKeys, describe, InvalidArgumentError, StartError, thrownText, toError } from '../../errors.js';
import { formatReason, isCleanExit, type ExitReason } from '../../runtime/messages.js';
import { exitReasonOf, isDead, kernelOf, type Proc } from '../../runtime/kernel.js';
import { isPid, type Pid } from '../../runtime/Pid.js';
import { isInstance } from '../../runtime/safe.js';
import type { Context } from '../../runtime/types.js';

/** How a supervisor starts, restarts and stops one child. */
export interface ChildSpec {
  /** Unique among the supervisor's children. */
  id: string;
  /** Starts the child linked to the supervisor (use `ctx.spawnLink`, `GenServer.startLink(ctx, …)`, `Supervisor.startLink(ctx, …)`). */
  start: (ctx: Context<any>) => Pid | Promise<Pid>;
  /** `'permanent'` (default): always restarted; `'transient'`: unless it exits cleanly; `'temporary'`: never. */
  restart?: 'permanent' | 'transient' | 'temporary';
  /** Time to exit after a `'shutdown'` signal before it is killed: ms (default 5000), `'brutal_kill'`, or `'infinity'` (default for supervisors). */
  shutdown?: number | 'brutal_kill' | 'infinity';
  type?: 'worker' | 'supervisor';
  /**
   * A significant child ends its supervisor when it terminates by itself (see `autoShutdown` of
   * `SupervisorOptions`). Default false; true only for a transient or temporary child of a
   * supervisor whose `autoShutdown` is not `'never'`, as in OTP.
   */
  significant?: boolean;
  /**
   * What `whichChildren` reports as the child's modules (OTP's `Modules`: informative only in Keel,
   * there is no code upgrade). Default: the name of a named `start` function (`[start.name]`), else `[]`.
   */
  modules?: string[] | 'dynamic';
}

/**
 * @internal The fields `keys` of an options object (or a spec) `value`, each read once, after its
 * stray keys are refused as `checkKeys` refuses them: a read that throws is `ERR_INVALID_ARGUMENT`
 * naming the field, and a getter is not asked again for what is validated and kept.
 */
export function readOnce<K extends string>(value: object, keys: readonly K[], where: string): Partial<Record<K, unknown>> {
  checkStrayKeys(value, keys, where);
  const fields: Partial<Record<K, unknown>> = {};
  let reading = '';
  try {
    for (const key of keys) {
      reading = key;
      fields[key] = (value as Record<string, unknown>)[key];
    }
  } catch (e) {
    throw new InvalidArgumentError(`${where}.${reading}`, 'an option that can be read', value, `reading it threw ${thrownText(e)}`);
  }
  return fields;
}

/** @internal A validated child spec with its defaults filled in. */
export interface Child {
  readonly id: string;
  readonly start: (ctx: Context<any>) => Pid | Promise<Pid>;
  readonly restart: 'permanent' | 'transient' | 'temporary';
  readonly shutdown: number | 'brutal_kill' | 'infinity';
  readonly type: 'worker' | 'supervisor';
  readonly significant: boolean;
  readonly modules: readonly string[] | 'dynamic';
  pid: Pid | undefined;
  /** The record of the process at `pid`, kept so that the reason it died with can be read after its death. */
  proc: Proc | undefined;
  /** `'restarting'` while a restart waits for its backoff or retries a failed start. */
  status: 'running' | 'restarting' | 'stopped';
  restarts: number;
  /** When this child was restarted within the supervisor's `withinMs`: its backoff grows with these only. */
  readonly recentRestarts: number[];
}

const SPEC_KEYS = ['id', 'start', 'restart', 'shutdown', 'type', 'significant', 'modules'] as const;
const RESTARTS = ['permanent', 'transient', 'temporary'] as const;
const TYPES = ['worker', 'supervisor'] as const;

/**
 * @internal Validates a child spec; the message names the argument as the user wrote it (`where`:
 * `children[2]` for `Supervisor.start`'s list, `spec` for a `startChild`), the field, and the child's
 * id once it is known. `defaultId` is the id of a spec that has none (a DynamicSupervisor's children
 * are known by pid).
 */
export function toChild(spec: unknown, where: string, defaultId?: string): Child {
  if (typeof spec !== 'object' || spec === null) throw new InvalidArgumentError(where, 'a child spec { id, start, restart?, shutdown?, type?, significant?, modules? }', spec);
  // each field read once: a getter is not asked again (for an error message, or the start kept)
  // and what was validated is what is kept
  const s = readOnce(spec, SPEC_KEYS, where) as Partial<ChildSpec>;
  const id = s.id ?? defaultId;
  if (typeof id !== 'string' || id === '') throw new InvalidArgumentError(`${where}.id`, 'a non-empty string', s.id);
  // the id the user gave says which child (a default id says nothing the user wrote)
  const which = s.id === undefined ? undefined : `in the spec of child '${id}'`;
  if (typeof s.start !== 'function') throw new InvalidArgumentError(`${where}.start`, 'a function (ctx) => Pid | Promise<Pid>', s.start, which);
  const restart = s.restart ?? 'permanent';
  if (!RESTARTS.includes(restart)) throw new InvalidArgumentError(`${where}.restart`, "'permanent' | 'transient' | 'temporary'", s.restart, which);
  const type = s.type ?? 'worker';
  if (!TYPES.includes(type)) throw new InvalidArgumentError(`${where}.type`, "'worker' | 'supervisor'", s.type, which);
  const shutdown = s.shutdown ?? (type === 'supervisor' ? 'infinity' : 5000);
  if (
    shutdown !== 'brutal_kill' &&
    shutdown !== 'infinity' &&
    (typeof shutdown !== 'number' || !Number.isFinite(shutdown) || shutdown < 0)
  ) {
    throw new InvalidArgumentError(`${where}.shutdown`, "a number of ms >= 0, 'brutal_kill' or 'infinity'", s.shutdown, which);
  }
  const significant = s.significant ?? false;
  if (typeof significant !== 'boolean') throw new InvalidArgumentError(`${where}.significant`, 'a boolean', s.significant, which);
  if (significant && restart === 'permanent') {
    // OTP refuses it too ({bad_combination, [{restart, permanent}, {significant, true}]}): a permanent child never ends by itself
    throw new InvalidArgumentError(`${where}.significant`, "false for a permanent child (a significant child is 'transient' or 'temporary')", s.significant, which);
  }
  const modules = toModules(s.modules, s.start, `${where}.modules`, which);
  return { id, start: s.start, restart, shutdown, type, significant, modules, pid: undefined, proc: undefined, status: 'stopped', restarts: 0, recentRestarts: [] };
}

function toModules(modules: unknown, start: (...args: never[]) => unknown, where: string, which: string | undefined): readonly string[] | 'dynamic' {
  if (modules === undefined) {
    // an inline `start: (ctx) => …` is given the name 'start' by JavaScript: that names nothing;
    // a proxy's name is not read (a revoked one throws, another one's trap would run), nor is a name that throws
    let name: unknown = '';
    try {
      if (!types.isProxy(start)) name = start.name;
    } catch {
      // a `name` getter that throws: it names nothing either
    }
    return typeof name !== 'string' || name === '' || name === 'start' ? [] : [name];
  }
  if (modules === 'dynamic') return 'dynamic';
  // a proxy first (Array.isArray throws on a revoked one); every index, holes too (every() skips them)
  const bad = () => new InvalidArgumentError(where, "an array of strings or 'dynamic'", modules, which);
  if (typeof modules !== 'object' || modules === null || types.isProxy(modules) || !Array.isArray(modules)) throw bad();
  const list: string[] = [];
  for (let i = 0; i < modules.length; i++) {
    let m: unknown;
    try {
      m = modules[i];
    } catch {
      throw bad(); // a getter that throws
    }
    if (typeof m !== 'string') throw bad();
    list.push(m);
  }
  return Object.freeze(list);
}

/** @internal The spec a validated child was made from, its defaults filled in (`getChildSpec`). */
export function specOf(child: Child): Required<ChildSpec> {
  return {
    id: child.id,
    start: child.start,
    restart: child.restart,
    shutdown: child.shutdown,
    type: child.type,
    significant: child.significant,
    modules: child.modules === 'dynamic' ? 'dynamic' : [...child.modules],
  };
}

/** @internal Validates a list of child specs, ids unique. */
export function toChildren(specs: unknown): Child[] {
  // a proxy is no list of specs (Array.isArray throws on a revoked one)
  if (typeof specs !== 'object' || specs === null || types.isProxy(specs) || !Array.isArray(specs)) {
    throw new InvalidArgumentError('children', 'an array of child specs', specs);
  }
  // every index, holes too (map skips them): a hole is no spec, and a huge sparse array fails at its first
  const children: Child[] = [];
  for (let i = 0; i < specs.length; i++) {
    let spec: unknown;
    try {
      spec = specs[i];
    } catch (e) {
      throw new InvalidArgumentError(`children[${i}]`, 'a child spec that can be read', specs, `reading it threw ${thrownText(e)}`);
    }
    children.push(toChild(spec, `children[${i}]`));
  }
  const seen = new Set<string>();
  for (const c of children) {
    if (seen.has(c.id)) throw new InvalidArgumentError('children', 'child specs with unique ids', c.id, `the id '${c.id}' appears twice`);
    seen.add(c.id);
  }
  return children;
}

/** @internal True when a child that exited with `reason` is to be restarted. */
export function shouldRestart(child: Child, reason: ExitReason): boolean {
  if (child.restart === 'permanent') return true;
  if (child.restart === 'temporary') return false;
  return !isCleanExit(reason);
}

/** @internal Starts a child from the supervisor's context and makes sure it is linked. */
export async function startChild(ctx: Context<any>, child: Child): Promise<Pid> {
  let pid: unknown;
  try {
    pid = await child.start(ctx);
  } catch (e) {
    const error = toError(e);
    // a behaviour's start error says what failed already: its message, not its name before it
    throw new StartError(`child '${child.id}'`, error, isInstance(error, StartError) ? error.message : formatReason(error));
  }
  if (!isPid(pid)) {
    throw new StartError(`child '${child.id}'`, new InvalidArgumentError(`start of child '${child.id}'`, 'a Pid', pid), `start returned ${describe(pid)}`);
  }
  const node = kernelOf(ctx.node);
  const proc = node.resolve(pid);
  if (proc === undefined) {
    const remote = nodeOfRemote(pid, ctx.node.name);
    if (remote !== undefined) {
      // a live process, maybe, but not one this supervisor can stop or watch die (its stop and
      // restart rules work on its own node's processes): not taken for a child that exited
      const e = new InvalidArgumentError(`start of child '${child.id}'`, "a Pid of a process of the supervisor's node", pid);
      throw new StartError(`child '${child.id}'`, e, `start returned a pid of node '${remote}'`);
    }
    throw new StartError(`child '${child.id}'`, 'noproc', 'it exited as it started');
  }
  if (proc.self === ctx.self) {
    // its own child: stopping that child would be waiting for itself (for ever, with shutdown 'infinity')
    const e = new InvalidArgumentError(`start of child '${child.id}'`, "a Pid of a process other than the supervisor (start it with ctx.spawnLink, or a behaviour's startLink)", pid);
    throw new StartError(`child '${child.id}'`, e, "start returned the supervisor's own pid");
  }
  const sup = ctx as unknown as Proc; // a supervisor's context is its process
  if (isDead(sup)) {
    // the supervisor died while `start` ran (an async start, a kill meanwhile): a link made now would
    // tie the child to no one, and a child its start did not link would live on unsupervised; it
    // gets the exit signal that link would have carried
    node.exitSignal(proc.self, sup, exitReasonOf(sup));
    throw new StartError(`child '${child.id}'`, 'noproc', 'the supervisor exited while it started');
  }
  ctx.link(proc.self);
  child.pid = proc.self; // the runtime's own pid object: exits are matched against it
  child.proc = proc;
  child.status = 'running';
  return proc.self;
}

/** The node of `pid` when it is another node's, read once (a copy's getter that throws names none). */
function nodeOfRemote(pid: Pid, local: string): string | undefined {
  try {
    const name: unknown = pid.node;
    return typeof name === 'string' && name !== local ? name : undefined;
  } catch {
    return undefined;
  }
}

/**
 * @internal Stops a child the way OTP does: unlink, send `'shutdown'` (or kill at once for
 * `'brutal_kill'`), kill after the shutdown time. Resolves with its exit reason.
 */
export function stopChild(ctx: Context<any>, child: Child): Promise<ExitReason | undefined> {
  const pid = child.pid;
  const proc = child.proc;
  child.pid = undefined;
  child.proc = undefined;
  child.status = 'stopped';
  if (pid === undefined) return Promise.resolve(undefined);
  const node = kernelOf(ctx.node);
  // as OTP: the link stays while the child stops (if the supervisor dies meanwhile, the child goes
  // with it); its Exit is ignored since `child.pid` is cleared; the kill comes from the node
  return new Promise((resolve) => {
    let timer: { cancel(): boolean } | undefined;
    const unhook = node.onExit(pid, (reason) => {
      timer?.cancel();
      resolve(reason);
    });
    if (unhook === undefined) {
      // it died before it was stopped (its Exit still in the supervisor's mailbox): the reason it died with, as OTP reports it
      resolve(proc !== undefined && isDead(proc) ? exitReasonOf(proc) : undefined);
      return;
    }
    if (child.shutdown === 'brutal_kill') {
      node.exit(pid, 'kill');
      return;
    }
    if (child.shutdown !== 'infinity') timer = node.setTimer(child.shutdown, () => node.exit(pid, 'kill'));
    ctx.exit(pid, 'shutdown');
  });
}

/** The error a supervisor replies to a call that is none of its own requests. */
export function unexpectedRequest(request: unknown): InvalidArgumentError {
  return new InvalidArgumentError('request', "one of the supervisor's requests (use the Supervisor / DynamicSupervisor functions)", request);
}

/**
 * @internal Adds a restart at `now` to `times` (kept in place), forgetting those `withinMs` old or
 * more; returns how many are within the window now, this one included.
 */
export function recordRestart(times: number[], now: number, withinMs: number): number {
  let kept = 0;
  for (const t of times) if (now - t < withinMs) times[kept++] = t;
  times.length = kept;
  times.push(now);
  return times.length;
}
