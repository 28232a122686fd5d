// The failure detector measures silence on the node's timers' time (monotonic on the real clock),
// as its heartbeat timer counts: a wall clock stepped (by hand, by NTP) neither takes live peers
// down nor keeps a dead one up.
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Cluster } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { Transport } from '../../src/cluster/Transport.js';
import { captureEvents } from '../../src/testing/index.js';
import { HOUR, stepWallClock, useNodes } from '../support.js';

const track = useNodes();
const timings = { heartbeatMs: 20, suspectAfterMs: 60, downAfterMs: 200, probeTimeoutMs: 30 };

afterEach(() => {
  vi.restoreAllMocks();
});

/** A transport whose heartbeats (one broadcast per tick) can be counted: `ticks(n)` resolves at the n-th from now. */
function counted(inner: Transport) {
  let count = 0;
  const waiters: { at: number; resolve: () => void }[] = [];
  const transport: Transport = {
    kind: 'memory',
    get maxBatchSize() {
      return inner.maxBatchSize;
    },
    start: (self, h) => inner.start(self, h),
    send: (p, batch) => inner.send(p, batch),
    broadcast: (batch) => {
      inner.broadcast(batch);
      count++;
      for (const w of [...waiters]) {
        if (count < w.at) continue;
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve();
      }
    },
    probe: (p, ms) => inner.probe(p, ms),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
  return { transport, ticks: (n: number) => new Promise<void>((resolve) => waiters.push({ at: count + n, resolve })) };
}

async function pair() {
  const net = new MemoryNetwork();
  const a = track({ name: 'a' });
  const b = track({ name: 'b' });
  const ta = counted(net.transport());
  const ca = await Cluster.join(a, { transport: ta.transport, ...timings });
  const cb = await Cluster.join(b, { transport: net.transport(), ...timings });
  await ca.waitFor(['b']);
  await cb.waitFor(['a']);
  return { net, a, b, ca, ta };
}

describe('the failure detector on the real clock', () => {
  it('a wall clock stepped an hour forward takes no live peer down: silence is measured on the monotonic clock', async () => {
    const { a, ca, ta } = await pair();
    const events = captureEvents(a, ['keel.cluster.node_']);
    stepWallClock(HOUR);
    // more than downAfterMs of ticks (each checks every peer's silence) with the wall an hour ahead
    await ta.ticks(15);
    expect(events.events.map((e) => e.event)).toEqual([]);
    expect(ca.nodes().map((n) => [n.name, n.status])).toEqual([['b', 'up']]);
    expect(ca.nodes()[0]!.silentMs).toBeLessThan(timings.downAfterMs);
    expect(ca.nodes()[0]!.silentMs).toBeGreaterThanOrEqual(0);
    events.stop();
  });

  it('a wall clock stepped an hour back still takes a silent peer down after downAfterMs', async () => {
    const { net, a, ca, ta } = await pair();
    const events = captureEvents(a, ['keel.cluster.node_down']);
    const down = new Promise<'down'>((resolve) => a.telemetry.attach('down', ['keel.cluster.node_down'], () => resolve('down')));
    stepWallClock(-HOUR);
    net.isolate('b'); // b falls silent
    // downAfterMs is 10 ticks: down well within 40 (counted in ticks, which a loaded machine delays
    // alike); on the wall clock the hour back made the silence negative, excused as a clock jump
    // tick after tick, and the peer went down only after hundreds
    const first = await Promise.race([down, ta.ticks(40).then(() => 'still up after 40 ticks')]);
    expect(first).toBe('down');
    a.telemetry.detach('down');
    expect(events.events[0]?.metadata).toMatchObject({ node: 'b', reason: 'heartbeat' });
    const detectionMs = events.events[0]!.measurements.detectionMs!;
    expect(detectionMs).toBeGreaterThanOrEqual(timings.downAfterMs);
    expect(detectionMs).toBeLessThan(HOUR);
    expect(ca.isConnected('b')).toBe(false);
    events.stop();
  }, 10_000);
});
