/**
 * A node's membership of a cluster: it joins over a {@link Transport}, learns its peers from their
 * hellos and heartbeats, and from then on a pid of a peer's process works as a local one does —
 * `send`, `GenServer.call`, `monitor`, `link` and exit signals, with Erlang's semantics — and each
 * peer's death (a closed connection, silence, a new incarnation, a goodbye) answers every tie to it
 * exactly once, with `noconnection`.
 *
 * @example
 * ```ts fragment
 * import { createNode } from 'keel';
 * import { Cluster, natsTransport } from 'keel/cluster';
 *
 * const node = createNode({ name: 'billing' });
 * const cluster = await Cluster.join(node, { transport: natsTransport({ servers: 'nats://127.0.0.1:4222', cluster: 'shop' }) });
 * await cluster.waitFor(['orders']);
 * const orders = await cluster.whereis('orders', 'orders'); // a pid on the node 'orders'
 * ```
 */
import { checkKeys, InvalidArgumentError, MessageTooLargeError, NodeStoppedError, PeersTimeoutError } from '../errors.js';
import { GenServer, type GenServerSpec } from '../otp/GenServer.js';
import { Supervisor } from '../otp/Supervisor.js';
import { isProcess, type Kernel, kernelOf, type RemoteRouter } from '../runtime/kernel.js';
import { type Pid, PidImpl } from '../runtime/Pid.js';
import type { Context, Node } from '../runtime/types.js';
import { MAX_TRACESTATE_LENGTH } from '../telemetry/tracing.js';
import { encodeValue, parseBatch, type PidFactory, reviveValue } from './codec.js';
import { Incarnations } from './internal/Incarnations.js';
import { Peer } from './internal/Peer.js';
import { positive, timeoutOptions, timingsOf } from './internal/options.js';
import { Remote } from './internal/Remote.js';
import type { ProbeResult, Transport, TransportHandler } from './Transport.js';

/** How a cluster notices a peer's death, and its other settings. */
export interface ClusterOptions {
  /** How this node reaches the others. */
  readonly transport: Transport;
  /** How often this node says it is alive (ms, node clock). Default 200 (sized for loopback). */
  readonly heartbeatMs?: number;
  /** A peer silent this long is suspected and probed (ms). Default 3 heartbeats. */
  readonly suspectAfterMs?: number;
  /** A peer silent this long is down (ms). Default 2000. */
  readonly downAfterMs?: number;
  /** How long a probe waits for its answer (ms). Default 500. */
  readonly probeTimeoutMs?: number;
}

/** What `cluster.nodes()` tells of a peer. */
export interface ClusterNodeInfo {
  readonly name: string;
  readonly incarnation: number;
  readonly status: 'up' | 'suspect';
  /** Ms since it was last heard, on the timers' time (monotonic on the real clock). */
  readonly silentMs: number;
}

/** Why a peer went down (`keel.cluster.node_down`'s `reason`). */
export type NodeDownReason = 'no_responders' | 'heartbeat' | 'new_incarnation' | 'goodbye' | 'port_closed' | 'disconnected' | 'left' | 'oversized' | 'overloaded';

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
/** How many peers' last answered reset numbers a node keeps (as many as the peers downed for silence it remembers). */
const ANSWERED_KEPT = 1024;
/**
 * What a batch holds besides its frames' values: the batch's own header, a frame's name and ids,
 * and the trace context a call or a cast may carry (its `traceparent`, and a `tracestate` of up to
 * {@link MAX_TRACESTATE_LENGTH} characters, each of which JSON may write as two). A value may be as
 * long as the batch limit less this: the largest traced frame then still fits in one batch (with
 * 256 alone, a value at the limit and a long `tracestate` made a batch over it, which a NATS server
 * refuses past its `max_payload`).
 */
const HEADER_ROOM = 256 + ',"'.length + 55 + '",'.length + 2 + 2 * MAX_TRACESTATE_LENGTH;
/** A reset's number in a '!' or '!!' frame: a positive count, or 0 (none) where `zero` (else the frame is malformed). */
function resetNumber(value: unknown, zero = false): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (zero ? 0 : 1)) throw new TypeError('a reset number is a positive integer');
  return value;
}
/** The cluster process's heartbeat message. */
const TICK = Symbol('keel.cluster.tick');
/** Nodes that have joined a cluster (a node joins once). */
const joined = new WeakSet<Kernel>();

