import { AlreadyRegisteredError, InvalidArgumentError, NameTakenError, NoProcError, ReservedNameError } from '../errors.js';
import { isPidText, type Name, nameOf, type Pid, targetText, toPid } from './Pid.js';

/**
 * The node's unique names (`node.registry`), as Erlang's `register/2`: one name per process, one
 * process per name; a name works anywhere a pid does and vanishes when its process exits.
 *
 * @example
 * ```ts
 * node.registry.register('cache', pid);
 * node.send('cache', { type: 'get', key: 'a' });
 * node.registry.whereis('cache'); // pid, or undefined once it has exited
 * ```
 *
 * Names under `keel.` are Keel's own (its services and agent components): registering or
 * unregistering one throws `ERR_RESERVED_NAME`; `whereis` finds them.
 */
export interface NameRegistry {
  /** Registers `name` for a live `pid`: `ERR_NAME_TAKEN` if taken, `ERR_ALREADY_REGISTERED` if the process has a name, `ERR_NOPROC` if dead, `ERR_RESERVED_NAME` under `keel.`. */
  register(name: string | Name, pid: Pid): void;
  /** Removes a name; false when it was not registered. */
  unregister(name: string | Name): boolean;
  /** The process registered under a typed name, typed by it. */
  whereis<M>(name: Name<M>): Pid<M> | undefined;
  whereis(name: string | Name): Pid | undefined;
  /** The registered names, in registration order. */
  names(): string[];
}

/** @internal What the name table needs of a process record (the kernel's `Proc`). */
export interface NamedRecord {
  readonly self: Pid;
  readonly x: { name: string | undefined } | undefined;
  ext(): { name: string | undefined };
}

/** @internal */
export class NameTable<Proc extends NamedRecord = NamedRecord> implements NameRegistry {
  readonly #byName = new Map<string, Proc>();
  readonly #resolve: (pid: Pid) => Proc | undefined;
  /** Above 0 while Keel's own code registers (see {@link NameTable.asKeel}). */
  #own = 0;

  constructor(resolve: (pid: Pid) => Proc | undefined) {
    this.#resolve = resolve;
  }

  get size(): number {
    return this.#byName.size;
  }

  /** @internal The live process registered under `name`. */
  lookup(name: string): Proc | undefined {
    return this.#byName.get(name);
  }

  /**
   * @internal Runs `fn` as Keel's own code: registrations made synchronously inside it may use names
   * under `keel.` (a service or component starting registers its process as it spawns).
   */
  asKeel<T>(fn: () => T): T {
    this.#own++;
    try {
      return fn();
    } finally {
      this.#own--;
    }
  }

  #checkReserved(name: string, operation: string): void {
    if (this.#own === 0 && name.startsWith(RESERVED)) throw new ReservedNameError(name, operation);
  }

  /** @internal Checks a name before a spawn registers it. */
  checkFree(given: unknown): string {
    const name = validateName(given);
    this.#checkReserved(name, 'register');
    // where a target is kept as text (a dead letter's recipient, the CLI, the observer) a pid's text
    // is read as that pid: a name spelt so would be taken for another node's process
    if (isPidText(name)) throw new InvalidArgumentError('name', "a name that is not a pid's text ('<node.id.creation>')", given);
    const owner = this.#byName.get(name);
    if (owner !== undefined) throw new NameTakenError(name, String(owner.self));
    return name;
  }

  /** @internal */
  registerProc(given: string | Name, p: Proc): void {
    const name = this.checkFree(given);
    const x = p.ext();
    if (x.name !== undefined) throw new AlreadyRegisteredError(String(p.self), x.name);
    this.#byName.set(name, p);
    x.name = name;
  }

  /** @internal Called during death cleanup. */
  release(p: Proc): void {
    const name = p.x?.name;
    if (name !== undefined && this.#byName.get(name) === p) this.#byName.delete(name);
  }

  register(name: string | Name, pid: Pid): void {
    validateName(name);
    const q = toPid(pid); // a copy of a pid: its fields read once
    if (q === undefined) throw new InvalidArgumentError('pid', 'a Pid', pid);
    const p = this.#resolve(q);
    if (p === undefined) throw new NoProcError(targetText(q), 'cannot register a name for a process that is not alive');
    this.registerProc(name, p);
  }

  unregister(given: string | Name): boolean {
    const name = validateName(given);
    this.#checkReserved(name, 'unregister');
    const p = this.#byName.get(name);
    if (p === undefined) return false;
    this.#byName.delete(name);
    if (p.x !== undefined) p.x.name = undefined;
    return true;
  }

  whereis<M>(name: Name<M>): Pid<M> | undefined;
  whereis(name: string | Name): Pid | undefined;
  whereis(name: string | Name): Pid | undefined {
    return this.#byName.get(validateName(name))?.self;
  }

  names(): string[] {
    return [...this.#byName.keys()];
  }
}

/** The prefix of Keel's own names. */
export const RESERVED = 'keel.';

/** @internal Throws `ERR_RESERVED_NAME` for a name under `keel.` that a user gave. */
export function refuseReserved(name: string, operation = 'register'): void {
  if (name.startsWith(RESERVED)) throw new ReservedNameError(name, operation);
}

/** The text of a name given as a string or a typed `Name`; throws a typed error for anything else. */
function validateName(given: unknown): string {
  const name = nameOf(given);
  if (name === undefined || name.length === 0) throw new InvalidArgumentError('name', 'a non-empty string or a Name', given);
  return name;
}
