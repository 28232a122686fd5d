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
import { InvalidArgumentError, MessageTooLargeError, NodeStoppedError, PeersTimeoutError } from '../errors.js';
import { GenServer, type GenServerSpec } from '../otp/GenServer.js';
import { Supervisor } from '../otp/Supervisor.js';
import { type Kernel, kernelOf, type RemoteRouter } from '../runtime/kernel.js';
import { type Pid, PidImpl } from '../runtime/Pid.js';
import type { Node } from '../runtime/types.js';
import { MAX_TRACESTATE_LENGTH } from '../telemetry/tracing.js';
import { decodeBatch, encodeValue, type PidFactory, reviveValue } from './codec.js';
import { BatchReader } from './internal/BatchReader.js';
import { FailureDetector } from './internal/FailureDetector.js';
import { Incarnations } from './internal/Incarnations.js';
import { Peer } from './internal/Peer.js';
import { checkJoinOptions, NODE_NAME, positive, timeoutOptions, timingsOf } from './internal/options.js';
import { Remote } from './internal/Remote.js';
import { Resets } from './internal/Resets.js';
import type { Transport, TransportHandler } from './Transport.js';

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

/**
 * What a batch holds besides its frames' values: the batch's own header, a frame's name and ids,
 * and the trace context a call or a cast may carry (its `traceparent`, and a `tracestate` of up to
 * {@link MAX_TRACESTATE_LENGTH} characters, each of which JSON may write as two). A value may be as
 * long as the batch limit less this: the largest traced frame then still fits in one batch (with
 * 256 alone, a value at the limit and a long `tracestate` made a batch over it, which a NATS server
 * refuses past its `max_payload`).
 */
