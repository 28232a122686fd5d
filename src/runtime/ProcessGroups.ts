import { InvalidArgumentError, NoProcError } from '../errors.js';
import { type Pid, targetText, toPid } from './Pid.js';

/**
 * The node's process groups (`node.groups`), after Erlang's `pg`: named sets of processes, for
 * fan-out and discovery. A member leaves its groups when it exits.
 *
 * @example
 * ```ts
 * node.groups.join('workers', pid);
 * for (const w of node.groups.members('workers')) node.send(w, job);
 * ```
 */
export interface ProcessGroups {
  /** Adds a live process to a group (joining twice is the same as once). Throws `ERR_NOPROC` for a dead pid. */
  join(group: string, pid: Pid): void;
  /** Removes a process from a group; false when it was not a member. */
  leave(group: string, pid: Pid): boolean;
  /** The group's members in join order (empty for an unknown group). */
  members(group: string): Pid[];
  /** The groups that have members. */
  groups(): string[];
}

/** @internal What the group table needs of a process record (the kernel's `Proc`). */
export interface GroupedRecord {
  readonly self: Pid;
  readonly x: { groups: Set<string> | undefined } | undefined;
  ext(): { groups: Set<string> | undefined };
}

/** @internal */
export class GroupTable<Proc extends GroupedRecord = GroupedRecord> implements ProcessGroups {
  readonly #groups = new Map<string, Set<Proc>>();
  readonly #resolve: (pid: Pid) => Proc | undefined;

  constructor(resolve: (pid: Pid) => Proc | undefined) {
    this.#resolve = resolve;
  }

  get size(): number {
    return this.#groups.size;
  }

  join(group: string, pid: Pid): void {
    validateGroup(group);
    const q = toPid(pid); // a copy of a pid: its fields read once
    if (q === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
    const p = this.#resolve(q);
    if (p === undefined) throw new NoProcError(targetText(q), 'cannot join a group with a process that is not alive');
    let members = this.#groups.get(group);
    if (members === undefined) this.#groups.set(group, (members = new Set()));
    members.add(p);
    (p.ext().groups ??= new Set()).add(group);
  }

  leave(group: string, pid: Pid): boolean {
    validateGroup(group);
    const q = toPid(pid);
    if (q === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
    const p = this.#resolve(q);
    if (p === undefined) return false;
    p.x?.groups?.delete(group);
    return this.#remove(group, p);
  }

  members(group: string): Pid[] {
    validateGroup(group);
    const members = this.#groups.get(group);
    return members === undefined ? [] : [...members].map((p) => p.self);
  }

  groups(): string[] {
    return [...this.#groups.keys()];
  }

  /** @internal Called during death cleanup. */
  release(p: Proc, groups: Set<string>): void {
    for (const g of groups) this.#remove(g, p);
  }

  #remove(group: string, p: Proc): boolean {
    const members = this.#groups.get(group);
    if (members === undefined || !members.delete(p)) return false;
    if (members.size === 0) this.#groups.delete(group);
    return true;
  }
}

function validateGroup(group: unknown): asserts group is string {
  if (typeof group !== 'string' || group.length === 0) throw new InvalidArgumentError('group', 'a non-empty string', group);
}
