import { inspect, types } from 'node:util';
import { describe, InvalidArgumentError } from '../errors.js';

export type Pid<M = any> = {
  readonly node: string;
  readonly creation: number;
  readonly id: number;
} & {
  /**
   * Type-level only: the messages this process accepts. A function parameter, so that `Pid<A | B>`
   * can be used where a `Pid<A>` is expected, but a `Pid<A>` is never sent a `B`.
   */
  readonly __messages?: (message: M) => void;
};

/** A registered name or a pid: anything a message can be sent to. */
export type Target<M = any> = Pid<M> | Name<M> | string;

/**
 * @internal The runtime's typed names. Nominal (a private field), so that only `Name.of` makes one:
 * a plain `{ text }` object is no name.
 */
export class NameImpl<M = any> {
  readonly text: string;
  // type-level only: the messages the process under this name accepts, invariant (as Akka's
  // `ServiceKey[T]`): a name's type is declared once, and the process registered under it must
  // accept exactly that
  declare readonly __name?: (message: M) => M;
  readonly #brand = true;
  constructor(text: string) {
    // checked here, not only in Name.of: the class is reachable from any name (its constructor), and
    // the registry and the sends take a branded name's text as a string
    if (typeof text !== 'string' || text.length === 0) throw new InvalidArgumentError('text', 'a non-empty string', text);
    this.text = text;
    Object.freeze(this); // nor can its text be changed to something else afterwards
  }
  static is(value: unknown): value is NameImpl {
    return typeof value === 'object' && value !== null && #brand in value;
  }
  toString(): string {
    return this.text;
  }
  toJSON(): string {
    return this.text;
  }
  [inspect.custom](): string {
    return `Name(${JSON.stringify(this.text)})`;
  }
}

/**
 * A typed registered name, as Akka's `ServiceKey`: `Name.of<M>('cache')` is the name `'cache'` of a
 * process that accepts `M`. It works wherever a pid or a name does (`send`, `monitor`, calls,
 * `registry.whereis`, which returns a `Pid<M>`), and `spawn(init, { name })` ties the process's
 * message type to it. A name is its text: two names with the same text name the same process.
 */
export type Name<M = any> = NameImpl<M>;

/**
 * Helpers for typed names.
 *
 * @example
 * ```ts
 * const Cache = Name.of<{ type: 'get'; key: string }>('cache');
 * node.spawn(init, { name: Cache }); // init must handle { type: 'get'; key: string }
 * node.send(Cache, { type: 'get', key: 'a' }); // type-checked against the name
 * ```
 */
export const Name = {
  /** A typed name; `text` is what the registry holds (non-empty; names under `keel.` are Keel's own). */
  of<M>(text: string): Name<M> {
    return new NameImpl<M>(text);
  },
  /** True for a name made by {@link Name.of}. */
  is(value: unknown): value is Name {
    return NameImpl.is(value);
  },
};

/**
 * @internal The registered name a target stands for: the string itself, or a typed name's text;
 * undefined for a pid (or anything else).
 */
export function nameOf(target: unknown): string | undefined {
  return typeof target === 'string' ? target : NameImpl.is(target) ? target.text : undefined;
}

// the writer of a pid's process record: a module function, not a static of the class, which any
// pid leads to (its constructor) and through which a pid could be given a forged record
// (a binding assigned once, by the class's static block below, not a wrapper: one call per spawn and death)
/** @internal Sets (or, at its death, clears) the live process record of a runtime pid: the kernel's alone. */
export let setProc: (pid: PidImpl, proc: unknown) => void;
// the readers of the record are module functions too: a static of the class would hand any pid's
// holder its process's record (its Context, and through it the kernel)
/** @internal The live process of a runtime pid, if its process is alive. */
export let procOf: <P>(pid: PidImpl) => P | undefined;
/**
 * @internal The live process of `value` when it is a runtime pid (of any node) whose process is
 * alive. On the path of every send: `instanceof` is the fastest test there (a private brand check
 * `#proc in` cost a tenth of the message rate), and the `try` keeps a proxy that throws from its
 * `getPrototypeOf` trap from escaping as a raw TypeError (it is then no pid: the send refuses it).
 */
export let liveProc: <P>(value: unknown) => P | undefined;
/** @internal The live process of `value` when it is a runtime pid whose process is alive; a brand check first (never runs a proxy's traps). */
export let procOfAny: <P>(value: unknown) => P | undefined;

/**
 * @internal The runtime's pid instances. The live process sits in a private slot, so that a copy of
 * a pid (`{ ...pid }`, `structuredClone`, a message that crossed a worker) is a plain
 * `{ node, creation, id }` that still names the process and never carries the process record.
 */
