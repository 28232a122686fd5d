/**
 * @internal What the router for pids of other nodes (./Remote.ts) and its parts (./Ties.ts,
 * ./Calls.ts) need of the cluster around them.
 */
import type { Kernel } from '../../runtime/kernel.js';
import type { Pid } from '../../runtime/Pid.js';
import type { Peer } from './Peer.js';

/** What the router needs of the cluster around it. */
export interface RemoteHost {
  readonly kernel: Kernel;
  /** The peer a pid's node is, when it is up (undefined: not connected). */
  peerOf(pid: Pid): Peer | undefined;
  /** Queues a frame for the peer's next batch. */
  push(peer: Peer, frame: string): void;
  /** The largest encoded value a frame may carry. */
  maxValueLength(): number;
  dropped(reason: string, metadata: Record<string, unknown>): void;
  /** Decodes a frame this node encoded (a lost one's message, for its drop event). */
  decode(text: string): unknown;
}
