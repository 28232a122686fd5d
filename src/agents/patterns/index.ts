// The coordination patterns over the agent protocol (DESIGN.md "Agent layer"), one per file.
export { barrier, type Barrier, type BarrierOptions, type BarrierWait } from './barrier.js';
export {
  buildConsensus,
  type ConsensusDecision,
  type ConsensusOptions,
  type ConsensusResult,
  type ConsensusType,
  type ParticipantVote,
} from './buildConsensus.js';
export {
  distributeWork,
  type DistributeWorkOptions,
  type DistributeWorkResult,
  type WorkerTally,
  type WorkFailure,
  type WorkResult,
  type WorkStrategy,
} from './distributeWork.js';
export {
  electLeader,
  monitorLeader,
  type ElectLeaderOptions,
  type LeaderElected,
  type LeaderElection,
  type Leadership,
  type LeaderMonitor,
  type MonitorLeaderOptions,
} from './electLeader.js';
export {
  hierarchyBroadcast,
  type Hierarchy,
  type HierarchyBroadcastOptions,
  type HierarchyBroadcastOutcome,
  type HierarchyDelivery,
} from './hierarchyBroadcast.js';
export {
  createHierarchy,
  isRegistryHierarchy,
  type HierarchyAgent,
  type HierarchyRole,
  type HierarchySpec,
  type HierarchyTeam,
  type RegistryHierarchy,
} from './hierarchy.js';
export type { AgentsOrQuery } from './agentSource.js';
export type { CallFailure } from './shared.js';
export {
  executeDistributed,
  type Assignment,
  type ExecuteDistributedOptions,
  type ExecuteDistributedResult,
  type ExecuteFn,
  type ExecutionOutcome,
} from './executeDistributed.js';
export {
  createCoordinationContext,
  type ContextDelivery,
  type CoordinationContext,
  type CoordinationContextMessage,
  type CoordinationContextOptions,
} from './coordinationContext.js';
