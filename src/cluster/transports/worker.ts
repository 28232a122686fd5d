/**
 * The worker_threads transport: the nodes of one cluster run on worker threads of one OS process
 * (and, if wanted, one in the thread that started them) and talk over `MessagePort`s.
 *
 * A {@link WorkerHub}, in the thread that starts the workers, hands each node a control port and,
 * for every pair of nodes that have joined, one `MessageChannel` whose two ends it transfers to the
 * two nodes. After that the hub is out of the data path: a batch goes straight from one node's
 * thread to the other's, one `postMessage` of one string per batch.
 *
 * - From: each pair port belongs to exactly one peer (the hub says which), so the name given to
 *   {@link TransportHandler.receive} is the port's, never a claim inside the batch.
 * - Order: one port per pair carries direct batches, broadcasts and pings, so per-pair order holds.
 * - Peer gone: when a peer's thread ends (exit, crash, `worker.terminate()`) or its transport
 *   closes, Node closes its ends of the ports and this side's pair port emits `'close'` after the
 *   messages already queued on it (checked on Node 20.19+); that is {@link TransportHandler.peerGone}.
 * - Version: the hub's handle and the node's `join` carry {@link WORKER_PROTOCOL_VERSION}; a node and
 *   a hub that speak different versions (another copy or build of Keel on one side) refuse each other
 *   with a {@link ProtocolMismatchError}, as Erlang's distribution handshake refuses a peer it cannot
 *   talk to, instead of misreading each other's messages.
 * - Probe: `gone` when there is no open port to the peer, `alive` when it answers a ping on the
 *   port, `timeout` when it does not answer in time (a busy or blocked thread).
 * - Threads: a joined node's control port keeps its thread alive until `close()`; pair ports are
 *   unref'ed. `close()` closes every port, so a closed cluster lets the process exit.
 * - Flow: a `MessagePort` queues without bound, so a peer that does not read (a busy or blocked
 *   thread) while this one sends would grow its queue until the process runs out of memory. Each
 *   side counts what it posted on a pair port and the peer has not yet said it read, each batch its
 *   length plus a fixed cost of a queued message, {@link WORKER_BATCH_OVERHEAD} (the receiver counts
 *   alike and acknowledges every eighth of the window it reads, `['a', n]`); a batch that would take
 *   the unread past `maxInFlight` is not posted but dropped, and the cluster is told
 *   ({@link TransportHandler.overloaded}), as Akka drops what overflows an association's send queue.
 */
import { isMainThread, MessageChannel, type MessagePort, type Transferable, Worker, type WorkerOptions, workerData } from 'node:worker_threads';
import { checkKeys, describe, InvalidArgumentError, JoinRefusedError, NameTakenError, NodeStoppedError, ProtocolMismatchError, thrownText } from '../../errors.js';
import type { NodeIdentity, ProbeResult, Transport, TransportHandler } from '../Transport.js';

/** The key under which {@link WorkerHub.spawnNode} puts the node's name and control port in `workerData`. */
const HANDLE_KEY = 'keelWorkerNode';
const NAME_RE = /^[A-Za-z0-9_-]{1,64}$/;
/**
 * The version of the worker transport's protocol: the handle a {@link WorkerHub} puts in a worker's
 * `workerData`, the control messages between the hub and its nodes, and the pair ports' messages.
 * The hub's handle and each node's `join` carry it; a node and a hub that speak different versions
 * (a worker script whose `keel/cluster` is another copy or build of Keel) refuse each other with
 * {@link ProtocolMismatchError} (`ERR_PROTOCOL_MISMATCH`). Raised on any change to those messages.
 */
export const WORKER_PROTOCOL_VERSION = 1;
/** The default {@link Transport.maxBatchSize}: 8 Mi UTF-16 code units. */
export const DEFAULT_WORKER_MAX_BATCH = 8 * 1024 * 1024;
/**
 * The largest {@link Transport.maxBatchSize}: 256 Mi code units. A batch is one string, joined from
 * its frames, and V8's longest string is 2^29 - 24: a larger bound would let a join throw inside the
 * flush, where nothing could catch it.
 */