export class PidImpl {
  readonly node: string;
  readonly creation: number;
  readonly id: number;
  // the record's type is the kernel's business (`Proc`): this file knows no process record, so that
  // the records, which hold pids, and the pids do not import each other
  // set only by the kernel (setProc), never by the constructor: the class is reachable from any pid
  // (its constructor), and a pid made with a forged record would be taken for a live process
  #proc: unknown = undefined;
  constructor(node: string, creation: number, id: number) {
    this.node = node;
    this.creation = creation;
    this.id = id;
  }
  /** True for the runtime's own pid instances (a brand check: never runs a proxy's traps). */
  static is(value: unknown): value is PidImpl {
    return typeof value === 'object' && value !== null && #proc in value;
  }
  static {
    setProc = (pid, proc) => {
      pid.#proc = proc;
    };
    procOf = <P>(pid: PidImpl) => pid.#proc as P | undefined;
    liveProc = <P>(value: unknown) => {
      try {
        return value instanceof PidImpl ? (value.#proc as P | undefined) : undefined;
      } catch {
        return undefined;
      }
    };
    procOfAny = <P>(value: unknown) =>
      typeof value === 'object' && value !== null && #proc in value ? ((value as PidImpl).#proc as P | undefined) : undefined;
  }
  toString(): string {
    return `<${this.node}.${this.id}>`;
  }
  toJSON(): string {
    return formatPid(this);
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

function formatPid(pid: Pid): string {
  return `<${pid.node}.${pid.id}.${pid.creation}>`;
}

/** @internal What a node name may be. */
export const NODE_NAME = /^[A-Za-z0-9_@.-]{1,255}$/;
const PID_TEXT = /^<(.+)\.(\d+)\.(\d+)>$/;

/** @internal True for the text of a pid (`Pid.format`'s `<node.id.creation>`): what `Pid.parse` takes. */
export function isPidText(text: string): boolean {
  const m = PID_TEXT.exec(text);
  return m !== null && NODE_NAME.test(m[1]!) && Number.isSafeInteger(Number(m[2])) && Number.isSafeInteger(Number(m[3]));
}

/**
 * Helpers for pids.
 *
 * @example
 * ```ts
 * const text = Pid.format(pid);          // '<keel-1.42.3735928559>' (node, id, creation)
 * Pid.equals(Pid.parse(text), pid);      // true
 * String(pid);                           // '<keel-1.42>' for display
 * ```
 */
export const Pid = {
  /**
   * The parseable text form `<node.id.creation>`. It carries the creation so that a pid stored
   * by an earlier run of the node is never mistaken for a live process that reuses its id.
   */
  format(pid: Pid): string {
    if (!isPid(pid)) throw new InvalidArgumentError('pid', 'a Pid', pid);
    return formatPid(pid);
  },
  /** Parses the text of {@link Pid.format}; throws `ERR_INVALID_ARGUMENT` on anything else. */
  parse(text: string): Pid {
    const m = typeof text === 'string' ? PID_TEXT.exec(text) : null;
    if (m === null || !NODE_NAME.test(m[1]!)) throw new InvalidArgumentError('text', "a pid formatted '<node.id.creation>'", text, 'use Pid.format(pid)');
    const id = Number(m[2]);
    const creation = Number(m[3]);
    if (!Number.isSafeInteger(id) || !Number.isSafeInteger(creation)) {
      throw new InvalidArgumentError('text', "a pid formatted '<node.id.creation>' with integer parts", text);
    }
    return new PidImpl(m[1]!, creation, id);
  },
  /** True when both name the same process (same node, creation and id). */
  equals(a: Pid, b: Pid): boolean {
    return a === b || (a.id === b.id && a.creation === b.creation && a.node === b.node);
  },
  /** True when `value` has the shape of a pid. */
  is(value: unknown): value is Pid {
    return isPid(value);
  },
};

/**
 * @internal The longest registered name a display (the observer's answers, a component's snapshot)
 * quotes whole. A name has no length limit: a longer one is quoted by its start and its length
 * (`nnn… [10000000 characters]`), or one 10 MB name would make every answer that shows it 10 MB.
 */
export const MAX_NAME_TEXT = 1000;

/** @internal A registered name as a display quotes it (see {@link MAX_NAME_TEXT}). */
export function shortName(name: string): string {
  return name.length <= MAX_NAME_TEXT ? name : `${name.slice(0, MAX_NAME_TEXT)}… [${name.length} characters]`;
}

/**
 * @internal A target as text for an error or a log, the one place a target is rendered: a registered
 * name (a string or a typed `Name`) quoted (`'cache'`), with the pid it was found at when `pid` is
 * given (`'cache' (<keel-1.4>)`); a pid (or a copy of one) as `<node.id>`; anything else described.
 * Never throws: a pid-shaped object may have no string form of its own (a null prototype) or one
 * that throws.
 */
export function targetText(target: unknown, pid?: Pid): string {
  const name = nameOf(target);
  if (name !== undefined) return pid === undefined ? `'${name}'` : `'${name}' (${targetText(pid)})`;
  if (PidImpl.is(target)) return target.toString();
  if (isPid(target)) {
    try {
      return `<${target.node}.${target.id}>`;
    } catch {
      // a getter that threw the second time it was read
    }
  }
  return describe(target);
}

export function isPid(value: unknown): value is Pid {
  if (typeof value !== 'object' || value === null) return false;
  if (PidImpl.is(value)) return true;
  // a copy of a pid is plain data; a proxy is never taken for one (its traps would run, or throw)
  if (types.isProxy(value)) return false;
  try {
    const v = value as Record<string, unknown>;
    return typeof v.node === 'string' && Number.isSafeInteger(v.creation) && Number.isSafeInteger(v.id);
  } catch {
    return false; // a getter that throws
  }
}

/**
 * @internal `value` as a runtime pid: itself when it is one; for a copy of a pid (plain data), a new
 * pid of its fields, each read once, so that what was checked is what is used (a getter may answer
 * differently, or throw, when read again); undefined when it is no pid. Never throws, and never runs
 * a proxy's traps. For the slow paths that take a pid from user code; a runtime pid costs a brand check.
 */
export function toPid(value: unknown): PidImpl | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (PidImpl.is(value)) return value;
  if (types.isProxy(value)) return undefined;
  try {
    const v = value as Record<string, unknown>;
    const node = v.node;
    const creation = v.creation;
    const id = v.id;
    return typeof node === 'string' && Number.isSafeInteger(creation) && Number.isSafeInteger(id) ? new PidImpl(node, creation as number, id as number) : undefined;
  } catch {
    return undefined; // a getter that throws
  }
}

declare const refBrand: unique symbol;
/** A monitor reference, unique on its node. */
export interface Ref {
  readonly [refBrand]: true;
  readonly id: number;
}

/**
 * @internal What a service attaches to the ref of a monitor (the monitor manager's ledger entry). Of another
 * node's process, it is told once when the monitor ends by its `Down`: the process died, or its node
 * went out of reach. Of any process, it is told when its owner ends it with a plain `ctx.demonitor`
 * (the manager's own demonitor detaches it first: whoever demonitors through it knows).
 */
export abstract class RemoteMonitorWatch {
  abstract remoteMonitorEnded(): void;
  abstract demonitored(): void;
}

/** @internal */
export class RefImpl {
  declare readonly [refBrand]: true;
  readonly id: number;
  readonly node: string;
  /** @internal What a layer above keeps about this monitor (the monitor manager's ledger entry). */
  declare attachment: unknown;
  readonly #brand = true;
  constructor(node: string, id: number) {
    this.id = id;
    this.node = node;
    this.attachment = undefined;
  }
  /**
   * True for a ref of this copy of the package: a brand check, which never runs a proxy's traps and,
   * unlike asking the engine whether a value is a proxy, costs no call out of JavaScript (a monitor
   * and demonitor pair checks its ref once).
   */
  static is(value: unknown): value is RefImpl {
    return typeof value === 'object' && value !== null && #brand in value;
  }
  toString(): string {
    return `#Ref<${this.node}.${this.id}>`;
  }
  [inspect.custom](): string {
    return this.toString();
  }
}

declare const timerBrand: unique symbol;
/** A timer started with `ctx.sendAfter`, for `ctx.cancelTimer`. */
export interface TimerRef {
  readonly [timerBrand]: true;
}

/** True for a target: a Pid, or a non-empty registered name. Never throws. */
export function isTarget(value: unknown): value is Target {
  return typeof value === 'string' ? value.length > 0 : NameImpl.is(value) || isPid(value);
}

/** Throws a typed `ERR_INVALID_ARGUMENT` unless `value` is a Pid or a non-empty registered name. */
export function checkTarget(value: unknown, argument = 'target'): asserts value is Target {
  if (!isTarget(value)) throw new InvalidArgumentError(argument, 'a Pid or a non-empty registered name', value);
}
