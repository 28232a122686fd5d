/**
 * A transport carries batches of encoded frames between the nodes of one cluster. It knows nothing of
 * processes: the cluster layer (`Cluster.ts`) encodes frames, batches them per peer and per turn, and
 * gives a transport one string per batch. Three transports implement this one interface and pass
 * one behaviour suite (`test/cluster/transportSuite.ts`): NATS (`transports/nats.ts`), worker
 * threads (`transports/worker.ts`) and in-memory (`transports/memory.ts`, for unit tests).
 *
 * Order: batches from one sender to one receiver arrive in the order they were sent (per-pair
 * order), and a receiver's one inbound path carries every kind of frame (messages and link,
 * monitor and exit signals alike), so that order holds across kinds.
 *
 * Delivery is at most once: a batch to a peer that is gone is dropped; the transport says so when
 * it can tell ({@link TransportHandler.peerGone}), and the cluster's heartbeats tell otherwise.
 */

/** Who a node is in its cluster: its name (a subject token) and its incarnation (fresh at each boot). */
export interface NodeIdentity {
  /** The node's name: `[A-Za-z0-9_-]{1,64}` (it becomes a NATS subject token). */
  readonly name: string;
  /** The node's incarnation (`node.creation`): a positive safe integer, fresh at each boot. */
  readonly incarnation: number;
}

/** What a transport tells the cluster layer. Called from the transport's own I/O callbacks. */
export interface TransportHandler {
  /**
   * A batch arrived from the peer named `from`. `from` is what the transport can vouch for (the
   * NATS subject's sender token, under the cluster's permissions; the worker port it came on); the
   * cluster drops a batch whose frames claim another sender.
   */
  receive(from: string, batch: string): void;
  /** A broadcast batch (hello, heartbeat, goodbye) arrived from the peer named `from`. */
  receiveBroadcast(from: string, batch: string): void;
  /** The transport knows `peer` is gone (its socket or port closed, or NATS answered no responders). */
  peerGone(peer: string): void;
  /** The transport's own link to the cluster went down or came back (NATS disconnect / reconnect). */
  connection(state: 'disconnected' | 'reconnected'): void;
  /**
   * The transport dropped a batch of `size` code units to `peer` (direct or broadcast): `overloaded`
   * (the default) because `peer` has not read what it was sent before (the worker transport's
   * `maxInFlight`), `oversized` because the server refused its size (NATS: the `max_payload` of a
   * server reconnected to is smaller than the one at start). Its frames are lost, so the cluster
   * takes the peer for down. `counted`, when the transport bounds what a peer has not read, is what
   * the batch counted against that bound (the worker transport's `maxInFlight`: `size` plus
   * `WORKER_BATCH_OVERHEAD`, 512).
   */
  overloaded?(peer: string, size: number, reason?: 'overloaded' | 'oversized', counted?: number): void;
}

/** The answer to {@link Transport.probe}. */
export type ProbeResult = 'alive' | 'gone' | 'timeout';

export interface Transport {
  /** 'nats', 'worker' or 'memory' (for events and errors). */
  readonly kind: string;
  /** The largest batch, in UTF-16 code units of the encoded string, this transport carries. */
  readonly maxBatchSize: number;
  /**
   * The largest batch a peer may send this node, when peers may carry larger batches than this
   * node's own `maxBatchSize` (each worker-transport node chooses its own); `maxBatchSize` when
   * absent. A longer batch is refused unparsed (`frame_dropped`, `oversized`).
   */
  readonly maxReceiveSize?: number;
  /**
   * Joins the cluster as `self`: subscribes to this node's inbound path and the broadcasts, then
   * resolves. Rejects with a typed error when it cannot (NATS unreachable, name taken by a live
   * port...). Called once.
   */
  start(self: NodeIdentity, handler: TransportHandler): Promise<void>;
  /** Sends one batch to `peer`'s inbound path. Never throws: a failure is a {@link TransportHandler.peerGone} or nothing (at most once). */
  send(peer: string, batch: string): void;
  /** Sends one batch to every node of the cluster (this node's own copy is not delivered back). */
  broadcast(batch: string): void;
  /**
   * Asks whether `peer` is still attached: `gone` when the transport knows at once that nobody is
   * there (NATS: no responders on the peer's ping subject; a closed worker port), `alive` when the
   * peer answers, `timeout` when it does not answer in `timeoutMs` (a frozen or busy peer).
   */
  probe(peer: string, timeoutMs: number): Promise<ProbeResult>;
  /** Flushes what was sent (NATS: a round trip to the server) so that it is on its way. */
  flush(): Promise<void>;
  /** Leaves the cluster: unsubscribes and closes what the transport opened. Idempotent. */
  close(): Promise<void>;
}
