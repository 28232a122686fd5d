/**
 * @internal The router's calls to other nodes' processes and from them: a call (or a whereis) made
 * from here waits in the peer's map for its reply, released by the reply, its timeout, its caller's
 * death, its abort or the peer's down; a call from a peer's process is made here and its outcome
 * sent back as a reply frame.
 */
import { AbortedError, CallExitError, CallTimeoutError, MalformedFrameError, NoConnectionError } from '../../errors.js';
import { callListening, type CallListener, noProcError } from '../../otp/internal/calls.js';
import type { Kernel, Proc } from '../../runtime/kernel.js';
import { isPid, type Pid, PidImpl, targetText } from '../../runtime/Pid.js';
import { encodeValue } from '../codec.js';
import type { RemoteHost } from './host.js';
import type { CallOut, Peer } from './Peer.js';
import { incoming, traceFields } from './trace.js';
import { frameId, localPid, localProc } from './wire.js';

export class Calls {
  readonly #host: RemoteHost;
  readonly #kernel: Kernel;
  #nextCall = 0;

  constructor(host: RemoteHost) {
    this.#host = host;
    this.#kernel = host.kernel;
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

  /** A call from a peer's process: made here from the node, its outcome sent back as a reply frame. */
  served(peer: Peer, f: unknown[]): void {
    const id = frameId(f[1]);
    const timeout = f[5] === -1 ? Infinity : f[5];
    if (typeof timeout !== 'number' || !(timeout >= 0)) throw new TypeError('a call needs a timeout'); // 0 is one (validateTimeout's range)
    const target = localProc(this.#kernel, f[3])?.self ?? localPid(this.#kernel, f[3]);
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

  /** A reply from a peer: the call it names is answered; throws on a malformed one (the caller counts it), having answered it with the error. */
  replied(peer: Peer, f: unknown[]): void {
    // a reply is checked before anyone is handed it: a success or an error, an error's value an
    // Error (every failure a node sends is one), a whereis's a pid or undefined
    // a malformed one still answers the call it names (with the error, and is counted): left
    // waiting, a call with no timeout would wait for ever
    const call = peer.calls.get(frameId(f[1]));
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
  }
}
