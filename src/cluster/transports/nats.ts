/**
 * The NATS transport: a cluster's nodes meet on a NATS server (or a NATS cluster), every subject
 * prefixed by the cluster's name, so two Keel clusters on one server never mix.
 *
 * Subjects (cluster `C`):
 * - `keel.C.in.<to>.<from>`: a node's one inbound path; it subscribes to `keel.C.in.<self>.*` and
 *   takes the sender from the last token, so under {@link clusterPermissions} the subject proves
 *   the sender (node X may publish only to `keel.C.in.*.X`);
 * - `keel.C.all.<from>`: broadcasts (hello, heartbeat, goodbye); every node subscribes to `keel.C.all.*`
 *   and ignores its own;
 * - `keel.C.ping.<node>`: each node answers requests on its own; a request to a node whose
 *   connection is gone gets NATS's "no responders" at once (`'gone'`), one that is not answered in
 *   time is `'timeout'` (a frozen or busy node, or this node cut off from NATS).
 *
 * The client (`@nats-io/transport-node`, an optional peer) is loaded with a dynamic `import()` in
 * {@link Transport.start}: nothing else in Keel loads it.
 */
import type { ConnectionOptions, NatsConnection, Subscription } from '@nats-io/transport-node';
import { InvalidArgumentError, MissingPeerError, StartError, checkKeys, describe, isError } from '../../errors.js';
import type { NodeIdentity, ProbeResult, Transport, TransportHandler } from '../Transport.js';

/** What a cluster name and a node name must be: they become NATS subject tokens. */
export const CLUSTER_NAME_PATTERN = /^[A-Za-z0-9_-]{1,64}$/;

/** The client's package, named in the error when it is missing. */
const CLIENT_PACKAGE = '@nats-io/transport-node';

/**
 * Room kept for protocol headers in a message (the transport publishes none, but a tracing or
 * JetStream layer may add some).
 */
const HEADER_ROOM = 1024;

/**
 * The least {@link NatsTransport.maxBatchSize} a cluster can work with (UTF-16 code units): a frame's
 * header room with a full trace context (1,341 code units in `Cluster.ts`), the control frames
 * (hello, heartbeat, goodbye, link resets, exit signals with their reasons) and a small value beside.
 */
const MIN_BATCH_SIZE = 4096;

/** The least `max_payload` (bytes) the transport starts on: {@link MIN_BATCH_SIZE} at 3 bytes a code unit, and the header room. */
const MIN_MAX_PAYLOAD = MIN_BATCH_SIZE * 3 + HEADER_ROOM;

/**
 * How long `flush` and `close` wait for the server's answer (ms): a frozen server, or one behind a
 * black hole, answers nothing until the client's own ping checks give up (minutes), and a node that
 * leaves is not held that long. Past it, `flush` resolves (nothing more can be done for what was
 * sent) and `close` closes without the server's acknowledgement.
 */
const SERVER_ANSWER_MS = 2000;

/**
 * How long `start` waits for the server to answer its flush (ms): a frozen server never answers, and
 * a connection given with `connect` has no connect timeout of its own to give up on it. Longer than
 * {@link SERVER_ANSWER_MS}: a start given up too soon fails a node that would have joined.
 */
const START_ANSWER_MS = 5000;

/** Why a start fails when `close` ran during it. */
const CLOSED_WHILE_STARTING = 'the transport was closed while it started';

/** `promise`, or undefined once `ms` have passed (an unref'd timer, cleared when it settles). */
async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<undefined>((resolve) => (timer = setTimeout(() => resolve(undefined), ms).unref()))]);
  } finally {
    clearTimeout(timer);
  }
}

/** The most peers whose inbound subject a transport keeps built (the least recently sent to is dropped first). */
const MAX_PEER_SUBJECTS = 256;

export interface NatsTransportOptions {
  /**
   * The NATS server URL or URLs (`nats://127.0.0.1:4222`). Required unless `connect` is given (then
   * it is ignored).
   */
  readonly servers?: string | readonly string[];
  /** The cluster's name, `[A-Za-z0-9_-]{1,64}`: the prefix of every subject (`keel.<cluster>.`). */
  readonly cluster: string;
  /**
   * Passed through to the client's `connect` (token, user and pass, an `authenticator` for NKeys
   * or credentials, `tls`, `name`, the reconnect settings...). The transport's defaults, which these
   * override: `name` `keel:<cluster>:<node>`, `inboxPrefix` `_INBOX.keel.<cluster>.<node>` (what
   * {@link clusterPermissions} lets the node read), `maxReconnectAttempts: -1` (reconnect for ever:
   * the cluster layer decides when a peer or this node is cut off), `reconnectTimeWait: 250`.
   */
  readonly connection?: Omit<ConnectionOptions, 'servers'>;
  /**
   * An open connection to use instead of opening one: the transport subscribes on it and, on
   * {@link Transport.close}, drains its own subscriptions but leaves the connection open.
   */
  readonly connect?: NatsConnection;
}

