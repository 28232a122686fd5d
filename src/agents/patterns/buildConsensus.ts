import { AbortedError, InvalidArgumentError, readKnownOptions } from '../../errors.js';
import { broadcastSupervised, type BroadcastOutcome } from '../../delivery/broadcastSupervised.js';
import { isDead, isProcess, kernelOf } from '../../runtime/kernel.js';
import { nameOf, type Pid } from '../../runtime/Pid.js';
import type { Context, Node } from '../../runtime/types.js';
import { voteOn, type Vote } from '../Agent.js';
import { callFailure, checkObject, checkSignal, checkTimeout, readArgument, readTargets, type CallFailure } from './shared.js';
import { AgentQuery, resolveSource, type AgentsOrQuery } from './agentSource.js';

/** How many approvals carry a proposal. */
export type ConsensusType = 'majority' | 'unanimous' | { quorum: number };

export interface ConsensusOptions<P = unknown> {
  /** What the participants vote on; each gets it in a `vote` call. */
  proposal: P;
  /**
   * The agents that vote (distinct pids or names; at least one), or a registry query
   * (`registry.select(...)`) resolved when the vote starts: its agents then are the participants
   * (a restarted agent at its new pid). A query that selects nobody yields `'rejected'`.
   */
  participants: AgentsOrQuery;
  /**
   * `'majority'` (default): more than half of all participants approve; `'unanimous'`: every
   * participant approves; `{ quorum: n }`: at least n approve (1 ≤ n ≤ participants). A
   * participant that does not answer counts as not approving.
   */
  type?: ConsensusType;
  /** How long the votes may take, in ms (default 5000, on the node's clock); a vote not in by then is missing. */
  timeout?: number;
  /** Aborts the votes still pending (they count as missing, reason `'aborted'`) and the notification. */
  signal?: AbortSignal;
}

/** The decision every participant is sent once the votes are in. */
export interface ConsensusDecision<P = unknown> {
  readonly type: 'consensus_decision';
  readonly proposal: P;
  readonly decision: 'approved' | 'rejected';
  readonly approvals: number;
  readonly rejections: number;
}

/** One participant's vote, or why there is none. */
export type ParticipantVote = { readonly pid: Pid | string; readonly vote: Vote } | { readonly pid: Pid | string; readonly error: CallFailure | 'invalid_vote' | 'error' };

export interface ConsensusResult {
  readonly decision: 'approved' | 'rejected';
  /** One entry per participant, in the order given. */
  readonly votes: ParticipantVote[];
  readonly approvals: number;
  readonly rejections: number;
  /** Participants that did not vote (dead, timed out, aborted, or answered something that is not a vote). */
  readonly missing: number;
  /** The all-or-nothing broadcast of the decision to every participant. */
  readonly notification: BroadcastOutcome;
  /** True when every participant was sent the decision (`notification.ok`). */
  readonly ok: boolean;
}

const OPTIONS = ['proposal', 'participants', 'type', 'timeout', 'signal'] as const;

/** The options as checked, each read once: what the round runs with is what was checked. */
interface Checked {
  readonly proposal: unknown;
  readonly participants: AgentsOrQuery;
  readonly type: ConsensusType;
  readonly timeout: number;
  readonly signal: AbortSignal | undefined;
}

function validate(options: unknown, node: Node): Checked {
  checkObject(options, 'options', '{ proposal, participants, type?, timeout?, signal? }');
  // each option read once (a misspelt one refused, a getter that throws a bad argument naming it),
  // and what is checked is what is used: a getter is not asked again
  const o = readKnownOptions(options, OPTIONS, 'options');
  const participants = o.participants;
  // a list is checked and copied now, each element read once (a query is asked when the vote starts)
  const source: AgentsOrQuery = AgentQuery.is(participants) ? participants : (readTargets(participants, 'options.participants', node) as (Pid | string)[]);
  // a query's size is known only at the vote: a quorum above it is then not reached
  const n = AgentQuery.is(source) ? Number.MAX_SAFE_INTEGER : source.length;
  const given = o.type ?? 'majority';
  let type: ConsensusType;
  if (given === 'majority' || given === 'unanimous') type = given;
  else {
    const shape = "'majority' | 'unanimous' | { quorum: n }";
    if (typeof given !== 'object' || given === null || !readArgument(() => 'quorum' in given, 'options.type', shape, given)) {
      throw new InvalidArgumentError('options.type', shape, given);
    }
    const q = readArgument(() => (given as { quorum: unknown }).quorum, 'options.type.quorum', 'a positive integer', given);
    if (typeof q !== 'number' || !Number.isSafeInteger(q) || q < 1 || q > n) {
      throw new InvalidArgumentError('options.type.quorum', n === Number.MAX_SAFE_INTEGER ? 'a positive integer' : `an integer from 1 to the number of participants (${n})`, q);
    }
    // the quorum as read and checked: the caller's object changed (or revoked) later changes nothing
    type = { quorum: q };
  }
  const timeout = o.timeout ?? 5000;
  checkTimeout(timeout, 'options.timeout');
  const signal = o.signal;
  checkSignal(signal);
  return { proposal: o.proposal, participants: source, type, timeout, signal };
}

