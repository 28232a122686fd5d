/**
 * The door a cluster plugs into: what the kernel hands over when a pid names a process of another
 * node. Without a router attached, a pid of another node is a dead pid (`noproc`), as it always
 * was; with one, sends, links, monitors, exit signals and calls to it are the router's to carry.
 * The router is told in the caller's frame, synchronously; what crosses the wire is its business.
 */
import type { Delivery } from './internal/Mailbox.js';
import type { Proc } from './internal/Proc.js';
import type { ExitReason } from './messages.js';
import type { Pid, RefImpl } from './Pid.js';

export interface RemoteRouter {
  /** A message to a process of another node (at most once). A typed error for a message it cannot carry. */
  send(from: Proc | undefined, to: Pid, message: unknown): Delivery;
  /**
   * A message to a process of another node, to be sent later (`ctx.sendAfter`): encoded now, as a
   * send is (a snapshot; a typed error for a message it cannot carry), the returned function sends it.
   */
  sendLater(from: Proc, to: Pid, message: unknown): () => void;
  /** Links `p` to a process of another node (a dead or unreachable one: `p` gets `noproc`/`noconnection`). */
  link(p: Proc, to: Pid): void;
  unlink(p: Proc, to: Pid): void;
  /** Monitors a process of another node under `ref` (made by the kernel); its `Down` comes to `p`'s mailbox. */
  monitor(p: Proc, ref: RefImpl, to: Pid): void;
  /** Removes `p`'s monitor `ref` of a process of another node; false when it is not one. */
  demonitor(p: Proc, ref: RefImpl): boolean;
  /**
   * True while `p`'s monitor `ref` of a process of another node is in place (its `Down` is still to
   * come); false for any other ref, and for one whose `Down` was queued at once (an unknown node).
   */
  monitoring?(p: Proc, ref: RefImpl): boolean;
  /** An exit signal from a process or the node to a process of another node. */
  exit(from: Proc | 'node', to: Pid, reason: ExitReason | 'kill'): void;
  /**
   * A call to a process of another node, settled once through `settle` (`ok` false: `value` is the
   * error) with the errors a local call would give, and `noconnection` when the node goes down.
   */
  call(caller: Proc | undefined, to: Pid, request: unknown, timeoutMs: number, signal: AbortSignal | undefined, settle: (ok: boolean, value: unknown) => void): void;
  /**
   * A supervised send to a process of another node (`sendSupervised`), when the cluster carries
   * them (src/cluster/supervised): `settings` are the send's validated options, `id` its message id.
   * Resolves with the send's outcome, after the send's `onError` policy (the dead letter is this
   * node's); rejects as `sendSupervised` does (`onError: 'raise'`).
   */
  supervised?: ((from: Proc | undefined, to: Pid, message: unknown, settings: object, id: string) => Promise<RemoteSendOutcome>) | undefined;
}

/** What a supervised send across nodes resolves with (the delivery layer's `SendOutcome`). */
export type RemoteSendOutcome =
  | { ok: true; id: string; attempts: number }
  | { ok: false; id: string; reason: 'noproc' | 'process_down' | 'timeout' | 'mailbox_full' | 'aborted' | 'noconnection'; attempts: number; firstError: unknown; lastError: unknown; deadLetterId?: string; deadLetterUnavailable?: true };
