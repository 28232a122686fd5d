// The behaviour every Transport passes (NATS, worker threads, in-memory): one suite, called by each
// transport's test file with a factory of unstarted transports and what the transport can tell.
// No sleeps: each test awaits the fact (a batch arriving, a probe's answer); "nothing arrived" is
// shown by a later batch that causally follows it.
import { describe, expect, it } from 'vitest';
import type { ProbeResult, Transport, TransportHandler } from '../../src/cluster/Transport.js';

/** Unstarted transports, one per name (`transports[i]` joins as `names[i]`), and what to release after. */
export interface TransportFixture {
  readonly transports: readonly Transport[];
  /** Releases what the factory made (servers, threads); the suite has closed the transports already. */
  close(): Promise<void>;
}

/** What a transport can tell, where transports differ. */
export interface TransportCaps {
  /** The probe of a name no node ever used: 'gone' (NATS: no responders) or 'timeout' (cannot tell). */
  readonly probeUnknown: ProbeResult;
  /** True when the transport calls `peerGone` by itself when a peer closes (a closed worker port). */
  readonly knowsGone: boolean;
  /** The probe timeout the suite uses, ms (generous: CI's 2 loaded cores). */
  readonly probeTimeoutMs?: number;
}

/** A handler that records everything and lets a test await a condition on what it recorded. */
export class Recorder implements TransportHandler {
  readonly received: { from: string; batch: string }[] = [];
  readonly broadcasts: { from: string; batch: string }[] = [];
  readonly gone: string[] = [];
  readonly states: ('disconnected' | 'reconnected')[] = [];
  #waiters: (() => void)[] = [];

  receive(from: string, batch: string): void {
    this.received.push({ from, batch });
    this.#wake();
  }
  receiveBroadcast(from: string, batch: string): void {
    this.broadcasts.push({ from, batch });
    this.#wake();
  }
  peerGone(peer: string): void {
    this.gone.push(peer);
    this.#wake();
  }
  connection(state: 'disconnected' | 'reconnected'): void {
    this.states.push(state);
    this.#wake();
  }

  /** Resolves once `condition` holds (checked now and after each recorded event); the test's timeout bounds it. */
  async until(condition: () => boolean): Promise<void> {
    while (!condition()) await new Promise<void>((resolve) => this.#waiters.push(resolve));
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const w of waiters) w();
  }
}

/** Started transports with their recorders, closed (all of them, then the fixture) by `release`. */
export interface Started {
  readonly transports: readonly Transport[];
  readonly recorders: readonly Recorder[];
  release(): Promise<void>;
}

/** Makes and starts transports for `names` (incarnations 1, 2, ...). */
export async function startAll(make: (names: readonly string[]) => Promise<TransportFixture>, names: readonly string[]): Promise<Started> {
  const fixture = await make(names);
  const recorders = names.map(() => new Recorder());
  const release = async (): Promise<void> => {
    await Promise.all(fixture.transports.map((t) => t.close()));
    await fixture.close();
  };
  try {
    await Promise.all(fixture.transports.map((t, i) => t.start({ name: names[i]!, incarnation: i + 1 }, recorders[i]!)));
  } catch (e) {
    await release();
    throw e;
  }
  return { transports: fixture.transports, recorders, release };
}

/**
 * Runs the transport behaviour suite under `describe(label)`. `make(names)` answers unstarted
 * transports, `transports[i]` to join as `names[i]`; the suite starts them, closes them and then
 * calls the fixture's `close`.
 */
