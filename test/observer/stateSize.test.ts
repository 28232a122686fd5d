// A redactor's value within bounds of size, not only of count: 5,000 values of 10,000 characters
// each made one detail 50 MB (48 MB, 3 s here).
import { describe, expect, it } from 'vitest';
import { GenServer, Pid, startObserver } from '../../src/index.js';
import { jsonSafe } from '../../src/observer/detail.js';
import { useNodes } from '../support.js';
import { bearer, request } from './client.js';

const track = useNodes();

describe('observer: the size of a state', () => {
  it('jsonSafe shows at most 1,000,000 characters of text in all; past them a text is [truncated]', () => {
    const text = 't'.repeat(10_000);
    const value = Array.from({ length: 40 }, () => Array.from({ length: 25 }, () => text));
    const out = jsonSafe(value) as string[][];
    const flat = out.flat();
    expect(flat.length).toBe(1000);
    expect(flat.filter((s) => s === text).length).toBe(100);
    expect(flat.filter((s) => s === '[truncated]').length).toBe(900);
  });

  it('a detail whose redactor shows 1,000 texts of 10,000 characters (10 MB) stays about 1 MB', async () => {
    const node = track();
    const text = 't'.repeat(10_000);
    const server = await GenServer.start(node, {
      init: () => null,
      formatStatus: () => Array.from({ length: 40 }, () => Array.from({ length: 25 }, () => text)),
    });
    const obs = await startObserver(node, { sampleMs: 3_600_000 });
    try {
      const a = await request(obs.port, { path: `/api/process/${encodeURIComponent(Pid.format(server))}`, headers: bearer(obs.token) });
      expect(a.status).toBe(200);
      expect(a.text.length).toBeLessThan(1_100_000);
      expect((a.json.state as string[][]).flat().filter((s) => s === text).length).toBe(100);
    } finally {
      await obs.close();
    }
  });
});
