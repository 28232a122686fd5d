import { execFile } from 'node:child_process';
import { EventEmitter } from 'node:events';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { usageOf } from '../../src/cli/args.js';
import { runKeel } from '../../src/cli/main.js';
import { CLEAR, parseTopArgs, runTop, TOKEN_ENV, TOP_COMMAND, type TopEnvironment } from '../../src/cli/top.js';
import { Pid, startObserver, type Node } from '../../src/index.js';
import { useBuiltPackage } from '../childProcesses.js';
import { expectKeelError, heldProcess, thrown, useNodes } from '../support.js';

const track = useNodes();

/** Runs `keel top …` in this process: exit code, what went to `io.out` and `io.err`, and the frames written. */
async function top(argv: string[], environment: TopEnvironment = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runTop(argv, { out: (t) => out.push(t), err: (t) => err.push(t) }, { env: {}, ...environment });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

/** A node with a process named 'flooded' busy on its first message while five more wait in its mailbox. */
async function floodedNode(): Promise<{ node: Node; pid: Pid; release: () => Promise<void> }> {
  const node = track({ name: 'top-test' });
  const { pid, release } = await heldProcess(node, 'flooded', 5);
  return {
    node,
    pid,
    release: async () => {
      release();
      await node.idle();
    },
  };
}

/** A plain HTTP server answering every request with `status`, `type` and `body`; closed after `fn`. */
async function withServer(status: number, type: string, body: string, fn: (base: string) => Promise<void>): Promise<void> {
  return withHandler((_req, res) => {
    res.writeHead(status, { 'content-type': type });
    res.end(body);
  }, fn);
}

/** A plain HTTP server running `handler` on 127.0.0.1 (a free port); closed after `fn`. */
async function withHandler(handler: http.RequestListener, fn: (base: string) => Promise<void>): Promise<void> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await fn(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

describe('keel top --json', () => {
  it('prints the overview and the top processes with their exact figures', async () => {
    const { node, pid, release } = await floodedNode();
    const obs = await startObserver(node);
    try {
      const r = await top(['--url', obs.url, '--json', '--limit', '1']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      const snap = JSON.parse(r.out) as { overview: Record<string, unknown>; processes: { total: number; sort: string; limit: number; processes: unknown[] } };
      expect(snap.overview).toMatchObject({
        node: 'top-test',
        processes: node.processes().length,
        runQueue: 0,
        eventLoopLagMs: null, // nobody watches the event stream: the lag is not measured
        messageRate: null, // the observer's first overview
        deadLetters: { pending: 0, parked: 0 },
        suspectedLeaks: 0,
      });
      expect(snap.processes).toMatchObject({ total: node.processes().length, sort: 'mailbox', limit: 1 });
      expect(snap.processes.processes).toHaveLength(1);
      expect(snap.processes.processes[0]).toMatchObject({ pid: Pid.format(pid), name: 'flooded', status: 'busy', mailbox: 5, handled: 1, longMailbox: false });
    } finally {
      await release();
      await obs.close();
    }
  });

  it('--pid prints that process detail alone; the token may come from --token or KEEL_OBSERVER_TOKEN instead of the url', async () => {
    const { node, pid, release } = await floodedNode();
    const obs = await startObserver(node);
    const bare = `http://127.0.0.1:${obs.port}`;
    try {
      const fromFlag = await top(['--url', bare, '--token', obs.token, '--pid', Pid.format(pid), '--json']);
      const fromEnv = await top(['--url', `${bare}/`, '--pid', Pid.format(pid), '--json'], { env: { [TOKEN_ENV]: obs.token } });
      expect(fromFlag.code).toBe(0);
      // the same answer either way (but its age, which runs on between the two)
      const ageless = (r: typeof fromFlag) => ({ ...r, out: JSON.stringify({ ...(JSON.parse(r.out) as object), ageMs: 0 }) });
      expect(typeof (JSON.parse(fromEnv.out) as { ageMs: unknown }).ageMs).toBe('number');
      expect(ageless(fromEnv)).toEqual(ageless(fromFlag));
      expect(JSON.parse(fromFlag.out)).toMatchObject({
        pid: Pid.format(pid),
        name: 'flooded',
        status: 'busy',
        mailbox: 5,
        handled: 1,
        links: [],
        monitors: [],
        monitoredBy: [],
        trapExits: false,
        timers: 0,
        longMailbox: false,
        state: null,
      });
      // --token wins over the url's token and the environment's
      const wrong = await top(['--url', `${bare}/?token=${'w'.repeat(32)}`, '--token', obs.token, '--json'], { env: { [TOKEN_ENV]: 'x'.repeat(32) } });
      expect(wrong.code).toBe(0);
    } finally {
      await release();
      await obs.close();
    }
  });

  it('a pid no process has is the observer\'s 404 in one line (exit 1)', async () => {
    const node = track({ name: 'top-test' });
    const obs = await startObserver(node);
    try {
      expect(await top(['--url', obs.url, '--pid', '<top-test.999999.1>', '--json'])).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at http://127.0.0.1:${obs.port} answered 404 not_found: no live process of this node has this pid`,
      });
    } finally {
      await obs.close();
    }
  });

  it('passes --sort on: rate and busy reach the observer, which sorts by them or says why not (400) in one line', async () => {
    const node = track({ name: 'top-test' });
    const obs = await startObserver(node);
    try {
      for (const sort of ['rate', 'busy', 'age', 'handled']) {
        const r = await top(['--url', obs.url, '--sort', sort, '--json']);
        if (r.code === 0) {
          expect((JSON.parse(r.out) as { processes: { sort: string } }).processes.sort, sort).toBe(sort);
        } else {
          // an observer that does not sort by it yet answers 400 naming the field: top shows that
          expect(r, sort).toEqual({ code: 1, out: '', err: expect.stringMatching(new RegExp(`^keel top: the observer at http://127\\.0\\.0\\.1:${obs.port} answered 400 bad_request: \`sort\` must be one of [^\\n]+$`)) });
          expect(['rate', 'busy']).toContain(sort);
        }
      }
    } finally {
      await obs.close();
    }
  });
});

describe('keel top: failures are one line, never a stack', () => {
  it('a refused token is exit 1 and says where the token comes from', async () => {
    const node = track({ name: 'top-test' });
    const obs = await startObserver(node);
    try {
      const r = await top(['--url', `http://127.0.0.1:${obs.port}/?token=${'0'.repeat(32)}`, '--json']);
      expect(r).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at http://127.0.0.1:${obs.port} refused the token (401 unauthorized): give the token it printed (the url's ?token=, --token or ${TOKEN_ENV})`,
      });
    } finally {
      await obs.close();
    }
  });

  it('an observer nobody answers at is exit 1, in the refresh mode too', async () => {
    // a port that was just free: nothing listens there now
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    await new Promise((resolve) => server.close(resolve));
    const url = `http://127.0.0.1:${port}/?token=${'a'.repeat(32)}`;
    const expected = { code: 1, out: '', err: `keel top: cannot reach the observer at http://127.0.0.1:${port} (ECONNREFUSED): is it running? keel observe prints its url` };
    expect(await top(['--url', url, '--json'])).toEqual(expected);
    const frames: string[] = [];
    expect(await top(['--url', url], { stdout: { write: (t: string) => frames.push(t) }, signal: new AbortController().signal })).toEqual(expected);
    expect(frames).toEqual([]);
  });

  it("an observer on a port fetch refuses (6000, which browsers block too) is told as that, not as one that may not be running", async () => {
    const url = `http://127.0.0.1:6000/?token=${'a'.repeat(32)}`;
    expect(await top(['--url', url, '--json'])).toEqual({
      code: 1,
      out: '',
      err: 'keel top: cannot reach the observer at http://127.0.0.1:6000: fetch refuses port 6000, as browsers do (a port of another protocol): start the observer on another port (keel observe --port)',
    });
  });

  it('a server that is not an observer, or answers control characters, is one clean line', async () => {
    await withServer(200, 'text/html', '<html></html>', async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'])).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} did not answer like a Keel observer (HTTP 200, text/html)`,
      });
    });
    const hostile = JSON.stringify({ error: { code: 'x\u001b[2J', message: '\u001b]0;owned\u0007 \u202etxt' } });
    await withServer(500, 'application/json', hostile, async (base) => {
      const r = await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json']);
      expect(r).toEqual({ code: 1, out: '', err: `keel top: the observer at ${base} answered 500 x\\x1b[2J: \\x1b]0;owned\\x07 \\u202etxt` });
    });
  });
});

