/**
 * The observer's server-sent events: a snapshot on connect, then `overview` and `telemetry` frames
 * every sample interval, `processes` delta frames for the clients that view the processes page,
 * `job` frames for dead-letter jobs, ids `<instance>.<seq>`, `Last-Event-ID` resumed from a short
 * history (or answered with a fresh snapshot), and a keep-alive comment. The one timer runs only
 * while a client is connected; the processes page is sampled only while a client views it.
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
/**
 * The most a stream may have buffered, unsent, when a frame is due: a client that stopped reading (a
 * `keel top` suspended in its terminal, a stalled network) is dropped then, rather than the node
 * buffering every frame for it without end. It reconnects with its `Last-Event-ID` once it reads again.
 */
export const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
/** The most event streams open at once: one more is refused (503) rather than let a loop of tabs exhaust the node. */
export const MAX_CLIENTS = 64;
/** The headers of an event stream's answer (and of a HEAD of it). */
const STREAM_HEADERS: Readonly<Record<string, string>> = Object.freeze({ ...BASE_HEADERS, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });

/** What a client views: the processes page is sampled for it, with its sort, limit and filters. */
export interface View {
  readonly page: 'overview' | 'processes';
  readonly sort: string;
  readonly limit: number;
  readonly filter: string | undefined;
  readonly status: string | undefined;
}

/** The rows of a processes page, as the hub diffs them (by `pid`). */
export interface RowsPage {
  readonly total: number;
  readonly processes: readonly { readonly pid: string }[];
}

interface Client {
  readonly view: View;
  /** The rows last sent, by pid: their JSON without `ageMs` (which changes at every sample). */
  last: Map<string, string>;
}

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
  /** The processes page of a view (sampled once per distinct view and frame). */
  readonly processes: (view: View) => RowsPage;
  /** Told how many clients view the processes page, whenever it changes. */
  readonly viewers: (n: number) => void;
  /** The data of a `telemetry` frame after a sample (undefined: none). */
  readonly telemetry: () => unknown;
  readonly onError: (e: unknown) => void;
  /** Told when a stream is dropped for having more than {@link MAX_BUFFERED_BYTES} unsent (how many, what it viewed). */
  readonly dropped?: (bufferedBytes: number, view: View['page']) => void;
}

export class EventHub {
  readonly #opts: EventHubOptions;
  /** Tells a frame id of this instance from one of an earlier run (a restarted server). */
  readonly #instance = randomBytes(4).toString('hex');
  readonly #clients = new Map<ServerResponse, Client>();
  readonly #history: Frame[] = [];
  #seq = 0;
  #timer: NodeJS.Timeout | undefined;
  /** The keep-alive comments' own timer: every `keepAliveMs`, however rare the frames (`sampleMs` may be longer). */
  #keepAlive: NodeJS.Timeout | undefined;
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

