import type { StartError } from '../../errors.js';
import type { ExitReason } from '../../runtime/messages.js';

/**
 * @internal What a behaviour's `init` throws to fail its start as OTP's `{stop, Reason}` does: the
 * start rejects with `error`, and the process exits with `reason` (a clean one is no crash, so no
 * crash report). As for a throw, a linked starter is unlinked first: it learns of the failure from
 * the start's result, not from an exit signal.
 */
export class InitStop {
  readonly reason: ExitReason;
  readonly error: StartError;
  constructor(reason: ExitReason, error: StartError) {
    this.reason = reason;
    this.error = error;
  }
}