describe('keel top --json with JSON no observer sends', () => {
  it('JSON nested deeper than JSON.stringify can print is one line (exit 1), not a RangeError with its stack', async () => {
    const deep = `{"processes":${'['.repeat(100_000)}${']'.repeat(100_000)}}`;
    await withServer(200, 'application/json', deep, async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'])).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} answered JSON nested too deeply to print`,
      });
    });
  });

  it('a 200 whose JSON is not an object is a server that does not answer like an observer, not an error answer', async () => {
    await withServer(200, 'application/json', 'null', async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'])).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} did not answer like a Keel observer (HTTP 200, application/json)`,
      });
    });
  });
});

describe('keel top with a JSON API that is not an observer', () => {
  // --json printed it as a snapshot (exit 0); the refreshing mode drew a frame of dashes, forever
  it('is one line, exit 1, in --json and in the refreshing mode', async () => {
    await withServer(200, 'application/json', '{"status":"ok"}', async (base) => {
      const url = `${base}/?token=${'a'.repeat(32)}`;
      const err = `keel top: the observer at ${base} did not answer like a Keel observer (its JSON has no overview)`;
      expect(await top(['--url', url, '--json'])).toEqual({ code: 1, out: '', err });
      const frames: string[] = [];
      expect(await top(['--url', url], { stdout: { write: (t: string) => frames.push(t) }, signal: new AbortController().signal })).toEqual({ code: 1, out: '', err });
      expect(frames).toEqual([]);
    });
    await withServer(200, 'application/json', '{"node":"app"}', async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'])).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} did not answer like a Keel observer (its JSON has no process list)`,
      });
    });
  });
});

