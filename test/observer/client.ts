// HTTP helpers for the observer tests: raw requests (any Host, Origin, method, body) and an
// event-stream reader whose frames are awaited, never slept for.
import http from 'node:http';

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: any;
}

export interface RequestOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: string | object;
  host?: string;
}

/** One request to 127.0.0.1:`port`; `host` overrides the Host header (default `127.0.0.1:<port>`). */
export function request(port: number, options: RequestOptions = {}): Promise<Answer> {
  const body = options.body === undefined ? undefined : typeof options.body === 'string' ? options.body : JSON.stringify(options.body);
  const headers: Record<string, string> = { host: options.host ?? `127.0.0.1:${port}`, ...options.headers };
  if (body !== undefined && headers['content-type'] === undefined) headers['content-type'] = 'application/json';
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: options.method ?? 'GET', path: options.path ?? '/', headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: unknown;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export function bearer(token: string): Record<string, string> {
  return { authorization: `Bearer ${token}` };
}

export interface SseFrame {
  id?: string;
  event?: string;
  data?: string;
  comment?: string;
}

/** An open event stream: frames in order; `next` awaits the next frame not yet taken that matches. */
export interface Stream {
  status: number;
  headers: http.IncomingHttpHeaders;
  frames: SseFrame[];
  next(predicate?: (f: SseFrame) => boolean): Promise<SseFrame>;
  close(): Promise<void>;
}

export function openStream(port: number, headers: Record<string, string>, path = '/api/events'): Promise<Stream> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, headers: { host: `127.0.0.1:${port}`, ...headers }, agent: false }, (res) => {
      const frames: SseFrame[] = [];
      let taken = 0;
      let waiter: { predicate: (f: SseFrame) => boolean; resolve: (f: SseFrame) => void } | undefined;
      let buffer = '';
      const closed = new Promise<void>((r) => res.on('close', () => r()));
      const offer = (): void => {
        if (waiter === undefined) return;
        while (taken < frames.length) {
          const f = frames[taken++]!;
          if (waiter.predicate(f)) {
            const w = waiter;
            waiter = undefined;
            w.resolve(f);
            return;
          }
        }
      };
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const f: SseFrame = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) f.comment = line.slice(1).trim();
            else {
              const colon = line.indexOf(':');
              const key = line.slice(0, colon);
              const value = line.slice(colon + 1).replace(/^ /, '');
              if (key === 'id' || key === 'event' || key === 'data') f[key] = value;
            }
          }
          frames.push(f);
        }
        offer();
      });
      resolve({
        status: res.statusCode ?? 0,
        headers: res.headers,
        frames,
        next: (predicate = (f) => f.event !== undefined) =>
          new Promise((r) => {
            waiter = { predicate, resolve: r };
            offer();
          }),
        close: () => {
          req.destroy();
          return closed;
        },
      });
    });
    req.on('error', reject);
  });
}
