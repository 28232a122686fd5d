// The worker transport passes the behaviour suite every transport passes (nodes in this thread, joined through one hub).
import { createWorkerHub } from '../../src/cluster/transports/worker.js';
import { transportSuite } from './transportSuite.js';

transportSuite(
  'worker',
  (names) => {
    const hub = createWorkerHub();
    return Promise.resolve({ transports: names.map((n) => hub.transport(n)), close: () => hub.close() });
  },
  { probeUnknown: 'gone', knowsGone: true },
);
