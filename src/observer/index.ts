/** The observer: a live view of a node over HTTP (docs/observer.md). */
export { MAX_LIMIT, startObserver, type ObserverHandle, type ObserverOptions } from './Observer.js';
export type { ObserverErrorCode } from './http.js';
export type { Overview as ObserverOverview, ProcessPage as ObserverProcessPage, ProcessRow as ObserverProcessRow, SortKey, TreeNode } from './snapshots.js';
