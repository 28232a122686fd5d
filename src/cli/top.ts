// `keel top`: an observer's figures in the terminal, refreshed in place like Erlang's etop.
// It reads the observer's JSON API over HTTP (global fetch, `Authorization: Bearer <token>`).
import { MAX_LIMIT } from '../observer/index.js';
import { Pid } from '../index.js';
import { type CommandSpec, type Io, parseWith, runCommand, UsageError, type Values } from './args.js';
import { watchOverview } from './observerStream.js';
import { stopOnSignals } from './signals.js';
import { renderFrame, clean, cleanJson, type TopSnapshot } from './topView.js';

/** The sort keys `keel top` passes on (the observer answers 400 for one it does not know, and top shows its message). */
export const TOP_SORT_KEYS = ['mailbox', 'handled', 'age', 'rate', 'busy'] as const;
export const TOP_DEFAULTS = { sort: 'mailbox', limit: 20, intervalMs: 2000 } as const;
/** How long one request may take before top gives up on the observer. */
export const TOP_REQUEST_TIMEOUT_MS = 10_000;
/** The environment variable the token may come from. */
export const TOKEN_ENV = 'KEEL_OBSERVER_TOKEN';

const options = {
  url: { type: 'string', value: '<url>', required: true, description: 'the observer\'s url, as it printed it (http://127.0.0.1:<port>/?token=...)' },
  token: { type: 'string', value: '<token>', description: `the observer's token, when the url has none (or set ${TOKEN_ENV})` },
  sort: { type: 'string', value: '<key>', choices: TOP_SORT_KEYS, description: 'sort the processes by', default: TOP_DEFAULTS.sort },
  limit: { type: 'number', value: '<n>', integer: true, min: 1, max: MAX_LIMIT, description: `show the top <n> processes, 1 to ${MAX_LIMIT}`, default: TOP_DEFAULTS.limit },
  filter: { type: 'string', value: '<text>', description: 'only processes whose pid or name contains this text (case-insensitive)' },
  pid: { type: 'string', value: '<pid>', description: "one process's detail instead of the table: its pid as the table shows it (<node.id.creation>)" },
  interval: { type: 'number', value: '<ms>', integer: true, min: 100, max: 3_600_000, expected: 'an integer number of ms from 100 to 3600000', description: 'refresh every <ms>', default: TOP_DEFAULTS.intervalMs },
  json: { type: 'boolean', description: 'print one snapshot as JSON (overview and processes, or the process detail) and exit' },
} as const satisfies CommandSpec['options'];

export const TOP_COMMAND: CommandSpec<typeof options> = {
  name: 'top',
  summary: "a running node's processes in the terminal, like etop, from its observer (keel observe prints a url)",
  synopsis: '--url <url> [--token <token>] [--sort <key>] [--limit <n>] [--filter <text>] [--pid <pid>] [--interval <ms>] [--json]',
  description: [
    'Reads an observer (node.observer(), or keel observe) over HTTP: a header with the node\'s figures',
    '(uptime, processes, run queue, event-loop lag, heap, message rate, dead letters, suspected leaks)',
    'and the top processes, refreshed every --interval until Ctrl-C. On a terminal the screen is',
    'redrawn in place; otherwise each refresh is printed after the last.',
  ].join('\n'),
  options,
  footer: [
    `token: --token, else the url's ?token=, else the environment variable ${TOKEN_ENV}.`,
    'The event-loop lag is measured by the observer only while someone watches: top holds its event',
    'stream open while it refreshes and shows the overview the observer pushes there (every second by',
    'default: its message rate and lag cover that second); with --json the lag is null.',
    '',
    'exit code: 0 after Ctrl-C, a --json snapshot, or once the reader of its output is gone (keel top |',
    'head), 1 when the observer cannot be read (unreachable, the token refused, an error answer) or',
    'stdout cannot be written, 2 on bad usage. More: docs/observer.md.',
  ].join('\n'),
};

/** `keel top`'s arguments, checked. */
export interface TopArgs {
  /** The observer's origin (`http://127.0.0.1:4000`): the API is under it. */
  readonly base: string;
  readonly token: string;
  readonly sort: string;
  readonly limit: number;
  readonly filter?: string;
  readonly pid?: string;
  readonly intervalMs: number;
  readonly json: boolean;
}

/** Where `keel top` writes its frames: a stream (process.stdout), and whether it is a terminal. */
export interface TopStream {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
  readonly rows?: number;
  /** A stream's write errors come as 'error' events (process.stdout's EPIPE once its reader is gone): top stops at one. */
  on?(event: 'error', listener: (error: Error) => void): unknown;
  off?(event: 'error', listener: (error: Error) => void): unknown;
}

