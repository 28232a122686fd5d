// A cluster of OS processes over a real nats-server (one per file, on a free port, stopped by pid):
// nodes started in children, killed with SIGKILL, frozen with SIGSTOP and started again under their
// name. Every scenario awaits facts (a reply, a Down heard, an event recorded), never time.
import { connect } from '@nats-io/transport-node';
import { afterEach, describe, expect, it } from 'vitest';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { useNatsServer, skipWithoutNats } from './natsServer.js';
import { type NodeProcess, type NodeProcessOptions, startNodeProcess } from './nodeProcess.js';
import { sync } from './support.js';

const forkChild = useChildren();
const builtKeel = useBuiltPackage();
const server = useNatsServer();

// loopback defaults, with a down verdict slow enough for CI's two loaded cores
const TIMING: NodeProcessOptions = { cluster: { heartbeatMs: 100, suspectAfterMs: 400, downAfterMs: 2500, probeTimeoutMs: 400 } };
let clusters = 0;

/** Every node started by this test: after it, each one still running must show no leak (`expectNoLeaks` in the child). */
const started: NodeProcess[] = [];
afterEach(async () => {
  const nodes = started.splice(0).filter((n) => n.child.process.exitCode === null && n.child.process.signalCode === null);
  await Promise.all(nodes.map((n) => n.rpc('leaks')));
});

interface Heard {
  readonly kind: 'down' | 'exit' | 'message';
  readonly reason?: string;
  readonly pid?: string;
  readonly from?: string;
  readonly value?: unknown;
  readonly at?: number;
}
/** `names` started as a fresh cluster, each up with all the others. */
async function cluster(names: readonly string[], options: NodeProcessOptions = TIMING): Promise<{ nodes: NodeProcess[]; name: string }> {
  const name = `t${++clusters}`;
  const nodes = await Promise.all(names.map((n) => startNodeProcess(forkChild, builtKeel(), n, server().url, name, options)));
  started.push(...nodes);
  await Promise.all(nodes.map((node) => node.rpc('waitFor', { names: names.filter((n) => n !== node.name), timeoutMs: 20_000 })));
  return { nodes, name };
}

