export {
  Agent,
  runTaskOn,
  statusOf,
  voteOn,
  type AgentCast,
  type AgentHandle,
  type AgentOptions,
  type AgentRegistration,
  type AgentPid,
  type AgentProtocol,
  type AgentStatus,
  type AgentTask,
  type TaskHandler,
  type TaskRequest,
  type TaskResult,
  type Vote,
} from './Agent.js';
export { CoordinatorAgent } from './coordinator/CoordinatorAgent.js';
export { validateWorkflow } from './coordinator/validate.js';
export type {
  Aggregator,
  CancelResult,
  Compensation,
  CompensationOutcome,
  CoordinatorHandle,
  CoordinatorMetrics,
  CoordinatorOptions,
  NoWorkerError,
  RetryPolicy,
  TaskOutcome,
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
export { ResourcePool } from './pool/ResourcePool.js';
export type {
  CheckinOptions,
  CheckinOutcome,
  CheckoutOptions,
  ResourcePoolHandle,
  ResourcePoolOptions,
  ResourcePoolStats,
  WithResourceOptions,
} from './pool/types.js';
export { AgentRegistry } from './registry/AgentRegistry.js';
export { AgentQuery, isAgentQuery, resolveAgents } from './registry/query.js';
export type { AgentRegistryHandle } from './registry/handle.js';
export type {
  AgentEntry,
  AgentHealth,
  AgentMeta,
  AgentMetaInput,
  AgentRef,
  AgentRegisterResult,
  AgentRegistryOptions,
  AgentRegistryStats,
  AgentUpdateResult,
  AgentWhere,
  RegisterOptions,
} from './registry/types.js';
