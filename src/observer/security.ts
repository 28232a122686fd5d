/**
 * The observer's security checks: the token (constant-time), the Host header (DNS rebinding), the
 * Origin header (CSRF) and the session cookie. Pure functions of a request's headers.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';

/** A fresh 128-bit token, as 32 hex digits. */
export function freshToken(): string {
  return randomBytes(16).toString('hex');
}

/** Compares two strings in time independent of where they differ (both hashed to 32 bytes first). */
export function sameToken(given: string, token: string): boolean {
  const a = createHash('sha256').update(given, 'utf8').digest();
  const b = createHash('sha256').update(token, 'utf8').digest();
  return timingSafeEqual(a, b);
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]']);

/** Whether `host` is a loopback address (the default bind). */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host);
}

/** The Host header values a request may carry: the bound `host:port`, and the loopback aliases when bound to loopback. */
export function allowedHosts(host: string, port: number, extra: readonly string[]): Set<string> {
  const hosts = new Set<string>();
  const bracket = (h: string): string => (h.includes(':') && !h.startsWith('[') ? `[${h}]` : h);
  hosts.add(`${bracket(host)}:${port}`.toLowerCase());
  if (isLoopback(host)) for (const h of ['127.0.0.1', 'localhost', '[::1]']) hosts.add(`${h}:${port}`);
  for (const h of extra) hosts.add(h.toLowerCase());
  return hosts;
}

/** The request's Host header, lower-cased; undefined when missing or repeated. */
export function hostOf(req: IncomingMessage): string | undefined {
  const h = req.headers.host;
  return typeof h === 'string' && h.length > 0 && h.length <= 300 ? h.toLowerCase() : undefined;
}

/** True when the request's Origin header is absent or names one of the allowed hosts over http. */
export function originAllowed(req: IncomingMessage, hosts: ReadonlySet<string>): boolean {
  const origin = req.headers.origin;
  if (origin === undefined) return true;
  if (typeof origin !== 'string' || !origin.startsWith('http://')) return false;
  return hosts.has(origin.slice('http://'.length).toLowerCase());
}

/** The bearer token of an `Authorization` header, if any. */
export function bearerOf(req: IncomingMessage): string | undefined {
  const auth = req.headers.authorization;
  if (typeof auth !== 'string') return undefined;
  const m = /^Bearer ([\x21-\x7e]{1,512})$/.exec(auth);
  return m === null ? undefined : m[1];
}

/** The value of cookie `name` in the request, if any. */
export function cookieOf(req: IncomingMessage, name: string): string | undefined {
  const header = req.headers.cookie;
  if (typeof header !== 'string' || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq < 0) continue;
    if (part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * The cookie's value for `token`: percent-encoded, since a given token may hold `;`, `,` or `"`,
 * which end or break a cookie value (a browser would keep what comes before the `;`).
 */
export function cookieValue(token: string): string {
  return encodeURIComponent(token);
}

/** The session cookie: HttpOnly, SameSite=Strict, for the whole observer; named by port (cookies are not port-scoped). */
export function sessionCookie(name: string, token: string): string {
  return `${name}=${cookieValue(token)}; HttpOnly; SameSite=Strict; Path=/`;
}

/**
 * The ports browsers refuse to connect to (the Fetch standard's "bad ports", ports of other
 * protocols): an observer listening on one of them cannot be opened in a browser, nor by `fetch`
 * (so not by `keel top` either).
 */
const BAD_PORTS: ReadonlySet<number> = new Set([
  1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95, 101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137,
  139, 143, 161, 179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563, 587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723,
  2049, 3659, 4045, 4190, 5060, 5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
]);

/** True for a port browsers (and `fetch`) refuse to connect to. */
export function browsersRefuse(port: number): boolean {
  return BAD_PORTS.has(port);
}
