// keel observe (keel demo --observe, npm start -- --observe): the demo with an observer attached,
// run in this process with an injected stop signal for the exact checks, and as the built keel in
// a child process for the real signals.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { usageOf } from '../../src/cli/args.js';
import { runDemoCommand } from '../../src/cli/demoCommand.js';
import { runKeel } from '../../src/cli/main.js';
import { OBSERVE_COMMAND, parseObserveArgs, runObserve } from '../../src/cli/observe.js';
import { useBuiltPackage, useChildren } from '../childProcesses.js';
import { deferred, expectKeelError, thrown } from '../support.js';

const LINK = /^observer: (http:\/\/127\.0\.0\.1:(\d+)\/\?token=([0-9a-f]{32}))$/;

interface Observed {
  lines: string[];
  errors: string[];
  /** The link, once printed. */
  link: Promise<{ url: string; port: number; token: string }>;
  /** The exit code. */
  done: Promise<number>;
}

/** Runs `keel observe …` in this process until `signal`; the link resolves once printed. */
function observe(argv: string[], signal: AbortSignal): Observed {
  const lines: string[] = [];
  const errors: string[] = [];
  const link = deferred<{ url: string; port: number; token: string }>();
  const done = Promise.resolve(
    runObserve(argv, {
      out: (t) => {
        lines.push(t);
        const m = LINK.exec(t);
        if (m !== null) link.resolve({ url: m[1]!, port: Number(m[2]), token: m[3]! });
      },
      err: (t) => errors.push(t),
    }, { signal }),
  );
  void done.then(() => link.reject(new Error(`keel observe ended without a link:\n${[...lines, ...errors].join('\n')}`)));
  link.promise.catch(() => undefined); // a run that ends without a link need not be awaited for it
  return { lines, errors, link: link.promise, done };
}

async function api(port: number, token: string, path: string, init: RequestInit = {}): Promise<{ status: number; json: any }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  return { status: res.status, json: await res.json() };
}

