export { realClock, seededRandom, type Clock, type TimerHandle } from './Clock.js';
export { SimulatedClock, SimulatedTimer } from './SimulatedClock.js';
export { isCleanExit, isDown, isExit, isSystemMessage, formatReason, type Down, type Exit, type ExitReason, type SystemMessage } from './messages.js';
export type { BackoffOptions } from '../backoff.js';
export type { NameRegistry } from './NameRegistry.js';
export type { ProcessGroups } from './ProcessGroups.js';
export { Name, Pid, type Ref, type Target, type TimerRef } from './Pid.js';
export {
  isUnavailable,
  type DeadLetter,
  type DeadLetterFilter,
  type DeadLetterQueue,
  type DeadLetterStats,
  type MonitorEntry,
  type MonitorManager,
  type MonitorStats,
  type ObserverHandle,
  type ObserverOptions,
  type ServicesOptions,
  type Unavailable,
} from './serviceSlots.js';
export type {
  Context,
  Handler,
  Init,
  Logger,
  MailboxOptions,
  Node,
  NodeOptions,
  ProcessInfo,
  SchedulerOptions,
  LongMailboxOptions,
  SpawnOptions,
} from './types.js';