export const MAX_WORKER_MAX_BATCH = 2 ** 28;
/** The default {@link WorkerTransportOptions.maxInFlight}: 64 Mi (at least twice the largest batch's count, `maxBatchSize` + {@link WORKER_BATCH_OVERHEAD}). */
export const DEFAULT_WORKER_MAX_IN_FLIGHT = 64 * 1024 * 1024;
/**
 * What a batch counts in a peer's window besides its length, in code units: a message queued on a
 * `MessagePort` costs its serialized text (a byte per code unit, two if any is outside Latin-1) and
 * about 250 to 580 bytes more (measured on Node 20.20: RSS of a thread posting 25,000 to 500,000
 * batches of 1 to 10,000 code units to a blocked one). Counting it keeps the bound of
 * `maxInFlight` in bytes for tiny batches as for large ones.
 */
export const WORKER_BATCH_OVERHEAD = 512;
/** How long a join waits for the older nodes to acknowledge the newcomer's port (a blocked thread does not answer). */
const JOIN_ACK_TIMEOUT_MS = 2000;

// The handle in a spawned worker's workerData[HANDLE_KEY]: { name, port, version } (version: WORKER_PROTOCOL_VERSION;
// a handle without one is from a Keel before the check). What must never change from one version to the next, so that
// any two can tell they differ: the handle's `version`, and the join's fourth element.
// Control messages (hub <-> node), arrays on the control port:
//   node -> hub: ['join', name, incarnation, version]
//   hub -> node: ['peer', name, port] | ['joined'] | ['refused', detail] | ['refused', reason, 'protocol', version]
//   (['refused', detail]: a join naming another node, or of a bad incarnation; detail says which, as JoinRefusedError's)
// The hub checks a join's version before anything else and introduces (pairs) only nodes it let join: the pair ports
// below need no check of their own.
// Pair port messages: a string is a direct batch; ['b', batch] a broadcast; ['p', id] a ping; ['q', id] its answer;
// ['a', n] says batches counting n were read (each its length plus WORKER_BATCH_OVERHEAD); ['w', n] (the first on the port) says the sender's maxInFlight.
type ToHub = readonly ['join', string, number, number] | readonly ['peer-ack', string];
type ToNode = readonly ['peer', string, MessagePort] | readonly ['joined'] | readonly ['refused', string] | readonly ['refused', string, 'protocol', number];

/** A version as the other side presented it: any number (1.5 and NaN say what came), or undefined for anything else (no version). */
function presentedVersion(v: unknown): number | undefined {
  return typeof v === 'number' ? v : undefined;
}

/** Options of a worker transport. */
export interface WorkerTransportOptions {
  /** The largest batch the cluster layer hands this transport, in UTF-16 code units; default 8 Mi. */
  readonly maxBatchSize?: number;
  /**
   * The most a peer may have been sent and not yet read (its `MessagePort`'s queue), each batch
   * counting its length in UTF-16 code units plus {@link WORKER_BATCH_OVERHEAD} (512): a batch past
   * it is dropped and the cluster told (the peer goes down). A unit is about a byte of the queue
   * (two for text outside Latin-1). At least twice `maxBatchSize + 512`; default 64 Mi, or twice
   * `maxBatchSize + 512` if that is more.
   */
  readonly maxInFlight?: number;
}

/** Options of {@link WorkerHub.spawnNode}. */
export interface SpawnNodeOptions {
  /** The node's name (`[A-Za-z0-9_-]{1,64}`): the node in the worker must start its transport with it. */
  readonly name: string;
  /** Anything structured-cloneable, for the worker script: {@link workerNode}`().data` reads it. */
  readonly workerData?: unknown;
  /** Ports or buffers inside `workerData` to transfer. */
  readonly transferList?: readonly Transferable[];
  /** Other `Worker` options (`argv`, `env`, `execArgv`, `resourceLimits`, ...). */
  readonly workerOptions?: Omit<WorkerOptions, 'workerData' | 'transferList'>;
}

/** What a worker started by {@link WorkerHub.spawnNode} was given: its node name and the caller's data. */
export interface WorkerNodeInfo {
  readonly name: string;
  readonly data: unknown;
}

/**
 * Starts worker-thread nodes and introduces them to each other. Create one per cluster, in the
 * thread that starts the workers.
 */
