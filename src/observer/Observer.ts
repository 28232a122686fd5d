/**
 * The observer's server: `node:http` on 127.0.0.1 by default, a token for every API and event
 * stream, Host and Origin checked, read-only unless told otherwise, every action a
 * `keel.observer.action` event. See docs/observer.md.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { InvalidArgumentError, isKeelError, NodeStoppedError } from '../errors.js';
import { kernelOf } from '../runtime/kernel.js';
import { Pid, type Target } from '../runtime/Pid.js';
import type { ObserverHandle, ObserverOptions } from '../runtime/serviceSlots.js';
import type { Node } from '../runtime/types.js';
import { EventHub } from './events.js';
import { ApiError, BASE_HEADERS, enumParam, intParam, nameText, readJsonBody, sendError, sendJson, textParam } from './http.js';
import { CSP, loadAssets } from './page.js';
import { allowedHosts, bearerOf, browsersRefuse, cookieOf, cookieValue, freshToken, hostOf, originAllowed, sameToken, sessionCookie } from './security.js';
import { countDeadLetters, cursorOf, deadLetterFilter, deadLetterRow, matchingIds, MAX_PAGE_CHARS, monitorRow } from './deadLetters.js';
import { parsePid, processDetail } from './detail.js';
import { Jobs, MAX_JOBS } from './jobs.js';
import { Sampler } from './overview.js';
import { MEASURE_LEASE_MS, ProcessSampler, SORT_KEYS, STATUSES, type SortKey, type ProcessStatus } from './processes.js';
import { DEFAULT_HISTORY_EVENTS, HISTORY_SECONDS, TelemetryHistory } from './telemetryHistory.js';
import { supervisionTrees } from './tree.js';
import { listComponents, readComponents, type ComponentPage } from './components.js';
import { hideErrorTexts } from './redact.js';
import { SharedCalls } from './calls.js';

export type { ObserverHandle, ObserverOptions } from '../runtime/serviceSlots.js';

/** The most rows one `GET /api/processes` or `/api/dead-letters` answers. */
export const MAX_LIMIT = 1000;
/** The most members `GET /api/groups` lists per group (with the group's `size`): a group of 100,000 stays one small answer. */
export const MAX_GROUP_MEMBERS = 100;
const TOKEN_TEXT = /^[\x21-\x7e]{16,512}$/;

/** The HTTP server's bounds on slow requests and on connections. */
export interface ServerLimits {
  /** A request's headers and body must have arrived within this (else `408` and the connection closed). */
  readonly requestTimeoutMs: number;
  /** A request's headers must have arrived within this (at most `requestTimeoutMs`). */
  readonly headersTimeoutMs: number;
  /** How often the server looks for requests past those timeouts (Node's default is 30 s, which let a slow body live 40 s). */
  readonly checkIntervalMs: number;
  /** Connections open at once; one past it is closed as soon as it is accepted, unanswered. */
  readonly maxConnections: number;
}

/**
 * The observer's server limits. A local observer's requests are small (a body is at most 64 KiB) and
 * come from a browser or `keel top` on the same host: 10 s is ample, where Node's defaults (300 s
 * for a request, 60 s for its headers) let a client that never ends its body hold a connection for 5
 * minutes. 128 connections: 64 event streams and as many for the API (a browser keeps a few
 * connections per page open); past that, each new connection costs a file descriptor for nothing.
 */
export const SERVER_LIMITS: ServerLimits = Object.freeze({ requestTimeoutMs: 10_000, headersTimeoutMs: 10_000, checkIntervalMs: 1000, maxConnections: 128 });

interface Settings {
  port: number;
  host: string;
  token: string;
  readOnly: boolean;
  allowPayloads: boolean;
  supervisors: readonly Target[];
  allowedHosts: readonly string[];
  sampleMs: number;
  keepAliveMs: number;
  telemetryEvents: readonly string[];
}

