import { InvalidArgumentError } from '../errors.js';
import type { Measurements, Metadata, Telemetry } from '../telemetry/Telemetry.js';
import { isKernel } from '../runtime/kernel.js';
import type { Node } from '../runtime/types.js';

export interface CapturedEvent {
  readonly event: string;
  readonly measurements: Measurements;
  readonly metadata: Metadata;
}

/** How many captures each node's telemetry has had: their handler ids (per node: nothing is global). */
const captureCounts = new WeakMap<Telemetry, number>();

/** A capture of events: what it recorded, and its end. */
export interface EventCapture extends Disposable {
  readonly events: CapturedEvent[];
  /** Stops recording (detaches its handler); again, nothing. */
  stop(): void;
  /** `stop()`, for `using`: the capture ends with its block, also when an assertion in it fails. */
  [Symbol.dispose](): void;
}

/**
 * Records every event of `node` whose name starts with one of `prefixes` (at least one; `''`
 * records every event), until `stop()` (or the end of its `using` block). A prefix may end in `*`, as `telemetry.attach` patterns do
 * (`'keel.process.*'` is `'keel.process.'`).
 *
 * @example
 * ```ts
 * using captured = captureEvents(node, ['keel.message.']);
 * node.send(deadPid, 'x');
 * captured.events[0]?.metadata.reason; // 'noproc'
 * // stopped at the end of the block, whether its assertions pass or not (or call captured.stop())
 * ```
 */
export function captureEvents(node: Node, prefixes: readonly string[]): EventCapture {
  // a brand check, as probe's and expectNoLeaks's: anything else was a TypeError from reading its telemetry
  if (!isKernel(node)) throw new InvalidArgumentError('node', 'a Node', node);
  const patterns = patternsOf(prefixes);
  const seq = (captureCounts.get(node.telemetry) ?? 0) + 1;
  captureCounts.set(node.telemetry, seq);
  const id = `keel.testing.capture-${seq}`;
  const events: CapturedEvent[] = [];
  node.telemetry.attach(
    id,
    patterns,
    (event, measurements, metadata) => {
      events.push({ event, measurements, metadata });
    },
  );
  const stop = (): void => {
    node.telemetry.detach(id);
  };
  return { events, stop, [Symbol.dispose]: stop };
}

/** The telemetry patterns of `prefixes`, read once; anything but an array of strings is a typed error. */
function patternsOf(prefixes: readonly string[]): string[] {
  const fail = (): never => {
    throw new InvalidArgumentError('prefixes', 'an array of event-name prefixes (strings)', prefixes);
  };
  let copy: unknown[];
  try {
    copy = Array.isArray(prefixes) ? [...(prefixes as readonly unknown[])] : fail();
  } catch {
    return fail(); // a revoked proxy, a throwing iterator
  }
  // no prefix: a capture of nothing, under which every assertion that no event came passes
  if (copy.length === 0) throw new InvalidArgumentError('prefixes', 'an array of at least one event-name prefix (strings; \'\' records every event)', prefixes);
  // 'keel.process.*', written as telemetry.attach takes a prefix, is the prefix 'keel.process.' (not one
  // that ends in a star, which no event name does: the capture would record nothing, and pass)
  return copy.map((p) => (typeof p !== 'string' ? fail() : p.endsWith('*') ? p : `${p}*`));
}