/** The NATS permissions of one node's user, as nats-server's configuration takes them. */
export interface NatsPermissions {
  readonly publish: { readonly allow: readonly string[] };
  readonly subscribe: { readonly allow: readonly string[] };
}

/** The node's own reply inbox prefix: its permissions let it read its own replies only. */
function inboxPrefix(cluster: string, node: string): string {
  return `_INBOX.keel.${cluster}.${node}`;
}

function checkName(argument: string, name: unknown): string {
  if (typeof name !== 'string' || !CLUSTER_NAME_PATTERN.test(name)) {
    throw new InvalidArgumentError(argument, 'a name of 1 to 64 letters, digits, `_` or `-`', name, 'it becomes a NATS subject token');
  }
  return name;
}

/**
 * The permissions that confine the node `node` of cluster `cluster` to its own part of the
 * cluster's subjects: it publishes only to peers' inbound subjects as itself
 * (`keel.C.in.*.<node>`), its own broadcasts, pings and replies (to any `_INBOX.>`); it subscribes
 * only to its own inbound and ping subjects, the broadcasts and its own reply inbox
 * (`_INBOX.keel.C.<node>.>`, the transport's default `inboxPrefix`). Give each node its own NATS user
 * with these permissions (plus the JetStream API subjects when the global registry or supervised
 * send is on): then a node cannot forge another node's sender token nor read another node's traffic.
 *
 * @example
 * ```ts fragment
 * clusterPermissions('orders', 'node-a');
 * // { publish: { allow: ['keel.orders.in.*.node-a', 'keel.orders.all.node-a', 'keel.orders.ping.*', '_INBOX.>'] },
 * //   subscribe: { allow: ['keel.orders.in.node-a.*', 'keel.orders.all.*', 'keel.orders.ping.node-a', '_INBOX.keel.orders.node-a.>'] } }
 * ```
 */
export function clusterPermissions(cluster: string, node: string): NatsPermissions {
  const c = checkName('cluster', cluster);
  const n = checkName('node', node);
  return {
    publish: { allow: [`keel.${c}.in.*.${n}`, `keel.${c}.all.${n}`, `keel.${c}.ping.*`, '_INBOX.>'] },
    subscribe: { allow: [`keel.${c}.in.${n}.*`, `keel.${c}.all.*`, `keel.${c}.ping.${n}`, `${inboxPrefix(c, n)}.>`] },
  };
}

type NatsModule = typeof import('@nats-io/transport-node');

async function loadClient(): Promise<NatsModule> {
  try {
    return await import('@nats-io/transport-node');
  } catch (e) {
    if (isMissingClient(e)) throw new MissingPeerError(CLIENT_PACKAGE, 'The NATS transport');
    throw e;
  }
}