function settings(options: ObserverOptions): Settings {
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', 'an object', options);
  let read: ObserverOptions;
  try {
    read = { ...options }; // each getter runs once, here: one that throws is a typed error
  } catch {
    throw new InvalidArgumentError('options', 'an object whose fields can be read', '(unreadable)');
  }
  const { port = 0, host = '127.0.0.1', token, readOnly = true, allowPayloads = false, supervisors = [], allowedHosts = [], sampleMs = 1000, keepAliveMs = 15_000, telemetryEvents = DEFAULT_HISTORY_EVENTS } = read;
  if (!Number.isSafeInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('port', 'an integer from 0 to 65535', port);
  if (typeof host !== 'string' || host.length === 0 || host.length > 255) throw new InvalidArgumentError('host', 'a host name or address', host);
  if (token !== undefined && (typeof token !== 'string' || !TOKEN_TEXT.test(token))) {
    throw new InvalidArgumentError('token', 'a string of 16 to 512 printable ASCII characters', '(hidden)');
  }
  if (typeof readOnly !== 'boolean') throw new InvalidArgumentError('readOnly', 'a boolean', readOnly);
  if (typeof allowPayloads !== 'boolean') throw new InvalidArgumentError('allowPayloads', 'a boolean', allowPayloads);
  if (!Array.isArray(supervisors)) throw new InvalidArgumentError('supervisors', 'an array of pids or names', supervisors);
  if (!Array.isArray(allowedHosts) || !allowedHosts.every((h) => typeof h === 'string' && h.length > 0 && h.length <= 300)) {
    throw new InvalidArgumentError('allowedHosts', 'an array of host:port strings', allowedHosts);
  }
  if (!Array.isArray(telemetryEvents) || telemetryEvents.length > 100 || !telemetryEvents.every((e) => typeof e === 'string' && e.length > 0 && e.length <= 200)) {
    throw new InvalidArgumentError('telemetryEvents', 'an array of at most 100 event names or `prefix*` patterns', telemetryEvents);
  }
  for (const [name, v] of [['sampleMs', sampleMs], ['keepAliveMs', keepAliveMs]] as const) {
    if (!Number.isSafeInteger(v) || v < 10 || v > 3_600_000) throw new InvalidArgumentError(name, 'an integer number of ms from 10 to 3,600,000', v);
  }
  return { port, host, token: token ?? freshToken(), readOnly, allowPayloads, supervisors: [...supervisors], allowedHosts: [...allowedHosts], sampleMs, keepAliveMs, telemetryEvents: [...telemetryEvents] };
}

/**
 * Starts an observer of `node`: an HTTP server with a JSON API and an event stream (see
 * docs/observer.md). It closes with the node's shutdown, or with `close()`.
 *
 * @example
 * ```ts fragment
 * const observer = await startObserver(node, { port: 0 });
 * console.log(`observer: ${observer.url}`); // the link carries the token: print it once
 * await observer.close();
 * ```
 */
export async function startObserver(node: Node, options: ObserverOptions = {}): Promise<ObserverHandle> {
  return startObserverWithLimits(node, options, SERVER_LIMITS);
}

/** @internal {@link startObserver} with other server limits: for tests, which need a timeout of milliseconds. */
export async function startObserverWithLimits(node: Node, options: ObserverOptions, limits: ServerLimits): Promise<ObserverHandle> {
  const kernel = kernelOf(node, 'node');
  const s = settings(options);
  if (kernel.stopping) throw new NodeStoppedError(node.name, 'observer');
  const sampler = new Sampler(node, { readOnly: s.readOnly, allowPayloads: s.allowPayloads });
  const assets = loadAssets();
  if (assets.html === undefined) node.logger.warn('the observer page is missing (src/observer/assets was not copied to the build): the API works, the page does not');
  const processes = new ProcessSampler(node, kernel);
  // one call in flight per process shown: a page polling a busy one queues no more than that
  const calls = new SharedCalls(kernel);
  const history = new TelemetryHistory(node, s.telemetryEvents);
  // spawn times (ages) are recorded only while someone watches: an event stream open, or an API
  // read within the last MEASURE_LEASE_MS (`keel top --json`, a script); an observer nobody
  // watches costs a spawn one check
  let closed = false;
  let streams = false;
  let readLease: NodeJS.Timeout | undefined;
  let stopSpawnTimes: (() => void) | undefined;
  const spawnTimes = (): void => {
    const on = !closed && (streams || readLease !== undefined);
    if (on && stopSpawnTimes === undefined) stopSpawnTimes = kernel.recordSpawnTimes();
    else if (!on && stopSpawnTimes !== undefined) {
      stopSpawnTimes();
      stopSpawnTimes = undefined;
    }
  };
  const touchSpawnTimes = (): void => {
    if (readLease !== undefined) clearTimeout(readLease);
    readLease = setTimeout(() => {
      readLease = undefined;
      spawnTimes();
    }, MEASURE_LEASE_MS);
    readLease.unref();
    spawnTimes();
  };
  let telemetryFrom = Date.now();
  const sample = async () => {
    const o = await sampler.overview();
    history.record(o);
    return o;
  };
  const hub: EventHub = new EventHub({
    sampleMs: s.sampleMs,
    keepAliveMs: s.keepAliveMs,
    sample,
    snapshot: async () => ({ overview: await sample(), processes: processes.page('mailbox', 20, undefined, undefined), telemetry: history.snapshot() }),
    watching: (on) => {
      sampler.watchLag(on);
      streams = on;
      spawnTimes();
    },
    processes: (v) => processes.page(v.sort as SortKey, v.limit, v.filter, v.status as ProcessStatus | undefined),
    viewers: (n) => processes.viewers(n),
    telemetry: () => {
      const from = Math.floor(telemetryFrom / 1000) * 1000;
      telemetryFrom = Date.now();
      return { buckets: history.since(from) };
    },
    onError: (e) => node.logger.error('the observer failed to sample the node', e),
    dropped: (bufferedBytes, view) => node.telemetry.execute('keel.observer.stream_dropped', { bufferedBytes }, { reason: 'slow_reader', view }),
  });
  const jobs = new Jobs(kernel, (job) => hub.broadcast('job', job));
  history.start();
  let hosts = new Set<string>();
  let cookieName = 'keel_observer';
  const server: Server = createServer({ requestTimeout: limits.requestTimeoutMs, headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs }, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (e instanceof ApiError) return sendError(res, e);
      node.logger.error('the observer failed to answer a request', e);
      sendError(res, new ApiError('internal', 'the observer failed to answer'));
    });
  });
  server.maxConnections = limits.maxConnections;

  const action = (name: string, target: string, outcome: string): void => {
    node.telemetry.execute('keel.observer.action', {}, { action: name, target, outcome });
  };

  /** Who the request is: 'bearer', 'cookie', or undefined (no valid token). */
  const authOf = (req: IncomingMessage): 'bearer' | 'cookie' | undefined => {
    const bearer = bearerOf(req);
    if (bearer !== undefined && sameToken(bearer, s.token)) return 'bearer';
    const cookie = cookieOf(req, cookieName);
    if (cookie !== undefined && sameToken(cookie, cookieValue(s.token))) return 'cookie';
    return undefined;
  };

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const host = hostOf(req);
    if (host === undefined || !hosts.has(host)) throw new ApiError('host_not_allowed', 'the Host header does not name this observer');
    const raw = req.url ?? '';
    // (a URL parser reads `/\` as `//`, an authority: refused as `//` is, never parsed into a 500)
    if (!raw.startsWith('/') || raw.startsWith('//') || raw.startsWith('/\\') || raw.length > 4096) throw new ApiError('bad_request', 'bad request target');
    let url: URL;
    try {
      url = new URL(raw, 'http://observer.invalid');
    } catch {
      throw new ApiError('bad_request', 'bad request target');
    }
    const path = url.pathname;
    const method = req.method ?? 'GET';

    // every read answers HEAD as its GET (RFC 9110 §9.3.2): the same checks, status and headers, no body
    const reading = method === 'GET' || method === 'HEAD';
    const head = method === 'HEAD';
    const asset = assets.files.get(path);
    if (asset !== undefined) {
      if (!reading) throw new ApiError('method_not_allowed', `${READ_METHODS} only`, {}, { allow: READ_METHODS });
      // the page's static files hold no data: served without the token, like any script
      res.writeHead(200, { ...BASE_HEADERS, 'content-type': asset.type, 'content-length': asset.body.length, 'content-security-policy': CSP });
      res.end(head ? undefined : asset.body);
      return;
    }
    if (path === '/') {
      if (!reading) throw new ApiError('method_not_allowed', `${READ_METHODS} only`, {}, { allow: READ_METHODS });
      const given = url.searchParams.get('token');
      if (given !== null) {
        if (!sameToken(given, s.token)) throw new ApiError('unauthorized', 'a valid token is required');
        // the token leaves the address bar (and the history) at once: a cookie carries it from now on
        res.writeHead(303, { ...BASE_HEADERS, location: '/', 'set-cookie': sessionCookie(cookieName, s.token) });
        res.end();
        return;
      }
      if (authOf(req) === undefined) throw new ApiError('unauthorized', 'a valid token is required: open the link the observer printed');
      if (assets.html === undefined) throw new ApiError('not_found', 'the observer page is missing from this build: the API works');
      res.writeHead(200, { ...BASE_HEADERS, 'content-type': 'text/html; charset=utf-8', 'content-length': assets.html.length, 'content-security-policy': CSP });
      res.end(head ? undefined : assets.html);
      return;
    }
    if (!path.startsWith('/api/')) throw new ApiError('not_found', 'no such page');
    const auth = authOf(req);
    if (auth === undefined) throw new ApiError('unauthorized', 'a valid token is required (Authorization: Bearer <token>)');
    // the actions take POST, everything else GET (and HEAD): another method is a 405 naming those it takes
    const isAction = ACTIONS.has(path.slice('/api/'.length));
    if (!isAction && !isRead(path)) throw new ApiError('not_found', 'no such API');
    if (isAction ? method !== 'POST' : !reading) {
      const allow = isAction ? 'POST' : READ_METHODS;
      throw new ApiError('method_not_allowed', `${allow} only`, {}, { allow });
    }

    if (reading) {
      // a read with another origin's Origin header is another site's script reading with the cookie
      // the browser added on its own (a server on another port of this host is same-site): refused.
      // The page's own reads carry this observer's origin, or none (a same-origin GET sends none)
      if (!originAllowed(req, hosts)) throw new ApiError('origin_not_allowed', 'the Origin header does not name this observer');
      if (path === '/api/events') {
        const last = req.headers['last-event-id'];
        const q = url.searchParams;
        const page = enumParam(q, 'view', ['overview', 'processes'] as const, 'overview')!;
        const view = {
          page,
          sort: enumParam(q, 'sort', SORT_KEYS, 'mailbox')!,
          limit: intParam(q, 'limit', page === 'processes' ? 50 : 20, 1, MAX_LIMIT),
          filter: textParam(q, 'filter'),
          status: enumParam(q, 'status', STATUSES, undefined),
        };
        // HEAD: the stream's headers, then the end; no client joins, nothing is sampled
        if (head) return hub.head(res);
        await hub.connect(res, typeof last === 'string' && last.length <= 100 ? last : undefined, view);
        return;
      }
      return sendJson(res, 200, await read(path, url.searchParams));
    }
    const name = path.slice('/api/'.length);
    // a cookie is sent by the browser on its own: a POST it carries must say where it comes from
    if (!originAllowed(req, hosts) || (auth === 'cookie' && req.headers.origin === undefined)) {
      action(name, '', 'refused_origin');
      throw new ApiError('origin_not_allowed', 'the Origin header does not name this observer');
    }
    return sendJson(res, 200, await act(name, req));
  }

  /** Errors and exit reasons carry the data a process worked on: without `allowPayloads`, only their kind. */
  const errorTexts = (value: unknown): unknown => (s.allowPayloads ? value : hideErrorTexts(value));

  async function read(path: string, q: URLSearchParams): Promise<unknown> {
    touchSpawnTimes();
    switch (path) {
      case '/api/overview':
        return sample();
      case '/api/processes': {
        const sort = enumParam(q, 'sort', SORT_KEYS, 'mailbox')!;
        const limit = intParam(q, 'limit', 50, 1, MAX_LIMIT);
        const status = enumParam(q, 'status', STATUSES, undefined);
        processes.touch();
        return processes.page(sort, limit, textParam(q, 'filter'), status);
      }
      case '/api/tree':
      case '/api/supervisors': {
        const roots: Target[] = [...s.supervisors];
        if (node.registry.whereis('keel.services') !== undefined) roots.push('keel.services');
        return errorTexts({ trees: await supervisionTrees(node, kernel, roots, 8, calls) });
      }
      case '/api/telemetry':
        return history.snapshot(intParam(q, 'window', HISTORY_SECONDS, 1, HISTORY_SECONDS));
      case '/api/registry': {
        const needle = textParam(q, 'filter')?.toLowerCase();
        const limit = intParam(q, 'limit', 100, 1, MAX_LIMIT);
        const names = node.registry
          .names()
          .filter((n) => needle === undefined || n.toLowerCase().includes(needle))
          .sort();
        const rows = [];
        for (const name of names.slice(0, limit)) {
          const pid = node.registry.whereis(name);
          if (pid !== undefined) rows.push({ name: nameText(name), pid: Pid.format(pid) });
        }
        return { names: rows, total: names.length };
      }
      case '/api/groups': {
        const limit = intParam(q, 'limit', 100, 1, MAX_LIMIT);
        const groups = node.groups.groups().sort();
        return {
          groups: groups.slice(0, limit).map((group) => {
            const members = node.groups.members(group);
            return { group: nameText(group), size: members.length, members: members.slice(0, MAX_GROUP_MEMBERS).map((p) => Pid.format(p)) };
          }),
          total: groups.length,
        };
      }
      case '/api/components':
        return { components: listComponents(node, kernel) };
      case '/api/router':
      case '/api/schedules':
      case '/api/workflows':
      case '/api/circuits':
      case '/api/agents':
      case '/api/pools':
        return errorTexts(await readComponents(node, kernel, path.slice('/api/'.length) as ComponentPage, calls));
      case '/api/dead-letters': {
        if (!node.deadLetters.available) throw new ApiError('service_unavailable', 'the node has no dead letter queue running');
        const filter = deadLetterFilter({ get: (k) => q.get(k) });
        const limit = intParam(q, 'limit', 50, 1, MAX_LIMIT);
        const cursor = textParam(q, 'cursor');
        // (a cursor that is not one is the queue's ERR_INVALID_ARGUMENT: a 400, not a failure of the observer)
        const page = await serviceCall(() => node.deadLetters.list({ ...filter, limit, ...(cursor === undefined ? {} : { cursor }) }));
        const stats = await serviceCall(() => node.deadLetters.stats());
        const shown = { chars: MAX_PAGE_CHARS }; // the page's payloads share one bound
        return { pending: stats.pending, parked: stats.parked, entries: page.entries.map((d) => deadLetterRow(d, s.allowPayloads, shown)), cursor: page.cursor ?? null };
      }
      case '/api/leaks': {
        if (!node.monitors.available) throw new ApiError('service_unavailable', 'the node has no monitor manager running');
        // (bounded as every list: 100,000 leaked monitors, each with its stack, would make an answer of hundreds of MB)
        const leaks = node.monitors.findLeaks();
        return { stats: node.monitors.stats(), leaks: leaks.slice(0, MAX_LIMIT).map(monitorRow), total: leaks.length };
      }
      default:
        if (path.startsWith('/api/process/')) {
          let text: string;
          try {
            text = decodeURIComponent(path.slice('/api/process/'.length));
          } catch {
            throw new ApiError('bad_request', 'the pid is not valid percent-encoded text', { field: 'pid' });
          }
          const detail = await processDetail(node, kernel, parsePid(text), calls);
          // (the state a redactor chose to show is shown as it is)
          return { ...detail, restarts: errorTexts(detail.restarts) };
        }
        if (path.startsWith('/api/dead-letters/jobs/')) {
          const job = jobs.get(path.slice('/api/dead-letters/jobs/'.length));
          if (job === undefined) throw new ApiError('not_found', 'no such job (finished jobs are kept for a while, then forgotten)');
          return job;
        }
        throw new ApiError('not_found', 'no such API');
    }
  }

  async function act(name: string, req: IncomingMessage): Promise<unknown> {
    let target = '';
    try {
      const body = await readJsonBody(req);
      switch (name) {
        case 'kill': {
          const pid = parsePid(body.pid);
          target = Pid.format(pid);
          if (s.readOnly) throw new ApiError('read_only', 'the observer is read-only: start it with readOnly: false to kill');
          if (node.info(pid) === undefined) throw new ApiError('not_found', 'no live process of this node has this pid');
          node.exit(pid, 'kill');
          action(name, target, 'ok');
          return { ok: true, pid: target };
        }
        case 'dead-letters/retry': {
          const ids = idsOf(body.ids);
          const filter = body.filter === undefined ? undefined : deadLetterFilter(fieldsOf(body.filter));
          if ((ids === undefined) === (filter === undefined)) throw new ApiError('bad_request', 'give either `ids` or `filter`', { field: 'ids' });
          const after = cursorOf(body.cursor, filter !== undefined);
          target = ids !== undefined ? `${ids.length} ids` : 'filter';
          if (s.readOnly) throw new ApiError('read_only', 'the observer is read-only: start it with readOnly: false to retry');
          const rate = rateOf(body.ratePerSecond);
          if (!node.deadLetters.available) throw new ApiError('service_unavailable', 'the dead letter queue is not running');
          if (rate !== undefined) {
            if (jobs.full) throw new ApiError('service_unavailable', `at most ${MAX_JOBS} dead-letter jobs may run at once`);
            // at a rate: a job, answered at once; its progress is GET /api/dead-letters/jobs/<id> and `job` frames
            // (the first MAX_JOB_ENTRIES matching; the others are counted, not held, and said: `leftOut`)
            const all = ids === undefined ? await serviceCall(() => matchingIds(node, filter!, after)) : { ids, leftOut: 0 };
            const job = jobs.start('retry', all.ids, rate, (chunk) => serviceCall(() => node.deadLetters.retry(chunk)), all.leftOut);
            action(name, target, 'ok');
            return { jobId: job.id, total: job.total, leftOut: job.leftOut, ...(job.cursor === null ? {} : { cursor: job.cursor }) };
          }
          if (after !== undefined) throw new ApiError('bad_request', '`cursor` continues a job at a rate (`ratePerSecond`)', { field: 'cursor' });
          const results = await serviceCall(() => node.deadLetters.retry(ids ?? filter!));
          action(name, target, 'ok');
          return { results, retried: results.length, succeeded: results.filter((r) => r.ok).length };
        }
        case 'dead-letters/redrive': {
          const ids = idsOf(body.ids);
          if (ids === undefined) throw new ApiError('bad_request', '`ids` is required', { field: 'ids' });
          const to = recipientOf(body.to);
          target = `${ids.length} ids`;
          if (s.readOnly) throw new ApiError('read_only', 'the observer is read-only: start it with readOnly: false to redrive');
          const rate = rateOf(body.ratePerSecond);
          if (!node.deadLetters.available) throw new ApiError('service_unavailable', 'the dead letter queue is not running');
          if (rate !== undefined) {
            const job = jobs.start('redrive', ids, rate, (chunk) => serviceCall(() => node.deadLetters.retry(chunk, { to })));
            action(name, target, 'ok');
            return { jobId: job.id, total: job.total, leftOut: job.leftOut };
          }
          const results = await serviceCall(() => node.deadLetters.retry(ids, { to }));
          action(name, target, 'ok');
          return { redriven: results.filter((r) => r.ok).length, results };
        }
        case 'dead-letters/purge': {
          const filter = deadLetterFilter(fieldsOf(body.filter ?? {}));
          target = 'filter';
          if (s.readOnly) throw new ApiError('read_only', 'the observer is read-only: start it with readOnly: false to purge');
          const count = await serviceCall(() => countDeadLetters(node, filter));
          if (body.confirm !== count) {
            action(name, target, 'confirm_mismatch');
            throw new ApiError('confirm_mismatch', 'send `confirm` with the number of entries the filter matches', { count });
          }
          const purged = await serviceCall(() => node.deadLetters.purge(filter));
          action(name, target, 'ok');
          return { purged };
        }
        default:
          throw new ApiError('not_found', 'no such action');
      }
    } catch (e) {
      if (e instanceof ApiError && e.code !== 'confirm_mismatch') action(name, target, e.code);
      else if (!(e instanceof ApiError)) action(name, target, 'failed');
      throw e;
    }
  }

  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(s.port, s.host, () => {
        server.off('error', reject);
        // a listening server emits 'error' when an accept fails (EMFILE: the process is out of file
        // descriptors): with no listener, that event would be thrown and end the node
        server.on('error', (e: unknown) => node.logger.error('the observer failed to accept a connection', e));
        resolve();
      });
    });
  } catch (e) {
    // the port is taken, say: nothing the observer switched on stays on
    history.stop();
    closed = true;
    if (readLease !== undefined) clearTimeout(readLease);
    spawnTimes();
    throw e;
  }
  const port = (server.address() as AddressInfo).port;
  if (browsersRefuse(port)) {
    kernel.log('warn', `the observer listens on port ${port}, which browsers (and fetch, so keel top) refuse to connect to, as a port of another protocol: start it on another port to open it`);
  }
  hosts = allowedHosts(s.host, port, s.allowedHosts);
  cookieName = `keel_observer_${port}`;
  const urlHost = s.host.includes(':') ? `[${s.host}]` : s.host;
  let closing: Promise<void> | undefined;
  const hook: { remove?: () => void } = {};
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      hook.remove?.();
      hub.close();
      processes.close();
      history.stop();
      jobs.close();
      closed = true;
      if (readLease !== undefined) clearTimeout(readLease);
      spawnTimes();
      sampler.watchLag(false);
      server.close(() => resolve());
      server.closeAllConnections();
    });
    return closing;
  };
  if (kernel.stopping) {
    // the node began to shut down while the server started: its hooks ran without this one
    await close();
    throw new NodeStoppedError(node.name, 'observer');
  }
  hook.remove = kernel.onShutdown(close);
  return {
    url: `http://${urlHost}:${port}/?token=${encodeURIComponent(s.token)}`,
    port,
    token: s.token,
    get clients() {
      return hub.clients;
    },
    pushFrame: async () => (await hub.push()) !== undefined,
    close,
  };
}

