export { sendSupervised, type FailureReason, type SendOptions, type SendOutcome } from './sendSupervised.js';
export { broadcastSupervised, type BroadcastOptions, type BroadcastOutcome, type BroadcastStrategy } from './broadcastSupervised.js';
export type { DeadLetterOptions } from './DeadLetterQueue.js';