/** True when `e` (or an error it wraps: loaders and test runners wrap) says a `@nats-io/` package is not installed. */
function isMissingClient(e: unknown): boolean {
  for (let depth = 0; depth < 4 && isError(e); depth++, e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if ((code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && e.message.includes('@nats-io/')) return true;
  }
  return false;
}

/** A handler's throw is a bug of the caller: rethrown outside the client's I/O callback, so the client's parser is never left mid-buffer. */
function rethrowLater(e: unknown): void {
  process.nextTick(() => {
    throw e;
  });
}

/**
 * A {@link Transport} over NATS core publish/subscribe; see the module's comment for the subjects.
 * Batches are at most once: a batch to a node that is not subscribed is dropped by the server
 * (NATS cannot tell the sender), and the cluster's heartbeats and probes find the node gone.
 *
 * @example
 * ```ts fragment
 * const transport = natsTransport({ servers: 'nats://127.0.0.1:4222', cluster: 'orders', connection: { token: 's3cret' } });
 * ```
 */
export function natsTransport(options: NatsTransportOptions): Transport {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object', options);
  checkKeys(options, ['servers', 'cluster', 'connection', 'connect'], 'options');
  const cluster = checkName('options.cluster', options.cluster);
  const { connect: existing, connection } = options;
  let servers: string[] = [];
  if (existing === undefined) {
    const s = options.servers;
    const list: unknown[] = typeof s === 'string' ? [s] : Array.isArray(s) ? [...(s as unknown[])] : [];
    if (list.length === 0 || list.some((u) => typeof u !== 'string' || u.length === 0)) {
      throw new InvalidArgumentError('options.servers', 'a NATS URL or a non-empty array of them', s);
    }
    servers = list as string[];
  } else if (typeof existing !== 'object' || existing === null || typeof (existing as { publish?: unknown }).publish !== 'function') {
    throw new InvalidArgumentError('options.connect', 'an open NatsConnection', existing);
  }
  if (connection !== undefined && (typeof connection !== 'object' || connection === null)) {
    throw new InvalidArgumentError('options.connection', 'an object of NATS connection options', connection);
  }
  return new NatsTransport(cluster, servers, connection, existing);
}

class NatsTransport implements Transport {
  readonly kind = 'nats';
  #maxBatchSize = 0;
  #nc: NatsConnection | undefined;
  #owned = true;
  #self = '';
  #handler: TransportHandler | undefined;
  #subs: Subscription[] = [];
  #started = false;
  #closed = false;
  #closing: Promise<void> | undefined;
  /** The server revoked a subscription after start: the node has left its others, and is cut off. */
  #deaf = false;
  /**
   * The inbound subjects of the peers sent to last (least recently used first): at most
   * {@link MAX_PEER_SUBJECTS}, and a peer found gone is dropped, so that names seen once (hostile or
   * short-lived peers) never pile up. A subject is cheap to build again.
   */
  readonly #peerSubjects = new Map<string, string>();
  #allSubject = '';
  #client: NatsModule | undefined;

  constructor(
    readonly cluster: string,
    readonly servers: readonly string[],
    readonly connection: Omit<ConnectionOptions, 'servers'> | undefined,
    readonly existing: NatsConnection | undefined,
  ) {}

  /**
   * The largest batch in UTF-16 code units: the server's `max_payload` less room for headers, over
   * 3 (a code unit is at most 3 bytes of UTF-8, which is what travels). 0 before start.
   */
  get maxBatchSize(): number {
    return this.#maxBatchSize;
  }

  async start(self: NodeIdentity, handler: TransportHandler): Promise<void> {
    if (this.#started) throw new InvalidArgumentError('start', 'called once per transport', 'a second call', 'make a new transport to join again');
    this.#started = true;
    if (typeof self !== 'object' || self === null) throw new InvalidArgumentError('self', 'a NodeIdentity', self);
    const name = checkName('self.name', self.name);
    if (!Number.isSafeInteger(self.incarnation) || self.incarnation <= 0) throw new InvalidArgumentError('self.incarnation', 'a positive safe integer', self.incarnation);
    if (typeof handler !== 'object' || handler === null) throw new InvalidArgumentError('handler', 'a TransportHandler', handler);
    this.#self = name;
    this.#handler = handler;
    const client = (this.#client = await loadClient());
    let nc: NatsConnection;
    if (this.existing !== undefined) {
      nc = this.existing;
      this.#owned = false;
    } else {
      try {
        nc = await client.connect({
          name: `keel:${this.cluster}:${name}`,
          inboxPrefix: inboxPrefix(this.cluster, name),
          maxReconnectAttempts: -1,
          reconnectTimeWait: 250,
          ...this.connection,
          servers: [...this.servers],
        });
      } catch (e) {
        throw new StartError(`the NATS transport of node '${name}' (cluster '${this.cluster}', servers ${this.servers.join(', ')})`, e, isError(e) ? e.message : describe(e));
      }
    }
    this.#nc = nc;
    if (this.#closed) {
      // closed while connecting: leave at once, and the start fails (the node never joined)
      if (this.#owned) await nc.close();
      throw new StartError(`the NATS transport of node '${name}' (cluster '${this.cluster}')`, 'closed', CLOSED_WHILE_STARTING);
    }
    const maxPayload = nc.info?.max_payload ?? 1024 * 1024;
    if (maxPayload < MIN_MAX_PAYLOAD) {
      // accepted, its heartbeats and ties would be refused by the server or fit no batch: refused at once
      await this.close();
      throw new StartError(
        `the NATS transport of node '${name}' (cluster '${this.cluster}')`,
        { max_payload_too_small: { max_payload: maxPayload, needs: MIN_MAX_PAYLOAD } },
        `the server's max_payload is ${maxPayload} bytes; the transport needs at least ${MIN_MAX_PAYLOAD} (batches of ${MIN_BATCH_SIZE} UTF-16 code units, up to 3 bytes each, and ${HEADER_ROOM} bytes of header room): raise max_payload in the server's configuration (default 1 MiB)`,
      );
    }
    this.#maxBatchSize = Math.floor((maxPayload - HEADER_ROOM) / 3);
    const prefix = `keel.${this.cluster}.`;
    this.#allSubject = `${prefix}all.${name}`;
    const inPrefixLength = `${prefix}in.${name}.`.length;
    const allPrefixLength = `${prefix}all.`.length;
    // a subscription the server refuses (permissions) fails it with its error, before the flush's
    // answer; one it revokes later (a configuration reload) leaves the node deaf to that subject
    let refused: Error | undefined;
    let started = false;
    const onRefused = (err: Error): void => {
      if (!started) refused ??= err;
      else this.#deafened(handler);
    };
    try {
      this.#subs.push(
        nc.subscribe(`${prefix}in.${name}.*`, {
          callback: (err, msg) => {
            if (err !== null) return void onRefused(err);
            try {
              handler.receive(msg.subject.slice(inPrefixLength), msg.string());
            } catch (e) {
              rethrowLater(e);
            }
          },
        }),
        nc.subscribe(`${prefix}all.*`, {
          callback: (err, msg) => {
            if (err !== null) return void onRefused(err);
            const from = msg.subject.slice(allPrefixLength);
            if (from === name) return;
            try {
              handler.receiveBroadcast(from, msg.string());
            } catch (e) {
              rethrowLater(e);
            }
          },
        }),
        nc.subscribe(`${prefix}ping.${name}`, {
          callback: (err, msg) => {
            if (err !== null) return void onRefused(err);
            msg.respond(name);
          },
        }),
      );
      // the server has the subscriptions once it answers a ping: a peer's probe finds this node from now on
      const flushed = nc.flush();
      flushed.catch(() => undefined); // abandoned below when the server does not answer
      if ((await within(flushed.then(() => true), START_ANSWER_MS)) !== true) {
        throw new Error(`the server did not answer within ${START_ANSWER_MS} ms (frozen, or behind a black hole)`);
      }
      // closed while the flush waited: the close left the subscriptions, and the start fails
      if (this.#closed) throw new Error(CLOSED_WHILE_STARTING);
      if (refused !== undefined) throw refused;
      started = true;
    } catch (e) {
      await this.close();
      throw new StartError(`the NATS transport of node '${name}' (cluster '${this.cluster}')`, e, isError(e) ? e.message : describe(e));
    }
    void this.#watchStatus(nc, handler);
  }

  /**
   * The server revoked one of the node's subscriptions after start: it can no longer hear its
   * peers, though it may still answer their probes. Rather than a node that looks alive and hears
   * nothing (its ties never answered), it leaves its other subscriptions too, so that its peers'
   * probes find it gone, and tells the cluster it is cut off (for good: a new node joins again).
   */
  #deafened(handler: TransportHandler): void {
    if (this.#deaf || this.#closed) return;
    this.#deaf = true;
    for (const sub of this.#subs) {
      try {
        sub.unsubscribe();
      } catch {
        // closed meanwhile: nothing left subscribed
      }
    }
    handler.connection('disconnected');
  }

  async #watchStatus(nc: NatsConnection, handler: TransportHandler): Promise<void> {
    let connected = true;
    try {
      for await (const status of nc.status()) {
        if (this.#closed) break;
        // cut off for good already: a reconnect brings nothing back
        if (this.#deaf) continue;
        if (status.type === 'disconnect' && connected) {
          connected = false;
          handler.connection('disconnected');
        } else if (status.type === 'reconnect' && !connected) {
          connected = true;
          handler.connection('reconnected');
        }
      }
      // the connection closed under the transport (a given one closed by its owner, or the client
      // giving up): this node is cut off for good, and the cluster is told so, never left sending
      // into a closed connection unaware
      if (!this.#closed && !this.#deaf && connected) handler.connection('disconnected');
    } catch (e) {
      rethrowLater(e);
    }
  }

  send(peer: string, batch: string): void {
    const nc = this.#nc;
    // deaf: cut off for good, and silent, so that its peers suspect it, probe it and find it gone
    // (its heartbeats heard would keep it up for ever, its ties waiting)
    if (this.#closed || this.#deaf || nc === undefined) return;
    const subjects = this.#peerSubjects;
    let subject = subjects.get(peer);
    if (subject !== undefined) {
      // the most recently used goes last
      subjects.delete(peer);
    } else {
      if (typeof peer !== 'string' || !CLUSTER_NAME_PATTERN.test(peer)) {
        // no node can have this name: nobody is there
        const handler = this.#handler;
        if (handler !== undefined) queueMicrotask(() => handler.peerGone(String(peer)));
        return;
      }
      subject = `keel.${this.cluster}.in.${peer}.${this.#self}`;
      if (subjects.size >= MAX_PEER_SUBJECTS) subjects.delete(subjects.keys().next().value!);
    }
    subjects.set(peer, subject);
    try {
      nc.publish(subject, batch);
    } catch {
      // closed or draining: at most once, the batch is dropped (the cluster is leaving, or has been
      // told the connection is gone). Else it is over the max_payload of the server the client is on
      // now (a reconnect to a server with a smaller one than at start): lost, and said so, so that
      // what waits on its frames is answered
      if (!this.#closed && !nc.isClosed() && !nc.isDraining()) this.#handler?.overloaded?.(peer, batch.length, 'oversized');
    }
  }

  broadcast(batch: string): void {
    const nc = this.#nc;
    if (this.#closed || this.#deaf || nc === undefined) return;
    try {
      nc.publish(this.#allSubject, batch);
    } catch {
      // as in send
    }
  }

  /** @internal Counts for leak checks: the peers whose inbound subject is kept. */
  internals(): { peerSubjects: number } {
    return { peerSubjects: this.#peerSubjects.size };
  }

  async probe(peer: string, timeoutMs: number): Promise<ProbeResult> {
    if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || timeoutMs === Infinity) {
      throw new InvalidArgumentError('timeoutMs', 'a positive finite number of milliseconds', timeoutMs);
    }
    if (typeof peer !== 'string' || !CLUSTER_NAME_PATTERN.test(peer)) return 'gone';
    const nc = this.#nc;
    // a transport that is not attached cannot tell; a deaf one never hears the peer again, whatever
    // its ping answers ('alive' would keep the peer up here for ever, and the ties to it waiting)
    if (this.#closed || this.#deaf || nc === undefined) return 'timeout';
    try {
      await nc.request(`keel.${this.cluster}.ping.${peer}`, this.#self, { timeout: Math.max(1, Math.ceil(timeoutMs)) });
      return 'alive';
    } catch (e) {
      const client = this.#client;
      if (client !== undefined && e instanceof client.RequestError && e.isNoResponders()) {
        // nobody is there: its subject is built again if it comes back
        this.#peerSubjects.delete(peer);
        return 'gone';
      }
      // a timeout, or the connection closing or cut off meanwhile: no answer in time
      return 'timeout';
    }
  }

  async flush(): Promise<void> {
    const nc = this.#nc;
    if (this.#closed || nc === undefined) return;
    const flushed = nc.flush();
    flushed.catch(() => undefined); // closed meanwhile, or abandoned below: nothing left to flush
    await within(flushed, SERVER_ANSWER_MS).catch(() => undefined);
  }

  close(): Promise<void> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<void> {
    this.#closed = true;
    const nc = this.#nc;
    if (nc === undefined || nc.isClosed()) return;
    const drained = this.#owned ? nc.drain() : Promise.all(this.#subs.map((s) => s.drain())).then(() => undefined);
    drained.catch(() => undefined); // handled below, or abandoned
    let done = false;
    try {
      done = (await within(drained.then(() => true), SERVER_ANSWER_MS)) === true;
    } catch {
      // draining a connection that is already closing: it closes anyway
    }
    if (!done) {
      // no answer in time (a frozen server): closed without its acknowledgement
      if (this.#owned) {
        if (!nc.isClosed()) await nc.close().catch(() => undefined);
      } else {
        for (const sub of this.#subs) {
          try {
            sub.unsubscribe();
          } catch {
            // the connection closed meanwhile: nothing left subscribed
          }
        }
      }
    }
    this.#subs = [];
  }
}
