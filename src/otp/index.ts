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
export { ValueAgent, type ValueAgentCallOptions, type ValueAgentName, type ValueAgentPid, type ValueAgentRef, type ValueAgentStartOptions } from './ValueAgent.js';