export interface WorkerHub {
  /**
   * Starts `script` on a new worker thread as the node `name`. The script calls
   * {@link workerTransport}`()` to get its transport (and {@link workerNode}`()` for its name and
   * data). Throws `ERR_NAME_TAKEN` while a node of that name is attached to this hub. The worker's
   * uncaught error ends its thread only: without an `'error'` listener of the caller's, it is a
   * process warning (`KEEL_WORKER_NODE_ERROR`). A worker whose Keel speaks another
   * {@link WORKER_PROTOCOL_VERSION} is refused (never introduced to the others), and the hub reports
   * it as a process warning carrying the {@link ProtocolMismatchError} (`ERR_PROTOCOL_MISMATCH`). A
   * join under another name, or with an incarnation that is not a positive safe integer, is refused
   * alike, and reported as a warning carrying the {@link JoinRefusedError} (`ERR_JOIN_REFUSED`). A
   * refused node's control port is let go: nothing more is read from it, and its name is free again.
   */
  spawnNode(script: string | URL, options: SpawnNodeOptions): Worker;
  /** A transport for a node `name` in this thread (beside the workers'). Throws `ERR_NAME_TAKEN` as `spawnNode`. */
  transport(name: string, options?: WorkerTransportOptions): Transport;
  /** The names of the nodes that have joined and not left, in join order. */
  readonly nodes: readonly string[];
  /**
   * Terminates the workers this hub started that still run and closes the hub's ports: a join under
   * way or waiting ends there (a node in this thread: its `start` rejects with `ERR_NODE_STOPPED`).
   * Idempotent.
   */
  close(): Promise<void>;
}

interface Member {
  readonly name: string;
  readonly control: MessagePort;
  worker: Worker | undefined;
  joined: boolean;
  /** While joining: the older nodes that have not yet acknowledged this one's port. */
  pending?: Set<Member> | undefined;
  /** A node in the hub's thread: tells its transport that the hub let it go. */
  released?: () => void;
}

function checkName(name: unknown, argument: string): string {
  if (typeof name !== 'string' || !NAME_RE.test(name)) throw new InvalidArgumentError(argument, 'a node name matching [A-Za-z0-9_-]{1,64}', name);
  return name;
}

interface Limits {
  readonly maxBatchSize: number;
  readonly maxInFlight: number;
}

function toLimits(options: WorkerTransportOptions | undefined, argument: string): Limits {
  if (options === undefined) return { maxBatchSize: DEFAULT_WORKER_MAX_BATCH, maxInFlight: DEFAULT_WORKER_MAX_IN_FLIGHT };
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError(argument, '{ maxBatchSize?, maxInFlight? }', options);
  checkKeys(options, ['maxBatchSize', 'maxInFlight'], argument);
  // each read once: a getter's second answer is not what was checked
  const { maxBatchSize: v, maxInFlight: w } = options;
  if (v !== undefined && (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1 || v > MAX_WORKER_MAX_BATCH)) {
    throw new InvalidArgumentError(`${argument}.maxBatchSize`, `a positive integer up to ${MAX_WORKER_MAX_BATCH} (2^28 code units)`, v);
  }
  const maxBatchSize = v ?? DEFAULT_WORKER_MAX_BATCH;
  // twice the largest batch's count: what is left unacknowledged (under an eighth) and the largest batch always fit
  const least = 2 * (maxBatchSize + WORKER_BATCH_OVERHEAD);
  if (w !== undefined && (typeof w !== 'number' || !Number.isSafeInteger(w) || w < least)) {
    throw new InvalidArgumentError(`${argument}.maxInFlight`, `an integer of at least twice maxBatchSize + ${WORKER_BATCH_OVERHEAD} (${least})`, w);
  }
  return { maxBatchSize, maxInFlight: w ?? Math.max(DEFAULT_WORKER_MAX_IN_FLIGHT, least) };
}

/**
 * Creates a {@link WorkerHub}.
 *
 * @example
 * ```ts fragment
 * const hub = createWorkerHub();
 * hub.spawnNode(new URL('./node.js', import.meta.url), { name: 'a' });
 * ```
 */
