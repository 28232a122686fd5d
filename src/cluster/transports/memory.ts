/**
 * An in-memory network of transports, for tests: nodes of one OS process (one thread) joined
 * without sockets. Batches are delivered in order per pair, each on a later turn of the event loop
 * (never in the sender's frame), and the network can cut a node off (`isolate`: its batches and
 * probes go nowhere, as a frozen node's) or drop it (`close`: probes answer `gone` at once).
 */
import { InvalidArgumentError } from '../../errors.js';
import type { NodeIdentity, ProbeResult, Transport, TransportHandler } from '../Transport.js';

interface Member {
  readonly name: string;
  readonly handler: TransportHandler;
}

/** A network of in-memory transports. */
export class MemoryNetwork {
  readonly #members = new Map<string, Member>();
  readonly #isolated = new Set<string>();
  readonly #cut = new Set<string>();
  readonly #queue: (() => void)[] = [];
  #scheduled = false;
  /** The largest batch a transport of this network carries. */
  readonly maxBatchSize: number;

  constructor(options?: { maxBatchSize?: number }) {
    this.maxBatchSize = options?.maxBatchSize ?? 1024 * 1024;
  }

  /** A new transport on this network (one per node). */
  transport(): Transport {
    return new MemoryTransport(this);
  }

  /** Cuts `name` off: nothing it sends arrives, nothing sent to it arrives, probes of it time out. */
  isolate(name: string): void {
    this.#isolated.add(name);
  }

  /** Puts an isolated (or cut) node back; a cut one is told its link came back. */
  heal(name: string): void {
    this.#isolated.delete(name);
    if (this.#cut.delete(name)) {
      const member = this.#members.get(name);
      if (member !== undefined) this.#later(() => member.handler.connection('reconnected'));
    }
  }

  /** Cuts `name`'s own link to the network, as a NATS disconnect: isolated, and told so. */
  cut(name: string): void {
    this.#isolated.add(name);
    this.#cut.add(name);
    const member = this.#members.get(name);
    if (member !== undefined) this.#later(() => member.handler.connection('disconnected'));
  }

  /** The names of the attached nodes. */
  get names(): string[] {
    return [...this.#members.keys()];
  }

  /** @internal */
  attach(member: Member): void {
    if (this.#members.has(member.name)) throw new InvalidArgumentError('name', 'a node name not yet on this network', member.name);
    this.#members.set(member.name, member);
  }

  /** @internal */
  detach(name: string): void {
    const member = this.#members.get(name);
    if (member === undefined) return;
    this.#members.delete(name);
    for (const other of this.#members.values()) this.#later(() => other.handler.peerGone(name));
  }

  /** @internal */
  deliver(from: string, to: string, batch: string, broadcast: boolean): void {
    if (this.#isolated.has(from) || this.#isolated.has(to)) return;
    this.#later(() => {
      const member = this.#members.get(to);
      if (member === undefined || this.#isolated.has(from) || this.#isolated.has(to)) return;
      if (broadcast) member.handler.receiveBroadcast(from, batch);
      else member.handler.receive(from, batch);
    });
  }

  /** @internal */
  broadcast(from: string, batch: string): void {
    for (const name of this.#members.keys()) if (name !== from) this.deliver(from, name, batch, true);
  }

  /** @internal */
  probe(from: string, peer: string): ProbeResult | undefined {
    if (!this.#members.has(peer)) return 'gone';
    if (this.#isolated.has(peer) || this.#isolated.has(from)) return undefined; // no answer: it times out
    return 'alive';
  }

  /** Runs deliveries in order, on a later turn, in one `setImmediate` for all that are queued. */
  #later(fn: () => void): void {
    this.#queue.push(fn);
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      const queue = this.#queue.splice(0);
      for (const run of queue) run();
    });
  }
}

class MemoryTransport implements Transport {
  readonly kind = 'memory';
  readonly #network: MemoryNetwork;
  #name: string | undefined;
  #closed = false;

  constructor(network: MemoryNetwork) {
    this.#network = network;
  }

  get maxBatchSize(): number {
    return this.#network.maxBatchSize;
  }

  start(self: NodeIdentity, handler: TransportHandler): Promise<void> {
    if (this.#name !== undefined) return Promise.reject(new InvalidArgumentError('transport', 'a transport not yet started', this.#name));
    this.#network.attach({ name: self.name, handler });
    this.#name = self.name;
    return Promise.resolve();
  }

  send(peer: string, batch: string): void {
    if (this.#name === undefined || this.#closed) return;
    this.#network.deliver(this.#name, peer, batch, false);
  }

  broadcast(batch: string): void {
    if (this.#name === undefined || this.#closed) return;
    this.#network.broadcast(this.#name, batch);
  }

  probe(peer: string, timeoutMs: number): Promise<ProbeResult> {
    const answer = this.#closed || this.#name === undefined ? 'gone' : this.#network.probe(this.#name, peer);
    if (answer !== undefined) return Promise.resolve(answer);
    // an isolated peer never answers: 'timeout' after timeoutMs of real time (the memory network has no clock)
    return new Promise((resolve) => setTimeout(() => resolve('timeout'), timeoutMs).unref());
  }

  flush(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    if (!this.#closed && this.#name !== undefined) this.#network.detach(this.#name);
    this.#closed = true;
    return Promise.resolve();
  }
}
