import { describe, expect, it } from 'vitest';
import { DynamicSupervisor, GenServer, isKeelError, Supervisor } from '../../src/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

describe('a supervisor called with a request that is not its own', () => {
  it.each([
    ['Supervisor', (node: Parameters<typeof Supervisor.start>[0]) => Supervisor.start(node, [])],
    ['DynamicSupervisor', (node: Parameters<typeof DynamicSupervisor.start>[0]) => DynamicSupervisor.start(node)],
  ])('%s replies an ERR_INVALID_ARGUMENT error and keeps running', async (_name, start) => {
    const node = track();
    const sup = await start(node);
    const reply = (await GenServer.call(node, sup, { op: 'bogus' })) as { error?: unknown };
    expect(isKeelError(reply.error, 'ERR_INVALID_ARGUMENT')).toBe(true);
    expect(node.isAlive(sup)).toBe(true);
  });
});
