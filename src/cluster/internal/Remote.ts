/**
 * @internal The kernel's router for pids of other nodes, and the frames it exchanges with peers.
 *
 * A frame is a JSON array whose first element names it (see docs/cluster.md, "Protocol"). Pids of
 * the two ends travel as bare ids: the sender's are read against the batch's sender (a frame cannot
 * name another node's process as its sender), the receiver's against the receiver itself.
 *
 * Every tie between a local process and a peer's is an entry kept twice: in the peer's maps (so
 * that the peer's death answers each once, with `noconnection`) and in the local process's book (so
 * that the local death tells the peer: exit signals to links, `Down`s to monitors, demonitors).
 *
 * This file holds the kernel's calls, the dispatch of frames from a peer and a peer's down; the
 * books of ties are in ./Ties.ts, the calls both ways and their replies in ./Calls.ts, the reading of
 * a frame's ids and the writing of an exit reason in ./wire.ts, what the router needs of the cluster
 * in ./host.ts.
 */
import { types } from 'node:util';
import { NoConnectionError } from '../../errors.js';
import { CastMessage } from '../../otp/GenServer.js';
import { Delivery, type Kernel, type Proc, remoteMonitorEnded, type RemoteRouter } from '../../runtime/kernel.js';
import { DownMessage, type ExitReason, isExitReason } from '../../runtime/messages.js';
import { type Pid, PidImpl, type RefImpl, targetText } from '../../runtime/Pid.js';
import { encodeValue } from '../codec.js';
import { Calls } from './Calls.js';
import type { RemoteHost } from './host.js';
import type { MonitorIn, MonitorOut, Peer } from './Peer.js';
import { Ties } from './Ties.js';
import { incoming, traceFields } from './trace.js';
import { encodeReason, frameId, localPid, localProc, remotePid } from './wire.js';

/** The head of a frame that carries a message (a send to a pid or a name, a cast): its kind, target and sender id. */
const LOST_MESSAGE = /^\["([mkn])",(\d+|"(?:[^"\\]|\\.)*"),(\d+),/;

/** A `GenServer.cast` (it travels as its request, in a cast frame). */
function isCast(message: unknown): message is CastMessage {
  return typeof message === 'object' && message !== null && !types.isProxy(message) && message instanceof CastMessage;
}

export class Remote implements RemoteRouter {
  readonly #host: RemoteHost;
  readonly #kernel: Kernel;
  readonly #ties: Ties;
  readonly #calls: Calls;
  #nextUnlink = 0;

  constructor(host: RemoteHost) {
    this.#host = host;
    this.#kernel = host.kernel;
    this.#ties = new Ties(host);
    this.#calls = new Calls(host);
  }

  /** Local processes with ties to other nodes (for leak checks). */
  get books(): number {
    return this.#ties.size;
  }

  // ---- the kernel's calls (a local process or the node acts on a remote pid) ------------------

  send(from: Proc | undefined, to: Pid, message: unknown): Delivery {
    // a GenServer.cast travels as its request, in a cast frame (with its trace context, if traced)
    if (isCast(message)) return this.#castEncoded(from, to, message, encodeValue(message.request, this.#host.maxValueLength()));
    return this.#sendEncoded(from, to, encodeValue(message, this.#host.maxValueLength()), message); // a typed error at send time
  }

