/** The observer: a live view of a node over HTTP (docs/observer.md). */
export { MAX_LIMIT, startObserver, type ObserverHandle, type ObserverOptions } from './Observer.js';
export type { ObserverErrorCode } from './http.js';
export type { Overview as ObserverOverview } from './overview.js';
export type { ProcessPage as ObserverProcessPage, ProcessRow as ObserverProcessRow, SortKey } from './processes.js';
export type { TreeNode } from './tree.js';
export type { Bucket as TelemetryBucket, TelemetrySnapshot } from './telemetryHistory.js';
export type { JobProgress as DeadLetterJob } from './jobs.js';
