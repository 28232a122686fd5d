import { type Context as OtelContext, type ContextManager, context as otelContext, ROOT_CONTEXT, trace, type Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { EndWaiter } from './endWaiter.js';
import { describe, expect, it } from 'vitest';
import { GenServer, isKeelError, type Node, sendSupervised } from '../../src/index.js';
import { createSignal } from '../../src/agents/Signal.js';
import { SignalRouter } from '../../src/agents/router/SignalRouter.js';
import { CoordinationManager } from '../../src/agents/coordination/CoordinationManager.js';
import { bridgeOpenTelemetry } from '../../src/telemetry/otel.js';
import type { TelemetryBus } from '../../src/telemetry/Telemetry.js';
import { type FlowTracer, isTracestate, MAX_PENDING_MESSAGES, MAX_TRACESTATE_LENGTH, MessageFlow, parseTraceparent, toTraceparent } from '../../src/telemetry/tracing.js';
import { deferred, useNodes } from '../support.js';

const track = useNodes();


function setup() {
  const exporter = new InMemorySpanExporter();
  const waiter = new EndWaiter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter), waiter] });
  let started = 0;
  const real = provider.getTracer('keel-test');
  // counts the spans made, to show that none are made when tracing is off
  const tracer = new Proxy(real, {
    get(target, key, receiver) {
      if (key === 'startSpan') {
        return (...args: Parameters<Tracer['startSpan']>) => {
          started++;
          return target.startSpan(...args);
        };
      }
      return Reflect.get(target, key, receiver) as unknown;
    },
  }) as Tracer;
  return { exporter, waiter, tracer, started: () => started };
}

/** A context manager for synchronous code (a stack), enough to show what a handler makes active. */
class StackContextManager implements ContextManager {
  #stack: OtelContext[] = [];
  active(): OtelContext {
    return this.#stack.at(-1) ?? ROOT_CONTEXT;
  }
  with<A extends unknown[], F extends (...args: A) => ReturnType<F>>(ctx: OtelContext, fn: F, thisArg?: ThisParameterType<F>, ...args: A): ReturnType<F> {
    this.#stack.push(ctx);
    try {
      return fn.call(thisArg, ...args);
    } finally {
      this.#stack.pop();
    }
  }
  bind<T>(_ctx: OtelContext, target: T): T {
    return target;
  }
  enable(): this {
    return this;
  }
  disable(): this {
    this.#stack = [];
    return this;
  }
}

const parentOf = (s: ReadableSpan): string | undefined => s.parentSpanContext?.spanId;

/** The spans of one trace as a chain, root first: [name, parent's name]; fails if it branches. */
function chain(spans: readonly ReadableSpan[], root: ReadableSpan): [string, string | undefined][] {
  const inTrace = spans.filter((s) => s.spanContext().traceId === root.spanContext().traceId);
  const out: [string, string | undefined][] = [[root.name, undefined]];
  let at = root;
  for (;;) {
    const children = inTrace.filter((s) => parentOf(s) === at.spanContext().spanId);
    if (children.length === 0) break;
    expect(children.map((c) => c.name)).toHaveLength(1);
    out.push([children[0]!.name, at.name]);
    at = children[0]!;
  }
  expect(out).toHaveLength(inTrace.length); // every span of the trace is on the chain
  return out;
}

/** publish → router → agent → supervised send → handler → call → reply. */
async function flow(node: Node) {
  const store = await GenServer.start(node, { init: () => 0, handleCall: (n: number, _f, s: number) => ({ reply: n * 2, state: s + n }) });
  const handled = deferred<number>();
  const worker = await GenServer.start(node, {
    init: () => null,
    async handleInfo(m: unknown, s: null, ctx) {
      handled.resolve((await GenServer.call(ctx, store, (m as { n: number }).n)) as number);
      return s;
    },
  });
  const agent = await GenServer.start(node, {
    init: () => null,
    async handleInfo(signal: unknown, s: null, ctx) {
      const outcome = await sendSupervised(ctx, worker, { n: (signal as { data: number }).data }, { ack: 'handled' });
      expect(outcome.ok).toBe(true);
      return s;
    },
  });
  const router = await SignalRouter.start(node);
  expect(await router.subscribe('order.*', agent)).toBe('ok');
  return { router, handled, agent, worker };
}