const HEADER_ROOM = 256 + ',"'.length + 55 + '",'.length + 2 + 2 * MAX_TRACESTATE_LENGTH;
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
  readonly #detector: FailureDetector;
  readonly #resets: Resets;
  readonly #reader: BatchReader;
  /** The largest encoded value a frame carries: the transport's batch limit less a header's room (known once it has started). */
  #maxValueLength = 0;
  /** The supervisor of the cluster's process. */
  #supervisor: Pid | undefined;
  #left = false;
  #removeShutdown: (() => void) | undefined;
  /** The waiters of `waitFor`: called when a peer comes up, and with `stopped` when the node shuts down. */
  readonly #upWaiters = new Set<(stopped?: boolean) => void>();
  readonly #pids: PidFactory;
  /** While the transport sends a batch: the peer it is for, its frames still that peer's outbox (see `overloaded`). */
  #sendingTo: Peer | undefined;

  private constructor(kernel: Kernel, options: ClusterOptions) {
    this.#kernel = kernel;
    this.#transport = options.transport;
    const t = timingsOf(options);
    this.#remote = new Remote({
      kernel,
      maxValueLength: () => this.#maxValueLength,
      peerOf: (pid) => this.#up(pid.node),
      push: (peer, frame) => this.#push(peer, frame),
      dropped: (reason, metadata) => kernel.telemetry.execute('keel.message.dropped', { count: 1 }, { ...metadata, reason }),
      decode: (text) => decodeBatch(text, this.#pids),
    });
    this.#resets = new Resets({ push: (peer, frame) => this.#push(peer, frame), reset: (peer) => this.#remote.peerDown(peer, true) }, t);
    this.#detector = new FailureDetector(
      {
        kernel,
        transport: this.#transport,
        peers: this.#peers,
        left: () => this.#left,
        beat: () => this.#broadcast('["b"]'),
        tick: (peer) => this.#resets.tick(peer),
        down: (peer, reason) => this.#down(peer, reason),
      },
      t,
    );
    this.#reader = new BatchReader({ name: kernel.name, creation: kernel.creation, transport: this.#transport, dropped: (...args) => this.#frameDropped(...args) });
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
    checkJoinOptions(options);
    if (!NODE_NAME.test(kernel.name)) throw new InvalidArgumentError('node.name', 'a cluster node name: 1 to 64 of A-Z a-z 0-9 _ - (it becomes a subject token)', kernel.name);
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
        this.#detector.start(ctx);
        return null;
      },
      handleInfo: (message, state, ctx) => {
        this.#detector.handleInfo(message, ctx);
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
      this.#kernel.telemetry.execute('keel.message.dropped', { count: 1 }, { to: `${name}@${node}`, from: 'node', reason: 'noconnection', message });
      return;
    }
    this.#push(peer, `["n",${nameText},0,${encoded}]`);
  }

  /** Leaves the cluster: a goodbye to every peer, every tie answered with `noconnection`, the transport closed. Idempotent. */
  async leave(): Promise<void> {
    if (this.#left) return;
    this.#left = true;
    this.#detector.stop();
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
        if (p !== undefined) this.#detector.probe(p, 'port_closed');
      },
      overloaded: (peer, size, why, counted) => {
        // a batch the transport dropped: the peer has not read what it was sent (a busy or blocked
        // thread), or the server refused its size; its frames are lost, so the peer is down for this
        // node (its ties answered with noconnection), after the flush that is sending (no down in the middle of it)
        const reason = why === 'oversized' ? 'oversized' : 'overloaded';
        // the frames of the batch being sent (none for a broadcast), taken before any handler runs (it may send again)
        const sentTo = this.#sendingTo?.name === peer ? this.#sendingTo : undefined;
        this.#sendingTo = undefined;
        const frames = sentTo?.outbox;
        if (sentTo !== undefined) sentTo.outbox = [];
        // size: the batch's length; counted: what it counted against the transport's bound (worker: maxInFlight)
        const measurements = typeof counted === 'number' ? { count: 1, size, counted } : { count: 1, size };
        this.#kernel.telemetry.execute('keel.cluster.send_dropped', measurements, { node: this.name, to: peer, reason });
        // each message among its frames is dropped, and said so
        if (sentTo !== undefined && frames !== undefined) this.#remote.lost(sentTo, frames);
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
            this.#resets.ask(peer);
          }
          return;
        }
        this.#detector.cutOff();
      },
    };
  }

  #receive(from: string, batch: string, broadcast: boolean): void {
    if (this.#left) return;
    const read = this.#reader.read(from, batch);
    if (read === undefined) return;
    if (read === 'oversized') {
      // its frames are lost, and a tie's frames must not be: the peer goes down (see BatchReader)
      const peer = broadcast ? undefined : this.#peers.get(from);
      if (peer !== undefined) this.#down(peer, 'oversized');
      return;
    }
    const { incarnation, frames, tagged } = read;
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
          this.#resets.asked(peer, f);
        } else if (f[0] === '!!') {
          this.#resets.answered(peer, f);
        } else if (!broadcast) this.#remote.frame(peer, f);
      } catch (e) {
        this.#frameDropped('malformed', from, e);
      }
    }
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
        this.#resets.ask(peer); // it was down to us: say so first
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

  // ---- membership: down (heartbeats, suspicion and probes: internal/FailureDetector.ts) --------

  #down(peer: Peer, reason: NodeDownReason): void {
    if (this.#peers.get(peer.name) !== peer) return;
    this.#peers.delete(peer.name);
    this.#dirty.delete(peer);
    peer.status = 'down';
    // a peer downed for anything but its own word may speak again as itself (silence, or a transport
    // that took it for gone): it is told first that it was down, so that it answers its ties too
    if (reason !== 'goodbye' && reason !== 'new_incarnation' && reason !== 'left') this.#gone.silence(peer.name, peer.incarnation);
    else this.#resets.forget(peer.name);
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
    const peers = [...this.#dirty];
    this.#dirty.clear();
    // a frame queued while these are sent (a send_dropped handler's send, run by the transport's
    // send) makes its peer dirty again: it goes in a flush after the event loop's next turn, not in
    // this one (a handler that sends again at each drop would loop here for ever); #flushQueued stays
    // true meanwhile, so that such a push queues no flush of its own
    try {
      for (const peer of peers) this.#send(peer);
    } finally {
      if (this.#dirty.size > 0) setImmediate(() => this.#flush());
      else this.#flushQueued = false;
    }
  }

  #send(peer: Peer): void {
    const frames = peer.outbox;
    if (frames.length === 0) return;
    const batch = `[1,${JSON.stringify(this.name)},${this.#kernel.creation},${peer.incarnation},[${frames.join(',')}]]`;
    peer.outboxLength = 0;
    // the peer whose batch the transport is sending: a drop (overloaded(), called during send) takes
    // its frames from the outbox, which it replaces, so that a frame pushed by a send_dropped handler
    // is the next batch's; else the outbox is emptied once the batch is handed on
    this.#sendingTo = peer;
    this.#transport.send(peer.name, batch);
    this.#sendingTo = undefined;
    if (peer.outbox === frames) frames.length = 0;
  }

  #broadcast(frame: string): void {
    this.#transport.broadcast(`[1,${JSON.stringify(this.name)},${this.#kernel.creation},0,[${frame}]]`);
  }

  #frameDropped(reason: string, from: string, error?: unknown, extra?: Record<string, unknown>): void {
    this.#kernel.telemetry.execute('keel.cluster.frame_dropped', { count: 1 }, { node: this.name, from, reason, error, ...extra });
  }
}
