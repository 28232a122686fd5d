export { TestClock } from './TestClock.js';
export { SimulatedClock } from '../runtime/SimulatedClock.js';
export { probe, type Probe } from './probe.js';
export { captureEvents, type CapturedEvent, type EventCapture } from './captureEvents.js';
export { expectNoLeaks } from './expectNoLeaks.js';