  /**
   * Opens an event stream on `res` for `view`; resumes after `lastEventId` when that frame is still in
   * the history (a processes view then gets its whole page again, in a `processes` frame with `full`).
   */
  async connect(res: ServerResponse, lastEventId: string | undefined, view: View = OVERVIEW): Promise<void> {
    this.#admit();
    res.writeHead(200, STREAM_HEADERS);
    res.write('retry: 2000\n\n');
    const client: Client = { view, last: new Map() };
    this.#clients.set(res, client);
    res.on('close', () => this.#leave(res));
    if (this.#clients.size === 1) this.#start();
    if (view.page === 'processes') this.#opts.viewers(this.#viewers());
    const resumed = lastEventId === undefined ? undefined : this.#after(lastEventId);
    if (resumed !== undefined) {
      for (const f of resumed) this.#write(res, f);
      if (view.page === 'processes') this.#sendProcesses(new Map([[res, client]]));
      return;
    }
    let data: unknown;
    try {
      // the viewed page first: the snapshot's own sample of the processes, taken right after, would
      // leave it no time to measure rates against
      const page = view.page === 'processes' ? this.#opts.processes(view) : undefined;
      data = await this.#opts.snapshot();
      if (page !== undefined) {
        client.last = rowMap(page);
        data = { ...(data as object), processes: page };
      }
    } catch (e) {
      this.#opts.onError(e);
      data = { error: 'snapshot_failed' };
    }
    if (this.#clients.has(res)) this.#write(res, this.#frame('snapshot', data, false));
  }

  /** Answers a HEAD of the stream as its GET would begin (the same refusals, the stream's headers), then ends: no client joins. */
  head(res: ServerResponse): void {
    this.#admit();
    res.writeHead(200, STREAM_HEADERS);
    res.end();
  }

  /** Refuses a stream while closing, or past MAX_CLIENTS. */
  #admit(): void {
    if (this.#closed) throw new ApiError('service_unavailable', 'the observer is closing');
    if (this.#clients.size >= MAX_CLIENTS) throw new ApiError('service_unavailable', `at most ${MAX_CLIENTS} event streams may be open at once`);
  }

  /** Sends a frame of `event` to every client (kept in the history: a `job` frame, say). */
  broadcast(event: string, data: unknown): void {
    if (this.#clients.size === 0) return;
    const frame = this.#frame(event, data, true);
    for (const c of this.#clients.keys()) this.#write(c, frame);
  }

  #viewers(): number {
    let n = 0;
    for (const c of this.#clients.values()) if (c.view.page === 'processes') n++;
    return n;
  }

  /** Sends each of `clients` its `processes` delta: the rows changed since its last frame, those gone, the order, the total. */
  #sendProcesses(clients: Map<ServerResponse, Client>): void {
    const pages = new Map<string, RowsPage>();
    for (const [res, client] of clients) {
      if (client.view.page !== 'processes') continue;
      const key = JSON.stringify(client.view);
      let page = pages.get(key);
      if (page === undefined) {
        page = this.#opts.processes(client.view);
        pages.set(key, page);
      }
      const next = rowMap(page);
      const changed = page.processes.filter((r) => client.last.get(r.pid) !== next.get(r.pid));
      const removed = [...client.last.keys()].filter((pid) => !next.has(pid));
      const full = client.last.size === 0;
      client.last = next;
      this.#write(res, this.#frame('processes', { changed, removed, order: page.processes.map((r) => r.pid), total: page.total, full }, false));
    }
  }

  /**
   * Samples now and sends an `overview` frame to every client, a `telemetry` frame with the latest
   * buckets, and each processes viewer its `processes` frame; the overview frame (undefined when
   * nobody watches).
   */
  async push(): Promise<Frame | undefined> {
    if (this.#clients.size === 0) return undefined;
    const data = await this.#opts.sample();
    if (this.#clients.size === 0) return undefined;
    const frame = this.#frame('overview', data, true);
    for (const c of this.#clients.keys()) this.#write(c, frame);
    const telemetry = this.#opts.telemetry();
    if (telemetry !== undefined) {
      const t = this.#frame('telemetry', telemetry, true);
      for (const c of this.#clients.keys()) this.#write(c, t);
    }
    try {
      this.#sendProcesses(this.#clients);
    } catch (e) {
      this.#opts.onError(e);
    }
    return frame;
  }

  /** Ends every stream and stops the timer. */
  close(): void {
    this.#closed = true;
    for (const c of [...this.#clients.keys()]) c.end();
    this.#clients.clear();
    this.#opts.viewers(0);
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
    this.#timer = setInterval(() => this.#tick(), this.#opts.sampleMs);
    this.#timer.unref();
    this.#keepAlive = setInterval(() => {
      for (const c of this.#clients.keys()) this.#send(c, ': keep-alive\n\n');
    }, this.#opts.keepAliveMs);
    this.#keepAlive.unref();
  }

  #stop(): void {
    if (this.#timer === undefined) return;
    clearInterval(this.#timer);
    this.#timer = undefined;
    clearInterval(this.#keepAlive);
    this.#keepAlive = undefined;
    this.#opts.watching(false);
  }

  #write(res: ServerResponse, f: Frame): void {
    this.#send(res, `id: ${f.id}\nevent: ${f.event}\ndata: ${f.data}\n\n`);
  }

  /** Writes `text` to a stream, or drops the stream (and its client, at once) when it has {@link MAX_BUFFERED_BYTES} unsent. */
  #send(res: ServerResponse, text: string): void {
    if (res.destroyed) return;
    if (res.writableLength > MAX_BUFFERED_BYTES) {
      const bytes = res.writableLength;
      const view = this.#clients.get(res)?.view.page ?? 'overview';
      res.destroy();
      this.#leave(res);
      // counted, not silent: the operator sees a client that cannot keep up
      this.#opts.dropped?.(bytes, view);
      return;
    }
    res.write(text);
  }

  #leave(res: ServerResponse): void {
    const client = this.#clients.get(res);
    if (client === undefined) return;
    this.#clients.delete(res);
    if (client.view.page === 'processes') this.#opts.viewers(this.#viewers());
    if (this.#clients.size === 0) this.#stop();
  }

  #tick(): void {
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

const OVERVIEW: View = { page: 'overview', sort: 'mailbox', limit: 20, filter: undefined, status: undefined };

/** A page's rows by pid, each as its JSON without `ageMs`: what tells a changed row. */
function rowMap(page: RowsPage): Map<string, string> {
  const m = new Map<string, string>();
  for (const r of page.processes) m.set(r.pid, JSON.stringify({ ...r, ageMs: undefined }));
  return m;
}
