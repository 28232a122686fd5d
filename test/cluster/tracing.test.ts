// Message-flow tracing across nodes: the W3C trace context that calls, casts and supervised sends
// carry in the cluster's frames (and in supervised sends' JetStream messages), so that a trace goes
// on on the receiving node. Two nodes over the in-memory network, each bridged to OpenTelemetry with
// its own tracer provider and in-memory exporter; supervised sends across them go through a
// nats-server with JetStream started for this file.
import { connect } from '@nats-io/transport-node';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { EndWaiter } from '../telemetry/endWaiter.js';
import { describe, expect, it } from 'vitest';
import { Cluster } from '../../src/cluster/Cluster.js';
import { SupervisedDelivery } from '../../src/cluster/supervised/index.js';
import { encodeSend } from '../../src/cluster/supervised/wire.js';
import { MemoryNetwork } from '../../src/cluster/transports/memory.js';
import type { Transport } from '../../src/cluster/Transport.js';
import { sendSupervised } from '../../src/delivery/sendSupervised.js';
import { type From, GenServer } from '../../src/otp/GenServer.js';
import type { Pid } from '../../src/runtime/Pid.js';
import type { Node } from '../../src/runtime/types.js';
import { bridgeOpenTelemetry } from '../../src/telemetry/otel.js';
import type { TelemetryBus } from '../../src/telemetry/Telemetry.js';
import { MessageFlow, toTraceparent } from '../../src/telemetry/tracing.js';
import { captureEvents } from '../../src/testing/index.js';
import { deferred, type TrackNode, useNodes } from '../support.js';
import { useNatsServer, skipWithoutNats } from './natsServer.js';

const nats = useNatsServer({ jetstream: true });
const track = useNodes();


/** `node` bridged to OpenTelemetry with message-flow tracing, to a provider and exporter of its own. */
function traced(node: Node) {
  const exporter = new InMemorySpanExporter();
  const waiter = new EndWaiter();
  const tracer = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), waiter] }).getTracer(`keel-${node.name}`);
  const bridge = bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
  return { exporter, waiter, bridge, flow: () => (node.telemetry as TelemetryBus).flow! };
}

/**
 * Two nodes, `a` and `b`, over an in-memory network; a's transport is tapped: `sent` holds every
 * batch a sent to b, and `inject(frame)` sends b a batch of one raw frame as a would.
 */
/** `inner`, with every batch it sends also pushed onto `sent`. */
function tapped(inner: Transport, sent: string[]): Transport {
  return {
    kind: 'memory',
    get maxBatchSize() {
      return inner.maxBatchSize;
    },
    start: (self, handler) => inner.start(self, handler),
    send: (peer, batch) => {
      sent.push(batch);
      inner.send(peer, batch);
    },
    broadcast: (batch) => inner.broadcast(batch),
    probe: (peer, timeoutMs) => inner.probe(peer, timeoutMs),
    flush: () => inner.flush(),
    close: () => inner.close(),
  };
}

async function tappedPair(trackNode: TrackNode) {
  const net = new MemoryNetwork();
  const a = trackNode({ name: 'a' });
  const b = trackNode({ name: 'b' });
  const inner = net.transport();
  const sent: string[] = [];
  const transport = tapped(inner, sent);
  const ca = await Cluster.join(a, { transport });
  const cb = await Cluster.join(b, { transport: net.transport() });
  await ca.waitFor(['b']);
  await cb.waitFor(['a']);
  const inject = (frame: string): void => inner.send('b', `[1,"a",${a.creation},${b.creation},[${frame}]]`);
  /** The frames of a's batches to b (a's hellos and heartbeats left out), as JSON text. */
  const frames = (): string[] =>
    sent
      .flatMap((batch) => (JSON.parse(batch) as unknown[][])[4]!)
      .filter((f) => !['h', 'b', '!', '!!'].includes((f as unknown[])[0] as string))
      .map((f) => JSON.stringify(f));
  return { a, b, ca, cb, sent, inject, frames };
}

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

