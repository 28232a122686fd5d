export { withMonitor } from './withMonitor.js';
export type { MonitorManagerOptions } from './MonitorManager.js';
