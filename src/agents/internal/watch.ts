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
  const r = ctx.node.monitors.monitor(ctx, pid, { tag, expectedLifetime: 'long' });
  if (!('error' in r)) return { ref: r, managed: true };
  if (r.error === 'noproc') return 'noproc';
  if (!ctx.node.isAlive(pid)) return 'noproc';
  // eslint-disable-next-line keel/no-unmanaged-monitor -- the fallback when the node runs without the monitor manager (services: false); the caller keeps the ref and removes it with unwatch
  return { ref: ctx.monitor(pid), managed: false };
}

/** Removes a monitor made by `watchProcess`, with its queued `Down` if any. */
export function unwatch(ctx: Context<any>, watch: WatchRef): void {
  if (watch.managed) {
    const r = ctx.node.monitors.demonitor(ctx, watch.ref, { flush: true });
    if (r === 'ok') return;
  }
  ctx.demonitor(watch.ref, { flush: true });
}