export class Cluster {
  readonly #kernel: Kernel;
  readonly #transport: Transport;
  readonly #remote: Remote;
  readonly #peers = new Map<string, Peer>();
  /** Peers gone for good (their late frames are dropped) and peers downed for silence (told so first if they speak again). */
  readonly #gone = new Incarnations();
  readonly #dirty = new Set<Peer>();
  #flushQueued = false;
  readonly #heartbeatMs: number;
  readonly #suspectAfterMs: number;
  readonly #downAfterMs: number;
  readonly #probeTimeoutMs: number;
  /** The largest encoded value a frame carries: the transport's batch limit less a header's room (known once it has started). */
  #maxValueLength = 0;
  /** The context of the cluster's process (`keel.cluster`), whose timer beats the heartbeat. */
  #heartbeat: Context<unknown> | undefined;
  /** The supervisor of the cluster's process. */
  #supervisor: Pid | undefined;
  /**
   * When the heartbeat timer was last armed, on the timers' time (`timerNow`: monotonic on the real
   * clock, as the timer itself counts). Every duration of the failure detector (a peer's silence,
   * its suspicion, `detectionMs`) is measured on it: on the wall clock, a step forward past
   * `downAfterMs` took every peer down at the next tick, and a step back kept a dead one up.
   */
  #lastTick = 0;
  /** The number of this node's last reset ('!'): one count for all peers, so a number is never used twice. */
  #resets = 0;
  /** By peer name: the incarnation and the highest number of its resets ('!') this node has answered (a '!' sent again is answered once). */
  readonly #answered = new Map<string, { incarnation: number; n: number }>();
  #left = false;
  #removeShutdown: (() => void) | undefined;
  /** The waiters of `waitFor`: called when a peer comes up, and with `stopped` when the node shuts down. */
  readonly #upWaiters = new Set<(stopped?: boolean) => void>();
  readonly #pids: PidFactory;