/** What `keel top` runs with besides its arguments (the real process's by default). */
export interface TopEnvironment {
  /** Frames go here (default process.stdout); `io.out` gets the --json snapshot, `io.err` the errors. */
  readonly stdout?: TopStream;
  /** Default process.env (for KEEL_OBSERVER_TOKEN). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  /** Stops the refreshing (exit 0); default: SIGINT, SIGTERM or SIGHUP. */
  readonly signal?: AbortSignal;
  /** How long one request may take (default TOP_REQUEST_TIMEOUT_MS). */
  readonly requestTimeoutMs?: number;
}

const TOKEN_TEXT = /^[\x21-\x7e]{1,512}$/;

/** The url as text for a message: at most 100 characters, any token in it hidden. */
function redact(text: string): string {
  const hidden = text.replace(/([?&]token=)[^&#]*/gi, '$1(hidden)');
  return `"${clean(hidden.length > 100 ? `${hidden.slice(0, 99)}…` : hidden)}"`;
}

/** Checks the flags; the token from --token, the url or the environment. */
export function topArgs(values: Values<typeof options>, env: Readonly<Record<string, string | undefined>>): TopArgs {
  const text = values.url!;
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url must be an observer's url such as http://127.0.0.1:4000/?token=..., got ${redact(text)}`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--url must be an http:// or https:// url, got ${redact(text)}`);
  if (url.username !== '' || url.password !== '') throw new UsageError('--url must not carry a user name or password: give the token with ?token= or --token');
  const fromUrl = url.searchParams.get('token') ?? undefined;
  const fromEnv = env[TOKEN_ENV];
  const token = values.token ?? (fromUrl === '' ? undefined : fromUrl) ?? (fromEnv === '' ? undefined : fromEnv);
  if (token === undefined) throw new UsageError(`no token: give the url the observer printed (with ?token=), --token <token>, or set ${TOKEN_ENV}`);
  if (!TOKEN_TEXT.test(token)) throw new UsageError('the token must be 1 to 512 printable ASCII characters (no spaces)');
  if (values.pid !== undefined) {
    try {
      Pid.parse(values.pid);
    } catch {
      throw new UsageError(`--pid must be a pid as the table shows it, <node.id.creation>, got "${clean(values.pid.slice(0, 100))}"`);
    }
  }
  if (values.filter !== undefined && values.filter.length > 200) throw new UsageError('--filter must be at most 200 characters');
  return {
    base: url.origin,
    token,
    sort: values.sort ?? TOP_DEFAULTS.sort,
    limit: values.limit ?? TOP_DEFAULTS.limit,
    ...(values.filter === undefined ? {} : { filter: values.filter }),
    ...(values.pid === undefined ? {} : { pid: values.pid }),
    intervalMs: values.interval ?? TOP_DEFAULTS.intervalMs,
    json: values.json === true,
  };
}

/** Parses `keel top`'s flags (undefined for `--help`); bad usage throws `ERR_INVALID_ARGUMENT` naming the flag. */
export function parseTopArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): TopArgs | undefined {
  return parseWith(TOP_COMMAND, argv, (values) => topArgs(values, env));
}

/** A request's outcome: the JSON, a failure to show (one line), or aborted (top is stopping). */
type Got<T> = { ok: true; value: T } | { ok: false; message: string } | { ok: false; aborted: true };

/**
 * A signal for one request: aborted when `stop` is, or after `ms`. Its own listener and timer, both
 * gone with `done()` (no AbortSignal.any: nothing accumulates on the long-lived `stop`).
 */
function requestSignal(stop: AbortSignal, ms: number): { signal: AbortSignal; timedOut(): boolean; done(): void } {
  const controller = new AbortController();
  let timedOut = false;
  const onStop = (): void => controller.abort();
  stop.addEventListener('abort', onStop, { once: true });
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, ms);
  return {
    signal: controller.signal,
    timedOut: () => timedOut,
    done: () => {
      clearTimeout(timer);
      stop.removeEventListener('abort', onStop);
    },
  };
}

/**
 * The body of `res` as text, read by hand: on Node 20 an abort does not always end a pending read
 * of undici's body (`res.json()` then waits for undici's own 300 s body timeout, past top's request
 * timeout and past Ctrl-C); cancelling the reader does. Rejects once `signal` is aborted.
 */
