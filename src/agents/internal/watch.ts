import type { Pid, Ref } from '../../runtime/Pid.js';
import type { Context } from '../../runtime/types.js';

/** A monitor set up by a component: through the monitor manager when it is available, else a plain runtime monitor. */
export interface WatchRef {
  readonly ref: Ref;
  readonly managed: boolean;
}

/**
 * Monitors `pid` from `ctx` through the node's monitor manager (`tag`, long-lived: the component
 * removes it itself), or with `ctx.monitor` when the manager is unavailable. `'noproc'` when the
 * process is already dead.
 */
export function watchProcess(ctx: Context<any>, pid: Pid, tag: string): WatchRef | 'noproc' {
  if (!ctx.node.isAlive(pid)) return 'noproc';
  const monitors = ctx.node.monitors;
  if (monitors.available) return { ref: monitors.monitor(ctx, pid, { tag, expectedLifetime: 'long' }), managed: true };
  // eslint-disable-next-line keel/no-unmanaged-monitor -- the fallback when the node runs without the monitor manager (services: false); the caller keeps the ref and removes it with unwatch
  return { ref: ctx.monitor(pid), managed: false };
}

/** Removes a monitor made by `watchProcess`, with its queued `Down` if any. */
export function unwatch(ctx: Context<any>, watch: WatchRef): void {
  const monitors = ctx.node.monitors;
  if (watch.managed && monitors.available && monitors.demonitor(ctx, watch.ref, { flush: true }) === 'ok') return;
  ctx.demonitor(watch.ref, { flush: true });
}