  private constructor(kernel: Kernel, options: ClusterOptions) {
    this.#kernel = kernel;
    this.#transport = options.transport;
    const t = timingsOf(options);
    this.#heartbeatMs = t.heartbeatMs;
    this.#suspectAfterMs = t.suspectAfterMs;
    this.#downAfterMs = t.downAfterMs;
    this.#probeTimeoutMs = t.probeTimeoutMs;
    this.#remote = new Remote({
      kernel,
      maxValueLength: () => this.#maxValueLength,
      peerOf: (pid) => this.#up(pid.node),
      push: (peer, frame) => this.#push(peer, frame),
      dropped: (reason, metadata) => kernel.telemetry.execute('keel.message.dropped', { count: 1 }, { ...metadata, reason }),
    });
    const name = kernel.name;
    const creation = kernel.creation;
    this.#pids = (node, c, id) => {
      if (node === name && c === creation) return kernel.resolve({ node, creation: c, id })?.self ?? new PidImpl(node, c, id);
      return new PidImpl(node, c, id);
    };
  }

  /**
   * Joins `node` to the cluster its transport reaches: the node's pids of other nodes' processes
   * work from then on. Resolves once the transport has joined and this node has said hello; its
   * peers come up as their answers arrive ({@link Cluster.waitFor}). The node leaves when it shuts
   * down (a goodbye, so peers know at once). A node joins one cluster, once.
   */
  static async join(node: Node, options: ClusterOptions): Promise<Cluster> {
    const kernel = kernelOf(node, 'node');
    if (kernel.stopping) throw new NodeStoppedError(kernel.name, 'Cluster.join');
    if (typeof options !== 'object' || options === null || typeof options.transport?.start !== 'function') {
      throw new InvalidArgumentError('options.transport', 'a Transport (natsTransport, workerTransport, memory network transport)', options?.transport);
    }
    // a misspelt option (heartbeatMS) is an error, never silently the default
    checkKeys(options, ['transport', 'heartbeatMs', 'suspectAfterMs', 'downAfterMs', 'probeTimeoutMs'], 'options');
    if (!NAME.test(kernel.name)) throw new InvalidArgumentError('node.name', 'a cluster node name: 1 to 64 of A-Z a-z 0-9 _ - (it becomes a subject token)', kernel.name);
    // once joined, never again: peers remember an incarnation that said goodbye as dead (a pid never
    // comes back), so a node that left would be heard by nobody; a new node has a new incarnation
    if (kernel.remote !== undefined || joined.has(kernel)) throw new InvalidArgumentError('node', 'a node not yet in a cluster (a node joins one cluster, once)', kernel.name);
    const cluster = new Cluster(kernel, options);
    kernel.attachRemote(cluster.#remote);
    try {
      await kernel.trackIo(cluster.#transport.start({ name: kernel.name, incarnation: kernel.creation }, cluster.#handler()));
    } catch (e) {
      kernel.attachRemote(undefined);
      throw e;
    }
    joined.add(kernel);
    if (kernel.stopping) {
      // the node began to stop while the transport started: its shutdown hooks have run without this cluster
      kernel.attachRemote(undefined);
      await cluster.#transport.close().catch(() => undefined);
      throw new NodeStoppedError(kernel.name, 'Cluster.join');
    }
    cluster.#maxValueLength = Math.max(1, cluster.#transport.maxBatchSize - HEADER_ROOM);
    cluster.#removeShutdown = kernel.onShutdown(() => cluster.leave());
    cluster.#broadcast('["h"]');
    try {
      await cluster.#startProcess();
    } catch (e) {
      await cluster.leave();
      throw e;
    }
    return cluster;
  }

  /**
   * The cluster's process, `keel.cluster`, under its supervisor `keel.cluster_sup`: it owns the
   * heartbeat timer (the state lives in this node-held object, as the services' does, so a restart
   * loses nothing). If its supervisor gives up, the node leaves the cluster: every tie is answered
   * with `noconnection`, as when Erlang's `net_kernel` goes.
   */
  async #startProcess(): Promise<void> {
    const kernel = this.#kernel;
    const spec: GenServerSpec<null, never, never, undefined> = {
      init: (_arg, ctx) => {
        this.#heartbeat = ctx;
        this.#arm();
        return null;
      },
      handleInfo: (message, state, ctx) => {
        if (message === TICK && this.#heartbeat === ctx) this.#tick();
        return state;
      },
      formatStatus: () => ({ node: this.name, incarnation: this.incarnation, peers: this.nodes() }),
    };
    type Ctx = Parameters<typeof GenServer.startLink>[0];
    const supervisor = await kernel.registry.asKeel(() =>
      Supervisor.start(kernel, [{ id: 'cluster', start: (ctx: Ctx) => kernel.registry.asKeel(() => GenServer.startLink(ctx, spec, undefined, { name: 'keel.cluster' })) }], {
        name: 'keel.cluster_sup',
        maxRestarts: 10,
        withinMs: 5000,
      }),
    );
    this.#supervisor = supervisor;
    if (this.#left) kernel.exit(supervisor, 'shutdown'); // left while it started
    kernel.onExit(supervisor, (reason) => {
      if (kernel.stopping || this.#left) return;
      kernel.logger.error(`the cluster process of node ${kernel.name} stopped (${String(reason)}): the node leaves its cluster`);
      void this.leave();
    });
  }

  /** This node's name. */
  get name(): string {
    return this.#kernel.name;
  }

  /** This node's incarnation (its `creation`). */
  get incarnation(): number {
    return this.#kernel.creation;
  }

  /** The peers this node knows to be up (or suspected), by name. */
  nodes(): ClusterNodeInfo[] {
    const now = this.#kernel.timerNow();
    return [...this.#peers.values()].map((p) => ({ name: p.name, incarnation: p.incarnation, status: p.status === 'suspect' ? 'suspect' : 'up', silentMs: now - p.lastHeard }));
  }

  /** The incarnation of the peer named `name` this node knows up (or suspected); undefined when it is not. */
  incarnationOf(name: string): number | undefined {
    return this.#peers.get(name)?.incarnation;
  }

  /** True when the peer named `name` is up (or suspected, not yet down). */
  isConnected(name: string): boolean {
    return this.#peers.has(name);
  }

  /** Resolves when every named peer is up (`timeoutMs` on the node clock, default 10,000: then rejects; `ERR_NODE_STOPPED` if the node shuts down first). */
  waitFor(names: readonly string[], options?: { timeoutMs?: number }): Promise<void> {
    // checked here: a waiter whose names cannot be read would throw in the hello of every peer that comes up
    if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) throw new InvalidArgumentError('names', 'an array of node names', names);
    names = [...names];
    timeoutOptions(options);
    const timeoutMs = positive(options?.timeoutMs, 'timeoutMs', 10_000);
    if (this.#kernel.stopping) return Promise.reject(new NodeStoppedError(this.name, 'cluster.waitFor'));
    return new Promise<void>((resolve, reject) => {
      const check = (stopped?: boolean): void => {
        // the node's timers stop with it: a waiter still waiting then would never be told
        if (stopped !== true && !names.every((n) => this.#peers.has(n))) return;
        this.#upWaiters.delete(check);
        timer.cancel();
        if (stopped === true) reject(new NodeStoppedError(this.name, 'cluster.waitFor'));
        else resolve();
      };
      const timer = this.#kernel.setTimer(timeoutMs, () => {
        this.#upWaiters.delete(check);
        const missing = names.filter((n) => !this.#peers.has(n));
        reject(new PeersTimeoutError(this.name, missing, timeoutMs));
      });
      this.#upWaiters.add(check);
      check();
    });
  }

  /**
   * The pid registered as `name` on the peer `node` (undefined: nobody holds it there), as Erlang's
   * `rpc:call(Node, erlang, whereis, [Name])`. Rejects with `ERR_NOCONNECTION` when the peer is not up.
   */
  whereis(node: string, name: string, options?: { timeoutMs?: number }): Promise<Pid | undefined> {
    timeoutOptions(options);
    const timeoutMs = positive(options?.timeoutMs, 'timeoutMs', 5000);
    // a name that is not a string would make the whole batch unreadable (other processes' frames with it)
    if (typeof name !== 'string') return Promise.reject(new InvalidArgumentError('name', 'a registered name (a string)', name));
    if (node === this.name) return Promise.resolve(this.#kernel.registry.whereis(name));
    const nameText = JSON.stringify(name);
    if (nameText.length > this.#maxValueLength) return Promise.reject(new MessageTooLargeError(nameText.length, this.#maxValueLength, true, 'a registered name asked of another node'));
    return new Promise((resolve, reject) => {
      const peer = this.#up(node);
      const settle = (ok: boolean, value: unknown): void => (ok ? resolve(value as Pid | undefined) : reject(value));
      if (peer === undefined) this.#remote.call(undefined, new PidImpl(node, 0, 0), undefined, timeoutMs, undefined, settle);
      else this.#remote.whereis(peer, nameText, timeoutMs, settle);
    });
  }

  /** Sends `message` to the process registered as `name` on the peer `node` (Erlang's `{Name, Node} ! Msg`): at most once. */
  send(node: string, name: string, message: unknown): void {
    if (typeof name !== 'string' || name.length === 0) throw new InvalidArgumentError('name', 'a non-empty registered name', name);
    if (node === this.name) {
      this.#kernel.send(name, message);
      return;
    }
    const peer = this.#up(node);
    const encoded = encodeValue(message, this.#maxValueLength);
    const nameText = JSON.stringify(name);
    if (nameText.length + encoded.length > this.#maxValueLength) {
      throw new MessageTooLargeError(nameText.length + encoded.length, this.#maxValueLength, true, 'a message and the registered name it is sent to on another node');
    }
    if (peer === undefined) {
      this.#kernel.telemetry.execute('keel.message.dropped', { count: 1 }, { to: `${name}@${node}`, from: 'node', reason: 'noconnection' });
      return;
    }
    this.#push(peer, `["n",${nameText},0,${encoded}]`);
  }

  /** Leaves the cluster: a goodbye to every peer, every tie answered with `noconnection`, the transport closed. Idempotent. */
  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#heartbeat = undefined;
    this.#removeShutdown?.();
    // its process has nothing left to beat for (a no-op when it is the one that stopped)
    if (this.#supervisor !== undefined && !this.#kernel.stopping) this.#kernel.exit(this.#supervisor, 'shutdown');
    this.#flush();
    this.#broadcast('["g"]');
    for (const peer of [...this.#peers.values()]) this.#down(peer, 'left');
    if (this.#kernel.stopping) for (const check of [...this.#upWaiters]) check(true);
    // the router stays, with no peer up: a pid of another node is then an unreachable one (a call,
    // a monitor, a link and a send answered with noconnection, as once Erlang's net_kernel is gone),
    // not a dead one; supervised sends are unplugged (they fall back to this node's own path)
    (this.#remote as RemoteRouter).supervised = undefined;
    await this.#transport.flush().catch(() => undefined);
    await this.#transport.close();
  }

  /**
   * @internal Plugs supervised sends across nodes (src/cluster/supervised) into the kernel's router:
   * `sendSupervised` to a peer's pid goes through `supervised` from then on (undefined: unplugs it).
   */
  attachSupervised(supervised: RemoteRouter['supervised']): void {
    (this.#remote as RemoteRouter).supervised = supervised;
  }

  /** Counts of what ties local processes to peers (for leak checks: all zero once the ties are gone). */
  internals(): { peers: number; entries: number; books: number; outbox: number } {
    let entries = 0;
    let outbox = 0;
    for (const p of this.#peers.values()) {
      entries += p.entries;
      outbox += p.outbox.length;
    }
    return { peers: this.#peers.size, entries, books: this.#remote.books, outbox };
  }

  // ---- the transport's side -------------------------------------------------------------------

  #handler(): TransportHandler {
    return {
      receive: (from, batch) => this.#receive(from, batch, false),
      receiveBroadcast: (from, batch) => this.#receive(from, batch, true),
      peerGone: (peer) => {
        const p = this.#peers.get(peer);
        if (p !== undefined) this.#probe(p, 'port_closed');
      },
      overloaded: (peer, size, why) => {
        // a batch the transport dropped: the peer has not read what it was sent (a busy or blocked
        // thread), or the server refused its size; its frames are lost, so the peer is down for this
        // node (its ties answered with noconnection), after the flush that is sending (no down in the middle of it)
        const reason = why === 'oversized' ? 'oversized' : 'overloaded';
        this.#kernel.telemetry.execute('keel.cluster.send_dropped', { count: 1, size }, { node: this.name, to: peer, reason });
        const p = this.#peers.get(peer);
        if (p !== undefined) queueMicrotask(() => this.#down(p, reason));
      },
      connection: (state) => {
        this.#kernel.telemetry.execute(`keel.cluster.${state}`, {}, { node: this.name });
        if (this.#left) return;
        if (state === 'reconnected') {
          // what either side sent while the link was down may be lost (NATS delivers nothing to a
          // node that is not subscribed): a Down, a reply or an exit signal lost would leave its tie
          // waiting for ever. So every tie to each peer still up is answered with noconnection here,
          // and the peer is told with '!' to answer its own (the reset a peer downed for silence
          // gets); until its '!!' comes, what it sent before the reset makes no tie here. Each reset
          // has a new number, so that a '!!' answering an older one is told apart
          for (const peer of [...this.#peers.values()]) {
            if (this.#peers.get(peer.name) !== peer) continue;
            this.#remote.peerDown(peer, true);
            this.#askReset(peer);
          }
          return;
        }
        // cut off: every peer is unreachable from now on (suspected at once); those still silent
        // after downAfterMs go down as for any silence, and a global name's lease, not renewed, fences its owner
        const now = this.#kernel.timerNow();
        for (const peer of this.#peers.values()) {
          if (peer.status !== 'up') continue;
          peer.status = 'suspect';
          peer.suspectSince = now;
          this.#kernel.telemetry.execute('keel.cluster.node_suspect', { silentMs: now - peer.lastHeard }, { node: peer.name, incarnation: peer.incarnation, reason: 'disconnected' });
        }
      },
    };
  }

  #receive(from: string, batch: string, broadcast: boolean): void {
    if (this.#left) return;
    if (typeof from !== 'string' || !NAME.test(from)) {
      // a sender no node can have (NATS takes a literal `*`, `>` or `é` as a subject token, and a
      // foreign client may publish with one): never a peer, so never up, nor a tie's end
      const text = String(from);
      this.#frameDropped('forged_sender', text.length > 120 ? `${text.slice(0, 117)}...` : text);
      return;
    }
    const max = this.#transport.maxReceiveSize ?? this.#transport.maxBatchSize;
    if (batch.length > max) {
      // refused before it is parsed: no peer of this transport sends one (its batches are cut at its
      // limit, at most this), and parsing it is the cost a hostile one would impose. Its frames are lost, and a
      // tie's frames must not be (a reply, a Down, an exit signal): the peer goes down, so what waits
      // on it is answered with noconnection, and if it speaks again it is told it was down first
      this.#frameDropped('oversized', from, new MessageTooLargeError(batch.length, max, true, `a batch from node ${from}`));
      const peer = broadcast ? undefined : this.#peers.get(from);
      if (peer !== undefined) this.#down(peer, 'oversized');
      return;
    }
    let data: unknown;
    let tagged: boolean;
    try {
      // parsed once; the values are revived frame by frame below, so that a bad one costs its frame
      ({ value: data, tagged } = parseBatch(batch));
    } catch (e) {
      this.#frameDropped('malformed', from, e);
      return;
    }
    if (!Array.isArray(data) || data.length !== 5 || data[0] !== 1 || !Array.isArray(data[4])) {
      this.#frameDropped('malformed', from);
      return;
    }
    const [, sender, incarnation, toIncarnation, frames] = data as [number, unknown, unknown, unknown, unknown[]];
    // a batch in this node's own name is forged too (a publish on its own subject): a node is never its own peer
    if (sender !== from || from === this.name) {
      // JSON text, not String(): a parsed object with a key `toString` cannot be made text
      const claimed = typeof sender === 'string' ? sender : JSON.stringify(sender);
      this.#frameDropped('forged_sender', from, undefined, { claimed: claimed.length > 120 ? `${claimed.slice(0, 117)}...` : claimed });
      return;
    }
    if (typeof incarnation !== 'number' || !Number.isSafeInteger(incarnation) || incarnation <= 0) {
      this.#frameDropped('malformed', from);
      return;
    }
    // the incarnation it is for (0: any): anything but a count is malformed, not carried raw into an event
    if (typeof toIncarnation !== 'number' || !Number.isSafeInteger(toIncarnation) || toIncarnation < 0) {
      this.#frameDropped('malformed', from);
      return;
    }
    if (toIncarnation !== 0 && toIncarnation !== this.#kernel.creation) {
      this.#frameDropped('stale_incarnation', from, undefined, { incarnation: toIncarnation });
      return;
    }
    if (broadcast && frames.length === 1 && Array.isArray(frames[0]) && frames[0][0] === 'g' && this.#peers.get(from)?.incarnation !== incarnation) {
      // the goodbye of a peer that is not up here (downed for silence meanwhile): it is gone, not back
      // (the goodbye of another incarnation leaves the reset owed to the one downed for silence)
      if (this.#gone.silenced(from) === incarnation) this.#gone.unsilence(from);
      this.#gone.dead(from, incarnation);
      return;
    }
    const peer = this.#heard(from, incarnation);
    if (peer === undefined) return;
    for (const raw of frames) {
      // a frame may run user code (a telemetry handler, a death's hooks) that downs the peer or leaves
      if (this.#left || this.#peers.get(from) !== peer) return;
      let f: unknown;
      try {
        f = tagged ? reviveValue(raw, this.#pids) : raw;
      } catch (e) {
        this.#frameDropped('malformed', from, e);
        // a value this node cannot decode (malformed, or nested deeper than its stack allows: a thread
        // with a larger stack wrote it): what waits on the frame (a call, a monitor, a link) is answered
        // with the error, never left waiting for ever
        if (!broadcast && Array.isArray(raw) && e instanceof Error) {
          try {
            this.#remote.unreadable(peer, raw, e);
          } catch (bad) {
            this.#frameDropped('malformed', from, bad);
          }
        }
        continue;
      }
      try {
        if (!Array.isArray(f)) throw new TypeError('a frame is an array');
        if (f[0] === 'h') {
          if (broadcast) this.#push(peer, '["h"]');
        } else if (f[0] === 'b') {
          // a heartbeat: hearing it was the point
        } else if (f[0] === 'g') {
          this.#down(peer, 'goodbye');
          this.#gone.dead(peer.name, peer.incarnation);
          return;
        } else if (f[0] === '!') {
          this.#resetAsked(peer, f.length > 1 ? resetNumber(f[1]) : undefined, f.length > 2 ? resetNumber(f[2], true) : 0);
        } else if (f[0] === '!!') {
          this.#resetAnswered(peer, f.length > 1 ? resetNumber(f[1]) : undefined, f.length > 2 ? resetNumber(f[2], true) : 0);
        } else if (!broadcast) this.#remote.frame(peer, f);
      } catch (e) {
        this.#frameDropped('malformed', from, e);
      }
    }
  }

  /**
   * Tells `peer` that it was down to this node, or that the link between them was lost and back
   * (its ties here have just been answered with noconnection): `["!", n, ack]`, `n` a new number of
   * this node's (one count for all peers), `ack` the last of the peer's resets answered here. Until
   * its `["!!", n]` comes, the link, unlink, monitor and call frames the peer sends are ignored (asked
   * before it knew, they are answered on its side); a '!!' for an older number is stale. The '!' is
   * sent again after every `suspectAfterMs` without its answer (it may have been lost: a peer not
   * yet subscribed); the peer answers each number once.
   */
  #askReset(peer: Peer): void {
    peer.awaitingReset = ++this.#resets;
    peer.resetTicks = 0;
    this.#push(peer, this.#resetFrame(peer));
  }

  #resetFrame(peer: Peer): string {
    return `["!",${peer.awaitingReset},${this.#answeredOf(peer)}]`;
  }

  /** The highest number of `peer`'s resets this node has answered (0: none). */
  #answeredOf(peer: Peer): number {
    const answered = this.#answered.get(peer.name);
    return answered?.incarnation === peer.incarnation ? answered.n : 0;
  }

  #answer(peer: Peer, n: number): void {
    if (n <= this.#answeredOf(peer)) return;
    this.#answered.delete(peer.name);
    this.#answered.set(peer.name, { incarnation: peer.incarnation, n });
    if (this.#answered.size > ANSWERED_KEPT) this.#answered.delete(this.#answered.keys().next().value as string);
  }

  /**
   * The peer's reset `n` (`ack`: the last of this node's it had answered when it sent it; `n`
   * undefined: a node that numbers none, answered as such a node does).
   *
   * - A number answered already (a '!' sent again) is acknowledged again, nothing more.
   * - If this node waits for the answer to a reset of its own that the peer had not seen (`ack`
   *   below it), the two crossed: each side answered its old ties at its own reset, and the ties
   *   made since on either side are honoured on both, so nothing is answered here. This node's
   *   '!' may also have been lost on the way (the peer not yet subscribed: both ends of a link back
   *   at different moments); its '!!' names it, and a peer that never got it resets again (see '!!').
   * - Else every tie with the peer is answered here with noconnection (the peer ignores what this
   *   node asked before it knew), and '!!' tells it where this node's frames sent after the reset begin.
   */
  #resetAsked(peer: Peer, n: number | undefined, ack: number): void {
    if (n === undefined) {
      if (peer.awaitingReset !== 0) peer.awaitingReset = 0;
      else this.#remote.peerDown(peer, true);
      this.#push(peer, '["!!"]');
      return;
    }
    if (n <= this.#answeredOf(peer)) {
      this.#push(peer, `["!!",${n}]`);
      return;
    }
    this.#answer(peer, n);
    const own = peer.awaitingReset;
    if (own !== 0 && ack < own) {
      peer.awaitingReset = 0;
      peer.resetTicks = 0;
      this.#push(peer, `["!!",${n},${own}]`);
      return;
    }
    this.#remote.peerDown(peer, true);
    this.#push(peer, `["!!",${n}]`);
  }

  /**
   * The peer's answer to this node's reset `n` (undefined: a node that numbers none, taken as the
   * answer). One to an older reset is stale (the peer's frames after it were sent before it knew
   * of the newer one), and ignored. `crossed` is the peer's own reset that it took as crossing this
   * one: if it never arrived here (lost), the peer answered none of its ties made before, while this
   * node honours what it sent since: this node resets again, so both answer them.
   */
  #resetAnswered(peer: Peer, n: number | undefined, crossed: number): void {
    if (n !== undefined && n !== peer.awaitingReset) {
      this.#answer(peer, crossed); // a newer reset of this node's is under way, and covers it
      return;
    }
    peer.awaitingReset = 0;
    peer.resetTicks = 0;
    if (crossed === 0 || crossed <= this.#answeredOf(peer)) return;
    this.#answer(peer, crossed);
    this.#remote.peerDown(peer, true);
    this.#askReset(peer);
  }

  /** The peer a batch came from, brought up (or replaced by its new incarnation) as needed. */
  #heard(name: string, incarnation: number): Peer | undefined {
    if (this.#gone.isDead(name, incarnation)) {
      this.#frameDropped('stale_incarnation', name, undefined, { incarnation });
      return undefined;
    }
    const now = this.#kernel.timerNow();
    let peer = this.#peers.get(name);
    if (peer !== undefined && peer.incarnation !== incarnation) {
      this.#down(peer, 'new_incarnation');
      this.#gone.dead(peer.name, peer.incarnation);
      peer = undefined;
    }
    if (peer === undefined) {
      peer = new Peer(name, incarnation, now);
      this.#peers.set(name, peer);
      const silenced = this.#gone.silenced(name);
      if (silenced === incarnation) {
        this.#askReset(peer); // it was down to us: say so first
      } else if (silenced !== undefined) {
        // a new incarnation of a peer downed for silence: the old one is gone for good, and its late
        // words are stale (taken for it coming back, they would down the new one and bar it for good)
        this.#gone.dead(name, silenced);
      }
      this.#gone.unsilence(name);
      this.#kernel.telemetry.execute('keel.cluster.node_up', {}, { node: name, incarnation });
      for (const check of [...this.#upWaiters]) check();
    } else {
      peer.lastHeard = now;
      if (peer.status === 'suspect') {
        peer.status = 'up';
        peer.suspectSince = 0;
      }
    }
    return peer;
  }

  // ---- membership: heartbeats, suspicion, probes, down ----------------------------------------

  #arm(): void {
    this.#lastTick = this.#kernel.timerNow();
    const ctx = this.#heartbeat;
    // the process's own timer (it dies with it), unref'd: a cluster alone keeps no program alive
    if (ctx !== undefined && isProcess(ctx)) this.#kernel.sendAfter(ctx, ctx.self, TICK, this.#heartbeatMs, true);
  }

  #tick(): void {
    if (this.#left) return;
    this.#broadcast('["b"]');
    const now = this.#kernel.timerNow();
    // a tick late by more than a heartbeat: this node's loop was busy, and what peers sent meanwhile
    // waits unread in its queue; that stall is not their silence, so it is not counted against them
    const stall = now - this.#lastTick - this.#heartbeatMs;
    this.#lastTick = now;
    if (stall > this.#heartbeatMs) for (const peer of this.#peers.values()) peer.lastHeard = Math.min(now, peer.lastHeard + stall);
    for (const peer of [...this.#peers.values()]) {
      if (peer.awaitingReset !== 0 && ++peer.resetTicks * this.#heartbeatMs >= this.#suspectAfterMs) {
        // its '!!' has not come: the '!' may have been lost (the peer was not subscribed yet). A '!'
        // sent again is answered once by the peer, so this is safe whatever happened to the first
        peer.resetTicks = 0;
        this.#push(peer, this.#resetFrame(peer));
      }
      const silence = now - peer.lastHeard;
      if (silence >= this.#downAfterMs) {
        this.#down(peer, 'heartbeat');
      } else if (silence >= this.#suspectAfterMs) {
        if (peer.status === 'up') {
          peer.status = 'suspect';
          peer.suspectSince = now;
          this.#kernel.telemetry.execute('keel.cluster.node_suspect', { silentMs: silence }, { node: peer.name, incarnation: peer.incarnation, reason: 'heartbeat' });
        }
        this.#probe(peer, 'no_responders');
      }
    }
    if (!this.#left) this.#arm(); // a telemetry handler run by this tick may have left
  }

  /**
   * Asks the transport whether `peer` is attached; `gone` downs it now. A port that closes while a
   * probe is out is probed again once that one answers (its answer may predate the close), and a
   * peer found gone then goes down for the closed port.
   */
  #probe(peer: Peer, reason: NodeDownReason): void {
    if (peer.probing) {
      if (reason === 'port_closed') peer.probeAgain = reason;
      return;
    }
    peer.probing = true;
    const settled = (result: ProbeResult | undefined): void => {
      peer.probing = false;
      const again = peer.probeAgain;
      peer.probeAgain = undefined;
      if (this.#peers.get(peer.name) !== peer) return;
      if (result === 'gone') this.#down(peer, again ?? reason);
      else if (again !== undefined) this.#probe(peer, again);
      else if (result === 'alive' && peer.status === 'suspect') {
        peer.status = 'up';
        peer.suspectSince = 0;
        peer.lastHeard = this.#kernel.timerNow();
      }
    };
    this.#transport.probe(peer.name, this.#probeTimeoutMs).then(settled, () => settled(undefined));
  }

  #down(peer: Peer, reason: NodeDownReason): void {
    if (this.#peers.get(peer.name) !== peer) return;
    this.#peers.delete(peer.name);
    this.#dirty.delete(peer);
    peer.status = 'down';
    // a peer downed for anything but its own word may speak again as itself (silence, or a transport
    // that took it for gone): it is told first that it was down, so that it answers its ties too
    if (reason !== 'goodbye' && reason !== 'new_incarnation' && reason !== 'left') this.#gone.silence(peer.name, peer.incarnation);
    else this.#answered.delete(peer.name);
    const detectionMs = this.#kernel.timerNow() - peer.lastHeard;
    this.#remote.peerDown(peer);
    this.#kernel.telemetry.execute('keel.cluster.node_down', { detectionMs }, { node: peer.name, incarnation: peer.incarnation, reason });
  }

  /** The peer named `name` when it is up (or suspected). */
  #up(name: string): Peer | undefined {
    return this.#peers.get(name);
  }

  // ---- batches --------------------------------------------------------------------------------

  #push(peer: Peer, frame: string): void {
    if (this.#peers.get(peer.name) !== peer) return; // gone meanwhile: at most once
    if (peer.outboxLength + frame.length + HEADER_ROOM > this.#transport.maxBatchSize && peer.outbox.length > 0) this.#send(peer);
    peer.outbox.push(frame);
    peer.outboxLength += frame.length + 1;
    this.#dirty.add(peer);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      queueMicrotask(() => this.#flush());
    }
  }

  /** Sends each peer's frames of this turn as one batch. */
  #flush(): void {
    this.#flushQueued = false;
    for (const peer of this.#dirty) this.#send(peer);
    this.#dirty.clear();
  }

  #send(peer: Peer): void {
    if (peer.outbox.length === 0) return;
    const batch = `[1,${JSON.stringify(this.name)},${this.#kernel.creation},${peer.incarnation},[${peer.outbox.join(',')}]]`;
    peer.outbox.length = 0;
    peer.outboxLength = 0;
    this.#transport.send(peer.name, batch);
  }

  #broadcast(frame: string): void {
    this.#transport.broadcast(`[1,${JSON.stringify(this.name)},${this.#kernel.creation},0,[${frame}]]`);
  }

  #frameDropped(reason: string, from: string, error?: unknown, extra?: Record<string, unknown>): void {
    this.#kernel.telemetry.execute('keel.cluster.frame_dropped', { count: 1 }, { node: this.name, from, reason, error, ...extra });
  }
}
