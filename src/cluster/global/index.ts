/**
 * Global names and process groups across a cluster's nodes, on a JetStream KV bucket (Erlang's
 * `global` and `pg`). See {@link GlobalRegistry}.
 */
export { conflictName, fencedName, type GlobalExitReason, GlobalRegistry, type GlobalOptions } from './GlobalRegistry.js';
export type { ConnectionChoice } from './store.js';
