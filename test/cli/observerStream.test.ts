import { describe, expect, it } from 'vitest';
import { MAX_FRAME_CHARS, overviewOf, sseParser, watchOverview } from '../../src/cli/observerStream.js';
import { startObserver } from '../../src/index.js';
import { useNodes } from '../support.js';

const track = useNodes();

describe('sseParser', () => {
  it('splits events fed in chunks of any size, ignoring comments, ids and retry; joins data lines', () => {
    const text = 'retry: 2000\n\n: keep-alive\n\nid: a.1\nevent: snapshot\ndata: {"a":\ndata: 1}\n\r\nid: a.2\r\nevent: overview\r\ndata: {}\r\n\r\ndata:plain\n\n';
    const whole = sseParser().push(text);
    expect(whole).toEqual([
      { event: 'snapshot', data: '{"a":\n1}' },
      { event: 'overview', data: '{}' },
      { event: 'message', data: 'plain' },
    ]);
    // one character at a time: the same events
    const parser = sseParser();
    const bits = [...text].flatMap((c) => parser.push(c));
    expect(bits).toEqual(whole);
  });

  it('gives up on a frame that never ends (a RangeError past the bound)', () => {
    const parser = sseParser(100);
    expect(parser.push(`data: ${'x'.repeat(90)}`)).toEqual([]);
    expect(() => parser.push('x'.repeat(20))).toThrow(RangeError);
    expect(MAX_FRAME_CHARS).toBe(1_000_000);
  });
});

describe('overviewOf', () => {
  it("takes a snapshot's overview and an overview frame's data; anything else is undefined", () => {
    expect(overviewOf({ event: 'snapshot', data: '{"overview":{"node":"a"},"processes":{}}' })).toEqual({ node: 'a' });
    expect(overviewOf({ event: 'overview', data: '{"node":"b"}' })).toEqual({ node: 'b' });
    for (const e of [
      { event: 'message', data: '{"node":"c"}' },
      { event: 'overview', data: 'not json' },
      { event: 'overview', data: '[1]' },
      { event: 'overview', data: 'null' },
      { event: 'snapshot', data: '{"overview":42}' },
      { event: 'snapshot', data: '{"__proto__":{"node":"x"}}' },
    ]) {
      expect(overviewOf(e), e.data).toBeUndefined();
    }
  });
});

describe('watchOverview', () => {
  it("keeps the latest overview an observer pushes: the snapshot's on connect, then each frame", async () => {
    const node = track({ name: 'watched' });
    const obs = await startObserver(node);
    const stop = new AbortController();
    const watch = watchOverview(`http://127.0.0.1:${obs.port}`, obs.token, stop.signal);
    try {
      const first = await watch.next();
      expect(first).toMatchObject({ node: 'watched', processes: node.processes().length, messageRate: null });
      expect(watch.latest()).toBe(first);
      expect(obs.clients).toBe(1);
      const pushed = watch.next();
      expect(await obs.pushFrame()).toBe(true);
      const second = await pushed;
      expect(second).toMatchObject({ node: 'watched', messageRate: expect.any(Number) });
      expect(watch.latest()).toBe(second);
    } finally {
      await watch.close();
      await obs.close();
    }
    expect(watch.latest()).toBeUndefined();
    expect(await watch.next()).toBeUndefined();
  });

  it('closes while a read waits, after its stop signal aborted (a cancel, not only an abort, ends the read)', async () => {
    const node = track({ name: 'watched' });
    const obs = await startObserver(node);
    try {
      for (let i = 0; i < 20; i++) {
        const stop = new AbortController();
        const watch = watchOverview(`http://127.0.0.1:${obs.port}`, obs.token, stop.signal);
        expect(await watch.next()).toMatchObject({ node: 'watched' }); // the stream is open and a read waits
        const ended = watch.next();
        stop.abort();
        await watch.close();
        expect(await ended).toBeUndefined();
        expect(watch.latest()).toBeUndefined();
      }
    } finally {
      await obs.close();
    }
  });

  it('a refused token or a server that is not an observer leaves it empty, no failure', async () => {
    const node = track({ name: 'watched' });
    const obs = await startObserver(node);
    const watch = watchOverview(`http://127.0.0.1:${obs.port}`, 'b'.repeat(32), new AbortController().signal);
    try {
      expect(await watch.next()).toBeUndefined();
      expect(watch.latest()).toBeUndefined();
    } finally {
      await watch.close();
      await obs.close();
    }
  });
});
