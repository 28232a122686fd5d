// A component started on a node that has shut down: the start fails, and the node's store file is
// not left open (claimed) in this OS process for ever.
import { describe, expect, it } from 'vitest';
import { AgentScheduler } from '../../../src/agents/AgentScheduler.js';
import { agentStoreFor } from '../../../src/agents/store/stores.js';
import { expectKeelError, thrown, useNodes, useTempFiles } from '../../support.js';

const tmpfile = useTempFiles('keel-agent-stopped-', 'agents.db');
const track = useNodes();

describe('agent store of a node that has shut down', () => {
  it('a start on the shut-down node fails and leaves the file free for another node', async () => {
    const file = tmpfile();
    const a = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    await a.shutdown();
    expectKeelError(thrown(() => AgentScheduler.start(a, { name: 'late' })), 'ERR_STORE_UNAVAILABLE', 'shut down');
    const b = track({ services: { agents: { store: { kind: 'sqlite', path: file } } } });
    expect(agentStoreFor(b, undefined)!.loadAll('late')).toEqual({ records: [], corrupt: [] });
  });
});
