import type { GenServerSpec } from '../otp/GenServer.js';
import { keelServer, unexpectedInfo } from '../otp/internal/keelServer.js';
import { kernelOf, type Proc } from '../runtime/kernel.js';
import type { Context } from '../runtime/types.js';
import type { DeadLetterStore } from './stores/DeadLetterStore.js';

// The dead letter queue's process: its registered name, its one wake-up timer and the messages that
// wake it (its timer's, and a re-arm when an entry is due before it), under the node's services
// supervisor. What it runs when it wakes is the queue's (deadLetterRetries.ts).

/** The registered name of the queue's process. */
export const DLQ_PROCESS = 'keel.dead_letter_queue';

/** @internal What the process asks of its queue (the node's `DeadLetterService`). */
export interface WakingQueue {
  readonly store: Pick<DeadLetterStore, 'kind'>;
  /** The next time the queue has something to do, if any. */
  nextWake(): number | undefined;
  /** The automatic retry; returns when to wake next. An abort of `signal` gives up its redeliveries in flight. */
  runDue(signal: AbortSignal): Promise<number | undefined>;
  /** The process armed its wake-up for `at` (Infinity: none; -Infinity: re-armed when the run ends). */
  armed(at: number): void;
}

/**
 * The process's wake-up: its own value, so that a plain 'wake' sent by anyone is reported as
 * unexpected, never taken for its timer (which left the timer armed beside a new one, for good).
 */
const WAKE = Symbol('wake');
const DURABLE_POLL_MS = 5000;
/** @internal The message that has the process arm its wake-up again (for an entry due before it). */
export const REARM = Symbol('rearm');

/**
 * @internal The queue's process: one wake-up timer at the earliest due time (unref'd, on the node's
 * clock); everything else lives in the store. It does not trap exits: told to stop by its supervisor
 * (the node's shutdown), it stops at once, in the middle of a run too, and its exit gives up the
 * redeliveries in flight (their entries stay as they were: nothing accepted is lost), rather than
 * holding the shutdown until a receiver finishes or the redelivery's wait runs out.
 */
export function deadLetterProcessSpec(queue: WakingQueue): GenServerSpec<{ timer: ReturnType<Context['sendAfter']> | undefined; running: boolean }, never, never, undefined> {
  const arm = (ctx: Context<any>, state: { timer: ReturnType<Context['sendAfter']> | undefined }): void => {
    if (state.timer !== undefined) ctx.cancelTimer(state.timer);
    state.timer = undefined;
    const at = queue.nextWake();
    // a durable store may be changed by the CLI (`keel dlq retry`): look at it again at least every 5 s
    const durable = queue.store.kind === 'sqlite';
    const now = ctx.node.clock.now();
    const delay = Math.min(at === undefined ? Infinity : Math.max(0, at - now), durable ? DURABLE_POLL_MS : Infinity);
    if (delay === Infinity) {
      queue.armed(Infinity);
      return;
    }
    state.timer = kernelOf(ctx.node).sendAfter(ctx as Proc, ctx.self, WAKE, delay, true);
    queue.armed(now + delay);
  };
  return keelServer({
    init(_arg, ctx) {
      const state = { timer: undefined, running: false };
      arm(ctx, state);
      return state;
    },
    async handleInfo(message, state, ctx) {
      if (message === REARM) {
        if (!state.running) arm(ctx, state);
        else queue.armed(-Infinity); // re-armed when the run ends
        return state;
      }
      if (message !== WAKE) {
        unexpectedInfo(ctx, message);
        return state;
      }
      state.timer = undefined;
      state.running = true;
      try {
        // the process's exit (its signal) gives up the run's redeliveries in flight
        await queue.runDue(ctx.signal);
      } finally {
        state.running = false;
      }
      if (ctx.signal.aborted) return state; // exited during the run: nothing to arm
      arm(ctx, state);
      return state;
    },
  }, "the dead letter queue's process (use node.deadLetters)");
}
