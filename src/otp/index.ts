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
  type StateResult,
} from './GenServer.js';
export { Supervisor, type ChildInfo, type ChildSpec, type SupervisorOptions } from './Supervisor.js';
export { DynamicSupervisor, type DynamicChildInfo, type DynamicChildSpec, type DynamicSupervisorOptions } from './DynamicSupervisor.js';
export { Task } from './Task.js';
export { Registry, type KeyRegistry, type RegistryEntry } from './Registry.js';
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
