// A nats-server (the machine's /usr/sbin/nats-server, 2.9.10) per test file: on a free loopback
// port, with its own store directory, ready when its log says so, stopped by pid, restartable on the
// same port and store (the reconnect tests kill it and bring it back).
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll } from 'vitest';

export const NATS_SERVER_BIN = process.env.KEEL_NATS_SERVER ?? '/usr/sbin/nats-server';

/**
 * True when the tests that need a nats-server skip: no binary here, and not under CI (where its
 * absence is a failure: .ci/run installs it). A fresh clone's `npm test` then passes without one.
 */
export const skipWithoutNats = !fs.existsSync(NATS_SERVER_BIN) && process.env.CI !== '1';

export interface NatsServerOptions {
  /** Runs JetStream (`-js`) with its store in the server's own temp directory. */
  readonly jetstream?: boolean;
  /** Extra configuration text (authorization, permissions, ...), written to a config file given with `-c`. */
  readonly config?: string;
}

export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  readonly url: string;
  readonly port: number;
  /** The pid of the running server process (a new one after {@link restart}). */
  readonly pid: number;
  /** The temp directory of the server: its config file and, with JetStream, its store. */
  readonly storeDir: string;
  /** SIGTERM, then the process's exit; removes the store directory. Idempotent. */
  stop(): Promise<void>;
  /** Sends `signal` to the server process (SIGKILL, SIGSTOP, SIGCONT...) and, for a fatal one, awaits its exit; for SIGSTOP, until it is stopped. */
  kill(signal: NodeJS.Signals): Promise<void>;
  /** Stops the server if it runs (SIGTERM) and starts it again on the same port and store. */
  restart(): Promise<void>;
}

// servers still running when the test process exits (a crash, a timeout): killed with it, never orphaned
const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** A port nobody listened on a moment ago (the OS's pick for port 0). */
async function freePort(): Promise<number> {
  const server = net.createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  server.close();
  await once(server, 'close');
  return port;
}

class StartFailure extends Error {
  constructor(
    message: string,
    readonly portInUse: boolean,
  ) {
    super(message);
  }
}

/** Spawns the server and resolves once its log says 'Server is ready'; rejects with its log when it exits first. */
async function launch(port: number, dir: string, options: NatsServerOptions): Promise<ChildProcess> {
  const args = ['-a', '127.0.0.1', '-p', String(port)];
  if (options.jetstream === true) args.push('-js', '-sd', dir);
  if (options.config !== undefined) {
    const file = path.join(dir, 'server.conf');
    fs.writeFileSync(file, options.config);
    args.push('-c', file);
  }
  const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  let log = '';
  return new Promise<ChildProcess>((resolve, reject) => {
    const onData = (chunk: Buffer): void => {
      log += chunk.toString('utf8');
      if (log.includes('Server is ready')) {
        child.stderr!.off('data', onData);
        child.stderr!.resume(); // keep draining its log so the server never blocks on a full pipe
        child.off('exit', onExit);
        resolve(child);
      }
    };
    const onExit = (code: number | null, signal: NodeJS.Signals | null): void => {
      reject(new StartFailure(`nats-server exited (${code ?? signal}) before it was ready:\n${log}`, /address already in use/i.test(log)));
    };
    child.once('error', (e) => reject(new StartFailure(`nats-server could not be spawned (${NATS_SERVER_BIN}): ${e.message}`, false)));
    child.stderr!.on('data', onData);
    child.once('exit', onExit);
  });
}

async function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  await once(child, 'exit');
}

/**
 * Resolves once every thread of `pid` is stopped: a SIGSTOP is not in force when kill returns (on a
 * loaded machine the server was seen still running, and answering a ping sent after it, then).
 */
async function whenStopped(pid: number): Promise<void> {
  const states = (): string[] => {
    try {
      return fs.readdirSync(`/proc/${pid}/task`).map((t) => fs.readFileSync(`/proc/${pid}/task/${t}/stat`, 'utf8').replace(/^.*\) /s, '')[0] ?? '');
    } catch {
      return []; // no /proc here, or the process is gone: nothing more to wait for
    }
  };
  while (!states().every((s) => s === 'T' || s === 't' || s === 'Z')) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Starts a nats-server on a free loopback port; see {@link NatsServer}. */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServer> {
  const storeDir = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-nats-'));
  let port = 0;
  let child: ChildProcess | undefined;
  for (let attempt = 1; child === undefined; attempt++) {
    port = await freePort();
    try {
      child = await launch(port, storeDir, options);
    } catch (e) {
      // another process took the port between our probe and the server's bind: pick another
      if (!(e instanceof StartFailure && e.portInUse) || attempt >= 5) {
        fs.rmSync(storeDir, { recursive: true, force: true });
        throw e;
      }
    }
  }
  let current: ChildProcess = child;
  let stopped = false;
  const terminate = async (): Promise<void> => {
    if (current.exitCode === null && current.signalCode === null) {
      current.kill('SIGCONT'); // a frozen server would never handle SIGTERM
      current.kill('SIGTERM');
    }
    await exited(current);
  };
  return {
    url: `nats://127.0.0.1:${port}`,
    port,
    get pid() {
      return current.pid!;
    },
    storeDir,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate();
      fs.rmSync(storeDir, { recursive: true, force: true });
    },
    async kill(signal) {
      const fatal = signal !== 'SIGSTOP' && signal !== 'SIGCONT' && signal !== 'SIGTSTP';
      current.kill(signal);
      if (fatal) await exited(current);
      else if (signal === 'SIGSTOP') await whenStopped(current.pid!);
    },
    async restart() {
      if (stopped) throw new Error('the nats-server was stopped: start a new one');
      await terminate();
      current = await launch(port, storeDir, options);
    },
  };
}

/**
 * One nats-server for the test file: started in `beforeAll`, stopped in `afterAll`. The returned
 * function answers it inside a test.
 */
export function useNatsServer(options: NatsServerOptions = {}): () => NatsServer {
  let server: NatsServer | undefined;
  // no server to start: the file's suites skip (describe.skipIf(skipWithoutNats))
  if (skipWithoutNats) return () => { throw new Error(`no nats-server at ${NATS_SERVER_BIN}: this test should have been skipped`); };
  beforeAll(async () => {
    server = await startNatsServer(options);
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
  }, 30_000);
  return () => {
    if (server === undefined) throw new Error('the nats-server starts in beforeAll: ask for it inside a test');
    return server;
  };
}
