/**
 * `keel/cluster`: nodes in several threads, processes or machines, as one system. A node joins a
 * cluster over a transport (NATS, worker threads, or in-memory for tests), and from then on a pid
 * of another node's process works as a local one: send, call, monitor, link, exit signals.
 */
export { Cluster, type ClusterNodeInfo, type ClusterOptions, type NodeDownReason } from './Cluster.js';
export type { NodeIdentity, ProbeResult, Transport, TransportHandler } from './Transport.js';
export { MemoryNetwork } from './transports/memory.js';
export { CLUSTER_NAME_PATTERN, clusterPermissions, natsTransport, type NatsPermissions, type NatsTransportOptions } from './transports/nats.js';
export { decodeBatch, decodeValue, encodeValue, type PidFactory } from './codec.js';
export {
  createWorkerHub,
  DEFAULT_WORKER_MAX_BATCH,
  type SpawnNodeOptions,
  type WorkerHub,
  WORKER_PROTOCOL_VERSION,
  workerNode,
  type WorkerNodeInfo,
  workerTransport,
  type WorkerTransportOptions,
} from './transports/worker.js';
export { type RemoteName, SupervisedDelivery, type SupervisedDeliveryOptions } from './supervised/index.js';
export { conflictName, fencedName, type GlobalExitReason, type GlobalOptions, GlobalRegistry } from './global/index.js';