describe('keel observe (in this process)', () => {
  it('prints the link once, serves the demo\'s node read-only with its supervisors in the tree, and reports once stopped', async () => {
    const stop = new AbortController();
    const run = observe(['--seed', '3', '--chaos', '0'], stop.signal);
    const { port, token } = await run.link;
    const overview = await api(port, token, '/api/overview');
    expect(overview.status).toBe(200);
    expect(overview.json.node).toBe('keel-demo');
    const tree = await api(port, token, '/api/tree');
    const ids = (tree.json.trees as { children: { id: string }[] }[]).slice(0, 2).map((t) => t.children.map((c) => c.id));
    expect(ids).toEqual([Array.from({ length: 8 }, (_, i) => `worker-${i}`), ['ledger-0', 'ledger-1', 'ledger-2']]);
    const worker = (tree.json.trees[0].children as { pid: string }[])[0]!.pid;
    expect(await api(port, token, '/api/kill', { method: 'POST', body: JSON.stringify({ pid: worker }) })).toMatchObject({ status: 403, json: { error: { code: 'read_only' } } });
    stop.abort();
    expect(await run.done).toBe(0);
    expect(run.errors).toEqual([]);
    // the token is printed once, in the link
    expect(run.lines.filter((l) => l.includes(token))).toEqual([`observer: http://127.0.0.1:${port}/?token=${token}`]);
    expect(run.lines[1]).toBe("  open it in a browser, or watch it in a terminal: keel top --url '<the link above>'");
    expect(run.lines[2]).toBe('  read-only (--writable allows kill, retry and purge); Ctrl-C stops the demo and prints its report');
    expect(run.lines.at(-1)).toMatch(/^verdict: ok: all \d+ workflows, \d+ receipts and \d+ signals accounted for, no monitor leaked$/);
    // the observer closed with the demo's node
    await expect(fetch(`http://127.0.0.1:${port}/api/overview`)).rejects.toThrow();
  });

  it('--writable lets the observer kill a worker, which its supervisor restarts; --payloads is passed on', async () => {
    const stop = new AbortController();
    const run = observe(['--writable', '--payloads', '--chaos', '0', '--workers', '2'], stop.signal);
    const { port, token } = await run.link;
    const before = (await api(port, token, '/api/tree')).json.trees[0].children as { id: string; pid: string }[];
    expect(before.map((c) => c.id)).toEqual(['worker-0', 'worker-1']);
    const killed = await api(port, token, '/api/kill', { method: 'POST', body: JSON.stringify({ pid: before[0]!.pid }) });
    expect(killed).toEqual({ status: 200, json: { ok: true, pid: before[0]!.pid } });
    stop.abort();
    expect(await run.done).toBe(0);
    expect(run.lines[2]).toBe('  writable: kill, retry and purge are allowed; Ctrl-C stops the demo and prints its report');
    expect(run.lines.find((l) => l.trimStart().startsWith('chaos '))).toMatch(/^ {2}chaos +kills 0, supervisor restarts [1-9]\d*$/);
  });

  it('a port in use is one line and exit 1, with no link printed', async () => {
    const server = http.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const run = observe(['--port', String(port)], new AbortController().signal);
      expect(await run.done).toBe(1);
      expect(run.errors).toEqual([`keel observe: the observer cannot listen on 127.0.0.1:${port}: listen EADDRINUSE: address already in use 127.0.0.1:${port}`]);
      expect(run.lines.some((l) => l.startsWith('observer:'))).toBe(false);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('keel observe: --allowed-host', () => {
  it('passes more Host values to the observer, comma-separated', () => {
    expect(parseObserveArgs(['--host', '0.0.0.0', '--allowed-host', 'box.lan:8080, 10.0.0.5:8080'])).toMatchObject({ host: '0.0.0.0', allowedHosts: ['box.lan:8080', '10.0.0.5:8080'] });
    expect(parseObserveArgs([])).toMatchObject({ host: '127.0.0.1', allowedHosts: [] });
  });
});

describe('keel observe: bad usage is a typed error and exit 2', () => {
  it('refuses bad values, naming the flag', async () => {
    const cases: [string[], string][] = [
      [['--port', '-1'], 'expected `--port` to be an integer from 0 to 65535, got -1'],
      [['--port', '65536'], 'expected `--port` to be an integer from 0 to 65535, got 65536'],
      [['--port', 'NaN'], '--port must be a number, got "NaN"'],
      [['--port', '1e400'], 'expected `--port` to be an integer from 0 to 65535, got "1e400"'],
      [['--host', ''], '--host must be a host name or address (1 to 255 printable characters, no spaces), got ""'],
      [['--host', 'a b'], '--host must be a host name or address (1 to 255 printable characters, no spaces), got "a b"'],
      [['--workers', '0'], 'expected `--workers` to be an integer from 1 to 10000, got 0'],
      [['--chaos', '2'], 'expected `--chaos` to be a rate from 0 to 1, got 2'],
      [['--allowed-host', 'a:1,'], '--allowed-host must be host:port values separated by commas, got ""'],
      [['--allowed-host', 'a b:1'], '--allowed-host must be host:port values separated by commas, got "a b:1"'],
      [['--json'], "Unknown option '--json'. keel observe takes --port, --host, --allowed-host, --writable, --payloads, --workers, --chaos, --seed, --fail-rate and --help"],
    ];
    for (const [argv, message] of cases) {
      expectKeelError(thrown(() => parseObserveArgs(argv)), 'ERR_INVALID_ARGUMENT', message);
      const err: string[] = [];
      expect(await runObserve(argv, { out: (t) => err.push(`out: ${t}`), err: (t) => err.push(t) }), argv.join(' ')).toBe(2);
      expect(err).toEqual([`keel observe: ${message}`]);
    }
  });

  it('keel demo --observe is keel observe: its usage, its options', async () => {
    const out: string[] = [];
    const io = { out: (t: string) => out.push(t), err: (t: string) => out.push(`err: ${t}`) };
    expect(await runKeel(['observe', '--help'], io)).toBe(0);
    expect(await runKeel(['help', 'observe'], io)).toBe(0);
    expect(await runKeel(['demo', '--observe', '--help'], io)).toBe(0);
    expect(out).toEqual([usageOf(OBSERVE_COMMAND), usageOf(OBSERVE_COMMAND), usageOf(OBSERVE_COMMAND)]);
    expect(await runDemoCommand(['--observe', '--port', 'NaN'], io)).toBe(2);
    expect(out.at(-1)).toBe('err: keel observe: --port must be a number, got "NaN"');
    for (const flag of ['--port', '--host', '--writable', '--payloads']) expect(usageOf(OBSERVE_COMMAND)).toContain(flag);
  });
});

describe('keel observe (the built keel, a child process)', () => {
  const builtKeel = useBuiltPackage();
  const fork = useChildren();

  it('keeps the demo running with the observer until SIGTERM, then reports and exits 0', async () => {
    const entry = fileURLToPath(new URL('cli/keel.js', builtKeel()));
    const child = fork(entry, ['observe', '--seed', '5']);
    let stdout = '';
    const waiters: { test: RegExp; resolve: (m: RegExpExecArray) => void }[] = [];
    child.process.stdout!.setEncoding('utf8');
    child.process.stdout!.on('data', (chunk: string) => {
      stdout += chunk;
      for (const w of waiters.splice(0)) {
        const m = stdout.split('\n').map((l) => w.test.exec(l)).find((x) => x !== null);
        if (m === undefined) waiters.push(w);
        else w.resolve(m);
      }
    });
    /** The first complete line of stdout matching `test` (rejects if the child exits first). */
    const line = (test: RegExp): Promise<RegExpExecArray> =>
      Promise.race([
        new Promise<RegExpExecArray>((resolve) => waiters.push({ test, resolve })),
        child.exited.then(({ code, signal }) => Promise.reject(new Error(`keel observe exited (${code}, ${signal}):\n${stdout}\n${child.stderr()}`))),
      ]);

    const [, , port, token] = await line(LINK);
    const res = await fetch(`http://127.0.0.1:${port}/api/overview`, { headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { node: string }).node).toBe('keel-demo');
    // more workflows than one round of the 32 lanes: the demo starts them again
    await line(/^workflows (3[3-9]|[4-9]\d|\d{3,}) /);
    child.process.kill('SIGTERM');
    expect(await child.exited).toEqual({ code: 0, signal: null });
    expect(child.stderr()).toBe('');
    expect(stdout.split('\n').filter((l) => l.includes(token!))).toHaveLength(1);
    expect(stdout.trimEnd().split('\n').at(-1)).toMatch(/^verdict: ok: all \d+ workflows/);
  }, 60_000);
});
