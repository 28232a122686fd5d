/**
 * @internal Message-flow tracing across nodes: the W3C trace context (`traceparent`, and
 * `tracestate` if any) that a call, a cast or a supervised send carries to another node, written
 * only while a tracer is installed on the sending node and read strictly on the receiving one.
 */
import type { Kernel } from '../../runtime/kernel.js';
import type { MessageFlow, TraceContext } from '../../telemetry/tracing.js';

/** What carried a context (`keel.cluster.trace_context_dropped`'s `carrier`). */
export type TraceCarrierKind = 'call' | 'cast' | 'supervised';

/**
 * A frame's trailing elements for `context`: `,"<traceparent>"`, then `,"<tracestate>"` if any;
 * '' when nothing travels (the frame is then the same as an untraced one).
 */
export function traceFields(flow: MessageFlow, context: TraceContext | undefined): string {
  const carrier = flow.inject(context);
  if (carrier === undefined) return '';
  // a checked traceparent is lowercase hex and dashes: nothing to escape
  return carrier.tracestate === undefined ? `,"${carrier.traceparent}"` : `,"${carrier.traceparent}",${JSON.stringify(carrier.tracestate)}`;
}

/**
 * The context a message from the peer `from` carried, or undefined: it carried none (`traceparent`
 * undefined), or one that is malformed (then `keel.cluster.trace_context_dropped`, and it is
 * handled untraced). A `tracestate` that is not fit is left out (and evented); never throws.
 */
export function incoming(kernel: Kernel, flow: MessageFlow, traceparent: unknown, tracestate: unknown, from: string, carrier: TraceCarrierKind): TraceContext | undefined {
  if (traceparent === undefined) return undefined;
  const context = flow.extract(traceparent, tracestate, () => dropped(kernel, from, carrier, 'tracestate'));
  if (context !== 'malformed') return context;
  dropped(kernel, from, carrier, 'traceparent');
  return undefined;
}

function dropped(kernel: Kernel, from: string, carrier: TraceCarrierKind, field: 'traceparent' | 'tracestate'): void {
  kernel.telemetry.execute('keel.cluster.trace_context_dropped', { count: 1 }, { node: kernel.name, from, carrier, field, reason: 'malformed' });
}