describe('keel top --json with control characters in what the observer sends', () => {
  it('prints them escaped (JSON.stringify leaves C1 controls, DEL and bidirectional overrides raw), and the JSON still parses back to what was sent', async () => {
    const body = { node: 'n\u009b2J', processes: [{ pid: '<n.1.2>', name: '\u001b]0;x\u0007\u009b31m\u007f\u202e\u2028', mailbox: 0 }], total: 1, sort: 'mailbox', limit: 20 };
    await withServer(200, 'application/json', JSON.stringify(body), async (base) => {
      const r = await top(['--url', `${base}/?token=secret-token-123`, '--json']);
      expect(r.err).toBe('');
      expect(r.code).toBe(0);
      expect(r.out).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/);
      expect(r.out).toContain('"name": "\\u001b]0;x\\u0007\\u009b31m\\u007f\\u202e\\u2028"');
      expect(JSON.parse(r.out)).toEqual({ overview: body, processes: body });
    });
  });
});

describe('keel top: an observer that never answers', () => {
  it('is given up after the request timeout: one line, exit 1', async () => {
    // takes every request, answers none
    await withHandler(() => undefined, async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'], { requestTimeoutMs: 50 })).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} did not answer within 0.05 s`,
      });
    });
  });

  it('is given up after the request timeout when the body never ends', async () => {
    const neverEnds: http.RequestListener = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"node":'); // and never the rest
    };
    await withHandler(neverEnds, async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`, '--json'], { requestTimeoutMs: 50 })).toEqual({
        code: 1,
        out: '',
        err: `keel top: the observer at ${base} did not answer within 0.05 s`,
      });
    });
  });

  it('stops at once, exit 0, when stopped while a request waits', async () => {
    const stop = new AbortController();
    const frames: string[] = [];
    // stopped while top waits for the answer
    await withHandler(() => stop.abort(), async (base) => {
      expect(await top(['--url', `${base}/?token=${'a'.repeat(32)}`], { stdout: { write: (t: string) => frames.push(t) }, signal: stop.signal })).toEqual({ code: 0, out: '', err: '' });
      expect(frames).toEqual([]);
    });
  });
});

describe('keel top (built, in a plain Node process) on an observer whose body never ends', () => {
  const builtKeel = useBuiltPackage();

  // under vitest the read ends at the abort; in a plain `node` (the CLI) res.json() waited for
  // undici's own 300 s body timeout, past the request timeout and past Ctrl-C
  it('is given up after the request timeout: one line, exit 1, instead of a hang', async () => {
    const neverEnds: http.RequestListener = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '100' });
      res.write('{"node":'); // and never the rest
    };
    await withHandler(neverEnds, async (base) => {
      const top = new URL('cli/top.js', builtKeel()).href;
      const script = [
        `const { runTop } = await import(${JSON.stringify(top)});`,
        `const code = await runTop(['--url', ${JSON.stringify(`${base}/?token=${'a'.repeat(32)}`)}, '--json'], { out: (t) => console.log(t), err: (t) => console.error(t) }, { env: {}, requestTimeoutMs: 300 });`,
        'process.exitCode = code;',
      ].join('\n');
      // the bound of a hang: the test fails with the child killed, it does not wait 300 s
      const ended = await new Promise<{ code: number | null; killed: boolean; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, ['--input-type=module', '-e', script], { timeout: 20_000 }, (_e, stdout, stderr) => resolve({ code: child.exitCode, killed: child.killed, stdout, stderr }));
      });
      expect(ended).toEqual({ code: 1, killed: false, stdout: '', stderr: `keel top: the observer at ${base} did not answer within 0.3 s\n` });
    });
  }, 30_000);
});

describe('keel top: bad usage is a typed error and exit 2', () => {
  const token = 'a'.repeat(32);
  const url = `http://127.0.0.1:4000/?token=${token}`;
  const cases: [string[], string][] = [
    [['--limit', '-1'], 'expected `--limit` to be an integer from 1 to 1000, got -1'],
    [['--limit', '0'], 'expected `--limit` to be an integer from 1 to 1000, got 0'],
    [['--limit', '1e9'], 'expected `--limit` to be an integer from 1 to 1000, got 1000000000'],
    [['--limit', '2.5'], 'expected `--limit` to be an integer from 1 to 1000, got 2.5'],
    [['--interval', 'NaN'], '--interval must be a number, got "NaN"'],
    [['--interval', '1e400'], 'expected `--interval` to be an integer number of ms from 100 to 3600000, got "1e400"'],
    [['--interval', '99'], 'expected `--interval` to be an integer number of ms from 100 to 3600000, got 99'],
    [['--interval', '99999999999999999999'], 'expected `--interval` to be an integer number of ms from 100 to 3600000, got 100000000000000000000'],
    [['--sort', 'memory'], 'expected `--sort` to be \'mailbox\' | \'handled\' | \'age\' | \'rate\' | \'busy\', got "memory"'],
    [['--pid', 'worker-1'], '--pid must be a pid as the table shows it, <node.id.creation>, got "worker-1"'],
    [['--pid', '<a.b.c>\u001b[2J'], '--pid must be a pid as the table shows it, <node.id.creation>, got "<a.b.c>\\x1b[2J"'],
  ];

  it('refuses bad values, naming the flag', async () => {
    for (const [argv, message] of cases) {
      expectKeelError(thrown(() => parseTopArgs(['--url', url, ...argv])), 'ERR_INVALID_ARGUMENT', message);
      expect(await top(['--url', url, ...argv]), argv.join(' ')).toEqual({ code: 2, out: '', err: `keel top: ${message}` });
    }
  });

  it('refuses a bad url without echoing its token, and a missing token', async () => {
    const urls: [string[], Record<string, string>, string][] = [
      [['--url', `not a url?token=${token}`], {}, '--url must be an observer\'s url such as http://127.0.0.1:4000/?token=..., got "not a url?token=(hidden)"'],
      [['--url', `ftp://127.0.0.1:4000/?token=${token}`], {}, '--url must be an http:// or https:// url, got "ftp://127.0.0.1:4000/?token=(hidden)"'],
      [['--url', `http://me:${token}@127.0.0.1:4000/`], {}, '--url must not carry a user name or password: give the token with ?token= or --token'],
      [['--url', 'http://127.0.0.1:4000/'], {}, `no token: give the url the observer printed (with ?token=), --token <token>, or set ${TOKEN_ENV}`],
      [['--url', 'http://127.0.0.1:4000/?token='], { [TOKEN_ENV]: '' }, `no token: give the url the observer printed (with ?token=), --token <token>, or set ${TOKEN_ENV}`],
      [['--url', 'http://127.0.0.1:4000/', '--token', 'has space'], {}, 'the token must be 1 to 512 printable ASCII characters (no spaces)'],
      [['--url', 'http://127.0.0.1:4000/'], { [TOKEN_ENV]: 't'.repeat(513) }, 'the token must be 1 to 512 printable ASCII characters (no spaces)'],
      [[], {}, "--url <url> is missing: the observer's url, as it printed it (http://127.0.0.1:<port>/?token=...)"],
    ];
    for (const [argv, env, message] of urls) {
      expectKeelError(thrown(() => parseTopArgs(argv, env)), 'ERR_INVALID_ARGUMENT', message);
      const r = await top(argv, { env });
      expect(r, argv.join(' ')).toEqual({ code: 2, out: '', err: `keel top: ${message}` });
      expect(r.err).not.toContain(token);
    }
  });

  it('keel top --help and keel help top print its usage; keel help lists it', async () => {
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(`err: ${t}`) };
    expect(await runKeel(['top', '--help'], io)).toBe(0);
    expect(await runKeel(['help', 'top'], io)).toBe(0);
    expect(await runKeel(['help'], io)).toBe(0);
    expect(out[0]).toBe(usageOf(TOP_COMMAND));
    expect(out[1]).toBe(usageOf(TOP_COMMAND));
    expect(out[2]).toContain('\n  top ');
    for (const flag of ['--url', '--token', '--sort', '--limit', '--pid', '--interval', '--json', TOKEN_ENV]) expect(out[0]).toContain(flag);
  });
});

