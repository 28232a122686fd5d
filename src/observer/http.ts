/**
 * The observer's HTTP helpers: typed API errors, JSON answers that never carry raw HTML
 * characters, bounded JSON bodies and checked query parameters.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { shortName } from '../runtime/Pid.js';

/** The codes of the observer's error answers (`{ error: { code, message } }`). */
export type ObserverErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'host_not_allowed'
  | 'origin_not_allowed'
  | 'read_only'
  | 'not_found'
  | 'method_not_allowed'
  | 'payload_too_large'
  | 'unsupported_media_type'
  | 'confirm_mismatch'
  | 'service_unavailable'
  | 'internal';

const STATUS: Record<ObserverErrorCode, number> = {
  bad_request: 400,
  unauthorized: 401,
  host_not_allowed: 403,
  origin_not_allowed: 403,
  read_only: 403,
  not_found: 404,
  method_not_allowed: 405,
  payload_too_large: 413,
  unsupported_media_type: 415,
  confirm_mismatch: 409,
  service_unavailable: 503,
  internal: 500,
};

/** An error answered as `{ error: { code, message, ...details } }`; the message is the server's own text, never the request's. */
export class ApiError extends Error {
  readonly code: ObserverErrorCode;
  readonly details: Record<string, unknown>;
  /** Headers of the answer (a 405's `Allow`). */
  readonly headers: Record<string, string>;
  constructor(code: ObserverErrorCode, message: string, details: Record<string, unknown> = {}, headers: Record<string, string> = {}) {
    super(message);
    this.code = code;
    this.details = details;
    this.headers = headers;
  }
  get status(): number {
    return STATUS[this.code];
  }
}

/** The Content-Security-Policy of every answer: nothing inline, nothing from elsewhere. */
export const CSP = "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Headers every answer carries (the JSON answers, the errors, the redirect and the event stream too). */
export const BASE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy': CSP,
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
});

/** JSON with `<`, `>`, `&` and the line separators escaped: the text of an answer holds no HTML, whatever the data. */
export function safeJson(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
    .replace(/</g, '\\u003c')
    .replace(/>/g, '\\u003e')
    .replace(/&/g, '\\u0026')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
}

/** A JSON answer; to a HEAD, its status and headers (the length of the body a GET gets) without the body. */
export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = safeJson(value);
  res.writeHead(status, { ...BASE_HEADERS, 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(body), ...headers });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

export function sendError(res: ServerResponse, e: ApiError): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  sendJson(res, e.status, { error: { code: e.code, message: e.message, ...e.details } }, e.headers);
}

const MAX_BODY = 64 * 1024;

/** Reads a JSON object body (`content-type: application/json`, at most 64 KiB); typed errors otherwise. */
export async function readJsonBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const type = req.headers['content-type'];
  if (typeof type !== 'string' || !/^application\/json\s*(;|$)/i.test(type)) {
    throw new ApiError('unsupported_media_type', 'the body must be application/json');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > MAX_BODY) throw new ApiError('payload_too_large', `the body must be at most ${MAX_BODY} bytes`);
      chunks.push(chunk as Buffer);
    }
  } catch (e) {
    if (e instanceof ApiError) throw e;
    // the client hung up before its body ended ('aborted'): its request, not a failure of the observer
    throw new ApiError('bad_request', 'the body ended before its length');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError('bad_request', 'the body is not valid JSON');
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ApiError('bad_request', 'the body must be a JSON object');
  return parsed as Record<string, unknown>;
}

/** An integer query parameter in [min, max], or `fallback` when absent; 400 otherwise. */
export function intParam(query: URLSearchParams, name: string, fallback: number, min: number, max: number): number {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!/^\d{1,9}$/.test(raw)) throw new ApiError('bad_request', `\`${name}\` must be an integer from ${min} to ${max}`, { field: name });
  const n = Number(raw);
  if (n < min || n > max) throw new ApiError('bad_request', `\`${name}\` must be an integer from ${min} to ${max}`, { field: name });
  return n;
}

/** One of `values`, or `fallback` when absent; 400 otherwise. */
export function enumParam<T extends string>(query: URLSearchParams, name: string, values: readonly T[], fallback: T | undefined): T | undefined {
  const raw = query.get(name);
  if (raw === null) return fallback;
  if (!(values as readonly string[]).includes(raw)) throw new ApiError('bad_request', `\`${name}\` must be one of ${values.join(', ')}`, { field: name });
  return raw as T;
}

/** A registered name as answers quote it (its start and length when longer than 1,000 characters); null for none. */
export function nameText(name: string | undefined): string | null {
  return name === undefined ? null : shortName(name);
}

/** A free-text parameter of at most `max` characters, or undefined; 400 when too long. */
export function textParam(query: URLSearchParams, name: string, max = 200): string | undefined {
  const raw = query.get(name);
  if (raw === null || raw === '') return undefined;
  if (raw.length > max) throw new ApiError('bad_request', `\`${name}\` must be at most ${max} characters`, { field: name });
  return raw;
}
