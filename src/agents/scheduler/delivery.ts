import { DeliveryError } from '../../errors.js';
import { endWithAttemptInFlight, type SendOptions, type SendOutcome, sendSupervised, withdrawSends, withdrawWithSender } from '../../delivery/sendSupervised.js';
import { kernelOf } from '../../runtime/kernel.js';
import { isInstance } from '../../runtime/safe.js';
import type { Context } from '../../runtime/types.js';
import type { Schedule, State } from './state.js';

// @internal The AgentScheduler's deliveries: their options, each one's outcome counted and reported
// once, and the withdrawal of a removed schedule's deliveries still waiting.

/**
 * The options of a schedule's deliveries. A send that can wait (retries, 'handled') gets its own id
 * and abort signal at each delivery; without them the send is one synchronous step.
 */
export function deliveryOptions(state: State, id: string): SendOptions {
  const user = state.sendOptions;
  return {
    ack: 'enqueued',
    onError: 'ignore',
    ...user,
    metadata: { ...user.metadata, scheduler: state.name, schedule: id },
  };
}

/** One delivery through supervised send; its outcome is counted and reported when it is known. */
export function deliver(state: State, s: Schedule, lateMs: number, forced: boolean, ctx: Context<any>): void {
  const telemetry = ctx.node.telemetry;
  const agent = s.agent.pid;
  s.lastRunAt = ctx.node.clock.now(); // a date, for an observer
  let options = s.sendOptions;
  let id: string | undefined;
  if (state.sendsWait) {
    // a send that can wait gets its id and its abort: a removal of the schedule withdraws or aborts it by them,
    // and the scheduler's own end (however it ends) withdraws it: nobody is left to ask for its failure's policy
    id = kernelOf(ctx).nextMessageId();
    const abort = new AbortController();
    withdrawWithSender(abort.signal);
    s.pending.set(id, abort);
    options = { ...options, id, signal: abort.signal };
  }
  const ended = (outcome: SendOutcome | undefined, rejected: unknown): void => {
    if (id !== undefined) s.pending.delete(id);
    // the scheduler has exited (its pending sends were aborted with it): its counts and events are over
    if (ctx.signal.aborted) return;
    if (outcome?.ok === true) {
      s.deliveries++;
      state.kept.delivered++;
      telemetry.execute('keel.agent_scheduler.delivered', { lateMs }, { scheduler: state.name, agent, id: s.id, forced, messageId: outcome.id });
      return;
    }
    // a schedule removed while its copy was unstarted or its retry waited: withdrawn, not a failed
    // delivery, whatever `onError` says (its send resolves aborted: no policy is applied to a withdrawal)
    if (outcome?.reason === 'aborted' && s.removed) {
      state.kept.withdrawn++;
      return;
    }
    s.failures++;
    state.kept.failed++;
    telemetry.execute('keel.agent_scheduler.failed', { attempts: outcome?.attempts ?? 0 }, { scheduler: state.name, agent, id: s.id, forced, reason: outcome?.reason ?? rejected });
  };
  sendSupervised(ctx, agent, s.message, options).then(
    (outcome: SendOutcome) => ended(outcome, undefined),
    // only `onError: 'raise'` (ERR_DELIVERY with the failed outcome) or a deadlock rejects: the
    // outcome is read from a DeliveryError only (any other rejection is a failure with no outcome)
    (e: unknown) => ended(isInstance(e, DeliveryError) ? (e.outcome as SendOutcome) : undefined, e),
  );
}

/**
 * A removed schedule's deliveries still waiting: a copy the agent has not started is taken back and
 * a retry waiting for its backoff is aborted (the send ends aborted, withdrawn by its owner: never
 * handled, counted `withdrawn`, and its onError policy is not applied, so nothing is logged,
 * dead-lettered or raised); a copy the agent is handling is left to end, retried no more, and its end is the
 * delivery's outcome, counted when it comes (an agent that unregisters or replaces its own schedule
 * from the handler of its message handles that message).
 */
export function withdraw(s: Schedule, ctx: Context<any>): void {
  const kernel = kernelOf(ctx);
  for (const [id, abort] of s.pending) {
    if (kernel.withdrawEnvelope(s.agent.pid, id) || !endWithAttemptInFlight(abort.signal)) withdrawSends(abort);
  }
}