/** The methods every read (the page, its files, the API's GET endpoints, the event stream) takes: its `Allow`. */
const READ_METHODS = 'GET, HEAD';
/** The actions (`POST /api/<name>`). */
const ACTIONS: ReadonlySet<string> = new Set(['kill', 'dead-letters/retry', 'dead-letters/redrive', 'dead-letters/purge']);
/** The paths `GET` reads (besides a process's detail and a job's progress, by prefix). */
const READS: ReadonlySet<string> = new Set(['/api/overview', '/api/events', '/api/processes', '/api/tree', '/api/supervisors', '/api/telemetry', '/api/registry', '/api/groups', '/api/components', '/api/router', '/api/schedules', '/api/workflows', '/api/circuits', '/api/agents', '/api/pools', '/api/dead-letters', '/api/leaks']);

function isRead(path: string): boolean {
  return READS.has(path) || path.startsWith('/api/process/') || path.startsWith('/api/dead-letters/jobs/');
}

function idsOf(value: unknown): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_LIMIT || !value.every((v) => typeof v === 'string' && v.length > 0 && v.length <= 200)) {
    throw new ApiError('bad_request', `\`ids\` must be an array of 1 to ${MAX_LIMIT} entry ids`, { field: 'ids' });
  }
  return value as string[];
}

