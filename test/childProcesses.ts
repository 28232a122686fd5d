// Child OS processes for the tests that kill one (SIGKILL) and look at what it left behind: the
// package compiled once per test file into a private temp directory (the shared dist/ is left
// alone), children forked with an IPC channel, and their cleanup.
import { type ChildProcess, fork } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll } from 'vitest';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const SRC = path.join(ROOT, 'src');

/**
 * Compiles src/ into a private temp directory before the file's tests (`beforeAll`) and removes it
 * after them; the returned function answers the file URL of the compiled `index.js` (its
 * `testing/index.js` is beside it). Each module is transpiled on its own (`isolatedModules` and
 * `verbatimModuleSyntax` make that exact), about three times as fast as `tsc`: type errors are
 * `npm run typecheck`'s business, not this build's. The compiled ESM finds better-sqlite3 through
 * the project's node_modules.
 */
export function useBuiltPackage(): () => string {
  let build: string | undefined;
  beforeAll(() => {
    build = fs.mkdtempSync(path.join(os.tmpdir(), 'keel-build-'));
    const out = path.join(build, 'dist');
    const options: ts.CompilerOptions = { module: ts.ModuleKind.ES2022, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true };
    const compile = (dir: string): void => {
      for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
        const from = path.join(dir, entry.name);
        if (entry.isDirectory()) {
          compile(from);
          continue;
        }
        if (!entry.name.endsWith('.ts')) {
          // what the build copies as it is (the observer's page: src/observer/assets)
          const to = path.join(out, path.relative(SRC, from));
          fs.mkdirSync(path.dirname(to), { recursive: true });
          fs.copyFileSync(from, to);
          continue;
        }
        const { outputText, diagnostics } = ts.transpileModule(fs.readFileSync(from, 'utf8'), { compilerOptions: options, fileName: from, reportDiagnostics: true });
        if (diagnostics !== undefined && diagnostics.length > 0) {
          throw new Error(`${from} does not compile: ${ts.flattenDiagnosticMessageText(diagnostics[0]!.messageText, '\n')}`);
        }
        const to = path.join(out, path.relative(SRC, from)).replace(/\.ts$/, '.js');
        fs.mkdirSync(path.dirname(to), { recursive: true });
        fs.writeFileSync(to, outputText);
      }
    };
    compile(SRC);
    fs.writeFileSync(path.join(build, 'package.json'), JSON.stringify({ type: 'module' }));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(build, 'node_modules'), 'dir');
  }, 60_000);
  afterAll(() => {
    if (build !== undefined) fs.rmSync(build, { recursive: true, force: true });
  });
  return () => {
    if (build === undefined) throw new Error('the package is built in beforeAll: ask for its URL inside a test');
    return pathToFileURL(path.join(build, 'dist', 'index.js')).href;
  };
}

/** How a child ended: its exit code, or the signal that killed it. */
export interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A forked child with an IPC channel. */
export interface Child<M> {
  readonly process: ChildProcess;
  /** What it wrote to stderr so far (to say why it ended early). */
  stderr(): string;
  /** Resolves on 'exit'. */
  readonly exited: Promise<Ended>;
  /** Resolves on 'close': after the exit and after the last IPC message has been read. */
  readonly closed: Promise<Ended>;
  /** Calls `listener` with every IPC message, in order. */
  onMessage(listener: (message: M) => void): void;
  /**
   * Resolves with the first message (from now on) that `predicate` accepts; rejects, with the
   * child's stderr, if the child exits first.
   */
  next(predicate: (message: M) => boolean): Promise<M>;
  /** SIGKILL, then resolves once it has closed (with every IPC message sent before read). */
  kill(): Promise<Ended>;
}

export type ForkChild = <M>(script: string, args: readonly string[], options?: { serialization?: 'json' | 'advanced' }) => Child<M>;

/**
 * Registers an `afterEach` that SIGKILLs every child forked through the returned function and still
 * running (a failed test leaves none behind). Call it after `useTempFiles` and before `useNodes`:
 * after-each hooks run in reverse order, so nodes shut down, then children are killed, then the
 * temp directories go.
 */
export function useChildren(): ForkChild {
  const children: ChildProcess[] = [];
  afterEach(() => {
    for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  return <M>(script: string, args: readonly string[], options: { serialization?: 'json' | 'advanced' } = {}): Child<M> => {
    const child = fork(script, args, { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], serialization: options.serialization ?? 'json' });
    children.push(child);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    // a failed write to a child being killed is no test failure of its own: it is told with the child's output
    child.on('error', (e) => {
      stderr += `\n(child process error: ${e.message})`;
    });
    // stdout is read too, so that a chatty child never blocks on a full pipe
    child.stdout!.resume();
    const exited = new Promise<Ended>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const closed = new Promise<Ended>((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
    return {
      process: child,
      stderr: () => stderr,
      exited,
      closed,
      onMessage: (listener) => {
        child.on('message', (m) => listener(m as M));
      },
      next: (predicate) =>
        new Promise<M>((resolve, reject) => {
          const onMessage = (m: unknown): void => {
            if (!predicate(m as M)) return;
            child.off('message', onMessage);
            resolve(m as M);
          };
          child.on('message', onMessage);
          void exited.then(({ code, signal }) => {
            child.off('message', onMessage);
            reject(new Error(`the child ${path.basename(script)} exited (code ${code}, signal ${signal}) before the message awaited:\n${stderr}`));
          });
        }),
      kill: async () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        return closed;
      },
    };
  };
}
