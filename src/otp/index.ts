export {
  GenServer,
  type CallProtocol,
  type CallResult,
  type From,
  type GenServerSpec,
  type ReplyOf,
  type ServerName,
  type ServerPid,
  type StartOptions,
  type NoReplyResult,
  type StateResult,
} from './GenServer.js';
export { Supervisor, type ChildInfo, type ChildSpec, type FailedToStartChild, type SupervisorOptions, type SupervisorStatus } from './Supervisor.js';
export { DynamicSupervisor, type DynamicChildInfo, type DynamicChildSpec, type DynamicSupervisorOptions } from './DynamicSupervisor.js';
export { Task } from './Task.js';
export { Registry, type KeyRegistry, type Pattern, type RegistryEntry, type RegistryEvent, type RegistryGuard, type RegistryOptions, type RegistryQuery, type RegistrySelected, type UpdateValueResult } from './Registry.js';
export type { AsyncStreamOptions, YieldResult } from './Task.js';
export { TaskSupervisor, type TaskShutdownOption, type TaskSupervisorOptions } from './TaskSupervisor.js';
export { ValueAgent, type ValueAgentCallOptions, type ValueAgentName, type ValueAgentPid, type ValueAgentRef, type ValueAgentStartOptions } from './ValueAgent.js';
export {
  StateMachine,
  type HandleEventSpec,
  type StateFunctionsSpec,
  type StateMachineAction,
  type StateMachineEvent,
  type StateMachineInit,
  type StateMachineSpec,
  type Transition,
} from './StateMachine.js';
export { Sys, type ServerStatus } from './Sys.js';