export function createWorkerHub(): WorkerHub {
  const members = new Map<string, Member>();
  let closed = false;

  const detach = (member: Member): void => {
    if (members.get(member.name) === member) members.delete(member.name);
    member.control.close();
    // its own join, if it was under way, is over (the wait for its acknowledgements too)
    member.pending = undefined;
    member.released?.();
    // a newcomer waiting for this one's acknowledgement waits no more
    for (const other of members.values()) if (other.pending?.delete(member) === true) settleJoin(other);
    if (joining === member) {
      joining = undefined;
      pump();
    }
  };

  const onControl = (member: Member, message: unknown): void => {
    if (members.get(member.name) !== member || !Array.isArray(message)) return;
    const [kind, name, incarnation, version] = message as unknown as [string, string, number, unknown];
    if (kind === 'peer-ack') {
      // `member`, an older node, has the newcomer `name`'s port
      const newcomer = members.get(name);
      newcomer?.pending?.delete(member);
      if (newcomer !== undefined) settleJoin(newcomer);
      return;
    }
    if (kind !== 'join' || member.joined || member.pending !== undefined || queue.includes(member)) return;
    if (version !== WORKER_PROTOCOL_VERSION) {
      // another Keel in the worker (or one from before the check, which sends no version): refused
      // before it is introduced to anyone, and reported, since its thread may not say why it stopped.
      // Then its control port is let go (the refusal is delivered before the close), as a failed
      // handshake closes its connection: nothing more is read from it (a later join, of this
      // version too, is never taken; a thread that keeps posting joins makes one warning, not one
      // each), and its name is free again at once
      const error = new ProtocolMismatchError('worker', 'this worker hub', WORKER_PROTOCOL_VERSION, presentedVersion(version), `the node '${member.name}'`);
      member.control.postMessage(['refused', error.message, 'protocol', WORKER_PROTOCOL_VERSION] satisfies ToNode);
      detach(member);
      process.emitWarning(error);
      return;
    }
    if (name !== member.name || !Number.isSafeInteger(incarnation) || incarnation <= 0) {
      // refused, and let go, as a join of another version is, for the same reasons: the refusal is
      // final (nothing more is read from the port: a retry, right or wrong, is never taken, and a
      // thread that keeps posting bad joins makes one warning), the name is free again at once, and
      // it is reported, since the thread may not say why it stopped. What the join carried is
      // described, never converted: a value whose toString is not a function throws in String(),
      // and a huge name is not echoed back whole
      const detail = name !== member.name ? `it named ${describe(name)}, not '${member.name}'` : `its incarnation ${describe(incarnation)} is not a positive safe integer`;
      member.control.postMessage(['refused', detail] satisfies ToNode);
      detach(member);
      process.emitWarning(new JoinRefusedError('worker', 'this worker hub', member.name, detail));
      return;
    }
    // joins are taken one at a time, so that each newcomer meets every node that joined before it
    queue.push(member);
    pump();
  };

  const queue: Member[] = [];
  let joining: Member | undefined;
  const pump = (): void => {
    while (!closed && joining === undefined && queue.length > 0) {
      const member = queue.shift()!;
      if (members.get(member.name) === member) introduce(member);
    }
  };

  const introduce = (member: Member): void => {
    joining = member;
    // one channel per pair: one end to each node, the newcomer's peers first, then its 'joined' once
    // every older node has its port (acknowledged): from then on each can reach the other
    const waiting = new Set<Member>();
    for (const other of members.values()) {
      if (!other.joined || other === member) continue;
      const { port1, port2 } = new MessageChannel();
      other.control.postMessage(['peer', member.name, port1] satisfies ToNode, [port1]);
      member.control.postMessage(['peer', other.name, port2] satisfies ToNode, [port2]);
      waiting.add(other);
    }
    member.pending = waiting;
    settleJoin(member);
    if (member.pending !== undefined) {
      // an older node whose thread is blocked does not hold up every later join: it gets the port
      // when it runs again; the newcomer joins without its acknowledgement after a while
      setTimeout(() => {
        if (member.pending === undefined) return;
        member.pending.clear();
        settleJoin(member);
      }, JOIN_ACK_TIMEOUT_MS).unref();
    }
  };

  const settleJoin = (member: Member): void => {
    const pending = member.pending;
    // a closed hub tells no one it joined: its control port closes, and its start rejects
    if (pending === undefined || closed) return;
    for (const other of pending) if (members.get(other.name) !== other) pending.delete(other);
    if (pending.size > 0) return;
    member.pending = undefined;
    member.joined = true;
    member.control.postMessage(['joined'] satisfies ToNode);
    if (joining === member) {
      joining = undefined;
      pump();
    }
  };

  const attach = (name: string, operation: string): { member: Member; nodeSide: MessagePort } => {
    if (closed) throw new NodeStoppedError(name, `${operation} (the worker hub is closed)`);
    if (members.has(name)) throw new NameTakenError(name, 'a node attached to this worker hub');
    const { port1, port2 } = new MessageChannel();
    const member: Member = { name, control: port1, worker: undefined, joined: false };
    members.set(name, member);
    port1.on('message', (m: unknown) => onControl(member, m));
    // the node closed its transport, or its thread ended: its name is free again
    port1.on('close', () => detach(member));
    port1.unref();
    return { member, nodeSide: port2 };
  };

  return {
    spawnNode(script: string | URL, options: SpawnNodeOptions): Worker {
      if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ name, workerData?, transferList?, workerOptions? }', options);
      checkKeys(options, ['name', 'workerData', 'transferList', 'workerOptions'], 'options');
      const name = checkName(options.name, 'options.name');
      if (!(script instanceof URL) && typeof script !== 'string') throw new InvalidArgumentError('script', 'a file path or URL', script);
      const { member, nodeSide } = attach(name, 'hub.spawnNode');
      let worker: Worker;
      try {
        worker = new Worker(script, {
          ...options.workerOptions,
          workerData: { [HANDLE_KEY]: { name, port: nodeSide, version: WORKER_PROTOCOL_VERSION }, data: options.workerData },
          transferList: [nodeSide, ...(options.transferList ?? [])],
        });
      } catch (e) {
        detach(member);
        if (e instanceof Error && e.name === 'DataCloneError') throw new InvalidArgumentError('options.workerData', 'a value a worker can be given (structured-cloneable)', options.workerData, thrownText(e));
        throw e;
      }
      member.worker = worker;
      // a worker that ends before its port is read (a failed load) frees its name as well
      worker.once('exit', () => detach(member));
      // a node's uncaught error ends its thread, not the one that started it (an 'error' nobody
      // listens for would throw here and take every other node down): its peers see it gone, and
      // unless the caller listens for 'error' itself, a process warning keeps the error visible
      worker.on('error', (e: unknown) => {
        if (worker.listenerCount('error') > 1) return;
        process.emitWarning(`the worker node '${name}' ended with an uncaught error: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`, { code: 'KEEL_WORKER_NODE_ERROR' });
      });
      return worker;
    },
    transport(name: string, options?: WorkerTransportOptions): Transport {
      checkName(name, 'name');
      const limits = toLimits(options, 'options');
      const { member, nodeSide } = attach(name, 'hub.transport');
      // a node in this thread frees its name as its close() returns, not at its control port's
      // 'close' event a turn later: a node shut down can be started again under its name at once
      const transport = new WorkerTransport(nodeSide, name, limits, () => detach(member));
      // and it is told at once when the hub lets it go (its close()): a start after the control
      // port's 'close' event, which no listener heard, would otherwise wait for ever
      member.released = () => transport.released();
      return transport;
    },
    get nodes(): readonly string[] {
      return [...members.values()].filter((m) => m.joined).map((m) => m.name);
    },
    async close(): Promise<void> {
      closed = true;
      // the joins under way or waiting end here: as each node's control port closes below, its
      // start rejects (ERR_NODE_STOPPED). None is introduced, nor told it joined, on the way (a
      // newcomer whose older nodes are detached first would otherwise be settled, and the next
      // in the queue introduced, by the very detaches that close the hub)
      queue.length = 0;
      joining = undefined;
      const all = [...members.values()];
      const exits = all.flatMap((m) => (m.worker === undefined ? [] : [m.worker.terminate()]));
      for (const m of all) detach(m);
      await Promise.all(exits);
    },
  };
}

