/**
 * @internal How a cluster notices a peer's death without its word: the heartbeat the cluster's
 * process beats, each peer's silence measured at every tick, a peer silent `suspectAfterMs`
 * suspected and probed, one silent `downAfterMs` down, and a tick late because this node's own loop
 * was busy not counted against the peers.
 */
import { isProcess, type Kernel } from '../../runtime/kernel.js';
import type { Context } from '../../runtime/types.js';
import type { ProbeResult, Transport } from '../Transport.js';
import type { Timings } from './options.js';
import type { Peer } from './Peer.js';

/** The cluster process's heartbeat message. */
const TICK = Symbol('keel.cluster.tick');

/** Why the failure detector takes a peer down (a `NodeDownReason`). */
export type DetectedDown = 'heartbeat' | 'no_responders' | 'port_closed';

/** What the failure detector needs of the cluster around it. */
export interface FailureDetectorHost {
  readonly kernel: Kernel;
  readonly transport: Pick<Transport, 'probe'>;
  /** The peers up (or suspected), by name (the cluster's own map: the detector only reads it). */
  readonly peers: ReadonlyMap<string, Peer>;
  /** True once this node has left its cluster. */
  left(): boolean;
  /** Tells every peer this node is alive (the heartbeat frame). */
  beat(): void;
  /** A heartbeat for `peer`, before its silence is judged (the reset protocol's share of it). */
  tick(peer: Peer): void;
  down(peer: Peer, reason: DetectedDown): void;
}

export class FailureDetector {
  readonly #host: FailureDetectorHost;
  readonly #kernel: Kernel;
  readonly #heartbeatMs: number;
  readonly #suspectAfterMs: number;
  readonly #downAfterMs: number;
  readonly #probeTimeoutMs: number;
  /** The context of the cluster's process (`keel.cluster`), whose timer beats the heartbeat. */
  #heartbeat: Context<unknown> | undefined;
  /**
   * When the heartbeat timer was last armed, on the timers' time (`timerNow`: monotonic on the real
   * clock, as the timer itself counts). Every duration of the failure detector (a peer's silence,
   * its suspicion, `detectionMs`) is measured on it: on the wall clock, a step forward past
   * `downAfterMs` took every peer down at the next tick, and a step back kept a dead one up.
   */
  #lastTick = 0;

  constructor(host: FailureDetectorHost, timings: Timings) {
    this.#host = host;
    this.#kernel = host.kernel;
    this.#heartbeatMs = timings.heartbeatMs;
    this.#suspectAfterMs = timings.suspectAfterMs;
    this.#downAfterMs = timings.downAfterMs;
    this.#probeTimeoutMs = timings.probeTimeoutMs;
  }

  /** The cluster's process has started (or restarted) with `ctx`: its timer beats the heartbeat from now on. */
  start(ctx: Context<unknown>): void {
    this.#heartbeat = ctx;
    this.#arm();
  }

  /** A message of the cluster's process: its own timer's tick beats the heartbeat. */
  handleInfo(message: unknown, ctx: Context<unknown>): void {
    if (message === TICK && this.#heartbeat === ctx) this.#tick();
  }

  /** The node leaves: no process beats the heartbeat any more. */
  stop(): void {
    this.#heartbeat = undefined;
  }

  /** The transport says this node is disconnected. */
  cutOff(): void {
    // cut off: every peer is unreachable from now on (suspected at once); those still silent
    // after downAfterMs go down as for any silence, and a global name's lease, not renewed, fences its owner
    const now = this.#kernel.timerNow();
    for (const peer of this.#host.peers.values()) {
      if (peer.status !== 'up') continue;
      peer.status = 'suspect';
      peer.suspectSince = now;
      this.#kernel.telemetry.execute('keel.cluster.node_suspect', { silentMs: now - peer.lastHeard }, { node: peer.name, incarnation: peer.incarnation, reason: 'disconnected' });
    }
  }

  #arm(): void {
    this.#lastTick = this.#kernel.timerNow();
    const ctx = this.#heartbeat;
    // the process's own timer (it dies with it), unref'd: a cluster alone keeps no program alive
    if (ctx !== undefined && isProcess(ctx)) this.#kernel.sendAfter(ctx, ctx.self, TICK, this.#heartbeatMs, true);
  }

  #tick(): void {
    if (this.#host.left()) return;
    this.#host.beat();
    const now = this.#kernel.timerNow();
    // a tick late by more than a heartbeat: this node's loop was busy, and what peers sent meanwhile
    // waits unread in its queue; that stall is not their silence, so it is not counted against them
    const stall = now - this.#lastTick - this.#heartbeatMs;
    this.#lastTick = now;
    if (stall > this.#heartbeatMs) for (const peer of this.#host.peers.values()) peer.lastHeard = Math.min(now, peer.lastHeard + stall);
    for (const peer of [...this.#host.peers.values()]) {
      this.#host.tick(peer);
      const silence = now - peer.lastHeard;
      if (silence >= this.#downAfterMs) {
        this.#host.down(peer, 'heartbeat');
      } else if (silence >= this.#suspectAfterMs) {
        if (peer.status === 'up') {
          peer.status = 'suspect';
          peer.suspectSince = now;
          this.#kernel.telemetry.execute('keel.cluster.node_suspect', { silentMs: silence }, { node: peer.name, incarnation: peer.incarnation, reason: 'heartbeat' });
        }
        this.probe(peer, 'no_responders');
      }
    }
    if (!this.#host.left()) this.#arm(); // a telemetry handler run by this tick may have left
  }

  /**
   * Asks the transport whether `peer` is attached; `gone` downs it now. A port that closes while a
   * probe is out is probed again once that one answers (its answer may predate the close), and a
   * peer found gone then goes down for the closed port.
   */
  probe(peer: Peer, reason: DetectedDown): void {
    if (peer.probing) {
      if (reason === 'port_closed') peer.probeAgain = reason;
      return;
    }
    peer.probing = true;
    const settled = (result: ProbeResult | undefined): void => {
      peer.probing = false;
      const again = peer.probeAgain;
      peer.probeAgain = undefined;
      if (this.#host.peers.get(peer.name) !== peer) return;
      if (result === 'gone') this.#host.down(peer, again ?? reason);
      else if (again !== undefined) this.probe(peer, again);
      else if (result === 'alive' && peer.status === 'suspect') {
        peer.status = 'up';
        peer.suspectSince = 0;
        peer.lastHeard = this.#kernel.timerNow();
      }
    };
    this.#host.transport.probe(peer.name, this.#probeTimeoutMs).then(settled, () => settled(undefined));
  }
}
