/**
 * @internal The link-reset protocol: `["!", n, ack]` tells a peer that it was down to this node, or
 * that the link between them was lost and back (its ties here have just been answered with
 * noconnection), and `["!!", n]` answers it. Resets are numbered, so that a '!' sent again is
 * answered once, crossing resets answer nothing twice, and a '!!' answering an older reset is told
 * apart (see docs/cluster.md, "Protocol").
 */
import type { Timings } from './options.js';
import type { Peer } from './Peer.js';

/** How many peers' last answered reset numbers a node keeps (as many as the peers downed for silence it remembers). */
const ANSWERED_KEPT = 1024;
/** A reset unanswered is followed by another after suspectAfterMs, then twice that, ... up to 2^6 times it. */
const MAX_BACKOFF = 6;

/** A reset's number in a '!' or '!!' frame: a positive count, or 0 (none) where `zero` (else the frame is malformed). */
function resetNumber(value: unknown, zero = false): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < (zero ? 0 : 1)) throw new TypeError('a reset number is a positive integer');
  return value;
}

/** What the reset protocol needs of the cluster around it. */
export interface ResetsHost {
  /** Queues a frame for the peer's next batch. */
  push(peer: Peer, frame: string): void;
  /** Answers every tie with the peer with noconnection, the peer staying up (a reset, not its death). */
  reset(peer: Peer): void;
}

export class Resets {
  readonly #host: ResetsHost;
  readonly #heartbeatMs: number;
  readonly #suspectAfterMs: number;
  /** The number of this node's last reset ('!'): one count for all peers, so a number is never used twice. */
  #resets = 0;
  /** By peer name: the incarnation and the highest number of its resets ('!') this node has answered (a '!' sent again is answered once). */
  readonly #answered = new Map<string, { incarnation: number; n: number }>();

  constructor(host: ResetsHost, timings: Pick<Timings, 'heartbeatMs' | 'suspectAfterMs'>) {
    this.#host = host;
    this.#heartbeatMs = timings.heartbeatMs;
    this.#suspectAfterMs = timings.suspectAfterMs;
  }

  /**
   * Tells `peer` that it was down to this node, or that the link between them was lost and back
   * (its ties here have just been answered with noconnection): `["!", n, ack]`, `n` a new number of
   * this node's (one count for all peers), `ack` the last of the peer's resets answered here. Until
   * its `["!!", n]` comes, the link, unlink, monitor and call frames the peer sends are ignored (asked
   * before it knew, they are answered on its side); a '!!' for an older number is stale. The '!' is
   * followed by a new reset after every `suspectAfterMs` without its answer (it may have been lost:
   * a peer not yet subscribed); the peer answers each number once.
   */
  ask(peer: Peer): void {
    peer.awaitingReset = ++this.#resets;
    peer.resetTicks = 0;
    this.#host.push(peer, this.#resetFrame(peer));
  }

  /** A heartbeat for `peer`: once it has waited `suspectAfterMs` for its '!!', this node resets again, with a new number. */
  tick(peer: Peer): void {
    // each reset again waits twice as long as the one before (up to 64 times suspectAfterMs): a
    // peer whose '!!' is only slow is not reset at every suspectAfterMs for as long as it stays slow
    if (peer.awaitingReset !== 0 && ++peer.resetTicks * this.#heartbeatMs >= this.#suspectAfterMs * 2 ** Math.min(peer.resetRetries, MAX_BACKOFF)) {
      peer.resetRetries++;
      // its '!!' has not come: the '!' may have been lost (the peer was not subscribed yet), and with
      // it the frames of the ties made here since. The same '!' sent again could not say so: taken by
      // the peer for one that crossed its own, neither side would answer those ties. So the ties are
      // answered here again, and the new reset's '!' has the peer answer its own (the '!!' of the
      // older one, should it still come, is stale)
      this.#host.reset(peer);
      this.ask(peer);
    }
  }

  /** A '!' frame from `peer` (throws a TypeError when it is malformed). */
  asked(peer: Peer, f: readonly unknown[]): void {
    this.#resetAsked(peer, f.length > 1 ? resetNumber(f[1]) : undefined, f.length > 2 ? resetNumber(f[2], true) : 0);
  }

  /** A '!!' frame from `peer` (throws a TypeError when it is malformed). */
  answered(peer: Peer, f: readonly unknown[]): void {
    this.#resetAnswered(peer, f.length > 1 ? resetNumber(f[1]) : undefined, f.length > 2 ? resetNumber(f[2], true) : 0);
  }

  /** Forgets the resets answered for the peer named `name` (it is gone for good). */
  forget(name: string): void {
    this.#answered.delete(name);
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
      if (peer.awaitingReset !== 0) {
        peer.awaitingReset = 0;
        peer.resetRetries = 0;
      }
      else this.#host.reset(peer);
      this.#host.push(peer, '["!!"]');
      return;
    }
    if (n <= this.#answeredOf(peer)) {
      this.#host.push(peer, `["!!",${n}]`);
      return;
    }
    this.#answer(peer, n);
    const own = peer.awaitingReset;
    if (own !== 0 && ack < own) {
      peer.awaitingReset = 0;
      peer.resetTicks = 0;
      peer.resetRetries = 0;
      this.#host.push(peer, `["!!",${n},${own}]`);
      return;
    }
    this.#host.reset(peer);
    this.#host.push(peer, `["!!",${n}]`);
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
    peer.resetRetries = 0;
    if (crossed === 0 || crossed <= this.#answeredOf(peer)) return;
    this.#answer(peer, crossed);
    this.#host.reset(peer);
    this.ask(peer);
  }
}
