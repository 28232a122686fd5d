export { sendSupervised, type FailureReason, type SendOptions, type SendOutcome } from './sendSupervised.js';
export { broadcastSupervised, type BroadcastOptions, type BroadcastOutcome, type BroadcastStrategy } from './broadcastSupervised.js';
export { NotSerializableError } from './stores/DeadLetterStore.js';
export { MissingPeerError, StoreInUseError } from './stores/SqliteStore.js';
export type { DeadLetterOptions } from './DeadLetterQueue.js';