describe('keel top (refreshing)', () => {
  it('writes a frame per refresh to a stream that is not a terminal, with no escape sequence, until stopped', async () => {
    const { node, pid, release } = await floodedNode();
    const obs = await startObserver(node);
    const stop = new AbortController();
    const frames: string[] = [];
    try {
      const r = await top(['--url', obs.url, '--limit', '3', '--interval', '100'], {
        stdout: { isTTY: false, write: (t: string) => (frames.push(t), stop.abort()) },
        signal: stop.signal,
      });
      expect(r).toEqual({ code: 0, out: '', err: '' });
      expect(frames).toHaveLength(1);
      const frame = frames[0]!;
      expect(frame).not.toContain('\x1b');
      expect(frame.endsWith('\n\n')).toBe(true);
      const lines = frame.split('\n');
      expect(lines[0]).toMatch(/^node top-test {3}uptime \d+s {3}at \d\d:\d\d:\d\d UTC$/);
      // (an observer that measures the event loop's utilization adds it at the end)
      expect(lines[1]).toMatch(new RegExp(`^processes ${node.processes().length} {3}run queue 0 {3}timers \\d+ {3}event-loop lag (-|[\\d.]+ ms \\(p99 [\\d.]+, max [\\d.]+\\))( {3}event loop busy (-|[\\d.]+%))?$`));
      expect(lines[2]).toMatch(/^heap [\d.]+ MB of [\d.]+ MB \(rss [\d.]+ MB\) {3}messages (-|\d+\/s) {3}dead letters 0 pending, 0 parked {3}suspected leaks 0$/);
      expect(lines[3]).toBe('');
      const total = node.processes().length;
      expect(lines[4]).toBe(`top ${Math.min(3, total)} of ${total} processes by mailbox`);
      // the five columns every observer answers, and any it adds (a kind, a rate, ...)
      expect(lines[6]).toMatch(/^PID +NAME +(KIND +)?STATUS +MAILBOX +HANDLED( |$)/);
      const heads = lines[6]!.split(/ +/);
      const cells = lines[7]!.split(/ +/);
      expect([cells[0], cells[1], cells[heads.indexOf('STATUS')], cells[heads.indexOf('MAILBOX')], cells[heads.indexOf('HANDLED')]]).toEqual([Pid.format(pid), 'flooded', 'busy', '5', '1']);
    } finally {
      await release();
      await obs.close();
    }
  });

  /** The first two frames `keel top` writes to a terminal of `columns` × `rows`, each after its screen clear, split into lines. */
  async function terminalFrames(columns: number, rows?: number): Promise<string[][]> {
    const { node, release } = await floodedNode();
    const obs = await startObserver(node);
    const stop = new AbortController();
    const frames: string[] = [];
    try {
      const r = await top(['--url', obs.url, '--interval', '100'], {
        stdout: { isTTY: true, columns, ...(rows === undefined ? {} : { rows }), write: (t: string) => (frames.push(t), frames.length === 2 && stop.abort()) },
        signal: stop.signal,
      });
      expect(r.code).toBe(0);
      expect(frames).toHaveLength(2);
      for (const frame of frames) expect(frame.startsWith(CLEAR)).toBe(true);
      return frames.map((frame) => frame.slice(CLEAR.length).split('\n'));
    } finally {
      await release();
      await obs.close();
    }
  }

  it('on a terminal: each frame clears the screen first, and no line is wider than the terminal', async () => {
    for (const lines of await terminalFrames(40)) {
      expect(lines[0]).toMatch(/^node top-test {3}uptime /);
      for (const l of lines) expect(l.length).toBeLessThanOrEqual(40);
    }
  });

  it('on a terminal shorter than the frame: the frame is cut to one line less than its height, so that the header is not scrolled off at every refresh', async () => {
    for (const lines of await terminalFrames(200, 6)) {
      expect(lines).toHaveLength(6); // five lines, each ended by a newline
      expect(lines[0]).toMatch(/^node top-test {3}uptime /);
      expect(lines[3]).toBe('');
      expect(lines[4]).toMatch(/^top \d+ of \d+ processes by mailbox$/);
      expect(lines[5]).toBe('');
    }
  });
});