  sendLater(from: Proc, to: Pid, message: unknown): () => void {
    if (isCast(message)) {
      const request = encodeValue(message.request, this.#host.maxValueLength());
      return () => void this.#castEncoded(from, to, message, request);
    }
    const encoded = encodeValue(message, this.#host.maxValueLength());
    return () => void this.#sendEncoded(from, to, encoded, message);
  }

  /** `message`: what was sent (its drop event carries it, as a local drop's does). */
  #sendEncoded(from: Proc | undefined, to: Pid, encoded: string, message: unknown): Delivery {
    const peer = this.#host.peerOf(to);
    if (peer === undefined) {
      this.#host.dropped('noconnection', { to, from: from?.self ?? 'node', message });
      return Delivery.NoProc;
    }
    if (to.creation !== peer.incarnation) {
      this.#host.dropped('noproc', { to, from: from?.self ?? 'node', message });
      return Delivery.NoProc;
    }
    this.#host.push(peer, `["m",${to.id},${from === undefined ? 0 : from.self.id},${encoded}]`);
    return Delivery.Enqueued;
  }

  #castEncoded(from: Proc | undefined, to: Pid, cast: CastMessage, encoded: string): Delivery {
    const peer = this.#host.peerOf(to);
    if (peer === undefined || to.creation !== peer.incarnation) {
      this.#host.dropped(peer === undefined ? 'noconnection' : 'noproc', { to, from: from?.self ?? 'node', message: cast });
      return Delivery.NoProc;
    }
    const flow = this.#kernel.telemetry.flow;
    this.#host.push(peer, `["k",${to.id},${from === undefined ? 0 : from.self.id},${encoded}${flow === undefined ? '' : traceFields(flow, flow.tagOf(cast))}]`);
    return Delivery.Enqueued;
  }

  link(p: Proc, to: Pid): void {
    const peer = this.#host.peerOf(to);
    if (peer === undefined || to.creation !== peer.incarnation) {
      this.#kernel.remoteSignal(p, to, peer === undefined ? 'noconnection' : 'noproc');
      return;
    }
    const key = `${p.self.id}:${to.id}`;
    const entry = peer.links.get(key);
    if (entry === undefined) this.#ties.addLink(peer, p, to, key);
    else if (entry.unlinking === 0) return;
    else entry.unlinking = 0; // linked again before the unlink was acknowledged: the late acknowledgement will not match
    this.#host.push(peer, `["l",${p.self.id},${to.id}]`);
  }

  /**
   * The link is gone for `p` at once; the entry stays until the peer acknowledges the unlink, so that
   * a link frame the peer sent before it saw the unlink does not link the pair again on this side only.
   */
  unlink(p: Proc, to: Pid): void {
    const peer = this.#host.peerOf(to);
    if (peer === undefined || to.creation !== peer.incarnation) return; // an earlier incarnation's pid: never linked
    const entry = peer.links.get(`${p.self.id}:${to.id}`);
    if (entry === undefined || entry.unlinking !== 0) return;
    entry.unlinking = ++this.#nextUnlink;
    this.#host.push(peer, `["u",${p.self.id},${to.id},${entry.unlinking}]`);
  }

  monitor(p: Proc, ref: RefImpl, to: Pid): void {
    const peer = this.#host.peerOf(to);
    if (peer === undefined || to.creation !== peer.incarnation) {
      this.#kernel.enqueueTo(p, new DownMessage(ref, to, peer === undefined ? 'noconnection' : 'noproc', undefined), undefined);
      return;
    }
    const entry: MonitorOut = { peer, owner: p, ref, target: to };
    peer.monitorsOut.set(ref.id, entry);
    this.#ties.book(p).monitorsOut.add(entry);
    this.#host.push(peer, `["o",${p.self.id},${ref.id},${to.id}]`);
  }

  monitoring(p: Proc, ref: RefImpl): boolean {
    const book = this.#ties.bookOf(p);
    if (book === undefined) return false;
    for (const entry of book.monitorsOut) if (entry.ref === ref) return true;
    return false;
  }

  demonitor(p: Proc, ref: RefImpl): boolean {
    const book = this.#ties.bookOf(p);
    if (book === undefined) return false;
    for (const entry of book.monitorsOut) {
      if (entry.ref !== ref) continue;
      this.#ties.removeMonitorOut(entry);
      this.#host.push(entry.peer, `["d",${p.self.id},${ref.id}]`);
      return true;
    }
    return false;
  }

