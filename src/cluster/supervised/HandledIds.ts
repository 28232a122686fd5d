/**
 * @internal The receiving node's record of the message ids it has handled (or, for `ack:
 * 'enqueued'`, enqueued), so that a redelivery of one (JetStream redelivers a message not acked
 * before a crash; a sender may send an id again after the stream's dedupe window) is acknowledged
 * without being handled a second time.
 *
 * Two tiers: an in-memory LRU of the most recent ids (bounded, `capacity`), and a JetStream KV
 * bucket that outlives the process (each node's ids under its own key prefix, aged out by the
 * bucket's `max_age`). An id is written to the bucket before the JetStream message is acked, so a
 * crash between the handler's end and the ack finds it there on the redelivery. The one window left
 * is between the handler's end and the bucket's answer to the write (microseconds to a round trip):
 * a crash in it handles the message once more on the redelivery (at-least-once, never lost).
 */

/** The part of a KV bucket the record uses (`@nats-io/kv`'s `KV`). */
export interface HandledBucket {
  get(key: string): Promise<{ readonly operation: string } | null>;
  put(key: string, value: string): Promise<number>;
}

export class HandledIds {
  readonly #recent = new Map<string, true>();
  readonly #capacity: number;
  readonly #bucket: HandledBucket | undefined;
  readonly #prefix: string;

  constructor(capacity: number, bucket: HandledBucket | undefined, node: string) {
    this.#capacity = capacity;
    this.#bucket = bucket;
    this.#prefix = `${node}.`;
  }

  /** Ids held in memory. */
  get size(): number {
    return this.#recent.size;
  }

  /** True when `id` was handled by this node (in memory, else in the bucket). */
  async has(id: string): Promise<boolean> {
    if (this.#recent.has(id)) return true;
    if (this.#bucket === undefined) return false;
    const entry = await this.#bucket.get(this.#key(id));
    if (entry === null || entry.operation !== 'PUT') return false;
    this.#remember(id);
    return true;
  }

  /** True when the bucket records `id` as handled by `node` (a sender asks of its receiver). */
  async handledBy(node: string, id: string): Promise<boolean> {
    if (this.#bucket === undefined) return false;
    const entry = await this.#bucket.get(`${node}.${Buffer.from(id, 'utf8').toString('base64url')}`);
    return entry !== null && entry.operation === 'PUT';
  }

  /** Records `id` as handled: in memory at once, in the bucket when the promise resolves. */
  async add(id: string): Promise<void> {
    this.#remember(id);
    if (this.#bucket !== undefined) await this.#bucket.put(this.#key(id), '1');
  }

  #remember(id: string): void {
    this.#recent.delete(id);
    this.#recent.set(id, true);
    if (this.#recent.size > this.#capacity) this.#recent.delete(this.#recent.keys().next().value!);
  }

  /** A bucket key for any id: base64url keeps it within KV's key alphabet (`[-/_=.A-Za-z0-9]`). */
  #key(id: string): string {
    return this.#prefix + Buffer.from(id, 'utf8').toString('base64url');
  }
}