/**
 * In a worker started by {@link WorkerHub.spawnNode}: its node name and the `workerData` given to
 * `spawnNode`. Undefined in any other thread.
 */
export function workerNode(): WorkerNodeInfo | undefined {
  const handle = readHandle();
  return handle === undefined ? undefined : { name: handle.name, data: (workerData as { data?: unknown }).data };
}

function readHandle(): { name: string; port: MessagePort; version: unknown } | undefined {
  if (isMainThread || typeof workerData !== 'object' || workerData === null) return undefined;
  const handle = (workerData as Record<string, unknown>)[HANDLE_KEY] as { name?: unknown; port?: unknown; version?: unknown } | undefined;
  if (typeof handle !== 'object' || handle === null || typeof handle.name !== 'string' || typeof handle.port !== 'object' || handle.port === null) return undefined;
  return handle as { name: string; port: MessagePort; version: unknown };
}

let taken = false;

/**
 * In a worker started by {@link WorkerHub.spawnNode}: the node's transport (one per worker; a
 * second call throws). Its `start` must be given the name the worker was spawned with. Throws
 * {@link ProtocolMismatchError} (`ERR_PROTOCOL_MISMATCH`) when the hub that started the worker speaks
 * another {@link WORKER_PROTOCOL_VERSION} (another copy or build of Keel): the hub is told, and the
 * node does not join.
 * Its `start` rejects with {@link JoinRefusedError} (`ERR_JOIN_REFUSED`) if the hub refuses the
 * join (a name or incarnation it cannot take), and with `ERR_NODE_STOPPED` if the hub closes first.
 *
 * @example
 * ```ts fragment
 * const transport = workerTransport();
 * await transport.start({ name: workerNode()!.name, incarnation: Date.now() }, handler);
 * ```
 */
