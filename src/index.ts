/**
 * Keel: Erlang/OTP-grade processes, supervision and hardened messaging for TypeScript on Node.js.
 *
 * @example
 * ```ts
 * import { createNode } from 'keel';
 * const node = createNode();
 * const echo = node.spawn<string>(() => (msg) => console.log('got', msg));
 * node.send(echo, 'hello');
 * await node.idle();
 * await node.shutdown();
 * ```
 */
import { createRuntimeNode } from './runtime/kernel.js';
import { serviceSlots } from './services/slots.js';
import { startObserver } from './observer/Observer.js';
import { agentServicesOptions, configureAgentStore } from './agents/store/stores.js';
import type { Node, NodeOptions } from './runtime/types.js';

export * from './runtime/index.js';
export * from './otp/index.js';
export * from './monitors/index.js';
export * from './delivery/index.js';
export * from './agents/index.js';
export { startObserver, type ObserverErrorCode, type ObserverOverview, type ObserverProcessPage, type ObserverProcessRow } from './observer/index.js';
export type { Measurements, Metadata, Telemetry, TelemetryHandler } from './telemetry/Telemetry.js';
export {
  AbortedError,
  AlreadyRegisteredError,
  CallExitError,
  CallTimeoutError,
  DeadlockError,
  DeadLetterTooLargeError,
  DeliveryError,
  MailboxFullError,
  MaxChildrenError,
  MissingPeerError,
  NotSerializableError,
  NoConnectionError,
  PeersTimeoutError,
  MessageTooLargeError,
  MalformedFrameError,
  ProtocolMismatchError,
  JoinRefusedError,
  StoreInUseError,
  StoreUnavailableError,
  StoreVersionError,
  StartError,
  TaskExitError,
  TaskTimeoutError,
  HandlerReturnedError,
  IdleTimeoutError,
  InvalidArgumentError,
  UnknownOptionError,
  InvalidSignalError,
  WorkflowLimitError,
  PoolTimeoutError,
  PoolCrashLoopError,
  SyncTimeoutError,
  isKeelError,
  KeelError,
  LeaksFoundError,
  NameTakenError,
  ReservedNameError,
  NodeStoppedError,
  NoProcError,
  ProcessExitedError,
  ReceiveTimeoutError,
  FishTimeoutError,
  UnexpectedMessageError,
  ServiceUnavailableError,
  ThrownValueError,
  type CallStage,
  type KeelErrorCode,
  type ServiceName,
  type ServiceUnavailableReason,
} from './errors.js';

/**
 * Creates a node: one Keel runtime with its own processes, scheduler, unique names, telemetry and
 * services. Nothing is global, so two nodes in one OS process share nothing.
 *
 * @example
 * ```ts
 * const node = createNode({ name: 'app' });
 * const pid = node.spawn(() => (msg) => console.log(msg));
 * node.send(pid, 'hi');
 * await node.shutdown();
 * ```
 */
export function createNode(options?: NodeOptions): Node {
  const services = servicesOf(options);
  const agents = agentServicesOptions(services); // the agent store's options, checked before the node exists
  const node = createRuntimeNode(options, { ...serviceSlots(services), observer: startObserver });
  configureAgentStore(node, agents);
  return node;
}

/** `options.services`, read without throwing: options that cannot be read are the node's typed error to throw. */
function servicesOf(options: NodeOptions | undefined): NodeOptions['services'] {
  try {
    return options?.services;
  } catch {
    return undefined;
  }
}
