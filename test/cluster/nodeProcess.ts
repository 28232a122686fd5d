// Cluster nodes in OS processes of their own, driven over IPC (test/cluster/fixtures/cluster-node-child.mjs):
// the tests that kill a node with SIGKILL, freeze it with SIGSTOP and start it again under its name.
import { fileURLToPath } from 'node:url';
import type { Child, ForkChild } from '../childProcesses.js';

const CHILD = fileURLToPath(new URL('./fixtures/cluster-node-child.mjs', import.meta.url));

/** What a driven node's fixture posts: a reply to a command, its readiness, a cluster event. */
export interface Reply {
  readonly id?: number;
  readonly ok?: boolean;
  readonly value?: unknown;
  readonly error?: string;
  readonly ready?: boolean;
  readonly frozen?: boolean;
  readonly incarnation?: number;
  readonly clusterEvent?: ClusterEvent;
}

/** A cluster event the child recorded (`keel.cluster.*`). */
export interface ClusterEvent {
  readonly event: string;
  readonly measurements: Record<string, number>;
  readonly metadata: { node?: string; reason?: string; incarnation?: number; from?: string };
}

/** A node in a child OS process. */
export interface NodeProcess {
  readonly name: string;
  readonly incarnation: number;
  readonly child: Child<Reply>;
  /** Runs a command of the child's (see the fixture); rejects with its error, or if the child exits first. */
  rpc<T = unknown>(cmd: string, args?: Record<string, unknown>): Promise<T>;
  /** Every cluster event the child reported so far, in order. */
  readonly events: readonly ClusterEvent[];
  /** The first reported event (already or from now on) that `predicate` accepts. */
  event(predicate: (e: ClusterEvent) => boolean): Promise<ClusterEvent>;
  /** SIGKILL; resolves once it has closed. */
  kill(): Promise<void>;
  /** SIGSTOP: frozen (its sockets stay open, it answers nothing). */
  freeze(): void;
  /** SIGCONT. */
  thaw(): void;
}

export interface NodeProcessOptions {
  /** Cluster options (heartbeatMs, suspectAfterMs, downAfterMs, probeTimeoutMs). */
  readonly cluster?: Record<string, number>;
}

/** Starts a node named `name` in a child process, joined to `cluster` over the NATS server at `url`. */
export async function startNodeProcess(fork: ForkChild, builtKeel: string, name: string, url: string, cluster: string, options: NodeProcessOptions = {}): Promise<NodeProcess> {
  const child = fork<Reply>(CHILD, [builtKeel, name, url, cluster, JSON.stringify(options)]);
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let nextId = 0;
  const events: ClusterEvent[] = [];
  const eventWaiters = new Set<() => void>();
  child.onMessage((m) => {
    if (m.clusterEvent !== undefined) {
      events.push(m.clusterEvent);
      for (const w of [...eventWaiters]) w();
      return;
    }
    if (m.id === undefined) return;
    const p = pending.get(m.id);
    if (p === undefined) return;
    pending.delete(m.id);
    if (m.ok === true) p.resolve(m.value);
    else p.reject(new Error(`${name}: ${m.error ?? 'failed'}`));
  });
  void child.exited.then(({ code, signal }) => {
    for (const p of pending.values()) p.reject(new Error(`${name} exited (code ${code}, signal ${signal}) before answering:\n${child.stderr()}`));
    pending.clear();
  });
  const ready = await child.next((m) => m.ready === true);
  return {
    name,
    incarnation: ready.incarnation!,
    child,
    rpc: <T>(cmd: string, args?: Record<string, unknown>) =>
      new Promise<T>((resolve, reject) => {
        const id = ++nextId;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.process.send({ id, cmd, args });
      }),
    events,
    event: (predicate) =>
      new Promise<ClusterEvent>((resolve, reject) => {
        const check = (): void => {
          const found = events.find(predicate);
          if (found === undefined) return;
          eventWaiters.delete(check);
          resolve(found);
        };
        eventWaiters.add(check);
        check();
        void child.exited.then(() => {
          if (eventWaiters.delete(check)) reject(new Error(`${name} exited before the event awaited:\n${child.stderr()}`));
        });
      }),
    kill: async () => {
      await child.kill();
    },
    freeze: () => {
      child.process.kill('SIGSTOP');
    },
    thaw: () => {
      child.process.kill('SIGCONT');
    },
  };
}