export function transportSuite(label: string, make: (names: readonly string[]) => Promise<TransportFixture>, caps: TransportCaps): void {
  const probeMs = caps.probeTimeoutMs ?? 2_000;
  const run = async (names: readonly string[], body: (s: Started) => Promise<void>): Promise<void> => {
    const started = await startAll(make, names);
    try {
      await body(started);
    } finally {
      await started.release();
    }
  };

  describe(`transport behaviour: ${label}`, () => {
    it('carries 10,000 batches from A to B in order, each from A', async () => {
      await run(['A', 'B'], async ({ transports: [a], recorders: [, b] }) => {
        const n = 10_000;
        for (let i = 0; i < n; i++) a!.send('B', `batch-${i}`);
        await a!.flush();
        await b!.until(() => b!.received.length >= n);
        expect(b!.received.length).toBe(n);
        const outOfPlace = b!.received.findIndex((r, i) => r.batch !== `batch-${i}` || r.from !== 'A');
        expect(outOfPlace).toBe(-1);
        expect(b!.broadcasts).toEqual([]);
      });
    }, 60_000);

    it('keeps per-pair order with two senders interleaved, and each batch says its sender', async () => {
      await run(['A', 'B', 'C'], async ({ transports: [a, b], recorders: [, , c] }) => {
        for (let i = 0; i < 500; i++) {
          a!.send('C', `a${i}`);
          b!.send('C', `b${i}`);
        }
        await c!.until(() => c!.received.length >= 1000);
        const fromA = c!.received.filter((r) => r.from === 'A').map((r) => r.batch);
        const fromB = c!.received.filter((r) => r.from === 'B').map((r) => r.batch);
        expect(fromA).toEqual(Array.from({ length: 500 }, (_, i) => `a${i}`));
        expect(fromB).toEqual(Array.from({ length: 500 }, (_, i) => `b${i}`));
      });
    }, 60_000);

    it('delivers a broadcast to every other node and not back to its sender', async () => {
      await run(['A', 'B', 'C'], async ({ transports: [a, b], recorders: [ra, rb, rc] }) => {
        a!.broadcast('hello-from-A');
        await rb!.until(() => rb!.broadcasts.length >= 1);
        await rc!.until(() => rc!.broadcasts.length >= 1);
        expect(rb!.broadcasts).toEqual([{ from: 'A', batch: 'hello-from-A' }]);
        expect(rc!.broadcasts).toEqual([{ from: 'A', batch: 'hello-from-A' }]);
        // B answers only after it got A's broadcast: a self copy to A would have come before B's answer
        b!.broadcast('answer-from-B');
        await ra!.until(() => ra!.broadcasts.some((r) => r.from === 'B'));
        expect(ra!.broadcasts).toEqual([{ from: 'B', batch: 'answer-from-B' }]);
        expect(ra!.received).toEqual([]);
      });
    }, 30_000);

    it(`probes a live peer as alive, a never-started name as ${caps.probeUnknown}, a closed peer as gone`, async () => {
      await run(['A', 'B'], async ({ transports: [a, b] }) => {
        expect(await a!.probe('B', probeMs)).toBe('alive');
        expect(await b!.probe('A', probeMs)).toBe('alive');
        expect(await a!.probe('never-started', probeMs)).toBe(caps.probeUnknown);
        await b!.close();
        expect(await a!.probe('B', probeMs)).toBe('gone');
      });
    }, 30_000);

    it('after close, send, broadcast and flush are no-ops that do not throw, and close is idempotent', async () => {
      await run(['A', 'B'], async ({ transports: [a, b], recorders: [, rb] }) => {
        await a!.close();
        expect(() => a!.send('B', 'after-close')).not.toThrow();
        expect(() => a!.broadcast('after-close')).not.toThrow();
        await expect(a!.flush()).resolves.toBeUndefined();
        await expect(a!.close()).resolves.toBeUndefined();
        // B's probe goes out after A's sends and comes back: nothing of A's arrived meanwhile
        expect(await b!.probe('A', probeMs)).toBe('gone');
        expect(rb!.received).toEqual([]);
        expect(rb!.broadcasts).toEqual([]);
      });
    }, 30_000);

    it('carries a batch of maxBatchSize code units, of 3-byte characters, intact', async () => {
      await run(['A', 'B'], async ({ transports: [a], recorders: [, rb] }) => {
        const max = a!.maxBatchSize;
        expect(max).toBeGreaterThan(1000);
        const size = Math.min(max, 8 * 1024 * 1024);
        const big = '€'.repeat(size - 2) + '[]';
        expect(big.length).toBe(size);
        a!.send('B', big);
        a!.send('B', 'after-big');
        await rb!.until(() => rb!.received.length >= 2);
        expect(rb!.received[0]!.batch.length).toBe(size);
        expect(rb!.received[0]!.batch === big).toBe(true);
        expect(rb!.received[1]).toEqual({ from: 'A', batch: 'after-big' });
      });
    }, 30_000);

    it(`a node closing makes the others' probe say gone${caps.knowsGone ? ' and tells them peerGone' : ''}`, async () => {
      await run(['A', 'B', 'C'], async ({ transports: [a, b, c], recorders: [ra, rb] }) => {
        expect(await a!.probe('C', probeMs)).toBe('alive');
        await c!.close();
        expect(await a!.probe('C', probeMs)).toBe('gone');
        expect(await b!.probe('C', probeMs)).toBe('gone');
        expect(await a!.probe('B', probeMs)).toBe('alive');
        if (caps.knowsGone) {
          await ra!.until(() => ra!.gone.includes('C'));
          await rb!.until(() => rb!.gone.includes('C'));
        }
        // the survivors still talk
        a!.send('B', 'still-here');
        await rb!.until(() => rb!.received.length >= 1);
        expect(rb!.received).toEqual([{ from: 'A', batch: 'still-here' }]);
        expect(b!.kind).toBe(a!.kind);
      });
    }, 30_000);
  });
}
