/**
 * Every error Keel throws, with its stable code.
 *
 * Programmer errors (bad arguments, misuse) throw one of these; expected failures are returned as
 * outcomes instead. Check an error with {@link isKeelError} and its `code`, not with `instanceof`,
 * so that the check survives bundling and duplicated copies of the package.
 *
 * @example
 * ```ts
 * try { node.spawn(42 as never); }
 * catch (e) { if (isKeelError(e, 'ERR_INVALID_ARGUMENT')) console.log(e.message); }
 * ```
 */
import { types } from 'node:util';
import { nearMiss } from './nearMiss.js';

/** The stable codes of Keel's errors. */
export type KeelErrorCode =
  | 'ERR_INVALID_ARGUMENT'
  | 'ERR_NOPROC'
  | 'ERR_NAME_TAKEN'
  | 'ERR_RESERVED_NAME'
  | 'ERR_ALREADY_REGISTERED'
  | 'ERR_PROCESS_EXITED'
  | 'ERR_NODE_STOPPED'
  | 'ERR_IDLE_TIMEOUT'
  | 'ERR_RECEIVE_TIMEOUT'
  | 'ERR_HANDLER_RETURNED'
  | 'ERR_THROWN_VALUE'
  | 'ERR_CALL_TIMEOUT'
  | 'ERR_CALL_EXIT'
  | 'ERR_NOCONNECTION'
  | 'ERR_PEERS_TIMEOUT'
  | 'ERR_DEADLOCK'
  | 'ERR_START_FAILED'
  | 'ERR_MAILBOX_FULL'
  | 'ERR_ABORTED'
  | 'ERR_TASK_TIMEOUT'
  | 'ERR_TASK_EXIT'
  | 'ERR_MAX_CHILDREN'
  | 'ERR_LEAKS_FOUND'
  | 'ERR_DELIVERY'
  | 'ERR_NOT_SERIALIZABLE'
  | 'ERR_MESSAGE_TOO_LARGE'
  | 'ERR_MALFORMED_FRAME'
  | 'ERR_STORE_IN_USE'
  | 'ERR_STORE_UNAVAILABLE'
  | 'ERR_DEAD_LETTER_TOO_LARGE'
  | 'ERR_SERVICE_UNAVAILABLE'
  | 'ERR_PEER_MISSING'
  | 'ERR_INVALID_SIGNAL'
  | 'ERR_WORKFLOW_LIMIT'
  | 'ERR_POOL_TIMEOUT'
  | 'ERR_SYNC_TIMEOUT'
  | 'ERR_TELEMETRY_RECURSION';