describe.skipIf(skipWithoutNats)('a cluster of OS processes over NATS', () => {
  it('three nodes discover one another', async () => {
    const { nodes } = await cluster(['n1', 'n2', 'n3']);
    for (const node of nodes) {
      const peers = await node.rpc<{ name: string; status: string }[]>('nodes');
      expect(peers.map((p) => p.name).sort()).toEqual(['n1', 'n2', 'n3'].filter((n) => n !== node.name));
      expect(peers.every((p) => p.status === 'up')).toBe(true);
    }
  });

  it('10,000 messages from one process arrive in order', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    const sink = await b!.rpc<string>('collector', { name: 'sink' });
    await a!.rpc('sendMany', { to: sink, count: 10_000 });
    expect(await b!.rpc('collectedUntil', { name: 'sink', count: 10_001 })).toBe(10_001);
    const got = await b!.rpc<{ n?: number; done?: boolean }[]>('collected', { name: 'sink' });
    expect(got.slice(0, 10_000).map((m) => m.n)).toEqual(Array.from({ length: 10_000 }, (_, i) => i));
    expect(got[10_000]).toEqual({ done: true });
  });

  it('messages a process sent before it crashed arrive before its exit signal', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    const watcher = await a!.rpc<string>('watcher');
    const sender = await b!.rpc<string>('sendThenExit', { to: watcher, messages: [1, 2, 3], reason: 'crash' });
    await a!.rpc('link', { pid: sender });
    await a!.rpc('monitor', { pid: sender });
    await sync(a!, b!); // the link and the monitor are in place on b
    await b!.rpc('go', { pid: sender });
    const heard = await a!.rpc<Heard[]>('heardUntil', { count: 5 });
    const seen = heard.map((h) => (h.kind === 'message' ? h.value : `${h.kind}:${h.reason}`));
    // the messages first; the Down (through the monitor manager) and the exit signal after them, in either order
    expect(seen.slice(0, 3)).toEqual([1, 2, 3]);
    expect(seen.slice(3).sort()).toEqual(['down:Error: crashed after sending', 'exit:Error: crashed after sending']);
  });

  it('call outcomes: a reply, a crash, a dead pid, a timeout', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    const server = await b!.rpc<string>('counter', { name: 'counter', start: 10 });
    expect(await a!.rpc('call', { to: server, request: { type: 'add', n: 5 } })).toEqual({ ok: true, reply: 15 });
    expect(await a!.rpc('call', { to: server, request: { type: 'hang' }, timeoutMs: 300 })).toMatchObject({ ok: false, code: 'ERR_CALL_TIMEOUT' });
    const crashed = await a!.rpc<{ ok: boolean; code: string; message: string }>('call', { to: server, request: { type: 'crash' } });
    expect([crashed.ok, crashed.code]).toEqual([false, 'ERR_CALL_EXIT']);
    expect(crashed.message).toContain('asked to crash');
    expect(await a!.rpc('call', { to: server, request: { type: 'add', n: 1 } })).toMatchObject({ ok: false, code: 'ERR_NOPROC' });
  });

  it('SIGKILL of a node: Downs and exits with noconnection, calls fail at once, detected by no responders', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    const target = await b!.rpc<string>('idler', {});
    const linked = await b!.rpc<string>('idler', {});
    const server = await b!.rpc<string>('counter', { name: 'counter' });
    await a!.rpc('monitor', { pid: target });
    await a!.rpc('link', { pid: linked });
    const call = await a!.rpc<number>('startCall', { to: server, request: { type: 'hang' }, timeoutMs: 60_000 });
    await sync(a!, b!); // b has taken the monitor, the link and the call
    await b!.kill();
    const heard = await a!.rpc<Heard[]>('heardUntil', { count: 2 });
    expect(heard.map((h) => `${h.kind}:${h.reason}`).sort()).toEqual(['down:noconnection', 'exit:noconnection']);
    const down = await a!.event((e) => e.event === 'keel.cluster.node_down');
    expect(down.metadata).toMatchObject({ node: 'b', reason: 'no_responders' });
    // the fast path: well before the heartbeat verdict (downAfterMs 2500)
    expect(down.measurements.detectionMs).toBeLessThan(2500);
    const outcome = await a!.rpc<{ done: boolean; ok: boolean; code: string; ms: number }>('callOutcome', { index: call });
    expect(outcome).toMatchObject({ done: true, ok: false, code: 'ERR_NOCONNECTION' });
    expect(outcome.ms).toBeLessThan(60_000);
    expect(await a!.rpc('leaks')).toEqual({ peers: 0, entries: 0, books: 0, outbox: 0 });
  });

  it('a frozen node (SIGSTOP) is suspected, then down by heartbeat; thawed, it answers its own ties too', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    const onB = await b!.rpc<string>('idler', {});
    const onA = await a!.rpc<string>('idler', {});
    await a!.rpc('monitor', { pid: onB });
    await b!.rpc('monitor', { pid: onA });
    await sync(a!, b!);
    await sync(b!, a!);
    b!.freeze();
    try {
      const down = await a!.event((e) => e.event === 'keel.cluster.node_down');
      expect(down.metadata).toMatchObject({ node: 'b', reason: 'heartbeat' });
      expect(down.measurements.detectionMs).toBeGreaterThanOrEqual(2500);
      expect(a!.events.some((e) => e.event === 'keel.cluster.node_suspect' && e.metadata.node === 'b')).toBe(true);
      expect((await a!.rpc<Heard[]>('heardUntil', { count: 1 })).map((h) => h.reason)).toEqual(['noconnection']);
    } finally {
      b!.thaw();
    }
    // b hears it was down to a: its monitor of a's process is answered too, then both are up anew
    expect((await b!.rpc<Heard[]>('heardUntil', { count: 1 })).map((h) => h.reason)).toEqual(['noconnection']);
    await a!.rpc('waitFor', { names: ['b'], timeoutMs: 20_000 });
    await b!.rpc('waitFor', { names: ['a'], timeoutMs: 20_000 });
    expect(await a!.rpc('leaks')).toEqual({ peers: 1, entries: 0, books: 0, outbox: 0 });
    expect(await b!.rpc('leaks')).toEqual({ peers: 1, entries: 0, books: 0, outbox: 0 });
  });

  it('a node restarted under its name is a new incarnation: the old pids are dead pids', async () => {
    const { nodes, name } = await cluster(['a', 'b']);
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const old = await b.rpc<string>('collector', { name: 'sink' });
    await b.kill();
    const reborn = await startNodeProcess(forkChild, builtKeel(), 'b', server().url, name, TIMING);
    started.push(reborn);
    expect(reborn.incarnation).not.toBe(b.incarnation);
    await reborn.rpc('waitFor', { names: ['a'], timeoutMs: 20_000 });
    const up = await a.event((e) => e.event === 'keel.cluster.node_up' && e.metadata.incarnation === reborn.incarnation);
    expect(up.metadata.node).toBe('b');
    const fresh = await reborn.rpc<string>('collector', { name: 'sink' });
    expect(fresh).not.toBe(old);
    await a.rpc('monitor', { pid: old });
    expect((await a.rpc<Heard[]>('heardUntil', { count: 1 }))[0]!.reason).toBe('noproc');
    expect(await a.rpc('whereis', { node: 'b', name: 'sink' })).toBe(fresh);
  });

  it('graceful shutdown says goodbye: peers know at once', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b']);
    await b!.rpc('shutdown');
    const down = await a!.event((e) => e.event === 'keel.cluster.node_down');
    expect(down.metadata).toMatchObject({ node: 'b', reason: 'goodbye' });
  });

  it('malformed and forged batches are dropped with an event; the node goes on', async () => {
    const { nodes, name } = await cluster(['a', 'b']);
    const [a, b] = nodes as [NodeProcess, NodeProcess];
    const sink = await a.rpc<string>('collector', { name: 'sink' });
    const nc = await connect({ servers: server().url });
    try {
      nc.publish(`keel.${name}.in.a.b`, 'not json');
      nc.publish(`keel.${name}.in.a.b`, `[1,"z",${b.incarnation},${a.incarnation},[["m",1,0,"forged"]]]`);
      nc.publish(`keel.${name}.in.a.b`, '{"__proto__":{"x":1}}');
      await nc.flush();
    } finally {
      await nc.close();
    }
    await a.event((e) => e.event === 'keel.cluster.frame_dropped' && e.metadata.reason === 'forged_sender');
    const drops = a.events.filter((e) => e.event === 'keel.cluster.frame_dropped').map((e) => e.metadata.reason);
    expect(drops).toEqual(['malformed', 'forged_sender', 'malformed']);
    await b.rpc('sendMany', { to: sink, count: 3 });
    expect(await a.rpc('collectedUntil', { name: 'sink', count: 4 })).toBe(4);
  });

  it('the nats-server killed and restarted: nodes reconnect and messages flow again', async () => {
    const {
      nodes: [a, b],
    } = await cluster(['a', 'b'], { cluster: { heartbeatMs: 100, suspectAfterMs: 400, downAfterMs: 10_000, probeTimeoutMs: 400 } });
    const sink = await b!.rpc<string>('collector', { name: 'sink' });
    await server().kill('SIGKILL');
    await server().restart();
    await a!.event((e) => e.event === 'keel.cluster.reconnected');
    await b!.event((e) => e.event === 'keel.cluster.reconnected');
    await a!.rpc('sendMany', { to: sink, count: 10 });
    expect(await b!.rpc('collectedUntil', { name: 'sink', count: 11 })).toBe(11);
  });
});