export function workerTransport(options?: WorkerTransportOptions): Transport {
  const handle = readHandle();
  if (handle === undefined) throw new InvalidArgumentError('workerData', "the data of a worker started by a WorkerHub's spawnNode", isMainThread ? 'the main thread' : workerData);
  const limits = toLimits(options, 'options');
  if (taken) throw new InvalidArgumentError('workerTransport()', 'called once per worker', 'a second call');
  if (handle.version !== WORKER_PROTOCOL_VERSION) {
    // a join under this side's version tells a hub that checks versions why (it refuses the node
    // and reports it; one from before the check refuses incarnation 0), then the port is let go
    handle.port.postMessage(['join', handle.name, 0, WORKER_PROTOCOL_VERSION] satisfies ToHub);
    handle.port.close();
    throw new ProtocolMismatchError('worker', `the worker node '${handle.name}'`, WORKER_PROTOCOL_VERSION, presentedVersion(handle.version), 'the hub that started it');
  }
  taken = true;
  return new WorkerTransport(handle.port, handle.name, limits);
}

interface PendingProbe {
  readonly port: MessagePort;
  readonly resolve: (result: ProbeResult) => void;
  readonly timer: NodeJS.Timeout;
}

/** One pair port, and what flows on it unread: what this side posted, and what it read and has not yet acknowledged. */
class Link {
  readonly port: MessagePort;
  /** Batches posted and not yet acknowledged by the peer, each its length plus WORKER_BATCH_OVERHEAD. */
  inFlight = 0;
  /** Batches read and not yet acknowledged to the peer, counted as the peer counts them. */
  read = 0;
  /**
   * A batch to the peer was dropped: every later one is dropped too until the peer says it read
   * more, so that what arrives is a prefix of what was sent, never a stream with a hole in it.
   */
  dropping = false;
  /**
   * What this side reads before it tells the peer: an eighth of the peer's window (its
   * `['w', maxInFlight]`, the first message on the port), this side's own until it arrives.
   */
  ackEvery: number;
  constructor(port: MessagePort, ackEvery: number) {
    this.port = port;
    this.ackEvery = ackEvery;
  }
}

/** One node's end of the hub: its control port and a pair port per peer. */
class WorkerTransport implements Transport {
  readonly kind = 'worker';
  readonly maxBatchSize: number;
  /** Each node chooses its own `maxBatchSize`: a peer's batches may be as long as the largest any may choose. */
  readonly maxReceiveSize = MAX_WORKER_MAX_BATCH;
  readonly #maxInFlight: number;
  /** The peer is told what was read once it reaches this (an eighth of the window). */
  readonly #ackEvery: number;
  readonly #control: MessagePort;
  readonly #name: string;
  /** peer name -> the open port to that peer */
  readonly #peers = new Map<string, Link>();
  readonly #probes = new Map<number, PendingProbe>();
  #handler: TransportHandler | undefined;
  #state: 'new' | 'starting' | 'started' | 'closed' = 'new';
  #nextProbe = 1;
  #joined: { resolve: () => void; reject: (e: Error) => void } | undefined;
  /** Tells a hub in this thread that the node is gone (its name free), as close() returns. */
  readonly #detached: (() => void) | undefined;
  /** A hub in this thread let this node go (the hub closed): its start cannot join. */
  #released = false;

