/**
 * @internal What a frame carries, read and written as the router's parts share it: the ids it names
 * (read strictly: a bad one throws, and the frame is counted malformed) and an exit reason.
 */
import type { Kernel, Proc } from '../../runtime/kernel.js';
import type { ExitReason } from '../../runtime/messages.js';
import { type Pid, PidImpl } from '../../runtime/Pid.js';
import { encodeValue } from '../codec.js';
import type { RemoteHost } from './host.js';
import type { Peer } from './Peer.js';

export function frameId(value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) throw new TypeError('an id must be a non-negative integer');
  return value;
}

/** The live local process with this id, if any. */
export function localProc(kernel: Kernel, value: unknown): Proc | undefined {
  const id = frameId(value);
  return id === 0 ? undefined : kernel.resolve({ node: kernel.name, creation: kernel.creation, id });
}

export function localPid(kernel: Kernel, value: unknown): Pid {
  return new PidImpl(kernel.name, kernel.creation, frameId(value));
}

/** A pid of the sending peer (id 0: the peer node itself). */
export function remotePid(peer: Peer, value: unknown): Pid {
  return new PidImpl(peer.name, peer.incarnation, frameId(value));
}

/** An exit reason for the wire: one that cannot be encoded (a huge or odd error) goes as its text. */
export function encodeReason(host: RemoteHost, reason: ExitReason): string {
  try {
    return encodeValue(reason, host.maxValueLength());
  } catch {
    const e = reason as { name?: unknown; message?: unknown };
    return encodeValue(Object.assign(new Error(String(e.message ?? reason).slice(0, 4096)), { name: String(e.name ?? 'Error') }));
  }
}