describe('keel top (refreshing) into a pipe its reader closed', () => {
  it('stops at the write error (EPIPE: keel top | head), exit 0 and nothing on stderr, instead of an unhandled error event', async () => {
    const { node, release } = await floodedNode();
    const obs = await startObserver(node);
    const guard = new AbortController(); // a failure guard: top that goes on writing is stopped at its third frame
    const frames: string[] = [];
    // a stream like process.stdout once its reader has gone: the write is taken, its EPIPE comes as an 'error' event
    const stdout = Object.assign(new EventEmitter(), {
      isTTY: false,
      write: (t: string) => {
        frames.push(t);
        if (frames.length === 3) guard.abort();
        process.nextTick(() => stdout.emit('error', Object.assign(new Error('write EPIPE'), { code: 'EPIPE', errno: -32, syscall: 'write' })));
        return true;
      },
    });
    try {
      const r = await top(['--url', obs.url, '--interval', '100'], { stdout, signal: guard.signal });
      expect(r).toEqual({ code: 0, out: '', err: '' });
      expect(frames).toHaveLength(1);
      expect(guard.signal.aborted).toBe(false);
      expect(stdout.listenerCount('error')).toBe(0);
    } finally {
      await release();
      await obs.close();
    }
  });

  it('another write error stops it too, in one line (exit 1)', async () => {
    const { node, release } = await floodedNode();
    const obs = await startObserver(node);
    const guard = new AbortController();
    let writes = 0;
    const stdout = Object.assign(new EventEmitter(), {
      write: () => {
        if (++writes === 3) guard.abort();
        process.nextTick(() => stdout.emit('error', Object.assign(new Error('EIO: i/o error, write'), { code: 'EIO' })));
        return true;
      },
    });
    try {
      expect(await top(['--url', obs.url, '--interval', '100'], { stdout, signal: guard.signal })).toEqual({ code: 1, out: '', err: 'keel top: cannot write to stdout: EIO: i/o error, write' });
      expect(writes).toBe(1);
    } finally {
      await release();
      await obs.close();
    }
  });
});

