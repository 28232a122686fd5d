/**
 * The observer's server-sent events: a snapshot on connect, then `overview` frames every sample
 * interval, ids `<instance>.<seq>`, `Last-Event-ID` resumed from a short history (or answered with a
 * fresh snapshot), and a keep-alive comment. The one timer runs only while a client is connected.
 */
import { randomBytes } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import { ApiError, BASE_HEADERS, safeJson } from './http.js';

/** One frame sent to the clients. */
export interface Frame {
  readonly id: string;
  readonly event: string;
  readonly data: string;
}

const HISTORY = 64;
/** The most event streams open at once: one more is refused (503) rather than let a loop of tabs exhaust the node. */
export const MAX_CLIENTS = 64;

export interface EventHubOptions {
  /** Ms between two `overview` frames (default 1000). */
  readonly sampleMs: number;
  /** Ms between two keep-alive comments (default 15000). */
  readonly keepAliveMs: number;
  /** The data of a snapshot frame (sent on connect). */
  readonly snapshot: () => Promise<unknown>;
  /** The data of an `overview` frame. */
  readonly sample: () => Promise<unknown>;
  /** Told when the first client connects (true) and the last one leaves (false). */
  readonly watching: (on: boolean) => void;
  readonly onError: (e: unknown) => void;
}

export class EventHub {
  readonly #opts: EventHubOptions;
  /** Tells a frame id of this instance from one of an earlier run (a restarted server). */
  readonly #instance = randomBytes(4).toString('hex');
  readonly #clients = new Set<ServerResponse>();
  readonly #history: Frame[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  #ticks = 0;
  #sampling = false;
  #closed = false;

  constructor(options: EventHubOptions) {
    this.#opts = options;
  }

  get clients(): number {
    return this.#clients.size;
  }

  /** True while the sampling timer runs. */
  get active(): boolean {
    return this.#timer !== undefined;
  }

  /** Opens an event stream on `res`; resumes after `lastEventId` when that frame is still in the history. */
  async connect(res: ServerResponse, lastEventId: string | undefined): Promise<void> {
    if (this.#closed) throw new ApiError('service_unavailable', 'the observer is closing');
    if (this.#clients.size >= MAX_CLIENTS) throw new ApiError('service_unavailable', `at most ${MAX_CLIENTS} event streams may be open at once`);
    res.writeHead(200, { ...BASE_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    this.#clients.add(res);
    res.on('close', () => this.#leave(res));
    if (this.#clients.size === 1) this.#start();
    const resumed = lastEventId === undefined ? undefined : this.#after(lastEventId);
    if (resumed !== undefined) {
      for (const f of resumed) write(res, f);
      return;
    }
    let data: unknown;
    try {
      data = await this.#opts.snapshot();
    } catch (e) {
      this.#opts.onError(e);
      data = { error: 'snapshot_failed' };
    }
    if (this.#clients.has(res)) write(res, this.#frame('snapshot', data, false));
  }

  /** Samples now and sends an `overview` frame to every client; the frame (undefined when nobody watches). */
  async push(): Promise<Frame | undefined> {
    if (this.#clients.size === 0) return undefined;
    const data = await this.#opts.sample();
    if (this.#clients.size === 0) return undefined;
    const frame = this.#frame('overview', data, true);
    for (const c of this.#clients) write(c, frame);
    return frame;
  }

  /** Ends every stream and stops the timer. */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#clients]) c.end();
    this.#clients.clear();
    this.#stop();
  }

  #frame(event: string, data: unknown, keep: boolean): Frame {
    const frame = { id: `${this.#instance}.${++this.#seq}`, event, data: safeJson(data) };
    if (keep) {
      this.#history.push(frame);
      if (this.#history.length > HISTORY) this.#history.shift();
    }
    return frame;
  }

  /** The kept frames after `id`, or undefined when `id` is not one of this instance's kept frames. */
  #after(id: string): Frame[] | undefined {
    const dot = id.lastIndexOf('.');
    if (dot < 0 || id.slice(0, dot) !== this.#instance) return undefined;
    const seq = Number(id.slice(dot + 1));
    if (!Number.isSafeInteger(seq) || seq > this.#seq) return undefined;
    const first = this.#history[0];
    // the frames after `seq` must all still be kept (the frame right after it, at least)
    if (first === undefined) return seq === this.#seq ? [] : undefined;
    if (Number(first.id.slice(dot + 1)) > seq + 1) return undefined;
    return this.#history.filter((f) => Number(f.id.slice(f.id.lastIndexOf('.') + 1)) > seq);
  }

  #start(): void {
    if (this.#closed || this.#timer !== undefined) return;
    this.#opts.watching(true);
    this.#ticks = 0;
    this.#timer = setInterval(() => this.#tick(), this.#opts.sampleMs);
    this.#timer.unref();
  }

  #stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#opts.watching(false);
  }

  #leave(res: ServerResponse): void {
    this.#clients.delete(res);
    if (this.#clients.size === 0) this.#stop();
  }

  #tick(): void {
    this.#ticks++;
    if ((this.#ticks * this.#opts.sampleMs) % this.#opts.keepAliveMs < this.#opts.sampleMs) {
      for (const c of this.#clients) c.write(': keep-alive\n\n');
    }
    if (this.#sampling) return; // a slow sample is not stacked
    this.#sampling = true;
    this.push().then(
      () => (this.#sampling = false),
      (e: unknown) => {
        this.#sampling = false;
        this.#opts.onError(e);
      },
    );
  }
}

function write(res: ServerResponse, f: Frame): void {
  res.write(`id: ${f.id}\nevent: ${f.event}\ndata: ${f.data}\n\n`);
}