async function bodyText(res: Response, signal: AbortSignal): Promise<string> {
  if (res.body === null) return '';
  const reader = res.body.getReader();
  const cancel = (): void => void reader.cancel().catch(() => undefined);
  signal.addEventListener('abort', cancel, { once: true });
  try {
    if (signal.aborted) cancel();
    const decoder = new TextDecoder();
    let text = '';
    for (;;) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw new Error('aborted');
      if (done) return text + decoder.decode();
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    signal.removeEventListener('abort', cancel);
  }
}

/** GET `path` of the observer: its JSON object, or why not, in one line. */
async function get(args: TopArgs, path: string, stop: AbortSignal, timeoutMs: number): Promise<Got<Record<string, unknown>>> {
  const where = `the observer at ${args.base}`;
  const request = requestSignal(stop, timeoutMs);
  const late = (): Got<never> | undefined =>
    stop.aborted ? { ok: false, aborted: true } : request.timedOut() ? { ok: false, message: `${where} did not answer within ${timeoutMs / 1000} s` } : undefined;
  let res: Response;
  let body: unknown;
  try {
    try {
      res = await fetch(`${args.base}${path}`, { headers: { authorization: `Bearer ${args.token}`, accept: 'application/json' }, redirect: 'error', signal: request.signal });
    } catch (e) {
      const cause = (e as { cause?: { code?: unknown; message?: unknown } }).cause;
      const why = typeof cause?.code === 'string' ? cause.code : typeof cause?.message === 'string' ? cause.message : 'no answer';
      // undici refuses the ports browsers block (6000, 6665-6669, ...) before it connects: the observer may well be running there
      if (why === 'bad port') {
        const port = new URL(args.base).port;
        return late() ?? { ok: false, message: `cannot reach ${where}: fetch refuses port ${port}, as browsers do (a port of another protocol): start the observer on another port (keel observe --port)` };
      }
      return late() ?? { ok: false, message: `cannot reach ${where} (${clean(why.slice(0, 200))}): is it running? keel observe prints its url` };
    }
    try {
      body = JSON.parse(await bodyText(res, request.signal));
    } catch {
      return late() ?? { ok: false, message: `${where} did not answer like a Keel observer (HTTP ${res.status}, ${clean((res.headers.get('content-type') ?? 'no content type').slice(0, 100))})` };
    }
  } finally {
    request.done();
  }
  const error = typeof body === 'object' && body !== null ? (body as { error?: { code?: unknown; message?: unknown } }).error : undefined;
  const object = typeof body === 'object' && body !== null && !Array.isArray(body);
  // a success whose JSON is no object (null, 42, an array) is no observer's answer, and no error answer either
  if (res.ok && !object) return { ok: false, message: `${where} did not answer like a Keel observer (HTTP ${res.status}, ${clean((res.headers.get('content-type') ?? 'no content type').slice(0, 100))})` };
  if (!res.ok || !object) {
    const code = typeof error?.code === 'string' ? clean(error.code.slice(0, 50)) : `HTTP ${res.status}`;
    const message = typeof error?.message === 'string' ? clean(error.message.slice(0, 300)) : 'an error';
    if (res.status === 401) return { ok: false, message: `${where} refused the token (401 ${code}): give the token it printed (the url's ?token=, --token or ${TOKEN_ENV})` };
    return { ok: false, message: `${where} answered ${res.status} ${code}: ${message}` };
  }
  return { ok: true, value: body as Record<string, unknown> };
}

/**
 * One snapshot: the overview and the processes (or the process), fetched together; the overview
 * is `streamed` instead when the event stream has pushed one.
 */
async function snapshot(args: TopArgs, signal: AbortSignal, timeoutMs: number, streamed?: Record<string, unknown>): Promise<Got<TopSnapshot>> {
  const query = new URLSearchParams({ sort: args.sort, limit: String(args.limit), ...(args.filter === undefined ? {} : { filter: args.filter }) });
  const second = args.pid === undefined ? `/api/processes?${query.toString()}` : `/api/process/${encodeURIComponent(args.pid)}`;
  const [overview, other] = await Promise.all([
    streamed === undefined ? get(args, '/api/overview', signal, timeoutMs) : ({ ok: true, value: streamed } as const),
    get(args, second, signal, timeoutMs),
  ]);
  if (!overview.ok) return overview;
  if (!other.ok) return other;
  return { ok: true, value: args.pid === undefined ? { overview: overview.value, processes: other.value } : { overview: overview.value, process: other.value } };
}

