// The SQLite dead letter store survives a SIGKILL of its OS process: a child process adds entries
// and reports each id whose `add` resolved; the parent kills it with SIGKILL mid-stream, reopens the
// file and finds every reported id. The child runs the built package (compiled here into a private
// temp directory, so that the shared dist/ is left alone).
import { type ChildProcess, execFileSync, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import Database from 'better-sqlite3';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type DeadLetter, isUnavailable } from '../../src/index.js';
import { TestClock } from '../../src/testing/index.js';
import { useNodes, useTempFiles } from '../support.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHILD = fileURLToPath(new URL('../fixtures/dlq-sigkill-child.mjs', import.meta.url));
const REPORTED = 200;

// after-each hooks run in reverse order: the nodes shut down, then a child left running by a failed
// test is killed, then the temp directories are removed
const tmpfile = useTempFiles('keel-dlq-kill-', 'dead-letters.db');
const children: ChildProcess[] = [];
afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

const track = useNodes();

let build: string;

beforeAll(() => {
  build = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-build-'));
  const out = path.join(build, 'dist');
  try {
    execFileSync('npx', ['tsc', '-p', 'tsconfig.build.json', '--outDir', out, '--declaration', 'false', '--declarationMap', 'false', '--sourceMap', 'false'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
  } catch (e) {
    // tsc emits despite type errors elsewhere in src/; fail only when nothing was emitted
    if (!fs.existsSync(path.join(out, 'index.js'))) throw new Error(`the build failed:\n${String((e as { stdout?: Buffer }).stdout ?? e)}`);
  }
  // the compiled ESM finds better-sqlite3 through the project's node_modules
  fs.writeFileSync(path.join(build, 'package.json'), JSON.stringify({ type: 'module' }));
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(build, 'node_modules'), 'dir');
}, 60_000);

afterAll(() => {
  fs.rmSync(build, { recursive: true, force: true });
});

interface Report {
  readonly id?: string;
  readonly n?: number;
  readonly ready?: number;
}

describe('the SQLite dead letter store under SIGKILL', () => {
  it('keeps every entry whose add resolved before the OS process was killed', async () => {
    const file = tmpfile();
    const moduleUrl = pathToFileURL(path.join(build, 'dist', 'index.js')).href;

    const child = fork(CHILD, [moduleUrl, file], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const reported = new Map<string, number>();
    // 'close' comes after the exit and after the last IPC message has been read
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('close', (code, signal) => resolve({ code, signal }));
    });
    const enough = new Promise<void>((resolve, reject) => {
      child.on('message', (m: Report) => {
        if (typeof m.id === 'string' && typeof m.n === 'number') {
          reported.set(m.id, m.n);
          if (reported.size === REPORTED) resolve();
        }
      });
      child.once('exit', (code, signal) => reject(new Error(`the child exited early (code ${code}, signal ${signal}): ${stderr}`)));
    });
    await enough;
    expect(child.kill('SIGKILL')).toBe(true);
    const { signal } = await closed;
    expect(signal).toBe('SIGKILL');
    expect(reported.size).toBeGreaterThanOrEqual(REPORTED);

    // the killed owner left its claim behind; a fresh node takes the file over (its OS process is gone)
    const node = track({ clock: new TestClock({ start: 0 }), services: { deadLetters: { store: { kind: 'sqlite', path: file } } } });
    const found = new Map<string, DeadLetter>();
    for (let cursor: string | undefined; ; ) {
      const page = await node.deadLetters.list({ limit: 1000, ...(cursor === undefined ? {} : { cursor }) });
      if (isUnavailable(page)) throw new Error('the queue answered unavailable');
      for (const e of page.entries) found.set(e.id, e);
      if (page.cursor === undefined) break;
      cursor = page.cursor;
    }
    const missing = [...reported.keys()].filter((id) => !found.has(id));
    expect(missing).toEqual([]);
    for (const [id, n] of reported) {
      expect(found.get(id)).toMatchObject({ recipient: 'nobody', reason: 'noproc', status: 'pending', message: { n, text: `entry ${n}` } });
    }

    // and the file itself, read by a plain connection, holds them too
    const db = new Database(file, { readonly: true });
    try {
      const seqs = new Set((db.prepare('SELECT seq FROM dead_letters').all() as { seq: number }[]).map((r) => String(r.seq)));
      expect([...reported.keys()].filter((id) => !seqs.has(id))).toEqual([]);
    } finally {
      db.close();
    }
  });
});