describe('keel top (refreshing) with an event stream', () => {
  it('shows the overview the observer pushes on its event stream once there is one', async () => {
    const token = 'c'.repeat(32);
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization}`);
      const json = (value: unknown): void => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify(value));
      };
      if (req.url === '/api/events') {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`retry: 2000\n\nid: x.1\nevent: snapshot\ndata: ${JSON.stringify({ overview: { node: 'streamed' }, processes: {} })}\n\n`);
        return; // held open, like an observer's
      }
      if (req.url === '/api/overview') return json({ node: 'polled' });
      return json({ total: 0, sort: 'mailbox', limit: 20, processes: [] });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const stop = new AbortController();
    const frames: string[] = [];
    try {
      const r = await top(['--url', `${base}/?token=${token}`, '--interval', '100'], {
        stdout: { write: (t: string) => (frames.push(t), t.startsWith('node streamed ') && stop.abort()) },
        signal: stop.signal,
      });
      expect(r).toEqual({ code: 0, out: '', err: '' });
      // the frames before the stream's first overview polled it; none after
      const first = frames.findIndex((f) => f.startsWith('node streamed '));
      expect(first).toBe(frames.length - 1);
      expect(frames.slice(0, first).every((f) => f.startsWith('node polled '))).toBe(true);
      expect(seen).toContain(`/api/events Bearer ${token}`);
      expect(seen.filter((s) => s.startsWith('/api/overview'))).toHaveLength(first);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