/**
 * Why a snapshot is no observer's, or undefined: a JSON object without an overview's `node` or a
 * list's `processes` (another server's API) was printed by --json as a snapshot (exit 0) and drawn
 * by the refreshing mode as a frame of dashes, forever.
 */
function notObserver(args: TopArgs, value: TopSnapshot): string | undefined {
  const field = (object: unknown, key: string): unknown => (object as Record<string, unknown>)[key];
  const list = 'processes' in value ? value.processes : undefined;
  const missing = typeof field(value.overview, 'node') !== 'string' ? 'overview' : args.pid === undefined && !Array.isArray(field(list, 'processes')) ? 'process list' : undefined;
  return missing === undefined ? undefined : `the observer at ${args.base} did not answer like a Keel observer (its JSON has no ${missing})`;
}

/** ANSI: cursor home, clear the screen. */
export const CLEAR = '\x1b[H\x1b[2J';

/**
 * `keel top`: one snapshot as JSON on `io.out` with --json; else a frame every --interval on
 * `environment.stdout` (redrawn in place on a terminal) until the signal. Exit code 0, 1 when the
 * observer cannot be read (one line on `io.err`), 2 on bad usage.
 */
export function runTop(argv: readonly string[], io: Io, environment: TopEnvironment = {}): number | Promise<number> {
  const env = environment.env ?? process.env;
  const timeoutMs = environment.requestTimeoutMs ?? TOP_REQUEST_TIMEOUT_MS;
  return runCommand(TOP_COMMAND, argv, io, (values) => topArgs(values, env), async (args) => {
    const fail = (message: string): number => {
      io.err(`keel top: ${message}`);
      return 1;
    };
    if (args.json) {
      const got = await snapshot(args, environment.signal ?? new AbortController().signal, timeoutMs);
      if (!got.ok) return 'aborted' in got ? 0 : fail(got.message);
      let text: string;
      try {
        text = JSON.stringify('process' in got.value ? got.value.process : got.value, null, 2);
      } catch {
        // JSON.parse takes any depth, JSON.stringify overflows the stack on one a few thousand deep
        return fail(`the observer at ${args.base} answered JSON nested too deeply to print`);
      }
      const wrong = notObserver(args, got.value);
      if (wrong !== undefined) return fail(wrong);
      io.out(cleanJson(text));
      return 0;
    }
    const stop = environment.signal === undefined ? stopOnSignals() : { signal: environment.signal, release: () => undefined };
    // top stops at the signal, or at a write error of its stream: EPIPE once its reader is gone (keel top | head)
    const out = environment.stdout ?? process.stdout;
    const halt = new AbortController();
    let writeError: Error | undefined;
    const onStop = (): void => halt.abort();
    const onWriteError = (e: Error): void => {
      writeError ??= e;
      halt.abort();
    };
    stop.signal.addEventListener('abort', onStop, { once: true });
    if (stop.signal.aborted) halt.abort();
    out.on?.('error', onWriteError);
    const ended = (): number => (writeError === undefined || (writeError as { code?: unknown }).code === 'EPIPE' ? 0 : fail(`cannot write to stdout: ${clean(writeError.message.slice(0, 200))}`));
    // the overview from the event stream once it pushed one: the observer then measures the lag
    const watching = watchOverview(args.base, args.token, halt.signal);
    try {
      const tty = out.isTTY === true;
      while (!halt.signal.aborted) {
        const got = await snapshot(args, halt.signal, timeoutMs, watching.latest());
        if (!got.ok) return 'aborted' in got ? ended() : fail(got.message);
        const wrong = notObserver(args, got.value);
        if (wrong !== undefined) return fail(wrong);
        const frame = renderFrame(got.value, tty ? out.columns : undefined);
        out.write(tty ? `${CLEAR}${fitRows(frame, out.rows)}\n` : `${frame}\n\n`);
        await pause(args.intervalMs, halt.signal);
      }
      return ended();
    } finally {
      stop.signal.removeEventListener('abort', onStop);
      out.off?.('error', onWriteError);
      stop.release();
      await watching.close();
    }
  });
}

/**
 * A frame cut to one line less than the terminal's height: a taller one would scroll its header off
 * the screen at every refresh (the default 20 processes make 27 lines, a terminal has 24).
 */
function fitRows(frame: string, rows: number | undefined): string {
  if (rows === undefined || !Number.isSafeInteger(rows) || rows < 2) return frame;
  const lines = frame.split('\n');
  return lines.length < rows ? frame : lines.slice(0, rows - 1).join('\n');
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
