import type { StartError } from '../../errors.js';
import type { ExitReport, Kernel } from '../../runtime/kernel.js';
import type { ExitReason } from '../../runtime/messages.js';
import type { Pid } from '../../runtime/Pid.js';

/** What a server is underneath `GenServer`: the `behaviour` of its lifecycle events. */
export type Behaviour = 'gen_server' | 'supervisor' | 'dynamic_supervisor' | 'value_agent' | 'state_machine';

const behaviours = new WeakMap<object, Behaviour>();

/** @internal What an agent-layer component is, and how it shows itself to an observer (a snapshot of its state, JSON-safe). */
export interface ComponentView {
  /** `'signal_router'`, `'agent_scheduler'`, `'coordinator'`, `'coordination_manager'`... */
  readonly kind: string;
  readonly observe: (state: any) => unknown;
}

const components = new WeakMap<object, ComponentView>();

/**
 * @internal Marks `spec` as the spec of an agent-layer component of `kind`: its processes say so
 * (their exit report's `component`), and answer the `observe` system call with `observe(state)`.
 */
export function markComponent<T extends object>(spec: T, kind: string, observe: (state: any) => unknown): T {
  components.set(spec, { kind, observe });
  return spec;
}

/** @internal The component view of a spec, if it is a component's. */
export function componentOf(spec: object): ComponentView | undefined {
  return components.get(spec);
}

/** @internal Marks `spec` as the spec of a behaviour built on GenServer (a supervisor, the value agent). */
export function markBehaviour<T extends object>(spec: T, behaviour: Behaviour): T {
  behaviours.set(spec, behaviour);
  return spec;
}

/**
 * @internal The lifecycle events of one server start: `keel.gen_server.init` once its `init` has
 * finished or failed, `keel.gen_server.terminate` once a server that started has exited (its
 * process's `exitReport`, told by the kernel after the death hooks, so for any exit). Each is
 * built only while someone listens to it (a probe: a version compare and a channel check otherwise).
 */
export class ServerLifecycle implements ExitReport {
  readonly #node: Kernel;
  readonly #behaviour: Behaviour;
  readonly #name: string | undefined;
  readonly #initProbe: { readonly active: boolean };
  readonly #startedAt: number;
  readonly #parent: Pid | 'node';
  readonly #redacts: boolean;
  readonly #spec: object;

  constructor(node: Kernel, spec: object, name: string | undefined, parent: Pid | 'node' = 'node') {
    this.#node = node;
    this.#behaviour = behaviours.get(spec) ?? 'gen_server';
    this.#name = name;
    this.#parent = parent;
    this.#spec = spec;
    this.#redacts = typeof (spec as { formatStatus?: unknown }).formatStatus === 'function';
    this.#initProbe = node.telemetry.probe('keel.gen_server.init');
    // read always (one clock read per start), so that a handler attached while init runs gets its
    // duration; on the timers' time (monotonic on the real clock): a step of the wall clock is not in it
    this.#startedAt = node.timerNow();
  }

  /** The behaviour the server runs (an observer tells a supervisor from a worker by it). */
  get behaviour(): Behaviour {
    return this.#behaviour;
  }

  /** The agent-layer component the server is (`'signal_router'`...), if it is one. */
  get component(): string | undefined {
    return components.get(this.#spec)?.kind;
  }

  /** The process that started the server, or `'node'`. */
  get parent(): Pid | 'node' {
    return this.#parent;
  }

  /** True when the spec has a `formatStatus` redactor: an observer shows the state it formats, and only then. */
  get redacts(): boolean {
    return this.#redacts;
  }

  /** `init` finished (`error` undefined) or the start failed with `error` (whose `reason` says why). */
  init(pid: Pid, error: StartError | undefined): void {
    if (!this.#initProbe.active) return;
    const durationMs = this.#node.timerNow() - this.#startedAt;
    const metadata =
      error === undefined
        ? { pid, name: this.#name, behaviour: this.#behaviour, ok: true }
        : { pid, name: this.#name, behaviour: this.#behaviour, ok: false, reason: error.reason };
    this.#node.telemetry.execute('keel.gen_server.init', { durationMs }, metadata);
  }

  /** A server that had started exited with `reason` (after its `terminate`, when that ran): the kernel tells it. */
  exited(pid: Pid, reason: ExitReason): void {
    const telemetry = this.#node.telemetry;
    if (!telemetry.probe('keel.gen_server.terminate').active) return;
    telemetry.execute('keel.gen_server.terminate', {}, { pid, name: this.#name, behaviour: this.#behaviour, reason });
  }
}
