import type { ExitReason } from '../../runtime/messages.js';
import type { Context, Node } from '../../runtime/types.js';

/**
 * @internal State of an agent-layer component that outlives the component's process, as an ETS
 * table whose heir is the node outlives its owner in OTP. A component (router, scheduler,
 * coordination manager, coordinator) keeps what its clients set up (subscriptions, schedules,
 * circuits, workflows) in a table held by its node under the component's registered name; when the
 * component's process crashes and its supervisor starts it again under the same name, `init` finds
 * the table and resumes instead of starting empty.
 *
 * The table is the component's own object, mutated in place by its process (one process, one turn
 * at a time, so it is never seen half-written by another), and released when the component stops
 * for good: a `normal` stop (the component was asked to stop) or the node's shutdown. Any other
 * exit, including a supervisor's `shutdown` of a subtree it is about to restart, keeps it.
 *
 * A table belongs to the component kind that made it (`kind`: 'signal_router', 'agent_scheduler',
 * ...): a component of another kind started later under the same name never resumes it (it would
 * read another kind's state as its own). The kept table is discarded then, its `discard` run (to
 * account for what it still held), and the `keel.agent_state.discarded` event and a warning say so.
 */

interface Held {
  readonly kind: string;
  readonly state: object;
  readonly discard: ((state: object) => void) | undefined;
}

const tables = new WeakMap<Node, Map<string, Held>>();

/**
 * A component's table: the one its predecessor of the same `kind` under `name` left
 * (`resumed: true`), or a new one from `create`. `discard` runs if a component of another kind
 * takes the name over while the table is kept.
 */
export function componentState<T extends object>(node: Node, name: string, kind: string, create: () => T, discard?: (state: T) => void): { state: T; resumed: boolean } {
  let byName = tables.get(node);
  if (byName === undefined) {
    byName = new Map();
    tables.set(node, byName);
  }
  const kept = byName.get(name);
  if (kept !== undefined && kept.kind === kind) return { state: kept.state as T, resumed: true };
  if (kept !== undefined) {
    byName.delete(name);
    let error: unknown;
    try {
      kept.discard?.(kept.state);
    } catch (e) {
      error = e;
    }
    node.logger.warn(`${kind} ${name}: the state a ${kept.kind} left under this name was discarded (another kind of component cannot resume it)`, error);
    node.telemetry.execute('keel.agent_state.discarded', {}, { name, kind: kept.kind, by: kind, ...(error !== undefined ? { error } : {}) });
  }
  const state = create();
  byName.set(name, { kind, state, discard: discard as ((state: object) => void) | undefined });
  return { state, resumed: false };
}

/** The table of the component `name` of `kind` if there is one, without making one (a reader that outlived a table it held). */
export function peekComponentState<T extends object>(node: Node, name: string, kind: string): T | undefined {
  const held = tables.get(node)?.get(name);
  return held?.kind === kind ? (held.state as T) : undefined;
}

/**
 * Until the returned function runs (at the end of the component's `init`), a table this start made
 * goes if the process exits: an init that throws, or is killed while it awaits, leaves no half-built
 * table that a later start under the name would resume "from table" (and then skip its store). A
 * table resumed from a predecessor stays: it is the predecessor's, as after any crash.
 */
export function releaseIfInitFails(ctx: Context<any>, name: string, state: object, resumed: boolean): () => void {
  if (resumed) return () => {};
  const node = ctx.node;
  const release = (): void => {
    const byName = tables.get(node);
    if (byName?.get(name)?.state === state) byName.delete(name);
  };
  ctx.signal.addEventListener('abort', release, { once: true });
  return () => ctx.signal.removeEventListener('abort', release);
}

/** Whether `reason` ends the component for good (its table is released) rather than before a restart. */
export function endsForGood(reason: ExitReason): boolean {
  return reason === 'normal';
}

/** Releases the table of the component `name` (from its `terminate` when {@link endsForGood}, or at node shutdown). */
export function releaseComponentState(node: Node, name: string): void {
  tables.get(node)?.delete(name);
}

/** The names of the components holding a table on `node` (tests, diagnostics). */
export function componentStates(node: Node): string[] {
  return [...(tables.get(node)?.keys() ?? [])];
}
