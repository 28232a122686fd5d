/**
 * Errors of the cluster: a node not connected, peers that did not join, the global registry's sync,
 * a value too large to send, a malformed batch of frames, a peer speaking another protocol version,
 * a join refused.
 */
import { KeelError } from './base.js';

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
  /** The revision of the sync's own write, which the cache had to reach (0: the write itself was not acknowledged in time). */
  readonly revision: number;
  /** The last revision the cache had seen when it gave up. */
  readonly seen: number;
  constructor(node: string, timeoutMs: number, revision: number, seen: number) {
    super(
      'ERR_SYNC_TIMEOUT',
      `global registry of node ${node}: ${revision === 0 ? 'the bucket did not acknowledge the sync\'s write' : `the watch did not bring revision ${revision}`} within ${timeoutMs} ms (last seen ${seen}); check that the NATS server answers, or give sync a longer timeoutMs`,
    );
    this.timeoutMs = timeoutMs;
    this.revision = revision;
    this.seen = seen;
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

/**
 * Two ends of a transport speak different versions of its protocol (another copy or version of
 * Keel on one side: a worker script whose `keel/cluster` resolves to a second `node_modules`, an
 * older build): they refuse each other instead of misreading each other's messages.
 */
export class ProtocolMismatchError extends KeelError {
  /** The transport whose protocol differs (`'worker'`). */
  readonly transport: string;
  /** The version this side speaks. */
  readonly local: number;
  /** The version the other side presented; `undefined` when it presented no version number (a Keel from before the check). */
  readonly remote: number | undefined;
  constructor(transport: string, subject: string, local: number, remote: number | undefined, other: string) {
    super(
      'ERR_PROTOCOL_MISMATCH',
      `${subject} speaks ${transport} protocol version ${local}, ${other} ${remote === undefined ? 'presented no version number (a Keel from before the version check)' : `speaks version ${remote}`}; the two cannot talk: make both load the same Keel (check that the worker script resolves keel/cluster to the same copy as the thread that starts it)`,
    );
    this.transport = transport;
    this.local = local;
    this.remote = remote;
  }
}

/**
 * A worker hub refused a node's join: the join named another node than the one the hub attached on
 * that control port (the name it was spawned with), or its incarnation was not a positive safe
 * integer. The hub lets the port go (the name is free again, nothing more is read from it) and
 * reports this error as a process warning; the node's `transport.start` rejects with it. Only a
 * node that speaks the control protocol by hand, or another build of Keel, gets there: a Keel
 * worker checks both before it joins.
 */
export class JoinRefusedError extends KeelError {
  /** The transport whose join was refused (`'worker'`). */
  readonly transport: string;
  /** The node the control port belongs to: the name it was spawned or attached with. */
  readonly node: string;
  /** What was wrong with the join, as the hub said it (`it named "b", not 'a'`). */
  readonly detail: string;
  constructor(transport: string, subject: string, node: string, detail: string) {
    super(
      'ERR_JOIN_REFUSED',
      `${subject} refused the join of node '${node}': ${detail}; a ${transport} node must start its transport under the name it was spawned with (workerNode().name), with a positive safe integer incarnation`,
    );
    this.transport = transport;
    this.node = node;
    this.detail = detail;
  }
}
