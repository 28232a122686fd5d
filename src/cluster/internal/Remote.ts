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
 */
import { types } from 'node:util';
import { AbortedError, CallExitError, CallTimeoutError, MalformedFrameError, NoConnectionError } from '../../errors.js';
import { CastMessage } from '../../otp/GenServer.js';
import { callListening, type CallListener, noProcError } from '../../otp/internal/calls.js';
import { Delivery, type Kernel, type Proc, remoteMonitorEnded, type RemoteRouter } from '../../runtime/kernel.js';
import { DownMessage, type ExitReason, isExitReason } from '../../runtime/messages.js';
import { isPid, type Pid, PidImpl, type RefImpl, targetText } from '../../runtime/Pid.js';
import { encodeValue } from '../codec.js';
import type { CallOut, LinkEntry, MonitorIn, MonitorOut, Peer } from './Peer.js';
import { incoming, traceFields } from './trace.js';

/** The head of a frame that carries a message (a send to a pid or a name, a cast): its kind, target and sender id. */
const LOST_MESSAGE = /^\["([mkn])",(\d+|"(?:[^"\\]|\\.)*"),(\d+),/;

/** A local process's ties to other nodes' processes. */
class Book {
  readonly links = new Set<LinkEntry>();
  readonly monitorsOut = new Set<MonitorOut>();
  readonly monitorsIn = new Set<MonitorIn>();
  unhook: (() => void) | undefined = undefined;
  get empty(): boolean {
    return this.links.size === 0 && this.monitorsOut.size === 0 && this.monitorsIn.size === 0;
  }
}

/** A `GenServer.cast` (it travels as its request, in a cast frame). */
function isCast(message: unknown): message is CastMessage {
  return typeof message === 'object' && message !== null && !types.isProxy(message) && message instanceof CastMessage;
}

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

export class Remote implements RemoteRouter {
  readonly #host: RemoteHost;
  readonly #kernel: Kernel;
  readonly #books = new Map<Proc, Book>();
  #nextCall = 0;
  #nextUnlink = 0;

  constructor(host: RemoteHost) {
    this.#host = host;
    this.#kernel = host.kernel;
  }

  /** Local processes with ties to other nodes (for leak checks). */
  get books(): number {
    return this.#books.size;
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
    if (entry === undefined) this.#addLink(peer, p, to, key);
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
    this.#book(p).monitorsOut.add(entry);
    this.#host.push(peer, `["o",${p.self.id},${ref.id},${to.id}]`);
  }

  monitoring(p: Proc, ref: RefImpl): boolean {
    const book = this.#books.get(p);
    if (book === undefined) return false;
    for (const entry of book.monitorsOut) if (entry.ref === ref) return true;
    return false;
  }

