import { checkKeys, InvalidArgumentError, NoProcError } from '../errors.js';
import { isProcess, kernelOfProcess, type Proc } from '../runtime/kernel.js';
import { type Ref, type Target, targetText } from '../runtime/Pid.js';
import type { Context } from '../runtime/types.js';
import { ManagedMonitors } from './MonitorManager.js';

/**
 * Runs `fn` while `target` is monitored, and always demonitors (with flush) afterwards, also when
 * `fn` throws. `signal` aborts, with the target's exit reason, the moment the target dies, even while
 * the owner is busy inside `fn`. Rejects with `ERR_NOPROC` when the target is not a live process of
 * the caller's node (another node's pid included: monitor it with `node.monitors.monitor`).
 *
 * @example
 * ```ts
 * const result = await withMonitor(ctx, worker, async (_ref, signal) => fetch(url, { signal }), { tag: 'fetch' });
 * ```
 */
export async function withMonitor<T>(
  ctx: Context<any>,
  target: Target,
  fn: (ref: Ref, signal: AbortSignal) => T | Promise<T>,
  options: { tag?: string } = {},
): Promise<T> {
  if (!isProcess(ctx)) throw new InvalidArgumentError('ctx', 'a process Context', ctx);
  if (typeof fn !== 'function') throw new InvalidArgumentError('fn', 'a function (ref, signal) => result', fn);
  if (typeof options !== 'object' || options === null) throw new InvalidArgumentError('options', '{ tag? }', options);
  // a misspelt key, or options that cannot be read (a revoked proxy, a getter that throws)
  checkKeys(options, ['tag'], 'options');
  const tag = options.tag;
  // checked here, not only by the manager: with the services off (a plain monitor) it is refused the same
  if (tag !== undefined && typeof tag !== 'string') throw new InvalidArgumentError('options.tag', 'a string', tag);
  const node = kernelOfProcess(ctx);
  const t = node.lookupTarget(target);
  if (t === undefined) throw new NoProcError(targetText(target), 'cannot monitor a process that is not alive');
  const monitors = node.monitors;
  const tagged = tag === undefined ? {} : { tag };
  // the target is alive (checked above, in the same synchronous step): a managed monitor is a ledger
  // entry; with the services off, a plain runtime monitor does the same job
  const managed = monitors.available;
  let ref: Ref;
  // the ledger's stack starts at the line that called withMonitor
  if (managed) ref = monitors instanceof ManagedMonitors ? monitors.monitorFrom(withMonitor, ctx, t.self, tagged) : monitors.monitor(ctx, t.self, tagged);
  // eslint-disable-next-line keel/no-unmanaged-monitor -- withMonitor is the mechanism: it demonitors in its finally
  else ref = ctx.monitor(t.self);
  const controller = new AbortController();
  const unhook = node.onProcExit(t, (reason) => controller.abort(reason));
  // an owner that dies while fn runs (fn may never settle) takes the hook on the target with it:
  // else a long-lived target would hold one closure per dead owner until it died itself
  const unhookOwner = unhook === undefined || t === ctx ? undefined : node.onProcExit(ctx as Proc, unhook);
  try {
    return await fn(ref, controller.signal);
  } finally {
    unhook?.();
    unhookOwner?.();
    // an owner that died meanwhile lost its monitors with it
    if (node.isAlive(ctx.self)) {
      if (managed && node.monitors.available) node.monitors.demonitor(ctx, ref, { flush: true });
      else ctx.demonitor(ref, { flush: true });
    }
  }
}