  exit(from: Proc | 'node', to: Pid, reason: ExitReason | 'kill'): void {
    const peer = this.#host.peerOf(to);
    if (peer === undefined || to.creation !== peer.incarnation) return; // as to a dead pid: nothing
    this.#host.push(peer, `["x",${from === 'node' ? 0 : from.self.id},${to.id},${encodeValue(reason, this.#host.maxValueLength())},0]`);
  }

  call(caller: Proc | undefined, to: Pid, request: unknown, timeoutMs: number, signal: AbortSignal | undefined, settle: (ok: boolean, value: unknown) => void): void {
    this.#calls.call(caller, to, request, timeoutMs, signal, settle);
  }

  /** Asks a peer which of its processes holds a registered name (`undefined`: nobody); `nameText`: the name as JSON. */
  whereis(peer: Peer, nameText: string, timeoutMs: number, settle: (ok: boolean, value: unknown) => void): void {
    this.#calls.whereis(peer, nameText, timeoutMs, settle);
  }

  // ---- frames from a peer ---------------------------------------------------------------------

  /** Handles one frame from `peer`; throws on a malformed one (the caller counts it). */
  frame(peer: Peer, f: unknown[]): void {
    // asked before the peer knew it had been down here: its reset has answered these on its side (an
    // unlink then names a link of before the reset, gone here, and its entry goes there: nothing to
    // acknowledge, and a link made here since is not the one it meant)
    if (peer.awaitingReset && (f[0] === 'l' || f[0] === 'u' || f[0] === 'o' || f[0] === 'c' || f[0] === 'w')) return;
    // a sender always writes a send's or a cast's value (undefined as its tag): without it, the frame is malformed
    if ((f[0] === 'm' || f[0] === 'k' || f[0] === 'n') && f.length < 4) throw new TypeError(`a '${f[0]}' frame carries a value`);
    switch (f[0]) {
      case 'm': {
        const to = localProc(this.#kernel, f[1]);
        if (to !== undefined) this.#kernel.enqueueTo(to, f[3], undefined);
        else this.#host.dropped('noproc', { to: localPid(this.#kernel, f[1]), from: remotePid(peer, f[2]), message: f[3] });
        return;
      }
      case 'k': {
        const to = localProc(this.#kernel, f[1]);
        if (to === undefined) {
          // as a local cast's drop: the cast's message, its request within
          this.#host.dropped('noproc', { to: localPid(this.#kernel, f[1]), from: remotePid(peer, f[2]), message: new CastMessage(f[3]) });
          return;
        }
        const cast = new CastMessage(f[3]);
        const flow = this.#kernel.telemetry.flow;
        if (flow !== undefined && f[4] !== undefined) flow.tag(cast, incoming(this.#kernel, flow, f[4], f[5], peer.name, 'cast'));
        this.#kernel.enqueueTo(to, cast, undefined);
        return;
      }
      case 'n': {
        if (typeof f[1] !== 'string' || f[1].length === 0) throw new TypeError('a named send needs a name');
        this.#kernel.deliver(undefined, f[1], f[3]); // an unregistered name: dropped with its event
        return;
      }
      case 'l': {
        const from = remotePid(peer, f[1]);
        const to = localProc(this.#kernel, f[2]);
        if (to === undefined) this.#host.push(peer, `["x",${Number(f[2])},${from.id},"noproc",1]`);
        else {
          const key = `${to.self.id}:${from.id}`;
          if (!peer.links.has(key)) this.#ties.addLink(peer, to, from, key);
        }
        return;
      }
      case 'u': {
        // the peer's process unlinked: a standing link goes, and the unlink is acknowledged whatever
        // this side held; every id is read first, so that a malformed frame is dropped whole. An entry
        // being unlinked from here as well stays until its own acknowledgement (as in Erlang): removed
        // now, a link frame the peer sent after its unlink and before it saw ours would make a new
        // entry here, while the peer drops its own at our unlink, one side linked
        const from = remotePid(peer, f[1]);
        const to = frameId(f[2]);
        const unlinkId = f[3] === undefined ? undefined : frameId(f[3]);
        const entry = peer.links.get(`${to}:${from.id}`);
        if (entry !== undefined && entry.unlinking === 0) this.#ties.removeLink(entry);
        if (unlinkId !== undefined) this.#host.push(peer, `["U",${to},${from.id},${unlinkId}]`);
        return;
      }
      case 'U': {
        // an acknowledgement of an unlink of ours: the entry goes, unless the pair was linked again since
        const from = remotePid(peer, f[1]);
        const to = frameId(f[2]);
        const unlinkId = frameId(f[3]);
        const entry = peer.links.get(`${to}:${from.id}`);
        if (entry !== undefined && entry.unlinking !== 0 && entry.unlinking === unlinkId) this.#ties.removeLink(entry);
        return;
      }
      case 'x': {
        const from = remotePid(peer, f[1]);
        const sent = f[3];
        if (sent !== 'kill' && !isExitReason(sent)) throw new TypeError('an exit signal needs an exit reason');
        let reason: ExitReason | 'kill' = sent;
        const to = localProc(this.#kernel, f[2]);
        if (to === undefined) return;
        if (f[4] === 1) {
          // a death is never 'kill' (a killed process dies 'killed'): only exit/2 is untrappable
          if (reason === 'kill') reason = 'killed';
          // a linked process's death: only while the link stands (an unlink may have crossed it)
          const entry = peer.links.get(`${to.self.id}:${from.id}`);
          if (entry === undefined) return;
          this.#ties.removeLink(entry);
          if (entry.unlinking !== 0) return; // unlinked here before the death: the peer's process is gone, and so is the entry
        }
        this.#kernel.remoteSignal(to, from, reason);
        return;
      }
      case 'o': {
        const ownerId = frameId(f[1]);
        const refId = frameId(f[2]);
        const target = localProc(this.#kernel, f[3]);
        if (target === undefined) {
          this.#host.push(peer, `["D",${ownerId},${refId},${Number(f[3])},"noproc"]`);
          return;
        }
        if (peer.monitorsIn.has(refId)) return; // a ref monitors once (a repeated frame would orphan the first entry)
        const entry: MonitorIn = { peer, target, ownerId, refId };
        peer.monitorsIn.set(refId, entry);
        this.#ties.book(target).monitorsIn.add(entry);
        return;
      }
      case 'd': {
        const entry = peer.monitorsIn.get(frameId(f[2]));
        if (entry !== undefined) this.#ties.removeMonitorIn(entry);
        return;
      }
      case 'D': {
        const entry = peer.monitorsOut.get(frameId(f[2]));
        const reason = f[4];
        if (!isExitReason(reason)) throw new TypeError('a Down needs an exit reason');
        if (entry === undefined) return;
        this.#ties.removeMonitorOut(entry);
        remoteMonitorEnded(entry.ref);
        this.#kernel.enqueueTo(entry.owner, new DownMessage(entry.ref, entry.target, reason, undefined), undefined);
        return;
      }
      case 'c':
        this.#calls.served(peer, f);
        return;
      case 'w': {
        const name = f[3];
        if (typeof name !== 'string') throw new TypeError('whereis needs a name');
        const pid = name.length === 0 ? undefined : this.#kernel.registry.whereis(name);
        this.#host.push(peer, `["r",${frameId(f[1])},1,${pid === undefined ? '{"$keel":"u"}' : encodeValue(pid)}]`);
        return;
      }
      case 'r':
        this.#calls.replied(peer, f);
        return;
      default:
        throw new TypeError(`unknown frame '${String(f[0])}'`);
    }
  }

  /**
   * A frame whose value this node could not decode (a malformed tag, or one nested deeper than this
   * thread's stack allows, which a thread with a larger stack could write): what waits on it is
   * answered with `error` rather than left waiting for ever. A call's reply fails the call; a Down
   * and an exit signal arrive with the error as their reason; a call's request fails the caller.
   * Its ids are read as {@link frame} reads them (a bad one throws). Anything else stays dropped.
   */
  unreadable(peer: Peer, f: unknown[], error: Error): void {
    switch (f[0]) {
      case 'r':
        this.frame(peer, ['r', f[1], 0, error]);
        return;
      case 'x':
        this.frame(peer, ['x', f[1], f[2], error, f[4]]);
        return;
      case 'D':
        this.frame(peer, ['D', f[1], f[2], f[3], error]);
        return;
      case 'c':
        if (!peer.awaitingReset) this.#host.push(peer, `["r",${frameId(f[1])},0,${encodeReason(this.#host, error)}]`);
        return;
      default:
        return;
    }
  }

  // ---- a peer went down -----------------------------------------------------------------------

  /**
   * Answers every entry tied to `peer` once, with `noconnection`. `reset`: the peer stays up (it had
   * taken this node for down), so what is queued for it still goes, after the '!' that came first.
   */
  peerDown(peer: Peer, reset = false): void {
    const links = [...peer.links.values()];
    const monitors = [...peer.monitorsOut.values()];
    for (const entry of peer.monitorsIn.values()) this.#ties.removeMonitorIn(entry);
    for (const entry of links) this.#ties.removeLink(entry);
    for (const entry of monitors) this.#ties.removeMonitorOut(entry);
    for (const entry of monitors) remoteMonitorEnded(entry.ref);
    const calls = [...peer.calls.values()];
    if (!reset) {
      // what was queued for the peer never leaves: each message among it is dropped, and said so
      this.lost(peer, peer.outbox);
      peer.outbox.length = 0;
      peer.outboxLength = 0;
    }
    for (const entry of monitors) this.#kernel.enqueueTo(entry.owner, new DownMessage(entry.ref, entry.target, 'noconnection', undefined), undefined);
    for (const entry of links) if (entry.unlinking === 0) this.#kernel.remoteSignal(entry.local, entry.remote, 'noconnection');
    // a caller killed by a link's signal above has had its call settled by its death (ERR_CALL_EXIT)
    for (const call of calls) if (peer.calls.get(call.id) === call) call.settle(false, new NoConnectionError(targetText(call.target), peer.name, 'no reply from'));
  }

  /**
   * Frames for `peer` that will never reach it (queued when it went down, or in a batch the transport
   * dropped): each message or cast among them is `keel.message.dropped` (`noconnection`), as one sent
   * after the peer went down is. Only their text is left: while someone listens to the event, each
   * frame is decoded for its `message` (a copy, as the peer would have received it); nobody
   * listening, nothing is decoded. A frame is at most a batch, and at most the outbox and the batch
   * being sent are lost at once. Ties need nothing here: the peer's down answers them.
   */
  lost(peer: Peer, frames: readonly string[]): void {
    const listened = this.#kernel.telemetry.isListening('keel.message.dropped');
    for (const frame of frames) {
      const m = LOST_MESSAGE.exec(frame);
      if (m === null) continue;
      const from = m[3] === '0' ? 'node' : localPid(this.#kernel, Number(m[3]));
      const to = m[1] === 'n' ? `${JSON.parse(m[2]!) as string}@${peer.name}` : new PidImpl(peer.name, peer.incarnation, Number(m[2]));
      if (!listened) {
        this.#host.dropped('noconnection', { to, from });
        continue;
      }
      let value: unknown;
      try {
        value = (this.#host.decode(frame) as unknown[])[3];
      } catch {
        // a frame this node encoded decodes; were it ever not to, the drop is still told, without its message
        this.#host.dropped('noconnection', { to, from });
        continue;
      }
      this.#host.dropped('noconnection', { to, from, message: m[1] === 'k' ? new CastMessage(value) : value });
    }
  }
}
