import { InvalidArgumentError } from '../../errors.js';
import { checkTarget, nameOf, type Pid, type Target, type TimerRef, toPid } from '../Pid.js';
import type { RemoteRouter } from '../remote.js';
import { validateDelay } from './Lifecycle.js';
import { F_DEAD, type Proc, TimerRefImpl } from './Proc.js';
import { TimerEntry, type TimerHeap } from './TimerHeap.js';

/** @internal What a process's timers need of the node. */
export interface ProcessTimersHost {
  readonly name: string;
  readonly remote: RemoteRouter | undefined;
  deliver(from: Proc | undefined, to: Target, message: unknown): unknown;
  zombieCall(p: Proc, operation: string): void;
}

/**
 * @internal A process's timers (`ctx.sendAfter` / `ctx.cancelTimer`): entries of the node's timer
 * heap owned by the process, listed in its extras so that its death cancels them (DeathWatch).
 */
export class ProcessTimers {
  readonly #host: ProcessTimersHost;
  readonly #timers: TimerHeap;

  constructor(host: ProcessTimersHost, timers: TimerHeap) {
    this.#host = host;
    this.#timers = timers;
  }

  /** `message` to `to` after `ms`, cancelled when `p` dies. */
  sendAfter(p: Proc, to: Target, message: unknown, ms: number, unref: boolean): TimerRef {
    validateDelay(ms);
    if (nameOf(to) === undefined) {
      const pid = toPid(to); // read once now: the timer sends to what was checked
      if (pid === undefined) throw new InvalidArgumentError('to', 'a Pid or a non-empty registered name', to);
      to = pid;
    } else {
      checkTarget(to, 'to');
    }
    if ((p.flags & F_DEAD) !== 0) {
      this.#host.zombieCall(p, 'sendAfter');
      return new TimerRefImpl(new TimerEntry(0, -1, noop, true)) as unknown as TimerRef; // inert: never scheduled
    }
    // to another node's process: encoded now (a snapshot, a typed error at the sendAfter), as a send is
    const remote = this.#host.remote;
    const later = remote !== undefined && nameOf(to) === undefined && (to as Pid).node !== this.#host.name ? remote.sendLater(p, to as Pid, message) : undefined;
    const timers = (p.ext().timers ??= new Set());
    const host = this.#host;
    const entry = this.#timers.schedule(
      ms,
      () => {
        timers.delete(entry);
        if (later !== undefined) later();
        else host.deliver(p, to, message);
      },
      unref,
    );
    entry.owner = p;
    timers.add(entry);
    return new TimerRefImpl(entry) as unknown as TimerRef;
  }

  /** Cancels a timer of a process of this node; false when it fired, was cancelled, or is another node's. */
  cancel(t: TimerRefImpl, node: unknown): boolean {
    const owner = t.entry.owner as Proc | undefined;
    if (owner === undefined || owner.rt !== node || !this.#timers.cancel(t.entry)) return false;
    owner.x?.timers?.delete(t.entry);
    return true;
  }
}

function noop(): void {}
