/**
 * @internal What a sender of an envelope learns about it. Exactly one of the callbacks runs, once.
 * - `handled`: the receiver's handler finished the message (for an async handler, its promise resolved);
 * - `failed`: `'crashed'` (the handler threw while handling it), `'down'` (the receiver died before
 *   handling it), `'dropped'` (evicted by `drop_oldest`), `'withdrawn'` (taken back by the sender).
 */
export interface EnvelopeListener {
  handled(): void;
  failed(reason: 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void;
}

/**
 * @internal A message that carries extra data (a message id, an acknowledgement listener). Only the
 * messages that need it are wrapped, so the plain path stays free of per-message objects.
 */
export class Envelope {
  // the brand: `#envelope in value` never runs a proxy's traps (a message may be any value)
  readonly #envelope = true;
  // declared, then assigned in the constructor: no field-definition pass per message
  declare readonly message: unknown;
  declare readonly id: string;
  declare listener: EnvelopeListener | undefined;
  declare settled: boolean;
  constructor(message: unknown, id: string, listener: EnvelopeListener | undefined) {
    (this as { message: unknown }).message = message;
    (this as { id: string }).id = id;
    this.listener = listener;
    this.settled = false;
  }
  static is(value: unknown): value is Envelope {
    return typeof value === 'object' && value !== null && #envelope in value;
  }
  settle(outcome: 'handled' | 'crashed' | 'down' | 'dropped' | 'withdrawn', error?: unknown): void {
    this.settled = true;
    const l = this.listener;
    if (l === undefined) return;
    this.listener = undefined;
    if (outcome === 'handled') l.handled();
    else l.failed(outcome, error);
  }
}