/** Base class of every Keel error: a literal `code`, a readable message and an optional `cause`. */
export class KeelError extends Error {
  readonly code: KeelErrorCode;
  constructor(code: KeelErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
  override get name(): string {
    return this.constructor.name;
  }
}

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
 * The target process is dead, unknown or belongs to another node or creation, or the target was a
 * name no process holds (then `registeredName` is that name, and the message says so).
 */
export class NoProcError extends KeelError {
  /** The target as the message names it (`<keel-1.4>`, `'cache'`). */
  readonly target: string;
  /** The registered name the target was given as, when it was one. */
  readonly registeredName: string | undefined;
  /**
   * `what` says what failed (`'cannot call a process that is not alive'`): the message is
   * `what: target`. With `unregistered`, the target was a name nobody holds and `what` is the
   * operation (`'cannot call'`): the message is `what: no process is registered under the name target`.
   */
  constructor(target: string, what = 'no such process', options?: { registeredName?: string | undefined; unregistered?: boolean }) {
    super('ERR_NOPROC', options?.unregistered === true ? `${what}: no process is registered under the name ${target}` : `${what}: ${target}`);
    this.target = target;
    this.registeredName = options?.registeredName;
  }
}

/** A unique name is already registered to another process. */
export class NameTakenError extends KeelError {
  readonly registeredName: string;
  constructor(name: string, owner: string) {
    super('ERR_NAME_TAKEN', `the name ${quotedName(name)} is already registered to ${owner}; unregister it first or pick another name`);
    this.registeredName = name;
  }
}

/** The longest part of a name an error's message quotes (a name has no length limit; a message should). */
const NAME_IN_MESSAGE = 200;

/** A name quoted as an error's message quotes it: whole up to {@link NAME_IN_MESSAGE} characters, else its start and its length. */
function quotedName(name: string): string {
  return name.length <= NAME_IN_MESSAGE ? `'${name}'` : `'${name.slice(0, NAME_IN_MESSAGE)}…' (${name.length} characters)`;
}

/** A name under `keel.` is Keel's own: its services and components find each other by such names. */
export class ReservedNameError extends KeelError {
  readonly registeredName: string;
  constructor(name: string, operation: string) {
    super('ERR_RESERVED_NAME', `cannot ${operation} ${quotedName(name)}: names under 'keel.' are reserved for Keel's own services and components; pick a name outside 'keel.'`);
    this.registeredName = name;
  }
}

/** A process that already has a unique name was given a second one (as on the BEAM, one name per process). */
export class AlreadyRegisteredError extends KeelError {
  constructor(pid: string, name: string) {
    super('ERR_ALREADY_REGISTERED', `${pid} is already registered as ${quotedName(name)}; a process has at most one unique name`);
  }
}

/** A context was used after its process exited (a zombie continuation), for an operation that must fail loudly. */
export class ProcessExitedError extends KeelError {
  readonly pid: string;
  constructor(pid: string, operation: string) {
    super('ERR_PROCESS_EXITED', `${pid} has exited; \`ctx.${operation}\` cannot run in a process that is no longer alive`);
    this.pid = pid;
  }
}

/** The node has shut down; it spawns nothing more. */
export class NodeStoppedError extends KeelError {
  constructor(node: string, operation: string) {
    super('ERR_NODE_STOPPED', `node ${node} has shut down; \`${operation}\` is no longer possible`);
  }
}

/** `node.idle({ timeoutMs })` gave up; `busy` names the processes that were still working. */
export class IdleTimeoutError extends KeelError {
  readonly busy: readonly string[];
  constructor(node: string, timeoutMs: number, busy: readonly string[], detail: string) {
    super(
      'ERR_IDLE_TIMEOUT',
      `node ${node} was not idle after ${timeoutMs} ms: ${busy.length > 0 ? `busy ${busy.join(', ')}` : detail}`,
    );
    this.busy = busy;
  }
}

/** A test probe waited longer than its timeout for a message. */
export class ReceiveTimeoutError extends KeelError {
  constructor(pid: string, timeoutMs: number, seen: number) {
    super('ERR_RECEIVE_TIMEOUT', `probe ${pid} received no matching message within ${timeoutMs} ms (${seen} other message(s) received)`);
  }
}

/** `init` returned something that is not a message handler. */
export class HandlerReturnedError extends KeelError {
  constructor(pid: string, given: unknown) {
    super('ERR_HANDLER_RETURNED', `init of ${pid} must return a message handler function, got ${describe(given)}`);
  }
}

/** A handler threw or rejected with a value that is not an Error; the value is kept in `value`. */
export class ThrownValueError extends KeelError {
  readonly value: unknown;
  constructor(value: unknown) {
    super('ERR_THROWN_VALUE', `a non-Error value was thrown: ${describe(value)}`, { cause: value });
    this.value = value;
  }
}

/** A call got no reply within its timeout. The request stays with the server; a late reply is discarded. */
export class CallTimeoutError extends KeelError {
  /** The server as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the server was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  readonly timeoutMs: number;
  constructor(target: string, timeoutMs: number, registeredName?: string) {
    super('ERR_CALL_TIMEOUT', `no reply from ${target} within ${timeoutMs} ms`);
    this.target = target;
    this.registeredName = registeredName;
    this.timeoutMs = timeoutMs;
  }
}

/**
 * Where a call stood when its server exited: still `'queued'` in the server's mailbox behind other
 * messages (the server never saw it), being `'handling'` (the server's handler had taken it and was
 * running), or `'deferred'` (its `handleCall` returned `{ noreply }`: the server owed a later reply).
 */
export type CallStage = 'queued' | 'handling' | 'deferred';

const STAGE_TEXT: Record<CallStage, string> = {
  queued: 'exited while this call was queued (not yet handled)',
  handling: 'exited while handling this call',
  deferred: 'exited before replying to this call (its handler had deferred the reply)',
};

/**
 * The server exited before it replied; `reason` is its exit reason. `stage` tells the call the
 * server died handling (`'handling'`: the culprit, for a crash) from the calls that were queued
 * behind it (`'queued'`: bystanders) and those it had deferred (`'deferred'`).
 */
export class CallExitError extends KeelError {
  /** The server as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the server was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  readonly reason: unknown;
  /** Where the call stood when the server exited; undefined when it was not a call (`GenServer.stop`). */
  readonly stage: CallStage | undefined;
  constructor(target: string, reason: unknown, reasonText: string, options?: { stage?: CallStage | undefined; registeredName?: string | undefined }) {
    const stage = options?.stage;
    super('ERR_CALL_EXIT', `${target} ${stage === undefined ? 'exited before replying' : STAGE_TEXT[stage]}: ${reasonText}`, { cause: reason });
    this.target = target;
    this.registeredName = options?.registeredName;
    this.reason = reason;
    this.stage = stage;
  }
}

/**
 * The node of the process could not be reached: it is not connected to this node's cluster, or it
 * went down (`noconnection`) while a call to one of its processes waited for the reply.
 */
export class NoConnectionError extends KeelError {
  /** The process as the message names it (`<node-b.4>`). */
  readonly target: string;
  /** The node that could not be reached. */
  readonly node: string;
  readonly reason = 'noconnection' as const;
  constructor(target: string, node: string, what: string) {
    super('ERR_NOCONNECTION', `${what} ${target}: node ${node} is not connected (noconnection); check that it runs and has joined this cluster`);
    this.target = target;
    this.node = node;
  }
}

/**
 * `cluster.waitFor` gave up: the named nodes did not join this node's cluster within its timeout
 * (they are not running, are on another transport, or use another cluster name).
 */
export class PeersTimeoutError extends KeelError {
  /** The nodes that had not joined when it gave up. */
  readonly missing: readonly string[];
  constructor(node: string, missing: readonly string[], timeoutMs: number) {
    super('ERR_PEERS_TIMEOUT', `cluster ${node}: no hello from ${missing.join(', ')} within ${timeoutMs} ms; check that they run and join the same cluster`);
    this.missing = missing;
  }
}

/**
 * `GlobalRegistry.sync()` gave up: the KV watch that feeds the registry's cache had not brought
 * back the sync's own write within its timeout (the bucket's server frozen or unreachable, or a
 * watch that kept stalling). Nothing is undone: a later sync may succeed.
 */
export class SyncTimeoutError extends KeelError {
  readonly timeoutMs: number;
  /** The revision of the sync's own write, which the cache had to reach. */
  readonly revision: number;
  /** The last revision the cache had seen when it gave up. */
  readonly seen: number;
  constructor(node: string, timeoutMs: number, revision: number, seen: number) {
    super(
      'ERR_SYNC_TIMEOUT',
      `global registry of node ${node}: the watch did not bring revision ${revision} within ${timeoutMs} ms (last seen ${seen}); check that the NATS server answers, or give sync a longer timeoutMs`,
    );
    this.timeoutMs = timeoutMs;
    this.revision = revision;
    this.seen = seen;
  }
}

/** A process waited on itself (a GenServer calling itself, a process sending itself a `'handled'` message). */
export class DeadlockError extends KeelError {
  constructor(pid: string, what: string) {
    super('ERR_DEADLOCK', `${pid} ${what}: it would wait for itself forever`);
  }
}

/** A behaviour's `init` failed (threw, rejected or exited); `reason` is why. */
export class StartError extends KeelError {
  readonly reason: unknown;
  constructor(what: string, reason: unknown, reasonText: string) {
    super('ERR_START_FAILED', `${what} failed to start: ${reasonText}`, { cause: reason });
    this.reason = reason;
  }
}

/** A bounded mailbox refused a request that must not be dropped silently. */
export class MailboxFullError extends KeelError {
  /** The receiver as the message names it: `<keel-1.4>`, or `'cache' (<keel-1.4>)` for a call by name. */
  readonly target: string;
  /** The registered name the receiver was called by, when it was called by name. */
  readonly registeredName: string | undefined;
  constructor(target: string, registeredName?: string) {
    super('ERR_MAILBOX_FULL', `the mailbox of ${target} is full; the request was not delivered`);
    this.target = target;
    this.registeredName = registeredName;
  }
}

/** An operation was aborted through its `signal`; `reason` is the signal's reason. */
export class AbortedError extends KeelError {
  readonly reason: unknown;
  constructor(what: string, reason: unknown) {
    super('ERR_ABORTED', `${what} was aborted`, { cause: reason });
    this.reason = reason;
  }
}

/** `Task.await` got no result within its timeout. */
export class TaskTimeoutError extends KeelError {
  constructor(pid: string, timeoutMs: number) {
    super('ERR_TASK_TIMEOUT', `task ${pid} did not finish within ${timeoutMs} ms`);
  }
}

/** A task exited without a result (it crashed or was killed); `reason` is its exit reason. */
export class TaskExitError extends KeelError {
  readonly reason: unknown;
  constructor(pid: string, reason: unknown, reasonText: string) {
    super('ERR_TASK_EXIT', `task ${pid} exited: ${reasonText}`, { cause: reason });
    this.reason = reason;
  }
}

/** A DynamicSupervisor already runs its `maxChildren`. */
export class MaxChildrenError extends KeelError {
  readonly maxChildren: number;
  constructor(supervisor: string, maxChildren: number) {
    super('ERR_MAX_CHILDREN', `${supervisor} already runs its maximum of ${maxChildren} children`);
    this.maxChildren = maxChildren;
  }
}

/** `expectNoLeaks` found something a dead process left behind, or a suspected monitor leak. */
export class LeaksFoundError extends KeelError {
  readonly leaks: readonly string[];
  constructor(node: string, leaks: readonly string[]) {
    super('ERR_LEAKS_FOUND', `node ${node} has ${leaks.length} leak(s):\n${leaks.map((l) => `  - ${l}`).join('\n')}`);
    this.leaks = leaks;
  }
}

/** A supervised send with `onError: 'raise'` failed; `outcome` says how. */
export class DeliveryError extends KeelError {
  readonly outcome: unknown;
  constructor(target: string, reason: string, attempts: number, outcome: unknown) {
    super('ERR_DELIVERY', `delivery to ${target} failed after ${attempts} attempt(s): ${reason}`);
    this.outcome = outcome;
  }
}

/** A message a durable store cannot keep (a function, a symbol, a class instance with behaviour). */
export class NotSerializableError extends KeelError {
  readonly path: string;
  /** What the value at `path` is (a function, a symbol, a class instance, ...). */
  readonly what: string;
  /**
   * `subject`: what must be plain data (a dead letter's message unless told; the agent store's
   * values; a message sent to another node). `carried`: the kinds of data that subject takes.
   */
  constructor(path: string, what: string, subject = "a dead letter's message", carried = 'objects, arrays, primitives, bigints, Dates, Maps, Sets, typed arrays') {
    super('ERR_NOT_SERIALIZABLE', `${subject} must be plain data (${carried}); ${path} is ${what}`);
    this.path = path;
    this.what = what;
  }
}

/**
 * A value sent to another node encodes to more than the cluster's size limit: refused at send time,
 * never cut. `reason` is `'message_too_large'` (what a supervised send or a call reports).
 */
export class MessageTooLargeError extends KeelError {
  /** The exit-reason text for this refusal. */
  readonly reason = 'message_too_large';
  /** The encoded size in UTF-16 code units: exact when `exact`, else a lower bound (encoding stopped early). */
  readonly size: number;
  /** The most the cluster carries for one value. */
  readonly limit: number;
  /** False when encoding stopped as soon as the value was known to be too large (`size` is then a lower bound). */
  readonly exact: boolean;
  constructor(size: number, limit: number, exact = true, subject = 'a message sent to another node') {
    super(
      'ERR_MESSAGE_TOO_LARGE',
      `${subject} must encode to at most ${limit} characters, got ${exact ? '' : 'at least '}${size}; send something smaller, such as a reference to where the data is kept (message_too_large)`,
    );
    this.size = size;
    this.limit = limit;
    this.exact = exact;
  }
}

/**
 * A batch of cluster frames that cannot be decoded: not JSON, a key that could pollute prototypes
 * (`__proto__`, or `prototype` under `constructor`), or a malformed `$keel` tag. The whole batch is
 * refused; it came from a peer running another codec or from someone forging frames.
 */
export class MalformedFrameError extends KeelError {
  /** What was wrong, in a few words. */
  readonly detail: string;
  constructor(expected: string, given: string, cause?: unknown) {
    super(
      'ERR_MALFORMED_FRAME',
      `a cluster batch is malformed: expected ${expected}, got ${given}; the batch is dropped (check that every node runs the same Keel version, and who may publish on the cluster's subjects)`,
      cause === undefined ? undefined : { cause },
    );
    this.detail = `expected ${expected}, got ${given}`;
  }
}

/** Another node (in this or another OS process) owns the SQLite file. */
export class StoreInUseError extends KeelError {
  constructor(file: string, owner: string, store = 'dead letter store') {
    super('ERR_STORE_IN_USE', `the ${store} ${file} is owned by ${owner}; two nodes never share one ${store === 'dead letter store' ? 'queue' : 'store'}`);
  }
}

/**
 * The SQLite dead letter store could not be opened: its path is a directory, its directory does not
 * exist or cannot be written, the file is not a database, or another connection holds it locked.
 * `cause` is the driver's own error; the message says the path and what to do.
 */
export class StoreUnavailableError extends KeelError {
  readonly file: string;
  /** SQLite's code (`SQLITE_CANTOPEN`, `SQLITE_BUSY`, `SQLITE_NOTADB`, ...), when the driver gave one. */
  readonly sqliteCode: string | undefined;
  /** Why, in a few words: the driver's message. */
  readonly why: string;
  /** What to do about it. */
  readonly hint: string;
  constructor(file: string, why: string, sqliteCode: string | undefined, hint: string, cause: unknown, store = 'dead letter store') {
    super('ERR_STORE_UNAVAILABLE', `the ${store} ${file} could not be opened: ${why}${sqliteCode === undefined ? '' : ` (${sqliteCode})`}; ${hint}`, { cause });
    this.file = file;
    this.sqliteCode = sqliteCode;
    this.why = why;
    this.hint = hint;
  }
}

/**
 * A store file stamped (`PRAGMA user_version`) with a schema version newer than the one this Keel
 * writes: made by a newer Keel, whose tables this one could misread or damage. Refused before
 * anything is written to it (`ERR_STORE_UNAVAILABLE`, as any store that cannot be opened).
 */
export class StoreVersionError extends StoreUnavailableError {
  /** The file's schema version. */
  readonly version: number;
  /** The newest schema version this Keel reads and writes. */
  readonly supported: number;
  constructor(file: string, version: number, supported: number, store = 'dead letter store') {
    super(
      file,
      `its schema version (user_version) is ${version}, newer than the version ${supported} this Keel writes`,
      undefined,
      'open it with the Keel that made it, or a newer one; this one leaves the file as it is',
      undefined,
      store,
    );
    this.version = version;
    this.supported = supported;
  }
}

/** A dead letter too large for its durable store: refused alone, as a message that cannot be serialized is. */
export class DeadLetterTooLargeError extends KeelError {
  /** The size of the serialized message and metadata. */
  readonly bytes: number;
  /** The most the store takes. */
  readonly limit: number;
  constructor(bytes: number, limit: number, cause?: unknown) {
    super(
      'ERR_DEAD_LETTER_TOO_LARGE',
      `a dead letter's message and metadata take ${bytes} bytes serialized: too large for the store, which takes at most ${limit} bytes per entry; dead-letter something smaller, such as a reference to where the data is kept`,
      cause === undefined ? undefined : { cause },
    );
    this.bytes = bytes;
    this.limit = limit;
  }
}

/** A resource pool had no resource for a checkout within its timeout (the caller waited in line that long). */
export class PoolTimeoutError extends KeelError {
  /** The pool's registered name. */
  readonly pool: string;
  readonly timeoutMs: number;
  /** What timed out: a caller's checkout, or the pool's own call of `create()`. */
  readonly operation: 'checkout' | 'create';
  constructor(pool: string, timeoutMs: number, operation: 'checkout' | 'create' = 'checkout') {
    super(
      'ERR_POOL_TIMEOUT',
      operation === 'create'
        ? `resource pool '${pool}': create() did not settle within ${timeoutMs} ms; it counts as a failed creation and is retried (raise createTimeoutMs if creating is that slow)`
        : `resource pool '${pool}' had no resource free within ${timeoutMs} ms; check resources in sooner, raise size or maxOverflow, or wait longer`,
    );
    this.pool = pool;
    this.timeoutMs = timeoutMs;
    this.operation = operation;
  }
}

/** A node service: the monitor manager (`node.monitors`) or the dead letter queue (`node.deadLetters`). */
export type ServiceName = 'monitors' | 'deadLetters';

/**
 * Why a node service is not running: `'disabled'`, the node was created with `services: false`;
 * `'node_stopped'`, the node has shut down (the service stopped with it).
 */
export type ServiceUnavailableReason = 'disabled' | 'node_stopped';

const SERVICE_TEXT: Record<ServiceName, string> = { monitors: 'monitor manager', deadLetters: 'dead letter queue' };

/**
 * A method of a node service was called while the service is not running, as a `gen_server:call`
 * to a process that is not there exits with `noproc`: thrown by the monitor manager's methods,
 * the rejection of the dead letter queue's. `node.monitors.available` and
 * `node.deadLetters.available` tell beforehand.
 */
export class ServiceUnavailableError extends KeelError {
  /** The service called: `'monitors'` or `'deadLetters'`. */
  readonly service: ServiceName;
  /** Why it is not running: `'disabled'` (`services: false`) or `'node_stopped'` (the node has shut down). */
  readonly reason: ServiceUnavailableReason;
  /** The method called, as `deadLetters.stats`. */
  readonly operation: string;
  constructor(service: ServiceName, reason: ServiceUnavailableReason, operation: string) {
    const what = SERVICE_TEXT[service];
    super(
      'ERR_SERVICE_UNAVAILABLE',
      reason === 'disabled'
        ? `\`node.${operation}\` cannot run: the node was created with \`services: false\`, so it has no ${what}; create the node without \`services: false\`, or check \`node.${service}.available\` first`
        : `\`node.${operation}\` cannot run: the node has shut down, and its ${what} with it; check \`node.${service}.available\` first`,
    );
    this.service = service;
    this.reason = reason;
    this.operation = operation;
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

/** A signal that is not a valid CloudEvents 1.0 event: the message names the attribute and what it must be. */
export class InvalidSignalError extends KeelError {
  /** The attribute that was wrong (`type`, `source`, `id`, ...). */
  readonly attribute: string;
  constructor(attribute: string, expected: string, given: unknown) {
    super('ERR_INVALID_SIGNAL', `invalid signal: \`${attribute}\` must be ${expected}, got ${describe(given)}`);
    this.attribute = attribute;
  }
}

/** A coordinator already runs its limit of concurrent workflows; only the new workflow is refused. */
export class WorkflowLimitError extends KeelError {
  readonly limit: number;
  constructor(limit: number) {
    super('ERR_WORKFLOW_LIMIT', `the coordinator already runs ${limit} workflows (maxConcurrentWorkflows); wait for one to finish or raise the limit`);
    this.limit = limit;
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

/** @internal What a getter or a proxy trap threw, in a few words; never throws itself. */
export function thrownText(e: unknown): string {
  try {
    return isError(e) ? `${String(e.name)}: ${String(e.message)}` : describe(e);
  } catch {
    return 'a value that cannot be inspected';
  }
}

/** True when `error` is a Keel error, optionally with the given code. */
export function isKeelError(error: unknown, code?: KeelErrorCode): error is KeelError {
  if (typeof error !== 'object' || error === null) return false;
  const c = (error as { code?: unknown }).code;
  if (typeof c !== 'string' || !c.startsWith('ERR_')) return false;
  return code === undefined || c === code;
}

/**
 * True for an Error. It never throws and never runs a proxy's traps: a proxy (revoked or not) is
 * not an Error here, whatever it wraps.
 */
export function isError(value: unknown): value is Error {
  if (typeof value !== 'object' || value === null || types.isProxy(value)) return false;
  try {
    return value instanceof Error; // a proxy further up the prototype chain may still throw
  } catch {
    return false;
  }
}

/** Wraps a thrown value into an Error, keeping Errors as they are; never throws, whatever the value. */
export function toError(value: unknown): Error {
  return isError(value) ? value : new ThrownValueError(value);
}

/** A short, safe description of a value for error messages; never throws, whatever the value. */
export function describe(value: unknown): string {
  try {
    return describeUnsafe(value);
  } catch {
    return 'a value that cannot be inspected';
  }
}

function describeUnsafe(value: unknown): string {
  if (value === null) return 'null';
  if ((typeof value === 'object' || typeof value === 'function') && types.isProxy(value)) return 'a proxy';
  switch (typeof value) {
    case 'string':
      return JSON.stringify(value.length > 60 ? `${value.slice(0, 57)}...` : value);
    case 'number':
    case 'boolean':
    case 'bigint':
      return String(value);
    case 'undefined':
      return 'undefined';
    case 'function':
      return `a function${value.name ? ` (${value.name})` : ''}`;
    case 'symbol':
      return value.toString();
    default: {
      if (Array.isArray(value)) return `an array of length ${value.length}`;
      // a promise where a value belongs is most often a missing `await` (of a start, a call, ...)
      if (types.isPromise(value)) return 'a Promise (a missing await?)';
      const ctor = (value as { constructor?: { name?: string } }).constructor?.name;
      return ctor && ctor !== 'Object' ? `an instance of ${ctor}` : 'an object';
    }
  }
}
