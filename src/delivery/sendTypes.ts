import type { Backoff, BackoffOptions } from '../backoff.js';

// A supervised send's options and outcome, as types: what sendSupervised.ts sends with and answers,
// here so that the policy applied to a failed send (failurePolicy.ts), which sendSupervised.ts
// imports, needs no import of it (sendSupervised.ts exports them).

/** Why a supervised send failed. */
export type FailureReason = 'noproc' | 'process_down' | 'timeout' | 'mailbox_full' | 'aborted' | 'noconnection';

/** The result of a supervised send: delivered (per `ack`), or why not, after how many attempts. */
export type SendOutcome =
  | { ok: true; id: string; attempts: number }
  | {
      ok: false;
      id: string;
      reason: FailureReason;
      attempts: number;
      firstError: unknown;
      lastError: unknown;
      deadLetterId?: string;
      deadLetterUnavailable?: true;
    };

export interface SendOptions {
  /** `'enqueued'` (default): in a live mailbox, decided in one synchronous step. `'handled'`: the receiver's handler finished it. */
  ack?: 'enqueued' | 'handled';
  /** Per attempt, for `'handled'` only (default 5000 ms). */
  timeout?: number;
  /** An overall bound across attempts, in ms from the send (default none). */
  deadline?: number;
  /** Further attempts after the first (default 0). */
  retries?: number;
  /** Delay before each retry (default exponential 10 ms × 2 up to 5000 ms, full jitter), on the node's clock and random. */
  backoff?: BackoffOptions;
  /** On final failure (default `'log'`). `'raise'` rejects with `ERR_DELIVERY` carrying the outcome. */
  onError?: 'log' | 'dead_letter' | 'ignore' | 'raise';
  /** Carried into telemetry and the dead letter. */
  metadata?: Record<string, unknown>;
  /** The message id (default `<node>-<creation>-<seq>`); the receiver sees it as `ctx.messageId`. */
  id?: string;
  /** Retry when the receiver crashed while handling it (default false: a poison message is not retried). */
  retryOnCrash?: boolean;
  /** Aborts pending retries; the outcome's reason is then `'aborted'`. */
  signal?: AbortSignal;
}

/** @internal Validated options with their defaults. */
export interface Settings {
  readonly ack: 'enqueued' | 'handled';
  readonly timeout: number;
  readonly deadline: number;
  readonly retries: number;
  readonly backoff: Backoff;
  readonly onError: 'log' | 'dead_letter' | 'ignore' | 'raise';
  readonly metadata: Record<string, unknown>;
  readonly id: string | undefined;
  readonly retryOnCrash: boolean;
  readonly signal: AbortSignal | undefined;
}
