// The observer's server after it listens: an error it emits (an accept that fails with EMFILE when
// the process is out of file descriptors) is logged, never an uncaught 'error' event that ends the node.
import type { Server } from 'node:http';
import { describe, expect, it, vi } from 'vitest';
import { startObserver } from '../../src/index.js';
import { useNodes } from '../support.js';
import { bearer, request } from './client.js';

const servers = vi.hoisted(() => [] as Server[]);
vi.mock('node:http', async (original) => {
  const http = await original<typeof import('node:http')>();
  const createServer = ((...args: Parameters<typeof http.createServer>) => {
    const server = http.createServer(...args);
    servers.push(server);
    return server;
  }) as typeof http.createServer;
  return { ...http, default: { ...http, createServer }, createServer };
});

const track = useNodes();

describe('observer server errors', () => {
  it("an error the listening server emits (accept: EMFILE) is logged and the observer goes on answering", async () => {
    const node = track();
    const obs = await startObserver(node);
    try {
      const server = servers.at(-1)!;
      const error = Object.assign(new Error('accept EMFILE'), { code: 'EMFILE', syscall: 'accept' });
      expect(() => server.emit('error', error)).not.toThrow();
      expect(vi.mocked(node.logger.error)).toHaveBeenCalledTimes(1);
      expect(vi.mocked(node.logger.error).mock.calls[0]![1]).toBe(error);
      expect((await request(obs.port, { path: '/api/overview', headers: bearer(obs.token) })).status).toBe(200);
    } finally {
      await obs.close();
    }
  });
});