function rateOf(rate: unknown): number | undefined {
  // (from 0.001: a smaller rate's tick is too far to time, 1/5e-324 s is Infinity)
  if (rate !== undefined && (typeof rate !== 'number' || !Number.isFinite(rate) || rate < 0.001 || rate > 100_000)) {
    throw new ApiError('bad_request', '`ratePerSecond` must be a number from 0.001 to 100,000', { field: 'ratePerSecond' });
  }
  return rate;
}

/** A redrive's recipient: a pid text of this node (`<node.id.creation>`) or a registered name. */
function recipientOf(value: unknown): Target {
  if (typeof value === 'string' && value.startsWith('<')) return parsePid(value, 'to');
  if (typeof value !== 'string' || value.length === 0 || value.length > 300) {
    throw new ApiError('bad_request', '`to` must be a pid text or a registered name of 1 to 300 characters', { field: 'to' });
  }
  return value;
}

function fieldsOf(value: unknown): { get(key: string): unknown } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new ApiError('bad_request', '`filter` must be an object', { field: 'filter' });
  const obj = value as Record<string, unknown>;
  return { get: (k) => (Object.hasOwn(obj, k) ? obj[k] : undefined) };
}

async function serviceCall<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (isKeelError(e, 'ERR_SERVICE_UNAVAILABLE')) throw new ApiError('service_unavailable', 'the dead letter queue is not running');
    if (isKeelError(e, 'ERR_INVALID_ARGUMENT')) throw new ApiError('bad_request', 'the dead letter queue refused the arguments');
    throw e;
  }
}