function decide(type: ConsensusType, approvals: number, participants: number): boolean {
  if (participants === 0) return false; // nobody voted: nothing is approved (not even unanimously)
  if (type === 'majority') return approvals > participants / 2;
  if (type === 'unanimous') return approvals === participants;
  return approvals >= type.quorum;
}

/**
 * Asks every participant to vote on a proposal (a real `vote` call to each, concurrently, within
 * `timeout`), decides by `type`, then sends every participant the decision
 * `{ type: 'consensus_decision', proposal, decision, approvals, rejections }` all-or-nothing
 * (`broadcastSupervised` with `strategy: 'all_or_nothing'`, `ack: 'enqueued'`): either every
 * participant has it in its mailbox, or none has. A participant that died meanwhile makes the
 * notification fail, and the result says so (`ok: false`, `notification.reason`).
 *
 * Emits `keel.coordination.consensus`. Throws `ERR_INVALID_ARGUMENT` for bad options.
 *
 * @example
 * ```ts
 * const r = await buildConsensus(ctx, { proposal: { deploy: 'v2' }, participants: [a.pid, b.pid, c.pid], type: 'majority', timeout: 1000 });
 * if (r.decision === 'approved' && r.ok) deploy('v2');
 * else if (!r.ok) console.log('not every participant was told', r.notification.reason);
 * ```
 */
export function buildConsensus<P>(from: Node | Context<any>, options: ConsensusOptions<P>): Promise<ConsensusResult> {
  const node = kernelOf(from);
  const checked = validate(options, node);
  const { participants: source, type, timeout, signal } = checked;
  const proposal = checked.proposal as P;
  // run from a process: once it has died its calls fail with it, and nothing is sent from it
  const callerGone = isProcess(from) ? (): boolean => isDead(from) : (): boolean => false;
  const run = async (): Promise<ConsensusResult> => {
    const participants = resolveSource(source);
    // a name stands for the process registered under it when the vote starts, once: that process
    // votes and is told the decision, never one that took the name meanwhile (one not registered
    // then is missing, noproc, and the notification to it fails unless a process registers under it before)
    const processes = participants.map((target): Pid | string => {
      const name = nameOf(target);
      return name === undefined ? target : (node.registry.whereis(name) ?? target);
    });
    const votes: ParticipantVote[] = await Promise.all(
      participants.map(async (pid, i): Promise<ParticipantVote> => {
        try {
          const vote = await voteOn(from, processes[i]!, proposal, { timeout, ...(signal === undefined ? {} : { signal }) });
          return vote === 'approve' || vote === 'reject' ? { pid, vote } : { pid, error: 'invalid_vote' };
        } catch (e) {
          // a call that died with its caller was aborted; the participant did not go down
          return { pid, error: callerGone() ? 'aborted' : (callFailure(e) ?? 'error') };
        }
      }),
    );
    const approvals = votes.filter((v) => 'vote' in v && v.vote === 'approve').length;
    const rejections = votes.filter((v) => 'vote' in v && v.vote === 'reject').length;
    const missing = votes.length - approvals - rejections;
    const decision = decide(type, approvals, participants.length) ? 'approved' : 'rejected';
    const message: ConsensusDecision<P> = { type: 'consensus_decision', proposal, decision, approvals, rejections };
    // the caller dead, nothing is sent (nobody would be sent it from the dead process): the
    // broadcast is made aborted, from the node, so that its outcome says so for every participant
    const gone = callerGone();
    const abort = gone ? AbortSignal.abort(new AbortedError('buildConsensus', 'the calling process exited')) : signal;
    const notification = await broadcastSupervised(gone ? node : from, processes, message, {
      strategy: 'all_or_nothing',
      ack: 'enqueued',
      ...(abort === undefined ? {} : { signal: abort }),
    });
    node.telemetry.execute(
      'keel.coordination.consensus',
      { approvals, rejections, missing, participants: participants.length },
      { decision, notified: notification.ok, type: typeof type === 'object' ? 'quorum' : type, ...(notification.reason === undefined ? {} : { reason: notification.reason }) },
    );
    return { decision, votes, approvals, rejections, missing, notification, ok: notification.ok };
  };
  return run();
}