/** The spans of one trace as a chain, root first: [name, parent's name, node]; fails if it branches or leaves a span out. */
function chain(spans: readonly ReadableSpan[], root: ReadableSpan, nodeOf: (s: ReadableSpan) => string): [string, string | undefined, string][] {
  const inTrace = spans.filter((s) => s.spanContext().traceId === root.spanContext().traceId);
  const out: [string, string | undefined, string][] = [[root.name, undefined, nodeOf(root)]];
  let at = root;
  for (;;) {
    const children = inTrace.filter((s) => parentOf(s) === at.spanContext().spanId);
    if (children.length === 0) break;
    expect(children.map((c) => c.name)).toHaveLength(1);
    out.push([children[0]!.name, at.name, nodeOf(children[0]!)]);
    at = children[0]!;
  }
  expect(out).toHaveLength(inTrace.length);
  return out;
}

let clusters = 0;

describe.skipIf(skipWithoutNats)('message-flow tracing across nodes', () => {
  it('a call from a to a server on b, which sends supervised to a server on a that replies by a cast: one trace, each handler the child of its sender', async () => {
    const { a, b, ca, cb } = await tappedPair(track);
    const cluster = `trace${++clusters}`;
    const sa = await SupervisedDelivery.start(a, { cluster, servers: nats().url, attach: ca, ackWaitMs: 2000 });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 2000 });
    const ta = traced(a);
    const tb = traced(b);
    // on a: answers each request it is sent by a cast back to the process that asked
    const echo = await GenServer.start(a, {
      init: () => null,
      handleInfo: (m: unknown, s: null, ctx) => {
        const { text, replyTo } = m as { text: string; replyTo: Pid };
        GenServer.cast(ctx, replyTo, { answer: `${text}!` });
        return s;
      },
    });
    // on b: takes the call, asks the echo on a with a supervised send, replies when the answer comes back
    const relay = await GenServer.start(b, {
      init: () => [] as From[],
      handleCall: (text: string, from: From, waiting: From[], ctx) => {
        void sendSupervised(ctx, echo, { text, replyTo: ctx.self }, { ack: 'handled' });
        return { noreply: true, state: [...waiting, from] };
      },
      handleCast: (m: { answer: string }, waiting: From[]) => {
        GenServer.reply(waiting[0]!, m.answer);
        return waiting.slice(1);
      },
    });
    const sentDone = tb.waiter.ended('keel.supervised_send');
    expect(await GenServer.call(a, relay, 'ping')).toBe('ping!');
    await sentDone; // b's supervised send ends when a's handler has finished and a has acked it
    const fromA = ta.exporter.getFinishedSpans();
    const fromB = tb.exporter.getFinishedSpans();
    const nodeOf = (s: ReadableSpan): string => (fromA.includes(s) ? 'a' : 'b');
    const root = fromA.find((s) => s.name === 'keel.gen_server.call')!;
    expect(parentOf(root)).toBeUndefined();
    expect(chain([...fromA, ...fromB], root, nodeOf)).toEqual([
      ['keel.gen_server.call', undefined, 'a'],
      ['keel.gen_server.handle_call', 'keel.gen_server.call', 'b'],
      ['keel.supervised_send', 'keel.gen_server.handle_call', 'b'],
      ['keel.gen_server.handle_info', 'keel.supervised_send', 'a'],
      ['keel.gen_server.handle_cast', 'keel.gen_server.handle_info', 'b'],
      ['keel.gen_server.reply', 'keel.gen_server.handle_cast', 'b'],
    ]);
    expect([...fromA, ...fromB].every((s) => s.status.code === 0)).toBe(true);
    // a remote parent is marked so on the receiving node
    expect(fromB.find((s) => s.name === 'keel.gen_server.handle_call')!.parentSpanContext?.isRemote).toBe(true);
    expect(root.attributes).toEqual({ server: String(relay) });
    expect([ta.flow().pendingMessages, tb.flow().pendingMessages]).toEqual([0, 0]); // every stashed context was taken
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);

  it('a call and a cast carry the traceparent of their sender span in the frame: exactly the span\'s ids', async () => {
    const { a, b, frames } = await tappedPair(track);
    const ta = traced(a);
    traced(b);
    const casted = deferred<unknown>();
    const server = await GenServer.start(b, {
      init: () => 0,
      handleCall: (r: number, _f, s: number) => ({ reply: r + 1, state: s }),
      handleCast: (r: unknown, s: number) => (casted.resolve(r), s),
    });
    expect(await GenServer.call(a, server, 41, 5000)).toBe(42);
    const call = ta.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.call')!;
    // a cast from a traced handler on a: the handler's span travels
    const sender = await GenServer.start(a, { init: () => null, handleCall: (m: string, _f, s: null, ctx) => (GenServer.cast(ctx, server, m), { reply: 'ok', state: s }) });
    const outer = ta.waiter.ended('keel.gen_server.handle_call');
    await GenServer.call(a, sender, 'c1');
    await outer;
    expect(await casted.promise).toBe('c1');
    const handler = ta.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.handle_call')!;
    const id = server.id;
    expect(frames()).toEqual([
      `["c",1,0,${id},41,5000,"${toTraceparent(call.spanContext())}"]`,
      `["k",${id},${sender.id},"c1","${toTraceparent(handler.spanContext())}"]`,
    ]);
    expect(toTraceparent(call.spanContext())).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('a remote call that fails ends the caller\'s span as an error, and the server\'s handler span too', async () => {
    const { a, b } = await tappedPair(track);
    const ta = traced(a);
    const tb = traced(b);
    const server = await GenServer.start(b, {
      init: () => null,
      handleCall: (r: string) => {
        throw new Error(`boom ${r}`);
      },
    });
    const handlerDone = tb.waiter.ended('keel.gen_server.handle_call');
    await expect(GenServer.call(a, server, 'x', 5000)).rejects.toMatchObject({ code: 'ERR_CALL_EXIT' });
    await handlerDone;
    const call = ta.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.call')!;
    const handler = tb.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.handle_call')!;
    expect([call.status.code, handler.status.code, handler.status.message]).toEqual([2, 2, 'boom x']);
    expect(parentOf(handler)).toBe(call.spanContext().spanId);
    expect(tb.exporter.getFinishedSpans().map((s) => s.name)).toEqual(['keel.gen_server.handle_call']); // no second call span, no reply
  });

  it('an untraced sender puts no trace field in its frames, and a traced receiver handles them without a remote parent', async () => {
    const { a, b, frames } = await tappedPair(track);
    const tb = traced(b);
    const casted = deferred<unknown>();
    const server = await GenServer.start(b, {
      init: () => 0,
      handleCall: (r: number, _f, s: number) => ({ reply: r * 2, state: s }),
      handleCast: (r: unknown, s: number) => (casted.resolve(r), s),
    });
    expect(await GenServer.call(a, server, 4, 5000)).toBe(8);
    GenServer.cast(a, server, 'hi');
    expect(await casted.promise).toBe('hi');
    expect(frames()).toEqual([`["c",1,0,${server.id},4,5000]`, `["k",${server.id},0,"hi"]`]);
    // b traces its own side as a call from its node: a root span there, the same as a local call from outside any process
    const spans = tb.exporter.getFinishedSpans();
    expect(spans.map((s) => [s.name, s.parentSpanContext?.isRemote ?? false])).toEqual([
      ['keel.gen_server.reply', false],
      ['keel.gen_server.call', false],
      ['keel.gen_server.handle_call', false],
    ]);
    expect(spans.find((s) => s.name === 'keel.gen_server.call')!.parentSpanContext).toBeUndefined();
    // a node tracing with a FlowTracer that cannot write contexts (no inject) sends untraced frames too
    const made: string[] = [];
    (a.telemetry as TelemetryBus).flow = new MessageFlow({ start: (name) => (made.push(name), { context: { name }, end: () => undefined }), active: () => undefined });
    try {
      expect(await GenServer.call(a, server, 5, 5000)).toBe(10);
    } finally {
      (a.telemetry as TelemetryBus).flow = undefined;
    }
    expect(made).toEqual(['keel.gen_server.call']);
    expect(frames().at(-1)).toBe(`["c",2,0,${server.id},5,5000]`);
  });

  it('GenServer.cast to a pid of another node: handled there; to a dead pid, dropped with noproc on the receiving node', async () => {
    const { a, b } = await tappedPair(track);
    const casted = deferred<unknown>();
    const server = await GenServer.start(b, { init: () => null, handleCast: (r: unknown, s: null) => (casted.resolve(r), s) });
    GenServer.cast(a, server, { n: 1, at: new Date(5) });
    expect(await casted.promise).toEqual({ n: 1, at: new Date(5) });
    const dead = b.spawn(() => () => undefined);
    b.exit(dead, 'kill');
    const dropped = captureEvents(b, ['keel.message.dropped']);
    const seen = new Promise<void>((resolve) => b.telemetry.attach('seen', ['keel.message.dropped'], () => resolve()));
    GenServer.cast(a, dead, 'lost');
    await seen;
    expect(dropped.events.map((e) => [e.metadata.reason, String(e.metadata.to)])).toEqual([['noproc', String(dead)]]);
    dropped.stop();
    b.telemetry.detach('seen');
  });

  it('a hostile traceparent in a call or cast frame is ignored: the message is handled untraced, the field counted, nothing throws', async () => {
    const { b, inject } = await tappedPair(track);
    const tb = traced(b);
    const got: unknown[] = [];
    let all!: () => void;
    const done = new Promise<void>((resolve) => (all = resolve));
    const hostile: unknown[] = [
      `00-${'a'.repeat(32)}-${'b'.repeat(16)}-01${'x'.repeat(10_000)}`, // too long
      `01-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, // another version
      `ff-${'a'.repeat(32)}-${'b'.repeat(16)}-01`, // the forbidden version
      `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01`, // all-zero trace id
      `00-${'a'.repeat(32)}-${'0'.repeat(16)}-01`, // all-zero span id
      `00-${'g'.repeat(32)}-${'b'.repeat(16)}-01`, // not hex
      `00-${'A'.repeat(32)}-${'B'.repeat(16)}-01`, // uppercase
      `00-${'a'.repeat(31)}-${'b'.repeat(17)}-01`, // the dashes elsewhere
      '',
      42,
      null,
      ['00', 'a'],
      { traceparent: 'x', __proto__: null },
      { $keel: 'date', v: 0 }, // a tag: revived as a Date, still no traceparent
    ];
    const server = await GenServer.start(b, {
      init: () => 0,
      handleCast: (r: number, s: number) => {
        got.push(r);
        if (got.length === hostile.length * 2) all();
        return s;
      },
      handleCall: (r: number, _f, s: number) => {
        got.push(r);
        if (got.length === hostile.length * 2) all();
        return { reply: r, state: s };
      },
    });
    const events = captureEvents(b, ['keel.cluster.trace_context_dropped', 'keel.cluster.frame_dropped']);
    hostile.forEach((tp, i) => {
      inject(`["k",${server.id},0,${i},${JSON.stringify(tp)}]`);
      inject(`["c",${1000 + i},0,${server.id},${100 + i},5000,${JSON.stringify(tp)},"vendor=x"]`);
    });
    await done;
    expect(got.filter((n) => (n as number) < 100)).toEqual(hostile.map((_, i) => i));
    expect(got.filter((n) => (n as number) >= 100)).toEqual(hostile.map((_, i) => 100 + i));
    const dropped = events.events.filter((e) => e.event === 'keel.cluster.trace_context_dropped');
    expect(dropped).toHaveLength(hostile.length * 2);
    expect(dropped[0]!.metadata).toEqual({ node: 'b', from: 'a', carrier: 'cast', field: 'traceparent', reason: 'malformed' });
    expect(dropped[1]!.metadata).toEqual({ node: 'b', from: 'a', carrier: 'call', field: 'traceparent', reason: 'malformed' });
    expect(events.events.filter((e) => e.event === 'keel.cluster.frame_dropped')).toEqual([]);
    // no span on b took a hostile id for a parent: the casts opened none, the calls are b's own roots
    const spans = tb.exporter.getFinishedSpans();
    expect(spans.filter((s) => s.name === 'keel.gen_server.handle_cast')).toEqual([]);
    expect(spans.filter((s) => s.name === 'keel.gen_server.call' && s.parentSpanContext === undefined)).toHaveLength(hostile.length);
    expect(spans.every((s) => s.parentSpanContext?.isRemote !== true)).toBe(true);
    events.stop();
  });

  it('a valid traceparent with a tracestate: the handler continues that trace and keeps the vendors\' state; a hostile tracestate alone is dropped; an unsampled one records nothing', async () => {
    const { b, inject } = await tappedPair(track);
    const tb = traced(b);
    const seen = deferred<void>();
    let count = 0;
    const server = await GenServer.start(b, { init: () => null, handleCast: (_r: unknown, s: null) => (++count === 3 && seen.resolve(), s) });
    const events = captureEvents(b, ['keel.cluster.trace_context_dropped']);
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    inject(`["k",${server.id},0,1,"00-${traceId}-00f067aa0ba902b7-01","vendor=abc,other=1"]`);
    inject(`["k",${server.id},0,2,"00-${traceId}-00f067aa0ba902b8-01",${JSON.stringify('v=' + 'x'.repeat(600))}]`);
    inject(`["k",${server.id},0,3,"00-${traceId}-00f067aa0ba902b9-00"]`); // not sampled: the handler's span does not record
    await seen.promise;
    expect(tb.exporter.getFinishedSpans()).toHaveLength(2);
    const [first, second] = tb.exporter.getFinishedSpans();
    expect(first!.spanContext().traceId).toBe(traceId);
    expect(first!.parentSpanContext).toMatchObject({ traceId, spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true });
    expect(first!.spanContext().traceState?.serialize()).toBe('vendor=abc,other=1');
    expect(second!.parentSpanContext).toMatchObject({ traceId, spanId: '00f067aa0ba902b8', traceFlags: 1, isRemote: true });
    expect(second!.spanContext().traceState).toBeUndefined();
    expect(events.events.map((e) => e.metadata.field)).toEqual(['tracestate']);
    events.stop();
  });

  it('a frame as large as the cluster lets a value be, with the longest trace context, still fits in a batch', async () => {
    // both nodes on a network whose batches are small, b's batches tapped
    const net = new MemoryNetwork({ maxBatchSize: 4096 });
    const a = track({ name: 'a' });
    const b = track({ name: 'b' });
    const sent: string[] = [];
    const ofA = net.transport();
    const ca = await Cluster.join(a, { transport: ofA });
    const cb = await Cluster.join(b, { transport: tapped(net.transport(), sent) });
    await ca.waitFor(['b']);
    await cb.waitFor(['a']);
    traced(b);
    const got = deferred<string>();
    const sink = await GenServer.start(a, { init: () => null, handleCast: (r: string, s: null) => (got.resolve(r), s) });
    let limit = 0;
    try {
      GenServer.cast(b, sink, 'x'.repeat(10_000));
    } catch (e) {
      limit = (e as { limit: number }).limit;
    }
    expect(limit).toBeGreaterThan(0);
    const largest = 'x'.repeat(limit - 2); // a string encodes with its two quotes: exactly the limit
    // b's handler runs under a remote parent with the longest tracestate Keel carries (4 x 125 + 3 = 503 characters)
    const tracestate = ['k0', 'k1', 'k2', 'k3'].map((k) => `${k}=${'a'.repeat(122)}`).join(',');
    const relay = await GenServer.start(b, { init: () => null, handleCast: (_r: unknown, s: null, ctx) => (GenServer.cast(ctx, sink, largest), s) });
    ofA.send('b', `[1,"a",${a.creation},${b.creation},[["k",${relay.id},0,"go","00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",${JSON.stringify(tracestate)}]]]`);
    expect(await got.promise).toBe(largest);
    const frame = sent.find((batch) => batch.includes(largest))!;
    expect(frame).toContain(JSON.stringify(tracestate)); // the context travelled with it
    expect(frame.length).toBeLessThanOrEqual(4096);
  });

  it('a supervised send carries the traceparent only from a traced sender; a hostile one in the stream is handled untraced', async () => {
    const { a, b, ca, cb } = await tappedPair(track);
    const cluster = `trace${++clusters}`;
    const sa = await SupervisedDelivery.start(a, { cluster, servers: nats().url, attach: ca, ackWaitMs: 2000 });
    const sb = await SupervisedDelivery.start(b, { cluster, servers: nats().url, attach: cb, ackWaitMs: 2000 });
    const tb = traced(b);
    const handled: unknown[] = [];
    const server = await GenServer.start(b, { init: () => null, handleInfo: (m: unknown, s: null) => (handled.push(m), s) });
    // what a publishes on b's supervised subject, read by a plain subscriber
    const nc = await connect({ servers: nats().url });
    const payloads: string[] = [];
    nc.subscribe(`keel.${cluster}.sup.b`, { callback: (_e, m) => void payloads.push(m.string()) });
    await nc.flush();
    expect(await sendSupervised(a, server, 'untraced', { ack: 'handled', id: 'u-1' })).toMatchObject({ ok: true });
    const ta = traced(a);
    expect(await sendSupervised(a, server, 'traced', { ack: 'handled', id: 't-1' })).toMatchObject({ ok: true });
    const send = ta.exporter.getFinishedSpans().find((s) => s.name === 'keel.supervised_send')!;
    await nc.flush();
    const heads = payloads.map((p) => JSON.parse(p) as Record<string, unknown>);
    expect(heads.map((h) => [h.id, 'tp' in h, 'ts' in h])).toEqual([['u-1', false, false], ['t-1', true, false]]);
    expect(payloads[0]).not.toContain('"tp"');
    expect(heads[1]!.tp).toBe(toTraceparent(send.spanContext()));
    expect(ta.flow().pendingMessages).toBe(0); // the sender's context left with the message
    const handler = tb.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.handle_info')!;
    expect(handler.parentSpanContext).toMatchObject({ traceId: send.spanContext().traceId, spanId: send.spanContext().spanId, isRemote: true });
    // SupervisedDelivery.send to a name on another node: its own span, whose context travels the same way
    b.registry.register('named', server);
    tb.exporter.reset();
    const named = ta.waiter.ended('keel.supervised_send');
    expect(await sa.send(a, { node: 'b', name: 'named' }, 'by name', { ack: 'handled', id: 'n-1' })).toMatchObject({ ok: true });
    await named;
    const byName = ta.exporter.getFinishedSpans().find((s) => s.attributes.id === 'n-1')!;
    expect([byName.name, byName.attributes.to]).toEqual(['keel.supervised_send', 'named@b']);
    expect(parentOf(tb.exporter.getFinishedSpans().find((s) => s.name === 'keel.gen_server.handle_info')!)).toBe(byName.spanContext().spanId);
    // a hostile traceparent published straight to the stream: handled, untraced, counted
    const events = captureEvents(b, ['keel.cluster.trace_context_dropped', 'keel.cluster.supervised_dropped']);
    tb.exporter.reset();
    const reply = '_INBOX.keel.x.mallory.sup.1';
    const replied = new Promise<unknown>((resolve) => nc.subscribe(reply, { callback: (_e, m) => resolve(m.json()) }));
    await nc.flush();
    const { jetstream } = await import('@nats-io/jetstream');
    const head = { id: 'h-1', to: { pid: [server.creation, server.id] as const }, ack: 'handled' as const, timeout: 5000, attempts: 1, retryOnCrash: false, backoff: { initialMs: 1, factor: 2, maxMs: 1, jitter: 'none' as const }, expires: 0, reply };
    await jetstream(nc).publish(`keel.${cluster}.sup.b`, encodeSend(head, 'hostile', 10_000, { traceparent: `00-${'0'.repeat(32)}-${'b'.repeat(16)}-01` }));
    expect(await replied).toEqual({ t: 'f', ok: true, n: 1 });
    expect(handled).toEqual(['untraced', 'traced', 'by name', 'hostile']);
    expect(events.events.map((e) => [e.event, e.metadata])).toEqual([
      ['keel.cluster.trace_context_dropped', { node: 'b', from: 'mallory', carrier: 'supervised', field: 'traceparent', reason: 'malformed' }],
    ]);
    expect(tb.exporter.getFinishedSpans()).toEqual([]); // a handler opens a span only for a message that carried a context
    expect(tb.flow().pendingMessages).toBe(0);
    events.stop();
    await nc.close();
    await Promise.all([sa.close(), sb.close()]);
  }, 30_000);
});
