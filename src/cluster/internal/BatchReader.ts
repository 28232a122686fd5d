/**
 * @internal The first reading of a batch that arrives: its sender and its size checked before it is
 * parsed, then its header (the format, the sender it names, its incarnation and the one it is for).
 * Its frames are left to the cluster, revived one by one (a bad value costs its frame only).
 */
import { MessageTooLargeError } from '../../errors.js';
import { parseBatch } from '../codec.js';
import type { Transport } from '../Transport.js';
import { NODE_NAME } from './options.js';

/** A batch whose header was read: the sender's incarnation and its frames (to revive when `tagged`). */
export interface Batch {
  readonly incarnation: number;
  readonly frames: unknown[];
  readonly tagged: boolean;
}

/** What the reader needs of the cluster around it. */
export interface BatchReaderHost {
  /** This node's name and incarnation. */
  readonly name: string;
  readonly creation: number;
  readonly transport: Pick<Transport, 'maxBatchSize' | 'maxReceiveSize'>;
  /** Drops what came from `from` (`keel.cluster.frame_dropped`). */
  dropped(reason: string, from: string, error?: unknown, extra?: Record<string, unknown>): void;
}

export class BatchReader {
  readonly #host: BatchReaderHost;

  constructor(host: BatchReaderHost) {
    this.#host = host;
  }

  /**
   * The batch `batch` from `from`, its header read; undefined when it is dropped, and 'oversized'
   * when it is dropped for its size (the peer then goes down: see below).
   */
  read(from: string, batch: string): Batch | 'oversized' | undefined {
    if (typeof from !== 'string' || !NODE_NAME.test(from)) {
      // a sender no node can have (NATS takes a literal `*`, `>` or `é` as a subject token, and a
      // foreign client may publish with one): never a peer, so never up, nor a tie's end
      const text = String(from);
      this.#host.dropped('forged_sender', text.length > 120 ? `${text.slice(0, 117)}...` : text);
      return undefined;
    }
    const max = this.#host.transport.maxReceiveSize ?? this.#host.transport.maxBatchSize;
    if (batch.length > max) {
      // refused before it is parsed: no peer of this transport sends one (its batches are cut at its
      // limit, at most this), and parsing it is the cost a hostile one would impose. Its frames are lost, and a
      // tie's frames must not be (a reply, a Down, an exit signal): the peer goes down, so what waits
      // on it is answered with noconnection, and if it speaks again it is told it was down first
      this.#host.dropped('oversized', from, new MessageTooLargeError(batch.length, max, true, `a batch from node ${from}`));
      return 'oversized';
    }
    let data: unknown;
    let tagged: boolean;
    try {
      // parsed once; the values are revived frame by frame by the cluster, so that a bad one costs its frame
      ({ value: data, tagged } = parseBatch(batch));
    } catch (e) {
      this.#host.dropped('malformed', from, e);
      return undefined;
    }
    if (!Array.isArray(data) || data.length !== 5 || data[0] !== 1 || !Array.isArray(data[4])) {
      this.#host.dropped('malformed', from);
      return undefined;
    }
    const [, sender, incarnation, toIncarnation, frames] = data as [number, unknown, unknown, unknown, unknown[]];
    // a batch in this node's own name is forged too (a publish on its own subject): a node is never its own peer
    if (sender !== from || from === this.#host.name) {
      // JSON text, not String(): a parsed object with a key `toString` cannot be made text
      const claimed = typeof sender === 'string' ? sender : JSON.stringify(sender);
      this.#host.dropped('forged_sender', from, undefined, { claimed: claimed.length > 120 ? `${claimed.slice(0, 117)}...` : claimed });
      return undefined;
    }
    if (typeof incarnation !== 'number' || !Number.isSafeInteger(incarnation) || incarnation <= 0) {
      this.#host.dropped('malformed', from);
      return undefined;
    }
    // the incarnation it is for (0: any): anything but a count is malformed, not carried raw into an event
    if (typeof toIncarnation !== 'number' || !Number.isSafeInteger(toIncarnation) || toIncarnation < 0) {
      this.#host.dropped('malformed', from);
      return undefined;
    }
    if (toIncarnation !== 0 && toIncarnation !== this.#host.creation) {
      this.#host.dropped('stale_incarnation', from, undefined, { incarnation: toIncarnation });
      return undefined;
    }
    return { incarnation, frames, tagged };
  }
}