describe('message-flow tracing (bridgeOpenTelemetry with messageFlow)', () => {
  it('follows publish → router → agent → supervised send → handler → call → reply, each span the child of the one before', async () => {
    const node = track();
    const { exporter, waiter, tracer } = setup();
    const { router, handled } = await flow(node);
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const delivered = waiter.ended('keel.signal_router.deliver');
    expect(router.publish(createSignal({ type: 'order.created', source: '/shop', data: 21 })).ok).toBe(true);
    expect(await handled.promise).toBe(42);
    await delivered; // the last span of the flow to end: the router's delivery settles after the agent's handler
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'keel.signal_router.publish')!;
    expect(parentOf(root)).toBeUndefined();
    expect(chain(spans, root)).toEqual([
      ['keel.signal_router.publish', undefined],
      ['keel.gen_server.handle_cast', 'keel.signal_router.publish'], // the router takes the signal
      ['keel.signal_router.deliver', 'keel.gen_server.handle_cast'],
      ['keel.supervised_send', 'keel.signal_router.deliver'],
      ['keel.gen_server.handle_info', 'keel.supervised_send'], // the agent
      ['keel.supervised_send', 'keel.gen_server.handle_info'],
      ['keel.gen_server.handle_info', 'keel.supervised_send'], // the worker
      ['keel.gen_server.call', 'keel.gen_server.handle_info'],
      ['keel.gen_server.handle_call', 'keel.gen_server.call'],
      ['keel.gen_server.reply', 'keel.gen_server.handle_call'],
    ]);
    expect(spans.every((s) => s.status.code === 0)).toBe(true);
    expect(root.attributes).toEqual({ type: 'order.created', id: expect.any(String) as string });
    expect((node.telemetry as TelemetryBus).flow!.pendingMessages).toBe(0); // every stashed context was taken
  });

  it('makes no span and captures no context while no tracer is installed (also after detach)', async () => {
    const node = track();
    const { exporter, tracer, started } = setup();
    const bus = node.telemetry as TelemetryBus;
    const bridge = bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    expect(bus.flow).toBeInstanceOf(MessageFlow);
    bridge.detach();
    expect(bus.flow).toBeUndefined();
    // a bridge without messageFlow installs nothing either
    bridgeOpenTelemetry(node, { tracer, events: ['app.none'] });
    expect(bus.flow).toBeUndefined();
    const { router, handled } = await flow(node);
    router.publish(createSignal({ type: 'order.created', source: '/shop', data: 1 }));
    expect(await handled.promise).toBe(2);
    await GenServer.call(node, (await GenServer.start(node, { init: () => 0, handleCall: (_r, _f, s: number) => ({ reply: s, state: s }) })), 'x');
    expect(started()).toBe(0);
    expect(exporter.getFinishedSpans()).toEqual([]);
  });

  it('a call from outside any process is a root span; a failed call ends its span as an error', async () => {
    const node = track();
    const { exporter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const server = await GenServer.start(node, {
      init: () => 0,
      handleCall: (r: string, _f, s: number) => {
        if (r === 'boom') throw new Error('boom');
        return { reply: r.length, state: s };
      },
    });
    expect(await GenServer.call(node, server, 'abc')).toBe(3);
    const ok = exporter.getFinishedSpans();
    const call = ok.find((s) => s.name === 'keel.gen_server.call')!;
    expect(parentOf(call)).toBeUndefined();
    expect(chain(ok, call).map(([n]) => n)).toEqual(['keel.gen_server.call', 'keel.gen_server.handle_call', 'keel.gen_server.reply']);
    exporter.reset();
    await expect(GenServer.call(node, server, 'boom')).rejects.toThrow();
    const failed = exporter.getFinishedSpans();
    expect(failed.map((s) => [s.name, s.status.code])).toEqual([
      ['keel.gen_server.handle_call', 2],
      ['keel.gen_server.call', 2],
    ]);
    expect(failed.find((s) => s.name === 'keel.gen_server.handle_call')!.status.message).toBe('boom');
  });

  it('a plain send carries nothing: its handler opens no span; a cast carries its sender context', async () => {
    const node = track();
    const { exporter, waiter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const got = deferred<unknown>();
    const casted = deferred<unknown>();
    const server = await GenServer.start(node, {
      init: () => null,
      handleInfo: (m: unknown, s: null) => (got.resolve(m), s),
      handleCast: (m: unknown, s: null) => (casted.resolve(m), s),
    });
    node.send(server, 'plain');
    expect(await got.promise).toBe('plain');
    expect(exporter.getFinishedSpans()).toEqual([]);
    // a cast from the node outside any span: nothing to be a child of, so no span
    GenServer.cast(node, server, 'c1');
    expect(await casted.promise).toBe('c1');
    expect(exporter.getFinishedSpans()).toEqual([]);
    // a supervised send from the node: a root span, its handler its child, and a cast from there the child of that
    const castSpan = waiter.ended('keel.gen_server.handle_cast');
    const c2 = deferred<unknown>();
    const s3 = await GenServer.start(node, { init: () => null, handleCast: (m: unknown, s: null) => (c2.resolve(m), s) });
    const relay2 = await GenServer.start(node, { init: () => null, handleInfo: (m: unknown, s: null, ctx) => (GenServer.cast(ctx, s3, m), s) });
    expect((await sendSupervised(node, relay2, 'via', { ack: 'handled' })).ok).toBe(true);
    expect(await c2.promise).toBe('via');
    await castSpan;
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'keel.supervised_send')!;
    expect(chain(spans, root)).toEqual([
      ['keel.supervised_send', undefined],
      ['keel.gen_server.handle_info', 'keel.supervised_send'],
      ['keel.gen_server.handle_cast', 'keel.gen_server.handle_info'],
    ]);
    expect(toTraceparent(root.spanContext())).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
  });

  it('a handler that crashes ends its span as an error; a hostile message is traced without throwing', async () => {
    const node = track();
    const { exporter, tracer } = setup();
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const server = await GenServer.start(node, {
      init: () => null,
      handleInfo: (m: unknown) => {
        if (m === 'crash') throw new Error('poison');
        return null;
      },
    });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    expect((await sendSupervised(node, server, proxy, { ack: 'handled' })).ok).toBe(true);
    const outcome = await sendSupervised(node, server, 'crash', { ack: 'handled' });
    expect(outcome).toMatchObject({ ok: false, reason: 'process_down' });
    const spans = exporter.getFinishedSpans().map((s) => [s.name, s.status.code, s.status.message]);
    expect(spans).toEqual([
      ['keel.gen_server.handle_info', 0, undefined],
      ['keel.supervised_send', 0, undefined],
      ['keel.gen_server.handle_info', 2, 'poison'],
      ['keel.supervised_send', 2, 'process_down'],
    ]);
    // ctx.exit from a handler ends its process, not as a failure of the handler's span
    exporter.reset();
    const exiting = await GenServer.start(node, { init: () => null, handleInfo: (_m: unknown, _s: null, ctx) => ctx.exit('normal') });
    expect((await sendSupervised(node, exiting, 'exit', { ack: 'handled' })).ok).toBe(true);
    expect(exporter.getFinishedSpans().map((s) => [s.name, s.status.code])).toEqual([
      ['keel.gen_server.handle_info', 0],
      ['keel.supervised_send', 0],
    ]);
  });

  it('a coordinated message: coordinate call → manager → supervised send → receiver, the reply the child of the call', async () => {
    const node = track();
    const { exporter, waiter, tracer } = setup();
    const got = deferred<unknown>();
    const receiver = await GenServer.start(node, { init: () => null, handleInfo: (m: unknown, s: null) => (got.resolve(m), s) });
    const sender = await GenServer.start(node, { init: () => null });
    const cm = await CoordinationManager.start(node, { resetAfterMs: 1000 });
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const sent = waiter.ended('keel.supervised_send');
    expect(await cm.coordinate(sender, receiver, 'hello')).toMatchObject({ outcome: 'delivered' });
    expect(await got.promise).toBe('hello');
    await sent;
    const spans = exporter.getFinishedSpans();
    const call = spans.find((s) => s.name === 'keel.gen_server.call')!;
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s.name]));
    const tree = spans.filter((s) => s.spanContext().traceId === call.spanContext().traceId).map((s) => [s.name, byId.get(parentOf(s) ?? '')]).sort();
    expect(tree).toEqual([
      ['keel.gen_server.call', undefined],
      ['keel.gen_server.handle_call', 'keel.gen_server.call'],
      ['keel.gen_server.handle_info', 'keel.supervised_send'],
      ['keel.gen_server.reply', 'keel.gen_server.call'],
      ['keel.supervised_send', 'keel.gen_server.handle_call'],
    ]);
  });

  it('refuses a bad messageFlow, one without a tracer, and a second on the same node (ERR_INVALID_ARGUMENT)', () => {
    const node = track();
    const { tracer } = setup();
    const codeOf = (fn: () => unknown): boolean => {
      try {
        fn();
      } catch (e) {
        return isKeelError(e, 'ERR_INVALID_ARGUMENT');
      }
      return false;
    };
    expect(codeOf(() => bridgeOpenTelemetry(node, { tracer, messageFlow: 'yes' as never }))).toBe(true);
    expect(codeOf(() => bridgeOpenTelemetry(node, { messageFlow: true }))).toBe(true);
    const first = bridgeOpenTelemetry(node, { tracer, messageFlow: true });
    expect(codeOf(() => bridgeOpenTelemetry(node, { tracer, messageFlow: true }))).toBe(true);
    first.detach();
    bridgeOpenTelemetry(node, { tracer, messageFlow: true }).detach(); // free again
    expect((node.telemetry as TelemetryBus).flow).toBeUndefined();
  });

  it('works with any FlowTracer: a sender outside any process is given the tracer\'s active context', async () => {
    const node = track();
    const made: [string, unknown][] = [];
    const active = { id: 'outer' };
    let n = 0;
    const fake = {
      start: (name: string, parent: unknown) => {
        made.push([name, parent]);
        return { context: { id: `${name}#${++n}` }, end: () => undefined };
      },
      active: () => active,
    };
    const server = await GenServer.start(node, { init: () => 0, handleCall: (r: number, _f, s: number) => ({ reply: r, state: s }) });
    (node.telemetry as TelemetryBus).flow = new MessageFlow(fake);
    try {
      expect(await GenServer.call(node, server, 7)).toBe(7);
    } finally {
      (node.telemetry as TelemetryBus).flow = undefined;
    }
    expect(made).toEqual([
      ['keel.gen_server.call', active],
      ['keel.gen_server.handle_call', { id: 'keel.gen_server.call#1' }],
      ['keel.gen_server.reply', { id: 'keel.gen_server.handle_call#2' }],
    ]);
  });

  it('makes the handler span the active OpenTelemetry context: the user\'s own spans in a handler are its children, an outer active span the root\'s parent', async () => {
    const node = track();
    const { exporter, tracer } = setup();
    otelContext.setGlobalContextManager(new StackContextManager());
    try {
      bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
      const server = await GenServer.start(node, {
        init: () => 0,
        handleCall: (r: number, _f, s: number) => {
          tracer.startSpan('user.work').end(); // the user's own span, under the active context
          return { reply: r, state: s };
        },
      });
      const outer = tracer.startSpan('user.request');
      const reply = otelContext.with(trace.setSpan(otelContext.active(), outer), () => GenServer.call(node, server, 5));
      expect(await reply).toBe(5);
      outer.end();
    } finally {
      otelContext.disable();
    }
    const spans = exporter.getFinishedSpans();
    const root = spans.find((s) => s.name === 'user.request')!;
    const byId = new Map(spans.map((s) => [s.spanContext().spanId, s.name]));
    expect(spans.map((s) => [s.name, byId.get(parentOf(s) ?? '')]).sort()).toEqual([
      ['keel.gen_server.call', 'user.request'],
      ['keel.gen_server.handle_call', 'keel.gen_server.call'],
      ['keel.gen_server.reply', 'keel.gen_server.handle_call'],
      ['user.request', undefined],
      ['user.work', 'keel.gen_server.handle_call'],
    ]);
    expect(spans.every((s) => s.spanContext().traceId === root.spanContext().traceId)).toBe(true);
  });

  it('keeps at most MAX_PENDING_MESSAGES contexts of unhandled messages, the oldest let go first', () => {
    const ctx = { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1 };
    const f = new MessageFlow({ start: () => ({ context: ctx, end: () => undefined }), active: () => undefined });
    for (let i = 0; i <= MAX_PENDING_MESSAGES; i++) f.stash(`m${i}`, ctx);
    expect(f.pendingMessages).toBe(MAX_PENDING_MESSAGES);
    expect(f.take('m0')).toBeUndefined();
    expect(f.take(`m${MAX_PENDING_MESSAGES}`)).toBe(ctx);
    expect(f.take(`m${MAX_PENDING_MESSAGES}`)).toBeUndefined();
    expect(f.take(undefined)).toBeUndefined();
  });
});

