/**
 * @internal What a node knows of one peer: its incarnation and status, the frames waiting for this
 * turn's batch, and every entry that ties a local process to one of the peer's (links, monitors
 * both ways, calls waiting for a reply), so that the peer's death answers each exactly once.
 */
import type { Pid, RefImpl } from '../../runtime/Pid.js';
import type { Proc, TimerEntry } from '../../runtime/kernel.js';

export type PeerStatus = 'up' | 'suspect' | 'down';

/** A link between a local process and one of the peer's. */
export interface LinkEntry {
  readonly peer: Peer;
  readonly local: Proc;
  readonly remote: Pid;
  /**
   * 0 while the link stands; the id of the local process's unlink while its acknowledgement is on
   * its way (the link is then gone for the local process: no exit signal either way, a crossing
   * `l` frame is ignored, a crossing `u` leaves the entry to this acknowledgement), as Erlang's link
   * protocol since OTP 23.
   */
  unlinking: number;
}

/** A local process's monitor of one of the peer's processes. */
export interface MonitorOut {
  readonly peer: Peer;
  readonly owner: Proc;
  readonly ref: RefImpl;
  readonly target: Pid;
}

/** One of the peer's processes monitoring a local one. */
export interface MonitorIn {
  readonly peer: Peer;
  readonly target: Proc;
  readonly ownerId: number;
  readonly refId: number;
}

/** A call to one of the peer's processes, waiting for its reply. */
export interface CallOut {
  readonly id: number;
  readonly target: Pid;
  /** A whereis (its answer is a pid or undefined), not a call. */
  readonly whereis: boolean;
  readonly settle: (ok: boolean, value: unknown) => void;
  timer: TimerEntry | undefined;
  /** Removes the caller's death hook and the abort listener. */
  release: (() => void) | undefined;
}

export class Peer {
  readonly name: string;
  incarnation: number;
  status: PeerStatus = 'up';
  /** When the last batch or heartbeat was heard from it, on the node's timers' time (`timerNow`: monotonic on the real clock). */
  lastHeard: number;
  /** When it was first suspected, on the timers' time (0: not suspected). */
  suspectSince = 0;
  /** A probe is in flight. */
  probing = false;
  /** The reason of a probe asked for while one was in flight (the transport saw its port close): probed again once that one answers. */
  probeAgain: 'port_closed' | undefined = undefined;
  /**
   * The number of the reset this node told the peer with '!' (it had been down here, or the link was
   * lost and back) and whose '!!' it waits for (0: none): until then, ties the peer asks for were
   * asked before it knew (its reset answers them on its side), so none is made. A '!!' echoing an
   * older number answers an older reset, and is ignored.
   */
  awaitingReset = 0;
  /** Heartbeats since this node last sent its '!' (it resets again once they span suspectAfterMs: the '!' may have been lost). */
  resetTicks = 0;
  /** Resets this node made again for want of the peer's '!!' since it last came (each waits twice as long). */
  resetRetries = 0;
  /** Encoded frames for the next batch, and their total length. */
  outbox: string[] = [];
  outboxLength = 0;
  readonly links = new Map<string, LinkEntry>();
  readonly monitorsOut = new Map<number, MonitorOut>();
  readonly monitorsIn = new Map<number, MonitorIn>();
  readonly calls = new Map<number, CallOut>();

  constructor(name: string, incarnation: number, now: number) {
    this.name = name;
    this.incarnation = incarnation;
    this.lastHeard = now;
  }

  /** How many entries tie local processes to this peer (for leak checks). */
  get entries(): number {
    return this.links.size + this.monitorsOut.size + this.monitorsIn.size + this.calls.size;
  }
}
