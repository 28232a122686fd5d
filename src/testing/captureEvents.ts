import type { Measurements, Metadata } from '../telemetry/Telemetry.js';
import type { Node } from '../runtime/types.js';

export interface CapturedEvent {
  readonly event: string;
  readonly measurements: Measurements;
  readonly metadata: Metadata;
}

let captureSeq = 0;

/**
 * Records every event of `node` whose name starts with one of `prefixes`, until `stop()`.
 *
 * @example
 * ```ts
 * const captured = captureEvents(node, ['keel.message.']);
 * node.send(deadPid, 'x');
 * captured.events[0]?.metadata.reason; // 'noproc'
 * captured.stop();
 * ```
 */
export function captureEvents(node: Node, prefixes: readonly string[]): { readonly events: CapturedEvent[]; stop(): void } {
  const id = `keel.testing.capture-${++captureSeq}`;
  const events: CapturedEvent[] = [];
  node.telemetry.attach(
    id,
    prefixes.map((p) => `${p}*`),
    (event, measurements, metadata) => {
      events.push({ event, measurements, metadata });
    },
  );
  return {
    events,
    stop: () => {
      node.telemetry.detach(id);
    },
  };
}