  demonitor(p: Proc, ref: RefImpl): boolean {
    const book = this.#books.get(p);
    if (book === undefined) return false;
    for (const entry of book.monitorsOut) {
      if (entry.ref !== ref) continue;
      this.#removeMonitorOut(entry);
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
    const peer = this.#host.peerOf(to);
    if (peer === undefined) {
      settle(false, new NoConnectionError(targetText(to), to.node, 'cannot call'));
      return;
    }
    if (to.creation !== peer.incarnation) {
      // a pid of an earlier incarnation names no live process: its id may be another's now
      settle(false, noProcError(to, 'call'));
      return;
    }
    let encoded: string;
    try {
      encoded = encodeValue(request, this.#host.maxValueLength());
    } catch (e) {
      settle(false, e);
      return;
    }
    let body = `${to.id},${encoded},${Number.isFinite(timeoutMs) ? timeoutMs : -1}`;
    const flow = this.#kernel.telemetry.flow;
    if (flow !== undefined) {
      // message-flow tracing: the caller's span, until the reply or the error; its context travels with the call
      const span = flow.start('keel.gen_server.call', flow.contextOf(caller), { server: targetText(to) });
      body += traceFields(flow, span.context);
      const told = settle;
      settle = (ok, value) => {
        span.end(ok ? undefined : value);
        told(ok, value);
      };
    }
    this.#startCall(peer, to, caller, timeoutMs, signal, settle, body, 'c');
  }

  /** Asks a peer which of its processes holds a registered name (`undefined`: nobody); `nameText`: the name as JSON. */
  whereis(peer: Peer, nameText: string, timeoutMs: number, settle: (ok: boolean, value: unknown) => void): void {
    this.#startCall(peer, new PidImpl(peer.name, peer.incarnation, 0), undefined, timeoutMs, undefined, settle, nameText, 'w');
  }

  #startCall(peer: Peer, to: Pid, caller: Proc | undefined, timeoutMs: number, signal: AbortSignal | undefined, settle: (ok: boolean, value: unknown) => void, body: string, kind: 'c' | 'w'): void {
    const id = ++this.#nextCall;
    const call: CallOut = { id, target: to, whereis: kind === 'w', settle, timer: undefined, release: undefined };
    peer.calls.set(id, call);
    const finish = (): void => {
      peer.calls.delete(id);
      if (call.timer !== undefined) this.#kernel.cancelEntry(call.timer);
      call.release?.();
    };
    if (Number.isFinite(timeoutMs)) {
      call.timer = this.#kernel.schedule(timeoutMs, () => {
        call.timer = undefined;
        finish();
        settle(false, new CallTimeoutError(targetText(to), timeoutMs, undefined));
      });
    }
    const releases: (() => void)[] = [];
    if (caller !== undefined) {
      // the caller's death releases the call (a late reply is dropped) and fails it, as a local call's does
      const remove = this.#kernel.onProcExit(caller, () => {
        finish();
        settle(false, new CallExitError(targetText(to), 'noproc', 'the caller exited'));
      });
      if (remove !== undefined) releases.push(remove);
    }
    if (signal !== undefined) {
      const onAbort = (): void => {
        finish();
        settle(false, new AbortedError(`the call to ${targetText(to)}`, signal.reason));
      };
      signal.addEventListener('abort', onAbort, { once: true });
      releases.push(() => signal.removeEventListener('abort', onAbort));
    }
    if (releases.length > 0) call.release = () => releases.forEach((r) => r());
    (call as { settle: (ok: boolean, value: unknown) => void }).settle = (ok, value) => {
      finish();
      settle(ok, value);
    };
    this.#host.push(peer, `["${kind}",${id},${caller === undefined ? 0 : caller.self.id},${body}]`);
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
        const to = this.#local(f[1]);
        if (to !== undefined) this.#kernel.enqueueTo(to, f[3], undefined);
        else this.#host.dropped('noproc', { to: this.#localPid(f[1]), from: this.#remotePid(peer, f[2]), message: f[3] });
        return;
      }
      case 'k': {
        const to = this.#local(f[1]);
        if (to === undefined) {
          // as a local cast's drop: the cast's message, its request within
          this.#host.dropped('noproc', { to: this.#localPid(f[1]), from: this.#remotePid(peer, f[2]), message: new CastMessage(f[3]) });
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
        const from = this.#remotePid(peer, f[1]);
        const to = this.#local(f[2]);
        if (to === undefined) this.#host.push(peer, `["x",${Number(f[2])},${from.id},"noproc",1]`);
        else {
          const key = `${to.self.id}:${from.id}`;
          if (!peer.links.has(key)) this.#addLink(peer, to, from, key);
        }
        return;
      }
      case 'u': {
        // the peer's process unlinked: a standing link goes, and the unlink is acknowledged whatever
        // this side held; every id is read first, so that a malformed frame is dropped whole. An entry
        // being unlinked from here as well stays until its own acknowledgement (as in Erlang): removed
        // now, a link frame the peer sent after its unlink and before it saw ours would make a new
        // entry here, while the peer drops its own at our unlink, one side linked
        const from = this.#remotePid(peer, f[1]);
        const to = this.#id(f[2]);
        const unlinkId = f[3] === undefined ? undefined : this.#id(f[3]);
        const entry = peer.links.get(`${to}:${from.id}`);
        if (entry !== undefined && entry.unlinking === 0) this.#removeLink(entry);
        if (unlinkId !== undefined) this.#host.push(peer, `["U",${to},${from.id},${unlinkId}]`);
        return;
      }
      case 'U': {
        // an acknowledgement of an unlink of ours: the entry goes, unless the pair was linked again since
        const from = this.#remotePid(peer, f[1]);
        const to = this.#id(f[2]);
        const unlinkId = this.#id(f[3]);
        const entry = peer.links.get(`${to}:${from.id}`);
        if (entry !== undefined && entry.unlinking !== 0 && entry.unlinking === unlinkId) this.#removeLink(entry);
        return;
      }
      case 'x': {
        const from = this.#remotePid(peer, f[1]);
        const sent = f[3];
        if (sent !== 'kill' && !isExitReason(sent)) throw new TypeError('an exit signal needs an exit reason');
        let reason: ExitReason | 'kill' = sent;
        const to = this.#local(f[2]);
        if (to === undefined) return;
        if (f[4] === 1) {
          // a death is never 'kill' (a killed process dies 'killed'): only exit/2 is untrappable
          if (reason === 'kill') reason = 'killed';
          // a linked process's death: only while the link stands (an unlink may have crossed it)
          const entry = peer.links.get(`${to.self.id}:${from.id}`);
          if (entry === undefined) return;
          this.#removeLink(entry);
          if (entry.unlinking !== 0) return; // unlinked here before the death: the peer's process is gone, and so is the entry
        }
        this.#kernel.remoteSignal(to, from, reason);
        return;
      }
      case 'o': {
        const ownerId = this.#id(f[1]);
        const refId = this.#id(f[2]);
        const target = this.#local(f[3]);
        if (target === undefined) {
          this.#host.push(peer, `["D",${ownerId},${refId},${Number(f[3])},"noproc"]`);
          return;
        }
        if (peer.monitorsIn.has(refId)) return; // a ref monitors once (a repeated frame would orphan the first entry)
        const entry: MonitorIn = { peer, target, ownerId, refId };
        peer.monitorsIn.set(refId, entry);
        this.#book(target).monitorsIn.add(entry);
        return;
      }
      case 'd': {
        const entry = peer.monitorsIn.get(this.#id(f[2]));
        if (entry !== undefined) this.#removeMonitorIn(entry);
        return;
      }
      case 'D': {
        const entry = peer.monitorsOut.get(this.#id(f[2]));
        const reason = f[4];
        if (!isExitReason(reason)) throw new TypeError('a Down needs an exit reason');
        if (entry === undefined) return;
        this.#removeMonitorOut(entry);
        remoteMonitorEnded(entry.ref);
        this.#kernel.enqueueTo(entry.owner, new DownMessage(entry.ref, entry.target, reason, undefined), undefined);
        return;
      }
      case 'c':
        this.#served(peer, f);
        return;
      case 'w': {
        const name = f[3];
        if (typeof name !== 'string') throw new TypeError('whereis needs a name');
        const pid = name.length === 0 ? undefined : this.#kernel.registry.whereis(name);
        this.#host.push(peer, `["r",${this.#id(f[1])},1,${pid === undefined ? '{"$keel":"u"}' : encodeValue(pid)}]`);
        return;
      }
      case 'r': {
        // a reply is checked before anyone is handed it: a success or an error, an error's value an
        // Error (every failure a node sends is one), a whereis's a pid or undefined
        // a malformed one still answers the call it names (with the error, and is counted): left
        // waiting, a call with no timeout would wait for ever
        const call = peer.calls.get(this.#id(f[1]));
        const ok = f[2];
        let wrong: string | undefined;
        if (ok !== 0 && ok !== 1) wrong = 'a reply that is a success (1) or a failure (0)';
        else if (ok === 0 && !(f[3] instanceof Error)) wrong = 'a failed reply that carries an error';
        else if (ok === 1 && call?.whereis === true && f[3] !== undefined && !isPid(f[3])) wrong = 'a whereis answered with a pid or undefined';
        if (wrong !== undefined) {
          call?.settle(false, new MalformedFrameError(wrong, 'a reply frame that is not'));
          throw new TypeError(wrong);
        }
        call?.settle(ok === 1, f[3]);
        return;
      }
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
        if (!peer.awaitingReset) this.#host.push(peer, `["r",${this.#id(f[1])},0,${this.#encodeReason(error)}]`);
        return;
      default:
        return;
    }
  }

  /** A call from a peer's process: made here from the node, its outcome sent back as a reply frame. */
  #served(peer: Peer, f: unknown[]): void {
    const id = this.#id(f[1]);
    const timeout = f[5] === -1 ? Infinity : f[5];
    if (typeof timeout !== 'number' || !(timeout >= 0)) throw new TypeError('a call needs a timeout'); // 0 is one (validateTimeout's range)
    const target = this.#local(f[3])?.self ?? this.#localPid(f[3]);
    const host = this.#host;
    const reply = (ok: boolean, value: unknown): void => {
      if (host.peerOf({ node: peer.name, creation: peer.incarnation, id: 0 }) !== peer) return; // it went down meanwhile
      let encoded: string;
      try {
        encoded = encodeValue(value, host.maxValueLength());
      } catch (e) {
        ok = false;
        encoded = encodeValue(e);
      }
      host.push(peer, `["r",${id},${ok ? 1 : 0},${encoded}]`);
    };
    const listener: CallListener = { callReplied: (v) => reply(true, v), callFailed: (e) => reply(false, e) };
    const flow = this.#kernel.telemetry.flow;
    const parent = flow === undefined || f[6] === undefined ? undefined : incoming(this.#kernel, flow, f[6], f[7], peer.name, 'call');
    // traced: the call made here holds the remote caller's span, the parent of the server's handler span
    if (parent !== undefined) flow!.serving(parent, () => callListening(this.#kernel, target, f[4], timeout, listener));
    else callListening(this.#kernel, target, f[4], timeout, listener);
  }

  // ---- a peer went down -----------------------------------------------------------------------

  /**
   * Answers every entry tied to `peer` once, with `noconnection`. `reset`: the peer stays up (it had
   * taken this node for down), so what is queued for it still goes, after the '!' that came first.
   */
  peerDown(peer: Peer, reset = false): void {
    const links = [...peer.links.values()];
    const monitors = [...peer.monitorsOut.values()];
    for (const entry of peer.monitorsIn.values()) this.#removeMonitorIn(entry);
    for (const entry of links) this.#removeLink(entry);
    for (const entry of monitors) this.#removeMonitorOut(entry);
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
      const from = m[3] === '0' ? 'node' : this.#localPid(Number(m[3]));
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

  // ---- books ----------------------------------------------------------------------------------

  #book(p: Proc): Book {
    let book = this.#books.get(p);
    if (book === undefined) {
      book = new Book();
      this.#books.set(p, book);
      const b = book;
      book.unhook = this.#kernel.onProcExit(p, (reason) => this.#died(p, b, reason));
    }
    return book;
  }

  #release(p: Proc, book: Book): void {
    if (!book.empty) return;
    book.unhook?.();
    this.#books.delete(p);
  }

  /** A local process with ties to other nodes died: each peer hears of it once. */
  #died(p: Proc, book: Book, reason: ExitReason): void {
    this.#books.delete(p);
    let encoded: string | undefined;
    const reasonText = (): string => (encoded ??= this.#encodeReason(reason));
    // as a local death: the Downs of monitors first, then the exit signals of links
    for (const entry of book.monitorsIn) {
      entry.peer.monitorsIn.delete(entry.refId);
      this.#host.push(entry.peer, `["D",${entry.ownerId},${entry.refId},${p.self.id},${reasonText()}]`);
    }
    for (const entry of book.links) {
      entry.peer.links.delete(`${p.self.id}:${entry.remote.id}`);
      // a link being unlinked is gone for this process: its death is not an exit signal to the peer
      if (entry.unlinking === 0) this.#host.push(entry.peer, `["x",${p.self.id},${entry.remote.id},${reasonText()},1]`);
    }
    for (const entry of book.monitorsOut) {
      entry.peer.monitorsOut.delete(entry.ref.id);
      this.#host.push(entry.peer, `["d",${p.self.id},${entry.ref.id}]`);
    }
  }

  /** An exit reason for the wire: one that cannot be encoded (a huge or odd error) goes as its text. */
  #encodeReason(reason: ExitReason): string {
    try {
      return encodeValue(reason, this.#host.maxValueLength());
    } catch {
      const e = reason as { name?: unknown; message?: unknown };
      return encodeValue(Object.assign(new Error(String(e.message ?? reason).slice(0, 4096)), { name: String(e.name ?? 'Error') }));
    }
  }

  #addLink(peer: Peer, local: Proc, remote: Pid, key: string): void {
    const entry: LinkEntry = { peer, local, remote, unlinking: 0 };
    peer.links.set(key, entry);
    this.#book(local).links.add(entry);
  }

  #removeLink(entry: LinkEntry): void {
    entry.peer.links.delete(`${entry.local.self.id}:${entry.remote.id}`);
    const book = this.#books.get(entry.local);
    if (book === undefined) return;
    book.links.delete(entry);
    this.#release(entry.local, book);
  }

  #removeMonitorOut(entry: MonitorOut): void {
    entry.peer.monitorsOut.delete(entry.ref.id);
    const book = this.#books.get(entry.owner);
    if (book === undefined) return;
    book.monitorsOut.delete(entry);
    this.#release(entry.owner, book);
  }

  #removeMonitorIn(entry: MonitorIn): void {
    entry.peer.monitorsIn.delete(entry.refId);
    const book = this.#books.get(entry.target);
    if (book === undefined) return;
    book.monitorsIn.delete(entry);
    this.#release(entry.target, book);
  }

  // ---- ids ------------------------------------------------------------------------------------

  #id(value: unknown): number {
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new TypeError('an id must be a non-negative integer');
    return value;
  }

  /** The live local process with this id, if any. */
  #local(value: unknown): Proc | undefined {
    const id = this.#id(value);
    return id === 0 ? undefined : this.#kernel.resolve({ node: this.#kernel.name, creation: this.#kernel.creation, id });
  }

  #localPid(value: unknown): Pid {
    return new PidImpl(this.#kernel.name, this.#kernel.creation, this.#id(value));
  }

  /** A pid of the sending peer (id 0: the peer node itself). */
  #remotePid(peer: Peer, value: unknown): Pid {
    return new PidImpl(peer.name, peer.incarnation, this.#id(value));
  }
}
