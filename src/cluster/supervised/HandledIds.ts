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
 *
 * Each record also says which delivery handled the id: JetStream's delivery count then and the
 * send's reply subject (`<n> <reply>`; a subject has no spaces). JetStream does not count a
 * message's deliveries across its receiver's death (nats-server 2.9 says delivery 1 again for a
 * message redelivered a little past the ack wait to a node restarted meanwhile), so a redelivery of
 * the message that was handled is known from this to be at least its next delivery.
 *
 * For the same reason the bucket also keeps, under a key of its own (`<node>.s.<id>`), the attempts
 * started here of a send that was not handled yet (`<attempt> <reply>`), written before the attempt
 * starts, only where JetStream's count cannot be trusted: every attempt of a send with one attempt
 * (`retries: 0`, `ack: 'handled'`: a crash while its handler runs must not let it run again), and
 * every redelivery (JetStream's count above 1). The first delivery of any other send writes none.
 */

/** The part of a KV bucket the record uses (`@nats-io/kv`'s `KV`). */
export interface HandledBucket {
  get(key: string): Promise<{ readonly operation: string; string(): string } | null>;
  put(key: string, value: string): Promise<number>;
  /** Writes `value` only when `key` holds none; rejects when it holds one (or the bucket did not answer). */
  create(key: string, value: string): Promise<number>;
}

/** The delivery that handled an id: JetStream's count then (0: unknown, a record of an earlier version) and its send's reply subject ('' unknown). */
export interface HandledBy {
  readonly n: number;
  readonly reply: string;
}

const UNKNOWN: HandledBy = Object.freeze({ n: 0, reply: '' });

export class HandledIds {
  readonly #recent = new Map<string, HandledBy>();
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

  /** The delivery that handled `id` on this node (in memory, else in the bucket); undefined when it was not handled here. */
  async find(id: string): Promise<HandledBy | undefined> {
    const recent = this.#recent.get(id);
    if (recent !== undefined) return recent;
    if (this.#bucket === undefined) return undefined;
    const entry = await this.#bucket.get(this.#key(id));
    if (entry === null || entry.operation !== 'PUT') return undefined;
    const by = parse(entry.string());
    this.#remember(id, by);
    return by;
  }

  /** True when the bucket records `id` as handled by `node` (a sender asks of its receiver). */
  async handledBy(node: string, id: string): Promise<boolean> {
    if (this.#bucket === undefined) return false;
    const entry = await this.#bucket.get(`${node}.${Buffer.from(id, 'utf8').toString('base64url')}`);
    return entry !== null && entry.operation === 'PUT';
  }

  /** Records `id` as handled by delivery `n` of the send replied to on `reply`: in memory at once, in the bucket when the promise resolves. */
  async add(id: string, n: number, reply: string): Promise<void> {
    this.#remember(id, { n, reply });
    if (this.#bucket !== undefined) await this.#bucket.put(this.#key(id), `${n} ${reply}`);
  }

  /** The last attempt recorded as started here of the send of `id` replied to on `reply` (0: none recorded). */
  async started(id: string, reply: string): Promise<number> {
    if (this.#bucket === undefined) return 0;
    const entry = await this.#bucket.get(this.#startKey(id));
    if (entry === null || entry.operation !== 'PUT') return 0;
    const by = parse(entry.string());
    return by.reply === reply ? by.n : 0;
  }

  /** Records attempt `n` of the send of `id` replied to on `reply` as started (in the bucket when the promise resolves). */
  async start(id: string, n: number, reply: string): Promise<void> {
    if (this.#bucket !== undefined) await this.#bucket.put(this.#startKey(id), `${n} ${reply}`);
  }

  /**
   * Records the first attempt of the send of `id` replied to on `reply` as started, unless an attempt
   * of it is recorded already: resolves 0 when it recorded it, else the last attempt recorded.
   */
  async startFirst(id: string, reply: string): Promise<number> {
    const bucket = this.#bucket;
    if (bucket === undefined) return 0;
    const key = this.#startKey(id);
    try {
      await bucket.create(key, `1 ${reply}`);
      return 0;
    } catch (e) {
      // held already (or no answer: then the read fails too, or finds nothing, and the error stands)
      const entry = await bucket.get(key);
      if (entry === null || entry.operation !== 'PUT') throw e;
      const by = parse(entry.string());
      if (by.reply === reply) return by.n;
      await bucket.put(key, `1 ${reply}`); // another send's attempts (an earlier send of the same id)
      return 0;
    }
  }

  #remember(id: string, by: HandledBy): void {
    this.#recent.delete(id);
    this.#recent.set(id, by);
    if (this.#recent.size > this.#capacity) this.#recent.delete(this.#recent.keys().next().value!);
  }

  /** A bucket key for any id: base64url keeps it within KV's key alphabet (`[-/_=.A-Za-z0-9]`). */
  #key(id: string): string {
    return this.#prefix + Buffer.from(id, 'utf8').toString('base64url');
  }

  /** The key of the attempts started (`<node>.s.<id>`: a base64url id has no dot, so never a handled id's key). */
  #startKey(id: string): string {
    return `${this.#prefix}s.${Buffer.from(id, 'utf8').toString('base64url')}`;
  }
}

/** A record's value, `<n> <reply>`; an earlier version's `1` (or anything else) says nothing of the delivery. */
function parse(value: string): HandledBy {
  const space = value.indexOf(' ');
  const n = Number(value.slice(0, space));
  return space > 0 && Number.isSafeInteger(n) && n >= 1 && space < value.length - 1 ? { n, reply: value.slice(space + 1) } : UNKNOWN;
}
