export {
  Agent,
  runTaskOn,
  statusOf,
  voteOn,
  type AgentCast,
  type AgentHandle,
  type AgentOptions,
  type AgentPid,
  type AgentProtocol,
  type AgentStatus,
  type AgentTask,
  type TaskResult,
  type Vote,
} from './Agent.js';
export { CoordinatorAgent } from './coordinator/CoordinatorAgent.js';
export { validateWorkflow } from './coordinator/validate.js';
export type {
  CancelResult,
  CoordinatorHandle,
  CoordinatorMetrics,
  CoordinatorOptions,
  Workflow,
  WorkflowResult,
  WorkflowState,
  WorkflowStatus,
  WorkflowTask,
} from './coordinator/types.js';
export { createSignal, isSignal, validateSignal, type Signal, type SignalInput } from './Signal.js';
export { SignalRouter } from './router/SignalRouter.js';
export type {
  PublishResult,
  SignalDropReason,
  SignalOverflow,
  SignalRouterHandle,
  SignalRouterOptions,
  SignalRouterStats,
  SubscribeOptions,
} from './router/types.js';
export {
  AgentScheduler,
  MAX_CATCH_UP,
  type RegisterResult,
  type ScheduledSendOptions,
  type SchedulerProtocol,
  type AgentSchedulerHandle,
  type AgentSchedulerOptions,
  type AgentSchedulerStats,
  type MissedPolicy,
  type PeriodicOptions,
  type ScheduleInfo,
} from './AgentScheduler.js';
export type { AgentStore, AgentStoreConfig, AgentStoreLoad, AgentStoreRecord, CorruptRecord } from './store/AgentStore.js';
export { CoordinationManager } from './coordination/CoordinationManager.js';
export type {
  CircuitInfo,
  CoordinationFailure,
  CoordinationManagerHandle,
  CoordinationManagerOptions,
  CoordinationOutcome,
  CoordinationProtocol,
  CoordinationStats,
} from './coordination/types.js';
export * from './patterns/index.js';