  constructor(control: MessagePort, name: string, limits: Limits, detached?: () => void) {
    this.#control = control;
    this.#detached = detached;
    this.#name = name;
    this.maxBatchSize = limits.maxBatchSize;
    this.#maxInFlight = limits.maxInFlight;
    this.#ackEvery = Math.max(1, Math.floor(limits.maxInFlight / 8));
  }

  start(self: NodeIdentity, handler: TransportHandler): Promise<void> {
    if (this.#state !== 'new') return Promise.reject(this.#state === 'closed' ? new NodeStoppedError(this.#name, 'transport.start') : new InvalidArgumentError('transport.start', 'called once', 'a second call'));
    if (typeof self !== 'object' || self === null || self.name !== this.#name) {
      return Promise.reject(new InvalidArgumentError('self.name', `'${this.#name}' (the name this transport was made for)`, typeof self === 'object' && self !== null ? self.name : self));
    }
    if (!Number.isSafeInteger(self.incarnation) || self.incarnation <= 0) return Promise.reject(new InvalidArgumentError('self.incarnation', 'a positive safe integer', self.incarnation));
    if (this.#released) return Promise.reject(new NodeStoppedError(this.#name, 'transport.start (the worker hub is closed)'));
    this.#state = 'starting';
    this.#handler = handler;
    const joined = new Promise<void>((resolve, reject) => {
      this.#joined = { resolve, reject };
    });
    this.#control.on('message', (m: unknown) => this.#onControl(m));
    this.#control.on('close', () => {
      // the hub went away (hub.close(), or its thread ended): the pair ports still work
      this.#joined?.reject(new NodeStoppedError(this.#name, 'transport.start (the worker hub is closed)'));
      this.#joined = undefined;
    });
    this.#control.postMessage(['join', self.name, self.incarnation, WORKER_PROTOCOL_VERSION] satisfies ToHub);
    return joined;
  }

  /**
   * @internal Called by a hub in this thread as it lets this node go (the hub closes): a start
   * made after rejects at once, one under way rejects now (its control port's 'close' would say so
   * a turn later). A node that has joined keeps its pair ports.
   */
  released(): void {
    this.#released = true;
    this.#joined?.reject(new NodeStoppedError(this.#name, 'transport.start (the worker hub is closed)'));
    this.#joined = undefined;
  }

