// The in-memory transport passes the behaviour suite every transport passes.
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import { transportSuite } from './transportSuite.js';

transportSuite(
  'memory',
  (names) => {
    const net = new MemoryNetwork();
    return Promise.resolve({ transports: names.map(() => net.transport()), close: () => Promise.resolve() });
  },
  // an unknown name is known to be nobody (the network holds every member); a closed one tells the others
  { probeUnknown: 'gone', knowsGone: true },
);
