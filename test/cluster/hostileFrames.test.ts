// What a peer's frames cannot do to this node: hostile link, monitor, reply, send and cast frames are
// dropped as malformed or answered safely, and names unfit for a frame are typed errors, not drops.
import { describe, expect, it } from 'vitest';
import { Cluster, type ClusterOptions } from '../../src/cluster/Cluster.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import { GenServer } from '../../src/otp/GenServer.js';
import { isExit } from '../../src/runtime/messages.js';
import { captureEvents, probe } from '../../src/testing/index.js';
import { failure, useNodes } from '../support.js';
import { memoryPair } from './support.js';

const track = useNodes();

const pair = (options?: Partial<ClusterOptions>) => memoryPair(track, options);

describe('a registered name too large for a frame', () => {
  it('Cluster.send and whereis with a name larger than a batch are typed errors, not silent drops', async () => {
    const net2 = new MemoryNetwork({ maxBatchSize: 4096 });
    const x = track({ name: 'x' });
    const y = track({ name: 'y' });
    const cx = await Cluster.join(x, { transport: net2.transport() });
    await Cluster.join(y, { transport: net2.transport() });
    await cx.waitFor(['y']);
    const name = 'n'.repeat(5000);
    expect(() => cx.send('y', name, 1)).toThrow(expect.objectContaining({ code: 'ERR_MESSAGE_TOO_LARGE' }) as Error);
    const error = await failure(() => cx.whereis('y', name, { timeoutMs: 5000 }));
    expect((error as { code?: string }).code).toBe('ERR_MESSAGE_TOO_LARGE');
  });
});

describe('whereis with a name that is not a string', () => {
  it('is a typed error, and does not make the batch it would share with other frames unreadable', async () => {
    const { a, b, ca } = await pair();
    const receiver = probe(b);
    const dropped = captureEvents(b, ['keel.cluster.frame_dropped']);
    const error = await failure(() => ca.whereis('b', undefined as unknown as string, { timeoutMs: 5000 }));
    a.send(receiver, 'after'); // same turn: same batch as the whereis frame
    expect((error as { code?: string }).code).toBe('ERR_INVALID_ARGUMENT');
    expect(await receiver.receive((m) => m === 'after', { timeout: 5000 })).toBe('after');
    expect(dropped.events).toEqual([]);
    dropped.stop();
  });
});

describe('hostile link and monitor frames', () => {
  it('a link exit carrying kill is a trappable killed, not an untrappable kill', async () => {
    const { net, a, b } = await pair();
    const trapper = probe(b);
    trapper.ctx.trapExits(true);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["l",77,${trapper.id}],["x",77,${trapper.id},"kill",1]]]`, false);
    const exit = await trapper.receive(isExit, { timeout: 5000 });
    expect((exit as { reason: unknown }).reason).toBe('killed');
  });

  it('a monitor frame repeated with the same ref leaves nothing behind once demonitored', async () => {
    const { net, a, b, cb } = await pair();
    const target = probe(b);
    const batch = `[1,"a",${a.creation},${b.creation},[["o",5,9,${target.id}],["o",5,9,${target.id}],["d",5,9]]]`;
    net.deliver('a', 'b', batch, false);
    const sink = probe(b);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["m",${sink.id},0,"sync"]]]`, false);
    await sink.receive((m) => m === 'sync', { timeout: 5000 });
    expect(cb.internals()).toEqual({ peers: 1, entries: 0, books: 0, outbox: 0 });
  });
});

describe('hostile reply frames', () => {
  it('a whereis answered with a value that is not a pid, or a call failed with one that is not an error, is a dropped frame: nobody is handed its value, and the call it names fails with ERR_MALFORMED_FRAME', async () => {
    // the peer's reply was that frame: its real answer does not come later (as OTP's distribution
    // fails a connection's calls when it reads garbage), so the call fails rather than waiting
    const { net, a, b, ca } = await pair();
    const dropped = captureEvents(a, ['keel.cluster.frame_dropped']);
    const asked = ca.whereis('b', 'nobody').then(
      (v) => ['resolved', v],
      (e: { code?: string }) => e.code,
    );
    net.deliver('b', 'a', `[1,"b",${b.creation},${a.creation},[["r",1,1,42]]]`, false); // call id 1: a's first
    expect(await asked).toBe('ERR_MALFORMED_FRAME'); // not 42, nor b's own answer after it
    const server = await GenServer.start(b, { init: () => 0, handleCall: (_r: string, _f: unknown, s: number) => ({ noreply: true as const, state: s }) });
    const called = GenServer.call(a, server, 'x', 50).then(
      (v) => ['replied', v],
      (e: { code?: string }) => e.code,
    );
    net.deliver('b', 'a', `[1,"b",${b.creation},${a.creation},[["r",2,0,42],["r",2,7,"yes"]]]`, false);
    expect(await called).toBe('ERR_MALFORMED_FRAME'); // the first fails it; the second names no call left
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed', 'malformed']);
    dropped.stop();
  });
});

describe('send and cast frames without their value', () => {
  it('are dropped as malformed, not delivered as undefined (a sender always writes the value, undefined as its tag)', async () => {
    const { net, a, b } = await pair();
    const dropped = captureEvents(b, ['keel.cluster.frame_dropped']);
    const sink = probe(b);
    net.deliver('a', 'b', `[1,"a",${a.creation},${b.creation},[["m",${sink.id},0],["k",${sink.id},0],["n","x",0],["m",${sink.id},0,"sync"]]]`, false);
    await sink.receive((m) => m === 'sync', { timeout: 5000 });
    expect(sink.messages).toEqual(['sync']);
    expect(dropped.events.map((e) => e.metadata.reason)).toEqual(['malformed', 'malformed', 'malformed']);
    dropped.stop();
  });
});
