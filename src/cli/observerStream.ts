// keel top's view of an observer's event stream (`GET /api/events`): the latest overview the
// observer pushed. While the stream is open the observer measures the event-loop lag, and its
// overview frames come at its own pace (`sampleMs`), so that their message rate and lag each cover
// one whole interval; top then polls only the processes.

/** The most a frame may hold before the stream is given up (a server that never ends a frame). */
export const MAX_FRAME_CHARS = 1_000_000;

/** A server-sent event: its `event` name and its `data` lines joined. */
export interface SseEvent {
  readonly event: string;
  readonly data: string;
}

/**
 * Splits server-sent event text, fed in chunks of any size, into events (comments, `id:` and
 * `retry:` ignored). `push` answers the events its chunk completed, or throws a RangeError once a
 * frame grows past `max` characters.
 */
export function sseParser(max = MAX_FRAME_CHARS): { push(chunk: string): SseEvent[] } {
  let buffer = '';
  // a CR at the end of a chunk may be the first half of a CRLF: held for the next chunk
  let heldCr = false;
  return {
    push(chunk) {
      let text = heldCr ? `\r${chunk}` : chunk;
      heldCr = text.endsWith('\r');
      if (heldCr) text = text.slice(0, -1);
      buffer += text.replace(/\r\n?/g, '\n');
      const events: SseEvent[] = [];
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith(':')) continue;
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') event = value;
          else if (field === 'data') data.push(value);
        }
        if (data.length > 0) events.push({ event, data: data.join('\n') });
      }
      if (buffer.length > max) throw new RangeError(`a server-sent event frame longer than ${max} characters`);
      return events;
    },
  };
}

/** The overview an event carries: a `snapshot`'s `overview`, an `overview`'s data; undefined for anything else. */
export function overviewOf(e: SseEvent): Record<string, unknown> | undefined {
  if (e.event !== 'snapshot' && e.event !== 'overview') return undefined;
  let value: unknown;
  try {
    value = JSON.parse(e.data);
  } catch {
    return undefined;
  }
  const overview = e.event === 'snapshot' && typeof value === 'object' && value !== null ? (value as { overview?: unknown }).overview : value;
  return typeof overview === 'object' && overview !== null && !Array.isArray(overview) ? (overview as Record<string, unknown>) : undefined;
}

/**
 * Holds the observer's event stream open until `close()` (or `stop`), keeping the latest overview
 * it pushed. A stream refused (64 watchers already), lost or malformed is no failure: `latest()`
 * then stays as it was, and top polls the overview itself.
 */
export interface OverviewWatch {
  /** The latest overview pushed, while the stream is open; undefined before the first or once it closed. */
  latest(): Record<string, unknown> | undefined;
  /** The next overview pushed (undefined if the stream ends first). */
  next(): Promise<Record<string, unknown> | undefined>;
  /** Closes the stream; resolves once it is closed. */
  close(): Promise<void>;
}

export function watchOverview(base: string, token: string, stop: AbortSignal): OverviewWatch {
  const controller = new AbortController();
  const onStop = (): void => controller.abort();
  stop.addEventListener('abort', onStop, { once: true });
  let latest: Record<string, unknown> | undefined;
  let open = true;
  const waiters: ((o: Record<string, unknown> | undefined) => void)[] = [];
  // read by hand: an abort does not always end a pending read of undici's body on Node 20, a cancel does
  let reader: ReadableStreamDefaultReader<Uint8Array> | undefined;
  const reading = (async () => {
    try {
      const res = await fetch(`${base}/api/events`, { headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' }, redirect: 'error', signal: controller.signal });
      if (controller.signal.aborted || !res.ok || res.body === null || !(res.headers.get('content-type') ?? '').startsWith('text/event-stream')) {
        await res.body?.cancel();
        return;
      }
      const parser = sseParser();
      const decoder = new TextDecoder();
      reader = res.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) return;
        for (const e of parser.push(decoder.decode(value, { stream: true }))) {
          const overview = overviewOf(e);
          if (overview === undefined) continue;
          latest = overview;
          for (const wake of waiters.splice(0)) wake(overview);
        }
      }
    } catch {
      // aborted, refused, lost or malformed: top polls the overview
    } finally {
      open = false;
      for (const wake of waiters.splice(0)) wake(undefined);
    }
  })();
  return {
    latest: () => (open ? latest : undefined),
    next: () => (open ? new Promise((resolve) => waiters.push(resolve)) : Promise.resolve(undefined)),
    close: async () => {
      stop.removeEventListener('abort', onStop);
      controller.abort();
      await reader?.cancel().catch(() => undefined);
      await reading;
    },
  };
}
