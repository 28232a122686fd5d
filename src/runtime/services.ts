/**
 * @deprecated The service slot interfaces are in `./serviceSlots.ts`. This re-export only keeps
 * src/agents compiling until it imports from there. TODO(agents door): delete this file.
 */
export { isUnavailable } from './serviceSlots.js';