  #onControl(message: unknown): void {
    if (!Array.isArray(message)) return;
    const m = message as unknown as ToNode;
    if (this.#state === 'closed') {
      if (m[0] === 'peer') m[2].close();
      return;
    }
    if (m[0] === 'peer') {
      this.#addPeer(m[1], m[2]);
      if (this.#state === 'started') this.#control.postMessage(['peer-ack', m[1]] satisfies ToHub);
    } else if (m[0] === 'joined') {
      this.#state = 'started';
      this.#joined?.resolve();
      this.#joined = undefined;
    } else if (m[0] === 'refused') {
      const error =
        m[2] === 'protocol'
          ? new ProtocolMismatchError('worker', `the worker node '${this.#name}'`, WORKER_PROTOCOL_VERSION, presentedVersion(m[3]), 'its hub')
          : new JoinRefusedError('worker', 'its worker hub', this.#name, typeof m[1] === 'string' ? m[1] : describe(m[1]));
      this.#joined?.reject(error);
      this.#joined = undefined;
      void this.close();
    }
  }

  #addPeer(name: string, port: MessagePort): void {
    // a new port for a name replaces an old one (the peer restarted): the old port still delivers
    // what is queued on it, but its close is no longer this name's peerGone
    const link = new Link(port, this.#ackEvery);
    this.#peers.set(name, link);
    // the peer acknowledges at an eighth of this side's window, whatever its own (a reader that
    // waited for an eighth of a larger window of its own would never tell a sender with a smaller
    // one, which would then drop everything it sent once its window filled)
    port.postMessage(['w', this.#maxInFlight]);
    port.on('message', (m: unknown) => {
      if (typeof m === 'string') {
        this.#read(link, m.length);
        this.#handler!.receive(name, m);
      } else this.#onPeerControl(name, link, m);
    });
    port.on('close', () => this.#onPortClosed(name, port));
    port.unref();
  }

  /**
   * Counts a batch of `n` code units read from `link` as its sender counted it (plus
   * WORKER_BATCH_OVERHEAD: else the sender's window would keep the difference, and fill); past an
   * eighth of the window, tells the peer.
   */
  #read(link: Link, n: number): void {
    link.read += n + WORKER_BATCH_OVERHEAD;
    if (link.read < link.ackEvery) return;
    const read = link.read;
    link.read = 0;
    link.port.postMessage(['a', read]);
  }

  #onPeerControl(name: string, link: Link, m: unknown): void {
    if (!Array.isArray(m)) return;
    const [kind, value] = m as [unknown, unknown];
    const port = link.port;
    if (kind === 'b' && typeof value === 'string') {
      this.#read(link, value.length);
      this.#handler!.receiveBroadcast(name, value);
    } else if (kind === 'a') {
      // never below 0 (a peer cannot make room it was not given), never NaN
      if (typeof value === 'number' && value > 0) {
        link.inFlight = Math.max(0, link.inFlight - value);
        link.dropping = false;
      }
    } else if (kind === 'w') {
      if (typeof value === 'number' && Number.isSafeInteger(value) && value > 0) link.ackEvery = Math.max(1, Math.floor(value / 8));
    } else if (kind === 'p') port.postMessage(['q', value]);
    else if (kind === 'q' && typeof value === 'number') {
      const probe = this.#probes.get(value);
      if (probe === undefined || probe.port !== port) return;
      this.#probes.delete(value);
      clearTimeout(probe.timer);
      probe.resolve('alive');
    }
  }

  #onPortClosed(name: string, port: MessagePort): void {
    for (const [id, probe] of this.#probes) {
      if (probe.port !== port) continue;
      this.#probes.delete(id);
      clearTimeout(probe.timer);
      probe.resolve('gone');
    }
    if (this.#peers.get(name)?.port !== port) return;
    this.#peers.delete(name);
    if (this.#state !== 'closed') this.#handler!.peerGone(name);
  }

  send(peer: string, batch: string): void {
    if (typeof batch !== 'string') return;
    const link = this.#peers.get(peer);
    if (link !== undefined && this.#room(peer, link, batch.length)) link.port.postMessage(batch);
  }

  broadcast(batch: string): void {
    if (typeof batch !== 'string') return;
    const message = ['b', batch];
    for (const [peer, link] of [...this.#peers]) if (this.#room(peer, link, batch.length)) link.port.postMessage(message);
  }

  /**
   * Whether a batch of `n` code units (counting `n` + WORKER_BATCH_OVERHEAD) fits in what `peer`
   * has been sent and not read; if so it is counted, else the batch is dropped and the cluster
   * told (so that what waits on the peer is answered), with its length and what it counted, and so
   * is every later batch until the peer says it read more.
   */
  #room(peer: string, link: Link, n: number): boolean {
    const count = n + WORKER_BATCH_OVERHEAD;
    if (!link.dropping && link.inFlight + count <= this.#maxInFlight) {
      link.inFlight += count;
      return true;
    }
    link.dropping = true;
    this.#handler?.overloaded?.(peer, n, 'overloaded', count);
    return false;
  }

  probe(peer: string, timeoutMs: number): Promise<ProbeResult> {
    if (typeof timeoutMs !== 'number' || !Number.isFinite(timeoutMs) || timeoutMs < 0) return Promise.reject(new InvalidArgumentError('timeoutMs', 'a finite number >= 0', timeoutMs));
    const port = this.#state === 'closed' ? undefined : this.#peers.get(peer)?.port;
    if (port === undefined) return Promise.resolve('gone');
    const id = this.#nextProbe++;
    return new Promise<ProbeResult>((resolve) => {
      const timer = setTimeout(() => {
        this.#probes.delete(id);
        resolve('timeout');
      }, timeoutMs);
      this.#probes.set(id, { port, resolve, timer });
      port.postMessage(['p', id]);
    });
  }

  /** A posted batch is already in the peer's queue: nothing to wait for. */
  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (this.#state === 'closed') return Promise.resolve();
    this.#state = 'closed';
    this.#joined?.reject(new NodeStoppedError(this.#name, 'transport.start (the transport was closed)'));
    this.#joined = undefined;
    for (const [id, probe] of this.#probes) {
      this.#probes.delete(id);
      clearTimeout(probe.timer);
      probe.resolve('gone');
    }
    const ports = [...this.#peers.values()].map((l) => l.port);
    this.#peers.clear();
    for (const port of ports) port.close();
    this.#control.close();
    this.#detached?.();
    return Promise.resolve();
  }
}