describe('W3C trace context (what crosses nodes)', () => {
  const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
  const SPAN = '00f067aa0ba902b7';

  it('parseTraceparent reads version 00 strictly and refuses everything else without throwing', () => {
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-01`)).toEqual({ traceId: TRACE, spanId: SPAN, traceFlags: 1 });
    expect(parseTraceparent(`00-${TRACE}-${SPAN}-ff`)).toEqual({ traceId: TRACE, spanId: SPAN, traceFlags: 255 });
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const hostile: unknown[] = [
      `00-${TRACE}-${SPAN}-01-extra`, // a later version's tail is no version 00
      `00-${TRACE}-${SPAN}-01`.padEnd(1_000_000, 'a'), // huge
      `01-${TRACE}-${SPAN}-01`,
      `ff-${TRACE}-${SPAN}-01`,
      `00-${'0'.repeat(32)}-${SPAN}-01`,
      `00-${TRACE}-${'0'.repeat(16)}-01`,
      `00-${TRACE.toUpperCase()}-${SPAN}-01`,
      `00-${TRACE.replace('4', 'g')}-${SPAN}-01`,
      `00-${TRACE}-${SPAN}-1`,
      `00_${TRACE}_${SPAN}_01`,
      ` 00-${TRACE}-${SPAN}-0`,
      '', undefined, null, NaN, 0, 1n, true, Symbol('tp'), [`00-${TRACE}-${SPAN}-01`], { toString: () => `00-${TRACE}-${SPAN}-01` }, proxy,
      Object.defineProperty({}, 'length', { get: () => { throw new Error('getter'); } }),
    ];
    for (const h of hostile) expect(parseTraceparent(h)).toBeUndefined();
    expect(isTracestate('a=1,b=2')).toBe(true);
    expect(isTracestate('a'.repeat(MAX_TRACESTATE_LENGTH))).toBe(true);
    expect([isTracestate('a'.repeat(MAX_TRACESTATE_LENGTH + 1)), isTracestate('a=\n'), isTracestate('a=é'), isTracestate(42), isTracestate(proxy)]).toEqual([false, false, false, false, false]);
  });

  it('MessageFlow.inject checks what the tracer writes: nothing travels from a tracer that cannot say it, throws, or says something malformed', () => {
    const context = { traceId: TRACE, spanId: SPAN, traceFlags: 1 };
    const base = { start: () => ({ context, end: () => undefined }), active: () => undefined };
    const { proxy, revoke } = Proxy.revocable({}, {});
    revoke();
    const flowWith = (inject: NonNullable<FlowTracer['inject']>) => new MessageFlow({ ...base, inject });
    expect(new MessageFlow(base).inject(context)).toBeUndefined();
    expect(flowWith(() => ({ traceparent: `00-${TRACE}-${SPAN}-01` })).inject(undefined)).toBeUndefined();
    expect(flowWith(() => ({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'k=v' })).inject(context)).toEqual({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'k=v' });
    // a tracestate unfit to travel is left out, the traceparent goes
    expect(flowWith(() => ({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'k=v\n'.repeat(200) })).inject(context)).toEqual({ traceparent: `00-${TRACE}-${SPAN}-01` });
    expect(flowWith(() => ({ traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: '' })).inject(context)).toEqual({ traceparent: `00-${TRACE}-${SPAN}-01` });
    for (const bad of [
      () => { throw new Error('inject'); },
      () => undefined,
      () => ({ traceparent: 'nonsense' }),
      () => proxy as never,
      () => Object.defineProperty({}, 'traceparent', { get: () => { throw new Error('getter'); } }) as never,
    ]) expect(flowWith(bad).inject(context)).toBeUndefined();
  });

  it('MessageFlow.extract: a malformed traceparent or a throwing tracer is malformed, a bad tracestate is left out and reported, never a throw', () => {
    const made: unknown[] = [];
    const flow = new MessageFlow({ start: () => ({ context: {}, end: () => undefined }), active: () => undefined, extract: (c) => (made.push(c), { parsed: c.traceparent }) });
    let bad = 0;
    const onBad = (): void => void bad++;
    expect(flow.extract(`00-${TRACE}-${SPAN}-01`, undefined, onBad)).toEqual({ parsed: `00-${TRACE}-${SPAN}-01` });
    expect(flow.extract(`00-${TRACE}-${SPAN}-01`, 'a=1', onBad)).toEqual({ parsed: `00-${TRACE}-${SPAN}-01` });
    expect(flow.extract(`00-${TRACE}-${SPAN}-01`, 'a'.repeat(513), onBad)).toEqual({ parsed: `00-${TRACE}-${SPAN}-01` });
    expect(flow.extract(`00-${TRACE}-${SPAN}-01`, { length: 1 }, onBad)).toEqual({ parsed: `00-${TRACE}-${SPAN}-01` });
    expect(made).toEqual([{ traceparent: `00-${TRACE}-${SPAN}-01` }, { traceparent: `00-${TRACE}-${SPAN}-01`, tracestate: 'a=1' }, { traceparent: `00-${TRACE}-${SPAN}-01` }, { traceparent: `00-${TRACE}-${SPAN}-01` }]);
    expect(bad).toBe(2);
    expect(flow.extract(`00-${'0'.repeat(32)}-${SPAN}-01`, undefined, onBad)).toBe('malformed');
    expect(made).toHaveLength(4); // the tracer never saw it
    const throwing = new MessageFlow({ start: () => ({ context: {}, end: () => undefined }), active: () => undefined, extract: () => { throw new Error('extract'); } });
    expect(throwing.extract(`00-${TRACE}-${SPAN}-01`, undefined, onBad)).toBe('malformed');
    const blind = new MessageFlow({ start: () => ({ context: {}, end: () => undefined }), active: () => undefined });
    expect(blind.extract(`00-${TRACE}-${SPAN}-01`, undefined, onBad)).toBeUndefined(); // a tracer without extract reads nothing
  });

  it('the OpenTelemetry bridge writes a span\'s context as traceparent and tracestate, and reads them back as a remote parent', () => {
    const node = track();
    const { tracer } = setup();
    bridgeOpenTelemetry(node, { tracer, messageFlow: true, events: ['app.none'] });
    const flow = (node.telemetry as TelemetryBus).flow!;
    const parent = flow.extract(`00-${TRACE}-${SPAN}-01`, 'vendor=abc,other=1', () => undefined);
    expect(parent).toMatchObject({ traceId: TRACE, spanId: SPAN, traceFlags: 1, isRemote: true });
    const span = flow.start('child', parent as object, {});
    const carrier = flow.inject(span.context)!;
    expect(carrier.traceparent).toMatch(new RegExp(`^00-${TRACE}-[0-9a-f]{16}-01$`));
    expect(carrier.traceparent).not.toContain(SPAN);
    expect(carrier.tracestate).toBe('vendor=abc,other=1');
    span.end();
    // an invalid span context (a non-recording one of no trace) has nothing to carry
    expect(flow.inject({ traceId: '0'.repeat(32), spanId: '0'.repeat(16), traceFlags: 0 })).toBeUndefined();
  });
});
